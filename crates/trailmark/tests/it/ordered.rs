//! Ordered batches: `POST /v1/events` with `Trailmark-After` (docs/API.md,
//! "Ordered batches"), against a real server.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use trailmark_client::{Client, Error};
use trailmark_wire::AppendedBatch;

use crate::{Server, wait_for};

/// `count` events of `tenant` with ids, numbered from `first`, as NDJSON;
/// and the last one's id.
fn batch(tenant: &str, first: u32, count: u32) -> (Vec<u8>, String) {
    let mut body = Vec::new();
    let mut last = String::new();
    for n in first..first + count {
        last = format!("0192f0c2-5a1e-7c4b-9d10-{n:012x}");
        let event = json!({"id": last, "tenant": tenant, "actor": {"id": "importer", "type": "system"},
                           "action": "create", "resource": {"type": "item", "id": n.to_string()}});
        body.extend(event.to_string().into_bytes());
        body.push(b'\n');
    }
    (body, last)
}

fn metric(server: &Server, name: &str) -> u64 {
    let (status, text) = server.get("/metrics", &server.admin);
    assert_eq!(status, 200);
    let text = text.as_str().unwrap().to_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
        .parse()
        .unwrap()
}

/// `second`, naming `first`'s last event (tenant acme), sent first
/// through `to_later` and seen waiting on `waiting` (/metrics); then
/// `first` through `to_earlier`. Answers both acknowledgements, the first's
/// first, and how long after the first's the second's came.
fn second_sent_first(
    to_later: &Client,
    waiting: &Server,
    to_earlier: &Client,
    (first, first_last): (&[u8], &str),
    second: &[u8],
) -> (AppendedBatch, AppendedBatch, Duration) {
    std::thread::scope(|scope| {
        let later = scope.spawn(|| {
            let stored = to_later
                .ingest_ndjson_after(second, Some("acme"), first_last)
                .unwrap();
            (stored, Instant::now())
        });
        wait_for("the second batch to wait", Duration::from_secs(10), || {
            (metric(waiting, "trailmark_ingest_after_waited_total") == 1).then_some(())
        });
        let earlier = to_earlier.ingest_ndjson(first).unwrap();
        let stored = Instant::now();
        let (later, at) = later.join().unwrap();
        (earlier, later, at.saturating_duration_since(stored))
    })
}

fn seqs(stored: &AppendedBatch) -> Vec<u64> {
    stored.entries.iter().map(|e| e.seq).collect()
}

fn size(server: &Server, tenant: &str) -> u64 {
    let (status, body) = server.get("/v1/tenants", &server.admin);
    assert_eq!(status, 200, "{body}");
    body["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == tenant)
        .map_or(0, |t| t["size"].as_u64().unwrap())
}

/// A batch naming the batch before it is appended after it, even when it
/// arrives first: it waits (seen in /metrics) until the one before is
/// stored, and its entries follow that one's.
#[test]
fn a_batch_that_arrives_before_the_one_it_names_is_appended_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = Client::new(&server.url, &server.admin, Duration::from_secs(30)).unwrap();
    let (first, first_last) = batch("acme", 0, 300);
    let (second, second_last) = batch("acme", 300, 300);

    let (earlier, later, _) =
        second_sent_first(&client, &server, &client, (&first, &first_last), &second);
    assert_eq!(seqs(&earlier), (0..300).collect::<Vec<_>>());
    assert_eq!(seqs(&later), (300..600).collect::<Vec<_>>());

    // Naming a batch already stored goes on at once; with no tenant, the
    // one events without a tenant go to (here the admin key's: default).
    let (third, _) = batch("acme", 600, 10);
    let stored = client
        .ingest_ndjson_after(&third, Some("acme"), &second_last)
        .unwrap();
    assert_eq!(seqs(&stored)[0], 600);
    let (plain, plain_last) = batch_without_tenant(700);
    client.ingest_ndjson(&plain).unwrap();
    let (next, _) = batch_without_tenant(701);
    assert_eq!(
        seqs(
            &client
                .ingest_ndjson_after(&next, None, &plain_last)
                .unwrap()
        ),
        vec![1]
    );
    assert_eq!(metric(&server, "trailmark_ingest_after_waited_total"), 1);
    assert_eq!(metric(&server, "trailmark_ingest_after_refused_total"), 0);
}

fn batch_without_tenant(n: u32) -> (Vec<u8>, String) {
    let id = format!("0192f0c2-5a1e-7c4b-9d10-{n:012x}");
    let event =
        json!({"id": id, "actor": {"id": "importer", "type": "system"}, "action": "create"});
    (format!("{event}\n").into_bytes(), id)
}

/// A batch naming an event that is not stored, and that no batch being
/// appended ends with, is refused after the wait, storing nothing; a
/// header that names nothing, or a tenant the key may not write, is
/// refused at once, by name.
#[test]
fn a_batch_whose_predecessor_never_came_stores_nothing_and_bad_headers_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = Client::new(&server.url, &server.admin, Duration::from_secs(30)).unwrap();
    let (first, first_last) = batch("acme", 0, 5);
    client.ingest_ndjson(&first).unwrap();

    let (orphan, _) = batch("acme", 100, 5);
    let never = "0192f0c2-5a1e-7c4b-9d10-ffffffffffff";
    let began = Instant::now();
    match client.ingest_ndjson_after(&orphan, Some("acme"), never) {
        Err(Error::PreconditionFailed(m)) => {
            assert!(m.contains("Trailmark-After") && m.contains(never), "{m}");
            assert!(m.contains("nothing of this batch was stored"), "{m}");
        }
        other => panic!("expected 412, got {other:?}"),
    }
    // It waited for the batch to come (AFTER_WAIT), then refused.
    assert!(
        began.elapsed() >= Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(size(&server, "acme"), 5);
    assert_eq!(metric(&server, "trailmark_ingest_after_refused_total"), 1);

    // Bad values cost no wait and store nothing.
    let bound = server.key("ingest", Some("other"));
    let elsewhere = format!("acme/{first_last}");
    let cases = [
        (&server.admin, "acme/not-a-uuid", 400, "event id"),
        (&server.admin, "acme/", 400, "event id"),
        (
            &server.admin,
            "/0192f0c2-5a1e-7c4b-9d10-000000000004",
            400,
            "tenant",
        ),
        (
            &bound,
            elsewhere.as_str(),
            403,
            "may only write tenant other",
        ),
    ];
    for (key, value, status, says) in cases {
        let began = Instant::now();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let response = agent
            .post(format!("{}/v1/events", server.url))
            .header("Authorization", &format!("Bearer {key}"))
            .header("Content-Type", "application/x-ndjson")
            .header("Trailmark-After", value)
            .send(&orphan[..])
            .unwrap();
        let got = response.status().as_u16();
        let body: Value = response.into_body().read_json().unwrap();
        assert_eq!(got, status, "{value}: {body}");
        assert!(
            body.to_string().contains("Trailmark-After"),
            "{value}: {body}"
        );
        assert!(body.to_string().contains(says), "{value}: {body}");
        assert!(began.elapsed() < Duration::from_secs(2), "{value}");
    }
    assert_eq!(size(&server, "acme"), 5);
    assert_eq!(size(&server, "other"), 0);
}

/// A batch naming a batch before it is made ready (room held, its ids
/// looked up) while that one may still be on its way: an id it reuses for
/// another event is refused at once (409, naming the event), not after the
/// wait for a batch that may never come; nothing of it is stored, and it
/// is not counted as waiting.
#[test]
fn a_batch_reusing_an_id_is_refused_before_it_waits_for_the_one_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = Client::new(&server.url, &server.admin, Duration::from_secs(30)).unwrap();
    let (first, _) = batch("acme", 0, 5);
    client.ingest_ndjson(&first).unwrap();

    // Event 3's id again, for another record.
    let reused = "0192f0c2-5a1e-7c4b-9d10-000000000003";
    let (mut second, _) = batch("acme", 100, 4);
    let other = json!({"id": reused, "tenant": "acme", "actor": {"id": "importer", "type": "system"},
                       "action": "create", "resource": {"type": "item", "id": "elsewhere"}});
    second.extend(format!("{other}\n").into_bytes());
    let never = "0192f0c2-5a1e-7c4b-9d10-ffffffffffff";
    let began = Instant::now();
    match client.ingest_ndjson_after(&second, Some("acme"), never) {
        Err(Error::Conflict(m)) => assert!(m.contains("events[4].id") && m.contains(reused), "{m}"),
        other => panic!("expected 409, got {other:?}"),
    }
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(size(&server, "acme"), 5);
    assert_eq!(metric(&server, "trailmark_ingest_after_waited_total"), 0);
}

/// Two servers sharing a PostgreSQL store (a load balancer in front): a
/// batch sent to one, naming the last event of a batch the other has not
/// stored yet, waits, and is appended after that batch soon after the
/// other server stored it (the trail is looked in as it waits).
#[test]
fn a_batch_naming_one_another_server_appends_follows_it_on_a_shared_store() {
    let db = crate::PgDb::new("tm_ordered_shared");
    let dirs = crate::shared_pg::dirs(2);
    let servers = crate::shared_pg::servers(&db, &dirs);
    let (one, two) = (&servers[0], &servers[1]);
    let to_one = Client::new(&one.url, &one.admin, Duration::from_secs(30)).unwrap();
    let to_two = Client::new(&two.url, &two.admin, Duration::from_secs(30)).unwrap();
    let (first, first_last) = batch("acme", 0, 200);
    let (second, _) = batch("acme", 200, 200);

    let (earlier, later, after_it) =
        second_sent_first(&to_two, two, &to_one, (&first, &first_last), &second);
    assert_eq!(seqs(&earlier), (0..200).collect::<Vec<_>>());
    assert_eq!(seqs(&later), (200..400).collect::<Vec<_>>());
    // Seen in the trail as it waited (every 100 ms), not at the end of its
    // wait (5 s).
    assert!(after_it < Duration::from_secs(2), "{after_it:?}");
    assert_eq!(metric(two, "trailmark_ingest_after_refused_total"), 0);
}
