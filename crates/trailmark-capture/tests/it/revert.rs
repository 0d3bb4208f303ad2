//! Reverting one captured change, against the real PostgreSQL.

use serde_json::{Value, json};
use trailmark_capture::revert::{self, Reverter};
use trailmark_capture::{DrainOptions, Error, TableSpec, install};

use crate::TestDb;

async fn setup() -> TestDb {
    let mut db = TestDb::new().await;
    db.client
        .batch_execute(
            "CREATE TABLE public.customer (id int PRIMARY KEY, name text, price numeric(10,2),
                                           seen timestamptz, password text)",
        )
        .await
        .unwrap();
    let mut spec = TableSpec::parse("public.customer").unwrap();
    spec.exclude = vec!["password".into()];
    spec.resource_type = Some("Customer".into());
    install(&mut db.client, &[spec], None).await.unwrap();
    db
}

/// The events drained so far (as the ledger would hold them).
async fn drained(db: &TestDb) -> Vec<Value> {
    crate::drained_once(db, DrainOptions::default().batch).await
}

fn admin() -> Reverter {
    Reverter {
        actor_id: "admin-7".into(),
        actor_type: "user".into(),
        actor_name: Some("Ada Admin".into()),
    }
}

async fn row(db: &TestDb, id: i32) -> Option<Value> {
    db.client
        .query_opt(
            "SELECT to_jsonb(c) - 'password' - 'seen' FROM customer c WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .map(|r| r.get(0))
}

#[tokio::test]
async fn a_deleted_row_comes_back_and_the_revert_is_captured_as_the_admin() {
    let mut db = setup().await;
    db.client
        .batch_execute(
            "SET TimeZone = 'America/New_York';
             INSERT INTO customer VALUES (61, 'Acme', 19.99, '2026-11-23 10:00:00+00', 'pw');
             DELETE FROM customer WHERE id = 61;",
        )
        .await
        .unwrap();
    let events = drained(&db).await;
    let delete = events.iter().find(|e| e["action"] == "delete").unwrap();
    // Planned in another time zone than the capture: still the same row.
    db.client
        .batch_execute("SET TimeZone = 'Asia/Tokyo'")
        .await
        .unwrap();
    let plan = revert::plan(&db.client, delete).await.unwrap();
    assert_eq!(plan.does, "insert");
    assert!(plan.unchanged_since, "{:?}", plan.why_changed);
    assert!(
        plan.statement
            .starts_with("INSERT INTO \"public\".\"customer\"")
    );
    revert::apply(&mut db.client, delete, &admin(), false)
        .await
        .unwrap();
    assert_eq!(
        row(&db, 61).await.unwrap(),
        json!({"id": 61, "name": "Acme", "price": 19.99})
    );
    let seen: bool = db
        .client
        .query_one(
            "SELECT seen = '2026-11-23 10:00:00+00' FROM customer WHERE id = 61",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(seen, "timestamps come back exactly");
    let audit = drained(&db).await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["action"], "create");
    assert_eq!(
        audit[0]["actor"],
        json!({"id": "admin-7", "type": "user", "name": "Ada Admin"})
    );
    assert_eq!(
        audit[0]["reason"],
        format!("revert of event {}", delete["id"].as_str().unwrap())
    );
}

#[tokio::test]
async fn an_update_is_undone_and_a_create_removed() {
    let mut db = setup().await;
    db.client
        .batch_execute(
            "INSERT INTO customer VALUES (1, 'Old', 1.50, NULL, 'pw');
             UPDATE customer SET name = 'New', price = 2.25 WHERE id = 1;
             INSERT INTO customer VALUES (2, 'Extra', 3, NULL, 'pw');",
        )
        .await
        .unwrap();
    let events = drained(&db).await;
    let update = events.iter().find(|e| e["action"] == "update").unwrap();
    assert_eq!(
        update["changes"]["price"]["old"], "1.50",
        "numeric scale kept"
    );
    let done = revert::apply(&mut db.client, update, &admin(), false)
        .await
        .unwrap();
    assert_eq!(done.does, "update");
    assert_eq!(
        row(&db, 1).await.unwrap(),
        json!({"id": 1, "name": "Old", "price": 1.50})
    );
    let create = events
        .iter()
        .find(|e| e["action"] == "create" && e["resource"]["id"] == "2")
        .unwrap();
    revert::apply(&mut db.client, create, &admin(), false)
        .await
        .unwrap();
    assert_eq!(row(&db, 2).await, None);
    let audit = drained(&db).await;
    assert_eq!(
        audit
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["update", "delete"]
    );
}

#[tokio::test]
async fn reverting_over_a_newer_change_is_refused_unless_forced() {
    let mut db = setup().await;
    db.client
        .batch_execute(
            "INSERT INTO customer VALUES (1, 'A', 1, NULL, 'pw');
             UPDATE customer SET name = 'B' WHERE id = 1;
             UPDATE customer SET name = 'C' WHERE id = 1;",
        )
        .await
        .unwrap();
    let events = drained(&db).await;
    let first_update = events.iter().find(|e| e["action"] == "update").unwrap();
    let plan = revert::plan(&db.client, first_update).await.unwrap();
    assert!(!plan.unchanged_since);
    assert!(plan.why_changed.unwrap().contains('C'));
    let refused = revert::apply(&mut db.client, first_update, &admin(), false).await;
    assert!(matches!(refused, Err(Error::CannotRevert(m)) if m.contains("--force")));
    assert_eq!(row(&db, 1).await.unwrap()["name"], "C", "nothing changed");
    revert::apply(&mut db.client, first_update, &admin(), true)
        .await
        .unwrap();
    assert_eq!(row(&db, 1).await.unwrap()["name"], "A");
    // A delete whose row is back already is refused too.
    db.client
        .batch_execute("DELETE FROM customer WHERE id = 1; INSERT INTO customer VALUES (1, 'again', 1, NULL, 'pw');")
        .await
        .unwrap();
    let events = drained(&db).await;
    let delete = events.iter().find(|e| e["action"] == "delete").unwrap();
    let refused = revert::apply(&mut db.client, delete, &admin(), false).await;
    assert!(matches!(refused, Err(Error::CannotRevert(m)) if m.contains("exists again")));
}

#[tokio::test]
async fn events_that_cannot_be_reverted_say_why() {
    let mut db = setup().await;
    db.client
        .batch_execute("CREATE TABLE public.log (line text)")
        .await
        .unwrap();
    install(
        &mut db.client,
        &[TableSpec::parse("public.log").unwrap()],
        None,
    )
    .await
    .unwrap();
    db.client
        .batch_execute("INSERT INTO log VALUES ('x'); TRUNCATE customer;")
        .await
        .unwrap();
    let events = drained(&db).await;
    for (event, says) in [(&events[0], "no primary key"), (&events[1], "no changes")] {
        let err = revert::plan(&db.client, event).await.unwrap_err();
        assert!(err.to_string().contains(says), "{err}");
    }
    let mut api = events[0].clone();
    api["context"]["source"] = json!("api");
    assert!(
        revert::plan(&db.client, &api)
            .await
            .unwrap_err()
            .to_string()
            .contains("not captured")
    );
}

/// A change captured before its table was renamed carries the old name
/// as its resource type: the revert finds the table by it (it was refused:
/// "no covered table has resource type"). Two tables given one alias (their
/// histories merged, which may be meant) cannot be told apart by the
/// event: refused, naming both (it failed with the driver's "unexpected
/// number of rows").
#[tokio::test]
async fn a_change_made_before_a_rename_is_reverted_and_a_shared_alias_is_named() {
    let mut db = TestDb::new().await;
    db.client
        .batch_execute(
            "CREATE TABLE public.cust (id int PRIMARY KEY, name text);
             CREATE TABLE public.a (id int PRIMARY KEY, v int);
             CREATE TABLE public.b (id int PRIMARY KEY, v int);",
        )
        .await
        .unwrap();
    let mut specs: Vec<TableSpec> = ["public.cust", "public.a", "public.b"]
        .iter()
        .map(|t| TableSpec::parse(t).unwrap())
        .collect();
    specs[1].resource_type = Some("Thing".into());
    specs[2].resource_type = Some("Thing".into());
    install(&mut db.client, &specs, None).await.unwrap();
    db.client
        .batch_execute(
            "INSERT INTO cust VALUES (1, 'Acme'); UPDATE cust SET name = 'Acme Corp';
             INSERT INTO a VALUES (1, 1); UPDATE a SET v = 2;
             ALTER TABLE cust RENAME TO client;",
        )
        .await
        .unwrap();
    let events = drained(&db).await;
    let renamed = &events[1];
    assert_eq!(renamed["resource"]["type"], "public.cust");
    let done = revert::apply(&mut db.client, renamed, &admin(), false)
        .await
        .unwrap();
    assert_eq!(done.table.to_string(), "public.client");
    let name: String = db
        .client
        .query_one("SELECT name FROM client WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "Acme");
    let shared = &events[3];
    assert_eq!(shared["resource"]["type"], "Thing");
    match revert::plan(&db.client, shared).await {
        Err(Error::CannotRevert(m)) => assert_eq!(
            m,
            "resource type \"Thing\" is that of 2 covered tables (public.a, public.b): which one the event's row is in is not known; revert it by hand"
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
}
