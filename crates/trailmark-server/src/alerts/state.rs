//! An alert's life, read back from the trail: its `_system` entry (action
//! [`ALERT_ACTION`]) and the later entries on the same `Alert` resource
//! (acknowledged, resolved, each delivery attempt, redeliveries asked
//! for). Nothing about an alert is kept anywhere else, so what the API
//! shows, what delivery resumes after a restart and what the trail proves
//! are one thing.

use std::collections::BTreeMap;

use serde_json::Value;
use trailmark_core::TenantId;
use trailmark_store::{Cursor, Exact, Query, Store, StoredEntry};
use trailmark_wire::{AlertOut, AlertStepOut, DeliveryOut, EntryRef};

use crate::app::App;
use crate::error::ApiError;

/// What an alert's `_system` entry is.
pub const ALERT_ACTION: &str = "trailmark.alert.raised";
/// The resource type of an alert's entries (its id: the alert's id).
pub const ALERT_RESOURCE: &str = "Alert";
pub const ACKNOWLEDGED: &str = "trailmark.alert.acknowledged";
pub const RESOLVED: &str = "trailmark.alert.resolved";
/// One delivery attempt to one webhook.
pub const DELIVERY: &str = "trailmark.alert.delivery";
/// A redelivery asked for: the webhook's attempts start again.
pub const REDELIVER: &str = "trailmark.alert.redeliver";
/// At most this many entries of one alert are read (its raising, two
/// steps, and every attempt of every webhook: 20 × 30 at most, plus
/// redeliveries).
pub const MAX_HISTORY: usize = 1000;

/// Unix milliseconds as the API writes times (empty when out of range).
pub fn millis_text(millis: i64) -> String {
    trailmark_core::Timestamp::from_unix_millis(millis).map_or_else(String::new, |t| t.to_string())
}

/// `text` cut to at most `max` bytes, at a character boundary (what
/// `_system` keeps of an error or a failure list).
pub fn clip(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// The `webhook-id` of one alert's deliveries to one webhook: the same on
/// every attempt and after a restart, so receivers deduplicate by it.
pub fn webhook_id(alert: &str, webhook: &str) -> String {
    format!("msg_{}_{webhook}", alert.replace('-', ""))
}

fn meta_str(meta: &Value, key: &str) -> Option<String> {
    meta.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// The alert an entry raised, before its later steps are applied.
fn raised(entry: &StoredEntry) -> Result<AlertOut, ApiError> {
    let event = crate::render::event_out(entry)?;
    let meta = &event.metadata;
    let id = event
        .resource
        .as_ref()
        .and_then(|r| r.id.clone())
        .unwrap_or_default();
    Ok(AlertOut {
        id,
        rule: meta_str(meta, "rule").unwrap_or_default(),
        tenant: meta_str(meta, "tenant").unwrap_or_default(),
        key: meta_str(meta, "key").unwrap_or_default(),
        count: meta.get("count").and_then(Value::as_u64).unwrap_or(0),
        events: meta
            .get("events")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        first_received_at: meta_str(meta, "first_received_at").unwrap_or_default(),
        last_received_at: meta_str(meta, "last_received_at").unwrap_or_default(),
        raised_at: event.received_at.clone(),
        summary: meta_str(meta, "summary").unwrap_or_default(),
        status: "open".into(),
        acknowledged: None,
        resolved: None,
        deliveries: Vec::new(),
        entry: EntryRef {
            tenant: TenantId::system().to_string(),
            seq: event.seq,
        },
    })
}

/// Applies an alert's later entries (oldest first) to it.
fn apply(alert: &mut AlertOut, history: &[StoredEntry]) -> Result<(), ApiError> {
    let mut deliveries: BTreeMap<String, DeliveryOut> = BTreeMap::new();
    for entry in history {
        let event = crate::render::event_out(entry)?;
        let meta = &event.metadata;
        let step = || AlertStepOut {
            by: event.actor.id.clone(),
            at: event.received_at.clone(),
            note: meta_str(meta, "note"),
            entry: EntryRef {
                tenant: TenantId::system().to_string(),
                seq: event.seq,
            },
        };
        match event.action.as_str() {
            ACKNOWLEDGED if alert.acknowledged.is_none() => {
                alert.acknowledged = Some(step());
            }
            RESOLVED if alert.resolved.is_none() => alert.resolved = Some(step()),
            DELIVERY => {
                let Some(webhook) = meta_str(meta, "webhook") else {
                    continue;
                };
                let d = deliveries
                    .entry(webhook.clone())
                    .or_insert_with(|| fresh(&alert.id, &webhook));
                d.attempts = meta
                    .get("attempt")
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(d.attempts + 1);
                d.state = meta_str(meta, "result").unwrap_or_else(|| "pending".into());
                if d.state == "failed" {
                    d.state = "pending".into();
                }
                d.last_status = meta
                    .get("status")
                    .and_then(Value::as_u64)
                    .and_then(|s| u16::try_from(s).ok());
                d.last_error = meta_str(meta, "error");
                d.next_attempt_at = meta_str(meta, "next_attempt_at");
            }
            REDELIVER => {
                let asked = meta_str(meta, "webhook");
                let names: Vec<String> = match asked {
                    Some(name) => vec![name],
                    None => deliveries.keys().cloned().collect(),
                };
                for name in names {
                    deliveries.insert(name.clone(), fresh(&alert.id, &name));
                }
            }
            _ => {}
        }
    }
    alert.status = if alert.resolved.is_some() {
        "resolved"
    } else if alert.acknowledged.is_some() {
        "acknowledged"
    } else {
        "open"
    }
    .into();
    alert.deliveries = deliveries.into_values().collect();
    Ok(())
}

/// A delivery not yet attempted.
pub fn fresh(alert: &str, webhook: &str) -> DeliveryOut {
    DeliveryOut {
        webhook: webhook.to_owned(),
        webhook_id: webhook_id(alert, webhook),
        state: "pending".into(),
        attempts: 0,
        last_status: None,
        last_error: None,
        next_attempt_at: None,
    }
}

/// The entries of one alert's resource, oldest first.
async fn history<S: Store>(app: &App<S>, id: &str) -> Result<Vec<StoredEntry>, ApiError> {
    let query = Query {
        tenants: vec![TenantId::system()],
        limit: MAX_HISTORY,
        ..Query::default()
    }
    .with(Exact::ResourceType, ALERT_RESOURCE)
    .with(Exact::ResourceId, id);
    let mut entries = app.store.query(&query).await?.entries;
    entries.reverse();
    Ok(entries)
}

/// One alert, as it stands now; None when no alert has this id.
pub async fn alert<S: Store>(app: &App<S>, id: &str) -> Result<Option<AlertOut>, ApiError> {
    let history = history(app, id).await?;
    let Some(first) = history
        .iter()
        .position(|e| e.envelope().is_ok_and(|env| env.action == ALERT_ACTION))
    else {
        return Ok(None);
    };
    let mut alert = raised(&history[first])?;
    apply(&mut alert, &history[first + 1..])?;
    Ok(Some(alert))
}

/// The alert-raising entries of a page, newest first, as raised (no
/// history read: what the restart replay compares its firings with).
pub async fn raised_page<S: Store>(
    app: &App<S>,
    query: Query,
) -> Result<(Vec<AlertOut>, Option<Cursor>), ApiError> {
    let query = Query {
        tenants: vec![TenantId::system()],
        ..query
    }
    .with(Exact::Action, ALERT_ACTION)
    .with(Exact::ResourceType, ALERT_RESOURCE);
    let page = app.store.query(&query).await?;
    let alerts = page.entries.iter().map(raised).collect::<Result<_, _>>()?;
    Ok((alerts, page.next))
}

/// A page of alerts, newest first, as they stand now (each with its
/// history applied): `limit` raisings read, those `keep` refuses left
/// out, so a page may be shorter.
pub async fn page<S: Store>(
    app: &App<S>,
    query: Query,
    keep: impl Fn(&AlertOut) -> bool,
) -> Result<(Vec<AlertOut>, Option<Cursor>), ApiError> {
    let (raised, next) = raised_page(app, query).await?;
    let mut out = Vec::new();
    for mut alert in raised {
        let later = history(app, &alert.id).await?;
        let after: Vec<StoredEntry> = later
            .into_iter()
            .filter(|e| e.envelope().is_ok_and(|env| env.action != ALERT_ACTION))
            .collect();
        apply(&mut alert, &after)?;
        if keep(&alert) {
            out.push(alert);
        }
    }
    Ok((out, next))
}
