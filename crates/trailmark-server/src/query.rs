//! Reading the trail: search, one event with its proof, entries by position.

use std::sync::Arc;

use axum::extract::{Path, State};

use crate::extract::{QueryParams, TenantParam, not_empty};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

use trailmark_core::{EventId, TenantId, Timestamp};
use trailmark_log::{LeafIndex, Plan, Receipt};
use trailmark_store::{Cursor, Exact, Query, Store};

use crate::app::{App, now};
use crate::auth::{Authorized, Reader};
use crate::error::ApiError;
use crate::wire::{EntriesPage, EventDetail, EventsPage, ProofOut};

pub const MAX_LIMIT: usize = 1000;
pub const MAX_ENTRIES_RANGE: u64 = 1000;

#[derive(Debug, Default, Deserialize)]
pub struct EventFilters {
    pub tenant: Option<String>,
    pub q: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub days: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
    /// Every other parameter: the exact filters ([`Exact`], by their
    /// parameter names), and anything else, which [`EventFilters::to_query`]
    /// refuses (a misspelt filter must not widen a read to everything).
    /// Collected rather than refused by serde, so that `/v1/export` can add
    /// `format`.
    #[serde(flatten)]
    pub exact: Params,
}

/// Query parameters by name, each given at most once: a repeated one
/// (`actor=a&actor=b`) is refused, never decided by whichever came last.
#[derive(Clone, Debug, Default)]
pub struct Params(pub BTreeMap<String, String>);

impl<'de> Deserialize<'de> for Params {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Params;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("query parameters")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Params, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((key, value)) = map.next_entry::<String, String>()? {
                    if out.contains_key(&key) {
                        return Err(serde::de::Error::custom(format!(
                            "{key}: given twice; give each filter once"
                        )));
                    }
                    out.insert(key, value);
                }
                Ok(Params(out))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// The parameters [`EventFilters`] takes, for the error naming an unknown one.
fn filter_names() -> String {
    let mut names = vec!["tenant"];
    names.extend(Exact::ALL.iter().map(|f| f.param()));
    names.extend(["q", "since", "until", "days", "limit", "cursor"]);
    names.join(", ")
}

fn time_param(name: &str, value: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    value
        .map(|v| Timestamp::parse(v).map_err(|m| ApiError::param(name, m)))
        .transpose()
}

impl EventFilters {
    /// Refuses each parameter of `not_taken` that was given at all (even
    /// empty), naming it with what to do instead: a read that takes the
    /// filters but not all of them (a record's history, stats, an export)
    /// never answers as though one it ignores had been applied (an export
    /// asked for `limit=100` streamed the whole trail).
    pub(crate) fn refuse(&self, not_taken: &[(&str, &str)]) -> Result<(), ApiError> {
        match not_taken.iter().find(|(name, _)| self.given(name)) {
            Some((name, instead)) => Err(ApiError::param(
                name,
                format!("not taken by this read: {instead}"),
            )),
            None => Ok(()),
        }
    }

    /// Whether the parameter `name` was given, even empty.
    fn given(&self, name: &str) -> bool {
        match name {
            "tenant" => self.tenant.is_some(),
            "q" => self.q.is_some(),
            "since" => self.since.is_some(),
            "until" => self.until.is_some(),
            "days" => self.days.is_some(),
            "limit" => self.limit.is_some(),
            "cursor" => self.cursor.is_some(),
            other => self.exact.0.contains_key(other),
        }
    }

    /// The value of an exact filter, when set and not empty.
    pub fn get(&self, field: Exact) -> Option<&str> {
        self.exact
            .0
            .get(field.param())
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn to_query(&self, tenants: Vec<TenantId>) -> Result<Query, ApiError> {
        let mut exact = BTreeMap::new();
        for (name, value) in &self.exact.0 {
            let Some(field) = Exact::from_param(name) else {
                return Err(if name.is_empty() {
                    ApiError::param("query", "a parameter without a name ('=…'): remove it")
                } else {
                    ApiError::param(
                        name,
                        format!("unknown parameter; the filters are {}", filter_names()),
                    )
                });
            };
            not_empty(name, Some(value))?;
            let value = field.check(value).map_err(|m| ApiError::param(name, m))?;
            exact.insert(field, value);
        }
        let mut since = time_param("since", not_empty("since", self.since.as_deref())?)?;
        if let Some(days) = not_empty("days", self.days.as_deref())? {
            let days: i64 = days
                .parse()
                .ok()
                .filter(|d| (1..=36_500).contains(d))
                .ok_or_else(|| {
                    ApiError::param("days", "must be a whole number of days from 1 to 36500")
                })?;
            let from =
                Timestamp::from_unix_millis((now().unix_millis() - days * 86_400_000).max(0));
            since = since.max(from);
        }
        let limit = match not_empty("limit", self.limit.as_deref())? {
            None => 50,
            Some(l) => l
                .parse()
                .ok()
                .filter(|l| (1..=MAX_LIMIT).contains(l))
                .ok_or_else(|| ApiError::param("limit", format!("must be 1 to {MAX_LIMIT}")))?,
        };
        let cursor = not_empty("cursor", self.cursor.as_deref())?
            .map(|c| {
                Cursor::decode(c)
                    .ok_or_else(|| ApiError::param("cursor", "not a cursor from next_cursor"))
            })
            .transpose()?;
        Ok(Query {
            tenants,
            exact,
            q: not_empty("q", self.q.as_deref())?
                .map(search_words)
                .transpose()?,
            since,
            until: time_param("until", not_empty("until", self.until.as_deref())?)?,
            limit,
            cursor,
            // Not a parameter: a record's history sets it (`reports`).
            no_resource_id: false,
        })
    }

    /// The filters that were set, for the audit entry of a read.
    pub(crate) fn describe(&self) -> Map<String, Value> {
        let mut out = Map::new();
        let exact = Exact::ALL.map(|f| (f.param(), self.get(f)));
        for (k, v) in [("tenant", self.tenant.as_deref())]
            .into_iter()
            .chain(exact)
            .chain([
                ("q", self.q.as_deref()),
                ("since", self.since.as_deref()),
                ("until", self.until.as_deref()),
                ("days", self.days.as_deref()),
            ])
        {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                let kept = if PERSONAL_FILTERS.contains(&k) {
                    digest(v)
                } else {
                    capped(v)
                };
                out.insert(k.into(), Value::String(kept));
            }
        }
        out
    }
}

/// The most distinct words one search may ask for, and the longest `q`.
pub const MAX_SEARCH_WORDS: usize = 32;
pub const MAX_SEARCH_BYTES: usize = 1024;

/// `q` with each word once (a word is a run of letters and digits), and
/// refused past the bounds: a search costs about one index lookup per word,
/// so thousands of repeated words were thousands of lookups.
fn search_words(q: &str) -> Result<String, ApiError> {
    if q.len() > MAX_SEARCH_BYTES {
        return Err(ApiError::param(
            "q",
            format!("at most {MAX_SEARCH_BYTES} bytes (got {})", q.len()),
        ));
    }
    let mut words: Vec<&str> = Vec::new();
    for word in q
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !words.contains(&word) {
            words.push(word);
        }
    }
    if words.len() > MAX_SEARCH_WORDS {
        return Err(ApiError::param(
            "q",
            format!(
                "at most {MAX_SEARCH_WORDS} different words (got {})",
                words.len()
            ),
        ));
    }
    // Nothing searchable is kept as it was: the store finds nothing for it.
    Ok(if words.is_empty() {
        q.to_owned()
    } else {
        words.join(" ")
    })
}

/// The longest filter value a read record keeps whole.
const RECORDED_FILTER_BYTES: usize = 256;

/// Filters whose values may be personal data (free text, a client IP):
/// read records keep their digest only, because `_system` is never erased
/// and an erasure must leave the erased values in no file. An auditor can
/// still tell whether someone searched for a given value by hashing it.
const PERSONAL_FILTERS: [&str; 2] = ["q", "ip"];

/// `sha256 <hex>` of a filter value.
fn digest(value: &str) -> String {
    use sha2::{Digest as _, Sha256};
    format!("sha256 {}", hex::encode(Sha256::digest(value.as_bytes())))
}

/// A filter value as a read record keeps it: whole when short, else its
/// start, its length and its SHA-256 (a 60 KB `q` is not stored in every
/// record).
fn capped(value: &str) -> String {
    use sha2::{Digest as _, Sha256};
    if value.len() <= RECORDED_FILTER_BYTES {
        return value.to_owned();
    }
    let mut end = 64;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}… ({} bytes, sha256 {})",
        &value[..end],
        value.len(),
        hex::encode(Sha256::digest(value.as_bytes()))
    )
}

/// `GET /v1/events`.
pub async fn list_events<S: Store>(
    State(app): State<Arc<App<S>>>,
    caller: Authorized<Reader>,
    QueryParams(filters): QueryParams<EventFilters>,
) -> Result<axum::Json<EventsPage>, ApiError> {
    events(&app, &caller, &filters).await.map(axum::Json)
}

/// A page of events, newest first, of the tenants `caller` may see: the
/// read is recorded in `_system`. The API's `GET /v1/events` and the
/// viewer's events page are renderings of this.
pub async fn events<S: Store>(
    app: &App<S>,
    Authorized(caller, _): &Authorized<Reader>,
    filters: &EventFilters,
) -> Result<EventsPage, ApiError> {
    let query = filters.to_query(caller.visible(filters.tenant.as_deref())?)?;
    let page = app.store.query(&query).await?;
    let mut events = page
        .entries
        .iter()
        .map(crate::render::event_out)
        .collect::<Result<Vec<_>, _>>()?;
    crate::retention::explain_removals(app, &mut events).await?;
    let mut meta = filters.describe();
    meta.insert("returned".into(), json!(events.len()));
    app.audit(Some(caller), "read", Some(("route", "/v1/events")), meta)
        .await?;
    Ok(EventsPage {
        events,
        next_cursor: page.next.map(Cursor::encode),
    })
}

/// `GET /v1/events/{id}`.
pub async fn get_event<S: Store>(
    State(app): State<Arc<App<S>>>,
    caller: Authorized<Reader>,
    Path(id): Path<String>,
    QueryParams(p): QueryParams<TenantParam>,
) -> Result<axum::Json<EventDetail>, ApiError> {
    event(&app, &caller, &id, p.tenant.as_deref())
        .await
        .map(axum::Json)
}

/// One event that `caller` may see, with its entry and its proof; the read
/// is recorded in `_system`. An id in two tenants the caller may see must be
/// asked for with a tenant (409).
pub async fn event<S: Store>(
    app: &App<S>,
    Authorized(caller, _): &Authorized<Reader>,
    id: &str,
    tenant: Option<&str>,
) -> Result<EventDetail, ApiError> {
    let id = EventId::parse(id).map_err(|m| ApiError::param("id", m))?;
    let tenants = caller.visible(tenant)?;
    let mut meta = Map::new();
    meta.insert("event".into(), json!(id.to_string()));
    let record = app.audit(
        Some(caller),
        "read",
        Some(("route", "/v1/events/{id}")),
        meta,
    );
    // The record names only the id asked for, so it is written while the
    // read runs (see `read_and_record`).
    crate::reports::read_and_record(find_event(app, tenants, id), record).await
}

/// The event `id` among `tenants` (all when none), with its entry and proof.
async fn find_event<S: Store>(
    app: &App<S>,
    tenants: Vec<TenantId>,
    id: EventId,
) -> Result<EventDetail, ApiError> {
    let entry = app
        .store
        .entry_by_id(&tenants, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no event {id} that this key may see")))?;
    let envelope = entry
        .envelope()
        .map_err(trailmark_store::StoreError::from)?;
    // Ids are unique per tenant: one asked for without a tenant must name
    // one event, never whichever another tenant stored first.
    if tenants.len() != 1 {
        let others: Vec<TenantId> = if tenants.is_empty() {
            app.store
                .heads()
                .await?
                .into_iter()
                .map(|h| h.tenant)
                .filter(|t| *t != envelope.tenant)
                .collect()
        } else {
            tenants
                .iter()
                .filter(|t| **t != envelope.tenant)
                .cloned()
                .collect()
        };
        if !others.is_empty()
            && let Some(other) = app.store.entry_by_id(&others, id).await?
        {
            let other = other
                .envelope()
                .map_err(trailmark_store::StoreError::from)?;
            return Err(ApiError::Conflict(format!(
                "event id {id} is in tenants {} and {}: ask with ?tenant=",
                envelope.tenant, other.tenant
            )));
        }
    }
    let proof = match app.store.latest_checkpoint(&envelope.tenant).await? {
        Some(cp) if cp.size.get() > envelope.seq.get() => {
            let index = LeafIndex::new(envelope.seq.get())
                .ok_or_else(|| ApiError::param("id", "bad seq"))?;
            let plan =
                Plan::inclusion(index, cp.size).map_err(trailmark_store::StoreError::from)?;
            // The proof's nodes, and the checkpoint with its cosignatures
            // (the receipt carries them), read at once.
            let (hashes, note) = tokio::try_join!(
                app.run_plan(&envelope.tenant, &plan),
                crate::proofs::with_cosignatures(app, &cp)
            )?;
            let signed = app.open_checkpoint(&envelope.tenant, &note).await?;
            let receipt = Receipt::new(
                Some(entry.envelope_bytes.clone()),
                index,
                hashes.clone(),
                &signed,
            );
            Some(ProofOut {
                checkpoint: cp.note,
                hashes,
                leaf_index: index.get(),
                receipt: receipt.to_string(),
                tree_size: cp.size.get(),
            })
        }
        // Checkpoints are signed every second; a newer entry has none yet.
        _ => None,
    };
    let mut event = crate::render::event_out(&entry)?;
    crate::retention::explain_removals(app, [&mut event]).await?;
    Ok(EventDetail {
        event,
        entry: crate::render::entry_out(&entry, &envelope),
        proof,
        envelope: entry.envelope_bytes.clone(),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryRange {
    pub tenant: Option<String>,
    pub start: Option<u64>,
    pub end: Option<u64>,
}

pub async fn list_entries<S: Store>(
    State(app): State<Arc<App<S>>>,
    Authorized(caller, _): Authorized<Reader>,
    QueryParams(range): QueryParams<EntryRange>,
) -> Result<axum::Json<EntriesPage>, ApiError> {
    let tenant = caller.one_tenant(range.tenant.as_deref())?;
    let start = range.start.unwrap_or(0);
    let end = range.end.unwrap_or(start + MAX_ENTRIES_RANGE);
    if end < start || end - start > MAX_ENTRIES_RANGE {
        return Err(ApiError::param(
            "end",
            format!("must be from start to start + {MAX_ENTRIES_RANGE}"),
        ));
    }
    let entries = app.store.entries(&tenant, start, end).await?;
    let out = entries
        .iter()
        .map(|e| e.envelope().map(|env| crate::render::entry_out(e, &env)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(trailmark_store::StoreError::from)?;
    // Entries carry whole payloads: reading them is recorded like any read.
    let mut meta = Map::new();
    meta.insert("tenant".into(), json!(tenant.as_str()));
    meta.insert("start".into(), json!(start));
    meta.insert("returned".into(), json!(out.len()));
    app.audit(Some(&caller), "read", Some(("route", "/v1/entries")), meta)
        .await?;
    Ok(axum::Json(EntriesPage {
        entries: out,
        tenant: tenant.as_str().to_owned(),
    }))
}

/// Property-based fuzzing of query-string parsing, from the raw string to
/// the store's [`Query`]: no panic, every refusal a 400 naming a parameter,
/// and a parameter that is not a filter is always refused. A longer run:
/// `PROPTEST_CASES=100000 cargo test -p trailmark-server query::fuzz`.
#[cfg(test)]
mod fuzz {
    #![allow(clippy::unwrap_used)]

    use std::fmt::Write as _;

    use axum::extract::FromRequestParts as _;
    use proptest::prelude::*;

    use super::{EventFilters, MAX_LIMIT, Query, filter_names};
    use crate::error::ApiError;
    use crate::extract::QueryParams;

    /// The query string as the API parses it; `None` when it is not even a
    /// valid URI (the HTTP layer refuses those before any handler).
    fn parse(query: &str) -> Option<Result<Query, ApiError>> {
        let request = axum::http::Request::builder()
            .uri(format!("/v1/events?{query}"))
            .body(())
            .ok()?;
        let (mut parts, ()) = request.into_parts();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let extracted = runtime.block_on(QueryParams::<EventFilters>::from_request_parts(
            &mut parts,
            &(),
        ));
        Some(extracted.and_then(|QueryParams(filters)| filters.to_query(Vec::new())))
    }

    fn encode(value: &str) -> String {
        let mut out = String::new();
        for b in value.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(char::from(b));
            } else {
                let _ = write!(out, "%{b:02X}");
            }
        }
        out
    }

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => prop::sample::select(filter_names().split(", ").map(str::to_owned).collect::<Vec<_>>()),
            1 => "[a-z_]{1,12}",
            1 => Just("Actor".to_owned()),
        ]
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{0,20}",
            "[0-9-]{1,12}",
            Just("2026-11-30T12:00:00Z".to_owned()),
            Just("failure".to_owned()),
            "c[0-9]{1,22}",
            "(Ⓐ|\u{345}|\u{200b}|a| ){0,30}",
        ]
    }

    proptest! {
        #[test]
        fn any_query_string_is_parsed_or_refused_naming_a_parameter(
            pairs in prop::collection::vec((name(), value()), 0..8),
            raw in prop::option::of("\\PC{0,40}"),
        ) {
            let mut query = pairs
                .iter()
                .map(|(n, v)| format!("{n}={}", encode(v)))
                .collect::<Vec<_>>()
                .join("&");
            if let Some(raw) = raw {
                query.push('&');
                query.push_str(&raw);
            }
            let Some(result) = parse(&query) else { return Ok(()) };
            let names = filter_names();
            let known: Vec<&str> = names.split(", ").collect();
            let unknown = pairs.iter().find(|(n, _)| !known.contains(&n.as_str()));
            match result {
                Ok(q) => {
                    prop_assert!((1..=MAX_LIMIT).contains(&q.limit));
                    prop_assert!(unknown.is_none(), "{query} widened past {unknown:?}");
                }
                Err(ApiError::Invalid(problems)) => {
                    prop_assert!(!problems.is_empty());
                    for p in problems {
                        prop_assert!(!p.path.is_empty() && !p.message.is_empty(), "{p:?}");
                    }
                }
                Err(other) => prop_assert!(false, "{query}: {other:?} is not a 400"),
            }
        }
    }

    #[test]
    fn a_misspelt_or_repeated_filter_is_refused_by_name() {
        for (query, field) in [
            ("actr=alice", "actr"),
            ("Actor=alice", "Actor"),
            ("actor=alice&actor=bob", "actor"),
            ("tenant=a&tenant=b", "tenant"),
            ("outcome=maybe", "outcome"),
            ("limit=0", "limit"),
        ] {
            match parse(query).unwrap() {
                Err(ApiError::Invalid(problems)) => {
                    assert!(
                        problems[0].path == field || problems[0].message.contains(field),
                        "{query}: {problems:?}"
                    );
                }
                other => panic!("{query}: {other:?}"),
            }
        }
    }
}
