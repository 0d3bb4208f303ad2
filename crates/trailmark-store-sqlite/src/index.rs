//! The query indexes and the search index, in a second `SQLite` file
//! (`<database>-index`) that the indexer thread keeps, off the path that
//! must finish before an event is acknowledged.
//!
//! One `SQLite` database has one write lock: indexes in the ledger's own file
//! would be written under the lock every append waits for. Here the writer
//! commits entries with only what appends and proofs need, and the indexer
//! follows: it reads the entries after its position (`ix_state.pos`), sorts
//! each index's keys and writes them, with its new position, in one
//! transaction of its own. A crash loses nothing: the position moves only with
//! the rows it covers, and the entries it has not covered are in the ledger
//! file. Reads take positions up to it from the index file and scan the
//! entries above it (bounded by the lag), so an acknowledged event is never
//! missed.
//!
//! The index file holds nothing that is not derived from the ledger file: a
//! missing, foreign (its position's leaf is not the ledger's) or older-format
//! index file is removed and rebuilt.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, ToSql, params};
use trailmark_store::{Exact, IndexerStatus, StoreError, searchable_words_of_text};

/// The index file's format; another one is rebuilt.
const INDEX_VERSION: i64 = 3;

/// An hour in milliseconds: the counts' bucket.
pub(crate) const HOUR_MS: i64 = 3_600_000;

/// At most this many entries are indexed by one transaction. The keys of
/// the scattered indexes (actor, record, IP) land on pages all over their
/// B-trees, and each page a transaction touches is written whole (to the
/// WAL, then at the checkpoint): the more keys a transaction carries, the
/// fewer page writes each key costs once the trees outgrow one batch. A
/// batch takes what is waiting, so this bound only matters under load
/// (bench/results/indexer.md: 40,000 against 10,000 wrote 43 % fewer bytes
/// per event by 1.6 million events, and kept ingest 1.38x faster there).
pub(crate) const BATCH: usize = 40_000;

/// The indexer's lag bound: while more entries than this wait for it, the
/// writer holds the next group back (at most [`THROTTLE_WAIT`] per group),
/// so the entries every read scans above the index file's position stay
/// few.
pub const MAX_LAG: u64 = 100_000;

/// The longest the writer holds one group back for the indexer: a stuck
/// indexer slows appends, never stops them (reads stay complete, slower).
pub const THROTTLE_WAIT: Duration = Duration::from_secs(2);

/// A batch smaller than this waits up to [`GATHER_WAIT`] for more entries
/// before it is indexed, unless a read waits for the index, an erasure or
/// a scrub is pending, or the store stops. Each transaction of the index
/// file has a fixed cost (the search index's flush and merges, the WAL
/// frames of every page it touches): under a stream of small appends
/// (single events, each group commit waking the indexer) that cost was
/// paid for a few dozen entries at a time, on the cores the appends need.
pub const GATHER: u64 = 4_096;

/// The longest a small batch waits to gather more (see [`GATHER`]); reads
/// never miss what it holds back (they scan the entries above the index
/// file's position).
pub const GATHER_WAIT: Duration = Duration::from_millis(50);

/// How long a stopping store lets the indexer catch up; what it has not
/// indexed by then is indexed when the store is next opened.
pub const STOP_CATCH_UP: Duration = Duration::from_secs(30);

/// The search index's definition (`fts5 (...)`): the index file's and a
/// search's own index of the entries above the index file's position
/// ([`make_tail_index`]) must split and match words alike.
macro_rules! search_index {
    () => {
        "fts5 (body, tokenize = 'unicode61', content = '', contentless_delete = 1, detail = none)"
    };
}

/// The index file's tables. Every key ends in the position, so a key's
/// entries come newest first (or oldest first) without a sort. Keys that
/// are absent (no ip, no request id, no resource type) have no row.
const SCHEMA: &str = concat!(
    "
CREATE TABLE ix_state (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    pos INTEGER NOT NULL,
    leaf BLOB,
    span_bits INTEGER NOT NULL
);
CREATE TABLE ix_time (tenant TEXT NOT NULL, occurred_at INTEGER NOT NULL, pos INTEGER NOT NULL,
    PRIMARY KEY (tenant, occurred_at, pos)) WITHOUT ROWID;
-- The key tables ([`KEY_TABLES`]) begin their keys with the span of the
-- position ([`Indexed::span_of`]).
CREATE TABLE ix_actor (span INTEGER NOT NULL, tenant TEXT NOT NULL, actor_id TEXT NOT NULL,
    pos INTEGER NOT NULL, PRIMARY KEY (span, tenant, actor_id, pos)) WITHOUT ROWID;
CREATE TABLE ix_resource (span INTEGER NOT NULL, tenant TEXT NOT NULL,
    resource_type TEXT NOT NULL, resource_id TEXT NOT NULL, pos INTEGER NOT NULL,
    PRIMARY KEY (span, tenant, resource_type, resource_id, pos)) WITHOUT ROWID;
CREATE TABLE ix_action (span INTEGER NOT NULL, tenant TEXT NOT NULL, action TEXT NOT NULL,
    pos INTEGER NOT NULL, PRIMARY KEY (span, tenant, action, pos)) WITHOUT ROWID;
CREATE TABLE ix_outcome (span INTEGER NOT NULL, tenant TEXT NOT NULL, outcome TEXT NOT NULL,
    pos INTEGER NOT NULL, PRIMARY KEY (span, tenant, outcome, pos)) WITHOUT ROWID;
CREATE TABLE ix_ip (span INTEGER NOT NULL, tenant TEXT NOT NULL, ip TEXT NOT NULL,
    pos INTEGER NOT NULL, PRIMARY KEY (span, tenant, ip, pos)) WITHOUT ROWID;
CREATE TABLE ix_request (span INTEGER NOT NULL, tenant TEXT NOT NULL, request_id TEXT NOT NULL,
    pos INTEGER NOT NULL, PRIMARY KEY (span, tenant, request_id, pos)) WITHOUT ROWID;
-- Counts per tenant, dimension, hour and value (dimensions: outcome, action,
-- actor_id, resource_type), so that counting a long window reads its hours,
-- not its events. What they count is never erased.
CREATE TABLE ix_counts (tenant TEXT NOT NULL, dim TEXT NOT NULL, hour INTEGER NOT NULL,
    value TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (tenant, dim, hour, value)) WITHOUT ROWID;
-- Free-text search (q=): which entries hold each word, nothing more
-- (contentless, no positions), rowid = position.
CREATE VIRTUAL TABLE ix_fts USING ",
    search_index!(),
    ";
-- The indexer writes tens of thousands of rows per transaction: a larger
-- in-memory hash flushes them as fewer segments, and merging more segments
-- at a time merges less often.
INSERT INTO ix_fts (ix_fts, rank) VALUES ('hashsize', 16777216);
INSERT INTO ix_fts (ix_fts, rank) VALUES ('automerge', 8);
"
);

/// Makes a reader's connection's own search index, `temp.ix_tail`,
/// defined as the index file's: a search puts the words of the few entries
/// above the index file's position there ([`tail_words`]) instead of
/// waiting for the indexer. The connection's temporary database is kept in
/// memory (a read-only connection can write only that one), so words of
/// entries later erased are never written to a file.
pub(crate) fn make_tail_index(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(concat!(
        "PRAGMA temp_store = MEMORY; CREATE VIRTUAL TABLE temp.ix_tail USING ",
        search_index!(),
        ";
        -- What it holds: the entries above `floor` up to `top`, read while
        -- the writer had committed `erasures` writes other than appends
        -- (-1: nothing).
        CREATE TABLE temp.ix_tail_state (one INTEGER PRIMARY KEY CHECK (one = 1),
            top INTEGER NOT NULL, floor INTEGER NOT NULL, erasures INTEGER NOT NULL);
        INSERT INTO temp.ix_tail_state VALUES (1, -1, -1, -1);"
    ))
    .map_err(db(
        "making a reader's search index of the unindexed entries",
    ))
}

/// The words (`q=` finds an entry by) of the entries above position
/// `after`, in order, by the indexer's own rule; `None` when there are more
/// than `max`.
pub(crate) fn tail_words(
    conn: &Connection,
    after: i64,
    max: usize,
) -> Result<Option<Vec<(i64, String)>>, StoreError> {
    let rows = rows_after(conn, after, max.saturating_add(1))
        .map_err(db("reading the entries above the index file's position"))?;
    Ok((rows.len() <= max).then(|| rows.iter().map(|r| (r.pos, r.words())).collect()))
}

/// Creates [`SCHEMA`]'s tables in the database `name` (an unqualified
/// CREATE would go to the ledger file), at position 0, with spans of
/// 2^`span_bits` positions.
fn create_in(conn: &Connection, name: &str, spans: SpanWidth) -> rusqlite::Result<()> {
    conn.execute_batch(
        &SCHEMA
            .replace("CREATE TABLE ", &format!("CREATE TABLE {name}."))
            .replace(
                "CREATE VIRTUAL TABLE ",
                &format!("CREATE VIRTUAL TABLE {name}."),
            )
            .replace("INSERT INTO ", &format!("INSERT INTO {name}.")),
    )?;
    conn.execute(
        &format!("INSERT INTO {name}.ix_state (one, pos, leaf, span_bits) VALUES (1, 0, NULL, ?1)"),
        [spans.bits()],
    )?;
    Ok(())
}

fn db(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| StoreError::backend(context, e)
}

/// The index file beside the ledger file `db`.
pub(crate) fn index_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-index");
    PathBuf::from(name)
}

/// The index file and the files `SQLite` keeps beside it.
fn index_files(db: &Path) -> [PathBuf; 3] {
    let index = index_path(db);
    let beside = |suffix: &str| {
        let mut name = index.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [beside("-wal"), beside("-shm"), index]
}

/// Whether the index file's position is a position of this ledger with the
/// same leaf (not a file left by another database or an older copy).
pub(crate) fn belongs(ledger: &Connection, schema: &str) -> Result<bool, StoreError> {
    let version: i64 = ledger
        .query_row(&format!("PRAGMA {schema}.user_version"), [], |r| r.get(0))
        .map_err(db("reading the index file's version"))?;
    if version != INDEX_VERSION {
        return Ok(false);
    }
    let (pos, leaf): (i64, Option<Vec<u8>>) = ledger
        .query_row(
            &format!("SELECT pos, leaf FROM {schema}.ix_state"),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(db("reading the index file's position"))?;
    if pos == 0 {
        return Ok(true);
    }
    let stored: Option<Vec<u8>> = ledger
        .query_row(
            "SELECT leaf_hash FROM main.entries WHERE pos = ?1",
            [pos],
            |r| r.get(0),
        )
        .optional()
        .map_err(db("reading the index file's position"))?;
    Ok(stored.is_some() && stored == leaf)
}

/// The page size of a new index file, in bytes.
const INDEX_PAGE_SIZE: i64 = 16_384;

/// The index file's WAL is checkpointed after the transaction that takes
/// it past this many bytes.
const INDEX_WAL_CHECKPOINT: i64 = 128 << 20;

/// Whether the file attached as `ix` holds the index tables (a new file
/// holds nothing).
pub(crate) fn has_tables(conn: &Connection) -> Result<bool, StoreError> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM ix.sqlite_master WHERE name = 'ix_state')",
        [],
        |r| r.get(0),
    )
    .map_err(db("reading the index file"))
}

/// Opens the ledger file `path` for the indexer with its index file attached
/// as `ix`, removing an index file that does not belong to it or has spans
/// of another width than `spans`, and creating a new one (0600, as the
/// ledger file) where there is none.
pub(crate) fn open_indexer(path: &Path, spans: SpanWidth) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(db("opening the indexer's connection"))?;
    // Two statement shapes per index table (insert_many) beside the rest.
    conn.set_prepared_statement_cache_capacity(64);
    conn.busy_timeout(crate::BUSY_TIMEOUT)
        .map_err(db("setting a busy timeout"))?;
    let index = index_path(path);
    let attach = |conn: &Connection| -> Result<(), StoreError> {
        if !index.exists() {
            use std::os::unix::fs::OpenOptionsExt as _;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&index)
                .map_err(|e| StoreError::backend("creating the index file", e))?;
        }
        conn.execute("ATTACH DATABASE ?1 AS ix", [index.to_string_lossy()])
            .map_err(db("attaching the index file"))?;
        // A new index file has pages of 16 KiB, not SQLite's 4 KiB: fewer,
        // larger WAL frames (each written by a call of its own) and fewer
        // B-tree pages to balance (batched ingest 1.13x, its server CPU
        // 0.93x; bench/results/ingest.md). It only takes effect on an empty
        // file: an existing one keeps its size until it is rebuilt. (The
        // ledger file keeps 4 KiB: its commits rewrite partly filled pages.)
        // A checkpoint after every 128 MiB of WAL, not every 4 MiB: a batch
        // of scattered keys writes most pages of the actor, record and IP
        // trees, and the next batches write the same pages again; each is
        // copied into the file once per checkpoint (rebuilding 2.1M
        // entries: 5,040 -> 4,380 bytes written per entry, 24-27 -> 23-24
        // us CPU; bench/results/indexer.md). The setting counts pages of
        // the file's own size, and is the connection's; its writes to the
        // ledger file are a few rows. A restarted log keeps up to 192 MiB
        // of its file (one checkpoint's 128 MiB and the transaction that
        // crossed it): frames written past
        // the end of the file land on new blocks the kernel first zeroes
        // (4 % of the server's CPU under single-event ingest when the file
        // was cut back to 64 MiB at each restart; bench/results/ingest.md).
        conn.execute_batch(&format!(
            "PRAGMA ix.page_size = {INDEX_PAGE_SIZE}; PRAGMA ix.journal_mode = WAL; PRAGMA ix.synchronous = NORMAL;
             PRAGMA ix.secure_delete = ON; PRAGMA main.secure_delete = ON; PRAGMA ix.cache_size = -131072;
             PRAGMA ix.journal_size_limit = 201326592;"
        ))
        .map_err(db("setting up the index file"))?;
        let page: i64 = conn
            .query_row("PRAGMA ix.page_size", [], |r| r.get(0))
            .map_err(db("reading the index file's page size"))?;
        conn.pragma_update(
            None,
            "wal_autocheckpoint",
            INDEX_WAL_CHECKPOINT / page.max(512),
        )
        .map_err(db("setting up the index file"))
    };
    attach(&conn)?;
    if has_tables(&conn)? && !(belongs(&conn, "ix")? && stored_span_bits(&conn)? == spans.bits()) {
        // Derived data only: rebuilt from the ledger.
        conn.execute_batch("DETACH DATABASE ix")
            .map_err(db("detaching the index file"))?;
        for file in index_files(path) {
            let _ = std::fs::remove_file(file);
        }
        attach(&conn)?;
    }
    if !has_tables(&conn)? {
        let tx = conn
            .unchecked_transaction()
            .map_err(db("creating the index file"))?;
        create_in(&tx, "ix", spans).map_err(db("creating the index file"))?;
        tx.execute_batch(&format!("PRAGMA ix.user_version = {INDEX_VERSION}"))
            .map_err(db("creating the index file"))?;
        tx.commit().map_err(db("creating the index file"))?;
    }
    Ok(conn)
}

/// An empty index (position 0) for a read-only connection with no index
/// file to read: every read then scans the ledger's entries.
pub(crate) fn empty_temp_index(conn: &Connection) -> Result<(), StoreError> {
    create_in(conn, "temp", SpanWidth::SERVER).map_err(db("making an empty index"))
}

/// The span width stored in the index file attached as `ix` (checked by
/// [`SpanWidth::stored`] before use).
fn stored_span_bits(conn: &Connection) -> Result<u32, StoreError> {
    conn.query_row("SELECT span_bits FROM ix.ix_state", [], |r| r.get(0))
        .map_err(db("reading the index file's spans"))
}

#[derive(Debug, Default)]
struct Progress {
    /// The newest position committed by the writer (may run ahead of what
    /// exists when a batch was rolled back: the indexer then finds less).
    written: u64,
    /// Erasures committed by the writer (each leaves `index_redo` rows).
    erasures: u64,
    /// Everything the writer committed up to this position is indexed.
    caught_up: u64,
    /// The position the index file holds.
    indexed: u64,
    /// Erasures whose redo rows the indexer has applied.
    redone: u64,
    rate: f64,
    failure: Option<String>,
    /// Whether an indexer thread runs (the writer waits only for one).
    running: bool,
    /// Reads waiting for the index to catch up ([`Shared::wait_caught_up`]):
    /// the indexer does not gather while there are any.
    waiting: usize,
    stop: Option<Instant>,
    scrubs: Vec<std::sync::mpsc::Sender<Result<(), StoreError>>>,
}

/// What the writer, the readers and the indexer share.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    progress: Mutex<Progress>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The writer committed up to `pos` (if it appended) and `erasures`
    /// more erasures.
    pub(crate) fn wrote(&self, pos: Option<u64>, erasures: u64) {
        let mut p = self.lock();
        if let Some(pos) = pos {
            p.written = p.written.max(pos);
        }
        p.erasures += erasures;
        drop(p);
        self.changed.notify_all();
    }

    /// The writer's wait before a group while the lag is past [`MAX_LAG`]
    /// and a healthy indexer runs; at most [`THROTTLE_WAIT`].
    pub(crate) fn throttle(&self) {
        let p = self.lock();
        drop(
            self.changed
                .wait_timeout_while(p, THROTTLE_WAIT, |p| {
                    p.running
                        && p.failure.is_none()
                        && p.stop.is_none()
                        && p.written.saturating_sub(p.caught_up) >= MAX_LAG
                })
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
    }

    pub(crate) fn status(&self) -> IndexerStatus {
        let p = self.lock();
        IndexerStatus {
            written: p.written,
            indexed: p.indexed,
            lag_entries: p.written.saturating_sub(p.caught_up),
            rate: p.rate,
            failing: p.failure.is_some(),
        }
    }

    /// Whether an erasure the writer committed still has words or keys in
    /// the index file (its redo rows are not applied yet): a search then
    /// waits for the indexer rather than find an erased entry by its words.
    pub(crate) fn erasures_pending(&self) -> bool {
        let p = self.lock();
        p.redone < p.erasures
    }

    /// The writes other than appends the writer has committed (each may
    /// have erased something).
    pub(crate) fn erasures(&self) -> u64 {
        self.lock().erasures
    }

    /// Waits until the index covers everything committed when this was
    /// called (appends and erasures), at most until `deadline`.
    pub(crate) fn wait_caught_up(&self, deadline: Instant) -> Result<(), StoreError> {
        let mut p = self.lock();
        let (written, erasures) = (p.written, p.erasures);
        p.waiting += 1;
        self.changed.notify_all();
        let caught_up = |p: &Progress| p.caught_up >= written && p.redone >= erasures;
        let (mut p, _) = self
            .changed
            .wait_timeout_while(p, deadline.saturating_duration_since(Instant::now()), |p| {
                !caught_up(p) && p.stop.is_none()
            })
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let result = if caught_up(&p) {
            Ok(())
        } else {
            Err(StoreError::BadRequest {
                field: "q",
                message: format!(
                    "the search index is {} entries behind the trail{}; try again in a moment",
                    written.saturating_sub(p.caught_up),
                    p.failure
                        .as_deref()
                        .map(|f| format!(" (indexing fails: {f})"))
                        .unwrap_or_default()
                ),
            })
        };
        p.waiting -= 1;
        result
    }

    /// Asks the indexer to catch up and then rewrite the index file without
    /// what was removed; answers when it did.
    pub(crate) fn scrub(&self) -> Result<(), StoreError> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.lock().scrubs.push(tx);
        self.changed.notify_all();
        rx.recv().map_err(|_| StoreError::Closed)?
    }

    /// The indexer's wait, up to `wait`, while only a small backlog of
    /// appends (under [`GATHER`] entries) is waiting and nothing else is: no
    /// read waiting for the index, no erasure, scrub or stop.
    fn gather<'a>(
        &self,
        p: std::sync::MutexGuard<'a, Progress>,
        wait: Duration,
    ) -> std::sync::MutexGuard<'a, Progress> {
        self.changed
            .wait_timeout_while(p, wait, |p| {
                p.waiting == 0
                    && p.stop.is_none()
                    && p.scrubs.is_empty()
                    && p.redone >= p.erasures
                    && p.written.saturating_sub(p.caught_up) < GATHER
            })
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0
    }

    /// Asks the indexer to catch up and stop; waits for it.
    pub(crate) fn stop(&self) {
        self.lock().stop.get_or_insert_with(Instant::now);
        self.changed.notify_all();
    }
}

/// One entry as the indexer reads it from the ledger file.
struct Row {
    pos: i64,
    tenant: String,
    occurred_at: i64,
    actor_id: String,
    action: String,
    resource_type: Option<String>,
    resource_id: Option<String>,
    outcome: String,
    ip: Option<String>,
    request_id: Option<String>,
    payload: Option<String>,
    leaf: Vec<u8>,
}

const ROW_SQL: &str =
    "SELECT pos, tenant, occurred_at, actor_id, action, resource_type, resource_id,
        outcome, ip, request_id, payload, leaf_hash FROM main.entries";

/// The first `limit` entries above position `after`, in order: what the
/// indexer indexes next, and what a search indexes itself.
fn rows_after(conn: &Connection, after: i64, limit: usize) -> rusqlite::Result<Vec<Row>> {
    conn.prepare_cached(&format!("{ROW_SQL} WHERE pos > ?1 ORDER BY pos LIMIT ?2"))?
        .query_map(
            params![after, i64::try_from(limit).unwrap_or(i64::MAX)],
            row,
        )?
        .collect()
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        pos: r.get(0)?,
        tenant: r.get(1)?,
        occurred_at: r.get(2)?,
        actor_id: r.get(3)?,
        action: r.get(4)?,
        resource_type: r.get(5)?,
        resource_id: r.get(6)?,
        outcome: r.get(7)?,
        ip: r.get(8)?,
        request_id: r.get(9)?,
        payload: r.get(10)?,
        leaf: r.get(11)?,
    })
}

impl Row {
    /// The entry's value of an exact filter, where it has one.
    fn key(&self, field: Exact) -> Option<&str> {
        match field {
            Exact::Actor => Some(&self.actor_id),
            Exact::Action => Some(&self.action),
            Exact::ResourceType => self.resource_type.as_deref(),
            Exact::ResourceId => self.resource_id.as_deref(),
            Exact::Outcome => Some(&self.outcome),
            Exact::Ip => self.ip.as_deref(),
            Exact::RequestId => self.request_id.as_deref(),
        }
    }

    /// The words `q=` finds it by: the one rule of `searchable_words`.
    fn words(&self) -> String {
        searchable_words_of_text(
            [
                Some(&self.actor_id),
                Some(&self.action),
                self.resource_type.as_deref(),
                self.resource_id.as_deref(),
            ],
            self.payload.as_deref().unwrap_or("{}"),
        )
    }
}

/// An erasure's leftovers to remove from the index file.
struct Redo {
    id: i64,
    pos: i64,
    tenant: String,
    ip: Option<String>,
    request_id: Option<String>,
    /// The erased entry, as the batch read it.
    now: Erased,
}

/// An erased entry as a batch reads it.
enum Erased {
    /// Above the batch: indexed later, from its erased state.
    Later,
    /// Covered by the index file, and no longer in the ledger.
    Gone,
    /// Covered by the index file: the words of what it keeps now.
    Kept(String),
}

/// One batch's reading of the ledger file (see [`Indexer::read`]).
struct Read {
    rows: Vec<Row>,
    redo: Vec<Redo>,
    /// The position after the batch.
    to: i64,
}

/// The index file's key tables, most selective first, with the filters
/// their keys hold after the tenant (columns named by [`Exact::column`], in
/// [`SCHEMA`]): the indexer writes a row to each for every entry that has
/// the key, and a query seeks the first table it filters by (read.rs).
pub(crate) const KEY_TABLES: [(&str, &[Exact]); 6] = [
    ("ix_ip", &[Exact::Ip]),
    ("ix_request", &[Exact::RequestId]),
    ("ix_resource", &[Exact::ResourceType, Exact::ResourceId]),
    ("ix_actor", &[Exact::Actor]),
    ("ix_action", &[Exact::Action]),
    ("ix_outcome", &[Exact::Outcome]),
];

/// The width of the key tables' spans in a server's index file: their keys
/// begin with the span of the entry's position ([`Indexed::span_of`]),
/// 2^`SPAN_BITS` positions each.
///
/// The scattered keys of a batch (actors, records, IPs, request ids) land
/// all over their B-trees. In one tree for the whole trail, every batch
/// wrote most of its leaf pages once the tree outgrew a batch and the page
/// cache (at 10^7 entries, `ix_actor` alone is ~60,000 pages), and the ingest
/// rate fell as the trail grew. With the span first, a batch's keys land in
/// the newest span's part of each tree, which never holds more than one
/// span's entries; older spans are not written again (but for an erasure's
/// redo). A read seeks span by span, newest first, and stops when its page
/// is full: a key found in the newest span costs one seek, a rare key one
/// per span (ten at 10^7 entries). The width is kept in the index file;
/// [`crate::Options::index_span_bits`] sets another for a new one (tests).
pub const SPAN_BITS: u32 = 20;

/// The width of an index file's spans, 2^`bits` positions each (see
/// [`SPAN_BITS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SpanWidth(u32);

impl SpanWidth {
    /// A server's: [`SPAN_BITS`].
    pub(crate) const SERVER: Self = Self(SPAN_BITS);
    /// The widest: spans of 2^40 positions.
    pub(crate) const MAX_BITS: u32 = 40;

    /// Spans of 2^`bits` positions, if `bits` is at most [`Self::MAX_BITS`].
    pub(crate) fn new(bits: u32) -> Option<Self> {
        (bits <= Self::MAX_BITS).then_some(Self(bits))
    }

    /// The width an index file holds (`ix_state.span_bits`), if this build
    /// writes it.
    pub(crate) fn stored(bits: u32) -> Result<Self, StoreError> {
        Self::new(bits).ok_or_else(|| {
            StoreError::Unreadable(format!(
                "the index file's span width ({bits} bits) is not one this build writes"
            ))
        })
    }

    pub(crate) fn bits(self) -> u32 {
        self.0
    }

    /// The span of position `pos`: the one rule by which keys are written
    /// and sought.
    pub(crate) fn span_of(self, pos: i64) -> i64 {
        pos.max(0) >> self.0
    }
}

/// The index file's position and span width, as one read snapshot sees
/// them: the entries up to `pos` are in the index file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Indexed {
    pub(crate) pos: i64,
    pub(crate) spans: SpanWidth,
}

impl Indexed {
    /// The span of position `pos` in the key tables.
    pub(crate) fn span_of(self, pos: i64) -> i64 {
        self.spans.span_of(pos)
    }
}

pub(crate) struct Indexer {
    conn: Connection,
    shared: Arc<Shared>,
    /// The index file's WAL, made durable every [`WAL_SYNC_EVERY`] (see
    /// [`Indexer::sync_wal`]).
    wal: PathBuf,
    /// When it last was.
    wal_synced: Instant,
    /// The index file's span width.
    spans: SpanWidth,
}

/// How often the indexer flushes its WAL to disk while it writes.
pub const WAL_SYNC_EVERY: Duration = Duration::from_millis(250);

impl Indexer {
    /// `conn` from [`open_indexer`].
    pub(crate) fn new(conn: Connection, shared: Arc<Shared>) -> Result<Self, StoreError> {
        let indexed: i64 = conn
            .query_row("SELECT pos FROM ix.ix_state", [], |r| r.get(0))
            .map_err(db("reading the index file's position"))?;
        let written: i64 = conn
            .query_row("SELECT coalesce(max(pos), 0) FROM main.entries", [], |r| {
                r.get(0)
            })
            .map_err(db("reading the newest position"))?;
        let redo: bool = conn
            .query_row("SELECT EXISTS (SELECT 1 FROM main.index_redo)", [], |r| {
                r.get(0)
            })
            .map_err(db("reading the erasures to apply"))?;
        {
            let mut p = shared.lock();
            p.indexed = u64::try_from(indexed).unwrap_or(0);
            p.caught_up = p.indexed;
            p.written = p.written.max(u64::try_from(written).unwrap_or(0));
            // Redo rows left by a crash count as one erasure to apply.
            p.erasures += u64::from(redo);
        }
        let spans = SpanWidth::stored(stored_span_bits(&conn)?)?;
        let mut wal = index_path(Path::new(conn.path().unwrap_or_default())).into_os_string();
        wal.push("-wal");
        Ok(Self {
            conn,
            shared,
            wal: PathBuf::from(wal),
            wal_synced: Instant::now(),
            spans,
        })
    }

    /// Writes the index file's WAL to disk when it was last written longer
    /// than [`WAL_SYNC_EVERY`] ago. The index file is synced only at its
    /// checkpoints (`synchronous = NORMAL`: derived data, rebuilt after a
    /// crash), one per 128 MiB of WAL; that sync wrote the whole 128 MiB at
    /// once and held every other write to the disk behind it, the ledger's
    /// commits too (a third of a second here, every few seconds under
    /// single-event load: the p99 of acknowledgments). Written in pieces of
    /// a quarter second's worth, the WAL is already on disk when the
    /// checkpoint comes. An error is left to the checkpoint to meet.
    fn sync_wal(&mut self) {
        if self.wal_synced.elapsed() >= WAL_SYNC_EVERY {
            if let Ok(file) = std::fs::File::open(&self.wal) {
                let _ = file.sync_data();
            }
            self.wal_synced = Instant::now();
        }
    }

    pub(crate) fn run(mut self) {
        self.shared.lock().running = true;
        self.run_until_stopped();
        self.shared.lock().running = false;
        self.shared.changed.notify_all();
    }

    fn run_until_stopped(&mut self) {
        loop {
            let (written, erasures, scrub, stop, behind, out_of_time) = {
                let mut p = self.shared.lock();
                while !(p.caught_up < p.written
                    || p.redone < p.erasures
                    || p.stop.is_some()
                    || !p.scrubs.is_empty())
                {
                    p = self
                        .shared
                        .changed
                        .wait(p)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                let p = self.shared.gather(p, GATHER_WAIT);
                (
                    p.written,
                    p.erasures,
                    !p.scrubs.is_empty(),
                    p.stop.is_some(),
                    p.caught_up < p.written || p.redone < p.erasures,
                    p.stop.is_some_and(|at| at.elapsed() > STOP_CATCH_UP),
                )
            };
            if behind && !out_of_time {
                let started = Instant::now();
                match self.batch() {
                    Ok((indexed, n, full)) => {
                        let mut p = self.shared.lock();
                        p.indexed = indexed;
                        // A batch that took everything there was covers
                        // every position committed before it began.
                        p.caught_up = if full { indexed } else { written.max(indexed) };
                        p.redone = p.redone.max(erasures);
                        if n > 0 {
                            #[allow(clippy::cast_precision_loss)]
                            let rate = n as f64 / started.elapsed().as_secs_f64().max(1e-6);
                            p.rate = rate;
                        }
                        p.failure = None;
                        drop(p);
                        self.shared.changed.notify_all();
                        self.sync_wal();
                    }
                    Err(e) => {
                        let mut p = self.shared.lock();
                        p.failure = Some(e.to_string());
                        if p.stop.is_some() {
                            return;
                        }
                        // Retried after a second, not at every append that
                        // wakes the indexer meanwhile: a lasting error (a
                        // full disk) must not spin. A stop ends the wait.
                        let retry = Instant::now() + Duration::from_secs(1);
                        while p.stop.is_none() {
                            let now = Instant::now();
                            if now >= retry {
                                break;
                            }
                            p = self
                                .shared
                                .changed
                                .wait_timeout(p, retry - now)
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .0;
                        }
                    }
                }
                continue;
            }
            if scrub && !out_of_time {
                let result = self.scrub();
                let waiting = std::mem::take(&mut self.shared.lock().scrubs);
                for tx in waiting {
                    let _ = tx.send(result.as_ref().map_err(StoreError::duplicate).copied());
                }
                continue;
            }
            if stop {
                // A scrub asked for now is answered Closed.
                drop(std::mem::take(&mut self.shared.lock().scrubs));
                let _ = self
                    .conn
                    .query_row("PRAGMA ix.wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
                return;
            }
        }
    }

    /// Indexes the entries after the index file's position (at most
    /// [`BATCH`]) and applies the erasures' redo rows, read first (see
    /// [`Self::read`]), in one transaction of the index file; then deletes
    /// the applied redo rows from the ledger file. Answers the new position,
    /// the entries indexed, and whether the batch was full (more may wait).
    fn batch(&self) -> Result<(u64, usize, bool), StoreError> {
        let read = self.read()?;
        self.write(read)
    }

    /// Writes what [`Self::read`] read into the index file (see
    /// [`Self::batch`]).
    fn write(&self, Read { rows, redo, to }: Read) -> Result<(u64, usize, bool), StoreError> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(db("starting an index transaction"))?;
        insert_rows(&tx, &rows, self.spans)?;
        apply_redo(&tx, &redo, self.spans)?;
        if let Some(last) = rows.last() {
            tx.execute(
                "UPDATE ix.ix_state SET pos = ?1, leaf = ?2",
                params![last.pos, last.leaf],
            )
            .map_err(db("moving the index file's position"))?;
        }
        tx.commit().map_err(db("committing an index batch"))?;
        if let Some(last) = redo.last() {
            // A crash before this applies them again, which changes nothing.
            self.conn
                .execute("DELETE FROM main.index_redo WHERE id <= ?1", [last.id])
                .map_err(db("deleting applied erasures"))?;
        }
        Ok((
            u64::try_from(to).unwrap_or(0),
            rows.len(),
            rows.len() == BATCH,
        ))
    }

    /// What a batch indexes, read from the ledger file in one short read
    /// transaction of its own: the entries after the index file's position
    /// (at most [`BATCH`]), the erasures' redo rows, and the erased entries'
    /// rows as they are now. One snapshot, so the rows and the redo rows
    /// agree; ended before the index file is written, so the ledger's WAL
    /// checkpoints and restarts never wait for a whole index transaction
    /// (they wait for the readers of the WAL: a batch's writing and commit
    /// took up to a second under batched load, and the writer's RESTART
    /// slept behind it).
    fn read(&self) -> Result<Read, StoreError> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(db("starting a read of the ledger"))?;
        let from: i64 = tx
            .query_row("SELECT pos FROM ix.ix_state", [], |r| r.get(0))
            .map_err(db("reading the index file's position"))?;
        let rows = rows_after(&tx, from, BATCH).map_err(db("reading entries to index"))?;
        let to = rows.last().map_or(from, |r| r.pos);
        let mut redo: Vec<Redo> = tx
            .prepare_cached(
                "SELECT id, pos, tenant, ip, request_id FROM main.index_redo ORDER BY id",
            )
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok(Redo {
                        id: r.get(0)?,
                        pos: r.get(1)?,
                        tenant: r.get(2)?,
                        ip: r.get(3)?,
                        request_id: r.get(4)?,
                        now: Erased::Later,
                    })
                })?
                .collect()
            })
            .map_err(db("reading the erasures to apply"))?;
        let erased = format!("{ROW_SQL} WHERE pos = ?1");
        for r in redo.iter_mut().filter(|r| r.pos <= to) {
            let now = tx
                .prepare_cached(&erased)
                .and_then(|mut s| s.query_row([r.pos], row).optional())
                .map_err(db("reading an erased entry"))?;
            r.now = now.map_or(Erased::Gone, |now| Erased::Kept(now.words()));
        }
        tx.commit().map_err(db("ending a read of the ledger"))?;
        Ok(Read { rows, redo, to })
    }

    /// Rewrites the search index without the words of deleted rows and
    /// folds the index file's WAL into it, truncated to nothing.
    fn scrub(&self) -> Result<(), StoreError> {
        self.conn
            .execute_batch("INSERT INTO ix.ix_fts (ix_fts) VALUES ('optimize')")
            .map_err(db("rewriting the search index"))?;
        crate::truncate_wal(&self.conn, "ix", "truncating the index file's WAL")
    }
}

/// One entry's words into the search index (one row a statement: see
/// [`insert_rows`]).
const INSERT_WORDS: &str = "INSERT INTO ix.ix_fts (rowid, body) VALUES (?1, ?2)";

/// Writes each index's keys of `rows` in key order (each B-tree is then
/// written page after page, not at random), their counts, and last their
/// words, one row a statement.
///
/// The search index keeps the words of a transaction in memory and writes
/// them as one segment when it ends, but also whenever a statement opens a
/// statement savepoint after the search index joined the transaction: any
/// statement that writes several rows and may fail halfway (a multi-row
/// insert, an upsert) opens one. Inserting its words in multi-row
/// statements, or keys after them, made a segment of every 128 entries and
/// kept FTS5 merging them. A one-row insert opens no savepoint, so the
/// words go last and one at a time: one segment a transaction.
fn insert_rows(tx: &Connection, rows: &[Row], spans: SpanWidth) -> Result<(), StoreError> {
    let run = || -> rusqlite::Result<()> {
        insert_keys(tx, rows, spans)?;
        insert_counts(tx, rows)?;
        let mut words = tx.prepare_cached(INSERT_WORDS)?;
        for r in rows {
            words.execute(params![r.pos, r.words()])?;
        }
        Ok(())
    };
    run().map_err(db("writing the index file"))
}

/// The key tables' rows of `rows`, each table's in key order.
fn insert_keys(tx: &Connection, rows: &[Row], spans: SpanWidth) -> rusqlite::Result<()> {
    let mut time: Vec<(&str, i64, i64)> = rows
        .iter()
        .map(|r| (r.tenant.as_str(), r.occurred_at, r.pos))
        .collect();
    time.sort_unstable();
    insert_many(
        tx,
        "INSERT OR IGNORE INTO ix.ix_time (tenant, occurred_at, pos)",
        "",
        &time,
        |(t, occurred, pos)| [t, occurred, pos],
    )?;
    let span = |pos| spans.span_of(pos);
    let mut resources: Vec<(i64, &str, &str, &str, i64)> = rows
        .iter()
        .filter_map(|r| {
            Some((
                span(r.pos),
                r.tenant.as_str(),
                r.resource_type.as_deref()?,
                r.resource_id.as_deref().unwrap_or(""),
                r.pos,
            ))
        })
        .collect();
    resources.sort_unstable();
    insert_many(
        tx,
        "INSERT OR IGNORE INTO ix.ix_resource (span, tenant, resource_type, resource_id, pos)",
        "",
        &resources,
        |(span, t, kind, id, pos)| [span, t, kind, id, pos],
    )?;
    let mut keys: Vec<(i64, &str, &str, i64)> = Vec::with_capacity(rows.len());
    for (table, fields) in KEY_TABLES {
        // ix_resource, keyed by two fields, is written above.
        let &[field] = fields else { continue };
        let column = field.column();
        keys.clear();
        keys.extend(
            rows.iter()
                .filter_map(|r| Some((span(r.pos), r.tenant.as_str(), r.key(field)?, r.pos))),
        );
        // Rows come in position order: a stable sort by key keeps it.
        keys.sort_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
        insert_many(
            tx,
            &format!("INSERT OR IGNORE INTO ix.{table} (span, tenant, {column}, pos)"),
            "",
            &keys,
            |(span, t, key, pos)| [span, t, key, pos],
        )?;
    }
    Ok(())
}

/// What a batch adds to the hourly counts, one upsert per counted key.
type CountKey<'a> = (&'a str, &'a str, i64, &'a str);

fn insert_counts(tx: &Connection, rows: &[Row]) -> rusqlite::Result<()> {
    // Summed first (a batch holds few outcomes, actions and hours), then
    // sorted: one upsert per counted key, in key order.
    let mut counts: HashMap<CountKey<'_>, i64> = HashMap::new();
    for r in rows {
        let hour = r.occurred_at.div_euclid(HOUR_MS);
        let values = [
            ("outcome", Some(r.outcome.as_str())),
            ("action", Some(r.action.as_str())),
            ("actor_id", Some(r.actor_id.as_str())),
            ("resource_type", r.resource_type.as_deref()),
        ];
        for (dim, value) in values {
            if let Some(value) = value {
                *counts
                    .entry((r.tenant.as_str(), dim, hour, value))
                    .or_default() += 1;
            }
        }
    }
    let mut counted: Vec<(CountKey<'_>, i64)> = counts.into_iter().collect();
    counted.sort_unstable();
    insert_many(
        tx,
        "INSERT INTO ix.ix_counts (tenant, dim, hour, value, n)",
        "ON CONFLICT (tenant, dim, hour, value) DO UPDATE SET n = n + excluded.n",
        &counted,
        |((t, dim, hour, value), n)| [t, dim, hour, value, n],
    )
}

/// Rows per statement in [`insert_many`]: one statement run (one step,
/// one halt, one reset) for this many keys instead of one each. At five
/// values a row, 640 parameters: far below SQLite's limit (32,766).
const ROWS_PER_INSERT: usize = 128;

/// `insert` (`INSERT … INTO table (columns)`) of every item, `values`
/// giving an item's `N` values in the columns' order, `tail` (an upsert
/// clause, or nothing) after them: full statements of [`ROWS_PER_INSERT`]
/// rows, then one row a statement for the rest, so that a table has two
/// statement shapes in the cache, not one per remainder.
fn insert_many<T, const N: usize>(
    tx: &Connection,
    insert: &str,
    tail: &str,
    items: &[T],
    values: impl Fn(&T) -> [&dyn ToSql; N],
) -> rusqlite::Result<()> {
    let bind = |s: &mut rusqlite::Statement<'_>, first: usize, item: &T| {
        values(item)
            .into_iter()
            .enumerate()
            .try_for_each(|(i, value)| s.raw_bind_parameter(first + i, value))
    };
    let mut chunks = items.chunks_exact(ROWS_PER_INSERT);
    if chunks.len() > 0 {
        let mut s = tx.prepare_cached(&rows_sql(insert, N, ROWS_PER_INSERT, tail))?;
        for chunk in chunks.by_ref() {
            for (i, item) in chunk.iter().enumerate() {
                bind(&mut s, i * N + 1, item)?;
            }
            s.raw_execute()?;
        }
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut s = tx.prepare_cached(&rows_sql(insert, N, 1, tail))?;
        for item in rest {
            bind(&mut s, 1, item)?;
            s.raw_execute()?;
        }
    }
    Ok(())
}

/// `insert VALUES (?, …), … tail` with `rows` rows of `width` parameters.
fn rows_sql(insert: &str, width: usize, rows: usize, tail: &str) -> String {
    let row = format!("({})", vec!["?"; width].join(", "));
    format!("{insert} VALUES {} {tail}", vec![row; rows].join(", "))
}

/// Removes what erasures took from entries the index file covers (those
/// read with their rows as they are now): their ip and request id keys, and
/// their words, which are written again from what the entry keeps. The
/// others are indexed later, from their erased state.
fn apply_redo(tx: &Connection, redo: &[Redo], spans: SpanWidth) -> Result<(), StoreError> {
    let run = || -> rusqlite::Result<()> {
        for r in redo {
            if matches!(r.now, Erased::Later) {
                continue;
            }
            if let Some(ip) = &r.ip {
                tx.prepare_cached(
                    "DELETE FROM ix.ix_ip WHERE span = ?4 AND tenant = ?1 AND ip = ?2 AND pos = ?3",
                )?
                .execute(params![r.tenant, ip, r.pos, spans.span_of(r.pos)])?;
            }
            if let Some(id) = &r.request_id {
                tx.prepare_cached(
                    "DELETE FROM ix.ix_request
                     WHERE span = ?4 AND tenant = ?1 AND request_id = ?2 AND pos = ?3",
                )?
                .execute(params![r.tenant, id, r.pos, spans.span_of(r.pos)])?;
            }
            tx.prepare_cached("DELETE FROM ix.ix_fts WHERE rowid = ?1")?
                .execute([r.pos])?;
            if let Erased::Kept(words) = &r.now {
                tx.prepare_cached(INSERT_WORDS)?
                    .execute(params![r.pos, words])?;
            }
        }
        Ok(())
    };
    run().map_err(db("removing erased values from the index file"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `wait` on its own thread with the shared progress; the receiver
    /// hears when it returned.
    fn on_thread(
        shared: &Arc<Shared>,
        wait: impl FnOnce(&Shared) + Send + 'static,
    ) -> std::sync::mpsc::Receiver<()> {
        let (done, returned) = std::sync::mpsc::channel();
        let shared = Arc::clone(shared);
        std::thread::spawn(move || {
            wait(&shared);
            let _ = done.send(());
        });
        returned
    }

    /// [`Shared::gather`] on its own thread, with a wait far longer than
    /// any test.
    fn gathering(shared: &Arc<Shared>) -> std::sync::mpsc::Receiver<()> {
        on_thread(shared, |s| {
            drop(s.gather(s.lock(), Duration::from_secs(3600)));
        })
    }

    /// Long enough for a thread to be scheduled on a loaded machine; a
    /// broken rule would keep the gatherer an hour.
    const SOON: Duration = Duration::from_secs(20);

    fn with_backlog(n: u64) -> Arc<Shared> {
        let shared = Arc::new(Shared::default());
        shared.wrote(Some(n), 0);
        shared
    }

    /// [`Shared::throttle`] (the writer's wait) on its own thread.
    fn throttling(shared: &Arc<Shared>) -> std::sync::mpsc::Receiver<()> {
        on_thread(shared, Shared::throttle)
    }

    /// A new index file has 16 KiB pages, and its WAL is checkpointed after
    /// 128 MiB of them; an index file made with 4 KiB pages (before they
    /// grew) keeps them, and its checkpoint still comes after 128 MiB, not
    /// after 32 MiB or 512 MiB.
    #[test]
    fn the_index_file_wal_checkpoint_counts_pages_of_its_own_size() {
        let settings = |conn: &Connection| -> (i64, i64) {
            (
                conn.query_row("PRAGMA ix.page_size", [], |r| r.get(0))
                    .unwrap(),
                conn.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
                    .unwrap(),
            )
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trailmark.db");
        crate::SqliteStore::open(&path).unwrap().shutdown();
        let conn = open_indexer(&path, SpanWidth::SERVER).unwrap();
        assert_eq!(settings(&conn), (16_384, 8_192));
        drop(conn);
        let older = tempfile::tempdir().unwrap();
        let path = older.path().join("trailmark.db");
        let made = Connection::open(index_path(&path)).unwrap();
        made.execute_batch(
            "PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; CREATE TABLE t (x)",
        )
        .unwrap();
        drop(made);
        crate::SqliteStore::open(&path).unwrap().shutdown();
        let conn = open_indexer(&path, SpanWidth::SERVER).unwrap();
        assert_eq!(settings(&conn), (4_096, 32_768));
    }

    /// The indexer reads a batch from the ledger file in a read transaction
    /// of its own and ends it before writing the index file: the ledger's
    /// WAL restarts while a batch is written. (In one transaction, the
    /// writer's RESTART slept behind every index batch under batched load.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_ledger_wal_restarts_while_the_indexer_writes_a_batch() {
        use trailmark_store::Store;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trailmark.db");
        let store = crate::SqliteStore::open_with(
            &path,
            crate::Options {
                indexer: false,
                ..crate::Options::default()
            },
        )
        .unwrap();
        let batch: Vec<_> = (0..500)
            .map(|n| trailmark_store::testkit::new_event("t", n, "update"))
            .collect();
        store.append(batch).await.unwrap();
        let indexer = Indexer::new(
            open_indexer(&path, SpanWidth::SERVER).unwrap(),
            Arc::default(),
        )
        .unwrap();
        let read = indexer.read().unwrap();
        assert_eq!(read.rows.len(), 500);
        let ledger = Connection::open(&path).unwrap();
        ledger.busy_timeout(Duration::from_millis(200)).unwrap();
        let (busy, log, done): (i64, i64, i64) = ledger
            .query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(
            (busy, log),
            (0, done),
            "the WAL did not restart while the batch was in hand"
        );
        let (position, n, full) = indexer.write(read).unwrap();
        assert_eq!((n, full), (500, false));
        let stored: i64 = indexer
            .conn
            .query_row("SELECT pos FROM ix.ix_state", [], |r| r.get(0))
            .unwrap();
        assert_eq!(u64::try_from(stored).unwrap(), position);
        drop(ledger);
        store.shutdown();
    }

    #[test]
    fn the_writer_waits_past_the_lag_bound_until_the_indexer_catches_up() {
        let shared = with_backlog(MAX_LAG);
        shared.lock().running = true;
        let returned = throttling(&shared);
        assert!(
            returned.recv_timeout(Duration::from_millis(200)).is_err(),
            "a lag of MAX_LAG holds the writer"
        );
        shared.lock().caught_up = 1;
        shared.changed.notify_all();
        returned
            .recv_timeout(THROTTLE_WAIT / 2)
            .expect("a lag under the bound lets the writer go at once");
    }

    #[test]
    fn the_writer_does_not_wait_for_an_indexer_that_is_absent_failing_or_stopping() {
        let absent = with_backlog(MAX_LAG);
        let failing = with_backlog(MAX_LAG);
        let stopping = with_backlog(MAX_LAG);
        for (shared, what) in [
            (&absent, "absent"),
            (&failing, "failing"),
            (&stopping, "stopping"),
        ] {
            let mut p = shared.lock();
            p.running = what != "absent";
            if what == "failing" {
                p.failure = Some("disk full".into());
            }
            if what == "stopping" {
                p.stop = Some(Instant::now());
            }
            drop(p);
            throttling(shared)
                .recv_timeout(THROTTLE_WAIT / 2)
                .unwrap_or_else(|_| panic!("the writer waited for an indexer {what}"));
        }
    }

    #[test]
    fn a_small_backlog_is_gathered_until_it_reaches_the_gather_size() {
        let shared = with_backlog(1);
        let returned = gathering(&shared);
        assert!(
            returned.recv_timeout(Duration::from_millis(200)).is_err(),
            "one entry waiting alone must wait for more"
        );
        shared.wrote(Some(GATHER - 1), 0);
        assert!(
            returned.recv_timeout(Duration::from_millis(200)).is_err(),
            "{} entries are still fewer than GATHER",
            GATHER - 1
        );
        shared.wrote(Some(GATHER), 0);
        returned
            .recv_timeout(SOON)
            .expect("a full gather is indexed at once");
    }

    #[test]
    fn a_read_waiting_for_the_index_ends_the_gathering() {
        let shared = with_backlog(1);
        let returned = gathering(&shared);
        let reader = Arc::clone(&shared);
        // Nothing indexes here, so the read waits out its own deadline.
        let read = std::thread::spawn(move || {
            reader.wait_caught_up(Instant::now() + Duration::from_secs(30))
        });
        returned
            .recv_timeout(SOON)
            .expect("a waiting read must not wait for the gathering");
        shared.lock().caught_up = 1;
        shared.changed.notify_all();
        read.join().expect("the read").expect("caught up");
        assert_eq!(
            shared.lock().waiting,
            0,
            "the read no longer counts as waiting"
        );
    }

    #[test]
    fn a_search_waiting_past_its_deadline_or_a_stop_is_told_how_far_behind_the_index_is() {
        let shared = with_backlog(7);
        let started = Instant::now();
        let late = shared.wait_caught_up(started + Duration::from_millis(100));
        assert!(started.elapsed() >= Duration::from_millis(100), "it waited");
        match late {
            Err(StoreError::BadRequest { field, message }) => {
                assert_eq!(field, "q");
                assert!(message.contains("7 entries behind"), "{message}");
            }
            other => panic!("a search past its deadline: {other:?}"),
        }
        shared.stop();
        on_thread(&shared, |s| {
            let stopped = s.wait_caught_up(Instant::now() + Duration::from_secs(3600));
            assert!(
                matches!(stopped, Err(StoreError::BadRequest { field: "q", .. })),
                "{stopped:?}"
            );
        })
        .recv_timeout(SOON)
        .expect("a stopping store answers a waiting search at once, with an error");
        assert_eq!(
            shared.lock().waiting,
            0,
            "neither counts as waiting any more"
        );
    }

    #[test]
    fn a_stop_an_erasure_or_a_scrub_ends_the_gathering() {
        let shared = with_backlog(1);
        let returned = gathering(&shared);
        shared.stop();
        returned.recv_timeout(SOON).expect("a stop ends it");

        let shared = with_backlog(1);
        let returned = gathering(&shared);
        shared.wrote(None, 1);
        returned.recv_timeout(SOON).expect("an erasure ends it");

        let shared = with_backlog(1);
        let returned = gathering(&shared);
        let (tx, _rx) = std::sync::mpsc::channel();
        shared.lock().scrubs.push(tx);
        shared.changed.notify_all();
        returned.recv_timeout(SOON).expect("a scrub ends it");
    }
}
