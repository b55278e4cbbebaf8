//! `Trail`: a persistent append-only sequence, for the per-shard dirty lists.
//!
//! Items are appended to an open *tail* chunk (a `Vec` behind a `triomphe::Arc`); a full tail,
//! or a tail that a clone shares, is *sealed*: moved, as it is, into a persistent vector of
//! immutable chunks, and a fresh tail opened. So:
//! - cloning (a soft checkpoint of the shard) is O(1): the chunk vector and the tail are shared;
//! - an append while nothing is shared writes into the tail `Vec` in place: no atomic
//!   read-modify-write (triomphe's uniqueness check is one load, std's `Arc` needs a locked
//!   compare-and-swap), no copy of a tree node;
//! - an append after a clone seals the shared tail without copying an item (a sealed chunk is
//!   never written again, so both owners keep reading it) and opens a new one.
//!
//! | operation | cost |
//! |---|---|
//! | `push` | O(1) amortised; O(log chunks) when it seals |
//! | `clone` | O(1) |
//! | `is_empty` | O(1) |
//! | iteration | O(len) |
//!
//! `imbl::Vector` does the same job with a tree of 64-item chunks whose every append checks the
//! whole path for sharing and copies chunks by value: on the produce path that cost ~40 ns of an
//! 80 ns produce (`produce_consume_cycle/produce_only/10000`, 2 shared cores, commit e2f247b).
//!
//! Limits: a clone taken between every two appends makes every chunk one item long (one
//! allocation per item, and a chunk pointer per item in the sealed vector); iteration stays
//! in order and O(len).

use imbl::Vector;
use triomphe::Arc;

/// Items per sealed chunk at most: large enough that sealing (one persistent-vector append)
/// is rare, small enough that the tail's `Vec` growth stays cheap.
const CHUNK: usize = 256;

/// A persistent append-only sequence.
///
/// Invariant: every chunk in `sealed` is non-empty and never written again (it may be shared
/// by clones); so the trail is empty exactly when `sealed` and `tail` both are.
#[derive(Clone, Debug)]
pub(crate) struct Trail<T> {
    sealed: Vector<Arc<Vec<T>>>,
    tail: Arc<Vec<T>>,
}

impl<T> Default for Trail<T> {
    fn default() -> Self {
        Self {
            sealed: Vector::new(),
            tail: Arc::new(Vec::new()),
        }
    }
}

impl<T> Trail<T> {
    /// The number of items. Time: O(chunks).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.sealed.iter().map(|c| c.len()).sum::<usize>() + self.tail.len()
    }

    /// Whether there are no items.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.tail.is_empty() && self.sealed.is_empty()
    }

    /// Appends `item`.
    #[inline]
    pub(crate) fn push(&mut self, item: T) {
        // `get_mut` succeeds exactly when no clone shares the tail: one Acquire load of the
        // count, pairing with the Release decrement of a clone that dropped its pointer, so
        // that clone's reads of the tail happen before this write.
        match Arc::get_mut(&mut self.tail) {
            Some(tail) if tail.len() < CHUNK => tail.push(item),
            _ => self.seal_and_push(item),
        }
    }

    /// Seals the tail (full, or shared by a clone) and opens a new one holding `item`.
    #[cold]
    fn seal_and_push(&mut self, item: T) {
        let mut fresh = Vec::with_capacity(if self.tail.len() >= CHUNK { CHUNK } else { 4 });
        fresh.push(item);
        let old = std::mem::replace(&mut self.tail, Arc::new(fresh));
        if !old.is_empty() {
            self.sealed.push_back(old);
        }
    }

    /// The items in append order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.sealed
            .iter()
            .flat_map(|chunk| chunk.iter())
            .chain(self.tail.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_in_order_across_chunks() {
        let mut t = Trail::default();
        for i in 0..(3 * CHUNK + 5) {
            t.push(i);
        }
        assert_eq!(t.len(), 3 * CHUNK + 5);
        assert!(t.iter().copied().eq(0..3 * CHUNK + 5));
    }

    #[test]
    fn a_clone_keeps_its_items_while_the_original_grows() {
        let mut t = Trail::default();
        let mut snapshots = Vec::new();
        for i in 0..1000usize {
            if i % 37 == 0 {
                snapshots.push((i, t.clone()));
            }
            t.push(i);
        }
        for (n, snap) in &snapshots {
            assert_eq!(snap.len(), *n);
            assert!(snap.iter().copied().eq(0..*n), "snapshot at {n}");
        }
        assert!(t.iter().copied().eq(0..1000));
        // A snapshot grows on its own, without touching the original.
        let (n, mut snap) = snapshots.swap_remove(3);
        snap.push(usize::MAX);
        assert!(snap.iter().copied().eq((0..n).chain([usize::MAX])));
        assert!(t.iter().copied().eq(0..1000));
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// Append to clone `at` (modulo the live clones).
        Push(usize, u32),
        /// Clone clone `at`.
        Clone(usize),
        /// Drop clone `at` (the last one is kept).
        Drop(usize),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            6 => (any::<usize>(), any::<u32>()).prop_map(|(a, v)| Op::Push(a, v)),
            2 => any::<usize>().prop_map(Op::Clone),
            1 => any::<usize>().prop_map(Op::Drop),
        ]
    }

    proptest::proptest! {
        /// Any interleaving of appends, clones and drops: every live clone reads exactly the
        /// items appended to its own line (clones taken with full, empty or shared tails;
        /// tails reused in place after the other owner is dropped).
        #[test]
        fn clones_behave_as_separate_lists(ops in proptest::collection::vec(op(), 1..600)) {
            let mut live: Vec<(Trail<u32>, Vec<u32>)> = vec![(Trail::default(), Vec::new())];
            for op in ops {
                match op {
                    Op::Push(at, v) => {
                        let n = live.len();
                        let (t, m) = &mut live[at % n];
                        t.push(v);
                        m.push(v);
                    }
                    Op::Clone(at) => {
                        let c = live[at % live.len()].clone();
                        live.push(c);
                    }
                    Op::Drop(at) => {
                        if live.len() > 1 {
                            let n = live.len();
                            live.swap_remove(at % n);
                        }
                    }
                }
                for (t, m) in &live {
                    proptest::prop_assert_eq!(t.len(), m.len());
                    proptest::prop_assert_eq!(t.is_empty(), m.is_empty());
                    proptest::prop_assert!(t.iter().eq(m.iter()));
                }
            }
        }
    }

    #[test]
    fn a_clone_of_a_full_tail_and_pushes_on_both_sides() {
        let mut a = Trail::default();
        for i in 0..CHUNK {
            a.push(i);
        }
        let mut b = a.clone();
        a.push(1000);
        b.push(2000);
        assert!(a.iter().copied().eq((0..CHUNK).chain([1000])));
        assert!(b.iter().copied().eq((0..CHUNK).chain([2000])));
    }

    #[test]
    fn empty_and_default() {
        let mut t: Trail<u8> = Trail::default();
        assert!(t.is_empty() && t.iter().next().is_none());
        let c = t.clone();
        t.push(1);
        assert!(c.is_empty() && !t.is_empty());
    }
}
