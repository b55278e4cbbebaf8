//! The shared meter and its per-thread leases.
//!
//! # Algorithm: one CAS-guarded counter, and a lease ledger behind a reader-writer lock
//!
//! * `remaining` — an `AtomicU64`: phlogiston neither charged nor leased out. A charge is a single
//!   `compare_exchange_weak` loop that subtracts only if the result stays `>= 0`. That is the
//!   whole charge path: one RMW on one cache line, no lock, so a refused charge writes nothing.
//! * `leased` — a `u64` behind an `RwLock`: phlogiston held by open [`Lease`]s (their unspent
//!   allowance plus what they spent but have not yet *committed*). Only lease refills, flushes and
//!   returns change it, under the write lock; all of them are amortised over a chunk.
//! * What a refund may give back is `limit − remaining − leased`: everything charged through the
//!   meter or committed by leases, minus earlier refunds. A refund holds the *read* lock, so
//!   `leased` cannot move, and CAS-adds to `remaining` only if the amount fits under that bound
//!   computed from the very value it replaces. Concurrent charges only lower `remaining` (raising
//!   the bound by exactly what they charged) and concurrent refunds re-check in their own CAS, so
//!   refunds run in parallel with charges and with each other, and are still exact.
//!
//! # Guarantees
//!
//! * **Exact totals.** `consumed() + remaining() == limit()` in every snapshot (`consumed` is
//!   defined from the same load), and once every lease is returned,
//!   `consumed() == Σ successful charges − Σ successful refunds`, in every interleaving.
//! * **Never negative, never above the limit.** Overdraws and over-refunds are refused with a
//!   typed error and change nothing; refunds are never clamped.
//! * **Progress.** Charges are lock-free (a CAS retries only because another operation on the
//!   same counter succeeded, or after a spurious failure of `compare_exchange_weak`, possible
//!   on LL/SC targets such as ARM). Refunds and lease refills/returns hold the lock for one CAS and a
//!   few arithmetic operations; nothing inside can panic, and a poisoned lock is used as is.
//! * **No allocation, no formatting** on any charge, refund, lease or return path.
//!
//! # Known limits
//!
//! * Many threads charging the shared meter at once serialise on its cache line. Use a [`Lease`]
//!   per thread or task for hot loops: its charges are a local subtraction.
//! * A refund costs a read-lock acquire and release on top of its CAS (about three RMWs), so it is
//!   slower than a charge; refunds are expected once per COMM, not once per charge.
//! * Phlogiston a lease holds but has not spent counts as consumed (it is not in `remaining`)
//!   until the lease is returned, and what a lease spent becomes refundable *through the meter*
//!   only when it commits (refill, [`Lease::flush`], return). Refund through the lease that
//!   charged, or flush first.
//! * Not fair: which of two racing charges gets the last phlogiston depends on timing.

use core::ops::Deref;
use std::sync::PoisonError;

use crate::error::{OutOfPhlogiston, RefundExceedsCharged};
use crate::sync::{AtomicU64, Ordering, RwLock};

/// Keeps the hot counter on its own cache lines (128 bytes: adjacent-line prefetch pairs lines
/// on x86), so refund and lease bookkeeping never false-share with charges.
#[derive(Debug)]
#[repr(align(128))]
struct CachePadded<T>(T);

/// A phlogiston (gas) meter with a fixed limit, charged by many threads at once through `&self`.
///
/// Time: every method is O(1) (a CAS loop retries only when another thread changed the same
/// counter, or after a spurious `compare_exchange_weak` failure). `PhlogistonMeter` is `Send + Sync`.
///
/// # Example
/// ```
/// use rhospace_phlogiston::PhlogistonMeter;
///
/// let meter = PhlogistonMeter::new(1_000);
/// meter.charge(300).unwrap();
/// meter.refund(100).unwrap();
/// assert_eq!(meter.consumed(), 200);
/// assert_eq!(meter.remaining(), 800);
/// assert_eq!(meter.consumed() + meter.remaining(), meter.limit());
/// ```
#[derive(Debug)]
pub struct PhlogistonMeter {
    /// Phlogiston neither charged nor leased out; `0 ..= limit - leased`.
    /// Decreased only by a CAS that checks the result stays `>= 0` (charge; lease draw, under
    /// the write lock of `leased`). Increased only by a CAS under the read lock that checks the
    /// result stays `<= limit - leased` (refund), or by a lease return under the write lock.
    remaining: CachePadded<AtomicU64>,
    /// Phlogiston held by open leases: the sum over leases of `Lease::drawn` (allowance plus
    /// uncommitted spending). `0 ..= limit - remaining`. Changed only under the write lock, by
    /// lease refills, commits and returns; refunds read it under the read lock.
    leased: RwLock<u64>,
    /// The fixed total; never changes.
    limit: u64,
}

/// A consistent snapshot of a meter, taken from one load: `consumed + remaining == limit`.
///
/// # Example
/// ```
/// use rhospace_phlogiston::{Balance, PhlogistonMeter};
///
/// let meter = PhlogistonMeter::new(50);
/// meter.charge(20).unwrap();
/// assert_eq!(meter.balance(), Balance { limit: 50, consumed: 20, remaining: 30 });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Balance {
    /// The meter's fixed limit.
    pub limit: u64,
    /// `limit - remaining`: charged and not refunded, plus what open leases hold.
    pub consumed: u64,
    /// Neither charged nor leased out.
    pub remaining: u64,
}

/// What a lease refill hands back: the lease's new holding (all of it unspent) and how much of
/// its old spending the meter committed.
#[derive(Debug, Clone, Copy)]
struct Refill {
    drawn: u64,
    committed: u64,
}

impl PhlogistonMeter {
    /// A meter holding `limit` phlogiston, none of it consumed. Any `u64` is a valid limit,
    /// `0` included (every non-zero charge then fails).
    ///
    /// Time: O(1).
    ///
    /// # Example
    /// ```
    /// use rhospace_phlogiston::PhlogistonMeter;
    ///
    /// let meter = PhlogistonMeter::new(0);
    /// assert!(meter.charge(1).is_err());
    /// assert!(meter.charge(0).is_ok());
    /// ```
    pub fn new(limit: u64) -> Self {
        Self {
            remaining: CachePadded(AtomicU64::new(limit)),
            leased: RwLock::new(0),
            limit,
        }
    }

    /// The fixed limit given to [`new`](Self::new).
    ///
    /// Time: O(1).
    ///
    /// # Example
    /// ```
    /// # use rhospace_phlogiston::PhlogistonMeter;
    /// assert_eq!(PhlogistonMeter::new(7).limit(), 7);
    /// ```
    #[inline]
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Phlogiston neither charged nor leased out, at the moment of the load.
    ///
    /// Time: O(1).
    ///
    /// # Example
    /// ```
    /// # use rhospace_phlogiston::PhlogistonMeter;
    /// let meter = PhlogistonMeter::new(10);
    /// meter.charge(4).unwrap();
    /// assert_eq!(meter.remaining(), 6);
    /// ```
    #[inline]
    pub fn remaining(&self) -> u64 {
        // Relaxed: a snapshot of a bare counter; nothing else is read on the strength of it.
        self.remaining.0.load(Ordering::Relaxed)
    }

    /// `limit - remaining`: charged and not refunded, plus what open leases hold.
    ///
    /// Time: O(1).
    ///
    /// # Example
    /// ```
    /// # use rhospace_phlogiston::PhlogistonMeter;
    /// let meter = PhlogistonMeter::new(10);
    /// meter.charge(4).unwrap();
    /// assert_eq!(meter.consumed(), 4);
    /// ```
    #[inline]
    pub fn consumed(&self) -> u64 {
        self.balance().consumed
    }

    /// A consistent `(limit, consumed, remaining)` snapshot from a single load.
    ///
    /// Time: O(1).
    ///
    /// # Example
    /// ```
    /// # use rhospace_phlogiston::PhlogistonMeter;
    /// let b = PhlogistonMeter::new(10).balance();
    /// assert_eq!(b.consumed + b.remaining, b.limit);
    /// ```
    #[inline]
    pub fn balance(&self) -> Balance {
        let remaining = self.remaining();
        Balance {
            limit: self.limit,
            // `remaining <= limit` is an invariant; saturating keeps this panic-free regardless.
            consumed: self.limit.saturating_sub(remaining),
            remaining,
        }
    }

    /// How much a [`refund`](Self::refund) could give back right now: charged through the meter
    /// or committed by leases, minus refunds. Excludes what open leases spent but have not yet
    /// committed.
    ///
    /// Time: O(1); takes the read lock.
    ///
    /// # Example
    /// ```
    /// # use rhospace_phlogiston::PhlogistonMeter;
    /// let meter = PhlogistonMeter::new(10);
    /// meter.charge(4).unwrap();
    /// assert_eq!(meter.refundable(), 4);
    /// ```
    pub fn refundable(&self) -> u64 {
        let leased = self.leased.read().unwrap_or_else(PoisonError::into_inner);
        self.refundable_given(self.remaining(), *leased)
    }

    /// `limit - remaining - leased`, saturating (the invariant keeps it exact).
    #[inline]
    fn refundable_given(&self, remaining: u64, leased: u64) -> u64 {
        self.limit.saturating_sub(remaining).saturating_sub(leased)
    }

    /// Charges `amount`, or fails with [`OutOfPhlogiston`] and changes nothing if fewer than
    /// `amount` remain. `charge(0)` always succeeds. No lock, no allocation, no formatting.
    ///
    /// Time: O(1): one CAS loop (it retries only when a concurrent operation changed the
    /// balance, or after a spurious `compare_exchange_weak` failure).
    ///
    /// # Example
    /// ```
    /// use rhospace_phlogiston::{OutOfPhlogiston, PhlogistonMeter};
    ///
    /// let meter = PhlogistonMeter::new(5);
    /// assert!(meter.charge(5).is_ok());
    /// assert_eq!(meter.charge(1), Err(OutOfPhlogiston { requested: 1, remaining: 0 }));
    /// assert_eq!(meter.charge(u64::MAX).unwrap_err().remaining, 0);
    /// ```
    #[inline]
    pub fn charge(&self, amount: u64) -> Result<(), OutOfPhlogiston> {
        match self.draw(amount, amount) {
            Ok(_) => Ok(()),
            Err(remaining) => Err(OutOfPhlogiston {
                requested: amount,
                remaining,
            }),
        }
    }

    /// Gives back `amount` phlogiston charged earlier, or fails with [`RefundExceedsCharged`]
    /// and changes nothing if more is asked than is [`refundable`](Self::refundable). Refunds are
    /// never clamped. `refund(0)` always succeeds. No allocation, no formatting.
    ///
    /// Time: O(1): a shared (read) lock around one CAS loop; refunds do not exclude each other
    /// or charges, only lease refills and returns.
    ///
    /// # Example
    /// ```
    /// # use rhospace_phlogiston::PhlogistonMeter;
    /// let meter = PhlogistonMeter::new(10);
    /// meter.charge(6).unwrap();
    /// meter.refund(6).unwrap();
    /// assert_eq!(meter.remaining(), 10);
    /// assert!(meter.refund(1).is_err());
    /// ```
    pub fn refund(&self, amount: u64) -> Result<(), RefundExceedsCharged> {
        if amount == 0 {
            return Ok(());
        }
        // The read lock pins `leased`: lease draws and returns (the only other writers of
        // `remaining` besides charges and refunds) wait, so `limit - remaining - leased` is
        // exactly what has been charged and not refunded, for whichever `remaining` we replace.
        let leased = self.leased.read().unwrap_or_else(PoisonError::into_inner);
        // Relaxed: a first guess for the CAS below, which re-checks it. Ordering against lease
        // draws and returns comes from the lock (their writes happen-before our read lock).
        let mut current = self.remaining.0.load(Ordering::Relaxed);
        loop {
            let refundable = self.refundable_given(current, *leased);
            if amount > refundable {
                return Err(RefundExceedsCharged {
                    requested: amount,
                    refundable,
                });
            }
            match self.remaining.0.compare_exchange_weak(
                current,
                // `amount <= limit - current - leased`, so this stays `<= limit`: no overflow.
                current + amount,
                // Relaxed both ways: the bound depends only on the value this CAS replaces and
                // on `leased`, which the lock orders; no data is published through the counter.
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => current = actual,
            }
        }
    }

    /// Opens a [`Lease`] on this meter that draws `chunk` phlogiston at a time (or more, when a
    /// single charge needs more). Nothing is drawn until the first charge.
    ///
    /// Time: O(1); touches no shared memory.
    ///
    /// # Example
    /// ```
    /// # use rhospace_phlogiston::PhlogistonMeter;
    /// let meter = PhlogistonMeter::new(1_000);
    /// {
    ///     let mut lease = meter.lease(100);
    ///     for _ in 0..10 {
    ///         lease.charge(3).unwrap();
    ///     }
    /// } // the unused 70 go back here
    /// assert_eq!(meter.consumed(), 30);
    /// ```
    #[inline]
    pub fn lease(&self, chunk: u64) -> Lease<&Self> {
        Lease::new(self, chunk)
    }

    /// Takes between `min` and `max` (`min <= max`) from `remaining`: as much as is there up to
    /// `max`, provided at least `min` is. Returns what was taken, or (taking nothing) the
    /// remaining balance that was too small.
    #[inline]
    fn draw(&self, min: u64, max: u64) -> Result<u64, u64> {
        // Relaxed: a first guess for the CAS below, which re-checks it.
        let mut current = self.remaining.0.load(Ordering::Relaxed);
        loop {
            if current < min {
                return Err(current);
            }
            let take = if current < max { current } else { max };
            match self.remaining.0.compare_exchange_weak(
                current,
                current - take,
                // Relaxed both ways: `remaining` is a bare counter and publishes no data; the
                // never-below-zero check depends only on the value this CAS replaces.
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(take),
                Err(actual) => current = actual,
            }
        }
    }

    /// Slow path of [`Lease::charge`] when `amount > available`: under the write lock, draw at
    /// least the shortfall (preferably `chunk`) and commit what the lease spent so far. On
    /// failure nothing changed, the commit included.
    #[cold]
    #[inline(never)]
    fn lease_refill(
        &self,
        chunk: u64,
        available: u64,
        drawn: u64,
        amount: u64,
    ) -> Result<Refill, OutOfPhlogiston> {
        // `amount > available` and `available <= drawn`: no underflow.
        let shortfall = amount - available;
        let spent = drawn - available;
        let want = if shortfall < chunk { chunk } else { shortfall };
        let mut leased = self.leased.write().unwrap_or_else(PoisonError::into_inner);
        let got = match self.draw(shortfall, want) {
            Ok(got) => got,
            Err(meter_remaining) => {
                return Err(OutOfPhlogiston {
                    requested: amount,
                    remaining: available.saturating_add(meter_remaining),
                })
            }
        };
        // The lease's holding is part of `leased` (`spent <= drawn <= leased`), and
        // `leased + got <= limit` since `got` came out of `remaining`: no wrap either way.
        *leased = leased.saturating_sub(spent).saturating_add(got);
        Ok(Refill {
            // `available + got <= limit`: the lease's allowance came out of `remaining`.
            drawn: available.saturating_add(got),
            committed: spent,
        })
    }

    /// Lease flush: `spent` of the lease's holding becomes refundable.
    fn lease_commit(&self, spent: u64) {
        if spent != 0 {
            let mut leased = self.leased.write().unwrap_or_else(PoisonError::into_inner);
            *leased = leased.saturating_sub(spent);
        }
    }

    /// Lease return: of the lease's holding `drawn`, the spent part becomes refundable and the
    /// `unused` part goes back to `remaining`.
    fn lease_return(&self, drawn: u64, unused: u64) {
        if drawn != 0 {
            let mut leased = self.leased.write().unwrap_or_else(PoisonError::into_inner);
            // Relaxed: the write lock orders this against refunds (which read `leased`), and
            // the draw it undoes precedes it in this lease's history; no data is published.
            // `unused` came out of `remaining` in this lease's draws: stays `<= limit`.
            self.remaining.0.fetch_add(unused, Ordering::Relaxed);
            *leased = leased.saturating_sub(drawn);
        }
    }
}

/// A single-owner allowance leased from a [`PhlogistonMeter`]: the fast path.
///
/// A lease draws phlogiston from its meter in chunks and charges from a plain local counter, so
/// most charges are one comparison and one subtraction on memory no other thread touches. When
/// the allowance runs short it commits what it spent to the meter and draws again. Dropping the
/// lease (or calling [`finish`](Self::finish)) commits its spending and gives back the unused
/// rest, so totals stay exact.
///
/// `M` is how the lease reaches its meter: `&PhlogistonMeter` (from
/// [`PhlogistonMeter::lease`]) or an owning pointer such as `Arc<PhlogistonMeter>` (from
/// [`Lease::new`]), for a lease that must be `'static`.
///
/// Guarantees: a failed charge changes nothing observable (no draw, no commit, same
/// allowance). While a lease is open, its unspent allowance counts as consumed on the meter.
///
/// Time: [`charge`](Self::charge) is O(1) and touches no shared memory unless the allowance runs
/// out (then the meter's write lock around one CAS loop, amortised over `chunk`).
///
/// # Example
/// ```
/// use std::sync::Arc;
/// use rhospace_phlogiston::{Lease, PhlogistonMeter};
///
/// let meter = Arc::new(PhlogistonMeter::new(10_000));
/// let worker = {
///     let meter = Arc::clone(&meter);
///     std::thread::spawn(move || {
///         let mut lease = Lease::new(meter, 256);
///         for _ in 0..100 {
///             lease.charge(7).unwrap();
///         }
///         lease.finish()
///     })
/// };
/// assert_eq!(worker.join().unwrap(), 700);
/// assert_eq!(meter.consumed(), 700);
/// ```
#[derive(Debug)]
pub struct Lease<M: Deref<Target = PhlogistonMeter>> {
    /// The meter drawn from.
    meter: M,
    /// Preferred size of one draw.
    chunk: u64,
    /// Allowance left to charge from. `available <= drawn`.
    available: u64,
    /// Drawn from the meter and not yet committed or given back; `drawn - available` is what was
    /// spent (charges minus local refunds) since the last commit.
    drawn: u64,
    /// Net spending this lease has already committed to the meter (updated only on the slow
    /// paths: refill, flush, refund beyond the lease's own spending, return).
    committed: u64,
}

impl<M: Deref<Target = PhlogistonMeter>> Lease<M> {
    /// Opens a lease on `meter` that draws `chunk` phlogiston at a time (more when one charge
    /// needs more; a `chunk` of 0 draws exactly what each refill needs). Nothing is drawn yet.
    ///
    /// Time: O(1); no atomic operation.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use rhospace_phlogiston::{Lease, PhlogistonMeter};
    ///
    /// let meter = Arc::new(PhlogistonMeter::new(100));
    /// let mut lease = Lease::new(Arc::clone(&meter), 40);
    /// lease.charge(1).unwrap();
    /// assert_eq!(meter.remaining(), 60); // one chunk drawn
    /// drop(lease);
    /// assert_eq!(meter.remaining(), 99);
    /// ```
    #[inline]
    pub fn new(meter: M, chunk: u64) -> Self {
        Self {
            meter,
            chunk,
            available: 0,
            drawn: 0,
            committed: 0,
        }
    }

    /// The meter this lease draws from.
    ///
    /// Time: O(1).
    ///
    /// # Example
    /// ```
    /// # use rhospace_phlogiston::PhlogistonMeter;
    /// let meter = PhlogistonMeter::new(5);
    /// let lease = meter.lease(1);
    /// assert_eq!(lease.meter().limit(), 5);
    /// ```
    #[inline]
    pub fn meter(&self) -> &PhlogistonMeter {
        &self.meter
    }

    /// The allowance this lease holds and can charge without touching the meter.
    ///
    /// Time: O(1).
    ///
    /// # Example
    /// ```
    /// # use rhospace_phlogiston::PhlogistonMeter;
    /// let meter = PhlogistonMeter::new(100);
    /// let mut lease = meter.lease(10);
    /// assert_eq!(lease.available(), 0);
    /// lease.charge(3).unwrap();
    /// assert_eq!(lease.available(), 7);
    /// ```
    #[inline]
    pub fn available(&self) -> u64 {
        self.available
    }

    /// What this lease could still charge: its allowance plus the meter's remaining balance.
    ///
    /// Time: O(1).
    ///
    /// # Example
    /// ```
    /// # use rhospace_phlogiston::PhlogistonMeter;
    /// let meter = PhlogistonMeter::new(100);
    /// let mut lease = meter.lease(10);
    /// lease.charge(3).unwrap();
    /// assert_eq!(lease.remaining(), 97);
    /// ```
    #[inline]
    pub fn remaining(&self) -> u64 {
        // `available + meter.remaining <= limit`; saturating keeps it panic-free regardless.
        self.available.saturating_add(self.meter.remaining())
    }

    /// Charges `amount` from the allowance, refilling from the meter when it runs short; fails
    /// with [`OutOfPhlogiston`] and changes nothing if the allowance and the meter together hold
    /// less than `amount`. No allocation, no formatting.
    ///
    /// Time: O(1); a local subtraction unless a refill is needed.
    ///
    /// # Example
    /// ```
    /// # use rhospace_phlogiston::PhlogistonMeter;
    /// let meter = PhlogistonMeter::new(10);
    /// let mut lease = meter.lease(4);
    /// lease.charge(9).unwrap(); // larger than a chunk: draws what it needs
    /// let err = lease.charge(2).unwrap_err();
    /// assert_eq!((err.requested, err.remaining), (2, 1));
    /// lease.charge(1).unwrap();
    /// ```
    #[inline]
    pub fn charge(&mut self, amount: u64) -> Result<(), OutOfPhlogiston> {
        if amount <= self.available {
            self.available -= amount;
            Ok(())
        } else {
            // Values in, values out: the cold call never sees `&mut self`, so in a hot loop the
            // allowance can stay in a register instead of round-tripping through memory.
            let refill = self
                .meter
                .lease_refill(self.chunk, self.available, self.drawn, amount)?;
            self.committed = self.committed.saturating_add(refill.committed);
            self.drawn = refill.drawn;
            // `refill.drawn >= amount` (the draw covered the shortfall): no underflow.
            self.available = refill.drawn - amount;
            Ok(())
        }
    }

    /// Gives back `amount` charged earlier. What this lease spent and has not yet committed is
    /// refunded locally (no shared memory touched); any excess is refunded through the meter
    /// (see [`PhlogistonMeter::refund`]). Fails with [`RefundExceedsCharged`] and changes nothing
    /// if both together cannot cover `amount`.
    ///
    /// Time: O(1).
    ///
    /// # Example
    /// ```
    /// # use rhospace_phlogiston::PhlogistonMeter;
    /// let meter = PhlogistonMeter::new(100);
    /// let mut lease = meter.lease(10);
    /// lease.charge(8).unwrap();
    /// lease.refund(5).unwrap();
    /// assert_eq!(lease.available(), 7);
    /// let err = lease.refund(4).unwrap_err();
    /// assert_eq!(err.refundable, 3);
    /// drop(lease);
    /// assert_eq!(meter.consumed(), 3);
    /// ```
    #[inline]
    pub fn refund(&mut self, amount: u64) -> Result<(), RefundExceedsCharged> {
        let spent = self.drawn - self.available;
        if amount <= spent {
            self.available += amount;
            return Ok(());
        }
        match self.meter.refund(amount - spent) {
            Ok(()) => {
                // Local part: all of our uncommitted spending comes back to the allowance.
                self.available = self.drawn;
                self.committed = self.committed.saturating_sub(amount - spent);
                Ok(())
            }
            Err(err) => Err(RefundExceedsCharged {
                requested: amount,
                refundable: err.refundable.saturating_add(spent),
            }),
        }
    }

    /// Commits what this lease spent so far to the meter, so that refunds through the meter (or
    /// other leases) can see it. Keeps the unspent allowance.
    ///
    /// Time: O(1); the meter's write lock, if anything was spent.
    ///
    /// # Example
    /// ```
    /// # use rhospace_phlogiston::PhlogistonMeter;
    /// let meter = PhlogistonMeter::new(100);
    /// let mut lease = meter.lease(10);
    /// lease.charge(4).unwrap();
    /// assert_eq!(meter.refundable(), 0);
    /// lease.flush();
    /// assert_eq!(meter.refundable(), 4);
    /// meter.refund(4).unwrap();
    /// ```
    #[inline]
    pub fn flush(&mut self) {
        self.commit();
    }

    /// Net phlogiston charged through this lease so far: its charges minus its refunds (floored
    /// at 0 when it refunded others' charges through the meter), committed or not.
    ///
    /// Time: O(1).
    ///
    /// # Example
    /// ```
    /// # use rhospace_phlogiston::PhlogistonMeter;
    /// let meter = PhlogistonMeter::new(100);
    /// let mut lease = meter.lease(4);
    /// for _ in 0..5 {
    ///     lease.charge(3).unwrap();
    /// }
    /// lease.refund(2).unwrap();
    /// assert_eq!(lease.spent(), 13);
    /// ```
    #[inline]
    pub fn spent(&self) -> u64 {
        self.committed.saturating_add(self.drawn - self.available)
    }

    /// Makes the uncommitted spending refundable through the meter.
    #[inline]
    fn commit(&mut self) {
        let spent = self.drawn - self.available;
        self.meter.lease_commit(spent);
        self.committed = self.committed.saturating_add(spent);
        self.drawn = self.available;
    }

    /// Commits the spending, gives the unused allowance back to the meter, and returns the
    /// lease's net spending ([`spent`](Self::spent)). Dropping a lease does the same.
    ///
    /// Time: O(1); the meter's write lock and one `fetch_add`, if anything was drawn.
    ///
    /// # Example
    /// ```
    /// # use rhospace_phlogiston::PhlogistonMeter;
    /// let meter = PhlogistonMeter::new(100);
    /// let mut lease = meter.lease(50);
    /// lease.charge(20).unwrap();
    /// assert_eq!(lease.finish(), 20);
    /// assert_eq!(meter.remaining(), 80);
    /// ```
    #[inline]
    pub fn finish(mut self) -> u64 {
        self.settle()
    }

    /// Commits the spending and gives back the allowance; leaves the lease empty.
    #[inline]
    fn settle(&mut self) -> u64 {
        self.meter.lease_return(self.drawn, self.available);
        self.committed = self.committed.saturating_add(self.drawn - self.available);
        self.available = 0;
        self.drawn = 0;
        self.committed
    }
}

impl<M: Deref<Target = PhlogistonMeter>> Drop for Lease<M> {
    fn drop(&mut self) {
        self.settle();
    }
}
