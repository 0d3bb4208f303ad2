//! `trailmark capture pg install|status|uninstall`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use trailmark_capture::revert::{self, Reverter};
use trailmark_capture::{DrainOptions, LargeTransactionsSeen, Progress, SendError, TableSpec};

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
    /// Create schema trailmark and capture the tables: by statement-level
    /// triggers writing an outbox (--mode trigger), or by decoding the WAL
    /// through publication and slot trailmark (--mode wal; the default where
    /// wal_level is logical). Safe to run again; tables covered before keep
    /// their options and get their capture upgraded.
    ///
    /// Example: trailmark capture pg install --source postgres://app@db/shop --tables public.customer,public.invoice --exclude public.customer.password --soft-delete public.customer.deleted_at --alias public.customer=Customer
    Install {
        /// Tables to cover, comma-separated schema.table (a name in double quotes may hold
        /// dots, spaces and commas, as in SQL).
        #[arg(long, required_unless_present = "all")]
        tables: Vec<String>,
        /// Cover every table of these schemas, comma-separated; a table made in one later is
        /// covered at once (by the event trigger an install as a superuser leaves), else by
        /// the next install.
        #[arg(long, value_name = "SCHEMA")]
        all: Vec<String>,
        /// Columns never copied to the outbox, comma-separated schema.table.column.
        #[arg(long)]
        exclude: Vec<String>,
        /// A flag or timestamp column (schema.table.column) whose setting
        /// is recorded as soft_delete and clearing as restore.
        #[arg(long)]
        soft_delete: Vec<String>,
        /// The resource type a table's events carry: schema.table=Type.
        #[arg(long)]
        alias: Vec<String>,
        /// The column whose value names a table's records in the trail
        /// (resource.name), comma-separated schema.table.column.
        #[arg(long)]
        name_column: Vec<String>,
        /// trigger or wal (default: the mode installed before; on a first
        /// install, wal where wal_level is logical, else trigger).
        #[arg(long)]
        mode: Option<String>,
        /// WAL mode: which old values PostgreSQL logs for a table,
        /// schema.table=full (every column; the default) or =key (the
        /// primary key only: needed for a table with --exclude).
        #[arg(long)]
        replica_identity: Vec<String>,
        /// The role a drainer connects as, granted what it needs in the
        /// installed mode and nothing more (it need not be a superuser; in
        /// WAL mode it needs the REPLICATION attribute).
        #[arg(long, value_name = "ROLE")]
        drainer_role: Option<String>,
    },
    /// Stop capturing, without uninstalling: the tables' triggers are
    /// disabled. The pause is an outbox row of its own, written in the same
    /// transaction, which the drainer records in the trail as
    /// `capture.paused` (with --actor and --reason), so no pause is silent.
    ///
    /// Example: trailmark capture pg pause --source postgres://admin@db/shop --tables public.customer --actor ops-42 --reason "bulk import"
    Pause {
        #[command(flatten)]
        switch: Switch,
    },
    /// Capture again what `pause` stopped (recorded as `capture.resumed`).
    ///
    /// Example: trailmark capture pg resume --source postgres://admin@db/shop --actor ops-42
    Resume {
        #[command(flatten)]
        switch: Switch,
    },
    /// Version, tables covered, outbox depth and lag, the last drained
    /// position, and anything that no longer matches the install.
    ///
    /// Example: trailmark capture pg status --source postgres://app@db/shop
    Status,
    /// Forget the checkpoint the drainer remembers for a tenant, after an
    /// operator has established that the server's current trail is the
    /// right one (the drain stops when the trail no longer extends what this
    /// database saw: a rollback or a fork).
    ///
    /// Example: trailmark capture pg forget-checkpoint --source postgres://app@db/shop --tenant default
    ForgetCheckpoint {
        /// The tenant whose remembered checkpoint to forget.
        #[arg(long)]
        tenant: String,
    },
    /// Drain the outbox into a Trailmark server, in order: each row becomes an
    /// event; rows are deleted only after the server acknowledged them. Event
    /// ids derive from the outbox position, so redelivery stores nothing
    /// twice. Wakes on NOTIFY; several drainers may run: one drains, the
    /// others stand by.
    ///
    /// Example: trailmark capture pg run --source postgres://app@db/shop --server http://127.0.0.1:7878 --key "$TRAILMARK_KEY"
    Run {
        /// The Trailmark server.
        #[arg(long, env = "TRAILMARK_URL", default_value = "http://127.0.0.1:7878")]
        server: String,
        /// A key with the ingest scope.
        #[arg(long, env = "TRAILMARK_KEY", hide_env_values = true)]
        key: String,
        #[arg(long, default_value_t = 1000, help = format!(
            "Rows per request (1 to {}, the server's most events a request)",
            trailmark_wire::MAX_EVENTS_PER_REQUEST
        ))]
        batch: i64,
        /// Under a stream of changes, how long a batch that is not full
        /// waits for more after the one before, 0 to 1000 ms [default: 100].
        #[arg(long)]
        linger_ms: Option<u64>,
        /// Stop when the outbox is empty instead of waiting for more.
        #[arg(long)]
        once: bool,
    },
    /// Print the SQL that undoes one captured change; with --apply, run it
    /// in a transaction attributed to --actor (so the revert is captured
    /// too). Refuses when the row has changed since, unless --force.
    ///
    /// Example: trailmark capture pg revert --source postgres://app@db/shop --event 0193… --server http://127.0.0.1:7878 --key "$TRAILMARK_KEY" --apply --actor admin-7
    Revert {
        /// The id of the captured event to undo.
        #[arg(long)]
        event: String,
        /// The Trailmark server holding the event.
        #[arg(long, env = "TRAILMARK_URL", default_value = "http://127.0.0.1:7878")]
        server: String,
        /// A key with the read scope.
        #[arg(long, env = "TRAILMARK_KEY", hide_env_values = true)]
        key: String,
        /// Run the revert instead of printing it.
        #[arg(long, requires = "actor")]
        apply: bool,
        /// Revert even though the row changed since the event.
        #[arg(long)]
        force: bool,
        /// Who reverts (the actor of the captured revert).
        #[arg(long)]
        actor: Option<String>,
        #[arg(long, default_value = "user")]
        actor_type: String,
        #[arg(long)]
        actor_name: Option<String>,
    },
    /// Remove every Trailmark trigger, the outbox, publication and slot, and
    /// schema trailmark but for trailmark.set_context(jsonb), left as a
    /// no-op so that applications calling it keep working (--purge removes
    /// it too). Refuses while changes are not yet drained, unless
    /// --drop-pending (which records how many were dropped in the trail).
    ///
    /// Example: trailmark capture pg uninstall --source postgres://app@db/shop
    Uninstall {
        /// Remove trailmark.set_context too (once no application calls it:
        /// then a call fails the application's transaction).
        #[arg(long)]
        purge: bool,
        /// Discard changes not yet drained; needs --server and --key to record it.
        #[arg(long, requires_all = ["server", "key"])]
        drop_pending: bool,
        /// The Trailmark server that records a --drop-pending.
        #[arg(long)]
        server: Option<String>,
        /// A key with the ingest scope, for --server.
        #[arg(long, env = "TRAILMARK_KEY", hide_env_values = true)]
        key: Option<String>,
    },
}

/// The flags of `pause` and `resume`.
#[derive(Debug, clap::Args)]
pub struct Switch {
    /// Only these covered tables, comma-separated schema.table (default: all).
    #[arg(long)]
    tables: Vec<String>,
    /// Who switches capture (recorded with the switch).
    #[arg(long)]
    actor: String,
    /// Why (recorded with the switch, kept forever: not personal data).
    #[arg(long)]
    reason: Option<String>,
}

/// `capture pg pause|resume`.
#[allow(clippy::print_stdout)] // the command's output
async fn switch(
    client: &mut tokio_postgres::Client,
    switch: Switch,
    paused: bool,
) -> anyhow::Result<()> {
    if switch.actor.trim().is_empty() {
        anyhow::bail!("--actor: give who switches capture");
    }
    let tables = listed(&switch.tables)
        .iter()
        .map(|t| TableSpec::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    let by = trailmark_capture::CaptureContext {
        actor_id: Some(switch.actor),
        actor_type: Some("user".into()),
        reason: switch.reason,
        ..trailmark_capture::CaptureContext::default()
    };
    let done = trailmark_capture::set_paused(client, &tables, paused, &by).await?;
    let word = if paused { "paused" } else { "resumed" };
    for t in &done.switched {
        println!("{word} capture of {t} (the drainer records capture.{word} in the trail)");
    }
    for t in &done.unchanged {
        println!("{t}: already {word}");
    }
    Ok(())
}

/// Per-table options from the install flags, checked against --tables.
struct TableOptions {
    exclude: Vec<String>,
    soft_delete: Vec<String>,
    alias: Vec<String>,
    name_column: Vec<String>,
    replica_identity: Vec<String>,
}

/// The items of a list flag given once or more, each given value split at
/// commas outside double quotes (a quoted name may hold one).
fn listed(given: &[String]) -> Vec<String> {
    given
        .iter()
        .flat_map(|g| trailmark_capture::split_list(g))
        .collect()
}

fn find<'s>(
    specs: &'s mut [TableSpec],
    table: &TableSpec,
    flag: &str,
    given: &str,
) -> anyhow::Result<&'s mut TableSpec> {
    specs
        .iter_mut()
        .find(|s| s.is_table(table))
        .with_context(|| format!("{flag} {given:?}: {table} is not among the tables to cover"))
}

/// An option naming one column of a table (`schema.table.column`), at
/// most one per table: `--soft-delete`, `--name-column`.
fn one_column(
    specs: &mut [TableSpec],
    given: &[String],
    flag: &str,
    what: &str,
    column_of: fn(&mut TableSpec) -> &mut Option<String>,
) -> anyhow::Result<()> {
    for column in given {
        let Some((table, col)) = TableSpec::parse_column(column) else {
            bail!(
                "{flag} {column:?}: use schema.table.column (a name in double quotes may hold dots)"
            );
        };
        let spec = find(specs, &table, flag, column)?;
        let name = spec.to_string();
        let slot = column_of(spec);
        if slot.is_some() {
            bail!("{flag} {column:?}: {name} already has {what}");
        }
        *slot = Some(col);
    }
    Ok(())
}

fn table_specs(
    mut specs: Vec<TableSpec>,
    options: &TableOptions,
) -> anyhow::Result<Vec<TableSpec>> {
    for column in &options.exclude {
        let Some((table, col)) = TableSpec::parse_column(column) else {
            bail!(
                "--exclude {column:?}: use schema.table.column (a name in double quotes may hold dots)"
            );
        };
        find(&mut specs, &table, "--exclude", column)?
            .exclude
            .push(col);
    }
    one_column(
        &mut specs,
        &options.soft_delete,
        "--soft-delete",
        "a soft-delete column",
        |s| &mut s.soft_delete,
    )?;
    for alias in &options.alias {
        let Some((table, name)) = trailmark_capture::split_assignment(alias) else {
            bail!("--alias {alias:?}: use schema.table=Type, e.g. public.crm_customer=Customer");
        };
        find(&mut specs, &TableSpec::parse(table)?, "--alias", alias)?.resource_type =
            Some(name.trim().to_owned());
    }
    one_column(
        &mut specs,
        &options.name_column,
        "--name-column",
        "a name column",
        |s| &mut s.name_column,
    )?;
    for given in &options.replica_identity {
        let Some((table, identity)) = trailmark_capture::split_assignment(given) else {
            bail!("--replica-identity {given:?}: use schema.table=full or schema.table=key");
        };
        find(
            &mut specs,
            &TableSpec::parse(table)?,
            "--replica-identity",
            given,
        )?
        .replica_identity = Some(trailmark_capture::ReplicaIdentity::parse(identity.trim())?);
    }
    Ok(specs)
}

/// Sends drained events to a server through the Rust client: busy, not
/// found and refused are told by the client's typed errors.
struct HttpSink(trailmark_client::Client);

/// The bound of one call of the drainer to the server (a batch of 5,000
/// events is stored in well under a second; past this the server is taken
/// for unreachable and the batch is sent again, under the same ids).
const SINK_TIMEOUT: Duration = Duration::from_secs(120);

impl HttpSink {
    fn new(server: &str, key: &str) -> anyhow::Result<Self> {
        Ok(Self(trailmark_client::Client::new(
            server,
            key,
            SINK_TIMEOUT,
        )?))
    }

    /// Runs a blocking call of the client off the runtime's thread.
    async fn call<T: Send + 'static>(
        &self,
        call: impl FnOnce(&trailmark_client::Client) -> Result<T, trailmark_client::Error>
        + Send
        + 'static,
    ) -> Result<T, trailmark_client::Error> {
        let client = self.0.clone();
        tokio::task::spawn_blocking(move || call(&client))
            .await
            .unwrap_or_else(|e| Err(trailmark_client::Error::Transport(e.to_string())))
    }
}

fn sink_error(e: trailmark_client::Error) -> SendError {
    match e {
        trailmark_client::Error::Busy { retry_after, .. } => {
            SendError::Busy(retry_after.unwrap_or(Duration::from_secs(1)))
        }
        e @ trailmark_client::Error::Rejected(_) => SendError::Failed(format!("400: {e}")),
        // The batch before is not stored yet (the server waited for it
        // already): sent again while that one's answer is awaited, which
        // ends the drain if it failed.
        trailmark_client::Error::PreconditionFailed(_) => {
            SendError::Busy(Duration::from_millis(100))
        }
        e => SendError::Failed(e.to_string()),
    }
}

impl trailmark_capture::Sink for HttpSink {
    /// The request body: the events as NDJSON (the server parses a large
    /// batch's lines side by side), written while the batch before is sent.
    type Batch = Arc<Vec<u8>>;

    fn batch(&self, events: Vec<trailmark_core::Event>) -> Result<Arc<Vec<u8>>, SendError> {
        let mut body = Vec::new();
        for event in &events {
            serde_json::to_writer(&mut body, &event.producer_json())
                .map_err(|e| SendError::Failed(format!("writing the batch as JSON: {e}")))?;
            body.push(b'\n');
        }
        Ok(Arc::new(body))
    }

    /// The next batch is sent while the one before is appended, with
    /// `Trailmark-After` naming that one's last event.
    const PIPELINED: bool = true;

    async fn send(
        &self,
        batch: &mut Arc<Vec<u8>>,
        after: Option<&trailmark_capture::After>,
    ) -> Result<Vec<String>, SendError> {
        // Shared, not taken: a batch answered busy is sent again as it is.
        let body = Arc::clone(batch);
        let after = after.cloned();
        let stored = self
            .call(move |c| match &after {
                Some(a) => c.ingest_ndjson_after(&body, a.tenant.as_deref(), &a.id.to_string()),
                None => c.ingest_ndjson(&body),
            })
            .await
            .map_err(sink_error)?;
        let mut tenants: Vec<String> = stored.entries.into_iter().map(|e| e.tenant).collect();
        tenants.sort();
        tenants.dedup();
        Ok(tenants)
    }

    async fn checkpoint(&self, tenant: &str) -> Result<Option<(String, String)>, SendError> {
        let t = tenant.to_owned();
        let note = match self
            .call(move |c| c.get_text("/v1/checkpoint", &[("tenant", &t)]))
            .await
        {
            Ok(note) => note,
            // No checkpoint yet: an answer, not a failure.
            Err(trailmark_client::Error::NotFound(_)) => return Ok(None),
            Err(e) => return Err(sink_error(e)),
        };
        let t = tenant.to_owned();
        let key = self
            .call(move |c| c.get_text("/v1/verifier-key", &[("tenant", &t)]))
            .await
            .map_err(sink_error)?;
        Ok(Some((note, key.trim().to_owned())))
    }

    async fn signing_keys(&self) -> Result<Vec<trailmark_verify::KeyRecordView>, SendError> {
        self.call(trailmark_client::Client::signing_keys)
            .await
            .map_err(sink_error)
    }

    async fn consistency(
        &self,
        tenant: &str,
        first: u64,
        second: u64,
    ) -> Result<Vec<String>, SendError> {
        let t = tenant.to_owned();
        let proof: trailmark_wire::ConsistencyProof = self
            .call(move |c| {
                c.get(
                    "/v1/proofs/consistency",
                    &[
                        ("tenant", &t),
                        ("first", &first.to_string()),
                        ("second", &second.to_string()),
                    ],
                )
            })
            .await
            .map_err(sink_error)?;
        Ok(proof.hashes)
    }
}

pub fn run(args: CaptureArgs) -> anyhow::Result<ExitCode> {
    let CaptureSource::Pg(pg) = args.source;
    let source = pg
        .source
        .context("--source is required: the application database URL")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        if let PgCommand::Run {
            server,
            key,
            batch,
            linger_ms,
            once,
        } = &pg.command
        {
            let options = DrainOptions {
                batch: trailmark_capture::batch_of(*batch)
                    .map_err(|e| anyhow::anyhow!("--batch: {e}"))?,
                linger: linger_ms
                    .map_or(Ok(trailmark_capture::LINGER), trailmark_capture::linger_of)
                    .map_err(|e| anyhow::anyhow!("--linger-ms: {e}"))?,
                once: *once,
                name: format!("capture pg run on {}", hostname()),
                ..DrainOptions::default()
            };
            return drain_to(&source, server, key, &options).await;
        }
        let (mut client, connection) = trailmark_capture::source(&source)
            .context("--source")?
            .connect()
            .await
            .context("connecting to --source")?;
        tokio::spawn(connection);
        match pg.command {
            PgCommand::Install {
                tables,
                all,
                exclude,
                soft_delete,
                alias,
                name_column,
                mode,
                replica_identity,
                drainer_role,
            } => {
                let options = TableOptions {
                    exclude: listed(&exclude),
                    soft_delete: listed(&soft_delete),
                    alias: listed(&alias),
                    name_column: listed(&name_column),
                    replica_identity: listed(&replica_identity),
                };
                let mode = mode
                    .as_deref()
                    .map(trailmark_capture::Mode::parse)
                    .transpose()
                    .context("--mode")?;
                let (tables, all) = (listed(&tables), listed(&all));
                install(&mut client, &source, &tables, &all, &options, mode).await?;
                if let Some(role) = drainer_role {
                    trailmark_capture::grant_drainer(&mut client, &role)
                        .await
                        .context("capture is installed, but the drainer's role was not granted")?;
                    #[allow(clippy::print_stdout)] // the command's output
                    {
                        println!("drainer role {role}: granted what a drainer needs");
                    }
                }
            }
            PgCommand::ForgetCheckpoint { tenant } => forget(&client, &tenant).await?,
            PgCommand::Status => status(&client).await?,
            PgCommand::Pause { switch: s } => switch(&mut client, s, true).await?,
            PgCommand::Resume { switch: s } => switch(&mut client, s, false).await?,
            PgCommand::Revert {
                event,
                server,
                key,
                apply,
                force,
                actor,
                actor_type,
                actor_name,
            } => {
                let by = (actor, actor_type, actor_name);
                return revert_event(&mut client, &event, &server, &key, apply, force, by).await;
            }
            PgCommand::Uninstall {
                purge,
                drop_pending,
                server,
                key,
            } => uninstall(&mut client, (drop_pending, purge), (server, key)).await?,
            PgCommand::Run { .. } => unreachable!("handled above"),
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `capture pg run`: drains the outbox to a server over HTTP.
async fn drain_to(
    source: &str,
    server: &str,
    key: &str,
    options: &DrainOptions,
) -> anyhow::Result<ExitCode> {
    let sink = HttpSink::new(server, key)?;
    let moved = trailmark_capture::drain(source, &sink, options, &report).await?;
    eprintln!("outbox drained: {moved} rows sent");
    Ok(ExitCode::SUCCESS)
}

/// `capture pg install`: covers the tables named and every table of the
/// schemas named, and says what each got.
#[allow(clippy::print_stdout)] // the command's output
async fn install(
    client: &mut tokio_postgres::Client,
    source: &str,
    tables: &[String],
    all: &[String],
    options: &TableOptions,
    mode: Option<trailmark_capture::Mode>,
) -> anyhow::Result<()> {
    let mut specs = tables
        .iter()
        .map(|t| TableSpec::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    for schema in all {
        for spec in trailmark_capture::tables_in_schema(client, schema).await? {
            if !specs.contains(&spec) {
                specs.push(spec);
            }
        }
    }
    let specs = table_specs(specs, options)?;
    let installed = trailmark_capture::install(client, &specs, mode).await?;
    trailmark_capture::cover_whole_schemas(client, all).await?;
    println!(
        "mode {}: {}",
        installed.mode.as_str(),
        installed.mode_reason
    );
    if let Some(v) = installed.previous_version
        && v != trailmark_capture::VERSION
    {
        println!(
            "upgraded capture from version {v} to {}",
            trailmark_capture::VERSION
        );
    }
    for (table, pk) in &installed.tables {
        let key = if pk.is_empty() {
            "no primary key: rows are identified by their content".to_owned()
        } else {
            format!("key ({})", pk.join(", "))
        };
        let mut options = vec![key];
        if !table.exclude.is_empty() {
            options.push(format!("excluding {}", table.exclude.join(", ")));
        }
        if let Some(c) = &table.soft_delete {
            options.push(format!("soft delete by {c}"));
        }
        if let Some(t) = &table.resource_type {
            options.push(format!("recorded as {t}"));
        }
        if let Some(c) = &table.name_column {
            options.push(format!("named by {c}"));
        }
        if installed.mode == trailmark_capture::Mode::Wal {
            let identity = table
                .replica_identity
                .unwrap_or(trailmark_capture::ReplicaIdentity::Full);
            options.push(format!("replica identity {}", identity.as_str()));
        }
        println!("covered {table}: {}", options.join(", "));
    }
    if installed.refreshed > 0 {
        println!(
            "({} covered before, kept their options, triggers regenerated)",
            installed.refreshed
        );
    }
    for warning in &installed.warnings {
        eprintln!("warning: {warning}");
    }
    // The drainer's connection is often the one install was given: say now
    // what it would refuse, not when the first change waits.
    if installed.mode == trailmark_capture::Mode::Wal
        && let Err(e) = trailmark_capture::check_wal_source(source)
    {
        eprintln!(
            "warning: installed, but a drainer (`capture pg run`, serve's [capture]) cannot stream through this --source: {e}"
        );
    }
    Ok(())
}

/// `capture pg forget-checkpoint`.
#[allow(clippy::print_stdout)] // the command's output
async fn forget(client: &tokio_postgres::Client, tenant: &str) -> anyhow::Result<()> {
    if trailmark_capture::seen::forget(client, tenant).await? {
        println!(
            "forgot the checkpoint remembered for {tenant}: the next drain trusts the server's current trail"
        );
    } else {
        println!("no checkpoint was remembered for {tenant}");
    }
    Ok(())
}

/// `capture pg status`.
#[allow(clippy::print_stdout)] // the command's output
async fn status(client: &tokio_postgres::Client) -> anyhow::Result<()> {
    let s = trailmark_capture::status(client).await?;
    println!("capture version {}", s.version);
    let level = trailmark_capture::wal_level(client).await?;
    match trailmark_capture::installed_mode(client).await? {
        Some(trailmark_capture::Mode::Wal) => println!(
            "mode wal: publication {} decoded through slot {} (wal_level {level})",
            trailmark_capture::PUBLICATION,
            trailmark_capture::slot_name(client).await?
        ),
        _ if level == "logical" => println!(
            "mode trigger: triggers write the outbox (wal_level is logical: install --mode wal moves capture off the application's transactions)"
        ),
        _ => println!(
            "mode trigger: triggers write the outbox (wal_level is {level}; WAL mode needs logical)"
        ),
    }
    let slot = trailmark_capture::slot_status(client).await?;
    if slot.is_none()
        && trailmark_capture::installed_mode(client).await? == Some(trailmark_capture::Mode::Wal)
    {
        println!(
            "needs attention: replication slot {} is gone: changes since it went were not captured (a capture gap); install again to create it",
            trailmark_capture::slot_name(client).await?
        );
    }
    if let Some(slot) = slot {
        println!(
            "slot {}: {}, {} bytes of WAL retained, {} bytes not yet in the ledger (acknowledged up to {}), wal_status {}, max_slot_wal_keep_size {}",
            slot.name,
            if slot.active {
                "a drainer is reading"
            } else {
                "no drainer connected"
            },
            slot.retained_bytes,
            slot.lag_bytes,
            slot.confirmed.as_deref().unwrap_or("nothing"),
            slot.wal_status.as_deref().unwrap_or("unknown"),
            slot.max_keep
        );
        if slot.wal_status.as_deref() == Some("lost") {
            println!(
                "needs attention: slot {} lost WAL it needed (max_slot_wal_keep_size exceeded): changes were not captured (a capture gap)",
                slot.name
            );
        }
        match trailmark_capture::large_transactions(client, &slot.name).await? {
            LargeTransactionsSeen::Counted(large) => println!(
                "large transactions (past logical_decoding_work_mem, {}): streamed to the drainer in progress, {} so far ({} bytes); spilled by the server, {} ({} bytes)",
                large.work_mem,
                large.streamed,
                large.streamed_bytes,
                large.spilled,
                large.spilled_bytes
            ),
            LargeTransactionsSeen::Unstreamable => println!(
                "large transactions (past logical_decoding_work_mem): spilled by the server and sent at their commit (PostgreSQL 13 cannot stream them in progress)"
            ),
            LargeTransactionsSeen::NoStatistics => println!(
                "large transactions: no statistics for slot {} (dropped since it was read?): run status again",
                slot.name
            ),
        }
    }
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
    match &s.last_drained {
        Some((id, total, at, by)) => {
            println!("last drained: outbox id {id} at {at} by {by} ({total} rows in all)");
        }
        None => println!("last drained: never"),
    }
    for (table, since) in &s.paused {
        println!(
            "paused: {table} since {since} (nothing it writes is captured; capture pg resume)"
        );
    }
    for d in &s.drift {
        println!("needs attention: {d}");
    }
    Ok(())
}

/// `capture pg revert`: prints the SQL that undoes a captured change, or
/// (`--apply`) runs it as the named actor. Exit 3: the row changed since.
#[allow(clippy::print_stdout)] // the command's output
async fn revert_event(
    client: &mut tokio_postgres::Client,
    event: &str,
    server: &str,
    key: &str,
    apply: bool,
    force: bool,
    (actor, actor_type, actor_name): (Option<String>, String, Option<String>),
) -> anyhow::Result<ExitCode> {
    let http = crate::source::Http::new(server, key)?;
    let path = format!("/v1/events/{event}");
    let found = tokio::task::spawn_blocking(move || http.get_json(&path, &[]))
        .await?
        .with_context(|| format!("fetching event {event}"))?;
    let captured = found.get("event").unwrap_or(&found).clone();
    if apply {
        let by = Reverter {
            actor_id: actor.context("--apply needs --actor: who reverts")?,
            actor_type,
            actor_name,
        };
        let done = revert::apply(client, &captured, &by, force).await?;
        println!(
            "reverted event {} in {}: {} done, captured as the change of {}",
            done.event_id, done.table, done.does, by.actor_id
        );
    } else {
        let plan = revert::plan(client, &captured).await?;
        println!(
            "-- revert of event {} ({} in {})",
            plan.event_id, plan.does, plan.table
        );
        if let Some(why) = &plan.why_changed {
            println!("-- WARNING: {why}; --apply refuses this without --force");
        }
        println!("BEGIN;");
        let by = Reverter {
            actor_id: actor.unwrap_or_else(|| "YOUR-ID".into()),
            actor_type,
            actor_name,
        };
        println!("{}", revert::context_sql(&plan, &by));
        println!("{}", plan.statement);
        println!("COMMIT;");
        if !plan.unchanged_since {
            return Ok(ExitCode::from(3));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `capture pg uninstall`: refuses while changes wait, unless
/// `--drop-pending`, which is recorded in the trail first.
#[allow(clippy::print_stdout)] // the command's output
async fn uninstall(
    client: &mut tokio_postgres::Client,
    (drop_pending, purge): (bool, bool),
    (server, key): (Option<String>, Option<String>),
) -> anyhow::Result<()> {
    if drop_pending {
        // Recorded before anything is dropped: the trail says it
        // even if the uninstall then fails.
        let status = trailmark_capture::status(client).await?;
        let http = crate::source::Http::new(
            server.as_deref().unwrap_or_default(),
            key.as_deref().unwrap_or_default(),
        )?;
        let event = serde_json::json!({
            "action": "capture.pending_dropped",
            "actor": {"id": "trailmark-cli", "type": "system"},
            "reason": "capture pg uninstall --drop-pending",
            "metadata": {"outbox_rows": status.outbox_depth, "host": hostname()},
        });
        tokio::task::spawn_blocking(move || http.post_json("/v1/events", &event))
            .await?
            .context("recording --drop-pending in the trail")?;
    }
    let removed = trailmark_capture::uninstall(client, drop_pending, purge).await?;
    if purge {
        println!(
            "removed capture from {} tables and dropped schema trailmark",
            removed.tables.len()
        );
    } else {
        println!(
            "removed capture from {} tables; schema trailmark keeps only set_context(jsonb), \
             a no-op, so that applications calling it keep working \
             (`capture pg uninstall --purge` removes it once none does)",
            removed.tables.len()
        );
    }
    if removed.dropped > 0 {
        println!("dropped {} changes that were not drained", removed.dropped);
    }
    Ok(())
}

#[allow(clippy::needless_pass_by_value)]
fn report(progress: Progress) {
    match progress {
        Progress::StandingBy => {
            eprintln!("another drainer holds the outbox: standing by to take over");
        }
        Progress::Draining => eprintln!("draining the outbox"),
        Progress::Sent { .. } => {}
        Progress::Unstreamed { xid } => eprintln!(
            "transaction {xid} set its context inside a savepoint streaming cannot place: decoding on without streaming"
        ),
        Progress::NoHeartbeat { reason } => eprintln!(
            "warning: no heartbeat for the replication slot ({reason}): while the captured tables are quiet the slot keeps the WAL others write (docs/CAPTURE.md, \"Quiet tables\"); draining on"
        ),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map_or_else(|_| "localhost".into(), |h| h.trim().to_owned())
        + &format!(" pid {}", std::process::id())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::{Read as _, Write as _};
    use std::time::Duration;

    use trailmark_capture::{SendError, Sink as _};

    use super::HttpSink;

    /// A server that answers `requests` requests with this status line,
    /// extra headers and body.
    fn answering(status: &str, headers: &str, body: &str, requests: usize) -> String {
        let answer = format!(
            "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming().take(requests) {
                let mut stream = stream.unwrap();
                let mut buf = vec![0u8; 65536];
                let _ = stream.read(&mut buf);
                stream.write_all(answer.as_bytes()).unwrap();
            }
        });
        url
    }

    fn one_event() -> Vec<trailmark_core::Event> {
        let json = serde_json::json!({"actor": {"id": "a", "type": "user"}, "action": "update"});
        vec![trailmark_core::Event::from_json(&json).unwrap()]
    }

    /// Busy is told by the status and its Retry-After, not by a "429"
    /// somewhere in a message; other refusals fail the batch.
    #[tokio::test]
    async fn a_busy_server_is_retried_after_what_it_asks_and_a_refusal_fails() {
        let busy = answering("429 Too Many Requests", "Retry-After: 7\r\n", "{}", 1);
        let sink = HttpSink::new(&busy, "k").unwrap();
        let mut batch = sink.batch(one_event()).unwrap();
        let body = batch.to_vec();
        match sink.send(&mut batch, None).await {
            Err(SendError::Busy(after)) => assert_eq!(after, Duration::from_secs(7)),
            other => panic!("{other:?}"),
        }
        // Left as it was, to be sent again.
        assert_eq!(*batch, body);
        // A 400 whose body mentions 429 is a failure, not busy.
        let refused = answering(
            "400 Bad Request",
            "",
            r#"{"error":"events[429].id: bad value"}"#,
            1,
        );
        let sink = HttpSink::new(&refused, "k").unwrap();
        match sink.send(&mut sink.batch(one_event()).unwrap(), None).await {
            Err(SendError::Failed(m)) => assert!(m.contains("400"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    /// A batch sent after another that the server has not stored (412) is
    /// sent again shortly, as the drain awaits that one's answer; the
    /// request names the batch before by tenant and id.
    #[tokio::test]
    async fn a_batch_whose_predecessor_is_not_stored_yet_is_sent_again() {
        let (seen, told) = std::sync::mpsc::channel::<String>();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = vec![0u8; 65536];
            let n = stream.read(&mut buf).unwrap();
            seen.send(String::from_utf8_lossy(&buf[..n]).into_owned())
                .unwrap();
            let body = r#"{"error":"Trailmark-After: event … is not in tenant acme's trail"}"#;
            let answer = format!(
                "HTTP/1.1 412 Precondition Failed\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(answer.as_bytes()).unwrap();
        });
        let sink = HttpSink::new(&url, "k").unwrap();
        let after = trailmark_capture::After {
            tenant: Some("acme".into()),
            id: trailmark_core::EventId::parse("0192f0c2-5a1e-7c4b-9d10-6f1b2a3c4d5e").unwrap(),
        };
        match sink
            .send(&mut sink.batch(one_event()).unwrap(), Some(&after))
            .await
        {
            Err(SendError::Busy(wait)) => assert!(wait <= Duration::from_secs(1), "{wait:?}"),
            other => panic!("{other:?}"),
        }
        let request = told.recv().unwrap().to_ascii_lowercase();
        assert!(
            request.contains("trailmark-after: acme/0192f0c2-5a1e-7c4b-9d10-6f1b2a3c4d5e"),
            "{request}"
        );
    }
}
