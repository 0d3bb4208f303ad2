//! Trailmark's embedded store: one `SQLite` file in WAL mode.
//!
//! One writer thread owns the only write connection. It takes every append
//! waiting when it becomes free and commits them in one transaction — one
//! fsync (`synchronous = FULL`) acknowledges them all (group commit); each
//! batch keeps its own savepoint so a bad batch fails alone. Readers use a
//! small pool of read-only connections on blocking threads.
//!
//! The writer keeps each tenant's compact range in memory and rebuilds it
//! from the stored nodes (O(log n) reads) the first time it touches a tenant.

mod index;
mod read;
mod removal;
mod strips;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;
use trailmark_core::{EventId, TenantId, Timestamp};
use trailmark_log::{Hash, NodeId, TreeSize};
use trailmark_store::{
    Appended, CheckpointRecord, CountBy, Hold, IndexerStatus, KeyRecord, NewEvent, Page, Plan,
    Query, RawEntry, RawPage, Read, Removal, RemovalLock, RetentionPolicy, Setting,
    SigningKeyRecord, Stats, Store, StoreError, StoredEntry, Target, TenantHead, Walk, WalkPage,
};

pub use crate::index::{SPAN_BITS, STOP_CATCH_UP};
pub use crate::read::{KEPT_COUNTS_GAP, KEPT_COUNTS_MAX, TAIL_SEARCH_MAX};
pub use crate::strips::NODE_CACHE_MAX;
use crate::writer::{Job, Writer};

/// How long a connection waits for a lock another one holds (a commit, a
/// checkpoint) before its statement fails busy: the writer's, the
/// indexer's, the readers' and the read-only evidence connection's. The
/// WAL checkpointer waits less (it must never hold up a commit), and the
/// writer's WAL restart less still (`writer.rs`, `RESTART_READ_WAIT`).
pub(crate) const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_entries_by_id.sql"),
    include_str!("../migrations/0003_signing_keys.sql"),
    include_str!("../migrations/0004_cosignatures.sql"),
    include_str!("../migrations/0005_read_paths.sql"),
    include_str!("../migrations/0006_request_id.sql"),
    include_str!("../migrations/0007_retention.sql"),
    include_str!("../migrations/0008_removed.sql"),
    include_str!("../migrations/0009_settings.sql"),
    include_str!("../migrations/0010_index_file.sql"),
    include_str!("../migrations/0011_node_tail.sql"),
    include_str!("../migrations/0012_node_tail_slots.sql"),
];
const READERS: usize = 4;
/// Prepared statements each reader keeps (a page's statement is reused, not
/// parsed anew per read; the least recently used goes first):
/// docs/OPERATIONS.md states this bound.
const READER_STATEMENTS: usize = 16;
/// How long one read may run before SQLite stops it.
pub const READ_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The WAL's bound, by default: past it the WAL checkpointer resets the log
/// (RESTART) instead of only copying what it can (PASSIVE), and a reset log
/// is truncated to it (`journal_size_limit`).
pub const DEFAULT_WAL_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

/// How the embedded store runs.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// See [`DEFAULT_WAL_LIMIT_BYTES`].
    pub wal_limit_bytes: u64,
    /// How long one read may run (see [`READ_TIME_LIMIT`]).
    pub read_time_limit: std::time::Duration,
    /// Whether the indexer runs (always, in a server). Without it the index
    /// file stays where it is and every read scans the entries above it,
    /// which is what the tests of that path need; a search waits for it
    /// until the read time limit and is refused.
    pub indexer: bool,
    /// The width of the index file's spans, 2^`index_span_bits` positions
    /// each ([`SPAN_BITS`] in every server; a few bits in tests, so
    /// that a few entries cross many spans). An index file of another
    /// width is rebuilt when the store opens.
    pub index_span_bits: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            wal_limit_bytes: DEFAULT_WAL_LIMIT_BYTES,
            read_time_limit: READ_TIME_LIMIT,
            indexer: true,
            index_span_bits: index::SPAN_BITS,
        }
    }
}

/// The embedded store. Cheap to clone; the writer stops when the last clone
/// is dropped.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    jobs: Mutex<mpsc::Sender<Job>>,
    /// `readers[0]` authenticates; the others are the read pool. `None`
    /// once [`SqliteStore::shutdown`] closed them.
    readers: Vec<Mutex<Option<Connection>>>,
    read_time_limit: std::time::Duration,
    next_reader: AtomicUsize,
    /// Dropped with the store (or sent to by [`SqliteStore::shutdown`]):
    /// stops the WAL checkpointer thread, which then truncates the WAL.
    stop_wal: Mutex<mpsc::Sender<()>>,
    wal_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The writer thread: it ends (closing its connection) once `jobs` is
    /// replaced by a sender that leads nowhere and the queue is drained.
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Where the indexer stands (a read-only store has none).
    index: Arc<index::Shared>,
    indexer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Opened read-only: no writer, no indexer, nothing to wait for.
    read_only: bool,
    /// The hourly counts the latest stats read summed (see
    /// [`read::KeptCounts`]).
    kept_counts: read::KeptSlot,
    /// Tree nodes the readers read lately.
    nodes: strips::NodeCache,
}

impl Inner {
    /// Closes the readers, stops the indexer, lets the writer drain its
    /// queue and end, and the WAL checkpointer fold the WAL in; waits for
    /// each. A second call finds nothing left to do.
    fn close(&self) {
        for reader in &self.readers {
            reader
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
        }
        self.stop_indexer();
        // Dropping the only sender ends the writer once it has drained.
        if let Ok(mut jobs) = self.jobs.lock() {
            *jobs = mpsc::channel().0;
        }
        let writer = self.writer.lock().ok().and_then(|mut t| t.take());
        if let Some(writer) = writer {
            let _ = writer.join();
        }
        if let Ok(stop) = self.stop_wal.lock() {
            let _ = stop.send(());
        }
        let thread = self.wal_thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    /// The indexer catches up (within its bound), folds the index file's
    /// WAL into it and stops; waits for it.
    fn stop_indexer(&self) {
        self.index.stop();
        let thread = self.indexer.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for Inner {
    /// A store dropped without [`SqliteStore::shutdown`] closes the same
    /// way, before the drop returns: nothing of it still runs (and writes
    /// its files) once its last handle is gone.
    fn drop(&mut self) {
        self.close();
    }
}

fn db(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| StoreError::backend(context, e)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    // WAL with a full sync per commit: nothing is acknowledged before it is
    // durable. A larger cache and rarer WAL checkpoints keep the writer off
    // the disk between commits. Whatever the writer frees (an erased
    // payload, a merged search segment) is zeroed, not left in free space.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = 0;
         PRAGMA secure_delete = ON;",
    )
    .map_err(db("setting WAL mode"))?;
    let version: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map_err(db("reading the schema version"))
        .map(|v| usize::try_from(v).unwrap_or(0))?;
    if version > MIGRATIONS.len() {
        return Err(StoreError::Invalid(format!(
            "the database has schema version {version}, newer than this trailmark ({}); upgrade trailmark",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction().map_err(db("starting a migration"))?;
        tx.execute_batch(sql).map_err(db("applying a migration"))?;
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(i + 1).unwrap_or(i64::MAX),
        )
        .map_err(db("recording the schema version"))?;
        tx.commit().map_err(db("committing a migration"))?;
    }
    Ok(())
}

/// Runs a WAL checkpoint; returns (busy, frames in the log, frames
/// checkpointed). The pragma answers a row, so it is queried, not executed.
fn wal_checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<(i64, i64, i64)> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })
}

/// How long a scrub's WAL truncation keeps trying while the log is in use:
/// each try waits for readers up to the connection's busy timeout, but a
/// checkpoint under way on another connection (the WAL checkpointer's
/// PASSIVE copy every 500 ms) makes it fail at once, SQLite's busy handler
/// not being called for that lock.
const TRUNCATE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// Folds the WAL of the database `schema` (`main`, or the attached index
/// file `ix`) into it and truncates it to nothing: the last step of a scrub.
/// A try that finds the log in use is repeated every 10 ms until
/// [`TRUNCATE_DEADLINE`]; a reader holding an old snapshot past that keeps
/// it in use, and the scrub fails, to be run again. `what` names the file
/// in errors.
pub(crate) fn truncate_wal(
    conn: &Connection,
    schema: &str,
    what: &'static str,
) -> Result<(), StoreError> {
    let sql = format!("PRAGMA {schema}.wal_checkpoint(TRUNCATE)");
    let deadline = std::time::Instant::now() + TRUNCATE_DEADLINE;
    loop {
        let busy: i64 = conn.query_row(&sql, [], |r| r.get(0)).map_err(db(what))?;
        if busy == 0 {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(StoreError::backend(
                what,
                std::io::Error::other(format!(
                    "the WAL stayed in use for {} s (a long read, or a checkpoint on another \
                     connection); run the scrub again",
                    TRUNCATE_DEADLINE.as_secs()
                )),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A read-only connection that changes no byte of the database or its WAL.
/// Without a `-wal` file (a server stopped cleanly) the file is opened
/// `immutable`: nothing is created or locked beside it. With one (a server
/// running or killed) it is opened `mode=ro`, which reads the WAL through
/// the `-shm` index; SQLite may update that index, which holds no data.
fn open_evidence(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(evidence_uri(path), flags)
        .map_err(db("opening the database read-only"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(db("setting a busy timeout"))?;
    conn.set_prepared_statement_cache_capacity(READER_STATEMENTS);
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(db("reading the database read-only"))?;
    Ok(conn)
}

/// The URI that opens a database file as evidence: `immutable` without a
/// `-wal` file beside it, `mode=ro` with one.
fn evidence_uri(path: &Path) -> String {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let query = if Path::new(&wal).exists() {
        "mode=ro"
    } else {
        "immutable=1"
    };
    let mut uri = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            '%' => uri.push_str("%25"),
            c => uri.push(c),
        }
    }
    uri.push('?');
    uri.push_str(query);
    uri
}

/// The answer of a read that does not give up on the entries above the
/// index file's position (only [`read::Tail::Search`] does).
fn answered<T>(found: Option<T>) -> Result<T, StoreError> {
    found.ok_or_else(|| {
        StoreError::Invalid("a read gave up on the entries the index file does not hold".into())
    })
}

/// A read-only evidence connection with the index file attached as `ix`
/// when there is one that belongs to the ledger; otherwise an empty index
/// (every read scans the entries; a search reads at most
/// [`TAIL_SEARCH_MAX`] entries itself, and is refused past that).
fn attach_evidence_index(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let index = index::index_path(path);
    if index.is_file() {
        conn.execute("ATTACH DATABASE ?1 AS ix", [evidence_uri(&index)])
            .map_err(db("attaching the index file read-only"))?;
        let usable = index::has_tables(conn)? && index::belongs(conn, "ix")?;
        if usable {
            return Ok(());
        }
        conn.execute_batch("DETACH DATABASE ix")
            .map_err(db("detaching the index file"))?;
    }
    index::empty_temp_index(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and starts the writer.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, Options::default())
    }

    /// [`Self::open`] with options.
    pub fn open_with(path: impl AsRef<Path>, options: Options) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let spans = index::SpanWidth::new(options.index_span_bits).ok_or_else(|| {
            StoreError::BadRequest {
                field: "index_span_bits",
                message: format!(
                    "{} is wider than spans can be: give at most {}",
                    options.index_span_bits,
                    index::SpanWidth::MAX_BITS
                ),
            }
        })?;
        let mut conn = Connection::open(&path).map_err(db("opening the database"))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(db("setting a busy timeout"))?;
        migrate(&mut conn)?;
        let limit = i64::try_from(options.wal_limit_bytes).unwrap_or(i64::MAX);
        conn.pragma_update(None, "journal_size_limit", limit)
            .map_err(db("bounding the WAL"))?;
        // The index file first: a foreign one is replaced before any reader
        // attaches it.
        let shared = Arc::new(index::Shared::default());
        let indexer = index::Indexer::new(index::open_indexer(&path, spans)?, Arc::clone(&shared))?;
        let index_path = index::index_path(&path);
        // One more than the pool: connection 0 serves only authentication,
        // so reads that fill the pool never hold up a key lookup.
        let readers = (0..=READERS)
            .map(|_| {
                let reader = Connection::open_with_flags(
                    &path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(db("opening a reader"))?;
                reader
                    .busy_timeout(BUSY_TIMEOUT)
                    .map_err(db("setting a busy timeout"))?;
                reader.set_prepared_statement_cache_capacity(READER_STATEMENTS);
                reader
                    .execute("ATTACH DATABASE ?1 AS ix", [index_path.to_string_lossy()])
                    .map_err(db("attaching the index file"))?;
                index::make_tail_index(&reader)?;
                Ok(Mutex::new(Some(reader)))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let indexer = if options.indexer {
            Some(
                std::thread::Builder::new()
                    .name("trailmark-sqlite-indexer".into())
                    .spawn(move || indexer.run())
                    .map_err(|e| StoreError::backend("starting the indexer thread", e))?,
            )
        } else {
            None
        };
        let mut wal_path = path.as_os_str().to_owned();
        wal_path.push("-wal");
        let wal_path = PathBuf::from(wal_path);
        let (tx, rx) = mpsc::channel();
        let bound = Some((wal_path.clone(), options.wal_limit_bytes));
        let told = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("trailmark-sqlite-writer".into())
            .spawn(move || Writer::new(conn, bound, told).run(&rx))
            .map_err(|e| StoreError::backend("starting the writer thread", e))?;
        // WAL checkpoints run here, beside the writer, never inside a commit:
        // a PASSIVE checkpoint copies what it can without blocking anyone.
        let checkpointer = Connection::open(&path).map_err(db("opening the WAL checkpointer"))?;
        checkpointer
            .busy_timeout(std::time::Duration::from_millis(100))
            .map_err(db("setting a busy timeout"))?;
        checkpointer
            .pragma_update(None, "journal_size_limit", limit)
            .map_err(db("bounding the WAL"))?;
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let wal_thread = std::thread::Builder::new()
            .name("trailmark-sqlite-wal".into())
            .spawn(move || {
                // The writer resets an outgrown WAL itself, between groups;
                // here a PASSIVE checkpoint copies what it can every 500 ms.
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    stop_rx.recv_timeout(std::time::Duration::from_millis(500))
                {
                    let _ = wal_checkpoint(&checkpointer, "PASSIVE");
                }
                // The store is closing: fold the WAL into the database.
                let _ = wal_checkpoint(&checkpointer, "TRUNCATE");
            })
            .map_err(|e| StoreError::backend("starting the WAL checkpointer", e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                jobs: Mutex::new(tx),
                readers,
                next_reader: AtomicUsize::new(0),
                read_time_limit: options.read_time_limit,
                stop_wal: Mutex::new(stop_tx),
                wal_thread: Mutex::new(Some(wal_thread)),
                writer: Mutex::new(Some(writer)),
                index: shared,
                indexer: Mutex::new(indexer),
                read_only: false,
                kept_counts: read::KeptSlot::default(),
                nodes: strips::NodeCache::default(),
            }),
        })
    }

    /// Opens an existing database for reading only, as evidence: no
    /// migration, no writer, no WAL checkpoint; nothing is written to the
    /// file or beside it. Works on read-only files in a read-only directory.
    /// Appends and other writes answer [`StoreError::Closed`].
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if !path.is_file() {
            return Err(StoreError::Invalid(format!(
                "{} is not a database file",
                path.display()
            )));
        }
        let readers = (0..=READERS)
            .map(|_| {
                let conn = open_evidence(&path)?;
                attach_evidence_index(&conn, &path)?;
                index::make_tail_index(&conn)?;
                Ok(Mutex::new(Some(conn)))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let version: i64 = readers[0]
            .lock()
            .map_err(|_| StoreError::Closed)?
            .as_ref()
            .ok_or(StoreError::Closed)?
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db("reading the schema version"))?;
        let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
        if !(1..=known).contains(&version) {
            return Err(StoreError::Invalid(format!(
                "the database has schema version {version}; this trailmark reads versions 1 to {known}"
            )));
        }
        // No writer and no WAL checkpointer: their channels lead nowhere.
        let (jobs, _) = mpsc::channel();
        let (stop, _) = mpsc::channel();
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                jobs: Mutex::new(jobs),
                readers,
                next_reader: AtomicUsize::new(0),
                read_time_limit: READ_TIME_LIMIT,
                stop_wal: Mutex::new(stop),
                wal_thread: Mutex::new(None),
                writer: Mutex::new(None),
                index: Arc::new(index::Shared::default()),
                indexer: Mutex::new(None),
                read_only: true,
                kept_counts: read::KeptSlot::default(),
                nodes: strips::NodeCache::default(),
            }),
        })
    }

    /// Closes the store: the readers close (a read under way finishes
    /// first), the indexer catches up and stops, the writer commits what is
    /// queued and closes, and the WAL checkpointer folds the WAL into the
    /// database and closes. A read-only connection closing last leaves a
    /// WAL behind, so the writable ones close last: the indexer for the
    /// index file, the checkpointer for the ledger; `SQLite` then removes
    /// both files' `-wal` and `-shm`, and a clean stop leaves the database
    /// files alone. Call once nothing appends any more; later calls answer
    /// [`StoreError::Closed`].
    pub fn shutdown(&self) {
        self.inner.close();
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// A read that must find every entry acknowledged before it began,
    /// including those the index file does not hold yet: a free-text search
    /// indexes them itself when they are few (at most
    /// [`read::TAIL_SEARCH_MAX`]) and no erasure is still being removed from
    /// the index file; otherwise it waits for the indexer, at most the read
    /// time limit, and reads again. A read-only store has no indexer: its
    /// searches refuse more than that.
    async fn read_caught_up<T: Send + 'static>(
        &self,
        q: &Query,
        f: impl Fn(&Connection, read::TailSearch) -> Result<Option<T>, StoreError>
        + Send
        + Sync
        + 'static,
    ) -> Result<T, StoreError> {
        let f = Arc::new(f);
        // Counted before the read's snapshot: a write counted later can
        // only make a reader drop words it kept. Only a search reads it:
        // other reads do not take the lock the writer and indexer share.
        let search = |tail| read::TailSearch {
            tail,
            erasures: if q.q.is_some() {
                self.inner.index.erasures()
            } else {
                0
            },
        };
        if self.inner.read_only || q.q.is_none() {
            let search = search(if self.inner.read_only {
                read::Tail::Refuse
            } else {
                read::Tail::Waited
            });
            return self.read(move |c| f(c, search)).await.and_then(answered);
        }
        if !self.inner.index.erasures_pending() {
            let first = Arc::clone(&f);
            let search = search(read::Tail::Search);
            if let Some(found) = self.read(move |c| first(c, search)).await? {
                return Ok(found);
            }
        }
        let shared = Arc::clone(&self.inner.index);
        let deadline = std::time::Instant::now() + self.inner.read_time_limit;
        tokio::task::spawn_blocking(move || shared.wait_caught_up(deadline))
            .await
            .map_err(|e| StoreError::backend("waiting for the indexer", e))??;
        let search = search(read::Tail::Waited);
        self.read(move |c| f(c, search)).await.and_then(answered)
    }

    async fn write<T: Send + 'static>(
        &self,
        job: impl FnOnce(writer::Reply<T>) -> Job,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .jobs
            .lock()
            .map_err(|_| StoreError::Closed)?
            .send(job(tx))
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// A small write of its own on the writer thread.
    async fn run(
        &self,
        f: impl FnOnce(&Connection) -> Result<u64, StoreError> + Send + 'static,
    ) -> Result<u64, StoreError> {
        self.write(|reply| Job::Run(Box::new(f), reply)).await
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let pool = inner.readers.len() - 1;
            let i = 1 + inner.next_reader.fetch_add(1, Ordering::Relaxed) % pool;
            // A reader that panicked left its connection usable: go on.
            let guard = inner.readers[i]
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let conn = guard.as_ref().ok_or(StoreError::Closed)?;
            // Every read is bounded in time: past the limit SQLite stops the
            // statement, and the caller is told to narrow it.
            let limit = inner.read_time_limit;
            let deadline = std::time::Instant::now() + limit;
            conn.progress_handler(10_000, Some(move || std::time::Instant::now() > deadline));
            let result = f(conn);
            conn.progress_handler(0, None::<fn() -> bool>);
            result.map_err(|e| match e {
                StoreError::Backend { source, .. }
                    if source.to_string().contains("interrupted") =>
                {
                    StoreError::BadRequest {
                        field: "query",
                        message: format!(
                            "took longer than {} ms: narrow it (a time range, a tenant, an actor)",
                            limit.as_millis()
                        ),
                    }
                }
                other => other,
            })
        })
        .await
        .map_err(|e| StoreError::backend("running a read", e))?
    }
}

impl Store for SqliteStore {
    async fn append(&self, batch: Vec<NewEvent>) -> Result<Vec<Appended>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let (appended, batch) = self.write(|reply| Job::Append(batch, reply)).await?;
        drop(batch);
        Ok(appended)
    }

    async fn settle(&self) -> Result<(), StoreError> {
        // The writer takes jobs in order: an empty one answers after every
        // job queued before it.
        self.write(|reply| Job::Run(Box::new(|_| Ok(0)), reply))
            .await
            .map(|_| ())
    }

    async fn heads(&self) -> Result<Vec<TenantHead>, StoreError> {
        self.read(read::heads).await
    }

    async fn head(&self, tenant: &TenantId) -> Result<TreeSize, StoreError> {
        let tenant = tenant.clone();
        self.read(move |c| read::head(c, &tenant)).await
    }

    async fn raw_entries(
        &self,
        tenant: &TenantId,
        start: u64,
        end: u64,
    ) -> Result<Vec<RawEntry>, StoreError> {
        let tenant = tenant.clone();
        self.read(move |c| read::raw_entries(c, &tenant, start, end))
            .await
    }

    async fn raw_page(
        &self,
        tenant: &TenantId,
        start: u64,
        end: u64,
    ) -> Result<RawPage, StoreError> {
        let tenant = tenant.clone();
        self.read(move |c| read::raw_page(c, &tenant, start, end))
            .await
    }

    async fn entry_by_id(
        &self,
        tenants: &[TenantId],
        id: EventId,
    ) -> Result<Option<StoredEntry>, StoreError> {
        let tenants = tenants.to_vec();
        self.read(move |c| read::entry_by_id(c, &tenants, id)).await
    }

    async fn entries_by_ids(
        &self,
        keys: &[(TenantId, EventId)],
    ) -> Result<Vec<Option<StoredEntry>>, StoreError> {
        let keys = keys.to_vec();
        self.read(move |c| read::entries_by_ids(c, &keys)).await
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        let q = query.clone();
        self.read_caught_up(query, move |c, search| read::query(c, &q, search))
            .await
    }

    async fn stats(&self, query: &Query) -> Result<Stats, StoreError> {
        let q = query.clone();
        let inner = Arc::clone(&self.inner);
        self.read_caught_up(query, move |c, search| {
            read::stats(c, &q, search, &inner.kept_counts)
        })
        .await
    }

    async fn daily_counts(
        &self,
        query: &Query,
        by: CountBy,
    ) -> Result<Vec<(String, String, u64)>, StoreError> {
        let q = query.clone();
        self.read_caught_up(query, move |c, search| {
            read::daily_counts(c, &q, by, search)
        })
        .await
    }

    async fn explain(&self, read: &Read) -> Result<Plan, StoreError> {
        let read = read.clone();
        self.read(move |c| read::plan(c, &read)).await
    }

    async fn nodes(&self, tenant: &TenantId, ids: &[NodeId]) -> Result<Vec<Hash>, StoreError> {
        let (tenant, ids) = (tenant.clone(), ids.to_vec());
        let inner = Arc::clone(&self.inner);
        self.read(move |c| strips::read_nodes(c, &tenant, &ids, Some(&inner.nodes)))
            .await
    }

    async fn add_checkpoints(&self, records: Vec<CheckpointRecord>) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        self.write(|reply| Job::Checkpoints(records, reply)).await
    }

    async fn latest_checkpoint(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<CheckpointRecord>, StoreError> {
        let tenant = tenant.clone();
        self.read(move |c| read::checkpoints(c, &tenant, read::Checkpoints::Latest))
            .await
            .map(|mut v| v.pop())
    }

    async fn checkpoints_after(
        &self,
        tenant: &TenantId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<CheckpointRecord>, StoreError> {
        let tenant = tenant.clone();
        self.read(move |c| read::checkpoints(c, &tenant, read::Checkpoints::After(after, limit)))
            .await
    }

    async fn add_signing_key(&self, record: SigningKeyRecord) -> Result<(), StoreError> {
        self.write(|reply| Job::SigningKey(record, reply)).await
    }

    async fn add_cosignatures(
        &self,
        tenant: &TenantId,
        cosignatures: Vec<(u64, String, String)>,
    ) -> Result<(), StoreError> {
        if cosignatures.is_empty() {
            return Ok(());
        }
        let tenant = tenant.as_str().to_owned();
        self.write(|reply| Job::Cosignatures(tenant, cosignatures, reply))
            .await
    }

    async fn cosignatures(
        &self,
        tenant: &TenantId,
        sizes: std::ops::RangeInclusive<u64>,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let tenant = tenant.clone();
        self.read(move |c| read::cosignatures(c, &tenant, &sizes))
            .await
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        self.read(read::signing_keys).await
    }

    async fn create_key(&self, key: KeyRecord) -> Result<(), StoreError> {
        self.write(|reply| Job::CreateKey(key, reply)).await
    }

    async fn key_by_digest(&self, digest: [u8; 32]) -> Result<Option<KeyRecord>, StoreError> {
        // On the connection kept for authentication, not the read pool.
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let guard = inner.readers[0]
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            read::key_by_digest(guard.as_ref().ok_or(StoreError::Closed)?, digest)
        })
        .await
        .map_err(|e| StoreError::backend("looking up a key", e))?
    }

    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.read(read::keys).await
    }

    async fn revoke_key(&self, id: &str, at: Timestamp) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(|reply| Job::RevokeKey(id, at.unix_millis(), reply))
            .await
    }

    async fn walk(
        &self,
        tenant: &TenantId,
        walk: &Walk,
        after: Option<u64>,
        limit: usize,
    ) -> Result<WalkPage, StoreError> {
        let (tenant, walk) = (tenant.clone(), walk.clone());
        self.read(move |c| removal::walk(c, &tenant, &walk, after, limit))
            .await
    }

    /// One process opens the store (the data dir's lock): its server's
    /// own lock is all there is to hold.
    async fn removal_lock(&self) -> Result<RemovalLock, StoreError> {
        Ok(RemovalLock::local())
    }

    async fn erase(
        &self,
        tenant: &TenantId,
        seqs: Vec<u64>,
        why: Removal,
    ) -> Result<u64, StoreError> {
        let tenant = tenant.clone();
        self.run(move |c| removal::erase(c, &tenant, &seqs, why))
            .await
    }

    /// The index file by the indexer once it has applied every erasure
    /// committed before, then the ledger file by the writer.
    async fn scrub(&self) -> Result<(), StoreError> {
        // The indexer first: applying the erasures deletes their redo rows
        // from the ledger file, whose WAL the writer's scrub then truncates.
        let shared = Arc::clone(&self.inner.index);
        tokio::task::spawn_blocking(move || shared.scrub())
            .await
            .map_err(|e| StoreError::backend("scrubbing the index file", e))??;
        self.write(Job::Scrub).await
    }

    fn indexer(&self) -> Option<IndexerStatus> {
        (!self.inner.read_only).then(|| self.inner.index.status())
    }

    async fn retention(&self) -> Result<Vec<RetentionPolicy>, StoreError> {
        self.read(removal::retention).await
    }

    async fn setting(&self, name: &str) -> Result<Option<Setting>, StoreError> {
        let name = name.to_owned();
        self.read(move |c| removal::setting(c, &name)).await
    }

    async fn settings(&self) -> Result<Vec<(String, Setting)>, StoreError> {
        self.read(removal::settings).await
    }

    async fn put_setting(
        &self,
        name: &str,
        value: String,
        expected: u64,
        at: Timestamp,
    ) -> Result<u64, StoreError> {
        let name = name.to_owned();
        self.run(move |c| removal::put_setting(c, &name, &value, expected, at))
            .await
    }

    async fn set_retention(&self, policy: RetentionPolicy) -> Result<(), StoreError> {
        self.run(move |c| removal::set_retention(c, &policy))
            .await
            .map(drop)
    }

    async fn remove_retention(
        &self,
        tenant: &TenantId,
        target: &Target,
    ) -> Result<bool, StoreError> {
        let (tenant, target) = (tenant.clone(), target.clone());
        self.run(move |c| removal::remove_retention(c, &tenant, &target))
            .await
            .map(|n| n > 0)
    }

    async fn holds(&self) -> Result<Vec<Hold>, StoreError> {
        self.read(removal::holds).await
    }

    async fn add_hold(&self, hold: Hold) -> Result<(), StoreError> {
        self.run(move |c| removal::add_hold(c, &hold))
            .await
            .map(drop)
    }

    async fn release_hold(&self, id: &str, at: Timestamp) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.run(move |c| removal::release_hold(c, &id, at))
            .await
            .map(|n| n > 0)
    }
}
