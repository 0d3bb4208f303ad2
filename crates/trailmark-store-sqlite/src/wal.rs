//! The ledger WAL's bound, kept by two threads.
//!
//! A WAL in use by readers never starts over by itself: SQLite writes from
//! its beginning again only when a write begins on a log that is wholly
//! copied into the database and that no reader still reads, which steady
//! reads and writes never leave. So the log is restarted on purpose
//! (`wal_checkpoint(RESTART)`), and that must happen on the write
//! connection's side: a RESTART holds the write lock, and one run from
//! another connection would wait for the writer's next gap, which steady
//! load never leaves either.
//!
//! What a RESTART costs the writer is what it still has to copy, the
//! database sync that follows the copy, and the wait for readers. The
//! checkpointer thread does the copying: every 500 ms it copies what it can
//! (PASSIVE, which blocks nobody), and once the log passes its bound it
//! copies again until little is left, then asks the writer to restart the
//! log; the writer does so between two groups, with a short wait for
//! readers. Should the checkpointer fall behind, the writer restarts an
//! outgrown log by itself at half as much again.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// How often the checkpointer looks at the log's size.
const LOOK_EVERY: Duration = Duration::from_millis(100);
/// How often it copies what it can while the log is under its bound.
const COPY_EVERY: Duration = Duration::from_millis(500);
/// At most this many frames (about 2 MiB of 4 KiB pages) are left for the
/// writer's RESTART to copy when the checkpointer asks for one.
const FEW_FRAMES: i64 = 512;
/// Copies the checkpointer makes to bring what is left under
/// [`FEW_FRAMES`] before it asks anyway.
const MAX_COPIES: usize = 4;
/// How long the writer's RESTART waits for readers when asked; a reader
/// still reading then makes it try again at the next ask.
const ASKED_READER_WAIT: Duration = Duration::from_millis(20);
/// The busy timeout of the write connection, restored after a RESTART.
pub(crate) const WRITER_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The WAL file, its bound, and the checkpointer's ask.
pub(crate) struct Bound {
    path: PathBuf,
    limit: u64,
    asked: AtomicBool,
}

impl Bound {
    pub(crate) fn new(path: PathBuf, limit: u64) -> Self {
        Self {
            path,
            limit,
            asked: AtomicBool::new(false),
        }
    }

    fn len(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    /// Between two groups, on the write connection: restarts the log when
    /// the checkpointer asked (it copied nearly everything, so the RESTART
    /// is short and waits for readers only briefly), or by itself when the
    /// log outgrew half as much again as its bound (waiting for readers as
    /// long as any write would).
    pub(crate) fn keep(&self, conn: &Connection) {
        let asked = self.asked.swap(false, Ordering::AcqRel);
        if !asked && self.len() <= self.limit.saturating_add(self.limit / 2) {
            return;
        }
        if asked {
            let _ = conn.busy_timeout(ASKED_READER_WAIT);
        }
        let _ = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()));
        if asked {
            let _ = conn.busy_timeout(WRITER_BUSY_TIMEOUT);
        }
    }

    /// The checkpointer thread's loop, until `stop` says the store closes;
    /// then it folds the log into the database (TRUNCATE).
    pub(crate) fn checkpoint(&self, conn: &Connection, stop: &mpsc::Receiver<()>) {
        let mut copied = Instant::now();
        while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(LOOK_EVERY) {
            self.look(conn, &mut copied);
        }
        let _ = crate::wal_checkpoint(conn, "TRUNCATE");
    }

    /// One look of the checkpointer: copies what it can every
    /// [`COPY_EVERY`], and past the bound copies until little is left and
    /// asks the writer to restart the log.
    fn look(&self, conn: &Connection, copied: &mut Instant) {
        let over = self.len() > self.limit;
        if !over && copied.elapsed() < COPY_EVERY {
            return;
        }
        *copied = Instant::now();
        let mut left = passive(conn);
        if !over {
            return;
        }
        for _ in 1..MAX_COPIES {
            if left.is_some_and(|n| n <= FEW_FRAMES) {
                break;
            }
            left = passive(conn);
        }
        if left.is_some() {
            self.asked.store(true, Ordering::Release);
        }
    }
}

/// A PASSIVE checkpoint: the frames it left uncopied, or `None` when it
/// failed.
fn passive(conn: &Connection) -> Option<i64> {
    crate::wal_checkpoint(conn, "PASSIVE")
        .ok()
        .map(|(_, log, done)| log - done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(path: &std::path::Path, limit: u64) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.pragma_update(None, "journal_mode", "wal").unwrap();
        // As the store's write connection: only the checkpointer copies.
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        conn.pragma_update(None, "journal_size_limit", i64::try_from(limit).unwrap())
            .unwrap();
        conn.busy_timeout(WRITER_BUSY_TIMEOUT).unwrap();
        conn
    }

    fn write(conn: &Connection, rows: usize) {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        for _ in 0..rows {
            conn.execute("INSERT INTO t (v) VALUES (randomblob(3000))", [])
                .unwrap();
        }
        conn.execute_batch("COMMIT").unwrap();
    }

    #[test]
    fn past_its_bound_the_checkpointer_copies_and_the_writer_restarts_the_log_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let limit = 1024 * 1024;
        let writer = open(&path, limit);
        writer
            .execute_batch("CREATE TABLE t (v BLOB NOT NULL)")
            .unwrap();
        let checkpointer = open(&path, limit);
        // A reader in the middle of a read, on a snapshot the log holds.
        let reader = open(&path, limit);
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let bound = Bound::new(PathBuf::from(wal), limit);
        for _ in 0..10 {
            write(&writer, 100);
        }
        assert!(bound.len() > limit, "the log did not pass its bound");
        // A read under way, on a snapshot inside the log.
        reader.execute_batch("BEGIN").unwrap();
        let _: i64 = reader
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        // Over its bound, a look copies at once (not only every COPY_EVERY)
        // and asks.
        let mut copied = Instant::now();
        bound.look(&checkpointer, &mut copied);
        assert!(
            bound.asked.swap(false, Ordering::AcqRel),
            "the checkpointer did not ask"
        );
        bound.asked.store(true, Ordering::Release);
        // Asked while the read holds its snapshot: the writer's RESTART
        // waits for it only briefly and gives up; the log keeps growing.
        let started = Instant::now();
        bound.keep(&writer);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the writer waited {:?} for the read",
            started.elapsed()
        );
        assert!(!bound.asked.load(Ordering::Acquire));
        let before = bound.len();
        write(&writer, 10);
        assert!(bound.len() > before, "the log restarted under a read");
        // The read ends; asked again, the writer restarts the log and its
        // next commit cuts the file back to the bound.
        reader.execute_batch("COMMIT").unwrap();
        bound.look(&checkpointer, &mut copied);
        bound.keep(&writer);
        write(&writer, 10);
        assert!(
            bound.len() <= limit,
            "the log was not restarted: {} bytes (limit {limit})",
            bound.len()
        );
    }

    #[test]
    fn a_log_past_half_as_much_again_as_its_bound_is_restarted_by_the_writer_unasked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let limit = 1024 * 1024;
        let writer = open(&path, limit);
        writer
            .execute_batch("CREATE TABLE t (v BLOB NOT NULL)")
            .unwrap();
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let bound = Bound::new(PathBuf::from(wal), limit);
        for _ in 0..10 {
            write(&writer, 100);
        }
        assert!(bound.len() > limit + limit / 2);
        bound.keep(&writer);
        write(&writer, 1);
        assert!(bound.len() <= limit, "{} bytes", bound.len());
    }
}
