//! Hourly counts: what a stats read takes for its window's whole hours
//! instead of their entries (`read::stats`). Each server that appends runs
//! a task that counts the entries behind its commits, a tenant's entries in
//! `seq` order, so that where a tenant is counted to is one number
//! (`trailmark_ledger.counted`): the entries below it are in
//! `hour_counts`, the entries above it are read one by one.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use trailmark_store::{IndexerStatus, StoreError};

use crate::read::{HOUR, STATS_BY};
use crate::{db, to_i64};

/// Every tenant `t` (named `t.tenant`, its size `t.size`) beside its row
/// of `counted` (`k`), for [`COUNTED_TO`].
pub(crate) const TENANTS_COUNTED: &str = "trailmark_ledger.tenants AS t (tenant)
     LEFT JOIN trailmark_ledger.counted k ON k.tenant = t.tenant";

/// Where tenant `t` of [`TENANTS_COUNTED`] is counted to: every entry
/// below this seq is in `hour_counts`, none above (a tenant without a row
/// is counted to 0).
pub(crate) const COUNTED_TO: &str = "coalesce(k.seq, 0)";

/// At most this many entries of one tenant are counted in one transaction.
pub const COUNT_CHUNK: u64 = 50_000;

/// The counting task rests this long after each round, so that a round
/// counts many commits' entries in one statement.
pub const COUNT_PAUSE: Duration = Duration::from_millis(500);

/// A stats or per-day read whose tenants have more entries than this not
/// yet counted counts its window's entries instead (see `read::Counts`).
pub const UNCOUNTED_MAX: u64 = 200_000;

/// After a failed round the counting task waits this long before the
/// next (reads stay right meanwhile: they count what is not counted).
pub const COUNT_RETRY: Duration = Duration::from_secs(1);

/// Adds entries `[$2, $3)` of tenant `$1` to the hourly counts of the
/// stats lists that [`STATS_BY`] names before the day.
fn count_statement() -> String {
    let lists: Vec<String> = STATS_BY[..4]
        .iter()
        .enumerate()
        .map(|(i, column)| format!("({i}::int2, {column})"))
        .collect();
    format!(
        "INSERT INTO trailmark_ledger.hour_counts (tenant, list, hour, value, n)
         SELECT e.tenant, d.list, {HOUR}, d.value, count(*)
         FROM trailmark_ledger.entries e CROSS JOIN LATERAL (VALUES {}) AS d(list, value)
         WHERE e.tenant = $1 AND e.seq >= $2 AND e.seq < $3 AND d.value IS NOT NULL
         GROUP BY 1, 2, 3, 4
         ON CONFLICT (tenant, list, hour, value) DO UPDATE SET n = hour_counts.n + excluded.n",
        lists.join(", ")
    )
}

/// What one round of [`count`] found and did, over every tenant.
pub(crate) struct Round {
    /// Entries stored when it started.
    pub(crate) written: u64,
    /// Entries not counted when it started.
    pub(crate) behind: u64,
    /// Entries it counted.
    pub(crate) counted: u64,
}

/// Counts up to `chunk` more entries of every tenant whose counts are
/// behind, one transaction per tenant.
pub(crate) async fn count(
    client: &mut deadpool_postgres::Object,
    chunk: u64,
) -> Result<Round, StoreError> {
    let rows = client
        .query(
            &format!(
                "SELECT t.tenant, t.size, {COUNTED_TO} FROM {TENANTS_COUNTED} ORDER BY t.tenant"
            ),
            &[],
        )
        .await
        .map_err(db("finding entries to count"))?;
    let statement = count_statement();
    let mut round = Round {
        written: 0,
        behind: 0,
        counted: 0,
    };
    for row in &rows {
        let (size, counted): (i64, i64) = (row.get(1), row.get(2));
        let behind = u64::try_from(size - counted).unwrap_or(0);
        round.written += u64::try_from(size).unwrap_or(0);
        round.behind += behind;
        if behind > 0 {
            round.counted += count_tenant(client, &statement, row.get(0), chunk).await?;
        }
    }
    Ok(round)
}

/// Where this server's counting task stands ([`crate::PgStore`]'s
/// `indexer`): `None` before its first round.
#[derive(Default)]
pub(crate) struct Progress(Mutex<Option<IndexerStatus>>);

impl Progress {
    pub(crate) fn get(&self) -> Option<IndexerStatus> {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn update(&self, f: impl FnOnce(&mut IndexerStatus)) {
        let mut status = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(status.get_or_insert_with(IndexerStatus::default));
    }
}

async fn count_tenant(
    client: &mut deadpool_postgres::Object,
    statement: &str,
    tenant: &str,
    chunk: u64,
) -> Result<u64, StoreError> {
    let tx = client.transaction().await.map_err(db("counting entries"))?;
    tx.execute(
        "INSERT INTO trailmark_ledger.counted (tenant, seq) VALUES ($1, 0) ON CONFLICT DO NOTHING",
        &[&tenant],
    )
    .await
    .map_err(db("counting entries"))?;
    // Locked: a second server counting the tenant waits here, then starts
    // where this one ended.
    let from: i64 = tx
        .query_one(
            "SELECT seq FROM trailmark_ledger.counted WHERE tenant = $1 FOR UPDATE",
            &[&tenant],
        )
        .await
        .map_err(db("counting entries"))?
        .get(0);
    // Committed with its entries: every entry below it is there for the
    // statements after this one.
    let size: i64 = tx
        .query_one(
            "SELECT size FROM trailmark_ledger.tenants WHERE name = $1",
            &[&tenant],
        )
        .await
        .map_err(db("counting entries"))?
        .get(0);
    let to = size.min(from.saturating_add(to_i64(chunk)));
    if to > from {
        tx.execute(statement, &[&tenant, &from, &to])
            .await
            .map_err(db("counting entries"))?;
        tx.execute(
            "UPDATE trailmark_ledger.counted SET seq = $2 WHERE tenant = $1",
            &[&tenant, &to],
        )
        .await
        .map_err(db("counting entries"))?;
    }
    tx.commit().await.map_err(db("counting entries"))?;
    Ok(u64::try_from(to - from).unwrap_or(0))
}

/// The counting task: after a nudge (each group commit sends one; one
/// waiting is enough) it counts until nothing is behind, then rests
/// [`COUNT_PAUSE`]; `progress` shows where it stands. It ends when the
/// nudges' sender is gone (the committer ended with its store).
pub(crate) async fn counter(
    pool: deadpool_postgres::Pool,
    mut nudges: tokio::sync::mpsc::Receiver<()>,
    progress: std::sync::Arc<Progress>,
) {
    while nudges.recv().await.is_some() {
        loop {
            let started = Instant::now();
            let round = async {
                let mut client = pool
                    .get()
                    .await
                    .map_err(|e| StoreError::backend("taking a connection to count entries", e))?;
                count(&mut client, COUNT_CHUNK).await
            };
            match round.await {
                Ok(round) => {
                    progress.update(|s| {
                        // A round may count entries appended after it
                        // looked: more than it found behind.
                        s.written = round.written;
                        s.lag_entries = round.behind.saturating_sub(round.counted);
                        s.indexed = round.written.saturating_sub(s.lag_entries);
                        s.failing = false;
                        if round.counted > 0 {
                            #[allow(clippy::cast_precision_loss)] // a rate
                            let rate =
                                round.counted as f64 / started.elapsed().as_secs_f64().max(1e-6);
                            s.rate = rate;
                        }
                    });
                    if round.counted == 0 {
                        break;
                    }
                }
                Err(e) => {
                    progress.update(|s| s.failing = true);
                    tracing::warn!(error = %e, "counting entries by hour failed; retrying in 1 s");
                    tokio::time::sleep(COUNT_RETRY).await;
                }
            }
        }
        tokio::time::sleep(COUNT_PAUSE).await;
    }
}
