//! Positions in the tree: sizes, leaf indexes and complete nodes.

use std::fmt;

/// The number of leaves in a tree. Every size from 0 up to 2^63 is valid.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TreeSize(u64);

/// The largest tree this crate handles: 2^63 leaves, so that every index and
/// every node position fits in a `u64` without overflow.
pub const MAX_TREE_SIZE: u64 = 1 << 63;

impl TreeSize {
    pub const ZERO: Self = Self(0);

    /// A size; `None` above [`MAX_TREE_SIZE`].
    pub const fn new(size: u64) -> Option<Self> {
        if size <= MAX_TREE_SIZE {
            Some(Self(size))
        } else {
            None
        }
    }

    pub const fn get(self) -> u64 {
        self.0
    }

    /// True when `index` names a leaf of a tree of this size.
    pub const fn contains(self, index: LeafIndex) -> bool {
        index.0 < self.0
    }
}

impl fmt::Debug for TreeSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TreeSize({})", self.0)
    }
}

impl fmt::Display for TreeSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The 0-based position of a leaf. For Trailmark, the entry's `seq`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeafIndex(u64);

impl LeafIndex {
    /// An index; `None` at or above [`MAX_TREE_SIZE`].
    pub const fn new(index: u64) -> Option<Self> {
        if index < MAX_TREE_SIZE {
            Some(Self(index))
        } else {
            None
        }
    }

    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for LeafIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LeafIndex({})", self.0)
    }
}

impl fmt::Display for LeafIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A complete (perfect) subtree: at `level` L and `index` I it covers the
/// leaves `[I * 2^L, (I + 1) * 2^L)`. Level 0 nodes are leaf hashes.
///
/// Complete nodes never change once every leaf below them exists, which is
/// why they are what stores persist (the C2SP tlog-tiles "stored hashes").
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct NodeId {
    pub level: u8,
    pub index: u64,
}

impl NodeId {
    pub const fn new(level: u8, index: u64) -> Self {
        Self { level, index }
    }

    /// The first leaf this node covers.
    pub const fn first_leaf(self) -> u64 {
        self.index << self.level
    }

    /// One past the last leaf this node covers.
    pub const fn end_leaf(self) -> u64 {
        (self.index + 1) << self.level
    }
}

/// The largest power of two strictly smaller than `n` (`n >= 2`): where
/// RFC 9162 splits a tree of `n` leaves.
pub(crate) const fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (n - 1).ilog2()
}

/// The complete nodes whose right fold is the hash of leaves `[start, end)`,
/// largest first, appended to `out`.
///
/// Valid for every range the RFC 9162 recursion produces: `start` is a
/// multiple of the largest power of two not above `end - start`.
pub(crate) fn range_nodes(start: u64, end: u64, out: &mut Vec<NodeId>) {
    debug_assert!(start <= end);
    let mut pos = start;
    let mut remaining = end - start;
    while remaining > 0 {
        let level = remaining.ilog2();
        debug_assert_eq!(
            pos % (1 << level),
            0,
            "range [{start}, {end}) is not RFC 9162 aligned"
        );
        #[allow(clippy::cast_possible_truncation)] // level < 64
        out.push(NodeId::new(level as u8, pos >> level));
        pos += 1 << level;
        remaining -= 1 << level;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_point_is_largest_power_of_two_below() {
        assert_eq!(split_point(2), 1);
        assert_eq!(split_point(3), 2);
        assert_eq!(split_point(4), 2);
        assert_eq!(split_point(5), 4);
        assert_eq!(split_point(8), 4);
        assert_eq!(split_point(9), 8);
        assert_eq!(split_point(MAX_TREE_SIZE), MAX_TREE_SIZE / 2);
    }

    #[test]
    fn ranges_decompose_into_complete_nodes_largest_first() {
        let mut out = Vec::new();
        range_nodes(0, 13, &mut out);
        assert_eq!(
            out,
            [NodeId::new(3, 0), NodeId::new(2, 2), NodeId::new(0, 12)]
        );
        out.clear();
        range_nodes(8, 15, &mut out);
        assert_eq!(
            out,
            [NodeId::new(2, 2), NodeId::new(1, 6), NodeId::new(0, 14)]
        );
        out.clear();
        range_nodes(5, 5, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn sizes_and_indexes_are_bounded() {
        assert!(TreeSize::new(MAX_TREE_SIZE).is_some());
        assert!(TreeSize::new(MAX_TREE_SIZE + 1).is_none());
        assert!(LeafIndex::new(MAX_TREE_SIZE - 1).is_some());
        assert!(LeafIndex::new(MAX_TREE_SIZE).is_none());
        let size = TreeSize::new(3).unwrap();
        assert!(size.contains(LeafIndex::new(2).unwrap()));
        assert!(!size.contains(LeafIndex::new(3).unwrap()));
    }
}
