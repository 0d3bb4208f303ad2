//! Shared server state: the store, the signing seed, ingest permits, counters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use trailmark_core::{
    Actor, ActorType, Context, Event, EventId, Outcome, Resource, Salt, TenantId, Timestamp,
};
use trailmark_log::{Hash, KeyName, Plan, SignedCheckpoint, SigningKey, TreeSize};
use trailmark_store::{ErrorKind, KeyRecord, NewEvent, Scope, Scopes, Store};

use crate::error::ApiError;
use crate::keys::ApiKey;

/// How the server is set up.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Checkpoint origins are `<origin_prefix>/<tenant>`.
    pub origin_prefix: String,
    /// At most this many events wait for the disk at once; more get 429.
    pub queue_capacity: usize,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Most events in one request: the API's,
    /// [`trailmark_wire::MAX_EVENTS_PER_REQUEST`].
    pub max_batch: usize,
    /// Time between the retention cleanups `serve` runs; `None`: none.
    pub cleanup_interval: Option<Duration>,
    /// The TLS of webhook deliveries (and, through `serve`, of witness
    /// submissions): the built-in Mozilla roots, or the operator's
    /// authorities (`trailmark_client::https::tls_config`).
    pub https: ureq::tls::TlsConfig,
    /// Most tenants the trail may hold: each is a tree of its own, with
    /// its own keys, looked at by every sweep of the checkpointer; an event
    /// that would make one more is refused ([`App::admit_tenants`]).
    pub max_tenants: usize,
}

/// [`Settings::max_tenants`]' default.
pub const DEFAULT_MAX_TENANTS: usize = 100_000;

impl Default for Settings {
    fn default() -> Self {
        Self {
            origin_prefix: "trailmark.local".into(),
            queue_capacity: 100_000,
            max_body_bytes: 8 * 1024 * 1024,
            max_batch: trailmark_wire::MAX_EVENTS_PER_REQUEST,
            cleanup_interval: Some(crate::retention::DEFAULT_CLEANUP_INTERVAL),
            https: ureq::tls::TlsConfig::default(),
            max_tenants: DEFAULT_MAX_TENANTS,
        }
    }
}

/// Counters for /metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    pub events_ingested: AtomicU64,
    pub ingest_requests: AtomicU64,
    pub ingest_rejected_busy: AtomicU64,
    /// Batches sent with `Trailmark-After` that arrived before the batch
    /// they name was stored, and waited; and those answered 412.
    pub ingest_after_waited: AtomicU64,
    pub ingest_after_refused: AtomicU64,
    pub commit_micros_total: AtomicU64,
    pub commits: AtomicU64,
    /// Appends the store failed (its database or disk: a 503 or 500 to
    /// whoever waited), and when the latest append failed, in Unix
    /// milliseconds (0: the latest succeeded). [`App::append`] keeps both.
    pub append_failures: AtomicU64,
    pub append_failed_at: AtomicU64,
    pub checkpoints_signed: AtomicU64,
    /// Cosignatures received from witnesses and kept.
    pub cosignatures: AtomicU64,
    /// Checkpoints a witness refused (a fork, a rollback, an unknown log).
    pub witness_refusals: AtomicU64,
    /// Rows the capture drainer inside `serve` has appended.
    pub captured_rows: AtomicU64,
    /// Events the alert rules have counted.
    pub alert_facts_observed: AtomicU64,
    /// Events a rule would have counted, dropped because the detector's
    /// queue was full.
    pub alert_facts_dropped: AtomicU64,
    /// Alerts the rules raised, and those of them recorded in `_system`
    /// (or whose recording failed): equal when none is being recorded.
    pub alerts_raised: AtomicU64,
    pub alerts_settled: AtomicU64,
    /// Webhook delivery attempts made, delivered, and given up (dead).
    pub webhook_attempts: AtomicU64,
    pub webhook_delivered: AtomicU64,
    pub webhook_dead: AtomicU64,
    /// Deliveries dropped because too many waited (a restart resumes them).
    pub webhook_deliveries_dropped: AtomicU64,
    /// Deliveries waiting for their time now (a gauge).
    pub webhook_pending: AtomicU64,
    /// WAL capture by the drainer inside `serve` (gauges, read from
    /// PostgreSQL every 10 s): 1 while its slot exists, the WAL the slot
    /// keeps, the WAL not yet in the ledger, and 1 once PostgreSQL removed
    /// WAL the slot still needed (a capture gap).
    pub capture_slot: AtomicU64,
    pub capture_slot_retained_bytes: AtomicU64,
    pub capture_slot_lag_bytes: AtomicU64,
    pub capture_slot_lost: AtomicU64,
    /// The slot's transactions larger than `logical_decoding_work_mem`
    /// (PostgreSQL 14 and later, `pg_stat_replication_slots`): streamed to
    /// the drainer in progress, and spilled to the server's disk.
    pub capture_slot_streamed: AtomicU64,
    pub capture_slot_spilled: AtomicU64,
    /// The capture outbox of the drainer inside `serve` (gauges, read from
    /// PostgreSQL every 10 s): 1 once it was read, the changes waiting in
    /// it (counted up to [`OUTBOX_COUNT_UP_TO`]) and how old the oldest is,
    /// in milliseconds (0: none waits).
    pub capture_outbox: AtomicU64,
    pub capture_outbox_rows: AtomicU64,
    pub capture_outbox_oldest_ms: AtomicU64,
}

/// How far the watcher counts the capture outbox's rows each reading (a
/// backlog larger reads as this many): a count costs a read of each row.
pub const OUTBOX_COUNT_UP_TO: i64 = 1_000_000;

impl Metrics {
    /// The counters `GET /metrics` shows: name, help, value.
    pub fn counters(&self) -> [(&'static str, &'static str, u64); 19] {
        let get = |c: &AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        [
            (
                "trailmark_events_ingested_total",
                "Events durably appended (including _system).",
                get(&self.events_ingested),
            ),
            (
                "trailmark_ingest_requests_total",
                "POST /v1/events requests read.",
                get(&self.ingest_requests),
            ),
            (
                "trailmark_ingest_rejected_busy_total",
                "Requests answered 429 because the queue was full.",
                get(&self.ingest_rejected_busy),
            ),
            (
                "trailmark_ingest_after_waited_total",
                "Batches sent with Trailmark-After (or by the drainer inside serve, by the same rule) that waited for the batch they name.",
                get(&self.ingest_after_waited),
            ),
            (
                "trailmark_ingest_after_refused_total",
                "Batches answered 412 (inside serve, sent again): the batch their Trailmark-After names was not stored.",
                get(&self.ingest_after_refused),
            ),
            (
                "trailmark_commit_seconds_count",
                "Durable appends awaited.",
                get(&self.commits),
            ),
            (
                "trailmark_append_failures_total",
                "Appends the store failed (a full disk, a database gone): nothing of them was acknowledged; /readyz fails for 10 s after one.",
                get(&self.append_failures),
            ),
            (
                "trailmark_checkpoints_signed_total",
                "Checkpoints signed.",
                get(&self.checkpoints_signed),
            ),
            (
                "trailmark_witness_cosignatures_total",
                "Witness cosignatures received and kept.",
                get(&self.cosignatures),
            ),
            (
                "trailmark_witness_refusals_total",
                "Checkpoints a witness refused (a fork, a rollback, an unknown log).",
                get(&self.witness_refusals),
            ),
            (
                "trailmark_capture_rows_total",
                "Captured database changes appended by the drainer inside serve.",
                get(&self.captured_rows),
            ),
            (
                "trailmark_alert_facts_observed_total",
                "Appended events the alert rules have counted (those the start-up rebuild counted included, once each).",
                get(&self.alert_facts_observed),
            ),
            (
                "trailmark_alert_facts_dropped_total",
                "Events an alert rule would have counted, dropped because the detector's queue was full.",
                get(&self.alert_facts_dropped),
            ),
            (
                "trailmark_alerts_raised_total",
                "Alerts the rules raised.",
                get(&self.alerts_raised),
            ),
            (
                "trailmark_alerts_settled_total",
                "Raised alerts recorded in _system, or whose recording failed (logged).",
                get(&self.alerts_settled),
            ),
            (
                "trailmark_webhook_attempts_total",
                "Webhook delivery attempts made.",
                get(&self.webhook_attempts),
            ),
            (
                "trailmark_webhook_delivered_total",
                "Alert deliveries a webhook endpoint accepted (2xx).",
                get(&self.webhook_delivered),
            ),
            (
                "trailmark_webhook_dead_total",
                "Alert deliveries given up after the endpoint's last attempt (the dead-letter list).",
                get(&self.webhook_dead),
            ),
            (
                "trailmark_webhook_deliveries_dropped_total",
                "Deliveries dropped because too many waited; a restart resumes them.",
                get(&self.webhook_deliveries_dropped),
            ),
        ]
    }
}

/// How many request body bytes may be read and parsed at once; more answer
/// 429 (at least one `max_body_bytes` body always fits).
pub const IN_FLIGHT_BODY_BYTES: usize = 64 * 1024 * 1024;

/// How many body bytes may be read or parsed at once under `settings`.
fn body_bytes_bound(settings: &Settings) -> usize {
    IN_FLIGHT_BODY_BYTES.max(settings.max_body_bytes)
}

/// How many signed checkpoints wait for a slow witness client before it
/// skips to the newest.
pub const SIGNED_QUEUE: usize = 1024;

pub struct App<S> {
    pub store: S,
    pub settings: Settings,
    seed: [u8; 32],
    pub permits: Arc<Semaphore>,
    /// Request body bytes being read and parsed at once (see
    /// [`IN_FLIGHT_BODY_BYTES`]).
    pub body_bytes: Arc<Semaphore>,
    pub metrics: Metrics,
    signers: Mutex<HashMap<TenantId, SigningKey>>,
    /// The tenants the trail holds, read once from the store, then kept
    /// by [`App::admit_tenants`] (and the checkpointer's reads of the
    /// heads, for tenants other servers sharing the ledger made).
    tenants: tokio::sync::OnceCell<Mutex<std::collections::HashSet<TenantId>>>,
    /// The size each tenant reached through this server's appends since
    /// the checkpointer last took them ([`App::take_grown`]).
    grown: Mutex<HashMap<TenantId, TreeSize>>,
    /// Keys seen recently, by digest, with when they were read from the store.
    keys: Mutex<HashMap<[u8; 32], (KeyRecord, Instant)>>,
    /// Every checkpoint this server signs, for the witness clients (a
    /// bounded ring: a lagging receiver skips to the newest).
    pub signed: tokio::sync::broadcast::Sender<trailmark_store::CheckpointRecord>,
    /// One removal, hold or policy change at a time on this server (see
    /// [`App::removal_lock`]).
    removals: tokio::sync::Mutex<()>,
    /// The last cleanup this server ran (not dry runs).
    pub last_cleanup: Mutex<Option<crate::wire::RemovalReport>>,
    /// A scrub is owed: one failed (or this process has not run one yet,
    /// and a server stopped before may have left one undone, if anything
    /// was ever removed: `retention::scrub` asks `_system`).
    pub scrub_owed: std::sync::atomic::AtomicBool,
    /// Where ingest offers events to the alert rules, once detection runs.
    pub alerts: std::sync::OnceLock<crate::alerts::run::Feed>,
    /// Where alerts are handed for delivery, once delivery runs.
    pub webhooks: std::sync::OnceLock<crate::alerts::deliver::Deliveries>,
    /// The appends running, by their last event: what a batch sent with
    /// `Trailmark-After` waits for.
    pub(crate) appending: crate::after::Appending,
}

/// How long a key read from the store is trusted without reading it again.
/// A revocation through this server takes effect at once; one made through
/// another server sharing the store takes effect within this time.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(2);

impl<S> std::fmt::Debug for App<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the epoch, now.
pub fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    Timestamp::from_unix_millis(i64::try_from(millis).unwrap_or(0)).unwrap_or(Timestamp::EPOCH)
}

pub fn random_bytes<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(no_randomness)?;
    Ok(bytes)
}

/// The bytes of a payload's salt.
const SALT: usize = 32;

/// The randomness one event takes when it is prepared: its payload's salt
/// and the random part of the id the server gives it (10 bytes).
pub(crate) const EVENT_RANDOM: usize = SALT + 10;

/// Randomness for `n` events, drawn from the operating system in one call
/// (drawn per event it cost two system calls an event).
pub(crate) fn event_randomness(n: usize) -> Result<Vec<[u8; EVENT_RANDOM]>, ApiError> {
    let mut draws = vec![[0u8; EVENT_RANDOM]; n];
    getrandom::fill(draws.as_flattened_mut()).map_err(no_randomness)?;
    Ok(draws)
}

/// [`App::prepare`] with the event's randomness drawn already (a
/// batch's in one call: [`event_randomness`]).
pub(crate) fn prepare_event(
    event: Event,
    default_tenant: &TenantId,
    received_at: Timestamp,
    random: &[u8; EVENT_RANDOM],
) -> Result<NewEvent, ApiError> {
    let salt = Salt::from_bytes(std::array::from_fn::<u8, SALT, _>(|i| random[i]));
    let committed = event
        .commit_payload(salt)
        .map_err(|e| ApiError::param("", e.to_string()))?;
    Ok(NewEvent {
        event,
        received_at,
        generated_id: EventId::new_v7(received_at, std::array::from_fn(|i| random[SALT + i])),
        committed,
        default_tenant: default_tenant.clone(),
    })
}

/// The operating system gave no randomness: the server's fault, not the
/// caller's, so a 503 (retry later), never a 4xx.
pub fn no_randomness(error: impl std::fmt::Display) -> ApiError {
    ApiError::Unavailable(format!("no randomness: {error}"))
}

/// The address a request came from: the TCP peer (behind a reverse proxy,
/// the proxy). The server loop adds it to each request's extensions;
/// [`request_context`] makes it the request's for `_system` records, or
/// the client a trusted proxy forwarded for (an extension
/// `Arc<trailmark_core::TrustedProxies>`, `serve --trusted-proxy`).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub std::net::IpAddr);

/// What `_system` records made while answering a request say of it.
#[derive(Clone, Debug)]
struct RequestContext {
    peer: Option<std::net::IpAddr>,
    id: String,
}

tokio::task_local! {
    static REQUEST: RequestContext;
}

/// Runs `work` as a task of its own that finishes even when the request
/// that started it ends first (the client went away, or the request
/// timeout answered 408), keeping the request's context for the `_system`
/// records it makes. The request waits for it as long as it lasts.
pub async fn detached<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T, ApiError>> + Send + 'static,
) -> Result<T, ApiError> {
    let task = match REQUEST.try_with(Clone::clone) {
        Ok(context) => tokio::spawn(REQUEST.scope(context, work)),
        Err(_) => tokio::spawn(work),
    };
    task.await.map_err(|e| {
        ApiError::Store(trailmark_store::StoreError::backend("running a removal", e))
    })?
}

/// The longest `X-Request-Id` a caller may choose; a longer one, or one
/// with characters other than visible ASCII, is replaced.
const MAX_REQUEST_ID: usize = 64;

/// A request id no other request of this process, nor (but by chance)
/// of another, gets: a random prefix drawn once per process, then a
/// counter. Sixteen hex digits, and no system call per request.
fn fresh_request_id() -> String {
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix =
        *PREFIX.get_or_init(|| random_bytes::<4>().map_or(std::process::id(), u32::from_be_bytes));
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix:08x}{:08x}", n & 0xffff_ffff)
}

/// Every request gets an id: the caller's `X-Request-Id` when it is short
/// visible ASCII, else a fresh one. It is answered in `X-Request-Id`,
/// carried by every log line of the request (a tracing span), and recorded
/// with the peer in the `_system` entries the request makes
/// (`context.request_id`, `context.ip`).
pub async fn request_context(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tracing::Instrument as _;
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= MAX_REQUEST_ID && v.bytes().all(|b| b.is_ascii_graphic())
        })
        .map_or_else(fresh_request_id, str::to_owned);
    let context = RequestContext {
        peer: request.extensions().get::<Peer>().map(|p| {
            let headers = request.headers();
            let values = |name: &'static str| {
                headers
                    .get_all(name)
                    .into_iter()
                    .filter_map(|v| v.to_str().ok())
            };
            request
                .extensions()
                .get::<Arc<trailmark_core::TrustedProxies>>()
                .map_or(p.0, |trusted| {
                    trusted.client_ip(p.0, values("forwarded"), values("x-forwarded-for"))
                })
        }),
        id: id.clone(),
    };
    let span = tracing::info_span!(
        "request",
        id = %id,
        method = %request.method(),
        path = %request.uri().path()
    );
    let mut response = REQUEST
        .scope(context, next.run(request))
        .instrument(span.clone())
        .await;
    tracing::debug!(parent: &span, status = response.status().as_u16(), "answered");
    if let Ok(value) = axum::http::HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// Who is calling, after the key was checked.
#[derive(Clone, Debug)]
pub struct Caller {
    pub key: KeyRecord,
}

impl Caller {
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.key.scopes.allows(scope) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this key lacks the {} scope",
                scope.as_str()
            )))
        }
    }

    /// The tenants a read may see: a bound key sees its tenant only; an
    /// unbound key sees `requested` or, without it, every tenant (empty list).
    /// An empty `requested` is refused, never read as none.
    pub fn visible(&self, requested: Option<&str>) -> Result<Vec<TenantId>, ApiError> {
        let requested = crate::extract::not_empty("tenant", requested)?
            .map(|t| TenantId::from_stored(t).map_err(|m| ApiError::param("tenant", m)))
            .transpose()?;
        match (&self.key.tenant, requested) {
            (Some(own), Some(asked)) if *own != asked => Err(ApiError::Forbidden(format!(
                "this key is bound to tenant {own} and cannot see tenant {asked}"
            ))),
            (Some(own), _) => Ok(vec![own.clone()]),
            (None, Some(asked)) => Ok(vec![asked]),
            (None, None) => Ok(Vec::new()),
        }
    }

    /// Whether this key may see `tenant`: a bound key its own, an unbound
    /// key every one.
    pub fn sees(&self, tenant: &TenantId) -> bool {
        self.key.tenant.as_ref().is_none_or(|own| own == tenant)
    }

    /// The one tenant a tenant-scoped read (proofs, checkpoints) is about.
    pub fn one_tenant(&self, requested: Option<&str>) -> Result<TenantId, ApiError> {
        let visible = self.visible(requested)?;
        visible
            .into_iter()
            .next()
            .map_or_else(|| Ok(TenantId::default_tenant()), Ok)
    }
}

fn unix_millis_now() -> u64 {
    u64::try_from(now().unix_millis()).unwrap_or(0)
}

/// How long `/readyz` fails after an append failed (then it answers again,
/// so that a balancer that stopped sending sends again, and the next
/// append says whether the store writes).
pub const UNREADY_AFTER_FAILED_APPEND_MS: u64 = 10_000;

impl<S: Store> App<S> {
    /// Appends through the store (every append the server makes), keeping
    /// the count of failed appends and when the latest failed (`/metrics`,
    /// `/readyz`): a full disk fails every append while reads still answer.
    pub async fn append(
        &self,
        batch: Vec<trailmark_store::NewEvent>,
    ) -> Result<Vec<trailmark_store::Appended>, trailmark_store::StoreError> {
        let result = self.store.append(batch).await;
        let failed_at = &self.metrics.append_failed_at;
        match &result {
            Err(e) if matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Corrupt) => {
                self.metrics.append_failures.fetch_add(1, Ordering::Relaxed);
                failed_at.store(unix_millis_now().max(1), Ordering::Relaxed);
            }
            Ok(appended) => {
                if failed_at.load(Ordering::Relaxed) != 0 {
                    failed_at.store(0, Ordering::Relaxed);
                }
                self.grew(appended);
            }
            Err(_) => {}
        }
        result
    }

    /// Keeps the size each tenant reached in `appended`, for the
    /// checkpointer.
    fn grew(&self, appended: &[trailmark_store::Appended]) {
        let mut grown = self.grown.lock().unwrap_or_else(PoisonError::into_inner);
        // A batch is mostly one tenant's run of entries: each run is one
        // look-up, at its last entry.
        let mut entries = appended.iter().filter(|a| !a.duplicate).peekable();
        while let Some(a) = entries.next() {
            if entries.peek().is_some_and(|next| next.tenant == a.tenant) {
                continue;
            }
            let Some(size) = TreeSize::new(a.seq.get().saturating_add(1)) else {
                continue;
            };
            match grown.get_mut(&a.tenant) {
                Some(known) if *known >= size => {}
                Some(known) => *known = size,
                None => {
                    grown.insert(a.tenant.clone(), size);
                }
            }
        }
    }

    /// The sizes tenants reached through this server's appends since the
    /// last call (the checkpointer signs them).
    pub(crate) fn take_grown(&self) -> HashMap<TenantId, TreeSize> {
        std::mem::take(&mut *self.grown.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts back what [`App::take_grown`] took and a failed tick did not
    /// sign.
    pub(crate) fn give_back_grown(&self, taken: HashMap<TenantId, TreeSize>) {
        let mut grown = self.grown.lock().unwrap_or_else(PoisonError::into_inner);
        for (tenant, size) in taken {
            let known = grown.entry(tenant).or_insert(size);
            *known = (*known).max(size);
        }
    }

    /// The tenants the trail holds (read from the store the first time).
    async fn known_tenants(&self) -> Result<&Mutex<std::collections::HashSet<TenantId>>, ApiError> {
        self.tenants
            .get_or_try_init(|| async {
                let heads = self.store.heads().await?;
                Ok::<_, ApiError>(Mutex::new(heads.into_iter().map(|h| h.tenant).collect()))
            })
            .await
    }

    /// Refuses a batch whose new tenants would make the trail hold more
    /// than [`Settings::max_tenants`], naming each event that would make
    /// one (400: sent again, it is refused again, until the bound is
    /// raised); otherwise counts them as held from now on. A store that
    /// cannot say which tenants it holds refuses the batch. Across servers
    /// sharing a ledger each counts what it read last (the checkpointer's
    /// sweep, within about 10 s) and what it admitted, so together they
    /// may pass the bound by the tenants made meanwhile on several of them.
    pub(crate) async fn admit_tenants(
        &self,
        tenants: impl Iterator<Item = &TenantId>,
    ) -> Result<(), ApiError> {
        // A store that does not answer refuses the batch (the bound is not
        // waived while it cannot be counted).
        let mut known = self
            .known_tenants()
            .await?
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // A batch is mostly one tenant: a run of the same one is looked up
        // once.
        let tenants: Vec<&TenantId> = tenants.collect();
        let mut distinct: std::collections::HashSet<&TenantId> = std::collections::HashSet::new();
        for (i, t) in tenants.iter().enumerate() {
            if (i == 0 || tenants[i - 1] != *t) && !known.contains(*t) {
                distinct.insert(*t);
            }
        }
        if distinct.is_empty() {
            return Ok(());
        }
        let max = self.settings.max_tenants;
        if known.len() + distinct.len() > max {
            let held = known.len();
            return Err(ApiError::Invalid(tenants
                .iter()
                .enumerate()
                .filter(|(_, t)| distinct.contains(*t))
                .map(|(i, t)| {
                    crate::error::Problem::new(
                        Some(i),
                        "tenant",
                        format!(
                            "{t} would be a new tenant, and the trail holds {held} of at most {max} (max_tenants): \
                             a tenant is a customer or an application, with a tree, checkpoints and keys of its own, \
                             not a user or a record; name an existing tenant, or raise max_tenants"
                        ),
                    )
                })
                .collect()));
        }
        let distinct: Vec<TenantId> = distinct.into_iter().cloned().collect();
        known.extend(distinct);
        Ok(())
    }

    /// Tells the tenant count what the store holds now (the checkpointer's
    /// sweep reads every head): tenants other servers sharing the ledger
    /// made.
    pub(crate) fn saw_tenants<'a>(
        &self,
        count: usize,
        tenants: impl Iterator<Item = &'a TenantId>,
    ) {
        if let Some(known) = self.tenants.get() {
            let mut known = known.lock().unwrap_or_else(PoisonError::into_inner);
            if known.len() < count {
                known.extend(tenants.cloned());
            }
        }
    }

    /// Why the server is not ready: its latest append failed less than
    /// [`UNREADY_AFTER_FAILED_APPEND_MS`] ago.
    pub fn unready(&self) -> Option<String> {
        let failed_at = self.metrics.append_failed_at.load(Ordering::Relaxed);
        let ago = unix_millis_now().saturating_sub(failed_at);
        (failed_at != 0 && ago < UNREADY_AFTER_FAILED_APPEND_MS).then(|| {
            format!(
                "the latest append failed {}.{} s ago (the log says why: a full disk, the database gone); nothing is acknowledged until appends succeed",
                ago / 1000,
                ago % 1000 / 100
            )
        })
    }

    /// One removal, hold, policy change or key revocation at a time (a
    /// revocation checks that an admin key seeing every tenant is left):
    /// among this server's
    /// tasks, and (through the store) among every server sharing the
    /// ledger. A hold placed during an erasure's walk could otherwise miss
    /// it. Both parts are released when the pair is dropped.
    pub async fn removal_lock(
        &self,
    ) -> Result<
        (
            tokio::sync::MutexGuard<'_, ()>,
            trailmark_store::RemovalLock,
        ),
        ApiError,
    > {
        let local = self.removals.lock().await;
        let shared = self.store.removal_lock().await?;
        Ok((local, shared))
    }

    pub fn new(store: S, settings: Settings, seed: [u8; 32]) -> Self {
        let permits = Arc::new(Semaphore::new(settings.queue_capacity));
        let body_bytes = Arc::new(Semaphore::new(body_bytes_bound(&settings)));
        Self {
            store,
            settings,
            seed,
            permits,
            body_bytes,
            metrics: Metrics::default(),
            signers: Mutex::default(),
            tenants: tokio::sync::OnceCell::new(),
            grown: Mutex::default(),
            keys: Mutex::default(),
            signed: tokio::sync::broadcast::channel(SIGNED_QUEUE).0,
            removals: tokio::sync::Mutex::new(()),
            last_cleanup: Mutex::new(None),
            scrub_owed: std::sync::atomic::AtomicBool::new(true),
            alerts: std::sync::OnceLock::new(),
            webhooks: std::sync::OnceLock::new(),
            appending: crate::after::Appending::default(),
        }
    }

    /// The tenant's checkpoint signing key: one seed, one key name per tenant.
    pub fn signer(&self, tenant: &TenantId) -> Result<SigningKey, ApiError> {
        let mut signers = self
            .signers
            .lock()
            .map_err(|_| ApiError::Forbidden("poisoned".into()))?;
        if let Some(key) = signers.get(tenant) {
            return Ok(key.clone());
        }
        let name = KeyName::new(format!("{}/{tenant}", self.settings.origin_prefix))
            .map_err(|e| ApiError::Forbidden(e.to_string()))?;
        let key = SigningKey::from_seed(name, &self.seed);
        signers.insert(tenant.clone(), key.clone());
        Ok(key)
    }

    /// Checks the bearer key.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        // Two keys are ambiguous: never decided by which came first.
        let mut given = headers.get_all(axum::http::header::AUTHORIZATION).iter();
        let value = given.next().ok_or(ApiError::Unauthorized(
            "missing Authorization: Bearer <key>",
        ))?;
        if given.next().is_some() {
            return Err(ApiError::Unauthorized(
                "Authorization given more than once: send one key",
            ));
        }
        let secret = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized(
                "Authorization must be 'Bearer <key>'",
            ))?;
        self.authenticate_secret(secret).await
    }

    /// Checks a key given as its secret (a bearer header's, a viewer
    /// session's).
    pub async fn authenticate_secret(&self, secret: &str) -> Result<Caller, ApiError> {
        let key = ApiKey::from_secret(secret);
        let digest = key.digest();
        let cached = self.keys.lock().ok().and_then(|c| {
            c.get(&digest)
                .filter(|(_, at)| at.elapsed() < KEY_CACHE_TTL)
                .map(|(r, _)| r.clone())
        });
        let record = if let Some(record) = cached {
            Some(record)
        } else {
            let record = self.store.key_by_digest(digest).await?;
            if let (Some(r), Ok(mut cache)) = (&record, self.keys.lock()) {
                if cache.len() > 10_000 {
                    cache.clear();
                }
                cache.insert(digest, (r.clone(), Instant::now()));
            }
            record
        };
        match record {
            Some(record) if key.matches(&record) && record.revoked_at.is_none() => {
                Ok(Caller { key: record })
            }
            Some(record) if key.matches(&record) => {
                Err(ApiError::Unauthorized("this key has been revoked"))
            }
            _ => Err(ApiError::Unauthorized("unknown key")),
        }
    }

    /// Wraps a validated event with the server's decisions.
    pub fn prepare(
        &self,
        event: Event,
        default_tenant: &TenantId,
        received_at: Timestamp,
    ) -> Result<NewEvent, ApiError> {
        let random = random_bytes::<EVENT_RANDOM>()?;
        prepare_event(event, default_tenant, received_at, &random)
    }

    /// Opens a stored checkpoint note with whichever of the trail's recorded
    /// keys signed it (after a rotation, older checkpoints carry the old key).
    pub async fn open_checkpoint(
        &self,
        tenant: &TenantId,
        note: &str,
    ) -> Result<SignedCheckpoint, ApiError> {
        let mut last = None;
        for record in self.store.signing_keys().await? {
            let key = record
                .view()
                .key_for(tenant.as_str())
                .map_err(trailmark_store::StoreError::Unreadable)?;
            match SignedCheckpoint::open(note.as_bytes(), &key) {
                Ok(cp) => return Ok(cp),
                Err(e) => last = Some(e),
            }
        }
        let e = last.unwrap_or(trailmark_log::Error::NoKnownSignature);
        Err(trailmark_store::StoreError::from(e).into())
    }

    /// Records checkpoints signed for tenants (tenant, size, note) as entries
    /// in `_system` (the cross-references `trailmark verify` holds each
    /// tenant to), in one append: one commit for every tenant signed in a
    /// tick. Each id derives from tenant and size, so servers sharing a
    /// ledger that sign the same checkpoint record it once.
    pub async fn record_checkpoints(
        &self,
        checkpoints: &[(TenantId, u64, String)],
    ) -> Result<(), ApiError> {
        if checkpoints.is_empty() {
            return Ok(());
        }
        let at = now();
        let mut batch = Vec::with_capacity(checkpoints.len());
        for (tenant, size, note) in checkpoints {
            let event = Event {
                id: Some(EventId::derived(
                    format!("trailmark.checkpoint/{tenant}/{size}").as_bytes(),
                )),
                occurred_at: None,
                tenant: Some(TenantId::system()),
                actor: Actor {
                    id: "trailmark".into(),
                    kind: ActorType::System,
                    name: None,
                },
                action: trailmark_verify::CHECKPOINT_ACTION.into(),
                resource: Some(Resource {
                    kind: trailmark_verify::CHECKPOINT_RESOURCE.into(),
                    id: Some(tenant.as_str().into()),
                    name: None,
                }),
                outcome: Outcome::Success,
                reason: None,
                changes: None,
                context: None,
                metadata: Some(trailmark_verify::CheckpointReference::metadata(note)),
            };
            batch.push(self.prepare(event, &TenantId::system(), at)?);
        }
        self.append(batch).await?;
        Ok(())
    }

    /// Records what a key did in the `_system` tenant, durably, before the
    /// caller gets an answer.
    pub async fn audit(
        &self,
        caller: Option<&Caller>,
        action: &str,
        resource: Option<(&str, &str)>,
        metadata: Map<String, Value>,
    ) -> Result<(), ApiError> {
        self.audit_entry(caller, action, resource, metadata)
            .await
            .map(drop)
    }

    /// [`Self::audit`], answering where the `_system` entry went.
    pub async fn audit_entry(
        &self,
        caller: Option<&Caller>,
        action: &str,
        resource: Option<(&str, &str)>,
        metadata: Map<String, Value>,
    ) -> Result<trailmark_store::Appended, ApiError> {
        self.audit_outcome(caller, action, resource, metadata, Outcome::Success)
            .await
    }

    /// [`Self::audit_entry`] of something that failed (`outcome = failure`).
    pub async fn audit_outcome(
        &self,
        caller: Option<&Caller>,
        action: &str,
        resource: Option<(&str, &str)>,
        metadata: Map<String, Value>,
        outcome: Outcome,
    ) -> Result<trailmark_store::Appended, ApiError> {
        self.audit_at(caller, action, resource, metadata, outcome, now())
            .await
    }

    /// [`Self::audit_outcome`], received at `at` (now, taken by the
    /// caller, which needs to know it).
    pub async fn audit_at(
        &self,
        caller: Option<&Caller>,
        action: &str,
        resource: Option<(&str, &str)>,
        metadata: Map<String, Value>,
        outcome: Outcome,
        at: Timestamp,
    ) -> Result<trailmark_store::Appended, ApiError> {
        let actor = caller.map_or_else(
            || Actor {
                id: "trailmark".into(),
                kind: ActorType::System,
                name: None,
            },
            |c| Actor {
                id: c.key.id.clone(),
                kind: ActorType::Service,
                name: Some(c.key.name.clone()),
            },
        );
        // The request it is made for, if any: where it came from (the TCP
        // peer: behind a reverse proxy, the proxy) and its id.
        let context = REQUEST.try_with(|r| Context {
            ip: r.peer,
            request_id: Some(r.id.clone()),
            ..Context::default()
        });
        let context = context.ok();
        let event = Event {
            id: None,
            occurred_at: None,
            tenant: Some(TenantId::system()),
            actor,
            action: action.into(),
            resource: resource.map(|(kind, id)| Resource {
                kind: kind.into(),
                id: Some(id.into()),
                name: None,
            }),
            outcome,
            reason: None,
            changes: None,
            context,
            metadata: (!metadata.is_empty()).then_some(metadata),
        };
        let new = self.prepare(event, &TenantId::system(), at)?;
        // Trailmark's own events are offered to the alert rules like any.
        let candidates = self
            .alerts
            .get()
            .map(|feed| feed.candidates(std::slice::from_ref(&new)));
        let appended = self.append(vec![new]).await?;
        if let (Some(feed), Some(candidates)) = (self.alerts.get(), candidates) {
            feed.offer(candidates, &appended, &self.metrics);
        }
        self.metrics.events_ingested.fetch_add(1, Ordering::Relaxed);
        appended.into_iter().next().ok_or_else(|| {
            ApiError::Store(trailmark_store::StoreError::Invalid(
                "an append answered nothing".into(),
            ))
        })
    }

    /// Reads the nodes a plan needs from the store and assembles its hashes
    /// (a root, an inclusion proof or a consistency proof).
    pub async fn run_plan(&self, tenant: &TenantId, plan: &Plan) -> Result<Vec<Hash>, ApiError> {
        Ok(trailmark_store::run_plan(&self.store, tenant, plan).await?)
    }

    /// Bytes of ingest bodies being read or parsed now.
    pub fn body_bytes_in_flight(&self) -> usize {
        body_bytes_bound(&self.settings).saturating_sub(self.body_bytes.available_permits())
    }

    /// Forgets cached keys (after a revocation).
    pub fn forget_keys(&self) {
        if let Ok(mut cache) = self.keys.lock() {
            cache.clear();
        }
    }

    /// Creates a key and records it in `_system`.
    pub async fn create_key(
        &self,
        caller: Option<&Caller>,
        name: &str,
        scopes: Scopes,
        tenant: Option<TenantId>,
    ) -> Result<(ApiKey, KeyRecord), ApiError> {
        let key = ApiKey::generate().map_err(no_randomness)?;
        let record = key.record(name, scopes, tenant, now());
        self.store.create_key(record.clone()).await?;
        let mut meta = Map::new();
        meta.insert("scopes".into(), Value::String(scopes.to_text()));
        if let Some(t) = &record.tenant {
            meta.insert("bound_tenant".into(), Value::String(t.to_string()));
        }
        self.audit(caller, "admin.key.create", Some(("key", &record.id)), meta)
            .await?;
        Ok((key, record))
    }
}
