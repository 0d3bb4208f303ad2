//! `trailmark witness`: a C2SP tlog-witness. For every log it is told to
//! trust it keeps the latest checkpoint it cosigned, and cosigns a new one
//! only when the log's signature verifies and a consistency proof leads to
//! it from that checkpoint (the rule is `trailmark_verify::witness::judge`).
//! A fork or a rollback is refused, across restarts: the state is written
//! (and fsynced) before the cosignature is answered.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use clap::Args;
use trailmark_log::{AddCheckpoint, Cosigner, Hash, KeyName, VerifierKey};
use trailmark_verify::witness::{Refusal, judge};

/// The largest request body accepted (a checkpoint with its signatures and
/// 63 proof hashes is a few kilobytes).
const MAX_BODY: usize = 64 * 1024;
const STATE_FILE: &str = "state.json";
const SEED_FILE: &str = "witness.seed";

#[derive(Debug, Args)]
pub struct WitnessArgs {
    /// Where the witness keeps its state (and its key, unless --key).
    #[arg(
        long,
        env = "TRAILMARK_WITNESS_DIR",
        default_value = "trailmark-witness"
    )]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7879")]
    listen: SocketAddr,
    /// The witness's signing seed (64 hex digits, mode 0600), created if
    /// missing [default: <data-dir>/witness.seed].
    #[arg(long)]
    key: Option<PathBuf>,
    /// The witness's name (its key name in cosignatures).
    #[arg(long, default_value = "witness.trailmark.local")]
    name: String,
    /// A log to witness: its origin and its verifier key, as ORIGIN=VKEY
    /// (`trailmark verify` and `/v1/verifier-key` show a tenant's). Repeatable.
    #[arg(long = "log", value_name = "ORIGIN=VKEY")]
    logs: Vec<String>,
}

/// The latest cosigned checkpoint per origin.
type Latest = BTreeMap<String, (u64, Hash)>;

struct Witness {
    cosigner: Cosigner,
    logs: BTreeMap<String, Vec<VerifierKey>>,
    state_path: PathBuf,
    /// Held across judging and persisting: two requests never race.
    latest: Mutex<Latest>,
}

fn load_state(path: &Path) -> anyhow::Result<Latest> {
    if !path.exists() {
        return Ok(Latest::new());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let raw: BTreeMap<String, (u64, String)> = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a witness state file", path.display()))?;
    raw.into_iter()
        .map(|(origin, (size, root))| Ok((origin, (size, Hash::from_base64(&root)?))))
        .collect()
}

fn save_state(path: &Path, latest: &Latest) -> std::io::Result<()> {
    let raw: BTreeMap<&String, (u64, String)> = latest
        .iter()
        .map(|(o, (s, r))| (o, (*s, r.to_base64())))
        .collect();
    crate::datadir::replace_durably(path, serde_json::to_string_pretty(&raw)?.as_bytes())
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn add_checkpoint(State(w): State<Arc<Witness>>, body: Bytes) -> Response {
    let request = match AddCheckpoint::parse(&body) {
        Ok(r) => r,
        Err(e) => return text(StatusCode::BAD_REQUEST, "text/plain", format!("{e}\n")),
    };
    let origin = request
        .checkpoint
        .text()
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let keys = w.logs.get(&origin).cloned().unwrap_or_default();
    let witness = Arc::clone(&w);
    // Judge and persist under the lock, on a blocking thread (fsync).
    let outcome = tokio::task::spawn_blocking(move || {
        let mut latest = witness
            .latest
            .lock()
            .map_err(|_| "the witness state lock is poisoned".to_owned())?;
        let checkpoint = match judge(&request, &keys, latest.get(&origin).copied()) {
            Ok(c) => c,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let mut next = latest.clone();
        next.insert(origin, (checkpoint.size().get(), *checkpoint.root()));
        save_state(&witness.state_path, &next).map_err(|e| format!("saving the state: {e}"))?;
        *latest = next;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok::<_, String>(Ok(witness.cosigner.cosign(request.checkpoint.text(), now)))
    })
    .await;
    match outcome {
        Ok(Ok(Ok(signature))) => text(StatusCode::OK, "text/plain", format!("{signature}\n")),
        Ok(Ok(Err(refusal))) => {
            let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let content_type = if matches!(refusal, Refusal::OldSize { .. }) {
                "text/x.tlog.size"
            } else {
                "text/plain"
            };
            eprintln!(
                "trailmark witness: refused ({}): {}",
                refusal.status(),
                refusal.body().trim()
            );
            text(status, content_type, refusal.body())
        }
        Ok(Err(e)) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            format!("{e}\n"),
        ),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            format!("{e}\n"),
        ),
    }
}

fn parse_logs(logs: &[String]) -> anyhow::Result<BTreeMap<String, Vec<VerifierKey>>> {
    let mut out: BTreeMap<String, Vec<VerifierKey>> = BTreeMap::new();
    for log in logs {
        let (origin, vkey) = log
            .split_once('=')
            .with_context(|| format!("--log {log}: give ORIGIN=VKEY"))?;
        let key =
            VerifierKey::parse(vkey).with_context(|| format!("--log {log}: the verifier key"))?;
        if key.name().as_str() != origin {
            anyhow::bail!("--log {log}: the key is named {}, not {origin}", key.name());
        }
        out.entry(origin.to_owned()).or_default().push(key);
    }
    Ok(out)
}

pub fn run(args: &WitnessArgs) -> anyhow::Result<ExitCode> {
    crate::datadir::ensure(&args.data_dir)?;
    let logs = parse_logs(&args.logs)?;
    if logs.is_empty() {
        anyhow::bail!("give at least one --log ORIGIN=VKEY to witness");
    }
    let seed_path = args
        .key
        .clone()
        .unwrap_or_else(|| args.data_dir.join(SEED_FILE));
    let seed = crate::datadir::read_seed(&seed_path, true)?;
    let cosigner = Cosigner::from_seed(KeyName::new(args.name.clone()).context("--name")?, &seed);
    let state_path = args.data_dir.join(STATE_FILE);
    let latest = load_state(&state_path)?;
    let vkey = cosigner.verifier().to_string();
    std::fs::write(args.data_dir.join("witness.vkey"), format!("{vkey}\n"))?;
    #[allow(clippy::print_stdout)] // the witness's public key, for operators to configure
    {
        println!("{vkey}");
    }
    let witness = Arc::new(Witness {
        cosigner,
        logs,
        state_path,
        latest: Mutex::new(latest),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let app = axum::Router::new()
            .route("/add-checkpoint", axum::routing::post(add_checkpoint))
            .route("/healthz", axum::routing::get(|| async { "ok\n" }))
            .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
            .with_state(witness);
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        eprintln!(
            "trailmark witness: listening on http://{}",
            listener.local_addr()?
        );
        let limits = crate::http::Limits {
            max_connections: 256,
            header_timeout: std::time::Duration::from_secs(10),
            request_timeout: std::time::Duration::from_secs(30),
            shutdown_deadline: std::time::Duration::from_secs(10),
        };
        let app = crate::http::with_request_timeout(app, limits.request_timeout);
        crate::http::serve(listener, app, limits, crate::serve::shutdown()).await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
