//! The append structure: the compact range `[0, size)`.

use crate::hash::{empty_root, node_hash};
use crate::tree::range_nodes;
use crate::{Error, Hash, NodeId, NodeSource, TreeSize};

/// The right edge of the tree: one hash per set bit of `size`, the complete
/// subtrees that together cover every leaf, largest first.
///
/// This is all a writer keeps in memory — O(log n) hashes — to append leaves
/// and compute the current root. Each append reports the complete nodes it
/// creates, so a store can persist them and later serve any proof.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CompactRange {
    size: u64,
    hashes: Vec<Hash>,
}

impl CompactRange {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The nodes to read to rebuild the compact range of a tree of `size`.
    pub fn node_ids(size: TreeSize) -> Vec<NodeId> {
        let mut ids = Vec::new();
        range_nodes(0, size.get(), &mut ids);
        ids
    }

    /// Reassembles a compact range from the hashes of [`Self::node_ids`].
    pub fn from_hashes(size: TreeSize, hashes: Vec<Hash>) -> Result<Self, Error> {
        let expected = size.get().count_ones() as usize;
        if hashes.len() != expected {
            return Err(Error::CompactRangeShape {
                size: size.get(),
                expected,
                got: hashes.len(),
            });
        }
        Ok(Self {
            size: size.get(),
            hashes,
        })
    }

    /// Rebuilds the compact range of a tree of `size` from stored nodes:
    /// O(log n) node reads in one batch.
    pub fn load<S: NodeSource>(size: TreeSize, source: &S) -> Result<Self, S::Error> {
        let ids = Self::node_ids(size);
        let hashes = source.nodes(&ids)?;
        if hashes.len() != ids.len() {
            return Err(Error::NodeCount {
                expected: ids.len(),
                got: hashes.len(),
            }
            .into());
        }
        Ok(Self::from_hashes(size, hashes)?)
    }

    pub fn size(&self) -> TreeSize {
        TreeSize::new(self.size).unwrap_or(TreeSize::ZERO)
    }

    /// The complete subtrees covering `[0, size)`, largest first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Appends one leaf hash. `emit` is called with every complete node this
    /// creates, the leaf itself first, then each parent up to the highest.
    pub fn append(&mut self, leaf: Hash, mut emit: impl FnMut(NodeId, Hash)) -> Result<(), Error> {
        if self.size >= crate::tree::MAX_TREE_SIZE {
            return Err(Error::SizeTooLarge {
                size: self.size + 1,
            });
        }
        let mut index = self.size;
        let mut level = 0u8;
        let mut hash = leaf;
        emit(NodeId::new(level, index), hash);
        while index & 1 == 1 {
            // A set low bit means a complete left sibling waits on the stack.
            let left = self.hashes.pop().ok_or(Error::CompactRangeShape {
                size: self.size,
                expected: self.size.count_ones() as usize,
                got: 0,
            })?;
            hash = node_hash(&left, &hash);
            index >>= 1;
            level += 1;
            emit(NodeId::new(level, index), hash);
        }
        self.hashes.push(hash);
        self.size += 1;
        Ok(())
    }

    /// The RFC 9162 root of the current tree: the right fold of the range.
    pub fn root(&self) -> Hash {
        fold(&self.hashes)
    }
}

/// The hash of a range from its complete nodes, largest first:
/// `node(h0, node(h1, … node(h[n-2], h[n-1])))`. Empty gives the empty root.
pub(crate) fn fold(hashes: &[Hash]) -> Hash {
    let mut iter = hashes.iter().rev();
    let Some(last) = iter.next() else {
        return empty_root();
    };
    iter.fold(*last, |acc, left| node_hash(left, &acc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryNodes, leaf_hash};

    #[test]
    fn append_emits_every_complete_node_once() {
        let mut range = CompactRange::new();
        let mut emitted = Vec::new();
        for i in 0u32..8 {
            range
                .append(leaf_hash(&i.to_be_bytes()), |id, _| emitted.push(id))
                .unwrap();
        }
        // 8 leaves, 4 + 2 + 1 parents.
        assert_eq!(emitted.len(), 15);
        assert_eq!(emitted.last(), Some(&NodeId::new(3, 0)));
        assert_eq!(range.hashes().len(), 1);
    }

    #[test]
    fn load_rebuilds_the_same_range_from_nodes() {
        let mut range = CompactRange::new();
        let mut nodes = MemoryNodes::new();
        for i in 0u32..1000 {
            range
                .append(leaf_hash(&i.to_be_bytes()), |id, h| {
                    nodes.insert(id, h).unwrap();
                })
                .unwrap();
            let loaded = CompactRange::load(range.size(), &nodes).unwrap();
            assert_eq!(loaded, range);
        }
    }

    #[test]
    fn from_hashes_rejects_the_wrong_number_of_hashes() {
        let size = TreeSize::new(7).unwrap();
        let err = CompactRange::from_hashes(size, vec![leaf_hash(b"")]).unwrap_err();
        assert_eq!(
            err,
            Error::CompactRangeShape {
                size: 7,
                expected: 3,
                got: 1
            }
        );
    }
}
