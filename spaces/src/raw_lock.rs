//! `RawLock`: the lock under every [`crate::sync::Mutex`], taken with one compare-and-swap and
//! released with one plain store.
//!
//! # Why not parking_lot's
//! parking_lot's mutex releases with a compare-and-swap, so that the release and its check for
//! parked threads are one atomic step. A locked instruction costs ~7 ns on the development
//! machine's Xeon, and every one-shard operation takes and releases a shard lock: a
//! parking_lot lock-and-unlock pair measured 14.8 ns there, a compare-and-swap followed by a
//! plain store 7.3 ns. In `produce_only` the change took a produce from 30.0 to 26.8 ns, and
//! a soft checkpoint (32 shard locks) from 590 to 466 ns.
//!
//! # Protocol
//! - `locked` is 1 while the lock is held. Taking it is a compare-and-swap 0 → 1 (Acquire).
//! - `sleepers` counts the threads that are parked on the lock or about to park.
//! - **Release**: if `sleepers` reads 0, one plain store of 0 (Release). Otherwise the slow
//!   release, under the parking lot's bucket lock: wake one parked thread and hand the lock to
//!   it directly (`locked` stays 1) when the parking lot says it is time to be fair (about
//!   every 0.5 ms), else store 0 and let the woken thread compete for it. Handing over now and
//!   then keeps a thread that releases and retakes the lock in a tight loop from starving a
//!   parked one.
//! - **Waiting**: spin briefly (parking_lot_core's `SpinWait`: three short spins, then
//!   yields), then count oneself in `sleepers` and park, the parking lot checking under its
//!   bucket lock that `locked` still reads 1.
//!
//! **The one race, and why every park has a timeout.** The fast release's load of `sleepers`
//! and its store to `locked` are two steps with no fence between them, and the waiter's
//! registration and its look at `locked` are two more. So a waiter can count itself in and
//! still read `locked` as 1 just as a releaser, having read `sleepers` as 0, stores 0 (on x86:
//! while that store still sits in the releaser's store buffer, some tens of nanoseconds).
//! The waiter then parks with nobody to wake it. Closing that window would take a full fence
//! in every release, which costs what the compare-and-swap did. Instead a park lasts at most
//! [`PARK_TIMEOUT`], after which the waiter looks again: a missed wake-up costs that delay at
//! worst, never exclusion or progress. The slow release runs under the bucket lock that the
//! park's check also runs under, so it misses no thread that has parked.
//!
//! **Memory ordering.** A release (the plain store, or the slow path's store) is a Release
//! write of `locked` that the next compare-and-swap (Acquire) reads, so each holder's critical
//! section happens before the next one's. A handed-over lock passes through the parking lot's
//! bucket lock instead: the releaser picks the token under it, and the woken thread reads the
//! token after the parking lot's wake-up. `sleepers` only decides which release path runs, so
//! it is `Relaxed` (a stale value costs a slow release with nobody to wake, or the race above).
//!
//! **Checked** by loom models (`RUSTFLAGS="--cfg loom" cargo test -p rhospace-spaces --lib
//! raw_lock`): under loom the atomics are loom's and the parking lot is a model (a queue under
//! a loom mutex, where a parked thread may time out at any step after it is queued). The
//! models check exclusion and visibility (a counter in a loom `UnsafeCell`, so loom reports any
//! access not ordered by the lock), handing over, and that every interleaving finishes.

// lock_api's `RawMutex` is an unsafe trait (an implementation must really exclude), and
// parking_lot_core's `park`/`unpark_one` are unsafe functions (their callbacks must not panic
// or park). Each use says why it holds; nothing else in the crate is unsafe.
#![allow(unsafe_code)]

use crate::sync::atomic::Ordering::Release;
use crate::sync::atomic::{AtomicU32, AtomicU8, Ordering::Acquire, Ordering::Relaxed};
use crate::sync::parking::{self, ParkResult, SpinWait, UnparkResult, UnparkToken};

/// The longest a waiter stays parked before it looks at the lock again: the bound on the
/// delay of a missed wake-up (see the module docs). A waiter parked through a long hold (a hard
/// checkpoint of a large space) wakes this often, ~2 µs of work each time.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) const PARK_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1);

/// The wake-up token of a lock handed to the woken thread (it holds the lock on return).
const TOKEN_HANDOFF: UnparkToken = UnparkToken(1);

/// The wake-up token of a lock released for the woken thread to compete for.
const TOKEN_NORMAL: UnparkToken = UnparkToken(0);

/// A mutual-exclusion lock without data (see the module docs).
///
/// Invariant: `locked` is 1 exactly while some thread holds the lock (one handed over is held
/// by the thread it was handed to); `sleepers` is the number of threads between counting
/// themselves in and out around a park.
#[derive(Debug)]
pub(crate) struct RawLock {
    locked: AtomicU8,
    sleepers: AtomicU32,
}

impl RawLock {
    /// A free lock.
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        Self {
            locked: AtomicU8::new(0),
            sleepers: AtomicU32::new(0),
        }
    }

    /// A free lock (loom's atomics cannot be built in a `const fn`).
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Self {
            locked: AtomicU8::new(0),
            sleepers: AtomicU32::new(0),
        }
    }

    /// Takes the lock if it is free.
    #[inline]
    pub(crate) fn try_lock(&self) -> bool {
        // Acquire: pairs with the Release store of the release before, so its critical
        // section happens before ours.
        self.locked.compare_exchange(0, 1, Acquire, Relaxed).is_ok()
    }

    /// Takes the lock, waiting (spinning, then parking) while another thread holds it.
    #[inline]
    pub(crate) fn lock(&self) {
        if !self.try_lock() {
            self.lock_slow();
        }
    }

    /// Whether some thread holds the lock (a hint: it may change at once).
    #[inline]
    pub(crate) fn is_locked(&self) -> bool {
        // Relaxed: only decides whether to try (or, in the park's check, whether to sleep);
        // the lock is taken only by the Acquire compare-and-swap or a hand-over.
        self.locked.load(Relaxed) != 0
    }

    /// Releases the lock.
    ///
    /// # Safety
    /// The calling thread holds the lock (took it, or was handed it, and has not released it).
    #[inline]
    pub(crate) unsafe fn unlock(&self) {
        // Relaxed: a stale 0 takes the fast release past a waiter that is just counting
        // itself in; that waiter's park times out (module docs).
        if self.sleepers.load(Relaxed) == 0 {
            // Release: our critical section happens before the next taker's.
            self.locked.store(0, Release);
        } else {
            self.unlock_slow();
        }
    }

    /// The address that names this lock in the parking lot.
    #[inline]
    fn key(&self) -> usize {
        self as *const Self as usize
    }

    #[cold]
    #[inline(never)]
    fn lock_slow(&self) {
        let mut spin = SpinWait::new();
        loop {
            if !self.is_locked() && self.try_lock() {
                return;
            }
            if spin.spin() {
                continue;
            }
            // Relaxed: the count only chooses the release path (module docs).
            self.sleepers.fetch_add(1, Relaxed);
            let deadline = std::time::Instant::now() + PARK_TIMEOUT;
            // SAFETY: the key is this lock's address, which lives while we wait on it; the
            // callbacks neither panic nor call into the parking lot.
            let parked = unsafe {
                parking::park(
                    self.key(),
                    || self.is_locked(),
                    || {},
                    |_, _| {},
                    parking::DEFAULT_PARK_TOKEN,
                    Some(deadline),
                )
            };
            // Relaxed: as the count in; no data is published through it.
            self.sleepers.fetch_sub(1, Relaxed);
            if parked == ParkResult::Unparked(TOKEN_HANDOFF) {
                // The releaser left `locked` at 1 for us.
                return;
            }
            spin.reset();
        }
    }

    #[cold]
    #[inline(never)]
    fn unlock_slow(&self) {
        let hand_over = |result: UnparkResult| {
            if result.unparked_threads != 0 && result.be_fair {
                TOKEN_HANDOFF
            } else {
                // Release: as the fast release.
                self.locked.store(0, Release);
                TOKEN_NORMAL
            }
        };
        // SAFETY: the key is this lock's address; the callback neither panics nor calls into
        // the parking lot.
        unsafe {
            parking::unpark_one(self.key(), hand_over);
        }
    }
}

// SAFETY: `lock` and `try_lock` succeed only for the thread whose compare-and-swap turned
// `locked` from 0 to 1, or that was handed the lock with `locked` left at 1, and `locked`
// returns to 0 only in `unlock`, which lock_api calls only for the holder: at most one thread
// holds the lock, and the Release/Acquire pairs (or the parking lot's bucket lock, when
// handed over) order the holders' critical sections.
#[cfg(not(loom))]
unsafe impl lock_api::RawMutex for RawLock {
    #[allow(clippy::declare_interior_mutable_const)] // lock_api's required initialiser.
    const INIT: Self = Self::new();

    // A guard may be dropped on another thread: nothing in the lock depends on which thread
    // releases it. Kept `NoSend`, as parking_lot's guards were, since no caller sends one.
    type GuardMarker = lock_api::GuardNoSend;

    #[inline]
    fn lock(&self) {
        RawLock::lock(self)
    }

    #[inline]
    fn try_lock(&self) -> bool {
        RawLock::try_lock(self)
    }

    #[inline]
    unsafe fn unlock(&self) {
        // SAFETY: lock_api calls this only for the thread holding the lock.
        unsafe { RawLock::unlock(self) }
    }

    #[inline]
    fn is_locked(&self) -> bool {
        RawLock::is_locked(self)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::RawLock;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::Duration;

    /// A counter behind a raw lock, bumped with a non-atomic read-then-write.
    struct Counted {
        lock: RawLock,
        n: AtomicU64,
    }

    impl Counted {
        fn bump(&self) {
            self.lock.lock();
            // A read and a separate write: only exclusion keeps bumps from being lost.
            let v = self.n.load(Ordering::Relaxed);
            self.n.store(v + 1, Ordering::Relaxed);
            // SAFETY: taken just above.
            unsafe { self.lock.unlock() };
        }
    }

    #[test]
    fn contended_bumps_are_all_kept() {
        // Four threads on the development machine's two cores: waiters spin, park, are woken
        // and handed the lock.
        let c = Counted {
            lock: RawLock::new(),
            n: AtomicU64::new(0),
        };
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..100_000 {
                        c.bump();
                    }
                });
            }
        });
        assert_eq!(c.n.load(Ordering::Relaxed), 400_000);
        assert!(!c.lock.is_locked());
    }

    #[test]
    fn a_parked_waiter_gets_the_lock_when_it_is_released() {
        // The holder keeps the lock far past the waiter's spinning, so the waiter parks; the
        // release must let it in (by waking it, or, were the wake-up missed, by its timeout).
        let lock = RawLock::new();
        let waiting = AtomicBool::new(false);
        let got_in = AtomicBool::new(false);
        lock.lock();
        std::thread::scope(|s| {
            s.spawn(|| {
                waiting.store(true, Ordering::SeqCst);
                lock.lock();
                got_in.store(true, Ordering::SeqCst);
                // SAFETY: taken just above.
                unsafe { lock.unlock() };
            });
            while !waiting.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            std::thread::sleep(Duration::from_millis(20));
            assert!(
                !got_in.load(Ordering::SeqCst),
                "the waiter got in while the lock was held"
            );
            // SAFETY: taken before the scope.
            unsafe { lock.unlock() };
        });
        assert!(got_in.load(Ordering::SeqCst));
        assert!(!lock.is_locked());
    }

    #[test]
    fn try_lock_fails_while_held_and_succeeds_after() {
        let lock = RawLock::new();
        assert!(lock.try_lock());
        assert!(lock.is_locked());
        assert!(!lock.try_lock());
        // SAFETY: taken above.
        unsafe { lock.unlock() };
        assert!(!lock.is_locked());
        assert!(lock.try_lock());
        // SAFETY: taken just above.
        unsafe { lock.unlock() };
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use super::RawLock;
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;
    use loom::thread;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A counter that loom checks for unordered access, behind a raw lock.
    struct Guarded {
        lock: RawLock,
        n: UnsafeCell<u32>,
    }

    // SAFETY (test): `n` is touched only while `lock` is held, which is what the models check
    // (loom reports an access that the lock does not order).
    unsafe impl Sync for Guarded {}

    impl Guarded {
        fn bump(&self) {
            self.lock.lock();
            self.n.with_mut(|p| {
                // SAFETY: under the lock; loom checks this access is ordered.
                unsafe { *p += 1 }
            });
            // SAFETY: taken above.
            unsafe { self.lock.unlock() };
        }
    }

    /// Runs `f` under loom; returns the number of executions explored.
    fn model(f: impl Fn() + Sync + Send + 'static) -> usize {
        let runs = std::sync::Arc::new(AtomicUsize::new(0));
        let counter = runs.clone();
        loom::model(move || {
            counter.fetch_add(1, Ordering::Relaxed);
            f();
        });
        let n = runs.load(Ordering::Relaxed);
        eprintln!("{n} executions");
        n
    }

    #[test]
    fn two_threads_exclude_each_other_and_see_each_others_writes() {
        let runs = model(|| {
            let g = Arc::new(Guarded {
                lock: RawLock::new(),
                n: UnsafeCell::new(0),
            });
            let h = {
                let g = g.clone();
                thread::spawn(move || {
                    g.bump();
                    g.bump();
                })
            };
            g.bump();
            h.join().expect("bumper ran");
            g.lock.lock();
            let n = g.n.with(|p| {
                // SAFETY: under the lock.
                unsafe { *p }
            });
            // SAFETY: taken above.
            unsafe { g.lock.unlock() };
            assert_eq!(n, 3);
            assert!(!g.lock.is_locked());
        });
        assert!(runs > 1, "loom explored only {runs} execution(s)");
    }

    #[test]
    fn a_parked_waiter_is_woken_or_handed_the_lock() {
        // The main thread holds the lock while the other waits: the waiter may spin, park, be
        // woken, be handed the lock, or time out and look again, while the main thread comes
        // straight back for the lock; in every interleaving both finish, never both inside,
        // and every write is seen.
        let runs = model(|| {
            let g = Arc::new(Guarded {
                lock: RawLock::new(),
                n: UnsafeCell::new(0),
            });
            g.lock.lock();
            let h = {
                let g = g.clone();
                thread::spawn(move || g.bump())
            };
            thread::yield_now();
            g.n.with_mut(|p| {
                // SAFETY: under the lock taken above.
                unsafe { *p += 10 }
            });
            // SAFETY: taken above.
            unsafe { g.lock.unlock() };
            // Straight back for the lock: it competes with the woken waiter, or finds the
            // lock handed to it.
            g.bump();
            h.join().expect("waiter ran");
            let n = g.n.with(|p| {
                // SAFETY: both other bumpers have finished (joined).
                unsafe { *p }
            });
            assert_eq!(n, 12);
        });
        assert!(runs > 1, "loom explored only {runs} execution(s)");
    }
}
