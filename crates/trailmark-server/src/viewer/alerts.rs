//! `/ui/alerts`: the alerts the session may see, each opening onto its
//! events and deliveries, with acknowledge and resolve for admin keys
//! (recorded in `_system`, through the same code as the API's route).

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use trailmark_store::{Scope, Store};
use trailmark_wire::{AckIn, AlertOut};

use super::{PageError, Viewer, Who, esc, layout, same_token};
use crate::alerts::api::{AlertFilters, acknowledge, alerts, visible_alert};
use crate::auth::{Administrator, Authorized, Reader};
use crate::error::ApiError;
use crate::extract::QueryParams;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListParams {
    status: Option<String>,
    cursor: Option<String>,
}

fn deliveries(a: &AlertOut) -> String {
    if a.deliveries.is_empty() {
        return "<span class=\"none\">–</span>".into();
    }
    a.deliveries
        .iter()
        .map(|d| {
            format!(
                "<span class=\"delivery {}\">{}: {}</span>",
                esc(&d.state),
                esc(&d.webhook),
                esc(&d.state)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `GET /ui/alerts`.
pub(crate) async fn list<S: Store>(
    State(viewer): State<Arc<Viewer<S>>>,
    headers: HeaderMap,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Html<String>, PageError> {
    let who = viewer.who(&headers).await?;
    let reader = Authorized::<Reader>::check(who.caller.clone())?;
    let filters = AlertFilters {
        tenant: who.tenant.clone(),
        status: params.status.clone().filter(|s| !s.is_empty()),
        cursor: params.cursor.clone().filter(|c| !c.is_empty()),
        ..AlertFilters::default()
    };
    let page = alerts(&viewer.app, &reader.0, &filters).await?;
    let mut body = String::from(
        "<h1>Alerts</h1><form class=\"filters\" method=\"get\" action=\"/ui/alerts\"><label>Status <select name=\"status\">",
    );
    for (value, label) in [
        ("", "any"),
        ("open", "open"),
        ("acknowledged", "acknowledged"),
        ("resolved", "resolved"),
    ] {
        let selected = if params.status.as_deref().unwrap_or("") == value {
            " selected"
        } else {
            ""
        };
        let _ = write!(body, "<option value=\"{value}\"{selected}>{label}</option>");
    }
    body.push_str("</select></label><button>Show</button></form>");
    if page.alerts.is_empty() {
        body.push_str("<p class=\"none\">No alert.</p>");
    } else {
        body.push_str("<div class=\"scroll\"><table class=\"alerts\"><thead><tr><th>Raised</th><th>Rule</th><th>Tenant</th><th>What</th><th>Status</th><th>Delivery</th></tr></thead><tbody>");
        for a in &page.alerts {
            let _ = write!(
                body,
                "<tr data-alert=\"{}\"><td><a href=\"/ui/alerts/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td class=\"status {}\">{}</td><td>{}</td></tr>",
                esc(&a.id),
                esc(&a.id),
                esc(&a.raised_at),
                esc(&a.rule),
                esc(&a.tenant),
                esc(&a.summary),
                esc(&a.status),
                esc(&a.status),
                deliveries(a)
            );
        }
        body.push_str("</tbody></table></div>");
    }
    if let Some(next) = &page.next_cursor {
        let _ = write!(
            body,
            "<p><a rel=\"next\" href=\"/ui/alerts?status={}&amp;cursor={}\">Older alerts →</a></p>",
            esc(params.status.as_deref().unwrap_or("")),
            esc(next)
        );
    }
    Ok(layout("Alerts", "/ui/alerts", Some(&who), &body))
}

fn step(label: &str, s: Option<&trailmark_wire::AlertStepOut>) -> String {
    s.map_or_else(String::new, |s| {
        format!(
            "<dt>{label}</dt><dd>{} by {}{} (<code>_system</code> seq {})</dd>",
            esc(&s.at),
            esc(&s.by),
            s.note
                .as_ref()
                .map_or_else(String::new, |n| format!(": {}", esc(n))),
            s.entry.seq
        )
    })
}

/// `GET /ui/alerts/{id}`.
pub(crate) async fn alert<S: Store>(
    State(viewer): State<Arc<Viewer<S>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Html<String>, PageError> {
    let who = viewer.who(&headers).await?;
    let reader = Authorized::<Reader>::check(who.caller.clone())?;
    let a = visible_alert(&viewer.app, &reader.0, &id).await?;
    let mut meta = serde_json::Map::new();
    meta.insert("alert".into(), a.id.clone().into());
    viewer
        .app
        .audit(
            Some(&reader.0),
            "read",
            Some(("route", "/ui/alerts/{id}")),
            meta,
        )
        .await?;
    Ok(layout("Alert", "/ui/alerts", Some(&who), &render(&who, &a)))
}

fn render(who: &Who, a: &AlertOut) -> String {
    let mut body = format!(
        "<h1>Alert: {}</h1><p class=\"summary\">{}</p><dl><dt>Status</dt><dd class=\"status {}\">{}</dd><dt>Tenant</dt><dd>{}</dd><dt>Key</dt><dd>{}</dd><dt>Events</dt><dd>{}</dd><dt>First</dt><dd>{}</dd><dt>Last</dt><dd>{}</dd><dt>Raised</dt><dd>{} (<code>_system</code> seq {})</dd>{}{}</dl>",
        esc(&a.rule),
        esc(&a.summary),
        esc(&a.status),
        esc(&a.status),
        esc(&a.tenant),
        esc(&a.key),
        a.count,
        esc(&a.first_received_at),
        esc(&a.last_received_at),
        esc(&a.raised_at),
        a.entry.seq,
        step("Acknowledged", a.acknowledged.as_ref()),
        step("Resolved", a.resolved.as_ref()),
    );
    if who.caller.key.scopes.allows(Scope::Admin) && a.resolved.is_none() {
        let _ = write!(
            body,
            "<form class=\"ack\" method=\"post\" action=\"/ui/alerts/{}/ack\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><label>Note <input name=\"note\" maxlength=\"1000\"></label>{}<button name=\"resolve\" value=\"true\">Resolve</button></form>",
            esc(&a.id),
            esc(&who.csrf),
            if a.acknowledged.is_none() {
                "<button name=\"resolve\" value=\"false\">Acknowledge</button>"
            } else {
                ""
            }
        );
    }
    body.push_str("<h2>Deliveries</h2>");
    if a.deliveries.is_empty() {
        body.push_str("<p class=\"none\">No webhook takes this alert.</p>");
    } else {
        body.push_str("<table class=\"deliveries\"><thead><tr><th>Webhook</th><th>State</th><th>Attempts</th><th>Last answer</th><th>Next attempt</th><th>webhook-id</th></tr></thead><tbody>");
        for d in &a.deliveries {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                esc(&d.webhook),
                esc(&d.state),
                d.attempts,
                d.last_status.map_or_else(
                    || esc(d.last_error.as_deref().unwrap_or("–")),
                    |s| s.to_string()
                ),
                esc(d.next_attempt_at.as_deref().unwrap_or("–")),
                esc(&d.webhook_id)
            );
        }
        body.push_str("</tbody></table>");
    }
    let _ = write!(
        body,
        "<h2>Events ({} named of {})</h2><ul class=\"alert-events\">",
        a.events.len(),
        a.count
    );
    for e in &a.events {
        let _ = write!(
            body,
            "<li><a href=\"/ui/events/{}?tenant={}\">{}</a></li>",
            esc(e),
            esc(&a.tenant),
            esc(e)
        );
    }
    body.push_str("</ul><p><a href=\"/ui/alerts\">← All alerts</a></p>");
    body
}

#[derive(Deserialize)]
pub(crate) struct AckForm {
    csrf: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    resolve: String,
}

/// `POST /ui/alerts/{id}/ack`: acknowledges or resolves, then shows the
/// alert again.
pub(crate) async fn ack<S: Store>(
    State(viewer): State<Arc<Viewer<S>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<AckForm>,
) -> Result<Response, PageError> {
    let who = viewer.who(&headers).await?;
    if !same_token(&who.csrf, &form.csrf) {
        return Err(ApiError::Forbidden(
            "the form's token does not match this session: reload the page".into(),
        )
        .into());
    }
    let admin = Authorized::<Administrator>::check(who.caller.clone())?;
    let asked = AckIn {
        resolve: Some(form.resolve == "true"),
        note: Some(form.note).filter(|n| !n.trim().is_empty()),
    };
    let done = acknowledge(&viewer.app, &admin.0, &id, asked).await?;
    Ok(Redirect::to(&format!("/ui/alerts/{}", done.id)).into_response())
}
