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
//! The map also remembers the entry it last handed out for a change ([`Hot`]): a stream of
//! calls on one channel then reads and writes its state with one key comparison, no hash and
//! no walk. Besides the lock's (`raw_lock`, `sync`), this is the crate's only `unsafe`. Its
//! invariant is stated on [`Hot`]; the module's tests check that no write reaches a clone,
//! and were also run under Miri (`cargo +nightly miri test -p rhospace-spaces --lib
//! state_map`; not part of CI, which has no nightly toolchain).
//!
//! | operation | cost |
//! |---|---|
//! | `get` | O(log₃₂ n); O(1) for the remembered entry |
//! | `contains_key` | O(log₃₂ n) |
//! | `get_mut` | as `get`, plus a bounded copy of the state if a clone shares it |
//! | `insert`, `remove` | O(log₃₂ n), one allocation for an inserted state |
//! | `clone` | O(1) |

use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::Ordering::Relaxed;

use triomphe::Arc;

use crate::PMap;

/// A persistent map whose values are shared per entry, remembering the entry it last handed
/// out for a change (see [`Hot`]).
///
/// Invariant: none beyond `PMap`'s and [`Hot`]'s; the pointers are an implementation detail,
/// never exposed.
#[derive(Debug)]
pub(crate) struct StateMap<C: Clone + Hash + Eq, V> {
    map: PMap<C, Arc<V>>,
    hot: Hot<C, V>,
}

impl<C: Clone + Hash + Eq, V> Default for StateMap<C, V> {
    fn default() -> Self {
        Self {
            map: PMap::default(),
            hot: Hot::default(),
        }
    }
}

impl<C: Clone + Hash + Eq, V> Clone for StateMap<C, V> {
    /// O(1): shares the map. Both maps then share every node, so neither may write through a
    /// remembered entry any more: the original forgets its own (the clone starts with none).
    fn clone(&self) -> Self {
        self.hot.forget_shared();
        Self {
            map: self.map.clone(),
            hot: Hot::default(),
        }
    }
}

/// The entry a [`StateMap`] last handed out for a change, so that the next read or change of
/// the same key skips the map walk (a produce stream on one channel hashed the key, walked
/// the HAMT and checked each node for sharing on every call: about 80 of its ~420
/// instructions, callgrind).
///
/// Invariant, while `live` is set: `value` points at the value the map holds under a key equal
/// to `key`, and every node on the map's path to that entry, and the value's own `Arc`, is
/// held by this map alone. A `get_mut` that walked the map makes it so (imbl copies a shared
/// node on the way down, [`make_mut`] the value); it then stays so until the map is cloned
/// (the nodes become shared), or an entry is inserted or removed (the value may be dropped):
/// each of those clears `live`. So a write through `value` is a write to this map's own copy,
/// which is what `get_mut` would have returned.
///
/// `candidate` is the value a walk found last, compared and never read: a key is cloned into
/// `key` only when two walks in a row find the same value and `key` holds another, so a
/// stream alternating between channels clones no key (a `String` channel would allocate),
/// nor does one that comes back to the channel remembered before an insert.
struct Hot<C, V> {
    /// Whether `key` and `value` may be used. Atomic only because [`StateMap::clone`] clears
    /// it through `&self`, maybe on several threads at once (a checkpoint shared between
    /// them); every read and write is `Relaxed`: writes through `value` need `&mut` of the
    /// map, which no clone can overlap, and a map reaches another thread through a lock or an
    /// `Arc` that orders the clear before any later use. Not loom's: no protocol is built on
    /// it (an exclusive borrow is), so there is nothing for a model to explore.
    live: std::sync::atomic::AtomicBool,
    key: Option<C>,
    value: *mut V,
    candidate: *const V,
}

impl<C, V> Default for Hot<C, V> {
    fn default() -> Self {
        Self {
            live: std::sync::atomic::AtomicBool::new(false),
            key: None,
            value: std::ptr::null_mut(),
            candidate: std::ptr::null(),
        }
    }
}

impl<C, V> Hot<C, V> {
    /// Stops using the remembered entry: the map is now shared with a clone.
    #[inline]
    fn forget_shared(&self) {
        self.live.store(false, Relaxed);
    }

    /// Stops using the remembered entry and its candidate: an entry came or went.
    #[inline]
    fn forget(&mut self) {
        *self.live.get_mut() = false;
        self.candidate = std::ptr::null();
    }
}

impl<C: fmt::Debug, V> fmt::Debug for Hot<C, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hot")
            .field("live", &self.live.load(Relaxed))
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

// SAFETY: `value` points into a value the map owns (behind the map's own `Arc`), used only
// under `StateMap`'s borrows, as the map itself is; `candidate` is never dereferenced. So
// `Hot` may cross threads exactly when the map and the key may.
#[allow(unsafe_code)]
unsafe impl<C: Send, V: Send + Sync> Send for Hot<C, V> {}
// SAFETY: as for `Send`. Through `&StateMap` only `get` reads `value`, as a shared borrow of
// a value the map owns (what `PMap::get` hands out, hence `V: Sync`); nothing writes it.
#[allow(unsafe_code)]
unsafe impl<C: Sync, V: Send + Sync> Sync for Hot<C, V> {}

impl<C: Clone + Hash + Eq, V: Clone> StateMap<C, V> {
    /// The state of `channel`. A read of the channel last changed skips the map walk (see
    /// [`Hot`]).
    #[inline]
    #[allow(unsafe_code)] // see the SAFETY note
    pub(crate) fn get<Q: Hash + Eq + ?Sized>(&self, channel: &Q) -> Option<&V>
    where
        C: Borrow<Q>,
    {
        if self.hot.live.load(Relaxed) && self.hot.key.as_ref().map(Borrow::borrow) == Some(channel)
        {
            // SAFETY: `live` is set, so `value` is the value this map holds under `channel`
            // (alive as long as the map is, and no `&mut` of the map can coexist with
            // `&self`); the returned borrow is tied to `&self`.
            return Some(unsafe { &*self.hot.value });
        }
        self.map.get(channel).map(|v| &**v)
    }

    /// The state of `channel`, for a change (copied first if a clone shares it). A change to
    /// the same channel as the last one skips the map walk (see [`Hot`]).
    #[inline]
    #[allow(unsafe_code)] // see the SAFETY note
    pub(crate) fn get_mut(&mut self, channel: &C) -> Option<&mut V> {
        if *self.hot.live.get_mut() && self.hot.key.as_ref() == Some(channel) {
            // SAFETY: `live` is set, so by `Hot`'s invariant `value` is this map's own value
            // under `channel`, reachable through nothing but this map; `&mut self` makes the
            // borrow exclusive for as long as the returned reference lives.
            return Some(unsafe { &mut *self.hot.value });
        }
        self.get_mut_walk(channel)
    }

    /// [`get_mut`](Self::get_mut) through the map, remembering the entry when the walk before
    /// found it too.
    #[inline]
    #[allow(unsafe_code)] // see the SAFETY note
    fn get_mut_walk(&mut self, channel: &C) -> Option<&mut V> {
        let value: *mut V = make_mut(self.map.get_mut(channel)?);
        let hot = &mut self.hot;
        if std::ptr::eq(hot.candidate, value) {
            // The second walk in a row to this value: remember it (the walk just made its
            // path and its `Arc` this map's alone, which `Hot`'s invariant needs).
            if hot.key.as_ref() != Some(channel) {
                hot.key = Some(channel.clone());
            }
            hot.value = value;
            *hot.live.get_mut() = true;
        } else {
            *hot.live.get_mut() = false;
            hot.candidate = value;
        }
        // SAFETY: `value` came from `make_mut` on this map's entry just now; nothing touched
        // the map since, and the returned borrow is tied to `&mut self`.
        Some(unsafe { &mut *value })
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
        self.hot.forget();
        self.map.insert(channel, Arc::new(state));
    }

    /// Removes `channel`'s entry.
    pub(crate) fn remove<Q: Hash + Eq + ?Sized>(&mut self, channel: &Q)
    where
        C: Borrow<Q>,
    {
        self.hot.forget();
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
    use crate::test_rng::mix;

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

    /// Whether `m` writes through a remembered entry on its next `get_mut` of `key`.
    fn remembers(m: &mut StateMap<String, Vec<u32>>, key: &str) -> bool {
        *m.hot.live.get_mut() && m.hot.key.as_deref() == Some(key)
    }

    /// A map holding `"k" -> [1, 2, 3]`, written twice in a row so that it remembers `"k"`.
    fn remembering_k() -> StateMap<String, Vec<u32>> {
        let mut a: StateMap<String, Vec<u32>> = StateMap::default();
        let k = String::from("k");
        a.insert(k.clone(), vec![1]);
        a.get_mut(&k).unwrap().push(2);
        a.get_mut(&k).unwrap().push(3);
        assert!(remembers(&mut a, "k"));
        a
    }

    #[test]
    fn a_remembered_entry_is_not_written_through_once_the_map_is_cloned() {
        let mut a = remembering_k();
        let k = String::from("k");
        let mut b = a.clone();
        assert!(!remembers(&mut a, "k"), "a clone makes the original forget");
        assert!(!remembers(&mut b, "k"));
        a.get_mut(&k).unwrap().push(4);
        a.get_mut(&k).unwrap().push(5);
        assert_eq!(b.get(&k), Some(&vec![1, 2, 3]));
        b.get_mut(&k).unwrap().push(6);
        b.get_mut(&k).unwrap().push(7);
        assert!(remembers(&mut b, "k"));
        assert_eq!(a.get(&k), Some(&vec![1, 2, 3, 4, 5]));
        assert_eq!(b.get(&k), Some(&vec![1, 2, 3, 6, 7]));
        // Back to a's copy (a revert): its remembered entry is a's own, and a clone of it
        // (the checkpoint kept) is untouched by the writes after.
        let kept = a.clone();
        b = a.clone();
        b.get_mut(&k).unwrap().push(8);
        b.get_mut(&k).unwrap().push(9);
        drop(a);
        assert_eq!(kept.get(&k), Some(&vec![1, 2, 3, 4, 5]));
        assert_eq!(b.get(&k), Some(&vec![1, 2, 3, 4, 5, 8, 9]));
    }

    #[test]
    fn an_entry_replaced_or_removed_is_forgotten() {
        let mut a = remembering_k();
        let k = String::from("k");
        a.insert(k.clone(), vec![10]);
        assert!(!remembers(&mut a, "k"));
        assert_eq!(a.get_mut(&k), Some(&mut vec![10]));
        a.get_mut(&k).unwrap().push(11);
        a.remove(&k);
        assert_eq!(a.get_mut(&k), None);
        a.insert(k.clone(), vec![20]);
        assert_eq!(a.get_mut(&k), Some(&mut vec![20]));
        assert_eq!(a.get_mut(&k), Some(&mut vec![20]));
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn alternating_keys_are_not_remembered_and_a_repeated_one_is() {
        let mut a: StateMap<String, Vec<u32>> = StateMap::default();
        let (x, y) = (String::from("x"), String::from("y"));
        a.insert(x.clone(), vec![]);
        a.insert(y.clone(), vec![]);
        for i in 0..10 {
            a.get_mut(&x).unwrap().push(i);
            a.get_mut(&y).unwrap().push(i);
            assert!(!remembers(&mut a, "x") && !remembers(&mut a, "y"));
        }
        a.get_mut(&y).unwrap().push(10);
        assert!(remembers(&mut a, "y"));
        a.get_mut(&x).unwrap().push(10);
        assert!(!remembers(&mut a, "x") && !remembers(&mut a, "y"));
        assert_eq!(a.get(&x), a.get(&y));
        assert_eq!(a.get(&x).map(Vec::len), Some(11));
    }

    /// Seeded writes, inserts, removes, clones kept as checkpoints, reverts to them and drops
    /// of them, on a few keys (so that entries are remembered often), against plain
    /// `BTreeMap` copies: after every step the map and every kept clone hold what their model
    /// holds. A write through a remembered entry that a clone still shares shows up here as
    /// a kept clone that changed.
    #[test]
    fn writes_reach_only_their_own_map_whatever_the_sequence() {
        use std::collections::BTreeMap;
        type Model = BTreeMap<u32, Vec<u32>>;
        fn same(m: &StateMap<u32, Vec<u32>>, model: &Model) -> bool {
            m.len() == model.len() && model.iter().all(|(k, v)| m.get(k) == Some(v))
        }
        let steps = if cfg!(miri) { 400 } else { 20_000 };
        let mut seed = 7u64;
        let mut map: StateMap<u32, Vec<u32>> = StateMap::default();
        let mut model = Model::new();
        let mut kept: Vec<(StateMap<u32, Vec<u32>>, Model)> = Vec::new();
        for step in 0..steps {
            let r = mix(&mut seed);
            let key = (r >> 8) as u32 % 4;
            match r % 16 {
                0..=8 => {
                    let v = step as u32;
                    match (map.get_mut(&key), model.get_mut(&key)) {
                        (Some(a), Some(b)) => {
                            a.push(v);
                            b.push(v);
                        }
                        (None, None) => {}
                        _ => panic!("map and model disagree on {key}"),
                    }
                }
                9 | 10 => {
                    map.insert(key, vec![step as u32]);
                    model.insert(key, vec![step as u32]);
                }
                11 => {
                    map.remove(&key);
                    model.remove(&key);
                }
                12 | 13 => kept.push((map.clone(), model.clone())),
                14 if !kept.is_empty() => {
                    let (m, md) = &kept[(r >> 40) as usize % kept.len()];
                    map = m.clone();
                    model = md.clone();
                }
                _ if !kept.is_empty() => {
                    kept.swap_remove((r >> 40) as usize % kept.len());
                }
                _ => {}
            }
            assert!(same(&map, &model), "step {step}");
            for (i, (m, md)) in kept.iter().enumerate() {
                assert!(same(m, md), "step {step}: kept clone {i} changed");
            }
            if kept.len() > 8 {
                kept.remove(0);
            }
        }
    }
}
