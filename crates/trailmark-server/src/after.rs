//! A batch appended only after another: `POST /v1/events` with the header
//! [`trailmark_wire::AFTER_HEADER`] (`Trailmark-After: [<tenant>/]<event
//! id>`, the last event of the batch before).
//!
//! A producer whose order matters (the capture drainer: the database's
//! commit order) could only send a batch once the one before was
//! acknowledged, so the server parsed and validated a batch while the
//! writer sat idle, and committed it while the next sat unsent. With the
//! header, the next batch is sent at once: it is read, parsed, validated
//! and made ready (`App::ready`: room in the ingest queue, its ids looked
//! up) beside the append of the one before, and appended only after that
//! one is durable. If that one was not stored (it failed, or never came), nothing
//! of this one is stored either: 412, and the producer sends them again in
//! order.
//!
//! The rule, in one place ([`Appending::wait_after`]): the batch goes on
//! once the event it names is in the trail, or once a batch ending with it,
//! being appended by this server, is durable. A batch ending with that
//! event still being read or parsed (or appended by another server sharing
//! the store: the trail is looked in every [`AFTER_LOOK`]) is waited for, at
//! most [`AFTER_WAIT`].
//! Every append registers its last event while it runs
//! ([`Appending::register`]), so the wait needs nothing from the store but
//! one lookup by id.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use trailmark_core::{EventId, TenantId};
use trailmark_store::Store;

use crate::error::ApiError;

/// How long a batch waits for the batch it names to begin its append
/// (that one may still be on its way, or being parsed): then 412.
pub const AFTER_WAIT: Duration = Duration::from_secs(5);

/// While it waits, how often a batch looks in the trail for the event it
/// names (stored by another server sharing the store, which this one hears
/// nothing of).
pub const AFTER_LOOK: Duration = Duration::from_millis(100);

/// Where an append registered by [`Appending::register`] stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Appending,
    Stored,
    /// Failed, or its request ended before the store answered (the append
    /// may still land: the trail is asked).
    NotKnown,
}

type Key = (TenantId, EventId);

/// The appends this server is running, by their last event.
#[derive(Default)]
pub struct Appending {
    running: Mutex<HashMap<Key, Arc<watch::Sender<Outcome>>>>,
    /// Woken whenever an append registers.
    registered: Notify,
}

/// An append's registration: [`Registration::stored`] once it is durable;
/// dropped without it, the append's waiters ask the trail.
pub struct Registration<'a> {
    appending: &'a Appending,
    key: Key,
    outcome: Arc<watch::Sender<Outcome>>,
}

impl Registration<'_> {
    pub fn stored(self) {
        self.outcome.send_replace(Outcome::Stored);
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if *self.outcome.borrow() == Outcome::Appending {
            self.outcome.send_replace(Outcome::NotKnown);
        }
        let mut running = self.appending.lock();
        // A later append ending with the same event (a repeat) may have
        // taken the key: it stays.
        if running
            .get(&self.key)
            .is_some_and(|o| Arc::ptr_eq(o, &self.outcome))
        {
            running.remove(&self.key);
        }
    }
}

impl Appending {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<watch::Sender<Outcome>>>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers an append whose last event is `last`, for the batches
    /// that name it to wait on; held until the store answered.
    pub fn register(&self, last: Key) -> Registration<'_> {
        let outcome = Arc::new(watch::Sender::new(Outcome::Appending));
        self.lock().insert(last.clone(), Arc::clone(&outcome));
        self.registered.notify_waiters();
        Registration {
            appending: self,
            key: last,
            outcome,
        }
    }

    /// Returns once event `id` of `tenant` is durable in the trail; 412
    /// when it is not, and no append of this server that ends with it is
    /// running or begins within [`AFTER_WAIT`].
    pub async fn wait_after<S: Store>(
        &self,
        store: &S,
        metrics: &crate::app::Metrics,
        tenant: &TenantId,
        id: EventId,
    ) -> Result<(), ApiError> {
        let deadline = tokio::time::Instant::now() + AFTER_WAIT;
        let key = (tenant.clone(), id);
        let mut waited = false;
        loop {
            // Listening before looking: a registration between the two is
            // not missed.
            let registered = self.registered.notified();
            tokio::pin!(registered);
            registered.as_mut().enable();
            let running = self.lock().get(&key).map(|o| o.subscribe());
            if let Some(mut outcome) = running {
                if *outcome.borrow() == Outcome::Appending && !waited {
                    waited = true;
                    metrics.ingest_after_waited.fetch_add(1, Ordering::Relaxed);
                }
                let settled = outcome
                    .wait_for(|o| *o != Outcome::Appending)
                    .await
                    .map_or(Outcome::NotKnown, |o| *o);
                if settled == Outcome::Stored {
                    return Ok(());
                }
            }
            if store
                .entry_by_id(std::slice::from_ref(tenant), id)
                .await?
                .is_some()
            {
                return Ok(());
            }
            if !waited {
                waited = true;
                metrics.ingest_after_waited.fetch_add(1, Ordering::Relaxed);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                metrics.ingest_after_refused.fetch_add(1, Ordering::Relaxed);
                return Err(ApiError::PreconditionFailed(format!(
                    "{}: event {id} is not in tenant {tenant}'s trail, and no batch ending with it is being appended; nothing of this batch was stored: send the batch holding that event first, then this one",
                    trailmark_wire::AFTER_HEADER
                )));
            }
            // Woken by a registration here, or looking in the trail again
            // (another server sharing the store may have appended it); a
            // last look at the deadline.
            let _ = tokio::time::timeout_at(deadline.min(now + AFTER_LOOK), registered).await;
        }
    }
}

/// The header's value, `[<tenant>/]<event id>` (no tenant: the one events
/// without a tenant go to), for a key bound to `own` when it is bound: the
/// tenant and event it names, or 400/403 naming it.
pub fn parse_after(
    value: &axum::http::HeaderValue,
    own: Option<&TenantId>,
) -> Result<Key, ApiError> {
    let header = trailmark_wire::AFTER_HEADER;
    let bad = |message: &str| ApiError::param(header, message);
    let text = value
        .to_str()
        .map_err(|_| bad("must be [<tenant>/]<event id> in ASCII"))?;
    // With no tenant, the one events without a tenant go to.
    let (tenant, id) = match text.split_once('/') {
        Some((tenant, id)) => (
            TenantId::new(tenant).map_err(|e| bad(&format!("the tenant before '/': {e}")))?,
            id,
        ),
        None => (own.cloned().unwrap_or_else(TenantId::default_tenant), text),
    };
    let id = EventId::parse(id).map_err(|e| {
        bad(&format!(
            "the event id (the last event of the batch before, [<tenant>/]<event id>): {e}"
        ))
    })?;
    if let Some(own) = own
        && own != &tenant
    {
        return Err(ApiError::Forbidden(format!(
            "{header}: this key may only write tenant {own}, not {tenant}"
        )));
    }
    Ok((tenant, id))
}
