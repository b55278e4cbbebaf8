//! The similarity matcher: scores equal the vectordb store's (bit for bit) and kernels, the
//! threshold is inclusive, invalid patterns are typed errors, invalid data never match, and the
//! `Match::similarity` / `Match::embedding` contract holds.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use proptest::prelude::*;
use rhospace_matchers::similarity::{
    Embedded, EmbeddedDatum, Embedding, Metric, PatternErrorKind, SimilarityMatch,
    SimilarityPattern, Take, VectorError,
};
use rhospace_matchers::{ExactMatch, Match};
use rhospace_vectordb::{kernels, VectorStore};

/// SplitMix64: seeded test data.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn vec(&mut self, dim: usize) -> Vec<f32> {
        (0..dim)
            .map(|_| ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0)
            .collect()
    }
}

const METRICS: [Metric; 3] = [Metric::Cosine, Metric::Dot, Metric::L2Squared];
const DIMS: [usize; 7] = [1, 3, 7, 16, 33, 100, 384];

fn hash_of<T: Hash>(t: &T) -> u64 {
    let mut h = DefaultHasher::new();
    t.hash(&mut h);
    h.finish()
}

/// The next float towards +inf.
fn next_up(x: f32) -> f32 {
    if x == 0.0 {
        f32::from_bits(1)
    } else if x > 0.0 {
        f32::from_bits(x.to_bits() + 1)
    } else {
        f32::from_bits(x.to_bits() - 1)
    }
}

#[test]
fn scores_equal_the_vector_store_bit_for_bit() {
    let mut rng = Rng(7);
    for metric in METRICS {
        for dim in DIMS {
            let mut store = VectorStore::new(dim, metric).unwrap();
            let rows: Vec<Vec<f32>> = (0..20).map(|_| rng.vec(dim)).collect();
            let ids: Vec<_> = rows.iter().map(|r| store.insert(r).unwrap()).collect();
            let q = rng.vec(dim);
            let p = SimilarityPattern::best(q.clone(), metric, f32::NEG_INFINITY).unwrap();
            for (row, id) in rows.iter().zip(&ids) {
                let want = store.score(&q, *id).unwrap().unwrap();
                let got = SimilarityMatch
                    .get(&p, &Embedding::from(row.clone()))
                    .unwrap();
                assert_eq!(got.to_bits(), want.to_bits(), "{metric:?} dim {dim}");
            }
            // The matcher's ranking equals the store's top-k.
            let mut ranked: Vec<(f32, usize)> = rows
                .iter()
                .enumerate()
                .map(|(i, r)| (p.score(r).unwrap(), i))
                .collect();
            ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let top: Vec<u64> = store.top_k(&q, 5).unwrap().iter().map(|h| h.id.0).collect();
            let mine: Vec<u64> = ranked[..5].iter().map(|(_, i)| *i as u64).collect();
            assert_eq!(mine, top);
        }
    }
}

#[test]
fn scores_equal_the_kernels() {
    let mut rng = Rng(11);
    for dim in DIMS {
        let q = rng.vec(dim);
        let v = rng.vec(dim);
        let e = Embedding::from(v.clone());
        let dot = SimilarityPattern::best(q.clone(), Metric::Dot, f32::NEG_INFINITY).unwrap();
        assert_eq!(
            SimilarityMatch.get(&dot, &e),
            Some(kernels::dot_f32(&q, &v).unwrap())
        );
        let l2 = SimilarityPattern::best(q.clone(), Metric::L2Squared, f32::NEG_INFINITY).unwrap();
        assert_eq!(
            SimilarityMatch.get(&l2, &e),
            Some(-kernels::l2sq_f32(&q, &v).unwrap())
        );
        // Cosine goes through a pre-normalised query: equal to the kernel and to the scalar
        // reference within 1e-5.
        let cos = SimilarityPattern::best(q.clone(), Metric::Cosine, f32::NEG_INFINITY).unwrap();
        let got = SimilarityMatch.get(&cos, &e).unwrap();
        let kernel = kernels::cosine_f32(&q, &v).unwrap();
        let reference = kernels::scalar::cosine_f32(&q, &v).unwrap();
        assert!((got - kernel).abs() <= 1e-5, "dim {dim}: {got} vs {kernel}");
        assert!(
            (got - reference).abs() <= 1e-5,
            "dim {dim}: {got} vs {reference}"
        );
        assert!((-1.0..=1.0).contains(&got));
    }
}

#[test]
fn the_threshold_is_inclusive() {
    let mut rng = Rng(3);
    for metric in METRICS {
        let q = rng.vec(9);
        let v = Embedding::from(rng.vec(9));
        let score = SimilarityPattern::best(q.clone(), metric, f32::NEG_INFINITY)
            .unwrap()
            .score(&v)
            .unwrap();
        let at = SimilarityPattern::best(q.clone(), metric, score).unwrap();
        assert_eq!(SimilarityMatch.get(&at, &v), Some(score));
        let above = SimilarityPattern::best(q.clone(), metric, next_up(score)).unwrap();
        assert_eq!(SimilarityMatch.get(&above, &v), None);
        let inf = SimilarityPattern::best(q, metric, f32::INFINITY).unwrap();
        assert_eq!(SimilarityMatch.get(&inf, &v), None);
    }
}

#[test]
fn invalid_patterns_are_typed_errors_that_hand_the_query_back() {
    let cases: Vec<(Vec<f32>, Metric, f32, usize, PatternErrorKind)> = vec![
        (
            vec![],
            Metric::Dot,
            0.0,
            1,
            PatternErrorKind::Query(VectorError::WrongDimension {
                expected: 1,
                found: 0,
            }),
        ),
        (
            vec![1.0, f32::NAN],
            Metric::Dot,
            0.0,
            1,
            PatternErrorKind::Query(VectorError::NonFinite { index: 1 }),
        ),
        (
            vec![f32::INFINITY],
            Metric::L2Squared,
            0.0,
            1,
            PatternErrorKind::Query(VectorError::NonFinite { index: 0 }),
        ),
        (
            vec![1.0, f32::NEG_INFINITY],
            Metric::Cosine,
            0.0,
            1,
            PatternErrorKind::Query(VectorError::NonFinite { index: 1 }),
        ),
        (
            vec![0.0, 0.0],
            Metric::Cosine,
            0.0,
            1,
            PatternErrorKind::Query(VectorError::ZeroVector),
        ),
        (
            vec![1e-45, 0.0],
            Metric::Cosine,
            0.0,
            1,
            PatternErrorKind::Query(VectorError::ZeroVector),
        ),
        (
            vec![1.0],
            Metric::Dot,
            f32::NAN,
            1,
            PatternErrorKind::NanThreshold,
        ),
        (vec![1.0], Metric::Dot, 0.0, 0, PatternErrorKind::ZeroK),
    ];
    for (q, metric, t, k, want) in cases {
        let e = SimilarityPattern::top_k(q.clone(), metric, t, k).unwrap_err();
        assert_eq!(e.kind(), want, "{q:?} {metric:?} {t} {k}");
        assert!(!e.to_string().is_empty());
        assert_eq!(e.into_inner(), Embedding::from(q.clone()));
        if k == 1 {
            assert_eq!(
                SimilarityPattern::best(q, metric, t).unwrap_err().kind(),
                want
            );
        }
    }
    // Zero queries are fine for dot and L2; infinite thresholds are allowed.
    assert!(SimilarityPattern::best([0.0, 0.0], Metric::Dot, 0.0).is_ok());
    assert!(SimilarityPattern::best([0.0, 0.0], Metric::L2Squared, f32::NEG_INFINITY).is_ok());
    let p = SimilarityPattern::best([1.0, 0.0], Metric::Cosine, 0.0).unwrap();
    assert_eq!(
        p.clone().with_dim(3).unwrap_err().kind(),
        PatternErrorKind::Query(VectorError::WrongDimension {
            expected: 3,
            found: 2
        })
    );
    assert_eq!(p.clone().with_dim(2).unwrap(), p);
}

#[test]
fn invalid_data_never_match_and_never_panic() {
    let p = SimilarityPattern::best([1.0, 0.0], Metric::Cosine, f32::NEG_INFINITY).unwrap();
    for bad in [
        vec![],
        vec![1.0],
        vec![1.0, 0.0, 0.0],
        vec![f32::NAN, 0.0],
        vec![0.0, f32::INFINITY],
        vec![0.0, 0.0],
    ] {
        assert_eq!(
            SimilarityMatch.get(&p, &Embedding::from(bad.clone())),
            None,
            "{bad:?}"
        );
    }
    let dot = SimilarityPattern::best([1.0, 0.0], Metric::Dot, f32::NEG_INFINITY).unwrap();
    assert_eq!(
        SimilarityMatch.get(&dot, &Embedding::from([0.0, 0.0])),
        Some(0.0)
    );
    // Overflowing dot products are finite-input edge cases: they score ±inf, never NaN.
    let big =
        SimilarityPattern::best([f32::MAX, f32::MAX], Metric::Dot, f32::NEG_INFINITY).unwrap();
    let s = SimilarityMatch
        .get(&big, &Embedding::from([f32::MAX, -f32::MAX]))
        .unwrap();
    assert!(!s.is_nan());
}

#[test]
fn the_trait_hooks_expose_the_pattern_and_the_embedding() {
    let p = SimilarityPattern::top_k([1.0, 2.0], Metric::Dot, 0.5, 4).unwrap();
    let d = EmbeddedDatum::new("x", [3.0, 4.0]);
    let m = SimilarityMatch;
    assert_eq!(
        Match::<_, EmbeddedDatum<&str>>::similarity(&m, &p),
        Some(&p)
    );
    assert_eq!(
        Match::<SimilarityPattern, _>::embedding(&m, &d),
        Some(&[3.0, 4.0][..])
    );
    assert_eq!(
        p.take(),
        Take::TopK(std::num::NonZeroUsize::new(4).unwrap())
    );
    // Other matchers keep the defaults.
    assert_eq!(Match::<u8, u8>::similarity(&ExactMatch, &1), None);
    assert_eq!(Match::<u8, u8>::embedding(&ExactMatch, &1), None);
}

#[test]
fn every_datum_shape_exposes_its_embedding() {
    let p = SimilarityPattern::best([1.0, 1.0], Metric::Dot, 0.0).unwrap();
    let arc: Arc<[f32]> = Arc::from(vec![1.0f32, 2.0]);
    assert_eq!(SimilarityMatch.get(&p, &vec![1.0f32, 2.0]), Some(3.0));
    assert_eq!(SimilarityMatch.get(&p, &arc), Some(3.0));
    assert_eq!(
        SimilarityMatch.get(&p, &vec![1.0f32, 2.0].into_boxed_slice()),
        Some(3.0)
    );
    assert_eq!(
        SimilarityMatch.get(&p, &("t", Embedding::from(arc.clone()))),
        Some(3.0)
    );
    assert_eq!(
        SimilarityMatch.get(&p, &EmbeddedDatum::new(0u8, arc.clone())),
        Some(3.0)
    );
    assert_eq!(("t", Embedding::from([5.0])).embedding(), &[5.0]);
}

#[test]
fn equality_and_hash_are_bitwise_and_consistent() {
    let a = SimilarityPattern::best([1.0, 0.5], Metric::Cosine, 0.25).unwrap();
    let b = SimilarityPattern::best(vec![1.0, 0.5], Metric::Cosine, 0.25).unwrap();
    assert_eq!(a, b);
    assert_eq!(hash_of(&a), hash_of(&b));
    for other in [
        SimilarityPattern::best([1.0, 0.5], Metric::Dot, 0.25).unwrap(),
        SimilarityPattern::best([1.0, 0.5], Metric::Cosine, 0.5).unwrap(),
        SimilarityPattern::best([1.0, -0.5], Metric::Cosine, 0.25).unwrap(),
        SimilarityPattern::top_k([1.0, 0.5], Metric::Cosine, 0.25, 1).unwrap(),
    ] {
        assert_ne!(a, other);
    }
    let z = Embedding::from([0.0]);
    assert_ne!(z, Embedding::from([-0.0]));
    assert_eq!(hash_of(&z), hash_of(&Embedding::from(vec![0.0])));
    let d1 = EmbeddedDatum::new(1, [1.0, 2.0]);
    assert_eq!(d1, d1.clone());
    assert_eq!(hash_of(&d1), hash_of(&d1.clone()));
}

proptest! {
    /// The `similarity` contract: `get` accepts exactly when the embedding scores at or above
    /// the threshold, and returns that score.
    #[test]
    fn get_agrees_with_score_and_threshold(
        q in proptest::collection::vec(-4i8..=4, 4),
        v in proptest::collection::vec(-4i8..=4, 1..6),
        t in -40i8..=40,
        m in 0usize..3,
    ) {
        let metric = METRICS[m];
        let q: Vec<f32> = q.iter().map(|&x| x as f32).collect();
        let v: Vec<f32> = v.iter().map(|&x| x as f32 / 2.0).collect();
        let Ok(p) = SimilarityPattern::best(q, metric, t as f32 / 10.0) else {
            return Ok(());
        };
        let e = Embedding::from(v.clone());
        let want = p.score(&v).filter(|s| p.accepts(*s));
        prop_assert_eq!(SimilarityMatch.get(&p, &e), want);
        if v.len() != 4 {
            prop_assert_eq!(want, None);
        }
    }
}
