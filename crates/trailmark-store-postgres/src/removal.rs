//! Erasure and retention on the PostgreSQL store: the walk that finds what
//! a removal reaches, the erasure itself, and the policy and hold tables.

use tokio_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use trailmark_core::{Envelope, TenantId, Timestamp};
use trailmark_store::{
    Hold, Removal, RemovalLock, RetentionPolicy, Setting, StoreError, StoredHold, Target, Walk,
    WalkPage, Walked,
};

use crate::append::words;
use crate::{PgStore, db, to_i64};

fn unreadable(tenant: &TenantId, e: &trailmark_core::Error) -> StoreError {
    StoreError::Unreadable(format!(
        "an envelope of tenant {tenant} cannot be read: {e}"
    ))
}

/// The advisory lock that one removal, hold or policy change at a time
/// holds, across every server sharing the ledger.
const REMOVAL_LOCK: i64 = 0x746d_7265_6d6f_7665; // "tmremove"

/// How long a removal waits for one running on another server.
pub const REMOVAL_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Takes [`REMOVAL_LOCK`] on a pooled connection. Whatever ends the
/// hold — the lock dropped, or this future dropped while it waits — the
/// connection goes back to the pool only after the lock is released
/// ([`Held`]); a connection that cannot release it is closed, which does.
/// (A new connection each time cost 5 ms, once per page of a cleanup.)
pub(crate) async fn lock(store: &PgStore) -> Result<RemovalLock, StoreError> {
    let held = Held(Some(store.client().await?));
    let client = held.0.as_ref().ok_or(StoreError::Closed)?;
    client
        .batch_execute(&format!(
            "SET lock_timeout = {}",
            REMOVAL_LOCK_WAIT.as_millis()
        ))
        .await
        .map_err(db("bounding the wait for the removal lock"))?;
    match client
        .execute("SELECT pg_advisory_lock($1)", &[&REMOVAL_LOCK])
        .await
    {
        Ok(_) => Ok(RemovalLock::holding(held)),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
            Err(StoreError::Conflict(format!(
                "another server sharing this ledger has been removing payloads (or placing holds, or changing policies) for over {} s: retry later",
                REMOVAL_LOCK_WAIT.as_secs()
            )))
        }
        Err(e) => Err(db("taking the removal lock")(e)),
    }
}

/// The connection [`lock`] took (or asked for) the lock on. Dropped, it
/// releases the lock before the connection returns to the pool: the
/// release queues behind a request still waiting on the same connection,
/// so a wait given up ends released too. Without a runtime to run the
/// release on, the connection is closed, which releases it.
struct Held(Option<deadpool_postgres::Object>);

impl Drop for Held {
    fn drop(&mut self) {
        let Some(client) = self.0.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            drop(deadpool_postgres::Object::take(client));
            return;
        };
        runtime.spawn(async move {
            if client
                .batch_execute("SELECT pg_advisory_unlock_all(); RESET lock_timeout")
                .await
                .is_err()
            {
                drop(deadpool_postgres::Object::take(client));
            }
        });
    }
}

/// One page of a walk by `pos` (within a tenant, the order of `seq`);
/// each variant seeks an index that ends in `pos`.
pub(crate) async fn walk(
    c: &impl GenericClient,
    tenant: &TenantId,
    walk: &Walk,
    after: Option<u64>,
    limit: usize,
) -> Result<WalkPage, StoreError> {
    let after = after.map_or(-1, to_i64);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // The entry's own record of its payload's size: no lookup in the
    // payload partitions.
    let head = "SELECT e.pos, e.envelope, e.payload_bytes IS NOT NULL AND e.removed_kind IS NULL,
                coalesce(e.payload_bytes, 0) FROM trailmark_ledger.entries e";
    let name = tenant.as_str();
    let (sql, values): (String, Vec<&str>) = match walk {
        Walk::All => (
            format!("{head} WHERE e.tenant = $1 AND e.pos > $2 ORDER BY e.pos LIMIT $3"),
            vec![],
        ),
        Walk::Actor(actor) => (
            format!(
                "{head} WHERE e.tenant = $1 AND e.actor_id = $4 AND e.pos > $2 ORDER BY e.pos LIMIT $3"
            ),
            vec![actor.as_str()],
        ),
        Walk::Resource { kind, id } => (
            format!(
                "{head} WHERE e.tenant = $1 AND e.resource_type = $4 AND e.resource_id = $5
                 AND e.pos > $2 ORDER BY e.pos LIMIT $3"
            ),
            vec![kind.as_str(), id.as_str()],
        ),
    };
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&name, &after, &limit];
    for v in &values {
        params.push(v);
    }
    let rows = c
        .query(&sql, &params)
        .await
        .map_err(db("walking entries"))?;
    let mut page = WalkPage::default();
    let mut last = None;
    for row in &rows {
        let envelope = Envelope::from_leaf_bytes(row.get::<_, &[u8]>(1))
            .map_err(|e| unreadable(tenant, &e))?;
        last = Some(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0));
        page.entries.push(Walked {
            envelope,
            present: row.get(2),
            bytes: u64::try_from(row.get::<_, i64>(3)).unwrap_or(0),
        });
    }
    if i64::try_from(page.entries.len()).unwrap_or(i64::MAX) == limit {
        page.next = last;
    }
    Ok(page)
}

/// Erases the payloads of these entries in one statement: each is marked
/// removed (reads no longer join its payload), its own search column gets
/// the envelope's words (ids and action, split here by the one rule,
/// [`crate::search::split`]) so it is still found by them, and the
/// partitions that hold the payloads are marked for the scrub, which
/// deletes them from the files ([`crate::partitions::scrub`]).
pub(crate) async fn erase(
    client: &deadpool_postgres::Object,
    tenant: &TenantId,
    seqs: &[u64],
    why: Removal,
) -> Result<u64, StoreError> {
    let (kind, record) = why.to_parts();
    let record = to_i64(record);
    let seqs: Vec<i64> = seqs.iter().map(|&s| to_i64(s)).collect();
    let (Some(&low), Some(&high)) = (seqs.iter().min(), seqs.iter().max()) else {
        return Ok(0);
    };
    // A join with the list, each a primary-key lookup, bounded by the
    // list's range: with `seq = ANY($2)` the planner guessed thousands of
    // rows and walked the whole tenant (0.9 s a page at a million entries).
    let rows = client
        .query(
            "SELECT e.seq, e.envelope FROM unnest($2::bigint[]) AS v(seq)
             JOIN trailmark_ledger.entries e ON e.tenant = $1 AND e.seq = v.seq
             WHERE e.seq BETWEEN $3 AND $4 AND e.removed_kind IS NULL
               AND e.payload_bytes IS NOT NULL",
            &[&tenant.as_str(), &seqs, &low, &high],
        )
        .await
        .map_err(db("finding entries to erase"))?;
    let mut found = Vec::with_capacity(rows.len());
    let mut kept = Vec::with_capacity(rows.len());
    for row in &rows {
        let envelope = Envelope::from_leaf_bytes(row.get::<_, &[u8]>(1))
            .map_err(|e| unreadable(tenant, &e))?;
        found.push(row.get::<_, i64>(0));
        // Words are runs of letters and digits: a space separates them.
        kept.push(words(&envelope, None).join(" "));
    }
    // One statement for the page; an entry another erasure marked in the
    // meantime is skipped (the test is evaluated again under the row
    // lock), as is one with no payload to remove.
    let n: i64 = client
        .query_one(
            "WITH gone AS (
                 UPDATE trailmark_ledger.entries e
                 SET search = array_to_tsvector(string_to_array(v.words, ' ')),
                     removed_kind = $4, removed_by = $5, payload_bytes = NULL
                 FROM unnest($2::bigint[], $3::text[]) AS v(seq, words)
                 WHERE e.tenant = $1 AND e.seq = v.seq AND e.removed_kind IS NULL
                   AND e.payload_bytes IS NOT NULL AND e.seq BETWEEN $6 AND $7
                 RETURNING e.received_at),
             pending AS (
                 INSERT INTO trailmark_ledger.scrub_pending (start, marked)
                 SELECT start, nextval('trailmark_ledger.scrub_marks') FROM (
                     SELECT DISTINCT lower(trailmark_ledger.payload_span(received_at)) AS start
                     FROM gone) AS spans
                 ON CONFLICT (start) DO UPDATE SET marked = excluded.marked)
             SELECT count(*) FROM gone",
            &[&tenant.as_str(), &found, &kept, &kind, &record, &low, &high],
        )
        .await
        .map_err(db("erasing payloads"))?
        .get(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

pub(crate) async fn retention(c: &impl GenericClient) -> Result<Vec<RetentionPolicy>, StoreError> {
    let rows = c
        .query(
            "SELECT tenant, target_kind, target_value, max_age_days, updated_at
             FROM trailmark_ledger.retention_policies ORDER BY tenant, target_kind, target_value",
            &[],
        )
        .await
        .map_err(db("reading retention policies"))?;
    rows.iter()
        .map(|r| {
            RetentionPolicy::from_stored(
                r.get(0),
                r.get(1),
                r.get(2),
                i64::from(r.get::<_, i32>(3)),
                r.get(4),
            )
        })
        .collect()
}

pub(crate) async fn set_retention(
    c: &impl GenericClient,
    p: &RetentionPolicy,
) -> Result<(), StoreError> {
    let (kind, value) = p.target.to_parts();
    c.execute(
        "INSERT INTO trailmark_ledger.retention_policies
             (tenant, target_kind, target_value, max_age_days, updated_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant, target_kind, target_value)
         DO UPDATE SET max_age_days = excluded.max_age_days, updated_at = excluded.updated_at",
        &[
            &p.tenant.as_str(),
            &kind,
            &value,
            &i32::try_from(p.max_age_days).unwrap_or(i32::MAX),
            &p.updated_at.unix_millis(),
        ],
    )
    .await
    .map_err(db("storing a retention policy"))?;
    Ok(())
}

pub(crate) async fn remove_retention(
    c: &impl GenericClient,
    tenant: &TenantId,
    target: &Target,
) -> Result<bool, StoreError> {
    let (kind, value) = target.to_parts();
    let n = c
        .execute(
            "DELETE FROM trailmark_ledger.retention_policies
             WHERE tenant = $1 AND target_kind = $2 AND target_value = $3",
            &[&tenant.as_str(), &kind, &value],
        )
        .await
        .map_err(db("removing a retention policy"))?;
    Ok(n > 0)
}

pub(crate) async fn holds(c: &impl GenericClient) -> Result<Vec<Hold>, StoreError> {
    let rows = c
        .query(
            "SELECT id, tenant, scope_kind, scope_value, reason, placed_by, placed_at, released_at
             FROM trailmark_ledger.holds ORDER BY placed_at, id",
            &[],
        )
        .await
        .map_err(db("reading holds"))?;
    rows.iter()
        .map(|r| {
            Hold::try_from(StoredHold {
                id: r.get(0),
                tenant: r.get(1),
                scope_kind: r.get(2),
                scope_value: r.get(3),
                reason: r.get(4),
                placed_by: r.get(5),
                placed_at: r.get(6),
                released_at: r.get(7),
            })
        })
        .collect()
}

pub(crate) async fn add_hold(c: &impl GenericClient, h: &Hold) -> Result<(), StoreError> {
    let (kind, value) = h.scope.to_parts();
    c.execute(
        "INSERT INTO trailmark_ledger.holds
             (id, tenant, scope_kind, scope_value, reason, placed_by, placed_at, released_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &h.id,
            &h.tenant.as_str(),
            &kind,
            &value,
            &h.reason,
            &h.placed_by,
            &h.placed_at.unix_millis(),
            &h.released_at.map(Timestamp::unix_millis),
        ],
    )
    .await
    .map_err(db("storing a hold"))?;
    Ok(())
}

pub(crate) async fn release_hold(
    c: &impl GenericClient,
    id: &str,
    at: Timestamp,
) -> Result<bool, StoreError> {
    let n = c
        .execute(
            "UPDATE trailmark_ledger.holds SET released_at = $2 WHERE id = $1 AND released_at IS NULL",
            &[&id, &at.unix_millis()],
        )
        .await
        .map_err(db("releasing a hold"))?;
    Ok(n > 0)
}

pub(crate) async fn setting(
    c: &impl GenericClient,
    name: &str,
) -> Result<Option<Setting>, StoreError> {
    c.query_opt(
        "SELECT value, version, updated_at FROM trailmark_ledger.settings WHERE name = $1",
        &[&name],
    )
    .await
    .map_err(db("reading a setting"))?
    .map(|r| Setting::from_stored(r.get(0), r.get(1), r.get(2)))
    .transpose()
}

pub(crate) async fn settings(c: &impl GenericClient) -> Result<Vec<(String, Setting)>, StoreError> {
    c.query(
        "SELECT name, value, version, updated_at FROM trailmark_ledger.settings ORDER BY name",
        &[],
    )
    .await
    .map_err(db("reading the settings"))?
    .into_iter()
    .map(|r| {
        Ok((
            r.get(0),
            Setting::from_stored(r.get(1), r.get(2), r.get(3))?,
        ))
    })
    .collect()
}

/// One statement: the first version inserts (a racing first insert meets
/// the key), a later one updates only the version it read.
pub(crate) async fn put_setting(
    c: &impl GenericClient,
    name: &str,
    value: &str,
    expected: u64,
    at: Timestamp,
) -> Result<u64, StoreError> {
    let version = i64::try_from(expected + 1).unwrap_or(i64::MAX);
    let expected_i = i64::try_from(expected).unwrap_or(i64::MAX);
    let done = c
        .execute(
            "INSERT INTO trailmark_ledger.settings AS s (name, value, version, updated_at)
             SELECT $1, $2, $3, $4 WHERE $5::bigint = 0
             ON CONFLICT (name) DO NOTHING",
            &[&name, &value, &version, &at.unix_millis(), &expected_i],
        )
        .await
        .map_err(db("storing a setting"))?
        + c.execute(
            "UPDATE trailmark_ledger.settings SET value = $2, version = $3, updated_at = $4
             WHERE name = $1 AND version = $5",
            &[&name, &value, &version, &at.unix_millis(), &expected_i],
        )
        .await
        .map_err(db("storing a setting"))?;
    if done == 0 {
        let current = setting(c, name).await?.map_or(0, |s| s.version);
        return Err(StoreError::Conflict(format!(
            "the setting {name} is at version {current}, not {expected}: read it again and \
             repeat the change"
        )));
    }
    Ok(expected + 1)
}
