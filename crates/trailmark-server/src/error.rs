//! Every failure the API answers, as a JSON body naming what was wrong.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use trailmark_store::{ErrorKind, StoreError};

/// One problem in a request, located by batch index and field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub index: Option<usize>,
    pub path: String,
    pub message: String,
}

impl Problem {
    pub fn new(index: Option<usize>, path: &str, message: impl Into<String>) -> Self {
        Self {
            index,
            path: path.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid request")]
    Invalid(Vec<Problem>),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    TooLarge(String),
    /// The request is ambiguous or clashes with what is stored.
    #[error("{0}")]
    Conflict(String),
    /// A condition the request's headers set does not hold; nothing was
    /// done (`Trailmark-After`: the batch before is not stored).
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("the ingest queue is full; retry after a second")]
    Busy,
    /// The server cannot serve the request now for a fault of its own (the
    /// operating system gave no randomness): a 503, retry later.
    #[error("{0}; retry later")]
    Unavailable(String),
    #[error("storage failed: {0}")]
    Store(#[from] StoreError),
}

impl ApiError {
    /// A single problem with a query or path parameter.
    pub fn param(name: &str, message: impl Into<String>) -> Self {
        Self::Invalid(vec![Problem::new(None, name, message)])
    }
}

impl ApiError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::Busy => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Store(e) => match e.kind() {
                ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
                ErrorKind::Conflict => StatusCode::CONFLICT,
                ErrorKind::Corrupt => StatusCode::INTERNAL_SERVER_ERROR,
                ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            },
        }
    }

    /// One line for a person: the problems of an invalid request spelled out.
    pub fn explain(&self) -> String {
        match self {
            ApiError::Invalid(problems) => problems
                .iter()
                .map(|p| format!("{}: {}", p.path, p.message))
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        use trailmark_wire::{ErrorBody, ProblemOut, Problems};
        let status = self.status();
        let problems =
            |list: Vec<ProblemOut>| axum::Json(Problems { errors: list }).into_response();
        let error = |text: String| axum::Json(ErrorBody { error: text }).into_response();
        let body = match &self {
            ApiError::Invalid(list) => problems(
                list.iter()
                    .map(|p| ProblemOut {
                        index: p.index,
                        message: p.message.clone(),
                        path: p.path.clone(),
                    })
                    .collect(),
            ),
            ApiError::Store(StoreError::BadRequest { field, message }) => {
                problems(vec![ProblemOut {
                    index: None,
                    message: message.clone(),
                    path: (*field).to_owned(),
                }])
            }
            // Every 400 has the one shape: a list of problems.
            ApiError::Store(e) if e.kind() == ErrorKind::BadRequest => problems(vec![ProblemOut {
                index: None,
                message: e.to_string(),
                path: String::new(),
            }]),
            ApiError::Store(e) => error(match e.kind() {
                ErrorKind::Corrupt => {
                    tracing::error!(error = %e.with_causes(), "stored data is damaged");
                    format!(
                        "stored data is damaged or was changed outside trailmark ({e}); \
                         an operator should run `trailmark verify`"
                    )
                }
                ErrorKind::Unavailable => {
                    tracing::error!(error = %e.with_causes(), "storage failed");
                    format!("storage failed: {e}; retry later")
                }
                ErrorKind::BadRequest | ErrorKind::Conflict => e.to_string(),
            }),
            ApiError::Unauthorized(m) => error((*m).to_owned()),
            ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::TooLarge(m)
            | ApiError::Conflict(m)
            | ApiError::PreconditionFailed(m) => error(m.clone()),
            ApiError::Busy => error(self.to_string()),
            ApiError::Unavailable(m) => {
                tracing::error!(error = %m, "cannot serve the request");
                error(self.to_string())
            }
        };
        let mut response = (status, body).into_response();
        if matches!(self, ApiError::Busy) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if matches!(self, ApiError::Unauthorized(_)) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_randomness_is_the_servers_fault_a_503_to_retry() {
        let error = crate::app::no_randomness("getrandom: ENOSYS");
        assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            error_text(response),
            "no randomness: getrandom: ENOSYS; retry later"
        );
    }

    fn error_text(response: Response) -> String {
        let body = body_bytes(response);
        let parsed: serde_json::Value = serde_json::from_slice(&body).expect("a JSON body");
        parsed["error"].as_str().expect("an error text").to_owned()
    }

    fn body_bytes(response: Response) -> Vec<u8> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        runtime
            .block_on(axum::body::to_bytes(response.into_body(), 1 << 16))
            .expect("the body")
            .to_vec()
    }
}
