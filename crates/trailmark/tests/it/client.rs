//! The Rust client (`trailmark-client`) against a real server that is
//! killed and restarted: typed errors, and a spool that delivers every
//! event once across the outage and across a restart of the application.

use std::time::{Duration, Instant};

use serde_json::json;
use trailmark_client::{Client, Error, SpoolOptions, Spooler};

use crate::{Server, event};

fn options() -> SpoolOptions {
    SpoolOptions {
        interval: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        ..SpoolOptions::default()
    }
}

/// A server on `<dir>/data`, for a test to kill and start again on its
/// address (`Server::restart_on`).
fn restartable(dir: &std::path::Path) -> (std::path::PathBuf, Server) {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let server = Server::start(&data);
    (data, server)
}

fn ids_in(server: &Server, tenant: &str) -> Vec<String> {
    let (status, page) = server.get(
        &format!("/v1/events?tenant={tenant}&limit=1000"),
        &server.admin,
    );
    assert_eq!(status, 200, "{page}");
    let mut ids: Vec<String> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[test]
fn errors_are_typed_by_what_the_server_answered() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = Client::new(&server.url, &server.admin, Duration::from_secs(10)).unwrap();
    let stored = client.ingest(&[event("acme", "u1", "login")]).unwrap();
    assert_eq!(stored.entries.len(), 1);
    match client.ingest(&[json!({"tenant": "acme", "action": "x"})]) {
        Err(Error::Rejected(problems)) => {
            assert!(
                problems.iter().any(|p| p.path.starts_with("actor")),
                "{problems:?}"
            );
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    let stranger = Client::new(&server.url, "tm_not_a_key", Duration::from_secs(10)).unwrap();
    assert!(matches!(
        stranger.ingest(&[event("acme", "u1", "login")]),
        Err(Error::Unauthorized(_))
    ));
    let reader = server.key("read", None);
    let reader = Client::new(&server.url, &reader, Duration::from_secs(10)).unwrap();
    assert!(matches!(
        reader.ingest(&[event("acme", "u1", "login")]),
        Err(Error::Forbidden(_))
    ));
    let page: trailmark_server::wire::EventsPage =
        client.get("/v1/events", &[("tenant", "acme")]).unwrap();
    assert_eq!(page.events.len(), 1);
    assert!(matches!(
        client.get::<serde_json::Value>("/v1/events/not-an-id", &[]),
        Err(Error::Rejected(_))
    ));
    let gone = Client::new("http://127.0.0.1:9", &server.admin, Duration::from_secs(2)).unwrap();
    let err = gone.ingest(&[event("acme", "u1", "login")]).unwrap_err();
    assert!(
        matches!(err, Error::Transport(_)) && err.is_retryable(),
        "{err}"
    );
    assert!(Client::new("ftp://x", "k", Duration::from_secs(1)).is_err());
}

#[test]
fn the_spool_delivers_every_event_once_across_a_killed_server_and_an_application_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (data, mut server) = restartable(dir.path());
    let url = server.url.clone();
    let key = server.admin.clone();
    let spool = dir.path().join("spool.sqlite3");
    let client = || Client::new(&url, &key, Duration::from_secs(5)).unwrap();

    let first = Spooler::open(client(), &spool, options()).unwrap();
    let mut ids = Vec::new();
    for n in 0..50 {
        ids.push(
            first
                .record(event("spooled", &format!("u{n}"), "page.view"))
                .unwrap()
                .unwrap(),
        );
    }
    assert!(first.flush(Duration::from_secs(20)));
    server.kill9();
    // The server is gone: recording neither fails nor waits on it.
    let started = Instant::now();
    for n in 50..150 {
        ids.push(
            first
                .record(event("spooled", &format!("u{n}"), "page.view"))
                .unwrap()
                .unwrap(),
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(first.pending(), 100);
    // The application stops mid-outage; a new one opens the same spool.
    drop(first);
    let second = Spooler::open(client(), &spool, options()).unwrap();
    for n in 150..200 {
        ids.push(
            second
                .record(event("spooled", &format!("u{n}"), "page.view"))
                .unwrap()
                .unwrap(),
        );
    }
    let server = Server::restart_on(&data, &url);
    assert!(
        second.flush(Duration::from_secs(30)),
        "{} pending",
        second.pending()
    );
    ids.sort();
    assert_eq!(ids_in(&server, "spooled"), ids, "every event, once");
    // An event only the server refuses is set aside, not retried forever.
    let bad = second.record(dated_ahead("spooled", "u")).unwrap().unwrap();
    assert!(second.flush(Duration::from_secs(20)));
    let refused = second.rejected();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].0, bad);
    // One the ledger would never store is refused at once, naming each
    // problem, and nothing is spooled.
    assert!(matches!(
        second.record(json!({"tenant": "x"})),
        Err(Error::Invalid(_))
    ));
    let blank =
        json!({"tenant": "Not A Tenant!", "actor": {"id": "  ", "type": "user"}, "action": "x"});
    match second.record(blank) {
        Err(Error::Invalid(m)) => assert!(
            m.contains("tenant:") && m.contains("actor.id: must not be white space alone"),
            "{m}"
        ),
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert_eq!(second.pending(), 0);
}

/// An event only the server can refuse (the ledger takes events dated at
/// most an hour ahead of its clock): dated two hours ahead.
fn dated_ahead(tenant: &str, actor: &str) -> serde_json::Value {
    let mut e = event(tenant, actor, "a.b");
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let at = i64::try_from(ms).unwrap() + 2 * 3_600_000;
    e["occurred_at"] = json!(
        trailmark_core::Timestamp::from_unix_millis(at)
            .unwrap()
            .to_string()
    );
    e
}

/// A receipt fetched through the client proves its event offline; a
/// changed receipt does not. A follower accepts a log that grows, and
/// catches the server when it comes back on an older copy of its data
/// (a rollback), keeping the checkpoint it had seen.
#[test]
fn receipts_are_checked_and_a_follower_catches_a_server_rolled_back() {
    use trailmark_client::{Divergence, Follower, check_receipt};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let old = dir.path().join("old");
    std::fs::create_dir_all(&data).unwrap();
    let mut server = Server::start(&data);
    let url = server.url.clone();
    let client = Client::new(&url, &server.admin, Duration::from_secs(10)).unwrap();
    let batch: Vec<_> = (0..5)
        .map(|n| event("ledger", &format!("u{n}"), "login"))
        .collect();
    let stored = client.ingest(&batch).unwrap();
    server.wait_checkpoint("ledger", 5);
    let id = &stored.entries[2].id;
    let receipt = crate::wait_for("a receipt", Duration::from_secs(10), || {
        client.receipt(id).unwrap()
    });
    let key = client.verifier_key("ledger").unwrap();
    let facts = check_receipt(&receipt, std::slice::from_ref(&key)).unwrap();
    assert_eq!(facts.envelope.seq.get(), stored.entries[2].seq);
    assert!(facts.tree_size >= 5);
    // The same envelope claimed at another place in the log.
    let forged = receipt.replacen("\nindex 2\n", "\nindex 3\n", 1);
    assert_ne!(forged, receipt);
    assert!(matches!(
        check_receipt(&forged, std::slice::from_ref(&key)),
        Err(Error::Unverified(_))
    ));

    let follower = Follower::open(&dir.path().join("seen.sqlite3")).unwrap();
    let first = follower.check(&client, "ledger").unwrap();
    assert!(first.size >= 5);
    // The operator keeps a copy of the data dir as it is now.
    server.stop();
    copy_dir(&data, &old);
    let mut server = Server::restart_on(&data, &url);
    let more: Vec<_> = (5..12)
        .map(|n| event("ledger", &format!("u{n}"), "login"))
        .collect();
    client.ingest(&more).unwrap();
    server.wait_checkpoint("ledger", first.size + 7);
    let grown = follower.check(&client, "ledger").unwrap();
    assert!(grown.size >= first.size + 7, "{grown:?}");
    // The server comes back on the old copy: a shorter log, signed by the
    // same key, answers the same URL.
    server.kill9();
    let _server = Server::restart_on(&old, &url);
    match follower.check(&client, "ledger") {
        Err(Error::Diverged {
            why: Divergence::Rollback { seen, now },
            ..
        }) => assert!(seen == grown.size && now < seen, "{seen} {now}"),
        other => panic!("expected a rollback, got {other:?}"),
    }
    assert_eq!(follower.seen("ledger").unwrap(), Some(grown));
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// An axum application with the client's layer: a login, a failed login
/// and an event recorded from a task the handler spawned, all with the
/// request's client IP — the forwarded one when the request came through
/// the trusted proxy, the peer's when no proxy is trusted.
#[test]
fn the_axum_layer_believes_forwarded_addresses_only_from_a_trusted_proxy() {
    use std::sync::Arc;

    use axum::extract::State;
    use axum::routing::post;
    use trailmark_client::web::{self, Actor, TrustedProxies};

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let client = Client::new(&server.url, &server.admin, Duration::from_secs(5)).unwrap();
    let spooler = Arc::new(Spooler::open(client, &dir.path().join("spool"), options()).unwrap());
    let runtime = tokio::runtime::Runtime::new().unwrap();

    let app = |tenant: &'static str, proxies: TrustedProxies| {
        axum::Router::new()
            .route(
                "/login",
                post(move |State(spool): State<Arc<Spooler>>| async move {
                    web::update(|c| c.tenant = Some(tenant.into()));
                    spool
                        .record(web::login(Actor::user("alice").named("Alice")).unwrap())
                        .unwrap();
                    // A task the handler starts keeps the request's context.
                    let for_task = Arc::clone(&spool);
                    web::spawn(async move {
                        let export = web::event("report.export", json!({})).unwrap();
                        for_task.record(export).unwrap();
                    })
                    .await
                    .unwrap();
                    "ok"
                }),
            )
            .route(
                "/login-failed",
                post(move |State(spool): State<Arc<Spooler>>| async move {
                    web::update(|c| c.tenant = Some(tenant.into()));
                    spool
                        .record(web::login_failed(Some("mallory")).unwrap())
                        .unwrap();
                    "ok"
                }),
            )
            .with_state(Arc::clone(&spooler))
            .layer(axum::middleware::from_fn_with_state(proxies, web::track))
    };
    let serve = |router: axum::Router| {
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        runtime.spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await
        });
        url
    };
    let behind_proxy = serve(app(
        "proxied",
        TrustedProxies::parse(["127.0.0.0/8"]).unwrap(),
    ));
    let direct = serve(app("direct", TrustedProxies::default()));
    for base in [&behind_proxy, &direct] {
        for path in ["/login", "/login-failed"] {
            let answer = ureq::post(format!("{base}{path}"))
                .header("X-Forwarded-For", "198.51.100.4, 203.0.113.7")
                .header("User-Agent", "layer-test/1")
                .send_empty()
                .unwrap();
            assert_eq!(answer.status(), 200);
        }
    }
    assert!(spooler.flush(Duration::from_secs(20)));
    for (tenant, ip) in [("proxied", "203.0.113.7"), ("direct", "127.0.0.1")] {
        let (status, page) = server.get(&format!("/v1/events?tenant={tenant}"), &server.admin);
        assert_eq!(status, 200, "{page}");
        let events = page["events"].as_array().unwrap();
        assert_eq!(events.len(), 3, "{page}");
        for e in events {
            assert_eq!(e["context"]["ip"], ip, "{e}");
            assert_eq!(e["context"]["user_agent"], "layer-test/1", "{e}");
        }
        let by_action = |action: &str, outcome: &str| {
            events
                .iter()
                .find(|e| e["action"] == action && e["outcome"] == outcome)
                .unwrap_or_else(|| panic!("{action} {outcome} in {page}"))
                .clone()
        };
        assert_eq!(by_action("auth.login", "success")["actor"]["id"], "alice");
        assert_eq!(
            by_action("report.export", "success")["actor"]["id"],
            "alice"
        );
        let failed = by_action("auth.login", "failure");
        assert_eq!(failed["actor"]["name"], "mallory");
        assert_eq!(failed["actor"]["type"], "anonymous");
    }
}

/// The CLI's outgoing HTTPS (here `verify --url`, through the Rust client)
/// checks a server's certificate against the built-in roots, or against the
/// authorities of the file `TRAILMARK_CA_FILE` names; an empty value is
/// refused by name. The server is `openssl s_server`: once its certificate
/// is trusted the call gets past TLS and fails on its answer, not Trailmark's.
#[test]
fn the_cli_trusts_the_authorities_trailmark_ca_file_names() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = crate::self_signed(dir.path());
    let port = crate::free_port();
    let mut tls_server = std::process::Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    crate::wait_for(
        "openssl s_server to listen",
        Duration::from_secs(10),
        || std::net::TcpStream::connect(("127.0.0.1", port)).ok(),
    );
    let url = format!("https://127.0.0.1:{port}");
    let verify = |ca_file: Option<&std::ffi::OsStr>| {
        let mut command = std::process::Command::new(crate::BIN);
        command.args([
            "verify", "--url", &url, "--key", "tm_key", "--tenant", "acme",
        ]);
        command.env_remove("TRAILMARK_CA_FILE");
        if let Some(file) = ca_file {
            command.env("TRAILMARK_CA_FILE", file);
        }
        let out = command.output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let untrusted = verify(None);
    let trusted = verify(Some(cert.as_os_str()));
    let empty = verify(Some(std::ffi::OsStr::new("")));
    tls_server.kill().unwrap();
    tls_server.wait().unwrap();
    assert!(untrusted.contains("UnknownIssuer"), "{untrusted}");
    assert!(
        !trusted.contains("UnknownIssuer") && !trusted.contains("certificate"),
        "{trusted}"
    );
    assert!(empty.contains("TRAILMARK_CA_FILE: empty"), "{empty}");
}

/// The server's count of ingest requests since it started (`/metrics`).
fn ingest_requests(server: &Server) -> u64 {
    let (_, metrics) = server.get("/metrics", &server.admin);
    metrics
        .as_str()
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("trailmark_ingest_requests_total "))
        .unwrap()
        .parse()
        .unwrap()
}

/// An event the server refuses never takes the rest of its batch with it: a
/// 409 (an id stored for another event; it names no index) is narrowed
/// down to its event, the batch grows back to its size afterwards, and a
/// 400 naming half of a batch of 100 keeps aside exactly those. The Python
/// client's test of the same name holds it to the same.
#[test]
fn an_event_refused_in_a_batch_never_takes_the_others_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let (data, mut server) = restartable(dir.path());
    let url = server.url.clone();
    let client = Client::new(&url, &server.admin, Duration::from_secs(5)).unwrap();
    let spool = Spooler::open(
        client,
        &dir.path().join("spool.sqlite3"),
        SpoolOptions {
            batch: 100,
            ..options()
        },
    )
    .unwrap();
    let taken = "0192f0c2-5a1e-7c4b-9d10-6f1b2a3c4d5e";
    let mut first = event("mixed", "u", "door.open");
    first["id"] = json!(taken);
    spool.record(first.clone()).unwrap();
    assert!(spool.flush(Duration::from_secs(20)));

    // One batch: nine new events and, among them, the stored id for another.
    server.kill9();
    let mut good = Vec::new();
    for n in 0..9 {
        if n == 4 {
            let mut other = first.clone();
            other["action"] = json!("door.close");
            spool.record(other).unwrap();
        }
        let e = event("mixed", &format!("u{n}"), "a.b");
        good.push(spool.record(e).unwrap().unwrap());
    }
    let mut server = Server::restart_on(&data, &url);
    assert!(spool.flush(Duration::from_secs(30)));
    let refused = spool.rejected();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].0, taken);
    good.push(taken.to_owned());
    good.sort();
    assert_eq!(ids_in(&server, "mixed"), good);

    // The narrowed batch grows back: 300 events in a few requests.
    server.kill9();
    let mut more: Vec<String> = (0..300)
        .map(|n| {
            let e = event("after", &format!("v{n}"), "a.b");
            spool.record(e).unwrap().unwrap()
        })
        .collect();
    let mut server = Server::restart_on(&data, &url);
    assert!(spool.flush(Duration::from_secs(30)));
    let requests = ingest_requests(&server);
    assert!(requests <= 12, "{requests} requests for 300 events");
    more.sort();
    let (_, page) = server.get("/v1/stats?tenant=after&days=1", &server.admin);
    assert_eq!(page["total"], json!(more.len()), "{page}");

    // A 400 naming 50 events of a batch of 100 (its answer far past a few
    // kilobytes): exactly those are kept aside.
    server.kill9();
    let mut kept = Vec::new();
    let mut bad = Vec::new();
    for n in 0..100 {
        let e = if n % 2 == 1 {
            dated_ahead("long", &format!("w{n}"))
        } else {
            event("long", &format!("w{n}"), "a.b")
        };
        let id = spool.record(e).unwrap().unwrap();
        if n % 2 == 1 { &mut bad } else { &mut kept }.push(id);
    }
    let server = Server::restart_on(&data, &url);
    assert!(spool.flush(Duration::from_secs(30)));
    kept.sort();
    assert_eq!(ids_in(&server, "long"), kept);
    let mut refused: Vec<String> = spool
        .rejected()
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| id != taken)
        .collect();
    refused.sort();
    bad.sort();
    assert_eq!(refused, bad);
}

/// The events the server refused, kept aside in the spool, are bounded:
/// the newest `max_rejected` stay, older ones are dropped and counted (an
/// application refused on every event filled its disk before).
#[test]
fn refused_events_kept_aside_are_bounded_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let (data, mut server) = restartable(dir.path());
    let url = server.url.clone();
    let client = Client::new(&url, &server.admin, Duration::from_secs(5)).unwrap();
    let path = dir.path().join("spool.sqlite3");
    let bounded = SpoolOptions {
        max_rejected: 3,
        ..options()
    };
    server.kill9();
    let spool = Spooler::open(client.clone(), &path, bounded).unwrap();
    let bad: Vec<String> = (0..5)
        .map(|n| {
            let e = dated_ahead("kept", &format!("u{n}"));
            spool.record(e).unwrap().unwrap()
        })
        .collect();
    let _server = Server::restart_on(&data, &url);
    assert!(spool.flush(Duration::from_secs(20)));
    let mut kept: Vec<String> = spool.rejected().into_iter().map(|(id, _)| id).collect();
    kept.sort();
    let mut newest = bad[2..].to_vec();
    newest.sort();
    assert_eq!(kept, newest);
    let counts = spool.counts();
    assert_eq!(
        (
            counts.rejected.load(std::sync::atomic::Ordering::Relaxed),
            counts
                .rejected_dropped
                .load(std::sync::atomic::Ordering::Relaxed)
        ),
        (5, 2)
    );
    let none = SpoolOptions {
        max_rejected: 0,
        ..options()
    };
    assert!(matches!(
        Spooler::open(client, &dir.path().join("other.sqlite3"), none),
        Err(Error::Invalid(m)) if m.starts_with("max_rejected")
    ));
}
