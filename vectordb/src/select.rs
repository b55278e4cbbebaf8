//! Per-query top-k over row-major score tiles: the selection step of
//! [`VectorStore::batch_top_k`](crate::VectorStore::batch_top_k).
//!
//! # Algorithm
//!
//! A [`Selection`] holds one bounded heap ([`TopK`]) per query and, beside them, a contiguous
//! copy of each heap's *floor* (the score a candidate must reach to possibly enter,
//! [`TopK::floor`]). A tile row of `m` scores is compared with the `m` floors in blocks of
//! [`LANES`] without branches (the compiler emits vector compares and a bit mask); only the
//! queries whose bit is set go to their heaps. Once the heaps are full the
//! floors are high, and almost every block is dismissed by that one compare.
//!
//! A selection lives across tiles (the batch keeps one per thread, not one per tile), and
//! reuses one score buffer for all of them, so the floors rise once per thread rather than
//! once per tile.
//!
//! # Guarantees
//!
//! A score is skipped only when it is below its floor (IEEE `<`, or NaN, which batch scores
//! never are: they are sanitised), i.e. when `k` kept hits already rank strictly before it, so
//! it could never be selected. The kept set is therefore the top `k` under [`Hit::rank_cmp`] of
//! every hit offered (ids are unique), whatever order rows and tiles arrive in and however
//! they are split between selections that are [`merge`](Selection::merge)d afterwards: the
//! basis of the batch's thread-count independence.
//!
//! # Cost
//!
//! | step | time |
//! |---|---|
//! | [`offer_tile`](Selection::offer_tile), r rows | O(r · m) compares + heap work |
//! | heap work, n rows in random order, one selection | O(m · k · log(n / k) · log k) expected |
//! | [`merge`](Selection::merge) | O(m · k log k) |
//! | [`into_sorted`](Selection::into_sorted) | O(m · k log k) |

use crate::topk::{Hit, TopK};
use crate::VectorId;
use std::mem::MaybeUninit;

/// Floors compared per block: a 512-bit vector of f32 (four SSE compares on baseline
/// x86-64), and the width of the bit mask [`reaching`] returns.
const LANES: usize = 16;

/// Top-k selections of `m` queries, fed by score tiles (see the module docs).
///
/// Invariant: `tops.len() == floors.len() == m`, and `floors[j] == tops[j].floor()` between
/// calls.
pub(crate) struct Selection {
    tops: Vec<TopK>,
    floors: Vec<f32>,
    /// Score buffer reused by every tile; its contents are meaningless between calls.
    scratch: Vec<f32>,
}

impl Selection {
    /// Empty selections of the `k` best hits for each of `m` queries.
    pub(crate) fn new(m: usize, k: usize) -> Self {
        Selection {
            tops: (0..m).map(|_| TopK::new(k)).collect(),
            floors: vec![f32::NEG_INFINITY; m],
            scratch: Vec::new(),
        }
    }

    /// Offers a tile of `rows` rows: `fill` writes the tile's scores (`rows × m`, row-major)
    /// into the buffer it is given and returns it initialised; row `r` is the hit `id_of(r)`,
    /// or is skipped when that is `None` (a tombstone).
    pub(crate) fn offer_tile(
        &mut self,
        rows: usize,
        fill: impl FnOnce(&mut [MaybeUninit<f32>]) -> &mut [f32],
        id_of: impl Fn(usize) -> Option<VectorId>,
    ) {
        let m = self.floors.len();
        if m == 0 || rows == 0 {
            return;
        }
        let len = rows * m;
        self.scratch.clear();
        self.scratch.reserve(len);
        let scores = fill(&mut self.scratch.spare_capacity_mut()[..len]);
        for (r, line) in scores.chunks_exact(m).enumerate() {
            let Some(id) = id_of(r) else { continue };
            let blocks = line
                .chunks(LANES)
                .zip(self.floors.chunks_mut(LANES))
                .zip(self.tops.chunks_mut(LANES));
            for ((scores, floors), tops) in blocks {
                let mut reached = reaching(scores, floors);
                while reached != 0 {
                    let j = reached.trailing_zeros() as usize;
                    reached &= reached - 1;
                    // `j` < `scores.len()` (one bit per lane), which is also the length of
                    // `floors` and `tops`; the `get`s never fail.
                    if let (Some(&score), Some(floor), Some(top)) =
                        (scores.get(j), floors.get_mut(j), tops.get_mut(j))
                    {
                        top.push(Hit { id, score });
                        *floor = top.floor();
                    }
                }
            }
        }
    }

    /// Merges `other` (a selection for the same queries and `k`) into this one.
    pub(crate) fn merge(&mut self, other: Selection) {
        for ((top, floor), theirs) in self.tops.iter_mut().zip(&mut self.floors).zip(other.tops) {
            top.merge(theirs);
            *floor = top.floor();
        }
    }

    /// The kept hits of each query, best first.
    pub(crate) fn into_sorted(self) -> Vec<Vec<Hit>> {
        self.tops.into_iter().map(TopK::into_sorted).collect()
    }
}

/// Bit `i` set when `scores[i] >= floors[i]` (at most [`LANES`] of each). No branches: a
/// full block is a fixed-size loop, which compiles to vector compares and a mask extraction.
#[inline]
fn reaching(scores: &[f32], floors: &[f32]) -> u32 {
    let mask = |s: &[f32], f: &[f32]| {
        s.iter()
            .zip(f)
            .enumerate()
            .fold(0, |mask, (i, (&s, &f))| mask | (u32::from(s >= f) << i))
    };
    match (
        <&[f32; LANES]>::try_from(scores),
        <&[f32; LANES]>::try_from(floors),
    ) {
        (Ok(s), Ok(f)) => mask(s, f),
        _ => mask(scores, floors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Any split of the rows between tiles and selections, in any order, keeps exactly the
    /// brute-force top k (ties by smaller id), including ties across tile boundaries.
    #[test]
    fn any_split_and_order_gives_the_brute_force_top_k() {
        let (m, n, k) = (19, 40, 3);
        // Few distinct scores, so ties abound.
        let score = |row: usize, j: usize| ((row * 7 + j * 3) % 5) as f32 - 2.0;
        let mut want: Vec<Vec<Hit>> = (0..m)
            .map(|j| {
                let mut all: Vec<Hit> = (0..n)
                    .filter(|r| r % 9 != 4)
                    .map(|r| Hit {
                        id: VectorId(r as u64),
                        score: score(r, j),
                    })
                    .collect();
                all.sort_by(Hit::rank_cmp);
                all
            })
            .collect();
        for w in &mut want {
            w.truncate(k);
        }
        for tile in [1, 3, 16, 40] {
            let starts: Vec<usize> = (0..n).step_by(tile).collect();
            for order in [false, true] {
                let mut sels = vec![Selection::new(m, k), Selection::new(m, k)];
                let mut iter: Vec<usize> = starts.clone();
                if order {
                    iter.reverse();
                }
                for (t, &start) in iter.iter().enumerate() {
                    let rows = tile.min(n - start);
                    sels[t % 2].offer_tile(
                        rows,
                        |out| {
                            let out = crate::kernels::init_filled(out, f32::NAN);
                            for (i, x) in out.iter_mut().enumerate() {
                                *x = score(start + i / m, i % m);
                            }
                            out
                        },
                        |r| ((start + r) % 9 != 4).then_some(VectorId((start + r) as u64)),
                    );
                }
                let mut merged = sels.pop().expect("two selections");
                merged.merge(sels.pop().expect("two selections"));
                assert_eq!(merged.into_sorted(), want, "tile {tile} reversed {order}");
            }
        }
    }
}
