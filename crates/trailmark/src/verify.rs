//! `trailmark verify`: recompute everything a trail commits to.
//!
//! For each tenant: every checkpoint's signature and origin; consistency
//! between consecutive checkpoints; every envelope (canonical, at its own
//! position, of its own tenant); every payload present against its digest;
//! the tree rebuilt leaf by leaf (a compact range: O(log n) memory) and its
//! root compared with every checkpoint at that checkpoint's size.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use trailmark_core::{Envelope, TenantId};
use trailmark_log::{
    CompactRange, Hash, SignedCheckpoint, TreeSize, VerifierKey, leaf_hash, verify_consistency,
};

use crate::source::{LogEntry, Offline, Remote, Source};

const PAGE: u64 = 1000;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Verify a data dir directly (the server may be running).
    #[arg(long, env = "TRAILMARK_DATA_DIR", conflicts_with = "url")]
    data_dir: Option<PathBuf>,
    /// Verify a server through its public read API.
    #[arg(long, env = "TRAILMARK_URL", requires = "key")]
    url: Option<String>,
    /// A read key for --url.
    #[arg(long, env = "TRAILMARK_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Only this tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// Trust only this verifier key (from a copy you keep), not the one the
    /// source offers. Needs --tenant.
    #[arg(long, requires = "tenant")]
    verifier_key: Option<String>,
    /// The origin prefix the server signs with (offline verification).
    #[arg(
        long,
        env = "TRAILMARK_ORIGIN_PREFIX",
        default_value = "trailmark.local"
    )]
    origin_prefix: String,
}

/// What was found wrong, and where.
#[derive(Debug)]
pub struct Failure {
    pub tenant: TenantId,
    pub seq: Option<u64>,
    pub reason: String,
}

/// What one tenant's verification saw.
#[derive(Debug, Default)]
pub struct Summary {
    pub entries: u64,
    pub erased: u64,
    pub checkpoints: usize,
    pub root: Option<Hash>,
    pub unsigned_tail: u64,
}

fn fail(tenant: &TenantId, seq: Option<u64>, reason: impl Into<String>) -> Failure {
    Failure {
        tenant: tenant.clone(),
        seq,
        reason: reason.into(),
    }
}

/// Every checkpoint of a tenant, signature-checked, sorted by size, with
/// consecutive ones checked for consistency.
fn signed_checkpoints(
    source: &mut dyn Source,
    tenant: &TenantId,
    pinned: Option<&VerifierKey>,
) -> anyhow::Result<Result<Vec<(u64, Hash)>, Failure>> {
    let key = match pinned {
        Some(k) => k.clone(),
        None => source.verifier_key(tenant)?,
    };
    // Checkpoints first, then the size: every checkpoint read is then within
    // the log (entries are committed before they are signed).
    let mut checkpoints = Vec::new();
    for note in source.checkpoints(tenant)? {
        match SignedCheckpoint::open(note.as_bytes(), &key) {
            Ok(cp) => checkpoints.push((cp.checkpoint().size().get(), *cp.checkpoint().root())),
            Err(e) => {
                let size = note.lines().nth(1).unwrap_or("?").to_owned();
                return Ok(Err(fail(
                    tenant,
                    None,
                    format!("checkpoint at size {size}: {e}"),
                )));
            }
        }
    }
    checkpoints.sort_by_key(|c| c.0);
    for pair in checkpoints.windows(2) {
        let ((a, ra), (b, rb)) = (pair[0], pair[1]);
        let proof = source.consistency(tenant, a, b)?;
        let (first, second) = (
            TreeSize::new(a).unwrap_or_default(),
            TreeSize::new(b).unwrap_or_default(),
        );
        if let Err(e) = verify_consistency(first, second, &proof, &ra, &rb) {
            return Ok(Err(fail(
                tenant,
                None,
                format!("checkpoints at sizes {a} and {b} are not consistent: {e}"),
            )));
        }
    }
    Ok(Ok(checkpoints))
}

/// A progress line on standard error while verifying, only when it is a
/// terminal (never in logs or pipes).
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
            on: std::io::stderr().is_terminal() && size > 10 * PAGE,
        }
    }

    fn show(&self, done: u64) {
        if self.on && done.is_multiple_of(10 * PAGE) {
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

/// Checks one entry on its own: canonical envelope at its own position and
/// tenant, payload matching its digest. Returns its leaf hash and whether
/// its payload is erased.
fn check_entry(tenant: &TenantId, n: u64, entry: &LogEntry) -> Result<(Hash, bool), Failure> {
    let envelope = Envelope::from_leaf_bytes(&entry.envelope)
        .map_err(|e| fail(tenant, Some(n), format!("envelope: {e}")))?;
    if envelope.seq.get() != n {
        return Err(fail(
            tenant,
            Some(n),
            format!(
                "position {n} holds the envelope of seq {}: entries were removed or reordered",
                envelope.seq
            ),
        ));
    }
    if envelope.tenant != *tenant {
        return Err(fail(
            tenant,
            Some(n),
            format!("the envelope belongs to tenant {}", envelope.tenant),
        ));
    }
    let erased = match (&entry.payload, &entry.salt) {
        (Some(payload), Some(salt)) => {
            if envelope.payload_digest.verify(payload, salt).is_err() {
                return Err(fail(
                    tenant,
                    Some(n),
                    "the payload does not match the digest in its envelope",
                ));
            }
            false
        }
        (None, None) => true,
        _ => {
            return Err(fail(
                tenant,
                Some(n),
                "a payload without its salt, or a salt without its payload",
            ));
        }
    };
    Ok((leaf_hash(&entry.envelope), erased))
}

/// Verifies one tenant's log.
pub fn verify_tenant(
    source: &mut dyn Source,
    tenant: &TenantId,
    pinned: Option<&VerifierKey>,
) -> anyhow::Result<Result<Summary, Failure>> {
    let checkpoints = match signed_checkpoints(source, tenant, pinned)? {
        Ok(c) => c,
        Err(f) => return Ok(Err(f)),
    };
    let size = source
        .tenants()?
        .into_iter()
        .find(|(t, _)| t == tenant)
        .map_or(0, |(_, s)| s);

    let mut summary = Summary {
        checkpoints: checkpoints.len(),
        ..Summary::default()
    };
    let mut range = CompactRange::new();
    let mut next_cp = 0;
    let mut first_changed_leaf = None;
    let mut start = 0;
    let progress = Progress::new(tenant, size);
    while start < size {
        progress.show(start);
        let end = (start + PAGE).min(size);
        let page = source.entries(tenant, start, end)?;
        for (n, entry) in (start..).zip(&page) {
            let (leaf, erased) = match check_entry(tenant, n, entry) {
                Ok(checked) => checked,
                Err(f) => return Ok(Err(f)),
            };
            if entry.leaf_hash.is_some_and(|stored| stored != leaf) && first_changed_leaf.is_none()
            {
                first_changed_leaf = Some(n);
            }
            summary.erased += u64::from(erased);
            range.append(leaf, |_, _| {})?;
            while let Some(&(cp_size, cp_root)) = checkpoints.get(next_cp) {
                if cp_size != range.size().get() {
                    break;
                }
                if range.root() != cp_root {
                    let reason = format!(
                        "the entries do not produce the root signed at size {cp_size}: an entry was changed"
                    );
                    return Ok(Err(fail(tenant, first_changed_leaf.or(Some(n)), reason)));
                }
                next_cp += 1;
            }
        }
        if (page.len() as u64) < end - start {
            let missing = start + page.len() as u64;
            return Ok(Err(fail(
                tenant,
                Some(missing),
                format!("entry {missing} is missing (the log has {size})"),
            )));
        }
        start = end;
    }
    progress.done();
    if let Some(&(cp_size, _)) = checkpoints.get(next_cp) {
        return Ok(Err(fail(
            tenant,
            Some(size),
            format!(
                "a checkpoint signs {cp_size} entries but only {size} are present: entries were removed"
            ),
        )));
    }
    if let Some(seq) = first_changed_leaf {
        return Ok(Err(fail(
            tenant,
            Some(seq),
            "the envelope differs from the one whose hash was stored",
        )));
    }
    summary.entries = size;
    summary.root = Some(range.root());
    summary.unsigned_tail = size - checkpoints.last().map_or(0, |c| c.0);
    Ok(Ok(summary))
}

#[allow(clippy::print_stdout)] // the command's report
pub fn run(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let mut source: Box<dyn Source> = match (&args.data_dir, &args.url) {
        (Some(dir), None) => Box::new(Offline::open(dir, &args.origin_prefix)?),
        (None, Some(url)) => Box::new(Remote::new(url, args.key.as_deref().unwrap_or_default())),
        (None, None) => Box::new(Offline::open(
            &crate::default_data_dir(),
            &args.origin_prefix,
        )?),
        (Some(_), Some(_)) => bail!("give --data-dir or --url, not both"),
    };
    let pinned = args
        .verifier_key
        .as_deref()
        .map(VerifierKey::parse)
        .transpose()?;
    let mut tenants: Vec<TenantId> = source.tenants()?.into_iter().map(|(t, _)| t).collect();
    if let Some(only) = &args.tenant {
        let only = TenantId::from_stored(only).map_err(|m| anyhow::anyhow!("--tenant: {m}"))?;
        tenants.retain(|t| *t == only);
        if tenants.is_empty() {
            bail!("tenant {only} has no entries here");
        }
    }
    let mut failed = false;
    for tenant in &tenants {
        match verify_tenant(source.as_mut(), tenant, pinned.as_ref())? {
            Ok(s) => println!(
                "ok     {tenant}: {} entries ({} erased), {} checkpoints, root {}{}",
                s.entries,
                s.erased,
                s.checkpoints,
                s.root.map(|r| r.to_hex()).unwrap_or_default(),
                if s.unsigned_tail > 0 {
                    format!(", {} newest not yet in a checkpoint", s.unsigned_tail)
                } else {
                    String::new()
                },
            ),
            Err(f) => {
                failed = true;
                match f.seq {
                    Some(seq) => println!("FAILED {}: seq {seq}: {}", f.tenant, f.reason),
                    None => println!("FAILED {}: {}", f.tenant, f.reason),
                }
            }
        }
    }
    if failed {
        println!("the trail is NOT intact");
        Ok(ExitCode::from(1))
    } else {
        println!("the trail is intact ({} tenants)", tenants.len());
        Ok(ExitCode::SUCCESS)
    }
}
