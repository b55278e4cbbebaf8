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
