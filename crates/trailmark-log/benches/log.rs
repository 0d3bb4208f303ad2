//! Tree throughput, side by side with ct-merkle in the same run.
//!
//! Run: `cargo bench -p trailmark-log --bench log` (figures in
//! bench/results/log.md). Set `TRAILMARK_BENCH_SIZES=1000000` to skip 10^7.

// Benchmarks are tooling: panicking on a broken setup is the right response.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ct_merkle::mem_backed_tree::MemoryBackedTree;
use sha2_11::Sha256;
use trailmark_log::{
    CompactRange, Hash, LeafIndex, MemoryTree, TreeSize, leaf_hash, verify_consistency,
    verify_inclusion,
};

/// A typical envelope is 300–400 bytes of canonical JSON.
const ENVELOPE_LEN: usize = 350;

fn sizes() -> Vec<u64> {
    std::env::var("TRAILMARK_BENCH_SIZES").map_or_else(
        |_| vec![1_000_000, 10_000_000],
        |s| s.split(',').map(|n| n.trim().parse().unwrap()).collect(),
    )
}

/// A deterministic stand-in for random indexes (`SplitMix64`).
struct Indexes(u64);

impl Indexes {
    fn next_below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

fn leaf_for(i: u64) -> Hash {
    leaf_hash(&i.to_le_bytes())
}

fn appends(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Elements(1));
    let envelope = vec![b'x'; ENVELOPE_LEN];
    group.bench_function("leaf_hash_350_bytes", |b| {
        b.iter(|| leaf_hash(black_box(&envelope)));
    });

    // Appending a known leaf hash: what the writer does per entry.
    let mut range = CompactRange::new();
    let leaf = leaf_for(1);
    group.bench_function("trailmark_compact_range_append", |b| {
        b.iter(|| {
            range
                .append(black_box(leaf), |id, h| {
                    black_box((id, h));
                })
                .unwrap();
        });
    });
    // The same, keeping every complete node in memory (what a store persists).
    let mut tree = MemoryTree::new();
    group.bench_function("trailmark_memory_tree_push", |b| {
        b.iter(|| tree.push(black_box(leaf)).unwrap());
    });
    // ct-merkle hashes the leaf itself and keeps every node: compare with
    // our leaf hash + push of the same 32-byte item.
    let mut ct = MemoryBackedTree::<Sha256, [u8; 32]>::new();
    group.bench_function("ct_merkle_push_32_byte_leaf", |b| {
        b.iter(|| ct.push(black_box([7u8; 32])));
    });
    let mut tree = MemoryTree::new();
    group.bench_function("trailmark_hash_and_push_32_byte_leaf", |b| {
        b.iter(|| tree.push(leaf_hash(black_box(&[7u8; 32]))).unwrap());
    });
    group.finish();
}

fn proofs_at(c: &mut Criterion, n: u64) {
    let mut ours = MemoryTree::new();
    let mut ct = MemoryBackedTree::<Sha256, [u8; 32]>::new();
    for i in 0..n {
        let leaf = i.to_le_bytes();
        let mut item = [0u8; 32];
        item[..8].copy_from_slice(&leaf);
        ours.push(leaf_hash(&item)).unwrap();
        ct.push(item);
    }
    let size = TreeSize::new(n).unwrap();
    let root = ours.root();
    assert_eq!(root.as_bytes().as_slice(), ct.root().as_bytes().as_slice());

    let mut group = c.benchmark_group(format!("proofs_{n}"));
    group.throughput(Throughput::Elements(1));
    let mut idx = Indexes(1);
    group.bench_function("trailmark_inclusion_proof", |b| {
        b.iter(|| {
            let i = LeafIndex::new(idx.next_below(n)).unwrap();
            black_box(ours.inclusion_proof(i, size).unwrap())
        });
    });
    let mut idx = Indexes(1);
    group.bench_function("ct_merkle_inclusion_proof", |b| {
        b.iter(|| black_box(ct.prove_inclusion(idx.next_below(n) as usize)));
    });
    let mut idx = Indexes(2);
    group.bench_function("trailmark_verify_inclusion", |b| {
        b.iter_batched(
            || {
                let i = idx.next_below(n);
                let proof = ours
                    .inclusion_proof(LeafIndex::new(i).unwrap(), size)
                    .unwrap();
                let mut item = [0u8; 32];
                item[..8].copy_from_slice(&i.to_le_bytes());
                (leaf_hash(&item), LeafIndex::new(i).unwrap(), proof)
            },
            |(leaf, i, proof)| verify_inclusion(&leaf, i, size, &proof, &root).unwrap(),
            BatchSize::SmallInput,
        );
    });
    let mut idx = Indexes(3);
    group.bench_function("trailmark_consistency_proof", |b| {
        b.iter(|| {
            let first = TreeSize::new(idx.next_below(n) + 1).unwrap();
            black_box(ours.consistency_proof(first, size).unwrap())
        });
    });
    let mut idx = Indexes(3);
    group.bench_function("ct_merkle_consistency_proof", |b| {
        b.iter(|| black_box(ct.prove_consistency((n - 1 - idx.next_below(n)) as usize)));
    });
    let mut idx = Indexes(4);
    group.bench_function("trailmark_verify_consistency", |b| {
        b.iter_batched(
            || {
                let first = TreeSize::new(idx.next_below(n) + 1).unwrap();
                let proof = ours.consistency_proof(first, size).unwrap();
                (first, ours.root_at(first).unwrap(), proof)
            },
            |(first, first_root, proof)| {
                verify_consistency(first, size, &proof, &first_root, &root).unwrap();
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn proofs(c: &mut Criterion) {
    for n in sizes() {
        proofs_at(c, n);
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

criterion_group! { name = benches; config = config(); targets = appends, proofs }
criterion_main!(benches);
