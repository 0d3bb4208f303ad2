//! Stored entries as the API shows them.

use serde_json::Value;
use trailmark_store::{Removal, StoreError, StoredEntry};
use trailmark_wire::{
    ActionCount, ActorCount, ActorOut, ColumnsOut, DayCount, EntryOut, EntryRef, EventOut, KeyOut,
    OutcomeCount, RemovalOut, ResourceOut, ResourceTypeCount, StatsOut,
};

/// The event as a producer sent it, rebuilt from envelope and payload, with
/// its position and payload state (as JSON: [`crate::wire::EventOut`]).
pub fn event_json(entry: &StoredEntry) -> Result<Value, StoreError> {
    let event = event_out(entry)?;
    serde_json::to_value(event).map_err(|e| StoreError::Unreadable(e.to_string()))
}

/// The event of a stored entry, as the API shows it.
pub fn event_out(entry: &StoredEntry) -> Result<EventOut, StoreError> {
    let env = entry.envelope()?;
    let get = |key: &str| {
        entry
            .payload
            .as_ref()
            .and_then(|p| p.get(key))
            .cloned()
            .unwrap_or(Value::Null)
    };
    Ok(EventOut {
        action: env.action.clone(),
        actor: ActorOut {
            id: env.actor_id.clone(),
            name: get("actor_name"),
            kind: env.actor_type.as_str().to_owned(),
        },
        // Stored changes are always field -> {old, new} (checked when the
        // event was taken): any other shape is damage, never shown as none.
        changes: serde_json::from_value(get("changes"))
            .map_err(|e| StoreError::Unreadable(format!("the payload's changes: {e}")))?,
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
        removal: entry.removed.map(|r| RemovalOut {
            kind: match r {
                Removal::Erased { .. } => "erasure",
                Removal::Expired { .. } => "expiry",
            }
            .to_owned(),
            record: EntryRef {
                tenant: trailmark_core::TenantId::system().to_string(),
                seq: r.record(),
            },
            reason: None,
        }),
        tenant: env.tenant.as_str().to_owned(),
    })
}

/// An entry as verifiers read it (`GET /v1/entries`).
pub fn entry_out(entry: &StoredEntry, envelope: &trailmark_core::Envelope) -> EntryOut {
    use base64::Engine as _;
    let c = &entry.columns;
    EntryOut {
        columns: ColumnsOut {
            action: c.action.clone(),
            actor_id: c.actor_id.clone(),
            id: c.id.clone(),
            ip: c.ip.clone(),
            occurred_at: c.occurred_at,
            outcome: c.outcome.clone(),
            request_id: c.request_id.clone(),
            resource_id: c.resource_id.clone(),
            resource_type: c.resource_type.clone(),
            seq: c.seq,
            tenant: c.tenant.clone(),
        },
        envelope: String::from_utf8_lossy(&entry.envelope_bytes).into_owned(),
        leaf_hash: base64::engine::general_purpose::STANDARD.encode(entry.leaf_hash.as_bytes()),
        payload: entry.payload.clone(),
        salt: entry.salt.as_ref().map(trailmark_core::Salt::to_hex),
        seq: envelope.seq.get(),
        state: entry.state().as_str().to_owned(),
        tenant: envelope.tenant.as_str().to_owned(),
    }
}

/// Counts as `GET /v1/stats` answers them.
pub fn stats_out(s: trailmark_store::Stats) -> StatsOut {
    StatsOut {
        by_action: s
            .by_action
            .into_iter()
            .map(|(action, count)| ActionCount { action, count })
            .collect(),
        by_actor: s
            .by_actor
            .into_iter()
            .map(|(actor, count)| ActorCount { actor, count })
            .collect(),
        by_outcome: s
            .by_outcome
            .into_iter()
            .map(|(outcome, count)| OutcomeCount { count, outcome })
            .collect(),
        by_resource_type: s
            .by_resource_type
            .into_iter()
            .map(|(resource_type, count)| ResourceTypeCount {
                count,
                resource_type,
            })
            .collect(),
        per_day: s
            .per_day
            .into_iter()
            .map(|(day, count)| DayCount { count, day })
            .collect(),
        total: s.total,
    }
}

/// An API key as listed (never its secret).
pub fn key_out(k: &trailmark_store::KeyRecord) -> KeyOut {
    KeyOut {
        created_at: k.created_at.to_string(),
        id: k.id.clone(),
        name: k.name.clone(),
        revoked_at: k.revoked_at.map(|t| t.to_string()),
        scopes: k.scopes.to_text(),
        tenant: k.tenant.as_ref().map(|t| t.as_str().to_owned()),
    }
}

/// A stored entry as the verifier takes it: the stored bytes as they are,
/// with the store's columns and removal marker.
pub fn entry_of(raw: trailmark_store::RawEntryRef<'_>) -> trailmark_verify::Entry<'_> {
    trailmark_verify::Entry {
        envelope: raw.envelope_bytes,
        stored_leaf_hash: Some(raw.leaf_hash),
        payload: raw.payload_text,
        salt: raw.salt,
        columns: Some(raw.columns),
        removed: removed_by(raw.removed),
    }
}

/// What a stored entry's removal marker says, for the verifier.
pub fn removed_by(removed: Option<Removal>) -> Option<trailmark_verify::RemovedBy> {
    removed.map(|r| trailmark_verify::RemovedBy {
        kind: match r {
            Removal::Erased { .. } => trailmark_verify::RemovalKind::Erased,
            Removal::Expired { .. } => trailmark_verify::RemovalKind::Expired,
        },
        record: r.record(),
    })
}
