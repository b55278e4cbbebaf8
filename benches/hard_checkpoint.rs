//! Issue 5: `hard_checkpoint/{changed_10,changed_1000}_of_{1000,100000}` — the time to take a
//! hard checkpoint after changing k of n channels (incremental), beside a baseline that rehashes
//! every channel (`full_rehash`, `Space::full_state_root`). The k changes are made outside the
//! timed region. Also a checkpoint of 1,000 changed channels to redb, and a reset from disk.
#![allow(missing_docs)]

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use rhospace::{ExactMatch, RedbHistory, Space, SpaceConfig};

type S = Space<u64, u64, u64, u64, ExactMatch>;

fn filled(n: u64) -> S {
    let s: S = Space::new(ExactMatch, SpaceConfig::new()).with_event_log(false);
    for c in 0..n {
        s.produce(c, c, false).unwrap();
    }
    s.create_checkpoint().unwrap();
    s
}

/// Changes `k` channels (spread over the space): one datum out, another in.
fn change(s: &S, n: u64, k: u64, round: u64) {
    let stride = n / k;
    for i in 0..k {
        let c = i * stride;
        let _ = s.consume([c], [c + round * n], 0, false, &[]);
        s.produce(c, c + (round + 1) * n, false).unwrap();
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("hard_checkpoint");
    g.sample_size(10);
    for n in [1_000u64, 100_000] {
        for k in [10u64, 1_000] {
            let s = filled(n);
            let mut round = 0u64;
            g.bench_function(format!("changed_{k}_of_{n}"), |b| {
                b.iter_batched(
                    || {
                        change(&s, n, k, round);
                        round += 1;
                    },
                    |_| s.create_checkpoint().unwrap(),
                    BatchSize::PerIteration,
                )
            });
            let s = filled(n);
            let mut round = 0u64;
            g.bench_function(format!("full_rehash_{k}_of_{n}"), |b| {
                b.iter_batched(
                    || {
                        change(&s, n, k, round);
                        round += 1;
                    },
                    |_| s.full_state_root(),
                    BatchSize::PerIteration,
                )
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("hard_checkpoint_disk");
    g.sample_size(10);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbHistory::open(dir.path().join("bench.redb")).unwrap());
    let n = 10_000u64;
    let s: S = Space::new(ExactMatch, SpaceConfig::new())
        .with_event_log(false)
        .with_history(store.clone());
    for c in 0..n {
        s.produce(c, c, false).unwrap();
    }
    let root = s.create_checkpoint().unwrap().root;
    let mut round = 0u64;
    g.bench_function("redb_changed_1000_of_10000", |b| {
        b.iter_batched(
            || {
                change(&s, n, 1_000, round);
                round += 1;
            },
            |_| s.create_checkpoint().unwrap(),
            BatchSize::PerIteration,
        )
    });
    drop(s);
    g.bench_function("redb_reset_10000_channels_new_space", |b| {
        b.iter_batched(
            || -> S { Space::new(ExactMatch, SpaceConfig::new()).with_history(store.clone()) },
            |fresh| {
                fresh.reset(&root).unwrap();
                fresh
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
