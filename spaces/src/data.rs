//! `DataStore`: one channel's data, kept by its [`DataKind`], with an exact-match index.
//!
//! Bag, Set, Queue, Stack and Cell keep items in a [`SeqItems`] (arrival order, stable
//! numbers); PriorityQueue keeps an `imbl::OrdMap` keyed by (priority descending, arrival);
//! VectorDB keeps a [`VecItems`] (items by stable number, plus an embedding index ranked by
//! similarity; see [`crate::vector`]).
//! Everything is persistent: cloning a store is O(1).
//!
//! **Exact index.** Bag and Set stores with at least [`INDEX_MIN`] items build, on first need, a
//! persistent hash index from value to the numbers of the live items equal to it, kept in step
//! from then on. A pattern with an exact key ([`rhospace_matchers::Match::exact_key`]) then finds
//! its candidates in O(1) expected instead of scanning. The index is derived state: it never
//! changes a result, only how fast it is found. *First need* is any exact lookup of a join,
//! and a one-channel exact lookup whose key the oldest item does not equal
//! ([`DataStore::wants_index_for`]): a lookup the oldest item answers is answered by the
//! scan's first step, so data consumed in arrival order by one-channel consumes are never
//! indexed. When the index is built is deterministic (a function of the admitted calls since
//! the last hard checkpoint, which drops it), as it must be: it decides `examined`, which is
//! charged. A call builds the index during its search, before its gate has seen it; a refused
//! call (out of phlogiston, replay divergence, install over matching data) drops again every
//! index it built ([`DataStore::drop_index`]; see `Built` in the space module), so a refusal
//! leaves no trace in later charges, and a replay that refuses a call charges as play did.
//! With a shuffled candidate order ([`crate::order`]) the oldest item is not offered first, so
//! every exact lookup on a big enough Bag or Set builds the index; the index lists the equal
//! items, which are then offered by rank like any others (a persistent and a plain copy of one
//! value are different candidates, ranked apart).

use std::cmp::Reverse;
use std::hash::Hash;
use std::ops::ControlFlow;

use imbl::OrdMap;
use smallvec::SmallVec;

use crate::kind::DataKind;
use crate::order::Ranker;
use crate::seq::SeqItems;
use crate::vector::VecItems;
use crate::PMap;

/// Stores with fewer items than this are scanned; at or above it, an exact index is built.
pub(crate) const INDEX_MIN: usize = 16;

/// A datum as stored on a channel.
///
/// ```
/// use rhospace_spaces::StoredDatum;
/// let d = StoredDatum { value: 7u8, persist: false, priority: 0 };
/// assert!(!d.persist);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StoredDatum<A> {
    /// The datum.
    pub value: A,
    /// Whether it stays after it is matched.
    pub persist: bool,
    /// Its priority (PriorityQueue channels; 0 elsewhere). Higher is taken first.
    pub priority: i64,
}

/// Where an item sits in its store. Ordered as the store hands items out for PriorityQueue;
/// for the other kinds `prio` is 0 and `seq` is the arrival number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ItemKey {
    prio: Reverse<i64>,
    seq: u64,
}

impl ItemKey {
    /// The priority of the item it names (0 except on a PriorityQueue).
    #[inline]
    pub(crate) fn priority(self) -> i64 {
        self.prio.0
    }

    #[inline]
    fn seq(seq: u64) -> Self {
        Self {
            prio: Reverse(0),
            seq,
        }
    }
}

#[derive(Clone, Debug)]
enum Items<A: Clone> {
    Seq(SeqItems<StoredDatum<A>>),
    Prio {
        map: OrdMap<ItemKey, StoredDatum<A>>,
        next: u64,
    },
    /// VectorDB: items by stable number plus the embedding index (see [`crate::vector`]).
    /// Boxed: inline it would make every channel's store 240 bytes (it is 192), copied when
    /// a channel is created and on its first write after a soft checkpoint.
    Vec(Box<VecItems<A>>),
}

/// One channel's data. Invariant: `index`, when present, maps each value to the ascending
/// numbers of exactly the live items equal to it (Bag and Set only).
///
/// The index sits behind a pointer: inline, its 32 bytes made a channel's state 144 bytes,
/// and every move of a state over 128 bytes (creating a channel moved one twice) was a
/// `memcpy` call. Most channels have no index; a write to a shared one copies the pointer's
/// target, itself an O(1) clone of the persistent map.
#[derive(Clone, Debug)]
pub(crate) struct DataStore<A: Clone + Hash + Eq> {
    kind: DataKind,
    items: Items<A>,
    index: Option<triomphe::Arc<Index<A>>>,
}

/// Value to the numbers of the live items equal to it.
type Index<A> = PMap<A, SmallVec<[u64; 2]>>;

impl<A: Clone + Hash + Eq> DataStore<A> {
    pub(crate) fn new(kind: DataKind) -> Self {
        let items = match kind {
            DataKind::PriorityQueue => Items::Prio {
                map: OrdMap::new(),
                next: 0,
            },
            DataKind::VectorDb { dim, metric } => Items::Vec(Box::new(VecItems::new(dim, metric))),
            _ => Items::Seq(SeqItems::default()),
        };
        Self {
            kind,
            items,
            index: None,
        }
    }

    #[inline]
    pub(crate) fn kind(&self) -> DataKind {
        self.kind
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        match &self.items {
            Items::Seq(s) => s.len(),
            Items::Prio { map, .. } => map.len(),
            Items::Vec(v) => v.len(),
        }
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key the next pushed item with `priority` would get.
    #[inline]
    pub(crate) fn next_key(&self, priority: i64) -> ItemKey {
        match &self.items {
            Items::Seq(s) => ItemKey::seq(s.next_seq()),
            Items::Vec(v) => ItemKey::seq(v.next_seq()),
            Items::Prio { next, .. } => ItemKey {
                prio: Reverse(priority),
                seq: *next,
            },
        }
    }

    #[inline]
    pub(crate) fn get(&self, key: ItemKey) -> Option<&StoredDatum<A>> {
        match &self.items {
            Items::Seq(s) => s.get(key.seq),
            Items::Prio { map, .. } => map.get(&key),
            Items::Vec(v) => v.get(key.seq),
        }
    }

    /// Stores a datum. On a VectorDB channel it is stored without an index row (found through
    /// the matcher's embedding at search time); use [`push_embedded`](Self::push_embedded)
    /// there.
    pub(crate) fn push(&mut self, datum: StoredDatum<A>) -> ItemKey {
        self.push_embedded(datum, |_| None)
    }

    /// Stores a datum; `embed` reads its embedding (pass the matcher's
    /// [`embedding`](rhospace_matchers::Match::embedding)), which a VectorDB channel copies
    /// into its index when valid; other kinds never call it. Callers check the embedding first
    /// with [`DataKind::check_embedding`]; an unchecked invalid one is stored unindexed, never
    /// a panic.
    pub(crate) fn push_embedded(
        &mut self,
        datum: StoredDatum<A>,
        embed: impl Fn(&A) -> Option<&[f32]>,
    ) -> ItemKey {
        match &mut self.items {
            Items::Vec(v) => ItemKey::seq(v.push(datum, embed)),
            Items::Seq(s) => {
                let seq = s.next_seq();
                if let Some(index) = &mut self.index {
                    crate::state_map::make_mut(index)
                        .entry(datum.value.clone())
                        .or_default()
                        .push(seq);
                }
                s.push(datum);
                // Set checks for duplicates on every produce, so its index is kept from the
                // start; Bag builds one lazily, when an exact pattern first needs it.
                if self.index.is_none() && self.kind == DataKind::Set && s.len() >= INDEX_MIN {
                    self.build_index();
                }
                ItemKey::seq(seq)
            }
            Items::Prio { map, next } => {
                let key = ItemKey {
                    prio: Reverse(datum.priority),
                    seq: *next,
                };
                *next += 1;
                map.insert(key, datum);
                key
            }
        }
    }

    /// The VectorDB items, when this is a VectorDB channel.
    #[inline]
    pub(crate) fn vector(&self) -> Option<&VecItems<A>> {
        match &self.items {
            Items::Vec(v) => Some(&**v),
            _ => None,
        }
    }

    pub(crate) fn take(&mut self, key: ItemKey) -> Option<StoredDatum<A>> {
        match &mut self.items {
            Items::Seq(s) => {
                let d = s.take(key.seq)?;
                if let Some(index) = &mut self.index {
                    let index = crate::state_map::make_mut(index);
                    // Most values are stored once: then the removal is the one walk of the
                    // map. A value stored several times goes back without this number (a
                    // second walk, and a clone of the value).
                    if let Some(mut seqs) = index.remove(&d.value) {
                        seqs.retain(|q| *q != key.seq);
                        if !seqs.is_empty() {
                            index.insert(d.value.clone(), seqs);
                        }
                    }
                }
                Some(d)
            }
            Items::Prio { map, .. } => map.remove(&key),
            Items::Vec(v) => v.take(key.seq),
        }
    }

    /// Compacts tombstones when they dominate; rebuilds the index then.
    pub(crate) fn tidy(&mut self) {
        let s = match &mut self.items {
            Items::Seq(s) => s,
            Items::Vec(v) => return v.tidy(),
            Items::Prio { .. } => return,
        };
        if s.is_empty() {
            self.index = None;
        } else if s.wants_compaction() {
            s.compact();
            if self.index.is_some() {
                self.build_index();
            }
        }
    }

    /// Whether an exact lookup should build the index first.
    #[inline]
    pub(crate) fn wants_index(&self) -> bool {
        self.index.is_none() && self.indexable() && self.len() >= INDEX_MIN
    }

    /// Whether a one-position exact lookup for `key` (a consume on one channel) should build
    /// the index first: as [`wants_index`](Self::wants_index), unless the oldest item equals
    /// `key`. The unindexed scan then offers that item first, exactly as the index would (it
    /// lists equal items oldest first), and the pattern accepts it, so the build waits for a
    /// lookup that needs it: a consumer that takes data in arrival order (a mailbox) never pays
    /// for an index. A join uses [`wants_index`](Self::wants_index): its search can backtrack
    /// past the oldest item and walk the rest.
    ///
    /// ```text
    /// 20 items 0..20, no index:  lookup 0 -> scan offers item 0 first (examined 1, no build)
    ///                            lookup 7 -> build, index offers item 7  (examined 1)
    /// ```
    ///
    /// With a `shuffled` candidate order the oldest item is not offered first, so this is
    /// [`wants_index`](Self::wants_index): the index spares the walk its hashing of every item.
    #[inline]
    pub(crate) fn wants_index_for(&self, key: &A, shuffled: bool) -> bool {
        self.wants_index() && (shuffled || !self.oldest_is(key))
    }

    /// Whether this is an indexable store (Bag or Set, which hand items out oldest first)
    /// whose oldest item equals `key`.
    #[inline]
    fn oldest_is(&self, key: &A) -> bool {
        match &self.items {
            Items::Seq(s) if self.indexable() => s.first().is_some_and(|(_, d)| d.value == *key),
            _ => false,
        }
    }

    /// Builds the index if [`wants_index`](Self::wants_index); returns whether it did.
    pub(crate) fn ensure_index(&mut self) -> bool {
        let wanted = self.wants_index();
        if wanted {
            self.build_index();
        }
        wanted
    }

    /// Drops the index: undoes an [`ensure_index`](Self::ensure_index) that built one (the
    /// store then is exactly as before it) for a call that was refused.
    pub(crate) fn drop_index(&mut self) {
        self.index = None;
    }

    /// Whether the exact index exists (tests compare it: it decides `examined`).
    #[cfg(test)]
    pub(crate) fn has_index(&self) -> bool {
        self.index.is_some()
    }

    fn indexable(&self) -> bool {
        matches!(self.kind, DataKind::Bag | DataKind::Set)
    }

    fn build_index(&mut self) {
        if !self.indexable() {
            return;
        }
        if let Items::Seq(s) = &self.items {
            let mut index: Index<A> = PMap::default();
            for (seq, d) in s.iter() {
                // One walk per value stored once (the common case), where looking up first
                // would walk twice; a repeated value walks again to add its number (items come
                // oldest first, so the numbers stay ascending).
                let mut seqs = SmallVec::new();
                seqs.push(seq);
                if let Some(mut earlier) = index.insert(d.value.clone(), seqs) {
                    earlier.push(seq);
                    index.insert(d.value.clone(), earlier);
                }
            }
            self.index = Some(triomphe::Arc::new(index));
        }
    }

    /// Whether an item equal to `value` is stored (Set's duplicate check). Exact, by `Eq`.
    pub(crate) fn contains_value(&self, value: &A) -> bool {
        if let Some(index) = &self.index {
            return index.contains_key(value);
        }
        match &self.items {
            Items::Seq(s) => s.iter().any(|(_, d)| d.value == *value),
            Items::Prio { map, .. } => map.values().any(|d| d.value == *value),
            Items::Vec(v) => v.iter().any(|(_, d)| d.value == *value),
        }
    }

    /// Whether a produced item with key `key` could be taken when it is the only item of this
    /// channel a COMM takes (no stored item ahead of it is used up).
    pub(crate) fn new_item_is_head(&self, key: ItemKey) -> bool {
        match self.kind {
            DataKind::Bag | DataKind::Set | DataKind::Stack | DataKind::VectorDb { .. } => true,
            DataKind::Queue | DataKind::Cell => self.is_empty(),
            DataKind::PriorityQueue => match &self.items {
                Items::Prio { map, .. } => map.keys().next().is_none_or(|k| key < *k),
                Items::Seq(_) | Items::Vec(_) => true,
            },
        }
    }

    /// Whether [`for_each_candidate`](Self::for_each_candidate) with `hint` may walk every
    /// item: the case the parallel pre-check is for. Not when an exact index narrows the
    /// scan, nor when the oldest item equals the exact key: the scan offers it first and the
    /// pattern accepts it (the [`exact_key`](rhospace_matchers::Match::exact_key) contract).
    /// Only a one-position lookup meets the second case on a store big enough to pre-check (a
    /// join builds the index first); there only a replay guide turning the item down walks
    /// on, serially.
    #[inline]
    pub(crate) fn scans_all(&self, hint: Option<&A>) -> bool {
        match hint {
            Some(key) if matches!(self.items, Items::Seq(_)) => {
                self.index.is_none() && !self.oldest_is(key)
            }
            _ => true,
        }
    }

    /// [`for_each_candidate`](Self::for_each_candidate) in the space's candidate order:
    /// with a `ranker` (a shuffled order, see [`crate::order`]) a Bag or Set store offers the
    /// same candidates (the produced `extra` among them) by ascending rank instead of oldest
    /// first; other kinds, and no ranker, keep their order. One branch when `ranker` is `None`.
    ///
    /// Time with a ranker on a Bag or Set: O(n) hashes of the `n` candidates the walk would
    /// offer (only the items equal to `hint` when the index exists), plus O(log n) per
    /// candidate offered.
    #[inline]
    pub(crate) fn for_each_candidate_in<'s>(
        &'s self,
        ranker: Option<&Ranker<StoredDatum<A>>>,
        hint: Option<&A>,
        extra: Option<(ItemKey, &'s StoredDatum<A>)>,
        mut f: impl FnMut(ItemKey, &'s StoredDatum<A>, bool) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        match ranker {
            Some(r) if self.indexable() => {
                let mut items: Vec<((ItemKey, bool), &'s StoredDatum<A>)> =
                    Vec::with_capacity(self.len() + 1);
                let _ = self.for_each_candidate(hint, extra, |key, d, incoming| {
                    items.push(((key, incoming), d));
                    ControlFlow::Continue(())
                });
                r.walk(&items, |(key, incoming), d| f(key, d, incoming))
            }
            _ => self.for_each_candidate(hint, extra, f),
        }
    }

    /// Offers candidates in the order this kind hands them out, with an optional produced item
    /// `extra` (not yet stored, key `extra.0`) at its place. `hint` is an exact key: when the
    /// index exists, only items equal to it are offered. `f` returns `Break` to stop.
    pub(crate) fn for_each_candidate<'s>(
        &'s self,
        hint: Option<&A>,
        extra: Option<(ItemKey, &'s StoredDatum<A>)>,
        mut f: impl FnMut(ItemKey, &'s StoredDatum<A>, bool) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        match (&self.items, self.kind) {
            (Items::Vec(v), _) => {
                for (seq, d) in v.iter() {
                    f(ItemKey::seq(seq), d, false)?;
                }
                if let Some((k, d)) = extra {
                    f(k, d, true)?;
                }
            }
            (Items::Seq(s), DataKind::Stack) => {
                if let Some((k, d)) = extra {
                    f(k, d, true)?;
                }
                for (seq, d) in s.iter().rev() {
                    f(ItemKey::seq(seq), d, false)?;
                }
            }
            (Items::Seq(s), _) => {
                match (hint, &self.index) {
                    (Some(h), Some(index)) => {
                        if let Some(seqs) = index.get(h) {
                            for &seq in seqs {
                                if let Some(d) = s.get(seq) {
                                    f(ItemKey::seq(seq), d, false)?;
                                }
                            }
                        }
                    }
                    _ => {
                        // The oldest first, on its own: most walks stop there (an exact key it
                        // equals, a wildcard), and a tree store then sets up no walk at all.
                        if let Some((first, d)) = s.first() {
                            f(ItemKey::seq(first), d, false)?;
                            s.for_each_live(|seq, d| {
                                if seq == first {
                                    ControlFlow::Continue(())
                                } else {
                                    f(ItemKey::seq(seq), d, false)
                                }
                            })?;
                        }
                    }
                }
                if let Some((k, d)) = extra {
                    f(k, d, true)?;
                }
            }
            (Items::Prio { map, .. }, _) => {
                let mut extra = extra;
                for (k, d) in map.iter() {
                    if let Some((ek, ed)) = extra {
                        if ek < *k {
                            extra = None;
                            f(ek, ed, true)?;
                        }
                    }
                    f(*k, d, false)?;
                }
                if let Some((ek, ed)) = extra {
                    f(ek, ed, true)?;
                }
            }
        }
        ControlFlow::Continue(())
    }

    /// On a VectorDB channel, offers the data `sim` accepts best score first (ties oldest
    /// first), with the produced item `extra` at its place; see
    /// [`VecItems::for_each_ranked`]. Returns `None` on other kinds (the caller then uses
    /// [`for_each_candidate`](Self::for_each_candidate)), else the walk's flow, the number
    /// of data the ranking scored against the query (every live item, plus `extra`) and the
    /// channel's dimension. The count is matching work (one pattern tried against one datum,
    /// SPEC §8) and, times the dimension, vector-search work; it is counted from the
    /// channel's contents only (not its index's dead rows), so it is the same in play and in
    /// a replay from a reset root.
    pub(crate) fn for_each_ranked<'s>(
        &'s self,
        sim: &rhospace_matchers::SimilarityPattern,
        embed: &dyn Fn(&A) -> Option<&[f32]>,
        extra: Option<(ItemKey, &'s StoredDatum<A>)>,
        need: usize,
        mut f: impl FnMut(ItemKey, &'s StoredDatum<A>, bool) -> ControlFlow<()>,
    ) -> Option<(ControlFlow<()>, u64, usize)> {
        let v = self.vector()?;
        let scored = v.len() as u64 + u64::from(extra.is_some());
        let extra = extra.map(|(k, d)| (k.seq, d));
        let flow = v.for_each_ranked(sim, embed, extra, need, |seq, d, inc| {
            f(ItemKey::seq(seq), d, inc)
        });
        Some((flow, scored, v.dim()))
    }

    /// The stored items in the order this kind hands them out.
    pub(crate) fn ordered(&self) -> Vec<StoredDatum<A>> {
        let mut out = Vec::with_capacity(self.len());
        let _ = self.for_each_candidate(None, None, |_, d, _| {
            out.push(d.clone());
            ControlFlow::Continue(())
        });
        out
    }
}

#[cfg(test)]
mod size_tests {
    /// A new channel's store is built and moved by value; past 128 bytes each such move is a
    /// `memcpy` call (see `crate::chunks`).
    #[test]
    fn a_store_of_word_sized_data_fits_in_128_bytes() {
        assert!(std::mem::size_of::<super::DataStore<u64>>() <= 128);
        // With its join list and flag, the whole channel state too (see `DataStore`).
        assert!(std::mem::size_of::<crate::space::ChannelState<u64, u64>>() <= 128);
    }
}
