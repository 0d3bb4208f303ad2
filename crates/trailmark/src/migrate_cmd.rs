//! `trailmark migrate --from DATA_DIR --to postgres://…`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;
use trailmark_core::TenantId;
use trailmark_log::{Hash, Plan, TreeSize};
use trailmark_store::Store;
use trailmark_store_postgres::PgStore;
use trailmark_store_sqlite::SqliteStore;

use crate::datadir;

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The data dir of the embedded trail to copy (no server may be running on it).
    #[arg(long)]
    from: PathBuf,
    /// The PostgreSQL database to copy it into (its ledger must be empty).
    #[arg(long, hide_env_values = true)]
    to: String,
    /// The origin prefix the trail is signed with.
    #[arg(
        long,
        env = "TRAILMARK_ORIGIN_PREFIX",
        default_value = "trailmark.local"
    )]
    origin_prefix: String,
}

/// Entries copied per transaction.
const CHUNK: u64 = 5000;

async fn root<S: Store>(store: &S, tenant: &TenantId, size: TreeSize) -> anyhow::Result<Hash> {
    let plan = Plan::root(size);
    let nodes = store.nodes(tenant, plan.node_ids()).await?;
    Ok(plan.assemble(&nodes)?[0])
}

#[allow(clippy::print_stdout)] // the command's report
pub fn run(args: &MigrateArgs) -> anyhow::Result<ExitCode> {
    if !datadir::db_path(&args.from).exists() {
        bail!(
            "--from {}: no Trailmark data dir there",
            args.from.display()
        );
    }
    // Nothing may append while the copy is taken.
    let _lock = datadir::lock(&args.from)?;
    // The source is verified first, by the one verifier, read-only: a
    // damaged trail is refused before anything is copied.
    let mut source = crate::source::Offline::open(&args.from, &args.origin_prefix)?;
    let evidence = crate::verify::Evidence {
        origin_prefix: args.origin_prefix.clone(),
        ..crate::verify::Evidence::default()
    };
    let verdict =
        crate::verify::check(&mut source, &evidence, trailmark_verify::Policy::default())?;
    drop(source);
    if !verdict.ok() {
        let failures: Vec<String> = verdict
            .reports
            .iter()
            .flat_map(|r| r.failures.iter().map(move |f| format!("{}: {f}", r.tenant)))
            .take(10)
            .collect();
        bail!(
            "--from {}: the trail does not verify, nothing was copied:\n  {}",
            args.from.display(),
            failures.join("\n  ")
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let from = SqliteStore::open_read_only(datadir::db_path(&args.from))
            .with_context(|| format!("opening {}", args.from.display()))?;
        let to = PgStore::new(&args.to, 4)?;
        to.migrate().await.context("preparing the PostgreSQL ledger (--to)")?;
        if !to.heads().await?.is_empty() {
            bail!("--to already holds a trail: migrate into an empty ledger");
        }
        let mut proved = 0usize;
        for head in from.heads().await? {
            let tenant = &head.tenant;
            let size = head.size.get();
            let mut start = 0;
            while start < size {
                let end = (start + CHUNK).min(size);
                let entries = from.raw_entries(tenant, start, end).await?;
                if entries.len() as u64 != end - start {
                    bail!("{tenant}: entries {start}..{end} are incomplete in the source");
                }
                to.import(tenant, start, &entries).await?;
                start = end;
            }
            // The proof: the copy's tree has the source's root at every
            // signed checkpoint and at its full size.
            let checkpoints = from.checkpoints(tenant).await?;
            for cp in &checkpoints {
                let copied = root(&to, tenant, cp.size).await?;
                if copied != cp.root {
                    bail!(
                        "{tenant}: the copy's root at checkpoint size {} differs from the signed one: nothing is proven; the source may be damaged (run trailmark verify --data-dir)",
                        cp.size.get()
                    );
                }
                to.add_checkpoint(cp.clone()).await?;
                proved += 1;
            }
            if root(&from, tenant, head.size).await? != root(&to, tenant, head.size).await? {
                bail!("{tenant}: the copy's root at size {size} differs from the source's");
            }
            println!(
                "copied {tenant}: {size} entries, {} checkpoints, roots equal",
                checkpoints.len()
            );
        }
        for record in from.signing_keys().await? {
            to.add_signing_key(record).await?;
        }
        let keys = from.keys().await?;
        let existing = to.keys().await?;
        for key in keys.iter().filter(|k| !existing.iter().any(|e| e.id == k.id)) {
            to.create_key(key.clone()).await?;
        }
        println!(
            "migrated: {proved} checkpoint roots proven equal, {} keys copied; start servers with --database and the same signing key",
            keys.len()
        );
        Ok(ExitCode::SUCCESS)
    })
}
