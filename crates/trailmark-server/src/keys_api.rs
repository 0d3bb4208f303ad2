//! `/v1/keys`: create, list and revoke API keys (admin scope). Every change
//! is recorded in `_system`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Map, Value};
use trailmark_core::TenantId;
use trailmark_store::{KeyRecord, Scopes, Store};

use crate::app::{App, now};
use crate::auth::{Administrator, Authorized};
use crate::error::{ApiError, Problem};
use crate::extract::NoQuery;
use crate::wire::{Keys, NewKeyOut, Revoked};

/// What `POST /v1/keys` accepts: exactly these fields, each a non-empty
/// string when present (`tenant` absent or null: a key for every tenant).
#[derive(Debug)]
pub struct NewKey {
    pub name: Option<String>,
    pub scopes: Option<String>,
    pub tenant: Option<String>,
}

impl NewKey {
    /// Parses the body strictly: unknown, duplicate, empty or mistyped
    /// fields are refused, each named, so that nothing defaults to a wider
    /// key than was asked for.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let text =
            std::str::from_utf8(body).map_err(|_| ApiError::param("", "body is not UTF-8"))?;
        let value = trailmark_core::parse_strict_json(text)
            .map_err(|e| ApiError::param("", format!("malformed JSON: {e}")))?;
        let Value::Object(fields) = value else {
            return Err(ApiError::param(
                "",
                "body must be an object: {\"scopes\": \"read\", \"tenant\": \"acme\", \"name\": \"…\"}",
            ));
        };
        let mut problems = Vec::new();
        let mut key = Self {
            name: None,
            scopes: None,
            tenant: None,
        };
        for (field, value) in fields {
            let slot = match field.as_str() {
                "name" => &mut key.name,
                "scopes" => &mut key.scopes,
                "tenant" => &mut key.tenant,
                other => {
                    problems.push(Problem {
                        index: None,
                        path: other.to_owned(),
                        message: "unknown field: a key has name, scopes and tenant".into(),
                    });
                    continue;
                }
            };
            match value {
                Value::Null if field == "tenant" => {}
                Value::String(s) if !s.trim().is_empty() => *slot = Some(s),
                Value::String(_) => problems.push(Problem {
                    index: None,
                    path: field.clone(),
                    message: if field == "tenant" {
                        "empty: name a tenant, or leave the field out for a key that sees every tenant".into()
                    } else {
                        "empty".into()
                    },
                }),
                _ => problems.push(Problem {
                    index: None,
                    path: field.clone(),
                    message: "must be a string".into(),
                }),
            }
        }
        if problems.is_empty() {
            Ok(key)
        } else {
            Err(ApiError::Invalid(problems))
        }
    }
}

pub async fn create<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(caller, _): Authorized<Administrator>,
    _: NoQuery,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let body = NewKey::parse(&body)?;
    let scopes = Scopes::parse(body.scopes.as_deref().unwrap_or("ingest"))
        .map_err(|m| ApiError::param("scopes", m))?;
    let tenant = body
        .tenant
        .map(|t| TenantId::new(&t).map_err(|m| ApiError::param("tenant", m)))
        .transpose()?;
    if let Some(own) = &caller.key.tenant
        && tenant.as_ref() != Some(own)
    {
        return Err(ApiError::Forbidden(format!(
            "this key may only create keys bound to tenant {own}"
        )));
    }
    let name = body.name.unwrap_or_else(|| "unnamed".into());
    if name.len() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::param(
            "name",
            "must be at most 200 characters, no control characters",
        ));
    }
    let (key, record) = app.create_key(Some(&caller), &name, scopes, tenant).await?;
    let body = NewKeyOut {
        record: crate::render::key_out(&record),
        key: key.expose().to_owned(),
    };
    Ok((StatusCode::CREATED, axum::Json(body)))
}

pub async fn list<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(caller, _): Authorized<Administrator>,
    _: NoQuery,
) -> Result<axum::Json<Keys>, ApiError> {
    let keys = app
        .store
        .keys()
        .await?
        .iter()
        .filter(|k| caller.key.tenant.is_none() || k.tenant == caller.key.tenant)
        .map(crate::render::key_out)
        .collect();
    Ok(axum::Json(Keys { keys }))
}

pub async fn revoke<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(caller, _): Authorized<Administrator>,
    _: NoQuery,
    Path(id): Path<String>,
) -> Result<axum::Json<Revoked>, ApiError> {
    // One revocation at a time, across servers sharing a ledger too, so
    // that two cannot each leave the other's admin key the last and revoke
    // both.
    let _one_at_a_time = app.removal_lock().await?;
    let keys = app.store.keys().await?;
    let target = keys.iter().find(|k| k.id == id);
    match target {
        Some(k) if caller.key.tenant.is_none() || k.tenant == caller.key.tenant => {}
        _ => return Err(ApiError::NotFound(format!("no key {id}"))),
    }
    let whole_server_admin =
        |k: &KeyRecord| k.revoked_at.is_none() && k.tenant.is_none() && k.scopes.admin;
    if target.is_some_and(whole_server_admin)
        && !keys.iter().any(|k| k.id != id && whole_server_admin(k))
    {
        return Err(ApiError::Conflict(format!(
            "{id} is the last admin key that sees every tenant: revoked, nobody could \
             administer this server (keys, alert rules, webhooks) any more; create another \
             first (trailmark keys create --scopes admin), then revoke this one"
        )));
    }
    app.store.revoke_key(&id, now()).await?;
    app.forget_keys();
    app.audit(
        Some(&caller),
        "admin.key.revoke",
        Some(("key", &id)),
        Map::new(),
    )
    .await?;
    Ok(axum::Json(Revoked { id, revoked: true }))
}
