//! Trailmark's Rust client (issue 15, first part): the HTTP API on the
//! shared wire types with typed errors ([`Client`]), and a bounded disk
//! spool ([`Spooler`]) whose events survive an outage of the server and a
//! restart of the application and are stored once (ids made at the
//! source). Blocking, like the CLI that will use it.

mod spool;

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;
use trailmark_wire::{AppendedBatch, ProblemOut, Problems};

pub use spool::{SpoolOptions, Spooler};

/// What a call to the server can come to, by kind: a caller tells busy
/// from refused from unreachable by the variant, never by the message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 429 or 503: try again, after `retry_after` when the server said.
    #[error("the server is busy (retry after {retry_after:?})")]
    Busy { retry_after: Option<Duration> },
    /// 400: the request can never succeed as it is; the problems name the
    /// fields (and, in a batch, the events by index).
    #[error("refused: {}", .0.iter().map(|p| format!("{}: {}", p.path, p.message)).collect::<Vec<_>>().join("; "))]
    Rejected(Vec<ProblemOut>),
    /// 409: clashes with what is stored (an id already stored for another
    /// event, an ambiguous id).
    #[error("conflict: {0}")]
    Conflict(String),
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
    /// The spool's file.
    #[error("the spool: {0}")]
    Spool(String),
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

/// A Trailmark server and a key.
#[derive(Clone, Debug)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    auth: String,
}

impl Client {
    /// `url`: `http://` or `https://`; `timeout`: the bound of one call.
    pub fn new(url: &str, key: &str, timeout: Duration) -> Result<Self, Error> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::Invalid(format!(
                "url: {url:?} must start with http:// or https://"
            )));
        }
        if key.trim().is_empty() {
            return Err(Error::Invalid("key: give a Trailmark API key".into()));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
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

    /// `POST /v1/events` of a body already JSON (an array, one event or NDJSON).
    pub fn ingest_json(&self, body: &[u8]) -> Result<AppendedBatch, Error> {
        let response = self
            .agent
            .post(format!("{}/v1/events", self.base))
            .header("Authorization", &self.auth)
            .header("Content-Type", "application/json")
            .send(body);
        answer(response)
    }

    /// An authorized GET of one of the API's typed answers.
    pub fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<T, Error> {
        let mut request = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", &self.auth);
        for (k, v) in query {
            request = request.query(*k, *v);
        }
        answer(request.call())
    }
}

fn answer<T: DeserializeOwned>(
    response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<T, Error> {
    let mut response = response.map_err(|e| Error::Transport(e.to_string()))?;
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
        .limit(64 * 1024 * 1024)
        .read_to_string()
        .map_err(|e| Error::Transport(e.to_string()))?;
    let said = || {
        serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| body.trim().to_owned())
    };
    match status {
        200..=299 => serde_json::from_str(&body)
            .map_err(|e| Error::Transport(format!("an answer not of the expected shape: {e}"))),
        400 => Err(Error::Rejected(
            serde_json::from_str::<Problems>(&body).map_or_else(
                |_| {
                    vec![ProblemOut {
                        index: None,
                        message: body.trim().to_owned(),
                        path: String::new(),
                    }]
                },
                |p| p.errors,
            ),
        )),
        401 => Err(Error::Unauthorized(said())),
        403 => Err(Error::Forbidden(said())),
        404 => Err(Error::NotFound(said())),
        409 => Err(Error::Conflict(said())),
        413 => Err(Error::TooLarge(said())),
        429 | 503 => Err(Error::Busy { retry_after }),
        _ => Err(Error::Server {
            status,
            body: said(),
        }),
    }
}
