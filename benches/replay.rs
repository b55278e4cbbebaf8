//! Issue 5: `replay/10000_ops` — replaying a block of 10,000 calls (rig with the start root and
//! the log, the calls, the closing checkpoint) beside playing the same block (the calls and the
//! checkpoint that produces the log) in the same run. Target: replay throughput ≥ 0.8× play.
//!
//! The block: produces and consumes with exact patterns on 200 channels, a tenth of the
//! consumes joining two channels, so about half the calls fire a COMM. Space construction is
//! outside the timed region; the event log is on in both (play needs it to make the log).
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use rhospace::spaces::merkle::EMPTY_ROOT;
use rhospace::{ExactMatch, Space, SpaceConfig};

type S = Space<u64, u64, u64, u64, ExactMatch>;

#[derive(Clone, Copy)]
enum Call {
    Produce(u64, u64),
    Consume(u64, u64, u64),
    Join([u64; 2], [u64; 2], u64),
}

fn block(n: usize) -> Vec<Call> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|i| {
            let r = next();
            let ch = r % 200;
            let v = (r >> 8) % 4;
            match r >> 32 & 15 {
                0..=8 => Call::Produce(ch, v),
                9 => Call::Join([ch, (ch + 1) % 200], [v, (v + 1) % 4], i as u64),
                _ => Call::Consume(ch, v, i as u64),
            }
        })
        .collect()
}

/// Makes the calls; every call of the block is accepted (in play and in its replay).
fn run(s: &S, calls: &[Call]) -> usize {
    const REFUSED: &str = "a call of the benchmark block was refused";
    let mut comms = 0;
    for c in calls {
        let fired = match *c {
            Call::Produce(ch, v) => s.produce(ch, v, false).expect(REFUSED).is_some(),
            Call::Consume(ch, v, k) => s
                .consume([ch], [v], k, false, &[])
                .expect(REFUSED)
                .is_some(),
            Call::Join(chs, vs, k) => s.consume(chs, vs, k, false, &[]).expect(REFUSED).is_some(),
        };
        comms += usize::from(fired);
    }
    comms
}

fn bench(c: &mut Criterion) {
    let calls = block(10_000);
    let new_space = || -> S { Space::new(ExactMatch, SpaceConfig::new()) };
    let played = new_space();
    let fired = run(&played, &calls);
    let log = played.create_checkpoint().unwrap().log;
    assert!(fired > 1_000, "the block fires COMMs ({fired})");

    let mut g = c.benchmark_group("replay");
    g.sample_size(20);
    g.bench_function("10000_ops_play", |b| {
        b.iter_batched(
            new_space,
            |s| {
                run(&s, &calls);
                s.create_checkpoint().unwrap().root
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("10000_ops", |b| {
        // A validator receives the block's log by value: it moves into the rig.
        b.iter_batched(
            || (new_space(), log.clone()),
            |(s, log)| {
                s.rig(&EMPTY_ROOT, log).unwrap();
                run(&s, &calls);
                s.create_checkpoint().unwrap().root
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
