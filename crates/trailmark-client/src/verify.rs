//! Checking what the server says instead of believing it: a receipt
//! proves one event is in a tenant's log ([`check_receipt`]); a
//! [`Follower`] remembers the newest checkpoint of each tenant it was
//! shown and demands that every later one extend it (a consistency
//! proof), so a server that rolls its log back or forks it is caught by
//! the next check. The rules are `trailmark-verify`'s, the ones the CLI's
//! `verify` and the capture drainer apply.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension as _, params};
use trailmark_log::{Checkpoint, Hash, Note, VerifierKey};
pub use trailmark_verify::{Divergence, ReceiptFacts};
use trailmark_wire::{ConsistencyProof, EventDetail};

use crate::{Client, Error};

/// Checks a receipt (`proof.receipt` of `GET /v1/events/{id}`: a C2SP
/// tlog-proof carrying the envelope) against the verifier keys the caller
/// trusts: the checkpoint's signature, the inclusion proof, and that the
/// envelope is the entry at the proven index of that tenant's log. Needs
/// no server.
pub fn check_receipt(receipt: &str, keys: &[VerifierKey]) -> Result<ReceiptFacts, Error> {
    trailmark_verify::verify_receipt(receipt.as_bytes(), keys).map_err(Error::Unverified)
}

impl Client {
    /// The receipt of an event, `None` for the second or so before a
    /// signed checkpoint covers it.
    pub fn receipt(&self, id: &str) -> Result<Option<String>, Error> {
        if id.trim().is_empty() || id.contains('/') {
            return Err(Error::Invalid(format!("id: {id:?} is not an event id")));
        }
        let detail: EventDetail = self.get(&format!("/v1/events/{id}"), &[])?;
        Ok(detail.proof.map(|p| p.receipt))
    }

    /// The trail's signing keys, oldest first, each with the transition
    /// statement into it (`GET /v1/signing-keys`): what a verifier follows
    /// across a rotation. Believe a key only through a transition signed by
    /// one you already trust.
    pub fn signing_keys(&self) -> Result<Vec<trailmark_verify::KeyRecordView>, Error> {
        let keys: trailmark_wire::SigningKeys = self.get("/v1/signing-keys", &[])?;
        keys.keys
            .into_iter()
            .map(|k| {
                let public = Hash::from_base64(&k.public_key).map_err(|e| {
                    Error::Unverified(format!("the server's signing key {}: {e}", k.ordinal))
                })?;
                Ok(trailmark_verify::KeyRecordView {
                    public_key: *public.as_bytes(),
                    origin_prefix: k.origin_prefix,
                    transition: k.transition,
                })
            })
            .collect()
    }

    /// The key the server says signs `tenant`'s checkpoints (believe it
    /// only as far as you believe the server: pin a copy kept apart).
    pub fn verifier_key(&self, tenant: &str) -> Result<VerifierKey, Error> {
        let text = self.get_text("/v1/verifier-key", &[("tenant", tenant)])?;
        VerifierKey::parse(text.trim())
            .map_err(|e| Error::Unverified(format!("the server's verifier key: {e}")))
    }
}

/// A checkpoint a [`Follower`] accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub size: u64,
    pub root: Hash,
    /// The signed note, as the server gave it.
    pub note: String,
}

/// The newest checkpoint seen of each tenant, kept in a SQLite file (so a
/// restart of the application does not forget it), with the key that
/// signs it: pinned by the caller, or the one the server showed the first
/// time (trust on first use).
#[derive(Debug)]
pub struct Follower {
    db: Mutex<Connection>,
}

#[allow(clippy::needless_pass_by_value)] // the shape `map_err` passes
fn file_error(e: rusqlite::Error) -> Error {
    Error::Spool(format!("the checkpoint file: {e}"))
}

impl Follower {
    pub fn open(path: &Path) -> Result<Self, Error> {
        let db = Connection::open(path).map_err(file_error)?;
        // FULL: a checkpoint acknowledged as seen stays seen after a power
        // loss (it is written once per check, not per event).
        db.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 30000;
             CREATE TABLE IF NOT EXISTS seen (tenant TEXT PRIMARY KEY, size INTEGER,
                 root TEXT, note TEXT, verifier_key TEXT NOT NULL);",
        )
        .map_err(file_error)?;
        Ok(Self { db: Mutex::new(db) })
    }

    /// Trusts `key` for `tenant` from now on, instead of the key the
    /// server shows. Refused once a checkpoint was seen under another key
    /// (after a signing-key rotation: [`Follower::forget`] the tenant
    /// first, knowingly).
    pub fn pin(&self, tenant: &str, key: &VerifierKey) -> Result<(), Error> {
        let text = key.to_string();
        match self.remembered_key(tenant)? {
            Some(k) if k == text => Ok(()),
            Some(_) => Err(Error::Invalid(format!(
                "tenant {tenant}: a checkpoint was seen under another key; forget it first"
            ))),
            None => self
                .lock()
                .execute(
                    "INSERT INTO seen (tenant, verifier_key) VALUES (?1, ?2)",
                    params![tenant, text],
                )
                .map(drop)
                .map_err(file_error),
        }
    }

    /// The key remembered (pinned, or taken on first use) for `tenant`.
    fn remembered_key(&self, tenant: &str) -> Result<Option<String>, Error> {
        self.lock()
            .query_row(
                "SELECT verifier_key FROM seen WHERE tenant = ?1",
                [tenant],
                |r| r.get(0),
            )
            .optional()
            .map_err(file_error)
    }

    /// The checkpoint remembered for `tenant`.
    pub fn seen(&self, tenant: &str) -> Result<Option<Seen>, Error> {
        let row: Option<(Option<i64>, Option<String>, Option<String>)> = self
            .lock()
            .query_row(
                "SELECT size, root, note FROM seen WHERE tenant = ?1",
                [tenant],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(file_error)?;
        let Some((Some(size), Some(root), Some(note))) = row else {
            return Ok(None);
        };
        let root = Hash::from_base64(&root)
            .map_err(|e| Error::Spool(format!("the remembered root of {tenant}: {e}")))?;
        Ok(Some(Seen {
            size: size.unsigned_abs(),
            root,
            note,
        }))
    }

    /// Fetches `tenant`'s newest checkpoint and accepts it only if it is
    /// signed by the tenant's key and extends the one remembered (proved by
    /// the server's consistency proof); then remembers it. A rollback or a
    /// fork is [`Error::Diverged`], and the remembered checkpoint stays.
    pub fn check(&self, client: &Client, tenant: &str) -> Result<Seen, Error> {
        let note = client.get_text("/v1/checkpoint", &[("tenant", tenant)])?;
        let key = match &self.remembered_key(tenant)? {
            Some(text) => VerifierKey::parse(text)
                .map_err(|e| Error::Spool(format!("the remembered key of {tenant}: {e}")))?,
            None => client.verifier_key(tenant)?,
        };
        let seen = self.seen(tenant)?;
        let size = Note::parse(note.as_bytes())
            .ok()
            .and_then(|n| Checkpoint::parse_text(n.text()).ok())
            .map(|c| c.size().get());
        let proof = match (&seen, size) {
            (Some(s), Some(to)) if s.size > 0 && to > s.size => {
                let proof: ConsistencyProof = client.get(
                    "/v1/proofs/consistency",
                    &[
                        ("tenant", tenant),
                        ("first", &s.size.to_string()),
                        ("second", &to.to_string()),
                    ],
                )?;
                proof
                    .hashes
                    .iter()
                    .map(|h| Hash::from_base64(h))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| Error::Diverged {
                        tenant: tenant.to_owned(),
                        why: Divergence::Fork {
                            seen: s.size,
                            now: to,
                            why: format!("an unreadable consistency proof: {e}"),
                        },
                    })?
            }
            _ => Vec::new(),
        };
        let seen = seen.map(|s| (s.size, s.root));
        // A checkpoint signed by another key is followed only through the
        // trail's record of a rotation from the remembered key.
        let followed = match trailmark_verify::follow(seen, &note, &key, &proof) {
            Err(Divergence::NotSigned(why)) => trailmark_verify::follow_rotated(
                seen,
                &note,
                &key,
                &proof,
                tenant,
                &client.signing_keys()?,
                why,
            ),
            other => other.map(|(size, root)| (size, root, key.clone())),
        };
        let (size, root, key) = followed.map_err(|why| Error::Diverged {
            tenant: tenant.to_owned(),
            why,
        })?;
        self.lock()
            .execute(
                "INSERT INTO seen (tenant, size, root, note, verifier_key) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (tenant) DO UPDATE SET size = excluded.size, root = excluded.root,
                     note = excluded.note, verifier_key = excluded.verifier_key",
                params![
                    tenant,
                    i64::try_from(size).unwrap_or(i64::MAX),
                    root.to_base64(),
                    note,
                    key.to_string()
                ],
            )
            .map_err(file_error)?;
        Ok(Seen { size, root, note })
    }

    /// Forgets `tenant`'s checkpoint and key (an operator's decision, after
    /// a divergence was explained or the signing key rotated); false when
    /// none was remembered.
    pub fn forget(&self, tenant: &str) -> Result<bool, Error> {
        self.lock()
            .execute("DELETE FROM seen WHERE tenant = ?1", [tenant])
            .map(|n| n > 0)
            .map_err(file_error)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
