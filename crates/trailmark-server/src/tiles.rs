//! `/log/{tenant}/…`: each tenant's tree as C2SP tlog-tiles (checkpoint,
//! hash tiles, entry bundles), read-only, for monitors and standard
//! tooling. Like the rest of the API it needs a read key for the tenant:
//! entry bundles are envelopes (opaque ids, actions, times), not payloads,
//! but still nobody else's business. Tile reads are machine reads and are
//! not recorded in `_system`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use trailmark_log::{TILE_WIDTH, TilePath, entry_bundle};
use trailmark_store::Store;

use crate::app::App;
use crate::auth::{Authorized, Reader};
use crate::error::ApiError;
use crate::proofs::{latest_cosigned, tenant_size};

/// `GET /log/{tenant}/checkpoint`: the newest checkpoint, cosigned.
pub async fn checkpoint<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(caller, _): Authorized<Reader>,
    Path(tenant): Path<String>,
) -> Result<Response, ApiError> {
    let tenant = caller.one_tenant(Some(&tenant))?;
    let note = latest_cosigned(&app, &tenant).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        note,
    )
        .into_response())
}

/// `GET /log/{tenant}/tile/{path}`: a hash tile or an entry bundle.
pub async fn tile<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(caller, _): Authorized<Reader>,
    Path((tenant, path)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let tenant = caller.one_tenant(Some(&tenant))?;
    let tile = TilePath::parse(&path).map_err(|e| ApiError::NotFound(e.to_string()))?;
    let size = tenant_size(&app, &tenant).await?;
    if !tile.within(size) {
        return Err(ApiError::NotFound(format!(
            "tile/{path} is beyond the {size} entries of {tenant}"
        )));
    }
    let body = if let Some((start, end)) = tile.entry_range() {
        // Only the envelope bytes: payloads are not parsed.
        let entries = app.store.raw_entries(&tenant, start, end).await?;
        entry_bundle(entries.iter().map(|e| e.envelope_bytes.as_slice()))
            .map_err(trailmark_store::StoreError::from)?
    } else {
        let hashes = app.store.nodes(&tenant, &tile.node_ids()).await?;
        hashes.iter().flat_map(|h| h.as_bytes().to_vec()).collect()
    };
    // Complete nodes never change: a full tile is immutable.
    let full = match tile {
        TilePath::Hashes { width, .. } | TilePath::Entries { width, .. } => width == TILE_WIDTH,
    };
    let cache = if full {
        "private, max-age=31536000, immutable"
    } else {
        "private, no-cache"
    };
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response())
}
