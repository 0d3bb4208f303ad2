//! `trailmark keys rotate-signing`: hand the trail's checkpoint signing to a
//! new key. Run with every server stopped. The old key signs a final
//! checkpoint of every tenant that grew, then a transition statement naming
//! the new key and, per tenant, the size from which it signs
//! (`trailmark_verify::Transition`); the statement is recorded with the new
//! key, and `trailmark verify` follows it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use serde_json::{Map, json};
use trailmark_log::{Note, SigningKey};
use trailmark_server::{App, Settings, checkpointer, now};
use trailmark_store::{SigningKeyRecord, Store};
use trailmark_store_postgres::PgStore;
use trailmark_store_sqlite::SqliteStore;
use trailmark_verify::{Transition, system_key, system_key_name};

use crate::datadir;

/// What a rotation needs.
#[derive(Debug)]
pub struct Rotation {
    pub data_dir: PathBuf,
    pub database: Option<String>,
    pub old_key: Option<PathBuf>,
    pub new_key: PathBuf,
    pub origin_prefix: String,
}

pub fn run(r: &Rotation) -> anyhow::Result<ExitCode> {
    // The embedded store has one writer: no server may run on it meanwhile.
    let _lock = datadir::lock(&r.data_dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        if let Some(url) = &r.database {
            let store = PgStore::new(url, 4)?;
            store.migrate().await?;
            rotate(r, store).await
        } else {
            let store = SqliteStore::open(datadir::db_path(&r.data_dir))?;
            rotate(r, store).await
        }
    })
}

/// The seed's key as it signs this trail's `_system` and transitions.
fn system_signer(seed: &[u8; 32], prefix: &str) -> anyhow::Result<SigningKey> {
    let name = system_key_name(prefix).map_err(anyhow::Error::msg)?;
    Ok(SigningKey::from_seed(name, seed))
}

#[allow(clippy::print_stdout)] // the command's report
async fn rotate<S: Store>(r: &Rotation, store: S) -> anyhow::Result<ExitCode> {
    let prefix = &r.origin_prefix;
    let old_path = r
        .old_key
        .clone()
        .unwrap_or_else(|| r.data_dir.join(datadir::SEED_FILE));
    let old = datadir::read_seed(&old_path, false)?;
    let keys = store.signing_keys().await?;
    let Some(current) = keys.last() else {
        bail!("this trail records no signing key yet: start a server on it once first");
    };
    let signer = system_signer(&old, prefix)?;
    if current.public_key != signer.verifier().public_key() || current.origin_prefix != *prefix {
        let expected =
            system_key(&current.origin_prefix, &current.public_key).map_err(anyhow::Error::msg)?;
        bail!(
            "{} is not the key this trail is signed with now ({expected}): give the current key with --signing-key",
            old_path.display()
        );
    }
    if Path::new(&r.new_key).exists() && datadir::read_seed(&r.new_key, false)? == old {
        bail!("--new-signing-key holds the current key: give a new file");
    }
    let new = system_signer(&datadir::read_seed(&r.new_key, true)?, prefix)?.verifier();
    let new_public = new.public_key();
    if keys.iter().any(|k| k.public_key == new_public) {
        bail!("the new key signed this trail before: use a key never used for it");
    }

    // The old key's last word: a checkpoint of everything there is (and
    // of `_system` over the records of those).
    let app = Arc::new(App::new(
        store,
        Settings {
            origin_prefix: prefix.clone(),
            ..Settings::default()
        },
        old,
    ));
    checkpointer::sign_all(&app, &mut checkpointer::Signed::default())
        .await
        .map_err(|e| anyhow::anyhow!("signing the final checkpoints: {e}"))?;
    let effective = app
        .store
        .heads()
        .await?
        .into_iter()
        .map(|h| (h.tenant.to_string(), h.size.get()))
        .collect();
    let transition = Transition {
        prefix: prefix.clone(),
        new_key: new_public,
        effective,
    };
    let statement = Note::sign(transition.text(), &[&signer])?.to_string();
    app.store
        .add_signing_key(SigningKeyRecord {
            ordinal: current.ordinal + 1,
            public_key: new_public,
            origin_prefix: prefix.clone(),
            added_at: now(),
            transition: Some(statement.clone()),
        })
        .await
        .context("recording the new key")?;
    let recorded = app.store.signing_keys().await?;
    if recorded.last().map(|k| k.public_key) != Some(new_public) {
        bail!("another rotation was recorded at the same time: check `GET /v1/signing-keys`");
    }
    let mut meta = Map::new();
    meta.insert("statement".into(), json!(statement));
    app.audit(
        None,
        "admin.signing_key.rotate",
        Some(("signing_key", &format!("{}", current.ordinal + 1))),
        meta,
    )
    .await
    .map_err(|e| anyhow::anyhow!("recording the rotation in _system: {e}"))?;
    println!("{statement}");
    eprintln!(
        "rotated: the statement above (signed by the old key) hands signing to {new}; start the servers with --signing-key {} and give witnesses and auditors the new verifier keys (GET /v1/verifier-key)",
        r.new_key.display()
    );
    Ok(ExitCode::SUCCESS)
}
