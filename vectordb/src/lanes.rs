//! Fixed-order f32 sums: the f32 dot product and squared L2 distance, the same bits on every CPU.
//!
//! A SIMD library that picks its kernel at run time (simsimd: AVX-512, AVX2, NEON, SVE or
//! serial) sums the terms of a dot product in an order that depends on the register width, so
//! the last bits of a score can differ from one machine to the next. A tuple space must give
//! the same COMMs and the same state on every machine (SPEC §3): two validators on different
//! CPUs that ordered two near-tied scores differently, or judged a threshold differently,
//! would fire different COMMs, reach different state roots, and fail each other's replay. So
//! every f32 score of a stored vector is summed here, in one order fixed independently of the
//! hardware:
//!
//! * the `n` components are cut into `B = ⌊n / 64⌋` full blocks of [`LANES`] = 64 and a tail
//!   of `r = n - 64B < 64`;
//! * lane `j` of 64 adds the terms `i = 64k + j` (`k < B`) in increasing `i`, starting from
//!   `+0.0`; tail lane `t` of 8 adds the tail's terms `i = 64B + 8k + t` in increasing `i`,
//!   starting from `+0.0`;
//! * a term is one f32 multiply (`aᵢ·bᵢ`, or `d·d` with `d = aᵢ - bᵢ`) and one f32 add, each
//!   rounded on its own (never a fused multiply-add);
//! * each set of lanes is folded in halves, `acc[j] += acc[j + w]` for `w` = 32, 16, ..., 1
//!   (tail: 4, 2, 1), and the result is `acc[0] + tail[0]`.
//!
//! Each of these operations is exactly rounded by IEEE 754, and Rust never contracts `a * b + c`
//! into a fused multiply-add, so every target whose f32 arithmetic is IEEE 754 with subnormals
//! (x86-64 SSE and AVX, AArch64 NEON) gives the same bits. The one generic loop below is
//! compiled three times on x86-64 (baseline SSE2, AVX2, AVX-512F) and one is picked at run
//! time; the width changes how many lanes one instruction handles, never which values are
//! added. The tests check every compiled width against a plain per-index oracle,
//! and pin a digest of many results so that a change of order anywhere fails them.
//!
//! **Speed** (criterion medians on this project's machine, `vectordb_cosine` group of
//! `benches/vectordb.rs`, our `dot_f32` against simsimd's dot in the same run): 4.6 against
//! 3.8 ns at 3 dimensions, 9.4 against 7.6 at 100, 7.3 against 7.2 at 128, 18.4 against 18.0
//! at 384, 32 against 35 at 768, 61 against 74 at 1,536; a full top-k scan of 10,000 rows of
//! 384 floats in a store is unchanged (536–543 µs before, 535–538 µs after). 64 lanes are eight
//! AVX2 registers (four AVX-512 ones), enough independent sums to hide the add latency; 32
//! lanes measured 15–20 % slower from 384 dimensions on, and a tail spread over the 64 lanes
//! (rather than its own eight) made short vectors 3–5x slower. AVX-512 runs only on slices
//! that start on a cache line (see [`Width::for_slices`]).
//!
//! Everything here is total: slices of different lengths are summed over the shorter one
//! (callers check lengths), and nothing panics.

/// Partial sums over the full blocks: the fixed shape of the summation order.
const LANES: usize = 64;

/// Partial sums over the last, partial block.
const TAIL_LANES: usize = 8;

/// One term of a sum: what a pair of components contributes.
trait Term {
    fn term(x: f32, y: f32) -> f32;
}

/// `x·y`, for the dot product.
struct Product;

impl Term for Product {
    #[inline(always)]
    fn term(x: f32, y: f32) -> f32 {
        x * y
    }
}

/// `(x - y)²`, for the squared L2 distance.
struct SquaredDifference;

impl Term for SquaredDifference {
    #[inline(always)]
    fn term(x: f32, y: f32) -> f32 {
        let d = x - y;
        d * d
    }
}

/// The fixed-order sum of `T::term(aᵢ, bᵢ)` (see the module docs), written so that the
/// compiler keeps the lanes in SIMD registers of any width. Always inlined into one function
/// per instruction set.
#[inline(always)]
fn sum<T: Term>(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let blocks = n - n % LANES;
    let (head_a, tail_a) = a[..n].split_at(blocks);
    let (head_b, tail_b) = b[..n].split_at(blocks);
    let tail = tail_sum::<T>(tail_a, tail_b);
    if blocks == 0 {
        // The 64 lanes would fold to +0.0.
        return 0.0 + tail;
    }
    let mut acc = [0.0f32; LANES];
    for (x, y) in head_a.chunks_exact(LANES).zip(head_b.chunks_exact(LANES)) {
        for j in 0..LANES {
            acc[j] += T::term(x[j], y[j]);
        }
    }
    fold(acc) + tail
}

/// The tail (fewer than [`LANES`] components) summed in its eight lanes, component `t` to lane
/// `t mod 8` in order, then folded.
#[inline(always)]
fn tail_sum<T: Term>(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; TAIL_LANES];
    let mut eights_a = a.chunks_exact(TAIL_LANES);
    let mut eights_b = b.chunks_exact(TAIL_LANES);
    for (x, y) in (&mut eights_a).zip(&mut eights_b) {
        for j in 0..TAIL_LANES {
            lanes[j] += T::term(x[j], y[j]);
        }
    }
    // One lane at a time, each index a constant once the loop is unrolled: the lanes stay in
    // registers (a vectorised, masked version stored them and read them back, and the
    // store-to-load stall made 3-dimensional sums 4x slower).
    let (rest_a, rest_b) = (eights_a.remainder(), eights_b.remainder());
    for (t, lane) in lanes.iter_mut().enumerate() {
        if let (Some(&x), Some(&y)) = (rest_a.get(t), rest_b.get(t)) {
            *lane += T::term(x, y);
        }
    }
    fold(lanes)
}

/// Folds lanes in halves (`acc[j] += acc[j + w]` for `w` = N/2, ..., 1) and returns `acc[0]`.
#[inline(always)]
fn fold<const N: usize>(mut acc: [f32; N]) -> f32 {
    let mut w = N / 2;
    while w > 0 {
        for j in 0..w {
            acc[j] += acc[j + w];
        }
        w /= 2;
    }
    acc[0]
}

/// An instruction set the fixed-order sums are compiled for. Which one runs never changes a
/// result, only its speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Width {
    /// The target's baseline (SSE2 on x86-64, NEON on AArch64).
    Baseline,
    /// x86-64 with AVX2 (256-bit registers).
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// x86-64 with AVX-512F (512-bit registers).
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Width {
    /// The instruction set to sum `a` and `b` with: AVX-512 when the CPU has it and both
    /// slices start on a cache line, else AVX2 when the CPU has it, else the baseline. (A
    /// 512-bit load from a slice that does not start on a cache line straddles two lines
    /// every time; streaming 10,000 rows of 384 floats that start 16 bytes into a line, the
    /// AVX-512 copy took 570 µs against 512 µs for AVX2 and for simsimd, and 515 µs once the
    /// rows were aligned. The result is the same bits whichever runs.)
    #[inline]
    pub(crate) fn for_slices(a: &[f32], b: &[f32]) -> Width {
        #[cfg(target_arch = "x86_64")]
        {
            let aligned = (a.as_ptr() as usize | b.as_ptr() as usize).is_multiple_of(64);
            if aligned && std::arch::is_x86_feature_detected!("avx512f") {
                return Width::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return Width::Avx2;
            }
        }
        let _ = (a, b);
        Width::Baseline
    }

    /// Every width this CPU can run (for the tests, which compare them).
    #[cfg(test)]
    pub(crate) fn available() -> Vec<Width> {
        let mut all = vec![Width::Baseline];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                all.push(Width::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                all.push(Width::Avx512);
            }
        }
        all
    }
}

/// The fixed-order dot product `Σ aᵢ·bᵢ` (over the shorter slice), on the instruction set
/// [`Width::for_slices`] picks.
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    run::<Product>(Width::for_slices(a, b), a, b)
}

/// The fixed-order squared L2 distance `Σ (aᵢ - bᵢ)²` (over the shorter slice), on the
/// instruction set [`Width::for_slices`] picks.
#[inline]
pub(crate) fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    run::<SquaredDifference>(Width::for_slices(a, b), a, b)
}

/// [`dot`] on a chosen instruction set (the tests force each).
#[cfg(test)]
pub(crate) fn dot_on(width: Width, a: &[f32], b: &[f32]) -> f32 {
    run::<Product>(width, a, b)
}

/// [`l2sq`] on a chosen instruction set (the tests force each).
#[cfg(test)]
pub(crate) fn l2sq_on(width: Width, a: &[f32], b: &[f32]) -> f32 {
    run::<SquaredDifference>(width, a, b)
}

#[inline]
fn run<T: Term>(width: Width, a: &[f32], b: &[f32]) -> f32 {
    match width {
        Width::Baseline => sum::<T>(a, b),
        // SAFETY (both arms): a `Width` other than `Baseline` comes from `for_slices` or
        // `available`, which return it only when the CPU reported the feature at run time.
        #[cfg(target_arch = "x86_64")]
        Width::Avx2 => unsafe { x86::avx2::<T>(a, b) },
        #[cfg(target_arch = "x86_64")]
        Width::Avx512 => unsafe { x86::avx512::<T>(a, b) },
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{sum, Term};

    /// [`sum`] compiled for AVX2. Safety: the CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn avx2<T: Term>(a: &[f32], b: &[f32]) -> f32 {
        sum::<T>(a, b)
    }

    /// [`sum`] compiled for AVX-512F. Safety: the CPU must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn avx512<T: Term>(a: &[f32], b: &[f32]) -> f32 {
        sum::<T>(a, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The order of the module docs, written index by index: the oracle for every width.
    fn oracle(a: &[f32], b: &[f32], term: fn(f32, f32) -> f32) -> f32 {
        let n = a.len().min(b.len());
        let blocks = n / 64 * 64;
        let mut acc = [0.0f32; 64];
        let mut tail = [0.0f32; 8];
        for i in 0..n {
            if i < blocks {
                acc[i % 64] += term(a[i], b[i]);
            } else {
                tail[(i - blocks) % 8] += term(a[i], b[i]);
            }
        }
        for w in [32, 16, 8, 4, 2, 1] {
            for j in 0..w {
                acc[j] += acc[j + w];
            }
        }
        for w in [4, 2, 1] {
            for j in 0..w {
                tail[j] += tail[j + w];
            }
        }
        acc[0] + tail[0]
    }

    /// The same bits, or both NaN (IEEE 754 leaves a NaN's payload open; scores never keep a
    /// NaN).
    fn same(x: f32, y: f32) -> bool {
        x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
    }

    fn product(x: f32, y: f32) -> f32 {
        x * y
    }

    fn squared_difference(x: f32, y: f32) -> f32 {
        (x - y) * (x - y)
    }

    /// Values of every kind a sum meets: mixed signs and magnitudes, subnormals, signed zeros,
    /// infinities and NaN (xorshift, fixed seed).
    fn values(seed: u64, len: usize) -> Vec<f32> {
        let mut s = seed | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let unit = (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                match s % 61 {
                    0 => f32::from_bits((s >> 20) as u32 & 0x807f_ffff), // subnormal
                    1 => -0.0,
                    2 => 0.0,
                    3 => 1e30 * unit,
                    4 => 1e-30 * unit,
                    5 if seed.is_multiple_of(7) => f32::INFINITY,
                    6 if seed.is_multiple_of(11) => f32::NAN,
                    _ => unit * (1 + (s >> 60)) as f32,
                }
            })
            .collect()
    }

    #[test]
    fn every_width_sums_in_the_documented_order() {
        for len in (0..=200).chain([383, 384, 385, 767, 1536, 4099]) {
            for seed in 0..6u64 {
                let a = values(seed * 1000 + len as u64, len);
                let b = values(seed * 7919 + len as u64 + 1, len);
                let want_dot = oracle(&a, &b, product);
                let want_l2 = oracle(&a, &b, squared_difference);
                for w in Width::available() {
                    let (d, l) = (dot_on(w, &a, &b), l2sq_on(w, &a, &b));
                    assert!(same(d, want_dot), "dot, {w:?}, len {len}, seed {seed}");
                    assert!(same(l, want_l2), "l2sq, {w:?}, len {len}, seed {seed}");
                }
                assert!(same(dot(&a, &b), want_dot));
                assert!(same(l2sq(&a, &b), want_l2));
            }
        }
    }

    #[test]
    fn signed_zeros_and_the_shorter_slice() {
        // Every lane starts at +0.0, so products of -0.0 sum to +0.0, with or without a block.
        assert_eq!(dot(&[-0.0; 40], &[1.0; 40]).to_bits(), 0.0f32.to_bits());
        assert_eq!(dot(&[-0.0; 70], &[1.0; 70]).to_bits(), 0.0f32.to_bits());
        assert_eq!(dot(&[-0.0], &[1.0]).to_bits(), 0.0f32.to_bits());
        assert_eq!(dot(&[], &[]).to_bits(), 0.0f32.to_bits());
        assert_eq!(dot(&[1.0, 2.0, 3.0], &[1.0, 1.0]), 3.0);
        assert_eq!(l2sq(&[1.0, 2.0], &[4.0, 6.0, 9.0]), 25.0);
        assert!(dot(&[f32::INFINITY, 1.0], &[1.0, 0.0]).is_infinite());
        assert!(dot(&[f32::INFINITY, f32::INFINITY], &[1.0, -1.0]).is_nan());
    }

    #[test]
    fn the_order_is_a_real_choice() {
        // 1 followed by 2⁻²⁴s: a sequential sum loses every small term (each is half an ulp
        // of 1 and rounds to even), while most of them meet in lanes 1..64 and survive.
        let mut a = vec![1.0f32];
        a.extend(std::iter::repeat_n(2f32.powi(-24), 63 * 4));
        let ones = vec![1.0f32; a.len()];
        let sequential = a.iter().fold(0.0f32, |s, &x| s + x);
        assert_eq!(sequential, 1.0);
        assert!(dot(&a, &ones) > 1.0);
    }
}
