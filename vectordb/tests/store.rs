//! Store and query behaviour against brute-force models.

mod common;

use common::{clustered, Rng};
use rhospace_vectordb::kernels::{self, scalar};
use rhospace_vectordb::{
    ConfigError, Execution, Hit, Metric, Query, QueryError, VectorError, VectorId, VectorStore,
    CHUNK_CAPACITY,
};

const METRICS: [Metric; 3] = [Metric::Cosine, Metric::Dot, Metric::L2Squared];

fn fill(metric: Metric, dim: usize, n: usize, seed: u64) -> VectorStore {
    let mut rng = Rng::new(seed);
    let mut s = VectorStore::new(dim, metric).unwrap();
    for _ in 0..n {
        s.insert(&rng.vec_f32(dim)).unwrap();
    }
    s
}

/// Reference score from the scalar f64 kernels.
fn reference_score(metric: Metric, q: &[f32], v: &[f32]) -> f32 {
    match metric {
        Metric::Cosine => scalar::cosine_f32(q, v).unwrap(),
        Metric::Dot => scalar::dot_f32(q, v).unwrap(),
        Metric::L2Squared => -scalar::l2sq_f32(q, v).unwrap(),
    }
}

/// Brute force: score every live vector with `store.score`, sort by (score desc, id asc).
fn brute(store: &VectorStore, q: &[f32]) -> Vec<Hit> {
    let mut all: Vec<Hit> = store
        .iter()
        .map(|(id, _)| Hit {
            id,
            score: store.score(q, id).unwrap().unwrap(),
        })
        .collect();
    all.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
    all
}

/// Snapshot of everything observable, to check that failed calls change nothing.
fn observe(s: &VectorStore) -> (Vec<(VectorId, Vec<f32>)>, usize, usize, VectorId) {
    (
        s.iter().map(|(id, v)| (id, v.to_vec())).collect(),
        s.len(),
        s.tombstones(),
        s.next_id(),
    )
}

#[test]
fn top_k_equals_brute_force_sort() {
    for metric in METRICS {
        for &dim in &[1usize, 3, 17, 64, 383] {
            let store = fill(metric, dim, 300, dim as u64);
            let mut rng = Rng::new(99);
            for _ in 0..3 {
                let q = rng.vec_f32(dim);
                let all = brute(&store, &q);
                for k in [1, 5, 10, 299, 300, 1000] {
                    let got = store.top_k(&q, k).unwrap();
                    assert_eq!(got, all[..k.min(all.len())], "{metric:?} dim {dim} k {k}");
                }
                // Scores agree with the scalar reference.
                for h in &all {
                    let r = reference_score(metric, &q, store.get(h.id).unwrap());
                    let tol = 1e-4 * (1.0 + r.abs());
                    assert!((h.score - r).abs() <= tol, "{metric:?}: {} vs {r}", h.score);
                }
            }
        }
    }
}

#[test]
fn ties_break_by_smaller_id() {
    let mut s = VectorStore::new(4, Metric::Cosine).unwrap();
    let v = [0.5, -1.0, 2.0, 0.25];
    let other = [1.0, 1.0, 1.0, 1.0];
    let ids: Vec<VectorId> = (0..6)
        .map(|i| s.insert(if i % 2 == 0 { &v } else { &other }).unwrap())
        .collect();
    let got: Vec<VectorId> = s.top_k(&v, 3).unwrap().iter().map(|h| h.id).collect();
    assert_eq!(got, [ids[0], ids[2], ids[4]]);
    let scaled: Vec<f32> = v.iter().map(|x| x * 3.0).collect();
    let got = s.above(&scaled, 0.999).unwrap();
    assert_eq!(
        got.iter().map(|h| h.id).collect::<Vec<_>>(),
        [ids[0], ids[2], ids[4]]
    );
    let batch = s.batch_top_k(&v, 3).unwrap();
    assert_eq!(
        batch[0].iter().map(|h| h.id).collect::<Vec<_>>(),
        [ids[0], ids[2], ids[4]]
    );
}

#[test]
fn threshold_search_equals_filter() {
    for metric in METRICS {
        let store = fill(metric, 33, 400, 7);
        let mut rng = Rng::new(8);
        let q = rng.vec_f32(33);
        let all = brute(&store, &q);
        let median = all[all.len() / 2].score;
        for t in [f32::NEG_INFINITY, median, all[0].score, all[0].score + 1.0] {
            let want: Vec<Hit> = all.iter().copied().filter(|h| h.score >= t).collect();
            assert_eq!(store.above(&q, t).unwrap(), want, "{metric:?} t {t}");
            assert_eq!(
                store.best_above(&q, t).unwrap(),
                want.first().copied(),
                "{metric:?} t {t}"
            );
        }
    }
}

#[test]
fn batch_equals_serial_and_single_queries() {
    // More than one chunk, tiles that end inside a chunk, odd dimension.
    let n = CHUNK_CAPACITY + 700;
    for metric in METRICS {
        let dim = 9;
        let mut store = fill(metric, dim, n, 11);
        for i in (0..n as u64).step_by(7) {
            store.remove(VectorId(i));
        }
        let mut rng = Rng::new(12);
        let m = 13;
        let queries: Vec<f32> = (0..m * dim).map(|_| rng.unit()).collect();
        let k = 10;
        let serial = store
            .batch_top_k_with(&queries, k, Execution::Serial)
            .unwrap();
        let parallel = store
            .batch_top_k_with(&queries, k, Execution::Parallel)
            .unwrap();
        assert_eq!(serial, parallel, "{metric:?}");
        assert_eq!(serial, store.batch_top_k(&queries, k).unwrap());
        for threads in [1, 2, 5] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let got = pool.install(|| {
                store
                    .batch_top_k_with(&queries, k, Execution::Parallel)
                    .unwrap()
            });
            assert_eq!(got, serial, "{metric:?} {threads} threads");
            let mat = pool.install(|| {
                store
                    .similarity_matrix_with(&queries, Execution::Parallel)
                    .unwrap()
            });
            assert_eq!(
                mat,
                store
                    .similarity_matrix_with(&queries, Execution::Serial)
                    .unwrap()
            );
        }
        // Against single queries: same scores rank by rank (GEMM may differ in the last bits).
        for (i, q) in queries.chunks_exact(dim).enumerate() {
            let single = store.top_k(q, k).unwrap();
            assert_eq!(single.len(), serial[i].len());
            for (a, b) in single.iter().zip(&serial[i]) {
                assert!(
                    (a.score - b.score).abs() <= 1e-5 * (1.0 + a.score.abs()),
                    "{metric:?} query {i}: {a:?} vs {b:?}"
                );
            }
            assert!(serial[i].iter().all(|h| store.contains(h.id)));
        }
        // The similarity matrix covers exactly the live ids, with the right scores.
        let mat = store.similarity_matrix(&queries).unwrap();
        let ids: Vec<VectorId> = store.iter().map(|(id, _)| id).collect();
        assert_eq!(mat.ids(), &ids[..]);
        assert_eq!(mat.num_queries(), m);
        for (col, &id) in ids.iter().enumerate().step_by(37) {
            for (qi, q) in queries.chunks_exact(dim).enumerate() {
                let want = store.score(q, id).unwrap().unwrap();
                let got = mat.get(qi, col).unwrap();
                assert!((want - got).abs() <= 1e-5 * (1.0 + want.abs()));
            }
        }
    }
}

/// The batch kernel (register blocks of 14 rows × 32 queries, tiles of 256 rows) against the
/// scalar f64 reference, on dimensions and sizes that are not multiples of any block: every
/// score within `1e-5 · (1 + |score|)` (cosine, dot) of the reference, and batch top-k equal to
/// the brute-force sort of those scores up to that tolerance.
#[test]
fn batch_kernel_matches_scalar_reference_on_odd_shapes() {
    for metric in [Metric::Cosine, Metric::Dot] {
        for &(dim, n, m) in &[
            (1usize, 5usize, 1usize),
            (7, 29, 17),
            (17, 301, 33),
            (33, 257, 100),
            (383, 271, 15),
        ] {
            let store = fill(metric, dim, n, (dim * 31 + n) as u64);
            let mut rng = Rng::new(m as u64);
            let queries: Vec<f32> = (0..m * dim).map(|_| rng.unit()).collect();
            for exec in [Execution::Serial, Execution::Parallel] {
                let mat = store.similarity_matrix_with(&queries, exec).unwrap();
                for (col, (_, v)) in store.iter().enumerate() {
                    for (qi, q) in queries.chunks_exact(dim).enumerate() {
                        let want = reference_score(metric, q, v);
                        let scale: f32 = match metric {
                            Metric::Cosine => 1.0,
                            _ => q.iter().zip(v).map(|(a, b)| (a * b).abs()).sum(),
                        };
                        let got = mat.get(qi, col).unwrap();
                        assert!(
                            (got - want).abs() <= 1e-5 * (1.0 + scale),
                            "{metric:?} dim {dim} n {n} m {m}: {got} vs {want}"
                        );
                    }
                }
                let top = store.batch_top_k_with(&queries, 5, exec).unwrap();
                for (qi, hits) in top.iter().enumerate() {
                    let mut all: Vec<Hit> = (0..mat.ids().len())
                        .map(|col| Hit {
                            id: mat.ids()[col],
                            score: mat.get(qi, col).unwrap(),
                        })
                        .collect();
                    all.sort_by(Hit::rank_cmp);
                    all.truncate(5);
                    assert_eq!(hits, &all, "{metric:?} dim {dim} n {n} m {m} query {qi}");
                }
            }
        }
    }
}

/// Invalid batches are rejected the same way on the parallel path, where helper threads are
/// already waiting for the batch when it turns out invalid: they must be released (no hang),
/// and nothing is returned but the error.
#[test]
fn parallel_batch_errors_release_the_helpers() {
    let store = fill(Metric::Cosine, 5, 700, 21);
    let mut bad = vec![0.5f32; 5 * 9];
    bad[3 * 5 + 2] = f32::INFINITY;
    let zero = {
        let mut q = vec![0.5f32; 5 * 4];
        q[10..15].fill(0.0);
        q
    };
    for threads in [1, 2, 5] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            for exec in [Execution::Parallel, Execution::Serial] {
                let non_finite = Err(QueryError::Vector {
                    query: 3,
                    error: VectorError::NonFinite { index: 2 },
                });
                assert_eq!(store.batch_top_k_with(&bad, 3, exec), non_finite);
                assert_eq!(
                    store.similarity_matrix_with(&bad, exec).map(|_| ()),
                    non_finite.map(|_: Vec<Vec<Hit>>| ())
                );
                let zero_vector = Err(QueryError::Vector {
                    query: 2,
                    error: VectorError::ZeroVector,
                });
                assert_eq!(
                    store.similarity_matrix_with(&zero, exec).map(|_| ()),
                    zero_vector
                );
                let ragged = Err(QueryError::RaggedBatch { len: 7, dim: 5 });
                assert_eq!(
                    store.similarity_matrix_with(&[1.0; 7], exec).map(|_| ()),
                    ragged
                );
                // And a valid batch still works afterwards, identically.
                let q = vec![0.25f32; 5 * 3];
                assert_eq!(
                    store.similarity_matrix_with(&q, exec).unwrap(),
                    store.similarity_matrix_with(&q, Execution::Serial).unwrap()
                );
            }
        });
    }
}

#[test]
fn batch_of_zero_queries_and_empty_store() {
    let store = VectorStore::new(4, Metric::Cosine).unwrap();
    assert_eq!(store.batch_top_k(&[], 3).unwrap(), Vec::<Vec<Hit>>::new());
    let q = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0];
    assert_eq!(store.batch_top_k(&q, 3).unwrap(), vec![vec![], vec![]]);
    assert_eq!(store.top_k(&q[..4], 3).unwrap(), vec![]);
    assert_eq!(
        store.similarity_matrix(&q).unwrap().as_slice(),
        &[] as &[f32]
    );
}

#[test]
fn validation_errors_leave_store_unchanged() {
    assert_eq!(
        VectorStore::new(0, Metric::Cosine).err(),
        Some(ConfigError::ZeroDimension)
    );
    assert_eq!(
        VectorStore::new_quantized(0, Metric::Dot).err(),
        Some(ConfigError::ZeroDimension)
    );
    for metric in METRICS {
        let mut s = fill(metric, 3, 5, 1);
        s.remove(VectorId(2));
        let before = observe(&s);
        assert_eq!(
            s.insert(&[1.0, 2.0]),
            Err(VectorError::WrongDimension {
                expected: 3,
                found: 2
            })
        );
        assert_eq!(
            s.insert(&[1.0, 2.0, 3.0, 4.0]),
            Err(VectorError::WrongDimension {
                expected: 3,
                found: 4
            })
        );
        assert_eq!(
            s.insert(&[1.0, f32::NAN, 3.0]),
            Err(VectorError::NonFinite { index: 1 })
        );
        assert_eq!(
            s.insert(&[f32::INFINITY, 0.0, 3.0]),
            Err(VectorError::NonFinite { index: 0 })
        );
        assert_eq!(
            s.insert(&[0.0, 0.0, f32::NEG_INFINITY]),
            Err(VectorError::NonFinite { index: 2 })
        );
        let zero = s.insert(&[0.0, 0.0, 0.0]);
        if metric == Metric::Cosine {
            assert_eq!(zero, Err(VectorError::ZeroVector));
            // Subnormal vectors whose inverse norm overflows are zero for cosine too.
            assert_eq!(s.insert(&[1e-45, 0.0, 0.0]), Err(VectorError::ZeroVector));
        } else {
            assert!(zero.is_ok());
            assert!(s.remove(zero.unwrap()));
        }
        // Queries: every error, no change.
        let q = QueryError::Vector {
            query: 0,
            error: VectorError::NonFinite { index: 2 },
        };
        assert_eq!(s.top_k(&[1.0, 1.0, f32::NAN], 2), Err(q));
        assert_eq!(s.above(&[1.0, 1.0, f32::NAN], 0.0), Err(q));
        assert_eq!(s.score(&[1.0, 1.0, f32::NAN], VectorId(0)), Err(q));
        assert_eq!(s.top_k(&[1.0, 1.0, 1.0], 0), Err(QueryError::ZeroK));
        assert_eq!(
            s.top_k_quantized(&[1.0, 1.0, 1.0], 0, 5),
            Err(QueryError::ZeroK)
        );
        assert_eq!(
            s.above(&[1.0, 1.0, 1.0], f32::NAN),
            Err(QueryError::NanThreshold)
        );
        assert_eq!(
            s.best_above(&[1.0, 1.0, 1.0], f32::NAN),
            Err(QueryError::NanThreshold)
        );
        assert_eq!(
            s.top_k(&[1.0], 1),
            Err(QueryError::Vector {
                query: 0,
                error: VectorError::WrongDimension {
                    expected: 3,
                    found: 1
                }
            })
        );
        assert_eq!(
            s.batch_top_k(&[1.0; 7], 1),
            Err(QueryError::RaggedBatch { len: 7, dim: 3 })
        );
        assert_eq!(
            s.batch_top_k(&[1.0, 1.0, 1.0, 1.0, f32::NAN, 1.0], 1),
            Err(QueryError::Vector {
                query: 1,
                error: VectorError::NonFinite { index: 1 }
            })
        );
        assert_eq!(s.batch_top_k(&[1.0; 6], 0), Err(QueryError::ZeroK));
        assert!(s.similarity_matrix(&[1.0; 4]).is_err());
        if metric == Metric::Cosine {
            assert_eq!(
                s.top_k(&[0.0; 3], 1),
                Err(QueryError::Vector {
                    query: 0,
                    error: VectorError::ZeroVector
                })
            );
        }
        // Removing unknown or already-removed ids changes nothing either.
        assert!(!s.remove(VectorId(2)));
        assert!(!s.remove(VectorId(10_000)));
        let after = observe(&s);
        if metric == Metric::Cosine {
            assert_eq!(before, after);
        } else {
            // The accepted zero vector took one id and left one tombstone.
            assert_eq!(before.0, after.0);
            assert_eq!(before.1, after.1);
            assert_eq!(before.2 + 1, after.2);
            assert_eq!(VectorId(before.3 .0 + 1), after.3);
        }
        // Errors display without panicking.
        assert!(!format!("{}", QueryError::ZeroK).is_empty());
        assert!(!format!("{}", VectorError::ZeroVector).is_empty());
    }
}

#[test]
fn tombstones_and_compaction_keep_ids_and_results() {
    let dim = 5;
    let n = 2 * CHUNK_CAPACITY + 100;
    let mut s = fill(Metric::Cosine, dim, n, 21);
    let mut rng = Rng::new(22);
    let mut removed = Vec::new();
    for i in 0..n as u64 {
        // Empty one whole chunk, thin the others.
        if (CHUNK_CAPACITY as u64..2 * CHUNK_CAPACITY as u64).contains(&i) || rng.below(3) == 0 {
            assert!(s.remove(VectorId(i)));
            removed.push(VectorId(i));
        }
    }
    assert_eq!(s.len() + removed.len(), n);
    assert_eq!(s.tombstones(), removed.len());
    let queries: Vec<Vec<f32>> = (0..5).map(|_| rng.vec_f32(dim)).collect();
    let before: Vec<Vec<Hit>> = queries.iter().map(|q| s.top_k(q, 20).unwrap()).collect();
    for (q, hits) in queries.iter().zip(&before) {
        assert_eq!(hits[..], brute(&s, q)[..20]);
        assert!(hits.iter().all(|h| !removed.contains(&h.id)));
    }
    let contents = observe(&s).0;
    let snapshot = s.clone();
    s.compact();
    assert_eq!(s.tombstones(), 0);
    assert_eq!(observe(&s).0, contents);
    let after: Vec<Vec<Hit>> = queries.iter().map(|q| s.top_k(q, 20).unwrap()).collect();
    assert_eq!(before, after);
    for id in &removed {
        assert_eq!(s.get(*id), None);
        assert!(!s.remove(*id));
    }
    // Ids keep counting after compaction, never reused.
    let next = s.insert(&rng.vec_f32(dim)).unwrap();
    assert_eq!(next, VectorId(n as u64));
    // The snapshot taken before compaction is untouched.
    assert_eq!(snapshot.tombstones(), removed.len());
    assert_eq!(observe(&snapshot).0, contents);
    assert!(!snapshot.contains(next));
    // Remove everything, compact, the store is empty but ids continue.
    let all: Vec<VectorId> = s.iter().map(|(id, _)| id).collect();
    for id in all {
        s.remove(id);
    }
    s.compact();
    assert!(s.is_empty());
    assert_eq!(s.top_k(&queries[0], 3).unwrap(), vec![]);
    assert_eq!(s.insert(&[1.0; 5]), Ok(VectorId(n as u64 + 1)));
}

#[test]
fn clones_are_independent_snapshots() {
    let mut a = fill(Metric::Dot, 4, CHUNK_CAPACITY + 3, 31);
    let b = a.clone();
    let q = [1.0, -1.0, 0.5, 2.0];
    let before = b.top_k(&q, 5).unwrap();
    a.insert(&[100.0, -100.0, 50.0, 200.0]).unwrap();
    a.remove(before[1].id);
    assert_eq!(b.top_k(&q, 5).unwrap(), before);
    assert_ne!(a.top_k(&q, 5).unwrap(), before);
    assert_eq!(b.len(), CHUNK_CAPACITY + 3);
}

#[test]
fn quantized_top_k_has_high_recall_and_exact_scores() {
    let dim = 384;
    let n = 2000;
    let mut rng = Rng::new(41);
    let data = clustered(&mut rng, n, dim, 16);
    for metric in METRICS {
        let mut exact = VectorStore::new(dim, metric).unwrap();
        let mut quant = VectorStore::new_quantized(dim, metric).unwrap();
        for v in data.chunks_exact(dim) {
            exact.insert(v).unwrap();
            quant.insert(v).unwrap();
        }
        let queries = clustered(&mut rng, 20, dim, 16);
        let k = 10;
        let mut found = 0;
        for q in queries.chunks_exact(dim) {
            let want = exact.top_k(q, k).unwrap();
            let got = quant.top_k_quantized(q, k, 4 * k).unwrap();
            assert_eq!(got.len(), k);
            found += got
                .iter()
                .filter(|h| want.iter().any(|w| w.id == h.id))
                .count();
            // Scores are exact f32 scores, ordered by rank.
            for h in &got {
                assert_eq!(Some(h.score), exact.score(q, h.id).unwrap());
            }
            assert!(got.windows(2).all(|w| w[0].rank_cmp(&w[1]).is_lt()));
            // A shortlist covering the whole store is exact.
            assert_eq!(quant.top_k_quantized(q, k, n).unwrap(), want);
            // A non-quantized store answers exactly.
            assert_eq!(exact.top_k_quantized(q, k, k).unwrap(), want);
        }
        let recall = found as f64 / (20 * k) as f64;
        assert!(recall >= 0.95, "{metric:?} recall@10 {recall}");
    }
}

/// A `k` up to `usize::MAX` is accepted by every top-k entry point and returns every live row,
/// best first; nothing is sized by `k` (a `k`-sized reservation would abort), nothing overflows.
#[test]
fn a_huge_k_returns_every_row_by_every_path() {
    use rhospace_vectordb::Scan;
    for metric in METRICS {
        let dim = 5;
        let mut rng = Rng::new(5);
        let data: Vec<f32> = (0..300).flat_map(|_| rng.vec_f32(dim)).collect();
        let mut exact = VectorStore::new(dim, metric).unwrap();
        let mut quant = VectorStore::new_quantized(dim, metric).unwrap();
        for v in data.chunks_exact(dim) {
            exact.insert(v).unwrap();
            quant.insert(v).unwrap();
        }
        let queries = rng.vec_f32(2 * dim);
        let want: Vec<Vec<Hit>> = queries
            .chunks_exact(dim)
            .map(|q| brute(&exact, q))
            .collect();
        for k in [usize::MAX, usize::MAX - 1, usize::MAX / 2, 301] {
            for (q, want) in queries.chunks_exact(dim).zip(&want) {
                for scan in [Scan::Auto, Scan::Full, Scan::Pruned] {
                    assert_eq!(&exact.top_k_with(q, k, scan).unwrap(), want, "{metric:?}");
                }
                assert_eq!(&quant.top_k_quantized(q, k, k).unwrap(), want);
                assert_eq!(
                    &quant.top_k_quantized(q, 3, usize::MAX).unwrap(),
                    &want[..3]
                );
            }
            // The batch path scores through its GEMM kernel: compared with itself at k = n.
            let all = exact
                .batch_top_k_with(&queries, 300, Execution::Serial)
                .unwrap();
            assert_eq!(all.iter().map(Vec::len).collect::<Vec<_>>(), [300, 300]);
            for exec in [Execution::Serial, Execution::Parallel] {
                assert_eq!(exact.batch_top_k_with(&queries, k, exec).unwrap(), all);
            }
        }
    }
}

#[test]
fn huge_components_do_not_poison_rankings() {
    // A dot product that overflows to +inf - inf = NaN must rank last, not first.
    let mut s = VectorStore::new(2, Metric::Dot).unwrap();
    let bad = s.insert(&[f32::MAX, -f32::MAX]).unwrap();
    let good = s.insert(&[1.0, 1.0]).unwrap();
    let top = s.top_k(&[f32::MAX, f32::MAX], 2).unwrap();
    assert_eq!(top[0].id, good);
    assert_eq!(top[1].id, bad);
    assert!(!top[1].score.is_nan());
}

/// A dot score does not depend on whether the f32 sums overflow on the way: like
/// [`kernels::dot_f32`] (and the cosine score), it is the true dot product rounded once, infinite
/// only when that is beyond f32's range. `[1e30, 1e30] · [1e30, -1e30]` is `0`, but its f32 sum
/// is `inf - inf`: the store scored it `-inf` (ranking it below a row whose dot is `-1e30`, and
/// failing a threshold of `0`), and the batch, whose fused chain saw `+inf`, scored it `+inf`.
#[test]
fn dot_of_huge_rows_is_the_true_dot_product() {
    use rhospace_vectordb::Scan;
    let q = [1e30f32, 1e30];
    let cancel = [1e30f32, -1e30];
    let want = kernels::dot_f32(&q, &cancel).unwrap();
    assert_eq!(want, 0.0);
    let mut s = VectorStore::new(2, Metric::Dot).unwrap();
    let low = s.insert(&[-1.0, 0.0]).unwrap();
    let zero = s.insert(&cancel).unwrap();
    assert_eq!(s.score(&q, zero), Ok(Some(want)));
    assert_eq!(
        Query::new(&q, Metric::Dot).unwrap().score(&cancel),
        Ok(want)
    );
    for scan in [Scan::Full, Scan::Pruned] {
        let top = s.top_k_with(&q, 2, scan).unwrap();
        assert_eq!(top.iter().map(|h| h.id).collect::<Vec<_>>(), [zero, low]);
        assert_eq!(top[0].score, want);
        let above: Vec<VectorId> = s
            .above_with(&q, 0.0, scan)
            .unwrap()
            .iter()
            .map(|h| h.id)
            .collect();
        assert_eq!(above, [zero]);
    }
    for exec in [Execution::Serial, Execution::Parallel] {
        let batch = s.batch_top_k_with(&q, 2, exec).unwrap();
        assert_eq!(
            batch[0].iter().map(|h| h.id).collect::<Vec<_>>(),
            [zero, low]
        );
        assert_eq!(batch[0][0].score, want);
        let m = s.similarity_matrix_with(&q, exec).unwrap();
        assert_eq!(m.get(0, 1), Some(want));
    }
    // Beyond f32's range it is infinite, with its sign.
    let big = s.insert(&[f32::MAX, f32::MAX]).unwrap();
    assert_eq!(s.score(&[1e30, 1e30], big), Ok(Some(f32::INFINITY)));
    assert_eq!(s.score(&[-1e30, -1e30], big), Ok(Some(f32::NEG_INFINITY)));
}

/// The i8 pre-filter and the full f32 scan agree bit for bit through the public API: every
/// metric, odd dimensions, chunk boundaries, tombstones, compaction, ties from duplicated rows,
/// k beyond the row count, thresholds exactly at stored scores.
#[test]
fn pruned_and_full_scans_agree_bit_for_bit() {
    use rhospace_vectordb::Scan;
    for metric in METRICS {
        for &dim in &[3usize, 64, 383] {
            let mut rng = Rng::new(dim as u64 + 17);
            let data = clustered(&mut rng, 1500, dim, 8);
            let mut s = VectorStore::new(dim, metric).unwrap();
            for (i, v) in data.chunks_exact(dim).enumerate() {
                s.insert(v).unwrap();
                if i % 50 == 0 {
                    // Exact duplicates: equal scores, ordered by id.
                    s.insert(v).unwrap();
                }
            }
            let queries = clustered(&mut rng, 3, dim, 8);
            for round in 0..3 {
                for q in queries.chunks_exact(dim) {
                    for k in [1, 7, 10, 100, s.len(), s.len() + 3] {
                        let full = s.top_k_with(q, k, Scan::Full).unwrap();
                        assert_eq!(s.top_k_with(q, k, Scan::Pruned).unwrap(), full);
                        assert_eq!(s.top_k(q, k).unwrap(), full, "{metric:?} {dim} k {k}");
                    }
                    let all = s.top_k_with(q, s.len(), Scan::Full).unwrap();
                    for t in all.iter().step_by(97).map(|h| h.score) {
                        let full = s.above_with(q, t, Scan::Full).unwrap();
                        assert_eq!(s.above_with(q, t, Scan::Pruned).unwrap(), full);
                        assert_eq!(s.above(q, t).unwrap(), full);
                    }
                }
                // Next round: tombstones, then compaction.
                if round == 0 {
                    for id in (0..s.next_id().0).step_by(3) {
                        s.remove(VectorId(id));
                    }
                } else {
                    s.compact();
                }
            }
        }
    }
}

/// An invalid batch whose score matrix could not be allocated (2^40 scores) is the typed
/// error of its first bad query, not an allocation failure, on both execution paths.
#[test]
fn an_invalid_batch_too_big_to_score_is_an_error() {
    let mut s = VectorStore::new(1, Metric::Dot).unwrap();
    for i in 0..(1usize << 20) {
        s.insert(&[i as f32]).unwrap();
    }
    let mut q = vec![1.0f32; 1 << 20];
    q[3] = f32::NAN;
    for exec in [Execution::Serial, Execution::Parallel] {
        let err = s.similarity_matrix_with(&q, exec).unwrap_err();
        assert!(
            matches!(err, QueryError::Vector { query: 3, .. }),
            "{err:?}"
        );
    }
    assert_eq!(s.len(), 1 << 20, "the store is unchanged");
}

/// Scores `-0.0` and `+0.0` are ranked by [`Hit::rank_cmp`] (`+0.0` first, `f32::total_cmp`) on
/// every path. Under cosine, a row orthogonal to the query but for a subnormal component scores
/// a signed zero (`-1e-44 · 1e-10` rounds to `-0.0`). The full scan used to skip a `+0.0` that
/// came after a kept `-0.0` (IEEE `0.0 > -0.0` is false), so it returned the `-0.0` row while the
/// pre-filter, `above` and the batch returned the `+0.0` one.
#[test]
fn signed_zero_scores_rank_the_same_on_every_path() {
    use rhospace_vectordb::Scan;
    let mut s = VectorStore::new(2, Metric::Cosine).unwrap();
    let neg = s.insert(&[-1e-44, 1e10]).unwrap();
    let pos = s.insert(&[1e-44, 1e10]).unwrap();
    let q = [1.0, 0.0];
    let bits = |hits: &[Hit]| -> Vec<(VectorId, u32)> {
        hits.iter().map(|h| (h.id, h.score.to_bits())).collect()
    };
    assert_eq!(
        s.score(&q, neg).unwrap().map(f32::to_bits),
        Some((-0.0f32).to_bits())
    );
    assert_eq!(
        s.score(&q, pos).unwrap().map(f32::to_bits),
        Some(0.0f32.to_bits())
    );
    let want = bits(&s.above(&q, f32::NEG_INFINITY).unwrap());
    assert_eq!(want[0].0, pos);
    for scan in [Scan::Full, Scan::Pruned, Scan::Auto] {
        assert_eq!(
            bits(&s.top_k_with(&q, 1, scan).unwrap()),
            want[..1],
            "{scan:?}"
        );
        assert_eq!(bits(&s.top_k_with(&q, 2, scan).unwrap()), want, "{scan:?}");
    }
    assert_eq!(
        s.best_above(&q, f32::NEG_INFINITY).unwrap().map(|h| h.id),
        Some(pos)
    );
}

/// Cosine scores do not depend on the magnitude of a row. A row with a norm near `f32::MAX`
/// used to overflow the f32 dot product (`q/‖q‖ · v`) before the inverse norm scaled it back,
/// so `[3e38, 3e38]` scored `1.0` against `[1, 0.5]` (true cosine 0.9487, the score of
/// `[1, 1]`), and in the batch the cancelling row `[3e38 × 8, -3e38 × 8]` scored `1.0` against
/// all-ones (true cosine 0, which the single query returned).
#[test]
fn cosine_of_huge_rows_does_not_overflow() {
    let mut s = VectorStore::new(2, Metric::Cosine).unwrap();
    let big = s.insert(&[3e38, 3e38]).unwrap();
    let unit = s.insert(&[1.0, 1.0]).unwrap();
    let q = [1.0, 0.5];
    let want = scalar::cosine_f32(&q, &[1.0, 1.0]).unwrap();
    for id in [big, unit] {
        let got = s.score(&q, id).unwrap().unwrap();
        assert!((got - want).abs() < 1e-6, "{id}: {got} vs {want}");
    }
    assert!(s.above(&q, 0.99).unwrap().is_empty());
    let batch = s.batch_top_k(&q, 2).unwrap();
    for h in &batch[0] {
        assert!((h.score - want).abs() < 1e-6, "batch {h:?} vs {want}");
    }

    let mut s = VectorStore::new(16, Metric::Cosine).unwrap();
    let mut v = vec![3e38f32; 8];
    v.extend([-3e38f32; 8]);
    s.insert(&v).unwrap();
    let q = [1.0f32; 16];
    let single = s.top_k(&q, 1).unwrap()[0].score;
    assert!(single.abs() < 1e-6, "single {single}");
    for exec in [Execution::Serial, Execution::Parallel] {
        let batch = s.batch_top_k_with(&q, 1, exec).unwrap()[0][0].score;
        assert!(batch.abs() < 1e-6, "batch {batch}");
        let m = s.similarity_matrix_with(&q, exec).unwrap();
        assert!(m.as_slice()[0].abs() < 1e-6, "matrix {:?}", m.as_slice());
    }
}

/// A store's dimension is any non-zero `usize`; a query of the wrong length against a huge one
/// is a typed error (no allocation sized by the store's dimension before the length check).
#[test]
fn wrong_length_query_on_a_huge_dimension_is_an_error() {
    for dim in [usize::MAX, usize::MAX / 4 + 1, 1 << 40] {
        for metric in METRICS {
            let mut s = VectorStore::new(dim, metric).unwrap();
            let wrong = VectorError::WrongDimension {
                expected: dim,
                found: 2,
            };
            assert_eq!(s.insert(&[1.0, 2.0]), Err(wrong));
            let q = [1.0, 2.0];
            let single = QueryError::Vector {
                query: 0,
                error: wrong,
            };
            assert_eq!(s.top_k(&q, 1), Err(single));
            assert_eq!(s.top_k_quantized(&q, 1, 4), Err(single));
            assert_eq!(s.above(&q, 0.0), Err(single));
            assert_eq!(s.best_above(&q, 0.0), Err(single));
            assert_eq!(s.score(&q, VectorId(0)), Err(single));
            assert!(s.is_empty());
        }
    }
}
