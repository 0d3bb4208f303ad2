//! Change capture from an application's PostgreSQL.
//!
//! `install` creates schema `trailmark` in the application database: an
//! outbox table and trigger functions, attached to each covered table as
//! statement-level AFTER INSERT/UPDATE/DELETE triggers with transition tables
//! (one `INSERT … SELECT` per statement, so a 100k-row UPDATE costs one
//! statement, not 100k trigger calls) and a TRUNCATE trigger. The context the
//! application attached with `set_config('trailmark.*', …, true)` is copied
//! into every outbox row, inside the same transaction as the change.

mod event;
mod install;
mod table;

pub use event::{OutboxRow, outbox_event};
pub use install::{Installed, Status, install, primary_key, status, uninstall};
pub use table::TableSpec;

/// What can go wrong talking to the application database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{context}: {source}")]
    Postgres {
        context: String,
        #[source]
        source: tokio_postgres::Error,
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
}

pub(crate) fn pg(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Error {
    let context = context.into();
    move |source| Error::Postgres { context, source }
}
