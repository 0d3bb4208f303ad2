//! Every valid proof, corrupted in every way a forger or a bug might: each
//! corruption must be rejected.

use trailmark_log::{Hash, MemoryTree, NodeId, leaf_hash, verify_consistency, verify_inclusion};

use crate::{index, reference_tree, size};

fn flip_bit(h: &Hash, bit: usize) -> Hash {
    let mut bytes = *h.as_bytes();
    bytes[bit / 8] ^= 1 << (bit % 8);
    Hash::from_bytes(bytes)
}

/// Proof variants: every element with one flipped bit, every element
/// dropped, an extra hash before and after, and the proof truncated to
/// nothing. None equals the original.
fn corrupted_paths(proof: &[Hash]) -> Vec<(String, Vec<Hash>)> {
    let extra = leaf_hash(b"extra");
    let mut out = Vec::new();
    for i in 0..proof.len() {
        for bit in [0, 77, 255] {
            let mut p = proof.to_vec();
            p[i] = flip_bit(&p[i], bit);
            out.push((format!("bit {bit} of hash {i} flipped"), p));
        }
        let mut p = proof.to_vec();
        p.remove(i);
        out.push((format!("hash {i} dropped"), p));
    }
    let mut before = vec![extra];
    before.extend_from_slice(proof);
    out.push(("extra hash before".into(), before));
    let mut after = proof.to_vec();
    after.push(extra);
    out.push(("extra hash after".into(), after));
    if !proof.is_empty() {
        out.push(("empty proof".into(), Vec::new()));
    }
    out
}

fn assert_inclusion_corruptions_fail(tree: &MemoryTree, leaf: u64, n: u64) {
    let proof = tree.inclusion_proof(index(leaf), size(n)).unwrap();
    let root = tree.root_at(size(n)).unwrap();
    let leaf_h = tree.nodes().get(NodeId::new(0, leaf)).unwrap();
    verify_inclusion(&leaf_h, index(leaf), size(n), &proof, &root).unwrap();

    for (what, bad) in corrupted_paths(&proof) {
        assert!(
            verify_inclusion(&leaf_h, index(leaf), size(n), &bad, &root).is_err(),
            "leaf {leaf} in {n}: {what} was accepted"
        );
    }
    let mut wrong_indexes = vec![leaf + 1, leaf ^ 2, n, n + 5];
    if leaf > 0 {
        wrong_indexes.push(leaf - 1);
    }
    for wrong in wrong_indexes.into_iter().filter(|&w| w != leaf) {
        assert!(
            verify_inclusion(&leaf_h, index(wrong), size(n), &proof, &root).is_err(),
            "leaf {leaf} in {n}: accepted at wrong index {wrong}"
        );
    }
    for wrong in [n * 2, n / 2, 0] {
        assert!(
            verify_inclusion(&leaf_h, index(leaf), size(wrong), &proof, &root).is_err(),
            "leaf {leaf} in {n}: accepted with wrong size {wrong}"
        );
    }
    let other_leaf = flip_bit(&leaf_h, 3);
    assert!(verify_inclusion(&other_leaf, index(leaf), size(n), &proof, &root).is_err());
    let other_root = flip_bit(&root, 200);
    assert!(verify_inclusion(&leaf_h, index(leaf), size(n), &proof, &other_root).is_err());
}

fn assert_consistency_corruptions_fail(tree: &MemoryTree, m: u64, n: u64) {
    let proof = tree.consistency_proof(size(m), size(n)).unwrap();
    let (r1, r2) = (
        tree.root_at(size(m)).unwrap(),
        tree.root_at(size(n)).unwrap(),
    );
    verify_consistency(size(m), size(n), &proof, &r1, &r2).unwrap();

    for (what, bad) in corrupted_paths(&proof) {
        assert!(
            verify_consistency(size(m), size(n), &bad, &r1, &r2).is_err(),
            "{m} -> {n}: {what} was accepted"
        );
    }
    let mut wrong_firsts = vec![m + 1, m ^ 2];
    if m > 0 {
        wrong_firsts.push(m - 1);
    }
    for wrong in wrong_firsts.into_iter().filter(|&w| w != m) {
        assert!(
            verify_consistency(size(wrong), size(n), &proof, &r1, &r2).is_err(),
            "{m} -> {n}: accepted with first size {wrong}"
        );
    }
    for wrong in [n * 2, n / 2].into_iter().filter(|&w| w != n) {
        assert!(
            verify_consistency(size(m), size(wrong), &proof, &r1, &r2).is_err(),
            "{m} -> {n}: accepted with second size {wrong}"
        );
    }
    if r1 != r2 {
        assert!(
            verify_consistency(size(m), size(n), &proof, &r2, &r1).is_err(),
            "swapped roots"
        );
    }
    assert!(verify_consistency(size(m), size(n), &proof, &flip_bit(&r1, 9), &r2).is_err());
    assert!(verify_consistency(size(m), size(n), &proof, &r1, &flip_bit(&r2, 9)).is_err());
}

#[test]
fn corrupted_inclusion_proofs_over_the_reference_tree_are_rejected() {
    let tree = reference_tree(8);
    for n in 1..=8 {
        for leaf in 0..n {
            assert_inclusion_corruptions_fail(&tree, leaf, n);
        }
    }
}

#[test]
fn corrupted_consistency_proofs_over_the_reference_tree_are_rejected() {
    let tree = reference_tree(8);
    for n in 1..=8 {
        for m in 1..n {
            assert_consistency_corruptions_fail(&tree, m, n);
        }
    }
}

#[test]
fn corrupted_proofs_in_a_tree_across_two_tile_boundaries_are_rejected() {
    let mut tree = MemoryTree::new();
    for i in 0u32..600 {
        tree.push(leaf_hash(&i.to_le_bytes())).unwrap();
    }
    for n in [255, 256, 257, 511, 512, 513, 600] {
        for leaf in [0, 1, 128, 254, n / 2, n - 1] {
            assert_inclusion_corruptions_fail(&tree, leaf, n);
        }
        for m in [1, 2, 3, 200, 255, 256, 257, n - 1] {
            if m < n {
                assert_consistency_corruptions_fail(&tree, m, n);
            }
        }
    }
}
