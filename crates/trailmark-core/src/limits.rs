//! The documented limits of an event (docs/FORMAT.md, "Limits").
//!
//! Lengths are in bytes of UTF-8. Every limit is checked by validation and
//! reported by field path; nothing is truncated silently.

/// `actor.id`, `context.request_id`, `context.session_id`, `context.impersonator`.
pub const MAX_ID_BYTES: usize = 256;
/// `resource.id` (a composite key may be a JSON array written as text).
pub const MAX_RESOURCE_ID_BYTES: usize = 512;
/// `action` and `resource.type`.
pub const MAX_NAME_BYTES: usize = 128;
/// `actor.name` and `resource.name`.
pub const MAX_DISPLAY_NAME_BYTES: usize = 512;
/// `reason`.
pub const MAX_REASON_BYTES: usize = 4096;
/// `context.user_agent`.
pub const MAX_USER_AGENT_BYTES: usize = 1024;
/// `context.source`.
pub const MAX_SOURCE_BYTES: usize = 64;
/// Keys of `changes`, `metadata` and `context`.
pub const MAX_KEY_BYTES: usize = 256;
/// Fields in `changes`.
pub const MAX_CHANGED_FIELDS: usize = 1000;
/// Keys in `context` beyond the named ones.
pub const MAX_EXTRA_CONTEXT_KEYS: usize = 32;
/// Nesting depth of any value inside `changes`, `context` or `metadata`
/// (`{"a":{"b":1}}` has depth 2).
pub const MAX_DEPTH: usize = 16;
/// The payload's canonical JSON (everything but the envelope).
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;
/// Integers must be exact in an IEEE 754 double (RFC 7493 I-JSON), since the
/// canonical form writes every number as one: |n| ≤ 2^53 − 1.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// How far after its receipt an event may say it `occurred_at`: clocks
/// that disagree by up to this much are tolerated; an event dated later is
/// refused by name. One dated in the future would otherwise stand in that
/// day's activity as though it happened then (written today, it reads as a
/// deletion at 3 a.m. next month) and in every "last N days" until then.
pub const MAX_AHEAD_MILLIS: i64 = 60 * 60 * 1000;

/// `occurred_at` ([`MAX_AHEAD_MILLIS`]) against the time it was received.
pub fn occurred_by(
    occurred_at: crate::Timestamp,
    received_at: crate::Timestamp,
) -> Result<(), String> {
    let ahead = occurred_at.unix_millis() - received_at.unix_millis();
    if ahead <= MAX_AHEAD_MILLIS {
        return Ok(());
    }
    Err(format!(
        "is {} s after it was received ({received_at}): an event may be dated at most {} s ahead of its receipt; fix the producer's clock, or leave occurred_at out (the receipt time)",
        // Rounded up: never said to be within the bound.
        (ahead + 999) / 1000,
        MAX_AHEAD_MILLIS / 1000
    ))
}

#[cfg(test)]
mod tests {
    use super::{MAX_AHEAD_MILLIS, occurred_by};
    use crate::Timestamp;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_unix_millis(ms).unwrap()
    }

    #[test]
    fn an_event_may_be_dated_up_to_an_hour_after_its_receipt_and_any_time_before() {
        let received = at(1_800_000_000_000);
        for ok in [0, 1_700_000_000_000, 1_800_000_000_000 + MAX_AHEAD_MILLIS] {
            assert_eq!(occurred_by(at(ok), received), Ok(()), "{ok}");
        }
        let late = occurred_by(at(1_800_000_000_000 + MAX_AHEAD_MILLIS + 1), received).unwrap_err();
        assert!(
            late.starts_with("is 3601 s after it was received (2027-01-15T08:00:00.000Z)"),
            "{late}"
        );
    }
}
