//! The disk spool: `record` writes an event to a local SQLite file and
//! returns; a background thread sends the oldest events in batches, retries
//! with backoff and jitter, and deletes what the server stored. Ids are made
//! at the source, so a batch sent twice is stored once.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use serde_json::Value;
use trailmark_core::{EventId, Timestamp};

use crate::{Client, Error};

/// The spool's bounds and pace.
#[derive(Clone, Copy, Debug)]
pub struct SpoolOptions {
    /// Events kept at most; past it `record` drops (and counts) new ones.
    pub max_events: u64,
    /// Bytes of events kept at most.
    pub max_bytes: u64,
    /// Events per request: 1 to [`trailmark_wire::MAX_EVENTS_PER_REQUEST`],
    /// the most the server takes.
    pub batch: usize,
    /// Bytes per request.
    pub batch_bytes: usize,
    /// How often the sender looks when nothing wakes it.
    pub interval: Duration,
    /// The longest wait between two failed attempts.
    pub max_backoff: Duration,
    /// Events the server refused kept at most (the newest); older ones
    /// are dropped, counted and logged.
    pub max_rejected: u64,
}

impl Default for SpoolOptions {
    fn default() -> Self {
        Self {
            max_events: 1_000_000,
            max_bytes: 512 * 1024 * 1024,
            batch: 500,
            batch_bytes: 4 * 1024 * 1024,
            interval: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            max_rejected: 10_000,
        }
    }
}

/// Counters of a spool's life.
#[derive(Debug, Default)]
pub struct Counts {
    pub sent: AtomicU64,
    pub rejected: AtomicU64,
    /// Refused events dropped from the spool past `max_rejected`.
    pub rejected_dropped: AtomicU64,
    pub dropped: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    db: Mutex<Connection>,
    /// Set to stop the sender; the condvar wakes it.
    stop: Mutex<bool>,
    wake: Condvar,
    counts: Counts,
    options: SpoolOptions,
}

/// Events on their way to a server, kept on disk (see the module docs).
#[derive(Debug)]
pub struct Spooler {
    shared: Arc<Shared>,
    sender: Option<JoinHandle<()>>,
}

#[allow(clippy::needless_pass_by_value)] // the shape `map_err` passes
fn spool_error(e: rusqlite::Error) -> Error {
    Error::Spool(format!("the spool: {e}"))
}

impl Spooler {
    /// Opens (or creates) the spool at `path` and starts sending to `client`.
    pub fn open(client: Client, path: &Path, options: SpoolOptions) -> Result<Self, Error> {
        let most = trailmark_wire::MAX_EVENTS_PER_REQUEST;
        if !(1..=most).contains(&options.batch) {
            return Err(Error::Invalid(format!(
                "batch: must be 1 to {most} (the server's most events a request)"
            )));
        }
        if options.max_rejected == 0 {
            return Err(Error::Invalid(
                "max_rejected: must be at least 1 (refused events kept to read)".into(),
            ));
        }
        let db = Connection::open(path).map_err(spool_error)?;
        // WAL, NORMAL: a commit survives the process dying and costs no
        // fsync on the caller's path (not a power loss before a checkpoint).
        db.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 30000;
             CREATE TABLE IF NOT EXISTS pending (seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 id TEXT NOT NULL UNIQUE, body TEXT NOT NULL, bytes INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS rejected (id TEXT PRIMARY KEY, body TEXT NOT NULL,
                 error TEXT NOT NULL);",
        )
        .map_err(spool_error)?;
        let shared = Arc::new(Shared {
            db: Mutex::new(db),
            stop: Mutex::new(false),
            wake: Condvar::new(),
            counts: Counts::default(),
            options,
        });
        let for_sender = Arc::clone(&shared);
        let sender = std::thread::Builder::new()
            .name("trailmark-spool".into())
            .spawn(move || send_loop(&for_sender, &client))
            .map_err(|e| Error::Spool(e.to_string()))?;
        Ok(Self {
            shared,
            sender: Some(sender),
        })
    }

    /// Writes one event to the spool and answers its id (given, or made
    /// now: a `UUIDv7`). `None`: the spool is full, the event was dropped
    /// and counted. An event the ledger would never store (the event rules
    /// of `trailmark_core`: a missing actor, an id of white space alone, an
    /// unknown field) is an error naming each problem, and nothing is
    /// written; refusals only the server can make (a reused id, a tenant
    /// the key may not write, a time too far ahead) come later, as
    /// [`Spooler::rejected`].
    pub fn record(&self, mut event: Value) -> Result<Option<String>, Error> {
        let Some(object) = event.as_object_mut() else {
            return Err(Error::Invalid("an event is a JSON object".into()));
        };
        if object
            .get("action")
            .and_then(Value::as_str)
            .is_none_or(|a| a.trim().is_empty())
        {
            return Err(Error::Invalid("action: give a non-empty action".into()));
        }
        let id = if let Some(id) = object.get("id").and_then(Value::as_str) {
            id.to_owned()
        } else {
            let id = new_id()?;
            object.insert("id".into(), Value::from(id.as_str()));
            id
        };
        if let Err(problems) = trailmark_core::Event::from_json(&event) {
            let said: Vec<String> = problems.iter().map(ToString::to_string).collect();
            return Err(Error::Invalid(said.join("; ")));
        }
        let body = event.to_string();
        let bytes = body.len() as u64;
        let db = self.lock();
        let (count, total): (i64, i64) = db
            .query_row(
                "SELECT count(*), coalesce(sum(bytes), 0) FROM pending",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(spool_error)?;
        let (count, total) = (count.unsigned_abs(), total.unsigned_abs());
        if count + 1 > self.shared.options.max_events
            || total + bytes > self.shared.options.max_bytes
        {
            self.shared.counts.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                id,
                "the spool is full ({count} events, {total} bytes): event dropped"
            );
            return Ok(None);
        }
        db.execute(
            "INSERT OR IGNORE INTO pending (id, body, bytes) VALUES (?1, ?2, ?3)",
            params![id, body, i64::try_from(bytes).unwrap_or(i64::MAX)],
        )
        .map_err(spool_error)?;
        drop(db);
        if count + 1 >= self.shared.options.batch as u64 {
            self.shared.wake.notify_one();
        }
        Ok(Some(id))
    }

    /// Events waiting.
    pub fn pending(&self) -> u64 {
        self.lock()
            .query_row("SELECT count(*) FROM pending", [], |r| r.get::<_, i64>(0))
            .map_or(0, i64::unsigned_abs)
    }

    /// Events the server refused: (id, the server's answer).
    pub fn rejected(&self) -> Vec<(String, String)> {
        let db = self.lock();
        let Ok(mut stmt) = db.prepare("SELECT id, error FROM rejected ORDER BY id") else {
            return Vec::new();
        };
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map(|rows| rows.filter_map(Result::ok).collect())
            .unwrap_or_default()
    }

    pub fn counts(&self) -> &Counts {
        &self.shared.counts
    }

    /// Waits until nothing is pending; false when `timeout` passed first.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.pending() > 0 {
            self.shared.wake.notify_one();
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.shared
            .db
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Spooler {
    /// Stops the sender; what is pending stays in the file for next time.
    fn drop(&mut self) {
        if let Ok(mut stop) = self.shared.stop.lock() {
            *stop = true;
        }
        self.shared.wake.notify_all();
        if let Some(sender) = self.sender.take() {
            let _ = sender.join();
        }
    }
}

fn new_id() -> Result<String, Error> {
    let mut random = [0u8; 10];
    getrandom::fill(&mut random).map_err(|e| Error::Spool(format!("no randomness: {e}")))?;
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let at = Timestamp::from_unix_millis(millis).unwrap_or(Timestamp::EPOCH);
    Ok(EventId::new_v7(at, random).to_string())
}

/// The sender: one batch at a time, oldest first, until stopped.
fn send_loop(shared: &Shared, client: &Client) {
    let mut backoff = Duration::ZERO;
    let mut batch = shared.options.batch;
    loop {
        {
            let stop = shared
                .stop
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if *stop {
                return;
            }
            let wait = if backoff.is_zero() {
                shared.options.interval
            } else {
                backoff
            };
            let (stop, _) = shared
                .wake
                .wait_timeout(stop, wait)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if *stop {
                return;
            }
        }
        loop {
            match send_one(shared, client, batch) {
                Ok(0) => {
                    backoff = Duration::ZERO;
                    break;
                }
                Ok(_) => {
                    backoff = Duration::ZERO;
                    batch = (batch * 2).min(shared.options.batch);
                }
                Err(Failure::Smaller(sent)) => batch = (sent / 2).max(1),
                Err(Failure::Later(floor)) => {
                    backoff = next(backoff, floor, shared.options.max_backoff);
                    break;
                }
            }
            if *shared
                .stop
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
            {
                return;
            }
        }
    }
}

enum Failure {
    /// Send smaller batches (413, or a 409 or a 400 naming no event, to
    /// narrow down to its event): half of the batch sent, of this many
    /// events; each batch settled doubles it again.
    Smaller(usize),
    /// Try again after at least this long.
    Later(Duration),
}

fn next(backoff: Duration, floor: Duration, max: Duration) -> Duration {
    let doubled = (backoff * 2)
        .max(Duration::from_millis(500))
        .min(max)
        .max(floor);
    let mut random = [0u8; 2];
    let _ = getrandom::fill(&mut random);
    let jitter = 0.8 + 0.4 * f64::from(u16::from_be_bytes(random)) / f64::from(u16::MAX);
    doubled.mul_f64(jitter)
}

/// Sends the oldest batch; answers how many events it settled (stored or
/// set aside as refused).
fn send_one(shared: &Shared, client: &Client, batch: usize) -> Result<usize, Failure> {
    let rows: Vec<(i64, String, String, i64)> = {
        let db = shared
            .db
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Ok(mut stmt) =
            db.prepare_cached("SELECT seq, id, body, bytes FROM pending ORDER BY seq LIMIT ?1")
        else {
            return Err(Failure::Later(Duration::from_secs(1)));
        };
        let found = stmt.query_map([i64::try_from(batch).unwrap_or(500)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        });
        let Ok(found) = found else {
            return Err(Failure::Later(Duration::from_secs(1)));
        };
        found.filter_map(Result::ok).collect()
    };
    let mut taken = Vec::new();
    let mut size = 0usize;
    for row in rows {
        let bytes = usize::try_from(row.3).unwrap_or(usize::MAX);
        if !taken.is_empty() && size + bytes > shared.options.batch_bytes {
            break;
        }
        size += bytes;
        taken.push(row);
    }
    if taken.is_empty() {
        return Ok(0);
    }
    let body = format!(
        "[{}]",
        taken
            .iter()
            .map(|(_, _, b, _)| b.as_str())
            .collect::<Vec<_>>()
            .join(",")
    );
    match client.ingest_json(body.as_bytes()) {
        Ok(_) => {
            settle(shared, &taken, None);
            shared
                .counts
                .sent
                .fetch_add(taken.len() as u64, Ordering::Relaxed);
            Ok(taken.len())
        }
        Err(Error::Rejected(problems)) => {
            let named: Vec<usize> = problems.iter().filter_map(|p| p.index).collect();
            let bad: Vec<_> = taken
                .iter()
                .enumerate()
                .filter(|(i, _)| named.contains(i))
                .map(|(_, r)| r.clone())
                .collect();
            // A refusal naming no event of a batch is narrowed down to the
            // event it is about: the others are never refused with it.
            let bad = match (bad.is_empty(), taken.len()) {
                (true, 1) => taken.clone(),
                (true, n) => return Err(Failure::Smaller(n)),
                (false, _) => bad,
            };
            let why = Error::Rejected(problems).to_string();
            tracing::error!("the server refused {} event(s): {why}", bad.len());
            settle(shared, &bad, Some(&why));
            Ok(bad.len())
        }
        Err(e @ (Error::Conflict(_) | Error::TooLarge(_))) => {
            if taken.len() > 1 {
                return Err(Failure::Smaller(taken.len()));
            }
            let why = e.to_string();
            tracing::error!("the server refused an event: {why}");
            settle(shared, &taken, Some(&why));
            Ok(1)
        }
        Err(Error::Busy { retry_after, .. }) => {
            Err(Failure::Later(retry_after.unwrap_or_default()))
        }
        Err(e @ (Error::Unauthorized(_) | Error::Forbidden(_))) => {
            tracing::error!("the server refused the key: {e}; events wait in the spool");
            Err(Failure::Later(shared.options.max_backoff))
        }
        Err(e) => {
            tracing::warn!("sending the spool failed: {e}; events wait in the spool");
            Err(Failure::Later(Duration::ZERO))
        }
    }
}

/// Deletes settled events; those refused are kept aside with `why`.
fn settle(shared: &Shared, rows: &[(i64, String, String, i64)], why: Option<&str>) {
    let mut db = shared
        .db
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Ok(tx) = db.transaction() else {
        return;
    };
    for (seq, id, body, _) in rows {
        if let Some(why) = why {
            let _ = tx.execute(
                "INSERT OR REPLACE INTO rejected (id, body, error) VALUES (?1, ?2, ?3)",
                params![id, body, why],
            );
            shared.counts.rejected.fetch_add(1, Ordering::Relaxed);
        }
        let _ = tx.execute("DELETE FROM pending WHERE seq = ?1", [seq]);
    }
    if why.is_some() {
        // The newest refused events are kept, up to the bound (an
        // INSERT OR REPLACE makes a row newest).
        let keep = i64::try_from(shared.options.max_rejected).unwrap_or(i64::MAX);
        if let Ok(dropped) = tx.execute(
            "DELETE FROM rejected WHERE rowid IN
                 (SELECT rowid FROM rejected ORDER BY rowid DESC LIMIT -1 OFFSET ?1)",
            [keep],
        ) && dropped > 0
        {
            shared
                .counts
                .rejected_dropped
                .fetch_add(dropped as u64, Ordering::Relaxed);
            tracing::warn!(
                "{dropped} refused event(s) dropped from the spool: it keeps the newest {keep}"
            );
        }
    }
    if let Err(e) = tx.commit() {
        tracing::warn!("settling sent events in the spool failed: {e}");
    }
}
