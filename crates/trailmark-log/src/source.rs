//! Where proofs get their hashes from.

use crate::{Error, Hash, NodeId};

/// A store of complete nodes, read in batches.
///
/// Every proof and root needs O(log n) nodes, asked for in one call so a
/// database-backed source can answer in one round trip.
pub trait NodeSource {
    /// The source's own error; it must be able to carry this crate's errors
    /// (a bad position, a missing node).
    type Error: From<Error>;

    /// The hashes of `ids`, in the same order. A node that does not exist is
    /// an error, never a made-up hash.
    fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, Self::Error>;
}

impl<S: NodeSource + ?Sized> NodeSource for &S {
    type Error = S::Error;

    fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, Self::Error> {
        (**self).nodes(ids)
    }
}
