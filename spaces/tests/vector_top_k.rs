//! Top-k similarity positions at their limits, through the public `Space` API: a `k` as large
//! as `usize::MAX` (SPEC §5: no input reachable through the public API panics, nor aborts on
//! an allocation sized by it), extreme dimensions and thresholds, and top-k on the head-only
//! kinds (SPEC §4: a Queue, Stack or PriorityQueue hands out only its head; the item behind
//! is reachable only once the head is used up, so never behind a persistent or peeked head),
//! from the consume and the produce side, against a naive model.

use proptest::prelude::*;
use rhospace_matchers::similarity::{EmbeddedDatum, Metric, SimilarityMatch, SimilarityPattern};
use rhospace_spaces::{DataKind, ErrorKind, Space, SpaceConfig};

type Datum = EmbeddedDatum<u32>;
type VSpace = Space<u8, SimilarityPattern, Datum, u8, SimilarityMatch>;

fn vspace(dim: usize) -> VSpace {
    Space::new(
        SimilarityMatch,
        SpaceConfig::new().data_kind(DataKind::VectorDb {
            dim,
            metric: Metric::Dot,
        }),
    )
}

fn kind_space(kind: DataKind) -> VSpace {
    Space::new(SimilarityMatch, SpaceConfig::new().data_kind(kind))
}

fn top_k(q: &[f32], threshold: f32, k: usize) -> SimilarityPattern {
    SimilarityPattern::top_k(q, Metric::Dot, threshold, k).unwrap()
}

fn ids(s: &VSpace, ch: u8) -> Vec<u32> {
    s.data(&ch).iter().map(|d| d.value.value).collect()
}

/// The kinds a similarity pattern can be used on.
const KINDS: [DataKind; 7] = [
    DataKind::Bag,
    DataKind::Set,
    DataKind::Queue,
    DataKind::Stack,
    DataKind::PriorityQueue,
    DataKind::Cell,
    DataKind::VectorDb {
        dim: 2,
        metric: Metric::Dot,
    },
];

#[test]
fn top_k_huge_does_not_panic() {
    let s = vspace(2);
    s.produce(0, EmbeddedDatum::new(1, [1.0f32, 0.0]), false)
        .unwrap();
    let p = top_k(&[1.0, 0.0], 0.0, usize::MAX);
    assert!(s.consume([0u8], [p], 7, false, &[]).unwrap().is_none());
}

#[test]
fn top_k_huge_on_bag_channel_does_not_panic() {
    let s: VSpace = Space::new(SimilarityMatch, SpaceConfig::new());
    s.produce(0, EmbeddedDatum::new(1, [1.0f32, 0.0]), false)
        .unwrap();
    let p = top_k(&[1.0, 0.0], 0.0, usize::MAX);
    assert!(s.consume([0u8], [p], 7, false, &[]).unwrap().is_none());
}

/// On every kind, from the consume side and from the produce side, alone and in a join, with
/// and without a peek: a top-`usize::MAX` never fires, never panics, and waits.
#[test]
fn a_huge_k_waits_on_every_kind_from_both_sides() {
    for kind in KINDS {
        for peeks in [&[][..], &[0][..]] {
            let s = kind_space(kind);
            s.produce(0, EmbeddedDatum::new(1, [1.0f32, 0.0]), false)
                .unwrap();
            let huge = top_k(&[1.0, 0.0], f32::NEG_INFINITY, usize::MAX);
            assert!(
                s.consume([0u8], [huge.clone()], 7, false, peeks)
                    .unwrap()
                    .is_none(),
                "{kind:?}"
            );
            // In a join, beside a top-k of a sane size on the same channel and another channel.
            let small = top_k(&[1.0, 0.0], f32::NEG_INFINITY, 1);
            assert!(s
                .consume(
                    [0u8, 0, 1],
                    [small.clone(), huge.clone(), small],
                    8,
                    false,
                    peeks
                )
                .unwrap()
                .is_none());
            assert_eq!(s.continuations(&[0]).len(), 1, "{kind:?}");
            // Produces are offered to the waiting continuations and stored.
            if kind != DataKind::Cell {
                for i in 2..5 {
                    assert!(
                        s.produce(0, EmbeddedDatum::new(i, [1.0f32, 0.0]), false)
                            .unwrap()
                            .is_none(),
                        "{kind:?}"
                    );
                }
            }
            // A datum for the join's last position does not complete it: its top-`usize::MAX`
            // position still cannot be filled.
            assert!(s
                .produce(1, EmbeddedDatum::new(9, [1.0f32, 0.0]), false)
                .unwrap()
                .is_none());
            assert_eq!(s.continuations(&[0, 0, 1]).len(), 1, "{kind:?}");
        }
    }
}

/// A huge `k` over many data (several sealed index blocks on a VectorDB channel) walks them
/// all once and allocates nothing sized by `k`; a `k` equal to the number of data fires.
#[test]
fn a_huge_k_over_many_data_walks_them_and_waits() {
    for kind in [
        DataKind::Bag,
        DataKind::VectorDb {
            dim: 2,
            metric: Metric::Dot,
        },
    ] {
        let s = kind_space(kind);
        for i in 0..1000u32 {
            s.produce(0, EmbeddedDatum::new(i, [i as f32, 1.0]), false)
                .unwrap();
        }
        for k in [usize::MAX, usize::MAX - 1, usize::MAX / 2, 1001] {
            assert!(s
                .consume([0u8], [top_k(&[1.0, 0.0], 0.0, k)], 7, false, &[])
                .unwrap()
                .is_none());
        }
        assert_eq!(s.data(&0).len(), 1000);
        // Cleared of the waiting ones, a top-1000 takes everything.
        s.clear();
        for i in 0..1000u32 {
            s.produce(0, EmbeddedDatum::new(i, [i as f32, 1.0]), false)
                .unwrap();
        }
        let comm = s
            .consume([0u8], [top_k(&[1.0, 0.0], 0.0, 1000)], 7, false, &[])
            .unwrap()
            .unwrap();
        assert_eq!(comm.matches.len(), 1000);
        assert!(s.data(&0).is_empty());
    }
}

/// Extreme dimensions and thresholds are typed errors or plain misses, never a panic.
#[test]
fn extreme_dimensions_and_thresholds_are_errors_or_misses() {
    // A channel dimension no embedding can have: every produce and similarity query is refused.
    let s = vspace(usize::MAX);
    let err = s
        .produce(0, EmbeddedDatum::new(1, [1.0f32, 0.0]), false)
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Embedding(_)), "{err:?}");
    let err = s
        .consume([0u8], [top_k(&[1.0, 0.0], 0.0, usize::MAX)], 7, false, &[])
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Query { .. }), "{err:?}");
    assert!(s.is_empty());
    // Infinite thresholds: +inf accepts no finite score, -inf accepts every one.
    let s = vspace(2);
    let fill = |s: &VSpace| {
        s.produce(0, EmbeddedDatum::new(1, [1.0f32, 0.0]), false)
            .unwrap();
        s.produce(0, EmbeddedDatum::new(2, [-1.0f32, 0.0]), false)
            .unwrap();
    };
    fill(&s);
    let none = top_k(&[1.0, 0.0], f32::INFINITY, 1);
    assert!(s.consume([0u8], [none], 7, false, &[]).unwrap().is_none());
    s.clear();
    fill(&s);
    let all = top_k(&[1.0, 0.0], f32::NEG_INFINITY, 2);
    let comm = s.consume([0u8], [all], 7, false, &[]).unwrap().unwrap();
    let got: Vec<u32> = comm.matches.iter().map(|m| m.datum.value).collect();
    assert_eq!(got, vec![1, 2]);
    assert!(ids(&s, 0).is_empty());
}

/// The data ids of a COMM, in COMM order.
fn comm_ids<R>(c: &rhospace_spaces::Comm<u8, SimilarityPattern, Datum, u8, R>) -> Vec<u32> {
    c.matches.iter().map(|m| m.datum.value).collect()
}

/// Datum `id` with the one-dimensional embedding `[x]`: its score against `[1.0]` is `x`.
fn one(id: u32, x: f32) -> Datum {
    EmbeddedDatum::new(id, [x])
}

/// A top-`k` of `[1.0]` (score = the datum's `x`) above `threshold`.
fn topk1(threshold: f32, k: usize) -> SimilarityPattern {
    top_k(&[1.0], threshold, k)
}

#[test]
fn top_k_on_queue_takes_item_behind_persistent_head() {
    let s = kind_space(DataKind::Queue);
    s.produce(0, EmbeddedDatum::new(1, [1.0f32, 0.0]), true)
        .unwrap(); // persistent head
    s.produce(0, EmbeddedDatum::new(2, [1.0f32, 0.0]), false)
        .unwrap();
    let p = top_k(&[1.0, 0.0], 0.5, 2);
    let r = s.consume([0u8], [p], 7, false, &[]).unwrap();
    assert!(r.is_none());
    assert_eq!(ids(&s, 0), vec![1, 2]);
    assert_eq!(s.continuations(&[0]).len(), 1);
}

/// A head the position takes and uses up exposes the next item, on every head-only kind: a
/// top-k takes `k` consecutive items from the head. A persistent item may end the group.
#[test]
fn top_k_on_head_only_kinds_takes_consecutive_items_it_uses_up() {
    // Queue: oldest first.
    let s = kind_space(DataKind::Queue);
    for (id, persist) in [(1, false), (2, false), (3, true), (4, false)] {
        s.produce(0, one(id, 1.0), persist).unwrap();
    }
    let c = s.consume([0u8], [topk1(0.5, 3)], 7, false, &[]).unwrap();
    assert_eq!(comm_ids(&c.unwrap()), vec![1, 2, 3]);
    assert_eq!(ids(&s, 0), vec![3, 4]);
    // Stack: newest first.
    let s = kind_space(DataKind::Stack);
    for (id, persist) in [(1, true), (2, false), (3, false)] {
        s.produce(0, one(id, 1.0), persist).unwrap();
    }
    let c = s.consume([0u8], [topk1(0.5, 3)], 7, false, &[]).unwrap();
    assert_eq!(comm_ids(&c.unwrap()), vec![3, 2, 1]);
    assert_eq!(ids(&s, 0), vec![1]);
    // PriorityQueue: highest priority first, FIFO within a level.
    let s = kind_space(DataKind::PriorityQueue);
    for (id, prio) in [(1, 1), (2, 5), (3, 5), (4, 9)] {
        s.produce_with_priority(0, one(id, 1.0), false, prio)
            .unwrap();
    }
    let c = s.consume([0u8], [topk1(0.5, 3)], 7, false, &[]).unwrap();
    assert_eq!(comm_ids(&c.unwrap()), vec![4, 2, 3]);
    assert_eq!(ids(&s, 0), vec![1]);
    // A head the pattern refuses blocks everything behind it.
    let s = kind_space(DataKind::Queue);
    for (id, x) in [(1, 0.0), (2, 1.0), (3, 1.0)] {
        s.produce(0, one(id, x), false).unwrap();
    }
    assert!(s
        .consume([0u8], [topk1(0.5, 2)], 7, false, &[])
        .unwrap()
        .is_none());
}

/// A persistent head is never used up: a top-k cannot reach past it, on Queue, Stack and
/// PriorityQueue (as a two-position join on the same channel cannot).
#[test]
fn top_k_on_head_only_kinds_stops_behind_a_persistent_head() {
    let queue = kind_space(DataKind::Queue);
    queue.produce(0, one(1, 1.0), true).unwrap();
    queue.produce(0, one(2, 1.0), false).unwrap();
    let stack = kind_space(DataKind::Stack);
    stack.produce(0, one(1, 1.0), false).unwrap();
    stack.produce(0, one(2, 1.0), true).unwrap();
    let prio = kind_space(DataKind::PriorityQueue);
    prio.produce_with_priority(0, one(1, 1.0), false, 9)
        .unwrap();
    prio.produce_with_priority(0, one(2, 1.0), true, 10)
        .unwrap();
    for (name, s, order) in [
        ("queue", &queue, [1, 2]),
        ("stack", &stack, [2, 1]),
        ("prio", &prio, [2, 1]),
    ] {
        let before = s.create_soft_checkpoint();
        assert!(
            s.consume([0u8], [topk1(0.5, 2)], 7, false, &[])
                .unwrap()
                .is_none(),
            "{name}"
        );
        assert_eq!(ids(s, 0), order, "{name}");
        // The head alone is still a top-1.
        s.revert_to_soft_checkpoint(&before).unwrap();
        let c = s.consume([0u8], [topk1(0.5, 1)], 7, false, &[]).unwrap();
        assert_eq!(comm_ids(&c.unwrap()), [order[0]], "{name}");
    }
}

/// A peeking top-k leaves its head in place, so it cannot reach past it either; the same
/// data without the peek are taken.
#[test]
fn a_peeking_top_k_on_head_only_kinds_stops_behind_the_head() {
    for kind in [DataKind::Queue, DataKind::Stack, DataKind::PriorityQueue] {
        let s = kind_space(kind);
        s.produce(0, one(1, 1.0), false).unwrap();
        s.produce(0, one(2, 1.0), false).unwrap();
        assert!(
            s.consume([0u8], [topk1(0.5, 2)], 7, false, &[0])
                .unwrap()
                .is_none(),
            "{kind:?}"
        );
        // A peeking top-1 sees the head.
        let c = s.consume([0u8], [topk1(0.5, 1)], 8, false, &[0]).unwrap();
        assert_eq!(c.unwrap().matches.len(), 1, "{kind:?}");
        // Without the peek, a top-2 uses the head up and takes both.
        let c = s.consume([0u8], [topk1(0.5, 2)], 9, false, &[]).unwrap();
        assert_eq!(c.unwrap().matches.len(), 2, "{kind:?}");
        assert!(s.data(&0).is_empty(), "{kind:?}");
    }
}

/// In a join: a head taken by an earlier position exposes the next item to a later top-k
/// position; a head an earlier position peeks blocks a later top-k that does not peek.
#[test]
fn a_top_k_after_another_position_on_the_same_head_only_channel() {
    let s = kind_space(DataKind::Queue);
    for id in 1..=4 {
        s.produce(0, one(id, 1.0), false).unwrap();
    }
    let c = s
        .consume([0u8, 0], [topk1(0.5, 1), topk1(0.5, 2)], 7, false, &[])
        .unwrap();
    assert_eq!(comm_ids(&c.unwrap()), vec![1, 2, 3]);
    assert_eq!(ids(&s, 0), vec![4]);
    s.produce(0, one(5, 1.0), false).unwrap();
    // Position 0 peeks the head (4): position 1 may not take it, nor reach 5 behind it.
    assert!(s
        .consume([0u8, 0], [topk1(0.5, 1), topk1(0.5, 2)], 8, false, &[0])
        .unwrap()
        .is_none());
    // Both peek: the head is shared, and still nothing behind it is reachable.
    assert!(s
        .consume([0u8, 0], [topk1(0.5, 1), topk1(0.5, 2)], 9, false, &[0, 1])
        .unwrap()
        .is_none());
    assert_eq!(ids(&s, 0), vec![4, 5]);
}

/// From the produce side: a produce offered to a waiting top-k on a head-only channel fires it
/// only when the items ahead of the produced one are all used up by the group.
#[test]
fn a_produce_completes_a_waiting_top_k_only_behind_used_up_items() {
    for kind in [DataKind::Queue, DataKind::PriorityQueue] {
        // Behind a persistent head: stored, the top-k keeps waiting.
        let s = kind_space(kind);
        s.produce(0, one(1, 1.0), true).unwrap();
        assert!(s
            .consume([0u8], [topk1(0.5, 2)], 7, false, &[])
            .unwrap()
            .is_none());
        assert!(
            s.produce(0, one(2, 1.0), false).unwrap().is_none(),
            "{kind:?}"
        );
        assert_eq!(ids(&s, 0), vec![1, 2], "{kind:?}");
        assert_eq!(s.continuations(&[0]).len(), 1, "{kind:?}");
        // Behind a head the waiting top-k peeks: stored.
        let s = kind_space(kind);
        s.produce(0, one(1, 1.0), false).unwrap();
        assert!(s
            .consume([0u8], [topk1(0.5, 2)], 7, false, &[0])
            .unwrap()
            .is_none());
        assert!(
            s.produce(0, one(2, 1.0), false).unwrap().is_none(),
            "{kind:?}"
        );
        assert_eq!(ids(&s, 0), vec![1, 2], "{kind:?}");
        // Behind a head the waiting top-k takes: fires with both.
        let s = kind_space(kind);
        s.produce(0, one(1, 1.0), false).unwrap();
        assert!(s
            .consume([0u8], [topk1(0.5, 2)], 7, false, &[])
            .unwrap()
            .is_none());
        let c = s.produce(0, one(2, 1.0), false).unwrap().unwrap();
        assert_eq!(comm_ids(&c), vec![1, 2], "{kind:?}");
        assert!(s.data(&0).is_empty(), "{kind:?}");
    }
    // Stack: the produced datum is the new head. A persistent one is never used up, so the
    // stored datum behind it is out of reach: stored too.
    let s = kind_space(DataKind::Stack);
    s.produce(0, one(1, 1.0), false).unwrap();
    assert!(s
        .consume([0u8], [topk1(0.5, 2)], 7, false, &[])
        .unwrap()
        .is_none());
    assert!(s.produce(0, one(2, 1.0), true).unwrap().is_none());
    assert_eq!(ids(&s, 0), vec![2, 1]);
    // A non-persistent one is used up, and exposes the persistent one behind it, which ends
    // the group.
    let c = s.produce(0, one(3, 1.0), false).unwrap().unwrap();
    assert_eq!(comm_ids(&c), vec![3, 2]);
    assert_eq!(ids(&s, 0), vec![2, 1]);
    // A non-persistent one exposes the stored non-persistent one.
    let s = kind_space(DataKind::Stack);
    s.produce(0, one(1, 1.0), false).unwrap();
    assert!(s
        .consume([0u8], [topk1(0.5, 2)], 7, false, &[])
        .unwrap()
        .is_none());
    let c = s.produce(0, one(2, 1.0), false).unwrap().unwrap();
    assert_eq!(comm_ids(&c), vec![2, 1]);
    assert!(s.data(&0).is_empty());
}

/// One step of the model test.
#[derive(Clone, Debug)]
enum Op {
    /// Produce a datum scoring `x`, persistent or not, with a priority.
    Produce { x: u8, persist: bool, prio: u8 },
    /// A non-persistent top-`k` consume above `threshold`, peeking or not.
    Consume { threshold: u8, k: usize, peek: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..4, any::<bool>(), 0u8..3)
            .prop_map(|(x, persist, prio)| Op::Produce { x, persist, prio }),
        2 => (0u8..4, 1usize..4, any::<bool>())
            .prop_map(|(threshold, k, peek)| Op::Consume { threshold, k, peek }),
    ]
}

/// A stored datum of the model: id, score, persistence, priority.
#[derive(Clone, Copy, Debug)]
struct MDatum {
    id: u32,
    x: u8,
    persist: bool,
    prio: u8,
}

/// A naive model of one head-only channel holding top-k consumes.
struct Model {
    kind: DataKind,
    /// In arrival order.
    data: Vec<MDatum>,
    /// Waiting `(threshold, k, peek)`, oldest first.
    waiting: Vec<(u8, usize, bool)>,
}

impl Model {
    /// `data` in the order the kind hands it out.
    fn ordered(&self, data: &[MDatum]) -> Vec<MDatum> {
        let mut v = data.to_vec();
        match self.kind {
            DataKind::Stack => v.reverse(),
            // Stable: FIFO within a level.
            DataKind::PriorityQueue => v.sort_by_key(|d| std::cmp::Reverse(d.prio)),
            _ => {}
        }
        v
    }

    /// The group a top-k takes from `data` (arrival order), as ids in walk order: from the
    /// head, each accepted item joins the group; the walk goes on only past an item the group
    /// uses up (accepted, not persistent, not peeked).
    fn walk(&self, data: &[MDatum], threshold: u8, k: usize, peek: bool) -> Option<Vec<u32>> {
        let mut group = Vec::new();
        for d in self.ordered(data) {
            if d.x < threshold {
                return None;
            }
            group.push(d.id);
            if group.len() == k {
                return Some(group);
            }
            if d.persist || peek {
                return None;
            }
        }
        None
    }

    /// Removes what a fired group used up.
    fn take(&mut self, group: &[u32], peek: bool) {
        if !peek {
            self.data.retain(|d| d.persist || !group.contains(&d.id));
        }
    }

    fn produce(&mut self, d: MDatum) -> Option<Vec<u32>> {
        let mut with = self.data.clone();
        with.push(d);
        for i in 0..self.waiting.len() {
            let (threshold, k, peek) = self.waiting[i];
            if let Some(group) = self.walk(&with, threshold, k, peek) {
                if group.contains(&d.id) {
                    self.waiting.remove(i);
                    self.take(&group, peek);
                    return Some(group);
                }
            }
        }
        self.data.push(d);
        None
    }

    fn consume(&mut self, threshold: u8, k: usize, peek: bool) -> Option<Vec<u32>> {
        match self.walk(&self.data, threshold, k, peek) {
            Some(group) => {
                self.take(&group, peek);
                Some(group)
            }
            None => {
                self.waiting.push((threshold, k, peek));
                None
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Top-k consumes and produces on one Queue, Stack or PriorityQueue channel give the COMMs
    /// and data of the naive model.
    #[test]
    fn top_k_on_head_only_kinds_matches_a_naive_model(
        kind in prop_oneof![
            Just(DataKind::Queue),
            Just(DataKind::Stack),
            Just(DataKind::PriorityQueue),
        ],
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        let s = kind_space(kind);
        let mut model = Model { kind, data: Vec::new(), waiting: Vec::new() };
        for (id, op) in (1u32..).zip(ops) {
            match op {
                Op::Produce { x, persist, prio } => {
                    let got = s
                        .produce_with_priority(0, one(id, f32::from(x)), persist, i64::from(prio))
                        .unwrap()
                        .map(|c| comm_ids(&c));
                    let want = model.produce(MDatum { id, x, persist, prio });
                    prop_assert_eq!(got, want, "produce {}", id);
                }
                Op::Consume { threshold, k, peek } => {
                    let peeks: &[usize] = if peek { &[0] } else { &[] };
                    let got = s
                        .consume([0u8], [topk1(f32::from(threshold), k)], 7, false, peeks)
                        .unwrap()
                        .map(|c| comm_ids(&c));
                    let want = model.consume(threshold, k, peek);
                    prop_assert_eq!(got, want, "consume at step {}", id);
                }
            }
            let want: Vec<u32> = model.ordered(&model.data).iter().map(|d| d.id).collect();
            prop_assert_eq!(ids(&s, 0), want);
            prop_assert_eq!(s.continuations(&[0]).len(), model.waiting.len());
        }
    }
}
