//! Hard checkpoints (SPEC §6): the Merkle state root, the history of roots, `reset`.
//!
//! # State root
//! One [`MerkleMap`] holds a leaf per channel with data (key `trie_key(Data, channel)`) and per
//! join group with waiting continuations (key `trie_key(Continuations, channel list)`). A data
//! leaf hashes the channel, its kind and its items (each item: the datum's encoding, its persist
//! flag and its priority) — as a multiset for Bag and Set, in order for Queue, Stack, Cell and
//! PriorityQueue. A continuation leaf hashes the list, the continuation kind and the waiting
//! continuations the same way (multiset for Bag and Set continuation stores). So the root
//! depends only on contents. Installed continuations are outside the root.
//!
//! # Incremental
//! Every change lists its channel or join group as dirty in its shard's state (once per channel
//! per checkpoint period, through a flag on the channel). `create_checkpoint` re-encodes only
//! the dirty entries, updates their leaves, and rehashes only the trie paths above them: its
//! cost grows with what changed since the last checkpoint, not with the size of the space. A
//! call that only reads a datum (persistent, or peeked) lists nothing; a channel listed only
//! because its list of join groups changed has that list sorted, not its data re-encoded.
//!
//! # Canonical order
//! A hard checkpoint puts each changed Bag or Set (data or continuations), and each changed
//! channel's list of join groups, into canonical order: sorted by canonical encoding. The root
//! already ignores those orders; canonicalising the live state too means a space that goes on
//! after a checkpoint and a space that `reset`s to that root (from memory or from disk, in
//! another process) hold identical states and so make identical choices from then on. Between
//! checkpoints, new items go after the canonical ones (oldest first, SPEC §3).
//!
//! # History
//! Each checkpoint commits, in one atomic commit ([`HistoryStore`]), every trie node and every
//! leaf blob reachable from its root that its history store lacks; a leaf blob is the leaf's
//! contents in canonical order, stored under the leaf hash. So every root a checkpoint records
//! has everything below it in the store, and [`reset`](Space::reset) to it works from the store
//! alone (another process, or this one once the root has left the in-memory cache).
//!
//! The nodes the store lacks come from [`MerkleMap::missing_nodes`]; the blobs of the dirty
//! entries are re-encoded anyway. Usually those dirty blobs are all the missing leaves need:
//! the trie came from this store's lineage, so every leaf that is not dirty is stored already.
//! Not so after [`revert_to_soft_checkpoint`](Space::revert_to_soft_checkpoint) to another
//! space's checkpoint (its clean entries were settled in that space's store) or after
//! [`with_history`](Space::with_history) switched stores: then a missing leaf that is not
//! dirty, and whose blob the store lacks, has its blob encoded from the live state, found by a
//! scan of the space (keys are hashes). Only such a checkpoint pays for the scan, once; a
//! normal one makes no extra store look-up.
//!
//! The space also keeps each recorded state in memory (persistent structures, shared between
//! checkpoints), so `reset` to a root this process recorded costs O(shards) while it is among
//! the last [`SNAPSHOT_CACHE`]; another root (an older one, or one recorded by an earlier
//! process) is loaded from the store, verified, in O(size of that state).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use crate::join_list::JoinList;
use rhospace_matchers::Match;

use super::{validate, would_store, ChannelState, ShardStates, Space, State, StateRef};
use crate::conts::{ContStore, Peeks, WaitingContinuation};
use crate::data::{DataStore, StoredDatum};
use crate::decode::{decode_varint, Decode, DecodeError};
use crate::encode::{encode_varint, Encode};
use crate::history::{HistoryError, HistoryStore};
use crate::kind::{ContKind, DataKind};
use crate::log::{consume_hash, hash_events, produce_hash_with_priority, Log, LogEvent};
use crate::merkle::{
    hash_multiset, hash_ordered, trie_key, Digest, KeyDomain, LoadError, MerkleMap, EMPTY_ROOT,
};
use crate::replay::{Expect, Hashers, ReplayError};
use crate::shard::AllLocked;

/// What [`Space::create_checkpoint`] returns: the state root and the event log since the last
/// hard checkpoint (or reset, or clear).
///
/// ```
/// use rhospace_spaces::{Space, SpaceConfig};
/// use rhospace_matchers::ExactMatch;
/// let s: Space<u8, u8, u8, u8, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
/// s.produce(1, 2, false).unwrap();
/// let cp = s.create_checkpoint().unwrap();
/// assert_eq!(cp.log.len(), 1);
/// assert!(s.create_checkpoint().unwrap().log.is_empty());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The 32-byte state root.
    pub root: Digest,
    /// The hashed event log since the previous checkpoint (SPEC §7): each shard's events in
    /// that shard's order, shard after shard. The order therefore depends on the shard count;
    /// the multiset of events (what [`Space::rig`] checks a replay against) does not.
    pub log: Vec<LogEvent>,
}

/// Why a hard checkpoint or a reset failed. Nothing changed in the space.
///
/// ```
/// use rhospace_spaces::{CheckpointError, Space, SpaceConfig};
/// use rhospace_matchers::ExactMatch;
/// let s: Space<u8, u8, u8, u8, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
/// assert!(matches!(s.reset(&[9; 32]), Err(CheckpointError::UnknownRoot(_))));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum CheckpointError {
    /// `reset` to a root neither this space nor its history store recorded.
    UnknownRoot(Digest),
    /// The history store failed.
    History(HistoryError),
    /// The history store holds a blob that does not decode, or whose contents do not hash to
    /// the leaf that names it, or that sits under another channel's (or channel list's) trie
    /// key, or that describes a state no sequence of calls can leave (an empty leaf, a Bag or
    /// Set out of canonical order, a PriorityQueue out of priority order, a Set with two equal
    /// items, a Cell with two data, a priority on a kind other than PriorityQueue, an embedding
    /// or a similarity query of another dimension than its VectorDB channel's, peeks a consume
    /// would not have normalised), or a trie node that fails verification, or lacks a node or
    /// blob below a recorded root. From [`Space::create_checkpoint`]: a leaf whose blob the
    /// store lacks has no entry in the state that hashes to it (the trie and the state
    /// disagree; a bug, never expected).
    Corrupt {
        /// The blob or node concerned.
        hash: Digest,
        /// What was wrong.
        reason: String,
    },
    /// A stored channel's kind is not the kind this space's configuration gives it.
    KindMismatch {
        /// The leaf concerned.
        hash: Digest,
    },
    /// [`rig`](Space::rig) was given a malformed log, or the checkpoint that ends a replay
    /// found logged calls or COMMs not replayed ([`ReplayError::Unused`]).
    Replay(ReplayError),
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::UnknownRoot(r) => {
                write!(f, "unknown state root {}", crate::merkle::hex(r))
            }
            CheckpointError::History(e) => write!(f, "history store: {e}"),
            CheckpointError::Corrupt { hash, reason } => {
                write!(
                    f,
                    "corrupt history entry {}: {reason}",
                    crate::merkle::hex(hash)
                )
            }
            CheckpointError::Replay(e) => write!(f, "{e}"),
            CheckpointError::KindMismatch { hash } => write!(
                f,
                "stored collection {} has another kind than this space configures",
                crate::merkle::hex(hash)
            ),
        }
    }
}

impl std::error::Error for CheckpointError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CheckpointError::History(e) => Some(e),
            _ => None,
        }
    }
}

impl From<HistoryError> for CheckpointError {
    fn from(e: HistoryError) -> Self {
        CheckpointError::History(e)
    }
}

/// The per-shard states of one recorded root (dirty lists and logs empty).
pub(crate) type Snapshot<C, P, A, K> = (ShardStates<C, P, A, K>, MerkleMap);

/// Hard-checkpoint state: the trie of the last hard checkpoint (in this state's lineage), the
/// history store and the recorded states. Locked only while every shard is held, after them.
pub(crate) struct Hard<C: Clone + Hash + Eq, P: Clone, A: Clone + Hash + Eq, K: Clone> {
    pub(crate) merkle: MerkleMap,
    pub(crate) history: Arc<dyn HistoryStore>,
    /// Recently recorded or loaded states, looked up by root, never iterated. Bounded to
    /// [`SNAPSHOT_CACHE`] roots: an older root is loaded from the history store again.
    pub(crate) snapshots: HashMap<Digest, Snapshot<C, P, A, K>>,
    /// The roots in `snapshots`, least recently recorded or loaded first.
    pub(crate) recent: VecDeque<Digest>,
}

/// How many recorded states a space keeps in memory for an O(shards) `reset`. Keeping every
/// one would pin every old version of every changed node (memory grows without bound, and each
/// write after a checkpoint copies its path anyway); older roots stay resettable through the
/// history store.
pub const SNAPSHOT_CACHE: usize = 8;

impl<C: Clone + Hash + Eq, P: Clone, A: Clone + Hash + Eq, K: Clone> Hard<C, P, A, K> {
    /// Keeps `snapshot` under `root` as the most recent, dropping the least recent beyond
    /// [`SNAPSHOT_CACHE`]. A root recorded again moves to the back: "recent" is by when a
    /// root was last recorded, not first.
    ///
    /// Time: O([`SNAPSHOT_CACHE`]).
    fn remember(&mut self, root: Digest, snapshot: Snapshot<C, P, A, K>) {
        if self.snapshots.insert(root, snapshot).is_some() {
            self.recent.retain(|r| *r != root);
        }
        self.recent.push_back(root);
        while self.recent.len() > SNAPSHOT_CACHE {
            if let Some(old) = self.recent.pop_front() {
                self.snapshots.remove(&old);
            }
        }
    }
}

const BLOB_DATA: u8 = 0;
const BLOB_CONTS: u8 = 1;

fn data_kind_tag(kind: DataKind) -> u8 {
    match kind {
        DataKind::Bag => 0,
        DataKind::Queue => 1,
        DataKind::Stack => 2,
        DataKind::Set => 3,
        DataKind::Cell => 4,
        DataKind::PriorityQueue => 5,
        DataKind::VectorDb { .. } => 6,
    }
}

fn cont_kind_tag(kind: ContKind) -> u8 {
    match kind {
        ContKind::Bag => 0,
        ContKind::Queue => 1,
        ContKind::Stack => 2,
        ContKind::Set => 3,
    }
}

fn encode_peeks(peeks: &Peeks, out: &mut Vec<u8>) {
    encode_varint(peeks.len() as u64, out);
    for &p in peeks {
        encode_varint(p as u64, out);
    }
}

fn decode_peeks(input: &mut &[u8]) -> Result<Peeks, DecodeError> {
    let n = decode_varint(input)?;
    if n > input.len() as u64 {
        return Err(DecodeError::LengthTooLarge { len: n });
    }
    let mut out = Peeks::new();
    for _ in 0..n {
        out.push(usize::try_from(decode_varint(input)?).map_err(|_| DecodeError::IntOutOfRange)?);
    }
    Ok(out)
}

/// The canonical encoding of one stored datum.
fn datum_bytes<A: Encode>(d: &StoredDatum<A>) -> Vec<u8> {
    let mut out = Vec::with_capacity(d.value.encoded_len() + 10);
    encode_datum(d, &mut out);
    out
}

/// Appends the canonical encoding of one stored datum (also what a shuffled candidate order
/// ranks it by, see [`crate::order`]).
pub(crate) fn encode_datum<A: Encode>(d: &StoredDatum<A>, out: &mut Vec<u8>) {
    d.value.encode(out);
    d.persist.encode(out);
    d.priority.encode(out);
}

/// The canonical encoding of one waiting continuation.
fn cont_bytes<P: Encode, K: Encode>(w: &WaitingContinuation<P, K>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_cont(w, &mut out);
    out
}

/// Appends the canonical encoding of one waiting continuation (also what a shuffled candidate
/// order ranks it by, see [`crate::order`]).
pub(crate) fn encode_cont<P: Encode, K: Encode>(w: &WaitingContinuation<P, K>, out: &mut Vec<u8>) {
    w.patterns[..].encode(out);
    w.continuation.encode(out);
    w.persist.encode(out);
    encode_peeks(&w.peeks, out);
}

/// A leaf's value: the hash of its head (channel or channel list), kind and contents, from the
/// item encodings in canonical order.
fn leaf_value(tag: u8, head: &[u8], kind: u8, multiset: bool, items: &[Vec<u8>]) -> Digest {
    let contents = if multiset {
        hash_multiset(items)
    } else {
        hash_ordered(items)
    };
    let name: &[u8] = if tag == BLOB_DATA {
        b"rhospace/data"
    } else {
        b"rhospace/continuations"
    };
    hash_ordered([name, head, &[kind], &contents])
}

/// A leaf's blob: the contents [`Space::load`] rebuilds it from.
fn leaf_blob(tag: u8, head: &[u8], kind: u8, items: &[Vec<u8>]) -> Vec<u8> {
    let mut blob = vec![tag];
    blob.extend_from_slice(head);
    blob.push(kind);
    encode_varint(items.len() as u64, &mut blob);
    for i in items {
        encode_varint(i.len() as u64, &mut blob);
        blob.extend_from_slice(i);
    }
    blob
}

/// One entry of a checkpoint's trie update.
type Change = (Digest, Option<Digest>);

/// A collection's items in canonical order with their encodings: storage order (oldest first)
/// for ordered kinds, sorted by encoding for multisets.
type Encoded<T> = Vec<(Vec<u8>, T)>;

/// A channel's data in canonical order (see [`Encoded`]), with its kind tag and whether it
/// hashes as a multiset.
fn encoded_data<A: Clone + Hash + Eq + Encode>(
    data: &DataStore<A>,
) -> (u8, bool, Encoded<StoredDatum<A>>) {
    let kind = data.kind();
    let mut items = data.ordered();
    if kind == DataKind::Stack {
        items.reverse(); // storage order: oldest first
    }
    let multiset = matches!(kind, DataKind::Bag | DataKind::Set);
    let mut encoded: Encoded<StoredDatum<A>> =
        items.into_iter().map(|d| (datum_bytes(&d), d)).collect();
    if multiset {
        encoded.sort_by(|a, b| a.0.cmp(&b.0));
    }
    (data_kind_tag(kind), multiset, encoded)
}

/// A join group's continuations in canonical order (see [`Encoded`]).
fn encoded_conts<P: Clone + Eq + Encode, K: Clone + Eq + Encode>(
    store: &ContStore<P, K>,
) -> (u8, bool, Encoded<WaitingContinuation<P, K>>) {
    let kind = store.kind();
    let multiset = matches!(kind, ContKind::Bag | ContKind::Set);
    let mut encoded: Encoded<WaitingContinuation<P, K>> =
        store.all().map(|w| (cont_bytes(w), w.clone())).collect();
    if multiset {
        encoded.sort_by(|a, b| a.0.cmp(&b.0));
    }
    (cont_kind_tag(kind), multiset, encoded)
}

fn encoded<T: Encode + ?Sized>(value: &T) -> Vec<u8> {
    let mut e = Vec::new();
    value.encode(&mut e);
    e
}

fn bytes_of<T>(items: Encoded<T>) -> Vec<Vec<u8>> {
    items.into_iter().map(|(b, _)| b).collect()
}

/// Puts a channel's join-group list into canonical order (sorted by encoding).
fn settle_joins<C: Clone + Eq + Encode, A: Clone + Hash + Eq>(cs: &mut ChannelState<C, A>) {
    if cs.joins.len() > 1 {
        let mut joins: Encoded<Arc<[C]>> = cs
            .joins
            .iter()
            .map(|jk| (encoded(&jk[..]), jk.clone()))
            .collect();
        joins.sort_by(|a, b| a.0.cmp(&b.0));
        cs.joins = joins.into_iter().map(|(_, jk)| jk).collect();
    }
}

/// Puts a channel's Bag or Set data and its join-group list into canonical order, and returns
/// its data leaf value and blob (`None` when it holds no data).
fn settle_channel<C: Clone + Eq + Encode, A: Clone + Hash + Eq + Encode>(
    channel: &C,
    cs: &mut ChannelState<C, A>,
) -> Option<(Digest, Vec<u8>)> {
    settle_joins(cs);
    if cs.data.is_empty() {
        return None;
    }
    let (kind, multiset, items) = encoded_data(&cs.data);
    if multiset {
        let mut data = DataStore::new(cs.data.kind());
        for (_, d) in &items {
            data.push(d.clone());
        }
        cs.data = data;
    }
    let head = encoded(channel);
    let bytes = bytes_of(items);
    let value = leaf_value(BLOB_DATA, &head, kind, multiset, &bytes);
    Some((value, leaf_blob(BLOB_DATA, &head, kind, &bytes)))
}

/// Puts a join group's Bag or Set continuations into canonical order and returns its leaf
/// value and blob.
fn settle_join<C, P, A, K, M>(
    jk: &[C],
    store: &mut ContStore<P, K>,
    matcher: &M,
) -> (Digest, Vec<u8>)
where
    C: Encode,
    P: Clone + Eq + Encode,
    A: Hash,
    K: Clone + Eq + Encode,
    M: Match<P, A>,
{
    let (kind, multiset, items) = encoded_conts(store);
    if multiset {
        let mut fresh = ContStore::new(store.kind());
        // The store's own continuations: a Set's are distinct, so none is checked again.
        for (bytes, w) in &items {
            fresh.push_distinct(w.clone(), bytes, matcher);
        }
        *store = fresh;
    }
    let head = encoded(jk);
    let bytes = bytes_of(items);
    let value = leaf_value(BLOB_CONTS, &head, kind, multiset, &bytes);
    (value, leaf_blob(BLOB_CONTS, &head, kind, &bytes))
}

fn data_key<C: Encode + ?Sized>(channel: &C) -> Digest {
    trie_key(KeyDomain::Data, &encoded(channel))
}

fn join_key<C: Encode>(jk: &[C]) -> Digest {
    trie_key(KeyDomain::Continuations, &encoded(jk))
}

/// Settles one shard's dirty entries: canonical order in `state`, leaf changes and blobs out.
fn settle_shard<C, P, A, K, M>(
    state: &mut State<C, P, A, K>,
    changes: &mut Vec<Change>,
    blobs: &mut Vec<(Digest, Vec<u8>)>,
    matcher: &M,
) where
    C: Clone + Hash + Eq + Encode,
    P: Clone + Eq + Encode,
    A: Clone + Hash + Eq + Encode,
    K: Clone + Eq + Encode,
    M: Match<P, A>,
{
    let dirty = std::mem::take(&mut state.dirty);
    for c in dirty.iter() {
        match state.channels.get_mut(c) {
            // Listed for its join list only: its data, unchanged, keep their leaf.
            Some(cs) if cs.dirty && !cs.data_dirty => {
                cs.dirty = false;
                settle_joins(cs);
            }
            Some(cs) if cs.dirty => {
                cs.dirty = false;
                cs.data_dirty = false;
                match settle_channel(c, cs) {
                    Some((value, blob)) => {
                        changes.push((data_key(c), Some(value)));
                        blobs.push((value, blob));
                    }
                    None => changes.push((data_key(c), None)),
                }
            }
            Some(_) => {} // listed twice (removed, then created again): settled already
            None => changes.push((data_key(c), None)),
        }
    }
    let dirty_joins = std::mem::take(&mut state.dirty_joins);
    for jk in dirty_joins.iter() {
        match state.joins.get_mut(jk) {
            Some(store) if store.dirty => {
                let (value, blob) = settle_join(jk, store, matcher);
                store.dirty = false;
                changes.push((join_key(jk), Some(value)));
                blobs.push((value, blob));
            }
            Some(_) => {} // listed twice (removed, then created again): settled already
            None => changes.push((join_key(jk), None)),
        }
    }
    state.log = Log::default();
}

/// The leaves among `leaves` (the missing leaf nodes of a new root) whose blobs are neither
/// among `blobs` (the dirty entries' blobs, committed anyway) nor in `history`, as trie key →
/// leaf value.
///
/// Time: O(leaves + blobs), plus one store look-up per leaf that is not dirty (none when the
/// store holds this state's lineage: then every missing leaf is a dirty entry's).
fn lacking_blobs(
    leaves: &[(Digest, Digest)],
    blobs: &[(Digest, Vec<u8>)],
    history: &dyn HistoryStore,
) -> Result<HashMap<Digest, Digest>, CheckpointError> {
    let mut lacking = HashMap::new();
    if leaves.is_empty() {
        return Ok(lacking);
    }
    let given: HashSet<&Digest> = blobs.iter().map(|(h, _)| h).collect();
    for (key, value) in leaves {
        if !given.contains(value) && !history.contains(value)? {
            lacking.insert(*key, *value);
        }
    }
    Ok(lacking)
}

/// The blobs of the `lacking` leaves (trie key → leaf value; from [`lacking_blobs`]), built
/// from the settled shard states the new root was computed from, encoded as the dirty path
/// encodes them (without reordering the state). Returned in the order of `leaves`.
///
/// Keys are hashes, so the entries are found by scanning the state: O(channels + join groups)
/// key hashes, stopping once all are found, plus the encoding of each entry found. Only a
/// checkpoint whose store lacks leaves pays this, once: the commit brings them.
///
/// Errors with [`CheckpointError::Corrupt`] (and the checkpoint changes nothing) if a lacking
/// leaf has no entry in the state that hashes to it: the trie and the state disagree, which
/// would be a bug here.
fn clean_blobs<C, P, A, K>(
    states: &[StateRef<C, P, A, K>],
    leaves: &[(Digest, Digest)],
    mut lacking: HashMap<Digest, Digest>,
) -> Result<Vec<(Digest, Vec<u8>)>, CheckpointError>
where
    C: Clone + Hash + Eq + Encode,
    P: Clone + Eq + Encode,
    A: Clone + Hash + Eq + Encode,
    K: Clone + Eq + Encode,
{
    let mut found: HashMap<Digest, Vec<u8>> = HashMap::with_capacity(lacking.len());
    let mismatch = |value: Digest| CheckpointError::Corrupt {
        hash: value,
        reason: "the state's entry does not hash to its trie leaf".into(),
    };
    'scan: for st in states {
        for (c, cs) in st.channels.iter() {
            if lacking.is_empty() {
                break 'scan;
            }
            if cs.data.is_empty() {
                continue;
            }
            let head = encoded(c);
            if let Some(value) = lacking.remove(&trie_key(KeyDomain::Data, &head)) {
                let (kind, multiset, items) = encoded_data(&cs.data);
                let bytes = bytes_of(items);
                if leaf_value(BLOB_DATA, &head, kind, multiset, &bytes) != value {
                    return Err(mismatch(value));
                }
                found.insert(value, leaf_blob(BLOB_DATA, &head, kind, &bytes));
            }
        }
        for (jk, store) in st.joins.iter() {
            if lacking.is_empty() {
                break 'scan;
            }
            let head = encoded(&jk[..]);
            if let Some(value) = lacking.remove(&trie_key(KeyDomain::Continuations, &head)) {
                let (kind, multiset, items) = encoded_conts(store);
                let bytes = bytes_of(items);
                if leaf_value(BLOB_CONTS, &head, kind, multiset, &bytes) != value {
                    return Err(mismatch(value));
                }
                found.insert(value, leaf_blob(BLOB_CONTS, &head, kind, &bytes));
            }
        }
    }
    if let Some(value) = lacking.into_values().next() {
        return Err(CheckpointError::Corrupt {
            hash: value,
            reason: "no entry in the state for a trie leaf the store lacks".into(),
        });
    }
    Ok(leaves
        .iter()
        .filter_map(|(_, value)| found.remove_entry(value))
        .collect())
}

impl<C, P, A, K, M> Space<C, P, A, K, M>
where
    C: Clone + Hash + Eq + Encode,
    P: Clone + Eq + Encode + Sync,
    A: Clone + Hash + Eq + Encode + Sync,
    K: Clone + Eq + Encode,
    M: Match<P, A>,
{
    /// Takes a hard checkpoint (SPEC §6): returns the state root and the event log since the
    /// last checkpoint, clears the log, and records the root in memory and in the history
    /// store, together with every trie node and leaf blob below it that the store lacks (so
    /// the store alone can [`reset`](Self::reset) to it). It also puts each changed Bag or Set
    /// and each changed list of join groups into canonical order (see the module docs), which
    /// is the order later calls try them in.
    ///
    /// All shards are locked for its duration (writers pause). Errors, after which nothing
    /// changes (the log and the changes stay pending): `History` when the history store
    /// failed; `Corrupt` when a leaf the store lacks cannot be rebuilt from the live state
    /// (the trie and the state disagree, which would be a bug); `Replay` while rigged with
    /// logged calls or COMMs left unused ([`ReplayError::Unused`]).
    ///
    /// Time: O(changed entries × their size + changed paths × log₁₆ n), independent of the
    /// channels left unchanged. The first checkpoint after a revert to another space's soft
    /// checkpoint, or after [`with_history`](Self::with_history) switched stores, also stores
    /// what the store lacks of the unchanged state: O(channels + join groups) to find those
    /// entries, plus their size (see the module docs).
    ///
    /// ```
    /// use rhospace_spaces::{Space, SpaceConfig};
    /// use rhospace_matchers::ExactMatch;
    /// let a: Space<u8, u8, u8, u8, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    /// let b: Space<u8, u8, u8, u8, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    /// a.produce(1, 10, false).unwrap();
    /// a.produce(1, 20, false).unwrap();
    /// b.produce(1, 20, false).unwrap(); // a Bag: insertion order does not matter
    /// b.produce(1, 10, false).unwrap();
    /// assert_eq!(a.create_checkpoint().unwrap().root, b.create_checkpoint().unwrap().root);
    /// ```
    pub fn create_checkpoint(&self) -> Result<Checkpoint, CheckpointError> {
        let mut all = AllLocked::lock(&self.shards);
        let mut replay = self.replay.lock();
        if let Some(rig) = &replay.rig {
            rig.expect.finished().map_err(CheckpointError::Replay)?;
        }
        let mut hard = self.hard.lock();
        let len = all.guards.iter().map(|g| g.state.log.len()).sum();
        let log = hash_events(all.guards.iter().map(|g| &g.state.log), len);
        // Work on copies (O(1) each): on error nothing changes.
        let mut states: Vec<StateRef<C, P, A, K>> =
            all.guards.iter().map(|g| g.state.clone()).collect();
        let mut changes = Vec::new();
        let mut blobs = Vec::new();
        for st in states.iter_mut() {
            if !st.dirty.is_empty() || !st.dirty_joins.is_empty() || !st.log.is_empty() {
                settle_shard(
                    triomphe::Arc::make_mut(st),
                    &mut changes,
                    &mut blobs,
                    &self.matcher,
                );
            }
        }
        let mut merkle = hard.merkle.clone();
        merkle.apply(changes);
        let root = merkle.root();
        let history = hard.history.clone();
        let missing = merkle.missing_nodes(|h| history.contains(h))?;
        // Leaves the store lacks that are not dirty now (a state brought from another space's
        // soft checkpoint, or a store switched in by `with_history`): their blobs come from the
        // live state. Empty, and no look-ups, when the store already holds this lineage.
        let lacking = lacking_blobs(&missing.leaves, &blobs, &*history)?;
        let mut commit = missing.nodes;
        commit.extend(blobs);
        if !lacking.is_empty() {
            commit.extend(clean_blobs(&states, &missing.leaves, lacking)?);
        }
        history.commit(&commit, root)?;
        for (g, st) in all.guards.iter_mut().zip(&states) {
            g.state = st.clone();
        }
        hard.remember(root, (states.into(), merkle.clone()));
        hard.merkle = merkle;
        if replay.rig.take().is_some() {
            for g in all.guards.iter_mut() {
                g.replaying = false;
            }
        }
        Ok(Checkpoint { root, log })
    }
}

impl<C, P, A, K, M> Space<C, P, A, K, M>
where
    C: Clone + Hash + Eq + Encode,
    P: Clone + Eq + Encode + Sync,
    A: Clone + Hash + Eq + Encode + Sync,
    K: Clone + Eq + Encode,
    M: Match<P, A>,
{
    /// The state root of the current contents, computed from scratch: every channel and join
    /// group encoded and hashed, and a new trie built. Changes nothing. This is what
    /// [`create_checkpoint`](Self::create_checkpoint) computes incrementally; it exists to check
    /// that (tests) and as its benchmark baseline. Pending changes count as they stand, so after
    /// a checkpoint with nothing changed since, both agree.
    ///
    /// Time: O(size of the state).
    ///
    /// ```
    /// use rhospace_spaces::{Space, SpaceConfig};
    /// use rhospace_matchers::ExactMatch;
    /// let s: Space<u8, u8, u8, u8, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    /// s.produce(1, 2, false).unwrap();
    /// s.consume([3, 4], [0, 0], 9, false, &[]).unwrap();
    /// let full = s.full_state_root();
    /// assert_eq!(s.create_checkpoint().unwrap().root, full);
    /// ```
    pub fn full_state_root(&self) -> Digest {
        let all = AllLocked::lock(&self.shards);
        let mut changes = Vec::new();
        for g in all.guards.iter() {
            for (c, cs) in g
                .state
                .channels
                .iter()
                .filter(|(_, cs)| !cs.data.is_empty())
            {
                let (kind, multiset, items) = encoded_data(&cs.data);
                let value = leaf_value(BLOB_DATA, &encoded(c), kind, multiset, &bytes_of(items));
                changes.push((data_key(c), Some(value)));
            }
            for (jk, store) in g.state.joins.iter() {
                let (kind, multiset, items) = encoded_conts(store);
                let value = leaf_value(
                    BLOB_CONTS,
                    &encoded(&jk[..]),
                    kind,
                    multiset,
                    &bytes_of(items),
                );
                changes.push((join_key(jk), Some(value)));
            }
        }
        drop(all);
        let mut merkle = MerkleMap::new();
        merkle.apply(changes);
        merkle.root()
    }
}

impl<C, P, A, K, M> Space<C, P, A, K, M>
where
    C: Clone + Hash + Eq + Encode + Decode,
    P: Clone + Eq + Encode + Decode + Sync,
    A: Clone + Hash + Eq + Encode + Decode + Sync,
    K: Clone + Eq + Encode + Decode,
    M: Match<P, A>,
{
    /// Restores the state recorded under `root` (SPEC §6): from memory when this space
    /// recorded it, else from the history store (a root an earlier process recorded). The
    /// event log is cleared; installed continuations stay. [`EMPTY_ROOT`] is always known: it is
    /// [`clear`](Self::clear).
    ///
    /// Errors (nothing changes): `UnknownRoot`, a failing or corrupt store, a stored kind this
    /// space configures differently.
    ///
    /// Time: O(shards) for a root in memory; O(size of the state) to load one from the store.
    ///
    /// ```
    /// use rhospace_spaces::{Space, SpaceConfig};
    /// use rhospace_matchers::ExactMatch;
    /// let s: Space<u8, u8, u8, u8, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    /// s.produce(1, 10, false).unwrap();
    /// let one = s.create_checkpoint().unwrap().root;
    /// s.produce(2, 20, false).unwrap();
    /// s.create_checkpoint().unwrap();
    /// s.reset(&one).unwrap();
    /// assert!(s.data(&2).is_empty());
    /// assert_eq!(s.data(&1)[0].value, 10);
    /// ```
    pub fn reset(&self, root: &Digest) -> Result<(), CheckpointError> {
        self.reset_to(root, None)
    }

    /// Rigs the space for replay (SPEC §7): resets it to `start` (as [`reset`](Self::reset))
    /// and from then on checks every produce and consume against `log`, the log of the
    /// checkpoint being replayed:
    /// - a call the log does not hold is refused with
    ///   `ErrorKind::Replay(ReplayError::EventNotInLog)`;
    /// - when several assignments match, the first one (in candidate order) whose COMM the log
    ///   holds fires, so the log, not the candidate order, decides;
    /// - a call that would fire while the log holds none of its possible COMMs is refused with
    ///   `ErrorKind::Replay(ReplayError::CommNotInLog)`;
    /// - [`create_checkpoint`](Self::create_checkpoint) refuses with
    ///   `CheckpointError::Replay(ReplayError::Unused)` while logged calls or COMMs are left,
    ///   and otherwise returns the root and ends the replay.
    ///
    /// `log` is a `Vec` (dropped once the replay's index is built from it) or a borrowed
    /// `&Vec` or slice. Every refusal changes nothing. The log is taken as multisets of calls
    /// and of COMMs (its order is per shard, see [`Checkpoint::log`]); counters must run 0, 1,
    /// 2, … per hash, or the rig fails with `ReplayError::BadCounter` and nothing changes. A
    /// soft checkpoint taken during the replay restores what the replay still expects when
    /// reverted to in the same replay. [`reset`](Self::reset) and [`clear`](Self::clear) end a
    /// replay.
    ///
    /// A produce's hash covers its priority (on a PriorityQueue channel), so a logged produce
    /// made again with another priority is refused too. Limit: a call is identified by its
    /// hash alone; an event's kind (`Produce` or `Consume`) is not checked against the call.
    /// Produce and consume hashes are domain-separated, so only a log no space wrote can
    /// mislabel one, and replaying against it writes a log with the true kinds.
    ///
    /// Time: O(log size) to rig; then each call costs its play cost plus hashing the call, and
    /// for each assignment met, the COMM's hashes. Each lookup in the log is expected O(1);
    /// when the calls come in play's order on a space with play's shard count, nearly all are
    /// answered by per-shard cursors into the log's order, without a hash-table lookup (see
    /// the `replay` module).
    ///
    /// ```
    /// use rhospace_spaces::{ErrorKind, ReplayError, Space, SpaceConfig};
    /// use rhospace_matchers::ExactMatch;
    /// let play: Space<u8, u8, u8, u8, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    /// let start = play.create_checkpoint().unwrap().root;
    /// play.produce(1, 7, false).unwrap();
    /// play.produce(1, 8, false).unwrap();
    /// play.consume([1], [8], 0, false, &[]).unwrap();
    /// let block = play.create_checkpoint().unwrap();
    ///
    /// let replay: Space<u8, u8, u8, u8, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    /// replay.rig(&start, &block.log).unwrap();
    /// replay.produce(1, 7, false).unwrap();
    /// // Not in the log: refused, nothing changes.
    /// let err = replay.produce(1, 9, false).unwrap_err();
    /// assert!(matches!(err.kind(), ErrorKind::Replay(ReplayError::EventNotInLog { .. })));
    /// replay.produce(1, 8, false).unwrap();
    /// assert!(replay.consume([1], [8], 0, false, &[]).unwrap().is_some());
    /// assert_eq!(replay.create_checkpoint().unwrap().root, block.root);
    /// ```
    pub fn rig<'l>(
        &self,
        start: &Digest,
        log: impl Into<Cow<'l, [LogEvent]>>,
    ) -> Result<(), CheckpointError> {
        let expect = Expect::from_log(log.into()).map_err(CheckpointError::Replay)?;
        let hash = Hashers {
            produce: produce_hash_with_priority::<C, A>,
            consume: consume_hash::<C, P, K>,
        };
        self.reset_to(start, Some((expect, hash)))
    }

    /// Resets to `root` and rigs (or, with `None`, un-rigs) the space, all under the shard
    /// locks at once.
    #[allow(clippy::type_complexity)]
    fn reset_to(
        &self,
        root: &Digest,
        rig: Option<(Expect, Hashers<C, P, A, K>)>,
    ) -> Result<(), CheckpointError> {
        let target = if *root == EMPTY_ROOT {
            None
        } else {
            let known = self.hard.lock().snapshots.get(root).cloned();
            Some(match known {
                Some(s) => s,
                None => {
                    let history = self.hard.lock().history.clone();
                    if !history.has_root(root)? {
                        return Err(CheckpointError::UnknownRoot(*root));
                    }
                    let loaded = self.load(root, &*history)?;
                    self.hard.lock().remember(*root, loaded.clone());
                    loaded
                }
            })
        };
        let mut old = Vec::with_capacity(self.shards.len());
        let mut all = AllLocked::lock(&self.shards);
        let merkle = match target {
            Some((states, merkle)) => {
                for (g, st) in all.guards.iter_mut().zip(states.iter()) {
                    old.push(std::mem::replace(&mut g.state, st.clone()));
                }
                merkle
            }
            None => {
                for g in all.guards.iter_mut() {
                    old.push(std::mem::take(&mut g.state));
                }
                MerkleMap::new()
            }
        };
        self.set_replay(&mut all, rig);
        let old_merkle = std::mem::replace(&mut self.hard.lock().merkle, merkle);
        drop(all);
        drop(old_merkle);
        drop(old);
        Ok(())
    }

    /// Rebuilds the per-shard states of `root` from the history store, verifying every node and
    /// blob.
    fn load(
        &self,
        root: &Digest,
        history: &dyn HistoryStore,
    ) -> Result<Snapshot<C, P, A, K>, CheckpointError> {
        let merkle = MerkleMap::load(root, |h| history.get(h)).map_err(|e| match e {
            LoadError::Store(e) => CheckpointError::History(e),
            LoadError::Missing(h) => CheckpointError::Corrupt {
                hash: h,
                reason: "missing node".into(),
            },
            other => CheckpointError::Corrupt {
                hash: *root,
                reason: other.to_string(),
            },
        })?;
        let mut states: Vec<State<C, P, A, K>> =
            (0..self.shards.len()).map(|_| State::default()).collect();
        let mut groups: Vec<Arc<[C]>> = Vec::new();
        for (key, value) in merkle.iter() {
            let blob = history
                .get(value)?
                .ok_or_else(|| CheckpointError::Corrupt {
                    hash: *value,
                    reason: "missing leaf blob".into(),
                })?;
            let corrupt = |e: DecodeError| CheckpointError::Corrupt {
                hash: *value,
                reason: e.to_string(),
            };
            let mut input = &blob[..];
            let tag = u8::decode(&mut input).map_err(corrupt)?;
            let head_start = input;
            match tag {
                BLOB_DATA => {
                    let channel = C::decode(&mut input).map_err(corrupt)?;
                    let head = &head_start[..head_start.len() - input.len()];
                    if trie_key(KeyDomain::Data, head) != *key {
                        return Err(corrupt(DecodeError::Invalid("data leaf key")));
                    }
                    let kind = self.config.kind_of(&channel);
                    let items = read_items(&mut input, data_kind_tag(kind), *value)?;
                    if items.is_empty() {
                        // A checkpoint keeps no leaf for a channel without data.
                        return Err(corrupt(DecodeError::Invalid("empty data leaf")));
                    }
                    let mut data = DataStore::new(kind);
                    // A PriorityQueue's blob lists its items as the queue hands them out
                    // (highest priority first); the queue would reorder any other order.
                    let mut last_priority = i64::MAX;
                    for item in &items {
                        let mut i = &item[..];
                        let d = StoredDatum {
                            value: A::decode(&mut i).map_err(corrupt)?,
                            persist: bool::decode(&mut i).map_err(corrupt)?,
                            priority: i64::decode(&mut i).map_err(corrupt)?,
                        };
                        if !i.is_empty() {
                            return Err(corrupt(DecodeError::TrailingBytes { count: i.len() }));
                        }
                        // Only a PriorityQueue stores a priority; every other kind stores 0.
                        if d.priority != 0 && kind != DataKind::PriorityQueue {
                            return Err(corrupt(DecodeError::Invalid("priority")));
                        }
                        if d.priority > last_priority {
                            return Err(corrupt(DecodeError::Invalid("priority order")));
                        }
                        last_priority = d.priority;
                        if kind
                            .check_embedding(self.matcher.embedding(&d.value))
                            .is_err()
                        {
                            return Err(corrupt(DecodeError::Invalid("embedding")));
                        }
                        // What a produce would refuse (a Set's duplicate, a Cell's second
                        // datum), no checkpoint can have stored.
                        if !matches!(would_store(kind, Some(&data), &d.value), Ok(true)) {
                            return Err(corrupt(DecodeError::Invalid("datum its kind refuses")));
                        }
                        data.push_embedded(d, |a| self.matcher.embedding(a));
                    }
                    let multiset = matches!(kind, DataKind::Bag | DataKind::Set);
                    let check = leaf_value(BLOB_DATA, head, data_kind_tag(kind), multiset, &items);
                    if check != *value || data.len() != items.len() {
                        return Err(corrupt(DecodeError::Invalid("data leaf hash")));
                    }
                    if multiset && !items.is_sorted() {
                        // The hash ignores a multiset's order; the state does not (oldest
                        // first), so only the canonical order a checkpoint writes loads.
                        return Err(corrupt(DecodeError::Invalid("data order")));
                    }
                    let st = &mut states[self.router.shard_of(&channel)];
                    match st.channels.get_mut(&channel) {
                        Some(cs) => cs.data = data,
                        None => {
                            st.channels.insert(
                                channel,
                                ChannelState {
                                    data,
                                    joins: JoinList::new(),
                                    dirty: false,
                                    data_dirty: false,
                                },
                            );
                        }
                    }
                }
                BLOB_CONTS => {
                    let jk: Vec<C> = Vec::decode(&mut input).map_err(corrupt)?;
                    let head = &head_start[..head_start.len() - input.len()];
                    if jk.is_empty() {
                        return Err(corrupt(DecodeError::Invalid("empty channel list")));
                    }
                    if trie_key(KeyDomain::Continuations, head) != *key {
                        return Err(corrupt(DecodeError::Invalid("continuation leaf key")));
                    }
                    let kind = self.config.continuation_kind();
                    let items = read_items(&mut input, cont_kind_tag(kind), *value)?;
                    let mut store = ContStore::new(kind);
                    for item in &items {
                        let mut i = &item[..];
                        let patterns: Vec<P> = Vec::decode(&mut i).map_err(corrupt)?;
                        let mut w = WaitingContinuation::new(
                            patterns.into(),
                            K::decode(&mut i).map_err(corrupt)?,
                            bool::decode(&mut i).map_err(corrupt)?,
                            decode_peeks(&mut i).map_err(corrupt)?,
                        );
                        // What a consume accepts, with its peeks as it normalises them and
                        // its similarity queries of its VectorDB channels' dimensions.
                        let valid = validate(&jk, &w.patterns, &w.peeks)
                            .is_ok_and(|peeks| peeks == w.peeks)
                            && self.check_queries(&jk, &w.patterns).is_ok();
                        if !i.is_empty() || !valid {
                            return Err(corrupt(DecodeError::Invalid("continuation")));
                        }
                        self.keep_encoded_call(&jk, &mut w);
                        // A Set store never holds two equal continuations.
                        if !store.push(w, &self.matcher) {
                            return Err(corrupt(DecodeError::Invalid("duplicate continuation")));
                        }
                    }
                    let multiset = matches!(kind, ContKind::Bag | ContKind::Set);
                    let check = leaf_value(BLOB_CONTS, head, cont_kind_tag(kind), multiset, &items);
                    if check != *value || store.is_empty() {
                        return Err(corrupt(DecodeError::Invalid("continuation leaf hash")));
                    }
                    if multiset && !items.is_sorted() {
                        return Err(corrupt(DecodeError::Invalid("continuation order")));
                    }
                    let jk: Arc<[C]> = jk.into();
                    let home = self.router.shard_of(&jk[0]);
                    states[home].joins.insert(jk.clone(), store);
                    groups.push(jk);
                }
                _ => return Err(corrupt(DecodeError::Invalid("leaf blob tag"))),
            }
            if !input.is_empty() {
                return Err(corrupt(DecodeError::TrailingBytes { count: input.len() }));
            }
        }
        // Each channel lists its join groups in canonical order (as a checkpoint leaves them).
        let mut keyed: Vec<(Vec<u8>, Arc<[C]>)> = groups
            .into_iter()
            .map(|jk| (encoded(&jk[..]), jk))
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, jk) in keyed {
            for (i, c) in jk.iter().enumerate() {
                if jk[..i].contains(c) {
                    continue;
                }
                let st = &mut states[self.router.shard_of(c)];
                if !st.channels.contains_key(c) {
                    st.channels.insert(
                        c.clone(),
                        ChannelState {
                            data: DataStore::new(self.config.kind_of(c)),
                            joins: JoinList::new(),
                            dirty: false,
                            data_dirty: false,
                        },
                    );
                }
                if let Some(cs) = st.channels.get_mut(c) {
                    cs.joins.push_back(jk.clone());
                }
            }
        }
        let states: ShardStates<C, P, A, K> = states.into_iter().map(StateRef::new).collect();
        Ok((states, merkle))
    }
}

/// Reads a leaf blob's kind byte (which must be `kind`) and its length-prefixed items.
fn read_items(input: &mut &[u8], kind: u8, leaf: Digest) -> Result<Vec<Vec<u8>>, CheckpointError> {
    let corrupt = |e: DecodeError| CheckpointError::Corrupt {
        hash: leaf,
        reason: e.to_string(),
    };
    let stored = u8::decode(input).map_err(corrupt)?;
    if stored != kind {
        return Err(CheckpointError::KindMismatch { hash: leaf });
    }
    let n = decode_varint(input).map_err(corrupt)?;
    if n > input.len() as u64 {
        return Err(corrupt(DecodeError::LengthTooLarge { len: n }));
    }
    let mut items = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let len = decode_varint(input).map_err(corrupt)?;
        let len_usize = usize::try_from(len).unwrap_or(usize::MAX);
        if len_usize > input.len() {
            return Err(corrupt(DecodeError::LengthTooLarge { len }));
        }
        let (item, rest) = input.split_at(len_usize);
        items.push(item.to_vec());
        *input = rest;
    }
    Ok(items)
}
