//! `trailmark verify`: read a trail (a data dir, read-only, or a server's
//! public API), push it through the one verifier (`trailmark-verify`) and
//! print its verdict. Also checks receipts offline.
//!
//! Evidence from outside the box: `--trust FILE` (checkpoints saved
//! earlier, cosigned or not) and `--state FILE` (the last checkpoint this
//! command verified per tenant, updated after each passing run).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;
use trailmark_core::{TenantId, Timestamp};
use trailmark_log::{Checkpoint, CosignatureKey, Hash, Note, VerifierKey};
use trailmark_verify::{
    KeyHistory, Policy, Report, ScopedKey, TenantVerifier, Trail, verify_witnessed_receipt,
};

use crate::source::{Offline, Remote, Source, StoredNote};

/// The least entries a tenant has for progress to be shown.
const PROGRESS_FROM: u64 = 10_000;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Verify a data dir directly, read-only (the server may be running).
    #[arg(long, env = "TRAILMARK_DATA_DIR", conflicts_with = "url")]
    data_dir: Option<PathBuf>,
    /// Verify a server through its public read API.
    #[arg(long, env = "TRAILMARK_URL", requires = "key")]
    url: Option<String>,
    /// Verify a PostgreSQL ledger directly, through read-only sessions.
    #[arg(long, hide_env_values = true, conflicts_with_all = ["data_dir", "url"])]
    database: Option<String>,
    /// A read key for --url.
    #[arg(long, env = "TRAILMARK_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Only this tenant (and `_system`, which holds its cross-references).
    #[arg(long)]
    tenant: Option<String>,
    /// Trust only these verifier keys (copies you keep apart from the
    /// data), not the ones the source offers. Repeatable; each tenant uses
    /// the key named `<origin prefix>/<tenant>`.
    #[arg(long = "verifier-key", value_name = "VKEY")]
    verifier_keys: Vec<String>,
    /// A checkpoint saved earlier (a file holding one signed note, cosigned
    /// or not): fail if the log is shorter than it or does not produce its
    /// root. Repeatable.
    #[arg(long = "trust", value_name = "FILE")]
    trust: Vec<PathBuf>,
    /// Monitor mode: the last checkpoint verified per tenant is kept in FILE;
    /// the next run demands that the log still extends it. Created if missing.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Fail when an entry older than this many seconds is in no checkpoint
    /// (the server signs within a second while entries arrive).
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    max_unsigned_age: u64,
    /// A witness's cosignature key (`name+keyid+base64(0x04||key)`):
    /// checkpoints count as witnessed when cosigned by --witnesses-required
    /// of these. Repeatable.
    #[arg(long = "witness", value_name = "VKEY")]
    witnesses: Vec<String>,
    /// How many of the --witness keys must cosign [default: 1 when any is given].
    #[arg(long, value_name = "K", requires = "witnesses")]
    witnesses_required: Option<usize>,
    /// Check one receipt (C2SP tlog-proof with the envelope as extra data)
    /// offline, instead of a whole trail. Needs --verifier-key, or a
    /// --data-dir/--url whose keys to use.
    #[arg(long, value_name = "FILE")]
    receipt: Option<PathBuf>,
    /// The origin prefix the server signs with.
    #[arg(
        long,
        env = "TRAILMARK_ORIGIN_PREFIX",
        default_value = "trailmark.local"
    )]
    origin_prefix: String,
}

fn open_source(args: &VerifyArgs) -> anyhow::Result<Box<dyn Source>> {
    if let Some(url) = &args.database {
        return Ok(Box::new(Offline::postgres(url)?));
    }
    Ok(match (&args.data_dir, &args.url) {
        (Some(dir), None) => Box::new(Offline::open(dir, &args.origin_prefix)?),
        (None, Some(url)) => Box::new(Remote::new(url, args.key.as_deref().unwrap_or_default())?),
        (None, None) => Box::new(Offline::open(
            &crate::default_data_dir(),
            &args.origin_prefix,
        )?),
        (Some(_), Some(_)) => bail!("give --data-dir or --url, not both"),
    })
}

/// The tenant a checkpoint's origin names under `prefix`.
fn tenant_of_origin(origin: &str, prefix: &str) -> Option<TenantId> {
    let name = origin.strip_prefix(prefix)?.strip_prefix('/')?;
    TenantId::from_stored(name).ok()
}

/// One checkpoint from outside the store: its tenant, note and label.
pub struct Pinned {
    tenant: TenantId,
    note: String,
    label: String,
    size: u64,
}

fn read_pinned(text: &str, label: String, prefix: &str) -> anyhow::Result<Pinned> {
    let note =
        Note::parse(text.as_bytes()).with_context(|| format!("{label}: not a signed note"))?;
    let cp = Checkpoint::parse_text(note.text())
        .with_context(|| format!("{label}: not a checkpoint"))?;
    let tenant = tenant_of_origin(cp.origin(), prefix).with_context(|| {
        format!(
            "{label}: its origin {} is not {prefix}/<tenant> (set --origin-prefix)",
            cp.origin()
        )
    })?;
    Ok(Pinned {
        tenant,
        note: text.to_owned(),
        label,
        size: cp.size().get(),
    })
}

/// The `--state` file: the last verified checkpoint note per tenant.
fn load_state(path: &Path, prefix: &str) -> anyhow::Result<Vec<Pinned>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the state file {}", path.display()))?;
    let state: BTreeMap<String, String> = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a verify state file (a JSON object of tenant → checkpoint)",
            path.display()
        )
    })?;
    state
        .into_values()
        .map(|note| {
            read_pinned(
                &note,
                format!("the checkpoint remembered in {}", path.display()),
                prefix,
            )
        })
        .collect()
}

/// Replaces the state file whole and durably ([`crate::datadir::replace_durably`]).
fn save_state(path: &Path, state: &BTreeMap<String, String>) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(state)? + "\n";
    crate::datadir::replace_durably(path, text.as_bytes())
        .with_context(|| format!("replacing {}", path.display()))
}

/// The keys to trust for a tenant, each with the sizes it may sign. With
/// pinned keys: the recorded key history only when it starts from a pinned
/// key (its transitions are then checked back to it), else the pinned keys
/// alone. Without: the recorded history, else the key the source names.
fn keys_for(
    source: &mut dyn Source,
    history: Option<&KeyHistory>,
    pinned: &[VerifierKey],
    tenant: &TenantId,
    prefix: &str,
) -> anyhow::Result<Vec<ScopedKey>> {
    let from_history = |h: &KeyHistory| h.keys_for(tenant.as_str()).map_err(|e| anyhow::anyhow!(e));
    if pinned.is_empty() {
        return match history {
            Some(h) => from_history(h),
            None => Ok(source
                .verifier_keys(tenant)?
                .into_iter()
                .map(ScopedKey::always)
                .collect()),
        };
    }
    if let Some(h) = history
        && pinned.iter().any(|k| h.starts_with(&k.public_key()))
    {
        return from_history(h);
    }
    let name = format!("{prefix}/{tenant}");
    Ok(pinned
        .iter()
        .filter(|k| k.name().as_str() == name)
        .cloned()
        .map(ScopedKey::always)
        .collect())
}

/// A progress line on standard error, only when it is a terminal.
struct Progress<'a> {
    tenant: &'a TenantId,
    size: u64,
    on: bool,
}

impl<'a> Progress<'a> {
    fn new(tenant: &'a TenantId, size: u64) -> Self {
        use std::io::IsTerminal as _;
        Self {
            tenant,
            size,
            on: std::io::stderr().is_terminal() && size > PROGRESS_FROM,
        }
    }

    fn show(&self, done: u64) {
        if self.on {
            eprint!(
                "\rverifying {}: {done}/{} entries ({}%)",
                self.tenant,
                self.size,
                done * 100 / self.size
            );
        }
    }

    fn done(&self) {
        if self.on {
            eprint!("\r\x1b[2K");
        }
    }
}

/// Pushes one tenant's checkpoints and entries into its verifier.
fn push_tenant(
    source: &mut dyn Source,
    verifier: &mut TenantVerifier,
    tenant: &TenantId,
    size: u64,
    checkpoints: &[StoredNote],
) -> anyhow::Result<()> {
    for stored in checkpoints {
        verifier.stored_checkpoint(&stored.note, stored.columns);
    }
    let progress = Progress::new(tenant, size);
    // Each entry is checked on its own on every core; the tree is rebuilt
    // in order.
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mut start = 0;
    while start < size {
        progress.show(start);
        let end = (start + source.page_len()).min(size);
        let page = source.entries(tenant, start, end, size)?;
        verifier.page(start, page.entries(), threads);
        if page.is_empty() {
            break;
        }
        start = end;
    }
    progress.done();
    Ok(())
}

/// The monitor's demand: a consistency proof from the remembered
/// checkpoint to the newest stored one (besides the rebuilt roots).
/// The newest stored checkpoint: its size, root and note (notes that do not
/// parse are left out here; the verifier reports them).
fn newest(checkpoints: &[StoredNote]) -> Option<(u64, Hash, &str)> {
    checkpoints
        .iter()
        .filter_map(|c| {
            let note = Note::parse(c.note.as_bytes()).ok()?;
            let cp = Checkpoint::parse_text(note.text()).ok()?;
            Some((cp.size().get(), *cp.root(), c.note.as_str()))
        })
        .max_by_key(|c| c.0)
}

fn check_remembered(
    source: &mut dyn Source,
    verifier: &mut TenantVerifier,
    remembered: &Pinned,
    newest: Option<(u64, Hash, &str)>,
) -> anyhow::Result<()> {
    let Some((size, root, _)) = newest else {
        return Ok(());
    };
    if size <= remembered.size {
        return Ok(());
    }
    let proof = source.consistency(&remembered.tenant, remembered.size, size)?;
    verifier.consistency_from_trusted(&remembered.note, (size, root), &proof, &remembered.label);
    Ok(())
}

pub fn print_report(report: &Report) {
    let tenant = &report.tenant;
    if report.ok() {
        let s = &report.summary;
        let mut line = format!(
            "ok     {tenant}: {} entries ({} erased, {} expired), {} checkpoints, root {}",
            s.entries,
            s.erased,
            s.expired,
            s.checkpoints,
            s.root.map(|r| r.to_hex()).unwrap_or_default(),
        );
        if s.pinned > 0 {
            let _ = write!(line, ", held to {} checkpoints from outside", s.pinned);
        }
        if s.unsigned_tail > 0 {
            let _ = write!(line, ", {} newest not yet in a checkpoint", s.unsigned_tail);
        }
        out(&line);
    } else {
        for failure in &report.failures {
            out(&format!("FAILED {tenant}: {failure}"));
        }
        if report.more_failures > 0 {
            out(&format!(
                "FAILED {tenant}: and {} more failures",
                report.more_failures
            ));
        }
    }
}

#[allow(clippy::print_stdout)] // the command's report
fn out(line: &str) {
    println!("{line}");
}

pub fn now() -> Option<Timestamp> {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_millis();
    Timestamp::from_unix_millis(i64::try_from(millis).ok()?)
}

/// `--witness` keys and how many of them must cosign.
fn witness_args(args: &VerifyArgs) -> anyhow::Result<(Vec<CosignatureKey>, usize)> {
    let witnesses = args
        .witnesses
        .iter()
        .map(|w| CosignatureKey::parse(w).with_context(|| format!("--witness {w}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let required = args
        .witnesses_required
        .unwrap_or(usize::from(!witnesses.is_empty()));
    if required > witnesses.len() {
        bail!(
            "--witnesses-required {required} is more than the {} --witness keys given",
            witnesses.len()
        );
    }
    Ok((witnesses, required))
}

fn run_receipt(args: &VerifyArgs, path: &Path, pinned: &[VerifierKey]) -> anyhow::Result<ExitCode> {
    let (witnesses, required) = witness_args(args)?;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut keys = pinned.to_vec();
    if keys.is_empty() {
        if args.data_dir.is_none() && args.url.is_none() && args.database.is_none() {
            bail!(
                "--receipt needs the log's key: give --verifier-key VKEY (kept apart from the server), or --data-dir/--url"
            );
        }
        // The tenant is in the receipt's checkpoint origin.
        let text = String::from_utf8_lossy(&bytes);
        let checkpoint = text.split_once("\n\n").map_or("", |(_, c)| c);
        let origin = checkpoint.lines().next().unwrap_or_default();
        let tenant = tenant_of_origin(origin, &args.origin_prefix).with_context(|| {
            format!(
                "the receipt's checkpoint origin {origin:?} is not {}/<tenant>",
                args.origin_prefix
            )
        })?;
        keys = open_source(args)?.verifier_keys(&tenant)?;
    }
    match verify_witnessed_receipt(&bytes, &keys, &witnesses, required) {
        Ok(facts) => {
            out(&format!(
                "ok     receipt: {} seq {} (event {}, {} at {}) is in the log of {} entries signed by {}",
                facts.envelope.tenant,
                facts.envelope.seq,
                facts.envelope.id,
                facts.envelope.action,
                facts.envelope.occurred_at,
                facts.tree_size,
                facts.key_name
            ));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            out(&format!("FAILED receipt {}: {e}", path.display()));
            Ok(ExitCode::from(1))
        }
    }
}

/// What a verification is held to besides the trail itself.
#[derive(Default)]
pub struct Evidence {
    /// Verifier keys kept apart from the data (empty: the source's).
    pub keys: Vec<VerifierKey>,
    /// Checkpoints from `--trust`.
    pub trusted: Vec<Pinned>,
    /// Checkpoints from `--state`.
    pub remembered: Vec<Pinned>,
    /// Only this tenant (and `_system`).
    pub only: Option<TenantId>,
    /// Witnesses whose cosignatures count, and how many are required.
    pub witnesses: Vec<CosignatureKey>,
    pub witnesses_required: usize,
    pub origin_prefix: String,
}

/// The verdict on every tenant, in order (`_system` first), then tenants
/// that vanished; and, per tenant that passed, its newest checkpoint note.
pub struct Verdict {
    pub reports: Vec<Report>,
    pub newest: BTreeMap<String, String>,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.reports.iter().all(Report::ok)
    }
}

/// Verifies a whole trail from `source` against `evidence`.
pub fn check(
    source: &mut dyn Source,
    evidence: &Evidence,
    policy: Policy,
) -> anyhow::Result<Verdict> {
    let heads: BTreeMap<TenantId, u64> = source.tenants()?.into_iter().collect();
    let mut names: Vec<TenantId> = heads.keys().cloned().collect();
    let outside: Vec<&Pinned> = evidence
        .trusted
        .iter()
        .chain(&evidence.remembered)
        .collect();
    names.extend(outside.iter().map(|p| p.tenant.clone()));
    if let Some(only) = &evidence.only {
        names.retain(|t| t == only || t.is_system());
        if !names.contains(only) {
            bail!("tenant {only} has no entries here");
        }
    }
    let history = match source.key_history()? {
        Some(records) if !records.is_empty() => Some(
            KeyHistory::new(&records)
                .map_err(|e| anyhow::anyhow!("the trail's signing-key history: {e}"))?,
        ),
        _ => None,
    };
    let mut trail = Trail::new(policy);
    let mut verdict = Verdict {
        reports: Vec::new(),
        newest: BTreeMap::new(),
    };
    for tenant in &Trail::order(names) {
        let keys = keys_for(
            source,
            history.as_ref(),
            &evidence.keys,
            tenant,
            &evidence.origin_prefix,
        )?;
        let mut tv = trail.tenant(tenant.clone(), keys);
        if evidence.witnesses_required > 0 {
            tv.require_witnesses(evidence.witnesses.clone(), evidence.witnesses_required);
        }
        for p in outside.iter().filter(|p| &p.tenant == tenant) {
            tv.trusted_checkpoint(&p.note, &p.label);
        }
        // Read once: pushed into the verifier, asked for the monitor's
        // proof, and remembered when the tenant passes.
        let checkpoints = source.checkpoints(tenant)?;
        // The size after the checkpoints (a live trail may have signed a
        // larger size since the heads were read) and after `_system`'s
        // records of this tenant, never below what the heads showed.
        let size = source
            .size(tenant)?
            .max(heads.get(tenant).copied().unwrap_or(0));
        let newest = newest(&checkpoints);
        for p in evidence.remembered.iter().filter(|p| &p.tenant == tenant) {
            check_remembered(source, &mut tv, p, newest)?;
        }
        push_tenant(source, &mut tv, tenant, size, &checkpoints)?;
        let report = trail.finish(tv, size);
        if report.ok()
            && let Some((_, _, note)) = newest
        {
            verdict.newest.insert(tenant.to_string(), note.to_owned());
        }
        verdict.reports.push(report);
    }
    let present: Vec<TenantId> = heads.keys().cloned().collect();
    verdict
        .reports
        .extend(trail.vanished(&present, evidence.only.as_ref()));
    Ok(verdict)
}

pub fn run(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let keys = args
        .verifier_keys
        .iter()
        .map(|k| VerifierKey::parse(k).with_context(|| format!("--verifier-key {k}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(path) = &args.receipt {
        return run_receipt(args, path, &keys);
    }
    let mut trusted = Vec::new();
    for path in &args.trust {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--trust {}: cannot read it", path.display()))?;
        let label = format!("the trusted checkpoint in {}", path.display());
        trusted.push(read_pinned(&text, label, &args.origin_prefix)?);
    }
    let remembered = match &args.state {
        Some(path) => load_state(path, &args.origin_prefix)?,
        None => Vec::new(),
    };
    let only = args
        .tenant
        .as_deref()
        .map(|t| TenantId::from_stored(t).map_err(|m| anyhow::anyhow!("--tenant: {m}")))
        .transpose()?;
    let (witnesses, witnesses_required) = witness_args(args)?;
    let evidence = Evidence {
        keys,
        trusted,
        remembered,
        only,
        witnesses,
        witnesses_required,
        origin_prefix: args.origin_prefix.clone(),
    };
    let policy = Policy {
        now: now(),
        max_unsigned_age_ms: i64::try_from(args.max_unsigned_age.saturating_mul(1000))
            .unwrap_or(i64::MAX),
    };
    let mut source = open_source(args)?;
    let verdict = check(source.as_mut(), &evidence, policy)?;
    for report in &verdict.reports {
        print_report(report);
    }
    if !verdict.ok() {
        out("the trail is NOT intact");
        return Ok(ExitCode::from(1));
    }
    if let Some(path) = &args.state {
        let mut state: BTreeMap<String, String> = evidence
            .remembered
            .iter()
            .map(|p| (p.tenant.to_string(), p.note.clone()))
            .collect();
        state.extend(verdict.newest.clone());
        save_state(path, &state)?;
    }
    out(&format!(
        "the trail is intact ({} tenants)",
        verdict.reports.len()
    ));
    Ok(ExitCode::SUCCESS)
}
