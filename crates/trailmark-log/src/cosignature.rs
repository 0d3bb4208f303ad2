//! Witness cosignatures (c2sp.org/tlog-cosignature, `cosignature/v1`,
//! Ed25519) and the witness protocol's request body
//! (c2sp.org/tlog-witness `add-checkpoint`).
//!
//! A cosignature is a note signature whose bytes are an 8-byte big-endian
//! timestamp followed by an Ed25519 signature over
//! `cosignature/v1\ntime <timestamp>\n<checkpoint text>`; its key id is
//! `SHA-256(name || 0x0A || 0x04 || public key)[:4]`.

use std::fmt;

use ed25519_dalek::Signer as _;

use crate::note::{parse_typed_vkey, typed_key_id, write_typed_vkey};
use crate::{Error, Hash, KeyName, Note, NoteSignature};

/// The signature type byte of `cosignature/v1` Ed25519 keys.
const COSIGNATURE_V1: u8 = 0x04;
/// At most this many consistency proof lines in a request (the spec's cap).
pub const MAX_PROOF_LINES: usize = 63;

fn cosigner_key_id(name: &KeyName, public: &ed25519_dalek::VerifyingKey) -> u32 {
    typed_key_id(name, COSIGNATURE_V1, public)
}

fn message(text: &str, timestamp: u64) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{text}")
}

/// A witness's signing key. `Debug` never shows the secret.
#[derive(Clone)]
pub struct Cosigner {
    name: KeyName,
    id: u32,
    key: ed25519_dalek::SigningKey,
}

impl Cosigner {
    pub fn from_seed(name: KeyName, seed: &[u8; 32]) -> Self {
        let key = ed25519_dalek::SigningKey::from_bytes(seed);
        let id = cosigner_key_id(&name, &key.verifying_key());
        Self { name, id, key }
    }

    pub fn name(&self) -> &KeyName {
        &self.name
    }

    pub fn verifier(&self) -> CosignatureKey {
        CosignatureKey {
            name: self.name.clone(),
            id: self.id,
            key: self.key.verifying_key(),
        }
    }

    /// Cosigns a checkpoint's note text at `timestamp` (seconds since the
    /// Unix epoch).
    pub fn cosign(&self, text: &str, timestamp: u64) -> NoteSignature {
        let signature = self.key.sign(message(text, timestamp).as_bytes());
        let mut bytes = timestamp.to_be_bytes().to_vec();
        bytes.extend_from_slice(&signature.to_bytes());
        NoteSignature {
            name: self.name.clone(),
            key_id: self.id,
            signature: bytes,
        }
    }
}

impl fmt::Debug for Cosigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cosigner")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A witness's public key, as the vkey `<name>+<key id>+base64(0x04 || key)`.
#[derive(Clone, PartialEq, Eq)]
pub struct CosignatureKey {
    name: KeyName,
    id: u32,
    key: ed25519_dalek::VerifyingKey,
}

impl CosignatureKey {
    pub fn parse(text: &str) -> Result<Self, Error> {
        let (name, id, key) = parse_typed_vkey(text, COSIGNATURE_V1)?;
        Ok(Self { name, id, key })
    }

    pub fn name(&self) -> &KeyName {
        &self.name
    }

    /// The timestamp of this witness's valid cosignature on `note`.
    /// Errors: `NoKnownSignature` when the note has none by this key,
    /// `BadSignature` when it has one that does not verify.
    pub fn verify(&self, note: &Note) -> Result<u64, Error> {
        let mine = note
            .signatures()
            .iter()
            .find(|s| s.name == self.name && s.key_id == self.id)
            .ok_or(Error::NoKnownSignature)?;
        let bad = || Error::BadSignature {
            key: self.name.to_string(),
        };
        let (time, sig) = mine.signature.split_at_checked(8).ok_or_else(bad)?;
        let timestamp = u64::from_be_bytes(time.try_into().map_err(|_| bad())?);
        let sig = ed25519_dalek::Signature::from_slice(sig).map_err(|_| bad())?;
        self.key
            .verify_strict(message(note.text(), timestamp).as_bytes(), &sig)
            .map_err(|_| bad())?;
        Ok(timestamp)
    }
}

impl fmt::Display for CosignatureKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_typed_vkey(f, &self.name, self.id, COSIGNATURE_V1, &self.key)
    }
}

impl fmt::Debug for CosignatureKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CosignatureKey({self})")
    }
}

/// The body of a tlog-witness `add-checkpoint` request: the size the
/// witness last cosigned, a consistency proof from it, the new checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpoint {
    pub old: u64,
    pub proof: Vec<Hash>,
    /// The signed checkpoint, verbatim.
    pub checkpoint: Note,
}

impl AddCheckpoint {
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let bad = |reason: &str| Error::MalformedCheckpoint {
            reason: format!("add-checkpoint body: {reason}"),
        };
        let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
        let (head, note) = text
            .split_once("\n\n")
            .ok_or_else(|| bad("no blank line before the checkpoint"))?;
        let mut lines = head.split('\n');
        let old = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .filter(|n| *n == "0" || (!n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit())))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad("the first line must be 'old <size>'"))?;
        let proof = lines
            .map(|l| Hash::from_base64(l).map_err(|e| bad(&format!("proof line: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        if proof.len() > MAX_PROOF_LINES {
            return Err(bad("more than 63 proof lines"));
        }
        Ok(Self {
            old,
            proof,
            checkpoint: Note::parse(note.as_bytes())?,
        })
    }
}

impl fmt::Display for AddCheckpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "old {}", self.old)?;
        for hash in &self.proof {
            writeln!(f, "{}", hash.to_base64())?;
        }
        writeln!(f)?;
        fmt::Display::fmt(&self.checkpoint, f)
    }
}
