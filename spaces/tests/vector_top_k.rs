//! Top-k similarity positions at their limits, through the public `Space` API: a `k` as large
//! as `usize::MAX` (SPEC §5: no input reachable through the public API panics, nor aborts on
//! an allocation sized by it), and extreme dimensions and thresholds.

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
