//! Payload partitions: made before the payloads they hold arrive, dropped
//! or rewritten by the scrub after a removal. The span of a partition is
//! the schema's to define (`trailmark_ledger.payload_span`, migration 9);
//! this module asks it.

use std::sync::Mutex;

use tokio_postgres::GenericClient;
use trailmark_store::StoreError;

use crate::db;

/// Spans of received times (`[start, end)`, Unix milliseconds) whose
/// partition this process has seen made.
#[derive(Default)]
pub(crate) struct Known(Mutex<Vec<(i64, i64)>>);

impl Known {
    fn spans(&self) -> std::sync::MutexGuard<'_, Vec<(i64, i64)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The times no known span covers, each once (one lock for a batch).
    fn uncovered(&self, received: impl IntoIterator<Item = i64>) -> Vec<i64> {
        let spans = self.spans();
        let mut out: Vec<i64> = received
            .into_iter()
            .filter(|&at| !spans.iter().any(|&(s, e)| s <= at && at < e))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Forgets every span: a scrub on any server may have dropped one.
    pub(crate) fn forget(&self) {
        self.spans().clear();
    }
}

/// Makes sure a partition holds each of these received times, creating
/// what is missing. Not in the caller's transaction: creating a partition
/// locks the payloads table, which an append holding tenant locks must not
/// wait for.
pub(crate) async fn ensure(
    c: &impl GenericClient,
    known: &Known,
    received: impl IntoIterator<Item = i64>,
) -> Result<(), StoreError> {
    let missing = known.uncovered(received);
    if missing.is_empty() {
        return Ok(());
    }
    let rows = c
        .query(
            "SELECT lower(s), upper(s) FROM (
                 SELECT trailmark_ledger.ensure_payload_partition(start) AS s FROM (
                     SELECT DISTINCT lower(trailmark_ledger.payload_span(r)) AS start
                     FROM unnest($1::int8[]) AS u(r)) AS starts) AS spans",
            &[&missing],
        )
        .await
        .map_err(db("making payload partitions"))?;
    let mut spans = known.spans();
    for row in rows {
        spans.push((row.get(0), row.get(1)));
    }
    Ok(())
}

/// Whether an error is PostgreSQL finding no partition for a row (another
/// server's scrub dropped one this process knew).
pub(crate) fn no_partition(e: &StoreError) -> bool {
    matches!(e, StoreError::Backend { source, .. }
        if source
            .downcast_ref::<tokio_postgres::Error>()
            .and_then(tokio_postgres::Error::code)
            == Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION))
}

/// Work a migration left to do outside a transaction: after migration 9,
/// the entries table is rewritten so the payload columns it dropped leave
/// its files.
pub(crate) async fn maintain(c: &deadpool_postgres::Object) -> Result<(), StoreError> {
    let tasks: Vec<String> = c
        .query("SELECT task FROM trailmark_ledger.maintenance", &[])
        .await
        .map_err(db("reading maintenance tasks"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if tasks.iter().any(|t| t == "rewrite entries") {
        // The migration's own updates left old row versions holding the
        // dropped payload columns: past every transaction from before it.
        // A ledger migrated empty (a new one) holds none: nothing to wait
        // for or rewrite.
        let empty: bool = c
            .query_one(
                "SELECT NOT EXISTS (SELECT 1 FROM trailmark_ledger.entries)",
                &[],
            )
            .await
            .map_err(db("looking for entries to rewrite"))?
            .get(0);
        if !empty {
            let now = current_xid(&***c).await?;
            rewrite(&***c, "trailmark_ledger.entries", now).await?;
        }
        c.execute(
            "DELETE FROM trailmark_ledger.maintenance WHERE task = 'rewrite entries'",
            &[],
        )
        .await
        .map_err(db("recording a maintenance task done"))?;
    }
    Ok(())
}

/// How long the scrub waits for the lock that dropping a partition takes
/// on the payloads table (every read and append holds it briefly); past
/// it, the partition is left for the next scrub.
const DROP_LOCK_WAIT: &str = "10s";

/// After a removal: every partition that holds payloads of removed
/// entries is dropped whole when nothing in it is kept and its span has
/// ended, or else has those payloads deleted and is rewritten
/// (`VACUUM (FULL)`: a plain VACUUM leaves the deleted bytes in the pages).
/// Only the partitions a removal touched are visited.
pub(crate) async fn scrub(c: &mut deadpool_postgres::Object) -> Result<(), StoreError> {
    let pending = c
        .query(
            "SELECT start, marked, trailmark_ledger.payload_partition(start),
                    upper(trailmark_ledger.payload_span(start)) <= (extract(epoch FROM now()) * 1000)::bigint
             FROM trailmark_ledger.scrub_pending ORDER BY start",
            &[],
        )
        .await
        .map_err(db("reading partitions to scrub"))?;
    for row in pending {
        let (start, marked, name, ended): (i64, i64, String, bool) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let table = format!("trailmark_ledger.\"{name}\"");
        let exists: bool = c
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
            .await
            .map_err(db("finding a payload partition"))?
            .get(0);
        if exists && !(ended && drop_if_emptied(c, &table).await?) {
            let tx = c
                .transaction()
                .await
                .map_err(db("starting to delete removed payloads"))?;
            tx.execute(
                &format!(
                    "DELETE FROM {table} p USING trailmark_ledger.entries e
                     WHERE e.pos = p.pos AND e.removed_kind IS NOT NULL"
                ),
                &[],
            )
            .await
            .map_err(db("deleting removed payloads"))?;
            let deleted_by = current_xid(&*tx).await?;
            tx.commit()
                .await
                .map_err(db("committing the deletion of removed payloads"))?;
            rewrite(&***c, &table, deleted_by).await?;
        }
        c.execute(
            "DELETE FROM trailmark_ledger.scrub_pending WHERE start = $1 AND marked = $2",
            &[&start, &marked],
        )
        .await
        .map_err(db("recording a partition scrubbed"))?;
    }
    Ok(())
}

/// The id of the current transaction (its low 32 bits, as `xid` is).
async fn current_xid(c: &impl GenericClient) -> Result<i64, StoreError> {
    Ok(c.query_one("SELECT txid_current() % 4294967296", &[])
        .await
        .map_err(db("reading a transaction id"))?
        .get(0))
}

/// How long a rewrite waits for the transactions that could still see
/// deleted rows to end; past it, the scrub fails and is retried by the
/// next cleanup.
const HORIZON_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// `VACUUM (FULL)` of a table whose rows transaction `deleted_by` deleted
/// (or updated), once no transaction that could still see those rows is
/// left: VACUUM copies a row that some snapshot may still see into the new
/// files, bytes and all (an autovacuum ANALYZE, a long report or a
/// `pg_dump` running across the deletion would keep it). Waits for every
/// session, prepared transaction and replication slot holding an older
/// horizon, in any database of the cluster: PostgreSQL keeps rows for a
/// transaction with an older id in another database too (seen in the
/// tests, where other tests' databases share the server).
pub(crate) async fn rewrite(
    c: &impl GenericClient,
    table: &str,
    deleted_by: i64,
) -> Result<(), StoreError> {
    let deadline = std::time::Instant::now() + HORIZON_WAIT;
    loop {
        let holding: Vec<String> = c
            .query(
                "SELECT 'session ' || pid || ' (database ' || coalesce(datname, '-') || ', '
                        || coalesce(nullif(application_name, ''), backend_type) || ', since '
                        || coalesce(xact_start::text, '?') || ')'
                 FROM pg_stat_activity
                 WHERE pid <> pg_backend_pid()
                   AND (age(backend_xmin) >= age($1::bigint::text::xid)
                        OR age(backend_xid) >= age($1::bigint::text::xid))
                 UNION ALL
                 SELECT 'prepared transaction ' || gid FROM pg_prepared_xacts
                 WHERE age(transaction) >= age($1::bigint::text::xid)
                 UNION ALL
                 SELECT 'replication slot ' || slot_name FROM pg_replication_slots
                 WHERE xmin IS NOT NULL AND age(xmin) >= age($1::bigint::text::xid)",
                &[&deleted_by],
            )
            .await
            .map_err(db("looking for transactions older than a deletion"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if holding.is_empty() {
            break;
        }
        if std::time::Instant::now() >= deadline {
            return Err(StoreError::Conflict(format!(
                "{table} cannot be rewritten yet: {} can still see the removed rows; the next cleanup retries",
                holding.join(", ")
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    c.batch_execute(&format!("VACUUM (FULL) {table}"))
        .await
        .map_err(db("rewriting a table after a removal"))
}

/// Drops a partition if every payload in it belongs to a removed entry;
/// whether it did. The full check runs without locks; under the lock that
/// dropping takes (which holds up every append and read of payloads) only
/// rows written since that check's snapshot are checked again.
async fn drop_if_emptied(
    client: &mut deadpool_postgres::Object,
    table: &str,
) -> Result<bool, StoreError> {
    let kept = |since: &str| {
        format!(
            "SELECT EXISTS (SELECT 1 FROM {table} p JOIN trailmark_ledger.entries e
                            ON e.pos = p.pos WHERE e.removed_kind IS NULL{since})"
        )
    };
    let row = client
        .query_one(
            &format!(
                "SELECT ({}), txid_snapshot_xmin(txid_current_snapshot()) % 4294967296",
                kept("")
            ),
            &[],
        )
        .await
        .map_err(db("looking for kept payloads"))?;
    let (any_kept, seen): (bool, i64) = (row.get(0), row.get(1));
    if any_kept {
        return Ok(false);
    }
    // The transaction rolls back if it is not committed.
    let tx = client
        .transaction()
        .await
        .map_err(db("starting a partition drop"))?;
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = '{DROP_LOCK_WAIT}';
         LOCK TABLE trailmark_ledger.payloads, {table} IN ACCESS EXCLUSIVE MODE"
    ))
    .await
    .map_err(db("locking a payload partition to drop it"))?;
    // Rows the first check could not see: written by transactions from
    // its snapshot's oldest running one on.
    let any_kept: bool = tx
        .query_one(
            &kept(" AND age(p.xmin) <= age($1::bigint::text::xid)"),
            &[&seen],
        )
        .await
        .map_err(db("looking for kept payloads"))?
        .get(0);
    if any_kept {
        return Ok(false);
    }
    tx.batch_execute(&format!("DROP TABLE {table}"))
        .await
        .map_err(db("dropping a payload partition"))?;
    tx.commit()
        .await
        .map_err(db("committing a partition drop"))?;
    Ok(true)
}
