//! `ChunkDeque`: a persistent double-ended queue of fixed-size chunks, for the large layout of
//! [`SeqItems`](crate::seq::SeqItems).
//!
//! Items are split into three runs, in order:
//! - an open *head* chunk (a `VecDeque` behind a `triomphe::Arc`), popped from the front;
//! - a persistent *middle*: an `imbl::Vector` of full chunks of exactly `N` items each, so the
//!   chunk holding an index is found by division;
//! - an open *tail* chunk, pushed to at the back and popped from the back.
//!
//! A full tail is sealed into the middle (a pointer move, no item copied); an empty head pulls
//! the next chunk from the middle (an empty tail likewise, popping from the back). So:
//! - cloning (a soft checkpoint, or the first write to a channel after one) is O(1): three
//!   pointers are shared, whatever the length; no per-chunk or per-item refcount is touched;
//! - a push, a pop or a `get_mut` while nothing is shared works in place: triomphe's
//!   uniqueness check is one load (std's `Arc` needs a locked compare-and-swap);
//! - a write after a clone copies only the chunk it touches (at most `N` items), and for a
//!   middle chunk the path to it in the persistent vector: what `imbl::Vector` copies too.
//!
//! | operation | cost |
//! |---|---|
//! | `push_back`, `pop_front`, `pop_back` | O(1) amortised; O(log(len / N)) when a chunk moves to or from the middle; plus one chunk copy (N items) when that chunk is shared |
//! | `get` | O(1) in the head or tail chunk, O(log(len / N)) in the middle |
//! | `get_mut` | as `get`, plus one chunk copy (and the middle path) when shared |
//! | `clone` | O(1) |
//! | `len`, `is_empty` | O(1) |
//! | iteration (both ends), `try_for_each_slice` | O(len) |
//!
//! Against `imbl::Vector` (which keeps a similar head/middle/tail shape, of 64-item chunks):
//! a push or pop here checks one `Arc` for sharing where imbl walks its buffers and
//! `sized_chunk` bookkeeping, and a `get` at either end is a bounds check and a ring-index
//! computation, not a dispatch over imbl's layouts. imbl's vector also splits, concatenates
//! and inserts in the middle in O(log n); this deque does none of that.
//!
//! Limits: only the ends grow and shrink; the middle chunks stay full. A clone taken before
//! every write makes every write copy a chunk (up to `N` item clones), as with imbl's vector;
//! a copied chunk keeps the capacity of the one it copies (a tail's room for `N` items).

use std::collections::{vec_deque, VecDeque};
use std::ops::{ControlFlow, Deref};

use imbl::Vector;
use triomphe::Arc;

/// Items per chunk: what `imbl::Vector` uses. A clone's first write copies one chunk, so
/// larger chunks make that copy dearer; smaller ones seal (a persistent-vector append) more
/// often.
pub(crate) const CHUNK: usize = 64;

/// A persistent double-ended queue of chunks of `N` items (see the module docs).
///
/// Invariant: every chunk in `middle` holds exactly `N` items (so item `i` of the middle
/// lies in chunk `i / N` at offset `i % N`); `head` and `tail` hold at most `N` items each
/// and may be empty; `len` equals the items in all three. A chunk shared by a clone (its
/// `Arc` count above one) is never written: a write copies it first.
#[derive(Clone, Debug)]
pub(crate) struct ChunkDeque<T: Clone, const N: usize = CHUNK> {
    head: Arc<Chunk<T>>,
    /// Behind its own pointer so that the deque is four words (a store is built and moved by
    /// value on every new channel; with the vector inline it passed 128 bytes, and every such
    /// move became a `memcpy` call). Only sealing and pulling chunks write it.
    middle: Arc<Vector<Arc<Chunk<T>>>>,
    tail: Arc<Chunk<T>>,
    len: usize,
}

impl<T: Clone, const N: usize> Default for ChunkDeque<T, N> {
    fn default() -> Self {
        Self {
            head: Arc::new(Chunk(VecDeque::new())),
            middle: Arc::new(Vector::new()),
            tail: Arc::new(Chunk(VecDeque::new())),
            len: 0,
        }
    }
}

/// One chunk's items. Its clone (the copy a write to a shared chunk makes) keeps the
/// original's capacity, where `VecDeque`'s keeps exactly its items: a copied tail has room to
/// grow to a whole chunk without reallocating.
#[derive(Debug)]
struct Chunk<T>(VecDeque<T>);

impl<T: Clone> Clone for Chunk<T> {
    fn clone(&self) -> Self {
        let mut items = VecDeque::with_capacity(self.0.capacity());
        items.extend(self.0.iter().cloned());
        Chunk(items)
    }
}

impl<T> Deref for Chunk<T> {
    type Target = VecDeque<T>;

    #[inline]
    fn deref(&self) -> &VecDeque<T> {
        &self.0
    }
}

/// The chunk behind `chunk`, copied first when a clone shares it.
///
/// `make_mut` copies exactly when the count is above one: an Acquire load, pairing with the
/// Release decrement of a clone that dropped its pointer, so that clone's reads of the chunk
/// happen before this write.
#[inline]
fn own<T: Clone>(chunk: &mut Arc<Chunk<T>>) -> &mut VecDeque<T> {
    &mut Arc::make_mut(chunk).0
}

impl<T: Clone, const N: usize> ChunkDeque<T, N> {
    /// The number of items. Time: O(1).
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no items. Time: O(1).
    #[cfg(test)]
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Index of the tail's first item.
    #[inline]
    fn tail_start(&self) -> usize {
        self.len - self.tail.len()
    }

    /// Item `index`, if `index < len`. Time: O(1) in the head or tail, O(log(len / N))
    /// in the middle.
    #[inline]
    pub(crate) fn get(&self, index: usize) -> Option<&T> {
        if index < self.head.len() {
            return self.head.get(index);
        }
        let tail_start = self.tail_start();
        if index >= tail_start {
            return self.tail.get(index - tail_start);
        }
        let i = index - self.head.len();
        self.middle.get(i / N)?.get(i % N)
    }

    /// Item `index` for writing, if `index < len`; copies the chunk holding it (and, in the
    /// middle, the path to that chunk) first when a clone shares it. Time: as [`get`](Self::get),
    /// plus O(N) when it copies.
    #[inline]
    pub(crate) fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        if index < self.head.len() {
            return own(&mut self.head).get_mut(index);
        }
        let tail_start = self.tail_start();
        if index >= tail_start {
            return own(&mut self.tail).get_mut(index - tail_start);
        }
        let i = index - self.head.len();
        own(Arc::make_mut(&mut self.middle).get_mut(i / N)?).get_mut(i % N)
    }

    /// The first item. Time: O(1) (O(log(len / N)) while the head is empty).
    #[cfg(test)]
    #[inline]
    pub(crate) fn front(&self) -> Option<&T> {
        self.get(0)
    }

    /// The last item. Time: O(1).
    #[cfg(test)]
    #[inline]
    pub(crate) fn back(&self) -> Option<&T> {
        self.get(self.len.checked_sub(1)?)
    }

    /// Appends `item`. Time: O(1) amortised; seals a full tail into the middle.
    // Always inlined: left to itself the compiler calls it out of line from every produce, and
    // the call's register saves cost as much as the push (~10 of ~40 instructions, callgrind);
    // the rare sealing stays out of line.
    #[inline(always)]
    pub(crate) fn push_back(&mut self, item: T) {
        if self.tail.len() >= N {
            self.seal_tail();
        }
        own(&mut self.tail).push_back(item);
        self.len += 1;
    }

    /// Moves the full tail into the middle (or, when nothing precedes it, into the head, so
    /// that the front stays O(1) to read) and opens an empty one.
    #[cold]
    fn seal_tail(&mut self) {
        let full = std::mem::replace(&mut self.tail, Arc::new(Chunk(VecDeque::with_capacity(N))));
        if self.head.is_empty() && self.middle.is_empty() {
            self.head = full;
        } else {
            Arc::make_mut(&mut self.middle).push_back(full);
        }
    }

    /// Removes and returns the first item. Time: O(1) amortised; an empty head pulls the next
    /// middle chunk.
    #[inline]
    pub(crate) fn pop_front(&mut self) -> Option<T> {
        if self.head.is_empty() {
            let next = if self.middle.is_empty() {
                None
            } else {
                Arc::make_mut(&mut self.middle).pop_front()
            };
            match next {
                Some(chunk) => self.head = chunk,
                // Nothing before the tail: its first item is the first.
                None => {
                    let item = own(&mut self.tail).pop_front()?;
                    self.len -= 1;
                    return Some(item);
                }
            }
        }
        let item = own(&mut self.head).pop_front()?;
        self.len -= 1;
        Some(item)
    }

    /// Removes and returns the last item. Time: O(1) amortised; an empty tail pulls the last
    /// middle chunk.
    #[inline]
    pub(crate) fn pop_back(&mut self) -> Option<T> {
        if self.tail.is_empty() {
            let last = if self.middle.is_empty() {
                None
            } else {
                Arc::make_mut(&mut self.middle).pop_back()
            };
            match last {
                Some(chunk) => self.tail = chunk,
                // Nothing after the head: its last item is the last.
                None => {
                    let item = own(&mut self.head).pop_back()?;
                    self.len -= 1;
                    return Some(item);
                }
            }
        }
        let item = own(&mut self.tail).pop_back()?;
        self.len -= 1;
        Some(item)
    }

    /// The items in order, from either end.
    pub(crate) fn iter(&self) -> Iter<'_, T> {
        Iter {
            front: self.head.iter(),
            middle: self.middle.iter(),
            back: self.tail.iter(),
            remaining: self.len,
        }
    }

    /// Calls `f` on the items as contiguous slices, in order, until it breaks: one
    /// persistent-vector step per chunk, not per item, for hot scans. Time: O(len).
    pub(crate) fn try_for_each_slice<'s>(
        &'s self,
        mut f: impl FnMut(&'s [T]) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let mut chunk = |c: &'s VecDeque<T>| {
            let (a, b) = c.as_slices();
            f(a)?;
            f(b)
        };
        chunk(&self.head)?;
        for c in self.middle.iter() {
            chunk(c)?;
        }
        chunk(&self.tail)
    }
}

impl<T: Clone, const N: usize> FromIterator<T> for ChunkDeque<T, N> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut d = Self::default();
        for item in iter {
            d.push_back(item);
        }
        d
    }
}

/// Iterates a [`ChunkDeque`] from either end.
///
/// Invariant: `remaining` is the number of items `front`, the chunks left in `middle` and
/// `back` hold together; `front` walks the chunk being read from the front (the head at
/// first), `back` the one read from the back (the tail at first). When `middle` runs out,
/// each end reads on into the other's chunk.
pub(crate) struct Iter<'a, T: Clone> {
    front: vec_deque::Iter<'a, T>,
    middle: imbl::vector::Iter<'a, Arc<Chunk<T>>, imbl::shared_ptr::DefaultSharedPtr>,
    back: vec_deque::Iter<'a, T>,
    remaining: usize,
}

impl<'a, T: Clone> Iterator for Iter<'a, T> {
    type Item = &'a T;

    #[inline]
    fn next(&mut self) -> Option<&'a T> {
        loop {
            if let Some(item) = self.front.next() {
                self.remaining -= 1;
                return Some(item);
            }
            match self.middle.next() {
                Some(chunk) => self.front = chunk.iter(),
                None => {
                    let item = self.back.next()?;
                    self.remaining -= 1;
                    return Some(item);
                }
            }
        }
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<T: Clone> DoubleEndedIterator for Iter<'_, T> {
    #[inline]
    fn next_back(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.back.next_back() {
                self.remaining -= 1;
                return Some(item);
            }
            match self.middle.next_back() {
                Some(chunk) => self.back = chunk.iter(),
                None => {
                    let item = self.front.next_back()?;
                    self.remaining -= 1;
                    return Some(item);
                }
            }
        }
    }
}

impl<T: Clone> ExactSizeIterator for Iter<'_, T> {}

impl<T: Clone> std::iter::FusedIterator for Iter<'_, T> {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small chunks, so that a few dozen items cross many chunk boundaries.
    type Small<T> = ChunkDeque<T, 4>;

    fn items<T: Clone, const N: usize>(d: &ChunkDeque<T, N>) -> Vec<T> {
        d.iter().cloned().collect()
    }

    fn slices<T: Clone, const N: usize>(d: &ChunkDeque<T, N>) -> Vec<T> {
        let mut out = Vec::new();
        let flow = d.try_for_each_slice(|s| {
            out.extend_from_slice(s);
            ControlFlow::Continue(())
        });
        assert_eq!(flow, ControlFlow::Continue(()));
        out
    }

    #[test]
    fn pushes_and_pops_at_both_ends_across_chunks() {
        let mut d: ChunkDeque<usize> = ChunkDeque::default();
        assert!(d.is_empty() && d.front().is_none() && d.back().is_none());
        for i in 0..(5 * CHUNK + 3) {
            d.push_back(i);
        }
        assert_eq!(d.len(), 5 * CHUNK + 3);
        assert!(d.iter().copied().eq(0..5 * CHUNK + 3));
        assert!(d.iter().rev().copied().eq((0..5 * CHUNK + 3).rev()));
        assert_eq!(slices(&d), items(&d));
        for i in 0..(5 * CHUNK + 3) {
            assert_eq!(d.get(i), Some(&i));
        }
        assert_eq!(d.get(5 * CHUNK + 3), None);
        for i in 0..CHUNK + 1 {
            assert_eq!(d.pop_front(), Some(i));
        }
        for i in (4 * CHUNK..5 * CHUNK + 3).rev() {
            assert_eq!(d.pop_back(), Some(i));
        }
        assert_eq!(d.front(), Some(&(CHUNK + 1)));
        assert_eq!(d.back(), Some(&(4 * CHUNK - 1)));
        assert!(d.iter().copied().eq(CHUNK + 1..4 * CHUNK));
        while d.pop_front().is_some() {}
        assert!(d.is_empty() && d.pop_back().is_none() && d.iter().next().is_none());
    }

    #[test]
    fn a_write_to_a_clone_leaves_the_original_alone() {
        let mut a: Small<u32> = (0..30).collect();
        let b = a.clone();
        // One write in each run: head, middle, tail.
        for i in [0, 13, 29] {
            *a.get_mut(i).unwrap() += 100;
        }
        a.pop_front();
        a.pop_back();
        a.push_back(7);
        assert!(b.iter().copied().eq(0..30));
        let want: Vec<u32> = (1..29)
            .map(|i| if i == 13 { 113 } else { i })
            .chain([7])
            .collect();
        assert_eq!(items(&a), want);
    }

    #[test]
    fn a_copied_tail_keeps_room_for_a_whole_chunk() {
        // The first push after a chunk seals opens a tail with room for a whole chunk.
        let mut a: ChunkDeque<u32> = (0..=CHUNK as u32).collect();
        let b = a.clone();
        a.push_back(7);
        assert!(a.tail.capacity() >= CHUNK);
        assert!(!Arc::ptr_eq(&a.tail, &b.tail));
        assert!(b.iter().copied().eq(0..=CHUNK as u32));
        assert!(a.iter().copied().eq((0..=CHUNK as u32).chain([7])));
    }

    #[test]
    fn iteration_from_both_ends_meets_in_the_middle() {
        let d: Small<u32> = (0..23).collect();
        let mut it = d.iter();
        let mut got = Vec::new();
        let mut back = Vec::new();
        while let Some(x) = it.next() {
            got.push(*x);
            assert_eq!(it.len(), 23 - got.len() - back.len());
            if let Some(y) = it.next_back() {
                back.push(*y);
            }
        }
        back.reverse();
        got.extend(back);
        assert!(got.into_iter().eq(0..23));
    }

    #[test]
    fn slice_walk_stops_at_the_first_break() {
        let d: Small<u32> = (0..20).collect();
        let mut seen = 0;
        let flow = d.try_for_each_slice(|s| {
            seen += s.len();
            if seen >= 9 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!(flow, ControlFlow::Break(()));
        assert!((9..20).contains(&seen));
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// Append to clone `at` (modulo the live clones).
        Push(usize, u32),
        PopFront(usize),
        PopBack(usize),
        /// Read item `index` (modulo the length, plus one past the end) of clone `at`.
        Get(usize, usize),
        /// Overwrite item `index` of clone `at`.
        GetMut(usize, usize, u32),
        /// Clone clone `at`.
        Clone(usize),
        /// Drop clone `at` (the last one is kept).
        Drop(usize),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            8 => (any::<usize>(), any::<u32>()).prop_map(|(a, v)| Op::Push(a, v)),
            3 => any::<usize>().prop_map(Op::PopFront),
            2 => any::<usize>().prop_map(Op::PopBack),
            2 => (any::<usize>(), any::<usize>()).prop_map(|(a, i)| Op::Get(a, i)),
            2 => (any::<usize>(), any::<usize>(), any::<u32>())
                .prop_map(|(a, i, v)| Op::GetMut(a, i, v)),
            2 => any::<usize>().prop_map(Op::Clone),
            1 => any::<usize>().prop_map(Op::Drop),
        ]
    }

    fn check<const N: usize>(d: &ChunkDeque<u32, N>, m: &VecDeque<u32>) {
        assert_eq!(d.len(), m.len());
        assert_eq!(d.is_empty(), m.is_empty());
        assert!(d.iter().eq(m.iter()));
        assert!(d.iter().rev().eq(m.iter().rev()));
        assert_eq!(d.iter().len(), m.len());
        assert!(slices(d).iter().eq(m.iter()));
        assert_eq!(d.front(), m.front());
        assert_eq!(d.back(), m.back());
    }

    fn run_ops<const N: usize>(ops: Vec<Op>) {
        let mut live: Vec<(ChunkDeque<u32, N>, VecDeque<u32>)> =
            vec![(ChunkDeque::default(), VecDeque::new())];
        for op in ops {
            let n = live.len();
            match op {
                Op::Push(at, v) => {
                    let (d, m) = &mut live[at % n];
                    d.push_back(v);
                    m.push_back(v);
                }
                Op::PopFront(at) => {
                    let (d, m) = &mut live[at % n];
                    assert_eq!(d.pop_front(), m.pop_front());
                }
                Op::PopBack(at) => {
                    let (d, m) = &mut live[at % n];
                    assert_eq!(d.pop_back(), m.pop_back());
                }
                Op::Get(at, i) => {
                    let (d, m) = &live[at % n];
                    let i = i % (m.len() + 1);
                    assert_eq!(d.get(i), m.get(i));
                }
                Op::GetMut(at, i, v) => {
                    let (d, m) = &mut live[at % n];
                    let i = i % (m.len() + 1);
                    match (d.get_mut(i), m.get_mut(i)) {
                        (Some(x), Some(y)) => {
                            assert_eq!(x, y);
                            *x = v;
                            *y = v;
                        }
                        (x, y) => assert_eq!(x, y),
                    }
                }
                Op::Clone(at) => {
                    let c = live[at % n].clone();
                    live.push(c);
                }
                Op::Drop(at) => {
                    if n > 1 {
                        live.swap_remove(at % n);
                    }
                }
            }
            for (d, m) in &live {
                check(d, m);
            }
        }
    }

    proptest::proptest! {
        /// Any interleaving of pushes, pops at both ends, reads, writes, clones and drops of
        /// clones: every live clone reads exactly what its own plain `VecDeque` holds (writes
        /// to shared chunks copy them; chunks are reused in place once the other owner drops).
        #[test]
        fn clones_behave_as_separate_deques(ops in proptest::collection::vec(op(), 1..600)) {
            run_ops::<4>(ops);
        }

        /// The same with one-item chunks: every push seals, every pop pulls from the middle.
        #[test]
        fn one_item_chunks_behave_as_a_deque(ops in proptest::collection::vec(op(), 1..300)) {
            run_ops::<1>(ops);
        }
    }

    #[test]
    fn the_default_chunk_size_behaves_as_a_deque() {
        // Long runs of pushes, then pops from both ends, with clones along the way.
        let mut ops = Vec::new();
        for i in 0..(4 * CHUNK + 9) {
            ops.push(Op::Push(0, i as u32));
            if i % 50 == 0 {
                ops.push(Op::Clone(0));
                ops.push(Op::GetMut(0, i * 7, 1));
            }
        }
        for i in 0..(3 * CHUNK) {
            ops.push(if i % 3 == 0 {
                Op::PopBack(i)
            } else {
                Op::PopFront(i)
            });
        }
        run_ops::<CHUNK>(ops);
    }
}
