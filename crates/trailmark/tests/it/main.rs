//! End-to-end tests: a real `trailmark serve` process, real HTTP, the real
//! `SQLite` file, and the `trailmark` CLI.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod alerts;
mod auth;
mod bad_input;
mod capture;
mod client;
mod crash;
mod ordered;
mod retention;
mod shared_pg;
mod story;
mod tamper;
mod threats;
mod tiles;
mod witness;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_trailmark");

/// Polls `check` until it returns `Some`, or panics after `deadline`.
pub(crate) fn wait_for<T>(
    what: &str,
    deadline: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A TLS certificate for 127.0.0.1 and its key (PEM files in `dir`), made
/// by Debian's `openssl`: its own authority, one no built-in root signed.
pub(crate) fn self_signed(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=trailmark-test"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl (Debian's package) makes a test certificate");
    assert!(made.success());
    (cert, key)
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running server over a data dir.
pub(crate) struct Server {
    child: Option<Child>,
    pub url: String,
    pub admin: String,
}

impl Server {
    pub(crate) fn start(dir: &Path) -> Self {
        Self::start_with(dir, &[])
    }

    pub(crate) fn start_with(dir: &Path, extra: &[&str]) -> Self {
        Self::start_logged(dir, extra, Stdio::null())
    }

    /// A server whose log (stderr) goes to `log`.
    pub(crate) fn start_logged(dir: &Path, extra: &[&str], log: impl Into<Stdio>) -> Self {
        Self::start_on(dir, free_port(), extra, log)
    }

    /// A server on the data dir and the address (`url`) of one that stopped.
    pub(crate) fn restart_on(dir: &Path, url: &str) -> Self {
        let port = url.rsplit(':').next().unwrap().parse().unwrap();
        Self::start_on(dir, port, &[], Stdio::null())
    }

    fn start_on(dir: &Path, port: u16, extra: &[&str], log: impl Into<Stdio>) -> Self {
        let child = Command::new(BIN)
            .args(["serve", "--data-dir"])
            .arg(dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let mut server = Self {
            child: Some(child),
            url,
            admin: String::new(),
        };
        wait_for(
            "the server to answer /healthz",
            Duration::from_secs(20),
            || {
                server
                    .raw("GET", "/healthz", None, None)
                    .ok()
                    .filter(|(s, _)| *s == 200)
            },
        );
        std::fs::read_to_string(dir.join("bootstrap-admin.key"))
            .unwrap()
            .trim()
            .clone_into(&mut server.admin);
        server
    }

    fn raw(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<(u16, String), ureq::Error> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let url = format!("{}{path}", self.url);
        let auth = key.map(|k| format!("Bearer {k}"));
        let mut response = match (method, body) {
            ("PUT", Some((ct, bytes))) => {
                let mut r = agent.put(&url).header("Content-Type", ct);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.send(&bytes[..])?
            }
            ("POST", Some((ct, bytes))) => {
                let mut r = agent.post(&url).header("Content-Type", ct);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.send(&bytes[..])?
            }
            ("DELETE", _) => {
                let mut r = agent.delete(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()?
            }
            _ => {
                let mut r = agent.get(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()?
            }
        };
        let status = response.status().as_u16();
        Ok((status, response.body_mut().read_to_string()?))
    }

    /// GET with a key; the body parsed as JSON when it is JSON.
    pub(crate) fn get(&self, path: &str, key: &str) -> (u16, Value) {
        let (status, body) = self.raw("GET", path, Some(key), None).unwrap();
        (
            status,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        )
    }

    pub(crate) fn post(&self, path: &str, key: &str, body: &Value) -> (u16, Value) {
        self.post_bytes(path, key, "application/json", body.to_string().into_bytes())
    }

    pub(crate) fn post_bytes(
        &self,
        path: &str,
        key: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let (status, text) = self
            .raw("POST", path, Some(key), Some((content_type, body)))
            .unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub(crate) fn put(&self, path: &str, key: &str, body: &Value) -> (u16, Value) {
        let (status, text) = self
            .raw(
                "PUT",
                path,
                Some(key),
                Some(("application/json", body.to_string().into_bytes())),
            )
            .unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub(crate) fn delete(&self, path: &str, key: &str) -> (u16, Value) {
        let (status, text) = self.raw("DELETE", path, Some(key), None).unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Creates a key through the API.
    pub(crate) fn key(&self, scopes: &str, tenant: Option<&str>) -> String {
        let (status, body) = self.post(
            "/v1/keys",
            &self.admin,
            &json!({"scopes": scopes, "tenant": tenant, "name": "test"}),
        );
        assert_eq!(status, 201, "{body}");
        body["key"].as_str().unwrap().to_owned()
    }

    /// The tenant's verifier key line, as `GET /v1/verifier-key` serves it.
    pub(crate) fn verifier_key(&self, tenant: &str) -> String {
        let (_, body) = self.get(&format!("/v1/verifier-key?tenant={tenant}"), &self.admin);
        body.as_str().unwrap().trim().to_owned()
    }

    /// Waits until the tenant's latest checkpoint covers `size` entries.
    pub(crate) fn wait_checkpoint(&self, tenant: &str, size: u64) -> String {
        wait_for(
            &format!("a checkpoint of {tenant} at size {size}"),
            Duration::from_secs(10),
            || {
                let (status, body) =
                    self.get(&format!("/v1/checkpoint?tenant={tenant}"), &self.admin);
                let note = body.as_str()?.to_owned();
                let signed: u64 = note.lines().nth(1)?.parse().ok()?;
                (status == 200 && signed >= size).then_some(note)
            },
        )
    }

    /// SIGKILL: no clean shutdown at all.
    pub(crate) fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM and wait: the server signs a final checkpoint and exits.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = i32::try_from(child.id()).unwrap();
            Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .unwrap();
            let status = wait_for("the server to exit", Duration::from_secs(20), || {
                child.try_wait().unwrap()
            });
            assert!(status.success(), "server exited with {status}");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A copy of a (stopped server's) data dir, as an attacker or a backup
/// would take it.
pub(crate) fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.path().join(entry.file_name())).unwrap();
    }
    to
}

/// Runs the CLI.
pub(crate) fn cli(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// What a CLI run said: its standard output, then its standard error.
pub(crate) fn said(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Runs the CLI, which must succeed; its standard output.
pub(crate) fn run_ok(args: &[&str]) -> String {
    let out = cli(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts the CLI run succeeded, showing what it said when not.
pub(crate) fn succeeded(out: &Output) {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `capture pg install` of `tables` in `source` in `mode`, with `extra`
/// options; its standard output.
pub(crate) fn install(source: &str, mode: &str, tables: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "capture", "pg", "install", "--source", source, "--mode", mode, "--tables", tables,
    ];
    args.extend(extra);
    run_ok(&args)
}

/// `capture pg run --once` from `source` into `server`.
pub(crate) fn drain_once(source: &str, server: &Server) -> Output {
    cli(&[
        "capture",
        "pg",
        "run",
        "--once",
        "--source",
        source,
        "--server",
        &server.url,
        "--key",
        &server.admin,
    ])
}

pub(crate) fn verify_dir(dir: &Path) -> (bool, String) {
    let out = cli(&["verify", "--data-dir", dir.to_str().unwrap()]);
    (out.status.success(), crate::said(&out))
}

/// A minimal valid event.
pub(crate) fn event(tenant: &str, actor: &str, action: &str) -> Value {
    json!({"tenant": tenant, "actor": {"id": actor, "type": "user"}, "action": action})
}

/// The one value `sql` selects in the database at `url`.
pub(crate) async fn pg_value<T: tokio_postgres::types::FromSqlOwned>(url: &str, sql: &str) -> T {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// A scratch PostgreSQL database for one test (`TRAILMARK_TEST_PG`, default
/// `host=127.0.0.1 user=postgres`), dropped at the end.
pub(crate) struct PgDb {
    rt: tokio::runtime::Runtime,
    server: String,
    pub name: String,
}

impl PgDb {
    pub(crate) fn new(prefix: &str) -> Self {
        Self::on(
            std::env::var("TRAILMARK_TEST_PG")
                .unwrap_or_else(|_| "host=127.0.0.1 user=postgres".into()),
            prefix,
        )
    }

    /// A database on the server with `wal_level = logical`
    /// (`TRAILMARK_TEST_PG_LOGICAL`; `scripts/test` makes and starts one).
    pub(crate) fn logical(prefix: &str) -> Self {
        Self::on(
            std::env::var("TRAILMARK_TEST_PG_LOGICAL")
                .unwrap_or_else(|_| "host=127.0.0.1 port=5439 user=postgres".into()),
            prefix,
        )
    }

    fn on(server: String, prefix: &str) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let db = Self {
            rt,
            server,
            name: format!("{prefix}_{}", std::process::id()),
        };
        db.sql_in("postgres", &format!("DROP DATABASE IF EXISTS {}", db.name));
        db.sql_in("postgres", &format!("CREATE DATABASE {}", db.name));
        db
    }

    /// The connection string the CLI's --source takes.
    pub(crate) fn source(&self) -> String {
        format!("{} dbname={}", self.server, self.name)
    }

    fn sql_in(&self, dbname: &str, sql: &str) {
        self.rt.block_on(async {
            let url = format!("{} dbname={dbname}", self.server);
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client.batch_execute(sql).await.unwrap();
        });
    }

    pub(crate) fn sql(&self, sql: &str) {
        self.sql_in(&self.name, sql);
    }

    /// The one text value `sql` selects.
    pub(crate) fn text(&self, sql: &str) -> String {
        self.rt.block_on(pg_value(&self.source(), sql))
    }

    /// A copy of this database (nothing may be connected to it).
    pub(crate) fn copy_as(&self, prefix: &str) -> Self {
        let copy = Self::new(prefix);
        copy.sql_in("postgres", &format!("DROP DATABASE {}", copy.name));
        copy.sql_in(
            "postgres",
            &format!("CREATE DATABASE {} TEMPLATE {}", copy.name, self.name),
        );
        copy
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        // A WAL-mode install leaves a slot, which keeps the database from
        // being dropped; a server stopped a moment ago may still hold it
        // (its walsender has not yet seen the connection end: "replication
        // slot … is active", a fresh-clone CI failure). Its walsender is
        // ended and the slot dropped once free: polled, at most 10 s.
        let (server, name) = (self.server.clone(), self.name.clone());
        self.rt.block_on(async move {
            let url = format!("{server} dbname=postgres");
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                client
                    .batch_execute(&format!(
                        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
                         WHERE database = '{name}' AND active_pid IS NOT NULL;
                         SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
                         WHERE database = '{name}' AND NOT active"
                    ))
                    .await
                    .unwrap();
                let left: i64 = client
                    .query_one(
                        "SELECT count(*) FROM pg_replication_slots WHERE database = $1",
                        &[&name],
                    )
                    .await
                    .unwrap()
                    .get(0);
                if left == 0 {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the replication slots of {name} are still held after 10 s"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        self.sql_in(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}
