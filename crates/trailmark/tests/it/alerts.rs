//! Alerts through a real server: failed logins and mass deletions raise
//! one `_system` alert per burst (the default rules, docs/ALERTS.md).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{Server, wait_for};

/// A counter of `GET /metrics`.
fn metric(server: &Server, name: &str) -> u64 {
    let (_, text) = server.get("/metrics", &server.admin);
    text.as_str()
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

/// A gauge of `GET /metrics`, if the server shows it.
fn gauge(server: &Server, name: &str) -> Option<u64> {
    let (_, text) = server.get("/metrics", &server.admin);
    text.as_str()?
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Waits until the detector has counted `n` events and recorded every
/// alert it raised for them.
fn settled(server: &Server, n: u64) {
    wait_for("the detector to settle", Duration::from_secs(10), || {
        let observed = metric(server, "trailmark_alert_facts_observed_total");
        let raised = metric(server, "trailmark_alerts_raised_total");
        let settled = metric(server, "trailmark_alerts_settled_total");
        (observed >= n && raised == settled).then_some(())
    });
}

/// The `_system` entries of the alerts one rule raised.
fn alerts(server: &Server, rule: &str) -> Vec<Value> {
    let (status, found) = server.get(
        "/v1/events?tenant=_system&action=trailmark.alert.raised&limit=100",
        &server.admin,
    );
    assert_eq!(status, 200, "{found}");
    found["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["metadata"]["rule"] == rule)
        .cloned()
        .collect()
}

/// A data dir under `dir`, and the rules of [`twenty_in_ten_seconds`]
/// written beside it: what the alert tests start (and restart) a server on.
struct Alerting {
    data: std::path::PathBuf,
    rules: String,
}

impl Alerting {
    fn new(dir: &std::path::Path) -> Self {
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        Self {
            data,
            rules: twenty_in_ten_seconds(dir),
        }
    }

    /// A server on the data dir with these rules, and `extra` flags.
    fn start(&self, extra: &[&str]) -> Server {
        let mut args = vec!["--alert-rules", self.rules.as_str()];
        args.extend_from_slice(extra);
        Server::start_with(&self.data, &args)
    }
}

/// The rules with failed logins at 20 within 10 s, written to `dir`.
fn twenty_in_ten_seconds(dir: &std::path::Path) -> String {
    let rules = trailmark_server::alerts::Rules::default()
        .to_toml()
        .replacen(
            "threshold = 10\nwindow_secs = 60",
            "threshold = 20\nwindow_secs = 10",
            1,
        );
    let path = dir.join("alert-rules.toml");
    std::fs::write(&path, rules).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn twenty_failed_logins_of_one_username_from_one_ip_raise_one_alert_within_two_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let alerting = Alerting::new(dir.path());
    let server = alerting.start(&[]);
    let login = json!({
        "tenant": "acme",
        "actor": {"id": "anonymous", "type": "user", "name": "alice"},
        "action": "auth.login",
        "outcome": "failure",
        "context": {"ip": "203.0.113.9"},
    });
    // A success does not count.
    let mut ok = login.clone();
    ok["outcome"] = json!("success");
    assert_eq!(server.post("/v1/events", &server.admin, &ok).0, 201);
    for n in 1..20 {
        assert_eq!(
            server.post("/v1/events", &server.admin, &login).0,
            201,
            "{n}"
        );
    }
    settled(&server, 19);
    assert!(
        alerts(&server, "failed_logins").is_empty(),
        "19 are not enough"
    );
    assert_eq!(server.post("/v1/events", &server.admin, &login).0, 201);
    let twentieth = Instant::now();
    let raised = wait_for("the alert", Duration::from_secs(2), || {
        let found = alerts(&server, "failed_logins");
        (!found.is_empty()).then_some(found)
    });
    assert!(twentieth.elapsed() < Duration::from_secs(2));
    // The same burst goes on: still one alert (not one per actor, IP and
    // username, nor one per later failure).
    for _ in 0..15 {
        assert_eq!(server.post("/v1/events", &server.admin, &login).0, 201);
    }
    settled(&server, 35);
    let after = alerts(&server, "failed_logins");
    assert_eq!(after.len(), 1, "{after:?}");
    let alert = &raised[0];
    assert_eq!(alert["resource"]["type"], "Alert");
    let meta = &alert["metadata"];
    assert_eq!(meta["rule"], "failed_logins");
    assert_eq!(meta["tenant"], "acme");
    assert_eq!(meta["count"], 20);
    let events = meta["events"].as_array().unwrap();
    assert_eq!(events.len(), 20);
    // The events it names are the failures, in the tenant's trail.
    let (status, first) = server.get(
        &format!("/v1/events/{}?tenant=acme", events[0].as_str().unwrap()),
        &server.admin,
    );
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["outcome"], "failure");
    assert_eq!(metric(&server, "trailmark_alert_facts_dropped_total"), 0);
}

/// A rules file with a bad field stops `serve` before it listens, naming
/// the field.
#[test]
fn bad_alert_rules_stop_serve_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.toml");
    let bad = trailmark_server::alerts::Rules::default()
        .to_toml()
        .replacen("threshold = 10", "threshold = 0", 1);
    std::fs::write(&path, bad).unwrap();
    let mut child = std::process::Command::new(crate::BIN)
        .args(["serve", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0", "--alert-rules"])
        .arg(&path)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_for("serve to stop", Duration::from_secs(10), || {
        child.try_wait().unwrap()
    });
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(err.contains("failed_logins.threshold"), "{err}");
}

#[test]
fn one_actor_deleting_many_records_raises_a_mass_deletion_alert() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let batch: Vec<Value> = (0..150)
        .map(|n| {
            json!({
                "tenant": "acme",
                "actor": {"id": "u-7", "type": "user"},
                "action": "invoice.delete",
                "resource": {"type": "Invoice", "id": n.to_string()},
            })
        })
        .collect();
    assert_eq!(
        server.post("/v1/events", &server.admin, &json!(batch)).0,
        201
    );
    settled(&server, 150);
    let found = alerts(&server, "mass_delete");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["metadata"]["rule"], "mass_delete");
    assert_eq!(found[0]["metadata"]["key"], "actor=u-7");
}

/// One webhook, `security`, at `url` for the failed-logins rule, retried
/// every 1 to 4 s up to 30 times: its secret (shown this once).
fn security_hook(server: &Server, url: &str) -> String {
    let (status, hooks) = server.put(
        "/v1/webhooks",
        &server.admin,
        &json!({"webhooks": [{"name": "security", "url": url,
                              "first_retry_secs": 1, "max_retry_secs": 4, "max_attempts": 30,
                              "rules": ["failed_logins"]}]}),
    );
    assert_eq!(status, 200, "{hooks}");
    hooks["webhooks"][0]["secret"].as_str().unwrap().to_owned()
}

/// A webhook receiver checking signatures with `standardwebhooks` (`PyPI`),
/// listening on `port` once started; what it received, one JSON per line.
struct Receiver {
    child: std::process::Child,
}

impl Receiver {
    fn start(port: u16, secret: &str, out: &std::path::Path) -> Self {
        Self::start_with(port, secret, out, &[])
    }

    /// [`Receiver::start`] over HTTPS, with this certificate and key.
    fn start_tls(
        port: u16,
        secret: &str,
        out: &std::path::Path,
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> Self {
        Self::start_with(port, secret, out, &[cert, key])
    }

    fn start_with(
        port: u16,
        secret: &str,
        out: &std::path::Path,
        tls: &[&std::path::Path],
    ) -> Self {
        let python = crate::witness::aics_bin("python");
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/it/fixtures/webhook_receiver.py");
        // A secret of the right shape that is not the endpoint's.
        let wrong = format!("whsec_{}", "A".repeat(44));
        let child = std::process::Command::new(python)
            .arg(script)
            .args([&port.to_string(), secret, &wrong])
            .arg(out)
            .args(tls)
            .spawn()
            .unwrap();
        wait_for("the receiver to listen", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Self { child }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn received(out: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `GET /v1/alerts` (asserting 200).
fn listed(server: &Server, query: &str) -> Vec<Value> {
    let (status, page) = server.get(&format!("/v1/alerts{query}"), &server.admin);
    assert_eq!(status, 200, "{page}");
    page["alerts"].as_array().unwrap().clone()
}

fn raise_failed_logins(server: &Server, n: usize) {
    let login = json!({
        "tenant": "acme",
        "actor": {"id": "anonymous", "type": "user", "name": "alice"},
        "action": "auth.login",
        "outcome": "failure",
        "context": {"ip": "203.0.113.9"},
    });
    for _ in 0..n {
        assert_eq!(server.post("/v1/events", &server.admin, &login).0, 201);
    }
}

/// The receiver is down for a minute: the alert is attempted again and
/// again (each attempt in the alert's history, all with one `webhook-id`),
/// the server is killed with SIGKILL between attempts and restarted, and
/// once the receiver is up the alert arrives there once, signed so that
/// `standardwebhooks` accepts it with the endpoint's secret and refuses it
/// with another. Then it is acknowledged, which `_system` records.
#[test]
fn an_alert_reaches_a_receiver_down_for_a_minute_once_across_a_kill_dash_nine() {
    let dir = tempfile::tempdir().unwrap();
    let alerting = Alerting::new(dir.path());
    let mut server = alerting.start(&[]);
    let port = crate::free_port();
    let secret = security_hook(&server, &format!("http://127.0.0.1:{port}/hook"));
    assert!(secret.starts_with("whsec_"));
    let (_, shown) = server.get("/v1/webhooks", &server.admin);
    assert!(
        shown["webhooks"][0].get("secret").is_none(),
        "a secret is shown once: {shown}"
    );

    let down_since = Instant::now();
    raise_failed_logins(&server, 20);
    let alert = wait_for("failed attempts", Duration::from_secs(20), || {
        listed(&server, "?rule=failed_logins")
            .into_iter()
            .next()
            .filter(|a| a["deliveries"][0]["attempts"].as_u64() >= Some(2))
    });
    assert_eq!(alert["rule"], "failed_logins");
    assert_eq!(alert["deliveries"][0]["state"], "pending");
    let id = alert["id"].as_str().unwrap().to_owned();
    server.kill9();
    let server = Server::start(&alerting.data);

    // Up after a minute.
    std::thread::sleep(Duration::from_secs(60).saturating_sub(down_since.elapsed()));
    let out = dir.path().join("received.ndjson");
    let _receiver = Receiver::start(port, &secret, &out);
    let delivered = wait_for("the delivery", Duration::from_secs(30), || {
        let a = listed(&server, "?delivery=delivered&rule=failed_logins");
        (!a.is_empty()).then(|| a[0].clone())
    });
    assert_eq!(delivered["id"], id.as_str());
    let got = received(&out);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["verified"], true, "{got:?}");
    assert_eq!(got[0]["verified_with_wrong_secret"], false);
    assert_eq!(got[0]["body"]["type"], "alert.raised");
    assert_eq!(got[0]["body"]["data"]["id"], id.as_str());
    let delivery = &delivered["deliveries"][0];
    assert_eq!(got[0]["webhook_id"], delivery["webhook_id"]);
    assert!(delivery["attempts"].as_u64().unwrap() > 2, "{delivery}");

    // Every attempt, before and after the restart, carried the same id.
    let (_, history) = server.get(
        &format!("/v1/resources/Alert/{id}/history?tenant=_system"),
        &server.admin,
    );
    let attempts: Vec<&Value> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "trailmark.alert.delivery")
        .collect();
    assert_eq!(
        attempts.len() as u64,
        delivery["attempts"].as_u64().unwrap()
    );
    assert!(
        attempts
            .iter()
            .all(|e| e["metadata"]["webhook_id"] == delivery["webhook_id"])
    );
    let numbers: Vec<u64> = attempts
        .iter()
        .map(|e| e["metadata"]["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(
        numbers,
        (1..=numbers.len() as u64).collect::<Vec<_>>(),
        "attempts go on after the restart"
    );

    // Acknowledged once, recorded in _system; again is a conflict.
    let ack = format!("/v1/alerts/{id}/ack");
    let (status, acked) = server.post(&ack, &server.admin, &json!({"note": "ticket SEC-12"}));
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["status"], "acknowledged");
    assert_eq!(acked["acknowledged"]["note"], "ticket SEC-12");
    let (status, _) = server.post(&ack, &server.admin, &json!({}));
    assert_eq!(status, 409);
    let (status, bad) = server.post(&ack, &server.admin, &json!({"resolved": true}));
    assert_eq!(status, 400, "{bad}");
    let recorded = server
        .get(
            "/v1/events?tenant=_system&action=trailmark.alert.acknowledged",
            &server.admin,
        )
        .1;
    assert_eq!(recorded["events"][0]["resource"]["id"], id.as_str());
    assert_eq!(listed(&server, "?status=open&rule=failed_logins").len(), 0);
    assert_eq!(listed(&server, "?status=acknowledged").len(), 1);

    // Nothing arrives twice.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(received(&out).len(), 1);
}

/// A captured `DELETE` of 500 rows in one statement raises one
/// mass-deletion alert naming the statement, the actor the transaction
/// set and the table; a captured update of `is_staff` raises a privilege
/// change, one of another column does not.
#[test]
fn a_captured_delete_of_500_rows_and_a_captured_promotion_raise_alerts_naming_actor_and_table() {
    let db = crate::PgDb::new("tm_alert_capture");
    db.sql("CREATE TABLE customer (id int PRIMARY KEY, name text)");
    db.sql("CREATE TABLE app_user (id int PRIMARY KEY, email text, is_staff bool)");
    db.sql("INSERT INTO app_user VALUES (1, 'eve@example.com', false)");
    let source = db.source();
    let out = crate::cli(&[
        "capture",
        "pg",
        "install",
        "--source",
        &source,
        "--tables",
        "public.customer,public.app_user",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    db.sql("INSERT INTO customer SELECT n, 'c' || n FROM generate_series(1, 500) n");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &["--capture-source", &source, "--capture-tenant", "crm"],
    );
    db.sql(
        "BEGIN;
         SELECT set_config('trailmark.actor_id', 'mallory', true);
         DELETE FROM customer;
         COMMIT;",
    );
    let alert = wait_for("the alert", Duration::from_secs(30), || {
        listed(&server, "?rule=mass_delete").into_iter().next()
    });
    settled(&server, 500);
    let all = listed(&server, "?rule=mass_delete");
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(alert["tenant"], "crm");
    assert!(
        alert["key"].as_str().unwrap().starts_with("statement="),
        "{alert}"
    );
    let summary = alert["summary"].as_str().unwrap();
    assert!(
        summary.contains("mallory") && summary.contains("public.customer"),
        "{summary}"
    );

    // A captured update of a privilege column is a privilege change; one
    // of another column is not.
    db.sql(
        "BEGIN;
         SELECT set_config('trailmark.actor_id', 'mallory', true);
         UPDATE app_user SET email = 'eve@example.net' WHERE id = 1;
         UPDATE app_user SET is_staff = true WHERE id = 1;
         COMMIT;",
    );
    let promoted = wait_for("the privilege alert", Duration::from_secs(30), || {
        listed(&server, "?rule=privilege_changes")
            .into_iter()
            .next()
    });
    assert_eq!(listed(&server, "?rule=privilege_changes").len(), 1);
    let summary = promoted["summary"].as_str().unwrap();
    assert!(
        summary.contains("mallory") && summary.contains("public.app_user"),
        "{summary}"
    );
    let (_, event) = server.get(
        &format!(
            "/v1/events/{}?tenant=crm",
            promoted["events"][0].as_str().unwrap()
        ),
        &server.admin,
    );
    assert!(event["changes"].get("is_staff").is_some(), "{event}");
}

/// Ten failed logins, a `kill -9` and a restart, ten more within the
/// window: one alert (the windows are rebuilt from the trail). Another
/// restart does not raise it again.
#[test]
fn a_burst_half_before_and_half_after_a_restart_fires_once() {
    let dir = tempfile::tempdir().unwrap();
    let alerting = Alerting::new(dir.path());
    let mut server = alerting.start(&[]);
    raise_failed_logins(&server, 10);
    settled(&server, 10);
    server.kill9();
    let mut server = alerting.start(&[]);
    raise_failed_logins(&server, 10);
    let alert = wait_for("the alert", Duration::from_secs(5), || {
        listed(&server, "?rule=failed_logins").into_iter().next()
    });
    assert_eq!(alert["count"], 20, "{alert}");
    assert_eq!(alert["events"].as_array().unwrap().len(), 20);
    settled(&server, 10);
    assert_eq!(listed(&server, "?rule=failed_logins").len(), 1);

    server.kill9();
    let server = alerting.start(&[]);
    // One live failure counted means the rebuild is done.
    raise_failed_logins(&server, 1);
    settled(&server, 1);
    let all = listed(&server, "?rule=failed_logins");
    assert_eq!(all.len(), 1, "{all:?}");
}

/// The rebuild reads the window back a page (1,000 entries) at a time:
/// failed logins spread over three pages among other events, then a
/// `kill -9` and the rest of the burst, fire one alert counting all of
/// them.
#[test]
fn a_burst_spread_over_several_pages_of_the_trail_is_rebuilt_whole_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rules = trailmark_server::alerts::Rules::default()
        .to_toml()
        .replacen(
            "threshold = 10\nwindow_secs = 60",
            "threshold = 20\nwindow_secs = 60",
            1,
        );
    let rules_path = dir.path().join("alert-rules.toml");
    std::fs::write(&rules_path, rules).unwrap();
    let rules = rules_path.to_str().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let others = |n: usize| {
        let batch: Vec<Value> = (0..n)
            .map(|i| {
                json!({
                    "tenant": "acme",
                    "actor": {"id": format!("u{i}"), "type": "user"},
                    "action": "update",
                    "resource": {"type": "Invoice", "id": i.to_string()},
                })
            })
            .collect();
        Value::Array(batch)
    };
    let mut server = Server::start_with(&data, &["--alert-rules", rules]);
    raise_failed_logins(&server, 5);
    assert_eq!(
        server.post("/v1/events", &server.admin, &others(1200)).0,
        201
    );
    raise_failed_logins(&server, 5);
    assert_eq!(
        server.post("/v1/events", &server.admin, &others(1200)).0,
        201
    );
    raise_failed_logins(&server, 5);
    settled(&server, 15);
    server.kill9();
    let server = Server::start_with(&data, &["--alert-rules", rules]);
    // The gauge says when the read-back is over (1 until then).
    let shown = gauge(&server, "trailmark_alert_windows_rebuilding");
    assert!(matches!(shown, Some(0 | 1)), "{shown:?}");
    wait_for("the windows to be rebuilt", Duration::from_secs(10), || {
        (gauge(&server, "trailmark_alert_windows_rebuilding") == Some(0)).then_some(())
    });
    raise_failed_logins(&server, 5);
    let alert = wait_for("the alert", Duration::from_secs(10), || {
        listed(&server, "?rule=failed_logins").into_iter().next()
    });
    assert_eq!(alert["count"], 20, "{alert}");
    settled(&server, 5);
    assert_eq!(listed(&server, "?rule=failed_logins").len(), 1);
}

fn cli_ok(server: &Server, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["--url", &server.url, "--key", &server.admin]);
    let out = crate::cli(&all);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    crate::said(&out)
}

/// `trailmark alerts rules set` puts new rules in force at once (recorded
/// in `_system`, kept across a restart), a bad file is refused naming the
/// field, and `alerts list` / `alerts ack` show and acknowledge what fired.
#[test]
fn rules_set_from_the_cli_take_effect_at_once_and_alerts_are_listed_and_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut server = Server::start(&data);
    let shown = cli_ok(&server, &["alerts", "rules", "show"]);
    assert!(shown.contains("threshold = 10"), "{shown}");
    let three = shown.replacen("threshold = 10", "threshold = 3", 1);
    let path = dir.path().join("rules.toml");
    std::fs::write(&path, &three).unwrap();
    let set = cli_ok(&server, &["alerts", "rules", "set", path.to_str().unwrap()]);
    assert!(set.contains("version 1"), "{set}");
    let (_, changes) = server.get(
        "/v1/events?tenant=_system&action=trailmark.alert_rules.changed",
        &server.admin,
    );
    assert_eq!(changes["events"].as_array().unwrap().len(), 1, "{changes}");
    assert_eq!(
        changes["events"][0]["metadata"]["rules"]["failed_logins"]["threshold"],
        3
    );

    // Bad rules: refused, naming the field; the rules in force stay.
    std::fs::write(&path, three.replacen("threshold = 3", "threshold = 0", 1)).unwrap();
    let mut args = vec!["alerts", "rules", "set", path.to_str().unwrap()];
    args.extend(["--url", &server.url, "--key", &server.admin]);
    let out = crate::cli(&args);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("failed_logins.threshold"));
    let (status, bad) = server.put(
        "/v1/alert-rules",
        &server.admin,
        &json!({"failed_logins": {"enabled": true}}),
    );
    assert_eq!(status, 400, "{bad}");

    raise_failed_logins(&server, 3);
    let alert = wait_for("the alert", Duration::from_secs(5), || {
        listed(&server, "?rule=failed_logins").into_iter().next()
    });
    let id = alert["id"].as_str().unwrap();
    let table = cli_ok(&server, &["alerts", "list", "--status", "open"]);
    assert!(
        table.contains(id) && table.contains("failed_logins"),
        "{table}"
    );
    let acked = cli_ok(
        &server,
        &["alerts", "ack", id, "--resolve", "--note", "drill"],
    );
    assert!(acked.contains("resolved"), "{acked}");
    assert_eq!(listed(&server, "?status=resolved").len(), 1);
    // Trailmark's own events are alerts too: a key created, the rules
    // changed.
    let other = server.key("read", Some("globex"));
    let own = wait_for("the key alert", Duration::from_secs(5), || {
        let found = listed(&server, "?rule=trailmark_events");
        found
            .iter()
            .any(|a| a["key"] == "action=admin.key.create")
            .then_some(found)
    });
    assert!(
        own.iter()
            .any(|a| a["key"] == "action=trailmark.alert_rules.changed"),
        "{own:?}"
    );
    let (status, page) = server.get("/v1/alerts", &other);
    assert_eq!(status, 200);
    assert!(
        page["alerts"].as_array().unwrap().is_empty(),
        "a key bound to another tenant sees none: {page}"
    );

    // Kept across a restart.
    server.kill9();
    let server = Server::start(&data);
    let shown = cli_ok(&server, &["alerts", "rules", "show"]);
    assert!(
        shown.contains("# version 1") && shown.contains("threshold = 3"),
        "{shown}"
    );
}

/// A receiver that is not there: after `max_attempts` the delivery is
/// dead and on the dead-letter list; once it is up, a redelivery (asked
/// through the CLI) arrives with the same `webhook-id`, in the Slack body
/// format that endpoint asked for, and the redelivery is on the alert.
#[test]
fn a_dead_delivery_is_listed_and_redelivered_with_the_same_webhook_id() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let server = Server::start(&data);
    let port = crate::free_port();
    let (status, hooks) = server.put(
        "/v1/webhooks",
        &server.admin,
        &json!({"webhooks": [{"name": "chat", "url": format!("http://127.0.0.1:{port}/"),
                              "format": "slack", "first_retry_secs": 1, "max_retry_secs": 1,
                              "max_attempts": 2, "rules": ["failed_logins"]}]}),
    );
    assert_eq!(status, 200, "{hooks}");
    let secret = hooks["webhooks"][0]["secret"].as_str().unwrap().to_owned();
    bad_endpoints_are_refused_naming_the_field(&server);

    raise_failed_logins(&server, 10);
    let dead = wait_for("the dead letter", Duration::from_secs(20), || {
        listed(&server, "?delivery=dead").into_iter().next()
    });
    let delivery = &dead["deliveries"][0];
    assert_eq!(delivery["attempts"], 2, "{dead}");
    assert!(delivery["last_error"].is_string(), "{dead}");
    assert_eq!(metric(&server, "trailmark_webhook_dead_total"), 1);

    let out = dir.path().join("received.ndjson");
    let _receiver = Receiver::start(port, &secret, &out);
    let id = dead["id"].as_str().unwrap();
    let said = cli_ok(&server, &["alerts", "redeliver", id, "--webhook", "chat"]);
    assert!(
        said.contains("delivering alert") && said.contains("chat:"),
        "{said}"
    );
    let got = wait_for("the redelivery", Duration::from_secs(20), || {
        let got = received(&out);
        (!got.is_empty()).then_some(got)
    });
    assert_eq!(got[0]["webhook_id"], delivery["webhook_id"]);
    assert_eq!(got[0]["verified"], true);
    let text = got[0]["body"]["text"].as_str().unwrap();
    assert!(
        text.starts_with("Trailmark alert: 10 failed logins"),
        "{text}"
    );
    let done = wait_for("the delivered state", Duration::from_secs(10), || {
        let (_, a) = server.get(&format!("/v1/alerts/{id}"), &server.admin);
        (a["deliveries"][0]["state"] == "delivered").then_some(a)
    });
    assert_eq!(
        done["deliveries"][0]["attempts"], 1,
        "counted afresh: {done}"
    );
    let (_, history) = server.get(
        &format!("/v1/resources/Alert/{id}/history?tenant=_system"),
        &server.admin,
    );
    let actions: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "trailmark.alert.raised",
            "trailmark.alert.delivery",
            "trailmark.alert.delivery",
            "trailmark.alert.redeliver",
            "trailmark.alert.delivery"
        ]
    );
}

/// Bad endpoints are refused, naming the field; the endpoint set before
/// (`chat`) stays.
fn bad_endpoints_are_refused_naming_the_field(server: &Server) {
    for (bad, field) in [
        (
            json!({"name": "Chat!", "url": "http://x/"}),
            "webhooks[0].name",
        ),
        (json!({"name": "a", "url": "ftp://x/"}), "webhooks[0].url"),
        (
            json!({"name": "a", "url": "http://x/", "max_attempts": 0}),
            "webhooks[0].max_attempts",
        ),
        (
            json!({"name": "a", "url": "http://x/", "rules": ["nope"]}),
            "webhooks[0].rules",
        ),
        (
            json!({"name": "a", "url": "http://x/", "secret": "abc"}),
            "webhooks[0].secret",
        ),
        (
            json!({"name": "a", "url": "http://x/", "colour": "red"}),
            "colour",
        ),
    ] {
        let (status, answer) =
            server.put("/v1/webhooks", &server.admin, &json!({"webhooks": [bad]}));
        assert_eq!(status, 400, "{answer}");
        assert!(answer.to_string().contains(field), "{field}: {answer}");
    }
    assert_eq!(
        server.get("/v1/webhooks", &server.admin).1["webhooks"][0]["name"],
        "chat"
    );
}

/// A receiver over HTTPS whose certificate a private authority signed:
/// refused while the server trusts only the built-in roots (the attempt
/// fails on the certificate, and is retried), delivered once the server is
/// started with that authority (`--ca-file`), signed as over HTTP.
#[test]
fn an_https_receiver_is_reached_once_its_authority_is_named_and_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let alerting = Alerting::new(dir.path());
    // A certificate for 127.0.0.1, its own authority.
    let (cert, key) = crate::self_signed(dir.path());
    let mut server = alerting.start(&[]);
    let port = crate::free_port();
    let secret = security_hook(&server, &format!("https://127.0.0.1:{port}/hook"));
    let out = dir.path().join("received.ndjson");
    let _receiver = Receiver::start_tls(port, &secret, &out, &cert, &key);

    raise_failed_logins(&server, 20);
    let refused = wait_for("an attempt refused", Duration::from_secs(20), || {
        let alert = listed(&server, "?rule=failed_logins").into_iter().next()?;
        let delivery = alert["deliveries"][0].clone();
        (delivery["attempts"].as_u64() >= Some(1)).then_some(delivery)
    });
    assert_eq!(refused["state"], "pending", "{refused}");
    assert!(
        refused["last_error"]
            .as_str()
            .unwrap()
            .contains("UnknownIssuer"),
        "{refused}"
    );
    assert!(received(&out).is_empty(), "nothing reached the receiver");
    server.stop();

    let cert = cert.to_str().unwrap();
    let server = alerting.start(&["--ca-file", cert]);
    let delivered = wait_for("the delivery", Duration::from_secs(30), || {
        let a = listed(&server, "?delivery=delivered&rule=failed_logins");
        (!a.is_empty()).then(|| a[0].clone())
    });
    let got = received(&out);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["verified"], true, "{got:?}");
    assert_eq!(got[0]["body"]["data"]["id"], delivered["id"]);
}
