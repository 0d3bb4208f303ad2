//! Undoing one captured change: the SQL that puts a row back as it was
//! before the event, refused when the row has changed since.

use serde_json::{Map, Value};
use tokio_postgres::{Client, GenericClient};

use crate::table::{TableSpec, ident, literal};
use crate::{Error, pg};

/// The undo of one captured change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revert {
    /// The event being undone.
    pub event_id: String,
    /// Its tenant: the captured revert goes to the same tenant.
    pub tenant: Option<String>,
    /// The covered table the row is in.
    pub table: TableSpec,
    /// What the revert does: `delete` (of a created row), `update` (back to
    /// the old values) or `insert` (of a deleted row).
    pub does: &'static str,
    /// The one statement that undoes it, runnable as printed.
    pub statement: String,
    /// Whether the row is as the event left it (if not, `apply` refuses
    /// unless forced).
    pub unchanged_since: bool,
    /// What differs, when it does.
    pub why_changed: Option<String>,
}

/// Who reverts, recorded as the actor of the captured revert.
#[derive(Clone, Debug)]
pub struct Reverter {
    pub actor_id: String,
    pub actor_type: String,
    pub actor_name: Option<String>,
}

fn refuse(message: impl Into<String>) -> Error {
    Error::CannotRevert(message.into())
}

/// A row-type record built from JSON, read column by column with the
/// table's own input functions (so `"19.99"` fills a numeric, timestamps
/// parse in any session time zone).
fn record(table: &str, values: &Map<String, Value>) -> String {
    format!(
        "jsonb_populate_record(NULL::{table}, {}::jsonb)",
        literal(&Value::Object(values.clone()).to_string())
    )
}

fn columns(alias: &str, names: &[&String]) -> String {
    names
        .iter()
        .map(|c| format!("{alias}.{}", ident(c)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn as_text_row(alias: &str, names: &[&String]) -> String {
    format!(
        "ROW({})",
        names
            .iter()
            .map(|c| format!("{alias}.{}::text", ident(c)))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The covered table a resource type names, its key columns, and the key
/// of the record `id` names.
async fn locate(
    client: &impl GenericClient,
    kind: &str,
    id: &str,
) -> Result<(TableSpec, Vec<String>, Map<String, Value>), Error> {
    // A table without an alias is typed by its name when the change was
    // captured: its name now, or one it had before a rename.
    let rows = client
        .query(
            "SELECT schema_name, table_name, key_columns FROM trailmark.tables t
             WHERE resource_type = $1
                OR (resource_type IS NULL
                    AND (schema_name || '.' || table_name = $1
                         OR EXISTS (SELECT FROM unnest(t.former_schemas, t.former_tables) f(s, n)
                                    WHERE f.s || '.' || f.n = $1)))
             ORDER BY 1, 2",
            &[&kind],
        )
        .await
        .map_err(pg("reading trailmark.tables"))?;
    let named = |row: &tokio_postgres::Row| {
        TableSpec::named(row.get::<_, String>(0), row.get::<_, String>(1))
    };
    let row = match rows.as_slice() {
        [] => {
            return Err(refuse(format!(
                "no covered table has resource type {kind:?}"
            )));
        }
        [row] => row,
        several => {
            return Err(refuse(format!(
                "resource type {kind:?} is that of {} covered tables ({}): which one the event's row is in is not known; revert it by hand",
                several.len(),
                several
                    .iter()
                    .map(|r| named(r).to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    };
    let spec = named(row);
    let key: Vec<String> = row.get(2);
    if key.is_empty() {
        return Err(refuse(format!(
            "{spec} has no primary key: a row cannot be picked out to revert"
        )));
    }
    let key_values: Vec<Value> = if key.len() == 1 {
        vec![Value::String(id.to_owned())]
    } else {
        serde_json::from_str::<Vec<Value>>(id)
            .ok()
            .filter(|v| v.len() == key.len())
            .ok_or_else(|| {
                refuse(format!(
                    "resource id {id:?} is not the {}-column key of {spec}",
                    key.len()
                ))
            })?
    };
    let key_map: Map<String, Value> = key.iter().cloned().zip(key_values).collect();
    Ok((spec, key, key_map))
}

struct Target<'a> {
    spec: &'a TableSpec,
    table: &'a str,
    wherever: &'a str,
    id: &'a str,
}

/// Why the row is no longer as the event left it (None: it is).
async fn changed_since(
    client: &impl GenericClient,
    target: &Target<'_>,
    columns_changed: &[&String],
    new: &Map<String, Value>,
    expect_present: bool,
) -> Result<Option<String>, Error> {
    let Target {
        spec,
        table,
        wherever,
        id,
    } = target;
    // Is the row as the event left it? Compared as the table's own types,
    // then as text in this one session.
    let check = format!(
        "SELECT (SELECT {current} FROM {table} AS t WHERE {wherever})::text,
                (SELECT {expected} FROM {} r)::text,
                EXISTS (SELECT 1 FROM {table} AS t WHERE {wherever})",
        record(table, new),
        current = as_text_row("t", columns_changed),
        expected = as_text_row("r", columns_changed),
    );
    let row = client
        .query_one(&check, &[])
        .await
        .map_err(pg(format!("reading the current row of {spec}")))?;
    let (current, expected, present): (Option<String>, Option<String>, bool) =
        (row.get(0), row.get(1), row.get(2));
    let why_changed = match (expect_present, present) {
        (false, true) => Some(format!("a row with key {id} exists again")),
        (true, false) => Some(format!("the row with key {id} no longer exists")),
        (false, false) => None,
        (true, true) if current == expected => None,
        (true, true) => Some(format!(
            "the row now holds {} where the event left {}",
            current.unwrap_or_default(),
            expected.unwrap_or_default()
        )),
    };
    Ok(why_changed)
}

/// Plans the revert of `event` (as `GET /v1/events/{id}` returns it) against
/// the database it was captured from.
pub async fn plan(client: &impl GenericClient, event: &Value) -> Result<Revert, Error> {
    let event_id = event["id"].as_str().unwrap_or_default().to_owned();
    if event.pointer("/context/source").and_then(Value::as_str) != Some("pg-capture") {
        return Err(refuse(format!(
            "event {event_id} was not captured from PostgreSQL (context.source is not pg-capture)"
        )));
    }
    let action = event["action"].as_str().unwrap_or_default();
    let kind = event
        .pointer("/resource/type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let id = event
        .pointer("/resource/id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(changes) = event.get("changes").and_then(Value::as_object) else {
        return Err(refuse(format!(
            "event {event_id} has no changes to undo (a truncate, or its payload was erased or expired)"
        )));
    };
    let (spec, key, key_map) = locate(client, kind, id).await?;
    let table = spec.quoted();
    let key_cols: Vec<&String> = key.iter().collect();
    let wherever = format!(
        "({}) = (SELECT {} FROM {} k)",
        columns("t", &key_cols),
        columns("k", &key_cols),
        record(&table, &key_map)
    );
    let side = |which: &str| -> Map<String, Value> {
        changes
            .iter()
            .map(|(c, v)| (c.clone(), v.get(which).cloned().unwrap_or(Value::Null)))
            .collect()
    };
    let (old, new) = (side("old"), side("new"));
    let columns_changed: Vec<&String> = changes.keys().collect();

    // The changed columns, and their old values read as the table's types.
    let names = columns_changed
        .iter()
        .map(|c| ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    let values = columns("r", &columns_changed);
    let old_record = record(&table, &old);
    let (does, statement, expect_present) = match action {
        "create" => (
            "delete",
            format!("DELETE FROM {table} AS t WHERE {wherever};"),
            true,
        ),
        "delete" => (
            "insert",
            format!("INSERT INTO {table} ({names}) SELECT {values} FROM {old_record} r;"),
            false,
        ),
        "update" | "soft_delete" | "restore" => (
            "update",
            format!(
                "UPDATE {table} AS t SET ({names}) = (SELECT {values} FROM {old_record} r) WHERE {wherever};"
            ),
            true,
        ),
        other => return Err(refuse(format!("a {other} event cannot be reverted"))),
    };
    let why_changed = changed_since(
        client,
        &Target {
            spec: &spec,
            table: &table,
            wherever: &wherever,
            id,
        },
        &columns_changed,
        &new,
        expect_present,
    )
    .await?;
    Ok(Revert {
        event_id,
        tenant: event["tenant"].as_str().map(str::to_owned),
        table: spec,
        does,
        statement,
        unchanged_since: why_changed.is_none(),
        why_changed,
    })
}

/// The context lines a revert runs under.
pub fn context_sql(revert: &Revert, by: &Reverter) -> String {
    let context = crate::CaptureContext {
        actor_id: Some(by.actor_id.clone()),
        actor_type: Some(by.actor_type.clone()),
        actor_name: by.actor_name.clone(),
        tenant: revert.tenant.clone(),
        reason: Some(format!("revert of event {}", revert.event_id)),
        ..crate::CaptureContext::default()
    };
    format!(
        "SELECT trailmark.set_context({}::jsonb);",
        literal(&context.to_json())
    )
}

/// Runs the revert in one transaction under `by`, after checking again (with
/// the row locked) that it has not changed since, unless `force`. The
/// triggers capture the revert itself, attributed to `by`.
pub async fn apply(
    client: &mut Client,
    event: &Value,
    by: &Reverter,
    force: bool,
) -> Result<Revert, Error> {
    let tx = client
        .transaction()
        .await
        .map_err(pg("starting the revert transaction"))?;
    // Lock the table's rows against a concurrent writer while checking.
    let revert = plan(&tx, event).await?;
    let spec = &revert.table;
    tx.batch_execute(&format!(
        "LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE",
        spec.quoted()
    ))
    .await
    .map_err(pg(format!("locking {spec}")))?;
    let revert = plan(&tx, event).await?;
    if !revert.unchanged_since && !force {
        return Err(refuse(format!(
            "{} has changed since event {}: {} (use --force to revert anyway)",
            revert.table,
            revert.event_id,
            revert.why_changed.clone().unwrap_or_default()
        )));
    }
    tx.batch_execute(&context_sql(&revert, by))
        .await
        .map_err(pg("setting the revert's context"))?;
    let n = tx
        .execute(revert.statement.as_str(), &[])
        .await
        .map_err(pg(format!("reverting in {}", revert.table)))?;
    if n != 1 {
        return Err(refuse(format!(
            "the revert would change {n} rows of {}, not one: nothing was changed",
            revert.table
        )));
    }
    tx.commit().await.map_err(pg("committing the revert"))?;
    Ok(revert)
}
