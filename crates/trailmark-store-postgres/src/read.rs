//! Reads: entries, search, stats, nodes, checkpoints, keys.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::Value;
use tokio_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use trailmark_core::{EventId, IndexedColumns, TenantId, Timestamp};
use trailmark_log::{Hash, NodeId, TreeSize};
use trailmark_store::{
    Access, CheckpointRecord, CountBy, Cursor, Exact, KeyRecord, Page, Plan, Query, RawEntry, Read,
    Removal, Scopes, Stats, StoreError, StoredEntry, TenantHead,
};

use crate::counts::{COUNTED_TO, TENANTS_COUNTED};
use crate::{db, to_i64};

const ENTRY_COLUMNS: &str = "e.pos, e.envelope, e.leaf_hash, p.payload, p.salt, \
     e.tenant, e.seq, e.id, e.occurred_at, e.actor_id, e.action, e.resource_type, e.resource_id, \
     e.outcome, p.ip, p.request_id, e.removed_kind, e.removed_by";

/// Entries (`e`) with their payloads (`p`) where they are kept: an entry
/// marked removed has none, even before the scrub deletes the row. Each
/// payload is looked up by its entry's position and partition key (the
/// key lets PostgreSQL look in one partition only); `OFFSET 0` keeps the
/// lookup a lookup, where a join the planner chose freely could merge the
/// whole payloads table in position order to reach a page in the middle.
pub(crate) const WITH_PAYLOAD: &str = "trailmark_ledger.entries e
     LEFT JOIN LATERAL (
         SELECT p.pos, p.payload, p.salt, p.ip, p.request_id FROM trailmark_ledger.payloads p
         WHERE p.pos = e.pos AND p.received_at = e.received_at AND e.removed_kind IS NULL
         OFFSET 0) p ON true";

/// Entries joined to their kept payloads, for reads that filter by the
/// payloads' columns (`ip`, `request_id`): the planner may then start from
/// a payloads index.
const MATCHING_PAYLOAD: &str = "trailmark_ledger.entries e
     JOIN trailmark_ledger.payloads p
     ON p.pos = e.pos AND p.received_at = e.received_at AND e.removed_kind IS NULL";

/// Entries alone, for reads that need nothing of the payload.
const ENTRIES: &str = "trailmark_ledger.entries e";

type Param = Box<dyn ToSql + Sync + Send>;

fn refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

fn to_raw(row: &tokio_postgres::Row) -> Result<RawEntry, StoreError> {
    Ok(RawEntry {
        envelope_bytes: row.get(1),
        leaf_hash: Hash::from_slice(row.get(2))?,
        payload_text: row.get(3),
        salt: RawEntry::salt_from(row.get(4))?,
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
            request_id: row.get(15),
        },
        removed: Removal::from_parts(row.get::<_, Option<&str>>(16), row.get(17)),
    })
}

fn to_entry(row: &tokio_postgres::Row) -> Result<StoredEntry, StoreError> {
    to_raw(row)?.parse()
}

/// A stored tenant name, read back.
fn tenant_of(name: &str) -> Result<TenantId, StoreError> {
    TenantId::from_stored(name)
        .map_err(|m| StoreError::Unreadable(format!("tenant name {name:?}: {m}")))
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

pub(crate) async fn head(
    c: &impl GenericClient,
    tenant: &TenantId,
) -> Result<TreeSize, StoreError> {
    let size: Option<i64> = c
        .query_opt(
            "SELECT size FROM trailmark_ledger.tenants WHERE name = $1",
            &[&tenant.as_str()],
        )
        .await
        .map_err(db("reading a tenant's size"))?
        .map(|r| r.get(0));
    Ok(TreeSize::new(size.and_then(|n| u64::try_from(n).ok()).unwrap_or(0)).unwrap_or_default())
}

/// Statements over one set of parameters: what a read runs and what
/// [`plan`] explains, built once.
struct Statements {
    sql: Vec<String>,
    params: Vec<Param>,
}

fn entries_statement(tenant: &TenantId, start: u64, end: u64) -> Statements {
    Statements {
        sql: vec![format!(
            "SELECT {ENTRY_COLUMNS} FROM {WITH_PAYLOAD}
             WHERE e.tenant = $1 AND e.seq >= $2 AND e.seq < $3 ORDER BY e.seq"
        )],
        params: vec![
            Box::new(tenant.as_str().to_owned()),
            Box::new(to_i64(start)),
            Box::new(to_i64(end)),
        ],
    }
}

pub(crate) async fn raw_entries(
    c: &impl GenericClient,
    tenant: &TenantId,
    start: u64,
    end: u64,
) -> Result<Vec<RawEntry>, StoreError> {
    let s = entries_statement(tenant, start, end);
    c.query(&s.sql[0], &refs(&s.params))
        .await
        .map_err(db("reading entries"))?
        .iter()
        .map(to_raw)
        .collect()
}

/// The tenant condition: the caller's tenant, or (`per_tenant`) every
/// tenant in turn, so that a tenant-first index serves a read over all.
fn tenant_filter(
    table: &str,
    tenants: &[TenantId],
    per_tenant: bool,
    sql: &mut String,
    params: &mut Vec<Param>,
) {
    if tenants.is_empty() {
        if per_tenant {
            let _ = write!(
                sql,
                " AND {table}.tenant IN (SELECT name FROM trailmark_ledger.tenants)"
            );
        }
        return;
    }
    // One tenant as an equality, which the planner can walk an index by in
    // order (it cannot with `= ANY (array)`).
    if let [one] = tenants {
        params.push(Box::new(one.as_str().to_owned()));
        let _ = write!(sql, " AND {table}.tenant = ${}", params.len());
        return;
    }
    params.push(Box::new(
        tenants
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect::<Vec<_>>(),
    ));
    let _ = write!(sql, " AND {table}.tenant = ANY (${})", params.len());
}

fn entry_by_id_statement(tenants: &[TenantId], id: EventId) -> Statements {
    let mut params: Vec<Param> = vec![Box::new(id.to_string())];
    let mut sql = format!("SELECT {ENTRY_COLUMNS} FROM {WITH_PAYLOAD} WHERE e.id = $1");
    tenant_filter("e", tenants, false, &mut sql, &mut params);
    sql.push_str(" ORDER BY e.pos LIMIT 1");
    Statements {
        sql: vec![sql],
        params,
    }
}

pub(crate) async fn entry_by_id(
    c: &impl GenericClient,
    tenants: &[TenantId],
    id: EventId,
) -> Result<Option<StoredEntry>, StoreError> {
    let s = entry_by_id_statement(tenants, id);
    let row = c
        .query_opt(&s.sql[0], &refs(&s.params))
        .await
        .map_err(db("reading an entry by id"))?;
    row.as_ref().map(to_entry).transpose()
}

/// [`entry_by_id`] for each key, in one statement.
pub(crate) async fn entries_by_ids(
    c: &impl GenericClient,
    keys: &[(TenantId, EventId)],
) -> Result<Vec<Option<StoredEntry>>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let tenants: Vec<&str> = keys.iter().map(|(t, _)| t.as_str()).collect();
    let ids: Vec<String> = keys.iter().map(|(_, id)| id.to_string()).collect();
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM {WITH_PAYLOAD}
         WHERE (e.tenant, e.id) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
    );
    let rows = c
        .query(&sql, &[&tenants, &ids])
        .await
        .map_err(db("reading entries by id"))?;
    let mut found = HashMap::with_capacity(rows.len());
    for row in &rows {
        let entry = to_entry(row)?;
        found.insert(
            (entry.columns.tenant.clone(), entry.columns.id.clone()),
            entry,
        );
    }
    Ok(keys
        .iter()
        .zip(ids)
        .map(|((tenant, _), id)| found.get(&(tenant.as_str().to_owned(), id)).cloned())
        .collect())
}

/// `q=` as a tsquery: every word must be present (`'a' & 'b'`); None when
/// the text has no words.
fn tsquery(q: &str) -> Option<String> {
    let mut words = Vec::new();
    crate::search::split(q, &mut words);
    (!words.is_empty()).then(|| {
        words
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" & ")
    })
}

/// The WHERE conditions of a query's filters (not its paging), appended to
/// `sql` with their parameters; whether they name the payloads (`p`), which
/// the statement must then join ([`MATCHING_PAYLOAD`]). `ordered`: for a page,
/// newest first (see [`Query::window_seeks`]).
fn filters(q: &Query, ordered: bool, sql: &mut String, params: &mut Vec<Param>) -> bool {
    tenant_filter("e", &q.tenants, q.per_tenant(ordered), sql, params);
    let mut payload = false;
    for (field, value) in &q.exact {
        // The IP and request id derive from the payload and are kept with it.
        let table = if matches!(field, Exact::Ip | Exact::RequestId) {
            payload = true;
            "p"
        } else {
            "e"
        };
        params.push(Box::new(value.clone()));
        let _ = write!(sql, " AND {table}.{} = ${}", field.column(), params.len());
    }
    if q.no_resource_id {
        sql.push_str(" AND e.resource_id IS NULL");
    }
    if payload {
        // The payloads' own tenant column too, so that their indexes
        // (tenant first) are sought by it.
        tenant_filter("p", &q.tenants, q.per_tenant(ordered), sql, params);
    }
    // `+ 0` keeps the planner from seeking the time index for a window it
    // should only filter by.
    let time = if q.window_seeks(ordered) {
        "e.occurred_at"
    } else {
        "e.occurred_at + 0"
    };
    if let Some(since) = q.since {
        params.push(Box::new(since.unix_millis()));
        let _ = write!(sql, " AND {time} >= ${}", params.len());
    }
    if let Some(until) = q.until {
        params.push(Box::new(until.unix_millis()));
        let _ = write!(sql, " AND {time} < ${}", params.len());
    }
    if let Some(text) = q.q.as_deref() {
        match tsquery(text) {
            // A kept payload's search column holds every word of its entry;
            // an entry whose payload is gone is found by its envelope's
            // words, in its own. (A removed entry's payload row, until the
            // scrub deletes it, must not find it: hence the last test.)
            Some(query) => {
                params.push(Box::new(query));
                let n = params.len();
                let _ = write!(
                    sql,
                    " AND e.pos IN (
                         SELECT pos FROM trailmark_ledger.payloads WHERE search @@ (${n}::text)::tsquery
                         UNION ALL
                         SELECT pos FROM trailmark_ledger.entries WHERE search @@ (${n}::text)::tsquery)
                      AND (e.removed_kind IS NULL OR e.search @@ (${n}::text)::tsquery)"
                );
            }
            // No words: nothing can match (as with the embedded store).
            None => sql.push_str(" AND false"),
        }
    }
    payload
}

/// ` FROM … WHERE …` of a count: the payloads joined only when a filter
/// names them.
fn count_base(q: &Query, params: &mut Vec<Param>) -> String {
    let mut conditions = String::new();
    let from = if filters(q, false, &mut conditions, params) {
        MATCHING_PAYLOAD
    } else {
        ENTRIES
    };
    format!(" FROM {from} WHERE true{conditions}")
}

fn page_statement(q: &Query) -> Statements {
    let mut params: Vec<Param> = Vec::new();
    let mut conditions = String::new();
    let from = if filters(q, true, &mut conditions, &mut params) {
        MATCHING_PAYLOAD
    } else {
        WITH_PAYLOAD
    };
    let mut sql = format!("SELECT {ENTRY_COLUMNS} FROM {from} WHERE true{conditions}");
    if let Some(Cursor(pos)) = q.cursor {
        params.push(Box::new(to_i64(pos)));
        let _ = write!(sql, " AND e.pos < ${}", params.len());
    }
    // A window with an end is sought and its matches sorted: walking
    // positions newest first to reach a window in the past reads every
    // entry after it, which the planner cannot foresee (it assumes matches
    // spread evenly along the walk).
    // So is a free-text search: its matches come from the search indexes,
    // and walking positions to meet them reads every entry in between.
    let order = if q.window_seeks(true) || q.q.is_some() {
        "e.pos + 0"
    } else {
        "e.pos"
    };
    let _ = write!(sql, " ORDER BY {order} DESC LIMIT {}", q.limit.max(1) + 1);
    Statements {
        sql: vec![sql],
        params,
    }
}

pub(crate) async fn query(c: &impl GenericClient, q: &Query) -> Result<Page, StoreError> {
    let s = page_statement(q);
    let limit = q.limit.max(1);
    let rows = c
        .query(&s.sql[0], &refs(&s.params))
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

/// An entry's UTC day as counted: its number since the epoch (`occurred_at`
/// is never before 1970, so the division is the day's number), written by
/// [`day_text`]. Numbers sort as their dates do.
const DAY: &str = "e.occurred_at / 86400000";

/// An entry's UTC hour as counted in `hour_counts`: its number since the
/// epoch. An hour's [`DAY`] is its number divided by 24.
pub(crate) const HOUR: &str = "e.occurred_at / 3600000";

/// An hour in milliseconds ([`HOUR`]).
const HOUR_MS: i64 = 3_600_000;

/// A [`DAY`] as `YYYY-MM-DD`.
fn day_text(day: i64) -> Result<String, StoreError> {
    Timestamp::from_unix_millis(day.saturating_mul(86_400_000))
        .map(Timestamp::date_string)
        .ok_or_else(|| StoreError::Unreadable(format!("day {day} out of range")))
}

/// The columns [`stats`] counts by, in the order of [`Stats`]' lists: by
/// outcome, action, actor, resource type and UTC day ([`DAY`]).
pub(crate) const STATS_BY: [&str; 5] = [
    "e.outcome",
    "e.action",
    "e.actor_id",
    "e.resource_type",
    DAY,
];

/// `grouping(...)` over [`STATS_BY`] for the rows of list `i`: a bit set
/// for each column not grouped, the first column's the highest.
fn stats_set(i: usize) -> i32 {
    0b11111 ^ (1 << (STATS_BY.len() - 1 - i))
}

/// The whole hours of a stats read's window, where the hourly counts
/// answer for the entries counted (`hour_counts`, see `counts`): hours
/// `from..to` by number, open where the window is. Only a [`countable`]
/// read is counted by hour, and only if its window holds a whole hour.
struct WholeHours {
    from: Option<i64>,
    to: Option<i64>,
}

/// Whether the hourly counts can answer for `q`'s entries: it filters
/// by nothing but tenants and a window.
fn countable(q: &Query) -> bool {
    !q.has_exact_filter() && q.q.is_none()
}

fn whole_hours(q: &Query, counts: Counts) -> Option<WholeHours> {
    if counts == Counts::Behind || !countable(q) {
        return None;
    }
    let from = q.since.map(|t| {
        let ms = t.unix_millis();
        ms.div_euclid(HOUR_MS) + i64::from(ms.rem_euclid(HOUR_MS) != 0)
    });
    let to = q.until.map(|t| t.unix_millis().div_euclid(HOUR_MS));
    match (from, to) {
        (Some(from), Some(to)) if from >= to => None,
        _ => Some(WholeHours { from, to }),
    }
}

/// Whether a read may take the hourly counts: not when they are so far
/// behind (after an upgrade, until a trail is counted; while counting
/// fails) that reading the entries not counted yet would cost more than
/// counting the window's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Counts {
    Current,
    Behind,
}

/// Whether the hourly counts of `q`'s tenants are at most `most` entries
/// behind ([`Counts`]). A read the counts cannot serve (filtered) is not
/// asked about them: `Current`, which its statement ignores.
pub(crate) async fn counts_for(
    c: &impl GenericClient,
    q: &Query,
    most: u64,
) -> Result<Counts, StoreError> {
    if !countable(q) {
        return Ok(Counts::Current);
    }
    let mut params: Vec<Param> = Vec::new();
    let mut sql = format!(
        "SELECT coalesce(sum(t.size - {COUNTED_TO}), 0)::int8 FROM {TENANTS_COUNTED} WHERE true"
    );
    tenant_filter("t", &q.tenants, false, &mut sql, &mut params);
    let behind: i64 = c
        .query_one(&sql, &refs(&params))
        .await
        .map_err(db("reading how far counts are behind"))?
        .get(0);
    Ok(if u64::try_from(behind).unwrap_or(0) <= most {
        Counts::Current
    } else {
        Counts::Behind
    })
}

/// The counted columns of the entries that [`stats_statement`] and
/// [`daily_statement`] read one by one.
const COUNTED: &str = "e.occurred_at, e.outcome, e.action, e.actor_id, e.resource_type";

/// ` FROM …` of the entries a stats read over [`WholeHours`] counts one by
/// one: those of the window's partial first and last hours, and those of
/// its whole hours that are not counted yet (at or above their tenant's
/// `counted.seq`, sought by `seq`).
fn uncounted(q: &Query, h: &WholeHours, params: &mut Vec<Param>) -> String {
    let per_tenant = q.per_tenant(false);
    let mut arms = Vec::new();
    let mut edge = |start: i64, end: i64, params: &mut Vec<Param>| {
        let mut sql = format!("SELECT {COUNTED} FROM {ENTRIES} WHERE true");
        tenant_filter("e", &q.tenants, per_tenant, &mut sql, params);
        params.push(Box::new(start));
        params.push(Box::new(end));
        let _ = write!(
            sql,
            " AND e.occurred_at >= ${} AND e.occurred_at < ${}",
            params.len() - 1,
            params.len()
        );
        arms.push(sql);
    };
    if let (Some(since), Some(from)) = (q.since, h.from)
        && since.unix_millis() < from * HOUR_MS
    {
        edge(since.unix_millis(), from * HOUR_MS, params);
    }
    if let (Some(until), Some(to)) = (q.until, h.to)
        && to * HOUR_MS < until.unix_millis()
    {
        edge(to * HOUR_MS, until.unix_millis(), params);
    }
    // Each tenant's tail sought by `seq` from where it is counted to
    // (`LATERAL … OFFSET 0`, kept a lookup per tenant: a join the planner
    // chose freely could walk the entries and filter them); `+ 0`: the
    // window only filters it.
    let mut window = String::new();
    if let Some(from) = h.from {
        params.push(Box::new(from * HOUR_MS));
        let _ = write!(window, " AND e.occurred_at + 0 >= ${}", params.len());
    }
    if let Some(to) = h.to {
        params.push(Box::new(to * HOUR_MS));
        let _ = write!(window, " AND e.occurred_at + 0 < ${}", params.len());
    }
    let mut tail = format!(
        "SELECT {COUNTED} FROM {TENANTS_COUNTED},
         LATERAL (SELECT {COUNTED} FROM {ENTRIES}
                  WHERE e.tenant = t.tenant AND e.seq >= {COUNTED_TO}{window}
                  OFFSET 0) e
         WHERE true"
    );
    tenant_filter("t", &q.tenants, false, &mut tail, params);
    arms.push(tail);
    format!(" FROM ({}) e", arms.join(" UNION ALL "))
}

/// The conditions (` AND …`) on the hourly counts `c` of a read over
/// [`WholeHours`]: its tenants and whole hours.
fn hours_of(q: &Query, h: &WholeHours, params: &mut Vec<Param>) -> String {
    let mut hours = String::new();
    tenant_filter("c", &q.tenants, q.per_tenant(false), &mut hours, params);
    if let Some(from) = h.from {
        params.push(Box::new(from));
        let _ = write!(hours, " AND c.hour >= ${}", params.len());
    }
    if let Some(to) = h.to {
        params.push(Box::new(to));
        let _ = write!(hours, " AND c.hour < ${}", params.len());
    }
    hours
}

/// The counted list in which every entry counts once (the outcome: every
/// entry has one), whose hourly counts give the entries per day.
const EVERY_ENTRY: usize = 0;

/// The hourly counts of a stats read over [`WholeHours`], as rows of
/// [`stats_statement`]'s counts (list, value, day, count), one per hour:
/// each counted list's values, and the days (from [`EVERY_ENTRY`]'s
/// counts).
fn counted(q: &Query, h: &WholeHours, params: &mut Vec<Param>) -> String {
    let hours = hours_of(q, h, params);
    let list: Vec<String> = (0..4)
        .map(|i| format!("WHEN {i} THEN {}", stats_set(i)))
        .collect();
    // Not summed here: the statement sums every part's rows in one pass
    // (summing the counts first as well took a quarter longer, with
    // 100,000 actors in the window).
    format!(
        "SELECT CASE c.list {} END, c.value, NULL::int8, c.n
         FROM trailmark_ledger.hour_counts c WHERE true{hours}
         UNION ALL
         SELECT {}, NULL::text, c.hour / 24, c.n
         FROM trailmark_ledger.hour_counts c WHERE c.list = {EVERY_ENTRY}{hours}",
        list.join(" "),
        stats_set(4),
    )
}

/// The statement of [`stats`]: one pass over the entries it counts one by
/// one counts all five lists (`GROUPING SETS`, one hash table each), where
/// five statements read them five times; over [`WholeHours`], the hourly
/// counts of those hours are added (the entries read then are only the
/// partial hours' and those not counted yet). Its rows are (list, value,
/// day, count): the value for the first four lists (entries without a
/// resource type left out), the day's number for the last. The lists cut
/// at [`Stats::TOP`] ([`Stats::CUT`]) answer their candidates: every value
/// whose count reaches the `TOP`-th highest, chosen by count alone (its
/// rank, one more than the values counted more often, is at most `TOP`),
/// so the ties at the cut are all there; [`Stats::from_lists`]
/// ranks and cuts them.
fn stats_statement(q: &Query, counts: Counts) -> Statements {
    let mut params: Vec<Param> = Vec::new();
    let hours = whole_hours(q, counts);
    let from = match &hours {
        Some(h) => uncounted(q, h, &mut params),
        None => count_base(q, &mut params),
    };
    let all = STATS_BY.join(", ");
    let sets: Vec<String> = STATS_BY.iter().map(|c| format!("({c})")).collect();
    let mut grouped = format!(
        "SELECT grouping({all}) AS d, coalesce({}) AS v, {} AS day, count(*) AS n{from}
         GROUP BY GROUPING SETS ({})",
        STATS_BY[..4].join(", "),
        STATS_BY[4],
        sets.join(", "),
    );
    if let Some(h) = &hours {
        grouped = format!(
            "SELECT d, v, day, sum(n)::int8 AS n FROM ({grouped} UNION ALL {}) parts
             GROUP BY d, v, day",
            counted(q, h, &mut params)
        );
    }
    // Each list's rows: all of them, or those within its cut. A value is
    // within a cut of `cut` when its count reaches the `cut`-th highest of
    // its list (its rank is at most `cut`), found by a bounded top-N sort;
    // ranking every value (`rank()` over the list) sorted all of them: a
    // third of the statement with 100,000 actors in the window.
    let kept: Vec<String> = Stats::CUT
        .iter()
        .enumerate()
        .map(|(i, cut)| match cut {
            Some(cut) => format!(
                "(d = {set} AND n >= coalesce((SELECT t.n FROM g t
                   WHERE t.d = {set} AND t.v IS NOT NULL ORDER BY t.n DESC
                   OFFSET {} LIMIT 1), 0))",
                cut.saturating_sub(1),
                set = stats_set(i),
            ),
            None => format!("d = {}", stats_set(i)),
        })
        .collect();
    let sql = format!(
        "WITH g AS MATERIALIZED ({grouped})
         SELECT d, v, day, n FROM g WHERE (v IS NOT NULL OR d = {}) AND ({})",
        stats_set(4),
        kept.join(" OR "),
    );
    Statements {
        sql: vec![sql],
        params,
    }
}

pub(crate) async fn stats(
    c: &impl GenericClient,
    q: &Query,
    counts: Counts,
) -> Result<Stats, StoreError> {
    let s = stats_statement(q, counts);
    let rows = c
        .query(&s.sql[0], &refs(&s.params))
        .await
        .map_err(db("counting entries"))?;
    let mut lists: [Vec<(String, u64)>; 5] = Default::default();
    for row in &rows {
        let set: i32 = row.try_get(0).map_err(db("reading counts"))?;
        let count =
            u64::try_from(row.try_get::<_, i64>(3).map_err(db("reading counts"))?).unwrap_or(0);
        let Some(i) = (0..STATS_BY.len()).find(|&i| stats_set(i) == set) else {
            return Err(StoreError::Unreadable(format!(
                "stats: a count of no list (grouping {set})"
            )));
        };
        let value = if i == 4 {
            day_text(row.try_get(2).map_err(db("reading counts"))?)?
        } else {
            row.try_get::<_, String>(1).map_err(db("reading counts"))?
        };
        lists[i].push((value, count));
    }
    Ok(Stats::from_lists(lists))
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

/// Which checkpoints of a tenant to read.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Checkpoints {
    Latest,
    /// Sizes above the first (every size when none), at most the second
    /// many, oldest first.
    After(Option<u64>, usize),
}

pub(crate) async fn checkpoints(
    c: &impl GenericClient,
    tenant: &TenantId,
    which: Checkpoints,
) -> Result<Vec<CheckpointRecord>, StoreError> {
    let (sql, after, limit) = match which {
        Checkpoints::Latest => (
            "SELECT tenant, size, root, note, signed_at FROM trailmark_ledger.checkpoints
             WHERE tenant = $1 AND size > $2 ORDER BY size DESC LIMIT $3",
            -1,
            1,
        ),
        Checkpoints::After(after, limit) => (
            "SELECT tenant, size, root, note, signed_at FROM trailmark_ledger.checkpoints
             WHERE tenant = $1 AND size > $2 ORDER BY size LIMIT $3",
            after.map_or(-1, to_i64),
            i64::try_from(limit).unwrap_or(i64::MAX),
        ),
    };
    c.query(sql, &[&tenant.as_str(), &after, &limit])
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
    let bad = |m: String| StoreError::Unreadable(format!("key {id}: {m}"));
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

/// The statement of [`daily_counts`]: over [`WholeHours`], the hourly
/// counts of its whole hours (the list that counts `by`) and the entries
/// not counted in them, as for [`stats_statement`].
fn daily_statement(q: &Query, by: CountBy, counts: Counts) -> Statements {
    let mut params: Vec<Param> = Vec::new();
    let column = by.column();
    let list = STATS_BY.iter().position(|c| *c == column);
    let sql = if let (Some(h), Some(list)) = (whole_hours(q, counts), list) {
        let from = uncounted(q, &h, &mut params);
        let hours = hours_of(q, &h, &mut params);
        format!(
            "SELECT day, v, sum(n)::int8 FROM (
               SELECT {DAY} AS day, {column} AS v, count(*) AS n{from} GROUP BY 1, 2
               UNION ALL
               SELECT c.hour / 24, c.value, c.n FROM trailmark_ledger.hour_counts c
               WHERE c.list = {list}{hours}
             ) parts GROUP BY 1, 2 ORDER BY 1, 2"
        )
    } else {
        let base = count_base(q, &mut params);
        format!("SELECT {DAY}, {column}, count(*){base} GROUP BY 1, 2 ORDER BY 1, 2")
    };
    Statements {
        sql: vec![sql],
        params,
    }
}

pub(crate) async fn daily_counts(
    c: &impl GenericClient,
    q: &Query,
    by: CountBy,
    counts: Counts,
) -> Result<Vec<(String, String, u64)>, StoreError> {
    let s = daily_statement(q, by, counts);
    c.query(&s.sql[0], &refs(&s.params))
        .await
        .map_err(db("counting entries by day"))?
        .iter()
        .map(|r| {
            Ok((
                day_text(r.get::<_, i64>(0))?,
                r.get::<_, String>(1),
                u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
            ))
        })
        .collect()
}

/// How PostgreSQL would run a read, on statistics of what is stored now:
/// in a transaction that is rolled back (so nothing it does stays), it
/// analyzes the entries table and prices sequential scans out
/// (`enable_seqscan = off`). PostgreSQL chooses by cost, so on a small
/// table it may rightly prefer a scan; what this shows is the path it takes
/// when the table is too large for one, and that it never has to walk a
/// tenant.
pub(crate) async fn plan(c: &mut tokio_postgres::Client, read: &Read) -> Result<Plan, StoreError> {
    let s = match read {
        Read::Page(q) => page_statement(q),
        Read::Stats(q) => stats_statement(q, Counts::Current),
        Read::DailyCounts(q, by) => daily_statement(q, *by, Counts::Current),
        Read::EntryById { tenants, id } => entry_by_id_statement(tenants, *id),
        Read::Entries { tenant, start, end } => entries_statement(tenant, *start, *end),
    };
    let tx = c.transaction().await.map_err(db("explaining a read"))?;
    tx.batch_execute(
        "ANALYZE trailmark_ledger.entries; ANALYZE trailmark_ledger.payloads;
         SET LOCAL enable_seqscan = off",
    )
    .await
    .map_err(db("explaining a read"))?;
    let mut plan = Plan::default();
    for sql in &s.sql {
        let row = tx
            .query_one(&format!("EXPLAIN (FORMAT JSON) {sql}"), &refs(&s.params))
            .await
            .map_err(db("explaining a read"))?;
        let JsonText(text) = row.try_get(0).map_err(db("reading a plan"))?;
        let json: Value =
            serde_json::from_str(&text).map_err(|e| StoreError::backend("reading a plan", e))?;
        if let Some(root) = json.pointer("/0/Plan") {
            walk_plan(root, &mut plan);
        }
        plan.text.push_str(&text);
        plan.text.push('\n');
    }
    tx.rollback().await.map_err(db("explaining a read"))?;
    Ok(plan)
}

/// A `json` value as its text (the binary form of `json` is its text).
struct JsonText(String);

impl<'a> tokio_postgres::types::FromSql<'a> for JsonText {
    fn from_sql(
        _: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Self(std::str::from_utf8(raw)?.to_owned()))
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        *ty == tokio_postgres::types::Type::JSON
    }
}

/// Collects a plan node and its children: accesses to entries and payload
/// partitions, and sorts.
fn walk_plan(node: &Value, plan: &mut Plan) {
    let field = |name: &str| node.get(name).and_then(Value::as_str);
    let node_type = field("Node Type").unwrap_or_default();
    if node_type == "Sort" || node_type == "Incremental Sort" {
        plan.sorts = true;
    }
    let relation = field("Relation Name").unwrap_or_default();
    let on_ledger = relation == "entries" || relation.starts_with("payloads_");
    let index =
        field("Index Name").filter(|i| i.starts_with("entries_") || i.starts_with("payloads_"));
    match node_type {
        "Seq Scan" if on_ledger => plan.accesses.push(Access {
            index: None,
            seek: Vec::new(),
        }),
        // A bitmap heap scan reads what its index scans below it found.
        "Index Scan" | "Index Only Scan" | "Bitmap Index Scan" if index.is_some() => {
            let index = index.unwrap_or_default();
            let cond = field("Index Cond").unwrap_or_default();
            // A row looked up by the position of a row another step found
            // (an entry's payload, the entry of a payload or search match)
            // reads that row only, whatever else the index seeks by.
            let seek = if looks_up_position(cond) {
                vec!["pos".to_owned()]
            } else {
                cond_columns(cond)
            };
            plan.accesses.push(Access {
                index: Some(
                    if index.ends_with("search") || index.ends_with("search_idx") {
                        "search".to_owned()
                    } else {
                        index.to_owned()
                    },
                ),
                seek,
            });
        }
        _ => {}
    }
    for child in node
        .get("Plans")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        walk_plan(child, plan);
    }
}

/// Whether an index condition equates `pos` with another relation's
/// (`(pos = p.pos)`).
fn looks_up_position(cond: &str) -> bool {
    cond.split("(pos = ").skip(1).any(|rest| {
        rest.split_once(".pos)").is_some_and(|(alias, _)| {
            !alias.is_empty()
                && alias
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '"' || c == '*')
        })
    })
}

/// The columns an index condition bounds: each `(column op ...)`.
fn cond_columns(cond: &str) -> Vec<String> {
    cond.split('(')
        .filter_map(|part| {
            let (column, rest) = part.split_once(' ')?;
            let op = rest.split(' ').next()?;
            let is_column =
                !column.is_empty() && column.chars().all(|c| c.is_ascii_lowercase() || c == '_');
            // `IS` (NULL) seeks a B-tree too: the entries naming no record.
            let is_op = ["=", "<", ">", "<=", ">=", "@@", "IS"].contains(&op);
            (is_column && is_op).then(|| column.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{EVERY_ENTRY, STATS_BY};

    /// The days of a stats read from hourly counts are [`EVERY_ENTRY`]'s
    /// counts: the outcome's, which every entry has one of.
    #[test]
    fn the_days_are_counted_from_the_outcome_list() {
        assert_eq!(
            STATS_BY[EVERY_ENTRY],
            trailmark_store::CountBy::Outcome.column()
        );
    }
}
