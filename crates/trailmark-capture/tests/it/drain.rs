//! The drainer against the real PostgreSQL: wake-ups, order, one active
//! drainer at a time, takeover.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use trailmark_capture::{DrainOptions, TableSpec, drain, install, status};

use crate::{Collect, TestDb, drained_once, eventually};

async fn covered(db: &mut TestDb) {
    db.client
        .batch_execute(
            "CREATE TABLE public.a (id int PRIMARY KEY, n int);
             CREATE TABLE public.b (id int PRIMARY KEY, n int)",
        )
        .await
        .unwrap();
    install_ab(db).await;
}

/// Installs capture of `a` and `b` (again, on an earlier install: an upgrade).
async fn install_ab(db: &mut TestDb) {
    install(
        &mut db.client,
        &[
            TableSpec::parse("public.a").unwrap(),
            TableSpec::parse("public.b").unwrap(),
        ],
        None,
    )
    .await
    .unwrap();
}

fn forever(name: &str) -> DrainOptions {
    DrainOptions {
        // A long poll: only NOTIFY can wake the drainer in time.
        poll: Duration::from_secs(60),
        name: name.into(),
        batch: 50,
        ..DrainOptions::default()
    }
}

fn outbox_ids(events: &[Value], table: &str) -> Vec<i64> {
    events
        .iter()
        .filter(|e| e["resource"]["type"] == table)
        .map(|e| e["metadata"]["outbox_id"].as_i64().unwrap())
        .collect()
}

async fn depth(db: &TestDb) -> i64 {
    status(&db.client).await.unwrap().outbox_depth
}

/// Drainer `one`, draining `db` into a new [`Collect`] for ever, once it
/// holds the drain lock (the outbox empty, it waits for a notification).
async fn waiting_drainer(
    db: &TestDb,
) -> (
    Arc<Collect>,
    tokio::task::JoinHandle<Result<u64, trailmark_capture::Error>>,
) {
    let sink = Arc::new(Collect::default());
    let (url, s) = (db.url(), Arc::clone(&sink));
    let task = tokio::spawn(async move { drain(&url, &*s, &forever("one"), &|_| {}).await });
    eventually(10, "the drainer takes the lock", || async {
        lock_holders(db).await.len() == 1
    })
    .await;
    (sink, task)
}

/// The sessions holding an advisory lock in this test's database (tests
/// running beside it on the same server hold advisory locks of their own).
async fn lock_holders(db: &TestDb) -> Vec<i32> {
    db.client
        .query(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Stops `active`, the drainer holding the lock, and waits until its
/// session has ended on the server.
///
/// A standby polling only every 60 s (as here) takes over when the next
/// notification finds the lock free. The holder's session ends a moment
/// after its task stops (its connection closes, then the server lets the
/// backend go); a write committed before that wakes the standby to a lock
/// still held, and it looks again at its poll (one second by default, the
/// promise in docs/CAPTURE.md), which these tests set past their deadlines.
async fn stop_the_lock_holder(
    db: &TestDb,
    active: tokio::task::JoinHandle<Result<u64, trailmark_capture::Error>>,
) {
    let holder = lock_holders(db).await;
    assert_eq!(holder.len(), 1, "one drainer holds the lock: {holder:?}");
    active.abort();
    let _ = active.await;
    eventually(10, "the stopped drainer's session ends", || async {
        db.client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
                &[&holder[0]],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
            == 0
    })
    .await;
}

#[tokio::test]
async fn a_waiting_drainer_is_woken_by_notify_not_by_its_poll() {
    let mut db = TestDb::new().await;
    covered(&mut db).await;
    // Let it reach its wait first: the outbox is empty.
    let (sink, task) = waiting_drainer(&db).await;
    db.client
        .batch_execute("INSERT INTO a VALUES (1, 1)")
        .await
        .unwrap();
    eventually(
        10,
        "the insert is drained well before the 60 s poll",
        || async { sink.0.lock().unwrap().len() == 1 },
    )
    .await;
    // The row leaves the outbox once the ledger acknowledged it, just
    // after the sink has it (seen late under load: polled, not assumed).
    eventually(10, "the drained row leaves the outbox", || async {
        depth(&db).await == 0
    })
    .await;
    let s = status(&db.client).await.unwrap();
    let (last, total, _, by) = s.last_drained.unwrap();
    assert_eq!((total, by.as_str()), (1, "one"));
    assert!(last > 0);
    task.abort();
}

#[tokio::test]
async fn a_stream_of_small_transactions_is_drained_in_one_batch_a_linger() {
    let mut db = TestDb::new().await;
    covered(&mut db).await;
    let (sink, task) = waiting_drainer(&db).await;
    let started = std::time::Instant::now();
    // Forty transactions of a row each, each committed (and notified) alone.
    for n in 0..40 {
        db.client
            .execute("INSERT INTO a VALUES ($1, $1)", &[&n])
            .await
            .unwrap();
    }
    eventually(10, "the forty rows are drained", || async {
        sink.0.lock().unwrap().len() == 40
    })
    .await;
    let took = started.elapsed();
    let batches = sink.1.lock().unwrap().len();
    // No batch is full (50 rows): each read after one that found less than
    // a batch waits until LINGER after that one began. Without the wait,
    // each commit's notification would wake a read of its own.
    let most = took.as_millis() / trailmark_capture::LINGER.as_millis() + 1;
    assert!(
        batches as u128 <= most,
        "{batches} batches for 40 transactions in {took:?}: more than one a {:?}",
        trailmark_capture::LINGER
    );
    task.abort();
}

#[tokio::test]
async fn two_drainers_never_duplicate_or_reorder_and_a_standby_takes_over() {
    let mut db = TestDb::new().await;
    covered(&mut db).await;
    let sink = Arc::new(Collect::default());
    let spawn = |name: &'static str| {
        let (url, s) = (db.url(), Arc::clone(&sink));
        tokio::spawn(async move { drain(&url, &*s, &forever(name), &|_| {}).await })
    };
    let first = spawn("first");
    let second = spawn("second");
    // Writers on both tables, many small transactions, while both drainers run.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let url = db.url();
            tokio::spawn(async move {
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                for i in 0..100 {
                    let id = w * 1000 + i;
                    client
                        .batch_execute(&format!(
                            "BEGIN; INSERT INTO a VALUES ({id}, 0); UPDATE a SET n = n + 1 WHERE id = {id};
                             INSERT INTO b VALUES ({id}, 0); COMMIT;"
                        ))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    eventually(30, "all 1200 changes drained", || async {
        sink.0.lock().unwrap().len() >= 1200 && depth(&db).await == 0
    })
    .await;
    // Both still run (one draining, one standing by): a drainer that
    // stopped on an error would leave no standby to take over.
    for task in [&first, &second] {
        assert!(!task.is_finished(), "a drainer stopped before its time");
    }
    // Stop whichever drains; the other must take over.
    let by: String = status(&db.client).await.unwrap().last_drained.unwrap().3;
    let (active, standby) = if by == "first" {
        (first, second)
    } else {
        (second, first)
    };
    stop_the_lock_holder(&db, active).await;
    db.client
        .batch_execute("INSERT INTO a SELECT g, 0 FROM generate_series(5000, 5099) g")
        .await
        .unwrap();
    eventually(30, "the standby drains the rest", || async {
        depth(&db).await == 0 && sink.0.lock().unwrap().len() >= 1300
    })
    .await;
    let events = sink.0.lock().unwrap().clone();
    assert_eq!(events.len(), 1300, "nothing sent twice");
    let mut ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 1300);
    // Each record's changes arrive in the order they were made. (Changes
    // to different records by concurrent transactions arrive as they
    // commit, which need not be the order their outbox ids were taken in.)
    for table in ["public.a", "public.b"] {
        let mut by_record: std::collections::HashMap<String, Vec<i64>> =
            std::collections::HashMap::new();
        for e in events.iter().filter(|e| e["resource"]["type"] == table) {
            by_record
                .entry(e["resource"]["id"].as_str().unwrap().to_owned())
                .or_default()
                .push(e["metadata"]["outbox_id"].as_i64().unwrap());
        }
        for (record, order) in by_record {
            assert!(order.is_sorted(), "{table} {record}: {order:?}");
        }
        assert!(!outbox_ids(&events, table).is_empty());
    }
    // Each record's create comes before its update.
    for e in events.iter().filter(|e| e["action"] == "update") {
        let id = &e["resource"]["id"];
        let created = events
            .iter()
            .position(|c| {
                c["action"] == "create"
                    && &c["resource"]["id"] == id
                    && c["resource"]["type"] == "public.a"
            })
            .unwrap();
        let updated = events.iter().position(|u| u == e).unwrap();
        assert!(created < updated);
    }
    let by_now = status(&db.client).await.unwrap().last_drained.unwrap().3;
    assert_ne!(by_now, by, "the standby took over");
    standby.abort();
}

#[tokio::test]
async fn once_returns_when_the_outbox_is_empty() {
    let mut db = TestDb::new().await;
    covered(&mut db).await;
    db.client
        .batch_execute("INSERT INTO b SELECT g, g FROM generate_series(1, 120) g")
        .await
        .unwrap();
    let sink = Collect::default();
    let options = DrainOptions {
        once: true,
        batch: 50,
        ..DrainOptions::default()
    };
    let moved = drain(&db.url(), &sink, &options, &|_| {}).await.unwrap();
    assert_eq!(moved, 120);
    assert_eq!(depth(&db).await, 0);
}

/// The ids of `events`, in the order they were sent.
fn event_ids(events: &[Value]) -> Vec<trailmark_core::EventId> {
    events
        .iter()
        .map(|e| trailmark_core::EventId::parse(e["id"].as_str().unwrap()).unwrap())
        .collect()
}

#[tokio::test]
async fn ids_rise_with_the_outbox_and_rows_from_before_an_upgrade_keep_their_earlier_ids() {
    let mut db = TestDb::new().await;
    covered(&mut db).await;
    // Installed from nothing: every change gets an ordered id.
    assert_eq!(
        db.client
            .query_one(
                "SELECT value FROM trailmark.meta WHERE key = 'ids.outbox_from'",
                &[]
            )
            .await
            .unwrap()
            .get::<_, String>(0),
        "0"
    );
    db.client
        .batch_execute("INSERT INTO a SELECT g, g FROM generate_series(1, 120) g")
        .await
        .unwrap();
    let fresh = event_ids(&drained_once(&db, 50).await);
    assert_eq!(fresh.len(), 120);
    assert!(
        fresh.windows(2).all(|p| p[0] < p[1]),
        "ids rise with the outbox: {fresh:?}"
    );

    // An install whose drainers derived ids by digest alone (as before this
    // version), upgraded by running install again while its drainer may
    // still run: what the outbox holds when the first drainer of this
    // version starts keeps the id an earlier drainer gave it (an earlier
    // drainer may have sent it without recording the acknowledgement);
    // later rows rise.
    db.client
        .batch_execute("DELETE FROM trailmark.meta WHERE key LIKE 'ids.%'")
        .await
        .unwrap();
    install_ab(&mut db).await;
    db.client
        .batch_execute("INSERT INTO b SELECT g, g FROM generate_series(1, 30) g")
        .await
        .unwrap();
    let database = db.source_name().await;
    let events = drained_once(&db, 50).await;
    assert_eq!(events.len(), 30);
    for (event, id) in events.iter().zip(event_ids(&events)) {
        let outbox_id = event["metadata"]["outbox_id"].as_i64().unwrap();
        assert_eq!(
            id,
            trailmark_core::EventId::derived(format!("{database}/outbox/{outbox_id}").as_bytes()),
            "the id drainers before this version gave outbox row {outbox_id}"
        );
    }
    db.client
        .batch_execute("INSERT INTO b SELECT g, g FROM generate_series(31, 60) g")
        .await
        .unwrap();
    let later = event_ids(&drained_once(&db, 50).await);
    assert_eq!(later.len(), 30);
    assert!(later.windows(2).all(|p| p[0] < p[1]), "{later:?}");
    assert!(
        later[0] > *fresh.last().unwrap(),
        "later outbox rows, later ids"
    );
}

/// How many times the table options were read (scans of
/// `trailmark.tables`), as PostgreSQL counts them once the sessions that
/// read them have ended and reported.
async fn option_reads(db: &TestDb) -> i64 {
    db.client
        .batch_execute("SELECT pg_stat_clear_snapshot()")
        .await
        .unwrap();
    db.count(
        "SELECT seq_scan + coalesce(idx_scan, 0) FROM pg_stat_user_tables
         WHERE schemaname = 'trailmark' AND relname = 'tables'",
    )
    .await
}

/// Changes of a table capture no longer lists (dropped with changes still
/// in the outbox, then forgotten by an install) are drained named by the
/// table's name with no options, and the options are not read again for
/// each of them: the drainer read every table's options once a row, 2,000
/// readings for 2,000 rows.
#[tokio::test]
async fn rows_of_a_table_no_longer_listed_do_not_read_the_options_each() {
    let mut db = TestDb::new().await;
    db.client
        .batch_execute("CREATE TABLE public.item (id int PRIMARY KEY, n int)")
        .await
        .unwrap();
    install(
        &mut db.client,
        &[TableSpec::parse("public.item").unwrap()],
        None,
    )
    .await
    .unwrap();
    db.client
        .batch_execute(
            "INSERT INTO item SELECT g, g FROM generate_series(1, 2000) g;
             DROP TABLE item;",
        )
        .await
        .unwrap();
    install(&mut db.client, &[], None).await.unwrap();
    let before = option_reads(&db).await;
    let events = drained_once(&db, 5000).await;
    // The rows, and the drop (capture version 15: a truncate).
    assert_eq!(events.len(), 2000 + 1);
    assert!(
        events
            .iter()
            .all(|e| e["resource"]["type"] == "public.item")
    );
    // The drainer's session reports its counts as it ends.
    eventually(10, "the drainer's reads reported", || async {
        option_reads(&db).await > before
    })
    .await;
    let reads = option_reads(&db).await - before;
    assert!(
        reads < 100,
        "{reads} readings of the options for 2,000 rows"
    );
}
