//! Complete nodes stored as strips: 256 consecutive nodes of one level per
//! row; the nodes of a level's last, partial strip one row each in
//! `node_tail` until the strip fills.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};
use trailmark_core::TenantId;
use trailmark_log::{HASH_LEN, Hash, NodeId};
use trailmark_store::StoreError;

pub(crate) const STRIP: u64 = 256;
/// The bytes of a full strip ([`STRIP`] nodes).
const STRIP_BYTES: usize = 256 * HASH_LEN;
const _: () = assert!(STRIP_BYTES as u64 == STRIP * HASH_LEN as u64);

fn db(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| StoreError::backend(context, e)
}

/// Reads nodes, one row per strip touched; a node its strip does not hold
/// (the strip is not full yet) is read from the tail. A database written
/// before the tail existed (read as evidence, not migrated) holds its
/// partial strips in `node_strips`, so it never needs the tail.
pub(crate) fn read_nodes(
    conn: &Connection,
    tenant: &TenantId,
    ids: &[NodeId],
) -> Result<Vec<Hash>, StoreError> {
    let mut strips: BTreeMap<(u8, u64), Option<Vec<u8>>> = BTreeMap::new();
    let mut stmt = conn
        .prepare_cached(
            "SELECT data FROM node_strips WHERE tenant = ?1 AND level = ?2 AND strip = ?3",
        )
        .map_err(db("preparing a node read"))?;
    for id in ids {
        let key = (id.level, id.index / STRIP);
        if let std::collections::btree_map::Entry::Vacant(slot) = strips.entry(key) {
            let data: Option<Vec<u8>> = stmt
                .query_row(params![tenant.as_str(), key.0, to_i64(key.1)], |r| r.get(0))
                .optional()
                .map_err(db("reading tree nodes"))?;
            slot.insert(data);
        }
    }
    ids.iter()
        .map(|id| {
            let data = strips[&(id.level, id.index / STRIP)].as_deref();
            let at = usize::try_from(id.index % STRIP).unwrap_or(usize::MAX) * HASH_LEN;
            match data.and_then(|d| d.get(at..at + HASH_LEN)) {
                Some(bytes) => Hash::from_slice(bytes).map_err(StoreError::from),
                None => tail_node(conn, tenant, *id)?.map_or_else(
                    || Err(trailmark_log::Error::MissingNode(*id).into()),
                    |bytes| Hash::from_slice(&bytes).map_err(StoreError::from),
                ),
            }
        })
        .collect()
}

/// One node of a partial strip; `None` when it is not there (or the
/// database predates the tail).
fn tail_node(
    conn: &Connection,
    tenant: &TenantId,
    id: NodeId,
) -> Result<Option<Vec<u8>>, StoreError> {
    let mut stmt = match conn
        .prepare_cached("SELECT hash FROM node_tail WHERE tenant = ?1 AND level = ?2 AND idx = ?3")
    {
        Ok(stmt) => stmt,
        Err(e) => {
            let tail: bool = conn
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'node_tail')",
                    [],
                    |r| r.get(0),
                )
                .map_err(db("reading the schema"))?;
            return if tail {
                Err(StoreError::backend("preparing a node read", e))
            } else {
                Ok(None)
            };
        }
    };
    stmt.query_row(params![tenant.as_str(), id.level, to_i64(id.index)], |r| {
        r.get(0)
    })
    .optional()
    .map_err(db("reading tree nodes"))
}

/// A level's last strip, as far as it is complete.
#[derive(Debug, Clone)]
struct Open {
    strip: u64,
    data: Vec<u8>,
    /// The bytes of `data` already in the tail table.
    stored: usize,
}

/// The strips of one tenant being extended by the writer: the last strip of
/// each level, and the strips that filled since the last flush.
#[derive(Debug, Default, Clone)]
pub(crate) struct StripWriter {
    /// level → the level's last, partial strip
    open: BTreeMap<u8, Open>,
    /// Strips that filled up since the last flush: (level, index, data,
    /// whether some of its nodes are in the tail table).
    filled: Vec<(u8, u64, Vec<u8>, bool)>,
}

impl StripWriter {
    /// Records a new complete node (nodes of one level arrive in order).
    pub(crate) fn push(
        &mut self,
        conn: &Connection,
        tenant: &TenantId,
        id: NodeId,
        hash: &Hash,
    ) -> Result<(), StoreError> {
        let strip = id.index / STRIP;
        let offset = usize::try_from(id.index % STRIP).unwrap_or(usize::MAX) * HASH_LEN;
        let open = match self.open.entry(id.level) {
            std::collections::btree_map::Entry::Occupied(open) => open.into_mut(),
            std::collections::btree_map::Entry::Vacant(slot) => {
                // First node of this level in this writer, or of a new strip.
                let data = if offset == 0 {
                    Vec::with_capacity(STRIP_BYTES)
                } else {
                    load_tail(conn, tenant, id.level, strip)?
                };
                let stored = data.len();
                slot.insert(Open {
                    strip,
                    data,
                    stored,
                })
            }
        };
        if open.strip != strip || open.data.len() != offset {
            return Err(StoreError::Corrupt {
                tenant: tenant.clone(),
                reason: format!(
                    "node strip level {} #{} holds {} bytes, next node #{strip} at byte {offset}",
                    id.level,
                    open.strip,
                    open.data.len()
                ),
            });
        }
        open.data.extend_from_slice(hash.as_bytes());
        if open.data.len() == STRIP_BYTES
            && let Some(full) = self.open.remove(&id.level)
        {
            self.filled
                .push((id.level, full.strip, full.data, full.stored > 0));
        }
        Ok(())
    }

    /// Writes the nodes pushed since the last flush: each filled strip as
    /// one row (its nodes leave the tail), each partial strip's new nodes
    /// one row each.
    pub(crate) fn flush(&mut self, conn: &Connection, tenant: &TenantId) -> Result<(), StoreError> {
        if !self.filled.is_empty() {
            let mut strip_stmt = conn
                .prepare_cached(
                    "INSERT INTO node_strips (tenant, level, strip, data) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(db("preparing a node write"))?;
            let mut drop_stmt = conn
                .prepare_cached(
                    "DELETE FROM node_tail WHERE tenant = ?1 AND level = ?2
                                              AND idx >= ?3 AND idx < ?4",
                )
                .map_err(db("preparing a node write"))?;
            for (level, strip, data, in_tail) in self.filled.drain(..) {
                strip_stmt
                    .execute(params![tenant.as_str(), level, to_i64(strip), data])
                    .map_err(db("writing tree nodes"))?;
                if in_tail {
                    let first = strip * STRIP;
                    drop_stmt
                        .execute(params![
                            tenant.as_str(),
                            level,
                            to_i64(first),
                            to_i64(first + STRIP)
                        ])
                        .map_err(db("writing tree nodes"))?;
                }
            }
        }
        let mut node_stmt = conn
            .prepare_cached(
                "INSERT INTO node_tail (tenant, level, idx, hash) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(db("preparing a node write"))?;
        for (level, open) in &mut self.open {
            let first = open.strip * STRIP;
            for (at, hash) in open
                .data
                .chunks_exact(HASH_LEN)
                .enumerate()
                .skip(open.stored / HASH_LEN)
            {
                let idx = first + u64::try_from(at).unwrap_or(u64::MAX);
                node_stmt
                    .execute(params![tenant.as_str(), level, to_i64(idx), hash])
                    .map_err(db("writing tree nodes"))?;
            }
            open.stored = open.data.len();
        }
        Ok(())
    }
}

/// The nodes of a partial strip, read back from the tail in order.
fn load_tail(
    conn: &Connection,
    tenant: &TenantId,
    level: u8,
    strip: u64,
) -> Result<Vec<u8>, StoreError> {
    let first = strip * STRIP;
    let mut stmt = conn
        .prepare_cached(
            "SELECT idx, hash FROM node_tail WHERE tenant = ?1 AND level = ?2
                                               AND idx >= ?3 AND idx < ?4 ORDER BY idx",
        )
        .map_err(db("loading a partial node strip"))?;
    let mut rows = stmt
        .query(params![
            tenant.as_str(),
            level,
            to_i64(first),
            to_i64(first + STRIP)
        ])
        .map_err(db("loading a partial node strip"))?;
    let mut data = Vec::with_capacity(STRIP_BYTES);
    while let Some(row) = rows.next().map_err(db("loading a partial node strip"))? {
        let idx: i64 = row.get(0).map_err(db("loading a partial node strip"))?;
        let hash: Vec<u8> = row.get(1).map_err(db("loading a partial node strip"))?;
        let expected = first + u64::try_from(data.len() / HASH_LEN).unwrap_or(u64::MAX);
        if u64::try_from(idx).ok() != Some(expected) || hash.len() != HASH_LEN {
            return Err(StoreError::Corrupt {
                tenant: tenant.clone(),
                reason: format!(
                    "node tail level {level} holds node #{idx} ({} bytes) where #{expected} belongs",
                    hash.len()
                ),
            });
        }
        data.extend_from_slice(&hash);
    }
    Ok(data)
}

pub(crate) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
