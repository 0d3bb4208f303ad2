//! Checkpoints, verifier keys and proofs: what third parties verify with.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;

use crate::extract::{NoQuery, QueryParams, TenantParam};
use axum::http::header;
use axum::response::IntoResponse;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use trailmark_core::TenantId;
use trailmark_log::{Hash, LeafIndex, Plan, TreeSize};
use trailmark_store::{Store, StoreError};

use crate::app::App;
use crate::auth::{Authorized, Reader};
use crate::error::ApiError;
use crate::wire::{
    CheckpointOut, CheckpointsPage, ConsistencyProof, InclusionProof, SigningKeyOut, SigningKeys,
    TenantOut, Tenants,
};

/// `GET /v1/proofs/inclusion`'s parameters (each route takes its own, as
/// [`TenantParam`] says).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionParams {
    pub tenant: Option<String>,
    pub index: Option<u64>,
    pub size: Option<u64>,
}

/// `GET /v1/proofs/consistency`'s parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyParams {
    pub tenant: Option<String>,
    pub first: Option<u64>,
    pub second: Option<u64>,
}

fn text(body: String) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body)
}

fn b64(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(|h| BASE64.encode(h.as_bytes())).collect()
}

pub(crate) async fn tenant_size<S: Store>(
    app: &App<S>,
    tenant: &TenantId,
) -> Result<u64, ApiError> {
    Ok(app.store.head(tenant).await?.get())
}

fn size_param(name: &str, value: Option<u64>, current: u64) -> Result<TreeSize, ApiError> {
    let value = value.ok_or_else(|| ApiError::param(name, "required"))?;
    if value > current {
        return Err(ApiError::param(
            name,
            format!("the log has {current} entries; ask for a size up to that"),
        ));
    }
    TreeSize::new(value).ok_or_else(|| ApiError::param(name, "too large"))
}

pub async fn checkpoint<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(caller, _): Authorized<Reader>,
    QueryParams(p): QueryParams<TenantParam>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = caller.one_tenant(p.tenant.as_deref())?;
    Ok(text(latest_cosigned(&app, &tenant).await?))
}

/// The tenant's newest checkpoint with its witnesses' cosignatures.
pub(crate) async fn latest_cosigned<S: Store>(
    app: &App<S>,
    tenant: &TenantId,
) -> Result<String, ApiError> {
    let cp = app
        .store
        .latest_checkpoint(tenant)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("tenant {tenant} has no checkpoint yet")))?;
    with_cosignatures(app, &cp).await
}

/// A stored checkpoint's note with its witnesses' cosignatures.
pub(crate) async fn with_cosignatures<S: Store>(
    app: &App<S>,
    cp: &trailmark_store::CheckpointRecord,
) -> Result<String, ApiError> {
    let lines: Vec<String> = app
        .store
        .cosignatures(&cp.tenant, cp.size.get()..=cp.size.get())
        .await?
        .into_iter()
        .map(|(_, line)| line)
        .collect();
    Ok(cosigned(&cp.note, &lines))
}

/// A checkpoint note with the witnesses' cosignature lines after the log's
/// signature.
pub fn cosigned(note: &str, lines: &[String]) -> String {
    let mut out = note.to_owned();
    for line in lines {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The most checkpoints one page of `GET /v1/checkpoints` holds.
pub const MAX_CHECKPOINTS_PAGE: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointsParams {
    pub tenant: Option<String>,
    /// Checkpoints above this size (the previous page's `next_after`).
    pub after: Option<u64>,
    pub limit: Option<usize>,
}

/// `GET /v1/checkpoints`: a tenant's checkpoints, oldest first, each with
/// its cosignatures, a page at a time (a busy tenant gets one a second).
pub async fn checkpoints<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(caller, _): Authorized<Reader>,
    QueryParams(p): QueryParams<CheckpointsParams>,
) -> Result<axum::Json<CheckpointsPage>, ApiError> {
    let tenant = caller.one_tenant(p.tenant.as_deref())?;
    let limit = p.limit.unwrap_or(MAX_CHECKPOINTS_PAGE);
    if !(1..=MAX_CHECKPOINTS_PAGE).contains(&limit) {
        return Err(ApiError::param(
            "limit",
            format!("must be 1 to {MAX_CHECKPOINTS_PAGE}"),
        ));
    }
    let mut page = app
        .store
        .checkpoints_after(&tenant, p.after, limit + 1)
        .await?;
    let more = page.len() > limit;
    page.truncate(limit);
    let mut lines: HashMap<u64, Vec<String>> = HashMap::new();
    if let (Some(first), Some(last)) = (page.first(), page.last()) {
        let sizes = first.size.get()..=last.size.get();
        for (size, line) in app.store.cosignatures(&tenant, sizes).await? {
            lines.entry(size).or_default().push(line);
        }
    }
    let checkpoints = page
        .iter()
        .map(|c| {
            let cosignatures = lines.get(&c.size.get()).map_or(&[][..], Vec::as_slice);
            CheckpointOut {
                note: cosigned(&c.note, cosignatures),
                size: c.size.get(),
            }
        })
        .collect();
    let next_after = if more {
        page.last().map(|c| c.size.get())
    } else {
        None
    };
    Ok(axum::Json(CheckpointsPage {
        checkpoints,
        next_after,
        tenant: tenant.as_str().to_owned(),
    }))
}

/// `GET /v1/signing-keys`: the public keys that sign this trail, oldest
/// first, each later one with its transition statement (signed by the key
/// before it).
pub async fn signing_keys<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(_caller, _): Authorized<Reader>,
    _: NoQuery,
) -> Result<axum::Json<SigningKeys>, ApiError> {
    let keys = app
        .store
        .signing_keys()
        .await?
        .iter()
        .map(|k| SigningKeyOut {
            added_at: k.added_at.to_string(),
            ordinal: k.ordinal,
            origin_prefix: k.origin_prefix.clone(),
            public_key: BASE64.encode(k.public_key),
            transition: k.transition.clone(),
        })
        .collect();
    Ok(axum::Json(SigningKeys { keys }))
}

pub async fn verifier_key<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(caller, _): Authorized<Reader>,
    QueryParams(p): QueryParams<TenantParam>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = caller.one_tenant(p.tenant.as_deref())?;
    Ok(text(format!("{}\n", app.signer(&tenant)?.verifier())))
}

pub async fn tenants<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(caller, _): Authorized<Reader>,
    QueryParams(p): QueryParams<TenantParam>,
) -> Result<axum::Json<Tenants>, ApiError> {
    if p.tenant.is_some() {
        // One row, not the whole list: what a verifier going through the
        // tenants one by one asks (an empty name is refused there, as for
        // every tenant parameter: `App::visible`).
        let tenant = caller.one_tenant(p.tenant.as_deref())?;
        let size = tenant_size(&app, &tenant).await?;
        let tenants = (size > 0)
            .then(|| TenantOut {
                size,
                tenant: tenant.as_str().to_owned(),
            })
            .into_iter()
            .collect();
        return Ok(axum::Json(Tenants { tenants }));
    }
    let visible = caller.visible(None)?;
    let tenants = app
        .store
        .heads()
        .await?
        .into_iter()
        .filter(|h| visible.is_empty() || visible.contains(&h.tenant))
        .map(|h| TenantOut {
            size: h.size.get(),
            tenant: h.tenant.as_str().to_owned(),
        })
        .collect();
    Ok(axum::Json(Tenants { tenants }))
}

pub async fn inclusion<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(caller, _): Authorized<Reader>,
    QueryParams(p): QueryParams<InclusionParams>,
) -> Result<axum::Json<InclusionProof>, ApiError> {
    let tenant = caller.one_tenant(p.tenant.as_deref())?;
    let current = tenant_size(&app, &tenant).await?;
    let size = size_param("size", p.size, current)?;
    let index = p
        .index
        .ok_or_else(|| ApiError::param("index", "required"))?;
    if index >= size.get() {
        return Err(ApiError::param(
            "index",
            format!("must be below size {size}"),
        ));
    }
    let index = LeafIndex::new(index).ok_or_else(|| ApiError::param("index", "too large"))?;
    let plan = Plan::inclusion(index, size).map_err(StoreError::from)?;
    let hashes = app.run_plan(&tenant, &plan).await?;
    Ok(axum::Json(InclusionProof {
        hashes: b64(&hashes),
        leaf_index: index.get(),
        tree_size: size.get(),
    }))
}

pub async fn consistency<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(caller, _): Authorized<Reader>,
    QueryParams(p): QueryParams<ConsistencyParams>,
) -> Result<axum::Json<ConsistencyProof>, ApiError> {
    let tenant = caller.one_tenant(p.tenant.as_deref())?;
    let current = tenant_size(&app, &tenant).await?;
    let second = size_param("second", p.second, current)?;
    let first = p
        .first
        .ok_or_else(|| ApiError::param("first", "required"))?;
    if first > second.get() {
        return Err(ApiError::param(
            "first",
            format!(
                "must be at most second ({second}): a proof runs from the smaller tree to the larger"
            ),
        ));
    }
    let first = TreeSize::new(first).ok_or_else(|| ApiError::param("first", "too large"))?;
    let plan = Plan::consistency(first, second).map_err(StoreError::from)?;
    let hashes = app.run_plan(&tenant, &plan).await?;
    Ok(axum::Json(ConsistencyProof {
        first: first.get(),
        hashes: b64(&hashes),
        second: second.get(),
    }))
}
