//! Values that cross the storage boundary.

use std::ops::Range;

use serde_json::{Map, Value};
use trailmark_core::{
    CanonicalJson, Envelope, EnvelopeContext, Event, EventId, IndexedColumns, Outcome,
    PayloadCommitment, Salt, Seq, StoredColumns, TenantId, Timestamp,
};
use trailmark_log::{Hash, TreeSize};

use crate::StoreError;

/// One validated event with the server's decisions and its payload already
/// committed to, ready for the store to sequence and seal.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub event: Event,
    pub received_at: Timestamp,
    /// Used when the event carries no id.
    pub generated_id: EventId,
    /// The payload, its canonical bytes, salt and digest.
    pub committed: PayloadCommitment,
    /// Used when the event names no tenant.
    pub default_tenant: TenantId,
}

impl NewEvent {
    pub fn tenant(&self) -> TenantId {
        self.event
            .tenant
            .clone()
            .unwrap_or_else(|| self.default_tenant.clone())
    }

    pub fn id(&self) -> EventId {
        self.event.id_or(self.generated_id)
    }

    /// The envelope this event gets as entry `seq` of its tenant.
    pub fn seal(&self, seq: Seq) -> Envelope {
        self.event.envelope(
            self.committed.digest,
            &EnvelopeContext {
                seq,
                received_at: self.received_at,
                default_tenant: &self.default_tenant,
                generated_id: self.generated_id,
            },
        )
    }
}

/// What makes a second submission of an event id "the same event": the
/// envelope's fields that the producer chose (actor, action, resource,
/// outcome, and `occurred_at` when the producer sent one) and the payload.
/// Sending the same id again with the same body is idempotent; with another
/// body it is a conflict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sameness {
    fields: Vec<Option<String>>,
    payload: Option<[u8; 32]>,
}

impl Sameness {
    fn of(envelope: &Envelope, with_occurred_at: bool, payload: Option<&CanonicalJson>) -> Self {
        use sha2::{Digest as _, Sha256};
        Self {
            fields: vec![
                Some(envelope.tenant.as_str().to_owned()),
                Some(envelope.actor_id.clone()),
                Some(envelope.actor_type.as_str().to_owned()),
                Some(envelope.action.clone()),
                envelope.resource_type.clone(),
                envelope.resource_id.clone(),
                Some(envelope.outcome.as_str().to_owned()),
                with_occurred_at.then(|| envelope.occurred_at.to_string()),
            ],
            payload: payload.map(|p| Sha256::digest(p.as_bytes()).into()),
        }
    }

    /// Of an event about to be appended.
    pub fn of_new(new: &NewEvent) -> Self {
        let Some(zero) = Seq::new(0) else {
            unreachable!("0 is a valid seq")
        };
        let envelope = new.seal(zero);
        Self::of(
            &envelope,
            new.event.occurred_at.is_some(),
            Some(&new.committed.payload_json),
        )
    }

    /// Whether a stored entry is the same event as `new` (whose sameness
    /// this is). An erased payload compares by the envelope alone.
    pub fn matches(&self, stored: &StoredEntry) -> bool {
        let Ok(envelope) = stored.envelope() else {
            return false;
        };
        let payload = stored
            .payload
            .as_ref()
            .and_then(|p| CanonicalJson::of_map("payload", p).ok());
        let theirs = Self::of(&envelope, self.fields[7].is_some(), payload.as_ref());
        theirs.fields == self.fields && (theirs.payload.is_none() || theirs.payload == self.payload)
    }
}

/// The text `q=` searches in an entry: its actor id, action, resource type
/// and id, then every payload string, number and boolean, each followed by a
/// space. Both stores index the words of this text. `payload` is the
/// payload's stored JSON text (None once erased), read as
/// [`searchable_words_of_text`] reads it.
pub fn searchable_text(envelope: &Envelope, payload: Option<&str>) -> String {
    let parts = [
        Some(envelope.actor_id.as_str()),
        Some(envelope.action.as_str()),
        envelope.resource_type.as_deref(),
        envelope.resource_id.as_deref(),
    ];
    match payload {
        Some(text) => searchable_words_of_text(parts, text),
        None => Words::of(parts).0,
    }
}

/// [`searchable_text`] from the envelope's actor id, action, resource type
/// and resource id as stored beside it (no envelope to parse).
pub fn searchable_words(envelope: [Option<&str>; 4], payload: &Map<String, Value>) -> String {
    fn collect(value: &Value, out: &mut Words) {
        match value {
            Value::String(s) => out.text(s),
            Value::Number(n) => out.number(n),
            Value::Bool(b) => out.boolean(*b),
            Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
            Value::Object(map) => map.values().for_each(|v| collect(v, out)),
            Value::Null => {}
        }
    }
    let mut out = Words::of(envelope);
    for value in payload.values() {
        collect(value, &mut out);
    }
    out.0
}

/// [`searchable_words`] of a payload's stored JSON text, read in one pass
/// without building its map: the same words, in the order of the text (the
/// map's order for canonical text whose keys are below U+E000; the search
/// index keeps no positions, so order never matters). A text that is not
/// a JSON object adds no words, as it would not parse as a map.
pub fn searchable_words_of_text(envelope: [Option<&str>; 4], payload: &str) -> String {
    let mut out = Words::of(envelope);
    let kept = out.0.len();
    let mut reader = serde_json::Deserializer::from_str(payload);
    let read = serde::de::Deserializer::deserialize_map(&mut reader, Collect(&mut out))
        .and_then(|()| reader.end());
    if read.is_err() {
        out.0.truncate(kept);
    }
    out.0
}

/// The words text: each word followed by a space.
struct Words(String);

impl Words {
    fn of(envelope: [Option<&str>; 4]) -> Self {
        let mut out = Words(String::with_capacity(256));
        for part in envelope.into_iter().flatten() {
            out.text(part);
        }
        out
    }

    fn text(&mut self, s: &str) {
        self.0.push_str(s);
        self.0.push(' ');
    }

    fn number(&mut self, n: &serde_json::Number) {
        self.text(&n.to_string());
    }

    fn boolean(&mut self, b: bool) {
        self.text(if b { "true" } else { "false" });
    }
}

/// Adds every string, number and boolean of the JSON it reads to the words.
struct Collect<'a>(&'a mut Words);

impl<'de> serde::de::DeserializeSeed<'de> for Collect<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, reader: D) -> Result<(), D::Error> {
        reader.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Collect<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, b: bool) -> Result<(), E> {
        self.0.boolean(b);
        Ok(())
    }

    fn visit_i64<E>(self, n: i64) -> Result<(), E> {
        self.0.number(&n.into());
        Ok(())
    }

    fn visit_u64<E>(self, n: u64) -> Result<(), E> {
        self.0.number(&n.into());
        Ok(())
    }

    fn visit_f64<E>(self, n: f64) -> Result<(), E> {
        // JSON text holds no NaN or infinity.
        if let Some(n) = serde_json::Number::from_f64(n) {
            self.0.number(&n);
        }
        Ok(())
    }

    fn visit_str<E>(self, s: &str) -> Result<(), E> {
        self.0.text(s);
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        while items.next_element_seed(Collect(&mut *self.0))?.is_some() {}
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut members: A) -> Result<(), A::Error> {
        while members.next_key::<serde::de::IgnoredAny>()?.is_some() {
            members.next_value_seed(Collect(&mut *self.0))?;
        }
        Ok(())
    }
}

/// Where an event ended up. `duplicate` is true when its id was already in
/// the tenant's log: nothing new was stored and `seq` is the first one's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    pub id: EventId,
    pub tenant: TenantId,
    pub seq: Seq,
    pub duplicate: bool,
}

/// Whether an entry's payload is still there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryState {
    Present,
    /// Payload and salt deleted by an erasure (or for a reason the store
    /// does not know); the envelope stays.
    Erased,
    /// Payload and salt deleted by a retention policy; the envelope stays.
    Expired,
}

impl EntryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Present => "present",
            Self::Erased => "erased",
            Self::Expired => "expired",
        }
    }
}

/// Why an entry's payload was removed, with the `_system` seq of the entry
/// that records the removal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    Erased { record: u64 },
    Expired { record: u64 },
}

impl Removal {
    /// The stored form: (kind, record).
    pub fn to_parts(self) -> (&'static str, u64) {
        match self {
            Self::Erased { record } => ("erased", record),
            Self::Expired { record } => ("expired", record),
        }
    }

    /// Reads the stored form back (`None` unless both are there and the
    /// kind is known).
    pub fn from_parts(kind: Option<&str>, record: Option<i64>) -> Option<Self> {
        let record = u64::try_from(record?).ok()?;
        match kind? {
            "erased" => Some(Self::Erased { record }),
            "expired" => Some(Self::Expired { record }),
            _ => None,
        }
    }

    pub fn record(self) -> u64 {
        self.to_parts().1
    }
}

/// One stored entry, as it is on disk.
#[derive(Clone, Debug)]
pub struct StoredEntry {
    /// The leaf bytes exactly as stored (verifiers recompute from these).
    pub envelope_bytes: Vec<u8>,
    /// The stored leaf hash (an index; verifiers recompute it).
    pub leaf_hash: Hash,
    pub payload: Option<Map<String, Value>>,
    pub salt: Option<Salt>,
    /// The query columns stored beside it (verifiers recompute them).
    pub columns: IndexedColumns,
    /// Why the payload is gone, when a removal said so.
    pub removed: Option<Removal>,
}

impl StoredEntry {
    /// Parses the stored envelope (checking it is canonical).
    pub fn envelope(&self) -> Result<Envelope, trailmark_core::Error> {
        Envelope::from_leaf_bytes(&self.envelope_bytes)
    }

    pub fn state(&self) -> EntryState {
        match (&self.payload, self.removed) {
            (Some(_), _) => EntryState::Present,
            (None, Some(Removal::Expired { .. })) => EntryState::Expired,
            (None, _) => EntryState::Erased,
        }
    }
}

/// One stored entry with its payload as the store keeps it: the canonical
/// text the payload digest commits to, not parsed. What verification and
/// copying read: the bytes prove themselves, nothing is parsed that need
/// not be.
#[derive(Clone, Debug)]
pub struct RawEntry {
    pub envelope_bytes: Vec<u8>,
    pub leaf_hash: Hash,
    pub payload_text: Option<String>,
    pub salt: Option<Salt>,
    pub columns: IndexedColumns,
    pub removed: Option<Removal>,
}

impl RawEntry {
    /// The entry with its payload parsed (a payload that is not a JSON
    /// object is a damaged store).
    pub fn parse(self) -> Result<StoredEntry, StoreError> {
        let payload = self.payload()?;
        Ok(StoredEntry {
            envelope_bytes: self.envelope_bytes,
            leaf_hash: self.leaf_hash,
            payload,
            salt: self.salt,
            columns: self.columns,
            removed: self.removed,
        })
    }

    /// The payload parsed, if it is still there.
    pub fn payload(&self) -> Result<Option<Map<String, Value>>, StoreError> {
        let Some(text) = &self.payload_text else {
            return Ok(None);
        };
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Ok(Some(map)),
            _ => Err(StoreError::Unreadable(
                "an entry: payload is not a JSON object".into(),
            )),
        }
    }

    /// A stored salt, read back (it must be 32 bytes).
    pub fn salt_from(bytes: Option<&[u8]>) -> Result<Option<Salt>, StoreError> {
        bytes
            .map(|b| {
                <[u8; 32]>::try_from(b)
                    .map(Salt::from_bytes)
                    .map_err(|_| StoreError::Unreadable("an entry: salt is not 32 bytes".into()))
            })
            .transpose()
    }
}

impl RawEntry {
    /// The entry borrowed.
    pub fn view(&self) -> RawEntryRef<'_> {
        RawEntryRef {
            envelope_bytes: &self.envelope_bytes,
            leaf_hash: self.leaf_hash,
            payload_text: self.payload_text.as_deref(),
            salt: self.salt.as_ref(),
            columns: self.columns.view(),
            removed: self.removed,
        }
    }
}

/// One stored entry, borrowed: from a [`RawEntry`] or a [`RawPage`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawEntryRef<'a> {
    pub envelope_bytes: &'a [u8],
    pub leaf_hash: Hash,
    pub payload_text: Option<&'a str>,
    pub salt: Option<&'a Salt>,
    pub columns: StoredColumns<'a>,
    pub removed: Option<Removal>,
}

impl RawEntryRef<'_> {
    /// The entry copied out.
    pub fn owned(&self) -> RawEntry {
        RawEntry {
            envelope_bytes: self.envelope_bytes.to_vec(),
            leaf_hash: self.leaf_hash,
            payload_text: self.payload_text.map(str::to_owned),
            salt: self.salt.cloned(),
            columns: self.columns.owned(),
            removed: self.removed,
        }
    }
}

/// Entries read in place: the bytes and text of a page in one buffer each,
/// every entry a set of ranges into them — one allocation per page, not a
/// dozen per entry. What a verifier reads a data dir through.
#[derive(Debug, Default)]
pub struct RawPage {
    bytes: Vec<u8>,
    text: String,
    rows: Vec<PackedRow>,
}

/// One entry of a [`RawPage`]: ranges of its buffers.
#[derive(Debug)]
struct PackedRow {
    envelope: Range<usize>,
    leaf_hash: Hash,
    payload: Option<Range<usize>>,
    salt: Option<Salt>,
    tenant: Range<usize>,
    seq: u64,
    id: Range<usize>,
    occurred_at: i64,
    actor_id: Range<usize>,
    action: Range<usize>,
    resource_type: Option<Range<usize>>,
    resource_id: Option<Range<usize>>,
    outcome: Range<usize>,
    ip: Option<Range<usize>>,
    request_id: Option<Range<usize>>,
    removed: Option<Removal>,
}

impl RawPage {
    /// An empty page with room for `entries` entries of about `bytes` bytes
    /// each.
    pub fn with_capacity(entries: usize, bytes: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(entries.saturating_mul(bytes)),
            text: String::with_capacity(entries.saturating_mul(bytes)),
            rows: Vec::with_capacity(entries),
        }
    }

    /// Copies an entry in, after the others.
    pub fn push(&mut self, e: RawEntryRef<'_>) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(e.envelope_bytes);
        let envelope = start..self.bytes.len();
        let mut text = |s: &str| {
            let start = self.text.len();
            self.text.push_str(s);
            start..self.text.len()
        };
        let c = e.columns;
        let row = PackedRow {
            envelope,
            leaf_hash: e.leaf_hash,
            payload: e.payload_text.map(&mut text),
            salt: e.salt.cloned(),
            tenant: text(c.tenant),
            seq: c.seq,
            id: text(c.id),
            occurred_at: c.occurred_at,
            actor_id: text(c.actor_id),
            action: text(c.action),
            resource_type: c.resource_type.map(&mut text),
            resource_id: c.resource_id.map(&mut text),
            outcome: text(c.outcome),
            ip: c.ip.map(&mut text),
            request_id: c.request_id.map(&mut text),
            removed: e.removed,
        };
        self.rows.push(row);
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The entries, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = RawEntryRef<'_>> {
        let text = |r: &Range<usize>| &self.text[r.clone()];
        self.rows.iter().map(move |row| RawEntryRef {
            envelope_bytes: &self.bytes[row.envelope.clone()],
            leaf_hash: row.leaf_hash,
            payload_text: row.payload.as_ref().map(text),
            salt: row.salt.as_ref(),
            columns: StoredColumns {
                tenant: text(&row.tenant),
                seq: row.seq,
                id: text(&row.id),
                occurred_at: row.occurred_at,
                actor_id: text(&row.actor_id),
                action: text(&row.action),
                resource_type: row.resource_type.as_ref().map(text),
                resource_id: row.resource_id.as_ref().map(text),
                outcome: text(&row.outcome),
                ip: row.ip.as_ref().map(text),
                request_id: row.request_id.as_ref().map(text),
            },
            removed: row.removed,
        })
    }
}

/// A tenant's log size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantHead {
    pub tenant: TenantId,
    pub size: TreeSize,
}

/// Where a page of results stopped; opaque to clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor(pub u64);

impl Cursor {
    pub fn encode(self) -> String {
        format!("c{}", self.0)
    }

    pub fn decode(text: &str) -> Option<Self> {
        text.strip_prefix('c')?.parse().ok().map(Self)
    }
}

/// An exact-match filter on one stored column: the one list of them. The
/// API's query parameters, the CLI's flags, the viewer's filter bar, the
/// `OpenAPI` document and both stores' SQL are all made from it: adding a
/// filter is a variant here, plus its column in each store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Exact {
    Actor,
    Action,
    ResourceType,
    ResourceId,
    Outcome,
    Ip,
    RequestId,
}

impl Exact {
    pub const ALL: [Self; 7] = [
        Self::Actor,
        Self::Action,
        Self::ResourceType,
        Self::ResourceId,
        Self::Outcome,
        Self::Ip,
        Self::RequestId,
    ];

    /// Its name as a query parameter, form field and (with `-` for `_`)
    /// CLI flag.
    pub fn param(self) -> &'static str {
        match self {
            Self::Actor => "actor",
            Self::Action => "action",
            Self::ResourceType => "resource_type",
            Self::ResourceId => "resource_id",
            Self::Outcome => "outcome",
            Self::Ip => "ip",
            Self::RequestId => "request_id",
        }
    }

    /// Its CLI flag's name (`--resource-type`).
    pub fn flag(self) -> &'static str {
        match self {
            Self::ResourceType => "resource-type",
            Self::ResourceId => "resource-id",
            Self::RequestId => "request-id",
            other => other.param(),
        }
    }

    /// The `entries` column it matches (both stores name it the same).
    pub fn column(self) -> &'static str {
        match self {
            Self::Actor => "actor_id",
            Self::Action => "action",
            Self::ResourceType => "resource_type",
            Self::ResourceId => "resource_id",
            Self::Outcome => "outcome",
            Self::Ip => "ip",
            Self::RequestId => "request_id",
        }
    }

    /// A short label (the viewer's filter bar).
    pub fn label(self) -> &'static str {
        match self {
            Self::Actor => "Actor",
            Self::Action => "Action",
            Self::ResourceType => "Resource type",
            Self::ResourceId => "Resource id",
            Self::Outcome => "Outcome",
            Self::Ip => "IP",
            Self::RequestId => "Request id",
        }
    }

    /// What it matches (the API document, CLI help).
    pub fn describe(self) -> &'static str {
        match self {
            Self::Actor => "Actor id, exact.",
            Self::Action => "Action, exact (login, update, admin.key.create, ...).",
            Self::ResourceType => "Resource type, exact.",
            Self::ResourceId => "Resource id, exact.",
            Self::Outcome => "success or failure.",
            Self::Ip => "context.ip, exact.",
            Self::RequestId => {
                "context.request_id, exact: every event one request made (Trailmark's own records carry its X-Request-Id)."
            }
        }
    }

    pub fn from_param(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.param() == name)
    }

    /// The value to match, or what is wrong with it (an outcome must be one).
    pub fn check(self, value: &str) -> Result<String, String> {
        match self {
            Self::Outcome => Outcome::parse(value)
                .map(|o| o.as_str().to_owned())
                .ok_or_else(|| format!("must be one of {}", Outcome::choices())),
            _ => Ok(value.to_owned()),
        }
    }
}

/// A search over entries, newest first. Every filter is exact except `q`
/// (words in the payload and ids) and the time range.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// The tenants the caller may see; empty means every tenant.
    pub tenants: Vec<TenantId>,
    /// Exact matches, each on its column ([`Exact`]).
    pub exact: std::collections::BTreeMap<Exact, String>,
    /// Only entries that name no record (no `resource.id`): with
    /// [`Exact::ResourceType`], the events about every record of a type
    /// at once (a captured table's truncate), which a record's history
    /// reads beside the record's own. Not a query parameter.
    pub no_resource_id: bool,
    pub q: Option<String>,
    /// Inclusive lower bound on `occurred_at`.
    pub since: Option<Timestamp>,
    /// Exclusive upper bound on `occurred_at`.
    pub until: Option<Timestamp>,
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

impl Query {
    /// Whether an exact filter ([`Exact`]) is set.
    pub fn has_exact_filter(&self) -> bool {
        !self.exact.is_empty() || self.no_resource_id
    }

    /// The same query, also matching `value` exactly on `field`.
    #[must_use]
    pub fn with(mut self, field: Exact, value: impl Into<String>) -> Self {
        self.exact.insert(field, value.into());
        self
    }

    /// Whether the time window bounds the index walk (`occurred_at` is
    /// sought) rather than filtering rows met on another walk. Counts always
    /// seek their window. A page (newest first) with only a start walks
    /// newest first and filters: the newest entries are the first to
    /// match, where seeking the window would sort all of it for every page.
    /// A window with an end may lie in the past: it is sought.
    pub fn window_seeks(&self, ordered: bool) -> bool {
        (self.since.is_some() || self.until.is_some()) && (!ordered || self.until.is_some())
    }

    /// Whether a read over every tenant is answered tenant by tenant, each
    /// through its tenant-first index, instead of walking the whole trail:
    /// when an exact filter or a sought window selects the rows (every
    /// index leads with the tenant). A free-text search is driven by its
    /// own index.
    pub fn per_tenant(&self, ordered: bool) -> bool {
        self.tenants.is_empty()
            && self.q.is_none()
            && (self.has_exact_filter() || self.window_seeks(ordered))
    }
}

/// A page of results and where the next one starts.
#[derive(Clone, Debug)]
pub struct Page {
    pub entries: Vec<StoredEntry>,
    pub next: Option<Cursor>,
}

/// A signed checkpoint as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointRecord {
    pub tenant: TenantId,
    pub size: TreeSize,
    pub root: Hash,
    /// The whole signed note.
    pub note: String,
    pub signed_at: Timestamp,
}

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Scopes {
    pub ingest: bool,
    pub read: bool,
    pub admin: bool,
}

/// One thing a key may do. A closed set: a scope that is not one of these
/// cannot be asked for, so a misspelt check cannot mean "admin only".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Ingest,
    Read,
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Read => "read",
            Self::Admin => "admin",
        }
    }
}

impl Scopes {
    /// Whether a key with these scopes may do what `scope` allows: admin
    /// allows everything.
    pub fn allows(self, scope: Scope) -> bool {
        self.admin
            || match scope {
                Scope::Ingest => self.ingest,
                Scope::Read => self.read,
                Scope::Admin => false,
            }
    }

    pub const ALL: Self = Self {
        ingest: true,
        read: true,
        admin: true,
    };

    /// Parses `ingest,read,admin` (any subset, any order).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut scopes = Self::default();
        if text.trim().is_empty() {
            return Err("at least one scope is needed: ingest, read or admin".into());
        }
        for word in text.split(',').map(str::trim) {
            match word {
                "" => {
                    return Err(format!(
                        "{text:?} has an empty scope between commas: list them as e.g. ingest,read"
                    ));
                }
                "ingest" => scopes.ingest = true,
                "read" => scopes.read = true,
                "admin" => scopes.admin = true,
                other => {
                    return Err(format!(
                        "unknown scope {other:?}: use ingest, read or admin"
                    ));
                }
            }
        }
        Ok(scopes)
    }

    pub fn to_text(self) -> String {
        let mut words = Vec::new();
        for (on, word) in [
            (self.ingest, "ingest"),
            (self.read, "read"),
            (self.admin, "admin"),
        ] {
            if on {
                words.push(word);
            }
        }
        words.join(",")
    }
}

/// An API key as stored: never the key itself, only its SHA-256 digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    /// A public handle (`tmk_` + 8 hex digits), safe to show and log.
    pub id: String,
    pub digest: [u8; 32],
    pub name: String,
    pub scopes: Scopes,
    /// When set, the key sees and writes only this tenant.
    pub tenant: Option<TenantId>,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// A public key that signs this trail's checkpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// 0 for the trail's first key; each rotation adds one.
    pub ordinal: u32,
    /// The Ed25519 public key.
    pub public_key: [u8; 32],
    /// Checkpoints are named `<origin_prefix>/<tenant>`.
    pub origin_prefix: String,
    pub added_at: Timestamp,
    /// For a rotated-in key: the transition statement, signed by the key
    /// before it.
    pub transition: Option<String>,
}

impl SigningKeyRecord {
    /// A record from its stored columns, refusing what no store writes (a
    /// negative ordinal, a key that is not 32 bytes, a time out of range).
    pub fn from_stored(
        ordinal: i64,
        public_key: Vec<u8>,
        origin_prefix: String,
        added_at_millis: i64,
        transition: Option<String>,
    ) -> Result<Self, StoreError> {
        let bad = |what: &str| StoreError::Unreadable(format!("signing key {ordinal}: {what}"));
        Ok(Self {
            ordinal: u32::try_from(ordinal).map_err(|_| bad("the ordinal is out of range"))?,
            public_key: public_key
                .try_into()
                .map_err(|_| bad("the key is not 32 bytes"))?,
            origin_prefix,
            added_at: Timestamp::from_unix_millis(added_at_millis)
                .ok_or_else(|| bad("the time is out of range"))?,
            transition,
        })
    }

    /// What the verifier needs of it (`trailmark_verify::KeyHistory`).
    pub fn view(&self) -> trailmark_verify::KeyRecordView {
        trailmark_verify::KeyRecordView {
            public_key: self.public_key,
            origin_prefix: self.origin_prefix.clone(),
            transition: self.transition.clone(),
        }
    }
}

/// Counts over a set of entries (see [`crate::Store::stats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub total: u64,
    /// (action, count), most frequent first ([`Stats::by_count`]).
    pub by_action: Vec<(String, u64)>,
    /// (actor id, count), most frequent first, at most [`Stats::TOP`].
    pub by_actor: Vec<(String, u64)>,
    /// (resource type, count), most frequent first, at most [`Stats::TOP`];
    /// entries without one are left out.
    pub by_resource_type: Vec<(String, u64)>,
    /// (outcome, count), most frequent first.
    pub by_outcome: Vec<(String, u64)>,
    /// (UTC day `YYYY-MM-DD` of `occurred_at`, count), oldest first.
    pub per_day: Vec<(String, u64)>,
}

impl Stats {
    /// How many actors and resource types are listed at most.
    pub const TOP: usize = 50;

    /// Where each of the five lists of [`Self::from_lists`] is cut: actors
    /// and resource types at [`Self::TOP`], the others not.
    pub const CUT: [Option<usize>; 5] = [None, None, Some(Self::TOP), Some(Self::TOP), None];

    /// The order of the counted lists (outcomes, actions, actors, resource
    /// types): most frequent first, equal counts by value in byte order
    /// (UTF-8 bytes, `a10` before `a9`, `B` before `a`), whatever a
    /// database's collation. Every store ranks through [`Self::from_lists`];
    /// it only counts.
    pub fn by_count(a: &(String, u64), b: &(String, u64)) -> std::cmp::Ordering {
        b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0))
    }

    /// Stats from its five (value, count) lists in any order, in the order
    /// of the fields: by outcome, action, actor, resource type and UTC day;
    /// a list cut at [`Self::CUT`] need only hold its candidates: every value
    /// whose count reaches the cut-th highest count (so all the values tied
    /// at the cut, which the byte order then ranks). Ranks them by
    /// [`Self::by_count`] (the days oldest first) and cuts them where
    /// [`Self::CUT`] says.
    pub fn from_lists(lists: [Vec<(String, u64)>; 5]) -> Self {
        let [
            mut by_outcome,
            mut by_action,
            mut by_actor,
            mut by_resource_type,
            mut per_day,
        ] = lists;
        per_day.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let ranked = [
            &mut by_outcome,
            &mut by_action,
            &mut by_actor,
            &mut by_resource_type,
        ];
        for (list, cut) in ranked.into_iter().zip(Self::CUT) {
            list.sort_unstable_by(Self::by_count);
            if let Some(cut) = cut {
                list.truncate(cut);
            }
        }
        Self {
            total: by_outcome.iter().map(|(_, n)| n).sum(),
            by_outcome,
            by_action,
            by_actor,
            by_resource_type,
            per_day,
        }
    }
}

/// The column [`crate::Store::daily_counts`] splits each day by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CountBy {
    Action,
    Outcome,
}

impl CountBy {
    /// The entries column (both stores name it the same).
    pub fn column(self) -> &'static str {
        match self {
            Self::Action => "e.action",
            Self::Outcome => "e.outcome",
        }
    }
}

/// A read a store serves, as [`crate::Store::explain`] takes it: the same
/// values the read methods take, so a plan is the plan of the real read.
#[derive(Clone, Debug)]
pub enum Read {
    /// [`crate::Store::query`].
    Page(Query),
    /// [`crate::Store::stats`].
    Stats(Query),
    /// [`crate::Store::daily_counts`].
    DailyCounts(Query, CountBy),
    /// [`crate::Store::entry_by_id`].
    EntryById { tenants: Vec<TenantId>, id: EventId },
    /// [`crate::Store::entries`].
    Entries {
        tenant: TenantId,
        start: u64,
        end: u64,
    },
}

/// How a store would run a read ([`crate::Store::explain`]), named the same
/// way by every store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// One per step that reaches the rows of the `entries` table.
    pub accesses: Vec<Access>,
    /// Whether rows are sorted after they are found (a page whose index
    /// gives its order never sorts).
    pub sorts: bool,
    /// The database's own words for the plan, for a reader.
    pub text: String,
}

/// How one step of a plan reaches the rows of the `entries` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// The index walked, or `None` when the whole table is read in storage
    /// order. The free-text index is named `search` by every store.
    pub index: Option<String>,
    /// The columns (`tenant`, `actor_id`, `pos`, `search`, ...) that bound
    /// the walk: empty when the whole index is walked.
    pub seek: Vec<String>,
}

#[cfg(test)]
mod scope_tests {
    use super::{Scope, Scopes};

    #[test]
    fn admin_allows_every_scope_and_the_others_only_their_own() {
        let only = |text| Scopes::parse(text).unwrap_or_default();
        for (scopes, allowed) in [
            ("admin", &[Scope::Ingest, Scope::Read, Scope::Admin][..]),
            ("read", &[Scope::Read][..]),
            ("ingest", &[Scope::Ingest][..]),
            ("ingest,read", &[Scope::Ingest, Scope::Read][..]),
        ] {
            for scope in [Scope::Ingest, Scope::Read, Scope::Admin] {
                assert_eq!(
                    only(scopes).allows(scope),
                    allowed.contains(&scope),
                    "{scopes} / {}",
                    scope.as_str()
                );
            }
        }
    }
}

/// A setting kept beside the trail (the alert rules, the webhook
/// endpoints): a JSON document under a name, with a version that every
/// change increments, so that two servers sharing a store cannot overwrite
/// each other's change unseen ([`crate::Store::put_setting`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub value: String,
    /// 1 for the first value stored, then one more per change.
    pub version: u64,
    pub updated_at: Timestamp,
}

impl Setting {
    /// A setting as a backend stored it.
    pub fn from_stored(value: String, version: i64, updated_at: i64) -> Result<Self, StoreError> {
        Ok(Self {
            value,
            version: u64::try_from(version)
                .map_err(|_| StoreError::Unreadable(format!("a setting's version is {version}")))?,
            updated_at: Timestamp::from_unix_millis(updated_at).ok_or_else(|| {
                StoreError::Unreadable(format!("a setting's time is {updated_at}"))
            })?,
        })
    }
}

/// Where an indexer that follows the appends stands ([`crate::Store::indexer`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct IndexerStatus {
    /// The newest position appended.
    pub written: u64,
    /// The newest position the query indexes cover.
    pub indexed: u64,
    /// Entries appended but not yet indexed (reads scan them).
    pub lag_entries: u64,
    /// Entries indexed per second by its last batch (0 before one).
    pub rate: f64,
    /// Whether its last batch failed (it retries each second).
    pub failing: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ENVELOPE: [Option<&str>; 4] = [Some("u7"), Some("invoice.update"), Some("Invoice"), None];

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1.0e6..1.0e6f64).prop_map(Value::from),
            "[a-z \\\"\u{e9}\u{1f600}]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_\u{e9}]{1,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn words_of_the_stored_text_are_the_words_of_the_parsed_payload(
            payload in prop::collection::btree_map("[a-z_\u{e9}]{1,8}", json(), 0..5),
        ) {
            // What the indexer did before: parse the stored text, then
            // take the words of the map.
            let payload: Map<String, Value> = payload.into_iter().collect();
            let stored = trailmark_core::CanonicalJson::of_map("payload", &payload).unwrap();
            let parsed: Map<String, Value> = serde_json::from_str(stored.as_str()).unwrap();
            prop_assert_eq!(
                searchable_words_of_text(ENVELOPE, stored.as_str()),
                searchable_words(ENVELOPE, &parsed)
            );
        }
    }

    #[test]
    fn a_text_that_is_not_an_object_adds_no_words() {
        for text in [
            "[1, \"a\"]",
            "\"a\"",
            "{\"a\": \"b\"",
            "{\"a\": \"b\"} x",
            "",
        ] {
            assert_eq!(
                searchable_words_of_text(ENVELOPE, text),
                "u7 invoice.update Invoice ",
                "{text}"
            );
        }
        assert_eq!(
            searchable_words_of_text(ENVELOPE, r#"{"b": [true, 2.5, null], "a": {"x": "y z"}}"#),
            "u7 invoice.update Invoice true 2.5 y z "
        );
    }
}
