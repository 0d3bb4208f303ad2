//! The one verifier of a Trailmark trail, pure and push-based.
//!
//! A caller reads a trail from wherever it lives (a data dir opened
//! read-only, a server's public API, a store inside the server) and pushes
//! it in: for each tenant, first every checkpoint (stored ones, trusted ones
//! from outside the box), then every entry in order. The verifier recomputes
//! everything the trail commits to and reports every failure by seq or
//! checkpoint size. It decides; callers only print.
//!
//! Architecture invariant: no I/O and no clock. The time a verification is
//! judged at comes in through [`Policy`].

mod failure;
mod follow;
mod keys;
mod receipt;
mod reference;
mod removal;
mod tenant;
mod trail;
pub mod witness;

pub use failure::{Failure, Report, Summary, Where};
pub use follow::{Divergence, follow, follow_rotated};
pub use keys::{KeyHistory, KeyRecordView, ScopedKey, Transition, system_key, system_key_name};
pub use receipt::{ReceiptFacts, verify_receipt, verify_witnessed_receipt};
pub use reference::{CHECKPOINT_ACTION, CHECKPOINT_RESOURCE, CheckpointReference};
pub use removal::{
    ERASURE_ACTION, EXPIRY_ACTION, MAX_RANGES, RemovalKind, RemovalRecord, Removals, RemovedBy,
};
pub use tenant::{Entry, OwnedEntry, Policy, TenantVerifier};
pub use trail::Trail;
