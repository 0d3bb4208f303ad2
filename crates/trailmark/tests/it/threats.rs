//! The tamper matrix of docs/THREATS.md, on both ledgers (the embedded
//! store and PostgreSQL): a hostile operator edits a copy of the trail; for
//! each edit, which detectors catch it is asserted exactly, and the failure
//! names what changed.
//!
//! Detectors (each includes the ones before it):
//! - plain: `verify --data-dir` (or `--database`) with nothing else;
//! - key: plus `--verifier-key` for every tenant, kept apart from the data;
//! - trust: plus `--trust` of acme's checkpoint saved at size 20;
//! - state: plus `--state` from a monitor run on the genuine trail.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde_json::json;

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::{PgDb, Server, cli, copy_dir, drain_once, event, install, succeeded, wait_for};

/// One hostile edit's verdicts: (plain, key, trust, state), true = caught.
type Caught = [bool; 4];

/// Where a trail lives: a data dir and, for PostgreSQL, its database.
struct Trail {
    dir: tempfile::TempDir,
    db: Option<PgDb>,
}

static COPIES: AtomicUsize = AtomicUsize::new(0);

impl Trail {
    fn new(postgres: bool) -> Self {
        let n = COPIES.fetch_add(1, Ordering::Relaxed);
        Self {
            dir: tempfile::tempdir().unwrap(),
            db: postgres.then(|| PgDb::new(&format!("tm_threats_{n}"))),
        }
    }

    /// The arguments that point `verify` at it.
    fn source(&self) -> Vec<String> {
        match &self.db {
            Some(db) => vec!["--database".into(), db.source()],
            None => vec![
                "--data-dir".into(),
                self.dir.path().to_str().unwrap().into(),
            ],
        }
    }

    /// A copy, as a backup (or an attacker) takes it of a stopped trail.
    fn copy(&self) -> Self {
        let n = COPIES.fetch_add(1, Ordering::Relaxed);
        Self {
            dir: copy_dir(self.dir.path()),
            db: self
                .db
                .as_ref()
                .map(|db| db.copy_as(&format!("tm_threats_{n}"))),
        }
    }

    /// Runs the edit of this ledger's kind.
    fn tamper(&self, sqlite: &str, postgres: &str) {
        if let Some(db) = &self.db {
            db.sql(postgres);
        } else {
            let conn = Connection::open(self.dir.path().join("trailmark.db")).unwrap();
            conn.execute_batch(sqlite).unwrap();
        }
    }
}

struct Fixture {
    data: Trail,
    /// acme at 10 entries (globex complete), taken before the last 10.
    early: Trail,
    keys: tempfile::TempDir,
    vkeys: Vec<String>,
    trust: PathBuf,
    state: PathBuf,
}

fn key_file(keys: &Path) -> PathBuf {
    keys.join("signing.seed")
}

fn post(server: &Server, tenant: &str, n: u64, actor: &str) {
    let mut e = event(tenant, actor, "update");
    e["actor"]["name"] = json!(format!("person {n}"));
    e["context"] = json!({"ip": "203.0.113.7"});
    assert_eq!(server.post("/v1/events", &server.admin, &e).0, 201);
}

/// Waits until `_system` records a checkpoint of `tenant` at `size`.
fn wait_reference(server: &Server, tenant: &str, size: u64) {
    wait_for(
        &format!("_system to record {tenant}'s checkpoint at {size}"),
        std::time::Duration::from_secs(10),
        || {
            let (_, body) = server.get(
                "/v1/events?tenant=_system&action=trailmark.checkpoint&limit=100",
                &server.admin,
            );
            body["events"].as_array()?.iter().find(|e| {
                e["resource"]["id"] == tenant
                    && e["metadata"]["note"]
                        .as_str()
                        .and_then(|n| n.lines().nth(1))
                        == Some(size.to_string().as_str())
            })?;
            Some(())
        },
    );
}

fn start(trail: &Trail, keys: &Path) -> Server {
    let key = key_file(keys);
    let mut args = vec!["--signing-key", key.to_str().unwrap()];
    let url = trail.db.as_ref().map(PgDb::source);
    if let Some(url) = &url {
        args.extend(["--database", url]);
    }
    Server::start_with(trail.dir.path(), &args)
}

/// Posts acme's events `acme` and globex's first five, and waits for their
/// checkpoints.
fn populate(server: &Server, acme: std::ops::Range<u64>) {
    for n in acme.clone() {
        post(server, "acme", n, &format!("user-{n}"));
    }
    for n in 0..5 {
        post(server, "globex", n, "g");
    }
    server.wait_checkpoint("acme", acme.end);
    server.wait_checkpoint("globex", 5);
}

fn fixture(postgres: bool) -> Fixture {
    let data = Trail::new(postgres);
    let keys = tempfile::tempdir().unwrap();
    let mut server = start(&data, keys.path());
    populate(&server, 0..10);
    wait_reference(&server, "acme", 10);
    wait_reference(&server, "globex", 5);
    server.stop();
    let early = data.copy();

    let mut server = start(&data, keys.path());
    for n in 10..20 {
        post(&server, "acme", n, &format!("user-{n}"));
    }
    let saved = server.wait_checkpoint("acme", 20);
    wait_reference(&server, "acme", 20);
    let trust = keys.path().join("acme-20.checkpoint");
    std::fs::write(&trust, saved).unwrap();
    let vkeys = ["acme", "globex", "_system"]
        .iter()
        .map(|t| server.verifier_key(t))
        .collect();
    server.stop();

    let state = keys.path().join("monitor.json");
    let mut args = vec!["verify".to_owned()];
    args.extend(data.source());
    args.extend(["--state".into(), state.to_str().unwrap().into()]);
    let out = cli(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Fixture {
        data,
        early,
        keys,
        vkeys,
        trust,
        state,
    }
}

impl Fixture {
    /// Runs every detector on a trail: (caught?, report) each.
    fn detect(&self, trail: &Trail) -> (Caught, Vec<String>) {
        let mut args: Vec<String> = vec!["verify".into()];
        args.extend(trail.source());
        let mut caught = [false; 4];
        let mut reports = Vec::new();
        for (i, caught) in caught.iter_mut().enumerate() {
            match i {
                1 => {
                    for k in &self.vkeys {
                        args.extend(["--verifier-key".into(), k.clone()]);
                    }
                }
                2 => args.extend(["--trust".into(), self.trust.to_str().unwrap().into()]),
                3 => {
                    // A copy, so that no run updates the monitor's state.
                    let state = self.keys.path().join("monitor-copy.json");
                    std::fs::copy(&self.state, &state).unwrap();
                    args.extend(["--state".into(), state.to_str().unwrap().into()]);
                }
                _ => {}
            }
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = cli(&refs);
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(
                matches!(out.status.code(), Some(0 | 1)),
                "verify broke instead of judging: {text}"
            );
            *caught = !out.status.success();
            reports.push(text);
        }
        (caught, reports)
    }

    /// A copy of the genuine trail with one edit (SQLite's or PostgreSQL's).
    fn tampered(&self, sqlite: &str, postgres: &str) -> Trail {
        let copy = self.data.copy();
        copy.tamper(sqlite, postgres);
        copy
    }
}

/// The form token a signed-in page carries.
pub(crate) fn csrf_token(agent: &ureq::Agent, url: &str, cookie: &str) -> String {
    let html = agent
        .get(&format!("{url}/ui/integrity"))
        .header("Cookie", cookie)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let marker = "name=\"csrf-token\" content=\"";
    let at = html.find(marker).unwrap() + marker.len();
    html[at..at + 64].to_owned()
}

/// Runs the web viewer's verification (sign in, "Verify now", poll) on a
/// server started over `trail` with the signing key in `keys`.
fn viewer_verdict(trail: &Trail, keys: &Path) -> (bool, String) {
    let mut server = start(trail, keys);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let signed_in = agent
        .post(&format!("{}/ui/login", server.url))
        .header("Origin", &server.url)
        .send_form([("key", server.admin.as_str())])
        .unwrap();
    let cookie = signed_in
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned();
    let token = csrf_token(&agent, &server.url, &cookie);
    let job: serde_json::Value = agent
        .post(&format!("{}/ui/verify", server.url))
        .header("Cookie", &cookie)
        .header("Origin", &server.url)
        .header("X-CSRF-Token", &token)
        .send_empty()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    let job = job["job"].as_str().unwrap().to_owned();
    let result = wait_for(
        "the viewer's verification",
        std::time::Duration::from_secs(30),
        || {
            let r: serde_json::Value = agent
                .get(&format!("{}/ui/verify/{job}", server.url))
                .header("Cookie", &cookie)
                .call()
                .ok()?
                .body_mut()
                .read_json()
                .ok()?;
            (r["done"] == true).then_some(r)
        },
    );
    server.stop();
    (
        result["ok"] == true,
        result["message"].as_str().unwrap_or_default().to_owned(),
    )
}

/// The viewer's integrity page and `trailmark verify` (no extra input)
/// give the same verdict on `trail`, and it is `caught`.
fn viewer_agrees(what: &str, trail: &Trail, keys: &Path, caught: bool) {
    let (ok, message) = viewer_verdict(trail, keys);
    let mut args = vec!["verify".to_owned()];
    args.extend(trail.source());
    let out = cli(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        (ok, out.status.success()),
        (!caught, !caught),
        "{what}: the viewer said {message:?}; verify said {report}"
    );
}

const PLAIN: Caught = [true, true, true, true];
const OUTSIDE_ONLY: Caught = [false, false, true, true];

/// Asserts which detectors caught an edit, and that the first one's report
/// says each of `names`.
fn assert_caught(
    what: &str,
    (caught, reports): &(Caught, Vec<String>),
    want: Caught,
    names: &[&str],
) {
    assert_eq!(caught, &want, "{what}: {reports:#?}");
    let first = caught.iter().position(|c| *c).unwrap();
    for name in names {
        assert!(
            reports[first].contains(name),
            "{what}: the report should say {name:?}: {}",
            reports[first]
        );
    }
}

/// Edits of stored rows that `verify` catches with nothing else.
fn stored_row_edits(postgres: bool) {
    let f = fixture(postgres);
    let untouched = f.detect(&f.data);
    assert_eq!(untouched.0, [false; 4], "{:#?}", untouched.1);
    viewer_agrees("untouched", &f.data.copy(), f.keys.path(), false);
    if !postgres {
        // Verification wrote nothing: the data dir's files are as they were.
        let db = f.data.dir.path().join("trailmark.db");
        let before = std::fs::read(&db).unwrap();
        f.detect(&f.data);
        assert_eq!(before, std::fs::read(&db).unwrap());
    }

    let tail = f.tampered(
        "DELETE FROM entries WHERE tenant = 'acme' AND seq >= 15;
         DELETE FROM checkpoints WHERE tenant = 'acme' AND size > 15;
         UPDATE tenants SET size = 15 WHERE name = 'acme';",
        "DELETE FROM trailmark_ledger.entries WHERE tenant = 'acme' AND seq >= 15;
         DELETE FROM trailmark_ledger.checkpoints WHERE tenant = 'acme' AND size > 15;
         UPDATE trailmark_ledger.tenants SET size = 15 WHERE name = 'acme';",
    );
    assert_caught(
        "newest entries deleted with their checkpoints",
        &f.detect(&tail),
        PLAIN,
        &["FAILED acme: seq", "recorded in _system", "the log has 15"],
    );
    viewer_agrees("tail", &tail, f.keys.path(), true);

    let tenant = f.tampered(
        "DELETE FROM entries WHERE tenant = 'globex';
         DELETE FROM checkpoints WHERE tenant = 'globex';
         DELETE FROM node_strips WHERE tenant = 'globex';
         DELETE FROM node_tail WHERE tenant = 'globex';
         DELETE FROM tenants WHERE name = 'globex';",
        "DELETE FROM trailmark_ledger.entries WHERE tenant = 'globex';
         DELETE FROM trailmark_ledger.checkpoints WHERE tenant = 'globex';
         DELETE FROM trailmark_ledger.nodes WHERE tenant = 'globex';
         DELETE FROM trailmark_ledger.tenants WHERE name = 'globex';",
    );
    assert_caught(
        "a whole tenant deleted",
        &f.detect(&tenant),
        PLAIN,
        &["FAILED globex: the tenant is gone"],
    );
    viewer_agrees("tenant", &tenant, f.keys.path(), true);

    let middle = f.tampered(
        "DELETE FROM checkpoints WHERE tenant = 'acme' AND size = 10;",
        "DELETE FROM trailmark_ledger.checkpoints WHERE tenant = 'acme' AND size = 10;",
    );
    assert_caught(
        "a checkpoint in the middle deleted",
        &f.detect(&middle),
        PLAIN,
        &["FAILED acme: checkpoint at size 10: the checkpoint recorded in _system"],
    );
    viewer_agrees("middle checkpoint", &middle, f.keys.path(), true);

    let erased = f.tampered(
        "UPDATE entries SET payload = NULL, salt = NULL, ip = NULL WHERE tenant = 'acme' AND seq = 4;",
        "DELETE FROM trailmark_ledger.payloads p USING trailmark_ledger.entries e
         WHERE p.pos = e.pos AND e.tenant = 'acme' AND e.seq = 4;",
    );
    assert_caught(
        "payload and salt set to NULL without an erasure",
        &f.detect(&erased),
        PLAIN,
        &["FAILED acme: seq 4: payload and salt are gone"],
    );
    viewer_agrees("payload", &erased, f.keys.path(), true);

    // On PostgreSQL the IP is kept with the payload, in its partition.
    for (column, set, pg) in [
        (
            "actor_id",
            "actor_id = 'nobody'",
            "UPDATE trailmark_ledger.entries SET actor_id = 'nobody' WHERE tenant = 'acme' AND seq = 6;",
        ),
        (
            "ip",
            "ip = '10.0.0.66'",
            "UPDATE trailmark_ledger.payloads p SET ip = '10.0.0.66' FROM trailmark_ledger.entries e
             WHERE p.pos = e.pos AND e.tenant = 'acme' AND e.seq = 6;",
        ),
    ] {
        let edited = f.tampered(
            &format!("UPDATE entries SET {set} WHERE tenant = 'acme' AND seq = 6;"),
            pg,
        );
        assert_caught(
            &format!("the indexed column {column} edited"),
            &f.detect(&edited),
            PLAIN,
            &[&format!(
                "FAILED acme: seq 6: the stored column(s) {column} differ"
            )],
        );
        viewer_agrees(column, &edited, f.keys.path(), true);
    }
}

#[test]
fn edits_of_the_stored_rows_are_caught_by_verify_alone() {
    stored_row_edits(false);
}

#[test]
fn edits_of_the_postgresql_ledger_are_caught_by_verify_alone() {
    stored_row_edits(true);
}

/// Rewrites a server re-signs, rollbacks and replacements.
fn re_signed_rewrites(postgres: bool) {
    let f = fixture(postgres);
    // Every checkpoint of acme deleted, its log rebuilt with one entry
    // changed, and the server restarted: it signs the forged tree afresh.
    let forged = f.tampered(
        "DELETE FROM entries WHERE tenant = 'acme';
         DELETE FROM checkpoints WHERE tenant = 'acme';
         DELETE FROM node_strips WHERE tenant = 'acme';
         DELETE FROM node_tail WHERE tenant = 'acme';
         DELETE FROM tenants WHERE name = 'acme';",
        "DELETE FROM trailmark_ledger.entries WHERE tenant = 'acme';
         DELETE FROM trailmark_ledger.checkpoints WHERE tenant = 'acme';
         DELETE FROM trailmark_ledger.nodes WHERE tenant = 'acme';
         DELETE FROM trailmark_ledger.tenants WHERE name = 'acme';",
    );
    let mut server = start(&forged, f.keys.path());
    for n in 0..20 {
        let actor = if n == 7 {
            "mallory".to_owned()
        } else {
            format!("user-{n}")
        };
        post(&server, "acme", n, &actor);
    }
    server.wait_checkpoint("acme", 20);
    wait_reference(&server, "acme", 20);
    server.stop();
    assert_caught(
        "a forged tree re-signed after a restart",
        &f.detect(&forged),
        PLAIN,
        &["FAILED acme:", "_system"],
    );
    viewer_agrees("forged", &forged, f.keys.path(), true);

    // The whole trail rolled back to an older copy, then new appends:
    // consistent in itself; only checkpoints kept outside can tell.
    let rolled = f.early.copy();
    let mut server = start(&rolled, f.keys.path());
    for n in 0..3 {
        post(&server, "acme", n, "after-rollback");
    }
    server.wait_checkpoint("acme", 13);
    server.stop();
    assert_caught(
        "the trail rolled back, then appended to",
        &f.detect(&rolled),
        OUTSIDE_ONLY,
        &[
            "FAILED acme: seq",
            "the trusted checkpoint in",
            "the log has 13",
        ],
    );
    viewer_agrees("rollback", &rolled, f.keys.path(), false);

    // The whole trail replaced by one signed with another key (the
    // operator holds the database, not the signing key): consistent in
    // itself; the key kept apart catches it.
    let replaced = Trail::new(postgres);
    let other_keys = tempfile::tempdir().unwrap();
    let mut server = start(&replaced, other_keys.path());
    populate(&server, 0..20);
    server.stop();
    assert_caught(
        "the trail replaced by one signed with another key",
        &f.detect(&replaced),
        [false, true, true, true],
        &[
            "FAILED acme: checkpoint at size",
            "the stored note does not verify",
        ],
    );
    viewer_agrees("replaced", &replaced, other_keys.path(), false);
}

#[test]
fn rewrites_that_a_restarted_server_re_signs_are_caught_by_cross_references_or_outside_evidence() {
    re_signed_rewrites(false);
}

#[test]
fn rewrites_of_the_postgresql_ledger_are_caught_by_cross_references_or_outside_evidence() {
    re_signed_rewrites(true);
}

#[test]
fn a_server_with_another_key_refuses_the_trail_and_a_readable_key_is_refused() {
    let trail = Trail::new(false);
    let data = &trail.dir;
    let keys = tempfile::tempdir().unwrap();
    let mut server = start(&trail, keys.path());
    server.stop();
    // Another seed on the same data: refused, naming the trail's key.
    let other = tempfile::tempdir().unwrap();
    let out = crate::cli(&[
        "serve",
        "--data-dir",
        data.path().to_str().unwrap(),
        "--signing-key",
        key_file(other.path()).to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("this trail is signed by trailmark.local/_system+"),
        "{stderr}"
    );
    // A key file others may read: refused.
    std::fs::set_permissions(
        key_file(keys.path()),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = crate::cli(&[
        "serve",
        "--data-dir",
        data.path().to_str().unwrap(),
        "--signing-key",
        key_file(keys.path()).to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("may be read by group or others"),
        "{stderr}"
    );
}

/// Saves the receipt of acme's newest event to `path`.
fn keep_a_receipt(server: &Server, path: &std::path::Path) -> std::path::PathBuf {
    let (_, page) = server.get("/v1/events?tenant=acme&limit=1", &server.admin);
    let id = page["events"][0]["id"].as_str().unwrap().to_owned();
    let (_, found) = server.get(&format!("/v1/events/{id}?tenant=acme"), &server.admin);
    std::fs::write(path, found["proof"]["receipt"].as_str().unwrap()).unwrap();
    path.to_owned()
}

/// `verify --url --receipt` through `server` passes.
fn check_receipt_through(server: &Server, receipt: &std::path::Path) {
    let out = cli(&[
        "verify",
        "--url",
        &server.url,
        "--key",
        &server.admin,
        "--receipt",
        receipt.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `keys rotate-signing` on a stopped trail; the transition statement.
fn rotate_signing(data: &Path, old: &Path, new: &Path) -> String {
    crate::run_ok(&[
        "keys",
        "rotate-signing",
        "--data-dir",
        data.to_str().unwrap(),
        "--signing-key",
        old.to_str().unwrap(),
        "--new-signing-key",
        new.to_str().unwrap(),
    ])
}

/// A client following acme's checkpoints and a capture drainer (which
/// remembers the checkpoints of the tenant it drains into) have seen the
/// old key sign; after `rotate-signing` both go on under the new key, the
/// transition being signed by the key they remembered. A server showing
/// another key with no transition from it is still refused.
#[test]
fn clients_and_capture_drainers_follow_a_signing_key_rotation() {
    let trail = Trail::new(false);
    let keys = tempfile::tempdir().unwrap();
    let (old, new) = (key_file(keys.path()), keys.path().join("new.seed"));
    let mut server = start(&trail, keys.path());
    for n in 0..10 {
        post(&server, "acme", n, &format!("user-{n}"));
    }
    server.wait_checkpoint("acme", 10);
    let follower = trailmark_client::Follower::open(&keys.path().join("seen.sqlite3")).unwrap();
    let client = |server: &Server| {
        trailmark_client::Client::new(
            &server.url,
            &server.admin,
            std::time::Duration::from_secs(10),
        )
        .unwrap()
    };
    assert_eq!(follower.check(&client(&server), "acme").unwrap().size, 10);
    let app_db = PgDb::new("tm_rotation_capture");
    app_db.sql("CREATE TABLE item (id int PRIMARY KEY, name text)");
    let source = app_db.source();
    let drain = |server: &Server| drain_once(&source, server);
    install(&source, "trigger", "public.item", &[]);
    app_db.sql("INSERT INTO item VALUES (1, 'before')");
    succeeded(&drain(&server));
    server.wait_checkpoint("default", 1);
    // Drained again once signed: the drainer remembers a checkpoint of
    // `default` under the old key.
    app_db.sql("INSERT INTO item VALUES (2, 'before')");
    succeeded(&drain(&server));
    server.stop();

    rotate_signing(trail.dir.path(), &old, &new);
    let server = Server::start_with(trail.dir.path(), &["--signing-key", new.to_str().unwrap()]);
    for n in 10..15 {
        post(&server, "acme", n, &format!("user-{n}"));
    }
    server.wait_checkpoint("acme", 15);
    assert_eq!(follower.check(&client(&server), "acme").unwrap().size, 15);
    app_db.sql("INSERT INTO item VALUES (3, 'after')");
    succeeded(&drain(&server));
    // Once the new key has signed `default`, the drainer checks that
    // checkpoint against the one it remembered under the old key.
    server.wait_checkpoint("default", 3);
    app_db.sql("INSERT INTO item VALUES (4, 'after')");
    succeeded(&drain(&server));

    let other_dir = tempfile::tempdir().unwrap();
    let other = Server::start(other_dir.path());
    for n in 0..16 {
        post(&other, "acme", n, &format!("user-{n}"));
    }
    other.wait_checkpoint("acme", 16);
    let refused = follower.check(&client(&other), "acme").unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("no key rotation leads on from it"),
        "{refused}"
    );
}

#[test]
fn a_rotated_signing_key_is_followed_by_verify_from_the_first_key() {
    let trail = Trail::new(false);
    let data = &trail.dir;
    let keys = tempfile::tempdir().unwrap();
    let old = key_file(keys.path());
    let new = keys.path().join("new.seed");
    let mut server = start(&trail, keys.path());
    for n in 0..10 {
        post(&server, "acme", n, &format!("user-{n}"));
    }
    server.wait_checkpoint("acme", 10);
    let pinned: Vec<String> = ["acme", "_system"]
        .iter()
        .map(|t| server.verifier_key(t))
        .collect();
    // A receipt kept from before the rotation (signed by the old key).
    let old_receipt = keep_a_receipt(&server, &keys.path().join("old.receipt"));
    server.stop();

    let statement = rotate_signing(data.path(), &old, &new);
    assert!(
        statement.starts_with("trailmark key transition v1\nprefix trailmark.local\nnew "),
        "{statement}"
    );
    assert!(statement.contains("\ntenant acme 10\n"), "{statement}");

    // The old key no longer starts a server; the new one does, and signs.
    let refused = crate::cli(&[
        "serve",
        "--data-dir",
        data.path().to_str().unwrap(),
        "--signing-key",
        old.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!refused.status.success());
    let mut server = Server::start_with(data.path(), &["--signing-key", new.to_str().unwrap()]);
    for n in 10..15 {
        post(&server, "acme", n, &format!("user-{n}"));
    }
    let latest = server.wait_checkpoint("acme", 15);
    let (_, new_vkey) = server.get("/v1/verifier-key?tenant=acme", &server.admin);
    assert_ne!(
        new_vkey.as_str().unwrap().trim(),
        pinned[0],
        "the tenant's key changed"
    );
    assert!(!latest.is_empty());
    // The old receipt still checks against the server's keys: every key
    // the trail records, not only the current one.
    check_receipt_through(&server, &old_receipt);
    server.stop();

    // verify follows the transition, also when told to trust only the first key.
    let dir = data.path().to_str().unwrap();
    let out = cli(&["verify", "--data-dir", dir]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = cli(&[
        "verify",
        "--data-dir",
        dir,
        "--verifier-key",
        &pinned[0],
        "--verifier-key",
        &pinned[1],
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A transition statement not signed by the old key breaks the chain.
    let forged = copy_dir(data.path());
    let conn = Connection::open(forged.path().join("trailmark.db")).unwrap();
    conn.execute(
        "UPDATE signing_keys SET transition = replace(transition, 'tenant acme 10', 'tenant acme 3') WHERE ordinal = 1",
        [],
    )
    .unwrap();
    drop(conn);
    let out = cli(&["verify", "--data-dir", forged.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("is not signed by the key before it"),
        "{stderr}"
    );
}
