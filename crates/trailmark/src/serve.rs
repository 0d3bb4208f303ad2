//! `trailmark serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use std::time::Duration;

use trailmark_capture::{DrainOptions, Progress, SendError};
use trailmark_core::TenantId;
use trailmark_log::SigningKey;
use trailmark_server::witness::WitnessConfig;
use trailmark_server::{App, Settings, checkpointer, router};
use trailmark_store::{Scopes, SigningKeyRecord, Store};
use trailmark_store_postgres::PgStore;
use trailmark_store_sqlite::SqliteStore;

use crate::datadir;

/// Settings come from flags, then environment variables, then the optional
/// TOML file (`--config`), then the defaults shown.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML file with any of: data_dir, listen, origin_prefix,
    /// queue_capacity, max_tenants, max_body_bytes, database, cleanup_interval, alert_rules, and a
    /// [capture] table with source, tenant, batch.
    #[arg(long, env = "TRAILMARK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the database, signing seed and bootstrap key live [default: trailmark-data].
    #[arg(long, env = "TRAILMARK_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:7878].
    #[arg(long, env = "TRAILMARK_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Checkpoints are signed with origin `<prefix>/<tenant>` [default: trailmark.local].
    #[arg(long, env = "TRAILMARK_ORIGIN_PREFIX")]
    pub origin_prefix: Option<String>,
    /// Events that may wait for the disk at once before ingest answers 429 [default: 100000].
    #[arg(long, env = "TRAILMARK_QUEUE_CAPACITY")]
    pub queue_capacity: Option<usize>,
    /// Most tenants the trail may hold (each a tree of its own, with its
    /// own keys, looked at by every sweep of the checkpointer); an event
    /// that would make one more is refused [default: 100000].
    #[arg(long, env = "TRAILMARK_MAX_TENANTS")]
    pub max_tenants: Option<usize>,
    /// Largest request body, in bytes [default: 8388608].
    #[arg(long, env = "TRAILMARK_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Seconds between retention cleanups (0: none; `trailmark cleanup`
    /// still runs one) [default: 3600].
    #[arg(long, env = "TRAILMARK_CLEANUP_INTERVAL")]
    pub cleanup_interval: Option<u64>,
    /// A TOML file with every alert rule (docs/ALERTS.md), replacing the
    /// defaults; a rule with `enabled = false` is off [default: the defaults].
    #[arg(long, env = "TRAILMARK_ALERT_RULES")]
    pub alert_rules: Option<PathBuf>,
    /// Keep the ledger in this PostgreSQL database (postgres://…) instead of
    /// the embedded SQLite file in the data dir; several servers may share it.
    #[arg(long, env = "TRAILMARK_DATABASE", hide_env_values = true)]
    pub database: Option<String>,
    /// Drain the capture outbox of this application database (installed
    /// with `trailmark capture pg install`) into this server's ledger.
    #[arg(long, env = "TRAILMARK_CAPTURE_SOURCE", hide_env_values = true)]
    pub capture_source: Option<String>,
    /// The tenant captured changes go to unless their transaction set
    /// trailmark.tenant [default: default].
    #[arg(long, env = "TRAILMARK_CAPTURE_TENANT")]
    pub capture_tenant: Option<String>,
    /// Under a stream of changes, how long a captured batch that is not
    /// full waits for more after the one before, 0 to 1000 ms: longer means
    /// fewer appends (less CPU), a change reaching the ledger later [default: 100].
    #[arg(long, env = "TRAILMARK_CAPTURE_LINGER_MS")]
    pub capture_linger_ms: Option<u64>,
    /// The signing seed file (64 hex digits, mode 0600), kept apart from the
    /// data; created on first start if missing [default: <data-dir>/signing.seed].
    #[arg(long, env = "TRAILMARK_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
    /// A C2SP tlog-witness to submit every checkpoint to, as
    /// NAME+KEYID+KEY@URL (the witness's vkey, then its URL). Repeatable.
    #[arg(long = "witness", value_name = "VKEY@URL")]
    pub witnesses: Vec<String>,
    /// A reverse proxy (an address, or a network as ADDR/BITS) whose
    /// `Forwarded` / `X-Forwarded-For` names the client in the `_system`
    /// records of what callers do (`context.ip`); repeatable, or a comma
    /// list in the variable [default: none: the TCP peer is the client].
    #[arg(
        long = "trusted-proxy",
        value_name = "ADDR[/BITS]",
        env = "TRAILMARK_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<String>,
    /// A PEM file of the certificate authorities that webhook receivers'
    /// and witnesses' HTTPS certificates must be signed by, instead of the
    /// Mozilla roots built in.
    #[arg(long, env = trailmark_client::https::CA_FILE_VAR)]
    pub ca_file: Option<PathBuf>,
    /// Connections open at once; more wait until one closes [default: 512].
    #[arg(long, env = "TRAILMARK_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Seconds a request's head may take to arrive, and an idle connection
    /// may wait for its next request [default: 10].
    #[arg(long, env = "TRAILMARK_HEADER_TIMEOUT")]
    pub header_timeout: Option<u64>,
    /// Seconds a request may take, body included, until its answer starts [default: 60].
    #[arg(long, env = "TRAILMARK_REQUEST_TIMEOUT")]
    pub request_timeout: Option<u64>,
    /// Log lines on stderr as human-readable text or JSON [default: human].
    #[arg(long, env = "TRAILMARK_LOG_FORMAT", value_enum)]
    pub log_format: Option<crate::logging::Format>,
    /// The least severe log lines written; debug adds one per request [default: info].
    #[arg(long, env = "TRAILMARK_LOG_LEVEL", value_enum)]
    pub log_level: Option<crate::logging::Level>,
}

/// The optional configuration file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    origin_prefix: Option<String>,
    queue_capacity: Option<usize>,
    max_tenants: Option<usize>,
    max_body_bytes: Option<usize>,
    cleanup_interval: Option<u64>,
    alert_rules: Option<PathBuf>,
    database: Option<String>,
    signing_key: Option<PathBuf>,
    #[serde(default)]
    witnesses: Vec<String>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    ca_file: Option<PathBuf>,
    max_connections: Option<usize>,
    header_timeout: Option<u64>,
    request_timeout: Option<u64>,
    log_format: Option<crate::logging::Format>,
    log_level: Option<crate::logging::Level>,
    capture: Option<CaptureConfig>,
}

/// `[capture]` in the configuration file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CaptureConfig {
    source: Option<String>,
    tenant: Option<String>,
    batch: Option<i64>,
    linger_ms: Option<u64>,
}

/// The settings in force.
#[derive(Debug)]
struct Resolved {
    data_dir: PathBuf,
    listen: SocketAddr,
    origin_prefix: String,
    queue_capacity: usize,
    max_tenants: usize,
    max_body_bytes: usize,
    cleanup_interval: Option<std::time::Duration>,
    /// The rules of `--alert-rules`, when given (else the stored ones).
    alert_rules: Option<trailmark_server::alerts::Rules>,
    database: Option<String>,
    signing_key: PathBuf,
    witnesses: Vec<WitnessConfig>,
    trusted_proxies: trailmark_core::TrustedProxies,
    /// The TLS of webhooks and witnesses.
    https: trailmark_client::https::TlsConfig,
    limits: crate::http::Limits,
    capture: Option<Capture>,
    log_format: crate::logging::Format,
    log_level: crate::logging::Level,
}

#[derive(Debug)]
struct Capture {
    source: String,
    /// `source` read for connecting (the drain reads it again from the
    /// text, which WAL mode's replication connection takes as it is).
    connection: trailmark_pg::Source,
    tenant: TenantId,
    batch: i64,
    linger: Duration,
}

/// A list setting: the one given (flags or the variable) replaces the
/// file's whole.
fn given_or_file<T>(given: Vec<T>, file: Vec<T>) -> Vec<T> {
    if given.is_empty() { file } else { given }
}

/// The trusted proxies given (flags or the variable), else the file's.
fn trusted_proxies(
    given: Vec<String>,
    file: Vec<String>,
) -> anyhow::Result<trailmark_core::TrustedProxies> {
    trailmark_core::TrustedProxies::parse(given_or_file(given, file)).map_err(|e| {
        anyhow::anyhow!("{e} (--trusted-proxy, TRAILMARK_TRUSTED_PROXIES, trusted_proxies)")
    })
}

/// The server's routes, each request bounded by `timeout`, each knowing
/// the proxies whose forwarding headers name its client (the `_system`
/// records' `context.ip`).
fn routes<S: Store>(
    app: &Arc<App<S>>,
    proxies: trailmark_core::TrustedProxies,
    timeout: Duration,
) -> axum::Router {
    if !proxies.is_empty() {
        tracing::info!("believing Forwarded / X-Forwarded-For from the trusted proxies {proxies}");
    }
    let proxies = axum::Extension(Arc::new(proxies));
    crate::http::with_request_timeout(router(Arc::clone(app)).layer(proxies), timeout)
}

/// The configuration file, or none.
fn read_config(path: Option<&PathBuf>) -> anyhow::Result<FileConfig> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the config file {}", path.display()))?;
    toml::from_str::<FileConfig>(&text)
        .with_context(|| format!("{}: not a valid Trailmark config", path.display()))
}

/// The drainer's settings, flags before the file's `[capture]`; none
/// without a source.
fn resolve_capture(
    source: Option<String>,
    tenant: Option<String>,
    linger_ms: Option<u64>,
    file: CaptureConfig,
) -> anyhow::Result<Option<Capture>> {
    let Some(source) = source.or(file.source) else {
        return Ok(None);
    };
    let tenant = tenant.or(file.tenant).unwrap_or_else(|| "default".into());
    // Read now, so that a bad setting (an unknown sslmode, say) stops the
    // start, named, instead of each connection attempt failing later.
    let connection = trailmark_capture::source(&source)
        .map_err(|e| anyhow::anyhow!("capture source (--capture-source, [capture] source): {e}"))?;
    Ok(Some(Capture {
        source,
        connection,
        tenant: TenantId::new(&tenant)
            .map_err(|e| anyhow::anyhow!("capture tenant {tenant:?}: {e}"))?,
        batch: trailmark_capture::batch_of(file.batch.unwrap_or(trailmark_capture::MAX_BATCH))
            .map_err(|e| anyhow::anyhow!("[capture] batch: {e}"))?,
        linger: linger_ms
            .or(file.linger_ms)
            .map_or(Ok(trailmark_capture::LINGER), trailmark_capture::linger_of)
            .map_err(|e| {
                anyhow::anyhow!("capture linger (--capture-linger-ms, [capture] linger_ms): {e}")
            })?,
    }))
}

fn resolve(args: ServeArgs) -> anyhow::Result<Resolved> {
    let file = read_config(args.config.as_ref())?;
    let capture = resolve_capture(
        args.capture_source,
        args.capture_tenant,
        args.capture_linger_ms,
        file.capture.unwrap_or_default(),
    )?;
    let database = args.database.or(file.database);
    if let Some(url) = &database
        && !(url.starts_with("postgres://")
            || url.starts_with("postgresql://")
            || url.contains("host="))
    {
        anyhow::bail!(
            "database: give a PostgreSQL URL (postgres://user@host/db); leave it unset for the embedded store"
        );
    }
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(crate::default_data_dir);
    if data_dir.as_os_str().is_empty() {
        anyhow::bail!(
            "data_dir: empty: name a directory, or leave it out for ./{}",
            crate::default_data_dir().display()
        );
    }
    let https = trailmark_client::https::tls_config(args.ca_file.or(file.ca_file).as_deref())
        .map_err(|e| anyhow::anyhow!("ca file (--ca-file, TRAILMARK_CA_FILE, ca_file): {e}"))?;
    let witnesses = given_or_file(args.witnesses, file.witnesses)
        .iter()
        .map(|w| {
            WitnessConfig::parse(w, https.clone()).map_err(|e| anyhow::anyhow!("witness {w}: {e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let trusted_proxies = trusted_proxies(args.trusted_proxies, file.trusted_proxies)?;
    let limits = crate::http::Limits {
        max_connections: args.max_connections.or(file.max_connections).unwrap_or(512),
        header_timeout: Duration::from_secs(
            args.header_timeout.or(file.header_timeout).unwrap_or(10),
        ),
        request_timeout: Duration::from_secs(
            args.request_timeout.or(file.request_timeout).unwrap_or(60),
        ),
        shutdown_deadline: Duration::from_secs(10),
    };
    if limits.max_connections == 0
        || limits.header_timeout.is_zero()
        || limits.request_timeout.is_zero()
    {
        anyhow::bail!("max_connections, header_timeout and request_timeout must be at least 1");
    }
    let resolved = Resolved {
        log_format: args.log_format.or(file.log_format).unwrap_or_default(),
        log_level: args.log_level.or(file.log_level).unwrap_or_default(),
        database,
        capture,
        witnesses,
        trusted_proxies,
        https,
        limits,
        signing_key: args
            .signing_key
            .or(file.signing_key)
            .unwrap_or_else(|| data_dir.join(datadir::SEED_FILE)),
        data_dir,
        listen: args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7878))),
        origin_prefix: args
            .origin_prefix
            .or(file.origin_prefix)
            .unwrap_or_else(|| "trailmark.local".into()),
        queue_capacity: args
            .queue_capacity
            .or(file.queue_capacity)
            .unwrap_or(100_000),
        max_tenants: args
            .max_tenants
            .or(file.max_tenants)
            .unwrap_or(trailmark_server::DEFAULT_MAX_TENANTS),
        max_body_bytes: args
            .max_body_bytes
            .or(file.max_body_bytes)
            .unwrap_or(8 * 1024 * 1024),
        cleanup_interval: cleanup_interval(args.cleanup_interval.or(file.cleanup_interval)),
        alert_rules: alert_rules(args.alert_rules.or(file.alert_rules))?,
    };
    within_bounds(&resolved)?;
    Ok(resolved)
}

/// Refuses a size setting out of its range, naming it.
fn within_bounds(resolved: &Resolved) -> anyhow::Result<()> {
    for (value, name) in [
        (resolved.queue_capacity, "--queue-capacity (queue_capacity)"),
        (resolved.max_tenants, "--max-tenants (max_tenants)"),
    ] {
        if value == 0 {
            anyhow::bail!("{name} must be at least 1");
        }
    }
    if resolved.max_body_bytes < 1024 {
        anyhow::bail!(
            "--max-body-bytes (max_body_bytes) must be at least 1024, got {}",
            resolved.max_body_bytes
        );
    }
    Ok(())
}

/// The alert rules of a TOML file, when one is given.
fn alert_rules(path: Option<PathBuf>) -> anyhow::Result<Option<trailmark_server::alerts::Rules>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the alert rules {}", path.display()))?;
    trailmark_server::alerts::Rules::from_toml(&text)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("the alert rules {}: {e}", path.display()))
}

/// Seconds between scheduled cleanups: 0 turns them off.
fn cleanup_interval(secs: Option<u64>) -> Option<std::time::Duration> {
    match secs {
        Some(0) => None,
        Some(secs) => Some(std::time::Duration::from_secs(secs)),
        None => Some(trailmark_server::retention::DEFAULT_CLEANUP_INTERVAL),
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let args = resolve(args)?;
    crate::logging::init(args.log_format, args.log_level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(args: Resolved) -> anyhow::Result<()> {
    datadir::ensure(&args.data_dir)?;
    // Held until the store is closed: no second server opens the data dir
    // while this one still folds its WAL.
    let _lock = datadir::lock(&args.data_dir)?;
    if let Some(url) = &args.database {
        let store = PgStore::new(url, 16)?;
        store
            .migrate()
            .await
            .context("preparing the PostgreSQL ledger (--database)")?;
        tracing::info!("ledger in PostgreSQL");
        serve_with(args, store).await
    } else {
        let store = SqliteStore::open(datadir::prepare_db(&args.data_dir)?)
            .with_context(|| format!("opening the store in {}", args.data_dir.display()))?;
        let closing = store.clone();
        let served = serve_with(args, store).await;
        closing.shutdown();
        served
    }
}

async fn serve_with<S: Store>(args: Resolved, store: S) -> anyhow::Result<()> {
    let seed = datadir::read_seed(&args.signing_key, true)?;
    check_signing_key(&store, &seed, &args.origin_prefix).await?;
    let settings = Settings {
        origin_prefix: args.origin_prefix,
        queue_capacity: args.queue_capacity,
        max_tenants: args.max_tenants,
        max_body_bytes: args.max_body_bytes,
        cleanup_interval: args.cleanup_interval,
        https: args.https,
        ..Settings::default()
    };
    let alert_rules = args.alert_rules;
    let app = Arc::new(App::new(store, settings, seed));

    if app.store.keys().await?.is_empty() {
        let (key, _) = app
            .create_key(None, "bootstrap admin", Scopes::ALL, None)
            .await
            .map_err(|e| anyhow::anyhow!("creating the bootstrap key: {e}"))?;
        let path = args.data_dir.join(datadir::BOOTSTRAP_KEY_FILE);
        datadir::write_secret(&path, &format!("{}\n", key.expose()))?;
        // Shown once, on a terminal only: a log collector never gets it.
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            #[allow(clippy::print_stdout)]
            {
                println!(
                    "Bootstrap admin key (shown once; also in {}):",
                    path.display()
                );
                println!("{}", key.expose());
            }
        } else {
            tracing::info!(
                "bootstrap admin key written to {} (mode 0600)",
                path.display()
            );
        }
    }

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(
        "listening on http://{} (data dir {})",
        listener.local_addr()?,
        args.data_dir.display()
    );
    let (stop_signer, signer_stop) = tokio::sync::oneshot::channel();
    let signer = tokio::spawn(checkpointer::run(Arc::clone(&app), signer_stop));
    // The rules (docs/ALERTS.md); alerts go to `_system`, then to the
    // webhooks.
    let delivery = tokio::spawn(trailmark_server::alerts::deliver::run(Arc::clone(&app)));
    let detector = tokio::spawn(trailmark_server::alerts::run::run(
        Arc::clone(&app),
        alert_rules,
    ));
    let cleaner = app.settings.cleanup_interval.map(|every| {
        tokio::spawn(trailmark_server::retention::schedule(
            Arc::clone(&app),
            every,
        ))
    });
    let witnesses: Vec<_> = args
        .witnesses
        .into_iter()
        .map(|w| {
            tracing::info!(
                "submitting checkpoints to witness {} at {}",
                w.key.name(),
                w.url
            );
            tokio::spawn(trailmark_server::witness::run(Arc::clone(&app), w))
        })
        .collect();
    let drainer = args
        .capture
        .map(|capture| tokio::spawn(capture_loop(Arc::clone(&app), capture)));
    let routes = routes(&app, args.trusted_proxies, args.limits.request_timeout);
    crate::http::serve(listener, routes, args.limits, shutdown()).await;
    // Stopped between ticks; what it signed spares the last pass a read of
    // every tenant's latest checkpoint.
    let _ = stop_signer.send(());
    detector.abort();
    delivery.abort();
    if let Some(cleaner) = cleaner {
        // A cleanup cut short leaves recorded entries that still hold their
        // payloads; the next one finishes them.
        cleaner.abort();
    }
    for w in witnesses {
        w.abort();
    }
    if let Some(drainer) = drainer {
        // Anything sent and not yet deleted is sent again next time, and
        // stored once (the ids derive from the outbox position).
        drainer.abort();
    }
    // Sign what arrived since the last tick, so a clean stop leaves no
    // unsigned tail: after appends whose clients hung up have landed, the
    // sweep under way finished, and `_system` signed over the records.
    app.store
        .settle()
        .await
        .map_err(|e| anyhow::anyhow!("waiting for the last appends: {e}"))?;
    let mut done = signer.await.unwrap_or_default();
    checkpointer::sign_all(&app, &mut done)
        .await
        .map_err(|e| anyhow::anyhow!("signing the final checkpoints: {e}"))?;
    tracing::info!("stopped");
    Ok(())
}

/// The trail records the public key(s) that sign it: the first server to
/// start records its own; a server with another key, or another origin
/// prefix, refuses to start rather than sign checkpoints nobody can verify.
async fn check_signing_key<S: Store>(
    store: &S,
    seed: &[u8; 32],
    prefix: &str,
) -> anyhow::Result<()> {
    let name = trailmark_verify::system_key_name(prefix).map_err(anyhow::Error::msg)?;
    let ours = SigningKey::from_seed(name, seed).verifier();
    if store.signing_keys().await?.is_empty() {
        store
            .add_signing_key(SigningKeyRecord {
                ordinal: 0,
                public_key: ours.public_key(),
                origin_prefix: prefix.to_owned(),
                added_at: trailmark_server::now(),
                transition: None,
            })
            .await?;
    }
    let keys = store.signing_keys().await?;
    let Some(current) = keys.last() else {
        anyhow::bail!("the trail records no signing key after recording one");
    };
    if current.public_key != ours.public_key() {
        let expected = trailmark_verify::system_key(prefix, &current.public_key)
            .map_err(anyhow::Error::msg)?;
        anyhow::bail!(
            "this trail is signed by {expected} and this server's signing key is {ours}: start it with the trail's key (--signing-key FILE)"
        );
    }
    if current.origin_prefix != prefix {
        anyhow::bail!(
            "this trail's checkpoints are named {}/<tenant>, not {prefix}/<tenant>: set --origin-prefix {}",
            current.origin_prefix,
            current.origin_prefix
        );
    }
    Ok(())
}

/// Appends drained changes straight into this server's store.
struct StoreSink<S> {
    app: Arc<App<S>>,
    tenant: TenantId,
}

/// A batch prepared for this server's store, and the tenants it goes to.
struct Prepared {
    events: Vec<trailmark_store::NewEvent>,
    tenants: Vec<String>,
}

impl<S: Store> trailmark_capture::Sink for StoreSink<S> {
    type Batch = Prepared;

    fn batch(&self, events: Vec<trailmark_core::Event>) -> Result<Prepared, SendError> {
        // Validated once, by the drainer: moved into the ledger as the
        // events they are, never copied.
        let events = self
            .app
            .prepare_events(events, &self.tenant)
            // Its problems spelled out (field and why), as over HTTP.
            .map_err(|e| SendError::Failed(e.explain()))?;
        let mut tenants: Vec<String> = events
            .iter()
            .map(|e| e.tenant().as_str().to_owned())
            .collect();
        tenants.sort();
        tenants.dedup();
        Ok(Prepared { events, tenants })
    }

    /// The next batch is sent while the one before is appended, and
    /// committed once that one is durable: while the drainer checks the
    /// trail after a batch (a round trip to the source database), the
    /// ledger's writer already has the next.
    const PIPELINED: bool = true;

    async fn send(
        &self,
        batch: &mut Prepared,
        after: Option<&trailmark_capture::After>,
    ) -> Result<Vec<String>, SendError> {
        let after = match after {
            Some(last) => Some((
                match &last.tenant {
                    Some(tenant) => TenantId::new(tenant)
                        .map_err(|e| SendError::Failed(format!("tenant {tenant:?}: {e}")))?,
                    None => self.tenant.clone(),
                },
                last.id,
            )),
            None => None,
        };
        // Taken (see the answers to busy below).
        let events = std::mem::take(&mut batch.events);
        // On a task of its own: the batch is made ready (room in the
        // ingest queue, its ids looked up) while the one before is
        // appended, and the append's work off the ledger's writer (and
        // dropping the batch after it) runs on another core while the
        // drainer decodes and prepares the next.
        let app = Arc::clone(&self.app);
        let appended = tokio::spawn(async move {
            let ready = app.ready_prepared(events).await.map_err(|e| (e, None))?;
            if let Some((tenant, id)) = after
                && let Err(e) = app.wait_after(&tenant, id).await
            {
                return Err((e, Some(ready.into_events())));
            }
            app.append_prepared(ready).await.map_err(|e| (e, None))
        })
        .await
        .map_err(|e| SendError::Failed(format!("appending the batch: {e}")))?;
        let appended = match appended {
            // The batch before has not begun its append (it may be waiting
            // for room in the ingest queue): this one is kept and sent
            // again while that one's outcome is awaited, which ends the
            // drain if it failed (as over HTTP).
            Err((trailmark_server::ApiError::PreconditionFailed(_), Some(events))) => {
                batch.events = events;
                return Err(SendError::Busy(Duration::from_millis(100)));
            }
            other => other.map_err(|(e, _)| e),
        };
        match appended {
            Ok(_) => Ok(std::mem::take(&mut batch.tenants)),
            // Waiting for room answers busy only once the server is
            // stopping: the batch was taken, so it is not sent again; its
            // changes stay in the source for the next start.
            Err(trailmark_server::ApiError::Busy) => Err(SendError::Failed(
                "the server is stopping: the batch is left in the source".into(),
            )),
            Err(e) => Err(SendError::Failed(e.explain())),
        }
    }

    async fn signing_keys(&self) -> Result<Vec<trailmark_verify::KeyRecordView>, SendError> {
        let records = self
            .app
            .store
            .signing_keys()
            .await
            .map_err(|e| SendError::Failed(e.to_string()))?;
        Ok(crate::source::views(&records))
    }

    async fn checkpoint(&self, tenant: &str) -> Result<Option<(String, String)>, SendError> {
        let failed = |e: String| SendError::Failed(e);
        let tenant = TenantId::from_stored(tenant).map_err(|e| failed(e.to_owned()))?;
        let Some(cp) = self
            .app
            .store
            .latest_checkpoint(&tenant)
            .await
            .map_err(|e| failed(e.to_string()))?
        else {
            return Ok(None);
        };
        let key = self
            .app
            .signer(&tenant)
            .map_err(|e| failed(e.to_string()))?;
        Ok(Some((cp.note, key.verifier().to_string())))
    }

    async fn consistency(
        &self,
        tenant: &str,
        first: u64,
        second: u64,
    ) -> Result<Vec<String>, SendError> {
        let failed = |e: String| SendError::Failed(e);
        let tenant = TenantId::from_stored(tenant).map_err(|e| failed(e.to_owned()))?;
        let size =
            |n| trailmark_log::TreeSize::new(n).ok_or_else(|| failed("size too large".into()));
        let plan = trailmark_log::Plan::consistency(size(first)?, size(second)?)
            .map_err(|e| failed(e.to_string()))?;
        let hashes = self
            .app
            .run_plan(&tenant, &plan)
            .await
            .map_err(|e| failed(e.to_string()))?;
        Ok(hashes.iter().map(trailmark_log::Hash::to_base64).collect())
    }
}

/// Drains the capture outbox for as long as the server runs; a lost
/// connection or a refused batch is retried with a growing pause (the rows
/// wait in the outbox meanwhile).
async fn capture_loop<S: Store>(app: Arc<App<S>>, capture: Capture) {
    tokio::spawn(watch_capture(Arc::clone(&app), capture.connection));
    let sink = StoreSink {
        app,
        tenant: capture.tenant,
    };
    let options = DrainOptions {
        batch: capture.batch,
        linger: capture.linger,
        name: format!("trailmark serve pid {}", std::process::id()),
        ..DrainOptions::default()
    };
    let mut pause = Duration::from_secs(1);
    loop {
        let started = std::time::Instant::now();
        let report = |p: Progress| match p {
            Progress::StandingBy => {
                tracing::info!("capture: another drainer holds the outbox; standing by");
            }
            Progress::Draining => tracing::info!("capture: draining the outbox"),
            Progress::Sent { .. } => {}
            Progress::Unstreamed { xid } => tracing::warn!(
                "capture: transaction {xid} set its context inside a savepoint streaming cannot place; decoding on without streaming"
            ),
            Progress::NoHeartbeat { reason } => tracing::warn!(
                "capture: no heartbeat for the replication slot ({reason}); while the captured tables are quiet the slot keeps the WAL others write (docs/CAPTURE.md, \"Quiet tables\"); draining on"
            ),
        };
        if let Err(e) = trailmark_capture::drain(&capture.source, &sink, &options, &report).await {
            tracing::warn!("capture: {e}; retrying in {} s", pause.as_secs());
        }
        if started.elapsed() > Duration::from_secs(60) {
            pause = Duration::from_secs(1);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}

/// Reads the capture outbox's backlog and the WAL capture slot's state
/// (while the database captures from the WAL) into `/metrics` every 10 s,
/// and records in `_system` when either goes wrong
/// ([`trailmark_server::alerts::CaptureOutboxRule`],
/// [`trailmark_server::alerts::CaptureWalRule`]), which the
/// `capture_outbox` and `capture_wal` alert rules raise.
async fn watch_capture<S: Store>(app: Arc<App<S>>, source: trailmark_pg::Source) {
    // What was last recorded of each: once per onset; a reading back well
    // within bounds (`rearms`) re-arms it.
    let mut slot_recorded: Option<&'static str> = None;
    let mut outbox_recorded: Option<&'static str> = None;
    loop {
        if let Ok((client, connection)) = source.connect().await {
            let driver = tokio::spawn(connection);
            while !client.is_closed() {
                read_outbox(&app, &client, &mut outbox_recorded).await;
                read_slot(&app, &client, &mut slot_recorded).await;
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
            driver.abort();
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

/// One reading of the capture outbox (see [`watch_capture`]).
async fn read_outbox<S: Store>(
    app: &App<S>,
    client: &tokio_postgres::Client,
    recorded: &mut Option<&'static str>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let m = &app.metrics;
    let backlog =
        match trailmark_capture::outbox_backlog(client, Some(trailmark_server::OUTBOX_COUNT_UP_TO))
            .await
        {
            Ok(backlog) => backlog,
            Err(e) => {
                tracing::debug!("capture: reading the outbox: {e}");
                return;
            }
        };
    m.capture_outbox.store(1, Relaxed);
    m.capture_outbox_rows
        .store(u64::try_from(backlog.rows).unwrap_or(0), Relaxed);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    // whole milliseconds, not negative
    let oldest_ms = backlog
        .oldest_seconds
        .map_or(0, |s| (s.max(0.0) * 1000.0) as u64);
    m.capture_outbox_oldest_ms.store(oldest_ms, Relaxed);
    let rule = app
        .alerts
        .get()
        .map(|feed| feed.rules().0.capture_outbox.clone())
        .unwrap_or_default();
    let finding = rule.judge(backlog.oldest_seconds);
    let Some(action) = onset(recorded, finding, rule.rearms(backlog.oldest_seconds)) else {
        return;
    };
    let mut meta = serde_json::Map::new();
    meta.insert("rows".into(), backlog.rows.into());
    meta.insert(
        "counted_up_to".into(),
        trailmark_server::OUTBOX_COUNT_UP_TO.into(),
    );
    meta.insert("oldest_seconds".into(), backlog.oldest_seconds.into());
    meta.insert("threshold_seconds".into(), rule.oldest_seconds.into());
    tracing::warn!(
        rows = backlog.rows,
        oldest_seconds = backlog.oldest_seconds.unwrap_or(0.0),
        "capture: {action}"
    );
    if record_finding(app, action, ("capture_outbox", "trailmark.outbox"), meta).await {
        *recorded = finding;
    }
}

/// What of one reading's finding (`None`: nothing to report) is to be
/// recorded now, once per onset: `recorded` is what was last recorded (the
/// caller sets it once a record is made, so a failed one is tried again on
/// the next reading); a reading with nothing to report clears it only when
/// it `rearms` (well within bounds), so one hovering at a bound is recorded
/// once.
fn onset(
    recorded: &mut Option<&'static str>,
    finding: Option<&'static str>,
    rearms: bool,
) -> Option<&'static str> {
    if finding == *recorded {
        None
    } else if finding.is_some() {
        finding
    } else {
        if rearms {
            *recorded = None;
        }
        None
    }
}

/// Records one capture finding in `_system`; whether it was recorded.
async fn record_finding<S: Store>(
    app: &App<S>,
    action: &str,
    resource: (&str, &str),
    meta: serde_json::Map<String, serde_json::Value>,
) -> bool {
    match app.audit(None, action, Some(resource), meta).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("capture: recording {action} failed: {e}");
            false
        }
    }
}

/// One reading of the WAL capture slot (see [`watch_capture`]).
async fn read_slot<S: Store>(
    app: &App<S>,
    client: &tokio_postgres::Client,
    recorded: &mut Option<&'static str>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let m = &app.metrics;
    match trailmark_capture::slot_status(client).await {
        Ok(Some(slot)) => {
            m.capture_slot.store(1, Relaxed);
            let bytes = |b: i64| u64::try_from(b).unwrap_or(0);
            m.capture_slot_retained_bytes
                .store(bytes(slot.retained_bytes), Relaxed);
            m.capture_slot_lag_bytes
                .store(bytes(slot.lag_bytes), Relaxed);
            m.capture_slot_lost.store(
                u64::from(slot.wal_status.as_deref() == Some("lost")),
                Relaxed,
            );
            if let Ok(trailmark_capture::LargeTransactionsSeen::Counted(large)) =
                trailmark_capture::large_transactions(client, &slot.name).await
            {
                m.capture_slot_streamed
                    .store(bytes(large.streamed), Relaxed);
                m.capture_slot_spilled.store(bytes(large.spilled), Relaxed);
            }
            let rule = app
                .alerts
                .get()
                .map(|feed| feed.rules().0.capture_wal.clone())
                .unwrap_or_default();
            let retained = bytes(slot.retained_bytes);
            let finding = rule.judge(retained, slot.wal_status.as_deref());
            if let Some(action) = onset(recorded, finding, rule.rearms(retained))
                && record_slot(app, action, &slot, &rule).await
            {
                *recorded = finding;
            }
        }
        Ok(None) => m.capture_slot.store(0, Relaxed),
        Err(e) => tracing::debug!("capture: reading the slot: {e}"),
    }
}

/// Records one finding about the capture slot in `_system`; whether it was
/// recorded (tried again on the next reading when not).
async fn record_slot<S: Store>(
    app: &App<S>,
    action: &str,
    slot: &trailmark_capture::SlotStatus,
    rule: &trailmark_server::alerts::CaptureWalRule,
) -> bool {
    let mut meta = serde_json::Map::new();
    meta.insert("retained_bytes".into(), slot.retained_bytes.into());
    meta.insert("lag_bytes".into(), slot.lag_bytes.into());
    meta.insert("threshold_bytes".into(), rule.retained_bytes.into());
    meta.insert("active".into(), slot.active.into());
    meta.insert("confirmed".into(), slot.confirmed.clone().into());
    meta.insert("wal_status".into(), slot.wal_status.clone().into());
    meta.insert(
        "max_slot_wal_keep_size".into(),
        slot.max_keep.clone().into(),
    );
    tracing::warn!(
        slot = slot.name,
        retained_bytes = slot.retained_bytes,
        wal_status = slot.wal_status.as_deref().unwrap_or(""),
        "capture: {action}"
    );
    record_finding(app, action, ("replication_slot", &slot.name), meta).await
}

pub(crate) async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        let _ = ctrl_c.await;
        return;
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use trailmark_capture::{After, Sink as _};
    use trailmark_core::{Event, EventId, Timestamp};

    use super::*;

    /// A finding is recorded once per onset: not again while it lasts, nor
    /// after a reading hovering at the bound, only after one well within.
    #[test]
    fn a_capture_finding_is_recorded_once_per_onset() {
        let mut recorded = None;
        assert_eq!(onset(&mut recorded, Some("x"), false), Some("x"));
        recorded = Some("x"); // recorded
        assert_eq!(onset(&mut recorded, Some("x"), false), None);
        assert_eq!(onset(&mut recorded, None, false), None);
        assert_eq!(recorded, Some("x"), "not re-armed at the bound");
        assert_eq!(onset(&mut recorded, Some("x"), false), None);
        assert_eq!(onset(&mut recorded, Some("y"), false), Some("y"));
        assert_eq!(onset(&mut recorded, None, true), None);
        assert_eq!(recorded, None, "re-armed well within");
        assert_eq!(onset(&mut recorded, Some("x"), false), Some("x"));
    }

    fn sink(dir: &tempfile::TempDir) -> StoreSink<SqliteStore> {
        let store = SqliteStore::open(dir.path().join("trailmark.db")).unwrap();
        StoreSink {
            app: Arc::new(App::new(store, Settings::default(), [7; 32])),
            tenant: TenantId::default_tenant(),
        }
    }

    /// Events numbered `from..to`, each with an id of its own.
    fn events(from: u16, to: u16) -> Vec<Event> {
        let at = "2026-12-06T12:00:00Z";
        (from..to)
            .map(|n| {
                let mut event = Event::take_from_json(&mut serde_json::json!({
                    "occurred_at": at,
                    "actor": {"id": "app", "type": "service"},
                    "action": "update",
                    "resource": {"type": "invoice", "id": n.to_string()},
                }))
                .unwrap();
                let [a, b] = n.to_be_bytes();
                event.id = Some(EventId::new_v7(
                    Timestamp::parse(at).unwrap(),
                    [a, b, 0, 0, 0, 0, 0, 0, 0, 1],
                ));
                event
            })
            .collect()
    }

    fn last(events: &[Event]) -> After {
        After {
            tenant: None,
            id: events.last().unwrap().id.unwrap(),
        }
    }

    async fn seq_of(sink: &StoreSink<SqliteStore>, event: &Event) -> Option<u64> {
        sink.app
            .store
            .entry_by_id(std::slice::from_ref(&sink.tenant), event.id.unwrap())
            .await
            .unwrap()
            .map(|entry| entry.columns.seq)
    }

    /// Sent while the batch before it is still on its way, a batch is
    /// committed only after that one: the drainer's order (the source's
    /// commit order) holds in the trail.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_drainers_next_batch_is_committed_only_after_the_one_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let sink = sink(&dir);
        let (first, second) = (events(0, 300), events(300, 350));
        let (first_last, second_first) = (first[299].clone(), second[0].clone());
        let after = last(&first);
        let mut a = sink.batch(first).unwrap();
        let mut b = sink.batch(second).unwrap();
        // The second is sent first; the first follows once the second is
        // waiting for it.
        let (sent_b, sent_a) = tokio::join!(sink.send(&mut b, Some(&after)), async {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while sink
                .app
                .metrics
                .ingest_after_waited
                .load(std::sync::atomic::Ordering::Relaxed)
                == 0
            {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the second never waited"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            sink.send(&mut a, None).await
        });
        sent_a.unwrap();
        sent_b.unwrap();
        let (first_at, second_at) = (
            seq_of(&sink, &first_last).await.unwrap(),
            seq_of(&sink, &second_first).await.unwrap(),
        );
        assert!(first_at < second_at, "{first_at} then {second_at}");
    }

    /// A batch naming an event that is not appended (its batch is not
    /// stored yet, or failed) is answered busy and kept whole, to be sent
    /// again while the drain awaits that one's outcome; nothing of it is
    /// stored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_after_an_event_not_appended_is_kept_and_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let sink = sink(&dir);
        let (never, second) = (events(0, 1), events(1, 20));
        let mut b = sink.batch(second.clone()).unwrap();
        let err = sink.send(&mut b, Some(&last(&never))).await.unwrap_err();
        assert!(matches!(err, SendError::Busy(_)), "{err:?}");
        assert_eq!(b.events.len(), 19, "the batch is kept to be sent again");
        for event in &second {
            assert_eq!(seq_of(&sink, event).await, None);
        }
    }
}
