//! A search's work budget: how much matching work a charged operation may do before its gate
//! would certainly refuse it.
//!
//! A [`ChargingSpace`](crate::ChargingSpace) prices an operation after its search, by the work
//! the search did (SPEC §8). Without a cap, a caller whose meter is nearly empty could still
//! make a join search run long (it can be exponential in the positions that share a channel)
//! before the gate refused it for free. A [`Budget`] lets the search stop as soon as the work
//! it has done already costs more than the meter holds:
//!
//! - the price of the work so far is a **lower bound** of the operation's price (the gate adds
//!   storage, the COMM and nothing negative; work only grows), so an operation stopped here
//!   would have been refused at the gate anyway. Stopping changes only how soon it is refused,
//!   and the `requested` the error reports: the price of the work done when the search
//!   stopped, not of a search that never finished. (One more difference: in a replay that has
//!   already diverged from play, a search that its guide would have failed with
//!   `CommNotInLog` may stop first with `OutOfPhlogiston`. In a replay that follows play, a
//!   call play admitted is never stopped: it did work its balance covered, and a replay from
//!   the same balance does the same work. A call play refused left no event, so a replay
//!   refuses it before searching, with `EventNotInLog`, unless the log holds the same call
//!   (same hash) from a later admitted one: then it searches, and from the same balance is
//!   refused with `OutOfPhlogiston` as in play, stopped by its budget or at the gate.)
//! - before stopping, the budget reads the meter again (another thread may have refunded in
//!   the meantime): the refusal is a charge of that lower bound, refused at that read, so it
//!   is linearizable as any refused charge is;
//! - single-threaded, the meter does not change during a search, so the same calls on the same
//!   state and balance stop at the same point, with the same `requested`, on every machine
//!   and run.
//!
//! The space checks the budget at each position a join search visits, before each matcher
//! call of a position's walk over its candidates one by one, and before each waiting
//! continuation a produce offers its datum to. Some work is checked only once it is done, so
//! a search can stop past the first matcher call the meter cannot pay (never before it; the
//! work counted, and so `requested`, is the same on every machine): a similarity ranking (it
//! scores the channel at once), a top-k position's walk (all of its candidates, up to `k`
//! accepted), a walk the parallel pre-check answers (its rejected candidates are counted as
//! the serial walk counts them; the pre-check has called the matcher on them already), a
//! produce's pre-check of one waiting continuation and a failing position's check of the
//! earlier picks (at most one call per position each). The
//! single-channel consume walk (`Space::find_single`) is not capped: it makes
//! at most one matcher call per datum of its channel, fewer than
//! [`PARALLEL_MIN_CANDIDATES`](crate::PARALLEL_MIN_CANDIDATES) unless an exact index narrows
//! it. `install` is not capped either: its search decides between two errors
//! (`InstallWouldMatch` before `OutOfPhlogiston`), and a cap would change which one a caller
//! sees; it is meant for start-up.

use std::cell::Cell;

use rhospace_phlogiston::{CostTable, OutOfPhlogiston, PhlogistonMeter};

use crate::admission::VectorWork;

/// What a charging gate will take for an operation apart from its search's work: the meter it
/// charges, the table pricing the work, and the operation's price before any work (its base
/// price and join arity; never storage or a COMM, which a search may or may not lead to).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Allowance<'b> {
    pub(crate) meter: &'b PhlogistonMeter,
    pub(crate) table: &'b CostTable,
    pub(crate) fixed: u64,
}

/// One operation's budget (see the module docs). Interior mutability, so that the closures of
/// a produce's walk over waiting continuations and the searches they run can all hold it.
///
/// Invariant: `examined` and `vector` are the work the operation's admission will count from
/// searches and pre-checks already finished (the caller [`spend`](Budget::spend)s exactly
/// what it adds to the admission), so the price of that work plus a running search's is never
/// more than what the gate will charge.
#[derive(Debug)]
pub(crate) struct Budget<'b> {
    allowance: Allowance<'b>,
    examined: Cell<u64>,
    vector: Cell<VectorWork>,
    /// The meter's remaining balance as last read.
    left: Cell<u64>,
    /// The refusal, once the work outgrew the meter.
    refused: Cell<Option<OutOfPhlogiston>>,
}

impl<'b> Budget<'b> {
    /// A budget for one operation, reading the meter's balance now.
    pub(crate) fn new(allowance: Allowance<'b>) -> Self {
        Self {
            left: Cell::new(allowance.meter.remaining()),
            allowance,
            examined: Cell::new(0),
            vector: Cell::new(VectorWork::default()),
            refused: Cell::new(None),
        }
    }

    /// Adds finished work that the operation's admission counts.
    #[inline]
    pub(crate) fn spend(&self, examined: u64, vector: VectorWork) {
        self.examined
            .set(self.examined.get().saturating_add(examined));
        let mut v = self.vector.get();
        v.add(vector);
        self.vector.set(v);
    }

    /// Whether the operation can still pay for the work spent plus `examined` and `vector`
    /// (a running search's). When the price is more than the balance last read, reads the
    /// meter again; if it is still more, records the refusal and answers `false` (and keeps
    /// answering `false`).
    #[inline]
    pub(crate) fn allows(&self, examined: u64, vector: VectorWork) -> bool {
        self.slack(examined, vector).is_some()
    }

    /// How many more matcher calls (with no more vector work) the operation can pay for on top
    /// of the work spent plus `examined` and `vector`; `None` when it cannot pay for that work
    /// (as [`allows`](Self::allows) answers `false`, recording the refusal). A search checks
    /// the budget again only once it has made that many calls or its vector work has grown,
    /// so the check costs one comparison per matcher call.
    pub(crate) fn headroom(&self, examined: u64, vector: VectorWork) -> Option<u64> {
        let slack = self.slack(examined, vector)?;
        Some(match self.allowance.table.match_candidate {
            0 => u64::MAX,
            per_call => slack / per_call,
        })
    }

    /// The balance left after paying for the work spent plus `examined` and `vector`, or `None`
    /// when it cannot be paid (see [`allows`](Self::allows)): the price is computed once.
    #[inline]
    fn slack(&self, examined: u64, vector: VectorWork) -> Option<u64> {
        #[cfg(test)]
        if NO_BUDGET.with(Cell::get) {
            return Some(u64::MAX);
        }
        if self.refused.get().is_some() {
            return None;
        }
        let price = self.price(examined, vector);
        if price <= self.left.get() || self.recheck(price) {
            // `recheck` stored the balance it read: either way `left` covers `price`.
            return Some(self.left.get() - price);
        }
        None
    }

    #[cold]
    fn recheck(&self, price: u64) -> bool {
        let remaining = self.allowance.meter.remaining();
        self.left.set(remaining);
        if price <= remaining {
            return true;
        }
        self.refused.set(Some(OutOfPhlogiston {
            requested: price,
            remaining,
        }));
        false
    }

    /// The refusal, if the work outgrew the meter.
    #[inline]
    pub(crate) fn refused(&self) -> Option<OutOfPhlogiston> {
        self.refused.get()
    }

    /// The fixed price plus the work spent and `examined`, `vector` more, priced as the gate
    /// prices it (saturating).
    fn price(&self, examined: u64, vector: VectorWork) -> u64 {
        let table = self.allowance.table;
        let mut work = self.vector.get();
        work.add(vector);
        let examined = self.examined.get().saturating_add(examined);
        self.allowance
            .fixed
            .saturating_add(table.matching(usize::try_from(examined).unwrap_or(usize::MAX)))
            .saturating_add(table.vector_work(work.searches, work.elements))
    }
}

/// Where a produce's walk over waiting continuations reports its work: to a [`Budget`], or to
/// nothing ([`NoCap`]). A generic parameter, so that an uncharged produce's walk compiles
/// without the cap's checks (one per continuation offered).
pub(crate) trait Cap: Copy {
    /// The budget, for the join searches the walk runs.
    fn budget(&self) -> Option<&Budget<'_>>;
    /// [`Budget::spend`].
    fn spend(&self, examined: u64, vector: VectorWork);
    /// [`Budget::allows`] the work spent.
    fn allows(&self) -> bool;
}

/// No cap: an uncharged operation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NoCap;

impl Cap for NoCap {
    #[inline(always)]
    fn budget(&self) -> Option<&Budget<'_>> {
        None
    }
    #[inline(always)]
    fn spend(&self, _: u64, _: VectorWork) {}
    #[inline(always)]
    fn allows(&self) -> bool {
        true
    }
}

impl Cap for &Budget<'_> {
    #[inline]
    fn budget(&self) -> Option<&Budget<'_>> {
        Some(*self)
    }
    #[inline]
    fn spend(&self, examined: u64, vector: VectorWork) {
        Budget::spend(self, examined, vector);
    }
    #[inline]
    fn allows(&self) -> bool {
        Budget::allows(self, 0, VectorWork::default())
    }
}

#[cfg(test)]
thread_local! {
    /// Tests only: when set, this thread's budgets allow any work, so a charged operation's
    /// search runs to its end and the gate alone decides (what `budget_tests` compares the
    /// capped space against).
    pub(crate) static NO_BUDGET: Cell<bool> = const { Cell::new(false) };
}

#[cfg(test)]
#[path = "budget_tests.rs"]
mod space_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> CostTable {
        CostTable {
            match_candidate: 10,
            vector_search_base: 100,
            vector_element: 1,
            ..CostTable::default()
        }
    }

    fn budget<'b>(meter: &'b PhlogistonMeter, table: &'b CostTable, fixed: u64) -> Budget<'b> {
        Budget::new(Allowance {
            meter,
            table,
            fixed,
        })
    }

    #[test]
    fn a_budget_allows_work_the_meter_can_pay_and_refuses_past_it() {
        let meter = PhlogistonMeter::new(1_000);
        let table = table();
        let b = budget(&meter, &table, 100);
        // 100 + 90 × 10 = 1,000: exactly the balance.
        assert!(b.allows(90, VectorWork::default()));
        assert!(b.refused().is_none());
        assert!(!b.allows(91, VectorWork::default()));
        assert_eq!(
            b.refused(),
            Some(OutOfPhlogiston {
                requested: 1_010,
                remaining: 1_000
            })
        );
        // Refused once, refused for good; and nothing was charged.
        assert!(!b.allows(0, VectorWork::default()));
        assert_eq!(meter.remaining(), 1_000);
    }

    #[test]
    fn headroom_counts_the_calls_the_balance_still_covers() {
        let meter = PhlogistonMeter::new(1_000);
        let table = table();
        let b = budget(&meter, &table, 100);
        // 900 left after the fixed price: 90 calls; 85 made, 5 more.
        assert_eq!(b.headroom(0, VectorWork::default()), Some(90));
        assert_eq!(b.headroom(85, VectorWork::default()), Some(5));
        assert_eq!(b.headroom(90, VectorWork::default()), Some(0));
        assert_eq!(b.headroom(91, VectorWork::default()), None);
        assert!(b.refused().is_some());
        let free = CostTable {
            match_candidate: 0,
            ..table
        };
        let b = budget(&meter, &free, 0);
        assert_eq!(b.headroom(1 << 40, VectorWork::default()), Some(u64::MAX));
    }

    #[test]
    fn spent_work_and_vector_work_count_toward_the_price() {
        let meter = PhlogistonMeter::new(1_000);
        let table = table();
        let b = budget(&meter, &table, 0);
        b.spend(50, VectorWork::default());
        // 50 × 10 + 100 + 400 = 1,000.
        let v = VectorWork {
            searches: 1,
            elements: 400,
        };
        assert!(b.allows(0, v));
        assert!(!b.allows(0, VectorWork { elements: 401, ..v }));
    }

    #[test]
    fn a_budget_reads_the_meter_again_before_refusing() {
        let meter = PhlogistonMeter::new(1_000);
        meter.charge(900).unwrap();
        let table = table();
        let b = budget(&meter, &table, 0);
        // A refund lands after the budget read 100.
        meter.refund(500).unwrap();
        assert!(b.allows(60, VectorWork::default()));
        assert!(b.refused().is_none());
    }
}
