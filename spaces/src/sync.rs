//! The one place this crate takes its locks from.
//!
//! Under `cfg(loom)` the space's lock is loom's, so a model can explore interleavings of our
//! protocol; otherwise it is our [`RawLock`](crate::raw_lock::RawLock) (a compare-and-swap to
//! take, a plain store to release) under `lock_api`'s guard, with the same API (`lock()`
//! returns the guard directly: a poisoned lock cannot happen because no code path panics while
//! holding it). The raw lock's own atomics and parking come from here too ([`atomic`],
//! [`parking`]), loom's and a model parking lot under `cfg(loom)`, so its loom models run the
//! real protocol. Algorithm code imports only from here and never branches on the cfg.
//!
//! # Contended acquisition of a shard by one operation: wait for the holder to go idle
//! A one-shard operation (a produce, a one-channel consume, a read) is short (tens of
//! nanoseconds) and touches a dozen cache lines of shard state. When two threads hammer one
//! shard, every change of hands drags those lines to the other core (~2 µs here), and a waiter
//! that merely *looks* at the lock word pulls its line away from the holder, which pays for it
//! on its next acquisition. A lock's own spin retries within ~100 ns, so it hands over on
//! nearly every operation: two threads ran at 0.6x of one thread's throughput
//! (`lock_contention_same_channel/produce/2`, 2 cores). An exponential backoff that took the
//! lock whenever a look found it free still changed hands every ~20 µs (a holder between two
//! operations leaves the lock free much of the time) and ran at 0.92-0.95x.
//!
//! So [`Mutex::lock_hot`], which those operations use, tells a holder that is *between*
//! operations from one that has *gone idle*. Every acquisition it makes bumps a counter beside
//! the lock word (same cache line, written while the holder owns the line anyway). A waiter that finds
//! the lock free notes the counter, waits [`CONFIRM_HINTS`] spin-loop hints (far longer than a
//! holder's gap between two operations) and looks again: still free with the counter
//! unchanged means nobody took the lock in between, so the holder has gone idle and the waiter
//! takes it. Otherwise the waiter keeps waiting and looks rarely (the gap between looks doubles
//! from [`BACKOFF_MIN`] to [`BACKOFF_MAX`] hints, and at the largest gap it also yields its
//! core, in case the holder was preempted), so the holder runs a long stretch with the shard in
//! its cache. Once [`PATIENCE`] has passed the waiter takes the lock at the first look that
//! finds it free, so busy threads take turns in long stretches and none starves. After a
//! further [`IMPATIENT_SPIN`] (a holder that keeps one acquisition that long, such as a
//! checkpoint, or one preempted with more threads than cores) it yields [`BACKOFF_YIELDS`]
//! times and then parks in the raw lock's `lock()`, whose eventual fairness then applies.
//!
//! Everything else takes [`Mutex::lock`], the raw lock's own: operations that hold or take
//! several shards (joins, checkpoints, revert, `clear`), which would keep others waiting on the
//! shards they hold while they waited, and the space's other locks.
//!
//! Measured on the 2-core development machine (a produce per operation, all threads on one
//! channel, median of 21 interleaved runs of 200 chunks of 32,768 produces): two threads ran
//! at 1.01x of one thread's throughput and four at 0.97x, against 0.95x and 0.91x for the
//! backoff alone.
//!
//! Limits: under sustained contention a waiter waits about [`PATIENCE`] for its turn (fairness
//! is traded for throughput); a waiter that collides with a short holder waits at least one
//! [`BACKOFF_MIN`] and one [`CONFIRM_HINTS`] gap (about a microsecond here); and with more
//! threads than cores a spinning waiter takes a core from running threads, yielding it at
//! every look once its gaps are longest, for up to [`PATIENCE`] + [`IMPATIENT_SPIN`].
//!
//! This adds no memory ordering of its own: the counter and the look at the raw lock's state
//! word are `Relaxed` reads that only decide whether to try (a stale value costs at most a
//! failed `try_lock` or a longer wait), the counter is written only while the lock is held,
//! and the lock is taken only by the raw lock's `try_lock` or `lock` (Acquire) and released by
//! its guard (Release). Loom builds keep loom's mutex for the space, since the waiting policy
//! is a matter of performance, not part of the protocol the space's models check; the raw
//! lock has models of its own (`crate::raw_lock`).

#[cfg(not(loom))]
mod imp {
    use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
    use std::time::Instant;

    use crate::raw_lock::RawLock;

    /// A mutual-exclusion lock with the same API under loom and without it.
    ///
    /// Invariant: `acquisitions` is written only by the thread holding `inner`, once per
    /// acquisition through [`lock_hot`](Self::lock_hot); it shares a cache line with `inner`'s
    /// state word (`repr(C)`, both first).
    ///
    /// [`lock`](Self::lock) does not count: its callers (checkpoints, joins, `clear`) take
    /// every shard they need one after another, and the count's load and store cost a soft
    /// checkpoint, which locks 32 shards, ~65 ns of its ~690 (+9%). A waiter may therefore take
    /// the lock between two such operations, which costs a change of hands, not correctness.
    #[derive(Debug, Default)]
    #[repr(C)]
    pub(crate) struct Mutex<T> {
        /// Acquisitions so far, wrapping: a waiter compares two reads of it to learn whether
        /// anyone took the lock in between.
        acquisitions: AtomicU32,
        inner: lock_api::Mutex<RawLock, T>,
    }

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self {
                acquisitions: AtomicU32::new(0),
                inner: lock_api::Mutex::new(value),
            }
        }

        /// Takes the lock (the raw lock's own waiting; not counted).
        #[inline]
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.inner.lock()
        }

        /// Takes the lock for a one-shard operation: at once if free, else once its holder
        /// has gone idle or the waiter's patience has run out (see the module docs).
        #[inline]
        pub(crate) fn lock_hot(&self) -> MutexGuard<'_, T> {
            match self.inner.try_lock() {
                Some(g) => self.acquired(g),
                None => self.lock_contended(super::PATIENCE),
            }
        }

        /// Counts an acquisition. Relaxed load and store, not a read-modify-write: only the
        /// holder writes, and readers use the value only to decide whether to try.
        #[inline]
        fn acquired<'a>(&'a self, g: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            let n = self.acquisitions.load(Relaxed).wrapping_add(1);
            self.acquisitions.store(n, Relaxed);
            g
        }

        /// The waiting of [`lock_hot`](Self::lock_hot), with the patience as a parameter so
        /// that tests can take each way in.
        #[cold]
        pub(super) fn lock_contended(&self, patience: std::time::Duration) -> MutexGuard<'_, T> {
            let start = Instant::now();
            let mut hints = super::BACKOFF_MIN;
            loop {
                spin(hints);
                // One clock read per look serves both decisions below.
                let waited = start.elapsed();
                if !self.inner.is_locked() {
                    let patient = waited < patience;
                    if !patient || self.stays_free() {
                        if let Some(g) = self.inner.try_lock() {
                            #[cfg(test)]
                            if patient {
                                super::TAKEN_IDLE.with(|t| t.set(t.get() + 1));
                            }
                            return self.acquired(g);
                        }
                    }
                }
                if waited >= patience + super::IMPATIENT_SPIN {
                    break;
                }
                if hints == super::BACKOFF_MAX {
                    std::thread::yield_now();
                }
                hints = (hints * 2).min(super::BACKOFF_MAX);
            }
            for _ in 0..super::BACKOFF_YIELDS {
                std::thread::yield_now();
                if !self.inner.is_locked() {
                    if let Some(g) = self.inner.try_lock() {
                        return self.acquired(g);
                    }
                }
            }
            #[cfg(test)]
            super::PARKED.with(|p| p.set(p.get() + 1));
            self.acquired(self.inner.lock())
        }

        /// Whether the lock, just seen free, stays free and untaken for [`CONFIRM_HINTS`](super::CONFIRM_HINTS):
        /// a holder between two operations would have taken it again by then.
        fn stays_free(&self) -> bool {
            let seen = self.acquisitions.load(Relaxed);
            spin(super::CONFIRM_HINTS);
            !self.inner.is_locked() && self.acquisitions.load(Relaxed) == seen
        }
    }

    /// `hints` spin-loop hints.
    #[inline]
    fn spin(hints: u32) {
        for _ in 0..hints {
            std::hint::spin_loop();
        }
    }

    /// The guard [`Mutex::lock`] returns.
    pub(crate) type MutexGuard<'a, T> = lock_api::MutexGuard<'a, RawLock, T>;
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

/// Atomics: std's, or loom's under `cfg(loom)`.
pub(crate) mod atomic {
    #[cfg(loom)]
    pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU8};
    pub(crate) use std::sync::atomic::Ordering;
    #[cfg(not(loom))]
    pub(crate) use std::sync::atomic::{AtomicU32, AtomicU8};
}

/// Parking a thread on an address and waking it: parking_lot_core's, or under `cfg(loom)` a
/// model with the same signatures (see `model_parking`, compiled only under `cfg(loom)`).
pub(crate) mod parking {
    #[cfg(loom)]
    pub(crate) use super::model_parking::{
        park, unpark_one, ParkResult, SpinWait, UnparkResult, UnparkToken, DEFAULT_PARK_TOKEN,
    };
    #[cfg(not(loom))]
    pub(crate) use parking_lot_core::{
        park, unpark_one, ParkResult, SpinWait, UnparkResult, UnparkToken, DEFAULT_PARK_TOKEN,
    };
}

/// A model of parking_lot_core's parking lot for loom: one queue of parked threads under a
/// loom mutex. A parked thread stays queued across one `yield_now` and then either finds it
/// was woken (removed, with a token) or times out (removes itself): loom explores a wake-up
/// and a timeout at every point. `be_fair` alternates between wake-ups, so both release paths
/// are explored. Signatures follow parking_lot_core's (hence the `unsafe fn`s).
#[cfg(loom)]
#[allow(unsafe_code, clippy::missing_safety_doc)]
mod model_parking {
    use loom::sync::{Arc, Mutex};
    use std::time::Instant;

    /// A parked thread's token (unused by the model).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) struct ParkToken(pub usize);

    /// The token a woken thread receives.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) struct UnparkToken(pub usize);

    /// The default park token.
    pub(crate) const DEFAULT_PARK_TOKEN: ParkToken = ParkToken(0);

    /// How a park ended.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum ParkResult {
        /// Woken with a token.
        Unparked(UnparkToken),
        /// The validation callback said not to park.
        Invalid,
        /// The timeout passed.
        TimedOut,
    }

    /// What a wake-up found.
    #[derive(Clone, Copy, Debug, Default)]
    pub(crate) struct UnparkResult {
        /// Threads woken (0 or 1).
        pub(crate) unparked_threads: usize,
        /// Whether more threads are parked on the key.
        pub(crate) have_more_threads: bool,
        /// Whether to hand over (alternates in the model).
        pub(crate) be_fair: bool,
    }

    /// Brief spinning before parking: in the model, one yield.
    #[derive(Default)]
    pub(crate) struct SpinWait {
        spun: bool,
    }

    impl SpinWait {
        pub(crate) fn new() -> Self {
            Self::default()
        }
        pub(crate) fn spin(&mut self) -> bool {
            if self.spun {
                return false;
            }
            self.spun = true;
            loom::thread::yield_now();
            true
        }
        pub(crate) fn reset(&mut self) {
            self.spun = false;
        }
    }

    /// A parked thread's slot: the token it was woken with.
    type Slot = Arc<Mutex<Option<UnparkToken>>>;

    /// The queue (key and slot of each parked thread, oldest first) and wake-ups so far.
    struct Lot {
        queue: Vec<(usize, Slot)>,
        wakes: usize,
    }

    loom::lazy_static! {
        static ref LOT: Mutex<Lot> = Mutex::new(Lot { queue: Vec::new(), wakes: 0 });
    }

    /// Parks on `key` unless `validate` (run under the lot's lock) says not to.
    pub(crate) unsafe fn park(
        key: usize,
        validate: impl FnOnce() -> bool,
        before_sleep: impl FnOnce(),
        timed_out: impl FnOnce(usize, bool),
        _token: ParkToken,
        _timeout: Option<Instant>,
    ) -> ParkResult {
        let slot: Slot = Arc::new(Mutex::new(None));
        {
            let mut lot = LOT.lock().expect("model lot");
            if !validate() {
                return ParkResult::Invalid;
            }
            lot.queue.push((key, slot.clone()));
        }
        before_sleep();
        loom::thread::yield_now();
        let mut lot = LOT.lock().expect("model lot");
        if let Some(i) = lot.queue.iter().position(|(_, s)| Arc::ptr_eq(s, &slot)) {
            lot.queue.remove(i);
            let last = !lot.queue.iter().any(|(k, _)| *k == key);
            timed_out(key, last);
            return ParkResult::TimedOut;
        }
        drop(lot);
        let token = *slot.lock().expect("model slot");
        ParkResult::Unparked(token.unwrap_or(UnparkToken(0)))
    }

    /// Wakes the oldest thread parked on `key`, if any, with the token `callback` picks (run
    /// under the lot's lock).
    pub(crate) unsafe fn unpark_one(
        key: usize,
        callback: impl FnOnce(UnparkResult) -> UnparkToken,
    ) -> UnparkResult {
        let mut lot = LOT.lock().expect("model lot");
        let mut result = UnparkResult::default();
        let woken = lot
            .queue
            .iter()
            .position(|(k, _)| *k == key)
            .map(|i| lot.queue.remove(i).1);
        if woken.is_some() {
            lot.wakes += 1;
            result.unparked_threads = 1;
            result.have_more_threads = lot.queue.iter().any(|(k, _)| *k == key);
            result.be_fair = lot.wakes % 2 == 1;
        }
        let token = callback(result);
        if let Some(slot) = woken {
            *slot.lock().expect("model slot") = Some(token);
        }
        result
    }
}

/// Spin-loop hints before a contended waiter's first look at the lock; the gap doubles from
/// here at each look. A hint takes ~10 ns on the development machine's Xeon (up to ~45 ns on
/// Intel parts with a slow `pause`, which only lengthens the gaps): ~0.6 µs.
#[cfg_attr(loom, allow(dead_code))]
const BACKOFF_MIN: u32 = 64;

/// The most hints between two looks (~20 µs here). Each look costs the holder a cache-line
/// transfer; chosen by measurement (two threads on one channel): with looks every 256 hints
/// they ran at 0.95x of one thread, at 1024 at 0.99x, at 2048 at 1.01x.
#[cfg_attr(loom, allow(dead_code))]
const BACKOFF_MAX: u32 = 2048;

/// Hints between the two looks that tell an idle holder from one between operations (~0.6 µs
/// here; a holder's gap between two one-shard operations is tens of nanoseconds).
#[cfg_attr(loom, allow(dead_code))]
const CONFIRM_HINTS: u32 = 64;

/// How long a waiter lets a busy holder keep the lock before it takes the lock at the first
/// look that finds it free. A change of hands costs ~2 µs of cache misses, so this keeps it
/// under 1% of the time; chosen by measurement (two threads on one channel, 1,024-hint gaps):
/// 100 µs gave 0.95x of one thread's throughput, 200 µs 0.98x, 500 µs 0.99x.
#[cfg_attr(loom, allow(dead_code))]
const PATIENCE: std::time::Duration = std::time::Duration::from_micros(500);

/// How long a waiter goes on spinning once its patience has run out, taking the lock at the
/// first look that finds it free, before it yields and parks.
#[cfg_attr(loom, allow(dead_code))]
const IMPATIENT_SPIN: std::time::Duration = std::time::Duration::from_micros(500);

/// Looks after yielding the core, once the spinning is over, before the waiter parks.
#[cfg_attr(loom, allow(dead_code))]
const BACKOFF_YIELDS: u32 = 4;

#[cfg(all(test, not(loom)))]
thread_local! {
    /// Times this thread parked in [`Mutex::lock_hot`] after spinning (tests read it).
    static PARKED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Times this thread, waiting in [`Mutex::lock_hot`], took the lock because its holder had
    /// gone idle, within its patience (tests read it).
    static TAKEN_IDLE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Mutex, MutexGuard};
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

    /// A holder takes a lock with the plain `lock` and keeps it for `hold`, then pushes
    /// "holder"; this thread, once the lock is held, takes it with `take` and pushes "waiter".
    /// Returns what the lock holds at the end.
    fn hold_while_another_waits(
        hold: Duration,
        take: impl for<'m> FnOnce(&'m Mutex<Vec<&'static str>>) -> MutexGuard<'m, Vec<&'static str>>,
    ) -> Vec<&'static str> {
        let m = Mutex::new(Vec::new());
        let held = AtomicBool::new(false);
        std::thread::scope(|s| {
            let holder = s.spawn(|| {
                let mut g = m.lock();
                held.store(true, Ordering::SeqCst);
                std::thread::sleep(hold);
                g.push("holder");
            });
            while !held.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            take(&m).push("waiter");
            holder.join().expect("holder ran");
        });
        let out = m.lock().clone();
        out
    }

    #[test]
    fn a_waiter_outlasting_its_spin_parks_and_gets_the_lock() {
        let parked_before = super::PARKED.with(|p| p.get());
        // Far longer than the whole spin (about a millisecond).
        let seen = hold_while_another_waits(Duration::from_millis(50), |m| m.lock_hot());
        assert_eq!(seen, ["holder", "waiter"]);
        // This thread gave up spinning and parked, once.
        assert_eq!(super::PARKED.with(|p| p.get()), parked_before + 1);
    }

    #[test]
    fn a_waiter_takes_the_lock_once_its_holder_goes_idle() {
        let idle_before = super::TAKEN_IDLE.with(|t| t.get());
        // Patience far beyond the hold: the only way in before it runs out is to see the
        // holder gone idle.
        let seen = hold_while_another_waits(Duration::from_millis(1), |m| {
            m.lock_contended(Duration::from_secs(60))
        });
        assert_eq!(seen, ["holder", "waiter"]);
        assert_eq!(super::TAKEN_IDLE.with(|t| t.get()), idle_before + 1);
    }

    #[test]
    fn a_waiter_gets_its_turn_from_a_holder_that_never_goes_idle() {
        // The holder retakes the lock right after each release, so it is never idle for
        // long; the waiter's patience running out is what lets it in.
        let m = Mutex::new(0u64);
        let waiter_in = AtomicBool::new(false);
        let holding = AtomicBool::new(false);
        let mut outcome = (0, false);
        std::thread::scope(|s| {
            let holder = s.spawn(|| {
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                let mut rounds = 0u64;
                while !waiter_in.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
                    let mut g = m.lock_hot();
                    holding.store(true, Ordering::SeqCst);
                    *g += 1;
                    rounds += 1;
                }
                // Whether the waiter got in before the deadline ended the loop.
                (rounds, waiter_in.load(Ordering::SeqCst))
            });
            while !holding.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            let mut g = m.lock_contended(Duration::from_millis(1));
            waiter_in.store(true, Ordering::SeqCst);
            *g += 1_000_000;
            drop(g);
            outcome = holder.join().expect("holder ran");
        });
        let (rounds, waiter_got_in) = outcome;
        assert!(waiter_got_in, "the waiter was kept out until the deadline");
        assert_eq!(*m.lock(), rounds + 1_000_000);
    }
}
