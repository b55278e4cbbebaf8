//! Criterion benchmarks for rhospace-vectordb. Names: `<group>/<variant>/<size>`; the naive
//! scalar baseline sits in the same group as the optimised path. Data is seeded (SplitMix64).
//!
//! Run: `cargo bench -p rhospace-vectordb -- --warm-up-time 1 --measurement-time 3`

// `criterion_group!` generates an undocumented `pub fn benches`.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rhospace_vectordb::kernels::{self, scalar};
use rhospace_vectordb::{Execution, Hit, Metric, Scan, VectorStore};
use simsimd::SpatialSimilarity;

struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, dim: usize) -> Vec<f32> {
        (0..dim).map(|_| self.unit()).collect()
    }
    /// `n` vectors around 32 centres, flat.
    fn clustered(&mut self, n: usize, dim: usize) -> Vec<f32> {
        let centres: Vec<Vec<f32>> = (0..32).map(|_| self.vec(dim)).collect();
        let mut out = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let c = &centres[(self.next_u64() % 32) as usize];
            out.extend(c.iter().map(|&x| x + 0.35 * self.unit()));
        }
        out
    }
}

const DIM: usize = 384;

fn store_of(data: &[f32], dim: usize, quantized: bool) -> VectorStore {
    let mut s = if quantized {
        VectorStore::new_quantized(dim, Metric::Cosine)
    } else {
        VectorStore::new(dim, Metric::Cosine)
    }
    .expect("dim > 0");
    for v in data.chunks_exact(dim) {
        s.insert(v).expect("finite, non-zero");
    }
    s
}

/// Naive baseline: scalar cosine against every vector, full sort, truncate.
fn scalar_top_k(data: &[f32], dim: usize, q: &[f32], k: usize) -> Vec<(u64, f32)> {
    let mut all: Vec<(u64, f32)> = data
        .chunks_exact(dim)
        .enumerate()
        .map(|(i, v)| (i as u64, scalar::cosine_f32(q, v).unwrap_or(f32::NAN)))
        .collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

fn bench_cosine(c: &mut Criterion) {
    let mut g = c.benchmark_group("vectordb_cosine");
    let mut rng = Rng(1);
    for dim in [3usize, 100, 128, 384, 768, 1536] {
        let a = rng.vec(dim);
        let b = rng.vec(dim);
        let norm = |v: &[f32]| {
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter().map(|x| x / n).collect::<Vec<f32>>()
        };
        let (na, nb) = (norm(&a), norm(&b));
        g.throughput(Throughput::Elements(dim as u64));
        g.bench_with_input(BenchmarkId::new("single_pair", dim), &dim, |bn, _| {
            bn.iter(|| kernels::cosine_f32(black_box(&a), black_box(&b)))
        });
        g.bench_with_input(BenchmarkId::new("dot_prenormalised", dim), &dim, |bn, _| {
            bn.iter(|| kernels::dot_f32(black_box(&na), black_box(&nb)))
        });
        // simsimd's f32 dot, which sums in an order that depends on the CPU: the baseline for
        // our fixed-order `dot_f32` (the same bits everywhere).
        g.bench_with_input(BenchmarkId::new("simsimd_dot", dim), &dim, |bn, _| {
            bn.iter(|| <f32 as SpatialSimilarity>::dot(black_box(&na), black_box(&nb)))
        });
        g.bench_with_input(BenchmarkId::new("l2sq", dim), &dim, |bn, _| {
            bn.iter(|| kernels::l2sq_f32(black_box(&a), black_box(&b)))
        });
        g.bench_with_input(BenchmarkId::new("simsimd_l2sq", dim), &dim, |bn, _| {
            bn.iter(|| <f32 as SpatialSimilarity>::l2sq(black_box(&a), black_box(&b)))
        });
        g.bench_with_input(BenchmarkId::new("scalar", dim), &dim, |bn, _| {
            bn.iter(|| scalar::cosine_f32(black_box(&a), black_box(&b)))
        });
        let ours = kernels::cosine_f32(&a, &b).unwrap_or(f32::NAN);
        let reference = scalar::cosine_f32(&a, &b).unwrap_or(f32::NAN);
        assert!((ours - reference).abs() < 1e-4, "{ours} vs {reference}");
    }
    g.finish();
}

/// The 10th best score for `q` (a threshold that keeps about 10 hits).
fn got_threshold(store: &VectorStore, q: &[f32]) -> f32 {
    let top = store.top_k(q, 10).expect("valid query");
    top.last().map_or(0.0, |h| h.score)
}

fn bench_top_k(c: &mut Criterion) {
    let mut g = c.benchmark_group("vectordb_top_k");
    let mut rng = Rng(2);
    for n in [100usize, 1000, 10_000] {
        let data = rng.clustered(n, DIM);
        let store = store_of(&data, DIM, false);
        let q = rng.clustered(1, DIM);
        for k in [5usize, 10, 50] {
            g.bench_with_input(BenchmarkId::new(format!("top_{k}"), n), &n, |bn, _| {
                bn.iter(|| store.top_k(black_box(&q), k))
            });
            let got = store.top_k(&q, k).expect("valid query");
            let want = scalar_top_k(&data, DIM, &q, k);
            assert_eq!(got.len(), want.len());
            // Every scan path returns the same bits.
            for scan in [Scan::Full, Scan::Pruned] {
                assert_eq!(store.top_k_with(&q, k, scan).expect("valid query"), got);
            }
        }
        // The f32 full scan and the i8 pre-filter, each forced, beside `top_10` (the public path,
        // which picks one by size).
        g.bench_with_input(BenchmarkId::new("full_scan_10", n), &n, |bn, _| {
            bn.iter(|| store.top_k_with(black_box(&q), 10, Scan::Full))
        });
        g.bench_with_input(BenchmarkId::new("pruned_10", n), &n, |bn, _| {
            bn.iter(|| store.top_k_with(black_box(&q), 10, Scan::Pruned))
        });
        // Threshold search at the 10th best score.
        let t = got_threshold(&store, &q);
        g.bench_with_input(BenchmarkId::new("above_full", n), &n, |bn, _| {
            bn.iter(|| store.above_with(black_box(&q), t, Scan::Full))
        });
        g.bench_with_input(BenchmarkId::new("above", n), &n, |bn, _| {
            bn.iter(|| store.above(black_box(&q), t))
        });
        assert_eq!(
            store.above(&q, t).expect("valid"),
            store.above_with(&q, t, Scan::Full).expect("valid")
        );
        g.bench_with_input(BenchmarkId::new("scalar_sort", n), &n, |bn, _| {
            bn.iter(|| scalar_top_k(black_box(&data), DIM, black_box(&q), 10))
        });
    }
    g.finish();
}

fn bench_quantized(c: &mut Criterion) {
    let mut g = c.benchmark_group("vectordb_quantized");
    let mut rng = Rng(3);
    let n = 10_000;
    let data = rng.clustered(n, DIM);
    let exact = store_of(&data, DIM, false);
    let quant = store_of(&data, DIM, true);
    let queries = rng.clustered(50, DIM);
    let k = 10;
    for shortlist in [20usize, 40] {
        let mut found = 0;
        for q in queries.chunks_exact(DIM) {
            let want = exact.top_k(q, k).expect("valid");
            let got = quant.top_k_quantized(q, k, shortlist).expect("valid");
            found += got
                .iter()
                .filter(|h| want.iter().any(|w| w.id == h.id))
                .count();
        }
        eprintln!(
            "quantized recall@10 over {n} x {DIM}, shortlist {shortlist}: {:.3}",
            found as f64 / (50 * k) as f64
        );
    }
    let q = &queries[..DIM];
    g.bench_function(BenchmarkId::new("top_10_f32", n), |bn| {
        bn.iter(|| exact.top_k(black_box(q), k))
    });
    g.bench_function(BenchmarkId::new("top_10_i8_rescore40", n), |bn| {
        bn.iter(|| quant.top_k_quantized(black_box(q), k, 40))
    });
    g.finish();
}

/// Per-pair loop over all (query, vector) pairs with a given kernel.
fn pair_loop(queries: &[f32], data: &[f32], f: fn(&[f32], &[f32]) -> f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(queries.len() / DIM * data.len() / DIM);
    for v in data.chunks_exact(DIM) {
        for q in queries.chunks_exact(DIM) {
            out.push(f(q, v));
        }
    }
    out
}

fn bench_batch(c: &mut Criterion) {
    let mut g = c.benchmark_group("vectordb_batch_cosine");
    let mut rng = Rng(4);
    for (m, n) in [(10usize, 100usize), (10, 1000), (100, 1000)] {
        let name = format!("{m}x{n}");
        let data = rng.clustered(n, DIM);
        let queries = rng.clustered(m, DIM);
        let store = store_of(&data, DIM, false);
        g.throughput(Throughput::Elements((m * n) as u64));
        g.bench_function(BenchmarkId::from_parameter(&name), |bn| {
            bn.iter(|| store.similarity_matrix(black_box(&queries)))
        });
        g.bench_function(BenchmarkId::new("gemm_serial", &name), |bn| {
            bn.iter(|| store.similarity_matrix_with(black_box(&queries), Execution::Serial))
        });
        g.bench_function(BenchmarkId::new("gemm_parallel", &name), |bn| {
            bn.iter(|| store.similarity_matrix_with(black_box(&queries), Execution::Parallel))
        });
        g.bench_function(BenchmarkId::new("batch_top_10", &name), |bn| {
            bn.iter(|| store.batch_top_k(black_box(&queries), 10))
        });
        g.bench_function(BenchmarkId::new("pair_kernel_loop", &name), |bn| {
            bn.iter(|| {
                pair_loop(black_box(&queries), black_box(&data), |a, b| {
                    kernels::cosine_f32(a, b).unwrap_or(f32::NAN)
                })
            })
        });
        g.bench_function(BenchmarkId::new("scalar_pairs", &name), |bn| {
            bn.iter(|| {
                pair_loop(black_box(&queries), black_box(&data), |a, b| {
                    scalar::cosine_f32(a, b).unwrap_or(f32::NAN)
                })
            })
        });
        let mat = store.similarity_matrix(&queries).expect("valid");
        let reference = pair_loop(&queries, &data, |a, b| {
            scalar::cosine_f32(a, b).unwrap_or(f32::NAN)
        });
        for (x, y) in mat.as_slice().iter().zip(&reference) {
            assert!((x - y).abs() < 1e-4, "{x} vs {y}");
        }
        let top: Vec<Vec<Hit>> = store.batch_top_k(&queries, 10).expect("valid");
        assert_eq!(top.len(), m);
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_cosine,
    bench_top_k,
    bench_quantized,
    bench_batch
);
criterion_main!(benches);
