//! `trailmark migrate --from DATA_DIR --to postgres://…`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;
use trailmark_core::TenantId;
use trailmark_log::{Hash, NoteSignature, Plan, TreeSize};
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

/// Checkpoints read, proven and stored together (one commit): what one
/// step of the copy holds in memory, whatever the trail's age.
const CHECKPOINTS_AT_ONCE: usize = 1000;

/// The roots the store's tree of `tenant` has at each of `sizes`, from one
/// read of the nodes they need.
async fn roots<S: Store>(
    store: &S,
    tenant: &TenantId,
    sizes: &[TreeSize],
) -> anyhow::Result<Vec<Hash>> {
    let plans: Vec<Plan> = sizes.iter().map(|size| Plan::root(*size)).collect();
    Ok(trailmark_store::run_plans(store, tenant, &plans)
        .await?
        .into_iter()
        .map(|root| root[0])
        .collect())
}

/// Copies a tenant's checkpoints, each proven against the copy's tree
/// first, and its witnesses' cosignatures of them, a page at a time:
/// answers how many of each.
async fn copy_checkpoints(
    from: &SqliteStore,
    to: &PgStore,
    tenant: &TenantId,
) -> anyhow::Result<(usize, usize)> {
    let (mut proved, mut cosigned) = (0, 0);
    let mut after: Option<u64> = None;
    loop {
        let page = from
            .checkpoints_after(tenant, after, CHECKPOINTS_AT_ONCE)
            .await?;
        let Some(last) = page.last().map(|cp| cp.size.get()) else {
            break;
        };
        let sizes: Vec<TreeSize> = page.iter().map(|cp| cp.size).collect();
        for (cp, copied) in page.iter().zip(roots(to, tenant, &sizes).await?) {
            if copied != cp.root {
                bail!(
                    "{tenant}: the copy's root at checkpoint size {} differs from the signed one: nothing is proven; the source may be damaged (run trailmark verify --data-dir)",
                    cp.size.get()
                );
            }
        }
        let cosignatures = from
            .cosignatures(tenant, after.map_or(0, |a| a + 1)..=last)
            .await?;
        let cosignatures = cosignatures
            .into_iter()
            .map(|(size, line)| {
                let witness = NoteSignature::parse_line(&line).with_context(|| {
                    format!("{tenant}: a cosignature of checkpoint size {size} in the source")
                })?;
                Ok((size, witness.name().to_string(), line))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        proved += page.len();
        cosigned += cosignatures.len();
        to.add_checkpoints(page).await?;
        to.add_cosignatures(tenant, cosignatures).await?;
        after = Some(last);
    }
    Ok((proved, cosigned))
}

/// Refuses a target that holds anything the copy would add to: a trail,
/// a hold, a retention policy or a setting.
async fn refuse_unless_empty(to: &PgStore) -> anyhow::Result<()> {
    let held = [
        ("a trail", !to.heads().await?.is_empty()),
        ("holds", !to.holds().await?.is_empty()),
        ("retention policies", !to.retention().await?.is_empty()),
        (
            "settings (alert rules, webhooks)",
            !to.settings().await?.is_empty(),
        ),
    ];
    let held: Vec<&str> = held
        .iter()
        .filter(|(_, h)| *h)
        .map(|(what, _)| *what)
        .collect();
    if !held.is_empty() {
        bail!(
            "--to already holds {}: migrate into an empty ledger",
            held.join(", ")
        );
    }
    Ok(())
}

/// Copies the rules kept beside the trail: legal holds (in force or
/// released, first, so that nothing they cover is ever unprotected on the
/// copy), retention policies and settings. Answers how many of each.
async fn copy_rules(from: &SqliteStore, to: &PgStore) -> anyhow::Result<[usize; 3]> {
    let holds = from.holds().await?;
    for hold in &holds {
        to.add_hold(hold.clone()).await?;
    }
    let policies = from.retention().await?;
    for policy in &policies {
        to.set_retention(policy.clone()).await?;
    }
    let settings = from.settings().await?;
    for (name, setting) in &settings {
        to.put_setting(name, setting.value.clone(), 0, setting.updated_at)
            .await?;
    }
    Ok([holds.len(), policies.len(), settings.len()])
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
        refuse_unless_empty(&to).await?;
        let [holds, policies, settings] = copy_rules(&from, &to).await?;
        let (mut proved, mut cosigned) = (0usize, 0usize);
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
            let (checkpoints, cosignatures) = copy_checkpoints(&from, &to, tenant).await?;
            proved += checkpoints;
            cosigned += cosignatures;
            if roots(&from, tenant, &[head.size]).await? != roots(&to, tenant, &[head.size]).await? {
                bail!("{tenant}: the copy's root at size {size} differs from the source's");
            }
            println!(
                "copied {tenant}: {size} entries, {checkpoints} checkpoints ({cosignatures} cosignatures), roots equal"
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
            "migrated: {proved} checkpoint roots proven equal, {cosigned} cosignatures, {holds} holds, {policies} retention policies, {settings} settings and {} keys copied; start servers with --database and the same signing key",
            keys.len()
        );
        Ok(ExitCode::SUCCESS)
    })
}
