//! Validation of incoming events: what is accepted, and every problem named
//! by its field path.

use serde_json::{Value, json};
use trailmark_core::limits::{
    MAX_CHANGED_FIELDS, MAX_DEPTH, MAX_ID_BYTES, MAX_PAYLOAD_BYTES, MAX_REASON_BYTES,
};
use trailmark_core::{ActorType, Event, FieldError, Outcome};

use crate::example_event;

fn errors(value: &Value) -> Vec<String> {
    Event::from_json(value)
        .unwrap_err()
        .iter()
        .map(FieldError::to_string)
        .collect()
}

fn with(mut base: Value, pointer: &str, value: Value) -> Value {
    *base.pointer_mut(pointer).unwrap() = value;
    base
}

fn minimal() -> Value {
    json!({"actor": {"id": "42", "type": "user"}, "action": "login"})
}

#[test]
fn the_design_example_is_accepted_whole() {
    let event = Event::from_json(&example_event()).unwrap();
    assert_eq!(event.actor.id, "42");
    assert_eq!(event.actor.kind, ActorType::User);
    assert_eq!(event.action, "update");
    assert_eq!(event.outcome, Outcome::Success);
    assert_eq!(event.tenant.as_ref().unwrap().as_str(), "acme");
    assert_eq!(
        event.occurred_at.unwrap().to_string(),
        "2026-11-23T10:15:00.123Z"
    );
    let ctx = event.context.as_ref().unwrap();
    assert_eq!(ctx.ip.unwrap().to_string(), "203.0.113.7");
    assert_eq!(ctx.impersonator, None);
    assert_eq!(event.changes.as_ref().unwrap()["price"].new, json!("24.99"));
}

#[test]
fn a_minimal_event_needs_only_actor_and_action() {
    let event = Event::from_json(&minimal()).unwrap();
    assert_eq!(event.id, None);
    assert_eq!(event.tenant, None);
    assert_eq!(event.outcome, Outcome::Success);
    assert!(event.payload().is_empty());
}

#[test]
fn integer_ids_are_accepted_as_their_decimal_text() {
    let event = Event::from_json(&json!({
        "actor": {"id": 42, "type": "user"}, "action": "update",
        "resource": {"type": "Customer", "id": 61}
    }))
    .unwrap();
    assert_eq!(event.actor.id, "42");
    assert_eq!(event.resource.unwrap().id.as_deref(), Some("61"));
}

#[test]
fn missing_required_fields_are_each_named() {
    assert_eq!(
        errors(&json!({})),
        [
            "actor: required: an object with id and type",
            "action: required"
        ]
    );
    assert_eq!(
        errors(&json!({"actor": {}, "action": "x"})),
        [
            "actor.id: required",
            "actor.type: required: one of user | service | system | anonymous | unknown"
        ]
    );
    assert_eq!(
        errors(&json!({"actor": {"id": "", "type": "user"}, "action": "x"})),
        ["actor.id: must not be empty"]
    );
    assert_eq!(errors(&json!([1])), ["an event must be a JSON object"]);
}

#[test]
fn every_problem_is_reported_at_once() {
    let bad = json!({
        "id": "nope", "occurred_at": "yesterday", "tenant": "_system",
        "actor": {"id": "1", "type": "robot"}, "action": "bad action",
        "outcome": "maybe", "context": {"ip": "999.1.1.1"}, "acton": "typo"
    });
    assert_eq!(
        errors(&bad),
        [
            "acton: unknown field; custom data goes under metadata",
            "id: not a UUID such as 0192f0c2-5a1e-7c4b-9d10-6f1b2a3c4d5e",
            "occurred_at: not an RFC 3339 date-time such as 2026-11-23T10:15:00.123Z",
            "tenant: _system is reserved for Trailmark's own audit trail",
            "actor.type: must be one of user | service | system | anonymous | unknown",
            "action: must be words of letters, digits, '_' or '-' joined by single dots (login_failed, admin.key.create)",
            "outcome: must be one of success | failure",
            "context.ip: not an IP address",
        ]
    );
}

#[test]
fn wrong_types_are_named_with_the_expected_type() {
    assert_eq!(
        errors(&with(minimal(), "/action", json!(5))),
        ["action: must be a string"]
    );
    assert_eq!(
        errors(&with(minimal(), "/actor", json!("42"))),
        ["actor: must be an object"]
    );
    assert_eq!(
        errors(&with(minimal(), "/actor/id", json!(true))),
        ["actor.id: must be a string (or an integer)"]
    );
    let mut v = minimal();
    v["changes"] = json!([1]);
    v["metadata"] = json!("x");
    v["reason"] = json!(1);
    assert_eq!(
        errors(&v),
        [
            "reason: must be a string",
            "changes: must be an object",
            "metadata: must be an object"
        ]
    );
    let mut v = minimal();
    v["changes"] = json!({"price": 5, "qty": {"old": 1, "new": 2, "when": 3}});
    assert_eq!(
        errors(&v),
        [
            "changes.price: must be an object {\"old\": …, \"new\": …}",
            "changes.qty.when: unknown field; a change has only old and new"
        ]
    );
}

#[test]
fn limits_are_enforced_and_named() {
    let long_id = "x".repeat(MAX_ID_BYTES + 1);
    assert_eq!(
        errors(&with(minimal(), "/actor/id", json!(long_id))),
        [format!(
            "actor.id: must be at most {MAX_ID_BYTES} bytes (got {})",
            MAX_ID_BYTES + 1
        )]
    );
    let mut v = minimal();
    v["reason"] = json!("r".repeat(MAX_REASON_BYTES + 1));
    assert!(errors(&v)[0].starts_with("reason: must be at most 4096 bytes"));

    let mut deep = json!(1);
    for _ in 0..=MAX_DEPTH {
        deep = json!({"a": deep});
    }
    let mut v = minimal();
    v["metadata"] = deep;
    assert_eq!(errors(&v).len(), 1);
    assert!(
        errors(&v)[0].ends_with("nested deeper than 16 levels"),
        "{:?}",
        errors(&v)
    );

    let mut v = minimal();
    let many: serde_json::Map<String, Value> = (0..=MAX_CHANGED_FIELDS)
        .map(|i| (format!("f{i}"), json!({"old": 1, "new": 2})))
        .collect();
    v["changes"] = Value::Object(many);
    assert_eq!(errors(&v), ["changes: at most 1000 fields (got 1001)"]);

    let mut v = minimal();
    v["metadata"] = json!({"blob": "b".repeat(MAX_PAYLOAD_BYTES)});
    assert!(errors(&v)[0].contains("at most 262144"), "{:?}", errors(&v));
}

#[test]
fn a_payload_of_exactly_the_limit_is_accepted_and_one_byte_more_is_refused() {
    // `{"metadata":{"blob":"…"}}` is 24 bytes besides the blob; its bound
    // (6 per byte of text) is past the limit, so the exact size decides.
    let overhead = r#"{"metadata":{"blob":""}}"#.len();
    let mut v = minimal();
    v["metadata"] = json!({"blob": "b".repeat(MAX_PAYLOAD_BYTES - overhead)});
    let event = Event::from_json(&v).unwrap();
    assert!(event.payload_size_bound() > MAX_PAYLOAD_BYTES);
    v["metadata"] = json!({"blob": "b".repeat(MAX_PAYLOAD_BYTES - overhead + 1)});
    assert_eq!(
        errors(&v),
        [
            "names, reason, changes, context and metadata together are 262145 bytes as canonical JSON; at most 262144"
        ]
    );
    // Far below the limit, the bound alone passes it.
    v["metadata"] = json!({"blob": "b".repeat(MAX_PAYLOAD_BYTES / 7)});
    let event = Event::from_json(&v).unwrap();
    assert!(event.payload_size_bound() <= MAX_PAYLOAD_BYTES);
}

#[test]
fn an_event_taken_from_json_and_refused_for_its_size_is_left_as_the_same_event() {
    let overhead = r#"{"metadata":{"blob":""}}"#.len();
    let mut v = minimal();
    v["changes"] = json!({"n": {"new": 1}});
    v["context"] = json!({"x_region": "eu"});
    v["metadata"] = json!({"blob": "b".repeat(MAX_PAYLOAD_BYTES - overhead)});
    let refused = errors(&v);
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0].contains("as canonical JSON; at most"),
        "{refused:?}"
    );
    let mut taken = v.clone();
    let problems: Vec<String> = Event::take_from_json(&mut taken)
        .unwrap_err()
        .iter()
        .map(FieldError::to_string)
        .collect();
    assert_eq!(problems, refused);
    // Its bulk is back, as `to_json` writes it (a change's missing side null).
    assert_eq!(errors(&taken), refused);
    assert_eq!(taken["changes"], json!({"n": {"old": null, "new": 1}}));
    assert_eq!(taken["context"], v["context"]);
    assert_eq!(taken["metadata"], v["metadata"]);
}

#[test]
fn integers_that_a_double_cannot_hold_exactly_are_refused() {
    let mut v = minimal();
    v["metadata"] = json!({"ok": 9_007_199_254_740_991_u64, "too_big": 9_007_199_254_740_993_u64, "n": [-9_007_199_254_740_993_i64]});
    assert_eq!(
        errors(&v),
        [
            "metadata.n[0]: integer is too large to be exact (beyond ±2^53−1); send it as a string",
            "metadata.too_big: integer is too large to be exact (beyond ±2^53−1); send it as a string",
        ]
    );
}

#[test]
fn odd_keys_are_quoted_in_paths() {
    let mut v = minimal();
    v["changes"] = json!({"unit price": {"old": 1, "new": 2, "x": 0}});
    assert_eq!(
        errors(&v),
        ["changes[\"unit price\"].x: unknown field; a change has only old and new"]
    );
}

#[test]
fn nested_problems_are_named_by_their_whole_path() {
    let long_key = "k".repeat(trailmark_core::limits::MAX_KEY_BYTES + 1);
    let mut v = minimal();
    v["changes"] = json!({
        "lines": {"old": [{"qty": 1}, {"qty": [9_007_199_254_740_993_u64]}], "new": null},
        "unit price": {"old": 1, "new": {"n": 9_007_199_254_740_993_u64}},
    });
    v["context"] = json!({"ip": "192.0.2.1", long_key.clone(): "x"});
    v["metadata"] = json!({"a": {"b": [0, {long_key.clone(): 1}]}});
    let too_large = "integer is too large to be exact (beyond ±2^53−1); send it as a string";
    let long = format!(
        "key must be at most {} bytes",
        trailmark_core::limits::MAX_KEY_BYTES
    );
    assert_eq!(
        errors(&v),
        [
            format!("changes.lines.old[1].qty[0]: {too_large}"),
            format!("changes[\"unit price\"].new.n: {too_large}"),
            format!("context.{long_key}: {long}"),
            format!("metadata.a.b[1].{long_key}: {long}"),
        ]
    );
}

#[test]
fn control_characters_are_refused_in_identifiers_but_not_in_a_reason() {
    assert_eq!(
        errors(&with(minimal(), "/actor/id", json!("4\u{0}2"))),
        ["actor.id: must not contain control characters"]
    );
    let mut v = minimal();
    v["reason"] = json!("line one\nline two\ttabbed");
    assert!(Event::from_json(&v).is_ok());
}

#[test]
fn each_named_context_key_is_read_into_its_own_field_and_written_back_under_its_key() {
    let mut v = minimal();
    let context = json!({
        "ip": "192.0.2.1", "user_agent": "ua", "request_id": "req", "session_id": "sess",
        "source": "src", "impersonator": "imp", "shift": "night"
    });
    v["context"] = context.clone();
    let ctx = Event::from_json(&v).unwrap().context.unwrap();
    let fields = [
        &ctx.user_agent,
        &ctx.request_id,
        &ctx.session_id,
        &ctx.source,
        &ctx.impersonator,
    ];
    assert_eq!(
        fields.map(|f| f.as_deref()),
        ["ua", "req", "sess", "src", "imp"].map(Some)
    );
    assert_eq!(ctx.extra, *json!({"shift": "night"}).as_object().unwrap());
    assert_eq!(Value::Object(ctx.to_json()), context);
}

#[test]
fn context_keeps_extra_scalars_and_refuses_structures() {
    let mut v = minimal();
    v["context"] =
        json!({"ip": "2001:db8::1", "tenant_region": "eu", "retries": 2, "nested": {"a": 1}});
    assert_eq!(
        errors(&v),
        [
            "context.nested: context values must be strings, numbers or booleans; put structured data in metadata"
        ]
    );
    v["context"].as_object_mut().unwrap().remove("nested");
    let event = Event::from_json(&v).unwrap();
    let ctx = event.context.unwrap().to_json();
    assert_eq!(
        Value::Object(ctx),
        json!({"ip": "2001:db8::1", "tenant_region": "eu", "retries": 2})
    );
}
