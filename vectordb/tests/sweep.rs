//! Every public kernel and search entry point at every small length (0..=67 components, 0..=17
//! queries, and the lengths around the SIMD widths, register blocks, panels, k-blocks, tiles and
//! chunks of the implementation), against the scalar references. Run natively it exercises the
//! AVX-512 paths where the CPU has them; under valgrind (no AVX-512) the AVX2/SSE paths.

mod common;

use common::Rng;
use rhospace_vectordb::kernels::{self, scalar, F16};
use rhospace_vectordb::{Execution, Hit, Metric, Scan, VectorStore};

/// Lengths 0..=67, then around 128-, 170-, 256- and 512-component blocks.
fn lengths() -> Vec<usize> {
    let mut v: Vec<usize> = (0..=67).collect();
    v.extend([
        95, 96, 97, 127, 128, 129, 169, 170, 171, 255, 256, 257, 383, 384, 385, 511, 512, 513,
    ]);
    v
}

/// Query counts 0..=17, then around the panels (16) and panel groups (4, 3, 2, 1 panels).
fn query_counts() -> Vec<usize> {
    let mut v: Vec<usize> = (0..=17).collect();
    v.extend([31, 32, 33, 47, 48, 49, 63, 64, 65, 79, 80, 81, 100]);
    v
}

fn close(got: f32, want: f64, tol: f64, what: &str) {
    assert!(
        (got as f64 - want).abs() <= tol,
        "{what}: got {got}, want {want} (tol {tol})"
    );
}

#[test]
fn pair_kernels_at_every_small_length() {
    #[cfg(target_arch = "x86_64")]
    eprintln!(
        "avx512f {}, simsimd haswell {} skylake {} ice {} sapphire {}",
        std::arch::is_x86_feature_detected!("avx512f"),
        simsimd::capabilities::uses_haswell(),
        simsimd::capabilities::uses_skylake(),
        simsimd::capabilities::uses_ice(),
        simsimd::capabilities::uses_sapphire(),
    );
    let mut rng = Rng::new(7);
    for len in lengths() {
        for offset in 0..3 {
            // Unaligned starts too: `offset` elements into a longer buffer.
            let a_buf = rng.vec_f32(len + offset);
            let b_buf = rng.vec_f32(len + offset);
            let (a, b) = (&a_buf[offset..], &b_buf[offset..]);
            let what = |k: &str| format!("{k} len {len} offset {offset}");
            let terms: f64 = a.iter().zip(b).map(|(x, y)| (x * y).abs() as f64).sum();
            let sq: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
            let tol = |s: f64| (len as f64 + 2.0) * 1.2e-7 * s + 1e-6;
            close(
                kernels::dot_f32(a, b).unwrap(),
                scalar::dot_f32(a, b).unwrap() as f64,
                tol(terms),
                &what("dot_f32"),
            );
            close(
                kernels::l2sq_f32(a, b).unwrap(),
                scalar::l2sq_f32(a, b).unwrap() as f64,
                tol(sq),
                &what("l2sq_f32"),
            );
            close(
                kernels::cosine_f32(a, b).unwrap(),
                scalar::cosine_f32(a, b).unwrap() as f64,
                1e-5,
                &what("cosine_f32"),
            );

            let ha: Vec<F16> = a.iter().map(|&x| F16::from_f32(x)).collect();
            let hb: Vec<F16> = b.iter().map(|&x| F16::from_f32(x)).collect();
            close(
                kernels::dot_f16(&ha, &hb).unwrap(),
                scalar::dot_f16(&ha, &hb).unwrap() as f64,
                2e-3 * terms + 1e-3,
                &what("dot_f16"),
            );
            close(
                kernels::l2sq_f16(&ha, &hb).unwrap(),
                scalar::l2sq_f16(&ha, &hb).unwrap() as f64,
                2e-3 * sq + 1e-3,
                &what("l2sq_f16"),
            );
            close(
                kernels::cosine_f16(&ha, &hb).unwrap(),
                scalar::cosine_f16(&ha, &hb).unwrap() as f64,
                2e-3,
                &what("cosine_f16"),
            );

            let ia_buf = rng.vec_i8(len + offset);
            let ib_buf = rng.vec_i8(len + offset);
            let (ia, ib) = (&ia_buf[offset..], &ib_buf[offset..]);
            // Random values, then the extremes: -128 everywhere against 127 everywhere and
            // against itself.
            let lo = vec![-128i8; len];
            let hi = vec![127i8; len];
            for (x, y) in [(ia, ib), (&lo, &hi), (&lo, &lo), (&hi, &hi)] {
                assert_eq!(
                    kernels::dot_i8(x, y),
                    scalar::dot_i8(x, y),
                    "{}",
                    what("dot_i8")
                );
                assert_eq!(
                    kernels::l2sq_i8(x, y),
                    scalar::l2sq_i8(x, y),
                    "{}",
                    what("l2sq_i8")
                );
                close(
                    kernels::cosine_i8(x, y).unwrap(),
                    scalar::cosine_i8(x, y).unwrap() as f64,
                    2e-3,
                    &what("cosine_i8"),
                );
            }

            let ua_buf = rng.vec_u8(len + offset);
            let mut ub_buf = rng.vec_u8(len + offset);
            // Sparse bits in one operand, so Jaccard is neither 0 nor 1 throughout.
            for x in &mut ub_buf {
                *x &= rng.next_u64() as u8;
            }
            let (ua, ub) = (&ua_buf[offset..], &ub_buf[offset..]);
            assert_eq!(
                kernels::hamming(ua, ub),
                scalar::hamming(ua, ub),
                "{}",
                what("hamming")
            );
            close(
                kernels::jaccard(ua, ub).unwrap(),
                scalar::jaccard(ua, ub).unwrap() as f64,
                1e-6,
                &what("jaccard"),
            );
            // Zero vectors: cosine 1 for two, 0 for one (every element type).
            if len > 0 {
                let z = vec![0.0f32; len];
                let nz: Vec<f32> = (0..len).map(|i| 1.0 + i as f32).collect();
                assert_eq!(kernels::cosine_f32(&z, &z), Ok(1.0), "{}", what("cos 00"));
                assert_eq!(kernels::cosine_f32(&z, &nz), Ok(0.0), "{}", what("cos 0x"));
                assert_eq!(kernels::cosine_f32(&nz, &z), Ok(0.0), "{}", what("cos x0"));
                let hz = vec![F16::from_f32(0.0); len];
                let hnz: Vec<F16> = nz.iter().map(|&x| F16::from_f32(x)).collect();
                assert_eq!(
                    kernels::cosine_f16(&hz, &hz),
                    Ok(1.0),
                    "{}",
                    what("cos16 00")
                );
                assert_eq!(
                    kernels::cosine_f16(&hz, &hnz),
                    Ok(0.0),
                    "{}",
                    what("cos16 0x")
                );
                let iz = vec![0i8; len];
                let inz: Vec<i8> = (0..len).map(|i| (i % 100) as i8 + 1).collect();
                assert_eq!(kernels::cosine_i8(&iz, &iz), Ok(1.0), "{}", what("cos8 00"));
                assert_eq!(
                    kernels::cosine_i8(&iz, &inz),
                    Ok(0.0),
                    "{}",
                    what("cos8 0x")
                );
            }
            let zeros = vec![0u8; len];
            assert_eq!(
                kernels::jaccard(&zeros, &zeros),
                Ok(1.0),
                "{}",
                what("jaccard 0")
            );
            assert_eq!(kernels::hamming(&zeros, ua), scalar::hamming(&zeros, ua));
        }
    }
}

/// The f64 reference score of `q` against `v`, as the store defines it.
fn reference(metric: Metric, q: &[f32], v: &[f32]) -> f64 {
    let dot: f64 = q.iter().zip(v).map(|(&a, &b)| a as f64 * b as f64).sum();
    match metric {
        Metric::Dot => dot,
        Metric::Cosine => {
            let n = |x: &[f32]| x.iter().map(|&a| (a as f64).powi(2)).sum::<f64>().sqrt();
            (dot / (n(q) * n(v))).clamp(-1.0, 1.0)
        }
        Metric::L2Squared => -q
            .iter()
            .zip(v)
            .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
            .sum::<f64>(),
    }
}

/// A bound on the f32 rounding error of any of the store's formulas for this pair.
fn tolerance(metric: Metric, q: &[f32], v: &[f32]) -> f64 {
    let dim = q.len() as f64;
    let s: f64 = match metric {
        Metric::Dot => q
            .iter()
            .zip(v)
            .map(|(&a, &b)| (a as f64 * b as f64).abs())
            .sum(),
        Metric::Cosine => {
            let n = |x: &[f32]| x.iter().map(|&a| (a as f64).powi(2)).sum::<f64>().sqrt();
            q.iter()
                .zip(v)
                .map(|(&a, &b)| (a as f64 * b as f64).abs())
                .sum::<f64>()
                / (n(q) * n(v))
        }
        Metric::L2Squared => q
            .iter()
            .zip(v)
            .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
            .sum(),
    };
    (dim + 4.0) * 1.2e-7 * s + 1e-6
}

const METRICS: [Metric; 3] = [Metric::Cosine, Metric::Dot, Metric::L2Squared];

/// Checks every batch and single-query entry point of `store` (whose live rows, by id order,
/// are `live`) for the first `m` of `queries`.
fn check_store(
    store: &VectorStore,
    live: &[(rhospace_vectordb::VectorId, &[f32])],
    queries: &[f32],
    m: usize,
) {
    let dim = store.dim();
    let metric = store.metric();
    let qs = &queries[..m * dim];
    let ctx = format!("{metric:?} dim {dim} rows {} m {m}", live.len());
    let serial = store.similarity_matrix_with(qs, Execution::Serial).unwrap();
    let parallel = store
        .similarity_matrix_with(qs, Execution::Parallel)
        .unwrap();
    assert_eq!(serial, parallel, "{ctx}: serial vs parallel matrix");
    assert_eq!(serial.num_queries(), m, "{ctx}");
    let ids: Vec<_> = live.iter().map(|(id, _)| *id).collect();
    assert_eq!(serial.ids(), &ids[..], "{ctx}");
    assert_eq!(serial.as_slice().len(), m * live.len(), "{ctx}");
    for (c, (_, v)) in live.iter().enumerate() {
        for j in 0..m {
            let q = &qs[j * dim..(j + 1) * dim];
            let got = serial.get(j, c).unwrap();
            close(
                got,
                reference(metric, q, v),
                tolerance(metric, q, v),
                &format!("{ctx}: matrix ({j}, {c})"),
            );
        }
    }
    let k = 5;
    let batch = store.batch_top_k_with(qs, k, Execution::Serial).unwrap();
    let batch_par = store.batch_top_k_with(qs, k, Execution::Parallel).unwrap();
    assert_eq!(batch, batch_par, "{ctx}: serial vs parallel top-k");
    if m == 0 {
        assert!(batch.is_empty(), "{ctx}");
        return;
    }
    assert_eq!(batch.len(), m, "{ctx}");
    for (j, hits) in batch.iter().enumerate() {
        // The batch's top k is exactly the matrix's, ranked.
        let mut want: Vec<Hit> = ids
            .iter()
            .enumerate()
            .map(|(c, &id)| Hit {
                id,
                score: serial.get(j, c).unwrap(),
            })
            .collect();
        want.sort_by(Hit::rank_cmp);
        want.truncate(k);
        let bits = |h: &[Hit]| {
            h.iter()
                .map(|h| (h.id, h.score.to_bits()))
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(hits), bits(&want), "{ctx}: batch top-k of query {j}");
    }
}

/// Single-query paths for query `q`: full and pruned scans agree bit for bit, and match the
/// reference.
fn check_single(store: &VectorStore, live: &[(rhospace_vectordb::VectorId, &[f32])], q: &[f32]) {
    let metric = store.metric();
    let ctx = format!("{metric:?} dim {} rows {}", store.dim(), live.len());
    let k = 7;
    let full = store.top_k_with(q, k, Scan::Full).unwrap();
    let pruned = store.top_k_with(q, k, Scan::Pruned).unwrap();
    assert_eq!(full, pruned, "{ctx}: full vs pruned top-k");
    let mut all: Vec<Hit> = live
        .iter()
        .map(|&(id, _)| Hit {
            id,
            score: store.score(q, id).unwrap().unwrap(),
        })
        .collect();
    for (h, (_, v)) in all.iter().zip(live) {
        close(
            h.score,
            reference(metric, q, v),
            tolerance(metric, q, v),
            &ctx,
        );
    }
    all.sort_by(Hit::rank_cmp);
    let mut want = all.clone();
    want.truncate(k);
    assert_eq!(full, want, "{ctx}: top-k vs scores");
    if let Some(t) = all.get(all.len() / 2).map(|h| h.score) {
        let above_full = store.above_with(q, t, Scan::Full).unwrap();
        let above_pruned = store.above_with(q, t, Scan::Pruned).unwrap();
        assert_eq!(above_full, above_pruned, "{ctx}: above");
        let want: Vec<Hit> = all.iter().copied().filter(|h| h.score >= t).collect();
        assert_eq!(above_full, want, "{ctx}: above vs scores");
    }
}

#[test]
fn batch_and_single_queries_at_every_small_dimension_and_query_count() {
    let mut rng = Rng::new(11);
    let mut dims: Vec<usize> = (1..=67).collect();
    dims.extend([127, 128, 129, 170, 171, 256, 257, 385, 513]);
    for metric in METRICS {
        for &dim in &dims {
            let mut store = VectorStore::new(dim, metric).unwrap();
            let rows: Vec<Vec<f32>> = (0..31).map(|_| rng.vec_f32(dim)).collect();
            let mut ids = Vec::new();
            for r in &rows {
                ids.push(store.insert(r).unwrap());
            }
            // A tombstone in every other store.
            let dead = if dim % 2 == 0 {
                store.remove(ids[3]);
                Some(ids[3])
            } else {
                None
            };
            let live: Vec<_> = ids
                .iter()
                .zip(&rows)
                .filter(|(id, _)| Some(**id) != dead)
                .map(|(&id, r)| (id, &r[..]))
                .collect();
            let queries = rng.vec_f32(100 * dim);
            for m in query_counts() {
                check_store(&store, &live, &queries, m);
            }
            check_single(&store, &live, &queries[..dim]);
        }
    }
}

#[test]
fn batch_and_single_queries_around_blocks_tiles_and_chunks() {
    let mut rng = Rng::new(13);
    let counts = [
        0usize, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 13, 14, 15, 16, 27, 28, 29, 127, 128, 129, 255, 256,
        257, 1023, 1024, 1025, 1100,
    ];
    for metric in METRICS {
        for dim in [1usize, 2, 16, 17, 33] {
            let mut store = VectorStore::new(dim, metric).unwrap();
            let mut rows: Vec<(rhospace_vectordb::VectorId, Vec<f32>)> = Vec::new();
            let queries = rng.vec_f32(100 * dim);
            for &n in &counts {
                while rows.len() < n {
                    let v = rng.vec_f32(dim);
                    rows.push((store.insert(&v).unwrap(), v));
                }
                let live: Vec<_> = rows.iter().map(|(id, v)| (*id, &v[..])).collect();
                for m in [0usize, 1, 5, 16, 17, 33, 49, 64, 65, 100] {
                    check_store(&store, &live, &queries, m);
                }
                if n > 0 {
                    check_single(&store, &live, &queries[..dim]);
                }
            }
        }
    }
}

#[test]
fn quantized_top_k_scores_are_exact_at_small_dimensions() {
    let mut rng = Rng::new(17);
    for metric in METRICS {
        for dim in (1..=67).chain([127, 128, 129, 255, 256, 257]) {
            let mut store = VectorStore::new_quantized(dim, metric).unwrap();
            for _ in 0..40 {
                store.insert(&rng.vec_f32(dim)).unwrap();
            }
            let q = rng.vec_f32(dim);
            let hits = store.top_k_quantized(&q, 5, 12).unwrap();
            assert_eq!(hits.len(), 5);
            for h in &hits {
                assert_eq!(
                    Some(h.score),
                    store.score(&q, h.id).unwrap(),
                    "{metric:?} {dim}"
                );
            }
        }
    }
}
