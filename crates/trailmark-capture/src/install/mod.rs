//! Installing, inspecting and removing capture in the application database.

use tokio_postgres::Client;

use crate::table::{TableSpec, ident};
use crate::{Error, pg};

mod catalog;
mod pause;
mod role;
mod sql;
mod status;
mod upgrade;
mod wal;

pub use catalog::{primary_key, table_configs, tables_in_schema};
pub use pause::{Switched, set_paused};
pub use role::grant_drainer;
pub use sql::CHANNEL;
pub use status::{OutboxBacklog, Status, outbox_backlog, status};
pub use upgrade::{VERSION, refuse_newer};
pub use wal::{
    CREATE_PREFIX, END_PREFIX, LargeTransactions, LargeTransactionsSeen, MESSAGE_PREFIX, Mode,
    PUBLICATION, REWRITE_PREFIX, SLOT, SWITCH_PREFIX, SlotStatus, TRUNCATE_PREFIX, installed_mode,
    large_transactions, slot_moved, slot_moved_gap, slot_name, slot_status, streams_in_progress,
    wal_level,
};

use catalog::{check_columns, check_key, covered_tables, excluded_now, uncovered_in_whole_schemas};
use sql::set_context_sql;
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
    /// The mode installed, and why (asked for, kept, or chosen by
    /// `wal_level`).
    pub mode: Mode,
    pub mode_reason: String,
}

/// Records a table's options and attaches capture as the mode needs
/// (`trailmark.attach_capture`): in trigger mode its capture function and
/// the triggers on it and its partitions; in WAL mode none of them (the
/// publication covers the table) but a partitioned table's TRUNCATE
/// triggers. Returns its key columns.
pub(super) async fn cover(
    tx: &tokio_postgres::Transaction<'_>,
    table: &TableSpec,
    mode: Mode,
) -> Result<Vec<String>, Error> {
    let pk = primary_key(tx, table).await?;
    let attnums = check_columns(tx, table).await?;
    check_key(tx, table).await?;
    let (oid, unlogged): (u32, bool) = tx
        .query_one(
            "SELECT c.oid, c.relpersistence = 'u' FROM pg_class c WHERE c.oid = $1::text::regclass",
            &[&table.quoted()],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .map_err(pg(format!("looking up {table}")))?;
    if unlogged && mode == Mode::Wal {
        return Err(Error::BadOption(format!(
            "{table} is unlogged: PostgreSQL writes no WAL for its changes, so WAL mode cannot capture them. Make it logged (ALTER TABLE {table} SET LOGGED), leave it out (name the tables with --tables instead of --all), or install with --mode trigger"
        )));
    }
    // The soft-delete and name columns by number too, so a rename of
    // either is followed (trailmark.follow_option_columns).
    tx.execute(
            "INSERT INTO trailmark.tables (schema_name, table_name, key_columns, exclude, exclude_attnums, soft_delete, resource_type, name_column, generated_attnums, relid,
                                           soft_delete_attnum, name_attnum)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9,
                     (SELECT attnum FROM pg_attribute WHERE attrelid = $9 AND attname::text = $6::text AND NOT attisdropped),
                     (SELECT attnum FROM pg_attribute WHERE attrelid = $9 AND attname::text = $8::text AND NOT attisdropped))
             ON CONFLICT (schema_name, table_name) DO UPDATE SET key_columns = excluded.key_columns,
                 exclude = excluded.exclude, exclude_attnums = excluded.exclude_attnums,
                 soft_delete = excluded.soft_delete, resource_type = excluded.resource_type,
                 name_column = excluded.name_column, generated_attnums = NULL,
                 relid = excluded.relid, soft_delete_attnum = excluded.soft_delete_attnum,
                 name_attnum = excluded.name_attnum",
            &[&table.schema, &table.table, &pk, &table.exclude, &attnums, &table.soft_delete, &table.resource_type, &table.name_column, &oid],
        )
        .await
        .map_err(pg(format!("recording the options of {table}")))?;
    // From the options just recorded, for the mode `in_transaction`
    // recorded first (the generator is SQL, so that the event trigger can
    // run it too).
    tx.execute("SELECT trailmark.attach_capture($1)", &[&oid])
        .await
        .map_err(pg(format!("attaching capture to {table}")))?;
    Ok(pk)
}

/// Installs (or upgrades) capture and attaches it to `tables`, in one
/// transaction: either every table is covered or nothing changed. Tables
/// covered before keep their stored options unless named again (then the
/// options given replace them) and get their functions regenerated, so
/// running `install` after upgrading Trailmark upgrades every table. Running
/// it again with the same tables and options changes nothing.
///
/// `mode` (`None`: keep the installed one; on a fresh install, WAL where
/// `wal_level` is `logical`, else triggers) chooses how changes are captured.
/// Switching modes locks the covered tables (writes wait) and needs the old
/// mode's backlog empty, so no change is captured twice or lost: trigger →
/// WAL waits up to 30 s for a running drainer to empty the outbox; WAL →
/// trigger needs the drainer stopped and the slot drained.
pub async fn install(
    client: &mut Client,
    tables: &[TableSpec],
    mode: Option<Mode>,
) -> Result<Installed, Error> {
    let level = wal::wal_level(&*client).await?;
    let previous_mode = wal::installed_mode(&*client).await?;
    let (mode, mode_reason) = choose_mode(mode, previous_mode, &level)?;
    let switching = previous_mode.is_some_and(|m| m != mode)
        || (previous_mode.is_none()
            && mode == Mode::Wal
            && installed_version(&*client).await?.is_some());
    let (made_publication, made_slot) = if mode == Mode::Wal {
        // Before the transaction: a slot cannot be created by one that has
        // written, and the publication it decodes must exist before it. It
        // captures what commits once the publication lists the tables.
        let publication = wal::ensure_publication(client).await?;
        (publication, wal::ensure_slot(client).await?)
    } else {
        (false, false)
    };
    let installed = in_transaction(client, tables, mode, switching, made_slot).await;
    if installed.is_err() {
        // A refused install leaves nothing: not a slot keeping the server's
        // WAL for a drainer that will never come, nor its publication.
        // What an earlier install made stays. (Best effort: the refusal is
        // what the operator must read.)
        if made_slot {
            let _ = wal::drop_slot(&*client).await;
        }
        if made_publication {
            let _ = client.batch_execute(&wal::drop_publication()).await;
        }
    }
    let (installed, refreshed, previous_version, warnings) = installed?;
    Ok(Installed {
        tables: installed,
        refreshed,
        previous_version,
        warnings,
        mode,
        mode_reason,
    })
}

/// What [`install`] does in its transaction: the tables covered, how many
/// of them were covered before, the version installed before, warnings.
type Covered = (
    Vec<(TableSpec, Vec<String>)>,
    usize,
    Option<u32>,
    Vec<String>,
);

/// The install's transaction (see [`install`]); for a switch from WAL
/// mode, the slot is dropped after it committed.
async fn in_transaction(
    client: &mut Client,
    tables: &[TableSpec],
    mode: Mode,
    switching: bool,
    made_slot: bool,
) -> Result<Covered, Error> {
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
    let previous_version = refuse_newer(&tx).await?;
    let (before, mut warnings) = covered_before(&tx, tables, previous_version).await?;
    let refreshed = before.len();
    let mut all: Vec<&TableSpec> = Vec::new();
    for table in tables.iter().chain(&before) {
        if !all.iter().any(|t| t.is_table(table)) {
            all.push(table);
        }
    }
    if switching {
        handover(&tx, &all, mode).await?;
    }
    // Recorded before the tables are covered: trailmark.attach_capture
    // makes what the mode needs.
    tx.execute(
        "UPDATE trailmark.meta SET value = $1 WHERE key = 'mode'",
        &[&mode.as_str()],
    )
    .await
    .map_err(pg("recording the capture mode"))?;
    // The event triggers the mode needs (capture version 16): made here
    // once, the mode recorded (install.sql only defines the function).
    tx.batch_execute("SELECT trailmark.make_event_triggers()")
        .await
        .map_err(pg("making capture's event triggers"))?;
    let mut installed = Vec::new();
    for table in all {
        let pk = cover(&tx, table, mode).await?;
        installed.push((table.clone(), pk));
    }
    for table in tables {
        warnings.extend(secret_like(&tx, table).await?);
    }
    for (table, _) in &installed {
        warnings.extend(status::children_uncovered(&tx, table, mode == Mode::Wal).await?);
    }
    if mode == Mode::Wal {
        warnings.extend(wal::record_slot_position(&tx, made_slot).await?);
    }
    finish(tx, &installed, mode).await?;
    if mode == Mode::Trigger && switching {
        // The handover found the slot drained, with every covered table
        // locked until the triggers took over.
        wal::drop_slot(&*client).await?;
    }
    Ok((installed, refreshed, previous_version, warnings))
}

/// The captured columns of a table whose names say they may hold a secret
/// (`trailmark.secret_like`, the rule the event trigger warns by too), each
/// a warning saying how to exclude it: excluded columns never leave the
/// database, and a team covering a schema whole (`--all`) may not have
/// looked at every column.
async fn secret_like(
    tx: &tokio_postgres::Transaction<'_>,
    table: &TableSpec,
) -> Result<Vec<String>, Error> {
    let columns: Vec<String> = tx
        .query_one(
            "SELECT trailmark.secret_like($1::text::regclass, $2)",
            &[&table.quoted(), &table.exclude],
        )
        .await
        .map_err(pg(format!("reading the columns of {table}")))?
        .get(0);
    Ok(columns
        .iter()
        .map(|c| {
            let column = table.column(c);
            format!(
                "{column} is captured, and its name says it may hold a secret (a password, a token, a key): if it does, name the table again with --exclude '{column}'"
            )
        })
        .collect())
}

/// The mode to install and why: the one asked for, else the one installed,
/// else WAL where `wal_level` is logical. WAL mode without logical WAL is
/// refused, naming the setting.
fn choose_mode(
    asked: Option<Mode>,
    installed: Option<Mode>,
    level: &str,
) -> Result<(Mode, String), Error> {
    let (mode, reason) = match (asked, installed) {
        (Some(m), _) => (m, "asked for (--mode)".to_owned()),
        (None, Some(m)) => (m, "kept: the mode installed before".to_owned()),
        (None, None) if level == "logical" => (
            Mode::Wal,
            "wal_level is logical, so the WAL is decoded: the application's transactions write nothing more".to_owned(),
        ),
        (None, None) => (
            Mode::Trigger,
            format!("wal_level is {level}, not logical: triggers write an outbox (set wal_level = logical and restart PostgreSQL for WAL mode)"),
        ),
    };
    if mode == Mode::Wal && level != "logical" {
        return Err(Error::BadOption(format!(
            "--mode wal needs wal_level = logical, and this server has {level}: set wal_level = logical in postgresql.conf and restart PostgreSQL, or install with --mode trigger"
        )));
    }
    Ok((mode, reason))
}

/// Creates or upgrades schema `trailmark` and answers the tables covered
/// before and not named now (with their stored options; those dropped since
/// forgotten), and what the operator should know.
async fn covered_before(
    tx: &tokio_postgres::Transaction<'_>,
    tables: &[TableSpec],
    previous_version: Option<u32>,
) -> Result<(Vec<TableSpec>, Vec<String>), Error> {
    let before = match previous_version {
        Some(1) => version_1_specs(tx).await?,
        _ => Vec::new(),
    };
    let fresh = crate::ids::fresh(tx).await?;
    tx.batch_execute(INSTALL_SQL)
        .await
        .map_err(pg("creating schema trailmark"))?;
    // Here, not by the first drainer: a drainer's role need not be allowed
    // to create in the schema.
    tx.batch_execute(crate::seen::TABLE)
        .await
        .map_err(pg("creating trailmark.seen_checkpoints"))?;
    tx.execute(
        "INSERT INTO trailmark.meta (key, value) VALUES ('version', $1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&VERSION.to_string()],
    )
    .await
    .map_err(pg("recording the capture version"))?;
    if fresh {
        // Nothing was ever sent: every change gets an ordered id. (An
        // upgrade leaves it to the first drainer of this version, which
        // starts only once the earlier drainer has stopped.)
        crate::ids::record(tx, true).await?;
    }
    // Covered tables renamed since (where no event trigger followed them)
    // keep their options under their new names.
    let mut warnings: Vec<String> = tx
        .query("SELECT trailmark.follow_renames(NULL)", &[])
        .await
        .map_err(pg("following covered tables through renames"))?
        .iter()
        .map(|r| {
            format!(
                "{} since install: its options follow it",
                r.get::<_, String>(0)
            )
        })
        .collect();
    // And renamed soft-delete and name columns, by number.
    warnings.extend(
        tx.query("SELECT trailmark.follow_option_columns(NULL)", &[])
            .await
            .map_err(pg("following renamed soft-delete and name columns"))?
            .iter()
            .map(|r| format!("{} since install: followed", r.get::<_, String>(0))),
    );
    let mut before = if previous_version == Some(1) {
        before
    } else {
        stored_specs(tx).await?
    };
    for given in tables {
        if let Some(old) = before.iter().find(|s| s.is_table(given)) {
            for column in old.exclude.iter().filter(|c| !given.exclude.contains(c)) {
                warnings.push(format!(
                    "{given}.{column} is no longer excluded: its values will be captured from now on"
                ));
            }
        }
    }
    before.retain(|s| !tables.iter().any(|t| t.is_table(s)));
    // A table dropped since it was covered leaves the list.
    let mut gone = Vec::new();
    for table in &before {
        if let Err(Error::NoSuchTable(_)) = primary_key(tx, table).await {
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
    follow_exclusions(tx, &mut before, &mut warnings).await?;
    // Tables made since in a schema covered whole are covered now.
    for (spec, schema) in uncovered_in_whole_schemas(tx).await? {
        if !tables.iter().any(|t| t.is_table(&spec)) {
            warnings.push(format!(
                "{spec} was made in schema {schema} (covered whole: --all) since install: it is covered now"
            ));
            before.push(spec);
        }
    }
    Ok((before, warnings))
}

/// Stored exclusions follow their columns through renames; one whose
/// column was dropped stays under its name while a column of that name
/// exists (added again: excluded by name meanwhile), else is forgotten,
/// with a warning.
async fn follow_exclusions(
    tx: &tokio_postgres::Transaction<'_>,
    before: &mut [TableSpec],
    warnings: &mut Vec<String>,
) -> Result<(), Error> {
    for table in before {
        let attnums: Option<Vec<i16>> = tx
            .query_opt(
                "SELECT exclude_attnums FROM trailmark.tables WHERE schema_name = $1 AND table_name = $2",
                &[&table.schema, &table.table],
            )
            .await
            .map_err(pg(format!("reading the options of {table}")))?
            .and_then(|r| r.get(0));
        if let Some(attnums) = attnums {
            let mut exclude = Vec::new();
            for column in excluded_now(tx, table, &table.exclude, &attnums).await? {
                match column.now {
                    Some(name) => exclude.push(name),
                    None if column.name_taken => exclude.push(column.recorded),
                    None => warnings.push(format!(
                        "{table}.{} was dropped: it is no longer excluded (a column added again under its name would be captured: give --exclude again for it)",
                        column.recorded
                    )),
                }
            }
            table.exclude = exclude;
        }
    }
    Ok(())
}

/// Records `schemas` as covered whole (`install --all`, after [`install`]
/// covered their tables): a table made in one later is covered at once by
/// the event trigger in WAL mode, else by the next install, and named by
/// `status` until then.
pub async fn cover_whole_schemas(client: &Client, schemas: &[String]) -> Result<(), Error> {
    client
        .execute(
            "INSERT INTO trailmark.schemas (schema_name) SELECT unnest($1::text[])
             ON CONFLICT (schema_name) DO NOTHING",
            &[&schemas],
        )
        .await
        .map_err(pg("recording the schemas covered whole"))?;
    Ok(())
}

/// The last of an install, in its transaction: the publication (WAL) or
/// none (triggers), `set_context` for the mode, the mode recorded; commits.
async fn finish(
    tx: tokio_postgres::Transaction<'_>,
    installed: &[(TableSpec, Vec<String>)],
    mode: Mode,
) -> Result<(), Error> {
    match mode {
        Mode::Wal => wal::publish(&tx, installed).await?,
        Mode::Trigger => {
            tx.batch_execute(&wal::drop_publication())
                .await
                .map_err(pg("dropping the publication"))?;
        }
    }
    tx.batch_execute(&set_context_sql(mode == Mode::Wal))
        .await
        .map_err(pg("creating trailmark.set_context"))?;
    // (A paused table's triggers were made disabled: trailmark.attach_capture.)
    tx.commit().await.map_err(pg("committing the install"))
}

/// Switching modes: with every covered table locked against writes (until
/// the install commits), the old mode's backlog must be empty, so each
/// change is captured by exactly one mode.
async fn handover(
    tx: &tokio_postgres::Transaction<'_>,
    tables: &[&TableSpec],
    to: Mode,
) -> Result<(), Error> {
    if !tables.is_empty() {
        let names: Vec<String> = tables.iter().map(|t| t.quoted()).collect();
        tx.batch_execute(&format!(
            "LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE",
            names.join(", ")
        ))
        .await
        .map_err(pg("locking the covered tables for the switch of mode"))?;
    }
    match to {
        Mode::Wal => {
            // A drainer running elsewhere empties the outbox; writes wait.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            loop {
                let pending: i64 = tx
                    .query_one("SELECT count(*) FROM trailmark.outbox", &[])
                    .await
                    .map_err(pg("counting the outbox"))?
                    .get(0);
                if pending == 0 {
                    return Ok(());
                }
                if std::time::Instant::now() > deadline {
                    return Err(Error::BadOption(format!(
                        "switching to WAL mode needs the outbox drained, and {pending} changes still wait after 30 s: run the drainer (`trailmark capture pg run … --once`) and install again"
                    )));
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
        Mode::Trigger => {
            let pending = wal::pending_in_slot(tx).await?;
            if pending > 0 {
                return Err(Error::BadOption(format!(
                    "switching to trigger mode needs the replication slot drained, and {pending} changes wait in it: run the drainer (`trailmark capture pg run … --once`), stop it, and install again"
                )));
            }
            Ok(())
        }
    }
}

/// What an uninstall removed.
#[derive(Debug)]
pub struct Uninstalled {
    pub tables: Vec<String>,
    /// Changes still in the outbox that were dropped with it.
    pub dropped: i64,
}

/// What [`uninstall`] leaves behind: the one function applications call.
/// Every stack is told to run `SELECT trailmark.set_context(...)` in each
/// transaction (docs/integrations.md); dropped with the rest, it would fail
/// every transaction of a running application (the Python integrations ask
/// once per connection whether it exists, and a pooled connection keeps
/// asking no more). A no-op in its place keeps them working; install
/// replaces it; `purge` removes it.
pub const SET_CONTEXT_STUB: &str = "CREATE SCHEMA trailmark;
GRANT USAGE ON SCHEMA trailmark TO PUBLIC;
CREATE FUNCTION trailmark.set_context(context jsonb) RETURNS void
LANGUAGE plpgsql AS $trailmark$ BEGIN NULL; END $trailmark$;
COMMENT ON SCHEMA trailmark IS 'left by trailmark capture pg uninstall: set_context(jsonb) alone, a no-op, so that applications calling it keep working; trailmark capture pg uninstall --purge removes it';";

/// Removes capture. Changes not yet drained are never dropped silently:
/// with some in the outbox this refuses unless `drop_pending` is given.
/// `trailmark.set_context(jsonb)` stays, a no-op ([`SET_CONTEXT_STUB`]),
/// unless `purge`; with `purge` on a database where only that no-op is
/// left, it is removed.
pub async fn uninstall(
    client: &mut Client,
    drop_pending: bool,
    purge: bool,
) -> Result<Uninstalled, Error> {
    let tx = client
        .transaction()
        .await
        .map_err(pg("starting the uninstall transaction"))?;
    if installed_version(&tx).await?.is_none() {
        let stub = tx
            .query_one(
                "SELECT to_regprocedure('trailmark.set_context(jsonb)') IS NOT NULL",
                &[],
            )
            .await
            .map_err(pg("looking for trailmark.set_context"))?
            .get::<_, bool>(0);
        if !(purge && stub) {
            return Err(Error::NotInstalled);
        }
        // The schema goes only if the no-op was all it held.
        tx.batch_execute(
            "DROP FUNCTION trailmark.set_context(jsonb); DROP SCHEMA trailmark RESTRICT",
        )
        .await
        .map_err(pg(
            "dropping the no-op trailmark.set_context and schema trailmark",
        ))?;
        tx.commit().await.map_err(pg("committing the uninstall"))?;
        return Ok(Uninstalled {
            tables: Vec::new(),
            dropped: 0,
        });
    }
    // No drainer or trigger may add or take rows while we count and drop.
    tx.batch_execute("LOCK TABLE trailmark.outbox IN ACCESS EXCLUSIVE MODE")
        .await
        .map_err(pg("locking the outbox"))?;
    let mut pending: i64 = tx
        .query_one("SELECT count(*) FROM trailmark.outbox", &[])
        .await
        .map_err(pg("counting the outbox"))?
        .get(0);
    let slot = wal::slot_exists(&tx).await?;
    if slot {
        pending += wal::pending_in_slot(&tx).await?;
    }
    if pending > 0 && !drop_pending {
        return Err(Error::PendingChanges(pending));
    }
    // The capture triggers, on the tables and their partitions, go with
    // the functions they call (DROP SCHEMA ... CASCADE).
    let mut tables = covered_tables(&tx).await?;
    for table in wal::published_tables(&tx).await? {
        if !tables.contains(&table) {
            tables.push(table);
        }
    }
    tx.batch_execute(&wal::own_ddl(&format!(
        "DROP PUBLICATION IF EXISTS {}; DROP SCHEMA IF EXISTS trailmark CASCADE",
        ident(wal::PUBLICATION)
    )))
    .await
    .map_err(pg("dropping schema trailmark"))?;
    if !purge {
        tx.batch_execute(SET_CONTEXT_STUB)
            .await
            .map_err(pg("leaving trailmark.set_context as a no-op"))?;
    }
    tx.commit().await.map_err(pg("committing the uninstall"))?;
    if slot {
        wal::drop_slot(&*client).await?;
    }
    Ok(Uninstalled {
        tables: tables.into_iter().map(|t| t.to_string()).collect(),
        dropped: pending,
    })
}
