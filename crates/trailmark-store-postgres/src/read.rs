//! Reads: entries, search, stats, nodes, checkpoints, keys.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::Value;
use tokio_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use trailmark_core::{EventId, IndexedColumns, Salt, TenantId, Timestamp};
use trailmark_log::{Hash, NodeId, TreeSize};
use trailmark_store::{
    CheckpointRecord, CountBy, Cursor, KeyRecord, Page, Query, Scopes, Stats, StoreError,
    StoredEntry, TenantHead,
};

use crate::{db, to_i64};

const ENTRY_COLUMNS: &str = "e.pos, e.envelope, e.leaf_hash, e.payload, e.salt, \
     e.tenant, e.seq, e.id, e.occurred_at, e.actor_id, e.action, e.resource_type, e.resource_id, \
     e.outcome, e.ip";

type Param = Box<dyn ToSql + Sync + Send>;

fn refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

fn to_entry(row: &tokio_postgres::Row) -> Result<StoredEntry, StoreError> {
    let corrupt =
        |reason: &str| StoreError::Invalid(format!("stored entry is unreadable: {reason}"));
    let payload: Option<String> = row.get(3);
    let payload = match payload {
        None => None,
        Some(text) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(map)) => Some(map),
            _ => return Err(corrupt("payload is not a JSON object")),
        },
    };
    let salt: Option<Vec<u8>> = row.get(4);
    let salt = match salt {
        None => None,
        Some(bytes) => Some(Salt::from_bytes(
            bytes
                .try_into()
                .map_err(|_| corrupt("salt is not 32 bytes"))?,
        )),
    };
    let leaf: Vec<u8> = row.get(2);
    Ok(StoredEntry {
        envelope_bytes: row.get(1),
        leaf_hash: Hash::from_slice(&leaf)?,
        payload,
        salt,
        columns: IndexedColumns {
            tenant: row.get(5),
            seq: u64::try_from(row.get::<_, i64>(6)).unwrap_or(u64::MAX),
            id: row.get(7),
            occurred_at: row.get(8),
            actor_id: row.get(9),
            action: row.get(10),
            resource_type: row.get(11),
            resource_id: row.get(12),
            outcome: row.get(13),
            ip: row.get(14),
        },
    })
}

fn tenant_of(name: &str) -> Result<TenantId, StoreError> {
    TenantId::from_stored(name).map_err(|m| StoreError::Invalid(m.into()))
}

pub(crate) async fn heads(c: &impl GenericClient) -> Result<Vec<TenantHead>, StoreError> {
    c.query(
        "SELECT name, size FROM trailmark_ledger.tenants WHERE size > 0 ORDER BY name",
        &[],
    )
    .await
    .map_err(db("listing tenants"))?
    .iter()
    .map(|r| {
        Ok(TenantHead {
            tenant: tenant_of(r.get(0))?,
            size: TreeSize::new(u64::try_from(r.get::<_, i64>(1)).unwrap_or(0)).unwrap_or_default(),
        })
    })
    .collect()
}

pub(crate) async fn entries(
    c: &impl GenericClient,
    tenant: &TenantId,
    start: u64,
    end: u64,
) -> Result<Vec<StoredEntry>, StoreError> {
    c.query(
        &format!(
            "SELECT {ENTRY_COLUMNS} FROM trailmark_ledger.entries e
             WHERE e.tenant = $1 AND e.seq >= $2 AND e.seq < $3 ORDER BY e.seq"
        ),
        &[&tenant.as_str(), &to_i64(start), &to_i64(end)],
    )
    .await
    .map_err(db("reading entries"))?
    .iter()
    .map(to_entry)
    .collect()
}

fn tenant_filter(tenants: &[TenantId], sql: &mut String, params: &mut Vec<Param>) {
    if tenants.is_empty() {
        return;
    }
    params.push(Box::new(
        tenants
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect::<Vec<_>>(),
    ));
    let _ = write!(sql, " AND e.tenant = ANY (${})", params.len());
}

pub(crate) async fn entry_by_id(
    c: &impl GenericClient,
    tenants: &[TenantId],
    id: EventId,
) -> Result<Option<StoredEntry>, StoreError> {
    let mut params: Vec<Param> = vec![Box::new(id.to_string())];
    let mut sql = format!("SELECT {ENTRY_COLUMNS} FROM trailmark_ledger.entries e WHERE e.id = $1");
    tenant_filter(tenants, &mut sql, &mut params);
    sql.push_str(" ORDER BY e.pos LIMIT 1");
    let row = c
        .query_opt(&sql, &refs(&params))
        .await
        .map_err(db("reading an entry by id"))?;
    row.as_ref().map(to_entry).transpose()
}

/// `q=` as a tsquery: every word must be present (`'a' & 'b'`); None when
/// the text has no words.
fn tsquery(q: &str) -> Option<String> {
    let mut words = Vec::new();
    crate::append::split(q, &mut words);
    (!words.is_empty()).then(|| {
        words
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" & ")
    })
}

fn filters(q: &Query, sql: &mut String, params: &mut Vec<Param>) {
    tenant_filter(&q.tenants, sql, params);
    for (column, value) in [
        ("e.actor_id", &q.actor_id),
        ("e.action", &q.action),
        ("e.resource_type", &q.resource_type),
        ("e.resource_id", &q.resource_id),
        ("e.ip", &q.ip),
    ] {
        if let Some(value) = value {
            params.push(Box::new(value.clone()));
            let _ = write!(sql, " AND {column} = ${}", params.len());
        }
    }
    if let Some(outcome) = q.outcome {
        params.push(Box::new(outcome.as_str().to_owned()));
        let _ = write!(sql, " AND e.outcome = ${}", params.len());
    }
    if let Some(since) = q.since {
        params.push(Box::new(since.unix_millis()));
        let _ = write!(sql, " AND e.occurred_at >= ${}", params.len());
    }
    if let Some(until) = q.until {
        params.push(Box::new(until.unix_millis()));
        let _ = write!(sql, " AND e.occurred_at < ${}", params.len());
    }
    if let Some(text) = q.q.as_deref() {
        match tsquery(text) {
            Some(query) => {
                params.push(Box::new(query));
                let _ = write!(sql, " AND e.search @@ (${}::text)::tsquery", params.len());
            }
            // No words: nothing can match (as with the embedded store).
            None => sql.push_str(" AND false"),
        }
    }
}

pub(crate) async fn query(c: &impl GenericClient, q: &Query) -> Result<Page, StoreError> {
    let mut params: Vec<Param> = Vec::new();
    let mut sql = format!("SELECT {ENTRY_COLUMNS} FROM trailmark_ledger.entries e WHERE true");
    filters(q, &mut sql, &mut params);
    if let Some(Cursor(pos)) = q.cursor {
        params.push(Box::new(to_i64(pos)));
        let _ = write!(sql, " AND e.pos < ${}", params.len());
    }
    let limit = q.limit.max(1);
    let _ = write!(sql, " ORDER BY e.pos DESC LIMIT {}", limit + 1);
    let rows = c
        .query(&sql, &refs(&params))
        .await
        .map_err(db("running a query"))?;
    let more = rows.len() > limit;
    let mut entries = Vec::with_capacity(limit);
    let mut last = None;
    for row in rows.iter().take(limit) {
        last = Some(row.get::<_, i64>(0));
        entries.push(to_entry(row)?);
    }
    let next = if more {
        last.and_then(|p| u64::try_from(p).ok()).map(Cursor)
    } else {
        None
    };
    Ok(Page { entries, next })
}

pub(crate) async fn stats(c: &impl GenericClient, q: &Query) -> Result<Stats, StoreError> {
    let mut params: Vec<Param> = Vec::new();
    let mut base = " FROM trailmark_ledger.entries e WHERE true".to_owned();
    filters(q, &mut base, &mut params);
    let params = refs(&params);
    let grouped = async |select: &str, extra: &str, order: &str| {
        let sql = format!("SELECT {select}, count(*){base}{extra} GROUP BY 1 ORDER BY {order}");
        c.query(&sql, &params)
            .await
            .map_err(db("counting entries"))
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        (
                            r.get::<_, String>(0),
                            u64::try_from(r.get::<_, i64>(1)).unwrap_or(0),
                        )
                    })
                    .collect::<Vec<_>>()
            })
    };
    let top = format!("2 DESC, 1 LIMIT {}", Stats::TOP);
    let by_outcome = grouped("e.outcome", "", "2 DESC, 1").await?;
    Ok(Stats {
        total: by_outcome.iter().map(|(_, n)| n).sum(),
        by_action: grouped("e.action", "", "2 DESC, 1").await?,
        by_actor: grouped("e.actor_id", "", &top).await?,
        by_resource_type: grouped("e.resource_type", " AND e.resource_type IS NOT NULL", &top)
            .await?,
        by_outcome,
        per_day: grouped(
            "to_char(to_timestamp(e.occurred_at / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
            "",
            "1",
        )
        .await?,
    })
}

pub(crate) async fn nodes(
    c: &impl GenericClient,
    tenant: &TenantId,
    ids: &[NodeId],
) -> Result<Vec<Hash>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let levels: Vec<i16> = ids.iter().map(|id| i16::from(id.level)).collect();
    let indexes: Vec<i64> = ids.iter().map(|id| to_i64(id.index)).collect();
    // Level 0 is the entries' leaf hashes; inner nodes have their own table.
    let rows = c
        .query(
            "SELECT n.level, n.idx, n.hash FROM trailmark_ledger.nodes n
             JOIN unnest($2::int2[], $3::int8[]) AS w(level, idx) ON n.level = w.level AND n.idx = w.idx
             WHERE n.tenant = $1 AND w.level > 0
             UNION ALL
             SELECT 0::int2, e.seq, e.leaf_hash FROM trailmark_ledger.entries e
             JOIN unnest($2::int2[], $3::int8[]) AS w(level, idx) ON w.level = 0 AND e.seq = w.idx
             WHERE e.tenant = $1",
            &[&tenant.as_str(), &levels, &indexes],
        )
        .await
        .map_err(db("reading tree nodes"))?;
    let found: HashMap<(i16, i64), Vec<u8>> = rows
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect();
    ids.iter()
        .map(|id| {
            found
                .get(&(i16::from(id.level), to_i64(id.index)))
                .map_or_else(
                    || Err(trailmark_log::Error::MissingNode(*id).into()),
                    |bytes| Hash::from_slice(bytes).map_err(StoreError::from),
                )
        })
        .collect()
}

pub(crate) async fn checkpoints(
    c: &impl GenericClient,
    tenant: &TenantId,
    latest_only: bool,
) -> Result<Vec<CheckpointRecord>, StoreError> {
    let sql = if latest_only {
        "SELECT tenant, size, root, note, signed_at FROM trailmark_ledger.checkpoints
         WHERE tenant = $1 ORDER BY size DESC LIMIT 1"
    } else {
        "SELECT tenant, size, root, note, signed_at FROM trailmark_ledger.checkpoints
         WHERE tenant = $1 ORDER BY size"
    };
    c.query(sql, &[&tenant.as_str()])
        .await
        .map_err(db("reading checkpoints"))?
        .iter()
        .map(|r| {
            let root: Vec<u8> = r.get(2);
            Ok(CheckpointRecord {
                tenant: tenant_of(r.get(0))?,
                size: TreeSize::new(u64::try_from(r.get::<_, i64>(1)).unwrap_or(0))
                    .unwrap_or_default(),
                root: Hash::from_slice(&root)?,
                note: r.get(3),
                signed_at: Timestamp::from_unix_millis(r.get(4)).unwrap_or(Timestamp::EPOCH),
            })
        })
        .collect()
}

const KEY_COLUMNS: &str =
    "SELECT id, digest, name, scopes, tenant, created_at, revoked_at FROM trailmark_ledger.keys";

fn to_key(r: &tokio_postgres::Row) -> Result<KeyRecord, StoreError> {
    let id: String = r.get(0);
    let bad = |m: String| StoreError::Invalid(format!("stored key {id}: {m}"));
    let digest: Vec<u8> = r.get(1);
    let scopes: String = r.get(3);
    let tenant: Option<String> = r.get(4);
    Ok(KeyRecord {
        digest: digest
            .as_slice()
            .try_into()
            .map_err(|_| bad("digest is not 32 bytes".into()))?,
        name: r.get(2),
        scopes: Scopes::parse(&scopes).map_err(bad)?,
        tenant: tenant
            .map(|t| TenantId::from_stored(&t))
            .transpose()
            .map_err(|m| bad(m.into()))?,
        created_at: Timestamp::from_unix_millis(r.get(5)).unwrap_or(Timestamp::EPOCH),
        revoked_at: r
            .get::<_, Option<i64>>(6)
            .and_then(Timestamp::from_unix_millis),
        id: id.clone(),
    })
}

pub(crate) async fn key_by_digest(
    c: &impl GenericClient,
    digest: [u8; 32],
) -> Result<Option<KeyRecord>, StoreError> {
    c.query_opt(
        &format!("{KEY_COLUMNS} WHERE digest = $1"),
        &[&digest.as_slice()],
    )
    .await
    .map_err(db("looking up a key"))?
    .as_ref()
    .map(to_key)
    .transpose()
}

pub(crate) async fn keys(c: &impl GenericClient) -> Result<Vec<KeyRecord>, StoreError> {
    c.query(&format!("{KEY_COLUMNS} ORDER BY created_at, id"), &[])
        .await
        .map_err(db("listing keys"))?
        .iter()
        .map(to_key)
        .collect()
}

pub(crate) async fn daily_counts(
    c: &impl GenericClient,
    q: &Query,
    by: CountBy,
) -> Result<Vec<(String, String, u64)>, StoreError> {
    let mut params: Vec<Param> = Vec::new();
    let mut base = " FROM trailmark_ledger.entries e WHERE true".to_owned();
    filters(q, &mut base, &mut params);
    let sql = format!(
        "SELECT to_char(to_timestamp(e.occurred_at / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD'), {}, count(*){base}
         GROUP BY 1, 2 ORDER BY 1, 2",
        by.column()
    );
    Ok(c.query(&sql, &refs(&params))
        .await
        .map_err(db("counting entries by day"))?
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
            )
        })
        .collect())
}
