//! Trailmark's domain, with no I/O: the audit event and its validation, the
//! envelope/payload split with its salted commitment, canonical JSON
//! (RFC 8785), and row diffs.
//!
//! Architecture invariant: nothing here reads a clock, a random number
//! generator, a file or a socket. Time, ids and salts come in as arguments,
//! so every rule is a pure function and is tested as one.

mod canonical;
mod capture_context;
mod columns;
mod diff;
mod envelope;
mod error;
mod event;
mod ids;
pub mod limits;
mod proxies;
mod strict_json;
mod timestamp;

pub use canonical::CanonicalJson;
pub use capture_context::CaptureContext;
pub use columns::{ColumnsOf, ContextColumns, IndexedColumns, StoredColumns, context_of_text};
pub use diff::{RecordState, Row, WHOLE_TYPE_ACTIONS, diff_rows};
pub use envelope::{
    ENVELOPE_VERSION, Envelope, EnvelopeContext, PAYLOAD_DOMAIN, PayloadCommitment, PayloadDigest,
    Salt, SealContext, Sealed,
};
pub use error::{Error, FieldError, pointer_of, told};
pub use event::{
    Actor, Change, Changes, Context, Event, Resource, changes_into_json, changes_to_json,
    is_format_char, path_join,
};
pub use ids::{ActorType, EventId, Outcome, Seq, TenantId};
pub use proxies::TrustedProxies;
pub use strict_json::parse_strict_json;
pub use timestamp::Timestamp;
