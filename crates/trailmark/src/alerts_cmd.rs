//! `trailmark alerts list|show|ack|redeliver|rules|webhooks`, against a
//! running server: what the alert routes do (docs/ALERTS.md), from a shell.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use trailmark_server::alerts::Rules;
use trailmark_server::wire::{AlertOut, AlertRulesOut, AlertsPage, WebhooksOut};

use crate::keys_cmd::AdminServer as Server;

#[derive(Debug, Args)]
pub struct AlertsArgs {
    #[command(subcommand)]
    command: AlertsCommand,
    #[command(flatten)]
    server: Server,
}

#[derive(Debug, Subcommand)]
enum AlertsCommand {
    /// List alerts, newest first.
    ///
    /// Example: trailmark alerts list --status open --tenant acme
    List {
        #[arg(long)]
        tenant: Option<String>,
        /// failed_logins or mass_delete.
        #[arg(long)]
        rule: Option<String>,
        /// open, acknowledged or resolved.
        #[arg(long)]
        status: Option<String>,
        /// Alerts with a delivery pending, delivered or dead (dead: the
        /// dead-letter list).
        #[arg(long)]
        delivery: Option<String>,
        /// Alerts read (1 to 100; the filters may leave fewer).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// The next page: the cursor the previous page printed.
        #[arg(long)]
        cursor: Option<String>,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One alert with its events, acknowledgement and deliveries (JSON).
    ///
    /// Example: trailmark alerts show 01890a5d-ac96-774b-bcce-b302099a8057
    Show { id: String },
    /// Acknowledge an alert, or resolve it. Recorded in `_system`.
    ///
    /// Example: trailmark alerts ack 01890a5d-ac96-774b-bcce-b302099a8057 --note "ticket SEC-12"
    Ack {
        id: String,
        /// Resolve it (acknowledged or not).
        #[arg(long)]
        resolve: bool,
        /// Kept forever in `_system`: what was done, not personal data.
        #[arg(long)]
        note: Option<String>,
    },
    /// Deliver an alert again from the first attempt (same webhook-id).
    ///
    /// Example: trailmark alerts redeliver 01890a5d-ac96-774b-bcce-b302099a8057 --webhook security
    Redeliver {
        id: String,
        /// Only to this webhook (default: every webhook that takes it).
        #[arg(long)]
        webhook: Option<String>,
    },
    /// Show the rules (TOML), or replace them all from a TOML file
    /// (recorded in `_system`).
    ///
    /// Example: trailmark alerts rules set alert-rules.toml
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Show the webhook endpoints (JSON, never their secrets), or replace
    /// them from a JSON file `{"webhooks": [...]}` (recorded in `_system`;
    /// a secret made now is printed once).
    ///
    /// Example: trailmark alerts webhooks set webhooks.json
    Webhooks {
        #[command(subcommand)]
        command: WebhooksCommand,
    },
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// Example: trailmark alerts rules show > alert-rules.toml
    Show,
    /// Example: trailmark alerts rules set alert-rules.toml
    Set { file: PathBuf },
}

#[derive(Debug, Subcommand)]
enum WebhooksCommand {
    /// Example: trailmark alerts webhooks show
    Show,
    /// Example: trailmark alerts webhooks set webhooks.json
    Set { file: PathBuf },
}

fn typed<T: serde::de::DeserializeOwned>(value: Value, route: &str) -> anyhow::Result<T> {
    serde_json::from_value(value).with_context(|| format!("{route}: not the answer expected"))
}

fn delivery_word(a: &AlertOut) -> String {
    if a.deliveries.is_empty() {
        return "-".into();
    }
    a.deliveries
        .iter()
        .map(|d| format!("{}:{}", d.webhook, d.state))
        .collect::<Vec<_>>()
        .join(",")
}

#[allow(clippy::print_stdout)] // the command's output
pub fn run(args: AlertsArgs) -> anyhow::Result<ExitCode> {
    let http = args.server.http()?;
    match args.command {
        AlertsCommand::List {
            tenant,
            rule,
            status,
            delivery,
            limit,
            cursor,
            json,
        } => {
            let mut query = vec![("limit", limit.to_string())];
            for (name, value) in [
                ("tenant", tenant),
                ("rule", rule),
                ("status", status),
                ("delivery", delivery),
                ("cursor", cursor),
            ] {
                if let Some(v) = value {
                    query.push((name, v));
                }
            }
            let page = http.get_json("/v1/alerts", &query)?;
            if json {
                println!("{page:#}");
                return Ok(ExitCode::SUCCESS);
            }
            let page: AlertsPage = typed(page, "GET /v1/alerts")?;
            println!(
                "{:<36}  {:<24}  {:<13}  {:<12}  {:<12}  {:<18}  SUMMARY",
                "ID", "RAISED", "RULE", "TENANT", "STATUS", "DELIVERY"
            );
            for a in &page.alerts {
                println!(
                    "{:<36}  {:<24}  {:<13}  {:<12}  {:<12}  {:<18}  {}",
                    a.id,
                    a.raised_at,
                    a.rule,
                    a.tenant,
                    a.status,
                    delivery_word(a),
                    a.summary
                );
            }
            if let Some(next) = page.next_cursor {
                println!("more: --cursor {next}");
            }
        }
        AlertsCommand::Show { id } => {
            println!("{:#}", http.get_json(&format!("/v1/alerts/{id}"), &[])?);
        }
        AlertsCommand::Ack { id, resolve, note } => {
            let mut body = json!({"resolve": resolve});
            if let Some(n) = note {
                body["note"] = json!(n);
            }
            let a: AlertOut = typed(
                http.post_json(&format!("/v1/alerts/{id}/ack"), &body)?,
                "POST /v1/alerts/{id}/ack",
            )?;
            let step = if resolve {
                &a.resolved
            } else {
                &a.acknowledged
            };
            eprintln!(
                "{}: alert {}{}",
                a.status,
                a.id,
                step.as_ref()
                    .map(|s| format!(" (recorded in _system seq {})", s.entry.seq))
                    .unwrap_or_default()
            );
        }
        AlertsCommand::Redeliver { id, webhook } => {
            let body = webhook.map_or_else(|| json!({}), |w| json!({"webhook": w}));
            let a: AlertOut = typed(
                http.post_json(&format!("/v1/alerts/{id}/redeliver"), &body)?,
                "POST /v1/alerts/{id}/redeliver",
            )?;
            eprintln!("delivering alert {} again: {}", a.id, delivery_word(&a));
        }
        AlertsCommand::Rules { command } => rules(&http, command)?,
        AlertsCommand::Webhooks { command } => webhooks(&http, command)?,
    }
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stdout)] // the command's output
fn rules(http: &crate::source::Http, command: RulesCommand) -> anyhow::Result<()> {
    match command {
        RulesCommand::Show => {
            let out: AlertRulesOut = typed(
                http.get_json("/v1/alert-rules", &[])?,
                "GET /v1/alert-rules",
            )?;
            let rules = Rules::from_json(out.rules)
                .map_err(|e| anyhow::anyhow!("GET /v1/alert-rules: {e}"))?;
            println!("# version {}\n{}", out.version, rules.to_toml().trim_end());
        }
        RulesCommand::Set { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let rules =
                Rules::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let body = serde_json::to_value(&rules)?;
            let out: AlertRulesOut = typed(
                http.put_json("/v1/alert-rules", &body)?,
                "PUT /v1/alert-rules",
            )?;
            eprintln!("alert rules set: version {}", out.version);
        }
    }
    Ok(())
}

#[allow(clippy::print_stdout)] // the command's output
fn webhooks(http: &crate::source::Http, command: WebhooksCommand) -> anyhow::Result<()> {
    match command {
        WebhooksCommand::Show => {
            println!("{:#}", http.get_json("/v1/webhooks", &[])?);
        }
        WebhooksCommand::Set { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let body: Value = serde_json::from_str(&text)
                .with_context(|| format!("{}: not JSON", file.display()))?;
            let out: WebhooksOut =
                typed(http.put_json("/v1/webhooks", &body)?, "PUT /v1/webhooks")?;
            for w in &out.webhooks {
                match &w.secret {
                    Some(secret) => {
                        println!("{} {} secret (shown once): {secret}", w.name, w.url);
                    }
                    None => println!(
                        "{} {} (secret kept, sha256 {})",
                        w.name, w.url, w.secret_sha256
                    ),
                }
            }
            eprintln!("webhooks set: version {}", out.version);
        }
    }
    Ok(())
}
