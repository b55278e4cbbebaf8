//! VectorDB behaviour that needs the space to validate embeddings and report top-k COMMs
//! (SPEC §4 VectorDB row, §5): typed errors that change nothing, the `k` best as one COMM with
//! consecutive `position` entries, and checkpoints around both.

mod common;

use proptest::prelude::*;
use rhospace_matchers::similarity::{Metric, SimilarityMatch, SimilarityPattern};
use rhospace_matchers::Match;
use rhospace_spaces::{DataKind, ErrorKind, Space, SpaceConfig};
use rhospace_vectordb::VectorError;

use common::{d, space, Datum};

type VSpace = Space<&'static str, SimilarityPattern, Datum, &'static str, SimilarityMatch>;

fn ids(space: &VSpace, ch: &'static str) -> Vec<u32> {
    space.data(&ch).iter().map(|s| s.value.value).collect()
}

fn top_k(q: &[f32], metric: Metric, threshold: f32, k: usize) -> SimilarityPattern {
    SimilarityPattern::top_k(q, metric, threshold, k).unwrap()
}

/// Everything observable about a one-channel space.
fn snapshot(s: &VSpace) -> (Vec<u32>, usize, usize) {
    (
        ids(s, "c"),
        s.continuations(&["c"]).len(),
        s.channel_count(),
    )
}

#[test]
fn invalid_embeddings_are_refused_with_typed_errors_and_change_nothing() {
    let s: VSpace = space(3, Metric::Cosine);
    s.produce("c", d(1, &[1.0, 0.0, 0.0]), false).unwrap();
    let p = SimilarityPattern::best([0.0, 1.0, 0.0], Metric::Cosine, 0.9).unwrap();
    s.consume(["c"], [p], "wait", false, &[]).unwrap();
    let before = snapshot(&s);
    let cases: [(&[f32], VectorError); 5] = [
        (
            &[1.0, 0.0],
            VectorError::WrongDimension {
                expected: 3,
                found: 2,
            },
        ),
        (
            &[1.0, 0.0, 0.0, 0.0],
            VectorError::WrongDimension {
                expected: 3,
                found: 4,
            },
        ),
        (&[0.0, f32::NAN, 1.0], VectorError::NonFinite { index: 1 }),
        (
            &[0.0, 1.0, f32::INFINITY],
            VectorError::NonFinite { index: 2 },
        ),
        (&[0.0, 0.0, 0.0], VectorError::ZeroVector),
    ];
    for (v, want) in cases {
        for persist in [false, true] {
            let err = s.produce("c", d(9, v), persist).unwrap_err();
            assert_eq!(err.kind(), &ErrorKind::Embedding(want));
            assert_eq!(err.into_inner().value, 9, "the datum is handed back");
            assert_eq!(snapshot(&s), before);
        }
    }
    // Also on a channel with no entry yet: nothing is created.
    let err = s.produce("fresh", d(9, &[f32::NAN; 3]), false).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Embedding(_)));
    assert_eq!(s.channel_count(), before.2);
    // A valid one for the waiting continuation still fires it afterwards.
    let comm = s
        .produce("c", d(2, &[0.0, 1.0, 0.0]), false)
        .unwrap()
        .unwrap();
    assert_eq!(comm.continuation, "wait");
}

#[test]
fn zero_embeddings_are_fine_for_dot_and_l2() {
    for metric in [Metric::Dot, Metric::L2Squared] {
        let s: VSpace = space(2, metric);
        assert!(s.produce("c", d(1, &[0.0, 0.0]), false).unwrap().is_none());
        assert_eq!(ids(&s, "c"), vec![1]);
    }
}

/// A matcher that knows no embedding for odd payloads.
struct Partial;
impl Match<SimilarityPattern, Datum> for Partial {
    type Output = f32;
    fn get(&self, p: &SimilarityPattern, a: &Datum) -> Option<f32> {
        if a.value % 2 == 1 {
            None
        } else {
            SimilarityMatch.get(p, a)
        }
    }
    fn similarity<'p>(&self, p: &'p SimilarityPattern) -> Option<&'p SimilarityPattern> {
        Some(p)
    }
    fn embedding<'a>(&self, a: &'a Datum) -> Option<&'a [f32]> {
        a.value.is_multiple_of(2).then_some(&a.embedding[..])
    }
}

#[test]
fn a_datum_without_an_embedding_is_refused_on_a_vector_channel_only() {
    let s: Space<u8, SimilarityPattern, Datum, u8, Partial> = Space::new(
        Partial,
        SpaceConfig::new().channel_kind(
            0,
            DataKind::VectorDb {
                dim: 1,
                metric: Metric::Dot,
            },
        ),
    );
    let err = s.produce(0, d(3, &[1.0]), false).unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::MissingEmbedding);
    assert!(s.is_empty());
    // A Bag channel takes it.
    assert!(s.produce(1, d(3, &[1.0]), false).unwrap().is_none());
    assert_eq!(s.data(&1).len(), 1);
}

#[test]
fn a_query_of_the_wrong_dimension_is_refused() {
    let s: VSpace = space(3, Metric::Dot);
    s.produce("c", d(1, &[1.0, 0.0, 0.0]), false).unwrap();
    let p = SimilarityPattern::best([1.0, 0.0], Metric::Dot, 0.0).unwrap();
    let ok = SimilarityPattern::best([1.0, 0.0, 0.0], Metric::Dot, 0.0).unwrap();
    let err = s
        .consume(["c", "c"], [ok.clone(), p.clone()], "k", false, &[])
        .unwrap_err();
    assert_eq!(
        err.kind(),
        &ErrorKind::Query {
            position: 1,
            error: VectorError::WrongDimension {
                expected: 3,
                found: 2
            }
        }
    );
    assert_eq!(err.into_inner(), "k");
    assert_eq!(ids(&s, "c"), vec![1]);
    assert!(s.continuations(&["c", "c"]).is_empty());
    assert!(s.install(["c"], [p], "i").is_err());
    assert!(s.continuations(&["c"]).is_empty());
}

#[test]
fn top_k_takes_the_k_best_as_one_comm_best_first() {
    let s: VSpace = space(2, Metric::Dot);
    for (id, x) in [(1, 1.0), (2, 5.0), (3, 3.0), (4, 5.0), (5, 0.5), (6, 4.0)] {
        s.produce("c", d(id, &[x, 0.0]), false).unwrap();
    }
    let comm = s
        .consume(
            ["c"],
            [top_k(&[1.0, 0.0], Metric::Dot, 1.0, 3)],
            "k",
            false,
            &[],
        )
        .unwrap()
        .unwrap();
    let got: Vec<(u32, u32, f32)> = comm
        .matches
        .iter()
        .map(|m| (m.position, m.datum.value, m.result))
        .collect();
    // 2 and 4 tie at 5.0: the older (2) first.
    assert_eq!(got, vec![(0, 2, 5.0), (0, 4, 5.0), (0, 6, 4.0)]);
    assert_eq!(comm.matches_at(0).count(), 3);
    assert_eq!(ids(&s, "c"), vec![1, 3, 5]);
    // Only 2 data (3, 1) reach the threshold now: a top-3 waits.
    assert!(s
        .consume(
            ["c"],
            [top_k(&[1.0, 0.0], Metric::Dot, 1.0, 3)],
            "w",
            false,
            &[]
        )
        .unwrap()
        .is_none());
    assert_eq!(ids(&s, "c"), vec![1, 3, 5]);
    // Below the threshold: stored, still waiting.
    assert!(s.produce("c", d(7, &[0.9, 0.0]), false).unwrap().is_none());
    // The third datum above the threshold completes it; it is taken with the stored two.
    let comm = s.produce("c", d(8, &[2.0, 0.0]), false).unwrap().unwrap();
    let got: Vec<u32> = comm.matches.iter().map(|m| m.datum.value).collect();
    assert_eq!(got, vec![3, 8, 1]);
    assert!(comm.matches.iter().all(|m| m.position == 0));
    assert!(!comm.reissue);
    assert_eq!(ids(&s, "c"), vec![5, 7]);
}

#[test]
fn top_k_positions_in_a_join_report_consecutive_entries() {
    let s: VSpace = space(1, Metric::Dot);
    for i in 1..=6u32 {
        s.produce("c", d(i, &[i as f32]), false).unwrap();
    }
    s.produce("tag", d(100, &[1.0]), false).unwrap();
    let one = SimilarityPattern::best([1.0], Metric::Dot, 0.0).unwrap();
    let comm = s
        .consume(
            ["tag", "c", "c"],
            [
                one.clone(),
                top_k(&[1.0], Metric::Dot, 0.0, 2),
                top_k(&[-1.0], Metric::Dot, f32::NEG_INFINITY, 2),
            ],
            "k",
            false,
            &[],
        )
        .unwrap()
        .unwrap();
    let got: Vec<(u32, u32)> = comm
        .matches
        .iter()
        .map(|m| (m.position, m.datum.value))
        .collect();
    // Position 1 takes the two largest; position 2 (negated query) the two smallest.
    assert_eq!(got, vec![(0, 100), (1, 6), (1, 5), (2, 1), (2, 2)]);
    assert_eq!(
        comm.matches_at(2)
            .map(|m| m.datum.value)
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(ids(&s, "c"), vec![3, 4]);
    assert!(s.data(&"tag").is_empty());
}

#[test]
fn top_k_peek_leaves_the_data_and_persistent_data_count_once_per_position() {
    let s: VSpace = space(1, Metric::Dot);
    s.produce("c", d(1, &[3.0]), true).unwrap();
    s.produce("c", d(2, &[2.0]), false).unwrap();
    s.produce("c", d(3, &[1.0]), false).unwrap();
    let comm = s
        .consume(
            ["c"],
            [top_k(&[1.0], Metric::Dot, 0.0, 3)],
            "k",
            false,
            &[0],
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        comm.matches
            .iter()
            .map(|m| m.datum.value)
            .collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(ids(&s, "c"), vec![1, 2, 3], "peeked: all stay");
    // Not peeking: the persistent one stays, the others go.
    let comm = s
        .consume(["c"], [top_k(&[1.0], Metric::Dot, 0.0, 2)], "k", false, &[])
        .unwrap()
        .unwrap();
    assert_eq!(
        comm.matches
            .iter()
            .map(|m| (m.datum.value, m.persistent))
            .collect::<Vec<_>>(),
        vec![(1, true), (2, false)]
    );
    assert_eq!(ids(&s, "c"), vec![1, 3]);
    // A persistent datum fills one slot of a top-k group, not several.
    assert!(s
        .consume(["c"], [top_k(&[1.0], Metric::Dot, 2.5, 2)], "w", false, &[])
        .unwrap()
        .is_none());
}

#[test]
fn top_k_on_a_bag_takes_the_first_k_accepted_in_arrival_order() {
    let s: VSpace = Space::new(SimilarityMatch, SpaceConfig::new());
    for (id, x) in [(1, 1.0), (2, 9.0), (3, 5.0), (4, 7.0)] {
        s.produce("c", d(id, &[x]), false).unwrap();
    }
    let comm = s
        .consume(["c"], [top_k(&[1.0], Metric::Dot, 4.0, 2)], "k", false, &[])
        .unwrap()
        .unwrap();
    assert_eq!(
        comm.matches
            .iter()
            .map(|m| m.datum.value)
            .collect::<Vec<_>>(),
        vec![2, 3]
    );
}

#[test]
fn checkpoint_and_revert_around_top_k_and_refused_produces() {
    let s: VSpace = space(2, Metric::Cosine);
    for i in 0..600u32 {
        let t = i as f32 * 0.01;
        s.produce("c", d(i, &[t.cos(), t.sin()]), false).unwrap();
    }
    let cp = s.create_soft_checkpoint();
    let q = top_k(&[1.0, 0.0], Metric::Cosine, 0.0, 5);
    let first: Vec<u32> = s
        .consume(["c"], [q.clone()], "k", false, &[])
        .unwrap()
        .unwrap()
        .matches
        .iter()
        .map(|m| m.datum.value)
        .collect();
    assert_eq!(first, vec![0, 1, 2, 3, 4]);
    assert!(s.produce("c", d(9, &[0.0, 0.0]), false).is_err());
    let second: Vec<u32> = s
        .consume(["c"], [q.clone()], "k", false, &[])
        .unwrap()
        .unwrap()
        .matches
        .iter()
        .map(|m| m.datum.value)
        .collect();
    assert_eq!(second, vec![5, 6, 7, 8, 9]);
    s.revert_to_soft_checkpoint(&cp).unwrap();
    assert_eq!(s.data(&"c").len(), 600);
    let again: Vec<u32> = s
        .consume(["c"], [q], "k", false, &[])
        .unwrap()
        .unwrap()
        .matches
        .iter()
        .map(|m| m.datum.value)
        .collect();
    assert_eq!(again, first);
}

type Charged = rhospace_spaces::ChargingSpace<
    &'static str,
    SimilarityPattern,
    Datum,
    &'static str,
    SimilarityMatch,
>;

/// A charged Dot space of dimension `dim` with `table`, and its meter (a huge budget).
fn charged(
    dim: usize,
    table: rhospace_phlogiston::CostTable,
) -> (
    Charged,
    std::sync::Arc<rhospace_phlogiston::PhlogistonMeter>,
) {
    let meter = std::sync::Arc::new(rhospace_phlogiston::PhlogistonMeter::new(u64::MAX / 2));
    (
        Charged::new(space(dim, Metric::Dot), meter.clone(), table),
        meter,
    )
}

/// What a charged similarity consume on a VectorDB channel costs, in a space holding datum 0
/// (score 10, the one above the threshold) and `others` data scoring 1 (below it).
fn similarity_consume_cost(others: u32, pattern: SimilarityPattern, k: u32) -> (u64, u64) {
    let (s, meter) = charged(2, rhospace_phlogiston::CostTable::default());
    for i in 0..k {
        s.produce("c", d(i, &[10.0, 0.0]), false).unwrap();
    }
    for i in 0..others {
        s.produce("c", d(100 + i, &[1.0, 0.0]), false).unwrap();
    }
    let before = meter.consumed();
    let comm = s
        .consume(["c"], [pattern], "k", false, &[])
        .unwrap()
        .unwrap();
    assert_eq!(comm.matches.len(), k as usize);
    // Every consume here refunds the same storage (k data of one size), so the difference
    // of two costs is the difference of their charges.
    (before, meter.consumed())
}

#[test]
fn a_similarity_consume_pays_for_every_datum_it_scores() {
    // SPEC §8: costs depend on matching work. A similarity position scores every datum of
    // its VectorDB channel, so 40 more data to score cost 40 more candidates examined, as
    // they would on a Bag channel where the matcher tries each one.
    let t = rhospace_phlogiston::CostTable::default();
    for (pattern, k) in [
        (
            SimilarityPattern::best([1.0, 0.0], Metric::Dot, 5.0).unwrap(),
            1,
        ),
        (top_k(&[1.0, 0.0], Metric::Dot, 5.0, 3), 3),
    ] {
        let (b0, a0) = similarity_consume_cost(0, pattern.clone(), k);
        let (b40, a40) = similarity_consume_cost(40, pattern, k);
        let cost0 = a0.wrapping_sub(b0);
        let cost40 = a40.wrapping_sub(b40);
        // And 40 more vectors of dimension 2 scanned by the one ranking.
        let more = t.matching(40) + t.vector_work(0, 40 * 2);
        assert_eq!(cost40.wrapping_sub(cost0), more, "k = {k}");
    }
}

/// What a gated operation on a similarity space reported as vector work.
fn seen_vector(
    op: impl FnOnce(&mut dyn FnMut(rhospace_spaces::VectorWork)),
) -> rhospace_spaces::VectorWork {
    let mut seen = None;
    op(&mut |w| seen = Some(w));
    seen.expect("the gate was called")
}

#[test]
fn similarity_searches_report_their_vector_work() {
    use rhospace_spaces::VectorWork;
    let s: VSpace = space(3, Metric::Dot);
    for i in 0..5 {
        s.produce("c", d(i, &[i as f32, 0.0, 1.0]), false).unwrap();
    }
    let best = |t: f32| SimilarityPattern::best([1.0, 0.0, 0.0], Metric::Dot, t).unwrap();
    // A consume that finds nothing above 100 still ranked all five vectors of dimension 3
    // (and, finding nothing, called the matcher on none).
    let w = seen_vector(|f| {
        s.consume_admitted(["c"], [best(100.0)], "wait", false, &[], |a| {
            f(a.vector);
            Ok(())
        })
        .unwrap();
    });
    assert_eq!(
        w,
        VectorWork {
            searches: 1,
            elements: 15
        }
    );
    // A join of two similarity positions on two channels ranks twice.
    s.produce("e", d(9, &[1.0, 1.0, 1.0]), false).unwrap();
    let w = seen_vector(|f| {
        let fired = s
            .consume_admitted(["c", "e"], [best(3.5), best(0.5)], "k", false, &[], |a| {
                f(a.vector);
                Ok(())
            })
            .unwrap();
        assert!(fired.is_some());
    });
    // Ranking "c" scores its five vectors, and the matcher then scores the best one (4, above
    // 3.5); ranking "e" scores one vector, and the matcher scores it again.
    assert_eq!(
        w,
        VectorWork {
            searches: 2,
            elements: 15 + 3 + 3 + 3
        }
    );
    // A produce meeting the waiting best-match consume: nothing stored on "c" was above the
    // threshold, so the produced datum is the only candidate, no ranking. The search's matcher
    // call scores it: one scoring of dimension 3 (the pre-check's passing call is counted only
    // when the search fires nothing; this one fired, calling the matcher there itself).
    let w = seen_vector(|f| {
        let fired = s
            .produce_admitted("c", d(50, &[200.0, 0.0, 0.0]), false, 0, |a| {
                f(a.vector);
                Ok(())
            })
            .unwrap();
        assert_eq!(fired.map(|c| c.continuation), Some("wait"));
    });
    assert_eq!(
        w,
        VectorWork {
            searches: 0,
            elements: 3
        }
    );
    // Operations that score nothing report nothing.
    let w = seen_vector(|f| {
        s.produce_admitted("plain", d(1, &[0.0, 0.0, 1.0]), false, 0, |a| {
            f(a.vector);
            Ok(())
        })
        .unwrap();
    });
    assert_eq!(w, VectorWork::default());
}

/// SPEC §5 on a charged space: a refused embedding (wrong dimension, NaN, ±inf, zero under
/// cosine) or similarity query (wrong dimension; at a consume, in a join, at an install)
/// costs nothing. The balance, the views, the state root and the event log (that of a twin
/// that made only the accepted calls) stay as they were.
#[test]
fn refused_embeddings_and_queries_cost_no_phlogiston() {
    use rhospace_phlogiston::{CostTable, PhlogistonMeter};
    let meter = std::sync::Arc::new(PhlogistonMeter::new(1_000_000));
    let accepted = |s: &VSpace| {
        s.produce("c", d(1, &[1.0, 0.0, 0.0]), false).unwrap();
        let wait = SimilarityPattern::best([0.0, 1.0, 0.0], Metric::Cosine, 0.9).unwrap();
        assert!(s
            .consume(["c"], [wait], "wait", false, &[])
            .unwrap()
            .is_none());
    };
    let s = Charged::new(
        space(3, Metric::Cosine),
        meter.clone(),
        CostTable::default(),
    );
    accepted(s.space());
    let twin: VSpace = space(3, Metric::Cosine);
    accepted(&twin);
    let look = |s: &VSpace| (snapshot(s), s.joins(&"c"), s.full_state_root());
    let before = look(s.space());
    let balance = (meter.consumed(), meter.remaining());
    assert!(balance.0 == 0 && balance.1 > 0);

    let bad: [&[f32]; 6] = [
        &[1.0, 0.0],
        &[0.0, 1.0, 0.0, 0.0],
        &[0.0, f32::NAN, 0.0],
        &[0.0, 1.0, f32::INFINITY],
        &[f32::NEG_INFINITY, 1.0, 0.0],
        &[0.0, 0.0, 0.0],
    ];
    for v in bad {
        for (ch, persist) in [("c", false), ("c", true), ("fresh", false)] {
            let err = s.produce(ch, d(9, v), persist).unwrap_err();
            assert!(matches!(err.kind(), ErrorKind::Embedding(_)), "{v:?}");
            let err = s
                .produce_with_priority(ch, d(9, v), persist, 3)
                .unwrap_err();
            assert!(matches!(err.kind(), ErrorKind::Embedding(_)), "{v:?}");
        }
    }
    let short = SimilarityPattern::best([0.0, 1.0], Metric::Cosine, 0.5).unwrap();
    let good = SimilarityPattern::best([1.0, 0.0, 0.0], Metric::Cosine, 0.5).unwrap();
    let err = s
        .consume(["c"], [short.clone()], "k", false, &[])
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Query { position: 0, .. }));
    // The datum the first position would take is there: the second is refused all the same.
    let err = s
        .consume(["c", "e"], [good, short.clone()], "k", true, &[])
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Query { position: 1, .. }));
    let err = s.install(["c"], [short], "i").unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Query { position: 0, .. }));

    assert_eq!((meter.consumed(), meter.remaining()), balance);
    assert_eq!(look(s.space()), before);
    let log = |s: &VSpace| {
        let cp = s.create_checkpoint().unwrap();
        (format!("{:?}", cp.log), cp.root)
    };
    assert_eq!(log(s.space()), log(&twin), "a refused call left a trace");
}

/// A table where everything is free except what a test sets.
fn free_table() -> rhospace_phlogiston::CostTable {
    rhospace_phlogiston::CostTable {
        produce_base: 0,
        consume_base: 0,
        install_base: 0,
        comm_base: 0,
        comm_per_position: 0,
        new_channel: 0,
        join_channel: 0,
        channel_byte: 0,
        datum_byte: 0,
        pattern_byte: 0,
        continuation_byte: 0,
        match_candidate: 0,
        soft_checkpoint: 0,
        hard_checkpoint_base: 0,
        hard_checkpoint_item: 0,
        vector_search_base: 0,
        vector_element: 0,
    }
}

/// The cost table prices a COMM "per datum taken or peeked": a top-k position that takes k
/// data pays for k, not for one position.
#[test]
fn a_top_k_comm_pays_per_datum_taken() {
    let table = rhospace_phlogiston::CostTable {
        comm_base: 100,
        comm_per_position: 7,
        ..free_table()
    };
    for k in [1usize, 3, 5] {
        let (s, meter) = charged(2, table);
        for i in 0..6u32 {
            s.produce("c", d(i, &[i as f32, 1.0]), false).unwrap();
        }
        s.produce("e", d(50, &[1.0, 1.0]), false).unwrap();
        let best = SimilarityPattern::best([1.0, 0.0], Metric::Dot, 0.5).unwrap();
        let comm = s
            .consume(
                ["c", "e"],
                [top_k(&[1.0, 0.0], Metric::Dot, 0.5, k), best],
                "k",
                false,
                &[],
            )
            .unwrap()
            .unwrap();
        assert_eq!(comm.matches.len(), k + 1);
        assert_eq!(meter.consumed(), 100 + 7 * (k as u64 + 1), "k = {k}");
    }
}

/// SPEC §8 (issue 3): vector search is priced by vectors scanned × dimension. With every other
/// price zero, a charged similarity consume costs exactly `vector_search_base` per ranking
/// plus `vector_element` per element scored, at any dimension.
#[test]
fn a_similarity_consume_pays_by_dimension() {
    use rhospace_phlogiston::CostTable;
    let only_vectors = CostTable {
        vector_search_base: 7,
        vector_element: 3,
        ..free_table()
    };
    for dim in [1usize, 2, 16, 384] {
        let (s, meter) = charged(dim, only_vectors);
        let mut v = vec![0.0f32; dim];
        for i in 0..10u32 {
            v[0] = i as f32;
            s.produce("c", d(i, &v), false).unwrap();
        }
        assert_eq!(
            meter.consumed(),
            0,
            "produces with nothing waiting rank nothing"
        );
        let mut q = vec![0.0f32; dim];
        q[0] = 1.0;
        let p = SimilarityPattern::best(q, Metric::Dot, 5.5).unwrap();
        let comm = s.consume(["c"], [p], "k", false, &[]).unwrap().unwrap();
        assert_eq!(comm.matches[0].datum.value, 9);
        // One ranking scoring the ten vectors, then the matcher scoring the best one.
        assert_eq!(meter.consumed(), 7 + 3 * (10 + 1) * dim as u64, "dim {dim}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Top-k consumes against a brute-force model: the k best (score desc, oldest first) of the
    /// data at or above the threshold, or a wait when fewer than k qualify. Consumes only (no
    /// waiting continuations are exercised: a waiting one is dropped from the model by
    /// clearing after each wait).
    #[test]
    fn top_k_matches_a_brute_force_model(
        data in proptest::collection::vec(proptest::collection::vec(-3i8..=3, 2), 0..40),
        queries in proptest::collection::vec((proptest::collection::vec(-3i8..=3, 2), -4i8..=4, 1usize..5), 1..10),
    ) {
        let s: VSpace = space(2, Metric::Dot);
        let mut model: Vec<(u32, Vec<f32>)> = Vec::new();
        for (i, v) in data.iter().enumerate() {
            let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
            s.produce("c", d(i as u32, &v), false).unwrap();
            model.push((i as u32, v));
        }
        for (q, t, k) in queries {
            let q: Vec<f32> = q.iter().map(|&x| x as f32).collect();
            let p = SimilarityPattern::top_k(q, Metric::Dot, t as f32, k).unwrap();
            let mut ranked: Vec<(f32, usize)> = model
                .iter()
                .enumerate()
                .filter_map(|(i, (_, v))| p.score(v).filter(|x| p.accepts(*x)).map(|x| (x, i)))
                .collect();
            ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let cp = s.create_soft_checkpoint();
            let got = s.consume(["c"], [p], "k", false, &[]).unwrap();
            if ranked.len() >= k {
                let want: Vec<u32> = ranked[..k].iter().map(|(_, i)| model[*i].0).collect();
                let c = got.expect("k data qualify");
                prop_assert_eq!(c.matches.iter().map(|m| m.datum.value).collect::<Vec<_>>(), want);
                let mut gone: Vec<usize> = ranked[..k].iter().map(|(_, i)| *i).collect();
                gone.sort_unstable();
                for i in gone.into_iter().rev() {
                    model.remove(i);
                }
            } else {
                prop_assert!(got.is_none());
                s.revert_to_soft_checkpoint(&cp).unwrap();
            }
            prop_assert_eq!(ids(&s, "c"), model.iter().map(|(id, _)| *id).collect::<Vec<_>>());
        }
    }
}
