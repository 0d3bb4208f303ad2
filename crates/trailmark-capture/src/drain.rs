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

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_postgres::{AsyncMessage, Client};
use trailmark_core::{Event, EventId};

use crate::{CHANNEL, Error, OutboxRow, captured_event, pg, table_configs};

/// The advisory lock key the active drainer holds ("trailmark" in ASCII,
/// cut to fit a bigint): one drainer at a time; the others stand by.
pub const DRAIN_LOCK: i64 = 0x7472_6169_6c6d_6172;

/// Why a batch was not acknowledged.
#[derive(Debug)]
pub enum SendError {
    /// The ledger is busy: try the same batch again after this long.
    Busy(Duration),
    /// It failed; the rows stay in the outbox.
    Failed(String),
}

/// The last event of a batch: what the batch sent after it, while it may
/// still be appended, names to be appended after it ([`Sink::PIPELINED`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct After {
    /// The tenant the event names (`None`: the one events without a
    /// tenant go to).
    pub tenant: Option<String>,
    pub id: EventId,
}

impl After {
    /// The last of `events`, when it has an id (the drainers give every
    /// event one).
    pub(crate) fn of(events: &[Event]) -> Option<Self> {
        let last = events.last()?;
        Some(Self {
            tenant: last.tenant.as_ref().map(|t| t.as_str().to_owned()),
            id: last.id?,
        })
    }
}

/// Where drained events go: a server over HTTP, or the store of the
/// `serve` process the drainer runs in.
pub trait Sink: Send + Sync {
    /// Whether a batch may be sent while the one before it is still being
    /// appended. [`Sink::send`] is then given that batch's last event, and
    /// the sink appends the batch only after it (over HTTP, the server's
    /// `Trailmark-After`; in `serve`, by the same rule in process),
    /// answering [`SendError::Busy`] while it is not stored: a round trip,
    /// the parsing and the checks of one batch (the trail checked against
    /// the checkpoints the source saw) run beside the append of the other.
    /// Otherwise one batch is sent at a time, the next read and readied
    /// meanwhile.
    const PIPELINED: bool = false;

    /// A batch as this sink sends it.
    type Batch: Send;

    /// Readies a batch of events (each validated once, by the drainer) to
    /// be sent: called while the batch before is still being appended, so
    /// what a sink does here (an in-process sink commits to the payloads)
    /// runs beside that append, not after it.
    fn batch(&self, events: Vec<Event>) -> Result<Self::Batch, SendError>;

    /// Appends the batch durably, all or nothing, after the event `after`
    /// names when one does (only for a [`Sink::PIPELINED`] sink: the last of
    /// the batch before, which may still be being appended); `Ok` only once
    /// it is durable, with the tenants it went to. The sink may take the
    /// events out of `batch` (an in-process sink moves them into the
    /// ledger, never copying them); one that answers [`SendError::Busy`]
    /// leaves `batch` as it was, and the same batch is sent again.
    fn send(
        &self,
        batch: &mut Self::Batch,
        after: Option<&After>,
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
    /// WAL mode: streamed transaction `xid` set its context inside a
    /// subtransaction that may have rolled back, which streaming cannot
    /// tell (docs/CAPTURE.md); the drainer decodes on without streaming.
    Unstreamed { xid: u32 },
    /// WAL mode: the drainer could not write a heartbeat for its slot
    /// (`reason`), so while the captured tables are quiet the slot keeps
    /// the WAL the rest of the cluster writes (docs/CAPTURE.md, "Quiet
    /// tables"); heartbeats stop until the drainer restarts, the drain
    /// goes on.
    NoHeartbeat { reason: String },
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
    // The drainer's deletes are capture's own: the outbox's guard
    // (capture version 17, `trailmark.outbox_guard`) refuses any other.
    client
        .batch_execute(&format!(
            "LISTEN {CHANNEL}; SET trailmark.own_outbox = 'on'"
        ))
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
    // A capture installed by a newer Trailmark writes what this one may not
    // read right (capture version 16's rewrite was a truncate to 15's
    // drainer, and a message it read past): refused before anything is read.
    crate::install::refuse_newer(client).await?;
    // Before anything is sent: the trail must still extend every
    // checkpoint this database saw.
    crate::seen::prepare(client).await?;
    let ids = crate::EventIds::prepare(client).await?;
    let remembered = crate::seen::tenants(client).await?;
    crate::seen::check(client, sink, &remembered).await?;

    let mut tables = Tables::read(client).await?;
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

/// A batch being sent, and what follows its durability (the outbox rows
/// deleted, the slot told), to its end.
pub(crate) type Sending<'a> = Pin<Box<dyn Future<Output = Result<(), Error>> + Send + 'a>>;

/// Whether a batch may be sent now ([`InFlight::room`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Room {
    /// Not yet: a batch in flight must end first.
    No,
    /// Now, with nothing in flight.
    Alone,
    /// Now, beside the batch in flight that ends with this event.
    After(After),
}

impl Room {
    /// The event the batch is sent after, if any.
    pub(crate) fn after(self) -> Option<After> {
        match self {
            Room::After(last) => Some(last),
            Room::No | Room::Alone => None,
        }
    }
}

/// The batches being sent, oldest first, each with its last event and
/// what its caller keeps of it (`T`). Both drainers (outbox and WAL) send
/// through one, by one rule ([`InFlight::room`]).
pub(crate) struct InFlight<'a, T> {
    sending: VecDeque<(Sending<'a>, Option<After>, T)>,
    /// How many may be in flight at once: two to a [`Sink::PIPELINED`]
    /// sink, else one.
    depth: usize,
}

impl<'a, T> InFlight<'a, T> {
    pub(crate) fn new<S: Sink>() -> Self {
        Self {
            sending: VecDeque::new(),
            depth: if S::PIPELINED { 2 } else { 1 },
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.sending.is_empty()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.sending.len()
    }

    /// What the callers keep of the batches in flight.
    pub(crate) fn kept(&self) -> impl Iterator<Item = &T> {
        self.sending.iter().map(|(_, _, kept)| kept)
    }

    /// Whether a batch may be sent now, and after which event: at once
    /// when nothing is in flight; beside the newest batch when there is
    /// room, the newest has a last event to name, and this batch is sent at
    /// all (`sent`: one that only moves a position, with no rows, waits
    /// for every batch before it to be durable).
    pub(crate) fn room(&self, sent: bool) -> Room {
        match self.sending.back() {
            None => Room::Alone,
            Some((_, Some(last), _)) if sent && self.sending.len() < self.depth => {
                Room::After(last.clone())
            }
            Some(_) => Room::No,
        }
    }

    pub(crate) fn push(&mut self, sending: Sending<'a>, last: Option<After>, kept: T) {
        self.sending.push_back((sending, last, kept));
    }

    /// Drives every batch in flight; answers the first to end (no longer
    /// in flight) with how it ended. Never ends while none is in flight.
    pub(crate) fn poll_ended(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<(T, Result<(), Error>)> {
        let ended = self
            .sending
            .iter_mut()
            .enumerate()
            .find_map(|(at, (sending, _, _))| match sending.as_mut().poll(cx) {
                Poll::Ready(result) => Some((at, result)),
                Poll::Pending => None,
            });
        match ended.and_then(|(at, result)| Some((self.sending.remove(at)?, result))) {
            Some(((_, _, kept), result)) => Poll::Ready((kept, result)),
            None => Poll::Pending,
        }
    }

    /// [`Self::poll_ended`] as a future.
    pub(crate) async fn ended(&mut self) -> (T, Result<(), Error>) {
        std::future::poll_fn(|cx| self.poll_ended(cx)).await
    }
}

/// A batch read from the outbox and readied for the sink: the batch, its
/// rows' outbox ids, its last event, and when its read began if it found
/// less than a full batch.
type Outboxed<B> = (B, Vec<i64>, Option<After>, Option<Instant>);

/// A read of the outbox; it owns the table options while it runs (and
/// gives them back).
type Reading<'a, B> =
    Pin<Box<dyn Future<Output = (Tables, Result<Outboxed<B>, Error>)> + Send + 'a>>;

/// Moves outbox rows into `sink` until the outbox is empty (`once`), or
/// until the database is switched to WAL mode. Returns the rows moved.
///
/// While a batch is appended, the next is read and readied (rows of the
/// batches in flight left out). A batch is sent once the one before it is
/// acknowledged and deleted, so order holds; or, to a [`Sink::PIPELINED`]
/// sink, at once, naming the last event of the one before, which the sink
/// appends it after ([`InFlight::room`]).
async fn drain_outbox<S: Sink>(
    client: &Client,
    sink: &S,
    options: &DrainOptions,
    progress: &(dyn Fn(Progress) + Send + Sync),
    woken: &Notify,
    ids: &crate::EventIds,
    tables: &mut Tables,
) -> Result<u64, Error> {
    let total = AtomicU64::new(0);
    // Each with its rows' outbox ids.
    let mut in_flight: InFlight<'_, Vec<i64>> = InFlight::new::<S>();
    let mut reading: Option<Reading<'_, S::Batch>> = None;
    // Read, waiting for room to be sent.
    let mut held: Option<(S::Batch, Vec<i64>, Option<After>)> = None;
    // The last read found the outbox empty: no other until the batches in
    // flight are done.
    let mut dry = false;
    // When the last read that found less than a batch began: the next
    // waits until the linger after it (a stream of small transactions makes
    // one batch each linger, not one each append's time).
    let mut short_read: Option<Instant> = None;
    loop {
        let room = if held.is_some() {
            in_flight.room(true)
        } else {
            Room::No
        };
        if room != Room::No
            && let Some((batch, outbox_ids, last)) = held.take()
        {
            let after = room.after();
            let rows = outbox_ids.clone();
            let total = &total;
            let sent = async move {
                let mut batch = batch;
                let tenants = send(sink, &mut batch, after.as_ref()).await?;
                // Only now are they durable in the trail: deleted at once,
                // not when the next read (which may linger) is done.
                delete_sent(client, &rows, &options.name).await?;
                // And the trail they went to must extend what was seen.
                crate::seen::check(client, sink, &tenants).await?;
                let rows = rows.len() as u64;
                let total = total.fetch_add(rows, Ordering::Relaxed) + rows;
                progress(Progress::Sent { rows, total });
                Ok(())
            };
            in_flight.push(Box::pin(sent), last, outbox_ids);
        }
        if dry && in_flight.is_empty() && held.is_none() {
            dry = false;
            if options.once || crate::installed_mode(client).await? == Some(crate::Mode::Wal) {
                return Ok(total.load(Ordering::Relaxed));
            }
            let _ = tokio::time::timeout(options.poll, woken.notified()).await;
            if client.is_closed() {
                return Err(Error::ConnectionLost);
            }
        }
        // The next batch is read while those before it are sent.
        if reading.is_none() && held.is_none() && !dry {
            let leave_out: Vec<i64> = in_flight.kept().flatten().copied().collect();
            let mut owned = std::mem::take(tables);
            let linger = short_read.map(|read| read + options.linger);
            reading = Some(Box::pin(async move {
                let read =
                    read_outbox(client, sink, options, ids, &mut owned, leave_out, linger).await;
                (owned, read)
            }));
        }
        let read = std::future::poll_fn(|cx| {
            if let Poll::Ready((_, sent)) = in_flight.poll_ended(cx) {
                return Poll::Ready(sent.map(|()| None));
            }
            match reading.as_mut().map(|read| read.as_mut().poll(cx)) {
                Some(Poll::Ready((owned, read))) => {
                    *tables = owned;
                    Poll::Ready(Ok(Some(read)))
                }
                _ => Poll::Pending,
            }
        })
        .await?;
        if let Some(read) = read {
            reading = None;
            let (batch, outbox_ids, last, short) = read?;
            short_read = short;
            if outbox_ids.is_empty() {
                dry = true;
            } else {
                held = Some((batch, outbox_ids, last));
            }
        }
    }
}

/// One read of the outbox (after `linger`, when given), leaving out the
/// rows in flight, converted and readied for the sink.
///
/// The rows in flight are left out by `NOT IN (SELECT unnest($2))`, a
/// hashed subplan under any plan: `<> ALL ($2)` is hashed only where the
/// array is a constant of a custom plan, and compared a row against every
/// id under a generic one (a reused prepared statement, a pooler's): 136 ms
/// against 4 ms for 5,000 ids over 200,000 rows (bench/results/capture.md).
async fn read_outbox<S: Sink>(
    client: &Client,
    sink: &S,
    options: &DrainOptions,
    ids: &crate::EventIds,
    tables: &mut Tables,
    leave_out: Vec<i64>,
    linger: Option<Instant>,
) -> Result<Outboxed<S::Batch>, Error> {
    if let Some(until) = linger {
        tokio::time::sleep_until(until).await;
    }
    let began = Instant::now();
    let rows = client
        .query(
            "SELECT id, txid, stmt, op, schema_name, table_name, old_row::text, new_row::text,
                    context, db_role,
                    to_char(captured_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
             FROM trailmark.outbox WHERE id NOT IN (SELECT unnest($2::bigint[]))
             ORDER BY id LIMIT $1",
            &[&options.batch, &leave_out],
        )
        .await
        .map_err(pg("reading the outbox (is capture installed?)"))?;
    let short = i64::try_from(rows.len()).is_ok_and(|n| n < options.batch);
    let (events, outbox_ids) = convert(client, &rows, tables, ids).await?;
    let last = After::of(&events);
    let batch = sink.batch(events).map_err(sink_error)?;
    Ok((batch, outbox_ids, last, short.then_some(began)))
}

/// Deletes acknowledged rows and records the position, in one statement
/// (the highest id drained: two batches in flight may be deleted in either
/// order).
async fn delete_sent(client: &Client, ids: &[i64], drainer: &str) -> Result<(), Error> {
    client
        .execute(
            "WITH sent AS (DELETE FROM trailmark.outbox WHERE id = ANY ($1) RETURNING id)
             INSERT INTO trailmark.drained (id, last_outbox_id, rows_total, drained_at, drainer)
             SELECT 1, max(id), count(*), now(), $2 FROM sent HAVING count(*) > 0
             ON CONFLICT (id) DO UPDATE SET
                 last_outbox_id = greatest(trailmark.drained.last_outbox_id, excluded.last_outbox_id),
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
    tables: &mut Tables,
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

/// How long the drainer keeps the table options it read (`trailmark.tables`)
/// before it reads them again: options an install changes while it runs
/// (an alias, a soft-delete or name column, a key, a table covered again)
/// are taken within this of the install's commit (docs/CAPTURE.md).
pub const OPTIONS_FOR: Duration = Duration::from_secs(1);

/// The table options the drainer makes events by, by `(schema, table)`.
#[derive(Default)]
pub(crate) struct Tables {
    configs: HashMap<(String, String), crate::TableConfig>,
    /// Tables met since the last reading that it did not list (a table
    /// forgotten with changes of it still to drain, say): named with no
    /// options, and not read again for each of their rows, only with the
    /// rest once the options are [`OPTIONS_FOR`] old.
    unlisted: std::collections::HashSet<(String, String)>,
    /// When they were read (`None`: given, as a unit test gives them, and
    /// kept while every table met is among them).
    read_at: Option<Instant>,
}

impl Tables {
    /// Reads them now.
    pub(crate) async fn read(client: &Client) -> Result<Self, Error> {
        Ok(Self {
            configs: table_configs(client).await?,
            unlisted: std::collections::HashSet::new(),
            read_at: Some(Instant::now()),
        })
    }

    /// Given, not read (a unit test's).
    #[cfg(test)]
    pub(crate) fn given(configs: HashMap<(String, String), crate::TableConfig>) -> Self {
        Self {
            configs,
            unlisted: std::collections::HashSet::new(),
            read_at: None,
        }
    }
}

/// A captured row (from the outbox or the WAL) as a validated event; the
/// table's options are read again when a table not seen before turns up
/// (covered since the drainer started, or uninstalled since the change: a
/// table no longer listed is named by its schema.table with no key, and
/// its later rows do not read them again), and once they are
/// [`OPTIONS_FOR`] old. `Err`
/// inside: why the row cannot become an event (the fields and what is
/// wrong), for the caller to stop with, keeping the row.
pub(crate) async fn capture(
    client: &Client,
    tables: &mut Tables,
    row: &OutboxRow,
    ids: &crate::EventIds,
) -> Result<Result<Event, String>, Error> {
    let name = (row.schema.clone(), row.table.clone());
    let stale = tables.read_at.is_some_and(|at| at.elapsed() >= OPTIONS_FOR);
    if stale || !(tables.configs.contains_key(&name) || tables.unlisted.contains(&name)) {
        *tables = Tables::read(client).await?;
        if !tables.configs.contains_key(&name) {
            tables.unlisted.insert(name.clone());
        }
    }
    let unknown = crate::TableConfig::default();
    let config = tables.configs.get(&name).unwrap_or(&unknown);
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

pub(crate) async fn send<S: Sink>(
    sink: &S,
    batch: &mut S::Batch,
    after: Option<&After>,
) -> Result<Vec<String>, Error> {
    let mut busy_since = None;
    loop {
        match sink.send(batch, after).await {
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

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A sink that sends one batch at a time (sends nothing here).
    pub(crate) struct OneAtATime;

    impl Sink for OneAtATime {
        type Batch = ();

        fn batch(&self, _: Vec<Event>) -> Result<(), SendError> {
            Ok(())
        }

        async fn send(&self, (): &mut (), _: Option<&After>) -> Result<Vec<String>, SendError> {
            Ok(Vec::new())
        }
    }

    /// A sink that appends a batch after the one it names.
    struct InOrder;

    impl Sink for InOrder {
        const PIPELINED: bool = true;
        type Batch = ();

        fn batch(&self, _: Vec<Event>) -> Result<(), SendError> {
            Ok(())
        }

        async fn send(&self, (): &mut (), _: Option<&After>) -> Result<Vec<String>, SendError> {
            Ok(Vec::new())
        }
    }

    fn last(n: u32) -> After {
        After {
            tenant: Some("acme".into()),
            id: EventId::parse(&format!("0192f0c2-5a1e-7c4b-9d10-{n:012x}")).unwrap(),
        }
    }

    /// Sent when the sender says so.
    fn sending(n: usize) -> (tokio::sync::oneshot::Sender<()>, Sending<'static>) {
        let (done, ended) = tokio::sync::oneshot::channel::<()>();
        let sending: Sending<'static> = Box::pin(async move {
            ended.await.unwrap();
            if n == 0 {
                Ok(())
            } else {
                Err(Error::Sink(format!("batch {n} failed")))
            }
        });
        (done, sending)
    }

    #[test]
    fn a_batch_goes_beside_the_one_before_only_to_a_sink_that_appends_in_order() {
        let mut one: InFlight<'_, ()> = InFlight::new::<OneAtATime>();
        assert_eq!(one.room(true), Room::Alone, "nothing in flight: at once");
        one.push(sending(0).1, Some(last(1)), ());
        assert_eq!(one.room(true), Room::No, "one at a time");

        let mut two: InFlight<'_, ()> = InFlight::new::<InOrder>();
        two.push(sending(0).1, Some(last(1)), ());
        assert_eq!(
            two.room(true),
            Room::After(last(1)),
            "after the batch in flight"
        );
        assert_eq!(
            two.room(false),
            Room::No,
            "a position with no rows waits for every batch before it"
        );
        two.push(sending(0).1, Some(last(2)), ());
        assert_eq!(two.room(true), Room::No, "two in flight at most");

        let mut nameless: InFlight<'_, ()> = InFlight::new::<InOrder>();
        nameless.push(sending(0).1, None, ());
        assert_eq!(nameless.room(true), Room::No, "no last event to name: wait");
    }

    #[tokio::test]
    async fn every_batch_in_flight_is_driven_and_the_first_to_end_is_answered() {
        let mut in_flight: InFlight<'_, u32> = InFlight::new::<InOrder>();
        let (first, sent) = sending(0);
        in_flight.push(sent, Some(last(1)), 1);
        let (second, sent) = sending(2);
        in_flight.push(sent, Some(last(2)), 2);
        // The newer ends first: answered, the older still in flight.
        second.send(()).unwrap();
        let (kept, ended) = in_flight.ended().await;
        assert_eq!(kept, 2);
        assert!(matches!(ended, Err(Error::Sink(m)) if m == "batch 2 failed"));
        assert_eq!(in_flight.kept().copied().collect::<Vec<_>>(), vec![1]);
        first.send(()).unwrap();
        let (kept, ended) = in_flight.ended().await;
        assert_eq!(kept, 1);
        assert!(ended.is_ok());
        assert!(in_flight.is_empty());
    }
}
