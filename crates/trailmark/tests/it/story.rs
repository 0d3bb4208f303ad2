//! The five-minute tour: ingest, search, prove, verify.

use serde_json::{Value, json};
use trailmark_log::{
    Hash, LeafIndex, Receipt, SignedCheckpoint, TreeSize, VerifierKey, leaf_hash,
    verify_consistency, verify_inclusion,
};

use crate::{Server, cli, event, verify_dir};

fn hashes(v: &serde_json::Value) -> Vec<Hash> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_base64(h.as_str().unwrap()).unwrap())
        .collect()
}

#[test]
fn a_login_an_update_and_a_failed_login_are_searchable_provable_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let admin = server.admin.clone();

    let login = json!({"tenant": "acme", "actor": {"id": "42", "type": "user", "name": "alice@example.com"},
        "action": "login", "context": {"ip": "203.0.113.7", "user_agent": "Mozilla/5.0"}});
    let update = json!({"tenant": "acme", "actor": {"id": "42", "type": "user"}, "action": "update",
        "resource": {"type": "Customer", "id": "61", "name": "Acme Corp"},
        "changes": {"price": {"old": "19.99", "new": "24.99"}}, "context": {"ip": "203.0.113.7"}});
    let failed = json!({"tenant": "acme", "actor": {"id": "mallory", "type": "anonymous"},
        "action": "login_failed", "outcome": "failure", "context": {"ip": "198.51.100.9"}});
    let (status, body) = server.post("/v1/events", &admin, &login);
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["entries"][0]["seq"], 0);
    let ndjson = format!("{update}\n{failed}\n");
    let (status, body) = server.post_bytes(
        "/v1/events",
        &admin,
        "application/x-ndjson",
        ndjson.into_bytes(),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["entries"].as_array().unwrap().len(), 2);
    let update_id = body["entries"][0]["id"].as_str().unwrap().to_owned();

    check_search(&server);
    check_proofs(&server, &update_id);

    // Reads by people are audited in _system.
    let (_, system) = server.get("/v1/events?tenant=_system&action=read", &admin);
    assert!(system["events"].as_array().unwrap().len() >= 10);

    // The whole trail verifies, remotely and offline.
    let out = cli(&["verify", "--url", &server.url, "--key", &admin]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ok     acme: 3 entries"), "{stdout}");
    let (ok, report) = verify_dir(dir.path());
    assert!(ok, "{report}");

    // Metrics and health.
    let (status, metrics) = server.get("/metrics", &admin);
    assert_eq!(status, 200);
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("trailmark_events_ingested_total")
    );
    assert_eq!(server.get("/readyz", &admin).0, 200);
}

#[test]
fn the_same_event_id_twice_is_stored_once_with_the_same_seq() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut e = event("acme", "1", "export");
    e["id"] = json!("0192f0c2-5a1e-7c4b-9d10-6f1b2a3c4d5e");
    server.post("/v1/events", &server.admin, &event("acme", "1", "login"));
    let (s1, a) = server.post("/v1/events", &server.admin, &e);
    let (s2, b) = server.post("/v1/events", &server.admin, &e);
    assert_eq!((s1, s2), (201, 201));
    assert_eq!(a["entries"][0]["seq"], 1);
    assert_eq!(b["entries"][0]["seq"], 1);
    let (_, all) = server.get("/v1/events?tenant=acme", &server.admin);
    assert_eq!(all["events"].as_array().unwrap().len(), 2);
}

#[test]
fn a_batch_with_one_bad_event_stores_nothing_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let batch = json!([event("acme", "1", "login"), {"tenant": "acme", "actor": {"type": "user"}, "action": "x"}, event("acme", "2", "login")]);
    let (status, body) = server.post("/v1/events", &server.admin, &batch);
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"errors": [{"index": 1, "path": "actor.id", "message": "required"}]})
    );
    let (_, all) = server.get("/v1/events?tenant=acme", &server.admin);
    assert_eq!(all["events"].as_array().unwrap().len(), 0);
}

#[test]
fn keys_can_be_created_listed_and_revoked_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let data = dir.path().to_str().unwrap();
    let out = cli(&[
        "keys",
        "create",
        "--url",
        &server.url,
        "--data-dir",
        data,
        "--scopes",
        "read",
        "--tenant",
        "acme",
        "--name",
        "auditor",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(key.starts_with("tmk_"));
    assert_eq!(server.get("/v1/events", &key).0, 200);
    let out = cli(&["keys", "list", "--url", &server.url, "--data-dir", data]);
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        listing.contains("auditor") && !listing.contains(&key),
        "{listing}"
    );
    let id = listing
        .lines()
        .find(|l| l.contains("auditor"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let out = cli(&[
        "keys",
        "revoke",
        &id,
        "--url",
        &server.url,
        "--data-dir",
        data,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, body) = server.get("/v1/events", &key);
    assert_eq!(status, 401, "{body}");
    // Key changes are in the _system trail.
    let (_, audit) = server.get("/v1/events?tenant=_system&resource_type=key", &server.admin);
    let actions: Vec<_> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["admin.key.revoke", "admin.key.create", "admin.key.create"]
    );
}

/// Search: newest first, every filter, cursor paging.
fn check_search(server: &Server) {
    let admin = &server.admin;
    // Search: newest first, every filter.
    let (_, all) = server.get("/v1/events?tenant=acme", admin);
    let actions: Vec<_> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["login_failed", "update", "login"]);
    for (query, expected) in [
        ("actor=42", 2),
        ("action=login", 1),
        ("resource_type=Customer&resource_id=61", 1),
        ("outcome=failure", 1),
        ("ip=203.0.113.7", 2),
        ("q=alice", 1),
        ("q=24.99", 1),
        ("days=1", 3),
        ("since=2000-01-01T00:00:00Z&until=2001-01-01T00:00:00Z", 0),
    ] {
        let (status, page) = server.get(&format!("/v1/events?tenant=acme&{query}"), admin);
        assert_eq!(status, 200, "{query}: {page}");
        assert_eq!(
            page["events"].as_array().unwrap().len(),
            expected,
            "{query}"
        );
    }
    // Paging with a cursor.
    let (_, first) = server.get("/v1/events?tenant=acme&limit=2", admin);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = server.get(
        &format!("/v1/events?tenant=acme&limit=2&cursor={cursor}"),
        admin,
    );
    assert_eq!(second["events"].as_array().unwrap().len(), 1);
    assert!(second["next_cursor"].is_null());
}

/// One event with its proof and receipt, and the proof endpoints, checked
/// against the tenant's verifier key.
fn check_proofs(server: &Server, update_id: &str) {
    let admin = &server.admin;
    // One event with its proof, checked here against the verifier key.
    server.wait_checkpoint("acme", 3);
    let (status, one) = server.get(&format!("/v1/events/{update_id}"), admin);
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["changes"]["price"]["new"], "24.99");
    assert_eq!(one["resource"]["name"], "Acme Corp");
    let (_, key_text) = server.get("/v1/verifier-key?tenant=acme", admin);
    let vkey = VerifierKey::parse(key_text.as_str().unwrap().trim()).unwrap();
    let cp = SignedCheckpoint::open(
        one["proof"]["checkpoint"].as_str().unwrap().as_bytes(),
        &vkey,
    )
    .unwrap();
    let leaf = leaf_hash(one["entry"]["envelope"].as_str().unwrap().as_bytes());
    let proof = hashes(&one["proof"]["hashes"]);
    verify_inclusion(
        &leaf,
        LeafIndex::new(1).unwrap(),
        cp.checkpoint().size(),
        &proof,
        cp.checkpoint().root(),
    )
    .unwrap();
    // The receipt alone is enough.
    let receipt = Receipt::parse(one["proof"]["receipt"].as_str().unwrap().as_bytes()).unwrap();
    receipt
        .verify(&leaf_hash(receipt.extra().unwrap()), &vkey)
        .unwrap();

    // Proof endpoints agree with the checkpoint.
    let (_, inc) = server.get("/v1/proofs/inclusion?tenant=acme&index=2&size=3", admin);
    let (_, entries) = server.get("/v1/entries?tenant=acme&start=0&end=3", admin);
    let leaf2 = leaf_hash(
        entries["entries"][2]["envelope"]
            .as_str()
            .unwrap()
            .as_bytes(),
    );
    verify_inclusion(
        &leaf2,
        LeafIndex::new(2).unwrap(),
        TreeSize::new(3).unwrap(),
        &hashes(&inc["hashes"]),
        cp.checkpoint().root(),
    )
    .unwrap();
    let leaf0 = leaf_hash(
        entries["entries"][0]["envelope"]
            .as_str()
            .unwrap()
            .as_bytes(),
    );
    let (_, con) = server.get("/v1/proofs/consistency?tenant=acme&first=1&second=3", admin);
    verify_consistency(
        TreeSize::new(1).unwrap(),
        TreeSize::new(3).unwrap(),
        &hashes(&con["hashes"]),
        &leaf0,
        cp.checkpoint().root(),
    )
    .unwrap();
}

#[test]
fn a_record_history_shows_the_state_after_each_change_and_exports_stream() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let admin = server.admin.clone();
    let change = |action: &str, changes: serde_json::Value| {
        json!({"tenant": "acme", "actor": {"id": "42", "type": "user", "name": "=HYPERLINK(\"x\")"}, "action": action,
               "resource": {"type": "Customer", "id": "61"}, "changes": changes})
    };
    let batch = json!([
        change(
            "create",
            json!({"name": {"old": null, "new": "Acme"}, "price": {"old": null, "new": "19.99"}})
        ),
        change("update", json!({"price": {"old": "19.99", "new": "24.99"}})),
        event("acme", "7", "login"),
        change(
            "delete",
            json!({"name": {"old": "Acme", "new": null}, "price": {"old": "24.99", "new": null}})
        ),
    ]);
    assert_eq!(server.post("/v1/events", &admin, &batch).0, 201);

    let (code, history) = server.get("/v1/resources/Customer/61/history?tenant=acme", &admin);
    assert_eq!(code, 200, "{history}");
    let after_each: Vec<_> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state_after"].clone())
        .collect();
    assert_eq!(
        after_each,
        [
            json!({"name": "Acme", "price": "19.99"}),
            json!({"name": "Acme", "price": "24.99"}),
            json!(null)
        ]
    );

    let (_, stats) = server.get("/v1/stats?tenant=acme&days=7", &admin);
    assert_eq!(stats["total"], 4);
    assert_eq!(
        stats["by_resource_type"],
        json!([{"resource_type": "Customer", "count": 3}])
    );
    assert_eq!(stats["per_day"].as_array().unwrap().len(), 1);

    let (code, csv) = server.get(
        "/v1/export?tenant=acme&format=csv&resource_type=Customer",
        &admin,
    );
    assert_eq!(code, 200);
    let csv = csv.as_str().unwrap().to_owned();
    let lines: Vec<_> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines[0].starts_with("seq,tenant,id,occurred_at"), "{csv}");
    assert!(
        csv.contains("'=HYPERLINK"),
        "formula cells are neutralized: {csv}"
    );
    let (_, ndjson) = server.get("/v1/export?tenant=acme&format=ndjson", &admin);
    assert_eq!(ndjson.as_str().map(|s| s.lines().count()), Some(4));

    // The CLI writes the same exports to a file, and reports.
    let out_file = dir.path().join("out.json");
    let out = cli(&[
        "export",
        "--url",
        &server.url,
        "--key",
        &admin,
        "--tenant",
        "acme",
        "--format",
        "json",
        "--output",
        out_file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exported: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
    assert_eq!(exported.as_array().unwrap().len(), 4);
    let out = cli(&[
        "report",
        "--url",
        &server.url,
        "--key",
        &admin,
        "--tenant",
        "acme",
        "--days",
        "30",
        "--format",
        "table",
    ]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && table.contains("Customer") && table.contains("update"),
        "{table}"
    );
    let (_, audit) = server.get("/v1/events?tenant=_system&action=export", &admin);
    assert!(audit["events"].as_array().unwrap().len() >= 3, "{audit}");
}

/// Events about a whole type name no record (a captured table's truncate,
/// rewrite, pause and resume): a record's history shows those that came
/// after its first event, in its tenant, and its state after each.
#[test]
fn a_record_history_shows_what_was_done_to_its_whole_table() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let admin = server.admin.clone();
    let about = |tenant: &str, kind: &str, id: Option<&str>, action: &str, extra: Value| {
        let mut e = json!({"tenant": tenant, "actor": {"id": "postgres", "type": "unknown"},
                           "action": action, "resource": {"type": kind}});
        if let Some(id) = id {
            e["resource"]["id"] = json!(id);
        }
        for (k, v) in extra.as_object().unwrap() {
            e[k] = v.clone();
        }
        e
    };
    let set =
        |field: &str, old: Value, new: Value| json!({"changes": {field: {"old": old, "new": new}}});
    let batch = json!([
        about("acme", "Customer", None, "truncate", json!({})),
        about(
            "acme",
            "Customer",
            Some("61"),
            "create",
            json!({"changes": {
            "name": {"old": null, "new": "Acme"}, "price": {"old": null, "new": "19.99"}}})
        ),
        about("acme", "Customer", None, "export", json!({})),
        about("acme", "Order", None, "truncate", json!({})),
        about("other", "Customer", None, "truncate", json!({})),
        about(
            "acme",
            "Customer",
            None,
            "truncate",
            json!({"metadata": {"partition": "public.customer_2026"}})
        ),
        about(
            "acme",
            "Customer",
            Some("61"),
            "update",
            set("price", json!("19.99"), json!("24.99"))
        ),
        about("acme", "Customer", None, "rewrite", json!({})),
        about("acme", "Customer", None, "capture.paused", json!({})),
        about("acme", "Customer", None, "capture.resumed", json!({})),
        about("acme", "Customer", None, "truncate", json!({})),
        about(
            "acme",
            "Customer",
            Some("61"),
            "create",
            set("name", Value::Null, json!("Acme 2"))
        ),
    ]);
    assert_eq!(server.post("/v1/events", &admin, &batch).0, 201);
    let (code, history) = server.get("/v1/resources/Customer/61/history?tenant=acme", &admin);
    assert_eq!(code, 200, "{history}");
    let steps: Vec<_> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            json!([
                e["action"],
                e["state_after"],
                e["unknown_fields"],
                e["incomplete"]
            ])
        })
        .collect();
    let fields = json!(["name", "price"]);
    assert_eq!(
        steps,
        [
            json!(["create", {"name": "Acme", "price": "19.99"}, [], false]),
            // One partition truncated: the record may be gone.
            json!(["truncate", {}, fields, true]),
            json!(["update", {"price": "24.99"}, ["name"], true]),
            // Rewritten: any value may have changed.
            json!(["rewrite", {}, fields, true]),
            json!(["capture.paused", {}, fields, true]),
            json!(["capture.resumed", {}, fields, true]),
            json!(["truncate", null, [], false]),
            json!(["create", {"name": "Acme 2"}, [], false]),
        ],
        "{history}"
    );
    assert_eq!(history["truncated"], false);
    // Narrowed by a filter, the type's events are narrowed the same way.
    let (_, updates) = server.get(
        "/v1/resources/Customer/61/history?tenant=acme&action=truncate",
        &admin,
    );
    assert_eq!(updates["events"].as_array().unwrap().len(), 0, "{updates}");
}

#[test]
fn serve_reads_a_toml_config_and_flags_win_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("trailmark.toml");
    // The file's listen address and data dir lose to the flags the harness passes.
    std::fs::write(
        &config,
        "origin_prefix = \"audit.example.com\"\nqueue_capacity = 10\nlisten = \"127.0.0.1:9\"\ndata_dir = \"/nonexistent/trailmark\"\n",
    )
    .unwrap();
    let server = Server::start_with(dir.path(), &["--config", config.to_str().unwrap()]);
    server.post("/v1/events", &server.admin, &event("acme", "1", "login"));
    let (_, key) = server.get("/v1/verifier-key?tenant=acme", &server.admin);
    assert!(
        key.as_str().unwrap().starts_with("audit.example.com/acme+"),
        "{key}"
    );
    let (_, metrics) = server.get("/metrics", &server.admin);
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("trailmark_ingest_queue_capacity 10"),
        "{metrics}"
    );

    std::fs::write(&config, "listen = 42\n").unwrap();
    let out = cli(&[
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid Trailmark config"));
}

#[test]
fn a_second_server_on_the_same_data_dir_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Server::start(dir.path());
    let out = cli(&[
        "serve",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("another trailmark serve is using"),
        "{stderr}"
    );
}

/// `GET /v1/checkpoints` is paged: a busy tenant gets a checkpoint a second,
/// and one answer must not hold them all.
#[test]
fn checkpoints_come_a_page_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    for (i, size) in [(1, 1), (2, 2), (3, 3)] {
        let event = crate::event("acme", &format!("user-{i}"), "update");
        assert_eq!(server.post("/v1/events", &server.admin, &event).0, 201);
        server.wait_checkpoint("acme", size);
    }
    let page = |query: &str| {
        server.get(
            &format!("/v1/checkpoints?tenant=acme{query}"),
            &server.admin,
        )
    };
    let (_, first) = page("&limit=2");
    let sizes = |v: &serde_json::Value| -> Vec<u64> {
        v["checkpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["size"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(sizes(&first), [1, 2], "{first}");
    assert_eq!(first["next_after"], 2);
    let (_, rest) = page("&after=2&limit=2");
    assert_eq!(sizes(&rest), [3]);
    assert!(rest["next_after"].is_null());
    for bad in ["&limit=0", "&limit=1001", "&after=x", "&cursor=1"] {
        assert_eq!(page(bad).0, 400, "{bad}");
    }
}

/// `verify --url` while the trail grows and is signed four times a second:
/// every tenant is read against checkpoints and a size read together, so a
/// checkpoint signed after the verifier began is not taken for one that
/// signs entries the log lacks.
#[test]
fn verify_of_a_live_trail_passes_while_it_grows_and_is_signed() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let tenants = ["t1", "t2", "t3", "t4"];
    // Enough entries that one verification outlasts a signing tick.
    for tenant in tenants {
        let body: Vec<serde_json::Value> = (0..1000)
            .map(|i| event(tenant, &format!("user-{i}"), "update"))
            .collect();
        assert_eq!(
            server.post("/v1/events", &server.admin, &json!(body)).0,
            201
        );
    }
    let running = std::sync::Arc::new(AtomicBool::new(true));
    let writer = {
        let (url, admin, running) = (
            server.url.clone(),
            server.admin.clone(),
            std::sync::Arc::clone(&running),
        );
        std::thread::spawn(move || {
            let mut posted = 0;
            while running.load(Ordering::Relaxed) {
                for tenant in tenants {
                    let body: Vec<serde_json::Value> = (0..5)
                        .map(|i| event(tenant, &format!("late-{posted}-{i}"), "update"))
                        .collect();
                    let status = ureq::post(&format!("{url}/v1/events"))
                        .header("Authorization", &format!("Bearer {admin}"))
                        .send_json(&body)
                        .unwrap()
                        .status();
                    assert_eq!(status, 201);
                }
                posted += 1;
            }
            posted
        })
    };
    for round in 0..3 {
        let out = cli(&["verify", "--url", &server.url, "--key", &server.admin]);
        let report = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "round {round}: {report}");
    }
    running.store(false, Ordering::Relaxed);
    let rounds = writer.join().unwrap();
    assert!(rounds > 0, "the trail grew while it was verified");
}

/// The last admin key that sees every tenant cannot be revoked (409 saying
/// to create another first): revoked, nobody could administer the server
/// any more, and no restart brings a bootstrap key back. A tenant's admin
/// key does not count; once another whole-server admin key exists, the
/// first can go.
#[test]
fn the_last_admin_key_that_sees_every_tenant_is_never_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (_, keys) = server.get("/v1/keys", &server.admin);
    let bootstrap = keys["keys"][0]["id"].as_str().unwrap().to_owned();
    let tenant_admin = server.key("admin", Some("acme"));
    assert!(!tenant_admin.is_empty());
    let (status, body) = server.delete(&format!("/v1/keys/{bootstrap}"), &server.admin);
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("is the last admin key that sees every tenant"),
        "{body}"
    );
    assert_eq!(server.get("/v1/keys", &server.admin).0, 200, "still works");
    let second = server.key("admin", None);
    let (status, body) = server.delete(&format!("/v1/keys/{bootstrap}"), &second);
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.get("/v1/keys", &server.admin).0, 401);
    let (_, keys) = server.get("/v1/keys", &second);
    let second_id = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["revoked_at"].is_null() && k["tenant"].is_null())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        server.delete(&format!("/v1/keys/{second_id}"), &second).0,
        409
    );
}
