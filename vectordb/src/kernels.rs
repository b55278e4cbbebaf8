//! Similarity and distance kernels: the one place that chooses a SIMD backend.
//!
//! Every function here is a *pair kernel*: it compares two slices of the same length and returns
//! a number. The backend is [`simsimd`] 6 (C kernels picked at run time by CPU feature: AVX-512,
//! AVX2, NEON, SVE or a serial fallback). Swapping backends (e.g. to `numkong`) means editing this
//! file only; [`scalar`] keeps a plain-Rust reference for every kernel, used by the tests as the
//! oracle and by the benchmarks as the baseline.
//!
//! # Conventions (read this before comparing numbers)
//!
//! * **Similarities are returned, not distances.** simsimd returns the cosine *distance*
//!   `1 - cos`; [`cosine_f32`] and friends return the cosine *similarity*, clamped to `[-1, 1]`.
//!   [`jaccard`] returns the Jaccard *similarity* `|a ∧ b| / |a ∨ b|`.
//! * **Dot products and squared L2 distances are returned as they are** (`dot_*`, `l2sq_*`).
//!   The store turns L2 into a score by negating it, so "higher is better" holds for every metric.
//! * **Zero vectors:** the cosine similarity of two zero vectors is `1.0`; of a zero vector and a
//!   non-zero one, `0.0`. The Jaccard similarity of two empty bit sets is `1.0`.
//! * **Lengths:** every kernel returns [`LengthMismatch`] when the slices differ in length; none
//!   panics.
//! * **Precision:** f32 kernels accumulate in f32 lanes (simsimd on AVX-512) and cosine uses a
//!   refined reciprocal square root; results match [`scalar`] (which accumulates in f64) within
//!   about `1e-5 · Σ|aᵢbᵢ|` for dot/L2 and `1e-4` absolute for cosine. f16 inputs are widened to
//!   f32 inside the kernel. i8 dot and L2 are exact integers.
//! * **Determinism:** a kernel's result is a pure function of its inputs *on one CPU backend*.
//!   Two machines that dispatch to different SIMD widths may differ in the last bits of an f32
//!   result (the summation order differs); the i8, binary and scalar kernels are exact everywhere.
//!
//! # Choice by measurement
//!
//! Measured with `benches/vectordb.rs` on the project machine (Sapphire Rapids, AVX-512, two
//! shared cores, so numbers carry noise) at 384 dimensions: simsimd's f32 dot on pre-normalised
//! vectors about 19 ns, its f32 cosine about 33 ns, the scalar f64 reference about 1 µs. The
//! store therefore pre-computes each vector's inverse norm once and answers cosine queries with
//! the dot kernel on a pre-normalised query times that inverse norm (one multiply per vector),
//! never with the cosine kernel inside a scan. A portable fixed-order 32-lane Rust dot (which
//! would make f32 scores bit-identical across CPUs) was tried and measured about 3x slower than
//! simsimd's dot here, so it was not adopted.
//!
//! Batch scoring (`rows_times_queries`, crate-internal) is a matrix product. Measured on the raw
//! benchmark shape (1000 × 384 rows times 384 × 100 queries, f32, this machine, median µs, one
//! thread unless noted): `matrixmultiply` 0.3 `sgemm` per 256-row tile 676, in one call 652;
//! `gemm` 0.18 one thread 828, with rayon on 2 threads 486; our register-blocked AVX-512 kernel
//! (queries in lanes, rows read in place, 14 × 32 block) 602, on 2 threads 382; regrouped
//! panels (6 × 64 and 9 × 48 blocks, no lone 16-query panel) measured 9 % faster again in
//! `similarity_matrix` (serial, 100 × 1000, A/B best of 1000: 625 → 569 µs, loaded machine). `faer` was not
//! measured (it builds on `gemm`, and no AVX-512 path is enabled there on stable). So batches use
//! our kernel where AVX-512 exists and `matrixmultiply` elsewhere; our kernel also makes every
//! batch score one sequential FMA chain, independent of tiling and threads.

use simsimd::{BinarySimilarity, SpatialSimilarity};
use std::fmt;

/// The two slices handed to a kernel have different lengths.
///
/// ```
/// use rhospace_vectordb::kernels::{dot_f32, LengthMismatch};
/// assert_eq!(dot_f32(&[1.0], &[1.0, 2.0]), Err(LengthMismatch { left: 1, right: 2 }));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthMismatch {
    /// Length of the first slice.
    pub left: usize,
    /// Length of the second slice.
    pub right: usize,
}

impl fmt::Display for LengthMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kernel inputs differ in length: {} vs {}",
            self.left, self.right
        )
    }
}

impl std::error::Error for LengthMismatch {}

/// An IEEE 754 half-precision float, stored as its bit pattern.
///
/// Conversions are exact from `F16` to `f32`, and round-to-nearest-even from `f32` to `F16`
/// (overflow gives infinity; NaN stays NaN).
///
/// ```
/// use rhospace_vectordb::kernels::F16;
/// assert_eq!(F16::from_f32(1.5).to_f32(), 1.5);
/// assert_eq!(F16::from_f32(65520.0).to_f32(), f32::INFINITY);
/// ```
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct F16(pub u16);

impl F16 {
    /// Converts an `f32` to the nearest half-precision value (ties to even).
    ///
    /// ```
    /// use rhospace_vectordb::kernels::F16;
    /// assert_eq!(F16::from_f32(-2.0).0, 0xC000);
    /// ```
    pub fn from_f32(value: f32) -> Self {
        let x = value.to_bits();
        let sign = ((x >> 16) & 0x8000) as u16;
        let exp = ((x >> 23) & 0xff) as i32;
        let man = x & 0x007f_ffff;
        if exp == 0xff {
            // Infinity or NaN; keep NaN quiet and non-zero.
            let nan_bit = if man != 0 { 0x0200 } else { 0 };
            return F16(sign | 0x7c00 | nan_bit);
        }
        let e = exp - 127 + 15;
        if e >= 0x1f {
            return F16(sign | 0x7c00);
        }
        if e <= 0 {
            // Subnormal half (or zero): shift the full mantissa into place, rounding to even.
            if e < -10 {
                return F16(sign);
            }
            let m = man | 0x0080_0000;
            let shift = (14 - e) as u32;
            let half = 1u32 << (shift - 1);
            let rest = m & ((1u32 << shift) - 1);
            let mut h = m >> shift;
            if rest > half || (rest == half && (h & 1) == 1) {
                h += 1;
            }
            return F16(sign | h as u16);
        }
        let mut h = ((e as u32) << 10) | (man >> 13);
        let rest = man & 0x1fff;
        if rest > 0x1000 || (rest == 0x1000 && (h & 1) == 1) {
            // A carry into the exponent is correct, including the overflow to infinity.
            h += 1;
        }
        F16(sign | h as u16)
    }

    /// Widens to `f32` exactly.
    ///
    /// ```
    /// use rhospace_vectordb::kernels::F16;
    /// assert_eq!(F16(0x3C00).to_f32(), 1.0);
    /// ```
    pub fn to_f32(self) -> f32 {
        let h = self.0 as u32;
        let sign = (h & 0x8000) << 16;
        let exp = (h >> 10) & 0x1f;
        let man = h & 0x03ff;
        let bits = if exp == 0 {
            if man == 0 {
                sign
            } else {
                // Subnormal: value = man · 2^-24, exactly representable in f32.
                let v = man as f32 * (1.0 / 16_777_216.0);
                return if sign != 0 { -v } else { v };
            }
        } else if exp == 0x1f {
            sign | 0x7f80_0000 | (man << 13)
        } else {
            sign | ((exp + 127 - 15) << 23) | (man << 13)
        };
        f32::from_bits(bits)
    }
}

#[inline]
fn check(left: usize, right: usize) -> Result<(), LengthMismatch> {
    if left == right {
        Ok(())
    } else {
        Err(LengthMismatch { left, right })
    }
}

#[inline]
fn as_simsimd_f16(v: &[F16]) -> &[simsimd::f16] {
    // SAFETY: `F16` and `simsimd::f16` are both `#[repr(transparent)]` over `u16`, so they have
    // the same size, alignment and validity (every bit pattern is valid); the returned slice
    // borrows `v` for the same lifetime and covers the same number of elements.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<simsimd::f16>(), v.len()) }
}

#[inline]
fn similarity_from_cos_distance(d: f64) -> f32 {
    (1.0 - d).clamp(-1.0, 1.0) as f32
}

/// Dot product of two f32 vectors.
///
/// ```
/// use rhospace_vectordb::kernels::dot_f32;
/// assert_eq!(dot_f32(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]), Ok(32.0));
/// ```
#[inline]
pub fn dot_f32(a: &[f32], b: &[f32]) -> Result<f32, LengthMismatch> {
    check(a.len(), b.len())?;
    Ok(dot_f32_unchecked_len(a, b))
}

/// The store's hot-path dot product: lengths are equal by construction (debug-asserted); on a
/// mismatch it returns NaN instead of panicking.
#[inline]
pub(crate) fn dot_f32_unchecked_len(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    match <f32 as SpatialSimilarity>::dot(a, b) {
        Some(d) => d as f32,
        None => f32::NAN,
    }
}

/// Cosine similarity of two f32 vectors, in `[-1, 1]` (see the module conventions for zeros).
///
/// ```
/// use rhospace_vectordb::kernels::cosine_f32;
/// let s = cosine_f32(&[1.0, 0.0], &[1.0, 1.0]).unwrap();
/// assert!((s - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-4);
/// ```
#[inline]
pub fn cosine_f32(a: &[f32], b: &[f32]) -> Result<f32, LengthMismatch> {
    check(a.len(), b.len())?;
    let d = <f32 as SpatialSimilarity>::cos(a, b).unwrap_or(f64::NAN);
    Ok(similarity_from_cos_distance(d))
}

/// Squared Euclidean distance of two f32 vectors.
///
/// ```
/// use rhospace_vectordb::kernels::l2sq_f32;
/// assert_eq!(l2sq_f32(&[1.0, 2.0], &[4.0, 6.0]), Ok(25.0));
/// ```
#[inline]
pub fn l2sq_f32(a: &[f32], b: &[f32]) -> Result<f32, LengthMismatch> {
    check(a.len(), b.len())?;
    Ok(l2sq_f32_unchecked_len(a, b))
}

/// Hot-path squared L2: lengths equal by construction; NaN on a mismatch, never a panic.
#[inline]
pub(crate) fn l2sq_f32_unchecked_len(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    match <f32 as SpatialSimilarity>::l2sq(a, b) {
        Some(d) => d as f32,
        None => f32::NAN,
    }
}

/// Dot product of two half-precision vectors, computed in f32.
///
/// ```
/// use rhospace_vectordb::kernels::{dot_f16, F16};
/// let a = [F16::from_f32(1.0), F16::from_f32(2.0)];
/// let b = [F16::from_f32(3.0), F16::from_f32(0.5)];
/// assert_eq!(dot_f16(&a, &b), Ok(4.0));
/// ```
#[inline]
pub fn dot_f16(a: &[F16], b: &[F16]) -> Result<f32, LengthMismatch> {
    check(a.len(), b.len())?;
    let d = <simsimd::f16 as SpatialSimilarity>::dot(as_simsimd_f16(a), as_simsimd_f16(b));
    Ok(d.unwrap_or(f64::NAN) as f32)
}

/// Cosine similarity of two half-precision vectors, in `[-1, 1]`.
///
/// ```
/// use rhospace_vectordb::kernels::{cosine_f16, F16};
/// let a = [F16::from_f32(1.0), F16::from_f32(0.0)];
/// assert!((cosine_f16(&a, &a).unwrap() - 1.0).abs() < 1e-3);
/// ```
#[inline]
pub fn cosine_f16(a: &[F16], b: &[F16]) -> Result<f32, LengthMismatch> {
    check(a.len(), b.len())?;
    let d = <simsimd::f16 as SpatialSimilarity>::cos(as_simsimd_f16(a), as_simsimd_f16(b));
    Ok(similarity_from_cos_distance(d.unwrap_or(f64::NAN)))
}

/// Squared Euclidean distance of two half-precision vectors, computed in f32.
///
/// ```
/// use rhospace_vectordb::kernels::{l2sq_f16, F16};
/// let a = [F16::from_f32(1.0), F16::from_f32(2.0)];
/// let b = [F16::from_f32(4.0), F16::from_f32(6.0)];
/// assert_eq!(l2sq_f16(&a, &b), Ok(25.0));
/// ```
#[inline]
pub fn l2sq_f16(a: &[F16], b: &[F16]) -> Result<f32, LengthMismatch> {
    check(a.len(), b.len())?;
    let d = <simsimd::f16 as SpatialSimilarity>::l2sq(as_simsimd_f16(a), as_simsimd_f16(b));
    Ok(d.unwrap_or(f64::NAN) as f32)
}

/// Dot product of two i8 vectors (exact for fewer than 2^17 components).
///
/// ```
/// use rhospace_vectordb::kernels::dot_i8;
/// assert_eq!(dot_i8(&[1, -2, 3], &[4, 5, -6]), Ok(-24.0));
/// ```
#[inline]
pub fn dot_i8(a: &[i8], b: &[i8]) -> Result<f32, LengthMismatch> {
    check(a.len(), b.len())?;
    Ok(dot_i8_unchecked_len(a, b))
}

/// Hot-path i8 dot: lengths equal by construction; NaN on a mismatch, never a panic.
#[inline]
pub(crate) fn dot_i8_unchecked_len(a: &[i8], b: &[i8]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    match <i8 as SpatialSimilarity>::dot(a, b) {
        Some(d) => d as f32,
        None => f32::NAN,
    }
}

/// Cosine similarity of two i8 vectors, in `[-1, 1]`.
///
/// ```
/// use rhospace_vectordb::kernels::cosine_i8;
/// assert!((cosine_i8(&[3, 4], &[3, 4]).unwrap() - 1.0).abs() < 1e-3);
/// ```
#[inline]
pub fn cosine_i8(a: &[i8], b: &[i8]) -> Result<f32, LengthMismatch> {
    check(a.len(), b.len())?;
    let d = <i8 as SpatialSimilarity>::cos(a, b).unwrap_or(f64::NAN);
    Ok(similarity_from_cos_distance(d))
}

/// Squared Euclidean distance of two i8 vectors (exact).
///
/// ```
/// use rhospace_vectordb::kernels::l2sq_i8;
/// assert_eq!(l2sq_i8(&[-128, 0], &[127, 3]), Ok(255.0 * 255.0 + 9.0));
/// ```
#[inline]
pub fn l2sq_i8(a: &[i8], b: &[i8]) -> Result<f32, LengthMismatch> {
    check(a.len(), b.len())?;
    let d = <i8 as SpatialSimilarity>::l2sq(a, b).unwrap_or(f64::NAN);
    Ok(d as f32)
}

/// Hamming distance (number of differing bits) of two bit-packed vectors.
///
/// ```
/// use rhospace_vectordb::kernels::hamming;
/// assert_eq!(hamming(&[0b1010_1010, 0xff], &[0b0101_1010, 0x0f]), Ok(8));
/// ```
#[inline]
pub fn hamming(a: &[u8], b: &[u8]) -> Result<u32, LengthMismatch> {
    check(a.len(), b.len())?;
    let d = <u8 as BinarySimilarity>::hamming(a, b).unwrap_or(0.0);
    // The count is at most 8 · len and exact in f64; the cast cannot lose it for any
    // realistic length (< 2^29 bytes).
    Ok(d as u32)
}

/// Jaccard similarity `|a ∧ b| / |a ∨ b|` of two bit-packed vectors, in `[0, 1]`; two empty bit
/// sets have similarity `1.0`.
///
/// ```
/// use rhospace_vectordb::kernels::jaccard;
/// assert_eq!(jaccard(&[0b1100], &[0b0110]), Ok(1.0 / 3.0));
/// assert_eq!(jaccard(&[0], &[0]), Ok(1.0));
/// ```
#[inline]
pub fn jaccard(a: &[u8], b: &[u8]) -> Result<f32, LengthMismatch> {
    check(a.len(), b.len())?;
    let d = <u8 as BinarySimilarity>::jaccard(a, b).unwrap_or(1.0);
    if d >= 1.0 && a.iter().chain(b).all(|&x| x == 0) {
        // simsimd reports distance 1 for two empty sets; we define identical sets as similar.
        return Ok(1.0);
    }
    Ok((1.0 - d) as f32)
}

// ------------------------------------------------------------------------------------------------
// Batch kernel: stored rows times queries (a matrix product), used by the batch queries.

/// Which implementation [`rows_times_queries`] runs. Chosen once per batch by
/// [`GemmBackend::detect`]; the tests force each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GemmBackend {
    /// Our register-blocked AVX-512 kernel (x86-64 with `avx512f` at run time). Every output is
    /// one sequential chain of fused multiply-adds over the components in index order, so it is
    /// bit-identical to [`fma_dot_reference`] and independent of blocking, tiling and threads.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Avx512,
    /// `matrixmultiply::sgemm` (packed, cache-blocked; AVX2/FMA, NEON or scalar micro-kernels):
    /// its summation order is its own, so results match the reference only within rounding.
    Portable,
}

impl GemmBackend {
    /// The fastest backend this CPU supports.
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return GemmBackend::Avx512;
            }
        }
        GemmBackend::Portable
    }
}

/// A batch of `m` queries in the layout the chosen [`GemmBackend`] reads.
#[derive(Debug, Clone)]
pub(crate) struct PackedQueries {
    /// Number of queries.
    m: usize,
    /// Components per query.
    dim: usize,
    /// `m × dim` floats, row-major: query `j` at `j*dim..(j+1)*dim`. Always kept (the L2 path and
    /// the portable backend read it).
    flat: Vec<f32>,
    /// [`GemmBackend::Avx512`] only (empty otherwise): the queries in panels of [`PANEL`], each
    /// panel `dim × PANEL` floats, component-major: `panels[(p*dim + k)*PANEL + lane]` is
    /// component `k` of query `p*PANEL + lane`; the unused lanes of a last partial panel are 0.
    panels: Vec<f32>,
    backend: GemmBackend,
}

/// Queries per panel of the AVX-512 kernel: one 512-bit register of f32.
const PANEL: usize = 16;

impl PackedQueries {
    /// Takes `flat` (`m × dim`, row-major; a trailing partial query is ignored) and packs it for
    /// `backend`. `dim` must be at least 1 (a store's dimension always is); with 0, `m` is 0.
    pub(crate) fn new(flat: Vec<f32>, dim: usize, backend: GemmBackend) -> Self {
        let m = flat.len().checked_div(dim).unwrap_or(0);
        let mut panels = Vec::new();
        if backend == GemmBackend::Avx512 && m > 0 {
            let count = m.div_ceil(PANEL);
            panels = vec![0.0f32; count * dim * PANEL];
            for (j, q) in flat.chunks_exact(dim).enumerate() {
                let (p, lane) = (j / PANEL, j % PANEL);
                let panel = &mut panels[p * dim * PANEL..(p + 1) * dim * PANEL];
                for (k, &x) in q.iter().enumerate() {
                    panel[k * PANEL + lane] = x;
                }
            }
        }
        PackedQueries {
            m,
            dim,
            flat,
            panels,
            backend,
        }
    }

    /// Number of queries.
    pub(crate) fn len(&self) -> usize {
        self.m
    }

    /// The queries, `m × dim` row-major.
    pub(crate) fn flat(&self) -> &[f32] {
        &self.flat[..self.m * self.dim]
    }
}

/// `out[r*m + j] = rows[r] · query[j]` for every row `r` of `rows` (`n × dim`, row-major) and
/// every query `j` of `queries`; `out` is `n × m`, row-major, and is overwritten.
///
/// If the lengths do not fit together (`rows.len()` not a multiple of `dim`, or `out.len() !=
/// n·m`) — impossible for the crate's callers — `out` is filled with NaN instead of panicking.
pub(crate) fn rows_times_queries(rows: &[f32], queries: &PackedQueries, out: &mut [f32]) {
    let (m, dim) = (queries.m, queries.dim);
    let n = rows.len().checked_div(dim).unwrap_or(0);
    if dim == 0 || !rows.len().is_multiple_of(dim) || out.len() != n * m {
        debug_assert!(false, "rows_times_queries: inconsistent lengths");
        out.fill(f32::NAN);
        return;
    }
    if n == 0 || m == 0 {
        return;
    }
    match queries.backend {
        #[cfg(target_arch = "x86_64")]
        GemmBackend::Avx512 => {
            debug_assert_eq!(queries.panels.len(), m.div_ceil(PANEL) * dim * PANEL);
            if queries.panels.len() != m.div_ceil(PANEL) * dim * PANEL {
                out.fill(f32::NAN);
                return;
            }
            // SAFETY: `Avx512` is only ever produced by `detect` after `avx512f` was detected at
            // run time, or by tests that check the same before choosing it. Lengths are checked
            // above: `rows` is `n × dim`, `panels` is `ceil(m/16) × dim × 16`, `out` is `n × m`
            // and exclusively borrowed (so it aliases neither input); the kernel reads and writes
            // only inside those bounds (see `avx512::rows_times_queries`).
            unsafe {
                avx512::rows_times_queries(rows, dim, &queries.panels, m, out);
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        GemmBackend::Avx512 => sgemm_portable(rows, n, queries, out),
        GemmBackend::Portable => sgemm_portable(rows, n, queries, out),
    }
}

fn sgemm_portable(rows: &[f32], n: usize, queries: &PackedQueries, out: &mut [f32]) {
    let (m, dim) = (queries.m, queries.dim);
    let q = queries.flat();
    // SAFETY: `rows` is `n × dim` row-major (row stride `dim`, column stride 1); `q` is `m × dim`
    // row-major, read as the `dim × m` matrix Qᵀ (row stride 1, column stride `dim`); `out` is
    // `n × m` row-major and exclusively borrowed. The caller checked these lengths, so every
    // index the kernel forms lies inside the slices. beta = 0: `out` is written, never read.
    unsafe {
        matrixmultiply::sgemm(
            n,
            dim,
            m,
            1.0,
            rows.as_ptr(),
            dim as isize,
            1,
            q.as_ptr(),
            1,
            dim as isize,
            0.0,
            out.as_mut_ptr(),
            m as isize,
            1,
        );
    }
}

/// The exact arithmetic of [`GemmBackend::Avx512`] for one pair, in plain Rust: `acc = 0`, then
/// `acc = a[k].mul_add(b[k], acc)` for `k` in index order. Used by the tests as the bit-exact
/// oracle of the batch kernel.
#[cfg(test)]
pub(crate) fn fma_dot_reference(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .fold(0.0f32, |acc, (&x, &y)| x.mul_add(y, acc))
}

/// The AVX-512 batch kernel: the queries live in the 16 lanes of a register (one *panel*), a
/// stored component is broadcast to all lanes, and a block of rows × panels (6 × 4, 9 × 3,
/// 14 × 2 or 14 × 1: at most 27 accumulators + 4 panel registers + 1 broadcast of the 32 zmm
/// registers) is accumulated over all `dim` components before it is stored. Stored rows are read in place (no packing); only
/// the queries are packed, once per batch. Each output lane is one sequential FMA chain over
/// `k = 0..dim`, so the result does not depend on how rows or panels are blocked.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::PANEL;
    use std::arch::x86_64::*;

    /// Accumulates `R` rows (starting at `rows`, stride `dim`) against `P` consecutive panels
    /// (starting at `panels`) and stores the `R × (P·16)` results, clipped to the `m` real
    /// queries, at `out` (row stride `m`) from query `q0`.
    ///
    /// # Safety
    /// `avx512f` is available; `rows` points at `R × dim` readable floats; `panels` at
    /// `P × dim × 16`; for every `r < R`, `out + r·m + q0 .. out + r·m + min(m, q0 + P·16)` is
    /// writable; `q0 < m`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn block<const R: usize, const P: usize>(
        rows: *const f32,
        dim: usize,
        panels: *const f32,
        out: *mut f32,
        m: usize,
        q0: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); P]; R];
        // One base pointer per row: each broadcast becomes `[row + 4k]{1to16}` fused into its
        // FMA instead of the end of a chain of pointer additions (one per row per step). Neutral
        // in the measurements on its own; kept because it leaves the loop only loads and FMAs.
        // `black_box` keeps the compiler from re-deriving them from one another.
        // SAFETY: `r·dim <= (R - 1)·dim`, inside the `R × dim` rows.
        let row_at: [*const f32; R] =
            std::hint::black_box(std::array::from_fn(|r| unsafe { rows.add(r * dim) }));
        for k in 0..dim {
            let mut b = [_mm512_setzero_ps(); P];
            for (p, bp) in b.iter_mut().enumerate() {
                // SAFETY: `(p·dim + k)·16 + 15 < P·dim·16` floats from `panels`.
                *bp = unsafe { _mm512_loadu_ps(panels.add((p * dim + k) * PANEL)) };
            }
            for (acc_r, &row) in acc.iter_mut().zip(&row_at) {
                // SAFETY: `row + k` is component `k < dim` of a row inside the `R × dim` rows.
                let a = _mm512_set1_ps(unsafe { *row.add(k) });
                for (acc_rp, &bp) in acc_r.iter_mut().zip(&b) {
                    *acc_rp = _mm512_fmadd_ps(a, bp, *acc_rp);
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            for (p, &v) in acc_r.iter().enumerate() {
                let qs = q0 + p * PANEL;
                if qs >= m {
                    break;
                }
                // SAFETY: the stored lanes are queries `qs .. min(m, qs + 16)` of row `r`,
                // inside the writable range promised by the caller.
                unsafe {
                    let dst = out.add(r * m + qs);
                    if qs + PANEL <= m {
                        _mm512_storeu_ps(dst, v);
                    } else {
                        let mask: __mmask16 = ((1u32 << (m - qs)) - 1) as u16;
                        _mm512_mask_storeu_ps(dst, mask, v);
                    }
                }
            }
        }
    }

    /// Runs `block` over every row with `P` panels starting at panel `p`, `R` rows per block
    /// (`R · P` accumulators + `P` panel registers + 1 broadcast must fit the 32 zmm registers).
    ///
    /// # Safety
    /// As [`rows_times_queries`], and panels `p .. p + P` exist.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn panel_run<const P: usize, const R: usize>(
        rows: &[f32],
        dim: usize,
        panels: &[f32],
        p: usize,
        m: usize,
        out: &mut [f32],
    ) {
        let n = rows.len() / dim;
        let (rp, op) = (rows.as_ptr(), out.as_mut_ptr());
        // SAFETY (all calls below): panel offset `p·dim·16` with `P` panels lies inside
        // `panels`; row `r .. r + R` lies inside `rows` (`r + R <= n`); row `r` of `out` starts
        // at `r·m`, and the block writes columns `p·16 .. min(m, (p+P)·16)` of rows `< n`.
        let pp = unsafe { panels.as_ptr().add(p * dim * PANEL) };
        let q0 = p * PANEL;
        let mut r = 0;
        while r + R <= n {
            unsafe { block::<R, P>(rp.add(r * dim), dim, pp, op.add(r * m), m, q0) };
            r += R;
        }
        while r + 4 <= n {
            unsafe { block::<4, P>(rp.add(r * dim), dim, pp, op.add(r * m), m, q0) };
            r += 4;
        }
        while r < n {
            unsafe { block::<1, P>(rp.add(r * dim), dim, pp, op.add(r * m), m, q0) };
            r += 1;
        }
    }

    /// `out = rows · Qᵀ` for `rows` (`n × dim`) and the packed queries (`m` of them).
    ///
    /// # Safety
    /// `avx512f` is available; `dim >= 1`; `rows.len() == n·dim`; `panels.len() ==
    /// ceil(m/16)·dim·16`; `out.len() == n·m`; `m >= 1`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn rows_times_queries(
        rows: &[f32],
        dim: usize,
        panels: &[f32],
        m: usize,
        out: &mut [f32],
    ) {
        // Every row component loaded feeds `P` FMAs. The loop streams about one row component
        // per cycle here, so one panel (14 × 16, one FMA per load) ran at half the FMA peak and
        // cost 88 % of a pair; panels therefore go in groups of 4 (6 rows × 64 queries), 3
        // (9 × 48) or 2 (14 × 32), a group of 1 only when there is one panel in all. For
        // 100 queries (7 panels): 4 + 3 instead of 2 + 2 + 2 + 1.
        let mut left = m.div_ceil(PANEL);
        let mut p = 0;
        while left > 0 {
            let take = match left {
                5 => 3,
                l => l.min(4),
            };
            // SAFETY: panels `p .. p + take` exist (`take <= left`); the rest is the caller's
            // contract.
            unsafe {
                match take {
                    4 => panel_run::<4, 6>(rows, dim, panels, p, m, out),
                    3 => panel_run::<3, 9>(rows, dim, panels, p, m, out),
                    2 => panel_run::<2, 14>(rows, dim, panels, p, m, out),
                    _ => panel_run::<1, 14>(rows, dim, panels, p, m, out),
                }
            }
            p += take;
            left -= take;
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Row-batch i8 kernel: one i8 query against many i8 rows, exact integer results. Used by the
// exact pre-filter (`crate::prefilter`), which needs the integer dot products *exactly*.

/// Largest dimension [`dot_i8_rows`] is exact for: every partial sum stays inside `i32`
/// (`255 · 127 · 65536 < 2³¹`, the bound of the AVX-512 VNNI path's offset trick).
pub(crate) const I8_ROWS_MAX_DIM: usize = 1 << 16;

/// Which implementation [`dot_i8_rows`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum I8Backend {
    /// AVX-512 VNNI (`vpdpbusd`), four rows per register block.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Vnni,
    /// Plain Rust, `i32` accumulation (the compiler vectorises it).
    Portable,
}

impl I8Backend {
    /// The fastest backend this CPU supports.
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vnni")
            {
                return I8Backend::Vnni;
            }
        }
        I8Backend::Portable
    }
}

/// `out[r] = Σₖ query[k] · rows[r·dim + k]` exactly, for every row `r` of `rows` (`dim =
/// query.len()`), with `backend`. Codes must lie in `[-127, 127]` (the store's quantiser never
/// produces -128) and `dim <= I8_ROWS_MAX_DIM`; under those conditions both backends return the
/// same exact integers.
///
/// Returns `true`. Inconsistent lengths (`dim == 0`, `rows.len()` not a multiple of `dim`,
/// `out.len()` not the row count) or a `dim` above the limit — impossible for the crate's
/// callers — return `false` with `out` unspecified instead of panicking; callers then use no
/// bound for those rows.
#[must_use]
pub(crate) fn dot_i8_rows(query: &[i8], rows: &[i8], out: &mut [i64], backend: I8Backend) -> bool {
    let dim = query.len();
    if dim == 0
        || dim > I8_ROWS_MAX_DIM
        || !rows.len().is_multiple_of(dim)
        || out.len() != rows.len() / dim
    {
        debug_assert!(false, "dot_i8_rows: inconsistent lengths");
        return false;
    }
    match backend {
        #[cfg(target_arch = "x86_64")]
        I8Backend::Vnni => {
            // SAFETY: `Vnni` is only produced by `detect` after `avx512f`, `avx512bw` and
            // `avx512vnni` were detected at run time (tests check the same before forcing it).
            // Lengths were checked above: `rows` holds `out.len()` rows of `dim` codes.
            unsafe { vnni::dot_i8_rows(query, rows, out) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        I8Backend::Vnni => dot_i8_rows_portable(query, rows, out),
        I8Backend::Portable => dot_i8_rows_portable(query, rows, out),
    }
    true
}

fn dot_i8_rows_portable(query: &[i8], rows: &[i8], out: &mut [i64]) {
    for (o, row) in out.iter_mut().zip(rows.chunks_exact(query.len())) {
        // |term| <= 127² and dim <= 2¹⁶, so the i32 sum cannot overflow.
        let s: i32 = row
            .iter()
            .zip(query)
            .map(|(&x, &q)| x as i32 * q as i32)
            .sum();
        *o = s as i64;
    }
}

/// The AVX-512 VNNI row kernel. `vpdpbusd` multiplies *unsigned* bytes by signed bytes, so each
/// row byte is offset by 128 (`x ^ 0x80` reinterpreted as unsigned is `x + 128`) and the
/// correction `128 · Σ query` is subtracted once per row. Four rows share each query load.
#[cfg(target_arch = "x86_64")]
mod vnni {
    use std::arch::x86_64::*;

    /// Bytes per block (one zmm register).
    const BLOCK: usize = 64;

    /// Sums the 16 i32 lanes of `v` as i64 (exact).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn reduce(v: __m512i) -> i64 {
        let lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(v));
        let hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64::<1>(v));
        _mm512_reduce_add_epi64(_mm512_add_epi64(lo, hi))
    }

    /// Loads block `j` of a row or query: bytes `j·64 .. min(dim, j·64 + 64)`, zeros beyond.
    ///
    /// # Safety
    /// `p` points at `dim` readable bytes and `j·64 < dim`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn load(p: *const i8, dim: usize, j: usize) -> __m512i {
        let start = j * BLOCK;
        let left = dim - start;
        if left >= BLOCK {
            // SAFETY: bytes `start .. start + 64` lie inside the `dim` readable bytes.
            unsafe { _mm512_loadu_si512(p.add(start).cast()) }
        } else {
            let mask: __mmask64 = (1u64 << left) - 1;
            // SAFETY: the masked load touches only the `left` bytes inside the row.
            unsafe { _mm512_maskz_loadu_epi8(mask, p.add(start)) }
        }
    }

    /// `R` rows from `rows` (stride `dim`) against `query`; results (before the offset
    /// correction) into `out[0..R]`.
    ///
    /// # Safety
    /// The CPU has `avx512f`, `avx512bw`, `avx512vnni`; `rows` points at `R · dim` readable
    /// bytes; `query.len() == dim >= 1`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn block<const R: usize>(query: &[i8], rows: *const i8, dim: usize, out: &mut [i64; R]) {
        let flip = _mm512_set1_epi8(-128);
        let mut acc = [_mm512_setzero_si512(); R];
        for j in 0..dim.div_ceil(BLOCK) {
            // SAFETY: `query` has `dim` bytes and `j·64 < dim`.
            let q = unsafe { load(query.as_ptr(), dim, j) };
            for (r, a) in acc.iter_mut().enumerate() {
                // SAFETY: row `r < R` starts at `r·dim`, inside the `R·dim` readable bytes.
                let x = unsafe { load(rows.add(r * dim), dim, j) };
                // Lanes past `dim` hold 0 in `q`, so their offset row byte (128) adds nothing.
                *a = _mm512_dpbusd_epi32(*a, _mm512_xor_si512(x, flip), q);
            }
        }
        for (o, &a) in out.iter_mut().zip(&acc) {
            *o = reduce(a);
        }
    }

    /// See [`super::dot_i8_rows`].
    ///
    /// # Safety
    /// The CPU has `avx512f`, `avx512bw`, `avx512vnni`; `1 <= query.len() <= 2¹⁶`;
    /// `rows.len() == out.len() · query.len()`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn dot_i8_rows(query: &[i8], rows: &[i8], out: &mut [i64]) {
        let dim = query.len();
        let correction = 128 * query.iter().map(|&q| q as i64).sum::<i64>();
        let n = out.len();
        let p = rows.as_ptr();
        let mut r = 0;
        while r + 4 <= n {
            let mut o = [0i64; 4];
            // SAFETY: rows `r .. r + 4` lie inside `rows` (`r + 4 <= n`).
            unsafe { block::<4>(query, p.add(r * dim), dim, &mut o) };
            for (dst, v) in out[r..r + 4].iter_mut().zip(o) {
                *dst = v - correction;
            }
            r += 4;
        }
        while r < n {
            let mut o = [0i64; 1];
            // SAFETY: row `r < n` lies inside `rows`.
            unsafe { block::<1>(query, p.add(r * dim), dim, &mut o) };
            out[r] = o[0] - correction;
            r += 1;
        }
    }
}

/// Plain-Rust reference kernels: obviously-correct loops that accumulate in f64.
///
/// They follow exactly the conventions of the parent module (similarities, zero vectors, empty
/// bit sets, [`LengthMismatch`]). Tests compare every SIMD kernel against these; benchmarks
/// use them as the naive baseline.
pub mod scalar {
    use super::{check, LengthMismatch, F16};

    fn dot64(a: impl Iterator<Item = f64>, b: impl Iterator<Item = f64>) -> f64 {
        a.zip(b).map(|(x, y)| x * y).sum()
    }

    fn cosine64(ab: f64, aa: f64, bb: f64) -> f32 {
        if aa == 0.0 && bb == 0.0 {
            return 1.0;
        }
        if aa == 0.0 || bb == 0.0 {
            return 0.0;
        }
        (ab / (aa.sqrt() * bb.sqrt())).clamp(-1.0, 1.0) as f32
    }

    fn l2sq64(a: impl Iterator<Item = f64>, b: impl Iterator<Item = f64>) -> f64 {
        a.zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
    }

    /// Reference f32 dot product.
    ///
    /// ```
    /// use rhospace_vectordb::kernels::scalar;
    /// assert_eq!(scalar::dot_f32(&[1.0, 2.0], &[3.0, 4.0]), Ok(11.0));
    /// ```
    pub fn dot_f32(a: &[f32], b: &[f32]) -> Result<f32, LengthMismatch> {
        check(a.len(), b.len())?;
        Ok(dot64(a.iter().map(|&x| x as f64), b.iter().map(|&x| x as f64)) as f32)
    }

    /// Reference f32 cosine similarity.
    ///
    /// ```
    /// use rhospace_vectordb::kernels::scalar;
    /// assert_eq!(scalar::cosine_f32(&[2.0, 0.0], &[5.0, 0.0]), Ok(1.0));
    /// ```
    pub fn cosine_f32(a: &[f32], b: &[f32]) -> Result<f32, LengthMismatch> {
        check(a.len(), b.len())?;
        let f = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
        let (a, b) = (f(a), f(b));
        let ab = dot64(a.iter().copied(), b.iter().copied());
        let aa = dot64(a.iter().copied(), a.iter().copied());
        let bb = dot64(b.iter().copied(), b.iter().copied());
        Ok(cosine64(ab, aa, bb))
    }

    /// Reference f32 squared Euclidean distance.
    ///
    /// ```
    /// use rhospace_vectordb::kernels::scalar;
    /// assert_eq!(scalar::l2sq_f32(&[0.0, 0.0], &[3.0, 4.0]), Ok(25.0));
    /// ```
    pub fn l2sq_f32(a: &[f32], b: &[f32]) -> Result<f32, LengthMismatch> {
        check(a.len(), b.len())?;
        Ok(l2sq64(a.iter().map(|&x| x as f64), b.iter().map(|&x| x as f64)) as f32)
    }

    fn widen16(v: &[F16]) -> Vec<f32> {
        v.iter().map(|x| x.to_f32()).collect()
    }

    /// Reference half-precision dot product.
    ///
    /// ```
    /// use rhospace_vectordb::kernels::{scalar, F16};
    /// let a = [F16::from_f32(2.0)];
    /// assert_eq!(scalar::dot_f16(&a, &a), Ok(4.0));
    /// ```
    pub fn dot_f16(a: &[F16], b: &[F16]) -> Result<f32, LengthMismatch> {
        check(a.len(), b.len())?;
        dot_f32(&widen16(a), &widen16(b))
    }

    /// Reference half-precision cosine similarity.
    ///
    /// ```
    /// use rhospace_vectordb::kernels::{scalar, F16};
    /// let a = [F16::from_f32(2.0)];
    /// assert_eq!(scalar::cosine_f16(&a, &a), Ok(1.0));
    /// ```
    pub fn cosine_f16(a: &[F16], b: &[F16]) -> Result<f32, LengthMismatch> {
        check(a.len(), b.len())?;
        cosine_f32(&widen16(a), &widen16(b))
    }

    /// Reference half-precision squared Euclidean distance.
    ///
    /// ```
    /// use rhospace_vectordb::kernels::{scalar, F16};
    /// let a = [F16::from_f32(2.0)];
    /// let b = [F16::from_f32(5.0)];
    /// assert_eq!(scalar::l2sq_f16(&a, &b), Ok(9.0));
    /// ```
    pub fn l2sq_f16(a: &[F16], b: &[F16]) -> Result<f32, LengthMismatch> {
        check(a.len(), b.len())?;
        l2sq_f32(&widen16(a), &widen16(b))
    }

    /// Reference i8 dot product.
    ///
    /// ```
    /// use rhospace_vectordb::kernels::scalar;
    /// assert_eq!(scalar::dot_i8(&[-128, 2], &[-128, 3]), Ok(16390.0));
    /// ```
    pub fn dot_i8(a: &[i8], b: &[i8]) -> Result<f32, LengthMismatch> {
        check(a.len(), b.len())?;
        let s: i64 = a.iter().zip(b).map(|(&x, &y)| x as i64 * y as i64).sum();
        Ok(s as f32)
    }

    /// Reference i8 cosine similarity.
    ///
    /// ```
    /// use rhospace_vectordb::kernels::scalar;
    /// assert_eq!(scalar::cosine_i8(&[1, 0], &[0, 1]), Ok(0.0));
    /// ```
    pub fn cosine_i8(a: &[i8], b: &[i8]) -> Result<f32, LengthMismatch> {
        check(a.len(), b.len())?;
        let f = |v: &[i8]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
        let (a, b) = (f(a), f(b));
        let ab = dot64(a.iter().copied(), b.iter().copied());
        let aa = dot64(a.iter().copied(), a.iter().copied());
        let bb = dot64(b.iter().copied(), b.iter().copied());
        Ok(cosine64(ab, aa, bb))
    }

    /// Reference i8 squared Euclidean distance.
    ///
    /// ```
    /// use rhospace_vectordb::kernels::scalar;
    /// assert_eq!(scalar::l2sq_i8(&[-128], &[127]), Ok(65025.0));
    /// ```
    pub fn l2sq_i8(a: &[i8], b: &[i8]) -> Result<f32, LengthMismatch> {
        check(a.len(), b.len())?;
        let s: i64 = a
            .iter()
            .zip(b)
            .map(|(&x, &y)| (x as i64 - y as i64) * (x as i64 - y as i64))
            .sum();
        Ok(s as f32)
    }

    /// Reference Hamming distance of bit-packed vectors.
    ///
    /// ```
    /// use rhospace_vectordb::kernels::scalar;
    /// assert_eq!(scalar::hamming(&[0xff], &[0x00]), Ok(8));
    /// ```
    pub fn hamming(a: &[u8], b: &[u8]) -> Result<u32, LengthMismatch> {
        check(a.len(), b.len())?;
        Ok(a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum())
    }

    /// Reference Jaccard similarity of bit-packed vectors (two empty sets: `1.0`).
    ///
    /// ```
    /// use rhospace_vectordb::kernels::scalar;
    /// assert_eq!(scalar::jaccard(&[0b11], &[0b01]), Ok(0.5));
    /// ```
    pub fn jaccard(a: &[u8], b: &[u8]) -> Result<f32, LengthMismatch> {
        check(a.len(), b.len())?;
        let inter: u64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x & y).count_ones() as u64)
            .sum();
        let union: u64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x | y).count_ones() as u64)
            .sum();
        if union == 0 {
            return Ok(1.0);
        }
        Ok((inter as f64 / union as f64) as f32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64 in [-1, 1).
    fn data(seed: u64, len: usize) -> Vec<f32> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = s;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^= z >> 31;
                ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn backends() -> Vec<GemmBackend> {
        let mut b = vec![GemmBackend::Portable];
        if GemmBackend::detect() == GemmBackend::Avx512 {
            b.push(GemmBackend::Avx512);
        }
        b
    }

    /// Every backend against the references, on shapes that are not multiples of the register
    /// blocks (14, 9, 6, 4 rows; groups of 1 to 4 panels of 16 queries): AVX-512 bit-identical
    /// to the sequential FMA chain; the portable backend within `1e-5 · Σ|aᵢbᵢ|` of the f64
    /// reference.
    #[test]
    fn rows_times_queries_matches_references() {
        for &dim in &[1usize, 3, 15, 16, 17, 33, 384, 385] {
            for &n in &[0usize, 1, 3, 4, 13, 14, 15, 19, 29, 57] {
                for &m in &[
                    1usize, 2, 15, 16, 17, 31, 32, 33, 48, 64, 65, 96, 100, 129, 144,
                ] {
                    let rows = data((dim * 1000 + n) as u64, n * dim);
                    let flat = data((dim * 7 + m) as u64, m * dim);
                    for backend in backends() {
                        let packed = PackedQueries::new(flat.clone(), dim, backend);
                        assert_eq!(packed.len(), m);
                        let mut out = vec![f32::NAN; n * m];
                        rows_times_queries(&rows, &packed, &mut out);
                        for (r, row) in rows.chunks_exact(dim).enumerate() {
                            for (j, q) in flat.chunks_exact(dim).enumerate() {
                                let got = out[r * m + j];
                                if backend == GemmBackend::Avx512 {
                                    let want = fma_dot_reference(row, q);
                                    assert_eq!(
                                        got.to_bits(),
                                        want.to_bits(),
                                        "dim {dim} n {n} m {m} at ({r}, {j})"
                                    );
                                } else {
                                    let want = scalar::dot_f32(row, q).unwrap_or(f32::NAN);
                                    let scale: f32 =
                                        row.iter().zip(q).map(|(a, b)| (a * b).abs()).sum();
                                    assert!(
                                        (got - want).abs() <= 1e-5 * scale.max(1e-30),
                                        "{backend:?} dim {dim} n {n} m {m}: {got} vs {want}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Inconsistent lengths never panic (release) nor read out of bounds: the output is NaN.
    #[test]
    #[cfg(not(debug_assertions))]
    fn rows_times_queries_rejects_inconsistent_lengths() {
        let packed = PackedQueries::new(vec![1.0; 6], 3, GemmBackend::detect());
        let mut out = vec![0.0; 3];
        rows_times_queries(&[1.0; 5], &packed, &mut out);
        assert!(out.iter().all(|x| x.is_nan()));
        let mut out = vec![0.0; 5];
        rows_times_queries(&[1.0; 6], &packed, &mut out);
        assert!(out.iter().all(|x| x.is_nan()));
    }
}
