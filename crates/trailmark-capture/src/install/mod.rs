//! Installing, inspecting and removing capture in the application database.

use tokio_postgres::Client;

use crate::table::{TableSpec, ident};
use crate::{Error, pg};

mod catalog;
mod pause;
mod sql;
mod status;
mod upgrade;

pub use catalog::{primary_key, table_configs, tables_in_schema};
pub use pause::{Switched, set_paused};
pub use sql::CHANNEL;
pub use status::{Status, status};
pub use upgrade::VERSION;

use catalog::{check_columns, column_names, covered_tables};
use sql::{TRIGGER_PREFIX, function_sql, trigger_sql};
use upgrade::{installed_version, stored_specs, version_1_specs};

const INSTALL_SQL: &str = include_str!("../../sql/install.sql");

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

/// Generates a table's capture function, attaches its triggers and records
/// its options; returns its key columns.
pub(super) async fn cover(
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
    pause::keep_paused(&tx).await?;
    tx.commit().await.map_err(pg("committing the install"))?;
    Ok(Installed {
        tables: installed,
        refreshed,
        previous_version,
        warnings,
    })
}

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
