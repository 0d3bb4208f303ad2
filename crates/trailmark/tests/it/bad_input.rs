//! Bad input: a clear 4xx naming the problem, and the server keeps serving.

use serde_json::{Value, json};

use crate::{Server, event};

#[test]
fn malformed_bodies_get_a_clear_400() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let admin = server.admin.clone();

    let raw = |ct: &str, body: &[u8]| server.post_bytes("/v1/events", &admin, ct, body.to_vec());
    let (s, b) = raw("application/json", b"{\"actor\": ");
    assert_eq!(s, 400);
    assert!(
        b["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("malformed JSON"),
        "{b}"
    );
    let (s, b) = raw(
        "application/json",
        b"{\"actor\": {\"id\": \"\xff\xfe\", \"type\": \"user\"}, \"action\": \"x\"}",
    );
    assert_eq!(s, 400);
    assert!(
        b["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("UTF-8"),
        "{b}"
    );
    let (s, b) = raw("application/json", b"42");
    assert_eq!(s, 400, "{b}");
    let (s, b) = raw(
        "application/x-ndjson",
        b"{\"actor\":{\"id\":\"1\",\"type\":\"user\"},\"action\":\"a\"}\nnot json\n",
    );
    assert_eq!(s, 400);
    assert!(
        b["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("line 2"),
        "{b}"
    );
    let (s, b) = raw("application/json", b"[]");
    assert_eq!(
        (s, b["errors"][0]["message"].as_str()),
        (400, Some("no events in the body"))
    );
    // An id of white space alone names nobody, as an empty one does.
    let (s, b) = raw(
        "application/json",
        br#"{"actor":{"id":"  ","type":"user"},"action":"a","resource":{"type":"T","id":"\t"}}"#,
    );
    assert_eq!(s, 400, "{b}");
    let said: Vec<(&str, &str)> = b["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["path"].as_str().unwrap(), p["message"].as_str().unwrap()))
        .collect();
    assert_eq!(
        said,
        [
            ("actor.id", "must not be white space alone"),
            ("resource.id", "must not be white space alone")
        ],
        "{b}"
    );
}

#[test]
fn wrong_fields_limits_and_keys_get_a_clear_4xx_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--max-body-bytes", "65536"]);
    let admin = server.admin.clone();
    let bound = server.key("ingest", Some("acme"));
    let raw = |ct: &str, body: &[u8]| server.post_bytes("/v1/events", &admin, ct, body.to_vec());
    let (s, b) = server.post(
        "/v1/events",
        &admin,
        &json!({"actor": {"id": 1.5, "type": "user"}, "action": ["x"]}),
    );
    assert_eq!(s, 400);
    assert_eq!(
        b["errors"],
        json!([
            {"index": 0, "path": "actor.id", "message": "must be a string (or an integer)"},
            {"index": 0, "path": "action", "message": "must be a string"},
        ])
    );
    let (s, b) = server.post("/v1/events", &admin, &json!({}));
    assert_eq!(s, 400);
    assert_eq!(b["errors"].as_array().unwrap().len(), 2, "{b}");
    let (s, b) = server.post(
        "/v1/events",
        &admin,
        &json!({"actor": {"id": "x".repeat(300), "type": "user"}, "action": "a"}),
    );
    assert_eq!(s, 400);
    assert!(
        b["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("at most 256 bytes"),
        "{b}"
    );

    let huge = vec![b' '; 100 * 1024];
    let (s, b) = raw("application/json", &huge);
    assert_eq!(s, 413, "{b}");
    let roomy_dir = tempfile::tempdir().unwrap();
    let roomy = Server::start(roomy_dir.path());
    // A body larger than those prepared where they were read is judged
    // alike: every problem by its event and field, nothing stored.
    let mut batch: Vec<_> = (0..400)
        .map(|i| event("acme", &i.to_string(), "a"))
        .collect();
    batch[150]["action"] = json!(["x"]);
    let body = json!(batch);
    assert!(
        body.to_string().len() > trailmark_server::PREPARE_INLINE_MAX,
        "the batch is a large body"
    );
    let (s, b) = roomy.post("/v1/events", &roomy.admin, &body);
    assert_eq!(s, 400, "{b}");
    assert_eq!(
        b["errors"],
        json!([{"index": 150, "path": "action", "message": "must be a string"}])
    );
    let (_, page) = roomy.get("/v1/events?tenant=acme", &roomy.admin);
    assert_eq!(
        page["events"],
        json!([]),
        "nothing of the refused batch stored"
    );
    drop(roomy);

    let (s, b) = server.post("/v1/events", &bound, &event("other", "1", "a"));
    assert_eq!(s, 403, "{b}");
    let (s, _) = server.post("/v1/events", "tmk_not-a-key", &event("acme", "1", "a"));
    assert_eq!(s, 401);
    let (s, b) = server.get("/v1/events?limit=0", &admin);
    assert_eq!((s, b["errors"][0]["path"].as_str()), (400, Some("limit")));
    let (s, b) = server.get("/v1/events?outcome=maybe", &admin);
    assert_eq!((s, b["errors"][0]["path"].as_str()), (400, Some("outcome")));
    let (s, b) = server.get("/v1/events/not-a-uuid", &admin);
    assert_eq!((s, b["errors"][0]["path"].as_str()), (400, Some("id")));
    let (s, b) = server.get("/v1/proofs/inclusion?tenant=acme&index=5&size=9", &admin);
    assert_eq!((s, b["errors"][0]["path"].as_str()), (400, Some("size")));

    // A revoked key stops working at once.
    let (_, keys) = server.get("/v1/keys", &admin);
    let id = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["tenant"] == "acme")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(server.delete(&format!("/v1/keys/{id}"), &admin).0, 200);
    assert_eq!(
        server
            .post("/v1/events", &bound, &event("acme", "1", "a"))
            .0,
        401
    );

    // Nothing bad was stored, and the server still serves.
    let (s, b) = server.post("/v1/events", &admin, &event("acme", "1", "login"));
    assert_eq!((s, b["entries"][0]["seq"].as_u64()), (201, Some(0)));
}

/// More events than a batch may hold, in a body the size limit allows (a
/// body over the limit may be answered before it is all sent), are refused
/// whole: at the bound the server's OpenAPI document states, which is the
/// one docs/API.md states, and one fewer is stored.
#[test]
fn a_batch_past_the_bound_the_openapi_document_states_is_refused_and_one_at_it_stored() {
    let dir = tempfile::tempdir().unwrap();
    let roomy = Server::start(dir.path());
    let (s, doc) = roomy.get("/openapi.json", "");
    assert_eq!(s, 200, "{doc}");
    let most =
        doc["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
            ["oneOf"][1]["maxItems"]
            .as_u64()
            .unwrap();
    assert_eq!(most, 5000, "the bound docs/API.md states");
    let mut many: Vec<_> = (0..=most)
        .map(|i| event("bulk", &i.to_string(), "a"))
        .collect();
    let (s, b) = roomy.post("/v1/events", &roomy.admin, &json!(many));
    assert_eq!(s, 413, "{b}");
    assert!(
        b["error"].as_str().unwrap().contains("split the batch"),
        "{b}"
    );
    many.pop();
    let (s, b) = roomy.post("/v1/events", &roomy.admin, &json!(many));
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["entries"].as_array().unwrap().len(), 5000);
}

#[test]
fn a_full_ingest_queue_answers_429_with_retry_after_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--queue-capacity", "3"]);
    let batch = json!([
        event("q", "1", "a"),
        event("q", "2", "a"),
        event("q", "3", "a")
    ]);
    let (s, b) = server.post(
        "/v1/events",
        &server.admin,
        &json!([batch[0], batch[1], batch[2], batch[0]]),
    );
    assert_eq!(s, 413, "a batch larger than the queue can never fit: {b}");

    // Many clients at once: while one batch of 3 waits for the disk, the others
    // find the queue full.
    let (url, key) = (server.url.clone(), server.admin.clone());
    let body = batch.to_string();
    let results: Vec<(u16, Option<String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let (url, key, body) = (&url, &key, &body);
                scope.spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .build()
                        .into();
                    (0..20)
                        .map(|_| {
                            let r = agent
                                .post(format!("{url}/v1/events"))
                                .header("Authorization", format!("Bearer {key}"))
                                .header("Content-Type", "application/json")
                                .send(body.as_bytes())
                                .unwrap();
                            let retry = r
                                .headers()
                                .get("retry-after")
                                .map(|v| v.to_str().unwrap().to_owned());
                            (r.status().as_u16(), retry)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let busy: Vec<_> = results.iter().filter(|(s, _)| *s == 429).collect();
    let stored = results.iter().filter(|(s, _)| *s == 201).count();
    assert_eq!(
        busy.len() + stored,
        results.len(),
        "only 201 or 429: {results:?}"
    );
    assert!(
        !busy.is_empty(),
        "320 concurrent batches never filled a queue of 3"
    );
    assert!(busy.iter().all(|(_, retry)| retry.as_deref() == Some("1")));
    // Every acknowledged batch is there; nothing refused was stored.
    let (_, tenants) = server.get("/v1/tenants", &server.admin);
    let size = tenants["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == "q")
        .unwrap()["size"]
        .as_u64();
    assert_eq!(size, Some(3 * stored as u64));
}

#[test]
fn a_key_request_with_unknown_empty_duplicate_or_mistyped_fields_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let admin = server.admin.clone();
    let raw = |body: &str| {
        server.post_bytes(
            "/v1/keys",
            &admin,
            "application/json",
            body.as_bytes().to_vec(),
        )
    };
    for (body, path, says) in [
        (
            r#"{"scopes":"read","tenants":"acme"}"#,
            "tenants",
            "unknown field",
        ),
        (r#"{"scopes":"read","tenant":""}"#, "tenant", "empty"),
        (
            r#"{"scopes":"read","Tenant":"acme"}"#,
            "Tenant",
            "unknown field",
        ),
        (
            r#"{"scope":"read","tenant":"acme"}"#,
            "scope",
            "unknown field",
        ),
        (r#"{"scopes":"","tenant":"acme"}"#, "scopes", "empty"),
        (
            r#"{"scopes":"reed","tenant":"acme"}"#,
            "scopes",
            "unknown scope",
        ),
        (
            r#"{"scopes":"read,,admin","tenant":"acme"}"#,
            "scopes",
            "empty scope between commas",
        ),
        (
            r#"{"scopes":"read,","tenant":"acme"}"#,
            "scopes",
            "empty scope between commas",
        ),
        (
            r#"{"scopes":["read"],"tenant":"acme"}"#,
            "scopes",
            "must be a string",
        ),
        (
            r#"{"scopes":"read","tenant":"acme","name":""}"#,
            "name",
            "empty",
        ),
    ] {
        let (status, b) = raw(body);
        assert_eq!(status, 400, "{body}: {b}");
        assert_eq!(b["errors"][0]["path"], path, "{body}: {b}");
        assert!(
            b["errors"][0]["message"].as_str().unwrap().contains(says),
            "{body}: {b}"
        );
    }
    let (status, b) = raw(r#"{"scopes":"read","tenant":"acme","tenant":"globex"}"#);
    assert_eq!(status, 400, "{b}");
    assert!(b.to_string().contains("appears twice"), "{b}");
    // Nothing above made a key; a well-formed request does.
    let (_, keys) = server.get("/v1/keys", &admin);
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1, "{keys}");
    let (status, b) = raw(r#"{"scopes":"read","tenant":"acme","name":"auditor"}"#);
    assert_eq!((status, b["tenant"].as_str()), (201, Some("acme")), "{b}");
    // Authentication comes before the body is read.
    let (status, _) = server.post_bytes(
        "/v1/keys",
        "tmk_wrong",
        "application/json",
        b"{oops".to_vec(),
    );
    assert_eq!(status, 401);
}

#[test]
fn an_event_with_a_key_given_twice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let bound = server.key("ingest", Some("acme"));
    let body =
        br#"{"tenant":"acme","tenant":"globex","actor":{"id":"1","type":"user"},"action":"a"}"#;
    let (status, b) = server.post_bytes("/v1/events", &bound, "application/json", body.to_vec());
    assert_eq!(status, 400, "{b}");
    assert!(
        b.to_string().contains("\\\"tenant\\\" appears twice"),
        "{b}"
    );
    let ndjson =
        b"{\"actor\":{\"id\":\"1\",\"type\":\"user\",\"id\":\"2\"},\"action\":\"a\"}\n".to_vec();
    let (status, b) = server.post_bytes("/v1/events", &bound, "application/x-ndjson", ndjson);
    assert_eq!(status, 400, "{b}");
    assert!(b.to_string().contains("appears twice"), "{b}");
}

#[test]
fn an_open_data_dir_is_closed_to_others_and_the_key_stays_off_a_pipe() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    server.stop();
    // An operator (or an old release) left everything open.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let mut server = Server::start(dir.path());
    let e = crate::event("acme", "1", "a");
    assert_eq!(server.post("/v1/events", &server.admin, &e).0, 201);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(dir.path()), 0o700);
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    server.stop();

    // A fresh data dir: the bootstrap key is written, not printed to a pipe.
    let fresh = tempfile::tempdir().unwrap();
    let data = fresh.path().join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(crate::BIN)
        .args(["serve", "--data-dir", data.to_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let key_file = data.join("bootstrap-admin.key");
    crate::wait_for(
        "the bootstrap key file",
        std::time::Duration::from_secs(20),
        || std::net::TcpStream::connect(("127.0.0.1", port)).ok(),
    );
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains(key.trim()));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bootstrap admin key written to"));
    assert_eq!(mode(&data), 0o700);
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
}

/// Reads from `stream` until it closes or `deadline` passes; true if closed.
fn closed_within(stream: &mut std::net::TcpStream, deadline: std::time::Duration) -> bool {
    use std::io::Read as _;
    stream
        .set_read_timeout(Some(std::time::Duration::from_millis(100)))
        .unwrap();
    let start = std::time::Instant::now();
    let mut buf = [0u8; 1024];
    while start.elapsed() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn slow_or_idle_clients_are_cut_off_and_connections_are_capped() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &[
            "--header-timeout",
            "1",
            "--request-timeout",
            "2",
            "--max-connections",
            "4",
        ],
    );
    let addr = server.url.trim_start_matches("http://").to_owned();
    // A head that never ends, and a connection that never says anything.
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut idle = std::net::TcpStream::connect(&addr).unwrap();
    assert!(
        closed_within(&mut slow, std::time::Duration::from_secs(5)),
        "a half-sent head was kept"
    );
    assert!(
        closed_within(&mut idle, std::time::Duration::from_secs(5)),
        "an idle connection was kept"
    );
    // A body that never ends: 408 after the request timeout.
    let mut body = std::net::TcpStream::connect(&addr).unwrap();
    body.write_all(
        format!(
            "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"actor\":",
            server.admin
        )
        .as_bytes(),
    )
    .unwrap();
    let mut answer = String::new();
    body.set_read_timeout(Some(std::time::Duration::from_secs(6)))
        .unwrap();
    let _ = std::io::Read::read_to_string(&mut body, &mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // Four connections held open fill the server; a fifth request waits
    // until one of them closes, then is answered.
    let held: Vec<_> = (0..4)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            s
        })
        .collect();
    let started = std::time::Instant::now();
    let (status, _) = server.get("/healthz", "");
    assert_eq!(status, 200);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(500),
        "answered beside four held connections"
    );
    drop(held);
}

#[test]
fn a_stop_with_a_request_in_flight_still_ends_and_signs() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(dir.path(), &["--request-timeout", "60"]);
    assert_eq!(
        server
            .post("/v1/events", &server.admin, &crate::event("acme", "1", "a"))
            .0,
        201
    );
    let addr = server.url.trim_start_matches("http://").to_owned();
    let mut hanging = std::net::TcpStream::connect(&addr).unwrap();
    hanging
        .write_all(
            format!(
                "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 1000\r\n\r\n{{",
                server.admin
            )
            .as_bytes(),
        )
        .unwrap();
    // The request is in flight once its body is being read (the bytes it
    // announced are held).
    crate::wait_for(
        "the half-sent request to be read",
        std::time::Duration::from_secs(10),
        || {
            let (_, metrics) = server.get("/metrics", &server.admin);
            metrics
                .as_str()?
                .lines()
                .find_map(|l| l.strip_prefix("trailmark_ingest_body_bytes_in_flight "))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|n| *n >= 1000)
        },
    );
    let started = std::time::Instant::now();
    server.stop();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "the stop waited {:?}",
        started.elapsed()
    );
    let (ok, report) = crate::verify_dir(dir.path());
    assert!(
        ok && !report.contains("not yet in a checkpoint"),
        "{report}"
    );
}

#[test]
fn a_clean_stop_leaves_no_unsigned_entry_even_right_after_appends_and_hung_up_clients() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    stop_right_after_appends_and_verify(dir.path(), &[], &["--data-dir", data]);
}

/// The same on a PostgreSQL ledger: the stop waits for the server's own
/// committer, so its last appends are in its final checkpoints.
#[test]
fn a_clean_stop_on_postgres_leaves_no_unsigned_entry_of_its_own() {
    let db = crate::PgDb::new("tm_stop_settle");
    let url = db.source();
    let dir = tempfile::tempdir().unwrap();
    stop_right_after_appends_and_verify(dir.path(), &["--database", &url], &["--database", &url]);
}

/// Appends a batch whose client hangs up and one acknowledged just before
/// a stop; then `verify --max-unsigned-age 0` over `source` must pass.
fn stop_right_after_appends_and_verify(dir: &std::path::Path, extra: &[&str], source: &[&str]) {
    use std::io::Write as _;
    let mut server = Server::start_with(dir, extra);
    let batch: Vec<Value> = (0..500)
        .map(|i| crate::event("acme", &i.to_string(), "update"))
        .collect();
    let body = serde_json::to_vec(&batch).unwrap();
    // A client that sends a whole batch and hangs up without its answer:
    // the append may still land, after the handler is gone.
    let addr = server.url.trim_start_matches("http://").to_owned();
    let mut gone = std::net::TcpStream::connect(&addr).unwrap();
    gone.write_all(
        format!(
            "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            server.admin,
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    gone.write_all(&body).unwrap();
    drop(gone);
    // And one acknowledged just before the stop, within the signing tick.
    assert_eq!(
        server
            .post("/v1/events", &server.admin, &crate::event("acme", "x", "a"))
            .0,
        201
    );
    server.stop();
    // Every entry, `_system`'s records of the final checkpoints included,
    // is in a checkpoint: no allowance for an unsigned tail is needed.
    let mut args = vec!["verify"];
    args.extend(source);
    args.extend(["--max-unsigned-age", "0"]);
    let out = crate::cli(&args);
    let report = crate::said(&out);
    assert!(out.status.success(), "{report}");
    assert!(!report.contains("not yet in a checkpoint"), "{report}");
}

/// A stop while clients are still appending: the store closes every
/// connection before the process exits, so `SQLite` folds and removes the
/// WAL files of the ledger and of its index. A copy of the stopped data dir
/// is then just its files, readable as read-only evidence.
#[test]
fn a_clean_stop_under_load_leaves_no_wal_files_beside_the_database() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let running = std::sync::Arc::new(AtomicBool::new(true));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (url, admin, running) = (
                server.url.clone(),
                server.admin.clone(),
                std::sync::Arc::clone(&running),
            );
            std::thread::spawn(move || {
                let mut acked = 0;
                while running.load(Ordering::Relaxed) {
                    let body: Vec<Value> = (0..50)
                        .map(|i| event("acme", &format!("c{c}-{acked}-{i}"), "update"))
                        .collect();
                    // Refused or cut off once the server stops.
                    let Ok(response) = ureq::post(&format!("{url}/v1/events"))
                        .header("Authorization", &format!("Bearer {admin}"))
                        .send_json(&body)
                    else {
                        break;
                    };
                    assert_eq!(response.status(), 201);
                    acked += 1;
                }
                acked
            })
        })
        .collect();
    crate::wait_for(
        "appends under way",
        std::time::Duration::from_secs(10),
        || {
            let (_, stats) = server.get("/v1/stats?tenant=acme", &server.admin);
            (stats["total"].as_u64() >= Some(500)).then_some(())
        },
    );
    server.stop();
    running.store(false, Ordering::Relaxed);
    let acked: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    assert!(acked > 0);
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with("-wal") || name.ends_with("-shm"))
        .collect();
    left.sort();
    assert!(left.is_empty(), "a clean stop left {left:?}");
    let (ok, report) = crate::verify_dir(dir.path());
    assert!(ok, "{report}");
}

#[test]
fn a_caller_without_a_key_gets_401_before_its_parameters_are_judged_and_errors_are_json() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    assert_eq!(
        server
            .post("/v1/events", &server.admin, &crate::event("acme", "1", "a"))
            .0,
        201
    );
    for path in [
        "/v1/proofs/inclusion?tenant=acme&index=-1&size=1",
        "/v1/entries?tenant=acme&start=-1",
        "/v1/events?limit=lots",
        "/log/acme/tile/0/000",
    ] {
        let (status, body) = server.get(path, "tmk_wrong");
        assert_eq!(status, 401, "{path}: {body}");
        assert!(body.is_object(), "{path}: not JSON: {body}");
    }
    for (path, param) in [
        ("/v1/proofs/inclusion?tenant=acme&index=-1&size=1", "index"),
        ("/v1/entries?tenant=acme&start=-1", "start"),
        ("/v1/events?limit=lots", "limit"),
    ] {
        let (status, body) = server.get(path, &server.admin);
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["errors"][0]["path"], param, "{path}: {body}");
    }
}

#[test]
fn every_read_refuses_by_name_a_parameter_it_does_not_take() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let admin = server.admin.clone();
    let mut update = event("acme", "42", "update");
    update["resource"] = json!({"type": "Customer", "id": "61"});
    let (s, b) = server.post(
        "/v1/events",
        &admin,
        &json!([update.clone(), update.clone(), update]),
    );
    assert_eq!(s, 201, "{b}");
    let id = b["entries"][0]["id"].as_str().unwrap().to_owned();
    // Each read answers with what it takes...
    for path in [
        format!("/v1/events/{id}?tenant=acme"),
        "/v1/stats?tenant=acme&days=1".into(),
        "/v1/resources/Customer/61/history?tenant=acme&actor=42".into(),
        "/v1/proofs/consistency?tenant=acme&first=1&second=3".into(),
    ] {
        let (status, body) = server.get(&path, &admin);
        assert_eq!(status, 200, "{path}: {body}");
    }
    // ...and refuses, naming it, a parameter it would have ignored: one of
    // another route's, paging where a read is whole (an export asked for
    // `limit=100` streamed every event), another record than the path's.
    for (path, param) in [
        ("/v1/checkpoint?tenant=acme&size=1".to_owned(), "size"),
        ("/v1/verifier-key?tenant=acme&index=0".into(), "index"),
        ("/v1/tenants?tenant=acme&limit=1".into(), "limit"),
        (
            "/v1/proofs/inclusion?tenant=acme&index=0&size=1&second=2".into(),
            "second",
        ),
        (
            "/v1/proofs/consistency?tenant=acme&first=1&second=2&size=2".into(),
            "size",
        ),
        (format!("/v1/events/{id}?tenant=acme&actor=42"), "actor"),
        (format!("/v1/events/{id}?tenant=acme&bogus=1"), "bogus"),
        ("/v1/stats?tenant=acme&limit=5".into(), "limit"),
        ("/v1/stats?tenant=acme&cursor=".into(), "cursor"),
        (
            "/v1/export?tenant=acme&format=csv&limit=100".into(),
            "limit",
        ),
        ("/v1/export?tenant=acme&cursor=x".into(), "cursor"),
        (
            "/v1/resources/Customer/61/history?tenant=acme&resource_type=Order".into(),
            "resource_type",
        ),
        (
            "/v1/resources/Customer/61/history?tenant=acme&resource_id=99".into(),
            "resource_id",
        ),
        (
            "/v1/resources/Customer/61/history?tenant=acme&limit=1".into(),
            "limit",
        ),
        (
            "/v1/resources/Customer/61/history?tenant=acme&cursor=x".into(),
            "cursor",
        ),
        // Given twice: named, as the event filters name theirs.
        (
            "/v1/proofs/inclusion?tenant=acme&index=0&index=1&size=2".into(),
            "index",
        ),
        ("/v1/checkpoint?tenant=acme&tenant=globex".into(), "tenant"),
    ] {
        let (status, body) = server.get(&path, &admin);
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["errors"][0]["path"], param, "{path}: {body}");
    }
    // A consistency proof from a larger tree to a smaller one says so (it
    // said the log had as many entries as the smaller tree).
    let (status, body) = server.get(
        "/v1/proofs/consistency?tenant=acme&first=3&second=2",
        &admin,
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["errors"][0],
        json!({"path": "first", "message": "must be at most second (2): a proof runs from the smaller tree to the larger"}),
        "{body}"
    );
}

/// Every route of the API (each path and method its OpenAPI document
/// lists) refuses by name a query parameter it does not take, before it
/// does anything: one that takes none ignored it, so
/// `POST /v1/retention/cleanup?dry_run=true` ran the cleanup and
/// `POST /v1/events?tenant=acme` stored events naming no tenant in the
/// default one. Not the C2SP tiles (`/log/…`: static files' URLs, served
/// alike whatever the query) nor the unauthenticated probes and document.
#[test]
fn no_route_ignores_a_query_parameter_it_does_not_take() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let admin = server.admin.clone();
    let (_, doc) = server.get("/openapi.json", &admin);
    let mut asked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/v1/") {
            continue;
        }
        let concrete = path
            .replace("{type}", "Customer")
            .replace("{id}", "01a25110-80b2-783a-b572-c73bfc27d614");
        for method in ops.as_object().unwrap().keys() {
            let method = method.to_uppercase();
            let body = (method != "GET").then(|| ("application/json", b"{}".to_vec()));
            let url = format!("{concrete}?zz_unknown=1");
            let (status, text) = server.raw(&method, &url, Some(&admin), body).unwrap();
            let answer: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            assert_eq!(status, 400, "{method} {url}: {answer}");
            assert_eq!(
                answer["errors"][0]["path"], "zz_unknown",
                "{method} {url}: {answer}"
            );
            asked += 1;
        }
    }
    assert!(asked >= 33, "only {asked} routes asked");
    // Refused before anything was done: nothing stored (only the reads'
    // records in _system).
    let (status, _) = server
        .raw(
            "POST",
            "/v1/events?tenant=acme",
            Some(&admin),
            Some((
                "application/json",
                event("acme", "1", "login").to_string().into_bytes(),
            )),
        )
        .unwrap();
    assert_eq!(status, 400);
    let (_, tenants) = server.get("/v1/tenants", &admin);
    let stored: Vec<&str> = tenants["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["tenant"].as_str())
        .filter(|t| *t != "_system")
        .collect();
    assert!(stored.is_empty(), "{tenants}");
}

/// An event dated more than an hour after the server received it is
/// refused by name and index, and its batch stores nothing; one dated
/// within the hour, or long before, is stored.
#[test]
fn an_event_dated_more_than_an_hour_ahead_is_refused_and_its_batch_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let admin = server.admin.clone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let dated = |ahead_secs: i64| {
        let ms = i64::try_from(now).unwrap() + ahead_secs * 1000;
        let at = trailmark_core::Timestamp::from_unix_millis(ms).unwrap();
        let mut e = event("acme", "42", "login");
        e["occurred_at"] = json!(at.to_string());
        e
    };
    let (status, body) = server.post(
        "/v1/events",
        &admin,
        &json!([dated(-30 * 86_400), dated(30 * 60), dated(2 * 3600)]),
    );
    assert_eq!(status, 400, "{body}");
    let error = &body["errors"][0];
    assert_eq!(
        (&error["index"], &error["path"]),
        (&json!(2), &json!("occurred_at")),
        "{body}"
    );
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("at most 3600 s ahead of its receipt"),
        "{body}"
    );
    assert_eq!(body["errors"].as_array().unwrap().len(), 1, "{body}");
    let (_, found) = server.get("/v1/events?tenant=acme", &admin);
    assert_eq!(found["events"], json!([]), "nothing of the batch stored");
    let (status, body) = server.post(
        "/v1/events",
        &admin,
        &json!([dated(-30 * 86_400), dated(30 * 60)]),
    );
    assert_eq!(status, 201, "{body}");
}

/// A parameter given empty is refused by name, never read as left out:
/// `?tenant=` read every tenant, `?actor=` (a script's unset variable)
/// every actor's events, `/v1/checkpoint?tenant=` the default tenant's.
#[test]
fn an_empty_parameter_is_refused_never_read_as_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let admin = server.admin.clone();
    let (s, b) = server.post("/v1/events", &admin, &event("acme", "42", "login"));
    assert_eq!(s, 201, "{b}");
    for (path, param) in [
        ("/v1/events?tenant=", "tenant"),
        ("/v1/events?actor=", "actor"),
        ("/v1/events?tenant=acme&resource_id=", "resource_id"),
        ("/v1/events?q=", "q"),
        ("/v1/events?since=", "since"),
        ("/v1/events?until=", "until"),
        ("/v1/events?days=", "days"),
        ("/v1/events?limit=", "limit"),
        ("/v1/events?cursor=", "cursor"),
        ("/v1/stats?tenant=acme&action=", "action"),
        ("/v1/export?format=csv&ip=", "ip"),
        (
            "/v1/resources/User/42/history?tenant=acme&outcome=",
            "outcome",
        ),
        ("/v1/checkpoint?tenant=", "tenant"),
        ("/v1/proofs/inclusion?tenant=&index=0&size=1", "tenant"),
        ("/v1/alerts?tenant=", "tenant"),
        ("/v1/alerts?rule=", "rule"),
        ("/v1/alerts?status=", "status"),
    ] {
        let (status, body) = server.get(path, &admin);
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["errors"][0]["path"], param, "{path}: {body}");
    }
    // The CLI passes an empty flag on as given: refused, nothing exported.
    let out = crate::cli(&[
        "export",
        "--actor",
        "",
        "--url",
        &server.url,
        "--key",
        &admin,
    ]);
    let text = crate::said(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("actor") && text.contains("empty") && !text.contains("\"login\""),
        "{text}"
    );
}

/// A POST of `body` to `/v1/events` with `headers` as written (an HTTP
/// client would not send two Authorization headers): the status and body.
fn post_with_headers(server: &Server, headers: &[String], body: &str) -> (u16, String) {
    use std::fmt::Write as _;
    use std::io::{Read as _, Write as _};
    let addr = server.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let mut request = format!("POST /v1/events HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    let _ = write!(
        request,
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.split(' ').nth(1).unwrap().parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// Two keys in one request are ambiguous: refused (401), never decided by
/// which came first (the first acted; a read key first was refused the
/// ingest, an admin key first stored the event). The same for two
/// positions to append after.
#[test]
fn a_header_given_twice_is_refused_never_decided_by_its_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let admin = server.admin.clone();
    let read = server.key("read", None);
    let body = event("acme", "42", "login").to_string();
    let bearer = |k: &str| format!("Authorization: Bearer {k}");
    for keys in [[&admin, &read], [&read, &admin], [&admin, &admin]] {
        let (status, answer) =
            post_with_headers(&server, &[bearer(keys[0]), bearer(keys[1])], &body);
        assert_eq!(status, 401, "{answer}");
        assert!(
            answer.contains("Authorization given more than once"),
            "{answer}"
        );
    }
    let (status, answer) = post_with_headers(
        &server,
        &[
            bearer(&admin),
            "Trailmark-After: x".into(),
            "Trailmark-After: y".into(),
        ],
        &body,
    );
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer.contains("\"path\":\"Trailmark-After\"") && answer.contains("more than once"),
        "{answer}"
    );
    let (_, found) = server.get("/v1/events?tenant=acme", &admin);
    assert_eq!(found["events"], json!([]), "nothing stored");
    let (status, answer) = post_with_headers(&server, &[bearer(&admin)], &body);
    assert_eq!(status, 201, "{answer}");
}

#[test]
fn the_same_id_with_another_body_is_a_conflict_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let id = "0192f0c2-5a1e-7c4b-9d10-6f1b2a3c4d5e";
    let mut first = crate::event("acme", "alice", "update");
    first["id"] = json!(id);
    first["changes"] = json!({"price": {"old": "1", "new": "2"}});
    let (status, body) = server.post("/v1/events", &server.admin, &first);
    assert_eq!(status, 201, "{body}");
    // The same body again: idempotent, the same seq.
    let (status, again) = server.post("/v1/events", &server.admin, &first);
    assert_eq!(
        (status, &again["entries"][0]["seq"]),
        (201, &body["entries"][0]["seq"])
    );
    // Another body under the id, in a batch with a new event: 409 naming the
    // id, and neither event is stored.
    let mut other = first.clone();
    other["changes"] = json!({"price": {"old": "1", "new": "999"}});
    let fresh = crate::event("acme", "bob", "create");
    let (status, b) = server.post("/v1/events", &server.admin, &json!([fresh, other]));
    assert_eq!(status, 409, "{b}");
    assert!(
        b["error"]
            .as_str()
            .unwrap()
            .starts_with(&format!("events[1].id: event {id}")),
        "{b}"
    );
    let (_, tenants) = server.get("/v1/tenants", &server.admin);
    let acme = tenants["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == "acme")
        .unwrap()
        .clone();
    assert_eq!(acme["size"], 1, "{tenants}");
    // Another actor under the id: a conflict too.
    let mut actor = first.clone();
    actor["actor"]["id"] = json!("mallory");
    assert_eq!(server.post("/v1/events", &server.admin, &actor).0, 409);
}

#[test]
fn ids_with_invisible_format_characters_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    for (field, value) in [
        ("actor.id", "alice\u{200b}"),
        ("actor.id", "\u{202e}nimda"),
        ("resource.id", "61\u{feff}"),
        ("resource.type", "Cust\u{2060}omer"),
    ] {
        let mut e = crate::event("acme", "alice", "update");
        e["resource"] = json!({"type": "Customer", "id": "61"});
        let (object, key) = field.split_once('.').unwrap();
        e[object][key] = json!(value);
        let (status, b) = server.post("/v1/events", &server.admin, &e);
        assert_eq!(status, 400, "{field}={value:?}: {b}");
        assert_eq!(b["errors"][0]["path"], field, "{b}");
        assert!(
            b["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("invisible format characters"),
            "{b}"
        );
    }
    // Visible look-alikes stay what they are: distinct, accepted ids.
    assert_eq!(
        server
            .post(
                "/v1/events",
                &server.admin,
                &crate::event("acme", "alicе", "update")
            )
            .0,
        201
    );
}

#[test]
fn searches_the_index_splits_differently_are_answered_never_a_5xx() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut e = crate::event("acme", "1", "update");
    e["metadata"] = json!({"note": "hello a\u{345}b"});
    assert_eq!(server.post("/v1/events", &server.admin, &e).0, 201);
    // Ⓐ is no letter to the index (a search of nothing finds nothing);
    // U+0345 splits "a\u{345}b" into a and b, in the index and the query.
    for (q, found) in [
        ("Ⓐ", 0),
        ("hello%E2%92%B6", 1),
        ("a%CD%85b", 1),
        ("x%CC%81", 0),
    ] {
        for path in ["/v1/events", "/v1/stats"] {
            let (status, body) = server.get(&format!("{path}?tenant=acme&q={q}"), &server.admin);
            assert_eq!(status, 200, "{path} q={q}: {body}");
            if path == "/v1/events" {
                assert_eq!(
                    body["events"].as_array().unwrap().len(),
                    found,
                    "q={q}: {body}"
                );
            }
        }
        let (status, _) = server.get(&format!("/v1/export?tenant=acme&q={q}"), &server.admin);
        assert_eq!(status, 200, "export q={q}");
    }
}

#[test]
fn a_search_is_bounded_in_words_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let reader = server.key("read", None);
    // Thousands of repeated words (30,000 cost 9 s and 619 MB): refused by size.
    let (status, b) = server.get(&format!("/v1/events?q={}", "spam+".repeat(2_000)), &reader);
    assert_eq!((status, &b["errors"][0]["path"]), (400, &json!("q")), "{b}");
    // Repeats count once; more than 32 different words are refused.
    let (status, b) = server.get(&format!("/v1/events?q={}", "same+".repeat(100)), &reader);
    assert_eq!(status, 200, "{b}");
    let many: Vec<String> = (0..33).map(|i| format!("w{i}")).collect();
    let (status, b) = server.get(&format!("/v1/events?q={}", many.join("+")), &reader);
    assert_eq!(status, 400, "{b}");
    assert!(
        b["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("at most 32"),
        "{b}"
    );
    // Meanwhile ingest and authentication answer as usual.
    assert_eq!(
        server
            .post("/v1/events", &server.admin, &crate::event("acme", "1", "a"))
            .0,
        201
    );
}

#[test]
fn bodies_being_read_at_once_are_bounded_in_bytes() {
    use std::io::{Read as _, Write as _};
    let dir = tempfile::tempdir().unwrap();
    let max = 16 * 1024 * 1024;
    let server = Server::start_with(dir.path(), &["--max-body-bytes", &max.to_string()]);
    let addr = server.url.trim_start_matches("http://").to_owned();
    let announce = |stream: &mut std::net::TcpStream| {
        stream
            .write_all(
                format!(
                    "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {max}\r\n\r\n[",
                    server.admin
                )
                .as_bytes(),
            )
            .unwrap();
    };
    // Five bodies of 16 MiB on their way: the 64 MiB the server reads at
    // once hold four; whichever comes last is told to retry.
    let mut streams: Vec<_> = (0..5)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            announce(&mut s);
            s
        })
        .collect();
    let mut refused = 0;
    for s in &mut streams {
        s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let mut answer = [0u8; 12];
        if s.read_exact(&mut answer).is_ok() {
            assert_eq!(&answer, b"HTTP/1.1 429");
            refused += 1;
        }
    }
    assert_eq!(refused, 1, "exactly the body past 64 MiB is refused");
    drop(streams);
    // Room again once they are gone.
    crate::wait_for(
        "ingest to accept again",
        std::time::Duration::from_secs(10),
        || {
            (server
                .post("/v1/events", &server.admin, &crate::event("acme", "1", "a"))
                .0
                == 201)
                .then_some(())
        },
    );
}

/// The CLI run with `args`, which must fail: what it wrote on stderr.
fn run(args: &[&str]) -> String {
    let out = std::process::Command::new(crate::BIN)
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{args:?} ran");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `verify --database` of a database no Trailmark server stores in is told
/// so, as `--data-dir` of a directory without a ledger is, and a ledger of a
/// newer schema than this build reads is refused by its version; before, the
/// first read failed on a table it looked for, with the driver's "db error"
/// said twice. Nothing is written to either database.
#[test]
fn verifying_a_database_without_a_ledger_says_so() {
    let db = crate::PgDb::new("tm_no_ledger");
    let url = db.source();
    let err = run(&["verify", "--database", &url]);
    assert!(
        err.contains("the database holds no Trailmark ledger (no table trailmark_ledger.migrations): name the database a Trailmark server stores its trail in"),
        "{err}"
    );
    assert!(!err.contains("db error: db error"), "{err}");
    assert_eq!(
        db.text("SELECT count(*)::text FROM pg_namespace WHERE nspname = 'trailmark_ledger'"),
        "0",
        "verify made the schema"
    );
    db.sql(
        "CREATE SCHEMA trailmark_ledger;
         CREATE TABLE trailmark_ledger.migrations (version integer PRIMARY KEY);
         INSERT INTO trailmark_ledger.migrations VALUES (1), (9999);",
    );
    let err = run(&["verify", "--database", &url]);
    assert!(
        err.contains("the database has ledger schema version 9999, newer than this trailmark understands: upgrade trailmark"),
        "{err}"
    );
}

/// The ingest queue and body bounds out of range stop `serve`, naming the
/// one that is (the message named both, whichever was wrong).
#[test]
fn serve_bounds_out_of_range_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let serve = [
        "serve",
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ];
    let err = run(&[&serve[..], &["--max-body-bytes", "10"]].concat());
    assert!(
        err.contains("--max-body-bytes (max_body_bytes) must be at least 1024, got 10")
            && !err.contains("queue"),
        "{err}"
    );
    let err = run(&[&serve[..], &["--queue-capacity", "0"]].concat());
    assert!(
        err.contains("--queue-capacity (queue_capacity) must be at least 1")
            && !err.contains("body"),
        "{err}"
    );
    assert!(!data.join("trailmark.db").exists(), "a store was made");

    // An empty data dir in the config file is named, not read as the
    // current directory ("No such file or directory" named nothing).
    let config = dir.path().join("trailmark.toml");
    std::fs::write(&config, "data_dir = \"\"\n").unwrap();
    let err = run(&[
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(
        err.contains("data_dir: empty: name a directory, or leave it out for ./trailmark-data"),
        "{err}"
    );
}

/// A capture batch or linger out of bounds stops the command with a message
/// naming the setting and its bounds; it is never cut to fit.
#[test]
fn capture_batch_and_linger_out_of_bounds_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("trailmark.toml");
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let source = "host=127.0.0.1 port=1 user=nobody dbname=none";
    let serve = ["serve", "--data-dir", data, "--listen", "127.0.0.1:0"];
    let err = run(&[
        &serve[..],
        &["--capture-source", source, "--capture-linger-ms", "1001"],
    ]
    .concat());
    assert!(
        err.contains("--capture-linger-ms") && err.contains("0 to 1000 milliseconds"),
        "{err}"
    );
    for (setting, message) in [
        (
            "batch = 0",
            "[capture] batch: must be 1 to 5000 rows (got 0)",
        ),
        (
            "batch = 5001",
            "[capture] batch: must be 1 to 5000 rows (got 5001)",
        ),
        (
            "linger_ms = 5000",
            "[capture] linger_ms): must be 0 to 1000 milliseconds (got 5000)",
        ),
    ] {
        std::fs::write(
            &config,
            format!("[capture]\nsource = \"{source}\"\n{setting}\n"),
        )
        .unwrap();
        let err = run(&[&serve[..], &["--config", config.to_str().unwrap()]].concat());
        assert!(err.contains(message), "{setting}: {err}");
    }
    assert!(
        !std::path::Path::new(data).join("trailmark.db").exists(),
        "a store was made"
    );

    let pg_run = ["capture", "pg", "run", "--source", source, "--key", "k"];
    let err = run(&[&pg_run[..], &["--batch", "0"]].concat());
    assert!(
        err.contains("--batch: must be 1 to 5000 rows (got 0)"),
        "{err}"
    );
    let err = run(&[&pg_run[..], &["--linger-ms", "1001"]].concat());
    assert!(
        err.contains("--linger-ms: must be 0 to 1000 milliseconds (got 1001)"),
        "{err}"
    );
}

/// TLS settings that cannot be honoured (a PostgreSQL connection string's,
/// the authorities file of outgoing HTTPS) stop the command before it
/// connects, naming the setting (and never repeating a connection string,
/// which may hold a password).
#[test]
fn tls_settings_that_cannot_be_honoured_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let serve = ["serve", "--data-dir", data, "--listen", "127.0.0.1:0"];
    let bad = "host=127.0.0.1 port=1 user=nobody password=hunter2 dbname=none sslmode=verify";
    for (args, named) in [
        (
            vec!["--capture-source", bad],
            "capture source (--capture-source",
        ),
        (vec!["--database", bad], "the database URL"),
    ] {
        let err = run(&[&serve[..], &args[..]].concat());
        assert!(
            err.contains(named) && err.contains("sslmode: \"verify\" is not one of"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }
    let err = run(&[
        "capture",
        "pg",
        "status",
        "--source",
        "host=127.0.0.1 port=1 user=nobody sslmode=require sslrootcert=/etc/ca.pem",
    ]);
    assert!(
        err.contains("sslrootcert: only sslmode=verify-ca or verify-full"),
        "{err}"
    );
    // The authorities of outgoing HTTPS alike: a file that is not there
    // stops serve, named, before anything is opened.
    let missing = dir.path().join("no-such-ca.pem");
    let err = run(&[&serve[..], &["--ca-file", missing.to_str().unwrap()]].concat());
    assert!(
        err.contains("ca file (--ca-file, TRAILMARK_CA_FILE, ca_file): cannot read"),
        "{err}"
    );
    assert!(
        !std::path::Path::new(data).join("trailmark.db").exists(),
        "a store was made"
    );
}

/// An id names one thing within one tenant. Asked without a tenant by a
/// key that sees several, an event id or a record found in two tenants is
/// refused (409, naming both, asking for `?tenant=`), never answered with
/// the first found or, for a record's history, with two records' events as
/// one life: its `state_after` laid one tenant's fields over the other's.
/// With the tenant, each answers alone.
#[test]
fn an_id_in_two_tenants_is_refused_as_ambiguous_without_a_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let id = "0192f0c2-5a1e-7c4b-9d10-6f1b2a3c4d5e";
    for (tenant, field) in [("north", "email"), ("south", "name")] {
        let mut e = crate::event(tenant, "u1", "update");
        e["id"] = json!(id);
        e["resource"] = json!({"type": "Customer", "id": "61"});
        e["changes"] = json!({field: {"old": null, "new": tenant}});
        assert_eq!(server.post("/v1/events", &server.admin, &e).0, 201);
    }
    for path in [
        format!("/v1/events/{id}"),
        "/v1/resources/Customer/61/history".to_owned(),
    ] {
        let (status, body) = server.get(&path, &server.admin);
        assert_eq!(status, 409, "{path}: {body}");
        let message = body["error"].as_str().unwrap();
        assert!(
            message.contains("north") && message.contains("south") && message.contains("?tenant="),
            "{path}: {message}"
        );
    }
    let (status, history) = server.get(
        "/v1/resources/Customer/61/history?tenant=south",
        &server.admin,
    );
    assert_eq!(status, 200, "{history}");
    assert_eq!(history["events"].as_array().unwrap().len(), 1, "{history}");
    assert_eq!(
        history["events"][0]["state_after"],
        json!({"name": "south"})
    );
    let bound = server.key("read", Some("north"));
    let (status, history) = server.get("/v1/resources/Customer/61/history", &bound);
    assert_eq!(status, 200, "{history}");
    assert_eq!(
        history["events"][0]["state_after"],
        json!({"email": "north"})
    );
}

/// The trail holds at most `max_tenants` tenants (each a tree of its own,
/// with keys of its own, looked at by every checkpointer sweep): a batch whose
/// new tenants would pass the bound is refused whole (400), naming each
/// event that would make one, while existing tenants keep taking events;
/// a restart reads the count back; a raised bound takes them. A producer
/// that put each user in a tenant of its own made one per event: 120,000
/// tenants held a debug server at a core (the checkpointer then read every
/// head each tick) and 1.4 GB while idle.
#[test]
fn a_batch_that_would_pass_max_tenants_is_refused_naming_the_new_tenants() {
    let dir = tempfile::tempdir().unwrap();
    // `_system` (its bootstrap key's record) is one of the three.
    let mut server = Server::start_with(dir.path(), &["--max-tenants", "3"]);
    let post = |server: &Server, body: &Value| server.post("/v1/events", &server.admin, body);
    assert_eq!(post(&server, &event("acme", "u1", "login")).0, 201);
    let (status, body) = post(
        &server,
        &json!([
            event("acme", "u2", "login"),
            event("globex", "u3", "login"),
            event("initech", "u4", "login"),
            event("acme", "u5", "login"),
            event("globex", "u6", "login"),
        ]),
    );
    assert_eq!(status, 400, "{body}");
    let problems = body["errors"].as_array().unwrap();
    let named: Vec<(u64, &str)> = problems
        .iter()
        .map(|p| (p["index"].as_u64().unwrap(), p["path"].as_str().unwrap()))
        .collect();
    assert_eq!(
        named,
        [(1, "tenant"), (2, "tenant"), (4, "tenant")],
        "{body}"
    );
    let said = problems[0]["message"].as_str().unwrap();
    assert!(
        said.contains("globex would be a new tenant")
            && said.contains("holds 2 of at most 3 (max_tenants)"),
        "{said}"
    );
    let (_, acme) = server.get("/v1/events?tenant=acme", &server.admin);
    assert_eq!(
        acme["events"].as_array().unwrap().len(),
        1,
        "nothing of it stored"
    );
    assert_eq!(post(&server, &event("globex", "u3", "login")).0, 201);
    assert_eq!(post(&server, &event("initech", "u4", "login")).0, 400);
    assert_eq!(post(&server, &event("acme", "u5", "login")).0, 201);

    server.stop();
    let mut server = Server::start_with(dir.path(), &["--max-tenants", "3"]);
    assert_eq!(
        post(&server, &event("initech", "u4", "login")).0,
        400,
        "the count read back"
    );
    server.stop();
    let raised = Server::start_with(dir.path(), &["--max-tenants", "4"]);
    assert_eq!(post(&raised, &event("initech", "u4", "login")).0, 201);
    let err = run(&[
        "serve",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--max-tenants",
        "0",
    ]);
    assert!(
        err.contains("--max-tenants (max_tenants) must be at least 1"),
        "{err}"
    );
}
