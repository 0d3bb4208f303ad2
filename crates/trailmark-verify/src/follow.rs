//! A client that remembers the newest checkpoint it was shown (the capture
//! drainer, an SDK) and demands that every later one extend it.

use trailmark_log::{Checkpoint, Hash, Note, TreeSize, VerifierKey, verify_consistency};

use crate::{KeyHistory, KeyRecordView};

/// Why a newer checkpoint cannot follow the remembered one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Divergence {
    /// Not a checkpoint signed by the key remembered with the log.
    NotSigned(String),
    /// Shorter than what was seen: the log was rolled back.
    Rollback { seen: u64, now: u64 },
    /// Same size, another root; or no valid consistency proof: a fork.
    Fork { seen: u64, now: u64, why: String },
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotSigned(why) => {
                write!(f, "the checkpoint is not signed by the log's key: {why}")
            }
            Self::Rollback { seen, now } => write!(
                f,
                "the log now has {now} entries, fewer than the {seen} already seen: it was rolled back"
            ),
            Self::Fork { seen, now, why } => write!(
                f,
                "the checkpoint at {now} does not extend the one seen at {seen} ({why}): the log forked"
            ),
        }
    }
}

/// Checks `note` (signed by `key`) against the remembered `(size, root)`,
/// with `proof` the consistency proof from the remembered size to the
/// note's (empty when there is nothing remembered or the sizes are equal).
/// Returns the note's size and root, to remember next.
pub fn follow(
    seen: Option<(u64, Hash)>,
    note: &str,
    key: &VerifierKey,
    proof: &[Hash],
) -> Result<(u64, Hash), Divergence> {
    let parsed = Note::parse(note.as_bytes()).map_err(|e| Divergence::NotSigned(e.to_string()))?;
    parsed
        .verify(std::slice::from_ref(key))
        .map_err(|e| Divergence::NotSigned(e.to_string()))?;
    let cp =
        Checkpoint::parse_text(parsed.text()).map_err(|e| Divergence::NotSigned(e.to_string()))?;
    if cp.origin() != key.name().as_str() {
        return Err(Divergence::NotSigned(format!(
            "its origin is {}",
            cp.origin()
        )));
    }
    let (size, root) = (cp.size(), *cp.root());
    let Some((seen_size, seen_root)) = seen else {
        return Ok((size.get(), root));
    };
    let fork = |why: String| Divergence::Fork {
        seen: seen_size,
        now: size.get(),
        why,
    };
    if size.get() < seen_size {
        return Err(Divergence::Rollback {
            seen: seen_size,
            now: size.get(),
        });
    }
    if size.get() == seen_size {
        return if root == seen_root {
            Ok((size.get(), root))
        } else {
            Err(fork("same size, another root".into()))
        };
    }
    let first = TreeSize::new(seen_size).ok_or_else(|| fork("size too large".into()))?;
    verify_consistency(first, size, proof, &seen_root, &root).map_err(|e| fork(e.to_string()))?;
    Ok((size.get(), root))
}

/// [`follow`] after it answered [`Divergence::NotSigned`] (`why`) for the
/// remembered `key`: the trail's signing-key `records` must lead from `key`
/// to a newer one (each transition signed by the key before it,
/// [`KeyHistory::successor`]) that signs `note`. Returns the note's size
/// and root and the key to remember from now on. A server that shows a new
/// key without a transition from the remembered one is still not signed.
pub fn follow_rotated(
    seen: Option<(u64, Hash)>,
    note: &str,
    key: &VerifierKey,
    proof: &[Hash],
    tenant: &str,
    records: &[KeyRecordView],
    why: String,
) -> Result<(u64, Hash, VerifierKey), Divergence> {
    let next = KeyHistory::new(records)
        .and_then(|h| h.successor(tenant, key))
        .map_err(|e| {
            Divergence::NotSigned(format!("{why}; no key rotation leads on from it: {e}"))
        })?;
    if next == *key {
        return Err(Divergence::NotSigned(why));
    }
    let (size, root) = follow(seen, note, &next, proof)?;
    Ok((size, root, next))
}
