//! Bounded top-k selection with a deterministic total order.
//!
//! Algorithm: a binary min-heap of at most `k` entries whose root is the *worst* kept hit; a
//! candidate enters only if it beats the root. Ranking is the total order "higher score first,
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

/// Heap entry ordered so that the heap's maximum is the worst-ranked hit.
struct Worst(Hit);

impl PartialEq for Worst {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Worst {}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        // "Greater" = ranks later = worse, so BinaryHeap's peek is the worst kept hit.
        self.0.rank_cmp(&other.0)
    }
}

/// Keeps the `k` best hits offered so far.
pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<Worst>,
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
        if self.heap.len() < self.k {
            self.heap.push(Worst(hit));
        } else if let Some(mut worst) = self.heap.peek_mut() {
            if hit.rank_cmp(&worst.0) == Ordering::Less {
                *worst = Worst(hit);
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
            self.heap.peek().map_or(f32::NEG_INFINITY, |w| w.0.score)
        }
    }

    /// Merges another selection into this one.
    pub(crate) fn merge(&mut self, other: TopK) {
        for w in other.heap {
            self.push(w.0);
        }
    }

    /// The kept hits, best first.
    pub(crate) fn into_sorted(self) -> Vec<Hit> {
        let mut v: Vec<Hit> = self.heap.into_iter().map(|w| w.0).collect();
        v.sort_by(Hit::rank_cmp);
        v
    }
}
