//! Hall's condition for the join search: whether the taking positions of a channel can all be
//! given distinct items they accept, on the whole channel ([`Tables::add`]) or with the items
//! that a search's earlier positions hold set aside ([`Tables::feasible`]).
//!
//! Every assignment of a join gives each position that takes its datum (does not peek) an
//! item its pattern accepts, and two taking positions never share a non-persistent item. So
//! for each channel, the taking positions not served by a persistent item (one they accept,
//! which any number of positions may share) need a matching into distinct non-persistent
//! items they accept. Without one, no assignment exists, whatever the order rules of the
//! channel's kind, the peeking positions or the other channels: the check is a relaxation, so
//! a `false` is a proof and a `true` proves nothing.
//!
//! The join search ([`crate::join`]) builds the tables once (a matcher call per taking position
//! and item, so only when its own work has reached that price), and then asks, at later
//! visits, whether the positions still to fill can be matched into the items that earlier
//! positions have not used. A prefix of picks that cannot be completed is abandoned at once:
//! this ends the search's exponential walk under a bad early choice (`[Any; 30]` before three
//! `Odd` over data whose three odd ones come first).
//!
//! **Monotone.** If the positions from `d` on cannot be matched with the picks of the
//! positions before `d` set aside, neither can the positions from any `p > d` on with the picks
//! before `p` set aside (the search's picks of the positions in `d..p` are themselves distinct
//! accepted items, so a matching for the later ones would extend to one for all from `d` on).
//! [`Tables::shallowest_infeasible`] finds the first such `d` by bisection.
//!
//! | operation | cost |
//! |---|---|
//! | [`Tables::add`] | O(takers × edges) worst case (Kuhn's augmenting paths) |
//! | [`Tables::feasible`] | per table with a set-aside item: O(takers × edges) worst case |
//! | [`Tables::shallowest_infeasible`] | O(log positions) calls of `feasible` |
//!
//! Each adds to [`Tables::steps`] the edges it looked at, the items it set and freed and the
//! picks it looked up, which the search uses to pace its checks.

use smallvec::SmallVec;

use crate::join::Pick;

/// An item index no taker may take: an earlier position of the search holds it.
const HELD: usize = usize::MAX - 1;
/// An item index no taker has taken yet.
const FREE: usize = usize::MAX;

/// One channel's bipartite graph: its taking positions not served by a persistent item, and
/// the non-persistent items each accepts.
///
/// Invariants: `takers` ascends; `accepts.len() == takers.len()`; `by_pick` holds each item
/// of the channel once, as `(pick, index)` with the indices `0..by_pick.len()`, sorted by
/// pick; every edge is such an index.
struct Table {
    cid: usize,
    takers: SmallVec<[usize; 8]>,
    accepts: Vec<Vec<usize>>,
    by_pick: Vec<(Pick, usize)>,
}

/// The matching tables of a search's checked channels, with the scratch space the matchings
/// share.
///
/// Invariant: each table's takers, with no item held, admit a complete matching (a table
/// that does not is never kept: [`Tables::add`] reports it instead).
#[derive(Default)]
pub(crate) struct Tables {
    tables: SmallVec<[Table; 2]>,
    /// Per item of the table being matched: the taker (index into its `accepts`) holding it,
    /// [`FREE`] or [`HELD`]. Every entry is `FREE` between matchings: a matching lists what
    /// it sets in `touched` and frees exactly those, so its cost does not grow with the
    /// channel's item count.
    owner: Vec<usize>,
    touched: Vec<usize>,
    /// Per item: the `stamp` of the last augmenting-path search that looked at it.
    seen: Vec<u64>,
    stamp: u64,
    steps: u64,
}

impl Tables {
    /// Adds channel `cid`'s table: `takers` (ascending positions) and, per taker, the indices
    /// of the non-persistent `items` it accepts. Returns whether they admit a complete
    /// matching; the table is kept only if they do.
    pub(crate) fn add(
        &mut self,
        cid: usize,
        takers: SmallVec<[usize; 8]>,
        accepts: Vec<Vec<usize>>,
        items: &[Pick],
    ) -> bool {
        debug_assert_eq!(takers.len(), accepts.len());
        let mut by_pick: Vec<(Pick, usize)> = items.iter().copied().zip(0..).collect();
        by_pick.sort_unstable();
        let table = Table {
            cid,
            takers,
            accepts,
            by_pick,
        };
        if !self.matches(&table, 0, &[]) {
            return false;
        }
        self.tables.push(table);
        true
    }

    /// Whether any table was kept.
    pub(crate) fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// Work done so far (edges looked at, items set and freed, picks looked up), for pacing.
    pub(crate) fn steps(&self) -> u64 {
        self.steps
    }

    /// Whether, on every table, the takers at positions `d` and later admit a complete
    /// matching into the items that no pick of a position before `d` holds. `earlier` lists
    /// a search's picks as `(position, channel id, pick)`; those at positions `d` and later
    /// are ignored.
    pub(crate) fn feasible(&mut self, d: usize, earlier: &[(usize, usize, Pick)]) -> bool {
        let tables = std::mem::take(&mut self.tables);
        let scanned = (earlier.len() as u64).saturating_mul(tables.len() as u64);
        self.steps = self.steps.saturating_add(scanned);
        let ok = tables.iter().all(|t| {
            let held: SmallVec<[usize; 8]> = earlier
                .iter()
                .filter(|(q, cid, _)| *q < d && *cid == t.cid)
                .filter_map(|(_, _, pick)| {
                    let at = t.by_pick.binary_search_by_key(pick, |(p, _)| *p).ok()?;
                    t.by_pick.get(at).map(|(_, i)| *i)
                })
                .collect();
            // Nothing held: a subset of takers the whole table matches (its invariant).
            held.is_empty() || self.matches(t, d, &held)
        });
        self.tables = tables;
        ok
    }

    /// The smallest `d` in `1..=pos` such that [`feasible`](Self::feasible)`(d, earlier)`
    /// fails, or `None` when `feasible(pos, earlier)` holds. `feasible(0, _)` holds by the
    /// tables' invariant, and failure is monotone in `d` (see the module docs).
    pub(crate) fn shallowest_infeasible(
        &mut self,
        pos: usize,
        earlier: &[(usize, usize, Pick)],
    ) -> Option<usize> {
        if self.feasible(pos, earlier) {
            return None;
        }
        // Invariant: `feasible(lo)` holds, `feasible(hi)` does not.
        let (mut lo, mut hi) = (0, pos);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.feasible(mid, earlier) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some(hi)
    }

    /// Whether `t`'s takers at positions `d` and later can all be given distinct accepted
    /// items, none of them in `held` (item indices), by augmenting paths (Kuhn).
    fn matches(&mut self, t: &Table, d: usize, held: &[usize]) -> bool {
        let first = t.takers.partition_point(|&q| q < d);
        if first == t.takers.len() {
            return true;
        }
        let items = t.by_pick.len();
        if self.owner.len() < items {
            self.owner.resize(items, FREE);
            self.seen.resize(items, 0);
        }
        for &i in held {
            if let Some(o) = self.owner.get_mut(i) {
                *o = HELD;
                self.touched.push(i);
            }
        }
        let mut complete = true;
        for l in first..t.takers.len() {
            self.stamp += 1;
            if !self.augment(t, l) {
                complete = false;
                break;
            }
        }
        self.steps = self.steps.saturating_add(self.touched.len() as u64);
        for i in self.touched.drain(..) {
            if let Some(o) = self.owner.get_mut(i) {
                *o = FREE;
            }
        }
        complete
    }

    /// Tries to give taker `l` of `t` an item, moving earlier takers along an augmenting path.
    /// Recursion depth is at most the number of takers (each call takes a distinct one).
    fn augment(&mut self, t: &Table, l: usize) -> bool {
        let Some(edges) = t.accepts.get(l) else {
            return false;
        };
        for &r in edges {
            self.steps = self.steps.saturating_add(1);
            let (Some(seen), Some(&owner)) = (self.seen.get_mut(r), self.owner.get(r)) else {
                continue;
            };
            if *seen == self.stamp || owner == HELD {
                continue;
            }
            *seen = self.stamp;
            if owner == FREE || self.augment(t, owner) {
                self.owner[r] = l;
                self.touched.push(r);
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use std::ops::ControlFlow;

    use super::*;
    use crate::data::{DataStore, StoredDatum};
    use crate::kind::DataKind;

    /// The picks of `n` items stored on a Bag, oldest first.
    fn picks(n: u8) -> Vec<Pick> {
        let mut s = DataStore::<u8>::new(DataKind::Bag);
        for value in 0..n {
            let d = StoredDatum {
                value,
                persist: false,
                priority: 0,
            };
            s.push_embedded(d, |_| None);
        }
        let mut out = Vec::new();
        let _ = s.for_each_candidate(None, None, |key, _, incoming| {
            out.push(Pick { key, incoming });
            ControlFlow::<()>::Continue(())
        });
        out
    }

    /// Positions 0 and 1 accept any of three items, position 2 only item 0.
    fn tables() -> (Tables, Vec<Pick>) {
        let items = picks(3);
        let mut t = Tables::default();
        let ok = t.add(
            0,
            SmallVec::from_slice(&[0, 1, 2]),
            vec![vec![0, 1, 2], vec![0, 1, 2], vec![0]],
            &items,
        );
        assert!(ok, "a complete matching exists: 0→1, 1→2, 2→0");
        (t, items)
    }

    #[test]
    fn a_table_without_a_complete_matching_is_reported_and_not_kept() {
        let items = picks(3);
        let mut t = Tables::default();
        // Two positions that both accept item 0 alone.
        let ok = t.add(
            0,
            SmallVec::from_slice(&[0, 1]),
            vec![vec![0], vec![0]],
            &items,
        );
        assert!(!ok);
        assert!(t.is_empty());
    }

    #[test]
    fn held_items_are_set_aside_for_the_later_positions_only() {
        let (mut t, items) = tables();
        // Position 0 holds item 0, the one position 2 needs: positions 1.. cannot be served.
        let earlier = [(0, 0, items[0])];
        assert!(!t.feasible(1, &earlier));
        // A pick on another channel, or at a position not before `d`, holds nothing here.
        assert!(t.feasible(1, &[(0, 1, items[0])]));
        assert!(t.feasible(0, &earlier));
        // Position 0 holds item 1: 1→2, 2→0.
        assert!(t.feasible(1, &[(0, 0, items[1])]));
    }

    #[test]
    fn the_shallowest_infeasible_prefix_is_found() {
        let (mut t, items) = tables();
        // Position 0 took item 1, position 1 item 0 (position 2's only item).
        let earlier = [(0, 0, items[1]), (1, 0, items[0])];
        assert_eq!(t.shallowest_infeasible(2, &earlier), Some(2));
        // Position 0 took item 0: already the first prefix fails.
        let earlier = [(0, 0, items[0]), (1, 0, items[1])];
        assert_eq!(t.shallowest_infeasible(2, &earlier), Some(1));
        let earlier = [(0, 0, items[1]), (1, 0, items[2])];
        assert_eq!(t.shallowest_infeasible(2, &earlier), None);
        assert!(t.steps() > 0);
    }
}
