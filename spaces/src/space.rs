//! The tuple space: produce, consume, install, views and soft checkpoints.

pub(crate) mod batch;
pub(crate) mod hard;
#[cfg(test)]
mod produce_search_tests;
#[cfg(test)]
mod replay_cursor_tests;
mod single;
#[cfg(test)]
mod single_tests;

use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::Hash;
use std::ops::ControlFlow;
use std::sync::Arc;

use rhospace_matchers::Match;
use rhospace_phlogiston::OutOfPhlogiston;
use smallvec::SmallVec;

use crate::admission::{Admission, Gate, OpKind, Open, VectorWork};
use crate::budget::{Budget, Cap, NoCap};
use crate::call_list::CallList;
use crate::comm::{Comm, MatchedDatum};
use crate::conts::{ContStore, Peeks, Vetted, WaitingContinuation};
use crate::data::{DataStore, ItemKey, StoredDatum};
use crate::encode::Encode;
use crate::error::{ConsumeError, ErrorKind, ProduceError, RevertError};
use crate::history::{HistoryStore, MemoryHistory};
use crate::join::{incoming_fits, Fit, Found, Guide, Incoming, Join};
use crate::join_list::JoinList;
use crate::kind::{DataKind, SpaceConfig};
use crate::log::CommRecord;
use crate::log::{Call, EncodedCall, Log, LoggedCall};
use crate::merkle::{Digest, MerkleMap};
use crate::order::{group_rank, Ranker};
use crate::parallel::{search, ScanOn, MAX_SCAN_THREADS, PARALLEL_MIN_CANDIDATES};
use crate::replay::{Expect, Hashers, ReplayError, ReplayState, Rig};
use crate::shard::{AllLocked, LockSet, Padded, Router, DEFAULT_SHARDS};
use crate::state_map::StateMap;
use crate::sync::{Mutex, MutexGuard};
use crate::trail::Trail;
use hard::Hard;

/// The most channels one consume or install may join. Joins are matched by a complete search
/// whose recursion depth is the arity, so the arity is bounded.
pub const MAX_JOIN: usize = 64;

/// One channel: its data and the join groups (channel lists) it takes part in, oldest first
/// (canonical order after a hard checkpoint).
/// Invariant: a channel with no data and no join group has no entry. `dirty` is true exactly
/// when the channel is listed in its shard's `State::dirty`; `data_dirty` (which implies
/// `dirty`) when its data may differ from the last hard checkpoint's, so that checkpoint
/// re-encodes them. A channel listed only for its join list (`dirty` without `data_dirty`)
/// has just that list put in canonical order: its data, unchanged, are not re-encoded.
#[derive(Clone, Debug)]
pub(crate) struct ChannelState<C, A: Clone + Hash + Eq> {
    pub(crate) data: DataStore<A>,
    pub(crate) joins: JoinList<C>,
    pub(crate) dirty: bool,
    pub(crate) data_dirty: bool,
}

impl<C: Clone, A: Clone + Hash + Eq> ChannelState<C, A> {
    /// Lists this channel (`channel`) in its shard's `dirty` on its first change since the
    /// last hard checkpoint.
    #[inline]
    fn list_change(&mut self, channel: &C, dirty: &mut Trail<C>) {
        if !self.dirty {
            self.dirty = true;
            dirty.push(channel.clone());
        }
    }

    /// As [`list_change`](Self::list_change), for a change of its data: marks them as changed
    /// too.
    #[inline]
    fn list_data_change(&mut self, channel: &C, dirty: &mut Trail<C>) {
        self.list_change(channel, dirty);
        self.data_dirty = true;
    }
}

/// One shard's state: everything a soft checkpoint captures. Cloning is O(1): the maps and
/// lists are persistent.
/// Invariants: `joins` holds only non-empty stores, and every channel of a key in `joins` lists
/// that key in its `ChannelState::joins`, and no other keys. Every channel or join group whose
/// contents may differ from the last hard checkpoint's trie is listed in `dirty` /
/// `dirty_joins`, once per checkpoint period (through their `dirty` flags), and a removed one
/// stays listed.
#[derive(Clone, Debug)]
pub(crate) struct State<C: Clone + Hash + Eq, P: Clone, A: Clone + Hash + Eq, K: Clone> {
    pub(crate) channels: StateMap<C, ChannelState<C, A>>,
    pub(crate) joins: StateMap<Arc<[C]>, ContStore<P, K>>,
    pub(crate) dirty: Trail<C>,
    pub(crate) dirty_joins: Trail<Arc<[C]>>,
    /// Events since the last hard checkpoint, in this shard's order (SPEC §7).
    pub(crate) log: Log,
}

impl<C: Clone + Hash + Eq, P: Clone, A: Clone + Hash + Eq, K: Clone> Default for State<C, P, A, K> {
    fn default() -> Self {
        Self {
            channels: StateMap::default(),
            joins: StateMap::default(),
            dirty: Trail::default(),
            dirty_joins: Trail::default(),
            log: Log::default(),
        }
    }
}

impl<C: Clone + Hash + Eq, P: Clone, A: Clone + Hash + Eq, K: Clone> State<C, P, A, K> {
    /// The channel, for a change of its data: listed as dirty on its first change since the
    /// last hard checkpoint, its data marked as changed.
    #[inline]
    pub(crate) fn touch(&mut self, channel: &C) -> Option<&mut ChannelState<C, A>> {
        let cs = self.channels.get_mut(channel)?;
        cs.list_data_change(channel, &mut self.dirty);
        Some(cs)
    }

    /// The channel, for a change of its join list only: listed as dirty on its first change
    /// since the last hard checkpoint (which puts the list in canonical order), its data left
    /// unmarked.
    #[inline]
    pub(crate) fn touch_joins(&mut self, channel: &C) -> Option<&mut ChannelState<C, A>> {
        let cs = self.channels.get_mut(channel)?;
        cs.list_change(channel, &mut self.dirty);
        Some(cs)
    }

    /// A COMM's use of item `key` of `channel`'s data, in one map walk: copies it when it
    /// stays (persistent, or `peek`), leaving the channel unlisted (a read changes nothing
    /// the next hard checkpoint must re-encode); else takes it, listing the channel as
    /// changed (as [`touch`](Self::touch)), and, when `tidy`, compacts the data and reports
    /// whether the channel is left with no data and no join group (`Some(now_empty)`; the
    /// caller drops it). Returns the datum, whether it was persistent, and that report.
    #[inline]
    pub(crate) fn take_or_copy(
        &mut self,
        channel: &C,
        key: ItemKey,
        peek: bool,
        tidy: bool,
    ) -> Option<((A, bool), Option<bool>)> {
        let cs = self.channels.get_mut(channel)?;
        let stored = cs.data.get(key)?;
        if stored.persist || peek {
            return Some(((stored.value.clone(), stored.persist), None));
        }
        cs.list_data_change(channel, &mut self.dirty);
        let taken = cs.data.take(key).map(|d| (d.value, d.persist))?;
        let tidied = tidy.then(|| {
            cs.data.tidy();
            cs.data.is_empty() && cs.joins.is_empty()
        });
        Some((taken, tidied))
    }

    /// The channel, created with `kind` when absent, for a change (listed as dirty; its data
    /// marked as changed when `data`). A channel created here always has its data marked: it
    /// may have held data at the last hard checkpoint (emptied and dropped since), whose leaf
    /// that checkpoint must remove; settling empty data costs nothing.
    pub(crate) fn touch_or_insert(
        &mut self,
        channel: &C,
        kind: DataKind,
        data: bool,
    ) -> &mut ChannelState<C, A> {
        if !self.channels.contains_key(channel) {
            self.dirty.push(channel.clone());
            self.channels.insert(
                channel.clone(),
                ChannelState {
                    data: DataStore::new(kind),
                    joins: JoinList::new(),
                    dirty: true,
                    data_dirty: true,
                },
            );
        }
        let cs = if data {
            self.touch(channel)
        } else {
            self.touch_joins(channel)
        };
        match cs {
            Some(cs) => cs,
            None => unreachable_cont(),
        }
    }
}

/// One installed continuation with its channel list. Shared (`Arc`) by the shards of all
/// its channels.
#[derive(Debug)]
struct InstalledEntry<C, P, K> {
    list: Arc<[C]>,
    w: WaitingContinuation<P, K>,
}

/// A produce's passing pre-check of a continuation: its matcher calls, the vector elements
/// they scored, and where the datum fits (see [`incoming_fits`]).
type Passed<R> = (u64, u64, Fit<R>);

/// A COMM's matches, as [`Comm::matches`] holds them.
type Matches<A, R> = SmallVec<[MatchedDatum<A, R>; 2]>;

/// What a COMM's log record needs besides the COMM, and what it may copy instead of encoding
/// again (see `Log::push_comm`).
#[derive(Default)]
struct LogReuse {
    /// The call encoding its continuation kept (a persistent one; see [`WaitingContinuation`]).
    call: Option<EncodedCall>,
    /// Bit `i`: the COMM's match `i` (below 64) is the datum of the produce that fired it
    /// (logged just before, in the same shard's log, unless a replay hashed it).
    produced: u64,
    /// The COMM's data with a priority other than 0 (PriorityQueue data), as `(match index,
    /// priority)`: their produce hashes cover it (a COMM does not report priorities).
    priorities: Priorities,
}

/// `(match index, priority)` of a COMM's data whose priority is not 0, ascending: empty
/// unless the COMM took PriorityQueue data (inline for one).
type Priorities = SmallVec<[(u32, i64); 1]>;

impl LogReuse {
    /// Notes the priority of match `index`, the item `key` names, unless it is 0.
    #[inline]
    fn note_priority(&mut self, index: usize, key: ItemKey) {
        let priority = key.priority();
        if priority != 0 {
            // A match's index is below `MAX_JOIN` times a top-k's `k`: it fits.
            self.priorities.push((index as u32, priority));
        }
    }
}

/// The installed continuations on one channel, in install order.
type InstalledList<C, P, K> = SmallVec<[Arc<InstalledEntry<C, P, K>>; 1]>;

/// One state per shard, in shard order.
pub(crate) type ShardStates<C, P, A, K> = Arc<[StateRef<C, P, A, K>]>;

/// A shard's state as shards and checkpoints share it: a `triomphe::Arc`, whose uniqueness
/// check before each write (`make_mut`) is one load instead of std's locked compare-and-swap.
pub(crate) type StateRef<C, P, A, K> = triomphe::Arc<State<C, P, A, K>>;

/// The shard locks of a space, in shard order.
type ShardLocks<C, P, A, K> = Box<[Padded<Mutex<Shard<C, P, A, K>>>]>;

/// A produce's search. The assignment is in the [`Found`] slot the search was lent.
struct ProduceSearch<C, P, K> {
    /// Matcher calls made (matching work, for metering).
    examined: u64,
    /// Similarity rankings run and vector elements scored (for metering).
    vector: VectorWork,
    /// The continuation to fire (its assignment is in the search's [`Found`] slot).
    hit: Option<Source<C, P, K>>,
    /// Replay: a guide rejected an assignment (play would have fired a COMM).
    rejected: bool,
    /// Replay: the logged COMM the hit fires, with its slot in the rig's expectations.
    record: Option<(CommRecord, usize)>,
}

/// The replay lock's guard while an operation runs rigged.
type ReplayGuard<'a, C, P, A, K> = MutexGuard<'a, ReplayState<C, P, A, K>>;

/// The rig behind a held replay lock, if any.
fn rig_of<'g, C, P, A, K>(
    guard: &'g mut Option<ReplayGuard<'_, C, P, A, K>>,
) -> Option<&'g mut Rig<C, P, A, K>> {
    guard.as_mut().and_then(|g| g.rig.as_mut())
}

/// Whether a produce of `datum` onto a channel of `kind` holding `data` stores it: `false` when
/// a Set already holds it (the produce is accepted and changes nothing); `CellFull` when a Cell
/// holds a datum. The one rule for the fast path and [`Space::produce_in`].
fn would_store<A: Clone + Hash + Eq>(
    kind: DataKind,
    data: Option<&DataStore<A>>,
    datum: &A,
) -> Result<bool, ErrorKind> {
    match (kind, data) {
        (DataKind::Cell, Some(d)) if !d.is_empty() => Err(ErrorKind::CellFull),
        (DataKind::Set, Some(d)) => Ok(!d.contains_value(datum)),
        _ => Ok(true),
    }
}

/// Logs a produce call in `log`: its hash when a replay has already computed it, else the
/// call's encodings (hashed at the next hard checkpoint).
#[inline(always)]
fn log_produce<C: Encode, A: Encode>(
    log: &mut Log,
    channel: &C,
    datum: &A,
    persist: bool,
    priority: i64,
    hashed: Option<Logged>,
) {
    match hashed {
        Some((h, _)) => log.push_hashed_produce(&h),
        None => log.push_produce(channel, datum, persist, priority),
    }
}

/// A replayed call's hash and its slot in the rig's expectations.
type Logged = (Digest, usize);

/// The positions of a consume's (or install's) channel list whose channel's exact index the
/// call's search built, before its gate (or a replay's log) decided on the call: bit `i` for
/// position `i` (a list has at most [`MAX_JOIN`] positions), a repeated channel under its
/// first position only. A produce's search, which builds its join partners' indexes, notes
/// their channels in a [`BuiltPartners`] list instead.
///
/// Building lists nothing as changed. At the decision, before anything else changes,
/// [`View::settle_built`] (or [`View::settle_partners`]) keeps the indexes of an admitted
/// call, listing their channels as changed (the next hard checkpoint drops the indexes, as
/// for any change), and drops those of a refused one: a refusal then changes nothing
/// (SPEC §5), not even the `examined` of later calls, which the index decides and which is
/// charged (SPEC §8), and a replay that refuses a call charges as play did (SPEC §7). Every
/// path from a search that may build to a return settles once: each gate's verdict, and
/// each `CommNotInLog` refusal of a replay. (A one-channel firing settles both ways too: its
/// pick, when it stays, does not list the channel.) A word, not a list: on the hot path (no
/// index built) it costs a register and a test.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Built(u64);

// Every position of a channel list has its bit.
const _: () = assert!(MAX_JOIN <= u64::BITS as usize);

impl Built {
    /// Position 0 when `built` (a one-channel walk's report).
    #[inline]
    fn first(built: bool) -> Self {
        Self(u64::from(built))
    }

    /// Notes that the index of the channel at `position` was built.
    #[inline]
    fn add(&mut self, position: usize) {
        self.0 |= 1 << position;
    }
}

/// The channels whose exact index a produce's search built: the big channels its join
/// groups and installed continuations read by an exact key (see [`Built`] and
/// `Space::index_partners`). Inline for two: most produces build none (a
/// channel keeps its index until a hard checkpoint or until it is emptied), so it never
/// allocates on the hot path.
type BuiltPartners<C> = SmallVec<[C; 2]>;

/// A call's replay bookkeeping, handed to a firing: the held replay lock (if any), the call's
/// hash and slot, and the COMM record the log's guide accepted with its slot. In play, all
/// three are absent.
struct Replayed<'r, 'g, C, P, A, K> {
    guard: &'r mut Option<ReplayGuard<'g, C, P, A, K>>,
    event: Option<Logged>,
    record: Option<(CommRecord, usize)>,
}

/// Strikes a replayed call's event (and the COMM it fired, by slot) from what the rig expects.
fn strike<C, P, A, K>(
    guard: &mut Option<ReplayGuard<'_, C, P, A, K>>,
    event: Option<Logged>,
    comm: Option<usize>,
) {
    if let Some(rig) = rig_of(guard) {
        if let Some((_, slot)) = event {
            rig.expect.strike_event(slot);
        }
        if let Some(slot) = comm {
            rig.expect.strike_comm(slot);
        }
    }
}

/// Installed continuations on one shard's channels: outside checkpointed state, so revert,
/// reset and clear keep them.
/// Invariant: `by_channel[c]` lists, in install order, the entries whose channel list
/// contains `c` (each once).
#[derive(Debug)]
struct Installed<C, P, K> {
    // Looked up, never iterated.
    by_channel: HashMap<C, InstalledList<C, P, K>, foldhash::fast::RandomState>,
}

impl<C, P, K> Default for Installed<C, P, K> {
    fn default() -> Self {
        Self {
            by_channel: HashMap::default(),
        }
    }
}

/// One shard: the state of the channels routed to it (and of the join groups homed on them),
/// and their installed continuations.
///
/// The state sits behind an `Arc` so a soft checkpoint shares it with one reference-count
/// increment per shard; the first write after a checkpoint copies the shard's state header
/// (two map roots and three trail heads), the first write to each channel or join group then
/// copies that entry's state (see [`crate::state_map`]), and later writes mutate in place.
#[derive(Debug)]
struct Shard<C: Clone + Hash + Eq, P: Clone, A: Clone + Hash + Eq, K: Clone> {
    state: StateRef<C, P, A, K>,
    installed: Installed<C, P, K>,
    /// Whether the space is rigged for replay. Written only while every shard is held (by
    /// `rig`, the checkpoint that ends a replay, `reset` and `clear`), so an operation reads a
    /// settled value under any one shard lock, with no atomic on the hot path.
    replaying: bool,
    /// This shard's part of the space's refund ledger: the credits of the operations homed
    /// here (see [`Gate`]: for a [`ChargingSpace`](crate::ChargingSpace), the storage its
    /// meter refunded), net of what settled reverts moved. The ledger is the wrapping sum of
    /// every shard's part; only that sum means anything.
    ///
    /// Guarded by this shard's lock. An operation adds its credit under it, in the critical
    /// section of its change; a soft checkpoint reads the sum, and a revert rewrites it (the
    /// whole sum into shard 0, the other parts zeroed), only while every shard is held. It is
    /// not part of the [`State`], so `reset`, `clear` and an unsettled revert leave it alone.
    ledger: u64,
}

impl<C: Clone + Hash + Eq, P: Clone, A: Clone + Hash + Eq, K: Clone> Shard<C, P, A, K> {
    /// Adds an admitted operation's credit to this shard's part of the ledger.
    #[inline]
    fn credit(&mut self, amount: u64) {
        if amount != 0 {
            self.ledger = self.ledger.wrapping_add(amount);
        }
    }
}

impl<C: Clone + Hash + Eq, P: Clone, A: Clone + Hash + Eq, K: Clone> Default for Shard<C, P, A, K> {
    fn default() -> Self {
        Self {
            state: StateRef::default(),
            installed: Installed::default(),
            replaying: false,
            ledger: 0,
        }
    }
}

/// The shards one operation has locked, with routing: the only way algorithm code reaches
/// state. Invariant: every channel (and join group home) an operation touches is routed to a
/// held shard.
struct View<'a, C: Clone + Hash + Eq, P: Clone, A: Clone + Hash + Eq, K: Clone> {
    router: Router,
    locks: LockSet<'a, Shard<C, P, A, K>>,
}

impl<'a, C: Clone + Hash + Eq, P: Clone, A: Clone + Hash + Eq, K: Clone> View<'a, C, P, A, K> {
    #[inline]
    fn shard(&self, channel: &C) -> &Shard<C, P, A, K> {
        self.locks.get(self.router.shard_of(channel))
    }

    #[inline]
    fn state_mut(&mut self, channel: &C) -> &mut State<C, P, A, K> {
        crate::state_map::make_mut(&mut self.locks.get_mut(self.router.shard_of(channel)).state)
    }

    #[inline]
    fn channel(&self, channel: &C) -> Option<&ChannelState<C, A>> {
        self.shard(channel).state.channels.get(channel)
    }

    #[inline]
    fn channel_mut(&mut self, channel: &C) -> Option<&mut ChannelState<C, A>> {
        self.state_mut(channel).touch(channel)
    }

    /// The channel, for a change of its join list (or of its data's layout alone): listed,
    /// its data not marked as changed (see [`ChannelState`]).
    #[inline]
    fn channel_joins_mut(&mut self, channel: &C) -> Option<&mut ChannelState<C, A>> {
        self.state_mut(channel).touch_joins(channel)
    }

    fn remove_channel(&mut self, channel: &C) {
        self.state_mut(channel).channels.remove(channel);
    }

    /// Builds `channel`'s exact index if its store [wants one](DataStore::wants_index);
    /// returns whether it did. The channel is not listed as changed: the caller notes it
    /// ([`Built`]) and settles it when the call is decided.
    #[inline]
    fn build_index(&mut self, channel: &C) -> bool {
        self.state_mut(channel)
            .channels
            .get_mut(channel)
            .is_some_and(|cs| cs.data.ensure_index())
    }

    /// Settles the exact indexes that the search of a call on `channels` built (`built`),
    /// once the call is decided and before anything else changes: kept when `admitted`,
    /// dropped when refused (see [`Built`]).
    #[inline]
    fn settle_built(&mut self, channels: &[C], built: Built, admitted: bool) {
        if built != Built::default() {
            self.settle_positions(channels, built, admitted);
        }
    }

    /// [`settle_built`](Self::settle_built) for a produce: `partners` are the channels whose
    /// index its search built.
    #[inline]
    fn settle_partners(&mut self, partners: &[C], admitted: bool) {
        if !partners.is_empty() {
            self.settle_channels(partners, admitted);
        }
    }

    /// [`settle_built`](Self::settle_built) of a non-empty set of positions.
    #[cold]
    fn settle_positions(&mut self, channels: &[C], built: Built, admitted: bool) {
        for (i, c) in channels.iter().enumerate() {
            if built.0 & (1 << i) != 0 {
                self.settle_channel(c, admitted);
            }
        }
    }

    /// [`settle_partners`](Self::settle_partners) of a non-empty list.
    #[cold]
    fn settle_channels(&mut self, channels: &[C], admitted: bool) {
        for c in channels {
            self.settle_channel(c, admitted);
        }
    }

    /// Settles the exact index that a call's search built on `channel`. Admitted: lists the
    /// channel as changed (a no-op if the call has listed it already), so the next hard
    /// checkpoint settles it and drops the index. Refused: drops the index again; the store
    /// is then exactly as before the call, and nothing was listed.
    fn settle_channel(&mut self, channel: &C, admitted: bool) {
        let state = self.state_mut(channel);
        if admitted {
            state.touch(channel);
        } else if let Some(cs) = state.channels.get_mut(channel) {
            cs.data.drop_index();
        }
    }

    /// The continuation store of join group `jk` (homed on its first channel).
    #[inline]
    fn join(&self, jk: &[C]) -> Option<&ContStore<P, K>> {
        let home = jk.first()?;
        self.shard(home).state.joins.get(jk)
    }

    /// The join group's store, for a change (the group is listed as dirty).
    #[inline]
    fn join_mut(&mut self, jk: &Arc<[C]>) -> Option<&mut ContStore<P, K>> {
        let home = jk.first()?;
        let state = self.state_mut(home);
        let store = state.joins.get_mut(jk)?;
        if !store.dirty {
            store.dirty = true;
            state.dirty_joins.push(jk.clone());
        }
        Some(store)
    }

    /// A gate's verdict, applied: an admitted operation's credit (what its gate refunded) goes
    /// to the ledger of `home`'s shard; a refusal is handed back.
    #[inline]
    fn admitted(
        &mut self,
        home: &C,
        verdict: Result<u64, OutOfPhlogiston>,
    ) -> Result<(), OutOfPhlogiston> {
        let amount = verdict?;
        if amount != 0 {
            self.locks
                .get_mut(self.router.shard_of(home))
                .credit(amount);
        }
        Ok(())
    }

    /// The log of `home`'s shard, for an append.
    #[inline]
    fn log_mut(&mut self, home: &C) -> &mut Log {
        &mut self.state_mut(home).log
    }

    fn installed_on(&self, channel: &C) -> Option<&InstalledList<C, P, K>> {
        self.shard(channel).installed.by_channel.get(channel)
    }

    /// Whether the space is rigged for replay (the flag is the same in every shard).
    #[inline]
    fn replaying(&self, channel: &C) -> bool {
        self.shard(channel).replaying
    }
}

/// A captured space state (data, continuations, joins). Immutable: later operations on the
/// space never change it, and it can be reverted to any number of times. It also records, under
/// the same locks, the storage refunds a [`ChargingSpace`](crate::ChargingSpace) had made in
/// the lineage of that state, which its revert settles.
///
/// Time: O(1) to create, clone and revert to, whatever the number of channels and items.
///
/// ```
/// use rhospace_spaces::{Space, SpaceConfig};
/// use rhospace_matchers::ExactMatch;
/// let space: Space<u32, u32, u32, u32, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
/// space.produce(1, 10, false).unwrap();
/// let cp = space.create_soft_checkpoint();
/// space.consume([1], [10], 0, false, &[]).unwrap();
/// assert!(space.data(&1).is_empty());
/// space.revert_to_soft_checkpoint(&cp).unwrap();
/// assert_eq!(space.data(&1).len(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct SoftCheckpoint<C: Clone + Hash + Eq, P: Clone, A: Clone + Hash + Eq, K: Clone> {
    /// One state per shard, in shard order.
    shards: ShardStates<C, P, A, K>,
    /// The trie of the last hard checkpoint in this state's lineage (the dirty lists in
    /// `shards` are relative to it).
    merkle: MerkleMap,
    /// Taken during a replay: the rig's number and what it still expected (restored only by
    /// a revert in that same rig of the space that took it, see `origin`).
    replay: Option<(u64, Expect)>,
    /// The space's refund ledger (the sum of `Shard::ledger`) when the states were taken,
    /// read under the same locks.
    ledger: u64,
    /// The [`Space::origin`] of the space that took it: a ledger means something only to the
    /// space that keeps it.
    origin: u64,
}

/// The next [`Space::origin`]. A process-wide counter, touched once per space created; it is
/// std's atomic rather than the `sync` facade's because a loom atomic cannot live in a static,
/// and no model needs it (it only hands out distinct numbers).
static NEXT_ORIGIN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// What [`Space::produce_fast`] did: the produce's outcome, or nothing (the arguments handed
/// back for the general path).
enum FastProduce<C, A, G> {
    /// The fast path applied: the datum is stored (or, on a Set holding it, accepted).
    Stored,
    /// The fast path applied: the produce is refused, nothing changed.
    Refused(ProduceError<A>),
    /// Something may wait on the channel: nothing changed.
    Slow(C, A, G),
}

/// Which waiting continuation a produce fires.
enum Source<C, P, K> {
    Installed(Arc<InstalledEntry<C, P, K>>),
    Stored(Arc<[C]>, u64),
}

/// A Rholang-style tuple space, generic over channel `C`, pattern `P`, datum `A`,
/// continuation `K` and matcher `M` (see the crate docs for the model and costs).
///
/// Every operation takes `&self`; the space is `Send + Sync` when its parts are. The state is
/// sharded by channel ([`DEFAULT_SHARDS`] shards unless [`with_shards`](Self::with_shards) says
/// otherwise): an operation locks the shards of the channels it touches, in ascending order, so
/// operations on channels of different shards run in parallel, joins never deadlock, and every
/// operation is linearizable (it runs entirely under the locks of everything it reads).
///
/// A join position with at least [`PARALLEL_MIN_CANDIDATES`] candidates to scan (no exact
/// index narrowing them) is pre-checked on rayon's threads; the choice stays the serial
/// order's on any thread count (see the `parallel` module). That is why the operations ask
/// `P: Sync` and `A: Sync` of the pattern and datum types.
///
/// The operations that change the space (produce, consume, install, and their batched and
/// metered forms) also ask [`Encode`] of all four value types: each call is
/// logged as the canonical encodings its event hash covers (SPEC §7), written on the call and
/// hashed at the next hard checkpoint, so the log keeps no clone of a value. Construction and
/// the read-only views ask nothing of the kind.
///
/// ```
/// use rhospace_spaces::{Space, SpaceConfig};
/// use rhospace_matchers::ExactMatch;
/// let space: Space<&str, i32, i32, &str, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
/// assert!(space.consume(["a", "b"], [1, 2], "both", false, &[]).unwrap().is_none());
/// assert!(space.produce("a", 1, false).unwrap().is_none());
/// let comm = space.produce("b", 2, false).unwrap().unwrap();
/// assert_eq!(comm.continuation, "both");
/// assert_eq!(comm.matches.iter().map(|m| m.datum).collect::<Vec<_>>(), vec![1, 2]);
/// ```
pub struct Space<C: Clone + Hash + Eq, P: Clone, A: Clone + Hash + Eq, K: Clone, M> {
    matcher: M,
    config: SpaceConfig<C>,
    /// The shuffled candidate order's hashing key (from `config`), `None` for oldest first.
    order_key: Option<[u8; 32]>,
    router: Router,
    shards: ShardLocks<C, P, A, K>,
    /// Whether operations append to the event log (SPEC §7).
    log_events: bool,
    /// Whether calls may take the fast paths that skip the general search (see
    /// [`single`]). Always on outside tests; the tests turn it off for a reference space.
    shortcuts: bool,
    /// Whether a rig keeps per-stream cursors into the log ([`Cursor`](crate::replay::Cursor))
    /// rather than looking every call and COMM up in its tables. Always on outside tests; the
    /// tests turn it off for a reference space.
    replay_cursors: bool,
    /// The rigged replay, if any. Lock order: after the shards, before `hard`.
    replay: Mutex<ReplayState<C, P, A, K>>,
    /// The trie and history of hard checkpoints. Lock order: after every shard.
    hard: Mutex<Hard<C, P, A, K>>,
    /// This space's identity, distinct from every other space's in the process, which its
    /// soft checkpoints carry (see [`revert_settled`](Self::revert_settled)).
    origin: u64,
    /// Where this space's parallel scans run ([`with_scan_threads`](Self::with_scan_threads)).
    scans: Scans,
}

/// Where a space's parallel scans run.
#[derive(Debug)]
enum Scans {
    /// The process's shared scan pool.
    Shared,
    /// The space's own pool.
    Own(Arc<rayon::ThreadPool>),
    /// Serially: the pool asked for could not be started.
    Serial,
}

impl<C, P, A, K, M> std::fmt::Debug for Space<C, P, A, K, M>
where
    C: Clone + Hash + Eq,
    P: Clone,
    A: Clone + Hash + Eq,
    K: Clone,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Space").finish_non_exhaustive()
    }
}

fn resolve<'s, C: Clone + Hash + Eq, P: Clone, A: Clone + Hash + Eq, K: Clone>(
    view: &'s View<'_, C, P, A, K>,
    list: &[C],
    ranker: Option<Ranker<StoredDatum<A>>>,
) -> Join<'s, A> {
    let mut cids = SmallVec::with_capacity(list.len());
    let mut stores = SmallVec::with_capacity(list.len());
    for (i, c) in list.iter().enumerate() {
        let first = list[..i].iter().position(|x| x == c).unwrap_or(i);
        cids.push(first);
        stores.push(if first == i {
            view.channel(c).map(|cs| &cs.data)
        } else {
            stores[first]
        });
    }
    Join {
        cids,
        stores,
        ranker,
    }
}

/// A join group with its rank under a shuffled candidate order.
type RankedGroup<'a, C> = (u128, &'a Arc<[C]>);

#[inline]
fn normalise_peeks(peeks: &[usize], arity: usize) -> Result<Peeks, ErrorKind> {
    // Most calls peek nowhere: nothing to check or sort, and no call.
    if peeks.is_empty() {
        return Ok(Peeks::new());
    }
    normalise_peek_list(peeks, arity)
}

/// [`normalise_peeks`] of a non-empty list: checked, sorted, without duplicates.
fn normalise_peek_list(peeks: &[usize], arity: usize) -> Result<Peeks, ErrorKind> {
    let mut out = Peeks::new();
    for &p in peeks {
        if p >= arity {
            return Err(ErrorKind::PeekOutOfRange {
                index: p,
                channels: arity,
            });
        }
        if let Err(at) = out.binary_search(&p) {
            out.insert(at, p);
        }
    }
    Ok(out)
}

fn validate<C, P>(channels: &[C], patterns: &[P], peeks: &[usize]) -> Result<Peeks, ErrorKind> {
    if channels.is_empty() {
        return Err(ErrorKind::EmptyChannels);
    }
    if channels.len() != patterns.len() {
        return Err(ErrorKind::LengthMismatch {
            channels: channels.len(),
            patterns: patterns.len(),
        });
    }
    if channels.len() > MAX_JOIN {
        return Err(ErrorKind::TooManyChannels {
            channels: channels.len(),
        });
    }
    normalise_peeks(peeks, channels.len())
}

impl<C, P, A, K, M> Space<C, P, A, K, M>
where
    C: Clone + Hash + Eq,
    P: Clone + Eq + Sync,
    A: Clone + Hash + Eq + Sync,
    K: Clone + Eq,
    M: Match<P, A>,
{
    /// An empty space with `matcher` and `config`.
    ///
    /// ```
    /// use rhospace_spaces::{Space, SpaceConfig};
    /// use rhospace_matchers::ExactMatch;
    /// let s: Space<u8, u8, u8, u8, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    /// assert!(s.is_empty());
    /// ```
    pub fn new(matcher: M, config: SpaceConfig<C>) -> Self {
        Self::with_shards(matcher, config, DEFAULT_SHARDS)
    }

    /// An empty space with `shards` shards (rounded up to a power of two, at most
    /// [`MAX_SHARDS`](crate::MAX_SHARDS)). More shards let more threads work on different channels at once; a
    /// soft checkpoint locks every shard, so it costs a little more per shard.
    ///
    /// ```
    /// use rhospace_spaces::{Space, SpaceConfig};
    /// use rhospace_matchers::ExactMatch;
    /// let s: Space<u8, u8, u8, u8, ExactMatch> = Space::with_shards(ExactMatch, SpaceConfig::new(), 6);
    /// assert_eq!(s.shard_count(), 8);
    /// ```
    pub fn with_shards(matcher: M, config: SpaceConfig<C>, shards: usize) -> Self {
        let router = Router::new(shards);
        let order_key = config.order().key();
        Self {
            matcher,
            config,
            order_key,
            router,
            log_events: true,
            shortcuts: true,
            replay_cursors: true,
            replay: Mutex::new(ReplayState::default()),
            hard: Mutex::new(Hard {
                merkle: MerkleMap::new(),
                history: Arc::new(MemoryHistory::new()),
                snapshots: HashMap::default(),
                recent: Default::default(),
            }),
            shards: (0..router.shards())
                .map(|_| Padded(Mutex::new(Shard::default())))
                .collect(),
            // Relaxed: only distinctness matters (each `fetch_add` returns a different value);
            // no data is published through this counter.
            origin: NEXT_ORIGIN.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            scans: Scans::Shared,
        }
    }

    /// Keeps hard-checkpoint history in `store` (for instance a
    /// [`RedbHistory`](crate::RedbHistory) on disk) instead of in memory. A space built on a
    /// store that an earlier process wrote can [`reset`](Self::reset) to any root recorded there.
    /// Roots recorded before the switch stay in the old store (this space can still reset to
    /// the last [`SNAPSHOT_CACHE`](crate::SNAPSHOT_CACHE) of them from memory); the next
    /// [`create_checkpoint`](Self::create_checkpoint) stores everything the new store lacks of
    /// the current state (O(its size) once).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use rhospace_spaces::{MemoryHistory, Space, SpaceConfig};
    /// use rhospace_matchers::ExactMatch;
    /// let store = Arc::new(MemoryHistory::new());
    /// let a: Space<u8, u8, u8, u8, ExactMatch> =
    ///     Space::new(ExactMatch, SpaceConfig::new()).with_history(store.clone());
    /// a.produce(1, 2, false).unwrap();
    /// let root = a.create_checkpoint().unwrap().root;
    /// let b: Space<u8, u8, u8, u8, ExactMatch> =
    ///     Space::new(ExactMatch, SpaceConfig::new()).with_history(store);
    /// b.reset(&root).unwrap();
    /// assert_eq!(b.data(&1)[0].value, 2);
    /// ```
    pub fn with_history(self, store: Arc<dyn HistoryStore>) -> Self {
        self.hard.lock().history = store;
        self
    }

    /// Turns the event log (SPEC §7) on (the default) or off. Off saves a clone of each call's
    /// values per operation; [`create_checkpoint`](Self::create_checkpoint) then returns an
    /// empty log.
    ///
    /// ```
    /// use rhospace_spaces::{Space, SpaceConfig};
    /// use rhospace_matchers::ExactMatch;
    /// let s: Space<u8, u8, u8, u8, ExactMatch> =
    ///     Space::new(ExactMatch, SpaceConfig::new()).with_event_log(false);
    /// s.produce(1, 2, false).unwrap();
    /// assert!(s.create_checkpoint().unwrap().log.is_empty());
    /// ```
    pub fn with_event_log(mut self, on: bool) -> Self {
        self.log_events = on;
        self
    }

    /// Runs this space's parallel scans (a join position with at least
    /// [`PARALLEL_MIN_CANDIDATES`] candidates, see the `parallel` module) on a pool of its own
    /// with `threads` threads (0: one per core; more than [`MAX_SCAN_THREADS`] are clamped to
    /// it), instead of the pool every space shares by default. Results never depend on it: a
    /// scan picks what the serial order picks on any thread count. If the threads cannot be
    /// started, this space's scans run serially.
    ///
    /// Either pool runs nothing but scans. A scan runs while its operation holds shard locks,
    /// and a rayon thread that waits for part of a scan runs other tasks of its pool meanwhile;
    /// on a pool that also ran the caller's tasks, such a task could call the space and wait
    /// forever for a lock held lower on its own stack. For the same reason an operation called
    /// on a rayon worker thread (inside the caller's `par_iter`, say) scans serially.
    ///
    /// ```
    /// use rhospace_spaces::{Space, SpaceConfig};
    /// use rhospace_matchers::ExactMatch;
    /// let s: Space<u8, u8, u8, u8, ExactMatch> =
    ///     Space::new(ExactMatch, SpaceConfig::new()).with_scan_threads(2);
    /// s.produce(1, 2, false).unwrap();
    /// assert!(s.consume([1], [2], 0, false, &[]).unwrap().is_some());
    /// ```
    pub fn with_scan_threads(mut self, threads: usize) -> Self {
        self.scans = match crate::parallel::scan_pool(threads.min(MAX_SCAN_THREADS)) {
            Some(pool) => Scans::Own(Arc::new(pool)),
            None => Scans::Serial,
        };
        self
    }

    /// Where this space's parallel scans run (see [`with_scan_threads`](Self::with_scan_threads)).
    #[inline]
    fn scan_on(&self) -> ScanOn<'_> {
        match &self.scans {
            Scans::Shared => ScanOn::Dedicated(None),
            Scans::Own(pool) => ScanOn::Dedicated(Some(pool)),
            Scans::Serial => ScanOn::Serial,
        }
    }

    /// The number of shards.
    ///
    /// ```
    /// use rhospace_spaces::{Space, SpaceConfig, DEFAULT_SHARDS};
    /// use rhospace_matchers::ExactMatch;
    /// let s: Space<u8, u8, u8, u8, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    /// assert_eq!(s.shard_count(), DEFAULT_SHARDS);
    /// ```
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The shard `channel` is routed to, in `0..shard_count()`. Stable across processes for a
    /// given shard count; useful to group work by shard (the batch operations share one lock
    /// acquisition across consecutive items of the same shards). It never reaches a result of
    /// the space's own, but an order a caller builds from it depends on the shard count.
    ///
    /// ```
    /// use rhospace_spaces::{Space, SpaceConfig};
    /// use rhospace_matchers::ExactMatch;
    /// let s: Space<u32, u8, u8, u8, ExactMatch> = Space::with_shards(ExactMatch, SpaceConfig::new(), 4);
    /// assert!(s.shard_of(&7) < 4);
    /// ```
    pub fn shard_of(&self, channel: &C) -> usize {
        self.router.shard_of(channel)
    }

    /// The matcher.
    ///
    /// ```
    /// # use rhospace_spaces::{Space, SpaceConfig};
    /// # use rhospace_matchers::ExactMatch;
    /// let s: Space<u8, u8, u8, u8, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    /// assert_eq!(*s.matcher(), ExactMatch);
    /// ```
    pub fn matcher(&self) -> &M {
        &self.matcher
    }

    /// The configuration.
    ///
    /// ```
    /// # use rhospace_spaces::{DataKind, Space, SpaceConfig};
    /// # use rhospace_matchers::ExactMatch;
    /// let s: Space<u8, u8, u8, u8, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    /// assert_eq!(s.config().kind_of(&3), DataKind::Bag);
    /// ```
    pub fn config(&self) -> &SpaceConfig<C> {
        &self.config
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
    /// The shards that `channel`'s produce reads: its own, and those of every channel of its
    /// join groups and installed continuations. Sorted, without duplicates.
    fn produce_shards(
        &self,
        shard: &Shard<C, P, A, K>,
        channel: &C,
        out: &mut SmallVec<[usize; 8]>,
    ) {
        // Kept sorted and without repeats as it grows: at most one entry per shard, so a
        // channel with many join groups does not spill the list to the heap.
        out.clear();
        let mut add = |c: &C| {
            let i = self.router.shard_of(c);
            if let Err(at) = out.binary_search(&i) {
                out.insert(at, i);
            }
        };
        add(channel);
        if let Some(entries) = shard.installed.by_channel.get(channel) {
            for e in entries {
                e.list.iter().for_each(&mut add);
            }
        }
        if let Some(cs) = shard.state.channels.get(channel) {
            for jk in cs.joins.iter() {
                jk.iter().for_each(&mut add);
            }
        }
    }

    /// Locks every shard a produce on `channel` reads. Which shards that is depends on the
    /// channel's join groups, read under its own shard's lock; locks are taken in ascending
    /// order, so after locking the set is read again and the loop widens it until it covers
    /// everything (join groups can only change under the channel's own lock).
    fn lock_for_produce(
        &self,
        channel: &C,
        mut need: SmallVec<[usize; 8]>,
    ) -> View<'_, C, P, A, K> {
        let mut now = SmallVec::new();
        loop {
            let locks = LockSet::lock(&self.shards, &need);
            let view = View {
                router: self.router,
                locks,
            };
            self.produce_shards(view.shard(channel), channel, &mut now);
            if now.iter().all(|i| view.locks.holds(*i)) {
                return view;
            }
            drop(view);
            need.extend(now.iter().copied());
            need.sort_unstable();
            need.dedup();
        }
    }

    /// Locks the shards of `channels` (a consume's or install's join), ascending.
    fn lock_channels(&self, channels: &[C]) -> View<'_, C, P, A, K> {
        if let [channel] = channels {
            let i = self.router.shard_of(channel);
            return View {
                router: self.router,
                locks: LockSet::single(i, self.shards[i].0.lock_hot()),
            };
        }
        let mut need: SmallVec<[usize; 8]> =
            channels.iter().map(|c| self.router.shard_of(c)).collect();
        need.sort_unstable();
        need.dedup();
        View {
            router: self.router,
            locks: LockSet::lock(&self.shards, &need),
        }
    }

    /// Sends `datum` on `channel` (priority 0). Fires at most one COMM (SPEC §1): the first
    /// waiting continuation, in join-creation order and then the continuation kind's order
    /// (both canonicalised by a hard checkpoint: see the crate's *Limits*), whose patterns are
    /// all met using this datum. Installed continuations are offered first, in install order.
    /// Otherwise the datum is stored. On a Set channel that already stores
    /// an equal datum, the produce is ignored before any continuation is offered it: it
    /// returns `Ok(None)` like a stored datum and is logged as a produce (SPEC §7), and
    /// changes nothing else.
    ///
    /// Errors (nothing changes): `CellFull` on a Cell channel that holds a datum; on a
    /// VectorDB channel, `MissingEmbedding` or `Embedding` for a datum without a valid
    /// embedding; `Replay` while a replay is rigged and the log does not hold the call (or
    /// the COMM it would fire).
    ///
    /// Time: O(1) expected with no waiting continuation; otherwise the join search (see
    /// the crate's complexity table).
    ///
    /// ```
    /// use rhospace_spaces::{Space, SpaceConfig};
    /// use rhospace_matchers::ExactMatch;
    /// let s: Space<&str, u8, u8, &str, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    /// assert!(s.produce("ch", 7, false).unwrap().is_none());
    /// assert_eq!(s.data(&"ch")[0].value, 7);
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn produce(
        &self,
        channel: C,
        datum: A,
        persist: bool,
    ) -> Result<Option<Comm<C, P, A, K, M::Output>>, ProduceError<A>> {
        self.produce_with_priority(channel, datum, persist, 0)
    }

    /// Sends `datum` on `channel` with a priority (used by PriorityQueue channels: higher is
    /// taken first, FIFO within a level; ignored by other kinds, which store 0). Otherwise as
    /// [`produce`](Self::produce). The event log's hash of the call covers a priority other
    /// than 0 ([`produce_hash_with_priority`](crate::produce_hash_with_priority)), so a replay
    /// refuses the call made with another priority.
    ///
    /// ```
    /// use rhospace_spaces::{DataKind, Space, SpaceConfig};
    /// use rhospace_matchers::ExactMatch;
    /// let s: Space<u8, u8, u8, u8, ExactMatch> =
    ///     Space::new(ExactMatch, SpaceConfig::new().data_kind(DataKind::PriorityQueue));
    /// s.produce_with_priority(0, 1, false, 1).unwrap();
    /// s.produce_with_priority(0, 9, false, 5).unwrap();
    /// assert_eq!(s.data(&0)[0].value, 9);
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn produce_with_priority(
        &self,
        channel: C,
        datum: A,
        persist: bool,
        priority: i64,
    ) -> Result<Option<Comm<C, P, A, K, M::Output>>, ProduceError<A>> {
        self.produce_gated(channel, datum, persist, priority, Open)
    }

    /// [`produce_with_priority`](Self::produce_with_priority) with a gate: after the search and
    /// before any change, `admit` sees what the produce will do; if it refuses, the produce
    /// fails with `ErrorKind::OutOfPhlogiston` and nothing changes. The gate is not called for
    /// a produce refused for another reason (a full Cell), and once it admits, the produce
    /// makes the change it was shown: nothing fails after the gate.
    ///
    /// The gate runs under the produce's shard locks, so it must not call this space (the call
    /// would wait for a lock its own thread holds).
    ///
    /// ```
    /// use rhospace_spaces::{ErrorKind, Space, SpaceConfig};
    /// use rhospace_matchers::ExactMatch;
    /// use rhospace_phlogiston::OutOfPhlogiston;
    /// let s: Space<u8, u8, u8, u8, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    /// let err = s
    ///     .produce_admitted(0, 1, false, 0, |_| Err(OutOfPhlogiston { requested: 5, remaining: 0 }))
    ///     .unwrap_err();
    /// assert!(matches!(err.kind(), ErrorKind::OutOfPhlogiston(_)));
    /// assert!(s.is_empty());
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn produce_admitted<F>(
        &self,
        channel: C,
        datum: A,
        persist: bool,
        priority: i64,
        admit: F,
    ) -> Result<Option<Comm<C, P, A, K, M::Output>>, ProduceError<A>>
    where
        F: FnOnce(&Admission<'_, C, P, A, K>) -> Result<(), OutOfPhlogiston>,
    {
        self.produce_gated(channel, datum, persist, priority, admit)
    }

    /// [`produce_admitted`](Self::produce_admitted) with any [`Gate`].
    #[allow(clippy::type_complexity)]
    pub(crate) fn produce_gated<G: Gate<C, P, A, K>>(
        &self,
        channel: C,
        datum: A,
        persist: bool,
        priority: i64,
        admit: G,
    ) -> Result<Option<Comm<C, P, A, K, M::Output>>, ProduceError<A>> {
        let kind = self.config.kind_of(&channel);
        // VectorDB: the datum's embedding is validated before anything else (SPEC §5).
        if let Err(e) = kind.check_embedding(self.matcher.embedding(&datum)) {
            return Err(ProduceError::new(e, datum));
        }
        let priority = if kind == DataKind::PriorityQueue {
            priority
        } else {
            0
        };
        let home = self.router.shard_of(&channel);
        let mut guard = self.shards[home].0.lock_hot();
        let (channel, datum, admit) =
            match self.produce_fast(&mut guard, kind, channel, datum, persist, priority, admit) {
                FastProduce::Stored => return Ok(None),
                FastProduce::Refused(e) => return Err(e),
                FastProduce::Slow(channel, datum, admit) => (channel, datum, admit),
            };
        let shard = &*guard;
        let mut need = SmallVec::new();
        self.produce_shards(shard, &channel, &mut need);
        let mut view = if need.len() == 1 {
            View {
                router: self.router,
                locks: LockSet::single(home, guard),
            }
        } else {
            drop(guard);
            self.lock_for_produce(&channel, need)
        };
        self.produce_in(&mut view, channel, datum, persist, priority, admit)
    }

    /// The produce fast path, under the lock of `channel`'s shard (`shard`): when nothing
    /// waits on the channel (no installed continuation, no join group on it), the datum is
    /// stored ([`FastProduce::Stored`]) or refused ([`FastProduce::Refused`]) with one map
    /// walk. Else nothing changed and the arguments come back as [`FastProduce::Slow`], for
    /// the general path ([`produce_in`](Self::produce_in)). `priority` is already normalised
    /// and the datum's embedding already checked.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn produce_fast<G: Gate<C, P, A, K>>(
        &self,
        shard: &mut Shard<C, P, A, K>,
        kind: DataKind,
        channel: C,
        datum: A,
        persist: bool,
        priority: i64,
        admit: G,
    ) -> FastProduce<C, A, G> {
        let installed_here = !shard.installed.by_channel.is_empty()
            && shard.installed.by_channel.contains_key(&channel);
        // Fast path: nothing waits on this channel, so the datum is stored (one map walk
        // under one shard lock).
        if !installed_here {
            let state = crate::state_map::make_mut(&mut shard.state);
            // Replay: the call must be one the log expects (no COMM can fire here).
            let replaying = shard.replaying;
            let check = |datum: &A| {
                self.expect_call(replaying, &channel, |h| {
                    (h.produce)(&channel, datum, persist, priority)
                })
            };
            match state.channels.get_mut(&channel) {
                Some(cs) if cs.joins.is_empty() => {
                    let stores = match would_store(kind, Some(&cs.data), &datum) {
                        Ok(stores) => stores,
                        Err(e) => return FastProduce::Refused(ProduceError::new(e, datum)),
                    };
                    let (mut replay, event) = match check(&datum) {
                        Ok(r) => r,
                        Err(e) => return FastProduce::Refused(ProduceError::new(e, datum)),
                    };
                    match admit.admit(|| Admission::storing(OpKind::Produce, 0, stores)) {
                        Ok(credit) => shard.ledger = shard.ledger.wrapping_add(credit),
                        Err(e) => {
                            let e = ProduceError::new(ErrorKind::OutOfPhlogiston(e), datum);
                            return FastProduce::Refused(e);
                        }
                    }
                    strike(&mut replay, event, None);
                    if self.log_events {
                        log_produce(&mut state.log, &channel, &datum, persist, priority, event);
                    }
                    let newly_dirty = stores && !cs.dirty;
                    if stores {
                        cs.dirty = true;
                        cs.data_dirty = true;
                        cs.data.push_embedded(
                            StoredDatum {
                                value: datum,
                                persist,
                                priority,
                            },
                            |a| self.matcher.embedding(a),
                        );
                    }
                    if newly_dirty {
                        state.dirty.push(channel);
                    }
                    return FastProduce::Stored;
                }
                Some(_) => {}
                None => {
                    let (mut replay, event) = match check(&datum) {
                        Ok(r) => r,
                        Err(e) => return FastProduce::Refused(ProduceError::new(e, datum)),
                    };
                    match admit.admit(|| Admission::storing(OpKind::Produce, 0, true)) {
                        Ok(credit) => shard.ledger = shard.ledger.wrapping_add(credit),
                        Err(e) => {
                            let e = ProduceError::new(ErrorKind::OutOfPhlogiston(e), datum);
                            return FastProduce::Refused(e);
                        }
                    }
                    strike(&mut replay, event, None);
                    if self.log_events {
                        log_produce(&mut state.log, &channel, &datum, persist, priority, event);
                    }
                    let mut data = DataStore::new(kind);
                    data.push_embedded(
                        StoredDatum {
                            value: datum,
                            persist,
                            priority,
                        },
                        |a| self.matcher.embedding(a),
                    );
                    state.dirty.push(channel.clone());
                    state.channels.insert(
                        channel,
                        ChannelState {
                            data,
                            joins: JoinList::new(),
                            dirty: true,
                            data_dirty: true,
                        },
                    );
                    return FastProduce::Stored;
                }
            }
        }
        FastProduce::Slow(channel, datum, admit)
    }

    /// A produce under `view`, which holds every shard the produce reads
    /// ([`produce_shards`](Self::produce_shards)). `priority` is already normalised and the
    /// datum's embedding already checked (`DataKind::check_embedding`).
    ///
    /// The search may build the partners' exact indexes (noted in `built`); every refusal
    /// after it (the log's, the gate's) settles them as refused, every admission as admitted,
    /// before anything else changes (see [`Built`]).
    #[allow(clippy::type_complexity)]
    fn produce_in<G: Gate<C, P, A, K>>(
        &self,
        view: &mut View<'_, C, P, A, K>,
        channel: C,
        datum: A,
        persist: bool,
        priority: i64,
        admit: G,
    ) -> Result<Option<Comm<C, P, A, K, M::Output>>, ProduceError<A>> {
        let kind = self.config.kind_of(&channel);
        let stores = match would_store(kind, view.channel(&channel).map(|cs| &cs.data), &datum) {
            Ok(stores) => stores,
            Err(e) => return Err(ProduceError::new(e, datum)),
        };
        // Replay: the call must be one the log expects (SPEC §7).
        let replaying = view.replaying(&channel);
        let (mut replay, event) = match self.expect_call(replaying, &channel, |h| {
            (h.produce)(&channel, &datum, persist, priority)
        }) {
            Ok(r) => r,
            Err(e) => return Err(ProduceError::new(e, datum)),
        };
        if !stores {
            // A Set that already holds the datum: the produce is accepted and changes nothing.
            let verdict = admit.admit(|| Admission::storing(OpKind::Produce, 0, false));
            if let Err(e) = view.admitted(&channel, verdict) {
                return Err(ProduceError::new(ErrorKind::OutOfPhlogiston(e), datum));
            }
            strike(&mut replay, event, None);
            self.record_produce(view, &channel, &datum, persist, priority, event);
            return Ok(None);
        }
        let incoming = StoredDatum {
            value: datum,
            persist,
            priority,
        };
        let mut built = BuiltPartners::new();
        self.index_partners(view, &channel, &mut built);
        let guide = rig_of(&mut replay);
        let budget = admit.allowance().map(Budget::new);
        let mut found = Found::new();
        let ProduceSearch {
            examined,
            vector,
            hit,
            rejected,
            record,
        } = match &budget {
            None => {
                self.find_for_produce(view, &channel, kind, &incoming, guide, NoCap, &mut found)
            }
            Some(b) => self.find_for_produce(view, &channel, kind, &incoming, guide, b, &mut found),
        };
        if let Some(e) = budget.and_then(|b| b.refused()) {
            // The search's work alone outgrew the meter: refused as the gate would refuse it.
            view.settle_partners(&built, false);
            return Err(ProduceError::new(
                ErrorKind::OutOfPhlogiston(e),
                incoming.value,
            ));
        }
        let Some(source) = hit else {
            if let (true, Some((hash, _))) = (rejected, event) {
                view.settle_partners(&built, false);
                let e = ErrorKind::Replay(ReplayError::CommNotInLog { hash });
                return Err(ProduceError::new(e, incoming.value));
            }
            let verdict = admit
                .admit(|| Admission::storing(OpKind::Produce, examined, true).with_vector(vector));
            view.settle_partners(&built, verdict.is_ok());
            if let Err(e) = view.admitted(&channel, verdict) {
                return Err(ProduceError::new(
                    ErrorKind::OutOfPhlogiston(e),
                    incoming.value,
                ));
            }
            strike(&mut replay, event, None);
            self.record_produce(view, &channel, &incoming.value, persist, priority, event);
            Self::channel_or_new(view, &self.config, &channel, true)
                .data
                .push_embedded(incoming, |a| self.matcher.embedding(a));
            return Ok(None);
        };
        let verdict = admit.admit(|| {
            let (list, w, freed_cont) = match &source {
                Source::Installed(e) => (&e.list[..], &e.w, None),
                Source::Stored(jk, seq) => match view.join(jk).and_then(|s| s.get(*seq)) {
                    Some(w) => (&jk[..], w, (!w.persist).then_some((&jk[..], w))),
                    None => unreachable_cont(),
                },
            };
            let mut admission =
                Self::firing(view, OpKind::Produce, examined, list, &w.peeks, &found)
                    .with_vector(vector);
            admission.freed_continuation = freed_cont;
            admission
        });
        view.settle_partners(&built, verdict.is_ok());
        if let Err(e) = view.admitted(&channel, verdict) {
            return Err(ProduceError::new(
                ErrorKind::OutOfPhlogiston(e),
                incoming.value,
            ));
        }
        strike(&mut replay, event, record.as_ref().map(|r| r.1));
        self.record_produce(view, &channel, &incoming.value, persist, priority, event);
        let mut reuse = LogReuse::default();
        let comm = self.fire_produce(view, incoming, source, &mut found, &mut reuse);
        let home = view.state_mut(&channel);
        self.record_comm(home, &comm, record.map(|r| r.0), &reuse);
        Ok(Some(comm))
    }

    /// Logs a produce call in its channel's shard; `hashed` is its hash when a replay has
    /// already computed it.
    #[allow(clippy::too_many_arguments)]
    fn record_produce(
        &self,
        view: &mut View<'_, C, P, A, K>,
        channel: &C,
        datum: &A,
        persist: bool,
        priority: i64,
        hashed: Option<Logged>,
    ) {
        if self.log_events {
            log_produce(
                view.log_mut(channel),
                channel,
                datum,
                persist,
                priority,
                hashed,
            );
        }
    }

    /// Replay (SPEC §7): when `replaying`, takes the replay lock (after the caller's shard
    /// locks) and checks that the log still expects the call that `hash` hashes, looking it up
    /// through the cursor of the call's stream, the shard of `home` (the produce's channel, or
    /// the consume's first; see [`Cursor`](crate::replay::Cursor)). Returns the held lock and
    /// the call's hash and slot; in play, neither (and no lock is taken).
    #[allow(clippy::type_complexity)]
    #[inline(always)]
    fn expect_call(
        &self,
        replaying: bool,
        home: &C,
        hash: impl FnOnce(&Hashers<C, P, A, K>) -> Digest,
    ) -> Result<(Option<ReplayGuard<'_, C, P, A, K>>, Option<Logged>), ErrorKind> {
        // In play this is one test of a flag, inline at the caller; the replay's work is not.
        if !replaying {
            return Ok((None, None));
        }
        self.expect_replayed(home, hash)
    }

    /// [`expect_call`](Self::expect_call) while replaying.
    #[allow(clippy::type_complexity)]
    #[inline(never)]
    fn expect_replayed(
        &self,
        home: &C,
        hash: impl FnOnce(&Hashers<C, P, A, K>) -> Digest,
    ) -> Result<(Option<ReplayGuard<'_, C, P, A, K>>, Option<Logged>), ErrorKind> {
        let mut replay = Some(self.replay.lock());
        let event = match rig_of(&mut replay) {
            Some(rig) => {
                let h = hash(&rig.hash);
                match rig.expects(self.router.shard_of(home), &h) {
                    Some(slot) => Some((h, slot)),
                    None => return Err(ErrorKind::Replay(ReplayError::EventNotInLog { hash: h })),
                }
            }
            None => None,
        };
        Ok((replay, event))
    }

    /// Logs a consume call in `state`, the shard state of its first channel; `hashed` is its
    /// hash when a replay has already computed it. A COMM it fires at once names the parts
    /// logged here ([`record_comm`](Self::record_comm)).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn record_consume(
        &self,
        state: &mut State<C, P, A, K>,
        channels: &[C],
        patterns: &[P],
        continuation: &K,
        persist: bool,
        peeks: &Peeks,
        hashed: Option<Logged>,
    ) {
        if let (true, Some((h, _))) = (self.log_events, hashed) {
            state.log.push_hashed_consume(&h);
        } else if self.log_events {
            state.log.push_consume(LoggedCall::Parts(Call {
                channels,
                patterns,
                continuation,
                persist,
                peeks,
            }));
        }
    }

    /// Gives `w`, about to wait on `list`, the log encoding of its call that a persistent
    /// continuation keeps in a space that logs events (see [`WaitingContinuation`]); any
    /// other keeps none.
    fn keep_encoded_call(&self, list: &[C], w: &mut WaitingContinuation<P, K>) {
        if self.log_events && w.persist {
            w.keep_call(EncodedCall::new(Call {
                channels: list,
                patterns: &w.patterns,
                continuation: &w.continuation,
                persist: w.persist,
                peeks: &w.peeks,
            }));
        }
    }

    /// Logs a COMM in `state`, the shard state of the call that fired it; `hashed` is its
    /// record when a replay has already computed it. A consume that fired it at once has just
    /// logged its parts ([`record_consume`](Self::record_consume)), so the log ends with that
    /// consume's event and the COMM names its call; otherwise (a produce fired it, whose own
    /// event comes last, or a replay hashed the consume) the COMM logs the call's parts. It
    /// copies what `reuse` offers instead of encoding it again (the same bytes).
    #[inline]
    fn record_comm<'c>(
        &self,
        state: &mut State<C, P, A, K>,
        comm: &'c Comm<C, P, A, K, M::Output>,
        hashed: Option<CommRecord>,
        reuse: &LogReuse,
    ) {
        if !self.log_events {
            return;
        }
        if let Some(r) = hashed {
            state.log.push_hashed_comm(&r);
            return;
        }
        let call = (!state.log.ends_with_consume()).then(|| match &reuse.call {
            Some(e) => LoggedCall::Encoded(e),
            None => LoggedCall::Parts(Call {
                channels: &comm.channels,
                patterns: &comm.patterns,
                continuation: &comm.continuation,
                persist: comm.persistent,
                peeks: &comm.peeks,
            }),
        });
        // A position is always within the channel list; each datum is logged with the
        // channel of its position, and its priority (0 unless `reuse` lists one).
        let report = |m: &'c MatchedDatum<A, M::Output>, priority: i64| {
            let channel = comm.channels.get(m.position as usize)?;
            Some((channel, &m.datum, m.persistent, priority))
        };
        let priorities = &reuse.priorities;
        // Without priorities (every kind but PriorityQueue), no per-datum look-up: a single
        // path that looked each index up cost every COMM ~25 instructions (callgrind).
        if priorities.is_empty() {
            let data = comm.matches.iter().filter_map(|m| report(m, 0));
            state.log.push_comm(call, data, reuse.produced);
        } else {
            let priority = |i: usize| {
                priorities
                    .iter()
                    .find(|p| p.0 as usize == i)
                    .map_or(0, |p| p.1)
            };
            let data = comm.matches.iter().enumerate();
            let data = data.filter_map(|(i, m)| report(m, priority(i)));
            state.log.push_comm(call, data, reuse.produced);
        }
    }

    /// The admission of a firing: the stored data it consumes.
    fn firing<'s>(
        view: &'s View<'_, C, P, A, K>,
        op: OpKind,
        examined: u64,
        list: &'s [C],
        peeks: &Peeks,
        found: &Found<M::Output>,
    ) -> Admission<'s, C, P, A, K> {
        let mut freed_data = SmallVec::new();
        for (pos, pick) in found.entry_picks() {
            if pick.incoming || peeks.contains(&pos) {
                continue;
            }
            if let Some(d) = view
                .channel(&list[pos])
                .and_then(|cs| cs.data.get(pick.key))
            {
                if !d.persist {
                    freed_data.push((&list[pos], d));
                }
            }
        }
        Admission {
            op,
            examined,
            vector: VectorWork::default(),
            // One datum per position, plus a top-k position's further picks.
            fires: Some(found.picks.len() + found.more.len()),
            stores: false,
            freed_data,
            freed_continuation: None,
        }
    }

    /// The shuffled candidate order's ranker of data; `None` for oldest first.
    #[inline]
    fn data_ranker(&self) -> Option<Ranker<StoredDatum<A>>> {
        self.order_key.map(Ranker::data)
    }

    /// The shuffled candidate order's ranker of waiting continuations; `None` for oldest
    /// first.
    #[inline]
    fn cont_ranker(&self) -> Option<Ranker<WaitingContinuation<P, K>>> {
        self.order_key.map(Ranker::conts)
    }

    /// Builds the exact index on the big Bag and Set channels that `channel`'s joins and
    /// installed continuations read besides it, noting them in `built` (see [`Built`]): each
    /// such channel that a waiting continuation looks up by an exact key
    /// ([`Match::exact_key`]) at its position. A channel that every waiting pattern reads by
    /// a general match gets no index: the search would scan it anyway, and the index would
    /// cost a hash of every later datum stored there (a structural matcher's wildcard
    /// patterns, say).
    ///
    /// Cost: on a channel that wants an index and is not read by an exact key, one
    /// [`Match::exact_key`] call per waiting continuation of the join, fewer than the
    /// search's own pre-checks of the same continuations.
    fn index_partners(
        &self,
        view: &mut View<'_, C, P, A, K>,
        channel: &C,
        built: &mut BuiltPartners<C>,
    ) {
        let from = built.len();
        let v: &View<'_, C, P, A, K> = view;
        // `c` is big, unindexed and not noted yet.
        let wants = |built: &BuiltPartners<C>, c: &C| {
            v.channel(c).is_some_and(|o| o.data.wants_index()) && !built[from..].contains(c)
        };
        let exact_at = |i: usize, w: &WaitingContinuation<P, K>| {
            w.patterns
                .get(i)
                .is_some_and(|p| self.matcher.exact_key(p).is_some())
        };
        if let Some(entries) = v.installed_on(channel) {
            for e in entries.iter().filter(|e| e.list.len() > 1) {
                for (i, c) in e.list.iter().enumerate() {
                    if exact_at(i, &e.w) && wants(built, c) {
                        built.push(c.clone());
                    }
                }
            }
        }
        if let Some(cs) = v.channel(channel) {
            for jk in cs.joins.iter().filter(|jk| jk.len() > 1) {
                for (i, c) in jk.iter().enumerate() {
                    let read_exactly = || {
                        v.join(jk).is_some_and(|conts| {
                            let found = conts.for_each_in(None, |_, w| {
                                if exact_at(i, w) {
                                    ControlFlow::Break(())
                                } else {
                                    ControlFlow::Continue(())
                                }
                            });
                            found.is_break()
                        })
                    };
                    if wants(built, c) && read_exactly() {
                        built.push(c.clone());
                    }
                }
            }
        }
        for c in &built[from..] {
            // Each wants its index (checked above, under the same locks): this builds it.
            let done = view.build_index(c);
            debug_assert!(done, "a partner that wanted its index did not build it");
        }
    }

    /// Finds the continuation a produce fires: installed ones first, then each join group of
    /// the channel in order, each group's continuations in its order. With `replay` (the rig),
    /// only an assignment whose COMM the log holds is taken (looked up through the cursor of
    /// the channel's stream). With a [`Budget`] as `cap`, the walk stops (finding nothing) once
    /// the work it has counted costs more than the meter holds, before the next continuation
    /// or inside a search; the budget then holds the refusal (see [`crate::budget`]). The
    /// assignment of the continuation found is left in `found`.
    #[allow(clippy::too_many_arguments)]
    fn find_for_produce<'v, B: Cap>(
        &self,
        view: &'v View<'_, C, P, A, K>,
        channel: &C,
        kind: DataKind,
        incoming: &StoredDatum<A>,
        mut replay: Option<&mut Rig<C, P, A, K>>,
        cap: B,
        found: &mut Found<M::Output>,
    ) -> ProduceSearch<C, P, K> {
        // Replay: the produce's stream (see `Cursor`), where the COMM it fires is logged.
        let stream = replay.as_ref().map_or(0, |_| self.router.shard_of(channel));
        let mut out = ProduceSearch {
            examined: 0,
            vector: VectorWork::default(),
            hit: None,
            rejected: false,
            record: None,
        };
        let store = view.channel(channel).map(|cs| &cs.data);
        let key = match store {
            Some(s) => s.next_key(incoming.priority),
            None => DataStore::<A>::new(kind).next_key(incoming.priority),
        };
        let head = store.is_none_or(|s| s.new_item_is_head(key));
        // Per channel list: `at` holds the positions on `channel` and `join` the list resolved,
        // once, when a first continuation passes the pre-check. A continuation the datum fits
        // at no position is skipped after that check alone (`fits`): `search` would make the
        // same matcher calls and report nothing else (see `incoming_fits`). Their calls and
        // the vector elements they score are counted in `skipped` and `skipped_elements`, added
        // to `out` before returning. A passing check hands its counts to `offer`, which adds
        // them when the search fires nothing, exactly as `search` counts the check itself.
        // The cap is told of exactly the work added to `out` and to `skipped`, as it is added,
        // and asked before each continuation.
        let (mut skipped, mut skipped_elements) = (0u64, 0u64);
        let mut fits = |at: &[usize], w: &WaitingContinuation<P, K>| {
            let (fit, checked, elements) =
                incoming_fits(&self.matcher, &w.patterns, at.iter().copied(), incoming);
            let Some(fit) = fit else {
                skipped += checked;
                skipped_elements = skipped_elements.saturating_add(elements);
                cap.spend(
                    checked,
                    VectorWork {
                        searches: 0,
                        elements,
                    },
                );
                return None;
            };
            Some((checked, elements, fit))
        };
        let mut offer = |list: &[C],
                         at: &[usize],
                         join: &mut Option<Join<'v, A>>,
                         w: &WaitingContinuation<P, K>,
                         (checked, elements, fit): Passed<M::Output>| {
            let Some(&cid) = at.first() else {
                return false;
            };
            let inc = Incoming {
                cid,
                key,
                datum: incoming,
                alone: at.len() == 1,
                head,
            };
            let join = &*join.get_or_insert_with(|| resolve(view, list, self.data_ranker()));
            let run = |guide: Option<Guide<'_, _>>| {
                search(
                    &self.matcher,
                    join,
                    &w.patterns,
                    &w.peeks,
                    Some(inc),
                    // `fits` above found it fits: the search need not check again.
                    Some(fit),
                    guide,
                    cap.budget(),
                    PARALLEL_MIN_CANDIDATES,
                    self.scan_on(),
                    &mut *found,
                )
            };
            let outcome = match replay.as_deref_mut() {
                None => run(None),
                Some(rig) => {
                    let hash = rig.hash.consume;
                    let consume = || match w.call() {
                        Some(e) => e.consume_hash(),
                        None => hash(list, &w.patterns, &w.continuation, w.persist, &w.peeks),
                    };
                    let (outcome, record) =
                        rig.guided(stream, consume, list, &w.peeks, |guide| run(Some(guide)));
                    if record.is_some() {
                        out.record = record;
                    }
                    outcome
                }
            };
            out.examined += outcome.examined;
            out.vector.add(outcome.vector);
            out.rejected |= outcome.rejected;
            cap.spend(outcome.examined, outcome.vector);
            if !outcome.found {
                // The passing pre-check's calls: a search that fires nothing may have
                // stopped before the datum's positions; one that fires called the matcher
                // there itself (see `incoming_fits`).
                out.examined += checked;
                out.vector.add_elements(elements);
                cap.spend(
                    checked,
                    VectorWork {
                        searches: 0,
                        elements,
                    },
                );
            }
            outcome.found
        };
        let positions = |list: &[C]| -> SmallVec<[usize; 4]> {
            (0..list.len()).filter(|&i| list[i] == *channel).collect()
        };
        let mut hit = None;
        if let Some(entries) = view.installed_on(channel) {
            for e in entries {
                if !cap.allows() {
                    break;
                }
                let at = positions(&e.list);
                let Some(pre) = fits(&at, &e.w) else {
                    continue;
                };
                if offer(&e.list, &at, &mut None, &e.w, pre) {
                    hit = Some(Source::Installed(e.clone()));
                    break;
                }
            }
        }
        if let (None, Some(cs)) = (&hit, view.channel(channel)) {
            let cont_ranker = self.cont_ranker();
            let mut try_group = |jk: &Arc<[C]>| {
                let conts = view.join(jk)?;
                let at = positions(jk);
                let mut join = None;
                let mut fired = None;
                // By key, where the store walks so: the others cannot accept the datum.
                let _ = conts.for_each_for(
                    cont_ranker.as_ref(),
                    &self.matcher,
                    &incoming.value,
                    |seq, w| {
                        if !cap.allows() {
                            return ControlFlow::Break(());
                        }
                        let Some(pre) = fits(&at, w) else {
                            return ControlFlow::Continue(());
                        };
                        if offer(jk, &at, &mut join, w, pre) {
                            fired = Some(seq);
                            ControlFlow::Break(())
                        } else {
                            ControlFlow::Continue(())
                        }
                    },
                );
                fired.map(|seq| Source::Stored(jk.clone(), seq))
            };
            match self.order_key {
                None => hit = cs.joins.iter().find_map(&mut try_group),
                Some(key) => {
                    // A shuffled order offers the groups by rank; a stable sort, so a rank
                    // tie (a 128-bit collision) keeps the list's order.
                    let mut groups: SmallVec<[RankedGroup<'_, C>; 4]> = cs
                        .joins
                        .iter()
                        .map(|jk| (group_rank(&key, &jk[..]), jk))
                        .collect();
                    groups.sort_by_key(|g| g.0);
                    hit = groups.into_iter().find_map(|(_, jk)| try_group(jk));
                }
            }
        }
        out.examined += skipped;
        out.vector.add_elements(skipped_elements);
        out.hit = hit;
        out
    }

    /// Fires `source`'s continuation with what `found` picked and the produce's `incoming`
    /// datum (draining `found`); returns the COMM, and fills `reuse` (empty) with what its log
    /// record needs and can reuse (an out-parameter: a returned pair was one more copy of the
    /// whole COMM).
    fn fire_produce(
        &self,
        view: &mut View<'_, C, P, A, K>,
        incoming: StoredDatum<A>,
        source: Source<C, P, K>,
        found: &mut Found<M::Output>,
        reuse: &mut LogReuse,
    ) -> Comm<C, P, A, K, M::Output> {
        let (list, mut w) = match source {
            Source::Installed(e) => (e.list.clone(), e.w.clone()),
            Source::Stored(jk, seq) => {
                let w = self.take_or_clone_cont(view, &jk, seq);
                (jk, w)
            }
        };
        // The incoming datum is used up when a non-peeking position takes it and it is not
        // persistent; otherwise it is handed back through `reissue`.
        let uses = found.entry_picks().filter(|(_, p)| p.incoming).count();
        let consumed_here = !incoming.persist
            && found
                .entry_picks()
                .any(|(pos, p)| p.incoming && !w.peeks.contains(&pos));
        let mut incoming = Some(incoming);
        let mut left = uses;
        let call = w.take_call();
        // Built first, and its reports filled in place: a report can be large (a structural
        // matcher's bindings), and the reports are then not moved into the COMM.
        let mut comm = Comm {
            continuation: w.continuation,
            channels: list.into(),
            patterns: w.patterns.into(),
            persistent: w.persist,
            peeks: w.peeks,
            matches: SmallVec::new(),
            reissue: !consumed_here,
        };
        reuse.call = call;
        Self::collect_matches(
            view,
            &comm.channels,
            &comm.peeks,
            found,
            &mut comm.matches,
            reuse,
            |_| {
                left -= 1;
                let d = if left == 0 {
                    incoming.take()
                } else {
                    incoming.clone()
                };
                d.map(|d| (d.value, d.persist))
            },
        );
        comm
    }

    /// Appends each position's report to `out` (empty), from `found` (draining it), taking
    /// consumed data out of their stores. Notes in `reuse` (its `produced` and `priorities`
    /// empty) which reports hold a datum `incoming` gave and the reports' non-zero
    /// priorities, for the log.
    fn collect_matches(
        view: &mut View<'_, C, P, A, K>,
        list: &[C],
        peeks: &Peeks,
        found: &mut Found<M::Output>,
        out: &mut Matches<A, M::Output>,
        reuse: &mut LogReuse,
        mut incoming: impl FnMut(usize) -> Option<(A, bool)>,
    ) {
        out.reserve(found.len());
        // First position of each channel that gave up an item and is not tidied yet.
        let mut untidy: SmallVec<[usize; 4]> = SmallVec::new();
        // Compaction renumbers items, so a channel is tidied only after its last entry has
        // taken what it picked. A top-k position has up to k consecutive entries, so whether
        // an entry is its channel's last is found in one pass that looks a channel up once per
        // position (O(entries + positions²), positions at most `MAX_JOIN`), not by a scan of
        // the later entries per entry (O(k²)).
        let mut last_on_channel: SmallVec<[bool; 4]> = SmallVec::from_elem(false, found.len());
        // Per channel, named by its first position in the list: its last entry so far.
        let mut last: SmallVec<[(usize, usize); 4]> = SmallVec::new();
        let (mut run_pos, mut slot) = (usize::MAX, 0);
        for (e, (pos, _)) in found.entry_picks().enumerate() {
            if pos != run_pos {
                run_pos = pos;
                let first = list.iter().position(|c| *c == list[pos]).unwrap_or(pos);
                slot = last.iter().position(|l| l.0 == first).unwrap_or_else(|| {
                    last.push((first, e));
                    last.len() - 1
                });
            }
            if let Some(l) = last.get_mut(slot) {
                l.1 = e;
            }
        }
        for &(_, e) in &last {
            last_on_channel[e] = true;
        }
        for (e, (pos, pick, result)) in found.drain_entries().enumerate() {
            let taken = if pick.incoming {
                incoming(pos)
            } else {
                let peek = peeks.contains(&pos);
                let last_on_channel = last_on_channel[e];
                let (taken, tidied) = match view.state_mut(&list[pos]).take_or_copy(
                    &list[pos],
                    pick.key,
                    peek,
                    last_on_channel,
                ) {
                    Some((taken, tidied)) => (Some(taken), tidied),
                    None => (None, None),
                };
                match tidied {
                    Some(now_empty) => {
                        untidy.retain(|p| list[*p] != list[pos]);
                        if now_empty {
                            view.remove_channel(&list[pos]);
                        }
                    }
                    None => {
                        // Persistent and peeked items stay; only a taken one leaves its channel to tidy.
                        let took = !peek && taken.as_ref().is_some_and(|t| !t.1);
                        if took && !untidy.iter().any(|p| list[*p] == list[pos]) {
                            untidy.push(pos);
                        }
                    }
                }
                taken
            };
            // A found assignment names live items only, so `taken` is always present; a
            // missing one would be a bug, and is skipped rather than panicking.
            if let Some((datum, persistent)) = taken {
                if pick.incoming && out.len() < 64 {
                    reuse.produced |= 1 << out.len();
                }
                reuse.note_priority(out.len(), pick.key);
                out.push(MatchedDatum {
                    // A position is below `MAX_JOIN` (validated), so it fits.
                    position: pos as u32,
                    result,
                    datum,
                    persistent,
                });
            }
        }
        for pos in untidy {
            Self::tidy_channel(view, &list[pos], true);
        }
    }

    /// Compacts the channel's data (their layout only: contents and order stay) and drops the
    /// channel when it holds no data and no join group. Lists the channel, its data as changed
    /// only when `data_changed` (the caller took from them).
    fn tidy_channel(view: &mut View<'_, C, P, A, K>, channel: &C, data_changed: bool) {
        let cs = if data_changed {
            view.channel_mut(channel)
        } else {
            view.channel_joins_mut(channel)
        };
        let remove = match cs {
            Some(cs) => {
                cs.data.tidy();
                cs.data.is_empty() && cs.joins.is_empty()
            }
            None => false,
        };
        if remove {
            view.remove_channel(channel);
        }
    }

    fn take_or_clone_cont(
        &self,
        view: &mut View<'_, C, P, A, K>,
        jk: &Arc<[C]>,
        seq: u64,
    ) -> WaitingContinuation<P, K> {
        // A persistent continuation stays: read it without listing its group as changed.
        if let Some(w) = view.join(jk).and_then(|s| s.get(seq)).filter(|w| w.persist) {
            return w.clone();
        }
        let (w, now_empty) = match view.join_mut(jk) {
            Some(store) => match store.get(seq) {
                Some(w) if w.persist => (Some(w.clone()), false),
                Some(_) => {
                    let w = store.take(seq, &self.matcher);
                    (w, store.is_empty())
                }
                None => (None, false),
            },
            None => (None, false),
        };
        if now_empty {
            // `join_mut` above listed the group as dirty.
            view.state_mut(&jk[0]).joins.remove(jk);
            for (i, c) in jk.iter().enumerate() {
                if jk[..i].contains(c) {
                    continue;
                }
                if let Some(cs) = view.channel_joins_mut(c) {
                    cs.joins.remove(jk);
                }
                Self::tidy_channel(view, c, false);
            }
        }
        // `seq` came from a search over this very state under the same lock, so `w` is present.
        match w {
            Some(w) => w,
            None => unreachable_cont(),
        }
    }

    /// The channel, created when absent, for a change: of its data when `data`, else of its
    /// join list only.
    fn channel_or_new<'s>(
        view: &'s mut View<'_, C, P, A, K>,
        config: &SpaceConfig<C>,
        channel: &C,
        data: bool,
    ) -> &'s mut ChannelState<C, A> {
        view.state_mut(channel)
            .touch_or_insert(channel, config.kind_of(channel), data)
    }

    /// Waits on `channels` with `patterns` (one per channel; a channel may repeat). Fires at
    /// most one COMM: the first assignment of stored data, in candidate order, that meets all
    /// patterns at once (complete search, SPEC §3). Otherwise the continuation is stored under
    /// the exact channel list, and each channel records the join group. `peeks` lists positions
    /// whose datum stays in place.
    ///
    /// `channels` and `patterns` are anything that converts into a [`CallList`]: arrays,
    /// `Vec`s, slices, `Arc<[T]>`s. A list of one entry is kept inline, so a one-channel
    /// consume that fires at once allocates nothing for its COMM.
    ///
    /// A persistent consume that fires at once is not stored: the COMM's `reissue` says so.
    ///
    /// Errors (nothing changes): `EmptyChannels`, `LengthMismatch`, `PeekOutOfRange`,
    /// `TooManyChannels`; `Query` for a similarity pattern that does not fit its VectorDB
    /// channel; `Replay` while a replay is rigged and the log does not hold the call (or the
    /// COMM it would fire).
    ///
    /// Time: O(arity) with an exact pattern on an indexed channel; the join search otherwise.
    ///
    /// ```
    /// use rhospace_spaces::{Space, SpaceConfig};
    /// use rhospace_matchers::ExactMatch;
    /// let s: Space<&str, u8, u8, &str, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    /// s.produce("x", 1, false).unwrap();
    /// // Peek at position 0: the datum stays.
    /// let comm = s.consume(["x"], [1], "k", false, &[0]).unwrap().unwrap();
    /// assert_eq!(comm.matches[0].datum, 1);
    /// assert_eq!(s.data(&"x").len(), 1);
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn consume(
        &self,
        channels: impl Into<CallList<C>>,
        patterns: impl Into<CallList<P>>,
        continuation: K,
        persist: bool,
        peeks: &[usize],
    ) -> Result<Option<Comm<C, P, A, K, M::Output>>, ConsumeError<K>> {
        self.consume_gated(channels, patterns, continuation, persist, peeks, Open)
    }

    /// [`consume`](Self::consume) with a gate: after the search and before any change, `admit`
    /// sees what the consume will do; if it refuses, the consume fails with
    /// `ErrorKind::OutOfPhlogiston` and nothing changes. Invalid arguments are refused before
    /// the gate is called, and once it admits, the consume makes the change it was shown:
    /// nothing fails after the gate.
    ///
    /// The gate runs under the consume's shard locks, so it must not call this space (the
    /// call would wait for a lock its own thread holds).
    ///
    /// ```
    /// use rhospace_spaces::{ErrorKind, Space, SpaceConfig};
    /// use rhospace_matchers::ExactMatch;
    /// use rhospace_phlogiston::OutOfPhlogiston;
    /// let s: Space<u8, u8, u8, u8, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    /// s.produce(0, 1, false).unwrap();
    /// let err = s
    ///     .consume_admitted([0u8], [1u8], 7, false, &[], |_| {
    ///         Err(OutOfPhlogiston { requested: 9, remaining: 1 })
    ///     })
    ///     .unwrap_err();
    /// assert_eq!(err.into_inner(), 7);
    /// assert_eq!(s.data(&0).len(), 1);
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn consume_admitted<F>(
        &self,
        channels: impl Into<CallList<C>>,
        patterns: impl Into<CallList<P>>,
        continuation: K,
        persist: bool,
        peeks: &[usize],
        admit: F,
    ) -> Result<Option<Comm<C, P, A, K, M::Output>>, ConsumeError<K>>
    where
        F: FnOnce(&Admission<'_, C, P, A, K>) -> Result<(), OutOfPhlogiston>,
    {
        self.consume_gated(channels, patterns, continuation, persist, peeks, admit)
    }

    /// [`consume_admitted`](Self::consume_admitted) with any [`Gate`].
    #[allow(clippy::type_complexity)]
    pub(crate) fn consume_gated<G: Gate<C, P, A, K>>(
        &self,
        channels: impl Into<CallList<C>>,
        patterns: impl Into<CallList<P>>,
        continuation: K,
        persist: bool,
        peeks: &[usize],
        admit: G,
    ) -> Result<Option<Comm<C, P, A, K, M::Output>>, ConsumeError<K>> {
        let channels = channels.into();
        let patterns = patterns.into();
        let peeks = match validate(&channels, &patterns, peeks) {
            Ok(p) => p,
            Err(kind) => return Err(ConsumeError::new(kind, continuation)),
        };
        let mut view = self.lock_channels(&channels);
        self.consume_in(
            &mut view,
            channels,
            patterns,
            continuation,
            persist,
            peeks,
            admit,
        )
    }

    /// A validated consume under `view`, which holds the shards of all of `channels`.
    ///
    /// The search may build exact indexes (noted in `built`); every refusal after it (the
    /// log's, the gate's) settles them as refused, every admission as admitted, before
    /// anything else changes (see [`Built`]).
    #[allow(clippy::type_complexity, clippy::too_many_arguments)]
    fn consume_in<G: Gate<C, P, A, K>>(
        &self,
        view: &mut View<'_, C, P, A, K>,
        channels: CallList<C>,
        patterns: CallList<P>,
        continuation: K,
        persist: bool,
        peeks: Peeks,
        admit: G,
    ) -> Result<Option<Comm<C, P, A, K, M::Output>>, ConsumeError<K>> {
        if let Err(kind) = self.check_queries(&channels, &patterns) {
            return Err(ConsumeError::new(kind, continuation));
        }
        // Replay: the call must be one the log expects, and may fire only a logged COMM.
        let replaying = view.replaying(&channels[0]);
        let hash = |h: &Hashers<C, P, A, K>| {
            (h.consume)(&channels, &patterns, &continuation, persist, &peeks)
        };
        let (mut replay, event) = match self.expect_call(replaying, &channels[0], hash) {
            Ok(r) => r,
            Err(e) => return Err(ConsumeError::new(e, continuation)),
        };
        let mut record = None;
        let mut built = Built::default();
        // A single-channel consume takes the fast path (see `single`); in a replay, guided by
        // the log as the general search would be.
        let single = match (rig_of(&mut replay), event) {
            (Some(rig), Some((h, _))) => {
                // The consume's stream (see `Cursor`), where the COMM it fires is logged.
                let stream = self.router.shard_of(&channels[0]);
                let (single, accepted) = rig.guided(
                    stream,
                    || h,
                    &channels,
                    &peeks,
                    |guide| self.find_single(view, &channels, &patterns, Some(guide)),
                );
                if let Some((_, None, true, built)) = single {
                    view.settle_built(&channels, Built::first(built), false);
                    let e = ErrorKind::Replay(ReplayError::CommNotInLog { hash: h });
                    return Err(ConsumeError::new(e, continuation));
                }
                record = accepted;
                single
            }
            _ => self.find_single(view, &channels, &patterns, None),
        };
        // The general search's cap, when the gate charges a meter (the single-channel walk has
        // none: see `crate::budget`), built only for that search; its assignment, if any, is
        // left in `found` (made only where the general search runs: the fast path that
        // fires returns first).
        let mut found;
        let (examined, vector, hit, refused) = match (single, rig_of(&mut replay), event) {
            (Some((examined, Some(hit), _, built)), _, _) => {
                let replayed = Replayed {
                    guard: &mut replay,
                    event,
                    record,
                };
                return self.fire_single(
                    view,
                    examined,
                    hit,
                    channels,
                    patterns,
                    continuation,
                    persist,
                    peeks,
                    admit,
                    replayed,
                    built,
                );
            }
            (Some((examined, None, _, walk_built)), _, _) => {
                built = Built::first(walk_built);
                found = Found::new();
                (examined, VectorWork::default(), false, None)
            }
            (None, Some(rig), Some((h, _))) => {
                let budget = admit.allowance().map(Budget::new);
                found = Found::new();
                let stream = self.router.shard_of(&channels[0]);
                let ((examined, vector, hit, rejected), accepted) = rig.guided(
                    stream,
                    || h,
                    &channels,
                    &peeks,
                    |guide| {
                        self.find_for_consume(
                            view,
                            &channels,
                            &patterns,
                            &peeks,
                            Some(guide),
                            budget.as_ref(),
                            &mut built,
                            &mut found,
                        )
                    },
                );
                // A search the budget stopped is refused below, with `OutOfPhlogiston`.
                let refused = budget.and_then(|b| b.refused());
                if rejected && !hit && refused.is_none() {
                    view.settle_built(&channels, built, false);
                    let e = ErrorKind::Replay(ReplayError::CommNotInLog { hash: h });
                    return Err(ConsumeError::new(e, continuation));
                }
                record = accepted;
                (examined, vector, hit, refused)
            }
            _ => {
                let budget = admit.allowance().map(Budget::new);
                found = Found::new();
                let (examined, vector, hit, _) = self.find_for_consume(
                    view,
                    &channels,
                    &patterns,
                    &peeks,
                    None,
                    budget.as_ref(),
                    &mut built,
                    &mut found,
                );
                (examined, vector, hit, budget.and_then(|b| b.refused()))
            }
        };
        if let Some(e) = refused {
            // The search's work alone outgrew the meter: refused as the gate would refuse it.
            view.settle_built(&channels, built, false);
            return Err(ConsumeError::new(
                ErrorKind::OutOfPhlogiston(e),
                continuation,
            ));
        }
        if hit {
            let verdict = admit.admit(|| {
                Self::firing(view, OpKind::Consume, examined, &channels, &peeks, &found)
                    .with_vector(vector)
            });
            view.settle_built(&channels, built, verdict.is_ok());
            if let Err(e) = view.admitted(&channels[0], verdict) {
                return Err(ConsumeError::new(
                    ErrorKind::OutOfPhlogiston(e),
                    continuation,
                ));
            }
            strike(&mut replay, event, record.as_ref().map(|r| r.1));
            self.record_consume(
                view.state_mut(&channels[0]),
                &channels,
                &patterns,
                &continuation,
                persist,
                &peeks,
                event,
            );
            // Built first, and its reports filled in place (as `fire_produce`).
            let mut reuse = LogReuse::default();
            let mut comm = Comm {
                continuation,
                channels,
                patterns,
                persistent: persist,
                peeks,
                matches: SmallVec::new(),
                reissue: persist,
            };
            Self::collect_matches(
                view,
                &comm.channels,
                &comm.peeks,
                &mut found,
                &mut comm.matches,
                &mut reuse,
                |_| None,
            );
            let home = view.state_mut(&comm.channels[0]);
            self.record_comm(home, &comm, record.map(|r| r.0), &reuse);
            Ok(Some(comm))
        } else {
            let mut w =
                WaitingContinuation::new(patterns.into_shared(), continuation, persist, peeks);
            // A new join group stores it; an existing one unless it is a Set holding an
            // equal one (the check's work is kept for the store below).
            let vetted = match view.join(&channels) {
                Some(store) => store.vet(&w),
                None => Some(Vetted::default()),
            };
            let stores = vetted.is_some();
            let verdict = admit.admit(|| {
                Admission::storing(OpKind::Consume, examined, stores).with_vector(vector)
            });
            view.settle_built(&channels, built, verdict.is_ok());
            if let Err(e) = view.admitted(&channels[0], verdict) {
                return Err(ConsumeError::new(
                    ErrorKind::OutOfPhlogiston(e),
                    w.continuation,
                ));
            }
            strike(&mut replay, event, None);
            // A persistent continuation that stays in a logging space: its call is encoded
            // once, for this event and for every COMM it fires.
            if vetted.is_some() {
                self.keep_encoded_call(&channels, &mut w);
            }
            // Only a logging space writes the shard here (a consume a continuation store
            // drops as a duplicate changes nothing else).
            if self.log_events {
                let state = view.state_mut(&channels[0]);
                match w.call() {
                    Some(e) if event.is_none() => {
                        state.log.push_consume(LoggedCall::<C, P, K>::Encoded(e));
                    }
                    _ => self.record_consume(
                        state,
                        &channels,
                        &w.patterns,
                        &w.continuation,
                        persist,
                        &w.peeks,
                        event,
                    ),
                }
            }
            if let Some(vetted) = vetted {
                self.store_continuation(view, channels.into_shared(), w, vetted);
            }
            Ok(None)
        }
    }

    /// VectorDB: a similarity query must have its channel's dimension.
    fn check_queries(&self, channels: &[C], patterns: &[P]) -> Result<(), ErrorKind> {
        for (i, (c, p)) in channels.iter().zip(patterns.iter()).enumerate() {
            self.config
                .kind_of(c)
                .check_query(i, self.matcher.similarity(p))?;
        }
        Ok(())
    }

    /// The first assignment for a consume (or install), in candidate order; with a `guide`
    /// (replay), the first one it accepts. Returns the matching work, whether it found one
    /// (then in `found`), and whether the guide rejected one. Notes the exact indexes it
    /// builds in `built` (see [`Built`]). With a `budget`, the search stops once its work
    /// costs more than the meter holds (see [`crate::budget`]).
    #[allow(clippy::too_many_arguments)]
    fn find_for_consume(
        &self,
        view: &mut View<'_, C, P, A, K>,
        channels: &[C],
        patterns: &[P],
        peeks: &[usize],
        guide: Option<Guide<'_, A>>,
        budget: Option<&Budget<'_>>,
        built: &mut Built,
        found: &mut Found<M::Output>,
    ) -> (u64, VectorWork, bool, bool) {
        // One position: the oldest item answering the key spares the index (as `find_single`).
        // A join builds it whatever the oldest item is: its search backtracks past that item
        // (a later position fails, or a second position wants the same key), and every datum
        // the scan then walks is a charged matcher call.
        let one = channels.len() == 1;
        for (i, (c, p)) in channels.iter().zip(patterns.iter()).enumerate() {
            if let Some(key) = self.matcher.exact_key(p) {
                if let Some(cs) = view.channel(c) {
                    let wants = if one {
                        cs.data.wants_index_for(key, self.order_key.is_some())
                    } else {
                        cs.data.wants_index()
                    };
                    if wants && view.build_index(c) {
                        built.add(i);
                    }
                }
            }
        }
        let join = resolve(view, channels, self.data_ranker());
        let out = search(
            &self.matcher,
            &join,
            patterns,
            peeks,
            None,
            None,
            guide,
            budget,
            PARALLEL_MIN_CANDIDATES,
            self.scan_on(),
            found,
        );
        (out.examined, out.vector, out.found, out.rejected)
    }

    /// Stores `w` in the join group of `channels`, which its store vetted (`vetted`; a group
    /// not yet made is created for it).
    fn store_continuation(
        &self,
        view: &mut View<'_, C, P, A, K>,
        channels: Arc<[C]>,
        w: WaitingContinuation<P, K>,
        vetted: Vetted,
    ) {
        if let Some(store) = view.join_mut(&channels) {
            store.push_vetted(w, vetted, &self.matcher);
            return;
        }
        let mut store = ContStore::new(self.config.continuation_kind());
        store.dirty = true;
        store.push_vetted(w, vetted, &self.matcher);
        let home = view.state_mut(&channels[0]);
        home.joins.insert(channels.clone(), store);
        home.dirty_joins.push(channels.clone());
        for (i, c) in channels.iter().enumerate() {
            if channels[..i].contains(c) {
                continue;
            }
            Self::channel_or_new(view, &self.config, c, false)
                .joins
                .push_back(channels.clone());
        }
    }

    /// Stores a persistent continuation that never leaves the space: not by firing, not by
    /// [`clear`](Self::clear) or a revert. Meant for start-up. Installed continuations are
    /// offered to a produce before any stored one, in install order.
    ///
    /// Errors (nothing changes): those of [`consume`](Self::consume), and `InstallWouldMatch`
    /// when stored data already meet its patterns.
    ///
    /// Limit: the check is made at install time. Reverting to a checkpoint taken before the
    /// install, or to another space's checkpoint, can bring in data it would match; such data
    /// stay stored until a call moves them.
    ///
    /// ```
    /// use rhospace_spaces::{ErrorKind, Space, SpaceConfig};
    /// use rhospace_matchers::ExactMatch;
    /// let s: Space<u8, u8, u8, &str, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    /// s.install([0], [1], "service").unwrap();
    /// let comm = s.produce(0, 1, false).unwrap().unwrap();
    /// assert_eq!(comm.continuation, "service");
    /// s.clear();
    /// assert_eq!(s.continuations(&[0]).len(), 1);
    /// s.produce(1, 2, false).unwrap();
    /// assert_eq!(s.install([1], [2], "late").unwrap_err().kind(), &ErrorKind::InstallWouldMatch);
    /// ```
    pub fn install(
        &self,
        channels: impl Into<CallList<C>>,
        patterns: impl Into<CallList<P>>,
        continuation: K,
    ) -> Result<(), ConsumeError<K>> {
        self.install_admitted(channels, patterns, continuation, |_| Ok(()))
    }

    /// [`install`](Self::install) with a gate, as [`consume_admitted`](Self::consume_admitted).
    ///
    /// ```
    /// use rhospace_spaces::{Space, SpaceConfig};
    /// use rhospace_matchers::ExactMatch;
    /// use rhospace_phlogiston::OutOfPhlogiston;
    /// let s: Space<u8, u8, u8, u8, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    /// let refused = s.install_admitted([0u8], [1u8], 7, |_| {
    ///     Err(OutOfPhlogiston { requested: 9, remaining: 1 })
    /// });
    /// assert!(refused.is_err());
    /// assert!(s.continuations(&[0]).is_empty());
    /// ```
    pub fn install_admitted<F>(
        &self,
        channels: impl Into<CallList<C>>,
        patterns: impl Into<CallList<P>>,
        continuation: K,
        admit: F,
    ) -> Result<(), ConsumeError<K>>
    where
        F: FnOnce(&Admission<'_, C, P, A, K>) -> Result<(), OutOfPhlogiston>,
    {
        // Installed lists are kept (and shared by every COMM they fire).
        let channels: Arc<[C]> = channels.into().into_shared();
        let patterns: Arc<[P]> = patterns.into().into_shared();
        if let Err(kind) = validate(&channels, &patterns, &[])
            .and_then(|_| self.check_queries(&channels, &patterns))
        {
            return Err(ConsumeError::new(kind, continuation));
        }
        let mut view = self.lock_channels(&channels);
        let mut built = Built::default();
        let mut found = Found::new();
        let (examined, vector, hit, _) = self.find_for_consume(
            &mut view,
            &channels,
            &patterns,
            &[],
            None,
            None,
            &mut built,
            &mut found,
        );
        let refused = if hit {
            Some(ErrorKind::InstallWouldMatch)
        } else {
            admit(&Admission::storing(OpKind::Install, examined, true).with_vector(vector))
                .err()
                .map(ErrorKind::OutOfPhlogiston)
        };
        view.settle_built(&channels, built, refused.is_none());
        if let Some(kind) = refused {
            return Err(ConsumeError::new(kind, continuation));
        }
        let entry = Arc::new(InstalledEntry {
            list: channels.clone(),
            w: {
                let mut w = WaitingContinuation::new(patterns, continuation, true, Peeks::new());
                self.keep_encoded_call(&channels, &mut w);
                w
            },
        });
        for (i, c) in channels.iter().enumerate() {
            if channels[..i].contains(c) {
                continue;
            }
            let shard = self.router.shard_of(c);
            view.locks
                .get_mut(shard)
                .installed
                .by_channel
                .entry(c.clone())
                .or_default()
                .push(entry.clone());
        }
        Ok(())
    }
}

impl<C, P, A, K, M> Space<C, P, A, K, M>
where
    C: Clone + Hash + Eq,
    P: Clone + Eq + Sync,
    A: Clone + Hash + Eq + Sync,
    K: Clone + Eq,
    M: Match<P, A>,
{
    /// The data stored on `channel`, in the order its kind hands them out (oldest first for
    /// Bag, Set and Queue; newest first for Stack; priority order for PriorityQueue). A hard
    /// checkpoint puts a changed Bag or Set into canonical order first (see the crate's
    /// *Limits*).
    ///
    /// Time: O(n) in the channel's data.
    ///
    /// ```
    /// # use rhospace_spaces::{Space, SpaceConfig};
    /// # use rhospace_matchers::ExactMatch;
    /// let s: Space<u8, u8, u8, u8, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    /// s.produce(0, 1, false).unwrap();
    /// s.produce(0, 2, true).unwrap();
    /// let d = s.data(&0);
    /// assert_eq!((d[0].value, d[1].value, d[1].persist), (1, 2, true));
    /// ```
    pub fn data(&self, channel: &C) -> Vec<StoredDatum<A>> {
        let guard = self.shards[self.router.shard_of(channel)].0.lock_hot();
        guard
            .state
            .channels
            .get(channel)
            .map(|cs| cs.data.ordered())
            .unwrap_or_default()
    }

    /// The continuations waiting on exactly `channels` (installed ones first), oldest first
    /// (a Bag or Set store in canonical order as of the last hard checkpoint that changed
    /// it, as the crate's *Limits* say).
    ///
    /// ```
    /// # use rhospace_spaces::{Space, SpaceConfig};
    /// # use rhospace_matchers::ExactMatch;
    /// let s: Space<u8, u8, u8, u8, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    /// s.consume([1, 2], [0, 0], 7, false, &[]).unwrap();
    /// assert_eq!(s.continuations(&[1, 2])[0].continuation, 7);
    /// assert!(s.continuations(&[2, 1]).is_empty());
    /// ```
    pub fn continuations(&self, channels: &[C]) -> Vec<WaitingContinuation<P, K>> {
        let Some(home) = channels.first() else {
            return Vec::new();
        };
        // Join groups and their installed entries are both found through the first channel.
        let guard = self.shards[self.router.shard_of(home)].0.lock_hot();
        let mut out: Vec<WaitingContinuation<P, K>> = guard
            .installed
            .by_channel
            .get(home)
            .into_iter()
            .flatten()
            .filter(|e| &e.list[..] == channels)
            .map(|e| e.w.clone())
            .collect();
        if let Some(store) = guard.state.joins.get(channels) {
            out.extend(store.all().cloned());
        }
        out
    }

    /// The join groups (channel lists with waiting continuations) that `channel` takes part
    /// in: installed ones in install order, then the others in creation order (canonical
    /// order as of the last hard checkpoint that changed the list, as the crate's *Limits*
    /// say).
    ///
    /// ```
    /// # use rhospace_spaces::{Space, SpaceConfig};
    /// # use rhospace_matchers::ExactMatch;
    /// let s: Space<u8, u8, u8, u8, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    /// s.consume([1, 2], [0, 0], 7, false, &[]).unwrap();
    /// assert_eq!(&*s.joins(&2)[0], &[1, 2]);
    /// ```
    pub fn joins(&self, channel: &C) -> Vec<Arc<[C]>> {
        let guard = self.shards[self.router.shard_of(channel)].0.lock_hot();
        let mut out: Vec<Arc<[C]>> = Vec::new();
        if let Some(entries) = guard.installed.by_channel.get(channel) {
            for e in entries {
                if !out.contains(&e.list) {
                    out.push(e.list.clone());
                }
            }
        }
        if let Some(cs) = guard.state.channels.get(channel) {
            for jk in cs.joins.iter() {
                if !out.contains(jk) {
                    out.push(jk.clone());
                }
            }
        }
        out
    }

    /// Whether no datum and no (non-installed) continuation is stored.
    ///
    /// ```
    /// # use rhospace_spaces::{Space, SpaceConfig};
    /// # use rhospace_matchers::ExactMatch;
    /// let s: Space<u8, u8, u8, u8, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    /// assert!(s.is_empty());
    /// s.produce(0, 0, false).unwrap();
    /// assert!(!s.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        let all = AllLocked::lock(&self.shards);
        all.guards.iter().all(|g| g.state.channels.is_empty())
    }

    /// Number of channels holding data or taking part in a (non-installed) join group.
    ///
    /// ```
    /// # use rhospace_spaces::{Space, SpaceConfig};
    /// # use rhospace_matchers::ExactMatch;
    /// let s: Space<u8, u8, u8, u8, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    /// s.consume([1, 2], [0, 0], 0, false, &[]).unwrap();
    /// assert_eq!(s.channel_count(), 2);
    /// ```
    pub fn channel_count(&self) -> usize {
        let all = AllLocked::lock(&self.shards);
        all.guards.iter().map(|g| g.state.channels.len()).sum()
    }

    /// Captures the whole state (data, continuations, joins) in O(1).
    ///
    /// ```
    /// # use rhospace_spaces::{Space, SpaceConfig};
    /// # use rhospace_matchers::ExactMatch;
    /// let s: Space<u8, u8, u8, u8, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    /// let empty = s.create_soft_checkpoint();
    /// s.produce(0, 0, false).unwrap();
    /// s.revert_to_soft_checkpoint(&empty).unwrap();
    /// assert!(s.is_empty());
    /// ```
    ///
    /// Time: O(shards), independent of channels and items: every shard is locked (ascending,
    /// pausing writers for the copy of one pointer per shard) and its persistent state shared.
    pub fn create_soft_checkpoint(&self) -> SoftCheckpoint<C, P, A, K> {
        let all = AllLocked::lock(&self.shards);
        let shards = all.guards.iter().map(|g| g.state.clone()).collect();
        let ledger = Self::ledger(&all);
        let replay = if all.guards.first().is_some_and(|g| g.replaying) {
            let r = self.replay.lock();
            r.rig
                .as_ref()
                .map(|rig| (rig.generation, rig.expect.clone()))
        } else {
            None
        };
        let merkle = self.hard.lock().merkle.clone();
        drop(all);
        SoftCheckpoint {
            shards,
            merkle,
            replay,
            ledger,
            origin: self.origin,
        }
    }

    /// Restores the state captured by `checkpoint`, in O(1). Installed continuations stay. The
    /// checkpoint is not consumed and can be reverted to again. A checkpoint taken from another
    /// space brings that space's stores; the next [`create_checkpoint`](Self::create_checkpoint)
    /// stores in this space's history whatever it lacks of them, so the root it records can be
    /// reset to from the store alone. Unmetered: a [`ChargingSpace`](crate::ChargingSpace)'s
    /// revert also settles its storage refunds.
    ///
    /// Errors (nothing changes): [`RevertError::KindMismatch`] when the checkpoint is another
    /// space's and some of its stores are of another kind than this space's configuration
    /// gives them (a space whose configuration differs); never for a checkpoint of this space.
    ///
    /// Time: O(shards) for a checkpoint of this space. Another space's is checked first, in
    /// O(channels + join groups), and re-routed when its shard count differs, in O(channels +
    /// join groups) too.
    ///
    /// ```
    /// # use rhospace_spaces::{Space, SpaceConfig};
    /// # use rhospace_matchers::ExactMatch;
    /// let s: Space<u8, u8, u8, u8, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    /// s.produce(0, 1, false).unwrap();
    /// let cp = s.create_soft_checkpoint();
    /// for _ in 0..2 {
    ///     s.consume([0], [1], 0, false, &[]).unwrap();
    ///     s.revert_to_soft_checkpoint(&cp).unwrap();
    ///     assert_eq!(s.data(&0).len(), 1);
    /// }
    /// ```
    pub fn revert_to_soft_checkpoint(
        &self,
        checkpoint: &SoftCheckpoint<C, P, A, K>,
    ) -> Result<(), RevertError> {
        self.check_kinds(checkpoint)?;
        // Unsettled: the refund ledger stays as it is (see `revert_settled`).
        let Ok(()) = self.revert_settled(checkpoint, |current, _| Ok::<_, Infallible>(current));
        Ok(())
    }

    /// Refuses another space's checkpoint holding stores of another kind than this space's
    /// configuration gives them (see [`RevertError::KindMismatch`]). A checkpoint of this
    /// space passes at once: its stores were made under this configuration.
    ///
    /// Time: O(1) for a checkpoint of this space; O(channels + join groups) otherwise.
    pub(crate) fn check_kinds(
        &self,
        checkpoint: &SoftCheckpoint<C, P, A, K>,
    ) -> Result<(), RevertError> {
        if checkpoint.origin == self.origin {
            return Ok(());
        }
        let conts = self.config.continuation_kind();
        let (mut data, mut continuations) = (0, 0);
        for st in checkpoint.shards.iter() {
            for (c, cs) in st.channels.iter() {
                data += usize::from(cs.data.kind() != self.config.kind_of(c));
            }
            for (_, store) in st.joins.iter() {
                continuations += usize::from(store.kind() != conts);
            }
        }
        if data == 0 && continuations == 0 {
            Ok(())
        } else {
            Err(RevertError::KindMismatch {
                data,
                continuations,
            })
        }
    }

    /// [`revert_to_soft_checkpoint`](Self::revert_to_soft_checkpoint), settling the refund
    /// ledger (`Shard::ledger`; see [`Gate`]). With every shard held and before any change,
    /// `settle` is called with the ledger now and the checkpoint's: the checkpoint's if this
    /// space took it, otherwise the ledger now again (another space's ledger counts another
    /// meter's refunds). It returns the ledger the restored state carries, or refuses, and then
    /// nothing changes. Operations credit the ledger under their shard locks, so no settlement
    /// falls between an operation's change and its credit.
    pub(crate) fn revert_settled<E>(
        &self,
        checkpoint: &SoftCheckpoint<C, P, A, K>,
        settle: impl FnOnce(u64, u64) -> Result<u64, E>,
    ) -> Result<(), E> {
        let rerouted;
        let states: &[StateRef<C, P, A, K>] = if checkpoint.shards.len() == self.shards.len() {
            &checkpoint.shards
        } else {
            rerouted = self.reroute(&checkpoint.shards);
            &rerouted
        };
        let mut old = Vec::with_capacity(states.len());
        let mut all = AllLocked::lock(&self.shards);
        let current = Self::ledger(&all);
        let target = if checkpoint.origin == self.origin {
            checkpoint.ledger
        } else {
            current
        };
        // On refusal the locks are released and nothing has changed.
        let ledger = settle(current, target)?;
        for (i, (g, state)) in all.guards.iter_mut().zip(states).enumerate() {
            old.push(std::mem::replace(&mut g.state, state.clone()));
            g.ledger = if i == 0 { ledger } else { 0 };
        }
        if let Some((generation, expect)) = &checkpoint.replay {
            if all.guards.first().is_some_and(|g| g.replaying) {
                if let Some(rig) = self.replay.lock().rig.as_mut() {
                    // Rig numbers count this space's rigs: another space's checkpoint
                    // comes from another replay whatever its number.
                    if rig.generation == *generation && checkpoint.origin == self.origin {
                        rig.expect = expect.clone();
                    }
                }
            }
        }
        let old_merkle = std::mem::replace(&mut self.hard.lock().merkle, checkpoint.merkle.clone());
        drop(all);
        drop(old_merkle);
        // Dropping the old states can free large trees: do it outside the locks.
        drop(old);
        Ok(())
    }

    /// The refund ledger: the wrapping sum of every shard's part (all shards held).
    fn ledger(all: &AllLocked<'_, Shard<C, P, A, K>>) -> u64 {
        all.guards
            .iter()
            .fold(0u64, |sum, g| sum.wrapping_add(g.ledger))
    }

    /// Distributes the states of another shard count over this space's shards: entries and
    /// dirty lists by routing; the event logs, which are ordered per shard, are kept whole,
    /// one after another in source shard order, in shard 0 (so the next hard checkpoint
    /// settles every changed entry and returns every event since the last one).
    fn reroute(&self, states: &[StateRef<C, P, A, K>]) -> Vec<StateRef<C, P, A, K>> {
        let mut out: Vec<State<C, P, A, K>> =
            (0..self.shards.len()).map(|_| State::default()).collect();
        for st in states {
            for c in st.dirty.iter() {
                out[self.router.shard_of(c)].dirty.push(c.clone());
            }
            for jk in st.dirty_joins.iter() {
                if let Some(home) = jk.first() {
                    out[self.router.shard_of(home)].dirty_joins.push(jk.clone());
                }
            }
            if let Some(first) = out.first_mut() {
                first.log.extend_from(&st.log);
            }
            for (c, cs) in st.channels.iter() {
                out[self.router.shard_of(c)]
                    .channels
                    .insert(c.clone(), cs.clone());
            }
            for (jk, store) in st.joins.iter() {
                if let Some(home) = jk.first() {
                    out[self.router.shard_of(home)]
                        .joins
                        .insert(jk.clone(), store.clone());
                }
            }
        }
        out.into_iter().map(StateRef::new).collect()
    }

    /// Empties the space of data and continuations; installed continuations stay.
    ///
    /// ```
    /// # use rhospace_spaces::{Space, SpaceConfig};
    /// # use rhospace_matchers::ExactMatch;
    /// let s: Space<u8, u8, u8, u8, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    /// s.produce(0, 1, false).unwrap();
    /// s.clear();
    /// assert!(s.is_empty());
    /// ```
    pub fn clear(&self) {
        let mut old = Vec::with_capacity(self.shards.len());
        let mut all = AllLocked::lock(&self.shards);
        for g in all.guards.iter_mut() {
            old.push(std::mem::take(&mut g.state));
        }
        self.end_replay(&mut all);
        let old_merkle = std::mem::take(&mut self.hard.lock().merkle);
        drop(all);
        drop(old_merkle);
        drop(old);
    }
}

impl<C, P, A, K, M> Space<C, P, A, K, M>
where
    C: Clone + Hash + Eq,
    P: Clone,
    A: Clone + Hash + Eq,
    K: Clone,
{
    /// Rigs the space for replay with `rig` (`None`: back to play), under every shard lock.
    /// Takes the replay lock (lock order: after the shards).
    fn set_replay(
        &self,
        all: &mut AllLocked<'_, Shard<C, P, A, K>>,
        rig: Option<(Expect, Hashers<C, P, A, K>)>,
    ) {
        let mut r = self.replay.lock();
        let on = rig.is_some();
        if let Some((expect, hash)) = rig {
            r.rigs += 1;
            let generation = r.rigs;
            let streams = if self.replay_cursors {
                self.shards.len()
            } else {
                0
            };
            r.rig = Some(Rig::new(expect, hash, generation, streams));
        } else {
            r.rig = None;
        }
        for g in all.guards.iter_mut() {
            g.replaying = on;
        }
    }

    /// Ends a replay in progress, if any (see [`set_replay`](Self::set_replay)).
    fn end_replay(&self, all: &mut AllLocked<'_, Shard<C, P, A, K>>) {
        if all.guards.first().is_some_and(|g| g.replaying) {
            self.set_replay(all, None);
        }
    }

    /// Whether the space is rigged for replay ([`rig`](Self::rig)); a hard checkpoint that
    /// finds the log fully replayed, a [`reset`](Self::reset) or a [`clear`](Self::clear) ends
    /// the replay.
    ///
    /// ```
    /// use rhospace_spaces::{Space, SpaceConfig};
    /// use rhospace_matchers::ExactMatch;
    /// let s: Space<u8, u8, u8, u8, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    /// s.produce(1, 2, false).unwrap();
    /// let cp = s.create_checkpoint().unwrap();
    /// s.rig(&rhospace_spaces::merkle::EMPTY_ROOT, &cp.log).unwrap();
    /// assert!(s.is_replaying());
    /// s.produce(1, 2, false).unwrap();
    /// assert_eq!(s.create_checkpoint().unwrap().root, cp.root);
    /// assert!(!s.is_replaying());
    /// ```
    pub fn is_replaying(&self) -> bool {
        self.shards.first().is_some_and(|s| s.0.lock().replaying)
    }

    /// The same space with replay cursors off: its rigs look every call and COMM up in their
    /// tables (the reference the cursors are tested against).
    #[cfg(test)]
    pub(crate) fn without_replay_cursors(mut self) -> Self {
        self.replay_cursors = false;
        self
    }
}

#[cold]
fn unreachable_cont<T>() -> T {
    // Only reachable if the state broke its own invariant under the lock; there is no
    // input that leads here. Abort loudly rather than return a wrong COMM.
    panic!("rhospace invariant broken: a found continuation vanished under the lock")
}

#[cfg(all(test, not(loom)))]
mod scan_pool_tests {
    use super::*;
    use rhospace_matchers::ExactMatch;

    type S = Space<u8, u8, u8, u8, ExactMatch>;

    #[test]
    fn a_space_scan_pool_has_the_threads_asked_for_up_to_the_cap() {
        let threads = |s: &S| match &s.scans {
            Scans::Own(pool) => Some(pool.current_num_threads()),
            Scans::Shared | Scans::Serial => None,
        };
        let shared: S = Space::new(ExactMatch, SpaceConfig::new());
        assert_eq!(threads(&shared), None, "no pool of its own by default");
        let two = Space::new(ExactMatch, SpaceConfig::new()).with_scan_threads(2);
        assert_eq!(threads(&two), Some(2));
        let huge = Space::new(ExactMatch, SpaceConfig::new()).with_scan_threads(usize::MAX);
        assert_eq!(threads(&huge), Some(MAX_SCAN_THREADS));
        huge.produce(1, 2, false).unwrap();
        assert!(huge.consume([1], [2], 0, false, &[]).unwrap().is_some());
    }
}
