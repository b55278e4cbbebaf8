//! The one place this crate takes its locks from.
//!
//! Under `cfg(loom)` the space's lock is loom's, so a model can explore interleavings of our
//! protocol; otherwise it is `parking_lot`'s, wrapped to the same API (`lock()` returns the guard
//! directly: a poisoned lock cannot happen because no code path panics while holding it).
//! Algorithm code imports only from here and never branches on the cfg.
//!
//! # Contended acquisition of a shard by one operation: back off, then park
//! A one-shard operation (a produce, a one-channel consume, a read) is short (tens to hundreds
//! of nanoseconds) and touches a dozen cache lines of shard state. When two threads hammer one
//! shard and the lock changes hands after every operation, each handover drags those lines to
//! the other core, and two threads together ran at 0.6x of one thread's throughput
//! (`lock_contention_same_channel/produce/2`, 2 cores). parking_lot's own spin retries within
//! ~100 ns, so it hands over on nearly every operation.
//!
//! So [`Mutex::lock_hot`], which those operations use, backs off when it finds the lock held:
//! exponentially, [`BACKOFF_MIN`] doubling to [`BACKOFF_MAX`] spin-loop hints between looks
//! (~8k hints in all, 0.1 to 0.3 ms), while the holder runs a stretch of operations with the
//! state in its cache; handovers become rare and same-shard throughput stays near one
//! thread's. Then it yields its core [`BACKOFF_YIELDS`] times (a preempted holder may be
//! waiting for one), and then parks in parking_lot's `lock()`, whose eventual fairness then
//! applies. Everything else takes [`Mutex::lock`], parking_lot's own: operations that hold or
//! take several shards (joins, checkpoints, revert, `clear`), which would keep others waiting
//! on the shards they hold while they back off, and the space's other locks.
//!
//! Limits: a waiter can be overtaken for as long as it backs off (fairness is traded for
//! throughput), and with more threads than cores a spinning waiter takes a core from running
//! threads for up to the spin time; a review measured waits at p99.999 of ~4 ms against
//! ~0.4 ms for parking_lot alone with 4 threads on one lock on 2 cores, at twice the
//! throughput.
//!
//! This adds no memory ordering of its own: a look is a `Relaxed` read of parking_lot's state
//! word that only decides whether to try, and the lock is taken only by parking_lot's
//! `try_lock` or `lock` (Acquire), released by its guard (Release). Loom builds keep loom's
//! mutex, since backing off is a performance policy, not part of the protocol the models check.

#[cfg(not(loom))]
mod imp {
    /// A mutual-exclusion lock with the same API under loom and without it.
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(parking_lot::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(parking_lot::Mutex::new(value))
        }
        /// Takes the lock (parking_lot's own acquisition).
        #[inline]
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock()
        }

        /// Takes the lock for a one-shard operation: at once if free, else after backing off
        /// (see the module docs).
        #[inline]
        pub(crate) fn lock_hot(&self) -> MutexGuard<'_, T> {
            match self.0.try_lock() {
                Some(g) => g,
                None => self.lock_contended(),
            }
        }

        #[cold]
        fn lock_contended(&self) -> MutexGuard<'_, T> {
            let mut hints = super::BACKOFF_MIN;
            loop {
                for _ in 0..hints {
                    std::hint::spin_loop();
                }
                if let Some(g) = self.try_after_look() {
                    return g;
                }
                if hints == super::BACKOFF_MAX {
                    break;
                }
                hints = (hints * 2).min(super::BACKOFF_MAX);
            }
            for _ in 0..super::BACKOFF_YIELDS {
                std::thread::yield_now();
                if let Some(g) = self.try_after_look() {
                    return g;
                }
            }
            #[cfg(test)]
            super::PARKED.with(|p| p.set(p.get() + 1));
            self.0.lock()
        }

        /// A `Relaxed` look, then a `try_lock` if the lock looked free: the look only decides
        /// whether a compare-and-swap is worth trying.
        #[inline]
        fn try_after_look(&self) -> Option<MutexGuard<'_, T>> {
            if self.0.is_locked() {
                None
            } else {
                self.0.try_lock()
            }
        }
    }

    /// The guard [`Mutex::lock`] returns.
    pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;
}

#[cfg(loom)]
mod imp {
    /// A mutual-exclusion lock with the same API under loom and without it.
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }
        #[inline]
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            // Poisoning needs a panic while the lock is held; no code path of ours panics there.
            match self.0.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            }
        }
        /// As [`lock`](Self::lock): backing off is not part of the protocol the models check.
        #[inline]
        pub(crate) fn lock_hot(&self) -> MutexGuard<'_, T> {
            self.lock()
        }
    }

    impl<T: Default> Default for Mutex<T> {
        fn default() -> Self {
            Self::new(T::default())
        }
    }

    /// The guard [`Mutex::lock`] returns.
    pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;
}

pub(crate) use imp::{Mutex, MutexGuard};

/// Spin-loop hints before a contended waiter's first look at the lock (~1 µs). Long enough that
/// the holder finishes a stretch of operations undisturbed (a hint is ~15 ns on the development
/// machine's Xeon, up to ~40 ns on other Intel parts, which only lengthens the wait). Chosen by
/// measurement against 16 (first look) / 1024 (most): same-channel produce 0.99x against 0.96x
/// of one thread, mixed produce/consume 1.06-1.18x against 0.99x.
#[cfg_attr(loom, allow(dead_code))]
const BACKOFF_MIN: u32 = 64;

/// The most hints between two looks; the spinning ends after the look that follows it
/// (64 + 128 + ... + 4096, ~8k hints in all).
#[cfg_attr(loom, allow(dead_code))]
const BACKOFF_MAX: u32 = 4096;

/// Looks after yielding the core, once the spinning is over, before the waiter parks.
#[cfg_attr(loom, allow(dead_code))]
const BACKOFF_YIELDS: u32 = 4;

#[cfg(all(test, not(loom)))]
thread_local! {
    /// Times this thread parked in [`Mutex::lock_hot`] after backing off (tests read it).
    static PARKED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[test]
    fn contended_increments_are_all_kept() {
        // Four threads on two cores: waiters back off, some run out of looks and park.
        let m = Mutex::new(0u64);
        std::thread::scope(|s| {
            for t in 0..4 {
                let m = &m;
                s.spawn(move || {
                    for _ in 0..50_000 {
                        // Both acquisitions exclude each other.
                        *(if t % 2 == 0 { m.lock_hot() } else { m.lock() }) += 1;
                    }
                });
            }
        });
        assert_eq!(*m.lock(), 200_000);
    }

    #[test]
    fn a_waiter_outlasting_its_backoff_parks_and_gets_the_lock() {
        let m = Mutex::new(Vec::new());
        let held = AtomicBool::new(false);
        let parked_before = super::PARKED.with(|p| p.get());
        std::thread::scope(|s| {
            let holder = s.spawn(|| {
                let mut g = m.lock();
                held.store(true, Ordering::SeqCst);
                // Far longer than the whole backoff (well under a millisecond).
                std::thread::sleep(Duration::from_millis(50));
                g.push("holder");
            });
            while !held.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            m.lock_hot().push("waiter");
            holder.join().expect("holder ran");
        });
        assert_eq!(*m.lock(), ["holder", "waiter"]);
        // This thread gave up backing off and parked, once.
        assert_eq!(super::PARKED.with(|p| p.get()), parked_before + 1);
    }
}
