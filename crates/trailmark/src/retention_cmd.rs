//! `trailmark retention|cleanup|hold|erase`, against a running server
//! (admin key): the only paths that remove data, each recorded in `_system`.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use trailmark_server::wire::{Holds, RemovalReport, RetentionOut};

use crate::keys_cmd::AdminServer as Server;
use crate::source::Http;

#[derive(Debug, Args)]
pub struct RetentionArgs {
    #[command(subcommand)]
    command: RetentionCommand,
    #[command(flatten)]
    server: Server,
}

/// Which entries of a tenant a policy covers: one resource type, one
/// action, or (neither) all.
#[derive(Debug, Args)]
struct Target {
    #[arg(long)]
    tenant: String,
    /// Only entries of this resource type.
    #[arg(long, conflicts_with = "action")]
    resource_type: Option<String>,
    /// Only entries of this action.
    #[arg(long)]
    action: Option<String>,
}

#[derive(Debug, Subcommand)]
enum RetentionCommand {
    /// Set how long payloads of a tenant's entries are kept (replaces the
    /// policy of the same target). Recorded in `_system`.
    ///
    /// Example: trailmark retention set --tenant acme --resource-type Invoice --max-age-days 30
    Set {
        #[command(flatten)]
        target: Target,
        /// Days after an entry was received that its payload expires.
        #[arg(long)]
        max_age_days: u32,
    },
    /// List the policies, the holds in force and the last cleanup.
    ///
    /// Example: trailmark retention list
    List,
    /// Remove a policy (its entries are then kept). Recorded in `_system`.
    ///
    /// Example: trailmark retention remove --tenant acme --resource-type Invoice
    Remove {
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Report what would be removed, per tenant, resource type and action;
    /// remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Only this tenant.
    #[arg(long)]
    tenant: Option<String>,
    #[command(flatten)]
    server: Server,
}

#[derive(Debug, Args)]
pub struct HoldArgs {
    #[command(subcommand)]
    command: HoldCommand,
    #[command(flatten)]
    server: Server,
}

#[derive(Debug, Subcommand)]
enum HoldCommand {
    /// Place a legal hold: nothing it covers is expired or erased until it
    /// is released. Recorded in `_system`.
    ///
    /// Example: trailmark hold set --tenant acme --resource Invoice:42 --reason "case 2026-117"
    Set {
        #[arg(long)]
        tenant: String,
        /// One record, as TYPE:ID.
        #[arg(long, conflicts_with_all = ["actor", "all"])]
        resource: Option<String>,
        /// Everything one actor did.
        #[arg(long, conflicts_with = "all")]
        actor: Option<String>,
        /// Every entry of the tenant.
        #[arg(long)]
        all: bool,
        /// Kept forever in `_system`: a case number, not a person's name.
        #[arg(long)]
        reason: String,
    },
    /// List holds (in force and released).
    ///
    /// Example: trailmark hold list
    List,
    /// Release a hold by its id. Recorded in `_system`.
    ///
    /// Example: trailmark hold release hold_3f2a9c01d4e5
    Release { id: String },
}

#[derive(Debug, Args)]
pub struct EraseArgs {
    /// Erase everything this actor did.
    #[arg(
        long,
        conflicts_with = "resource",
        required_unless_present = "resource"
    )]
    actor: Option<String>,
    /// Erase the history of this record, as TYPE:ID.
    #[arg(long)]
    resource: Option<String>,
    /// The tenant whose actor or record this is. Without it, the erasure
    /// is refused when the id has entries in more than one tenant the key
    /// sees (an id is one tenant's); --dry-run lists them all.
    #[arg(long)]
    tenant: Option<String>,
    /// Kept forever in `_system`: a ticket number, not a person's name.
    #[arg(long)]
    reason: String,
    /// Show what would be erased (and how many matching entries holds
    /// keep), erase nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    server: Server,
}

fn target_body(t: &Target) -> Value {
    json!({"tenant": t.tenant, "resource_type": t.resource_type, "action": t.action})
}

#[allow(clippy::print_stdout)] // the command's output
fn print_report(r: &RemovalReport) {
    let verb = match (r.kind.as_str(), r.dry_run) {
        ("erasure", true) => "would erase",
        ("erasure", false) => "erased",
        (_, true) => "would expire",
        _ => "expired",
    };
    println!(
        "{:<16} {:<24} {:<24} {:>10} {:>12}",
        "TENANT", "RESOURCE TYPE", "ACTION", "ENTRIES", "BYTES"
    );
    for g in &r.groups {
        println!(
            "{:<16} {:<24} {:<24} {:>10} {:>12}",
            g.tenant,
            g.resource_type.as_deref().unwrap_or("-"),
            g.action,
            g.entries,
            g.bytes
        );
    }
    println!(
        "{verb}: {} entries, {} bytes; {} kept by holds{}",
        r.entries,
        r.bytes,
        r.held,
        match (r.records.first(), r.records.last()) {
            (Some(first), Some(_)) if r.records.len() == 1 => {
                format!("; recorded in _system seq {}", first.seq)
            }
            (Some(first), Some(last)) => format!(
                "; recorded in {} _system entries, seq {} to {}",
                r.records.len(),
                first.seq,
                last.seq
            ),
            _ => String::new(),
        }
    );
    if !r.dry_run && r.entries > 0 && !r.scrubbed {
        println!("the store could not scrub its files yet; the next cleanup retries it");
    }
}

#[allow(clippy::print_stdout)] // the command's output
pub fn retention(args: RetentionArgs) -> anyhow::Result<ExitCode> {
    let http = args.server.http()?;
    match args.command {
        RetentionCommand::Set {
            target,
            max_age_days,
        } => {
            let mut body = target_body(&target);
            body["max_age_days"] = json!(max_age_days);
            let set = http.put_json("/v1/retention", &body)?;
            eprintln!(
                "set: tenant {} {} kept {} days",
                set["tenant"].as_str().unwrap_or_default(),
                set["target"].as_str().unwrap_or_default(),
                set["max_age_days"]
            );
        }
        RetentionCommand::Remove { target } => {
            let mut query = vec![("tenant", target.tenant.clone())];
            if let Some(t) = &target.resource_type {
                query.push(("resource_type", t.clone()));
            }
            if let Some(a) = &target.action {
                query.push(("action", a.clone()));
            }
            let removed = http.delete_with("/v1/retention", &query)?;
            eprintln!(
                "removed: tenant {} {}",
                removed["tenant"].as_str().unwrap_or_default(),
                removed["target"].as_str().unwrap_or_default()
            );
        }
        RetentionCommand::List => {
            let text = http.get_text("/v1/retention", &[])?;
            let out: RetentionOut = serde_json::from_str(&text)
                .context("GET /v1/retention: not the answer expected")?;
            println!("{:<16} {:<32} {:>8}  UPDATED", "TENANT", "TARGET", "DAYS");
            for p in &out.policies {
                println!(
                    "{:<16} {:<32} {:>8}  {}",
                    p.tenant, p.target, p.max_age_days, p.updated_at
                );
            }
            println!("holds in force: {}", out.holds.len());
            for h in &out.holds {
                println!("  {} {} {} — {}", h.id, h.tenant, h.scope, h.reason);
            }
            match &out.last_cleanup {
                Some(r) => println!(
                    "last cleanup: {} — {} entries expired, {} held",
                    r.finished_at, r.entries, r.held
                ),
                None => println!("last cleanup: none since this server started"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How long `trailmark cleanup` waits for a cleanup that outlived the
/// request timeout.
const CLEANUP_WAIT: std::time::Duration = std::time::Duration::from_secs(4 * 3600);

fn last_cleanup(http: &Http) -> anyhow::Result<Option<RemovalReport>> {
    let text = http.get_text("/v1/retention", &[])?;
    let out: RetentionOut =
        serde_json::from_str(&text).context("GET /v1/retention: not the answer expected")?;
    Ok(out.last_cleanup)
}

pub fn cleanup(args: &CleanupArgs) -> anyhow::Result<ExitCode> {
    let http = args.server.http()?;
    let before = if args.dry_run {
        None
    } else {
        last_cleanup(&http)?.map(|r| r.finished_at)
    };
    let body = json!({"dry_run": args.dry_run, "tenant": args.tenant});
    let report = match http.post_json("/v1/retention/cleanup", &body) {
        Ok(answer) => serde_json::from_value(answer)
            .context("POST /v1/retention/cleanup: not the answer expected")?,
        // Longer than the server's request timeout: a real cleanup goes on
        // there, and its report becomes the last cleanup's.
        Err(e)
            if matches!(
                crate::source::status_of(&e),
                Some(trailmark_client::Error::Server { status: 408, .. })
            ) =>
        {
            if args.dry_run {
                anyhow::bail!(
                    "the dry run took longer than the server's request timeout: narrow it with --tenant"
                );
            }
            eprintln!(
                "the cleanup takes longer than the request timeout; it goes on in the server, waiting for its report…"
            );
            let deadline = std::time::Instant::now() + CLEANUP_WAIT;
            loop {
                std::thread::sleep(std::time::Duration::from_secs(2));
                if let Some(r) = last_cleanup(&http)?
                    && Some(&r.finished_at) != before.as_ref()
                {
                    break r;
                }
                if std::time::Instant::now() > deadline {
                    anyhow::bail!(
                        "no cleanup report after {} s: see `trailmark retention list`",
                        CLEANUP_WAIT.as_secs()
                    );
                }
            }
        }
        Err(e) => return Err(e),
    };
    print_report(&report);
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stdout)] // the command's output
pub fn hold(args: HoldArgs) -> anyhow::Result<ExitCode> {
    let http = args.server.http()?;
    match args.command {
        HoldCommand::Set {
            tenant,
            resource,
            actor,
            all,
            reason,
        } => {
            let body = json!({
                "tenant": tenant,
                "resource": resource,
                "actor": actor,
                "all": all.then_some(true),
                "reason": reason,
            });
            let hold = http.post_json("/v1/holds", &body)?;
            println!("{}", hold["id"].as_str().unwrap_or_default());
            eprintln!(
                "placed on tenant {} {}",
                hold["tenant"].as_str().unwrap_or_default(),
                hold["scope"].as_str().unwrap_or_default()
            );
        }
        HoldCommand::List => {
            let text = http.get_text("/v1/holds", &[])?;
            let holds: Holds =
                serde_json::from_str(&text).context("GET /v1/holds: not the answer expected")?;
            println!(
                "{:<18} {:<16} {:<28} {:<25} {:<25} REASON",
                "ID", "TENANT", "SCOPE", "PLACED", "RELEASED"
            );
            for h in &holds.holds {
                println!(
                    "{:<18} {:<16} {:<28} {:<25} {:<25} {}",
                    h.id,
                    h.tenant,
                    h.scope,
                    h.placed_at,
                    h.released_at.as_deref().unwrap_or("-"),
                    h.reason
                );
            }
        }
        HoldCommand::Release { id } => {
            if !id.starts_with("hold_") {
                anyhow::bail!(
                    "{id:?} is not a hold id: ids look like hold_3f2a9c01d4e5 (see `trailmark hold list`)"
                );
            }
            http.delete(&format!("/v1/holds/{id}"))?;
            eprintln!("released {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stdout)] // the command's output
pub fn erase(args: &EraseArgs) -> anyhow::Result<ExitCode> {
    let http = args.server.http()?;
    let body = json!({
        "actor": args.actor,
        "resource": args.resource,
        "tenant": args.tenant,
        "reason": args.reason,
        "dry_run": args.dry_run,
    });
    let report: RemovalReport = serde_json::from_value(http.post_json("/v1/erasures", &body)?)
        .context("POST /v1/erasures: not the answer expected")?;
    print_report(&report);
    if report.dry_run && report.held > 0 {
        // Unlike a cleanup, an erasure does not go ahead around held entries.
        println!(
            "the erasure itself would be refused while holds keep {} of its entries: release them (trailmark hold release) or narrow it",
            report.held
        );
    }
    Ok(ExitCode::SUCCESS)
}
