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
use trailmark_core::{Event, EventId, Outcome, Salt, Seq, TenantId, Timestamp};
use trailmark_log::{
    LeafIndex, MemoryTree, Plan, TreeSize, leaf_hash, verify_consistency, verify_inclusion,
};

use crate::{
    CheckpointRecord, Cursor, KeyRecord, NewEvent, Query, Scopes, SigningKeyRecord, Store,
    StoreError,
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
            stored_nodes_give_the_in_memory_tree_roots_and_proofs,
            entries_keep_envelope_payload_and_salt,
            queries_filter_by_every_field,
            paging_is_newest_first_without_gaps_or_repeats_during_ingest,
            free_text_search_finds_words_in_payloads,
            stats_count_by_action_actor_resource_outcome_and_day,
            a_reopened_store_continues_the_same_tree,
            keys_are_found_by_digest_listed_and_revoked,
            checkpoints_are_all_kept,
            stored_columns_are_derived_by_the_one_rule,
            the_first_signing_key_recorded_wins,
            cosignatures_are_kept_once_per_witness_and_checkpoint,
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

/// A valid event for `tenant` with a deterministic id from `n`.
pub fn new_event(tenant_name: &str, n: u64, action: &str) -> NewEvent {
    let event = Event::from_json(&json!({
        "tenant": tenant_name,
        "actor": {"id": format!("user-{}", n % 3), "type": "user", "name": format!("person {n}")},
        "action": action,
        "resource": {"type": "Invoice", "id": format!("{}", n % 5)},
        "outcome": if n.is_multiple_of(4) { "failure" } else { "success" },
        "changes": {"total": {"old": n, "new": n + 1}},
        "context": {"ip": format!("10.0.0.{}", n % 2)},
        "metadata": {"note": format!("word{n} shared")},
        "occurred_at": ts(1_700_000_000_000 + i64::try_from(n).unwrap() * 1000).to_string(),
    }))
    .unwrap();
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

async fn append_range<S: Store>(store: &S, tenant_name: &str, range: std::ops::Range<u64>) {
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

pub async fn stored_nodes_give_the_in_memory_tree_roots_and_proofs<H: Harness>(h: &H) {
    let store = h.open();
    // Batches of odd sizes across the 256-node strip boundary.
    let mut n = 0;
    for size in [1, 2, 100, 153, 1, 300] {
        append_range(&store, "t", n..n + size).await;
        n += size;
    }
    let t = tenant("t");
    let entries = store.entries(&t, 0, n).await.unwrap();
    assert_eq!(entries.len() as u64, n);
    let mut tree = MemoryTree::new();
    for e in &entries {
        assert_eq!(e.leaf_hash, leaf_hash(&e.envelope_bytes));
        tree.push(e.leaf_hash).unwrap();
    }
    for size in [1, 2, 3, 255, 256, 257, 300, 511, 512, 557] {
        let size = TreeSize::new(size).unwrap();
        let plan = Plan::root(size);
        let root = plan
            .assemble(&store.nodes(&t, plan.node_ids()).await.unwrap())
            .unwrap()[0];
        assert_eq!(root, tree.root_at(size).unwrap(), "root at {size}");
        let leaf = LeafIndex::new(size.get() / 2).unwrap();
        let plan = Plan::inclusion(leaf, size).unwrap();
        let proof = plan
            .assemble(&store.nodes(&t, plan.node_ids()).await.unwrap())
            .unwrap();
        verify_inclusion(
            &entries[usize::try_from(leaf.get()).unwrap()].leaf_hash,
            leaf,
            size,
            &proof,
            &root,
        )
        .unwrap();
        let full = TreeSize::new(n).unwrap();
        let plan = Plan::consistency(size, full).unwrap();
        let proof = plan
            .assemble(&store.nodes(&t, plan.node_ids()).await.unwrap())
            .unwrap();
        verify_consistency(size, full, &proof, &root, &tree.root()).unwrap();
    }
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
    let count = |q: Query| {
        let store = &store;
        async move {
            store
                .query(&Query { limit: 1000, ..q })
                .await
                .unwrap()
                .entries
                .len()
        }
    };
    let a = vec![tenant("a")];
    assert_eq!(
        count(Query {
            tenants: a.clone(),
            actor_id: Some("user-1".into()),
            ..Query::default()
        })
        .await,
        13
    );
    assert_eq!(
        count(Query {
            tenants: vec![tenant("b")],
            ..Query::default()
        })
        .await,
        10
    );
    assert_eq!(
        count(Query {
            resource_type: Some("Invoice".into()),
            resource_id: Some("3".into()),
            tenants: a.clone(),
            ..Query::default()
        })
        .await,
        8
    );
    assert_eq!(
        count(Query {
            outcome: Some(Outcome::Failure),
            tenants: a.clone(),
            ..Query::default()
        })
        .await,
        10
    );
    assert_eq!(
        count(Query {
            ip: Some("10.0.0.1".into()),
            tenants: a.clone(),
            ..Query::default()
        })
        .await,
        20
    );
    assert_eq!(
        count(Query {
            action: Some("update".into()),
            tenants: vec![tenant("b")],
            ..Query::default()
        })
        .await,
        10
    );
    let since = Some(ts(1_700_000_000_000 + 10_000));
    let until = Some(ts(1_700_000_000_000 + 20_000));
    assert_eq!(
        count(Query {
            since,
            until,
            tenants: a,
            ..Query::default()
        })
        .await,
        10
    );
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
    let store = h.open();
    append_range(&store, "t", 0..300).await;
    drop(store);
    let store = h.open();
    append_range(&store, "t", 300..301).await;
    let t = tenant("t");
    let entries = store.entries(&t, 0, 1000).await.unwrap();
    assert_eq!(entries.len(), 301);
    let mut tree = MemoryTree::new();
    for e in &entries {
        tree.push(leaf_hash(&e.envelope_bytes)).unwrap();
    }
    let size = TreeSize::new(301).unwrap();
    let plan = Plan::root(size);
    let root = plan
        .assemble(&store.nodes(&t, plan.node_ids()).await.unwrap())
        .unwrap()[0];
    assert_eq!(root, tree.root());
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
    assert_eq!(stats.by_resource_type, [("Invoice".to_owned(), 12)]);
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
        .stats(&Query {
            outcome: Some(Outcome::Failure),
            ..Query::default()
        })
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
        store.cosignatures(&t, None).await.unwrap(),
        [
            (3, "— w1 D".to_owned()),
            (5, "— w1 A".to_owned()),
            (5, "— w2 C".to_owned())
        ]
    );
    assert_eq!(
        store.cosignatures(&t, Some(5)).await.unwrap(),
        [(5, "— w1 A".to_owned()), (5, "— w2 C".to_owned())]
    );
    assert!(store.cosignatures(&t, Some(4)).await.unwrap().is_empty());
}
