//! Complete join matching: depth-first search over candidate assignments.
//!
//! **Algorithm.** Positions are filled in the consume's order; each position tries its
//! channel's candidates in the order the channel's [`DataKind`] hands them out (oldest first for
//! Bag/Set/Queue, newest first for Stack, priority order for PriorityQueue) and backtracks on
//! failure. The first complete assignment in that lexicographic order is chosen, so the result
//! is deterministic, and no valid assignment is missed (SPEC §3).
//!
//! **Reuse rule.** A persistent datum may fill any number of positions. A non-persistent datum
//! fills at most one position, except that several *peeking* positions may share it (it stays,
//! as a persistent one does). A datum that one position consumes cannot also be peeked by
//! another.
//!
//! **Head-only kinds.** On a Queue, Stack, PriorityQueue or Cell channel, an item is offered
//! only when every item ahead of it has been used up (consumed) by an earlier position of the
//! same COMM. A top-k position fills its group under the same rule: it walks on past an item
//! only when it uses that item up itself (takes it, the item is not persistent, the position
//! does not peek), so its group is `k` consecutive items from the first one not used up, and a
//! persistent or peeked item ends the walk. A persistent or peeked head is never used up, so
//! nothing behind it is reachable.
//!
//! **Candidate order.** With a shuffled [`CandidateOrder`](crate::CandidateOrder) (the
//! [`Join::ranker`]), Bag and Set positions walk their candidates by seeded content rank
//! instead of oldest first ([`DataStore::for_each_candidate_in`]); the search is otherwise the
//! same, so it stays complete and picks the first complete assignment in that order.
//!
//! **Produce mode.** A produced datum not yet stored is offered at its place in its channel's
//! order, and an assignment counts only if it uses that datum.
//!
//! **Pruning.** A failing search stops as soon as it has proved that no assignment exists,
//! and never repeats a visit that failed (see `Dfs::go` and `Dfs::give_up`):
//!
//! - a position whose pattern accepts no datum of its channel ends the search;
//! - a position that fails while no earlier position reads a channel it or a later one reads
//!   ends the search (the earlier positions' choices cannot change that), so a join over
//!   several channels never multiplies their candidates out;
//! - a visit of a position is decided by the items earlier positions hold of the channels
//!   read from there on (and whether the produced datum is used): a failed visit is
//!   remembered by that key, and a later visit with an equal key fails at once, so positions
//!   on one channel explore sets of used items, not their orders;
//! - at the first failure remembered, a channel with fewer items than its positions need
//!   (none of them persistent) ends the search;
//! - once a failing search has made as many matcher calls as it costs to check every pattern
//!   of a channel's positions against every item of the channel, it does so, once, and a
//!   channel whose positions cannot all be given distinct items they accept (a maximum
//!   bipartite matching: Hall's condition) ends the search (see `Dfs::unmatchable`);
//! - after that check has passed, a visit checks, paced by the search's work, whether the
//!   positions from there on can still be given distinct items with what earlier positions
//!   hold set aside ([`crate::hall`]); if not, the search goes back at once to the first
//!   position whose earlier picks already could not be completed (see `Dfs::doomed`).
//!
//! Pruning never changes the assignment found. It changes `examined` (the matcher calls
//! made, which are charged) by the calls it saves, plus at most one call per earlier
//! position on the channel when a walk that accepted nothing checks the items it passed over,
//! plus the matching check's calls where it runs (no more than the search had made by then,
//! so a search costs at most twice what it would have without it). The conditioned checks
//! make no matcher call; their own work is paced to about that of the search's calls.
//! It prunes only failures that reached no complete assignment, so a replay's guide, which
//! accepts the assignment play found (the first one), sees the same search, and a replay
//! charges what play charged (the matching check runs only while no guide has rejected an
//! assignment).
//!
//! **Limits.** Worst-case cost is still exponential in the number of positions that share a
//! channel (a complete search). The matching check settles a join that no assignment fits
//! (`[Any; 30]` and three `Odd` over 1,000 data with two odd ones fails after 66,077 matcher
//! calls, 10 ms; before, it did not end). The conditioned check settles an assignment that
//! exists but that an earlier position's first choices starve (the same join with a third
//! odd datum, the `Any` positions trying the odd data first: it fires after 81,180 calls,
//! about 4 ms; before, it was stopped still searching after 2 minutes). Both reason per
//! channel about which items positions take, so what they cannot see stays exponential: the
//! order rules of head-only kinds, similarity positions, and constraints that span channels or
//! reach a failure only through the peeking positions. A search remembers at most
//! `FAILED_MAX` (65,536) failed visits; past that it grows as without the memo. A charged
//! operation's search stops once its work costs more than the meter holds
//! ([`crate::budget`]). Joins are capped at [`MAX_JOIN`](crate::MAX_JOIN) channels so
//! recursion depth is bounded. Measured: `n + 1` positions accepting any datum on `n` data
//! fail in `n + 1` matcher calls (9 µs at n = 9, 0.17 s before any pruning; 0.14 ms at
//! n = 63). With exact patterns on indexed channels each position's candidates come from the
//! index.
//!
//! **Parallel pre-check.** Given a [`ParScan`] (see [`crate::parallel`]), a position whose
//! channel offers at least its threshold of candidates lists them once in the channel's order
//! and learns which ones its pattern accepts from an ordered parallel scan, then walks them
//! serially exactly as above: same order, same choice, same `examined`.
//!
//! [`DataKind`]: crate::DataKind

use std::collections::HashSet;
use std::hash::Hash;
use std::ops::ControlFlow;

use rhospace_matchers::similarity::Take;
use rhospace_matchers::{Match, SimilarityPattern};
use smallvec::SmallVec;

use crate::admission::VectorWork;
use crate::budget::Budget;
use crate::data::{DataStore, ItemKey, StoredDatum};
use crate::hall::Tables;
use crate::order::Ranker;
use crate::parallel::ParScan;

/// A produced datum offered to a search before it is stored.
pub(crate) struct Incoming<'a, A> {
    /// Canonical channel id (see [`Join::cids`]) of the channel it was produced on.
    pub(crate) cid: usize,
    /// The key it would get when stored.
    pub(crate) key: ItemKey,
    pub(crate) datum: &'a StoredDatum<A>,
    /// Whether its channel appears at exactly one position of the join.
    pub(crate) alone: bool,
    /// Whether it may be taken when it is the only item of its channel used (see
    /// [`DataStore::new_item_is_head`]).
    pub(crate) head: bool,
}

impl<A> Clone for Incoming<'_, A> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<A> Copy for Incoming<'_, A> {}

/// What a position picked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pick {
    pub(crate) key: ItemKey,
    /// True when it is the incoming (produced, unstored) datum.
    pub(crate) incoming: bool,
}

/// The channels of a join, resolved once per search.
pub(crate) struct Join<'a, A: Clone + Hash + Eq> {
    /// Per position: an id shared by equal channels (the first position holding that channel).
    pub(crate) cids: SmallVec<[usize; 4]>,
    /// Per position: the channel's store, if it has one.
    pub(crate) stores: SmallVec<[Option<&'a DataStore<A>>; 4]>,
    /// The shuffled candidate order's ranker; `None` for oldest first (see [`crate::order`]).
    pub(crate) ranker: Option<Ranker<StoredDatum<A>>>,
}

/// A found assignment: one pick and one match result per position, plus the further picks of
/// top-k similarity positions.
///
/// `picks[i]` / `results[i]` is the (first, best) datum of position `i`. A top-k position
/// takes `k` data: the best is in `picks`, the other `k - 1` are in `more` as
/// `(position, pick, result)`, by position and then best first. Use
/// [`drain_entries`](Self::drain_entries) for every datum in COMM order.
///
/// **A slot the caller owns.** A [`search`] fills the `Found` it is lent (empty when it finds
/// nothing), and the firing drains it; nothing moves it whole. A match result can be large
/// (a structural matcher's bindings hold four inline, 168 bytes), and a `Found` passed up
/// by value through the search, the continuation walk and the firing was copied a dozen
/// times per COMM: 3,260 of a contract call's 13,580 instructions were `memcpy`.
pub(crate) struct Found<R> {
    pub(crate) picks: SmallVec<[Pick; 4]>,
    pub(crate) results: SmallVec<[R; 2]>,
    pub(crate) more: Vec<(usize, Pick, R)>,
}

impl<R> Found<R> {
    /// An empty slot (allocates nothing).
    #[inline]
    pub(crate) fn new() -> Self {
        Found {
            picks: SmallVec::new(),
            results: SmallVec::new(),
            more: Vec::new(),
        }
    }

    /// Empties the slot, keeping any capacity.
    #[inline]
    fn clear(&mut self) {
        self.picks.clear();
        self.results.clear();
        self.more.clear();
    }

    /// How many data the assignment picked (one per position, plus a top-k position's
    /// further picks).
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.picks.len() + self.more.len()
    }

    /// Takes every picked datum out as `(position, pick, result)`, in COMM order: positions
    /// ascending, and within a top-k position best first: the order of a COMM's `matches`.
    /// The slot is empty afterwards (also when the iterator is dropped early).
    pub(crate) fn drain_entries(&mut self) -> impl Iterator<Item = (usize, Pick, R)> + '_ {
        let firsts = self.picks.drain(..).zip(self.results.drain(..));
        let more = self.more.drain(..).map(|(q, pick, r)| (q, (pick, r)));
        comm_order(firsts, more).map(|(pos, (pick, r))| (pos, pick, r))
    }

    /// Every picked datum as `(position, pick)` in COMM order, borrowing.
    pub(crate) fn entry_picks(&self) -> impl Iterator<Item = (usize, Pick)> + '_ {
        entry_order(&self.picks, &self.more)
    }
}

/// `(position, pick)` for every picked datum in COMM order: positions ascending, and within a
/// top-k position best first. Lazy: nothing is collected.
fn entry_order<'f, R>(
    picks: &'f [Pick],
    more: &'f [(usize, Pick, R)],
) -> impl Iterator<Item = (usize, Pick)> + 'f {
    comm_order(picks.iter().copied(), more.iter().map(|(q, p, _)| (*q, *p)))
}

/// COMM order: each position's first item (`firsts`, one per position in order), followed by
/// that position's further items (`more`, `(position, item)` by position ascending; a top-k
/// position's, best first), as `(position, item)`.
fn comm_order<T>(
    firsts: impl Iterator<Item = T>,
    more: impl Iterator<Item = (usize, T)>,
) -> impl Iterator<Item = (usize, T)> {
    let mut more = more.peekable();
    let mut firsts = firsts.enumerate();
    let mut at = None;
    std::iter::from_fn(move || {
        if let Some(pos) = at {
            if let Some((_, item)) = more.next_if(|(q, _)| *q == pos) {
                return Some((pos, item));
            }
        }
        let (pos, item) = firsts.next()?;
        at = Some(pos);
        Some((pos, item))
    })
}

/// A replay's say over complete assignments: given every picked datum as `(position, datum)`
/// in COMM order, it accepts the assignment (the log holds that COMM) or rejects it (the search
/// goes on to the next assignment in candidate order).
pub(crate) type Guide<'g, A> = &'g mut dyn FnMut(&[(usize, &StoredDatum<A>)]) -> bool;

/// What a [`search`] returns.
pub(crate) struct Outcome {
    /// Whether an assignment was found (and accepted, when guided): it is then in the
    /// [`Found`] slot the search was lent.
    pub(crate) found: bool,
    /// Matcher calls made (matching work, for metering).
    pub(crate) examined: u64,
    /// Similarity rankings run and vector elements scored (for metering).
    pub(crate) vector: VectorWork,
    /// Whether a guide rejected a complete assignment: an unguided search would have fired.
    pub(crate) rejected: bool,
}

/// Tests: an [`Outcome`] with its assignment taken out of the slot (`found` is `Some`
/// exactly when the search found one); derefs to the outcome.
#[cfg(test)]
pub(crate) struct Searched<R> {
    pub(crate) found: Option<Found<R>>,
    pub(crate) outcome: Outcome,
}

#[cfg(test)]
impl<R> std::ops::Deref for Searched<R> {
    type Target = Outcome;
    fn deref(&self) -> &Outcome {
        &self.outcome
    }
}

#[cfg(test)]
impl Outcome {
    /// This outcome with the slot `found` its search filled (see [`Searched`]).
    pub(crate) fn with<R>(self, found: Found<R>) -> Searched<R> {
        Searched {
            found: self.found.then_some(found),
            outcome: self,
        }
    }
}

struct Dfs<'j, 'a, 'm, 'g, 'b, 'f, A: Clone + Hash + Eq, P, M: Match<P, A>> {
    matcher: &'m M,
    /// Replay only: accepts or rejects each complete assignment.
    guide: Option<Guide<'g, A>>,
    /// A charged operation's cap (see [`crate::budget`]): checked at each visit and before
    /// each matcher call of a walk one by one (a ranking, a top-k walk and the pre-checked
    /// walk's rejections are checked once done); once the work outgrows it, the search stops
    /// (`stopped`).
    budget: Option<&'b Budget<'b>>,
    /// Set when `budget` refused more work: `hopeless` is set too, so every walk unwinds, and
    /// no failure is remembered or examined further.
    stopped: bool,
    /// The budget need not be asked again while `examined` is at most `limit` and the vector
    /// work is still `limit_vector` (see [`Budget::headroom`]). Without a budget, `u64::MAX`.
    limit: u64,
    limit_vector: VectorWork,
    /// How many complete assignments `guide` rejected (the outcome's `rejected` is whether
    /// any). A visit during which it did not grow reached no complete assignment: its failure
    /// says no assignment exists below it (see [`Dfs::go`]).
    rejections: u64,
    join: &'j Join<'a, A>,
    patterns: &'j [P],
    peeks: &'j [usize],
    incoming: Option<Incoming<'j, A>>,
    /// The pre-check's result for the incoming datum at one position, until the first try
    /// there takes it (see [`Fit`]). `None` without an incoming datum.
    fit: Option<Fit<M::Output>>,
    /// Last position on the incoming datum's channel; past it, an unused incoming fails.
    last_incoming_pos: usize,
    /// The fields of the caller's [`Found`] slot: the search builds its assignment there.
    picks: &'f mut SmallVec<[Pick; 4]>,
    results: &'f mut SmallVec<[M::Output; 2]>,
    /// Further picks of top-k positions, `(position, pick, result)`, positions ascending.
    more: &'f mut Vec<(usize, Pick, M::Output)>,
    /// Matcher calls made (matching work, for metering).
    pub(crate) examined: u64,
    /// Similarity rankings run and vector elements scored (for metering).
    vector: VectorWork,
    /// The parallel pre-check, when the caller could build one (`P: Sync, A: Sync`).
    par: Option<&'j dyn ParScan<A>>,
    /// Per position: its listed candidates and what the pre-check knows of them, built on the
    /// position's first visit and kept across backtracking (a search never mutates stores).
    pre: SmallVec<[Option<PreChecked<'j, A>>; 4]>,
    /// Set once the search has proved that no assignment exists (see [`Dfs::give_up`]): every
    /// later step returns at once, so the walks unwind without another matcher call.
    hopeless: bool,
    /// Whether [`Dfs::unmatchable`] has run (it runs at most once per search), and its cost
    /// ([`Dfs::matching_cost`]), computed at the first failure remembered.
    matched: bool,
    match_cost: Option<u64>,
    /// The tables of the channels [`Dfs::unmatchable`] found matchable, kept for the
    /// conditioned check at later visits ([`Dfs::doomed`]); `None` before it ran, when it
    /// checked no channel, proved the join impossible, or was stopped by the budget.
    hall: Option<Box<Tables>>,
    /// The next conditioned check waits until `examined` reaches this (see [`Dfs::doomed`]).
    next_check: u64,
    /// Set when a conditioned check proved that the picks of the positions before this one
    /// cannot be completed: every walk of a position at or after it ends, and the visit of
    /// this position fails and clears it, so the position before it goes on (its walk tries
    /// its next candidate; a top-k position fails).
    unwind_to: Option<usize>,
    /// The walk of the position being visited (see [`Walk`]).
    walk: Walk,
    /// Visits that failed without reaching a complete assignment, by [`FailKey`]: a later
    /// visit with the same key fails at once. Created at the first such failure (so never
    /// empty), and capped at [`FAILED_MAX`] entries. Only membership is asked, never an
    /// order, so the hasher's seed reaches no result.
    failed: Option<HashSet<FailKey, foldhash::fast::RandomState>>,
    /// For joins of more than [`LINEAR_USES`] positions: the items the current picks hold,
    /// `(channel id, pick, held by a non-peeking position)`, sorted, one entry per pick (an
    /// item two positions hold is listed twice), so that [`Dfs::prior_use`] is a binary
    /// search rather than a pass over the earlier positions. Invariant: during a visit of
    /// position `pos`, it lists exactly the picks of the positions before `pos` (their first
    /// picks and top-k positions' further ones), kept by [`Dfs::hold`] and [`Dfs::release`]
    /// beside every push to and pop from `picks` and `more`. `None` for smaller joins.
    uses: Option<Vec<(usize, Pick, bool)>>,
}

/// The most positions a join may have for [`Dfs::prior_use`] to pass over the earlier picks
/// rather than keep them sorted (`Dfs::uses`): a pass over eight picks costs about what a
/// binary search and the insertions that keep the list sorted do. Above it, the pass was 40%
/// of `join_search/starved_fires` (33 positions; perf).
const LINEAR_USES: usize = 8;

/// What decides a visit of a position from its start: the position; whether the produced datum
/// is used already; and, sorted, each item that earlier positions picked on a channel read
/// from that position on, `(channel id, key, is the produced datum, taken by a non-peeking
/// position)`. Two visits with equal keys offer the same candidates to the same patterns
/// at every later position (a pick's usability depends only on that item's earlier uses:
/// see `Dfs::prior_use`), so they succeed or fail alike.
type FailKey = (usize, bool, SmallVec<[(usize, ItemKey, bool, bool); 6]>);

/// The most failed visits a search remembers: 65,536 keys of a few dozen bytes, a bound on
/// the memory a failing search can hold. Past it the search goes on without remembering
/// (the same result; more work).
const FAILED_MAX: usize = 1 << 16;

/// The pace of the conditioned matching check (see `Dfs::doomed`): after a check that took
/// `n` steps ([`Tables::steps`]), the next waits for `n / STEPS_PER_CALL` more
/// matcher calls. A step is a load and a compare; a matcher call is tens of them.
const STEPS_PER_CALL: u64 = 16;

/// What one position's walk over its candidates saw. [`Dfs::go`] saves the enclosing
/// position's record, starts a fresh one, and restores it when its own walk ends, so deeper
/// positions never touch it.
#[derive(Clone, Copy, Default)]
struct Walk {
    /// The position walked its channel's candidates one by one ([`Dfs::visit`]'s general
    /// path, serial or pre-checked), rather than failing before a walk or taking a shortcut.
    ran: bool,
    /// A candidate was passed over because earlier positions use it.
    skipped: bool,
    /// The matcher accepted a candidate.
    accepted: bool,
}

/// One position's candidates, in the channel's order, and the accept answers known so far.
/// Invariant: `hits` holds, ascending, exactly the accepted indices below `known`.
struct PreChecked<'j, A> {
    keys: Vec<(ItemKey, bool)>,
    data: Vec<&'j StoredDatum<A>>,
    known: usize,
    hits: Vec<usize>,
}

impl<'j, A> PreChecked<'j, A> {
    /// Whether the position's pattern accepts candidate `i`; asks `par` for the next accepted
    /// index when `i` is past what is known. Walks call it with ascending `i`.
    fn accepts(&mut self, par: &dyn ParScan<A>, pos: usize, i: usize) -> bool {
        while i >= self.known {
            match par.next_accepted(pos, &self.data, self.known) {
                Some(j) => {
                    self.hits.push(j);
                    self.known = j + 1;
                }
                None => self.known = self.data.len(),
            }
        }
        self.hits.binary_search(&i).is_ok()
    }
}

impl<'j, 'a: 'j, 'm, 'g, 'b, 'f, A: Clone + Hash + Eq, P, M: Match<P, A>>
    Dfs<'j, 'a, 'm, 'g, 'b, 'f, A, P, M>
{
    #[inline]
    fn peeks_at(&self, pos: usize) -> bool {
        self.peeks.contains(&pos)
    }

    /// Earlier positions' use of the item (`cid`, `pick`): (used at all, used by a non-peek).
    /// Called during a visit of `pos`, when the picks are those of the positions before it.
    #[inline]
    fn prior_use(&self, pos: usize, cid: usize, pick: Pick) -> (bool, bool) {
        if let Some(uses) = &self.uses {
            let at = uses.partition_point(|&(c, p, _)| (c, p) < (cid, pick));
            let mut any = false;
            let mut consuming = false;
            for &(c, p, taken) in uses.get(at..).unwrap_or_default() {
                if (c, p) != (cid, pick) {
                    break;
                }
                any = true;
                consuming |= taken;
            }
            return (any, consuming);
        }
        let mut any = false;
        let mut consuming = false;
        for q in 0..pos {
            if self.join.cids[q] == cid && self.picks[q] == pick {
                any = true;
                consuming |= !self.peeks_at(q);
            }
        }
        for (q, p, _) in self.more.iter() {
            if *q < pos && self.join.cids[*q] == cid && *p == pick {
                any = true;
                consuming |= !self.peeks_at(*q);
            }
        }
        (any, consuming)
    }

    /// Lists `pick`, just made by position `pos`, in [`uses`](Dfs::uses) (if kept).
    #[inline]
    fn hold(&mut self, pos: usize, pick: Pick) {
        let Some(uses) = self.uses.as_mut() else {
            return;
        };
        let entry = (self.join.cids[pos], pick, !self.peeks.contains(&pos));
        let at = uses.partition_point(|u| *u < entry);
        uses.insert(at, entry);
    }

    /// Takes `pick`, given up by position `pos`, out of [`uses`](Dfs::uses) (if kept).
    #[inline]
    fn release(&mut self, pos: usize, pick: Pick) {
        let Some(uses) = self.uses.as_mut() else {
            return;
        };
        let entry = (self.join.cids[pos], pick, !self.peeks.contains(&pos));
        if let Ok(at) = uses.binary_search(&entry) {
            uses.remove(at);
        }
    }

    fn incoming_used(&self) -> bool {
        self.picks.iter().any(|p| p.incoming) || self.more.iter().any(|(_, p, _)| p.incoming)
    }

    fn go(&mut self, pos: usize) -> bool {
        if self.hopeless || !self.affordable() {
            return false;
        }
        if pos == self.join.cids.len() {
            return (self.incoming.is_none() || self.incoming_used()) && self.accepted();
        }
        // The visit's key, once a failure has been remembered (the set exists only then).
        let mut key = None;
        if pruning() && self.failed.is_some() {
            let k = self.fail_key(pos);
            if self.failed.as_ref().is_some_and(|f| f.contains(&k)) {
                return false;
            }
            key = Some(k);
        }
        let outer = std::mem::take(&mut self.walk);
        let rejections = self.rejections;
        let found = !(self.hall.is_some() && self.doomed(pos)) && self.visit(pos);
        let walk = std::mem::replace(&mut self.walk, outer);
        if self.unwind_to == Some(pos) {
            // This visit was the last to fail for the abandoned picks: the position before
            // it walks on.
            self.unwind_to = None;
        }
        if self.stopped {
            return false;
        }
        // A failure is remembered only when no complete assignment was reached below (none
        // rejected by a guide): then none exists below, with a guide or without, so a replay
        // prunes exactly as play did and charges the same `examined`.
        if pruning() && !found && self.rejections == rejections {
            self.give_up(pos, walk);
            // The first failure to remember (no set yet): count each channel's items once.
            if self.failed.is_none() && !self.hopeless {
                self.hopeless = self.too_few_items();
            }
            // Once the search has done as much work as it costs, match positions to data.
            if !self.hopeless && !self.matched && self.rejections == 0 {
                let cost = match self.match_cost {
                    Some(cost) => cost,
                    None => {
                        let cost = self.matching_cost();
                        self.match_cost = Some(cost);
                        cost
                    }
                };
                if self.examined >= cost || eager_matching() {
                    self.matched = true;
                    if self.unmatchable() {
                        self.hopeless = true;
                    }
                }
            }
            if !self.hopeless {
                let key = key.unwrap_or_else(|| self.fail_key(pos));
                let failed = self.failed.get_or_insert_with(HashSet::default);
                if failed.len() < FAILED_MAX {
                    failed.insert(key);
                }
            }
        }
        found
    }

    /// Whether the operation's budget, if any, can pay for the work done so far; if not, stops
    /// the search (`stopped` and `hopeless`). One comparison while the work stays within the
    /// headroom the budget last gave.
    #[inline]
    fn affordable(&mut self) -> bool {
        if self.examined <= self.limit
            && (self.budget.is_none() || self.vector == self.limit_vector)
        {
            return true;
        }
        self.rebudget()
    }

    #[cold]
    fn rebudget(&mut self) -> bool {
        let Some(b) = self.budget else {
            return true;
        };
        match b.headroom(self.examined, self.vector) {
            Some(calls) => {
                self.limit = self.examined.saturating_add(calls);
                self.limit_vector = self.vector;
                true
            }
            None => {
                self.stopped = true;
                self.hopeless = true;
                false
            }
        }
    }

    /// The [`FailKey`] of a visit of `pos` now.
    #[cold]
    fn fail_key(&self, pos: usize) -> FailKey {
        let cids = &self.join.cids;
        let read_later = |c: usize| cids.get(pos..).is_some_and(|later| later.contains(&c));
        let mut items: SmallVec<[(usize, ItemKey, bool, bool); 6]> = SmallVec::new();
        for (q, pick) in self.earlier_picks(pos) {
            if read_later(cids[q]) {
                items.push((cids[q], pick.key, pick.incoming, !self.peeks_at(q)));
            }
        }
        items.sort_unstable();
        // One entry per item: taken by a non-peeking position if any took it so.
        items.dedup_by(|b, a| {
            let same = (a.0, a.1, a.2) == (b.0, b.1, b.2);
            if same {
                a.3 |= b.3;
            }
            same
        });
        (pos, self.incoming_used(), items)
    }

    /// Sets [`hopeless`](Dfs::hopeless) when position `pos`, failing without reaching a
    /// complete assignment after a walk that saw `walk`, proves that no assignment exists,
    /// whatever earlier positions picked:
    ///
    /// - **a dead position**: its walk went over its channel's candidates one by one (not a
    ///   head-only channel, not ranked by similarity), the matcher accepted none, and it
    ///   accepts none of the items the walk passed over because earlier positions use them
    ///   either ([`accepts_a_prior_pick`](Self::accepts_a_prior_pick)). Every candidate of
    ///   the channel is then rejected, under any choice of the earlier positions.
    /// - **an independent suffix**: no position before `pos` reads a channel that a position
    ///   from `pos` on reads, and the produced datum, if any, is not on one of the earlier
    ///   channels. The positions from `pos` on then fail for every choice of the earlier ones.
    ///
    /// Either way the search fails as it would have, only sooner. Without it a join
    /// `[a, b, b]` whose last pattern matches nothing on `b` retried `b`'s positions for every
    /// candidate on `a` (10⁹ matcher calls for 1,000 data on each channel; now 1,002).
    ///
    /// Cost: O(positions²) comparisons of channel ids, and at most one matcher call per earlier
    /// position, on a failing position only.
    #[cold]
    fn give_up(&mut self, pos: usize, walk: Walk) {
        let cids = &self.join.cids;
        let (Some(&store), Some(pattern)) = (self.join.stores.get(pos), self.patterns.get(pos))
        else {
            return;
        };
        let dead = walk.ran
            && !walk.accepted
            && !store.is_some_and(|s| s.kind().head_only())
            && self.matcher.similarity(pattern).is_none()
            && (!walk.skipped || !self.accepts_a_prior_pick(pos));
        let (before, after) = cids.split_at(pos);
        let independent = !self.incoming.is_some_and(|inc| before.contains(&inc.cid))
            && !before.iter().any(|c| after.contains(c));
        if dead || independent {
            self.hopeless = true;
        }
    }

    /// Whether some channel holds fewer items than its positions need, so that no assignment
    /// exists: each non-peeking position takes a distinct item, and the peeking ones at least
    /// one more (peeks may share an item, but not with a position that takes it), unless an
    /// item is persistent, which any number of positions may share. Counted per channel from
    /// its store's length (and the produced datum, on its channel); only a channel short of
    /// items is walked, for a persistent one. No matcher call.
    ///
    /// Run once, at a search's first remembered failure (never on a search that succeeds
    /// without failing): it settles at once a join such as 64 positions on 63 data, whose
    /// visits are sets of used items beyond what the memo of failed visits holds.
    ///
    /// Cost: O(positions²) comparisons, plus O(items) on a channel short of items.
    #[cold]
    fn too_few_items(&self) -> bool {
        let cids = &self.join.cids;
        for (first, &cid) in cids.iter().enumerate() {
            // Each channel once, at its first position (its id).
            if cid != first {
                continue;
            }
            let (mut takers, mut peekers) = (0usize, false);
            for (q, _) in cids.iter().enumerate().filter(|(_, c)| **c == cid) {
                if self.peeks_at(q) {
                    peekers = true;
                } else {
                    takers += 1;
                }
            }
            let need = takers + usize::from(peekers);
            let store = self.join.stores[first];
            let produced = self.incoming.filter(|inc| inc.cid == cid);
            let have = store.map_or(0, DataStore::len) + usize::from(produced.is_some());
            if have >= need {
                continue;
            }
            let shared = produced.is_some_and(|inc| inc.datum.persist)
                || store.is_some_and(|s| {
                    s.for_each_candidate(None, None, |_, d, _| {
                        if d.persist {
                            ControlFlow::Break(())
                        } else {
                            ControlFlow::Continue(())
                        }
                    })
                    .is_break()
                });
            if !shared {
                return true;
            }
        }
        false
    }

    /// The matcher calls [`unmatchable`](Self::unmatchable) makes: on each channel it checks,
    /// its taking positions times its items (with the produced datum). A channel is checked
    /// when at least two positions take from it and none of its positions is a similarity
    /// pattern (a top-k position takes `k` items; ranking is not a plain accept).
    fn matching_cost(&self) -> u64 {
        let mut cost = 0u64;
        for cid in self.matched_channels() {
            let takers = self.takers(cid).len() as u64;
            let items = self.join.stores[cid].map_or(0, DataStore::len)
                + usize::from(self.incoming.is_some_and(|inc| inc.cid == cid));
            cost = cost.saturating_add(takers.saturating_mul(items as u64));
        }
        cost
    }

    /// The channel ids [`unmatchable`](Self::unmatchable) checks (see
    /// [`matching_cost`](Self::matching_cost)).
    fn matched_channels(&self) -> SmallVec<[usize; 4]> {
        let cids = &self.join.cids;
        let checked = |(first, &cid): (usize, &usize)| {
            let checked = cid == first
                && self.takers(cid).len() >= 2
                && cids
                    .iter()
                    .zip(self.patterns)
                    .all(|(c, p)| *c != cid || self.matcher.similarity(p).is_none());
            checked.then_some(cid)
        };
        cids.iter().enumerate().filter_map(checked).collect()
    }

    /// The positions on channel `cid` that take their datum (do not peek).
    fn takers(&self, cid: usize) -> SmallVec<[usize; 8]> {
        let cids = &self.join.cids;
        (0..cids.len())
            .filter(|&q| cids[q] == cid && !self.peeks_at(q))
            .collect()
    }

    /// Whether some channel's taking positions cannot all be given distinct items their
    /// patterns accept, so that no assignment exists (Hall's condition, by a maximum bipartite
    /// matching). Every assignment gives each taking position an item it accepts, distinct
    /// unless persistent; so a channel whose positions admit no such matching admits no
    /// assignment, whatever the order rules of its kind, the peeking positions or the other
    /// channels. A position accepting a persistent item is always served, and leaves the
    /// matching.
    ///
    /// This settles what the other prunings cannot: enough items in all, too few that suit
    /// some of the positions (`[Any; 30]` and three `Odd` over 1,000 data with two odd ones:
    /// the search would explore sets of used data). It costs a matcher call per taking
    /// position and item of each checked channel, counted in `examined`, so
    /// [`go`](Self::go) runs it once, and only when the search has already made that many
    /// calls: a search pays at most twice what it would have without it, and one that would
    /// not have ended stops.
    ///
    /// When every checked channel matches, their tables are kept in [`hall`](Dfs::hall) for
    /// the conditioned check at later visits ([`doomed`](Self::doomed)).
    ///
    /// Cost: [`matching_cost`](Self::matching_cost) matcher calls, then O(positions × edges)
    /// for the matching; the tables hold the edges (a word each) until the search ends.
    #[cold]
    fn unmatchable(&mut self) -> bool {
        let mut hall = Box::<Tables>::default();
        for cid in self.matched_channels() {
            let takers = self.takers(cid);
            let Some(pats) = takers
                .iter()
                .map(|&q| self.patterns.get(q))
                .collect::<Option<SmallVec<[&P; 8]>>>()
            else {
                return false;
            };
            let mut items: Vec<&StoredDatum<A>> = Vec::new();
            let mut keys: Vec<Pick> = Vec::new();
            let extra = self
                .incoming
                .filter(|inc| inc.cid == cid)
                .map(|inc| (inc.key, inc.datum));
            if let Some(s) = self.join.stores[cid] {
                let _ = s.for_each_candidate(None, extra, |key, d, incoming| {
                    items.push(d);
                    keys.push(Pick { key, incoming });
                    ControlFlow::Continue(())
                });
            } else if let Some((key, d)) = extra {
                items.push(d);
                keys.push(Pick {
                    key,
                    incoming: true,
                });
            }
            // Per taking position not served by a persistent item: the non-persistent items it
            // accepts.
            let mut kept: SmallVec<[usize; 8]> = SmallVec::new();
            let mut accepts: Vec<Vec<usize>> = Vec::new();
            for (&q, p) in takers.iter().zip(pats) {
                let mut edges = Vec::new();
                let mut served = false;
                for (i, d) in items.iter().enumerate() {
                    self.examined += 1;
                    if !self.affordable() {
                        // Out of budget (see `crate::budget`): the search stops.
                        return false;
                    }
                    if self.matcher.get(p, &d.value).is_some() {
                        if d.persist {
                            served = true;
                            break;
                        }
                        edges.push(i);
                    }
                }
                if !served {
                    kept.push(q);
                    accepts.push(edges);
                }
            }
            if !hall.add(cid, kept, accepts, &keys) {
                return true;
            }
        }
        if !hall.is_empty() {
            // The first conditioned check waits, as every later one, for the search to have
            // paid for the matching work just done.
            self.next_check = self.examined.saturating_add(hall.steps() / STEPS_PER_CALL);
            self.hall = Some(hall);
        }
        false
    }

    /// Whether the walks of position `pos` end because a conditioned check proved that the
    /// picks of the positions before [`unwind_to`](Dfs::unwind_to) cannot be completed.
    #[inline]
    fn unwinding(&self, pos: usize) -> bool {
        self.unwind_to.is_some_and(|d| pos >= d)
    }

    /// The conditioned matching check, at a visit of `pos` once [`unmatchable`] has kept its
    /// tables: whether the positions from `pos` on can still be given distinct items their
    /// patterns accept, with what earlier positions hold set aside (see [`crate::hall`]). If
    /// not, the visit fails without a walk, and [`unwind_to`](Dfs::unwind_to) is set to the
    /// first position whose earlier picks already could not be completed, so the search goes
    /// back there at once instead of exploring those picks' completions. Sound: it fails only
    /// visits below which no assignment exists, so the assignment found is unchanged and a
    /// failure remembered by it is one.
    ///
    /// Paced: it runs only while no guide has rejected an assignment (so a replay checks as
    /// play did), and once the search has made, since the last check, one matcher call per
    /// [`STEPS_PER_CALL`] steps that check took, so the checks cost the search at most about
    /// as much again as its matcher calls. No matcher call: the tables hold the answers.
    ///
    /// [`unmatchable`]: Dfs::unmatchable
    #[cold]
    fn doomed(&mut self, pos: usize) -> bool {
        if !pruning() || self.hopeless || self.rejections > 0 {
            return false;
        }
        if self.examined < self.next_check && !eager_matching() {
            return false;
        }
        let cids = &self.join.cids;
        let earlier: SmallVec<[(usize, usize, Pick); 8]> = self
            .earlier_picks(pos)
            .map(|(q, pick)| (q, cids[q], pick))
            .collect();
        let Some(hall) = self.hall.as_mut() else {
            return false;
        };
        let before = hall.steps();
        let d = hall.shallowest_infeasible(pos, &earlier);
        let took = hall.steps().saturating_sub(before);
        self.next_check = self.examined.saturating_add(took / STEPS_PER_CALL);
        self.unwind_to = d;
        d.is_some()
    }

    /// Whether position `pos`'s pattern accepts a datum that an earlier position on its channel
    /// picked (the candidates its walk passed over). Each is a matcher call, counted in
    /// `examined`: at most one per earlier position, and made only by a walk that accepted
    /// nothing else.
    fn accepts_a_prior_pick(&mut self, pos: usize) -> bool {
        let patterns: &'j [P] = self.patterns;
        let (Some(pattern), Some(&cid)) = (patterns.get(pos), self.join.cids.get(pos)) else {
            return false;
        };
        let store = self.join.stores[pos];
        let incoming = self.incoming;
        let (cids, matcher) = (&self.join.cids, self.matcher);
        let mut calls = 0u64;
        let hit = self
            .earlier_picks(pos)
            .filter(|&(q, _)| cids[q] == cid)
            .filter_map(|(_, pick)| {
                if pick.incoming {
                    incoming.map(|inc| inc.datum)
                } else {
                    store.and_then(|s| s.get(pick.key))
                }
            })
            .any(|d| {
                calls += 1;
                matcher.get(pattern, &d.value).is_some()
            });
        self.examined += calls;
        hit
    }

    /// The picks of the positions before `pos` as `(position, pick)`: each position's first
    /// pick, then the further picks of top-k positions.
    fn earlier_picks(&self, pos: usize) -> impl Iterator<Item = (usize, Pick)> + '_ {
        let more = self.more.iter().filter(move |(q, _, _)| *q < pos);
        let firsts = self.picks.iter().copied().enumerate().take(pos);
        firsts.chain(more.map(|&(q, pick, _)| (q, pick)))
    }

    /// One visit of position `pos` (see [`go`](Self::go)).
    fn visit(&mut self, pos: usize) -> bool {
        let matcher: &'m M = self.matcher;
        let patterns: &'j [P] = self.patterns;
        let sim = matcher.similarity(&patterns[pos]);
        let top_k = match sim.map(|s| s.take()) {
            Some(Take::TopK(k)) => Some(k.get()),
            _ => None,
        };
        if let Some(inc) = self.incoming {
            if pos > self.last_incoming_pos && !self.incoming_used() {
                return false;
            }
            // A top-k position takes stored data beside the produced one: no shortcut.
            if inc.alone && self.join.cids[pos] == inc.cid && top_k.is_none() {
                // The produced datum must sit here: stored data on this channel cannot help.
                if !inc.head {
                    return false;
                }
                let flow = self.try_candidate(pos, inc.key, inc.datum, true);
                return flow.is_break() && self.picks.len() == self.join.cids.len();
            }
        }
        let cid = self.join.cids[pos];
        let store: Option<&'j DataStore<A>> = self.join.stores[pos];
        let restricted = store.is_some_and(|s| s.kind().head_only());
        let extra = match self.incoming {
            Some(inc) if inc.cid == cid => Some((inc.key, inc.datum)),
            _ => None,
        };
        if let (Some(k), Some(sim)) = (top_k, sim) {
            return self.go_top_k(pos, k, sim);
        }
        let hint = matcher.exact_key(&patterns[pos]);
        self.walk.ran = true;
        let embed: &dyn Fn(&A) -> Option<&[f32]> = &|a| matcher.embedding(a);
        let need = self.join.cids.len();
        if let (Some(par), Some(s), None) = (self.par, store, sim) {
            let n = s.len() + usize::from(extra.is_some());
            if !restricted && n >= par.threshold() && s.scans_all(hint) {
                let flow = self.go_prechecked(pos, cid, s, hint, extra, par);
                return flow.is_break() && self.picks.len() == self.join.cids.len();
            }
        }
        let flow = match store {
            Some(s) => {
                let ranked = match sim {
                    Some(sim) => s.for_each_ranked(sim, embed, extra, need, |key, d, incoming| {
                        self.offer(pos, cid, key, d, incoming, restricted)
                    }),
                    None => None,
                };
                match ranked {
                    Some((flow, scored, dim)) => {
                        // The ranking scored every datum of the channel: matching work, and
                        // vector work by its dimension.
                        self.examined += scored;
                        self.vector.add_ranking(scored, dim);
                        flow
                    }
                    None => {
                        let join: &'j Join<'a, A> = self.join;
                        s.for_each_candidate_in(join.ranker.as_ref(), hint, extra, |key, d, inc| {
                            self.offer(pos, cid, key, d, inc, restricted)
                        })
                    }
                }
            }
            None => match extra {
                Some((key, d)) => self.offer(pos, cid, key, d, true, false),
                None => ControlFlow::Continue(()),
            },
        };
        flow.is_break() && self.picks.len() == self.join.cids.len()
    }

    /// Walks position `pos`'s candidates in the channel's order as [`go`](Self::go) does,
    /// taking accept answers from the parallel pre-check instead of calling the matcher on
    /// rejected candidates. Usable candidates are counted in `examined` exactly as the serial
    /// walk counts them.
    fn go_prechecked(
        &mut self,
        pos: usize,
        cid: usize,
        s: &'j DataStore<A>,
        hint: Option<&A>,
        extra: Option<(ItemKey, &'j StoredDatum<A>)>,
        par: &'j dyn ParScan<A>,
    ) -> ControlFlow<()> {
        if self.pre.len() <= pos {
            self.pre.resize_with(pos + 1, || None);
        }
        let mut pre = match self.pre[pos].take() {
            Some(p) => p,
            None => {
                let mut p = PreChecked {
                    keys: Vec::with_capacity(s.len() + 1),
                    data: Vec::with_capacity(s.len() + 1),
                    known: 0,
                    hits: Vec::new(),
                };
                let join: &'j Join<'a, A> = self.join;
                let _ = s.for_each_candidate_in(
                    join.ranker.as_ref(),
                    hint,
                    extra,
                    |key, d, incoming| {
                        p.keys.push((key, incoming));
                        p.data.push(d);
                        ControlFlow::Continue(())
                    },
                );
                p
            }
        };
        let mut flow = ControlFlow::Continue(());
        for i in 0..pre.data.len() {
            let (Some(&(key, incoming)), Some(&d)) = (pre.keys.get(i), pre.data.get(i)) else {
                break;
            };
            if self.hopeless || self.unwinding(pos) {
                break;
            }
            let pick = Pick { key, incoming };
            let (used, consumed) = self.prior_use(pos, cid, pick);
            if !d.persist && consumed || !(d.persist || !used || self.peeks_at(pos)) {
                self.walk.skipped = true;
                continue;
            }
            if !pre.accepts(par, pos, i) {
                // The serial walk's matcher call here, answered by the pre-check.
                self.examined += 1;
                continue;
            }
            if self.try_candidate(pos, key, d, incoming).is_break() {
                flow = ControlFlow::Break(());
                break;
            }
        }
        self.pre[pos] = Some(pre);
        flow
    }

    /// A top-k similarity position: takes the first `k` usable accepted candidates in the
    /// channel's order (best score first on a VectorDB channel) as one group, then goes on.
    /// The group is not varied on backtracking: "the k best" is one choice, so if the rest of
    /// the join fails with it, this position fails.
    ///
    /// On a head-only channel the walk stops at the first item it cannot use (as in
    /// [`offer`](Self::offer)) and also right after an item it takes without using it up (a
    /// persistent one, or any when this position peeks): what lies behind such an item is not
    /// reachable in this COMM (see the module docs).
    fn go_top_k(&mut self, pos: usize, k: usize, sim: &SimilarityPattern) -> bool {
        let matcher: &'m M = self.matcher;
        let patterns: &'j [P] = self.patterns;
        let pattern = &patterns[pos];
        let cid = self.join.cids[pos];
        let store: Option<&'j DataStore<A>> = self.join.stores[pos];
        let restricted = store.is_some_and(|s| s.kind().head_only());
        let extra = match self.incoming {
            Some(inc) if inc.cid == cid => Some((inc.key, inc.datum)),
            _ => None,
        };
        let peek_here = self.peeks_at(pos);
        let join: &'j Join<'a, A> = self.join;
        let mut chosen: SmallVec<[(Pick, M::Output); 4]> = SmallVec::new();
        let mut examined = 0u64;
        let score_len = u64::try_from(sim.dim()).unwrap_or(u64::MAX);
        let mut elements = 0u64;
        let mut visit = |key: ItemKey, d: &'j StoredDatum<A>, incoming: bool| {
            let pick = Pick { key, incoming };
            let (used, consumed) = self.prior_use(pos, cid, pick);
            if !d.persist && consumed {
                return ControlFlow::Continue(());
            }
            if d.persist || !used || peek_here {
                examined += 1;
                elements = elements.saturating_add(score_len);
                if let Some(r) = matcher.get(pattern, &d.value) {
                    chosen.push((pick, r));
                    if chosen.len() == k {
                        return ControlFlow::Break(());
                    }
                    // On a head-only channel the next item is reachable only once this one is
                    // used up, as for the next position in `offer`: taken, and neither
                    // persistent nor peeked here. A persistent or peeked head ends the walk.
                    if restricted && (d.persist || peek_here) {
                        return ControlFlow::Break(());
                    }
                    return ControlFlow::Continue(());
                }
            }
            if restricted {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        };
        let embed: &dyn Fn(&A) -> Option<&[f32]> = &|a| matcher.embedding(a);
        // `k` is the caller's, up to `usize::MAX`: saturate (the ranking only caps its first
        // sort at `need`; it never allocates by it).
        let need = k.saturating_add(self.join.cids.len());
        let _ = match store {
            Some(s) => match s.for_each_ranked(sim, embed, extra, need, &mut visit) {
                Some((flow, scored, dim)) => {
                    // The ranking scored every datum of the channel: matching work, and vector
                    // work by its dimension.
                    examined += scored;
                    self.vector.add_ranking(scored, dim);
                    flow
                }
                None => s.for_each_candidate_in(join.ranker.as_ref(), None, extra, &mut visit),
            },
            None => match extra {
                Some((key, d)) => visit(key, d, true),
                None => ControlFlow::Continue(()),
            },
        };
        self.examined += examined;
        self.vector.add_elements(elements);
        if chosen.len() < k {
            return false;
        }
        let mut group = chosen.into_iter();
        let Some((first, r)) = group.next() else {
            return false;
        };
        let mark = self.more.len();
        self.hold(pos, first);
        self.picks.push(first);
        self.results.push(r);
        for (pick, r) in group {
            self.hold(pos, pick);
            self.more.push((pos, pick, r));
        }
        if self.go(pos + 1) {
            return true;
        }
        self.release(pos, first);
        self.picks.pop();
        self.results.pop();
        while self.more.len() > mark {
            if let Some((_, pick, _)) = self.more.pop() {
                self.release(pos, pick);
            }
        }
        false
    }

    /// Whether the guide (if any) accepts the complete assignment now in `picks` and `more`.
    fn accepted(&mut self) -> bool {
        let Some(guide) = self.guide.as_mut() else {
            return true;
        };
        let join: &'j Join<'a, A> = self.join;
        let incoming = self.incoming;
        let mut entries: SmallVec<[(usize, &'j StoredDatum<A>); 8]> = SmallVec::new();
        for (pos, pick) in entry_order(self.picks, self.more) {
            let datum = if pick.incoming {
                incoming.map(|inc| inc.datum)
            } else {
                join.stores[pos].and_then(|s| s.get(pick.key))
            };
            // Picks name live items only; a missing one cannot be a logged COMM.
            let Some(d) = datum else {
                return false;
            };
            entries.push((pos, d));
        }
        if guide(&entries) {
            true
        } else {
            self.rejections += 1;
            false
        }
    }

    /// Tries one candidate; `Break` ends the scan (found, or a head-only channel blocked).
    fn offer(
        &mut self,
        pos: usize,
        cid: usize,
        key: ItemKey,
        d: &'j StoredDatum<A>,
        incoming: bool,
        restricted: bool,
    ) -> ControlFlow<()> {
        if self.hopeless || self.unwinding(pos) {
            // No assignment exists (see `give_up`), or none with the earlier picks (see
            // `unwind_to`): end the walk.
            return ControlFlow::Break(());
        }
        let pick = Pick { key, incoming };
        let (used, consumed) = self.prior_use(pos, cid, pick);
        if !d.persist && consumed {
            // Used up by an earlier position: skip it, the next item is reachable.
            self.walk.skipped = true;
            return ControlFlow::Continue(());
        }
        let usable = d.persist || !used || self.peeks_at(pos);
        if !usable {
            self.walk.skipped = true;
        } else if self.try_candidate(pos, key, d, incoming).is_break() {
            return ControlFlow::Break(());
        }
        if restricted {
            // Not used up, so nothing behind it may be taken.
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    fn try_candidate(
        &mut self,
        pos: usize,
        key: ItemKey,
        d: &'j StoredDatum<A>,
        incoming: bool,
    ) -> ControlFlow<()> {
        if self.hopeless {
            // No assignment exists (see `give_up`): end the walk; the caller sees no pick.
            return ControlFlow::Break(());
        }
        self.examined += 1;
        let pattern = &self.patterns[pos];
        self.vector.add_elements(score_len(self.matcher, pattern));
        if !self.affordable() {
            // Out of budget: the call is not made; the caller sees no pick.
            return ControlFlow::Break(());
        }
        // The pre-check's result for the produced datum here, the first time it is tried.
        let got = match self.fit.take_if(|f| incoming && f.pos == pos) {
            Some(f) => Some(f.result),
            None => self.matcher.get(pattern, &d.value),
        };
        if let Some(r) = got {
            self.walk.accepted = true;
            let pick = Pick { key, incoming };
            self.hold(pos, pick);
            self.picks.push(pick);
            self.results.push(r);
            if self.go(pos + 1) {
                return ControlFlow::Break(());
            }
            self.release(pos, pick);
            self.picks.pop();
            self.results.pop();
            if self.hopeless || self.unwinding(pos) {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }
}

/// The vector elements a matcher call on `pattern` scores: its dimension for a similarity
/// pattern, else 0.
#[inline]
pub(crate) fn score_len<A, P, M: Match<P, A>>(matcher: &M, pattern: &P) -> u64 {
    matcher
        .similarity(pattern)
        .map_or(0, |s| u64::try_from(s.dim()).unwrap_or(u64::MAX))
}

/// A produce's pre-check: the first position of `on_channel` (the positions holding the
/// produced datum's channel, ascending) that accepts `datum`, with the matcher's result there
/// (`None` if none accepts), the matcher calls made (it stops at the first that accepts) and
/// the vector elements they scored. [`search`] takes the result ([`Fit`]) and uses it in
/// place of its own matcher call on the datum at that position.
///
/// A produce's assignment must use the produced datum, so when no such position accepts it no
/// assignment exists and the stored data of the join's other channels need not be searched
/// (that search costs O(their data) per waiting join). [`search`] starts with exactly this
/// check and, when it fails, returns at once with `examined` equal to its count and no guide
/// call; so a caller that runs it first and skips `search` on failure sees what `search`
/// would have reported. When it passes, its calls (in `examined` and as vector work) are
/// counted only if the search then fires nothing: a search that fires took the datum and
/// called the matcher at its positions itself, while one that fails may stop before them
/// (a join `[x, c]` waiting on an empty `x` meets a produce on `c` with this check alone).
/// A position without a pattern (never the case for a valid join) accepts nothing.
///
/// Time: O(|on_channel|) matcher calls; allocates nothing.
#[inline]
pub(crate) fn incoming_fits<A, P, M: Match<P, A>>(
    matcher: &M,
    patterns: &[P],
    on_channel: impl IntoIterator<Item = usize>,
    datum: &StoredDatum<A>,
) -> (Option<Fit<M::Output>>, u64, u64) {
    let (mut checked, mut elements) = (0u64, 0u64);
    for pos in on_channel {
        checked += 1;
        let Some(p) = patterns.get(pos) else {
            continue;
        };
        elements = elements.saturating_add(score_len(matcher, p));
        if let Some(result) = matcher.get(p, &datum.value) {
            return (Some(Fit { pos, result }), checked, elements);
        }
    }
    (None, checked, elements)
}

/// Where a produce's pre-check ([`incoming_fits`]) found that the produced datum fits, and
/// the matcher's result there. The search uses `result` the first time it tries the datum at
/// `pos`, instead of calling the matcher again (the same call on the same values: a matcher is
/// a function of its pattern and datum); it counts that try as a matcher call all the same,
/// so `examined`, the budget and every charge are as without it.
#[derive(Debug)]
pub(crate) struct Fit<R> {
    pub(crate) pos: usize,
    pub(crate) result: R,
}

/// Searches for the first assignment of data to `patterns` over `join`, using `incoming` when
/// given. `fit` is what the caller's pre-check ([`incoming_fits`]) found for it, if the
/// caller ran one: the search then skips that check (the same matcher calls, which the caller
/// counts as the search would) and uses the result (see [`Fit`]).
/// The assignment is built in `found`, the caller's slot (see [`Found`]): it holds the
/// assignment when the outcome says one was found, and is empty otherwise.
/// With a `guide` (replay), the first assignment the guide accepts. With `par`, a
/// position with many candidates consults its pre-check (see [`crate::parallel::search`],
/// which the space calls); the result is the same as without. With a `budget`, the search
/// stops once its work (on top of the budget's spent work) costs more than the meter holds:
/// it then reports no assignment, and the budget holds the refusal (see [`crate::budget`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn search<'j, 'a: 'j, A, P, M>(
    matcher: &M,
    join: &'j Join<'a, A>,
    patterns: &'j [P],
    peeks: &'j [usize],
    incoming: Option<Incoming<'j, A>>,
    mut fit: Option<Fit<M::Output>>,
    guide: Option<Guide<'_, A>>,
    budget: Option<&Budget<'_>>,
    par: Option<&'j dyn ParScan<A>>,
    found: &mut Found<M::Output>,
) -> Outcome
where
    A: Clone + Hash + Eq,
    M: Match<P, A>,
{
    found.clear();
    let last_incoming_pos = match incoming {
        Some(inc) => join.cids.iter().rposition(|c| *c == inc.cid).unwrap_or(0),
        None => usize::MAX,
    };
    // A passing pre-check's calls, counted below if the search fires nothing.
    let mut pre = (0u64, 0u64);
    if let Some(inc) = incoming.filter(|_| fit.is_none()) {
        let on_channel = join.cids.iter().enumerate().filter(|(_, c)| **c == inc.cid);
        let (found, checked, elements) =
            incoming_fits(matcher, patterns, on_channel.map(|(pos, _)| pos), inc.datum);
        let Some(found) = found else {
            let mut vector = VectorWork::default();
            vector.add_elements(elements);
            return Outcome {
                found: false,
                examined: checked,
                vector,
                rejected: false,
            };
        };
        pre = (checked, elements);
        fit = Some(found);
    }
    // The search state is dropped in place at the end of this block (`drop(dfs)` would
    // move all of it first).
    let (hit, mut examined, mut vector, rejected) = {
        let mut dfs = Dfs {
            matcher,
            guide,
            budget,
            stopped: false,
            // With a budget, the first matcher call asks it.
            limit: if budget.is_some() { 0 } else { u64::MAX },
            limit_vector: VectorWork::default(),
            rejections: 0,
            join,
            patterns,
            peeks,
            incoming,
            fit: fit.filter(|_| incoming.is_some()),
            last_incoming_pos,
            picks: &mut found.picks,
            results: &mut found.results,
            more: &mut found.more,
            examined: 0,
            vector: VectorWork::default(),
            par,
            pre: SmallVec::new(),
            hopeless: false,
            matched: false,
            match_cost: None,
            hall: None,
            next_check: 0,
            unwind_to: None,
            walk: Walk::default(),
            failed: None,
            uses: (pruning() && (join.cids.len() > LINEAR_USES || eager_matching())).then(Vec::new),
        };
        let hit = dfs.go(0);
        (hit, dfs.examined, dfs.vector, dfs.rejections > 0)
    };
    if !hit {
        examined += pre.0;
        vector.add_elements(pre.1);
        // The walk undoes its picks as it unwinds; clearing keeps the slot's contract (empty
        // when nothing was found) whatever way it unwound.
        found.clear();
    }
    Outcome {
        found: hit,
        examined,
        vector,
        rejected,
    }
}

#[cfg(test)]
thread_local! {
    /// Tests only: when set, this thread's searches prune nothing (no `give_up`, no memo of
    /// failed visits) and pass over the earlier picks for every candidate (no `Dfs::uses`):
    /// the plain complete search that `prune_tests` compares the pruned one against.
    pub(crate) static NO_PRUNING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Tests only: when set, this thread's searches run the matching check at their first
    /// remembered failure whatever it costs, and the conditioned check at every visit after,
    /// and keep the earlier picks sorted (`Dfs::uses`) at any size, so random small joins
    /// exercise all three.
    pub(crate) static EAGER_MATCHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the matching checks run as early as they can (tests only; see `EAGER_MATCHING`).
#[inline(always)]
fn eager_matching() -> bool {
    #[cfg(test)]
    {
        EAGER_MATCHING.with(std::cell::Cell::get)
    }
    #[cfg(not(test))]
    {
        false
    }
}

/// Whether [`Dfs::go`] prunes (see the module docs): always, except in tests that turn it off
/// with `NO_PRUNING`.
#[inline(always)]
fn pruning() -> bool {
    #[cfg(test)]
    {
        !NO_PRUNING.with(std::cell::Cell::get)
    }
    #[cfg(not(test))]
    {
        true
    }
}

#[cfg(test)]
#[path = "join_prune_tests.rs"]
mod prune_tests;
