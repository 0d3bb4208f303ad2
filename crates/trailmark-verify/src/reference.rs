//! Cross-references: every checkpoint signed for a tenant is also an entry
//! in `_system`, so removing a tenant, its newest entries or its
//! checkpoints contradicts another log, which must then be rewritten too.
//!
//! The entry: action [`CHECKPOINT_ACTION`], resource type
//! [`CHECKPOINT_RESOURCE`], resource id the tenant, and the signed note in
//! `metadata.note`.

use serde_json::{Map, Value};
use trailmark_core::{Envelope, TenantId};
use trailmark_log::{Checkpoint, Hash, Note};

/// The action of a `_system` entry that records a checkpoint.
pub const CHECKPOINT_ACTION: &str = "trailmark.checkpoint";
/// Its resource type; the resource id is the tenant.
pub const CHECKPOINT_RESOURCE: &str = "trailmark.tenant";

/// One checkpoint as `_system` recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointReference {
    /// The `_system` entry that holds it.
    pub system_seq: u64,
    pub tenant: TenantId,
    pub size: u64,
    pub root: Hash,
    /// The whole signed note.
    pub note: String,
}

impl CheckpointReference {
    /// The `metadata` of the `_system` event that records `note`.
    pub fn metadata(note: &str) -> Map<String, Value> {
        let mut meta = Map::new();
        meta.insert("note".into(), Value::String(note.to_owned()));
        meta
    }

    /// The reference an entry holds: `None` when it is not a checkpoint
    /// record, an error when it is one but cannot be read.
    pub fn from_entry(
        envelope: &Envelope,
        payload: &Map<String, Value>,
    ) -> Option<Result<Self, String>> {
        if envelope.action != CHECKPOINT_ACTION
            || envelope.resource_type.as_deref() != Some(CHECKPOINT_RESOURCE)
        {
            return None;
        }
        Some(Self::read(envelope, payload))
    }

    fn read(envelope: &Envelope, payload: &Map<String, Value>) -> Result<Self, String> {
        let bad = |why: &str| format!("a checkpoint record that cannot be read: {why}");
        let tenant = envelope
            .resource_id
            .as_deref()
            .and_then(|t| TenantId::from_stored(t).ok())
            .ok_or_else(|| bad("its resource id is not a tenant"))?;
        let note = payload
            .get("metadata")
            .and_then(|m| m.get("note"))
            .and_then(Value::as_str)
            .ok_or_else(|| bad("metadata.note is missing"))?;
        let parsed = Note::parse(note.as_bytes()).map_err(|e| bad(&e.to_string()))?;
        let checkpoint = Checkpoint::parse_text(parsed.text()).map_err(|e| bad(&e.to_string()))?;
        Ok(Self {
            system_seq: envelope.seq.get(),
            tenant,
            size: checkpoint.size().get(),
            root: *checkpoint.root(),
            note: note.to_owned(),
        })
    }
}
