//! What the triggers put in the outbox.

use serde_json::{Value, json};
use trailmark_capture::{Error, TableSpec, install, status, uninstall};

use crate::TestDb;

fn table(name: &str) -> TableSpec {
    TableSpec::parse(name).unwrap()
}

async fn outbox(db: &TestDb) -> Vec<(String, i32, Option<Value>, Option<Value>, Value, String)> {
    db.client
        .query(
            "SELECT op, stmt, old_row, new_row, context, db_role FROM trailmark.outbox ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect()
}

async fn customers(db: &mut TestDb, exclude: &[&str]) {
    db.client
        .batch_execute("CREATE TABLE public.customer (id int PRIMARY KEY, name text, price numeric, password text)")
        .await
        .unwrap();
    let mut spec = table("public.customer");
    spec.exclude = exclude.iter().map(|s| (*s).to_owned()).collect();
    install(&mut db.client, &[spec], None).await.unwrap();
}

#[tokio::test]
async fn bulk_update_of_10k_rows_yields_10k_rows_with_the_request_actor() {
    let mut db = TestDb::new().await;
    customers(&mut db, &[]).await;
    db.client
        .batch_execute(
            "BEGIN;
             SELECT set_config('trailmark.actor_id', '42', true), set_config('trailmark.actor_type', 'user', true),
                    set_config('trailmark.actor_name', 'alice@example.com', true), set_config('trailmark.ip', '203.0.113.7', true),
                    set_config('trailmark.request_id', 'r-8812', true), set_config('trailmark.tenant', 'acme', true);
             INSERT INTO customer SELECT g, 'c' || g, 10, 'pw' FROM generate_series(1, 10000) g;
             UPDATE customer SET price = price + 1;
             COMMIT;",
        )
        .await
        .unwrap();
    let rows = outbox(&db).await;
    assert_eq!(rows.len(), 20_000);
    let (inserts, updates): (Vec<_>, Vec<_>) = rows.iter().partition(|r| r.0 == "insert");
    assert_eq!((inserts.len(), updates.len()), (10_000, 10_000));
    assert!(
        inserts.iter().all(|r| r.1 == 1) && updates.iter().all(|r| r.1 == 2),
        "one statement number per statement"
    );
    let ctx = json!({"actor_id": "42", "actor_type": "user", "actor_name": "alice@example.com",
                     "ip": "203.0.113.7", "request_id": "r-8812", "tenant": "acme"});
    assert!(rows.iter().all(|r| r.4 == ctx), "{:?}", rows[0].4);
    let u = &updates[0];
    assert_eq!(u.2.as_ref().unwrap()["id"], u.3.as_ref().unwrap()["id"]);
    assert_eq!(u.3.as_ref().unwrap()["price"].as_f64(), Some(11.0));
}

#[tokio::test]
async fn writes_without_context_are_captured_with_no_actor_and_the_database_role() {
    let mut db = TestDb::new().await;
    customers(&mut db, &[]).await;
    // Autocommit, raw SQL, no set_config: still captured.
    db.client
        .batch_execute("INSERT INTO customer VALUES (1, 'a', 1, 'x')")
        .await
        .unwrap();
    // Context set in an earlier transaction does not leak into the next.
    db.client
        .batch_execute("BEGIN; SELECT set_config('trailmark.actor_id', '7', true); UPDATE customer SET name = 'b'; COMMIT;")
        .await
        .unwrap();
    db.client
        .batch_execute("DELETE FROM customer")
        .await
        .unwrap();
    let rows = outbox(&db).await;
    let contexts: Vec<_> = rows
        .iter()
        .map(|r| (r.0.as_str(), r.4.clone(), r.5.as_str()))
        .collect();
    assert_eq!(
        contexts,
        [
            ("insert", json!({}), "postgres"),
            ("update", json!({"actor_id": "7"}), "postgres"),
            ("delete", json!({}), "postgres")
        ]
    );
}

#[tokio::test]
async fn excluded_columns_never_reach_the_outbox() {
    let mut db = TestDb::new().await;
    customers(&mut db, &["password"]).await;
    db.client
        .batch_execute(
            "INSERT INTO customer VALUES (1, 'a', 1, 'hunter2');
             UPDATE customer SET password = 'correct horse', name = 'b';
             DELETE FROM customer;",
        )
        .await
        .unwrap();
    let text: String = db.client.query_one("SELECT string_agg(coalesce(old_row::text, '') || coalesce(new_row::text, ''), ' ') FROM trailmark.outbox", &[]).await.unwrap().get(0);
    assert!(
        !text.contains("hunter2") && !text.contains("correct horse") && !text.contains("password"),
        "{text}"
    );
    assert_eq!(outbox(&db).await.len(), 3);
}

#[tokio::test]
async fn updates_pair_old_and_new_rows_even_when_the_key_changes_or_there_is_none() {
    let mut db = TestDb::new().await;
    db.client
        .batch_execute(
            "CREATE TABLE public.line (order_id int, n int, qty int, PRIMARY KEY (order_id, n));
             CREATE TABLE public.note (body text);",
        )
        .await
        .unwrap();
    install(&mut db.client, &[table("line"), table("public.note")], None)
        .await
        .unwrap();
    db.client
        .batch_execute(
            "INSERT INTO line SELECT 1, g, g FROM generate_series(1, 5) g;
             UPDATE line SET qty = qty * 10 WHERE n <= 2;
             UPDATE line SET n = n + 100 WHERE n >= 4;
             INSERT INTO note VALUES ('x'), ('y');
             UPDATE note SET body = body || '!';
             TRUNCATE note;",
        )
        .await
        .unwrap();
    let rows = outbox(&db).await;
    let updates: Vec<_> = rows
        .iter()
        .filter(|r| r.0 == "update")
        .map(|r| (r.2.clone().unwrap(), r.3.clone().unwrap()))
        .collect();
    assert_eq!(updates.len(), 6);
    for (old, new) in &updates[..2] {
        assert_eq!(
            (old["n"].clone(), new["qty"].as_i64()),
            (new["n"].clone(), Some(old["qty"].as_i64().unwrap() * 10))
        );
    }
    for (old, new) in &updates[2..4] {
        assert_eq!(
            new["n"].as_i64(),
            Some(old["n"].as_i64().unwrap() + 100),
            "key change paired by position"
        );
    }
    for (old, new) in &updates[4..] {
        assert_eq!(
            format!("{}!", old["body"].as_str().unwrap()),
            new["body"].as_str().unwrap()
        );
    }
    assert_eq!(rows.last().unwrap().0, "truncate");
}

#[tokio::test]
async fn a_rolled_back_change_leaves_nothing_in_the_outbox() {
    let mut db = TestDb::new().await;
    customers(&mut db, &[]).await;
    db.client
        .batch_execute("BEGIN; INSERT INTO customer VALUES (1, 'a', 1, 'x'); ROLLBACK;")
        .await
        .unwrap();
    assert!(outbox(&db).await.is_empty());
}

#[tokio::test]
async fn install_is_idempotent_status_reports_and_uninstall_leaves_applications_working() {
    let mut db = TestDb::new().await;
    assert!(matches!(status(&db.client).await, Err(Error::NotInstalled)));
    customers(&mut db, &[]).await;
    install(&mut db.client, &[table("public.customer")], None)
        .await
        .unwrap();
    let triggers = db
        .count("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'trailmark%'")
        .await;
    // The four statement-level ones and trailmark_replica.
    assert_eq!(triggers, 5, "installing twice changes nothing");
    let app = db.another().await;
    // The application sets the context in each transaction, as
    // docs/integrations.md tells every stack to.
    let with_context = |sql: &str| {
        format!("BEGIN; SELECT trailmark.set_context('{{\"actor_id\": \"42\"}}'); {sql}; COMMIT")
    };
    app.batch_execute(&with_context(
        "INSERT INTO customer VALUES (1, 'a', 1, 'x'), (2, 'b', 2, 'y')",
    ))
    .await
    .unwrap();
    let s = status(&db.client).await.unwrap();
    assert_eq!(
        (s.version.as_str(), s.tables.as_slice(), s.outbox_depth),
        (
            trailmark_capture::VERSION.to_string().as_str(),
            &["public.customer".to_owned()][..],
            2
        )
    );
    assert!(s.oldest_pending_seconds.unwrap() >= 0.0);
    assert!(s.drift.is_empty(), "{:?}", s.drift);
    assert_eq!(s.last_drained, None);

    // Two changes not drained: refused, and nothing is removed.
    assert!(matches!(
        uninstall(&mut db.client, false, false).await,
        Err(Error::PendingChanges(2))
    ));
    assert_eq!(status(&db.client).await.unwrap().outbox_depth, 2);
    let removed = uninstall(&mut db.client, true, false).await.unwrap();
    assert_eq!(
        (removed.tables.as_slice(), removed.dropped),
        (&["public.customer".to_owned()][..], 2)
    );
    assert!(matches!(status(&db.client).await, Err(Error::NotInstalled)));
    // The application keeps working without capture, its call to
    // set_context included (a no-op now: dropped, it failed every
    // transaction of the application until it was restarted).
    app.batch_execute(&with_context(
        "INSERT INTO customer VALUES (3, 'c', 3, 'z')",
    ))
    .await
    .unwrap();
    assert!(matches!(
        uninstall(&mut db.client, false, false).await,
        Err(Error::NotInstalled)
    ));
    // Installed again, the same session's calls set its context again.
    install(&mut db.client, &[table("public.customer")], None)
        .await
        .unwrap();
    app.batch_execute(&with_context("UPDATE customer SET name = 'd' WHERE id = 3"))
        .await
        .unwrap();
    let actor: String = db
        .client
        .query_one("SELECT context ->> 'actor_id' FROM trailmark.outbox", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(actor, "42");
    // --purge removes the function too, and with only it left, it alone.
    uninstall(&mut db.client, true, false).await.unwrap();
    let comment: Option<String> = db
        .client
        .query_one("SELECT obj_description('trailmark'::regnamespace)", &[])
        .await
        .unwrap()
        .get(0);
    assert!(comment.is_some_and(|c| c.contains("--purge")));
    let removed = uninstall(&mut db.client, false, true).await.unwrap();
    assert!(removed.tables.is_empty());
    assert!(!has_schema(&db).await, "--purge leaves nothing");
    assert!(app.batch_execute(&with_context("SELECT 1")).await.is_err());
    assert!(matches!(
        uninstall(&mut db.client, false, true).await,
        Err(Error::NotInstalled)
    ));
}

/// Whether schema `trailmark` is there.
async fn has_schema(db: &TestDb) -> bool {
    db.client
        .query_one("SELECT to_regnamespace('trailmark') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn installing_on_a_missing_table_or_column_changes_nothing() {
    let mut db = TestDb::new().await;
    db.client
        .batch_execute("CREATE TABLE public.customer (id int PRIMARY KEY)")
        .await
        .unwrap();
    let err = install(
        &mut db.client,
        &[table("public.customer"), table("public.nope")],
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::NoSuchTable(ref t) if t == "public.nope"),
        "{err}"
    );
    let mut spec = table("public.customer");
    spec.exclude = vec!["ssn".into()];
    let err = install(&mut db.client, &[spec], None).await.unwrap_err();
    assert!(matches!(err, Error::NoSuchColumn { .. }), "{err}");
    assert!(
        !has_schema(&db).await,
        "a failed install leaves nothing behind"
    );
}

#[tokio::test]
async fn interleaved_transactions_keep_their_own_actors_and_savepoints_roll_back() {
    let mut db = TestDb::new().await;
    customers(&mut db, &[]).await;
    let alice = db.another().await;
    let bob = db.another().await;
    alice
        .batch_execute("BEGIN; SELECT set_config('trailmark.actor_id', 'alice', true)")
        .await
        .unwrap();
    bob.batch_execute("BEGIN; SELECT set_config('trailmark.actor_id', 'bob', true)")
        .await
        .unwrap();
    alice
        .batch_execute("INSERT INTO customer VALUES (1, 'a', 1, 'x')")
        .await
        .unwrap();
    bob.batch_execute("INSERT INTO customer VALUES (2, 'b', 2, 'x')")
        .await
        .unwrap();
    alice
        .batch_execute(
            "SAVEPOINT s; INSERT INTO customer VALUES (3, 'gone', 3, 'x'); ROLLBACK TO SAVEPOINT s",
        )
        .await
        .unwrap();
    bob.batch_execute("UPDATE customer SET name = 'bb' WHERE id = 2; COMMIT")
        .await
        .unwrap();
    alice
        .batch_execute("UPDATE customer SET name = 'aa' WHERE id = 1; COMMIT")
        .await
        .unwrap();
    let rows = outbox(&db).await;
    let seen: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.0.as_str(),
                r.3.as_ref().unwrap()["id"].as_i64().unwrap(),
                r.4["actor_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("insert", 1, "alice"),
            ("insert", 2, "bob"),
            ("update", 2, "bob"),
            ("update", 1, "alice")
        ]
    );
}

#[tokio::test]
async fn copy_and_schema_changes_keep_being_captured() {
    let mut db = TestDb::new().await;
    customers(&mut db, &[]).await;
    // COPY, the bulk path no ORM hook sees (fed by the server here, as a superuser may).
    db.client
        .batch_execute(
            r#"COPY customer (id, name, price, password) FROM PROGRAM 'printf "10\tcopied\t5\tpw\n11\tcopied too\t6\tpw\n"'"#,
        )
        .await
        .unwrap();
    db.client
        .batch_execute(
            "ALTER TABLE customer ADD COLUMN tier text DEFAULT 'gold';
             UPDATE customer SET tier = 'silver' WHERE id = 10;
             ALTER TABLE customer RENAME COLUMN name TO full_name;
             UPDATE customer SET full_name = 'renamed' WHERE id = 11;
             ALTER TABLE customer DROP COLUMN price;
             DELETE FROM customer WHERE id = 10;",
        )
        .await
        .unwrap();
    let rows = outbox(&db).await;
    let ops: Vec<_> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(ops, ["insert", "insert", "update", "update", "delete"]);
    assert_eq!(rows[2].3.as_ref().unwrap()["tier"], "silver");
    assert_eq!(rows[3].3.as_ref().unwrap()["full_name"], "renamed");
    assert!(
        rows[4].2.as_ref().unwrap().get("price").is_none(),
        "the dropped column is gone"
    );
}
