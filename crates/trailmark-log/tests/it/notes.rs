//! C2SP signed notes and checkpoints: the golden values, interoperability
//! with `signed_note` and `tlog_tiles`, and every way a note must be refused.

use signed_note::{Note as TheirNote, StandardSigner, StandardVerifier, VerifierList};
use trailmark_log::{Checkpoint, Error, KeyName, Note, SignedCheckpoint, SigningKey, VerifierKey};

use crate::{hx, size};

const GOLDEN_VERIFIER: &str =
    "example.com/log+1dde4531+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const GOLDEN_SIGNATURE: &str = "— example.com/log Hd5FMb8RwD+WkDi6kXpFFCFLvujLuDk6+JXJQafpLIiEjS0GtFgPgoiKqGQ/bkfXv372nrlMMnk9abJUWYM3qoItcQA=";
const ROOT_8: &str = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328";

fn golden_key() -> SigningKey {
    SigningKey::from_seed(KeyName::new("example.com/log").unwrap(), &[0; 32])
}

fn golden_checkpoint() -> SignedCheckpoint {
    let cp = Checkpoint::new("example.com/log", size(8), hx(ROOT_8)).unwrap();
    SignedCheckpoint::sign(cp, &golden_key()).unwrap()
}

fn other_key(name: &str, seed: u8) -> SigningKey {
    SigningKey::from_seed(KeyName::new(name).unwrap(), &[seed; 32])
}

#[test]
fn golden_checkpoint_has_the_published_key_and_signature() {
    let key = golden_key();
    assert_eq!(key.verifier().to_string(), GOLDEN_VERIFIER);
    assert_eq!(key.key_id(), 0x1dde_4531);
    let text = golden_checkpoint().to_string();
    assert_eq!(
        text,
        format!(
            "example.com/log\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n\n{GOLDEN_SIGNATURE}\n"
        )
    );
    let opened = SignedCheckpoint::open(
        text.as_bytes(),
        &VerifierKey::parse(GOLDEN_VERIFIER).unwrap(),
    )
    .unwrap();
    assert_eq!(opened.checkpoint().size(), size(8));
    assert_eq!(opened.checkpoint().root(), &hx(ROOT_8));
}

#[test]
fn keys_round_trip_through_their_strings_and_match_signed_note() {
    let key = golden_key();
    let secret = key.to_secret_string();
    let again = SigningKey::from_secret_string(&secret).unwrap();
    assert_eq!(again.verifier(), key.verifier());
    assert!(
        !format!("{key:?}").contains(&secret[30..]),
        "Debug must not print the secret"
    );
    // signed_note accepts both of our key strings, and agrees on the key id.
    let theirs = StandardSigner::new(&secret).unwrap();
    assert_eq!(signed_note::Signer::key_id(&theirs), key.key_id());
    let their_verifier = StandardVerifier::new(GOLDEN_VERIFIER).unwrap();
    assert_eq!(signed_note::Verifier::key_id(&their_verifier), key.key_id());
}

#[test]
fn signed_note_verifies_our_checkpoints_and_we_verify_theirs() {
    let ours = golden_checkpoint().to_string();
    let verifiers = VerifierList::new(vec![Box::new(
        StandardVerifier::new(GOLDEN_VERIFIER).unwrap(),
    )]);
    let parsed = TheirNote::from_bytes(ours.as_bytes()).unwrap();
    parsed.verify(&verifiers).unwrap();
    let tlog_cp = tlog_tiles::Checkpoint::from_bytes(parsed.text()).unwrap();
    assert_eq!(tlog_cp.size(), 8);
    assert_eq!(tlog_cp.hash().0, *hx(ROOT_8).as_bytes());

    // A note signed by signed_note, with a key of ours, opens here.
    let key = other_key("witness.example/w1", 7);
    let signer = StandardSigner::new(&key.to_secret_string()).unwrap();
    let mut theirs = TheirNote::new(b"some text\nmore\n", &[]).unwrap();
    theirs.add_sigs(&[&signer]).unwrap();
    let note = Note::parse(&theirs.to_bytes()).unwrap();
    assert_eq!(note.verify(&[key.verifier()]).unwrap().len(), 1);
    assert_eq!(note.to_string().as_bytes(), theirs.to_bytes().as_slice());
}

#[test]
fn witness_signatures_by_unknown_keys_are_ignored() {
    let mut cp = golden_checkpoint().note().clone();
    cp.add_signature(&other_key("witness.example/w1", 1));
    let text = cp.to_string();
    let log = golden_key().verifier();
    SignedCheckpoint::open(text.as_bytes(), &log).unwrap();
    // A key that shares only the name, or only the id, is a different key.
    let same_name = other_key("example.com/log", 9).verifier();
    assert_eq!(
        Note::parse(text.as_bytes()).unwrap().verify(&[same_name]),
        Err(Error::NoKnownSignature)
    );
}

#[test]
fn notes_with_a_bad_or_missing_signature_of_a_known_key_are_rejected() {
    let log = golden_key().verifier();
    let good = golden_checkpoint().to_string();

    // The body changed after signing: the signature no longer verifies.
    let tampered = good.replacen("\n8\n", "\n9\n", 1);
    assert_eq!(
        SignedCheckpoint::open(tampered.as_bytes(), &log),
        Err(Error::BadSignature {
            key: "example.com/log".into()
        })
    );
    // One flipped bit in the signature.
    let sig_start = good.find("Hd5F").unwrap();
    let mut flipped = good.clone().into_bytes();
    flipped[sig_start + 10] = if flipped[sig_start + 10] == b'A' {
        b'B'
    } else {
        b'A'
    };
    assert!(matches!(
        SignedCheckpoint::open(&flipped, &log),
        Err(Error::BadSignature { .. })
    ));
    // Signed only by somebody else.
    let stranger = Note::sign(
        golden_checkpoint().note().text(),
        &[&other_key("x.example/y", 3)],
    )
    .unwrap();
    assert_eq!(
        SignedCheckpoint::open(stranger.to_string().as_bytes(), &log),
        Err(Error::NoKnownSignature)
    );
    // No signature lines at all.
    let unsigned = "example.com/log\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n\n";
    assert!(matches!(
        SignedCheckpoint::open(unsigned.as_bytes(), &log),
        Err(Error::MalformedNote { .. })
    ));
    // The same known signature twice.
    let doubled = format!("{good}{GOLDEN_SIGNATURE}\n");
    assert_eq!(
        SignedCheckpoint::open(doubled.as_bytes(), &log),
        Err(Error::DuplicateSignature {
            key: "example.com/log".into()
        })
    );
}

#[test]
fn malformed_notes_are_rejected_with_a_reason() {
    let sig = GOLDEN_SIGNATURE;
    for (what, text) in [
        ("no final newline", format!("a\n\n{sig}")),
        ("no blank line", format!("a\n{sig}\n")),
        ("control character", format!("a\tb\n\n{sig}\n")),
        (
            "hyphen for em dash",
            format!("a\n\n{}\n", sig.replacen('—', "-", 1)),
        ),
        (
            "signature not base64",
            "a\n\n— example.com/log !!!!\n".to_string(),
        ),
        (
            "signature too short",
            "a\n\n— example.com/log AAAA\n".to_string(),
        ),
        ("key name with plus", "a\n\n— a+b AAAAAAA=\n".to_string()),
        ("no text", format!("\n{sig}\n")),
    ] {
        assert!(Note::parse(text.as_bytes()).is_err(), "{what} was accepted");
    }
    assert!(
        Note::parse(&[0xff, b'\n', b'\n']).is_err(),
        "invalid UTF-8 was accepted"
    );
    let many = format!("a\n\n{}", format!("{sig}\n").repeat(101));
    assert!(matches!(
        Note::parse(many.as_bytes()),
        Err(Error::MalformedNote { .. })
    ));
}

#[test]
fn malformed_keys_are_rejected() {
    for bad in [
        "",
        "example.com/log",
        "example.com/log+1dde4531",
        "example.com/log+1dde4532+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop",
        "example.com/log+1dde4531+AjtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop",
        "example.com/log+1dde4531+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWd",
        "ex ample+1dde4531+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop",
    ] {
        assert!(VerifierKey::parse(bad).is_err(), "{bad:?} was accepted");
    }
    assert!(SigningKey::from_secret_string("PRIVATE+KEY+a+00000000+AQ==").is_err());
    assert!(KeyName::new("has space").is_err());
    assert!(KeyName::new("").is_err());
}

#[test]
fn checkpoint_bodies_are_parsed_strictly() {
    let root = "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=";
    let ok = Checkpoint::parse_text(&format!("o\n8\n{root}\next one\n")).unwrap();
    assert_eq!(ok.extensions(), ["ext one"]);
    assert_eq!(ok.to_text(), format!("o\n8\n{root}\next one\n"));
    for bad in [
        format!("\n8\n{root}\n"),
        format!("o\n08\n{root}\n"),
        format!("o\n-1\n{root}\n"),
        format!("o\n8\n{root}"),
        format!("o\n8\n{root}\n\n"),
        "o\n8\nAAAA\n".to_string(),
        "o\n8\n".to_string(),
        format!("o\n99999999999999999999\n{root}\n"),
    ] {
        assert!(
            Checkpoint::parse_text(&bad).is_err(),
            "{bad:?} was accepted"
        );
    }
    // The origin must name the key that signs it.
    let cp = Checkpoint::new("example.com/other", size(8), hx(ROOT_8)).unwrap();
    assert!(matches!(
        SignedCheckpoint::sign(cp, &golden_key()),
        Err(Error::OriginMismatch { .. })
    ));
}
