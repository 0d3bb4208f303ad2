//! Stored entries as the API shows them.

use serde_json::Value;
use trailmark_store::{StoreError, StoredEntry};

/// The event as a producer sent it, rebuilt from envelope and payload, with
/// its position and payload state (as JSON: [`crate::wire::EventOut`]).
pub fn event_json(entry: &StoredEntry) -> Result<Value, StoreError> {
    let event = crate::wire::EventOut::of(entry)?;
    serde_json::to_value(event).map_err(|e| StoreError::Unreadable(e.to_string()))
}
