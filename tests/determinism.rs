//! SPEC §3 determinism: the same calls give the same COMMs and state, whatever the hash seeds
//! (every map in the space is seeded at random per instance, so two spaces built in one process
//! disagree on any leaked iteration order) and whatever the shard count, batched or one by one;
//! Bag results do not depend on insertion order where the spec says order does not matter; a
//! revert gives back identical views and behaviour.

mod common;

use common::{Pred, PredMatch};
use rhospace_spaces::{ConsumeRequest, ContKind, DataKind, Space, SpaceConfig};

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
        s.revert_to_soft_checkpoint(&cp);
        assert_eq!(contents(&s, channels, &lists), before);
        let (outs2, end2) = run(&s, &suffix, channels);
        assert_eq!(outs1, outs2);
        assert_eq!(end1, end2);
        // A checkpoint taken in one space restores the same views in a fresh one.
        let other: S = Space::new(PredMatch, config(mixed));
        other.revert_to_soft_checkpoint(&cp);
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
        target.revert_to_soft_checkpoint(&cp);
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
