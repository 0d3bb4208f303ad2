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
