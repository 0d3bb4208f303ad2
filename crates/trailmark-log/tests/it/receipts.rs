//! Receipts (C2SP tlog-proof): written, read back and checked offline.

use trailmark_log::{
    Checkpoint, Error, KeyName, LeafIndex, MemoryTree, Receipt, SignedCheckpoint, SigningKey,
    leaf_hash,
};

use crate::{index, size};

fn logged(n: u32) -> (MemoryTree, SignedCheckpoint, SigningKey) {
    let key = SigningKey::from_seed(KeyName::new("trailmark.local/acme").unwrap(), &[5; 32]);
    let mut tree = MemoryTree::new();
    for i in 0..n {
        tree.push(leaf_hash(format!("entry {i}").as_bytes()))
            .unwrap();
    }
    let cp = Checkpoint::new("trailmark.local/acme", tree.size(), tree.root()).unwrap();
    let signed = SignedCheckpoint::sign(cp, &key).unwrap();
    (tree, signed, key)
}

#[test]
fn a_receipt_round_trips_and_verifies_offline() {
    let (tree, cp, key) = logged(1000);
    let proof = tree.inclusion_proof(index(737), size(1000)).unwrap();
    let receipt = Receipt::new(Some(b"entry 737".to_vec()), index(737), proof, &cp);
    let text = receipt.to_string();
    assert!(
        text.starts_with("c2sp.org/tlog-proof@v1\nextra ZW50cnkgNzM3\nindex 737\n"),
        "{text}"
    );
    assert!(text.ends_with(&cp.to_string()));

    let parsed = Receipt::parse(text.as_bytes()).unwrap();
    assert_eq!(parsed, receipt);
    let leaf = leaf_hash(parsed.extra().unwrap());
    let checked = parsed.verify(&leaf, &key.verifier()).unwrap();
    assert_eq!(checked.size(), size(1000));
}

#[test]
fn a_receipt_for_another_entry_or_key_does_not_verify() {
    let (tree, cp, key) = logged(10);
    let proof = tree.inclusion_proof(index(3), size(10)).unwrap();
    let receipt = Receipt::new(None, index(3), proof, &cp);
    assert_eq!(
        receipt.verify(&leaf_hash(b"entry 4"), &key.verifier()),
        Err(Error::RootMismatch)
    );
    let stranger = SigningKey::from_seed(KeyName::new("trailmark.local/acme").unwrap(), &[6; 32]);
    assert_eq!(
        receipt.verify(&leaf_hash(b"entry 3"), &stranger.verifier()),
        Err(Error::NoKnownSignature)
    );
    receipt
        .verify(&leaf_hash(b"entry 3"), &key.verifier())
        .unwrap();
    // A single-entry log has an empty proof.
    let (tree, cp, key) = logged(1);
    let receipt = Receipt::new(
        None,
        LeafIndex::new(0).unwrap(),
        tree.inclusion_proof(index(0), size(1)).unwrap(),
        &cp,
    );
    let parsed = Receipt::parse(receipt.to_string().as_bytes()).unwrap();
    parsed
        .verify(&leaf_hash(b"entry 0"), &key.verifier())
        .unwrap();
}

#[test]
fn malformed_receipts_are_rejected() {
    let (tree, cp, _) = logged(4);
    let good = Receipt::new(
        None,
        index(1),
        tree.inclusion_proof(index(1), size(4)).unwrap(),
        &cp,
    )
    .to_string();
    for bad in [
        good.replacen("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2", 1),
        good.replacen("index 1", "index 01", 1),
        good.replacen("index 1", "index -1", 1),
        good.replacen("index 1\n", "", 1),
        good.replacen("\n\n", "\n", 1),
        good.replacen("index 1\n", "index 1\nnot-a-hash\n", 1),
        good.replacen("index 1\n", "extra !!\nindex 1\n", 1),
    ] {
        assert!(
            Receipt::parse(bad.as_bytes()).is_err(),
            "{bad:?} was accepted"
        );
    }
}
