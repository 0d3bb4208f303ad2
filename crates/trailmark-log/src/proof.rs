//! Building roots and proofs from complete nodes (RFC 9162 §2.1.3.1, §2.1.4.1).
//!
//! Each answer is planned first as a list of node ids, read from a
//! [`NodeSource`] in one batch, then assembled: O(log n) reads and hashes.

use crate::compact::fold;
use crate::tree::{range_nodes, split_point};
use crate::{Error, Hash, LeafIndex, NodeId, NodeSource, TreeSize};

/// Which nodes an answer needs, and how to fold them into its hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    ids: Vec<NodeId>,
    /// For each output hash, how many consecutive ids fold into it.
    widths: Vec<usize>,
}

impl Plan {
    fn new() -> Self {
        Self {
            ids: Vec::new(),
            widths: Vec::new(),
        }
    }

    fn push_range(&mut self, start: u64, end: u64) {
        let before = self.ids.len();
        range_nodes(start, end, &mut self.ids);
        self.widths.push(self.ids.len() - before);
    }

    /// The root of a tree of `size` leaves (one output hash).
    pub fn root(size: TreeSize) -> Self {
        let mut plan = Self::new();
        plan.push_range(0, size.get());
        plan
    }

    /// The inclusion proof of leaf `index` in a tree of `size` leaves, from
    /// the leaf's sibling up to the root's child.
    pub fn inclusion(index: LeafIndex, size: TreeSize) -> Result<Self, Error> {
        if !size.contains(index) {
            return Err(Error::IndexOutOfRange {
                index: index.get(),
                size: size.get(),
            });
        }
        let mut ranges = Vec::new();
        let (mut start, mut end) = (0, size.get());
        let leaf = index.get();
        while end - start > 1 {
            let mid = start + split_point(end - start);
            if leaf < mid {
                ranges.push((mid, end));
                end = mid;
            } else {
                ranges.push((start, mid));
                start = mid;
            }
        }
        let mut plan = Self::new();
        for (s, e) in ranges.into_iter().rev() {
            plan.push_range(s, e);
        }
        Ok(plan)
    }

    /// The consistency proof from a tree of `first` leaves to one of `second`
    /// leaves. Empty when `first` is 0 or equals `second`.
    pub fn consistency(first: TreeSize, second: TreeSize) -> Result<Self, Error> {
        let (old, new) = (first.get(), second.get());
        if old > new {
            return Err(Error::SizesOutOfOrder {
                first: old,
                second: new,
            });
        }
        let mut plan = Self::new();
        if old == 0 || old == new {
            return Ok(plan);
        }
        let mut ranges = Vec::new();
        let (mut start, mut end, mut m) = (0, new, old);
        // `whole` is RFC 9162's `b`: true while the range is a prefix that the
        // verifier already knows the root of.
        let mut whole = true;
        loop {
            let n = end - start;
            if m == n {
                if !whole {
                    ranges.push((start, end));
                }
                break;
            }
            let k = split_point(n);
            if m <= k {
                ranges.push((start + k, end));
                end = start + k;
            } else {
                ranges.push((start, start + k));
                start += k;
                m -= k;
                whole = false;
            }
        }
        for (s, e) in ranges.into_iter().rev() {
            plan.push_range(s, e);
        }
        Ok(plan)
    }

    /// The nodes to read, in order.
    pub fn node_ids(&self) -> &[NodeId] {
        &self.ids
    }

    /// Folds the hashes of [`Self::node_ids`] (same order) into the answer.
    pub fn assemble(&self, hashes: &[Hash]) -> Result<Vec<Hash>, Error> {
        if hashes.len() != self.ids.len() {
            return Err(Error::NodeCount {
                expected: self.ids.len(),
                got: hashes.len(),
            });
        }
        let mut out = Vec::with_capacity(self.widths.len());
        let mut at = 0;
        for &width in &self.widths {
            out.push(fold(&hashes[at..at + width]));
            at += width;
        }
        Ok(out)
    }

    /// Reads the planned nodes from `source` and assembles the answer.
    pub fn run<S: NodeSource>(&self, source: &S) -> Result<Vec<Hash>, S::Error> {
        let hashes = source.nodes(&self.ids)?;
        Ok(self.assemble(&hashes)?)
    }
}

/// The root of the tree of `size` leaves, read from `source`.
pub fn root_at<S: NodeSource>(source: &S, size: TreeSize) -> Result<Hash, S::Error> {
    let hashes = Plan::root(size).run(source)?;
    Ok(hashes.first().copied().unwrap_or_else(crate::empty_root))
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves.
pub fn inclusion_proof<S: NodeSource>(
    source: &S,
    index: LeafIndex,
    size: TreeSize,
) -> Result<Vec<Hash>, S::Error> {
    Plan::inclusion(index, size)?.run(source)
}

/// The consistency proof between trees of `first` and `second` leaves.
pub fn consistency_proof<S: NodeSource>(
    source: &S,
    first: TreeSize,
    second: TreeSize,
) -> Result<Vec<Hash>, S::Error> {
    Plan::consistency(first, second)?.run(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inclusion_plan_reads_few_nodes_even_for_huge_trees() {
        let size = TreeSize::new(10_000_000).unwrap();
        for index in [0, 1, 4_999_999, 9_999_999] {
            let plan = Plan::inclusion(LeafIndex::new(index).unwrap(), size).unwrap();
            assert!(
                plan.node_ids().len() <= 2 * 24,
                "{index}: {}",
                plan.node_ids().len()
            );
        }
    }

    #[test]
    fn consistency_plan_is_empty_from_zero_and_between_equal_sizes() {
        let s = |n| TreeSize::new(n).unwrap();
        assert!(Plan::consistency(s(0), s(9)).unwrap().node_ids().is_empty());
        assert!(Plan::consistency(s(9), s(9)).unwrap().node_ids().is_empty());
        assert_eq!(
            Plan::consistency(s(10), s(9)).unwrap_err(),
            Error::SizesOutOfOrder {
                first: 10,
                second: 9
            }
        );
    }

    #[test]
    fn inclusion_plan_rejects_an_index_outside_the_tree() {
        let err = Plan::inclusion(LeafIndex::new(3).unwrap(), TreeSize::new(3).unwrap());
        assert_eq!(
            err.unwrap_err(),
            Error::IndexOutOfRange { index: 3, size: 3 }
        );
    }
}
