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

/// One writer appending single events while readers read: the WAL stays
/// near its limit (it used to grow without bound), and a clean shutdown
/// leaves it empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_stays_bounded_under_steady_single_appends_and_shutdown_truncates_it() {
    use trailmark_store::Store;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trailmark.db");
    let limit = 4 * 1024 * 1024;
    let store = trailmark_store_sqlite::SqliteStore::open_with(
        &path,
        trailmark_store_sqlite::Options {
            wal_limit_bytes: limit,
            ..trailmark_store_sqlite::Options::default()
        },
    )
    .unwrap();
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
        if n % 200 == 0 {
            largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
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
    assert_eq!(std::fs::metadata(&wal).map_or(0, |m| m.len()), 0);
    assert_eq!(store.heads().await.unwrap()[0].size.get(), 6000);
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
    use trailmark_store::Store;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trailmark.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        let batch = (0..20)
            .map(|n| trailmark_store::testkit::new_event("a", n, "update"))
            .collect();
        store.append(batch).await.unwrap();
        store.shutdown();
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "DROP TABLE settings; DROP TABLE retention_policies; DROP TABLE holds; DROP TABLE store_flags;
         ALTER TABLE entries DROP COLUMN removed_kind; ALTER TABLE entries DROP COLUMN removed_by;
         DROP INDEX entries_request; ALTER TABLE entries DROP COLUMN request_id; PRAGMA user_version = 5;",
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(&path).unwrap();
    trailmark_store::testkit::entries_from_before_a_migration_have_their_derived_columns(
        &store, "a", 20,
    )
    .await;
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

/// The words the search index holds (FTS5's own vocabulary view).
fn indexed_words(db: &std::path::Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, entries_fts, row)")
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
