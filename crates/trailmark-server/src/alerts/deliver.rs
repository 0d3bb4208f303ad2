//! Webhook endpoints and the delivery of alerts to them.
//!
//! The endpoints are a setting kept beside the trail ([`WEBHOOKS_SETTING`]);
//! each change is recorded in `_system` (without the secrets). Every
//! attempt to deliver an alert is an entry on the alert's resource
//! ([`DELIVERY`]): the delivery log is the alert's history, and after a
//! restart, delivery resumes from it (attempts pending, and alerts never
//! attempted). Every attempt of one alert to one webhook carries the same
//! `webhook-id` ([`webhook_id`]), so receivers deduplicate: delivery is at
//! least once.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::time::Instant;
use trailmark_core::{Outcome, Timestamp};
use trailmark_store::{Query, Store};
use trailmark_wire::{AlertOut, WebhookIn, WebhookOut};

use super::WebhookSecret;
use super::state::{self, ALERT_RESOURCE, DELIVERY, clip, millis_text, webhook_id};
use crate::app::{App, now};
use crate::error::ApiError;

/// The setting that holds the endpoints.
pub const WEBHOOKS_SETTING: &str = "webhooks";
/// At most this many endpoints.
pub const MAX_WEBHOOKS: usize = 20;
/// The most attempts one endpoint may ask for per alert.
pub const MAX_ATTEMPTS: u32 = 30;
pub const DEFAULT_ATTEMPTS: u32 = 12;
pub const DEFAULT_FIRST_RETRY_SECS: u64 = 5;
pub const DEFAULT_MAX_RETRY_SECS: u64 = 3600;
/// The longest wait between two attempts an endpoint may ask for.
pub const MAX_RETRY_SECS: u64 = 86_400;
/// Deliveries waiting for their time; past it, new ones are dropped (and
/// counted): the alert stays in the trail and a restart resumes it.
pub const PENDING: usize = 10_000;
/// Attempts in flight at once.
pub const DELIVERING: usize = 16;
/// One attempt's limit: connecting, sending and the answer.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// At start, alerts raised within this many days are looked at for
/// deliveries to resume …
pub const RESUME_DAYS: i64 = 7;
/// … at most this many of them, newest first.
pub const RESUME_MAX_ALERTS: usize = 10_000;
/// How often a server reads the settings again (a change made through
/// another server sharing the store takes effect within this).
pub const SETTINGS_POLL: Duration = Duration::from_secs(5);
/// The longest URL an endpoint may have.
const MAX_URL: usize = 2000;
/// The longest error text an attempt's entry keeps.
const MAX_ERROR: usize = 200;

/// One endpoint as stored (the secret too: it signs every delivery).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub name: String,
    pub url: String,
    pub format: Format,
    pub secret: String,
    pub rules: Vec<String>,
    pub tenants: Vec<String>,
    pub max_attempts: u32,
    pub first_retry_secs: u64,
    pub max_retry_secs: u64,
    /// Unix milliseconds: alerts raised from then on go to it.
    pub since: i64,
}

/// The body a delivery carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `{"type": "alert.raised", "timestamp", "data": {…the alert}}`.
    Standard,
    /// `{"text": "…"}`, which Slack's incoming webhooks (and chat tools
    /// copying them) post as a message.
    Slack,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    webhooks: Vec<Webhook>,
}

impl Webhook {
    /// Whether an alert goes to this endpoint.
    pub fn takes(&self, alert: &AlertOut) -> bool {
        let raised = Timestamp::parse(&alert.raised_at).map_or(i64::MIN, Timestamp::unix_millis);
        raised >= self.since
            && (self.rules.is_empty() || self.rules.contains(&alert.rule))
            && (self.tenants.is_empty() || self.tenants.contains(&alert.tenant))
    }

    /// The wait after failed attempt `attempt` (1 for the first):
    /// `first_retry_secs` doubled per attempt up to `max_retry_secs`, then
    /// ±20% at random, so that endpoints failing together are not retried
    /// together.
    pub fn delay(&self, attempt: u32) -> Duration {
        let doubled = self
            .first_retry_secs
            .saturating_mul(1u64 << attempt.saturating_sub(1).min(40));
        #[allow(clippy::cast_precision_loss)] // at most MAX_RETRY_SECS
        let base = doubled.min(self.max_retry_secs).max(1) as f64;
        let random = crate::app::random_bytes::<2>().map_or(0x8000, u16::from_be_bytes);
        let jitter = 0.8 + 0.4 * f64::from(random) / f64::from(u16::MAX);
        Duration::from_secs_f64(base * jitter)
    }

    pub fn out(&self, with_secret: bool) -> WebhookOut {
        use sha2::{Digest as _, Sha256};
        WebhookOut {
            name: self.name.clone(),
            url: self.url.clone(),
            format: match self.format {
                Format::Standard => "standard",
                Format::Slack => "slack",
            }
            .into(),
            rules: self.rules.clone(),
            tenants: self.tenants.clone(),
            max_attempts: self.max_attempts,
            first_retry_secs: self.first_retry_secs,
            max_retry_secs: self.max_retry_secs,
            since: millis_text(self.since),
            secret_sha256: hex::encode(&Sha256::digest(self.secret.as_bytes())[..8]),
            secret: with_secret.then(|| self.secret.clone()),
        }
    }

    /// Where an endpoint given by `PUT /v1/webhooks` is, and its format,
    /// checked.
    fn place(i: usize, input: &WebhookIn) -> Result<(String, Format), ApiError> {
        let field = |f: &str, m: String| ApiError::param(&format!("webhooks[{i}].{f}"), m);
        let url = input.url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://"))
            || url.len() > MAX_URL
            || url.chars().any(char::is_whitespace)
        {
            return Err(field(
                "url",
                format!("give an http:// or https:// URL of at most {MAX_URL} characters"),
            ));
        }
        let format = match input.format.as_deref() {
            None | Some("standard") => Format::Standard,
            Some("slack") => Format::Slack,
            Some(other) => {
                return Err(field(
                    "format",
                    format!("{other:?}: give standard or slack"),
                ));
            }
        };
        Ok((url.to_owned(), format))
    }

    /// One endpoint as `PUT /v1/webhooks` gives it, checked; `present` is
    /// the endpoint of that name before (its secret and start are kept
    /// unless the URL changes or a secret is given). Answers whether a
    /// new secret was made.
    fn from_input(
        i: usize,
        input: WebhookIn,
        present: Option<&Self>,
        at: i64,
    ) -> Result<(Self, bool), ApiError> {
        let field = |f: &str, m: String| ApiError::param(&format!("webhooks[{i}].{f}"), m);
        let (url, format) = Self::place(i, &input)?;
        let name_ok = !input.name.is_empty()
            && input.name.len() <= 64
            && input
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(field(
                "name",
                "give 1 to 64 of a-z, 0-9, '-' and '_'".into(),
            ));
        }
        let list = |f: &str, v: Option<Vec<String>>| -> Result<Vec<String>, ApiError> {
            let v = v.unwrap_or_default();
            if v.iter().any(|s| s.trim().is_empty() || s.len() > 200) || v.len() > 100 {
                return Err(field(
                    f,
                    "give at most 100 names, none empty; leave it out for all".into(),
                ));
            }
            Ok(v)
        };
        let rules = list("rules", input.rules)?;
        if let Some(bad) = rules
            .iter()
            .find(|r| !super::RuleKind::ALL.iter().any(|k| k.name() == r.as_str()))
        {
            return Err(field(
                "rules",
                format!(
                    "{bad:?} is not a rule; the rules are {}",
                    super::RuleKind::ALL.map(super::RuleKind::name).join(", ")
                ),
            ));
        }
        let tenants = list("tenants", input.tenants)?;
        let max_attempts = input.max_attempts.unwrap_or(DEFAULT_ATTEMPTS);
        if !(1..=MAX_ATTEMPTS).contains(&max_attempts) {
            return Err(field(
                "max_attempts",
                format!("must be 1 to {MAX_ATTEMPTS}"),
            ));
        }
        let first = input.first_retry_secs.unwrap_or(DEFAULT_FIRST_RETRY_SECS);
        let max = input
            .max_retry_secs
            .unwrap_or(DEFAULT_MAX_RETRY_SECS.max(first));
        if !(1..=MAX_RETRY_SECS).contains(&first) {
            return Err(field(
                "first_retry_secs",
                format!("must be 1 to {MAX_RETRY_SECS}"),
            ));
        }
        if !(first..=MAX_RETRY_SECS).contains(&max) {
            return Err(field(
                "max_retry_secs",
                format!("must be first_retry_secs ({first}) to {MAX_RETRY_SECS}"),
            ));
        }
        let same_place = present.filter(|p| p.url == url);
        let (secret, made) = match (input.secret, same_place) {
            (Some(text), _) => {
                let parsed = WebhookSecret::parse(&text).map_err(|m| field("secret", m))?;
                (parsed.to_text(), false)
            }
            (None, Some(p)) => (p.secret.clone(), false),
            (None, None) => (
                WebhookSecret::generate()
                    .map_err(ApiError::Forbidden)?
                    .to_text(),
                true,
            ),
        };
        Ok((
            Self {
                name: input.name,
                url,
                format,
                secret,
                rules,
                tenants,
                max_attempts,
                first_retry_secs: first,
                max_retry_secs: max,
                since: same_place.map_or(at, |p| p.since),
            },
            made,
        ))
    }
}

/// The endpoints as stored, and the setting's version (0: never set).
pub async fn load<S: Store>(app: &App<S>) -> Result<(Vec<Webhook>, u64), ApiError> {
    let Some(setting) = app.store.setting(WEBHOOKS_SETTING).await? else {
        return Ok((Vec::new(), 0));
    };
    let stored: Stored = serde_json::from_str(&setting.value).map_err(|e| {
        ApiError::Store(trailmark_store::StoreError::Unreadable(format!(
            "the stored webhooks: {e}"
        )))
    })?;
    Ok((stored.webhooks, setting.version))
}

/// Checks a whole new list of endpoints against the present one; answers
/// it with the names whose secret was made now.
pub fn checked(
    inputs: Vec<WebhookIn>,
    present: &[Webhook],
) -> Result<(Vec<Webhook>, Vec<String>), ApiError> {
    if inputs.len() > MAX_WEBHOOKS {
        return Err(ApiError::param(
            "webhooks",
            format!("at most {MAX_WEBHOOKS} endpoints"),
        ));
    }
    let at = now().unix_millis();
    let mut out: Vec<Webhook> = Vec::new();
    let mut made = Vec::new();
    for (i, input) in inputs.into_iter().enumerate() {
        if out.iter().any(|w| w.name == input.name) {
            return Err(ApiError::param(
                &format!("webhooks[{i}].name"),
                format!("{:?} is given twice: names are unique", input.name),
            ));
        }
        let before = present.iter().find(|p| p.name == input.name);
        let (hook, new_secret) = Webhook::from_input(i, input, before, at)?;
        if new_secret {
            made.push(hook.name.clone());
        }
        out.push(hook);
    }
    Ok((out, made))
}

/// Stores a new list over version `expected` (409 when another change
/// came first); answers the new version.
pub async fn store<S: Store>(
    app: &App<S>,
    hooks: &[Webhook],
    expected: u64,
) -> Result<u64, ApiError> {
    let value = serde_json::to_string(&Stored {
        webhooks: hooks.to_vec(),
    })
    .map_err(|e| ApiError::Store(trailmark_store::StoreError::Unreadable(e.to_string())))?;
    Ok(app
        .store
        .put_setting(WEBHOOKS_SETTING, value, expected, now())
        .await?)
}

/// One delivery waiting for its time.
#[derive(Debug)]
struct Job {
    alert: Arc<AlertOut>,
    webhook: String,
    /// The attempt it will be (1 for the first).
    attempt: u32,
    due: Instant,
}

/// Where alerts are handed for delivery, and the endpoints this server
/// delivers to (read again every [`SETTINGS_POLL`], and at once after a
/// change through this server).
#[derive(Debug)]
pub struct Deliveries {
    tx: tokio::sync::mpsc::Sender<Job>,
    /// The one HTTP client every attempt shares (connections are reused).
    agent: ureq::Agent,
    webhooks: RwLock<(Arc<Vec<Webhook>>, u64)>,
}

impl Deliveries {
    pub fn webhooks(&self) -> (Arc<Vec<Webhook>>, u64) {
        self.webhooks
            .read()
            .map_or_else(|_| (Arc::default(), 0), |w| w.clone())
    }

    /// Uses this list of endpoints from now on (a newer version only).
    pub fn set(&self, hooks: Vec<Webhook>, version: u64) {
        if let Ok(mut w) = self.webhooks.write()
            && version > w.1
        {
            *w = (Arc::new(hooks), version);
        }
    }

    fn hand(&self, job: Job, metrics: &crate::app::Metrics) {
        if self.tx.try_send(job).is_err() {
            metrics
                .webhook_deliveries_dropped
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!("the webhook delivery queue is full; a restart resumes the delivery");
        }
    }

    /// Delivers a new alert to every endpoint that takes it.
    pub fn raised(&self, alert: AlertOut, metrics: &crate::app::Metrics) {
        self.again(alert, None, metrics);
    }

    /// Delivers an alert (again, from the first attempt) to one endpoint,
    /// or to every endpoint that takes it.
    pub fn again(&self, alert: AlertOut, webhook: Option<&str>, metrics: &crate::app::Metrics) {
        let alert = Arc::new(alert);
        for hook in self.webhooks().0.iter() {
            if hook.takes(&alert) && webhook.is_none_or(|w| w == hook.name) {
                self.hand(
                    Job {
                        alert: Arc::clone(&alert),
                        webhook: hook.name.clone(),
                        attempt: 1,
                        due: Instant::now(),
                    },
                    metrics,
                );
            }
        }
    }
}

/// What a delivery carries.
pub fn body(hook: &Webhook, alert: &AlertOut) -> Vec<u8> {
    let value = match hook.format {
        Format::Standard => json!({
            "type": "alert.raised",
            "timestamp": alert.raised_at,
            "data": {
                "id": alert.id,
                "rule": alert.rule,
                "tenant": alert.tenant,
                "key": alert.key,
                "count": alert.count,
                "events": alert.events,
                "first_received_at": alert.first_received_at,
                "last_received_at": alert.last_received_at,
                "raised_at": alert.raised_at,
                "summary": alert.summary,
                "entry": alert.entry,
            },
        }),
        Format::Slack => json!({"text": format!("Trailmark alert: {}", alert.summary)}),
    };
    value.to_string().into_bytes()
}

/// One attempt: the HTTP status, or why there was none.
fn post(
    agent: &ureq::Agent,
    url: &str,
    headers: [(&'static str, String); 3],
    body: &[u8],
) -> Result<u16, String> {
    let mut request = agent
        .post(url)
        .header("content-type", "application/json")
        .header(
            "user-agent",
            concat!("trailmark/", env!("CARGO_PKG_VERSION")),
        );
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.send(body).map_err(|e| e.to_string())?;
    Ok(response.status().as_u16())
}

/// Makes one attempt, records it on the alert, and hands the next one
/// back when this one failed and attempts are left.
async fn attempt<S: Store>(app: Arc<App<S>>, job: Job) {
    let Some(deliveries) = app.webhooks.get() else {
        return;
    };
    let Some(hook) = deliveries
        .webhooks()
        .0
        .iter()
        .find(|h| h.name == job.webhook)
        .cloned()
    else {
        // The endpoint was removed since: nothing to deliver to.
        return;
    };
    let secret = match WebhookSecret::parse(&hook.secret) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(webhook = hook.name, "the stored secret is unusable: {e}");
            return;
        }
    };
    let id = webhook_id(&job.alert.id, &hook.name);
    let body = body(&hook, &job.alert);
    let headers = secret.headers(&id, now().unix_millis() / 1000, &body);
    let url = hook.url.clone();
    let agent = deliveries.agent.clone();
    app.metrics.webhook_attempts.fetch_add(1, Ordering::Relaxed);
    let answer = tokio::task::spawn_blocking(move || post(&agent, &url, headers, &body))
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    let delivered = matches!(answer, Ok(status) if (200..300).contains(&status));
    let next = (!delivered && job.attempt < hook.max_attempts).then(|| hook.delay(job.attempt));
    let result = if delivered {
        app.metrics
            .webhook_delivered
            .fetch_add(1, Ordering::Relaxed);
        "delivered"
    } else if next.is_some() {
        "failed"
    } else {
        app.metrics.webhook_dead.fetch_add(1, Ordering::Relaxed);
        "dead"
    };
    let mut meta = Map::new();
    meta.insert("webhook".into(), Value::from(hook.name.as_str()));
    meta.insert("webhook_id".into(), Value::from(id));
    meta.insert("attempt".into(), Value::from(job.attempt));
    meta.insert("result".into(), Value::from(result));
    match &answer {
        Ok(status) => {
            meta.insert("status".into(), Value::from(*status));
        }
        Err(e) => {
            meta.insert("error".into(), Value::from(clip(e.clone(), MAX_ERROR)));
        }
    }
    if let Some(wait) = next {
        let at = now().unix_millis() + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2);
        meta.insert("next_attempt_at".into(), Value::from(millis_text(at)));
    }
    let outcome = if delivered {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    if let Err(e) = app
        .audit_outcome(
            None,
            DELIVERY,
            Some((ALERT_RESOURCE, &job.alert.id)),
            meta,
            outcome,
        )
        .await
    {
        tracing::warn!(
            alert = job.alert.id,
            "recording a delivery attempt failed: {e}"
        );
    }
    if let Some(wait) = next {
        deliveries.hand(
            Job {
                alert: job.alert,
                webhook: job.webhook,
                attempt: job.attempt + 1,
                due: Instant::now() + wait,
            },
            &app.metrics,
        );
    }
}

/// After a start: every alert of the last [`RESUME_DAYS`] whose delivery
/// to a present endpoint is unfinished (never attempted, or failed with
/// attempts left) is handed on, at the time its last attempt named.
async fn resume<S: Store>(app: &App<S>, deliveries: &Deliveries) -> Result<usize, ApiError> {
    let hooks = deliveries.webhooks().0;
    if hooks.is_empty() {
        return Ok(0);
    }
    let since = now().unix_millis() - RESUME_DAYS * 86_400_000;
    let mut query = Query {
        since: Timestamp::from_unix_millis(since),
        limit: 100,
        ..Query::default()
    };
    let (mut seen, mut handed) = (0, 0);
    loop {
        let (raised, next) = state::raised_page(app, query.clone()).await?;
        for alert in raised {
            seen += 1;
            // The history is read only for alerts an endpoint takes.
            if !hooks.iter().any(|h| h.takes(&alert)) {
                continue;
            }
            let Some(alert) = state::alert(app, &alert.id).await? else {
                continue;
            };
            let alert = Arc::new(alert);
            for hook in hooks.iter().filter(|h| h.takes(&alert)) {
                let done = alert.deliveries.iter().find(|d| d.webhook == hook.name);
                let (attempt, due) = match done {
                    None => (1, Instant::now()),
                    Some(d) if d.state == "pending" => {
                        let wait = d
                            .next_attempt_at
                            .as_deref()
                            .and_then(|t| Timestamp::parse(t).ok())
                            .map_or(0, |t| t.unix_millis() - now().unix_millis());
                        let wait = Duration::from_millis(u64::try_from(wait).unwrap_or(0));
                        (d.attempts + 1, Instant::now() + wait)
                    }
                    Some(_) => continue,
                };
                handed += 1;
                deliveries.hand(
                    Job {
                        alert: Arc::clone(&alert),
                        webhook: hook.name.clone(),
                        attempt,
                        due,
                    },
                    &app.metrics,
                );
            }
        }
        match next {
            Some(cursor) if seen < RESUME_MAX_ALERTS => query.cursor = Some(cursor),
            _ => return Ok(handed),
        }
    }
}

/// Runs delivery for `serve`: installs [`Deliveries`], resumes what a
/// stopped server left, then makes every attempt at its time.
pub async fn run<S: Store>(app: Arc<App<S>>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(PENDING);
    let (hooks, version) = load(&app).await.unwrap_or_else(|e| {
        tracing::warn!("reading the webhook endpoints failed (read again shortly): {e}");
        (Vec::new(), 0)
    });
    let deliveries = Deliveries {
        tx,
        agent: ureq::Agent::config_builder()
            .tls_config(app.settings.https.clone())
            .http_status_as_error(false)
            .timeout_global(Some(ATTEMPT_TIMEOUT))
            .build()
            .into(),
        webhooks: RwLock::new((Arc::new(hooks), version)),
    };
    if app.webhooks.set(deliveries).is_err() {
        tracing::warn!("webhook delivery was started twice; the second is ignored");
        return;
    }
    let Some(deliveries) = app.webhooks.get() else {
        return;
    };
    match resume(&app, deliveries).await {
        Ok(0) => {}
        Ok(n) => tracing::info!("resuming {n} webhook deliveries"),
        Err(e) => tracing::warn!("resuming webhook deliveries failed: {e}"),
    }
    let mut due: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut jobs: HashMap<u64, Job> = HashMap::new();
    let mut next_id = 0u64;
    let delivering = Arc::new(tokio::sync::Semaphore::new(DELIVERING));
    let mut poll = tokio::time::interval(SETTINGS_POLL);
    loop {
        let first = due.peek().map(|Reverse((at, _))| *at);
        tokio::select! {
            job = rx.recv() => {
                let Some(job) = job else { return };
                if jobs.len() >= PENDING {
                    app.metrics.webhook_deliveries_dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("too many webhook deliveries wait; a restart resumes this one");
                    continue;
                }
                next_id += 1;
                due.push(Reverse((job.due, next_id)));
                jobs.insert(next_id, job);
            }
            () = tokio::time::sleep_until(first.unwrap_or_else(Instant::now)), if first.is_some() => {
                while let Some(Reverse((at, id))) = due.peek().copied() {
                    if at > Instant::now() {
                        break;
                    }
                    due.pop();
                    let Some(job) = jobs.remove(&id) else { continue };
                    let Ok(permit) = Arc::clone(&delivering).acquire_owned().await else {
                        return;
                    };
                    let app = Arc::clone(&app);
                    tokio::spawn(async move {
                        attempt(app, job).await;
                        drop(permit);
                    });
                }
            }
            _ = poll.tick() => match load(&app).await {
                Ok((hooks, version)) => deliveries.set(hooks, version),
                Err(e) => tracing::warn!("reading the webhook endpoints failed: {e}"),
            },
        }
        app.metrics
            .webhook_pending
            .store(jobs.len() as u64, Ordering::Relaxed);
    }
}
