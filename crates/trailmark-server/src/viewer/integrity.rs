//! `/ui/integrity`: checkpoints, the verifier key, and a verification run
//! from the browser with progress.
//!
//! The run pushes what the store holds into the one verifier
//! (`trailmark-verify`), as `trailmark verify --data-dir` does, so the two
//! agree on every trail.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Html;
use serde_json::{Map, Value, json};
use trailmark_core::{TenantId, Timestamp};
use trailmark_store::{SigningKeyRecord, Store};
use trailmark_verify::{KeyHistory, Policy, Report, ScopedKey, Trail};

use super::{PageError, Viewer, esc, layout};
use crate::app::{now, random_bytes};
use crate::error::ApiError;

/// One verification run.
#[derive(Default)]
pub(crate) struct Job {
    checked: AtomicU64,
    total: AtomicU64,
    /// None while running; then Ok(summary) or Err(first failure).
    result: Mutex<Option<Result<String, String>>>,
    /// Who started it (key id): only they may read it.
    owner: String,
    /// The tenants it verifies (see `scope_key`): one run per scope at a time.
    scope: String,
}

/// When a run ended and how.
type LastRun = (Timestamp, Result<String, String>);

/// Runs by id, and the last result per tenant set.
#[derive(Default)]
pub(crate) struct Jobs {
    runs: Mutex<HashMap<String, Arc<Job>>>,
    last: Mutex<HashMap<String, LastRun>>,
}

fn scope_key(tenants: &[TenantId]) -> String {
    if tenants.is_empty() {
        "*".into()
    } else {
        tenants
            .iter()
            .map(TenantId::as_str)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The keys that sign `tenant`'s checkpoints, from the key history the
/// store records (transitions checked).
async fn keys_of<S: Store>(
    viewer: &Viewer<S>,
    tenant: &TenantId,
) -> Result<Vec<ScopedKey>, String> {
    let records = viewer
        .app
        .store
        .signing_keys()
        .await
        .map_err(|e| e.to_string())?;
    let views: Vec<_> = records.iter().map(SigningKeyRecord::view).collect();
    KeyHistory::new(&views)?.keys_for(tenant.as_str())
}

/// Pushes one tenant into the one verifier (`trailmark-verify`), exactly
/// as `trailmark verify --data-dir` does.
async fn verify_tenant<S: Store>(
    viewer: &Viewer<S>,
    trail: &mut Trail,
    tenant: &TenantId,
    size: u64,
    job: &Job,
) -> Result<Report, String> {
    let store = &viewer.app.store;
    let mut verifier = trail.tenant(tenant.clone(), keys_of(viewer, tenant).await?);
    for cp in store.checkpoints(tenant).await.map_err(|e| e.to_string())? {
        verifier.stored_checkpoint(&cp.note, Some((cp.size.get(), cp.root)));
    }
    let mut start = 0u64;
    while start < size {
        let end = (start + 2000).min(size);
        let page = store
            .raw_page(tenant, start, end)
            .await
            .map_err(|e| e.to_string())?;
        // One thread: the server's other requests keep the rest.
        verifier.page(start, page.iter().map(crate::render::entry_of), 1);
        job.checked.fetch_add(page.len() as u64, Ordering::Relaxed);
        if page.is_empty() {
            break;
        }
        start = end;
    }
    Ok(trail.finish(verifier, size))
}

async fn run<S: Store>(viewer: Arc<Viewer<S>>, tenants: Vec<TenantId>, job: Arc<Job>) {
    let outcome = async {
        let heads = viewer.app.store.heads().await.map_err(|e| e.to_string())?;
        let visible = |t: &TenantId| tenants.is_empty() || tenants.contains(t);
        // `_system` is always read first: it holds every tenant's
        // checkpoint cross-references. Its own result shows only to those
        // who may see it.
        let heads: Vec<_> = heads
            .into_iter()
            .filter(|h| visible(&h.tenant) || h.tenant.is_system())
            .collect();
        job.total
            .store(heads.iter().map(|h| h.size.get()).sum(), Ordering::Relaxed);
        let order = Trail::order(heads.iter().map(|h| h.tenant.clone()).collect());
        let mut trail = Trail::new(Policy {
            now: Some(now()),
            max_unsigned_age_ms: Policy::DEFAULT_MAX_UNSIGNED_AGE_MS,
        });
        let mut failures = Vec::new();
        let mut shown = 0;
        for tenant in &order {
            let size = heads
                .iter()
                .find(|h| &h.tenant == tenant)
                .map_or(0, |h| h.size.get());
            let report = verify_tenant(&viewer, &mut trail, tenant, size, &job).await?;
            if visible(tenant) {
                shown += 1;
                failures.extend(report.failures.iter().map(|f| format!("{tenant}: {f}")));
            }
        }
        let present: Vec<TenantId> = heads.iter().map(|h| h.tenant.clone()).collect();
        for report in trail.vanished(&present, None) {
            if visible(&report.tenant) {
                let tenant = &report.tenant;
                failures.extend(report.failures.iter().map(|f| format!("{tenant}: {f}")));
            }
        }
        if failures.is_empty() {
            Ok(format!(
                "{} entries in {shown} tenants verified",
                job.checked.load(Ordering::Relaxed)
            ))
        } else {
            Err(failures.join("; "))
        }
    }
    .await;
    if let Err(failures) = &outcome {
        // A failed verification is one of Trailmark's own events (and an
        // alert, by the default rules).
        let mut meta = serde_json::Map::new();
        meta.insert("tenants".into(), scope_key(&tenants).into());
        let text = crate::alerts::state::clip(failures.clone(), 1000);
        meta.insert("failures".into(), text.into());
        if let Err(e) = viewer
            .app
            .audit_outcome(
                None,
                "trailmark.verification.failed",
                None,
                meta,
                trailmark_core::Outcome::Failure,
            )
            .await
        {
            tracing::warn!("recording a failed verification failed: {e}");
        }
    }
    if let Ok(mut last) = viewer.verifications.last.lock() {
        last.insert(scope_key(&tenants), (now(), outcome.clone()));
    }
    if let Ok(mut result) = job.result.lock() {
        *result = Some(outcome);
    }
}

/// `POST /ui/verify`: starts a run over the tenants being looked at.
pub(crate) async fn start<S: Store>(
    State(viewer): State<Arc<Viewer<S>>>,
    headers: HeaderMap,
) -> Result<Json<Value>, PageError> {
    let who = viewer.who(&headers).await?;
    let posted = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !super::same_token(&who.csrf, posted) {
        return Err(ApiError::Forbidden(
            "the request's token does not match this session: reload the page".into(),
        )
        .into());
    }
    let tenants = who.caller.visible(who.tenant.as_deref())?;
    let scope = scope_key(&tenants);
    // A run of the same tenants still going is joined, not doubled: at most
    // one verification per scope reads the store at a time.
    let running = viewer.verifications.runs.lock().ok().and_then(|runs| {
        runs.iter()
            .find(|(_, j)| j.scope == scope && j.result.lock().is_ok_and(|r| r.is_none()))
            .map(|(id, j)| (id.clone(), j.owner.clone()))
    });
    if let Some((id, owner)) = running {
        if owner == who.caller.key.id {
            return Ok(Json(json!({"job": id})));
        }
        return Err(ApiError::Conflict(
            "a verification of these tenants is running; try again when it has ended".into(),
        )
        .into());
    }
    let id = hex::encode(random_bytes::<16>()?);
    let job = Arc::new(Job {
        owner: who.caller.key.id.clone(),
        scope: scope.clone(),
        ..Job::default()
    });
    if let Ok(mut runs) = viewer.verifications.runs.lock() {
        if runs.len() > 100 {
            runs.retain(|_, j| j.result.lock().is_ok_and(|r| r.is_none()));
        }
        runs.insert(id.clone(), Arc::clone(&job));
    }
    let mut meta = Map::new();
    meta.insert("tenants".into(), json!(scope_key(&tenants)));
    viewer
        .app
        .audit(
            Some(&who.caller),
            "verify",
            Some(("route", "/ui/verify")),
            meta,
        )
        .await?;
    tokio::spawn(run(Arc::clone(&viewer), tenants, job));
    Ok(Json(json!({"job": id})))
}

/// `GET /ui/verify/{job}`: progress, then the result.
pub(crate) async fn status<S: Store>(
    State(viewer): State<Arc<Viewer<S>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, PageError> {
    let who = viewer.who(&headers).await?;
    let job = viewer
        .verifications
        .runs
        .lock()
        .ok()
        .and_then(|runs| runs.get(&id).cloned())
        .filter(|j| j.owner == who.caller.key.id)
        .ok_or_else(|| ApiError::NotFound("no such verification".into()))?;
    let result = job.result.lock().ok().and_then(|r| r.clone());
    Ok(Json(json!({
        "checked": job.checked.load(Ordering::Relaxed),
        "total": job.total.load(Ordering::Relaxed),
        "done": result.is_some(),
        "ok": result.as_ref().map(Result::is_ok),
        "message": result.map(|r| match r { Ok(m) | Err(m) => m }),
    })))
}

/// The integrity page's script, served as `/ui/integrity.js` (the pages'
/// Content-Security-Policy allows no inline script).
pub(crate) const SCRIPT: &str = r"
const button = document.getElementById('verify');
const bar = document.getElementById('progress');
const out = document.getElementById('verify-result');
button.addEventListener('click', async () => {
  button.disabled = true;
  out.textContent = 'Verifying…';
  out.className = '';
  const token = document.querySelector('meta[name=csrf-token]').content;
  const started = await fetch('/ui/verify', {method: 'POST', credentials: 'same-origin', headers: {'X-CSRF-Token': token}});
  if (!started.ok) { out.textContent = 'Could not start: ' + started.status; button.disabled = false; return; }
  const {job} = await started.json();
  for (;;) {
    const r = await (await fetch('/ui/verify/' + job, {credentials: 'same-origin'})).json();
    bar.max = Math.max(r.total, 1); bar.value = r.checked;
    if (r.done) {
      out.textContent = (r.ok ? 'Verified: ' : 'FAILED: ') + r.message;
      out.className = r.ok ? 'ok' : 'failed';
      button.disabled = false;
      return;
    }
    await new Promise(res => setTimeout(res, 150));
  }
});
";

/// `GET /ui/integrity`.
pub(crate) async fn page<S: Store>(
    State(viewer): State<Arc<Viewer<S>>>,
    headers: HeaderMap,
) -> Result<Html<String>, PageError> {
    let who = viewer.who(&headers).await?;
    let tenants = who.caller.visible(who.tenant.as_deref())?;
    let heads = viewer.app.store.heads().await.map_err(ApiError::from)?;
    let mut body = String::from(
        "<h1>Integrity</h1><div class=\"scroll\"><table><thead><tr><th>Tenant</th><th>Entries</th><th>Latest checkpoint</th><th>Verifier key</th></tr></thead><tbody>",
    );
    for head in heads
        .iter()
        .filter(|h| tenants.is_empty() || tenants.contains(&h.tenant))
    {
        let checkpoint = viewer
            .app
            .store
            .latest_checkpoint(&head.tenant)
            .await
            .map_err(ApiError::from)?;
        let key = viewer.app.signer(&head.tenant)?.verifier().to_string();
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td><pre>{}</pre></td><td><code>{}</code></td></tr>",
            esc(head.tenant.as_str()),
            head.size.get(),
            esc(checkpoint.as_ref().map_or("none yet", |c| c.note.as_str())),
            esc(&key)
        );
    }
    body.push_str("</tbody></table></div>");
    let last = viewer
        .verifications
        .last
        .lock()
        .ok()
        .and_then(|l| l.get(&scope_key(&tenants)).cloned());
    let _ = write!(
        body,
        "<h2>Verification</h2><p>Last run: {}</p><p><button id=\"verify\" type=\"button\">Verify now</button> <progress id=\"progress\" value=\"0\" max=\"1\"></progress></p><p id=\"verify-result\" role=\"status\" aria-live=\"polite\"></p><script src=\"/ui/integrity.js\"></script>",
        match last {
            None => "never (since this server started)".to_owned(),
            Some((at, Ok(m))) => format!("{} — passed: {}", at, esc(&m)),
            Some((at, Err(m))) => format!(
                "{} — <strong class=\"failed\">FAILED</strong>: {}",
                at,
                esc(&m)
            ),
        }
    );
    let mut meta = Map::new();
    meta.insert("page".into(), json!("/ui/integrity"));
    viewer
        .app
        .audit(
            Some(&who.caller),
            "read",
            Some(("route", "/ui/integrity")),
            meta,
        )
        .await?;
    Ok(layout("Integrity", "/ui/integrity", Some(&who), &body))
}
