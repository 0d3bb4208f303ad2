//! Tampering with the `SQLite` file directly: `trailmark verify` must fail and
//! name the entry, for every kind of edit; untouched data verifies.

use std::path::Path;

use rusqlite::{Connection, params};

use crate::{Server, copy_dir, event, verify_dir};

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

fn tampered(original: &Path, sql: impl FnOnce(&Connection)) -> (bool, String) {
    let copy = copy_dir(original);
    let conn = Connection::open(copy.path().join("trailmark.db")).unwrap();
    sql(&conn);
    drop(conn);
    verify_dir(copy.path())
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
