//! Every SIMD kernel against its scalar reference, on seeded random data and odd dimensions.
//!
//! Tolerances (stated once, used below):
//! * f32 dot / L2: `|simd - ref| <= 1e-5 · Σ|terms| + 1e-6` (f32 accumulation vs f64 reference).
//! * f32 cosine: `1e-5` absolute.
//! * f16 dot / L2: `2e-3 · Σ|terms| + 1e-3`; f16 cosine: `2e-3` absolute (half-precision
//!   arithmetic may be used on CPUs with native FP16).
//! * i8 dot / L2 / cosine: exact (cosine: the same bits as the reference).
//! * Hamming: exact. Jaccard: `1e-6` absolute.

mod common;

use common::{Rng, DIMS};
use rhospace_vectordb::kernels::{self, scalar, LengthMismatch, F16};

fn close(simd: f32, reference: f32, tol: f32, what: &str, dim: usize) {
    assert!(
        (simd - reference).abs() <= tol,
        "{what} dim {dim}: simd {simd} vs reference {reference} (tol {tol})"
    );
}

fn abs_terms(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x * y).abs()).sum()
}

fn abs_sq_terms(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

#[test]
fn f32_kernels_match_reference() {
    let mut rng = Rng::new(1);
    for &dim in DIMS {
        for _ in 0..4 {
            let a = rng.vec_f32(dim);
            let b = rng.vec_f32(dim);
            let tol = 1e-5 * abs_terms(&a, &b) + 1e-6;
            close(
                kernels::dot_f32(&a, &b).unwrap(),
                scalar::dot_f32(&a, &b).unwrap(),
                tol,
                "dot_f32",
                dim,
            );
            let tol = 1e-5 * abs_sq_terms(&a, &b) + 1e-6;
            close(
                kernels::l2sq_f32(&a, &b).unwrap(),
                scalar::l2sq_f32(&a, &b).unwrap(),
                tol,
                "l2sq_f32",
                dim,
            );
            close(
                kernels::cosine_f32(&a, &b).unwrap(),
                scalar::cosine_f32(&a, &b).unwrap(),
                1e-5,
                "cosine_f32",
                dim,
            );
            // A vector with itself: cosine 1, distance 0.
            close(
                kernels::cosine_f32(&a, &a).unwrap(),
                1.0,
                1e-5,
                "self cos",
                dim,
            );
            assert_eq!(kernels::l2sq_f32(&a, &a).unwrap(), 0.0);
        }
    }
}

#[test]
fn f16_kernels_match_reference() {
    let mut rng = Rng::new(2);
    for &dim in DIMS {
        for _ in 0..4 {
            let a: Vec<F16> = rng.vec_f32(dim).into_iter().map(F16::from_f32).collect();
            let b: Vec<F16> = rng.vec_f32(dim).into_iter().map(F16::from_f32).collect();
            let (fa, fb): (Vec<f32>, Vec<f32>) = (
                a.iter().map(|x| x.to_f32()).collect(),
                b.iter().map(|x| x.to_f32()).collect(),
            );
            close(
                kernels::dot_f16(&a, &b).unwrap(),
                scalar::dot_f16(&a, &b).unwrap(),
                2e-3 * abs_terms(&fa, &fb) + 1e-3,
                "dot_f16",
                dim,
            );
            close(
                kernels::l2sq_f16(&a, &b).unwrap(),
                scalar::l2sq_f16(&a, &b).unwrap(),
                2e-3 * abs_sq_terms(&fa, &fb) + 1e-3,
                "l2sq_f16",
                dim,
            );
            close(
                kernels::cosine_f16(&a, &b).unwrap(),
                scalar::cosine_f16(&a, &b).unwrap(),
                2e-3,
                "cosine_f16",
                dim,
            );
        }
    }
}

#[test]
fn i8_kernels_match_reference() {
    let mut rng = Rng::new(3);
    for &dim in DIMS {
        for _ in 0..4 {
            let a = rng.vec_i8(dim);
            let b = rng.vec_i8(dim);
            assert_eq!(
                kernels::dot_i8(&a, &b),
                scalar::dot_i8(&a, &b),
                "dot_i8 dim {dim}"
            );
            assert_eq!(
                kernels::l2sq_i8(&a, &b),
                scalar::l2sq_i8(&a, &b),
                "l2sq_i8 dim {dim}"
            );
            close(
                kernels::cosine_i8(&a, &b).unwrap(),
                scalar::cosine_i8(&a, &b).unwrap(),
                2e-3,
                "cosine_i8",
                dim,
            );
        }
    }
    // Extremes, including -128 (outside the symmetric code range the store uses).
    let a = vec![-128i8; 385];
    let b = vec![127i8; 385];
    assert_eq!(kernels::dot_i8(&a, &b), scalar::dot_i8(&a, &b));
    assert_eq!(kernels::l2sq_i8(&a, &b), scalar::l2sq_i8(&a, &b));
    assert_eq!(kernels::dot_i8(&a, &a), scalar::dot_i8(&a, &a));
}

/// i8 cosine is the exact integer dot products divided in f64, the same bits as the scalar
/// reference on every CPU (simsimd's own i8 cosine normalises with a reciprocal square root
/// whose last bits depend on the SIMD backend it picks at run time).
#[test]
fn i8_cosine_is_the_same_bits_as_the_reference() {
    let mut rng = Rng::new(8);
    for &dim in DIMS {
        for _ in 0..16 {
            let a = rng.vec_i8(dim);
            let b = rng.vec_i8(dim);
            for (x, y) in [(&a, &b), (&a, &a), (&b, &a)] {
                let got = kernels::cosine_i8(x, y).unwrap();
                let want = scalar::cosine_i8(x, y).unwrap();
                assert_eq!(got.to_bits(), want.to_bits(), "dim {dim}: {got} vs {want}");
            }
        }
    }
}

#[test]
fn binary_kernels_match_reference() {
    let mut rng = Rng::new(4);
    for &bytes in DIMS {
        for _ in 0..4 {
            let a = rng.vec_u8(bytes);
            let mut b = rng.vec_u8(bytes);
            // Sparser sets too, so intersections are small.
            if bytes % 2 == 0 {
                for x in &mut b {
                    *x &= 0x11;
                }
            }
            assert_eq!(
                kernels::hamming(&a, &b),
                scalar::hamming(&a, &b),
                "hamming {bytes}"
            );
            close(
                kernels::jaccard(&a, &b).unwrap(),
                scalar::jaccard(&a, &b).unwrap(),
                1e-6,
                "jaccard",
                bytes,
            );
        }
    }
    let zero = vec![0u8; 17];
    assert_eq!(kernels::jaccard(&zero, &zero), Ok(1.0));
    assert_eq!(scalar::jaccard(&zero, &zero), Ok(1.0));
    let ones = vec![0xffu8; 17];
    assert_eq!(kernels::jaccard(&zero, &ones), Ok(0.0));
    assert_eq!(kernels::hamming(&zero, &ones), Ok(17 * 8));
}

#[test]
fn zero_vector_conventions_agree() {
    let z = [0.0f32; 9];
    let x = [1.0f32; 9];
    assert_eq!(kernels::cosine_f32(&z, &z), Ok(1.0));
    assert_eq!(scalar::cosine_f32(&z, &z), Ok(1.0));
    assert_eq!(kernels::cosine_f32(&z, &x), Ok(0.0));
    assert_eq!(scalar::cosine_f32(&z, &x), Ok(0.0));
    let zi = [0i8; 9];
    let xi = [3i8; 9];
    assert_eq!(kernels::cosine_i8(&zi, &zi), scalar::cosine_i8(&zi, &zi));
    assert_eq!(kernels::cosine_i8(&zi, &xi), scalar::cosine_i8(&zi, &xi));
    // Opposite vectors: exactly -1 after clamping.
    let y: Vec<f32> = x.iter().map(|v| -v).collect();
    close(
        kernels::cosine_f32(&x, &y).unwrap(),
        -1.0,
        1e-5,
        "opposite",
        9,
    );
    assert!(kernels::cosine_f32(&x, &y).unwrap() >= -1.0);
}

#[test]
fn every_kernel_rejects_length_mismatch() {
    let e = Err(LengthMismatch { left: 2, right: 3 });
    let (a, b) = ([1.0f32; 2], [1.0f32; 3]);
    assert_eq!(kernels::dot_f32(&a, &b), e);
    assert_eq!(kernels::cosine_f32(&a, &b), e);
    assert_eq!(kernels::l2sq_f32(&a, &b), e);
    assert_eq!(scalar::dot_f32(&a, &b), e);
    assert_eq!(scalar::cosine_f32(&a, &b), e);
    assert_eq!(scalar::l2sq_f32(&a, &b), e);
    let (a, b) = ([F16(0); 2], [F16(0); 3]);
    assert_eq!(kernels::dot_f16(&a, &b), e);
    assert_eq!(kernels::cosine_f16(&a, &b), e);
    assert_eq!(kernels::l2sq_f16(&a, &b), e);
    assert_eq!(scalar::dot_f16(&a, &b), e);
    assert_eq!(scalar::cosine_f16(&a, &b), e);
    assert_eq!(scalar::l2sq_f16(&a, &b), e);
    let (a, b) = ([1i8; 2], [1i8; 3]);
    assert_eq!(kernels::dot_i8(&a, &b), e);
    assert_eq!(kernels::cosine_i8(&a, &b), e);
    assert_eq!(kernels::l2sq_i8(&a, &b), e);
    assert_eq!(scalar::dot_i8(&a, &b), e);
    assert_eq!(scalar::cosine_i8(&a, &b), e);
    assert_eq!(scalar::l2sq_i8(&a, &b), e);
    let (a, b) = ([1u8; 2], [1u8; 3]);
    assert_eq!(
        kernels::hamming(&a, &b),
        Err(LengthMismatch { left: 2, right: 3 })
    );
    assert_eq!(kernels::jaccard(&a, &b), e);
    assert_eq!(
        scalar::hamming(&a, &b),
        Err(LengthMismatch { left: 2, right: 3 })
    );
    assert_eq!(scalar::jaccard(&a, &b), e);
    // Empty slices are fine.
    assert_eq!(kernels::dot_f32(&[], &[]), Ok(0.0));
}

#[test]
fn f16_round_trips_every_half() {
    for bits in 0..=u16::MAX {
        let h = F16(bits);
        let f = h.to_f32();
        if f.is_nan() {
            assert!(F16::from_f32(f).to_f32().is_nan());
            continue;
        }
        assert_eq!(F16::from_f32(f), h, "bits {bits:#06x} -> {f}");
    }
}

#[test]
fn f16_rounds_to_nearest_even() {
    // 1 + 2^-11 is halfway between 1 and the next half (1 + 2^-10): ties to even (1.0).
    assert_eq!(F16::from_f32(1.0 + 1.0 / 2048.0).to_f32(), 1.0);
    // 1 + 3·2^-11 is halfway between 1+2^-10 (odd) and 1+2^-9 (even): rounds up.
    assert_eq!(
        F16::from_f32(1.0 + 3.0 / 2048.0).to_f32(),
        1.0 + 2.0 / 1024.0
    );
    // Just above halfway rounds up.
    assert_eq!(
        F16::from_f32(1.0 + 1.0 / 2048.0 + 1.0 / 65536.0).to_f32(),
        1.0 + 1.0 / 1024.0
    );
    // Largest finite half, overflow, smallest subnormal, underflow to zero.
    assert_eq!(F16::from_f32(65504.0).0, 0x7bff);
    assert_eq!(F16::from_f32(1e6).to_f32(), f32::INFINITY);
    assert_eq!(F16::from_f32(5.960_464_5e-8).0, 0x0001);
    assert_eq!(F16::from_f32(2.0e-8).0, 0x0000);
    assert_eq!(F16::from_f32(-0.0).0, 0x8000);
    // Agrees with simsimd's own conversion on random values in the finite half range (simsimd
    // 6.5's software conversion turns overflow into a NaN pattern, ours into infinity).
    let mut rng = Rng::new(5);
    for _ in 0..10_000 {
        let x = rng.unit() * 65_000.0;
        assert_eq!(F16::from_f32(x).0, simsimd::f16::from_f32(x).0, "{x}");
    }
}

/// The i8 kernels stay exact (dot, L2) and within tolerance (cosine) on long vectors, where
/// simsimd's 32-bit accumulator overflows: from 33,026 components `l2sq_i8` of `-128`s against
/// `127`s used to return a *negative* squared distance, from 2^17 `dot_i8` of `-128`s a negative
/// dot and `cosine_i8` of opposite vectors `+1`.
#[test]
fn i8_kernels_do_not_overflow_on_long_vectors() {
    for n in [33_025usize, 33_026, 40_000, 131_072, 300_001] {
        let a = vec![-128i8; n];
        let b = vec![127i8; n];
        assert_eq!(
            kernels::l2sq_i8(&a, &b),
            scalar::l2sq_i8(&a, &b),
            "l2sq n {n}"
        );
        assert_eq!(kernels::dot_i8(&a, &a), scalar::dot_i8(&a, &a), "dot n {n}");
        assert_eq!(kernels::dot_i8(&a, &b), scalar::dot_i8(&a, &b), "dot n {n}");
        close(
            kernels::cosine_i8(&a, &b).unwrap(),
            scalar::cosine_i8(&a, &b).unwrap(),
            2e-3,
            "cosine_i8 long",
            n,
        );
    }
    let mut rng = Rng::new(6);
    let a = rng.vec_i8(100_003);
    let b = rng.vec_i8(100_003);
    assert_eq!(kernels::l2sq_i8(&a, &b), scalar::l2sq_i8(&a, &b));
    assert_eq!(kernels::dot_i8(&a, &b), scalar::dot_i8(&a, &b));
    close(
        kernels::cosine_i8(&a, &b).unwrap(),
        scalar::cosine_i8(&a, &b).unwrap(),
        2e-3,
        "cosine_i8 random long",
        100_003,
    );
}

/// f32 cosine at any magnitude: simsimd's f32 sums underflow for vectors of norm 1e-30 and
/// overflow for 1e19 (its cosine kernel then said 1.0 whatever the angle); the result must
/// stay within 1e-4 of the f64 reference from tiny to huge norms, zeros included.
#[test]
fn f32_cosine_holds_at_any_magnitude() {
    let a = [1.0f32, 2.0, 0.5, -3.0, 0.25, 7.0, -1.5, 4.0, 0.0, 2.5];
    let b = [2.0f32, 1.0, -0.5, 1.0, -2.0, 0.5, 3.0, -4.0, 1.0, 0.75];
    for scale in [
        1e-38f32, 1e-30, 1e-25, 1e-20, 1e-15, 1.0, 1e15, 1e18, 1e19, 1e25, 1e30, 1e37,
    ] {
        for (sa, sb) in [(scale, scale), (scale, 1.0), (1.0, scale)] {
            let x: Vec<f32> = a.iter().map(|v| v * sa).collect();
            let y: Vec<f32> = b.iter().map(|v| v * sb).collect();
            let got = kernels::cosine_f32(&x, &y).unwrap();
            let want = scalar::cosine_f32(&x, &y).unwrap();
            assert!(
                (got - want).abs() <= 1e-4,
                "scales {sa:e}/{sb:e}: {got} vs reference {want}"
            );
        }
    }
    let zero = [0.0f32; 10];
    assert_eq!(kernels::cosine_f32(&zero, &zero), Ok(1.0));
    assert_eq!(kernels::cosine_f32(&zero, &a), Ok(0.0));
    let subnormal = [1e-45f32; 10];
    assert_eq!(kernels::cosine_f32(&subnormal, &subnormal), Ok(1.0));
}

/// f32 dot products whose f32 sums overflow: `inf - inf` made NaN of a small true value; the
/// kernel must give what the f64 reference gives (infinite only beyond f32's range).
#[test]
fn f32_dot_survives_overflowing_sums() {
    let cases: [(&[f32], &[f32]); 4] = [
        (&[1e20, 1e20], &[1e20, -1e20]),
        (&[3e38, 3e38, 1.0], &[2.0, -2.0, 5.0]),
        (&[1e20; 16], &[1e20; 16]),
        (&[-1e20; 3], &[1e20; 3]),
    ];
    for (a, b) in cases {
        let got = kernels::dot_f32(a, b).unwrap();
        let want = scalar::dot_f32(a, b).unwrap();
        assert_eq!(
            got.to_bits(),
            want.to_bits(),
            "{a:?}·{b:?}: {got} vs {want}"
        );
    }
}

/// Scores are the same bits on every machine (SPEC §3: a tuple space gives the same COMMs on
/// every CPU): a digest of many `Query::score` results (every metric, dimensions 1 to 1,536,
/// seeded data) is pinned here. It was computed on an AVX-512 machine; a CPU whose kernel sums
/// in another order, or a change of the summation order, changes it.
#[test]
fn scores_are_the_same_bits_on_every_machine() {
    use rhospace_vectordb::{Metric, Query};
    let mut rng = Rng::new(0x5eed_5c0e);
    let mut digest = 0xcbf2_9ce4_8422_2325u64; // FNV-1a over the score bits
    for dim in (1..=80).chain([127, 128, 129, 384, 768, 1536]) {
        for metric in [Metric::Cosine, Metric::Dot, Metric::L2Squared] {
            let q = Query::new(&rng.vec_f32(dim), metric).expect("a valid query");
            for _ in 0..4 {
                let row: Vec<f32> = rng.vec_f32(dim).iter().map(|x| x * 3.0).collect();
                let score = q.score(&row).expect("a valid row");
                for byte in score.to_bits().to_le_bytes() {
                    digest = (digest ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
                }
            }
        }
    }
    assert_eq!(digest, 0x7c90_6372_4a54_5ba9, "digest {digest:#018x}");
}
