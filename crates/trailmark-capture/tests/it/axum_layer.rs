//! The axum integration, as docs/integrations.md shows it: the Rust
//! client's layer (`trailmark_client::web::track`) puts the request's
//! context in a task-local, the application adds who signed in; handlers
//! open a transaction and apply the context first. Against the real
//! PostgreSQL.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{post, put};
use serde_json::Value;
use tokio::sync::Mutex;
use tokio_postgres::Client;
use tower::ServiceExt;
use trailmark_capture::{TableSpec, install};
use trailmark_client::web::{self, Actor, TrustedProxies};

use crate::TestDb;

/// The application's authentication: who is signed in; here an `x-user`
/// header set by an authenticating proxy stands in for it.
async fn sign_in(request: Request, next: Next) -> Response {
    if let Some(user) = request
        .headers()
        .get("x-user")
        .and_then(|v| v.to_str().ok())
    {
        let actor = Actor::user(user);
        web::update(|c| c.actor = Some(actor));
    }
    next.run(request).await
}

/// A tiny pool (two connections, reused by every request); an application
/// would use deadpool-postgres or bb8.
struct Connections {
    free: Mutex<Vec<Client>>,
    available: tokio::sync::Semaphore,
}
type Pool = Arc<Connections>;

async fn with_transaction(pool: &Pool, sql: String) -> StatusCode {
    let _turn = pool.available.acquire().await.expect("pool open");
    let mut client = pool.free.lock().await.pop().expect("a free connection");
    let status = async {
        let tx = client.transaction().await.ok()?;
        if let Some(context) = web::current() {
            trailmark_capture::context::apply(&context.capture(), &tx)
                .await
                .ok()?;
        }
        tx.batch_execute(&sql).await.ok()?;
        tx.commit().await.ok()
    }
    .await
    .map_or(StatusCode::INTERNAL_SERVER_ERROR, |()| StatusCode::OK);
    pool.free.lock().await.push(client);
    status
}

async fn rename(State(pool): State<Pool>, Path(id): Path<i32>) -> StatusCode {
    with_transaction(&pool, format!("UPDATE item SET n = n + 1 WHERE id = {id}")).await
}

/// Work handed to another task keeps the context when spawned with
/// `web::spawn` (a plain `tokio::spawn` would start without it).
async fn in_background(State(pool): State<Pool>) -> StatusCode {
    web::spawn(async move { with_transaction(&pool, "UPDATE item SET n = 0".to_owned()).await })
        .await
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

async fn app(db: &TestDb) -> Router {
    let mut pool = Vec::new();
    for _ in 0..2 {
        pool.push(db.another().await);
    }
    Router::new()
        .route("/items/{id}", put(rename))
        .route("/items/reset", post(in_background))
        .layer(middleware::from_fn(sign_in))
        .layer(middleware::from_fn_with_state(
            TrustedProxies::default(),
            web::track,
        ))
        .with_state(Arc::new(Connections {
            available: tokio::sync::Semaphore::new(pool.len()),
            free: Mutex::new(pool),
        }))
}

fn request(method: &str, path: &str, user: Option<&str>) -> Request {
    let mut r = Request::builder()
        .method(method)
        .uri(path)
        .header("user-agent", "axum-test")
        .header("x-request-id", "rq-5");
    if let Some(u) = user {
        r = r.header("x-user", u);
    }
    r.body(Body::empty()).unwrap()
}

async fn contexts(db: &TestDb) -> Vec<Value> {
    db.client
        .query("SELECT context FROM trailmark.outbox ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn an_axum_layer_attributes_each_request_and_pooled_connections_forget_it() {
    let mut db = TestDb::new().await;
    db.client
        .batch_execute(
            "CREATE TABLE item (id int PRIMARY KEY, n int);
             INSERT INTO item SELECT g, 0 FROM generate_series(1, 10) g",
        )
        .await
        .unwrap();
    install(
        &mut db.client,
        &[TableSpec::parse("public.item").unwrap()],
        None,
    )
    .await
    .unwrap();
    let app = app(&db).await;
    // Concurrent requests by two users and anonymous ones, on two connections.
    let mut calls = Vec::new();
    for i in 1..=10 {
        for user in [Some("alice"), Some("bob"), None] {
            let app = app.clone();
            calls.push(tokio::spawn(async move {
                app.oneshot(request("PUT", &format!("/items/{i}"), user))
                    .await
                    .unwrap()
                    .status()
            }));
        }
    }
    for call in calls {
        assert_eq!(call.await.unwrap(), StatusCode::OK);
    }
    let seen = contexts(&db).await;
    assert_eq!(seen.len(), 30);
    let count = |actor: Option<&str>| {
        seen.iter()
            .filter(|c| c.get("actor_id").and_then(Value::as_str) == actor)
            .count()
    };
    assert_eq!(
        (count(Some("alice")), count(Some("bob")), count(None)),
        (10, 10, 10)
    );
    for c in &seen {
        assert_eq!(c["request_id"], "rq-5");
        assert_eq!(c["user_agent"], "axum-test");
    }

    let status = app
        .oneshot(request("POST", "/items/reset", Some("carol")))
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);
    let seen = contexts(&db).await;
    assert_eq!(seen.len(), 40);
    assert!(seen[30..].iter().all(|c| c["actor_id"] == "carol"));
}
