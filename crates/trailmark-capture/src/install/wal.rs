//! WAL mode: what `install --mode wal` creates instead of triggers — the
//! publication `trailmark` (column lists leave excluded columns out), each
//! table's replica identity, and the logical slot `trailmark` (`pgoutput`) —
//! and what `status` and `uninstall` read of them.

use std::fmt::Write as _;

use tokio_postgres::{Client, GenericClient};

use crate::table::{ReplicaIdentity, TableSpec, ident};
use crate::{Error, pg};

/// The publication WAL mode decodes.
pub const PUBLICATION: &str = "trailmark";
/// The logical replication slot WAL mode reads through is this prefix and
/// the database's oid (`trailmark_16384`): slots are named per server, and
/// each database captured on it needs its own.
pub const SLOT: &str = "trailmark";

/// The name of this database's slot.
pub async fn slot_name(client: &impl GenericClient) -> Result<String, Error> {
    Ok(client
        .query_one(
            "SELECT $1 || '_' || oid::text FROM pg_database WHERE datname = current_database()",
            &[&SLOT],
        )
        .await
        .map_err(pg("naming the replication slot"))?
        .get(0))
}
/// The prefix of the logical messages `trailmark.set_context` writes.
pub const MESSAGE_PREFIX: &str = "trailmark";

/// How changes are captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Statement-level triggers write the outbox inside the application's
    /// transaction.
    Trigger,
    /// A drainer decodes the WAL through a logical slot: the application's
    /// transaction writes nothing more.
    Wal,
}

impl Mode {
    /// The name stored in `trailmark.meta` and given as `--mode`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trigger => "trigger",
            Self::Wal => "wal",
        }
    }

    /// Parses `trigger` or `wal`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        match text {
            "trigger" => Ok(Self::Trigger),
            "wal" => Ok(Self::Wal),
            other => Err(Error::BadOption(format!(
                "mode {other:?}: give trigger or wal"
            ))),
        }
    }
}

/// The server's `wal_level` (`replica`, `logical`, …).
pub async fn wal_level(client: &impl GenericClient) -> Result<String, Error> {
    Ok(client
        .query_one("SELECT current_setting('wal_level')", &[])
        .await
        .map_err(pg("reading wal_level"))?
        .get(0))
}

/// The mode an install recorded (`None`: not installed, or installed by a
/// version before modes, which is trigger mode).
pub async fn installed_mode(client: &impl GenericClient) -> Result<Option<Mode>, Error> {
    let row = client
        .query_opt(
            "SELECT value FROM trailmark.meta WHERE key = 'mode'
             AND to_regclass('trailmark.meta') IS NOT NULL",
            &[],
        )
        .await;
    match row {
        Ok(Some(r)) => Mode::parse(&r.get::<_, String>(0)).map(Some),
        Ok(None) => Ok(None),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => Ok(None),
        Err(e) => Err(pg("reading the capture mode")(e)),
    }
}

/// Whether the slot exists.
pub(super) async fn slot_exists(client: &impl GenericClient) -> Result<bool, Error> {
    let slot = slot_name(client).await?;
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
            &[&slot],
        )
        .await
        .map_err(pg("looking for the replication slot"))?
        .get(0))
}

/// Creates the slot unless it exists. Run outside any transaction (a slot
/// cannot be created by one that has written); it waits for the
/// transactions running now to end, and captures every transaction that
/// commits after them. Answers whether it created it.
pub(super) async fn ensure_slot(client: &Client) -> Result<bool, Error> {
    if slot_exists(client).await? {
        return Ok(false);
    }
    let slot = slot_name(client).await?;
    client
        .execute(
            "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&slot],
        )
        .await
        .map_err(pg(format!(
            "creating logical replication slot {slot} (the role needs REPLICATION or superuser, and max_replication_slots a free slot)"
        )))?;
    Ok(true)
}

/// Where slot `slot` stands and where the drainer last confirmed it
/// (`trailmark.slot_moved`, capture version 16), when it stands past it:
/// moved or made again by hand, it skipped whatever was committed between.
/// `None` before version 16 (nothing recorded). The one reading of it for
/// the drainer, install and status.
pub async fn slot_moved(
    client: &impl GenericClient,
    slot: &str,
) -> Result<Option<(String, String)>, Error> {
    let context = "looking for where the drainer confirmed the slot";
    if !crate::has_table(client, "slot_confirmed", context).await? {
        return Ok(None);
    }
    Ok(client
        .query_opt(
            "SELECT recorded::text, now_at::text FROM trailmark.slot_moved($1)",
            &[&slot],
        )
        .await
        .map_err(pg("comparing the slot with where the drainer confirmed it"))?
        .map(|r| (r.get(0), r.get(1))))
}

/// A slot found past where the drainer last confirmed it
/// ([`slot_moved`]), in the words the drainer, status and install say it
/// in (each adds what follows for it).
pub fn slot_moved_gap(slot: &str, was: &str, now: &str) -> String {
    format!(
        "replication slot {slot} stands at {now}, past {was} where the drainer last confirmed it: it was moved (pg_replication_slot_advance) or made again by hand, and whatever was committed between was not captured (a capture gap)"
    )
}

/// After an install in WAL mode: a slot `made` by it forgets any record of
/// one dropped before under its name (the drainer records where it
/// confirms from then on); a slot found past its record (moved or made
/// again by hand) is recorded where it stands, and the capture gap answered
/// as a warning: capture goes on from there.
pub(super) async fn record_slot_position(
    tx: &tokio_postgres::Transaction<'_>,
    made: bool,
) -> Result<Option<String>, Error> {
    let slot = slot_name(tx).await?;
    if made {
        tx.execute(
            "DELETE FROM trailmark.slot_confirmed WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(pg("forgetting where an earlier slot was confirmed"))?;
        return Ok(None);
    }
    let Some((was, now)) = slot_moved(tx, &slot).await? else {
        return Ok(None);
    };
    tx.execute(
        "UPDATE trailmark.slot_confirmed SET lsn = $2::text::pg_lsn, recorded_at = now()
         WHERE slot_name = $1",
        &[&slot, &now],
    )
    .await
    .map_err(pg("recording where the slot stands"))?;
    Ok(Some(format!(
        "{}; capture goes on from {now}",
        slot_moved_gap(&slot, &was, &now)
    )))
}

/// The replica identity a table gets, checked against its options:
/// `REPLICA IDENTITY FULL` unless `key` was asked for. A table with excluded
/// columns must say `key`: PostgreSQL refuses the application's UPDATE and
/// DELETE when a publication's column list leaves out a column of a FULL
/// identity, and capture must never break the application's writes.
pub(super) fn identity_of(table: &TableSpec, pk: &[String]) -> Result<ReplicaIdentity, Error> {
    match table.replica_identity {
        Some(ReplicaIdentity::Key) if pk.is_empty() => Err(Error::BadOption(format!(
            "{table} has no primary key, so its replica identity cannot be the key: give --replica-identity {table}=full"
        ))),
        Some(ReplicaIdentity::Full) | None if !table.exclude.is_empty() => {
            Err(Error::BadOption(format!(
                "{table} excludes columns ({}): in WAL mode its old values can be logged only for the primary key, since PostgreSQL refuses UPDATE and DELETE on a table whose full replica identity a publication leaves columns out of. Give --replica-identity {table}=key (updates then show new values, old ones only of the key), or keep this database in trigger mode",
                table.exclude.join(", ")
            )))
        }
        Some(identity) => Ok(identity),
        None => Ok(ReplicaIdentity::Full),
    }
}

/// Sets each table's replica identity and (re)creates the publication over
/// them, every column but the excluded ones, in the caller's transaction.
pub(super) async fn publish(
    tx: &tokio_postgres::Transaction<'_>,
    tables: &[(TableSpec, Vec<String>)],
) -> Result<(), Error> {
    let mut members = Vec::new();
    for (table, pk) in tables {
        let identity = identity_of(table, pk)?;
        let clause: String = tx
            .query_one(
                "SELECT clause FROM trailmark.replica_identity($1)",
                &[&identity.as_str()],
            )
            .await
            .map_err(pg(format!("reading what replica identity {identity:?} is")))?
            .get(0);
        // A partitioned table has no rows of its own: its partitions'
        // identity decides what old values the WAL holds, each set here (a
        // partition made later takes the next install's; status names it).
        let partitions = partitions(tx, table, identity).await?;
        for relation in
            std::iter::once(table.quoted()).chain(partitions.into_iter().map(|(name, _)| name))
        {
            tx.batch_execute(&format!("ALTER TABLE {relation} REPLICA IDENTITY {clause}"))
                .await
                .map_err(pg(format!("setting the replica identity of {relation}")))?;
        }
        tx.execute(
            "UPDATE trailmark.tables SET replica_identity = $3 WHERE schema_name = $1 AND table_name = $2",
            &[&table.schema, &table.table, &identity.as_str()],
        )
        .await
        .map_err(pg(format!("recording the replica identity of {table}")))?;
        let paused: bool = tx
            .query_one(
                "SELECT paused_at IS NOT NULL FROM trailmark.tables WHERE schema_name = $1 AND table_name = $2",
                &[&table.schema, &table.table],
            )
            .await
            .map_err(pg(format!("reading the state of {table}")))?
            .get(0);
        if !paused {
            members.push(member(tx, table).await?);
        }
    }
    // Altered, never dropped and created again: the decoder reads the
    // publication as of each change, and a change made while it did not
    // exist would stop decoding.
    let sql = if members.is_empty() {
        let mut sql = String::new();
        for table in published_tables(tx).await? {
            let _ = write!(
                sql,
                "ALTER PUBLICATION {} DROP TABLE {};",
                ident(PUBLICATION),
                table.quoted()
            );
        }
        sql
    } else {
        format!(
            "ALTER PUBLICATION {} SET TABLE {}",
            ident(PUBLICATION),
            members.join(", ")
        )
    };
    // Capture's own change: the event trigger stays out (as for
    // `ensure_publication`).
    tx.batch_execute(&own_ddl(&sql))
        .await
        .map_err(pg("setting the tables of the publication"))?;
    Ok(())
}

/// The partitions of `table` that hold its rows (the leaves below it), each
/// quoted for SQL and whether its replica identity (`pg_class.relreplident`)
/// is `identity`; none for a table that is not partitioned
/// (`trailmark.partitions` and `trailmark.replica_identity`, the rules the
/// event trigger that sets a new partition's identity uses too). Install
/// sets their identity ([`publish`]); `status` names those unlike the
/// table's.
pub(super) async fn partitions(
    client: &impl GenericClient,
    table: &TableSpec,
    identity: ReplicaIdentity,
) -> Result<Vec<(String, bool)>, Error> {
    Ok(client
        .query(
            "SELECT p.relation, p.identity = i.code
             FROM trailmark.partitions($1, $2) p CROSS JOIN trailmark.replica_identity($3) i
             ORDER BY p.relation",
            &[&table.schema, &table.table, &identity.as_str()],
        )
        .await
        .map_err(pg(format!("reading the partitions of {table}")))?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

/// Whether a table's own replica identity is still `identity`, the one
/// install gave it (`None`: the table is gone).
pub(super) async fn identity_kept(
    client: &impl GenericClient,
    table: &TableSpec,
    identity: ReplicaIdentity,
) -> Result<Option<bool>, Error> {
    Ok(client
        .query_opt(
            "SELECT c.relreplident = i.code
             FROM pg_class c CROSS JOIN trailmark.replica_identity($2) i
             WHERE c.oid = to_regclass($1)",
            &[&table.quoted(), &identity.as_str()],
        )
        .await
        .map_err(pg(format!("reading the replica identity of {table}")))?
        .map(|row| row.get(0)))
}

/// A table as the publication lists it: every column but the excluded ones
/// (`trailmark.published_columns`, the rule the event trigger that keeps
/// the list up to date uses too).
pub(super) async fn member(
    tx: &tokio_postgres::Transaction<'_>,
    table: &TableSpec,
) -> Result<String, Error> {
    let member: Option<String> = tx
        .query_one(
            "SELECT trailmark.publication_member($1, $2)",
            &[&table.schema, &table.table],
        )
        .await
        .map_err(pg(format!("reading the columns of {table}")))?
        .get(0);
    member.ok_or_else(|| {
        Error::BadOption(format!(
            "{table}: every column is excluded; capture needs at least its key"
        ))
    })
}

/// The prefix of the logical message a pause or a resume writes in WAL
/// mode (`{"op": "pause"|"resume", "schema": …, "table": …}`), in the same
/// transaction that takes the table out of the publication or puts it back.
pub const SWITCH_PREFIX: &str = "trailmark.switch";

/// The setting that keeps the event trigger out of capture's own DDL, set
/// to `on` for the transaction around it (`trailmark.own_ddl` in
/// sql/install.sql sets and the event trigger reads the same).
pub(super) const OWN_DDL: &str = "trailmark.republishing";

/// `sql` run as capture's own DDL (`OWN_DDL` set around it, in the
/// transaction it runs in): the event triggers stay out of it.
pub(super) fn own_ddl(sql: &str) -> String {
    format!(
        "SELECT set_config('{OWN_DDL}', 'on', true); {sql};
         SELECT set_config('{OWN_DDL}', '', true)"
    )
}

/// Drops publication `trailmark`, if it exists, as capture's own DDL
/// (the event trigger refuses a drop by hand in WAL mode).
pub(super) fn drop_publication() -> String {
    own_ddl(&format!(
        "DROP PUBLICATION IF EXISTS {}",
        ident(PUBLICATION)
    ))
}

/// The prefix of the transactional logical message that records, in WAL
/// mode, a TRUNCATE of one partition of a covered partitioned table, or
/// (capture version 15) rows that left a covered table by DDL (written by
/// `trailmark.record_whole`, which names it too).
pub const TRUNCATE_PREFIX: &str = "trailmark.truncate";

/// The prefix of the empty transactional message that ends capture's own
/// (`trailmark.end_messages`, and `trailmark.set_context` in WAL mode:
/// capture version 15), which the drainer reads past.
pub const END_PREFIX: &str = "trailmark.end";

/// The prefix of the transactional logical message that records, in WAL
/// mode, a covered table's rows (or one partition's) rewritten by DDL that
/// may change their values (capture version 16; the fields of a truncate's,
/// written by `trailmark.record_whole` too).
pub const REWRITE_PREFIX: &str = "trailmark.rewrite";

/// The prefix of the transactional logical message that records, in WAL
/// mode, one row that entered a covered table with a partition attached
/// (capture version 15; `{"schema", "table", "row", "reason", "role"}`,
/// written by `trailmark.record_entered`; and, the same way, one held by a table
/// when it came to be covered).
pub const CREATE_PREFIX: &str = "trailmark.create";

/// Creates the publication, empty, unless it exists: in a transaction of
/// its own, committed before the slot is created, so every change the slot
/// decodes finds it. Answers whether it created it.
pub(super) async fn ensure_publication(client: &Client) -> Result<bool, Error> {
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)",
            &[&PUBLICATION],
        )
        .await
        .map_err(pg("looking for the publication"))?
        .get(0);
    // A partitioned table's changes are published as its own, not as the
    // partition's a row lands in (which would name another table, unknown
    // to the decoder's options), as the triggers on it see them. Every
    // kind of change, set again on one that exists (capture version 16:
    // changed by hand before the event trigger refused it).
    let sql = if exists {
        // Capture's own change: the event trigger, which records a
        // publication altered by hand, stays out (`OWN_DDL`), or a covered
        // table missing from it (what this install is about to mend) would
        // be recorded as paused, and stay out.
        format!(
            "BEGIN; {}; COMMIT",
            own_ddl(&format!(
                "ALTER PUBLICATION {} SET (publish = 'insert, update, delete, truncate', publish_via_partition_root = true)",
                ident(PUBLICATION)
            ))
        )
    } else {
        format!(
            "CREATE PUBLICATION {} WITH (publish = 'insert, update, delete, truncate', publish_via_partition_root = true)",
            ident(PUBLICATION)
        )
    };
    client
        .batch_execute(&sql)
        .await
        .map_err(pg("creating the publication"))?;
    Ok(!exists)
}

/// The tables the publication covers, as `(schema, table)`.
pub(super) async fn published_tables(client: &impl GenericClient) -> Result<Vec<TableSpec>, Error> {
    let rows = client
        .query(
            "SELECT schemaname::text, tablename::text FROM pg_publication_tables
             WHERE pubname = $1 ORDER BY 1, 2",
            &[&PUBLICATION],
        )
        .await
        .map_err(pg("listing the published tables"))?;
    Ok(rows
        .iter()
        .map(|r| TableSpec::named(r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect())
}

/// How the slot stands: what WAL it makes PostgreSQL keep, and how far the
/// drainer is behind.
#[derive(Clone, Debug, PartialEq)]
pub struct SlotStatus {
    /// Its name.
    pub name: String,
    /// A drainer is connected to it now.
    pub active: bool,
    /// Bytes of WAL PostgreSQL keeps for it (from its restart position to
    /// the current WAL position).
    pub retained_bytes: i64,
    /// Bytes of WAL between what the ledger acknowledged and now.
    pub lag_bytes: i64,
    /// The position the ledger acknowledged (`confirmed_flush_lsn`).
    pub confirmed: Option<String>,
    /// PostgreSQL's `wal_status`: `reserved`, `extended`, `unreserved`, or
    /// `lost` (the WAL it needed is gone: a capture gap).
    pub wal_status: Option<String>,
    /// `max_slot_wal_keep_size` (`-1`: unbounded).
    pub max_keep: String,
}

/// The slot's state (`None`: there is none).
pub async fn slot_status(client: &impl GenericClient) -> Result<Option<SlotStatus>, Error> {
    let slot = slot_name(client).await?;
    let row = client
        .query_opt(
            "SELECT active,
                    coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::int8,
                    coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::int8,
                    confirmed_flush_lsn::text, wal_status, current_setting('max_slot_wal_keep_size')
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(pg("reading the replication slot"))?;
    Ok(row.map(|r| SlotStatus {
        name: slot.clone(),
        active: r.get(0),
        retained_bytes: r.get(1),
        lag_bytes: r.get(2),
        confirmed: r.get(3),
        wal_status: r.get(4),
        max_keep: r.get(5),
    }))
}

/// Whether the server streams a large transaction to the drainer while it
/// is in progress (PostgreSQL 14 and later, replication protocol 2); the
/// drainer asks for it wherever the server can.
pub async fn streams_in_progress(client: &impl GenericClient) -> Result<bool, Error> {
    let version: String = client
        .query_one("SHOW server_version_num", &[])
        .await
        .map_err(pg("reading the server's version"))?
        .get(0);
    Ok(version.parse::<u32>().is_ok_and(|v| v >= 140_000))
}

/// What the server did so far with the slot's transactions larger than
/// `logical_decoding_work_mem` (`pg_stat_replication_slots`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LargeTransactions {
    /// `logical_decoding_work_mem` as this database's sessions see it.
    pub work_mem: String,
    /// Streamed to the drainer in progress, and their bytes.
    pub streamed: i64,
    pub streamed_bytes: i64,
    /// Spilled to the server's disk (`pg_replslot/`), and their bytes.
    pub spilled: i64,
    pub spilled_bytes: i64,
}

/// What [`large_transactions`] found for a slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LargeTransactionsSeen {
    /// The slot's statistics.
    Counted(LargeTransactions),
    /// PostgreSQL 13: it keeps no such statistics, and spills every large
    /// transaction to send it at its commit (it cannot stream one).
    Unstreamable,
    /// No statistics row for the slot: PostgreSQL 14 and later keep one for
    /// every logical slot, so the slot was dropped since it was named.
    NoStatistics,
}

/// Slot `slot`'s [`LargeTransactions`] (its name as [`SlotStatus`] has
/// it), or why there are none.
pub async fn large_transactions(
    client: &impl GenericClient,
    slot: &str,
) -> Result<LargeTransactionsSeen, Error> {
    if !streams_in_progress(client).await? {
        return Ok(LargeTransactionsSeen::Unstreamable);
    }
    let row = client
        .query_opt(
            "SELECT current_setting('logical_decoding_work_mem'), stream_txns, stream_bytes,
                    spill_txns, spill_bytes
             FROM pg_stat_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(pg("reading the replication slot's statistics"))?;
    Ok(row.map_or(LargeTransactionsSeen::NoStatistics, |r| {
        LargeTransactionsSeen::Counted(LargeTransactions {
            work_mem: r.get(0),
            streamed: r.get(1),
            streamed_bytes: r.get(2),
            spilled: r.get(3),
            spilled_bytes: r.get(4),
        })
    }))
}

/// Changes in the slot not yet acknowledged by the ledger: decoded (without
/// consuming them) and counted. Refuses while a drainer holds the slot.
pub(super) async fn pending_in_slot(client: &impl GenericClient) -> Result<i64, Error> {
    let Some(status) = slot_status(client).await? else {
        return Ok(0);
    };
    if status.active {
        return Err(Error::BadOption(format!(
            "a drainer is reading slot {} now: stop it (`capture pg run`, or serve's [capture]) first",
            status.name
        )));
    }
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE get_byte(data, 0) IN (73, 85, 68, 84))
             FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL,
                 'proto_version', '1', 'publication_names', $2)",
            &[&status.name, &PUBLICATION],
        )
        .await
        .map_err(pg("counting undrained changes in the slot"))?;
    Ok(row.get(0))
}

/// Drops the slot, if there is one.
pub(super) async fn drop_slot(client: &impl GenericClient) -> Result<(), Error> {
    let slot = slot_name(client).await?;
    client
        .execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(pg(format!("dropping replication slot {slot}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_with_excluded_columns_must_ask_for_a_key_identity() {
        let mut t = TableSpec::parse("public.customer").unwrap();
        let pk = vec!["id".to_owned()];
        assert_eq!(identity_of(&t, &pk).unwrap(), ReplicaIdentity::Full);
        t.exclude = vec!["password".into()];
        let e = identity_of(&t, &pk).unwrap_err().to_string();
        assert!(e.contains("--replica-identity public.customer=key"), "{e}");
        t.replica_identity = Some(ReplicaIdentity::Key);
        assert_eq!(identity_of(&t, &pk).unwrap(), ReplicaIdentity::Key);
        let e = identity_of(&t, &[]).unwrap_err().to_string();
        assert!(e.contains("no primary key"), "{e}");
        assert_eq!(Mode::parse("wal").unwrap(), Mode::Wal);
        assert!(Mode::parse("WAL").is_err());
    }
}
