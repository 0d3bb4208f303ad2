//! Authentication once per request, authorization by type.
//!
//! The router's first layer checks the bearer key of every `/v1/` and `/log/`
//! request (401 before anything else is judged) and leaves the [`Caller`] in
//! the request. A handler names the scope it needs in its signature,
//! `Authorized(caller, _): Authorized<Reader>`: the extractor takes that
//! caller (no second key lookup) and answers 403 when the key lacks the
//! scope. Scopes are a closed set ([`Scope`]): a check cannot be misspelt.

use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use trailmark_store::{Scope, Store};

use crate::app::{App, Caller};
use crate::error::ApiError;

/// A scope a handler needs, as a type.
pub trait Needs {
    const SCOPE: Scope;
    /// Whether the key must be bound to no tenant: for what is the whole
    /// server's, not one tenant's (the alert rules, the webhook endpoints).
    const WHOLE_SERVER: bool = false;
}

/// Needs the read scope.
#[derive(Debug)]
pub struct Reader;
/// Needs the ingest scope.
#[derive(Debug)]
pub struct Ingester;
/// Needs the admin scope.
#[derive(Debug)]
pub struct Administrator;

impl Needs for Reader {
    const SCOPE: Scope = Scope::Read;
}
impl Needs for Ingester {
    const SCOPE: Scope = Scope::Ingest;
}
impl Needs for Administrator {
    const SCOPE: Scope = Scope::Admin;
}

/// Needs the admin scope on a key bound to no tenant: a tenant's admin
/// changed the rules that watch every tenant (turned the mass-delete
/// alert off for all of them) and read and replaced every tenant's webhook
/// endpoints.
#[derive(Debug)]
pub struct ServerAdministrator;

impl Needs for ServerAdministrator {
    const SCOPE: Scope = Scope::Admin;
    const WHOLE_SERVER: bool = true;
}

/// `caller` checked for what `N` needs.
fn admit<N: Needs>(caller: &Caller) -> Result<(), ApiError> {
    caller.require(N::SCOPE)?;
    match &caller.key.tenant {
        Some(own) if N::WHOLE_SERVER => Err(ApiError::Forbidden(format!(
            "this key is bound to tenant {own}: the alert rules and webhook endpoints are the whole server's; use an admin key bound to no tenant"
        ))),
        _ => Ok(()),
    }
}

/// The caller of a request, whose key has scope `N` (see the module docs).
#[derive(Debug)]
pub struct Authorized<N>(pub Caller, pub PhantomData<fn() -> N>);

impl<N: Needs, S: Store> FromRequestParts<Arc<App<S>>> for Authorized<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App<S>>) -> Result<Self, ApiError> {
        let caller = match parts.extensions.get::<Caller>() {
            Some(caller) => caller.clone(),
            // A route outside the authenticating layer: check the key here.
            None => app.authenticate(&parts.headers).await?,
        };
        admit::<N>(&caller)?;
        Ok(Self(caller, PhantomData))
    }
}

impl<N: Needs> Authorized<N> {
    /// A caller authenticated another way (a viewer session), checked for
    /// scope `N` as the extractor checks it.
    pub fn check(caller: Caller) -> Result<Self, ApiError> {
        admit::<N>(&caller)?;
        Ok(Self(caller, PhantomData))
    }
}
