//! `SeqItems`: a persistent sequence with stable sequence numbers and tombstones.
//!
//! Items live as `Option<T>` slots in arrival order: up to 32 slots in a flat `SmallVec` (two
//! inline), beyond that in a [`ChunkDeque`] (persistent chunks: open head and tail chunks, a
//! persistent vector of full chunks between). Item `k` has sequence number
//! `front + k`; removal in the middle leaves a tombstone (`None`) so other items keep their
//! numbers, and tombstones at either end are trimmed at once. When tombstones outnumber live
//! items (plus a slack), [`SeqItems::compact`] renumbers; callers holding numbers (the exact
//! index) rebuild then.
//!
//! Cloning the chunked layout is O(1) (a write to a clone copies only the chunk it changes, and
//! in the middle the path to it); cloning the flat layout clones its at most 32 items. Stores
//! are cloned when their channel or join group is first written after a soft checkpoint (see
//! [`crate::state_map`]).
//!
//! | operation | cost |
//! |---|---|
//! | `push` | O(1) amortised; in place when unshared |
//! | `get` | O(1) flat and at the chunked layout's ends, O(log n) in its middle |
//! | `take` | as `get`, plus the tombstones it trims (amortised O(1)) |
//! | `clone` | at most 32 item clones (flat), O(1) (chunked) |
//! | iteration | O(n + tombstones) |
//! | `compact` | O(n), amortised O(1) per removal |
//!
//! Limits: the switch to chunks is one way until the store empties or compacts to at most
//! 32 items; a store that shrinks by removals alone stays chunked.

use std::ops::ControlFlow;

use smallvec::SmallVec;

use crate::chunks::{self, ChunkDeque};

/// Slots a store keeps in one flat vector before it moves to persistent chunks.
const SMALL: usize = 32;

/// Invariant: `live` equals the number of `Some` slots; the first and last slots, if any, are
/// `Some`; the flat layout holds at most [`SMALL`] slots.
#[derive(Clone, Debug)]
pub(crate) struct SeqItems<T: Clone> {
    slots: Slots<T>,
    /// Sequence number of `slots[0]`.
    front: u64,
    live: usize,
}

/// The slots: a flat vector while at most [`SMALL`] (most channels hold a few items; the
/// first two live inline), persistent chunks beyond.
///
/// A chunk holds 64 slots (for a waiting continuation, ~6 KB): allocating one for a channel's
/// first few items was most of the cost of a consume that waits on a new channel. Cloning the
/// flat vector copies at most `SMALL` slots: O(1). Stores are cloned only when their channel
/// or join group is written after a soft checkpoint (the maps keep each behind its own
/// pointer, see [`crate::state_map`]), so that copy replaces the chunk copy of the first
/// write rather than adding to it.
#[derive(Clone, Debug)]
enum Slots<T: Clone> {
    Small(SmallVec<[Option<T>; 2]>),
    Large(ChunkDeque<Option<T>>),
}

impl<T: Clone> Default for SeqItems<T> {
    fn default() -> Self {
        Self {
            slots: Slots::Small(SmallVec::new()),
            front: 0,
            live: 0,
        }
    }
}

impl<T: Clone> Slots<T> {
    #[inline]
    fn len(&self) -> usize {
        match self {
            Slots::Small(v) => v.len(),
            Slots::Large(v) => v.len(),
        }
    }

    #[inline]
    fn get(&self, pos: usize) -> Option<&Option<T>> {
        match self {
            Slots::Small(v) => v.get(pos),
            Slots::Large(v) => v.get(pos),
        }
    }

    #[inline]
    fn get_mut(&mut self, pos: usize) -> Option<&mut Option<T>> {
        match self {
            Slots::Small(v) => v.get_mut(pos),
            Slots::Large(v) => v.get_mut(pos),
        }
    }

    #[inline(always)]
    fn push_back(&mut self, value: Option<T>) {
        match self {
            Slots::Small(v) if v.len() < SMALL => v.push(value),
            Slots::Small(_) => self.grow_push(value),
            Slots::Large(v) => v.push_back(value),
        }
    }

    /// [`push_back`](Self::push_back) on a full small layout: moves to the large one (once
    /// per channel that grows past [`SMALL`], so out of the inlined path).
    #[cold]
    #[inline(never)]
    fn grow_push(&mut self, value: Option<T>) {
        if let Slots::Small(v) = self {
            let mut large: ChunkDeque<Option<T>> = std::mem::take(v).into_iter().collect();
            large.push_back(value);
            *self = Slots::Large(large);
        }
    }

    /// The number of tombstones after the last item.
    fn trailing_none(&self) -> usize {
        match self {
            Slots::Small(v) => v.iter().rev().take_while(|s| s.is_none()).count(),
            Slots::Large(v) => v.iter().rev().take_while(|s| s.is_none()).count(),
        }
    }

    /// Removes and returns the first slot.
    #[inline]
    fn pop_front(&mut self) -> Option<Option<T>> {
        match self {
            Slots::Small(v) if v.is_empty() => None,
            Slots::Small(v) => Some(v.remove(0)),
            Slots::Large(v) => v.pop_front(),
        }
    }

    /// Whether the first slot is a tombstone.
    #[inline]
    fn front_is_none(&self) -> bool {
        self.get(0).is_some_and(|s| s.is_none())
    }

    /// Drops the last `n` slots.
    fn drop_back(&mut self, n: usize) {
        match self {
            Slots::Small(v) => v.truncate(v.len() - n),
            Slots::Large(v) => {
                for _ in 0..n {
                    v.pop_back();
                }
            }
        }
    }

    fn iter(&self) -> SlotIter<'_, T> {
        match self {
            Slots::Small(v) => SlotIter::Small(v.iter()),
            Slots::Large(v) => SlotIter::Large(v.iter()),
        }
    }

    /// The `live` live slots' items in order, as fresh slots.
    fn compacted(&self, live: usize) -> Self {
        let items = self.iter().filter(|s| s.is_some()).cloned();
        if live <= SMALL {
            Slots::Small(items.collect())
        } else {
            Slots::Large(items.collect())
        }
    }
}

/// Iterates either kind of slots.
enum SlotIter<'a, T: Clone> {
    Small(std::slice::Iter<'a, Option<T>>),
    Large(chunks::Iter<'a, Option<T>>),
}

impl<'a, T: Clone> Iterator for SlotIter<'a, T> {
    type Item = &'a Option<T>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            SlotIter::Small(i) => i.next(),
            SlotIter::Large(i) => i.next(),
        }
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            SlotIter::Small(i) => i.size_hint(),
            SlotIter::Large(i) => i.size_hint(),
        }
    }
}

impl<T: Clone> ExactSizeIterator for SlotIter<'_, T> {}

impl<T: Clone> DoubleEndedIterator for SlotIter<'_, T> {
    #[inline]
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            SlotIter::Small(i) => i.next_back(),
            SlotIter::Large(i) => i.next_back(),
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

    #[inline(always)]
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
        if pos == 0 {
            return self.take_first();
        }
        let value = self.slots.get_mut(pos)?.take()?;
        self.live -= 1;
        if self.live == 0 {
            // Empty: back to a fresh flat vector (numbering restarts, as after a trim).
            self.slots = Slots::Small(SmallVec::new());
            self.front = 0;
            return Some(value);
        }
        // Live items remain (the first among them), so the trim stops at one.
        if pos + 1 == self.slots.len() {
            let tail = self.slots.trailing_none();
            self.slots.drop_back(tail);
        }
        Some(value)
    }

    /// Removes the first slot's item (the oldest), and the tombstones behind it: one pop per
    /// slot dropped, where [`take`](Self::take) at another position writes a tombstone first.
    fn take_first(&mut self) -> Option<T> {
        // The first slot is live (the invariant); were it a tombstone, dropping it keeps the
        // numbering (`front` moves past it) and nothing is returned.
        let value = self.slots.pop_front()?;
        self.front += 1;
        let value = value?;
        self.live -= 1;
        if self.live == 0 {
            // Empty: back to a fresh flat vector (numbering restarts, as after a trim).
            self.slots = Slots::Small(SmallVec::new());
            self.front = 0;
            return Some(value);
        }
        // Live items remain, so the trim stops at one.
        while self.slots.front_is_none() {
            self.slots.pop_front();
            self.front += 1;
        }
        Some(value)
    }

    /// Oldest live item.
    #[inline]
    pub(crate) fn first(&self) -> Option<(u64, &T)> {
        self.slots.get(0)?.as_ref().map(|v| (self.front, v))
    }

    /// Newest live item.
    #[inline]
    pub(crate) fn last(&self) -> Option<(u64, &T)> {
        let v = self.slots.get(self.slots.len().checked_sub(1)?)?.as_ref()?;
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
    /// yields, but walked a slice at a time (the flat vector, or the chunks one at a time: one
    /// persistent-vector step per chunk, not per item), for hot scans.
    pub(crate) fn for_each_live<'s>(
        &'s self,
        mut f: impl FnMut(u64, &'s T) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let mut seq = self.front;
        let mut walk = |chunk: &'s [Option<T>]| {
            for slot in chunk {
                if let Some(v) = slot {
                    f(seq, v)?;
                }
                seq += 1;
            }
            ControlFlow::Continue(())
        };
        match &self.slots {
            Slots::Small(v) => walk(v),
            Slots::Large(v) => v.try_for_each_slice(walk),
        }
    }

    /// Whether tombstones are numerous enough to compact.
    #[inline]
    pub(crate) fn wants_compaction(&self) -> bool {
        self.slots.len() > 2 * self.live + 64
    }

    /// Drops tombstones and renumbers from 0; returns nothing, callers rebuild any index.
    pub(crate) fn compact(&mut self) {
        self.slots = self.slots.compacted(self.live);
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

    /// Random pushes and takes across the flat/tree boundary, with snapshots taken along the
    /// way, against a plain list of (number, item).
    #[test]
    fn agrees_with_a_plain_list_across_both_layouts() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut s = SeqItems::default();
        let mut model: Vec<(u64, u64)> = Vec::new();
        let mut snaps = Vec::new();
        for step in 0..4000u64 {
            let r = next();
            // Phases: grow well past the flat limit, then shrink to empty, then grow again.
            let push = match (step / 500) % 4 {
                0 | 2 => r % 4 != 0,
                _ => r % 4 == 0,
            };
            if push || model.is_empty() {
                let seq = s.push(step);
                if let Some(&(last, _)) = model.last() {
                    assert!(seq > last);
                }
                model.push((seq, step));
            } else {
                let at = (r >> 8) as usize % model.len();
                let (seq, v) = model.remove(at);
                assert_eq!(s.take(seq), Some(v));
                assert_eq!(s.take(seq), None);
            }
            if s.wants_compaction() {
                s.compact();
                for (i, e) in model.iter_mut().enumerate() {
                    e.0 = i as u64;
                }
            }
            if step % 97 == 0 {
                snaps.push((s.clone(), model.clone()));
            }
            assert_eq!(s.len(), model.len());
            assert!(s.iter().map(|(q, v)| (q, *v)).eq(model.iter().copied()));
            assert!(s
                .iter()
                .rev()
                .map(|(q, v)| (q, *v))
                .eq(model.iter().rev().copied()));
            assert_eq!(s.first().map(|(q, v)| (q, *v)), model.first().copied());
            assert_eq!(s.last().map(|(q, v)| (q, *v)), model.last().copied());
        }
        for (snap, m) in &snaps {
            assert!(snap.iter().map(|(q, v)| (q, *v)).eq(m.iter().copied()));
            for &(q, v) in m {
                assert_eq!(snap.get(q), Some(&v));
            }
        }
    }

    #[test]
    fn for_each_live_walks_what_iter_yields() {
        // The flat layout, and the tree over several leaf chunks.
        for n in [30, 700] {
            for_each_live_case(n);
        }
    }

    fn for_each_live_case(n: i32) {
        use std::ops::ControlFlow;
        let mut s = SeqItems::default();
        // Tombstones inside, a trimmed front.
        let seqs: Vec<u64> = (0..n).map(|i| s.push(i)).collect();
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
            if *v == n / 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!(flow, ControlFlow::Break(()));
        assert_eq!(
            seen,
            want.iter()
                .position(|(_, v)| *v == n / 2)
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
