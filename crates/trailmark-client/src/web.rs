//! For axum (and any tower stack) applications, with the `axum` feature:
//! the request's audit context in a tokio task-local ([`track`] sets it
//! for each request; [`spawn`] carries it into tasks the handler starts),
//! the client's IP taken from `Forwarded` / `X-Forwarded-For` only when
//! the request came through a configured trusted proxy
//! ([`TrustedProxies`]), and the events every application records:
//! [`login`], [`logout`], [`login_failed`], [`event`].
//!
//! ```ignore
//! let proxies = TrustedProxies::parse(["10.0.0.0/8"])?;
//! let app = Router::new()
//!     .route("/login", post(login_handler))
//!     .layer(axum::middleware::from_fn_with_state(proxies, trailmark_client::web::track));
//! axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
//! ```
//!
//! Without `into_make_service_with_connect_info` the peer is unknown and no
//! IP is recorded: a forwarded address is never believed on its own.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{Map, Value};

use crate::Error;

/// Who acts: `kind` is the event's `actor.type` (`user`, `service`, …).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub id: String,
    pub kind: String,
    pub name: Option<String>,
}

impl Actor {
    pub fn user(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            kind: "user".into(),
            name: None,
        }
    }

    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    fn json(&self) -> Value {
        let mut actor = Map::new();
        actor.insert("id".into(), Value::from(self.id.as_str()));
        actor.insert("type".into(), Value::from(self.kind.as_str()));
        if let Some(name) = &self.name {
            actor.insert("name".into(), Value::from(name.as_str()));
        }
        Value::Object(actor)
    }
}

/// What a request tells about every event recorded while serving it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    pub actor: Option<Actor>,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub session_id: Option<String>,
    pub tenant: Option<String>,
    pub reason: Option<String>,
}

impl Context {
    /// This context as the capture reads it from the application's
    /// transaction: send `capture().set_context_sql()` with
    /// `capture().to_json()` first thing in the transaction that writes
    /// (`trailmark_capture::context::apply` does it on tokio-postgres), and
    /// a captured change carries the same actor, IP and request as the
    /// application's own events.
    pub fn capture(&self) -> trailmark_core::CaptureContext {
        trailmark_core::CaptureContext {
            actor_id: self.actor.as_ref().map(|a| a.id.clone()),
            actor_type: self.actor.as_ref().map(|a| a.kind.clone()),
            actor_name: self.actor.as_ref().and_then(|a| a.name.clone()),
            ip: self.ip.map(|ip| ip.to_string()),
            user_agent: self.user_agent.clone(),
            request_id: self.request_id.clone(),
            session_id: self.session_id.clone(),
            tenant: self.tenant.clone(),
            reason: self.reason.clone(),
        }
    }

    /// `event` with this context filled in where the event says nothing:
    /// the actor, `context.{ip,user_agent,request_id,session_id}`, the
    /// tenant and the reason.
    fn apply(&self, event: &mut Map<String, Value>) {
        if let Some(actor) = &self.actor {
            event.entry("actor").or_insert_with(|| actor.json());
        }
        let Value::Object(context) = event
            .entry("context")
            .or_insert_with(|| Value::Object(Map::new()))
        else {
            return;
        };
        let fields = [
            ("ip", self.ip.map(|ip| ip.to_string())),
            ("user_agent", self.user_agent.clone()),
            ("request_id", self.request_id.clone()),
            ("session_id", self.session_id.clone()),
        ];
        for (name, value) in fields {
            if let Some(v) = value {
                context.entry(name).or_insert(Value::String(v));
            }
        }
        if context.is_empty() {
            event.remove("context");
        }
        for (name, value) in [("tenant", &self.tenant), ("reason", &self.reason)] {
            if let Some(v) = value {
                event
                    .entry(name)
                    .or_insert_with(|| Value::String(v.clone()));
            }
        }
    }
}

tokio::task_local! {
    static CONTEXT: Arc<Mutex<Context>>;
}

/// The context of the request being served (a copy), `None` outside one.
pub fn current() -> Option<Context> {
    CONTEXT
        .try_with(|c| {
            c.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
        })
        .ok()
}

/// Changes the current request's context (the actor once the application
/// knows who signed in, a tenant, a reason); false outside a request.
pub fn update(change: impl FnOnce(&mut Context)) -> bool {
    CONTEXT
        .try_with(|c| change(&mut c.lock().unwrap_or_else(std::sync::PoisonError::into_inner)))
        .is_ok()
}

/// Runs `future` with `context` as its current context.
pub async fn scope<F: Future>(context: Context, future: F) -> F::Output {
    CONTEXT.scope(Arc::new(Mutex::new(context)), future).await
}

/// `tokio::spawn` that carries a copy of the current context into the new
/// task (a plain `tokio::spawn` starts with none: task-locals do not
/// follow a task by themselves).
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let context = current();
    tokio::spawn(async move {
        match context {
            Some(c) => scope(c, future).await,
            None => future.await,
        }
    })
}

/// The proxies whose forwarding headers are believed: addresses and
/// networks (`10.0.0.1`, `10.0.0.0/8`, `fd00::/8`). Empty: no header is
/// believed, the client is the TCP peer. The rule is
/// [`trailmark_core::TrustedProxies`]' (the server's own records follow it
/// too); this reads it from a request's headers.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(trailmark_core::TrustedProxies);

impl TrustedProxies {
    /// A bad entry is an error naming it, never skipped.
    pub fn parse<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Result<Self, Error> {
        trailmark_core::TrustedProxies::parse(items)
            .map(Self)
            .map_err(Error::Invalid)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(ip)
    }

    /// The client's address: the peer, unless the peer is a trusted
    /// proxy; then the nearest address in the forwarding chain
    /// (`Forwarded` when present, else `X-Forwarded-For`) that is not one.
    /// An unreadable hop stops the walk: nothing behind it is believed.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let values = |name: &'static str| {
            headers
                .get_all(name)
                .into_iter()
                .filter_map(|v| v.to_str().ok())
        };
        self.0
            .client_ip(peer, values("forwarded"), values("x-forwarded-for"))
    }
}

/// The longest header value kept in the context (a user agent can be
/// kilobytes).
const HEADER_LIMIT: usize = 512;

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    if value.is_empty() {
        return None;
    }
    let mut end = value.len().min(HEADER_LIMIT);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    Some(value[..end].to_owned())
}

/// The middleware (`axum::middleware::from_fn_with_state(proxies, track)`):
/// serves the request inside a context holding its client IP, user agent
/// and request id (`X-Request-Id`); the application adds the actor with
/// [`update`].
pub async fn track(
    State(proxies): State<TrustedProxies>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|peer| proxies.client_ip(peer.0.ip(), headers));
    let context = Context {
        ip,
        user_agent: header(headers, "user-agent"),
        request_id: header(headers, "x-request-id"),
        ..Context::default()
    };
    scope(context, next.run(request)).await
}

/// An event of `action` with the current context applied; the actor is
/// the context's unless `fields` names one. Refused when neither does.
pub fn event(action: &str, fields: Value) -> Result<Value, Error> {
    if action.trim().is_empty() {
        return Err(Error::Invalid("action: give a non-empty action".into()));
    }
    let mut event = match fields {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        _ => return Err(Error::Invalid("fields: give a JSON object".into())),
    };
    event.insert("action".into(), Value::from(action));
    if let Some(context) = current() {
        context.apply(&mut event);
    }
    if !event.contains_key("actor") {
        return Err(Error::Invalid(
            "actor: give one in the fields, or set it in the request context (web::update)".into(),
        ));
    }
    Ok(Value::Object(event))
}

/// `auth.login` by `actor`, who becomes the current request's actor.
pub fn login(actor: Actor) -> Result<Value, Error> {
    let json = actor.json();
    update(|c| c.actor = Some(actor));
    event("auth.login", serde_json::json!({"actor": json}))
}

/// `auth.logout` by `actor`.
pub fn logout(actor: &Actor) -> Result<Value, Error> {
    event("auth.logout", serde_json::json!({"actor": actor.json()}))
}

/// A failed login: `auth.login` with `outcome = failure`, by an anonymous
/// actor named by the claimed username (what the failed-logins alert
/// counts per username).
pub fn login_failed(username: Option<&str>) -> Result<Value, Error> {
    let mut actor = serde_json::json!({"id": "anonymous", "type": "anonymous"});
    if let Some(name) = username.filter(|u| !u.trim().is_empty()) {
        actor["name"] = Value::from(name);
    }
    event(
        "auth.login",
        serde_json::json!({"actor": actor, "outcome": "failure"}),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The rule is core's (`trailmark_core::TrustedProxies`, tested
    /// there); this reads it from a request: every line of both headers,
    /// `Forwarded` over `X-Forwarded-For`.
    #[test]
    fn forwarded_addresses_are_read_from_every_header_line() {
        let proxies = TrustedProxies::parse(["10.0.0.0/8", "fd00::/8"]).unwrap();
        let xff = headers(&[
            ("x-forwarded-for", "198.51.100.9, 203.0.113.7"),
            ("x-forwarded-for", "10.1.1.1"),
        ]);
        assert_eq!(proxies.client_ip(ip("10.0.0.2"), &xff), ip("203.0.113.7"));
        assert_eq!(proxies.client_ip(ip("192.0.2.1"), &xff), ip("192.0.2.1"));
        let both = headers(&[
            ("forwarded", "for=\"[2001:db8::1]:4711\";proto=https"),
            ("forwarded", "for=10.2.2.2"),
            ("x-forwarded-for", "198.51.100.1"),
        ]);
        assert_eq!(proxies.client_ip(ip("10.0.0.2"), &both), ip("2001:db8::1"));
        let e = TrustedProxies::parse(["proxy.local"]).unwrap_err();
        assert!(e.to_string().contains("proxy.local"), "{e}");
    }

    #[tokio::test]
    async fn the_context_reaches_tasks_spawned_with_spawn() {
        let context = Context {
            actor: Some(Actor::user("42").named("alice")),
            ip: Some(ip("203.0.113.7")),
            ..Context::default()
        };
        let event = scope(context, async {
            spawn(async { event("report.export", Value::Null) })
                .await
                .unwrap()
        })
        .await
        .unwrap();
        assert_eq!(event["actor"]["id"], "42");
        assert_eq!(event["context"]["ip"], "203.0.113.7");
        // Outside a request, an event needs its actor given.
        assert!(event_outside().is_err());
    }

    fn event_outside() -> Result<Value, Error> {
        event("report.export", Value::Null)
    }
}
