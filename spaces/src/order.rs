//! Candidate order: oldest first (the default), or a seeded shuffle keyed on content (SPEC §3).
//!
//! **Algorithm (content-keyed shuffle).** With [`CandidateOrder::Shuffled`] every candidate
//! whose place its kind leaves free gets a *rank*, and candidates are offered by ascending
//! rank instead of oldest first:
//!
//! - the key is `BLAKE3::derive_key("rhospace candidate order v1", seed as 8 little-endian
//!   bytes)`, computed once when the space is built;
//! - a candidate's *content hash* is the first 16 bytes (little-endian `u128`) of the keyed
//!   BLAKE3 hash of a domain byte and its canonical encoding: for a datum, the encoding a hard
//!   checkpoint hashes into the state root (the value's [`Encode`], its persist flag, its
//!   priority); for a waiting continuation, its patterns, continuation, persist flag and peeks;
//!   for a join group, its channel list;
//! - its *rank* is the content hash for the first item of a collection with that encoding
//!   (occurrence 0), and the keyed hash of (content hash, occurrence) for the later ones, so
//!   copies of one datum are distinct candidates, each placed independently (fair per item,
//!   not per value). Occurrences count equal encodings in storage order; items with equal
//!   encodings are interchangeable (same value, same flags: the COMM and the state after it
//!   are the same whichever one is taken), so which copy holds which occurrence is
//!   unobservable. Ties of ranks (a 128-bit collision) fall back to storage order.
//!
//! **Guarantees.** The order depends only on the seed and on the candidates' canonical
//! encodings: not on insertion order, sequence numbers, shards, threads, the process or the
//! platform, so two spaces at the same state root with the same seed choose the same COMMs,
//! even when one reached the root by other calls or by `reset` (which rebuilds Bags in
//! canonical order). No `HashMap` iteration order, clock or unseeded random number reaches
//! it: the occurrence table is only looked up.
//!
//! **Where it applies.** Only where the kind leaves the order free: Bag and Set data, Bag and
//! Set continuation stores, and the order in which a produce offers its datum to the join
//! groups of its channel. Queue, Stack, PriorityQueue and Cell keep their defined orders;
//! VectorDB channels keep theirs too (similarity by score, ties oldest first; other patterns
//! oldest first). Installed continuations are still offered first, in install order.
//!
//! **Cost.** A shuffled walk of `n` candidates hashes each once and heapifies the ranks:
//! O(n) hashing plus O(n + m log n) to offer the first `m` (a walk that stops at its first
//! candidate costs O(n)); walks are not cached, so a join search that revisits a position
//! pays again. The default order costs one branch per walk.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::ops::ControlFlow;

use crate::conts::WaitingContinuation;
use crate::data::StoredDatum;
use crate::encode::Encode;

/// The order in which candidates are tried where the collection kind leaves it free
/// (SPEC §3). Fixed when the space is built ([`SpaceConfig::candidate_order`]).
///
/// - `OldestFirst` (the default): data and continuations oldest first, join groups in the
///   order they were made (canonical order after a hard checkpoint).
/// - `Shuffled { seed }`: Bag and Set data, Bag and Set continuations, and a channel's join
///   groups are tried in a pseudo-random order drawn from `seed` and from each candidate's
///   canonical [`Encode`]ing only. It is fair (over seeds, each of `n` candidates is first
///   about `1/n` of the time) and deterministic: the same seed and the same state give the
///   same choice on every machine, run, thread count and shard count, whatever order the
///   data arrived in. Queue, Stack, PriorityQueue, Cell and VectorDB channels and Queue and
///   Stack continuation stores keep their defined orders; installed continuations are still
///   offered first.
///
/// Joins stay complete: the search walks candidates in the shuffled order and takes the first
/// complete assignment in that order. A space replaying a log must be built with the same
/// order as the one that recorded it. Cost: a walk of a shuffled channel hashes each of its
/// `n` candidates (O(n), plus O(log n) per candidate offered); see the crate's cost table.
///
/// ```
/// use rhospace_spaces::{CandidateOrder, Space, SpaceConfig};
/// use rhospace_matchers::ExactMatch;
///
/// let config = SpaceConfig::new().candidate_order(CandidateOrder::Shuffled { seed: 42 });
/// assert_eq!(config.order(), CandidateOrder::Shuffled { seed: 42 });
/// let space: Space<u8, u8, u8, &str, ExactMatch> = Space::new(ExactMatch, config);
/// for k in ["a", "b", "c"] {
///     space.consume([0], [1], k, false, &[]).unwrap();
/// }
/// // Which waiting continuation fires depends on the seed, not on arrival order.
/// let comm = space.produce(0, 1, false).unwrap().expect("one of them fires");
/// assert!(["a", "b", "c"].contains(&comm.continuation));
/// assert_eq!(SpaceConfig::<u8>::new().order(), CandidateOrder::OldestFirst);
/// ```
///
/// [`SpaceConfig::candidate_order`]: crate::SpaceConfig::candidate_order
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CandidateOrder {
    /// Oldest first (the default).
    #[default]
    OldestFirst,
    /// A seeded, content-keyed shuffle of the kinds that leave the order free.
    Shuffled {
        /// The seed: equal seeds give equal orders.
        seed: u64,
    },
}

impl CandidateOrder {
    /// The hashing key of a shuffled order; `None` for oldest first.
    pub(crate) fn key(self) -> Option<[u8; 32]> {
        match self {
            CandidateOrder::OldestFirst => None,
            CandidateOrder::Shuffled { seed } => Some(blake3::derive_key(
                "rhospace candidate order v1",
                &seed.to_le_bytes(),
            )),
        }
    }
}

const DOMAIN_DATUM: u8 = 0;
const DOMAIN_CONT: u8 = 1;
const DOMAIN_GROUP: u8 = 2;
const DOMAIN_OCCURRENCE: u8 = 3;

/// The first 16 bytes of the keyed hash of `domain` then `bytes`.
fn keyed(key: &[u8; 32], domain: u8, bytes: &[u8]) -> u128 {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(&[domain]);
    h.update(bytes);
    let mut out = [0u8; 16];
    h.finalize_xof().fill(&mut out);
    u128::from_le_bytes(out)
}

/// Ranks items of one type by content under a key. `Copy` and free of lifetimes and of
/// `Encode` bounds (the encoder is a function pointer chosen where the bound is known), so
/// the search code carries it without new bounds.
pub(crate) struct Ranker<T> {
    key: [u8; 32],
    domain: u8,
    encode: fn(&T, &mut Vec<u8>),
}

impl<T> Clone for Ranker<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Ranker<T> {}

impl<T> std::fmt::Debug for Ranker<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ranker").finish_non_exhaustive()
    }
}

fn encode_datum<A: Encode>(d: &StoredDatum<A>, out: &mut Vec<u8>) {
    crate::space::hard::encode_datum(d, out);
}

fn encode_cont<P: Encode, K: Encode>(w: &WaitingContinuation<P, K>, out: &mut Vec<u8>) {
    crate::space::hard::encode_cont(w, out);
}

impl<A: Encode> Ranker<StoredDatum<A>> {
    /// Ranks data by their state-root encoding.
    pub(crate) fn data(key: [u8; 32]) -> Self {
        Self {
            key,
            domain: DOMAIN_DATUM,
            encode: encode_datum::<A>,
        }
    }
}

impl<P: Encode, K: Encode> Ranker<WaitingContinuation<P, K>> {
    /// Ranks waiting continuations by their state-root encoding.
    pub(crate) fn conts(key: [u8; 32]) -> Self {
        Self {
            key,
            domain: DOMAIN_CONT,
            encode: encode_cont::<P, K>,
        }
    }
}

impl<T> Ranker<T> {
    /// The content hash of `item` (`buf` is scratch space).
    fn content(&self, item: &T, buf: &mut Vec<u8>) -> u128 {
        buf.clear();
        (self.encode)(item, buf);
        keyed(&self.key, self.domain, buf)
    }

    /// The rank of the `occ`-th item (0-based, storage order) with content hash `content`.
    fn rank(&self, content: u128, occ: u32) -> u128 {
        if occ == 0 {
            return content;
        }
        let mut bytes = [0u8; 20];
        bytes[..16].copy_from_slice(&content.to_le_bytes());
        bytes[16..].copy_from_slice(&occ.to_le_bytes());
        keyed(&self.key, DOMAIN_OCCURRENCE, &bytes)
    }

    /// Offers `items` (in storage order) to `f` by ascending rank (ties in storage order);
    /// `Break` stops. Time: O(n) hashes, then O(n + m log n) to offer the first `m`.
    pub(crate) fn walk<'s, X: Copy>(
        &self,
        items: &[(X, &'s T)],
        mut f: impl FnMut(X, &'s T) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        if let [(x, t)] = items {
            return f(*x, t);
        }
        let mut buf = Vec::new();
        // Looked up, never iterated: its order cannot reach a result.
        let mut seen: HashMap<u128, u32, foldhash::fast::FixedState> =
            HashMap::with_capacity_and_hasher(items.len(), Default::default());
        let mut ranks = Vec::with_capacity(items.len());
        for (i, (_, t)) in items.iter().enumerate() {
            let content = self.content(t, &mut buf);
            let occ = seen.entry(content).or_insert(0);
            ranks.push(Reverse((self.rank(content, *occ), i)));
            *occ = occ.saturating_add(1);
        }
        let mut heap = BinaryHeap::from(ranks);
        while let Some(Reverse((_, i))) = heap.pop() {
            if let Some(&(x, t)) = items.get(i) {
                f(x, t)?;
            }
        }
        ControlFlow::Continue(())
    }
}

/// The rank of a join group (its channel list) under `key`. Groups on one channel are
/// distinct lists, so no occurrence is needed.
pub(crate) fn group_rank<C: Encode>(key: &[u8; 32], list: &[C]) -> u128 {
    let mut buf = Vec::new();
    list.encode(&mut buf);
    keyed(key, DOMAIN_GROUP, &buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order_of(seed: u64, values: &[(u32, bool)]) -> Vec<usize> {
        let key = CandidateOrder::Shuffled { seed }.key().unwrap_or_default();
        let ranker = Ranker::<StoredDatum<u32>>::data(key);
        let data: Vec<StoredDatum<u32>> = values
            .iter()
            .map(|&(value, persist)| StoredDatum {
                value,
                persist,
                priority: 0,
            })
            .collect();
        let items: Vec<(usize, &StoredDatum<u32>)> = data.iter().enumerate().collect();
        let mut out = Vec::new();
        let _ = ranker.walk(&items, |i, _| {
            out.push(i);
            ControlFlow::Continue(())
        });
        out
    }

    #[test]
    fn every_item_is_offered_once() {
        let values: Vec<(u32, bool)> = (0..50).map(|i| (i % 7, i % 3 == 0)).collect();
        let mut order = order_of(9, &values);
        order.sort_unstable();
        assert_eq!(order, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn the_order_is_a_function_of_content_and_seed() {
        let a = [(1, false), (2, false), (3, true), (4, false)];
        let b = [(4, false), (3, true), (1, false), (2, false)];
        let values = |v: &[(u32, bool)], order: Vec<usize>| -> Vec<(u32, bool)> {
            order.into_iter().map(|i| v[i]).collect()
        };
        for seed in 0..20 {
            assert_eq!(
                values(&a, order_of(seed, &a)),
                values(&b, order_of(seed, &b))
            );
        }
        let firsts: std::collections::BTreeSet<(u32, bool)> = (0..20)
            .map(|seed| values(&a, order_of(seed, &a))[0])
            .collect();
        assert!(firsts.len() > 1, "the seed changes the order");
    }

    #[test]
    fn the_persist_flag_is_part_of_the_content() {
        // A persistent and a non-persistent copy of one value rank differently.
        let key = CandidateOrder::Shuffled { seed: 1 }
            .key()
            .unwrap_or_default();
        let r = Ranker::<StoredDatum<u32>>::data(key);
        let d = |persist| StoredDatum {
            value: 5u32,
            persist,
            priority: 0,
        };
        let mut buf = Vec::new();
        assert_ne!(
            r.content(&d(true), &mut buf),
            r.content(&d(false), &mut buf)
        );
    }

    #[test]
    fn oldest_first_has_no_key() {
        assert_eq!(CandidateOrder::OldestFirst.key(), None);
        assert_eq!(CandidateOrder::default(), CandidateOrder::OldestFirst);
    }
}
