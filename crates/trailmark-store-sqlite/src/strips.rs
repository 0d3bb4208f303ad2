//! Complete nodes stored as strips: 256 consecutive nodes of one level per
//! row; the nodes of a level's last, partial strip one row each in
//! `node_tail` until the strip fills. The tail keeps a level's nodes in 256
//! slots (index modulo 256) that the next strip writes over in place: rows
//! are never deleted, so appends free no pages (see migration 0012 for why
//! that matters), and a row whose index is not the one asked for is a
//! stale one of an earlier strip.

use std::collections::{BTreeMap, HashMap};

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

/// Most tree nodes [`NodeCache`] holds: 65,536 hashes, about 6 MiB.
pub const NODE_CACHE_MAX: usize = 65_536;

/// Tree nodes the readers read lately, shared by them. A stored node never
/// changes (appends only add nodes, an erasure keeps every hash), so a
/// cached one is always the stored one. Read from the database, a node
/// costs its strip (8 KiB: a leaf and two overflow pages) or its tail row,
/// which a reader reads again after every commit (SQLite drops a
/// connection's page cache whenever the database changed); an inclusion
/// proof reads one node per level, and the upper levels' nodes, and the
/// newest entries' (the viewer's first pages), are in most proofs. At most
/// [`NODE_CACHE_MAX`]; when full, it is emptied and fills again.
#[derive(Debug, Default)]
pub(crate) struct NodeCache(std::sync::Mutex<Nodes>);

#[derive(Debug, Default)]
struct Nodes {
    by_tenant: HashMap<TenantId, HashMap<NodeId, Hash>>,
    held: usize,
}

impl NodeCache {
    /// Each id's node when held.
    fn get(&self, tenant: &TenantId, ids: &[NodeId]) -> Vec<Option<Hash>> {
        let held = self.0.lock().ok();
        let nodes = held.as_ref().and_then(|n| n.by_tenant.get(tenant));
        ids.iter()
            .map(|id| nodes.and_then(|n| n.get(id)).copied())
            .collect()
    }

    fn keep(&self, tenant: &TenantId, read: &[(NodeId, Hash)]) {
        let Ok(mut nodes) = self.0.lock() else {
            return;
        };
        if nodes.held + read.len() > NODE_CACHE_MAX {
            *nodes = Nodes::default();
        }
        let Nodes { by_tenant, held } = &mut *nodes;
        let mine = by_tenant.entry(tenant.clone()).or_default();
        for (id, hash) in read.iter().take(NODE_CACHE_MAX) {
            if mine.insert(*id, *hash).is_none() {
                *held += 1;
            }
        }
    }
}

/// Reads nodes: from `cache` when held there, else one row per strip
/// touched (and then kept in `cache`); a node its strip does not hold (the
/// strip is not full yet) is read from the tail. A database written before
/// the tail existed (read as evidence, not migrated) holds its partial
/// strips in `node_strips`, so it never needs the tail.
pub(crate) fn read_nodes(
    conn: &Connection,
    tenant: &TenantId,
    ids: &[NodeId],
    cache: Option<&NodeCache>,
) -> Result<Vec<Hash>, StoreError> {
    let mut found = cache.map_or_else(|| vec![None; ids.len()], |c| c.get(tenant, ids));
    let mut strips: BTreeMap<(u8, u64), Option<Vec<u8>>> = BTreeMap::new();
    let mut stmt = conn
        .prepare_cached(
            "SELECT data FROM node_strips WHERE tenant = ?1 AND level = ?2 AND strip = ?3",
        )
        .map_err(db("preparing a node read"))?;
    for (id, _) in ids.iter().zip(&found).filter(|(_, hit)| hit.is_none()) {
        let key = (id.level, id.index / STRIP);
        if let std::collections::btree_map::Entry::Vacant(slot) = strips.entry(key) {
            let data: Option<Vec<u8>> = stmt
                .query_row(params![tenant.as_str(), key.0, to_i64(key.1)], |r| r.get(0))
                .optional()
                .map_err(db("reading tree nodes"))?;
            slot.insert(data);
        }
    }
    let mut read = Vec::new();
    for (id, slot) in ids.iter().zip(&mut found) {
        if slot.is_some() {
            continue;
        }
        let data = strips[&(id.level, id.index / STRIP)].as_deref();
        let at = usize::try_from(id.index % STRIP).unwrap_or(usize::MAX) * HASH_LEN;
        let hash = match data.and_then(|d| d.get(at..at + HASH_LEN)) {
            Some(bytes) => Hash::from_slice(bytes)?,
            None => tail_node(conn, tenant, *id)?.map_or_else(
                || Err(StoreError::from(trailmark_log::Error::MissingNode(*id))),
                |bytes| Hash::from_slice(&bytes).map_err(StoreError::from),
            )?,
        };
        read.push((*id, hash));
        *slot = Some(hash);
    }
    if let Some(cache) = cache {
        cache.keep(tenant, &read);
    }
    Ok(found.into_iter().flatten().collect())
}

/// One node of a partial strip; `None` when it is not there (or the
/// database predates the tail). A database read as evidence may hold the
/// tail without slots (schema 11: one row per node, keyed by its index).
fn tail_node(
    conn: &Connection,
    tenant: &TenantId,
    id: NodeId,
) -> Result<Option<Vec<u8>>, StoreError> {
    let (level, idx) = (id.level, to_i64(id.index));
    let read = |mut stmt: rusqlite::CachedStatement<'_>, args: &[&dyn rusqlite::ToSql]| {
        stmt.query_row(args, |r| r.get(0))
            .optional()
            .map_err(db("reading tree nodes"))
    };
    let e = match conn.prepare_cached(
        "SELECT hash FROM node_tail WHERE tenant = ?1 AND level = ?2 AND slot = ?3 AND idx = ?4",
    ) {
        Ok(stmt) => {
            let slot = to_i64(id.index % STRIP);
            return read(stmt, params![tenant.as_str(), level, slot, idx]);
        }
        Err(e) => e,
    };
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('node_tail')")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
        })
        .map_err(db("reading the schema"))?;
    if columns.is_empty() {
        Ok(None)
    } else if columns.iter().any(|c| c == "slot") {
        Err(StoreError::backend("preparing a node read", e))
    } else {
        let stmt = conn
            .prepare_cached(
                "SELECT hash FROM node_tail WHERE tenant = ?1 AND level = ?2 AND idx = ?3",
            )
            .map_err(db("preparing a node read"))?;
        read(stmt, params![tenant.as_str(), level, idx])
    }
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
        let open = match self.open.entry(id.level) {
            std::collections::btree_map::Entry::Occupied(open) => open.into_mut(),
            std::collections::btree_map::Entry::Vacant(slot) => {
                // First node of this level in this writer, or of a new strip.
                // Grown as nodes come, not reserved whole: every tenant
                // the writer has appended to keeps an open strip per level,
                // and a reserved 8 KiB for one node was 8 KiB of memory per
                // tenant for the life of the process (a server of 120,000
                // small tenants held 1.4 GB).
                let data = if offset == 0 {
                    Vec::new()
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
            self.filled.push((id.level, full.strip, full.data));
        }
        Ok(())
    }

    /// Writes the nodes pushed since the last flush: each filled strip as
    /// one row, each partial strip's new nodes one row each, over the tail
    /// slots of the strip before (whose nodes are in `node_strips` by then).
    pub(crate) fn flush(&mut self, conn: &Connection, tenant: &TenantId) -> Result<(), StoreError> {
        if !self.filled.is_empty() {
            let mut strip_stmt = conn
                .prepare_cached(
                    "INSERT INTO node_strips (tenant, level, strip, data) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(db("preparing a node write"))?;
            for (level, strip, data) in self.filled.drain(..) {
                strip_stmt
                    .execute(params![tenant.as_str(), level, to_i64(strip), data])
                    .map_err(db("writing tree nodes"))?;
            }
        }
        let mut node_stmt = conn
            .prepare_cached(
                "INSERT INTO node_tail (tenant, level, slot, idx, hash) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (tenant, level, slot) DO UPDATE SET idx = excluded.idx, hash = excluded.hash",
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
                let slot = u64::try_from(at).unwrap_or(u64::MAX);
                node_stmt
                    .execute(params![
                        tenant.as_str(),
                        level,
                        to_i64(slot),
                        to_i64(first + slot),
                        hash
                    ])
                    .map_err(db("writing tree nodes"))?;
            }
            open.stored = open.data.len();
        }
        Ok(())
    }
}

/// The nodes of a partial strip, read back from the tail in order (the
/// level's stale rows, of strips before, are out of its range).
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
    let mut data = Vec::new();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn strips_table() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE node_strips (tenant TEXT NOT NULL, level INTEGER NOT NULL,
             strip INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (tenant, level, strip))
             WITHOUT ROWID;
             CREATE TABLE node_tail (tenant TEXT NOT NULL, level INTEGER NOT NULL,
             slot INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,
             PRIMARY KEY (tenant, level, slot)) WITHOUT ROWID",
        )
        .unwrap();
        conn
    }

    fn node(level: u8, index: u64) -> NodeId {
        NodeId { level, index }
    }

    fn hash(byte: u8) -> Hash {
        Hash::from_bytes([byte; HASH_LEN])
    }

    /// A tenant's open strips hold what their nodes need, not a whole
    /// strip each: the writer keeps them for every tenant it appended to,
    /// for as long as it runs (8 KiB reserved for one node was 1.4 GB of a
    /// server of 120,000 one-entry tenants). A strip loaded back holds its
    /// nodes; a full one is written and let go.
    #[test]
    fn an_open_strip_holds_its_nodes_not_a_whole_strip() {
        let conn = strips_table();
        let acme = TenantId::new("acme").unwrap();
        let mut writer = StripWriter::default();
        writer.push(&conn, &acme, node(0, 0), &hash(1)).unwrap();
        writer.flush(&conn, &acme).unwrap();
        let held = |w: &StripWriter| w.open.values().map(|o| o.data.capacity()).sum::<usize>();
        assert!(held(&writer) <= 4 * HASH_LEN, "{}", held(&writer));
        let mut again = StripWriter::default();
        again.push(&conn, &acme, node(0, 1), &hash(2)).unwrap();
        assert!(held(&again) <= 4 * HASH_LEN, "{}", held(&again));
        for i in 2..STRIP {
            again.push(&conn, &acme, node(0, i), &hash(3)).unwrap();
        }
        assert_eq!(held(&again), 0, "the full strip went to be written");
        assert_eq!(again.filled.len(), 1);
    }

    #[test]
    fn a_node_read_once_is_answered_from_the_cache_and_others_from_the_database() {
        let conn = strips_table();
        let acme = TenantId::new("acme").unwrap();
        let strip = |tenant: &str, level: u8, strip: i64, byte: u8| {
            conn.execute(
                "INSERT OR REPLACE INTO node_strips VALUES (?1, ?2, ?3, ?4)",
                params![tenant, level, strip, vec![byte; STRIP_BYTES]],
            )
            .unwrap();
        };
        let tail = |level: u8, idx: i64, byte: u8| {
            conn.execute(
                "INSERT OR REPLACE INTO node_tail VALUES ('acme', ?1, ?2 % 256, ?2, ?3)",
                params![level, idx, vec![byte; HASH_LEN]],
            )
            .unwrap();
        };
        // Level 0's strip 1 complete, level 3's node 5 in the tail.
        strip("acme", 0, 1, 1);
        tail(3, 5, 2);
        let cache = NodeCache::default();
        let read = |ids: &[NodeId], cache| read_nodes(&conn, &acme, ids, cache).unwrap();
        assert_eq!(
            read(&[node(0, 300), node(3, 5)], Some(&cache)),
            [hash(1), hash(2)]
        );
        // Both rows rewritten under the cache: the nodes read before answer
        // from it, another node of the same strip is read (the new bytes);
        // without the cache, every node is read.
        strip("acme", 0, 1, 7);
        tail(3, 5, 8);
        assert_eq!(
            read(&[node(0, 300), node(3, 5), node(0, 301)], Some(&cache)),
            [hash(1), hash(2), hash(7)]
        );
        assert_eq!(read(&[node(0, 300), node(3, 5)], None), [hash(7), hash(8)]);
        // A node not stored is refused, and not remembered as missing; so is
        // one whose slot holds the node of an earlier strip (3:5 in 3:261's).
        assert!(read_nodes(&conn, &acme, &[node(2, 0)], Some(&cache)).is_err());
        assert!(read_nodes(&conn, &acme, &[node(3, 261)], None).is_err());
        tail(2, 0, 3);
        assert_eq!(read(&[node(2, 0)], Some(&cache)), [hash(3)]);
        // Another tenant's node of the same level and index is its own.
        strip("globex", 0, 1, 9);
        let globex = TenantId::new("globex").unwrap();
        assert_eq!(
            read_nodes(&conn, &globex, &[node(0, 300)], Some(&cache)).unwrap(),
            [hash(9)]
        );
    }

    #[test]
    fn the_node_cache_holds_at_most_its_bound() {
        let cache = NodeCache::default();
        let tenant = TenantId::new("acme").unwrap();
        for batch in 0..(NODE_CACHE_MAX as u64 / 1000 + 2) {
            let read: Vec<(NodeId, Hash)> = (0..1000)
                .map(|i| (node(0, batch * 1000 + i), hash(1)))
                .collect();
            cache.keep(&tenant, &read);
            assert!(cache.0.lock().unwrap().held <= NODE_CACHE_MAX);
        }
        // The latest read is held.
        let last = NODE_CACHE_MAX as u64 / 1000 + 1;
        assert_eq!(
            cache.get(&tenant, &[node(0, last * 1000 + 999)]),
            [Some(hash(1))]
        );
    }
}
