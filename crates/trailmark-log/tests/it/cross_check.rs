//! Our tree against two independent implementations on random trees: roots,
//! inclusion proofs and consistency proofs for every pair of sizes up to 300
//! (across the 256-leaf tile boundary), each implementation verifying the
//! other's proofs.

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use ct_merkle::{ConsistencyProof, InclusionProof, RootHash};
use proptest::prelude::*;
use sha2_11::Sha256;
use trailmark_log::{
    CompactRange, Hash, MemoryNodes, MemoryTree, NodeId, leaf_hash, verify_consistency,
    verify_inclusion,
};

use crate::{index, size};

const MAX_SIZE: usize = 300;

/// `tlog_tiles` reads our stored nodes through its own index scheme.
pub(crate) struct TlogReader<'a>(pub(crate) &'a MemoryNodes);

impl tlog_tiles::HashReader for TlogReader<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|&i| {
                let (level, n) = tlog_tiles::split_stored_hash_index(i);
                self.0
                    .get(NodeId::new(level, n))
                    .map(|h| tlog_tiles::Hash(*h.as_bytes()))
                    .ok_or(tlog_tiles::Error::IndexesNotInTree)
            })
            .collect()
    }
}

fn to_tlog(h: &Hash) -> tlog_tiles::Hash {
    tlog_tiles::Hash(*h.as_bytes())
}

fn from_tlog(h: &tlog_tiles::Hash) -> Hash {
    Hash::from_bytes(h.0)
}

fn ct_root(tree: &MemoryBackedTree<Sha256, Vec<u8>>) -> Hash {
    Hash::from_slice(tree.root().as_bytes()).unwrap()
}

fn ct_hashes(bytes: &[u8]) -> Vec<Hash> {
    bytes
        .chunks(32)
        .map(|c| Hash::from_slice(c).unwrap())
        .collect()
}

fn flatten(proof: &[Hash]) -> Vec<u8> {
    proof.iter().flat_map(|h| h.as_bytes().to_vec()).collect()
}

type CtTree = MemoryBackedTree<Sha256, Vec<u8>>;

fn at(i: u64) -> usize {
    usize::try_from(i).unwrap()
}

/// Inclusion proofs of every leaf at the current size `n`, three ways.
fn check_inclusion(ours: &MemoryTree, ct: &CtTree, leaves: &[Vec<u8>], n: u64) {
    let root = ours.root();
    for i in 0..n {
        let proof = ours.inclusion_proof(index(i), size(n)).unwrap();
        let theirs = ct.prove_inclusion(at(i));
        assert_eq!(
            ct_hashes(theirs.as_bytes()),
            proof,
            "inclusion {i} in {n} vs ct-merkle"
        );
        let tlog = tlog_tiles::prove_record(n, i, &TlogReader(ours.nodes())).unwrap();
        let tlog: Vec<_> = tlog.iter().map(from_tlog).collect();
        assert_eq!(tlog, proof, "inclusion {i} in {n} vs tlog_tiles");
        verify_inclusion(&leaf_hash(&leaves[at(i)]), index(i), size(n), &proof, &root).unwrap();
        let as_ct = InclusionProof::<Sha256>::from_bytes(flatten(&proof));
        ct.root()
            .verify_inclusion(&leaves[at(i)], i, &as_ct)
            .unwrap();
    }
}

/// Consistency proofs from every earlier size to the current size `n`.
fn check_consistency(ours: &MemoryTree, ct: &CtTree, roots: &[Hash], n: u64) {
    let root = ours.root();
    for m in 0..n {
        let proof = ours.consistency_proof(size(m), size(n)).unwrap();
        verify_consistency(size(m), size(n), &proof, &roots[at(m)], &root).unwrap();
        if m == 0 {
            assert!(proof.is_empty());
            continue;
        }
        let theirs = ct.prove_consistency(at(n - m));
        assert_eq!(
            ct_hashes(theirs.as_bytes()),
            proof,
            "consistency {m} -> {n} vs ct-merkle"
        );
        let tlog = tlog_tiles::prove_tree(n, m, &TlogReader(ours.nodes())).unwrap();
        tlog_tiles::check_tree(&tlog, n, to_tlog(&root), m, to_tlog(&roots[at(m)])).unwrap();
        let tlog: Vec<_> = tlog.iter().map(from_tlog).collect();
        assert_eq!(tlog, proof, "consistency {m} -> {n} vs tlog_tiles");
        let old = RootHash::<Sha256>::new((*roots[at(m)].as_bytes()).into(), m);
        let as_ct = ConsistencyProof::<Sha256>::try_from_bytes(flatten(&proof)).unwrap();
        ct.root().verify_consistency(&old, &as_ct).unwrap();
    }
}

fn check_against_peers(leaves: &[Vec<u8>]) {
    let mut ours = MemoryTree::new();
    let mut ct = CtTree::new();
    let mut roots = vec![ours.root()];
    let mut tlog_stored = Vec::new();

    for (n, data) in (1u64..).zip(leaves) {
        let leaf = leaf_hash(data);
        ours.push(leaf).unwrap();
        ct.push(data.clone());
        // tlog_tiles computes the hashes to store for each record; they must
        // be exactly the complete nodes our compact range emitted.
        let reader = TlogReader(ours.nodes());
        tlog_stored.extend(
            tlog_tiles::stored_hashes_for_record_hash(n - 1, to_tlog(&leaf), &reader).unwrap(),
        );
        let root = ours.root();
        roots.push(root);
        assert_eq!(ct_root(&ct), root, "ct-merkle root at size {n}");
        let tlog_root = tlog_tiles::tree_hash(n, &reader).unwrap();
        assert_eq!(from_tlog(&tlog_root), root, "tlog_tiles root at size {n}");
        let reloaded = CompactRange::load(size(n), ours.nodes()).unwrap();
        assert_eq!(reloaded.root(), root, "compact range reloaded at size {n}");
        check_inclusion(&ours, &ct, leaves, n);
        check_consistency(&ours, &ct, &roots, n);
    }

    // Roots of old sizes, computed from the final tree, match those seen then.
    let n = leaves.len() as u64;
    for m in 0..=n {
        assert_eq!(ours.root_at(size(m)).unwrap(), roots[at(m)]);
    }
    // Every node tlog_tiles would store, we stored, in the same order.
    let mut ours_in_tlog_order = Vec::new();
    for idx in 0..tlog_tiles::stored_hash_count(n) {
        let (level, i) = tlog_tiles::split_stored_hash_index(idx);
        ours_in_tlog_order.push(to_tlog(&ours.nodes().get(NodeId::new(level, i)).unwrap()));
    }
    assert_eq!(ours_in_tlog_order, tlog_stored);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3, ..ProptestConfig::default() })]

    #[test]
    fn trees_up_to_300_leaves_agree_with_ct_merkle_and_tlog_tiles(
        leaves in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..48), MAX_SIZE)
    ) {
        check_against_peers(&leaves);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn small_random_trees_agree_with_ct_merkle_and_tlog_tiles(
        leaves in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..16), 1..40)
    ) {
        check_against_peers(&leaves);
    }
}
