//! Change capture from a real PostgreSQL through the CLI, into a real server.

use serde_json::{Value, json};

use crate::{PgDb, Server, cli, drain_once, install, run_ok, said, succeeded, verify_dir};

#[test]
fn capture_install_status_and_uninstall_from_the_cli() {
    let db = PgDb::new("tm_cli_capture");
    db.sql("CREATE TABLE customer (id int PRIMARY KEY, name text, password text)");
    let source = db.source();
    let stdout = install(
        &source,
        "trigger",
        "public.customer",
        &["--exclude", "public.customer.password"],
    );
    assert_eq!(
        stdout,
        "mode trigger: asked for (--mode)\ncovered public.customer: key (id), excluding password\n"
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
        "--mode",
        "trigger",
        "--source",
        &source,
        "--tables",
        "public.nope",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("table public.nope does not exist"));

    // Two changes not drained: uninstall refuses and removes nothing.
    let out = cli(&["capture", "pg", "uninstall", "--source", &source]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("the outbox still holds 2 changes not yet drained"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        run_ok(&["capture", "pg", "status", "--source", &source])
            .contains("outbox: 2 rows waiting")
    );
    // --drop-pending drops them, and the trail records it.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let stdout = run_ok(&[
        "capture",
        "pg",
        "uninstall",
        "--source",
        &source,
        "--drop-pending",
        "--server",
        &server.url,
        "--key",
        &server.admin,
    ]);
    assert!(
        stdout.contains("dropped 2 changes that were not drained")
            && stdout.contains("schema trailmark keeps only set_context(jsonb), a no-op"),
        "{stdout}"
    );
    let (_, recorded) = server.get("/v1/events?action=capture.pending_dropped", &server.admin);
    assert_eq!(
        recorded["events"][0]["metadata"]["outbox_rows"], 2,
        "{recorded}"
    );
    let out = cli(&["capture", "pg", "status", "--source", &source]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not installed"));
    // --purge takes the no-op set_context too; then there is nothing left.
    let stdout = run_ok(&["capture", "pg", "uninstall", "--source", &source, "--purge"]);
    assert!(stdout.contains("dropped schema trailmark"), "{stdout}");
    assert_eq!(
        db.text("SELECT count(*)::text FROM pg_namespace WHERE nspname = 'trailmark'"),
        "0"
    );
    let out = cli(&["capture", "pg", "uninstall", "--source", &source, "--purge"]);
    assert!(said(&out).contains("not installed"), "{}", said(&out));
}

/// A table or column whose name holds a dot or a space is given in double
/// quotes on the command line, as in SQL (`--exclude` split such a name
/// at its last dot; a table name with a space was refused).
#[test]
fn a_name_with_dots_or_spaces_is_given_in_double_quotes_on_the_command_line() {
    let db = PgDb::new("tm_cli_quoted");
    db.sql(r#"CREATE TABLE "Order Items" (id int PRIMARY KEY, "card.no" text, "v=1" int)"#);
    let source = db.source();
    let stdout = install(
        &source,
        "trigger",
        r#"public."Order Items""#,
        &[
            "--exclude",
            r#"public."Order Items"."card.no""#,
            "--alias",
            r#"public."Order Items"=OrderItem"#,
            "--name-column",
            r#"public."Order Items"."v=1""#,
        ],
    );
    assert_eq!(
        stdout,
        "mode trigger: asked for (--mode)\ncovered public.\"Order Items\": key (id), excluding card.no, recorded as OrderItem, named by v=1\n"
    );
    db.sql(r#"INSERT INTO "Order Items" VALUES (1, '4111 1111', 7)"#);
    // A quoted name may hold a comma, in any list.
    db.sql(r#"CREATE TABLE "a,b" (id int PRIMARY KEY, "x,y" text)"#);
    let stdout = install(
        &source,
        "trigger",
        r#"public."a,b",public."Order Items""#,
        &[
            "--exclude",
            r#"public."a,b"."x,y",public."Order Items"."card.no""#,
        ],
    );
    assert!(
        stdout.contains("covered public.\"a,b\": key (id), excluding x,y\n"),
        "{stdout}"
    );
    db.sql(r#"INSERT INTO "a,b" VALUES (1, 'secret')"#);
    let captured =
        db.text("SELECT string_agg(new_row::text, ' ' ORDER BY id) FROM trailmark.outbox");
    assert_eq!(captured, r#"{"id": 1, "v=1": 7} {"id": 1}"#);
    let out = cli(&[
        "capture",
        "pg",
        "install",
        "--mode",
        "trigger",
        "--source",
        &source,
        "--tables",
        r#"public."Order Items"#,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not a table name"), "{stderr}");
    // An empty item is refused, never read as "no tables".
    let out = cli(&[
        "capture", "pg", "install", "--mode", "trigger", "--source", &source, "--tables", "",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("\"\" is not a table name"), "{stderr}");
}

#[test]
fn captured_bulk_changes_reach_the_trail_once_with_the_request_actor() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let db = PgDb::new("tm_cli_drain");
    db.sql("CREATE TABLE customer (id int PRIMARY KEY, name text, price numeric, password text)");
    let source = db.source();
    install(
        &source,
        "trigger",
        "public.customer",
        &["--exclude", "public.customer.password"],
    );
    db.sql(
        "BEGIN;
         SELECT set_config('trailmark.actor_id', '42', true), set_config('trailmark.tenant', 'shop', true);
         INSERT INTO customer SELECT g, 'c' || g, 10, 'pw' FROM generate_series(1, 1500) g;
         UPDATE customer SET price = price + 1;
         COMMIT;
         DELETE FROM customer WHERE id <= 10;
         CREATE TABLE public.outbox_copy AS SELECT * FROM trailmark.outbox;",
    );
    succeeded(&drain_once(&source, &server));
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
    succeeded(&drain_once(&source, &server));
    let (_, again) = server.get("/v1/stats?resource_type=public.customer", &server.admin);
    assert_eq!(again["total"], 3010);
    assert!(
        run_ok(&["capture", "pg", "status", "--source", &source])
            .contains("outbox: 0 rows waiting")
    );
    let (ok, report) = verify_dir(dir.path());
    assert!(ok, "{report}");
}

/// A `customer (id, name, password)` table in a WAL-mode database
/// `name`, installed with its password excluded, key-only replica
/// identity and `extra` options, drained by a `serve` started on it.
fn serve_wal_customer(name: &str, extra: &[&str]) -> (PgDb, String, tempfile::TempDir, Server) {
    let db = PgDb::logical(name);
    db.sql("CREATE TABLE customer (id int PRIMARY KEY, name text, password text)");
    let source = db.source();
    let mut options = vec![
        "--exclude",
        "public.customer.password",
        "--replica-identity",
        "public.customer=key",
    ];
    options.extend(extra);
    install(&source, "wal", "public.customer", &options);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--capture-source", &source]);
    (db, source, dir, server)
}

/// Makes PostgreSQL stream `db`'s transactions past 64 kB to the drainer
/// in progress (`logical_decoding_work_mem`, for this database only; a
/// replication session reads it at its start).
fn stream_past_64_kb(db: &PgDb) {
    db.sql(&format!(
        "ALTER DATABASE {} SET logical_decoding_work_mem = '64kB'",
        db.name
    ));
}

/// Cuts the replication connection a drainer holds on `db`'s slot (its
/// walsender terminated, as a failover or a network cut would), once one
/// holds it.
fn cut_the_replication_connection(db: &PgDb) {
    let cut = crate::wait_for(
        "a drainer to hold the slot",
        std::time::Duration::from_secs(30),
        || {
            let cut = db.text(
                "SELECT count(pg_terminate_backend(active_pid))::text FROM pg_replication_slots
                 WHERE database = current_database() AND active",
            );
            (cut != "0").then_some(cut)
        },
    );
    assert_eq!(cut, "1", "one replication connection was cut");
}

/// The CLI started with `args`, its output discarded.
fn spawn_quiet(args: &[&str]) -> std::process::Child {
    std::process::Command::new(crate::BIN)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Runs the CLI with `args` eight times, each killed with SIGKILL after a
/// pseudo-random time in `millis` (xorshift from `seed`: the same times on
/// every run).
fn kill_again_and_again(args: &[&str], mut seed: u64, millis: std::ops::Range<u64>) {
    for _ in 0..8 {
        let mut child = spawn_quiet(args);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let wait = millis.start + seed % (millis.end - millis.start);
        std::thread::sleep(std::time::Duration::from_millis(wait));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

#[test]
fn killing_the_drainer_mid_batch_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let db = PgDb::new("tm_cli_drain_kill");
    db.sql("CREATE TABLE item (id int PRIMARY KEY, qty int)");
    let source = db.source();
    install(&source, "trigger", "public.item", &[]);
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
    // SIGKILL, wherever it is: between POST and DELETE included.
    kill_again_and_again(&args, 0x2545_f491_4f6c_dd1d, 40..240);
    succeeded(&drain_once(&source, &server));
    let (_, stats) = server.get("/v1/stats?resource_type=public.item", &server.admin);
    assert_eq!(stats["total"], 20000, "every change exactly once: {stats}");
    let (ok, report) = verify_dir(dir.path());
    assert!(ok, "{report}");
}

/// WAL mode: the drainer killed with SIGKILL again and again, anywhere
/// (inside a 10,000-row transaction, between an append and the slot's
/// acknowledgement):
/// every change is in the trail once, in commit order.
#[test]
fn killing_the_wal_drainer_again_and_again_loses_duplicates_and_reorders_nothing() {
    kill_the_wal_drainer_again_and_again("tm_cli_wal_kill", false);
}

/// The same with the transactions streamed in progress (each past the
/// database's 64 kB `logical_decoding_work_mem`): killed while it holds
/// a transaction's chunks, the drainer is sent it again from its start.
#[test]
fn killing_the_wal_drainer_holding_streamed_transactions_loses_duplicates_and_reorders_nothing() {
    kill_the_wal_drainer_again_and_again("tm_cli_wal_kill_streamed", true);
}

fn kill_the_wal_drainer_again_and_again(name: &str, streamed: bool) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let db = PgDb::logical(name);
    db.sql("CREATE TABLE item (id int PRIMARY KEY, qty int); CREATE TABLE counter (id int PRIMARY KEY, n int)");
    if streamed {
        stream_past_64_kb(&db);
    }
    let source = db.source();
    let out = install(&source, "wal", "public.item,public.counter", &[]);
    assert!(out.starts_with("mode wal: asked for (--mode)\n"), "{out}");
    db.sql("INSERT INTO counter VALUES (1, 0)");
    // First one transaction of 10,000 rows, sent in batches of 300: the
    // first kills land inside it.
    db.sql(
        "BEGIN; SELECT trailmark.set_context('{\"actor_id\": \"bulk\"}');
         INSERT INTO item SELECT g, g FROM generate_series(20001, 30000) g;
         UPDATE counter SET n = n + 1 WHERE id = 1; COMMIT;",
    );
    // Then 40 transactions of 500 rows, each moving the counter on.
    for t in 0..40 {
        db.sql(&format!(
            "BEGIN; SELECT trailmark.set_context('{{\"actor_id\": \"importer-{t}\"}}');
             INSERT INTO item SELECT g, g FROM generate_series({}, {}) g;
             UPDATE counter SET n = n + 1 WHERE id = 1; COMMIT;",
            t * 500 + 1,
            t * 500 + 500
        ));
    }

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
        "300",
    ];
    // A kill inside the big transaction for certain: once part of it is in
    // the ledger (its commit, and so the slot, not yet acknowledged).
    let mut child = spawn_quiet(&args);
    let part = crate::wait_for(
        "part of the big transaction in the ledger",
        std::time::Duration::from_secs(60),
        || {
            let (_, s) = server.get("/v1/stats?resource_type=public.item", &server.admin);
            s["total"].as_u64().filter(|n| *n > 0)
        },
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        part < 10_000,
        "killed inside the transaction: {part} of its 10,000 rows"
    );
    kill_again_and_again(&args, 0x9e37_79b9_7f4a_7c15, 60..360);
    let status = run_ok(&["capture", "pg", "status", "--source", &source]);
    assert!(
        status.contains("mode wal") && status.contains("slot trailmark_"),
        "{status}"
    );
    assert_eq!(
        status.contains("streamed to the drainer in progress, 0 so far"),
        !streamed,
        "{status}"
    );
    succeeded(&drain_once(&source, &server));
    let (_, items) = server.get("/v1/stats?resource_type=public.item", &server.admin);
    assert_eq!(items["total"], 30000, "every change exactly once: {items}");
    let (_, history) = server.get("/v1/resources/public.counter/1/history", &server.admin);
    let steps: Vec<i64> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state_after"]["n"].as_i64().unwrap())
        .collect();
    assert_eq!(steps, (0..=41).collect::<Vec<_>>(), "in commit order");
    let streamed_transactions = db.text(
        "SELECT coalesce(sum(stream_txns), 0)::text FROM pg_stat_replication_slots s
         JOIN pg_replication_slots r USING (slot_name) WHERE r.database = current_database()",
    );
    assert_eq!(
        streamed_transactions != "0",
        streamed,
        "streamed in progress: {streamed_transactions} transactions"
    );
    let (ok, report) = verify_dir(dir.path());
    assert!(ok, "{report}");
}

/// `serve` decodes a WAL-mode database itself, with each transaction's
/// context, and shows what the slot makes PostgreSQL keep in `/metrics`.
#[test]
fn serve_decodes_wal_capture_and_reports_the_slot_in_metrics() {
    let (db, _, _dir, server) =
        serve_wal_customer("tm_serve_wal", &["--name-column", "public.customer.name"]);
    db.sql(
        "BEGIN; SELECT trailmark.set_context('{\"actor_id\": \"alice\", \"ip\": \"203.0.113.7\"}');
         INSERT INTO customer VALUES (1, 'Acme Corp', 'hunter2');
         UPDATE customer SET name = 'Acme Inc', password = 'x' WHERE id = 1;
         COMMIT;",
    );
    let events = crate::wait_for(
        "serve to drain both changes",
        std::time::Duration::from_secs(30),
        || {
            let (_, page) = server.get("/v1/events?resource_type=public.customer", &server.admin);
            page["events"]
                .as_array()
                .filter(|e| e.len() == 2)
                .map(|_| page["events"].clone())
        },
    );
    // Newest first.
    assert_eq!(events[1]["action"], "create");
    assert_eq!(events[1]["actor"]["id"], "alice");
    assert_eq!(events[1]["context"]["ip"], "203.0.113.7");
    assert_eq!(events[1]["resource"]["name"], "Acme Corp");
    assert_eq!(events[0]["resource"]["name"], "Acme Inc");
    assert_eq!(
        events[0]["metadata"]["old_values"],
        "not logged: the table's replica identity is its key, so old values are unknown"
    );
    assert!(!events.to_string().contains("hunter2"));
    let (_, metrics) = server.get("/metrics", &server.admin);
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(
        metrics.contains("\ntrailmark_capture_wal_retained_bytes "),
        "{metrics}"
    );
    assert!(
        metrics.contains("\ntrailmark_capture_wal_lost 0\n"),
        "{metrics}"
    );
    // Two small transactions: neither streamed nor spilled.
    assert!(
        metrics.contains("\ntrailmark_capture_wal_streamed_transactions_total 0\n")
            && metrics.contains("\ntrailmark_capture_wal_spilled_transactions_total 0\n"),
        "{metrics}"
    );
}

/// The replication connection cut under `serve` (its walsender terminated,
/// as a failover or a network cut would): the drain run ends, `serve` starts
/// it again from the slot, and every change arrives once.
#[test]
fn serve_resumes_wal_capture_after_its_replication_connection_is_cut() {
    let (db, _, _dir, server) = serve_wal_customer("tm_serve_wal_cut", &[]);
    let ledger = |server: &Server| {
        let (_, s) = server.get("/v1/stats?resource_type=public.customer", &server.admin);
        s["total"].as_u64().unwrap_or(0)
    };
    db.sql("INSERT INTO customer SELECT g, 'c' || g, 'x' FROM generate_series(1, 100) g");
    crate::wait_for(
        "serve to drain the first hundred",
        std::time::Duration::from_secs(30),
        || Some(ledger(&server)).filter(|n| *n == 100),
    );
    cut_the_replication_connection(&db);
    db.sql("INSERT INTO customer SELECT g, 'c' || g, 'x' FROM generate_series(101, 200) g");
    crate::wait_for(
        "serve to reconnect and drain the second hundred",
        std::time::Duration::from_secs(60),
        || Some(ledger(&server)).filter(|n| *n >= 200),
    );
    let (_, page) = server.get(
        "/v1/events?resource_type=public.customer&limit=1000",
        &server.admin,
    );
    let mut ids: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap().parse().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=200).collect::<Vec<_>>(), "every change once");
}

/// A transaction past the database's `logical_decoding_work_mem` (64 kB
/// here) is streamed to `serve`'s drainer in progress, stored once at its
/// commit, and counted in `/metrics` at the next reading of the slot: the
/// count PostgreSQL keeps for the slot. (Not exactly one: the install's own
/// transaction, 65 kB of catalog changes from capture version 13, is
/// streamed too when a session decodes it, once or, after the cut, twice.)
#[test]
fn serve_counts_the_transactions_streamed_to_it_in_metrics() {
    let (db, _, _dir, server) = serve_wal_customer("tm_serve_wal_streamed", &[]);
    stream_past_64_kb(&db);
    // The drainer's replication session reads the setting at its start:
    // cut it, so serve starts one that does.
    cut_the_replication_connection(&db);
    db.sql("INSERT INTO customer SELECT g, 'c' || g, 'x' FROM generate_series(1, 3000) g");
    let total = crate::wait_for(
        "the transaction drained",
        std::time::Duration::from_secs(60),
        || {
            let (_, s) = server.get("/v1/stats?resource_type=public.customer", &server.admin);
            s["total"].as_u64().filter(|n| *n >= 3000)
        },
    );
    assert_eq!(total, 3000, "every change once");
    let streamed = |sql: &str| db.text(sql).parse::<u64>().unwrap();
    let counted = crate::wait_for(
        "/metrics to count what PostgreSQL counts for the slot",
        std::time::Duration::from_secs(60),
        || {
            let (_, metrics) = server.get("/metrics", &server.admin);
            let metrics = metrics.as_str().unwrap().to_owned();
            let shown = metrics
                .lines()
                .find_map(|l| l.strip_prefix("trailmark_capture_wal_streamed_transactions_total "))
                .and_then(|n| n.parse::<u64>().ok())?;
            // This database's slot (tests beside it have slots of their
            // own; a slot's statistics appear at its first decoding).
            let kept = streamed(
                "SELECT coalesce((SELECT s.stream_txns FROM pg_stat_replication_slots s
                                  JOIN pg_replication_slots r USING (slot_name)
                                  WHERE r.database = current_database()), 0)::text",
            );
            Some(shown).filter(|n| *n >= 1 && *n == kept)
        },
    );
    assert!(counted >= 1, "{counted}");
}

/// A transaction left open in the application's database holds the slot's
/// restart position back, so PostgreSQL keeps every byte of WAL written
/// since: past `capture_wal.retained_bytes` the watching server records
/// `trailmark.capture.wal_retained` in `_system` (once) and the
/// `capture_wal` rule raises an alert naming the cause.
#[test]
fn wal_kept_for_the_slot_past_its_bound_is_recorded_and_raises_an_alert() {
    use std::io::Write as _;
    let db = PgDb::logical("tm_serve_wal_alert");
    db.sql("CREATE TABLE customer (id int PRIMARY KEY, name text)");
    let source = db.source();
    install(&source, "wal", "public.customer", &[]);
    let (_dir, server) = serve_with_rule(
        &source,
        "retained_bytes = 1073741824",
        "retained_bytes = 1048576",
    );
    // The open transaction, in a psql kept waiting on its input.
    let mut held = std::process::Command::new("psql")
        .args([source.as_str(), "-q", "-v", "ON_ERROR_STOP=1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut input = held.stdin.take().unwrap();
    input
        .write_all(b"BEGIN;\nINSERT INTO customer VALUES (0, 'held open');\n")
        .unwrap();
    input.flush().unwrap();
    crate::wait_for(
        "the open transaction",
        std::time::Duration::from_secs(10),
        || {
            let out = std::process::Command::new("psql")
            .args([
                source.as_str(),
                "-tAc",
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction' AND datname = current_database()",
            ])
            .output()
            .unwrap();
            (String::from_utf8_lossy(&out.stdout).trim() == "1").then_some(())
        },
    );
    // About 8 MB of WAL, committed and drained meanwhile.
    for batch in 0..4 {
        db.sql(&format!(
            "INSERT INTO customer SELECT g, repeat('x', 1000) FROM generate_series({}, {}) g",
            batch * 2000 + 1,
            batch * 2000 + 2000
        ));
    }
    let alert = crate::wait_for(
        "the capture_wal alert",
        std::time::Duration::from_secs(45),
        || {
            let (_, page) = server.get("/v1/alerts?rule=capture_wal", &server.admin);
            page["alerts"].as_array()?.first().cloned()
        },
    );
    let text = alert.to_string();
    assert!(text.contains("drainer is stalled or behind"), "{alert}");
    let (_, recorded) = server.get(
        "/v1/events?tenant=_system&action=trailmark.capture.wal_retained",
        &server.admin,
    );
    let recorded = recorded["events"].as_array().unwrap().clone();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let meta = &recorded[0]["metadata"];
    assert!(
        meta["retained_bytes"].as_u64().unwrap() > 1_048_576,
        "{meta}"
    );
    assert_eq!(meta["threshold_bytes"], 1_048_576, "{meta}");
    assert_eq!(recorded[0]["resource"]["type"], "replication_slot");
    input.write_all(b"COMMIT;\n").unwrap();
    drop(input);
    assert!(held.wait().unwrap().success());
}

/// Trigger mode: a drainer that does not drain (here another holds the
/// drain lock and does nothing: `serve`'s drainer stands by) leaves the
/// changes in the outbox, growing in the application's database. The
/// watching server reads the backlog into `/metrics`, and once the oldest
/// change is older than `capture_outbox.oldest_seconds`
/// records `trailmark.capture.outbox_behind` in `_system` (once) and the
/// `capture_outbox` rule raises an alert naming the cause.
#[test]
fn a_stalled_drainer_in_trigger_mode_is_in_metrics_and_raises_an_alert() {
    let db = PgDb::new("tm_serve_outbox_alert");
    db.sql("CREATE TABLE customer (id int PRIMARY KEY, name text)");
    let source = db.source();
    install(&source, "trigger", "public.customer", &[]);
    // A stuck drainer: a session holding the drain lock, kept open.
    let (mut stuck, input) = drain_lock_held(&db, &source);
    let (_dir, server) = serve_with_rule(&source, "oldest_seconds = 600", "oldest_seconds = 10");
    db.sql("INSERT INTO customer VALUES (1, 'Acme'); INSERT INTO customer VALUES (2, 'Globex');");
    crate::wait_for(
        "the backlog in /metrics",
        std::time::Duration::from_secs(30),
        || {
            let (_, metrics) = server.get("/metrics", &server.admin);
            let value = |name: &str| -> Option<String> {
                let prefix = format!("{name} ");
                metrics
                    .as_str()?
                    .lines()
                    .find_map(|l| Some(l.strip_prefix(&prefix)?.to_owned()))
            };
            let rows = value("trailmark_capture_outbox_rows")?;
            let oldest: f64 = value("trailmark_capture_outbox_oldest_seconds")?
                .parse()
                .ok()?;
            (rows == "2" && oldest > 0.0).then_some(())
        },
    );
    let recorded = crate::wait_for(
        "trailmark.capture.outbox_behind in _system",
        std::time::Duration::from_secs(60),
        || {
            let (_, page) = server.get(
                "/v1/events?tenant=_system&action=trailmark.capture.outbox_behind",
                &server.admin,
            );
            let events = page["events"].as_array()?.clone();
            (!events.is_empty()).then_some(events)
        },
    );
    let alert = crate::wait_for(
        "the capture_outbox alert",
        std::time::Duration::from_secs(10),
        || {
            let (_, page) = server.get("/v1/alerts?rule=capture_outbox", &server.admin);
            page["alerts"].as_array()?.first().cloned()
        },
    );
    assert!(
        alert
            .to_string()
            .contains("the drainer is stalled or behind"),
        "{alert}"
    );
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let meta = &recorded[0]["metadata"];
    assert_eq!(meta["rows"], 2, "{meta}");
    assert_eq!(meta["threshold_seconds"], 10, "{meta}");
    assert!(meta["oldest_seconds"].as_f64().unwrap() > 10.0, "{meta}");
    assert_eq!(recorded[0]["resource"]["type"], "capture_outbox");
    // Nothing was lost: both changes still wait.
    let depth = outbox_depth(&source);
    assert!(
        depth.starts_with("outbox: 2 rows waiting, oldest"),
        "{depth}"
    );
    // The stuck drainer gone, serve's takes over and drains both.
    drop(input);
    assert!(stuck.wait().unwrap().success());
    crate::wait_for(
        "serve to drain once the lock is free",
        std::time::Duration::from_secs(30),
        || {
            let (_, page) = server.get("/v1/events?resource_type=public.customer", &server.admin);
            (page["events"].as_array()?.len() == 2).then_some(())
        },
    );
}

/// `serve` draining `source`, its alert rules the defaults with one
/// setting changed (`from` replaced by `to`, which must be found).
fn serve_with_rule(source: &str, from: &str, to: &str) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let rules = trailmark_server::alerts::Rules::default().to_toml();
    assert!(rules.contains(&format!("{from}\n")), "{rules}");
    let rules_path = dir.path().join("rules.toml");
    std::fs::write(&rules_path, rules.replacen(from, to, 1)).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let server = Server::start_with(
        &data,
        &[
            "--capture-source",
            source,
            "--alert-rules",
            rules_path.to_str().unwrap(),
        ],
    );
    (dir, server)
}

/// A session holding the drain lock and doing nothing (a stuck drainer),
/// in a psql kept waiting on its input: it ends when its input is dropped.
fn drain_lock_held(db: &PgDb, source: &str) -> (std::process::Child, std::process::ChildStdin) {
    use std::io::Write as _;
    let mut stuck = std::process::Command::new("psql")
        .args([source, "-q", "-v", "ON_ERROR_STOP=1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut input = stuck.stdin.take().unwrap();
    writeln!(
        input,
        "SELECT pg_advisory_lock({});",
        trailmark_capture::DRAIN_LOCK
    )
    .unwrap();
    input.flush().unwrap();
    crate::wait_for(
        "the drain lock held",
        std::time::Duration::from_secs(10),
        || {
            let held = db.text(
                "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' AND granted
                 AND pid <> pg_backend_pid() AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            );
            (held == "1").then_some(())
        },
    );
    (stuck, input)
}

/// WAL mode publishes a table with excluded columns through a column list,
/// which PostgreSQL fixes when it is set: a column the application adds
/// later is published by the event trigger install leaves, in the ALTER
/// TABLE's own transaction, while an excluded column stays out by number
/// even when renamed. Uninstall leaves no event trigger behind.
#[test]
fn wal_mode_captures_a_column_added_later_and_never_a_renamed_excluded_one() {
    let (db, source, dir, server) = serve_wal_customer("tm_wal_new_column", &[]);
    db.sql(
        "ALTER TABLE customer ADD COLUMN tier text;
         ALTER TABLE customer RENAME COLUMN password TO pw;
         BEGIN; SELECT trailmark.set_context('{\"actor_id\": \"alice\"}');
         INSERT INTO customer VALUES (1, 'Acme Corp', 'hunter2', 'gold');
         COMMIT;",
    );
    let event = crate::wait_for(
        "serve to drain the insert",
        std::time::Duration::from_secs(30),
        || {
            let (_, page) = server.get("/v1/events?resource_type=public.customer", &server.admin);
            page["events"].as_array()?.first().cloned()
        },
    );
    let text = event.to_string();
    assert!(
        text.contains("gold"),
        "the added column is captured: {event}"
    );
    assert!(
        !text.contains("hunter2") && !text.contains("\"pw\""),
        "the renamed excluded column stays out: {event}"
    );
    // The slot hears of the last batch at the walsender's next keepalive
    // (up to 30 s on an idle database): drained again by `run --once`
    // instead, which moves the slot itself (stored once, by id).
    drop(server);
    let server = Server::start(dir.path());
    succeeded(&drain_once(&source, &server));
    let (_, page) = server.get("/v1/events?resource_type=public.customer", &server.admin);
    assert_eq!(page["events"].as_array().unwrap().len(), 1, "{page}");
    // Without the event trigger (an install by a role that is not a
    // superuser), status names a column the list leaves out, and install
    // sets the list again.
    db.sql("DROP EVENT TRIGGER trailmark_republish; ALTER TABLE customer ADD COLUMN region text");
    let out = run_ok(&["capture", "pg", "status", "--source", &source]);
    assert!(
        out.contains("public.customer: columns not captured (region)"),
        "{out}"
    );
    install(
        &source,
        "wal",
        "public.customer",
        &[
            "--exclude",
            "public.customer.pw",
            "--replica-identity",
            "public.customer=key",
        ],
    );
    let out = run_ok(&["capture", "pg", "status", "--source", &source]);
    assert!(!out.contains("not captured"), "{out}");
    run_ok(&["capture", "pg", "uninstall", "--source", &source]);
    let left = std::process::Command::new("psql")
        .args([
            source.as_str(),
            "-tAc",
            "SELECT count(*) FROM pg_event_trigger WHERE evtname = 'trailmark_republish'",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), "0");
}

#[test]
fn serve_drains_capture_itself_with_aliases_soft_deletes_and_reverts() {
    let db = PgDb::new("tm_serve_capture");
    db.sql(
        "CREATE TABLE crm_customer (id int PRIMARY KEY, name text, price numeric(12,2),
                                    api_token text, deleted_at timestamptz)",
    );
    let source = db.source();
    let stdout = run_ok(&[
        "capture",
        "pg",
        "install",
        "--mode",
        "trigger",
        "--source",
        &source,
        "--all",
        "public",
        "--exclude",
        "public.crm_customer.api_token",
        "--soft-delete",
        "public.crm_customer.deleted_at",
        "--alias",
        "public.crm_customer=Customer",
    ]);
    assert_eq!(
        stdout,
        "mode trigger: asked for (--mode)\ncovered public.crm_customer: key (id), excluding api_token, soft delete by deleted_at, recorded as Customer\n"
    );
    let dir = tempfile::tempdir().unwrap();
    // The changes name their tenant in the transaction (the drainer's default
    // is another): the revert must land in the same tenant.
    let server = Server::start_with(
        dir.path(),
        &["--capture-source", &source, "--capture-tenant", "default"],
    );
    db.sql(
        "BEGIN;
         SELECT set_config('trailmark.actor_id', 'alice', true), set_config('trailmark.ip', '203.0.113.7', true),
                set_config('trailmark.tenant', 'crm', true);
         INSERT INTO crm_customer VALUES (61, 'Acme', 19.99, 'tok-secret', NULL);
         UPDATE crm_customer SET price = 24.50 WHERE id = 61;
         COMMIT;
         BEGIN;
         SELECT set_config('trailmark.actor_id', 'bob', true), set_config('trailmark.tenant', 'crm', true);
         UPDATE crm_customer SET deleted_at = now() WHERE id = 61;
         UPDATE crm_customer SET deleted_at = NULL WHERE id = 61;
         DELETE FROM crm_customer WHERE id = 61;
         COMMIT;",
    );
    let history = customer_61_history(&server, 5);
    let actions: Vec<_> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions,
        ["create", "update", "soft_delete", "restore", "delete"]
    );
    let update = &history["events"][1];
    assert_eq!(
        update["changes"],
        json!({"price": {"old": 19.99, "new": "24.50"}}),
        "numeric digits kept as written"
    );
    assert_eq!(update["actor"]["id"], "alice");
    assert_eq!(update["context"]["ip"], "203.0.113.7");
    // Captured rows take the one commit path: counted as commits (nothing
    // else was posted to this server).
    let (_, metrics) = server.get("/metrics", &server.admin);
    let metric = |name: &str| -> u64 {
        metrics
            .as_str()
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(metric("trailmark_capture_rows_total ") >= 5, "{metrics}");
    assert!(metric("trailmark_commit_seconds_count ") >= 1, "{metrics}");
    // The excluded column is nowhere: history, search, export.
    let (_, export) = server.get("/v1/export?format=ndjson&tenant=crm", &server.admin);
    for text in [history.to_string(), export.to_string()] {
        assert!(
            !text.contains("tok-secret") && !text.contains("api_token"),
            "{text}"
        );
    }
    let status = run_ok(&["capture", "pg", "status", "--source", &source]);
    assert!(status.contains("by trailmark serve pid"), "{status}");

    revert_the_delete_through_the_cli(&server, &source, &history);
    // A TRUNCATE names no record, and the record's history shows it: the
    // record is gone.
    db.sql(
        "BEGIN; SELECT set_config('trailmark.tenant', 'crm', true); TRUNCATE crm_customer; COMMIT;",
    );
    let history = customer_61_history(&server, 7);
    let truncate = &history["events"][6];
    assert_eq!(truncate["action"], "truncate", "{history}");
    assert_eq!(
        truncate["resource"],
        json!({"type": "Customer", "id": null, "name": null})
    );
    assert_eq!(truncate["state_after"], json!(null));
    drop(server);
    let (ok, report) = verify_dir(dir.path());
    assert!(ok, "{report}");
}

/// Customer 61's history once it holds `n` events (the drainer inside serve
/// is asynchronous).
fn customer_61_history(server: &Server, n: usize) -> serde_json::Value {
    crate::wait_for(
        "serve to drain the captured changes",
        std::time::Duration::from_secs(20),
        || {
            let (_, h) = server.get(
                "/v1/resources/Customer/61/history?tenant=crm",
                &server.admin,
            );
            (h["events"].as_array().map(Vec::len) == Some(n)).then_some(h)
        },
    )
}

/// Prints, applies and re-applies the revert of customer 61's delete.
fn revert_the_delete_through_the_cli(server: &Server, source: &str, history: &serde_json::Value) {
    // Revert the delete through the CLI: printed first, then applied.
    let delete_id = history["events"][4]["id"].as_str().unwrap().to_owned();
    let revert = [
        "capture",
        "pg",
        "revert",
        "--source",
        source,
        "--server",
        &server.url,
        "--key",
        &server.admin,
        "--event",
        &delete_id,
    ];
    let printed = run_ok(&revert);
    assert!(
        printed.contains("INSERT INTO \"public\".\"crm_customer\""),
        "{printed}"
    );
    let mut apply = revert.to_vec();
    apply.extend(["--apply", "--actor", "admin-7"]);
    run_ok(&apply);
    let history = customer_61_history(server, 6);
    let revert_event = &history["events"][5];
    assert_eq!(revert_event["action"], "create");
    assert_eq!(revert_event["actor"]["id"], "admin-7");
    assert_eq!(
        revert_event["reason"],
        format!("revert of event {delete_id}")
    );
    assert_eq!(revert_event["state_after"]["price"], "24.50");
    // Reverting the same delete again: the row exists, refused.
    let again = cli(&apply);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("exists again"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

fn outbox_depth(source: &str) -> String {
    let status = run_ok(&["capture", "pg", "status", "--source", source]);
    status
        .lines()
        .find(|l| l.starts_with("outbox:"))
        .unwrap_or_default()
        .to_owned()
}

/// A drain that finds the ledger's newest checkpoint as it remembered it
/// writes nothing for it to the application's database (the remembered row
/// is not rewritten: the ledger signs at most every 250 ms, a drainer may
/// append far more often); a newer checkpoint is remembered.
#[test]
fn a_checkpoint_already_remembered_is_not_written_again() {
    let db = PgDb::new("tm_seen_unchanged");
    db.sql("CREATE TABLE item (id int PRIMARY KEY, name text)");
    let source = db.source();
    install(&source, "trigger", "public.item", &[]);
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path());
    let drained = |rows: &str, size: u64| {
        db.sql(&format!("INSERT INTO item {rows}"));
        assert!(drain_once(&source, &server).status.success());
        server.wait_checkpoint("default", size);
        // A drain with nothing to send checks the tenants it remembers.
        assert!(drain_once(&source, &server).status.success());
    };
    // The row's version (xmin) changes with any write of it.
    let row = "SELECT size::text || ' ' || xmin::text FROM trailmark.seen_checkpoints \
               WHERE tenant = 'default'";
    drained("SELECT g, 'a' FROM generate_series(1, 5) g", 5);
    drained("VALUES (6, 'b')", 6);
    let remembered = db.text(row);
    assert!(remembered.starts_with("6 "), "{remembered}");
    assert!(drain_once(&source, &server).status.success());
    assert_eq!(
        db.text(row),
        remembered,
        "the same checkpoint was written again"
    );
    drained("VALUES (7, 'c')", 7);
    let newer = db.text(row);
    assert!(newer.starts_with("7 "), "{newer}");
    server.stop();
}

#[test]
fn the_drainer_stops_on_a_rolled_back_server_and_resumes_once_an_operator_forgets() {
    let db = PgDb::new("tm_rollback_drain");
    db.sql("CREATE TABLE item (id int PRIMARY KEY, name text)");
    let source = db.source();
    install(&source, "trigger", "public.item", &[]);
    let drain = |server: &Server| drain_once(&source, server);
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path());
    db.sql("INSERT INTO item SELECT g, 'a' FROM generate_series(1, 5) g");
    assert!(drain(&server).status.success());
    server.wait_checkpoint("default", 5);
    // An empty drain still looks at the trail: it remembers size 5.
    assert!(drain(&server).status.success());
    server.stop();
    let snapshot = crate::copy_dir(data.path());

    let mut server = Server::start(data.path());
    db.sql("INSERT INTO item SELECT g, 'b' FROM generate_series(6, 10) g");
    assert!(drain(&server).status.success());
    server.wait_checkpoint("default", 10);
    assert!(drain(&server).status.success());
    server.stop();

    // The server's data dir is rolled back to the copy with 5 entries.
    let mut rolled = Server::start(snapshot.path());
    db.sql("INSERT INTO item VALUES (11, 'c'), (12, 'd')");
    let out = drain(&rolled);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "the log now has 5 entries, fewer than the 10 already seen: it was rolled back"
        ) && stderr.contains("forget-checkpoint"),
        "{stderr}"
    );
    let depth = outbox_depth(&source);
    assert!(
        depth.starts_with("outbox: 2 rows waiting"),
        "nothing was fed to it: {depth}"
    );

    // An operator decides the rolled-back trail is the one to keep.
    let said = run_ok(&[
        "capture",
        "pg",
        "forget-checkpoint",
        "--source",
        &source,
        "--tenant",
        "default",
    ]);
    assert!(
        said.starts_with("forgot the checkpoint remembered for default"),
        "{said}"
    );
    let out = drain(&rolled);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        outbox_depth(&source).starts_with("outbox: 0 rows"),
        "{}",
        outbox_depth(&source)
    );
    rolled.wait_checkpoint("default", 7);
    rolled.stop();
}

/// A database with `item` captured in trigger mode and one row in its
/// outbox dated two hours ahead, as a database whose clock ran two hours
/// ahead would date it (the outbox's default moved inside the transaction):
/// the database and its source.
fn an_item_dated_two_hours_ahead(name: &str) -> (PgDb, String) {
    let db = PgDb::new(name);
    db.sql("CREATE TABLE item (id int PRIMARY KEY, name text)");
    let source = db.source();
    install(&source, "trigger", "public.item", &[]);
    db.sql(
        "BEGIN;
         ALTER TABLE trailmark.outbox ALTER COLUMN captured_at SET DEFAULT clock_timestamp() + interval '2 hours';
         INSERT INTO item VALUES (1, 'ahead');
         ALTER TABLE trailmark.outbox ALTER COLUMN captured_at SET DEFAULT clock_timestamp();
         COMMIT;",
    );
    (db, source)
}

/// A change the database dated more than an hour after the server receives
/// it (its clock two hours ahead) stops the drain with the reason, and
/// stays in the outbox with what came after it: nothing goes in dated as
/// though it happened later, nothing is lost or reordered.
#[test]
fn a_change_dated_more_than_an_hour_ahead_stops_the_drain_and_stays() {
    let (db, source) = an_item_dated_two_hours_ahead("tm_ahead_drain");
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    db.sql("INSERT INTO item VALUES (2, 'now')");
    let out = drain_once(&source, &server);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("occurred_at") && stderr.contains("at most 3600 s ahead of its receipt"),
        "{stderr}"
    );
    let depth = outbox_depth(&source);
    assert!(depth.starts_with("outbox: 2 rows waiting"), "{depth}");
    let (_, found) = server.get("/v1/events?resource_type=public.item", &server.admin);
    assert_eq!(found["events"], json!([]), "{found}");
}

/// The same inside `serve`'s own drain: it stops on the batch, says why in
/// its log (and retries), and the change stays in the outbox.
#[test]
fn a_change_dated_more_than_an_hour_ahead_stops_serves_own_drain_and_stays() {
    let (_db, source) = an_item_dated_two_hours_ahead("tm_ahead_serve");
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("serve.log");
    let server = Server::start_logged(
        &dir.path().join("data"),
        &["--capture-source", &source],
        std::fs::File::create(&log_path).unwrap(),
    );
    let log = crate::wait_for(
        "serve to log the refusal",
        std::time::Duration::from_secs(30),
        || {
            std::fs::read_to_string(&log_path)
                .ok()
                .filter(|log| log.contains("at most 3600 s ahead of its receipt"))
        },
    );
    assert!(log.contains("occurred_at"), "{log}");
    let depth = outbox_depth(&source);
    assert!(depth.starts_with("outbox: 1 rows waiting"), "{depth}");
    let (_, found) = server.get("/v1/events?resource_type=public.item", &server.admin);
    assert_eq!(found["events"], json!([]), "{found}");
}

/// `capture pg pause|resume`: nothing written while paused is captured
/// (an install run meanwhile keeps the pause), the switches are recorded in
/// the trail in order with the changes around them, with who and why, and
/// `status` shows the pause.
#[test]
fn capture_paused_then_resumed_is_recorded_in_order_and_captures_nothing_between() {
    let db = PgDb::new("tm_capture_pause");
    db.sql("CREATE TABLE customer (id int PRIMARY KEY, name text)");
    let source = db.source();
    install(&source, "trigger", "public.customer", &[]);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &["--capture-source", &source, "--capture-tenant", "crm"],
    );
    db.sql("INSERT INTO customer VALUES (1, 'before')");
    let switch = |verb: &str, extra: &[&str]| {
        let mut args = vec![
            "capture", "pg", verb, "--source", &source, "--actor", "ops-42",
        ];
        args.extend(extra);
        run_ok(&args)
    };
    let paused = switch("pause", &["--reason", "bulk import"]);
    assert_eq!(
        paused,
        "paused capture of public.customer (the drainer records capture.paused in the trail)\n"
    );
    assert_eq!(switch("pause", &[]), "public.customer: already paused\n");
    let status = run_ok(&["capture", "pg", "status", "--source", &source]);
    assert!(status.contains("paused: public.customer since"), "{status}");
    let bad = cli(&[
        "capture",
        "pg",
        "pause",
        "--source",
        &source,
        "--actor",
        "ops-42",
        "--tables",
        "public.nope",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("public.nope is not covered"));
    // An install run while paused keeps the pause.
    install(&source, "trigger", "public.customer", &[]);
    db.sql("INSERT INTO customer VALUES (2, 'during')");
    switch("resume", &[]);
    db.sql("INSERT INTO customer VALUES (3, 'after')");

    let events = crate::wait_for(
        "the four events",
        std::time::Duration::from_secs(20),
        || {
            let (_, page) = server.get("/v1/events?tenant=crm&limit=100", &server.admin);
            let events = page["events"].as_array().unwrap().clone();
            (events.len() >= 4).then_some(events)
        },
    );
    let oldest_first: Vec<(String, serde_json::Value)> = events
        .iter()
        .rev()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["resource"]["id"].clone(),
            )
        })
        .collect();
    assert_eq!(
        oldest_first,
        [
            ("create".to_owned(), json!("1")),
            ("capture.paused".to_owned(), serde_json::Value::Null),
            ("capture.resumed".to_owned(), serde_json::Value::Null),
            ("create".to_owned(), json!("3")),
        ]
    );
    let pause = &events[2];
    assert_eq!(pause["actor"]["id"], "ops-42");
    assert_eq!(pause["reason"], "bulk import");
    assert_eq!(pause["resource"]["type"], "public.customer");
    let status = run_ok(&["capture", "pg", "status", "--source", &source]);
    assert!(!status.contains("paused:"), "{status}");
}

/// WAL mode's replication client connects over TCP only: `install --mode
/// wal` through the database's Unix-domain socket installs and warns that
/// a drainer cannot use that string; a drainer given it is refused at once,
/// naming the socket and what to give instead (it looked the path up as a
/// host name and retried for ever), and the change it did not drain waits
/// in the slot for a drainer given the TCP address.
#[test]
fn a_unix_socket_source_is_warned_of_at_install_and_refused_by_the_wal_drainer_losing_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let db = PgDb::logical("tm_wal_socket");
    db.sql("CREATE TABLE item (id int PRIMARY KEY, qty int)");
    let tcp = db.source();
    let sockets = db.text("SHOW unix_socket_directories");
    let socket_dir = sockets.split(',').next().unwrap().trim();
    let socket = format!(
        "host={socket_dir} port={} user={} dbname={}",
        db.text("SHOW port"),
        db.text("SELECT current_user"),
        db.name
    );
    // Install works through either; through the socket it warns that a
    // drainer cannot use that string, through TCP it does not.
    let install_through = |source: &str| {
        let out = cli(&[
            "capture",
            "pg",
            "install",
            "--source",
            source,
            "--mode",
            "wal",
            "--tables",
            "public.item",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        stderr
    };
    let warned = install_through(&socket);
    assert!(
        warned.contains(
            "a drainer (`capture pg run`, serve's [capture]) cannot stream through this --source"
        ) && warned.contains("is a Unix-domain socket"),
        "{warned}"
    );
    let quiet = install_through(&tcp);
    assert!(!quiet.contains("warning"), "{quiet}");
    db.sql("INSERT INTO item VALUES (1, 5)");
    let out = drain_once(&socket, &server);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("host \"{socket_dir}\" is a Unix-domain socket"))
            && stderr.contains("host=127.0.0.1"),
        "{stderr}"
    );
    let out = drain_once(&tcp, &server);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, page) = server.get("/v1/events?resource_type=public.item", &server.admin);
    assert_eq!(page["events"].as_array().unwrap().len(), 1, "{page}");
}

/// `serve`'s connections to PostgreSQL (the shared store's pool, the
/// drainer's) encrypt as their `sslmode` asks, as the server sees them in
/// `pg_stat_ssl`: with `require` every one, with `disable` none; the
/// changes are drained either way.
#[test]
fn serve_connects_to_postgresql_encrypted_as_sslmode_asks() {
    let app = PgDb::new("tm_tls_app");
    app.sql("CREATE TABLE item (id int PRIMARY KEY, qty int)");
    let store = PgDb::new("tm_tls_store");
    // One data dir: the shared ledger is signed with its key.
    let dir = tempfile::tempdir().unwrap();
    for (mode, encrypted) in [("require", true), ("disable", false)] {
        let source = format!("{} sslmode={mode}", app.source());
        if encrypted {
            install(&source, "trigger", "public.item", &[]);
        }
        let mut server = Server::start_with(
            dir.path(),
            &[
                "--database",
                &format!("{} sslmode={mode}", store.source()),
                "--capture-source",
                &source,
            ],
        );
        let id = if encrypted { 1 } else { 2 };
        app.sql(&format!("INSERT INTO item VALUES ({id}, 5)"));
        crate::wait_for(
            &format!("the change drained with sslmode={mode}"),
            std::time::Duration::from_secs(20),
            || {
                let (_, page) = server.get(
                    &format!("/v1/events?resource_type=public.item&resource_id={id}"),
                    &server.admin,
                );
                (page["events"].as_array()?.len() == 1).then_some(())
            },
        );
        // Each of serve's sessions in the two databases, as the server sees
        // them (the test's own, unencrypted, are short and not counted once
        // gone: polled until only serve's are left).
        let sessions = format!(
            "SELECT count(*) FILTER (WHERE s.ssl = {encrypted}) || '/' || count(*)
             FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
             WHERE a.datname IN ('{}', '{}') AND a.pid <> pg_backend_pid()",
            app.name, store.name
        );
        crate::wait_for(
            &format!("every session of serve with ssl = {encrypted} (sslmode={mode})"),
            std::time::Duration::from_secs(10),
            || {
                let counts = app.text(&sessions);
                let (matching, all) = counts.split_once('/')?;
                (matching == all && all.parse::<u32>().ok()? >= 2).then_some(())
            },
        );
        server.stop();
    }
}

/// The drainer on the application's side sending to a server behind a
/// TLS-terminating proxy whose certificate a private authority signed:
/// refused on that certificate while the authority is not named (the
/// changes stay in the outbox), every change delivered once it is
/// (`TRAILMARK_CA_FILE`), and the trail verified through the same proxy.
#[test]
fn the_drainer_sends_over_https_to_a_server_whose_authority_it_was_given() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (cert, key) = crate::self_signed(dir.path());
    let port = crate::free_port();
    let target = server.url.rsplit(':').next().unwrap().to_owned();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/tls_proxy.py");
    let mut proxy = std::process::Command::new("python3")
        .arg(script)
        .args([&port.to_string(), &target])
        .args([&cert, &key])
        .spawn()
        .unwrap();
    crate::wait_for(
        "the proxy to listen",
        std::time::Duration::from_secs(10),
        || std::net::TcpStream::connect(("127.0.0.1", port)).ok(),
    );
    let db = PgDb::new("tm_cli_https_drain");
    db.sql("CREATE TABLE item (id int PRIMARY KEY, qty int)");
    let source = db.source();
    install(&source, "trigger", "public.item", &[]);
    db.sql("INSERT INTO item SELECT g, g FROM generate_series(1, 50) g");
    let url = format!("https://127.0.0.1:{port}");
    let cli_over_https = |args: &[&str], ca_file: Option<&std::path::Path>| {
        let mut command = std::process::Command::new(crate::BIN);
        command.args(args).env_remove("TRAILMARK_CA_FILE");
        if let Some(file) = ca_file {
            command.env("TRAILMARK_CA_FILE", file);
        }
        command.output().unwrap()
    };
    let drain = [
        "capture",
        "pg",
        "run",
        "--once",
        "--source",
        &source,
        "--server",
        &url,
        "--key",
        &server.admin,
    ];
    let refused = cli_over_https(&drain, None);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("UnknownIssuer"), "{said}");
    assert_eq!(db.text("SELECT count(*)::text FROM trailmark.outbox"), "50");

    succeeded(&cli_over_https(&drain, Some(&cert)));
    assert_eq!(db.text("SELECT count(*)::text FROM trailmark.outbox"), "0");
    let (_, page) = server.get(
        "/v1/events?resource_type=public.item&limit=100",
        &server.admin,
    );
    assert_eq!(page["events"].as_array().unwrap().len(), 50);
    succeeded(&cli_over_https(
        &[
            "verify",
            "--url",
            &url,
            "--key",
            &server.admin,
            "--tenant",
            "default",
        ],
        Some(&cert),
    ));
    proxy.kill().unwrap();
    proxy.wait().unwrap();
}

/// What a database takes and no event may carry never stops the drain, in
/// either mode: a text primary key empty or of white space alone is written
/// out (`<empty>`, `<U+0020>`), an actor type the application's context
/// names and the ledger does not know ("robot": set by `set_config`, or by a
/// `set_context` older than capture version 18) becomes `unknown`, and a
/// jsonb value nested deeper than the ledger reads is kept as its JSON
/// text, each original in `metadata.capture_repairs`. Each stopped the
/// drain at its row ("resource.id: must not be empty", "actor.type: must be
/// one of …", "nested deeper than 16 levels"; "it stays in the outbox"), and
/// no later change reached the trail.
#[test]
fn what_a_database_takes_and_no_event_may_carry_never_stops_the_drain() {
    for (mode, db) in [
        ("trigger", PgDb::new("tm_blank_key")),
        ("wal", PgDb::logical("tm_blank_key_wal")),
    ] {
        db.sql("CREATE TABLE tag (id text PRIMARY KEY, v text)");
        let source = db.source();
        install(&source, mode, "public.tag", &[]);
        db.sql("INSERT INTO tag VALUES ('', 'empty'), ('  ', 'spaces')");
        // `trailmark.set_context` refuses "robot" (capture version 18):
        // the context written as a version before it did, or by hand.
        db.sql(if mode == "wal" {
            r#"BEGIN; SELECT pg_logical_emit_message(true, 'trailmark', '{"actor_id": "r2", "actor_type": "robot"}'),
                             pg_logical_emit_message(true, 'trailmark.end', '');
               INSERT INTO tag VALUES ('r2', 'robot'); COMMIT"#
        } else {
            r"BEGIN; SELECT set_config('trailmark.actor_id', 'r2', true),
                             set_config('trailmark.actor_type', 'robot', true);
               INSERT INTO tag VALUES ('r2', 'robot'); COMMIT"
        });
        db.sql("INSERT INTO tag VALUES ('ok', 'after')");
        db.sql("CREATE TABLE doc (id int PRIMARY KEY, body jsonb)");
        install(&source, mode, "public.doc", &[]);
        let deep = format!("{}1{}", "[".repeat(20), "]".repeat(20));
        db.sql(&format!("INSERT INTO doc VALUES (1, '{deep}')"));
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(dir.path());
        succeeded(&drain_once(&source, &server));
        let (_, docs) = server.get("/v1/events?resource_type=public.doc", &server.admin);
        let e = &docs["events"][0];
        assert_eq!(e["changes"]["body"]["new"], json!(deep), "{mode}: {e}");
        assert_eq!(
            e["metadata"]["capture_repairs"]["changes.body.new"]["kept_as"], "its JSON text",
            "{mode}: {e}"
        );
        let (_, page) = server.get("/v1/events?resource_type=public.tag", &server.admin);
        let mut got: Vec<(String, String, Value)> = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["resource"]["id"].as_str().unwrap().to_owned(),
                    format!(
                        "{}/{}",
                        e["actor"]["type"].as_str().unwrap(),
                        e["actor"]["id"].as_str().unwrap()
                    ),
                    e["metadata"]["capture_repairs"].clone(),
                )
            })
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        // Without context: the role in trigger mode; the WAL names none.
        let nobody = if mode == "wal" {
            "unknown/unknown"
        } else {
            "unknown/postgres"
        };
        assert_eq!(
            got,
            [
                (
                    "<U+0020><U+0020>".to_owned(),
                    nobody.to_owned(),
                    json!({"resource.id": {"value": "  ", "error": "must not be white space alone"}})
                ),
                (
                    "<empty>".to_owned(),
                    nobody.to_owned(),
                    json!({"resource.id": {"value": "", "error": "must not be empty"}})
                ),
                ("ok".to_owned(), nobody.to_owned(), Value::Null),
                (
                    "r2".to_owned(),
                    "unknown/r2".to_owned(),
                    json!({"actor.type": {"value": "robot", "error": "must be one of user | service | system | anonymous | unknown"}})
                ),
            ],
            "{mode}"
        );
    }
}
