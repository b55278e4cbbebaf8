//! Batched produce and consume: the items run one by one **in input order**, and a run of
//! consecutive items whose shards are already locked shares one acquisition of those locks.
//!
//! **Algorithm (lock reuse).** The batch keeps the lock set of the item it last ran. The next
//! item reuses it when it covers every shard that item reads (for a produce: its channel's
//! shard and those of the channel's join groups and installed continuations, read under the
//! channel's own lock; for a consume: the shards of its channels). Otherwise the held locks
//! are released and the item's own are taken, in ascending order, as the single call takes
//! them (never one lock while a higher one is held: no deadlock). No item is moved: reusing
//! locks changes when they are taken, never the order in which the items act.
//!
//! **Per item, the single call's code.** A produce first tries [`Space::produce`]'s fast path
//! under its channel's shard alone (nothing waits on the channel: the datum is stored with one
//! map walk); only when something may wait does it turn the held lock into the full set the
//! general path needs. Before this, every batched produce took the general path: a batch of
//! 10,000 produces on one channel ran ~2.8x slower than calling `produce` on each (callgrind:
//! ~1,690 instructions per item, whole program, against ~490), and now runs level with it (see the
//! `batch_operations` benchmark group).
//!
//! **Guarantees.**
//! - *Determinism (SPEC §3)*: a batch gives exactly the COMMs, errors and state of calling
//!   the single operation on each item in input order ([`Space::produce`] for a produce item,
//!   [`Space::consume`] for a request), on every shard count and thread count. The shard
//!   routing decides only how many lock acquisitions the batch makes.
//! - *Linearizability (SPEC §9)*: a batch is **not** one atomic operation: each item is its
//!   own linearizable operation, taking effect under its locks, and another thread's call may
//!   fall between two items (between two that share a lock hold only if it touches none of the
//!   held shards).
//! - Results come back in input order; an invalid item fails alone and changes nothing.
//! - The items are drawn from the caller's iterator before the first one runs, never under
//!   the batch's locks: an iterator that reads or calls the space does not deadlock (it sees
//!   the space as it was before the batch).
//!
//! **Limits.** Items on channels of different shards alternate in most batches, so the saving
//! is only as large as the runs of consecutive items on the same shards (a batch on a space of
//! one shard takes its lock once). A caller who wants one acquisition per shard may order the
//! items by [`Space::shard_of`] first, choosing that order, and with it the COMMs of items that
//! meet each other, knowing that it depends on the shard count. While a batch holds a run's
//! locks, other threads wait on those shards for the whole run.

use std::hash::Hash;

use rhospace_matchers::Match;
use smallvec::SmallVec;

use super::{validate, FastProduce, Shard, Space, View};
use crate::admission::Open;
use crate::call_list::CallList;
use crate::comm::Comm;
use crate::conts::Peeks;
use crate::encode::Encode;
use crate::error::{ConsumeError, ProduceError};
use crate::shard::{LockSet, Router};
use crate::sync::MutexGuard;

/// The locks a batch of produces holds between items: one shard's (the fast path's), or the
/// set the general path took.
enum Held<'s, C: Clone + Hash + Eq, P: Clone, A: Clone + Hash + Eq, K: Clone> {
    Home(usize, MutexGuard<'s, Shard<C, P, A, K>>),
    View(View<'s, C, P, A, K>),
}

impl<'s, C: Clone + Hash + Eq, P: Clone, A: Clone + Hash + Eq, K: Clone> Held<'s, C, P, A, K> {
    /// Whether shard `index` is held.
    fn holds(&self, index: usize) -> bool {
        match self {
            Self::Home(i, _) => *i == index,
            Self::View(view) => view.locks.holds(index),
        }
    }

    /// Shard `index`, which must be held.
    fn shard_mut(&mut self, index: usize) -> &mut Shard<C, P, A, K> {
        match self {
            Self::Home(i, guard) => {
                debug_assert_eq!(*i, index, "shard not locked");
                guard
            }
            Self::View(view) => view.locks.get_mut(index),
        }
    }

    /// The held locks as a [`View`].
    fn into_view(self, router: Router) -> View<'s, C, P, A, K> {
        match self {
            Self::Home(i, guard) => View {
                router,
                locks: LockSet::single(i, guard),
            },
            Self::View(view) => view,
        }
    }
}

/// One consume of a [`Space::consume_batch`]: the arguments of [`Space::consume`].
///
/// ```
/// use rhospace_spaces::ConsumeRequest;
/// let r: ConsumeRequest<u8, u8, &str> = ConsumeRequest::new([1, 2], [0, 0], "k");
/// assert!(!r.persist && r.peeks.is_empty());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumeRequest<C, P, K> {
    /// The channels to join.
    pub channels: CallList<C>,
    /// One pattern per channel.
    pub patterns: CallList<P>,
    /// The continuation.
    pub continuation: K,
    /// Whether the continuation persists.
    pub persist: bool,
    /// Positions that peek.
    pub peeks: Peeks,
}

impl<C, P, K> ConsumeRequest<C, P, K> {
    /// A non-persistent consume without peeks.
    ///
    /// ```
    /// use rhospace_spaces::ConsumeRequest;
    /// let r: ConsumeRequest<u8, u8, u8> = ConsumeRequest::new([1], [1], 0);
    /// assert_eq!(&*r.channels, &[1]);
    /// ```
    pub fn new(
        channels: impl Into<CallList<C>>,
        patterns: impl Into<CallList<P>>,
        continuation: K,
    ) -> Self {
        Self {
            channels: channels.into(),
            patterns: patterns.into(),
            continuation,
            persist: false,
            peeks: Peeks::new(),
        }
    }
}

/// What one produce of a batch gave.
pub type ProduceOutcome<C, P, A, K, R> = Result<Option<Comm<C, P, A, K, R>>, ProduceError<A>>;

/// What one consume of a batch gave.
pub type ConsumeOutcome<C, P, A, K, R> = Result<Option<Comm<C, P, A, K, R>>, ConsumeError<K>>;

impl<C, P, A, K, M> Space<C, P, A, K, M>
where
    C: Clone + Hash + Eq + Encode,
    P: Clone + Eq + Encode + Sync,
    A: Clone + Hash + Eq + Encode + Sync,
    K: Clone + Eq + Encode,
    M: Match<P, A>,
{
    /// Produces every `(channel, datum, persist)` item (priority 0) in input order: the
    /// results, COMMs and end state are exactly those of calling [`produce`](Self::produce) on
    /// each item in turn, on any shard count and thread count. Consecutive items whose shards
    /// (the channel's, and those of its join groups and installed continuations) are all
    /// already locked by the item before run under the same acquisition. Results are in input
    /// order. Each item is its own operation: another thread's calls may fall between two items.
    /// See the module docs of `batch`.
    ///
    /// Time: O(n) plus each item as [`produce`](Self::produce), with one lock acquisition per
    /// run of consecutive items that the held locks cover instead of one per item.
    ///
    /// ```
    /// use rhospace_spaces::{Space, SpaceConfig};
    /// use rhospace_matchers::ExactMatch;
    /// let s: Space<u32, u32, u32, u32, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    /// s.consume([5], [50], 9, false, &[]).unwrap();
    /// let out = s.produce_batch((0..10).map(|i| (i, i * 10, false)));
    /// assert_eq!(out.len(), 10);
    /// assert!(out[5].as_ref().unwrap().is_some()); // fired the waiting consume
    /// assert_eq!(s.data(&3)[0].value, 30);
    /// // Input order decides which of two items meets a waiting continuation first.
    /// s.consume([7], [1], 0, false, &[]).unwrap();
    /// let out = s.produce_batch([(7, 1, false), (7, 1, false)]);
    /// assert!(out[0].as_ref().unwrap().is_some() && out[1].as_ref().unwrap().is_none());
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn produce_batch(
        &self,
        items: impl IntoIterator<Item = (C, A, bool)>,
    ) -> Vec<ProduceOutcome<C, P, A, K, M::Output>> {
        // Drawn before the first lock is taken: the caller's iterator never runs under the
        // batch's locks (one that reads or calls the space would wait on them forever). A
        // `Vec` is taken over as it is, without copying.
        let items: Vec<(C, A, bool)> = items.into_iter().collect();
        let mut out = Vec::with_capacity(items.len());
        // The locks the previous item ran under, kept while they cover the next one.
        let mut held: Option<Held<'_, C, P, A, K>> = None;
        let mut need = SmallVec::new();
        for (channel, datum, persist) in items {
            // VectorDB: the embedding is checked before anything else, as `produce` does.
            let kind = self.config.kind_of(&channel);
            if let Err(e) = kind.check_embedding(self.matcher.embedding(&datum)) {
                out.push(Err(ProduceError::new(e, datum)));
                continue;
            }
            // The single call's fast path first, under the channel's own shard.
            let home = self.router.shard_of(&channel);
            let mut locks = match held.take() {
                Some(locks) if locks.holds(home) => locks,
                old => {
                    // Release before locking another shard (the lock order).
                    drop(old);
                    Held::Home(home, self.shards[home].0.lock_hot())
                }
            };
            let shard = locks.shard_mut(home);
            let (channel, datum, admit) =
                match self.produce_fast(shard, kind, channel, datum, persist, 0, Open) {
                    FastProduce::Stored => {
                        out.push(Ok(None));
                        held = Some(locks);
                        continue;
                    }
                    FastProduce::Refused(e) => {
                        out.push(Err(e));
                        held = Some(locks);
                        continue;
                    }
                    FastProduce::Slow(channel, datum, admit) => (channel, datum, admit),
                };
            let view = locks.into_view(self.router);
            let mut view = self.hold_for_produce(view, home, &channel, &mut need);
            out.push(self.produce_in(&mut view, channel, datum, persist, 0, admit));
            held = Some(Held::View(view));
        }
        out
    }

    /// Runs every consume in input order: the results, COMMs and end state are exactly those
    /// of calling [`consume`](Self::consume) on each request in turn, on any shard count and
    /// thread count. Consecutive requests whose channels' shards are all already locked by the
    /// request before run under the same acquisition. Invalid requests fail as
    /// [`consume`](Self::consume) would, changing nothing. Results are in input order. Each
    /// request is its own operation: another thread's calls may fall between two requests.
    /// See the module docs of `batch`.
    ///
    /// Time: O(n · arity) to route the channels, plus each request as
    /// [`consume`](Self::consume), with one lock acquisition per run of consecutive requests
    /// that the held locks cover instead of one per request.
    ///
    /// ```
    /// use rhospace_spaces::{ConsumeRequest, Space, SpaceConfig};
    /// use rhospace_matchers::ExactMatch;
    /// let s: Space<u32, u32, u32, u32, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    /// s.produce(1, 10, false).unwrap();
    /// let out = s.consume_batch(vec![
    ///     ConsumeRequest::new([1], [10], 0),
    ///     ConsumeRequest::new([2], [20], 1),
    ///     ConsumeRequest::new(Vec::<u32>::new(), Vec::<u32>::new(), 2),
    ///     ConsumeRequest::new([1], [10], 3), // the datum went to request 0
    /// ]);
    /// assert!(out[0].as_ref().unwrap().is_some());
    /// assert!(out[1].as_ref().unwrap().is_none()); // stored, waiting
    /// assert!(out[2].is_err());
    /// assert!(out[3].as_ref().unwrap().is_none());
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn consume_batch(
        &self,
        requests: impl IntoIterator<Item = ConsumeRequest<C, P, K>>,
    ) -> Vec<ConsumeOutcome<C, P, A, K, M::Output>> {
        // Drawn before the first lock is taken, as in `produce_batch`.
        let requests: Vec<ConsumeRequest<C, P, K>> = requests.into_iter().collect();
        let mut out = Vec::with_capacity(requests.len());
        // The locks the previous request ran under, kept while they cover the next one.
        let mut held: Option<View<'_, C, P, A, K>> = None;
        let mut shards: SmallVec<[usize; 8]> = SmallVec::new();
        for r in requests {
            let peeks = match validate(&r.channels, &r.patterns, &r.peeks) {
                Ok(peeks) => peeks,
                Err(kind) => {
                    out.push(Err(ConsumeError::new(kind, r.continuation)));
                    continue;
                }
            };
            shards.clear();
            shards.extend(r.channels.iter().map(|c| self.router.shard_of(c)));
            shards.sort_unstable();
            shards.dedup();
            let mut view = match held.take() {
                Some(view) if shards.iter().all(|&i| view.locks.holds(i)) => view,
                old => {
                    // Release before locking again (the lock order).
                    drop(old);
                    self.view_of(&shards)
                }
            };
            out.push(self.consume_in(
                &mut view,
                r.channels,
                r.patterns,
                r.continuation,
                r.persist,
                peeks,
                Open,
            ));
            held = Some(view);
        }
        out
    }

    /// The locks for a produce on `channel`, whose shard `home` `held` (the previous item's
    /// locks, or the home shard alone) holds: `held` when it covers every shard the produce
    /// reads ([`produce_shards`](Self::produce_shards), read under the channel's own lock),
    /// else `held` released and the produce's own locks taken as [`produce`](Self::produce)
    /// takes them. `need` is scratch space.
    fn hold_for_produce<'s>(
        &'s self,
        held: View<'s, C, P, A, K>,
        home: usize,
        channel: &C,
        need: &mut SmallVec<[usize; 8]>,
    ) -> View<'s, C, P, A, K> {
        self.produce_shards(held.locks.get(home), channel, need);
        if need.iter().all(|&i| held.locks.holds(i)) {
            return held;
        }
        // Join groups or installed continuations reach shards not held: release everything
        // and take the produce's whole set, ascending.
        drop(held);
        self.lock_for_produce(channel, std::mem::take(need))
    }

    /// Locks `shards` (sorted, no duplicates).
    fn view_of(&self, shards: &[usize]) -> View<'_, C, P, A, K> {
        View {
            router: self.router,
            locks: LockSet::lock(&self.shards, shards),
        }
    }
}
