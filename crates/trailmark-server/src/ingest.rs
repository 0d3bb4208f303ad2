//! `POST /v1/events`: one event, a JSON array, or NDJSON; all or nothing.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use serde_json::Value;
use trailmark_core::{Event, TenantId};
use trailmark_store::Sameness;
use trailmark_store::Store;

use crate::app::{App, now};
use crate::auth::{Authorized, Ingester};
use crate::error::{ApiError, Problem};
use crate::extract::NoQuery;

/// A request body split into its events, by content type: NDJSON is one
/// event per line, a JSON array its elements (neither parsed yet: each is
/// parsed where its event is prepared); any other body is parsed whole.
enum Split<'a> {
    /// The non-blank lines, each with its line number (from 0).
    Lines(Vec<(usize, &'a str)>),
    /// A JSON array's elements, each the text between the array's own
    /// commas (see [`array_elements`]; each parsed where its event is
    /// prepared), and the whole body.
    Elements(Vec<&'a str>, &'a str),
    /// A body parsed whole: an object (one event), or an array the scan
    /// did not split.
    Values(Vec<Value>),
}

impl Split<'_> {
    fn len(&self) -> usize {
        match self {
            Split::Lines(lines) => lines.len(),
            Split::Elements(elements, _) => elements.len(),
            Split::Values(values) => values.len(),
        }
    }
}

/// Splits a body into its events (see [`Split`]): refused when it is not
/// UTF-8, not JSON (unless NDJSON), holds no event or more than `max_batch`.
fn split_body<'a>(
    headers: &HeaderMap,
    bytes: &'a [u8],
    max_batch: usize,
) -> Result<Split<'a>, ApiError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        ApiError::Invalid(vec![Problem::new(
            None,
            "",
            format!("body is not valid UTF-8 (at byte {})", e.valid_up_to()),
        )])
    })?;
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.starts_with("application/x-ndjson") || ct.starts_with("application/jsonl")
        });
    let split = if ndjson {
        let lines: Vec<(usize, &str)> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .collect();
        if lines.len() > max_batch {
            return Err(too_many(lines.len(), max_batch));
        }
        Split::Lines(lines)
    } else if let Some(elements) = array_elements(text, max_batch) {
        Split::Elements(elements, text)
    } else {
        Split::Values(parse_whole(text)?)
    };
    check_count(split.len(), max_batch)?;
    Ok(split)
}

/// Refuses a body of no events, or of more than `max_batch`.
fn check_count(events: usize, max_batch: usize) -> Result<(), ApiError> {
    if events == 0 {
        return Err(ApiError::Invalid(vec![Problem::new(
            None,
            "",
            "no events in the body",
        )]));
    }
    if events > max_batch {
        return Err(too_many(events, max_batch));
    }
    Ok(())
}

/// A JSON array body that did not split into elements that parse, parsed
/// whole: refused as it always was ("malformed JSON" and where), or (were
/// the split ever wrong) its events, counted again.
fn parse_whole_again(body: &str, max_batch: usize) -> Result<Vec<Value>, ApiError> {
    let values = parse_whole(body)?;
    check_count(values.len(), max_batch)?;
    Ok(values)
}

/// A JSON body parsed whole: its events (an object is one), or the refusal
/// of a body that is not JSON or neither an object nor an array.
fn parse_whole(text: &str) -> Result<Vec<Value>, ApiError> {
    match trailmark_core::parse_strict_json(text) {
        Ok(Value::Array(items)) => Ok(items),
        Ok(v @ Value::Object(_)) => Ok(vec![v]),
        Ok(_) => Err(ApiError::Invalid(vec![Problem::new(
            None,
            "",
            "body must be an event object, an array of events, or NDJSON (Content-Type: application/x-ndjson)",
        )])),
        Err(e) => Err(ApiError::Invalid(vec![Problem::new(
            None,
            "",
            format!("malformed JSON: {e}"),
        )])),
    }
}

/// The elements of a JSON array body, each as the text between the array's
/// own commas (outside strings and nested objects and arrays), or `None`
/// when the text is not whitespace, `[`, elements, `]` and whitespace as far
/// as this scan tells, or holds more than `most` elements (the body is then
/// parsed whole, and refused as before: the count never rests on the scan).
/// It does not check an element: an element that is not one JSON value does
/// not parse, and then the body is parsed whole ([`prepare_split`]), so that
/// it is refused as before. A body whose
/// elements all parse is the array of them: the commas split at are then
/// outside every string, and each element is one JSON value.
fn array_elements(text: &str, most: usize) -> Option<Vec<&str>> {
    let bytes = text.as_bytes();
    let space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let mut at = bytes.iter().position(|b| !space(b))?;
    if bytes[at] != b'[' {
        return None;
    }
    at += 1;
    let mut elements = Vec::new();
    let empty = bytes[at..].iter().position(|b| !space(b))?;
    if bytes[at + empty] == b']' {
        at += empty + 1;
    } else {
        let mut start = at;
        let mut depth = 0usize;
        let mut in_string = false;
        loop {
            let b = *bytes.get(at)?;
            if in_string {
                match b {
                    // The escaped byte is skipped (a quote among them).
                    b'\\' => at += 1,
                    b'"' => in_string = false,
                    _ => {}
                }
            } else {
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' if depth > 0 => depth -= 1,
                    b']' => {
                        elements.push(&text[start..at]);
                        at += 1;
                        break;
                    }
                    b',' if depth == 0 => {
                        // This one and at least one more: past `most`?
                        if elements.len() + 1 >= most {
                            return None;
                        }
                        elements.push(&text[start..at]);
                        start = at + 1;
                    }
                    _ => {}
                }
            }
            at += 1;
        }
    }
    bytes[at..].iter().all(space).then_some(elements)
}

/// A JSON array's element, the event at `index`, parsed (a problem when it
/// is not JSON: the body is then parsed whole, for the refusal it gets).
fn parse_element(index: usize, text: &str) -> Result<Value, Problem> {
    trailmark_core::parse_strict_json(text)
        .map_err(|e| Problem::new(Some(index), "", e.to_string()))
}

/// An NDJSON line, the event at `index`, parsed (a problem naming its line
/// and index when it is not JSON).
fn parse_line(index: usize, (line_no, line): (usize, &str)) -> Result<Value, Problem> {
    trailmark_core::parse_strict_json(line).map_err(|e| {
        Problem::new(
            Some(index),
            "",
            format!("line {}: malformed JSON: {e}", line_no + 1),
        )
    })
}

/// A body's events as values, framed as [`split_body`] and [`parse_line`]
/// frame them, not prepared (the tests of framing alone).
#[cfg(test)]
fn parse_body(headers: &HeaderMap, bytes: &[u8], max_batch: usize) -> Result<Vec<Value>, ApiError> {
    let lines = match split_body(headers, bytes, max_batch)? {
        Split::Values(values) => return Ok(values),
        Split::Elements(elements, body) => {
            let parsed: Result<Vec<_>, _> = (0..)
                .zip(elements)
                .map(|(index, element)| parse_element(index, element))
                .collect();
            return parsed.or_else(|_| parse_whole_again(body, max_batch));
        }
        Split::Lines(lines) => lines,
    };
    let (values, problems): (Vec<_>, Vec<_>) = lines
        .into_iter()
        .enumerate()
        .map(|(index, line)| parse_line(index, line))
        .partition(Result::is_ok);
    if problems.is_empty() {
        Ok(values.into_iter().filter_map(Result::ok).collect())
    } else {
        Err(ApiError::Invalid(
            problems.into_iter().filter_map(Result::err).collect(),
        ))
    }
}

fn too_many(events: usize, max_batch: usize) -> ApiError {
    ApiError::TooLarge(format!(
        "{events} events in one request; at most {max_batch}: split the batch"
    ))
}

/// A body's events are parsed (NDJSON lines, a JSON array's elements),
/// validated and prepared in chunks of
/// at least this many, one thread a chunk and at most one a core. A large
/// batch's preparation (about 12 µs an event: bench/results/capture.md) is
/// then not one thread's work while the other cores wait for it; a batch
/// of fewer than twice this many stays on one thread. Bodies small enough to
/// be prepared on an async worker ([`PREPARE_INLINE_MAX`]) never hold that
/// many valid events (the smallest is over 40 bytes); lines of `{}` could,
/// and are then split on it, each chunk a few microseconds' work.
pub const PREPARE_CHUNK_MIN: usize = 1024;

/// Runs `work` over `items` in chunks, keeping their order: on this thread
/// for fewer than two [`PREPARE_CHUNK_MIN`]s, else on up to one thread a core
/// (the first chunk on this one; a chunk whose thread cannot be started runs
/// here too). `work` is given the index of its chunk's first item; the
/// chunks' results come back in the items' order.
fn in_chunks<T: Send, R: Send>(items: Vec<T>, work: impl Fn(usize, Vec<T>) -> R + Sync) -> Vec<R> {
    // Asked once: the standard library reads the cgroup's CPU quota from
    // files at every call (42 % of the async workers' time under single
    // events when it was asked a request).
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cores = *CORES
        .get_or_init(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    in_chunks_on(cores, items, work)
}

/// [`in_chunks`] on at most `threads` threads.
fn in_chunks_on<T: Send, R: Send>(
    threads: usize,
    items: Vec<T>,
    work: impl Fn(usize, Vec<T>) -> R + Sync,
) -> Vec<R> {
    let chunks = (items.len() / PREPARE_CHUNK_MIN).clamp(1, threads.max(1));
    if chunks == 1 {
        return vec![work(0, items)];
    }
    let size = items.len().div_ceil(chunks);
    let mut parts = Vec::with_capacity(chunks);
    let mut rest = items.into_iter();
    loop {
        let part: Vec<T> = rest.by_ref().take(size).collect();
        if part.is_empty() {
            break;
        }
        parts.push(part);
    }
    let work = &work;
    std::thread::scope(|scope| {
        let mut parts = parts.into_iter().enumerate();
        let first = parts.next().map(|(_, part)| part).unwrap_or_default();
        let others: Vec<_> = parts
            .map(|(n, part)| {
                let start = n * size;
                // The part comes back when no thread could take it.
                let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<T>>(1);
                let spawned = std::thread::Builder::new()
                    .name("trailmark-prepare".into())
                    .spawn_scoped(scope, move || work(start, rx.recv().unwrap_or_default()));
                match spawned {
                    Ok(handle) => {
                        let _ = tx.send(part);
                        Err(handle)
                    }
                    Err(_) => Ok((start, part)),
                }
            })
            .collect();
        let mut out = Vec::with_capacity(chunks);
        out.push(work(0, first));
        for other in others {
            out.push(match other {
                Ok((start, part)) => work(start, part),
                Err(handle) => handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            });
        }
        out
    })
}

/// Before anything is stored (a batch is all or nothing): an id already
/// used for another body is a conflict. A repeat found stored and the same
/// is settled here: its `sameness` is cleared, so that [`repeats_match`]
/// does not read it again. One read for the whole batch.
async fn unused_ids<S: Store>(
    app: &App<S>,
    batch: &[trailmark_store::NewEvent],
    sameness: &mut [Option<Sameness>],
) -> Result<(), ApiError> {
    let asked: Vec<(usize, (TenantId, trailmark_core::EventId))> = batch
        .iter()
        .zip(sameness.iter())
        .enumerate()
        .filter_map(|(index, (new, same))| {
            let id = new.event.id.filter(|_| same.is_some())?;
            Some((index, (new.tenant(), id)))
        })
        .collect();
    if asked.is_empty() {
        return Ok(());
    }
    let keys: Vec<_> = asked.iter().map(|(_, key)| key.clone()).collect();
    let stored = app.store.entries_by_ids(&keys).await?;
    for ((index, (tenant, id)), stored) in asked.into_iter().zip(stored) {
        let Some(stored) = stored else {
            continue;
        };
        let slot = &mut sameness[index];
        if !slot.as_ref().is_some_and(|same| same.matches(&stored)) {
            return Err(conflict(index, id, &tenant));
        }
        *slot = None;
    }
    Ok(())
}

/// After the append: a repeat stored by a concurrent request since
/// [`unused_ids`] looked must be the same event too (those it found stored
/// are already settled).
async fn repeats_match<S: Store>(
    app: &App<S>,
    appended: &[trailmark_store::Appended],
    sameness: &[Option<Sameness>],
) -> Result<(), ApiError> {
    let asked: Vec<(usize, &Sameness, &trailmark_store::Appended)> = appended
        .iter()
        .zip(sameness)
        .enumerate()
        .filter_map(|(index, (a, same))| Some((index, same.as_ref()?, a)).filter(|_| a.duplicate))
        .collect();
    if asked.is_empty() {
        return Ok(());
    }
    let keys: Vec<_> = asked
        .iter()
        .map(|(_, _, a)| (a.tenant.clone(), a.id))
        .collect();
    let stored = app.store.entries_by_ids(&keys).await?;
    for ((index, same, a), stored) in asked.into_iter().zip(stored) {
        if !stored.is_some_and(|s| same.matches(&s)) {
            return Err(conflict(index, a.id, &a.tenant));
        }
    }
    Ok(())
}

/// Parses, validates and prepares a request body (for a key bound to `own`
/// when it is bound): every problem of every event, or the batch.
fn prepare_body<S: Store>(
    app: &App<S>,
    headers: &HeaderMap,
    bytes: &[u8],
    own: Option<&TenantId>,
) -> Result<Vec<trailmark_store::NewEvent>, ApiError> {
    let default_tenant = own.cloned().unwrap_or_else(TenantId::default_tenant);
    let max_batch = app.settings.max_batch;
    prepare_split(
        split_body(headers, bytes, max_batch)?,
        max_batch,
        &default_tenant,
        own,
    )
}

/// [`prepare_values`] of a body's events however it was framed.
fn prepare_split(
    split: Split<'_>,
    max_batch: usize,
    default_tenant: &TenantId,
    own: Option<&TenantId>,
) -> Result<Vec<trailmark_store::NewEvent>, ApiError> {
    match split {
        // Each line or element parsed where its event is prepared: the
        // value is made and dropped on one thread, while it is in the
        // cache, and a batch's values are never all held at once.
        Split::Lines(lines) => {
            prepare_each(lines, parse_line, default_tenant, own).map_err(Unprepared::refusal)
        }
        Split::Elements(elements, body) => {
            match prepare_each(elements, parse_element, default_tenant, own) {
                // Refused as the body parsed whole is: "malformed JSON" and
                // where in the body.
                Err(Unprepared::Malformed(_)) => {
                    prepare_values(parse_whole_again(body, max_batch)?, default_tenant, own)
                }
                prepared => prepared.map_err(Unprepared::refusal),
            }
        }
        Split::Values(values) => prepare_values(values, default_tenant, own),
    }
}

/// Validates events and prepares them for the store: every problem of
/// every event, or the batch. Events name their tenant or go to
/// `default_tenant`; with `own` (a key bound to a tenant) an event naming
/// another tenant is refused. The one validation path of every ingest.
fn prepare_values(
    values: Vec<Value>,
    default_tenant: &TenantId,
    own: Option<&TenantId>,
) -> Result<Vec<trailmark_store::NewEvent>, ApiError> {
    prepare_each(values, |_, value| Ok(value), default_tenant, own).map_err(Unprepared::refusal)
}

/// Why [`prepare_each`] prepared nothing.
enum Unprepared {
    /// Items that are not values, each with its problem (and nothing else).
    Malformed(Vec<Problem>),
    Refused(ApiError),
}

impl From<ApiError> for Unprepared {
    fn from(e: ApiError) -> Self {
        Unprepared::Refused(e)
    }
}

impl Unprepared {
    /// The answer: the items that are not values named, or the refusal.
    fn refusal(self) -> ApiError {
        match self {
            Unprepared::Malformed(problems) => ApiError::Invalid(problems),
            Unprepared::Refused(e) => e,
        }
    }
}

/// [`prepare_values`] of `items`, each made a value by `value_of` (given
/// its index) where it is prepared. An item that is not a value (an NDJSON
/// line or an array's element that is not JSON) leaves the batch
/// unprepared with every such item's problem and nothing else, as parsing
/// the whole body first would have.
fn prepare_each<T: Send>(
    items: Vec<T>,
    value_of: impl Fn(usize, T) -> Result<Value, Problem> + Sync,
    default_tenant: &TenantId,
    own: Option<&TenantId>,
) -> Result<Vec<trailmark_store::NewEvent>, Unprepared> {
    let received_at = now();
    let randomness = crate::app::event_randomness(items.len())?;
    let events = items.len();
    let items: Vec<_> = items.into_iter().zip(randomness).collect();
    let mut malformed = Vec::new();
    let mut refused = None;
    let mut problems = Vec::new();
    let mut batch = Vec::with_capacity(events);
    for part in in_chunks(items, |start, part| {
        prepare_chunk(start, part, &value_of, default_tenant, own, received_at)
    }) {
        malformed.extend(part.malformed);
        // A chunk's refusal stands for the batch: the first in the events'
        // order, as one pass would have found it.
        if refused.is_none() {
            refused = part.refused;
        }
        if refused.is_none() && malformed.is_empty() {
            batch.extend(part.prepared);
            problems.extend(part.problems);
        }
    }
    if !malformed.is_empty() {
        return Err(Unprepared::Malformed(malformed));
    }
    if let Some(refused) = refused {
        return Err(refused.into());
    }
    if problems.is_empty() {
        Ok(batch)
    } else {
        Err(ApiError::Invalid(problems).into())
    }
}

/// An event's `occurred_at`, where it gives one, against when it was
/// received (`trailmark_core::limits::occurred_by`: at most an hour ahead).
fn occurred_by(event: &Event, received_at: trailmark_core::Timestamp) -> Result<(), String> {
    event.occurred_at.map_or(Ok(()), |at| {
        trailmark_core::limits::occurred_by(at, received_at)
    })
}

/// What [`prepare_chunk`] found in its events.
struct Chunk {
    prepared: Vec<trailmark_store::NewEvent>,
    /// The problems of events that are values but not valid events.
    problems: Vec<Problem>,
    /// The problems of items that are not values at all.
    malformed: Vec<Problem>,
    /// The first refusal of the whole batch (another tenant's event, an
    /// event that cannot be committed): nothing after it is prepared.
    refused: Option<ApiError>,
}

/// [`prepare_each`] of the items from `start` on. Once an item is not a
/// value or the batch is refused, the rest are only made values (to name
/// every one that is not), not prepared.
fn prepare_chunk<T>(
    start: usize,
    part: Vec<(T, [u8; crate::app::EVENT_RANDOM])>,
    value_of: &impl Fn(usize, T) -> Result<Value, Problem>,
    default_tenant: &TenantId,
    own: Option<&TenantId>,
    received_at: trailmark_core::Timestamp,
) -> Chunk {
    let mut chunk = Chunk {
        prepared: Vec::with_capacity(part.len()),
        problems: Vec::new(),
        malformed: Vec::new(),
        refused: None,
    };
    for (index, (item, random)) in (start..).zip(part) {
        let mut value = match value_of(index, item) {
            Ok(value) => value,
            Err(p) => {
                chunk.malformed.push(p);
                continue;
            }
        };
        if chunk.refused.is_some() || !chunk.malformed.is_empty() {
            continue;
        }
        match Event::take_from_json(&mut value) {
            Ok(event) => {
                if let Err(message) = occurred_by(&event, received_at) {
                    chunk
                        .problems
                        .push(Problem::new(Some(index), "occurred_at", message));
                    continue;
                }
                if let (Some(own), Some(asked)) = (own, &event.tenant)
                    && own != asked
                {
                    chunk.refused = Some(ApiError::Forbidden(format!(
                        "events[{index}].tenant: this key may only write tenant {own}, not {asked}"
                    )));
                    continue;
                }
                match crate::app::prepare_event(event, default_tenant, received_at, &random) {
                    Ok(prepared) => chunk.prepared.push(prepared),
                    Err(e) => chunk.refused = Some(e),
                }
            }
            Err(errors) => chunk.problems.extend(
                errors
                    .into_iter()
                    .map(|e| Problem::new(Some(index), &e.path, e.message)),
            ),
        }
    }
    chunk
}

/// Bodies up to this many bytes are prepared on the async worker that read
/// them; larger ones on a blocking thread. Parsing, validating and
/// committing a few hundred bytes (one event) takes microseconds, less than
/// handing them to the blocking pool and back (a wake-up, a lock and two
/// thread switches: a sixth of the server's CPU under single-event ingest,
/// bench/results/ingest.md); a batch of events takes long enough that the
/// async workers must keep answering meanwhile.
pub const PREPARE_INLINE_MAX: usize = 16 * 1024;

/// [`prepare_body`] for `caller`'s key: on this worker for a body of at most
/// [`PREPARE_INLINE_MAX`] bytes, on a blocking thread for a larger one.
async fn prepare_request_body<S: Store>(
    app: &Arc<App<S>>,
    caller: &crate::Caller,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Vec<trailmark_store::NewEvent>, ApiError> {
    let own = caller.key.tenant.clone();
    if bytes.len() <= PREPARE_INLINE_MAX {
        return prepare_body(app, &headers, &bytes, own.as_ref());
    }
    let app = Arc::clone(app);
    tokio::task::spawn_blocking(move || prepare_body(&app, &headers, &bytes, own.as_ref()))
        .await
        .map_err(|e| trailmark_store::StoreError::backend("preparing a batch", e))?
}

fn conflict(index: usize, id: trailmark_core::EventId, tenant: &TenantId) -> ApiError {
    ApiError::Conflict(format!(
        "events[{index}].id: event {id} is already in tenant {tenant} with another body; an id names one event (send a new id, or the same body to repeat it)"
    ))
}

pub async fn post_events<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(caller, _): Authorized<Ingester>,
    _: NoQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let max = app.settings.max_body_bytes;
    // Named before the body is read: a bad value costs no body.
    let mut afters = headers.get_all(trailmark_wire::AFTER_HEADER).iter();
    let after = afters.next();
    if afters.next().is_some() {
        return Err(ApiError::param(
            trailmark_wire::AFTER_HEADER,
            "given more than once: name the one event this batch comes after",
        ));
    }
    let after = after
        .map(|v| crate::after::parse_after(v, caller.key.tenant.as_ref()))
        .transpose()?;
    // Bodies being read and parsed at once are bounded in bytes: a request
    // that would pass the bound is told to retry (429), not buffered.
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(max)
        .min(max)
        .max(1);
    let Ok(_body_permit) = Arc::clone(&app.body_bytes)
        .try_acquire_many_owned(u32::try_from(announced).unwrap_or(u32::MAX))
    else {
        app.metrics
            .ingest_rejected_busy
            .fetch_add(1, Ordering::Relaxed);
        return Err(ApiError::Busy);
    };
    let bytes = axum::body::to_bytes(body, max).await.map_err(|_| {
        ApiError::TooLarge(format!(
            "request body is larger than {max} bytes: split the batch"
        ))
    })?;
    app.metrics.ingest_requests.fetch_add(1, Ordering::Relaxed);
    let batch = prepare_request_body(&app, &caller, headers, bytes).await?;
    let ready = app.ready(batch, Room::AnswerBusy).await?;
    if let Some((tenant, id)) = after {
        // Parsed, validated and its ids looked up beside the append of the
        // batch it follows; appended only once that one is durable.
        app.appending
            .wait_after(&app.store, &app.metrics, &tenant, id)
            .await?;
    }
    let appended = app.append_ready(ready).await?;
    let entries = appended
        .iter()
        .map(|a| crate::wire::AppendedOut {
            id: a.id.to_string(),
            seq: a.seq.get(),
            tenant: a.tenant.as_str().to_owned(),
        })
        .collect();
    Ok((
        StatusCode::CREATED,
        axum::Json(crate::wire::AppendedBatch { entries }),
    ))
}

/// The limits probe's HTTP ceiling (feature `limits-probe`, for
/// `bench/limits` only, never in a release): `POST /v1/events` up to the
/// store — the same key check, body bound, parsing, validation and payload
/// commitment, and an answer of the same shape — but nothing is stored
/// (`seq` 0). What Trailmark's ingest would do with a store that cost
/// nothing.
#[cfg(feature = "limits-probe")]
pub async fn validate_only<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(caller, _): Authorized<Ingester>,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let max = app.settings.max_body_bytes;
    let bytes = axum::body::to_bytes(body, max)
        .await
        .map_err(|_| ApiError::TooLarge(format!("request body is larger than {max} bytes")))?;
    let batch = prepare_request_body(&app, &caller, headers, bytes).await?;
    let entries = batch
        .iter()
        .map(|new| crate::wire::AppendedOut {
            id: new.event.id_or(new.generated_id).to_string(),
            seq: 0,
            tenant: new.tenant().as_str().to_owned(),
        })
        .collect();
    Ok((
        StatusCode::CREATED,
        axum::Json(crate::wire::AppendedBatch { entries }),
    ))
}

/// What a batch does when the ingest queue has no room for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Room {
    /// Answer 429 (a client retries).
    AnswerBusy,
    /// Wait for room (a producer inside this process).
    Wait,
}

/// A batch ready to append ([`crate::App::ready`]): room held in the
/// ingest queue, its ids looked up. Everything before the append itself,
/// which a batch sent after another does while that one is appended.
pub struct Ready {
    batch: Vec<trailmark_store::NewEvent>,
    /// Events sent with an id: what they say, to tell a repeat (idempotent)
    /// from another event under a used id (a conflict).
    sameness: Vec<Option<Sameness>>,
    candidates: Option<Vec<(usize, crate::alerts::Fact)>>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl std::fmt::Debug for Ready {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ready")
            .field("events", &self.batch.len())
            .finish_non_exhaustive()
    }
}

impl Ready {
    /// The batch back, unappended (its room in the queue given back).
    pub fn into_events(self) -> Vec<trailmark_store::NewEvent> {
        self.batch
    }
}

impl<S: Store> crate::App<S> {
    /// Everything before a batch's append (the one commit path of every
    /// ingest: this, then [`Self::append_ready`]): holds room in the ingest queue
    /// (see [`Room`]) and refuses an id already used for another event
    /// (409). A batch that names the batch before it (`Trailmark-After`,
    /// the drainer's next batch) does this while that one is appended, and
    /// waits for it ([`crate::after`]) only after: so the lookup of its ids
    /// is not on the path from one durable batch to the next. An id of the
    /// batch before, stored meanwhile under another event, is still found:
    /// the store keeps one event an id, and [`Self::append_ready`] checks
    /// every repeat it reports.
    pub(crate) async fn ready(
        &self,
        batch: Vec<trailmark_store::NewEvent>,
        room: Room,
    ) -> Result<Ready, ApiError> {
        self.admit_tenants(
            batch
                .iter()
                .map(|n| n.event.tenant.as_ref().unwrap_or(&n.default_tenant)),
        )
        .await?;
        let capacity = self.settings.queue_capacity;
        let permit = match room {
            Room::AnswerBusy => {
                if batch.len() > capacity {
                    return Err(ApiError::TooLarge(format!(
                        "{} events in one request is more than the ingest queue holds ({capacity}): split the batch",
                        batch.len(),
                    )));
                }
                let count = u32::try_from(batch.len()).unwrap_or(u32::MAX);
                let Ok(permit) = Arc::clone(&self.permits).try_acquire_many_owned(count) else {
                    self.metrics
                        .ingest_rejected_busy
                        .fetch_add(1, Ordering::Relaxed);
                    return Err(ApiError::Busy);
                };
                permit
            }
            Room::Wait => {
                let count = u32::try_from(batch.len().min(capacity)).unwrap_or(u32::MAX);
                Arc::clone(&self.permits)
                    .acquire_many_owned(count)
                    .await
                    .map_err(|_| ApiError::Busy)?
            }
        };
        let mut sameness: Vec<Option<Sameness>> = batch
            .iter()
            .map(|new| new.event.id.is_some().then(|| Sameness::of_new(new)))
            .collect();
        unused_ids(self, &batch, &mut sameness).await?;
        let candidates = self.alerts.get().map(|feed| feed.candidates(&batch));
        Ok(Ready {
            batch,
            sameness,
            candidates,
            _permit: permit,
        })
    }

    /// Appends a batch made [`Self::ready`], all or nothing, and returns
    /// once it is durable; counts the commit, and checks that every event
    /// the store found already stored (a repeat) is the same event.
    pub(crate) async fn append_ready(
        &self,
        ready: Ready,
    ) -> Result<Vec<trailmark_store::Appended>, ApiError> {
        let Ready {
            batch,
            sameness,
            candidates,
            _permit,
        } = ready;
        // Batches sent after this one wait for it (see crate::after).
        let registration = batch
            .last()
            .map(|last| self.appending.register((last.tenant(), last.id())));
        let started = Instant::now();
        let appended = self.append(batch).await?;
        if let Some(registration) = registration {
            registration.stored();
        }
        if let (Some(feed), Some(candidates)) = (self.alerts.get(), candidates) {
            feed.offer(candidates, &appended, &self.metrics);
        }
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.metrics
            .commit_micros_total
            .fetch_add(micros, Ordering::Relaxed);
        self.metrics.commits.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .events_ingested
            .fetch_add(appended.len() as u64, Ordering::Relaxed);
        repeats_match(self, &appended, &sameness).await?;
        Ok(appended)
    }

    /// Events produced inside this process (the capture drainer run by
    /// `serve`, which validated them) are appended in two steps: preparing
    /// them (payload commitments: CPU work the producer does while its batch
    /// before is appended), into `default_tenant` unless an event names its
    /// own …
    pub fn prepare_events(
        &self,
        events: Vec<Event>,
        default_tenant: &TenantId,
    ) -> Result<Vec<trailmark_store::NewEvent>, ApiError> {
        let received_at = now();
        let randomness = crate::app::event_randomness(events.len())?;
        events
            .into_iter()
            .zip(&randomness)
            .map(|(event, random)| {
                occurred_by(&event, received_at).map_err(|message| {
                    let id = event
                        .id
                        .map_or_else(String::new, |id| format!("event {id}: "));
                    ApiError::param("occurred_at", format!("{id}{message}"))
                })?;
                crate::app::prepare_event(event, default_tenant, received_at, random)
            })
            .collect()
    }

    /// … making them [`Self::ready`] (waiting for room in the ingest queue
    /// instead of answering busy; their ids looked up), which the producer
    /// does too while its batch before is appended …
    pub async fn ready_prepared(
        &self,
        batch: Vec<trailmark_store::NewEvent>,
    ) -> Result<Ready, ApiError> {
        self.ready(batch, Room::Wait).await
    }

    /// … and appending them, all or nothing: the same commit as the API's.
    pub async fn append_prepared(&self, ready: Ready) -> Result<usize, ApiError> {
        let appended = self.append_ready(ready).await?;
        self.metrics
            .captured_rows
            .fetch_add(appended.len() as u64, Ordering::Relaxed);
        Ok(appended.len())
    }

    /// Returns once event `id` of `tenant` is durable, the API's rule for a
    /// batch sent with `Trailmark-After` ([`crate::after`]): for a producer
    /// inside this process, whose next batch is readied while the one
    /// before is appended and committed the moment that one is durable.
    /// 412 when it is not and no append ending with it began within the
    /// wait.
    pub async fn wait_after(
        &self,
        tenant: &TenantId,
        id: trailmark_core::EventId,
    ) -> Result<(), ApiError> {
        self.appending
            .wait_after(&self.store, &self.metrics, tenant, id)
            .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashSet;

    use serde_json::json;
    use trailmark_core::TenantId;

    /// A batch's randomness is drawn in one call: each event still takes
    /// its own salt and its own generated id.
    #[test]
    fn each_event_of_a_batch_takes_its_own_salt_and_id() {
        let event = json!({"actor": {"id": "42", "type": "user"}, "action": "login"});
        let values = vec![event; 500];
        let batch = super::prepare_values(values, &TenantId::default_tenant(), None).unwrap();
        assert_eq!(batch.len(), 500);
        let salts: HashSet<_> = batch.iter().map(|n| *n.committed.salt.as_bytes()).collect();
        let ids: HashSet<_> = batch.iter().map(|n| n.generated_id).collect();
        assert_eq!((salts.len(), ids.len()), (500, 500));
    }

    /// Chunks cover the items once, in order, each told where it starts;
    /// short lists and one thread make one chunk.
    #[test]
    fn chunks_keep_the_items_order_and_know_where_they_start() {
        use super::{PREPARE_CHUNK_MIN, in_chunks_on};
        let n = 4 * PREPARE_CHUNK_MIN + 7;
        for threads in [1, 2, 3, 8] {
            let parts = in_chunks_on(threads, (0..n).collect(), |start, part| (start, part));
            assert_eq!(parts.len(), threads.min(4), "{threads} threads");
            for (start, part) in &parts {
                assert_eq!(part.first(), Some(start));
            }
            let all: Vec<usize> = parts.into_iter().flat_map(|(_, part)| part).collect();
            assert_eq!(all, (0..n).collect::<Vec<_>>());
        }
        let short = in_chunks_on(8, (0..2 * PREPARE_CHUNK_MIN - 1).collect(), |s, p| {
            (s, p.len())
        });
        assert_eq!(short, vec![(0, 2 * PREPARE_CHUNK_MIN - 1)]);
    }

    fn numbered(n: usize) -> Vec<serde_json::Value> {
        (0..n)
            .map(|i| json!({"actor": {"id": "42", "type": "user"}, "action": format!("a{i}")}))
            .collect()
    }

    /// A batch large enough to be prepared in chunks (on a machine of more
    /// than one core) comes out as one pass would: the events in order,
    /// every problem under its event's index, the first refusal in the
    /// events' order.
    #[test]
    fn a_large_batch_prepared_in_chunks_is_prepared_as_in_one_pass() {
        let n = 3 * super::PREPARE_CHUNK_MIN;
        let tenant = TenantId::default_tenant();
        let batch = super::prepare_values(numbered(n), &tenant, None).unwrap();
        let actions: Vec<&str> = batch.iter().map(|e| e.event.action.as_str()).collect();
        let expected: Vec<String> = (0..n).map(|i| format!("a{i}")).collect();
        assert_eq!(actions, expected);

        let mut values = numbered(n);
        values[1]["action"] = json!("");
        values[n - 2]["actor"] = json!("nobody");
        let Err(crate::error::ApiError::Invalid(problems)) =
            super::prepare_values(values.clone(), &tenant, None)
        else {
            panic!("two invalid events pass");
        };
        let at: Vec<_> = problems
            .iter()
            .map(|p| (p.index, p.path.as_str()))
            .collect();
        assert_eq!(at, vec![(Some(1), "action"), (Some(n - 2), "actor")]);

        let own = TenantId::new("a").unwrap();
        values[n - 100]["tenant"] = json!("b");
        values[n - 50]["tenant"] = json!("c");
        match super::prepare_values(values, &own, Some(&own)) {
            Err(crate::error::ApiError::Forbidden(message)) => {
                assert!(
                    message.starts_with(&format!("events[{}].tenant", n - 100)),
                    "{message}"
                );
            }
            other => panic!("another tenant's events pass: {other:?}"),
        }
    }

    fn ndjson() -> axum::http::HeaderMap {
        use axum::http::{HeaderMap, HeaderValue, header};
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        headers
    }

    /// A large NDJSON body, each line parsed in the chunk that prepares its
    /// event, comes out as parsing the whole body first and then preparing
    /// it would: a line that is not JSON refuses the batch with every such
    /// line named (its line number, its index among the events: blank lines
    /// are not events) and nothing else, before any other problem or
    /// refusal; without one, the first refusal in the events' order, then
    /// every problem; else the events in order.
    #[test]
    fn a_large_ndjson_body_prepared_in_chunks_is_prepared_as_in_one_pass() {
        use crate::error::ApiError;
        let n = 3 * super::PREPARE_CHUNK_MIN;
        let own = TenantId::new("a").unwrap();
        let prepare = |lines: &[String], max: usize| {
            let body = lines.join("\n");
            let split = super::split_body(&ndjson(), body.as_bytes(), max)?;
            super::prepare_split(split, max, &own, Some(&own))
        };
        let mut values = numbered(n);
        values[1]["action"] = json!("");
        values[n - 100]["tenant"] = json!("b");
        values[n - 50]["tenant"] = json!("c");
        let mut lines: Vec<String> = values.iter().map(ToString::to_string).collect();
        lines[n - 3] = "{\"action\":".into();
        lines[5] = "[".into();
        lines[7] = "{\"action\" \"a7\"}".into();
        lines.insert(10, String::new());

        let Err(ApiError::Invalid(problems)) = prepare(&lines, n) else {
            panic!("malformed lines pass");
        };
        let named: Vec<_> = problems
            .iter()
            .map(|p| (p.index, p.message.split(": ").next().unwrap_or_default()))
            .collect();
        // Line numbers count the blank line inserted at 10 (line 11).
        let last = format!("line {}", n - 1);
        assert_eq!(
            named,
            vec![
                (Some(5), "line 6"),
                (Some(7), "line 8"),
                (Some(n - 3), last.as_str())
            ]
        );

        // Lines past the blank one hold the event before them.
        let clean = numbered(n);
        lines[5] = clean[5].to_string();
        lines[7] = clean[7].to_string();
        lines[n - 2] = clean[n - 3].to_string();
        match prepare(&lines, n) {
            Err(ApiError::Forbidden(message)) => assert!(
                message.starts_with(&format!("events[{}].tenant", n - 100)),
                "{message}"
            ),
            other => panic!("another tenant's events pass: {other:?}"),
        }

        lines[n - 99] = clean[n - 100].to_string();
        lines[n - 49] = clean[n - 50].to_string();
        let Err(ApiError::Invalid(problems)) = prepare(&lines, n) else {
            panic!("an invalid event passes");
        };
        let at: Vec<_> = problems
            .iter()
            .map(|p| (p.index, p.path.as_str()))
            .collect();
        assert_eq!(at, vec![(Some(1), "action")]);

        lines[1] = clean[1].to_string();
        let batch = prepare(&lines, n).unwrap();
        let actions: Vec<&str> = batch.iter().map(|e| e.event.action.as_str()).collect();
        let expected: Vec<String> = (0..n).map(|i| format!("a{i}")).collect();
        assert_eq!(actions, expected);
        assert!(batch.iter().all(|e| e.tenant() == own));
        assert!(matches!(prepare(&lines, n - 1), Err(ApiError::TooLarge(_))));
    }
}

/// Property-based fuzzing of the ingest body parser (JSON object, array,
/// NDJSON framing) and the event validation after it: no panic, every
/// refusal a 400 (or 413 for too many events) whose problems say where, and
/// one batch framed three ways parses to the same events. A longer run:
/// `PROPTEST_CASES=100000 cargo test -p trailmark-server ingest::fuzz`.
#[cfg(test)]
mod fuzz {
    #![allow(clippy::unwrap_used)]

    use axum::http::{HeaderMap, HeaderValue, header};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::parse_body;
    use crate::error::ApiError;

    const MAX: usize = 20;

    fn headers(ndjson: bool) -> HeaderMap {
        let mut h = HeaderMap::new();
        let ct = if ndjson {
            "application/x-ndjson"
        } else {
            "application/json"
        };
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        h
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "\\PC{0,12}".prop_map(Value::String),
            "(\u{200b}|\u{202e}|a|\n|\"){0,6}".prop_map(Value::String),
        ]
    }

    /// An event with some fields replaced by arbitrary values.
    fn event() -> impl Strategy<Value = Value> {
        let fields = [
            "tenant",
            "actor",
            "action",
            "resource",
            "outcome",
            "id",
            "occurred_at",
            "changes",
            "context",
            "extra",
        ];
        prop::collection::vec((prop::sample::select(fields.to_vec()), scalar()), 0..3).prop_map(
            |edits| {
                let mut e = json!({
                    "actor": {"id": "u1", "type": "user"},
                    "action": "update",
                    "resource": {"type": "Invoice", "id": "7"},
                });
                for (field, value) in edits {
                    e[field] = value;
                }
                e
            },
        )
    }

    fn check(result: &Result<Vec<Value>, ApiError>, events: usize) {
        match result {
            Ok(values) => {
                for v in values {
                    // Validation after framing must not panic either.
                    let _ = trailmark_core::Event::from_json(v);
                }
            }
            Err(ApiError::Invalid(problems)) => {
                assert!(!problems.is_empty());
                for p in problems {
                    assert!(!p.message.is_empty(), "{p:?}");
                    assert!(
                        p.index.is_none_or(|i| i < events.max(1)),
                        "{p:?} of {events}"
                    );
                }
            }
            Err(ApiError::TooLarge(m)) => assert!(m.contains("split the batch"), "{m}"),
            Err(other) => panic!("{other:?} is neither 400 nor 413"),
        }
    }

    proptest! {
        #[test]
        fn one_batch_framed_as_array_or_ndjson_gives_the_same_events(
            events in prop::collection::vec(event(), 1..MAX),
            crlf in any::<bool>(),
            blank in any::<bool>(),
        ) {
            let array = serde_json::to_vec(&Value::Array(events.clone())).unwrap();
            let end = if crlf { "\r\n" } else { "\n" };
            let mut ndjson = String::new();
            for e in &events {
                ndjson.push_str(&e.to_string());
                ndjson.push_str(end);
                if blank {
                    ndjson.push_str(end);
                }
            }
            let a = parse_body(&headers(false), &array, MAX).unwrap();
            let n = parse_body(&headers(true), ndjson.as_bytes(), MAX).unwrap();
            prop_assert_eq!(&a, &events);
            prop_assert_eq!(&n, &events);
            check(&Ok(a), events.len());
        }

        #[test]
        fn any_body_is_framed_or_refused_with_a_clean_error(
            events in prop::collection::vec(event(), 0..MAX + 3),
            ndjson in any::<bool>(),
            edits in prop::collection::vec((any::<u16>(), any::<u8>(), 0u8..3), 0..4),
        ) {
            let mut body = if ndjson {
                events.iter().map(Value::to_string).collect::<Vec<_>>().join("\n").into_bytes()
            } else {
                serde_json::to_vec(&Value::Array(events.clone())).unwrap()
            };
            edit(&mut body, edits);
            let result = parse_body(&headers(ndjson), &body, MAX);
            // NDJSON problems are numbered by line: a cut line may add one.
            check(&result, events.len() + body.split(|b| *b == b'\n').count());
        }
    }

    /// `body` with each edit made in turn at its place (modulo the length):
    /// a byte inserted (kind 0), removed (1), or the body cut there (2).
    fn edit(body: &mut Vec<u8>, edits: Vec<(u16, u8, u8)>) {
        for (at, byte, kind) in edits {
            let at = usize::from(at) % (body.len() + 1);
            match kind {
                0 => body.insert(at, byte),
                1 if at < body.len() => {
                    body.remove(at);
                }
                _ => body.truncate(at),
            }
        }
    }

    /// Any JSON value, nested, with the bytes a split at the array's commas
    /// must not be fooled by inside its strings.
    fn nested() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            scalar(),
            "[\\[\\]{},\"\\\\: a\u{e9}]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[,\\]\"{}a]{0,3}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// The scan stops past the batch bound: such a body is parsed whole,
    /// and refused as too many events as before.
    #[test]
    fn an_array_past_the_bound_is_not_split() {
        assert_eq!(super::array_elements("[1, 2]", 2), Some(vec!["1", " 2"]));
        assert_eq!(super::array_elements("[1,2,3]", 2), None);
        assert_eq!(super::array_elements(" [ ] ", 2), Some(vec![]));
        let body = format!("[{}]", vec!["{}"; MAX + 1].join(","));
        assert!(matches!(
            parse_body(&headers(false), body.as_bytes(), MAX),
            Err(ApiError::TooLarge(_))
        ));
    }

    proptest! {
        /// A JSON array is split at its own commas and nowhere else: each
        /// element's text parses to that element.
        #[test]
        fn an_array_is_split_at_its_own_commas_only(
            items in prop::collection::vec(nested(), 0..MAX),
            pretty in any::<bool>(),
        ) {
            let body = if pretty {
                serde_json::to_string_pretty(&Value::Array(items.clone())).unwrap()
            } else {
                serde_json::to_string(&Value::Array(items.clone())).unwrap()
            };
            let elements = super::array_elements(&body, MAX).unwrap();
            let parsed: Vec<Value> = elements
                .iter()
                .map(|e| serde_json::from_str(e).unwrap())
                .collect();
            prop_assert_eq!(parsed, items);
        }

        /// A JSON array body split at its own commas, each element parsed
        /// alone (where its event is prepared), gives what parsing the
        /// whole body gives: the same values, or a refusal naming it
        /// malformed JSON with the same message.
        #[test]
        fn an_array_split_at_its_commas_parses_as_the_whole_body(
            items in prop::collection::vec(nested(), 1..MAX),
            pretty in any::<bool>(),
            edits in prop::collection::vec((any::<u16>(), prop::sample::select(
                b"[]{},\"\\ \n:1a".to_vec()), 0u8..3), 0..3),
        ) {
            let mut body = if pretty {
                serde_json::to_vec_pretty(&Value::Array(items)).unwrap()
            } else {
                serde_json::to_vec(&Value::Array(items)).unwrap()
            };
            edit(&mut body, edits);
            let Ok(text) = std::str::from_utf8(&body) else { return Ok(()) };
            let whole = super::parse_whole(text);
            match (parse_body(&headers(false), &body, 1000), whole) {
                (Ok(split), Ok(whole)) => prop_assert_eq!(split, whole),
                (Err(ApiError::Invalid(split)), Err(ApiError::Invalid(whole))) => {
                    prop_assert_eq!(&split[0].message, &whole[0].message);
                }
                // A body of no events is refused whole or split.
                (Err(ApiError::Invalid(p)), Ok(whole)) if whole.is_empty() => {
                    prop_assert_eq!(&p[0].message, "no events in the body");
                }
                (split, whole) => prop_assert!(false, "split {:?}, whole {:?}", split, whole),
            }
        }
    }

    #[test]
    fn duplicate_keys_and_non_objects_are_refused() {
        for (body, ndjson) in [
            (&br#"{"tenant":"a","tenant":"b"}"#[..], false),
            (b"[1, 2]", false),
            (b"\"event\"", false),
            (b"", false),
            (b"\n\n", true),
            (b"{\"a\":1}\n{", true),
        ] {
            match parse_body(&headers(ndjson), body, MAX) {
                Err(ApiError::Invalid(p)) => assert!(!p.is_empty()),
                Ok(values) if values.iter().any(|v| !v.is_object()) => {
                    // Framing passes an array's items on; validation
                    // refuses what is not an event object.
                    assert!(
                        values
                            .iter()
                            .filter(|v| !v.is_object())
                            .all(|v| trailmark_core::Event::from_json(v).is_err())
                    );
                }
                other => panic!("{}: {other:?}", String::from_utf8_lossy(body)),
            }
        }
    }
}
