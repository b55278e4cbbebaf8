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
//!
//! **Key index.** A produce walks the continuations waiting on its channel until one accepts
//! its datum. A Bag or Set store of [`KEY_INDEX_MIN`] or more continuations also keeps, from
//! each one-channel continuation's *exact key* ([`Match::exact_key`]: the one value its
//! pattern accepts) to the numbers of the live continuations with it, a persistent index,
//! and counts the continuations with no exact key (`general`). While `general` is zero, a
//! produce's walk ([`ContStore::for_each_for`]) offers only the continuations whose key is
//! the datum, in the order the full walk would (oldest first, or by rank), instead of every
//! waiting one: the rest cannot accept it (the contract of `exact_key`). So a channel where
//! many consumers wait each for its own value (replies told apart by a request number) costs
//! a produce O(log n), not O(n).
//!
//! Whether a walk goes by key is a function of the store's contents (its kind, its number of
//! continuations, and whether all of them have exact keys), never of its history: a space
//! that loads the same state from a hard checkpoint walks the same way. That matters because
//! the walk decides how many continuations a produce examines, which is charged (SPEC §8).
//! The index is keyed by a fingerprint of the key (a hash under the index's own seed); a
//! listed continuation is offered only if its key equals the datum, so a fingerprint collision
//! costs a comparison and never an offer.
//!
//! | operation (Bag or Set store of n, all with exact keys) | n < 16 | with the key index |
//! |---|---|---|
//! | a produce's walk | O(n) matcher calls | one hash, O(log n), then the continuations with the datum's key until one fires |
//! | `push`, `take` | O(1) amortised | plus one `exact_key`, one hash and O(log n) in the index |
//! | first `push` or `take` after a clone | O(1) | plus O(log n): the index's path is copied |
//! | reaching 16 continuations, compaction | — | O(n log n) to build |
//!
//! The index is kept for every Bag or Set store of 16 or more, also for one that cannot walk by
//! key now (a continuation without an exact key, or a group of several channels, whose
//! continuations all count as without one): its upkeep is the O(log n) above.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::ops::ControlFlow;
use std::sync::Arc;

use rhospace_matchers::Match;
use smallvec::SmallVec;

use crate::encode::Encode;
use crate::kind::ContKind;
use crate::log::EncodedCall;
use crate::order::Ranker;
use crate::seq::SeqItems;
use crate::space::hard::encode_cont;
use crate::PMap;

/// A Set store with fewer continuations than this checks duplicates by a scan; from this many
/// on it keeps its index (see the module docs).
pub(crate) const SET_INDEX_MIN: usize = 16;

/// A Bag or Set store with fewer continuations than this is walked whole by a produce; from
/// this many on it keeps its key index (see the module docs).
pub(crate) const KEY_INDEX_MIN: usize = 16;

/// Positions of a consume that peek, ascending and without repeats.
pub type Peeks = SmallVec<[usize; 2]>;

/// A continuation as stored under its channel list.
///
/// ```
/// use std::sync::Arc;
/// use rhospace_spaces::WaitingContinuation;
/// let w = WaitingContinuation::new(Arc::from(vec![1u8]), "k", false, Default::default());
/// assert_eq!(w.patterns.len(), 1);
/// assert_eq!(w, WaitingContinuation::new(Arc::from(vec![1u8]), "k", false, Default::default()));
/// ```
///
/// Equality, hashing and `Debug` cover the four public fields only. A persistent continuation
/// waiting in a space that logs events also keeps its call's log encoding (a private field),
/// made once when it is stored, installed or loaded from history, so that each COMM it fires
/// copies the encoding instead of encoding its patterns and continuation again: a contract
/// (a persistent continuation) fires on every call, and its body may be large. That costs
/// the encoding's bytes of memory per persistent continuation; one that is not persistent
/// fires once and keeps none.
#[derive(Clone)]
pub struct WaitingContinuation<P, K> {
    /// One pattern per channel, in the consume's order.
    pub patterns: Arc<[P]>,
    /// What runs when the patterns are met.
    pub continuation: K,
    /// Whether it stays after it fires.
    pub persist: bool,
    /// Positions that peek.
    pub peeks: Peeks,
    /// Invariant: `None`, or the log encoding of the call of this continuation under the
    /// channel list it waits on (see [`EncodedCall`]). Set by the space only.
    call: Option<EncodedCall>,
}

impl<P, K> WaitingContinuation<P, K> {
    /// A continuation with these parts.
    ///
    /// ```
    /// use rhospace_spaces::WaitingContinuation;
    /// let w = WaitingContinuation::new(vec![1u8].into(), 'k', true, Default::default());
    /// assert!(w.persist);
    /// ```
    pub fn new(patterns: Arc<[P]>, continuation: K, persist: bool, peeks: Peeks) -> Self {
        Self {
            patterns,
            continuation,
            persist,
            peeks,
            call: None,
        }
    }

    /// The log encoding of its call, if the space keeps one (see the type's docs).
    #[inline]
    pub(crate) fn call(&self) -> Option<&EncodedCall> {
        self.call.as_ref()
    }

    /// Keeps `call`, the log encoding of this continuation's call under the channel list it
    /// waits on.
    #[inline]
    pub(crate) fn keep_call(&mut self, call: EncodedCall) {
        self.call = Some(call);
    }

    /// Takes the kept encoding out.
    #[inline]
    pub(crate) fn take_call(&mut self) -> Option<EncodedCall> {
        self.call.take()
    }
}

impl<P: PartialEq, K: PartialEq> PartialEq for WaitingContinuation<P, K> {
    fn eq(&self, other: &Self) -> bool {
        self.patterns == other.patterns
            && self.continuation == other.continuation
            && self.persist == other.persist
            && self.peeks == other.peeks
    }
}

impl<P: Eq, K: Eq> Eq for WaitingContinuation<P, K> {}

impl<P: Hash, K: Hash> Hash for WaitingContinuation<P, K> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.patterns.hash(state);
        self.continuation.hash(state);
        self.persist.hash(state);
        self.peeks.hash(state);
    }
}

impl<P: fmt::Debug, K: fmt::Debug> fmt::Debug for WaitingContinuation<P, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitingContinuation")
            .field("patterns", &self.patterns)
            .field("continuation", &self.continuation)
            .field("persist", &self.persist)
            .field("peeks", &self.peeks)
            .finish()
    }
}

/// Continuations of one join group (one exact channel list).
/// Invariants: `dirty` is true exactly when the group is listed in its home shard's
/// `State::dirty_joins` since the last hard checkpoint. `index` is `None` unless the kind is
/// Set; a Set store that has held [`SET_INDEX_MIN`] continuations since it was built keeps
/// it; when present it lists exactly the live continuations, each under its fingerprint.
/// `keys` is present exactly when the kind is Bag or Set and at least [`KEY_INDEX_MIN`]
/// continuations are live; it then lists each live continuation with an exact key (under the
/// space's matcher) under that key's fingerprint, in ascending number, and counts the others
/// in `general`.
#[derive(Clone, Debug)]
pub(crate) struct ContStore<P: Clone, K: Clone> {
    kind: ContKind,
    items: SeqItems<WaitingContinuation<P, K>>,
    /// Behind a pointer: most stores are not Sets, and a clone shares it in O(1).
    index: Option<triomphe::Arc<SetIndex>>,
    /// Behind a pointer: most stores are small, and a clone shares it in O(1).
    keys: Option<triomphe::Arc<KeyIndex>>,
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

    /// The fingerprint of `w`, encoded into this thread's scratch buffer (no allocation: a
    /// duplicate check and a take on an indexed store each fingerprint one).
    fn fingerprint_of<P: Encode, K: Encode>(&self, w: &WaitingContinuation<P, K>) -> u64 {
        crate::log::with_scratch(|bytes| {
            encode_cont(w, bytes);
            self.fingerprint(bytes)
        })
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

/// A Bag or Set store's key index (see the module docs): a persistent ordered set of
/// `(fingerprint of the exact key, number)` for the live continuations with an exact key, so
/// those with one key are a range in ascending number; and how many live ones have no exact
/// key. One ordered set rather than a list per key: taking one of `m` continuations that share
/// a key (many consumers waiting for the same value) is O(log n), not O(m), and so is the
/// first write after a clone. The hasher is the index's own (seeded per index, so no caller
/// can aim collisions at it).
#[derive(Clone, Debug, Default)]
struct KeyIndex {
    hasher: foldhash::fast::RandomState,
    keyed: imbl::OrdSet<(u64, u64)>,
    general: usize,
}

impl KeyIndex {
    /// Lists number `seq`, whose exact key is `key`.
    fn add<A: Hash + ?Sized>(&mut self, key: Option<&A>, seq: u64) {
        match key {
            Some(k) => {
                self.keyed.insert((self.hasher.hash_one(k), seq));
            }
            None => self.general += 1,
        }
    }

    /// Removes number `seq`, whose exact key is `key`.
    fn remove<A: Hash + ?Sized>(&mut self, key: Option<&A>, seq: u64) {
        match key {
            Some(k) => {
                self.keyed.remove(&(self.hasher.hash_one(k), seq));
            }
            None => self.general = self.general.saturating_sub(1),
        }
    }

    /// The numbers listed under `key`'s fingerprint, ascending.
    fn listed<A: Hash + ?Sized>(&self, key: &A) -> impl Iterator<Item = u64> + '_ {
        let fp = self.hasher.hash_one(key);
        self.keyed
            .range((fp, 0)..=(fp, u64::MAX))
            .map(|&(_, seq)| seq)
    }
}

/// The exact key of `w`: its one pattern's, when it has one pattern and the matcher gives
/// that pattern an exact key.
#[inline]
fn key_of<'w, P, A, K, M: Match<P, A>>(
    matcher: &M,
    w: &'w WaitingContinuation<P, K>,
) -> Option<&'w A> {
    match &w.patterns[..] {
        [p] => matcher.exact_key(p),
        _ => None,
    }
}

impl<P: Clone + Eq, K: Clone + Eq> ContStore<P, K> {
    pub(crate) fn new(kind: ContKind) -> Self {
        Self {
            kind,
            items: SeqItems::default(),
            index: None,
            keys: None,
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

    /// Whether a produce's walk goes by key (see the module docs): the store keeps its key
    /// index and every continuation in it has an exact key.
    #[cfg(test)]
    pub(crate) fn walks_by_key(&self) -> bool {
        self.keys.as_ref().is_some_and(|k| k.general == 0)
    }

    /// The continuations a produce of `datum` offers, in the order of
    /// [`for_each_in`](Self::for_each_in): that walk itself, unless the store
    /// walks by key (see the module docs); then only those whose exact key is `datum` (the
    /// others cannot accept it), in the same relative order.
    ///
    /// Time by key: one hash and O(log n) to find the datum's fingerprint, plus an
    /// `exact_key` and a comparison per continuation listed under it that is offered (with a
    /// ranker, all of them are read and ranked first).
    pub(crate) fn for_each_for<'s, A, M>(
        &'s self,
        ranker: Option<&Ranker<WaitingContinuation<P, K>>>,
        matcher: &M,
        datum: &A,
        mut f: impl FnMut(u64, &'s WaitingContinuation<P, K>) -> ControlFlow<()>,
    ) -> ControlFlow<()>
    where
        A: Hash + Eq,
        M: Match<P, A>,
    {
        let Some(keys) = self.keys.as_deref().filter(|k| k.general == 0) else {
            return self.for_each_in(ranker, f);
        };
        // A fingerprint narrows; the key decides (a collision lists another key's numbers).
        let listed = keys.listed(datum).filter_map(|seq| {
            let w = self.items.get(seq)?;
            (key_of(matcher, w) == Some(datum)).then_some((seq, w))
        });
        match ranker {
            // Equal continuations share a key, so each is ranked among all its equals, as
            // the full walk ranks it.
            Some(r) => r.walk(&listed.collect::<Vec<_>>(), f),
            None => {
                for (seq, w) in listed {
                    f(seq, w)?;
                }
                ControlFlow::Continue(())
            }
        }
    }

    /// Keeps the key index in step with continuation `seq`, just stored: lists it, or builds
    /// the index when the store has just reached [`KEY_INDEX_MIN`].
    fn keys_after_push<A: Hash, M: Match<P, A>>(&mut self, seq: u64, matcher: &M) {
        match &mut self.keys {
            Some(keys) => {
                let key = self.items.get(seq).and_then(|w| key_of(matcher, w));
                crate::state_map::make_mut(keys).add(key, seq);
            }
            None => self.keys_if_due(matcher),
        }
    }

    /// Keeps the key index in step with `w`, number `seq`, just taken out: unlists it, or
    /// drops the index when the store has just fallen below [`KEY_INDEX_MIN`].
    fn keys_after_take<A: Hash, M: Match<P, A>>(
        &mut self,
        w: &WaitingContinuation<P, K>,
        seq: u64,
        matcher: &M,
    ) {
        if self.items.len() < KEY_INDEX_MIN {
            self.keys = None;
        } else if let Some(keys) = &mut self.keys {
            crate::state_map::make_mut(keys).remove(key_of(matcher, w), seq);
        }
    }

    /// Builds the key index if the store is a Bag or Set of at least [`KEY_INDEX_MIN`].
    fn keys_if_due<A: Hash, M: Match<P, A>>(&mut self, matcher: &M) {
        if matches!(self.kind, ContKind::Bag | ContKind::Set) && self.items.len() >= KEY_INDEX_MIN {
            self.build_keys(matcher);
        }
    }

    /// (Re)builds the key index from the live continuations, under a fresh seed.
    fn build_keys<A: Hash, M: Match<P, A>>(&mut self, matcher: &M) {
        let mut keys = KeyIndex::default();
        for (seq, w) in self.items.iter() {
            keys.add(key_of(matcher, w), seq);
        }
        self.keys = Some(triomphe::Arc::new(keys));
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

    /// Stores `w`, which [`vet`](Self::vet) found new to this store as it is now (`vetted`);
    /// `matcher` gives its exact key to the key index. Time: O(1) amortised.
    pub(crate) fn push_vetted<A: Hash, M: Match<P, A>>(
        &mut self,
        w: WaitingContinuation<P, K>,
        vetted: Vetted,
        matcher: &M,
    ) {
        let seq = self.items.push(w);
        match (&mut self.index, vetted.0) {
            (Some(index), Some(fp)) => crate::state_map::make_mut(index).add(fp, seq),
            _ => self.index_if_due(),
        }
        self.keys_after_push(seq, matcher);
    }

    /// Stores `w` without [`vet`](Self::vet)'s check, for a caller that
    /// rebuilds a store from the continuations of one of the same kind (a Set's are distinct
    /// already); `bytes` is `w`'s canonical encoding ([`encode_cont`]), which the Set index
    /// fingerprints. Time: O(1) amortised (plus a hash of `bytes` on an indexed Set store).
    pub(crate) fn push_distinct<A: Hash, M: Match<P, A>>(
        &mut self,
        w: WaitingContinuation<P, K>,
        bytes: &[u8],
        matcher: &M,
    ) {
        let seq = self.items.push(w);
        match &mut self.index {
            Some(index) => {
                let index = crate::state_map::make_mut(index);
                let fp = index.fingerprint(bytes);
                index.add(fp, seq);
            }
            None => self.index_if_due(),
        }
        self.keys_after_push(seq, matcher);
    }

    /// Stores `w`; for a Set store, returns false (and stores nothing) when an equal one waits.
    /// Time: O(1) amortised; on a Set store, as [`vet`](Self::vet).
    pub(crate) fn push<A: Hash, M: Match<P, A>>(
        &mut self,
        w: WaitingContinuation<P, K>,
        matcher: &M,
    ) -> bool {
        match self.vet(&w) {
            Some(vetted) => {
                self.push_vetted(w, vetted, matcher);
                true
            }
            None => false,
        }
    }

    /// Takes continuation `seq` out; compacts the store's numbers when tombstones dominate
    /// (rebuilding the indexes then). `matcher` gives its exact key to the key index.
    pub(crate) fn take<A: Hash, M: Match<P, A>>(
        &mut self,
        seq: u64,
        matcher: &M,
    ) -> Option<WaitingContinuation<P, K>> {
        let w = self.items.take(seq)?;
        if let Some(index) = &mut self.index {
            let index = crate::state_map::make_mut(index);
            let fp = index.fingerprint_of(&w);
            index.remove(fp, seq);
        }
        self.keys_after_take(&w, seq, matcher);
        if self.items.wants_compaction() {
            self.items.compact();
            if self.index.is_some() {
                self.build_index();
            }
            if self.keys.is_some() {
                self.build_keys(matcher);
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
        for (seq, w) in self.items.iter() {
            let fp = index.fingerprint_of(w);
            index.add(fp, seq);
        }
        self.index = Some(triomphe::Arc::new(index));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::mix;
    use rhospace_matchers::ExactMatch;

    type W = WaitingContinuation<u64, u64>;

    /// A continuation; `k` and `k + 97` share patterns but differ in continuation.
    fn w(k: u64) -> W {
        WaitingContinuation::new(
            Arc::from(vec![k % 97]),
            k,
            k.is_multiple_of(3),
            Peeks::new(),
        )
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
                assert_eq!(s.push(c.clone(), &ExactMatch), fresh);
                if fresh {
                    model.push((next, c));
                }
            } else {
                let (seq, c) = model.remove((mix(&mut rng) % model.len() as u64) as usize);
                assert_eq!(s.take(seq, &ExactMatch), Some(c));
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
            assert!(s.push(w(k), &ExactMatch));
        }
        let new = w(1_000);
        let index = crate::state_map::make_mut(s.index.as_mut().expect("20 waiting: indexed"));
        let fp = index.fingerprint_of(&new);
        // Continuation 3 listed under the new one's fingerprint, as a collision would list it.
        index.add(fp, 3);
        assert!(s.vet(&new).is_some());
        assert!(s.push(new.clone(), &ExactMatch));
        assert!(s.vet(&new).is_none());
        assert!(!s.push(new, &ExactMatch));
        assert!(!s.push(w(3), &ExactMatch));
    }

    /// Patterns below 1,000 accept their own value (an exact key); from 1,000 on, anything
    /// (no exact key).
    struct Keyed;

    impl Match<u64, u64> for Keyed {
        type Output = ();
        fn get(&self, p: &u64, d: &u64) -> Option<()> {
            (*p >= 1_000 || p == d).then_some(())
        }
        fn exact_key<'p>(&self, p: &'p u64) -> Option<&'p u64> {
            (*p < 1_000).then_some(p)
        }
    }

    /// What a produce of `datum` is offered, as (number, continuation) pairs.
    fn offered(
        s: &ContStore<u64, u64>,
        ranker: Option<&Ranker<W>>,
        datum: Option<u64>,
    ) -> Vec<(u64, W)> {
        let mut out = Vec::new();
        let push = |seq, w: &W| {
            out.push((seq, w.clone()));
            ControlFlow::Continue(())
        };
        let _ = match datum {
            Some(d) => s.for_each_for(ranker, &Keyed, &d, push),
            None => s.for_each_in(ranker, push),
        };
        out
    }

    /// The key index against the rule it must keep, through growth past `KEY_INDEX_MIN`,
    /// shrinking below it, continuations without an exact key coming and going, compaction
    /// and clones: a store walks by key exactly when it is a Bag or Set of at least
    /// `KEY_INDEX_MIN` continuations that all have exact keys, and a walk by key offers
    /// exactly the whole walk's continuations with the datum's key, in the whole walk's order
    /// (oldest first, or ranked).
    #[test]
    fn a_walk_by_key_offers_the_whole_walks_continuations_with_that_key() {
        let ranker = Ranker::conts([7; 32]);
        for kind in [
            ContKind::Bag,
            ContKind::Set,
            ContKind::Queue,
            ContKind::Stack,
        ] {
            let mut s: ContStore<u64, u64> = ContStore::new(kind);
            let mut rng = 11;
            let mut kept = Vec::new();
            let (mut by_key, mut whole) = (0, 0);
            for step in 0..4_000 {
                let r = mix(&mut rng);
                let live = s.items.len();
                let grow = match step {
                    0..1_000 => r % 10 < 7,
                    1_000..2_000 => r % 10 < 3,
                    _ => r % 10 < 5,
                };
                if grow || live == 0 {
                    // A continuation without an exact key now and then, in the middle phase.
                    let general =
                        (1_000..3_000).contains(&step) && mix(&mut rng).is_multiple_of(20);
                    let key = if general { 1_000 } else { mix(&mut rng) % 8 };
                    let w = W::new(
                        Arc::from(vec![key]),
                        mix(&mut rng) % 40,
                        false,
                        Peeks::new(),
                    );
                    s.push(w, &Keyed);
                } else {
                    let nth = (mix(&mut rng) % live as u64) as usize;
                    let seq = s.items.iter().nth(nth).map(|(q, _)| q).expect("live");
                    assert!(s.take(seq, &Keyed).is_some());
                }
                let all_exact = s.all().all(|w| w.patterns[0] < 1_000);
                let rule = matches!(kind, ContKind::Bag | ContKind::Set)
                    && s.items.len() >= KEY_INDEX_MIN
                    && all_exact;
                assert_eq!(s.walks_by_key(), rule, "{kind:?} step {step}");
                if rule {
                    by_key += 1;
                } else {
                    whole += 1;
                }
                for r in [None, Some(&ranker)] {
                    let all = offered(&s, r, None);
                    for d in [0, 3, 7, 9] {
                        let want: Vec<(u64, W)> = if rule {
                            all.iter()
                                .filter(|(_, w)| w.patterns[0] == d)
                                .cloned()
                                .collect()
                        } else {
                            all.clone()
                        };
                        assert_eq!(offered(&s, r, Some(d)), want, "{kind:?} step {step}");
                    }
                }
                if step % 500 == 0 {
                    kept.push((s.clone(), offered(&s, None, Some(3))));
                }
            }
            // A clone keeps its own index: later changes never reached it.
            for (c, before) in &kept {
                assert_eq!(&offered(c, None, Some(3)), before);
            }
            if matches!(kind, ContKind::Bag | ContKind::Set) {
                assert!(by_key > 500 && whole > 500, "{kind:?}: {by_key} / {whole}");
            }
        }
    }

    /// Only a Set store keeps an index, and a Bag keeps equal continuations.
    #[test]
    fn other_kinds_keep_no_index_and_store_every_continuation() {
        for kind in [ContKind::Bag, ContKind::Queue, ContKind::Stack] {
            let mut s: ContStore<u64, u64> = ContStore::new(kind);
            for k in 0..40 {
                assert!(s.push(w(k % 10), &ExactMatch));
                assert!(s.vet(&w(k % 10)).is_some());
            }
            assert!(s.index.is_none());
            assert_eq!(s.all().count(), 40);
        }
    }
}
