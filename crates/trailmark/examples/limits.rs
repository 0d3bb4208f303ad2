//! The machine's limits for the write path (bench/limits/run.sh), measured
//! on the rows Trailmark stores:
//!
//! - `limits sqlite DIR SECONDS BATCH`: the events of `bench/query/load.lua`
//!   (varied actors, records and actions) sealed as the server seals them,
//!   inserted into a SQLite table of `entries`' columns with no index but
//!   its primary key, `BATCH` rows per transaction, WAL and
//!   `synchronous = FULL` (one fsync per batch, as Trailmark's commit) and
//!   the store's 64 MiB page cache.
//! - `limits sqlite-indexed DIR SECONDS BATCH`: the same with the indexes
//!   `entries` has in the embedded store (no search index): what SQLite
//!   itself charges for them.
//! - `limits split DIR SECONDS BATCH`: the design issue 16 proposes, on
//!   the same rows: one thread appends to `entries` with only the indexes
//!   the acknowledgement needs (tenant and seq, tenant and id), `BATCH` rows
//!   per fsync; a second thread keeps the query indexes in another database
//!   file (its own write lock), as tables keyed by (tenant, value, pos),
//!   filled in large sorted batches. Prints both rates and the largest lag.
//! - `limits sha256 SECONDS`: RFC 9162 leaf hashes of those envelopes plus
//!   one interior node per leaf (what appending to the tree costs), on one
//!   core.
//!
//! Each prints one line: `<what> <per second>`.
// A measuring tool: rates are printed as floats, a failure ends the run.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::cast_precision_loss)]

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::json;
use trailmark_core::{EventId, Salt, SealContext, Sealed, Seq, TenantId, Timestamp};

/// A small, fast generator (xorshift), seeded: the same rows every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// `n` events as `bench/query/load.lua` sends them, sealed at seq 1….
fn sealed(n: u64) -> Vec<Sealed> {
    let actions = [
        "create", "update", "update", "update", "delete", "login", "export",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let tenant = TenantId::new("bench").unwrap();
    let now = Timestamp::from_unix_millis(1_764_547_200_000).unwrap();
    (1..=n)
        .map(|seq| {
            let actor = rng.below(100_000) + 1;
            let resource = rng.below(1_000_000) + 1;
            #[allow(clippy::cast_possible_truncation)]
            let action = actions[rng.below(actions.len() as u64) as usize];
            let value = json!({
                "tenant": "bench",
                "actor": {"id": format!("u{actor}"), "type": "user", "name": format!("user{actor}@example.com")},
                "action": action,
                "resource": {"type": "Invoice", "id": resource.to_string()},
                "changes": {"total": {"old": format!("{}.00", resource % 997), "new": format!("{}.50", resource % 991)}},
                "context": {"ip": format!("10.{}.{}.{}", actor % 256, resource % 256, (actor + resource) % 256)},
            });
            let event = trailmark_core::Event::from_json(&value).unwrap();
            let mut random = [0u8; 10];
            random[..8].copy_from_slice(&seq.to_be_bytes());
            let mut salt = [7u8; 32];
            salt[..8].copy_from_slice(&seq.to_be_bytes());
            event
                .seal(SealContext {
                    seq: Seq::new(seq).unwrap(),
                    received_at: now,
                    default_tenant: &tenant,
                    generated_id: EventId::new_v7(now, random),
                    salt: Salt::from_bytes(salt),
                })
                .unwrap()
        })
        .collect()
}

/// The columns of the embedded store's `entries` (its indexes apart).
const ENTRIES: &str = "CREATE TABLE entries (pos INTEGER PRIMARY KEY, tenant TEXT NOT NULL,
    seq INTEGER NOT NULL, id TEXT NOT NULL, occurred_at INTEGER NOT NULL, actor_id TEXT NOT NULL,
    action TEXT NOT NULL, resource_type TEXT, resource_id TEXT, outcome TEXT NOT NULL,
    envelope BLOB NOT NULL, leaf_hash BLOB NOT NULL, payload TEXT, salt BLOB, ip TEXT,
    request_id TEXT);";

/// The indexes the embedded store's migrations leave on `entries`, read
/// from them (so a migration that adds or drops one changes the probe):
/// their `CREATE [UNIQUE] INDEX … ON entries` statements, less those a
/// later `DROP INDEX` removed.
fn store_indexes() -> Vec<String> {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../trailmark-store-sqlite/migrations"
    );
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|f| f.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    let mut indexes: Vec<(String, String)> = Vec::new();
    for file in files {
        for line in std::fs::read_to_string(file).unwrap().lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words[..] {
                ["CREATE", "INDEX", name, "ON", "entries", ..]
                | ["CREATE", "UNIQUE", "INDEX", name, "ON", "entries", ..] => {
                    indexes.push((name.to_owned(), line.to_owned()));
                }
                ["DROP", "INDEX", name] | ["DROP", "INDEX", "IF", "EXISTS", name] => {
                    let name = name.trim_end_matches(';');
                    indexes.retain(|(n, _)| n != name);
                }
                _ => {}
            }
        }
    }
    indexes.into_iter().map(|(_, sql)| sql).collect()
}

/// Removes a database and its WAL files (a stale WAL beside a new file
/// would be read into it).
fn remove_db(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}

/// A fresh database at `path` with the table `entries`, WAL,
/// `synchronous = FULL` and the store's 64 MiB cache, and `indexes`.
fn entries_db(path: &std::path::Path, indexes: &[String]) -> rusqlite::Connection {
    remove_db(path);
    let db = rusqlite::Connection::open(path).unwrap();
    db.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA cache_size = -65536;",
    )
    .unwrap();
    db.execute_batch(ENTRIES).unwrap();
    db.execute_batch(&indexes.join("\n")).unwrap();
    db
}

/// Inserts the next `batch` rows (cycling through `rows`) in one
/// transaction; answers each one's position, row and id.
fn append_batch<'a>(
    db: &mut rusqlite::Connection,
    rows: &'a [Sealed],
    pos: &mut i64,
    batch: usize,
) -> Vec<(i64, &'a Sealed, String)> {
    let mut written = Vec::with_capacity(batch);
    let tx = db.transaction().unwrap();
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO entries VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, NULL)",
            )
            .unwrap();
        for _ in 0..batch {
            #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
            let row = &rows[(*pos as usize) % rows.len()];
            *pos += 1;
            let e = &row.envelope;
            // Unique as the rows repeat: the id's last 12 digits are the
            // position.
            let id = format!("{}{:012x}", &e.id.to_string()[..24], *pos);
            insert
                .execute(rusqlite::params![
                    *pos,
                    e.tenant.as_str(),
                    *pos,
                    id,
                    e.occurred_at.unix_millis(),
                    e.actor_id,
                    e.action,
                    e.resource_type,
                    e.resource_id,
                    "success",
                    row.leaf_bytes.as_bytes(),
                    trailmark_log::leaf_hash(row.leaf_bytes.as_bytes()).as_bytes(),
                    row.payload_json.as_str(),
                    row.salt.as_bytes(),
                    row.payload["context"]["ip"].as_str(),
                ])
                .unwrap();
            written.push((*pos, row, id));
        }
    }
    tx.commit().unwrap();
    written
}

fn sqlite(dir: &str, seconds: u64, batch: usize, indexed: bool) {
    let rows = sealed(200_000);
    let path = std::path::Path::new(dir).join("limits.sqlite3");
    let chosen = if indexed { store_indexes() } else { Vec::new() };
    let mut db = entries_db(&path, &chosen);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut written = 0u64;
    let mut pos = 0i64;
    while Instant::now() < deadline {
        written += append_batch(&mut db, &rows, &mut pos, batch).len() as u64;
    }
    let rate = written as f64 / started.elapsed().as_secs_f64();
    let what = if indexed {
        "sqlite-indexed"
    } else {
        "sqlite-no-index"
    };
    println!("{what} rows/s {rate:.0} ({written} rows, batches of {batch})");
    drop(db);
    remove_db(&path);
}

/// One row's position and its key in each of [`SPLIT_INDEXES`] (`None`:
/// not indexed there, as a partial index leaves it out).
type IndexRow = (i64, [Option<String>; 7]);

const SPLIT_INDEXES: [&str; 7] = ["time", "actor", "resource", "action", "ip", "outcome", "id"];

fn index_keys(pos: i64, row: &Sealed, id: &str) -> IndexRow {
    let e = &row.envelope;
    let t = e.tenant.as_str();
    (
        pos,
        [
            Some(format!("{t}\u{1f}{:015}", e.occurred_at.unix_millis())),
            Some(format!("{t}\u{1f}{}", e.actor_id)),
            Some(format!(
                "{t}\u{1f}{}\u{1f}{}",
                e.resource_type.as_deref().unwrap_or(""),
                e.resource_id.as_deref().unwrap_or("")
            )),
            Some(format!("{t}\u{1f}{}", e.action)),
            row.payload["context"]["ip"]
                .as_str()
                .map(|ip| format!("{t}\u{1f}{ip}")),
            Some(format!("{t}\u{1f}success")),
            Some(id.to_owned()),
        ],
    )
}

#[allow(clippy::too_many_lines)]
fn split(dir: &str, seconds: u64, batch: usize) {
    use std::sync::mpsc;
    let rows = sealed(200_000);
    let main = std::path::Path::new(dir).join("split-main.sqlite3");
    let index = std::path::Path::new(dir).join("split-index.sqlite3");
    remove_db(&index);
    let (to_indexer, from_appender) = mpsc::channel::<Vec<IndexRow>>();
    let index_path = index.clone();
    let index_thread = std::thread::spawn(move || {
        let mut db = rusqlite::Connection::open(&index_path).unwrap();
        let mut ddl = String::from(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536;",
        );
        for name in SPLIT_INDEXES {
            let _ = write!(
                ddl,
                "CREATE TABLE ix_{name} (key TEXT NOT NULL, pos INTEGER NOT NULL, PRIMARY KEY (key, pos)) WITHOUT ROWID;"
            );
        }
        db.execute_batch(&ddl).unwrap();
        let (mut indexed, mut max_lag_rows) = (0u64, 0u64);
        let mut pending: Vec<IndexRow> = Vec::new();
        let mut open = true;
        while open {
            // Take what arrived (waiting for the first), up to 100,000 rows.
            match from_appender.recv() {
                Ok(rows) => pending.extend(rows),
                Err(_) => open = false,
            }
            while pending.len() < 100_000 {
                match from_appender.try_recv() {
                    Ok(rows) => pending.extend(rows),
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            if pending.is_empty() {
                continue;
            }
            max_lag_rows = max_lag_rows.max(pending.len() as u64);
            let tx = db.transaction().unwrap();
            for (i, name) in SPLIT_INDEXES.iter().enumerate() {
                let mut keys: Vec<(&str, i64)> = pending
                    .iter()
                    .filter_map(|(pos, k)| k[i].as_deref().map(|k| (k, *pos)))
                    .collect();
                keys.sort_unstable();
                let mut insert = tx
                    .prepare_cached(&format!("INSERT INTO ix_{name} VALUES (?1, ?2)"))
                    .unwrap();
                for (key, pos) in keys {
                    insert.execute(rusqlite::params![key, pos]).unwrap();
                }
            }
            tx.commit().unwrap();
            indexed += pending.len() as u64;
            pending.clear();
        }
        (indexed, max_lag_rows)
    });
    // Only what the acknowledgement needs: the store's unique indexes.
    let unique: Vec<String> = store_indexes()
        .into_iter()
        .filter(|sql| sql.starts_with("CREATE UNIQUE"))
        .collect();
    let mut db = entries_db(&main, &unique);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut pos = 0i64;
    while Instant::now() < deadline {
        let keys = append_batch(&mut db, &rows, &mut pos, batch)
            .into_iter()
            .map(|(pos, row, id)| index_keys(pos, row, &id))
            .collect();
        to_indexer.send(keys).unwrap();
    }
    let appended_in = started.elapsed().as_secs_f64();
    drop(to_indexer);
    let (indexed, max_lag) = index_thread.join().unwrap();
    let caught_up_in = started.elapsed().as_secs_f64();
    let (append_rate, index_rate) = (pos as f64 / appended_in, indexed as f64 / caught_up_in);
    println!(
        "split append rows/s {append_rate:.0} indexed rows/s {index_rate:.0} (largest index batch {max_lag} rows; caught up {:.1} s after the last append)",
        caught_up_in - appended_in
    );
    drop(db);
    remove_db(&main);
    remove_db(&index);
}

fn sha256(seconds: u64) {
    let rows = sealed(10_000);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut hashed = 0u64;
    let mut last = trailmark_log::leaf_hash(b"");
    while Instant::now() < deadline {
        for row in &rows {
            let leaf = trailmark_log::leaf_hash(row.leaf_bytes.as_bytes());
            last = trailmark_log::node_hash(&last, &leaf);
        }
        hashed += rows.len() as u64;
    }
    let rate = hashed as f64 / started.elapsed().as_secs_f64();
    println!(
        "sha256 leaves/s {rate:.0} (a leaf and a node each, one core; last {})",
        &last.to_base64()[..8]
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["sqlite", dir, seconds, batch] => {
            sqlite(dir, seconds.parse().unwrap(), batch.parse().unwrap(), false);
        }
        ["sqlite-indexed", dir, seconds, batch] => {
            sqlite(dir, seconds.parse().unwrap(), batch.parse().unwrap(), true);
        }
        ["split", dir, seconds, batch] => {
            split(dir, seconds.parse().unwrap(), batch.parse().unwrap());
        }
        ["sha256", seconds] => sha256(seconds.parse().unwrap()),
        _ => {
            eprintln!(
                "usage: limits sqlite|sqlite-indexed DIR SECONDS BATCH | limits sha256 SECONDS"
            );
            std::process::exit(2);
        }
    }
}
