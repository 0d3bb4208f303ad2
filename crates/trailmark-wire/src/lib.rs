//! What Trailmark's HTTP API answers, as types (see the README). The server
//! builds them from what it stores; clients read them back.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The most events one `POST /v1/events` takes (a JSON array, or NDJSON
/// lines); a request with more is answered 413 ("split the batch"). The
/// server's bound, stated in its OpenAPI document (`maxItems`), and the
/// largest batch the Rust client and the capture drainers may be set to send.
pub const MAX_EVENTS_PER_REQUEST: usize = 5_000;

/// The header of a `POST /v1/events` that must be appended after another
/// batch: `Trailmark-After: [<tenant>/]<event id>`, the last event of the
/// batch before (no tenant: the one events without a tenant go to). The server appends this batch only once that event is
/// durable in the trail, and answers 412 (storing nothing) when it is not
/// and no batch ending with it arrives in time; so a producer whose order
/// matters sends its next batch without waiting for the answer to the one
/// before (docs/API.md, "Ordered batches").
pub const AFTER_HEADER: &str = "Trailmark-After";

/// Who acted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ActorOut {
    pub id: String,
    /// The display name the producer sent (`null` when none, or erased).
    pub name: Value,
    #[serde(rename = "type")]
    pub kind: String,
}

/// What was acted on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResourceOut {
    pub id: Option<String>,
    pub name: Value,
    #[serde(rename = "type")]
    pub kind: String,
}

/// One field's change: its value before and after (`null` for none).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChangeOut {
    #[serde(default)]
    pub new: Value,
    #[serde(default)]
    pub old: Value,
}

/// One event as the API shows it: what the producer sent, rebuilt from the
/// envelope and the payload, with its position and the payload's state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventOut {
    pub action: String,
    pub actor: ActorOut,
    /// By field name; `null` when the event records none (or is erased).
    pub changes: Option<std::collections::BTreeMap<String, ChangeOut>>,
    pub context: Value,
    pub id: String,
    pub metadata: Value,
    pub occurred_at: String,
    pub outcome: String,
    pub reason: Value,
    pub received_at: String,
    pub resource: Option<ResourceOut>,
    pub seq: u64,
    /// `present`; `erased` or `expired` once the payload is gone.
    pub state: String,
    /// Why the payload is gone: `null` while it is there.
    pub removal: Option<RemovalOut>,
    pub tenant: String,
}

/// Why an event's payload is gone: an erasure or a retention policy, and
/// the `_system` entry that records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RemovalOut {
    /// `erasure` or `expiry`.
    pub kind: String,
    pub record: EntryRef,
    /// The erasure's reason, or the retention policies that expired it
    /// (from the record; `null` if it cannot be read).
    pub reason: Option<String>,
}

impl EventOut {
    /// `context.ip`, when the event has one.
    pub fn ip(&self) -> Option<&str> {
        self.context.get("ip")?.as_str()
    }
}

/// `GET /v1/events`: a page, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventsPage {
    pub events: Vec<EventOut>,
    /// Pass back as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// The record a history is about.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RecordRef {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// One step of a record's history: the event and the record after it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HistoryStep {
    #[serde(flatten)]
    pub event: EventOut,
    /// The record's fields after this event, those the trail still shows;
    /// `null` once deleted.
    pub state_after: Value,
    /// Fields whose value after this event cannot be known: an event before
    /// it lost its payload (erased or expired) and may have changed them.
    pub unknown_fields: Vec<String>,
    /// Whether an event before this one lost its payload since the record
    /// was last created, so fields it set that no later event shows may be
    /// missing from `state_after`.
    pub incomplete: bool,
}

/// `GET /v1/resources/{type}/{id}/history`: oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct History {
    pub events: Vec<HistoryStep>,
    pub resource: RecordRef,
    /// Only the newest events are listed (see the limit in docs/API.md).
    pub truncated: bool,
}

/// An inclusion proof of one entry against a signed checkpoint, with the
/// receipt (C2SP tlog-proof) that carries both.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProofOut {
    /// The signed checkpoint note.
    pub checkpoint: String,
    /// The proof's hashes (base64 in JSON).
    #[serde(
        serialize_with = "base64_hashes",
        deserialize_with = "hashes_from_base64"
    )]
    #[schemars(with = "Vec<String>")]
    pub hashes: Vec<trailmark_log::Hash>,
    pub leaf_index: u64,
    pub receipt: String,
    pub tree_size: u64,
}

fn base64_hashes<S: serde::Serializer>(
    hashes: &[trailmark_log::Hash],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use base64::Engine as _;
    use serde::ser::SerializeSeq as _;
    let mut seq = serializer.serialize_seq(Some(hashes.len()))?;
    for h in hashes {
        seq.serialize_element(&base64::engine::general_purpose::STANDARD.encode(h.as_bytes()))?;
    }
    seq.end()
}

fn hashes_from_base64<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<trailmark_log::Hash>, D::Error> {
    Vec::<String>::deserialize(deserializer)?
        .iter()
        .map(|h| trailmark_log::Hash::from_base64(h).map_err(serde::de::Error::custom))
        .collect()
}

/// `GET /v1/events/{id}`: the event, its entry as verifiers read it, and
/// its proof once a checkpoint covers it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventDetail {
    #[serde(flatten)]
    pub event: EventOut,
    /// As `GET /v1/entries` shows it.
    pub entry: EntryOut,
    /// `null` until a signed checkpoint covers the entry.
    pub proof: Option<ProofOut>,
    /// The leaf bytes (also in `entry.envelope`), for checking the proof.
    #[serde(skip)]
    pub envelope: Vec<u8>,
}

/// The query columns a store keeps beside an entry (verifiers recompute
/// them: `trailmark_core::IndexedColumns`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ColumnsOut {
    pub action: String,
    pub actor_id: String,
    pub id: String,
    pub ip: Option<String>,
    pub occurred_at: i64,
    pub outcome: String,
    pub request_id: Option<String>,
    pub resource_id: Option<String>,
    pub resource_type: Option<String>,
    pub seq: u64,
    pub tenant: String,
}

/// One entry as verifiers need it: the exact envelope (leaf) bytes, the
/// stored leaf hash, payload and salt, and the query columns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EntryOut {
    pub columns: ColumnsOut,
    /// The canonical envelope: the leaf's bytes, as text.
    pub envelope: String,
    /// Base64.
    pub leaf_hash: String,
    /// `null` once erased.
    pub payload: Option<serde_json::Map<String, Value>>,
    /// Hex; `null` once erased.
    pub salt: Option<String>,
    pub seq: u64,
    /// `present`, `erased` or `expired`.
    pub state: String,
    pub tenant: String,
}

/// `GET /v1/entries`: a range of one tenant's entries, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EntriesPage {
    pub entries: Vec<EntryOut>,
    pub tenant: String,
}

/// How many events have one action (in [`StatsOut`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ActionCount {
    pub action: String,
    pub count: u64,
}
/// How many events one actor has.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ActorCount {
    pub actor: String,
    pub count: u64,
}
/// How many events have one resource type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResourceTypeCount {
    pub count: u64,
    pub resource_type: String,
}
/// How many events have one outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OutcomeCount {
    pub count: u64,
    pub outcome: String,
}
/// How many events happened on one UTC day (`YYYY-MM-DD`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DayCount {
    pub count: u64,
    pub day: String,
}

/// `GET /v1/stats`: counts over the events the filters select.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StatsOut {
    pub by_action: Vec<ActionCount>,
    /// The 50 most active.
    pub by_actor: Vec<ActorCount>,
    pub by_outcome: Vec<OutcomeCount>,
    /// The 50 most frequent.
    pub by_resource_type: Vec<ResourceTypeCount>,
    /// Oldest first.
    pub per_day: Vec<DayCount>,
    pub total: u64,
}

/// Where one stored event went (`POST /v1/events` answers one per event, in
/// order).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AppendedOut {
    pub id: String,
    pub seq: u64,
    pub tenant: String,
}

/// `POST /v1/events`: every event of the batch, durably stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AppendedBatch {
    pub entries: Vec<AppendedOut>,
}

/// A tenant and its log size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TenantOut {
    pub size: u64,
    pub tenant: String,
}

/// `GET /v1/tenants`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Tenants {
    pub tenants: Vec<TenantOut>,
}

/// One signed checkpoint with its witnesses' cosignatures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CheckpointOut {
    /// The signed note, cosignature lines included.
    pub note: String,
    pub size: u64,
}

/// `GET /v1/checkpoints`: a page, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CheckpointsPage {
    pub checkpoints: Vec<CheckpointOut>,
    /// Pass back as `after` for the next page; `null` on the last.
    pub next_after: Option<u64>,
    pub tenant: String,
}

/// `GET /v1/proofs/inclusion`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InclusionProof {
    /// Base64.
    pub hashes: Vec<String>,
    pub leaf_index: u64,
    pub tree_size: u64,
}

/// `GET /v1/proofs/consistency`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConsistencyProof {
    pub first: u64,
    /// Base64.
    pub hashes: Vec<String>,
    pub second: u64,
}

/// An API key as listed: never its secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KeyOut {
    pub created_at: String,
    pub id: String,
    pub name: String,
    pub revoked_at: Option<String>,
    /// `ingest`, `read`, `admin`, comma-separated.
    pub scopes: String,
    /// The one tenant the key may see and write; `null`: every tenant.
    pub tenant: Option<String>,
}

/// `POST /v1/keys`: the new key, with its secret (shown this once).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NewKeyOut {
    #[serde(flatten)]
    pub record: KeyOut,
    /// The secret: the bearer token. Not stored; shown only here.
    pub key: String,
}

/// `GET /v1/keys`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Keys {
    pub keys: Vec<KeyOut>,
}

/// `DELETE /v1/keys/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Revoked {
    pub id: String,
    pub revoked: bool,
}

/// A public key that signs the trail's checkpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SigningKeyOut {
    pub added_at: String,
    pub ordinal: u32,
    pub origin_prefix: String,
    /// Base64 of the Ed25519 public key.
    pub public_key: String,
    /// For a rotated-in key: the statement signed by the key before it.
    pub transition: Option<String>,
}

/// `GET /v1/signing-keys`: oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SigningKeys {
    pub keys: Vec<SigningKeyOut>,
}

/// One problem with a request: where (`path`: a field path like
/// `actor.id`, or a query parameter's name; `index`: the event's position in
/// the batch) and what.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProblemOut {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    pub message: String,
    pub path: String,
}

/// A 400: every problem of the request at once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Problems {
    pub errors: Vec<ProblemOut>,
}

/// Any other error: what was wrong, in words.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    pub error: String,
}

/// `PUT /v1/retention`: one policy of one tenant. At most one of
/// `resource_type` and `action`; neither: every entry of the tenant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicyIn {
    pub tenant: String,
    #[serde(default)]
    pub resource_type: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
    /// Days after an entry was received that its payload expires (1 to
    /// 36500).
    pub max_age_days: u32,
}

/// `DELETE /v1/retention?tenant=&resource_type=&action=`: the policy to
/// remove (the same tenant and target as it was set with).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionTarget {
    pub tenant: String,
    #[serde(default)]
    pub resource_type: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
}

/// A retention policy as listed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RetentionPolicyOut {
    pub tenant: String,
    /// `all`, `resource_type=T` or `action=A`.
    pub target: String,
    pub resource_type: Option<String>,
    pub action: Option<String>,
    pub max_age_days: u32,
    pub updated_at: String,
}

/// `GET /v1/retention`: the policies, the holds in force, and the last
/// cleanup this server ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RetentionOut {
    pub policies: Vec<RetentionPolicyOut>,
    pub holds: Vec<HoldOut>,
    /// Seconds between scheduled cleanups; `null` when off.
    pub cleanup_interval_secs: Option<u64>,
    /// The report of the last cleanup this server ran (every tenant's);
    /// `null` before the first, and for a key bound to a tenant.
    pub last_cleanup: Option<RemovalReport>,
}

/// `POST /v1/retention/cleanup`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CleanupIn {
    /// Report what would be removed, remove nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Only this tenant (default: every tenant the key sees).
    #[serde(default)]
    pub tenant: Option<String>,
}

/// What a removal (a cleanup or an erasure) removed, or would remove, for
/// one tenant, resource type and action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RemovalGroup {
    pub tenant: String,
    pub resource_type: Option<String>,
    pub action: String,
    pub entries: u64,
    /// Bytes of payload, salt and the columns derived from them.
    pub bytes: u64,
}

/// The answer of a cleanup or an erasure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RemovalReport {
    /// `expiry` (a cleanup) or `erasure`.
    pub kind: String,
    pub dry_run: bool,
    pub started_at: String,
    pub finished_at: String,
    /// Entries whose payload was (or would be) removed.
    pub entries: u64,
    pub bytes: u64,
    /// Entries a hold in force kept.
    pub held: u64,
    pub groups: Vec<RemovalGroup>,
    /// The `_system` entries that record the removal.
    pub records: Vec<EntryRef>,
    /// Whether the store then made the removed values unrecoverable from
    /// its files (false for a dry run, or when the scrub must be retried).
    pub scrubbed: bool,
}

/// `POST /v1/holds`: exactly one of `actor`, `resource` (`TYPE:ID`) and
/// `all: true`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldIn {
    pub tenant: String,
    #[serde(default)]
    pub actor: Option<String>,
    #[serde(default)]
    pub resource: Option<String>,
    #[serde(default)]
    pub all: Option<bool>,
    /// Kept forever in `_system`: a case number, not a person's name.
    pub reason: String,
}

/// A legal hold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HoldOut {
    pub id: String,
    pub tenant: String,
    /// `all`, `actor=ID` or `resource=TYPE:ID`.
    pub scope: String,
    pub reason: String,
    pub placed_by: String,
    pub placed_at: String,
    pub released_at: Option<String>,
}

/// `GET /v1/holds`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Holds {
    pub holds: Vec<HoldOut>,
}

/// `POST /v1/erasures`: exactly one of `actor` and `resource` (`TYPE:ID`);
/// `dry_run` to see first what it would remove.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErasureIn {
    /// Only this tenant (default: every tenant the key sees).
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub actor: Option<String>,
    #[serde(default)]
    pub resource: Option<String>,
    /// Kept forever in `_system`: a ticket number, not a person's name.
    pub reason: String,
    /// Report what the erasure would remove (and how many matching
    /// entries holds keep) and remove nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// Where an entry is: its tenant and seq.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EntryRef {
    pub tenant: String,
    pub seq: u64,
}

/// One step of an alert's life: acknowledged or resolved, by whom, when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AlertStepOut {
    /// The key that did it (its id).
    pub by: String,
    pub at: String,
    pub note: Option<String>,
    /// Where it is recorded in `_system`.
    pub entry: EntryRef,
}

/// One webhook's delivery of one alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeliveryOut {
    pub webhook: String,
    /// The `webhook-id` header of every attempt.
    pub webhook_id: String,
    /// `pending`, `delivered` or `dead` (every attempt failed).
    pub state: String,
    /// Attempts made (since the last redelivery asked for).
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<String>,
}

/// An alert: what fired, on which events, and what became of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AlertOut {
    pub id: String,
    pub rule: String,
    pub tenant: String,
    /// What the events shared: `actor=…`, `ip=…`, `username=…` or
    /// `statement=…`.
    pub key: String,
    pub count: u64,
    /// Ids of the events of the burst (at most 100, the newest).
    pub events: Vec<String>,
    pub first_received_at: String,
    pub last_received_at: String,
    pub raised_at: String,
    /// One line saying what happened.
    pub summary: String,
    /// `open`, `acknowledged` or `resolved`.
    pub status: String,
    pub acknowledged: Option<AlertStepOut>,
    pub resolved: Option<AlertStepOut>,
    pub deliveries: Vec<DeliveryOut>,
    /// The alert's own entry in `_system`.
    pub entry: EntryRef,
}

/// A page of alerts, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AlertsPage {
    pub alerts: Vec<AlertOut>,
    pub next_cursor: Option<String>,
}

/// `POST /v1/alerts/{id}/ack`: acknowledge, or (`resolve: true`) resolve.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AckIn {
    #[serde(default)]
    pub resolve: Option<bool>,
    /// Kept forever in `_system`: what was done, not personal data.
    #[serde(default)]
    pub note: Option<String>,
}

/// `POST /v1/alerts/{id}/redeliver`: deliver again to one webhook, or to
/// every webhook the alert goes to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeliverIn {
    #[serde(default)]
    pub webhook: Option<String>,
}

/// One webhook endpoint as `PUT /v1/webhooks` takes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookIn {
    /// 1 to 64 of `a-z`, `0-9`, `-`, `_`.
    pub name: String,
    /// `http://` or `https://`.
    pub url: String,
    /// `standard` (the default: a JSON body with `type`, `timestamp`,
    /// `data`) or `slack` (`{"text": …}`).
    #[serde(default)]
    pub format: Option<String>,
    /// `whsec_…`; absent: the endpoint's present secret, or a new one.
    #[serde(default)]
    pub secret: Option<String>,
    /// The rules whose alerts it gets (absent: every rule).
    #[serde(default)]
    pub rules: Option<Vec<String>>,
    /// The tenants whose alerts it gets (absent: every tenant).
    #[serde(default)]
    pub tenants: Option<Vec<String>>,
    #[serde(default)]
    pub max_attempts: Option<u32>,
    #[serde(default)]
    pub first_retry_secs: Option<u64>,
    #[serde(default)]
    pub max_retry_secs: Option<u64>,
}

/// `PUT /v1/webhooks`: every endpoint (the list replaces the one before).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhooksIn {
    pub webhooks: Vec<WebhookIn>,
}

/// One webhook endpoint as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WebhookOut {
    pub name: String,
    pub url: String,
    pub format: String,
    /// Empty: every rule.
    pub rules: Vec<String>,
    /// Empty: every tenant.
    pub tenants: Vec<String>,
    pub max_attempts: u32,
    pub first_retry_secs: u64,
    pub max_retry_secs: u64,
    /// Alerts raised from this time on go to it.
    pub since: String,
    /// The first 16 hex digits of the SHA-256 of the secret, to tell
    /// secrets apart.
    pub secret_sha256: String,
    /// The secret itself, only in the answer to the `PUT` that made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// The webhook endpoints and the version of their setting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WebhooksOut {
    pub webhooks: Vec<WebhookOut>,
    pub version: u64,
}

/// The alert rules (docs/ALERTS.md) and the version of their setting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AlertRulesOut {
    pub rules: Value,
    pub version: u64,
}
