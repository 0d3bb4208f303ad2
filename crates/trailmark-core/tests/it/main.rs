//! Integration tests of trailmark-core: one binary, one module per subject.

// A failed unwrap is a failed test, which is what a test should do.
#![allow(clippy::unwrap_used)]

mod envelope;
mod properties;
mod validation;
mod vectors;

use serde_json::{Value, json};

/// The example event of DESIGN.md.
pub(crate) fn example_event() -> Value {
    json!({
      "id": "0192f0c2-5a1e-7c4b-9d10-6f1b2a3c4d5e",
      "occurred_at": "2026-11-23T10:15:00.123Z",
      "tenant": "acme",
      "actor": {"id": "42", "type": "user", "name": "alice@example.com"},
      "action": "update",
      "resource": {"type": "Customer", "id": "61", "name": "Acme Corp"},
      "outcome": "success",
      "reason": null,
      "changes": {"price": {"old": "19.99", "new": "24.99"}},
      "context": {"ip": "203.0.113.7", "user_agent": "Mozilla/5.0", "request_id": "r-8812",
                  "session_id": "s-1", "source": "api", "impersonator": null},
      "metadata": {"format": "pdf"}
    })
}
