//! Integration tests of trailmark-log: one binary, one module per subject.

// A failed unwrap is a failed test, which is what a test should do.
#![allow(clippy::unwrap_used)]

mod corrupt;
mod cross_check;
mod fuzz;
mod known_answers;
mod notes;
mod receipts;
mod tiles;
mod vectors;

use trailmark_log::{Hash, LeafIndex, MemoryTree, TreeSize, leaf_hash};

/// The leaves of the RFC 6962 reference tree used by every public test suite.
pub(crate) const REFERENCE_LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

pub(crate) fn reference_tree(size: usize) -> MemoryTree {
    let mut tree = MemoryTree::new();
    for leaf in &REFERENCE_LEAVES[..size] {
        tree.push(leaf_hash(&hex::decode(leaf).unwrap())).unwrap();
    }
    tree
}

pub(crate) fn size(n: u64) -> TreeSize {
    TreeSize::new(n).unwrap()
}

pub(crate) fn index(i: u64) -> LeafIndex {
    LeafIndex::new(i).unwrap()
}

pub(crate) fn b64(text: &str) -> Hash {
    Hash::from_base64(text).unwrap()
}

pub(crate) fn hx(text: &str) -> Hash {
    Hash::from_hex(text).unwrap()
}
