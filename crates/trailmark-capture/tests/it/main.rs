//! Capture against a real PostgreSQL: each test makes its own database.
//! `TRAILMARK_TEST_PG` is a libpq connection string for a superuser
//! (default `host=127.0.0.1 user=postgres`); `scripts/test` makes sure one runs.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod axum_layer;
mod capture;
mod drain;
mod modes;
mod options;
mod revert;

use std::sync::atomic::{AtomicU32, Ordering};

use tokio_postgres::{Client, NoTls};

static NEXT: AtomicU32 = AtomicU32::new(0);

fn admin_url() -> String {
    std::env::var("TRAILMARK_TEST_PG").unwrap_or_else(|_| "host=127.0.0.1 user=postgres".into())
}

/// A superuser connection string of a server with `wal_level = logical`
/// (`TRAILMARK_TEST_PG_LOGICAL`; `scripts/test` makes and starts one).
fn logical_url() -> String {
    std::env::var("TRAILMARK_TEST_PG_LOGICAL")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5439 user=postgres".into())
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
    admin: String,
    pub client: Client,
}

impl TestDb {
    pub(crate) async fn new() -> Self {
        Self::on(admin_url()).await
    }

    /// A fresh database on the server with `wal_level = logical`.
    pub(crate) async fn logical() -> Self {
        Self::on(logical_url()).await
    }

    /// A fresh database on the server with `wal_level = logical`, made
    /// with `options` (`ENCODING 'LATIN1' TEMPLATE template0 …`).
    pub(crate) async fn logical_with(options: &str) -> Self {
        Self::made(logical_url(), options).await
    }

    async fn on(admin_url: String) -> Self {
        Self::made(admin_url, "").await
    }

    async fn made(admin_url: String, options: &str) -> Self {
        let name = format!(
            "tm_capture_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let admin = connect(&format!("{admin_url} dbname=postgres")).await;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .await
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name} {options}"))
            .await
            .unwrap();
        let client = connect(&format!("{admin_url} dbname={name}")).await;
        Self {
            name,
            admin: admin_url,
            client,
        }
    }

    /// The connection string of this database.
    pub(crate) fn url(&self) -> String {
        format!("{} dbname={}", self.admin, self.name)
    }

    /// The name captured ids derive from: the system identifier and the
    /// database (`7312…/shop`).
    pub(crate) async fn source_name(&self) -> String {
        self.client
            .query_one(
                "SELECT system_identifier::text || '/' || current_database() FROM pg_control_system()",
                &[],
            )
            .await
            .unwrap()
            .get(0)
    }

    /// The number a `SELECT count(*) …` answers.
    pub(crate) async fn count(&self, sql: &str) -> i64 {
        self.client.query_one(sql, &[]).await.unwrap().get(0)
    }

    /// The role this test's connection signed in as: the actor of a change
    /// made with no context (`session_user`).
    pub(crate) async fn session_user(&self) -> String {
        self.client
            .query_one("SELECT session_user::text", &[])
            .await
            .unwrap()
            .get(0)
    }

    /// A role of this database's own (`<database>_login`, dropped with
    /// it), made with `attributes` (`LOGIN REPLICATION`, say), and the
    /// connection string that signs in as it.
    pub(crate) async fn role(&self, attributes: &str) -> (String, String) {
        let role = format!("{}_login", self.name);
        self.client
            .batch_execute(&format!("CREATE ROLE {role} {attributes}"))
            .await
            .unwrap_or_else(|e| panic!("cannot make role {role}: {e}"));
        let url = format!("{} user={role}", self.url());
        (role, url)
    }

    /// A superuser role of this database's own ([`Self::role`]) that must
    /// sign in with `password`: a member of `trailmark_password_login`,
    /// whom the logical cluster `scripts/logical-cluster` makes asks for a
    /// password over TCP. Its name; the test fails, saying what to set up,
    /// when the server lets it in without one (or when the group is missing).
    pub(crate) async fn login_role(&self, password: &str) -> String {
        let (role, url) = self
            .role(&format!(
                "LOGIN SUPERUSER REPLICATION PASSWORD '{}' IN ROLE trailmark_password_login",
                password.replace('\'', "''")
            ))
            .await;
        let without = format!("{url} password=");
        assert!(
            tokio_postgres::connect(&without, NoTls).await.is_err(),
            "{} lets {role} in without a password: put `host all +trailmark_password_login 127.0.0.1/32 scram-sha-256` first in its pg_hba.conf (scripts/logical-cluster does for its own cluster)",
            self.admin
        );
        role
    }

    /// A second connection to the same database (another application server).
    pub(crate) async fn another(&self) -> Client {
        connect(&format!("{} dbname={}", self.admin, self.name)).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let admin_url = self.admin.clone();
        // Async work cannot run in Drop; a short-lived runtime on its own thread can.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                // A subscription keeps its database from being dropped
                // (FORCE or not): disabled, parted from its slot (the
                // publisher's database drops it), dropped.
                if let Ok((own, connection)) =
                    tokio_postgres::connect(&format!("{admin_url} dbname={name}"), NoTls).await
                {
                    tokio::spawn(connection);
                    let _ = own
                        .batch_execute(
                            "DO $$ DECLARE s name; BEGIN
                                 FOR s IN SELECT subname FROM pg_subscription
                                          WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                                 LOOP
                                     EXECUTE format('ALTER SUBSCRIPTION %I DISABLE', s);
                                     EXECUTE format('ALTER SUBSCRIPTION %I SET (slot_name = NONE)', s);
                                     EXECUTE format('DROP SUBSCRIPTION %I', s);
                                 END LOOP;
                             END $$",
                        )
                        .await;
                }
                let admin = connect(&format!("{admin_url} dbname=postgres")).await;
                // A WAL-mode install leaves a slot, which keeps its
                // database from being dropped. A drainer the test stopped
                // may still hold it for a moment (its walsender ends after
                // the connection closes): ended, then dropped, polled until
                // gone (at most 10 s).
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                loop {
                    let _ = admin
                        .execute(
                            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
                             WHERE database = $1 AND active",
                            &[&name],
                        )
                        .await;
                    let _ = admin
                        .execute(
                            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
                             WHERE database = $1 AND NOT active",
                            &[&name],
                        )
                        .await;
                    let left: i64 = admin
                        .query_one(
                            "SELECT count(*) FROM pg_replication_slots WHERE database = $1",
                            &[&name],
                        )
                        .await
                        .map_or(0, |row| row.get(0));
                    if left == 0 || std::time::Instant::now() > deadline {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                let _ = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
                // The role a test may have made for it ([`TestDb::login_role`]).
                let _ = admin
                    .batch_execute(&format!("DROP ROLE IF EXISTS {name}_login"))
                    .await;
            });
        })
        .join();
    }
}

/// A sink that keeps what it was sent, in order, and how many rows each
/// batch held (stands in for the ledger where the test is about the outbox
/// side; the end-to-end tests drain into a real server).
#[derive(Default)]
pub(crate) struct Collect(
    pub std::sync::Mutex<Vec<serde_json::Value>>,
    pub std::sync::Mutex<Vec<usize>>,
);

impl trailmark_capture::Sink for Collect {
    type Batch = Vec<trailmark_core::Event>;

    fn batch(
        &self,
        events: Vec<trailmark_core::Event>,
    ) -> Result<Self::Batch, trailmark_capture::SendError> {
        Ok(events)
    }

    async fn send(
        &self,
        events: &mut Self::Batch,
        _: Option<&trailmark_capture::After>,
    ) -> Result<Vec<String>, trailmark_capture::SendError> {
        self.1.lock().unwrap().push(events.len());
        // As an HTTP sink sends them.
        self.0.lock().unwrap().extend(
            events
                .iter()
                .map(|e| serde_json::Value::Object(e.to_json())),
        );
        Ok(Vec::new())
    }
}

/// Drains everything captured so far into a [`Collect`] (`--once`,
/// `batch` rows at a time) and answers the events as sent.
pub(crate) async fn drained_once(db: &TestDb, batch: i64) -> Vec<serde_json::Value> {
    drained_once_reporting(db, batch, &|_| {}).await
}

/// [`drained_once`], telling `report` of the drain's progress.
pub(crate) async fn drained_once_reporting(
    db: &TestDb,
    batch: i64,
    report: &(dyn Fn(trailmark_capture::Progress) + Send + Sync),
) -> Vec<serde_json::Value> {
    let sink = Collect::default();
    let options = trailmark_capture::DrainOptions {
        once: true,
        batch,
        ..trailmark_capture::DrainOptions::default()
    };
    trailmark_capture::drain(&db.url(), &sink, &options, report)
        .await
        .unwrap();
    sink.0.into_inner().unwrap()
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
