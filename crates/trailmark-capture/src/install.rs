//! Installing, inspecting and removing capture in the application database.

use std::collections::HashMap;

use tokio_postgres::{Client, GenericClient};

use crate::table::{TableConfig, TableSpec, ident};
use crate::{Error, pg};

const INSTALL_SQL: &str = include_str!("../sql/install.sql");
const TRIGGER_PREFIX: &str = "trailmark_";
/// The capture schema version this build installs (`trailmark.meta`).
pub const VERSION: u32 = 2;
/// The channel the triggers notify when they add to the outbox.
pub const CHANNEL: &str = "trailmark_outbox";

/// What `install` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Installed {
    /// Each covered table with its primary key columns (empty: none): the
    /// tables asked for, then those covered before and regenerated.
    pub tables: Vec<(TableSpec, Vec<String>)>,
    /// How many of `tables` were covered before and were not named this time
    /// (their functions were regenerated with their stored options).
    pub refreshed: usize,
    /// The version found before (None: a fresh install).
    pub previous_version: Option<u32>,
    /// Things the operator should know (an exclusion dropped, say).
    pub warnings: Vec<String>,
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
    /// The last outbox id the ledger acknowledged, how many rows have been
    /// drained in all, when, and by which drainer.
    pub last_drained: Option<(i64, i64, String, String)>,
    /// What no longer matches the tables as installed (re-run install).
    pub drift: Vec<String>,
}

/// The tables of a schema (`--all`), as specs without options.
pub async fn tables_in_schema(
    client: &impl GenericClient,
    schema: &str,
) -> Result<Vec<TableSpec>, Error> {
    let rows = client
        .query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
             ORDER BY 1",
            &[&schema],
        )
        .await
        .map_err(pg(format!("listing the tables of schema {schema}")))?;
    if rows.is_empty() {
        return Err(Error::NoSuchTable(format!(
            "{schema}.* (the schema has no tables)"
        )));
    }
    rows.iter()
        .map(|r| TableSpec::parse(&format!("{schema}.{}", r.get::<_, String>(0))))
        .collect()
}

/// The options of every covered table, by `(schema, table)`.
pub async fn table_configs(
    client: &impl GenericClient,
) -> Result<HashMap<(String, String), TableConfig>, Error> {
    let rows = client
        .query(
            "SELECT schema_name, table_name, key_columns, soft_delete, resource_type
             FROM trailmark.tables",
            &[],
        )
        .await
        .map_err(pg("reading trailmark.tables (is capture installed?)"))?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                (r.get(0), r.get(1)),
                TableConfig {
                    key: r.get(2),
                    soft_delete: r.get(3),
                    resource_type: r.get(4),
                },
            )
        })
        .collect())
}

async fn stored_specs(client: &impl GenericClient) -> Result<Vec<TableSpec>, Error> {
    let rows = client
        .query(
            "SELECT schema_name, table_name, exclude, soft_delete, resource_type
             FROM trailmark.tables ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(pg("reading trailmark.tables"))?;
    Ok(rows
        .iter()
        .map(|r| TableSpec {
            schema: r.get(0),
            table: r.get(1),
            exclude: r.get(2),
            soft_delete: r.get(3),
            resource_type: r.get(4),
        })
        .collect())
}

/// The installed version, if any.
async fn installed_version(client: &impl GenericClient) -> Result<Option<u32>, Error> {
    let row = client
        .query_one("SELECT to_regclass('trailmark.meta') IS NOT NULL", &[])
        .await
        .map_err(pg("looking for an earlier install"))?;
    let meta: bool = row.get(0);
    if !meta {
        return Ok(None);
    }
    let version = client
        .query_opt(
            "SELECT value FROM trailmark.meta WHERE key = 'version'",
            &[],
        )
        .await
        .map_err(pg("reading the installed version"))?
        .map(|r| r.get::<_, String>(0));
    Ok(version.and_then(|v| v.parse().ok()))
}

/// Version 1 kept no table list: each covered table's exclusions are read
/// back from the array literal its generated function was written with.
async fn version_1_specs(client: &impl GenericClient) -> Result<Vec<TableSpec>, Error> {
    let mut specs = Vec::new();
    for (schema, table) in covered_tables(client).await? {
        let mut spec = TableSpec::parse(&format!("{schema}.{table}"))?;
        let source: Option<String> = client
            .query_opt(
                "SELECT p.prosrc FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
                 WHERE t.tgrelid = $1::text::regclass AND t.tgname = 'trailmark_insert'",
                &[&spec.quoted()],
            )
            .await
            .map_err(pg(format!("reading the version 1 function of {spec}")))?
            .map(|r| r.get(0));
        spec.exclude = source
            .as_deref()
            .map(excluded_in_source)
            .unwrap_or_default();
        specs.push(spec);
    }
    Ok(specs)
}

/// The names in `excluded constant text[] := ARRAY['a', 'b']::text[]`.
fn excluded_in_source(source: &str) -> Vec<String> {
    let Some(start) = source.find("excluded constant text[] := ARRAY[") else {
        return Vec::new();
    };
    let rest = &source[start + "excluded constant text[] := ARRAY[".len()..];
    let Some(end) = rest.find("]::text[]") else {
        return Vec::new();
    };
    let mut names = Vec::new();
    let mut chars = rest[..end].chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut name = String::new();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    name.push('\'');
                } else {
                    break;
                }
            } else {
                name.push(c);
            }
        }
        names.push(name);
    }
    names
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

/// Checks the options of a table against its columns; returns the column
/// numbers of the excluded columns (what the trigger excludes by, so a
/// renamed column stays excluded).
async fn check_columns(client: &impl GenericClient, table: &TableSpec) -> Result<Vec<i16>, Error> {
    if let Some(alias) = &table.resource_type
        && (alias.trim().is_empty() || alias.len() > trailmark_core::limits::MAX_NAME_BYTES)
    {
        return Err(Error::BadOption(format!(
            "resource type alias {alias:?} for {table}: give 1 to {} bytes",
            trailmark_core::limits::MAX_NAME_BYTES
        )));
    }
    if let Some(column) = &table.soft_delete
        && table.exclude.contains(column)
    {
        return Err(Error::BadOption(format!(
            "{table}.{column} cannot be both excluded and the soft-delete column"
        )));
    }
    let mut attnums = Vec::new();
    for (i, column) in table.exclude.iter().chain(&table.soft_delete).enumerate() {
        let found = client
            .query_opt(
                "SELECT attnum FROM pg_attribute WHERE attrelid = $1::text::regclass AND attname = $2
                 AND attnum > 0 AND NOT attisdropped",
                &[&table.quoted(), column],
            )
            .await
            .map_err(pg(format!("checking columns of {table}")))?;
        match found {
            None => {
                return Err(Error::NoSuchColumn {
                    table: table.to_string(),
                    column: column.clone(),
                });
            }
            Some(row) if i < table.exclude.len() => attnums.push(row.get(0)),
            Some(_) => {}
        }
    }
    Ok(attnums)
}

/// The current names of a table's columns by number (a renamed excluded
/// column keeps its number); dropped columns are left out.
async fn column_names(
    client: &impl GenericClient,
    table: &TableSpec,
    attnums: &[i16],
) -> Result<Vec<String>, Error> {
    let rows = client
        .query(
            "SELECT attname::text FROM pg_attribute WHERE attrelid = $1::text::regclass
             AND attnum = ANY ($2) AND NOT attisdropped ORDER BY array_position($2, attnum)",
            &[&table.quoted(), &attnums],
        )
        .await
        .map_err(pg(format!("reading the columns of {table}")))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The capture function of one table: one `INSERT … SELECT` per statement,
/// rows read as `alias.*` under `trailmark_` aliases (so an application column
/// named like an alias is never taken for the row), UPDATE rows paired by
/// primary key — `=` is exact on key columns, which are never null, and lets
/// PostgreSQL hash-join a bulk update — or by position when a key changed or
/// there is none (PostgreSQL fills both transition tables row by row, in step).
///
/// Excluded columns are named by number at each statement, so renaming one
/// never lets its values out; a key column renamed after install makes the
/// key pairing fall back to position instead of failing the application's
/// statement.
fn function_sql(function: &str, pk: &[String], exclude_attnums: &[i16]) -> String {
    let excluded = if exclude_attnums.is_empty() {
        "'{}'::text[]".to_owned()
    } else {
        let numbers = exclude_attnums
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        format!(
            "ARRAY(SELECT attname::text FROM pg_attribute WHERE attrelid = TG_RELID AND attnum = ANY ('{{{numbers}}}'::int2[]))"
        )
    };
    let cols = "txid, stmt, op, schema_name, table_name, old_row, new_row, context";
    let positional = format!(
        "INSERT INTO trailmark.outbox ({cols})
        SELECT txid_current(), trailmark_stmt, 'update', TG_TABLE_SCHEMA, TG_TABLE_NAME, o.j - trailmark_excluded, n.j - trailmark_excluded, trailmark_ctx
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
            "-- Pair by key in one pass; the rare statement that changed a key
        -- (fewer pairs than rows) is paired by position instead.
        BEGIN
            INSERT INTO trailmark.outbox ({cols})
            SELECT txid_current(), trailmark_stmt, 'update', TG_TABLE_SCHEMA, TG_TABLE_NAME,
                   to_jsonb(trailmark_o.*) - trailmark_excluded, to_jsonb(trailmark_n.*) - trailmark_excluded, trailmark_ctx
            FROM trailmark_old trailmark_o JOIN trailmark_new trailmark_n ON {join};
            GET DIAGNOSTICS trailmark_matched = ROW_COUNT;
        EXCEPTION WHEN undefined_column THEN
            trailmark_matched := -1; -- a key column was renamed since install: pair by position
        END;
        IF trailmark_matched = trailmark_total THEN
            PERFORM pg_notify('{CHANNEL}', '');
            RETURN NULL;
        END IF;
        IF trailmark_matched > 0 THEN
            DELETE FROM trailmark.outbox WHERE txid = txid_current() AND stmt = trailmark_stmt
                AND schema_name = TG_TABLE_SCHEMA AND table_name = TG_TABLE_NAME;
        END IF;"
        )
    };
    format!(
        "CREATE OR REPLACE FUNCTION trailmark.{function}() RETURNS trigger LANGUAGE plpgsql AS $trailmark$
DECLARE
    trailmark_excluded text[] := {excluded};
    trailmark_stmt integer := coalesce(nullif(current_setting('trailmark.stmt', true), ''), '0')::integer + 1;
    trailmark_ctx jsonb := trailmark.context();
    trailmark_matched bigint;
    trailmark_total bigint;
BEGIN
    -- The statement's number within its transaction (1, 2, …).
    PERFORM set_config('trailmark.stmt', trailmark_stmt::text, true);
    IF TG_OP = 'INSERT' THEN
        INSERT INTO trailmark.outbox (txid, stmt, op, schema_name, table_name, new_row, context)
        SELECT txid_current(), trailmark_stmt, 'insert', TG_TABLE_SCHEMA, TG_TABLE_NAME, to_jsonb(trailmark_n.*) - trailmark_excluded, trailmark_ctx
        FROM trailmark_new trailmark_n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO trailmark.outbox (txid, stmt, op, schema_name, table_name, old_row, context)
        SELECT txid_current(), trailmark_stmt, 'delete', TG_TABLE_SCHEMA, TG_TABLE_NAME, to_jsonb(trailmark_o.*) - trailmark_excluded, trailmark_ctx
        FROM trailmark_old trailmark_o;
    ELSE
        SELECT count(*) INTO trailmark_total FROM trailmark_old;
        IF trailmark_total = 1 THEN
            -- One row each side: they are the pair (the common single-row UPDATE).
            INSERT INTO trailmark.outbox (txid, stmt, op, schema_name, table_name, old_row, new_row, context)
            SELECT txid_current(), trailmark_stmt, 'update', TG_TABLE_SCHEMA, TG_TABLE_NAME,
                   to_jsonb(trailmark_o.*) - trailmark_excluded, to_jsonb(trailmark_n.*) - trailmark_excluded, trailmark_ctx
            FROM trailmark_old trailmark_o, trailmark_new trailmark_n;
            PERFORM pg_notify('{CHANNEL}', '');
            RETURN NULL;
        END IF;
        {by_key}
        {positional}
    END IF;
    -- Wakes a listening drainer at commit (one notice per transaction).
    PERFORM pg_notify('{CHANNEL}', '');
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

/// Generates a table's capture function, attaches its triggers and records
/// its options; returns its key columns.
async fn cover(
    tx: &tokio_postgres::Transaction<'_>,
    table: &TableSpec,
) -> Result<Vec<String>, Error> {
    let pk = primary_key(tx, table).await?;
    let attnums = check_columns(tx, table).await?;
    let oid: u32 = tx
        .query_one("SELECT $1::text::regclass::oid", &[&table.quoted()])
        .await
        .map_err(pg(format!("looking up {table}")))?
        .get(0);
    let function = format!("capture_{oid}");
    tx.batch_execute(&function_sql(&function, &pk, &attnums))
        .await
        .map_err(pg(format!("creating the capture function of {table}")))?;
    tx.batch_execute(&trigger_sql(&function, table))
        .await
        .map_err(pg(format!("attaching triggers to {table}")))?;
    tx.execute(
            "INSERT INTO trailmark.tables (schema_name, table_name, key_columns, exclude, exclude_attnums, soft_delete, resource_type)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (schema_name, table_name) DO UPDATE SET key_columns = excluded.key_columns,
                 exclude = excluded.exclude, exclude_attnums = excluded.exclude_attnums,
                 soft_delete = excluded.soft_delete, resource_type = excluded.resource_type",
            &[&table.schema, &table.table, &pk, &table.exclude, &attnums, &table.soft_delete, &table.resource_type],
        )
        .await
        .map_err(pg(format!("recording the options of {table}")))?;
    Ok(pk)
}

/// Installs (or upgrades) capture and attaches it to `tables`, in one
/// transaction: either every table is covered or nothing changed. Tables
/// covered before keep their stored options unless named again (then the
/// options given replace them) and get their functions regenerated, so
/// running `install` after upgrading Trailmark upgrades every table. Running
/// it again with the same tables and options changes nothing.
pub async fn install(client: &mut Client, tables: &[TableSpec]) -> Result<Installed, Error> {
    let tx = client
        .transaction()
        .await
        .map_err(pg("starting the install transaction"))?;
    // One installer at a time (two would race on trailmark.tables).
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('trailmark.install'))",
        &[],
    )
    .await
    .map_err(pg("waiting for another install to finish"))?;
    let previous_version = installed_version(&tx).await?;
    if let Some(v) = previous_version
        && v > VERSION
    {
        return Err(Error::NewerVersion(v));
    }
    let before = match previous_version {
        Some(1) => version_1_specs(&tx).await?,
        _ => Vec::new(),
    };
    tx.batch_execute(INSTALL_SQL)
        .await
        .map_err(pg("creating schema trailmark"))?;
    let mut before = if previous_version == Some(1) {
        before
    } else {
        stored_specs(&tx).await?
    };
    let mut warnings = Vec::new();
    for given in tables {
        if let Some(old) = before
            .iter()
            .find(|s| s.schema == given.schema && s.table == given.table)
        {
            for column in old.exclude.iter().filter(|c| !given.exclude.contains(c)) {
                warnings.push(format!(
                    "{given}.{column} is no longer excluded: its values will be captured from now on"
                ));
            }
        }
    }
    before.retain(|s| {
        !tables
            .iter()
            .any(|t| t.schema == s.schema && t.table == s.table)
    });
    // A table dropped since it was covered leaves the list.
    let mut gone = Vec::new();
    for table in &before {
        if let Err(Error::NoSuchTable(_)) = primary_key(&tx, table).await {
            warnings.push(format!(
                "{table} no longer exists: it is no longer listed as covered"
            ));
            gone.push(table.clone());
        }
    }
    for table in &gone {
        tx.execute(
            "DELETE FROM trailmark.tables WHERE schema_name = $1 AND table_name = $2",
            &[&table.schema, &table.table],
        )
        .await
        .map_err(pg(format!("forgetting {table}")))?;
    }
    before.retain(|s| !gone.contains(s));
    // Stored exclusions follow their columns through renames.
    for table in &mut before {
        let attnums: Option<Vec<i16>> = tx
            .query_opt(
                "SELECT exclude_attnums FROM trailmark.tables WHERE schema_name = $1 AND table_name = $2",
                &[&table.schema, &table.table],
            )
            .await
            .map_err(pg(format!("reading the options of {table}")))?
            .and_then(|r| r.get(0));
        if let Some(attnums) = attnums {
            table.exclude = column_names(&tx, table, &attnums).await?;
        }
    }
    let refreshed = before.len();
    let mut installed = Vec::new();
    for table in tables.iter().chain(&before) {
        if installed.iter().any(|(t, _): &(TableSpec, Vec<String>)| {
            t.schema == table.schema && t.table == table.table
        }) {
            continue;
        }
        let pk = cover(&tx, table).await?;
        installed.push((table.clone(), pk));
    }
    tx.commit().await.map_err(pg("committing the install"))?;
    Ok(Installed {
        tables: installed,
        refreshed,
        previous_version,
        warnings,
    })
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

/// What no longer matches the tables as installed.
async fn drift(client: &impl GenericClient, tables: &[String]) -> Result<Vec<String>, Error> {
    let mut drift = Vec::new();
    for spec in stored_specs(client).await? {
        let name = spec.to_string();
        if !tables.contains(&name) {
            drift.push(format!(
                "{name}: listed as covered but its triggers are gone"
            ));
        }
        let row = client
            .query_one(
                "SELECT key_columns, exclude_attnums FROM trailmark.tables
                 WHERE schema_name = $1 AND table_name = $2",
                &[&spec.schema, &spec.table],
            )
            .await
            .map_err(pg("reading trailmark.tables"))?;
        let (stored, attnums): (Vec<String>, Vec<i16>) = (row.get(0), row.get(1));
        match primary_key(client, &spec).await {
            Err(Error::NoSuchTable(_)) => {
                drift.push(format!("{name}: the table no longer exists"));
                continue;
            }
            Err(e) => return Err(e),
            Ok(pk) if pk != stored => drift.push(format!(
                "{name}: primary key is now ({}) but capture was installed with ({}): run install again",
                pk.join(", "),
                stored.join(", ")
            )),
            Ok(_) => {}
        }
        let now = column_names(client, &spec, &attnums).await?;
        if now != spec.exclude {
            drift.push(format!(
                "{name}: excluded columns are now named ({}) (still excluded): run install again to record the names",
                now.join(", ")
            ));
        }
        if let Some(column) = &spec.soft_delete {
            let mut only = spec.clone();
            only.exclude.clear();
            only.soft_delete = Some(column.clone());
            if let Err(Error::NoSuchColumn { .. }) = check_columns(client, &only).await {
                drift.push(format!(
                    "{name}: soft-delete column {column:?} no longer exists: run install again with its new name"
                ));
            }
        }
    }
    Ok(drift)
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
    let tables: Vec<String> = covered_tables(client)
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
    let (outbox_depth, oldest_pending_seconds) = (row.get(0), row.get(1));
    if version != VERSION.to_string() {
        return Ok(Status {
            drift: vec![format!(
                "installed version {version}, this trailmark installs {VERSION}: run install again to upgrade"
            )],
            version,
            tables,
            outbox_depth,
            oldest_pending_seconds,
            last_drained: None,
        });
    }
    let last_drained = client
        .query_opt(
            "SELECT last_outbox_id, rows_total,
                    to_char(drained_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), drainer
             FROM trailmark.drained",
            &[],
        )
        .await
        .map_err(pg("reading the drain position"))?
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)));
    let drift = drift(client, &tables).await?;
    Ok(Status {
        version,
        tables,
        outbox_depth,
        oldest_pending_seconds,
        last_drained,
        drift,
    })
}

/// Removes every Trailmark trigger and the `trailmark` schema (outbox
/// included), in one transaction.
/// What an uninstall removed.
#[derive(Debug)]
pub struct Uninstalled {
    pub tables: Vec<String>,
    /// Changes still in the outbox that were dropped with it.
    pub dropped: i64,
}

/// Removes capture. Changes not yet drained are never dropped silently:
/// with some in the outbox this refuses unless `drop_pending` is given.
pub async fn uninstall(client: &mut Client, drop_pending: bool) -> Result<Uninstalled, Error> {
    let tx = client
        .transaction()
        .await
        .map_err(pg("starting the uninstall transaction"))?;
    // No drainer or trigger may add or take rows while we count and drop.
    tx.batch_execute("LOCK TABLE trailmark.outbox IN ACCESS EXCLUSIVE MODE")
        .await
        .map_err(pg("locking the outbox"))?;
    let pending: i64 = tx
        .query_one("SELECT count(*) FROM trailmark.outbox", &[])
        .await
        .map_err(pg("counting the outbox"))?
        .get(0);
    if pending > 0 && !drop_pending {
        return Err(Error::PendingChanges(pending));
    }
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
    Ok(Uninstalled {
        tables: tables
            .into_iter()
            .map(|(s, t)| format!("{s}.{t}"))
            .collect(),
        dropped: pending,
    })
}
