//! Request extractors whose rejections are the API's JSON errors (axum's
//! own answer in plain text).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, Problem};

/// Query parameters; a malformed one is a 400 naming it, in JSON.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => {
                let text = rejection.body_text();
                let detail = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text)
                    .to_owned();
                let path = detail
                    .split_once(':')
                    .map(|(field, _)| field.trim().to_owned())
                    .filter(|f| !f.is_empty() && !f.contains(' '))
                    // serde names a parameter given twice only in its
                    // message ("duplicate field `index`").
                    .or_else(|| {
                        let (_, rest) = detail.split_once("duplicate field `")?;
                        Some(rest.split_once('`')?.0.to_owned())
                    })
                    .unwrap_or_else(|| "query".to_owned());
                Err(ApiError::Invalid(vec![Problem {
                    index: None,
                    path,
                    message: detail,
                }]))
            }
        }
    }
}

/// The parameters of a route that takes a tenant and nothing else
/// (`/v1/events/{id}`, `/v1/checkpoint`, `/v1/verifier-key`, `/v1/tenants`).
/// Each route takes its own parameters: one it does not take (`size` on
/// `/v1/checkpoint`, expecting the checkpoint of that size) is refused,
/// never ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantParam {
    /// The tenant (`/v1/tenants`: one tenant only; a tenant with no
    /// entries is not listed).
    pub tenant: Option<String>,
}

/// For a route that takes no query parameters: one given is refused by
/// name, never ignored (`POST /v1/retention/cleanup?dry_run=true` ran the
/// cleanup, its dry run asked for where none is read; `POST
/// /v1/events?tenant=acme` stored events that name no tenant in the
/// default one; `GET /v1/keys?tenant=acme` listed every key).
#[derive(Debug, Clone, Copy)]
pub struct NoQuery;

impl<S: Send + Sync> FromRequestParts<S> for NoQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        if parts.uri.query().is_none_or(str::is_empty) {
            return Ok(Self);
        }
        let first = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .ok()
            .and_then(|axum::extract::Query(pairs)| pairs.into_iter().next())
            .map(|(name, _)| name)
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "query".to_owned());
        Err(ApiError::Invalid(vec![Problem {
            index: None,
            path: first,
            message: "unknown parameter: this route takes no query parameters (what it takes goes in its path or body: docs/API.md)".into(),
        }]))
    }
}

/// A query parameter's value, refused when given empty: an empty value is
/// never read as the parameter left out, which widened the read
/// (`?tenant=` read every tenant; `trailmark export --actor "$UNSET"`
/// exported the whole trail). The viewer's forms leave their empty fields
/// out before they ask.
pub fn not_empty<'a>(name: &str, value: Option<&'a str>) -> Result<Option<&'a str>, ApiError> {
    match value {
        Some("") => Err(ApiError::param(
            name,
            "empty: give a value, or leave the parameter out",
        )),
        other => Ok(other),
    }
}
