//! `trailmark capture pg install|status|uninstall`.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use trailmark_capture::TableSpec;

#[derive(Debug, Args)]
pub struct CaptureArgs {
    #[command(subcommand)]
    source: CaptureSource,
}

#[derive(Debug, Subcommand)]
enum CaptureSource {
    /// Capture from an application's PostgreSQL.
    Pg(PgArgs),
}

#[derive(Debug, Args)]
struct PgArgs {
    #[command(subcommand)]
    command: PgCommand,
    /// The application database (postgres://user@host/db or key=value form).
    #[arg(
        long,
        env = "TRAILMARK_CAPTURE_SOURCE",
        global = true,
        hide_env_values = true
    )]
    source: Option<String>,
}

#[derive(Debug, Subcommand)]
enum PgCommand {
    /// Create schema trailmark (outbox, trigger functions) and attach
    /// statement-level triggers to the tables. Safe to run again.
    ///
    /// Example: trailmark capture pg install --source postgres://app@db/shop --tables public.customer,public.invoice --exclude public.customer.password
    Install {
        /// Tables to cover, comma-separated schema.table.
        #[arg(long, value_delimiter = ',', required = true)]
        tables: Vec<String>,
        /// Columns never copied to the outbox, comma-separated schema.table.column.
        #[arg(long, value_delimiter = ',')]
        exclude: Vec<String>,
    },
    /// Tables covered, outbox depth and the age of its oldest row.
    ///
    /// Example: trailmark capture pg status --source postgres://app@db/shop
    Status,
    /// Drain the outbox into a Trailmark server, in order: each row becomes an
    /// event; rows are deleted only after the server acknowledged them. Event
    /// ids derive from the outbox position, so redelivery stores nothing twice.
    ///
    /// Example: trailmark capture pg run --source postgres://app@db/shop --server http://127.0.0.1:7878 --key "$TRAILMARK_KEY"
    Run {
        /// The Trailmark server.
        #[arg(long, env = "TRAILMARK_URL", default_value = "http://127.0.0.1:7878")]
        server: String,
        /// A key with the ingest scope.
        #[arg(long, env = "TRAILMARK_KEY", hide_env_values = true)]
        key: String,
        /// Rows per request.
        #[arg(long, default_value_t = 1000)]
        batch: i64,
        /// Stop when the outbox is empty instead of waiting for more.
        #[arg(long)]
        once: bool,
    },
    /// Remove every Trailmark trigger and schema trailmark (outbox included).
    ///
    /// Example: trailmark capture pg uninstall --source postgres://app@db/shop
    Uninstall,
}

fn tables_with_exclusions(tables: &[String], exclude: &[String]) -> anyhow::Result<Vec<TableSpec>> {
    let mut specs = tables
        .iter()
        .map(|t| TableSpec::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    for column in exclude {
        let Some((table, col)) = column.rsplit_once('.') else {
            bail!("--exclude {column:?}: use schema.table.column");
        };
        let table = TableSpec::parse(table)?;
        let Some(spec) = specs
            .iter_mut()
            .find(|s| s.schema == table.schema && s.table == table.table)
        else {
            bail!("--exclude {column:?}: {table} is not among --tables");
        };
        spec.exclude.push(col.to_owned());
    }
    Ok(specs)
}

#[allow(clippy::print_stdout)] // the command's report
pub fn run(args: CaptureArgs) -> anyhow::Result<ExitCode> {
    let CaptureSource::Pg(pg) = args.source;
    let source = pg
        .source
        .context("--source is required: the application database URL")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let (mut client, connection) = tokio_postgres::connect(&source, tokio_postgres::NoTls)
            .await
            .context("connecting to --source")?;
        tokio::spawn(connection);
        match pg.command {
            PgCommand::Install { tables, exclude } => {
                let specs = tables_with_exclusions(&tables, &exclude)?;
                let installed = trailmark_capture::install(&mut client, &specs).await?;
                for (table, pk) in installed.tables {
                    let key = if pk.is_empty() {
                        "no primary key: rows are identified by their content".to_owned()
                    } else {
                        format!("key ({})", pk.join(", "))
                    };
                    let excluded = if table.exclude.is_empty() {
                        String::new()
                    } else {
                        format!(", excluding {}", table.exclude.join(", "))
                    };
                    println!("covered {table}: {key}{excluded}");
                }
            }
            PgCommand::Status => {
                let s = trailmark_capture::status(&client).await?;
                println!("capture version {}", s.version);
                println!(
                    "tables: {}",
                    if s.tables.is_empty() {
                        "none".to_owned()
                    } else {
                        s.tables.join(", ")
                    }
                );
                println!(
                    "outbox: {} rows waiting{}",
                    s.outbox_depth,
                    s.oldest_pending_seconds
                        .map(|a| format!(", oldest {a:.1} s"))
                        .unwrap_or_default()
                );
            }
            PgCommand::Run {
                server,
                key,
                batch,
                once,
            } => {
                drain(
                    &client,
                    &crate::source::Http::new(&server, &key),
                    batch.clamp(1, 5000),
                    once,
                )
                .await?;
            }
            PgCommand::Uninstall => {
                let removed = trailmark_capture::uninstall(&mut client).await?;
                println!(
                    "removed capture from {} tables and dropped schema trailmark",
                    removed.len()
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Moves outbox rows to the server until the outbox is empty (`once`) or forever.
async fn drain(
    client: &tokio_postgres::Client,
    http: &crate::source::Http,
    batch: i64,
    once: bool,
) -> anyhow::Result<()> {
    use std::collections::HashMap;

    let database: String = client
        .query_one(
            "SELECT system_identifier::text || '/' || current_database() FROM pg_control_system()",
            &[],
        )
        .await
        .context("identifying the source database")?
        .get(0);
    let mut keys: HashMap<(String, String), Vec<String>> = HashMap::new();
    let mut total = 0u64;
    loop {
        let rows = client
            .query(
                "SELECT id, txid, stmt, op, schema_name, table_name, old_row, new_row, context, db_role,
                        to_char(captured_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
                 FROM trailmark.outbox ORDER BY id LIMIT $1",
                &[&batch],
            )
            .await
            .context("reading the outbox (is capture installed?)")?;
        if rows.is_empty() {
            if once {
                eprintln!("outbox drained: {total} rows sent");
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            continue;
        }
        let mut events = Vec::with_capacity(rows.len());
        let mut ids = Vec::with_capacity(rows.len());
        for r in &rows {
            let row = trailmark_capture::OutboxRow {
                id: r.get(0),
                txid: r.get(1),
                stmt: r.get(2),
                op: r.get(3),
                schema: r.get(4),
                table: r.get(5),
                old_row: r.get(6),
                new_row: r.get(7),
                context: r.get(8),
                db_role: r.get(9),
                captured_at: r.get(10),
            };
            let table = (row.schema.clone(), row.table.clone());
            if !keys.contains_key(&table) {
                let spec = TableSpec {
                    schema: table.0.clone(),
                    table: table.1.clone(),
                    exclude: Vec::new(),
                };
                // A table dropped since the change was captured has no key any more.
                let pk = trailmark_capture::primary_key(client, &spec)
                    .await
                    .unwrap_or_default();
                keys.insert(table.clone(), pk);
            }
            events.push(trailmark_capture::outbox_event(
                &row,
                &keys[&table],
                &database,
            ));
            ids.push(row.id);
        }
        let body = serde_json::Value::Array(events);
        loop {
            let (h, b) = (http.clone(), body.clone());
            let sent = tokio::task::spawn_blocking(move || h.post_json("/v1/events", &b))
                .await
                .context("sending captured changes")?;
            match sent {
                Ok(_) => break,
                Err(e) if e.to_string().contains("429") => {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
                Err(e) => return Err(e.context("sending captured changes (the outbox keeps them)")),
            }
        }
        // Only now are they durable in the trail.
        client
            .execute("DELETE FROM trailmark.outbox WHERE id = ANY($1)", &[&ids])
            .await
            .context("deleting sent outbox rows")?;
        total += ids.len() as u64;
    }
}
