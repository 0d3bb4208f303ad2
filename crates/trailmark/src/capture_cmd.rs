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
