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

fn alerts(server: &Server) -> Vec<Value> {
    let (status, found) = server.get(
        "/v1/events?tenant=_system&action=trailmark.alert.raised&limit=100",
        &server.admin,
    );
    assert_eq!(status, 200, "{found}");
    found["events"].as_array().unwrap().clone()
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
    let rules = twenty_in_ten_seconds(dir.path());
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let server = Server::start_with(&data, &["--alert-rules", &rules]);
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
    assert!(alerts(&server).is_empty(), "19 are not enough");
    assert_eq!(server.post("/v1/events", &server.admin, &login).0, 201);
    let twentieth = Instant::now();
    let raised = wait_for("the alert", Duration::from_secs(2), || {
        let found = alerts(&server);
        (!found.is_empty()).then_some(found)
    });
    assert!(twentieth.elapsed() < Duration::from_secs(2));
    // The same burst goes on: still one alert (not one per actor, IP and
    // username, nor one per later failure).
    for _ in 0..15 {
        assert_eq!(server.post("/v1/events", &server.admin, &login).0, 201);
    }
    settled(&server, 35);
    let after = alerts(&server);
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
    let found = alerts(&server);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["metadata"]["rule"], "mass_delete");
    assert_eq!(found[0]["metadata"]["key"], "actor=u-7");
}
