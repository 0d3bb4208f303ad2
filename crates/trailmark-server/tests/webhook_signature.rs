//! Trailmark's webhook signatures checked by an implementation it did not
//! write: the `standardwebhooks` package from `PyPI` (in the interop
//! virtualenv `scripts/test` makes; `TRAILMARK_AICS_BIN` names its `bin`).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

use trailmark_server::alerts::WebhookSecret;

fn python() -> PathBuf {
    let bin = std::env::var_os("TRAILMARK_AICS_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/interop-venv/bin"),
        PathBuf::from,
    );
    let python = bin.join("python");
    assert!(
        python.exists(),
        "{} is missing: ./scripts/test installs the interop virtualenv (standardwebhooks) there (or set TRAILMARK_AICS_BIN)",
        python.display()
    );
    python
}

/// Whether `standardwebhooks` accepts `received` with `secret`, when we
/// signed `sent` with `signed_by`.
fn verifies(secret: &str, signed_by: &WebhookSecret, sent: &str, received: &str) -> bool {
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let headers: serde_json::Map<String, serde_json::Value> = signed_by
        .headers("msg_2Lh9ZqUxw", now, sent.as_bytes())
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.into()))
        .collect();
    let out = Command::new(python())
        .args([
            "-c",
            "import json, sys\n\
             from standardwebhooks.webhooks import Webhook\n\
             Webhook(sys.argv[1]).verify(sys.argv[2], json.loads(sys.argv[3]))",
            secret,
            received,
            &serde_json::Value::Object(headers).to_string(),
        ])
        .output()
        .unwrap();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("WebhookVerificationError"),
            "not a verification failure: {err}"
        );
    }
    out.status.success()
}

#[test]
fn standardwebhooks_accepts_our_signature_and_refuses_a_wrong_secret_or_body() {
    let secret = WebhookSecret::generate().unwrap();
    let body = r#"{"type":"alert.raised","data":{"rule":"failed_logins","events":20}}"#;
    assert!(
        verifies(&secret.to_text(), &secret, body, body),
        "our signature verifies"
    );
    let other = WebhookSecret::generate().unwrap();
    assert!(
        !verifies(&other.to_text(), &secret, body, body),
        "a wrong secret fails it"
    );
    let altered = body.replace("20", "2");
    assert!(
        !verifies(&secret.to_text(), &secret, body, &altered),
        "an altered body fails it"
    );
}
