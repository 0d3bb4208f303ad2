//! C2SP signed notes with Ed25519 signatures (c2sp.org/signed-note).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::Signer as _;
use sha2::{Digest as _, Sha256};

use crate::Error;

/// The signature type byte for Ed25519 in key ids and verifier keys.
const ED25519: u8 = 0x01;
/// The most signature lines a note may carry (the spec asks for at least 16).
const MAX_SIGNATURES: usize = 100;
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// A key name: non-empty, with no Unicode space and no `+`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyName(String);

impl KeyName {
    pub fn new(name: impl Into<String>) -> Result<Self, Error> {
        let name = name.into();
        let reason = if name.is_empty() {
            Some("must not be empty")
        } else if name.chars().any(char::is_whitespace) {
            Some("must not contain spaces")
        } else if name.contains('+') {
            Some("must not contain '+'")
        } else if name.chars().any(char::is_control) {
            Some("must not contain control characters")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(Error::KeyName { name, reason }),
            None => Ok(Self(name)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `SHA-256(name || 0x0A || 0x01 || public key)[:4]`, big-endian.
fn key_id(name: &KeyName, public: &ed25519_dalek::VerifyingKey) -> u32 {
    typed_key_id(name, ED25519, public)
}

/// `SHA-256(name || 0x0A || type || public key)[:4]`, big-endian: the key
/// id of a signed-note key of any signature type.
pub(crate) fn typed_key_id(name: &KeyName, kind: u8, public: &ed25519_dalek::VerifyingKey) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(name.0.as_bytes());
    hasher.update([b'\n', kind]);
    hasher.update(public.as_bytes());
    let digest = hasher.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Parses a vkey `<name>+<hex key id>+<base64(type || Ed25519 key)>` of the
/// given signature type, checking the key id.
pub(crate) fn parse_typed_vkey(
    text: &str,
    kind: u8,
) -> Result<(KeyName, u32, ed25519_dalek::VerifyingKey), Error> {
    let bad = |reason| Error::VerifierKey { reason };
    let (name, id, key) =
        split_key_string(text.trim_end()).ok_or(bad("expected <name>+<key id>+<key>"))?;
    let name = KeyName::new(name)?;
    if id.len() != 8 {
        return Err(bad("key id must be 8 hex digits"));
    }
    let id = u32::from_str_radix(id, 16).map_err(|_| bad("key id must be 8 hex digits"))?;
    let bytes = BASE64.decode(key).map_err(|_| bad("key is not base64"))?;
    let public: [u8; 32] = match bytes.split_first() {
        Some((&t, public)) if t == kind => public
            .try_into()
            .map_err(|_| bad("Ed25519 public key must be 32 bytes"))?,
        Some(_) => return Err(bad("the key is of another signature type")),
        None => return Err(bad("key is empty")),
    };
    let key = ed25519_dalek::VerifyingKey::from_bytes(&public)
        .map_err(|_| bad("not a valid Ed25519 public key"))?;
    if typed_key_id(&name, kind, &key) != id {
        return Err(bad("key id does not match the name and key"));
    }
    Ok((name, id, key))
}

/// An Ed25519 signing key with its name. `Debug` never shows the secret.
#[derive(Clone)]
pub struct SigningKey {
    name: KeyName,
    id: u32,
    key: ed25519_dalek::SigningKey,
}

impl SigningKey {
    /// The key for a 32-byte seed (RFC 8032 private key). The caller brings
    /// the randomness: this crate has no random number generator.
    pub fn from_seed(name: KeyName, seed: &[u8; 32]) -> Self {
        let key = ed25519_dalek::SigningKey::from_bytes(seed);
        let id = key_id(&name, &key.verifying_key());
        Self { name, id, key }
    }

    /// Parses the secret key string of Go's `golang.org/x/mod/sumdb/note`:
    /// `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>`.
    pub fn from_secret_string(text: &str) -> Result<Self, Error> {
        let bad = |reason| Error::SigningKey { reason };
        let rest = text
            .trim_end()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(bad("must start with PRIVATE+KEY+"))?;
        let (name, id, key) = split_key_string(rest).ok_or(bad("expected name+id+key"))?;
        let name = KeyName::new(name)?;
        let bytes = BASE64.decode(key).map_err(|_| bad("key is not base64"))?;
        let seed: [u8; 32] = match bytes.split_first() {
            Some((&ED25519, seed)) => seed.try_into().map_err(|_| bad("seed must be 32 bytes"))?,
            _ => return Err(bad("not an Ed25519 key")),
        };
        let key = Self::from_seed(name, &seed);
        if u32::from_str_radix(id, 16).ok() != Some(key.id) || id.len() != 8 {
            return Err(bad("key id does not match the name and key"));
        }
        Ok(key)
    }

    /// The secret key string (see [`Self::from_secret_string`]). Store it like
    /// a password.
    pub fn to_secret_string(&self) -> String {
        let mut bytes = vec![ED25519];
        bytes.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.id,
            BASE64.encode(bytes)
        )
    }

    pub fn name(&self) -> &KeyName {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.id
    }

    /// The public half.
    pub fn verifier(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            id: self.id,
            key: self.key.verifying_key(),
        }
    }

    /// Signs a note text (which must end in a newline).
    pub fn sign(&self, text: &str) -> NoteSignature {
        let signature = self.key.sign(text.as_bytes());
        NoteSignature {
            name: self.name.clone(),
            key_id: self.id,
            signature: signature.to_bytes().to_vec(),
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.id))
            .finish_non_exhaustive()
    }
}

/// A public Ed25519 key with its name, as the verifier key string
/// `<name>+<hex key id>+<base64(0x01 || public key)>`.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: KeyName,
    id: u32,
    key: ed25519_dalek::VerifyingKey,
}

fn split_key_string(text: &str) -> Option<(&str, &str, &str)> {
    // The name cannot contain '+', base64 can: split from the left twice.
    let (name, rest) = text.split_once('+')?;
    let (id, key) = rest.split_once('+')?;
    Some((name, id, key))
}

impl VerifierKey {
    pub fn parse(text: &str) -> Result<Self, Error> {
        let (name, id, key) = parse_typed_vkey(text, ED25519)?;
        Ok(Self { name, id, key })
    }

    /// The verifier key for an Ed25519 public key under `name`.
    pub fn from_public(name: KeyName, public: &[u8; 32]) -> Result<Self, Error> {
        let key =
            ed25519_dalek::VerifyingKey::from_bytes(public).map_err(|_| Error::VerifierKey {
                reason: "not a valid Ed25519 public key",
            })?;
        Ok(Self {
            id: key_id(&name, &key),
            name,
            key,
        })
    }

    pub fn name(&self) -> &KeyName {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.id
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    fn verifies(&self, text: &str, signature: &[u8]) -> bool {
        ed25519_dalek::Signature::from_slice(signature)
            .is_ok_and(|sig| self.key.verify_strict(text.as_bytes(), &sig).is_ok())
    }
}

/// Writes a vkey `<name>+<hex key id>+<base64(type || Ed25519 key)>` (the
/// inverse of [`parse_typed_vkey`]).
pub(crate) fn write_typed_vkey(
    f: &mut fmt::Formatter<'_>,
    name: &KeyName,
    id: u32,
    kind: u8,
    key: &ed25519_dalek::VerifyingKey,
) -> fmt::Result {
    let mut bytes = vec![kind];
    bytes.extend_from_slice(key.as_bytes());
    write!(f, "{name}+{id:08x}+{}", BASE64.encode(bytes))
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_typed_vkey(f, &self.name, self.id, ED25519, &self.key)
    }
}

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifierKey({self})")
    }
}

/// One signature line of a note: `— <name> base64(key id || signature)`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NoteSignature {
    pub(crate) name: KeyName,
    pub(crate) key_id: u32,
    pub(crate) signature: Vec<u8>,
}

impl NoteSignature {
    pub fn name(&self) -> &KeyName {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The signature bytes after the key id.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// Parses one signature line (`— <name> <base64>`, no newline).
    pub fn parse_line(line: &str) -> Result<Self, Error> {
        let malformed = |reason| Error::MalformedNote { reason };
        let rest = line.strip_prefix(SIGNATURE_PREFIX).ok_or(malformed(
            "signature line must start with an em dash and a space",
        ))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or(malformed("signature line must be '— <name> <base64>'"))?;
        let name = KeyName::new(name)?;
        let bytes = BASE64
            .decode(b64)
            .map_err(|_| malformed("signature is not base64"))?;
        if bytes.len() < 5 {
            return Err(malformed("signature is shorter than a key id and one byte"));
        }
        let key_id = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        Ok(Self {
            name,
            key_id,
            signature: bytes[4..].to_vec(),
        })
    }
}

impl fmt::Display for NoteSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bytes = self.key_id.to_be_bytes().to_vec();
        bytes.extend_from_slice(&self.signature);
        write!(
            f,
            "{SIGNATURE_PREFIX}{} {}",
            self.name,
            BASE64.encode(bytes)
        )
    }
}

/// A signed note: a text ending in a newline, a blank line, signature lines.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Note {
    text: String,
    signatures: Vec<NoteSignature>,
}

fn check_text(text: &str) -> Result<(), Error> {
    let malformed = |reason| Error::MalformedNote { reason };
    if text.is_empty() || !text.ends_with('\n') {
        return Err(malformed("text must be non-empty and end with a newline"));
    }
    if text.chars().any(|c| c < ' ' && c != '\n') {
        return Err(malformed(
            "text must not contain control characters other than newline",
        ));
    }
    Ok(())
}

impl Note {
    /// Signs `text` with every key given.
    pub fn sign(text: impl Into<String>, keys: &[&SigningKey]) -> Result<Self, Error> {
        let text = text.into();
        check_text(&text)?;
        let signatures = keys.iter().map(|k| k.sign(&text)).collect();
        Ok(Self { text, signatures })
    }

    /// Parses a signed note without checking any signature.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let malformed = |reason| Error::MalformedNote { reason };
        let message = std::str::from_utf8(bytes).map_err(|_| malformed("not valid UTF-8"))?;
        if message.chars().any(|c| c < ' ' && c != '\n') {
            return Err(malformed(
                "must not contain control characters other than newline",
            ));
        }
        if !message.ends_with('\n') {
            return Err(malformed("must end with a newline"));
        }
        let split = message
            .rfind("\n\n")
            .ok_or(malformed("no blank line between text and signatures"))?;
        let text = &message[..=split];
        let sigs = &message[split + 2..];
        if sigs.is_empty() {
            return Err(malformed("no signature lines"));
        }
        let lines: Vec<&str> = sigs
            .strip_suffix('\n')
            .unwrap_or(sigs)
            .split('\n')
            .collect();
        if lines.len() > MAX_SIGNATURES {
            return Err(malformed("more than 100 signatures"));
        }
        let signatures = lines
            .into_iter()
            .map(NoteSignature::parse_line)
            .collect::<Result<_, _>>()?;
        check_text(text)?;
        Ok(Self {
            text: text.to_owned(),
            signatures,
        })
    }

    /// The signed text, final newline included.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// Adds a signature (for example a witness's) to the note.
    pub fn add_signature(&mut self, key: &SigningKey) {
        self.signatures.push(key.sign(&self.text));
    }

    /// Adds a signature made elsewhere (a witness's cosignature), unless
    /// the note already carries one by the same name and key id.
    pub fn push_signature(&mut self, signature: NoteSignature) -> Result<(), Error> {
        if self
            .signatures
            .iter()
            .any(|s| s.name == signature.name && s.key_id == signature.key_id)
        {
            return Ok(());
        }
        if self.signatures.len() >= MAX_SIGNATURES {
            return Err(Error::MalformedNote {
                reason: "more than 100 signatures",
            });
        }
        self.signatures.push(signature);
        Ok(())
    }

    /// Checks the note against the keys the caller trusts.
    ///
    /// Signatures by unknown keys (name and id not both matching a known key)
    /// are ignored. A signature by a known key that fails to verify, or two by
    /// the same known key, reject the note. At least one known key must have
    /// signed. Returns the keys that verified.
    pub fn verify<'k>(&self, known: &'k [VerifierKey]) -> Result<Vec<&'k VerifierKey>, Error> {
        let mut verified: Vec<&VerifierKey> = Vec::new();
        for sig in &self.signatures {
            let Some(key) = known
                .iter()
                .find(|k| k.name == sig.name && k.id == sig.key_id)
            else {
                continue;
            };
            if verified.contains(&key) {
                return Err(Error::DuplicateSignature {
                    key: key.name.to_string(),
                });
            }
            if !key.verifies(&self.text, &sig.signature) {
                return Err(Error::BadSignature {
                    key: key.name.to_string(),
                });
            }
            verified.push(key);
        }
        if verified.is_empty() {
            return Err(Error::NoKnownSignature);
        }
        Ok(verified)
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)?;
        f.write_str("\n")?;
        for sig in &self.signatures {
            writeln!(f, "{sig}")?;
        }
        Ok(())
    }
}
