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
