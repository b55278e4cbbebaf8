//! Test-only helpers shared by the VectorDB tests: a VectorDB space, embedded data, patterns.
#![allow(dead_code)]

use std::hash::Hash;

use rhospace_matchers::similarity::{EmbeddedDatum, Metric, SimilarityMatch, SimilarityPattern};
use rhospace_spaces::{DataKind, Space, SpaceConfig};

/// A datum carrying its id and an embedding.
pub type Datum = EmbeddedDatum<u32>;

/// A space whose channels are all VectorDB channels of dimension `dim` under `metric`.
pub fn space<C: Clone + Hash + Eq, K: Clone + Eq>(
    dim: usize,
    metric: Metric,
) -> Space<C, SimilarityPattern, Datum, K, SimilarityMatch> {
    Space::new(
        SimilarityMatch,
        SpaceConfig::new().data_kind(DataKind::VectorDb { dim, metric }),
    )
}

/// Datum `id` with embedding `v`.
pub fn d(id: u32, v: &[f32]) -> Datum {
    EmbeddedDatum::new(id, v)
}

/// The best datum scoring above `threshold` against `q`.
pub fn best(q: &[f32], metric: Metric, threshold: f32) -> SimilarityPattern {
    SimilarityPattern::best(q, metric, threshold).unwrap()
}
