//! `ContStore`: the continuations waiting on one channel list, kept by its [`ContKind`].
//!
//! **Set index.** A Set store decides whether a consume's continuation is a duplicate by `Eq`
//! against the waiting ones. From [`SET_INDEX_MIN`] continuations on, it keeps a persistent
//! index from each live continuation's *fingerprint* (a hash of its canonical encoding,
//! [`encode_cont`]) to the numbers of the live continuations with that fingerprint, so the
//! check compares only those (O(1) expected) instead of every waiting one. [`Encode`]'s
//! contract (equal values encode to equal bytes) gives equal continuations one fingerprint;
//! the fingerprint only narrows the candidates, and `Eq` decides, so a collision costs a
//! comparison and never drops a distinct continuation (SPEC §4: exactly, never by a lossy
//! hash). The index is derived state: it changes no result, root or charge, only time.
//!
//! | operation (Set store of n) | without index (n < 16) | with index |
//! |---|---|---|
//! | duplicate check, `push` | O(n) `Eq` | one encoding and hash, O(1) expected `Eq` |
//! | `take` | O(1) amortised | plus one encoding and hash |
//! | compaction (amortised over removals) | O(n) | O(n) encodings |

use std::hash::BuildHasher;
use std::ops::ControlFlow;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::encode::Encode;
use crate::kind::ContKind;
use crate::order::Ranker;
use crate::seq::SeqItems;
use crate::space::hard::encode_cont;
use crate::PMap;

/// A Set store with fewer continuations than this checks duplicates by a scan; from this many
/// on it keeps its index (see the module docs).
pub(crate) const SET_INDEX_MIN: usize = 16;

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
/// Invariants: `dirty` is true exactly when the group is listed in its home shard's
/// `State::dirty_joins` since the last hard checkpoint. `index` is `None` unless the kind is
/// Set; a Set store that has held [`SET_INDEX_MIN`] continuations since it was built keeps
/// it; when present it lists exactly the live continuations, each under its fingerprint.
#[derive(Clone, Debug)]
pub(crate) struct ContStore<P: Clone, K: Clone> {
    kind: ContKind,
    items: SeqItems<WaitingContinuation<P, K>>,
    /// Behind a pointer: most stores are not Sets, and a clone shares it in O(1).
    index: Option<triomphe::Arc<SetIndex>>,
    pub(crate) dirty: bool,
}

/// What [`ContStore::vet`] hands [`ContStore::push_vetted`] for a continuation it found new:
/// the fingerprint it computed (on an indexed Set store), so a store is not checked twice.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Vetted(Option<u64>);

/// A Set store's index: fingerprint to the ascending numbers of the live continuations
/// with it. The hasher is the index's own (seeded per index, so no caller can aim
/// collisions at it), kept with it because every fingerprint in it must come from the same.
#[derive(Clone, Debug, Default)]
struct SetIndex {
    hasher: foldhash::fast::RandomState,
    seqs: PMap<u64, SmallVec<[u64; 2]>>,
}

impl SetIndex {
    /// The fingerprint of a continuation whose canonical encoding is `bytes`.
    #[inline]
    fn fingerprint(&self, bytes: &[u8]) -> u64 {
        self.hasher.hash_one(bytes)
    }

    /// The fingerprint of `w`, encoding it.
    fn fingerprint_of<P: Encode, K: Encode>(&self, w: &WaitingContinuation<P, K>) -> u64 {
        let mut bytes = Vec::new();
        encode_cont(w, &mut bytes);
        self.fingerprint(&bytes)
    }

    /// Lists number `seq` under `fp` (numbers are added in ascending order).
    fn add(&mut self, fp: u64, seq: u64) {
        self.seqs.entry(fp).or_default().push(seq);
    }

    /// Removes number `seq` from under `fp`.
    fn remove(&mut self, fp: u64, seq: u64) {
        if let Some(seqs) = self.seqs.get_mut(&fp) {
            seqs.retain(|q| *q != seq);
            if seqs.is_empty() {
                self.seqs.remove(&fp);
            }
        }
    }
}

impl<P: Clone + Eq, K: Clone + Eq> ContStore<P, K> {
    pub(crate) fn new(kind: ContKind) -> Self {
        Self {
            kind,
            items: SeqItems::default(),
            index: None,
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

    #[inline]
    pub(crate) fn get(&self, seq: u64) -> Option<&WaitingContinuation<P, K>> {
        self.items.get(seq)
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

/// The changes, which keep a Set store's index (it fingerprints continuations by their
/// canonical encoding).
impl<P: Clone + Eq + Encode, K: Clone + Eq + Encode> ContStore<P, K> {
    /// Whether [`push`](Self::push) would store `w`: `None` only for a Set holding an equal
    /// one. Time: O(1); on a Set store, O(n) `Eq` comparisons below [`SET_INDEX_MIN`]
    /// continuations, one encoding of `w` and O(1) expected comparisons from there on. The
    /// fingerprint it computed comes back in the [`Vetted`], for
    /// [`push_vetted`](Self::push_vetted).
    pub(crate) fn vet(&self, w: &WaitingContinuation<P, K>) -> Option<Vetted> {
        if self.kind != ContKind::Set {
            return Some(Vetted::default());
        }
        let fp = self.index.as_ref().map(|index| index.fingerprint_of(w));
        (!self.holds(w, fp)).then_some(Vetted(fp))
    }

    /// Whether this Set store holds a continuation equal to `w` (by `Eq`): among those
    /// listed under `fp`, `w`'s fingerprint, when the store keeps its index; else among all.
    fn holds(&self, w: &WaitingContinuation<P, K>, fp: Option<u64>) -> bool {
        match (&self.index, fp) {
            // The fingerprint narrows; `Eq` decides (a collision lists a different one).
            (Some(index), Some(fp)) => index.seqs.get(&fp).is_some_and(|seqs| {
                seqs.iter()
                    .any(|&seq| self.items.get(seq).is_some_and(|x| x == w))
            }),
            _ => self.items.iter().any(|(_, x)| x == w),
        }
    }

    /// Stores `w`, which [`vet`](Self::vet) found new to this store as it is now (`vetted`).
    /// Time: O(1) amortised.
    pub(crate) fn push_vetted(&mut self, w: WaitingContinuation<P, K>, vetted: Vetted) {
        let seq = self.items.push(w);
        match (&mut self.index, vetted.0) {
            (Some(index), Some(fp)) => crate::state_map::make_mut(index).add(fp, seq),
            _ => self.index_if_due(),
        }
    }

    /// Stores `w` without [`vet`](Self::vet)'s check, for a caller that
    /// rebuilds a store from the continuations of one of the same kind (a Set's are distinct
    /// already); `bytes` is `w`'s canonical encoding ([`encode_cont`]), which the Set index
    /// fingerprints. Time: O(1) amortised (plus a hash of `bytes` on an indexed Set store).
    pub(crate) fn push_distinct(&mut self, w: WaitingContinuation<P, K>, bytes: &[u8]) {
        let seq = self.items.push(w);
        match &mut self.index {
            Some(index) => {
                let index = crate::state_map::make_mut(index);
                let fp = index.fingerprint(bytes);
                index.add(fp, seq);
            }
            None => self.index_if_due(),
        }
    }

    /// Stores `w`; for a Set store, returns false (and stores nothing) when an equal one waits.
    /// Time: O(1) amortised; on a Set store, as [`vet`](Self::vet).
    pub(crate) fn push(&mut self, w: WaitingContinuation<P, K>) -> bool {
        match self.vet(&w) {
            Some(vetted) => {
                self.push_vetted(w, vetted);
                true
            }
            None => false,
        }
    }

    /// Takes continuation `seq` out; compacts the store's numbers when tombstones dominate
    /// (rebuilding a Set index then).
    pub(crate) fn take(&mut self, seq: u64) -> Option<WaitingContinuation<P, K>> {
        let w = self.items.take(seq)?;
        if let Some(index) = &mut self.index {
            let index = crate::state_map::make_mut(index);
            let fp = index.fingerprint_of(&w);
            index.remove(fp, seq);
        }
        if self.items.wants_compaction() {
            self.items.compact();
            if self.index.is_some() {
                self.build_index();
            }
        }
        Some(w)
    }

    /// Builds the index of a Set store that has reached [`SET_INDEX_MIN`] continuations.
    fn index_if_due(&mut self) {
        if self.kind == ContKind::Set && self.items.len() >= SET_INDEX_MIN {
            self.build_index();
        }
    }

    /// (Re)builds the index from the live continuations, under a fresh seed.
    fn build_index(&mut self) {
        let mut index = SetIndex::default();
        let mut bytes = Vec::new();
        for (seq, w) in self.items.iter() {
            bytes.clear();
            encode_cont(w, &mut bytes);
            let fp = index.fingerprint(&bytes);
            index.add(fp, seq);
        }
        self.index = Some(triomphe::Arc::new(index));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::mix;

    type W = WaitingContinuation<u64, u64>;

    /// A continuation; `k` and `k + 97` share patterns but differ in continuation.
    fn w(k: u64) -> W {
        WaitingContinuation {
            patterns: Arc::from(vec![k % 97]),
            continuation: k,
            persist: k.is_multiple_of(3),
            peeks: Peeks::new(),
        }
    }

    /// The index lists exactly the live continuations, each under its fingerprint; a Set
    /// store without one holds fewer than `SET_INDEX_MIN`.
    fn assert_in_step(s: &ContStore<u64, u64>) {
        let Some(index) = &s.index else {
            assert!(s.kind != ContKind::Set || s.items.len() < SET_INDEX_MIN);
            return;
        };
        assert_eq!(s.kind, ContKind::Set);
        let mut listed: Vec<(u64, u64)> = index
            .seqs
            .iter()
            .flat_map(|(fp, seqs)| seqs.iter().map(move |seq| (*fp, *seq)))
            .collect();
        let mut live: Vec<(u64, u64)> = s
            .items
            .iter()
            .map(|(seq, w)| (index.fingerprint_of(w), seq))
            .collect();
        listed.sort_unstable();
        live.sort_unstable();
        assert_eq!(listed, live);
    }

    /// A Set store against a `Vec` of its live continuations, through growth past the index
    /// threshold, removals from the middle (compaction renumbers and rebuilds the index), and
    /// a clone taken midway (a soft checkpoint's copy) that later changes must not reach.
    #[test]
    fn a_set_store_refuses_exactly_the_duplicates_as_it_grows_shrinks_and_compacts() {
        let mut s: ContStore<u64, u64> = ContStore::new(ContKind::Set);
        let mut model: Vec<(u64, W)> = Vec::new();
        let mut snapshot = None;
        let mut rng = 7;
        let mut compactions = 0;
        for step in 0..6_000 {
            let r = mix(&mut rng);
            // Grow for a while, then mostly shrink, then grow again.
            let grow = match step {
                0..2_000 => r % 10 < 8,
                2_000..4_000 => r % 10 < 3,
                _ => r % 10 < 6,
            };
            if grow || model.is_empty() {
                let c = w(mix(&mut rng) % 400);
                let fresh = !model.iter().any(|(_, x)| *x == c);
                assert_eq!(s.vet(&c).is_some(), fresh);
                let next = s.items.next_seq();
                assert_eq!(s.push(c.clone()), fresh);
                if fresh {
                    model.push((next, c));
                }
            } else {
                let (seq, c) = model.remove((mix(&mut rng) % model.len() as u64) as usize);
                assert_eq!(s.take(seq), Some(c));
                let numbers: Vec<u64> = s.items.iter().map(|(q, _)| q).collect();
                if !numbers.iter().eq(model.iter().map(|(q, _)| q)) {
                    // Compacted: renumbered, and the model follows the new numbers.
                    compactions += 1;
                    for ((q, _), n) in model.iter_mut().zip(numbers) {
                        *q = n;
                    }
                }
            }
            assert_in_step(&s);
            let waiting: Vec<&W> = s.all().collect();
            assert!(waiting.iter().copied().eq(model.iter().map(|(_, x)| x)));
            if step == 3_000 {
                snapshot = Some((s.clone(), model.clone()));
            }
        }
        assert!(compactions > 0, "the sequence never compacted the store");
        let (snap, snap_model) = snapshot.expect("taken at step 3,000");
        assert_in_step(&snap);
        for k in 0..400 {
            let c = w(k);
            assert_eq!(
                snap.vet(&c).is_some(),
                !snap_model.iter().any(|(_, x)| *x == c)
            );
        }
    }

    /// Two continuations under one fingerprint (a collision) are told apart by `Eq`: the
    /// fingerprint only narrows which waiting ones are compared.
    #[test]
    fn a_fingerprint_collision_is_decided_by_eq() {
        let mut s: ContStore<u64, u64> = ContStore::new(ContKind::Set);
        for k in 0..20 {
            assert!(s.push(w(k)));
        }
        let new = w(1_000);
        let index = crate::state_map::make_mut(s.index.as_mut().expect("20 waiting: indexed"));
        let fp = index.fingerprint_of(&new);
        // Continuation 3 listed under the new one's fingerprint, as a collision would list it.
        index.add(fp, 3);
        assert!(s.vet(&new).is_some());
        assert!(s.push(new.clone()));
        assert!(s.vet(&new).is_none());
        assert!(!s.push(new));
        assert!(!s.push(w(3)));
    }

    /// Only a Set store keeps an index, and a Bag keeps equal continuations.
    #[test]
    fn other_kinds_keep_no_index_and_store_every_continuation() {
        for kind in [ContKind::Bag, ContKind::Queue, ContKind::Stack] {
            let mut s: ContStore<u64, u64> = ContStore::new(kind);
            for k in 0..40 {
                assert!(s.push(w(k % 10)));
                assert!(s.vet(&w(k % 10)).is_some());
            }
            assert!(s.index.is_none());
            assert_eq!(s.all().count(), 40);
        }
    }
}
