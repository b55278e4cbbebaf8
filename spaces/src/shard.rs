//! Sharding by channel: which shard a channel lives in, and the set of shard locks one
//! operation holds.
//!
//! # Lock protocol
//! - Every channel lives in exactly one shard, `Router::shard_of(channel)`. A join group's
//!   continuation store lives in the shard of the group's first channel (its *home*).
//! - An operation locks every shard it reads or writes, always in **ascending shard index**,
//!   through [`LockSet`]; no lock is taken while a higher-indexed one is held, so no cycle of
//!   waiting threads can form (no deadlock).
//! - Whole-space operations (soft checkpoints, revert, clear, `is_empty`) lock every shard in
//!   the same ascending order: they pause writers briefly and see one consistent state.
//!
//! The loom models in `tests/loom_space.rs` explore this protocol on loom's mutexes.

use std::hash::{BuildHasher, Hash};

use smallvec::SmallVec;

use crate::sync::{Mutex, MutexGuard};

/// Shards of a space built with [`crate::Space::new`].
pub const DEFAULT_SHARDS: usize = 32;

/// The most shards a space may have.
pub const MAX_SHARDS: usize = 1024;

/// Maps a channel to its shard.
///
/// The hash has a fixed seed, so the routing is the same in every process; it never reaches a
/// result (results depend only on per-channel order), but a stable routing lets a soft
/// checkpoint move between spaces with the same shard count without re-routing.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Router {
    /// `shards - 1`; `shards` is a power of two.
    mask: usize,
}

impl Router {
    /// A router over `shards` shards, rounded up to a power of two in `1..=MAX_SHARDS`.
    pub(crate) fn new(shards: usize) -> Self {
        let n = shards.clamp(1, MAX_SHARDS).next_power_of_two();
        Self { mask: n - 1 }
    }

    /// The number of shards.
    pub(crate) fn shards(self) -> usize {
        self.mask + 1
    }

    /// The shard `channel` lives in.
    #[inline]
    pub(crate) fn shard_of<C: Hash + ?Sized>(self, channel: &C) -> usize {
        if self.mask == 0 {
            return 0;
        }
        let h = foldhash::fast::FixedState::with_seed(0x7268_6f73_7061_6365).hash_one(channel);
        // The high bits: the low ones of a multiplicative hash mix less.
        (h >> 40) as usize & self.mask
    }
}

/// A value on its own cache line, so neighbouring shard locks do not share one (false sharing
/// would serialise threads working on different shards).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

/// The shard locks one operation holds.
///
/// Invariant: `guards` is sorted by shard index, without duplicates, and was acquired in that
/// order (the lock protocol above).
pub(crate) struct LockSet<'a, T> {
    guards: SmallVec<[(usize, MutexGuard<'a, T>); 4]>,
}

impl<'a, T> LockSet<'a, T> {
    /// Locks the shards `indices` (sorted ascending, no duplicates) in that order. One shard
    /// is taken with [`Mutex::lock_hot`]; several with the plain lock, so that an operation
    /// holding some shards does not back off (and keep their waiters waiting) on the next.
    pub(crate) fn lock(shards: &'a [Padded<Mutex<T>>], indices: &[usize]) -> Self {
        debug_assert!(indices.windows(2).all(|w| w[0] < w[1]));
        let mut guards = SmallVec::with_capacity(indices.len());
        if let [i] = indices {
            guards.push((*i, shards[*i].0.lock_hot()));
        } else {
            for &i in indices {
                guards.push((i, shards[i].0.lock()));
            }
        }
        Self { guards }
    }

    /// Wraps one already held guard.
    pub(crate) fn single(index: usize, guard: MutexGuard<'a, T>) -> Self {
        let mut guards = SmallVec::new();
        guards.push((index, guard));
        Self { guards }
    }

    /// Whether shard `index` is held.
    pub(crate) fn holds(&self, index: usize) -> bool {
        self.position(index).is_some()
    }

    #[inline]
    fn position(&self, index: usize) -> Option<usize> {
        self.guards.iter().position(|(i, _)| *i == index)
    }

    /// Shard `index`, which must be held.
    #[inline]
    pub(crate) fn get(&self, index: usize) -> &T {
        let at = self.at(index);
        &self.guards[at].1
    }

    /// Shard `index`, which must be held.
    #[inline]
    pub(crate) fn get_mut(&mut self, index: usize) -> &mut T {
        let at = self.at(index);
        &mut self.guards[at].1
    }

    /// Where shard `index`'s guard sits. Checked in every build, not only under
    /// `debug_assertions` (the tests run in release): with one lock held, the common case,
    /// that is one compare.
    #[inline]
    fn at(&self, index: usize) -> usize {
        match self.guards.first() {
            Some((i, _)) if *i == index => 0,
            _ => self.position(index).unwrap_or_else(|| not_held(index)),
        }
    }
}

/// Every shard lock, held in ascending order: a pause of the whole space.
pub(crate) struct AllLocked<'a, T> {
    pub(crate) guards: Vec<MutexGuard<'a, T>>,
}

impl<'a, T> AllLocked<'a, T> {
    /// Locks every shard in ascending order.
    pub(crate) fn lock(shards: &'a [Padded<Mutex<T>>]) -> Self {
        let mut guards = Vec::with_capacity(shards.len());
        for s in shards {
            guards.push(s.0.lock());
        }
        Self { guards }
    }
}

#[cold]
fn not_held(index: usize) -> usize {
    // Only reachable if an operation reads a shard it did not lock: a bug in this crate, never
    // an input. Fail loudly rather than read unlocked state.
    panic!("rhospace lock protocol broken: shard {index} read without its lock")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn router_rounds_to_a_power_of_two_and_stays_in_range() {
        for (asked, got) in [(0, 1), (1, 1), (3, 4), (32, 32), (5000, MAX_SHARDS)] {
            let r = Router::new(asked);
            assert_eq!(r.shards(), got);
            for c in 0u64..1000 {
                assert!(r.shard_of(&c) < got);
            }
        }
    }

    #[test]
    fn router_spreads_channels() {
        let r = Router::new(32);
        let mut counts = [0usize; 32];
        for c in 0u64..32_000 {
            counts[r.shard_of(&c)] += 1;
        }
        // Every shard gets a fair share (1000 expected each).
        assert!(
            counts.iter().all(|&n| (700..1300).contains(&n)),
            "{counts:?}"
        );
    }

    #[test]
    fn lock_set_finds_its_shards() {
        let shards: Vec<Padded<Mutex<u32>>> = (0..8).map(|i| Padded(Mutex::new(i))).collect();
        let mut set = LockSet::lock(&shards, &[1, 4, 6]);
        assert!(set.holds(4) && !set.holds(5));
        *set.get_mut(4) += 10;
        assert_eq!(*set.get(4), 14);
        assert_eq!(*set.get(6), 6);
        drop(set);
        assert_eq!(*shards[4].0.lock(), 14);
    }

    #[test]
    #[should_panic(expected = "shard 2 read without its lock")]
    fn one_held_lock_is_not_handed_out_for_another_shard() {
        let shards: Vec<Padded<Mutex<u32>>> = (0..4).map(|i| Padded(Mutex::new(i))).collect();
        let set = LockSet::lock(&shards, &[1]);
        assert_eq!(*set.get(1), 1);
        let _ = set.get(2);
    }
}
