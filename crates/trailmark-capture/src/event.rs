//! Outbox rows → Trailmark events.

use serde_json::{Map, Value, json};
use trailmark_core::{EventId, Row, diff_rows, limits::MAX_SAFE_INTEGER};

/// One row of `trailmark.outbox`.
#[derive(Clone, Debug)]
pub struct OutboxRow {
    pub id: i64,
    pub txid: i64,
    pub stmt: i32,
    pub op: String,
    pub schema: String,
    pub table: String,
    pub old_row: Option<Value>,
    pub new_row: Option<Value>,
    pub context: Value,
    pub db_role: String,
    /// RFC 3339.
    pub captured_at: String,
}

/// Numbers a double cannot hold exactly (bigint, numeric) become strings, so
/// the event passes validation and keeps every digit.
fn exact(value: Value) -> Value {
    match value {
        Value::Number(n) => {
            let fits = n
                .as_u64()
                .map(|u| u <= MAX_SAFE_INTEGER)
                .or_else(|| n.as_i64().map(|i| i.unsigned_abs() <= MAX_SAFE_INTEGER));
            // Integers beyond ±2^53 become strings; floats (PostgreSQL
            // numerics arrive as doubles) stay numbers.
            if fits == Some(false) {
                Value::String(n.to_string())
            } else {
                Value::Number(n)
            }
        }
        Value::Array(items) => Value::Array(items.into_iter().map(exact).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, exact(v))).collect()),
        other => other,
    }
}

fn as_row(value: Option<&Value>) -> Option<Row> {
    value.and_then(Value::as_object).map(|m| {
        m.iter()
            .map(|(k, v)| (k.clone(), exact(v.clone())))
            .collect()
    })
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The record's id: its primary key as text (a JSON array for a composite
/// key), or — without a key — the canonical JSON of the whole row, flagged.
fn resource_id(pk: &[String], row: Option<&Row>) -> (Option<String>, bool) {
    let Some(row) = row else { return (None, false) };
    if pk.is_empty() {
        return (Some(Value::Object(row.clone()).to_string()), true);
    }
    let values: Vec<Value> = pk
        .iter()
        .map(|c| row.get(c).cloned().unwrap_or(Value::Null))
        .collect();
    match values.as_slice() {
        [one] => (Some(text(one)), false),
        many => (Some(Value::Array(many.to_vec()).to_string()), false),
    }
}

/// The event for one outbox row. `database` names the source database (its
/// system identifier and name), so ids stay distinct across databases and
/// the same row always gets the same id.
pub fn outbox_event(row: &OutboxRow, pk: &[String], database: &str) -> Value {
    let old = as_row(row.old_row.as_ref());
    let new = as_row(row.new_row.as_ref());
    let ctx = row.context.as_object().cloned().unwrap_or_default();
    let get = |k: &str| ctx.get(k).and_then(Value::as_str).map(str::to_owned);
    let (actor_id, actor_type) = match (get("actor_id"), get("actor_type")) {
        (Some(id), kind) => (id, kind.unwrap_or_else(|| "user".into())),
        // Never skipped: an unknown actor is recorded as the database role.
        (None, _) => (row.db_role.clone(), "unknown".into()),
    };
    let action = match row.op.as_str() {
        "insert" => "create",
        "update" => "update",
        "delete" => "delete",
        _ => "truncate",
    };
    let (id, whole_row) = resource_id(pk, new.as_ref().or(old.as_ref()));
    let mut actor = json!({"id": actor_id, "type": actor_type});
    if let Some(name) = get("actor_name") {
        actor["name"] = json!(name);
    }
    let mut context = Map::new();
    for key in ["ip", "user_agent", "request_id", "session_id"] {
        if let Some(v) = get(key) {
            context.insert(key.into(), json!(v));
        }
    }
    context.insert("source".into(), json!("pg-capture"));
    let mut metadata = json!({"txid": row.txid, "statement": row.stmt, "outbox_id": row.id});
    if whole_row {
        metadata["identity"] = json!("row: the table has no primary key");
    }
    let mut event = json!({
        "id": EventId::derived(format!("{database}/outbox/{}", row.id).as_bytes()).to_string(),
        "occurred_at": row.captured_at,
        "actor": actor,
        "action": action,
        "resource": {"type": format!("{}.{}", row.schema, row.table), "id": id},
        "context": context,
        "metadata": metadata,
    });
    if row.op != "truncate" {
        event["changes"] = trailmark_core::changes_to_json(&diff_rows(old.as_ref(), new.as_ref()));
    }
    if let Some(tenant) = get("tenant") {
        event["tenant"] = json!(tenant);
    }
    if let Some(reason) = get("reason") {
        event["reason"] = json!(reason);
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox(op: &str, old: Option<Value>, new: Option<Value>, context: Value) -> OutboxRow {
        OutboxRow {
            id: 7,
            txid: 900,
            stmt: 2,
            op: op.into(),
            schema: "public".into(),
            table: "customer".into(),
            old_row: old,
            new_row: new,
            context,
            db_role: "app".into(),
            captured_at: "2026-11-23T10:15:00.123Z".into(),
        }
    }

    #[test]
    fn an_update_becomes_an_event_with_only_the_changed_columns() {
        let row = outbox(
            "update",
            Some(json!({"id": 61, "price": "19.99", "name": "Acme"})),
            Some(json!({"id": 61, "price": "24.99", "name": "Acme"})),
            json!({"actor_id": "42", "actor_type": "user", "ip": "203.0.113.7", "tenant": "acme"}),
        );
        let e = outbox_event(&row, &["id".into()], "db1");
        assert_eq!(e["action"], "update");
        assert_eq!(
            e["resource"],
            json!({"type": "public.customer", "id": "61"})
        );
        assert_eq!(
            e["changes"],
            json!({"price": {"old": "19.99", "new": "24.99"}})
        );
        assert_eq!(e["actor"], json!({"id": "42", "type": "user"}));
        assert_eq!(
            e["context"],
            json!({"ip": "203.0.113.7", "source": "pg-capture"})
        );
        assert_eq!(e["tenant"], "acme");
        assert_eq!(
            e["metadata"],
            json!({"txid": 900, "statement": 2, "outbox_id": 7})
        );
        trailmark_core::Event::from_json(&e).unwrap();
        assert_eq!(
            e["id"],
            outbox_event(&row, &["id".into()], "db1")["id"],
            "stable ids"
        );
        assert_ne!(e["id"], outbox_event(&row, &["id".into()], "db2")["id"]);
    }

    #[test]
    fn no_context_is_recorded_as_the_database_role_never_skipped() {
        let e = outbox_event(
            &outbox("delete", Some(json!({"a": 1})), None, json!({})),
            &[],
            "db",
        );
        assert_eq!(e["actor"], json!({"id": "app", "type": "unknown"}));
        assert_eq!(e["resource"]["id"], "{\"a\":1}");
        assert_eq!(
            e["metadata"]["identity"],
            "row: the table has no primary key"
        );
        assert_eq!(e["changes"], json!({"a": {"old": 1, "new": null}}));
        trailmark_core::Event::from_json(&e).unwrap();
    }

    #[test]
    fn composite_keys_and_huge_numbers_survive_validation() {
        let new = json!({"order_id": 1, "n": 2, "big": 9_223_372_036_854_775_807_i64});
        let e = outbox_event(
            &outbox("insert", None, Some(new), json!({})),
            &["order_id".into(), "n".into()],
            "db",
        );
        assert_eq!(e["resource"]["id"], "[1,2]");
        assert_eq!(e["changes"]["big"]["new"], "9223372036854775807");
        trailmark_core::Event::from_json(&e).unwrap();
    }
}
