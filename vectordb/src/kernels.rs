//! Similarity and distance kernels: the one place that chooses a SIMD backend.
//!
//! Every function here is a *pair kernel*: it compares two slices of the same length and returns
//! a number. The f32 dot and squared L2 (and the f32 cosine built from them) are our own
//! fixed-order sums (crate-internal module `lanes`: Rust loops compiled for baseline, AVX2 and
//! AVX-512 and picked at run time; see *Determinism* below). The f16, i8 and binary kernels are
//! [`simsimd`] 6 (C kernels picked at run time by CPU feature: AVX-512, AVX2, NEON, SVE or a
//! serial fallback); swapping that backend (e.g. to `numkong`) means editing this file only.
//! [`scalar`] keeps a plain-Rust reference for every kernel, used by the tests as the oracle and
//! by the benchmarks as the baseline.
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
//! * **Precision:** f32 dot and L2 sum f32 terms in fixed lanes (see below); f32 cosine is
//!   built from three such dot products and divided in f64. Results match [`scalar`] (which
//!   accumulates in f64) within about `1e-5 · Σ|aᵢbᵢ|` for dot/L2 and `1e-4` absolute for
//!   cosine. f16 inputs are widened to f32 inside the kernel. i8 dot and L2 are exact integers;
//!   i8 cosine divides exact integer dot products in f64, the same bits as [`scalar`].
//! * **Determinism:** the f32 kernels ([`dot_f32`], [`cosine_f32`], [`l2sq_f32`]) and every
//!   score a store or a [`crate::Query`] computes are **the same bits on every CPU**: they sum
//!   in one order fixed independently of the SIMD width (64 partial sums over full blocks,
//!   eight over the tail, each folded in halves; no fused multiply-add), compiled for
//!   baseline, AVX2 and AVX-512 and picked at run time. A tuple space needs this: two
//!   validators whose CPUs rounded a near-tie differently would fire different COMMs. The i8,
//!   binary and scalar kernels are exact everywhere. The f16 kernels are simsimd's, which sum
//!   in an order that depends on the SIMD width, so their last bits may differ between
//!   machines; no store path uses them.
//!
//! # Choice by measurement
//!
//! Measured with `benches/vectordb.rs` on the project machine (Sapphire Rapids, AVX-512, two
//! shared cores, so numbers carry noise) at 384 dimensions: simsimd's f32 dot on pre-normalised
//! vectors about 15–19 ns, its f32 cosine about 33 ns, the scalar f64 reference about 1 µs
//! ([`cosine_f32`] takes three dot products, about 65 ns, because simsimd's cosine returned
//! 1.0 for any two vectors whose f32 sums underflow or overflow). The
//! store therefore pre-computes each vector's inverse norm once and answers cosine queries with
//! the dot kernel on a pre-normalised query times that inverse norm (one multiply per vector),
//! never with the cosine kernel inside a scan. The f32 dot and L2 are our own fixed-order sums
//! (crate-internal module `lanes`), not simsimd's: criterion medians in the same run give
//! 18.4 against simsimd's 18.0 ns at 384 dimensions, 61 against 74 at 1,536, 9.4 against 7.6 at
//! 100, and the store's full scans are unchanged, while the sums are the same bits on every
//! CPU. (An earlier fixed-order dot, compiled for the baseline target only, measured about 3x
//! slower than simsimd and was turned down; run-time dispatch to AVX2 and AVX-512 copies of the
//! same loop closed the gap.)
//!
//! Batch scoring (`rows_times_queries`, crate-internal) is a matrix product. Measured on the raw
//! benchmark shape (1000 × 384 rows times 384 × 100 queries, f32, this machine, median µs, one
//! thread unless noted): `matrixmultiply` 0.3 `sgemm` per 256-row tile 676, in one call 652;
//! `gemm` 0.18 one thread 828, with rayon on 2 threads 486; our register-blocked AVX-512 kernel
//! (queries in lanes, rows read in place, 14 × 32 block) 602, on 2 threads 382; regrouped
//! panels (6 × 64 and 9 × 48 blocks, no lone 16-query panel) measured 9 % faster again in
//! `similarity_matrix` (serial, 100 × 1000, A/B best of 1000: 625 → 569 µs, loaded machine). `faer` was not
//! measured (it builds on `gemm`, and no AVX-512 path is enabled there on stable). So batches use
//! our kernel where AVX-512 exists; it also makes every batch score one sequential FMA chain,
//! independent of tiling and threads. Elsewhere a portable kernel (module `portable`) computes
//! the same chains, so batch scores are the same bits on every CPU; `matrixmultiply`, which
//! sums in its own order, is no longer used. Forced on this machine (1000 × 384 rows times 100
//! queries, serial, best of 5 × 30): AVX-512 412 µs, the portable kernel with AVX2 and FMA
//! 914 µs (at the AVX2 peak of 16 multiply-adds per cycle), without FMA 49 ms (an exact f64
//! emulation of the fused multiply-add; through libm's `fmaf` it took 89 ms).
//!
//! Later changes around the same kernel, each measured on that shape (medians, quiet machine;
//! `similarity_matrix` serial about 600–680 µs and parallel about 430–470 µs before them): the
//! kernel writes finished scores (cosine scaling, clamp and NaN → -∞ fused into its store)
//! straight into the uninitialised result instead of a zero-filled buffer scaled afterwards;
//! components go in k-blocks that keep a group's panels in L1 (serial 640 → 600 µs in our
//! harness; k-blocks of 64, 96 and 192 components for 4 panels were 0–10 % slower than 128);
//! queries are validated in one pass and packed in one pass (16 × 16 transposes in registers)
//! with no flat copy; the panels are 64-byte aligned (serial 570 → 530 µs: unaligned, every
//! panel load straddled two cache lines); parallel batches wake their helper threads before
//! preparing the queries. Together: serial 613 → 542 µs, parallel (the default) 430 → 317 µs
//! (criterion, same sitting). Kept out: a row-panel variant holding partial sums in an aligned
//! stack buffer rather than reloading them from the output (measured the same).

use crate::lanes;
use simsimd::{BinarySimilarity, SpatialSimilarity};
use std::fmt;
use std::mem::MaybeUninit;

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
/// The SIMD sums are f32: when they overflow (products near `f32::MAX`, where `inf - inf`
/// gives NaN even if the true dot product is small), the result is recomputed in f64 and
/// rounded once, so it is infinite only when the true value is beyond f32's range.
///
/// ```
/// use rhospace_vectordb::kernels::dot_f32;
/// assert_eq!(dot_f32(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]), Ok(32.0));
/// assert_eq!(dot_f32(&[1e20, 1e20], &[1e20, -1e20]), Ok(0.0));
/// ```
#[inline]
pub fn dot_f32(a: &[f32], b: &[f32]) -> Result<f32, LengthMismatch> {
    check(a.len(), b.len())?;
    let d = dot_f32_unchecked_len(a, b);
    if d.is_finite() {
        return Ok(d);
    }
    Ok(dot_f32_wide(a, b))
}

/// [`dot_f32`] summed in f64, where no product of two f32 values overflows.
#[cold]
fn dot_f32_wide(a: &[f32], b: &[f32]) -> f32 {
    scalar::dot64(widen(a), widen(b)) as f32
}

/// The store's hot-path dot product: lengths are equal by construction (debug-asserted); on a
/// mismatch it returns NaN instead of panicking.
#[inline]
pub(crate) fn dot_f32_unchecked_len(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    if a.len() != b.len() {
        return f32::NAN;
    }
    lanes::dot(a, b)
}

/// Cosine similarity of two f32 vectors, in `[-1, 1]` (see the module conventions for zeros),
/// at any magnitude.
///
/// Computed from three SIMD dot products (`a·b`, `a·a`, `b·b`, each summed in f32 lanes). When
/// a squared norm falls outside `[2⁻¹⁰⁰, 2¹²⁰]` those sums may have underflowed or overflowed
/// (simsimd's own cosine kernel then returned 1.0 for vectors of norm 1e-30 or 1e19 however
/// they pointed), so the similarity is recomputed in f64, which holds every f32 product.
///
/// ```
/// use rhospace_vectordb::kernels::cosine_f32;
/// let s = cosine_f32(&[1.0, 0.0], &[1.0, 1.0]).unwrap();
/// assert!((s - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-4);
/// let tiny = cosine_f32(&[1e-30, 0.0], &[1e-30, 1e-30]).unwrap();
/// assert!((tiny - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-4);
/// ```
#[inline]
pub fn cosine_f32(a: &[f32], b: &[f32]) -> Result<f32, LengthMismatch> {
    check(a.len(), b.len())?;
    let dot = |x: &[f32], y: &[f32]| f64::from(lanes::dot(x, y));
    let (aa, bb) = (dot(a, a), dot(b, b));
    if COSINE_NORMS.contains(&aa) && COSINE_NORMS.contains(&bb) {
        // With both squared norms below 2¹²⁰, no partial sum of `a·b` overflows; with both
        // above 2⁻¹⁰⁰, what its underflowed products lose is far below the 1e-4 promised.
        let ab = dot(a, b);
        return Ok((ab / (aa.sqrt() * bb.sqrt())).clamp(-1.0, 1.0) as f32);
    }
    Ok(cosine_f32_wide(a, b))
}

/// The squared norms within which [`cosine_f32`]'s f32 sums are trusted.
const COSINE_NORMS: std::ops::RangeInclusive<f64> =
    7.888_609_052_210_118e-31..=1.329_227_995_784_916e36;

/// [`cosine_f32`] summed in f64 (no f32 product or sum of squares underflows or overflows
/// there): the scalar reference's sums and zero-vector conventions, without its copies.
#[cold]
fn cosine_f32_wide(a: &[f32], b: &[f32]) -> f32 {
    let dot = |x: &[f32], y: &[f32]| scalar::dot64(widen(x), widen(y));
    scalar::cosine64(dot(a, b), dot(a, a), dot(b, b))
}

/// The components of `v` as f64.
#[inline]
pub(crate) fn widen(v: &[f32]) -> impl Iterator<Item = f64> + '_ {
    v.iter().map(|&x| f64::from(x))
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
    if a.len() != b.len() {
        return f32::NAN;
    }
    lanes::l2sq(a, b)
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

/// Dot product of two i8 vectors (exact integer, converted to `f32` once, at any length).
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

/// Components per simsimd call in the i8 kernels. simsimd accumulates i8 products in `i32`,
/// which overflows past 33,025 components for L2 (`255²` each) and 2¹⁷ for dot (`128²` each);
/// with at most `2¹⁵` components per call (`255² · 2¹⁵ < 2³¹`) every call is exact, and longer
/// inputs add the calls' results in `i64`.
const I8_CHUNK: usize = 1 << 15;

/// An exact i8 kernel (`dot` or `l2sq`) over inputs of any length: one simsimd call per
/// [`I8_CHUNK`] components, summed in `i64`; `None` on a length mismatch.
#[inline]
fn i8_sum(a: &[i8], b: &[i8], kernel: fn(&[i8], &[i8]) -> Option<f64>) -> Option<f64> {
    if a.len() != b.len() {
        return None;
    }
    if a.len() <= I8_CHUNK {
        return kernel(a, b);
    }
    let mut sum = 0i64;
    for (x, y) in a.chunks(I8_CHUNK).zip(b.chunks(I8_CHUNK)) {
        sum += kernel(x, y)? as i64;
    }
    Some(sum as f64)
}

/// Hot-path i8 dot: lengths equal by construction; NaN on a mismatch, never a panic.
#[inline]
pub(crate) fn dot_i8_unchecked_len(a: &[i8], b: &[i8]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    match i8_sum(a, b, <i8 as SpatialSimilarity>::dot) {
        Some(d) => d as f32,
        None => f32::NAN,
    }
}

/// Cosine similarity of two i8 vectors, in `[-1, 1]`: the exact integer dot products `a·b`,
/// `a·a`, `b·b`, divided in f64 and rounded once, so the same bits as [`scalar::cosine_i8`] on
/// every CPU. (simsimd's own i8 cosine normalises with a reciprocal square root whose last bits
/// depend on the SIMD backend, and overflows its i32 sums past 2¹⁷ components.)
///
/// ```
/// use rhospace_vectordb::kernels::{cosine_i8, scalar};
/// assert_eq!(cosine_i8(&[3, 4], &[3, 4]), Ok(1.0));
/// assert_eq!(cosine_i8(&[3, 4], &[4, -3]), Ok(0.0));
/// assert_eq!(cosine_i8(&[1, 2, 3], &[-7, 5, 9]), scalar::cosine_i8(&[1, 2, 3], &[-7, 5, 9]));
/// ```
#[inline]
pub fn cosine_i8(a: &[i8], b: &[i8]) -> Result<f32, LengthMismatch> {
    check(a.len(), b.len())?;
    let dot = |x: &[i8], y: &[i8]| i8_sum(x, y, <i8 as SpatialSimilarity>::dot);
    let (ab, aa, bb) = (dot(a, b), dot(a, a), dot(b, b));
    let (Some(ab), Some(aa), Some(bb)) = (ab, aa, bb) else {
        return Ok(f32::NAN);
    };
    Ok(scalar::cosine64(ab, aa, bb))
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
    let d = i8_sum(a, b, <i8 as SpatialSimilarity>::l2sq).unwrap_or(f64::NAN);
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
///
/// **Every backend computes the same bits**: each output is one sequential chain of fused
/// multiply-adds over the components in index order (`acc = 0`, then
/// `acc = fma(row[k], query[k], acc)`), the tests' `fma_dot_reference`, whatever the CPU,
/// blocking, tiling and threads. So a batch gives the same scores on every machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GemmBackend {
    /// Our register-blocked AVX-512 kernel (x86-64 with `avx512f` at run time).
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// The portable kernel ([`portable`]) compiled with AVX2 and FMA (x86-64 with both at run
    /// time).
    #[cfg(target_arch = "x86_64")]
    Fma,
    /// The portable kernel for the target's baseline: hardware fused multiply-adds on AArch64
    /// (NEON); on an x86-64 CPU without FMA (before 2013, or a VM that hides it) an exact f64
    /// emulation (`portable::fma_round_to_odd`, two f64 lanes per SSE2 instruction), about 50x
    /// slower than with FMA.
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
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return GemmBackend::Fma;
            }
        }
        GemmBackend::Portable
    }
}

/// A batch of `m` prepared queries in the layout their consumer reads.
#[derive(Debug, Clone)]
pub(crate) struct PackedQueries {
    /// The kernel the panels are for.
    backend: GemmBackend,
    /// Number of queries.
    m: usize,
    /// Components per query.
    dim: usize,
    layout: Layout,
}

/// How [`PackedQueries`] holds its queries: one layout per batch, never both.
#[derive(Debug, Clone)]
enum Layout {
    /// `m × dim` floats, row-major: query `j` at `j*dim..(j+1)*dim`. Read by the squared-L2
    /// path (pair by pair).
    Flat(Vec<f32>),
    /// What [`rows_times_queries`] reads, for every backend: the
    /// queries in panels of [`PANEL`], each panel `dim` lines of `PANEL` floats,
    /// component-major: lane `lane` of line `p*dim + k` is component `k` of query
    /// `p*PANEL + lane`; the unused lanes of a last partial panel are 0.
    Panels(Vec<Line>),
}

/// One panel line: the 16 lanes of a 512-bit register, aligned to a cache line so that no
/// panel load of the kernel straddles two (`malloc` gives 16-byte alignment; a `Vec<f32>` of
/// panels whose loads all straddled lines measured up to 25 % slower).
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C, align(64))]
struct Line([f32; PANEL]);

/// The floats of `lines`, in order.
fn line_floats(lines: &[Line]) -> &[f32] {
    // SAFETY: `Line` is `repr(C)` around `[f32; 16]` with size 64 = its alignment (no padding),
    // so `lines` is `lines.len() × 16` contiguous initialised floats; the borrow is carried over.
    unsafe { std::slice::from_raw_parts(lines.as_ptr().cast::<f32>(), lines.len() * PANEL) }
}

/// Queries per panel of the batch kernels: one 512-bit register of f32.
const PANEL: usize = 16;

impl PackedQueries {
    /// Packs the `m = queries.len() / dim` queries of `queries` (`m × dim`, row-major; a trailing
    /// partial query is ignored) in one pass, query `j` multiplied component-wise by `scale[j]`
    /// when `scale` is given (`x * scale[j]` in f32, exactly as
    /// [`prepare_into`](crate::store::prepare_into) normalises; a missing factor gives NaN,
    /// which no caller produces). With `for_kernel` the queries are packed in panels for
    /// [`rows_times_queries`] on `backend`; without it they stay flat, for the squared-L2 path.
    /// `dim` must be at least 1 (a store's dimension always is); with 0, `m` is 0.
    pub(crate) fn pack(
        queries: &[f32],
        dim: usize,
        scale: Option<&[f32]>,
        backend: GemmBackend,
        for_kernel: bool,
    ) -> Self {
        let m = queries.len().checked_div(dim).unwrap_or(0);
        if m == 0 {
            return PackedQueries {
                backend,
                m,
                dim,
                layout: Layout::Flat(Vec::new()),
            };
        }
        let queries = &queries[..m * dim];
        let factor = |j: usize| scale.map(|s| s.get(j).copied().unwrap_or(f32::NAN));
        let layout = if for_kernel {
            Layout::Panels(pack_panels(queries, dim, m, scale, backend))
        } else {
            let mut flat = Vec::with_capacity(m * dim);
            for (j, q) in queries.chunks_exact(dim).enumerate() {
                match factor(j) {
                    Some(f) => flat.extend(q.iter().map(|&x| x * f)),
                    None => flat.extend_from_slice(q),
                }
            }
            Layout::Flat(flat)
        };
        PackedQueries {
            backend,
            m,
            dim,
            layout,
        }
    }

    /// Number of queries.
    pub(crate) fn len(&self) -> usize {
        self.m
    }

    /// Writes query `j` (as packed: scaled when `pack` was given factors) to `out`, whatever
    /// the layout; `out` is left empty when `j >= m`.
    pub(crate) fn query_into(&self, j: usize, out: &mut Vec<f32>) {
        out.clear();
        if j >= self.m {
            return;
        }
        let dim = self.dim;
        match &self.layout {
            Layout::Flat(flat) => out.extend_from_slice(&flat[j * dim..(j + 1) * dim]),
            Layout::Panels(lines) => {
                let (panel, lane) = (j / PANEL, j % PANEL);
                out.extend(
                    lines[panel * dim..(panel + 1) * dim]
                        .iter()
                        .map(|l| l.0[lane]),
                );
            }
        }
    }

    /// The queries, `m × dim` row-major, if they are held flat (packed without `for_kernel`).
    pub(crate) fn flat(&self) -> Option<&[f32]> {
        match &self.layout {
            Layout::Flat(flat) => Some(flat),
            Layout::Panels(_) => None,
        }
    }
}

/// The [`Layout::Panels`] form of `m >= 1` queries (`queries` is exactly `m × dim`, `dim >= 1`),
/// scaled as [`PackedQueries::pack`] says: by the AVX-512 packer (16 × 16 transposes in
/// registers) for [`GemmBackend::Avx512`], element by element otherwise. The same values either
/// way (one f32 multiply per scaled component).
fn pack_panels(
    queries: &[f32],
    dim: usize,
    m: usize,
    scale: Option<&[f32]>,
    backend: GemmBackend,
) -> Vec<Line> {
    let len = m.div_ceil(PANEL) * dim;
    debug_assert_eq!(queries.len(), m * dim);
    if queries.len() != m * dim || dim == 0 || scale.is_some_and(|s| s.len() < m) {
        return vec![Line([f32::NAN; PANEL]); len];
    }
    match backend {
        #[cfg(target_arch = "x86_64")]
        GemmBackend::Avx512 => {
            let mut panels: Vec<Line> = Vec::with_capacity(len);
            // SAFETY: `GemmBackend::Avx512` is only chosen after `avx512f` was detected at run
            // time. `queries` is `m × dim` and every scale factor exists (checked above); the
            // spare capacity holds `len` lines of 16 floats (`Line` is `repr(C)` around
            // `[f32; 16]`, no padding), and `avx512::pack_panels` writes each line exactly once
            // (one per panel and component), so all `len` are initialised before `set_len`.
            unsafe {
                avx512::pack_panels(queries, dim, m, scale, panels.as_mut_ptr().cast::<f32>());
                panels.set_len(len);
            }
            panels
        }
        #[cfg(target_arch = "x86_64")]
        GemmBackend::Fma => portable::pack_panels(queries, dim, m, scale),
        GemmBackend::Portable => portable::pack_panels(queries, dim, m, scale),
    }
}

/// What [`rows_times_queries`] does to each dot product before storing it: the score formulas
/// of [`score_vec`](crate::store::score_vec), so batch and single-query scores post-process
/// alike.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Finish<'a> {
    /// The dot product as it is (the tests' raw kernel output).
    #[cfg_attr(not(test), allow(dead_code))]
    Raw,
    /// `sanitize(s)`: NaN becomes -∞ (the dot score).
    Sanitize,
    /// `sanitize((s * inv_norm[r]).clamp(-1, 1))` for row `r` (the cosine score); one factor
    /// per row.
    Cosine(&'a [f32]),
}

/// Writes `value` to every element of `out` and returns it initialised.
pub(crate) fn init_filled(out: &mut [MaybeUninit<f32>], value: f32) -> &mut [f32] {
    for x in out.iter_mut() {
        x.write(value);
    }
    // SAFETY: every element was written just above.
    unsafe { assume_init(out) }
}

/// Views `out` as initialised floats.
///
/// # Safety
/// Every element of `out` is initialised.
unsafe fn assume_init(out: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: `MaybeUninit<f32>` has the size, alignment and validity of `f32` once initialised
    // (the caller's promise); the new slice has the same length and takes over the borrow.
    unsafe { &mut *(out as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// `out[r*m + j] = finish(rows[r] · query[j])` for every row `r` of `rows` (`n × dim`,
/// row-major) and every query `j` of `queries`; `out` is `n × m`, row-major, possibly
/// uninitialised: every element is written (never read first) and the same memory is returned
/// initialised.
///
/// If the lengths do not fit together (`rows.len()` not a multiple of `dim`, `out.len() != n·m`,
/// or a cosine factor per row missing) — impossible for the crate's callers — `out` is filled
/// with NaN instead of panicking.
pub(crate) fn rows_times_queries<'o>(
    rows: &[f32],
    queries: &PackedQueries,
    finish: Finish<'_>,
    out: &'o mut [MaybeUninit<f32>],
) -> &'o mut [f32] {
    let (m, dim) = (queries.m, queries.dim);
    let n = rows.len().checked_div(dim).unwrap_or(0);
    let factors_fit = match finish {
        Finish::Cosine(inv) => inv.len() == n,
        Finish::Raw | Finish::Sanitize => true,
    };
    if dim == 0 || !rows.len().is_multiple_of(dim) || out.len() != n * m || !factors_fit {
        debug_assert!(false, "rows_times_queries: inconsistent lengths");
        return init_filled(out, f32::NAN);
    }
    if n == 0 || m == 0 {
        return init_filled(out, 0.0); // empty
    }
    let Layout::Panels(lines) = &queries.layout else {
        debug_assert!(
            false,
            "rows_times_queries: queries not packed for the kernel"
        );
        return init_filled(out, f32::NAN);
    };
    let panels = line_floats(lines);
    debug_assert_eq!(panels.len(), m.div_ceil(PANEL) * dim * PANEL);
    if panels.len() != m.div_ceil(PANEL) * dim * PANEL {
        return init_filled(out, f32::NAN);
    }
    match queries.backend {
        #[cfg(target_arch = "x86_64")]
        GemmBackend::Avx512 => {
            // SAFETY: `GemmBackend::Avx512` is only chosen after `avx512f` was detected at run
            // time (`detect`; the tests check the same before choosing it). Lengths are checked
            // above: `rows` is `n × dim`, `panels` is `ceil(m/16) × dim × 16`, `out` is `n × m`
            // and exclusively borrowed (so it aliases neither input), a cosine factor exists
            // per row; the kernel reads and writes only inside those bounds and writes every
            // element of `out` before it reads it (see `avx512::rows_times_queries`).
            unsafe {
                avx512::rows_times_queries(rows, dim, panels, m, finish, out.as_mut_ptr().cast());
            }
            // SAFETY: the kernel initialised every element of `out` (its contract, above).
            unsafe { assume_init(out) }
        }
        #[cfg(target_arch = "x86_64")]
        GemmBackend::Fma => {
            let out = init_filled(out, 0.0);
            // SAFETY: `GemmBackend::Fma` is only chosen after `avx2` and `fma` were detected at
            // run time (`detect`; the tests check the same before choosing it).
            unsafe { portable::rows_times_queries_fma(rows, dim, panels, m, finish, out) };
            out
        }
        GemmBackend::Portable => {
            let out = init_filled(out, 0.0);
            portable::rows_times_queries::<portable::Fallback>(rows, dim, panels, m, finish, out);
            out
        }
    }
}

/// The batch kernel in plain Rust, for every CPU without AVX-512: the same arithmetic as
/// [`avx512`] (each score one sequential chain of `f32::mul_add` over the components in index
/// order), so the same bits. A block of [`ROWS`](portable::ROWS) rows times one panel of 16
/// queries is accumulated over all components, the panel's line `k` (component `k` of its 16
/// queries) multiplied by each row's component `k`; written with fixed-size arrays so that the
/// compiler keeps the accumulators in registers and runs the 16 lanes as SIMD fused
/// multiply-adds wherever the instruction set has them (NEON; AVX2 with FMA through
/// [`rows_times_queries_fma`](portable::rows_times_queries_fma)). An x86-64 CPU without FMA
/// gets the same bits from [`fma_round_to_odd`](portable::fma_round_to_odd), in f64
/// arithmetic.
mod portable {
    use super::{Finish, Line, PANEL};
    use crate::store::sanitize;

    /// A fused multiply-add `x·y + z` rounded once: how the kernel's chains are computed.
    pub(super) trait Fused {
        fn fma(x: f32, y: f32, z: f32) -> f32;
    }

    /// `f32::mul_add`: one instruction where the target has FMA (AArch64; x86-64 inside
    /// [`rows_times_queries_fma`]), else a call to libm's exact `fmaf`.
    pub(super) struct Native;

    impl Fused for Native {
        #[inline(always)]
        fn fma(x: f32, y: f32, z: f32) -> f32 {
            x.mul_add(y, z)
        }
    }

    /// [`fma_round_to_odd`]: the same bits as [`Native`] in plain f64 arithmetic, for x86-64
    /// CPUs without FMA, where `f32::mul_add` is a libm call per lane. On the 1000 × 384 × 100
    /// batch (serial, this machine): 49 ms, against 89 ms through libm's `fmaf` and 0.9 ms
    /// with FMA. It also keeps the bits independent of the platform's libm.
    pub(super) struct RoundToOdd;

    impl Fused for RoundToOdd {
        #[inline(always)]
        fn fma(x: f32, y: f32, z: f32) -> f32 {
            fma_round_to_odd(x, y, z)
        }
    }

    /// The fused multiply-add the portable backend uses when it cannot use [`Native`]'s
    /// instruction: x86-64 compiled without FMA (the [`GemmBackend::Portable`] case there).
    /// Elsewhere `f32::mul_add` is one instruction.
    ///
    /// [`GemmBackend::Portable`]: super::GemmBackend::Portable
    #[cfg(all(target_arch = "x86_64", not(target_feature = "fma")))]
    pub(super) type Fallback = RoundToOdd;
    #[cfg(not(all(target_arch = "x86_64", not(target_feature = "fma"))))]
    pub(super) type Fallback = Native;

    /// `x·y + z` rounded once to f32, exactly as IEEE 754's fused multiply-add (and libm's
    /// `fmaf`), from f64 arithmetic and no rounding-mode changes:
    ///
    /// * `x·y` is exact in f64 (24 + 24 significant bits ≤ 53);
    /// * `s = x·y + z` is rounded to nearest in f64, and its exact error `e` found by Knuth's
    ///   TwoSum (`s + e = x·y + z` exactly: no overflow is possible below 2²⁵⁷);
    /// * when `e ≠ 0`, `s` is replaced by whichever of itself and its neighbour toward `e` is
    ///   odd: that is `x·y + z` rounded *to odd* in f64;
    /// * rounding that to nearest f32 rounds `x·y + z` correctly, since f64 carries more than
    ///   two bits beyond f32's 24 at every f32 magnitude, subnormals included (Boldo and
    ///   Melquiond, "Emulation of FMA and correctly rounded sums: proved algorithms using
    ///   rounding to odd", IEEE Trans. Computers 57(4), 2008).
    ///
    /// Infinite or NaN `s` (an infinite or NaN input) is returned as IEEE 754's fma returns
    /// it; a zero `s` is exact (`x·y + z` is a multiple of 2⁻²⁹⁸ that f64 holds), so its sign
    /// is the rounded sum's, as in the fused operation. The tests compare it bit for bit with
    /// libm's `fmaf` on random, tie-breaking and special inputs.
    #[inline(always)]
    pub(super) fn fma_round_to_odd(x: f32, y: f32, z: f32) -> f32 {
        let p = f64::from(x) * f64::from(y);
        let c = f64::from(z);
        let s = p + c;
        let back = s - p;
        let e = (p - (s - back)) + (c - back);
        // Round to odd, without branches (so the compiler can run lanes side by side): when
        // inexact, truncate toward zero (one step down in magnitude if `s` was rounded away
        // from zero, i.e. `e` has the other sign) and set the last bit. Not for an infinite or
        // NaN `s`, whose `e` is NaN.
        let bits = s.to_bits();
        let inexact = u64::from((e != 0.0) & (s.abs() < f64::INFINITY));
        let away = (e.to_bits() ^ bits) >> 63;
        let odd = f64::from_bits((bits - (inexact & away)) | inexact);
        odd as f32
    }

    /// Rows per block: `ROWS × 16` accumulators (12 of the 16 AVX2 registers, 24 of the 32
    /// NEON ones). Each component of the panel is loaded once per block and each row component
    /// broadcast once: on this machine the AVX2 loop runs 12 FMAs per 8 loads, at the AVX2
    /// peak of 16 multiply-adds per cycle (4 rows measured the same).
    pub(super) const ROWS: usize = 6;

    /// The [`Layout::Panels`](super::Layout::Panels) form of `m × dim` queries, written element
    /// by element (`queries` is exactly `m × dim`, `dim >= 1`, a factor per query if scaled).
    pub(super) fn pack_panels(
        queries: &[f32],
        dim: usize,
        m: usize,
        scale: Option<&[f32]>,
    ) -> Vec<Line> {
        let mut panels = vec![Line([0.0; PANEL]); m.div_ceil(PANEL) * dim];
        for (j, q) in queries.chunks_exact(dim).enumerate() {
            let f = scale.map(|s| s.get(j).copied().unwrap_or(f32::NAN));
            let lines = panels.iter_mut().skip((j / PANEL) * dim);
            for (line, &x) in lines.zip(q) {
                line.0[j % PANEL] = f.map_or(x, |f| x * f);
            }
        }
        panels
    }

    /// `out[r*m + j] = finish(rows[r] · query[j])` (see [`super::rows_times_queries`], which
    /// checked every length: `rows` is `n × dim`, `panels` is `ceil(m/16) × dim × 16`, `out`
    /// is `n × m`, a cosine factor per row).
    #[inline(always)]
    pub(super) fn rows_times_queries<F: Fused>(
        rows: &[f32],
        dim: usize,
        panels: &[f32],
        m: usize,
        finish: Finish<'_>,
        out: &mut [f32],
    ) {
        let mut store = |r: usize, j0: usize, acc: &[f32; PANEL]| {
            let width = (m - j0).min(PANEL);
            let dst = &mut out[r * m + j0..r * m + j0 + width];
            for (d, &s) in dst.iter_mut().zip(acc) {
                *d = match finish {
                    Finish::Raw => s,
                    Finish::Sanitize => sanitize(s),
                    Finish::Cosine(inv) => sanitize((s * inv[r]).clamp(-1.0, 1.0)),
                };
            }
        };
        for (p, panel) in panels.chunks_exact(dim * PANEL).enumerate() {
            let j0 = p * PANEL;
            let mut blocks = rows.chunks_exact(dim * ROWS);
            let mut r0 = 0;
            for block in &mut blocks {
                let acc = chains::<F, ROWS>(block, dim, panel);
                for (i, acc) in acc.iter().enumerate() {
                    store(r0 + i, j0, acc);
                }
                r0 += ROWS;
            }
            for row in blocks.remainder().chunks_exact(dim) {
                let [acc] = chains::<F, 1>(row, dim, panel);
                store(r0, j0, &acc);
                r0 += 1;
            }
        }
    }

    /// The `R × 16` FMA chains of `R` rows (`rows` is `R × dim`) against one panel (`dim`
    /// lines of 16).
    #[inline(always)]
    fn chains<F: Fused, const R: usize>(
        rows: &[f32],
        dim: usize,
        panel: &[f32],
    ) -> [[f32; PANEL]; R] {
        let mut acc = [[0.0f32; PANEL]; R];
        for (k, line) in panel.chunks_exact(PANEL).enumerate() {
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = rows[r * dim + k];
                for (a, &q) in acc.iter_mut().zip(line) {
                    *a = F::fma(x, q, *a);
                }
            }
        }
        acc
    }

    /// [`rows_times_queries`] compiled with AVX2 and FMA.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn rows_times_queries_fma(
        rows: &[f32],
        dim: usize,
        panels: &[f32],
        m: usize,
        finish: Finish<'_>,
        out: &mut [f32],
    ) {
        rows_times_queries::<Native>(rows, dim, panels, m, finish, out);
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
/// registers) is accumulated over a range of components before it is stored. The components
/// are taken in k-blocks of at most [`KC`](avx512::KC) / panels: a block's accumulators are
/// stored to the output after each k-block and reloaded for the next (exact in f32), so the
/// panels of one group for one k-block stay in L1 while every row of the tile streams past
/// them. Stored rows are read in place (no packing); only the queries are packed, once per
/// batch. Each output lane is one sequential FMA chain over `k = 0..dim`, so the result does
/// not depend on how rows, panels or components are blocked. The last k-block applies the
/// [`Finish`] before its store, so each output element is written once per k-block and read
/// back only by the next.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Finish, PANEL};
    use std::arch::x86_64::*;

    /// Panel components per k-block summed over the panels of a group (at most): a group's
    /// k-block is then at most 512 × 64 bytes = 32 KiB, inside the 48 KiB L1d of the reference
    /// machine (Sapphire Rapids): 128 components for 4 panels, 170 for 3, 256 for 2, 512 for 1.
    pub(super) const KC: usize = 512;

    /// What a block does with its accumulators at the end of its component range.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum End {
        /// More components follow: store the raw partial sums (reloaded by the next k-block).
        Partial,
        /// Last k-block: store the dot products as they are.
        Raw,
        /// Last k-block: NaN to -∞.
        Sanitize,
        /// Last k-block: times the row's factor, clamped to `[-1, 1]`, NaN to -∞.
        Cosine,
    }

    /// The lanes of the panel starting at query `qs` that hold real queries: all 16, the
    /// `m - qs` of a last partial panel, none past `m`.
    #[inline]
    fn lanes(qs: usize, m: usize) -> __mmask16 {
        if qs + PANEL <= m {
            !0
        } else if qs < m {
            ((1u32 << (m - qs)) - 1) as u16
        } else {
            0
        }
    }

    /// `crate::store::sanitize` on 16 lanes: NaN lanes become -∞, the others stay (bit for
    /// bit).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn sanitize(x: __m512) -> __m512 {
        let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x);
        _mm512_mask_blend_ps(nan, x, _mm512_set1_ps(f32::NEG_INFINITY))
    }

    /// `f32::clamp(x, -1.0, 1.0)` on 16 lanes for the lanes that are not NaN (NaN lanes are
    /// replaced by [`sanitize`] afterwards, from the unclamped value). `max`/`min` return their
    /// second operand on a tie, which is then equal to the first.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn clamp_unit(x: __m512) -> __m512 {
        _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-1.0)), _mm512_set1_ps(1.0))
    }

    /// The FMA chains of a block over components `k0..k1`: for each `k`, `acc[r][p] +=
    /// row_r[k] · panel_p[k]` (one fused multiply-add per lane).
    ///
    /// # Safety
    /// `avx512f` is available; each `row_at[r]` points at `dim` readable floats; `panels` at
    /// `P × dim × 16`; `k0 <= k1 <= dim`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn chains<const R: usize, const P: usize>(
        mut acc: [[__m512; P]; R],
        row_at: &[*const f32; R],
        dim: usize,
        k0: usize,
        k1: usize,
        panels: *const f32,
    ) -> [[__m512; P]; R] {
        for k in k0..k1 {
            let mut b = [_mm512_setzero_ps(); P];
            for (p, bp) in b.iter_mut().enumerate() {
                // SAFETY: `(p·dim + k)·16 + 15 < P·dim·16` floats from `panels`.
                *bp = unsafe { _mm512_loadu_ps(panels.add((p * dim + k) * PANEL)) };
            }
            for (acc_r, &row) in acc.iter_mut().zip(row_at) {
                // SAFETY: `row + k` is component `k < dim` of a row inside the `R × dim` rows.
                let a = _mm512_set1_ps(unsafe { *row.add(k) });
                for (acc_rp, &bp) in acc_r.iter_mut().zip(&b) {
                    *acc_rp = _mm512_fmadd_ps(a, bp, *acc_rp);
                }
            }
        }
        acc
    }

    /// Accumulates `R` rows (starting at `rows`, stride `dim`) against `P` consecutive panels
    /// (starting at `panels`) over components `k0..k1`, starting from the partial sums in `out`
    /// when `k0 > 0` (from zero otherwise), and stores the `R × (P·16)` results, clipped to the
    /// `m` real queries, at `out` (row stride `m`) from query `q0`, finished as `end` says.
    ///
    /// # Safety
    /// `avx512f` is available; `rows` points at `R` rows of `dim` readable floats (stride
    /// `dim`); `panels` at `P × dim × 16`; `k0 < k1 <= dim`; for every `r < R`,
    /// `out + r·m + q0 .. out + r·m + min(m, q0 + P·16)` is writable and, when `k0 > 0`,
    /// initialised; `q0 < m`; with [`End::Cosine`], `inv` points at `R` readable floats.
    #[inline]
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn block<const R: usize, const P: usize>(
        rows: *const f32,
        dim: usize,
        k0: usize,
        k1: usize,
        panels: *const f32,
        out: *mut f32,
        m: usize,
        q0: usize,
        end: End,
        inv: *const f32,
    ) {
        // Branch-free start: on the first k-block every mask is 0 (zeros, nothing read),
        // otherwise the real lanes of the partial sums. Both a conditional load loop and
        // `array::from_fn` (a closure does not inherit `target_feature`, so its intrinsics are
        // not inlined) made the compiler keep the accumulators in memory through the k loop.
        let first = k0 == 0;
        let mut acc = [[_mm512_setzero_ps(); P]; R];
        #[allow(clippy::needless_range_loop)]
        for r in 0..R {
            for p in 0..P {
                let qs = q0 + p * PANEL;
                let mask = if first { 0 } else { lanes(qs, m) };
                // SAFETY: the lanes loaded are queries `qs .. min(m, qs + 16)` of row `r`,
                // initialised by the previous k-block (caller's contract); masked-off lanes are
                // not accessed, and `wrapping_add` keeps the address computation defined even
                // for a panel past `m` (which the callers never form).
                acc[r][p] = unsafe { _mm512_maskz_loadu_ps(mask, out.wrapping_add(r * m + qs)) };
            }
        }
        // One base pointer per row: each broadcast becomes `[row + 4k]{1to16}` fused into its
        // FMA instead of the end of a chain of pointer additions (one per row per step). Neutral
        // in the measurements on its own; kept because it leaves the loop only loads and FMAs.
        // `black_box` keeps the compiler from re-deriving them from one another.
        // SAFETY: `r·dim <= (R - 1)·dim`, inside the `R × dim` rows.
        let row_at: [*const f32; R] =
            std::hint::black_box(std::array::from_fn(|r| unsafe { rows.add(r * dim) }));
        // SAFETY: as promised by the caller (rows, panels and `k0 < k1 <= dim`).
        let acc = unsafe { chains::<R, P>(acc, &row_at, dim, k0, k1, panels) };
        for (r, acc_r) in acc.iter().enumerate() {
            let factor = if end == End::Cosine {
                // SAFETY: `inv` points at `R` readable floats for `End::Cosine`.
                _mm512_set1_ps(unsafe { *inv.add(r) })
            } else {
                _mm512_setzero_ps()
            };
            for (p, &v) in acc_r.iter().enumerate() {
                let qs = q0 + p * PANEL;
                if qs >= m {
                    break;
                }
                let v = match end {
                    End::Partial | End::Raw => v,
                    End::Sanitize => sanitize(v),
                    End::Cosine => {
                        let x = _mm512_mul_ps(v, factor);
                        let clamped = clamp_unit(x);
                        let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x);
                        _mm512_mask_blend_ps(nan, clamped, _mm512_set1_ps(f32::NEG_INFINITY))
                    }
                };
                // SAFETY: the stored lanes are queries `qs .. min(m, qs + 16)` of row `r`,
                // inside the writable range promised by the caller.
                unsafe {
                    let dst = out.add(r * m + qs);
                    if qs + PANEL <= m {
                        _mm512_storeu_ps(dst, v);
                    } else {
                        _mm512_mask_storeu_ps(dst, lanes(qs, m), v);
                    }
                }
            }
        }
    }

    /// Runs `block` over every row with `P` panels starting at panel `p` and components
    /// `k0..k1`, `R` rows per block (`R · P` accumulators + `P` panel registers + 1 broadcast
    /// must fit the 32 zmm registers).
    ///
    /// # Safety
    /// As [`rows_times_queries`]; panels `p .. p + P` exist; `k0 < k1 <= dim`; when `k0 > 0`
    /// the columns of these panels were written by the run over the previous k-block; with
    /// [`End::Cosine`], `inv` has one float per row.
    #[inline]
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn panel_run<const P: usize, const R: usize>(
        rows: &[f32],
        dim: usize,
        (k0, k1): (usize, usize),
        panels: &[f32],
        p: usize,
        m: usize,
        out: *mut f32,
        (end, inv): (End, &[f32]),
    ) {
        let n = rows.len() / dim;
        let rp = rows.as_ptr();
        let ip = inv.as_ptr();
        // SAFETY (all calls below): panel offset `p·dim·16` with `P` panels lies inside
        // `panels`; row `r .. r + R` lies inside `rows` (`r + R <= n`); row `r` of `out` starts
        // at `r·m`, and the block writes columns `p·16 .. min(m, (p+P)·16)` of rows `< n`;
        // `inv + r` has `R` floats when `end` is `Cosine` (never read otherwise, hence
        // `wrapping_add` on what may be an empty slice's pointer).
        let pp = unsafe { panels.as_ptr().add(p * dim * PANEL) };
        let q0 = p * PANEL;
        let mut r = 0;
        while r + R <= n {
            unsafe {
                let (rr, o, i) = (rp.add(r * dim), out.add(r * m), ip.wrapping_add(r));
                block::<R, P>(rr, dim, k0, k1, pp, o, m, q0, end, i);
            }
            r += R;
        }
        while r + 4 <= n {
            unsafe {
                let (rr, o, i) = (rp.add(r * dim), out.add(r * m), ip.wrapping_add(r));
                block::<4, P>(rr, dim, k0, k1, pp, o, m, q0, end, i);
            }
            r += 4;
        }
        while r < n {
            unsafe {
                let (rr, o, i) = (rp.add(r * dim), out.add(r * m), ip.wrapping_add(r));
                block::<1, P>(rr, dim, k0, k1, pp, o, m, q0, end, i);
            }
            r += 1;
        }
    }

    /// Transposes a 16 × 16 block held as 16 rows and stores its first `width` columns as
    /// consecutive 16-float lines at `dst` (line `j` lane `i` = `r[i]` lane `j`). Four stages
    /// of 16 shuffles: 32-bit and 64-bit interleaves inside each 128-bit lane, then two rounds
    /// of 128-bit lane shuffles; each column is stored as soon as it is formed (collecting them
    /// in an array made the compiler spill it and copy it out with `memcpy`).
    ///
    /// # Safety
    /// `avx512f` is available; `dst` is valid for writes of `width × 16` floats, `width <= 16`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn transpose16_store(r: [__m512; 16], dst: *mut f32, width: usize) {
        let mut t = [_mm512_setzero_ps(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        // u[4g + c], 128-bit lane L: column 4L + c of rows 4g .. 4g + 4.
        let mut u = [_mm512_setzero_ps(); 16];
        for g in 0..4 {
            let (lo0, hi0, lo1, hi1) = (t[4 * g], t[4 * g + 1], t[4 * g + 2], t[4 * g + 3]);
            u[4 * g] = _mm512_shuffle_ps::<0x44>(lo0, lo1);
            u[4 * g + 1] = _mm512_shuffle_ps::<0xEE>(lo0, lo1);
            u[4 * g + 2] = _mm512_shuffle_ps::<0x44>(hi0, hi1);
            u[4 * g + 3] = _mm512_shuffle_ps::<0xEE>(hi0, hi1);
        }
        // Column 4L + c gathers lane L of u[c], u[4 + c], u[8 + c], u[12 + c].
        for c in 0..4 {
            let x88 = _mm512_shuffle_f32x4::<0x88>(u[c], u[4 + c]);
            let xdd = _mm512_shuffle_f32x4::<0xDD>(u[c], u[4 + c]);
            let y88 = _mm512_shuffle_f32x4::<0x88>(u[8 + c], u[12 + c]);
            let ydd = _mm512_shuffle_f32x4::<0xDD>(u[8 + c], u[12 + c]);
            let cols = [
                (c, _mm512_shuffle_f32x4::<0x88>(x88, y88)),
                (4 + c, _mm512_shuffle_f32x4::<0x88>(xdd, ydd)),
                (8 + c, _mm512_shuffle_f32x4::<0xDD>(x88, y88)),
                (12 + c, _mm512_shuffle_f32x4::<0xDD>(xdd, ydd)),
            ];
            for (j, col) in cols {
                if j < width {
                    // SAFETY: line `j < width` of the `width` lines at `dst`.
                    unsafe { _mm512_storeu_ps(dst.add(j * PANEL), col) };
                }
            }
        }
    }

    /// Writes the panels of `m` queries (`queries` is `m × dim`, row-major), query `j` times
    /// `scale[j]` when given, to `panels`: `ceil(m/16) × dim × 16` floats, line `(p·dim + k)`
    /// holding component `k` of queries `16p .. 16p + 16` (0 past `m`). Each line is written
    /// exactly once, by blocks of 16 queries × 16 components transposed in registers.
    ///
    /// # Safety
    /// `avx512f` is available; `dim >= 1`, `m >= 1`, `queries.len() == m·dim`; `scale`, if
    /// given, has at least `m` factors; `panels` is valid for writes of `ceil(m/16)·dim·16`
    /// floats.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn pack_panels(
        queries: &[f32],
        dim: usize,
        m: usize,
        scale: Option<&[f32]>,
        panels: *mut f32,
    ) {
        let qp = queries.as_ptr();
        for p in 0..m.div_ceil(PANEL) {
            let lanes = PANEL.min(m - p * PANEL);
            let mut kb = 0;
            while kb < dim {
                let width = PANEL.min(dim - kb);
                let mask: __mmask16 = if width == PANEL {
                    !0
                } else {
                    ((1u32 << width) - 1) as u16
                };
                let mut r = [_mm512_setzero_ps(); 16];
                for (i, ri) in r.iter_mut().enumerate().take(lanes) {
                    let j = p * PANEL + i;
                    // SAFETY: components `kb .. kb + width` of query `j < m` lie inside the
                    // `m × dim` queries; the other lanes are masked off.
                    let x = unsafe { _mm512_maskz_loadu_ps(mask, qp.add(j * dim + kb)) };
                    *ri = match scale {
                        // Lane-wise `x * f` in f32: the same rounding as the scalar product.
                        Some(s) => _mm512_mul_ps(x, _mm512_set1_ps(s[j])),
                        None => x,
                    };
                }
                // SAFETY: lines `p·dim + kb .. p·dim + kb + width` (`kb + width <= dim`) lie
                // inside the `ceil(m/16) × dim` lines of 16 floats.
                unsafe { transpose16_store(r, panels.add((p * dim + kb) * PANEL), width) };
                kb += width;
            }
        }
    }

    /// `out = finish(rows · Qᵀ)` for `rows` (`n × dim`) and the packed queries (`m` of them).
    /// Every element of `out` is written by the first k-block before any is read.
    ///
    /// # Safety
    /// `avx512f` is available; `dim >= 1`; `rows.len() == n·dim`; `panels.len() ==
    /// ceil(m/16)·dim·16`; `out` is valid for writes of `n·m` floats and aliases neither input;
    /// `m >= 1`; `Finish::Cosine` carries `n` factors.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn rows_times_queries(
        rows: &[f32],
        dim: usize,
        panels: &[f32],
        m: usize,
        finish: Finish<'_>,
        out: *mut f32,
    ) {
        let (last, inv): (End, &[f32]) = match finish {
            Finish::Raw => (End::Raw, &[]),
            Finish::Sanitize => (End::Sanitize, &[]),
            Finish::Cosine(inv) => (End::Cosine, inv),
        };
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
            // Equal k-blocks of at most KC / take components (384 → 3 × 128 for 4 panels, 3 × 128
            // for 3, 2 × 192 for 2, 1 × 384 for 1; 385 → 4 × 97 for 4 panels).
            let kc = dim.div_ceil(dim.div_ceil(KC / take));
            let mut k0 = 0;
            while k0 < dim {
                let k1 = dim.min(k0 + kc);
                let end = if k1 == dim { last } else { End::Partial };
                let (ks, e) = ((k0, k1), (end, inv));
                // SAFETY: panels `p .. p + take` exist (`take <= left`); `k0 < k1 <= dim`, and
                // the k-blocks of this group run in order from `k0 = 0`, each over every row,
                // so a block with `k0 > 0` reads only what the previous k-block wrote; the rest
                // is the caller's contract.
                unsafe {
                    match take {
                        4 => panel_run::<4, 6>(rows, dim, ks, panels, p, m, out, e),
                        3 => panel_run::<3, 9>(rows, dim, ks, panels, p, m, out, e),
                        2 => panel_run::<2, 14>(rows, dim, ks, panels, p, m, out, e),
                        _ => panel_run::<1, 14>(rows, dim, ks, panels, p, m, out, e),
                    }
                }
                k0 = k1;
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

    pub(crate) fn dot64(a: impl Iterator<Item = f64>, b: impl Iterator<Item = f64>) -> f64 {
        a.zip(b).map(|(x, y)| x * y).sum()
    }

    pub(crate) fn cosine64(ab: f64, aa: f64, bb: f64) -> f32 {
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
    use crate::store::sanitize;

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

    /// Every backend this CPU can run.
    fn backends() -> Vec<GemmBackend> {
        #[allow(unused_mut)]
        let mut b = vec![GemmBackend::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx2") && has!("fma") {
                b.push(GemmBackend::Fma);
            }
            if has!("avx512f") {
                b.push(GemmBackend::Avx512);
            }
        }
        b
    }

    /// Runs the batch kernel into a buffer prefilled with a NaN of a payload no arithmetic
    /// produces, so an element the kernel failed to write shows up.
    fn run(rows: &[f32], packed: &PackedQueries, finish: Finish<'_>, len: usize) -> Vec<f32> {
        const UNWRITTEN: u32 = 0x7fa5_a5a5;
        let mut out = vec![MaybeUninit::new(f32::from_bits(UNWRITTEN)); len];
        let got = rows_times_queries(rows, packed, finish, &mut out).to_vec();
        assert!(
            got.iter().all(|x| x.to_bits() != UNWRITTEN),
            "unwritten output"
        );
        got
    }

    /// Every backend against the references, on shapes that are not multiples of the register
    /// blocks (14, 9, 6, 4 rows; groups of 1 to 4 panels of 16 queries; one to five k-blocks),
    /// raw and with the cosine finish: every backend bit-identical to the sequential FMA chain
    /// (then scaled, clamped and sanitised as `score_vec` does), and that chain within
    /// `1e-5 · Σ|aᵢbᵢ|` of the f64 reference.
    #[test]
    fn rows_times_queries_matches_references() {
        for &dim in &[1usize, 3, 15, 16, 17, 33, 128, 129, 384, 385, 600] {
            for &n in &[0usize, 1, 3, 4, 13, 14, 15, 19, 29, 57] {
                for &m in &[
                    1usize, 2, 15, 16, 17, 31, 32, 33, 48, 64, 65, 96, 100, 129, 144,
                ] {
                    let rows = data((dim * 1000 + n) as u64, n * dim);
                    let flat = data((dim * 7 + m) as u64, m * dim);
                    // Factors that push some scores past ±1, so the clamp is exercised too.
                    let inv: Vec<f32> = data(n as u64, n).iter().map(|x| x * 4.0).collect();
                    for backend in backends() {
                        let packed = PackedQueries::pack(&flat, dim, None, backend, true);
                        assert_eq!(packed.len(), m);
                        let raw = run(&rows, &packed, Finish::Raw, n * m);
                        let cos = run(&rows, &packed, Finish::Cosine(&inv), n * m);
                        for (r, row) in rows.chunks_exact(dim).enumerate() {
                            for (j, q) in flat.chunks_exact(dim).enumerate() {
                                let got = raw[r * m + j];
                                let want = fma_dot_reference(row, q);
                                assert_eq!(
                                    got.to_bits(),
                                    want.to_bits(),
                                    "{backend:?} dim {dim} n {n} m {m} at ({r}, {j})"
                                );
                                let exact = scalar::dot_f32(row, q).unwrap_or(f32::NAN);
                                let scale: f32 =
                                    row.iter().zip(q).map(|(a, b)| (a * b).abs()).sum();
                                assert!(
                                    (got - exact).abs() <= 1e-5 * scale.max(1e-30),
                                    "dim {dim} n {n} m {m}: {got} vs {exact}"
                                );
                                let want = sanitize((got * inv[r]).clamp(-1.0, 1.0));
                                assert_eq!(cos[r * m + j].to_bits(), want.to_bits());
                            }
                        }
                    }
                }
            }
        }
    }

    /// The fused finish on the values where it can go wrong: NaN (→ -∞), ±∞, exactly ±1, past
    /// ±1, ±0 and subnormals, bit for bit against the scalar formulas of `score_vec`, with
    /// scaled queries (`pack` multiplies exactly like `prepare_into`).
    #[test]
    fn rows_times_queries_finish_edge_values() {
        let dim = 2;
        let big = f32::MAX;
        #[rustfmt::skip]
        let rows = [
            big, big,     // overflows to ±∞ against most queries
            f32::INFINITY, f32::NEG_INFINITY, // NaN (∞ - ∞, or ∞ · 0)
            1.0, 0.0,     // exactly a query's first component
            -0.0, 0.0,    // signed zeros
            1e-40, 0.0,   // subnormal
            3.0, -2.0,    // past ±1 after scaling
            0.5, 0.25,
        ];
        let n = rows.len() / dim;
        let queries = [4.0, 4.0, 1.0, 0.0, -1.0, 0.5, 0.0, 0.0, 1e-30, -3.0];
        let m = queries.len() / dim;
        let scale = [0.5, 1.0, 2.0, 1.0, 0.25];
        let inv = [1.0, 0.5, 1.0, 2.0, 1e30, 0.75, 1.0];
        for backend in backends() {
            let packed = PackedQueries::pack(&queries, dim, Some(&scale), backend, true);
            let raw = run(&rows, &packed, Finish::Raw, n * m);
            let dot = run(&rows, &packed, Finish::Sanitize, n * m);
            let cos = run(&rows, &packed, Finish::Cosine(&inv), n * m);
            assert!(raw.iter().any(|x| x.is_nan()) && raw.iter().any(|x| x.is_infinite()));
            assert!(cos.contains(&1.0) && cos.contains(&-1.0));
            for r in 0..n {
                for j in 0..m {
                    let s = raw[r * m + j];
                    let q: Vec<f32> = queries[j * dim..(j + 1) * dim]
                        .iter()
                        .map(|&x| x * scale[j])
                        .collect();
                    let want = fma_dot_reference(&rows[r * dim..(r + 1) * dim], &q);
                    // The same bits, or both NaN (IEEE 754 leaves a NaN's payload open).
                    assert!(
                        s.to_bits() == want.to_bits() || (s.is_nan() && want.is_nan()),
                        "{backend:?} ({r}, {j}): {s} vs {want}"
                    );
                    assert_eq!(
                        dot[r * m + j].to_bits(),
                        sanitize(s).to_bits(),
                        "({r}, {j})"
                    );
                    let want = sanitize((s * inv[r]).clamp(-1.0, 1.0));
                    assert_eq!(cos[r * m + j].to_bits(), want.to_bits(), "({r}, {j})");
                }
            }
        }
    }

    /// `pack` scales exactly like `prepare_into` and keeps the queries flat unless they are
    /// packed for the kernel.
    #[test]
    fn pack_scales_exactly_and_keeps_flat_where_needed() {
        let q = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
        let p = PackedQueries::pack(&q, 3, Some(&[0.1, 3.0]), GemmBackend::Portable, false);
        assert_eq!(p.len(), 2);
        assert_eq!(
            p.flat(),
            Some(&[0.1, 2.0 * 0.1, 3.0 * 0.1, 12.0, 15.0, 18.0][..])
        );
        let p = PackedQueries::pack(&q, 3, None, GemmBackend::detect(), false);
        assert_eq!(p.flat(), Some(&q[..6]));
        let p = PackedQueries::pack(&q, 3, None, GemmBackend::detect(), true);
        assert_eq!(p.flat(), None);
        let p = PackedQueries::pack(&q, 0, None, GemmBackend::detect(), true);
        assert_eq!(p.len(), 0);
    }

    /// Every backend's panels (AVX-512: 16 × 16 blocks transposed in registers) against the
    /// layout written index by index, on counts and dimensions that are not multiples of 16.
    #[test]
    fn panels_match_the_element_layout() {
        for (&dim, backend) in [1usize, 5, 16, 17, 31, 33, 384, 385]
            .iter()
            .flat_map(|d| backends().into_iter().map(move |b| (d, b)))
        {
            for &m in &[1usize, 3, 15, 16, 17, 33, 100] {
                let q = data((dim * 13 + m) as u64, m * dim);
                let scale = data(m as u64, m);
                for sc in [None, Some(&scale[..])] {
                    let packed = PackedQueries::pack(&q, dim, sc, backend, true);
                    let Layout::Panels(lines) = &packed.layout else {
                        panic!("batches are packed in panels");
                    };
                    let panels = line_floats(lines);
                    assert_eq!(panels.as_ptr() as usize % 64, 0, "lines are cache-aligned");
                    let mut want = vec![0.0f32; m.div_ceil(PANEL) * dim * PANEL];
                    for j in 0..m {
                        for k in 0..dim {
                            let x = q[j * dim + k];
                            want[((j / PANEL) * dim + k) * PANEL + j % PANEL] =
                                sc.map_or(x, |s| x * s[j]);
                        }
                    }
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(panels), bits(&want), "{backend:?} dim {dim} m {m}");
                }
            }
        }
    }

    /// The f64 round-to-odd emulation against libm's `fmaf` (what `f32::mul_add` calls in
    /// this crate's tests, which are not compiled with FMA), bit for bit: random operands of
    /// every magnitude, products that sit exactly on an f32 tie broken or not by a tiny
    /// addend (where rounding the f64 sum to nearest twice goes wrong), cancellations, signed
    /// zeros, subnormal results, overflow, infinities and NaN.
    #[test]
    fn fma_round_to_odd_is_the_fused_multiply_add() {
        use portable::fma_round_to_odd;
        let check = |x: f32, y: f32, z: f32| {
            let want = x.mul_add(y, z);
            let got = fma_round_to_odd(x, y, z);
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "fma({x:e}, {y:e}, {z:e}) = {want:e}, emulated {got:e}"
            );
        };
        // Ties: (1 + 2⁻¹²)² = 1 + 2⁻¹¹ + 2⁻²⁴, half an f32 ulp above 1 + 2⁻¹¹.
        let t = 1.0 + 2f32.powi(-12);
        for z in [
            0.0,
            2f32.powi(-100),
            -2f32.powi(-100),
            2f32.powi(-149),
            -0.0,
        ] {
            check(t, t, z);
            check(-t, t, z);
        }
        assert_eq!(
            fma_round_to_odd(t, t, 2f32.powi(-100)),
            1.0 + 2f32.powi(-11) + 2f32.powi(-23)
        );
        let specials = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            f32::MIN_POSITIVE,
            2f32.powi(-149),
            -2f32.powi(-149),
            f32::MAX,
            -f32::MAX,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            1.5,
            3.0,
            1e-20,
            1e20,
        ];
        for &x in &specials {
            for &y in &specials {
                for &z in &specials {
                    check(x, y, z);
                }
            }
        }
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for i in 0..2_000_000u32 {
            let (a, b, c) = (next(), next(), next());
            // Mostly operands near 1 (ties and cancellations), sometimes any bit pattern.
            let near = |r: u64| f32::from_bits(0x3f80_0000 ^ (r as u32 & 0x807f_ffff));
            let any = |r: u64| f32::from_bits(r as u32);
            let (x, y) = if i % 4 == 0 {
                (any(a), any(b))
            } else {
                (near(a), near(b))
            };
            // An addend that cancels most of the product, or one of any size.
            let z = match i % 3 {
                0 => {
                    -(x * y)
                        + f32::from_bits(c as u32 & 0x0fff_ffff)
                            * if c >> 63 == 0 { 1.0 } else { -1.0 }
                }
                1 => any(c),
                _ => near(c) * 2f32.powi((c >> 40) as i32 % 60 - 30),
            };
            check(x, y, z);
        }
    }

    /// The portable kernel with the emulated FMA gives the same bits as with the native one.
    #[test]
    fn the_portable_kernel_is_the_same_with_the_emulated_fma() {
        let (n, m, dim) = (13usize, 35usize, 70usize);
        let rows = data(5, n * dim);
        let queries = data(6, m * dim);
        let packed = PackedQueries::pack(&queries, dim, None, GemmBackend::Portable, true);
        let Layout::Panels(lines) = &packed.layout else {
            panic!("packed for the kernel");
        };
        let panels = line_floats(lines);
        let mut native = vec![0.0f32; n * m];
        let mut emulated = vec![0.0f32; n * m];
        portable::rows_times_queries::<portable::Native>(
            &rows,
            dim,
            panels,
            m,
            Finish::Raw,
            &mut native,
        );
        portable::rows_times_queries::<portable::RoundToOdd>(
            &rows,
            dim,
            panels,
            m,
            Finish::Raw,
            &mut emulated,
        );
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&native), bits(&emulated));
    }

    /// Inconsistent lengths never panic (release) nor read out of bounds: the output is NaN.
    #[test]
    #[cfg(not(debug_assertions))]
    fn rows_times_queries_rejects_inconsistent_lengths() {
        let packed = PackedQueries::pack(&[1.0; 6], 3, None, GemmBackend::detect(), true);
        for (rows, len) in [(5, 3), (6, 5)] {
            let mut out = vec![MaybeUninit::new(0.0); len];
            let got = rows_times_queries(&vec![1.0; rows], &packed, Finish::Raw, &mut out);
            assert!(got.iter().all(|x| x.is_nan()));
        }
        // A cosine factor missing for a row.
        let mut out = vec![MaybeUninit::new(0.0); 4];
        let got = rows_times_queries(&[1.0; 6], &packed, Finish::Cosine(&[1.0]), &mut out);
        assert!(got.iter().all(|x| x.is_nan()));
    }
}
