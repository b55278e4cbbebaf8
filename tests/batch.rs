//! Batched operations (issue 6): a batch gives exactly what the single operations give when run
//! one by one in input order, on any shard count (SPEC §3), returns results in input order,
//! and refuses bad requests without changing anything.

mod common;

use common::{Pred, PredMatch};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use rhospace_matchers::similarity::{Embedding, SimilarityMatch, SimilarityPattern};
use rhospace_matchers::ExactMatch;
use rhospace_spaces::{
    Checkpoint, ConsumeRequest, DataKind, ErrorKind, ReplayError, Space, SpaceConfig, MAX_JOIN,
};
use rhospace_vectordb::Metric;

type S = Space<u32, u32, u32, u32, ExactMatch>;

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn contents(s: &S, channels: u32) -> String {
    let mut out = String::new();
    for c in 0..channels {
        out += &format!("{c}: {:?} {:?}\n", s.data(&c), s.joins(&c));
        out += &format!("  {:?}\n", s.continuations(&[c]));
        out += &format!("  {:?}\n", s.continuations(&[c, (c + 1) % channels]));
    }
    out
}

#[test]
fn batches_equal_single_calls_in_input_order() {
    const CH: u32 = 12;
    for seed in 1..=20u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let batched: S = Space::with_shards(ExactMatch, SpaceConfig::new(), 4);
        let single: S = Space::with_shards(ExactMatch, SpaceConfig::new(), 4);
        for _round in 0..30 {
            if rng.below(2) == 0 {
                let items: Vec<(u32, u32, bool)> = (0..rng.below(20))
                    .map(|_| {
                        (
                            rng.below(CH as u64) as u32,
                            rng.below(3) as u32,
                            rng.below(8) == 0,
                        )
                    })
                    .collect();
                let got: Vec<String> = batched
                    .produce_batch(items.clone())
                    .iter()
                    .map(|r| format!("{r:?}"))
                    .collect();
                let want: Vec<String> = items
                    .iter()
                    .map(|&(c, a, p)| format!("{:?}", single.produce(c, a, p)))
                    .collect();
                assert_eq!(got, want, "seed {seed}: produce batch differs");
            } else {
                let reqs: Vec<ConsumeRequest<u32, u32, u32>> = (0..rng.below(10))
                    .map(|k| {
                        let c = rng.below(CH as u64) as u32;
                        let mut r = if rng.below(3) == 0 {
                            let d = (c + 1) % CH;
                            ConsumeRequest::new(
                                [c, d],
                                [rng.below(3) as u32, rng.below(3) as u32],
                                k as u32,
                            )
                        } else {
                            ConsumeRequest::new([c], [rng.below(3) as u32], k as u32)
                        };
                        r.persist = rng.below(10) == 0;
                        r
                    })
                    .collect();
                let got: Vec<String> = batched
                    .consume_batch(reqs.clone())
                    .iter()
                    .map(|r| format!("{r:?}"))
                    .collect();
                let want: Vec<String> = reqs
                    .iter()
                    .cloned()
                    .map(|r| {
                        format!(
                            "{:?}",
                            single.consume(
                                r.channels,
                                r.patterns,
                                r.continuation,
                                r.persist,
                                &r.peeks
                            )
                        )
                    })
                    .collect();
                assert_eq!(got, want, "seed {seed}: consume batch differs");
            }
        }
        assert_eq!(contents(&batched, CH), contents(&single, CH), "seed {seed}");
        assert_eq!(
            batched.create_checkpoint().unwrap(),
            single.create_checkpoint().unwrap(),
            "seed {seed}: root or log differs"
        );
    }
}

#[test]
fn bad_requests_in_a_batch_fail_alone_and_change_nothing() {
    let s: S = Space::new(ExactMatch, SpaceConfig::new());
    s.produce(1, 1, false).unwrap();
    let mut peeking = ConsumeRequest::new([1], [1], 3);
    peeking.peeks.push(4);
    let out = s.consume_batch(vec![
        ConsumeRequest::new(Vec::<u32>::new(), Vec::<u32>::new(), 1),
        ConsumeRequest::new([1, 2], [1], 2),
        peeking,
    ]);
    assert_eq!(
        out[0].as_ref().unwrap_err().kind(),
        &ErrorKind::EmptyChannels
    );
    assert!(matches!(
        out[1].as_ref().unwrap_err().kind(),
        ErrorKind::LengthMismatch { .. }
    ));
    assert!(matches!(
        out[2].as_ref().unwrap_err().kind(),
        ErrorKind::PeekOutOfRange { .. }
    ));
    assert_eq!(
        out.into_iter()
            .map(|r| r.unwrap_err().into_inner())
            .collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(s.data(&1).len(), 1);
    assert!(s.continuations(&[1]).is_empty() && s.continuations(&[1, 2]).is_empty());
}

#[test]
fn produce_batch_conserves_under_threads() {
    // Four threads produce batches on shared channels while a fifth consumes: every datum is
    // consumed exactly once or still stored.
    let s: S = Space::new(ExactMatch, SpaceConfig::new());
    std::thread::scope(|scope| {
        for t in 0..4u32 {
            let s = &s;
            scope.spawn(move || {
                for round in 0..50u32 {
                    let items = (0..20u32).map(|i| (i % 8, t * 100_000 + round * 100 + i, false));
                    for r in s.produce_batch(items) {
                        assert!(r.unwrap().is_none());
                    }
                }
            });
        }
    });
    let mut seen = std::collections::BTreeSet::new();
    for c in 0..8u32 {
        for d in s.data(&c) {
            assert!(seen.insert(d.value), "duplicate {}", d.value);
        }
    }
    assert_eq!(seen.len(), 4 * 50 * 20);
}

#[test]
fn batches_with_joins_across_shards_conserve_under_threads() {
    // Two threads produce batches while two consume batches of joins spanning shards and of
    // single channels: no deadlock, and every datum is taken by exactly one COMM or still
    // stored.
    const CH: u32 = 8;
    let s: S = Space::with_shards(ExactMatch, SpaceConfig::new(), 4);
    let matched = std::sync::atomic::AtomicUsize::new(0);
    let count = |n: usize| {
        matched.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    };
    std::thread::scope(|scope| {
        for t in 0..2u32 {
            let (s, count) = (&s, &count);
            scope.spawn(move || {
                for round in 0..100u32 {
                    let items = (0..16u32).map(|i| ((t + round + i) % CH, 0, false));
                    for r in s.produce_batch(items) {
                        count(r.unwrap().map_or(0, |c| c.matches.len()));
                    }
                }
            });
        }
        for t in 0..2u32 {
            let (s, count) = (&s, &count);
            scope.spawn(move || {
                for round in 0..100u32 {
                    let reqs = (0..8u32).map(|i| {
                        let c = (t + round + i) % CH;
                        if i % 2 == 0 {
                            ConsumeRequest::new([c, (c + 3) % CH], [0, 0], i)
                        } else {
                            ConsumeRequest::new([c], [0], i)
                        }
                    });
                    for r in s.consume_batch(reqs) {
                        count(r.unwrap().map_or(0, |c| c.matches.len()));
                    }
                }
            });
        }
    });
    let stored: usize = (0..CH).map(|c| s.data(&c).len()).sum();
    let matched = matched.load(std::sync::atomic::Ordering::Relaxed);
    assert!(matched > 0, "the waiting consumes meet the produces");
    assert_eq!(matched + stored, 2 * 100 * 16);
}

/// SPEC §9 with whole-space calls and installs between batches: threads produce and consume
/// batches (joins across shards among them) while one installs a join on channels 3 and 6
/// midway and then takes soft and hard checkpoints. No thread deadlocks; every datum is taken
/// by exactly one COMM or still stored; every produce of the installed join's value after the
/// install meets the join when its partner is there, so no stored pair of them is left (the
/// invariant of SPEC §1), and the install's COMMs took two data each.
#[test]
fn batches_with_installs_and_checkpoints_between_them_conserve() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    const CH: u32 = 8;
    const INSTALLED: u32 = 1_000;
    let s: std::sync::Arc<S> =
        std::sync::Arc::new(Space::with_shards(ExactMatch, SpaceConfig::new(), 4));
    let finished = {
        let s = s.clone();
        finishes(move || {
            // Release/Acquire: a producer that sees the flag runs after the install returned
            // (what the install changed, it reads under the space's own locks).
            let installed = AtomicBool::new(false);
            let (produced, matched, fired) = (
                AtomicUsize::new(0),
                AtomicUsize::new(0),
                AtomicUsize::new(0),
            );
            let count = |r: Option<rhospace_spaces::Comm<u32, u32, u32, u32, ()>>| {
                if let Some(c) = r {
                    matched.fetch_add(c.matches.len(), Ordering::Relaxed);
                    if c.continuation == INSTALLED {
                        assert_eq!(c.matches.len(), 2, "{c:?}");
                        fired.fetch_add(1, Ordering::Relaxed);
                    }
                }
            };
            std::thread::scope(|scope| {
                for t in 0..2u32 {
                    let (s, count, installed, produced) = (&s, &count, &installed, &produced);
                    scope.spawn(move || {
                        for round in 0..150u32 {
                            // From halfway on, wait for the install (so it falls between
                            // batches, and the installed join's value is produced).
                            while round >= 75 && !installed.load(Ordering::Acquire) {
                                std::thread::yield_now();
                            }
                            let on = installed.load(Ordering::Acquire);
                            let items: Vec<(u32, u32, bool)> = (0..12u32)
                                .map(|i| {
                                    let c = (t + round + i) % CH;
                                    // The installed join's value only once it is installed.
                                    let v = if on && (c == 3 || c == 6) { 2 } else { i % 2 };
                                    (c, v, false)
                                })
                                .collect();
                            produced.fetch_add(items.len(), Ordering::Relaxed);
                            for r in s.produce_batch(items) {
                                count(r.unwrap());
                            }
                        }
                    });
                }
                {
                    let (s, count) = (&s, &count);
                    scope.spawn(move || {
                        for round in 0..150u32 {
                            let reqs = (0..6u32).map(|i| {
                                let c = (round + i) % CH;
                                if i % 2 == 0 {
                                    ConsumeRequest::new([c, (c + 5) % CH], [i % 2, 1], i)
                                } else {
                                    ConsumeRequest::new([c], [1], i)
                                }
                            });
                            for r in s.consume_batch(reqs) {
                                count(r.unwrap());
                            }
                        }
                    });
                }
                let (s, installed) = (&s, &installed);
                scope.spawn(move || {
                    std::thread::yield_now();
                    s.install([3u32, 6], [2u32, 2], INSTALLED).unwrap();
                    installed.store(true, Ordering::Release);
                    for _ in 0..20 {
                        let soft = s.create_soft_checkpoint();
                        let hard = s.create_checkpoint().unwrap();
                        drop((soft, hard));
                        let _ = s.is_empty();
                    }
                });
            });
            let stored: usize = (0..CH).map(|c| s.data(&c).len()).sum();
            let produced = produced.load(Ordering::Relaxed);
            assert_eq!(matched.load(Ordering::Relaxed) + stored, produced);
            assert!(
                fired.load(Ordering::Relaxed) > 0,
                "the installed join fired"
            );
            let twos = |c: u32| s.data(&c).iter().filter(|d| d.value == 2).count();
            assert!(
                twos(3) == 0 || twos(6) == 0,
                "a COMM is possible among stored items: {} and {}",
                twos(3),
                twos(6)
            );
        })
    };
    assert!(finished, "a batch deadlocked or a check failed");
}

/// Two channels `(a, b)` with `a` on a lower shard than `b` when there are 64 shards: an order
/// grouped by shard would run an item on `a` before an earlier one on `b`.
fn two_shards_apart() -> (u32, u32) {
    let wide: S = Space::with_shards(ExactMatch, SpaceConfig::new(), 64);
    (0u32..1000)
        .flat_map(|a| (0u32..1000).map(move |b| (a, b)))
        .find(|&(a, b)| wide.shard_of(&a) < wide.shard_of(&b))
        .expect("64 shards split some pair of the first thousand channels")
}

/// The reviewer's case: a join on `a` and `b` and a consume on `b` alone wait; a batch
/// produces on `b`, then on `a`. In input order the datum on `b` fires the consume on `b` alone
/// (the join still lacks `a`), on every shard count.
#[test]
fn produce_batch_comms_and_root_do_not_depend_on_shard_count() {
    let (a, b) = two_shards_apart();
    let run = |shards: usize| {
        let s: S = Space::with_shards(ExactMatch, SpaceConfig::new(), shards);
        s.consume([a, b], [1u32, 1], 1, false, &[]).unwrap(); // K1: join on a and b
        s.consume([b], [1u32], 2, false, &[]).unwrap(); // K2: b alone
        let out: Vec<_> = s
            .produce_batch([(b, 1u32, false), (a, 1u32, false)])
            .into_iter()
            .map(|r| r.unwrap().map(|c| c.continuation))
            .collect();
        (out, s.create_checkpoint().unwrap().root)
    };
    let (one, many) = (run(1), run(64));
    assert_eq!(
        one.0,
        vec![Some(2), None],
        "input order: K2 takes b's datum"
    );
    assert_eq!(one.0, many.0, "COMMs differ");
    assert_eq!(one.1, many.1, "roots differ");
}

/// The consume side: data wait on `a` and `b`; a batch consumes `b` alone, then joins `a` and
/// `b`. In input order the first request takes `b`'s datum and the join waits, on every
/// shard count (grouped by lock set, the join's set `{a, b}` would have run first).
#[test]
fn consume_batch_comms_and_root_do_not_depend_on_shard_count() {
    let (a, b) = two_shards_apart();
    let run = |shards: usize| {
        let s: S = Space::with_shards(ExactMatch, SpaceConfig::new(), shards);
        s.produce(a, 1, false).unwrap();
        s.produce(b, 1, false).unwrap();
        let out: Vec<_> = s
            .consume_batch([
                ConsumeRequest::new([b], [1u32], 1),
                ConsumeRequest::new([a, b], [1u32, 1], 2),
            ])
            .into_iter()
            .map(|r| r.unwrap().map(|c| c.continuation))
            .collect();
        (out, s.create_checkpoint().unwrap().root)
    };
    let (one, many) = (run(1), run(64));
    assert_eq!(
        one.0,
        vec![Some(1), None],
        "input order: request 0 takes b's datum"
    );
    assert_eq!(one.0, many.0, "COMMs differ");
    assert_eq!(one.1, many.1, "roots differ");
}

/// The property tests' space: predicate patterns, so several data meet one pattern.
type PS = Space<u8, Pred, i64, u32, PredMatch>;

/// Channels of the property test: few, so items meet each other often.
const PCH: u8 = 5;

/// One consume request of the property test, in plain fields (lengths may disagree and peeks
/// may be out of range: invalid requests are part of the batch).
#[derive(Clone, Debug)]
struct Req {
    chans: Vec<u8>,
    pats: Vec<Pred>,
    k: u32,
    persist: bool,
    peeks: Vec<usize>,
}

/// One batch: produces or consumes.
#[derive(Clone, Debug)]
enum Batch {
    Produce(Vec<(u8, i64, bool)>),
    Consume(Vec<Req>),
}

fn pred() -> impl Strategy<Value = Pred> {
    prop_oneof![
        3 => Just(Pred::Any),
        1 => Just(Pred::Even),
        1 => Just(Pred::Odd),
        1 => (0i64..3).prop_map(Pred::Gt),
        3 => (0i64..4).prop_map(Pred::Eq),
    ]
}

fn request() -> impl Strategy<Value = Req> {
    // Mostly one or two channels; now and then none (an `EmptyChannels`).
    let arity = prop_oneof![1 => Just(0usize), 5 => Just(1), 4 => Just(2), 2 => Just(3)];
    (arity, proptest::bool::weighted(0.2)).prop_flat_map(|(n, odd_length)| {
        // Now and then one pattern too many (a `LengthMismatch`).
        let pats = if odd_length && n > 0 { n + 1 } else { n };
        (
            proptest::collection::vec(0..PCH, n),
            proptest::collection::vec(pred(), pats),
            0u32..1000,
            proptest::bool::weighted(0.15),
            proptest::collection::vec(0..=n, 0..=1),
        )
            .prop_map(|(chans, pats, k, persist, peeks)| Req {
                chans,
                pats,
                k,
                persist,
                peeks,
            })
    })
}

fn batch() -> impl Strategy<Value = Batch> {
    prop_oneof![
        proptest::collection::vec((0..PCH, 0i64..4, proptest::bool::weighted(0.1)), 0..=12)
            .prop_map(Batch::Produce),
        proptest::collection::vec(request(), 0..=8).prop_map(Batch::Consume),
    ]
}

/// Bag channels, or one channel of each head-only kind and a Cell (which refuses a second
/// datum: produce errors inside a batch).
fn prop_config(mixed: bool) -> SpaceConfig<u8> {
    let mut c = SpaceConfig::new();
    if mixed {
        for (ch, kind) in [
            (1, DataKind::Queue),
            (2, DataKind::Cell),
            (3, DataKind::Stack),
            (4, DataKind::Set),
        ] {
            c = c.channel_kind(ch, kind);
        }
    }
    c
}

/// Runs `batches` on a fresh space of `shards` shards, batched or one item at a time: every
/// item's outcome as text, then the hard checkpoint (state root and event log).
fn run_batches(
    shards: usize,
    mixed: bool,
    batches: &[Batch],
    batched: bool,
) -> (Vec<String>, Checkpoint) {
    let s: PS = Space::with_shards(PredMatch, prop_config(mixed), shards);
    let out = apply(&s, batches, batched);
    let checkpoint = s.create_checkpoint().expect("an in-memory checkpoint");
    (out, checkpoint)
}

/// Runs `batches` on `s`, batched or one item at a time: every item's outcome as text.
fn apply(s: &PS, batches: &[Batch], batched: bool) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        match b {
            Batch::Produce(items) if batched => {
                out.extend(
                    s.produce_batch(items.clone())
                        .iter()
                        .map(|r| format!("{r:?}")),
                );
            }
            Batch::Produce(items) => {
                out.extend(
                    items
                        .iter()
                        .map(|&(c, d, p)| format!("{:?}", s.produce(c, d, p))),
                );
            }
            Batch::Consume(reqs) if batched => {
                let reqs = reqs.iter().map(|r| {
                    let mut q = ConsumeRequest::new(r.chans.clone(), r.pats.clone(), r.k);
                    q.persist = r.persist;
                    q.peeks.extend(r.peeks.iter().copied());
                    q
                });
                out.extend(s.consume_batch(reqs).iter().map(|r| format!("{r:?}")));
            }
            Batch::Consume(reqs) => {
                out.extend(reqs.iter().map(|r| {
                    let got = s.consume(r.chans.clone(), r.pats.clone(), r.k, r.persist, &r.peeks);
                    format!("{got:?}")
                }));
            }
        }
    }
    out
}

proptest! {
    // A fixed seed: every run explores the same cases (and a failure reproduces as is).
    #![proptest_config(ProptestConfig {
        cases: 256,
        rng_seed: RngSeed::Fixed(0x6261_7463_6865_7321),
        ..ProptestConfig::default()
    })]

    /// Random batches give, item for item, the outcomes of the same items called one by one
    /// in input order, and the same state root, on 1, 4 and 64 shards; on one shard count the
    /// event logs agree too (their order across shards depends on the shard count).
    #[test]
    fn batches_equal_one_by_one_calls_on_any_shard_count(
        mixed in any::<bool>(),
        batches in proptest::collection::vec(batch(), 1..=12),
    ) {
        let (want, reference) = run_batches(1, mixed, &batches, false);
        for shards in [1, 4, 64] {
            let (singles, single_cp) = run_batches(shards, mixed, &batches, false);
            let (got, batch_cp) = run_batches(shards, mixed, &batches, true);
            prop_assert_eq!(&got, &singles, "{} shards: batch outcomes differ", shards);
            prop_assert_eq!(&batch_cp, &single_cp, "{} shards: root or log differs", shards);
            prop_assert_eq!(&got, &want, "{} shards: outcomes differ from 1 shard", shards);
            prop_assert_eq!(batch_cp.root, reference.root, "{} shards: root differs", shards);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        rng_seed: RngSeed::Fixed(0x7265_706c_6179_2173),
        ..ProptestConfig::default()
    })]

    /// SPEC §7: batches replay identically. The log of random batches played on 1, 4 or 64
    /// shards, replayed on a rigged space of 1, 4 or 64 shards, batched or one item at a time,
    /// gives every item the outcome it had in play (refusals included), leaves nothing of the
    /// log unused, and ends at play's root.
    #[test]
    fn batches_replay_identically_batched_or_one_by_one(
        mixed in any::<bool>(),
        batches in proptest::collection::vec(batch(), 1..=10),
        play_shards in prop_oneof![Just(1usize), Just(4), Just(64)],
    ) {
        let play: PS = Space::with_shards(PredMatch, prop_config(mixed), play_shards);
        let start = play.create_checkpoint().expect("the start").root;
        let want = apply(&play, &batches, true);
        let block = play.create_checkpoint().expect("play's block");
        for shards in [1, 4, 64] {
            for batched in [true, false] {
                let replay: PS = Space::with_shards(PredMatch, prop_config(mixed), shards);
                replay.rig(&start, &block.log).expect("rig");
                let got = apply(&replay, &batches, batched);
                prop_assert_eq!(&got, &want, "{} shards, batched {}", shards, batched);
                let end = replay.create_checkpoint();
                prop_assert!(end.is_ok(), "{} shards, batched {}: {:?}", shards, batched, end);
                prop_assert_eq!(end.expect("checked").root, block.root);
            }
        }
    }
}

/// SPEC §5 and §7 inside a replayed batch: an item the log does not hold is refused with
/// `EventNotInLog` and hands its value back; the items around it replay as in play, and the
/// replay ends at play's root with nothing left over (the refused items stored nothing).
#[test]
fn a_replayed_batch_refuses_an_item_not_in_the_log_alone() {
    let play: S = Space::with_shards(ExactMatch, SpaceConfig::new(), 4);
    let start = play.create_checkpoint().unwrap().root;
    play.consume([1], [10], 0, false, &[]).unwrap();
    let played = play.produce_batch([(1, 10, false), (2, 20, false)]);
    assert!(played[0].as_ref().unwrap().is_some() && played[1].as_ref().unwrap().is_none());
    play.consume_batch([
        ConsumeRequest::new([2], [20], 1),
        ConsumeRequest::new([3], [30], 2),
    ]);
    let block = play.create_checkpoint().unwrap();

    let replay: S = Space::with_shards(ExactMatch, SpaceConfig::new(), 4);
    replay.rig(&start, &block.log).unwrap();
    replay.consume([1], [10], 0, false, &[]).unwrap();
    let out = replay.produce_batch([(1, 10, false), (9, 90, false), (2, 20, false)]);
    assert!(out[0].as_ref().unwrap().is_some(), "fires as in play");
    assert!(out[2].as_ref().unwrap().is_none(), "stored as in play");
    let refused = out.into_iter().nth(1).unwrap().unwrap_err();
    assert!(matches!(
        refused.kind(),
        ErrorKind::Replay(ReplayError::EventNotInLog { .. })
    ));
    assert_eq!(refused.into_inner(), 90);
    let out = replay.consume_batch([
        ConsumeRequest::new([2], [20], 1),
        ConsumeRequest::new([4], [40], 3),
        ConsumeRequest::new([3], [30], 2),
    ]);
    assert!(out[0].as_ref().unwrap().is_some(), "fires as in play");
    assert!(out[2].as_ref().unwrap().is_none(), "waits as in play");
    let refused = out.into_iter().nth(1).unwrap().unwrap_err();
    assert!(matches!(
        refused.kind(),
        ErrorKind::Replay(ReplayError::EventNotInLog { .. })
    ));
    assert_eq!(refused.into_inner(), 3);
    assert!(replay.data(&9).is_empty() && replay.continuations(&[4]).is_empty());
    assert_eq!(replay.create_checkpoint().unwrap().root, block.root);
}

/// SPEC §5: batches of nothing but misuses (a full Cell; an empty channel list, lengths that
/// disagree, a peek out of range, too many channels) refuse every item with its typed error
/// and its value handed back, and change nothing: the same views, the same state root, and no
/// event logged.
#[test]
fn batches_of_failing_items_change_no_view_root_or_log() {
    const CH: u32 = 8;
    let s: S = Space::with_shards(
        ExactMatch,
        SpaceConfig::new().channel_kind(7, DataKind::Cell),
        4,
    );
    s.produce(7, 70, false).unwrap();
    s.produce(1, 10, false).unwrap();
    s.consume([2, 3], [20, 30], 5, false, &[]).unwrap();
    let before = s.create_checkpoint().unwrap();
    let views = contents(&s, CH);

    let out = s.produce_batch([(7, 71, false), (7, 72, true)]);
    for (r, want) in out.into_iter().zip([71, 72]) {
        let e = r.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::CellFull);
        assert_eq!(e.into_inner(), want);
    }
    let mut peeking = ConsumeRequest::new([1], [10], 3);
    peeking.peeks.push(1);
    let wide = MAX_JOIN as u32 + 1;
    let out = s.consume_batch(vec![
        ConsumeRequest::new(Vec::<u32>::new(), Vec::<u32>::new(), 1),
        ConsumeRequest::new([1, 2], [10], 2),
        peeking,
        ConsumeRequest::new((0..wide).collect::<Vec<_>>(), vec![0; wide as usize], 4),
    ]);
    let kinds: Vec<String> = out
        .iter()
        .map(|r| format!("{:?}", r.as_ref().unwrap_err().kind()))
        .collect();
    assert!(kinds[0].starts_with("EmptyChannels"), "{kinds:?}");
    assert!(kinds[1].starts_with("LengthMismatch"), "{kinds:?}");
    assert!(kinds[2].starts_with("PeekOutOfRange"), "{kinds:?}");
    assert!(kinds[3].starts_with("TooManyChannels"), "{kinds:?}");
    let handed_back: Vec<u32> = out
        .into_iter()
        .map(|r| r.unwrap_err().into_inner())
        .collect();
    assert_eq!(handed_back, vec![1, 2, 3, 4]);

    assert_eq!(contents(&s, CH), views, "a view changed");
    let after = s.create_checkpoint().unwrap();
    assert_eq!(after.root, before.root, "the state root changed");
    assert!(
        after.log.is_empty(),
        "a refused item was logged: {:?}",
        after.log
    );
}

/// SPEC §5 mid-batch: refused items between good ones leave exactly what the good items
/// alone leave (views, state root and event log), and the good items' COMMs are theirs.
#[test]
fn failing_items_mid_batch_leave_what_the_good_items_alone_leave() {
    const CH: u32 = 8;
    let space = || -> S {
        Space::with_shards(
            ExactMatch,
            SpaceConfig::new().channel_kind(7, DataKind::Cell),
            4,
        )
    };
    let (batched, single) = (space(), space());
    for s in [&batched, &single] {
        s.consume([1, 7], [10, 70], 9, false, &[]).unwrap();
    }
    let got: Vec<String> = batched
        .produce_batch([
            (1, 10, false),
            (7, 71, false),
            (7, 72, false), // the Cell is full: refused
            (7, 70, false), // still full: refused
            (2, 20, false),
        ])
        .iter()
        .map(|r| format!("{r:?}"))
        .collect();
    let want: Vec<String> = [(1, 10, false), (7, 71, false), (2, 20, false)]
        .into_iter()
        .map(|(c, a, p)| format!("{:?}", single.produce(c, a, p)))
        .collect();
    assert_eq!([&got[..2], &got[4..]].concat(), want);
    assert!(
        got[2].contains("CellFull") && got[3].contains("CellFull"),
        "{got:?}"
    );

    let got: Vec<String> = batched
        .consume_batch(vec![
            ConsumeRequest::new([2], [20], 1),
            ConsumeRequest::new([2, 3], [20], 2), // lengths disagree: refused
            ConsumeRequest::new([7], [71], 3),
        ])
        .iter()
        .map(|r| format!("{r:?}"))
        .collect();
    let want: Vec<String> = [(2, 20, 1), (7, 71, 3)]
        .into_iter()
        .map(|(c, p, k)| format!("{:?}", single.consume([c], [p], k, false, &[])))
        .collect();
    assert_eq!(vec![got[0].clone(), got[2].clone()], want);
    assert!(got[1].contains("LengthMismatch"), "{got:?}");

    assert_eq!(contents(&batched, CH), contents(&single, CH));
    assert_eq!(
        batched.create_checkpoint().unwrap(),
        single.create_checkpoint().unwrap(),
        "root or log differs"
    );
}

/// A VectorDB space.
type VS = Space<u8, SimilarityPattern, Embedding, u32, SimilarityMatch>;

/// SPEC §5 on a VectorDB channel: a batch refuses embeddings of the wrong dimension, with
/// NaN or inf, or zero under cosine, and similarity queries of the wrong dimension, each
/// alone and with its value handed back; the good items around them do what they do alone
/// (same results, views and root).
#[test]
fn vector_batches_refuse_bad_embeddings_and_queries_alone() {
    let config = || {
        SpaceConfig::new().data_kind(DataKind::VectorDb {
            dim: 2,
            metric: Metric::Cosine,
        })
    };
    let (batched, single): (VS, VS) = (
        Space::with_shards(SimilarityMatch, config(), 4),
        Space::with_shards(SimilarityMatch, config(), 4),
    );
    let e = |v: &[f32]| Embedding::from(v.to_vec());
    let items = [
        (0, e(&[1.0, 0.0]), true),
        (0, e(&[1.0, 0.0, 0.0]), false),
        (0, e(&[f32::NAN, 1.0]), false),
        (1, e(&[f32::INFINITY, 1.0]), false),
        (0, e(&[0.0, 0.0]), false),
        (0, e(&[0.0, 1.0]), false),
        (1, e(&[0.6, 0.8]), false),
    ];
    let got = batched.produce_batch(items.clone());
    for (i, r) in got.iter().enumerate() {
        match i {
            0 | 5 | 6 => assert!(r.as_ref().unwrap().is_none(), "item {i}: {r:?}"),
            _ => {
                let err = r.as_ref().unwrap_err();
                assert!(
                    matches!(err.kind(), ErrorKind::Embedding(_)),
                    "item {i}: {err:?}"
                );
                assert_eq!(err.clone().into_inner(), items[i].1, "item {i}");
            }
        }
    }
    for i in [0, 5, 6] {
        let (c, d, p) = items[i].clone();
        single.produce(c, d, p).unwrap();
    }

    let best = |q: &[f32]| SimilarityPattern::best(q.to_vec(), Metric::Cosine, 0.9).unwrap();
    let got = batched.consume_batch(vec![
        ConsumeRequest::new([0u8], [best(&[1.0, 0.0, 0.0])], 1),
        ConsumeRequest::new([0u8], [best(&[0.0, 1.0])], 2),
        ConsumeRequest::new([0u8, 1], [best(&[1.0, 0.0]), best(&[1.0])], 3),
        ConsumeRequest::new([1u8], [best(&[0.6, 0.8])], 4),
    ]);
    let kinds: Vec<String> = got
        .iter()
        .map(|r| match r {
            Ok(c) => format!("fired {}", c.is_some()),
            Err(e) => format!("{:?}", e.kind()),
        })
        .collect();
    assert!(kinds[0].starts_with("Query"), "{kinds:?}");
    assert!(kinds[2].starts_with("Query"), "{kinds:?}");
    assert_eq!(&kinds[1], "fired true");
    assert_eq!(&kinds[3], "fired true");
    let want = [
        single.consume([0u8], [best(&[0.0, 1.0])], 2, false, &[]),
        single.consume([1u8], [best(&[0.6, 0.8])], 4, false, &[]),
    ];
    assert_eq!(format!("{:?}", got[1]), format!("{:?}", want[0]));
    assert_eq!(format!("{:?}", got[3]), format!("{:?}", want[1]));
    for c in 0..2u8 {
        assert_eq!(batched.data(&c), single.data(&c), "channel {c}");
    }
    assert_eq!(
        batched.create_checkpoint().unwrap(),
        single.create_checkpoint().unwrap(),
        "root or log differs"
    );
}

/// Runs `batch` on its own thread; whether it finished within a few seconds (a batch that
/// waits on its own shard locks never does; the thread is left behind).
fn finishes(batch: impl FnOnce() + Send + 'static) -> bool {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        batch();
        let _ = tx.send(());
    });
    rx.recv_timeout(std::time::Duration::from_secs(5)).is_ok()
}

/// The items of a batch are the caller's iterator's: a lazy one that reads the space (or
/// calls it) must not run while the batch holds shard locks, or it waits on them forever.
#[test]
fn batch_iterators_that_read_the_space_do_not_deadlock() {
    let s: std::sync::Arc<S> = std::sync::Arc::new(Space::new(ExactMatch, SpaceConfig::new()));
    let p = s.clone();
    let produced = finishes(move || {
        let out = p.produce_batch((0..3u32).map(|i| (1, i + p.data(&1).len() as u32, false)));
        assert_eq!(out.len(), 3);
    });
    assert!(produced, "produce_batch deadlocked on its own lock");
    let c = s.clone();
    let consumed = finishes(move || {
        let out = c.consume_batch((0..3u32).map(|i| {
            let _ = c.data(&1);
            ConsumeRequest::new([1], [i], i)
        }));
        assert_eq!(out.len(), 3);
    });
    assert!(consumed, "consume_batch deadlocked on its own lock");
}
