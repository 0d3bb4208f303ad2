//! Scopes and tenant isolation.

use serde_json::json;

use crate::{Server, cli, event};

#[test]
fn scopes_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let ingest = server.key("ingest", None);
    let read = server.key("read", None);
    assert_eq!(
        server
            .post("/v1/events", &ingest, &event("acme", "1", "login"))
            .0,
        201
    );
    assert_eq!(
        server.get("/v1/events", &ingest).0,
        403,
        "an ingest key cannot read"
    );
    assert_eq!(
        server
            .post("/v1/events", &read, &event("acme", "1", "login"))
            .0,
        403,
        "a read key cannot ingest"
    );
    assert_eq!(server.get("/v1/events", &read).0, 200);
    assert_eq!(
        server
            .post("/v1/keys", &read, &json!({"scopes": "admin"}))
            .0,
        403,
        "a read key cannot make keys"
    );
    assert_eq!(server.get("/v1/keys", &ingest).0, 403);
}

#[test]
fn a_key_bound_to_one_tenant_never_sees_another() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (_, b) = server.post("/v1/events", &server.admin, &event("beta", "9", "login"));
    let beta_id = b["entries"][0]["id"].as_str().unwrap().to_owned();
    server.post("/v1/events", &server.admin, &event("alpha", "1", "login"));
    server.wait_checkpoint("beta", 1);
    let alpha = server.key("ingest,read", Some("alpha"));

    // Writes without a tenant go to the key's tenant; writes to another are refused.
    let (status, body) = server.post(
        "/v1/events",
        &alpha,
        &json!({"actor": {"id": "1", "type": "user"}, "action": "x"}),
    );
    assert_eq!(
        (status, body["entries"][0]["tenant"].as_str()),
        (201, Some("alpha"))
    );
    let (status, body) = server.post("/v1/events", &alpha, &event("beta", "1", "x"));
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("events[0].tenant"),
        "{body}"
    );

    // Every read route.
    let (_, own) = server.get("/v1/events", &alpha);
    assert!(
        own["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["tenant"] == "alpha")
    );
    for path in [
        "/v1/events?tenant=beta".to_owned(),
        "/v1/entries?tenant=beta".into(),
        "/v1/checkpoint?tenant=beta".into(),
        "/v1/checkpoints?tenant=beta".into(),
        "/v1/verifier-key?tenant=beta".into(),
        "/v1/tenants?tenant=beta".into(),
        "/v1/proofs/inclusion?tenant=beta&index=0&size=1".into(),
        "/v1/proofs/consistency?tenant=beta&first=0&second=1".into(),
        format!("/v1/events/{beta_id}?tenant=beta"),
    ] {
        assert_eq!(server.get(&path, &alpha).0, 403, "{path}");
    }
    assert_eq!(server.get(&format!("/v1/events/{beta_id}"), &alpha).0, 404);
    let (_, tenants) = server.get("/v1/tenants", &alpha);
    assert_eq!(tenants["tenants"].as_array().unwrap().len(), 1, "{tenants}");
    // One tenant asked: its row only (none for a tenant with no entries);
    // an empty name is refused, naming the parameter.
    let (_, one) = server.get("/v1/tenants?tenant=alpha", &alpha);
    assert_eq!(one, json!({"tenants": [{"tenant": "alpha", "size": 2}]}));
    let (_, one) = server.get("/v1/tenants?tenant=beta", &server.admin);
    assert_eq!(one, json!({"tenants": [{"tenant": "beta", "size": 1}]}));
    let (_, none) = server.get("/v1/tenants?tenant=gamma", &server.admin);
    assert_eq!(none, json!({"tenants": []}));
    let (status, refused) = server.get("/v1/tenants?tenant=", &server.admin);
    assert_eq!(status, 400, "{refused}");
    assert!(refused.to_string().contains("tenant"), "{refused}");
    let (_, entries) = server.get("/v1/entries", &alpha);
    assert!(
        entries["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["tenant"] == "alpha")
    );
}

/// An admin key bound to a tenant administers that tenant, not the whole
/// server: the alert rules (which watch every tenant) and the webhook
/// endpoints (every tenant's, with their addresses) are refused to it,
/// read or written; it turned the mass-delete alert off for every tenant
/// and read and replaced another tenant's endpoints. An unbound admin key
/// keeps both.
#[test]
fn a_tenants_admin_key_can_neither_read_nor_change_the_servers_rules_and_webhooks() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let admin = server.admin.clone();
    let hooks = json!({"webhooks": [{"name": "globex-siem", "url": "https://siem.globex.example/hook", "tenants": ["globex"]}]});
    let (status, body) = server.put("/v1/webhooks", &admin, &hooks);
    assert_eq!(status, 200, "{body}");
    let (_, rules) = server.get("/v1/alert-rules", &admin);
    let mut off = rules["rules"].clone();
    off["mass_delete"]["enabled"] = json!(false);
    let acme = server.key("admin", Some("acme"));
    for (status, body) in [
        server.get("/v1/alert-rules", &acme),
        server.put("/v1/alert-rules", &acme, &off),
        server.get("/v1/webhooks", &acme),
        server.put("/v1/webhooks", &acme, &json!({"webhooks": []})),
    ] {
        assert_eq!(status, 403, "{body}");
        assert!(body.to_string().contains("bound to tenant acme"), "{body}");
    }
    let (_, kept) = server.get("/v1/alert-rules", &admin);
    assert_eq!(
        kept["rules"]["mass_delete"]["enabled"],
        json!(true),
        "{kept}"
    );
    let (_, kept) = server.get("/v1/webhooks", &admin);
    assert_eq!(kept["webhooks"][0]["name"], "globex-siem", "{kept}");
    // Its own tenant's administration stays its own; the last cleanup's
    // report, every tenant's, is not shown to it.
    let (status, body) = server.put(
        "/v1/retention",
        &acme,
        &json!({"tenant": "acme", "max_age_days": 30}),
    );
    assert_eq!(status, 200, "{body}");
    let (_, all) = server.get("/v1/retention", &admin);
    assert!(all["last_cleanup"]["groups"].is_array(), "{all}");
    let (_, own) = server.get("/v1/retention", &acme);
    assert_eq!(own["last_cleanup"], json!(null), "{own}");
    assert_eq!(own["policies"].as_array().unwrap().len(), 1, "{own}");
}

#[test]
fn every_documented_route_exists_and_needs_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (status, doc) = server.get("/openapi.json", "");
    assert_eq!(status, 200);
    let public = ["/healthz", "/readyz", "/metrics", "/openapi.json"];
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{id}", "0192f0c2-5a1e-7c4b-9d10-6f1b2a3c4d5e")
            .replace("{type}", "Customer")
            .replace("{tenant}", "acme")
            .replace("{path}", "0/000");
        for method in ops.as_object().unwrap().keys() {
            let (status, _) = match method.as_str() {
                "get" => server.get(&concrete, "tmk_wrong"),
                "post" => server.post(&concrete, "tmk_wrong", &json!({})),
                "put" => server.put(&concrete, "tmk_wrong", &json!({})),
                "delete" => server.delete(&concrete, "tmk_wrong"),
                other => panic!("undocumented method {other}"),
            };
            let expected = if public.contains(&path.as_str()) {
                200
            } else {
                401
            };
            assert_eq!(status, expected, "{method} {path}");
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} operations documented");
}

#[test]
fn an_event_id_planted_in_another_tenant_never_answers_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let planter = server.key("ingest", Some("globex"));
    let owner = server.key("ingest", Some("acme"));
    let reader = server.key("read", Some("acme"));
    let id = "0192f0c2-5a1e-7c4b-9d10-6f1b2a3c4d5e";
    // Tenant globex stores the id first; acme then uses it for its own event.
    let mut plant = event("globex", "mallory", "login");
    plant["id"] = json!(id);
    assert_eq!(server.post("/v1/events", &planter, &plant).0, 201);
    let mut own = event("acme", "alice", "update");
    own["id"] = json!(id);
    assert_eq!(server.post("/v1/events", &owner, &own).0, 201);

    // Without a tenant, an unbound key gets no guess: 409 naming both.
    let (status, body) = server.get(&format!("/v1/events/{id}"), &server.admin);
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("?tenant="),
        "{body}"
    );
    // Named, each tenant's own event; a key bound to acme sees acme's.
    let (status, body) = server.get(&format!("/v1/events/{id}?tenant=acme"), &server.admin);
    assert_eq!(
        (status, body["actor"]["id"].as_str()),
        (200, Some("alice")),
        "{body}"
    );
    let (status, body) = server.get(&format!("/v1/events/{id}"), &reader);
    assert_eq!(
        (status, body["actor"]["id"].as_str()),
        (200, Some("alice")),
        "{body}"
    );
    // Each of the three reads is recorded, the refused one too: a record
    // names only the id asked for and is written while the read runs.
    let (_, records) = server.get(
        "/v1/events?tenant=_system&action=read&limit=50",
        &server.admin,
    );
    let asked = records["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resource"]["id"] == "/v1/events/{id}" && e["metadata"]["event"] == id)
        .count();
    assert_eq!(asked, 3, "{records}");
}

#[test]
fn reads_of_entries_and_stats_are_recorded_with_the_caller_ip_and_long_filters_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    assert_eq!(
        server
            .post("/v1/events", &server.admin, &event("acme", "1", "a"))
            .0,
        201
    );
    let reader = server.key("read", Some("acme"));
    assert_eq!(
        server
            .get("/v1/entries?tenant=acme&start=0&end=1", &reader)
            .0,
        200
    );
    assert_eq!(server.get("/v1/stats?tenant=acme", &reader).0, 200);
    let long_q = "word ".repeat(100);
    let (status, _) = server.get(
        &format!(
            "/v1/events?tenant=acme&q={}",
            long_q.trim().replace(' ', "+")
        ),
        &reader,
    );
    assert_eq!(status, 200);
    let (_, records) = server.get(
        "/v1/events?tenant=_system&action=read&limit=50",
        &server.admin,
    );
    let routes: Vec<&str> = records["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["resource"]["id"].as_str())
        .collect();
    assert!(
        routes.contains(&"/v1/entries") && routes.contains(&"/v1/stats"),
        "{routes:?}"
    );
    // Each read record says where the read came from (the test's client
    // connects over loopback).
    for record in records["events"].as_array().unwrap() {
        assert_eq!(record["context"]["ip"], "127.0.0.1", "{record}");
    }
    let q = records["events"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| e["metadata"]["q"].as_str())
        .unwrap();
    // Free text may be personal data: only its digest is kept.
    assert!(q.len() < 80 && q.starts_with("sha256 "), "{q}");
}

#[test]
fn viewer_pages_carry_security_headers_and_refuse_foreign_form_posts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let page = agent
        .get(&format!("{}/ui/login", server.url))
        .call()
        .unwrap();
    let header = |name: &str| {
        page.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let csp = header("content-security-policy");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("referrer-policy"), "same-origin");
    assert_eq!(header("cache-control"), "no-store");
    // A sign-in posted from another site, or with no origin at all: refused.
    for origin in [Some("http://evil.example"), None] {
        let mut post = agent.post(&format!("{}/ui/login", server.url));
        if let Some(o) = origin {
            post = post.header("Origin", o);
        }
        let answer = post.send_form([("key", server.admin.as_str())]).unwrap();
        assert_eq!(answer.status(), 403, "{origin:?}");
        assert!(answer.headers().get("set-cookie").is_none());
    }
    let ok = agent
        .post(&format!("{}/ui/login", server.url))
        .header("Origin", &server.url)
        .send_form([("key", server.admin.as_str())])
        .unwrap();
    assert_eq!(ok.status(), 303);
    // The outcome filter offers only what the API accepts.
    let cookie = ok
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let mut events = agent
        .get(&format!("{}/ui/events", server.url))
        .header("Cookie", &cookie)
        .call()
        .unwrap();
    let html = events.body_mut().read_to_string().unwrap();
    assert!(
        html.contains("<option value=\"failure\"") && !html.contains("value=\"denied\""),
        "{html}"
    );
    assert!(!html.contains("<script>"), "inline script in {html}");
    // A verification started without the session's token, or with another: refused.
    for token in [None, Some("0".repeat(64))] {
        let mut post = agent
            .post(&format!("{}/ui/verify", server.url))
            .header("Cookie", &cookie)
            .header("Origin", &server.url);
        if let Some(t) = &token {
            post = post.header("X-CSRF-Token", t);
        }
        assert_eq!(post.send_empty().unwrap().status(), 403, "{token:?}");
    }
    let token = crate::threats::csrf_token(&agent, &server.url, &cookie);
    let started = agent
        .post(&format!("{}/ui/verify", server.url))
        .header("Cookie", &cookie)
        .header("Origin", &server.url)
        .header("X-CSRF-Token", &token)
        .send_empty()
        .unwrap();
    assert_eq!(started.status(), 200);
}

/// `--log-format json`: every log line is one JSON object; a request's lines
/// carry its id (the caller's `X-Request-Id`, answered back), and so does
/// the `_system` record of the read it made.
#[test]
fn json_logs_and_records_carry_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let data = dir.path().join("data");
    let mut server = Server::start_logged(
        &data,
        &["--log-format", "json", "--log-level", "debug"],
        std::fs::File::create(&log_path).unwrap(),
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let response = agent
        .get(&format!("{}/v1/events?tenant=acme", server.url))
        .header("Authorization", &format!("Bearer {}", server.admin))
        .header("X-Request-Id", "audit-req-42")
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["x-request-id"], "audit-req-42");
    // A fresh id when none (or an unusable one) is sent.
    let other = agent
        .get(&format!("{}/healthz", server.url))
        .header("X-Request-Id", "has spaces")
        .call()
        .unwrap();
    let fresh = other.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(
        fresh.len() == 16 && fresh.bytes().all(|b| b.is_ascii_hexdigit()),
        "{fresh}"
    );

    let (_, records) = server.get(
        "/v1/events?tenant=_system&action=read&limit=50",
        &server.admin,
    );
    assert!(
        records["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["context"]["request_id"] == "audit-req-42"),
        "{records}"
    );
    // ... and the request_id filter finds it, and only it.
    let (_, found) = server.get(
        "/v1/events?tenant=_system&request_id=audit-req-42",
        &server.admin,
    );
    let found = found["events"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["action"], "read");
    server.stop();
    let log = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["span"]["id"] == "audit-req-42" && l["fields"]["message"] == "answered"),
        "{log}"
    );
    assert!(lines.iter().any(|l| l["fields"]["message"] == "stopped"));
}

/// Behind a reverse proxy the TCP peer is the proxy: `serve
/// --trusted-proxy` names the proxies whose `Forwarded` / `X-Forwarded-For`
/// is believed, so that the `_system` records of what callers do name the
/// client (`context.ip`), as far back as the chain is trusted; from anyone
/// else the headers are ignored, so a caller cannot write another address
/// into the record. A bad entry stops the server at start, named.
#[test]
fn system_records_name_the_client_a_trusted_proxy_forwarded_for_and_no_one_else() {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    // A read through the server with these headers, and the address its
    // record in `_system` names.
    let read_from = |server: &Server, headers: &[(&str, &str)]| {
        let mut request = agent
            .get(&format!("{}/v1/stats?tenant=acme", server.url))
            .header("Authorization", &format!("Bearer {}", server.admin));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        assert_eq!(request.call().unwrap().status().as_u16(), 200);
        let (_, records) = server.get(
            "/v1/events?tenant=_system&action=read&resource_id=/v1/stats&limit=1",
            &server.admin,
        );
        records["events"][0]["context"]["ip"].clone()
    };
    let chain = [("X-Forwarded-For", "198.51.100.1, 203.0.113.7")];
    let plain_dir = tempfile::tempdir().unwrap();
    let plain = Server::start(plain_dir.path());
    assert_eq!(read_from(&plain, &chain), "127.0.0.1", "nobody trusted");

    let dir = tempfile::tempdir().unwrap();
    let proxied = Server::start_with(dir.path(), &["--trusted-proxy", "127.0.0.0/8"]);
    assert_eq!(read_from(&proxied, &chain), "203.0.113.7");
    assert_eq!(
        read_from(
            &proxied,
            &[("Forwarded", "for=\"[2001:db8::1]:4711\";proto=https")]
        ),
        "2001:db8::1"
    );
    assert_eq!(read_from(&proxied, &[]), "127.0.0.1", "no header");
    // An unreadable hop: nothing behind it is believed.
    assert_eq!(
        read_from(&proxied, &[("X-Forwarded-For", "203.0.113.7, unknown")]),
        "127.0.0.1"
    );

    let refused = cli(&[
        "serve",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--trusted-proxy",
        "proxy.local",
    ]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success()
            && said.contains("\"proxy.local\" is not an IP address or network"),
        "{said}"
    );
}
