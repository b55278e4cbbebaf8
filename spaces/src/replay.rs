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
//! [`Space::create_checkpoint`]: crate::Space::create_checkpoint

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

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

/// The distinct calls and COMMs of a rigged log, numbered in order of first appearance.
/// Built once by [`Expect::from_log`] and never changed (shared by every snapshot); only
/// looked up, never iterated.
#[derive(Debug, Default)]
struct LogIndex {
    events: HashMap<Key, usize, foldhash::fast::RandomState>,
    /// By the COMM's consume hash: each distinct record with that consume, and its slot.
    comms: HashMap<Key, SmallVec<[(CommRecord, usize); 1]>, foldhash::fast::RandomState>,
}

/// A digest as a map key. It hashes only its first 8 bytes (through the map's randomly seeded
/// hasher, so a hostile log cannot aim collisions): digests are uniform, so those bytes tell
/// keys apart as well as all 32, at a quarter of the hashing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key(Digest);

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(prefix));
    }
}

/// Counts in a two-level copy-on-write array: a shared list of shared chunks. A clone is one
/// reference count; the first decrement after a clone copies the list of chunk pointers
/// (n / [`CHUNK`] of them) and the one chunk written; later decrements write in place.
#[derive(Clone, Debug, Default)]
struct Counts {
    chunks: Arc<Vec<Arc<[u32; CHUNK]>>>,
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
                Arc::new(chunk)
            })
            .collect();
        Counts {
            chunks: Arc::new(chunks),
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
        let chunks = Arc::make_mut(&mut self.chunks);
        match chunks.get_mut(i / CHUNK) {
            Some(c) => {
                Arc::make_mut(c)[i % CHUNK] -= 1;
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
    /// The expectations of `log` (its COMM records move into the index). Errors: a counter out
    /// of sequence.
    pub(crate) fn from_log(log: Cow<'_, [LogEvent]>) -> Result<Self, ReplayError> {
        let n_comms = log
            .iter()
            .filter(|e| matches!(e, LogEvent::Comm(_)))
            .count();
        let n_events = log.len() - n_comms;
        let mut b = Builder {
            index: LogIndex {
                events: HashMap::with_capacity_and_hasher(n_events, Default::default()),
                comms: HashMap::with_capacity_and_hasher(n_comms, Default::default()),
            },
            events: Vec::with_capacity(n_events),
            comms: Vec::with_capacity(n_comms),
        };
        match log {
            // An owned log's COMM records move into the index; a borrowed one's are copied.
            Cow::Owned(v) => v.into_iter().try_for_each(|e| b.add(e))?,
            Cow::Borrowed(v) => v.iter().try_for_each(|e| b.add(e.clone()))?,
        }
        let Builder {
            index,
            events,
            comms,
        } = b;
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
        let slot = *self.index.events.get(&Key(*hash))?;
        (self.events.get(slot) > 0).then_some(slot)
    }

    /// Whether `record` is an unused logged COMM: its slot, for
    /// [`strike_comm`](Self::strike_comm).
    pub(crate) fn holds(&self, record: &CommRecord) -> Option<usize> {
        let same = self.index.comms.get(&Key(record.consume))?;
        let slot = same.iter().find(|(x, _)| x == record)?.1;
        (self.comms.get(slot) > 0).then_some(slot)
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
}

impl Builder {
    /// Counts one log event. Errors: a counter out of sequence.
    fn add(&mut self, ev: LogEvent) -> Result<(), ReplayError> {
        match ev {
            LogEvent::Produce { hash, counter } | LogEvent::Consume { hash, counter } => {
                let next = self.events.len();
                let slot = *self.index.events.entry(Key(hash)).or_insert(next);
                if slot == next {
                    self.events.push(0);
                }
                let expected = self.events[slot];
                if counter != expected {
                    return Err(ReplayError::BadCounter {
                        hash,
                        counter,
                        expected,
                    });
                }
                self.events[slot] = expected.saturating_add(1);
            }
            LogEvent::Comm(r) => {
                let next = self.comms.len();
                let same = self.index.comms.entry(Key(r.consume)).or_default();
                let slot = match same.iter().find(|(x, _)| *x == r) {
                    Some(&(_, slot)) => slot,
                    None => {
                        same.push((r, next));
                        self.comms.push(0);
                        next
                    }
                };
                self.comms[slot] = self.comms[slot].saturating_add(1);
            }
        }
        Ok(())
    }
}

/// The hash functions of a space's value types, captured where they are `Encode` (in
/// [`Space::rig`](crate::Space::rig)) so the call paths need no such bound.
pub(crate) struct Hashers<C, P, A, K> {
    pub(crate) produce: fn(&C, &A, bool) -> Digest,
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

/// A rigged replay: what is expected, and how to hash calls.
pub(crate) struct Rig<C, P, A, K> {
    pub(crate) expect: Expect,
    pub(crate) hash: Hashers<C, P, A, K>,
    /// Which rig this is: a soft checkpoint's expectations are restored only into the same one.
    pub(crate) generation: u64,
}

impl<C, P, A, K> Rig<C, P, A, K> {
    /// Runs `search` with this rig as its guide: an assignment is accepted only if its COMM
    /// (the consume hashed by `consume`; data named through the channel list `list`, peeking
    /// at `peeks`) is an unused logged one. Returns what `search` returns and the accepted
    /// COMM record with its slot (`Some` exactly when an assignment was accepted).
    pub(crate) fn guided<R>(
        &self,
        consume: impl FnMut() -> Digest,
        list: &[C],
        peeks: &[usize],
        search: impl FnOnce(crate::join::Guide<'_, A>) -> R,
    ) -> (R, Option<(CommRecord, usize)>) {
        let mut recorder = Recorder::new(consume, list, peeks, self.hash.produce);
        let mut accept = |entries: &[(usize, &crate::data::StoredDatum<A>)]| {
            recorder.accept(&self.expect, entries)
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
    produce: fn(&C, &A, bool) -> Digest,
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
        produce: fn(&C, &A, bool) -> Digest,
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
    pub(crate) fn accept(
        &mut self,
        expect: &Expect,
        entries: &[(usize, &crate::data::StoredDatum<A>)],
    ) -> bool {
        let r = self.record(entries);
        match expect.holds(&r) {
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
                    let h = (self.produce)(c, &d.value, d.persist);
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
