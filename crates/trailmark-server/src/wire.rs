//! What the API answers, as types: the JSON handlers serialize them and the
//! viewer renders the same values, so the two cannot drift apart. Fields are
//! declared in alphabetical order, the order the JSON has always had.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use trailmark_store::{StoreError, StoredEntry};

/// Who acted.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ActorOut {
    pub id: String,
    /// The display name the producer sent (`null` when none, or erased).
    pub name: Value,
    #[serde(rename = "type")]
    pub kind: String,
}

/// What was acted on.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ResourceOut {
    pub id: Option<String>,
    pub name: Value,
    #[serde(rename = "type")]
    pub kind: String,
}

/// One event as the API shows it: what the producer sent, rebuilt from the
/// envelope and the payload, with its position and the payload's state.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct EventOut {
    pub action: String,
    pub actor: ActorOut,
    pub changes: Value,
    pub context: Value,
    pub id: String,
    pub metadata: Value,
    pub occurred_at: String,
    pub outcome: String,
    pub reason: Value,
    pub received_at: String,
    pub resource: Option<ResourceOut>,
    pub seq: u64,
    /// `present`, or `erased` once the payload is gone.
    pub state: String,
    pub tenant: String,
}

impl EventOut {
    /// The event of a stored entry.
    pub fn of(entry: &StoredEntry) -> Result<Self, StoreError> {
        let env = entry.envelope()?;
        let get = |key: &str| {
            entry
                .payload
                .as_ref()
                .and_then(|p| p.get(key))
                .cloned()
                .unwrap_or(Value::Null)
        };
        Ok(Self {
            action: env.action.clone(),
            actor: ActorOut {
                id: env.actor_id.clone(),
                name: get("actor_name"),
                kind: env.actor_type.as_str().to_owned(),
            },
            changes: get("changes"),
            context: get("context"),
            id: env.id.to_string(),
            metadata: get("metadata"),
            occurred_at: env.occurred_at.to_string(),
            outcome: env.outcome.as_str().to_owned(),
            reason: get("reason"),
            received_at: env.received_at.to_string(),
            resource: env.resource_type.as_ref().map(|kind| ResourceOut {
                id: env.resource_id.clone(),
                name: get("resource_name"),
                kind: kind.clone(),
            }),
            seq: env.seq.get(),
            state: entry.state().as_str().to_owned(),
            tenant: env.tenant.as_str().to_owned(),
        })
    }

    /// `context.ip`, when the event has one.
    pub fn ip(&self) -> Option<&str> {
        self.context.get("ip")?.as_str()
    }
}

/// `GET /v1/events`: a page, newest first.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct EventsPage {
    pub events: Vec<EventOut>,
    /// Pass back as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// The record a history is about.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct RecordRef {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// One step of a record's history: the event and the record after it.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct HistoryStep {
    #[serde(flatten)]
    pub event: EventOut,
    /// The record's fields after this event; `null` once deleted.
    pub state_after: Value,
}

/// `GET /v1/resources/{type}/{id}/history`: oldest first.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct History {
    pub events: Vec<HistoryStep>,
    pub resource: RecordRef,
    /// Only the newest events are listed (see the limit in docs/API.md).
    pub truncated: bool,
}

/// An inclusion proof of one entry against a signed checkpoint, with the
/// receipt (C2SP tlog-proof) that carries both.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ProofOut {
    /// The signed checkpoint note.
    pub checkpoint: String,
    /// The proof's hashes (base64 in JSON).
    #[serde(serialize_with = "base64_hashes")]
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

/// `GET /v1/events/{id}`: the event, its entry as verifiers read it, and
/// its proof once a checkpoint covers it.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct EventDetail {
    #[serde(flatten)]
    pub event: EventOut,
    /// As `GET /v1/entries` shows it.
    pub entry: Value,
    /// `null` until a signed checkpoint covers the entry.
    pub proof: Option<ProofOut>,
    /// The leaf bytes (also in `entry.envelope`), for checking the proof.
    #[serde(skip)]
    pub envelope: Vec<u8>,
}
