//! Complete nodes stored as strips: 256 consecutive nodes of one level per row.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};
use trailmark_core::TenantId;
use trailmark_log::{HASH_LEN, Hash, NodeId};
use trailmark_store::StoreError;

pub(crate) const STRIP: u64 = 256;

fn db(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| StoreError::backend(context, e)
}

/// Reads nodes, one row per strip touched.
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
            data.and_then(|d| d.get(at..at + HASH_LEN)).map_or_else(
                || Err(trailmark_log::Error::MissingNode(*id).into()),
                |bytes| Hash::from_slice(bytes).map_err(StoreError::from),
            )
        })
        .collect()
}

/// The strips of one tenant being extended by the writer: the last strip of
/// each level, as it will be written back.
#[derive(Debug, Default, Clone)]
pub(crate) struct StripWriter {
    /// level → the level's last strip: (index, data, changed since flush)
    open: BTreeMap<u8, (u64, Vec<u8>, bool)>,
    /// Strips that filled up since the last flush: (level, index, data).
    filled: Vec<(u8, u64, Vec<u8>)>,
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
        if self
            .open
            .get(&id.level)
            .is_none_or(|(index, _, _)| *index != strip)
        {
            // First node of this level in this writer, or a new strip.
            let data =
                if offset == 0 {
                    Vec::with_capacity(HASH_LEN * 256)
                } else {
                    conn.prepare_cached(
                    "SELECT data FROM node_strips WHERE tenant = ?1 AND level = ?2 AND strip = ?3",
                )
                .and_then(|mut s| {
                    s.query_row(params![tenant.as_str(), id.level, to_i64(strip)], |r| r.get(0))
                        .optional()
                })
                .map_err(db("loading a partial node strip"))?
                .unwrap_or_default()
                };
            if let Some((index, old, true)) = self.open.insert(id.level, (strip, data, false)) {
                self.filled.push((id.level, index, old));
            }
        }
        let (_, data, changed) =
            self.open
                .get_mut(&id.level)
                .ok_or_else(|| StoreError::Corrupt {
                    tenant: tenant.clone(),
                    reason: format!("no open node strip at level {}", id.level),
                })?;
        if data.len() != offset {
            return Err(StoreError::Corrupt {
                tenant: tenant.clone(),
                reason: format!(
                    "node strip level {} #{strip} holds {} bytes, next node at byte {offset}",
                    id.level,
                    data.len()
                ),
            });
        }
        data.extend_from_slice(hash.as_bytes());
        *changed = true;
        Ok(())
    }

    /// Writes every changed strip.
    pub(crate) fn flush(&mut self, conn: &Connection, tenant: &TenantId) -> Result<(), StoreError> {
        let mut stmt = conn
            .prepare_cached(
                "INSERT INTO node_strips (tenant, level, strip, data) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant, level, strip) DO UPDATE SET data = excluded.data",
            )
            .map_err(db("preparing a node write"))?;
        for (level, strip, data) in self.filled.drain(..) {
            stmt.execute(params![tenant.as_str(), level, to_i64(strip), data])
                .map_err(db("writing tree nodes"))?;
        }
        for (level, (strip, data, changed)) in &mut self.open {
            if *changed {
                stmt.execute(params![
                    tenant.as_str(),
                    level,
                    to_i64(*strip),
                    data.as_slice()
                ])
                .map_err(db("writing tree nodes"))?;
                *changed = false;
            }
        }
        Ok(())
    }
}

pub(crate) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
