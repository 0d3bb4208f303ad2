//! A client's memory of the newest checkpoint: extensions pass; a rollback,
//! a fork and another key are named.

use trailmark_log::{Checkpoint, MemoryTree, SignedCheckpoint, TreeSize, leaf_hash};
use trailmark_verify::{Divergence, follow};

use crate::key;

fn tree(n: u64, salt: u8) -> MemoryTree {
    let mut t = MemoryTree::new();
    for i in 0..n {
        t.push(leaf_hash(&[salt, u8::try_from(i).unwrap()]))
            .unwrap();
    }
    t
}

fn note(t: &MemoryTree, size: u64, tenant: &str) -> String {
    let k = key(tenant);
    let s = TreeSize::new(size).unwrap();
    let cp = Checkpoint::new(k.name().as_str(), s, t.root_at(s).unwrap()).unwrap();
    SignedCheckpoint::sign(cp, &k).unwrap().to_string()
}

#[test]
fn a_remembered_checkpoint_accepts_extensions_and_names_rollbacks_and_forks() {
    let log = key("acme").verifier();
    let t = tree(30, 0);
    let seen = follow(None, &note(&t, 10, "acme"), &log, &[]).unwrap();
    assert_eq!(seen.0, 10);
    let proof = t
        .consistency_proof(TreeSize::new(10).unwrap(), TreeSize::new(30).unwrap())
        .unwrap();
    assert_eq!(
        follow(Some(seen), &note(&t, 30, "acme"), &log, &proof)
            .unwrap()
            .0,
        30
    );
    assert_eq!(
        follow(Some(seen), &note(&t, 10, "acme"), &log, &[]).unwrap(),
        seen
    );
    assert_eq!(
        follow(Some(seen), &note(&t, 7, "acme"), &log, &[]).unwrap_err(),
        Divergence::Rollback { seen: 10, now: 7 }
    );
    let other = tree(30, 1);
    assert!(matches!(
        follow(Some(seen), &note(&other, 10, "acme"), &log, &[]).unwrap_err(),
        Divergence::Fork { .. }
    ));
    let other_proof = other
        .consistency_proof(TreeSize::new(10).unwrap(), TreeSize::new(30).unwrap())
        .unwrap();
    assert!(matches!(
        follow(Some(seen), &note(&other, 30, "acme"), &log, &other_proof).unwrap_err(),
        Divergence::Fork { .. }
    ));
    assert!(matches!(
        follow(Some(seen), &note(&t, 30, "globex"), &log, &proof).unwrap_err(),
        Divergence::NotSigned(_)
    ));
}
