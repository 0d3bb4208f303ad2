//! Erasure and retention on the embedded store: the walk that finds what a
//! removal reaches, the erasure itself (a writer job), and the policy and
//! hold tables.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params};
use trailmark_core::{Envelope, TenantId, Timestamp};
use trailmark_store::{
    Hold, Removal, RetentionPolicy, Setting, StoreError, StoredHold, Target, Walk, WalkPage, Walked,
};

fn db(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| StoreError::backend(context, e)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The bytes an erasure frees: payload, salt and the derived columns.
const BYTES: &str = "coalesce(length(e.payload), 0) + coalesce(length(e.salt), 0)
     + coalesce(length(e.ip), 0) + coalesce(length(e.request_id), 0)";

/// One page of a walk, by `pos` (within a tenant, the order of `seq`). A
/// walk of the whole tenant follows the ledger file's tenant index; a walk
/// of one actor or record takes positions from the index file up to its
/// position and scans the entries above it, in one read snapshot.
pub(crate) fn walk(
    conn: &Connection,
    tenant: &TenantId,
    walk: &Walk,
    after: Option<u64>,
    limit: usize,
) -> Result<WalkPage, StoreError> {
    let after = after.map_or(-1, to_i64);
    let head = format!("SELECT e.pos, e.envelope, e.payload IS NOT NULL, {BYTES}");
    let (index, condition, values): (Option<(&str, &str)>, &str, Vec<String>) = match walk {
        Walk::All => (None, "", vec![]),
        Walk::Actor(actor) => (
            Some(("ix_actor", "i.actor_id = ?4")),
            " AND e.actor_id = ?4",
            vec![actor.clone()],
        ),
        Walk::Resource { kind, id } => (
            Some(("ix_resource", "i.resource_type = ?4 AND i.resource_id = ?5")),
            " AND e.resource_type = ?4 AND e.resource_id = ?5",
            vec![kind.clone(), id.clone()],
        ),
    };
    // With an index table: its spans from the one holding `after` up to the
    // one holding the index file's position, one statement each (?7), then
    // the entries above the position.
    let (keyed, tail) = match index {
        None => (
            None,
            format!(
                "{head} FROM entries e WHERE e.tenant = ?1 AND e.pos > ?2 ORDER BY e.pos LIMIT ?3"
            ),
        ),
        Some((table, seek)) => (
            Some(format!(
                "{head} FROM {table} i CROSS JOIN entries e ON e.pos = i.pos
                 WHERE i.span = ?7 AND i.tenant = ?1 AND {seek} AND i.pos > ?2 AND i.pos <= ?6
                   AND e.tenant = ?1{condition}
                 ORDER BY i.pos LIMIT ?3"
            )),
            format!(
                "{head} FROM entries e WHERE e.pos > max(?2, ?6) AND e.tenant = ?1{condition}
                 ORDER BY e.pos LIMIT ?3"
            ),
        ),
    };
    crate::read::in_snapshot(conn, |conn, indexed| {
        let mut page = WalkPage::default();
        let mut last = None;
        let spans = match &keyed {
            Some(sql) => (indexed.span_of(after)..=indexed.span_of(indexed.pos))
                .map(|span| (sql.as_str(), Some(span)))
                .collect(),
            None => Vec::new(),
        };
        for (sql, span) in spans.into_iter().chain([(tail.as_str(), None)]) {
            let left = limit.saturating_sub(page.entries.len());
            if left == 0 {
                break;
            }
            let mut args = vec![
                SqlValue::Text(tenant.as_str().to_owned()),
                SqlValue::Integer(after),
                SqlValue::Integer(i64::try_from(left).unwrap_or(i64::MAX)),
            ];
            args.extend(values.iter().cloned().map(SqlValue::Text));
            if index.is_some() {
                // ?6, whatever the number of values before it.
                args.resize(5, SqlValue::Null);
                args.push(SqlValue::Integer(indexed.pos));
            }
            if let Some(span) = span {
                args.push(SqlValue::Integer(span));
            }
            let mut stmt = conn.prepare_cached(sql).map_err(db("walking entries"))?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(args), |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, bool>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })
                .map_err(db("walking entries"))?;
            for row in rows {
                let (pos, envelope, present, bytes) = row.map_err(db("walking entries"))?;
                let envelope = Envelope::from_leaf_bytes(&envelope).map_err(|e| {
                    StoreError::Unreadable(format!(
                        "an envelope of tenant {tenant} cannot be read: {e}"
                    ))
                })?;
                last = Some(u64::try_from(pos).unwrap_or(0));
                page.entries.push(Walked {
                    envelope,
                    present,
                    bytes: u64::try_from(bytes).unwrap_or(0),
                });
            }
        }
        if page.entries.len() == limit {
            page.next = last;
        }
        Ok(page)
    })
}

/// Erases the payloads of these entries (a writer job). What the index file
/// holds of them (their ip and request id keys, their payload's words) is
/// left for the indexer in `index_redo`, which it removes in its next
/// batch; the envelope's words stay searchable.
pub(crate) fn erase(
    conn: &Connection,
    tenant: &TenantId,
    seqs: &[u64],
    why: Removal,
) -> Result<u64, StoreError> {
    let (kind, record) = why.to_parts();
    let mut find = conn
        .prepare_cached(
            "SELECT pos FROM entries WHERE tenant = ?1 AND seq = ?2 AND payload IS NOT NULL",
        )
        .map_err(db("finding an entry to erase"))?;
    let mut redo = conn
        .prepare_cached(
            "INSERT INTO index_redo (pos, tenant, ip, request_id)
             SELECT pos, tenant, ip, request_id FROM entries WHERE pos = ?1",
        )
        .map_err(db("recording an erasure for the index file"))?;
    let mut clear = conn
        .prepare_cached(
            "UPDATE entries SET payload = NULL, salt = NULL, ip = NULL, request_id = NULL,
                                removed_kind = ?2, removed_by = ?3
             WHERE pos = ?1",
        )
        .map_err(db("erasing a payload"))?;
    let mut erased = 0;
    for &seq in seqs {
        let found: Option<i64> = find
            .query_row(params![tenant.as_str(), to_i64(seq)], |r| r.get(0))
            .optional()
            .map_err(db("finding an entry to erase"))?;
        let Some(pos) = found else {
            continue;
        };
        redo.execute([pos])
            .map_err(db("recording an erasure for the index file"))?;
        clear
            .execute(params![pos, kind, to_i64(record)])
            .map_err(db("erasing a payload"))?;
        erased += 1;
    }
    Ok(erased)
}

pub(crate) fn retention(conn: &Connection) -> Result<Vec<RetentionPolicy>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT tenant, target_kind, target_value, max_age_days, updated_at
             FROM retention_policies ORDER BY tenant, target_kind, target_value",
        )
        .map_err(db("reading retention policies"))?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })
        .map_err(db("reading retention policies"))?;
    rows.map(|row| {
        let (t, kind, value, days, at) = row.map_err(db("reading retention policies"))?;
        RetentionPolicy::from_stored(&t, &kind, &value, days, at)
    })
    .collect()
}

pub(crate) fn set_retention(conn: &Connection, p: &RetentionPolicy) -> Result<u64, StoreError> {
    let (kind, value) = p.target.to_parts();
    conn.prepare_cached(
        "INSERT INTO retention_policies (tenant, target_kind, target_value, max_age_days, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (tenant, target_kind, target_value)
         DO UPDATE SET max_age_days = excluded.max_age_days, updated_at = excluded.updated_at",
    )
    .and_then(|mut s| {
        s.execute(params![
            p.tenant.as_str(),
            kind,
            value,
            i64::from(p.max_age_days),
            p.updated_at.unix_millis()
        ])
    })
    .map_err(db("storing a retention policy"))
    .map(|n| n as u64)
}

pub(crate) fn remove_retention(
    conn: &Connection,
    tenant: &TenantId,
    target: &Target,
) -> Result<u64, StoreError> {
    let (kind, value) = target.to_parts();
    conn.prepare_cached(
        "DELETE FROM retention_policies WHERE tenant = ?1 AND target_kind = ?2 AND target_value = ?3",
    )
    .and_then(|mut s| s.execute(params![tenant.as_str(), kind, value]))
    .map_err(db("removing a retention policy"))
    .map(|n| n as u64)
}

pub(crate) fn holds(conn: &Connection) -> Result<Vec<Hold>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, tenant, scope_kind, scope_value, reason, placed_by, placed_at, released_at
             FROM holds ORDER BY placed_at, id",
        )
        .map_err(db("reading holds"))?;
    let rows = stmt
        .query_map([], |r| {
            Ok(StoredHold {
                id: r.get(0)?,
                tenant: r.get(1)?,
                scope_kind: r.get(2)?,
                scope_value: r.get(3)?,
                reason: r.get(4)?,
                placed_by: r.get(5)?,
                placed_at: r.get(6)?,
                released_at: r.get(7)?,
            })
        })
        .map_err(db("reading holds"))?;
    rows.map(|row| Hold::try_from(row.map_err(db("reading holds"))?))
        .collect()
}

pub(crate) fn add_hold(conn: &Connection, h: &Hold) -> Result<u64, StoreError> {
    let (kind, value) = h.scope.to_parts();
    conn.prepare_cached(
        "INSERT INTO holds (id, tenant, scope_kind, scope_value, reason, placed_by, placed_at, released_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .and_then(|mut s| {
        s.execute(params![
            h.id,
            h.tenant.as_str(),
            kind,
            value,
            h.reason,
            h.placed_by,
            h.placed_at.unix_millis(),
            h.released_at.map(Timestamp::unix_millis)
        ])
    })
    .map_err(db("storing a hold"))
    .map(|n| n as u64)
}

pub(crate) fn release_hold(conn: &Connection, id: &str, at: Timestamp) -> Result<u64, StoreError> {
    conn.prepare_cached("UPDATE holds SET released_at = ?2 WHERE id = ?1 AND released_at IS NULL")
        .and_then(|mut s| s.execute(params![id, at.unix_millis()]))
        .map_err(db("releasing a hold"))
        .map(|n| n as u64)
}

pub(crate) fn setting(conn: &Connection, name: &str) -> Result<Option<Setting>, StoreError> {
    conn.prepare_cached("SELECT value, version, updated_at FROM settings WHERE name = ?1")
        .and_then(|mut s| {
            s.query_row([name], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .optional()
        })
        .map_err(db("reading a setting"))?
        .map(|(value, version, at)| Setting::from_stored(value, version, at))
        .transpose()
}

pub(crate) fn settings(conn: &Connection) -> Result<Vec<(String, Setting)>, StoreError> {
    conn.prepare_cached("SELECT name, value, version, updated_at FROM settings ORDER BY name")
        .and_then(|mut s| {
            s.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(db("reading the settings"))?
        .into_iter()
        .map(|(name, value, version, at)| Ok((name, Setting::from_stored(value, version, at)?)))
        .collect()
}

/// Runs on the writer: the version check and the write are one step.
pub(crate) fn put_setting(
    conn: &Connection,
    name: &str,
    value: &str,
    expected: u64,
    at: Timestamp,
) -> Result<u64, StoreError> {
    let current = setting(conn, name)?.map_or(0, |s| s.version);
    if current != expected {
        return Err(StoreError::Conflict(format!(
            "the setting {name} is at version {current}, not {expected}: read it again and \
             repeat the change"
        )));
    }
    let version = expected + 1;
    conn.prepare_cached(
        "INSERT INTO settings (name, value, version, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, version = excluded.version,
             updated_at = excluded.updated_at",
    )
    .and_then(|mut s| {
        s.execute(params![
            name,
            value,
            i64::try_from(version).unwrap_or(i64::MAX),
            at.unix_millis()
        ])
    })
    .map_err(db("storing a setting"))?;
    Ok(version)
}
