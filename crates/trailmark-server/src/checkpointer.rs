//! Signs a checkpoint for every tenant whose log grew, at least once a second,
//! and records each one (except `_system`'s own) as an entry in `_system`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use trailmark_core::TenantId;
use trailmark_log::{Checkpoint, Plan, SignedCheckpoint};
use trailmark_store::{CheckpointRecord, Store, StoreError};

use crate::app::{App, now};
use crate::error::ApiError;

/// How often the checkpointer looks for growth.
pub const INTERVAL: Duration = Duration::from_millis(250);

/// The size each tenant was last signed at.
#[derive(Debug, Default)]
pub struct Signed(HashMap<TenantId, u64>);

/// Signs one checkpoint for each tenant that grew since `signed` was
/// updated; returns how many were signed.
pub async fn sign_new<S: Store>(app: &App<S>, signed: &mut Signed) -> Result<usize, ApiError> {
    let signed = &mut signed.0;
    let mut count = 0;
    // Every tenant signed in this tick is recorded in `_system` in one
    // append, after the loop (one commit, however many tenants grew).
    let mut records: Vec<(TenantId, u64, String)> = Vec::new();
    let heads = app.store.heads().await?;
    app.saw_tenants(heads.len(), heads.iter().map(|h| &h.tenant));
    for head in heads {
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
            signed.insert(head.tenant, last);
            continue;
        }
        let plan = Plan::root(head.size);
        let root = app.run_plan(&head.tenant, &plan).await?[0];
        let key = app.signer(&head.tenant)?;
        let checkpoint =
            Checkpoint::new(key.name().as_str(), head.size, root).map_err(StoreError::from)?;
        let signed_cp = SignedCheckpoint::sign(checkpoint, &key).map_err(StoreError::from)?;
        let record = CheckpointRecord {
            tenant: head.tenant.clone(),
            size: head.size,
            root,
            note: signed_cp.to_string(),
            signed_at: now(),
        };
        app.store.add_checkpoint(record.clone()).await?;
        if !head.tenant.is_system() {
            records.push((head.tenant.clone(), head.size.get(), record.note.clone()));
        }
        // Nobody listening (no witnesses) is fine.
        let _ = app.signed.send(record);
        app.metrics
            .checkpoints_signed
            .fetch_add(1, Ordering::Relaxed);
        signed.insert(head.tenant, head.size.get());
        count += 1;
    }
    // A failure here is mended by the next tick: the caller forgets what it
    // signed, and each tenant's latest checkpoint is recorded again.
    app.record_checkpoints(&records).await?;
    Ok(count)
}

/// Runs until the process ends.
pub async fn run<S: Store>(app: Arc<App<S>>) {
    let mut signed = Signed::default();
    let mut tick = tokio::time::interval(INTERVAL);
    loop {
        tick.tick().await;
        if let Err(e) = sign_new(&app, &mut signed).await {
            tracing::error!(error = %e, "signing checkpoints failed; will retry");
            signed.0.clear();
        }
    }
}
