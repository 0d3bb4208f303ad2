//! Outbox rows → Trailmark events.

use std::collections::HashMap;

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use trailmark_core::limits::{MAX_RESOURCE_ID_BYTES, MAX_SAFE_INTEGER};
use trailmark_core::{
    Actor, ActorType, Changes, Context, Event, EventId, FieldError, Outcome, Resource, Row,
    TenantId, Timestamp, diff_rows,
};

use crate::TableConfig;

/// One row of `trailmark.outbox`, its rows as the JSON text PostgreSQL wrote
/// (so numbers keep every digit).
#[derive(Clone, Debug)]
pub struct OutboxRow {
    pub id: i64,
    pub txid: i64,
    pub stmt: i32,
    pub op: String,
    pub schema: String,
    pub table: String,
    /// The row before the change. For a truncate of one partition of a
    /// partitioned table (capture version 14), `{"partition": "schema.name"}`:
    /// what was removed, and the event's `metadata.partition`.
    pub old_row: Option<RowImage>,
    pub new_row: Option<RowImage>,
    pub context: Value,
    pub db_role: String,
    /// RFC 3339.
    pub captured_at: String,
    /// Read from the WAL (WAL mode), not from the outbox: then `id` and
    /// `stmt` mean nothing and the event's id derives from this position.
    pub wal: Option<WalPosition>,
}

/// A row's values as a drainer reads them.
#[derive(Clone, Debug, PartialEq)]
pub enum RowImage {
    /// The JSON object `to_jsonb(row)` wrote (the outbox of trigger mode).
    Json(String),
    /// Each column's name and its value as an event holds it (WAL mode,
    /// decoded column by column: no object written to be parsed back; the
    /// values already under [`column_of`]'s rule).
    Columns(Vec<(String, Value)>),
}

/// Where in the WAL a change was decoded: its transaction's commit LSN and
/// its place in the transaction (0, 1, …). Together with the database's
/// system identifier they name the change for good, so a change decoded
/// again after a restart gets the same event id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalPosition {
    pub commit_lsn: u64,
    pub change: u64,
}

/// An LSN as PostgreSQL writes it (`16/B374D848`).
pub fn lsn_text(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// An LSN as PostgreSQL writes it (`16/B374D848`) → its 64-bit position.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.split_once('/')?;
    Some((u64::from_str_radix(high, 16).ok()? << 32) | u64::from_str_radix(low, 16).ok()?)
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

/// A column value as PostgreSQL wrote it: a number stays a number only when
/// a double writes it back exactly as given (`19.99`, `42`); otherwise
/// (`1.50`, 30 digits of `numeric`, integers beyond ±2^53) it becomes the
/// string of its digits, so nothing is rounded.
fn column_value(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Number(n)) => number_value(n, text),
        Ok(other) => exact(other),
        Err(_) => Value::String(text.to_owned()),
    }
}

/// Number `n`, read from `text`, as a column's value ([`column_value`]'s
/// rule for numbers).
pub(crate) fn number_value(n: serde_json::Number, text: &str) -> Value {
    if n.to_string() == text {
        exact(Value::Number(n))
    } else {
        Value::String(text.to_owned())
    }
}

/// The longest column value a captured event keeps (its text, or its JSON
/// for other than a string): an event's payload is at most
/// `MAX_PAYLOAD_BYTES`, and an update carries a changed value twice.
pub const MAX_VALUE_BYTES: usize = 32 * 1024;

/// A value longer than [`MAX_VALUE_BYTES`] is recorded by its length and
/// SHA-256 instead (the same in both modes: over a string's text, or the
/// JSON of another value), so a 100 MB document changes the trail by a line
/// and never stops the drain.
pub(crate) fn not_kept(text: &str) -> Option<Value> {
    (text.len() > MAX_VALUE_BYTES).then(|| {
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()));
        Value::String(format!("(not kept: {} bytes, sha256:{digest})", text.len()))
    })
}

/// A row image as values, column by column (the outbox's object parsed;
/// the WAL's columns read as they are).
fn as_row(image: Option<&RowImage>) -> Option<Row> {
    match image? {
        RowImage::Json(text) => {
            let columns: HashMap<String, &RawValue> = serde_json::from_str(text).ok()?;
            Some(
                columns
                    .into_iter()
                    .map(|(k, v)| (k, column_of(v.get())))
                    .collect(),
            )
        }
        RowImage::Columns(columns) => Some(columns.iter().cloned().collect()),
    }
}

/// One column's value from its JSON text, kept or (over
/// [`MAX_VALUE_BYTES`]) recorded by its length and digest: the rule of both
/// modes (WAL mode's common types take a shorter way to the same value,
/// `wal::column_value`, held equal to this by a test).
pub(crate) fn column_of(json: &str) -> Value {
    let value = column_value(json);
    if json.len() > MAX_VALUE_BYTES {
        match &value {
            Value::String(text) => not_kept(text),
            other => not_kept(&other.to_string()),
        }
        .unwrap_or(value)
    } else {
        value
    }
}

/// Set: neither null nor false (a flag set, a timestamp filled in).
fn is_set(row: Option<&Row>, column: &str) -> bool {
    row.and_then(|r| r.get(column))
        .is_some_and(|v| !v.is_null() && v != &Value::Bool(false))
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// How a record without a primary key is identified.
enum Identity {
    Key,
    /// The whole row's JSON.
    Row,
    /// The row's JSON was too long for an id: its SHA-256.
    RowDigest,
}

/// The record's id: its primary key as text (a JSON array for a composite
/// key), or — without a key — the JSON of the whole row (its SHA-256 when
/// that is longer than an id may be), flagged.
fn resource_id(pk: &[String], row: Option<&Row>) -> (Option<String>, Identity) {
    let Some(row) = row else {
        return (None, Identity::Key);
    };
    if pk.is_empty() {
        let text = Value::Object(row.clone()).to_string();
        if text.len() <= MAX_RESOURCE_ID_BYTES {
            return (Some(text), Identity::Row);
        }
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()));
        return (Some(format!("sha256:{digest}")), Identity::RowDigest);
    }
    let values: Vec<Value> = pk
        .iter()
        .map(|c| row.get(c).cloned().unwrap_or(Value::Null))
        .collect();
    match values.as_slice() {
        [one] => (Some(text(one)), Identity::Key),
        many => (Some(Value::Array(many.to_vec()).to_string()), Identity::Key),
    }
}

/// The event for one captured row, as the capture builds it: the one
/// mapping of a row to an event, before the parts an event types (its
/// time, tenant, actor type and address) are read. Written out as JSON
/// ([`outbox_event`]) or read straight into an [`Event`]
/// ([`captured_event`]); both give the same event.
struct Draft<'a> {
    id: EventId,
    occurred_at: &'a str,
    tenant: Option<&'a str>,
    actor_id: &'a str,
    actor_type: &'a str,
    actor_name: Option<&'a str>,
    action: &'static str,
    resource_type: String,
    resource_id: Option<String>,
    resource_name: Option<String>,
    /// `ip`, `user_agent`, `request_id`, `session_id`, as the context gave them.
    context: [Option<&'a str>; 4],
    reason: Option<&'a str>,
    /// `None` for a truncate, a pause and a resume.
    changes: Option<Changes>,
    metadata: Map<String, Value>,
}

/// The context keys an event's context takes from the capture context, in
/// [`Draft::context`]'s order.
const CONTEXT_KEYS: [&str; 4] = ["ip", "user_agent", "request_id", "session_id"];

impl<'a> Draft<'a> {
    /// `ids` names the source database (its system identifier and name), so
    /// ids stay distinct across databases and the same row always gets the
    /// same id.
    fn of(row: &'a OutboxRow, table: &TableConfig, ids: &crate::EventIds) -> Self {
        let pk = table.key.as_slice();
        let old = as_row(row.old_row.as_ref());
        let new = as_row(row.new_row.as_ref());
        let ctx = row.context.as_object();
        let get = |k: &str| ctx.and_then(|c| c.get(k)).and_then(Value::as_str);
        let (actor_id, actor_type) = match (get("actor_id"), get("actor_type")) {
            (Some(id), kind) => (id, kind.unwrap_or("user")),
            // Never skipped: an unknown actor is recorded as the database role.
            (None, _) => (row.db_role.as_str(), "unknown"),
        };
        let action = match row.op.as_str() {
            "insert" => "create",
            "update" => match &table.soft_delete {
                Some(c) if !is_set(old.as_ref(), c) && is_set(new.as_ref(), c) => "soft_delete",
                Some(c) if is_set(old.as_ref(), c) && !is_set(new.as_ref(), c) => "restore",
                _ => "update",
            },
            "delete" => "delete",
            // Capture of the table switched off and on again
            // (`trailmark capture pg pause|resume`).
            "pause" => "capture.paused",
            "resume" => "capture.resumed",
            // The table's rows rewritten by DDL that may change their
            // values (capture version 16: `trailmark.record_rewrite`).
            "rewrite" => "rewrite",
            // (`captured_event` refuses an operation not in `OPS`.)
            _ => "truncate",
        };
        let mut metadata = Map::new();
        // A truncate names no record; its old side, when it has one, names
        // the partition truncated (capture version 14: its rows, and only
        // they, are gone). So does a rewrite (capture version 16).
        let (old, new) = if matches!(row.op.as_str(), "truncate" | "rewrite") {
            if let Some(partition) = old.as_ref().and_then(|o| o.get("partition")) {
                metadata.insert("partition".into(), partition.clone());
            }
            (None, None)
        } else {
            (old, new)
        };
        let (resource_id, identity) = resource_id(pk, new.as_ref().or(old.as_ref()));
        metadata.insert("txid".into(), json!(row.txid));
        match row.wal {
            None => {
                metadata.insert("statement".into(), json!(row.stmt));
                metadata.insert("outbox_id".into(), json!(row.id));
            }
            Some(at) => {
                metadata.insert("commit_lsn".into(), json!(lsn_text(at.commit_lsn)));
                metadata.insert("change".into(), json!(at.change));
            }
        }
        match identity {
            Identity::Key => {}
            Identity::Row => {
                metadata.insert(
                    "identity".into(),
                    json!("row: the table has no primary key"),
                );
            }
            Identity::RowDigest => {
                metadata.insert(
                    "identity".into(),
                    json!("row-sha256: the table has no primary key"),
                );
            }
        }
        if row.op == "update" && row.old_row.is_none() {
            // WAL mode, replica identity `key`: PostgreSQL logged no old values.
            metadata.insert(
                "old_values".into(),
                json!(
                    "not logged: the table's replica identity is its key, so old values are unknown"
                ),
            );
        }
        let resource_name = table.name_column.as_ref().and_then(|column| {
            new.as_ref()
                .or(old.as_ref())
                .and_then(|r| r.get(column))
                .filter(|v| !v.is_null())
                .map(text)
        });
        let changes = (!matches!(row.op.as_str(), "truncate" | "rewrite" | "pause" | "resume"))
            .then(|| diff_rows(old, new));
        Draft {
            id: ids.id(row),
            occurred_at: &row.captured_at,
            tenant: get("tenant"),
            actor_id,
            actor_type,
            actor_name: get("actor_name"),
            action,
            resource_type: table
                .resource_type
                .clone()
                .unwrap_or_else(|| format!("{}.{}", row.schema, row.table)),
            resource_id,
            resource_name,
            context: CONTEXT_KEYS.map(get),
            reason: get("reason"),
            changes,
            metadata,
        }
    }

    /// The event as JSON, its parts as given (what [`make_valid`] repairs).
    fn into_json(self) -> Value {
        let mut actor = json!({"id": self.actor_id, "type": self.actor_type});
        if let Some(name) = self.actor_name {
            actor["name"] = json!(name);
        }
        let mut context = Map::new();
        for (key, value) in CONTEXT_KEYS.into_iter().zip(self.context) {
            if let Some(v) = value {
                context.insert(key.into(), json!(v));
            }
        }
        context.insert("source".into(), json!(SOURCE));
        let mut event = json!({
            "id": self.id.to_string(),
            "occurred_at": self.occurred_at,
            "actor": actor,
            "action": self.action,
            "resource": {"type": self.resource_type, "id": self.resource_id},
            "context": context,
            "metadata": self.metadata,
        });
        if let Some(name) = self.resource_name {
            event["resource"]["name"] = json!(name);
        }
        if let Some(changes) = self.changes {
            event["changes"] = trailmark_core::changes_into_json(changes);
        }
        if let Some(tenant) = self.tenant {
            event["tenant"] = json!(tenant);
        }
        if let Some(reason) = self.reason {
            event["reason"] = json!(reason);
        }
        event
    }

    /// The event, valid: read straight from its parts when they are (nearly
    /// always), else written as JSON and repaired by [`make_valid`].
    fn event(self) -> Result<Event, Vec<FieldError>> {
        let [ip, user_agent, request_id, session_id] = self.context;
        let typed = || {
            Some((
                Timestamp::parse(self.occurred_at).ok()?,
                self.tenant.map(TenantId::new).transpose().ok()?,
                ActorType::parse(self.actor_type)?,
                ip.map(str::parse::<std::net::IpAddr>).transpose().ok()?,
            ))
        };
        let Some((occurred_at, tenant, kind, ip)) = typed() else {
            return make_valid(self.into_json());
        };
        let owned = |s: Option<&str>| s.map(str::to_owned);
        let event = Event {
            id: Some(self.id),
            occurred_at: Some(occurred_at),
            tenant,
            actor: Actor {
                id: self.actor_id.to_owned(),
                kind,
                name: owned(self.actor_name),
            },
            action: self.action.to_owned(),
            resource: Some(Resource {
                kind: self.resource_type,
                id: self.resource_id,
                name: self.resource_name,
            }),
            outcome: Outcome::Success,
            reason: owned(self.reason),
            changes: self.changes,
            context: Some(Context {
                ip,
                user_agent: owned(user_agent),
                request_id: owned(request_id),
                session_id: owned(session_id),
                source: Some(SOURCE.to_owned()),
                impersonator: None,
                extra: Map::new(),
            }),
            metadata: Some(self.metadata),
        };
        match event.check() {
            Ok(()) => Ok(event),
            Err(_) => make_valid(Value::Object(event.to_json())),
        }
    }
}

/// `context.source` of every captured event.
const SOURCE: &str = "pg-capture";

/// The event for one outbox row, as JSON (its parts as given, not yet made
/// valid): see [`Draft`].
pub fn outbox_event(row: &OutboxRow, table: &TableConfig, ids: &crate::EventIds) -> Value {
    Draft::of(row, table, ids).into_json()
}

/// Every operation a captured change may be: what the outbox's `op` may
/// hold (its CHECK constraint in sql/install.sql) and the WAL decoder makes
/// (capture version 16 added `rewrite`). Their order numbers them in a
/// streamed transaction's spill file.
pub(crate) const OPS: [&str; 7] = [
    "insert", "update", "delete", "truncate", "pause", "resume", "rewrite",
];

/// The event for one captured row, valid: the same event as
/// `make_valid(outbox_event(row, table, ids))`, built without writing it as
/// JSON and reading it back when its parts are valid (nearly always).
/// An operation this build does not know (written by a newer capture than
/// it understands) is refused, never taken for another: the drain stops
/// with the reason and the change stays.
pub fn captured_event(
    row: &OutboxRow,
    table: &TableConfig,
    ids: &crate::EventIds,
) -> Result<Event, Vec<FieldError>> {
    if !OPS.contains(&row.op.as_str()) {
        return Err(vec![FieldError::new(
            "/action",
            format!(
                "capture operation {:?} is unknown to this trailmark (a newer capture wrote it): upgrade trailmark",
                row.op
            ),
        )]);
    }
    Draft::of(row, table, ids).event()
}

/// Fields the drainer builds itself and cannot leave out.
const REQUIRED: [&str; 5] = [
    "/actor/id",
    "/actor/type",
    "/action",
    "/resource/type",
    "/resource/id",
];

/// Makes a captured event valid without losing the change: the application's
/// context can hold what an event may not (an `ip` that is not an address, a
/// tenant that is not a tenant id, an over-long user agent). Such a field is
/// moved into `metadata.capture_repairs` (with the reason, truncated to 256
/// bytes) or, where the event cannot do without it, cut to 128 bytes. The
/// change itself is never dropped: a row that cannot be made valid stops the
/// drain with the reason, and stays in the outbox.
pub fn make_valid(mut event: Value) -> Result<Event, Vec<FieldError>> {
    for _ in 0..4 {
        let errors = match trailmark_core::Event::take_from_json(&mut event) {
            Ok(valid) => return Ok(valid),
            Err(errors) => errors,
        };
        let mut repaired = false;
        for error in &errors {
            let pointer = error.pointer();
            let done = if REQUIRED.contains(&pointer.as_str()) {
                required_repaired(&mut event, &pointer, error)
            } else {
                kept_as_text(&mut event, error) || moved_to_metadata(&mut event, error)
            };
            repaired |= done;
        }
        if !repaired {
            return Err(errors);
        }
    }
    trailmark_core::Event::take_from_json(&mut event)
}

/// Records a repair in `metadata.capture_repairs`, under `path`.
fn note_repair(event: &mut Value, path: String, note: Value) {
    if let Some(meta) = event.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.entry("capture_repairs")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|r| r.insert(path, note));
    }
}

/// A field the event cannot do without, made one it may carry; whether it
/// changed it.
fn required_repaired(event: &mut Value, pointer: &str, error: &FieldError) -> bool {
    let mut original = None;
    let mut repaired = false;
    if pointer == "/actor/type" {
        // The application's context named a type the ledger does not know
        // ("robot", "admin"): the actor's type becomes `unknown`, the type
        // given kept below. (It stopped the drain at that row.)
        if let Some(value) = event.pointer_mut(pointer)
            && value.as_str() != Some("unknown")
        {
            original = Some(text(value));
            *value = json!("unknown");
            repaired = true;
        }
    } else if let Some(Value::String(s)) = event.pointer_mut(pointer) {
        let blank = s.chars().all(char::is_whitespace);
        let unseen = |c: char| trailmark_core::is_format_char(c) || c.is_control();
        if blank || s.chars().any(unseen) {
            // An id no event may carry, which a database key or the
            // context may be: invisible or control characters, or nothing
            // but white space (or nothing: `<empty>`), written out; the
            // original is kept below. (A key '' stopped the drain: no later
            // change reached the trail.)
            original = Some(s.clone());
            *s = if s.is_empty() {
                "<empty>".to_owned()
            } else {
                s.chars()
                    .map(|c| {
                        if blank || unseen(c) {
                            format!("<U+{:04X}>", u32::from(c))
                        } else {
                            c.to_string()
                        }
                    })
                    .collect()
            };
            repaired = true;
        }
        if s.len() > 128 {
            *s = cut(s, 128);
            repaired = true;
        }
    }
    if let Some(original) = original {
        note_repair(
            event,
            error.path.clone(),
            json!({"value": original, "error": error.message}),
        );
    }
    repaired
}

/// Inside a column's value, something the ledger does not take (a jsonb
/// nested deeper than it reads, a key too long): the value is kept as its
/// JSON text, never dropped (such a row stopped the drain). Whether it was.
fn kept_as_text(event: &mut Value, error: &FieldError) -> bool {
    let segments = error.segments();
    if !(segments.len() > 3
        && segments[0] == "changes"
        && matches!(segments[2].as_str(), "old" | "new"))
    {
        return false;
    }
    let Some(value) = event.pointer_mut(&trailmark_core::pointer_of(&segments[..3])) else {
        return false;
    };
    if value.is_string() {
        return false;
    }
    let text = value.to_string();
    *value = Value::String(text.clone());
    // Named by the column's value (the error's own path may hold a key
    // longer than metadata's keys may be).
    let column = trailmark_core::path_join(
        &trailmark_core::path_join("changes", &segments[1]),
        &segments[2],
    );
    let note = json!({
        "value": cut(&text, 256),
        "error": cut(&error.to_string(), 256),
        "kept_as": "its JSON text",
    });
    note_repair(event, column, note);
    true
}

/// A field the event can do without, moved to `metadata.capture_repairs`
/// (its value cut to 256 bytes, with the reason). Whether it was.
fn moved_to_metadata(event: &mut Value, error: &FieldError) -> bool {
    let segments = error.segments();
    let Some((key, parent)) = segments.split_last() else {
        return false;
    };
    let removed = event
        .pointer_mut(&trailmark_core::pointer_of(parent))
        .and_then(Value::as_object_mut)
        .and_then(|m| m.remove(key));
    let Some(value) = removed else {
        return false;
    };
    let note = json!({"value": cut(&text(&value), 256), "error": error.message});
    note_repair(event, error.path.clone(), note);
    true
}

fn cut(text: &str, max: usize) -> String {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(columns: &[&str]) -> TableConfig {
        TableConfig {
            key: columns.iter().map(|c| (*c).to_owned()).collect(),
            ..TableConfig::default()
        }
    }

    fn db(name: &str) -> crate::EventIds {
        crate::EventIds::ordered(name, "install")
    }

    fn outbox(op: &str, old: Option<Value>, new: Option<Value>, context: Value) -> OutboxRow {
        OutboxRow {
            id: 7,
            txid: 900,
            stmt: 2,
            op: op.into(),
            schema: "public".into(),
            table: "customer".into(),
            old_row: old.map(|v| RowImage::Json(v.to_string())),
            new_row: new.map(|v| RowImage::Json(v.to_string())),
            context,
            db_role: "app".into(),
            captured_at: "2026-11-23T10:15:00.123Z".into(),
            wal: None,
        }
    }

    /// A truncate of one partition names it in `metadata.partition`, and
    /// no record: its old side is not a row (with a key or without one).
    /// So does a rewrite of one (capture version 16).
    #[test]
    fn a_truncate_or_rewrite_of_a_partition_names_it_and_no_record() {
        let partition = json!({"partition": "public.customer_2026"});
        for (op, table) in [
            ("truncate", key(&["id"])),
            ("truncate", key(&[])),
            ("rewrite", key(&["id"])),
        ] {
            let e = outbox_event(
                &outbox(op, Some(partition.clone()), None, json!({})),
                &table,
                &db("db1"),
            );
            assert_eq!(e["action"], op);
            assert_eq!(
                e["resource"],
                json!({"type": "public.customer", "id": null})
            );
            assert!(e.get("changes").is_none(), "{e}");
            assert_eq!(
                e["metadata"],
                json!({"partition": "public.customer_2026", "txid": 900, "statement": 2, "outbox_id": 7})
            );
            trailmark_core::Event::from_json(&e).unwrap();
        }
    }

    /// The operations that name no record are the actions a record's
    /// history reads about its whole table (`trailmark_core`'s one list):
    /// an action added to one and not the other would vanish from
    /// histories.
    #[test]
    fn the_operations_naming_no_record_are_the_whole_type_actions() {
        let mut actions: Vec<String> = OPS
            .iter()
            .map(|op| {
                // Each as capture writes it: the rows it has.
                let row = Some(json!({"id": 1}));
                let (old, new) = match *op {
                    "insert" => (None, row),
                    "update" => (row.clone(), row),
                    "delete" => (row, None),
                    _ => (None, None),
                };
                outbox_event(&outbox(op, old, new, json!({})), &key(&["id"]), &db("db1"))
            })
            .filter(|e| e["resource"]["id"].is_null())
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect();
        actions.sort();
        let mut whole = trailmark_core::WHOLE_TYPE_ACTIONS
            .map(str::to_owned)
            .to_vec();
        whole.sort();
        assert_eq!(actions, whole);
    }

    /// An operation this build does not know (a newer capture wrote it) is
    /// refused, not taken for a truncate: the drain stops, the row stays.
    #[test]
    fn an_unknown_operation_is_refused_not_taken_for_a_truncate() {
        let refused = captured_event(
            &outbox("reshape", None, None, json!({})),
            &key(&["id"]),
            &db("db1"),
        )
        .unwrap_err();
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].path, "/action");
        assert!(
            refused[0]
                .message
                .starts_with("capture operation \"reshape\" is unknown to this trailmark"),
            "{refused:?}"
        );
        for op in OPS {
            let row = if matches!(op, "insert" | "update") {
                outbox(op, None, Some(json!({"id": 1})), json!({}))
            } else {
                outbox(op, Some(json!({"id": 1})), None, json!({}))
            };
            assert!(
                captured_event(&row, &key(&["id"]), &db("db1")).is_ok(),
                "{op}"
            );
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
        let e = outbox_event(&row, &key(&["id"]), &db("db1"));
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
            outbox_event(&row, &key(&["id"]), &db("db1"))["id"],
            "stable ids"
        );
        assert_ne!(e["id"], outbox_event(&row, &key(&["id"]), &db("db2"))["id"]);
    }

    #[test]
    fn no_context_is_recorded_as_the_database_role_never_skipped() {
        let e = outbox_event(
            &outbox("delete", Some(json!({"a": 1})), None, json!({})),
            &key(&[]),
            &db("db"),
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
            &key(&["order_id", "n"]),
            &db("db"),
        );
        assert_eq!(e["resource"]["id"], "[1,2]");
        assert_eq!(e["changes"]["big"]["new"], "9223372036854775807");
        trailmark_core::Event::from_json(&e).unwrap();
    }

    #[test]
    fn numbers_a_double_cannot_write_back_exactly_become_their_digits() {
        let row = OutboxRow {
            new_row: Some(
                RowImage::Json(
                    r#"{"id": 1, "price": 1.50, "rate": 19.99, "big": 123456789012345678901234.5, "n": -7}"#
                        .into(),
                ),
            ),
            ..outbox("insert", None, None, json!({}))
        };
        let e = outbox_event(&row, &key(&["id"]), &db("db"));
        let c = &e["changes"];
        assert_eq!(c["price"]["new"], "1.50", "scale kept");
        assert_eq!(c["rate"]["new"], json!(19.99));
        assert_eq!(c["big"]["new"], "123456789012345678901234.5");
        assert_eq!(c["n"]["new"], json!(-7));
    }

    #[test]
    fn a_soft_delete_column_turns_updates_into_soft_delete_and_restore() {
        let table = TableConfig {
            key: vec!["id".into()],
            soft_delete: Some("deleted_at".into()),
            resource_type: Some("Customer".into()),
            name_column: None,
        };
        let row = |old: Value, new: Value| outbox("update", Some(old), Some(new), json!({}));
        let at = json!("2026-11-23T10:00:00Z");
        let e = outbox_event(
            &row(
                json!({"id": 1, "deleted_at": null}),
                json!({"id": 1, "deleted_at": at}),
            ),
            &table,
            &db("db"),
        );
        assert_eq!(e["action"], "soft_delete");
        assert_eq!(e["resource"], json!({"type": "Customer", "id": "1"}));
        let e = outbox_event(
            &row(
                json!({"id": 1, "deleted_at": at}),
                json!({"id": 1, "deleted_at": null}),
            ),
            &table,
            &db("db"),
        );
        assert_eq!(e["action"], "restore");
        let flag = TableConfig {
            soft_delete: Some("archived".into()),
            ..table.clone()
        };
        let e = outbox_event(
            &row(
                json!({"id": 1, "archived": false}),
                json!({"id": 1, "archived": true}),
            ),
            &flag,
            &db("db"),
        );
        assert_eq!(e["action"], "soft_delete");
        let e = outbox_event(
            &row(
                json!({"id": 1, "archived": false, "n": 1}),
                json!({"id": 1, "archived": false, "n": 2}),
            ),
            &flag,
            &db("db"),
        );
        assert_eq!(e["action"], "update");
    }

    #[test]
    fn a_long_keyless_row_is_named_by_its_digest() {
        let long = "x".repeat(600);
        let e = outbox_event(
            &outbox("insert", None, Some(json!({"note": long})), json!({})),
            &key(&[]),
            &db("db"),
        );
        let id = e["resource"]["id"].as_str().unwrap();
        assert!(id.starts_with("sha256:") && id.len() == 7 + 64, "{id}");
        assert_eq!(
            e["metadata"]["identity"],
            "row-sha256: the table has no primary key"
        );
        trailmark_core::Event::from_json(&e).unwrap();
    }

    /// A text key PostgreSQL takes and no event may carry, empty or white
    /// space alone, is written out and kept in `capture_repairs`: the row
    /// becomes an event (an empty key stopped the drain at that row).
    #[test]
    fn an_empty_or_blank_key_is_written_out_not_a_stopped_drain() {
        for (value, shown) in [
            ("", "<empty>"),
            ("  ", "<U+0020><U+0020>"),
            ("\t", "<U+0009>"),
        ] {
            let e = outbox_event(
                &outbox("insert", None, Some(json!({"id": value})), json!({})),
                &key(&["id"]),
                &db("db"),
            );
            assert!(trailmark_core::Event::from_json(&e).is_err(), "{value:?}");
            let e = Value::Object(make_valid(e).unwrap().to_json());
            assert_eq!(e["resource"]["id"], shown, "{e}");
            assert_eq!(
                e["metadata"]["capture_repairs"]["resource.id"]["value"], value,
                "{e}"
            );
        }
    }

    /// An actor type the application's context names and the ledger does
    /// not know becomes `unknown`, the type given kept in
    /// `capture_repairs` (it stopped the drain at that row).
    #[test]
    fn an_unknown_actor_type_becomes_unknown_not_a_stopped_drain() {
        let e = outbox_event(
            &outbox(
                "insert",
                None,
                Some(json!({"id": 1})),
                json!({"actor_id": "r2", "actor_type": "robot"}),
            ),
            &key(&["id"]),
            &db("db"),
        );
        assert!(trailmark_core::Event::from_json(&e).is_err());
        let e = Value::Object(make_valid(e).unwrap().to_json());
        assert_eq!(
            (&e["actor"]["id"], &e["actor"]["type"]),
            (&json!("r2"), &json!("unknown"))
        );
        assert_eq!(
            e["metadata"]["capture_repairs"]["actor.type"]["value"], "robot",
            "{e}"
        );
    }

    #[test]
    fn context_an_event_cannot_hold_is_moved_to_metadata_not_dropped() {
        let e = outbox_event(
            &outbox(
                "insert",
                None,
                Some(json!({"id": 1})),
                json!({"ip": "not-an-ip", "tenant": "Not A Tenant!", "actor_id": "a".repeat(300)}),
            ),
            &key(&["id"]),
            &db("db"),
        );
        assert!(trailmark_core::Event::from_json(&e).is_err());
        let e = Value::Object(make_valid(e).unwrap().to_json());
        let repairs = &e["metadata"]["capture_repairs"];
        assert_eq!(repairs["context.ip"]["value"], "not-an-ip", "{e}");
        assert_eq!(repairs["tenant"]["value"], "Not A Tenant!");
        assert_eq!(e["actor"]["id"].as_str().unwrap().len(), 128);
        assert!(e.get("tenant").is_none());
        trailmark_core::Event::from_json(&e).unwrap();
    }

    /// Rows whose events are valid as generated, of every kind: both modes,
    /// every operation, a full context, numbers past a double, a value
    /// too long to keep, no old row.
    fn valid_rows() -> Vec<OutboxRow> {
        let full = json!({"actor_id": "42", "actor_type": "service", "actor_name": "Ada",
            "ip": "2001:db8::1", "user_agent": "curl/8", "request_id": "r-1",
            "session_id": "s-1", "tenant": "acme", "reason": "ticket 7\nsecond line",
            "other": "not an event's"});
        let long = format!("\"{}\"", "z".repeat(MAX_VALUE_BYTES + 1));
        let wal = OutboxRow {
            wal: Some(WalPosition {
                commit_lsn: 0x16_B374_D848,
                change: 3,
            }),
            new_row: Some(RowImage::Columns(vec![
                ("id".into(), json!(5)),
                ("name".into(), json!("Acme")),
                ("big".into(), column_of(&long)),
            ])),
            ..outbox("insert", None, None, full.clone())
        };
        let old = json!({"id": 1, "name": "A", "deleted_at": null});
        let new = json!({"id": 1, "name": "B", "deleted_at": "2026-11-23T10:00:00Z"});
        let numbers = json!({"id": 2, "name": "Acme", "n": 1.50, "big": i64::MAX});
        let system = json!({"actor_id": "ops", "actor_type": "system"});
        vec![
            outbox("update", Some(old), Some(new), full),
            outbox("insert", None, Some(numbers), json!({})),
            outbox(
                "delete",
                Some(json!({"id": 3, "name": null})),
                None,
                json!({"actor_id": "7"}),
            ),
            outbox("truncate", None, None, json!({})),
            outbox("pause", None, None, system),
            wal,
            outbox("update", None, Some(json!({"id": 4})), json!({})),
        ]
    }

    /// Rows whose events are not valid as generated: repaired (context an
    /// event cannot hold, a key with an invisible character, a value
    /// nested too deep, a time too long) or refused (an actor type no event
    /// has).
    fn rows_an_event_cannot_hold() -> Vec<OutboxRow> {
        let insert = |new: Value, context: Value| outbox("insert", None, Some(new), context);
        let deep = (0..20).fold(json!(1), |inner, _| json!([inner]));
        vec![
            insert(
                json!({"id": 1}),
                json!({"ip": "not-an-ip", "tenant": "Not A Tenant!", "actor_id": "a".repeat(300)}),
            ),
            insert(
                json!({"id": 1}),
                json!({"user_agent": "u".repeat(2000), "actor_name": "bell\u{7}", "reason": "nul\u{0}"}),
            ),
            insert(json!({"id": "61\u{200b}"}), json!({})),
            insert(json!({"id": 1, "doc": deep}), json!({})),
            insert(json!({"id": 1}), json!({"session_id": "s".repeat(300)})),
            insert(
                json!({"id": 1}),
                json!({"actor_id": "1", "actor_type": "robot"}),
            ),
            // A time RFC 3339 allows and an event does not (71 bytes).
            OutboxRow {
                captured_at: format!("2026-11-23T10:15:00.{}Z", "1".repeat(50)),
                ..insert(json!({"id": 1}), json!({}))
            },
        ]
    }

    /// The event read straight from its parts is the event written as
    /// JSON and made valid, the same for each kind of row (repaired, or
    /// refused, the same way).
    #[test]
    fn a_captured_event_is_the_event_its_json_makes_valid() {
        let rows = valid_rows().into_iter().map(|row| (row, true)).chain(
            rows_an_event_cannot_hold()
                .into_iter()
                .map(|row| (row, false)),
        );
        let named = TableConfig {
            key: vec!["id".into()],
            soft_delete: Some("deleted_at".into()),
            resource_type: Some("Customer".into()),
            name_column: Some("name".into()),
        };
        for (i, (row, valid)) in rows.enumerate() {
            for table in [&key(&["id"]), &key(&[]), &named] {
                let ids = db("db");
                let json = outbox_event(&row, table, &ids);
                assert_eq!(
                    trailmark_core::Event::from_json(&json).is_ok(),
                    valid,
                    "row {i} as generated: {json}"
                );
                assert_eq!(
                    captured_event(&row, table, &ids),
                    make_valid(json),
                    "row {i}"
                );
            }
        }
    }

    /// A context value of any kind the application may set: fine, too
    /// long for any field, with a control or an invisible format character,
    /// an address or not, a tenant or not, an actor type or not.
    fn context_value() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[a-z0-9._-]{1,12}",
            1 => Just("203.0.113.7".to_owned()),
            1 => Just("2001:db8::1".to_owned()),
            1 => prop::sample::select(vec!["user", "service", "system", "robot", "User"])
                .prop_map(str::to_owned),
            1 => prop::sample::select(vec![65, 129, 257, 513, 1025, 4097])
                .prop_map(|n| "x".repeat(n)),
            1 => "[a-z]{0,3}[\\x00-\\x1f][a-z]{0,3}",
            1 => "[a-z]{1,3}[\u{200b}\u{202e}][a-z]{0,3}",
            1 => Just("Not A Tenant!".to_owned()),
        ]
    }

    /// A column's value: a number, a string (sometimes empty, blank, with
    /// an invisible or a control character), null, a document nested too
    /// deep or with a key longer than the ledger takes.
    fn column() -> impl Strategy<Value = Value> {
        prop_oneof![
            3 => (-1000i64..1000).prop_map(|n| json!(n)),
            3 => "[a-z ]{0,8}".prop_map(Value::String),
            1 => Just(json!("61\u{200b}")),
            1 => "[a-z]{0,2}[\x01-\x1f][a-z]{0,2}".prop_map(Value::String),
            1 => Just(json!(1.5)),
            1 => Just(Value::Null),
            1 => Just((0..20).fold(json!(1), |inner, _| json!([inner]))),
            1 => Just(json!({"k".repeat(300): {"v": 1}})),
        ]
    }

    fn row_image() -> impl Strategy<Value = Option<Value>> {
        prop::option::of(
            (column(), column(), column(), any::<bool>()).prop_map(|(id, name, note, deleted)| {
                json!({"id": id, "name": name, "note": note, "deleted": deleted})
            }),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Whatever the application's context and rows hold, the row
        /// becomes an event (a row refused stops the drain: an empty key and
        /// an unknown actor type did), and the event read straight from its
        /// parts is the event its JSON makes valid.
        #[test]
        fn any_row_becomes_the_event_its_json_makes_valid(
            op in prop::sample::select(vec!["insert", "update", "delete", "truncate"]),
            old in row_image(),
            new in row_image(),
            context in prop::collection::btree_map(
                prop::sample::select(trailmark_core::CaptureContext::SETTINGS.to_vec())
                    .prop_map(|s| s.trim_start_matches("trailmark.").to_owned()),
                context_value(),
                0..9,
            ),
            table in 0..3usize,
        ) {
            let context: Map<String, Value> =
                context.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            let row = outbox(op, old, new, Value::Object(context));
            let table = match table {
                0 => key(&["id"]),
                1 => key(&[]),
                _ => TableConfig {
                    key: vec!["id".into()],
                    soft_delete: Some("deleted".into()),
                    resource_type: Some("Customer".into()),
                    name_column: Some("name".into()),
                },
            };
            let ids = db("db");
            let captured = captured_event(&row, &table, &ids);
            prop_assert!(captured.is_ok(), "{:?}: {:?}", row, captured);
            prop_assert_eq!(captured, make_valid(outbox_event(&row, &table, &ids)));
        }
    }

    /// A context key that is not a plain word is named in brackets
    /// (`context["app.user/id"]`): the repair finds it by its JSON pointer
    /// (it looked for `/context["app/user/id"]` and stopped the drain).
    #[test]
    fn a_context_value_under_any_key_is_moved_to_metadata() {
        let e = json!({
            "action": "update",
            "actor": {"id": "app", "type": "unknown"},
            "resource": {"type": "public.customer", "id": "1"},
            "context": {"source": "pg-capture", "app.user/id": {"nested": [1, 2]}},
            "metadata": {},
        });
        let errors = trailmark_core::Event::from_json(&e).unwrap_err();
        assert!(
            errors.iter().any(|f| f.path == r#"context["app.user/id"]"#),
            "{errors:?}"
        );
        let e = Value::Object(make_valid(e).unwrap().to_json());
        assert!(e["context"].get("app.user/id").is_none(), "{e}");
        assert!(
            e["metadata"]["capture_repairs"][r#"context["app.user/id"]"#]["value"]
                .as_str()
                .unwrap()
                .contains("nested")
        );
        trailmark_core::Event::from_json(&e).unwrap();
    }
}
