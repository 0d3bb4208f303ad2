//! The shared conformance suite against PostgreSQL (a real server:
//! `TRAILMARK_TEST_PG`, default `host=127.0.0.1 port=5432 user=postgres`).
//! Each test gets its own database, dropped afterwards.

#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU32, Ordering};

use trailmark_store::testkit::Harness;
use trailmark_store_postgres::PgStore;

static NEXT: AtomicU32 = AtomicU32::new(0);

pub(crate) fn server() -> String {
    std::env::var("TRAILMARK_TEST_PG")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres".into())
}

/// Runs admin SQL on its own thread and runtime (the harness is built and
/// dropped inside async tests, where blocking on a runtime is not allowed).
pub(crate) fn admin(sql: String) {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(
                &format!("{} dbname=postgres", server()),
                tokio_postgres::NoTls,
            )
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL (set TRAILMARK_TEST_PG): {e}"));
            tokio::spawn(conn);
            client.batch_execute(&sql).await.unwrap();
        });
    })
    .join()
    .unwrap();
}

pub(crate) struct TempPg {
    pub name: String,
}

impl TempPg {
    pub(crate) fn new() -> Self {
        let name = format!(
            "tm_store_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        admin(format!("DROP DATABASE IF EXISTS {name}"));
        // An ICU collation that is not byte order (`a10` before `B7`), so that
        // an order the store means to be byte order is shown to be one
        // whatever the cluster's default collation.
        admin(format!(
            "CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'und' LOCALE 'C.UTF-8'"
        ));
        Self { name }
    }

    pub(crate) fn url(&self) -> String {
        format!("{} dbname={}", server(), self.name)
    }

    /// A plain connection to the test's database, its driver spawned.
    pub(crate) async fn connect(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
    }
}

impl Drop for TempPg {
    fn drop(&mut self) {
        admin(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

impl Harness for TempPg {
    type Store = PgStore;
    fn open(&self) -> PgStore {
        PgStore::new(&self.url(), 8).unwrap()
    }
}

trailmark_store::conformance_suite!(TempPg::new());

/// A count past the read time limit is cancelled by PostgreSQL and named
/// as the caller's to narrow, not a storage failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_past_its_time_limit_is_cancelled_and_named() {
    use trailmark_store::Store;
    let db = TempPg::new();
    let store = PgStore::new(&db.url(), 4).unwrap();
    store.migrate().await.unwrap();
    let bounded = PgStore::new(&db.url(), 2)
        .unwrap()
        .with_read_time_limit(std::time::Duration::from_millis(1));
    trailmark_store::testkit::a_read_past_its_time_limit_asks_to_narrow_it(&store, &bounded).await;
    // Within the default limit the same count answers.
    let everything = trailmark_store::testkit::everything();
    assert_eq!(store.stats(&everything).await.unwrap().total, 20_000);
}

/// Reads that hold every pooled connection hold up neither authentication
/// (key lookups) nor ingest (the committer): those have connections of
/// their own. Another session locks `checkpoints`, so a read of it waits
/// on the read pool's only connection; meanwhile a key is found and a
/// batch is appended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_that_fill_the_pool_hold_up_neither_key_lookups_nor_appends() {
    use std::time::Duration;
    use trailmark_store::Store;
    let db = TempPg::new();
    let store = std::sync::Arc::new(PgStore::new(&db.url(), 1).unwrap());
    store.migrate().await.unwrap();
    let key = trailmark_store::KeyRecord {
        id: "tmk_0000beef".into(),
        digest: [7; 32],
        name: "reader".into(),
        scopes: trailmark_store::Scopes::ALL,
        tenant: None,
        created_at: trailmark_core::Timestamp::EPOCH,
        revoked_at: None,
    };
    store.create_key(key).await.unwrap();

    let locker = db.connect().await;
    locker
        .batch_execute("BEGIN; LOCK TABLE trailmark_ledger.checkpoints IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let tenant = trailmark_core::TenantId::new("t").unwrap();
    let blocked = {
        let (store, tenant) = (std::sync::Arc::clone(&store), tenant.clone());
        tokio::spawn(async move { store.latest_checkpoint(&tenant).await })
    };
    // The read holds the pool's only connection once it waits on the lock.
    let mut waiting = false;
    for _ in 0..100 {
        let rows = locker
            .query(
                "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
                &[],
            )
            .await
            .unwrap();
        if !rows.is_empty() {
            waiting = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(waiting, "the read never waited on the lock");

    let found = tokio::time::timeout(Duration::from_secs(5), store.key_by_digest([7; 32]))
        .await
        .expect("a key lookup waited behind a read")
        .unwrap();
    assert_eq!(found.unwrap().name, "reader");
    let batch = (0..10)
        .map(|n| trailmark_store::testkit::new_event("t", n, "update"))
        .collect();
    let appended = tokio::time::timeout(Duration::from_secs(5), store.append(batch))
        .await
        .expect("an append waited behind a read")
        .unwrap();
    assert_eq!(appended.len(), 10);

    locker.batch_execute("COMMIT").await.unwrap();
    assert_eq!(blocked.await.unwrap().unwrap(), None);
}

/// A ledger made at schema version 5 (before the `request_id` column and
/// the payload partitions), rebuilt here row for row from one this build
/// wrote: a server migrating it gives each entry its request id from its
/// payload, moves the payloads into their partitions, and rewrites the
/// entries table so the payload bytes leave its files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_from_schema_version_5_is_migrated_with_its_payloads() {
    use trailmark_store::Store;
    let db = TempPg::new();
    {
        let store = PgStore::new(&db.url(), 2).unwrap();
        let batch = (0..20)
            .map(|n| trailmark_store::testkit::new_event("a", n, "update"))
            .collect();
        store.append(batch).await.unwrap();
    }
    let client = db.connect().await;
    client
        .batch_execute(
            "CREATE TABLE public.old_entries AS
               SELECT e.tenant, e.seq, e.id, e.occurred_at, e.actor_id, e.action, e.resource_type,
                      e.resource_id, e.outcome, e.envelope, e.leaf_hash, p.payload, p.salt, p.ip,
                      p.search
               FROM trailmark_ledger.entries e JOIN trailmark_ledger.payloads p ON p.pos = e.pos;
             CREATE TABLE public.old_nodes AS SELECT * FROM trailmark_ledger.nodes;
             CREATE TABLE public.old_tenants AS SELECT * FROM trailmark_ledger.tenants;
             DROP SCHEMA trailmark_ledger CASCADE;",
        )
        .await
        .unwrap();
    let old = [
        include_str!("../../migrations/0001_init.sql"),
        include_str!("../../migrations/0002_entries_by_id.sql"),
        include_str!("../../migrations/0003_signing_keys.sql"),
        include_str!("../../migrations/0004_cosignatures.sql"),
        include_str!("../../migrations/0005_read_paths.sql"),
    ];
    let mut script = "CREATE SCHEMA trailmark_ledger;
        CREATE TABLE trailmark_ledger.migrations (
            version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());"
        .to_owned();
    for (n, sql) in old.iter().enumerate() {
        script.push_str(sql);
        let _ = writeln!(
            script,
            "\nINSERT INTO trailmark_ledger.migrations (version) VALUES ({});",
            n + 1
        );
    }
    script.push_str(
        "INSERT INTO trailmark_ledger.entries (tenant, seq, id, occurred_at, actor_id, action,
             resource_type, resource_id, outcome, envelope, leaf_hash, payload, salt, ip, search)
         SELECT * FROM public.old_entries ORDER BY tenant, seq;
         INSERT INTO trailmark_ledger.nodes SELECT * FROM public.old_nodes;
         INSERT INTO trailmark_ledger.tenants SELECT * FROM public.old_tenants;
         DROP TABLE public.old_entries, public.old_nodes, public.old_tenants;",
    );
    client.batch_execute(&script).await.unwrap();
    assert!(
        !holding(&ledger_files(&client).await, "person 13").is_empty(),
        "the old entries table holds the payloads to begin with"
    );
    let store = PgStore::new(&db.url(), 2).unwrap();
    trailmark_store::testkit::entries_from_before_a_migration_have_their_derived_columns(
        &store, "a", 20,
    )
    .await;
    let t = trailmark_core::TenantId::new("a").unwrap();
    let entries = store.entries(&t, 0, 20).await.unwrap();
    assert!(
        entries
            .iter()
            .all(|e| e.payload.is_some() && e.salt.is_some()),
        "every payload moved"
    );
    let holders = holding(&ledger_files(&client).await, "person 13");
    assert!(
        !holders.is_empty() && holders.iter().all(|n| n.starts_with("payloads_")),
        "the payload is in its partition and no longer in the entries table: {holders:?}"
    );
    let tasks: i64 = client
        .query_one("SELECT count(*) FROM trailmark_ledger.maintenance", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(tasks, 0, "the rewrite ran once and is recorded done");
}

/// The bytes of every file of the ledger's tables, their indexes and TOAST
/// tables, read through the server (`pg_read_binary_file`, superuser), after
/// a CHECKPOINT has written the shared buffers out.
async fn ledger_files(client: &tokio_postgres::Client) -> Vec<(String, Vec<u8>)> {
    client.batch_execute("CHECKPOINT").await.unwrap();
    let rows = client
        .query(
            "SELECT c.relname, pg_relation_filepath(c.oid) FROM pg_class c
             WHERE c.relfilenode <> 0 AND (
               c.relnamespace = 'trailmark_ledger'::regnamespace
               OR c.oid IN (SELECT reltoastrelid FROM pg_class
                            WHERE relnamespace = 'trailmark_ledger'::regnamespace)
               OR c.oid IN (SELECT i.indexrelid FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
                            WHERE t.relnamespace = 'pg_toast'::regnamespace AND t.oid IN (
                              SELECT reltoastrelid FROM pg_class
                              WHERE relnamespace = 'trailmark_ledger'::regnamespace)))",
            &[],
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    for row in rows {
        let (name, path): (String, String) = (row.get(0), row.get(1));
        let bytes: Vec<u8> = client
            .query_one("SELECT pg_read_binary_file($1)", &[&path])
            .await
            .unwrap()
            .get(0);
        out.push((name, bytes));
    }
    out
}

fn holding(files: &[(String, Vec<u8>)], needle: &str) -> Vec<String> {
    files
        .iter()
        .filter(|(_, b)| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
        .map(|(n, _)| n.clone())
        .collect()
}

/// After erasure and the scrub (VACUUM), the erased values are in no
/// file of the ledger's tables, indexes or TOAST (dead tuples included).
/// They are first checked to be there, so the check can fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_payload_survives_in_no_relation_file_after_the_scrub() {
    use trailmark_store::Store;
    use trailmark_store::testkit::{ERASED_VALUES, erase_actor, erasure_event};
    let db = TempPg::new();
    let store = PgStore::new(&db.url(), 4).unwrap();
    for batch in 0..40u64 {
        let events = (0..50u64).map(|i| erasure_event(batch * 50 + i)).collect();
        store.append(events).await.unwrap();
    }
    let client = db.connect().await;
    let files = ledger_files(&client).await;
    for needle in &ERASED_VALUES[..3] {
        assert!(
            !holding(&files, needle).is_empty(),
            "{needle} is stored to begin with"
        );
    }
    let erased = erase_actor(&store, "u-erase").await;
    assert_eq!(erased, (0..2000u64).filter(|n| n % 97 == 3).count() as u64);
    store.scrub().await.unwrap();
    let files = ledger_files(&client).await;
    for needle in &ERASED_VALUES[..3] {
        assert_eq!(
            holding(&files, needle),
            Vec::<String>::new(),
            "{needle} is gone"
        );
    }
    assert!(
        !holding(&files, "kept@example.net").is_empty(),
        "other payloads stay"
    );
}

/// Retention by age drops partitions: once every payload of a span that
/// has ended is removed, the scrub drops its partition whole, while the
/// current span's partition, holding kept payloads too, loses only the
/// removed ones. Entries, the tree and search by envelope words stay; an
/// entry received in the dropped span later gets a partition again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrub_drops_a_partition_whose_payloads_are_all_removed() {
    use trailmark_store::testkit::new_event;
    use trailmark_store::{Query, Removal, Store};
    let db = TempPg::new();
    let store = PgStore::new(&db.url(), 4).unwrap();
    let day = 86_400_000;
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let at = |millis: i64| trailmark_core::Timestamp::from_unix_millis(millis).unwrap();
    let old: Vec<_> = (0..10)
        .map(|n| {
            let mut e = new_event("a", n, "update");
            e.received_at = at(now - 60 * day);
            e
        })
        .collect();
    store.append(old).await.unwrap();
    let recent: Vec<_> = (10..20)
        .map(|n| {
            let mut e = new_event("a", n, "update");
            e.received_at = at(now);
            e
        })
        .collect();
    store.append(recent).await.unwrap();
    let client = db.connect().await;
    let partitions = || async {
        client
            .query(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = 'trailmark_ledger.payloads'::regclass ORDER BY 1",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    };
    let before = partitions().await;
    assert_eq!(before.len(), 2, "{before:?}");
    let t = trailmark_core::TenantId::new("a").unwrap();
    let expired = Removal::Expired { record: 1 };
    assert_eq!(
        store.erase(&t, (0..10).collect(), expired).await.unwrap(),
        10
    );
    let erased = Removal::Erased { record: 2 };
    assert_eq!(store.erase(&t, vec![12, 13], erased).await.unwrap(), 2);
    store.scrub().await.unwrap();
    assert_eq!(
        partitions().await,
        vec![before[1].clone()],
        "the old span's partition is dropped, the current one stays"
    );
    let kept: i64 = client
        .query_one("SELECT count(*) FROM trailmark_ledger.payloads", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        kept, 8,
        "the current partition lost only the erased payloads"
    );
    let entries = store.entries(&t, 0, 20).await.unwrap();
    assert_eq!(entries.len(), 20, "every entry stays");
    assert!(entries[..10].iter().all(|e| e.removed == Some(expired)));
    assert!(entries[12].removed == Some(erased) && entries[14].payload.is_some());
    let by_actor = Query {
        q: Some(entries[3].columns.actor_id.clone()),
        limit: 100,
        ..Query::default()
    };
    let found = store.query(&by_actor).await.unwrap().entries;
    assert!(
        found.iter().any(|e| e.columns.seq == 3),
        "an expired entry is still found by its envelope's words"
    );
    // The store remembered the dropped span's partition: the append finds
    // it gone and makes it again.
    let mut late = new_event("a", 20, "update");
    late.received_at = at(now - 60 * day);
    store.append(vec![late]).await.unwrap();
    assert_eq!(partitions().await.len(), 2);
    assert!(
        store.entries(&t, 20, 21).await.unwrap()[0]
            .payload
            .is_some()
    );
}

/// One removal at a time across servers: a second store on the same
/// ledger waits while the first holds the removal lock, gets it once that
/// is dropped, and a wait given up leaves no lock behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_removal_lock_holds_off_another_server_sharing_the_ledger() {
    use std::time::Duration;
    use trailmark_store::Store;
    let db = TempPg::new();
    let a = PgStore::new(&db.url(), 2).unwrap();
    let b = PgStore::new(&db.url(), 2).unwrap();
    let held = a.removal_lock().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), b.removal_lock())
            .await
            .is_err(),
        "the second server waits"
    );
    let waiting = tokio::spawn(async move { b.removal_lock().await.map(drop) });
    drop(held);
    tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the second server gets the lock once the first lets go")
        .unwrap()
        .unwrap();
    let client = db.connect().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let held: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
                 WHERE l.locktype = 'advisory' AND d.datname = current_database()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if held == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{held} advisory lock(s) left behind"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether event `e` is one of `q`'s: its tenants (all when none) and window.
fn within(e: &trailmark_store::NewEvent, q: &trailmark_store::Query) -> bool {
    let at = e.event.occurred_at.unwrap();
    (q.tenants.is_empty() || q.tenants.contains(e.event.tenant.as_ref().unwrap()))
        && q.since.is_none_or(|s| at >= s)
        && q.until.is_none_or(|u| at < u)
}

/// What `stats` must answer for `events` (of any tenants) under `q`'s
/// tenants and window, counted here one by one.
fn stats_of(
    events: &[trailmark_store::NewEvent],
    q: &trailmark_store::Query,
) -> trailmark_store::Stats {
    use std::collections::BTreeMap;
    let mut lists: [BTreeMap<String, u64>; 5] = Default::default();
    for e in events.iter().filter(|e| within(e, q)) {
        let ev = &e.event;
        let at = ev.occurred_at.unwrap();
        let mut add = |i: usize, key: String| *lists[i].entry(key).or_default() += 1;
        add(0, ev.outcome.as_str().to_owned());
        add(1, ev.action.clone());
        add(2, ev.actor.id.clone());
        if let Some(r) = &ev.resource {
            add(3, r.kind.clone());
        }
        add(4, at.date_string());
    }
    trailmark_store::Stats::from_lists(lists.map(|l| l.into_iter().collect()))
}

/// What `daily_counts` must answer for `events` under `q` by `by`: (day,
/// value, count) by day, then value.
fn daily_of(
    events: &[trailmark_store::NewEvent],
    q: &trailmark_store::Query,
    by: trailmark_store::CountBy,
) -> Vec<(String, String, u64)> {
    let mut counts = std::collections::BTreeMap::<(String, String), u64>::new();
    for e in events.iter().filter(|e| within(e, q)) {
        let ev = &e.event;
        let at = ev.occurred_at.unwrap();
        let value = match by {
            trailmark_store::CountBy::Action => ev.action.clone(),
            trailmark_store::CountBy::Outcome => ev.outcome.as_str().to_owned(),
        };
        *counts.entry((at.date_string(), value)).or_default() += 1;
    }
    counts.into_iter().map(|((d, v), n)| (d, v, n)).collect()
}

/// How many entries the hourly counts do not hold yet.
async fn uncounted(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one(
            "SELECT sum(t.size - coalesce(k.seq, 0))::int8 FROM trailmark_ledger.tenants t
             LEFT JOIN trailmark_ledger.counted k ON k.tenant = t.name",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// Stats and daily counts over a window with whole hours read the hourly
/// counts for the entries counted and the entries themselves for the rest
/// (the partial hours, and what is not counted yet): the same answers with
/// nothing counted, part counted, all counted and more appended after, for
/// windows on and off the hour, one tenant or all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_answer_the_same_whether_their_hours_are_counted_or_not() {
    counted_or_not(trailmark_store_postgres::UNCOUNTED_MAX).await;
}

/// The same when a read leaves counts too far behind aside (here past 100
/// entries not counted) and counts its window's entries instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_answer_the_same_when_their_counts_are_too_far_behind_to_use() {
    counted_or_not(100).await;
}

async fn counted_or_not(uncounted_max: u64) {
    use trailmark_core::{TenantId, Timestamp};
    use trailmark_store::testkit::new_event;
    use trailmark_store::{CountBy, Query, Store};
    const HOUR: i64 = 3_600_000;
    // 2023-11-14 21:00 UTC: the entries run over five hours into the next day.
    let start = 1_699_995_600_000;
    let ts = |ms: i64| Timestamp::from_unix_millis(ms).unwrap();
    let event = |n: u64| {
        let tenant = if n.is_multiple_of(3) { "b" } else { "a" };
        let action = ["update", "create", "delete", "export"][(n % 4) as usize];
        let mut e = new_event(tenant, n, action);
        // 53 minutes apart, give or take: every hour has entries.
        e.event.occurred_at = Some(ts(start + i64::try_from(n).unwrap() * 3_180_007 / 60));
        if n.is_multiple_of(7) {
            e.event.resource = None;
        }
        e
    };
    let db = TempPg::new();
    let store = db.open().with_uncounted_max(uncounted_max);
    let tenant = |t: &str| TenantId::new(t).unwrap();
    let window = |since: Option<i64>, until: Option<i64>, tenants: &[&str]| Query {
        tenants: tenants.iter().map(|t| tenant(t)).collect(),
        since: since.map(ts),
        until: until.map(ts),
        ..Query::default()
    };
    let queries = [
        window(None, None, &[]),
        window(None, None, &["a"]),
        window(None, None, &["a", "b"]),
        // On the hour at both ends, off it at both ends, one of each.
        window(Some(start + HOUR), Some(start + 4 * HOUR), &["a"]),
        window(Some(start + HOUR + 61_000), Some(start + 4 * HOUR - 1), &[]),
        window(Some(start + 30 * 60_000), None, &["b"]),
        window(None, Some(start + 3 * HOUR + 17), &["a"]),
        // Within one hour: no whole hour to count.
        window(
            Some(start + 2 * HOUR + 5),
            Some(start + 3 * HOUR - 5),
            &["a"],
        ),
    ];
    let client = db.connect().await;
    let check = |events: Vec<trailmark_store::NewEvent>, when: &'static str| {
        let store = &store;
        let queries = &queries;
        async move {
            for q in queries {
                assert_eq!(
                    store.stats(q).await.unwrap(),
                    stats_of(&events, q),
                    "{when}: {q:?}"
                );
                for by in [CountBy::Action, CountBy::Outcome] {
                    assert_eq!(
                        store.daily_counts(q, by).await.unwrap(),
                        daily_of(&events, q, by),
                        "{when}, daily by {by:?}: {q:?}"
                    );
                }
            }
        }
    };
    // Nothing counted: the counting task waits on the lock held here.
    let mut events: Vec<_> = (0..300).map(event).collect();
    store.migrate().await.unwrap();
    client
        .batch_execute("BEGIN; LOCK trailmark_ledger.counted IN EXCLUSIVE MODE")
        .await
        .unwrap();
    store.append(events.clone()).await.unwrap();
    let counted: i64 = client
        .query_one("SELECT count(*) FROM trailmark_ledger.hour_counts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(counted, 0);
    check(events.clone(), "nothing counted").await;
    client.batch_execute("COMMIT").await.unwrap();
    // Part counted, then all.
    store.count_hours(70).await.unwrap();
    check(events.clone(), "part counted").await;
    while store.count_hours(1_000).await.unwrap() > 0 {}
    assert_eq!(uncounted(&client).await, 0);
    check(events.clone(), "all counted").await;
    // More in the same hours, some counted by the task, some not yet.
    let more: Vec<_> = (300..420).map(event).collect();
    store.append(more.clone()).await.unwrap();
    events.extend(more);
    check(events.clone(), "more appended").await;
    // The task counts them without being asked, and says so where
    // /metrics reads it.
    counted_by_the_task(&store, &client, 420).await;
    check(events, "counted by the task").await;
}

/// Waits (20 s at most) until the store's counting task has counted all
/// `entries` and its progress (`Store::indexer`, what /metrics shows) says so.
async fn counted_by_the_task(store: &PgStore, client: &tokio_postgres::Client, entries: u64) {
    use trailmark_store::Store;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let behind = uncounted(client).await;
        let shown = store.indexer();
        if behind == 0
            && shown
                .is_some_and(|s| s.lag_entries == 0 && s.written == entries && s.indexed == entries)
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{behind} entries left uncounted; progress shown: {shown:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Two servers counting the same ledger at once (each its own store, as
/// two `serve` processes) count every entry once: the outcome list, which
/// counts every entry, sums to the entries stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_counting_at_once_count_each_entry_once() {
    use trailmark_store::Store;
    use trailmark_store::testkit::new_event;
    let db = TempPg::new();
    let a = PgStore::new(&db.url(), 4).unwrap();
    let b = PgStore::new(&db.url(), 4).unwrap();
    a.migrate().await.unwrap();
    let client = db.connect().await;
    // Appended with the counting held off, so that the two below race over
    // all of it.
    client
        .batch_execute("BEGIN; LOCK trailmark_ledger.counted IN EXCLUSIVE MODE")
        .await
        .unwrap();
    for tenant in ["a", "b", "c"] {
        let batch = (0..1_000).map(|n| new_event(tenant, n, "update")).collect();
        a.append(batch).await.unwrap();
    }
    client.batch_execute("COMMIT").await.unwrap();
    let counting =
        |store: PgStore| async move { while store.count_hours(37).await.unwrap() > 0 {} };
    let (x, y) = tokio::join!(tokio::spawn(counting(a)), tokio::spawn(counting(b)));
    x.unwrap();
    y.unwrap();
    assert_eq!(uncounted(&client).await, 0);
    let sums: Vec<(String, i64)> = client
        .query(
            "SELECT tenant, sum(n)::int8 FROM trailmark_ledger.hour_counts WHERE list = 0
             GROUP BY tenant ORDER BY tenant",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        sums,
        [
            ("a".to_owned(), 1_000),
            ("b".to_owned(), 1_000),
            ("c".to_owned(), 1_000)
        ]
    );
}

/// A failure of the database is logged with what PostgreSQL said
/// (`tokio-postgres`'s own text is only "db error"), and a client is told
/// only what the store was doing.
#[tokio::test]
async fn the_log_is_told_what_postgresql_said() {
    let missing = format!("tm_store_absent_{}", std::process::id());
    let store = PgStore::new(&format!("{} dbname={missing}", server()), 1).unwrap();
    let e = store.migrate().await.unwrap_err();
    let said = format!("database \"{missing}\" does not exist");
    assert!(e.with_causes().contains(&said), "{}", e.with_causes());
    assert!(!e.to_string().contains(&said), "{e}");
}

/// With `synchronous_commit = off` set for the ledger's database (or its
/// role, or in the connection string), a commit returns before PostgreSQL
/// has it on disk: a crash of the database would lose appends already
/// acknowledged. The store's sessions set it `on`; a value that waits for
/// the disk at least (`remote_apply` here) is kept; a read-only store
/// (evidence, never written) is left as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_commit_durably_where_the_database_sets_synchronous_commit_off() {
    let db = TempPg::new();
    admin(format!(
        "ALTER DATABASE {} SET synchronous_commit = off",
        db.name
    ));
    let plain = db.connect().await;
    let said: String = plain
        .query_one("SHOW synchronous_commit", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(said, "off", "the database's own sessions");
    let store = PgStore::new(&db.url(), 4).unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.synchronous_commit().await.unwrap(), "on");
    let in_url = PgStore::new(
        &format!("{} options='-c synchronous_commit=off'", db.url()),
        4,
    )
    .unwrap();
    assert_eq!(in_url.synchronous_commit().await.unwrap(), "on");
    let stronger = PgStore::new(
        &format!("{} options='-c synchronous_commit=remote_apply'", db.url()),
        4,
    )
    .unwrap();
    assert_eq!(stronger.synchronous_commit().await.unwrap(), "remote_apply");
    let evidence = PgStore::new_read_only(&db.url(), 2).unwrap();
    assert_eq!(evidence.synchronous_commit().await.unwrap(), "off");
}
