//! The web viewer at `/`: server-rendered pages over the same handlers as
//! the JSON API, so every page view is authorized, tenant-scoped and audited
//! exactly as the API call behind it.
//!
//! Sign-in takes an API key (read or admin scope) and keeps it in a
//! server-side session; the browser holds only a random session id in an
//! `HttpOnly; SameSite=Strict` cookie. Sessions live in this process's
//! memory (behind a load balancer, pin sessions to a server) and end after
//! eight hours, at sign-out, or as soon as the key is revoked.

mod alerts;
mod charts;
mod integrity;
mod pages;
mod retention;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use trailmark_store::Store;

use crate::app::{App, Caller, random_bytes};
use crate::error::ApiError;

const COOKIE: &str = "tm_session";
const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
const STYLE: &str = include_str!("style.css");

/// Every page's script: the tenant switch submits on change.
const APP_SCRIPT: &str = r"
for (const select of document.querySelectorAll('form.tenant select')) {
  select.addEventListener('change', () => select.form.submit());
}
";

fn script(body: &'static str) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        body,
    )
}

/// What every viewer answer carries: a strict Content-Security-Policy (no
/// inline script, no framing), no sniffing, no referrer beyond this server,
/// and no caching of trail pages.
async fn security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let asset = matches!(
        std::path::Path::new(request.uri().path())
            .extension()
            .and_then(|e| e.to_str()),
        Some("css" | "js")
    );
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("x-content-type-options", "nosniff"),
        // Not no-referrer: with it, browsers send `Origin: null` on the
        // pages' own form posts, which the origin check then refuses.
        ("referrer-policy", "same-origin"),
        ("x-frame-options", "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !asset {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A form post from another site is refused: every POST under `/ui/` must
/// come with an `Origin` of this server (SameSite=Strict cookies aside).
async fn same_origin(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if request.method() == axum::http::Method::POST {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let origin = request
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let ours = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|o| !host.is_empty() && o == host);
        if !ours {
            return (
                StatusCode::FORBIDDEN,
                Html("<p>This form must be sent from this server's own pages.</p>".to_owned()),
            )
                .into_response();
        }
    }
    next.run(request).await
}

/// A signed-in browser.
#[derive(Clone)]
pub(crate) struct Session {
    key: String,
    /// The tenant an unbound (admin) key is looking at; None: all.
    tenant: Option<String>,
    expires: Instant,
    /// The token every form and script post of this session carries.
    csrf: String,
}

/// The viewer's state: the app and the sessions of this process.
pub struct Viewer<S> {
    pub(crate) app: Arc<App<S>>,
    sessions: Mutex<HashMap<String, Session>>,
    pub(crate) verifications: integrity::Jobs,
}

impl<S> std::fmt::Debug for Viewer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Viewer").finish_non_exhaustive()
    }
}

impl<S> Viewer<S> {
    pub fn new(app: Arc<App<S>>) -> Self {
        Self {
            app,
            sessions: Mutex::new(HashMap::new()),
            verifications: integrity::Jobs::default(),
        }
    }
}

/// The viewer's routes.
pub fn routes<S: Store>(viewer: Arc<Viewer<S>>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/events") }))
        .route("/ui/style.css", get(style))
        .route("/ui/app.js", get(|| async { script(APP_SCRIPT) }))
        .route(
            "/ui/integrity.js",
            get(|| async { script(integrity::SCRIPT) }),
        )
        .route("/ui/login", get(login_page).post(login::<S>))
        .route("/ui/logout", post(logout::<S>))
        .route("/ui/tenant", post(switch_tenant::<S>))
        .route("/ui/events", get(pages::events::<S>))
        .route("/ui/events/{id}", get(pages::event::<S>))
        .route("/ui/history/{type}/{id}", get(pages::history::<S>))
        .route("/ui/export", get(pages::export::<S>))
        .route("/ui/activity", get(charts::activity::<S>))
        .route("/ui/integrity", get(integrity::page::<S>))
        .route("/ui/retention", get(retention::page::<S>))
        .route("/ui/alerts", get(alerts::list::<S>))
        .route("/ui/alerts/{id}", get(alerts::alert::<S>))
        .route("/ui/alerts/{id}/ack", post(alerts::ack::<S>))
        .route("/ui/retention/preview", post(retention::preview::<S>))
        .route("/ui/verify", post(integrity::start::<S>))
        .route("/ui/verify/{job}", get(integrity::status::<S>))
        .layer(axum::middleware::from_fn(same_origin))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(viewer)
}

async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}

/// HTML-escapes text for element content and attribute values.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Invisible characters are shown, so that two values that
            // differ never look the same.
            c if trailmark_core::is_format_char(c)
                || (c.is_control() && !matches!(c, '\n' | '\r' | '\t')) =>
            {
                let _ = write!(
                    out,
                    "<span class=\"invisible\">U+{:04X}</span>",
                    u32::from(c)
                );
            }
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query or path component.
pub(crate) fn enc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A whole page: navigation, the signed-in tenant switcher, the body.
pub(crate) fn layout(title: &str, current: &str, who: Option<&Who>, body: &str) -> Html<String> {
    let nav = who.map_or_else(String::new, |who| {
        let link = |href: &str, label: &str| {
            let here = if href == current { " aria-current=\"page\"" } else { "" };
            format!("<a href=\"{href}\"{here}>{label}</a>")
        };
        let tenants = if who.tenants.is_empty() {
            String::new()
        } else {
            let mut options = String::new();
            for (value, label) in std::iter::once((String::new(), "all tenants".to_owned()))
                .chain(who.tenants.iter().map(|t| (t.clone(), t.clone())))
            {
                let selected = if who.tenant.as_deref().unwrap_or("") == value {
                    " selected"
                } else {
                    ""
                };
                let _ = write!(
                    options,
                    "<option value=\"{}\"{selected}>{}</option>",
                    esc(&value),
                    esc(&label)
                );
            }
            format!(
                "<form method=\"post\" action=\"/ui/tenant\" class=\"tenant\"><label>Tenant <select name=\"tenant\">{options}</select></label><input type=\"hidden\" name=\"csrf\" value=\"{}\"><noscript><button>Switch</button></noscript></form>",
                esc(&who.csrf)
            )
        };
        format!(
            "<nav><strong>Trailmark</strong>{}{}{}{}{}{tenants}<span class=\"who\">{}</span><form method=\"post\" action=\"/ui/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button>Sign out</button></form></nav>",
            link("/ui/events", "Events"),
            link("/ui/activity", "Activity"),
            link("/ui/integrity", "Integrity"),
            link("/ui/alerts", "Alerts"),
            if who.caller.key.scopes.allows(trailmark_store::Scope::Admin) {
                link("/ui/retention", "Retention")
            } else {
                String::new()
            },
            esc(&who.label),
            esc(&who.csrf),
        )
    });
    let token = who.map_or_else(String::new, |w| {
        format!("<meta name=\"csrf-token\" content=\"{}\">", esc(&w.csrf))
    });
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{} · Trailmark</title><link rel=\"stylesheet\" href=\"/ui/style.css\"><script src=\"/ui/app.js\" defer></script>{token}</head><body>{nav}<main>{body}</main></body></html>",
        esc(title)
    ))
}

/// Who is signed in, for a page.
pub(crate) struct Who {
    pub caller: Caller,
    /// The tenant being looked at (None: every tenant the key sees).
    pub tenant: Option<String>,
    /// Tenants an unbound key may switch between.
    pub tenants: Vec<String>,
    /// The session's form token.
    pub csrf: String,
    pub label: String,
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// Why a page could not be shown.
pub(crate) enum PageError {
    /// Not signed in (or the key stopped working): to the sign-in page.
    SignIn,
    Api(ApiError),
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn => Redirect::to("/ui/login").into_response(),
            Self::Api(e) => {
                let status = e.status();
                let body = format!(
                    "<h1>{}</h1><p>{}</p><p><a href=\"/ui/events\">Back to events</a></p>",
                    status.as_u16(),
                    esc(&e.explain())
                );
                (status, layout("Error", "", None, &body)).into_response()
            }
        }
    }
}

impl<S: Store> Viewer<S> {
    /// The signed-in caller of a request, or `SignIn`.
    pub(crate) async fn who(&self, headers: &HeaderMap) -> Result<Who, PageError> {
        let id = session_id(headers).ok_or(PageError::SignIn)?;
        let session = {
            let mut sessions = self.sessions.lock().map_err(|_| PageError::SignIn)?;
            sessions.retain(|_, s| s.expires > Instant::now());
            sessions.get(&id).cloned().ok_or(PageError::SignIn)?
        };
        let Ok(caller) = self.app.authenticate_secret(&session.key).await else {
            // Revoked (or deleted) since sign-in: the session ends.
            if let Ok(mut sessions) = self.sessions.lock() {
                sessions.remove(&id);
            }
            return Err(PageError::SignIn);
        };
        if caller.require(trailmark_store::Scope::Read).is_err() {
            return Err(PageError::SignIn);
        }
        let tenants = if caller.key.tenant.is_none() {
            self.app
                .store
                .heads()
                .await
                .map_err(ApiError::from)?
                .into_iter()
                .map(|h| h.tenant.as_str().to_owned())
                .collect()
        } else {
            Vec::new()
        };
        let tenant = caller
            .key
            .tenant
            .as_ref()
            .map(|t| t.as_str().to_owned())
            .or(session.tenant);
        let label = format!(
            "{} ({}){}",
            caller.key.name,
            caller.key.scopes.to_text(),
            caller
                .key
                .tenant
                .as_ref()
                .map(|t| format!(" · {t}"))
                .unwrap_or_default()
        );
        Ok(Who {
            caller,
            tenant,
            tenants,
            label,
            csrf: session.csrf.clone(),
        })
    }
}

fn login_form(error: Option<&str>) -> Html<String> {
    let error = error.map_or_else(String::new, |e| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e))
    });
    layout(
        "Sign in",
        "",
        None,
        &format!(
            "<h1>Sign in to Trailmark</h1>{error}<form method=\"post\" action=\"/ui/login\" class=\"login\"><label for=\"key\">API key (read or admin scope)</label><input id=\"key\" name=\"key\" type=\"password\" autocomplete=\"off\" required autofocus><button type=\"submit\">Sign in</button></form>"
        ),
    )
}

async fn login_page() -> Html<String> {
    login_form(None)
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    key: String,
}

async fn login<S: Store>(
    State(viewer): State<Arc<Viewer<S>>>,
    Form(form): Form<LoginForm>,
) -> Response {
    let key = form.key.trim().to_owned();
    let caller = match viewer.app.authenticate_secret(&key).await {
        Ok(c) => c,
        Err(e) => {
            return (
                StatusCode::UNAUTHORIZED,
                login_form(Some(&format!("Not signed in: {e}."))),
            )
                .into_response();
        }
    };
    if caller.require(trailmark_store::Scope::Read).is_err() {
        return (
            StatusCode::FORBIDDEN,
            login_form(Some(
                "This key cannot read the trail: use a key with the read or admin scope.",
            )),
        )
            .into_response();
    }
    let Ok(token) = random_bytes::<32>() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let token = hex::encode(token);
    let Ok(csrf) = random_bytes::<32>() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if let Ok(mut sessions) = viewer.sessions.lock() {
        sessions.insert(
            token.clone(),
            Session {
                key,
                tenant: None,
                expires: Instant::now() + SESSION_TTL,
                csrf: hex::encode(csrf),
            },
        );
    }
    let mut meta = serde_json::Map::new();
    meta.insert("via".into(), "web viewer".into());
    let _ = viewer.app.audit(Some(&caller), "sign_in", None, meta).await;
    let cookie = format!(
        "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        SESSION_TTL.as_secs()
    );
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, "/ui/events".to_owned()),
        ],
    )
        .into_response()
}

#[derive(Deserialize)]
pub(crate) struct TokenForm {
    csrf: String,
}

async fn logout<S: Store>(
    State(viewer): State<Arc<Viewer<S>>>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    if let (Some(id), Ok(mut sessions)) = (session_id(&headers), viewer.sessions.lock())
        && sessions
            .get(&id)
            .is_some_and(|s| same_token(&s.csrf, &form.csrf))
    {
        sessions.remove(&id);
    }
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
            ),
            (header::LOCATION, "/ui/login".to_owned()),
        ],
    )
        .into_response()
}

#[derive(Deserialize)]
pub(crate) struct TenantForm {
    tenant: String,
    csrf: String,
}

/// Compares a posted form token with the session's, in constant time.
pub(crate) fn same_token(session: &str, posted: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    !session.is_empty() && bool::from(session.as_bytes().ct_eq(posted.as_bytes()))
}

async fn switch_tenant<S: Store>(
    State(viewer): State<Arc<Viewer<S>>>,
    headers: HeaderMap,
    Form(form): Form<TenantForm>,
) -> Result<Response, PageError> {
    let who = viewer.who(&headers).await?;
    if !same_token(&who.csrf, &form.csrf) {
        return Err(ApiError::Forbidden(
            "the form's token does not match this session: reload the page".into(),
        )
        .into());
    }
    let wanted = Some(form.tenant).filter(|t| !t.is_empty());
    // Only an unbound key switches, and only to a tenant it may see.
    who.caller.visible(wanted.as_deref())?;
    if who.caller.key.tenant.is_none()
        && let (Some(id), Ok(mut sessions)) = (session_id(&headers), viewer.sessions.lock())
        && let Some(session) = sessions.get_mut(&id)
    {
        session.tenant = wanted;
    }
    Ok(Redirect::to("/ui/events").into_response())
}
