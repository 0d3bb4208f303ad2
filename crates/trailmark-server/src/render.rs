//! Stored entries as the API shows them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use trailmark_core::Envelope;
use trailmark_store::{StoreError, StoredEntry};

/// The event as a producer sent it, rebuilt from envelope and payload, with
/// its position and payload state (as JSON: [`crate::wire::EventOut`]).
pub fn event_json(entry: &StoredEntry) -> Result<Value, StoreError> {
    let event = crate::wire::EventOut::of(entry)?;
    serde_json::to_value(event).map_err(|e| StoreError::Unreadable(e.to_string()))
}

/// The entry as verifiers need it: exact envelope bytes, leaf hash, payload
/// and salt, and the query columns stored beside it (which filters and
/// stats use, so a verifier checks them too).
pub fn entry_json(entry: &StoredEntry, envelope: &Envelope) -> Value {
    let c = &entry.columns;
    json!({
        "columns": {
            "tenant": c.tenant, "seq": c.seq, "id": c.id, "occurred_at": c.occurred_at,
            "actor_id": c.actor_id, "action": c.action, "resource_type": c.resource_type,
            "resource_id": c.resource_id, "outcome": c.outcome, "ip": c.ip,
            "request_id": c.request_id,
        },
        "seq": envelope.seq.get(),
        "tenant": envelope.tenant.as_str(),
        "envelope": String::from_utf8_lossy(&entry.envelope_bytes),
        "leaf_hash": BASE64.encode(entry.leaf_hash.as_bytes()),
        "payload": entry.payload,
        "salt": entry.salt.as_ref().map(trailmark_core::Salt::to_hex),
        "state": entry.state().as_str(),
    })
}
