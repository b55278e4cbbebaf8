//! Criterion benchmarks of the tuple space, each group beside a baseline in the same run.
//!
//! Groups (names `<group>/<variant>/<size>`):
//! - `checkpoint_operations`: soft create/revert at 10, 1,000, 100,000 channels, beside a
//!   deep clone of an equivalent `std::collections::HashMap<u64, Vec<u64>>`.
//! - `produce_consume_cycle`: `produce_only` (N data on one channel), `consume_immediate_match`
//!   (N data on one channel, then N single-channel exact consumes, each building its channel list
//!   and a `String` continuation), `produce_multi_channel` (N produces on N channels), beside a
//!   plain `HashMap<u64, Vec<u64>>` doing the same bookkeeping.
//! - `exact_match_indexed`: consume-then-reproduce one exact datum among 1 and 100,000 stored.
//! - `continuation_set/duplicate_consume`: a consume a continuation Set drops as equal to the
//!   newest of 1 and 10,000 waiting on its channel list (the duplicate check alone).
//! - `fanout/1000_waiting`: one produce examined by 1,000 waiting structural patterns, only the
//!   last accepting it.
//! - `keyed_waiting`: a produce on a channel where 1,000 or 100,000 consumers each wait for
//!   their own value (exact keys), beside the same with the key walk defeated, and a `HashMap`.
//! - `contract_call`: a produce firing a persistent continuation whose body has 1 or 40
//!   steps, beside the same match and a clone of the body.
//! - `join_partner`: a produce on a channel of 10,000 structural data that a waiting join
//!   reads with a general pattern, beside the same produce with no join waiting.
//! - `join_search/cannot_fire`: a three-position join that no assignment satisfies, beside one
//!   scan of its data with the same matcher; `join_search/starved_fires`: a 33-position join
//!   on one channel that fires only once its first positions leave the last ones their data.
//! - `channel_index/lookup_shuffled`: reading one channel among N in shuffled order.
//! - `batch_operations`: `produce_batch` and `consume_batch` of 10,000 items, on one channel
//!   and over 1,024 channels (32 shards: consecutive items mostly change shard), beside the
//!   same items passed one by one to `produce`/`consume` (`*_loop`), collecting results alike.
//!
//! Data are seeded; every result is checked after timing so the work cannot be optimised away.

#![allow(missing_docs)] // criterion_group! generates undocumented items.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use rhospace_matchers::{ExactMatch, Pattern, StructuralMatch, Term};
use rhospace_phlogiston::{CostTable, PhlogistonMeter};
use rhospace_spaces::{ChargingSpace, ConsumeRequest, ContKind, Space, SpaceConfig};

type ExactSpace = Space<u64, u64, u64, String, ExactMatch>;

fn exact_space() -> ExactSpace {
    Space::new(ExactMatch, SpaceConfig::new())
}

/// splitmix64: seeded, so every run sees the same data.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Times `iters` runs of `call` (given its index within its chunk), in chunks of `chunk`,
/// running `reset` after each chunk outside the timing.
fn timed_in_chunks(
    iters: u64,
    chunk: u64,
    mut call: impl FnMut(u64),
    mut reset: impl FnMut(),
) -> Duration {
    let mut spent = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(chunk);
        let t = std::time::Instant::now();
        for i in 0..n {
            call(i);
        }
        spent += t.elapsed();
        left -= n;
        reset();
    }
    spent
}

fn checkpoint_operations(c: &mut Criterion) {
    let mut g = c.benchmark_group("checkpoint_operations");
    for &n in &[10u64, 1_000, 100_000] {
        let space = exact_space();
        let mut baseline: HashMap<u64, Vec<u64>> = HashMap::new();
        for ch in 0..n {
            space.produce(ch, mix(ch), false).expect("bag produce");
            baseline.entry(ch).or_default().push(mix(ch));
        }
        g.bench_with_input(BenchmarkId::new("soft_create", n), &n, |b, _| {
            b.iter(|| black_box(space.create_soft_checkpoint()))
        });
        let cp = space.create_soft_checkpoint();
        g.bench_with_input(BenchmarkId::new("soft_revert", n), &n, |b, _| {
            b.iter(|| space.revert_to_soft_checkpoint(black_box(&cp)))
        });
        if n <= 1_000 {
            g.bench_with_input(BenchmarkId::new("baseline_deep_clone", n), &n, |b, _| {
                b.iter(|| black_box(baseline.clone()))
            });
        } else {
            g.sample_size(10);
            g.bench_with_input(BenchmarkId::new("baseline_deep_clone", n), &n, |b, _| {
                b.iter(|| black_box(baseline.clone()))
            });
            g.sample_size(100);
        }
        assert_eq!(space.channel_count() as u64, n);
        assert_eq!(space.data(&(n - 1))[0].value, mix(n - 1));
    }
    g.finish();
}

fn produce_consume_cycle(c: &mut Criterion) {
    let mut g = c.benchmark_group("produce_consume_cycle");
    for &n in &[100u64, 1_000, 10_000] {
        g.throughput(Throughput::Elements(n));
        g.bench_with_input(BenchmarkId::new("produce_only", n), &n, |b, &n| {
            b.iter_batched(
                exact_space,
                |space| {
                    for i in 0..n {
                        let r = space.produce(7, i, false).expect("bag produce");
                        debug_assert!(r.is_none());
                    }
                    space
                },
                BatchSize::LargeInput,
            )
        });
        g.bench_with_input(BenchmarkId::new("baseline_produce_only", n), &n, |b, &n| {
            b.iter_batched(
                HashMap::<u64, Vec<u64>>::new,
                |mut m| {
                    for i in 0..n {
                        m.entry(7).or_default().push(i);
                    }
                    m
                },
                BatchSize::LargeInput,
            )
        });
        g.bench_with_input(
            BenchmarkId::new("consume_immediate_match", n),
            &n,
            |b, &n| {
                b.iter_batched(
                    || {
                        let space = exact_space();
                        for i in 0..n {
                            space.produce(7, i, false).expect("bag produce");
                        }
                        space
                    },
                    |space| {
                        let mut fired = 0u64;
                        for i in 0..n {
                            let comm = space
                                .consume([7u64], [i], String::from("k"), false, &[])
                                .expect("valid consume");
                            fired += u64::from(comm.is_some());
                        }
                        assert_eq!(fired, n);
                        space
                    },
                    BatchSize::LargeInput,
                )
            },
        );
        g.bench_with_input(
            BenchmarkId::new("baseline_consume_immediate_match", n),
            &n,
            |b, &n| {
                b.iter_batched(
                    || {
                        let mut m: HashMap<u64, HashMap<u64, usize>> = HashMap::new();
                        for i in 0..n {
                            *m.entry(7).or_default().entry(i).or_default() += 1;
                        }
                        m
                    },
                    |mut m| {
                        let mut fired = 0u64;
                        for i in 0..n {
                            // The peer's workload builds a channel list per consume.
                            #[allow(clippy::useless_vec)]
                            let chans = vec![7u64];
                            let k = String::from("k");
                            let slot = m.get_mut(&chans[0]).and_then(|d| d.remove(&i));
                            fired += u64::from(slot.is_some());
                            black_box(k);
                        }
                        assert_eq!(fired, n);
                        m
                    },
                    BatchSize::LargeInput,
                )
            },
        );
        g.bench_with_input(BenchmarkId::new("produce_multi_channel", n), &n, |b, &n| {
            b.iter_batched(
                exact_space,
                |space| {
                    for i in 0..n {
                        space.produce(i, i, false).expect("bag produce");
                    }
                    space
                },
                BatchSize::LargeInput,
            )
        });
        g.bench_with_input(
            BenchmarkId::new("baseline_produce_multi_channel", n),
            &n,
            |b, &n| {
                b.iter_batched(
                    HashMap::<u64, Vec<u64>>::new,
                    |mut m| {
                        for i in 0..n {
                            m.entry(i).or_default().push(i);
                        }
                        m
                    },
                    BatchSize::LargeInput,
                )
            },
        );
    }
    g.finish();
}

fn exact_match_indexed(c: &mut Criterion) {
    let mut g = c.benchmark_group("exact_match_indexed");
    for &n in &[1u64, 100_000] {
        let space = exact_space();
        for i in 0..n {
            space.produce(7, mix(i), false).expect("bag produce");
        }
        let target = mix(n / 2);
        let chans: Arc<[u64]> = Arc::from([7u64]);
        let pats: Arc<[u64]> = Arc::from([target]);
        g.bench_with_input(BenchmarkId::new("consume_and_reproduce", n), &n, |b, _| {
            b.iter(|| {
                let comm = space
                    .consume(chans.clone(), pats.clone(), String::new(), false, &[])
                    .expect("valid consume")
                    .expect("the datum is there");
                space
                    .produce(7, comm.matches[0].datum, false)
                    .expect("bag produce");
            })
        });
        assert_eq!(space.data(&7).len() as u64, n);
    }
    g.finish();
}

/// A consume that a continuation Set drops as a duplicate of the newest of `n` waiting on its
/// channel list (a scan's worst case): the duplicate check alone, as the store is unchanged.
fn continuation_set(c: &mut Criterion) {
    let mut g = c.benchmark_group("continuation_set");
    for &n in &[1u64, 10_000] {
        let space: ExactSpace = Space::new(ExactMatch, SpaceConfig::new().cont_kind(ContKind::Set));
        for i in 0..n {
            let stored = space.consume(vec![7], vec![mix(i)], i.to_string(), false, &[]);
            assert!(matches!(stored, Ok(None)));
        }
        let chans: Arc<[u64]> = Arc::from([7u64]);
        let pats: Arc<[u64]> = Arc::from([mix(n - 1)]);
        let newest = (n - 1).to_string();
        g.bench_with_input(BenchmarkId::new("duplicate_consume", n), &n, |b, _| {
            b.iter(|| {
                space
                    .consume(chans.clone(), pats.clone(), newest.clone(), false, &[])
                    .expect("valid consume")
            })
        });
        assert_eq!(space.continuations(&[7]).len() as u64, n);
    }
    g.finish();
}

fn fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout");
    let space: Space<u64, Pattern, Term, u64, StructuralMatch> =
        Space::new(StructuralMatch, SpaceConfig::new());
    const WAITING: u64 = 1_000;
    for i in 0..WAITING {
        let topic = format!("orders.eu.{i}");
        let pat = Pattern::record([
            ("topic", Pattern::lit(Term::str(topic.as_str()))),
            ("body", Pattern::bind("b")),
        ]);
        // The last one is persistent so the state is the same after every iteration.
        space
            .consume([1u64], [pat], i, i == WAITING - 1, &[])
            .expect("valid consume");
    }
    let datum = Term::record([
        ("topic", Term::str(format!("orders.eu.{}", WAITING - 1))),
        ("body", Term::int(42)),
    ]);
    g.throughput(Throughput::Elements(WAITING));
    g.bench_function("1000_waiting", |b| {
        b.iter(|| {
            let comm = space
                .produce(1, datum.clone(), false)
                .expect("bag produce")
                .expect("the last continuation fires");
            black_box(comm);
        })
    });
    // Baseline: the same 1,000 patterns checked in a plain Vec with the same matcher.
    let pats: Vec<Pattern> = space
        .continuations(&[1u64])
        .into_iter()
        .map(|w| w.patterns[0].clone())
        .collect();
    g.bench_function("baseline_vec_scan_1000", |b| {
        use rhospace_matchers::Match;
        b.iter(|| {
            let hit = pats
                .iter()
                .position(|p| StructuralMatch.get(p, black_box(&datum)).is_some());
            assert_eq!(hit, Some(WAITING as usize - 1));
        })
    });
    assert_eq!(space.continuations(&[1u64]).len() as u64, WAITING);
    g.finish();
}

/// A contract call: a produce firing a persistent continuation (a record pattern of four
/// binders) whose body is a list of 1 or 40 steps (`contract_call/fire/{1,40}`), beside the
/// least any tuple space must do for it, the same match and a clone of the body
/// (`contract_call/baseline_match_and_clone/{1,40}`). The continuation keeps its call's log
/// encoding, so the firing's cost should not grow with the body. The space is reverted every
/// 1,000 calls, outside the timing, so its log stays at a block's size.
fn contract_call(c: &mut Criterion) {
    use rhospace_matchers::Match;
    let mut g = c.benchmark_group("contract_call");
    let channel = Term::str("contract:transfer");
    let pattern = Pattern::record([
        ("from", Pattern::bind("from")),
        ("to", Pattern::bind("to")),
        ("amount", Pattern::bind("amount")),
        ("ret", Pattern::bind("ret")),
    ]);
    let datum = Term::record([
        ("from", Term::str("alice")),
        ("to", Term::str("bob")),
        ("amount", Term::int(10)),
        ("ret", Term::int(77)),
    ]);
    for steps in [1i64, 40] {
        let body =
            Term::list((0..steps).map(|i| {
                Term::record([("op", Term::str(format!("step{i}"))), ("arg", Term::int(i))])
            }));
        let space: Space<Term, Pattern, Term, Term, StructuralMatch> =
            Space::new(StructuralMatch, SpaceConfig::new());
        space
            .consume(
                [channel.clone()],
                [pattern.clone()],
                body.clone(),
                true,
                &[],
            )
            .expect("valid consume");
        // Reverted every 1,000 calls (outside the timing), as a block's hard checkpoint would
        // clear the log: otherwise the log of millions of calls grows without bound and the
        // run measures fresh pages.
        let start = space.create_soft_checkpoint();
        const CHUNK: u64 = 1_000;
        g.bench_with_input(BenchmarkId::new("fire", steps), &steps, |b, _| {
            b.iter_custom(|iters| {
                timed_in_chunks(
                    iters,
                    CHUNK,
                    |_| {
                        let comm = space
                            .produce(channel.clone(), datum.clone(), false)
                            .expect("bag produce")
                            .expect("the contract fires");
                        black_box(comm);
                    },
                    || {
                        space
                            .revert_to_soft_checkpoint(&start)
                            .expect("a checkpoint of this space")
                    },
                )
            })
        });
        g.bench_with_input(
            BenchmarkId::new("baseline_match_and_clone", steps),
            &steps,
            |b, _| {
                b.iter(|| {
                    let bound = StructuralMatch.get(&pattern, black_box(&datum));
                    assert!(bound.is_some());
                    black_box((bound, body.clone()));
                })
            },
        );
        assert_eq!(space.continuations(std::slice::from_ref(&channel)).len(), 1);
        assert!(space.data(&channel).is_empty());
    }
    g.finish();
}

/// Consumers each waiting on one channel for their own value (literal patterns, so each has an
/// exact key), and a produce of the newest one's value: `keyed_waiting/by_key/{1000,100000}`
/// (the group walks by key), `keyed_waiting/whole_walk/{1000,100000}` (the same plus one
/// oldest continuation without an exact key, which makes the produce walk and try every one),
/// `keyed_waiting/same_key/100000` (100,000 consumers waiting for one value: a produce that
/// fires the oldest, then a consume that puts one back) beside the same on a Queue store
/// (`same_key_queue`, no index), and `keyed_waiting/baseline_hashmap/1000` (a `HashMap` from
/// value to the waiting continuations' numbers, looked up with the same datum).
fn keyed_waiting(c: &mut Criterion) {
    let mut g = c.benchmark_group("keyed_waiting");
    let lit = |i: u64| Pattern::lit(Term::int(i as i64));
    for (name, n, general) in [
        ("by_key", 1_000u64, false),
        ("by_key", 100_000, false),
        ("whole_walk", 1_000, true),
        ("whole_walk", 100_000, true),
    ] {
        let space: Space<u64, Pattern, Term, u64, StructuralMatch> =
            Space::new(StructuralMatch, SpaceConfig::new());
        if general {
            let never = Pattern::or([Pattern::lit(Term::str("never")), Pattern::lit(-1)]);
            space
                .consume([1u64], [never], u64::MAX, false, &[])
                .expect("valid consume");
        }
        for i in 0..n {
            // The newest is persistent so the state is the same after every iteration.
            space
                .consume([1u64], [lit(i)], i, i == n - 1, &[])
                .expect("valid consume");
        }
        let datum = Term::int(n as i64 - 1);
        g.bench_with_input(BenchmarkId::new(name, n), &n, |b, &n| {
            b.iter(|| {
                let comm = space
                    .produce(1, datum.clone(), false)
                    .expect("bag produce")
                    .expect("the newest continuation fires");
                assert_eq!(comm.continuation, n - 1);
                black_box(comm);
            })
        });
    }
    // Many consumers waiting for one value: each produce fires the oldest and a consume
    // puts one back, so the group stays at 100,000. Bag (the key index in use) beside Queue
    // (no index: the oldest is the only candidate).
    for (name, kind) in [
        ("same_key", ContKind::Bag),
        ("same_key_queue", ContKind::Queue),
    ] {
        let space: Space<u64, Pattern, Term, u64, StructuralMatch> =
            Space::new(StructuralMatch, SpaceConfig::new().cont_kind(kind));
        const SAME: u64 = 100_000;
        for i in 0..SAME {
            space
                .consume([1u64], [lit(7)], i, false, &[])
                .expect("valid consume");
        }
        let datum = Term::int(7);
        g.bench_function(BenchmarkId::new(name, SAME), |b| {
            b.iter(|| {
                let comm = space
                    .produce(1, datum.clone(), false)
                    .expect("bag produce")
                    .expect("the oldest continuation fires");
                black_box(comm);
                let r = space.consume([1u64], [lit(7)], 0, false, &[]);
                assert!(r.expect("valid consume").is_none());
            })
        });
        assert_eq!(space.continuations(&[1u64]).len() as u64, SAME);
    }
    let waiting: HashMap<Term, Vec<u64>> = (0..1_000u64)
        .map(|i| (Term::int(i as i64), vec![i]))
        .collect();
    let datum = Term::int(999);
    g.bench_function("baseline_hashmap/1000", |b| {
        b.iter(|| {
            let k = waiting
                .get(black_box(&datum))
                .and_then(|v| v.first().copied());
            assert_eq!(k, Some(999));
        })
    });
    g.finish();
}

/// Produces on a channel of 10,000 structural data that a waiting join reads with a general
/// pattern (`join_partner/produce_beside_general_join`), beside the same produces on the same
/// channel with no join waiting (`join_partner/baseline_no_join`, the produce fast path).
/// The channel is reverted to its first 10,001 data (a soft checkpoint, outside the timing)
/// every 1,000 produces, so both measure the same sizes.
fn join_partner(c: &mut Criterion) {
    const STORED: i64 = 10_000;
    const CHUNK: u64 = 1_000;
    let mut g = c.benchmark_group("join_partner");
    let msg = |i: i64| Term::tuple([Term::str("msg"), Term::int(i)]);
    for joined in [true, false] {
        let space: Space<u64, Pattern, Term, u64, StructuralMatch> =
            Space::new(StructuralMatch, SpaceConfig::new());
        for i in 0..STORED {
            space.produce(2, msg(i), false).expect("bag produce");
        }
        if joined {
            let stop = Pattern::tuple([Pattern::lit(Term::str("stop")), Pattern::wildcard()]);
            let r = space.consume([1u64, 2], [Pattern::wildcard(), stop], 9, false, &[]);
            assert!(r.expect("valid consume").is_none());
        }
        // One produce first, so the checkpoint holds whatever a produce there builds once.
        space.produce(2, msg(-1), false).expect("bag produce");
        let start = space.create_soft_checkpoint();
        let name = if joined {
            "produce_beside_general_join"
        } else {
            "baseline_no_join"
        };
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                timed_in_chunks(
                    iters,
                    CHUNK,
                    |i| {
                        let r = space
                            .produce(2, msg(STORED + i as i64), false)
                            .expect("bag produce");
                        debug_assert!(r.is_none());
                    },
                    || {
                        space
                            .revert_to_soft_checkpoint(&start)
                            .expect("a checkpoint of this space")
                    },
                )
            })
        });
        assert_eq!(space.data(&2).len(), STORED as usize + 1);
    }
    g.finish();
}

/// A join that cannot fire: `[a, b, b]` with two wildcards and a pattern no datum on `b`
/// matches, over 1,000 structural data on each channel (`join_search/cannot_fire`). Its gate
/// refuses, so the space is unchanged between iterations. Beside it, the least work any
/// complete search must do here: the same matcher over `b`'s data once
/// (`join_search/baseline_vec_scan`). Without the search's pruning this join made 10⁹ matcher
/// calls. `join_search/cannot_fire_charged` runs it on a charging space whose search budget
/// (one check per matcher call) never runs out: the cost of the cap.
fn join_search(c: &mut Criterion) {
    use rhospace_matchers::Match;
    use rhospace_phlogiston::OutOfPhlogiston;
    let mut g = c.benchmark_group("join_search");
    let space: Space<u64, Pattern, Term, u64, StructuralMatch> =
        Space::new(StructuralMatch, SpaceConfig::new());
    let msg = |i: i64| Term::tuple([Term::str("msg"), Term::int(i)]);
    for i in 0..1_000 {
        space.produce(1, msg(i), false).expect("bag produce");
        space.produce(2, msg(i), false).expect("bag produce");
    }
    let stop = Pattern::tuple([Pattern::lit(Term::str("stop")), Pattern::wildcard()]);
    let patterns = [Pattern::wildcard(), Pattern::wildcard(), stop.clone()];
    g.bench_function("cannot_fire", |b| {
        b.iter(|| {
            let r = space.consume_admitted([1u64, 2, 2], patterns.clone(), 0, false, &[], |a| {
                black_box(a.examined);
                Err(OutOfPhlogiston {
                    requested: 1,
                    remaining: 0,
                })
            });
            assert!(r.is_err());
        })
    });
    // The same search charged: the meter holds the consume's price and its 1,002 matcher calls,
    // so the search's budget (checked before every call) never stops it, and the gate then
    // refuses for want of the continuation's storage: the space and meter stay unchanged.
    let charged = ChargingSpace::new(
        space,
        Arc::new(PhlogistonMeter::new(u64::MAX)),
        CostTable::default(),
    );
    let t = CostTable::default();
    let left = t.consume_base + 3 * t.join_channel + t.matching(1_002);
    charged
        .meter()
        .charge(u64::MAX - left)
        .expect("drain the meter");
    g.bench_function("cannot_fire_charged", |b| {
        b.iter(|| {
            let r = charged.consume([1u64, 2, 2], patterns.clone(), 0, false, &[]);
            assert!(r.is_err());
        })
    });
    assert_eq!(charged.meter().remaining(), left);
    let space = charged.space();
    let data: Vec<Term> = (0..1_000).map(msg).collect();
    g.bench_function("baseline_vec_scan", |b| {
        b.iter(|| {
            let hit = data
                .iter()
                .position(|d| StructuralMatch.get(&stop, black_box(d)).is_some());
            assert_eq!(hit, None);
        })
    });
    assert_eq!(space.data(&2).len(), 1_000);
    // A join that fires, but only once its first positions stop taking the data its last ones
    // need: 30 wildcards then 3 `("odd", _)` over 1,000 data whose 3 odd ones come first. The
    // gate refuses, so every iteration runs the same search (81,180 matcher calls).
    let odd = |i: i64| Term::tuple([Term::str("odd"), Term::int(i)]);
    for i in 0..1_000 {
        let d = if i < 3 { odd(i) } else { msg(i) };
        space.produce(3, d, false).expect("bag produce");
    }
    let mut starved = vec![Pattern::wildcard(); 30];
    starved.extend(vec![
        Pattern::tuple([
            Pattern::lit(Term::str("odd")),
            Pattern::wildcard()
        ]);
        3
    ]);
    g.bench_function("starved_fires", |b| {
        b.iter(|| {
            let mut fires = false;
            let r = space.consume_admitted(vec![3u64; 33], starved.clone(), 0, false, &[], |a| {
                fires = a.fires.is_some();
                black_box(a.examined);
                Err(OutOfPhlogiston {
                    requested: 1,
                    remaining: 0,
                })
            });
            assert!(r.is_err() && fires);
        })
    });
    assert_eq!(space.data(&3).len(), 1_000);
    g.finish();
}

fn channel_index(c: &mut Criterion) {
    let mut g = c.benchmark_group("channel_index");
    for &n in &[1_000u64, 100_000] {
        let space = exact_space();
        let mut baseline: HashMap<u64, Vec<u64>> = HashMap::new();
        for ch in 0..n {
            space.produce(mix(ch), ch, false).expect("bag produce");
            baseline.entry(mix(ch)).or_default().push(ch);
        }
        let mut order: Vec<u64> = (0..n).map(mix).collect();
        // Seeded Fisher-Yates.
        for i in (1..order.len()).rev() {
            let j = (mix(i as u64 ^ 0xABCD) % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        let mut at = 0usize;
        g.bench_with_input(BenchmarkId::new("lookup_shuffled", n), &n, |b, _| {
            b.iter(|| {
                at = (at + 1) % order.len();
                let d = space.data(&order[at]);
                assert_eq!(d.len(), 1);
            })
        });
        let mut at = 0usize;
        g.bench_with_input(
            BenchmarkId::new("baseline_hashmap_lookup_shuffled", n),
            &n,
            |b, _| {
                b.iter(|| {
                    at = (at + 1) % order.len();
                    let d = baseline.get(&order[at]).map(|v| v.to_vec());
                    assert_eq!(d.map(|v| v.len()), Some(1));
                })
            },
        );
    }
    g.finish();
}

/// The charging space's overhead over the bare space on `consume_immediate_match` (target ≤ 15%).
fn charging_overhead(c: &mut Criterion) {
    let mut g = c.benchmark_group("charging_overhead");
    const N: u64 = 1_000;
    g.throughput(Throughput::Elements(N));
    g.bench_function(BenchmarkId::new("consume_immediate_match/bare", N), |b| {
        b.iter_batched(
            || {
                let space = exact_space();
                for i in 0..N {
                    space.produce(7, i, false).expect("bag produce");
                }
                space
            },
            |space| {
                for i in 0..N {
                    let comm = space.consume([7u64], [i], String::from("k"), false, &[]);
                    assert!(matches!(comm, Ok(Some(_))));
                }
                space
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function(
        BenchmarkId::new("consume_immediate_match/charged", N),
        |b| {
            b.iter_batched(
                || {
                    let meter = Arc::new(PhlogistonMeter::new(u64::MAX / 2));
                    let space = ChargingSpace::new(exact_space(), meter, CostTable::default());
                    for i in 0..N {
                        space.produce(7, i, false).expect("bag produce");
                    }
                    space
                },
                |space| {
                    for i in 0..N {
                        let comm = space.consume([7u64], [i], String::from("k"), false, &[]);
                        assert!(matches!(comm, Ok(Some(_))));
                    }
                    space
                },
                BatchSize::LargeInput,
            )
        },
    );
    g.finish();
}

/// `batch_operations`: a batch beside the same items called one by one (see the module docs).
fn batch_operations(c: &mut Criterion) {
    const N: u64 = 10_000;
    let mut g = c.benchmark_group("batch_operations");
    g.throughput(Throughput::Elements(N));
    for (layout, spread) in [("one_channel", false), ("1024_channels", true)] {
        let channel = move |i: u64| if spread { mix(i) % 1_024 } else { 7 };
        let items = move || (0..N).map(|i| (channel(i), i, false)).collect::<Vec<_>>();
        g.bench_function(BenchmarkId::new("produce_batch", layout), |b| {
            b.iter_batched(
                || (exact_space(), items()),
                |(space, items)| {
                    let out = space.produce_batch(items);
                    (space, out)
                },
                BatchSize::LargeInput,
            )
        });
        g.bench_function(BenchmarkId::new("produce_loop", layout), |b| {
            b.iter_batched(
                || (exact_space(), items()),
                |(space, items)| {
                    let mut out = Vec::with_capacity(items.len());
                    for (ch, datum, persist) in items {
                        out.push(space.produce(ch, datum, persist));
                    }
                    (space, out)
                },
                BatchSize::LargeInput,
            )
        });
        let filled = move || {
            let space = exact_space();
            for i in 0..N {
                space.produce(channel(i), i, false).expect("bag produce");
            }
            let requests: Vec<_> = (0..N)
                .map(|i| ConsumeRequest::new([channel(i)], [i], String::from("k")))
                .collect();
            (space, requests)
        };
        let fired = |out: &[Result<Option<_>, _>]| {
            assert_eq!(
                out.iter().filter(|r| matches!(r, Ok(Some(_)))).count() as u64,
                N
            );
        };
        g.bench_function(BenchmarkId::new("consume_batch", layout), |b| {
            b.iter_batched(
                filled,
                |(space, requests)| {
                    let out = space.consume_batch(requests);
                    fired(&out);
                    (space, out)
                },
                BatchSize::LargeInput,
            )
        });
        g.bench_function(BenchmarkId::new("consume_loop", layout), |b| {
            b.iter_batched(
                filled,
                |(space, requests)| {
                    let mut out = Vec::with_capacity(requests.len());
                    for r in requests {
                        let got = space.consume(
                            r.channels,
                            r.patterns,
                            r.continuation,
                            r.persist,
                            &r.peeks,
                        );
                        out.push(got);
                    }
                    fired(&out);
                    (space, out)
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = checkpoint_operations, produce_consume_cycle, exact_match_indexed, continuation_set, fanout, keyed_waiting, contract_call, join_partner,
        join_search, channel_index, charging_overhead, batch_operations
}
criterion_main!(benches);
