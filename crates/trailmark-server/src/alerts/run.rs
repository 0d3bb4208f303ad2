//! Detection inside `serve`: ingest offers each newly appended event that
//! a rule counts to a bounded queue (never waiting: a full queue drops the
//! fact and counts it); one task feeds the [`Detector`] and records what
//! fires as an entry in `_system` (action [`ALERT_ACTION`], resource
//! `Alert`/its id), so an alert is in the tamper-evident trail itself.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::{Map, Value};
use trailmark_core::{Envelope, EventId, Outcome, TenantId, Timestamp};
use trailmark_store::{Appended, NewEvent, Store};
use trailmark_wire::{AlertOut, EntryRef};

use super::rules::View;
use super::state::millis_text;
pub use super::state::{ALERT_ACTION, ALERT_RESOURCE};
use super::{Detector, Fact, Firing, RuleKind, Rules};
use crate::app::{App, Caller, Metrics, now, random_bytes};
use crate::error::ApiError;

/// The setting that holds the rules (docs/ALERTS.md), as JSON.
pub const RULES_SETTING: &str = "alert_rules";
/// What a change of the rules is recorded as in `_system`.
pub const RULES_CHANGED: &str = "trailmark.alert_rules.changed";
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
    /// The rules in force and the version of their setting.
    rules: RwLock<(Arc<Rules>, u64)>,
    /// Bumped on every change, so the detector picks the new rules up.
    generation: AtomicU64,
    /// True from the start until the windows have been rebuilt from the
    /// trail (see [`REBUILD_MAX_ENTRIES`]).
    rebuilding: AtomicBool,
}

impl Feed {
    /// The rules in force and the version of their setting.
    pub fn rules(&self) -> (Arc<Rules>, u64) {
        self.rules
            .read()
            .map_or_else(|_| (Arc::new(Rules::default()), 0), |r| r.clone())
    }

    /// Whether the windows are still being rebuilt from the trail (the
    /// start-up read-back, which competes with requests for the disk and
    /// the cores until it ends).
    pub fn rebuilding(&self) -> bool {
        self.rebuilding.load(Ordering::Acquire)
    }

    /// Uses these rules from now on (a newer version only).
    pub fn set_rules(&self, rules: Rules, version: u64) {
        if let Ok(mut r) = self.rules.write()
            && version > r.1
        {
            *r = (Arc::new(rules), version);
            self.generation.fetch_add(1, Ordering::Release);
        }
    }

    /// The events of a batch that a rule counts, as facts, by position:
    /// taken before the batch goes to the store.
    pub fn candidates(&self, batch: &[NewEvent]) -> Vec<(usize, Fact)> {
        let mut out = Vec::new();
        let (rules, _) = self.rules();
        for (i, new) in batch.iter().enumerate() {
            let e = &new.event;
            let failed = e.outcome == Outcome::Failure;
            let tenant = new.tenant();
            let ip = e.context.as_ref().and_then(|c| c.ip);
            let changed = |wanted: &[String]| {
                e.changes
                    .as_ref()
                    .is_some_and(|c| wanted.iter().any(|w| c.contains_key(w)))
            };
            let at = new.received_at.unix_millis();
            let kinds = rules.kinds(&View {
                action: &e.action,
                failed,
                actor: &e.actor.id,
                actor_type: e.actor.kind.as_str(),
                resource_type: e.resource.as_ref().map(|r| r.kind.as_str()),
                changed: &changed,
                at,
                system: tenant == TenantId::system(),
                has_ip: ip.is_some(),
            });
            if kinds.is_empty() {
                continue;
            }
            out.push((
                i,
                Fact {
                    tenant: tenant.as_str().to_owned(),
                    event_id: new.id().to_string(),
                    at,
                    actor: e.actor.id.clone(),
                    action: e.action.clone(),
                    failed,
                    ip: ip.map(|ip| ip.to_string()),
                    username: e.actor.name.clone(),
                    resource_type: e.resource.as_ref().map(|r| r.kind.clone()),
                    statement: statement(e.metadata.as_ref()),
                    actor_type: e.actor.kind.as_str().to_owned(),
                    columns: e
                        .changes
                        .as_ref()
                        .map(|c| c.keys().cloned().collect())
                        .unwrap_or_default(),
                    system: tenant == TenantId::system(),
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

/// The statement a captured row came from: its capture metadata's
/// transaction and statement number (`txid:statement`).
fn statement(metadata: Option<&Map<String, Value>>) -> Option<String> {
    let m = metadata?;
    let txid = m.get("txid")?.as_i64()?;
    let statement = m.get("statement")?.as_i64()?;
    Some(format!("{txid}:{statement}"))
}

/// The rules as stored, and their setting's version; None when never set.
pub async fn stored_rules<S: Store>(app: &App<S>) -> Result<Option<(Rules, u64)>, ApiError> {
    let Some(setting) = app.store.setting(RULES_SETTING).await? else {
        return Ok(None);
    };
    let unreadable = |e: String| {
        ApiError::Store(trailmark_store::StoreError::Unreadable(format!(
            "the stored alert rules: {e}"
        )))
    };
    let value = serde_json::from_str(&setting.value).map_err(|e| unreadable(e.to_string()))?;
    let rules = Rules::from_json(value).map_err(unreadable)?;
    Ok(Some((rules, setting.version)))
}

/// Stores new rules over version `expected` (409 when another change came
/// first), records the change in `_system` (by `caller`, or by Trailmark
/// when it came from `serve --alert-rules`), and puts them in force on
/// this server. Answers the new version.
pub async fn change_rules<S: Store>(
    app: &App<S>,
    caller: Option<&Caller>,
    rules: &Rules,
    expected: u64,
) -> Result<u64, ApiError> {
    let json = serde_json::to_value(rules)
        .map_err(|e| ApiError::Store(trailmark_store::StoreError::Unreadable(e.to_string())))?;
    let mut meta = Map::new();
    meta.insert("rules".into(), json.clone());
    meta.insert("version".into(), Value::from(expected + 1));
    meta.insert(
        "source".into(),
        Value::from(if caller.is_some() { "api" } else { "file" }),
    );
    app.audit(caller, RULES_CHANGED, Some(("AlertRules", "rules")), meta)
        .await?;
    let version = app
        .store
        .put_setting(RULES_SETTING, json.to_string(), expected, now())
        .await?;
    if let Some(feed) = app.alerts.get() {
        feed.set_rules(rules.clone(), version);
    }
    Ok(version)
}

/// The rules `serve` starts with: those of `--alert-rules` (stored, and
/// the change recorded, when they differ from the stored ones), else the
/// stored ones, else the defaults.
async fn starting_rules<S: Store>(app: &App<S>, file: Option<Rules>) -> (Rules, u64) {
    let stored = match stored_rules(app).await {
        Ok(stored) => stored,
        Err(e) => {
            tracing::warn!("reading the stored alert rules failed; using the defaults: {e}");
            None
        }
    };
    match (file, stored) {
        (Some(file), Some((stored, version))) if file == stored => (file, version),
        (Some(file), stored) => {
            let expected = stored.map_or(0, |(_, v)| v);
            // The file's rules judge the record of their own change.
            if let Some(feed) = app.alerts.get()
                && let Ok(mut r) = feed.rules.write()
            {
                *r = (Arc::new(file.clone()), expected);
            }
            match change_rules(app, None, &file, expected).await {
                Ok(version) => (file, version),
                Err(e) => {
                    tracing::warn!("storing the alert rules of --alert-rules failed: {e}");
                    (file, expected)
                }
            }
        }
        (None, Some(stored)) => stored,
        (None, None) => (Rules::default(), 0),
    }
}

/// Detection for `serve`: installs the feed ingest offers to when called
/// (before the returned future is first polled, so that no event appended
/// once `serve` answers misses the feed: on a busy machine a spawned task
/// can start after the first requests), then, run, observes every fact and
/// records each firing in `_system`. `file`: the rules `serve
/// --alert-rules` gave.
pub fn run<S: Store>(
    app: Arc<App<S>>,
    file: Option<Rules>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel(FACT_QUEUE);
    let installed = app
        .alerts
        .set(Feed {
            tx,
            rules: RwLock::new((Arc::new(Rules::default()), 0)),
            generation: AtomicU64::new(0),
            rebuilding: AtomicBool::new(true),
        })
        .is_ok();
    async move {
        if installed {
            detect(app, rx, file).await;
        } else {
            tracing::warn!("alert detection was started twice; the second is ignored");
        }
    }
}

/// [`run`] once the feed is installed: `rx` receives what ingest offers.
async fn detect<S: Store>(
    app: Arc<App<S>>,
    mut rx: tokio::sync::mpsc::Receiver<Fact>,
    file: Option<Rules>,
) {
    let Some(feed) = app.alerts.get() else {
        return;
    };
    let (rules, version) = starting_rules(&app, file).await;
    if let Ok(mut r) = feed.rules.write() {
        *r = (Arc::new(rules.clone()), version);
    }
    let mut generation = feed.generation.load(Ordering::Acquire);
    let mut detector = Detector::new(rules);
    // Rules changed through another server sharing the store.
    let poller = tokio::spawn(poll_rules(Arc::clone(&app)));
    let _stop_poller = AbortOnDrop(poller);
    // Recording an alert is an append (a durable commit): done beside the
    // detector, so counting never waits for the disk; at most
    // RECORDING alerts are being recorded at once.
    let recording = Arc::new(tokio::sync::Semaphore::new(RECORDING));
    // The windows as the trail left them (facts offered meanwhile wait in
    // the queue; those the rebuild counted already are skipped).
    let (mut replayed, owed) = match rebuild(&app, &mut detector).await {
        Ok(done) => done,
        Err(e) => {
            tracing::warn!("rebuilding the alert windows failed; counting afresh: {e}");
            (HashSet::new(), Vec::new())
        }
    };
    for firing in owed {
        raise(&app, &recording, firing).await;
    }
    feed.rebuilding.store(false, Ordering::Release);
    let forget_replayed = tokio::time::Instant::now() + REPLAYED_KEPT;
    let mut known_ips = HashSet::new();
    while let Some(fact) = rx.recv().await {
        if !replayed.is_empty() {
            if replayed.remove(&fact.event_id) {
                // Counted by the rebuild already: observed, once.
                app.metrics
                    .alert_facts_observed
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if tokio::time::Instant::now() > forget_replayed {
                replayed = HashSet::new();
            }
        }
        let now_generation = feed.generation.load(Ordering::Acquire);
        if now_generation != generation {
            generation = now_generation;
            detector.set_rules(feed.rules().0.as_ref().clone());
        }
        for firing in detector.observe(&fact) {
            raise(&app, &recording, firing).await;
        }
        if fact.kinds(detector.rules()).contains(&RuleKind::NewIp)
            && unseen_ip(&app, &fact, &mut known_ips).await
            && let Some(firing) = detector.new_ip(&fact)
        {
            raise(&app, &recording, firing).await;
        }
        app.metrics
            .alert_facts_observed
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// At most this many (tenant, actor, IP) seen together are remembered;
/// past it the memory starts again (the trail answers what it forgot).
pub const KNOWN_IPS: usize = 100_000;

/// Whether the trail holds no other event of this actor from this IP (the
/// trail is the memory of which IPs an actor used: nothing to rebuild).
async fn unseen_ip<S: Store>(
    app: &App<S>,
    fact: &Fact,
    known: &mut HashSet<(String, String, String)>,
) -> bool {
    let Some(ip) = &fact.ip else {
        return false;
    };
    let pair = (fact.tenant.clone(), fact.actor.clone(), ip.clone());
    if known.contains(&pair) {
        return false;
    }
    let Ok(tenant) = TenantId::new(&fact.tenant) else {
        return false;
    };
    let query = trailmark_store::Query {
        tenants: vec![tenant],
        limit: 2,
        ..trailmark_store::Query::default()
    }
    .with(trailmark_store::Exact::Actor, fact.actor.as_str())
    .with(trailmark_store::Exact::Ip, ip.as_str());
    let found = match app.store.query(&query).await {
        Ok(page) => page.entries,
        Err(e) => {
            tracing::warn!("looking up an actor's IPs failed: {e}");
            return false;
        }
    };
    if known.len() >= KNOWN_IPS {
        known.clear();
    }
    known.insert(pair);
    found.iter().all(|e| {
        e.envelope()
            .is_ok_and(|env| env.id.to_string() == fact.event_id)
    })
}

/// Records a firing beside the detector (at most [`RECORDING`] at once).
async fn raise<S: Store>(
    app: &Arc<App<S>>,
    recording: &Arc<tokio::sync::Semaphore>,
    firing: Firing,
) {
    let Ok(permit) = Arc::clone(recording).acquire_owned().await else {
        return;
    };
    let app = Arc::clone(app);
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

/// At start, at most this many entries are read back to rebuild the
/// windows (newest first per tenant); past it, older events are not
/// counted.
pub const REBUILD_MAX_ENTRIES: usize = 2_000_000;
/// Entries read per store call during the rebuild.
const REBUILD_PAGE: u64 = 1000;
/// How long the ids of the events the rebuild counted are kept, to skip
/// them when they are offered live as well.
const REPLAYED_KEPT: std::time::Duration = std::time::Duration::from_secs(600);

/// What a stored entry tells the rules (its envelope, and its payload
/// while it has one), when one counts it.
fn stored_fact(
    env: &Envelope,
    payload: Option<&Map<String, Value>>,
    rules: &Rules,
) -> Option<Fact> {
    let get = |key: &str| payload.and_then(|p| p.get(key));
    let fact = Fact {
        tenant: env.tenant.as_str().to_owned(),
        event_id: env.id.to_string(),
        at: env.received_at.unix_millis(),
        actor: env.actor_id.clone(),
        action: env.action.clone(),
        failed: env.outcome == Outcome::Failure,
        ip: get("context")
            .and_then(|c| c.get("ip"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        username: get("actor_name").and_then(Value::as_str).map(str::to_owned),
        resource_type: env.resource_type.clone(),
        statement: statement(get("metadata").and_then(Value::as_object)),
        actor_type: env.actor_type.as_str().to_owned(),
        columns: get("changes")
            .and_then(Value::as_object)
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default(),
        system: env.tenant == TenantId::system(),
    };
    (!fact.kinds(rules).is_empty()).then_some(fact)
}

/// The facts of a page of entries that the rules count, received from
/// `cutoff` on, in order (a damaged entry fails the page, as reading it
/// does). Only the entries that a rule could count by their envelope
/// have their payload parsed.
fn page_facts(
    page: Vec<trailmark_store::RawEntry>,
    rules: &Rules,
    cutoff: i64,
) -> Result<Vec<Fact>, ApiError> {
    let mut facts = Vec::new();
    for raw in page {
        let env = Envelope::from_leaf_bytes(&raw.envelope_bytes).map_err(|e| {
            ApiError::Store(trailmark_store::StoreError::Unreadable(format!(
                "an entry's envelope: {e}"
            )))
        })?;
        let at = env.received_at.unix_millis();
        let nothing = |_: &[String]| false;
        let view = View {
            action: &env.action,
            failed: env.outcome == Outcome::Failure,
            actor: &env.actor_id,
            actor_type: env.actor_type.as_str(),
            resource_type: env.resource_type.as_deref(),
            changed: &nothing,
            at,
            system: env.tenant == TenantId::system(),
            has_ip: false,
        };
        if at < cutoff || !rules.might_count(&view) {
            continue;
        }
        if let Some(fact) = stored_fact(&env, raw.payload()?.as_ref(), rules) {
            facts.push(fact);
        }
    }
    Ok(facts)
}

/// The alerts recorded since `since` (Unix ms), as (rule, tenant, key,
/// last event's time): what the rebuild must not raise again.
async fn recorded_alerts<S: Store>(
    app: &App<S>,
    since: i64,
) -> Result<HashSet<(String, String, String, String)>, ApiError> {
    let mut query = trailmark_store::Query {
        since: Timestamp::from_unix_millis(since),
        limit: 1000,
        ..trailmark_store::Query::default()
    };
    let mut out = HashSet::new();
    for _ in 0..super::deliver::RESUME_MAX_ALERTS / 1000 {
        let (alerts, next) = super::state::raised_page(app, query.clone()).await?;
        out.extend(
            alerts
                .into_iter()
                .map(|a| (a.rule, a.tenant, a.key, a.last_received_at)),
        );
        match next {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    Ok(out)
}

/// Counts again the events of every tenant received within the longest
/// window of the rules, oldest first, so that a burst spanning a restart
/// fires once: answers the ids counted, and the firings of the replay that
/// no recorded alert matches (raised, then lost to a crash before they
/// were recorded), to raise now.
async fn rebuild<S: Store>(
    app: &App<S>,
    detector: &mut Detector,
) -> Result<(HashSet<String>, Vec<Firing>), ApiError> {
    let rules = detector.rules().clone();
    let Some(span) = rules.longest_window_millis() else {
        return Ok((HashSet::new(), Vec::new()));
    };
    let cutoff = now().unix_millis() - span;
    let longest_cooldown = rules.longest_cooldown_millis();
    let recorded = recorded_alerts(app, cutoff - longest_cooldown).await?;
    let (mut counted, mut owed, mut read) = (HashSet::new(), Vec::new(), 0usize);
    for head in app.store.heads().await? {
        if head.tenant == TenantId::system() {
            continue;
        }
        // Back, a page at a time, reading only each page's first entry,
        // to the page that starts before the window; then forward from
        // there, oldest first, a page at a time. Only the facts of one
        // page are held, and they are made on a blocking thread: parsing
        // up to REBUILD_MAX_ENTRIES entries on a runtime worker held up
        // the requests it serves for as long.
        let end = head.size.get();
        let mut start = end;
        while start > 0 && read < REBUILD_MAX_ENTRIES {
            let from = start.saturating_sub(REBUILD_PAGE);
            read += usize::try_from(start - from).unwrap_or(usize::MAX);
            start = from;
            let first = app
                .store
                .raw_entries(&head.tenant, start, start + 1)
                .await?;
            let older = first.first().is_none_or(|e| {
                Envelope::from_leaf_bytes(&e.envelope_bytes)
                    .is_ok_and(|env| env.received_at.unix_millis() < cutoff)
            });
            if older {
                break;
            }
        }
        while start < end {
            let to = end.min(start + REBUILD_PAGE);
            let page = app.store.raw_entries(&head.tenant, start, to).await?;
            start = to;
            let rules = rules.clone();
            let facts = tokio::task::spawn_blocking(move || page_facts(page, &rules, cutoff))
                .await
                .map_err(|e| {
                    ApiError::Store(trailmark_store::StoreError::Unreadable(format!(
                        "rebuilding the alert windows: {e}"
                    )))
                })??;
            for fact in facts {
                counted.insert(fact.event_id.clone());
                for firing in detector.observe(&fact) {
                    let known = (
                        firing.rule.name().to_owned(),
                        firing.tenant.clone(),
                        firing.key.clone(),
                        millis_text(firing.last_at),
                    );
                    if !recorded.contains(&known) {
                        owed.push(firing);
                    }
                }
            }
        }
    }
    if read > 0 {
        tracing::info!(
            entries = read,
            counted = counted.len(),
            "alert windows rebuilt from the trail"
        );
    }
    Ok((counted, owed))
}

/// Alerts being recorded at once; more wait (and so does counting).
pub const RECORDING: usize = 64;

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads the stored rules every [`super::deliver::SETTINGS_POLL`] and puts
/// a newer version in force.
async fn poll_rules<S: Store>(app: Arc<App<S>>) {
    let mut every = tokio::time::interval(super::deliver::SETTINGS_POLL);
    loop {
        every.tick().await;
        match stored_rules(&app).await {
            Ok(Some((rules, version))) => {
                if let Some(feed) = app.alerts.get() {
                    feed.set_rules(rules, version);
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("reading the alert rules failed: {e}"),
        }
    }
}

/// One line saying what an alert is about.
fn summary(firing: &Firing) -> String {
    let (first, last) = (millis_text(firing.first_at), millis_text(firing.last_at));
    let count = firing.events.len();
    let tenant = &firing.tenant;
    let actor = &firing.actor;
    let of = if firing.resource_types.is_empty() {
        String::new()
    } else {
        format!(" on {}", firing.resource_types.join(", "))
    };
    match firing.rule {
        RuleKind::PrivilegeChanges => format!(
            "privilege change in tenant {tenant} by actor {actor}{of} at {last} ({count} event)"
        ),
        RuleKind::ExportVolume => format!(
            "{count} exports in tenant {tenant} by actor {actor} between {first} and {last}"
        ),
        RuleKind::OffHours => {
            format!("actor {actor} active in tenant {tenant} outside working hours at {last}")
        }
        RuleKind::NewIp => format!(
            "privileged actor {actor} in tenant {tenant} from an IP it never used before ({}) at {last}",
            firing.key
        ),
        RuleKind::TrailmarkEvents => format!(
            "Trailmark: {} by {actor} at {last}",
            firing.key.trim_start_matches("action=")
        ),
        RuleKind::CaptureWal => {
            if firing.key.ends_with(super::rules::SLOT_LOST) {
                format!(
                    "capture gap: PostgreSQL removed WAL the capture slot still needed, seen at {last}; changes since the slot's confirmed position were not captured (docs/CAPTURE.md)"
                )
            } else {
                format!(
                    "capture: PostgreSQL keeps more WAL for the capture slot than capture_wal.retained_bytes allows, seen at {last}; the drainer is stalled or behind (docs/CAPTURE.md)"
                )
            }
        }
        RuleKind::CaptureOutbox => format!(
            "capture: a change has waited in the capture outbox longer than capture_outbox.oldest_seconds allows, seen at {last}; the drainer is stalled or behind, and the outbox grows in the application's database (docs/CAPTURE.md)"
        ),
        RuleKind::FailedLogins => format!(
            "{count} failed logins in tenant {tenant} for {} between {first} and {last}",
            firing.key
        ),
        RuleKind::MassDelete => format!(
            "{count} deletions in tenant {tenant} by actor {} ({}) of {} between {first} and {last}",
            firing.actor,
            firing.key,
            if firing.resource_types.is_empty() {
                "records".to_owned()
            } else {
                firing.resource_types.join(", ")
            }
        ),
    }
}

/// The `_system` entry of one alert; hands it to delivery.
async fn record<S: Store>(app: &App<S>, firing: &Firing) -> Result<(), crate::ApiError> {
    let id = EventId::new_v7(now(), random_bytes()?).to_string();
    let mut meta = Map::new();
    meta.insert("rule".into(), Value::from(firing.rule.name()));
    meta.insert("tenant".into(), Value::from(firing.tenant.as_str()));
    meta.insert("key".into(), Value::from(firing.key.as_str()));
    meta.insert("actor".into(), Value::from(firing.actor.as_str()));
    meta.insert(
        "resource_types".into(),
        Value::from(firing.resource_types.clone()),
    );
    meta.insert("count".into(), Value::from(firing.events.len()));
    let named = firing.events.len().saturating_sub(MAX_ALERT_EVENTS);
    let events = firing.events[named..].to_vec();
    meta.insert("events".into(), Value::from(events.clone()));
    let (first, last) = (millis_text(firing.first_at), millis_text(firing.last_at));
    meta.insert("first_received_at".into(), Value::from(first.as_str()));
    meta.insert("last_received_at".into(), Value::from(last.as_str()));
    let summary = summary(firing);
    meta.insert("summary".into(), Value::from(summary.as_str()));
    let at = now();
    let appended = app
        .audit_at(
            None,
            ALERT_ACTION,
            Some((ALERT_RESOURCE, &id)),
            meta,
            Outcome::Success,
            at,
        )
        .await?;
    if let Some(deliveries) = app.webhooks.get() {
        let alert = AlertOut {
            id: id.clone(),
            rule: firing.rule.name().to_owned(),
            tenant: firing.tenant.clone(),
            key: firing.key.clone(),
            count: firing.events.len() as u64,
            events,
            first_received_at: first,
            last_received_at: last,
            raised_at: at.to_string(),
            summary,
            status: "open".into(),
            acknowledged: None,
            resolved: None,
            deliveries: Vec::new(),
            entry: EntryRef {
                tenant: TenantId::system().to_string(),
                seq: appended.seq.get(),
            },
        };
        deliveries.raised(alert, &app.metrics);
    }
    tracing::warn!(
        rule = firing.rule.name(),
        tenant = firing.tenant,
        key = firing.key,
        alert = id,
        "alert raised"
    );
    Ok(())
}
