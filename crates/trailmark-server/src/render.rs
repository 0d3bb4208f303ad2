//! Stored entries as the API shows them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};
use trailmark_core::Envelope;
use trailmark_store::{StoreError, StoredEntry};

/// The event as a producer sent it, rebuilt from envelope and payload, with
/// its position and payload state.
pub fn event_json(entry: &StoredEntry) -> Result<Value, StoreError> {
    let env = entry.envelope()?;
    let empty = Map::new();
    let payload = entry.payload.as_ref().unwrap_or(&empty);
    let get = |key: &str| payload.get(key).cloned().unwrap_or(Value::Null);
    let resource = env
        .resource_type
        .as_ref()
        .map(|kind| json!({"type": kind, "id": env.resource_id, "name": get("resource_name")}));
    Ok(json!({
        "id": env.id.to_string(),
        "seq": env.seq.get(),
        "tenant": env.tenant.as_str(),
        "occurred_at": env.occurred_at.to_string(),
        "received_at": env.received_at.to_string(),
        "actor": {"id": env.actor_id, "type": env.actor_type.as_str(), "name": get("actor_name")},
        "action": env.action,
        "resource": resource,
        "outcome": env.outcome.as_str(),
        "reason": get("reason"),
        "changes": get("changes"),
        "context": get("context"),
        "metadata": get("metadata"),
        "state": entry.state().as_str(),
    }))
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
