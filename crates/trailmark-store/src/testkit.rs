//! The conformance suite every backend runs (feature `testkit`).
//!
//! A backend's test crate calls [`conformance_suite!`] with an expression that
//! makes a fresh [`Harness`]; each check becomes one `#[tokio::test]`.

// Every check here is a test body: failing means panicking.
#![allow(
    clippy::unwrap_used,
    clippy::missing_panics_doc,
    clippy::cast_possible_truncation
)]

use serde_json::json;
use trailmark_core::{Event, EventId, Salt, Seq, TenantId, Timestamp};
use trailmark_log::{
    LeafIndex, MemoryTree, Plan, TreeSize, leaf_hash, verify_consistency, verify_inclusion,
};

use crate::{
    CheckpointRecord, CountBy, Cursor, EntryState, Exact, Hold, HoldScope, KeyRecord, NewEvent,
    Page, Query, Read, Removal, RetentionPolicy, Scopes, SigningKeyRecord, Store, StoreError,
    Target, Walk,
};

/// Makes stores over one storage location: every call to `open` sees what
/// earlier stores wrote (the previous store is dropped first).
pub trait Harness {
    type Store: Store;
    fn open(&self) -> Self::Store;
}

/// Expands to one test per conformance check.
#[macro_export]
macro_rules! conformance_suite {
    ($harness:expr) => {
        $crate::conformance_suite!(@tests $harness;
            appends_get_consecutive_seqs_per_tenant,
            the_same_id_twice_is_stored_once_with_the_same_seq,
            ids_of_a_batch_are_looked_up_in_one_read_in_order,
            a_tenants_head_is_its_size_and_zero_when_it_has_none,
            stored_nodes_give_the_in_memory_tree_roots_and_proofs,
            entries_keep_envelope_payload_and_salt,
            queries_filter_by_every_field,
            a_types_events_that_name_no_record_are_found_apart_from_its_records,
            paging_is_newest_first_without_gaps_or_repeats_during_ingest,
            free_text_search_finds_words_in_payloads,
            stats_count_by_action_actor_resource_outcome_and_day,
            stats_list_the_most_frequent_actors_and_types_first_ties_by_name,
            a_reopened_store_continues_the_same_tree,
            keys_are_found_by_digest_listed_and_revoked,
            checkpoints_are_all_kept,
            checkpoints_stored_together_are_each_kept_and_a_repeat_is_no_error,
            stored_columns_are_derived_by_the_one_rule,
            the_first_signing_key_recorded_wins,
            cosignatures_are_kept_once_per_witness_and_checkpoint,
            every_documented_read_seeks_by_its_filters,
            erasure_removes_the_payload_and_what_derives_from_it_and_keeps_the_tree,
            a_page_read_in_place_holds_the_entries_read_one_by_one,
            removal_walks_page_through_one_actor_one_record_or_all,
            retention_policies_and_holds_are_kept,
            settings_change_only_from_the_version_read,
            settle_waits_for_an_append_whose_caller_stopped_waiting,
        );
    };
    (@tests $harness:expr; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::testkit::$name(&$harness).await;
            }
        )+
    };
}

fn ts(millis: i64) -> Timestamp {
    Timestamp::from_unix_millis(millis).unwrap()
}

fn tenant(name: &str) -> TenantId {
    TenantId::new(name).unwrap()
}

/// `event` as a server prepares it, with a salt and generated id that
/// derive from `n` (deterministic).
pub fn prepared(n: u64, event: Event) -> NewEvent {
    let mut salt = [0u8; 32];
    salt[..8].copy_from_slice(&n.to_le_bytes());
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&n.to_be_bytes());
    NewEvent {
        received_at: ts(1_800_000_000_000),
        generated_id: EventId::new_v7(ts(1_800_000_000_000), random),
        committed: event.commit_payload(Salt::from_bytes(salt)).unwrap(),
        event,
        default_tenant: TenantId::default_tenant(),
    }
}

/// A valid event for `tenant` with a deterministic id from `n`.
pub fn new_event(tenant_name: &str, n: u64, action: &str) -> NewEvent {
    let event = Event::from_json(&json!({
        "tenant": tenant_name,
        "actor": {"id": format!("user-{}", n % 3), "type": "user", "name": format!("person {n}")},
        "action": action,
        "resource": {"type": "Invoice", "id": format!("{}", n % 5)},
        "outcome": if n.is_multiple_of(4) { "failure" } else { "success" },
        "changes": {"total": {"old": n, "new": n + 1}},
        "context": {"ip": format!("10.0.0.{}", n % 2), "request_id": format!("rq{}x", n % 5)},
        "metadata": {"note": format!("word{n} shared")},
        "occurred_at": ts(1_700_000_000_000 + i64::try_from(n).unwrap() * 1000).to_string(),
    }))
    .unwrap();
    prepared(n, event)
}

/// Event `n` of a trail shaped like a real one, for plans that depend on
/// statistics: four tenants (`acme`, the one the documented reads ask
/// about, holds 3% of the events: a tenant-bound key's first page must not
/// walk the other 97%), 1,000 actors, 5,000 records of 10 types, 30
/// actions, 2,000 client IPs, spread over 60 days; failures, exports and
/// payroll records are 0.2% each.
pub fn realistic_event(n: u64) -> NewEvent {
    let mix = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16;
    let tenant_name = match mix % 32 {
        0 => "acme",
        1..=15 => "globex",
        16..=27 => "initech",
        _ => "umbrella",
    };
    let event = Event::from_json(&json!({
        "tenant": tenant_name,
        "actor": {"id": format!("user-{}", mix % 1000), "type": "user"},
        // One event in 500 is an export of a payroll record: what an
        // auditor looks for is rare, and must not be found by a walk.
        "action": if (mix / 7).is_multiple_of(500) { "export".to_owned() } else { format!("action-{}", (mix / 7) % 30) },
        "resource": {
            "type": if (mix / 11).is_multiple_of(500) { "Payroll".to_owned() } else { format!("Type{}", (mix / 11) % 10) },
            "id": format!("{}", (mix / 13) % 500),
        },
        "outcome": if (mix / 17).is_multiple_of(500) { "failure" } else { "success" },
        "context": {
            "ip": format!("10.{}.{}.1", (mix / 19) % 40, (mix / 23) % 50),
            "request_id": format!("r{}", mix % 5000),
        },
        "metadata": {"note": format!("word{} shared", mix % 997)},
        "occurred_at": ts(1_700_000_000_000 + i64::try_from(n).unwrap() * 259_200).to_string(),
    }))
    .unwrap();
    prepared(n, event)
}

/// Fills `filler` with 20 000 events, then checks that counting them all
/// through `limited` (the same trail, under a read time limit too short
/// for it) is refused as the caller's to narrow, not a storage failure.
pub async fn a_read_past_its_time_limit_asks_to_narrow_it<F: Store, L: Store>(
    filler: &F,
    limited: &L,
) {
    let batch = (0..20_000).map(|n| new_event("t", n, "update")).collect();
    filler.append(batch).await.unwrap();
    match limited.stats(&everything()).await {
        Err(StoreError::BadRequest { field, message }) => {
            assert_eq!(field, "query");
            assert!(message.contains("narrow it"), "{message}");
        }
        other => panic!("expected the read to be stopped, got {other:?}"),
    }
}

/// Every event, ten to a page.
pub fn everything() -> Query {
    Query {
        limit: 10,
        ..Query::default()
    }
}

/// Appends one batch of [`new_event`]s (action `update`), numbered `range`.
pub async fn append_range<S: Store>(store: &S, tenant_name: &str, range: std::ops::Range<u64>) {
    let batch = range.map(|n| new_event(tenant_name, n, "update")).collect();
    store.append(batch).await.unwrap();
}

pub async fn appends_get_consecutive_seqs_per_tenant<H: Harness>(h: &H) {
    let store = h.open();
    let batch = vec![
        new_event("a", 0, "create"),
        new_event("b", 1, "create"),
        new_event("a", 2, "update"),
    ];
    let out = store.append(batch).await.unwrap();
    let seqs: Vec<_> = out
        .iter()
        .map(|a| (a.tenant.to_string(), a.seq.get()))
        .collect();
    assert_eq!(seqs, [("a".into(), 0), ("b".into(), 0), ("a".into(), 1)]);
    let out = store
        .append(vec![new_event("a", 3, "delete")])
        .await
        .unwrap();
    assert_eq!(out[0].seq, Seq::new(2).unwrap());
    let mut heads = store.heads().await.unwrap();
    heads.sort_by(|x, y| x.tenant.cmp(&y.tenant));
    assert_eq!(
        heads.iter().map(|h| h.size.get()).collect::<Vec<_>>(),
        [3, 1]
    );
}

/// An append whose caller stops waiting (a client that hung up) still
/// lands, and `settle` returns only after it has: what a server's final
/// checkpoint must come after.
pub async fn settle_waits_for_an_append_whose_caller_stopped_waiting<H: Harness>(h: &H) {
    let store = h.open();
    // Ready to take appends at once (schema in place, writer running).
    store
        .append(vec![new_event("s", 0, "create")])
        .await
        .unwrap();
    let batch: Vec<NewEvent> = (1..=20_000).map(|n| new_event("s", n, "update")).collect();
    // Polled once (the batch is handed to the store), then dropped.
    {
        let mut append = std::pin::pin!(store.append(batch));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(
            append.as_mut().poll(&mut cx).is_pending(),
            "20,000 events cannot be durable at the first poll"
        );
    }
    store.settle().await.unwrap();
    let heads = store.heads().await.unwrap();
    assert_eq!(heads.len(), 1);
    assert_eq!(heads[0].size.get(), 20_001);
}

pub async fn the_same_id_twice_is_stored_once_with_the_same_seq<H: Harness>(h: &H) {
    let store = h.open();
    let mut first = new_event("a", 1, "login");
    first.event.id = Some(EventId::parse("0192f0c2-5a1e-7c4b-9d10-6f1b2a3c4d5e").unwrap());
    let again = first.clone();
    let out = store
        .append(vec![new_event("a", 0, "x"), first.clone(), again.clone()])
        .await
        .unwrap();
    assert_eq!((out[1].seq.get(), out[1].duplicate), (1, false));
    assert_eq!((out[2].seq.get(), out[2].duplicate), (1, true));
    let out = store.append(vec![again]).await.unwrap();
    assert_eq!((out[0].seq.get(), out[0].duplicate), (1, true));
    assert_eq!(
        store.heads().await.unwrap()[0].size,
        TreeSize::new(2).unwrap()
    );
    // The same id in another tenant is another event.
    let mut other = first;
    other.event.tenant = Some(tenant("b"));
    assert!(!store.append(vec![other]).await.unwrap()[0].duplicate);
}

pub async fn ids_of_a_batch_are_looked_up_in_one_read_in_order<H: Harness>(h: &H) {
    let store = h.open();
    append_range(&store, "a", 0..3).await;
    append_range(&store, "b", 10..12).await;
    let a = store.entries(&tenant("a"), 0, 3).await.unwrap();
    let b = store.entries(&tenant("b"), 0, 2).await.unwrap();
    let id = |e: &crate::StoredEntry| e.envelope().unwrap().id;
    let unknown = EventId::parse("0192f0c2-5a1e-7c4b-9d10-6f1b2a3c4d5e").unwrap();
    // Below and above every id stored.
    let lowest = EventId::parse("00000000-0000-8000-8000-000000000000").unwrap();
    let highest = EventId::parse("ffffffff-ffff-8fff-bfff-ffffffffffff").unwrap();
    let keys = vec![
        (tenant("b"), id(&b[1])),
        (tenant("a"), id(&a[2])),
        (tenant("a"), unknown),
        // An id of tenant b asked in tenant a names nothing.
        (tenant("a"), id(&b[0])),
        (tenant("a"), id(&a[0])),
        // Asked twice: answered twice.
        (tenant("b"), id(&b[1])),
        (tenant("a"), lowest),
        (tenant("a"), highest),
        // A tenant that holds nothing.
        (tenant("c"), id(&a[1])),
        (tenant("b"), id(&b[0])),
    ];
    let found: Vec<Option<Vec<u8>>> = store
        .entries_by_ids(&keys)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.map(|e| e.envelope_bytes))
        .collect();
    let bytes = |e: &crate::StoredEntry| Some(e.envelope_bytes.clone());
    assert_eq!(
        found,
        vec![
            bytes(&b[1]),
            bytes(&a[2]),
            None,
            None,
            bytes(&a[0]),
            bytes(&b[1]),
            None,
            None,
            None,
            bytes(&b[0]),
        ]
    );
    assert!(store.entries_by_ids(&[]).await.unwrap().is_empty());
}

pub async fn a_tenants_head_is_its_size_and_zero_when_it_has_none<H: Harness>(h: &H) {
    let store = h.open();
    append_range(&store, "a", 0..3).await;
    append_range(&store, "b", 10..17).await;
    let size = |n| TreeSize::new(n).unwrap();
    assert_eq!(store.head(&tenant("a")).await.unwrap(), size(3));
    assert_eq!(store.head(&tenant("b")).await.unwrap(), size(7));
    assert_eq!(store.head(&tenant("c")).await.unwrap(), size(0));
    for h in store.heads().await.unwrap() {
        assert_eq!(store.head(&h.tenant).await.unwrap(), h.size);
    }
}

pub async fn stored_nodes_give_the_in_memory_tree_roots_and_proofs<H: Harness>(h: &H) {
    let store = h.open();
    // Batches of odd sizes across the 256-node strip boundary.
    let mut n = 0;
    for size in [1, 2, 100, 153, 1, 300] {
        append_range(&store, "t", n..n + size).await;
        n += size;
    }
    for e in store.entries(&tenant("t"), 0, n).await.unwrap() {
        assert_eq!(e.leaf_hash, leaf_hash(&e.envelope_bytes));
    }
    the_stored_tree_matches_its_entries(&store, "t", &[1, 2, 3, 255, 256, 257, 300, 511, 512, 557])
        .await;
}

pub async fn entries_keep_envelope_payload_and_salt<H: Harness>(h: &H) {
    let store = h.open();
    append_range(&store, "t", 0..3).await;
    let entries = store.entries(&tenant("t"), 1, 10).await.unwrap();
    assert_eq!(entries.len(), 2);
    let env = entries[0].envelope().unwrap();
    assert_eq!(env.seq, Seq::new(1).unwrap());
    assert_eq!(env.actor_id, "user-1");
    let payload = entries[0].payload.as_ref().unwrap();
    assert_eq!(payload["actor_name"], json!("person 1"));
    env.payload_digest
        .verify(payload, entries[0].salt.as_ref().unwrap())
        .unwrap();
    let by_id = store.entry_by_id(&[], env.id).await.unwrap().unwrap();
    assert_eq!(by_id.envelope_bytes, entries[0].envelope_bytes);
    assert!(
        store
            .entry_by_id(&[tenant("other")], env.id)
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn queries_filter_by_every_field<H: Harness>(h: &H) {
    let store = h.open();
    append_range(&store, "a", 0..40).await;
    append_range(&store, "b", 40..50).await;
    let in_tenant = |name: &str| Query {
        tenants: vec![tenant(name)],
        limit: 1000,
        ..Query::default()
    };
    let a = || in_tenant("a");
    let cases = [
        ("actor", a().with(Exact::Actor, "user-1"), 13),
        ("request id", a().with(Exact::RequestId, "rq3x"), 8),
        ("tenant", in_tenant("b"), 10),
        (
            "resource",
            a().with(Exact::ResourceType, "Invoice")
                .with(Exact::ResourceId, "3"),
            8,
        ),
        ("outcome", a().with(Exact::Outcome, "failure"), 10),
        ("ip", a().with(Exact::Ip, "10.0.0.1"), 20),
        ("action", in_tenant("b").with(Exact::Action, "update"), 10),
        (
            "time window",
            Query {
                since: Some(ts(1_700_000_000_000 + 10_000)),
                until: Some(ts(1_700_000_000_000 + 20_000)),
                ..a()
            },
            10,
        ),
    ];
    for (what, query, expected) in cases {
        let found = store.query(&query).await.unwrap().entries.len();
        assert_eq!(found, expected, "{what}");
    }
    // Every exact filter is covered above.
    assert_eq!(Exact::ALL.len(), 7, "a new filter needs a case here");
}

/// Events of tenant `t` about resource type `kind`, record `id` or none.
fn about(n: u64, t: &str, kind: &str, id: Option<&str>, action: &str) -> NewEvent {
    let mut resource = json!({"type": kind});
    if let Some(id) = id {
        resource["id"] = json!(id);
    }
    let event = Event::from_json(&json!({
        "tenant": t,
        "actor": {"id": "db-owner", "type": "unknown"},
        "action": action,
        "resource": resource,
        "occurred_at": ts(1_700_000_000_000 + i64::try_from(n).unwrap() * 1000).to_string(),
    }))
    .unwrap();
    prepared(n, event)
}

/// `Query::no_resource_id` with a resource type finds the events about the
/// whole type (a captured table's truncate), not its records' own, nor
/// another type's, nor another tenant's, whether the entries are indexed
/// yet or not.
pub async fn a_types_events_that_name_no_record_are_found_apart_from_its_records<H: Harness>(
    h: &H,
) {
    let store = h.open();
    append_range(&store, "a", 0..20).await;
    let batch = vec![
        about(100, "c", "Invoice", Some("3"), "create"),
        about(101, "c", "Invoice", None, "truncate"),
        about(102, "c", "Order", None, "truncate"),
        about(103, "c", "Invoice", Some("4"), "update"),
        about(104, "c", "Invoice", None, "rewrite"),
        about(105, "d", "Invoice", None, "truncate"),
    ];
    store.append(batch).await.unwrap();
    let whole = |tenants: Vec<TenantId>| {
        Query {
            tenants,
            limit: 1000,
            no_resource_id: true,
            ..Query::default()
        }
        .with(Exact::ResourceType, "Invoice")
    };
    let actions = |page: Page| -> Vec<String> {
        page.entries
            .iter()
            .map(|e| format!("{}:{}", e.columns.tenant, e.columns.action))
            .collect()
    };
    for when in ["as appended", "indexed"] {
        if when == "indexed" {
            indexed(&store);
        }
        let found = actions(store.query(&whole(vec![tenant("c")])).await.unwrap());
        assert_eq!(found, ["c:rewrite", "c:truncate"], "{when}");
        let everywhere = actions(store.query(&whole(Vec::new())).await.unwrap());
        assert_eq!(
            everywhere,
            ["d:truncate", "c:rewrite", "c:truncate"],
            "{when}"
        );
        let narrowed = whole(vec![tenant("c")]).with(Exact::Action, "truncate");
        let found = actions(store.query(&narrowed).await.unwrap());
        assert_eq!(found, ["c:truncate"], "{when}");
        // The same query without it finds the records' events too.
        let all = Query {
            no_resource_id: false,
            ..whole(vec![tenant("c")])
        };
        assert_eq!(store.query(&all).await.unwrap().entries.len(), 4, "{when}");
    }
}

pub async fn paging_is_newest_first_without_gaps_or_repeats_during_ingest<H: Harness>(h: &H) {
    let store = h.open();
    append_range(&store, "a", 0..40).await;
    let all = Query {
        tenants: vec![tenant("a")],
        limit: 7,
        ..Query::default()
    };
    let mut seen = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = store
            .query(&Query {
                cursor,
                ..all.clone()
            })
            .await
            .unwrap();
        seen.extend(page.entries.iter().map(|e| e.envelope().unwrap().seq.get()));
        // New entries arriving while paging never show up in later pages.
        append_range(
            &store,
            "a",
            1000 + seen.len() as u64..1001 + seen.len() as u64,
        )
        .await;
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(
        seen,
        (0..40).rev().collect::<Vec<_>>(),
        "newest first, each once"
    );
}

pub async fn free_text_search_finds_words_in_payloads<H: Harness>(h: &H) {
    let store = h.open();
    append_range(&store, "a", 0..20).await;
    let q = |text: &str| Query {
        q: Some(text.into()),
        limit: 100,
        ..Query::default()
    };
    let found = store.query(&q("word7")).await.unwrap().entries;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].envelope().unwrap().seq.get(), 7);
    assert_eq!(store.query(&q("shared")).await.unwrap().entries.len(), 20);
    assert_eq!(
        store.query(&q("shared word7")).await.unwrap().entries.len(),
        1
    );
    assert_eq!(
        store
            .query(&q("\"quoted\" OR (odd"))
            .await
            .unwrap()
            .entries
            .len(),
        0
    );
}

pub async fn a_reopened_store_continues_the_same_tree<H: Harness>(h: &H) {
    // Each reopen lands inside partial strips at several levels, and the
    // next batch crosses a strip boundary (256, 512) at some of them.
    let mut n = 0;
    for size in [300, 1, 250, 1, 215] {
        let store = h.open();
        append_range(&store, "t", n..n + size).await;
        n += size;
        drop(store);
    }
    let store = h.open();
    assert_eq!(store.head(&tenant("t")).await.unwrap().get(), n);
    the_stored_tree_matches_its_entries(&store, "t", &[1, 255, 256, 300, 301, 511, 512, 551, n])
        .await;
}

/// The roots the store's nodes give at each of `sizes`, and the inclusion
/// proofs (of the middle leaf at that size, of the last leaf at the head)
/// and consistency proofs (to the head) they give, are those of a tree built
/// in memory from the tenant's entries.
pub async fn the_stored_tree_matches_its_entries<S: Store>(
    store: &S,
    tenant_name: &str,
    sizes: &[u64],
) {
    let t = tenant(tenant_name);
    let n = store.head(&t).await.unwrap().get();
    let entries = store.entries(&t, 0, n).await.unwrap();
    assert_eq!(entries.len() as u64, n);
    let mut tree = MemoryTree::new();
    for e in &entries {
        tree.push(leaf_hash(&e.envelope_bytes)).unwrap();
    }
    let full = TreeSize::new(n).unwrap();
    for &size in sizes {
        let size = TreeSize::new(size).unwrap();
        let plan = Plan::root(size);
        let root = plan
            .assemble(&store.nodes(&t, plan.node_ids()).await.unwrap())
            .unwrap()[0];
        assert_eq!(root, tree.root_at(size).unwrap(), "root at {size}");
        // The middle leaf in the tree of this size, the last one in the
        // tree at the head.
        let middle = LeafIndex::new(size.get() / 2).unwrap();
        let last = LeafIndex::new(size.get() - 1).unwrap();
        for (leaf, at, at_root) in [(middle, size, root), (last, full, tree.root())] {
            let plan = Plan::inclusion(leaf, at).unwrap();
            let proof = plan
                .assemble(&store.nodes(&t, plan.node_ids()).await.unwrap())
                .unwrap();
            let hash = leaf_hash(&entries[usize::try_from(leaf.get()).unwrap()].envelope_bytes);
            verify_inclusion(&hash, leaf, at, &proof, &at_root).unwrap();
        }
        let plan = Plan::consistency(size, full).unwrap();
        let proof = plan
            .assemble(&store.nodes(&t, plan.node_ids()).await.unwrap())
            .unwrap();
        verify_consistency(size, full, &proof, &root, &tree.root()).unwrap();
    }
}

pub async fn keys_are_found_by_digest_listed_and_revoked<H: Harness>(h: &H) {
    let store = h.open();
    let key = KeyRecord {
        id: "tmk_0000abcd".into(),
        digest: [7; 32],
        name: "ingest for acme".into(),
        scopes: Scopes {
            ingest: true,
            read: false,
            admin: false,
        },
        tenant: Some(tenant("acme")),
        created_at: ts(1000),
        revoked_at: None,
    };
    store.create_key(key.clone()).await.unwrap();
    assert_eq!(
        store.key_by_digest([7; 32]).await.unwrap(),
        Some(key.clone())
    );
    assert_eq!(store.key_by_digest([8; 32]).await.unwrap(), None);
    assert_eq!(store.keys().await.unwrap(), vec![key.clone()]);
    assert!(store.revoke_key("tmk_0000abcd", ts(2000)).await.unwrap());
    assert!(
        store.revoke_key("tmk_0000abcd", ts(3000)).await.unwrap(),
        "revoking twice is fine"
    );
    assert!(!store.revoke_key("tmk_missing", ts(2000)).await.unwrap());
    assert_eq!(
        store
            .key_by_digest([7; 32])
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(ts(2000))
    );
    assert!(
        store.create_key(key).await.is_err(),
        "a duplicate key id is refused"
    );
}

pub async fn checkpoints_are_all_kept<H: Harness>(h: &H) {
    let store = h.open();
    let t = tenant("t");
    assert_eq!(store.latest_checkpoint(&t).await.unwrap(), None);
    for size in [1u64, 5, 9] {
        store
            .add_checkpoint(CheckpointRecord {
                tenant: t.clone(),
                size: TreeSize::new(size).unwrap(),
                root: leaf_hash(&size.to_le_bytes()),
                note: format!("note {size}\n"),
                signed_at: ts(i64::try_from(size).unwrap()),
            })
            .await
            .unwrap();
    }
    let all = store.checkpoints(&t).await.unwrap();
    assert_eq!(
        all.iter().map(|c| c.size.get()).collect::<Vec<_>>(),
        [1, 5, 9]
    );
    assert_eq!(
        store.latest_checkpoint(&t).await.unwrap().unwrap().note,
        "note 9\n"
    );
    // Paged: sizes above `after`, oldest first, at most `limit`.
    let sizes = |page: Vec<CheckpointRecord>| page.iter().map(|c| c.size.get()).collect::<Vec<_>>();
    assert_eq!(
        sizes(store.checkpoints_after(&t, None, 2).await.unwrap()),
        [1, 5]
    );
    assert_eq!(
        sizes(store.checkpoints_after(&t, Some(5), 2).await.unwrap()),
        [9]
    );
    assert!(
        store
            .checkpoints_after(&t, Some(9), 2)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn checkpoints_stored_together_are_each_kept_and_a_repeat_is_no_error<H: Harness>(h: &H) {
    let store = h.open();
    let record = |name: &str, size: u64| CheckpointRecord {
        tenant: tenant(name),
        size: TreeSize::new(size).unwrap(),
        root: leaf_hash(&size.to_le_bytes()),
        note: format!("{name} {size}\n"),
        signed_at: ts(i64::try_from(size).unwrap()),
    };
    store.add_checkpoints(Vec::new()).await.unwrap();
    store
        .add_checkpoints(vec![record("a", 1), record("b", 2), record("a", 3)])
        .await
        .unwrap();
    // Stored again (a tick that failed after storing them, signed again):
    // kept once, the new one beside them stored.
    store
        .add_checkpoints(vec![record("b", 2), record("b", 4)])
        .await
        .unwrap();
    for (name, sizes) in [("a", [1, 3]), ("b", [2, 4])] {
        let kept = store.checkpoints(&tenant(name)).await.unwrap();
        assert_eq!(kept.iter().map(|c| c.size.get()).collect::<Vec<_>>(), sizes);
        assert_eq!(kept[1].note, format!("{name} {}\n", sizes[1]));
    }
}

pub async fn stats_count_by_action_actor_resource_outcome_and_day<H: Harness>(h: &H) {
    let store = h.open();
    let mut batch: Vec<NewEvent> = (0..12)
        .map(|n| new_event("a", n, if n < 8 { "update" } else { "delete" }))
        .collect();
    // Three of them a day later.
    for e in &mut batch[9..] {
        e.event.occurred_at = Some(ts(1_700_000_000_000 + 86_400_000));
    }
    // Two with no resource: counted, but under no resource type.
    for e in &mut batch[..2] {
        e.event.resource = None;
    }
    batch.push(new_event("b", 99, "login"));
    store.append(batch).await.unwrap();
    let stats = store
        .stats(&Query {
            tenants: vec![tenant("a")],
            ..Query::default()
        })
        .await
        .unwrap();
    assert_eq!(stats.total, 12);
    assert_eq!(
        stats.by_action,
        [("update".to_owned(), 8), ("delete".to_owned(), 4)]
    );
    assert_eq!(
        stats.by_actor,
        [
            ("user-0".to_owned(), 4),
            ("user-1".to_owned(), 4),
            ("user-2".to_owned(), 4)
        ]
    );
    assert_eq!(stats.by_resource_type, [("Invoice".to_owned(), 10)]);
    assert_eq!(
        stats.by_outcome,
        [("success".to_owned(), 9), ("failure".to_owned(), 3)]
    );
    assert_eq!(
        stats.per_day,
        [("2023-11-14".to_owned(), 9), ("2023-11-15".to_owned(), 3)]
    );
    let all = store.stats(&Query::default()).await.unwrap();
    assert_eq!(all.total, 13);
    let failures = store
        .stats(&Query { ..Query::default() }.with(Exact::Outcome, "failure"))
        .await
        .unwrap();
    assert_eq!(failures.total, 3);
    let a = Query {
        tenants: vec![tenant("a")],
        ..Query::default()
    };
    let day = |d: &str, k: &str, n: u64| (d.to_owned(), k.to_owned(), n);
    assert_eq!(
        store
            .daily_counts(&a, crate::CountBy::Action)
            .await
            .unwrap(),
        [
            day("2023-11-14", "delete", 1),
            day("2023-11-14", "update", 8),
            day("2023-11-15", "delete", 3)
        ]
    );
    assert_eq!(
        store
            .daily_counts(&a, crate::CountBy::Outcome)
            .await
            .unwrap(),
        [
            day("2023-11-14", "failure", 3),
            day("2023-11-14", "success", 6),
            day("2023-11-15", "success", 3)
        ]
    );
}

/// More actors and resource types than [`crate::Stats::TOP`], counted over
/// several hours (the embedded store's hourly counts once indexed, beside
/// entries appended after): the most frequent first, ties in byte order of
/// the name (`a10` before `a9`, `B` before `a`), cut at `TOP` inside a tie.
pub async fn stats_list_the_most_frequent_actors_and_types_first_ties_by_name<H: Harness>(h: &H) {
    let store = h.open();
    let event = |n: u64, actor: &str, kind: &str| {
        let hour = i64::try_from(n % 3).unwrap() * 3_600_000;
        prepared(
            n,
            Event::from_json(&json!({
                "tenant": "top",
                "actor": {"id": actor, "type": "user"},
                "action": "update",
                "resource": {"type": kind, "id": "1"},
                "occurred_at": ts(1_700_000_000_000 + hour + i64::try_from(n).unwrap()).to_string(),
            }))
            .unwrap(),
        )
    };
    // Actor i (named `a{i}`, some `B{i}`) and type i (`T{i}`) occur
    // 1 + (7i mod 5) times: 130 actors and 60 types in five tie classes.
    let mut events = Vec::new();
    for i in 0..130u64 {
        let actor = if i % 11 == 0 {
            format!("B{i}")
        } else {
            format!("a{i}")
        };
        for _ in 0..=(7 * i) % 5 {
            events.push(event(events.len() as u64, &actor, &format!("T{}", i % 60)));
        }
    }
    // The cut falls inside a tie class: 26 actors occur 5 times, 26 four.
    let (by_actor, _, _) = expected_stats(&events);
    assert_eq!(by_actor.len(), crate::Stats::TOP);
    assert_eq!((by_actor[25].1, by_actor[26].1), (5, 4));
    let top = Query {
        tenants: vec![tenant("top")],
        ..Query::default()
    };
    let check = |stats: crate::Stats, events: &[NewEvent]| {
        let (by_actor, by_type, per_day) = expected_stats(events);
        assert_eq!(stats.by_actor, by_actor);
        assert_eq!(stats.by_resource_type, by_type);
        assert_eq!(stats.per_day, per_day);
        assert_eq!(
            stats.by_action,
            [("update".to_owned(), events.len() as u64)]
        );
    };
    // Most of them counted first, the rest appended once those are indexed.
    let later = events.split_off(events.len() * 2 / 3);
    store.append(events.clone()).await.unwrap();
    indexed(&store);
    store.append(later.clone()).await.unwrap();
    events.extend(later);
    check(store.stats(&top).await.unwrap(), &events);
    // Then more, which reorder the top (the embedded store counts them on
    // top of the hourly counts its last stats read summed): `a0` rises from
    // one to five, `a1` from three to four, `Z` comes in first.
    let more: Vec<NewEvent> = [("a0", 4), ("a1", 1), ("Z", 6)]
        .into_iter()
        .flat_map(|(actor, times)| std::iter::repeat_n(actor, times))
        .enumerate()
        .map(|(i, actor)| event((events.len() + i) as u64, actor, "T0"))
        .collect();
    store.append(more.clone()).await.unwrap();
    events.extend(more);
    indexed(&store);
    check(store.stats(&top).await.unwrap(), &events);
    // The same without the hourly counts (a filter that keeps every entry).
    check(
        store
            .stats(&top.clone().with(Exact::Action, "update"))
            .await
            .unwrap(),
        &events,
    );
}

/// What [`crate::Store::stats`] lists for `events` (all of one action):
/// actors and resource types most frequent first, then by name in byte
/// order, at most [`crate::Stats::TOP`]; the entries a UTC day.
type Listed = Vec<(String, u64)>;
fn expected_stats(events: &[NewEvent]) -> (Listed, Listed, Listed) {
    let count = |key: &dyn Fn(&NewEvent) -> String| {
        let mut counts = std::collections::BTreeMap::<String, u64>::new();
        for e in events {
            *counts.entry(key(e)).or_default() += 1;
        }
        counts.into_iter().collect::<Vec<_>>()
    };
    let ranked = |mut list: Listed| {
        list.sort_by(|a, b| {
            b.1.cmp(&a.1)
                .then_with(|| a.0.as_bytes().cmp(b.0.as_bytes()))
        });
        list.truncate(crate::Stats::TOP);
        list
    };
    let day = |e: &NewEvent| {
        let at = e.event.occurred_at.unwrap().unix_millis();
        // 2023-11-15 starts at 1,700,006,400,000 ms.
        if at < 1_700_006_400_000 {
            "2023-11-14"
        } else {
            "2023-11-15"
        }
        .to_owned()
    };
    (
        ranked(count(&|e| e.event.actor.id.clone())),
        ranked(count(&|e| e.event.resource.as_ref().unwrap().kind.clone())),
        count(&day),
    )
}

/// Polls (deadline 60 s) until a store whose indexer follows its appends
/// has indexed every one; at once for one that indexes as it appends.
pub fn indexed<S: Store>(store: &S) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while store.indexer().is_some_and(|s| s.lag_entries > 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            store.indexer()
        );
        // The indexer is a thread of its own: blocking this one a moment
        // holds up nothing it needs.
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

pub async fn stored_columns_are_derived_by_the_one_rule<H: Harness>(h: &H) {
    let store = h.open();
    append_range(&store, "t", 0..4).await;
    for entry in store.entries(&tenant("t"), 0, 4).await.unwrap() {
        let env = entry.envelope().unwrap();
        assert_eq!(
            entry.columns,
            trailmark_core::IndexedColumns::derive(&env, entry.payload.as_ref())
        );
        assert!(entry.columns.ip.is_some());
    }
}

pub async fn the_first_signing_key_recorded_wins<H: Harness>(h: &H) {
    let store = h.open();
    assert!(store.signing_keys().await.unwrap().is_empty());
    let record = |key: u8| SigningKeyRecord {
        ordinal: 0,
        public_key: [key; 32],
        origin_prefix: "trailmark.local".into(),
        added_at: ts(5),
        transition: None,
    };
    store.add_signing_key(record(1)).await.unwrap();
    store.add_signing_key(record(2)).await.unwrap();
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(keys, [record(1)]);
    let mut next = record(3);
    next.ordinal = 1;
    next.transition = Some("statement".into());
    store.add_signing_key(next.clone()).await.unwrap();
    assert_eq!(store.signing_keys().await.unwrap(), [record(1), next]);
}

pub async fn cosignatures_are_kept_once_per_witness_and_checkpoint<H: Harness>(h: &H) {
    let store = h.open();
    let t = tenant("t");
    store.add_cosignature(&t, 5, "w1", "— w1 A").await.unwrap();
    store.add_cosignature(&t, 5, "w1", "— w1 B").await.unwrap();
    store.add_cosignature(&t, 5, "w2", "— w2 C").await.unwrap();
    store.add_cosignature(&t, 3, "w1", "— w1 D").await.unwrap();
    store
        .add_cosignature(&tenant("u"), 3, "w1", "— w1 E")
        .await
        .unwrap();
    assert_eq!(
        store.cosignatures(&t, 0..=u64::MAX).await.unwrap(),
        [
            (3, "— w1 D".to_owned()),
            (5, "— w1 A".to_owned()),
            (5, "— w2 C".to_owned())
        ]
    );
    assert_eq!(
        store.cosignatures(&t, 5..=5).await.unwrap(),
        [(5, "— w1 A".to_owned()), (5, "— w2 C".to_owned())]
    );
    assert!(store.cosignatures(&t, 4..=4).await.unwrap().is_empty());
    assert_eq!(store.cosignatures(&t, 4..=9).await.unwrap().len(), 2);
    // Several at once (a migration's page), a repeat among them ignored as
    // one at a time would be.
    let line = |s: &str| s.to_owned();
    store
        .add_cosignatures(
            &t,
            vec![
                (7, line("w1"), line("— w1 F")),
                (5, line("w1"), line("— w1 G")),
                (7, line("w2"), line("— w2 H")),
                (7, line("w1"), line("— w1 I")),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        store.cosignatures(&t, 5..=7).await.unwrap(),
        [
            (5, "— w1 A".to_owned()),
            (5, "— w2 C".to_owned()),
            (7, "— w1 F".to_owned()),
            (7, "— w2 H".to_owned())
        ]
    );
    store.add_cosignatures(&t, Vec::new()).await.unwrap();
}

/// A read the API, CLI and viewer make, with what its plan must seek.
#[derive(Debug)]
pub struct DocumentedRead {
    /// Where it is made (the route and its parameters).
    pub name: &'static str,
    pub read: Read,
    /// Columns every plan of it must bound its index walk by (beside the
    /// free text's `search` and positions): so that it reads what it asks
    /// for, not a whole tenant or trail.
    pub seek: &'static [&'static str],
    /// Whether its rows may be sorted after they are found: a page whose
    /// index gives its order (newest first) must not sort.
    pub may_sort: bool,
}

/// Every documented read: `GET /v1/events` with each filter (first and later
/// pages, one tenant and all), record history, search, `GET /v1/stats`, the
/// reports' and charts' daily counts, an event by id, a range of entries.
pub fn documented_reads() -> Vec<DocumentedRead> {
    let acme = vec![tenant("acme")];
    let mut reads = Vec::new();
    for (scope, tenants) in [("one tenant", &acme), ("every tenant", &Vec::new())] {
        reads.extend(event_pages(scope, tenants));
        reads.extend(counts(scope, tenants));
    }
    reads.push(DocumentedRead {
        name: "/v1/entries and proofs (a range of one tenant)",
        read: Read::Entries {
            tenant: tenant("acme"),
            start: 100,
            end: 200,
        },
        seek: &["tenant", "seq"],
        may_sort: true,
    });
    reads
}

/// The last of the 60 days of [`realistic_event`].
fn last_day() -> Timestamp {
    ts(1_700_000_000_000 + 59 * 86_400_000)
}

/// `columns`, after `tenant` when the read is about one tenant (leaked: the
/// lists are tiny and made once per test).
fn seek_of(tenants: &[TenantId], columns: &[&'static str]) -> &'static [&'static str] {
    let mut v: Vec<&'static str> = if tenants.is_empty() {
        Vec::new()
    } else {
        vec!["tenant"]
    };
    v.extend_from_slice(columns);
    Box::leak(v.into_boxed_slice())
}

fn named(what: &str, scope: &str) -> &'static str {
    Box::leak(format!("{what} ({scope})").into_boxed_str())
}

fn first_page(tenants: &[TenantId]) -> Query {
    Query {
        tenants: tenants.to_vec(),
        limit: 50,
        ..Query::default()
    }
}

fn event_pages(scope: &str, tenants: &[TenantId]) -> Vec<DocumentedRead> {
    let one = !tenants.is_empty();
    let page = || first_page(tenants);
    let mut reads = Vec::new();
    let mut add = |what: &str, q: Query, columns: &[&'static str], may_sort: bool| {
        reads.push(DocumentedRead {
            name: named(&format!("/v1/events {what}"), scope),
            read: Read::Page(q),
            seek: if columns == ["search"] {
                &["search"]
            } else {
                seek_of(tenants, columns)
            },
            may_sort,
        });
    };
    add("newest first", page(), &[], false);
    let later = Query {
        cursor: Some(Cursor(1_000_000)),
        ..page()
    };
    add("a later page (cursor)", later, &["pos"], false);
    let exact = [
        (
            "actor=",
            Query { ..page() }.with(Exact::Actor, "user-7"),
            "actor_id",
        ),
        (
            "action=",
            Query { ..page() }.with(Exact::Action, "export"),
            "action",
        ),
        (
            "resource_type=",
            Query { ..page() }.with(Exact::ResourceType, "Payroll"),
            "resource_type",
        ),
        (
            "outcome=failure",
            Query { ..page() }.with(Exact::Outcome, "failure"),
            "outcome",
        ),
        ("ip=", Query { ..page() }.with(Exact::Ip, "10.3.4.1"), "ip"),
        (
            "request_id=",
            Query { ..page() }.with(Exact::RequestId, "r77"),
            "request_id",
        ),
    ];
    for (what, q, column) in exact {
        // Within one tenant the index ends in the position: newest first
        // without a sort. Across tenants the matches of each tenant are
        // merged by a sort, as are those of a resource type.
        add(what, q, &[column], !one || column == "resource_type");
    }
    let history = Query { ..page() }
        .with(Exact::ResourceType, "Type4")
        .with(Exact::ResourceId, "42");
    add(
        "record history (resource_type= resource_id=)",
        history,
        &["resource_type", "resource_id"],
        !one,
    );
    let whole_type = Query {
        no_resource_id: true,
        ..page()
    }
    .with(Exact::ResourceType, "Type4");
    // The absent id is sought too: the embedded store seeks its key ''
    // (`resource_id` in its plan), the PostgreSQL store reads an index of
    // those events only (its predicate, not in the plan's condition).
    add(
        "record history, its type's events naming no record (resource_type=, no resource_id)",
        whole_type,
        &["resource_type"],
        !one,
    );
    add(
        "since=",
        Query {
            since: Some(last_day()),
            ..page()
        },
        &[],
        false,
    );
    let window = Query {
        since: Some(ts(1_700_000_000_000 + 30 * 86_400_000)),
        until: Some(ts(1_700_000_000_000 + 31 * 86_400_000)),
        ..page()
    };
    add("since= until=", window, &["occurred_at"], true);
    add("q=", search_page(one), &["search"], true);
    reads
}

/// A rare word in the largest tenant: a walk of the tenant would find it
/// late. (In a tenant as small as acme, walking it is cheaper than the
/// search index, and a planner that weighs cost rightly does.)
fn search_page(one_tenant: bool) -> Query {
    let tenants = if one_tenant {
        vec![tenant("globex")]
    } else {
        Vec::new()
    };
    Query {
        q: Some("word7 shared".into()),
        ..first_page(&tenants)
    }
}

fn counts(scope: &str, tenants: &[TenantId]) -> Vec<DocumentedRead> {
    let day = Query {
        since: Some(last_day()),
        ..first_page(tenants)
    };
    let mut reads = vec![
        DocumentedRead {
            name: named("/v1/stats?days=1", scope),
            read: Read::Stats(day.clone()),
            seek: seek_of(tenants, &["occurred_at"]),
            may_sort: true,
        },
        DocumentedRead {
            name: named("/v1/stats?actor=", scope),
            read: Read::Stats(
                Query {
                    ..first_page(tenants)
                }
                .with(Exact::Actor, "user-7"),
            ),
            seek: seek_of(tenants, &["actor_id"]),
            may_sort: true,
        },
        DocumentedRead {
            name: named("/v1/events/{id}", scope),
            read: Read::EntryById {
                tenants: tenants.to_vec(),
                id: EventId::parse("0190f0b4-3c4a-7b4e-9a3e-2f1d5c6b7a80").unwrap(),
            },
            seek: &["id"],
            may_sort: true,
        },
    ];
    for by in [CountBy::Action, CountBy::Outcome] {
        reads.push(DocumentedRead {
            name: named(&format!("daily counts by {by:?} (reports, charts)"), scope),
            read: Read::DailyCounts(day.clone(), by),
            seek: seek_of(tenants, &["occurred_at"]),
            may_sort: true,
        });
    }
    reads
}

/// Every documented read seeks by its filters (never walks a tenant or the
/// whole trail to find them) and a page whose index gives its order does
/// not sort. A planner that weighs statistics sees a trail shaped like a
/// real one (20,000 events, [`realistic_event`]).
pub async fn every_documented_read_seeks_by_its_filters<H: Harness>(h: &H) {
    let store = h.open();
    for chunk in (0..20_000u64).collect::<Vec<_>>().chunks(5_000) {
        let batch = chunk.iter().map(|n| realistic_event(*n)).collect();
        store.append(batch).await.unwrap();
    }
    let mut failures = Vec::new();
    for read in documented_reads() {
        let plan = store.explain(&read.read).await.unwrap();
        let mut problems = Vec::new();
        if plan.accesses.is_empty() {
            problems.push("no step reads entries".to_owned());
        }
        // Every step, not only one of them: a read of several statements
        // (stats) is as slow as its slowest.
        for access in &plan.accesses {
            // Looking rows up by position (those another index found, as
            // the free-text search does) reads only what was found; reading
            // by position the entries an index has not covered yet (the
            // embedded store's indexer lag) reads only those; so does
            // reading by `seq` a tenant's entries not yet in the PostgreSQL
            // store's hourly counts (those above its `counted.seq`).
            if access.seek == ["pos"] && read.seek != ["pos"] {
                continue;
            }
            if matches!(read.read, Read::Stats(_) | Read::DailyCounts(..))
                && access.seek == ["tenant", "seq"]
            {
                continue;
            }
            for column in read.seek {
                if !access.seek.iter().any(|c| c == column) {
                    problems.push(format!(
                        "a step walks {:?} without seeking by {column}",
                        access.index
                    ));
                }
            }
        }
        if plan.accesses.iter().any(|a| a.index.is_none()) {
            problems.push("reads the whole table".to_owned());
        }
        if plan.sorts && !read.may_sort {
            problems.push("sorts what its index should give in order".to_owned());
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {}\n{:?}\n{}",
                read.name,
                problems.join("; "),
                plan.accesses,
                plan.text
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// After a migration that adds a column derived from the payload: `tenant`
/// holds `events` entries of [`new_event`] stored before the column
/// existed. Every stored column is now what the one rule derives, and the
/// new `request_id` filter finds them.
pub async fn entries_from_before_a_migration_have_their_derived_columns<S: Store>(
    store: &S,
    tenant_name: &str,
    events: u64,
) {
    let t = tenant(tenant_name);
    for entry in store.entries(&t, 0, events).await.unwrap() {
        let envelope = entry.envelope().unwrap();
        assert_eq!(
            entry.columns,
            trailmark_core::IndexedColumns::derive(&envelope, entry.payload.as_ref())
        );
    }
    let found = store
        .query(
            &Query {
                tenants: vec![t],
                limit: 1000,
                ..Query::default()
            }
            .with(Exact::RequestId, "rq3x"),
        )
        .await
        .unwrap();
    assert_eq!(
        found.entries.len() as u64,
        (0..events).filter(|n| n % 5 == 3).count() as u64
    );
}

/// `raw_page` (what verification reads) and `raw_entries` give the same
/// entries, whole, erased and expired, for any range (one past the end,
/// one beyond it).
pub async fn a_page_read_in_place_holds_the_entries_read_one_by_one<H: Harness>(h: &H) {
    let store = h.open();
    append_range(&store, "a", 0..6).await;
    append_range(&store, "b", 6..9).await;
    append_range(&store, "a", 9..14).await;
    let t = tenant("a");
    store
        .erase(&t, vec![2], Removal::Erased { record: 1 })
        .await
        .unwrap();
    store
        .erase(&t, vec![5], Removal::Expired { record: 1 })
        .await
        .unwrap();
    for (start, end) in [(0, 11), (2, 6), (9, 20), (11, 12), (12, 30)] {
        let one_by_one = store.raw_entries(&t, start, end).await.unwrap();
        let page = store.raw_page(&t, start, end).await.unwrap();
        assert_eq!(page.len(), one_by_one.len(), "{start}..{end}");
        assert!(
            page.iter().eq(one_by_one.iter().map(crate::RawEntry::view)),
            "{start}..{end}"
        );
    }
}

pub async fn erasure_removes_the_payload_and_what_derives_from_it_and_keeps_the_tree<H: Harness>(
    h: &H,
) {
    let store = h.open();
    append_range(&store, "a", 0..10).await;
    let t = tenant("a");
    let before = store.entries(&t, 0, 10).await.unwrap();
    let root_before = root_of(&store, &t, 10).await;
    // seq 7 twice (the second time it is already gone), and a seq past the end.
    let erased = Removal::Erased { record: 5 };
    assert_eq!(store.erase(&t, vec![3, 7, 7, 42], erased).await.unwrap(), 2);
    let expired = Removal::Expired { record: 9 };
    assert_eq!(store.erase(&t, vec![7], expired).await.unwrap(), 0);
    assert_eq!(store.erase(&t, vec![8], expired).await.unwrap(), 1);
    store.scrub().await.unwrap();
    let after = store.entries(&t, 0, 10).await.unwrap();
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(a.envelope_bytes, b.envelope_bytes, "envelopes stay");
        assert_eq!(a.leaf_hash, b.leaf_hash);
    }
    assert_eq!(after[8].state(), EntryState::Expired);
    assert_eq!(after[8].removed, Some(expired));
    assert_eq!(after[8].columns.ip, None);
    for seq in [3, 7] {
        let e = &after[seq];
        assert_eq!(e.state(), EntryState::Erased);
        assert_eq!(
            e.removed,
            Some(erased),
            "the first removal is the one recorded"
        );
        assert!(e.payload.is_none() && e.salt.is_none());
        assert_eq!(e.columns.ip, None, "ip derives from the payload");
        assert_eq!(e.columns.request_id, None);
        assert_eq!(
            e.columns.actor_id, before[seq].columns.actor_id,
            "envelope columns stay"
        );
    }
    assert_eq!(after[4].state(), EntryState::Present);
    assert_eq!(
        root_of(&store, &t, 10).await,
        root_before,
        "the tree is untouched"
    );
    // The payload's words are no longer found; the envelope's still are.
    let q = |text: &str| Query {
        q: Some(text.into()),
        limit: 100,
        ..Query::default()
    };
    assert!(store.query(&q("word7")).await.unwrap().entries.is_empty());
    assert_eq!(store.query(&q("word4")).await.unwrap().entries.len(), 1);
    let by_actor = store.query(&q("user-1")).await.unwrap().entries;
    assert!(
        by_actor
            .iter()
            .any(|e| e.envelope().unwrap().seq.get() == 7),
        "an erased entry is still found by its envelope's ids"
    );
    // ip and request id filters no longer find it.
    let mut ip = Query {
        tenants: vec![t.clone()],
        limit: 100,
        ..Query::default()
    };
    ip.exact.insert(Exact::RequestId, "rq2x".into());
    let seqs: Vec<u64> = store
        .query(&ip)
        .await
        .unwrap()
        .entries
        .iter()
        .map(|e| e.envelope().unwrap().seq.get())
        .collect();
    assert_eq!(
        seqs,
        vec![2],
        "seq 7 had request id rq2x too, before erasure"
    );
}

async fn root_of<S: Store>(store: &S, t: &TenantId, size: u64) -> trailmark_log::Hash {
    let plan = Plan::root(TreeSize::new(size).unwrap());
    let nodes = store.nodes(t, plan.node_ids()).await.unwrap();
    plan.assemble(&nodes).unwrap()[0]
}

pub async fn removal_walks_page_through_one_actor_one_record_or_all<H: Harness>(h: &H) {
    let store = h.open();
    append_range(&store, "a", 0..30).await;
    append_range(&store, "b", 0..5).await;
    let t = tenant("a");
    let collect = |walk: Walk| {
        let store = &store;
        let t = &t;
        async move {
            let (mut seen, mut after, mut pages) = (Vec::new(), None, 0);
            loop {
                let page = store.walk(t, &walk, after, 4).await.unwrap();
                pages += 1;
                assert!(page.entries.len() <= 4);
                for w in &page.entries {
                    seen.push((w.envelope.seq.get(), w.present, w.bytes));
                }
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            (seen, pages)
        }
    };
    let (all, pages) = collect(Walk::All).await;
    assert_eq!(
        all.iter().map(|s| s.0).collect::<Vec<_>>(),
        (0..30).collect::<Vec<_>>()
    );
    assert!(pages >= 8);
    assert!(
        all.iter().all(|s| s.1 && s.2 > 32),
        "present, with payload and salt bytes"
    );
    let (actor, _) = collect(Walk::Actor("user-1".into())).await;
    assert_eq!(
        actor.iter().map(|s| s.0).collect::<Vec<_>>(),
        (0..30).filter(|n| n % 3 == 1).collect::<Vec<_>>()
    );
    let record = Walk::Resource {
        kind: "Invoice".into(),
        id: "2".into(),
    };
    store
        .erase(&t, vec![7], Removal::Erased { record: 0 })
        .await
        .unwrap();
    let (record, _) = collect(record).await;
    assert_eq!(
        record.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(),
        vec![
            (2, true),
            (7, false),
            (12, true),
            (17, true),
            (22, true),
            (27, true)
        ],
        "erased entries are walked too, marked"
    );
    assert_eq!(record[1].2, 0, "an erased entry has no bytes left to free");
}

pub async fn retention_policies_and_holds_are_kept<H: Harness>(h: &H) {
    let store = h.open();
    let policy = |target: Target, days: u32| RetentionPolicy {
        tenant: tenant("a"),
        target,
        max_age_days: days,
        updated_at: ts(1_800_000_000_000),
    };
    store.set_retention(policy(Target::All, 365)).await.unwrap();
    store
        .set_retention(policy(Target::ResourceType("Invoice".into()), 30))
        .await
        .unwrap();
    store
        .set_retention(policy(Target::ResourceType("Invoice".into()), 31))
        .await
        .unwrap();
    let kept = store.retention().await.unwrap();
    assert_eq!(kept.len(), 2, "one policy per tenant and target: {kept:?}");
    assert!(kept.contains(&policy(Target::ResourceType("Invoice".into()), 31)));
    assert!(
        store
            .remove_retention(&tenant("a"), &Target::All)
            .await
            .unwrap()
    );
    assert!(
        !store
            .remove_retention(&tenant("a"), &Target::All)
            .await
            .unwrap()
    );
    assert_eq!(store.retention().await.unwrap().len(), 1);

    let hold = Hold {
        id: "hold_0123456789ab".into(),
        tenant: tenant("a"),
        scope: HoldScope::Resource {
            kind: "Invoice".into(),
            id: "7:b".into(),
        },
        reason: "case 12".into(),
        placed_by: "key_x".into(),
        placed_at: ts(1_800_000_000_000),
        released_at: None,
    };
    store.add_hold(hold.clone()).await.unwrap();
    assert!(
        store.add_hold(hold.clone()).await.is_err(),
        "hold ids are unique"
    );
    assert_eq!(store.holds().await.unwrap(), vec![hold.clone()]);
    assert!(
        store
            .release_hold(&hold.id, ts(1_800_000_001_000))
            .await
            .unwrap()
    );
    assert!(
        !store
            .release_hold(&hold.id, ts(1_800_000_002_000))
            .await
            .unwrap(),
        "released once"
    );
    let listed = store.holds().await.unwrap();
    assert_eq!(listed[0].released_at, Some(ts(1_800_000_001_000)));
    assert!(!listed[0].in_force());
}

pub async fn settings_change_only_from_the_version_read<H: Harness>(h: &H) {
    let store = h.open();
    assert_eq!(store.setting("alert_rules").await.unwrap(), None);
    let at = ts(1_800_000_000_000);
    assert_eq!(
        store
            .put_setting("alert_rules", "{\"a\":1}".into(), 0, at)
            .await
            .unwrap(),
        1
    );
    let conflict = store
        .put_setting("alert_rules", "{\"a\":2}".into(), 0, at)
        .await
        .unwrap_err();
    assert_eq!(conflict.kind(), crate::ErrorKind::Conflict, "{conflict}");
    assert_eq!(
        store
            .put_setting("alert_rules", "{\"a\":3}".into(), 1, ts(1_800_000_001_000))
            .await
            .unwrap(),
        2
    );
    let stale = store
        .put_setting("alert_rules", "{\"a\":4}".into(), 1, at)
        .await
        .unwrap_err();
    assert_eq!(stale.kind(), crate::ErrorKind::Conflict, "{stale}");
    assert_eq!(
        store.setting("alert_rules").await.unwrap(),
        Some(crate::Setting {
            value: "{\"a\":3}".into(),
            version: 2,
            updated_at: ts(1_800_000_001_000),
        })
    );
    assert_eq!(store.setting("webhooks").await.unwrap(), None, "by name");
    store
        .put_setting("webhooks", "[]".into(), 0, at)
        .await
        .unwrap();
    let listed: Vec<(String, u64)> = store
        .settings()
        .await
        .unwrap()
        .into_iter()
        .map(|(name, s)| (name, s.version))
        .collect();
    assert_eq!(
        listed,
        [("alert_rules".to_owned(), 2), ("webhooks".to_owned(), 1)],
        "every setting, by name"
    );
    drop(store);
    let reopened = h.open();
    assert_eq!(
        reopened
            .setting("alert_rules")
            .await
            .unwrap()
            .map(|s| s.version),
        Some(2),
        "kept across a reopen"
    );
}

/// Values only the entries of actor `u-erase` hold (name, e-mail, client
/// IP, and the tail of the name's word as the search index stores it,
/// lower-cased and prefix-compressed): after their erasure and a scrub, no
/// file of the store may contain any of them.
pub const ERASED_VALUES: [&str; 4] = [
    "zoltan.quimby@example.org",
    "Zoltan Quimbyvertz",
    "203.0.113.77",
    "mbyvertz",
];

/// Event `n` of tenant `acme` for the erasure checks: one in 97 is by actor
/// `u-erase` and holds [`ERASED_VALUES`]; the others hold `Keeper n` and
/// `kept@example.net`.
pub fn erasure_event(n: u64) -> NewEvent {
    let erased = n % 97 == 3;
    let actor = if erased {
        "u-erase".to_owned()
    } else {
        format!("u-{}", n % 11)
    };
    let name = if erased {
        ERASED_VALUES[1].to_owned()
    } else {
        format!("Keeper {n}")
    };
    let event = Event::from_json(&json!({
        "tenant": "acme",
        "actor": {"id": actor, "type": "user", "name": name},
        "action": "customer.update",
        "resource": {"type": "Customer", "id": format!("c{}", n % 13)},
        "changes": {"email": {
            "old": if erased { ERASED_VALUES[0] } else { "kept@example.net" },
            "new": "x@example.net",
        }},
        "context": {"ip": if erased { ERASED_VALUES[2] } else { "198.51.100.1" }},
    }))
    .unwrap();
    prepared(n, event)
}

/// Erases every entry of actor `u-erase` in `acme`, a page of the walk at
/// a time; returns how many.
pub async fn erase_actor<S: Store>(store: &S, actor: &str) -> u64 {
    let tenant = tenant("acme");
    let (mut after, mut erased) = (None, 0);
    loop {
        let page = store
            .walk(&tenant, &Walk::Actor(actor.into()), after, 100)
            .await
            .unwrap();
        let seqs = page.entries.iter().map(|w| w.envelope.seq.get()).collect();
        erased += store
            .erase(&tenant, seqs, Removal::Erased { record: 0 })
            .await
            .unwrap();
        match page.next {
            Some(n) => after = Some(n),
            None => return erased,
        }
    }
}
