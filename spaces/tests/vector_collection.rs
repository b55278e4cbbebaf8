//! The VectorDB data collection through the public `Space` API (SPEC §3, §4 VectorDB row):
//! best-first similarity consumes, ties by insertion order, thresholds, joins, fallbacks for
//! other patterns and metrics, soft checkpoints, and a model test against a brute-force
//! ranking.

mod common;

use std::sync::Arc;

use proptest::prelude::*;
use rhospace_matchers::similarity::{EmbeddedDatum, Metric, SimilarityMatch, SimilarityPattern};
use rhospace_matchers::Match;
use rhospace_spaces::{DataKind, Encode, Space, SpaceConfig};
use rhospace_vectordb::VectorStore;

use common::{best, d, space, Datum};

type VSpace = Space<&'static str, SimilarityPattern, Datum, &'static str, SimilarityMatch>;

fn ids(space: &VSpace, ch: &'static str) -> Vec<u32> {
    space.data(&ch).iter().map(|s| s.value.value).collect()
}

#[test]
fn best_one_takes_the_highest_score_above_the_threshold() {
    let s: VSpace = space(3, Metric::Cosine);
    s.produce("docs", d(1, &[1.0, 0.0, 0.0]), false).unwrap();
    s.produce("docs", d(2, &[0.6, 0.8, 0.0]), false).unwrap();
    s.produce("docs", d(3, &[0.9, 0.1, 0.0]), false).unwrap();
    s.produce("docs", d(4, &[0.0, 0.0, 1.0]), false).unwrap();
    let q = [0.8, 0.6, 0.0];
    let comm = s
        .consume(["docs"], [best(&q, Metric::Cosine, 0.5)], "k", false, &[])
        .unwrap()
        .expect("data above the threshold are stored");
    assert_eq!(comm.matches.len(), 1);
    assert_eq!(comm.matches[0].datum.value, 2, "exact direction wins");
    // The reported score is the vectordb store's, bit for bit.
    let mut store = VectorStore::new(3, Metric::Cosine).unwrap();
    let id = store.insert(&[0.6, 0.8, 0.0]).unwrap();
    assert_eq!(
        comm.matches[0].result,
        store.score(&q, id).unwrap().unwrap()
    );
    assert_eq!(ids(&s, "docs"), vec![1, 3, 4]);
    // Next best for the same query: 3 (cosine ≈ 0.861) before 1 (0.8).
    let comm = s
        .consume(["docs"], [best(&q, Metric::Cosine, 0.5)], "k", false, &[])
        .unwrap()
        .unwrap();
    assert_eq!(comm.matches[0].datum.value, 3);
    let comm = s
        .consume(["docs"], [best(&q, Metric::Cosine, 0.5)], "k", false, &[])
        .unwrap()
        .unwrap();
    assert_eq!(comm.matches[0].datum.value, 1);
    // 4 scores 0: below the threshold, so the consume waits.
    assert!(s
        .consume(["docs"], [best(&q, Metric::Cosine, 0.5)], "k", false, &[])
        .unwrap()
        .is_none());
    assert_eq!(ids(&s, "docs"), vec![4]);
    assert_eq!(s.continuations(&["docs"]).len(), 1);
}

#[test]
fn equal_scores_are_taken_oldest_first() {
    let s: VSpace = space(2, Metric::Dot);
    for id in 0..5 {
        s.produce("c", d(id, &[1.0, (id % 2) as f32]), false)
            .unwrap();
    }
    // Query [1, 0]: every datum scores 1.0; oldest first.
    for want in 0..5 {
        let comm = s
            .consume(
                ["c"],
                [best(&[1.0, 0.0], Metric::Dot, 0.0)],
                "k",
                false,
                &[],
            )
            .unwrap()
            .unwrap();
        assert_eq!(comm.matches[0].datum.value, want);
        assert_eq!(comm.matches[0].result, 1.0);
    }
    assert!(s.is_empty());
}

#[test]
fn threshold_is_inclusive_and_a_waiting_consume_fires_on_a_good_enough_produce() {
    let s: VSpace = space(2, Metric::L2Squared);
    // score = -‖q − v‖²; threshold -1 accepts distance² <= 1.
    let p = best(&[0.0, 0.0], Metric::L2Squared, -1.0);
    assert!(s
        .consume(["c"], [p.clone()], "near", false, &[])
        .unwrap()
        .is_none());
    // distance² = 1.0 + 0.25: stored, the continuation keeps waiting.
    assert!(s.produce("c", d(1, &[1.0, 0.5]), false).unwrap().is_none());
    assert_eq!(ids(&s, "c"), vec![1]);
    // distance² = 1.0 exactly: on the boundary, accepted.
    let comm = s.produce("c", d(2, &[0.0, 1.0]), false).unwrap().unwrap();
    assert_eq!(comm.continuation, "near");
    assert_eq!(comm.matches[0].datum.value, 2);
    assert_eq!(comm.matches[0].result, -1.0);
    assert_eq!(ids(&s, "c"), vec![1]);
    assert!(s.continuations(&["c"]).is_empty());
}

#[test]
fn a_join_gives_each_position_a_distinct_datum_best_first() {
    let s: VSpace = space(2, Metric::Dot);
    s.produce("c", d(1, &[1.0, 0.0]), false).unwrap();
    s.produce("c", d(2, &[3.0, 0.0]), false).unwrap();
    s.produce("c", d(3, &[2.0, 0.0]), false).unwrap();
    let p = best(&[1.0, 0.0], Metric::Dot, 1.5);
    let comm = s
        .consume(["c", "c"], [p.clone(), p], "pair", false, &[])
        .unwrap()
        .unwrap();
    let got: Vec<u32> = comm.matches.iter().map(|m| m.datum.value).collect();
    assert_eq!(got, vec![2, 3]);
    assert_eq!(ids(&s, "c"), vec![1]);
}

#[test]
fn the_join_search_backtracks_past_the_best_candidate() {
    // Position 0 (peek) and position 1 both want the best datum; a non-persistent datum
    // consumed at 1 cannot also be peeked at 0, so the search must try the second best at 0.
    let s: VSpace = space(1, Metric::Dot);
    s.produce("c", d(1, &[5.0]), false).unwrap();
    s.produce("c", d(2, &[4.0]), false).unwrap();
    let any = best(&[1.0], Metric::Dot, 0.0);
    let high = best(&[1.0], Metric::Dot, 4.5);
    let comm = s
        .consume(["c", "c"], [any, high], "k", false, &[0])
        .unwrap()
        .unwrap();
    let got: Vec<u32> = comm.matches.iter().map(|m| m.datum.value).collect();
    assert_eq!(got, vec![2, 1]);
    // 1 was consumed at position 1; 2 was only peeked.
    assert_eq!(ids(&s, "c"), vec![2]);
}

#[test]
fn persistent_data_stay_and_can_fill_several_positions() {
    let s: VSpace = space(1, Metric::Dot);
    s.produce("c", d(1, &[9.0]), true).unwrap();
    s.produce("c", d(2, &[1.0]), false).unwrap();
    let p = best(&[1.0], Metric::Dot, 0.0);
    let comm = s
        .consume(["c", "c"], [p.clone(), p], "k", false, &[])
        .unwrap()
        .unwrap();
    let got: Vec<u32> = comm.matches.iter().map(|m| m.datum.value).collect();
    assert_eq!(got, vec![1, 1]);
    assert_eq!(ids(&s, "c"), vec![1, 2]);
}

#[test]
fn a_query_of_another_metric_is_ranked_by_its_own_metric() {
    // Channel indexed for cosine; a dot query is scored through the datum's embedding.
    let s: VSpace = space(2, Metric::Cosine);
    s.produce("c", d(1, &[1.0, 0.0]), false).unwrap();
    s.produce("c", d(2, &[5.0, 5.0]), false).unwrap();
    // Cosine prefers 1 (exact direction); dot prefers 2 (5 > 1).
    let comm = s
        .consume(
            ["c"],
            [best(&[1.0, 0.0], Metric::Dot, 0.0)],
            "k",
            false,
            &[0],
        )
        .unwrap()
        .unwrap();
    assert_eq!(comm.matches[0].datum.value, 2);
    assert_eq!(comm.matches[0].result, 5.0);
    let comm = s
        .consume(
            ["c"],
            [best(&[1.0, 0.0], Metric::Cosine, 0.0)],
            "k",
            false,
            &[0],
        )
        .unwrap()
        .unwrap();
    assert_eq!(comm.matches[0].datum.value, 1);
}

/// A matcher with two kinds of pattern: similarity, and an exact tag on the payload.
struct Mixed;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum MixedPattern {
    Sim(SimilarityPattern),
    Tag(u32),
}

/// A tag byte, then the pattern's own encoding (the event log hashes every pattern).
impl Encode for MixedPattern {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            MixedPattern::Sim(p) => {
                out.push(0);
                p.encode(out);
            }
            MixedPattern::Tag(t) => {
                out.push(1);
                t.encode(out);
            }
        }
    }
    fn encoded_len(&self) -> usize {
        1 + match self {
            MixedPattern::Sim(p) => p.encoded_len(),
            MixedPattern::Tag(t) => t.encoded_len(),
        }
    }
}

impl Match<MixedPattern, Datum> for Mixed {
    type Output = Option<f32>;
    fn get(&self, pattern: &MixedPattern, datum: &Datum) -> Option<Option<f32>> {
        match pattern {
            MixedPattern::Sim(p) => SimilarityMatch.get(p, datum).map(Some),
            MixedPattern::Tag(t) => (datum.value == *t).then_some(None),
        }
    }
    fn similarity<'p>(&self, pattern: &'p MixedPattern) -> Option<&'p SimilarityPattern> {
        match pattern {
            MixedPattern::Sim(p) => Some(p),
            MixedPattern::Tag(_) => None,
        }
    }
    fn embedding<'a>(&self, datum: &'a Datum) -> Option<&'a [f32]> {
        Some(&datum.embedding)
    }
}

#[test]
fn other_patterns_fall_back_to_the_matcher_in_insertion_order() {
    let s: Space<u8, MixedPattern, Datum, u8, Mixed> = Space::new(
        Mixed,
        SpaceConfig::new().channel_kind(
            0,
            DataKind::VectorDb {
                dim: 1,
                metric: Metric::Dot,
            },
        ),
    );
    s.produce(0, d(7, &[1.0]), false).unwrap();
    s.produce(0, d(7, &[9.0]), false).unwrap();
    s.produce(0, d(8, &[5.0]), false).unwrap();
    // Tag 7 matches two data: the oldest is taken, whatever its score.
    let comm = s
        .consume([0], [MixedPattern::Tag(7)], 1, false, &[])
        .unwrap()
        .unwrap();
    assert_eq!(&comm.matches[0].datum.embedding[..], &[1.0]);
    assert_eq!(comm.matches[0].result, None);
    // A similarity pattern on the same channel ranks by score.
    let p = MixedPattern::Sim(best(&[1.0], Metric::Dot, 0.0));
    let comm = s.consume([0], [p], 2, false, &[]).unwrap().unwrap();
    assert_eq!(comm.matches[0].datum.value, 7);
    assert_eq!(comm.matches[0].result, Some(9.0));
    // A join mixing both kinds of pattern on one channel.
    s.produce(0, d(9, &[2.0]), false).unwrap();
    let p = MixedPattern::Sim(best(&[1.0], Metric::Dot, 0.0));
    let comm = s
        .consume([0, 0], [MixedPattern::Tag(8), p], 3, false, &[])
        .unwrap()
        .unwrap();
    let got: Vec<u32> = comm.matches.iter().map(|m| m.datum.value).collect();
    assert_eq!(got, vec![8, 9]);
    assert!(s.is_empty());
}

#[test]
fn soft_checkpoints_restore_the_collection_and_stay_unchanged() {
    let s: VSpace = space(4, Metric::Cosine);
    // Enough data to seal index blocks (256 rows each) and leave a tail.
    for i in 0..700u32 {
        let a = (i as f32 * 0.37).sin();
        let b = (i as f32 * 0.11).cos();
        s.produce("c", d(i, &[a, b, 1.0, 0.5]), false).unwrap();
    }
    let q = best(&[0.3, -0.2, 1.0, 0.5], Metric::Cosine, 0.0);
    let cp = s.create_soft_checkpoint();
    let mut taken = Vec::new();
    for _ in 0..300 {
        let c = s
            .consume(["c"], [q.clone()], "k", false, &[])
            .unwrap()
            .unwrap();
        taken.push(c.matches[0].datum.value);
    }
    for i in 700..750u32 {
        s.produce("c", d(i, &[0.3, -0.2, 1.0, 0.5]), false).unwrap();
    }
    s.revert_to_soft_checkpoint(&cp).unwrap();
    assert_eq!(s.data(&"c").len(), 700);
    // The same consumes give the same data again, twice.
    for _ in 0..2 {
        let mut again = Vec::new();
        for _ in 0..300 {
            let c = s
                .consume(["c"], [q.clone()], "k", false, &[])
                .unwrap()
                .unwrap();
            again.push(c.matches[0].datum.value);
        }
        assert_eq!(again, taken);
        s.revert_to_soft_checkpoint(&cp).unwrap();
    }
    // The order is the vectordb store's top-k order (store ids are insertion numbers).
    let store_ids: Vec<u32> = {
        let mut st = VectorStore::new(4, Metric::Cosine).unwrap();
        for i in 0..700u32 {
            let a = (i as f32 * 0.37).sin();
            let b = (i as f32 * 0.11).cos();
            st.insert(&[a, b, 1.0, 0.5]).unwrap();
        }
        st.top_k(&[0.3, -0.2, 1.0, 0.5], 300)
            .unwrap()
            .iter()
            .map(|h| h.id.0 as u32)
            .collect()
    };
    assert_eq!(taken, store_ids, "same order as the vectordb top-k");
}

#[test]
fn identical_call_sequences_give_identical_results() {
    let run = || {
        let s: VSpace = space(3, Metric::Dot);
        let mut out = Vec::new();
        for i in 0..200u32 {
            let v = [(i % 5) as f32, (i % 3) as f32, 1.0];
            s.produce("c", d(i, &v), i % 4 == 0).unwrap();
            if i % 3 == 0 {
                let q = best(&[1.0, 1.0, 0.0], Metric::Dot, 2.0);
                if let Some(c) = s.consume(["c"], [q], "k", false, &[]).unwrap() {
                    out.push((c.matches[0].datum.value, c.matches[0].result.to_bits()));
                }
            }
        }
        (out, ids(&s, "c"))
    };
    assert_eq!(run(), run());
}

/// Reference: the best stored datum for a query is the max score ≥ threshold, oldest first on
/// ties; scores from `SimilarityPattern::score`, which the test `matcher_scores_equal_*` ties
/// to the vectordb store.
fn model_best(store: &[(u32, Vec<f32>)], p: &SimilarityPattern) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, (_, v)) in store.iter().enumerate() {
        if let Some(sc) = p.score(v) {
            if p.accepts(sc) && best.is_none_or(|(_, b)| sc > b) {
                best = Some((i, sc));
            }
        }
    }
    best.map(|(i, _)| i)
}

#[derive(Clone, Debug)]
enum Op {
    Produce(Vec<i8>),
    Consume(Vec<i8>, i8),
}

fn op() -> impl Strategy<Value = Op> {
    let v = || proptest::collection::vec(-3i8..=3, 3);
    prop_oneof![
        3 => v().prop_map(Op::Produce),
        2 => (v(), -6i8..=6).prop_map(|(q, t)| Op::Consume(q, t)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Random produces and best-one consumes on one Dot VectorDB channel agree with the
    /// brute-force model: same data taken, same data left, in order. Small integer vectors make
    /// ties frequent.
    #[test]
    fn best_one_consumes_match_a_brute_force_model(ops in proptest::collection::vec(op(), 1..60)) {
        let s: VSpace = space(3, Metric::Dot);
        let mut model: Vec<(u32, Vec<f32>)> = Vec::new();
        let mut waiting: Vec<SimilarityPattern> = Vec::new();
        for (n, o) in ops.iter().enumerate() {
            match o {
                Op::Produce(v) => {
                    let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
                    let got = s.produce("c", d(n as u32, &v), false).unwrap();
                    // Model: the oldest waiting continuation that accepts it fires.
                    let fired = waiting.iter().position(|p| p.score(&v).is_some_and(|x| p.accepts(x)));
                    match fired {
                        Some(w) => {
                            waiting.remove(w);
                            let c = got.expect("model fires");
                            prop_assert_eq!(c.matches[0].datum.value, n as u32);
                        }
                        None => {
                            prop_assert!(got.is_none());
                            model.push((n as u32, v));
                        }
                    }
                }
                Op::Consume(q, t) => {
                    let q: Vec<f32> = q.iter().map(|&x| x as f32).collect();
                    let p = SimilarityPattern::best(q, Metric::Dot, *t as f32).unwrap();
                    let got = s.consume(["c"], [p.clone()], "k", false, &[]).unwrap();
                    match model_best(&model, &p) {
                        Some(i) => {
                            let (id, _) = model.remove(i);
                            prop_assert_eq!(got.expect("model fires").matches[0].datum.value, id);
                        }
                        None => {
                            prop_assert!(got.is_none());
                            waiting.push(p);
                        }
                    }
                }
            }
            prop_assert_eq!(ids(&s, "c"), model.iter().map(|(id, _)| *id).collect::<Vec<_>>());
        }
    }
}

#[test]
fn embeddings_are_shared_not_copied_by_clone() {
    // EmbeddedDatum clones share the Arc: a datum round-trips through the space unchanged.
    let s: VSpace = space(2, Metric::Dot);
    let e: Arc<[f32]> = Arc::from(vec![1.0f32, 2.0]);
    s.produce("c", EmbeddedDatum::new(5, e.clone()), false)
        .unwrap();
    let got = s.data(&"c");
    assert_eq!(got[0].value.embedding.as_arc().as_ref(), e.as_ref());
}
