//! Phlogiston (gas) metering for rhospace: a lock-free shared meter, a single-owner lease as the
//! fast path, and a configurable cost table (SPEC §8, §5).
//!
//! # Algorithm
//!
//! [`PhlogistonMeter`] keeps `remaining` (neither charged nor leased out) in one cache-padded
//! `AtomicU64`. A charge is a single CAS loop that subtracts only if the result stays
//! non-negative — no lock, one RMW, Relaxed (the counter publishes no data). Beside it, behind a
//! reader-writer lock, sits `leased`: what open [`Lease`]s hold. A refund takes the read lock and
//! CAS-adds to `remaining` only if the amount fits under `limit − remaining − leased` computed
//! from the very value it replaces, which is exactly what has been charged and not refunded.
//! Lease refills, flushes and returns (once per chunk) take the write lock.
//!
//! [`Lease`] is the fast path: one thread or task draws an allowance from the meter in chunks and
//! charges it with a plain local compare-and-subtract. It commits its spending (makes it
//! refundable through the meter) when it refills, on [`Lease::flush`], and on return (drop or
//! [`Lease::finish`]), when it also gives back what it did not spend.
//!
//! [`CostTable`] prices produce, consume, COMM, install, matching, checkpoints and vector search
//! from encoded byte lengths, join widths and matching work, with saturating `const fn`s, and
//! prices storage separately so that a COMM can refund exactly what storing an item cost.
//!
//! # Guarantees
//!
//! * `consumed + remaining == limit` in every [`Balance`] snapshot, under any number of threads.
//! * Once every lease is returned, `consumed == Σ successful charges − Σ successful refunds`
//!   exactly (checked in every interleaving by loom models of 2 and 3 threads, and by 8-thread
//!   stress tests).
//! * A charge that would overdraw fails with [`OutOfPhlogiston`] `{ requested, remaining }` and
//!   changes nothing. A refund of more than was charged fails with [`RefundExceedsCharged`]
//!   `{ requested, refundable }` and changes nothing (refunds are never clamped).
//! * No allocation and no string formatting on any charge or refund path, success or failure;
//!   no panic on any input (`u64::MAX` requests, zero limits, saturated costs included).
//! * Charges are lock-free: a CAS retries only because another operation succeeded, or after
//!   a spurious failure of `compare_exchange_weak` (possible on LL/SC targets such as ARM).
//!
//! # Limits
//!
//! * While a lease is open, its unspent allowance counts as consumed, and its spending becomes
//!   refundable *through the meter* only when it commits; refund through the lease itself, or
//!   [`Lease::flush`] first.
//! * Refunds and lease turnover are not lock-free (they hold a reader-writer lock for one CAS);
//!   refunds run concurrently with each other and with charges, and wait only for lease
//!   refills/returns.
//! * The shared meter is one cache line: many threads charging it at once serialise on it (see the
//!   `contended` benchmark). Hot loops should charge a [`Lease`].
//! * Not fair and not deterministic under races (which of two racing charges gets the last
//!   phlogiston depends on timing); a single thread's results are deterministic.
//!
//! # Costs
//!
//! | operation | time | shared memory touched |
//! |---|---|---|
//! | [`PhlogistonMeter::charge`] | O(1) | 1 CAS loop on one cache line, no lock |
//! | [`PhlogistonMeter::refund`] | O(1) | read lock + 1 CAS loop |
//! | [`PhlogistonMeter::remaining`] / [`consumed`](PhlogistonMeter::consumed) / [`balance`](PhlogistonMeter::balance) | O(1) | 1 load |
//! | [`PhlogistonMeter::refundable`] | O(1) | read lock + 1 load |
//! | [`Lease::charge`] within the allowance | O(1) | none (compare + subtract) |
//! | [`Lease::charge`] refill | O(1), amortised over `chunk` | write lock + 1 CAS loop |
//! | [`Lease::refund`] of the lease's own uncommitted spending | O(1) | none |
//! | [`Lease::flush`] / return (drop, [`Lease::finish`]) | O(1) | write lock (+ 1 `fetch_add`) |
//! | every [`CostTable`] method | O(1) | none (`const fn`, saturating) |
//!
//! Measured numbers (`benches/phlogiston.rs`) are in the issue note with the machine they ran on:
//! a lease charge costs about as much as a plain local counter; a shared charge costs one
//! uncontended locked RMW, and much more when two cores fight over its line.
//!
//! # Example
//! ```
//! use rhospace_phlogiston::{CostTable, PhlogistonMeter};
//!
//! let table = CostTable::default();
//! let meter = PhlogistonMeter::new(10_000);
//! // a produce of a 100-byte datum on a 32-byte channel
//! let produce = table.produce(32, 100);
//! meter.charge(produce).unwrap();
//! // later a COMM consumes it: charge the COMM, refund the datum's storage
//! meter.charge(table.comm(1)).unwrap();
//! meter.refund(table.datum_storage(32, 100)).unwrap();
//! assert_eq!(meter.consumed(), table.produce_base + table.comm(1));
//! ```

#![deny(unsafe_code)]

mod cost;
mod error;
mod meter;
mod sync;

pub use cost::CostTable;
pub use error::{OutOfPhlogiston, RefundExceedsCharged};
pub use meter::{Balance, Lease, PhlogistonMeter};
