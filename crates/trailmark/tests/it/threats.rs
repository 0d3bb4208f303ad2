//! The tamper matrix of docs/THREATS.md, on the embedded store: a hostile
//! operator edits a copy of the data dir; for each edit, which detectors
//! catch it is asserted exactly, and the failure names what changed.
//!
//! Detectors (each includes the ones before it):
//! - plain: `verify --data-dir` with nothing else;
//! - key: plus `--verifier-key` for every tenant, kept apart from the data;
//! - trust: plus `--trust` of acme's checkpoint saved at size 20;
//! - state: plus `--state` from a monitor run on the genuine trail.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde_json::json;

use crate::{Server, cli, copy_dir, event, wait_for};

/// One hostile edit's verdicts: (plain, key, trust, state), true = caught.
type Caught = [bool; 4];

struct Fixture {
    data: tempfile::TempDir,
    /// acme at 10 entries (globex complete), taken before the last 10.
    early: tempfile::TempDir,
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

fn start(data: &Path, keys: &Path) -> Server {
    Server::start_with(data, &["--signing-key", key_file(keys).to_str().unwrap()])
}

fn fixture() -> Fixture {
    let data = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let mut server = start(data.path(), keys.path());
    for n in 0..10 {
        post(&server, "acme", n, &format!("user-{n}"));
    }
    for n in 0..5 {
        post(&server, "globex", n, "g");
    }
    server.wait_checkpoint("acme", 10);
    server.wait_checkpoint("globex", 5);
    wait_reference(&server, "acme", 10);
    wait_reference(&server, "globex", 5);
    server.stop();
    let early = copy_dir(data.path());

    let mut server = start(data.path(), keys.path());
    for n in 10..20 {
        post(&server, "acme", n, &format!("user-{n}"));
    }
    let saved = server.wait_checkpoint("acme", 20);
    wait_reference(&server, "acme", 20);
    let trust = keys.path().join("acme-20.checkpoint");
    std::fs::write(&trust, saved).unwrap();
    let vkeys = ["acme", "globex", "_system"]
        .iter()
        .map(|t| {
            let (_, body) = server.get(&format!("/v1/verifier-key?tenant={t}"), &server.admin);
            body.as_str().unwrap().trim().to_owned()
        })
        .collect();
    server.stop();

    let state = keys.path().join("monitor.json");
    let out = cli(&[
        "verify",
        "--data-dir",
        data.path().to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
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
    /// Runs every detector on `dir`: (caught?, report) each.
    fn detect(&self, dir: &Path) -> (Caught, Vec<String>) {
        let dir = dir.to_str().unwrap();
        let mut args: Vec<String> = vec!["verify".into(), "--data-dir".into(), dir.into()];
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

    fn tampered(&self, sql: &str) -> tempfile::TempDir {
        let copy = copy_dir(self.data.path());
        let conn = Connection::open(copy.path().join("trailmark.db")).unwrap();
        conn.execute_batch(sql).unwrap();
        drop(conn);
        copy
    }
}

/// Runs the web viewer's verification (sign in, "Verify now", poll) on a
/// server started over `dir` with the signing key in `keys`.
fn viewer_verdict(dir: &Path, keys: &Path) -> (bool, String) {
    let mut server = start(dir, keys);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let signed_in = agent
        .post(&format!("{}/ui/login", server.url))
        .send_form([("key", server.admin.as_str())])
        .unwrap();
    let cookie = signed_in
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned();
    let job: serde_json::Value = agent
        .post(&format!("{}/ui/verify", server.url))
        .header("Cookie", &cookie)
        .header("Origin", &server.url)
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
/// give the same verdict on `dir`, and it is `caught`.
fn viewer_agrees(what: &str, dir: &Path, keys: &Path, caught: bool) {
    let (ok, message) = viewer_verdict(dir, keys);
    let out = cli(&["verify", "--data-dir", dir.to_str().unwrap()]);
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

#[test]
fn edits_of_the_stored_rows_are_caught_by_verify_alone() {
    let f = fixture();
    let untouched = f.detect(f.data.path());
    assert_eq!(untouched.0, [false; 4], "{:#?}", untouched.1);
    let genuine = copy_dir(f.data.path());
    viewer_agrees("untouched", genuine.path(), f.keys.path(), false);
    // Verification wrote nothing: the data dir's files are as they were.
    let before = std::fs::read(f.data.path().join("trailmark.db")).unwrap();
    f.detect(f.data.path());
    assert_eq!(
        before,
        std::fs::read(f.data.path().join("trailmark.db")).unwrap()
    );

    let tail = f.tampered(
        "DELETE FROM entries WHERE tenant = 'acme' AND seq >= 15;
         DELETE FROM checkpoints WHERE tenant = 'acme' AND size > 15;
         UPDATE tenants SET size = 15 WHERE name = 'acme';",
    );
    assert_caught(
        "newest entries deleted with their checkpoints",
        &f.detect(tail.path()),
        PLAIN,
        &["FAILED acme: seq", "recorded in _system", "the log has 15"],
    );
    viewer_agrees("tail", tail.path(), f.keys.path(), true);

    let tenant = f.tampered(
        "DELETE FROM entries WHERE tenant = 'globex';
         DELETE FROM checkpoints WHERE tenant = 'globex';
         DELETE FROM node_strips WHERE tenant = 'globex';
         DELETE FROM tenants WHERE name = 'globex';",
    );
    assert_caught(
        "a whole tenant deleted",
        &f.detect(tenant.path()),
        PLAIN,
        &["FAILED globex: the tenant is gone"],
    );
    viewer_agrees("tenant", tenant.path(), f.keys.path(), true);

    let middle = f.tampered("DELETE FROM checkpoints WHERE tenant = 'acme' AND size = 10;");
    assert_caught(
        "a checkpoint in the middle deleted",
        &f.detect(middle.path()),
        PLAIN,
        &["FAILED acme: checkpoint at size 10: the checkpoint recorded in _system"],
    );
    viewer_agrees("middle checkpoint", middle.path(), f.keys.path(), true);

    let erased = f.tampered(
        "UPDATE entries SET payload = NULL, salt = NULL, ip = NULL WHERE tenant = 'acme' AND seq = 4;",
    );
    assert_caught(
        "payload and salt set to NULL without an erasure",
        &f.detect(erased.path()),
        PLAIN,
        &["FAILED acme: seq 4: payload and salt are gone"],
    );
    viewer_agrees("payload", erased.path(), f.keys.path(), true);

    for (column, sql) in [
        (
            "actor_id",
            "UPDATE entries SET actor_id = 'nobody' WHERE tenant = 'acme' AND seq = 6;",
        ),
        (
            "ip",
            "UPDATE entries SET ip = '10.0.0.66' WHERE tenant = 'acme' AND seq = 6;",
        ),
    ] {
        let edited = f.tampered(sql);
        assert_caught(
            &format!("the indexed column {column} edited"),
            &f.detect(edited.path()),
            PLAIN,
            &[&format!(
                "FAILED acme: seq 6: the stored column(s) {column} differ"
            )],
        );
        viewer_agrees(column, edited.path(), f.keys.path(), true);
    }
}

#[test]
fn rewrites_that_a_restarted_server_re_signs_are_caught_by_cross_references_or_outside_evidence() {
    let f = fixture();
    // Every checkpoint of acme deleted, its log rebuilt with one entry
    // changed, and the server restarted: it signs the forged tree afresh.
    let forged = f.tampered(
        "DELETE FROM entries WHERE tenant = 'acme';
         DELETE FROM checkpoints WHERE tenant = 'acme';
         DELETE FROM node_strips WHERE tenant = 'acme';
         DELETE FROM tenants WHERE name = 'acme';",
    );
    let mut server = start(forged.path(), f.keys.path());
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
        &f.detect(forged.path()),
        PLAIN,
        &["FAILED acme:", "_system"],
    );
    viewer_agrees("forged", forged.path(), f.keys.path(), true);

    // The whole data dir rolled back to an older copy, then new appends:
    // consistent in itself; only checkpoints kept outside can tell.
    let rolled = copy_dir(f.early.path());
    let mut server = start(rolled.path(), f.keys.path());
    for n in 0..3 {
        post(&server, "acme", n, "after-rollback");
    }
    server.wait_checkpoint("acme", 13);
    server.stop();
    assert_caught(
        "the data dir rolled back, then appended to",
        &f.detect(rolled.path()),
        OUTSIDE_ONLY,
        &[
            "FAILED acme: seq",
            "the trusted checkpoint in",
            "the log has 13",
        ],
    );
    viewer_agrees("rollback", rolled.path(), f.keys.path(), false);

    // The whole trail replaced by one signed with another key (the
    // operator holds the database, not the signing key): consistent in
    // itself; the key kept apart catches it.
    let replaced = tempfile::tempdir().unwrap();
    let other_keys = tempfile::tempdir().unwrap();
    let mut server = start(replaced.path(), other_keys.path());
    for n in 0..20 {
        post(&server, "acme", n, &format!("user-{n}"));
    }
    for n in 0..5 {
        post(&server, "globex", n, "g");
    }
    server.wait_checkpoint("acme", 20);
    server.wait_checkpoint("globex", 5);
    server.stop();
    assert_caught(
        "the trail replaced by one signed with another key",
        &f.detect(replaced.path()),
        [false, true, true, true],
        &[
            "FAILED acme: checkpoint at size",
            "the stored note does not verify",
        ],
    );
    viewer_agrees("replaced", replaced.path(), other_keys.path(), false);
}

#[test]
fn a_server_with_another_key_refuses_the_trail_and_a_readable_key_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let mut server = start(data.path(), keys.path());
    server.stop();
    // Another seed on the same data: refused, naming the trail's key.
    let other = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(crate::BIN)
        .args(["serve", "--data-dir", data.path().to_str().unwrap()])
        .args(["--signing-key", key_file(other.path()).to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
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
    let out = std::process::Command::new(crate::BIN)
        .args(["serve", "--data-dir", data.path().to_str().unwrap()])
        .args(["--signing-key", key_file(keys.path()).to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("may be read by group or others"),
        "{stderr}"
    );
}

#[test]
fn a_rotated_signing_key_is_followed_by_verify_from_the_first_key() {
    let data = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let old = key_file(keys.path());
    let new = keys.path().join("new.seed");
    let mut server = start(data.path(), keys.path());
    for n in 0..10 {
        post(&server, "acme", n, &format!("user-{n}"));
    }
    server.wait_checkpoint("acme", 10);
    let pinned: Vec<String> = ["acme", "_system"]
        .iter()
        .map(|t| {
            let (_, body) = server.get(&format!("/v1/verifier-key?tenant={t}"), &server.admin);
            body.as_str().unwrap().trim().to_owned()
        })
        .collect();
    server.stop();

    let out = cli(&[
        "keys",
        "rotate-signing",
        "--data-dir",
        data.path().to_str().unwrap(),
        "--signing-key",
        old.to_str().unwrap(),
        "--new-signing-key",
        new.to_str().unwrap(),
    ]);
    let statement = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        statement.starts_with("trailmark key transition v1\nprefix trailmark.local\nnew "),
        "{statement}"
    );
    assert!(statement.contains("\ntenant acme 10\n"), "{statement}");

    // The old key no longer starts a server; the new one does, and signs.
    let refused = std::process::Command::new(crate::BIN)
        .args(["serve", "--data-dir", data.path().to_str().unwrap()])
        .args([
            "--signing-key",
            old.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
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
