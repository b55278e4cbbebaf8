//! `ContStore`: the continuations waiting on one channel list, kept by its [`ContKind`].

use std::ops::ControlFlow;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::kind::ContKind;
use crate::order::Ranker;
use crate::seq::SeqItems;

/// Positions of a consume that peek, ascending and without repeats.
pub type Peeks = SmallVec<[usize; 2]>;

/// A continuation as stored under its channel list.
///
/// ```
/// use std::sync::Arc;
/// use rhospace_spaces::WaitingContinuation;
/// let w = WaitingContinuation {
///     patterns: Arc::from(vec![1u8]),
///     continuation: "k",
///     persist: false,
///     peeks: Default::default(),
/// };
/// assert_eq!(w.patterns.len(), 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WaitingContinuation<P, K> {
    /// One pattern per channel, in the consume's order.
    pub patterns: Arc<[P]>,
    /// What runs when the patterns are met.
    pub continuation: K,
    /// Whether it stays after it fires.
    pub persist: bool,
    /// Positions that peek.
    pub peeks: Peeks,
}

/// Continuations of one join group (one exact channel list).
/// Invariant: `dirty` is true exactly when the group is listed in its home shard's
/// `State::dirty_joins` since the last hard checkpoint.
#[derive(Clone, Debug)]
pub(crate) struct ContStore<P: Clone, K: Clone> {
    kind: ContKind,
    items: SeqItems<WaitingContinuation<P, K>>,
    pub(crate) dirty: bool,
}

impl<P: Clone + Eq, K: Clone + Eq> ContStore<P, K> {
    pub(crate) fn new(kind: ContKind) -> Self {
        Self {
            kind,
            items: SeqItems::default(),
            dirty: false,
        }
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub(crate) fn kind(&self) -> ContKind {
        self.kind
    }

    /// Whether [`push`](Self::push) would store `w` (false only for a Set holding an equal one).
    pub(crate) fn would_store(&self, w: &WaitingContinuation<P, K>) -> bool {
        self.kind != ContKind::Set || !self.items.iter().any(|(_, x)| x == w)
    }

    /// Stores `w` without [`would_store`](Self::would_store)'s check, for a caller that
    /// rebuilds a store from the continuations of one of the same kind (a Set's are distinct
    /// already). Time: O(1) amortised, where [`push`](Self::push) on a Set store is O(n):
    /// re-pushing a Set of n through it cost O(n²) (20,000 continuations: 0.65 s at a hard
    /// checkpoint).
    pub(crate) fn push_distinct(&mut self, w: WaitingContinuation<P, K>) {
        self.items.push(w);
    }

    /// Stores `w`; for a Set store, returns false (and stores nothing) when an equal one waits.
    /// Time: O(1) amortised; O(n) in the waiting continuations on a Set store (the check).
    pub(crate) fn push(&mut self, w: WaitingContinuation<P, K>) -> bool {
        if !self.would_store(&w) {
            return false;
        }
        self.items.push(w);
        true
    }

    #[inline]
    pub(crate) fn get(&self, seq: u64) -> Option<&WaitingContinuation<P, K>> {
        self.items.get(seq)
    }

    pub(crate) fn take(&mut self, seq: u64) -> Option<WaitingContinuation<P, K>> {
        let w = self.items.take(seq)?;
        if self.items.wants_compaction() {
            self.items.compact();
        }
        Some(w)
    }

    /// Offers the continuations that may fire, in order.
    pub(crate) fn for_each<'s>(
        &'s self,
        mut f: impl FnMut(u64, &'s WaitingContinuation<P, K>) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        match self.kind {
            ContKind::Queue => {
                if let Some((s, w)) = self.items.first() {
                    f(s, w)?;
                }
            }
            ContKind::Stack => {
                if let Some((s, w)) = self.items.last() {
                    f(s, w)?;
                }
            }
            ContKind::Bag | ContKind::Set => self.items.for_each_live(f)?,
        }
        ControlFlow::Continue(())
    }

    /// [`for_each`](Self::for_each) in the space's candidate order: with a `ranker` (a
    /// shuffled order, see [`crate::order`]) a Bag or Set store offers its continuations by
    /// ascending rank instead of oldest first; Queue and Stack, and no ranker, keep their
    /// order.
    ///
    /// Time with a ranker on a Bag or Set: O(n) hashes, plus O(log n) per continuation offered.
    #[inline]
    pub(crate) fn for_each_in<'s>(
        &'s self,
        ranker: Option<&Ranker<WaitingContinuation<P, K>>>,
        f: impl FnMut(u64, &'s WaitingContinuation<P, K>) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        match (ranker, self.kind) {
            (Some(r), ContKind::Bag | ContKind::Set) => {
                let mut items: Vec<(u64, &'s WaitingContinuation<P, K>)> = Vec::new();
                let _ = self.items.for_each_live(|seq, w| {
                    items.push((seq, w));
                    ControlFlow::Continue(())
                });
                r.walk(&items, f)
            }
            _ => self.for_each(f),
        }
    }

    /// All waiting continuations, oldest first.
    pub(crate) fn all(&self) -> impl Iterator<Item = &WaitingContinuation<P, K>> + '_ {
        self.items.iter().map(|(_, w)| w)
    }
}
