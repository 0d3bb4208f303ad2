//! Tampering with the `SQLite` file directly: `trailmark verify` must fail and
//! name the entry, for every kind of edit; untouched data verifies.

use std::path::Path;

use rusqlite::{Connection, params};

use serde_json::{Value, json};

use crate::{Server, cli, copy_dir, event, said, verify_dir};

/// A stopped server's data dir with 20 entries in tenant acme, all signed.
fn trail() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    for i in 0..20 {
        let mut e = event("acme", &format!("user-{i}"), "update");
        e["actor"]["name"] = serde_json::json!(format!("person {i}"));
        assert_eq!(server.post("/v1/events", &server.admin, &e).0, 201);
    }
    server.wait_checkpoint("acme", 20);
    server.stop();
    dir
}

/// A copy of `original` with `sql` run on its database.
fn tampered_copy(original: &Path, sql: impl FnOnce(&Connection)) -> tempfile::TempDir {
    let copy = copy_dir(original);
    let conn = Connection::open(copy.path().join("trailmark.db")).unwrap();
    sql(&conn);
    drop(conn);
    copy
}

fn tampered(original: &Path, sql: impl FnOnce(&Connection)) -> (bool, String) {
    verify_dir(tampered_copy(original, sql).path())
}

fn envelope(conn: &Connection, seq: i64) -> Vec<u8> {
    conn.query_row(
        "SELECT envelope FROM entries WHERE tenant = 'acme' AND seq = ?1",
        [seq],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn every_kind_of_tampering_is_caught_and_named() {
    let trail = trail();
    let (ok, report) = verify_dir(trail.path());
    assert!(ok, "untouched data must verify: {report}");
    assert!(report.contains("ok     acme: 20 entries"), "{report}");

    // One byte of one stored envelope.
    let (ok, report) = tampered(trail.path(), |c| {
        let mut env = envelope(c, 7);
        let at = env.windows(8).position(|w| w == b"user-7\",").unwrap();
        env[at + 5] = b'8';
        c.execute(
            "UPDATE entries SET envelope = ?1 WHERE tenant = 'acme' AND seq = 7",
            params![env],
        )
        .unwrap();
    });
    assert!(
        !ok && report.contains("FAILED acme: seq 7:"),
        "edited envelope: {report}"
    );

    // One row deleted.
    let (ok, report) = tampered(trail.path(), |c| {
        c.execute("DELETE FROM entries WHERE tenant = 'acme' AND seq = 5", [])
            .unwrap();
    });
    assert!(
        !ok && report.contains("FAILED acme: seq 5:"),
        "deleted row: {report}"
    );

    // Two rows swapped.
    let (ok, report) = tampered(trail.path(), |c| {
        let (a, b) = (envelope(c, 3), envelope(c, 4));
        c.execute(
            "UPDATE entries SET envelope = ?1 WHERE tenant = 'acme' AND seq = 3",
            params![b],
        )
        .unwrap();
        c.execute(
            "UPDATE entries SET envelope = ?1 WHERE tenant = 'acme' AND seq = 4",
            params![a],
        )
        .unwrap();
    });
    assert!(
        !ok && report.contains("FAILED acme: seq 3:"),
        "swapped rows: {report}"
    );

    // A payload edited.
    let (ok, report) = tampered(trail.path(), |c| {
        c.execute(
            "UPDATE entries SET payload = replace(payload, 'person 9', 'person X')
             WHERE tenant = 'acme' AND seq = 9",
            [],
        )
        .unwrap();
    });
    assert!(
        !ok && report.contains("FAILED acme: seq 9: the payload does not match"),
        "edited payload: {report}"
    );

    // A checkpoint replaced by one with another root.
    let (ok, report) = tampered(trail.path(), |c| {
        let note: String = c
            .query_row(
                "SELECT note FROM checkpoints WHERE tenant = 'acme' ORDER BY size DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let mut lines: Vec<String> = note.lines().map(str::to_owned).collect();
        lines[2] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into();
        let forged = lines.join("\n") + "\n";
        c.execute(
            "UPDATE checkpoints SET note = ?1 WHERE tenant = 'acme' AND note = ?2",
            params![forged, note],
        )
        .unwrap();
    });
    assert!(
        !ok && report.contains("FAILED acme: checkpoint at size 20"),
        "replaced checkpoint: {report}"
    );

    // The tail truncated: the last entries removed with their rows.
    let (ok, report) = tampered(trail.path(), |c| {
        c.execute(
            "DELETE FROM entries WHERE tenant = 'acme' AND seq >= 18",
            [],
        )
        .unwrap();
        c.execute("UPDATE tenants SET size = 18 WHERE name = 'acme'", [])
            .unwrap();
    });
    assert!(
        !ok && report
            .contains("FAILED acme: seqs 18..19: the checkpoint at size 20 signs 20 entries"),
        "truncated tail: {report}"
    );
}

/// Runs `verify --data-dir` on `dir` as a user who cannot write there
/// (`nobody`, when the tests run as root; the files are made read-only).
fn verify_read_only(dir: &Path) -> std::process::Output {
    use std::os::unix::fs::PermissionsExt as _;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .unwrap()
        .stdout
        == b"0\n";
    let mut cmd = if root {
        let mut c = std::process::Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            crate::BIN,
        ]);
        c
    } else {
        std::process::Command::new(crate::BIN)
    };
    cmd.args(["verify", "--data-dir", dir.to_str().unwrap()])
        .output()
        .unwrap()
}

fn snapshot(dir: &Path) -> Vec<(std::ffi::OsString, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name(), std::fs::read(e.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn verify_reads_read_only_evidence_and_changes_no_byte() {
    // A cleanly stopped server's files (no WAL), and a killed one's (WAL and
    // its index still there).
    let stopped = trail();
    assert!(
        !stopped.path().join("trailmark.db-wal").exists(),
        "a clean stop leaves no WAL"
    );
    let killed = tempfile::tempdir().unwrap();
    let mut server = Server::start(killed.path());
    for i in 0..30 {
        let e = event("acme", &format!("user-{i}"), "update");
        assert_eq!(server.post("/v1/events", &server.admin, &e).0, 201);
    }
    server.wait_checkpoint("acme", 30);
    // Killed, not copied while running: a copy of a live database's files
    // is not a consistent snapshot (docs/OPERATIONS.md, Backups).
    server.kill9();
    let evidence = copy_dir(killed.path());
    assert!(
        evidence.path().join("trailmark.db-wal").exists(),
        "the killed server's copy has its WAL"
    );
    for (what, dir) in [("stopped", copy_dir(stopped.path())), ("killed", evidence)] {
        let before = snapshot(dir.path());
        let out = verify_read_only(dir.path());
        let report = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{what}: {report}");
        assert!(report.contains("ok     acme:"), "{what}: {report}");
        assert_eq!(
            before,
            snapshot(dir.path()),
            "{what}: verify changed the files"
        );
    }
}

#[test]
fn twenty_receipts_pass_verify_receipt_and_any_changed_byte_fails() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut ids = Vec::new();
    for i in 0..20 {
        let e = event("acme", &format!("user-{i}"), "update");
        let (status, body) = server.post("/v1/events", &server.admin, &e);
        assert_eq!(status, 201);
        ids.push(body["entries"][0]["id"].as_str().unwrap().to_owned());
    }
    server.wait_checkpoint("acme", 20);
    let vkey = server.verifier_key("acme");
    let work = tempfile::tempdir().unwrap();
    for (i, id) in ids.iter().enumerate() {
        let (_, found) = server.get(&format!("/v1/events/{id}?tenant=acme"), &server.admin);
        let receipt = found["proof"]["receipt"].as_str().unwrap().to_owned();
        let file = work.path().join(format!("receipt-{i}"));
        std::fs::write(&file, &receipt).unwrap();
        let check = |path: &Path| {
            crate::cli(&[
                "verify",
                "--receipt",
                path.to_str().unwrap(),
                "--verifier-key",
                &vkey,
            ])
        };
        let out = check(&file);
        assert!(
            out.status.success(),
            "receipt {i}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        // One byte changed, at a position that moves with the receipt:
        // the proof lines, the envelope, the checkpoint and its signature.
        let mut bytes = receipt.into_bytes();
        let at = (i * 37 + 11) % bytes.len();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let bad = work.path().join(format!("bad-{i}"));
        std::fs::write(&bad, &bytes).unwrap();
        let out = check(&bad);
        assert_eq!(
            out.status.code(),
            Some(1),
            "receipt {i} with byte {at} changed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A row changed outside Trailmark is damage, said as such (500, naming
/// `trailmark verify`): not "storage failed" (503, retry), which would send
/// clients into retries that cannot help. The rest of the trail still
/// answers.
#[test]
fn a_damaged_row_answers_500_naming_verify_not_503() {
    let original = trail();
    let copy = tampered_copy(original.path(), |conn| {
        conn.execute(
            "UPDATE entries SET payload = 'not json' WHERE tenant = 'acme' AND seq = 19",
            [],
        )
        .unwrap();
    });
    let server = Server::start(copy.path());
    let (status, body) = server.get("/v1/events?tenant=acme&limit=5", &server.admin);
    assert_eq!(status, 500, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("damaged") && message.contains("trailmark verify"),
        "{message}"
    );
    let (status, _) = server.get("/v1/events?tenant=acme&actor=user-3", &server.admin);
    assert_eq!(status, 200);
    drop(server);

    // Changes of another shape than field -> {old, new} are damage too,
    // never shown as an event that recorded no change.
    let copy = tampered_copy(original.path(), |conn| {
        conn.execute(
            "UPDATE entries SET payload = json_set(payload, '$.changes', json('{\"price\": 5}'))
             WHERE tenant = 'acme' AND seq = 18",
            [],
        )
        .unwrap();
    });
    let server = Server::start(copy.path());
    let (status, body) = server.get("/v1/events?tenant=acme&limit=2", &server.admin);
    assert_eq!(status, 500, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("the payload's changes") && message.contains("trailmark verify"),
        "{message}"
    );
}

/// An export never leaves out an event it cannot show: a damaged row on its
/// first page is an error answer (500, naming `trailmark verify`), and one
/// on a later page cuts the stream short, so that neither a download nor
/// `trailmark export` passes for the whole trail. The command says the
/// export is incomplete and fails.
#[test]
fn an_export_never_skips_a_damaged_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    // Two pages of the export (1,000 events each) and a few more.
    for chunk in 0..3 {
        let batch: Vec<Value> = (0..700)
            .map(|i| event("acme", &format!("user-{chunk}-{i}"), "update"))
            .collect();
        assert_eq!(
            server.post("/v1/events", &server.admin, &json!(batch)).0,
            201
        );
    }
    server.stop();
    let damage = |seq: i64| {
        tampered_copy(dir.path(), |conn| {
            conn.execute(
                "UPDATE entries SET envelope = x'00' WHERE tenant = 'acme' AND seq = ?1",
                [seq],
            )
            .unwrap();
        })
    };

    // Newest first: seq 2,099 is on the first page.
    let copy = damage(2_099);
    let server = Server::start(copy.path());
    let (status, body) = server.get("/v1/export?tenant=acme", &server.admin);
    let shown = body.to_string();
    assert_eq!(status, 500, "{}", &shown[..shown.len().min(300)]);
    let message = body["error"].as_str().unwrap_or_default();
    assert!(message.contains("trailmark verify"), "{message}");
    drop(server);

    // Seq 5 is on the third page: the answer has begun when it is read.
    let copy = damage(5);
    let server = Server::start(copy.path());
    let output = copy.path().join("export.ndjson");
    let out = cli(&[
        "export",
        "--url",
        &server.url,
        "--key",
        &server.admin,
        "--tenant",
        "acme",
        "--output",
        output.to_str().unwrap(),
    ]);
    let said = said(&out);
    assert!(!out.status.success(), "{said}");
    // What was written is kept under another name: a file named as asked
    // holds a whole export or is not there.
    let kept = copy.path().join("export.ndjson.incomplete");
    assert!(
        said.contains("the export is incomplete") && said.contains(kept.to_str().unwrap()),
        "{said}"
    );
    assert!(!output.exists(), "{said}");
    let written = std::fs::read_to_string(&kept).unwrap();
    assert!(
        written.lines().count() < 2_099,
        "{} lines",
        written.lines().count()
    );
}
