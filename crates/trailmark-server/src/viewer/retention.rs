//! `/ui/retention`: the retention policies, the legal holds in force, the
//! last cleanup, and a dry-run preview of the next one (admin keys).

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Html;
use serde::Deserialize;
use trailmark_store::Store;

use super::{PageError, Viewer, Who, esc, layout, same_token};
use crate::auth::{Administrator, Authorized};
use crate::error::ApiError;
use crate::wire::RemovalReport;

fn report_table(r: &RemovalReport) -> String {
    let mut out = String::from(
        "<table class=\"removal\"><thead><tr><th>Tenant</th><th>Resource type</th><th>Action</th><th>Entries</th><th>Bytes</th></tr></thead><tbody>",
    );
    for g in &r.groups {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&g.tenant),
            esc(g.resource_type.as_deref().unwrap_or("–")),
            esc(&g.action),
            g.entries,
            g.bytes
        );
    }
    let _ = write!(
        out,
        "</tbody></table><p class=\"removal-total\" data-entries=\"{}\" data-held=\"{}\">{} entries, {} bytes; {} kept by holds.</p>",
        r.entries, r.held, r.entries, r.bytes, r.held
    );
    out
}

/// The page, with a preview when one was asked for.
async fn render<S: Store>(
    viewer: &Viewer<S>,
    who: &Who,
    preview: Option<&RemovalReport>,
) -> Result<Html<String>, PageError> {
    let admin = Authorized::<Administrator>::check(who.caller.clone())?;
    let out = crate::retention::retention_view(&viewer.app, &admin.0).await?;
    let mut body = String::from("<h1>Retention</h1><h2>Policies</h2>");
    if out.policies.is_empty() {
        body.push_str("<p class=\"none\">No policy: every payload is kept.</p>");
    } else {
        body.push_str("<table class=\"policies\"><thead><tr><th>Tenant</th><th>Applies to</th><th>Kept (days)</th><th>Set</th></tr></thead><tbody>");
        for p in &out.policies {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&p.tenant),
                esc(&p.target),
                p.max_age_days,
                esc(&p.updated_at)
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("<h2>Legal holds in force</h2>");
    if out.holds.is_empty() {
        body.push_str("<p class=\"none\">None.</p>");
    } else {
        body.push_str("<table class=\"holds\"><thead><tr><th>Id</th><th>Tenant</th><th>Covers</th><th>Reason</th><th>Placed</th></tr></thead><tbody>");
        for h in &out.holds {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} by {}</td></tr>",
                esc(&h.id),
                esc(&h.tenant),
                esc(&h.scope),
                esc(&h.reason),
                esc(&h.placed_at),
                esc(&h.placed_by)
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("<h2>Last cleanup</h2>");
    match &out.last_cleanup {
        Some(r) => {
            let _ = write!(body, "<p>Finished {}.</p>", esc(&r.finished_at));
            body.push_str(&report_table(r));
        }
        None if who.tenant.is_some() => body.push_str(
            "<p class=\"none\">Its report covers every tenant: shown to keys bound to no tenant.</p>",
        ),
        None => body.push_str("<p class=\"none\">None since this server started.</p>"),
    }
    let _ = write!(
        body,
        "<p>{}</p><h2>Next cleanup</h2><form method=\"post\" action=\"/ui/retention/preview\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button>Preview (dry run)</button></form>",
        out.cleanup_interval_secs.map_or_else(
            || "Scheduled cleanups are off; run <code>trailmark cleanup</code>.".to_owned(),
            |s| format!("The server cleans up every {s} seconds.")
        ),
        esc(&who.csrf)
    );
    if let Some(r) = preview {
        body.push_str("<div class=\"preview\"><h3>Would expire now</h3>");
        body.push_str(&report_table(r));
        body.push_str("</div>");
    }
    Ok(layout("Retention", "/ui/retention", Some(who), &body))
}

/// `GET /ui/retention`.
pub(crate) async fn page<S: Store>(
    State(viewer): State<Arc<Viewer<S>>>,
    headers: HeaderMap,
) -> Result<Html<String>, PageError> {
    let who = viewer.who(&headers).await?;
    render(&viewer, &who, None).await
}

#[derive(Deserialize)]
pub(crate) struct PreviewForm {
    csrf: String,
}

/// `POST /ui/retention/preview`: a dry run of the next cleanup over the
/// tenants the session looks at.
pub(crate) async fn preview<S: Store>(
    State(viewer): State<Arc<Viewer<S>>>,
    headers: HeaderMap,
    Form(form): Form<PreviewForm>,
) -> Result<Html<String>, PageError> {
    let who = viewer.who(&headers).await?;
    if !same_token(&who.csrf, &form.csrf) {
        return Err(ApiError::Forbidden(
            "the form's token does not match this session: reload the page".into(),
        )
        .into());
    }
    let admin = Authorized::<Administrator>::check(who.caller.clone())?;
    let report =
        crate::retention::run_cleanup(&viewer.app, Some(&admin.0), who.tenant.as_deref(), true)
            .await?;
    render(&viewer, &who, Some(&report)).await
}
