//! Signs a checkpoint for every tenant whose log grew, at least once a second,
//! and records each one (except `_system`'s own) as an entry in `_system`.
//!
//! Each tick signs the tenants this server appended to since the last
//! (their sizes kept by [`App::append`], no read of the store), and a slice
//! of at most [`SWEEP_PER_TICK`] tenants of a sweep over every tenant's
//! head, read every [`SWEEP_EVERY`] (at the first tick, and after a failed
//! one, at once): what another server sharing the ledger appended and did
//! not sign (it stopped first), and what a server stopped before signing
//! or recording left. So a tick's work is bounded by what grew, however
//! many tenants there are: an idle server reads the heads every
//! [`SWEEP_EVERY`], and one just started signs what arrives while its first
//! sweep goes on.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use trailmark_core::TenantId;
use trailmark_log::{Checkpoint, Plan, SignedCheckpoint};
use trailmark_store::{CheckpointRecord, Store, StoreError, TenantHead};

use crate::app::{App, now};
use crate::error::ApiError;

/// How often the checkpointer looks for growth.
pub const INTERVAL: Duration = Duration::from_millis(250);

/// How often the checkpointer starts a sweep over every tenant's head
/// (once the one before has ended).
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// How many tenants of a sweep a tick looks at, beside those this server
/// appended to.
pub const SWEEP_PER_TICK: usize = 1000;

/// At most this many checkpoints are stored in one commit (then sent to
/// the witnesses and recorded).
pub const STORE_AT_ONCE: usize = 1000;

/// The size each tenant was last signed at, and the sweep under way.
#[derive(Debug, Default)]
pub struct Signed {
    sizes: HashMap<TenantId, u64>,
    /// When the latest sweep read the heads.
    swept_at: Option<Instant>,
    /// The heads that sweep has yet to look at.
    sweep: Vec<TenantHead>,
}

impl Signed {
    /// Forgets everything: the next tick reads every head and each
    /// tenant's latest checkpoint again.
    fn forget(&mut self) {
        self.sizes.clear();
        self.swept_at = None;
        self.sweep.clear();
    }
}

/// Signs one checkpoint for each tenant that grew through this server
/// since the last call, and for each that grew in the next slice of the
/// sweep; returns how many were signed.
pub async fn sign_new<S: Store>(app: &App<S>, signed: &mut Signed) -> Result<usize, ApiError> {
    // Taken before the heads are read: an append landing between is in
    // the heads or left for the next tick.
    let grown = app.take_grown();
    if signed.sweep.is_empty() && signed.swept_at.is_none_or(|at| at.elapsed() >= SWEEP_EVERY) {
        let read_at = Instant::now();
        match app.store.heads().await {
            Ok(heads) => {
                app.saw_tenants(heads.len(), heads.iter().map(|h| &h.tenant));
                signed.sweep = heads;
                signed.swept_at = Some(read_at);
            }
            Err(e) => {
                app.give_back_grown(grown);
                return Err(e.into());
            }
        }
    }
    let mut heads: Vec<TenantHead> = grown
        .iter()
        .map(|(tenant, size)| TenantHead {
            tenant: tenant.clone(),
            size: *size,
        })
        .collect();
    // A tenant once a tick, at the size this server saw it reach: two
    // checkpoints of one tenant in one commit would go to the witnesses
    // out of order.
    let slice = signed.sweep.len().saturating_sub(SWEEP_PER_TICK);
    heads.extend(
        signed
            .sweep
            .drain(slice..)
            .filter(|h| !grown.contains_key(&h.tenant)),
    );
    let result = sign(app, &mut signed.sizes, heads).await;
    if result.is_err() {
        // Signed again at the next tick, which reads every head.
        app.give_back_grown(grown);
        signed.forget();
    }
    result
}

/// Signs until every tenant is: the sweep under way (or one begun now, on
/// a fresh `signed`) to its end, then the `_system` records of that.
/// What a stop and a key rotation sign last.
pub async fn sign_all<S: Store>(app: &App<S>, signed: &mut Signed) -> Result<usize, ApiError> {
    let mut count = sign_new(app, signed).await?;
    while !signed.sweep.is_empty() {
        count += sign_new(app, signed).await?;
    }
    Ok(count + sign_new(app, signed).await?)
}

async fn sign<S: Store>(
    app: &App<S>,
    signed: &mut HashMap<TenantId, u64>,
    heads: Vec<TenantHead>,
) -> Result<usize, ApiError> {
    let mut count = 0;
    // Every tenant signed in this tick is recorded in `_system` in one
    // append, after the loop (one commit, however many tenants grew).
    let mut records: Vec<(TenantId, u64, String)> = Vec::new();
    for chunk in heads.chunks(STORE_AT_ONCE) {
        let mut made = Vec::new();
        for head in chunk {
            let last = if let Some(size) = signed.get(&head.tenant) {
                *size
            } else {
                let latest = app.store.latest_checkpoint(&head.tenant).await?;
                // A stop between storing a checkpoint and recording it in
                // `_system` is mended here (recording it twice stores one).
                if let Some(cp) = &latest
                    && !head.tenant.is_system()
                {
                    records.push((head.tenant.clone(), cp.size.get(), cp.note.clone()));
                }
                latest.map_or(0, |c| c.size.get())
            };
            if head.size.get() <= last {
                signed.insert(head.tenant.clone(), last);
                continue;
            }
            made.push(signed_checkpoint(app, head).await?);
        }
        // One commit for the chunk's checkpoints (one each held a
        // thousand growing tenants to about a thousand a second).
        app.store.add_checkpoints(made.clone()).await?;
        for record in made {
            if !record.tenant.is_system() {
                records.push((
                    record.tenant.clone(),
                    record.size.get(),
                    record.note.clone(),
                ));
            }
            signed.insert(record.tenant.clone(), record.size.get());
            // Nobody listening (no witnesses) is fine.
            let _ = app.signed.send(record);
            app.metrics
                .checkpoints_signed
                .fetch_add(1, Ordering::Relaxed);
            count += 1;
        }
    }
    // A failure here is mended by the next tick: the caller forgets what it
    // signed, and each tenant's latest checkpoint is recorded again.
    app.record_checkpoints(&records).await?;
    Ok(count)
}

/// A checkpoint of `head`, signed with its tenant's key.
async fn signed_checkpoint<S: Store>(
    app: &App<S>,
    head: &TenantHead,
) -> Result<CheckpointRecord, ApiError> {
    let plan = Plan::root(head.size);
    let root = app.run_plan(&head.tenant, &plan).await?[0];
    let key = app.signer(&head.tenant)?;
    let checkpoint =
        Checkpoint::new(key.name().as_str(), head.size, root).map_err(StoreError::from)?;
    let signed_cp = SignedCheckpoint::sign(checkpoint, &key).map_err(StoreError::from)?;
    Ok(CheckpointRecord {
        tenant: head.tenant.clone(),
        size: head.size,
        root,
        note: signed_cp.to_string(),
        signed_at: now(),
    })
}

/// Signs every [`INTERVAL`] until `stop` is sent (or dropped), between
/// ticks (never in the middle of one), and hands back what it signed: the
/// stop's last pass then signs only what grew since.
pub async fn run<S: Store>(
    app: Arc<App<S>>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Signed {
    let mut signed = Signed::default();
    let mut tick = tokio::time::interval(INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut stop => return signed,
        }
        if let Err(e) = sign_new(&app, &mut signed).await {
            tracing::error!(error = %e, "signing checkpoints failed; will retry");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Instant;

    use serde_json::json;
    use trailmark_core::{Event, TenantId};
    use trailmark_store::{NewEvent, Store};
    use trailmark_store_sqlite::SqliteStore;

    use super::{SWEEP_EVERY, SWEEP_PER_TICK, Signed, sign_all, sign_new};
    use crate::app::{App, Settings, now};

    fn event(tenant: &str) -> Event {
        Event::from_json(&json!({
            "tenant": tenant,
            "actor": {"id": "u1", "type": "user"},
            "action": "login"
        }))
        .unwrap()
    }

    fn app(dir: &std::path::Path) -> App<SqliteStore> {
        App::new(
            SqliteStore::open(dir.join("trail.db")).unwrap(),
            Settings::default(),
            [7; 32],
        )
    }

    fn prepared(app: &App<SqliteStore>, tenant: &str) -> NewEvent {
        app.prepare(event(tenant), &TenantId::default_tenant(), now())
            .unwrap()
    }

    async fn signed_size(app: &App<SqliteStore>, tenant: &str) -> Option<u64> {
        let tenant = if tenant == "_system" {
            TenantId::system()
        } else {
            TenantId::new(tenant).unwrap()
        };
        let latest = app.store.latest_checkpoint(&tenant).await.unwrap();
        latest.map(|c| c.size.get())
    }

    /// Appends through this server are signed at the next tick without
    /// reading every head; what reached the store another way (another
    /// server sharing the ledger that stopped before signing) is signed
    /// by the next sweep, and not before.
    #[tokio::test]
    async fn a_tick_signs_this_servers_appends_and_a_sweep_everyone_elses() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let prepared = |tenant: &str| prepared(&app, tenant);
        app.append(vec![prepared("acme"), prepared("acme")])
            .await
            .unwrap();
        let mut signed = Signed::default();
        // The first tick begins a sweep.
        assert_eq!(sign_new(&app, &mut signed).await.unwrap(), 1);
        assert_eq!(signed_size(&app, "acme").await, Some(2));

        // Another server's append, straight into the shared store.
        app.store.append(vec![prepared("globex")]).await.unwrap();
        app.append(vec![prepared("acme")]).await.unwrap();
        // This server's append is signed; the other's is not seen yet
        // (`_system` holds the record of acme's first checkpoint).
        assert_eq!(sign_new(&app, &mut signed).await.unwrap(), 2);
        assert_eq!(signed_size(&app, "acme").await, Some(3));
        assert_eq!(signed_size(&app, "globex").await, None);
        assert_eq!(sign_new(&app, &mut signed).await.unwrap(), 1, "_system");
        assert_eq!(sign_new(&app, &mut signed).await.unwrap(), 0);

        // A sweep is due: every head is read.
        signed.swept_at = Some(Instant::now().checked_sub(SWEEP_EVERY).unwrap());
        assert_eq!(sign_new(&app, &mut signed).await.unwrap(), 1);
        assert_eq!(signed_size(&app, "globex").await, Some(1));
    }

    /// A server started on a trail of many tenants signs what arrives at
    /// its first tick, beside one slice of its first sweep, not after
    /// looking at every tenant; the sweep goes on at the next ticks, and
    /// [`sign_all`] finishes it.
    #[tokio::test]
    async fn a_tick_takes_one_slice_of_the_sweep_beside_what_this_server_appended() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let prepared = |tenant: &str| prepared(&app, tenant);
        // Left unsigned by a server that stopped (or another server).
        let others: Vec<String> = (0..SWEEP_PER_TICK + 5).map(|i| format!("t{i}")).collect();
        app.store
            .append(others.iter().map(|t| prepared(t)).collect())
            .await
            .unwrap();
        app.append(vec![prepared("mine")]).await.unwrap();
        let mut signed = Signed::default();
        let first = sign_new(&app, &mut signed).await.unwrap();
        assert_eq!(signed_size(&app, "mine").await, Some(1));
        assert!(first <= SWEEP_PER_TICK + 1, "{first} signed in one tick");
        let mut unsigned = 0;
        for t in &others {
            unsigned += usize::from(signed_size(&app, t).await.is_none());
        }
        assert!(
            unsigned >= 4,
            "{unsigned} of the others left for later ticks"
        );
        sign_all(&app, &mut signed).await.unwrap();
        for t in &others {
            assert_eq!(signed_size(&app, t).await, Some(1), "{t}");
        }
        // `_system` holds a record of each and is signed over them.
        let system = signed_size(&app, "_system").await.unwrap();
        assert!(system > u64::try_from(others.len()).unwrap(), "{system}");
    }
}
