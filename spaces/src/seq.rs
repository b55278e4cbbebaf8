//! `SeqItems`: a persistent sequence with stable sequence numbers and tombstones.
//!
//! Items live in an `imbl::Vector<Option<T>>` in arrival order. Item `k` has sequence number
//! `front + k`; removal in the middle leaves a tombstone (`None`) so other items keep their
//! numbers, and tombstones at either end are trimmed at once. When tombstones outnumber live
//! items (plus a slack), [`SeqItems::compact`] renumbers; callers holding numbers (the exact
//! index) rebuild then.
//!
//! Cloning is O(1) (the vector is a shared tree); a write to a clone copies only the path to the
//! changed chunk, and a write to an unshared vector mutates in place.
//!
//! | operation | cost |
//! |---|---|
//! | `push`, `get`, `take` | O(log n), in place when unshared |
//! | `clone` | O(1) |
//! | iteration | O(n + tombstones) |
//! | `compact` | O(n), amortised O(1) per removal |

use std::ops::ControlFlow;

use imbl::Vector;

/// Invariant: `live` equals the number of `Some` slots; the first and last slots, if any, are
/// `Some`.
#[derive(Clone, Debug)]
pub(crate) struct SeqItems<T: Clone> {
    slots: Vector<Option<T>>,
    /// Sequence number of `slots[0]`.
    front: u64,
    live: usize,
}

impl<T: Clone> Default for SeqItems<T> {
    fn default() -> Self {
        Self {
            slots: Vector::new(),
            front: 0,
            live: 0,
        }
    }
}

impl<T: Clone> SeqItems<T> {
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The number the next pushed item will get.
    #[inline]
    pub(crate) fn next_seq(&self) -> u64 {
        self.front + self.slots.len() as u64
    }

    #[inline]
    pub(crate) fn push(&mut self, value: T) -> u64 {
        let seq = self.next_seq();
        self.slots.push_back(Some(value));
        self.live += 1;
        seq
    }

    #[inline]
    pub(crate) fn get(&self, seq: u64) -> Option<&T> {
        let pos = seq.checked_sub(self.front)?;
        self.slots.get(usize::try_from(pos).ok()?)?.as_ref()
    }

    /// Removes item `seq`, leaving a tombstone (trimmed at the ends).
    pub(crate) fn take(&mut self, seq: u64) -> Option<T> {
        let pos = usize::try_from(seq.checked_sub(self.front)?).ok()?;
        let value = self.slots.get_mut(pos)?.take()?;
        self.live -= 1;
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.front += 1;
        }
        while let Some(None) = self.slots.back() {
            self.slots.pop_back();
        }
        if self.slots.is_empty() {
            self.front = 0;
        }
        Some(value)
    }

    /// Oldest live item.
    #[inline]
    pub(crate) fn first(&self) -> Option<(u64, &T)> {
        self.slots.front()?.as_ref().map(|v| (self.front, v))
    }

    /// Newest live item.
    #[inline]
    pub(crate) fn last(&self) -> Option<(u64, &T)> {
        let v = self.slots.back()?.as_ref()?;
        Some((self.next_seq() - 1, v))
    }

    /// Live items, oldest first.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = (u64, &T)> + '_ {
        let front = self.front;
        self.slots
            .iter()
            .enumerate()
            .filter_map(move |(i, s)| s.as_ref().map(|v| (front + i as u64, v)))
    }

    /// Calls `f` on the live items, oldest first, until it breaks: what [`iter`](Self::iter)
    /// yields, but walked a leaf chunk at a time (one tree lookup per chunk of 64, not per
    /// item), for hot scans.
    pub(crate) fn for_each_live<'s>(
        &'s self,
        mut f: impl FnMut(u64, &'s T) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let mut seq = self.front;
        for chunk in self.slots.leaves() {
            for slot in chunk {
                if let Some(v) = slot {
                    f(seq, v)?;
                }
                seq += 1;
            }
        }
        ControlFlow::Continue(())
    }

    /// Whether tombstones are numerous enough to compact.
    #[inline]
    pub(crate) fn wants_compaction(&self) -> bool {
        self.slots.len() > 2 * self.live + 64
    }

    /// Drops tombstones and renumbers from 0; returns nothing, callers rebuild any index.
    pub(crate) fn compact(&mut self) {
        let slots: Vector<Option<T>> = self.slots.iter().filter(|s| s.is_some()).cloned().collect();
        self.slots = slots;
        self.front = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::SeqItems;

    #[test]
    fn numbers_stay_stable_across_removal_and_trim() {
        let mut s = SeqItems::default();
        let a = s.push('a');
        let b = s.push('b');
        let c = s.push('c');
        assert_eq!(s.take(b), Some('b'));
        assert_eq!(s.get(a), Some(&'a'));
        assert_eq!(s.get(c), Some(&'c'));
        assert_eq!(s.take(a), Some('a'));
        assert_eq!(s.first(), Some((c, &'c')));
        assert_eq!(s.last(), Some((c, &'c')));
        assert_eq!(s.take(c), Some('c'));
        assert!(s.is_empty());
        assert_eq!(s.take(c), None);
        assert_eq!(s.iter().count(), 0);
    }

    #[test]
    fn compaction_keeps_order() {
        let mut s = SeqItems::default();
        let seqs: Vec<u64> = (0..300).map(|i| s.push(i)).collect();
        for (i, q) in seqs.iter().enumerate() {
            if i % 5 != 0 && i != 299 {
                s.take(*q);
            }
        }
        assert!(s.wants_compaction());
        s.compact();
        let got: Vec<i32> = s.iter().map(|(_, v)| *v).collect();
        let want: Vec<i32> = (0..300).filter(|i| i % 5 == 0 || *i == 299).collect();
        assert_eq!(got, want);
        assert_eq!(s.len(), want.len());
    }

    #[test]
    fn for_each_live_walks_what_iter_yields() {
        use std::ops::ControlFlow;
        let mut s = SeqItems::default();
        // Several leaf chunks, tombstones inside them, a trimmed front.
        let seqs: Vec<u64> = (0..700).map(|i| s.push(i)).collect();
        for (i, q) in seqs.iter().enumerate() {
            if i % 3 == 1 || i < 5 {
                s.take(*q);
            }
        }
        let want: Vec<(u64, i32)> = s.iter().map(|(q, v)| (q, *v)).collect();
        let mut got = Vec::new();
        let flow = s.for_each_live(|q, v| {
            got.push((q, *v));
            ControlFlow::Continue(())
        });
        assert_eq!(flow, ControlFlow::Continue(()));
        assert_eq!(got, want);
        // Stops at the first break.
        let mut seen = 0;
        let flow = s.for_each_live(|_, v| {
            seen += 1;
            if *v == 300 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!(flow, ControlFlow::Break(()));
        assert_eq!(
            seen,
            want.iter()
                .position(|(_, v)| *v == 300)
                .map_or(0, |i| i + 1)
        );
    }

    #[test]
    fn clone_is_independent() {
        let mut s = SeqItems::default();
        let a = s.push(1);
        let snap = s.clone();
        s.take(a);
        s.push(2);
        assert_eq!(snap.iter().map(|(_, v)| *v).collect::<Vec<_>>(), vec![1]);
        assert_eq!(s.iter().map(|(_, v)| *v).collect::<Vec<_>>(), vec![2]);
    }
}
