//! `trailmark`: serve, administer and verify a Trailmark audit trail.

// Doc comments on the clap types are the user's --help text, not rustdoc.
#![allow(clippy::doc_markdown)]

mod alerts_cmd;
mod capture_cmd;
mod datadir;
mod http;
mod keys_cmd;
mod logging;
mod migrate_cmd;
mod reports_cmd;
mod retention_cmd;
mod rotate_cmd;
mod serve;
mod source;
mod verify;
mod witness_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The allocator of every Rust allocation in the process (SQLite keeps its
/// own calls to the C library's): see the dependency's note in Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "trailmark",
    version,
    about = "A tamper-evident audit trail: serve it, administer it, verify it."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (embedded SQLite store under --data-dir).
    ///
    /// Example: trailmark serve --data-dir ./trailmark-data --listen 127.0.0.1:7878
    Serve(serve::ServeArgs),
    /// Create, list and revoke API keys on a running server (admin key).
    ///
    /// Example: trailmark keys create --scopes ingest --tenant acme --name "billing app"
    Keys(keys_cmd::KeysArgs),
    /// Check that a trail is intact: every envelope, payload, root and
    /// checkpoint. Exits 0 only if everything verifies; otherwise names the
    /// first bad entry.
    ///
    /// Example: trailmark verify --data-dir ./trailmark-data
    ///          trailmark verify --url http://127.0.0.1:7878 --key "$TRAILMARK_KEY" --tenant acme
    Verify(verify::VerifyArgs),
    /// Stream matching events from a server as CSV, NDJSON or one JSON array.
    ///
    /// Example: trailmark export --format csv --tenant acme --days 30 --output acme.csv
    Export(reports_cmd::ExportArgs),
    /// Summarize activity: counts by action, actor, resource type, outcome, day.
    ///
    /// Example: trailmark report --days 7 --resource-type Customer --format table
    Report(reports_cmd::ReportArgs),
    /// Capture every row change from an application's PostgreSQL: install the
    /// triggers, run the drain into a server, status, uninstall.
    ///
    /// Example: trailmark capture pg install --source postgres://app@db/shop --tables public.customer
    Capture(capture_cmd::CaptureArgs),
    /// Copy an embedded (SQLite) trail into a PostgreSQL ledger and prove
    /// the copy: the same root at every signed checkpoint.
    ///
    /// Example: trailmark migrate --from ./trailmark-data --to postgres://trailmark@db/trail
    Migrate(migrate_cmd::MigrateArgs),
    /// Run a C2SP tlog-witness: cosign a log's checkpoints only when they
    /// extend the last one it cosigned (refusing forks and rollbacks).
    ///
    /// Example: trailmark witness --data-dir ./witness --log "trailmark.local/acme=$(curl -s $T/v1/verifier-key?tenant=acme -H "Authorization: Bearer $KEY")"
    Witness(witness_cmd::WitnessArgs),
    /// Set, list and remove retention policies: how long payloads are kept.
    ///
    /// Example: trailmark retention set --tenant acme --resource-type Invoice --max-age-days 30
    Retention(retention_cmd::RetentionArgs),
    /// Expire the payloads the retention policies say are too old (the
    /// server also does this on a schedule); --dry-run reports only.
    ///
    /// Example: trailmark cleanup --dry-run
    Cleanup(retention_cmd::CleanupArgs),
    /// Place, list and release legal holds: held entries are never expired
    /// or erased.
    ///
    /// Example: trailmark hold set --tenant acme --actor u-1842 --reason "case 2026-117"
    Hold(retention_cmd::HoldArgs),
    /// Erase the payloads of everything one actor did or of one record's
    /// history; the envelopes and every proof stay valid. Refused when any
    /// matching entry is under a hold.
    ///
    /// Example: trailmark erase --actor u-1842 --tenant acme --reason "GDPR request 2026-0412"
    Erase(retention_cmd::EraseArgs),
    /// List, show, acknowledge and redeliver alerts; show and set the
    /// alert rules and the webhook endpoints.
    ///
    /// Example: trailmark alerts list --status open
    Alerts(alerts_cmd::AlertsArgs),
}

/// Where a data dir is when none is given.
pub fn default_data_dir() -> PathBuf {
    PathBuf::from("trailmark-data")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        // `serve` chooses its log from its settings.
        logging::init(logging::Format::Human, logging::Level::Warn);
    }
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Keys(args) => keys_cmd::run(args),
        Command::Verify(args) => verify::run(&args),
        Command::Export(args) => reports_cmd::export(&args),
        Command::Report(args) => reports_cmd::report(&args),
        Command::Capture(args) => capture_cmd::run(args),
        Command::Migrate(args) => migrate_cmd::run(&args),
        Command::Witness(args) => witness_cmd::run(&args),
        Command::Retention(args) => retention_cmd::retention(args),
        Command::Cleanup(args) => retention_cmd::cleanup(&args),
        Command::Hold(args) => retention_cmd::hold(args),
        Command::Erase(args) => retention_cmd::erase(&args),
        Command::Alerts(args) => alerts_cmd::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // Each cause once: a store error already says its source's
            // text, which `{:#}` would repeat.
            eprintln!("error: {}", trailmark_core::told(e.as_ref()));
            ExitCode::from(2)
        }
    }
}
