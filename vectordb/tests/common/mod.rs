//! Seeded test data: a SplitMix64 generator and clustered embeddings.
#![allow(dead_code)]

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, seedable, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn unit(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// Roughly normal (sum of four uniforms), mean 0.
    pub fn gauss(&mut self) -> f32 {
        (self.unit() + self.unit() + self.unit() + self.unit()) * 0.5
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn vec_f32(&mut self, dim: usize) -> Vec<f32> {
        (0..dim).map(|_| self.unit()).collect()
    }

    pub fn vec_i8(&mut self, dim: usize) -> Vec<i8> {
        (0..dim).map(|_| self.next_u64() as i8).collect()
    }

    pub fn vec_u8(&mut self, dim: usize) -> Vec<u8> {
        (0..dim).map(|_| self.next_u64() as u8).collect()
    }
}

/// `n` vectors around `clusters` random centres (noise 0.35 per component), flat row-major.
pub fn clustered(rng: &mut Rng, n: usize, dim: usize, clusters: usize) -> Vec<f32> {
    let centres: Vec<Vec<f32>> = (0..clusters).map(|_| rng.vec_f32(dim)).collect();
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let c = &centres[rng.below(clusters)];
        out.extend(c.iter().map(|&x| x + 0.35 * rng.gauss()));
    }
    out
}

/// Dimensions that are and are not multiples of common SIMD widths.
pub const DIMS: &[usize] = &[
    1, 2, 3, 4, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 383, 384, 385, 767,
    1536,
];
