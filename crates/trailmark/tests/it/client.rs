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
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut server = Server::start(&data);
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
    // An event the server refuses is set aside, not retried forever.
    let bad = second
        .record(
            json!({"tenant": "Not A Tenant!", "actor": {"id": "u", "type": "user"}, "action": "x"}),
        )
        .unwrap()
        .unwrap();
    assert!(second.flush(Duration::from_secs(20)));
    let refused = second.rejected();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].0, bad);
    assert!(matches!(
        second.record(json!({"tenant": "x"})),
        Err(Error::Invalid(_))
    ));
}
