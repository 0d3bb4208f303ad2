//! Trailmark's Rust client (issue 15, first part): the HTTP API on the
//! shared wire types with typed errors ([`Client`]), and a bounded disk
//! spool ([`Spooler`]) whose events survive an outage of the server and a
//! restart of the application and are stored once (ids made at the
//! source). Blocking, like the CLI that will use it.

pub mod https;
mod spool;
mod verify;
#[cfg(feature = "axum")]
pub mod web;

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;
use trailmark_wire::{AppendedBatch, ProblemOut, Problems};

pub use spool::{SpoolOptions, Spooler};
pub use verify::{Divergence, Follower, ReceiptFacts, Seen, check_receipt};

/// What a call to the server can come to, by kind: a caller tells busy
/// from refused from unreachable by the variant, never by the message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 429 or 503: try again, after `retry_after` when the server said;
    /// `message`: what it said (a full queue, a store that failed).
    #[error("{}", busy_text(*.retry_after, .message))]
    Busy {
        retry_after: Option<Duration>,
        message: String,
    },
    /// 400: the request can never succeed as it is; the problems name the
    /// fields (and, in a batch, the events by index).
    #[error("refused: {}", problems_text(.0))]
    Rejected(Vec<ProblemOut>),
    /// 409: clashes with what is stored (an id already stored for another
    /// event, an ambiguous id).
    #[error("conflict: {0}")]
    Conflict(String),
    /// 412: the batch named in `Trailmark-After` is not stored; nothing of
    /// this one was: send that one, then this one again.
    #[error("not after: {0}")]
    PreconditionFailed(String),
    /// 401: no key, or not a valid one.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// 403: the key lacks the scope, or may not see the tenant.
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// 413: the body or batch is too large.
    #[error("too large: {0}")]
    TooLarge(String),
    /// Another status (5xx): the server failed.
    #[error("the server answered {status}: {body}")]
    Server { status: u16, body: String },
    /// No answer: refused connection, timeout, a broken answer.
    #[error("the server did not answer: {0}")]
    Transport(String),
    /// Bad input on this side, before anything was sent or stored.
    #[error("{0}")]
    Invalid(String),
    /// A local file of the client (the spool, the remembered checkpoints).
    #[error("{0}")]
    Spool(String),
    /// A receipt or key that does not prove what it claims.
    #[error("not verified: {0}")]
    Unverified(String),
    /// The server showed a checkpoint that does not extend the one seen
    /// before: its log was rolled back or forked.
    #[error("tenant {tenant}: {why}")]
    Diverged {
        tenant: String,
        why: verify::Divergence,
    },
}

fn problems_text(problems: &[ProblemOut]) -> String {
    problems
        .iter()
        .map(|p| {
            if p.path.is_empty() {
                p.message.clone()
            } else {
                format!("{}: {}", p.path, p.message)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Busy { .. } | Self::Server { .. } | Self::Transport(_)
        )
    }
}

/// A Trailmark server and a key: every call blocks until the server
/// answered or the client's timeout passed.
#[derive(Clone, Debug)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    auth: String,
}

impl Client {
    /// `url`: `http://` or `https://` (checked against the authorities
    /// [`https::tls_config_from_env`] gives); `timeout`: the bound of one
    /// call, from connecting to the last byte of the answer.
    pub fn new(url: &str, key: &str, timeout: Duration) -> Result<Self, Error> {
        Self::build(url, key, Some(timeout))
    }

    /// A client whose calls last as long as the server takes to answer
    /// (an export streamed for an hour, a cleanup): connecting is still
    /// bounded, by 30 s. For tools run by a person, not for an
    /// application's request path.
    pub fn without_timeout(url: &str, key: &str) -> Result<Self, Error> {
        Self::build(url, key, None)
    }

    fn build(url: &str, key: &str, timeout: Option<Duration>) -> Result<Self, Error> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::Invalid(format!(
                "url: {url:?} must start with http:// or https://"
            )));
        }
        if key.trim().is_empty() {
            return Err(Error::Invalid("key: give a Trailmark API key".into()));
        }
        let agent = ureq::Agent::config_builder()
            .tls_config(https::tls_config_from_env().map_err(Error::Invalid)?)
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_global(timeout)
            .build()
            .into();
        Ok(Self {
            agent,
            base: url.trim_end_matches('/').to_owned(),
            auth: format!("Bearer {}", key.trim()),
        })
    }

    /// `POST /v1/events`: a batch, durably stored when this answers.
    pub fn ingest(&self, events: &[Value]) -> Result<AppendedBatch, Error> {
        let body = serde_json::to_vec(events).map_err(|e| Error::Invalid(e.to_string()))?;
        self.ingest_json(&body)
    }

    /// `POST /v1/events` of a body already JSON (an array or one event).
    pub fn ingest_json(&self, body: &[u8]) -> Result<AppendedBatch, Error> {
        self.post_events(body, "application/json", None)
    }

    /// `POST /v1/events` of a body already NDJSON (one event a line): the
    /// server parses a large batch's lines side by side.
    pub fn ingest_ndjson(&self, body: &[u8]) -> Result<AppendedBatch, Error> {
        self.post_events(body, "application/x-ndjson", None)
    }

    /// [`Self::ingest_ndjson`] of a batch to be appended only after event
    /// `id` of `tenant` (the last of the batch before, which may still be
    /// on its way; with no tenant, the tenant events default to), named in
    /// [`trailmark_wire::AFTER_HEADER`] as `[<tenant>/]<event id>`.
    /// [`Error::PreconditionFailed`] when that event is not stored.
    pub fn ingest_ndjson_after(
        &self,
        body: &[u8],
        tenant: Option<&str>,
        id: &str,
    ) -> Result<AppendedBatch, Error> {
        let after = match tenant {
            Some(tenant) => format!("{tenant}/{id}"),
            None => id.to_owned(),
        };
        self.post_events(body, "application/x-ndjson", Some(&after))
    }

    fn post_events(
        &self,
        body: &[u8],
        content_type: &str,
        after: Option<&str>,
    ) -> Result<AppendedBatch, Error> {
        let mut request = self
            .agent
            .post(format!("{}/v1/events", self.base))
            .header("Authorization", &self.auth)
            .header("Content-Type", content_type);
        if let Some(after) = after {
            request = request.header(trailmark_wire::AFTER_HEADER, after);
        }
        typed(&text(request.send(body))?)
    }

    /// An authorized GET of one of the API's typed answers (or a
    /// [`Value`]).
    pub fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<T, Error> {
        typed(&self.get_text(path, query)?)
    }

    /// An authorized GET whose answer is text (a checkpoint note, a key).
    pub fn get_text(&self, path: &str, query: &[(&str, &str)]) -> Result<String, Error> {
        text(self.get_request(path, query).call())
    }

    /// A GET whose answer is streamed to the caller (an export).
    pub fn get_stream(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<impl std::io::Read + use<>, Error> {
        let response = self
            .get_request(path, query)
            .call()
            .map_err(|e| Error::Transport(e.to_string()))?;
        if !response.status().is_success() {
            return Err(refusal(response));
        }
        Ok(response.into_body().into_reader())
    }

    /// An authorized POST of a JSON body.
    pub fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T, Error> {
        let response = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Authorization", &self.auth)
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes());
        typed(&text(response)?)
    }

    /// An authorized PUT of a JSON body.
    pub fn put<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T, Error> {
        let response = self
            .agent
            .put(format!("{}{path}", self.base))
            .header("Authorization", &self.auth)
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes());
        typed(&text(response)?)
    }

    /// An authorized DELETE with query parameters.
    pub fn delete<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, Error> {
        let mut request = self
            .agent
            .delete(format!("{}{path}", self.base))
            .header("Authorization", &self.auth);
        for (k, v) in query {
            request = request.query(*k, *v);
        }
        typed(&text(request.call())?)
    }

    fn get_request(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        let mut request = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", &self.auth);
        for (k, v) in query {
            request = request.query(*k, *v);
        }
        request
    }
}

/// The largest answer read whole (pages, reports); exports are streamed.
const ANSWER_LIMIT: u64 = 256 * 1024 * 1024;

fn typed<T: DeserializeOwned>(body: &str) -> Result<T, Error> {
    serde_json::from_str(body)
        .map_err(|e| Error::Transport(format!("an answer not of the expected shape: {e}")))
}

/// A success's body, or the error its status says.
fn text(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<String, Error> {
    let mut response = response.map_err(|e| Error::Transport(e.to_string()))?;
    if !response.status().is_success() {
        return Err(refusal(response));
    }
    response
        .body_mut()
        .with_config()
        .limit(ANSWER_LIMIT)
        .read_to_string()
        .map_err(|e| Error::Transport(e.to_string()))
}

/// A 429's or 503's text: what the server said, and when to try again.
fn busy_text(retry_after: Option<Duration>, message: &str) -> String {
    let said = if message.is_empty() {
        "retry later"
    } else {
        message
    };
    match retry_after {
        Some(d) => format!(
            "the server cannot answer now: {said} (retry after {} s)",
            d.as_secs()
        ),
        None => format!("the server cannot answer now: {said}"),
    }
}

/// The error a non-success answer says, by its status.
fn refusal(mut response: ureq::http::Response<ureq::Body>) -> Error {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .map(Duration::from_secs);
    let body = response
        .body_mut()
        .with_config()
        .limit(1024 * 1024)
        .read_to_string()
        .unwrap_or_default();
    let said = || {
        serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| body.trim().to_owned())
    };
    match status {
        400 => Error::Rejected(serde_json::from_str::<Problems>(&body).map_or_else(
            |_| {
                vec![ProblemOut {
                    index: None,
                    message: said(),
                    path: String::new(),
                }]
            },
            |p| p.errors,
        )),
        401 => Error::Unauthorized(said()),
        403 => Error::Forbidden(said()),
        404 => Error::NotFound(said()),
        409 => Error::Conflict(said()),
        412 => Error::PreconditionFailed(said()),
        413 => Error::TooLarge(said()),
        429 | 503 => Error::Busy {
            retry_after,
            message: said(),
        },
        _ => Error::Server {
            status,
            body: said(),
        },
    }
}
