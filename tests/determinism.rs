//! SPEC §3 determinism: the same calls give the same COMMs and state, whatever the hash seeds
//! (every map in the space is seeded at random per instance, so two spaces built in one process
//! disagree on any leaked iteration order) and whatever the shard count, batched or one by one;
//! Bag results do not depend on insertion order where the spec says order does not matter; a
//! revert gives back identical views and behaviour.

mod common;

use common::{Pred, PredMatch};
use rhospace_spaces::{CandidateOrder, ConsumeRequest, ContKind, DataKind, Space, SpaceConfig};

type Ch = String;
type S = Space<Ch, Pred, i64, u32, PredMatch>;

/// A tiny deterministic generator (xorshift64*), so the sequences are fixed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Clone, Debug)]
enum Op {
    Produce(Ch, i64, bool, i64),
    Consume(Vec<Ch>, Vec<Pred>, u32, bool, Vec<usize>),
}

fn chan(i: u64) -> Ch {
    format!("channel-{i}")
}

fn pred(r: &mut Rng) -> Pred {
    match r.below(5) {
        0 => Pred::Any,
        1 => Pred::Even,
        2 => Pred::Odd,
        3 => Pred::Gt(r.below(6) as i64),
        _ => Pred::Eq(r.below(6) as i64),
    }
}

fn ops(seed: u64, n: usize, channels: u64) -> Vec<Op> {
    let mut r = Rng(seed);
    (0..n)
        .map(|i| {
            if r.chance(55) {
                Op::Produce(
                    chan(r.below(channels)),
                    r.below(6) as i64,
                    r.chance(10),
                    r.below(3) as i64,
                )
            } else {
                let arity = 1 + r.below(3) as usize;
                let chans = (0..arity).map(|_| chan(r.below(channels))).collect();
                let pats = (0..arity).map(|_| pred(&mut r)).collect();
                let peeks = if r.chance(20) {
                    vec![r.below(arity as u64) as usize]
                } else {
                    vec![]
                };
                Op::Consume(chans, pats, i as u32, r.chance(10), peeks)
            }
        })
        .collect()
}

fn config(mixed: bool) -> SpaceConfig<Ch> {
    let mut c = SpaceConfig::new();
    if mixed {
        let kinds = [
            DataKind::Queue,
            DataKind::Stack,
            DataKind::Set,
            DataKind::Cell,
            DataKind::PriorityQueue,
        ];
        for (i, k) in kinds.into_iter().enumerate() {
            c = c.channel_kind(chan(i as u64), k);
        }
        c = c.cont_kind(ContKind::Set);
    }
    c
}

/// Runs `ops`, returning every outcome and the final contents, all as text.
fn run(space: &S, ops: &[Op], channels: u64) -> (Vec<String>, String) {
    let mut outcomes = Vec::new();
    let mut lists: Vec<Vec<Ch>> = Vec::new();
    for op in ops {
        let out = match op {
            Op::Produce(c, d, p, prio) => {
                format!(
                    "{:?}",
                    space.produce_with_priority(c.clone(), *d, *p, *prio)
                )
            }
            Op::Consume(cs, ps, k, p, peeks) => {
                if !lists.contains(cs) {
                    lists.push(cs.clone());
                }
                format!("{:?}", space.consume(cs.clone(), ps.clone(), *k, *p, peeks))
            }
        };
        outcomes.push(out);
    }
    (outcomes, contents(space, channels, &lists))
}

fn contents(space: &S, channels: u64, lists: &[Vec<Ch>]) -> String {
    let mut out = String::new();
    for i in 0..channels {
        let c = chan(i);
        out += &format!("{c}: {:?} joins {:?}\n", space.data(&c), space.joins(&c));
    }
    for l in lists {
        out += &format!("{l:?}: {:?}\n", space.continuations(l));
    }
    out += &format!("{} {}\n", space.is_empty(), space.channel_count());
    out
}

#[test]
fn same_calls_same_comms_and_state() {
    for (seed, mixed) in [(1u64, false), (2, false), (3, true), (4, true), (5, false)] {
        let channels = 24;
        let seq = ops(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), 1500, channels);
        let first: S = Space::new(PredMatch, config(mixed));
        let (outs1, end1) = run(&first, &seq, channels);
        let fired = outs1.iter().filter(|o| o.starts_with("Ok(Some")).count();
        assert!(
            fired > 100,
            "seed {seed}: the sequence should fire often ({fired})"
        );
        for _ in 0..3 {
            let again: S = Space::new(PredMatch, config(mixed));
            let (outs2, end2) = run(&again, &seq, channels);
            for (i, (a, b)) in outs1.iter().zip(&outs2).enumerate() {
                assert_eq!(a, b, "seed {seed}: call {i} ({:?}) differs", seq[i]);
            }
            assert_eq!(end1, end2, "seed {seed}: final contents differ");
        }
    }
}

/// What one insertion order gave: data taken per consume, data left per channel, data drained.
type Outcome = (Vec<Vec<i64>>, Vec<Vec<i64>>, Vec<i64>);

/// Bag: producing one multiset in different orders, then consuming with exact patterns and
/// finally draining, consumes the same multiset and leaves the same contents.
#[test]
fn bag_results_do_not_depend_on_insertion_order() {
    let base: Vec<(u64, i64)> = (0..60).map(|i| (i % 3, (i * 7 % 11) as i64)).collect();
    let mut reference: Option<Outcome> = None;
    for seed in 1..=6u64 {
        let mut items = base.clone();
        let mut r = Rng(seed * 7919);
        for i in (1..items.len()).rev() {
            items.swap(i, r.below(i as u64 + 1) as usize);
        }
        let s: S = Space::new(PredMatch, SpaceConfig::new());
        for (c, d) in &items {
            assert!(s.produce(chan(*c), *d, false).unwrap().is_none());
        }
        // Exact consumes and exact joins: the data taken are fixed by the patterns.
        let mut taken = Vec::new();
        for (cs, ps) in [
            (vec![0], vec![3]),
            (vec![0, 1], vec![5, 5]),
            (vec![1, 2, 2], vec![0, 3, 3]),
            (vec![2], vec![9]),
            (vec![0, 0], vec![0, 0]),
        ] {
            let chans: Vec<Ch> = cs.iter().map(|&c| chan(c)).collect();
            let pats: Vec<Pred> = ps.iter().map(|&p| Pred::Eq(p)).collect();
            let comm = s.consume(chans, pats, 0, false, &[]).unwrap().unwrap();
            let mut got: Vec<i64> = comm.matches.iter().map(|m| m.datum).collect();
            got.sort_unstable();
            taken.push(got);
        }
        let mut left: Vec<Vec<i64>> = (0..3)
            .map(|c| {
                let mut v: Vec<i64> = s.data(&chan(c)).iter().map(|d| d.value).collect();
                v.sort_unstable();
                v
            })
            .collect();
        left.iter_mut().for_each(|v| v.sort_unstable());
        // Drain with a three-way Any join, then singles.
        let mut drained = Vec::new();
        let all: Vec<Ch> = (0..3).map(chan).collect();
        while let Some(c) = s
            .consume(all.clone(), vec![Pred::Any; 3], 0, false, &[])
            .unwrap()
        {
            drained.extend(c.matches.iter().map(|m| m.datum));
        }
        for c in 0..3 {
            while let Some(comm) = s.consume([chan(c)], [Pred::Any], 0, false, &[]).unwrap() {
                drained.push(comm.matches[0].datum);
            }
        }
        drained.sort_unstable();
        // Every datum is gone (the last, unfired consumes wait as continuations).
        assert!((0..3).all(|c| s.data(&chan(c)).is_empty()));
        let now = (taken, left, drained);
        match &reference {
            None => reference = Some(now),
            Some(r) => assert_eq!(r, &now, "order {seed}"),
        }
    }
}

/// Reverting gives back identical views, and the same calls after a revert give the same
/// COMMs as the first time.
#[test]
fn revert_restores_identical_views_and_behaviour() {
    let channels = 12;
    for mixed in [false, true] {
        let s: S = Space::new(PredMatch, config(mixed));
        let prefix = ops(11, 300, channels);
        let suffix = ops(12, 300, channels);
        let lists: Vec<Vec<Ch>> = prefix
            .iter()
            .chain(&suffix)
            .filter_map(|o| match o {
                Op::Consume(cs, ..) => Some(cs.clone()),
                _ => None,
            })
            .collect();
        run(&s, &prefix, channels);
        let before = contents(&s, channels, &lists);
        let cp = s.create_soft_checkpoint();
        let (outs1, end1) = run(&s, &suffix, channels);
        assert_ne!(contents(&s, channels, &lists), before);
        s.revert_to_soft_checkpoint(&cp).unwrap();
        assert_eq!(contents(&s, channels, &lists), before);
        let (outs2, end2) = run(&s, &suffix, channels);
        assert_eq!(outs1, outs2);
        assert_eq!(end1, end2);
        // A checkpoint taken in one space restores the same views in a fresh one.
        let other: S = Space::new(PredMatch, config(mixed));
        other.revert_to_soft_checkpoint(&cp).unwrap();
        assert_eq!(contents(&other, channels, &lists), before);
        let (outs3, _) = run(&other, &suffix, channels);
        assert_eq!(outs1, outs3);
    }
}

#[test]
fn shard_count_does_not_reach_a_result() {
    for (seed, mixed) in [(11u64, false), (12, true)] {
        let channels = 24;
        let seq = ops(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), 1500, channels);
        let one: S = Space::with_shards(PredMatch, config(mixed), 1);
        let (outs1, end1) = run(&one, &seq, channels);
        for shards in [2, 8, 32, 1024] {
            let many: S = Space::with_shards(PredMatch, config(mixed), shards);
            let (outs2, end2) = run(&many, &seq, channels);
            for (i, (a, b)) in outs1.iter().zip(&outs2).enumerate() {
                assert_eq!(a, b, "{shards} shards: call {i} ({:?}) differs", seq[i]);
            }
            assert_eq!(end1, end2, "{shards} shards: final contents differ");
        }
    }
}

/// Runs `ops` as batches: each run of consecutive priority-0 produces is one `produce_batch`,
/// each run of consecutive consumes one `consume_batch` (a produce with a priority is called
/// alone). Returns what [`run`] returns.
fn run_batched(space: &S, ops: &[Op], channels: u64) -> (Vec<String>, String) {
    let mut outcomes = Vec::new();
    let mut lists: Vec<Vec<Ch>> = Vec::new();
    let mut rest = ops;
    while let Some(first) = rest.first() {
        let batch = |p: fn(&Op) -> bool| rest.iter().take_while(|o| p(o)).count();
        match first {
            Op::Produce(c, d, p, prio) if *prio != 0 => {
                let r = space.produce_with_priority(c.clone(), *d, *p, *prio);
                outcomes.push(format!("{r:?}"));
                rest = &rest[1..];
            }
            Op::Produce(..) => {
                let n = batch(|o| matches!(o, Op::Produce(.., 0)));
                let items = rest[..n].iter().filter_map(|o| match o {
                    Op::Produce(c, d, p, _) => Some((c.clone(), *d, *p)),
                    Op::Consume(..) => None,
                });
                outcomes.extend(space.produce_batch(items).iter().map(|r| format!("{r:?}")));
                rest = &rest[n..];
            }
            Op::Consume(..) => {
                let n = batch(|o| matches!(o, Op::Consume(..)));
                let mut reqs = Vec::new();
                for o in &rest[..n] {
                    if let Op::Consume(cs, ps, k, p, peeks) = o {
                        if !lists.contains(cs) {
                            lists.push(cs.clone());
                        }
                        let mut r = ConsumeRequest::new(cs.clone(), ps.clone(), *k);
                        r.persist = *p;
                        r.peeks.extend(peeks.iter().copied());
                        reqs.push(r);
                    }
                }
                outcomes.extend(space.consume_batch(reqs).iter().map(|r| format!("{r:?}")));
                rest = &rest[n..];
            }
        }
    }
    (outcomes, contents(space, channels, &lists))
}

/// The batch operations run their items in input order: batching the calls gives the COMMs
/// and state of the single calls, on any shard count.
#[test]
fn batches_give_the_single_calls_results_on_any_shard_count() {
    for (seed, mixed) in [(21u64, false), (22, true)] {
        let channels = 24;
        let seq = ops(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), 1500, channels);
        let one: S = Space::with_shards(PredMatch, config(mixed), 1);
        let (outs1, end1) = run(&one, &seq, channels);
        for shards in [1, 2, 8, 32, 1024] {
            let many: S = Space::with_shards(PredMatch, config(mixed), shards);
            let (outs2, end2) = run_batched(&many, &seq, channels);
            assert_eq!(outs1.len(), outs2.len(), "one outcome per call");
            for (i, (a, b)) in outs1.iter().zip(&outs2).enumerate() {
                assert_eq!(
                    a, b,
                    "{shards} shards, batched: call {i} ({:?}) differs",
                    seq[i]
                );
            }
            assert_eq!(
                end1, end2,
                "{shards} shards, batched: final contents differ"
            );
        }
    }
}

#[test]
fn checkpoints_move_between_spaces_of_different_shard_counts() {
    let channels = 24;
    let seq = ops(0xC0FF_EE00, 800, channels);
    let source: S = Space::with_shards(PredMatch, config(true), 4);
    let (_, end) = run(&source, &seq[..400], channels);
    let cp = source.create_soft_checkpoint();
    let (rest_source, end_source) = run(&source, &seq[400..], channels);
    for shards in [1, 4, 64] {
        let target: S = Space::with_shards(PredMatch, config(true), shards);
        target.revert_to_soft_checkpoint(&cp).unwrap();
        assert_eq!(contents(&target, channels, &[]), contents_of(&end));
        let (rest, end_target) = run(&target, &seq[400..], channels);
        assert_eq!(
            rest, rest_source,
            "{shards} shards behave differently after revert"
        );
        assert_eq!(end_target, end_source);
    }
}

/// The per-channel part of `contents` output (join-list lines dropped).
fn contents_of(full: &str) -> String {
    let lines: Vec<&str> = full.lines().filter(|l| l.starts_with("channel-")).collect();
    let last = full.lines().last().unwrap_or_default();
    format!("{}\n{last}\n", lines.join("\n"))
}

// ---- The seeded-shuffle candidate order (SPEC §3) ----

fn shuffled(mixed: bool, seed: u64) -> SpaceConfig<Ch> {
    config(mixed).candidate_order(CandidateOrder::Shuffled { seed })
}

/// The same calls give the same COMMs, contents and state root across runs and shard counts.
#[test]
fn shuffled_order_is_deterministic_across_runs_and_shard_counts() {
    for (seed, mixed) in [(21u64, false), (22, true), (23, false)] {
        let channels = 24;
        let seq = ops(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), 1200, channels);
        let first: S = Space::with_shards(PredMatch, shuffled(mixed, seed), 1);
        let (outs1, end1) = run(&first, &seq, channels);
        let root1 = first.create_checkpoint().expect("checkpoint").root;
        let fired = outs1.iter().filter(|o| o.starts_with("Ok(Some")).count();
        assert!(
            fired > 100,
            "seed {seed}: the sequence should fire ({fired})"
        );
        for shards in [1, 4, 64] {
            let again: S = Space::with_shards(PredMatch, shuffled(mixed, seed), shards);
            let (outs2, end2) = run(&again, &seq, channels);
            for (i, (a, b)) in outs1.iter().zip(&outs2).enumerate() {
                assert_eq!(a, b, "seed {seed}, {shards} shards: call {i} differs");
            }
            assert_eq!(end1, end2, "seed {seed}, {shards} shards: contents differ");
            let root2 = again.create_checkpoint().expect("checkpoint").root;
            assert_eq!(root1, root2, "seed {seed}, {shards} shards: root differs");
        }
        // The order is really shuffled: oldest first makes other choices on this sequence.
        let oldest: S = Space::with_shards(PredMatch, config(mixed), 1);
        let (outs3, _) = run(&oldest, &seq, channels);
        assert_ne!(outs1, outs3, "seed {seed}: the shuffle changes no choice");
    }
}

/// Consumes and produces that leave a choice among Bag data, Bag continuations and join
/// groups (all channels 0..3), run after `setup`.
fn choosy_calls(s: &S) -> Vec<String> {
    let mut out = Vec::new();
    let all: Vec<Ch> = (0..3).map(chan).collect();
    for round in 0..6u32 {
        for p in [Pred::Any, Pred::Even, Pred::Odd, Pred::Gt(2)] {
            let r = s.consume([chan(u64::from(round % 3))], [p], round, false, &[]);
            out.push(format!("{r:?}"));
        }
        let r = s.consume(
            all.clone(),
            vec![Pred::Any, Pred::Even, Pred::Any],
            9,
            false,
            &[1],
        );
        out.push(format!("{r:?}"));
        let r = s.consume([chan(0), chan(0)], [Pred::Any, Pred::Any], 8, false, &[]);
        out.push(format!("{r:?}"));
    }
    // Drain what is left through waiting continuations offered new data.
    for d in 0..12 {
        let r = s.produce(chan(d % 3), d as i64, false);
        out.push(format!("{r:?}"));
    }
    out
}

/// What a Bag setup stores: data on channels 0..3 (duplicates and persistent copies
/// included), then continuations waiting on several join groups of channel 3.
/// Data (channel, value, persist) and waiting continuations (channels, patterns, id).
type Items = (Vec<(u64, i64, bool)>, Vec<(Vec<u64>, Vec<Pred>, u32)>);

fn setup_items() -> Items {
    let data = (0..45)
        .map(|i: u64| (i % 3, (i * 7 % 5) as i64, i.is_multiple_of(11)))
        .collect();
    let conts = (0..12u32)
        .map(|k| {
            let list = match k % 3 {
                0 => vec![3],
                1 => vec![3, 4],
                _ => vec![4, 3],
            };
            let pats = list.iter().map(|_| Pred::Gt(i64::from(k % 4))).collect();
            (list, pats, k)
        })
        .collect();
    (data, conts)
}

fn setup(s: &S, order_seed: u64) {
    let (mut data, mut conts) = setup_items();
    let mut r = Rng(order_seed.wrapping_mul(7919) | 1);
    for i in (1..data.len()).rev() {
        data.swap(i, r.below(i as u64 + 1) as usize);
    }
    for i in (1..conts.len()).rev() {
        conts.swap(i, r.below(i as u64 + 1) as usize);
    }
    for (c, d, p) in data {
        s.produce(chan(c), d, p).expect("produce");
    }
    for (list, pats, k) in conts {
        let chans: Vec<Ch> = list.into_iter().map(chan).collect();
        s.consume(chans, pats, k, false, &[]).expect("consume");
    }
}

/// The produces that fire the continuations waiting on channels 3 and 4.
fn fire_waiting(s: &S) -> Vec<String> {
    let mut out = Vec::new();
    for d in 0..8 {
        out.push(format!("{:?}", s.produce(chan(4), d, false)));
        out.push(format!("{:?}", s.produce(chan(3), d + 1, false)));
    }
    out
}

/// Insertion order does not reach a shuffled choice: one multiset of data and of waiting
/// continuations, stored in different orders, gives the same COMMs and the same root.
#[test]
fn shuffled_choices_do_not_depend_on_insertion_order() {
    for seed in [1u64, 2, 3] {
        let mut reference: Option<(Vec<String>, Vec<String>)> = None;
        for order in 0..5 {
            let s: S = Space::new(PredMatch, shuffled(false, seed));
            setup(&s, order);
            let root = s.create_checkpoint().expect("checkpoint").root;
            let mut got = fire_waiting(&s);
            got.extend(choosy_calls(&s));
            got.push(format!(
                "{:?}",
                s.create_checkpoint().expect("checkpoint").root
            ));
            match &reference {
                None => reference = Some((got, vec![format!("{root:?}")])),
                Some((r, r0)) => {
                    assert_eq!(r0, &vec![format!("{root:?}")], "same multiset, same root");
                    for (i, (a, b)) in r.iter().zip(&got).enumerate() {
                        assert_eq!(a, b, "seed {seed}, insertion order {order}: call {i}");
                    }
                }
            }
        }
    }
}

/// Without a checkpoint between them too: the live order (not only the canonical one a
/// checkpoint rebuilds) is irrelevant to a shuffled choice.
#[test]
fn shuffled_choices_do_not_need_a_checkpoint_to_agree() {
    let a: S = Space::new(PredMatch, shuffled(false, 5));
    let b: S = Space::new(PredMatch, shuffled(false, 5));
    setup(&a, 1);
    setup(&b, 2);
    let (mut x, mut y) = (fire_waiting(&a), fire_waiting(&b));
    x.extend(choosy_calls(&a));
    y.extend(choosy_calls(&b));
    assert_eq!(x, y);
}

/// A space that goes on after a hard checkpoint and a fresh space reset to that root (from
/// the shared history store) make the same choices.
#[test]
fn shuffled_choices_survive_a_hard_checkpoint_and_reset() {
    use rhospace_spaces::{HistoryStore, MemoryHistory};
    use std::sync::Arc;
    for (seed, mixed) in [(31u64, false), (32, true)] {
        let store: Arc<dyn HistoryStore> = Arc::new(MemoryHistory::new());
        let channels = 12;
        let seq = ops(seed, 900, channels);
        let a: S = Space::new(PredMatch, shuffled(mixed, seed)).with_history(store.clone());
        setup(&a, 3);
        run(&a, &seq[..400], channels);
        let root = a.create_checkpoint().expect("checkpoint").root;
        let (outs_a, end_a) = run(&a, &seq[400..], channels);
        let mut more_a = fire_waiting(&a);
        more_a.extend(choosy_calls(&a));
        let root_a = a.create_checkpoint().expect("checkpoint").root;

        let b: S = Space::with_shards(PredMatch, shuffled(mixed, seed), 4).with_history(store);
        b.reset(&root).expect("reset to a recorded root");
        let (outs_b, end_b) = run(&b, &seq[400..], channels);
        let mut more_b = fire_waiting(&b);
        more_b.extend(choosy_calls(&b));
        assert_eq!(
            outs_a, outs_b,
            "seed {seed}: the calls after the root differ"
        );
        assert_eq!(end_a, end_b);
        assert_eq!(more_a, more_b);
        assert_eq!(root_a, b.create_checkpoint().expect("checkpoint").root);
    }
}

/// The first datum a wildcard consume takes from `n` distinct data on a Bag channel.
fn first_taken(seed: u64, n: i64) -> i64 {
    let s: S = Space::new(PredMatch, shuffled(false, seed));
    for d in 0..n {
        s.produce(chan(0), d, false).expect("produce");
    }
    let comm = s
        .consume([chan(0)], [Pred::Any], 0, false, &[])
        .expect("consume");
    comm.map_or(-1, |c| c.matches[0].datum)
}

/// The continuation a produce fires among `n` waiting on one channel (Bag continuations).
fn first_fired(seed: u64, n: u32) -> u32 {
    let s: S = Space::new(PredMatch, shuffled(false, seed));
    for k in 0..n {
        s.consume([chan(0)], [Pred::Any], k, false, &[])
            .expect("consume");
    }
    let comm = s.produce(chan(0), 1, false).expect("produce");
    comm.map_or(u32::MAX, |c| c.continuation)
}

/// The join group a produce fires among `n` groups of channel 0 (one continuation each).
fn first_group(seed: u64, n: u64) -> u32 {
    let s: S = Space::new(PredMatch, shuffled(false, seed));
    for g in 1..=n {
        s.produce(chan(g), 0, false).expect("produce");
        s.consume(
            [chan(0), chan(g)],
            [Pred::Any, Pred::Any],
            g as u32,
            false,
            &[],
        )
        .expect("consume");
    }
    let comm = s.produce(chan(0), 1, false).expect("produce");
    comm.map_or(u32::MAX, |c| c.continuation)
}

/// The seed is used: different seeds choose differently, for data, continuations and groups.
#[test]
fn different_seeds_choose_differently() {
    let data: std::collections::BTreeSet<i64> = (0..16).map(|s| first_taken(s, 10)).collect();
    let conts: std::collections::BTreeSet<u32> = (0..16).map(|s| first_fired(s, 10)).collect();
    let groups: std::collections::BTreeSet<u32> = (0..16).map(|s| first_group(s, 6)).collect();
    assert!(data.len() > 3, "data: {data:?}");
    assert!(conts.len() > 3, "continuations: {conts:?}");
    assert!(groups.len() > 2, "join groups: {groups:?}");
}

/// Fairness without timing: over many seeds each of `n` equal candidates comes first about
/// `1/n` of the time (within a generous band: 2,000 draws, expected 250 each).
#[test]
fn each_candidate_comes_first_a_fair_share_of_seeds() {
    let n = 8usize;
    let draws = 2000u64;
    let mut data = vec![0u32; n];
    let mut conts = vec![0u32; n];
    for seed in 0..draws {
        let d = first_taken(seed, n as i64);
        data[usize::try_from(d).expect("a datum was taken")] += 1;
        conts[first_fired(seed, n as u32) as usize] += 1;
    }
    for counts in [&data, &conts] {
        for &c in counts.iter() {
            assert!((175..=325).contains(&c), "unfair: {counts:?}");
        }
    }
}

/// Joins stay complete under the shuffle: where the shuffle offers first the datum that makes
/// the rest fail, the search backtracks and still finds the only valid assignment.
#[test]
fn shuffled_joins_are_matched_completely() {
    let mut backtracked = 0;
    for seed in 0..64 {
        // Which of 1 and 2 the shuffle offers a wildcard first, on the same contents.
        if first_taken_of(seed, &[1, 2]) == 1 {
            backtracked += 1;
        }
        let s: S = Space::new(PredMatch, shuffled(false, seed));
        s.produce(chan(0), 1, false).expect("produce");
        s.produce(chan(0), 2, false).expect("produce");
        // Only (2, 1) works: position 1 needs the 1, so position 0 must take the 2.
        let comm = s
            .consume([chan(0), chan(0)], [Pred::Any, Pred::Eq(1)], 0, false, &[])
            .expect("consume")
            .expect("the only valid assignment is found");
        let got: Vec<i64> = comm.matches.iter().map(|m| m.datum).collect();
        assert_eq!(got, vec![2, 1], "seed {seed}");
        // The produce side too: a join waiting on two channels fires when its data arrive.
        let t: S = Space::new(PredMatch, shuffled(false, seed));
        t.produce(chan(1), 1, false).expect("produce");
        t.produce(chan(1), 2, false).expect("produce");
        t.consume(
            [chan(1), chan(1), chan(2)],
            [Pred::Any, Pred::Eq(1), Pred::Any],
            7,
            false,
            &[],
        )
        .expect("consume");
        let comm = t
            .produce(chan(2), 5, false)
            .expect("produce")
            .expect("fires");
        let got: Vec<i64> = comm.matches.iter().map(|m| m.datum).collect();
        assert_eq!(got, vec![2, 1, 5], "seed {seed}");
    }
    assert!(
        backtracked > 10,
        "the shuffle put the 1 first too rarely: {backtracked}"
    );
}

fn first_taken_of(seed: u64, data: &[i64]) -> i64 {
    let s: S = Space::new(PredMatch, shuffled(false, seed));
    for &d in data {
        s.produce(chan(0), d, false).expect("produce");
    }
    let comm = s
        .consume([chan(0)], [Pred::Any], 0, false, &[])
        .expect("consume");
    comm.map_or(-1, |c| c.matches[0].datum)
}

/// Ordered kinds keep their orders under a shuffled config.
#[test]
fn ordered_kinds_ignore_the_shuffle() {
    for seed in 0..16 {
        let config = shuffled(false, seed)
            .channel_kind(chan(0), DataKind::Queue)
            .channel_kind(chan(1), DataKind::Stack)
            .channel_kind(chan(2), DataKind::PriorityQueue);
        let s: S = Space::new(PredMatch, config);
        for d in 0..5 {
            s.produce_with_priority(chan(0), d, false, 0)
                .expect("produce");
            s.produce_with_priority(chan(1), d, false, 0)
                .expect("produce");
            s.produce_with_priority(chan(2), d, false, d % 2)
                .expect("produce");
        }
        let take = |c: u64| -> i64 {
            let comm = s
                .consume([chan(c)], [Pred::Any], 0, false, &[])
                .expect("consume");
            comm.map_or(-1, |c| c.matches[0].datum)
        };
        assert_eq!(take(0), 0, "queue: oldest");
        assert_eq!(take(1), 4, "stack: newest");
        assert_eq!(take(2), 1, "priority: highest, then oldest");
    }
}

/// A persistent and a non-persistent copy of one value are different candidates: with an
/// exact pattern and the exact index, the shuffle (not the arrival order) decides which one
/// an exact consume meets, and the choice is the same whatever order they arrived in.
#[test]
fn persistent_and_plain_copies_are_ranked_as_different_items() {
    let mut persistent_first = 0;
    for seed in 0..32 {
        let mut seen = Vec::new();
        for plain_first in [false, true] {
            let s: S = Space::new(PredMatch, shuffled(false, seed));
            // Enough data for the exact index.
            for d in 10..40 {
                s.produce(chan(0), d, false).expect("produce");
            }
            for p in if plain_first {
                [false, true]
            } else {
                [true, false]
            } {
                s.produce(chan(0), 3, p).expect("produce");
            }
            let comm = s
                .consume([chan(0)], [Pred::Eq(3)], 0, false, &[])
                .expect("consume")
                .expect("fires");
            seen.push(comm.matches[0].persistent);
        }
        assert_eq!(seen[0], seen[1], "seed {seed}: arrival order decided");
        persistent_first += usize::from(seen[0]);
    }
    assert!(
        (4..=28).contains(&persistent_first),
        "{persistent_first} of 32"
    );
}
