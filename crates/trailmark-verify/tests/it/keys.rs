//! Key rotation: each key signs only the sizes its transition gives it.

use std::collections::BTreeMap;

use trailmark_log::{KeyName, Note, SigningKey};
use trailmark_verify::{KeyHistory, KeyRecordView, Policy, TenantVerifier, Transition};

use crate::{checkpoint, log, push_rows};

fn signer(seed: u8, name: &str) -> SigningKey {
    SigningKey::from_seed(KeyName::new(name).unwrap(), &[seed; 32])
}

fn history(statement_by: u8) -> Vec<KeyRecordView> {
    let new_public = signer(2, "trailmark.local/_system").verifier().public_key();
    let transition = Transition {
        prefix: "trailmark.local".into(),
        new_key: new_public,
        effective: BTreeMap::from([("acme".to_owned(), 6)]),
    };
    let statement = Note::sign(
        transition.text(),
        &[&signer(statement_by, "trailmark.local/_system")],
    )
    .unwrap()
    .to_string();
    vec![
        KeyRecordView {
            public_key: signer(7, "x").verifier().public_key(),
            origin_prefix: "trailmark.local".into(),
            transition: None,
        },
        KeyRecordView {
            public_key: new_public,
            origin_prefix: "trailmark.local".into(),
            transition: Some(statement),
        },
    ]
}

#[test]
fn each_key_signs_only_its_sizes_and_the_chain_must_be_signed() {
    // The first key is the tests' usual one (seed 7); the second, seed 2.
    let keys = KeyHistory::new(&history(7))
        .unwrap()
        .keys_for("acme")
        .unwrap();
    assert_eq!((keys[0].from, keys[0].until), (0, Some(6)));
    assert_eq!((keys[1].from, keys[1].until), (6, None));
    assert!(
        KeyHistory::new(&history(3))
            .unwrap_err()
            .contains("not signed by the key before it")
    );

    // Checkpoints: 4 and 6 by the old key, 10 by the new one — fine; 4 by
    // the new key — refused.
    let l = log("acme", 10, &[4, 6]);
    let new_cp = |size: u64| {
        let k = signer(2, "trailmark.local/acme");
        let rows = &l.rows;
        let mut tree = trailmark_log::MemoryTree::new();
        for r in &rows[..usize::try_from(size).unwrap()] {
            tree.push(trailmark_log::leaf_hash(&r.envelope)).unwrap();
        }
        let cp = trailmark_log::Checkpoint::new(
            k.name().as_str(),
            trailmark_log::TreeSize::new(size).unwrap(),
            tree.root(),
        )
        .unwrap();
        trailmark_log::SignedCheckpoint::sign(cp, &k)
            .unwrap()
            .to_string()
    };
    let run = |notes: &[String]| {
        let mut v =
            TenantVerifier::with_keys(trailmark_core::TenantId::new("acme").unwrap(), keys.clone());
        for n in notes {
            v.stored_checkpoint(n, None);
        }
        push_rows(&mut v, &l.rows);
        v.finish(10, &Policy::default())
    };
    assert!(run(&[l.notes[0].clone(), l.notes[1].clone(), new_cp(10)]).ok());
    let r = run(&[new_cp(4), checkpoint("acme", &l.rows, 6)]);
    assert_eq!(r.failures.len(), 1, "{:#?}", r.failures);
    assert!(
        r.failures[0]
            .to_string()
            .starts_with("checkpoint at size 4: the stored note does not verify")
    );
}

#[test]
fn a_follower_moves_on_only_through_a_transition_from_the_key_it_remembered() {
    let history = KeyHistory::new(&history(7)).unwrap();
    let old = signer(7, "trailmark.local/acme").verifier();
    let new = signer(2, "trailmark.local/acme").verifier();
    assert!(history.successor("acme", &old).unwrap() == new);
    assert!(history.successor("acme", &new).unwrap() == new);
    let stranger = signer(9, "trailmark.local/acme").verifier();
    assert!(
        history
            .successor("acme", &stranger)
            .unwrap_err()
            .contains("not one of the trail's signing keys")
    );
}
