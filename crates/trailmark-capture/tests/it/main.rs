//! Capture against a real PostgreSQL: each test makes its own database.
//! `TRAILMARK_TEST_PG` is a libpq connection string for a superuser
//! (default `host=127.0.0.1 user=postgres`); `scripts/test` makes sure one runs.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod axum_layer;
mod capture;
mod drain;
mod options;
mod revert;

use std::sync::atomic::{AtomicU32, Ordering};

use tokio_postgres::{Client, NoTls};

static NEXT: AtomicU32 = AtomicU32::new(0);

fn admin_url() -> String {
    std::env::var("TRAILMARK_TEST_PG").unwrap_or_else(|_| "host=127.0.0.1 user=postgres".into())
}

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!("cannot reach PostgreSQL at {url:?} (set TRAILMARK_TEST_PG): {e}")
        });
    tokio::spawn(connection);
    client
}

/// A fresh database, dropped when the test ends.
pub(crate) struct TestDb {
    name: String,
    pub client: Client,
}

impl TestDb {
    pub(crate) async fn new() -> Self {
        let name = format!(
            "tm_capture_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let admin = connect(&format!("{} dbname=postgres", admin_url())).await;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .await
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let client = connect(&format!("{} dbname={name}", admin_url())).await;
        Self { name, client }
    }

    /// The connection string of this database.
    pub(crate) fn url(&self) -> String {
        format!("{} dbname={}", admin_url(), self.name)
    }

    /// A second connection to the same database (another application server).
    pub(crate) async fn another(&self) -> Client {
        connect(&format!("{} dbname={}", admin_url(), self.name)).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Async work cannot run in Drop; a short-lived runtime on its own thread can.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let admin = connect(&format!("{} dbname=postgres", admin_url())).await;
                let _ = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            });
        })
        .join();
    }
}

/// A sink that keeps what it was sent, in order (stands in for the ledger
/// where the test is about the outbox side; the end-to-end tests drain into
/// a real server).
#[derive(Default)]
pub(crate) struct Collect(pub std::sync::Mutex<Vec<serde_json::Value>>);

impl trailmark_capture::Sink for Collect {
    async fn send(
        &self,
        events: Vec<trailmark_capture::Captured>,
    ) -> Result<Vec<String>, trailmark_capture::SendError> {
        self.0
            .lock()
            .unwrap()
            .extend(events.into_iter().map(|c| c.json));
        Ok(Vec::new())
    }
}

/// Polls `check` every 20 ms until it holds or `seconds` pass.
pub(crate) async fn eventually<F, Fut>(seconds: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
