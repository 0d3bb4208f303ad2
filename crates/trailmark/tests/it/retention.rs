//! Retention, holds and erasure through a real server: what a dry run
//! reports is what the run removes, held entries stay, erased values are in
//! no file of the data dir, and the trail still verifies with every proof.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use trailmark_core::{Event, EventId, Salt, TenantId, Timestamp};
use trailmark_store::{NewEvent, Store};

use crate::{Server, cli, verify_dir};

const DAY: i64 = 86_400_000;

/// What only actor `u-gone`'s entries hold: a name, an e-mail, an IP.
const ERASED: [&str; 3] = [
    "Gwendolyn Erasmussen",
    "gwen.erasmussen@example.com",
    "192.0.2.201",
];

fn now_millis() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).unwrap();
    b
}

/// An event as the server prepares it, received `days_ago`.
fn received(days_ago: i64, event: &Value) -> NewEvent {
    let at = Timestamp::from_unix_millis(now_millis() - days_ago * DAY).unwrap();
    let event = Event::from_json(event).unwrap();
    NewEvent {
        received_at: at,
        generated_id: EventId::new_v7(at, random()),
        committed: event.commit_payload(Salt::from_bytes(random())).unwrap(),
        event,
        default_tenant: TenantId::default_tenant(),
    }
}

/// A data dir whose trail began 40 days ago: 150 entries of tenant acme
/// received then (Invoice updates, Customer updates, logins), 60 Invoice
/// updates received 10 days ago. Actor `u-gone`'s entries carry a name, an
/// e-mail and an IP that only they hold.
fn old_trail(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let db = dir.join("trailmark.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = trailmark_store_sqlite::SqliteStore::open(&db).unwrap();
        store.append(old_events()).await.unwrap();
        store.shutdown();
    });
}

/// A server (scheduled cleanups off) on a fresh [`old_trail`] in a data
/// dir of its own: the temporary dir, the data dir and the server.
fn serving_an_old_trail() -> (tempfile::TempDir, PathBuf, Server) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    old_trail(&data);
    let server = Server::start_with(&data, &["--cleanup-interval", "0"]);
    (dir, data, server)
}

/// The events of [`old_trail`].
fn old_events() -> Vec<NewEvent> {
    {
        let mut batch = Vec::new();
        for n in 0..150u64 {
            let gone = n % 10 == 4;
            let actor = if gone {
                "u-gone".to_owned()
            } else {
                format!("u-{}", n % 7)
            };
            let (kind, action) = match n % 3 {
                0 => (Some("Invoice"), "invoice.update"),
                1 => (Some("Customer"), "customer.update"),
                _ => (None, "login"),
            };
            let mut event = json!({
                "tenant": "acme",
                "actor": {"id": actor, "type": "user",
                          "name": if gone { "Gwendolyn Erasmussen" } else { "Somebody Else" }},
                "action": action,
                "context": {"ip": if gone { "192.0.2.201" } else { "198.51.100.9" }},
                "metadata": {"contact": if gone { "gwen.erasmussen@example.com" } else { "x@example.net" }},
            });
            if let Some(kind) = kind {
                event["resource"] = json!({"type": kind, "id": format!("{}", n % 10)});
            }
            batch.push(received(40, &event));
        }
        for n in 0..60u64 {
            batch.push(received(
                10,
                &json!({
                    "tenant": "acme",
                    "actor": {"id": format!("u-{}", n % 7), "type": "user"},
                    "action": "invoice.update",
                    "resource": {"type": "Invoice", "id": format!("{}", n % 10)},
                }),
            ));
        }
        batch
    }
}

/// Every file of the data dir that holds `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .filter(|p| {
            let bytes = std::fs::read(p).unwrap();
            bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        })
        .map(|p| p.display().to_string())
        .collect()
}

fn seqs_of(server: &Server, query: &str) -> Vec<u64> {
    let (status, page) = server.get(
        &format!("/v1/events?tenant=acme&limit=1000{query}"),
        &server.admin,
    );
    assert_eq!(status, 200, "{page}");
    let mut seqs: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["entry"]["seq"]
                .as_u64()
                .or_else(|| e["seq"].as_u64())
                .unwrap()
        })
        .collect();
    seqs.sort_unstable();
    seqs
}

#[test]
fn a_dry_run_reports_what_cleanup_removes_holds_keep_theirs_and_the_trail_still_verifies() {
    let (_dir, data, server) = serving_an_old_trail();
    let admin = server.admin.clone();

    let (status, policy) = server.put(
        "/v1/retention",
        &admin,
        &json!({"tenant": "acme", "resource_type": "Invoice", "max_age_days": 30}),
    );
    assert_eq!(status, 200, "{policy}");
    assert_eq!(policy["target"], "resource_type=Invoice");
    refuses_bad_policies(&server);
    let (status, hold) = server.post(
        "/v1/holds",
        &admin,
        &json!({"tenant": "acme", "resource": "Invoice:0", "reason": "case 2026-117"}),
    );
    assert_eq!(status, 201, "{hold}");

    // Old invoices: n % 3 == 0 among 0..150 (50), of which id 0 (n % 10
    // == 0, so n % 30 == 0: 5 entries) is held.
    let dry = cli(&[
        "cleanup",
        "--dry-run",
        "--url",
        &server.url,
        "--key",
        &admin,
    ]);
    let dry_text = String::from_utf8_lossy(&dry.stdout).into_owned();
    assert!(
        dry.status.success(),
        "{dry_text}{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(dry_text.contains("would expire: 45 entries"), "{dry_text}");
    assert!(dry_text.contains("5 kept by holds"), "{dry_text}");
    let (_, dry) = server.post("/v1/retention/cleanup", &admin, &json!({"dry_run": true}));
    let before = seqs_of(&server, "&resource_type=Invoice");
    let (status, run) = server.post("/v1/retention/cleanup", &admin, &json!({}));
    assert_eq!(status, 200, "{run}");
    assert_eq!(
        run["groups"], dry["groups"],
        "the run removed what the dry run reported"
    );
    assert_eq!(run["entries"], 45);
    assert_eq!(run["held"], 5);
    assert!(run["scrubbed"].as_bool().unwrap());
    assert_eq!(run["records"][0]["tenant"], "_system");
    let (_, again) = server.post("/v1/retention/cleanup", &admin, &json!({"dry_run": true}));
    assert_eq!(again["entries"], 0, "nothing left to expire: {again}");
    // Every entry is still listed; the expired ones say so.
    assert_eq!(seqs_of(&server, "&resource_type=Invoice"), before);
    let (_, page) = server.get("/v1/entries?tenant=acme&start=0&end=150", &admin);
    let entry_states: Vec<(u64, String)> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["seq"].as_u64().unwrap(),
                e["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (seq, state) in &entry_states {
        let expected = if seq % 3 == 0 && seq % 30 != 0 {
            "expired"
        } else {
            "present"
        };
        assert_eq!(state, expected, "seq {seq}");
    }
    history_shows_expiry(&server);
    // The retention change, the hold and the expiry are in _system.
    for action in [
        "admin.retention.set",
        "admin.hold.place",
        "trailmark.retention.expire",
    ] {
        let (_, found) = server.get(
            &format!("/v1/events?tenant=_system&action={action}"),
            &admin,
        );
        assert_eq!(
            found["events"].as_array().unwrap().len(),
            1,
            "{action}: {found}"
        );
    }

    expired_entries_still_prove_inclusion(&server, &page);
    drop(server);
    let (ok, text) = verify_dir(&data);
    assert!(ok, "{text}");
}

/// A record's history shows its expired events as such, with the policy,
/// and says the state can no longer be fully known.
/// The first cleanup after a start scrubs even when it removes nothing (a
/// stopped server may have left its scrub undone), but only on a trail that
/// something was ever removed from: the scrub rewrites the whole search
/// index, which on a large trail nothing removed from was wasted at every
/// start.
#[test]
fn the_first_cleanup_after_a_start_scrubs_only_a_trail_something_was_removed_from() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let args = ["--cleanup-interval", "0"];
    let cleanup = |server: &Server| {
        let (status, run) = server.post("/v1/retention/cleanup", &server.admin, &json!({}));
        assert_eq!(status, 200, "{run}");
        assert_eq!(run["entries"], 0, "{run}");
        run["scrubbed"].as_bool().unwrap()
    };
    let mut server = Server::start_with(&data, &args);
    let event =
        json!({"tenant": "acme", "actor": {"id": "u-gone", "type": "user"}, "action": "login"});
    assert_eq!(server.post("/v1/events", &server.admin, &event).0, 201);
    assert!(!cleanup(&server), "nothing was ever removed");
    server.kill9();

    let mut server = Server::start_with(&data, &args);
    assert!(
        !cleanup(&server),
        "nothing was ever removed, after a restart either"
    );
    let (status, erased) = server.post(
        "/v1/erasures",
        &server.admin,
        &json!({"tenant": "acme", "actor": "u-gone", "reason": "GDPR request 2026-0413"}),
    );
    assert_eq!(status, 200, "{erased}");
    server.kill9();

    let server = Server::start_with(&data, &args);
    assert!(
        cleanup(&server),
        "an erasure is recorded: the first cleanup scrubs"
    );
    assert!(!cleanup(&server), "and the next one does not");
}

fn history_shows_expiry(server: &Server) {
    let admin = &server.admin;
    let (_, history) = server.get("/v1/resources/Invoice/3/history?tenant=acme", admin);
    let first = &history["events"][0];
    assert_eq!(first["state"], "expired", "{first}");
    assert_eq!(first["removal"]["kind"], "expiry");
    assert_eq!(
        first["removal"]["reason"], "retention: resource_type=Invoice 30d",
        "{first}"
    );
    assert_eq!(first["incomplete"], true);
    let last = history["events"].as_array().unwrap().last().unwrap();
    assert_eq!(last["state"], "present");
    assert_eq!(last["removal"], Value::Null);
}

/// Bad policies are refused, naming the field, and change nothing.
fn refuses_bad_policies(server: &Server) {
    let admin = &server.admin;
    for (body, field) in [
        (json!({"tenant": "acme", "max_age_days": 0}), "max_age_days"),
        (
            json!({"tenant": "acme", "max_age_days": 30, "resource": "x"}),
            "resource",
        ),
        (json!({"tenant": "", "max_age_days": 30}), "tenant"),
        (json!({"tenant": "_system", "max_age_days": 30}), "tenant"),
        (
            json!({"tenant": "acme", "resource_type": "A", "action": "b", "max_age_days": 3}),
            "action",
        ),
    ] {
        let (status, err) = server.put("/v1/retention", admin, &body);
        assert_eq!(status, 400, "{body} → {err}");
        assert_eq!(err["errors"][0]["path"], field, "{err}");
    }
}

/// `verify --url` passes and counts the expired entries; the inclusion
/// proof of an expired entry (seq 3) verifies against the checkpoint.
fn expired_entries_still_prove_inclusion(server: &Server, page: &Value) {
    let admin = &server.admin;
    // An inclusion proof of an expired entry still verifies against the
    // signed checkpoint (the tree did not change).
    server.wait_checkpoint("acme", 210);
    let out = cli(&[
        "verify",
        "--url",
        &server.url,
        "--key",
        admin,
        "--tenant",
        "acme",
    ]);
    let text = crate::said(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("(0 erased, 45 expired)"), "{text}");
    let (_, proof) = server.get("/v1/proofs/inclusion?tenant=acme&index=3&size=210", admin);
    let (_, checkpoint) = server.get("/v1/checkpoint?tenant=acme", admin);
    assert!(checkpoint.as_str().unwrap().contains("\n210\n"));
    let hashes: Vec<trailmark_log::Hash> = proof["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| trailmark_log::Hash::from_base64(h.as_str().unwrap()).unwrap())
        .collect();
    let root = checkpoint_root(checkpoint.as_str().unwrap());
    // The leaf hash is recomputed from the envelope, which stays.
    let envelope = page["entries"][3]["envelope"].as_str().unwrap();
    trailmark_log::verify_inclusion(
        &trailmark_log::leaf_hash(envelope.as_bytes()),
        trailmark_log::LeafIndex::new(3).unwrap(),
        trailmark_log::TreeSize::new(210).unwrap(),
        &hashes,
        &root,
    )
    .unwrap();
}

fn checkpoint_root(note: &str) -> trailmark_log::Hash {
    let root_line = note.lines().nth(2).unwrap();
    trailmark_log::Hash::from_base64(root_line).unwrap()
}

#[test]
fn erasure_leaves_no_value_in_any_file_keeps_proofs_and_refuses_held_entries() {
    let (_dir, data, server) = serving_an_old_trail();
    let admin = server.admin.clone();
    for needle in ERASED {
        assert!(
            !files_holding(&data, needle).is_empty(),
            "{needle} is stored to begin with"
        );
    }
    let (_, found) = server.get("/v1/events?tenant=acme&q=erasmussen", &admin);
    assert_eq!(found["events"].as_array().unwrap().len(), 15);

    // A hold on one of the actor's records refuses the erasure, naming it.
    let (_, hold) = server.post(
        "/v1/holds",
        &admin,
        &json!({"tenant": "acme", "resource": "Customer:4", "reason": "case 7"}),
    );
    let hold_id = hold["id"].as_str().unwrap().to_owned();
    let (status, refused) = server.post(
        "/v1/erasures",
        &admin,
        &json!({"tenant": "acme", "actor": "u-gone", "reason": "GDPR request 2026-0412"}),
    );
    assert_eq!(status, 409, "{refused}");
    let message = refused["error"].as_str().unwrap_or_default().to_owned() + &refused.to_string();
    assert!(
        message.contains(&hold_id) && message.contains("acme seq 4"),
        "{refused}"
    );
    let (_, found) = server.get("/v1/events?tenant=acme&q=erasmussen", &admin);
    assert_eq!(
        found["events"].as_array().unwrap().len(),
        15,
        "nothing was erased"
    );

    let (status, released) = server.delete(&format!("/v1/holds/{hold_id}"), &admin);
    assert_eq!(status, 200, "{released}");
    let out = cli(&[
        "erase",
        "--actor",
        "u-gone",
        "--tenant",
        "acme",
        "--reason",
        "GDPR request 2026-0412",
        "--url",
        &server.url,
        "--key",
        &admin,
    ]);
    let text = crate::said(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("erased: 15 entries"), "{text}");
    assert!(!text.contains("could not scrub"), "{text}");

    // Nothing of the erased values is left in any file of the data dir
    // (database, WAL, index) while the server runs, nor after it stops.
    for needle in ERASED.iter().chain(&["rasmussen"]) {
        assert_eq!(
            files_holding(&data, needle),
            Vec::<String>::new(),
            "{needle}"
        );
    }
    let (_, found) = server.get("/v1/events?tenant=acme&q=erasmussen", &admin);
    assert!(found["events"].as_array().unwrap().is_empty());
    let (_, found) = server.get("/v1/events?tenant=acme&actor=u-gone", &admin);
    assert_eq!(
        found["events"].as_array().unwrap().len(),
        15,
        "the envelopes stay"
    );
    the_erasure_is_recorded_without_its_values(&server);
    server.wait_checkpoint("acme", 210);
    let out = cli(&["verify", "--url", &server.url, "--key", &admin]);
    let text = crate::said(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("(15 erased, 0 expired)"), "{text}");
    let mut server = server;
    server.stop();
    for needle in ERASED {
        assert_eq!(
            files_holding(&data, needle),
            Vec::<String>::new(),
            "{needle}"
        );
    }
    let (ok, text) = verify_dir(&data);
    assert!(ok, "{text}");
}

#[test]
fn an_erasure_dry_run_reports_what_it_would_erase_and_what_holds_keep_and_removes_nothing() {
    let (_dir, data, server) = serving_an_old_trail();
    let admin = server.admin.clone();
    let (_, placed) = server.post(
        "/v1/holds",
        &admin,
        &json!({"tenant": "acme", "resource": "Customer:4", "reason": "case 7"}),
    );
    assert!(placed["id"].is_string(), "{placed}");
    // With a hold in force the erasure would be refused (409); its dry run
    // answers what it would erase and how many entries the hold keeps.
    let (status, report) = server.post(
        "/v1/erasures",
        &admin,
        &json!({"tenant": "acme", "actor": "u-gone", "reason": "GDPR request 2026-0412", "dry_run": true}),
    );
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (&report["kind"], &report["dry_run"]),
        (&json!("erasure"), &json!(true)),
        "{report}"
    );
    let held = report["held"].as_u64().unwrap();
    assert!(held >= 1, "{report}");
    assert_eq!(report["entries"].as_u64().unwrap() + held, 15, "{report}");
    assert_eq!(report["records"], json!([]), "{report}");
    // The CLI's says so, and nothing was erased or recorded as erased.
    let out = cli(&[
        "erase",
        "--actor",
        "u-gone",
        "--tenant",
        "acme",
        "--reason",
        "GDPR request 2026-0412",
        "--dry-run",
        "--url",
        &server.url,
        "--key",
        &admin,
    ]);
    let text = crate::said(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("would erase: {} entries", 15 - held))
            && text.contains(&format!("would be refused while holds keep {held}")),
        "{text}"
    );
    let (_, found) = server.get("/v1/events?tenant=acme&q=erasmussen", &admin);
    assert_eq!(
        found["events"].as_array().unwrap().len(),
        15,
        "nothing erased"
    );
    for needle in ERASED {
        assert!(
            !files_holding(&data, needle).is_empty(),
            "{needle} is still stored"
        );
    }
    let (_, erasures) = server.get("/v1/events?tenant=_system&action=trailmark.erasure", &admin);
    assert_eq!(erasures["events"], json!([]), "{erasures}");
    // Each dry run is recorded as a read of the trail, naming what it asked.
    let (_, reads) = server.get("/v1/events?tenant=_system&action=read&limit=1000", &admin);
    let asked = reads["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["metadata"]["dry_run"] == json!(true))
        .filter(|e| e["metadata"]["selector"] == json!("actor=u-gone"))
        .count();
    assert_eq!(asked, 2, "{reads}");
}

/// `_system` holds the erasure record (who, why, how many, which seqs;
/// never the values) and the hold's placing and release.
fn the_erasure_is_recorded_without_its_values(server: &Server) {
    let admin = &server.admin;
    let (_, record) = server.get("/v1/events?tenant=_system&action=trailmark.erasure", admin);
    let record = &record["events"][0];
    assert_eq!(record["metadata"]["selector"], "actor=u-gone");
    assert_eq!(record["metadata"]["reason"], "GDPR request 2026-0412");
    assert_eq!(record["metadata"]["entries"], 15);
    assert!(
        !record.to_string().contains("Erasmussen"),
        "the record names no erased value"
    );
    for action in ["admin.hold.place", "admin.hold.release"] {
        let (_, found) = server.get(&format!("/v1/events?tenant=_system&action={action}"), admin);
        assert_eq!(found["events"].as_array().unwrap().len(), 1, "{action}");
    }
}

/// The same on a PostgreSQL ledger: erasure, then the cleanup, through a
/// server; a policy on all of a tenant drops the partition of a span whose
/// payloads it all removed; `verify` passes and counts both; after the
/// scrub no relation file of the ledger holds an erased value.
#[test]
fn on_postgres_erasure_and_cleanup_keep_the_trail_verifiable_and_leave_nothing_behind() {
    let db = crate::PgDb::new("tm_retention");
    let url = db.source();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = trailmark_store_postgres::PgStore::new(&url, 2).unwrap();
        store.migrate().await.unwrap();
        store.append(old_events()).await.unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--database", &url, "--cleanup-interval", "0"]);
    let admin = server.admin.clone();
    let (status, erased) = server.post(
        "/v1/erasures",
        &admin,
        &json!({"tenant": "acme", "actor": "u-gone", "reason": "GDPR request 2026-0413"}),
    );
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["entries"], 15);
    assert!(erased["scrubbed"].as_bool().unwrap());
    server.put(
        "/v1/retention",
        &admin,
        &json!({"tenant": "acme", "resource_type": "Invoice", "max_age_days": 30}),
    );
    let (_, dry) = server.post("/v1/retention/cleanup", &admin, &json!({"dry_run": true}));
    let (_, run) = server.post("/v1/retention/cleanup", &admin, &json!({}));
    assert_eq!(run["groups"], dry["groups"]);
    // 50 old invoices, 5 of them u-gone's (already erased).
    assert_eq!(run["entries"], 45, "{run}");
    // Everything of acme received 40 days ago (the only entries of their
    // span) is removed by a policy on all of acme: the span's partition
    // is dropped whole; the later span's stays.
    let span = format!(
        "trailmark_ledger.payload_partition(lower(trailmark_ledger.payload_span({})))",
        now_millis() - 40 * DAY
    );
    let old_partition = format!("SELECT to_regclass('trailmark_ledger.' || {span}) IS NOT NULL");
    assert!(
        rt.block_on(crate::pg_value::<bool>(&url, &old_partition)),
        "the partition is there"
    );
    server.put(
        "/v1/retention",
        &admin,
        &json!({"tenant": "acme", "max_age_days": 35}),
    );
    let (_, all) = server.post("/v1/retention/cleanup", &admin, &json!({}));
    assert_eq!(
        all["entries"], 90,
        "the old Customer updates and logins: {all}"
    );
    assert!(all["scrubbed"].as_bool().unwrap(), "{all}");
    assert!(
        !rt.block_on(crate::pg_value::<bool>(&url, &old_partition)),
        "the old span's partition is dropped"
    );
    server.wait_checkpoint("acme", 210);
    let out = cli(&["verify", "--url", &server.url, "--key", &admin]);
    let text = crate::said(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("(15 erased, 135 expired)"), "{text}");
    let files = rt.block_on(ledger_files(&url));
    for needle in ERASED {
        let holding: Vec<&String> = files
            .iter()
            .filter(|(_, b)| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
            .map(|(n, _)| n)
            .collect();
        assert!(holding.is_empty(), "{needle} is still in {holding:?}");
    }
}

/// Every relation file of the ledger (tables, indexes, TOAST), read through
/// the server after a CHECKPOINT (superuser: `pg_read_binary_file`).
async fn ledger_files(url: &str) -> Vec<(String, Vec<u8>)> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client.batch_execute("CHECKPOINT").await.unwrap();
    let rows = client
        .query(
            "SELECT c.relname, pg_relation_filepath(c.oid) FROM pg_class c
             WHERE c.relfilenode <> 0 AND (c.relnamespace = 'trailmark_ledger'::regnamespace
               OR c.oid IN (SELECT reltoastrelid FROM pg_class
                            WHERE relnamespace = 'trailmark_ledger'::regnamespace))",
            &[],
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    for row in rows {
        let (name, path): (String, String) = (row.get(0), row.get(1));
        let bytes: Vec<u8> = client
            .query_one("SELECT pg_read_binary_file($1)", &[&path])
            .await
            .unwrap()
            .get(0);
        out.push((name, bytes));
    }
    out
}

/// A cleanup longer than the request timeout is not cut short: the server
/// answers 408 and goes on; `trailmark cleanup` waits for the report, and
/// everything expired is recorded and verifies.
#[test]
fn a_cleanup_longer_than_the_request_timeout_finishes_and_the_cli_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Enough entries that their cleanup outlasts the shortest request
    // timeout (1 s) on a fast machine: 50,000 took just under 1 s on one.
    let n = 200_000u64;
    rt.block_on(async {
        let store = trailmark_store_sqlite::SqliteStore::open(data.join("trailmark.db")).unwrap();
        for chunk in (0..n).collect::<Vec<_>>().chunks(5000) {
            let batch = chunk
                .iter()
                .map(|i| {
                    received(
                        40,
                        &json!({"tenant": "bulk", "actor": {"id": format!("u-{}", i % 50), "type": "user"},
                                "action": "update", "resource": {"type": "Order", "id": format!("{i}")},
                                "changes": {"state": {"old": "open", "new": "paid"}}}),
                    )
                })
                .collect();
            store.append(batch).await.unwrap();
        }
        store.shutdown();
    });
    let server = Server::start_with(
        &data,
        &["--cleanup-interval", "0", "--request-timeout", "1"],
    );
    let admin = server.admin.clone();
    let (status, _) = server.put(
        "/v1/retention",
        &admin,
        &json!({"tenant": "bulk", "max_age_days": 30}),
    );
    assert_eq!(status, 200);
    let out = cli(&["cleanup", "--url", &server.url, "--key", &admin]);
    let text = crate::said(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("goes on in the server"),
        "the cleanup outlived the 1 s request timeout: {text}"
    );
    assert!(text.contains(&format!("expired: {n} entries")), "{text}");
    server.wait_checkpoint("bulk", n);
    let out = cli(&[
        "verify",
        "--url",
        &server.url,
        "--key",
        &admin,
        "--tenant",
        "bulk",
    ]);
    let text = crate::said(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&format!("(0 erased, {n} expired)")), "{text}");
}

/// An actor id is one tenant's: an erasure without `tenant` whose entries
/// are in two tenants is refused (409 naming both) and erases nothing,
/// where it erased user 42 of every customer; its dry run lists both
/// tenants' entries; with `tenant`, or where the id is in one tenant only,
/// it erases.
#[test]
fn an_erasure_without_a_tenant_reaching_two_tenants_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    for tenant in ["north", "south", "south"] {
        let e = crate::event(tenant, "u-42", "update");
        assert_eq!(server.post("/v1/events", &server.admin, &e).0, 201);
    }
    let only_north = crate::event("north", "u-7", "login");
    assert_eq!(server.post("/v1/events", &server.admin, &only_north).0, 201);
    let erase = |body: Value| server.post("/v1/erasures", &server.admin, &body);

    let (status, body) = erase(json!({"actor": "u-42", "reason": "ticket 9"}));
    assert_eq!(status, 409, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("actor=u-42 has entries in tenants north, south")
            && message.contains("nothing was erased"),
        "{message}"
    );
    let (_, north) = server.get("/v1/events?tenant=north&actor=u-42", &server.admin);
    assert_eq!(north["events"][0]["state"], "present", "{north}");

    let (status, dry) = erase(json!({"actor": "u-42", "reason": "ticket 9", "dry_run": true}));
    assert_eq!(status, 200, "{dry}");
    let tenants: Vec<&str> = dry["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(
        (tenants, &dry["entries"]),
        (vec!["north", "south"], &json!(3))
    );

    let (status, done) = erase(json!({"tenant": "south", "actor": "u-42", "reason": "ticket 9"}));
    assert_eq!((status, &done["entries"]), (200, &json!(2)), "{done}");
    let (status, done) = erase(json!({"actor": "u-7", "reason": "ticket 10"}));
    assert_eq!((status, &done["entries"]), (200, &json!(1)), "{done}");
}
