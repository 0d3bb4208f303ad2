//! The query columns a store keeps beside each entry, and the one rule that
//! derives them from the envelope and payload.
//!
//! Stores index these columns so filters and stats need not parse every
//! envelope; verifiers recompute them with the same rule and fail on any
//! difference, so editing a column (to hide an event from `?actor=` or to
//! fake `/v1/stats`) is as visible as editing the envelope.

use serde_json::{Map, Value};

use crate::Envelope;

/// What a store indexes of one entry. Every field is a function of the
/// envelope, except `ip` and `request_id`, which come from the payload (and
/// go with it when the payload is erased).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexedColumns {
    pub tenant: String,
    pub seq: u64,
    pub id: String,
    /// `occurred_at`, Unix milliseconds.
    pub occurred_at: i64,
    pub actor_id: String,
    pub action: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub outcome: String,
    pub ip: Option<String>,
    /// `context.request_id` of the payload: the request that made it.
    pub request_id: Option<String>,
}

impl IndexedColumns {
    /// The columns of an entry with this envelope and payload (`None` once
    /// erased).
    pub fn derive(envelope: &Envelope, payload: Option<&Map<String, Value>>) -> Self {
        Self {
            tenant: envelope.tenant.as_str().to_owned(),
            seq: envelope.seq.get(),
            id: envelope.id.to_string(),
            occurred_at: envelope.occurred_at.unix_millis(),
            actor_id: envelope.actor_id.clone(),
            action: envelope.action.clone(),
            resource_type: envelope.resource_type.clone(),
            resource_id: envelope.resource_id.clone(),
            outcome: envelope.outcome.as_str().to_owned(),
            ip: payload.and_then(ip_of),
            request_id: payload.and_then(request_id_of),
        }
    }

    /// The names of the columns that differ from `expected`, in table order.
    pub fn differences(&self, expected: &Self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut check = |same: bool, name| {
            if !same {
                out.push(name);
            }
        };
        check(self.tenant == expected.tenant, "tenant");
        check(self.seq == expected.seq, "seq");
        check(self.id == expected.id, "id");
        check(self.occurred_at == expected.occurred_at, "occurred_at");
        check(self.actor_id == expected.actor_id, "actor_id");
        check(self.action == expected.action, "action");
        check(
            self.resource_type == expected.resource_type,
            "resource_type",
        );
        check(self.resource_id == expected.resource_id, "resource_id");
        check(self.outcome == expected.outcome, "outcome");
        check(self.ip == expected.ip, "ip");
        check(self.request_id == expected.request_id, "request_id");
        out
    }
}

/// The request id a payload records (`context.request_id`).
pub fn request_id_of(payload: &Map<String, Value>) -> Option<String> {
    payload
        .get("context")?
        .get("request_id")?
        .as_str()
        .map(str::to_owned)
}

/// The client IP a payload records (`context.ip`), as the event wrote it.
pub fn ip_of(payload: &Map<String, Value>) -> Option<String> {
    payload
        .get("context")?
        .get("ip")?
        .as_str()
        .map(str::to_owned)
}
