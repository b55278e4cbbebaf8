//! The single-channel consume fast path: a consume on one channel finds its datum
//! with one walk of that channel's candidates and fires without the join machinery (no
//! resolved join view, no depth-first search, no assignment record to unpack).
//!
//! **Algorithm.** With one position there is nothing to backtrack over, and no earlier
//! position can have used a candidate, so the complete search of [`crate::join`] reduces to:
//! walk the channel's candidates in the order its kind hands them out, in the space's
//! candidate order ([`DataStore::for_each_candidate_in`]: shuffled by rank on a Bag or Set
//! when the space is configured so; through the exact index when the pattern has an exact
//! key and the index exists); call the matcher on each, counting the call in `examined`; the
//! first that matches is the pick; on a head-only kind (Queue, Stack, PriorityQueue, Cell) the
//! walk stops after the first candidate. That is the search's own walk at position 0
//! (`Dfs::go`, `offer`, `try_candidate`), so the pick, the matcher's result and `examined` are
//! the general path's.
//!
//! **When it applies** ([`Space::find_single`] returns `None` otherwise, and the caller runs
//! the general search):
//! - one channel, and the space's shortcuts are on (a test switch turns them off);
//! - the pattern is not a similarity pattern (those are ranked, and top-k takes several data);
//! - the walk is not one the general search would hand to the parallel pre-check (a scan of at
//!   least [`PARALLEL_MIN_CANDIDATES`] candidates with no index narrowing it).
//!
//! Peeks (at most position 0) and persistence of the consume or of the datum are handled: they
//! only decide whether the pick is taken, as in `collect_matches`.
//!
//! **Invariants it keeps** (the same, in the same order, as `consume_in`'s general branch):
//! - the exact index is built before the walk exactly when the general search builds it (an
//!   exact pattern on a channel that [`wants_index_for`] it), noted in the call's [`Built`]
//!   record and settled at the gate's verdict (or the log's refusal), before anything else
//!   changes: kept (the channel listed as changed) when the call is admitted, dropped when it
//!   is refused, so `examined` and the dirty lists agree;
//! - the gate sees the same [`Admission`] (same `examined`, `fires: Some(1)`, and the datum in
//!   `freed_data` unless it stays) before anything else changes; a refusal changes nothing more
//!   than the general path's refusal does;
//! - the log gets the consume call, then the COMM, in the channel's shard; when the COMM
//!   fires, a pick that stays (persistent or peeked) is copied and the channel left unlisted,
//!   and any other pick is taken, the channel touched (listed as changed), tidied, and dropped
//!   when left empty with no join group.
//!
//! A miss (nothing matches) returns its `examined` to the caller, which stores the
//! continuation as after a general search.
//!
//! **Replay.** In a rigged space the walk shows each matching candidate to the log's guide
//! ([`Guide`], as `Dfs::accepted` shows a complete assignment) and goes on past one the guide
//! rejects (a head-only channel still stops at its head), so the pick is the first the log
//! accepts; a walk that met a rejected match and no accepted one reports it, and the caller
//! refuses the call with `CommNotInLog`, as after the general guided search. A firing then
//! strikes the call and the accepted COMM from the rig and logs them as hashed events.
//!
//! Tests: `single_tests` runs random call sequences on a space with the shortcut and on one
//! without, comparing every result, admission, state, log and state root.
//!
//! [`DataStore::for_each_candidate_in`]: crate::data::DataStore::for_each_candidate_in
//! [`wants_index_for`]: crate::data::DataStore::wants_index_for
//! [`Built`]: super::Built

use std::hash::Hash;
use std::ops::ControlFlow;

use rhospace_matchers::Match;
use smallvec::SmallVec;

use super::{strike, Built, LogReuse, Replayed, Space, State, View};
use crate::admission::{Admission, Gate, OpKind, VectorWork};
use crate::call_list::CallList;
use crate::comm::{Comm, MatchedDatum};
use crate::conts::Peeks;
use crate::data::ItemKey;
use crate::encode::Encode;
use crate::error::{ConsumeError, ErrorKind};
use crate::join::Guide;
use crate::parallel::PARALLEL_MIN_CANDIDATES;

/// What the single-position walk found: the pick's key and the matcher's result.
pub(super) type SingleHit<R> = (ItemKey, R);

/// What [`Space::find_single`] reports: matcher calls made, the pick, whether a replay's
/// guide rejected a match, and whether the walk built the channel's exact index (see
/// [`Built`]; returned rather than written through a pointer, which cost the hot path a
/// stack argument).
pub(super) type SingleWalk<R> = (u64, Option<SingleHit<R>>, bool, bool);

impl<C, P, A, K, M> Space<C, P, A, K, M>
where
    C: Clone + Hash + Eq + Encode,
    P: Clone + Eq + Encode + Sync,
    A: Clone + Hash + Eq + Encode + Sync,
    K: Clone + Eq + Encode,
    M: Match<P, A>,
{
    /// The single-position search of a consume on `channels` with `patterns` (validated):
    /// `Some((examined, hit, rejected, built))` when the fast path applies (see the module
    /// docs), `None` when the caller must run the general search. With a replay's `guide`,
    /// `hit` is the first match it accepts and `rejected` says whether it turned one down.
    /// Builds the exact index first when the general search would, and then says so in
    /// `built`: the caller settles it (see [`Built`]). A walk that built the index never
    /// returns `None` (the index narrows it, so it is no parallel scan).
    ///
    /// Time: O(1) expected with an exact pattern on an indexed channel; otherwise O(candidates
    /// walked), as the general search.
    pub(super) fn find_single(
        &self,
        view: &mut View<'_, C, P, A, K>,
        channels: &[C],
        patterns: &[P],
        mut guide: Option<Guide<'_, A>>,
    ) -> Option<SingleWalk<M::Output>> {
        let ([channel], [pattern]) = (channels, patterns) else {
            return None;
        };
        if !self.shortcuts || self.matcher.similarity(pattern).is_some() {
            return None;
        }
        let hint = self.matcher.exact_key(pattern);
        let mut cs = view.channel(channel);
        let mut built = false;
        // As `find_for_consume`: an exact pattern builds the index the channel wants for it.
        if hint.is_some_and(|key| {
            cs.is_some_and(|cs| cs.data.wants_index_for(key, self.order_key.is_some()))
        }) {
            built = view.build_index(channel);
            cs = view.channel(channel);
        }
        let Some(cs) = cs else {
            // No store: the search offers nothing and makes no matcher call.
            return Some((0, None, false, built));
        };
        let store = &cs.data;
        let restricted = store.kind().head_only();
        if !restricted && store.len() >= PARALLEL_MIN_CANDIDATES && store.scans_all(hint) {
            // The general search pre-checks this walk in parallel: leave it to it.
            return None;
        }
        let mut examined = 0u64;
        let mut hit = None;
        let mut rejected = false;
        let ranker = self.data_ranker();
        let _ = store.for_each_candidate_in(ranker.as_ref(), hint, None, |key, d, _| {
            examined += 1;
            if let Some(r) = self.matcher.get(pattern, &d.value) {
                // A replay's guide sees the complete assignment, as `Dfs::accepted` shows it.
                let accepted = guide.as_mut().is_none_or(|g| g(&[(0, d)]));
                if accepted {
                    hit = Some((key, r));
                    return ControlFlow::Break(());
                }
                rejected = true;
            }
            if restricted {
                // A head-only channel offers only its head.
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        Some((examined, hit, rejected, built))
    }

    /// Fires the COMM of a single-channel consume whose walk ([`find_single`](Self::find_single))
    /// picked `hit` after `examined` matcher calls: the general branch of `consume_in` for a
    /// found assignment, specialised to one position. In a replay, `replayed` holds the call's
    /// hash and the COMM record the log's guide accepted; they are struck from the rig and
    /// logged as such, as the general branch does. `built` says whether the walk built the
    /// channel's exact index, dropped again if the gate refuses (see [`Built`]).
    #[allow(clippy::type_complexity, clippy::too_many_arguments)]
    pub(super) fn fire_single<G: Gate<C, P, A, K>>(
        &self,
        view: &mut View<'_, C, P, A, K>,
        examined: u64,
        hit: SingleHit<M::Output>,
        channels: CallList<C>,
        patterns: CallList<P>,
        continuation: K,
        persist: bool,
        peeks: Peeks,
        admit: G,
        replayed: Replayed<'_, '_, C, P, A, K>,
        built: bool,
    ) -> Result<Option<Comm<C, P, A, K, M::Output>>, ConsumeError<K>> {
        let (key, result) = hit;
        // Validated: `peeks` is empty or `[0]`.
        let peek = !peeks.is_empty();
        let verdict = admit.admit(|| single_firing(view, &channels[0], key, peek, examined));
        if let Err(e) = view.admitted(&channels[0], verdict) {
            // Refused: the index the walk built goes again.
            view.settle_built(&channels, Built::first(built), false);
            return Err(ConsumeError::new(
                ErrorKind::OutOfPhlogiston(e),
                continuation,
            ));
        }
        // Admitted: the index stays, and the channel is listed as changed (a pick that stays
        // does not list it below).
        view.settle_built(&channels, Built::first(built), true);
        let Replayed {
            guard,
            event,
            record,
        } = replayed;
        strike(guard, event, record.as_ref().map(|r| r.1));
        // One shard holds the channel, its log and its dirty list: reach it once.
        let state = view.state_mut(&channels[0]);
        self.record_consume(
            state,
            &channels,
            &patterns,
            &continuation,
            persist,
            &peeks,
            event,
        );
        let mut matches = SmallVec::new();
        // The pick names a live item found under this lock, so it is present; a missing one
        // would be a bug, and is skipped rather than panicking (as `collect_matches` does).
        if let Some((datum, persistent)) = take_single(state, &channels[0], key, peek) {
            matches.push(MatchedDatum {
                position: 0,
                result,
                datum,
                persistent,
            });
        }
        let comm = Comm {
            continuation,
            channels,
            patterns,
            persistent: persist,
            peeks,
            matches,
            reissue: persist,
        };
        // A PriorityQueue datum's produce hash covers its priority (see `LogReuse`).
        let mut reuse = LogReuse::default();
        reuse.note_priority(0, key);
        self.record_comm(state, &comm, record.map(|r| r.0), &reuse);
        Ok(Some(comm))
    }
}

#[cfg(test)]
impl<C, P, A, K, M> Space<C, P, A, K, M>
where
    C: Clone + Hash + Eq,
    P: Clone,
    A: Clone + Hash + Eq,
    K: Clone,
{
    /// The same space with its shortcuts off: every call takes the general route (the
    /// reference the shortcuts are tested against).
    pub(crate) fn without_shortcuts(mut self) -> Self {
        self.shortcuts = false;
        self
    }
}

/// The admission of a single-channel firing: `Self::firing` for one position.
fn single_firing<'s, C, P, A, K>(
    view: &'s View<'_, C, P, A, K>,
    channel: &'s C,
    key: ItemKey,
    peek: bool,
    examined: u64,
) -> Admission<'s, C, P, A, K>
where
    C: Clone + Hash + Eq,
    P: Clone,
    A: Clone + Hash + Eq,
    K: Clone,
{
    let mut freed_data = SmallVec::new();
    if !peek {
        if let Some(d) = view.channel(channel).and_then(|cs| cs.data.get(key)) {
            if !d.persist {
                freed_data.push((channel, d));
            }
        }
    }
    Admission {
        // The fast path never ranks by similarity (see the module docs).
        vector: VectorWork::default(),
        op: OpKind::Consume,
        examined,
        fires: Some(1),
        stores: false,
        freed_data,
        freed_continuation: None,
    }
}

/// Takes (or, when it stays, copies) the picked datum of a single-channel COMM from the
/// channel's shard state, then tidies the channel and drops it when it is left with no data
/// and no join group: `collect_matches` for one position. Returns the datum and whether it
/// was persistent.
fn take_single<C, P, A, K>(
    state: &mut State<C, P, A, K>,
    channel: &C,
    key: ItemKey,
    peek: bool,
) -> Option<(A, bool)>
where
    C: Clone + Hash + Eq,
    P: Clone,
    A: Clone + Hash + Eq,
    K: Clone,
{
    let (taken, tidied) = state.take_or_copy(channel, key, peek, true)?;
    if tidied == Some(true) {
        state.channels.remove(channel);
    }
    Some(taken)
}
