//! Per-event costs of the domain rules on the ingest and verify paths.
//!
//! Run: `cargo bench -p trailmark-core --bench core` (figures in
//! bench/results/ingest.md).

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use trailmark_core::{
    CanonicalJson, Envelope, Event, EventId, PayloadDigest, Salt, SealContext, Seq, TenantId,
    Timestamp,
};

fn event_json() -> serde_json::Value {
    json!({"tenant": "bench", "actor": {"id": "42", "type": "user", "name": "alice@example.com"},
           "action": "update", "resource": {"type": "Customer", "id": "61"},
           "changes": {"price": {"old": "19.99", "new": "24.99"}},
           "context": {"ip": "203.0.113.7", "user_agent": "Mozilla/5.0"}})
}

fn per_event(c: &mut Criterion) {
    let value = event_json();
    let event = Event::from_json(&value).unwrap();
    let tenant = TenantId::default_tenant();
    let seal = || {
        event
            .seal(SealContext {
                seq: Seq::new(7).unwrap(),
                received_at: Timestamp::EPOCH,
                default_tenant: &tenant,
                generated_id: EventId::new_v7(Timestamp::EPOCH, [1; 10]),
                salt: Salt::from_bytes([2; 32]),
            })
            .unwrap()
    };
    let sealed = seal();
    let mut group = c.benchmark_group("event");
    group.throughput(Throughput::Elements(1));
    group.bench_function("validate", |b| {
        b.iter(|| Event::from_json(black_box(&value)).unwrap());
    });
    group.bench_function("seal", |b| b.iter(seal));
    group.bench_function("envelope_to_canonical", |b| {
        b.iter(|| sealed.envelope.to_canonical().unwrap());
    });
    group.bench_function("envelope_to_canonical_general", |b| {
        b.iter(|| sealed.envelope.to_canonical_general().unwrap());
    });
    group.bench_function("envelope_from_leaf_bytes", |b| {
        b.iter(|| Envelope::from_leaf_bytes(black_box(sealed.leaf_bytes.as_bytes())).unwrap());
    });
    group.bench_function("payload_digest", |b| {
        b.iter(|| PayloadDigest::compute(black_box(&sealed.payload), &sealed.salt).unwrap());
    });
    group.bench_function("payload_canonical_general", |b| {
        b.iter(|| CanonicalJson::of("payload", black_box(&sealed.payload)).unwrap());
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! { name = benches; config = config(); targets = per_event }
criterion_main!(benches);
