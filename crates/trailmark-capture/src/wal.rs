//! Draining in WAL mode: decoding publication `trailmark` through slot
//! `trailmark` over the replication protocol (`pgoutput`, with the
//! `pg_walstream` crate; docs/CAPTURE.md says why that crate).
//!
//! PostgreSQL sends each transaction whole at its commit, in commit order;
//! one larger than `logical_decoding_work_mem` it streams in chunks while
//! it is in progress (PostgreSQL 14 and later), held here until its commit
//! (`streamed`). The `trailmark` logical messages `trailmark.set_context` writes
//! come in place among the transaction's changes: each change carries the
//! context set last before it. Event ids derive from the database's system
//! identifier, the transaction's commit LSN and the change's place in it,
//! so a transaction decoded again after a crash stores nothing twice; the
//! slot's confirmed position moves only past transactions the ledger
//! acknowledged as durable.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pg_walstream::{
    CancellationToken, ColumnValue, LogicalReplicationMessage as Message, LogicalReplicationParser,
    LogicalReplicationStream, RelationInfo, ReplicationError, ReplicationStreamConfig, RowData,
    StreamingMode,
};
use serde_json::Value;
use tokio::time::Instant;
use tokio_postgres::Client;
use trailmark_core::Event;

use crate::drain::{DrainOptions, InFlight, Progress, Room, send};
use crate::install::{MESSAGE_PREFIX, PUBLICATION, slot_status};
use crate::streamed::{self, Change, Item};
use crate::{Error, OutboxRow, RowImage, Sink, pg};

/// Decoded changes read ahead of the one being converted (the bound on what
/// this process holds besides the batch being sent).
const READ_AHEAD: usize = 4096;

/// While the slot keeps sending, the reader waits for the connection at
/// most once in this long (or the linger, when that is shorter): under a
/// stream of small commits PostgreSQL sends each commit, and a keepalive
/// before each wait for more WAL, as soon as it is written, and the reader
/// read each as it came (beside pgbench's TPC-B, three times the reads;
/// `serve`'s CPU a change 1–8 % higher: bench/results/capture.md). Paced,
/// what arrives meanwhile waits in the socket's buffer and is read in one
/// go. The cost: a change is read up to this much later (its batch lingers
/// longer anyway).
const READ_PACE: Duration = Duration::from_millis(5);

/// How long the decoder waits for a message before it asks the database
/// whether the slot needs a heartbeat ([`heartbeat`]).
const QUIET: Duration = Duration::from_secs(5);

/// WAL written past the slot's confirmed position, while the drainer has
/// nothing to decode, past which it writes a heartbeat ([`heartbeat`]).
const HEARTBEAT_AFTER_BYTES: i64 = 16 * 1024 * 1024;

/// The prefix of the heartbeat's logical message.
const HEARTBEAT_PREFIX: &str = "trailmark.heartbeat";

/// A heartbeat, when the slot needs one. The slot's confirmed position
/// moves only past what the drainer acknowledges, and it acknowledges only
/// what it is sent: while the captured tables are quiet and the rest of
/// the cluster writes (other tables, other databases), nothing is sent, the
/// position stands, and PostgreSQL keeps every byte of WAL written since
/// (gigabytes an hour under a busy neighbour; past
/// `max_slot_wal_keep_size` the slot is lost). So when the WAL has moved
/// more than [`HEARTBEAT_AFTER_BYTES`] past the slot's confirmed position,
/// the drainer writes a non-transactional logical message; it comes back
/// through the slot after every transaction committed before it, and
/// acknowledging it (once everything before is durable) moves the slot.
/// A quiet cluster is never written to.
async fn heartbeat(client: &Client, slot: &str) -> Result<(), Error> {
    client
        .execute(
            "SELECT pg_logical_emit_message(false, $2, '') FROM pg_replication_slots
             WHERE slot_name = $1
             AND pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn) > $3::int8",
            &[&slot, &HEARTBEAT_PREFIX, &HEARTBEAT_AFTER_BYTES],
        )
        .await
        .map_err(pg("writing a heartbeat for the replication slot"))?;
    Ok(())
}

/// Drives `read` (the next message off the replication connection) at
/// `pace`: the connection is not polled again sooner than `pace` after
/// it last had nothing to read (`idle`, kept across reads). Woken sooner,
/// the reader first sleeps out the rest, so that what arrives meanwhile
/// is read at once; what is already read is handed on without waiting.
async fn paced<F: std::future::Future>(
    read: F,
    pace: Duration,
    idle: &mut Option<Instant>,
) -> F::Output {
    use std::task::Poll;
    let mut read = std::pin::pin!(read);
    let mut resting: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    std::future::poll_fn(|cx| {
        if resting.is_none()
            && let Some(until) = idle.map(|at| at + pace)
            && Instant::now() < until
        {
            resting = Some(Box::pin(tokio::time::sleep_until(until)));
        }
        if let Some(rest) = resting.as_mut() {
            if rest.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            resting = None;
            *idle = None;
        }
        let polled = read.as_mut().poll(cx);
        if polled.is_pending() {
            *idle = Some(Instant::now());
        }
        polled
    })
    .await
}

/// The replication connection's string: the source as read for every
/// other connection ([`trailmark_pg::Source::replication_uri`]: the same
/// host, user, password, database and TLS), asking for a logical
/// replication session. Refused when it names a Unix-domain socket
/// (`host=/var/run/postgresql`) or several hosts: the replication client
/// (`pg_walstream`'s own protocol code) connects to one host over TCP only,
/// and would look the path or the list up as a host name, again and again.
fn replication_source(source: &str) -> Result<String, Error> {
    let parsed = crate::source(source)?;
    check_hosts(&parsed)?;
    parsed
        .replication_uri()
        .map_err(|e| Error::BadOption(format!("the source database's connection string: {e}")))
}

/// Whether WAL mode's drainer can stream through connection string
/// `source`: an error naming what to give instead when it names a
/// Unix-domain socket or several hosts (see [`replication_source`]).
/// `capture pg install --mode wal` warns with it, as the connection it was
/// given may be the drainer's too.
pub fn check_source(source: &str) -> Result<(), Error> {
    check_hosts(&crate::source(source)?)
}

/// [`check_source`] of a source already read.
fn check_hosts(parsed: &trailmark_pg::Source) -> Result<(), Error> {
    let hosts = parsed.config().get_hosts();
    let socket = hosts.iter().find_map(|h| match h {
        tokio_postgres::config::Host::Tcp(_) => None,
        #[cfg(unix)]
        tokio_postgres::config::Host::Unix(path) => Some(path.display().to_string()),
    });
    if let Some(socket) = socket {
        return Err(Error::BadOption(format!(
            "the source database's connection string: host {socket:?} is a Unix-domain socket, and WAL capture reads its slot over TCP only; give the database's TCP address instead (on its own machine host=127.0.0.1, with sslmode=disable to spare both sides the encryption)"
        )));
    }
    if hosts.len() > 1 {
        return Err(Error::BadOption(
            "the source database's connection string: WAL capture reads its slot from one server, and its replication client takes one host (a list was looked up as one host name); give the primary's address alone".into(),
        ));
    }
    Ok(())
}

fn replication(context: &str) -> impl FnOnce(ReplicationError) -> Error + '_ {
    move |e| Error::Replication(format!("{context}: {e}"))
}

/// The transaction being decoded.
struct Transaction {
    xid: u32,
    commit_lsn: u64,
    committed_at: String,
    /// The next change's place in the transaction.
    next: u64,
    /// The context `trailmark.set_context` set last.
    context: Value,
}

impl Transaction {
    /// Transaction `xid`, committed at `commit_lsn` at `timestamp`.
    fn new(xid: u32, commit_lsn: u64, timestamp: pg_walstream::TimestampTz) -> Self {
        Self {
            xid,
            commit_lsn,
            committed_at: pg_walstream::postgres_timestamp_to_chrono(timestamp)
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            next: 0,
            context: Value::Object(serde_json::Map::new()),
        }
    }
}

/// Records that the drainer tells slot `slot` it may forget the WAL
/// before `lsn` (`trailmark.slot_confirmed`, capture version 16), before
/// it tells it: the slot never stands past its record unless moved by
/// hand (`trailmark.slot_moved`). One small write a confirmed batch. Before
/// capture version 16 there is no record to keep (a drainer is upgraded
/// before install runs): nothing is written until install makes it, and
/// the first record is then one this drainer is about to confirm, so the
/// slot never stands past it.
async fn record_confirmed(client: &Client, slot: &str, lsn: u64) -> Result<(), Error> {
    let written = client
        .execute(
            "INSERT INTO trailmark.slot_confirmed (slot_name, lsn, recorded_at)
             VALUES ($1, $2::text::pg_lsn, now())
             ON CONFLICT (slot_name) DO UPDATE SET lsn = excluded.lsn, recorded_at = excluded.recorded_at
             WHERE trailmark.slot_confirmed.lsn < excluded.lsn",
            &[&slot, &crate::event::lsn_text(lsn)],
        )
        .await;
    match written {
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => Ok(()),
        other => other
            .map(|_| ())
            .map_err(pg("recording where the drainer confirmed the slot")),
    }
}

/// A slot that is gone: a capture gap, said so.
fn slot_gone(slot: &str) -> Error {
    Error::Replication(format!(
        "replication slot {slot} is gone: changes made since it was dropped were not captured (a capture gap). Run `trailmark capture pg install` to create it again; the trail records from then on"
    ))
}

/// The slot, once it is usable: it exists, has lost no WAL it needed
/// (either is a capture gap, said so), and no other connection holds it.
async fn usable_slot(client: &Client) -> Result<crate::SlotStatus, Error> {
    let Some(slot) = slot_status(client).await? else {
        return Err(slot_gone(&crate::slot_name(client).await?));
    };
    if slot.wal_status.as_deref() == Some("lost") {
        return Err(Error::Replication(format!(
            "replication slot {} lost WAL it still needed (max_slot_wal_keep_size was exceeded): changes after {} were not captured (a capture gap). Drop the slot and run install again; the trail records from then on",
            slot.name,
            slot.confirmed.as_deref().unwrap_or("its start")
        )));
    }
    // Moved past where this trail's drainer confirmed it (capture version
    // 16): by hand, or made again; the changes between were never decoded.
    if let Some((was, now)) = crate::install::slot_moved(client, &slot.name).await? {
        return Err(Error::Replication(format!(
            "{}. Run `trailmark capture pg install` to go on from where it stands; the trail records from then on",
            crate::install::slot_moved_gap(&slot.name, &was, &now)
        )));
    }
    // A drainer that just died may still hold the slot for a moment (its
    // server process has not yet seen the connection drop); this one holds
    // the drain lock, so any holder is on its way out.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while slot_status(client).await?.is_some_and(|s| s.active) {
        if std::time::Instant::now() > deadline {
            return Err(Error::Replication(format!(
                "replication slot {} is still held by another connection after 30 s (a drainer outside the drain lock?)",
                slot.name
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(slot)
}

/// Decodes the slot into `sink` until `options.once` finds it caught up
/// with the WAL position at the start, or for ever. Returns the events sent.
pub(crate) async fn stream<S: Sink>(
    client: &Client,
    source: &str,
    sink: &S,
    options: &DrainOptions,
    progress: &(dyn Fn(Progress) + Send + Sync),
    ids: &crate::EventIds,
    tables: &mut crate::drain::Tables,
) -> Result<u64, Error> {
    let slot = usable_slot(client).await?;
    let mut streaming = crate::install::streams_in_progress(client).await?;
    let batch_size = usize::try_from(options.batch).unwrap_or(1000).max(1);
    let total = AtomicU64::new(0);
    // Batches sent, and the ends the slot may be told of, in their order.
    let mut sent_batches = 0u64;
    let confirmed = std::sync::Mutex::new(Confirmed::default());
    // While a batch is appended, the next is decoded; it is sent once the
    // one before is durable, so order holds, or (to a sink that appends in
    // order) beside it, naming its last event.
    let mut in_flight: InFlight<'_, ()> = InFlight::new::<S>();
    // One replication session, or (a streamed transaction that could not be
    // placed) a second without streaming from where the slot stands.
    loop {
        let Reading {
            feedback,
            cancel,
            reader,
            mut decoded,
        } = read_slot(client, source, &slot.name, options, streaming).await?;
        let mut state = Decoder::lingering(options.linger);
        state.heartbeat = Some(slot.name.clone());
        let result: Result<Option<u32>, Error> = async {
            loop {
                let next = state
                    .next_batch(
                        &mut decoded,
                        client,
                        tables,
                        ids,
                        batch_size,
                        &mut in_flight,
                    )
                    .await?;
                if let Some(reason) = state.no_heartbeat.take() {
                    progress(Progress::NoHeartbeat { reason });
                }
                let last = crate::drain::After::of(&next.events);
                let next = next.readied(sink)?;
                let after = loop {
                    match in_flight.room(next.rows > 0) {
                        Room::No => in_flight.ended().await.1?,
                        room => break room.after(),
                    }
                };
                let (ended, unstreamed) = (next.ended, next.unstreamed);
                if next.rows > 0 || next.acknowledge.is_some() {
                    let (total, feedback) = (&total, Arc::clone(&feedback));
                    let slot_name = slot.name.as_str();
                    let (confirmed, nth) = (&confirmed, sent_batches);
                    sent_batches += 1;
                    let flushed = async move {
                        let sent =
                            flush(client, sink, next.events, next.rows, after.as_ref()).await?;
                        if sent > 0 {
                            let total = total.fetch_add(sent, Ordering::Relaxed) + sent;
                            progress(Progress::Sent { rows: sent, total });
                        }
                        let confirm = confirmed
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .checked(nth, next.acknowledge);
                        if let Some(lsn) = confirm {
                            // Durable in the ledger and checked, with every
                            // batch before it: the slot may forget it. The
                            // slot hears of it at once, not when the next
                            // batch is ready (an idle database sends none:
                            // the last batch would stay unconfirmed, its WAL
                            // kept). Recorded first (capture version 16):
                            // a slot found past its record was moved by hand.
                            record_confirmed(client, slot_name, lsn).await?;
                            feedback.update_flushed_lsn(lsn);
                            feedback.update_applied_lsn(lsn);
                        }
                        Ok::<(), Error>(())
                    };
                    in_flight.push(Box::pin(flushed), last, ());
                }
                if unstreamed.is_some() {
                    return Ok(unstreamed);
                }
                if ended {
                    return Ok(None);
                }
            }
        }
        .await;
        cancel.cancel();
        let _ = reader.await;
        let unstreamed = result?;
        // What was sent is made durable first: before the slot is advanced
        // past it, or before a session after this one starts where the
        // slot stands (what it sends again is stored once).
        while !in_flight.is_empty() {
            in_flight.ended().await.1?;
        }
        let Some(xid) = unstreamed else {
            break;
        };
        progress(Progress::Unstreamed { xid });
        streaming = false;
    }
    drop(in_flight);
    let durable = confirmed
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .told;
    advance(client, &slot.name, durable).await?;
    Ok(total.load(Ordering::Relaxed))
}

/// Which transaction ends the slot may be told of: a batch's only once it
/// and every batch sent before it are durable in the ledger and checked.
/// Two batches in flight may end in either order; the slot is told in the
/// order they were sent, so a batch whose check failed (the drain stops)
/// keeps the slot before it, even when the one after it was stored.
#[derive(Debug, Default)]
struct Confirmed {
    /// The batch (numbered from 0 as sent) the slot waits for next.
    next: u64,
    /// Batches after it already durable and checked, with their ends.
    early: std::collections::BTreeMap<u64, Option<u64>>,
    /// The newest end told: the end of the last transaction the ledger
    /// acknowledged, with all before it.
    told: Option<u64>,
}

impl Confirmed {
    /// Batch `nth` (ending the transactions up to `end`, if any) is durable
    /// and checked: the newest end the slot may be told of now.
    fn checked(&mut self, nth: u64, end: Option<u64>) -> Option<u64> {
        self.early.insert(nth, end);
        let mut newest = None;
        while let Some(end) = self.early.remove(&self.next) {
            self.next += 1;
            newest = end.or(newest);
        }
        self.told = newest.or(self.told);
        newest
    }
}

/// The slot's stream being read ahead of the decoder.
struct Reading {
    /// What the slot is told is durable.
    feedback: Arc<pg_walstream::SharedLsnFeedback>,
    /// Stops the reader.
    cancel: CancellationToken,
    reader: tokio::task::JoinHandle<()>,
    /// Messages read, at most [`READ_AHEAD`] ahead.
    decoded: tokio::sync::mpsc::Receiver<Result<Frame, ReplicationError>>,
}

/// One message read off the slot.
struct Frame {
    /// Where it was written in the WAL (a change's, a logical message's, a
    /// subtransaction's abort's place; a commit's end).
    at: u64,
    /// Inside a streamed chunk, the (sub)transaction a change, relation or
    /// logical message belongs to.
    xid: Option<u32>,
    message: Message,
}

impl Frame {
    /// Reads one `pgoutput` message written at `at`. Inside a streamed
    /// chunk a change, relation, type or logical message starts (after its
    /// kind) with the xid of the (sub)transaction it belongs to; the parser
    /// reads it and lets it go, so it is read here first.
    fn read(
        parser: &mut LogicalReplicationParser,
        in_chunk: &mut bool,
        at: u64,
        data: &[u8],
    ) -> Result<Frame, ReplicationError> {
        let xid = match data.first() {
            Some(b'I' | b'U' | b'D' | b'T' | b'R' | b'Y' | b'M') if *in_chunk => data
                .get(1..5)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
            _ => None,
        };
        let message = parser.parse_wal_message(data)?.message;
        match message {
            Message::StreamStart { .. } => *in_chunk = true,
            Message::StreamStop => *in_chunk = false,
            _ => {}
        }
        Ok(Frame { at, xid, message })
    }
}

/// Opens a replication connection to `source`, starts streaming `slot`
/// (up to the WAL's end now, `once`), and reads it ahead on a task.
/// `streaming`: transactions in progress are sent in chunks past the
/// server's `logical_decoding_work_mem` (protocol 2).
async fn read_slot(
    client: &Client,
    source: &str,
    slot: &str,
    options: &DrainOptions,
    streaming: bool,
) -> Result<Reading, Error> {
    let protocol = if streaming { 2 } else { 1 };
    let mut config = ReplicationStreamConfig::builder(slot.to_owned(), PUBLICATION)
        .with_protocol_version(protocol)
        .with_feedback_interval(Duration::from_secs(1))
        .with_connection_timeout(Duration::from_secs(30))
        .with_messages(true)
        // Only ever used when the slot is gone (see below): a slot the
        // client creates says so by the snapshot it exported.
        .with_slot_options(pg_walstream::ReplicationSlotOptions {
            snapshot: Some("export".to_owned()),
            ..pg_walstream::ReplicationSlotOptions::default()
        });
    config.streaming_mode = if streaming {
        StreamingMode::On
    } else {
        StreamingMode::Off
    };
    if options.once {
        // Where a `--once` run stops: after the first message written at
        // or past the WAL's end now (it may be inside a transaction that
        // commits later; the decoder leaves that one to the next run).
        let end = current_lsn(client).await?;
        config = config.with_stop_at_lsn(end);
    }
    let mut replication_stream =
        LogicalReplicationStream::new(&replication_source(source)?, config)
            .await
            .map_err(replication("connecting for replication"))?;
    // `usable_slot` found the slot a moment ago. Dropped since, the
    // replication client would create it again, at the WAL's end now, and
    // what was written meanwhile would be missing without a word: a slot
    // it had to create (it exported a snapshot) is a capture gap, dropped
    // again so that no later session streams from it, and reported.
    replication_stream
        .ensure_replication_slot()
        .await
        .map_err(replication("finding the replication slot"))?;
    if replication_stream.exported_snapshot_name().is_some() {
        drop(replication_stream);
        drop_slot(client, slot).await?;
        return Err(slot_gone(slot));
    }
    replication_stream
        .start(None)
        .await
        .map_err(replication("starting replication from the slot"))?;
    let feedback = Arc::clone(&replication_stream.shared_lsn_feedback);
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let (ahead, decoded) = tokio::sync::mpsc::channel(READ_AHEAD);
    let pace = READ_PACE.min(options.linger);
    let reader = tokio::spawn(async move {
        let mut parser = LogicalReplicationParser::with_protocol_version(protocol);
        let mut in_chunk = false;
        let mut idle = None;
        loop {
            let read = replication_stream.next_raw_event(&stop);
            let next = match paced(read, pace, &mut idle).await {
                Ok(raw) => {
                    Frame::read(&mut parser, &mut in_chunk, raw.wal_start.value(), &raw.data)
                }
                Err(e) => Err(e),
            };
            let last = next.is_err();
            if ahead.send(next).await.is_err() || last {
                break;
            }
        }
        let _ = replication_stream.stop().await;
    });
    Ok(Reading {
        feedback,
        cancel,
        reader,
        decoded,
    })
}

/// Drops `slot` once no connection holds it (the replication connection
/// that created it may hold it a moment after it closed): at most 10 s.
async fn drop_slot(client: &Client, slot: &str) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        client
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
                 WHERE slot_name = $1 AND NOT active",
                &[&slot],
            )
            .await
            .map_err(pg("dropping a replication slot created by mistake"))?;
        let left: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .map_err(pg("dropping a replication slot created by mistake"))?
            .get(0);
        if left == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Replication(format!(
                "replication slot {slot} was created again by the replication client and is still held after 10 s; drop it (SELECT pg_drop_replication_slot('{slot}')) and run install: changes since it was first dropped were not captured"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Where the WAL ends now (where a `--once` run stops).
async fn current_lsn(client: &Client) -> Result<u64, Error> {
    let text: String = client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .map_err(pg("reading the current WAL position"))?
        .get(0);
    crate::parse_lsn(&text).ok_or_else(|| Error::Replication(format!("LSN {text:?}")))
}

/// A batch ready to send, and the end of the last transaction it completes
/// (what the slot may forget once the batch is durable).
struct Ready<B> {
    /// The events (decoded), or the batch the sink readied of them.
    events: B,
    rows: u64,
    acknowledge: Option<u64>,
    /// The stream ended after it (a `--once` run reached its end).
    ended: bool,
    /// A streamed transaction could not be placed (`streamed`): the
    /// session ends after this batch, and the next decodes it unstreamed.
    unstreamed: Option<u32>,
}

impl Ready<Vec<Event>> {
    /// The decoded events as the batch `sink` sends.
    fn readied<S: Sink>(self, sink: &S) -> Result<Ready<S::Batch>, Error> {
        Ok(Ready {
            events: sink.batch(self.events).map_err(crate::drain::sink_error)?,
            rows: self.rows,
            acknowledge: self.acknowledge,
            ended: self.ended,
            unstreamed: self.unstreamed,
        })
    }
}

/// What one message did to the decoding.
enum Taken {
    Nothing,
    /// A transaction committed, ending here.
    Commit(u64),
    /// A streamed transaction cannot be placed.
    Unplaced(u32),
}

/// A committed streamed transaction being read back into batches.
struct Replaying {
    items: streamed::Replay,
    /// Where its commit ends.
    end: u64,
}

/// What decoding keeps between events: each relation's description, the
/// transaction being decoded, the streamed ones still open, and the events
/// not yet sent.
#[derive(Default)]
struct Decoder {
    relations: HashMap<u32, RelationInfo>,
    /// The composite types the described relations' columns hold.
    composites: Composites,
    open: Option<Transaction>,
    /// Transactions streamed in progress, held until they end.
    streamed: streamed::Open,
    /// The transaction whose streamed chunk is being read.
    chunk: Option<u32>,
    /// A committed streamed transaction not yet all in batches.
    replaying: Option<Replaying>,
    batch: Vec<Event>,
    /// Where the open transaction's events start in `batch`.
    open_start: usize,
    /// The end of the last transaction decoded and not yet handed on.
    acknowledge: Option<u64>,
    /// When the last batch was handed on (see [`crate::LINGER`]).
    handed_on: Option<Instant>,
    /// How long a batch that is not full waits for more after that.
    linger: Duration,
    /// The slot, when the decoder writes heartbeats for it while it waits
    /// ([`heartbeat`]).
    heartbeat: Option<String>,
    /// Why a heartbeat could not be written (heartbeats then stop for the
    /// session; the drain goes on), until the caller reports it.
    no_heartbeat: Option<String>,
}

impl Decoder {
    fn lingering(linger: Duration) -> Self {
        Self {
            linger,
            ..Self::default()
        }
    }

    /// Decodes until a batch is ready: full (a large transaction goes in
    /// several: sent again after a crash, its events are stored once), or at
    /// a commit with nothing more decoded yet, no batch in flight and
    /// the linger passed since the batch before was handed on, or at the
    /// stream's end.
    ///
    /// `in_flight` are the batches before, being appended: a batch that is
    /// not full is not handed on while one is, so until then it keeps
    /// taking what arrives. They are driven here, each left once done; an
    /// append that fails ends decoding with its error.
    async fn next_batch(
        &mut self,
        decoded: &mut tokio::sync::mpsc::Receiver<Result<Frame, ReplicationError>>,
        client: &Client,
        tables: &mut crate::drain::Tables,
        ids: &crate::EventIds,
        batch_size: usize,
        in_flight: &mut InFlight<'_, ()>,
    ) -> Result<Ready<Vec<Event>>, Error> {
        // The last event taken committed a transaction.
        let mut at_commit = false;
        let mut unstreamed = None;
        // Before this, a batch that is not full keeps taking what arrives.
        let linger_until = self.handed_on.map(|at| at + self.linger);
        let ended = loop {
            if let Some(replaying) = self.replaying.as_mut() {
                // A committed streamed transaction is read back before
                // anything after it.
                match replaying.items.next_item()? {
                    Some(Item::Context { content, .. }) => {
                        if let Some(tx) = self.open.as_mut() {
                            merge_context(&mut tx.context, &content);
                        }
                        at_commit = false;
                    }
                    Some(Item::Change { change, .. }) => {
                        push(client, &mut self.open, &mut self.batch, tables, ids, change).await?;
                        at_commit = false;
                    }
                    None => {
                        self.acknowledge = Some(replaying.end);
                        self.replaying = None;
                        self.open = None;
                        at_commit = true;
                    }
                }
            } else {
                // The next decoded message, or None when an append in
                // flight became durable first, or when the batch, complete,
                // has lingered its time.
                let next = if in_flight.is_empty() {
                    match linger_until.filter(|_| at_commit) {
                        None => self.wait(decoded, client).await,
                        Some(until) => tokio::time::timeout_at(until, decoded.recv()).await.ok(),
                    }
                } else {
                    tokio::select! {
                        biased;
                        ((), done) = in_flight.ended() => {
                            done?;
                            None
                        }
                        next = decoded.recv() => Some(next),
                    }
                };
                if let Some(next) = next {
                    let frame = match next {
                        Some(Ok(frame)) => frame,
                        None | Some(Err(ReplicationError::StreamStopped(_))) => break true,
                        Some(Err(e)) => return Err(replication("reading the WAL")(e)),
                    };
                    at_commit = false;
                    match self.take(client, tables, ids, frame).await? {
                        Taken::Nothing => {}
                        Taken::Commit(lsn) => {
                            self.acknowledge = Some(lsn);
                            at_commit = true;
                        }
                        Taken::Unplaced(xid) => {
                            unstreamed = Some(xid);
                            break false;
                        }
                    }
                }
            }
            if self.no_heartbeat.is_some()
                || self.batch.len() >= batch_size
                || (at_commit
                    && in_flight.is_empty()
                    && decoded.is_empty()
                    && linger_until.is_none_or(|until| Instant::now() >= until))
            {
                break false;
            }
        };
        if (ended || unstreamed.is_some()) && self.open.is_some() {
            // A `--once` run stops at the first message written past the
            // WAL's end at its start, which may be inside a transaction:
            // what of it this batch holds is left to the next run (what of
            // it went before is stored once when it comes again).
            self.batch.truncate(self.open_start);
            self.open = None;
        }
        self.handed_on = Some(Instant::now());
        self.open_start = 0;
        let events = std::mem::take(&mut self.batch);
        Ok(Ready {
            rows: events.len() as u64,
            events,
            acknowledge: self.acknowledge.take(),
            ended,
            unstreamed,
        })
    }

    /// The next decoded message, however long it takes; each [`QUIET`]
    /// without one, a [`heartbeat`] if the slot needs one. A heartbeat that
    /// fails (a role denied `pg_logical_emit_message`, say) ends heartbeats for the
    /// session and the wait (None), its reason kept for the caller to
    /// report: the drain goes on.
    async fn wait(
        &mut self,
        decoded: &mut tokio::sync::mpsc::Receiver<Result<Frame, ReplicationError>>,
        client: &Client,
    ) -> Option<Option<Result<Frame, ReplicationError>>> {
        let Some(slot) = self.heartbeat.as_deref() else {
            return Some(decoded.recv().await);
        };
        let failed = loop {
            match tokio::time::timeout(QUIET, decoded.recv()).await {
                Ok(next) => return Some(next),
                Err(_) => {
                    if let Err(e) = heartbeat(client, slot).await {
                        break e.to_string();
                    }
                }
            }
        };
        self.heartbeat = None;
        self.no_heartbeat = Some(failed);
        None
    }

    /// The relation a change names: as the streamed chunk being read
    /// described it, or as last described outside one.
    fn relation(&self, id: u32) -> Result<&RelationInfo, Error> {
        self.chunk
            .and_then(|xid| self.streamed.relations(xid))
            .and_then(|relations| relations.get(&id))
            .or_else(|| self.relations.get(&id))
            .ok_or_else(|| {
                Error::Replication(format!(
                    "a change to relation {id} arrived before its description"
                ))
            })
    }

    /// The changes a data message (insert, update, delete, truncate)
    /// makes; none for other messages.
    fn changes(&self, message: Message) -> Result<Vec<Change>, Error> {
        Ok(match message {
            Message::Insert { relation_id, tuple } => {
                let relation = self.relation(relation_id)?;
                let new = Some(row_columns(
                    &tuple.into_row_data(relation),
                    None,
                    relation,
                    &self.composites,
                ));
                vec![Change::new(
                    "insert",
                    &relation.namespace,
                    &relation.relation_name,
                    None,
                    new,
                )]
            }
            Message::Update {
                relation_id,
                old_tuple,
                new_tuple,
                ..
            } => {
                let relation = self.relation(relation_id)?;
                let old_data = old_tuple.map(|o| o.into_row_data(relation));
                let old = old_data
                    .as_ref()
                    .map(|o| row_columns(o, None, relation, &self.composites));
                // Unchanged values stored out of line are left out of the
                // new row: they are the old row's.
                let new_data = new_tuple.into_row_data(relation);
                let new = Some(row_columns(
                    &new_data,
                    old_data.as_ref(),
                    relation,
                    &self.composites,
                ));
                vec![Change::new(
                    "update",
                    &relation.namespace,
                    &relation.relation_name,
                    old,
                    new,
                )]
            }
            Message::Delete {
                relation_id,
                old_tuple,
                ..
            } => {
                let relation = self.relation(relation_id)?;
                let old = Some(row_columns(
                    &old_tuple.into_row_data(relation),
                    None,
                    relation,
                    &self.composites,
                ));
                vec![Change::new(
                    "delete",
                    &relation.namespace,
                    &relation.relation_name,
                    old,
                    None,
                )]
            }
            Message::Truncate { relation_ids, .. } => relation_ids
                .iter()
                .map(|id| {
                    let relation = self.relation(*id)?;
                    Ok(Change::new(
                        "truncate",
                        &relation.namespace,
                        &relation.relation_name,
                        None,
                        None,
                    ))
                })
                .collect::<Result<_, Error>>()?,
            _ => Vec::new(),
        })
    }

    /// A streamed transaction's chunk starts or stops, a subtransaction
    /// of it or all of it rolls back, or it commits (read back next).
    fn stream_control(&mut self, at: u64, message: &Message) -> Result<Taken, Error> {
        match *message {
            Message::StreamStart { xid, .. } => {
                self.streamed.start(xid);
                self.chunk = Some(xid);
                Ok(Taken::Nothing)
            }
            Message::StreamStop => {
                if let Some(xid) = self.chunk.take()
                    && let Err(unplaced) = self.streamed.stop(xid)
                {
                    return Ok(Taken::Unplaced(unplaced.xid));
                }
                Ok(Taken::Nothing)
            }
            Message::StreamAbort {
                xid,
                subtransaction_xid,
                ..
            } => {
                if let Err(unplaced) = self.streamed.abort(xid, subtransaction_xid, at) {
                    return Ok(Taken::Unplaced(unplaced.xid));
                }
                Ok(Taken::Nothing)
            }
            Message::StreamCommit {
                xid,
                commit_lsn,
                end_lsn,
                timestamp,
                ..
            } => {
                let streamed::Committed { items, relations } = match self.streamed.commit(xid)? {
                    Ok(committed) => committed,
                    Err(unplaced) => return Ok(Taken::Unplaced(unplaced.xid)),
                };
                // What it described holds from now on (the server sends no
                // description again for what a streamed transaction that
                // committed described).
                self.relations.extend(relations);
                self.begin(Transaction::new(xid, commit_lsn, timestamp));
                self.replaying = Some(Replaying {
                    items,
                    end: end_lsn,
                });
                Ok(Taken::Nothing)
            }
            _ => Ok(Taken::Nothing),
        }
    }

    /// Takes one message read off the slot.
    async fn take(
        &mut self,
        client: &Client,
        tables: &mut crate::drain::Tables,
        ids: &crate::EventIds,
        frame: Frame,
    ) -> Result<Taken, Error> {
        let Frame {
            at,
            xid: by,
            message,
        } = frame;
        let changes = match message {
            Message::Begin {
                final_lsn,
                timestamp,
                xid,
            } => {
                self.begin(Transaction::new(xid, final_lsn, timestamp));
                Vec::new()
            }
            Message::Commit { end_lsn, .. } => {
                self.open = None;
                return Ok(Taken::Commit(end_lsn));
            }
            control @ (Message::StreamStart { .. }
            | Message::StreamStop
            | Message::StreamAbort { .. }
            | Message::StreamCommit { .. }) => return self.stream_control(at, &control),
            Message::Relation {
                relation_id,
                namespace,
                relation_name,
                replica_identity,
                mut columns,
            } => {
                read_types_as_to_jsonb_does(client, &mut columns, &mut self.composites).await?;
                let relation = RelationInfo::new(
                    relation_id,
                    namespace,
                    relation_name,
                    replica_identity,
                    columns,
                );
                match self.chunk {
                    Some(xid) => self
                        .streamed
                        .start(xid)
                        .relations
                        .insert(relation_id, relation),
                    None => self.relations.insert(relation_id, relation),
                };
                Vec::new()
            }
            Message::Message {
                flags, lsn, prefix, ..
            } if flags & 1 == 0
                && prefix == HEARTBEAT_PREFIX
                && self.open.is_none()
                && self.chunk.is_none() =>
            {
                // Written outside any transaction, sent as it was decoded:
                // every transaction committed before it came before it.
                return Ok(Taken::Commit(lsn));
            }
            Message::Message {
                flags,
                prefix,
                content,
                ..
            } if flags & 1 == 1 => match self.chunk {
                Some(xid) if prefix == MESSAGE_PREFIX => {
                    if let Err(unplaced) = self.streamed.context(xid, at, &content)? {
                        return Ok(Taken::Unplaced(unplaced.xid));
                    }
                    Vec::new()
                }
                _ => self.message(&prefix, &content)?,
            },
            data => self.changes(data)?,
        };
        for change in changes {
            match self.chunk {
                Some(xid) => {
                    let by = by.unwrap_or(xid);
                    if let Err(unplaced) = self.streamed.change(xid, by, at, change)? {
                        return Ok(Taken::Unplaced(unplaced.xid));
                    }
                }
                None => push(client, &mut self.open, &mut self.batch, tables, ids, change).await?,
            }
        }
        Ok(Taken::Nothing)
    }

    /// A transaction begins. One begun again (the stream reconnected and
    /// sends it from its start) replaces what of it is still in the batch
    /// (what was sent is stored once, by id).
    fn begin(&mut self, tx: Transaction) {
        if self.open.is_some() {
            self.batch.truncate(self.open_start);
        }
        self.open_start = self.batch.len();
        self.open = Some(tx);
    }

    /// A transactional logical message: context `trailmark.set_context`
    /// wrote (merged into the transaction's), a pause or resume (a
    /// change of its own, recorded in order with the changes around it),
    /// or a truncate of one partition of a covered table, which
    /// PostgreSQL's logical decoding does not send when publishing through
    /// the table (`trailmark.capture_truncate` writes it); and capture's
    /// records of rows that entered, left or were rewritten by DDL
    /// (capture versions 15 and 16), which it sends no change for. A
    /// capture message (prefix `trailmark.`) this build does not know was
    /// written by a newer capture than it understands: refused, as a
    /// change that cannot become an event is (the slot keeps it), never
    /// read past. Other prefixes are the application's own.
    fn message(&mut self, prefix: &str, content: &[u8]) -> Result<Vec<Change>, Error> {
        if prefix == MESSAGE_PREFIX {
            if let Some(tx) = self.open.as_mut() {
                merge_context(&mut tx.context, content);
            }
            return Ok(Vec::new());
        }
        let whole = match prefix {
            crate::install::TRUNCATE_PREFIX => Some("truncate"),
            crate::install::REWRITE_PREFIX => Some("rewrite"),
            _ => None,
        };
        let create = prefix == crate::install::CREATE_PREFIX;
        if whole.is_none() && !create && prefix != crate::install::SWITCH_PREFIX {
            if prefix.starts_with("trailmark.") && prefix != crate::install::END_PREFIX {
                return Err(Error::Replication(format!(
                    "a capture message this trailmark does not know ({prefix}): the capture installed is newer than this trailmark: upgrade trailmark; the slot keeps it"
                )));
            }
            return Ok(Vec::new());
        }
        let message: Value = serde_json::from_slice(content).unwrap_or_default();
        let text = |k: &str| message[k].as_str().unwrap_or_default().to_owned();
        if create {
            // A row that entered the table with a partition attached
            // (capture version 15): the row as trigger mode's outbox holds
            // it, the role and the reason on its old side (`switched_by`).
            return Ok(vec![Change::new(
                "insert",
                &text("schema"),
                &text("table"),
                message_fields(&message, &["reason", "role"]),
                Some(RowImage::Json(message["row"].to_string())),
            )]);
        }
        if let Some(op) = whole {
            // The partition truncated, and for rows that left by DDL
            // (capture version 15: a partition detached or dropped, the
            // table dropped) the role and the reason (`switched_by`); the
            // same for rows rewritten by DDL (capture version 16).
            let old = message_fields(&message, &["partition", "reason", "role"]);
            return Ok(vec![Change::new(
                op,
                &text("schema"),
                &text("table"),
                old,
                None,
            )]);
        }
        let op = match message["op"].as_str() {
            Some("resume") => "resume",
            _ => "pause",
        };
        // Capture switched by hand (the event trigger records it): the
        // role that did it and why, on the switch's old side (`switched_by`).
        let by = message_fields(&message, &["reason", "role"]);
        Ok(vec![Change::new(
            op,
            &text("schema"),
            &text("table"),
            by,
            None,
        )])
    }
}

/// The string values a capture message holds under `keys`, in that order,
/// as a change's old side (`switched_by` takes the role and the reason off
/// it); `None` when it holds none of them.
fn message_fields(message: &Value, keys: &[&str]) -> Option<RowImage> {
    let fields: Vec<(String, Value)> = keys
        .iter()
        .filter_map(|&k| Some((k.to_owned(), Value::String(message[k].as_str()?.to_owned()))))
        .collect();
    (!fields.is_empty()).then_some(RowImage::Columns(fields))
}

/// A change's old side, context and database role as trigger mode's
/// outbox row has them. A pause or resume the event trigger recorded
/// (capture switched by hand), or a truncate or rewrite it recorded (rows
/// that left a covered table by DDL, capture version 15, or were rewritten
/// by DDL, version 16), carries the role that did it and why on its old
/// side (`Decoder::message`): they become the role (the event's actor when
/// the context names none) and the context's reason (a truncate or a
/// rewrite keeps its partition there). Otherwise the
/// transaction's context, and no role (WAL mode does not know it).
fn switched_by(
    op: &str,
    old: Option<RowImage>,
    context: &Value,
) -> (Option<RowImage>, Value, String) {
    let mut context = context.clone();
    let mut role = "unknown".to_owned();
    match (op, old) {
        // (An insert has an old side only when it is a row that entered
        // with a partition attached: `Decoder::message`.)
        ("pause" | "resume" | "truncate" | "rewrite" | "insert", Some(RowImage::Columns(by))) => {
            let mut kept = Vec::new();
            for (key, value) in by {
                match (key.as_str(), value) {
                    ("role", Value::String(name)) => role = name,
                    ("reason", reason) => {
                        if let Some(context) = context.as_object_mut() {
                            context.insert("reason".into(), reason);
                        }
                    }
                    // A truncate's (or rewrite's) partition stays its old side.
                    (_, value) => kept.push((key, value)),
                }
            }
            let kept = (matches!(op, "truncate" | "rewrite") && !kept.is_empty())
                .then_some(RowImage::Columns(kept));
            (kept, context, role)
        }
        (_, old) => (old, context, role),
    }
}

/// Merges what one `trailmark.set_context` call gave into the
/// transaction's context, as its settings would be: a value (a number as its
/// digits) sets its key, null (or empty) clears it, keys not given stay.
fn merge_context(context: &mut Value, message: &[u8]) {
    let Ok(Value::Object(given)) = serde_json::from_slice::<Value>(message) else {
        return;
    };
    let Some(context) = context.as_object_mut() else {
        return;
    };
    for (key, value) in given {
        match value {
            Value::Null => {
                context.remove(&key);
            }
            Value::String(text) if text.is_empty() => {
                context.remove(&key);
            }
            Value::String(text) => {
                context.insert(key, Value::String(text));
            }
            other => {
                context.insert(key, Value::String(other.to_string()));
            }
        }
    }
}

/// Moves the slot past what the ledger acknowledged once the replication
/// session has let it go (a `--once` run ends with the slot where its last
/// acknowledged transaction ended, not where the last feedback left it).
async fn advance(client: &Client, slot: &str, durable: Option<u64>) -> Result<(), Error> {
    // The replication session ends with this run: wait (briefly) for the
    // server to let the slot go, so a run that returned leaves it free (an
    // uninstall or another drainer right after finds it so).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let active: bool = client
            .query_one(
                "SELECT coalesce((SELECT active FROM pg_replication_slots WHERE slot_name = $1), false)",
                &[&slot],
            )
            .await
            .map_err(pg("reading the replication slot"))?
            .get(0);
        if !active {
            break;
        }
        if std::time::Instant::now() > deadline {
            // Still held: the last feedback stands; the next run resumes
            // from it (and stores nothing twice).
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let Some(lsn) = durable else {
        return Ok(());
    };
    record_confirmed(client, slot, lsn).await?;
    client
        .execute(
            "SELECT pg_replication_slot_advance($1, $2::text::pg_lsn)
             FROM pg_replication_slots WHERE slot_name = $1 AND NOT active
             AND confirmed_flush_lsn < $2::text::pg_lsn",
            &[&slot, &crate::event::lsn_text(lsn)],
        )
        .await
        .map_err(pg("advancing the replication slot"))?;
    Ok(())
}

async fn flush<S: Sink>(
    client: &Client,
    sink: &S,
    mut batch: S::Batch,
    rows: u64,
    after: Option<&crate::drain::After>,
) -> Result<u64, Error> {
    if rows == 0 {
        return Ok(0);
    }
    let tenants = send(sink, &mut batch, after).await?;
    crate::seen::check(client, sink, &tenants).await?;
    Ok(rows)
}

/// One decoded change → a validated event, appended to the batch.
async fn push(
    client: &Client,
    open: &mut Option<Transaction>,
    batch: &mut Vec<Event>,
    tables: &mut crate::drain::Tables,
    ids: &crate::EventIds,
    change: Change,
) -> Result<(), Error> {
    let Change {
        op,
        schema,
        table,
        old,
        new,
    } = change;
    let (schema, table) = (schema.as_str(), table.as_str());
    let Some(tx) = open.as_mut() else {
        return Err(Error::Replication(format!(
            "a change to {schema}.{table} arrived outside a transaction"
        )));
    };
    let (old_row, context, db_role) = switched_by(op, old, &tx.context);
    let row = OutboxRow {
        id: 0,
        txid: i64::from(tx.xid),
        stmt: 0,
        op: op.to_owned(),
        schema: schema.to_owned(),
        table: table.to_owned(),
        old_row,
        new_row: new,
        context,
        db_role,
        captured_at: tx.committed_at.clone(),
        wal: Some(crate::event::WalPosition {
            commit_lsn: tx.commit_lsn,
            change: tx.next,
        }),
    };
    tx.next += 1;
    let captured = crate::drain::capture(client, tables, &row, ids)
        .await?
        .map_err(|reason| {
            Error::Replication(format!(
                "the change at {} #{} cannot become a valid event ({reason}); the slot keeps it",
                crate::event::lsn_text(tx.commit_lsn),
                tx.next - 1,
            ))
        })?;
    batch.push(captured);
    Ok(())
}

/// A decoded row as the columns `to_jsonb(row)` would write, so both modes
/// turn a row into the same event: columns missing from `row` (unchanged
/// values stored out of line) are taken from `fallback`.
/// A column whose type is a domain is read as the type the domain is over
/// (a domain over a domain, as the type under both), and an array of a
/// domain as an array of that type: `to_jsonb` writes them so, and trigger
/// mode with it (an `int` domain's 7 is the number 7, not the text "7").
/// An `hstore` (an extension's type) is read as [`HSTORE`], an array of
/// it as [`HSTORE_ARRAY`]: `to_jsonb` writes them through the extension's
/// cast, as objects. A composite type (and an array of one) is recorded in
/// `composites` with its attributes, their types read the same way, at any
/// depth: `to_jsonb` writes it as an object of them.
/// Built-in types (below 16384, PostgreSQL's first user OID) are none of these:
/// a relation of those asks nothing. Read when a relation is described
/// (once a session, and after its DDL), from the catalog as it is then.
async fn read_types_as_to_jsonb_does(
    client: &Client,
    columns: &mut [pg_walstream::ColumnInfo],
    composites: &mut Composites,
) -> Result<(), Error> {
    let mut types: Vec<u32> = columns.iter().map(|c| c.type_id).collect();
    read_types(client, &mut types).await?;
    for (column, type_id) in columns.iter_mut().zip(&types) {
        column.type_id = *type_id;
    }
    // The composite types among them, their attributes' composite types,
    // and so on (PostgreSQL refuses a composite type inside itself); each
    // read again whenever a relation holding it is described.
    let mut seen = std::collections::HashSet::new();
    let mut asked: Vec<u32> = types;
    loop {
        asked
            .retain(|&t| t >= FIRST_USER_OID && t != HSTORE && t != HSTORE_ARRAY && seen.insert(t));
        if asked.is_empty() {
            return Ok(());
        }
        let rows = client
            .query(
                "SELECT t.oid, a.attname::text, a.atttypid, NULL::oid, a.attnum
                 FROM pg_type t JOIN pg_attribute a ON a.attrelid = t.typrelid
                 WHERE t.oid = ANY($1) AND t.typtype = 'c' AND a.attnum > 0 AND NOT a.attisdropped
                 UNION ALL
                 SELECT t.oid, NULL, NULL, e.oid, NULL
                 FROM pg_type t JOIN pg_type e ON e.oid = t.typelem AND e.typarray = t.oid
                 WHERE t.oid = ANY($1) AND e.typtype = 'c'
                 ORDER BY 1, 5",
                &[&asked],
            )
            .await
            .map_err(pg("reading the attributes of composite column types"))?;
        let mut fields: HashMap<u32, Vec<(String, u32)>> = HashMap::new();
        let mut next = Vec::new();
        for row in &rows {
            let oid: u32 = row.get(0);
            match row.get::<_, Option<u32>>(3) {
                Some(element) => {
                    composites.arrays.insert(oid, element);
                    next.push(element);
                }
                None => fields
                    .entry(oid)
                    .or_default()
                    .push((row.get(1), row.get(2))),
            }
        }
        // Every attribute of this round's composites read in one query.
        let mut fields: Vec<(u32, Vec<(String, u32)>)> = fields.into_iter().collect();
        let mut of: Vec<u32> = fields
            .iter()
            .flat_map(|(_, attributes)| attributes.iter().map(|(_, t)| *t))
            .collect();
        read_types(client, &mut of).await?;
        let attributes = fields.iter_mut().flat_map(|(_, a)| a.iter_mut());
        for ((_, type_id), read) in attributes.zip(&of) {
            *type_id = *read;
        }
        next.extend(of);
        composites.fields.extend(fields);
        asked = next;
    }
}

/// PostgreSQL's first user OID: types below it are built in.
const FIRST_USER_OID: u32 = 16_384;

/// Each of `types` as `to_jsonb` reads it: a domain as the type it is over,
/// an array of a domain as an array of that type, `hstore` as [`HSTORE`]
/// and an array of it as [`HSTORE_ARRAY`]; the others as they are.
async fn read_types(client: &Client, types: &mut [u32]) -> Result<(), Error> {
    loop {
        let asked: Vec<u32> = types
            .iter()
            .copied()
            .filter(|&t| t >= FIRST_USER_OID && t != HSTORE && t != HSTORE_ARRAY)
            .collect();
        if asked.is_empty() {
            return Ok(());
        }
        // `hstore` (an extension's type, its OID the database's own) is
        // told apart by name and read as [`HSTORE`], an array of it as
        // [`HSTORE_ARRAY`].
        let rows = client
            .query(
                "SELECT t.oid, CASE WHEN t.typtype = 'd' THEN t.typbasetype
                     WHEN t.typname = 'hstore' AND t.typtype = 'b' THEN $2::oid
                     WHEN EXISTS (SELECT FROM pg_type e WHERE e.oid = t.typelem
                                  AND e.typname = 'hstore' AND e.typtype = 'b'
                                  AND e.typarray = t.oid) THEN $3::oid
                     ELSE (SELECT b.typarray FROM pg_type e JOIN pg_type b ON b.oid = e.typbasetype
                           WHERE e.oid = t.typelem AND e.typtype = 'd') END
                 FROM pg_type t WHERE t.oid = ANY($1)",
                &[&asked, &HSTORE, &HSTORE_ARRAY],
            )
            .await
            .map_err(pg("reading the types of a relation's columns"))?;
        let mut changed = false;
        for row in rows {
            let (oid, base): (u32, Option<u32>) = (row.get(0), row.get(1));
            let Some(base) = base.filter(|&b| b != 0) else {
                continue;
            };
            for type_id in types.iter_mut().filter(|t| **t == oid) {
                *type_id = base;
                changed = true;
            }
        }
        if !changed {
            return Ok(());
        }
    }
}

/// The composite types the described relations' columns hold (at any
/// depth), as [`read_types_as_to_jsonb_does`] read them: each its
/// attributes' names and types in order, and the array types over them
/// with their element type.
#[derive(Debug, Default)]
struct Composites {
    fields: HashMap<u32, Vec<(String, u32)>>,
    arrays: HashMap<u32, u32>,
}

fn row_columns(
    row: &RowData,
    fallback: Option<&RowData>,
    relation: &RelationInfo,
    composites: &Composites,
) -> RowImage {
    let type_of = |name: &str| {
        relation
            .get_column_by_name(name)
            .map_or(25, |column| column.type_id)
    };
    let unchanged = fallback
        .into_iter()
        .flat_map(|old| old.iter().filter(|(name, _)| row.get(name).is_none()));
    RowImage::Columns(
        row.iter()
            .chain(unchanged)
            .map(|(name, value)| {
                (
                    name.to_string(),
                    column_value(composites, type_of(name), value),
                )
            })
            .collect(),
    )
}

/// One column's value as an event holds it: [`column_json`]'s text under
/// the rule of both modes (`event::column_of`). The common types (null,
/// bool, numbers, timestamps, text and the other types written as
/// strings) go there directly, without writing the text and parsing it
/// back; arrays, `json`, `jsonb` and values too long to keep go through
/// the text. A test holds the two ways equal.
fn column_value(composites: &Composites, type_oid: u32, value: &ColumnValue) -> Value {
    let bytes = match value {
        ColumnValue::Null => return Value::Null,
        ColumnValue::Text(bytes) | ColumnValue::Binary(bytes) => bytes,
    };
    let text = String::from_utf8_lossy(bytes);
    if text.len() <= crate::event::MAX_VALUE_BYTES {
        match type_oid {
            16 => return Value::Bool(text == "t"),
            20 | 21 | 23 | 26 | 700 | 701 | 1700 => {
                return match serde_json::from_str::<serde_json::Number>(&text) {
                    Ok(n) => crate::event::number_value(n, &text),
                    Err(_) => Value::String(text.into_owned()),
                };
            }
            1114 => return Value::String(iso_timestamp(&text)),
            1184 => return Value::String(utc_timestamp(&text)),
            114 | 3802 | HSTORE => {}
            _ if element_type(composites, type_oid).is_none()
                && !composites.fields.contains_key(&type_oid) =>
            {
                return Value::String(text.into_owned());
            }
            _ => {}
        }
    }
    crate::event::column_of(&column_json(composites, type_oid, value))
}

/// One column's value as `to_jsonb` writes it, from its text form and type.
fn column_json(composites: &Composites, type_oid: u32, value: &ColumnValue) -> String {
    let text = match value {
        ColumnValue::Null => return "null".into(),
        ColumnValue::Text(bytes) | ColumnValue::Binary(bytes) => String::from_utf8_lossy(bytes),
    };
    if text.len() > crate::event::MAX_VALUE_BYTES {
        // Too long to keep: its length and digest (over the JSON of what is
        // not a string, as the outbox's rule has it).
        let json = scalar_json(composites, type_oid, &text).or_else(|| {
            element_type(composites, type_oid).and_then(|e| array_json(composites, e, &text))
        });
        let cut = match json {
            Some(json) if !json.starts_with('"') => crate::event::not_kept(&json),
            _ => crate::event::not_kept(&text),
        };
        if let Some(cut) = cut {
            return cut.to_string();
        }
    }
    text_json(composites, type_oid, &text)
}

/// A value of type `type_oid` as `to_jsonb` writes it, from its text (not
/// NULL): a column's, an array's item or a composite's attribute.
fn text_json(composites: &Composites, type_oid: u32, text: &str) -> String {
    scalar_json(composites, type_oid, text).unwrap_or_else(|| {
        match element_type(composites, type_oid) {
            Some(element) => array_json(composites, element, text).unwrap_or_else(|| quote(text)),
            None => quote(text),
        }
    })
}

fn quote(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

/// A scalar of a type `to_jsonb` writes as other than a string; `None`
/// for the rest (written as the string of their text).
fn scalar_json(composites: &Composites, type_oid: u32, text: &str) -> Option<String> {
    match type_oid {
        // bool
        16 => Some(if text == "t" { "true" } else { "false" }.into()),
        // int2, int4, int8, oid, float4, float8, numeric: the digits as
        // written (NaN and the infinities stay strings, as to_jsonb has it).
        20 | 21 | 23 | 26 | 700 | 701 | 1700 => {
            let number = serde_json::from_str::<serde_json::Number>(text).is_ok();
            Some(if number { text.to_owned() } else { quote(text) })
        }
        // json, jsonb
        114 | 3802 => Some(
            serde_json::from_str::<Value>(text).map_or_else(|_| quote(text), |v| v.to_string()),
        ),
        // timestamp, timestamptz: ISO 8601, as to_jsonb writes them.
        1114 => Some(quote(&iso_timestamp(text))),
        1184 => Some(quote(&utc_timestamp(text))),
        HSTORE => hstore_json(text),
        _ => record_json(composites, composites.fields.get(&type_oid)?, text),
    }
}

/// A composite value's text (`(1,"two words",,"a ""q""")`, as its output
/// function writes it: an attribute with nothing between its commas is
/// NULL, and one in double quotes takes a doubled quote or a backslash's
/// next character as it is) as the object `to_jsonb` makes of it: each
/// attribute by name, its value as [`text_json`] writes its type's.
/// Written as every object value is compared and digested
/// (`event::column_of`). `None` for text that is not a value of the
/// composite `attributes` describe (then the string): more attributes
/// than it has (one was dropped since), or not a composite's text.
fn record_json(
    composites: &Composites,
    attributes: &[(String, u32)],
    text: &str,
) -> Option<String> {
    let mut chars = text.chars().peekable();
    if chars.next()? != '(' {
        return None;
    }
    let mut attributes = attributes.iter();
    let mut object = serde_json::Map::new();
    loop {
        let mut item = String::new();
        let (mut quoted, mut within) = (false, false);
        let end = loop {
            match (within, chars.next()?) {
                (_, '\\') => item.push(chars.next()?),
                (true, '"') if chars.next_if_eq(&'"').is_some() => item.push('"'),
                (true, '"') => within = false,
                (false, '"') => (quoted, within) = (true, true),
                (false, end @ (',' | ')')) => break end,
                (_, c) => item.push(c),
            }
        };
        let (name, type_oid) = attributes.next()?;
        let value = if item.is_empty() && !quoted {
            Value::Null
        } else {
            serde_json::from_str(&text_json(composites, *type_oid, &item)).ok()?
        };
        object.insert(name.clone(), value);
        if end == ')' {
            break;
        }
    }
    // Fewer attributes than the type has now: a value written before
    // attributes were added (the walsender writes it with the catalog of
    // its transaction, this read the catalog as it is now), which
    // `to_jsonb` then wrote without them.
    if chars.next().is_some() {
        return None;
    }
    Some(Value::Object(object).to_string())
}

/// The type `hstore` columns are read as: set by
/// [`read_types_as_to_jsonb_does`] for a base type named `hstore` (the
/// extension's OID is the database's own). The last OID there is, which a
/// type of its own would get only as the very last the cluster hands out.
const HSTORE: u32 = u32::MAX;

/// The type an array of `hstore` is read as (the OID before [`HSTORE`]'s):
/// an array of the objects [`hstore_json`] makes.
const HSTORE_ARRAY: u32 = u32::MAX - 1;

/// An `hstore`'s text (`"a"=>"1", "b"=>NULL`, as its output function
/// writes it) as the object `to_jsonb` makes of it through the extension's
/// cast to `jsonb` (trigger mode): string values, `NULL` as null; written
/// as every object value is compared and digested (`event::column_of`).
/// `None` for text that is not an `hstore`'s (then the string).
fn hstore_json(text: &str) -> Option<String> {
    let mut chars = text.chars().peekable();
    let skip_space = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
    };
    let mut object = serde_json::Map::new();
    loop {
        skip_space(&mut chars);
        match chars.next() {
            None => break,
            Some('"') => {}
            Some(_) => return None,
        }
        let key = quoted_rest(&mut chars)?;
        skip_space(&mut chars);
        if (chars.next()?, chars.next()?) != ('=', '>') {
            return None;
        }
        skip_space(&mut chars);
        let value = match chars.next()? {
            '"' => Value::String(quoted_rest(&mut chars)?),
            'N' | 'n' => {
                let rest: String = chars.by_ref().take(3).collect();
                if !rest.eq_ignore_ascii_case("ULL") {
                    return None;
                }
                Value::Null
            }
            _ => return None,
        };
        object.insert(key, value);
        skip_space(&mut chars);
        match chars.next() {
            None => break,
            Some(',') => {}
            Some(_) => return None,
        }
    }
    Some(Value::Object(object).to_string())
}

/// The rest of a double-quoted text whose opening quote was read, up to
/// its closing one, a backslash taking the character after it as it is
/// (how PostgreSQL quotes an array's items and an `hstore`'s keys and
/// values); `None` when it does not end.
fn quoted_rest(chars: &mut impl Iterator<Item = char>) -> Option<String> {
    let mut text = String::new();
    loop {
        match chars.next()? {
            '\\' => text.push(chars.next()?),
            '"' => return Some(text),
            c => text.push(c),
        }
    }
}

/// `2026-11-23 10:15:00.5+01` → `2026-11-23T10:15:00.5+01:00`.
/// A `timestamptz` as `to_jsonb` writes it in UTC, which is the zone the
/// capture functions run in (trigger mode): the same instant is written
/// the same way whatever zone the writer's session or the walsender's had
/// (the walsender writes in the server's default zone). Text that is not
/// ISO with an offset, a year past 9999 or BC, is written as
/// [`iso_timestamp`] writes it.
fn utc_timestamp(text: &str) -> String {
    utc(text).unwrap_or_else(|| iso_timestamp(text))
}

fn utc(text: &str) -> Option<String> {
    let (date, time) = text.split_once(' ')?;
    let zone_at = time.rfind(['+', '-'])?;
    let (clock, zone) = time.split_at(zone_at);
    let (whole, fraction) = match clock.split_once('.') {
        Some((whole, digits)) if digits.bytes().all(|b| b.is_ascii_digit()) => (whole, digits),
        Some(_) => return None,
        None => (clock, ""),
    };
    let sign: i64 = if zone.starts_with('-') { -1 } else { 1 };
    let mut parts = zone[1..].split(':');
    let mut offset = 0_i64;
    for unit in [3600, 60, 1] {
        if let Some(part) = parts.next() {
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            offset += unit * part.parse::<i64>().ok()?;
        }
    }
    if parts.next().is_some() {
        return None;
    }
    let local =
        chrono::NaiveDateTime::parse_from_str(&format!("{date} {whole}"), "%Y-%m-%d %H:%M:%S")
            .ok()?;
    let at = local.checked_sub_signed(chrono::TimeDelta::seconds(sign * offset))?;
    if !(1..=9999).contains(&chrono::Datelike::year(&at)) {
        return None;
    }
    let fraction = if fraction.is_empty() {
        String::new()
    } else {
        format!(".{fraction}")
    };
    Some(format!(
        "{}{fraction}+00:00",
        at.format("%Y-%m-%dT%H:%M:%S")
    ))
}

fn iso_timestamp(text: &str) -> String {
    let Some((date, time)) = text.split_once(' ') else {
        return text.to_owned(); // infinity, -infinity
    };
    if time.contains(' ') {
        return text.to_owned(); // BC, or a style that is not ISO
    }
    let zone_at = time.rfind(['+', '-']);
    let time = match zone_at {
        Some(at) if time.len() - at == 3 => format!("{time}:00"),
        _ => time.to_owned(),
    };
    format!("{date}T{time}")
}

/// The element type of the array types `to_jsonb` writes as JSON arrays of
/// other than strings, and of text arrays.
fn element_type(composites: &Composites, type_oid: u32) -> Option<u32> {
    Some(match type_oid {
        1000 => 16,
        1005 => 21,
        1007 => 23,
        1016 => 20,
        1021 => 700,
        1022 => 701,
        1231 => 1700,
        199 => 114,
        3807 => 3802,
        1115 => 1114,
        1185 => 1184,
        1009 | 1015 | 1014 | 2951 | 1182 | 1183 | 1028 => 25,
        HSTORE_ARRAY => HSTORE,
        _ => return composites.arrays.get(&type_oid).copied(),
    })
}

/// A one- or many-dimensional array in PostgreSQL's text form
/// (`{1,2,NULL}`, `{"a b","c\"d"}`, `{{1,2},{3,4}}`) as a JSON array;
/// `None` for what this does not read (bounds like `[0:1]={…}`).
fn array_json(composites: &Composites, element: u32, text: &str) -> Option<String> {
    let mut chars = text.chars().peekable();
    let value = array_items(composites, element, &mut chars)?;
    if chars.next().is_some() {
        return None;
    }
    Some(value)
}

fn array_items(
    composites: &Composites,
    element: u32,
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
) -> Option<String> {
    if chars.next()? != '{' {
        return None;
    }
    let mut items = Vec::new();
    if chars.peek() == Some(&'}') {
        chars.next();
        return Some("[]".into());
    }
    loop {
        match chars.peek()? {
            '{' => items.push(array_items(composites, element, chars)?),
            '"' => {
                chars.next();
                let item = quoted_rest(chars)?;
                items.push(text_json(composites, element, &item));
            }
            _ => {
                let mut item = String::new();
                while let Some(&c) = chars.peek() {
                    if c == ',' || c == '}' {
                        break;
                    }
                    item.push(c);
                    chars.next();
                }
                let item = item.trim();
                items.push(if item == "NULL" {
                    "null".into()
                } else {
                    text_json(composites, element, item)
                });
            }
        }
        match chars.next()? {
            ',' => {}
            '}' => return Some(format!("[{}]", items.join(","))),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LINGER;
    use serde_json::json;

    #[test]
    fn values_are_written_as_to_jsonb_writes_them() {
        let t =
            |oid, text: &str| column_json(&Composites::default(), oid, &ColumnValue::text(text));
        assert_eq!(t(16, "t"), "true");
        assert_eq!(t(23, "-7"), "-7");
        assert_eq!(t(1700, "1.50"), "1.50");
        assert_eq!(t(1700, "NaN"), "\"NaN\"");
        assert_eq!(t(701, "Infinity"), "\"Infinity\"");
        assert_eq!(t(3802, "{\"a\": [1, 2]}"), "{\"a\":[1,2]}");
        assert_eq!(
            t(1184, "2026-11-23 10:15:00.5+01"),
            "\"2026-11-23T09:15:00.5+00:00\""
        );
        assert_eq!(
            t(1184, "2026-11-23 10:15:00+05:30"),
            "\"2026-11-23T04:45:00+00:00\""
        );
        assert_eq!(
            t(1184, "2026-01-01 01:00:00.000123-05"),
            "\"2026-01-01T06:00:00.000123+00:00\""
        );
        assert_eq!(
            t(1184, "2024-02-29 23:59:59+00:00:30"),
            "\"2024-02-29T23:59:29+00:00\""
        );
        assert_eq!(t(1184, "infinity"), "\"infinity\"");
        assert_eq!(
            t(1184, "0044-03-15 12:00:00+00 BC"),
            "\"0044-03-15 12:00:00+00 BC\""
        );
        assert_eq!(t(1114, "2026-11-23 10:15:00"), "\"2026-11-23T10:15:00\"");
        assert_eq!(t(1114, "infinity"), "\"infinity\"");
        assert_eq!(t(1082, "2026-11-23"), "\"2026-11-23\"");
        assert_eq!(t(1007, "{1,2,NULL}"), "[1,2,null]");
        assert_eq!(
            t(1009, "{\"a b\",\"c\\\"d\",e}"),
            "[\"a b\",\"c\\\"d\",\"e\"]"
        );
        assert_eq!(t(1007, "{{1,2},{3,4}}"), "[[1,2],[3,4]]");
        assert_eq!(t(1009, "{}"), "[]");
        assert_eq!(t(1007, "[0:1]={1,2}"), "\"[0:1]={1,2}\"");
        assert_eq!(t(2950, "x"), "\"x\"");
        assert_eq!(
            column_json(&Composites::default(), 25, &ColumnValue::Null),
            "null"
        );
    }

    /// The types `column_value` takes directly, those it sends through the
    /// text, and some it does not know.
    const TYPES: [u32; 24] = [
        16, 20, 21, 23, 26, 700, 701, 1700, 114, 3802, 1114, 1184, 25, 1043, 1042, 1082, 2950,
        1007, 1009, 1000, 1231, 1185, 3807, 17,
    ];

    fn the_two_ways(type_oid: u32, value: &ColumnValue) {
        assert_eq!(
            column_value(&Composites::default(), type_oid, value),
            crate::event::column_of(&column_json(&Composites::default(), type_oid, value)),
            "type {type_oid}, {value:?}"
        );
    }

    /// WAL mode's shorter way to a column's value gives what its JSON
    /// text gives under the rule of both modes: each of the types above
    /// with each of these texts (the edges of numbers, escapes, the length
    /// limit), and random texts below.
    #[test]
    fn a_value_taken_directly_is_the_value_of_its_json_text() {
        let max = crate::event::MAX_VALUE_BYTES;
        let texts = [
            "t",
            "f",
            "",
            "0",
            "-0",
            "7",
            "-7",
            "1.50",
            "19.99",
            "1e5",
            "1E5",
            ".5",
            "5.",
            "00012",
            " 5",
            "5 ",
            "+5",
            "NaN",
            "Infinity",
            "-Infinity",
            "9007199254740991",
            "9007199254740993",
            "-9223372036854775808",
            "9223372036854775807",
            "123456789012345678901234.5",
            "0.1000000000000000055511151231257827",
            "1.7976931348623157e308",
            "abc",
            "quote\"s",
            "back\\slash",
            "tab\tnew\nline",
            "unicode é 😀",
            "\u{0}nul",
            "2026-11-23 10:15:00.5+01",
            "2026-11-23 10:15:00+05:30",
            "2026-11-23 10:15:00",
            "infinity",
            "-infinity",
            "2026-11-23 10:15:00 BC",
            "2026-11-23",
            "{\"a\": [1, 2]}",
            "[1, \"x\"]",
            "null",
            "true",
            "\"s\"",
            "{1,2,NULL}",
            "{\"a b\",\"c\\\"d\",e}",
            "{{1,2},{3,4}}",
            "{}",
            "[0:1]={1,2}",
            "{t,f}",
            "{1.50,NaN}",
        ];
        let long = [
            "z".repeat(max),
            "z".repeat(max + 1),
            "\"".repeat(max),
            "\"".repeat(max / 2 + 1),
            "7".repeat(max),
            "7".repeat(max + 1),
            format!("{{{}}}", "1,".repeat(max / 2) + "1"),
        ];
        for type_oid in TYPES {
            the_two_ways(type_oid, &ColumnValue::Null);
            for text in texts.iter().copied().chain(long.iter().map(String::as_str)) {
                the_two_ways(type_oid, &ColumnValue::text(text));
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_of_any_type_is_taken_the_same_both_ways(
            type_at in 0..TYPES.len(),
            text in "[-+0-9.eE tfNaInity{},\"\\\\a-z:é]{0,24}",
        ) {
            the_two_ways(TYPES[type_at], &ColumnValue::text(&text));
        }
    }

    #[test]
    fn context_messages_merge_as_settings_do() {
        let mut context = serde_json::json!({});
        merge_context(&mut context, br#"{"actor_id": "42", "tenant": "acme"}"#);
        merge_context(
            &mut context,
            br#"{"tenant": null, "ip": "203.0.113.7", "reason": 7}"#,
        );
        merge_context(&mut context, br#"{"actor_id": ""}"#);
        assert_eq!(
            context,
            serde_json::json!({"ip": "203.0.113.7", "reason": "7"})
        );
    }

    type Decoded = tokio::sync::mpsc::Sender<Result<Frame, ReplicationError>>;

    /// A decoder reading from a channel of decoded events, with a client of
    /// the test PostgreSQL (unused: the one table's options are known).
    struct Decoding {
        state: Decoder,
        decoded: tokio::sync::mpsc::Receiver<Result<Frame, ReplicationError>>,
        client: Client,
        tables: crate::drain::Tables,
        ids: crate::EventIds,
    }

    impl Decoding {
        async fn new() -> (Self, Decoded) {
            Self::lingering(LINGER).await
        }

        async fn lingering(linger: Duration) -> (Self, Decoded) {
            let url = std::env::var("TRAILMARK_TEST_PG")
                .unwrap_or_else(|_| "host=127.0.0.1 user=postgres".into());
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {url:?}: {e}"));
            tokio::spawn(connection);
            let (sender, decoded) = tokio::sync::mpsc::channel(64);
            let tables = crate::drain::Tables::given(HashMap::from([(
                ("public".to_owned(), "t".to_owned()),
                crate::TableConfig {
                    key: vec!["id".to_owned()],
                    ..crate::TableConfig::default()
                },
            )]));
            let state = Decoder::lingering(linger);
            let ids = crate::EventIds::ordered("7312/shop", "test");
            let decoding = Self {
                state,
                decoded,
                client,
                tables,
                ids,
            };
            (decoding, sender)
        }

        async fn next_batch(
            &mut self,
            batch_size: usize,
            flushing: &mut InFlight<'_, ()>,
        ) -> Result<Ready<Vec<Event>>, Error> {
            self.state
                .next_batch(
                    &mut self.decoded,
                    &self.client,
                    &mut self.tables,
                    &self.ids,
                    batch_size,
                    flushing,
                )
                .await
        }
    }

    /// Nothing in flight, to a sink that sends one batch at a time.
    fn none_in_flight() -> InFlight<'static, ()> {
        InFlight::new::<crate::drain::tests::OneAtATime>()
    }

    /// An append in flight until the sender says it is durable.
    fn appending() -> (tokio::sync::oneshot::Sender<()>, InFlight<'static, ()>) {
        let (durable, appended) = tokio::sync::oneshot::channel::<()>();
        let mut flushing = none_in_flight();
        flushing.push(
            Box::pin(async move {
                appended.await.unwrap();
                Ok(())
            }),
            None,
            (),
        );
        (durable, flushing)
    }

    /// One transaction inserting one row, committed at `end`.
    async fn transaction(to: &Decoded, xid: u32, end: u64) {
        let at = 1_790_000_000 * 1_000_000;
        let messages = [
            Message::Relation {
                relation_id: 1,
                namespace: "public".into(),
                relation_name: "t".into(),
                replica_identity: b'd',
                columns: vec![pg_walstream::ColumnInfo::new(1, "id".into(), 23, -1)],
            },
            Message::Begin {
                final_lsn: end - 8,
                timestamp: at,
                xid,
            },
            Message::Insert {
                relation_id: 1,
                tuple: pg_walstream::TupleData::new(vec![pg_walstream::ColumnData::text(
                    xid.to_string().into_bytes(),
                )]),
            },
            Message::Commit {
                flags: 0,
                commit_lsn: end - 8,
                end_lsn: end,
                timestamp: at,
            },
        ];
        for message in messages {
            let frame = Frame {
                at: end - 8,
                xid: None,
                message,
            };
            to.send(Ok(frame)).await.unwrap();
        }
    }

    /// Polls once: whether the future is done.
    async fn poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut *f).poll(cx) {
                std::task::Poll::Ready(out) => Some(out),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }

    /// A heartbeat that cannot be written ends heartbeats for the session,
    /// not the drain: the wait ends with an empty batch and the reason for
    /// the caller to report, and what comes next is decoded as before.
    #[tokio::test(start_paused = true)]
    async fn a_heartbeat_that_fails_is_reported_and_the_drain_goes_on() {
        let (mut decoding, sender) = Decoding::new().await;
        decoding.state.heartbeat = Some("trailmark_nowhere".to_owned());
        // The decoder's connection gone: its next query fails.
        let _ = decoding
            .client
            .batch_execute("SELECT pg_terminate_backend(pg_backend_pid())")
            .await;
        let mut flushing = none_in_flight();
        let quiet = decoding.next_batch(1000, &mut flushing).await.unwrap();
        assert_eq!((quiet.rows, quiet.acknowledge), (0, None));
        let reason = decoding.state.no_heartbeat.take().expect("a reason kept");
        assert!(reason.contains("heartbeat"), "{reason}");
        assert!(decoding.state.heartbeat.is_none(), "heartbeats stopped");
        transaction(&sender, 1, 0x100).await;
        let ready = decoding.next_batch(1000, &mut flushing).await.unwrap();
        assert_eq!((ready.rows, ready.acknowledge), (1, Some(0x100)));
    }

    /// The reader waits for the connection at most once a pace: woken
    /// sooner, it reads after the pace, and then everything that came
    /// meanwhile without waiting; what comes after a quiet pace is read at
    /// once; a pace of 0 never holds a read. (Paused time: the clock moves
    /// only when every task waits on a timer.)
    #[tokio::test(start_paused = true)]
    async fn the_reader_waits_for_the_connection_at_most_once_a_pace() {
        let pace = Duration::from_millis(5);
        let (sender, mut received) = tokio::sync::mpsc::unbounded_channel::<u32>();
        let mut idle = None;
        let start = Instant::now();
        {
            let mut read = Box::pin(paced(received.recv(), pace, &mut idle));
            assert!(poll_once(&mut read).await.is_none(), "nothing to read yet");
            sender.send(1).unwrap();
            assert!(
                poll_once(&mut read).await.is_none(),
                "woken within the pace: not read yet"
            );
            sender.send(2).unwrap();
            sender.send(3).unwrap();
            assert_eq!(read.await, Some(1));
        }
        assert_eq!(start.elapsed(), pace, "read once the pace had passed");
        let now = Instant::now();
        assert_eq!(paced(received.recv(), pace, &mut idle).await, Some(2));
        assert_eq!(paced(received.recv(), pace, &mut idle).await, Some(3));
        assert_eq!(
            now.elapsed(),
            Duration::ZERO,
            "what came meanwhile: at once"
        );
        {
            let mut read = Box::pin(paced(received.recv(), pace, &mut idle));
            assert!(poll_once(&mut read).await.is_none());
            tokio::time::advance(pace * 4).await;
            sender.send(4).unwrap();
            let now = Instant::now();
            assert_eq!(read.await, Some(4));
            assert_eq!(now.elapsed(), Duration::ZERO, "after a quiet pace: at once");
        }
        let mut idle = None;
        {
            let mut read = Box::pin(paced(received.recv(), Duration::ZERO, &mut idle));
            assert!(poll_once(&mut read).await.is_none());
            sender.send(5).unwrap();
            assert_eq!(
                poll_once(&mut read).await,
                Some(Some(5)),
                "no pace: at once"
            );
        }
    }

    // Time stands still unless the test moves it (or every task waits on a
    // timer): the linger is read off the clock, not slept through.
    #[tokio::test(start_paused = true)]
    async fn a_batch_takes_what_commits_while_the_one_before_is_appended_and_lingers_under_a_stream()
     {
        let (mut decoding, sender) = Decoding::new().await;
        transaction(&sender, 1, 0x100).await;
        let (durable, mut flushing) = appending();
        {
            let mut next = Box::pin(decoding.next_batch(1000, &mut flushing));
            // The first transaction is decoded, but the batch before is
            // not durable yet: the batch stays open for more.
            assert!(poll_once(&mut next).await.is_none());
            transaction(&sender, 2, 0x200).await;
            transaction(&sender, 3, 0x300).await;
            assert!(poll_once(&mut next).await.is_none());
            durable.send(()).unwrap();
            let ready = next.await.unwrap();
            assert_eq!(ready.rows, 3, "one batch of the three transactions");
            assert_eq!(ready.acknowledge, Some(0x300));
            assert!(!ready.ended);
        }
        assert!(flushing.is_empty(), "the append was driven to its end");

        // Nothing in flight, but a batch was just handed on: a complete
        // batch that is not full lingers until LINGER after it, taking what
        // arrives meanwhile.
        transaction(&sender, 40, 0x400).await;
        {
            let mut next = Box::pin(decoding.next_batch(1000, &mut flushing));
            assert!(poll_once(&mut next).await.is_none());
            tokio::time::advance(LINGER / 2).await;
            transaction(&sender, 41, 0x480).await;
            assert!(poll_once(&mut next).await.is_none());
            tokio::time::advance(LINGER / 2).await;
            let ready = poll_once(&mut next).await.expect("gone once it lingered");
            let ready = ready.unwrap();
            assert_eq!((ready.rows, ready.acknowledge), (2, Some(0x480)));
        }

        // After a quiet moment, the first commit goes at once.
        tokio::time::advance(LINGER).await;
        transaction(&sender, 42, 0x4c0).await;
        let mut next = Box::pin(decoding.next_batch(1000, &mut flushing));
        let ready = poll_once(&mut next).await.expect("not lingering").unwrap();
        assert_eq!((ready.rows, ready.acknowledge), (1, Some(0x4c0)));
        drop(next);

        // A full batch does not wait for the append before it.
        let (_durable, mut flushing) = appending();
        transaction(&sender, 5, 0x500).await;
        transaction(&sender, 6, 0x600).await;
        let ready = decoding.next_batch(2, &mut flushing).await.unwrap();
        // Full at the second insert: the first transaction is complete, the
        // second goes on in the next batch.
        assert_eq!((ready.rows, ready.acknowledge), (2, Some(0x500)));
        assert_eq!(
            flushing.len(),
            1,
            "still appending: the caller waits for it"
        );

        // An append that fails ends decoding with its error.
        let mut flushing = none_in_flight();
        flushing.push(
            Box::pin(async { Err(Error::Sink("the disk is full".into())) }),
            None,
            (),
        );
        transaction(&sender, 7, 0x700).await;
        let failed = decoding.next_batch(1000, &mut flushing).await;
        assert!(matches!(failed, Err(Error::Sink(m)) if m == "the disk is full"));
    }

    /// The operator's linger, not the default: a batch that is not full
    /// waits that long under a stream, and at 0 goes at its commit.
    #[tokio::test(start_paused = true)]
    async fn a_batch_lingers_as_long_as_the_operator_set() {
        let set = Duration::from_millis(300);
        let (mut decoding, sender) = Decoding::lingering(set).await;
        let mut flushing = none_in_flight();
        transaction(&sender, 1, 0x100).await;
        let ready = decoding.next_batch(1000, &mut flushing).await.unwrap();
        assert_eq!(ready.rows, 1, "the first after a quiet moment goes at once");
        transaction(&sender, 2, 0x200).await;
        let mut next = Box::pin(decoding.next_batch(1000, &mut flushing));
        assert!(poll_once(&mut next).await.is_none());
        tokio::time::advance(LINGER).await;
        assert!(
            poll_once(&mut next).await.is_none(),
            "still lingering past the default"
        );
        tokio::time::advance(Duration::from_millis(200)).await;
        let ready = poll_once(&mut next).await.expect("gone at the linger set");
        assert_eq!(ready.unwrap().acknowledge, Some(0x200));
        drop(next);

        let (mut decoding, sender) = Decoding::lingering(Duration::ZERO).await;
        transaction(&sender, 1, 0x100).await;
        decoding.next_batch(1000, &mut flushing).await.unwrap();
        transaction(&sender, 2, 0x200).await;
        let mut next = Box::pin(decoding.next_batch(1000, &mut flushing));
        let ready = poll_once(&mut next).await.expect("no linger at 0");
        assert_eq!(ready.unwrap().acknowledge, Some(0x200));
    }

    #[test]
    fn the_slot_is_told_of_a_batch_only_once_every_batch_before_it_is_checked() {
        let mut confirmed = Confirmed::default();
        assert_eq!(confirmed.checked(0, Some(0x100)), Some(0x100));
        // The third ends before the second: nothing to tell yet.
        assert_eq!(confirmed.checked(2, Some(0x300)), None);
        // The second (a batch cut inside a transaction: no end of its own)
        // lets the third's end through.
        assert_eq!(confirmed.checked(1, None), Some(0x300));
        assert_eq!(confirmed.checked(3, None), None);
        assert_eq!(confirmed.checked(4, Some(0x500)), Some(0x500));
        assert!(confirmed.early.is_empty());
        assert_eq!(
            confirmed.told,
            Some(0x500),
            "what the slot is advanced to at the end"
        );
    }

    #[test]
    fn operator_limits_are_refused_not_cut() {
        assert_eq!(crate::linger_of(0), Ok(Duration::ZERO));
        assert_eq!(crate::linger_of(1000), Ok(Duration::from_secs(1)));
        assert!(
            crate::linger_of(1001)
                .unwrap_err()
                .contains("0 to 1000 milliseconds")
        );
        assert_eq!(crate::batch_of(5000), Ok(5000));
        for bad in [0, -1, 5001] {
            assert!(crate::batch_of(bad).unwrap_err().contains("1 to 5000 rows"));
        }
    }

    /// A slot dropped after the drainer found it is not made again in its
    /// place: the replication client would create it at the WAL's end and
    /// stream from there, what was written meanwhile missing without a
    /// word. The session is refused as a capture gap, and no slot is left
    /// for a later session to stream from.
    #[tokio::test]
    async fn a_slot_gone_when_streaming_starts_is_a_capture_gap_not_a_new_slot() {
        let url = format!(
            "{} dbname=postgres",
            std::env::var("TRAILMARK_TEST_PG_LOGICAL")
                .unwrap_or_else(|_| "host=127.0.0.1 port=5439 user=postgres".into())
        );
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {url:?}: {e}"));
        tokio::spawn(connection);
        let slot = format!("tm_gone_{}", std::process::id());
        let read = read_slot(&client, &url, &slot, &crate::DrainOptions::default(), true).await;
        let left_before_cleanup: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .unwrap()
            .get(0);
        // Were it streaming (the check gone), it is stopped before the
        // slot is dropped.
        let outcome = read.map(|reading| reading.cancel.cancel());
        drop_slot(&client, &slot).await.unwrap();
        let err = outcome.unwrap_err().to_string();
        assert!(
            err.contains(&format!("replication slot {slot} is gone"))
                && err.contains("capture gap"),
            "{err}"
        );
        assert_eq!(
            left_before_cleanup, 0,
            "the slot made by mistake is dropped"
        );
    }

    /// A composite value's text read as the object `to_jsonb` makes: each
    /// attribute by its type (a nested composite, an array, JSON, a
    /// timestamp in UTC), NULL apart from the empty string, quotes doubled
    /// and backslashes taken; text of another shape stays a string.
    #[test]
    fn a_composite_is_the_object_to_jsonb_makes() {
        let mut composites = Composites::default();
        let (price, line, lines) = (90_000, 90_001, 90_002);
        let named = |fields: &[(&str, u32)]| {
            fields
                .iter()
                .map(|(name, t)| ((*name).to_owned(), *t))
                .collect::<Vec<_>>()
        };
        composites
            .fields
            .insert(price, named(&[("amount", 1700), ("currency", 25)]));
        composites.fields.insert(
            line,
            named(&[
                ("sku", 25),
                ("n", 23),
                ("price", price),
                ("at", 1184),
                ("ok", 16),
                ("tags", 1009),
                ("extra", 3802),
                ("note", 25),
            ]),
        );
        composites.arrays.insert(lines, line);
        let value = |oid, text: &str| {
            serde_json::from_str::<Value>(&column_json(&composites, oid, &ColumnValue::text(text)))
                .unwrap()
        };
        assert_eq!(
            value(price, "(9.50,EUR)"),
            json!({"amount": 9.50, "currency": "EUR"})
        );
        assert_eq!(
            value(
                line,
                r#"("a,b ""q"" (x)",3,"(9.50,EUR)","2026-11-23 10:15:00+01",t,"{x,""y z""}","{""k"": [1]}",)"#
            ),
            json!({"sku": "a,b \"q\" (x)", "n": 3, "price": {"amount": 9.50, "currency": "EUR"},
                   "at": "2026-11-23T09:15:00+00:00", "ok": true, "tags": ["x", "y z"],
                   "extra": {"k": [1]}, "note": null})
        );
        assert_eq!(
            value(price, r#"(,"")"#),
            json!({"amount": null, "currency": ""})
        );
        assert_eq!(
            value(price, r#"(1,"back\\slash")"#),
            json!({"amount": 1, "currency": "back\\slash"})
        );
        assert_eq!(
            value(lines, r#"{"(s,1,,,f,{},,\"\")",NULL}"#),
            json!([{"sku": "s", "n": 1, "price": null, "at": null, "ok": false, "tags": [],
                    "extra": null, "note": ""}, null])
        );
        // Written before the type's last attribute was added.
        assert_eq!(value(price, "(1)"), json!({"amount": 1}));
        // Not a value of the type: its text, as before.
        for not in ["(1,2,3)", "1,2", "(1,2)x", "(1,\"2)"] {
            assert_eq!(value(price, not), json!(not), "{not}");
        }
    }

    /// An `hstore`'s text as the object the extension's cast to `jsonb`
    /// makes: string values, `NULL` as null, escapes undone; text that is
    /// not one, `None`.
    #[test]
    fn an_hstore_is_the_object_its_cast_to_jsonb_makes() {
        assert_eq!(
            hstore_json(r#""b"=>"1", "aa"=>NULL, "a\"q"=>"x\\y", "a"=>"""#).as_deref(),
            Some(r#"{"a":"","a\"q":"x\\y","aa":null,"b":"1"}"#)
        );
        assert_eq!(hstore_json("").as_deref(), Some("{}"));
        assert_eq!(
            hstore_json(r#""k"=>nULl"#).as_deref(),
            Some(r#"{"k":null}"#)
        );
        for not in [
            r#""k"=>"v"#,
            r#""k"->"v""#,
            r#""k"=>"v" "j"=>"w""#,
            "k=>v",
            r#""k"=>nul"#,
        ] {
            assert_eq!(hstore_json(not), None, "{not}");
        }
    }

    #[test]
    fn lsns_and_sources() {
        assert_eq!(crate::parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(crate::event::lsn_text(0x16_B374_D848), "16/B374D848");
        assert_eq!(
            replication_source("postgres://a:pw@h/db").unwrap(),
            "postgresql://?host=h&port=5432&password=pw&dbname=db&user=a&sslmode=prefer&replication=database"
        );
        assert_eq!(
            replication_source("postgres://a:pw@h:5439/db?sslmode=disable").unwrap(),
            "postgresql://?host=h&port=5439&password=pw&dbname=db&user=a&sslmode=disable&replication=database"
        );
        assert_eq!(
            replication_source("host=h dbname=db user=a password='it\\'s'").unwrap(),
            "postgresql://?host=h&port=5432&password=it%27s&dbname=db&user=a&sslmode=prefer&replication=database"
        );
    }

    /// The replication client connects to one host over TCP only: a
    /// Unix-domain socket is refused naming it, and a list of hosts as one
    /// (each was looked up as a host name, a transient error retried for
    /// ever), in both forms of connection string.
    #[test]
    fn a_unix_socket_or_a_host_list_is_refused_for_the_replication_connection() {
        let socket: &[&str] = &[
            "\"/var/run/postgresql\" is a Unix-domain socket",
            "host=127.0.0.1",
        ];
        let list: &[&str] = &["one host", "the primary's address alone"];
        for (source, told) in [
            ("host=/var/run/postgresql port=5439 dbname=shop", socket),
            ("postgresql:///shop?host=/var/run/postgresql", socket),
            ("postgresql://%2Fvar%2Frun%2Fpostgresql/shop", socket),
            (
                "host=db.example.com,/var/run/postgresql dbname=shop",
                socket,
            ),
            (
                "host=primary.example.com,standby.example.com dbname=shop target_session_attrs=read-write",
                list,
            ),
            (
                "postgresql://primary.example.com,standby.example.com/shop",
                list,
            ),
        ] {
            match replication_source(source) {
                Err(Error::BadOption(m)) => {
                    assert!(told.iter().all(|t| m.contains(t)), "{source}: {m}");
                }
                other => panic!("{source}: {other:?}"),
            }
        }
    }
}
