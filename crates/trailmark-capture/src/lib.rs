//! Change capture from an application's PostgreSQL.
//!
//! `install` creates schema `trailmark` in the application database: an
//! outbox table and trigger functions, attached to each covered table as
//! statement-level AFTER INSERT/UPDATE/DELETE triggers with transition tables
//! (one `INSERT … SELECT` per statement, so a 100k-row UPDATE costs one
//! statement, not 100k trigger calls) and a TRUNCATE trigger. The context the
//! application attached with `set_config('trailmark.*', …, true)` is copied
//! into every outbox row, inside the same transaction as the change.

pub mod context;
mod drain;
mod event;
mod ids;
mod install;
pub mod revert;
pub mod seen;
mod streamed;
mod table;
mod wal;

pub use context::CaptureContext;
pub use drain::{After, DRAIN_LOCK, DrainOptions, OPTIONS_FOR, Progress, SendError, Sink, drain};
pub use event::{
    OutboxRow, RowImage, WalPosition, captured_event, lsn_text, make_valid, outbox_event, parse_lsn,
};
pub use ids::EventIds;
pub use install::{
    CHANNEL, Installed, LargeTransactions, LargeTransactionsSeen, MESSAGE_PREFIX, Mode,
    OutboxBacklog, PUBLICATION, SLOT, SlotStatus, Status, Switched, Uninstalled, VERSION,
    cover_whole_schemas, grant_drainer, install, installed_mode, large_transactions,
    outbox_backlog, primary_key, set_paused, slot_name, slot_status, status, streams_in_progress,
    table_configs, tables_in_schema, uninstall, wal_level,
};
pub use table::{ReplicaIdentity, TableConfig, TableSpec, split_assignment, split_list};
pub use wal::check_source as check_wal_source;

/// What can go wrong talking to the application database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The text says what PostgreSQL said ([`trailmark_pg::described`]);
    /// the error is not also given as the source, which would have an
    /// error chain (`{:#}`) say it twice.
    #[error("{context}: {}", trailmark_pg::described(error))]
    Postgres {
        context: String,
        error: tokio_postgres::Error,
    },
    #[error("table {0} does not exist (give it as schema.table)")]
    NoSuchTable(String),
    #[error("{0:?} is not a table name: use schema.table, e.g. public.customer")]
    BadTableName(String),
    #[error("column {column:?} excluded from {table} does not exist")]
    NoSuchColumn { table: String, column: String },
    #[error(
        "trailmark capture is not installed in this database (run `trailmark capture pg install`)"
    )]
    NotInstalled,
    #[error(
        "capture version {0} is installed, newer than this trailmark understands: upgrade trailmark"
    )]
    NewerVersion(u32),
    #[error("{0}")]
    BadOption(String),
    #[error("cannot revert: {0}")]
    CannotRevert(String),
    #[error("WAL capture: {0}")]
    Replication(String),
    #[error("the connection to the source database was lost")]
    ConnectionLost,
    #[error(
        "outbox row {outbox_id} cannot become a valid event ({reason}); it stays in the outbox"
    )]
    Unsendable { outbox_id: i64, reason: String },
    #[error("the ledger did not take the batch: {0} (the outbox keeps it)")]
    Sink(String),
    #[error(
        "the outbox still holds {0} changes not yet drained: drain them first (`trailmark capture pg run … --once`), or uninstall with --drop-pending to discard them (recorded in the trail)"
    )]
    PendingChanges(i64),
    #[error(
        "the trail of tenant {tenant} no longer extends what this database saw: {why}. Draining stopped; the rows stay in the outbox. Once an operator has established which trail is right, `trailmark capture pg forget-checkpoint --source … --tenant {tenant}` lets the drain go on"
    )]
    Diverged { tenant: String, why: String },
}

/// While changes keep coming, a batch that is not full goes at most this
/// long after the one before it (a full one goes at once; the first after a
/// quiet moment too). Each append costs the ledger a commit and the indexer
/// a step whatever it holds, and in trigger mode each batch costs the
/// application's database a read and a delete: under a stream of small
/// transactions (pgbench's TPC-B, WAL mode) one append each 100 ms instead
/// of each append's time (a few ms) cut `serve`'s CPU a change by a third
/// (bench/results/capture.md). The cost: a change reaches the ledger up to
/// this much later. The default of [`DrainOptions::linger`]; an operator
/// may set 0 to [`MAX_LINGER_MS`] ([`linger_of`]).
pub const LINGER: std::time::Duration = std::time::Duration::from_millis(100);

/// The longest linger an operator may set, in milliseconds.
pub const MAX_LINGER_MS: u64 = 1000;

/// The most rows in one batch: the most events the server takes in one
/// request ([`trailmark_wire::MAX_EVENTS_PER_REQUEST`]).
#[allow(clippy::cast_possible_wrap)] // 5,000 fits
pub const MAX_BATCH: i64 = trailmark_wire::MAX_EVENTS_PER_REQUEST as i64;

/// A linger as an operator gives it (`linger_ms`): 0 (a batch goes as soon
/// as the one before is durable) to [`MAX_LINGER_MS`]; more is refused, not
/// cut.
pub fn linger_of(ms: u64) -> Result<std::time::Duration, String> {
    if ms > MAX_LINGER_MS {
        return Err(format!(
            "must be 0 to {MAX_LINGER_MS} milliseconds (got {ms}): a change waits up to this long to reach the ledger"
        ));
    }
    Ok(std::time::Duration::from_millis(ms))
}

/// Rows per batch as an operator gives them: 1 to [`MAX_BATCH`]; anything
/// else is refused, not cut.
pub fn batch_of(rows: i64) -> Result<i64, String> {
    if !(1..=MAX_BATCH).contains(&rows) {
        return Err(format!("must be 1 to {MAX_BATCH} rows (got {rows})"));
    }
    Ok(rows)
}

/// The source database's connection string read for connecting (TLS as
/// its `sslmode` asks: [`trailmark_pg`], the one rule of every connection
/// Trailmark makes to PostgreSQL); a bad setting is named.
pub fn source(source: &str) -> Result<trailmark_pg::Source, Error> {
    trailmark_pg::Source::parse(source)
        .map_err(|e| Error::BadOption(format!("the source database's connection string: {e}")))
}

pub(crate) fn pg(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Error {
    let context = context.into();
    move |error| Error::Postgres { context, error }
}

/// Whether capture's table `trailmark.<table>` exists: an install of an
/// older version, or none, may not have it. `context` says what for.
pub(crate) async fn has_table(
    client: &impl tokio_postgres::GenericClient,
    table: &'static str,
    context: &'static str,
) -> Result<bool, Error> {
    Ok(client
        .query_one(
            &format!("SELECT to_regclass('trailmark.{table}') IS NOT NULL"),
            &[],
        )
        .await
        .map_err(pg(context))?
        .get(0))
}
