//! `trailmark serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use trailmark_server::{App, Settings, checkpointer, router};
use trailmark_store::{Scopes, Store};
use trailmark_store_sqlite::SqliteStore;

use crate::datadir;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where the database, signing seed and bootstrap key live.
    #[arg(long, env = "TRAILMARK_DATA_DIR", default_value = "trailmark-data")]
    pub data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "TRAILMARK_LISTEN", default_value = "127.0.0.1:7878")]
    pub listen: SocketAddr,
    /// Checkpoints are signed with origin `<prefix>/<tenant>`.
    #[arg(
        long,
        env = "TRAILMARK_ORIGIN_PREFIX",
        default_value = "trailmark.local"
    )]
    pub origin_prefix: String,
    /// Events that may wait for the disk at once before ingest answers 429.
    #[arg(long, env = "TRAILMARK_QUEUE_CAPACITY", default_value_t = 100_000)]
    pub queue_capacity: usize,
    /// Largest request body, in bytes.
    #[arg(long, env = "TRAILMARK_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_body_bytes: usize,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    datadir::ensure(&args.data_dir)?;
    let store = SqliteStore::open(datadir::db_path(&args.data_dir))
        .with_context(|| format!("opening the store in {}", args.data_dir.display()))?;
    let seed = datadir::signing_seed(&args.data_dir, true)?;
    let settings = Settings {
        origin_prefix: args.origin_prefix,
        queue_capacity: args.queue_capacity,
        max_body_bytes: args.max_body_bytes,
        ..Settings::default()
    };
    let app = Arc::new(App::new(store, settings, seed));

    if app.store.keys().await?.is_empty() {
        let (key, _) = app
            .create_key(None, "bootstrap admin", Scopes::ALL, None)
            .await
            .map_err(|e| anyhow::anyhow!("creating the bootstrap key: {e}"))?;
        let path = args.data_dir.join(datadir::BOOTSTRAP_KEY_FILE);
        datadir::write_secret(&path, &format!("{}\n", key.expose()))?;
        #[allow(clippy::print_stdout)] // shown once, on purpose
        {
            println!(
                "Bootstrap admin key (shown once; also in {}):",
                path.display()
            );
            println!("{}", key.expose());
        }
    }

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    eprintln!(
        "trailmark: listening on http://{} (data dir {})",
        listener.local_addr()?,
        args.data_dir.display()
    );
    let signer = tokio::spawn(checkpointer::run(Arc::clone(&app)));
    axum::serve(listener, router(Arc::clone(&app)))
        .with_graceful_shutdown(shutdown())
        .await?;
    signer.abort();
    // Sign what arrived since the last tick, so a clean stop leaves no
    // unsigned tail.
    checkpointer::sign_new(&app, &mut checkpointer::Signed::default())
        .await
        .map_err(|e| anyhow::anyhow!("signing the final checkpoints: {e}"))?;
    eprintln!("trailmark: stopped");
    Ok(())
}

async fn shutdown() {
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
