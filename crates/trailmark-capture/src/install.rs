//! Installing, inspecting and removing capture in the application database.

use tokio_postgres::{Client, GenericClient};

use crate::table::{TableSpec, ident, literal};
use crate::{Error, pg};

const INSTALL_SQL: &str = include_str!("../sql/install.sql");
const TRIGGER_PREFIX: &str = "trailmark_";

/// What `install` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Installed {
    /// Each covered table with its primary key columns (empty: none).
    pub tables: Vec<(TableSpec, Vec<String>)>,
}

/// The state of capture in a database.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    pub version: String,
    /// Tables with Trailmark triggers, as `schema.table`.
    pub tables: Vec<String>,
    /// Rows waiting in the outbox.
    pub outbox_depth: i64,
    /// Age in seconds of the oldest waiting row.
    pub oldest_pending_seconds: Option<f64>,
}

/// The primary key columns of a table, in key order (empty: none).
pub async fn primary_key(
    client: &impl GenericClient,
    table: &TableSpec,
) -> Result<Vec<String>, Error> {
    let exists = client
        .query_opt(
            "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
            &[&table.schema, &table.table],
        )
        .await
        .map_err(pg(format!("looking up {table}")))?;
    if exists.is_none() {
        return Err(Error::NoSuchTable(table.to_string()));
    }
    let rows = client
        .query(
            "SELECT a.attname::text FROM pg_index i
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
             WHERE i.indrelid = $1::text::regclass AND i.indisprimary
             ORDER BY array_position(i.indkey, a.attnum)",
            &[&table.quoted()],
        )
        .await
        .map_err(pg(format!("reading the primary key of {table}")))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

async fn check_columns(client: &impl GenericClient, table: &TableSpec) -> Result<(), Error> {
    for column in &table.exclude {
        let found = client
            .query_opt(
                "SELECT 1 FROM pg_attribute WHERE attrelid = $1::text::regclass AND attname = $2
                 AND attnum > 0 AND NOT attisdropped",
                &[&table.quoted(), column],
            )
            .await
            .map_err(pg(format!("checking columns of {table}")))?;
        if found.is_none() {
            return Err(Error::NoSuchColumn {
                table: table.to_string(),
                column: column.clone(),
            });
        }
    }
    Ok(())
}

/// The capture function of one table: one `INSERT … SELECT` per statement,
/// rows read as `alias.*` under `trailmark_` aliases (so an application column
/// named like an alias is never taken for the row), UPDATE rows paired by
/// primary key — `=` is exact on key columns, which are never null, and lets
/// PostgreSQL hash-join a bulk update — or by position when a key changed or
/// there is none (PostgreSQL fills both transition tables row by row, in step).
fn function_sql(function: &str, table: &TableSpec, pk: &[String]) -> String {
    let excluded = format!(
        "ARRAY[{}]::text[]",
        table
            .exclude
            .iter()
            .map(|c| literal(c))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let cols = "txid, stmt, op, schema_name, table_name, old_row, new_row, context";
    let positional = format!(
        "INSERT INTO trailmark.outbox ({cols})
        SELECT txid_current(), stmt, 'update', TG_TABLE_SCHEMA, TG_TABLE_NAME, o.j - excluded, n.j - excluded, ctx
        FROM (SELECT row_number() OVER () AS trailmark_rn, to_jsonb(trailmark_t.*) AS j FROM trailmark_old trailmark_t) o
        JOIN (SELECT row_number() OVER () AS trailmark_rn, to_jsonb(trailmark_t.*) AS j FROM trailmark_new trailmark_t) n
        USING (trailmark_rn);"
    );
    let by_key = if pk.is_empty() {
        String::new()
    } else {
        let join = pk
            .iter()
            .map(|c| format!("trailmark_o.{col} = trailmark_n.{col}", col = ident(c)))
            .collect::<Vec<_>>()
            .join(" AND ");
        format!(
            "SELECT count(*) INTO matched FROM trailmark_old trailmark_o JOIN trailmark_new trailmark_n ON {join};
        IF matched = total THEN
            INSERT INTO trailmark.outbox ({cols})
            SELECT txid_current(), stmt, 'update', TG_TABLE_SCHEMA, TG_TABLE_NAME,
                   to_jsonb(trailmark_o.*) - excluded, to_jsonb(trailmark_n.*) - excluded, ctx
            FROM trailmark_old trailmark_o JOIN trailmark_new trailmark_n ON {join};
            RETURN NULL;
        END IF;"
        )
    };
    format!(
        "CREATE OR REPLACE FUNCTION trailmark.{function}() RETURNS trigger LANGUAGE plpgsql AS $trailmark$
DECLARE
    excluded constant text[] := {excluded};
    stmt integer := trailmark.next_statement();
    ctx jsonb := trailmark.context();
    matched bigint;
    total bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO trailmark.outbox (txid, stmt, op, schema_name, table_name, new_row, context)
        SELECT txid_current(), stmt, 'insert', TG_TABLE_SCHEMA, TG_TABLE_NAME, to_jsonb(trailmark_n.*) - excluded, ctx
        FROM trailmark_new trailmark_n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO trailmark.outbox (txid, stmt, op, schema_name, table_name, old_row, context)
        SELECT txid_current(), stmt, 'delete', TG_TABLE_SCHEMA, TG_TABLE_NAME, to_jsonb(trailmark_o.*) - excluded, ctx
        FROM trailmark_old trailmark_o;
    ELSE
        SELECT count(*) INTO total FROM trailmark_old;
        IF total = 1 THEN
            -- One row each side: they are the pair (the common single-row UPDATE).
            INSERT INTO trailmark.outbox (txid, stmt, op, schema_name, table_name, old_row, new_row, context)
            SELECT txid_current(), stmt, 'update', TG_TABLE_SCHEMA, TG_TABLE_NAME,
                   to_jsonb(trailmark_o.*) - excluded, to_jsonb(trailmark_n.*) - excluded, ctx
            FROM trailmark_old trailmark_o, trailmark_new trailmark_n;
            RETURN NULL;
        END IF;
        {by_key}
        {positional}
    END IF;
    RETURN NULL;
END
$trailmark$;"
    )
}

fn trigger_sql(function: &str, table: &TableSpec) -> String {
    let q = table.quoted();
    let name = |op: &str| ident(&format!("{TRIGGER_PREFIX}{op}"));
    format!(
        "DROP TRIGGER IF EXISTS {ins} ON {q};
         DROP TRIGGER IF EXISTS {upd} ON {q};
         DROP TRIGGER IF EXISTS {del} ON {q};
         DROP TRIGGER IF EXISTS {tru} ON {q};
         CREATE TRIGGER {ins} AFTER INSERT ON {q} REFERENCING NEW TABLE AS trailmark_new
             FOR EACH STATEMENT EXECUTE FUNCTION trailmark.{function}();
         CREATE TRIGGER {upd} AFTER UPDATE ON {q} REFERENCING OLD TABLE AS trailmark_old NEW TABLE AS trailmark_new
             FOR EACH STATEMENT EXECUTE FUNCTION trailmark.{function}();
         CREATE TRIGGER {del} AFTER DELETE ON {q} REFERENCING OLD TABLE AS trailmark_old
             FOR EACH STATEMENT EXECUTE FUNCTION trailmark.{function}();
         CREATE TRIGGER {tru} AFTER TRUNCATE ON {q}
             FOR EACH STATEMENT EXECUTE FUNCTION trailmark.capture_truncate();",
        ins = name("insert"),
        upd = name("update"),
        del = name("delete"),
        tru = name("truncate"),
    )
}

/// Installs (or upgrades) capture and attaches it to `tables`, in one
/// transaction: either every table is covered or nothing changed. Running it
/// again with the same tables changes nothing.
pub async fn install(client: &mut Client, tables: &[TableSpec]) -> Result<Installed, Error> {
    let tx = client
        .transaction()
        .await
        .map_err(pg("starting the install transaction"))?;
    tx.batch_execute(INSTALL_SQL)
        .await
        .map_err(pg("creating schema trailmark"))?;
    let mut installed = Vec::new();
    for table in tables {
        let pk = primary_key(&tx, table).await?;
        check_columns(&tx, table).await?;
        let oid: u32 = tx
            .query_one("SELECT $1::text::regclass::oid", &[&table.quoted()])
            .await
            .map_err(pg(format!("looking up {table}")))?
            .get(0);
        let function = format!("capture_{oid}");
        tx.batch_execute(&function_sql(&function, table, &pk))
            .await
            .map_err(pg(format!("creating the capture function of {table}")))?;
        tx.batch_execute(&trigger_sql(&function, table))
            .await
            .map_err(pg(format!("attaching triggers to {table}")))?;
        installed.push((table.clone(), pk));
    }
    tx.commit().await.map_err(pg("committing the install"))?;
    Ok(Installed { tables: installed })
}

async fn covered_tables(client: &impl GenericClient) -> Result<Vec<(String, String)>, Error> {
    let rows = client
        .query(
            "SELECT DISTINCT n.nspname::text, c.relname::text FROM pg_trigger t
             JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE t.tgname LIKE 'trailmark\\_%' AND NOT t.tgisinternal ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(pg("listing covered tables"))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// What is installed and how far behind the outbox is.
pub async fn status(client: &impl GenericClient) -> Result<Status, Error> {
    let version = client
        .query_opt(
            "SELECT value FROM trailmark.meta WHERE key = 'version'
             AND to_regclass('trailmark.meta') IS NOT NULL",
            &[],
        )
        .await;
    let version: String = match version {
        Ok(Some(row)) => row.get(0),
        Ok(None) => return Err(Error::NotInstalled),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
            return Err(Error::NotInstalled);
        }
        Err(e) => return Err(pg("reading the installed version")(e)),
    };
    let tables = covered_tables(client)
        .await?
        .into_iter()
        .map(|(s, t)| format!("{s}.{t}"))
        .collect();
    let row = client
        .query_one(
            "SELECT count(*), extract(epoch FROM clock_timestamp() - min(captured_at))::float8
             FROM trailmark.outbox",
            &[],
        )
        .await
        .map_err(pg("reading the outbox"))?;
    Ok(Status {
        version,
        tables,
        outbox_depth: row.get(0),
        oldest_pending_seconds: row.get(1),
    })
}

/// Removes every Trailmark trigger and the `trailmark` schema (outbox
/// included), in one transaction.
pub async fn uninstall(client: &mut Client) -> Result<Vec<String>, Error> {
    let tx = client
        .transaction()
        .await
        .map_err(pg("starting the uninstall transaction"))?;
    let tables = covered_tables(&tx).await?;
    for (schema, table) in &tables {
        let q = format!("{}.{}", ident(schema), ident(table));
        for op in ["insert", "update", "delete", "truncate"] {
            tx.batch_execute(&format!(
                "DROP TRIGGER IF EXISTS {} ON {q}",
                ident(&format!("{TRIGGER_PREFIX}{op}"))
            ))
            .await
            .map_err(pg(format!("removing triggers from {schema}.{table}")))?;
        }
    }
    tx.batch_execute("DROP SCHEMA IF EXISTS trailmark CASCADE")
        .await
        .map_err(pg("dropping schema trailmark"))?;
    tx.commit().await.map_err(pg("committing the uninstall"))?;
    Ok(tables
        .into_iter()
        .map(|(s, t)| format!("{s}.{t}"))
        .collect())
}
