//! The storage boundary of Trailmark: the [`Store`] trait, the types that
//! cross it, and (feature `testkit`) the conformance suite every backend runs.
//!
//! A store owns sequencing: it assigns each tenant's `seq` inside its append
//! transaction, seals the events, extends the tree and persists its new
//! complete nodes in the same commit. That is what lets several servers share
//! one database later, and what makes "acknowledged" mean "durable".

mod error;
mod removal;
mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
mod types;

pub use error::{ErrorKind, StoreError};
pub use removal::{
    Hold, HoldScope, RemovalLock, RetentionPolicy, StoredHold, Target, Walk, WalkPage, Walked,
    governing,
};
pub use store::{Store, run_plan, run_plans};
pub use types::{
    Access, Appended, CheckpointRecord, CountBy, Cursor, EntryState, Exact, IndexerStatus,
    KeyRecord, NewEvent, Page, Plan, Query, RawEntry, RawEntryRef, RawPage, Read, Removal,
    Sameness, Scope, Scopes, Setting, SigningKeyRecord, Stats, StoredEntry, TenantHead,
    searchable_text, searchable_words, searchable_words_of_text,
};
