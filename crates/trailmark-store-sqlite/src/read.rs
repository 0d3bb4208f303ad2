//! Reads, on pooled read-only connections (WAL lets them run beside the writer).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt::Write as _;
use std::sync::atomic;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params_from_iter};
use trailmark_core::{EventId, StoredColumns, TenantId, Timestamp};
use trailmark_log::{Hash, TreeSize};
use trailmark_store::{
    Access, CheckpointRecord, CountBy, Cursor, Exact, KeyRecord, Page, Plan, Query, RawEntry,
    RawEntryRef, RawPage, Read, Removal, Scopes, SigningKeyRecord, Stats, StoreError, StoredEntry,
    TenantHead,
};

use crate::index::{Indexed, SpanWidth};
use crate::strips::to_i64;

fn db(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| {
        // Only a `q=` search reaches the full-text index: what it cannot
        // run is the caller's to change, never a storage failure.
        if e.to_string().contains("fts5:") {
            StoreError::BadRequest {
                field: "q",
                message: format!(
                    "these words cannot be searched ({e}); search for fewer or plainer words"
                ),
            }
        } else {
            StoreError::backend(context, e)
        }
    }
}

const ENTRY_FIELDS: &str = "e.pos, e.envelope, e.leaf_hash, e.payload, e.salt, \
     e.tenant, e.seq, e.id, e.occurred_at, e.actor_id, e.action, e.resource_type, e.resource_id, \
     e.outcome, e.ip, e.request_id, e.removed_kind, e.removed_by";

/// One row of [`ENTRY_FIELDS`]: position (for paging), then the entry (or
/// why it is unreadable).
struct EntryRow {
    pos: i64,
    entry: Result<RawEntry, StoreError>,
}

fn entry_row(row: &Row<'_>) -> rusqlite::Result<EntryRow> {
    Ok(EntryRow {
        pos: row.get(0)?,
        entry: with_entry(row, |e| e.map(|e| e.owned()))?,
    })
}

/// Reads the entry of one row of [`ENTRY_FIELDS`] in place (the one
/// reading of that layout) and hands it to `f`, borrowed from the row; a
/// leaf hash or salt of the wrong length is a damaged store.
fn with_entry<T>(
    row: &Row<'_>,
    f: impl FnOnce(Result<RawEntryRef<'_>, StoreError>) -> T,
) -> rusqlite::Result<T> {
    let text = |i| row.get_ref(i).and_then(|v| Ok(v.as_str()?));
    let optional = |i| row.get_ref(i).and_then(|v| Ok(v.as_str_or_null()?));
    let columns = StoredColumns {
        tenant: text(5)?,
        seq: u64::try_from(row.get::<_, i64>(6)?).unwrap_or(u64::MAX),
        id: text(7)?,
        occurred_at: row.get(8)?,
        actor_id: text(9)?,
        action: text(10)?,
        resource_type: optional(11)?,
        resource_id: optional(12)?,
        outcome: text(13)?,
        ip: optional(14)?,
        request_id: optional(15)?,
    };
    let envelope_bytes = row.get_ref(1)?.as_blob()?;
    let payload_text = optional(3)?;
    let removed = Removal::from_parts(optional(16)?, row.get(17)?);
    let leaf = Hash::from_slice(row.get_ref(2)?.as_blob()?);
    let salt = RawEntry::salt_from(row.get_ref(4)?.as_blob_or_null()?);
    Ok(match (leaf, salt) {
        (Ok(leaf_hash), Ok(salt)) => f(Ok(RawEntryRef {
            envelope_bytes,
            leaf_hash,
            payload_text,
            salt: salt.as_ref(),
            columns,
            removed,
        })),
        (Err(e), _) => f(Err(e.into())),
        (_, Err(e)) => f(Err(e)),
    })
}

fn to_entry(row: EntryRow) -> Result<StoredEntry, StoreError> {
    row.entry?.parse()
}

/// A stored tenant name, read back.
fn tenant_of(name: &str) -> Result<TenantId, StoreError> {
    TenantId::from_stored(name)
        .map_err(|m| StoreError::Unreadable(format!("tenant name {name:?}: {m}")))
}

pub(crate) fn heads(conn: &Connection) -> Result<Vec<TenantHead>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT name, size FROM tenants ORDER BY name")
        .map_err(db("listing tenants"))?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .map_err(db("listing tenants"))?;
    rows.map(|row| {
        let (name, size) = row.map_err(db("listing tenants"))?;
        Ok(TenantHead {
            tenant: tenant_of(&name)?,
            size: TreeSize::new(u64::try_from(size).unwrap_or(0)).unwrap_or_default(),
        })
    })
    .collect()
}

pub(crate) fn head(conn: &Connection, tenant: &TenantId) -> Result<TreeSize, StoreError> {
    let size: Option<i64> = conn
        .prepare_cached("SELECT size FROM tenants WHERE name = ?1")
        .and_then(|mut s| s.query_row([tenant.as_str()], |r| r.get(0)).optional())
        .map_err(db("reading a tenant's size"))?;
    Ok(TreeSize::new(size.and_then(|n| u64::try_from(n).ok()).unwrap_or(0)).unwrap_or_default())
}

/// One statement and its arguments: what a read runs and what
/// [`plan`] explains, built once.
struct Statement {
    sql: String,
    args: Vec<SqlValue>,
}

fn entries_statement(tenant: &TenantId, start: u64, end: u64) -> Statement {
    Statement {
        sql: format!(
            "SELECT {ENTRY_FIELDS} FROM entries e WHERE e.tenant = ? AND e.seq >= ? AND e.seq < ? ORDER BY e.seq"
        ),
        args: vec![
            SqlValue::Text(tenant.as_str().to_owned()),
            SqlValue::Integer(to_i64(start)),
            SqlValue::Integer(to_i64(end)),
        ],
    }
}

pub(crate) fn raw_entries(
    conn: &Connection,
    tenant: &TenantId,
    start: u64,
    end: u64,
) -> Result<Vec<RawEntry>, StoreError> {
    each_entry(conn, tenant, start, end, Vec::with_capacity, |out, e| {
        out.push(e.owned());
    })
}

/// [`raw_entries`] copied into one [`RawPage`], each row read in place.
pub(crate) fn raw_page(
    conn: &Connection,
    tenant: &TenantId,
    start: u64,
    end: u64,
) -> Result<RawPage, StoreError> {
    each_entry(
        conn,
        tenant,
        start,
        end,
        |n| RawPage::with_capacity(n, 512),
        RawPage::push,
    )
}

/// Entries `start..end` of a tenant in order, each handed to `each`
/// borrowed from its row, into what `room` makes for as many entries as
/// the range holds (up to a bound: a page of thousands grown by doubling
/// was copied about twice over).
fn each_entry<T>(
    conn: &Connection,
    tenant: &TenantId,
    start: u64,
    end: u64,
    room: impl FnOnce(usize) -> T,
    mut each: impl FnMut(&mut T, RawEntryRef<'_>),
) -> Result<T, StoreError> {
    let s = entries_statement(tenant, start, end);
    let mut stmt = conn.prepare_cached(&s.sql).map_err(db("reading entries"))?;
    let mut rows = stmt
        .query(params_from_iter(s.args))
        .map_err(db("reading entries"))?;
    let expected = usize::try_from(end.saturating_sub(start)).unwrap_or(usize::MAX);
    let mut out = room(expected.min(RAW_ENTRIES_RESERVED));
    while let Some(row) = rows.next().map_err(db("reading entries"))? {
        with_entry(row, |e| e.map(|e| each(&mut out, e))).map_err(db("reading entries"))??;
    }
    Ok(out)
}

/// The most entries [`each_entry`] makes room for before reading.
const RAW_ENTRIES_RESERVED: usize = 1 << 16;

/// The tenant condition: the caller's tenant, or (`per_tenant`) every
/// tenant in turn, so that a tenant-first index serves a read over all.
fn tenant_filter(
    tenants: &[TenantId],
    per_tenant: bool,
    sql: &mut String,
    args: &mut Vec<SqlValue>,
) {
    if tenants.is_empty() {
        if per_tenant {
            sql.push_str(" AND e.tenant IN (SELECT name FROM tenants)");
        }
        return;
    }
    let marks = vec!["?"; tenants.len()].join(", ");
    let _ = write!(sql, " AND e.tenant IN ({marks})");
    args.extend(
        tenants
            .iter()
            .map(|t| SqlValue::Text(t.as_str().to_owned())),
    );
}

fn entry_by_id_statement(tenants: &[TenantId], id: EventId) -> Statement {
    let mut sql = format!("SELECT {ENTRY_FIELDS} FROM entries e WHERE e.id = ?");
    let mut args = vec![SqlValue::Text(id.to_string())];
    tenant_filter(tenants, false, &mut sql, &mut args);
    sql.push_str(" ORDER BY e.pos LIMIT 1");
    Statement { sql, args }
}

pub(crate) fn entry_by_id(
    conn: &Connection,
    tenants: &[TenantId],
    id: EventId,
) -> Result<Option<StoredEntry>, StoreError> {
    let s = entry_by_id_statement(tenants, id);
    let row = conn
        .prepare_cached(&s.sql)
        .and_then(|mut st| st.query_row(params_from_iter(s.args), entry_row).optional())
        .map_err(db("reading an entry by id"))?;
    row.map(to_entry).transpose()
}

/// [`entry_by_id`] for each key, in one read transaction (one snapshot,
/// one lock taken instead of one per key). An id above the greatest its
/// tenant holds is not there without looking (ids are stored as their
/// text, which sorts as their bytes do): a batch of new ids that rise
/// (`UUIDv7`, captured changes) costs one lookup per tenant, not one per id.
pub(crate) fn entries_by_ids(
    conn: &Connection,
    keys: &[(TenantId, EventId)],
) -> Result<Vec<Option<StoredEntry>>, StoreError> {
    let tx = conn
        .unchecked_transaction()
        .map_err(db("starting a read"))?;
    let mut greatest: HashMap<&TenantId, Option<String>> = HashMap::new();
    let mut found = Vec::with_capacity(keys.len());
    for (tenant, id) in keys {
        let greatest = match greatest.entry(tenant) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(slot) => slot.insert(greatest_id(&tx, tenant)?),
        };
        let above = greatest
            .as_deref()
            .is_none_or(|greatest| id.to_text().as_slice() > greatest.as_bytes());
        found.push(if above {
            None
        } else {
            entry_by_id(&tx, std::slice::from_ref(tenant), *id)?
        });
    }
    tx.finish().map_err(db("ending a read"))?;
    Ok(found)
}

/// The greatest id `tenant` holds (one step down its id index), if any.
fn greatest_id(conn: &Connection, tenant: &TenantId) -> Result<Option<String>, StoreError> {
    conn.prepare_cached("SELECT id FROM entries WHERE tenant = ? ORDER BY id DESC LIMIT 1")
        .and_then(|mut st| st.query_row([tenant.as_str()], |r| r.get(0)).optional())
        .map_err(db("reading a tenant's greatest id"))
}

/// A free-text search as an FTS5 query: every word (run of letters and
/// digits, as the index's tokenizer splits them) required, quoted so that no
/// input is read as query syntax.
fn fts_query(q: &str) -> Option<String> {
    let words: Vec<String> = q
        .split(|c: char| !is_token_char(c))
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{w}\""))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// A character FTS5's `unicode61` tokenizer keeps in a token (its default
/// `categories 'L* N* Co'`); every other one separates tokens. Splitting the
/// query by the same rule keeps every quoted word one token: a word the
/// index would split (`a\u{345}b`) would be a phrase, which a
/// `detail=none` index cannot answer.
fn is_token_char(c: char) -> bool {
    use unicode_general_category::{GeneralCategory as G, get_general_category};
    matches!(
        get_general_category(c),
        G::UppercaseLetter
            | G::LowercaseLetter
            | G::TitlecaseLetter
            | G::ModifierLetter
            | G::OtherLetter
            | G::DecimalNumber
            | G::LetterNumber
            | G::OtherNumber
            | G::PrivateUse
    )
}

/// Runs `f` in one read transaction with the index file's position: the
/// entries up to it are in the index file, those above it only in the
/// ledger file. The index file is written only after the ledger file
/// committed what it covers, so every entry either snapshot can see is
/// found by one of the two.
pub(crate) fn in_snapshot<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection, Indexed) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.execute_batch("BEGIN").map_err(db("starting a read"))?;
    let result = conn
        .query_row("SELECT pos, span_bits FROM ix_state", [], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, u32>(1)?))
        })
        .map_err(db("reading the index file's position"))
        .and_then(|(pos, bits)| {
            Ok(Indexed {
                pos,
                spans: SpanWidth::stored(bits)?,
            })
        })
        .and_then(|indexed| f(conn, indexed));
    let _ = conn.execute_batch(if result.is_ok() { "COMMIT" } else { "ROLLBACK" });
    result
}

/// Where a query's rows are found: a statement's `FROM ... WHERE ...` (the
/// entry as `e`), its arguments, and the position column that orders it.
struct Part {
    from: String,
    args: Vec<SqlValue>,
    pos: &'static str,
}

/// The parts a query reads, newest first: the entries above the index
/// file's position (`indexed`), then the index file's matches up to it; or
/// the ledger file alone when its own indexes serve (a tenant's newest
/// first, a time window with only a start). A free-text search finds the
/// entries above the position in the read's own search index of them
/// ([`search_tail`] fills it first).
fn parts(q: &Query, ordered: bool, indexed: Indexed) -> Vec<Part> {
    if let Some(text) = q.q.as_deref() {
        let Some(words) = fts_query(text) else {
            // A search with no word the index holds: nothing can match (as
            // with the PostgreSQL store).
            return vec![Part {
                from: " FROM entries e WHERE 1 = 0".into(),
                args: Vec::new(),
                pos: "e.pos",
            }];
        };
        // The read's own search index above the position, the index
        // file's up to it.
        let search = |table: &str, name: &str, bound: &str| {
            let mut from = format!(
                " FROM (SELECT rowid AS pos FROM {table} WHERE {name} MATCH ? AND rowid {bound} ?
                  ORDER BY rowid DESC) m CROSS JOIN entries e ON e.pos = m.pos WHERE 1 = 1"
            );
            let mut args = vec![
                SqlValue::Text(words.clone()),
                SqlValue::Integer(indexed.pos),
            ];
            filters(q, false, &mut from, &mut args);
            Part {
                from,
                args,
                pos: "e.pos",
            }
        };
        return vec![
            search("temp.ix_tail", "ix_tail", ">"),
            search("ix_fts", "ix_fts", "<="),
        ];
    }
    let keyed = crate::index::KEY_TABLES
        .iter()
        .find(|(_, fields)| q.exact.contains_key(&fields[0]));
    let Some((table, fields)) = keyed else {
        if q.window_seeks(ordered) {
            return vec![
                tail_part(q, indexed),
                keyed_part(q, "ix_time", None, indexed),
            ];
        }
        let mut from = " FROM entries e WHERE 1 = 1".to_owned();
        let mut args = Vec::new();
        filters(q, q.per_tenant(ordered), &mut from, &mut args);
        return vec![Part {
            from,
            args,
            pos: "e.pos",
        }];
    };
    // The newest span that can hold a match: the index file's position's,
    // or on a later page the cursor's.
    let below = match q.cursor {
        Some(Cursor(pos)) if ordered => indexed.pos.min(to_i64(pos).saturating_sub(1)),
        _ => indexed.pos,
    };
    let top = indexed.span_of(below);
    let mut parts = vec![tail_part(q, indexed)];
    if ordered {
        // Span by span, newest first: the caller stops when its page is full.
        parts.extend(
            (0..=top)
                .rev()
                .map(|span| keyed_part(q, table, Some((fields, Spans::One(span))), indexed)),
        );
    } else {
        parts.push(keyed_part(
            q,
            table,
            Some((fields, Spans::Through(top))),
            indexed,
        ));
    }
    parts
}

/// The spans of a key table a part reads (see [`crate::index::SPAN_BITS`]).
#[derive(Clone, Copy)]
enum Spans {
    /// This one: a page reads the spans one at a time, newest first.
    One(i64),
    /// All up to this one, at once: a count.
    Through(i64),
}

/// The entries above the index file's position, read by position (NOT
/// INDEXED: not through the ledger file's tenant index), which bounds the
/// read by the lag, and filtered.
fn tail_part(q: &Query, indexed: Indexed) -> Part {
    let mut from = " FROM entries e NOT INDEXED WHERE e.pos > ?".to_owned();
    let mut args = vec![SqlValue::Integer(indexed.pos)];
    filters(q, false, &mut from, &mut args);
    Part {
        from,
        args,
        pos: "e.pos",
    }
}

/// The matches of an index file table up to its position (`key`: a key
/// table's filters and spans; none: the time window), each entry looked up
/// by position and filtered by the rest.
fn keyed_part(q: &Query, table: &str, key: Option<(&[Exact], Spans)>, indexed: Indexed) -> Part {
    let (seek_sql, mut args) = seek(q, key);
    let mut from = format!(
        " FROM {table} i CROSS JOIN entries e ON e.pos = i.pos WHERE {seek_sql} AND i.pos <= ?"
    );
    args.push(SqlValue::Integer(indexed.pos));
    filters(q, false, &mut from, &mut args);
    Part {
        from,
        args,
        pos: "i.pos",
    }
}

/// `<alias>.tenant IN (...)`: the caller's tenants, or every tenant (named,
/// so that a tenant-first key is sought tenant by tenant).
fn tenant_in(alias: &str, tenants: &[TenantId], sql: &mut String, args: &mut Vec<SqlValue>) {
    if tenants.is_empty() {
        let _ = write!(sql, "{alias}.tenant IN (SELECT name FROM tenants)");
    } else {
        let marks = vec!["?"; tenants.len()].join(", ");
        let _ = write!(sql, "{alias}.tenant IN ({marks})");
        args.extend(
            tenants
                .iter()
                .map(|t| SqlValue::Text(t.as_str().to_owned())),
        );
    }
}

/// The conditions that bound the walk of an index file table (alias `i`):
/// a key table's spans, the tenants, then the key's filters (`key`) or the
/// time window.
fn seek(q: &Query, key: Option<(&[Exact], Spans)>) -> (String, Vec<SqlValue>) {
    let mut sql = String::new();
    let mut args = Vec::new();
    match key {
        Some((_, Spans::One(span))) => {
            sql.push_str("i.span = ? AND ");
            args.push(SqlValue::Integer(span));
        }
        Some((_, Spans::Through(top))) => {
            // Listed, so that the key is sought in each span; the text
            // changes once per span, not per read.
            let spans: Vec<String> = (0..=top).map(|s| s.to_string()).collect();
            let _ = write!(sql, "i.span IN ({}) AND ", spans.join(", "));
        }
        None => {}
    }
    tenant_in("i", &q.tenants, &mut sql, &mut args);
    if let Some((fields, _)) = key {
        for field in fields {
            if let Some(value) = q.exact.get(field) {
                let _ = write!(sql, " AND i.{} = ?", field.column());
                args.push(SqlValue::Text(value.clone()));
            } else if *field == Exact::ResourceId && q.no_resource_id {
                // The key tables hold an absent id as '' (an event's id
                // is never empty).
                sql.push_str(" AND i.resource_id = ''");
            }
        }
    } else {
        if let Some(since) = q.since {
            sql.push_str(" AND i.occurred_at >= ?");
            args.push(SqlValue::Integer(since.unix_millis()));
        }
        if let Some(until) = q.until {
            sql.push_str(" AND i.occurred_at < ?");
            args.push(SqlValue::Integer(until.unix_millis()));
        }
    }
    (sql, args)
}

/// The WHERE conditions of a query's filters (not its paging or free text),
/// appended to `sql` with their arguments. `per_tenant`: a read over every
/// tenant names them, so a tenant-first index of the ledger file serves it.
/// The time window is filtered, never sought, in the ledger file (the index
/// file's time index seeks it).
fn filters(q: &Query, per_tenant: bool, sql: &mut String, args: &mut Vec<SqlValue>) {
    tenant_filter(&q.tenants, per_tenant, sql, args);
    for (field, value) in &q.exact {
        let _ = write!(sql, " AND e.{} = ?", field.column());
        args.push(SqlValue::Text(value.clone()));
    }
    if q.no_resource_id {
        sql.push_str(" AND e.resource_id IS NULL");
    }
    if let Some(since) = q.since {
        sql.push_str(" AND +e.occurred_at >= ?");
        args.push(SqlValue::Integer(since.unix_millis()));
    }
    if let Some(until) = q.until {
        sql.push_str(" AND +e.occurred_at < ?");
        args.push(SqlValue::Integer(until.unix_millis()));
    }
}

fn page_statements(q: &Query, indexed: Indexed) -> Vec<Statement> {
    parts(q, true, indexed)
        .into_iter()
        .map(|part| {
            let mut sql = format!("SELECT {ENTRY_FIELDS}{}", part.from);
            let mut args = part.args;
            if let Some(Cursor(pos)) = q.cursor {
                let _ = write!(sql, " AND {} < ?", part.pos);
                args.push(SqlValue::Integer(to_i64(pos)));
            }
            let _ = write!(
                sql,
                " ORDER BY {} DESC LIMIT {}",
                part.pos,
                q.limit.max(1) + 1
            );
            Statement { sql, args }
        })
        .collect()
}

/// Most entries above the index file's position that a free-text search
/// indexes itself, in memory on its reader's connection, rather than wait
/// for the indexer to reach them (about 1 KB of words each at most).
pub const TAIL_SEARCH_MAX: usize = 2048;

/// How a free-text search finds the entries above the index file's
/// position, which the index file does not hold yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tail {
    /// Indexes them itself when they are at most [`TAIL_SEARCH_MAX`]; past
    /// that the read answers `None`, and the caller waits for the indexer
    /// and reads again ([`Tail::Waited`]).
    Search,
    /// The indexer covered every entry acknowledged before the read began
    /// (the caller waited): indexes those appended since itself when they
    /// are at most [`TAIL_SEARCH_MAX`], else leaves them out.
    Waited,
    /// A read-only store's (nothing else indexes them): indexes them itself
    /// when they are at most [`TAIL_SEARCH_MAX`], else refuses the search.
    Refuse,
}

/// What a read knows of the entries above the index file's position.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TailSearch {
    pub(crate) tail: Tail,
    /// The writes other than appends (erasures among them) the writer had
    /// committed before the read began: the words a reader's connection
    /// kept of earlier tails serve while this has not changed. (With
    /// today's bounds the wait for a pending erasure and the pruning below
    /// the position already drop an erased entry's words; this does not
    /// rely on them.)
    pub(crate) erasures: u64,
}

/// Brings the reader's own search index (`temp.ix_tail`) to the entries
/// above the index file's position, for a free-text search: what earlier
/// searches on this connection put there is kept while no erasure came
/// since (pruned below the position), and only newer entries are added;
/// `None` when [`Tail::Search`] finds too many.
fn search_tail(
    conn: &Connection,
    q: &Query,
    indexed: Indexed,
    search: TailSearch,
) -> Result<Option<()>, StoreError> {
    if q.q.is_none() {
        return Ok(Some(()));
    }
    let context = "indexing the entries above the index file's position";
    let (top, floor, erasures): (i64, i64, i64) = conn
        .query_row(
            "SELECT top, floor, erasures FROM temp.ix_tail_state",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .map_err(db(context))?;
    let erasures_now = to_i64(search.erasures);
    let empty = || {
        conn.execute(
            "INSERT INTO temp.ix_tail (ix_tail) VALUES ('delete-all')",
            [],
        )
        .map_err(db(context))
    };
    let record = |top: i64, floor: i64, erasures: i64| {
        conn.execute(
            "UPDATE temp.ix_tail_state SET top = ?1, floor = ?2, erasures = ?3",
            rusqlite::params![top, floor, erasures],
        )
        .map_err(db(context))
    };
    // Kept while no write other than an append came since, and while the
    // index file's position lies within what was kept (it never moves back
    // today; if it did, the entries between would be missing here).
    let kept = if erasures != erasures_now || top < indexed.pos || indexed.pos < floor {
        empty()?;
        indexed.pos
    } else {
        if indexed.pos > floor {
            conn.execute("DELETE FROM temp.ix_tail WHERE rowid <= ?1", [indexed.pos])
                .map_err(db(context))?;
        }
        top
    };
    // Positions above the index file's that are kept (entries, or gaps).
    let room = usize::try_from(kept - indexed.pos)
        .ok()
        .and_then(|kept| TAIL_SEARCH_MAX.checked_sub(kept));
    let words = match room {
        Some(room) => crate::index::tail_words(conn, kept, room)?,
        None => None,
    };
    let Some(words) = words else {
        empty()?;
        record(-1, -1, -1)?;
        return match search.tail {
            Tail::Search => Ok(None),
            Tail::Waited => Ok(Some(())),
            Tail::Refuse => Err(search_behind(conn, indexed)),
        };
    };
    let mut insert = conn
        .prepare_cached("INSERT INTO temp.ix_tail (rowid, body) VALUES (?1, ?2)")
        .map_err(db(context))?;
    for (pos, body) in &words {
        insert
            .execute(rusqlite::params![pos, body])
            .map_err(db(context))?;
    }
    record(
        words.last().map_or(kept, |(pos, _)| *pos),
        indexed.pos,
        erasures_now,
    )?;
    Ok(Some(()))
}

/// The refusal of a free-text search by a read-only store whose index file
/// is more than [`TAIL_SEARCH_MAX`] entries behind the trail.
fn search_behind(conn: &Connection, indexed: Indexed) -> StoreError {
    let behind = conn
        .query_row(
            "SELECT count(*) FROM (SELECT 1 FROM entries WHERE pos > ?1 LIMIT 1000000)",
            [indexed.pos],
            |r| r.get::<_, i64>(0),
        )
        .map_err(db("reading the index file's position"));
    match behind {
        Err(e) => e,
        Ok(behind) => StoreError::BadRequest {
            field: "q",
            message: format!(
                "the search index of this data dir is {behind} entries behind the trail (its \
                 server stopped before the indexer caught up): start `trailmark serve` on it \
                 once, or search without q="
            ),
        },
    }
}

/// A page, newest first (`None`: see [`Tail::Search`]).
pub(crate) fn query(
    conn: &Connection,
    q: &Query,
    search: TailSearch,
) -> Result<Option<Page>, StoreError> {
    in_snapshot(conn, |conn, indexed| {
        if search_tail(conn, q, indexed, search)?.is_none() {
            return Ok(None);
        }
        let limit = q.limit.max(1);
        let mut rows = Vec::with_capacity(limit + 1);
        for s in page_statements(q, indexed) {
            if rows.len() > limit {
                break;
            }
            // Kept prepared: a page's statement has a few shapes (its
            // filters, the page size), and preparing one anew was a tenth
            // of a filtered read's CPU.
            let mut stmt = conn
                .prepare_cached(&s.sql)
                .map_err(db("preparing a query"))?;
            let found = stmt
                .query_map(params_from_iter(s.args), entry_row)
                .map_err(db("running a query"))?;
            for row in found {
                rows.push(row.map_err(db("running a query"))?);
            }
        }
        let more = rows.len() > limit;
        let mut entries = Vec::with_capacity(limit);
        let mut last = None;
        for row in rows.into_iter().take(limit) {
            last = Some(row.pos);
            entries.push(to_entry(row)?);
        }
        let next = if more {
            last.and_then(|p| u64::try_from(p).ok()).map(Cursor)
        } else {
            None
        };
        Ok(Some(Page { entries, next }))
    })
}

/// One grouped count over a query's parts: `select` are the grouped
/// expressions (of `e`), `extra` a further condition, `order` the ORDER BY.
fn grouped(parts: &[Part], select: &[&str], extra: &str, order: &str) -> Statement {
    let columns: Vec<String> = (1..=select.len()).map(|i| i.to_string()).collect();
    let group = columns.join(", ");
    let mut args = Vec::new();
    if let [part] = parts {
        args.extend(part.args.iter().cloned());
        return Statement {
            sql: format!(
                "SELECT {}, count(*){}{extra} GROUP BY {group} ORDER BY {order}",
                select.join(", "),
                part.from
            ),
            args,
        };
    }
    let named: Vec<String> = select
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{s} AS c{i}"))
        .collect();
    let arms: Vec<String> = parts
        .iter()
        .map(|part| {
            args.extend(part.args.iter().cloned());
            format!("SELECT {}{}{extra}", named.join(", "), part.from)
        })
        .collect();
    let outer: Vec<String> = (0..select.len()).map(|i| format!("u.c{i}")).collect();
    Statement {
        sql: format!(
            "SELECT {}, count(*) FROM ({}) u GROUP BY {group} ORDER BY {order}",
            outer.join(", "),
            arms.join(" UNION ALL ")
        ),
        args,
    }
}

fn checkpoint_row(row: &Row<'_>) -> rusqlite::Result<(String, i64, Vec<u8>, String, i64)> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

fn to_checkpoint(
    (tenant, size, root, note, at): (String, i64, Vec<u8>, String, i64),
) -> Result<CheckpointRecord, StoreError> {
    Ok(CheckpointRecord {
        tenant: tenant_of(&tenant)?,
        size: TreeSize::new(u64::try_from(size).unwrap_or(0)).unwrap_or_default(),
        root: Hash::from_slice(&root)?,
        note,
        signed_at: Timestamp::from_unix_millis(at).unwrap_or(Timestamp::EPOCH),
    })
}

/// Which checkpoints of a tenant to read.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Checkpoints {
    Latest,
    /// Sizes above the first (every size when none), at most the second
    /// many, oldest first.
    After(Option<u64>, usize),
}

pub(crate) fn checkpoints(
    conn: &Connection,
    tenant: &TenantId,
    which: Checkpoints,
) -> Result<Vec<CheckpointRecord>, StoreError> {
    let (sql, after, limit) = match which {
        Checkpoints::Latest => (
            "SELECT tenant, size, root, note, signed_at FROM checkpoints WHERE tenant = ?1 AND size > ?2 ORDER BY size DESC LIMIT ?3",
            -1,
            1,
        ),
        Checkpoints::After(after, limit) => (
            "SELECT tenant, size, root, note, signed_at FROM checkpoints WHERE tenant = ?1 AND size > ?2 ORDER BY size LIMIT ?3",
            after.map_or(-1, to_i64),
            i64::try_from(limit).unwrap_or(i64::MAX),
        ),
    };
    let mut stmt = conn
        .prepare_cached(sql)
        .map_err(db("reading checkpoints"))?;
    let rows = stmt
        .query_map(
            rusqlite::params![tenant.as_str(), after, limit],
            checkpoint_row,
        )
        .map_err(db("reading checkpoints"))?;
    rows.map(|r| to_checkpoint(r.map_err(db("reading checkpoints"))?))
        .collect()
}

fn key_row(row: &Row<'_>) -> rusqlite::Result<KeyRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
    ))
}

type KeyRow = (
    String,
    Vec<u8>,
    String,
    String,
    Option<String>,
    i64,
    Option<i64>,
);

fn to_key(
    (id, digest, name, scopes, tenant, created, revoked): KeyRow,
) -> Result<KeyRecord, StoreError> {
    let bad = |m: String| StoreError::Unreadable(format!("key {id}: {m}"));
    Ok(KeyRecord {
        digest: digest
            .as_slice()
            .try_into()
            .map_err(|_| bad("digest is not 32 bytes".into()))?,
        name,
        scopes: Scopes::parse(&scopes).map_err(bad)?,
        tenant: tenant
            .map(|t| TenantId::from_stored(&t))
            .transpose()
            .map_err(|m| bad(m.into()))?,
        created_at: Timestamp::from_unix_millis(created).unwrap_or(Timestamp::EPOCH),
        revoked_at: revoked.and_then(Timestamp::from_unix_millis),
        id: id.clone(),
    })
}

const KEY_COLUMNS: &str =
    "SELECT id, digest, name, scopes, tenant, created_at, revoked_at FROM keys";

pub(crate) fn key_by_digest(
    conn: &Connection,
    digest: [u8; 32],
) -> Result<Option<KeyRecord>, StoreError> {
    let row = conn
        .prepare_cached(&format!("{KEY_COLUMNS} WHERE digest = ?1"))
        .and_then(|mut s| s.query_row([digest.as_slice()], key_row).optional())
        .map_err(db("looking up a key"))?;
    row.map(to_key).transpose()
}

pub(crate) fn keys(conn: &Connection) -> Result<Vec<KeyRecord>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!("{KEY_COLUMNS} ORDER BY created_at, id"))
        .map_err(db("listing keys"))?;
    let rows = stmt.query_map([], key_row).map_err(db("listing keys"))?;
    rows.map(|r| to_key(r.map_err(db("listing keys"))?))
        .collect()
}

/// A count with no filter but a window (or none) reads the index file's
/// hourly counts for the whole hours of the window, and counts the entries
/// of its partial first and last hours and those above the index file's
/// position: the parts of a count that are counted one by one.
struct Hourly {
    /// The whole hours, as hour numbers: `from..to` (open where the window is).
    from: Option<i64>,
    to: Option<i64>,
    /// The partial hours and the entries above the position.
    rest: Vec<Part>,
}

fn hourly(q: &Query, indexed: Indexed) -> Option<Hourly> {
    use crate::index::HOUR_MS;
    if q.has_exact_filter() || q.q.is_some() {
        return None;
    }
    let since = q.since.map(Timestamp::unix_millis);
    let until = q.until.map(Timestamp::unix_millis);
    let from = since.map(|ms| ms.div_euclid(HOUR_MS) + i64::from(ms.rem_euclid(HOUR_MS) != 0));
    let to = until.map(|ms| ms.div_euclid(HOUR_MS));
    if let (Some(from), Some(to)) = (from, to)
        && from >= to
    {
        return None;
    }
    let edge = |start: Option<i64>, end: Option<i64>| -> Option<Part> {
        let (start, end) = (start?, end?);
        (start < end).then(|| {
            let window = Query {
                since: Timestamp::from_unix_millis(start),
                until: Timestamp::from_unix_millis(end),
                ..q.clone()
            };
            keyed_part(&window, "ix_time", None, indexed)
        })
    };
    let mut rest = vec![tail_part(q, indexed)];
    rest.extend(edge(since, from.map(|h| h * HOUR_MS)));
    rest.extend(edge(to.map(|h| h * HOUR_MS), until));
    Some(Hourly { from, to, rest })
}

/// The UTC day of an hourly count `c`.
const HOUR_DAY: &str = "strftime('%Y-%m-%d', c.hour * 3600, 'unixepoch')";

/// The hourly counts `c` of `dim` in [`Hourly`]'s whole hours: a WHERE
/// condition and its arguments.
fn hours_of(q: &Query, h: &Hourly, dim: &str) -> (String, Vec<SqlValue>) {
    let mut args = vec![SqlValue::Text(dim.to_owned())];
    let mut counted = String::from("c.dim = ? AND ");
    tenant_in("c", &q.tenants, &mut counted, &mut args);
    if let Some(from) = h.from {
        counted.push_str(" AND c.hour >= ?");
        args.push(SqlValue::Integer(from));
    }
    if let Some(to) = h.to {
        counted.push_str(" AND c.hour < ?");
        args.push(SqlValue::Integer(to));
    }
    (counted, args)
}

/// A grouped count from [`Hourly`]: the hourly counts of `dim` (grouped by
/// its value, or `by_day` by the hour's day first) summed with the rows of
/// the other parts (grouped by `select`).
fn hourly_count(
    q: &Query,
    h: &Hourly,
    dim: &str,
    by_day: bool,
    select: &[&str],
    extra: &str,
    order: &str,
) -> Statement {
    let (counted, mut args) = hours_of(q, h, dim);
    let keys = match (by_day, select.len()) {
        (true, 1) => format!("{HOUR_DAY} AS c0"),
        (true, _) => format!("{HOUR_DAY} AS c0, c.value AS c1"),
        (false, _) => "c.value AS c0".to_owned(),
    };
    let mut arms = vec![format!(
        "SELECT {keys}, c.n AS n FROM ix_counts c WHERE {counted}"
    )];
    let named: Vec<String> = select
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{s} AS c{i}"))
        .collect();
    for part in &h.rest {
        args.extend(part.args.iter().cloned());
        arms.push(format!(
            "SELECT {}, 1 AS n{}{extra}",
            named.join(", "),
            part.from
        ));
    }
    let outer: Vec<String> = (0..select.len()).map(|i| format!("u.c{i}")).collect();
    let group: Vec<String> = (1..=select.len()).map(|i| i.to_string()).collect();
    Statement {
        sql: format!(
            "SELECT {}, sum(u.n) FROM ({}) u GROUP BY {} ORDER BY {order}",
            outer.join(", "),
            arms.join(" UNION ALL "),
            group.join(", ")
        ),
        args,
    }
}

/// The counted columns of [`stats`], in the order of [`Stats`]' counts: by
/// outcome, action, actor, resource type and day: (hourly counts' dimension,
/// whether by day, the entries' expression; an entry whose expression is
/// NULL, one without a resource type, is not counted by it).
const STATS_COUNTS: [(&str, bool, &str); 5] = [
    ("outcome", false, "e.outcome"),
    ("action", false, "e.action"),
    ("actor_id", false, "e.actor_id"),
    ("resource_type", false, "e.resource_type"),
    // Every entry has one outcome: its counts are the day's.
    (
        "outcome",
        true,
        "strftime('%Y-%m-%d', e.occurred_at / 1000, 'unixepoch')",
    ),
];

/// The statements of [`stats`]: with [`Hourly`] counts, the hourly counts'
/// five sums (see [`KeptCounts`]) and then the other parts' entries;
/// otherwise the entries (see [`stats_rows`]).
fn stats_statements(q: &Query, indexed: Indexed) -> Vec<Statement> {
    if let Some(h) = hourly(q, indexed) {
        let mut statements: Vec<Statement> = STATS_COUNTS
            .iter()
            .map(|(dim, by_day, _)| hour_counts(q, &h, dim, *by_day))
            .collect();
        statements.push(stats_rows(&h.rest));
        return statements;
    }
    vec![stats_rows(&parts(q, false, indexed))]
}

/// The columns of [`STATS_COUNTS`] of every entry of `parts`, for
/// [`tallies`]: each entry is read once for all five counts (five grouped
/// counts read it five times: a stats read filtered by a common action took
/// seconds on a large trail).
fn stats_rows(parts: &[Part]) -> Statement {
    let select: Vec<&str> = STATS_COUNTS.iter().map(|(_, _, column)| *column).collect();
    let mut args = Vec::new();
    let arms: Vec<String> = parts
        .iter()
        .map(|part| {
            args.extend(part.args.iter().cloned());
            format!("SELECT {}{}", select.join(", "), part.from)
        })
        .collect();
    Statement {
        sql: arms.join(" UNION ALL "),
        args,
    }
}

/// The counts by value of [`stats_rows`]' rows, one by [`STATS_COUNTS`].
fn tallies(conn: &Connection, s: &Statement) -> Result<[Tally; 5], StoreError> {
    let context = "counting entries";
    let mut out: [Tally; 5] = Default::default();
    let mut stmt = conn.prepare(&s.sql).map_err(db(context))?;
    let mut rows = stmt
        .query(params_from_iter(s.args.iter()))
        .map_err(db(context))?;
    while let Some(row) = rows.next().map_err(db(context))? {
        for (i, counts) in out.iter_mut().enumerate() {
            let value = match row.get_ref(i).map_err(db(context))? {
                rusqlite::types::ValueRef::Null => continue,
                rusqlite::types::ValueRef::Text(v) => std::str::from_utf8(v).map_err(|e| {
                    StoreError::Unreadable(format!("a counted column is not UTF-8: {e}"))
                })?,
                other => {
                    return Err(StoreError::Unreadable(format!(
                        "a counted column is {:?}, not text",
                        other.data_type()
                    )));
                }
            };
            // Looked up first: a value met before costs no allocation.
            if let Some(n) = counts.get_mut(value) {
                *n += 1;
            } else {
                counts.insert(value.to_owned(), 1);
            }
        }
    }
    Ok(out)
}

/// The hourly counts of `dim` in [`Hourly`]'s whole hours, summed by value
/// (or `by_day`, by the hour's day).
fn hour_counts(q: &Query, h: &Hourly, dim: &str, by_day: bool) -> Statement {
    let (counted, args) = hours_of(q, h, dim);
    let key = if by_day { HOUR_DAY } else { "c.value" };
    Statement {
        sql: format!("SELECT {key}, sum(c.n) FROM ix_counts c WHERE {counted} GROUP BY 1"),
        args,
    }
}

/// Counts by value, as one statement of [`stats`] answers them.
type Tally = HashMap<String, u64>;

/// A count statement's (value, count) rows (the hourly counts' sums),
/// summed by value.
fn tally(conn: &Connection, s: &Statement) -> Result<Tally, StoreError> {
    let context = "counting entries";
    let mut stmt = conn.prepare(&s.sql).map_err(db(context))?;
    let mut rows = stmt
        .query(params_from_iter(s.args.iter()))
        .map_err(db(context))?;
    let mut out = Tally::new();
    while let Some(r) = rows.next().map_err(db(context))? {
        let key: String = r.get(0).map_err(db(context))?;
        let n: i64 = r.get(1).map_err(db(context))?;
        *out.entry(key).or_default() += u64::try_from(n).unwrap_or(0);
    }
    Ok(out)
}

/// The index file's hourly counts a stats read summed, kept for the next
/// one over the same tenants and hours: those counts only grow by what the
/// indexer adds above `pos`, and a later read counts the entries above
/// `pos` one by one instead (while they are at most [`KEPT_COUNTS_GAP`]).
/// Without it, a stats read of a day sums every actor's count of every
/// hour (100,000 rows a read on the benchmark's trail). Kept while its
/// values number at most [`KEPT_COUNTS_MAX`] (each held twice, by value and
/// in order: about 100 bytes a value, 25 MB at most).
#[derive(Debug)]
pub(crate) struct KeptCounts {
    tenants: Vec<TenantId>,
    from: Option<i64>,
    to: Option<i64>,
    pos: i64,
    /// By [`STATS_COUNTS`]: each value's count, and the values in
    /// [`Stats::by_count`] order.
    counts: [(Tally, Vec<(String, u64)>); 5],
}

/// How far the index file may have moved past kept counts for a read to use
/// them (above, the entries between would be counted one by one): past it,
/// the read sums the hourly counts again and keeps them. While one read does
/// that, the others use the kept counts up to four times as far.
pub const KEPT_COUNTS_GAP: i64 = 2_048;
/// The most values (actors, actions, days...) kept counts hold.
pub const KEPT_COUNTS_MAX: usize = 250_000;

/// The store's kept counts (the latest stats read's), and whether a read is
/// summing new ones.
#[derive(Debug, Default)]
pub(crate) struct KeptSlot {
    kept: std::sync::Mutex<Option<std::sync::Arc<KeptCounts>>>,
    refreshing: atomic::AtomicBool,
}

/// `kept` (a value's count and all values in [`Stats::by_count`] order) plus
/// `more`: the candidates for a list cut at `limit` (all values without
/// one), for [`Stats::from_lists`] to rank. Counts only grow, so the values
/// `more` does not name keep their kept order: with a limit, the first
/// `limit` of them are the only candidates among them.
fn combined(
    kept: &(Tally, Vec<(String, u64)>),
    more: Tally,
    limit: Option<usize>,
) -> Vec<(String, u64)> {
    let (counts, ordered) = kept;
    let mut out: Vec<(String, u64)> =
        Vec::with_capacity(limit.unwrap_or(ordered.len()) + more.len());
    out.extend(
        ordered
            .iter()
            .filter(|(k, _)| !more.contains_key(k))
            .take(limit.unwrap_or(usize::MAX))
            .cloned(),
    );
    for (k, n) in more {
        let n = n.saturating_add(counts.get(&k).copied().unwrap_or(0));
        out.push((k, n));
    }
    out
}

/// Sums the hourly counts of [`STATS_COUNTS`] as of `indexed` and keeps
/// them in `slot` (unless they exceed [`KEPT_COUNTS_MAX`]).
fn keep_counts(
    conn: &Connection,
    q: &Query,
    h: &Hourly,
    indexed: Indexed,
    slot: &KeptSlot,
) -> Result<std::sync::Arc<KeptCounts>, StoreError> {
    let mut counts: [(Tally, Vec<(String, u64)>); 5] = Default::default();
    for ((dim, by_day, _), (t, ordered)) in STATS_COUNTS.into_iter().zip(&mut counts) {
        *t = tally(conn, &hour_counts(q, h, dim, by_day))?;
        *ordered = t.iter().map(|(k, n)| (k.clone(), *n)).collect();
        ordered.sort_unstable_by(Stats::by_count);
    }
    let k = std::sync::Arc::new(KeptCounts {
        tenants: q.tenants.clone(),
        from: h.from,
        to: h.to,
        pos: indexed.pos,
        counts,
    });
    let values: usize = k.counts.iter().map(|(t, _)| t.len()).sum();
    if values <= KEPT_COUNTS_MAX
        && let Ok(mut kept) = slot.kept.lock()
    {
        *kept = Some(std::sync::Arc::clone(&k));
    }
    Ok(k)
}

/// Counts of a query's entries (`None`: see [`Tail::Search`]).
pub(crate) fn stats(
    conn: &Connection,
    q: &Query,
    search: TailSearch,
    slot: &KeptSlot,
) -> Result<Option<Stats>, StoreError> {
    in_snapshot(conn, |conn, indexed| {
        if search_tail(conn, q, indexed, search)?.is_none() {
            return Ok(None);
        }
        let Some(h) = hourly(q, indexed) else {
            let lists = tallies(conn, &stats_rows(&parts(q, false, indexed)))?
                .map(|t| t.into_iter().collect::<Vec<_>>());
            return Ok(Some(Stats::from_lists(lists)));
        };
        let previous = slot.kept.lock().ok().and_then(|k| k.clone());
        let same = previous.filter(|k| {
            k.tenants == q.tenants && (k.from, k.to) == (h.from, h.to) && k.pos <= indexed.pos
        });
        // Past the gap, one read sums them again; the others go on with
        // the kept ones meanwhile (up to four times the gap), instead of
        // each summing them too.
        let mut refresh = false;
        let usable = same.filter(|k| {
            let gap = indexed.pos - k.pos;
            if gap <= KEPT_COUNTS_GAP {
                return true;
            }
            refresh = !slot.refreshing.swap(true, atomic::Ordering::AcqRel);
            !refresh && gap <= 4 * KEPT_COUNTS_GAP
        });
        // The other parts as of the kept position: the entries above it one
        // by one, the partial hours up to it (the whole hours are the
        // query's, the same at any position).
        let found = usable.and_then(|k| {
            let at = Indexed {
                pos: k.pos,
                ..indexed
            };
            hourly(q, at).map(|h| (k, h))
        });
        let (kept, h) = if let Some(found) = found {
            found
        } else {
            let k = keep_counts(conn, q, &h, indexed, slot);
            if refresh {
                slot.refreshing.store(false, atomic::Ordering::Release);
            }
            (k?, h)
        };
        let mut more = tallies(conn, &stats_rows(&h.rest))?;
        let lists = std::array::from_fn(|i| {
            combined(&kept.counts[i], std::mem::take(&mut more[i]), Stats::CUT[i])
        });
        Ok(Some(Stats::from_lists(lists)))
    })
}

fn daily_statement(q: &Query, by: CountBy, indexed: Indexed) -> Statement {
    let select = [
        "strftime('%Y-%m-%d', e.occurred_at / 1000, 'unixepoch')",
        by.column(),
    ];
    if let Some(h) = hourly(q, indexed) {
        let dim = by.column().trim_start_matches("e.");
        return hourly_count(q, &h, dim, true, &select, "", "1, 2");
    }
    grouped(&parts(q, false, indexed), &select, "", "1, 2")
}

/// Entries a day and value: (day, value, count) rows.
type DailyCounts = Vec<(String, String, u64)>;

/// Entries a day by `by` (`None`: see [`Tail::Search`]).
pub(crate) fn daily_counts(
    conn: &Connection,
    q: &Query,
    by: CountBy,
    search: TailSearch,
) -> Result<Option<DailyCounts>, StoreError> {
    in_snapshot(conn, |conn, indexed| {
        if search_tail(conn, q, indexed, search)?.is_none() {
            return Ok(None);
        }
        let statement = daily_statement(q, by, indexed);
        let mut stmt = conn
            .prepare(&statement.sql)
            .map_err(db("counting entries by day"))?;
        let rows = stmt
            .query_map(params_from_iter(statement.args), |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(db("counting entries by day"))?;
        rows.map(|r| {
            let (d, k, n) = r.map_err(db("counting entries by day"))?;
            Ok((d, k, u64::try_from(n).unwrap_or(0)))
        })
        .collect::<Result<_, _>>()
        .map(Some)
    })
}

/// How SQLite would run a read (`EXPLAIN QUERY PLAN` of the statements the
/// read runs), in the store-neutral terms of [`Plan`]. SQLite plans from the
/// schema and the statement alone (the store never runs `ANALYZE`), so a
/// plan seen on an empty store is the plan on a large one.
pub(crate) fn plan(conn: &Connection, read: &Read) -> Result<Plan, StoreError> {
    in_snapshot(conn, |conn, indexed| {
        let statements = match read {
            Read::Page(q) => page_statements(q, indexed),
            Read::Stats(q) => stats_statements(q, indexed),
            Read::DailyCounts(q, by) => vec![daily_statement(q, *by, indexed)],
            Read::EntryById { tenants, id } => vec![entry_by_id_statement(tenants, *id)],
            Read::Entries { tenant, start, end } => {
                vec![entries_statement(tenant, *start, *end)]
            }
        };
        let mut plan = Plan::default();
        for s in statements {
            let mut stmt = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {}", s.sql))
                .map_err(db("explaining a read"))?;
            let lines = stmt
                .query_map(params_from_iter(s.args), |r| r.get::<_, String>(3))
                .map_err(db("explaining a read"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db("explaining a read"))?;
            for line in lines {
                if line.starts_with("USE TEMP B-TREE") {
                    plan.sorts = true;
                }
                if let Some(access) = access(&line) {
                    plan.accesses.push(access);
                }
                let _ = writeln!(plan.text, "{line}");
            }
        }
        Ok(plan)
    })
}

/// One `EXPLAIN QUERY PLAN` line as an [`Access`], if it reaches entries
/// (alias `e`) or the search index.
fn access(line: &str) -> Option<Access> {
    // The index file's search index, or a read's own of the entries above
    // its position.
    if line.starts_with("SCAN ix_fts VIRTUAL TABLE")
        || line.starts_with("SCAN ix_tail VIRTUAL TABLE")
    {
        return Some(Access {
            index: Some("search".into()),
            seek: vec!["search".into()],
        });
    }
    // A key table of the index file (alias `i`): its primary key is the
    // index, named by the table's columns it seeks.
    if let Some(rest) = line
        .strip_prefix("SEARCH i ")
        .or_else(|| line.strip_prefix("SCAN i"))
    {
        if !(rest.is_empty() || rest.starts_with("USING") || rest.starts_with(' ')) {
            return None;
        }
        return Some(Access {
            index: Some("index file".into()),
            seek: seek_columns(rest),
        });
    }
    let rest = line
        .strip_prefix("SEARCH e ")
        .or_else(|| line.strip_prefix("SCAN e"))?;
    if !(rest.is_empty() || rest.starts_with("USING") || rest.starts_with(' ')) {
        return None;
    }
    let rest = rest.trim_start();
    // The table itself is the position index (pos is its rowid).
    let index = if rest.is_empty() || rest.starts_with("USING INTEGER PRIMARY KEY") {
        "pos".to_owned()
    } else {
        rest.trim_start_matches("USING ")
            .trim_start_matches("COVERING ")
            .trim_start_matches("INDEX ")
            .split_whitespace()
            .next()?
            .to_owned()
    };
    Some(Access {
        index: Some(index),
        seek: seek_columns(rest),
    })
}

/// The columns in the parenthesised condition of a plan line (`rowid` as
/// `pos`): what bounds the walk.
fn seek_columns(rest: &str) -> Vec<String> {
    rest.split_once('(')
        .map(|(_, cond)| {
            cond.trim_end_matches(')')
                .split(" AND ")
                .filter_map(|term| {
                    let column = term.split(['=', '<', '>', ' ']).next()?;
                    Some(if column == "rowid" { "pos" } else { column }.to_owned())
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn signing_keys(conn: &Connection) -> Result<Vec<SigningKeyRecord>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT ordinal, public_key, origin_prefix, added_at, transition
             FROM signing_keys ORDER BY ordinal",
        )
        .map_err(db("reading signing keys"))?;
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .map_err(db("reading signing keys"))?;
    rows.map(|row| {
        let (ordinal, key, prefix, added_at, transition) =
            row.map_err(db("reading signing keys"))?;
        SigningKeyRecord::from_stored(ordinal, key, prefix, added_at, transition)
    })
    .collect()
}

pub(crate) fn cosignatures(
    conn: &Connection,
    tenant: &TenantId,
    sizes: &std::ops::RangeInclusive<u64>,
) -> Result<Vec<(u64, String)>, StoreError> {
    fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, String)> {
        Ok((r.get(0)?, r.get(1)?))
    }
    let mut stmt = conn
        .prepare_cached(
            "SELECT size, line FROM cosignatures WHERE tenant = ?1 AND size >= ?2 AND size <= ?3
             ORDER BY size, witness",
        )
        .map_err(db("reading cosignatures"))?;
    let rows = stmt
        .query_map(
            rusqlite::params![
                tenant.as_str(),
                to_i64(*sizes.start()),
                to_i64(*sizes.end())
            ],
            row,
        )
        .map_err(db("reading cosignatures"))?;
    rows.map(|r| {
        let (size, line) = r.map_err(db("reading cosignatures"))?;
        Ok((u64::try_from(size).unwrap_or(0), line))
    })
    .collect()
}
