//! The shared meter and its per-thread leases.
//!
//! # Algorithm: two counters, each changed by single-word CAS or fetch-add
//!
//! The meter keeps two `u64` atomics next to each other:
//!
//! * `remaining` — phlogiston not yet charged and not leased out. A charge (or a lease draw) is a
//!   `compare_exchange_weak` loop that subtracts only if the result stays `>= 0`, so the balance can
//!   never go below zero and a refused charge writes nothing.
//! * `committed` — phlogiston charged and not refunded, *as far as refunds may know*: a shared
//!   charge adds to it after taking from `remaining`; a lease adds what it spent when it refills,
//!   flushes or is returned. A refund is a CAS loop that subtracts from `committed` (never below
//!   zero) and only then adds the amount back to `remaining`.
//!
//! Every operation moves phlogiston from one counter to the other (or to a lease's local
//! allowance) so that, when nothing is in flight,
//! `remaining + committed + Σ leased-and-unspent + Σ spent-in-leases-not-yet-committed == limit`.
//! In between, each step is *conservative*: a charge takes from `remaining` before it credits
//! `committed`, and a refund takes from `committed` before it credits `remaining`, so no
//! interleaving can make a refund exceed what was charged, or `remaining` exceed `limit`.
//!
//! # Guarantees
//!
//! * **Exact totals.** `consumed() + remaining() == limit()` in every snapshot (`consumed` is
//!   defined from the same load), and once every lease is returned,
//!   `consumed() == Σ successful charges − Σ successful refunds`.
//! * **Never negative, never above the limit.** Overdraws and over-refunds are refused with a
//!   typed error and change nothing.
//! * **Lock-free.** Every shared operation is a bounded number of atomic RMWs plus a CAS retry
//!   loop that fails only when another thread made progress.
//! * **No allocation, no formatting** on any charge, refund, lease or return path.
//!
//! # Known limits
//!
//! * The shared [`PhlogistonMeter::charge`] touches one cache line with two RMWs; with many
//!   threads charging at once that line bounces between cores. Use a [`Lease`] per thread or task
//!   for hot loops: its charges are a local subtraction.
//! * Phlogiston a lease holds but has not spent counts as consumed (it is not in `remaining`)
//!   until the lease is returned, and a refund through the shared meter can only give back what
//!   leases have *committed* (they commit on refill, [`Lease::flush`] and return). Refund through
//!   the lease that charged, or flush first.
//! * Not fair: under contention a CAS loop may retry; a thread is never blocked by a stalled one.

use core::ops::Deref;

use crate::error::{OutOfPhlogiston, RefundExceedsCharged};
use crate::sync::{AtomicU64, Ordering};

/// A phlogiston (gas) meter with a fixed limit, charged by many threads at once through `&self`.
///
/// Time: every method is O(1) (a CAS loop retries only when another thread changed the same
/// counter). Size: one 128-byte-aligned block, so two meters never share a cache line.
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
#[repr(align(128))]
pub struct PhlogistonMeter {
    /// Phlogiston neither charged nor leased out. Plain counter, `0 ..= limit`.
    /// Decreased only by a CAS that checks the result stays `>= 0` (charge, lease draw);
    /// increased only by `fetch_add` of an amount that was first taken from `committed` (refund)
    /// or out of a lease's own draw (lease return), which keeps it `<= limit`.
    remaining: AtomicU64,
    /// Phlogiston charged, not refunded, and visible to refunds. Plain counter, `0 ..= limit`.
    /// Increased by `fetch_add` (Release) only after the matching decrease of `remaining`;
    /// decreased only by a CAS (Acquire) that checks the result stays `>= 0` (refund).
    committed: AtomicU64,
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
    /// `limit - remaining`: charged and not refunded, plus what leases hold.
    pub consumed: u64,
    /// Not yet charged nor leased out.
    pub remaining: u64,
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
            remaining: AtomicU64::new(limit),
            committed: AtomicU64::new(0),
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
        // Relaxed: a snapshot of a bare counter; nothing is read on the strength of it.
        self.remaining.load(Ordering::Relaxed)
    }

    /// `limit - remaining`: charged and not refunded, plus what outstanding leases hold.
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
    /// or committed by leases, minus refunds. Does not include what leases spent but have not yet
    /// committed.
    ///
    /// Time: O(1).
    ///
    /// # Example
    /// ```
    /// # use rhospace_phlogiston::PhlogistonMeter;
    /// let meter = PhlogistonMeter::new(10);
    /// meter.charge(4).unwrap();
    /// assert_eq!(meter.refundable(), 4);
    /// ```
    #[inline]
    pub fn refundable(&self) -> u64 {
        // Relaxed: a snapshot of a bare counter; nothing is read on the strength of it.
        self.committed.load(Ordering::Relaxed)
    }

    /// Charges `amount`, or fails with [`OutOfPhlogiston`] and changes nothing if fewer than
    /// `amount` remain. `charge(0)` always succeeds. No allocation, no formatting.
    ///
    /// Time: O(1): a CAS loop (retries only on a concurrent change) and one `fetch_add`.
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
        if amount == 0 {
            return Ok(());
        }
        if let Err(remaining) = self.draw(amount, amount) {
            return Err(OutOfPhlogiston {
                requested: amount,
                remaining,
            });
        }
        // Release: orders our decrement of `remaining` before any refund that Acquires this
        // credit, so that refund's increment of `remaining` lands after it (never above limit).
        self.committed.fetch_add(amount, Ordering::Release);
        Ok(())
    }

    /// Gives back `amount` phlogiston charged earlier, or fails with [`RefundExceedsCharged`]
    /// and changes nothing if more is asked than is [`refundable`](Self::refundable). Refunds are
    /// never clamped. `refund(0)` always succeeds. No allocation, no formatting.
    ///
    /// Time: O(1): a CAS loop (retries only on a concurrent change) and one `fetch_add`.
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
    #[inline]
    pub fn refund(&self, amount: u64) -> Result<(), RefundExceedsCharged> {
        if amount == 0 {
            return Ok(());
        }
        // Relaxed: a first guess for the CAS below, which re-checks it.
        let mut current = self.committed.load(Ordering::Relaxed);
        loop {
            if current < amount {
                return Err(RefundExceedsCharged {
                    requested: amount,
                    refundable: current,
                });
            }
            match self.committed.compare_exchange_weak(
                current,
                current - amount,
                // Acquire on success: synchronises with the Release that credited this amount,
                // so the charge's decrement of `remaining` happens-before our increment below.
                Ordering::Acquire,
                // Relaxed on failure: we only retry (or report) with the value read.
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        // Relaxed: ordered after the refunded charge by the Acquire above; publishes nothing.
        self.remaining.fetch_add(amount, Ordering::Relaxed);
        Ok(())
    }

    /// Opens a [`Lease`] on this meter that draws `chunk` phlogiston at a time (or more, when a
    /// single charge needs more). Nothing is drawn until the first charge.
    ///
    /// Time: O(1); no atomic operation.
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
    /// `max`, provided at least `min` is. Returns what was taken, or the remaining balance that
    /// was too small (nothing taken).
    #[inline]
    fn draw(&self, min: u64, max: u64) -> Result<u64, u64> {
        // Relaxed: a first guess for the CAS below, which re-checks it.
        let mut current = self.remaining.load(Ordering::Relaxed);
        loop {
            if current < min {
                return Err(current);
            }
            let take = if current < max { current } else { max };
            match self.remaining.compare_exchange_weak(
                current,
                current - take,
                // Relaxed both ways: `remaining` is a bare counter and publishes no data; the
                // never-below-zero check depends only on this atomic's modification order.
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(take),
                Err(actual) => current = actual,
            }
        }
    }

    /// Makes `spent` (already taken from `remaining` by a lease draw) refundable.
    #[inline]
    fn commit(&self, spent: u64) {
        if spent != 0 {
            // Release: orders the lease's draw from `remaining` before any refund that Acquires
            // this credit (same edge as in `charge`).
            self.committed.fetch_add(spent, Ordering::Release);
        }
    }

    /// Returns a lease's unspent allowance (taken from `remaining` by that lease's own draws).
    #[inline]
    fn give_back(&self, unused: u64) {
        if unused != 0 {
            // Relaxed: the draw it undoes is sequenced before it in this thread, so coherence
            // already orders the two; no data is published through this counter.
            self.remaining.fetch_add(unused, Ordering::Relaxed);
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
/// out (then one CAS loop and one `fetch_add` on the meter, amortised over `chunk`).
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
            self.refill_and_charge(amount)
        }
    }

    /// Slow path of [`charge`](Self::charge): draw at least the shortfall (preferably a chunk),
    /// then commit the spending so far and charge locally. On failure nothing has changed.
    #[cold]
    #[inline(never)]
    fn refill_and_charge(&mut self, amount: u64) -> Result<(), OutOfPhlogiston> {
        // `amount > available` here, so the subtraction cannot underflow.
        let shortfall = amount - self.available;
        let want = if shortfall < self.chunk {
            self.chunk
        } else {
            shortfall
        };
        let got = match self.meter.draw(shortfall, want) {
            Ok(got) => got,
            Err(meter_remaining) => {
                return Err(OutOfPhlogiston {
                    requested: amount,
                    remaining: self.available.saturating_add(meter_remaining),
                })
            }
        };
        // Commit only after the draw succeeded, so a failed charge changes nothing.
        self.meter.commit(self.drawn - self.available);
        // All of these are bounded by the meter's limit, which is a u64: no overflow.
        self.available += got;
        self.drawn = self.available;
        self.available -= amount;
        Ok(())
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
    /// Time: O(1); one `fetch_add` if anything was spent.
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
        self.meter.commit(self.drawn - self.available);
        self.drawn = self.available;
    }

    /// Commits the spending, gives the unused allowance back to the meter, and returns what this
    /// lease spent since its last commit. Dropping a lease does the same.
    ///
    /// Time: O(1); at most two `fetch_add`s.
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
    fn settle(&mut self) -> u64 {
        let spent = self.drawn - self.available;
        self.meter.commit(spent);
        self.meter.give_back(self.available);
        self.available = 0;
        self.drawn = 0;
        spent
    }
}

impl<M: Deref<Target = PhlogistonMeter>> Drop for Lease<M> {
    fn drop(&mut self) {
        self.settle();
    }
}
