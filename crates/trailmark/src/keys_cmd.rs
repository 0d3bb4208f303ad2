//! `trailmark keys create|list|revoke`, against a running server.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::source::Http;

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
    #[command(flatten)]
    server: AdminServer,
}

/// The server and an admin key: what every command that administers a
/// running server takes (`keys`, `retention`, `cleanup`, `hold`, `erase`).
#[derive(Debug, Args)]
pub struct AdminServer {
    /// The server.
    #[arg(
        long,
        env = "TRAILMARK_URL",
        default_value = "http://127.0.0.1:7878",
        global = true
    )]
    url: String,
    /// An admin key; defaults to the bootstrap key in --data-dir.
    #[arg(long, env = "TRAILMARK_KEY", global = true, hide_env_values = true)]
    key: Option<String>,
    /// Where to find bootstrap-admin.key when --key is not given.
    #[arg(
        long,
        env = "TRAILMARK_DATA_DIR",
        default_value = "trailmark-data",
        global = true
    )]
    pub data_dir: PathBuf,
}

impl AdminServer {
    pub fn http(&self) -> anyhow::Result<Http> {
        Http::new(&self.url, &admin_key(self.key.clone(), &self.data_dir)?)
    }
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key and print it (it is shown only once).
    ///
    /// Example: trailmark keys create --scopes ingest,read --tenant acme --name "billing app"
    Create {
        /// Any of ingest, read, admin, comma-separated.
        #[arg(long, default_value = "ingest")]
        scopes: String,
        /// Bind the key to one tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// A label for people.
        #[arg(long, default_value = "unnamed")]
        name: String,
    },
    /// List keys (never their secrets).
    ///
    /// Example: trailmark keys list
    List,
    /// Revoke a key by its id (key_…).
    ///
    /// Example: trailmark keys revoke key_3f2a9c01d4e5
    Revoke { id: String },
    /// Hand checkpoint signing to a new key (every server stopped): the
    /// old key signs final checkpoints and a transition statement that
    /// verifiers follow. Then start the servers with the new key.
    ///
    /// Example: trailmark keys rotate-signing --data-dir ./trailmark-data --signing-key /etc/trailmark/old.seed --new-signing-key /etc/trailmark/new.seed
    RotateSigning {
        /// The key the trail is signed with now [default: <data-dir>/signing.seed].
        #[arg(long)]
        signing_key: Option<PathBuf>,
        /// Where the new key is (created, mode 0600, if missing).
        #[arg(long)]
        new_signing_key: PathBuf,
        /// A PostgreSQL ledger instead of the data dir's embedded store.
        #[arg(long, hide_env_values = true)]
        database: Option<String>,
        /// The origin prefix the trail is signed with.
        #[arg(
            long,
            env = "TRAILMARK_ORIGIN_PREFIX",
            default_value = "trailmark.local"
        )]
        origin_prefix: String,
    },
}

pub fn admin_key(key: Option<String>, data_dir: &std::path::Path) -> anyhow::Result<String> {
    if let Some(key) = key {
        return Ok(key);
    }
    let path = data_dir.join(crate::datadir::BOOTSTRAP_KEY_FILE);
    let key = std::fs::read_to_string(&path)
        .with_context(|| format!("no --key given and {} is unreadable", path.display()))?;
    Ok(key.trim().to_owned())
}

#[allow(clippy::print_stdout)] // the command's output
pub fn run(args: KeysArgs) -> anyhow::Result<ExitCode> {
    if let KeysCommand::RotateSigning {
        signing_key,
        new_signing_key,
        database,
        origin_prefix,
    } = args.command
    {
        return crate::rotate_cmd::run(&crate::rotate_cmd::Rotation {
            data_dir: args.server.data_dir,
            database,
            old_key: signing_key,
            new_key: new_signing_key,
            origin_prefix,
        });
    }
    let http = args.server.http()?;
    match args.command {
        KeysCommand::Create {
            scopes,
            tenant,
            name,
        } => {
            let body = json!({"scopes": scopes, "tenant": tenant, "name": name});
            let created: Value = http.post_json("/v1/keys", &body)?;
            println!("{}", created["key"].as_str().unwrap_or_default());
            eprintln!(
                "created {} ({}) scopes {}{} — the key above is shown only once",
                created["id"].as_str().unwrap_or_default(),
                created["name"].as_str().unwrap_or_default(),
                created["scopes"].as_str().unwrap_or_default(),
                created["tenant"]
                    .as_str()
                    .map(|t| format!(", tenant {t}"))
                    .unwrap_or_default(),
            );
        }
        KeysCommand::List => {
            let list: Value = http.get_json("/v1/keys", &[])?;
            println!(
                "{:<17} {:<18} {:<8} {:<25} {:<25} NAME",
                "ID", "SCOPES", "TENANT", "CREATED", "REVOKED"
            );
            for k in list["keys"].as_array().into_iter().flatten() {
                let s = |f: &str| k[f].as_str().unwrap_or("-").to_owned();
                println!(
                    "{:<17} {:<18} {:<8} {:<25} {:<25} {}",
                    s("id"),
                    s("scopes"),
                    s("tenant"),
                    s("created_at"),
                    s("revoked_at"),
                    s("name")
                );
            }
        }
        KeysCommand::RotateSigning { .. } => unreachable!("handled above"),
        KeysCommand::Revoke { id } => {
            if !id.starts_with("key_") {
                bail!(
                    "{id:?} is not a key id: ids look like key_3f2a9c01d4e5 (see `trailmark keys list`)"
                );
            }
            http.delete(&format!("/v1/keys/{id}"))?;
            eprintln!("revoked {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
