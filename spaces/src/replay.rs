//! Replay (SPEC §7): a space rigged with a starting root and a log checks each call against
//! the log and lets the log, not the candidate order, choose which COMM fires.
//!
//! # Protocol
//! [`Space::rig`](crate::Space::rig) resets the space to the starting root and turns the log
//! into two multisets: the expected calls (produce and consume hashes, each as often as the log
//! numbers it) and the expected COMMs ([`CommRecord`]s). Then each call, under its shard locks
//! and the replay lock:
//! 1. hashes itself; a call the log does not (or no longer) expect is refused:
//!    [`ReplayError::EventNotInLog`];
//! 2. searches as in play, but every complete assignment is shown to a guide that accepts it
//!    only if its COMM record is an unused logged COMM. The first accepted assignment in
//!    candidate order fires, so when several candidates match, the log decides;
//! 3. if the search met assignments but the guide rejected them all, play would have fired a
//!    COMM the log lacks: [`ReplayError::CommNotInLog`];
//! 4. otherwise the call goes on as in play (stores, or fires the accepted COMM), and its event
//!    and COMM are struck from the multisets.
//!
//! Each refusal happens before any change, so it changes nothing. The next
//! [`create_checkpoint`](crate::Space::create_checkpoint) refuses with
//! [`ReplayError::Unused`] while logged calls or COMMs remain, and otherwise ends the replay.
//!
//! # Why multisets
//! The log is ordered per shard and merged by shard ([`Space::create_checkpoint`]'s log), so
//! its global order says nothing a replay can rely on; what must agree is *which* calls were
//! made and *which* COMMs fired. Identical calls are told apart by their count. The counts
//! are copy-on-write arrays beside an immutable index of the log, so a soft checkpoint taken
//! during a replay captures them in O(1) and a revert restores them with the state.
//!
//! # Cursors: the log's order as a hint
//! The order the multisets ignore still predicts lookups well. A space logs a call, and the
//! COMM the call fires, in the shard of the call's *stream* (a produce's channel, a consume's
//! first channel), and a checkpoint's log is the shards' logs one after another. A replay makes
//! the block's calls in play's order, so on a space with as many shards each stream meets its
//! calls and COMMs in log order. The index therefore also keeps the slots of the calls, and of
//! the COMMs, in log order, with each slot's positions ([`Order`]); the rig keeps, per stream
//! of the replaying space, a [`Cursor`]: the position after the stream's last lookup. A lookup
//! tries the slot at the cursor first and takes it only if that slot's key is the very key
//! looked up and the replay still expects it; slots are per distinct key, so that is the slot
//! the table gives. Otherwise (a stream's first lookup, another shard count, calls in another
//! order, a tampered log, a revert) it asks the table and moves the cursor after the
//! occurrence the table found. Cursors are hints outside the snapshotted expectations: no
//! cursor state changes a result, and soft checkpoints stay O(1).
//!
//! # Cost
//! - [`Expect::from_log`] (the rig): O(log length): a pass to count the COMMs, one to index
//!   the log, and one over the slots in log order to place each slot's positions.
//! - A lookup the cursor answers: one slot read, one key comparison and one count read, no
//!   hashing. Any other: one expected-O(1) table lookup, plus the resync (O(1)).
//! - A strike: O(1); the first after a snapshot copies one pointer per [`CHUNK`] counts and
//!   one chunk.
//! - A snapshot of the expectations: O(1) (two reference counts).
//!
//! [`Space::create_checkpoint`]: crate::Space::create_checkpoint

use std::borrow::Cow;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use hashbrown::hash_table::Entry;
use hashbrown::HashTable;

use smallvec::SmallVec;

use crate::log::{CommRecord, LogEvent};
use crate::merkle::{hex, Digest};

/// Why a replayed call, a rig, or the checkpoint that ends a replay was refused. Nothing
/// changed.
///
/// ```
/// use rhospace_spaces::{ErrorKind, ReplayError, Space, SpaceConfig};
/// use rhospace_matchers::ExactMatch;
/// let s: Space<u8, u8, u8, u8, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
/// let start = s.create_checkpoint().unwrap().root;
/// s.rig(&start, &[]).unwrap(); // an empty log: no call is expected
/// let err = s.produce(1, 2, false).unwrap_err();
/// assert!(matches!(err.kind(), ErrorKind::Replay(ReplayError::EventNotInLog { .. })));
/// assert!(s.is_empty());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReplayError {
    /// A call the log does not record (or records fewer times than it was made).
    EventNotInLog {
        /// The call's hash ([`produce_hash`](crate::produce_hash) or
        /// [`consume_hash`](crate::consume_hash)).
        hash: Digest,
    },
    /// A call that would fire a COMM where the log has none left for it: the search met
    /// matching assignments, and the log holds none of them.
    CommNotInLog {
        /// The call's hash.
        hash: Digest,
    },
    /// The checkpoint that ends a replay found logged calls or COMMs that the replay did not
    /// make.
    Unused {
        /// Logged calls not replayed.
        events: usize,
        /// Logged COMMs that did not fire.
        comms: usize,
    },
    /// A log whose counters are not 0, 1, 2, … in log order for each hash: not a log a space
    /// wrote.
    BadCounter {
        /// The event's hash.
        hash: Digest,
        /// The counter found.
        counter: u32,
        /// The counter expected there.
        expected: u32,
    },
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayError::EventNotInLog { hash } => {
                write!(f, "replay: call {} is not in the log", hex(hash))
            }
            ReplayError::CommNotInLog { hash } => write!(
                f,
                "replay: call {} would fire a COMM the log does not hold",
                hex(hash)
            ),
            ReplayError::Unused { events, comms } => write!(
                f,
                "replay: {events} logged calls and {comms} logged COMMs were not replayed"
            ),
            ReplayError::BadCounter {
                hash,
                counter,
                expected,
            } => write!(
                f,
                "replay: log event {} has counter {counter}, expected {expected}",
                hex(hash)
            ),
        }
    }
}

impl std::error::Error for ReplayError {}

/// The distinct calls and COMMs of a rigged log, numbered (their *slots*) in order of first
/// appearance. Built once by [`Expect::from_log`] and never changed (shared by every
/// snapshot); only looked up, never iterated.
///
/// Layout: the keys live in flat arrays by slot (a COMM's record as one run of bytes in an
/// arena, see [`CommKeys`]), and two `hashbrown` tables of bare slot numbers find them. Against maps holding
/// the keys themselves (a COMM bucket with its record was 136 bytes, beside a heap list of
/// produce hashes) the tables are small enough to stay in cache while a replay looks up every
/// call and COMM, and building them moves no records.
///
/// The tables hash whole keys with a randomly seeded hasher, so a hostile log cannot aim
/// collisions (its digests are arbitrary bytes, not necessarily real hashes). The seed never
/// reaches a result: it only decides where a slot sits in a table.
#[derive(Debug, Default)]
struct LogIndex {
    hasher: foldhash::fast::RandomState,
    /// Event slots, found by their hash in `event_keys`.
    events: HashTable<usize>,
    /// Each distinct call hash, by slot.
    event_keys: Vec<Digest>,
    /// COMM slots, found by their record in `comm_keys`.
    comms: HashTable<usize>,
    /// Each distinct COMM record, by slot.
    comm_keys: CommKeys,
    /// The event slot of each call of the log, in log order, and where each slot occurs.
    event_order: Order,
    /// The COMM slot of each COMM of the log, in log order, and where each slot occurs.
    comm_order: Order,
}

/// The slots of one kind of log event (calls, or COMMs) in log order, and for each slot the
/// positions where it occurs: what lets a [`Cursor`] guess the next lookup's slot and resync
/// after a miss. A *position* counts events of this kind only (the `p`-th call, or the `p`-th
/// COMM, of the log).
///
/// Invariants: `order.len() < u32::MAX`; every `order[p]` is a slot of the index; `starts` has
/// one entry per slot plus one, ascending from 0 to `order.len()`; `positions[starts[s]..
/// starts[s + 1]]` are the positions of slot `s` in `order`, ascending, so together
/// `positions` holds every position once (a CSR layout). A log with `u32::MAX` events or more
/// gets all three empty: no cursor then ever hits, and lookups go to the tables.
#[derive(Debug, Default)]
struct Order {
    order: Vec<u32>,
    starts: Vec<u32>,
    positions: Vec<u32>,
}

impl Order {
    /// The occurrences of `order`, whose slot `s` occurs `counts[s]` times (see the
    /// invariants; anything else, which the builder never passes, gives no cursors).
    /// O(n + slots).
    fn new(order: Vec<u32>, counts: &[u32]) -> Self {
        let n = order.len();
        if u32::try_from(n).map_or(true, |n| n == u32::MAX) {
            return Self::default();
        }
        // `starts[s]` is where slot `s`'s positions begin: the counts before it, summed.
        let mut starts = Vec::with_capacity(counts.len() + 1);
        let mut sum = 0usize;
        starts.push(0);
        for &c in counts {
            sum += c as usize;
            if sum > n {
                return Self::default();
            }
            starts.push(sum as u32);
        }
        if sum != n {
            return Self::default();
        }
        // Positions by slot, in log order: `next[s]` is where slot `s`'s next position goes,
        // below `starts[s + 1]` if slot `s` occurs `counts[s]` times.
        let mut next = starts.clone();
        let mut positions = vec![0u32; n];
        for (p, &s) in (0u32..).zip(&order) {
            let s = s as usize;
            let (Some(at), Some(&end)) = (next.get_mut(s), starts.get(s + 1)) else {
                return Self::default();
            };
            match positions.get_mut(*at as usize) {
                Some(dst) if *at < end => *dst = p,
                _ => return Self::default(),
            }
            *at += 1;
        }
        Self {
            order,
            starts,
            positions,
        }
    }

    /// The slot at position `p`, if `p` is one.
    #[inline]
    fn slot_at(&self, p: u32) -> Option<usize> {
        self.order.get(p as usize).map(|&s| s as usize)
    }

    /// The position just after the occurrence of `slot` that a replay with `left` of its
    /// occurrences still expected meets now (occurrence `total - left`, counting from 0):
    /// where the cursor of the stream that met it goes. [`UNSET`] when there is none.
    fn after(&self, slot: usize, left: u32) -> u32 {
        let (Some(&a), Some(&b)) = (self.starts.get(slot), self.starts.get(slot + 1)) else {
            return UNSET;
        };
        let total = b.saturating_sub(a);
        match total.checked_sub(left) {
            Some(k) if k < total => self
                .positions
                .get((a + k) as usize)
                .map_or(UNSET, |&p| p + 1),
            _ => UNSET,
        }
    }
}

/// A position no cursor can hit (see [`Order`]: positions are below `u32::MAX - 1`).
const UNSET: u32 = u32::MAX;

#[cfg(test)]
thread_local! {
    /// Test instrumentation: lookups through a cursor that the tables answered, on this
    /// thread (the tests check that cursors answer what they should).
    pub(crate) static TABLE_LOOKUPS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts a lookup through a cursor that went to the tables (tests only; nothing otherwise).
#[inline]
fn missed() {
    #[cfg(test)]
    TABLE_LOOKUPS.with(|n| n.set(n.get() + 1));
}

/// Where one stream of a replay expects its next call and its next COMM in the log: a
/// position in [`LogIndex`]'s `event_order` and `comm_order`, or [`UNSET`].
///
/// A *stream* is the replaying space's shard of a call (the channel of a produce, the first
/// channel of a consume). A space logs a call, and the COMM it fires, in that shard, and the
/// log is the shards' logs one after another; so when a replay makes a block's calls in the
/// order play made them on a space with as many shards, each stream meets its calls and COMMs
/// in log order, and the next one is the one after the stream's last hit.
///
/// A cursor is only a hint: a lookup first tries the slot at the cursor, and takes it only if
/// its key *is* the one looked up (slots are per distinct key, so that is the slot the table
/// would give) and the replay still expects it; anything else goes to the table, which then
/// resyncs the cursor. So no cursor state, stale, wrong or unset, changes a result. Cursors
/// live in the [`Rig`], outside the snapshotted [`Expect`]: a soft checkpoint stays O(1), and
/// a revert leaves them stale at worst.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cursor {
    event: u32,
    comm: u32,
}

impl Default for Cursor {
    fn default() -> Self {
        Self {
            event: UNSET,
            comm: UNSET,
        }
    }
}

/// COMM records by slot, flat: each record's bytes one after another in one arena (its
/// consume hash, its produce hashes, its peeks as little-endian `u32`s), and a short entry per
/// slot saying where. Checking a slot's record reads its entry and then one run of contiguous
/// bytes, rather than an entry and then the produce hashes elsewhere; and the records of
/// consecutive slots (COMMs in their order of first appearance in the log) lie side by side.
///
/// Invariant: `keys[s]` describes bytes that `push` appended for slot `s`, so
/// `start + 32 + 32 * produces + 4 * peeks <= bytes.len()` (no sum overflows).
#[derive(Debug, Default)]
struct CommKeys {
    keys: Vec<CommKey>,
    bytes: Vec<u8>,
}

/// Where one record lies in [`CommKeys`]' arena, and its numbers of produces and peeks.
#[derive(Clone, Copy, Debug)]
struct CommKey {
    start: usize,
    produces: usize,
    peeks: usize,
}

/// A record as [`CommKeys`] stores it: the consume hash, then the produce hashes (32 bytes
/// each) and the peeks (4 bytes each) as bytes.
type StoredRecord<'a> = (&'a Digest, &'a [u8], &'a [u8]);

impl CommKeys {
    /// Record `slot`; `None` for a slot out of range (none is: the index hands out only slots
    /// it holds).
    #[inline]
    fn get(&self, slot: usize) -> Option<StoredRecord<'_>> {
        let k = self.keys.get(slot)?;
        let produces = k.start + 32;
        let peeks = produces + 32 * k.produces;
        let bytes = self.bytes.get(k.start..peeks + 4 * k.peeks)?;
        let (consume, rest) = bytes.split_first_chunk::<32>()?;
        let (produces, peeks) = rest.split_at_checked(32 * k.produces)?;
        Some((consume, produces, peeks))
    }

    /// Whether record `slot` is `record`.
    #[inline]
    fn is(&self, slot: usize, record: &CommRecord) -> bool {
        let Some((consume, produces, peeks)) = self.get(slot) else {
            return false;
        };
        // Compared 32 bytes at a time, inline: a COMM has one or two produces, mostly.
        *consume == record.consume
            && produces.len() == 32 * record.produces.len()
            && digests(produces).eq(record.produces.iter())
            && peeks.len() == 4 * record.peeks.len()
            && words(peeks).eq(record.peeks.iter().copied())
    }

    /// Appends `record`; returns its slot.
    fn push(&mut self, record: &CommRecord) -> usize {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(&record.consume);
        self.bytes.extend_from_slice(record.produces.as_flattened());
        for p in &record.peeks {
            self.bytes.extend_from_slice(&p.to_le_bytes());
        }
        self.keys.push(CommKey {
            start,
            produces: record.produces.len(),
            peeks: record.peeks.len(),
        });
        self.keys.len() - 1
    }

    /// Record `slot`'s table position: [`record_hash`] of the record.
    fn hash(&self, hasher: &foldhash::fast::RandomState, slot: usize) -> u64 {
        match self.get(slot) {
            Some((consume, produces, peeks)) => {
                comm_hash(hasher, consume, digests(produces), words(peeks))
            }
            None => comm_hash(hasher, &[0; 32], std::iter::empty(), std::iter::empty()),
        }
    }
}

/// The 32-byte hashes that `bytes` holds one after another (a whole number of them).
fn digests(bytes: &[u8]) -> impl ExactSizeIterator<Item = &Digest> {
    // Every exact chunk has 32 bytes: the fallback is never taken.
    bytes
        .chunks_exact(32)
        .map(|c| c.first_chunk::<32>().unwrap_or(&[0; 32]))
}

/// The little-endian `u32`s that `bytes` holds one after another (a whole number of them).
fn words(bytes: &[u8]) -> impl ExactSizeIterator<Item = u32> + '_ {
    // Every exact chunk has 4 bytes: the fallback is never taken.
    bytes
        .chunks_exact(4)
        .map(|c| c.first_chunk::<4>().map_or(0, |w| u32::from_le_bytes(*w)))
}

/// A table position for call `hash`.
fn event_hash(hasher: &foldhash::fast::RandomState, hash: &Digest) -> u64 {
    let mut h = hasher.build_hasher();
    h.write(hash);
    h.finish()
}

/// A table position for the COMM `(consume, produces, peeks)`: the same for a
/// [`CommRecord`] and for its stored form in [`CommKeys`].
fn comm_hash<'a>(
    hasher: &foldhash::fast::RandomState,
    consume: &Digest,
    produces: impl ExactSizeIterator<Item = &'a Digest>,
    peeks: impl ExactSizeIterator<Item = u32>,
) -> u64 {
    let mut h = hasher.build_hasher();
    h.write(consume);
    h.write_usize(produces.len());
    for p in produces {
        h.write(p);
    }
    h.write_usize(peeks.len());
    for p in peeks {
        h.write_u32(p);
    }
    h.finish()
}

/// A table position for COMM `record`.
fn record_hash(hasher: &foldhash::fast::RandomState, record: &CommRecord) -> u64 {
    comm_hash(
        hasher,
        &record.consume,
        record.produces.iter(),
        record.peeks.iter().copied(),
    )
}

impl LogIndex {
    /// The slot of call `hash`, if the log holds it.
    fn event(&self, hash: &Digest) -> Option<usize> {
        let keys = &self.event_keys;
        self.events
            .find(event_hash(&self.hasher, hash), |&slot| {
                keys.get(slot) == Some(hash)
            })
            .copied()
    }

    /// The slot of COMM `record`, if the log holds it.
    fn comm(&self, record: &CommRecord) -> Option<usize> {
        let keys = &self.comm_keys;
        self.comms
            .find(record_hash(&self.hasher, record), |&slot| {
                keys.is(slot, record)
            })
            .copied()
    }

    /// The slot of call `hash`, numbering it if new: `(slot, new)`.
    fn add_event(&mut self, hash: Digest) -> (usize, bool) {
        let Self {
            hasher,
            events,
            event_keys: keys,
            ..
        } = self;
        let entry = events.entry(
            event_hash(hasher, &hash),
            |&slot| keys.get(slot) == Some(&hash),
            |&slot| event_hash(hasher, keys.get(slot).unwrap_or(&[0; 32])),
        );
        match entry {
            Entry::Occupied(e) => (*e.get(), false),
            Entry::Vacant(e) => {
                e.insert(keys.len());
                keys.push(hash);
                (keys.len() - 1, true)
            }
        }
    }

    /// The slot of COMM `record`, numbering it if new: `(slot, new)`.
    fn add_comm(&mut self, record: &CommRecord) -> (usize, bool) {
        let Self {
            hasher,
            comms,
            comm_keys: keys,
            ..
        } = self;
        let entry = comms.entry(
            record_hash(hasher, record),
            |&slot| keys.is(slot, record),
            |&slot| keys.hash(hasher, slot),
        );
        match entry {
            Entry::Occupied(e) => (*e.get(), false),
            Entry::Vacant(e) => {
                e.insert(keys.keys.len());
                (keys.push(record), true)
            }
        }
    }
}

/// Counts in a two-level copy-on-write array: a shared list of shared chunks. A clone is one
/// reference count; the first decrement after a clone copies the list of chunk pointers
/// (n / [`CHUNK`] of them) and the one chunk written; later decrements write in place. The
/// pointers are `triomphe`'s: checking that a chunk is unshared, on every decrement, is one
/// load rather than std's locked compare-and-swap.
#[derive(Clone, Debug, Default)]
struct Counts {
    chunks: triomphe::Arc<Vec<triomphe::Arc<[u32; CHUNK]>>>,
}

/// Counts per chunk of [`Counts`].
const CHUNK: usize = 256;

impl Counts {
    fn from_vec(v: &[u32]) -> Self {
        let chunks = v
            .chunks(CHUNK)
            .map(|c| {
                let mut chunk = [0u32; CHUNK];
                chunk[..c.len()].copy_from_slice(c);
                triomphe::Arc::new(chunk)
            })
            .collect();
        Counts {
            chunks: triomphe::Arc::new(chunks),
        }
    }

    fn get(&self, i: usize) -> u32 {
        self.chunks.get(i / CHUNK).map_or(0, |c| c[i % CHUNK])
    }

    /// Takes one from count `i`; false if it was 0 (or out of range).
    fn decrement(&mut self, i: usize) -> bool {
        if self.get(i) == 0 {
            return false;
        }
        let chunks = triomphe::Arc::make_mut(&mut self.chunks);
        match chunks.get_mut(i / CHUNK) {
            Some(c) => {
                triomphe::Arc::make_mut(c)[i % CHUNK] -= 1;
                true
            }
            None => false,
        }
    }
}

/// What a replay still expects: for each distinct call and COMM of the log, how many are left.
///
/// The counts live in copy-on-write chunked arrays beside an immutable index, so a snapshot (a
/// soft checkpoint during a replay) is O(1), and a strike is a hash lookup plus a write (the
/// first write after a snapshot copies one pointer per 256 counts and one chunk).
///
/// Invariants: `events.len()` and `comms.len()` are the sizes of the index's maps, and every
/// index value is below them; `events_left` and `comms_left` are the sums of the counts.
#[derive(Clone, Debug, Default)]
pub(crate) struct Expect {
    index: Arc<LogIndex>,
    events: Counts,
    comms: Counts,
    events_left: usize,
    comms_left: usize,
}

impl Expect {
    /// The expectations of `log` (its keys are copied into the index). Errors: a counter out
    /// of sequence.
    pub(crate) fn from_log(log: Cow<'_, [LogEvent]>) -> Result<Self, ReplayError> {
        let n_comms = log
            .iter()
            .filter(|e| matches!(e, LogEvent::Comm(_)))
            .count();
        let n_events = log.len() - n_comms;
        // Positions are `u32`s below `u32::MAX` (see `Order`): a longer log gets no cursors.
        let ordered = u32::try_from(log.len()).is_ok_and(|n| n < u32::MAX);
        let mut b = Builder {
            index: LogIndex {
                events: HashTable::with_capacity(n_events),
                event_keys: Vec::with_capacity(n_events),
                comms: HashTable::with_capacity(n_comms),
                comm_keys: CommKeys {
                    keys: Vec::with_capacity(n_comms),
                    // A consume hash and one produce hash each, as most COMMs have.
                    bytes: Vec::with_capacity(n_comms.saturating_mul(64)),
                },
                ..LogIndex::default()
            },
            events: Vec::with_capacity(n_events),
            comms: Vec::with_capacity(n_comms),
            ordered,
            event_order: Vec::with_capacity(if ordered { n_events } else { 0 }),
            comm_order: Vec::with_capacity(if ordered { n_comms } else { 0 }),
        };
        log.iter().try_for_each(|e| b.add(e))?;
        let Builder {
            mut index,
            events,
            comms,
            event_order,
            comm_order,
            ..
        } = b;
        index.event_order = Order::new(event_order, &events);
        index.comm_order = Order::new(comm_order, &comms);
        Ok(Expect {
            index: Arc::new(index),
            events_left: events.iter().map(|&n| n as usize).sum(),
            comms_left: comms.iter().map(|&n| n as usize).sum(),
            events: Counts::from_vec(&events),
            comms: Counts::from_vec(&comms),
        })
    }

    /// Whether the log still expects a call with this hash: its slot, for
    /// [`strike_event`](Self::strike_event).
    pub(crate) fn expects(&self, hash: &Digest) -> Option<usize> {
        let slot = self.index.event(hash)?;
        (self.events.get(slot) > 0).then_some(slot)
    }

    /// Whether `record` is an unused logged COMM: its slot, for
    /// [`strike_comm`](Self::strike_comm).
    pub(crate) fn holds(&self, record: &CommRecord) -> Option<usize> {
        let slot = self.index.comm(record)?;
        (self.comms.get(slot) > 0).then_some(slot)
    }

    /// [`expects`](Self::expects), trying first the slot at `cursor` (a stream's guess, see
    /// [`Cursor`]): the same answer whatever `cursor` holds. Moves `cursor` past the call's
    /// position in the log when the log still expects it.
    ///
    /// Time: O(1) with no table lookup when the cursor's slot is the call's; otherwise one
    /// lookup, as `expects`, and the resync.
    #[inline]
    pub(crate) fn expects_at(&self, cursor: &mut u32, hash: &Digest) -> Option<usize> {
        let order = &self.index.event_order;
        if let Some(slot) = order.slot_at(*cursor) {
            // The slot of this key, as the table would find it, if the keys are equal.
            if self.index.event_keys.get(slot) == Some(hash) && self.events.get(slot) > 0 {
                *cursor += 1;
                return Some(slot);
            }
        }
        missed();
        let slot = self.expects(hash)?;
        *cursor = order.after(slot, self.events.get(slot));
        Some(slot)
    }

    /// [`holds`](Self::holds), trying first the slot at `cursor`, as
    /// [`expects_at`](Self::expects_at) does for calls.
    #[inline]
    pub(crate) fn holds_at(&self, cursor: &mut u32, record: &CommRecord) -> Option<usize> {
        let order = &self.index.comm_order;
        if let Some(slot) = order.slot_at(*cursor) {
            // The slot of this record, as the table would find it, if the records are equal.
            if self.index.comm_keys.is(slot, record) && self.comms.get(slot) > 0 {
                *cursor += 1;
                return Some(slot);
            }
        }
        missed();
        let slot = self.holds(record)?;
        *cursor = order.after(slot, self.comms.get(slot));
        Some(slot)
    }

    /// Strikes one call from `slot` (which [`expects`](Self::expects) gave).
    pub(crate) fn strike_event(&mut self, slot: usize) {
        if self.events.decrement(slot) {
            self.events_left -= 1;
        }
    }

    /// Strikes one COMM from `slot` (which [`holds`](Self::holds) gave).
    pub(crate) fn strike_comm(&mut self, slot: usize) {
        if self.comms.decrement(slot) {
            self.comms_left -= 1;
        }
    }

    /// `Err(Unused)` while anything is left.
    pub(crate) fn finished(&self) -> Result<(), ReplayError> {
        if self.events_left == 0 && self.comms_left == 0 {
            Ok(())
        } else {
            Err(ReplayError::Unused {
                events: self.events_left,
                comms: self.comms_left,
            })
        }
    }
}

/// [`Expect::from_log`]'s state while it reads the log.
struct Builder {
    index: LogIndex,
    events: Vec<u32>,
    comms: Vec<u32>,
    /// Whether the log is short enough for cursors (`event_order` and `comm_order` are filled).
    ordered: bool,
    /// The slot of each call so far, in log order (when `ordered`).
    event_order: Vec<u32>,
    /// The slot of each COMM so far, in log order (when `ordered`).
    comm_order: Vec<u32>,
}

impl Builder {
    /// Counts one log event. Errors: a counter out of sequence.
    fn add(&mut self, ev: &LogEvent) -> Result<(), ReplayError> {
        match ev {
            LogEvent::Produce { hash, counter } | LogEvent::Consume { hash, counter } => {
                let (slot, new) = self.index.add_event(*hash);
                if new {
                    self.events.push(0);
                }
                let expected = self.events[slot];
                if *counter != expected {
                    return Err(ReplayError::BadCounter {
                        hash: *hash,
                        counter: *counter,
                        expected,
                    });
                }
                self.events[slot] = expected.saturating_add(1);
                if self.ordered {
                    // Below the log's length, which is below `u32::MAX`.
                    self.event_order.push(slot as u32);
                }
            }
            LogEvent::Comm(r) => {
                let (slot, new) = self.index.add_comm(r);
                if new {
                    self.comms.push(0);
                }
                self.comms[slot] = self.comms[slot].saturating_add(1);
                if self.ordered {
                    self.comm_order.push(slot as u32);
                }
            }
        }
        Ok(())
    }
}

/// The hash functions of a space's value types, captured where they are `Encode` (in
/// [`Space::rig`](crate::Space::rig)) so the call paths need no such bound.
pub(crate) struct Hashers<C, P, A, K> {
    pub(crate) produce: fn(&C, &A, bool, i64) -> Digest,
    pub(crate) consume: ConsumeHasher<C, P, K>,
}

/// [`consume_hash`](crate::consume_hash) for one space's types.
pub(crate) type ConsumeHasher<C, P, K> = fn(&[C], &[P], &K, bool, &[usize]) -> Digest;

impl<C, P, A, K> Clone for Hashers<C, P, A, K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<C, P, A, K> Copy for Hashers<C, P, A, K> {}

/// A rigged replay: what is expected, how to hash calls, and where each stream expects its
/// next call and COMM.
pub(crate) struct Rig<C, P, A, K> {
    pub(crate) expect: Expect,
    pub(crate) hash: Hashers<C, P, A, K>,
    /// Which rig this is: a soft checkpoint's expectations are restored only into the same one.
    pub(crate) generation: u64,
    /// One [`Cursor`] per stream (shard of the replaying space), all unset at rig time; empty
    /// when the rig looks everything up in the tables (a test reference). Hints only: neither
    /// snapshotted nor restored, and no result depends on them.
    pub(crate) cursors: Box<[Cursor]>,
}

impl<C, P, A, K> Rig<C, P, A, K> {
    /// A rig expecting `expect`, with `streams` unset cursors.
    pub(crate) fn new(
        expect: Expect,
        hash: Hashers<C, P, A, K>,
        generation: u64,
        streams: usize,
    ) -> Self {
        Self {
            expect,
            hash,
            generation,
            cursors: vec![Cursor::default(); streams].into(),
        }
    }

    /// [`Expect::expects`] for a call of `stream`, through that stream's cursor (if it has one).
    #[inline]
    pub(crate) fn expects(&mut self, stream: usize, hash: &Digest) -> Option<usize> {
        match self.cursors.get_mut(stream) {
            Some(c) => self.expect.expects_at(&mut c.event, hash),
            None => self.expect.expects(hash),
        }
    }

    /// Runs `search` with this rig as its guide: an assignment is accepted only if its COMM
    /// (the consume hashed by `consume`; data named through the channel list `list`, peeking
    /// at `peeks`) is an unused logged one, looked up through the cursor of `stream` (the call's
    /// stream, see [`Cursor`]). Returns what `search` returns and the accepted COMM record with
    /// its slot (`Some` exactly when an assignment was accepted).
    pub(crate) fn guided<R>(
        &mut self,
        stream: usize,
        consume: impl FnMut() -> Digest,
        list: &[C],
        peeks: &[usize],
        search: impl FnOnce(crate::join::Guide<'_, A>) -> R,
    ) -> (R, Option<(CommRecord, usize)>) {
        let mut recorder = Recorder::new(consume, list, peeks, self.hash.produce);
        let expect = &self.expect;
        let mut cursor = self.cursors.get_mut(stream).map(|c| &mut c.comm);
        let mut accept = |entries: &[(usize, &crate::data::StoredDatum<A>)]| {
            recorder.accept(expect, cursor.as_deref_mut(), entries)
        };
        let out = search(&mut accept);
        (out, recorder.accepted)
    }
}

/// The replay lock's contents. Lock order: after the shards, before the hard-checkpoint state.
pub(crate) struct ReplayState<C, P, A, K> {
    pub(crate) rig: Option<Rig<C, P, A, K>>,
    /// Rigs made so far (numbers [`Rig::generation`]).
    pub(crate) rigs: u64,
}

impl<C, P, A, K> Default for ReplayState<C, P, A, K> {
    fn default() -> Self {
        Self { rig: None, rigs: 0 }
    }
}

/// Builds COMM records for one continuation's candidate assignments, caching data hashes.
/// `consume` hashes the continuation; it runs at the first assignment met, if any, so a
/// continuation whose patterns reject the call costs no hashing.
pub(crate) struct Recorder<'r, C, A, F> {
    consume: F,
    consume_hash: Option<Digest>,
    list: &'r [C],
    peeks: &'r [usize],
    produce: fn(&C, &A, bool, i64) -> Digest,
    /// `(datum address, persist, hash)` of data hashed in this search.
    seen: SmallVec<[(*const A, bool, Digest); 8]>,
    /// The assignment [`accept`](Self::accept) took: its record and slot in the expectations.
    pub(crate) accepted: Option<(CommRecord, usize)>,
}

impl<'r, C, A, F: FnMut() -> Digest> Recorder<'r, C, A, F> {
    pub(crate) fn new(
        consume: F,
        list: &'r [C],
        peeks: &'r [usize],
        produce: fn(&C, &A, bool, i64) -> Digest,
    ) -> Self {
        Self {
            consume,
            consume_hash: None,
            accepted: None,
            list,
            peeks,
            produce,
            seen: SmallVec::new(),
        }
    }

    /// A replay's guide: accepts the assignment (given as `(position, datum)` in COMM order)
    /// when its COMM is an unused logged one, keeping it in [`accepted`](Self::accepted).
    /// Looks it up through `cursor` (the call's stream's COMM cursor), if any.
    pub(crate) fn accept(
        &mut self,
        expect: &Expect,
        cursor: Option<&mut u32>,
        entries: &[(usize, &crate::data::StoredDatum<A>)],
    ) -> bool {
        let r = self.record(entries);
        let slot = match cursor {
            Some(c) => expect.holds_at(c, &r),
            None => expect.holds(&r),
        };
        match slot {
            Some(slot) => {
                self.accepted = Some((r, slot));
                true
            }
            None => false,
        }
    }

    /// The COMM record of an assignment given as `(position, datum)` in COMM order.
    fn record(&mut self, entries: &[(usize, &crate::data::StoredDatum<A>)]) -> CommRecord {
        let mut produces = Vec::with_capacity(entries.len());
        for (pos, d) in entries {
            let at: *const A = &d.value;
            let known = self
                .seen
                .iter()
                .find(|(p, persist, _)| *p == at && *persist == d.persist)
                .map(|e| e.2);
            let h = match (known, self.list.get(*pos)) {
                (Some(h), _) => h,
                (None, Some(c)) => {
                    let h = (self.produce)(c, &d.value, d.persist, d.priority);
                    self.seen.push((at, d.persist, h));
                    h
                }
                // Positions come from the list itself; an impossible one names no COMM.
                (None, None) => [0; 32],
            };
            produces.push(h);
        }
        let consume = match self.consume_hash {
            Some(h) => h,
            None => {
                let h = (self.consume)();
                self.consume_hash = Some(h);
                h
            }
        };
        CommRecord {
            consume,
            produces,
            peeks: self.peeks.iter().map(|&p| p as u32).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Call `k` of a small universe: keys that differ only in their last byte.
    fn call_key(k: u8) -> Digest {
        let mut d = [9u8; 32];
        d[31] = k;
        d
    }

    /// COMM `k` of a small universe: records that differ in one produce, the number of
    /// produces, or the peeks (never in the consume alone), so a comparison must read them all.
    fn comm_key(k: u8) -> CommRecord {
        CommRecord {
            consume: call_key(0),
            produces: (0..=k % 3).map(|i| call_key(i + k / 3)).collect(),
            peeks: if k.is_multiple_of(2) {
                vec![]
            } else {
                vec![u32::from(k)]
            },
        }
    }

    /// A well-formed log of `events`: `(is_comm, key)` in order, counters numbered per hash.
    fn log_of(events: &[(bool, u8)]) -> Vec<LogEvent> {
        let mut seen = std::collections::HashMap::new();
        events
            .iter()
            .map(|&(comm, k)| {
                if comm {
                    LogEvent::Comm(comm_key(k))
                } else {
                    let n = seen.entry(k).or_insert(0u32);
                    *n += 1;
                    LogEvent::Produce {
                        hash: call_key(k),
                        counter: *n - 1,
                    }
                }
            })
            .collect()
    }

    #[derive(Clone, Debug)]
    enum Step {
        /// Look call `key` up through cursor `cursor` and strike it if expected.
        Call { key: u8, cursor: usize },
        /// Look COMM `key` up through cursor `cursor` and strike it if held.
        Comm { key: u8, cursor: usize },
        /// Set a cursor to any position (in range or not): a stale or wrong hint.
        Aim {
            cursor: usize,
            event: u32,
            comm: u32,
        },
        /// Snapshot the expectations (a soft checkpoint).
        Save,
        /// Restore a snapshot (a revert); the cursors stay as they are.
        Restore(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        let pos = prop_oneof![0u32..24, Just(UNSET), any::<u32>()];
        prop_oneof![
            6 => (0u8..8, 0usize..3).prop_map(|(key, cursor)| Step::Call { key, cursor }),
            4 => (0u8..8, 0usize..3).prop_map(|(key, cursor)| Step::Comm { key, cursor }),
            2 => (0usize..3, pos.clone(), pos).prop_map(|(cursor, event, comm)| Step::Aim {
                cursor,
                event,
                comm
            }),
            1 => Just(Step::Save),
            1 => any::<usize>().prop_map(Step::Restore),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever the cursors hold (unset, right, stale after a restore, aimed anywhere), a
        /// lookup through one gives exactly the table's answer, and striking it leaves the same
        /// expectations. Keys collide in all but their last bytes, so a lookup that took the
        /// cursor's slot without comparing whole keys, or without checking its count, fails.
        #[test]
        fn cursors_answer_as_the_tables(
            events in prop::collection::vec((prop::bool::weighted(0.4), 0u8..6), 0..24),
            steps in prop::collection::vec(step(), 0..80),
        ) {
            let log = log_of(&events);
            let mut hinted = Expect::from_log(Cow::Borrowed(&log)).unwrap();
            let mut table = hinted.clone();
            let mut cursors = [Cursor::default(); 3];
            let mut saved = Vec::new();
            for s in &steps {
                match *s {
                    Step::Call { key, cursor } => {
                        let got = hinted.expects_at(&mut cursors[cursor].event, &call_key(key));
                        let want = table.expects(&call_key(key));
                        prop_assert_eq!(got, want, "call {} at {:?}", key, s);
                        if let Some(slot) = got {
                            hinted.strike_event(slot);
                            table.strike_event(slot);
                        }
                    }
                    Step::Comm { key, cursor } => {
                        let got = hinted.holds_at(&mut cursors[cursor].comm, &comm_key(key));
                        let want = table.holds(&comm_key(key));
                        prop_assert_eq!(got, want, "COMM {} at {:?}", key, s);
                        if let Some(slot) = got {
                            hinted.strike_comm(slot);
                            table.strike_comm(slot);
                        }
                    }
                    Step::Aim { cursor, event, comm } => cursors[cursor] = Cursor { event, comm },
                    Step::Save => saved.push((hinted.clone(), table.clone())),
                    Step::Restore(i) => {
                        if !saved.is_empty() {
                            let (h, t) = &saved[i % saved.len()];
                            hinted = h.clone();
                            table = t.clone();
                        }
                    }
                }
                prop_assert_eq!(hinted.finished(), table.finished());
            }
        }
    }

    /// A replay in log order, one cursor per run of the log: after its first lookup each
    /// cursor answers every later one (and the answers are the table's).
    #[test]
    fn cursors_follow_the_log() {
        // Two "shards": keys 0..3 logged first, then keys 3..6; repeats within each.
        let events: Vec<(bool, u8)> = [0, 1, 0, 2, 1, 0, 3, 4, 3, 5, 5]
            .iter()
            .map(|&k| (false, k))
            .collect();
        let log = log_of(&events);
        let mut e = Expect::from_log(Cow::Owned(log)).unwrap();
        let (mut first, mut second) = (UNSET, UNSET);
        // The calls of the two runs, interleaved as two shards' calls would be.
        let calls = [
            (0, 0),
            (1, 3),
            (0, 1),
            (1, 4),
            (0, 0),
            (1, 3),
            (0, 2),
            (1, 5),
        ];
        let calls = calls.iter().chain(&[(0, 1), (1, 5), (0, 0)]);
        let mut hinted = 0;
        for &(run, key) in calls {
            let cursor = if run == 0 { &mut first } else { &mut second };
            let before = *cursor;
            let want = e.expects(&call_key(key));
            let got = e.expects_at(cursor, &call_key(key));
            assert_eq!(got, want, "key {key}");
            let slot = got.expect("logged");
            if e.index.event_order.slot_at(before) == Some(slot) {
                hinted += 1;
            }
            e.strike_event(slot);
        }
        assert_eq!(hinted, 11 - 2, "all but each run's first lookup");
        assert_eq!(e.finished(), Ok(()));
    }

    /// The positions index: occurrences by slot in log order, the resync target for each
    /// occurrence, and no cursors at all for inputs the builder never makes.
    #[test]
    fn order_positions_and_resync() {
        let o = Order::new(vec![0, 1, 0, 2, 0, 1], &[3, 2, 1]);
        assert_eq!(o.starts, vec![0, 3, 5, 6]);
        assert_eq!(o.positions, vec![0, 2, 4, 1, 5, 3]);
        // Slot 0 with 3, 2, 1 occurrences left: its occurrences 0, 1, 2, at positions 0, 2, 4.
        assert_eq!([3, 2, 1].map(|left| o.after(0, left)), [1, 3, 5]);
        assert_eq!(
            o.after(1, 1),
            6,
            "the last position: the cursor runs off the end"
        );
        assert_eq!(o.slot_at(6), None);
        assert_eq!(o.after(0, 0), UNSET, "nothing left");
        assert_eq!(o.after(0, 4), UNSET, "more left than logged");
        assert_eq!(o.after(3, 1), UNSET, "no such slot");
        // Counts that disagree with the order, or slots out of range: no cursors, no panic.
        for (order, counts) in [
            (vec![0, 1], vec![1, 2]),
            (vec![0, 1], vec![1]),
            (vec![0, 5], vec![1, 1]),
            (vec![0, 0], vec![3]),
        ] {
            let o = Order::new(order, &counts);
            assert!(o.order.is_empty() && o.starts.is_empty() && o.positions.is_empty());
            assert_eq!(o.slot_at(0), None);
            assert_eq!(o.after(0, 1), UNSET);
        }
    }

    #[test]
    fn counts_are_copy_on_write() {
        let v: Vec<u32> = (0..600).map(|i| i % 3).collect();
        let mut a = Counts::from_vec(&v);
        let snapshot = a.clone();
        assert!(a.decrement(1));
        assert!(!a.decrement(0), "a zero count stays zero");
        assert!(!a.decrement(10_000), "out of range is refused");
        assert!(a.decrement(599));
        assert_eq!((a.get(1), a.get(599)), (0, 1));
        // The snapshot still sees the old counts, in both chunks touched.
        assert_eq!((snapshot.get(1), snapshot.get(599)), (1, 2));
        assert_eq!(snapshot.get(10_000), 0);
    }

    /// Keys that differ only in their last byte (or only in a COMM's produce list or peeks)
    /// are different calls and COMMs: the index compares whole keys, whatever it hashes.
    #[test]
    fn keys_differing_late_are_told_apart() {
        let late = |b: u8| {
            let mut d = [7u8; 32];
            d[31] = b;
            d
        };
        let rec = |p: u8, peeks: Vec<u32>| CommRecord {
            consume: late(0),
            produces: vec![late(1), late(p)],
            peeks,
        };
        let mut log: Vec<LogEvent> = (0..40)
            .map(|b| LogEvent::Produce {
                hash: late(b),
                counter: 0,
            })
            .collect();
        // The same call twice is one slot counted twice.
        log.push(LogEvent::Consume {
            hash: late(3),
            counter: 1,
        });
        let comms = [
            rec(2, vec![]),
            rec(3, vec![]),
            rec(2, vec![0]),
            rec(2, vec![1]),
        ];
        log.extend(comms.iter().cloned().map(LogEvent::Comm));
        log.push(LogEvent::Comm(rec(3, vec![])));
        let mut e = Expect::from_log(Cow::Owned(log)).unwrap();
        assert_eq!(
            e.finished(),
            Err(ReplayError::Unused {
                events: 41,
                comms: 5
            })
        );
        assert!(e.expects(&late(40)).is_none());
        let mut slots: Vec<usize> = (0..40).map(|b| e.expects(&late(b)).unwrap()).collect();
        slots.sort_unstable();
        slots.dedup();
        assert_eq!(slots.len(), 40, "forty distinct calls");
        let three = e.expects(&late(3)).unwrap();
        e.strike_event(three);
        assert_eq!(e.expects(&late(3)), Some(three), "logged twice");
        e.strike_event(three);
        assert!(e.expects(&late(3)).is_none());
        let mut comm_slots: Vec<usize> = comms.iter().map(|r| e.holds(r).unwrap()).collect();
        comm_slots.dedup();
        assert_eq!(comm_slots.len(), 4, "four distinct COMMs");
        assert!(e.holds(&rec(4, vec![])).is_none());
        assert!(e.holds(&rec(2, vec![0, 1])).is_none());
        let twice = e.holds(&rec(3, vec![])).unwrap();
        e.strike_comm(twice);
        assert_eq!(e.holds(&rec(3, vec![])), Some(twice), "fired twice");
        e.strike_comm(twice);
        assert!(e.holds(&rec(3, vec![])).is_none());
        assert!(e.holds(&rec(2, vec![1])).is_some());
    }

    /// A record's stored form hashes as the record does (so a table that grows finds its
    /// slots again) and equals exactly the record it was made from.
    #[test]
    fn stored_records_hash_and_compare_as_records() {
        let hasher = foldhash::fast::RandomState::default();
        let d = |b: u8| [b; 32];
        let records: Vec<CommRecord> = (0..4usize)
            .flat_map(|n| {
                [vec![], vec![0], vec![1, 7]].map(|peeks| CommRecord {
                    consume: d(1),
                    produces: (0..n).map(|i| d(2 + i as u8)).collect(),
                    peeks,
                })
            })
            .collect();
        let mut keys = CommKeys::default();
        for (slot, r) in records.iter().enumerate() {
            assert_eq!(keys.push(r), slot);
        }
        for (slot, r) in records.iter().enumerate() {
            assert_eq!(keys.hash(&hasher, slot), record_hash(&hasher, r), "{r:?}");
            for (other, o) in records.iter().enumerate() {
                assert_eq!(keys.is(slot, o), slot == other, "{r:?} / {o:?}");
            }
        }
        assert!(keys.get(records.len()).is_none());
        assert!(!keys.is(records.len(), &records[0]));
    }

    #[test]
    fn expectations_strike_and_finish() {
        let rec = CommRecord {
            consume: [1; 32],
            produces: vec![[2; 32]],
            peeks: vec![],
        };
        let log = vec![
            LogEvent::Produce {
                hash: [2; 32],
                counter: 0,
            },
            LogEvent::Consume {
                hash: [1; 32],
                counter: 0,
            },
            LogEvent::Comm(rec.clone()),
        ];
        let mut e = Expect::from_log(Cow::Owned(log)).unwrap();
        let saved = e.clone();
        assert_eq!(
            e.finished(),
            Err(ReplayError::Unused {
                events: 2,
                comms: 1
            })
        );
        let p = e.expects(&[2; 32]).unwrap();
        e.strike_event(p);
        assert!(e.expects(&[2; 32]).is_none());
        let c = e.expects(&[1; 32]).unwrap();
        e.strike_event(c);
        let slot = e.holds(&rec).unwrap();
        e.strike_comm(slot);
        assert!(e.holds(&rec).is_none());
        assert_eq!(e.finished(), Ok(()));
        // The clone taken before is untouched (a soft checkpoint's copy).
        assert!(saved.holds(&rec).is_some());
        assert!(saved.finished().is_err());
    }
}
