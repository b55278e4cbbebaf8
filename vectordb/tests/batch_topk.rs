//! Batch top-k against a brute-force sort, on data full of tied scores, on pools of one and
//! several threads: the result must be exactly the sort's first `k` (ties by smaller id),
//! whatever the execution and thread count.

use proptest::prelude::*;
use rhospace_vectordb::{Execution, Hit, Metric, VectorId, VectorStore, TILE_ROWS};
use std::sync::OnceLock;

/// Pools of 1 and 3 threads, built once.
fn pools() -> &'static [rayon::ThreadPool] {
    static POOLS: OnceLock<Vec<rayon::ThreadPool>> = OnceLock::new();
    POOLS.get_or_init(|| {
        [1, 3]
            .iter()
            .map(|&t| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .expect("a thread pool")
            })
            .collect()
    })
}

/// Small integer components (never an all-zero vector): every dot and squared-L2 score is an
/// integer computed exactly in f32 on every path, and many are equal.
fn component() -> impl Strategy<Value = f32> {
    prop_oneof![Just(-2.0f32), Just(-1.0), Just(1.0), Just(2.0)]
}

/// The exact score of `q` against `v`, as the store defines it.
fn exact(metric: Metric, q: &[f32], v: &[f32]) -> f32 {
    let s: f64 = match metric {
        Metric::L2Squared => -q
            .iter()
            .zip(v)
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
            .sum::<f64>(),
        _ => q
            .iter()
            .zip(v)
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum(),
    };
    s as f32
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn batch_top_k_equals_brute_force_sort_with_ties(
        l2 in any::<bool>(),
        dim in 1usize..5,
        n in 0usize..(2 * TILE_ROWS + 40),
        m in 1usize..24,
        k in 1usize..20,
        seed_data in prop::collection::vec(component(), 4 * (2 * TILE_ROWS + 40)),
        query_data in prop::collection::vec(component(), 4 * 24),
        removed in prop::collection::vec(any::<bool>(), 2 * TILE_ROWS + 40),
    ) {
        let metric = if l2 { Metric::L2Squared } else { Metric::Dot };
        let mut store = VectorStore::new(dim, metric).expect("dim > 0");
        let rows: Vec<&[f32]> = seed_data.chunks_exact(dim).take(n).collect();
        for v in &rows {
            store.insert(v).expect("finite");
        }
        // Remove about one row in eight (tombstones inside tiles).
        for (i, &r) in removed.iter().enumerate().take(rows.len()) {
            if r && i % 4 == 0 {
                store.remove(VectorId(i as u64));
            }
        }
        let queries = &query_data[..m * dim];
        let want: Vec<Vec<Hit>> = queries
            .chunks_exact(dim)
            .map(|q| {
                let mut all: Vec<Hit> = store
                    .iter()
                    .map(|(id, v)| Hit { id, score: exact(metric, q, v) })
                    .collect();
                all.sort_by(Hit::rank_cmp);
                all.truncate(k);
                all
            })
            .collect();
        for pool in pools() {
            for exec in [Execution::Serial, Execution::Parallel, Execution::Auto] {
                let got = pool.install(|| store.batch_top_k_with(queries, k, exec));
                prop_assert_eq!(
                    got.as_ref(),
                    Ok(&want),
                    "{:?} {:?} {} threads",
                    metric,
                    exec,
                    pool.current_num_threads()
                );
            }
        }
    }
}
