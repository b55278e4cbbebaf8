//! Determinism of charges on VectorDB channels (SPEC §3, §7, §8): a replay of the same calls,
//! from the same root, charges exactly what play charged, similarity search (vector work,
//! matching work, COMMs of top-k positions) included; and so does the same space reset to that
//! root, whose index still holds the dead rows play left behind.

mod common;

use std::sync::Arc;

use rhospace_matchers::similarity::{Metric, SimilarityMatch, SimilarityPattern};
use rhospace_matchers::Match;
use rhospace_phlogiston::{CostTable, PhlogistonMeter};
use rhospace_spaces::{
    Admission, ChargingSpace, DataKind, MemoryHistory, Space, SpaceConfig, VectorWork,
};

use common::{best, d, Datum};

type VSpace = Space<u32, SimilarityPattern, Datum, u32, SimilarityMatch>;
type CSpace = ChargingSpace<u32, SimilarityPattern, Datum, u32, SimilarityMatch>;

const DIM: usize = 3;
/// A Bag channel: similarity patterns there are plain predicates (no ranking).
const BAG: u32 = 9;

fn top_k(q: &[f32], threshold: f32, k: usize) -> SimilarityPattern {
    SimilarityPattern::top_k(q, Metric::Dot, threshold, k).unwrap()
}

fn b(q: &[f32], threshold: f32) -> SimilarityPattern {
    best(q, Metric::Dot, threshold)
}

fn config() -> SpaceConfig<u32> {
    SpaceConfig::new()
        .data_kind(DataKind::VectorDb {
            dim: DIM,
            metric: Metric::Dot,
        })
        .channel_kind(BAG, DataKind::Bag)
}

/// Every price distinct and large enough that a difference in any count shows.
fn table() -> CostTable {
    CostTable {
        vector_search_base: 1_000_000,
        vector_element: 1_000,
        match_candidate: 7,
        comm_per_position: 13,
        ..CostTable::default()
    }
}

#[derive(Clone, Debug)]
enum Op {
    Produce(u32, u32, [f32; DIM], bool),
    Consume(Vec<u32>, Vec<SimilarityPattern>, u32, bool, Vec<usize>),
}

fn block() -> Vec<Op> {
    use Op::*;
    let v = |x: f32| [x, 1.0, 0.0];
    vec![
        Produce(0, 100, v(50.0), false),
        // A best consume over the channel (live data only are ranked).
        Consume(vec![0], vec![b(&[1.0, 0.0, 0.0], 10.0)], 1, false, vec![]),
        // A top-k consume: k data, one ranking.
        Consume(
            vec![0],
            vec![top_k(&[1.0, 0.0, 0.0], 0.0, 3)],
            2,
            false,
            vec![],
        ),
        // A peeking top-k.
        Consume(
            vec![0],
            vec![top_k(&[0.0, 1.0, 0.0], 0.0, 2)],
            3,
            false,
            vec![0],
        ),
        // A join of two similarity positions, one of them top-k.
        Produce(1, 101, v(2.0), false),
        Produce(1, 102, v(3.0), true),
        Consume(
            vec![0, 1],
            vec![top_k(&[1.0, 0.0, 0.0], 0.0, 2), b(&[1.0, 0.0, 0.0], 2.5)],
            4,
            false,
            vec![],
        ),
        // A join that waits, then a produce that fires it.
        Consume(
            vec![0, 1],
            vec![b(&[1.0, 0.0, 0.0], 500.0), b(&[1.0, 0.0, 0.0], 1.0)],
            5,
            false,
            vec![],
        ),
        Produce(2, 103, v(1.0), false),
        Produce(0, 104, v(600.0), false),
        // A waiting best, then produces that do and do not fire it.
        Consume(vec![0], vec![b(&[0.0, 0.0, 1.0], 5.0)], 6, false, vec![]),
        Produce(0, 105, [0.0, 0.0, 1.0], false),
        Produce(0, 106, [0.0, 0.0, 9.0], false),
        // Similarity on a Bag channel: matcher calls, no ranking.
        Produce(BAG, 107, v(1.0), false),
        Produce(BAG, 108, v(8.0), false),
        Consume(vec![BAG], vec![b(&[1.0, 0.0, 0.0], 5.0)], 7, false, vec![]),
        Consume(
            vec![BAG, 0],
            vec![top_k(&[1.0, 0.0, 0.0], 0.0, 1), b(&[1.0, 0.0, 0.0], 0.0)],
            8,
            false,
            vec![],
        ),
        // A persistent top-k join that waits on a channel with nothing, then is fed.
        Consume(
            vec![3, 0],
            vec![top_k(&[1.0, 0.0, 0.0], 0.0, 2), b(&[1.0, 0.0, 0.0], 0.0)],
            9,
            true,
            vec![],
        ),
        Produce(3, 109, v(4.0), false),
        Produce(3, 110, v(5.0), false),
        Produce(3, 111, v(6.0), false),
    ]
}

/// Play's state before the block: many data on channel 0, most of them consumed, so the
/// channel's index holds dead rows.
fn before(s: &CSpace) {
    for i in 0..120u32 {
        s.produce(0, d(i, &[i as f32, 1.0, 0.0]), i % 17 == 0)
            .unwrap();
    }
    for k in 0..8u32 {
        let fired = s
            .consume(
                [0],
                [top_k(&[1.0, 0.0, 0.0], 0.0, 10)],
                1000 + k,
                false,
                &[],
            )
            .unwrap();
        assert!(fired.is_some());
    }
    // A waiting similarity consume in the state.
    s.consume([2], [b(&[1.0, 0.0, 0.0], 0.5)], 2000, false, &[])
        .unwrap();
}

fn charged(s: VSpace) -> CSpace {
    ChargingSpace::new(s, Arc::new(PhlogistonMeter::new(u64::MAX / 4)), table())
}

/// The values a COMM took, in its order.
fn taken<R>(c: rhospace_spaces::Comm<u32, SimilarityPattern, Datum, u32, R>) -> Vec<u32> {
    c.matches.iter().map(|m| m.datum.value).collect()
}

/// Runs `ops` on `s`: per call, what it did and what it cost.
fn run(s: &CSpace, ops: &[Op]) -> Vec<(String, i128)> {
    ops.iter()
        .map(|op| {
            let at = s.meter().consumed() as i128;
            let out = match op.clone() {
                Op::Produce(c, id, v, persist) => format!(
                    "{:?}",
                    s.produce(c, d(id, &v), persist)
                        .map(|o| o.map(taken))
                        .map_err(|e| e.kind().clone())
                ),
                Op::Consume(cs, ps, k, persist, peeks) => format!(
                    "{:?}",
                    s.consume(cs, ps, k, persist, &peeks)
                        .map(|o| o.map(taken))
                        .map_err(|e| e.kind().clone())
                ),
            };
            (out, s.meter().consumed() as i128 - at)
        })
        .collect()
}

/// Runs `ops` on `s` through the admission gates: per call, the vector work and counts seen.
fn admissions(s: &VSpace, ops: &[Op]) -> Vec<(u64, VectorWork, Option<usize>, bool)> {
    let mut seen = Vec::new();
    for op in ops.iter().cloned() {
        let mut got = None;
        let mut gate = |a: &Admission<'_, u32, SimilarityPattern, Datum, u32>| {
            got = Some((a.examined, a.vector, a.fires, a.stores));
            Ok(())
        };
        match op {
            Op::Produce(c, id, v, persist) => {
                s.produce_admitted(c, d(id, &v), persist, 0, &mut gate)
                    .unwrap();
            }
            Op::Consume(cs, ps, k, persist, peeks) => {
                s.consume_admitted(cs, ps, k, persist, &peeks, &mut gate)
                    .unwrap();
            }
        }
        seen.push(got.expect("the gate ran"));
    }
    seen
}

/// Plays the block in a charged space, then replays it three ways, checking that `observe`
/// sees in each what it saw in play, and that each replay ends at play's root: in a fresh space
/// rigged with the start root decoded from the history store (no dead index rows); in the play
/// space itself, rigged (reset from memory, its index's dead rows still there); and after a
/// plain reset. Returns what play showed.
fn replays_agree<T: PartialEq + std::fmt::Debug>(observe: impl Fn(&CSpace, &[Op]) -> T) -> T {
    let history = Arc::new(MemoryHistory::new());
    let play = charged(VSpace::new(SimilarityMatch, config()).with_history(history.clone()));
    before(&play);
    let start = play.space().create_checkpoint().unwrap().root;
    let ops = block();
    let played = observe(&play, &ops);
    let blk = play.space().create_checkpoint().unwrap();

    let fresh = charged(VSpace::new(SimilarityMatch, config()).with_history(history));
    fresh.space().rig(&start, &blk.log).unwrap();
    assert_eq!(observe(&fresh, &ops), played, "fresh replay");
    assert_eq!(fresh.space().create_checkpoint().unwrap().root, blk.root);

    play.space().rig(&start, &blk.log).unwrap();
    assert_eq!(observe(&play, &ops), played, "replay in the play space");
    assert_eq!(play.space().create_checkpoint().unwrap().root, blk.root);

    play.space().reset(&start).unwrap();
    assert_eq!(observe(&play, &ops), played, "after reset");
    played
}

#[test]
fn a_replay_charges_what_play_charged_for_similarity_search() {
    let played = replays_agree(run);
    assert!(
        played.iter().any(|(o, _)| o.contains("Some(")),
        "the block fires COMMs: {played:?}"
    );
}

#[test]
fn a_replay_admits_what_play_admitted_for_similarity_search() {
    let played = replays_agree(|s, ops| admissions(s.space(), ops));
    assert!(played.iter().any(|a| a.1.searches > 1), "{played:?}");
    assert!(
        played.iter().any(|a| a.2.is_some_and(|n| n > 2)),
        "{played:?}"
    );
}

mod random {
    use super::*;
    use proptest::prelude::*;

    fn pattern() -> impl Strategy<Value = SimilarityPattern> {
        (
            prop::array::uniform3(-2i8..4),
            -3i8..6,
            prop::option::of(1usize..4),
        )
            .prop_map(|(q, t, k)| {
                let q = q.map(f32::from);
                let q = if q.iter().all(|x| *x == 0.0) {
                    [1.0, 0.0, 0.0]
                } else {
                    q
                };
                match k {
                    None => b(&q, f32::from(t)),
                    Some(k) => top_k(&q, f32::from(t), k),
                }
            })
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u32..4, 0u32..1000, prop::array::uniform3(-2i8..4), any::<bool>())
                .prop_map(|(c, id, v, p)| {
                    let c = if c == 3 { BAG } else { c };
                    Op::Produce(c, id, v.map(f32::from), p && id % 4 == 0)
                }),
            2 => (
                prop::collection::vec((0u32..4, pattern()), 1..3),
                0u32..50,
                any::<bool>(),
                any::<bool>(),
            )
                .prop_map(|(ps, k, persist, peek)| {
                    let (cs, ps): (Vec<u32>, Vec<SimilarityPattern>) = ps
                        .into_iter()
                        .map(|(c, p)| (if c == 3 { BAG } else { c }, p))
                        .unzip();
                    Op::Consume(cs, ps, k, persist && k % 5 == 0, if peek { vec![0] } else { vec![] })
                }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn replays_and_resets_charge_what_play_charged(
            pre in prop::collection::vec(op(), 0..60),
            ops in prop::collection::vec(op(), 1..40),
        ) {
            let history = Arc::new(MemoryHistory::new());
            let play = charged(VSpace::new(SimilarityMatch, config()).with_history(history.clone()));
            run(&play, &pre);
            let start = play.space().create_checkpoint().unwrap().root;
            let played = run(&play, &ops);
            let blk = play.space().create_checkpoint().unwrap();
            let fresh = charged(VSpace::new(SimilarityMatch, config()).with_history(history.clone()));
            fresh.space().rig(&start, &blk.log).unwrap();
            prop_assert_eq!(run(&fresh, &ops), played.clone(), "fresh replay");
            prop_assert_eq!(fresh.space().create_checkpoint().unwrap().root, blk.root);
            play.space().rig(&start, &blk.log).unwrap();
            prop_assert_eq!(run(&play, &ops), played.clone(), "replay in the play space");
            play.space().reset(&start).unwrap();
            prop_assert_eq!(run(&play, &ops), played, "after reset");
        }
    }
}

/// A similarity matcher that counts its `get` calls (each scores one datum).
#[derive(Default)]
struct Counting(std::sync::atomic::AtomicU64);

impl Match<SimilarityPattern, Datum> for Counting {
    type Output = f32;
    fn get(&self, p: &SimilarityPattern, a: &Datum) -> Option<f32> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        SimilarityMatch.get(p, a)
    }
    fn similarity<'p>(&self, p: &'p SimilarityPattern) -> Option<&'p SimilarityPattern> {
        Some(p)
    }
    fn embedding<'a>(&self, a: &'a Datum) -> Option<&'a [f32]> {
        Match::<SimilarityPattern, Datum>::embedding(&SimilarityMatch, a)
    }
}

/// SPEC §8: every similarity match the search makes is priced by its dimension. A produce
/// that meets waiting joins scores the datum against each one's pattern on its channel (the
/// pre-check); when the join's other channel then offers nothing, that scoring must still
/// be charged.
#[test]
fn a_produce_pays_for_the_similarity_matches_of_its_pre_check() {
    const D: usize = 64;
    let s = Space::<u32, SimilarityPattern, Datum, u32, Counting>::new(
        Counting::default(),
        SpaceConfig::new().data_kind(DataKind::VectorDb {
            dim: D,
            metric: Metric::Dot,
        }),
    );
    let mut q = vec![0.0f32; D];
    q[0] = 1.0;
    for k in 0..100u32 {
        // Joins [1, 0] whose pattern on 0 accepts the datum, waiting for data on 1.
        let p = SimilarityPattern::best(q.clone(), Metric::Dot, 0.5).unwrap();
        s.consume([1, 0], [p.clone(), p], k, false, &[]).unwrap();
    }
    let calls = |s: &Space<u32, SimilarityPattern, Datum, u32, Counting>| {
        s.matcher().0.load(std::sync::atomic::Ordering::Relaxed)
    };
    let before = calls(&s);
    let mut seen = None;
    let fired = s
        .produce_admitted(0, d(1, &q), false, 0, |a| {
            seen = Some((a.examined, a.vector));
            Ok(())
        })
        .unwrap();
    assert!(fired.is_none());
    let made = calls(&s) - before;
    assert_eq!(made, 100, "the pre-check scored the datum once per join");
    let (examined, vector) = seen.unwrap();
    assert!(
        vector.elements >= made * D as u64,
        "{made} similarity matches of dimension {D} made, {vector:?} charged (examined {examined})"
    );
    // And the calls themselves are matching work (they were counted in neither before).
    assert!(
        examined >= made,
        "{made} matcher calls made, {examined} examined"
    );
}
