//! What a witness decides about an `add-checkpoint` request
//! (c2sp.org/tlog-witness), given what it last cosigned for the origin.
//! `trailmark witness` persists and answers; the rule is here.

use trailmark_log::{AddCheckpoint, Checkpoint, Hash, TreeSize, VerifierKey, verify_consistency};

/// Why a witness refuses, with the HTTP status the protocol prescribes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 404: the witness does not know this log.
    UnknownOrigin(String),
    /// 403: no signature by the log's key verifies.
    NotSigned(String),
    /// 400: malformed, or `old` beyond the checkpoint.
    BadRequest(String),
    /// 409: `old` is not the size last cosigned; the body is that size.
    OldSize { latest: u64 },
    /// 409: the same size as last cosigned, with another root (a fork).
    Fork { size: u64 },
    /// 422: the consistency proof does not verify (a fork or a rollback).
    Inconsistent(String),
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Self::UnknownOrigin(_) => 404,
            Self::NotSigned(_) => 403,
            Self::BadRequest(_) => 400,
            Self::OldSize { .. } | Self::Fork { .. } => 409,
            Self::Inconsistent(_) => 422,
        }
    }

    /// The response body (`text/x.tlog.size` for an old-size conflict).
    pub fn body(&self) -> String {
        match self {
            Self::OldSize { latest } => format!("{latest}\n"),
            Self::Fork { size } => format!(
                "a different checkpoint of size {size} was cosigned before: the log forked\n"
            ),
            Self::UnknownOrigin(m)
            | Self::NotSigned(m)
            | Self::BadRequest(m)
            | Self::Inconsistent(m) => format!("{m}\n"),
        }
    }
}

/// Judges a request against the log's keys (`keys_for(origin)`, empty when
/// the origin is unknown) and the latest checkpoint cosigned for that
/// origin. On acceptance returns the checkpoint to record and cosign.
pub fn judge(
    request: &AddCheckpoint,
    keys: &[VerifierKey],
    latest: Option<(u64, Hash)>,
) -> Result<Checkpoint, Refusal> {
    let note = &request.checkpoint;
    let checkpoint = Checkpoint::parse_text(note.text())
        .map_err(|e| Refusal::BadRequest(format!("not a checkpoint: {e}")))?;
    if keys.is_empty() {
        return Err(Refusal::UnknownOrigin(format!(
            "unknown log {}",
            checkpoint.origin()
        )));
    }
    note.verify(keys)
        .map_err(|e| Refusal::NotSigned(format!("the log's signature: {e}")))?;
    let size = checkpoint.size();
    if request.old > size.get() {
        return Err(Refusal::BadRequest(format!(
            "old size {} is beyond the checkpoint's {}",
            request.old,
            size.get()
        )));
    }
    let (latest_size, latest_root) = latest.unwrap_or((0, trailmark_log::empty_root()));
    if request.old != latest_size {
        return Err(Refusal::OldSize {
            latest: latest_size,
        });
    }
    if request.old == size.get() {
        if latest.is_some() && latest_root != *checkpoint.root() {
            return Err(Refusal::Fork { size: size.get() });
        }
        if !request.proof.is_empty() {
            return Err(Refusal::Inconsistent(
                "a proof between equal sizes must be empty".into(),
            ));
        }
        return Ok(checkpoint);
    }
    let old = TreeSize::new(request.old)
        .ok_or_else(|| Refusal::BadRequest("old size too large".into()))?;
    verify_consistency(old, size, &request.proof, &latest_root, checkpoint.root()).map_err(
        |e| {
            Refusal::Inconsistent(format!(
                "no consistency from the cosigned size {}: {e}",
                request.old
            ))
        },
    )?;
    Ok(checkpoint)
}
