//! Detection inside `serve`: ingest offers each newly appended event that
//! a rule counts to a bounded queue (never waiting: a full queue drops the
//! fact and counts it); one task feeds the [`Detector`] and records what
//! fires as an entry in `_system` (action [`ALERT_ACTION`], resource
//! `Alert`/its id), so an alert is in the tamper-evident trail itself.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Map, Value};
use trailmark_core::{EventId, Outcome, TenantId};
use trailmark_store::{Appended, NewEvent, Store};

use super::{Detector, Fact, Firing, Rules};
use crate::app::{App, Metrics, now, random_bytes};

/// What an alert's `_system` entry is.
pub const ALERT_ACTION: &str = "trailmark.alert.raised";
/// The resource type of an alert's entry (its id: the alert's id).
pub const ALERT_RESOURCE: &str = "Alert";
/// Facts waiting for the detector; past it, facts are dropped and counted
/// (`trailmark_alert_facts_dropped_total`).
pub const FACT_QUEUE: usize = 65_536;
/// At most this many event ids are named in one alert (its `count` says
/// how many there were).
pub const MAX_ALERT_EVENTS: usize = 100;

/// Where ingest offers facts: the queue and the rules that say which
/// events are worth offering.
#[derive(Debug)]
pub struct Feed {
    tx: tokio::sync::mpsc::Sender<Fact>,
    rules: Rules,
}

impl Feed {
    /// The events of a batch that a rule counts, as facts, by position:
    /// taken before the batch goes to the store.
    pub fn candidates(&self, batch: &[NewEvent]) -> Vec<(usize, Fact)> {
        let mut out = Vec::new();
        for (i, new) in batch.iter().enumerate() {
            let e = &new.event;
            let failed = e.outcome == Outcome::Failure;
            let counted = self.rules.counting(failed, &e.action).is_some();
            let tenant = new.tenant();
            if !counted || tenant == TenantId::system() {
                continue;
            }
            out.push((
                i,
                Fact {
                    tenant: tenant.as_str().to_owned(),
                    event_id: new.id().to_string(),
                    at: new.received_at.unix_millis(),
                    actor: e.actor.id.clone(),
                    action: e.action.clone(),
                    failed,
                    ip: e
                        .context
                        .as_ref()
                        .and_then(|c| c.ip)
                        .map(|ip| ip.to_string()),
                    username: e.actor.name.clone(),
                },
            ));
        }
        out
    }

    /// Offers the candidates whose events were appended now (a repeat of
    /// an event already stored is not counted again). Never waits.
    pub fn offer(&self, candidates: Vec<(usize, Fact)>, appended: &[Appended], metrics: &Metrics) {
        for (i, fact) in candidates {
            if appended.get(i).is_none_or(|a| a.duplicate) {
                continue;
            }
            if self.tx.try_send(fact).is_err() {
                metrics.alert_facts_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Runs detection for `serve`: installs the feed ingest offers to, then
/// observes every fact and records each firing in `_system`.
pub async fn run<S: Store>(app: Arc<App<S>>, rules: Rules) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(FACT_QUEUE);
    if app
        .alerts
        .set(Feed {
            tx,
            rules: rules.clone(),
        })
        .is_err()
    {
        tracing::warn!("alert detection was started twice; the second is ignored");
        return;
    }
    let mut detector = Detector::new(rules);
    // Recording an alert is an append (a durable commit): done beside the
    // detector, so counting never waits for the disk; at most
    // RECORDING alerts are being recorded at once.
    let recording = Arc::new(tokio::sync::Semaphore::new(RECORDING));
    while let Some(fact) = rx.recv().await {
        for firing in detector.observe(&fact) {
            let Ok(permit) = Arc::clone(&recording).acquire_owned().await else {
                return;
            };
            let app = Arc::clone(&app);
            app.metrics.alerts_raised.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                if let Err(e) = record(&app, &firing).await {
                    tracing::warn!(
                        rule = firing.rule.name(),
                        tenant = firing.tenant,
                        "recording an alert failed: {e}"
                    );
                }
                app.metrics.alerts_settled.fetch_add(1, Ordering::Relaxed);
                drop(permit);
            });
        }
        app.metrics
            .alert_facts_observed
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// Alerts being recorded at once; more wait (and so does counting).
pub const RECORDING: usize = 64;

/// The `_system` entry of one alert.
async fn record<S: Store>(app: &App<S>, firing: &Firing) -> Result<(), crate::ApiError> {
    let id = EventId::new_v7(now(), random_bytes()?).to_string();
    let mut meta = Map::new();
    meta.insert("rule".into(), Value::from(firing.rule.name()));
    meta.insert("tenant".into(), Value::from(firing.tenant.as_str()));
    meta.insert("key".into(), Value::from(firing.key.as_str()));
    meta.insert("count".into(), Value::from(firing.events.len()));
    let named = firing.events.len().saturating_sub(MAX_ALERT_EVENTS);
    meta.insert(
        "events".into(),
        Value::from(firing.events[named..].to_vec()),
    );
    meta.insert("first_received_at".into(), Value::from(firing.first_at));
    meta.insert("last_received_at".into(), Value::from(firing.last_at));
    app.audit(None, ALERT_ACTION, Some((ALERT_RESOURCE, &id)), meta)
        .await?;
    tracing::warn!(
        rule = firing.rule.name(),
        tenant = firing.tenant,
        key = firing.key,
        alert = id,
        "alert raised"
    );
    Ok(())
}
