//! Phlogiston benchmarks.
//!
//! * `phlogiston/charge_operations/{shared,fast_path,baseline_local_counter}/{100,1000,10000}`:
//!   N mixed operations (send with a data size, receive on a join, create a channel), seeded,
//!   each costed from the default [`CostTable`] and charged. `baseline_local_counter` does the
//!   same arithmetic against a plain local `u64`. Throughput is in operations (= charges).
//! * `phlogiston/contended/{shared,fast_path}/{1,2}`: 1 or 2 threads charging one meter at
//!   once; threads are spawned per sample outside the timed region and released by a barrier.
//!   Throughput counts the charges of all threads.
//!
//! Every variant uses `iter_custom`, so the total charged is known and checked after timing:
//! the optimiser cannot delete the work, and a wrong total fails the benchmark.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{criterion_main, BenchmarkId, Criterion, Throughput};
use rhospace_phlogiston::{CostTable, PhlogistonMeter};

/// One operation of the mixed workload, with the encoded lengths its cost depends on.
#[derive(Clone, Copy)]
enum Op {
    /// A send of `data_len` bytes on a channel of `channel_len` bytes.
    Send { channel_len: u32, data_len: u32 },
    /// A receive on a join of `channels` channels.
    Receive {
        channels: u32,
        channels_len: u32,
        patterns_len: u32,
        continuation_len: u32,
    },
    /// `new x in ..`.
    NewChannel,
}

impl Op {
    #[inline(always)]
    fn cost(self, table: &CostTable) -> u64 {
        match self {
            Op::Send {
                channel_len,
                data_len,
            } => table.produce(channel_len as usize, data_len as usize),
            Op::Receive {
                channels,
                channels_len,
                patterns_len,
                continuation_len,
            } => table.consume(
                channels as usize,
                channels_len as usize,
                patterns_len as usize,
                continuation_len as usize,
            ),
            Op::NewChannel => table.new_channels(1),
        }
    }
}

/// Tiny xorshift64* so the workload is seeded without a dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u32 {
        (self.next() % n) as u32
    }
}

/// `n` seeded operations: about half sends (1..=256-byte data), a third receives (1..=3-channel
/// joins), the rest channel creations.
fn workload(n: usize) -> Vec<Op> {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ n as u64);
    (0..n)
        .map(|_| match rng.below(6) {
            0..=2 => Op::Send {
                channel_len: 8 + rng.below(32),
                data_len: 1 + rng.below(256),
            },
            3 | 4 => {
                let channels = 1 + rng.below(3);
                Op::Receive {
                    channels,
                    channels_len: channels * (8 + rng.below(32)),
                    patterns_len: channels * (4 + rng.below(16)),
                    continuation_len: 16 + rng.below(128),
                }
            }
            _ => Op::NewChannel,
        })
        .collect()
}

fn charge_operations(c: &mut Criterion) {
    let table = CostTable::default();
    let mut group = c.benchmark_group("phlogiston/charge_operations");
    for n in [100usize, 1_000, 10_000] {
        let ops = workload(n);
        let per_pass: u64 = ops.iter().map(|op| op.cost(&table)).sum();
        group.throughput(Throughput::Elements(n as u64));

        group.bench_with_input(BenchmarkId::new("shared", n), &ops, |b, ops| {
            b.iter_custom(|iters| {
                let meter = PhlogistonMeter::new(u64::MAX);
                let table = black_box(table);
                let start = Instant::now();
                for _ in 0..iters {
                    for op in black_box(ops.as_slice()) {
                        if meter.charge(op.cost(&table)).is_err() {
                            panic!("meter with u64::MAX limit ran out");
                        }
                    }
                }
                let elapsed = start.elapsed();
                assert_eq!(black_box(meter.consumed()), per_pass * iters);
                elapsed
            });
        });

        group.bench_with_input(BenchmarkId::new("fast_path", n), &ops, |b, ops| {
            b.iter_custom(|iters| {
                let meter = PhlogistonMeter::new(u64::MAX);
                let table = black_box(table);
                let mut lease = meter.lease(1 << 20);
                let start = Instant::now();
                for _ in 0..iters {
                    for op in black_box(ops.as_slice()) {
                        if lease.charge(op.cost(&table)).is_err() {
                            panic!("meter with u64::MAX limit ran out");
                        }
                    }
                }
                let elapsed = start.elapsed();
                assert_eq!(lease.finish(), per_pass * iters);
                assert_eq!(black_box(meter.consumed()), per_pass * iters);
                elapsed
            });
        });

        group.bench_with_input(
            BenchmarkId::new("baseline_local_counter", n),
            &ops,
            |b, ops| {
                b.iter_custom(|iters| {
                    let mut left = black_box(u64::MAX);
                    let table = black_box(table);
                    let start = Instant::now();
                    for _ in 0..iters {
                        for op in black_box(ops.as_slice()) {
                            let cost = op.cost(&table);
                            if cost <= left {
                                left -= cost;
                            } else {
                                panic!("local counter ran out");
                            }
                        }
                    }
                    let elapsed = start.elapsed();
                    assert_eq!(u64::MAX - black_box(left), per_pass * iters);
                    elapsed
                });
            },
        );
    }
    group.finish();
}

/// Runs `threads` threads each doing `iters` charges of `cost` (through a lease of `chunk` when
/// `lease` is set) on one meter; returns the slowest thread's time from the common start.
fn run_contended(threads: usize, iters: u64, cost: u64, lease: Option<u64>) -> Duration {
    let meter = Arc::new(PhlogistonMeter::new(u64::MAX));
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let meter = Arc::clone(&meter);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                match lease {
                    Some(chunk) => {
                        let mut lease = meter.lease(chunk);
                        for _ in 0..iters {
                            if lease.charge(black_box(cost)).is_err() {
                                panic!("meter with u64::MAX limit ran out");
                            }
                        }
                        lease.finish();
                    }
                    None => {
                        for _ in 0..iters {
                            if meter.charge(black_box(cost)).is_err() {
                                panic!("meter with u64::MAX limit ran out");
                            }
                        }
                    }
                }
                start.elapsed()
            })
        })
        .collect();
    let slowest = handles
        .into_iter()
        .map(|h| h.join().expect("bench thread panicked"))
        .max()
        .unwrap_or_default();
    assert_eq!(meter.consumed(), cost * iters * threads as u64);
    slowest
}

fn contended(c: &mut Criterion) {
    let mut group = c.benchmark_group("phlogiston/contended");
    for threads in [1usize, 2] {
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_function(BenchmarkId::new("shared", threads), |b| {
            b.iter_custom(|iters| run_contended(threads, iters, 37, None));
        });
        group.bench_function(BenchmarkId::new("fast_path", threads), |b| {
            b.iter_custom(|iters| run_contended(threads, iters, 37, Some(1 << 16)));
        });
    }
    group.finish();
}

/// The criterion group (in a module so the `pub fn` the macro generates can go undocumented).
mod group {
    #![allow(missing_docs)]
    criterion::criterion_group!(benches, super::charge_operations, super::contended);
}

criterion_main!(group::benches);
