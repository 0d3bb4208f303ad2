//! C2SP tlog-checkpoints (c2sp.org/tlog-checkpoint): a signed note whose text
//! names the log, its size and its root.

use std::fmt;

use crate::{Error, Hash, Note, SigningKey, TreeSize, VerifierKey};

/// The body of a checkpoint.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Checkpoint {
    origin: String,
    size: TreeSize,
    root: Hash,
    extensions: Vec<String>,
}

fn malformed(reason: impl Into<String>) -> Error {
    Error::MalformedCheckpoint {
        reason: reason.into(),
    }
}

impl Checkpoint {
    pub fn new(origin: impl Into<String>, size: TreeSize, root: Hash) -> Result<Self, Error> {
        let origin = origin.into();
        check_line("origin", &origin)?;
        Ok(Self {
            origin,
            size,
            root,
            extensions: Vec::new(),
        })
    }

    /// Adds an extension line (opaque, non-empty; the spec advises against them).
    pub fn with_extension(mut self, line: impl Into<String>) -> Result<Self, Error> {
        let line = line.into();
        check_line("extension line", &line)?;
        self.extensions.push(line);
        Ok(self)
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn size(&self) -> TreeSize {
        self.size
    }

    pub fn root(&self) -> &Hash {
        &self.root
    }

    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    /// The note text: origin, size, base64 root and extensions, one per line.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            self.root.to_base64()
        );
        for ext in &self.extensions {
            text.push_str(ext);
            text.push('\n');
        }
        text
    }

    /// Parses a checkpoint body (the note text, final newline included).
    pub fn parse_text(text: &str) -> Result<Self, Error> {
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| malformed("must end with a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines.next().unwrap_or_default();
        check_line("origin", origin)?;
        let size_line = lines
            .next()
            .ok_or_else(|| malformed("missing the tree size line"))?;
        let size = parse_size(size_line)?;
        let root_line = lines
            .next()
            .ok_or_else(|| malformed("missing the root hash line"))?;
        let root =
            Hash::from_base64(root_line).map_err(|e| malformed(format!("root hash line: {e}")))?;
        let extensions = lines
            .map(|line| check_line("extension line", line).map(|()| line.to_owned()))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }
}

fn check_line(what: &str, line: &str) -> Result<(), Error> {
    if line.is_empty() {
        return Err(malformed(format!("{what} must not be empty")));
    }
    if line.chars().any(char::is_control) {
        return Err(malformed(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(())
}

fn parse_size(line: &str) -> Result<TreeSize, Error> {
    let canonical = !line.is_empty()
        && line.bytes().all(|b| b.is_ascii_digit())
        && (line == "0" || !line.starts_with('0'));
    if !canonical {
        return Err(malformed(format!(
            "tree size {line:?} must be a decimal number without leading zeros"
        )));
    }
    line.parse::<u64>()
        .ok()
        .and_then(TreeSize::new)
        .ok_or_else(|| malformed(format!("tree size {line} is too large")))
}

/// A checkpoint together with the signed note that carries it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SignedCheckpoint {
    checkpoint: Checkpoint,
    note: Note,
}

impl SignedCheckpoint {
    /// Signs a checkpoint. Trailmark's rule: the log's key is named after the
    /// origin, so a verifier can pick the key by origin.
    pub fn sign(checkpoint: Checkpoint, key: &SigningKey) -> Result<Self, Error> {
        if checkpoint.origin != key.name().as_str() {
            return Err(Error::OriginMismatch {
                expected: key.name().to_string(),
                got: checkpoint.origin,
            });
        }
        let note = Note::sign(checkpoint.to_text(), &[key])?;
        Ok(Self { checkpoint, note })
    }

    /// Parses a signed checkpoint and checks it against the log's key: the
    /// log's signature must verify and the origin must be the key's name.
    /// Signatures by other keys (witnesses) are ignored.
    pub fn open(bytes: &[u8], log_key: &VerifierKey) -> Result<Self, Error> {
        let note = Note::parse(bytes)?;
        note.verify(std::slice::from_ref(log_key))?;
        let checkpoint = Checkpoint::parse_text(note.text())?;
        if checkpoint.origin != log_key.name().as_str() {
            return Err(Error::OriginMismatch {
                expected: log_key.name().to_string(),
                got: checkpoint.origin,
            });
        }
        Ok(Self { checkpoint, note })
    }

    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    pub fn note(&self) -> &Note {
        &self.note
    }
}

impl fmt::Display for SignedCheckpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.note, f)
    }
}
