//! Change capture from a real PostgreSQL through the CLI, into a real server.

use serde_json::json;

use crate::{PgDb, Server, cli, verify_dir};

fn run_ok(args: &[&str]) -> String {
    let out = cli(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn capture_install_status_and_uninstall_from_the_cli() {
    let db = PgDb::new("tm_cli_capture");
    db.sql("CREATE TABLE customer (id int PRIMARY KEY, name text, password text)");
    let source = db.source();
    let stdout = run_ok(&[
        "capture",
        "pg",
        "install",
        "--source",
        &source,
        "--tables",
        "public.customer",
        "--exclude",
        "public.customer.password",
    ]);
    assert_eq!(
        stdout,
        "covered public.customer: key (id), excluding password\n"
    );
    db.sql("INSERT INTO customer VALUES (1, 'a', 'secret'), (2, 'b', 'secret')");
    let stdout = run_ok(&["capture", "pg", "status", "--source", &source]);
    assert!(
        stdout.contains("tables: public.customer") && stdout.contains("outbox: 2 rows waiting"),
        "{stdout}"
    );

    let out = cli(&[
        "capture",
        "pg",
        "install",
        "--source",
        &source,
        "--tables",
        "public.nope",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("table public.nope does not exist"));

    run_ok(&["capture", "pg", "uninstall", "--source", &source]);
    let out = cli(&["capture", "pg", "status", "--source", &source]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not installed"));
}

#[test]
fn captured_bulk_changes_reach_the_trail_once_with_the_request_actor() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let db = PgDb::new("tm_cli_drain");
    db.sql("CREATE TABLE customer (id int PRIMARY KEY, name text, price numeric, password text)");
    let source = db.source();
    run_ok(&[
        "capture",
        "pg",
        "install",
        "--source",
        &source,
        "--tables",
        "public.customer",
        "--exclude",
        "public.customer.password",
    ]);
    db.sql(
        "BEGIN;
         SELECT set_config('trailmark.actor_id', '42', true), set_config('trailmark.tenant', 'shop', true);
         INSERT INTO customer SELECT g, 'c' || g, 10, 'pw' FROM generate_series(1, 1500) g;
         UPDATE customer SET price = price + 1;
         COMMIT;
         DELETE FROM customer WHERE id <= 10;
         CREATE TABLE public.outbox_copy AS SELECT * FROM trailmark.outbox;",
    );
    let drain = [
        "capture",
        "pg",
        "run",
        "--source",
        &source,
        "--server",
        &server.url,
        "--key",
        &server.admin,
        "--once",
    ];
    run_ok(&drain);
    let (_, stats) = server.get(
        "/v1/stats?tenant=shop&resource_type=public.customer",
        &server.admin,
    );
    assert_eq!(stats["total"], 3000, "{stats}");
    assert_eq!(stats["by_actor"], json!([{"actor": "42", "count": 3000}]));
    let (_, all) = server.get("/v1/stats?resource_type=public.customer", &server.admin);
    assert_eq!(
        all["total"], 3010,
        "the 10 deletes without context land in the default tenant"
    );
    let (_, history) = server.get(
        "/v1/resources/public.customer/7/history?tenant=shop",
        &server.admin,
    );
    let prices: Vec<_> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state_after"]["price"].clone())
        .collect();
    assert_eq!(prices, [json!(10), json!(11)]);
    assert!(
        !history.to_string().contains("password"),
        "excluded columns never leave the database"
    );

    // Redelivery (a daemon that died between POST and DELETE) stores nothing twice.
    db.sql("INSERT INTO trailmark.outbox SELECT * FROM public.outbox_copy");
    run_ok(&drain);
    let (_, again) = server.get("/v1/stats?resource_type=public.customer", &server.admin);
    assert_eq!(again["total"], 3010);
    assert!(
        run_ok(&["capture", "pg", "status", "--source", &source])
            .contains("outbox: 0 rows waiting")
    );
    let (ok, report) = verify_dir(dir.path());
    assert!(ok, "{report}");
}

#[test]
fn killing_the_drainer_mid_batch_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let db = PgDb::new("tm_cli_drain_kill");
    db.sql("CREATE TABLE item (id int PRIMARY KEY, qty int)");
    let source = db.source();
    run_ok(&[
        "capture",
        "pg",
        "install",
        "--source",
        &source,
        "--tables",
        "public.item",
    ]);
    db.sql(
        "BEGIN; SELECT set_config('trailmark.actor_id', 'importer', true);
         INSERT INTO item SELECT g, g FROM generate_series(1, 20000) g; COMMIT;",
    );
    let args = [
        "capture",
        "pg",
        "run",
        "--source",
        &source,
        "--server",
        &server.url,
        "--key",
        &server.admin,
        "--batch",
        "500",
    ];
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..8 {
        let mut child = std::process::Command::new(crate::BIN)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(std::time::Duration::from_millis(40 + seed % 200));
        child.kill().unwrap(); // SIGKILL, wherever it is: between POST and DELETE included
        child.wait().unwrap();
    }
    run_ok(&[
        "capture",
        "pg",
        "run",
        "--source",
        &source,
        "--server",
        &server.url,
        "--key",
        &server.admin,
        "--once",
    ]);
    let (_, stats) = server.get("/v1/stats?resource_type=public.item", &server.admin);
    assert_eq!(stats["total"], 20000, "every change exactly once: {stats}");
    let (ok, report) = verify_dir(dir.path());
    assert!(ok, "{report}");
}
