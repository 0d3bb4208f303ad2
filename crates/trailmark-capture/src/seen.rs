//! The drainer's memory of the trail: per tenant, the newest checkpoint the
//! ledger showed it (and the verifier key it was signed with), kept in the
//! application's database (`trailmark.seen_checkpoints`). Every later
//! checkpoint must extend it (`trailmark_verify::follow`); on a rollback or
//! a fork the drain stops instead of feeding a rewritten trail.

use tokio_postgres::Client;
use trailmark_log::{Checkpoint, Hash, Note, VerifierKey};

use crate::drain::sink_error;
use crate::{Error, Sink, pg};

/// The memory table, as `install` creates it (and a drainer, for an
/// install that predates it).
pub(crate) const TABLE: &str = "CREATE TABLE IF NOT EXISTS trailmark.seen_checkpoints (
    tenant text PRIMARY KEY,
    size bigint NOT NULL,
    root text NOT NULL,
    verifier_key text NOT NULL,
    note text NOT NULL,
    seen_at timestamptz NOT NULL DEFAULT now()
)";

/// Creates the memory table if this install predates it. Only then: even
/// `CREATE TABLE IF NOT EXISTS` needs the right to create in the schema,
/// which a drainer's role need not have (docs/CAPTURE.md, "The drainer's
/// role").
pub(crate) async fn prepare(client: &Client) -> Result<(), Error> {
    let context = "looking for trailmark.seen_checkpoints";
    if crate::has_table(client, "seen_checkpoints", context).await? {
        return Ok(());
    }
    client
        .batch_execute(TABLE)
        .await
        .map_err(pg("creating trailmark.seen_checkpoints"))
}

/// Every tenant a checkpoint is remembered for.
pub(crate) async fn tenants(client: &Client) -> Result<Vec<String>, Error> {
    Ok(client
        .query(
            "SELECT tenant FROM trailmark.seen_checkpoints ORDER BY tenant",
            &[],
        )
        .await
        .map_err(pg("reading trailmark.seen_checkpoints"))?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Holds each tenant's newest checkpoint to the remembered one, and
/// remembers it. A checkpoint the ledger shows again unchanged (the same
/// signed note as the remembered one: the ledger signs at most every 250 ms,
/// the drainer appends far more often under small transactions) was followed
/// when it was remembered, and is left as it is: no write transaction in the
/// application's database for it.
pub(crate) async fn check<S: Sink>(
    client: &Client,
    sink: &S,
    tenants: &[String],
) -> Result<(), Error> {
    for tenant in tenants {
        let Some((note, server_key)) = sink.checkpoint(tenant).await.map_err(sink_error)? else {
            continue;
        };
        let row = client
            .query_opt(
                "SELECT size, root, verifier_key, note FROM trailmark.seen_checkpoints WHERE tenant = $1",
                &[tenant],
            )
            .await
            .map_err(pg("reading trailmark.seen_checkpoints"))?;
        if row.as_ref().is_some_and(|r| r.get::<_, &str>(3) == note) {
            continue;
        }
        let diverged = |why: String| Error::Diverged {
            tenant: tenant.clone(),
            why,
        };
        let (seen, key_text) = match &row {
            Some(r) => {
                let size: i64 = r.get(0);
                let root: String = r.get(1);
                let root = Hash::from_base64(&root)
                    .map_err(|e| diverged(format!("the remembered root: {e}")))?;
                (
                    Some((u64::try_from(size).unwrap_or(0), root)),
                    r.get::<_, String>(2),
                )
            }
            None => (None, server_key),
        };
        let key = VerifierKey::parse(&key_text)
            .map_err(|e| diverged(format!("the verifier key: {e}")))?;
        let size = Note::parse(note.as_bytes())
            .ok()
            .and_then(|n| Checkpoint::parse_text(n.text()).ok())
            .map(|c| c.size().get());
        let proof = match (seen, size) {
            (Some((from, _)), Some(to)) if from > 0 && to > from => sink
                .consistency(tenant, from, to)
                .await
                .map_err(sink_error)?
                .iter()
                .map(|h| Hash::from_base64(h))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| diverged(format!("the consistency proof: {e}")))?,
            _ => Vec::new(),
        };
        // A checkpoint signed by another key is followed only through the
        // ledger's record of a rotation from the remembered key.
        let followed = match trailmark_verify::follow(seen, &note, &key, &proof) {
            Err(trailmark_verify::Divergence::NotSigned(why)) => {
                let records = sink.signing_keys().await.map_err(sink_error)?;
                trailmark_verify::follow_rotated(seen, &note, &key, &proof, tenant, &records, why)
            }
            other => other.map(|(size, root)| (size, root, key.clone())),
        };
        let (size, root, key) = followed.map_err(|d| diverged(d.to_string()))?;
        let key_text = key.to_string();
        // Never back: two batches in flight check side by side, and the
        // one that read the older checkpoint may write last.
        client
            .execute(
                "INSERT INTO trailmark.seen_checkpoints (tenant, size, root, verifier_key, note)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (tenant) DO UPDATE SET size = excluded.size, root = excluded.root,
                     note = excluded.note, verifier_key = excluded.verifier_key, seen_at = now()
                 WHERE trailmark.seen_checkpoints.size <= excluded.size",
                &[
                    tenant,
                    &i64::try_from(size).unwrap_or(i64::MAX),
                    &root.to_base64(),
                    &key_text,
                    &note,
                ],
            )
            .await
            .map_err(pg("remembering a checkpoint"))?;
    }
    Ok(())
}

/// Forgets the checkpoint remembered for `tenant` (an operator's decision
/// after a rollback or fork was resolved); false when none was.
pub async fn forget(client: &Client, tenant: &str) -> Result<bool, Error> {
    prepare(client).await?;
    Ok(client
        .execute(
            "DELETE FROM trailmark.seen_checkpoints WHERE tenant = $1",
            &[&tenant],
        )
        .await
        .map_err(pg("forgetting a checkpoint"))?
        > 0)
}
