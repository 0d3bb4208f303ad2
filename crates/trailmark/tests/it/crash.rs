//! `kill -9` at random moments while clients ingest: after each restart every
//! acknowledged event is there exactly once and the trail verifies.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::{Server, event, verify_dir};

/// Deterministic pseudo-random delays (no rand dependency for one number).
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn acknowledged_events_survive_kill_dash_nine_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let started = Instant::now();
    let mut rounds = 0;
    let mut counter = 0u64;
    while rounds < 20 && started.elapsed() < Duration::from_secs(150) {
        rounds += 1;
        let mut server = Server::start(dir.path());
        let url = server.url.clone();
        let key = server.admin.clone();
        let clients: Vec<_> = (0..4)
            .map(|c| {
                let (url, key, acked) = (url.clone(), key.clone(), Arc::clone(&acked));
                let first = counter + c * 1_000_000;
                thread::spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .timeout_global(Some(Duration::from_secs(5)))
                        .build()
                        .into();
                    for n in first.. {
                        let id = format!("00000000-0000-4000-8000-{n:012x}");
                        let mut e = event("crash", &format!("client-{c}"), "update");
                        e["id"] = json!(id);
                        let sent = agent
                            .post(format!("{url}/v1/events"))
                            .header("Authorization", format!("Bearer {key}"))
                            .header("Content-Type", "application/json")
                            .send(e.to_string().as_bytes());
                        match sent {
                            Ok(r) if r.status() == 201 => acked.lock().unwrap().push(id),
                            _ => return, // the server died
                        }
                    }
                })
            })
            .collect();
        counter += 4 * 1_000_000;
        thread::sleep(Duration::from_millis(30 + next(&mut rng) % 300));
        server.kill9();
        for c in clients {
            c.join().unwrap();
        }
    }
    assert!(
        rounds >= 20,
        "only {rounds} crash rounds fit in the time bound"
    );

    let server = Server::start(dir.path());
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 100,
        "too few events were acknowledged ({}) to mean anything",
        acked.len()
    );
    let conn = rusqlite::Connection::open(dir.path().join("trailmark.db")).unwrap();
    for id in &acked {
        let copies: i64 = conn
            .query_row(
                "SELECT count(*) FROM entries WHERE tenant = 'crash' AND id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            copies, 1,
            "acknowledged event {id} is stored {copies} times"
        );
    }
    let (status, _) = server.get(
        &format!("/v1/events/{}", acked[acked.len() / 2]),
        &server.admin,
    );
    assert_eq!(status, 200);
    drop(server);
    let (ok, report) = verify_dir(dir.path());
    assert!(ok, "after {rounds} crashes: {report}");
}
