//! Events, one event with its diff and proof, one record's history, export.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, State};

use crate::extract::QueryParams;
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use serde_json::Value;
use trailmark_core::Timestamp;
use trailmark_log::{LeafIndex, SignedCheckpoint, TreeSize, leaf_hash, verify_inclusion};
use trailmark_store::{Exact, Store};

use super::{PageError, Viewer, Who, enc, esc, layout};
use crate::query::EventFilters;
use crate::reports::ExportParams;
use crate::wire::{EventDetail, EventOut};

const DAY_MS: i64 = 86_400_000;

/// The filters as the events page takes them: dates from date inputs become
/// the start of that day (`since`) and the start of the next (`until`, so the
/// day is included).
fn api_filters(f: &EventFilters, who: &Who) -> EventFilters {
    let day = |v: &Option<String>, plus: i64| -> Option<String> {
        let v = v.as_deref().filter(|v| !v.is_empty())?;
        if v.len() == 10 {
            Timestamp::parse(&format!("{v}T00:00:00Z"))
                .ok()
                .and_then(|t| Timestamp::from_unix_millis(t.unix_millis() + plus))
                .map(|t| t.to_string())
                .or_else(|| Some(v.to_owned()))
        } else {
            Some(v.to_owned())
        }
    };
    // The filter form sends its empty fields: left out here, as the API
    // refuses an empty parameter.
    let given = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
    let mut exact = f.exact.clone();
    exact.0.retain(|_, v| !v.is_empty());
    EventFilters {
        tenant: who.tenant.clone(),
        exact,
        q: given(&f.q),
        since: day(&f.since, 0),
        until: day(&f.until, DAY_MS),
        days: given(&f.days),
        limit: Some(given(&f.limit).unwrap_or_else(|| "50".into())),
        cursor: given(&f.cursor),
    }
}

/// The filters as a query string (without the cursor).
fn query_string(f: &EventFilters) -> String {
    Exact::ALL
        .iter()
        .map(|field| (field.param(), f.get(*field)))
        .chain([
            ("q", f.q.as_deref()),
            ("since", f.since.as_deref()),
            ("until", f.until.as_deref()),
        ])
        .filter_map(|(k, v)| {
            v.filter(|v| !v.is_empty())
                .map(|v| format!("{k}={}", enc(v)))
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The colour class of an action.
fn action_class(action: &str, outcome: &str) -> &'static str {
    if outcome != "success" {
        return "failure";
    }
    match action {
        "create" | "restore" => "create",
        "update" => "update",
        "delete" | "soft_delete" | "truncate" => "delete",
        _ => "other",
    }
}

/// A record's history page, in the event's tenant: a record is named by
/// its type and id within one tenant.
fn history_link(event: &EventOut) -> Option<String> {
    let resource = event.resource.as_ref()?;
    let id = resource.id.as_deref()?;
    Some(format!(
        "/ui/history/{}/{}?tenant={}",
        enc(&resource.kind),
        enc(id),
        enc(&event.tenant)
    ))
}

fn filter_bar(f: &EventFilters) -> String {
    let field = |name: &str, label: &str, value: Option<&str>, kind: &str| {
        format!(
            "<label>{label}<input name=\"{name}\" type=\"{kind}\" value=\"{}\"></label>",
            esc(value.unwrap_or(""))
        )
    };
    let mut fields = String::new();
    for exact in Exact::ALL {
        if exact == Exact::Outcome {
            // The outcomes the API accepts, and "any".
            let outcome = f.get(exact).unwrap_or("");
            let mut options = String::new();
            for o in
                std::iter::once("").chain(trailmark_core::Outcome::ALL.iter().map(|o| o.as_str()))
            {
                let sel = if o == outcome { " selected" } else { "" };
                let label = if o.is_empty() { "any" } else { o };
                let _ = write!(options, "<option value=\"{o}\"{sel}>{label}</option>");
            }
            let _ = write!(
                fields,
                "<label>{}<select name=\"{}\">{options}</select></label>",
                exact.label(),
                exact.param()
            );
        } else {
            fields.push_str(&field(exact.param(), exact.label(), f.get(exact), "text"));
        }
    }
    format!(
        "<form method=\"get\" action=\"/ui/events\" class=\"filters\" aria-label=\"Filter events\">{fields}{}{}{}<button type=\"submit\">Filter</button> <a href=\"/ui/events\">Clear</a></form>",
        field("since", "From", f.since.as_deref(), "date"),
        field("until", "To", f.until.as_deref(), "date"),
        field("q", "Text", f.q.as_deref(), "search"),
    )
}

/// `/ui/events`: the table, newest first, with filters in the URL.
pub(crate) async fn events<S: Store>(
    State(viewer): State<Arc<Viewer<S>>>,
    headers: HeaderMap,
    QueryParams(filters): QueryParams<EventFilters>,
) -> Result<Html<String>, PageError> {
    let who = viewer.who(&headers).await?;
    let api = api_filters(&filters, &who);
    let reader = crate::auth::Authorized::check(who.caller.clone())?;
    let page = crate::query::events(&viewer.app, &reader, &api).await;
    let mut body = String::from("<h1>Events</h1>");
    body.push_str(&filter_bar(&filters));
    let qs = query_string(&filters);
    let page = match page {
        Ok(page) => page,
        Err(e) => {
            let _ = write!(
                body,
                "<p class=\"error\" role=\"alert\">{}</p>",
                esc(&e.explain())
            );
            return Ok(layout("Events", "/ui/events", Some(&who), &body));
        }
    };
    let _ = write!(
        body,
        "<p class=\"exports\">Export this view: <a href=\"/ui/export?format=csv&amp;{q}\">CSV</a> · <a href=\"/ui/export?format=ndjson&amp;{q}\">NDJSON</a></p>",
        q = esc(&qs)
    );
    if page.events.is_empty() {
        body.push_str("<p>No events match.</p>");
    } else {
        body.push_str("<div class=\"scroll\"><table class=\"events\"><thead><tr><th>When (UTC)</th><th>Actor</th><th>Action</th><th>Resource</th><th>Outcome</th><th>IP</th><th>Tenant</th></tr></thead><tbody>");
        for e in &page.events {
            let resource = match (&e.resource, history_link(e)) {
                (Some(r), Some(link)) => format!(
                    "<a href=\"{}\">{} {}</a>",
                    esc(&link),
                    esc(&r.kind),
                    esc(r.id.as_deref().unwrap_or(""))
                ),
                (Some(r), None) => esc(&r.kind),
                _ => String::new(),
            };
            let _ = write!(
                body,
                "<tr><td><a href=\"/ui/events/{}?tenant={}\">{}</a></td><td>{}</td><td><span class=\"action {}\">{}</span></td><td>{resource}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                enc(&e.id),
                enc(&e.tenant),
                esc(&e.occurred_at),
                esc(&e.actor.id),
                action_class(&e.action, &e.outcome),
                esc(&e.action),
                esc(&e.outcome),
                esc(e.ip().unwrap_or("")),
                esc(&e.tenant),
            );
        }
        body.push_str("</tbody></table></div>");
    }
    if let Some(cursor) = &page.next_cursor {
        let sep = if qs.is_empty() { "" } else { "&" };
        let _ = write!(
            body,
            "<p><a rel=\"next\" href=\"/ui/events?{}{sep}cursor={}\">Older events →</a></p>",
            esc(&qs),
            enc(cursor)
        );
    }
    Ok(layout("Events", "/ui/events", Some(&who), &body))
}

/// Old and new text with the changed middle marked (common prefix and
/// suffix left plain).
fn inline_diff(old: &str, new: &str) -> (String, String) {
    let o: Vec<char> = old.chars().collect();
    let n: Vec<char> = new.chars().collect();
    let prefix = o.iter().zip(&n).take_while(|(a, b)| a == b).count();
    let suffix = o[prefix..]
        .iter()
        .rev()
        .zip(n[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let part = |c: &[char]| esc(&c.iter().collect::<String>());
    (
        format!(
            "{}<del>{}</del>{}",
            part(&o[..prefix]),
            part(&o[prefix..o.len() - suffix]),
            part(&o[o.len() - suffix..])
        ),
        format!(
            "{}<ins>{}</ins>{}",
            part(&n[..prefix]),
            part(&n[prefix..n.len() - suffix]),
            part(&n[n.len() - suffix..])
        ),
    )
}

fn shown(v: &Value) -> String {
    match v {
        Value::Null => "<span class=\"none\">∅</span>".into(),
        Value::String(s) => esc(s),
        other => esc(&other.to_string()),
    }
}

fn diff_table(changes: &std::collections::BTreeMap<String, crate::wire::ChangeOut>) -> String {
    let mut out = String::from(
        "<table class=\"diff\"><thead><tr><th>Field</th><th>Before</th><th>After</th></tr></thead><tbody>",
    );
    for (field, change) in changes {
        let (old, new) = (&change.old, &change.new);
        let (o, n) = match (old, new) {
            (Value::String(a), Value::String(b)) if a.len() + b.len() > 40 => inline_diff(a, b),
            _ => (shown(old), shown(new)),
        };
        let _ = write!(
            out,
            "<tr><th scope=\"row\">{}</th><td class=\"old\">{o}</td><td class=\"new\">{n}</td></tr>",
            esc(field)
        );
    }
    out.push_str("</tbody></table>");
    out
}

fn pairs(map: Option<&serde_json::Map<String, Value>>) -> String {
    let Some(map) = map.filter(|m| !m.is_empty()) else {
        return "<p class=\"none\">none</p>".into();
    };
    let mut out = String::from("<dl>");
    for (k, v) in map {
        let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", esc(k), shown(v));
    }
    out.push_str("</dl>");
    out
}

/// Checks the event's inclusion proof against its checkpoint, as a
/// third party would: the leaf from the entry's bytes, the root from the
/// signed note.
fn proof_status<S: Store>(viewer: &Viewer<S>, event: &EventDetail) -> (bool, String) {
    let Some(proof) = &event.proof else {
        return (
            false,
            "Not in a signed checkpoint yet (checkpoints follow within a second); reload to check."
                .into(),
        );
    };
    let check = || -> Result<u64, String> {
        let tenant = trailmark_core::TenantId::new(&event.event.tenant).map_err(str::to_owned)?;
        let log_key = viewer
            .app
            .signer(&tenant)
            .map_err(|e| e.to_string())?
            .verifier();
        let signed = SignedCheckpoint::open(proof.checkpoint.as_bytes(), &log_key)
            .map_err(|e| format!("checkpoint signature: {e}"))?;
        let index = LeafIndex::new(proof.leaf_index).ok_or("bad leaf index")?;
        let size = TreeSize::new(proof.tree_size).ok_or("bad tree size")?;
        verify_inclusion(
            &leaf_hash(&event.envelope),
            index,
            size,
            &proof.hashes,
            signed.checkpoint().root(),
        )
        .map_err(|e| e.to_string())?;
        Ok(size.get())
    };
    match check() {
        Ok(size) => (
            true,
            format!("Verified: included in the signed checkpoint of size {size}."),
        ),
        Err(e) => (false, format!("NOT verified: {e}")),
    }
}

/// Why an event's payload is gone, when it is: the kind, the reason the
/// removal record gives, and that record.
fn removal_notice(e: &EventOut) -> String {
    let Some(r) = &e.removal else {
        return String::new();
    };
    let what = if r.kind == "expiry" {
        "Payload expired"
    } else {
        "Payload erased"
    };
    format!(
        "<p class=\"removed\" data-state=\"{}\">{what}{} (recorded in _system seq {}). The entry and its proof remain.</p>",
        esc(&e.state),
        r.reason
            .as_deref()
            .map(|why| format!(": {}", esc(why)))
            .unwrap_or_default(),
        r.record.seq
    )
}

/// The query of an event or history page's link.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventLink {
    tenant: Option<String>,
}

impl EventLink {
    /// The tenant a page reads: the link's (an id is unique only within
    /// one; a key that may not see it is refused by the read), else the
    /// one the session lists. (The session's first showed another tenant's
    /// event or record of the same id, or none.)
    fn tenant(self, who: &super::Who) -> Option<String> {
        self.tenant.or_else(|| who.tenant.clone())
    }
}

/// `/ui/events/{id}`: the diff, who and from where, and the proof.
pub(crate) async fn event<S: Store>(
    State(viewer): State<Arc<Viewer<S>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    QueryParams(link): QueryParams<EventLink>,
) -> Result<Html<String>, PageError> {
    let who = viewer.who(&headers).await?;
    let tenant = link.tenant(&who);
    let reader = crate::auth::Authorized::check(who.caller.clone())?;
    let detail = crate::query::event(&viewer.app, &reader, &id, tenant.as_deref()).await?;
    let (ok, proof) = proof_status(&viewer, &detail);
    let e = &detail.event;
    let (kind, rid) = e.resource.as_ref().map_or(("", ""), |r| {
        (r.kind.as_str(), r.id.as_deref().unwrap_or(""))
    });
    let mut body = format!(
        "<h1><span class=\"action {}\">{}</span> {} {}</h1>",
        action_class(&e.action, &e.outcome),
        esc(&e.action),
        esc(kind),
        esc(rid)
    );
    if let Some(link) = history_link(e) {
        let _ = write!(
            body,
            "<p><a href=\"{}\">History of this record →</a></p>",
            esc(&link)
        );
    }
    let _ = write!(
        body,
        "<p class=\"proof {}\" data-verified=\"{ok}\">{}</p>",
        if ok { "ok" } else { "pending" },
        esc(&proof)
    );
    body.push_str(&removal_notice(e));
    body.push_str("<h2>Changes</h2>");
    body.push_str(
        &e.changes
            .as_ref()
            .map_or_else(|| "<p class=\"none\">none recorded</p>".into(), diff_table),
    );
    let _ = write!(
        body,
        "<h2>Actor</h2><dl><dt>id</dt><dd>{}</dd><dt>type</dt><dd>{}</dd><dt>name</dt><dd>{}</dd></dl>",
        esc(&e.actor.id),
        esc(&e.actor.kind),
        esc(e.actor.name.as_str().unwrap_or(""))
    );
    body.push_str("<h2>Context</h2>");
    body.push_str(&pairs(e.context.as_object()));
    body.push_str("<h2>Metadata</h2>");
    body.push_str(&pairs(e.metadata.as_object()));
    let _ = write!(
        body,
        "<h2>Entry</h2><dl><dt>tenant</dt><dd>{}</dd><dt>seq</dt><dd>{}</dd><dt>occurred</dt><dd>{}</dd><dt>received</dt><dd>{}</dd><dt>payload</dt><dd>{}</dd><dt>reason</dt><dd>{}</dd></dl>",
        esc(&e.tenant),
        e.seq,
        esc(&e.occurred_at),
        esc(&e.received_at),
        esc(&e.state),
        esc(e.reason.as_str().unwrap_or("")),
    );
    Ok(layout("Event", "/ui/events", Some(&who), &body))
}

/// `/ui/history/{type}/{id}`: every event of one record, oldest first, with
/// the state after each.
pub(crate) async fn history<S: Store>(
    State(viewer): State<Arc<Viewer<S>>>,
    headers: HeaderMap,
    Path((kind, id)): Path<(String, String)>,
    QueryParams(link): QueryParams<EventLink>,
) -> Result<Html<String>, PageError> {
    let who = viewer.who(&headers).await?;
    let filters = EventFilters {
        tenant: link.tenant(&who),
        ..EventFilters::default()
    };
    let reader = crate::auth::Authorized::check(who.caller.clone())?;
    let h =
        crate::reports::record_history(&viewer.app, &reader, kind.clone(), id.clone(), &filters)
            .await?;
    let mut body = format!("<h1>History of {} {}</h1>", esc(&kind), esc(&id));
    if h.events.is_empty() {
        body.push_str("<p>No events for this record.</p>");
    }
    body.push_str("<ol class=\"history\">");
    for step in &h.events {
        let e = &step.event;
        let _ = write!(
            body,
            "<li><p><a href=\"/ui/events/{}?tenant={}\">{}</a> · <span class=\"action {}\">{}</span> by {}</p>",
            enc(&e.id),
            enc(&e.tenant),
            esc(&e.occurred_at),
            action_class(&e.action, &e.outcome),
            esc(&e.action),
            esc(&e.actor.id),
        );
        body.push_str(&removal_notice(e));
        if e.resource.as_ref().is_some_and(|r| r.id.is_none()) {
            // An event about the whole type (a table's truncate, rewrite,
            // pause or resume): see `reports::with_type_events`.
            let _ = write!(
                body,
                "<p class=\"whole\">Every {} at once, this one among them.</p>",
                esc(&kind)
            );
        }
        if let Some(changes) = &e.changes {
            body.push_str(&diff_table(changes));
        }
        body.push_str("<p class=\"state-label\">State after:</p>");
        if !step.unknown_fields.is_empty() {
            let _ = write!(
                body,
                "<p class=\"unknown\">Not known any more (an earlier event's payload is gone, or the table was rewritten, partly truncated or not captured for a while): {}</p>",
                esc(&step.unknown_fields.join(", "))
            );
        }
        if step.incomplete {
            body.push_str("<p class=\"incomplete\">Fields may be missing: an earlier event's payload is gone, or the table was rewritten, partly truncated or not captured for a while.</p>");
        }
        match &step.state_after {
            Value::Object(state) => body.push_str(&pairs(Some(state))),
            _ => body.push_str("<p class=\"none\">deleted</p>"),
        }
        body.push_str("</li>");
    }
    body.push_str("</ol>");
    if h.truncated {
        body.push_str("<p>Only the newest events are shown.</p>");
    }
    Ok(layout("History", "/ui/events", Some(&who), &body))
}

/// `/ui/export`: the API's streamed export of the current filters.
pub(crate) async fn export<S: Store>(
    State(viewer): State<Arc<Viewer<S>>>,
    headers: HeaderMap,
    QueryParams(params): QueryParams<ExportParams>,
) -> Result<Response, PageError> {
    let who = viewer.who(&headers).await?;
    let mut api = api_filters(&params.filters, &who);
    api.limit = None;
    api.cursor = None;
    let response = crate::reports::export(
        State(Arc::clone(&viewer.app)),
        crate::auth::Authorized::check(who.caller.clone())?,
        QueryParams(ExportParams {
            format: params.format,
            filters: api,
        }),
    )
    .await?;
    Ok(response.into_response())
}
