//! Receipts: self-contained, offline-checkable proofs that an entry is in the
//! log, in the C2SP tlog-proof format (c2sp.org/tlog-proof).
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64 of opaque data>        (optional)
//! index <leaf index>
//! <base64 inclusion proof hash>        (zero or more, leaf's sibling first)
//!
//! <the signed checkpoint, verbatim>
//! ```

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::{
    Checkpoint, Error, Hash, LeafIndex, Note, SignedCheckpoint, VerifierKey, verify_inclusion,
};

const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// An inclusion proof bundled with the checkpoint it leads to.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Receipt {
    extra: Option<Vec<u8>>,
    index: LeafIndex,
    proof: Vec<Hash>,
    checkpoint: Note,
}

fn malformed(reason: impl Into<String>) -> Error {
    Error::MalformedReceipt {
        reason: reason.into(),
    }
}

impl Receipt {
    /// Bundles a proof of `index` with the checkpoint it was made against.
    /// `extra` is opaque, unauthenticated data (Trailmark puts the entry's
    /// envelope there, so the receipt alone recomputes the leaf hash).
    pub fn new(
        extra: Option<Vec<u8>>,
        index: LeafIndex,
        proof: Vec<Hash>,
        checkpoint: &SignedCheckpoint,
    ) -> Self {
        Self {
            extra,
            index,
            proof,
            checkpoint: checkpoint.note().clone(),
        }
    }

    pub fn extra(&self) -> Option<&[u8]> {
        self.extra.as_deref()
    }

    pub fn index(&self) -> LeafIndex {
        self.index
    }

    pub fn proof(&self) -> &[Hash] {
        &self.proof
    }

    /// The signed checkpoint the proof leads to, with every signature it
    /// carries (witnesses' cosignatures too).
    pub fn checkpoint(&self) -> &Note {
        &self.checkpoint
    }

    /// Parses a receipt without checking it.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let text = std::str::from_utf8(bytes).map_err(|_| malformed("not valid UTF-8"))?;
        let (head, checkpoint) = text
            .split_once("\n\n")
            .ok_or_else(|| malformed("no blank line before the checkpoint"))?;
        let mut lines = head.split('\n').peekable();
        if lines.next() != Some(HEADER) {
            return Err(malformed(format!("first line must be {HEADER}")));
        }
        let mut extra = None;
        if let Some(rest) = lines.peek().and_then(|l| l.strip_prefix("extra ")) {
            extra = Some(
                BASE64
                    .decode(rest)
                    .map_err(|_| malformed("extra is not base64"))?,
            );
            lines.next();
        }
        let index_line = lines.next().unwrap_or_default();
        let index = index_line
            .strip_prefix("index ")
            .filter(|n| *n == "0" || (!n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit())))
            .and_then(|n| n.parse::<u64>().ok())
            .and_then(LeafIndex::new)
            .ok_or_else(|| malformed(format!("expected 'index <n>', got {index_line:?}")))?;
        let proof = lines
            .map(|line| Hash::from_base64(line).map_err(|e| malformed(format!("proof line: {e}"))))
            .collect::<Result<_, _>>()?;
        let checkpoint = Note::parse(checkpoint.as_bytes())?;
        Ok(Self {
            extra,
            index,
            proof,
            checkpoint,
        })
    }

    /// Checks the receipt: the checkpoint is signed by the log's key, and
    /// `leaf` is at `index` in the tree it commits to. Returns the checkpoint.
    pub fn verify(&self, leaf: &Hash, log_key: &VerifierKey) -> Result<Checkpoint, Error> {
        let signed = SignedCheckpoint::open(self.checkpoint.to_string().as_bytes(), log_key)?;
        let cp = signed.checkpoint();
        verify_inclusion(leaf, self.index, cp.size(), &self.proof, cp.root())?;
        Ok(cp.clone())
    }
}

impl fmt::Display for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{HEADER}")?;
        if let Some(extra) = &self.extra {
            writeln!(f, "extra {}", BASE64.encode(extra))?;
        }
        writeln!(f, "index {}", self.index)?;
        for hash in &self.proof {
            writeln!(f, "{}", hash.to_base64())?;
        }
        writeln!(f)?;
        fmt::Display::fmt(&self.checkpoint, f)
    }
}
