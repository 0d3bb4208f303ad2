//! Table options, upgrades and schema changes, against the real PostgreSQL.

use serde_json::Value;
use trailmark_capture::{TableSpec, install, status, table_configs, tables_in_schema};

use crate::TestDb;

async fn new_rows(db: &TestDb) -> Vec<Value> {
    db.client
        .query("SELECT new_row FROM trailmark.outbox ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, Option<Value>>(0).unwrap_or(Value::Null))
        .collect()
}

#[tokio::test]
async fn options_are_kept_and_reinstalling_without_naming_a_table_keeps_them() {
    let mut db = TestDb::new().await;
    db.client
        .batch_execute(
            "CREATE TABLE public.crm_customer (id int PRIMARY KEY, name text, password text, deleted_at timestamptz);
             CREATE TABLE public.invoice (id int PRIMARY KEY, total numeric)",
        )
        .await
        .unwrap();
    let mut customer = TableSpec::parse("public.crm_customer").unwrap();
    customer.exclude = vec!["password".into()];
    customer.soft_delete = Some("deleted_at".into());
    customer.resource_type = Some("Customer".into());
    install(&mut db.client, std::slice::from_ref(&customer), None)
        .await
        .unwrap();
    // Covering another table later keeps the first one's options.
    let again = install(
        &mut db.client,
        &[TableSpec::parse("public.invoice").unwrap()],
        None,
    )
    .await
    .unwrap();
    assert_eq!(again.refreshed, 1);
    assert!(again.warnings.is_empty(), "{:?}", again.warnings);
    let configs = table_configs(&db.client).await.unwrap();
    let c = &configs[&("public".to_owned(), "crm_customer".to_owned())];
    assert_eq!(c.key, ["id"]);
    assert_eq!(c.soft_delete.as_deref(), Some("deleted_at"));
    assert_eq!(c.resource_type.as_deref(), Some("Customer"));
    db.client
        .batch_execute("INSERT INTO crm_customer VALUES (1, 'a', 'secret', NULL)")
        .await
        .unwrap();
    assert!(!new_rows(&db).await[0].to_string().contains("secret"));

    // Naming it again without the exclusion drops it, loudly.
    let dropped = install(
        &mut db.client,
        &[TableSpec::parse("public.crm_customer").unwrap()],
        None,
    )
    .await
    .unwrap();
    assert_eq!(dropped.warnings.len(), 2, "{:?}", dropped.warnings);
    assert!(dropped.warnings[0].contains("password"));
    // And its name says it may hold a secret.
    assert!(
        dropped.warnings[1]
            .starts_with("public.crm_customer.password is captured, and its name says"),
        "{:?}",
        dropped.warnings
    );
}

#[tokio::test]
async fn a_renamed_excluded_column_stays_excluded_and_a_renamed_key_never_breaks_writes() {
    let mut db = TestDb::new().await;
    db.client
        .batch_execute("CREATE TABLE public.account (id int PRIMARY KEY, token text, n int)")
        .await
        .unwrap();
    let mut spec = TableSpec::parse("public.account").unwrap();
    spec.exclude = vec!["token".into()];
    install(&mut db.client, &[spec], None).await.unwrap();
    let app = db.another().await;
    app.batch_execute(
        "ALTER TABLE account RENAME COLUMN token TO api_token;
         INSERT INTO account VALUES (1, 'tok-1', 1), (2, 'tok-2', 2)",
    )
    .await
    .unwrap();
    for row in new_rows(&db).await {
        assert!(
            !row.to_string().contains("tok-"),
            "renamed column leaked: {row}"
        );
    }
    let s = status(&db.client).await.unwrap();
    assert!(
        s.drift.iter().any(|d| d.contains("api_token")),
        "status names the rename: {:?}",
        s.drift
    );
    // Renaming the key column: a bulk update still works and is still paired.
    app.batch_execute(
        "ALTER TABLE account RENAME COLUMN id TO account_id;
         UPDATE account SET n = n + 10",
    )
    .await
    .expect("the application's write must never fail because of capture");
    let updates: i64 = db
        .client
        .query_one(
            "SELECT count(*) FROM trailmark.outbox WHERE op = 'update'
             AND (old_row->>'account_id')::int = (new_row->>'account_id')::int",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(updates, 2);
    // Re-running install records the new names and keeps the exclusion.
    install(&mut db.client, &[], None).await.unwrap();
    let s = status(&db.client).await.unwrap();
    assert!(s.drift.is_empty(), "{:?}", s.drift);
    let excluded: Vec<String> = db
        .client
        .query_one("SELECT exclude FROM trailmark.tables", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(excluded, ["api_token"]);
}

#[tokio::test]
async fn all_covers_every_table_of_a_schema() {
    let mut db = TestDb::new().await;
    db.client
        .batch_execute(
            "CREATE SCHEMA shop;
             CREATE TABLE shop.a (id int PRIMARY KEY);
             CREATE TABLE shop.b (x text)",
        )
        .await
        .unwrap();
    let specs = tables_in_schema(&db.client, "shop").await.unwrap();
    assert_eq!(
        specs.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["shop.a", "shop.b"]
    );
    install(&mut db.client, &specs, None).await.unwrap();
    assert_eq!(
        status(&db.client).await.unwrap().tables,
        ["shop.a", "shop.b"]
    );
    assert!(tables_in_schema(&db.client, "nope").await.is_err());
}

#[tokio::test]
async fn a_version_1_install_is_upgraded_with_its_exclusions() {
    let mut db = TestDb::new().await;
    // What version 1 left: meta at 1, no table list, a generated function
    // with its exclusions written in as an array literal.
    db.client
        .batch_execute(
            r"CREATE TABLE public.member (id int PRIMARY KEY, email text, pin text);
             CREATE SCHEMA trailmark;
             CREATE TABLE trailmark.meta (key text PRIMARY KEY, value text NOT NULL);
             INSERT INTO trailmark.meta VALUES ('version', '1');
             CREATE FUNCTION trailmark.capture_v1() RETURNS trigger LANGUAGE plpgsql AS $f$
             DECLARE
                 excluded constant text[] := ARRAY['pin', 'it''s']::text[];
             BEGIN
                 RETURN NULL;
             END $f$;
             CREATE TRIGGER trailmark_insert AFTER INSERT ON public.member
                 REFERENCING NEW TABLE AS trailmark_new FOR EACH STATEMENT EXECUTE FUNCTION trailmark.capture_v1();",
        )
        .await
        .unwrap();
    db.client
        .batch_execute(r#"ALTER TABLE public.member ADD COLUMN "it's" text"#)
        .await
        .unwrap();
    let done = install(&mut db.client, &[], None).await.unwrap();
    assert_eq!(done.previous_version, Some(1));
    assert_eq!(done.tables.len(), 1);
    assert_eq!(done.tables[0].0.exclude, ["pin", "it's"]);
    db.client
        .batch_execute(r"INSERT INTO member VALUES (1, 'a@example.com', '9999', 'q')")
        .await
        .unwrap();
    let rows = new_rows(&db).await;
    assert_eq!(rows.len(), 1);
    assert!(
        rows[0].get("pin").is_none() && rows[0].get("it's").is_none(),
        "{}",
        rows[0]
    );
    assert_eq!(
        status(&db.client).await.unwrap().version,
        trailmark_capture::VERSION.to_string()
    );
}

#[tokio::test]
async fn columns_named_like_the_triggers_own_variables_are_captured() {
    let mut db = TestDb::new().await;
    db.client
        .batch_execute(
            "CREATE TABLE public.odd (id int PRIMARY KEY, stmt int, ctx text, excluded text,
                                      matched int, total int, j int, o int, n int, txid int)",
        )
        .await
        .unwrap();
    install(
        &mut db.client,
        &[TableSpec::parse("public.odd").unwrap()],
        None,
    )
    .await
    .unwrap();
    db.client
        .batch_execute(
            "INSERT INTO odd SELECT g, g, 'c', 'e', g, g, g, g, g, g FROM generate_series(1, 3) g;
             UPDATE odd SET total = total + 1;
             UPDATE odd SET stmt = 0 WHERE id = 1;
             DELETE FROM odd WHERE id = 2;",
        )
        .await
        .expect("column names never clash with capture's");
    let ops: Vec<String> = db
        .client
        .query("SELECT op FROM trailmark.outbox ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        ops,
        [
            "insert", "insert", "insert", "update", "update", "update", "update", "delete"
        ]
    );
    assert_eq!(new_rows(&db).await[3]["total"], 2);
}

#[tokio::test]
async fn a_statement_changing_some_keys_is_paired_by_position_with_nothing_twice() {
    let mut db = TestDb::new().await;
    db.client
        .batch_execute(
            "CREATE TABLE public.seat (id int PRIMARY KEY, label text);
             INSERT INTO seat SELECT g, 's' || g FROM generate_series(1, 5) g;",
        )
        .await
        .unwrap();
    install(
        &mut db.client,
        &[TableSpec::parse("public.seat").unwrap()],
        None,
    )
    .await
    .unwrap();
    db.client
        .batch_execute(
            "UPDATE seat SET id = CASE WHEN id = 1 THEN 100 ELSE id END, label = label || '!'",
        )
        .await
        .unwrap();
    let pairs: Vec<(Value, Value)> = db
        .client
        .query(
            "SELECT old_row, new_row FROM trailmark.outbox ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(pairs.len(), 5, "each row once: {pairs:?}");
    for (old, new) in &pairs {
        assert_eq!(
            format!("{}!", old["label"].as_str().unwrap()),
            new["label"].as_str().unwrap(),
            "old and new are the same row"
        );
    }
}

#[test]
fn a_key_with_invisible_characters_is_written_out_and_the_original_kept() {
    let event = serde_json::json!({
        "action": "update",
        "actor": {"id": "app", "type": "unknown"},
        "resource": {"type": "public.customer", "id": "61\u{200b}"},
        "metadata": {},
    });
    let event = serde_json::Value::Object(trailmark_capture::make_valid(event).unwrap().to_json());
    assert_eq!(event["resource"]["id"], "61<U+200B>");
    assert_eq!(
        event["metadata"]["capture_repairs"]["resource.id"]["value"],
        "61\u{200b}"
    );
}

/// Covering a table (a schema whole, say: Django's `auth_user` has a
/// `password` column) captures every column not excluded. Install warns of
/// each captured column whose name says it may hold a secret, saying how to
/// exclude it; an excluded one, and one merely like such a name
/// (`passenger`, `secretary`, `tokens_left`, `keynote`), is not named. The
/// rule is SQL (`trailmark.secret_like`), which the event trigger warns by
/// too.
#[tokio::test]
async fn columns_named_like_secrets_are_warned_of_at_install() {
    let mut db = TestDb::new().await;
    db.client
        .batch_execute(
            r#"CREATE TABLE public.auth_user (id int PRIMARY KEY, username text, password text,
                   "resetToken" text, api_key text, "apiKey" text, passenger text, secretary text,
                   tokens_left int, "Access Key" text, otp_secret text, keynote text)"#,
        )
        .await
        .unwrap();
    let mut spec = TableSpec::parse("public.auth_user").unwrap();
    spec.exclude = vec!["api_key".into()];
    let installed = install(&mut db.client, &[spec], None).await.unwrap();
    let named: Vec<&str> = installed
        .warnings
        .iter()
        .map(|w| w.split(" is captured").next().unwrap())
        .collect();
    assert_eq!(
        named,
        [
            "public.auth_user.password",
            "public.auth_user.resetToken",
            "public.auth_user.apiKey",
            r#"public.auth_user."Access Key""#,
            "public.auth_user.otp_secret",
        ]
    );
    assert_eq!(
        installed.warnings[0],
        "public.auth_user.password is captured, and its name says it may hold a secret (a password, a token, a key): if it does, name the table again with --exclude 'public.auth_user.password'"
    );
    // Installing again without naming the table says nothing more.
    let again = install(&mut db.client, &[], None).await.unwrap();
    assert_eq!(again.warnings, Vec::<String>::new());
}

/// The event trigger warns, by the same rule, when it covers a table made
/// in a schema covered whole that has such columns (the warning reaches
/// whoever ran the migration).
#[tokio::test]
async fn a_table_made_in_a_schema_covered_whole_with_secret_like_columns_is_warned_of() {
    let mut db = TestDb::new().await;
    db.client
        .batch_execute("CREATE SCHEMA shop; CREATE TABLE shop.a (id int PRIMARY KEY)")
        .await
        .unwrap();
    let specs = tables_in_schema(&db.client, "shop").await.unwrap();
    install(&mut db.client, &specs, None).await.unwrap();
    trailmark_capture::cover_whole_schemas(&db.client, &["shop".to_owned()])
        .await
        .unwrap();
    let (client, mut connection) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    let notices = tokio::spawn(async move {
        let mut notices = Vec::new();
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if let Ok(tokio_postgres::AsyncMessage::Notice(n)) = message {
                notices.push(format!("{}: {}", n.severity(), n.message()));
            }
        }
        notices
    });
    client
        .batch_execute(
            "CREATE TABLE shop.member (id int PRIMARY KEY, email text, password_hash text);
             CREATE TABLE shop.plain (id int PRIMARY KEY, note text);",
        )
        .await
        .unwrap();
    drop(client);
    assert_eq!(
        notices.await.unwrap(),
        [
            "WARNING: trailmark: shop.member is captured (made in a schema covered whole) with columns whose names say they may hold secrets: password_hash; if they do, exclude them (trailmark capture pg install --exclude)"
        ]
    );
}
