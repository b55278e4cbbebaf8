//! Embedding storage and exact (plus optional quantized) similarity search for rhospace.
//!
//! # Algorithms
//!
//! * **Storage** ([`VectorStore`]): vectors of one fixed dimension in append-only *chunks* of
//!   [`CHUNK_CAPACITY`] rows, each chunk one flat row-major `f32` buffer behind an `Arc`
//!   (copy-on-write). Ids ([`VectorId`]) come from a counter in insertion order and are never
//!   reused; removal is a tombstone, [`VectorStore::compact`] reclaims the space and keeps ids.
//! * **Kernels** ([`kernels`]): cosine, dot and squared L2 on f32, f16 and i8, Hamming and
//!   Jaccard on bit-packed vectors; a scalar reference for each in [`kernels::scalar`]. The f32
//!   dot and squared L2 are our own fixed-order sums (64 lanes over full blocks of 64
//!   components and 8 over the tail, each folded in halves, no fused multiply-add; AVX-512, AVX2
//!   or baseline copies of one loop picked at run time), so **every score a store, a batch or a
//!   [`Query`] computes is the same bits on every CPU** (x86-64 and AArch64), as a tuple space
//!   that must reach the same COMMs on every validator needs. The f16, i8 and binary kernels go
//!   through `simsimd` (run-time SIMD dispatch); i8 and binary results are exact, f16 results
//!   may differ in the last bits between CPUs (no store path uses them).
//! * **Single queries**: exact. The full scan is one SIMD dot (or L2) per row. Cosine uses a
//!   pre-normalised query and each row's stored inverse norm (`cos = (q/‖q‖)·v · 1/‖v‖`), which
//!   measured faster than the cosine kernel. Top-k keeps a bounded heap of the k best.
//! * **Exact pre-filter** ([`Scan::Pruned`], chosen by [`Scan::Auto`] from
//!   [`PREFILTER_MIN_ROWS`] rows): every row also keeps an i8 *shadow* (codes, one scale, and a
//!   rigorous upper bound on its quantisation error, computed in f64 at insert). A query scans the
//!   shadows with an exact integer kernel (AVX-512 VNNI, four rows per block; portable Rust
//!   elsewhere) and gets, per row, an interval `[lo, hi]` that provably contains the f32 score the
//!   full scan would compute: Cauchy–Schwarz on the two quantisation errors plus a stated bound
//!   `2(d+3)·2⁻²⁴·‖q‖‖v‖` (+ an underflow term) on the f32 kernel's rounding, derived for cosine,
//!   dot and squared L2 alike. Top-k rescores, with the full scan's own f32 formula, only rows
//!   with `hi` at least the k-th largest `lo`; a threshold search only rows with
//!   `hi >= threshold`. Results are bit-identical to the full scan (ids, order, scores); rows
//!   whose magnitudes could overflow f32 get no bound and are always rescored.
//! * **Single rows** ([`Query`]): a validated, prepared query that scores rows kept elsewhere
//!   (a matcher's datum, the tuple space's VectorDB index) with the store's exact formula.
//! * **Batch queries** ([`VectorStore::batch_top_k`], [`VectorStore::similarity_matrix`]): a
//!   matrix product per fixed tile of [`TILE_ROWS`] rows (our register-blocked AVX-512 kernel,
//!   or our portable kernel with AVX2 and FMA, NEON, or plain Rust; each score one sequential
//!   fused multiply-add chain, the same bits on every backend), tiles spread over rayon above
//!   [`PARALLEL_MIN_WORK`].
//! * **Approximate quantized search** ([`VectorStore::top_k_quantized`]): on a store created
//!   with [`VectorStore::new_quantized`], a query scans the same i8 shadows with the i8 dot
//!   kernel, keeps a fixed-size shortlist by approximate score, and rescores it exactly in f32.
//!   Returned scores are always exact; only recall is approximate (use [`VectorStore::top_k`]
//!   for an exact answer at similar cost).
//!
//! # Scores
//!
//! Every query returns [`Hit`]s with a *score where higher is better*: cosine similarity for
//! [`Metric::Cosine`], the dot product for [`Metric::Dot`], the **negated** squared distance for
//! [`Metric::L2Squared`]. Threshold searches keep `score >= threshold`.
//!
//! # Guarantees
//!
//! * **Deterministic order**: results are sorted by score descending, then id ascending (a
//!   total order, [`Hit::rank_cmp`]); no hash-map order, clock or randomness is involved.
//! * **Thread-count independence**: batch results are identical for serial and parallel
//!   execution with any number of rayon threads (fixed tiling, order-independent merging).
//! * **Validation**: every insert and query is checked (dimension, NaN/±∞ components, zero
//!   vectors under cosine, `k = 0`, a dimension of 0); a failed call changes nothing. No public
//!   input panics.
//! * **Snapshots**: `clone()` shares every chunk; later writes to either copy never show in the
//!   other.
//!
//! # Limits
//!
//! * Search is exhaustive (no graph or IVF index): cost is linear in the number of rows. The
//!   pre-filter cuts the bytes read per row by 4 but prunes only what its bounds (radius about
//!   0.01 in cosine for 384-dimensional data) can exclude: when many scores lie that close to
//!   the k-th best, many rows are rescored (the answer stays exact).
//! * Batch (GEMM) and single-query scores of the same pair may differ in the last bits (one
//!   fused multiply-add chain against the fixed-order lanes), and so may order two hits whose
//!   scores are that close differently. Each path on its own gives the same bits on every CPU
//!   (see *Algorithms*); only the f16 kernels, which no store path uses, do not.
//! * A dot product whose true value overflows `f32` becomes `±inf`. (One whose f32 sums overflow
//!   although its true value does not, `inf - inf`, is recomputed in f64: the score is the true
//!   value rounded once.)
//!
//! # Complexity
//!
//! n = live rows, t = tombstones, d = dimension, m = queries in a batch, p = threads,
//! C = [`CHUNK_CAPACITY`].
//!
//! | operation | time | notes |
//! |---|---|---|
//! | [`VectorStore::clone`] | O((n + t) / C) | one `Arc` increment per chunk; no vector data copied |
//! | [`VectorStore::insert`] | O(d) amortised | + O(C · d) once if the last chunk is shared with a clone |
//! | [`VectorStore::remove`] | O(log n) | tombstone; + O(C · d) once if the chunk is shared |
//! | [`VectorStore::get`], [`VectorStore::score`] | O(log n), O(d + log n) | binary search on ids |
//! | [`VectorStore::compact`] | O(d · rows of chunks with tombstones) | untouched chunks stay shared |
//! | [`VectorStore::top_k`] | O((n + t) · d + n log k) | one thread; with the pre-filter (n ≥ [`PREFILTER_MIN_ROWS`]) d bytes per row + O(c · d) for c rescored rows |
//! | [`VectorStore::above`] | O((n + t) · d + h log h) | h = hits; pre-filtered like `top_k` |
//! | [`VectorStore::top_k_quantized`] | O((n + t) · d) on bytes + O(s · (d + log n)) | s = shortlist |
//! | [`VectorStore::batch_top_k`] | O(m · (n + t) · d / p + m · n log k) | GEMM tiles; selection O(m · n) compares + expected O(m · p · k log(n / k) log k) heap work |
//! | [`VectorStore::similarity_matrix`] | O(m · (n + t) · d / p) | O(m · n) output |
//!
//! Memory per row: `4·d` (f32 components) + 4 (inverse norm or squared norm) + 8 (id) + 1 (live
//! flag) bytes, plus the pre-filter's shadow: `d` (i8 codes) + 12 (scale, error bound, norm
//! bound) bytes, i.e. +26 % at d = 384 (1,549 → 1,945 bytes). The shadow is derived from the
//! f32 row and never part of any encoding or hash.
//!
//! Comparative note: a flat `Vec<f32>` without chunks would clone in O(n · d); the chunked layout
//! pays one extra indirection per 1,024 rows in scans (not measurable) to make snapshots cheap.
//!
//! # Example
//!
//! ```
//! use rhospace_vectordb::{Metric, VectorStore};
//! let mut store = VectorStore::new(3, Metric::Cosine)?;
//! let red = store.insert(&[1.0, 0.0, 0.0])?;
//! let pink = store.insert(&[1.0, 0.4, 0.4])?;
//! store.insert(&[0.0, 0.0, 1.0])?;
//!
//! let hits = store.top_k(&[0.9, 0.2, 0.1], 2)?;
//! assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), [red, pink]);
//! assert!(hits[0].score > 0.97 && hits[0].score <= 1.0);
//!
//! let close = store.above(&[0.9, 0.2, 0.1], 0.9)?;
//! assert_eq!(close.len(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(unsafe_code)]

mod batch;
mod error;
#[allow(unsafe_code)]
pub mod kernels;
// Run-time dispatch to `#[target_feature]` copies of one safe loop.
#[allow(unsafe_code)]
mod lanes;
mod prefilter;
mod query;
mod select;
mod store;
mod topk;

pub use batch::{Execution, ScoreMatrix, PARALLEL_MIN_WORK, TILE_ROWS};
pub use error::{ConfigError, QueryError, VectorError};
pub use prefilter::{PREFILTER_MIN_ROWS, PREFILTER_ROWS_PER_K};
pub use query::{check_row, Query};
pub use store::{Metric, Scan, VectorId, VectorStore, CHUNK_CAPACITY};
pub use topk::Hit;
