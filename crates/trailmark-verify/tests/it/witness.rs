//! The witness rule (c2sp.org/tlog-witness `add-checkpoint`): every status
//! the protocol prescribes, and cosignatures that verify only unaltered.

use trailmark_log::{
    AddCheckpoint, Checkpoint, CosignatureKey, Cosigner, KeyName, MemoryTree, Note,
    SignedCheckpoint, TreeSize, leaf_hash,
};
use trailmark_verify::witness::{Refusal, judge};

use crate::key;

/// A log of `n` leaves (`salt` varies the leaves: another history).
fn tree(n: u64, salt: u8) -> MemoryTree {
    let mut t = MemoryTree::new();
    for i in 0..n {
        t.push(leaf_hash(&[salt, u8::try_from(i % 256).unwrap()]))
            .unwrap();
    }
    t
}

fn note(t: &MemoryTree, size: u64) -> Note {
    let k = key("acme");
    let size = TreeSize::new(size).unwrap();
    let cp = Checkpoint::new(k.name().as_str(), size, t.root_at(size).unwrap()).unwrap();
    Note::parse(
        SignedCheckpoint::sign(cp, &k)
            .unwrap()
            .to_string()
            .as_bytes(),
    )
    .unwrap()
}

fn request(t: &MemoryTree, old: u64, size: u64) -> AddCheckpoint {
    let proof = if old == 0 || old == size {
        Vec::new()
    } else {
        t.consistency_proof(TreeSize::new(old).unwrap(), TreeSize::new(size).unwrap())
            .unwrap()
    };
    AddCheckpoint {
        old,
        proof,
        checkpoint: note(t, size),
    }
}

#[test]
fn a_witness_cosigns_extensions_and_refuses_forks_rollbacks_and_strangers() {
    let log = vec![key("acme").verifier()];
    let t = tree(40, 0);
    let other = tree(40, 1);
    // First sight: old 0, no proof.
    let first = judge(&request(&t, 0, 10), &log, None).unwrap();
    let latest = Some((10, *first.root()));
    // An extension with its proof.
    assert_eq!(
        judge(&request(&t, 10, 25), &log, latest)
            .unwrap()
            .size()
            .get(),
        25
    );
    // The same checkpoint again: fine; another root at that size: a fork.
    assert!(judge(&request(&t, 10, 10), &log, latest).is_ok());
    assert_eq!(
        judge(&request(&other, 10, 10), &log, latest).unwrap_err(),
        Refusal::Fork { size: 10 }
    );
    // Another history extending to 25 with its own (valid) proof: 422.
    assert_eq!(
        judge(&request(&other, 10, 25), &log, latest)
            .unwrap_err()
            .status(),
        422
    );
    // The wrong old size: 409 with the size cosigned, as text/x.tlog.size.
    let stale = judge(&request(&t, 5, 25), &log, latest).unwrap_err();
    assert_eq!((stale.status(), stale.body()), (409, "10\n".to_owned()));
    // A rollback below what was cosigned is a wrong old size too.
    assert_eq!(
        judge(&request(&t, 0, 8), &log, latest)
            .unwrap_err()
            .status(),
        409
    );
    // old beyond the checkpoint: 400; unknown log: 404; wrong key: 403.
    let mut beyond = request(&t, 10, 25);
    beyond.old = 30;
    assert_eq!(judge(&beyond, &log, latest).unwrap_err().status(), 400);
    assert_eq!(
        judge(&request(&t, 10, 25), &[], latest)
            .unwrap_err()
            .status(),
        404
    );
    let stranger = vec![key("globex").verifier()];
    assert_eq!(
        judge(&request(&t, 10, 25), &stranger, latest)
            .unwrap_err()
            .status(),
        403
    );
    // The request body survives its own text form.
    let r = request(&t, 10, 25);
    assert_eq!(AddCheckpoint::parse(r.to_string().as_bytes()).unwrap(), r);
}

#[test]
fn a_cosignature_verifies_only_on_the_note_it_was_made_for() {
    let w = Cosigner::from_seed(KeyName::new("witness.test/w1").unwrap(), &[9; 32]);
    let vkey = CosignatureKey::parse(&w.verifier().to_string()).unwrap();
    let t = tree(12, 0);
    let mut cosigned = note(&t, 12);
    cosigned
        .push_signature(w.cosign(cosigned.text(), 1_700_000_000))
        .unwrap();
    assert_eq!(vkey.verify(&cosigned).unwrap(), 1_700_000_000);
    // Moved onto another checkpoint, it fails.
    let mut moved = note(&t, 11);
    moved
        .push_signature(cosigned.signatures().last().unwrap().clone())
        .unwrap();
    assert!(vkey.verify(&moved).is_err());
    // A log key (type 0x01) is not a witness key (type 0x04).
    assert!(CosignatureKey::parse(&key("acme").verifier().to_string()).is_err());
}
