//! SHA-256 hashing as RFC 9162 §2.1.1 defines it for a Merkle tree.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest as _, Sha256};

use crate::Error;

/// Length in bytes of every hash in the tree.
pub const HASH_LEN: usize = 32;

/// A SHA-256 value: a leaf hash, an interior node, or a root.
///
/// Always exactly 32 bytes; parsing anything else fails.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash([u8; HASH_LEN]);

impl Hash {
    /// Wraps 32 raw bytes.
    pub const fn from_bytes(bytes: [u8; HASH_LEN]) -> Self {
        Self(bytes)
    }

    /// Takes a slice that must be exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        <[u8; HASH_LEN]>::try_from(bytes)
            .map(Self)
            .map_err(|_| Error::HashLength { got: bytes.len() })
    }

    /// Parses standard (RFC 4648 §4, padded) base64 of 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, Error> {
        let bytes = BASE64.decode(text).map_err(|_| Error::HashEncoding {
            text: abbreviate(text),
        })?;
        Self::from_slice(&bytes)
    }

    /// Parses 64 lowercase or uppercase hex digits.
    pub fn from_hex(text: &str) -> Result<Self, Error> {
        let mut out = [0u8; HASH_LEN];
        hex::decode_to_slice(text, &mut out).map_err(|_| Error::HashEncoding {
            text: abbreviate(text),
        })?;
        Ok(Self(out))
    }

    pub const fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }

    /// Standard padded base64, as checkpoints and proofs carry it.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

fn abbreviate(text: &str) -> String {
    const MAX: usize = 80;
    if text.len() <= MAX {
        text.to_owned()
    } else {
        let cut = (0..=MAX)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        format!("{}…", &text[..cut])
    }
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Hash(Sha256::digest([]).into())
}

/// `SHA-256(0x00 || data)`: the hash of one leaf.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(data);
    Hash(hasher.finalize().into())
}

/// `SHA-256(0x01 || left || right)`: an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 1 + 2 * HASH_LEN];
    buf[0] = 0x01;
    buf[1..=HASH_LEN].copy_from_slice(&left.0);
    buf[1 + HASH_LEN..].copy_from_slice(&right.0);
    Hash(Sha256::digest(buf).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(
            empty_root().to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn leaf_of_empty_string_matches_rfc_6962_reference() {
        assert_eq!(
            leaf_hash(b"").to_hex(),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    #[test]
    fn hashes_round_trip_through_base64_and_hex() {
        let h = leaf_hash(b"abc");
        assert_eq!(Hash::from_base64(&h.to_base64()).unwrap(), h);
        assert_eq!(Hash::from_hex(&h.to_hex()).unwrap(), h);
        assert_eq!(Hash::from_hex(&h.to_hex().to_uppercase()).unwrap(), h);
    }

    #[test]
    fn wrong_lengths_and_encodings_are_rejected() {
        assert!(matches!(
            Hash::from_slice(&[0; 31]),
            Err(Error::HashLength { got: 31 })
        ));
        assert!(matches!(
            Hash::from_base64("ZG9uJ3QgY2FyZSAy"),
            Err(Error::HashLength { got: 12 })
        ));
        assert!(matches!(
            Hash::from_base64("not base64!"),
            Err(Error::HashEncoding { .. })
        ));
        assert!(matches!(
            Hash::from_hex(&"zz".repeat(32)),
            Err(Error::HashEncoding { .. })
        ));
        assert!(matches!(
            Hash::from_hex("00"),
            Err(Error::HashEncoding { .. })
        ));
    }
}
