//! Looking tables up in the application database's catalog: which exist, their keys and columns, and the options an install stored.

use std::collections::HashMap;

use tokio_postgres::GenericClient;

use crate::table::{TableConfig, TableSpec};
use crate::{Error, pg};

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
    Ok(rows
        .iter()
        .map(|r| TableSpec::named(schema, r.get::<_, String>(0)))
        .collect())
}

/// The tables of the schemas covered whole (`install --all`) that are not
/// covered: made since, each with the schema that covers it.
pub(super) async fn uncovered_in_whole_schemas(
    client: &impl GenericClient,
) -> Result<Vec<(TableSpec, String)>, Error> {
    let rows = client
        .query(
            "SELECT s.schema_name, c.relname::text
             FROM trailmark.schemas s
             JOIN pg_namespace n ON n.nspname = s.schema_name
             JOIN pg_class c ON c.relnamespace = n.oid
             WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
               AND NOT EXISTS (SELECT FROM trailmark.tables t
                               WHERE t.schema_name = s.schema_name AND t.table_name = c.relname::text)
             ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(pg("reading the schemas covered whole"))?;
    Ok(rows
        .iter()
        .map(|r| {
            let schema: String = r.get(0);
            (
                TableSpec::named(schema.clone(), r.get::<_, String>(1)),
                schema,
            )
        })
        .collect())
}

/// The options of every covered table, by `(schema, table)`: under its
/// name, and under the names it had before a rename (a change made then
/// is named so in the outbox and the WAL) unless a covered table has that
/// name now.
pub async fn table_configs(
    client: &impl GenericClient,
) -> Result<HashMap<(String, String), TableConfig>, Error> {
    let rows = client
        .query(
            "SELECT schema_name, table_name, key_columns, soft_delete, resource_type, name_column, false
             FROM trailmark.tables
             UNION ALL
             SELECT f.schema_name, f.table_name, key_columns, soft_delete, resource_type, name_column, true
             FROM trailmark.tables, unnest(former_schemas, former_tables) AS f (schema_name, table_name)
             ORDER BY 7",
            &[],
        )
        .await
        .map_err(pg("reading trailmark.tables (is capture installed?)"))?;
    let mut configs = HashMap::new();
    for r in &rows {
        configs
            .entry((r.get(0), r.get(1)))
            .or_insert_with(|| TableConfig {
                key: r.get(2),
                soft_delete: r.get(3),
                resource_type: r.get(4),
                name_column: r.get(5),
            });
    }
    Ok(configs)
}

/// The primary key columns of a table, in key order (empty: none), by
/// `trailmark.key_columns` (capture must be installed).
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
    Ok(client
        .query_one(
            "SELECT trailmark.key_columns($1::text::regclass)",
            &[&table.quoted()],
        )
        .await
        .map_err(pg(format!("reading the primary key of {table}")))?
        .get(0))
}

/// Checks the options of a table against its columns; returns the column
/// numbers of the excluded columns (what the trigger excludes by, so a
/// renamed column stays excluded).
pub(super) async fn check_columns(
    client: &impl GenericClient,
    table: &TableSpec,
) -> Result<Vec<i16>, Error> {
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
    if let Some(column) = &table.name_column
        && table.exclude.contains(column)
    {
        return Err(Error::BadOption(format!(
            "{table}.{column} is excluded, so it cannot name records: give another --name-column or stop excluding it"
        )));
    }
    let mut attnums = Vec::new();
    for (i, column) in table
        .exclude
        .iter()
        .chain(&table.soft_delete)
        .chain(&table.name_column)
        .enumerate()
    {
        let found = client
            .query_opt(
                "SELECT attnum, attnum = ANY (trailmark.generated_attnums(attrelid)) FROM pg_attribute
                 WHERE attrelid = $1::text::regclass AND attname = $2 AND attnum > 0 AND NOT attisdropped",
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
            // The soft-delete or the name column: read from the rows
            // captured, which never hold a generated column.
            Some(row) if row.get::<_, bool>(1) => {
                let (role, option) = if table.soft_delete.as_ref() == Some(column) {
                    ("mark soft deletes", "--soft-delete")
                } else {
                    ("name records", "--name-column")
                };
                return Err(Error::BadOption(format!(
                    "{table}.{column} is a generated column, {GENERATED_LEFT_OUT}, so it cannot {role}: give {option} a column that is not generated (one it is computed from)"
                )));
            }
            Some(_) => {}
        }
    }
    Ok(attnums)
}

/// Why capture leaves stored generated columns out, for the errors that
/// refuse an option on one.
const GENERATED_LEFT_OUT: &str = "which PostgreSQL's logical decoding never sends (capture leaves generated columns out of the rows it captures, in both modes)";

/// Checks a table's primary key against its options: the key tells its
/// records apart (`resource.id`), so none of its columns may be excluded
/// (in WAL mode PostgreSQL would also refuse the application's UPDATE and
/// DELETE: a publication's column list must cover the key) or generated
/// (left out of the rows captured: every record's id would be the same).
/// (The rule is SQL, `trailmark.key_fault`, which the event trigger
/// follows too.)
pub(super) async fn check_key(client: &impl GenericClient, table: &TableSpec) -> Result<(), Error> {
    let fault = client
        .query_opt(
            "SELECT column_name, excluded FROM trailmark.key_fault($1::text::regclass, $2)",
            &[&table.quoted(), &table.exclude],
        )
        .await
        .map_err(pg(format!("checking the primary key of {table}")))?;
    match fault {
        None => Ok(()),
        Some(row) if row.get::<_, bool>(1) => Err(Error::BadOption(format!(
            "{table}.{} is in the primary key, which tells the table's records apart in the trail (and which, in WAL mode, PostgreSQL needs published to allow UPDATE and DELETE), so it cannot be excluded",
            row.get::<_, String>(0)
        ))),
        Some(row) => Err(Error::BadOption(format!(
            "{table}: primary key column {} is generated, {GENERATED_LEFT_OUT}, so the table's records could not be told apart: capture needs a primary key without generated columns",
            row.get::<_, String>(0)
        ))),
    }
}

/// Where an excluded column of a table is now (see [`excluded_now`]).
pub(super) struct Excluded {
    /// The name it was excluded under.
    pub recorded: String,
    /// Its name now, by number (`None` once dropped: a dropped column's
    /// number is never used again).
    pub now: Option<String>,
    /// Whether a live column has the recorded name (one added again under
    /// it, which is excluded by name).
    pub name_taken: bool,
}

/// Where each excluded column of a table is now, for install and status:
/// `names` are the names they were excluded under, recorded beside
/// `attnums` in the same order.
pub(super) async fn excluded_now(
    client: &impl GenericClient,
    table: &TableSpec,
    names: &[String],
    attnums: &[i16],
) -> Result<Vec<Excluded>, Error> {
    let rows = client
        .query(
            "SELECT e.name, a.attname::text,
                    EXISTS (SELECT FROM pg_attribute b WHERE b.attrelid = $1::text::regclass
                            AND b.attname::text = e.name AND b.attnum > 0 AND NOT b.attisdropped)
             FROM unnest($2::text[], $3::int2[]) WITH ORDINALITY AS e (name, attnum, n)
             LEFT JOIN pg_attribute a ON a.attrelid = $1::text::regclass AND a.attnum = e.attnum
                  AND NOT a.attisdropped
             ORDER BY e.n",
            &[&table.quoted(), &names, &attnums],
        )
        .await
        .map_err(pg(format!("reading the excluded columns of {table}")))?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some(Excluded {
                recorded: r.get::<_, Option<String>>(0)?,
                now: r.get(1),
                name_taken: r.get(2),
            })
        })
        .collect())
}

/// The covered tables: those with capture triggers (trigger mode) or in
/// the publication (WAL mode). A partition's triggers made for the table
/// above it (capture version 14: they call its function, or name it) do
/// not make the partition a covered table of its own.
pub(super) async fn covered_tables(client: &impl GenericClient) -> Result<Vec<TableSpec>, Error> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_trigger t
             JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_proc p ON p.oid = t.tgfoid
             WHERE t.tgname LIKE 'trailmark\\_%' AND NOT t.tgisinternal
               AND (NOT c.relispartition OR p.proname = 'capture_' || c.oid::text)
             UNION
             SELECT schemaname::text, tablename::text FROM pg_publication_tables
             WHERE pubname = 'trailmark'
             ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(pg("listing covered tables"))?;
    Ok(rows
        .iter()
        .map(|r| TableSpec::named(r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect())
}

/// The covered tables, and in WAL mode also those paused (a paused table
/// is out of the publication, and has no triggers, but is still covered).
pub(super) async fn covered_or_paused(
    client: &impl GenericClient,
) -> Result<Vec<TableSpec>, Error> {
    let mut tables = covered_tables(client).await?;
    let paused = client
        .query(
            "SELECT schema_name, table_name FROM trailmark.tables WHERE paused_at IS NOT NULL",
            &[],
        )
        .await
        .map_err(pg("reading the paused tables"))?;
    for row in paused {
        let table = TableSpec::named(row.get::<_, String>(0), row.get::<_, String>(1));
        if !tables.contains(&table) {
            tables.push(table);
        }
    }
    tables.sort_by(|a, b| (&a.schema, &a.table).cmp(&(&b.schema, &b.table)));
    Ok(tables)
}
