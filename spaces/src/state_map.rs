//! `StateMap`: a shard's persistent map from channel (or join group) to its state, each state
//! behind its own shared pointer.
//!
//! `imbl`'s hash map stores entries inline in 32-slot nodes and builds a node on the stack
//! before boxing it. With a channel's state inline (about 300 bytes) a node is ~10 KB, and
//! creating a channel copied such nodes: 88% of the instructions of a produce on a new channel
//! were that `memcpy` (callgrind, 10,000 channels). Behind a `triomphe::Arc` an entry is 16
//! bytes, so nodes are ~0.5 KB; a clone shares every state, and the first write to a channel
//! after a clone copies that channel's state alone: bounded, since its stores are persistent
//! trees (O(1) to clone) or flat vectors of at most 32 items (see [`crate::seq`]).
//!
//! | operation | cost |
//! |---|---|
//! | `get`, `contains_key` | O(log₃₂ n) |
//! | `get_mut` | O(log₃₂ n), plus a bounded copy of the state if a clone shares it |
//! | `insert`, `remove` | O(log₃₂ n), one allocation for an inserted state |
//! | `clone` | O(1) |

use std::borrow::Borrow;
use std::hash::Hash;

use triomphe::Arc;

use crate::PMap;

/// A persistent map whose values are shared per entry.
///
/// Invariant: none beyond `PMap`'s; the pointer is an implementation detail, never exposed.
#[derive(Clone, Debug)]
pub(crate) struct StateMap<C: Clone + Hash + Eq, V> {
    map: PMap<C, Arc<V>>,
}

impl<C: Clone + Hash + Eq, V> Default for StateMap<C, V> {
    fn default() -> Self {
        Self {
            map: PMap::default(),
        }
    }
}

impl<C: Clone + Hash + Eq, V: Clone> StateMap<C, V> {
    /// The state of `channel`.
    #[inline]
    pub(crate) fn get<Q: Hash + Eq + ?Sized>(&self, channel: &Q) -> Option<&V>
    where
        C: Borrow<Q>,
    {
        self.map.get(channel).map(|v| &**v)
    }

    /// The state of `channel`, for a change (copied first if a clone shares it).
    #[inline]
    pub(crate) fn get_mut<Q: Hash + Eq + ?Sized>(&mut self, channel: &Q) -> Option<&mut V>
    where
        C: Borrow<Q>,
    {
        self.map.get_mut(channel).map(make_mut)
    }

    /// Whether `channel` has an entry.
    #[inline]
    pub(crate) fn contains_key<Q: Hash + Eq + ?Sized>(&self, channel: &Q) -> bool
    where
        C: Borrow<Q>,
    {
        self.map.contains_key(channel)
    }

    /// Sets the state of `channel`.
    pub(crate) fn insert(&mut self, channel: C, state: V) {
        self.map.insert(channel, Arc::new(state));
    }

    /// Removes `channel`'s entry.
    pub(crate) fn remove<Q: Hash + Eq + ?Sized>(&mut self, channel: &Q)
    where
        C: Borrow<Q>,
    {
        self.map.remove(channel);
    }

    /// The entries, in no meaningful order (never used for a result).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&C, &V)> + '_ {
        self.map.iter().map(|(c, v)| (c, &**v))
    }

    /// The number of entries.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are no entries.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// `Arc::make_mut` with the unshared case inline and the copy out of line: the value the
/// pointer holds, for a change, copied first if a clone shares it. On the produce path
/// triomphe's own `make_mut` ran out of line, ~21 instructions a call for one load and a
/// branch (callgrind).
#[inline(always)]
pub(crate) fn make_mut<T: Clone>(arc: &mut Arc<T>) -> &mut T {
    if !arc.is_unique() {
        unshare(arc);
    }
    // Unique now: either the check held, or `unshare` put a fresh copy in place.
    Arc::get_mut(arc).unwrap_or_else(|| unshared_copy_shared())
}

/// Replaces `arc` with a pointer to a copy of its value that nothing else holds.
#[cold]
#[inline(never)]
fn unshare<T: Clone>(arc: &mut Arc<T>) {
    *arc = Arc::new(T::clone(arc));
}

#[cold]
fn unshared_copy_shared() -> ! {
    // `unshare` made a pointer no clone has seen; no input leads here.
    panic!("rhospace invariant broken: a fresh copy is shared")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clone_is_unchanged_by_writes_to_the_original() {
        let mut a: StateMap<u32, Vec<u32>> = StateMap::default();
        for c in 0..100 {
            a.insert(c, vec![c]);
        }
        let b = a.clone();
        a.get_mut(&7).unwrap().push(70);
        a.remove(&8);
        a.insert(200, vec![]);
        assert_eq!(b.get(&7), Some(&vec![7]));
        assert_eq!(b.get(&8), Some(&vec![8]));
        assert!(!b.contains_key(&200));
        assert_eq!(a.get(&7), Some(&vec![7, 70]));
        assert!(a.get(&8).is_none());
        assert_eq!((a.len(), b.len()), (100, 100));
        let mut seen: Vec<u32> = b.iter().map(|(c, _)| *c).collect();
        seen.sort_unstable();
        assert!(seen.into_iter().eq(0..100));
    }
}
