//! Exact, bound-pruned search: an i8 pre-pass that proves which rows cannot matter, then the
//! ordinary f32 scoring of the rest.
//!
//! # Algorithm
//!
//! Every stored row keeps, beside its f32 components, a *shadow*: i8 codes `c` with one scale
//! `s` (`ŷ = s · c`, symmetric, codes in ±127) approximating the row's scan form `y` (`y = x/‖x‖`
//! as the store scores it for cosine, i.e. `x · aux`; `y = x` otherwise), and two numbers
//! computed at insert in f64 and rounded up: `err ≥ ‖y − ŷ‖₂` and `norm ≥ ‖ŷ‖₂`. A query `p`
//! (already in scan form) is quantised the same way to `p̂ = s_q · c_q` with `err_q ≥ ‖p − p̂‖₂`.
//!
//! For each live row the pre-pass computes the exact integer `I = c_q · c` ([`dot_i8_rows`]) and
//! `A = s_q · s · I = p̂ · ŷ`. Since `p·y − p̂·ŷ = p·(y − ŷ) + (p − p̂)·ŷ`, Cauchy–Schwarz gives
//! `|p·y − A| ≤ ‖p‖·err + err_q·norm =: r`. The score the store *computes* differs from the
//! real `p·y` only by the rounding of the f32 kernel; for a length-`d` dot product or squared
//! distance evaluated in any summation order (FMA or not, f32 or wider accumulators, a final
//! f64→f32 conversion and, for cosine, the multiply by the stored inverse norm) that is at most
//! `γ·‖p‖·‖y‖` with `γ = 2(d+3)·2⁻²⁴` (the textbook `γₙ = nu/(1−nu)`, doubled), plus an absolute
//! `(d+2)·2⁻¹²⁵` per unit of scaling for underflow (enough even with flush-to-zero). So
//! `lo = A − r − η ≤ score ≤ A + r + η = hi` (f64 evaluation error of these few operations is
//! covered by a further relative `2⁻⁴⁰`). Per metric:
//!
//! | metric | computed score | bound used |
//! |---|---|---|
//! | cosine | `clamp(fl(p·x) · aux)` | `p·y ± (r + η)`, then clamped to `[-1, 1]` |
//! | dot | `fl(p·x)` | `p·x ± (r + η)` |
//! | squared L2 | `−fl(Σ(pᵢ − xᵢ)²)` | `D = ‖p‖² + ‖x‖² − 2p·x` from `p·x ± r` (with `2⁻²³` relative slack for the stored norms), then `−D·(1 ± γ) ∓ abs` |
//!
//! A row whose magnitudes could overflow f32 inside the kernel (`‖p‖·‖x‖` or `(‖p‖ + ‖x‖)²`
//! above `2¹²⁰`) or whose stored values are not finite gets no bound (`lo = −∞`, `hi = +∞`): it is
//! always rescored and never prunes another row. No metric needs a full-scan fallback.
//!
//! **Top-k.** Let `τ` be the k-th largest `lo` over live rows. At least `k` rows score `≥ τ`, so
//! a row with `hi < τ` scores strictly below `k` others and is not in the top k under any
//! tie-break. Every row with `hi ≥ τ` (this includes the `k` rows that define `τ`) is rescored
//! with the same [`VectorStore::score_row`] the full scan uses and offered to the same
//! [`TopK`]. The result is therefore bit-identical to the full scan (ids, order and scores).
//! `τ` only grows during the pass, so rows are kept as candidates against the running `τ` and
//! filtered by the final one.
//!
//! **Threshold.** A row with `hi < threshold` cannot reach the threshold; the others are
//! rescored exactly and kept if `score >= threshold`.
//!
//! # Costs and limits
//!
//! The shadow costs `dim + 12` bytes per row beside the `4·dim + 13` of the row itself (+26 % at
//! 384 dimensions) and O(dim) extra work per insert. The pre-pass reads a quarter of the bytes of
//! a full scan, plus O(1) f64 work per row; it pays from about a hundred rows
//! ([`PREFILTER_MIN_ROWS`]) and when `k` is small against the row count
//! ([`PREFILTER_ROWS_PER_K`]). Pruning power depends on
//! the data: the radius `r` grows with the quantisation error (about `0.01` for 384-dimensional
//! unit vectors), so when many scores lie within `2r` of the k-th best, many rows are rescored
//! (never fewer than `k`); the answer is exact regardless. The shadow is derived state: it never
//! enters an encoding, a hash, or an equality.

use crate::kernels::{dot_i8_rows, I8Backend, I8_ROWS_MAX_DIM};
use crate::store::{quantize, quantize_scaled, sum_sq_f64, Chunk, Metric, Prepared, VectorStore};
use crate::topk::{Hit, TopK};
use crate::VectorId;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// Live rows from which [`VectorStore::top_k`] and [`VectorStore::above`] run the exact i8
/// pre-filter instead of the full f32 scan; top-k also needs `k <= rows / PREFILTER_ROWS_PER_K`.
///
/// Measured on the reference machine (384-dimensional clustered data, cosine, best of 30 runs
/// of 320 queries, pruned time / full-scan time): top-5 at 50 rows 1.56, at 100 rows 0.92, at
/// 200 rows 0.64, at 1,000 rows 0.35; top-50 at 500 rows 1.05, at 1,000 rows 0.75.
///
/// ```
/// assert_eq!(rhospace_vectordb::PREFILTER_MIN_ROWS, 128);
/// ```
pub const PREFILTER_MIN_ROWS: usize = 128;

/// Top-k takes the pre-filter only when `k · PREFILTER_ROWS_PER_K <= rows`: with large `k`
/// more rows fall inside the bounds' margin of the k-th best, and the pre-pass stops paying
/// (see the measurements at [`PREFILTER_MIN_ROWS`]).
///
/// ```
/// assert_eq!(rhospace_vectordb::PREFILTER_ROWS_PER_K, 16);
/// ```
pub const PREFILTER_ROWS_PER_K: usize = 16;

/// f32 unit roundoff.
const U: f64 = 1.0 / (1u64 << 24) as f64;
/// Relative slack for the f64 evaluation of the bounds themselves.
const M: f64 = 1.0 / (1u64 << 40) as f64;
/// Above this magnitude a kernel could overflow f32; such rows get no bound.
const LIMIT: f64 = (1u128 << 120) as f64;
/// The bound of a row that cannot be bounded.
const UNBOUNDED: (f64, f64) = (f64::NEG_INFINITY, f64::INFINITY);

/// The smallest `f32` that is `>= x` (`+inf` above `f32::MAX`, NaN stays NaN).
fn f32_up(x: f64) -> f32 {
    let f = x as f32;
    if (f as f64) < x {
        f.next_up()
    } else {
        f
    }
}

/// An upper bound on `‖v‖₂`, as an f32, from the f64 norm [`crate::store::validate`] computed.
pub(crate) fn norm_upper(norm: f64, dim: usize) -> f32 {
    f32_up(norm * f64_sum_slack(dim))
}

/// `1 + (dim + 8)·2⁻⁵²`: covers the f64 rounding of a length-`dim` sum of squares and its root.
fn f64_sum_slack(dim: usize) -> f64 {
    1.0 + (dim as f64 + 8.0) * f64::EPSILON
}

/// Per-row shadow data beside the i8 codes.
///
/// Invariants (established by [`shadow_row`], never changed afterwards): with `y` the row's scan
/// form (see the module docs) and `c` its codes, `err ≥ ‖y − scale·c‖₂` and `norm ≥ ‖scale·c‖₂`,
/// both as exact real numbers; `scale > 0`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowShadow {
    /// Quantisation step: `ŷ = scale · code`.
    pub(crate) scale: f32,
    /// Upper bound on the quantisation error `‖y − ŷ‖₂`.
    pub(crate) err: f32,
    /// Upper bound on `‖ŷ‖₂`.
    pub(crate) norm: f32,
}

/// Quantises `v` (for cosine, `v · aux` with `aux = 1/‖v‖` as stored) by appending `dim` codes to
/// `codes`, and returns its [`RowShadow`].
pub(crate) fn shadow_row(v: &[f32], metric: Metric, aux: f32, codes: &mut Vec<i8>) -> RowShadow {
    let start = codes.len();
    let mul = if metric == Metric::Cosine { aux } else { 1.0 };
    let scale = quantize_scaled(v, mul, codes);
    let (s, w) = (scale as f64, mul as f64);
    // Four interleaved partial sums (one add chain each), combined in a fixed order. `x·w` and
    // `s·c` are exact in f64 (24 × 24 and 24 × 8 bit products), and so is every `c²` and their
    // sum (an integer below 2⁵³).
    let (mut e2, mut c2) = ([0.0f64; 4], [0.0f64; 4]);
    let codes = &codes[start..];
    let mut vs = v.chunks_exact(4);
    let mut cs = codes.chunks_exact(4);
    for (x4, c4) in (&mut vs).zip(&mut cs) {
        for j in 0..4 {
            let c = c4[j] as f64;
            let d = x4[j] as f64 * w - s * c;
            e2[j] += d * d;
            c2[j] += c * c;
        }
    }
    for (&x, &c) in vs.remainder().iter().zip(cs.remainder()) {
        let c = c as f64;
        let d = x as f64 * w - s * c;
        e2[0] += d * d;
        c2[0] += c * c;
    }
    let e2 = (e2[0] + e2[1]) + (e2[2] + e2[3]);
    let c2 = (c2[0] + c2[1]) + (c2[2] + c2[3]);
    let slack = f64_sum_slack(v.len());
    RowShadow {
        scale,
        err: f32_up(e2.sqrt() * slack),
        norm: f32_up(s * c2.sqrt() * slack),
    }
}

/// A prepared query's shadow and the per-query constants of the bounds.
pub(crate) struct QueryShadow {
    metric: Metric,
    codes: Vec<i8>,
    /// `s_q` (exact f32 value).
    scale: f64,
    /// `≥ ‖p − p̂‖₂`.
    err: f64,
    /// `≥ ‖p‖₂`.
    norm: f64,
    /// `‖p‖²` (relative error below `dim · 2⁻⁵³`).
    norm_sq: f64,
    /// Relative rounding bound `γ` of the f32 kernels.
    gamma: f64,
    /// Absolute rounding bound (underflow) of the f32 kernels, per unit of scaling.
    abs: f64,
}

impl QueryShadow {
    pub(crate) fn new(p: &Prepared, metric: Metric) -> Self {
        let dim = p.v.len();
        let mut codes = Vec::with_capacity(dim);
        let scale = quantize(&p.v, &mut codes) as f64;
        let e2: f64 =
            p.v.iter()
                .zip(&codes)
                .map(|(&x, &c)| {
                    let d = x as f64 - scale * c as f64;
                    d * d
                })
                .sum();
        let norm_sq = sum_sq_f64(&p.v);
        let slack = f64_sum_slack(dim);
        QueryShadow {
            metric,
            codes,
            scale,
            err: e2.sqrt() * slack,
            norm: norm_sq.sqrt() * slack,
            norm_sq,
            gamma: 2.0 * (dim as f64 + 3.0) * U,
            abs: (dim as f64 + 2.0) * f64::powi(2.0, -125),
        }
    }

    /// Whether every row of `chunk` can be bounded: no f32 kernel of this query against any of
    /// its rows can overflow (`‖p‖·‖x‖`, resp. `(‖p‖ + ‖x‖)²`, at most `2¹²⁰`), and every
    /// cosine row has a positive, finite inverse norm.
    #[inline]
    pub(crate) fn covers(&self, chunk: &Chunk) -> bool {
        let (nq, nx) = (self.norm, chunk.max_norm as f64);
        match self.metric {
            // `aux` is a finite `f32(1/‖x‖)` (checked at insert), and `‖x‖ <= nx <= 2¹²⁰` makes
            // it at least about `2⁻¹²⁰`, so positive.
            Metric::Cosine => nq * nx <= LIMIT && nx <= LIMIT,
            Metric::Dot => nq * nx <= LIMIT,
            Metric::L2Squared => (nq + nx) * (nq + nx) <= LIMIT,
        }
    }

    /// `(lo, hi)` with `lo ≤ score ≤ hi` for the score the store computes for this row
    /// ([`VectorStore::score_row`]), given the exact `idot = c_q · c`. Valid only for the rows
    /// of a chunk this query [`covers`](Self::covers).
    #[inline]
    pub(crate) fn bound(&self, row: &RowShadow, aux: f32, idot: i64) -> (f64, f64) {
        let (scale, err, norm) = (row.scale as f64, row.err as f64, row.norm as f64);
        let nq = self.norm;
        // `a = p̂·ŷ`; `r ≥ |p·y − a|`; `‖y‖ ≤ ‖ŷ‖ + ‖y − ŷ‖`.
        let a = self.scale * scale * idot as f64;
        let r = nq * err + self.err * norm;
        let ny = norm + err;
        match self.metric {
            Metric::Cosine => {
                let eta = self.gamma * nq * ny + self.abs * (aux as f64 + 1.0);
                let rad = (r + eta) * (1.0 + M) + M * a.abs();
                ((a - rad).clamp(-1.0, 1.0), (a + rad).clamp(-1.0, 1.0))
            }
            Metric::Dot => {
                let eta = self.gamma * nq * ny + self.abs * 2.0;
                let rad = (r + eta) * (1.0 + M) + M * a.abs();
                (a - rad, a + rad)
            }
            Metric::L2Squared => {
                // `aux` is ‖x‖² rounded to f32; `norm_sq` is ‖p‖² within dim·2⁻⁵³.
                let s = self.norm_sq + aux as f64;
                let eps = 2.0 * U * s + M * (s + 2.0 * a.abs() + 2.0 * r);
                let d_lo = (s - 2.0 * a - 2.0 * r - eps).max(0.0);
                let d_hi = s - 2.0 * a + 2.0 * r + eps;
                let abs = self.abs * 2.0;
                (
                    -(d_hi * (1.0 + self.gamma) + abs),
                    (abs - d_lo * (1.0 - self.gamma)).min(0.0),
                )
            }
        }
    }
}

/// `f64` ordered by [`f64::total_cmp`] (the bounds are never NaN, but the order must be total).
#[derive(Clone, Copy, PartialEq)]
struct Total(f64);
impl Eq for Total {}
impl PartialOrd for Total {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Total {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The k-th largest of the values offered so far (`-inf` until `k` were offered).
struct KthLargest {
    k: usize,
    heap: BinaryHeap<Reverse<Total>>,
}

impl KthLargest {
    fn new(k: usize) -> Self {
        KthLargest {
            k,
            heap: BinaryHeap::with_capacity(k.min(4096) + 1),
        }
    }

    #[inline]
    fn offer(&mut self, x: f64) {
        if self.heap.len() < self.k {
            self.heap.push(Reverse(Total(x)));
        } else if let Some(mut min) = self.heap.peek_mut() {
            if x > min.0 .0 {
                *min = Reverse(Total(x));
            }
        }
    }

    #[inline]
    fn get(&self) -> f64 {
        if self.heap.len() < self.k {
            f64::NEG_INFINITY
        } else {
            self.heap.peek().map_or(f64::NEG_INFINITY, |m| m.0 .0)
        }
    }
}

impl VectorStore {
    /// Whether the dimension allows the exact i8 pre-pass at all.
    pub(crate) fn prefilter_supported(&self) -> bool {
        self.dim() <= I8_ROWS_MAX_DIM
    }

    /// Calls `f(chunk, row, lo, hi)` for every live row, in id order, with bounds on its score
    /// (`(-inf, +inf)` for the rows of a chunk the query does not [cover](QueryShadow::covers)).
    /// `tau` is consulted before each row: rows with `hi < tau()` are skipped without a call.
    #[inline]
    fn bounded_rows(
        &self,
        p: &Prepared,
        mut tau: impl FnMut() -> f64,
        mut f: impl FnMut(usize, usize, f64, f64),
    ) {
        let dim = self.dim();
        let qs = QueryShadow::new(p, self.metric());
        let backend = I8Backend::detect();
        let mut dots = Vec::new();
        for (ci, chunk) in self.chunks.iter().enumerate() {
            let n = chunk.len();
            dots.resize(n, 0);
            let exact = dot_i8_rows(&qs.codes, &chunk.codes[..n * dim], &mut dots, backend);
            let covered = exact && qs.covers(chunk);
            let mut t = tau();
            for (row, &idot) in dots.iter().enumerate() {
                if chunk.dead > 0 && !chunk.live[row] {
                    continue;
                }
                let (lo, hi) = if covered {
                    qs.bound(&chunk.shadow[row], chunk.aux[row], idot)
                } else {
                    UNBOUNDED
                };
                if hi >= t {
                    f(ci, row, lo, hi);
                    t = tau();
                }
            }
        }
    }

    /// Top-k through the pre-filter; bit-identical to [`VectorStore::top_k_full`]. `k >= 1`.
    pub(crate) fn top_k_pruned(&self, p: &Prepared, k: usize) -> Vec<Hit> {
        let kth = std::cell::RefCell::new(KthLargest::new(k));
        let mut cands: Vec<(u32, u32, f64)> = Vec::new();
        // A skipped row has `lo <= hi < tau`, so it could not have raised the k-th lower bound
        // either; the running `tau` never exceeds the final one.
        self.bounded_rows(
            p,
            || kth.borrow().get(),
            |ci, row, lo, hi| {
                kth.borrow_mut().offer(lo);
                cands.push((ci as u32, row as u32, hi));
            },
        );
        let tau = kth.borrow().get();
        let mut top = TopK::new(k);
        for (ci, row, hi) in cands {
            if hi >= tau {
                let chunk = &self.chunks[ci as usize];
                let row = row as usize;
                top.push(Hit {
                    id: VectorId(chunk.ids[row]),
                    score: self.score_row(p, chunk, row),
                });
            }
        }
        top.into_sorted()
    }

    /// Every live row scoring `>= threshold`, in id order (unsorted), through the pre-filter;
    /// the same hits and scores as [`VectorStore::above_full`].
    pub(crate) fn above_pruned(&self, p: &Prepared, threshold: f32) -> Vec<Hit> {
        let mut hits = Vec::new();
        let t = threshold as f64;
        self.bounded_rows(
            p,
            || t,
            |ci, row, _lo, _hi| {
                let chunk = &self.chunks[ci];
                let score = self.score_row(p, chunk, row);
                if score >= threshold {
                    hits.push(Hit {
                        id: VectorId(chunk.ids[row]),
                        score,
                    });
                }
            },
        );
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// SplitMix64.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn unit(&mut self) -> f32 {
            ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const METRICS: [Metric; 3] = [Metric::Cosine, Metric::Dot, Metric::L2Squared];

    /// A vector of one of several adversarial families, all sharing `bases` where they repeat.
    fn vector(rng: &mut Rng, kind: usize, dim: usize, bases: &[Vec<f32>]) -> Vec<f32> {
        let base = &bases[rng.below(bases.len())];
        match kind {
            // Independent uniform.
            0 => (0..dim).map(|_| rng.unit()).collect(),
            // Exact duplicates of a few vectors: many equal scores.
            1 => base.clone(),
            // Near-duplicates: scores that differ in the last bits.
            2 => base
                .iter()
                .map(|&x| x + rng.unit() * 1e-6 * x.abs())
                .collect(),
            // Magnitudes spread over 40 decades.
            3 => {
                let e = rng.below(41) as i32 - 20;
                (0..dim).map(|_| rng.unit() * 10f32.powi(e)).collect()
            }
            // Small integers: exact ties and exact scores.
            4 => (0..dim).map(|_| rng.below(5) as f32 - 2.0).collect(),
            // Tiny and subnormal components.
            5 => (0..dim).map(|_| rng.unit() * 1e-38).collect(),
            // Huge components (near the f32 overflow edge).
            _ => (0..dim).map(|_| rng.unit() * 1e37).collect(),
        }
    }

    /// A store of `n` attempted inserts (invalid ones skipped), some removed, maybe compacted,
    /// plus `queries` valid queries of the same family.
    fn case(
        seed: u64,
        metric: Metric,
        dim: usize,
        n: usize,
        kind: usize,
        compact: bool,
    ) -> (VectorStore, Vec<Prepared>) {
        let mut rng = Rng(seed);
        let bases: Vec<Vec<f32>> = (0..3)
            .map(|_| (0..dim).map(|_| rng.unit()).collect())
            .collect();
        let mut store = VectorStore::new(dim, metric).unwrap();
        let mut ids = Vec::new();
        for _ in 0..n {
            if let Ok(id) = store.insert(&vector(&mut rng, kind, dim, &bases)) {
                ids.push(id);
            }
        }
        for id in &ids {
            if rng.below(5) == 0 {
                store.remove(*id);
            }
        }
        if compact {
            store.compact();
        }
        let mut queries = Vec::new();
        while queries.len() < 3 {
            if let Ok(p) = store.prepare(&vector(&mut rng, kind, dim, &bases)) {
                queries.push(p);
            }
        }
        (store, queries)
    }

    /// Every bound contains the score the store computes, and the pruned paths equal the full
    /// scans bit for bit.
    fn check(store: &VectorStore, p: &Prepared, ks: &[usize]) {
        let qs = QueryShadow::new(p, store.metric());
        let dim = store.dim();
        for chunk in &store.chunks {
            if !qs.covers(chunk) {
                continue;
            }
            for row in 0..chunk.len() {
                let mut dot = [0i64];
                let codes = &chunk.codes[row * dim..(row + 1) * dim];
                assert!(dot_i8_rows(&qs.codes, codes, &mut dot, I8Backend::Portable));
                let (lo, hi) = qs.bound(&chunk.shadow[row], chunk.aux[row], dot[0]);
                let s = store.score_row(p, chunk, row) as f64;
                assert!(
                    lo <= s && s <= hi,
                    "{:?}: {lo} <= {s} <= {hi}",
                    store.metric()
                );
            }
        }
        for &k in ks {
            assert_eq!(store.top_k_pruned(p, k), store.top_k_full(p, k), "k {k}");
        }
        let full = store.top_k_full(p, usize::MAX);
        let mut thresholds = vec![f32::NEG_INFINITY, f32::INFINITY, 0.0];
        thresholds.extend(full.iter().step_by(7).map(|h| h.score));
        for t in thresholds {
            assert_eq!(store.above_pruned(p, t), store.above_full(p, t), "t {t}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn pruned_search_equals_full_scan(
            seed in any::<u64>(),
            metric in 0usize..3,
            dim in 1usize..40,
            n in 0usize..200,
            kind in 0usize..7,
            compact in any::<bool>(),
        ) {
            let (store, queries) = case(seed, METRICS[metric], dim, n, kind, compact);
            let live = store.len();
            for p in &queries {
                check(&store, p, &[1, 2, 3, 10, live.max(1), live + 1, live + 7]);
            }
        }
    }

    /// The proptest above stays below 64 dimensions, where the f32 kernel sums only its 8-lane
    /// tail: the same adversarial families at dimensions that fill the 64-lane blocks (with and
    /// without a tail), where each term goes through the block lanes and all six folds.
    #[test]
    fn bounds_hold_across_the_lane_blocks() {
        for (i, &dim) in [63usize, 64, 65, 127, 128, 129, 200, 385, 1000]
            .iter()
            .enumerate()
        {
            for (m, metric) in METRICS.into_iter().enumerate() {
                for kind in 0..7 {
                    let seed = (i * 100 + m * 10 + kind) as u64;
                    let (store, queries) = case(seed, metric, dim, 150, kind, kind % 2 == 0);
                    let live = store.len();
                    for p in &queries {
                        check(&store, p, &[1, 2, 10, live + 1]);
                    }
                }
            }
        }
    }

    /// Clustered 384-dimensional data, as in the benchmarks, across chunk boundaries, with
    /// tombstones, then compacted.
    #[test]
    fn clustered_384_matches_full_scan_before_and_after_compaction() {
        for metric in METRICS {
            let mut rng = Rng(7);
            let dim = 384;
            let centres: Vec<Vec<f32>> = (0..8)
                .map(|_| (0..dim).map(|_| rng.unit()).collect())
                .collect();
            let mut store = VectorStore::new(dim, metric).unwrap();
            for _ in 0..2500 {
                let c = &centres[rng.below(8)];
                let v: Vec<f32> = c.iter().map(|&x| x + 0.35 * rng.unit()).collect();
                store.insert(&v).unwrap();
            }
            for id in 0..2500u64 {
                if rng.below(3) == 0 {
                    store.remove(VectorId(id));
                }
            }
            let queries: Vec<Prepared> = (0..4)
                .map(|_| {
                    let c = &centres[rng.below(8)];
                    let q: Vec<f32> = c.iter().map(|&x| x + 0.35 * rng.unit()).collect();
                    store.prepare(&q).unwrap()
                })
                .collect();
            for p in &queries {
                check(&store, p, &[1, 5, 10, 50, 400]);
            }
            store.compact();
            for p in &queries {
                check(&store, p, &[1, 5, 10, 50, 400]);
            }
        }
    }

    /// All rows equal: every score ties, the answer is the k smallest ids.
    #[test]
    fn all_equal_rows_tie_by_id() {
        for metric in METRICS {
            let mut store = VectorStore::new(5, metric).unwrap();
            for _ in 0..700 {
                store.insert(&[0.5, -1.0, 2.0, 0.25, 1.0]).unwrap();
            }
            let p = store.prepare(&[1.0, 0.5, -0.5, 2.0, 0.0]).unwrap();
            for k in [1, 10, 700, 701] {
                let got = store.top_k_pruned(&p, k);
                assert_eq!(got, store.top_k_full(&p, k));
                let ids: Vec<u64> = got.iter().map(|h| h.id.0).collect();
                assert_eq!(ids, (0..k.min(700) as u64).collect::<Vec<_>>());
            }
        }
    }

    /// On clustered data the pre-pass leaves few rows to rescore (the point of the exercise).
    #[test]
    fn pruning_is_effective_on_clustered_data() {
        let mut rng = Rng(11);
        let dim = 384;
        let centres: Vec<Vec<f32>> = (0..32)
            .map(|_| (0..dim).map(|_| rng.unit()).collect())
            .collect();
        let mut store = VectorStore::new(dim, Metric::Cosine).unwrap();
        for _ in 0..4000 {
            let c = &centres[rng.below(32)];
            let v: Vec<f32> = c.iter().map(|&x| x + 0.35 * rng.unit()).collect();
            store.insert(&v).unwrap();
        }
        let q: Vec<f32> = (0..dim).map(|_| rng.unit()).collect();
        let p = store.prepare(&q).unwrap();
        let mut kth = KthLargest::new(10);
        let mut bounds = Vec::new();
        store.bounded_rows(
            &p,
            || f64::NEG_INFINITY,
            |_, _, lo, hi| {
                kth.offer(lo);
                bounds.push(hi);
            },
        );
        assert_eq!(bounds.len(), 4000);
        let tau = kth.get();
        let rescored = bounds.iter().filter(|&&hi| hi >= tau).count();
        assert!(rescored < 400, "{rescored} of 4000 rows rescored");
    }

    /// Both i8 row kernels give the same exact integers as a plain i64 loop.
    #[test]
    fn i8_row_kernels_are_exact() {
        let mut rng = Rng(5);
        let mut backends = vec![I8Backend::Portable];
        if I8Backend::detect() == I8Backend::Vnni {
            backends.push(I8Backend::Vnni);
        }
        for dim in [1usize, 3, 63, 64, 65, 127, 128, 129, 384, 1000] {
            for n in [0usize, 1, 3, 4, 5, 9] {
                let code = |rng: &mut Rng| (rng.below(255) as i32 - 127) as i8;
                let q: Vec<i8> = (0..dim).map(|_| code(&mut rng)).collect();
                let mut rows: Vec<i8> = (0..n * dim).map(|_| code(&mut rng)).collect();
                if let Some(first) = rows.first_mut() {
                    *first = -127;
                }
                let want: Vec<i64> = rows
                    .chunks_exact(dim)
                    .map(|r| r.iter().zip(&q).map(|(&a, &b)| a as i64 * b as i64).sum())
                    .collect();
                for &b in &backends {
                    let mut out = vec![0i64; n];
                    assert!(dot_i8_rows(&q, &rows, &mut out, b));
                    assert_eq!(out, want, "{b:?} dim {dim} n {n}");
                }
            }
        }
    }
}
