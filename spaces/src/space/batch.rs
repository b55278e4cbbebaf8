//! Batched produce and consume: work grouped by the shards it locks, so a run of operations on
//! one shard takes that shard's lock once.
//!
//! A batch is **not** one atomic operation: each item is its own linearizable operation, and
//! the items run in a fixed order — grouped by lock set (ascending), input order within a
//! group. That order is a function of the input alone (shard routing is fixed), so a batch is
//! deterministic: it gives exactly what calling the single operations in that order gives.
//! Results come back in input order.

use std::hash::Hash;

use rhospace_matchers::Match;
use smallvec::SmallVec;

use super::{validate, Space, View};
use crate::admission::Open;
use crate::call_list::CallList;
use crate::comm::Comm;
use crate::conts::Peeks;
use crate::encode::Encode;
use crate::error::{ConsumeError, ProduceError};
use crate::shard::LockSet;

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
    /// Produces every `(channel, datum, persist)` item (priority 0), grouped by shard: the items
    /// of one shard run in input order under one acquisition of its lock, shards in ascending
    /// order. An item whose channel has join groups reaching other shards runs on its own, as
    /// [`produce`](Self::produce) would. Results are in input order. See the module docs of
    /// `batch` for the ordering guarantee.
    ///
    /// Time: O(n log n) to group, then each item as [`produce`](Self::produce), with one lock
    /// acquisition per shard run instead of one per item.
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
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn produce_batch(
        &self,
        items: impl IntoIterator<Item = (C, A, bool)>,
    ) -> Vec<ProduceOutcome<C, P, A, K, M::Output>> {
        let mut work: Vec<(usize, usize, C, A, bool)> = items
            .into_iter()
            .enumerate()
            .map(|(i, (c, a, p))| (self.router.shard_of(&c), i, c, a, p))
            .collect();
        work.sort_unstable_by_key(|w| (w.0, w.1));
        let mut out = Vec::with_capacity(work.len());
        let mut held: Option<(usize, View<'_, C, P, A, K>)> = None;
        let mut need = SmallVec::new();
        for (shard, i, channel, datum, persist) in work {
            if held.as_ref().is_none_or(|(s, _)| *s != shard) {
                // Release before locking another shard (the lock order).
                drop(held.take());
                held = Some((shard, self.view_of(&[shard])));
            }
            let fits = match held.as_mut() {
                Some((_, view)) => {
                    self.produce_shards(view.locks.get(shard), &channel, &mut need);
                    need.len() == 1
                }
                None => false,
            };
            let kind = self.config.kind_of(&channel);
            let r = match held.as_mut() {
                Some((_, view)) if fits => {
                    match kind.check_embedding(self.matcher.embedding(&datum)) {
                        Ok(()) => self.produce_in(view, channel, datum, persist, 0, Open),
                        Err(e) => Err(ProduceError::new(e, datum)),
                    }
                }
                _ => {
                    drop(held.take());
                    self.produce(channel, datum, persist)
                }
            };
            out.push((i, r));
        }
        drop(held);
        out.sort_unstable_by_key(|(i, _)| *i);
        out.into_iter().map(|(_, r)| r).collect()
    }

    /// Runs every consume, grouped by the set of shards it locks: the requests of one lock set
    /// run in input order under one acquisition of those locks, lock sets in ascending order.
    /// Invalid requests fail as [`consume`](Self::consume) would, changing nothing. Results are
    /// in input order.
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
    /// ]);
    /// assert!(out[0].as_ref().unwrap().is_some());
    /// assert!(out[1].as_ref().unwrap().is_none()); // stored, waiting
    /// assert!(out[2].is_err());
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn consume_batch(
        &self,
        requests: impl IntoIterator<Item = ConsumeRequest<C, P, K>>,
    ) -> Vec<ConsumeOutcome<C, P, A, K, M::Output>> {
        let mut out = Vec::new();
        let mut work = Vec::new();
        for (i, r) in requests.into_iter().enumerate() {
            match validate(&r.channels, &r.patterns, &r.peeks) {
                Ok(peeks) => {
                    let mut shards: SmallVec<[usize; 4]> =
                        r.channels.iter().map(|c| self.router.shard_of(c)).collect();
                    shards.sort_unstable();
                    shards.dedup();
                    work.push((shards, i, r, peeks));
                }
                Err(kind) => out.push((i, Err(ConsumeError::new(kind, r.continuation)))),
            }
        }
        work.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        let mut held: Option<(SmallVec<[usize; 4]>, View<'_, C, P, A, K>)> = None;
        for (shards, i, r, peeks) in work {
            if held.as_ref().is_none_or(|(s, _)| *s != shards) {
                drop(held.take());
                let view = self.view_of(&shards);
                held = Some((shards, view));
            }
            if let Some((_, view)) = held.as_mut() {
                let res = self.consume_in(
                    view,
                    r.channels,
                    r.patterns,
                    r.continuation,
                    r.persist,
                    peeks,
                    Open,
                );
                out.push((i, res));
            }
        }
        drop(held);
        out.sort_unstable_by_key(|(i, _)| *i);
        out.into_iter().map(|(_, r)| r).collect()
    }

    /// Locks `shards` (sorted, no duplicates).
    fn view_of(&self, shards: &[usize]) -> View<'_, C, P, A, K> {
        View {
            router: self.router,
            locks: LockSet::lock(&self.shards, shards),
        }
    }
}
