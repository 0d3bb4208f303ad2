//! The HTTP server loop `serve` runs: every connection bounded in number
//! and in how long its request may take to arrive, and a stop that waits
//! for requests in flight only so long.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The bounds of the HTTP server (docs/OPERATIONS.md lists them).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections open at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// How long a request's head may take to arrive (also an idle
    /// keep-alive connection's wait for its next request).
    pub header_timeout: Duration,
    /// How long a request may take, body included, until its answer starts.
    pub request_timeout: Duration,
    /// How long a stop waits for requests in flight.
    pub shutdown_deadline: Duration,
}

/// Answers 408 when a request (its body included) takes longer than
/// `limit` to be answered; a streamed answer, once started, is not cut.
pub fn with_request_timeout(router: Router, limit: Duration) -> Router {
    router.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| async move {
            match tokio::time::timeout(limit, next.run(req)).await {
                Ok(response) => response,
                Err(_) => (
                    axum::http::StatusCode::REQUEST_TIMEOUT,
                    axum::Json(serde_json::json!({
                        "error": format!("the request took longer than {} s", limit.as_secs())
                    })),
                )
                    .into_response(),
            }
        },
    ))
}

use axum::response::IntoResponse as _;

/// Serves `router` on `listener` until `stop` completes, then waits at
/// most `limits.shutdown_deadline` for the requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    stop: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut stop => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait, do not spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        // Each request knows its connection's peer (recorded in `_system`).
        let service = TowerToHyperService::new(
            router
                .clone()
                .layer(axum::Extension(trailmark_server::Peer(peer.ip()))),
        );
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_deadline) => {
            tracing::warn!(
                "requests still in flight after {} s; stopping without them",
                limits.shutdown_deadline.as_secs()
            );
        }
    }
}
