//! Trailmark's HTTP server over any [`Store`]: durable ingest with
//! backpressure, search, proofs and checkpoints, keys, health and metrics.
//!
//! Ingest path: validate every event (all problems reported at once) → take
//! permits from the bounded ingest queue (429 with `Retry-After` when full) →
//! the store's append, which answers only once the batch is durable (the
//! embedded store's writer thread batches concurrent requests into one
//! commit) → 201.

mod after;
pub mod alerts;
mod app;
pub mod auth;
pub mod checkpointer;
mod error;
mod extract;
mod ingest;
mod keys;
mod keys_api;
pub mod openapi;
mod proofs;
mod query;
pub mod render;
mod reports;
pub mod retention;
mod tiles;
pub mod viewer;
/// The answers' types (crate `trailmark-wire`).
pub use trailmark_wire as wire;
pub mod witness;

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use trailmark_store::Store;

pub use app::{App, Caller, DEFAULT_MAX_TENANTS, OUTBOX_COUNT_UP_TO, Peer, Settings, now};
pub use error::{ApiError, Problem};
pub use ingest::{PREPARE_INLINE_MAX, Ready};
pub use keys::ApiKey;

/// Every route of the API.
pub fn router<S: Store>(app: Arc<App<S>>) -> Router {
    let router = Router::new();
    // The limits probe's ceiling (bench/limits): built only with the
    // feature, never part of the API.
    #[cfg(feature = "limits-probe")]
    let router = router.route("/bench/validate-only", post(ingest::validate_only::<S>));
    router
        .route(
            "/v1/events",
            post(ingest::post_events::<S>).get(query::list_events::<S>),
        )
        .route("/v1/events/{id}", get(query::get_event::<S>))
        .route("/v1/entries", get(query::list_entries::<S>))
        .route(
            "/v1/resources/{type}/{id}/history",
            get(reports::history::<S>),
        )
        .route("/v1/stats", get(reports::stats::<S>))
        .route("/v1/export", get(reports::export::<S>))
        .route("/v1/checkpoint", get(proofs::checkpoint::<S>))
        .route("/v1/signing-keys", get(proofs::signing_keys::<S>))
        .route("/log/{tenant}/checkpoint", get(tiles::checkpoint::<S>))
        .route("/log/{tenant}/tile/{*path}", get(tiles::tile::<S>))
        .route("/v1/checkpoints", get(proofs::checkpoints::<S>))
        .route("/v1/verifier-key", get(proofs::verifier_key::<S>))
        .route("/v1/tenants", get(proofs::tenants::<S>))
        .route("/v1/proofs/inclusion", get(proofs::inclusion::<S>))
        .route("/v1/proofs/consistency", get(proofs::consistency::<S>))
        .route(
            "/v1/keys",
            post(keys_api::create::<S>).get(keys_api::list::<S>),
        )
        .route("/v1/keys/{id}", delete(keys_api::revoke::<S>))
        .route(
            "/openapi.json",
            get(|| async { axum::Json(openapi::document()) }),
        )
        .route(
            "/v1/retention",
            get(retention::get_retention::<S>)
                .put(retention::put_retention::<S>)
                .delete(retention::delete_retention::<S>),
        )
        .route("/v1/retention/cleanup", post(retention::post_cleanup::<S>))
        .route(
            "/v1/holds",
            get(retention::list_holds::<S>).post(retention::place_hold::<S>),
        )
        .route("/v1/holds/{id}", delete(retention::release_hold::<S>))
        .route("/v1/erasures", post(retention::post_erasure::<S>))
        .route("/v1/alerts", get(alerts::api::list::<S>))
        .route("/v1/alerts/{id}", get(alerts::api::get::<S>))
        .route("/v1/alerts/{id}/ack", post(alerts::api::ack::<S>))
        .route(
            "/v1/alerts/{id}/redeliver",
            post(alerts::api::redeliver::<S>),
        )
        .route(
            "/v1/alert-rules",
            get(alerts::api::get_rules::<S>).put(alerts::api::put_rules::<S>),
        )
        .route(
            "/v1/webhooks",
            get(alerts::api::get_webhooks::<S>).put(alerts::api::put_webhooks::<S>),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz::<S>))
        .route("/metrics", get(metrics::<S>))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            authenticate_first::<S>,
        ))
        .with_state(Arc::clone(&app))
        .merge(viewer::routes(Arc::new(viewer::Viewer::new(app))))
        .layer(axum::middleware::from_fn(app::request_context))
}

/// Every `/v1/` and `/log/` request is authenticated before anything else
/// of it is read, so a caller without a valid key learns nothing from how
/// its parameters or body are judged (401 first, then 400).
async fn authenticate_first<S: Store>(
    State(app): State<Arc<App<S>>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut request = request;
    let path = request.uri().path();
    if path.starts_with("/v1/") || path.starts_with("/log/") {
        match app.authenticate(request.headers()).await {
            // Handlers take it from here (crate::auth): one key lookup.
            Ok(caller) => {
                request.extensions_mut().insert(caller);
            }
            Err(e) => return e.into_response(),
        }
    }
    next.run(request).await
}

async fn readyz<S: Store>(State(app): State<Arc<App<S>>>) -> Result<&'static str, ApiError> {
    // The store answers: one row read (every tenant's head was read for
    // each probe, a cost that grew with the tenants).
    app.store
        .latest_checkpoint(&trailmark_core::TenantId::system())
        .await?;
    if let Some(why) = app.unready() {
        return Err(ApiError::Unavailable(why));
    }
    Ok("ready\n")
}

async fn metrics<S: Store>(State(app): State<Arc<App<S>>>) -> impl IntoResponse {
    let m = &app.metrics;
    let in_flight = app
        .settings
        .queue_capacity
        .saturating_sub(app.permits.available_permits());
    let mut out = String::new();
    let mut line = |name: &str, kind: &str, help: &str, value: String| {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        );
    };
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    for (name, help, value) in m.counters() {
        line(name, "counter", help, value.to_string());
    }
    line(
        "trailmark_ingest_queue_depth",
        "gauge",
        "Events waiting for the disk now.",
        in_flight.to_string(),
    );
    line(
        "trailmark_ingest_body_bytes_in_flight",
        "gauge",
        "Bytes of ingest bodies being read or parsed now (bounded; see docs/OPERATIONS.md).",
        app.body_bytes_in_flight().to_string(),
    );
    line(
        "trailmark_webhook_deliveries_pending",
        "gauge",
        "Webhook deliveries waiting for their time now (bounded; see docs/OPERATIONS.md).",
        get(&m.webhook_pending).to_string(),
    );
    line(
        "trailmark_ingest_queue_capacity",
        "gauge",
        "Events that may wait for the disk at once.",
        app.settings.queue_capacity.to_string(),
    );
    if let Some(feed) = app.alerts.get() {
        line(
            "trailmark_alert_windows_rebuilding",
            "gauge",
            "1 while serve reads the trail back at start to rebuild the alert windows (bounded; see docs/OPERATIONS.md).",
            u8::from(feed.rebuilding()).to_string(),
        );
    }
    if let Some(index) = app.store.indexer() {
        line(
            "trailmark_index_lag_entries",
            "gauge",
            "Entries appended but not yet in the query indexes (embedded store) or the hourly counts (PostgreSQL): reads scan them; see docs/OPERATIONS.md.",
            index.lag_entries.to_string(),
        );
        line(
            "trailmark_index_rate_entries_per_second",
            "gauge",
            "Entries the indexer wrote (PostgreSQL: counted) per second in its last batch.",
            index.rate.to_string(),
        );
        line(
            "trailmark_index_failing",
            "gauge",
            "1 while the indexer's (PostgreSQL: the counting's) last batch failed (it retries each second).",
            u8::from(index.failing).to_string(),
        );
    }
    capture_slot_lines(m, &mut line);
    capture_outbox_lines(m, &mut line);
    #[allow(clippy::cast_precision_loss)] // microseconds as seconds for Prometheus
    let seconds = get(&m.commit_micros_total) as f64 / 1e6;
    line(
        "trailmark_append_failing",
        "gauge",
        "1 while the latest append failed (nothing is acknowledged until one succeeds).",
        u8::from(get(&m.append_failed_at) != 0).to_string(),
    );
    line(
        "trailmark_commit_seconds_sum",
        "counter",
        "Time spent waiting for durable appends.",
        seconds.to_string(),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

/// The lines of the capture outbox (the drainer inside `serve`), once it
/// was read.
fn capture_outbox_lines(m: &app::Metrics, line: &mut impl FnMut(&str, &str, &str, String)) {
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    if get(&m.capture_outbox) != 1 {
        return;
    }
    #[allow(clippy::cast_precision_loss)] // milliseconds as seconds for Prometheus
    let oldest = format!("{:.3}", get(&m.capture_outbox_oldest_ms) as f64 / 1000.0);
    line(
        "trailmark_capture_outbox_rows",
        "gauge",
        &format!(
            "Captured changes waiting in the capture outbox for the drainer (counted up to {}).",
            app::OUTBOX_COUNT_UP_TO
        ),
        get(&m.capture_outbox_rows).to_string(),
    );
    line(
        "trailmark_capture_outbox_oldest_seconds",
        "gauge",
        "How long ago the oldest change waiting in the capture outbox was captured (0: none waits).",
        oldest,
    );
}

/// The lines of WAL capture's slot (the drainer inside `serve`), while it
/// has one.
fn capture_slot_lines(m: &app::Metrics, line: &mut impl FnMut(&str, &str, &str, String)) {
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    if get(&m.capture_slot) != 1 {
        return;
    }
    line(
        "trailmark_capture_wal_retained_bytes",
        "gauge",
        "WAL the capture slot makes PostgreSQL keep (bound it with max_slot_wal_keep_size; see docs/CAPTURE.md).",
        get(&m.capture_slot_retained_bytes).to_string(),
    );
    line(
        "trailmark_capture_wal_lag_bytes",
        "gauge",
        "WAL written since the last change the ledger acknowledged.",
        get(&m.capture_slot_lag_bytes).to_string(),
    );
    line(
        "trailmark_capture_wal_lost",
        "gauge",
        "1 once PostgreSQL removed WAL the capture slot still needed: changes were not captured.",
        get(&m.capture_slot_lost).to_string(),
    );
    line(
        "trailmark_capture_wal_streamed_transactions_total",
        "counter",
        "The capture slot's transactions past logical_decoding_work_mem that PostgreSQL streamed to the drainer in progress (held by the drainer until their commit; PostgreSQL 14 and later).",
        get(&m.capture_slot_streamed).to_string(),
    );
    line(
        "trailmark_capture_wal_spilled_transactions_total",
        "counter",
        "The capture slot's transactions past logical_decoding_work_mem that PostgreSQL spilled to its own disk (pg_replslot/).",
        get(&m.capture_slot_spilled).to_string(),
    );
}
