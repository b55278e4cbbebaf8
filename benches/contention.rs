//! Criterion benchmarks of the space under thread contention (issue 6), each beside a naive
//! `RwLock<HashMap<String, Vec<u64>>>` baseline doing the same bookkeeping in the same group.
//!
//! Groups (names `<group>/<variant>/<threads>`, threads 1, 2, 4, 8; the 1-thread case gives
//! the scaling ratio):
//! - `lock_contention_same_channel`:
//!   - `produce`: every thread produces fresh data on one channel (nothing waits there, so
//!     every produce stores). The space is cleared between chunks, outside the timed region, so
//!     memory stays bounded and every chunk starts from the same state.
//!   - `mixed_produce_consume`: every thread alternates a produce on the one channel and an
//!     exact consume of the datum it just produced (always fires; the channel never holds more
//!     than one datum per thread).
//! - `lock_contention_different_channels`:
//!   - `isolated_channels`: as `mixed_produce_consume`, but each thread on its own channel.
//!   - `read_heavy`: each thread reads its own channel (8 data stored) with `data()` 14 times in
//!     16, and produces then consumes a datum on it once each.
//!
//! Between chunks, outside the timed region, every space variant clears its space (and
//! `read_heavy` stores its 8 data again). `mixed_produce_consume` and `isolated_channels` leave
//! it empty, so this drops only the event log, as the hard checkpoint a node takes per block
//! would. Without it a sample's log grew to hundreds of megabytes, and the first-touch page
//! faults of that growth (~30 ns per operation; the kernel serialises them between threads)
//! dominated the figures: `isolated_channels` scaled 1.5-1.6x from one thread to two with the
//! log growing, 1.85-2.06x with it bounded (2 cores).
//!
//! Baselines are `baseline_rwlock_<variant>`: one global `RwLock`, channel names as `String`
//! keys (the shape the issue names), `push` for a produce, find-oldest-equal-and-`remove` for an
//! exact consume, a read lock and a `Vec` clone for `data()`.
//!
//! Timing: one iteration is `OPS_PER_ITER` operations in total, split evenly over the threads,
//! so throughput (`Throughput::Elements`) is total operations per second whatever the thread
//! count. The threads are spawned once per sample, before timing; each chunk of work is
//! released to all of them at once, and timed from the release to the last thread's end. The
//! COMMs and views each thread saw are counted and checked after timing, so the work cannot be
//! optimised away. The space's channels are `u64` (the type the runtime uses); the baseline's
//! are `String`s, as named in the issue.
//!
//! Record the machine (core count) and commit beside any published numbers: with fewer cores
//! than threads, the 4- and 8-thread figures measure oversubscription, not scaling.

#![allow(missing_docs)] // criterion_group! generates undocumented items.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rhospace_matchers::ExactMatch;
use rhospace_spaces::{Space, SpaceConfig};

type ExactSpace = Space<u64, u64, u64, u64, ExactMatch>;
type Baseline = RwLock<HashMap<String, Vec<u64>>>;

/// Operations per criterion iteration, over all threads (divisible by 1, 2, 4 and 8).
const OPS_PER_ITER: u64 = 1_024;
/// Iterations per chunk: the `produce` variant clears its channel between chunks.
const ITERS_PER_CHUNK: u64 = 32;
const THREADS: [usize; 4] = [1, 2, 4, 8];
/// Data kept on each thread's channel in `read_heavy`.
const READ_HEAVY_STORED: u64 = 8;

fn space() -> ExactSpace {
    Space::new(ExactMatch, SpaceConfig::new())
}

/// A distinct datum per (thread, op): nothing any thread produces equals another's.
fn datum(thread: usize, i: u64) -> u64 {
    ((thread as u64 + 1) << 40) | i
}

/// Releases chunks of work to `n` parked threads and times them.
struct Gate {
    /// Chunk number released so far (0: none) and ops per thread in it; guarded by the mutex.
    epoch: Mutex<(u64, u64)>,
    go: Condvar,
    done: Barrier,
    /// Each thread's end of its last chunk, in nanoseconds after `base`.
    ends: Vec<AtomicU64>,
    base: Instant,
}

/// Runs `iters` iterations of `work` on `n` threads spawned once for this sample, and returns
/// the time from each chunk's release to its last thread's end, summed over chunks. `work(t,
/// first, count)` does operations `first..first + count` of thread `t` and returns a tally that
/// `check` receives (per thread, summed over chunks) after timing. `between` runs before each
/// chunk, untimed.
fn timed<W, B, C>(n: usize, iters: u64, work: W, mut between: B, check: C) -> Duration
where
    W: Fn(usize, u64, u64) -> u64 + Sync,
    B: FnMut(),
    C: FnOnce(&[u64]),
{
    let gate = Gate {
        epoch: Mutex::new((0, 0)),
        go: Condvar::new(),
        done: Barrier::new(n + 1),
        ends: (0..n).map(|_| AtomicU64::new(0)).collect(),
        base: Instant::now(),
    };
    let mut total = Duration::ZERO;
    let tallies: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|t| {
                let (gate, work) = (&gate, &work);
                s.spawn(move || {
                    let mut seen = 0;
                    let mut first = 0;
                    let mut tally = 0;
                    loop {
                        let (epoch, ops) = {
                            let mut g = gate.epoch.lock().expect("no panic holds it");
                            while g.0 == seen {
                                g = gate.go.wait(g).expect("no panic holds it");
                            }
                            *g
                        };
                        if ops == 0 {
                            return tally;
                        }
                        seen = epoch;
                        tally += work(t, first, ops);
                        first += ops;
                        let end = gate.base.elapsed().as_nanos() as u64;
                        // Relaxed: the `done` barrier below orders this store before the
                        // main thread's load.
                        gate.ends[t].store(end, Ordering::Relaxed);
                        gate.done.wait();
                    }
                })
            })
            .collect();
        let mut left = iters;
        let mut epoch = 0;
        while left > 0 {
            let chunk = left.min(ITERS_PER_CHUNK);
            left -= chunk;
            between();
            epoch += 1;
            let start = gate.base.elapsed();
            {
                let mut g = gate.epoch.lock().expect("no panic holds it");
                *g = (epoch, chunk * OPS_PER_ITER / n as u64);
            }
            gate.go.notify_all();
            gate.done.wait();
            let end = gate
                .ends
                .iter()
                .map(|e| e.load(Ordering::Relaxed))
                .max()
                .expect("one thread");
            total += Duration::from_nanos(end).saturating_sub(start);
        }
        *gate.epoch.lock().expect("no panic holds it") = (epoch + 1, 0);
        gate.go.notify_all();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker"))
            .collect()
    });
    check(&tallies);
    total
}

/// Baseline consume: the oldest equal datum, removed.
fn baseline_take(map: &Baseline, name: &str, value: u64) -> bool {
    let mut g = map.write().expect("no panic holds it");
    let Some(v) = g.get_mut(name) else {
        return false;
    };
    match v.iter().position(|&d| d == value) {
        Some(at) => {
            v.remove(at);
            true
        }
        None => false,
    }
}

fn baseline_push(map: &Baseline, name: &str, value: u64) {
    let mut g = map.write().expect("no panic holds it");
    match g.get_mut(name) {
        Some(v) => v.push(value),
        None => {
            g.insert(name.to_owned(), vec![value]);
        }
    }
}

fn baseline_read(map: &Baseline, name: &str) -> usize {
    let g = map.read().expect("no panic holds it");
    g.get(name).cloned().unwrap_or_default().len()
}

fn same_channel(c: &mut Criterion) {
    let mut g = c.benchmark_group("lock_contention_same_channel");
    g.throughput(Throughput::Elements(OPS_PER_ITER));
    for &n in &THREADS {
        g.bench_function(BenchmarkId::new("produce", n), |b| {
            b.iter_custom(|iters| {
                let s = space();
                timed(
                    n,
                    iters,
                    |t, first, ops| {
                        let mut comms = 0;
                        for i in first..first + ops {
                            comms += u64::from(s.produce(0, datum(t, i), false).unwrap().is_some());
                        }
                        comms
                    },
                    || s.clear(),
                    |comms| assert!(comms.iter().all(|&c| c == 0), "nothing waits"),
                )
            })
        });
        g.bench_function(BenchmarkId::new("baseline_rwlock_produce", n), |b| {
            b.iter_custom(|iters| {
                let map = Baseline::default();
                timed(
                    n,
                    iters,
                    |t, first, ops| {
                        for i in first..first + ops {
                            baseline_push(&map, "channel-0", datum(t, i));
                        }
                        ops
                    },
                    || map.write().expect("no panic holds it").clear(),
                    |pushed| assert_eq!(pushed.iter().sum::<u64>(), iters * OPS_PER_ITER),
                )
            })
        });
        g.bench_function(BenchmarkId::new("mixed_produce_consume", n), |b| {
            b.iter_custom(|iters| {
                let s = space();
                let d = timed(
                    n,
                    iters,
                    |t, first, ops| mixed(&s, t, first, ops, |_| 0),
                    || s.clear(),
                    |comms| assert_eq!(comms.iter().sum::<u64>(), iters * OPS_PER_ITER / 2),
                );
                assert!(s.is_empty());
                d
            })
        });
        g.bench_function(
            BenchmarkId::new("baseline_rwlock_mixed_produce_consume", n),
            |b| {
                b.iter_custom(|iters| {
                    let map = Baseline::default();
                    timed(
                        n,
                        iters,
                        |t, first, ops| baseline_mixed(&map, t, first, ops, |_| "channel-0"),
                        || {},
                        |taken| assert_eq!(taken.iter().sum::<u64>(), iters * OPS_PER_ITER / 2),
                    )
                })
            },
        );
    }
    g.finish();
}

/// Stores `READ_HEAVY_STORED` data on each of the first `n` threads' channels.
fn fill_read_heavy(s: &ExactSpace, n: usize) {
    for t in 0..n {
        for i in 0..READ_HEAVY_STORED {
            s.produce(t as u64, datum(t, (1 << 39) + i), false).unwrap();
        }
    }
}

/// Alternates a produce of a fresh datum on `channel(t)` and an exact consume of it; returns
/// the COMMs fired (one per consume).
fn mixed(s: &ExactSpace, t: usize, first: u64, ops: u64, channel: impl Fn(usize) -> u64) -> u64 {
    let ch = channel(t);
    let mut comms = 0;
    for i in (first..first + ops).step_by(2) {
        let d = datum(t, i);
        comms += u64::from(s.produce(ch, d, false).unwrap().is_some());
        comms += u64::from(s.consume([ch], [d], i, false, &[]).unwrap().is_some());
    }
    comms
}

fn baseline_mixed<'a>(
    map: &Baseline,
    t: usize,
    first: u64,
    ops: u64,
    channel: impl Fn(usize) -> &'a str,
) -> u64 {
    let name = channel(t);
    let mut taken = 0;
    for i in (first..first + ops).step_by(2) {
        let d = datum(t, i);
        baseline_push(map, name, d);
        taken += u64::from(baseline_take(map, name, d));
    }
    taken
}

fn different_channels(c: &mut Criterion) {
    let mut g = c.benchmark_group("lock_contention_different_channels");
    g.throughput(Throughput::Elements(OPS_PER_ITER));
    let names: Vec<String> = (0..8).map(|t| format!("channel-{t}")).collect();
    for &n in &THREADS {
        g.bench_function(BenchmarkId::new("isolated_channels", n), |b| {
            b.iter_custom(|iters| {
                let s = space();
                let d = timed(
                    n,
                    iters,
                    |t, first, ops| mixed(&s, t, first, ops, |t| t as u64),
                    || s.clear(),
                    |comms| assert_eq!(comms.iter().sum::<u64>(), iters * OPS_PER_ITER / 2),
                );
                assert!(s.is_empty());
                d
            })
        });
        g.bench_function(
            BenchmarkId::new("baseline_rwlock_isolated_channels", n),
            |b| {
                b.iter_custom(|iters| {
                    let map = Baseline::default();
                    timed(
                        n,
                        iters,
                        |t, first, ops| baseline_mixed(&map, t, first, ops, |t| &names[t]),
                        || {},
                        |taken| assert_eq!(taken.iter().sum::<u64>(), iters * OPS_PER_ITER / 2),
                    )
                })
            },
        );
        g.bench_function(BenchmarkId::new("read_heavy", n), |b| {
            b.iter_custom(|iters| {
                let s = space();
                timed(
                    n,
                    iters,
                    |t, first, ops| {
                        let ch = t as u64;
                        let mut seen = 0;
                        for i in first..first + ops {
                            match i % 16 {
                                14 => {
                                    s.produce(ch, datum(t, i), false).unwrap();
                                }
                                15 => {
                                    let d = datum(t, i - 1);
                                    seen += u64::from(
                                        s.consume([ch], [d], i, false, &[]).unwrap().is_some(),
                                    );
                                }
                                _ => seen += black_box(s.data(&ch)).len() as u64,
                            }
                        }
                        seen
                    },
                    || {
                        s.clear();
                        fill_read_heavy(&s, n);
                    },
                    |seen| check_read_heavy(seen, iters, n),
                )
            })
        });
        g.bench_function(BenchmarkId::new("baseline_rwlock_read_heavy", n), |b| {
            b.iter_custom(|iters| {
                let map = Baseline::default();
                for (t, name) in names.iter().enumerate().take(n) {
                    for i in 0..READ_HEAVY_STORED {
                        baseline_push(&map, name, datum(t, (1 << 39) + i));
                    }
                }
                timed(
                    n,
                    iters,
                    |t, first, ops| {
                        let name = &names[t];
                        let mut seen = 0;
                        for i in first..first + ops {
                            match i % 16 {
                                14 => baseline_push(&map, name, datum(t, i)),
                                15 => seen += u64::from(baseline_take(&map, name, datum(t, i - 1))),
                                _ => seen += black_box(baseline_read(&map, name)) as u64,
                            }
                        }
                        seen
                    },
                    || {},
                    |seen| check_read_heavy(seen, iters, n),
                )
            })
        });
    }
    g.finish();
}

/// Every read saw the stored data (a write pair never overlaps a read of the same thread), and
/// every consume fired.
fn check_read_heavy(seen: &[u64], iters: u64, n: usize) {
    let per_thread = iters * OPS_PER_ITER / n as u64;
    let cycles = per_thread / 16;
    let want = cycles * (14 * READ_HEAVY_STORED + 1);
    assert!(seen.iter().all(|&s| s == want), "{seen:?} != {want}");
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = same_channel, different_channels
}
criterion_main!(benches);
