//! Record history, statistics and exports.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};

use crate::extract::QueryParams;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use trailmark_core::{Change, Changes, RecordState, WHOLE_TYPE_ACTIONS};
use trailmark_store::{Exact, Query, Store, StoreError, StoredEntry};

use crate::app::App;
use crate::auth::{Authorized, Reader};
use crate::error::ApiError;
use crate::query::EventFilters;
use crate::render::event_json;
use crate::wire::{History, HistoryStep, RecordRef, StatsOut};

/// Most events one history answer holds.
pub const MAX_HISTORY: usize = 10_000;
const PAGE: usize = 1000;

fn changes_of(
    changes: Option<&std::collections::BTreeMap<String, trailmark_wire::ChangeOut>>,
) -> Option<Changes> {
    Some(
        changes?
            .iter()
            .map(|(k, c)| {
                let change = Change {
                    old: c.old.clone(),
                    new: c.new.clone(),
                };
                (k.clone(), change)
            })
            .collect(),
    )
}

/// Every entry a query selects, oldest first, at most `max` (and whether
/// there were more).
async fn all_oldest_first<S: Store>(
    app: &App<S>,
    mut query: Query,
    max: usize,
) -> Result<(Vec<StoredEntry>, bool), ApiError> {
    query.limit = PAGE;
    let mut out = Vec::new();
    loop {
        let page = app.store.query(&query).await?;
        out.extend(page.entries);
        if out.len() > max {
            out.truncate(max);
            out.reverse();
            return Ok((out, true));
        }
        match page.next {
            Some(next) => query.cursor = Some(next),
            None => break,
        }
    }
    out.reverse();
    Ok((out, false))
}

/// `GET /v1/resources/{type}/{id}/history`: every event of one record, oldest
/// first, each with the record's state after it.
pub async fn history<S: Store>(
    State(app): State<Arc<App<S>>>,
    caller: Authorized<Reader>,
    Path((kind, id)): Path<(String, String)>,
    QueryParams(filters): QueryParams<EventFilters>,
) -> Result<axum::Json<History>, ApiError> {
    record_history(&app, &caller, kind, id, &filters)
        .await
        .map(axum::Json)
}

/// Why a record's history takes no `limit` or `cursor`.
const HISTORY_WHOLE: &str = "a history is every event of the record, oldest first (at most 10,000; \"truncated\" says when there are more)";

/// Why stats take no `limit` or `cursor`.
const STATS_WHOLE: &str =
    "stats count every matching event: narrow them with since, until, days or a filter";

/// Why an export takes no `limit` or `cursor`.
const EXPORT_WHOLE: &str = "an export streams every matching event: narrow it with since, until, days or a filter (GET /v1/events reads them a page at a time)";

/// Every event of one record that `caller` may see, oldest first, with the
/// record's state after each; the read is recorded in `_system`.
pub async fn record_history<S: Store>(
    app: &App<S>,
    Authorized(caller, _): &Authorized<Reader>,
    kind: String,
    id: String,
    filters: &EventFilters,
) -> Result<History, ApiError> {
    // The record's events, narrowed by any other filter given (an unknown
    // parameter is refused, as everywhere; so is one naming another record
    // than the path's, and paging: a history is read whole).
    filters.refuse(&[
        (
            "resource_type",
            "the path names the record's type; leave it out",
        ),
        ("resource_id", "the path names the record; leave it out"),
        ("limit", HISTORY_WHOLE),
        ("cursor", HISTORY_WHOLE),
    ])?;
    let query = filters
        .to_query(caller.visible(filters.tenant.as_deref())?)?
        .with(Exact::ResourceType, kind.clone());
    // (The type's events name no record.)
    let of_type = query.clone();
    let query = query.with(Exact::ResourceId, id.clone());
    let mut meta = Map::new();
    meta.insert("resource".into(), json!(format!("{kind}:{id}")));
    let record = app.audit(
        Some(caller),
        "read",
        Some(("route", "/v1/resources/{type}/{id}/history")),
        meta,
    );
    let read = async {
        let (own, truncated) = all_oldest_first(app, query, MAX_HISTORY).await?;
        one_tenant(&kind, &id, &own)?;
        let (entries, truncated) = with_type_events(app, of_type, own, truncated).await?;
        let mut state = RecordState::default();
        let mut events = Vec::with_capacity(entries.len());
        for entry in &entries {
            let event = crate::render::event_out(entry)?;
            if entry.columns.resource_id.is_none() {
                // An event about the whole type (`with_type_events`). One
                // whose payload is gone may have named one partition.
                let one_part = entry.payload.is_none() || event.metadata.get("partition").is_some();
                state.apply_to_type(&event.action, one_part);
            } else if entry.payload.is_some() {
                state.apply(&event.action, changes_of(event.changes.as_ref()).as_ref());
            } else {
                state.apply_removed(&event.action);
            }
            let state_after = if state.deleted {
                Value::Null
            } else {
                Value::Object(state.fields.clone())
            };
            events.push(HistoryStep {
                event,
                state_after,
                unknown_fields: state.unknown.iter().cloned().collect(),
                incomplete: state.incomplete,
            });
        }
        let removed: Vec<&mut trailmark_wire::EventOut> =
            events.iter_mut().map(|step| &mut step.event).collect();
        crate::retention::explain_removals(app, removed).await?;
        Ok::<_, ApiError>((events, truncated))
    };
    // The read's record names only what was asked, so it is written while
    // the read runs; the answer waits for both (see `read_and_record`).
    let (events, truncated) = read_and_record(read, record).await?;
    Ok(History {
        events,
        resource: RecordRef { id, kind },
        truncated,
    })
}

/// A record is named by its type and id within one tenant: where the events
/// read name it in several (a key that sees them all, no `tenant` given),
/// they are several records, and one history of them would show a state no
/// record had (each step's fields laid over another tenant's). Refused as
/// an event id found in two tenants is.
fn one_tenant<T: Placed>(kind: &str, id: &str, own: &[T]) -> Result<(), ApiError> {
    let tenants = own_by_tenant(own);
    if tenants.len() < 2 {
        return Ok(());
    }
    let names: Vec<&str> = tenants.iter().map(|(t, _)| t.as_str()).collect();
    Err(ApiError::Conflict(format!(
        "record {kind}:{id} has events in tenants {}: a record is one tenant's; ask with ?tenant=",
        names.join(", ")
    )))
}

/// A record's own events (oldest first; `truncated`: older ones left out)
/// with the events about its whole type ([`WHOLE_TYPE_ACTIONS`]: a
/// captured table's truncate, rewrite, pause and resume name no record)
/// that came after its first, each in its tenant after the record's events
/// before it ([`merge_type_events`]). `of_type`: the history's query
/// without the record's id.
async fn with_type_events<S: Store>(
    app: &App<S>,
    of_type: Query,
    own: Vec<StoredEntry>,
    truncated: bool,
) -> Result<(Vec<StoredEntry>, bool), ApiError> {
    let tenants = own_by_tenant(&own);
    let mut found = Vec::with_capacity(tenants.len());
    for (tenant, seqs) in &tenants {
        let query = Query {
            tenants: vec![trailmark_core::TenantId::from_stored(tenant).map_err(|e| {
                trailmark_store::StoreError::Unreadable(format!("a stored tenant {tenant:?}: {e}"))
            })?],
            no_resource_id: true,
            ..of_type.clone()
        };
        found.push(type_events(app, query, seqs[0].0).await?);
    }
    Ok(merge_type_events(
        own,
        &tenants,
        found,
        truncated,
        MAX_HISTORY,
    ))
}

/// Where an entry stands: its tenant and its seq there.
trait Placed {
    fn tenant(&self) -> &str;
    fn seq(&self) -> u64;
}

impl Placed for StoredEntry {
    fn tenant(&self) -> &str {
        &self.columns.tenant
    }
    fn seq(&self) -> u64 {
        self.columns.seq
    }
}

/// Each tenant's own events: their seqs (rising) and places in `own`, the
/// tenants in the order their first event comes.
fn own_by_tenant<T: Placed>(own: &[T]) -> Vec<(String, Vec<(u64, usize)>)> {
    let mut tenants: Vec<(String, Vec<(u64, usize)>)> = Vec::new();
    for (at, entry) in own.iter().enumerate() {
        let seq = (entry.seq(), at);
        match tenants.iter_mut().find(|(t, _)| t == entry.tenant()) {
            Some((_, seqs)) => seqs.push(seq),
            None => tenants.push((entry.tenant().to_owned(), vec![seq])),
        }
    }
    tenants
}

/// Puts each tenant's events about the type (`found`, one per tenant of
/// `tenants`: oldest first, all after the tenant's first own event, and
/// the seq at and below which they were not all read, when the reading's
/// bound came first) after the record's own events before it in that
/// tenant. Where a tenant's were not all read, the record's own events
/// there at or below that seq are left out (`truncated`): no step shown
/// misses one before it. The newest `max` of them all are kept.
fn merge_type_events<T: Placed>(
    own: Vec<T>,
    tenants: &[(String, Vec<(u64, usize)>)],
    found: Vec<(Vec<T>, Option<u64>)>,
    mut truncated: bool,
    max: usize,
) -> (Vec<T>, bool) {
    let mut after: Vec<Vec<T>> = own.iter().map(|_| Vec::new()).collect();
    let mut cut = vec![false; own.len()];
    for ((_, seqs), (events, unread_below)) in tenants.iter().zip(found) {
        for entry in events {
            let before = seqs.partition_point(|(seq, _)| *seq < entry.seq());
            // None is at or below the tenant's first own event.
            after[seqs[before.max(1) - 1].1].push(entry);
        }
        if let Some(below) = unread_below {
            for (seq, at) in seqs {
                if *seq <= below {
                    cut[*at] = true;
                    truncated = true;
                }
            }
        }
    }
    let mut merged = Vec::with_capacity(own.len());
    for ((entry, later), cut) in own.into_iter().zip(after).zip(cut) {
        if !cut {
            merged.push(entry);
        }
        // Read in full: they all come after what was not read.
        merged.extend(later);
    }
    if merged.len() > max {
        merged.drain(..merged.len() - max);
        truncated = true;
    }
    (merged, truncated)
}

/// The events of `query` (one tenant's, about a whole type) after seq
/// `first` whose action is one of [`WHOLE_TYPE_ACTIONS`], oldest first;
/// reading at most [`MAX_HISTORY`] entries back from the newest, and, when
/// that bound came first, the seq at and below which they were not read.
async fn type_events<S: Store>(
    app: &App<S>,
    mut query: Query,
    first: u64,
) -> Result<(Vec<StoredEntry>, Option<u64>), ApiError> {
    query.limit = PAGE;
    let mut out = Vec::new();
    let mut read = 0;
    let unread_below = 'walk: loop {
        let page = app.store.query(&query).await?;
        for entry in page.entries {
            if entry.columns.seq <= first {
                break 'walk None;
            }
            read += 1;
            if read > MAX_HISTORY {
                break 'walk Some(entry.columns.seq);
            }
            if WHOLE_TYPE_ACTIONS.contains(&entry.columns.action.as_str()) {
                out.push(entry);
            }
        }
        match page.next {
            Some(next) => query.cursor = Some(next),
            None => break None,
        }
    };
    out.reverse();
    Ok((out, unread_below))
}

/// `GET /v1/stats`: counts by action, actor, resource type, outcome and day.
pub async fn stats<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(caller, _): Authorized<Reader>,
    QueryParams(filters): QueryParams<EventFilters>,
) -> Result<axum::Json<StatsOut>, ApiError> {
    filters.refuse(&[("limit", STATS_WHOLE), ("cursor", STATS_WHOLE)])?;
    let query = filters.to_query(caller.visible(filters.tenant.as_deref())?)?;
    let record = app.audit(
        Some(&caller),
        "read",
        Some(("route", "/v1/stats")),
        filters.describe(),
    );
    let read = async { Ok::<_, ApiError>(app.store.stats(&query).await?) };
    let s = read_and_record(read, record).await?;
    Ok(axum::Json(crate::render::stats_out(s)))
}

/// Runs a read and the append of its `_system` record (one that names only
/// what was asked, not what was found) at once, and answers the read once
/// both are done: nothing is answered before its record is durable, and the
/// answer waits for the longer of the two instead of their sum. Both run to
/// their end whatever the other does (a record's append is never dropped
/// half way, before the alert rules saw it). A read that fails still leaves
/// its record (the read was asked for); a record that cannot be written
/// fails the read.
pub(crate) async fn read_and_record<T>(
    read: impl Future<Output = Result<T, ApiError>>,
    record: impl Future<Output = Result<(), ApiError>>,
) -> Result<T, ApiError> {
    let (found, recorded) = tokio::join!(read, record);
    recorded?;
    found
}

/// Export columns, in order.
pub const CSV_COLUMNS: [&str; 19] = [
    "seq",
    "tenant",
    "id",
    "occurred_at",
    "received_at",
    "actor_id",
    "actor_type",
    "actor_name",
    "action",
    "resource_type",
    "resource_id",
    "resource_name",
    "outcome",
    "reason",
    "ip",
    "changes",
    "context",
    "metadata",
    "state",
];

/// A spreadsheet would run a cell that starts with one of these as a
/// formula; such text cells are exported with a leading `'`.
fn neutralize(cell: String) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell
    }
}

fn csv_row(event: &Value) -> Vec<String> {
    let text = |v: &Value| match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let structured = |v: &Value| {
        if v.is_null() {
            String::new()
        } else {
            v.to_string()
        }
    };
    vec![
        text(&event["seq"]),
        text(&event["tenant"]),
        text(&event["id"]),
        text(&event["occurred_at"]),
        text(&event["received_at"]),
        neutralize(text(&event["actor"]["id"])),
        text(&event["actor"]["type"]),
        neutralize(text(&event["actor"]["name"])),
        text(&event["action"]),
        neutralize(text(&event["resource"]["type"])),
        neutralize(text(&event["resource"]["id"])),
        neutralize(text(&event["resource"]["name"])),
        text(&event["outcome"]),
        neutralize(text(&event["reason"])),
        text(&event["context"]["ip"]),
        structured(&event["changes"]),
        structured(&event["context"]),
        structured(&event["metadata"]),
        text(&event["state"]),
    ]
}

struct Chunks(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl futures_core::Stream for Chunks {
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// `GET /v1/export?format=csv|ndjson&<filters>`: every matching event,
/// newest first, streamed page by page. The export itself is audited.
pub async fn export<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(caller, _): Authorized<Reader>,
    QueryParams(params): QueryParams<ExportParams>,
) -> Result<Response, ApiError> {
    let csv = match params.format.as_deref().unwrap_or("ndjson") {
        "csv" => true,
        "ndjson" => false,
        _ => return Err(ApiError::param("format", "must be csv or ndjson")),
    };
    params
        .filters
        .refuse(&[("limit", EXPORT_WHOLE), ("cursor", EXPORT_WHOLE)])?;
    let mut query = params
        .filters
        .to_query(caller.visible(params.filters.tenant.as_deref())?)?;
    query.limit = PAGE;
    // The first page is read and shown before anything is recorded or
    // sent: a query the store cannot run, or a row it cannot show, is an
    // error answer, never a stream cut short.
    let first_page = app.store.query(&query).await?;
    let first_chunk = export_chunk(&first_page.entries, csv, true)?;
    let mut meta = Map::new();
    meta.insert("format".into(), json!(if csv { "csv" } else { "ndjson" }));
    meta.insert("filters".into(), Value::Object(params.filters.describe()));
    app.audit(Some(&caller), "export", Some(("route", "/v1/export")), meta)
        .await?;

    let (tx, rx) = mpsc::channel(4);
    let streaming = Arc::clone(&app);
    tokio::spawn(async move {
        if tx.send(Ok(Bytes::from(first_chunk))).await.is_err() {
            return; // the client went away
        }
        let mut next = first_page.next;
        while let Some(cursor) = next {
            query.cursor = Some(cursor);
            // A later page that cannot be read or shown ends the stream
            // without its last chunk: the client sees the answer cut short
            // (never a complete-looking export with an event left out).
            let read = streaming
                .store
                .query(&query)
                .await
                .and_then(|page| Ok((export_chunk(&page.entries, csv, false)?, page.next)));
            let chunk = match read {
                Ok((chunk, after)) => {
                    next = after;
                    chunk
                }
                Err(e) => {
                    let _ = tx.send(Err(cut(&e))).await;
                    return;
                }
            };
            if tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                return; // the client went away
            }
        }
    });
    let content_type = if csv {
        "text/csv; charset=utf-8"
    } else {
        "application/x-ndjson"
    };
    let filename = if csv {
        "trailmark-export.csv"
    } else {
        "trailmark-export.ndjson"
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        Body::from_stream(Chunks(rx)),
    )
        .into_response())
}

/// One page of an export as sent: CSV rows (after the header, on the first
/// page) or NDJSON lines. A stored entry that cannot be shown is an error:
/// an export never leaves out an event.
fn export_chunk(entries: &[StoredEntry], csv: bool, first: bool) -> Result<Vec<u8>, StoreError> {
    let mut chunk = Vec::new();
    if csv {
        let mut w = csv::Writer::from_writer(&mut chunk);
        let written = |e: csv::Error| StoreError::Unreadable(format!("writing CSV: {e}"));
        if first {
            w.write_record(CSV_COLUMNS).map_err(written)?;
        }
        for entry in entries {
            w.write_record(csv_row(&event_json(entry)?))
                .map_err(written)?;
        }
        w.flush().map_err(|e| written(e.into()))?;
    } else {
        for entry in entries {
            let event = event_json(entry)?;
            chunk.extend_from_slice(event.to_string().as_bytes());
            chunk.push(b'\n');
        }
    }
    Ok(chunk)
}

/// Why an export's stream ends early, logged for the operator (the client
/// sees only the answer cut short).
fn cut(e: &StoreError) -> std::io::Error {
    tracing::error!(error = %e, "export cut short: a page could not be read or shown");
    std::io::Error::other(e.to_string())
}

#[derive(Debug, serde::Deserialize)]
pub struct ExportParams {
    pub format: Option<String>,
    #[serde(flatten)]
    pub filters: EventFilters,
}

#[cfg(test)]
mod tests {
    use super::{Placed, merge_type_events, own_by_tenant};

    #[derive(Debug, PartialEq)]
    struct E(&'static str, u64);

    impl Placed for E {
        fn tenant(&self) -> &str {
            self.0
        }
        fn seq(&self) -> u64 {
            self.1
        }
    }

    fn merged(own: Vec<E>, found: Vec<(Vec<E>, Option<u64>)>, max: usize) -> (Vec<E>, bool) {
        let tenants = own_by_tenant(&own);
        merge_type_events(own, &tenants, found, false, max)
    }

    /// Each tenant's events about the type go after the record's own
    /// before them in that tenant, whatever the other tenant's seqs.
    #[test]
    fn the_types_events_go_after_the_records_own_before_them_in_their_tenant() {
        let own = vec![E("a", 5), E("b", 100), E("a", 9), E("b", 120)];
        let found = vec![
            (vec![E("a", 7), E("a", 30)], None),
            (vec![E("b", 101), E("b", 119)], None),
        ];
        let (events, truncated) = merged(own, found, 100);
        assert_eq!(
            events,
            [
                E("a", 5),
                E("a", 7),
                E("b", 100),
                E("b", 101),
                E("b", 119),
                E("a", 9),
                E("a", 30),
                E("b", 120),
            ]
        );
        assert!(!truncated);
    }

    /// Where the type's events were not all read back to the record's
    /// first, the record's own there at or below the unread are left out,
    /// and every type's event read is kept.
    #[test]
    fn own_events_older_than_the_types_events_read_are_left_out() {
        let own = vec![E("a", 5), E("a", 20), E("a", 40)];
        let found = vec![(vec![E("a", 30), E("a", 50)], Some(25))];
        let (events, truncated) = merged(own, found, 100);
        assert_eq!(events, [E("a", 30), E("a", 40), E("a", 50)]);
        assert!(truncated);
    }

    /// At most `max`, the newest.
    #[test]
    fn the_newest_are_kept() {
        let own = vec![E("a", 1), E("a", 3)];
        let found = vec![(vec![E("a", 2), E("a", 4)], None)];
        let (events, truncated) = merged(own, found, 3);
        assert_eq!(events, [E("a", 2), E("a", 3), E("a", 4)]);
        assert!(truncated);
    }
}
