//! Retention, legal holds and erasure: `/v1/retention`, `/v1/holds`,
//! `/v1/erasures`, and the scheduled cleanup inside `serve`.
//!
//! Every removal walks the entries it may reach a page at a time
//! ([`WALK_PAGE`]); for each page with something to remove it first writes
//! one `_system` entry naming the seq ranges (never the values), then asks
//! the store to erase those payloads. The record comes first, so a removal
//! cut short leaves recorded entries that still verify, never a removed
//! payload without its record. Entries under a hold in force are never
//! removed; an erasure that would reach one is refused whole.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Map, Value};
use trailmark_core::{Envelope, TenantId, Timestamp};
use trailmark_store::{Hold, HoldScope, Removal, RetentionPolicy, Store, Target, Walk, governing};
use trailmark_verify::{
    CHECKPOINT_RESOURCE, ERASURE_ACTION, EXPIRY_ACTION, MAX_RANGES, RemovalRecord,
};

use crate::app::{App, Caller, now, random_bytes};
use crate::auth::{Administrator, Authorized};
use crate::error::{ApiError, Problem};
use crate::extract::{NoQuery, QueryParams};
use crate::wire::{
    CleanupIn, EntryRef, ErasureIn, HoldIn, HoldOut, Holds, RemovalGroup, RemovalReport,
    RetentionOut, RetentionPolicyIn, RetentionPolicyOut, RetentionTarget,
};

/// Entries read per page of a removal walk, and the most one `_system`
/// record (and one store erase) covers.
pub const WALK_PAGE: usize = 1000;
/// The longest retention a policy may set.
pub const MAX_AGE_DAYS: u32 = 36_500;
/// The longest reason accepted.
pub const MAX_REASON: usize = 500;
/// How far past the newest cutoff a retention walk reads before it stops:
/// `received_at` follows `seq` only as closely as requests overlap and
/// servers' clocks agree.
pub const WALK_SLACK: Duration = Duration::from_secs(3600);
/// The default time between scheduled cleanups.
pub const DEFAULT_CLEANUP_INTERVAL: Duration = Duration::from_secs(3600);
/// The most entries an erasure refusal names.
const NAMED_HELD: usize = 20;

/// Parses a JSON body into a wire type: unknown or duplicate fields and
/// wrong types are refused, naming the field.
pub(crate) fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ApiError::param("", "body is not UTF-8"))?;
    let value = trailmark_core::parse_strict_json(text)
        .map_err(|e| ApiError::param("", format!("malformed JSON: {e}")))?;
    serde_json::from_value(value).map_err(|e| {
        let message = e.to_string();
        // serde names the field between backticks: "unknown field `x`".
        let path = message
            .split('`')
            .nth(1)
            .filter(|_| message.contains("field"))
            .unwrap_or("")
            .to_owned();
        ApiError::Invalid(vec![Problem {
            index: None,
            path,
            message,
        }])
    })
}

/// A required text field: present, not blank, bounded, no control
/// characters.
fn text(field: &str, value: Option<&str>, max: usize) -> Result<String, ApiError> {
    match value {
        None => Err(ApiError::param(field, "missing")),
        Some(v) if v.trim().is_empty() => Err(ApiError::param(field, "empty")),
        Some(v) if v.len() > max || v.chars().any(char::is_control) => Err(ApiError::param(
            field,
            format!("at most {max} bytes, no control characters"),
        )),
        Some(v) => Ok(v.to_owned()),
    }
}

fn reason(value: &str) -> Result<String, ApiError> {
    text("reason", Some(value), MAX_REASON)
}

/// `TYPE:ID`, split at the first colon.
fn resource(field: &str, value: &str) -> Result<(String, String), ApiError> {
    match value.split_once(':') {
        Some((kind, id)) if !kind.trim().is_empty() && !id.trim().is_empty() => {
            Ok((kind.to_owned(), id.to_owned()))
        }
        _ => Err(ApiError::param(field, "must be TYPE:ID, e.g. Invoice:42")),
    }
}

/// The one tenant a change is about: named, visible to the key, and not
/// `_system` (whose entries are never removed).
fn target_tenant(caller: &Caller, name: &str) -> Result<TenantId, ApiError> {
    let name = text("tenant", Some(name), 200)?;
    let tenant = caller
        .visible(Some(&name))?
        .pop()
        .ok_or_else(|| ApiError::param("tenant", "missing"))?;
    if tenant.is_system() {
        return Err(ApiError::param(
            "tenant",
            "_system's entries are never removed: they record the removals",
        ));
    }
    Ok(tenant)
}

/// The tenants a removal without a tenant reaches: those the key sees,
/// without `_system`.
async fn tenants<S: Store>(
    app: &App<S>,
    caller: Option<&Caller>,
    requested: Option<&str>,
) -> Result<Vec<TenantId>, ApiError> {
    if let Some(name) = requested {
        return match caller {
            Some(c) => Ok(vec![target_tenant(c, name)?]),
            None => Ok(vec![
                TenantId::new(name).map_err(|m| ApiError::param("tenant", m))?,
            ]),
        };
    }
    if let Some(own) = caller.and_then(|c| c.key.tenant.clone()) {
        return Ok(vec![own]);
    }
    Ok(app
        .store
        .heads()
        .await?
        .into_iter()
        .map(|h| h.tenant)
        .filter(|t| !t.is_system())
        .collect())
}

fn policy_out(p: &RetentionPolicy) -> RetentionPolicyOut {
    let (resource_type, action) = match &p.target {
        Target::All => (None, None),
        Target::ResourceType(t) => (Some(t.clone()), None),
        Target::Action(a) => (None, Some(a.clone())),
    };
    RetentionPolicyOut {
        tenant: p.tenant.to_string(),
        target: p.target.label(),
        resource_type,
        action,
        max_age_days: p.max_age_days,
        updated_at: p.updated_at.to_string(),
    }
}

pub(crate) fn hold_out(h: &Hold) -> HoldOut {
    HoldOut {
        id: h.id.clone(),
        tenant: h.tenant.to_string(),
        scope: h.scope.label(),
        reason: h.reason.clone(),
        placed_by: h.placed_by.clone(),
        placed_at: h.placed_at.to_string(),
        released_at: h.released_at.map(|t| t.to_string()),
    }
}

/// What one removal run is, for its records and its report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Erasure,
    Expiry,
}

/// A removal run's running totals.
struct Tally {
    kind: Kind,
    dry_run: bool,
    started_at: Timestamp,
    groups: BTreeMap<(String, Option<String>, String), (u64, u64)>,
    held: u64,
    /// Held entries, for an erasure's refusal: (tenant, seq, hold id).
    held_seqs: Vec<(TenantId, u64, String)>,
    records: Vec<EntryRef>,
}

impl Tally {
    fn new(kind: Kind, dry_run: bool) -> Self {
        Self {
            kind,
            dry_run,
            started_at: now(),
            groups: BTreeMap::new(),
            held: 0,
            held_seqs: Vec::new(),
            records: Vec::new(),
        }
    }

    fn count(&mut self, envelope: &Envelope, bytes: u64) {
        let group = self
            .groups
            .entry((
                envelope.tenant.to_string(),
                envelope.resource_type.clone(),
                envelope.action.clone(),
            ))
            .or_default();
        group.0 += 1;
        group.1 += bytes;
    }

    fn report(self, scrubbed: bool) -> RemovalReport {
        let groups: Vec<RemovalGroup> = self
            .groups
            .into_iter()
            .map(
                |((tenant, resource_type, action), (entries, bytes))| RemovalGroup {
                    tenant,
                    resource_type,
                    action,
                    entries,
                    bytes,
                },
            )
            .collect();
        RemovalReport {
            kind: match self.kind {
                Kind::Erasure => "erasure",
                Kind::Expiry => "expiry",
            }
            .to_owned(),
            dry_run: self.dry_run,
            started_at: self.started_at.to_string(),
            finished_at: now().to_string(),
            entries: groups.iter().map(|g| g.entries).sum(),
            bytes: groups.iter().map(|g| g.bytes).sum(),
            held: self.held,
            groups,
            records: self.records,
            scrubbed,
        }
    }
}

/// Which entries of a walk a removal takes, and what its record says.
struct Selection<'a> {
    walk: Walk,
    /// Whether an entry (with its payload) is to be removed.
    takes: &'a (dyn Fn(&Envelope) -> bool + Send + Sync),
    /// A walk over a whole tenant in a retention run stops once entries
    /// were received this long after every cutoff.
    stop_after: Option<Timestamp>,
    /// What the `_system` record says besides the ranges.
    record: Map<String, Value>,
}

/// The holds in force.
async fn holds_in_force<S: Store>(app: &App<S>) -> Result<Vec<Hold>, ApiError> {
    let mut holds = app.store.holds().await?;
    holds.retain(Hold::in_force);
    Ok(holds)
}

/// Walks one tenant and removes (or, in a dry run, counts) what the
/// selection takes and no hold keeps, one recorded page at a time.
///
/// `holds`: the holds to respect when the caller holds the removal lock
/// for the whole walk (an erasure); `None` takes the lock for each page and
/// reads the holds in force then (a cleanup: a hold placed while it runs
/// waits at most one page, and binds the pages after it).
async fn remove_in<S: Store>(
    app: &App<S>,
    caller: Option<&Caller>,
    tenant: &TenantId,
    holds: Option<&[Hold]>,
    selection: &Selection<'_>,
    run: &mut Tally,
) -> Result<(), ApiError> {
    let mut after = None;
    loop {
        let _page_lock;
        let fresh;
        let holds = if let Some(holds) = holds {
            holds
        } else {
            _page_lock = app.removal_lock().await?;
            fresh = holds_in_force(app).await?;
            fresh.as_slice()
        };
        let page = app
            .store
            .walk(tenant, &selection.walk, after, WALK_PAGE)
            .await?;
        let mut seqs = Vec::new();
        let mut past_cutoff = !page.entries.is_empty();
        for walked in &page.entries {
            let envelope = &walked.envelope;
            if selection
                .stop_after
                .is_none_or(|stop| envelope.received_at < stop)
            {
                past_cutoff = false;
            }
            if !walked.present || !(selection.takes)(envelope) {
                continue;
            }
            if let Some(hold) = holds.iter().find(|h| h.covers(envelope)) {
                run.held += 1;
                if run.held_seqs.len() < NAMED_HELD {
                    run.held_seqs
                        .push((tenant.clone(), envelope.seq.get(), hold.id.clone()));
                }
                continue;
            }
            run.count(envelope, walked.bytes);
            seqs.push(envelope.seq.get());
        }
        if !run.dry_run && !seqs.is_empty() {
            let ranges = RemovalRecord::ranges_of(&seqs);
            debug_assert!(ranges.len() <= MAX_RANGES);
            let mut meta = selection.record.clone();
            meta.insert("ranges".into(), RemovalRecord::ranges_value(&ranges));
            meta.insert("entries".into(), Value::from(seqs.len()));
            let action = match run.kind {
                Kind::Erasure => ERASURE_ACTION,
                Kind::Expiry => EXPIRY_ACTION,
            };
            let record = app
                .audit_entry(
                    caller,
                    action,
                    Some((CHECKPOINT_RESOURCE, tenant.as_str())),
                    meta,
                )
                .await?;
            run.records.push(EntryRef {
                tenant: record.tenant.to_string(),
                seq: record.seq.get(),
            });
            let record = record.seq.get();
            let why = match run.kind {
                Kind::Erasure => Removal::Erased { record },
                Kind::Expiry => Removal::Expired { record },
            };
            app.store.erase(tenant, seqs, why).await?;
        }
        match page.next {
            Some(next) if !past_cutoff => after = Some(next),
            _ => return Ok(()),
        }
    }
}

/// Removes what the run removed from the store's files too; a scrub that
/// must be retried is logged, not an error: the next run retries it, even
/// one that removes nothing (as does the first run of a process, for a
/// server that stopped before its scrub finished).
async fn scrub<S: Store>(app: &App<S>, run: &Tally) -> bool {
    use std::sync::atomic::Ordering;
    let owed = app.scrub_owed.swap(false, Ordering::SeqCst);
    if run.dry_run || (run.groups.is_empty() && !owed) {
        if owed {
            app.scrub_owed.store(true, Ordering::SeqCst);
        }
        return false;
    }
    if run.groups.is_empty() {
        // Owed with nothing removed now: this process's first cleanup, or
        // a scrub that failed. A store that was never removed from has
        // nothing either could have left undone (at 10^7 events the scrub
        // rewrites gigabytes of search index, on every start before this
        // check).
        match ever_removed(app).await {
            Ok(false) => return false,
            Ok(true) => {}
            Err(e) => {
                app.scrub_owed.store(true, Ordering::SeqCst);
                tracing::warn!(
                    "reading whether anything was removed: {e}; the next cleanup retries"
                );
                return false;
            }
        }
    }
    let started = std::time::Instant::now();
    match app.store.scrub().await {
        Ok(()) => {
            tracing::info!(
                millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "scrubbed the store's files after a removal"
            );
            true
        }
        Err(e) => {
            app.scrub_owed.store(true, Ordering::SeqCst);
            tracing::warn!(
                "scrubbing after a removal: {}; the next cleanup retries it",
                e.with_causes()
            );
            false
        }
    }
}

/// Whether `_system` records a removal (an erasure or an expiry). A
/// removal's record is appended before its entries are erased, so a store
/// without one has had nothing removed.
async fn ever_removed<S: Store>(app: &App<S>) -> Result<bool, ApiError> {
    for action in [ERASURE_ACTION, EXPIRY_ACTION] {
        let query = trailmark_store::Query {
            tenants: vec![TenantId::system()],
            limit: 1,
            ..trailmark_store::Query::default()
        }
        .with(trailmark_store::Exact::Action, action);
        if !app.store.query(&query).await?.entries.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// One cleanup: every tenant's policies applied to its entries, holds
/// respected. The caller holds the removal lock.
async fn cleanup<S: Store>(
    app: &App<S>,
    caller: Option<&Caller>,
    only: Option<&str>,
    dry_run: bool,
) -> Result<RemovalReport, ApiError> {
    let at = now();
    let policies = app.store.retention().await?;
    let mut run = Tally::new(Kind::Expiry, dry_run);
    for tenant in tenants(app, caller, only).await? {
        let mine: Vec<RetentionPolicy> = policies
            .iter()
            .filter(|p| p.tenant == tenant)
            .cloned()
            .collect();
        let Some(newest_cutoff) = mine.iter().map(|p| p.cutoff(at)).max() else {
            continue;
        };
        let slack = i64::try_from(WALK_SLACK.as_millis()).unwrap_or(i64::MAX);
        let stop_after =
            Timestamp::from_unix_millis(newest_cutoff.unix_millis().saturating_add(slack));
        let takes = |e: &Envelope| governing(&mine, e).is_some_and(|p| p.expires(e, at));
        let mut record = Map::new();
        record.insert(
            "policies".into(),
            Value::from(
                mine.iter()
                    .map(|p| format!("{} {}d", p.target.label(), p.max_age_days))
                    .collect::<Vec<_>>(),
            ),
        );
        record.insert("judged_at".into(), Value::from(at.to_string()));
        let selection = Selection {
            walk: Walk::All,
            takes: &takes,
            stop_after,
            record,
        };
        remove_in(app, caller, &tenant, None, &selection, &mut run).await?;
    }
    let scrubbed = scrub(app, &run).await;
    Ok(run.report(scrubbed))
}

/// Runs a cleanup and keeps its report (not a dry run's).
pub async fn run_cleanup<S: Store>(
    app: &App<S>,
    caller: Option<&Caller>,
    only: Option<&str>,
    dry_run: bool,
) -> Result<RemovalReport, ApiError> {
    let report = cleanup(app, caller, only, dry_run).await?;
    if !dry_run && let Ok(mut last) = app.last_cleanup.lock() {
        *last = Some(report.clone());
    }
    Ok(report)
}

/// The cleanup inside `serve`: every `interval`, as the server itself.
pub async fn schedule<S: Store>(app: Arc<App<S>>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match run_cleanup(&app, None, None, false).await {
            Ok(r) if r.entries > 0 => tracing::info!(
                entries = r.entries,
                bytes = r.bytes,
                held = r.held,
                "retention cleanup expired payloads"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("retention cleanup failed: {e}; retried next time"),
        }
    }
}

// ---- handlers ----

pub async fn get_retention<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(caller, _): Authorized<Administrator>,
    _: NoQuery,
) -> Result<axum::Json<RetentionOut>, ApiError> {
    retention_view(&app, &caller).await.map(axum::Json)
}

/// What `GET /v1/retention` and the viewer's Retention page show: the
/// policies and holds in force of the tenants the key sees, the interval
/// and the last cleanup.
pub async fn retention_view<S: Store>(
    app: &App<S>,
    caller: &Caller,
) -> Result<RetentionOut, ApiError> {
    let policies = app
        .store
        .retention()
        .await?
        .iter()
        .filter(|p| caller.sees(&p.tenant))
        .map(policy_out)
        .collect();
    let holds = app
        .store
        .holds()
        .await?
        .iter()
        .filter(|h| h.in_force() && caller.sees(&h.tenant))
        .map(hold_out)
        .collect();
    // The last run's report is the whole server's (every tenant's groups
    // and held entries): a key bound to a tenant is not shown it (its own
    // tenant's dry run says what the next would remove there).
    let last_cleanup = if caller.key.tenant.is_some() {
        None
    } else {
        app.last_cleanup.lock().ok().and_then(|l| l.clone())
    };
    Ok(RetentionOut {
        policies,
        holds,
        cleanup_interval_secs: app.settings.cleanup_interval.map(|d| d.as_secs()),
        last_cleanup,
    })
}

/// The tenant and target a policy names.
fn policy_target(
    caller: &Caller,
    tenant: &str,
    resource_type: Option<&String>,
    action: Option<&String>,
) -> Result<(TenantId, Target), ApiError> {
    let tenant = target_tenant(caller, tenant)?;
    let target = match (resource_type, action) {
        (Some(_), Some(_)) => {
            return Err(ApiError::param(
                "action",
                "give resource_type or action, not both (one policy each)",
            ));
        }
        (Some(t), None) => Target::ResourceType(text("resource_type", Some(t), 200)?),
        (None, Some(a)) => Target::Action(text("action", Some(a), 200)?),
        (None, None) => Target::All,
    };
    Ok((tenant, target))
}

pub async fn put_retention<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(caller, _): Authorized<Administrator>,
    _: NoQuery,
    bytes: axum::body::Bytes,
) -> Result<axum::Json<RetentionPolicyOut>, ApiError> {
    let asked: RetentionPolicyIn = body(&bytes)?;
    let (tenant, target) = policy_target(
        &caller,
        &asked.tenant,
        asked.resource_type.as_ref(),
        asked.action.as_ref(),
    )?;
    let days = asked.max_age_days;
    if !(1..=MAX_AGE_DAYS).contains(&days) {
        return Err(ApiError::param(
            "max_age_days",
            format!("must be 1 to {MAX_AGE_DAYS}"),
        ));
    }
    let policy = RetentionPolicy {
        tenant: tenant.clone(),
        target,
        max_age_days: days,
        updated_at: now(),
    };
    let _one_at_a_time = app.removal_lock().await?;
    let mut meta = Map::new();
    meta.insert("target".into(), Value::from(policy.target.label()));
    meta.insert("max_age_days".into(), Value::from(days));
    app.audit(
        Some(&caller),
        "admin.retention.set",
        Some((CHECKPOINT_RESOURCE, tenant.as_str())),
        meta,
    )
    .await?;
    app.store.set_retention(policy.clone()).await?;
    Ok(axum::Json(policy_out(&policy)))
}

pub async fn delete_retention<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(caller, _): Authorized<Administrator>,
    QueryParams(asked): QueryParams<RetentionTarget>,
) -> Result<axum::Json<RetentionPolicyOut>, ApiError> {
    let (tenant, target) = policy_target(
        &caller,
        &asked.tenant,
        asked.resource_type.as_ref(),
        asked.action.as_ref(),
    )?;
    let _one_at_a_time = app.removal_lock().await?;
    let existing = app
        .store
        .retention()
        .await?
        .into_iter()
        .find(|p| p.tenant == tenant && p.target == target);
    let Some(existing) = existing else {
        return Err(ApiError::NotFound(format!(
            "tenant {tenant} has no retention policy for {}",
            target.label()
        )));
    };
    let mut meta = Map::new();
    meta.insert("target".into(), Value::from(target.label()));
    app.audit(
        Some(&caller),
        "admin.retention.remove",
        Some((CHECKPOINT_RESOURCE, tenant.as_str())),
        meta,
    )
    .await?;
    app.store.remove_retention(&tenant, &target).await?;
    Ok(axum::Json(policy_out(&existing)))
}

pub async fn post_cleanup<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(caller, _): Authorized<Administrator>,
    _: NoQuery,
    bytes: axum::body::Bytes,
) -> Result<axum::Json<RemovalReport>, ApiError> {
    let asked: CleanupIn = if bytes.is_empty() {
        CleanupIn::default()
    } else {
        body(&bytes)?
    };
    // A long cleanup outlives the request timeout: it finishes, and its
    // report is the next GET /v1/retention's last_cleanup.
    let report = crate::app::detached(async move {
        run_cleanup(&app, Some(&caller), asked.tenant.as_deref(), asked.dry_run).await
    })
    .await?;
    Ok(axum::Json(report))
}

pub async fn list_holds<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(caller, _): Authorized<Administrator>,
    _: NoQuery,
) -> Result<axum::Json<Holds>, ApiError> {
    let holds = app
        .store
        .holds()
        .await?
        .iter()
        .filter(|h| caller.sees(&h.tenant))
        .map(hold_out)
        .collect();
    Ok(axum::Json(Holds { holds }))
}

pub async fn place_hold<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(caller, _): Authorized<Administrator>,
    _: NoQuery,
    bytes: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let asked: HoldIn = body(&bytes)?;
    let tenant = target_tenant(&caller, &asked.tenant)?;
    let scope = match (&asked.actor, &asked.resource, asked.all) {
        (Some(a), None, None | Some(false)) => HoldScope::Actor(text("actor", Some(a), 200)?),
        (None, Some(r), None | Some(false)) => {
            let (kind, id) = resource("resource", r)?;
            HoldScope::Resource { kind, id }
        }
        (None, None, Some(true)) => HoldScope::All,
        _ => {
            return Err(ApiError::param(
                "actor",
                "give exactly one of actor, resource (TYPE:ID) and all: true",
            ));
        }
    };
    let reason = reason(&asked.reason)?;
    let hold = Hold {
        id: format!("hold_{}", hex::encode(random_bytes::<6>()?)),
        tenant: tenant.clone(),
        scope,
        reason: reason.clone(),
        placed_by: caller.key.id.clone(),
        placed_at: now(),
        released_at: None,
    };
    let _one_at_a_time = app.removal_lock().await?;
    let mut meta = Map::new();
    meta.insert("tenant".into(), Value::from(tenant.to_string()));
    meta.insert("scope".into(), Value::from(hold.scope.label()));
    meta.insert("reason".into(), Value::from(reason));
    app.audit(
        Some(&caller),
        "admin.hold.place",
        Some(("hold", &hold.id)),
        meta,
    )
    .await?;
    app.store.add_hold(hold.clone()).await?;
    Ok((StatusCode::CREATED, axum::Json(hold_out(&hold))))
}

pub async fn release_hold<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(caller, _): Authorized<Administrator>,
    _: NoQuery,
    Path(id): Path<String>,
) -> Result<axum::Json<HoldOut>, ApiError> {
    let _one_at_a_time = app.removal_lock().await?;
    let found = app
        .store
        .holds()
        .await?
        .into_iter()
        .find(|h| h.id == id && caller.sees(&h.tenant));
    let Some(mut hold) = found.filter(Hold::in_force) else {
        return Err(ApiError::NotFound(format!("no hold in force with id {id}")));
    };
    let mut meta = Map::new();
    meta.insert("tenant".into(), Value::from(hold.tenant.to_string()));
    meta.insert("scope".into(), Value::from(hold.scope.label()));
    app.audit(
        Some(&caller),
        "admin.hold.release",
        Some(("hold", &hold.id)),
        meta,
    )
    .await?;
    let at = now();
    app.store.release_hold(&hold.id, at).await?;
    hold.released_at = Some(at);
    Ok(axum::Json(hold_out(&hold)))
}

pub async fn post_erasure<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(caller, _): Authorized<Administrator>,
    _: NoQuery,
    bytes: axum::body::Bytes,
) -> Result<axum::Json<RemovalReport>, ApiError> {
    let asked: ErasureIn = body(&bytes)?;
    let (walk, label) = match (&asked.actor, &asked.resource) {
        (Some(a), None) => {
            let a = text("actor", Some(a), 200)?;
            (Walk::Actor(a.clone()), format!("actor={a}"))
        }
        (None, Some(r)) => {
            let (kind, id) = resource("resource", r)?;
            let label = format!("resource={kind}:{id}");
            (Walk::Resource { kind, id }, label)
        }
        _ => {
            return Err(ApiError::param(
                "actor",
                "give exactly one of actor and resource (TYPE:ID)",
            ));
        }
    };
    let reason = reason(&asked.reason)?;
    let report =
        crate::app::detached(async move { erase(&app, &caller, asked, walk, label, reason).await })
            .await?;
    Ok(axum::Json(report))
}

/// An erasure, under the removal lock from its check to its end.
async fn erase<S: Store>(
    app: &App<S>,
    caller: &Caller,
    asked: ErasureIn,
    walk: Walk,
    label: String,
    reason: String,
) -> Result<RemovalReport, ApiError> {
    let _one_at_a_time = app.removal_lock().await?;
    let holds = holds_in_force(app).await?;
    let tenants = tenants(app, Some(caller), asked.tenant.as_deref()).await?;
    let mut record = Map::new();
    record.insert("selector".into(), Value::from(label));
    record.insert("reason".into(), Value::from(reason));
    let takes = |_: &Envelope| true;
    let selection = Selection {
        walk,
        takes: &takes,
        stop_after: None,
        record,
    };
    // First a dry run over every tenant: an erasure that would reach an
    // entry under hold is refused before anything is removed.
    let mut check = Tally::new(Kind::Erasure, true);
    for tenant in &tenants {
        remove_in(
            app,
            Some(caller),
            tenant,
            Some(&holds),
            &selection,
            &mut check,
        )
        .await?;
    }
    if asked.dry_run {
        // What it would remove, and how many matching entries holds keep
        // (any: the erasure itself is refused whole). Nothing is removed;
        // the request is recorded as any read of the trail is.
        let mut meta = selection.record.clone();
        meta.insert("dry_run".into(), Value::Bool(true));
        app.audit(Some(caller), "read", Some(("route", "/v1/erasures")), meta)
            .await?;
        return Ok(check.report(false));
    }
    if asked.tenant.is_none() {
        one_tenant_reached(&check, &selection.record)?;
    }
    if check.held > 0 {
        let named: Vec<String> = check
            .held_seqs
            .iter()
            .map(|(t, seq, hold)| format!("{t} seq {seq} ({hold})"))
            .collect();
        return Err(ApiError::Conflict(format!(
            "{} matching entries are under a legal hold, so nothing was erased: {}{}; release the hold or narrow the erasure",
            check.held,
            named.join(", "),
            if check.held > named.len() as u64 {
                ", …"
            } else {
                ""
            }
        )));
    }
    let mut run = Tally::new(Kind::Erasure, false);
    for tenant in &tenants {
        remove_in(
            app,
            Some(caller),
            tenant,
            Some(&holds),
            &selection,
            &mut run,
        )
        .await?;
    }
    let scrubbed = scrub(app, &run).await;
    Ok(run.report(scrubbed))
}

/// An actor or record id is one tenant's: an erasure without `tenant` whose
/// matching entries are in several tenants would erase several people or
/// records under one id (user 42 of every customer), and is refused,
/// naming the tenants (its dry run lists them all, with their counts).
fn one_tenant_reached(check: &Tally, record: &Map<String, Value>) -> Result<(), ApiError> {
    let mut reached: std::collections::BTreeSet<String> =
        check.groups.keys().map(|(t, _, _)| t.clone()).collect();
    reached.extend(check.held_seqs.iter().map(|(t, _, _)| t.to_string()));
    if reached.len() < 2 {
        return Ok(());
    }
    let selector = record.get("selector").and_then(Value::as_str).unwrap_or("");
    Err(ApiError::Conflict(format!(
        "{selector} has entries in tenants {}: an id is one tenant's, so these may be different \
         people or records, and nothing was erased; give \"tenant\" for each one that means the \
         same (a dry run without it lists them all)",
        reached.into_iter().collect::<Vec<_>>().join(", ")
    )))
}

/// The most distinct removal records one answer reads to give reasons.
pub const MAX_EXPLAINED_RECORDS: usize = 64;

/// Fills in why each removed event's payload is gone, from the `_system`
/// records of the removals (each read once; at most
/// [`MAX_EXPLAINED_RECORDS`] per answer, the rest keep `reason: null`).
pub async fn explain_removals<'a, S: Store>(
    app: &App<S>,
    events: impl IntoIterator<Item = &'a mut crate::wire::EventOut>,
) -> Result<(), ApiError> {
    let mut reasons: BTreeMap<u64, Option<String>> = BTreeMap::new();
    let system = TenantId::system();
    for event in events {
        let Some(removal) = event.removal.as_mut() else {
            continue;
        };
        let seq = removal.record.seq;
        if !reasons.contains_key(&seq) {
            if reasons.len() >= MAX_EXPLAINED_RECORDS {
                continue;
            }
            let record = app.store.entries(&system, seq, seq + 1).await?;
            let meta = record
                .first()
                .and_then(|e| e.payload.as_ref())
                .and_then(|p| p.get("metadata"))
                .cloned();
            let reason = meta.and_then(|m| match m.get("reason") {
                Some(Value::String(r)) => Some(r.clone()),
                _ => m.get("policies").and_then(Value::as_array).map(|p| {
                    let list: Vec<&str> = p.iter().filter_map(Value::as_str).collect();
                    format!("retention: {}", list.join(", "))
                }),
            });
            reasons.insert(seq, reason);
        }
        removal.reason = reasons.get(&seq).cloned().flatten();
    }
    Ok(())
}
