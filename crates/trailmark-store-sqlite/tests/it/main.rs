//! The shared conformance suite against the embedded store.

#![allow(clippy::unwrap_used)]

use trailmark_store::testkit::Harness;
use trailmark_store_sqlite::SqliteStore;

struct TempSqlite(tempfile::TempDir);

impl TempSqlite {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }
}

impl Harness for TempSqlite {
    type Store = SqliteStore;
    fn open(&self) -> SqliteStore {
        SqliteStore::open(self.0.path().join("trailmark.db")).unwrap()
    }
}

trailmark_store::conformance_suite!(TempSqlite::new());

/// The suite again with the index file's key tables in spans of four
/// positions (a server's hold 2^20), so that what it indexes lies in many.
mod narrow_spans {
    use super::*;

    struct NarrowSpans(tempfile::TempDir);

    impl Harness for NarrowSpans {
        type Store = SqliteStore;
        fn open(&self) -> SqliteStore {
            SqliteStore::open_with(
                self.0.path().join("trailmark.db"),
                trailmark_store_sqlite::Options {
                    index_span_bits: 2,
                    ..trailmark_store_sqlite::Options::default()
                },
            )
            .unwrap()
        }
    }

    trailmark_store::conformance_suite!(NarrowSpans(tempfile::tempdir().unwrap()));
}

/// A store at `path` whose WAL is bounded at `limit` bytes.
fn with_wal_limit(path: &std::path::Path, limit: u64) -> SqliteStore {
    SqliteStore::open_with(
        path,
        trailmark_store_sqlite::Options {
            wal_limit_bytes: limit,
            ..trailmark_store_sqlite::Options::default()
        },
    )
    .unwrap()
}

/// A store dropped without `shutdown` (a test's, a command's that ends)
/// has closed by the time the drop returns: no thread of it still runs and
/// writes beside the database (its WAL checkpointer once recreated the
/// `-wal` and `-shm` files after a test had removed its directory), and
/// what it acknowledged is in the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_store_has_closed_its_files_when_the_drop_returns() {
    use trailmark_store::Store;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trailmark.db");
    for round in 0..5u64 {
        let store = SqliteStore::open(&path).unwrap();
        for n in 0..20 {
            store
                .append(vec![trailmark_store::testkit::new_event(
                    "t",
                    round * 20 + n,
                    "update",
                )])
                .await
                .unwrap();
        }
        drop(store);
        for file in ["trailmark.db-wal", "trailmark.db-shm"] {
            assert!(
                !dir.path().join(file).exists(),
                "{file} after round {round}'s drop"
            );
        }
    }
    let store = SqliteStore::open(&path).unwrap();
    let heads = store.heads().await.unwrap();
    let sizes: Vec<_> = heads
        .iter()
        .map(|h| (h.tenant.as_str(), h.size.get()))
        .collect();
    assert!(sizes.contains(&("t", 100)), "{sizes:?}");
}

/// One writer appending single events while readers read: the WAL stays
/// near its limit (it used to grow without bound), and a clean shutdown
/// removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_stays_bounded_under_steady_single_appends_and_shutdown_removes_it() {
    use trailmark_store::Store;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trailmark.db");
    let limit = 4 * 1024 * 1024;
    let store = with_wal_limit(&path, limit);
    let wal = dir.path().join("trailmark.db-wal");
    let tenant = trailmark_core::TenantId::new("t").unwrap();
    let reader = {
        let store = store.clone();
        let tenant = tenant.clone();
        tokio::spawn(async move {
            for _ in 0..2000 {
                let _ = store.entries(&tenant, 0, 50).await;
            }
        })
    };
    let mut largest = 0;
    for n in 0..6000u64 {
        store
            .append(vec![trailmark_store::testkit::new_event("t", n, "update")])
            .await
            .unwrap();
        largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
    }
    reader.await.unwrap();
    // Every commit writes several pages: 6000 of them write hundreds of
    // megabytes of log (it grew past 150 MB here before the bound); the
    // writer resets it between groups once it passes the limit, and the
    // reset file is cut back to it.
    assert!(
        largest <= 2 * limit,
        "the WAL reached {largest} bytes (limit {limit})"
    );
    store.shutdown();
    // Every connection closed: SQLite folded the WAL and removed it.
    assert!(!wal.exists(), "the WAL outlived the shutdown");
    assert!(!dir.path().join("trailmark.db-shm").exists());
    // A closed store refuses reads and writes; the file has every entry.
    assert!(matches!(
        store.heads().await,
        Err(trailmark_store::StoreError::Closed)
    ));
    assert!(matches!(
        store
            .append(vec![trailmark_store::testkit::new_event("t", 0, "update")])
            .await,
        Err(trailmark_store::StoreError::Closed)
    ));
    drop(store);
    let reopened = trailmark_store_sqlite::SqliteStore::open_read_only(&path).unwrap();
    assert_eq!(reopened.heads().await.unwrap()[0].size.get(), 6000);
}

/// A long read of the WAL holds its restart up until it ends; appends go on
/// meanwhile (the writer used to wait its 5 s busy timeout for the read at
/// every group), and once the read ends the WAL is restarted and cut back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_go_on_while_a_long_read_holds_the_wal_and_it_is_restarted_after() {
    use trailmark_store::Store;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trailmark.db");
    let limit = 256 * 1024;
    let store = with_wal_limit(&path, limit);
    let wal = dir.path().join("trailmark.db-wal");
    let size = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    let one = |n| vec![trailmark_store::testkit::new_event("t", n, "update")];
    trailmark_store::testkit::append_range(&store, "t", 0..20).await;
    // A reader in the middle of a long read: it began on the WAL as it is.
    let reader = rusqlite::Connection::open(&path).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let _: i64 = reader
        .query_row("SELECT count(*) FROM entries", [], |r| r.get(0))
        .unwrap();
    // Past the bound, one group at a time: each would try a restart.
    let started = std::time::Instant::now();
    let mut n = 20;
    while size() <= 2 * limit {
        store.append(one(n)).await.unwrap();
        n += 1;
        assert!(n < 20_000, "the WAL did not grow");
    }
    for _ in 0..20 {
        store.append(one(n)).await.unwrap();
        n += 1;
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{} appends under a long read took {:?}",
        n - 20,
        started.elapsed()
    );
    // The read ends: the next restart succeeds and the file is cut back.
    reader.execute_batch("COMMIT").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while size() > limit {
        assert!(
            std::time::Instant::now() < deadline,
            "the WAL stayed at {} bytes after the read ended",
            size()
        );
        store.append(one(n)).await.unwrap();
        n += 1;
    }
    store.shutdown();
}

/// A read that runs past the limit is stopped and named as the caller's to
/// narrow; key lookups keep their own connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_past_its_time_limit_is_stopped_and_keys_still_answer() {
    use trailmark_store::Store;
    let dir = tempfile::tempdir().unwrap();
    let store = trailmark_store_sqlite::SqliteStore::open_with(
        dir.path().join("trailmark.db"),
        trailmark_store_sqlite::Options {
            read_time_limit: std::time::Duration::from_millis(1),
            ..trailmark_store_sqlite::Options::default()
        },
    )
    .unwrap();
    trailmark_store::testkit::a_read_past_its_time_limit_asks_to_narrow_it(&store, &store).await;
    assert!(store.key_by_digest([0; 32]).await.unwrap().is_none());
}

/// A store made before the `request_id` column (schema 5) gets it from each
/// entry's payload when it is opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_stored_before_the_request_id_column_get_theirs_from_their_payloads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trailmark.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        trailmark_store::testkit::append_range(&store, "a", 0..20).await;
        store.shutdown();
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    back_to_partial_strips(&conn);
    conn.execute_batch(
        "DROP TABLE settings; DROP TABLE retention_policies; DROP TABLE holds; DROP TABLE store_flags;
         ALTER TABLE entries DROP COLUMN removed_kind; ALTER TABLE entries DROP COLUMN removed_by;
         DROP TABLE index_redo; DROP INDEX IF EXISTS entries_request;
         ALTER TABLE entries DROP COLUMN request_id; PRAGMA user_version = 5;",
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(&path).unwrap();
    trailmark_store::testkit::entries_from_before_a_migration_have_their_derived_columns(
        &store, "a", 20,
    )
    .await;
}

/// A stored leaf hash or salt of the wrong length is a damaged store:
/// reading the entry says which, instead of passing on a wrong value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaf_hash_or_salt_of_the_wrong_length_is_reported_unreadable() {
    use trailmark_store::{Store, StoreError};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trailmark.db");
    let tenant = trailmark_core::TenantId::new("a").unwrap();
    for (column, said) in [("leaf_hash", "hash"), ("salt", "salt")] {
        let store = SqliteStore::open(&path).unwrap();
        if store.head(&tenant).await.unwrap().get() == 0 {
            trailmark_store::testkit::append_range(&store, "a", 0..3).await;
        }
        assert_eq!(store.raw_entries(&tenant, 0, 3).await.unwrap().len(), 3);
        store.shutdown();
        let conn = rusqlite::Connection::open(&path).unwrap();
        let good: Vec<u8> = conn
            .query_row(
                &format!("SELECT {column} FROM entries WHERE seq = 1"),
                [],
                |r| r.get(0),
            )
            .unwrap();
        conn.execute(
            &format!("UPDATE entries SET {column} = x'0102' WHERE seq = 1"),
            [],
        )
        .unwrap();
        drop(conn);
        let store = SqliteStore::open(&path).unwrap();
        match store.raw_entries(&tenant, 0, 3).await {
            Err(e @ (StoreError::Unreadable(_) | StoreError::Log(_))) => {
                assert!(e.to_string().contains(said), "{column}: {e}");
            }
            other => panic!("{column} of 2 bytes was read: {other:?}"),
        }
        store.shutdown();
        // Put it back for the next column.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute(
            &format!("UPDATE entries SET {column} = ?1 WHERE seq = 1"),
            [good],
        )
        .unwrap();
    }
}

/// Every file in `dir`, read whole, contains `needle`?
fn any_file_contains(dir: &std::path::Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            found.push(path.display().to_string());
        }
    }
    found
}

/// The words the search index holds (FTS5's own vocabulary view), in the
/// index file beside the ledger file `db`.
fn indexed_words(db: &std::path::Path) -> Vec<String> {
    let mut index = db.as_os_str().to_owned();
    index.push("-index");
    let conn = rusqlite::Connection::open(std::path::PathBuf::from(index)).unwrap();
    conn.execute_batch("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, ix_fts, row)")
        .unwrap();
    let mut stmt = conn.prepare("SELECT term FROM temp.vocab").unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Erasure and scrub leave nothing behind in the store's files: not the
/// row (`secure_delete` zeroes freed cells), not the search index (rewritten
/// without the deleted rows' words), not the WAL (truncated), not free
/// pages. The values are first checked to be there, so the check can fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_payload_survives_in_no_file_of_the_data_dir() {
    use trailmark_store::Store;
    use trailmark_store::testkit::{ERASED_VALUES, erase_actor, erasure_event};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trailmark.db");
    let store = SqliteStore::open(&path).unwrap();
    // Many batches, so the search index has segments and merges (whose
    // freed pages must not keep the words either).
    for batch in 0..40u64 {
        let events = (0..50u64).map(|i| erasure_event(batch * 50 + i)).collect();
        store.append(events).await.unwrap();
    }
    // The search index holds the words once the indexer has taken them (it
    // gathers small backlogs for a while first).
    caught_up(&store);
    for needle in ERASED_VALUES {
        assert!(
            !any_file_contains(dir.path(), needle).is_empty(),
            "{needle} is stored to begin with"
        );
    }
    assert!(indexed_words(&path).contains(&"quimbyvertz".to_owned()));
    let erased = erase_actor(&store, "u-erase").await;
    assert_eq!(erased, (0..2000u64).filter(|n| n % 97 == 3).count() as u64);
    store.scrub().await.unwrap();
    for needle in ERASED_VALUES {
        assert_eq!(
            any_file_contains(dir.path(), needle),
            Vec::<String>::new(),
            "{needle} is gone"
        );
    }
    let words = indexed_words(&path);
    assert!(
        !words.contains(&"quimbyvertz".to_owned()),
        "the search index forgot the erased words"
    );
    assert!(words.contains(&"keeper".to_owned()), "and kept the others");
    assert!(
        words.contains(&"erase".to_owned()),
        "the envelope's words (actor id u-erase) stay"
    );
    assert!(
        !any_file_contains(dir.path(), "kept@example.net").is_empty(),
        "other payloads stay"
    );
}

/// A scrub's WAL truncation meets a checkpoint under way on another
/// connection (the WAL checkpointer's PASSIVE copy, every 500 ms, in a
/// server): SQLite fails such a try at once, without the busy handler, so
/// the scrub tries again until the log is free instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrub_waits_out_a_checkpoint_under_way_on_another_connection() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;
    use trailmark_store::Store;
    use trailmark_store::testkit::erasure_event;
    /// Set by the other connection's busy handler: it holds the checkpoint
    /// lock and waits for the reader.
    static WAITING: AtomicBool = AtomicBool::new(false);
    fn wait_for_readers(tries: i32) -> bool {
        WAITING.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(1));
        tries < 10_000
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trailmark.db");
    let store = SqliteStore::open(&path).unwrap();
    let events = (0..200u64).map(erasure_event).collect();
    store.append(events).await.unwrap();
    // A reader's snapshot of the WAL, and a RESTART checkpoint that takes
    // the checkpoint lock and waits (busy handler) for that reader to end.
    let reader = rusqlite::Connection::open(&path).unwrap();
    reader
        .execute_batch("BEGIN; SELECT count(*) FROM entries;")
        .unwrap();
    // Written after the reader's snapshot, so the checkpoint waits for it
    // whether it reads the WAL or (all of it copied already) the file.
    store.append(vec![erasure_event(200)]).await.unwrap();
    let restart = {
        let path = path.clone();
        std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.busy_handler(Some(wait_for_readers)).unwrap();
            // Tried again while the store's own checkpointer holds the lock
            // (busy at once, the handler never called).
            loop {
                let busy = conn
                    .query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get::<_, i64>(0))
                    .unwrap();
                if busy == 0 || WAITING.load(Ordering::SeqCst) {
                    break busy;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !WAITING.load(Ordering::SeqCst) {
        assert!(std::time::Instant::now() < deadline, "the checkpoint waits");
        std::thread::sleep(Duration::from_millis(1));
    }
    // The reader ends 300 ms into the scrub, then the other checkpoint.
    let ends = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        reader.execute_batch("COMMIT").unwrap();
    });
    store
        .scrub()
        .await
        .expect("the scrub waits for the other checkpoint");
    ends.join().unwrap();
    assert_eq!(restart.join().unwrap(), 0, "the other checkpoint finished");
}

/// The bundled SQLite is compiled with the workspace's `.cargo/config.toml`
/// flags: no page-cache group shared by every connection behind one mutex,
/// no mutex around every allocation for memory statistics (the writer, the
/// indexer and the readers waited on each other there: docs/OPERATIONS.md,
/// "SQLite build").
#[test]
fn the_bundled_sqlite_is_built_without_process_wide_locks() {
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    let used = |option: &str| -> bool {
        conn.query_row("SELECT sqlite_compileoption_used(?1)", [option], |r| {
            r.get(0)
        })
        .unwrap()
    };
    assert!(
        !used("ENABLE_MEMORY_MANAGEMENT"),
        "page caches share one mutex: build from the workspace (LIBSQLITE3_FLAGS)"
    );
    assert!(
        used("DEFAULT_MEMSTATUS=0"),
        "allocations take the statistics mutex: build from the workspace (LIBSQLITE3_FLAGS)"
    );
}

/// Every entry a query finds, page after page (tenant and seq), and its
/// counts (from the index file's hourly counts where the query allows).
async fn found(store: &SqliteStore, q: &trailmark_store::Query) -> (Vec<(String, u64)>, String) {
    use trailmark_store::Store;
    let mut q = q.clone();
    q.limit = 37;
    let mut all = Vec::new();
    loop {
        let page = store.query(&q).await.unwrap();
        all.extend(
            page.entries
                .iter()
                .map(|e| (e.columns.tenant.clone(), e.columns.seq)),
        );
        match page.next {
            Some(next) => q.cursor = Some(next),
            None => break,
        }
    }
    q.cursor = None;
    let stats = store.stats(&q).await.unwrap();
    let by_action = store
        .daily_counts(&q, trailmark_store::CountBy::Action)
        .await
        .unwrap();
    (all, format!("{stats:?} {by_action:?}"))
}

/// The mix `testkit::realistic_event(n)` draws its values from.
fn mix(n: u64) -> u64 {
    n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16
}

/// Reads by each filter, for values of one stored event (so that each finds
/// something), with and without a tenant.
/// The values of one stored event (`testkit::realistic_event(1234)`'s
/// draw), so that reads and walks by them find something.
struct Stored {
    m: u64,
    tenant: trailmark_core::TenantId,
    actor: String,
    kind: String,
    id: String,
}

fn stored() -> Stored {
    let m = mix(1234);
    let tenant = match m % 32 {
        0 => "acme",
        1..=15 => "globex",
        16..=27 => "initech",
        _ => "umbrella",
    };
    Stored {
        m,
        tenant: trailmark_core::TenantId::new(tenant).unwrap(),
        actor: format!("user-{}", m % 1000),
        kind: format!("Type{}", (m / 11) % 10),
        id: format!("{}", (m / 13) % 500),
    }
}

fn reads() -> Vec<trailmark_store::Query> {
    use trailmark_store::{Exact, Query};
    let Stored {
        m,
        tenant,
        actor,
        kind,
        id,
    } = stored();
    let one = || Query {
        tenants: vec![tenant.clone()],
        ..Query::default()
    };
    let at = |n: i64| {
        trailmark_core::Timestamp::from_unix_millis(1_700_000_000_000 + n * 259_200).unwrap()
    };
    let window = Query {
        since: Some(at(100)),
        until: Some(at(900)),
        ..one()
    };
    let action = format!("action-{}", (m / 7) % 30);
    let ip = format!("10.{}.{}.1", (m / 19) % 40, (m / 23) % 50);
    vec![
        Query::default(),
        one(),
        one().with(Exact::Actor, &actor),
        Query::default().with(Exact::Actor, &actor),
        one().with(Exact::Action, &action),
        one().with(Exact::ResourceType, &kind),
        one()
            .with(Exact::ResourceType, &kind)
            .with(Exact::ResourceId, id),
        Query::default().with(Exact::Outcome, "success"),
        one().with(Exact::Ip, &ip),
        Query::default().with(Exact::Ip, &ip),
        one().with(Exact::RequestId, format!("r{}", m % 5000)),
        window.clone(),
        window.with(Exact::Action, &action),
    ]
}

fn without_indexer() -> trailmark_store_sqlite::Options {
    trailmark_store_sqlite::Options {
        indexer: false,
        read_time_limit: std::time::Duration::from_millis(300),
        ..trailmark_store_sqlite::Options::default()
    }
}

/// Polls (deadline 60 s) until the indexer covers everything appended.
fn caught_up(store: &SqliteStore) {
    use trailmark_store::Store;
    assert!(store.indexer().is_some(), "the store runs no indexer");
    trailmark_store::testkit::indexed(store);
}

/// Every entry one actor's and one record's walks reach (the removal walk,
/// oldest first, 23 a page), with whether each keeps its payload.
async fn walked(store: &SqliteStore) -> Vec<(u64, bool)> {
    use trailmark_store::{Store, Walk};
    let Stored {
        tenant,
        actor,
        kind,
        id,
        ..
    } = stored();
    let walks = [Walk::Actor(actor), Walk::Resource { kind, id }];
    let mut seen = Vec::new();
    for walk in walks {
        let mut after = None;
        loop {
            let page = store.walk(&tenant, &walk, after, 23).await.unwrap();
            seen.extend(
                page.entries
                    .iter()
                    .map(|w| (w.envelope.seq.get(), w.present)),
            );
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    assert!(!seen.is_empty());
    seen
}

/// Every filter finds the same entries and counts whether they are in the
/// index file, only in the ledger file above its position (the indexer
/// lags, or was killed), or both: an acknowledged entry is never missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_find_every_entry_whether_indexed_yet_or_not() {
    reads_find_every_entry_with_spans_of(trailmark_store_sqlite::SPAN_BITS).await;
}

/// The same with the index file's key tables in spans of 64 positions (a
/// server's hold 2^20): 4,500 entries lie in 71 spans, so pages, cursors,
/// counts and walks read across spans, and one erasure's keys are removed
/// from an older span.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_find_every_entry_across_narrow_index_spans() {
    reads_find_every_entry_with_spans_of(6).await;
}

async fn reads_find_every_entry_with_spans_of(span_bits: u32) {
    use trailmark_store::Store;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trailmark.db");
    let with_indexer = trailmark_store_sqlite::Options {
        index_span_bits: span_bits,
        ..trailmark_store_sqlite::Options::default()
    };
    let without_indexer = trailmark_store_sqlite::Options {
        index_span_bits: span_bits,
        ..without_indexer()
    };
    let append = |store: SqliteStore, range: std::ops::Range<u64>| async move {
        let batch: Vec<_> = range
            .map(trailmark_store::testkit::realistic_event)
            .collect();
        store.append(batch).await.unwrap();
        store
    };
    // Nothing indexed: every read scans the entries.
    let store = append(
        SqliteStore::open_with(&path, without_indexer).unwrap(),
        0..3000,
    )
    .await;
    assert_eq!(store.indexer().unwrap().indexed, 0);
    let mut unindexed = Vec::new();
    for q in reads() {
        let (entries, stats) = found(&store, &q).await;
        assert!(!entries.is_empty(), "{q:?} finds something");
        unindexed.push((entries, stats));
    }
    let unindexed_walks = walked(&store).await;
    drop(store);
    // Indexed: the same answers from the index file.
    let store = SqliteStore::open_with(&path, with_indexer).unwrap();
    caught_up(&store);
    assert_eq!(store.indexer().unwrap().indexed, 3000);
    for (q, expected) in reads().iter().zip(&unindexed) {
        assert_eq!(&found(&store, q).await, expected, "{q:?}");
    }
    assert_eq!(walked(&store).await, unindexed_walks);
    drop(store);
    // Half and half: 3000 indexed, 1500 above the index file's position.
    let store = append(
        SqliteStore::open_with(&path, without_indexer).unwrap(),
        3000..4500,
    )
    .await;
    assert_eq!(store.indexer().unwrap().lag_entries, 1500);
    let mut mixed = Vec::new();
    for q in reads() {
        mixed.push(found(&store, &q).await);
    }
    let mixed_walks = walked(&store).await;
    drop(store);
    let store = SqliteStore::open_with(&path, with_indexer).unwrap();
    caught_up(&store);
    for ((q, expected), before) in reads().iter().zip(&mixed).zip(&unindexed) {
        let now = found(&store, q).await;
        assert_eq!(&now, expected, "{q:?}");
        assert!(now.0.len() >= before.0.len(), "{q:?}");
    }
    assert_eq!(walked(&store).await, mixed_walks);
    // And the tail is found as newest: the first page of everything starts
    // with the last entry appended.
    let page = store
        .query(&trailmark_store::Query {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.entries[0].columns.id,
        trailmark_store::testkit::realistic_event(4499)
            .id()
            .to_string()
    );
    erasing_the_oldest_match_of_an_ip_removes_its_key(&store, &path).await;
}

/// An erasure of an indexed entry (of an old span, with narrow spans)
/// removes its IP key from the index file (polled, deadline 60 s: the
/// indexer applies it after the erasure's commit).
async fn erasing_the_oldest_match_of_an_ip_removes_its_key(
    store: &SqliteStore,
    path: &std::path::Path,
) {
    use trailmark_store::Store;
    let (entries, _) = found(store, &reads()[8]).await;
    let (tenant, seq) = entries.last().unwrap().clone();
    let pos: i64 = rusqlite::Connection::open(path)
        .unwrap()
        .query_row(
            "SELECT pos FROM entries WHERE tenant = ?1 AND seq = ?2",
            rusqlite::params![tenant, seq],
            |r| r.get(0),
        )
        .unwrap();
    let ip_keys = || -> i64 {
        let mut index = path.as_os_str().to_owned();
        index.push("-index");
        rusqlite::Connection::open(std::path::PathBuf::from(index))
            .unwrap()
            .query_row("SELECT count(*) FROM ix_ip WHERE pos = ?1", [pos], |r| {
                r.get(0)
            })
            .unwrap()
    };
    assert_eq!(ip_keys(), 1);
    store
        .erase(
            &trailmark_core::TenantId::new(&tenant).unwrap(),
            vec![seq],
            trailmark_store::Removal::Erased { record: 0 },
        )
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while ip_keys() > 0 {
        assert!(std::time::Instant::now() < deadline, "the IP key stays");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        found(store, &reads()[8]).await.0,
        entries[..entries.len() - 1]
    );
}

/// A search finds every entry acknowledged before it: the few the index
/// file does not hold yet (at most `TAIL_SEARCH_MAX`) are searched by the
/// read itself, at once, with or without an indexer; past that it waits
/// for the indexer, and without one it is refused, naming `q`, once the
/// read time limit passes. A read-only store searches such a short tail
/// too, refuses a longer one, and answers the other filters by scanning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_finds_the_unindexed_tail_waits_past_it_and_is_refused_when_it_cannot() {
    use trailmark_store::testkit::new_event;
    use trailmark_store::{Query, Store, StoreError};
    use trailmark_store_sqlite::TAIL_SEARCH_MAX;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trailmark.db");
    let search = |words: &str| Query {
        q: Some(words.into()),
        limit: 100,
        ..Query::default()
    };
    let store = SqliteStore::open(&path).unwrap();
    for n in 0..20u64 {
        let batch: Vec<_> = (n * 500..(n + 1) * 500)
            .map(trailmark_store::testkit::realistic_event)
            .collect();
        store.append(batch).await.unwrap();
        // Found at once, however far behind the indexer was.
        let page = store
            .query(&search(&format!("word{} shared", mix(n * 500 + 499) % 997)))
            .await
            .unwrap();
        assert!(!page.entries.is_empty());
    }
    caught_up(&store);
    drop(store);
    // No indexer: the index file stays where it is, and what is appended
    // now is above it.
    let store = SqliteStore::open_with(&path, without_indexer()).unwrap();
    store
        .append(vec![new_event("acme", 10_000, "unindexed")])
        .await
        .unwrap();
    let found = |page: trailmark_store::Page| -> Vec<String> {
        page.entries
            .iter()
            .map(|e| e.columns.action.clone())
            .collect()
    };
    let page = store.query(&search("unindexed")).await.unwrap();
    assert_eq!(found(page), ["unindexed"]);
    // Each reader keeps what it indexed and adds what came since.
    store
        .append(vec![new_event("acme", 10_001, "unindexed")])
        .await
        .unwrap();
    for _ in 0..8 {
        let page = store.query(&search("unindexed")).await.unwrap();
        assert_eq!(found(page), ["unindexed", "unindexed"]);
    }
    // Counted too, and narrowed by the other filters as the rest is.
    let stats = store.stats(&search("unindexed")).await.unwrap();
    assert_eq!(stats.total, 2);
    let other_tenant = Query {
        tenants: vec![trailmark_core::TenantId::new("globex").unwrap()],
        ..search("unindexed")
    };
    assert!(store.query(&other_tenant).await.unwrap().entries.is_empty());
    drop(store);
    let read_only = SqliteStore::open_read_only(&path).unwrap();
    let page = read_only.query(&search("unindexed")).await.unwrap();
    assert_eq!(found(page), ["unindexed", "unindexed"]);
    drop(read_only);
    // One more than the read searches itself: it waits for an indexer that
    // never comes, and is refused.
    let store = SqliteStore::open_with(&path, without_indexer()).unwrap();
    let more = u64::try_from(TAIL_SEARCH_MAX).unwrap();
    let batch = (0..more - 1)
        .map(|n| new_event("acme", 10_002 + n, "unindexed"))
        .collect();
    store.append(batch).await.unwrap();
    match store.query(&search("unindexed")).await {
        Err(StoreError::BadRequest {
            field: "q",
            message,
        }) => {
            let behind = format!("{} entries behind", TAIL_SEARCH_MAX + 1);
            assert!(message.contains(&behind), "{message}");
        }
        other => panic!("{other:?}"),
    }
    drop(store);
    let store = SqliteStore::open_read_only(&path).unwrap();
    match store.query(&search("shared")).await {
        Err(StoreError::BadRequest {
            field: "q",
            message,
        }) => {
            assert!(message.contains("trailmark serve"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let newest = store
        .query(&Query::default().with(trailmark_store::Exact::Actor, "user-0"))
        .await
        .unwrap();
    assert!(!newest.entries.is_empty());
    assert!(store.indexer().is_none());
}

/// What a reader keeps of the entries above the index file's position
/// never outlives an erasure: an entry found there by a search, then
/// erased, is not found by its words again, on any reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn words_a_reader_kept_of_the_unindexed_tail_do_not_outlive_an_erasure() {
    use trailmark_store::testkit::new_event;
    use trailmark_store::{Query, Store};
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("trailmark.db")).unwrap();
    let search = |words: &str| Query {
        q: Some(words.into()),
        limit: 100,
        ..Query::default()
    };
    let acme = trailmark_core::TenantId::new("acme").unwrap();
    let batch = (0..1000).map(|n| new_event("acme", n, "update")).collect();
    store.append(batch).await.unwrap();
    store
        .append(vec![new_event("acme", 9_999, "tailed")])
        .await
        .unwrap();
    // Searched on every reader (at once: the indexer gathers for 50 ms).
    let mut seq = None;
    for _ in 0..8 {
        let page = store.query(&search("word9999 tailed")).await.unwrap();
        assert_eq!(page.entries.len(), 1);
        seq = Some(page.entries[0].columns.seq);
    }
    let erased = trailmark_store::Removal::Erased { record: 0 };
    let seqs = vec![seq.unwrap()];
    assert_eq!(store.erase(&acme, seqs, erased).await.unwrap(), 1);
    for _ in 0..8 {
        let page = store.query(&search("word9999")).await.unwrap();
        assert!(page.entries.is_empty(), "{:?}", page.entries);
    }
}

/// The index file is derived: one that belongs to another ledger (copied
/// over it, or left from a database restored from an older backup) is
/// replaced, and the reads answer from this ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_file_of_another_ledger_is_rebuilt() {
    use trailmark_store::Store;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (path_a, path_b) = (a.path().join("trailmark.db"), b.path().join("trailmark.db"));
    for (path, events) in [(&path_a, 0..2000), (&path_b, 5000..9000)] {
        let store = SqliteStore::open(path).unwrap();
        let batch = events
            .map(trailmark_store::testkit::realistic_event)
            .collect();
        store.append(batch).await.unwrap();
        store.shutdown();
    }
    let expected = {
        let store = SqliteStore::open_with(&path_a, without_indexer()).unwrap();
        let mut all = Vec::new();
        for q in reads() {
            all.push(found(&store, &q).await);
        }
        all
    };
    std::fs::copy(
        b.path().join("trailmark.db-index"),
        a.path().join("trailmark.db-index"),
    )
    .unwrap();
    let store = SqliteStore::open(&path_a).unwrap();
    caught_up(&store);
    assert_eq!(store.indexer().unwrap().indexed, 2000);
    for (q, expected) in reads().iter().zip(&expected) {
        assert_eq!(&found(&store, q).await, expected, "{q:?}");
    }
}

/// The search segments of the index file beside the ledger file `db`:
/// FTS5 keeps one `%_idx` row per leaf page, each naming its segment.
fn search_segments(db: &std::path::Path) -> i64 {
    let mut index = db.as_os_str().to_owned();
    index.push("-index");
    let conn = rusqlite::Connection::open(std::path::PathBuf::from(index)).unwrap();
    conn.query_row("SELECT count(DISTINCT segid) FROM ix_fts_idx", [], |r| {
        r.get(0)
    })
    .unwrap()
}

/// One indexer transaction writes its words as one search segment: a
/// segment per statement (a multi-row insert, or an upsert after the words,
/// makes FTS5 flush what it holds) kept FTS5 merging small segments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_batch_writes_its_words_as_one_search_segment() {
    use trailmark_store::Store;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trailmark.db");
    let store = SqliteStore::open_with(&path, without_indexer()).unwrap();
    let batch = (0..600)
        .map(trailmark_store::testkit::realistic_event)
        .collect();
    store.append(batch).await.unwrap();
    store.shutdown();
    // Opened with its indexer, the store indexes the 600 entries in one
    // transaction (fewer than a batch holds).
    let store = SqliteStore::open(&path).unwrap();
    caught_up(&store);
    store.shutdown();
    assert!(!indexed_words(&path).is_empty());
    assert_eq!(search_segments(&path), 1);
}

/// The rows of `node_tail` that hold nodes of partial strips: the others are
/// stale, their strips whole in `node_strips`.
const LIVE_TAIL: &str = "SELECT tenant, level, idx, hash FROM node_tail AS t
    WHERE NOT EXISTS (SELECT 1 FROM node_strips AS s
                      WHERE s.tenant = t.tenant AND s.level = t.level AND s.strip = t.idx / 256)
    ORDER BY tenant, level, idx";

fn live_tail_rows(conn: &rusqlite::Connection) -> i64 {
    count(conn, &format!("SELECT count(*) FROM ({LIVE_TAIL})"))
}

/// Puts a store's tree nodes back as schema 10 kept them: each level's
/// last, partial strip one row of `node_strips`, no `node_tail`.
fn back_to_partial_strips(conn: &rusqlite::Connection) {
    let mut strips: std::collections::BTreeMap<(String, i64, i64), Vec<u8>> =
        std::collections::BTreeMap::new();
    {
        let mut stmt = conn.prepare(LIVE_TAIL).unwrap();
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                ))
            })
            .unwrap();
        for row in rows {
            let (tenant, level, idx, hash) = row.unwrap();
            let data = strips.entry((tenant, level, idx / 256)).or_default();
            assert_eq!(data.len(), usize::try_from(idx % 256).unwrap() * 32);
            data.extend_from_slice(&hash);
        }
    }
    for ((tenant, level, strip), data) in strips {
        conn.execute(
            "INSERT INTO node_strips (tenant, level, strip, data) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![tenant, level, strip, data],
        )
        .unwrap();
    }
    conn.execute_batch("DROP TABLE node_tail").unwrap();
}

fn count(conn: &rusqlite::Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// A store written before the node tail (schema 10) kept each level's last
/// strip as a growing row: read as evidence it gives the same tree, and
/// opened for writing its partial strips move into the tail, node by node,
/// and the tree grows on from them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_strips_of_schema_10_move_into_the_node_tail_and_the_tree_grows_on() {
    use trailmark_store::testkit::the_stored_tree_matches_its_entries;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trailmark.db");
    let sizes = [1, 255, 256, 257, 511, 512, 600];
    {
        let store = SqliteStore::open(&path).unwrap();
        for range in [0..1, 1..300, 300..600] {
            trailmark_store::testkit::append_range(&store, "a", range).await;
        }
        trailmark_store::testkit::append_range(&store, "b", 0..5).await;
        store.shutdown();
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    let in_tail = live_tail_rows(&conn);
    // 600 leaves: 88 + 44 + 150 + 75 + 37 + 18 + 9 + 4 + 2 + 1 nodes of
    // partial strips in "a" (levels 0 to 9), 5 + 2 + 1 in "b" (5 leaves).
    assert_eq!(in_tail, 428 + 8);
    back_to_partial_strips(&conn);
    conn.execute_batch("PRAGMA user_version = 10").unwrap();
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM node_strips WHERE length(data) < 8192"
        ),
        10 + 3
    );
    drop(conn);

    let evidence = SqliteStore::open_read_only(&path).unwrap();
    the_stored_tree_matches_its_entries(&evidence, "a", &sizes).await;
    the_stored_tree_matches_its_entries(&evidence, "b", &[1, 4, 5]).await;
    evidence.shutdown();
    drop(evidence);

    let store = SqliteStore::open(&path).unwrap();
    the_stored_tree_matches_its_entries(&store, "a", &sizes).await;
    trailmark_store::testkit::append_range(&store, "a", 600..700).await;
    the_stored_tree_matches_its_entries(&store, "a", &[1, 300, 512, 600, 700]).await;
    the_stored_tree_matches_its_entries(&store, "b", &[1, 4, 5]).await;
    store.shutdown();
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM node_strips WHERE length(data) < 8192"
        ),
        0,
        "a partial strip stayed in node_strips"
    );
    // 700 leaves: 188 + 94 + 175 + 87 + 43 + 21 + 10 + 5 + 2 + 1 in "a".
    assert_eq!(live_tail_rows(&conn), 626 + 8);
}

/// Puts a store's node tail back as schema 11 kept it: one row a node of a
/// partial strip, keyed by its index, no slots.
fn back_to_tail_without_slots(conn: &rusqlite::Connection) {
    conn.execute_batch(&format!(
        "CREATE TABLE node_tail_11 (tenant TEXT NOT NULL, level INTEGER NOT NULL,
             idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (tenant, level, idx))
             WITHOUT ROWID;
         INSERT INTO node_tail_11 SELECT * FROM ({LIVE_TAIL});
         DROP TABLE node_tail;
         ALTER TABLE node_tail_11 RENAME TO node_tail;
         PRAGMA user_version = 11;"
    ))
    .unwrap();
}

/// A store written with the node tail of schema 11 (a row a node, deleted
/// when its strip fills) reads as evidence to the same tree, and opened for
/// writing its tail moves into slots and the tree grows on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_tail_of_schema_11_is_read_as_evidence_and_moves_into_slots() {
    use trailmark_store::testkit::{append_range, the_stored_tree_matches_its_entries};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trailmark.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        for range in [0..1, 1..300, 300..600] {
            append_range(&store, "a", range).await;
        }
        append_range(&store, "b", 0..5).await;
        store.shutdown();
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    back_to_tail_without_slots(&conn);
    assert_eq!(count(&conn, "SELECT count(*) FROM node_tail"), 428 + 8);
    drop(conn);

    let evidence = SqliteStore::open_read_only(&path).unwrap();
    the_stored_tree_matches_its_entries(&evidence, "a", &[1, 255, 256, 257, 511, 512, 600]).await;
    the_stored_tree_matches_its_entries(&evidence, "b", &[1, 4, 5]).await;
    evidence.shutdown();
    drop(evidence);

    let store = SqliteStore::open(&path).unwrap();
    the_stored_tree_matches_its_entries(&store, "a", &[1, 300, 600]).await;
    append_range(&store, "a", 600..700).await;
    the_stored_tree_matches_its_entries(&store, "a", &[1, 300, 512, 600, 700]).await;
    the_stored_tree_matches_its_entries(&store, "b", &[1, 4, 5]).await;
    store.shutdown();
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(live_tail_rows(&conn), 626 + 8);
}

/// Appends free no page of the ledger file: each level's tail rows are
/// written over in place when the next strip begins, not deleted. (A freed
/// page taken back by a later split is swapped into place through the page
/// number at 1 GiB, and every commit after that walked the writer's whole
/// page cache while the file was smaller: bench/results/ingest.md.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_free_no_page_of_the_ledger_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trailmark.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        let reader = rusqlite::Connection::open(&path).unwrap();
        // Small batches, as single events come: every strip of levels 0
        // to 3 fills at least once, tail rows written over many times. No
        // commit frees a page: the free pages the schema's migrations left
        // are taken, never added to (checked after every commit: a page
        // freed and taken back later would not show at the end).
        let mut free = count(&reader, "PRAGMA freelist_count");
        for first in (0..3_000).step_by(3) {
            trailmark_store::testkit::append_range(&store, "a", first..first + 3).await;
            let now = count(&reader, "PRAGMA freelist_count");
            assert!(
                now <= free,
                "{now} free pages after {} leaves, {free} before",
                first + 3
            );
            free = now;
        }
        trailmark_store::testkit::the_stored_tree_matches_its_entries(
            &store,
            "a",
            &[1, 256, 2_047, 2_048, 3_000],
        )
        .await;
        store.shutdown();
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    // 3,000 leaves: 184 + 220 + 238 + 119 + 187 + 93 + 46 + 23 + 11 + 5 + 2 + 1.
    assert_eq!(live_tail_rows(&conn), 1_129);
}

/// A span width past the widest is refused when the store opens, naming the
/// option, before any file is created.
#[test]
fn a_span_width_wider_than_spans_can_be_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trailmark.db");
    let err = SqliteStore::open_with(
        &path,
        trailmark_store_sqlite::Options {
            index_span_bits: 41,
            ..trailmark_store_sqlite::Options::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            &err,
            trailmark_store::StoreError::BadRequest {
                field: "index_span_bits",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!path.exists());
}
