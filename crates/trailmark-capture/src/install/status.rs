//! What `capture pg status` reports: the version, covered tables, outbox depth and age, the last drain, and drift from the tables as installed.

use tokio_postgres::GenericClient;

use crate::{Error, pg};

use super::catalog::{check_columns, covered_or_paused, covered_tables, excluded_now, primary_key};
use super::upgrade::{VERSION, stored_specs};

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
    /// Tables whose capture is paused, with since when (UTC).
    pub paused: Vec<(String, String)>,
}

/// What goes unhandled while the event trigger that keeps capture current
/// through schema changes (`trailmark_republish`) is missing (an install by
/// a role that is not a superuser) or disabled: in both modes, tables made
/// again under a covered name or in a schema covered whole, renames, and
/// the capture triggers of partitions made later under a partitioned table
/// (`partitioned`); in WAL mode (`wal`) also the column lists of tables with
/// excluded columns (`excluding`) and partitions' identity.
async fn without_event_trigger(
    client: &impl GenericClient,
    excluding: &[String],
    partitioned: &[String],
    wal: bool,
) -> Result<Option<String>, Error> {
    let state = match event_trigger_state(client, "trailmark_republish").await? {
        None => return Ok(None),
        Some(MISSING) => "missing (as after an install by a role that is not a superuser)",
        Some(state) => state,
    };
    let mut unhandled = vec![
        "tables made again under a covered name or made in a schema covered whole are not captured, covered tables renamed lose their options".to_owned(),
    ];
    if !excluding.is_empty() {
        unhandled.push(format!(
            "columns added later to {} are not captured",
            excluding.join(", ")
        ));
    }
    if !partitioned.is_empty() {
        unhandled.push(format!(
            "partitions made later under {} get no capture triggers{}",
            partitioned.join(", "),
            if wal { " and log no old values" } else { "" }
        ));
    }
    Ok(Some(format!(
        "event trigger trailmark_republish is {state}: {} until install runs again; install once as a superuser keeps them current",
        unhandled.join(", and ")
    )))
}

/// Trigger mode: how a table's capture triggers (unless it is `paused`) and
/// its capture function (the generated columns it leaves out, `recorded`
/// at install) differ from what install made, each a line of drift.
async fn trigger_drift(
    client: &impl GenericClient,
    spec: &crate::TableSpec,
    paused: bool,
    recorded: Option<&[i16]>,
) -> Result<Vec<String>, Error> {
    let mut lines = Vec::new();
    if !paused {
        lines.extend(triggers_not_as_installed(client, spec).await?);
    }
    if let Some(recorded) = recorded {
        lines.extend(generated_since(client, spec, recorded).await?);
    }
    Ok(lines.into_iter().map(|l| format!("{spec}: {l}")).collect())
}

/// In trigger mode, the capture triggers of a table (not paused: the
/// caller asks only then) not enabled as install enables them
/// (`trailmark.enabled_as`: the statement-level ones ALWAYS,
/// `trailmark_replica` REPLICA), if any: disabled by hand (`ALTER TABLE ...
/// DISABLE TRIGGER`, which a pause does on the record), or enabled so that
/// a session with `session_replication_role = replica` skips them (`ENABLE
/// TRIGGER`).
async fn triggers_not_as_installed(
    client: &impl GenericClient,
    spec: &crate::TableSpec,
) -> Result<Option<String>, Error> {
    let found: Option<String> = client
        .query_one(
            "SELECT string_agg(CASE WHEN t.tgrelid = to_regclass($1) THEN ''
                            ELSE t.tgrelid::regclass::text || ' ' END
                       || t.tgname::text || CASE t.tgenabled WHEN 'D' THEN ' disabled'
                       WHEN 'O' THEN ' skipped by sessions with session_replication_role = replica'
                       WHEN 'R' THEN ' fired by such sessions only'
                       ELSE ' fired by every session' END, ', '
                       ORDER BY t.tgrelid <> to_regclass($1), t.tgrelid::regclass::text, t.tgname)
             FROM pg_trigger t
             WHERE t.tgrelid IN (SELECT trailmark.capture_members(to_regclass($1)))
               AND t.tgname LIKE 'trailmark\\_%' AND NOT t.tgisinternal
               AND t.tgenabled <> trailmark.enabled_as(t.tgname::text)",
            &[&spec.quoted()],
        )
        .await
        .map_err(pg(format!("reading the capture triggers of {spec}")))?
        .get(0);
    Ok(found.map(|list| {
        format!(
            "capture triggers not enabled as install enables them ({list}): changes they miss are not captured (to stop capture on the record, use capture pg pause): run install again"
        )
    }))
}

/// In trigger mode, how a table's stored generated columns differ from
/// those its capture function leaves out (`recorded` at install), if they
/// do: one added since is captured by trigger mode (WAL mode never sends
/// it), one whose expression was dropped is still left out.
async fn generated_since(
    client: &impl GenericClient,
    spec: &crate::TableSpec,
    recorded: &[i16],
) -> Result<Option<String>, Error> {
    let rows = client
        .query(
            "WITH g AS (SELECT trailmark.generated_attnums(to_regclass($1)) AS now)
             SELECT a.attname::text, a.attnum = ANY (g.now)
             FROM pg_attribute a, g
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
               AND (a.attnum = ANY (g.now)) <> (a.attnum = ANY ($2))
             ORDER BY a.attnum",
            &[&spec.quoted(), &recorded],
        )
        .await
        .map_err(pg(format!("reading the generated columns of {spec}")))?;
    let names = |generated: bool| -> Vec<String> {
        rows.iter()
            .filter(|r| r.get::<_, bool>(1) == generated)
            .map(|r| r.get(0))
            .collect()
    };
    let (added, dropped) = (names(true), names(false));
    let mut parts = Vec::new();
    if !added.is_empty() {
        parts.push(format!(
            "generated columns made since install ({}) are captured by trigger mode (WAL mode never sends them)",
            added.join(", ")
        ));
    }
    if !dropped.is_empty() {
        parts.push(format!(
            "columns no longer generated ({}) are still left out",
            dropped.join(", ")
        ));
    }
    Ok((!parts.is_empty()).then(|| format!("{}: run install again", parts.join("; "))))
}

/// How a table's excluded columns changed since install (each a line of
/// drift): renamed ones (still excluded, by number) and dropped ones (a
/// column added under such a name is excluded by name).
async fn excluded_since(
    client: &impl GenericClient,
    spec: &crate::TableSpec,
    attnums: &[i16],
) -> Result<Vec<String>, Error> {
    let name = spec.to_string();
    let mut drift = Vec::new();
    let excluded = excluded_now(client, spec, &spec.exclude, attnums).await?;
    let renamed: Vec<String> = excluded
        .iter()
        .filter_map(|c| {
            let now = c.now.as_ref().filter(|now| **now != c.recorded)?;
            Some(format!("{} is now {now}", c.recorded))
        })
        .collect();
    if !renamed.is_empty() {
        drift.push(format!(
            "{name}: excluded columns renamed since install ({}), still excluded: run install again to record the names",
            renamed.join(", ")
        ));
    }
    let dropped: Vec<&str> = excluded
        .iter()
        .filter(|c| c.now.is_none())
        .map(|c| c.recorded.as_str())
        .collect();
    if !dropped.is_empty() {
        drift.push(format!(
            "{name}: excluded columns dropped since install ({}); a column added under such a name is excluded too: run install again to record it",
            dropped.join(", ")
        ));
    }
    Ok(drift)
}

/// A table's soft-delete and name columns that no longer exist (each a
/// line of drift): they are read from the rows by name, so renamed or
/// dropped they mark and name nothing.
async fn option_columns_gone(
    client: &impl GenericClient,
    spec: &crate::TableSpec,
) -> Result<Vec<String>, Error> {
    let name = spec.to_string();
    let mut drift = Vec::new();
    for (column, what, soft_delete) in [
        (&spec.soft_delete, "soft-delete column", true),
        (&spec.name_column, "name column", false),
    ] {
        let Some(column) = column else { continue };
        let mut only = crate::TableSpec {
            exclude: Vec::new(),
            soft_delete: None,
            name_column: None,
            ..spec.clone()
        };
        if soft_delete {
            only.soft_delete = Some(column.clone());
        } else {
            only.name_column = Some(column.clone());
        }
        if let Err(Error::NoSuchColumn { .. }) = check_columns(client, &only).await {
            drift.push(format!(
                "{name}: {what} {column:?} no longer exists: run install again (it follows a rename), or name the table again if it was dropped"
            ));
        }
    }
    Ok(drift)
}

/// The partitions of a covered table (or the table) without all the
/// capture triggers its mode needs (`trailmark.uncaptured_members`: made
/// while the event trigger was absent, or it warned of a failure, or a
/// trigger dropped without it), a line of drift if any; and whether the
/// table has partitions.
async fn members_uncaptured(
    client: &impl GenericClient,
    spec: &crate::TableSpec,
) -> Result<(Option<String>, bool), Error> {
    let row = client
        .query_one(
            "SELECT (SELECT string_agg(m::text, ', ') FROM trailmark.uncaptured_members(to_regclass($1)) m),
                    EXISTS (SELECT FROM pg_partition_tree(to_regclass($1)) p WHERE p.level > 0)",
            &[&spec.quoted()],
        )
        .await
        .map_err(pg(format!("reading the capture triggers of the partitions of {spec}")))?;
    let line = row.get::<_, Option<String>>(0).map(|members| {
        format!(
            "{spec}: capture triggers missing on {members} (a partition made while the event trigger was absent, or a trigger dropped): statements that name them (a TRUNCATE of one, in WAL mode) are not captured until install runs again"
        )
    });
    Ok((line, row.get(1)))
}

/// A covered table's inheritance children that are not covered
/// (`trailmark.uncovered_children`), as a line: a warning of install's and
/// a line of drift.
pub(super) async fn children_uncovered(
    client: &impl GenericClient,
    spec: &crate::TableSpec,
    wal: bool,
) -> Result<Option<String>, Error> {
    let children: Option<String> = client
        .query_one(
            "SELECT string_agg(c::text, ', ') FROM trailmark.uncovered_children(to_regclass($1)) c",
            &[&spec.quoted()],
        )
        .await
        .map_err(pg(format!("reading the inheritance children of {spec}")))?
        .get(0);
    let when = if wal {
        String::new()
    } else {
        format!(" when a statement names them (one naming {spec} captures them as its rows)")
    };
    Ok(children.map(|children| {
        format!(
            "{spec}: inheritance children not covered ({children}): changes to their rows are not captured{when}; cover them too (name them in install --tables)"
        )
    }))
}

/// In WAL mode, how a table's replica identity, and its partitions', differ
/// from the one install gave it (each a line of drift).
async fn identity_drift(
    client: &impl GenericClient,
    spec: &crate::TableSpec,
) -> Result<Vec<String>, Error> {
    let name = spec.to_string();
    let mut drift = Vec::new();
    let wanted = spec
        .replica_identity
        .unwrap_or(crate::ReplicaIdentity::Full);
    if super::wal::identity_kept(client, spec, wanted).await? == Some(false) {
        drift.push(format!(
            "{name}: its replica identity is no longer the one install gave it ({}): changed since (ALTER TABLE ... REPLICA IDENTITY), its updates and deletes no longer log the old values install chose (and with NOTHING PostgreSQL refuses them on a published table): run install again",
            wanted.as_str()
        ));
    }
    // Partitions made since install have PostgreSQL's default identity
    // (the key), not the one install gave the table.
    let partitions = super::wal::partitions(client, spec, wanted).await?;
    let unlike: Vec<String> = partitions
        .into_iter()
        .filter(|&(_, like)| !like)
        .map(|(partition, _)| partition)
        .collect();
    if !unlike.is_empty() {
        drift.push(format!(
            "{name}: partitions whose replica identity is not the table's ({}): made since install while the event trigger was absent (or it warned of a failure), their updates carry no old values in WAL mode: run install again",
            unlike.join(", ")
        ));
    }
    Ok(drift)
}

/// What no longer matches the tables as installed.
pub(super) async fn drift(
    client: &impl GenericClient,
    tables: &[String],
) -> Result<Vec<String>, Error> {
    let mut drift = Vec::new();
    let wal = super::wal::installed_mode(client).await? == Some(super::wal::Mode::Wal);
    // Covered tables the event trigger keeps current in WAL mode.
    let (mut excluding, mut partitioned) = (Vec::new(), Vec::new());
    // Covered tables renamed with no event trigger to follow them.
    let renamed: Vec<(String, String)> = client
        .query(
            "SELECT schema_name, table_name, now_schema, now_table FROM trailmark.renamed(NULL)",
            &[],
        )
        .await
        .map_err(pg("looking for covered tables renamed"))?
        .iter()
        .map(|r| {
            let name = |i: usize, j: usize| {
                crate::TableSpec::named(r.get::<_, String>(i), r.get::<_, String>(j)).to_string()
            };
            (name(0, 1), name(2, 3))
        })
        .collect();
    for spec in stored_specs(client).await? {
        let name = spec.to_string();
        if wal && !spec.exclude.is_empty() {
            excluding.push(name.clone());
        }
        if let Some((_, now)) = renamed.iter().find(|(was, _)| *was == name) {
            drift.push(format!(
                "{name}: renamed {now} since install, and no event trigger followed it: the events of its changes carry none of its options (key, alias, soft delete, name column) until install runs again"
            ));
            continue;
        }
        let row = client
            .query_one(
                "SELECT key_columns, exclude_attnums, generated_attnums, paused_at IS NOT NULL
                 FROM trailmark.tables WHERE schema_name = $1 AND table_name = $2",
                &[&spec.schema, &spec.table],
            )
            .await
            .map_err(pg("reading trailmark.tables"))?;
        let (stored, attnums): (Vec<String>, Vec<i16>) = (row.get(0), row.get(1));
        let generated: Option<Vec<i16>> = row.get(2);
        let paused: bool = row.get(3);
        match primary_key(client, &spec).await {
            Err(Error::NoSuchTable(_)) => {
                drift.push(format!("{name}: the table no longer exists"));
                continue;
            }
            Err(e) => return Err(e),
            // It exists, but uncovered (dropped and made again, say): what
            // else differs, install again mends too.
            Ok(_) if !tables.contains(&name) => {
                drift.push(format!(
                    "{name}: listed as covered, but its changes are not captured: {} (was it dropped and made again?): run install again",
                    if wal {
                        "it is not in the publication"
                    } else {
                        "its triggers are gone"
                    }
                ));
                continue;
            }
            Ok(pk) if pk != stored => drift.push(format!(
                "{name}: primary key is now ({}) but capture was installed with ({}): run install again",
                pk.join(", "),
                stored.join(", ")
            )),
            Ok(_) => {}
        }
        drift.extend(excluded_since(client, &spec, &attnums).await?);
        if !wal {
            drift.extend(trigger_drift(client, &spec, paused, generated.as_deref()).await?);
        }
        if let Some(missing) = unpublished(client, &spec.schema, &spec.table).await? {
            drift.push(format!(
                "{name}: columns not captured ({missing}): the publication's column list predates them: run install again (as a superuser, install also keeps it current)"
            ));
        }
        if wal {
            drift.extend(identity_drift(client, &spec).await?);
        }
        let (line, has_partitions) = members_uncaptured(client, &spec).await?;
        // (In trigger mode a paused table's resume makes them.)
        drift.extend(line.filter(|_| wal || !paused));
        if has_partitions {
            partitioned.push(name.clone());
        }
        drift.extend(option_columns_gone(client, &spec).await?);
        drift.extend(children_uncovered(client, &spec, wal).await?);
    }
    for (spec, schema) in super::catalog::uncovered_in_whole_schemas(client).await? {
        drift.push(format!(
            "{spec}: made since install in schema {schema}, which is covered whole (--all): its changes are not captured until install runs again"
        ));
    }
    drift.extend(ddl_unrecorded(client).await?);
    drift.extend(outbox_unguarded(client).await?);
    if wal {
        drift.extend(wal_drift(client).await?);
    }
    if let Some(line) = without_event_trigger(client, &excluding, &partitioned, wal).await? {
        // First: it says why the lines after it may come to be.
        drift.insert(0, line);
    }
    Ok(drift)
}

/// WAL mode: what differs for the whole database, each a line of drift:
/// the event trigger that releases column lists, the publication's
/// options, the slot's position (capture version 16).
async fn wal_drift(client: &impl GenericClient) -> Result<Vec<String>, Error> {
    let mut drift = Vec::new();
    drift.extend(lists_unreleased(client).await?);
    drift.extend(publication_fault(client).await?);
    drift.extend(slot_moved(client).await?);
    Ok(drift)
}

/// How capture's event trigger `name` differs from what install made
/// (enabled ALWAYS, capture version 16): `None` when it does not,
/// [`MISSING`] when it is gone, else how it is enabled.
async fn event_trigger_state(
    client: &impl GenericClient,
    name: &str,
) -> Result<Option<&'static str>, Error> {
    let enabled: Option<String> = client
        .query_opt(
            "SELECT evtenabled::text FROM pg_event_trigger WHERE evtname = $1",
            &[&name],
        )
        .await
        .map_err(pg(format!("looking for the event trigger {name}")))?
        .map(|row| row.get(0));
    Ok(match enabled.as_deref() {
        None => Some(MISSING),
        Some("A") => None,
        Some("D") => Some("disabled"),
        Some("R") => Some("enabled for replica sessions only"),
        Some(_) => Some("enabled so that sessions with session_replication_role = replica skip it"),
    })
}

/// [`event_trigger_state`] of one that is gone.
const MISSING: &str = "missing";

/// Capture's event triggers that record what DDL does to a covered table's
/// rows, each with what goes unrecorded without it: the rows leaving when
/// a table is dropped (capture version 15), the rows rewritten (version
/// 16).
const RECORDING_EVENT_TRIGGERS: [(&str, &str); 2] = [
    (
        "trailmark_dropped",
        "covered tables and their partitions dropped are not recorded (their rows leave no truncate in the trail)",
    ),
    (
        "trailmark_rewritten",
        "covered tables whose rows DDL rewrites (ALTER COLUMN ... TYPE, ADD COLUMN with a volatile default) are not recorded (no rewrite in the trail)",
    ),
];

/// Each of `RECORDING_EVENT_TRIGGERS` missing (an install by a role that is
/// not a superuser) or disabled, as a line of drift.
async fn ddl_unrecorded(client: &impl GenericClient) -> Result<Vec<String>, Error> {
    let mut lines = Vec::new();
    for (name, unrecorded) in RECORDING_EVENT_TRIGGERS {
        let Some(state) = event_trigger_state(client, name).await? else {
            continue;
        };
        lines.push(format!(
            "event trigger {name} is {state}: {unrecorded} until install runs again; install once as a superuser keeps it current"
        ));
    }
    Ok(lines)
}

/// WAL mode: the replication slot standing past where the drainer last
/// confirmed it (`trailmark.slot_moved`, capture version 16: moved or made
/// again by hand), as a line of drift.
async fn slot_moved(client: &impl GenericClient) -> Result<Option<String>, Error> {
    let slot = super::wal::slot_name(client).await?;
    Ok(super::wal::slot_moved(client, &slot)
        .await?
        .map(|(was, now)| {
            format!(
                "{}; the drainer refuses it until install runs again",
                super::wal::slot_moved_gap(&slot, &was, &now)
            )
        }))
}

/// The changes waiting in the outbox for the drainer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutboxBacklog {
    /// How many (at most the count asked for).
    pub rows: i64,
    /// How long ago the oldest was captured, in seconds (`None`: none waits).
    pub oldest_seconds: Option<f64>,
}

/// The outbox's backlog, its rows counted up to `count_up_to` (all when
/// `None`): what `status` shows, and what `serve` reads into `/metrics`
/// every 10 s. The oldest is the first by id (the primary key: one row
/// read, whatever the backlog; ids are drawn as rows are written, so it is
/// the one written first).
pub async fn outbox_backlog(
    client: &impl GenericClient,
    count_up_to: Option<i64>,
) -> Result<OutboxBacklog, Error> {
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM (SELECT FROM trailmark.outbox LIMIT $1) o),
                    (SELECT extract(epoch FROM clock_timestamp() - captured_at)::float8
                     FROM trailmark.outbox ORDER BY id LIMIT 1)",
            &[&count_up_to],
        )
        .await
        .map_err(pg("reading the outbox"))?;
    Ok(OutboxBacklog {
        rows: row.get(0),
        oldest_seconds: row.get(1),
    })
}

/// The text a capture function that names a fault returns (`fault`:
/// `trailmark.outbox_guard_fault`, `trailmark.publication_fault`, the one
/// rule each for the event trigger and status), if it names one.
async fn fault_of(
    client: &impl GenericClient,
    fault: &str,
    reading: &'static str,
) -> Result<Option<String>, Error> {
    Ok(client
        .query_one(&format!("SELECT trailmark.{fault}()"), &[])
        .await
        .map_err(pg(reading))?
        .get(0))
}

/// The outbox's guard (capture version 17: it refuses an `UPDATE`,
/// `DELETE` or `TRUNCATE` of the outbox by hand) missing or not enabled
/// ALWAYS (the event trigger refuses that too), as a line of drift.
async fn outbox_unguarded(client: &impl GenericClient) -> Result<Option<String>, Error> {
    let fault = fault_of(client, "outbox_guard_fault", "reading the outbox's guard").await?;
    Ok(fault.map(|fault| {
        format!(
            "trailmark.outbox {fault}: its changes not yet drained can be changed or deleted by hand with no trace: run install again"
        )
    }))
}

/// WAL mode: publication `trailmark` renamed or its options changed by hand
/// (the event trigger refuses it from capture version 16), as a line of
/// drift.
async fn publication_fault(client: &impl GenericClient) -> Result<Option<String>, Error> {
    let fault = fault_of(
        client,
        "publication_fault",
        "reading the publication's options",
    )
    .await?;
    Ok(fault.map(|fault| {
        format!(
            "publication trailmark {fault}: changes of the covered tables it does not publish are not captured: run install again"
        )
    }))
}

/// WAL mode: the event trigger that lets a migration change the type of a
/// captured column of a table published with a column list, or drop one
/// without `CASCADE` (capture version 16: `trailmark_release`), missing or
/// disabled while such a table is published, as a line of drift.
async fn lists_unreleased(client: &impl GenericClient) -> Result<Option<String>, Error> {
    let Some(state) = event_trigger_state(client, "trailmark_release").await? else {
        return Ok(None);
    };
    let listed: Option<String> = client
        .query_one(
            "SELECT string_agg(format('%I.%I', n.nspname, c.relname), ', ' ORDER BY n.nspname, c.relname)
             FROM pg_publication p
             JOIN pg_publication_rel r ON r.prpubid = p.oid
             JOIN pg_class c ON c.oid = r.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE p.pubname = $1 AND r.prattrs IS NOT NULL",
            &[&super::wal::PUBLICATION],
        )
        .await
        .map_err(pg("reading the publication's column lists"))?
        .get(0);
    Ok(listed.map(|tables| format!(
        "event trigger trailmark_release is {state}: PostgreSQL refuses ALTER COLUMN ... TYPE of a captured column of {tables} (published with a column list: excluded columns), and DROP COLUMN of one without CASCADE, until install runs again; install once as a superuser keeps it current"
    )))
}

/// WAL mode: the columns of a published table with excluded columns that
/// its column list leaves out though they are not excluded (added since
/// the list was set), comma-joined; `None` when there are none.
async fn unpublished(
    client: &impl GenericClient,
    schema: &str,
    table: &str,
) -> Result<Option<String>, Error> {
    let row = client
        .query_one(
            "SELECT string_agg(c.attname::text, ', ' ORDER BY c.attnum)
             FROM pg_publication_tables p
             JOIN trailmark.tables t ON t.schema_name = p.schemaname AND t.table_name = p.tablename
             CROSS JOIN trailmark.publishable($1, $2) c
             WHERE p.pubname = $3 AND p.schemaname = $1 AND p.tablename = $2
               AND cardinality(t.exclude_attnums) > 0 AND NOT c.attname = ANY (p.attnames)",
            &[&schema, &table, &super::wal::PUBLICATION],
        )
        .await
        .map_err(pg(format!(
            "reading the published columns of {schema}.{table}"
        )))?;
    Ok(row.get(0))
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
        .map(|t| t.to_string())
        .collect();
    let backlog = outbox_backlog(client, None).await?;
    let (outbox_depth, oldest_pending_seconds) = (backlog.rows, backlog.oldest_seconds);
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
            paused: Vec::new(),
        });
    }
    // A paused table in WAL mode has neither triggers nor a place in the
    // publication, and is covered all the same.
    let tables: Vec<String> = covered_or_paused(client)
        .await?
        .into_iter()
        .map(|t| t.to_string())
        .collect();
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
    let paused = client
        .query(
            "SELECT schema_name, table_name,
                    to_char(paused_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
             FROM trailmark.tables WHERE paused_at IS NOT NULL ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(pg("reading the paused tables"))?
        .iter()
        .map(|r| {
            let table = crate::TableSpec::named(r.get::<_, String>(0), r.get::<_, String>(1));
            (table.to_string(), r.get(2))
        })
        .collect();
    Ok(Status {
        version,
        tables,
        outbox_depth,
        oldest_pending_seconds,
        last_drained,
        drift,
        paused,
    })
}
