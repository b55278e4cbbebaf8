//! Bounded top-k selection with a deterministic total order.
//!
//! Algorithm: a binary heap of at most `k` entries whose root is the *worst* kept hit; a
//! candidate enters only if it beats the root. Entries are hits packed into `u128` keys whose
//! integer order is the ranking order (see [`pack`]), so every heap comparison is one integer
//! compare. Ranking is the total order "higher score first,
//! then smaller id first", with scores compared by [`f32::total_cmp`], so the kept set and its
//! order are a pure function of the (id, score) pairs offered, whatever order they arrive in
//! (this is what lets parallel and serial batches agree exactly).
//! Time O(n log k) worst case, O(n) when most candidates lose to the root.

use crate::VectorId;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// One search result: a stored vector's id and its score (higher is better; see
/// [`Metric`](crate::Metric) for what the score means per metric).
///
/// ```
/// use rhospace_vectordb::{Metric, VectorStore};
/// let mut store = VectorStore::new(2, Metric::Dot).unwrap();
/// let id = store.insert(&[1.0, 2.0]).unwrap();
/// let hits = store.top_k(&[1.0, 1.0], 1).unwrap();
/// assert_eq!((hits[0].id, hits[0].score), (id, 3.0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The stored vector's id.
    pub id: VectorId,
    /// Its score against the query (higher is better).
    pub score: f32,
}

impl Hit {
    /// The ranking order: `Less` means `self` ranks before (is better than) `other`.
    /// Higher score first (by [`f32::total_cmp`]); equal scores: smaller id first.
    ///
    /// ```
    /// use rhospace_vectordb::{Hit, VectorId};
    /// use std::cmp::Ordering;
    /// let a = Hit { id: VectorId(7), score: 0.5 };
    /// let b = Hit { id: VectorId(3), score: 0.5 };
    /// assert_eq!(b.rank_cmp(&a), Ordering::Less);
    /// ```
    pub fn rank_cmp(&self, other: &Hit) -> Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then(self.id.cmp(&other.id))
    }
}

/// A hit packed so that integer order is rank order: a *smaller* key ranks *before* (is better
/// than) a larger one, exactly as [`Hit::rank_cmp`] says, and [`unpack`] gives the hit back
/// bit for bit.
///
/// Layout: high 64 bits `!ordered(score)` (zero-extended), low 64 bits the id, where
/// `ordered` maps `f32` bits to a `u32` whose unsigned order is [`f32::total_cmp`]'s (the
/// same transform `total_cmp` applies, then the sign bit flipped). Higher score, smaller high
/// half; equal scores, the id decides.
#[inline]
fn pack(hit: Hit) -> u128 {
    let bits = hit.score.to_bits();
    // Negative: flip every bit; non-negative: flip the sign bit. Monotone in total_cmp.
    let ordered = bits ^ ((((bits as i32) >> 31) as u32) | 0x8000_0000);
    (u128::from(!ordered) << 64) | u128::from(hit.id.0)
}

/// The hit of a [`pack`]ed key.
#[inline]
fn unpack(key: u128) -> Hit {
    let ordered = !((key >> 64) as u32);
    // Inverse of `pack`'s transform: the sign bit of `ordered` is set for non-negative scores.
    let bits = if ordered & 0x8000_0000 != 0 {
        ordered ^ 0x8000_0000
    } else {
        !ordered
    };
    Hit {
        id: VectorId(key as u64),
        score: f32::from_bits(bits),
    }
}

/// Keeps the `k` best hits offered so far.
///
/// Invariant: `heap` holds at most `k` [`pack`]ed hits, distinct when the ids offered are; its
/// maximum is the worst kept hit.
pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<u128>,
}

impl TopK {
    /// `k` must be at least 1 (checked by callers; a 0 here keeps nothing).
    pub(crate) fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k.min(4096) + 1),
        }
    }

    /// Offers one candidate.
    #[inline]
    pub(crate) fn push(&mut self, hit: Hit) {
        let key = pack(hit);
        if self.heap.len() < self.k {
            self.heap.push(key);
        } else if let Some(mut worst) = self.heap.peek_mut() {
            if key < *worst {
                *worst = key;
            }
        }
    }

    /// The score a candidate must reach to possibly enter: `-inf` until full. A candidate with a
    /// *lower* score can be skipped without calling [`push`](Self::push); one with an equal score
    /// still needs `push` (the id decides).
    #[inline]
    pub(crate) fn floor(&self) -> f32 {
        if self.heap.len() < self.k {
            f32::NEG_INFINITY
        } else {
            self.heap
                .peek()
                .map_or(f32::NEG_INFINITY, |&w| unpack(w).score)
        }
    }

    /// Merges another selection into this one.
    pub(crate) fn merge(&mut self, other: TopK) {
        for key in other.heap {
            self.push(unpack(key));
        }
    }

    /// The kept hits, best first.
    pub(crate) fn into_sorted(self) -> Vec<Hit> {
        // Ascending keys are best first.
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(unpack)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scores that stress the order: both zeros, infinities, NaNs of both signs, subnormals.
    const SCORES: [f32; 12] = [
        f32::NEG_INFINITY,
        -1.5,
        -f32::MIN_POSITIVE,
        -1e-45,
        -0.0,
        0.0,
        1e-45,
        0.25,
        f32::MAX,
        f32::INFINITY,
        f32::NAN,
        -f32::NAN,
    ];

    /// Key order is `rank_cmp`'s, and unpacking gives back the same bits.
    #[test]
    fn packed_order_is_rank_order_and_round_trips() {
        let ids = [0u64, 1, 7, u64::MAX];
        let hits: Vec<Hit> = SCORES
            .iter()
            .flat_map(|&score| {
                ids.iter().map(move |&id| Hit {
                    id: VectorId(id),
                    score,
                })
            })
            .collect();
        for a in &hits {
            let back = unpack(pack(*a));
            assert_eq!((back.id, back.score.to_bits()), (a.id, a.score.to_bits()));
            for b in &hits {
                assert_eq!(pack(*a).cmp(&pack(*b)), a.rank_cmp(b), "{a:?} vs {b:?}");
            }
        }
    }

    /// The kept set is the sort's first `k`, whatever the arrival order.
    #[test]
    fn keeps_the_sorted_prefix_in_any_order() {
        let mut hits: Vec<Hit> = (0..60u64)
            .map(|i| Hit {
                id: VectorId(i * 13 % 61),
                score: SCORES[(i % 10) as usize],
            })
            .collect();
        let mut want = hits.clone();
        want.sort_by(Hit::rank_cmp);
        for k in [1, 5, 60, 100] {
            for rev in [false, true] {
                if rev {
                    hits.reverse();
                }
                let mut top = TopK::new(k);
                hits.iter().for_each(|&h| top.push(h));
                let got: Vec<(VectorId, u32)> = top
                    .into_sorted()
                    .iter()
                    .map(|h| (h.id, h.score.to_bits()))
                    .collect();
                let want: Vec<(VectorId, u32)> = want
                    .iter()
                    .take(k)
                    .map(|h| (h.id, h.score.to_bits()))
                    .collect();
                assert_eq!(got, want, "k {k}");
            }
        }
    }
}
