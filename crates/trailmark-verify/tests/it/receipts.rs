//! Receipts: genuine ones pass; one changed byte anywhere fails.

use trailmark_log::{
    Checkpoint, LeafIndex, MemoryTree, Receipt, SignedCheckpoint, TreeSize, leaf_hash,
};
use trailmark_verify::verify_receipt;

use crate::{key, log};

fn receipts(n: u64) -> Vec<String> {
    let l = log("acme", n, &[]);
    let mut tree = MemoryTree::new();
    for r in &l.rows {
        tree.push(leaf_hash(&r.envelope)).unwrap();
    }
    let size = TreeSize::new(n).unwrap();
    let k = key("acme");
    let cp = SignedCheckpoint::sign(
        Checkpoint::new(k.name().as_str(), size, tree.root()).unwrap(),
        &k,
    )
    .unwrap();
    (0..n)
        .map(|i| {
            let index = LeafIndex::new(i).unwrap();
            let proof = tree.inclusion_proof(index, size).unwrap();
            Receipt::new(
                Some(l.rows[usize::try_from(i).unwrap()].envelope.clone()),
                index,
                proof,
                &cp,
            )
            .to_string()
        })
        .collect()
}

#[test]
fn twenty_genuine_receipts_pass_and_any_changed_byte_fails() {
    let keys = [key("acme").verifier()];
    for (i, receipt) in (0u64..).zip(receipts(20)) {
        let facts = verify_receipt(receipt.as_bytes(), &keys).unwrap();
        assert_eq!(facts.envelope.seq.get(), i);
        assert_eq!(facts.tree_size, 20);
        // Every byte position, changed to another printable byte.
        let bytes = receipt.as_bytes();
        for at in 0..bytes.len() {
            let mut bad = bytes.to_vec();
            bad[at] = if bad[at] == b'A' { b'B' } else { b'A' };
            assert!(
                verify_receipt(&bad, &keys).is_err(),
                "receipt {i} with byte {at} changed ({:?}) still verified",
                char::from(bytes[at])
            );
        }
    }
}

#[test]
fn a_receipt_needs_the_log_key() {
    let receipt = &receipts(3)[1];
    let other = key("globex").verifier();
    assert!(verify_receipt(receipt.as_bytes(), &[other]).is_err());
    assert!(verify_receipt(receipt.as_bytes(), &[]).is_err());
}
