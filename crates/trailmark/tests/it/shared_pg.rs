//! Several `trailmark serve` processes on one PostgreSQL ledger.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};

use crate::{PgDb, Server, cli, event};

/// Starts `n` servers on one ledger database; each has its own data dir
/// holding the same signing seed (copied from the first).
pub(crate) fn servers(db: &PgDb, dirs: &[tempfile::TempDir]) -> Vec<Server> {
    let url = db.source();
    let first = Server::start_with(dirs[0].path(), &["--database", &url]);
    let mut all = vec![first];
    for dir in &dirs[1..] {
        for file in ["signing.seed", "bootstrap-admin.key"] {
            std::fs::copy(dirs[0].path().join(file), dir.path().join(file)).unwrap();
        }
        all.push(Server::start_with(dir.path(), &["--database", &url]));
    }
    all
}

/// Posts batches of 20 events from `clients` threads per server, for
/// `batches` rounds; returns every acknowledged (id, seq). Errors (a killed
/// server) stop that client quietly.
fn ingest(servers: &[(String, String)], clients: usize, batches: usize) -> Vec<(String, u64)> {
    let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let mut threads = Vec::new();
    for (s, (url, key)) in servers.iter().enumerate() {
        for c in 0..clients {
            let (url, key, acked) = (url.clone(), key.clone(), Arc::clone(&acked));
            threads.push(thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_secs(20)))
                    .build()
                    .into();
                for b in 0..batches {
                    let body: Vec<Value> = (0..20)
                        .map(|i| event("shared", &format!("s{s}c{c}"), &format!("act{b}-{i}")))
                        .collect();
                    let Ok(mut response) = agent
                        .post(&format!("{url}/v1/events"))
                        .header("Authorization", &format!("Bearer {key}"))
                        .send_json(&body)
                    else {
                        return;
                    };
                    let Ok(reply) = response.body_mut().read_json::<Value>() else {
                        return;
                    };
                    let mut acked = acked.lock().unwrap();
                    for e in reply["entries"].as_array().into_iter().flatten() {
                        acked.push((
                            e["id"].as_str().unwrap().to_owned(),
                            e["seq"].as_u64().unwrap(),
                        ));
                    }
                }
            }));
        }
    }
    for t in threads {
        t.join().unwrap();
    }
    Arc::try_unwrap(acked).unwrap().into_inner().unwrap()
}

fn verify_url(server: &Server) -> (bool, String) {
    let out = cli(&["verify", "--url", &server.url, "--key", &server.admin]);
    (out.status.success(), crate::said(&out))
}

/// Every acknowledged event is in the shared tenant once, seqs 0..n with no
/// gaps or repeats.
fn assert_one_history(server: &Server, acked: &[(String, u64)]) {
    let mut seqs: Vec<u64> = acked.iter().map(|(_, s)| *s).collect();
    seqs.sort_unstable();
    let n = seqs.len() as u64;
    assert_eq!(
        seqs,
        (0..n).collect::<Vec<_>>(),
        "no gaps or duplicate seqs"
    );
    let (_, stats) = server.get("/v1/stats?tenant=shared", &server.admin);
    assert_eq!(stats["total"], n, "{stats}");
}

/// After a server was killed: every acknowledged event is stored once, at
/// the seq it was acknowledged with, and no event is stored twice. A batch
/// the killed server committed but could not answer is stored without
/// being acknowledged: at most `in_flight` such events.
fn assert_acknowledged_stored_once(server: &Server, acked: &[(String, u64)], in_flight: usize) {
    let mut stored: Vec<String> = Vec::new();
    loop {
        let start = stored.len();
        let (status, page) = server.get(
            &format!(
                "/v1/entries?tenant=shared&start={start}&end={}",
                start + 1000
            ),
            &server.admin,
        );
        assert_eq!(status, 200, "{page}");
        let entries = page["entries"].as_array().unwrap();
        if entries.is_empty() {
            break;
        }
        for e in entries {
            assert_eq!(e["seq"].as_u64().unwrap(), stored.len() as u64, "no gaps");
            let envelope: Value = serde_json::from_str(e["envelope"].as_str().unwrap()).unwrap();
            stored.push(envelope["id"].as_str().unwrap().to_owned());
        }
    }
    let unique: std::collections::HashSet<&String> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "no event is stored twice");
    for (id, seq) in acked {
        let at = usize::try_from(*seq).unwrap();
        assert_eq!(
            stored.get(at),
            Some(id),
            "acknowledged event {id} is at seq {seq}"
        );
    }
    assert!(
        stored.len() - acked.len() <= in_flight,
        "{} stored, {} acknowledged: more unanswered than were in flight",
        stored.len(),
        acked.len()
    );
    let (_, stats) = server.get("/v1/stats?tenant=shared", &server.admin);
    assert_eq!(stats["total"], stored.len(), "{stats}");
}

pub(crate) fn dirs(n: usize) -> Vec<tempfile::TempDir> {
    (0..n).map(|_| tempfile::tempdir().unwrap()).collect()
}

fn keyed(servers: &[Server]) -> Vec<(String, String)> {
    servers
        .iter()
        .map(|s| (s.url.clone(), s.admin.clone()))
        .collect()
}

#[test]
fn two_and_four_servers_append_to_one_tree() {
    for n in [2, 4] {
        let db = PgDb::new(&format!("tm_shared_{n}"));
        let dirs = dirs(n);
        let servers = servers(&db, &dirs);
        let acked = ingest(&keyed(&servers), 2, 15);
        assert_eq!(acked.len(), n * 2 * 15 * 20);
        assert_one_history(&servers[0], &acked);
        for s in &servers {
            let (ok, report) = verify_url(s);
            assert!(ok, "verify against {}: {report}", s.url);
        }
        consistency_across_signers(&servers);
    }
}

/// Checkpoints signed by one server are consistent with those signed by
/// another (they share the key and the tree).
fn consistency_across_signers(servers: &[Server]) {
    let (a, b) = (&servers[0], &servers[servers.len() - 1]);
    let size_a = size_of(a);
    a.post(
        "/v1/events",
        &a.admin,
        &json!([event("shared", "late", "x")]),
    );
    b.wait_checkpoint("shared", size_a + 1);
    let size_b = size_of(b);
    assert!(size_b > size_a);
    let (status, proof) = b.get(
        &format!("/v1/proofs/consistency?tenant=shared&first={size_a}&second={size_b}"),
        &b.admin,
    );
    assert_eq!(status, 200, "{proof}");
    let (ok, report) = verify_url(b);
    assert!(ok, "{report}");
}

fn size_of(server: &Server) -> u64 {
    let (_, tenants) = server.get("/v1/tenants", &server.admin);
    tenants["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == "shared")
        .and_then(|t| t["size"].as_u64())
        .unwrap_or(0)
}

#[test]
fn killing_one_server_loses_nothing_acknowledged_and_the_other_keeps_serving() {
    let db = PgDb::new("tm_shared_kill");
    let dirs = dirs(2);
    let mut servers = servers(&db, &dirs);
    let keyed = keyed(&servers);
    let survivor = keyed[1].clone();
    let load = thread::spawn(move || ingest(&keyed, 2, 40));
    // Kill it mid-load: once both servers have stored some of it.
    crate::wait_for("the load to be under way", Duration::from_secs(30), || {
        (size_of(&servers[1]) >= 200).then_some(())
    });
    servers[0].kill9();
    let acked = load.join().unwrap();
    // The survivor still takes writes and the tree is whole.
    let more = ingest(&[survivor], 1, 2);
    let all: Vec<_> = acked.into_iter().chain(more).collect();
    // The killed server's two clients had at most one batch of 20 each in
    // flight: committed perhaps, but never answered.
    assert_acknowledged_stored_once(&servers[1], &all, 2 * 20);
    let (ok, report) = verify_url(&servers[1]);
    assert!(ok, "{report}");
}

#[test]
fn tampering_with_the_postgresql_ledger_is_caught_and_named() {
    let db = PgDb::new("tm_shared_tamper");
    let dirs = dirs(1);
    let servers = servers(&db, &dirs);
    let server = &servers[0];
    for i in 0..20 {
        let e = event("acme", &format!("user-{i}"), "update");
        assert_eq!(server.post("/v1/events", &server.admin, &e).0, 201);
    }
    server.wait_checkpoint("acme", 20);
    let (ok, report) = verify_url(server);
    assert!(ok, "untouched data must verify: {report}");
    // One byte of one stored envelope: user-7 becomes user-8.
    db.sql(
        "UPDATE trailmark_ledger.entries
         SET envelope = convert_to(replace(convert_from(envelope, 'UTF8'), 'user-7\"', 'user-8\"'), 'UTF8')
         WHERE tenant = 'acme' AND seq = 7",
    );
    let (ok, report) = verify_url(server);
    assert!(
        !ok && report.contains("FAILED acme: seq 7:"),
        "edited envelope: {report}"
    );
    // A deleted row.
    db.sql("DELETE FROM trailmark_ledger.entries WHERE tenant = 'acme' AND seq = 3");
    let (ok, report) = verify_url(server);
    assert!(
        !ok && report.contains("FAILED acme: seq 3:"),
        "deleted row: {report}"
    );
}

/// An auditor verifies a PostgreSQL ledger with a role that may only read
/// its schema (`USAGE` on `trailmark_ledger`, `SELECT` on its tables: what
/// docs/OPERATIONS.md tells an operator to grant), and is refused, naming
/// the schema, without them.
#[test]
fn an_auditor_that_may_only_read_the_ledger_verifies_it() {
    let db = PgDb::new("tm_shared_auditor");
    let dirs = dirs(1);
    let mut servers = servers(&db, &dirs);
    let server = &servers[0];
    for i in 0..5 {
        let e = event("acme", &format!("user-{i}"), "update");
        assert_eq!(server.post("/v1/events", &server.admin, &e).0, 201);
    }
    server.wait_checkpoint("acme", 5);
    servers[0].stop();
    let auditor = format!("{}_auditor", db.name);
    db.sql(&format!(
        "DROP ROLE IF EXISTS {auditor}; CREATE ROLE {auditor} LOGIN"
    ));
    let source = format!("{} user={auditor}", db.source());
    let verify = || {
        let out = cli(&["verify", "--database", &source]);
        let report = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), report)
    };
    let (ok, refused) = verify();
    db.sql(&format!(
        "GRANT USAGE ON SCHEMA trailmark_ledger TO {auditor};
         GRANT SELECT ON ALL TABLES IN SCHEMA trailmark_ledger TO {auditor}"
    ));
    let (granted, report) = verify();
    db.sql(&format!(
        "REVOKE ALL ON ALL TABLES IN SCHEMA trailmark_ledger FROM {auditor};
         REVOKE ALL ON SCHEMA trailmark_ledger FROM {auditor};
         DROP ROLE {auditor}"
    ));
    assert!(
        !ok && refused.contains("permission denied for schema trailmark_ledger"),
        "{refused}"
    );
    assert!(
        granted && report.contains("ok     acme: 5 entries"),
        "{report}"
    );
}

/// An embedded trail with two tenants and several checkpoints each.
fn embedded_trail() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let mut sizes = [0u64; 2];
    for round in 0..4 {
        for (t, tenant) in ["acme", "globex"].iter().enumerate() {
            let body: Vec<Value> = (0..150)
                .map(|i| event(tenant, &format!("u{i}"), &format!("r{round}")))
                .collect();
            assert_eq!(
                server.post("/v1/events", &server.admin, &json!(body)).0,
                201
            );
            sizes[t] += 150;
            server.wait_checkpoint(tenant, sizes[t]);
        }
    }
    server.stop();
    dir
}

fn migrate(from: &std::path::Path, to: &str) -> std::process::Output {
    cli(&["migrate", "--from", from.to_str().unwrap(), "--to", to])
}

/// `source` migrated into a new database `name`: the database and what
/// `migrate` reported (it must succeed).
fn migrated(source: &std::path::Path, name: &str) -> (PgDb, String) {
    let db = PgDb::new(name);
    let out = migrate(source, &db.source());
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (db, stdout)
}

/// A server on the copy in `db`, with the source's signing seed and admin
/// key (its data dir is the one returned).
fn serve_copy(source: &std::path::Path, db: &PgDb) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    for file in ["signing.seed", "bootstrap-admin.key"] {
        std::fs::copy(source.join(file), dir.path().join(file)).unwrap();
    }
    let server = Server::start_with(dir.path(), &["--database", &db.source()]);
    (dir, server)
}

#[test]
fn migrating_an_embedded_trail_keeps_every_root_and_serves_it() {
    let source = embedded_trail();
    {
        // An erased actor: its entries move without payloads, marked.
        let mut server = Server::start(source.path());
        let (status, erased) = server.post(
            "/v1/erasures",
            &server.admin,
            &json!({"tenant": "acme", "actor": "u7", "reason": "ticket 12"}),
        );
        assert_eq!((status, &erased["entries"]), (200, &json!(4)), "{erased}");
        server.stop();
    }
    let (db, stdout) = migrated(source.path(), "tm_migrate");
    assert!(stdout.contains("copied acme: 600 entries"), "{stdout}");
    assert!(stdout.contains("roots equal"), "{stdout}");
    // A second migration into the same ledger is refused.
    let again = migrate(source.path(), &db.source());
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a trail"));

    // A server on the copy: the same keys work, the same checkpoints are
    // there, and the whole trail verifies remotely.
    let (_dir, server) = serve_copy(source.path(), &db);
    let (_, checkpoints) = server.get("/v1/checkpoints?tenant=acme", &server.admin);
    assert!(
        checkpoints["checkpoints"].as_array().map_or(0, Vec::len) >= 4,
        "{checkpoints}"
    );
    let (ok, report) = verify_url(&server);
    assert!(ok, "{report}");
    let (_, stats) = server.get("/v1/stats?tenant=globex", &server.admin);
    assert_eq!(stats["total"], 600);
    let (_, erased) = server.get("/v1/events?tenant=acme&actor=u7", &server.admin);
    let erased = erased["events"].as_array().unwrap();
    assert_eq!(erased.len(), 4);
    for event in erased {
        assert_eq!(event["state"], "erased", "{event}");
        assert_eq!(event["removal"]["kind"], "erasure", "{event}");
        assert_eq!(event["removal"]["reason"], "ticket 12", "{event}");
    }
}

/// Two holds (one released), a retention policy, changed alert rules and a
/// webhook.
fn keep_rules_beside_the_trail(server: &Server) {
    let admin = &server.admin;
    for resource in ["Customer:4", "Customer:5"] {
        let (status, hold) = server.post(
            "/v1/holds",
            admin,
            &json!({"tenant": "acme", "resource": resource, "reason": "case 7"}),
        );
        assert_eq!(status, 201, "{hold}");
        if resource == "Customer:5" {
            let id = hold["id"].as_str().unwrap();
            assert_eq!(server.delete(&format!("/v1/holds/{id}"), admin).0, 200);
        }
    }
    let (status, policy) = server.put(
        "/v1/retention",
        admin,
        &json!({"tenant": "acme", "resource_type": "Customer", "max_age_days": 30}),
    );
    assert_eq!(status, 200, "{policy}");
    let (_, rules) = server.get("/v1/alert-rules", admin);
    let mut rules = rules["rules"].clone();
    rules["mass_delete"]["enabled"] = json!(false);
    assert_eq!(server.put("/v1/alert-rules", admin, &rules).0, 200);
    let (status, hooks) = server.put(
        "/v1/webhooks",
        admin,
        &json!({"webhooks": [{"name": "security", "url": "http://127.0.0.1:9/",
                              "rules": ["failed_logins"]}]}),
    );
    assert_eq!(status, 200, "{hooks}");
}

/// What is kept beside the entries moves with them: a witness's
/// cosignatures of the checkpoints, legal holds (in force and released),
/// retention policies, alert rules and webhooks. A copy without its holds
/// would let the next cleanup remove what a court asked to keep.
#[test]
fn migrating_keeps_cosignatures_holds_retention_and_settings() {
    let source = tempfile::tempdir().unwrap();
    let mut server = Server::start(source.path());
    let vkey = server.verifier_key("acme");
    server.stop();
    let witness_dir = tempfile::tempdir().unwrap();
    let (_witness, w1, port) = crate::witness::trailmark_witness(
        witness_dir.path(),
        &[("trailmark.local/acme".to_owned(), vkey.clone())],
    );
    let mut server = Server::start_with(
        source.path(),
        &["--witness", &format!("{w1}@http://127.0.0.1:{port}")],
    );
    let batch: Vec<Value> = (0..20)
        .map(|i| event("acme", &format!("u{i}"), "update"))
        .collect();
    assert_eq!(
        server.post("/v1/events", &server.admin, &json!(batch)).0,
        201
    );
    let cosigned = crate::witness::cosigned_checkpoint(&server, "acme", 20, 2);
    let admin = server.admin.clone();
    keep_rules_beside_the_trail(&server);
    let kept = [
        "/v1/holds",
        "/v1/retention",
        "/v1/alert-rules",
        "/v1/webhooks",
    ];
    // What each server keeps of its own (its last cleanup) is not copied.
    let read = |server: &Server| -> Vec<Value> {
        kept.iter()
            .map(|path| {
                let mut read = server.get(path, &admin).1;
                read.as_object_mut().unwrap().remove("last_cleanup");
                read
            })
            .collect()
    };
    let before = read(&server);
    assert_eq!(
        before[0]["holds"].as_array().map(Vec::len),
        Some(2),
        "{}",
        before[0]
    );
    server.stop();

    let (db, stdout) = migrated(source.path(), "tm_migrate_rules");
    assert!(
        stdout.contains("2 holds, 1 retention policies, 2 settings"),
        "{stdout}"
    );

    let (_dir, copy) = serve_copy(source.path(), &db);
    assert_eq!(read(&copy), before, "{kept:?} on the copy");
    let (_, note) = copy.get("/v1/checkpoint?tenant=acme", &admin);
    assert_eq!(
        note.as_str(),
        Some(cosigned.as_str()),
        "the witness's line kept"
    );
    let out = cli(&[
        "verify",
        "--url",
        &copy.url,
        "--key",
        &admin,
        "--tenant",
        "acme",
        "--witness",
        &w1,
        "--witnesses-required",
        "1",
    ]);
    assert!(out.status.success(), "{}", crate::said(&out));
}

#[test]
fn a_damaged_source_is_not_reported_as_migrated() {
    let source = embedded_trail();
    let conn = rusqlite::Connection::open(source.path().join("trailmark.db")).unwrap();
    conn.execute(
        "UPDATE entries SET envelope = CAST(replace(CAST(envelope AS TEXT), '\"u7\"', '\"u8\"') AS BLOB)
         WHERE tenant = 'acme' AND seq = 7",
        [],
    )
    .unwrap();
    drop(conn);
    let db = PgDb::new("tm_migrate_bad");
    let out = migrate(source.path(), &db.source());
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("acme") && stderr.contains("differs"),
        "{stderr}"
    );
}

#[test]
fn a_second_server_with_another_signing_key_refuses_the_shared_ledger() {
    let db = PgDb::new("tm_shared_other_key");
    let first_dir = tempfile::tempdir().unwrap();
    let _first = Server::start_with(first_dir.path(), &["--database", &db.source()]);
    // Its own data dir, so its own freshly made seed: not the trail's key.
    let second_dir = tempfile::tempdir().unwrap();
    let out = crate::cli(&[
        "serve",
        "--data-dir",
        second_dir.path().to_str().unwrap(),
        "--database",
        &db.source(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("this trail is signed by trailmark.local/_system+")
            && stderr.contains("--signing-key"),
        "{stderr}"
    );
}

/// A new admin key that sees every tenant, made through `server` by `by`:
/// (its id, the key).
fn whole_server_admin(server: &Server, by: &str) -> (String, String) {
    let (status, body) = server.post(
        "/v1/keys",
        by,
        &json!({"scopes": "admin", "name": "racing admin"}),
    );
    assert_eq!(status, 201, "{body}");
    (
        body["id"].as_str().unwrap().to_owned(),
        body["key"].as_str().unwrap().to_owned(),
    )
}

/// The last admin key that sees every tenant is never revoked, across
/// servers sharing one ledger too: two admin keys, each revoked at the same
/// moment by the other through another server, round after round. One
/// revocation is taken; the other is refused (409: the key it would revoke
/// is now the last, or 401: its own key is gone), because one revocation at
/// a time holds the removal lock, which the servers share (a PostgreSQL
/// advisory lock), from reading the keys to revoking one.
#[test]
fn two_servers_revoking_each_others_admin_key_at_once_leave_one() {
    let db = PgDb::new("tm_shared_last_admin");
    let dirs = dirs(2);
    let servers = servers(&db, &dirs);
    let (_, keys) = servers[0].get("/v1/keys", &servers[0].admin);
    let first = keys["keys"][0]["id"].as_str().unwrap().to_owned();
    let mut pair = [
        (first, servers[0].admin.clone()),
        whole_server_admin(&servers[0], &servers[0].admin),
    ];
    for round in 0..12 {
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let answers: Vec<(u16, Value)> = thread::scope(|scope| {
            let racers: Vec<_> = [(0, 1), (1, 0)]
                .into_iter()
                .map(|(by, target)| {
                    let (server, barrier) = (&servers[by], Arc::clone(&barrier));
                    let (key, target) = (pair[by].1.clone(), pair[target].0.clone());
                    scope.spawn(move || {
                        barrier.wait();
                        server.delete(&format!("/v1/keys/{target}"), &key)
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let taken: Vec<usize> = (0..2).filter(|&i| answers[i].0 == 200).collect();
        assert_eq!(taken.len(), 1, "round {round}: {answers:?}");
        let loser = 1 - taken[0];
        assert!(
            [401, 409].contains(&answers[loser].0),
            "round {round}: {answers:?}"
        );
        // The survivor still administers both servers; it makes the next
        // round's rival.
        let survivor = pair[taken[0]].clone();
        for server in &servers {
            let (status, keys) = server.get("/v1/keys", &survivor.1);
            assert_eq!(status, 200, "round {round}: {keys}");
            let alive = keys["keys"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|k| k["revoked_at"].is_null() && k["tenant"].is_null())
                .count();
            assert_eq!(alive, 1, "round {round}: {keys}");
        }
        let rival = whole_server_admin(&servers[round % 2], &survivor.1);
        pair = if round % 2 == 0 {
            [survivor, rival]
        } else {
            [rival, survivor]
        };
    }
}

/// An append the ledger's database fails (here PostgreSQL's own "no space
/// left on device", SQLSTATE 53100, raised by a trigger on the entries it
/// writes; a full disk fails the same statement the same way) is answered
/// 503 and acknowledges nothing; `/metrics` counts it and says appends are
/// failing, and `/readyz` fails, so that an operator's alert and a
/// balancer see what reads alone do not. Once the database writes again,
/// the next append is taken and everything is ready again. A database that
/// does not answer at all is not ready either.
#[test]
fn a_ledger_that_cannot_write_acknowledges_nothing_and_says_so_until_it_can() {
    let db = PgDb::new("tm_shared_full");
    let dirs = dirs(1);
    let server = servers(&db, &dirs).remove(0);
    let probe = |path: &str| server.raw("GET", path, None, None).unwrap();
    let metric = |name: &str| {
        let (_, text) = probe("/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in {text}"))
            .to_owned()
    };
    let post = |id: &str| {
        server.post(
            "/v1/events",
            &server.admin,
            &json!({"tenant": "acme", "id": id, "actor": {"id": "u1", "type": "user"},
                    "action": "update", "resource": {"type": "Invoice", "id": "1"}}),
        )
    };
    let before = "0192f0c2-5a1e-7c4b-9d10-6f1b2a3c4d5e";
    let refused = "0192f0c2-5a1e-7c4b-9d10-6f1b2a3c4d5f";
    let after = "0192f0c2-5a1e-7c4b-9d10-6f1b2a3c4d60";
    assert_eq!(post(before).0, 201);
    assert_eq!(probe("/readyz").0, 200);
    assert_eq!(metric("trailmark_append_failures_total"), "0");
    db.sql(
        "CREATE FUNCTION public.no_space() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = '53100'; END $$;
         CREATE TRIGGER no_space BEFORE INSERT ON trailmark_ledger.entries
         FOR EACH ROW EXECUTE FUNCTION public.no_space()",
    );
    let (status, body) = post(refused);
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("retry later"),
        "{body}"
    );
    let (status, why) = probe("/readyz");
    assert_eq!(status, 503, "{why}");
    assert!(why.contains("the latest append failed"), "{why}");
    assert_ne!(metric("trailmark_append_failures_total"), "0");
    assert_eq!(metric("trailmark_append_failing"), "1");
    // A command told 503 says what the server said (it said "the server
    // is busy (retry after None)").
    let out = cli(&["verify", "--url", &server.url, "--key", &server.admin]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("the server cannot answer now: storage failed"),
        "{said}"
    );
    // What was stored before stays; the refused event is not there.
    assert_eq!(
        db.text("SELECT count(*)::text FROM trailmark_ledger.entries WHERE tenant = 'acme'"),
        "1"
    );

    db.sql("DROP TRIGGER no_space ON trailmark_ledger.entries");
    assert_eq!(post(after).0, 201);
    assert_eq!(probe("/readyz").0, 200);
    assert_eq!(metric("trailmark_append_failing"), "0");
    let (_, page) = server.get("/v1/events?tenant=acme", &server.admin);
    let ids: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [after, before], "the refused event was never stored");
    let (ok, report) = verify_url(&server);
    assert!(ok, "{report}");
    // A database that does not answer at all: not ready either.
    let name = db.text("SELECT current_database()");
    db.sql_in(
        "postgres",
        &format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"),
    );
    db.sql_in(
        "postgres",
        &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"),
    );
    let (status, why) = probe("/readyz");
    assert_eq!(status, 503, "{why}");
    db.sql_in(
        "postgres",
        &format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"),
    );
}
