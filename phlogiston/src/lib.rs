//! Phlogiston (gas) metering for rhospace: a lock-free shared meter, a single-owner lease as the
//! fast path, and a configurable cost table (SPEC §8, §5).
//!
//! # Algorithm
//!
//! [`PhlogistonMeter`] keeps two adjacent `u64` atomics: `remaining` (neither charged nor leased
//! out) and `committed` (charged and visible to refunds). A charge is a CAS loop that subtracts
//! from `remaining` only if the result stays non-negative, then adds to `committed`; a refund is
//! the mirror image (CAS-subtract from `committed`, then add to `remaining`). Each step moves
//! phlogiston in the conservative direction, so no interleaving lets the balance go below zero,
//! rise above the limit, or a refund exceed what was charged. Orderings are Relaxed except one
//! Release/Acquire edge (charge → refund of that charge); each is justified at its call.
//!
//! [`Lease`] is the fast path: one thread or task draws an allowance from the meter in chunks and
//! charges it with a plain local subtraction. It commits its spending to the meter when it
//! refills, on [`Lease::flush`], and on return (drop or [`Lease::finish`]), when it also gives
//! back what it did not spend.
//!
//! [`CostTable`] prices produce, consume, COMM, install, matching, checkpoints and vector search
//! from encoded byte lengths, join widths and matching work, with saturating `const fn`s.
//!
//! # Guarantees
//!
//! * `consumed + remaining == limit` in every [`Balance`] snapshot, under any number of threads.
//! * Once every lease is returned, `consumed == Σ successful charges − Σ successful refunds`
//!   exactly (checked by loom models of 2 and 3 threads and by an 8-thread stress test).
//! * A charge that would overdraw fails with [`OutOfPhlogiston`] `{ requested, remaining }` and
//!   changes nothing. A refund of more than was charged fails with [`RefundExceedsCharged`]
//!   `{ requested, refundable }` and changes nothing (refunds are never clamped).
//! * No allocation and no string formatting on any charge or refund path, success or failure;
//!   no panic on any input (`u64::MAX` requests, zero limits, saturated costs included).
//! * Lock-free: a CAS retries only because another thread's operation succeeded.
//!
//! # Limits
//!
//! * While a lease is open, its unspent allowance counts as consumed, and its spending is not yet
//!   refundable *through the meter* until it refills, flushes or returns; refund through the
//!   lease itself, or [`Lease::flush`] first.
//! * The shared meter is one cache line: many threads charging it at once serialise on it (see the
//!   `contended` benchmark). Hot loops should charge a [`Lease`].
//! * Not fair and not deterministic under races (which of two racing charges gets the last
//!   phlogiston depends on timing); a single thread's results are deterministic.
//!
//! # Costs
//!
//! | operation | time | shared memory touched |
//! |---|---|---|
//! | [`PhlogistonMeter::charge`] / [`refund`](PhlogistonMeter::refund) | O(1) | 1 CAS loop + 1 `fetch_add`, one cache line |
//! | [`PhlogistonMeter::remaining`] / [`consumed`](PhlogistonMeter::consumed) / [`balance`](PhlogistonMeter::balance) | O(1) | 1 load |
//! | [`Lease::charge`] within the allowance | O(1) | none (compare + subtract) |
//! | [`Lease::charge`] refill | O(1), amortised over `chunk` | 1 CAS loop + 1 `fetch_add` |
//! | [`Lease::refund`] of the lease's own spending | O(1) | none |
//! | [`Lease::flush`] / return (drop, [`Lease::finish`]) | O(1) | ≤ 1 / ≤ 2 `fetch_add` |
//! | every [`CostTable`] method | O(1) | none (`const fn`, saturating) |
//!
//! Measured on the development machine (see the crate's `benches/phlogiston.rs` and the issue
//! note for numbers): a lease charge costs about as much as a plain local counter, the shared
//! meter a few nanoseconds uncontended, and much more when two cores fight over its line.
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
