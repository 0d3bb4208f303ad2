//! The alert routes: `GET /v1/alerts`, `GET /v1/alerts/{id}`,
//! `POST /v1/alerts/{id}/ack`, `POST /v1/alerts/{id}/redeliver`,
//! `GET|PUT /v1/alert-rules`, `GET|PUT /v1/webhooks`. Every change is an
//! entry in `_system`; reading alerts is recorded like every read.

use std::sync::Arc;

use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Map, Value};
use trailmark_core::TenantId;
use trailmark_store::{Cursor, Query, Store};
use trailmark_wire::{
    AckIn, AlertOut, AlertRulesOut, AlertsPage, RedeliverIn, WebhooksIn, WebhooksOut,
};

use super::Rules;
use super::deliver;
use super::run::{self, stored_rules};
use super::state::{self, ACKNOWLEDGED, ALERT_RESOURCE, REDELIVER, RESOLVED};
use crate::app::{App, Caller};
use crate::auth::{Administrator, Authorized, Reader, ServerAdministrator};
use crate::error::ApiError;
use crate::extract::{NoQuery, QueryParams, not_empty};

/// The most alerts one page holds.
pub const MAX_ALERTS_PAGE: usize = 100;
/// The longest note an acknowledgement keeps.
pub const MAX_NOTE: usize = 1000;

/// `GET /v1/alerts` parameters; any other is refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertFilters {
    pub tenant: Option<String>,
    pub rule: Option<String>,
    /// `open`, `acknowledged`, `resolved`.
    pub status: Option<String>,
    /// `pending`, `delivered`, `dead`: alerts with a delivery in that
    /// state (`dead`: the dead-letter list).
    pub delivery: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

fn one_of(field: &str, value: Option<&str>, allowed: &[&str]) -> Result<Option<String>, ApiError> {
    match value {
        None => Ok(None),
        Some(v) if allowed.contains(&v) => Ok(Some(v.to_owned())),
        Some(v) => Err(ApiError::param(
            field,
            format!("{v:?}: give one of {}", allowed.join(", ")),
        )),
    }
}

/// Whether `caller` may see alerts of `tenant`: a bound key its own only.
fn may_see(caller: &Caller, tenant: &str) -> bool {
    caller
        .key
        .tenant
        .as_ref()
        .is_none_or(|own| own.as_str() == tenant)
}

/// `GET /v1/alerts`: newest first. A page reads `limit` alerts and leaves
/// out those the filters refuse, so it may hold fewer: follow
/// `next_cursor` until it is null.
pub async fn list<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(caller, _): Authorized<Reader>,
    QueryParams(filters): QueryParams<AlertFilters>,
) -> Result<axum::Json<AlertsPage>, ApiError> {
    alerts(&app, &caller, &filters).await.map(axum::Json)
}

/// A page of the alerts `caller` may see (the read recorded in
/// `_system`): `GET /v1/alerts` and the viewer's Alerts page.
pub async fn alerts<S: Store>(
    app: &App<S>,
    caller: &Caller,
    filters: &AlertFilters,
) -> Result<AlertsPage, ApiError> {
    let tenant = caller
        .visible(filters.tenant.as_deref())?
        .first()
        .map(TenantId::to_string);
    let rule_names = super::RuleKind::ALL.map(super::RuleKind::name);
    let rule = one_of(
        "rule",
        not_empty("rule", filters.rule.as_deref())?,
        &rule_names,
    )?;
    let status = one_of(
        "status",
        not_empty("status", filters.status.as_deref())?,
        &["open", "acknowledged", "resolved"],
    )?;
    let delivery = one_of(
        "delivery",
        not_empty("delivery", filters.delivery.as_deref())?,
        &["pending", "delivered", "dead"],
    )?;
    let limit = match not_empty("limit", filters.limit.as_deref())? {
        None => 50,
        Some(l) => l
            .parse()
            .ok()
            .filter(|l| (1..=MAX_ALERTS_PAGE).contains(l))
            .ok_or_else(|| ApiError::param("limit", format!("must be 1 to {MAX_ALERTS_PAGE}")))?,
    };
    let cursor = not_empty("cursor", filters.cursor.as_deref())?
        .map(|c| {
            Cursor::decode(c)
                .ok_or_else(|| ApiError::param("cursor", "not a cursor from next_cursor"))
        })
        .transpose()?;
    let query = Query {
        limit,
        cursor,
        ..Query::default()
    };
    let (alerts, next) = state::page(app, query, |a| {
        tenant.as_ref().is_none_or(|t| *t == a.tenant)
            && rule.as_ref().is_none_or(|r| *r == a.rule)
            && status.as_ref().is_none_or(|s| *s == a.status)
            && may_see(caller, &a.tenant)
            && delivery
                .as_ref()
                .is_none_or(|d| a.deliveries.iter().any(|x| x.state == *d))
    })
    .await?;
    let mut meta = Map::new();
    for (k, v) in [
        ("tenant", &tenant),
        ("rule", &rule),
        ("status", &status),
        ("delivery", &delivery),
    ] {
        if let Some(v) = v {
            meta.insert(k.into(), Value::from(v.as_str()));
        }
    }
    meta.insert("returned".into(), Value::from(alerts.len()));
    app.audit(Some(caller), "read", Some(("route", "/v1/alerts")), meta)
        .await?;
    Ok(AlertsPage {
        alerts,
        next_cursor: next.map(Cursor::encode),
    })
}

/// One alert that `caller` may see (404 otherwise: an alert of another
/// tenant is not confirmed to exist).
pub(crate) async fn visible_alert<S: Store>(
    app: &App<S>,
    caller: &Caller,
    id: &str,
) -> Result<AlertOut, ApiError> {
    let id = trailmark_core::EventId::parse(id).map_err(|m| ApiError::param("id", m))?;
    state::alert(app, &id.to_string())
        .await?
        .filter(|a| may_see(caller, &a.tenant))
        .ok_or_else(|| ApiError::NotFound(format!("no alert {id} that this key may see")))
}

/// `GET /v1/alerts/{id}`.
pub async fn get<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(caller, _): Authorized<Reader>,
    _: NoQuery,
    Path(id): Path<String>,
) -> Result<axum::Json<AlertOut>, ApiError> {
    let alert = visible_alert(&app, &caller, &id).await?;
    let mut meta = Map::new();
    meta.insert("alert".into(), Value::from(alert.id.as_str()));
    app.audit(
        Some(&caller),
        "read",
        Some(("route", "/v1/alerts/{id}")),
        meta,
    )
    .await?;
    Ok(axum::Json(alert))
}

/// `POST /v1/alerts/{id}/ack`: acknowledges (or, `resolve: true`,
/// resolves) an alert, recorded on it in `_system`. Acknowledging an
/// alert already acknowledged or resolved, or resolving one already
/// resolved, is a 409.
pub async fn ack<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(caller, _): Authorized<Administrator>,
    _: NoQuery,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> Result<axum::Json<AlertOut>, ApiError> {
    let asked: AckIn = if bytes.is_empty() {
        AckIn::default()
    } else {
        crate::retention::body(&bytes)?
    };
    acknowledge(&app, &caller, &id, asked).await.map(axum::Json)
}

/// Acknowledges or resolves an alert `caller` (an admin) may see: the
/// API's route and the viewer's buttons.
pub async fn acknowledge<S: Store>(
    app: &App<S>,
    caller: &Caller,
    id: &str,
    asked: AckIn,
) -> Result<AlertOut, ApiError> {
    let note = match asked.note {
        None => None,
        Some(n) if n.trim().is_empty() || n.len() > MAX_NOTE || n.chars().any(char::is_control) => {
            return Err(ApiError::param(
                "note",
                format!("give 1 to {MAX_NOTE} characters, no control characters, or leave it out"),
            ));
        }
        Some(n) => Some(n),
    };
    let resolve = asked.resolve.unwrap_or(false);
    let alert = visible_alert(app, caller, id).await?;
    if alert.resolved.is_some() || (!resolve && alert.acknowledged.is_some()) {
        return Err(ApiError::Conflict(format!(
            "alert {} is already {}",
            alert.id, alert.status
        )));
    }
    let mut meta = Map::new();
    if let Some(note) = note {
        meta.insert("note".into(), Value::from(note));
    }
    meta.insert("tenant".into(), Value::from(alert.tenant.as_str()));
    let action = if resolve { RESOLVED } else { ACKNOWLEDGED };
    app.audit(
        Some(caller),
        action,
        Some((ALERT_RESOURCE, &alert.id)),
        meta,
    )
    .await?;
    Ok(state::alert(app, &alert.id).await?.unwrap_or(alert))
}

/// `POST /v1/alerts/{id}/redeliver`: delivers again from the first
/// attempt, to one webhook or to every webhook the alert goes to; the same
/// `webhook-id` as before (receivers that have it already ignore it).
pub async fn redeliver<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(caller, _): Authorized<Administrator>,
    _: NoQuery,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> Result<(axum::http::StatusCode, axum::Json<AlertOut>), ApiError> {
    let asked: RedeliverIn = if bytes.is_empty() {
        RedeliverIn::default()
    } else {
        crate::retention::body(&bytes)?
    };
    let alert = visible_alert(&app, &caller, &id).await?;
    let deliveries = app.webhooks.get().ok_or_else(|| {
        ApiError::Conflict("webhook delivery is not running on this server".into())
    })?;
    let hooks = deliveries.webhooks().0;
    let takes: Vec<&deliver::Webhook> = hooks
        .iter()
        .filter(|h| h.takes(&alert) && asked.webhook.as_ref().is_none_or(|w| *w == h.name))
        .collect();
    if takes.is_empty() {
        return Err(ApiError::param(
            "webhook",
            match &asked.webhook {
                Some(w) => format!("no webhook {w:?} takes this alert (GET /v1/webhooks)"),
                None => "no webhook takes this alert (GET /v1/webhooks)".into(),
            },
        ));
    }
    let mut meta = Map::new();
    if let Some(w) = &asked.webhook {
        meta.insert("webhook".into(), Value::from(w.as_str()));
    }
    meta.insert("tenant".into(), Value::from(alert.tenant.as_str()));
    app.audit(
        Some(&caller),
        REDELIVER,
        Some((ALERT_RESOURCE, &alert.id)),
        meta,
    )
    .await?;
    deliveries.again(alert.clone(), asked.webhook.as_deref(), &app.metrics);
    let now = state::alert(&app, &alert.id).await?.unwrap_or(alert);
    Ok((axum::http::StatusCode::ACCEPTED, axum::Json(now)))
}

/// The rules in force on this server and their version.
fn rules_out(rules: &Rules, version: u64) -> Result<AlertRulesOut, ApiError> {
    Ok(AlertRulesOut {
        rules: serde_json::to_value(rules)
            .map_err(|e| ApiError::Store(trailmark_store::StoreError::Unreadable(e.to_string())))?,
        version,
    })
}

/// `GET /v1/alert-rules`.
pub async fn get_rules<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(_caller, _): Authorized<ServerAdministrator>,
    _: NoQuery,
) -> Result<axum::Json<AlertRulesOut>, ApiError> {
    let (rules, version) = match stored_rules(&app).await? {
        Some(stored) => stored,
        None => app.alerts.get().map_or_else(
            || (Rules::default(), 0),
            |f| {
                let (r, v) = f.rules();
                (r.as_ref().clone(), v)
            },
        ),
    };
    rules_out(&rules, version).map(axum::Json)
}

/// `PUT /v1/alert-rules`: every rule, every field (as the TOML of
/// docs/ALERTS.md, in JSON); recorded in `_system`, in force at once on
/// this server and within seconds on others sharing the store.
pub async fn put_rules<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(caller, _): Authorized<ServerAdministrator>,
    _: NoQuery,
    bytes: axum::body::Bytes,
) -> Result<axum::Json<AlertRulesOut>, ApiError> {
    let text = std::str::from_utf8(&bytes).map_err(|_| ApiError::param("", "body is not UTF-8"))?;
    let value = trailmark_core::parse_strict_json(text)
        .map_err(|e| ApiError::param("", format!("malformed JSON: {e}")))?;
    let rules = Rules::from_json(value).map_err(|m| {
        // The rule checks name their field first ("mass_delete.threshold: …");
        // serde names it between backticks.
        let path = m
            .split('`')
            .nth(1)
            .or_else(|| {
                m.split_once(": ")
                    .map(|(f, _)| f)
                    .filter(|f| !f.contains(' '))
            })
            .unwrap_or("")
            .to_owned();
        ApiError::param(&path, m)
    })?;
    let version = stored_rules(&app).await?.map_or(0, |(_, v)| v);
    let version = run::change_rules(&app, Some(&caller), &rules, version).await?;
    rules_out(&rules, version).map(axum::Json)
}

/// `GET /v1/webhooks`: the endpoints, without their secrets.
pub async fn get_webhooks<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(_caller, _): Authorized<ServerAdministrator>,
    _: NoQuery,
) -> Result<axum::Json<WebhooksOut>, ApiError> {
    let (hooks, version) = deliver::load(&app).await?;
    Ok(axum::Json(WebhooksOut {
        webhooks: hooks.iter().map(|h| h.out(false)).collect(),
        version,
    }))
}

/// `PUT /v1/webhooks`: every endpoint (the list replaces the one before).
/// A secret made now is in this answer only; the change is recorded in
/// `_system` with each secret's fingerprint, never the secret.
pub async fn put_webhooks<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(caller, _): Authorized<ServerAdministrator>,
    _: NoQuery,
    bytes: axum::body::Bytes,
) -> Result<axum::Json<WebhooksOut>, ApiError> {
    let asked: WebhooksIn = crate::retention::body(&bytes)?;
    let (present, expected) = deliver::load(&app).await?;
    let (hooks, made) = deliver::checked(asked.webhooks, &present)?;
    let mut meta = Map::new();
    let listed: Vec<Value> = hooks
        .iter()
        .map(|h| {
            let out = h.out(false);
            serde_json::json!({"name": out.name, "url": out.url, "format": out.format,
                "rules": out.rules, "tenants": out.tenants, "secret_sha256": out.secret_sha256})
        })
        .collect();
    meta.insert("webhooks".into(), Value::from(listed));
    meta.insert("version".into(), Value::from(expected + 1));
    app.audit(
        Some(&caller),
        "trailmark.webhooks.changed",
        Some(("Webhooks", "webhooks")),
        meta,
    )
    .await?;
    let version = deliver::store(&app, &hooks, expected).await?;
    if let Some(d) = app.webhooks.get() {
        d.set(hooks.clone(), version);
    }
    Ok(axum::Json(WebhooksOut {
        webhooks: hooks
            .iter()
            .map(|h| h.out(made.contains(&h.name)))
            .collect(),
        version,
    }))
}
