//! A whole tree in memory: for tests, tools and benchmarks.

use crate::proof::{consistency_proof, inclusion_proof, root_at};
use crate::{CompactRange, Error, Hash, LeafIndex, NodeId, NodeSource, TreeSize};

/// Complete nodes held in memory, one vector per level.
///
/// A real source for tests, tools and benchmarks; stores keep their nodes on
/// disk instead.
#[derive(Clone, Debug, Default)]
pub struct MemoryNodes {
    levels: Vec<Vec<Hash>>,
}

impl MemoryNodes {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a complete node. Nodes of one level arrive in index order, as
    /// [`crate::CompactRange::append`] emits them.
    pub fn insert(&mut self, id: NodeId, hash: Hash) -> Result<(), Error> {
        let level = usize::from(id.level);
        if self.levels.len() <= level {
            self.levels.resize_with(level + 1, Vec::new);
        }
        let nodes = &mut self.levels[level];
        let expected = nodes.len() as u64;
        if id.index != expected {
            return Err(Error::NodeOutOfOrder { node: id, expected });
        }
        nodes.push(hash);
        Ok(())
    }

    /// The node, if it is complete.
    pub fn get(&self, id: NodeId) -> Option<Hash> {
        let index = usize::try_from(id.index).ok()?;
        self.levels.get(usize::from(id.level))?.get(index).copied()
    }

    /// Number of leaves (level-0 nodes) held.
    pub fn leaf_count(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }
}

impl NodeSource for MemoryNodes {
    type Error = Error;

    fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, Error> {
        ids.iter()
            .map(|&id| self.get(id).ok_or(Error::MissingNode(id)))
            .collect()
    }
}

/// A compact range plus every complete node: appends, roots and proofs for
/// any earlier size, all in memory.
#[derive(Clone, Debug, Default)]
pub struct MemoryTree {
    range: CompactRange,
    nodes: MemoryNodes,
}

impl MemoryTree {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a leaf hash (see [`crate::leaf_hash`]).
    pub fn push(&mut self, leaf: Hash) -> Result<(), Error> {
        let nodes = &mut self.nodes;
        let mut result = Ok(());
        self.range.append(leaf, |id, hash| {
            if result.is_ok() {
                result = nodes.insert(id, hash);
            }
        })?;
        result
    }

    pub fn size(&self) -> TreeSize {
        self.range.size()
    }

    /// The current root.
    pub fn root(&self) -> Hash {
        self.range.root()
    }

    /// The root the tree had at `size` (at most the current size).
    pub fn root_at(&self, size: TreeSize) -> Result<Hash, Error> {
        self.check_size(size)?;
        root_at(&self.nodes, size)
    }

    pub fn inclusion_proof(&self, index: LeafIndex, size: TreeSize) -> Result<Vec<Hash>, Error> {
        self.check_size(size)?;
        inclusion_proof(&self.nodes, index, size)
    }

    pub fn consistency_proof(&self, first: TreeSize, second: TreeSize) -> Result<Vec<Hash>, Error> {
        self.check_size(second)?;
        consistency_proof(&self.nodes, first, second)
    }

    pub fn nodes(&self) -> &MemoryNodes {
        &self.nodes
    }

    fn check_size(&self, size: TreeSize) -> Result<(), Error> {
        if size > self.size() {
            return Err(Error::SizesOutOfOrder {
                first: size.get(),
                second: self.size().get(),
            });
        }
        Ok(())
    }
}
