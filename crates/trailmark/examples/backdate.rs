//! Fills an embedded store with varied events received days ago, for the
//! retention benchmark (bench/retention): a trail that is already large,
//! whose old part a policy expires. Not part of Trailmark.
//!
//!     cargo run --release -p trailmark --example backdate -- STORE COUNT DAYS_AGO TENANT
//!
//! STORE is an embedded database file, or a `postgres://` URL.
//! Salts derive from the event number (a benchmark needs no secrecy).

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::cast_possible_wrap)]

use serde_json::json;
use trailmark_core::{Event, EventId, Salt, TenantId, Timestamp};
use trailmark_store::{NewEvent, Store};

const ACTIONS: [&str; 6] = ["create", "update", "update", "update", "delete", "export"];
const TYPES: [&str; 4] = ["Invoice", "Customer", "Order", "Payment"];

fn event(tenant: &str, n: u64, received: Timestamp) -> NewEvent {
    let mix = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16;
    let event = Event::from_json(&json!({
        "tenant": tenant,
        "actor": {"id": format!("u-{}", mix % 5000), "type": "user", "name": format!("Person {}", mix % 5000)},
        "action": ACTIONS[(mix % 6) as usize],
        "resource": {"type": TYPES[((mix / 7) % 4) as usize], "id": format!("{}", (mix / 11) % 100_000)},
        "changes": {"total": {"old": n % 1000, "new": n % 1000 + 1}, "note": {"old": null, "new": format!("note {mix}")}},
        "context": {"ip": format!("10.{}.{}.{}", mix % 200, (mix / 200) % 250, (mix / 50_000) % 250)},
        "metadata": {"ticket": format!("T-{}", mix % 100_000)},
    }))
    .unwrap();
    let mut salt = [0u8; 32];
    salt[..8].copy_from_slice(&n.to_le_bytes());
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&mix.to_be_bytes());
    NewEvent {
        received_at: received,
        generated_id: EventId::new_v7(received, random),
        committed: event.commit_payload(Salt::from_bytes(salt)).unwrap(),
        event,
        default_tenant: TenantId::default_tenant(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (db, count, days, tenant) = (
        &args[1],
        args[2].parse::<u64>().unwrap(),
        args[3].parse::<i64>().unwrap(),
        args[4].clone(),
    );
    if db.starts_with("postgres") {
        let store = trailmark_store_postgres::PgStore::new(db, 4).unwrap();
        store.migrate().await.unwrap();
        fill(&store, count, days, &tenant).await;
    } else {
        let store = trailmark_store_sqlite::SqliteStore::open(db).unwrap();
        fill(&store, count, days, &tenant).await;
        store.shutdown();
    }
    println!("{count} events of tenant {tenant} received {days} days ago in {db}");
}

async fn fill<S: Store>(store: &S, count: u64, days: i64, tenant: &str) {
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let start = now - days * 86_400_000;
    let mut n = 0;
    while n < count {
        let batch = (n..count.min(n + 5000))
            .map(|i| {
                // Spread over one day, in order.
                let at = start + (i * 86_400_000 / count.max(1)) as i64;
                event(tenant, i, Timestamp::from_unix_millis(at).unwrap())
            })
            .collect();
        store.append(batch).await.unwrap();
        n = count.min(n + 5000);
    }
}
