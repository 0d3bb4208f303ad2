//! Draining the outbox into the ledger.
//!
//! One drainer at a time moves rows: each holds a session advisory lock on
//! the outbox while it drains, and others stand by until that lock is free
//! (a drainer that dies drops its session, and with it the lock). So several
//! drainers on one outbox never duplicate or reorder one table's changes, and
//! a standby takes over within one poll interval.
//!
//! A batch is read in outbox order, sent, and deleted only once the sink
//! acknowledged it as durable. Event ids derive from the database's system
//! identifier and the outbox id, so a batch sent again after a crash stores
//! nothing twice.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_postgres::{AsyncMessage, Client};
use trailmark_core::Event;

use crate::{CHANNEL, Error, OutboxRow, captured_event, pg, table_configs};

/// The advisory lock key the active drainer holds ("trailmark" in ASCII,
/// cut to fit a bigint).
const DRAIN_LOCK: i64 = 0x7472_6169_6c6d_6172;

/// Why a batch was not acknowledged.
#[derive(Debug)]
pub enum SendError {
    /// The ledger is busy: try the same batch again after this long.
    Busy(Duration),
    /// It failed; the rows stay in the outbox.
    Failed(String),
}

/// Where drained events go: a server over HTTP, or the store of the
/// `serve` process the drainer runs in.
pub trait Sink: Send + Sync {
    /// A batch as this sink sends it.
    type Batch: Send;

    /// Readies a batch of events (each validated once, by the drainer) to
    /// be sent: called while the batch before is still being appended, so
    /// what a sink does here (an in-process sink commits to the payloads)
    /// runs beside that append, not after it.
    fn batch(&self, events: Vec<Event>) -> Result<Self::Batch, SendError>;

    /// Appends the batch durably, all or nothing; `Ok` only once it is
    /// durable, with the tenants it went to. The sink may take the events
    /// out of `batch` (an in-process sink moves them into the ledger, never
    /// copying them); one that answers [`SendError::Busy`] leaves `batch`
    /// as it was, and the same batch is sent again.
    fn send(
        &self,
        batch: &mut Self::Batch,
    ) -> impl Future<Output = Result<Vec<String>, SendError>> + Send;

    /// The newest signed checkpoint of `tenant` (the note) and the
    /// verifier key the ledger names for it; `None` when there is none yet,
    /// or the sink cannot show checkpoints.
    fn checkpoint(
        &self,
        tenant: &str,
    ) -> impl Future<Output = Result<Option<(String, String)>, SendError>> + Send {
        let _ = tenant;
        async { Ok(None) }
    }

    /// The ledger's signing keys, oldest first, with the transition
    /// statements between them: how the drainer follows a rotation from
    /// the key it remembered. None when the sink cannot show them.
    fn signing_keys(
        &self,
    ) -> impl Future<Output = Result<Vec<trailmark_verify::KeyRecordView>, SendError>> + Send {
        async { Ok(Vec::new()) }
    }

    /// A consistency proof (base64 hashes) of `tenant`'s log from `first`
    /// to `second` entries.
    fn consistency(
        &self,
        tenant: &str,
        first: u64,
        second: u64,
    ) -> impl Future<Output = Result<Vec<String>, SendError>> + Send {
        let _ = (tenant, first, second);
        async { Ok(Vec::new()) }
    }
}

/// How to drain.
#[derive(Clone, Debug)]
pub struct DrainOptions {
    /// Rows per batch.
    pub batch: i64,
    /// Return once the outbox is empty instead of waiting for more.
    pub once: bool,
    /// How long to wait for a notification before looking anyway.
    pub poll: Duration,
    /// Who is draining (recorded in `trailmark.drained`).
    pub name: String,
    /// Under a stream of changes, how long a batch that is not full waits
    /// for more after the one before ([`crate::LINGER`] unless set).
    pub linger: Duration,
}

impl Default for DrainOptions {
    fn default() -> Self {
        Self {
            batch: 1000,
            once: false,
            poll: Duration::from_secs(1),
            name: "trailmark".into(),
            linger: crate::LINGER,
        }
    }
}

/// What the drainer reports as it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Another drainer holds the outbox; this one waits.
    StandingBy,
    /// This drainer holds the outbox now.
    Draining,
    /// A batch was acknowledged and deleted from the outbox.
    Sent { rows: u64, total: u64 },
}

/// Connects to `source`, becomes the active drainer, and moves outbox rows
/// into `sink` until the outbox is empty (`once`) or forever. Returns the
/// number of rows moved. Errors leave unacknowledged rows in the outbox.
pub async fn drain<S: Sink>(
    source: &str,
    sink: &S,
    options: &DrainOptions,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<u64, Error> {
    let (client, mut connection) = crate::source(source)?
        .connect()
        .await
        .map_err(pg("connecting to the source database"))?;
    let woken = Arc::new(Notify::new());
    let wake = Arc::clone(&woken);
    let driver = tokio::spawn(async move {
        // Drives the connection and turns notifications into wake-ups.
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => wake.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    wake.notify_one();
                    return;
                }
            }
        }
    });
    let result = run(&client, source, sink, options, progress, &woken).await;
    drop(client);
    let _ = driver.await;
    result
}

async fn run<S: Sink>(
    client: &Client,
    source: &str,
    sink: &S,
    options: &DrainOptions,
    progress: &(dyn Fn(Progress) + Send + Sync),
    woken: &Notify,
) -> Result<u64, Error> {
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(pg("listening for outbox notifications"))?;

    let mut standing_by = false;
    loop {
        let locked: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&DRAIN_LOCK])
            .await
            .map_err(pg("taking the drain lock"))?
            .get(0);
        if locked {
            break;
        }
        if !standing_by {
            progress(Progress::StandingBy);
            standing_by = true;
        }
        let _ = tokio::time::timeout(options.poll, woken.notified()).await;
        if client.is_closed() {
            return Err(Error::ConnectionLost);
        }
    }
    progress(Progress::Draining);
    // Before anything is sent: the trail must still extend every
    // checkpoint this database saw.
    crate::seen::prepare(client).await?;
    let ids = crate::EventIds::prepare(client).await?;
    let remembered = crate::seen::tenants(client).await?;
    crate::seen::check(client, sink, &remembered).await?;

    let mut tables = table_configs(client).await?;
    let mut total = 0u64;
    if crate::installed_mode(client).await? != Some(crate::Mode::Wal) {
        total = drain_outbox(client, sink, options, progress, woken, &ids, &mut tables).await?;
        if options.once {
            return Ok(total);
        }
    }
    // WAL mode (or switched to it, the outbox drained first): decode the
    // slot from now on.
    Ok(total
        + crate::wal::stream(client, source, sink, options, progress, &ids, &mut tables).await?)
}

/// Moves outbox rows into `sink` until the outbox is empty (`once`), or
/// until the database is switched to WAL mode. Returns the rows moved.
async fn drain_outbox<S: Sink>(
    client: &Client,
    sink: &S,
    options: &DrainOptions,
    progress: &(dyn Fn(Progress) + Send + Sync),
    woken: &Notify,
    ids: &crate::EventIds,
    tables: &mut HashMap<(String, String), crate::TableConfig>,
) -> Result<u64, Error> {
    let mut total = 0u64;
    // While one batch is being appended, the next is read and converted
    // (rows of the batch in flight are left out); a batch is sent only once
    // the one before it is acknowledged and deleted, so order holds.
    let mut in_flight: Option<(S::Batch, Vec<i64>)> = None;
    // When the last read that found less than a batch began: the next
    // waits until the linger after it (a stream of small transactions makes
    // one batch each linger, not one each append's time).
    let mut short_read: Option<Instant> = None;
    loop {
        let leave_out: Vec<i64> = in_flight
            .as_ref()
            .map(|(_, ids)| ids.clone())
            .unwrap_or_default();
        let next = async {
            if let Some(read) = short_read {
                tokio::time::sleep_until(read + options.linger).await;
            }
            let began = Instant::now();
            let rows = client
                .query(
                    "SELECT id, txid, stmt, op, schema_name, table_name, old_row::text, new_row::text,
                            context, db_role,
                            to_char(captured_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
                     FROM trailmark.outbox WHERE id <> ALL ($2) ORDER BY id LIMIT $1",
                    &[&options.batch, &leave_out],
                )
                .await
                .map_err(pg("reading the outbox (is capture installed?)"))?;
            let short = i64::try_from(rows.len()).is_ok_and(|n| n < options.batch);
            let (events, outbox_ids) = convert(client, &rows, tables, ids).await?;
            let batch = sink.batch(events).map_err(sink_error)?;
            Ok::<_, Error>((batch, outbox_ids, short.then_some(began)))
        };
        let next = match in_flight.take() {
            None => next.await?,
            Some((mut batch, ids)) => {
                // Deleted as soon as they are durable, not when the next
                // read (which may linger) is done.
                let sent = async {
                    let tenants = send(sink, &mut batch).await?;
                    // Only now are they durable in the trail.
                    delete_sent(client, &ids, &options.name).await?;
                    // And the trail they went to must extend what was seen.
                    crate::seen::check(client, sink, &tenants).await
                };
                let (sent, next) = tokio::join!(sent, next);
                sent?;
                total += ids.len() as u64;
                progress(Progress::Sent {
                    rows: ids.len() as u64,
                    total,
                });
                next?
            }
        };
        let (batch, outbox_ids, short) = next;
        short_read = short;
        if outbox_ids.is_empty() {
            if options.once {
                return Ok(total);
            }
            if crate::installed_mode(client).await? == Some(crate::Mode::Wal) {
                return Ok(total);
            }
            let _ = tokio::time::timeout(options.poll, woken.notified()).await;
            if client.is_closed() {
                return Err(Error::ConnectionLost);
            }
            continue;
        }
        in_flight = Some((batch, outbox_ids));
    }
}

/// Deletes acknowledged rows and records the position, in one statement.
async fn delete_sent(client: &Client, ids: &[i64], drainer: &str) -> Result<(), Error> {
    client
        .execute(
            "WITH sent AS (DELETE FROM trailmark.outbox WHERE id = ANY ($1) RETURNING id)
             INSERT INTO trailmark.drained (id, last_outbox_id, rows_total, drained_at, drainer)
             SELECT 1, max(id), count(*), now(), $2 FROM sent HAVING count(*) > 0
             ON CONFLICT (id) DO UPDATE SET last_outbox_id = excluded.last_outbox_id,
                 rows_total = trailmark.drained.rows_total + excluded.rows_total,
                 drained_at = excluded.drained_at, drainer = excluded.drainer",
            &[&ids, &drainer],
        )
        .await
        .map_err(pg("deleting sent outbox rows"))?;
    Ok(())
}

/// Outbox rows → events (and their outbox ids), table options read again
/// when a table not seen before turns up.
async fn convert(
    client: &Client,
    rows: &[tokio_postgres::Row],
    tables: &mut HashMap<(String, String), crate::TableConfig>,
    ids: &crate::EventIds,
) -> Result<(Vec<Event>, Vec<i64>), Error> {
    let mut events = Vec::with_capacity(rows.len());
    let mut outbox_ids = Vec::with_capacity(rows.len());
    for r in rows {
        let row = OutboxRow {
            id: r.get(0),
            txid: r.get(1),
            stmt: r.get(2),
            op: r.get(3),
            schema: r.get(4),
            table: r.get(5),
            old_row: r.get::<_, Option<String>>(6).map(crate::RowImage::Json),
            new_row: r.get::<_, Option<String>>(7).map(crate::RowImage::Json),
            context: r.get(8),
            db_role: r.get(9),
            captured_at: r.get(10),
            wal: None,
        };
        let captured = capture(client, tables, &row, ids)
            .await?
            .map_err(|reason| Error::Unsendable {
                outbox_id: row.id,
                reason,
            })?;
        events.push(captured);
        outbox_ids.push(row.id);
    }
    Ok((events, outbox_ids))
}

/// A captured row (from the outbox or the WAL) as a validated event; the
/// table's options are read again when a table not seen before turns up
/// (covered since the drainer started, or uninstalled since the change: a
/// table no longer listed is named by its schema.table with no key). `Err`
/// inside: why the row cannot become an event (the fields and what is
/// wrong), for the caller to stop with, keeping the row.
pub(crate) async fn capture(
    client: &Client,
    tables: &mut HashMap<(String, String), crate::TableConfig>,
    row: &OutboxRow,
    ids: &crate::EventIds,
) -> Result<Result<Event, String>, Error> {
    let name = (row.schema.clone(), row.table.clone());
    if !tables.contains_key(&name) {
        *tables = table_configs(client).await?;
    }
    let unknown = crate::TableConfig::default();
    let config = tables.get(&name).unwrap_or(&unknown);
    Ok(match captured_event(row, config, ids) {
        Ok(valid) => Ok(valid),
        Err(errors) => Err(errors
            .iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect::<Vec<_>>()
            .join("; ")),
    })
}

/// A sink's refusal as the drain's error.
pub(crate) fn sink_error(e: SendError) -> Error {
    match e {
        SendError::Busy(_) => Error::Sink("the ledger is busy".into()),
        SendError::Failed(m) => Error::Sink(m),
    }
}

pub(crate) async fn send<S: Sink>(sink: &S, batch: &mut S::Batch) -> Result<Vec<String>, Error> {
    let mut busy_since = None;
    loop {
        match sink.send(batch).await {
            Ok(tenants) => return Ok(tenants),
            Err(SendError::Busy(wait)) => {
                let since = *busy_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() > Duration::from_secs(600) {
                    return Err(Error::Sink(
                        "the ledger has answered busy for 10 minutes".into(),
                    ));
                }
                tokio::time::sleep(wait).await;
            }
            Err(SendError::Failed(reason)) => return Err(Error::Sink(reason)),
        }
    }
}
