//! Property-based fuzzing of every parser of outside input in this crate:
//! signed notes and checkpoints, signature lines, verifier and cosignature
//! keys, receipts, witness `add-checkpoint` bodies, tile paths, and proof
//! verification with arbitrary proofs. Inputs are random text and valid
//! inputs with random edits (which reach far deeper than random bytes).
//! Nothing may panic; every refusal is an error that says something; and an
//! edited checkpoint or receipt that still verifies must say what the
//! original said (the signature binds every byte that matters).
//!
//! The test command runs proptest's default 256 cases per property; a longer
//! run: `PROPTEST_CASES=200000 cargo test --release -p trailmark-log --test it fuzz`.

use proptest::prelude::*;
use trailmark_log::{
    AddCheckpoint, Checkpoint, CosignatureKey, Cosigner, Hash, KeyName, LeafIndex, MemoryTree,
    Note, NoteSignature, Receipt, SignedCheckpoint, SigningKey, TilePath, TreeSize, VerifierKey,
    leaf_hash, verify_consistency, verify_inclusion,
};

use crate::{index, size};

struct Seeds {
    key: SigningKey,
    witness: Cosigner,
    checkpoint: SignedCheckpoint,
    receipt: String,
    add_checkpoint: String,
}

fn seeds() -> Seeds {
    let key = SigningKey::from_seed(KeyName::new("trailmark.local/acme").unwrap(), &[5; 32]);
    let witness = Cosigner::from_seed(KeyName::new("witness.example").unwrap(), &[9; 32]);
    let mut tree = MemoryTree::new();
    for i in 0..37 {
        tree.push(leaf_hash(format!("entry {i}").as_bytes()))
            .unwrap();
    }
    let cp = Checkpoint::new("trailmark.local/acme", tree.size(), tree.root()).unwrap();
    let checkpoint = SignedCheckpoint::sign(cp, &key).unwrap();
    let proof = tree.inclusion_proof(index(11), size(37)).unwrap();
    let receipt = Receipt::new(Some(b"entry 11".to_vec()), index(11), proof, &checkpoint);
    let consistency = tree.consistency_proof(size(20), size(37)).unwrap();
    let add_checkpoint = AddCheckpoint {
        old: 20,
        proof: consistency,
        checkpoint: checkpoint.note().clone(),
    };
    Seeds {
        key,
        witness,
        checkpoint,
        receipt: receipt.to_string(),
        add_checkpoint: add_checkpoint.to_string(),
    }
}

/// One edit: where (a fraction of the length), what, and with which byte.
fn edits() -> impl Strategy<Value = Vec<(u16, u8, u8)>> {
    prop::collection::vec((any::<u16>(), 0u8..6, any::<u8>()), 1..6)
}

/// `seed` with `edits` applied: delete, insert, replace a byte; cut the
/// rest; duplicate a line; insert a newline.
fn edited(seed: &str, edits: &[(u16, u8, u8)]) -> Vec<u8> {
    let mut bytes = seed.as_bytes().to_vec();
    for &(at, kind, byte) in edits {
        let len = bytes.len();
        let at = usize::from(at) * len / usize::from(u16::MAX).max(1);
        let at = at.min(len);
        match kind {
            0 if at < len => {
                bytes.remove(at);
            }
            1 => bytes.insert(at, byte),
            2 if at < len => bytes[at] = byte,
            3 => bytes.truncate(at),
            4 => {
                let start = bytes[..at]
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |p| p + 1);
                let end = bytes[at..]
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or(len, |p| at + p + 1);
                let line = bytes[start..end].to_vec();
                bytes.splice(end..end, line);
            }
            _ => bytes.insert(at, b'\n'),
        }
    }
    bytes
}

/// A refusal must say what was wrong.
fn refused<T>(result: Result<T, trailmark_log::Error>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(e) => {
            assert!(
                !e.to_string().trim().is_empty(),
                "an error that says nothing: {e:?}"
            );
            None
        }
    }
}

/// Every parser of this crate on the same bytes.
fn parse_everything(bytes: &[u8], s: &Seeds) {
    let text = String::from_utf8_lossy(bytes);
    if let Some(note) = refused(Note::parse(bytes)) {
        // What parses prints back to what was parsed.
        assert_eq!(note.to_string().as_bytes(), bytes);
        let _ = s.witness.verifier().verify(&note);
    }
    let _ = refused(Checkpoint::parse_text(&text));
    let _ = refused(NoteSignature::parse_line(&text));
    let _ = refused(VerifierKey::parse(&text));
    let _ = refused(CosignatureKey::parse(&text));
    let _ = refused(TilePath::parse(&text));
    if let Some(add) = refused(AddCheckpoint::parse(bytes)) {
        let _ = refused(SignedCheckpoint::open(
            add.checkpoint.to_string().as_bytes(),
            &s.key.verifier(),
        ));
    }
    if let Some(receipt) = refused(Receipt::parse(bytes)) {
        let leaf = leaf_hash(receipt.extra().unwrap_or_default());
        if let Some(cp) = refused(receipt.verify(&leaf, &s.key.verifier())) {
            // Still valid after the edit: it proves the same entry in the
            // same tree.
            assert_eq!(cp, *s.checkpoint.checkpoint());
            assert_eq!(receipt.index(), index(11));
            assert_eq!(receipt.extra(), Some(&b"entry 11"[..]));
        }
    }
    if let Some(cp) = refused(SignedCheckpoint::open(bytes, &s.key.verifier())) {
        assert_eq!(cp.checkpoint(), s.checkpoint.checkpoint());
    }
}

proptest! {
    #[test]
    fn edited_checkpoints_receipts_and_witness_bodies_never_panic_and_never_verify_changed(
        which in 0usize..3,
        edits in edits(),
    ) {
        let s = seeds();
        let checkpoint = s.checkpoint.to_string();
        let seed = [checkpoint.as_str(), s.receipt.as_str(), s.add_checkpoint.as_str()][which];
        parse_everything(&edited(seed, &edits), &s);
    }

    #[test]
    fn random_text_never_panics_a_parser(text in "(\\PC|\n|\u{2014}| |\\+){0,200}") {
        parse_everything(text.as_bytes(), &seeds());
    }

    #[test]
    fn random_bytes_never_panic_a_parser(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        parse_everything(&bytes, &seeds());
    }

    #[test]
    fn proofs_of_any_shape_are_checked_without_panicking(
        leaf_index in any::<u64>(),
        tree_size in any::<u64>(),
        first in any::<u64>(),
        proof in prop::collection::vec(any::<[u8; 32]>(), 0..70),
        root in any::<[u8; 32]>(),
    ) {
        let proof: Vec<Hash> = proof.into_iter().map(Hash::from_bytes).collect();
        let root = Hash::from_bytes(root);
        let leaf = leaf_hash(b"x");
        if let (Some(i), Some(n)) = (LeafIndex::new(leaf_index), TreeSize::new(tree_size)) {
            prop_assert!(verify_inclusion(&leaf, i, n, &proof, &root).is_err());
        }
        if let (Some(a), Some(b)) = (TreeSize::new(first), TreeSize::new(tree_size)) {
            // Random hashes prove nothing (an empty proof between equal
            // sizes with equal roots is the one true statement).
            let same = verify_consistency(a, b, &proof, &root, &root).is_ok();
            prop_assert!(!same || (a == b && proof.is_empty()) || a.get() == 0);
        }
    }
}
