//! What a verification found.

use std::fmt;

use trailmark_core::TenantId;
use trailmark_log::Hash;

/// Where a failure is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Where {
    /// One entry.
    Seq(u64),
    /// Entries `start..end` (end exclusive).
    Seqs(u64, u64),
    /// A checkpoint, by the size it signs.
    Checkpoint(u64),
    /// The tenant as a whole.
    Tenant,
}

/// One thing found wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub at: Where,
    pub message: String,
}

impl Failure {
    pub(crate) fn new(at: Where, message: impl Into<String>) -> Self {
        Self {
            at,
            message: message.into(),
        }
    }

    /// The first seq this failure names, if it names one.
    pub fn seq(&self) -> Option<u64> {
        match self.at {
            Where::Seq(n) | Where::Seqs(n, _) => Some(n),
            Where::Checkpoint(_) | Where::Tenant => None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Where::Seq(n) => write!(f, "seq {n}: {}", self.message),
            Where::Seqs(a, b) if b == a + 1 => write!(f, "seq {a}: {}", self.message),
            Where::Seqs(a, b) => write!(f, "seqs {a}..{}: {}", b - 1, self.message),
            Where::Checkpoint(size) => write!(f, "checkpoint at size {size}: {}", self.message),
            Where::Tenant => f.write_str(&self.message),
        }
    }
}

/// What one tenant's verification saw when it passed (or as far as it got).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub entries: u64,
    /// Entries whose payload a recorded erasure removed.
    pub erased: u64,
    /// Entries whose payload a recorded retention run removed.
    pub expired: u64,
    /// Checkpoints stored with the log.
    pub checkpoints: usize,
    /// Checkpoints from outside the store the log was held to (trusted
    /// files, monitor state, `_system` cross-references).
    pub pinned: usize,
    /// The root of the rebuilt tree (None when it could not be rebuilt).
    pub root: Option<Hash>,
    /// Entries after the largest signed size.
    pub unsigned_tail: u64,
}

/// The verdict on one tenant.
#[derive(Clone, Debug)]
pub struct Report {
    pub tenant: TenantId,
    pub summary: Summary,
    /// Every failure, in the order found, at most [`Report::MAX_FAILURES`].
    pub failures: Vec<Failure>,
    /// Failures found beyond the ones listed.
    pub more_failures: u64,
}

impl Report {
    /// How many failures a report lists at most (the rest are counted).
    pub const MAX_FAILURES: usize = 100;

    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }

    /// The first failure that names an entry, else the first failure.
    pub fn first(&self) -> Option<&Failure> {
        self.failures
            .iter()
            .find(|f| f.seq().is_some())
            .or_else(|| self.failures.first())
    }
}
