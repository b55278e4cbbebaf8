//! The rhospace tuple space: produce, consume and joins over pluggable matchers, seven
//! collection kinds (VectorDB included), O(1) soft checkpoints, hard checkpoints with a
//! deterministic Merkle state root, history in memory or on disk (redb), an event log, and
//! replay of a log.
//!
//! Processes `produce` data on channels and `consume` it with patterns, joining several
//! channels at once; when a consume's patterns are all met the space fires one COMM: the
//! continuation together with the data that satisfied it. The behaviour contract is the
//! project's SPEC: §1–§7 and §9 here; §8's metering through [`ChargingSpace`], which wraps a
//! space.
//!
//! ```
//! use rhospace_spaces::{Space, SpaceConfig};
//! use rhospace_matchers::ExactMatch;
//!
//! let space: Space<&str, u32, u32, &str, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
//! // A join waits on two channels at once.
//! assert!(space.consume(["left", "right"], [1, 2], "pair", false, &[]).unwrap().is_none());
//! assert!(space.produce("left", 1, false).unwrap().is_none());
//! let comm = space.produce("right", 2, false).unwrap().expect("the join fires");
//! assert_eq!(comm.continuation, "pair");
//! assert!(space.is_empty());
//! ```
//!
//! # Guarantees
//! - **At most one COMM per call**, and after every call no COMM is possible among stored
//!   items (but see *Limits*). Joins are matched completely: if any assignment of data meets
//!   the patterns, one is found (a depth-first search, not greedy first-fit).
//! - **Determinism**: candidates are tried oldest first (data and continuations), join groups in
//!   creation order (a hard checkpoint canonicalises Bags and Sets: see *Limits*), installed
//!   continuations first; the first assignment in that order wins.
//!   Hash maps are only looked up, never iterated into a result. An opt-in seeded shuffle
//!   ([`CandidateOrder::Shuffled`], through [`SpaceConfig::candidate_order`]) tries Bag and Set
//!   data, Bag and Set continuations and a channel's join groups by a rank keyed on the seed
//!   and each candidate's canonical encoding instead: fair, and the same on every machine,
//!   shard count and insertion order.
//! - **Errors change nothing** and hand the caller's value back.
//! - **Soft checkpoints** are O(1): the state lives in persistent maps (`imbl`) with structural
//!   sharing, each channel's and join group's state behind its own pointer, and a write to an
//!   unshared node mutates it in place (`triomphe` pointers: checking that a node is unshared
//!   is one load, not a locked compare-and-swap). The dirty lists are append-only trails of
//!   shared chunks; small stores (≤ 32 items) are flat vectors, larger ones deques of shared
//!   chunks.
//! - **The event log** records each call as the canonical [`Encode`]ings its hash covers,
//!   appended to shared byte chunks (so the operations that change the space ask `Encode` of
//!   the value types); it keeps no clone of a value, and hashes at the hard checkpoint.
//! - `Space` is `Send + Sync` and sharded by channel: an operation locks the shards of the
//!   channels it touches, in ascending shard order (no deadlock), and runs entirely under them,
//!   so operations are linearizable and operations on different shards run in parallel. The
//!   shard routing never reaches a result: any shard count gives the same COMMs and state
//!   (the hard checkpoint's event log lists each shard's events in turn, so only its order,
//!   not its contents, depends on the shard count).
//! - **Parallel matching**: a join position with at least [`PARALLEL_MIN_CANDIDATES`]
//!   candidates to scan is pre-checked on rayon's threads; the pick is still the first in
//!   candidate order, on any thread count.
//! - **Replay** ([`Space::rig`]): every call is checked against a log, the log decides which
//!   COMM fires among matching candidates, and divergence is a typed [`ReplayError`].
//!
//! # Costs
//!
//! | operation | time |
//! |---|---|
//! | `produce`, no waiting continuation on the channel | O(log n) in channels, in place |
//! | `produce` meeting waiting continuations | per continuation examined: the matcher on the datum's positions; a join search only where it fits |
//! | `produce`, in a join group of the channel alone (`[c]`) holding 16 or more Bag or Set continuations that all have exact patterns ([`Match::exact_key`](rhospace_matchers::Match::exact_key)) | O(log n) to find those waiting for the datum's value; only they are offered, until one fires (see the `conts` module) |
//! | `consume` that waits in a Bag or Set join group of 16 or more, or a COMM that takes a continuation from one | plus an `exact_key`, a hash and O(log n) for the group's key index |
//! | `consume`, exact pattern, indexed channel (Bag ≥ 16 items, Set) | O(1) expected per position |
//! | `consume` on one Bag channel, exact pattern equal to its oldest datum | O(1): the scan's first step answers; no index is built for it (a Set of 16 or more is always indexed) |
//! | `consume`, other patterns | O(candidates) per position; backtracking across positions. A join that cannot fire stops at the first position shown to accept no datum of its channel, or failing with no channel in common with the positions before it, or on a channel with fewer data than its positions need, or (once it has done that much work) on a channel whose positions cannot all be given distinct data they accept; failed visits are remembered (up to 65,536) by the items the earlier positions hold. The worst case is still exponential in the number of positions that share a channel (see the `join` module); a [`ChargingSpace`] stops the search once its work costs more than the meter holds |
//! | any walk of a Bag or Set channel's candidates (or of a Bag or Set continuation store) with [`CandidateOrder::Shuffled`] | O(n) keyed hashes of the `n` candidates the walk would see (the index's equal items for an indexed exact pattern), plus O(log n) per candidate offered: O(n) for a walk that stops at its first candidate, O(n log n) for a full one; paid again on every visit of a join position while backtracking. A produce also ranks its channel's join groups: O(g log g) |
//! | `consume` that stores a persistent continuation, or `install` (a space that logs events) | plus one encoding of its call, kept with it; every COMM it fires copies those bytes into the log (and a replay hashes them) instead of encoding its patterns and continuation again |
//! | `consume` that waits, Set continuations | plus the duplicate check: O(n) `Eq` below 16 waiting on its channel list, one encoding and hash of the continuation and O(1) expected `Eq` from 16 on (an index of fingerprints; see `ContKind::Set`) |
//! | `consume` on one channel (no similarity pattern; in play and in replay) | as above for its one position, without the join search's set-up: the channel's candidates are walked directly and the pick taken in place |
//! | `create_soft_checkpoint`, `revert_to_soft_checkpoint` | O(shards): one pointer per shard, independent of channels and items; a revert to another space's checkpoint first checks its stores' kinds, O(channels + join groups) |
//! | first write to a channel or join group after a soft checkpoint | O(1) more: its entry's state is copied (at most 32 item clones for a small store); O(log n) more for a join group's key index |
//! | `data(c)`, `continuations(cs)`, `joins(c)` | O(items returned) |
//! | `create_checkpoint` (hard) | O(entries changed since the last one × their size + changed trie paths), all shards paused; once after a revert to another space's soft checkpoint or a `with_history` switch, also O(channels + join groups + what the store lacks) |
//! | `reset(root)` | O(shards) for one of the last [`SNAPSHOT_CACHE`] roots this space recorded or loaded (by when it last did); O(state size) to load any other from the history store |
//! | `produce_batch`, `consume_batch` | as the single calls in input order; one lock acquisition per run of consecutive items the held locks cover |
//! | `rig(root, log)` | a `reset`, plus O(log length) to index the log |
//! | a call while rigged | its play cost, plus hashing the call and, per assignment met, its COMM record |
//!
//! Persistent maps cost more per lookup than `std`'s `HashMap` (a HAMT walk against one probe);
//! that is the price of O(1) checkpoints, measured in the `produce_consume_cycle` benchmark.
//!
//! # Limits
//! - **Head-only kinds can leave a possible COMM stored.** On a head-only data kind (Queue,
//!   Stack, PriorityQueue) a COMM that takes the head exposes the next datum; on a head-only
//!   continuation kind ([`ContKind::Queue`], [`ContKind::Stack`]) a firing exposes the next
//!   waiting continuation. The exposed item may match one stored before it was exposed. A call
//!   fires at most one COMM, so that pair does not fire in the call that exposed it, and no
//!   later call fires it on that account alone: a produce offers only its own datum (on a
//!   non-empty head-only data channel, not the head) and a consume only its own continuation.
//!   The waiting continuation fires when a later produce offers it a datum it accepts (on a
//!   head-only data channel that means one produced while the channel is empty, or, for a
//!   join, a produce on another of its channels with this channel's head); the datum waits
//!   for a consume or a produce-fired continuation that takes it. So SPEC §1's invariant
//!   holds only with Bag, Set or Cell data and Bag or Set continuations.
//! - **A hard checkpoint puts changed Bags and Sets into canonical order.** `create_checkpoint`
//!   sorts each changed Bag or Set (data or waiting continuations), and each changed channel's
//!   list of join groups, by canonical encoding: so a space that goes on after a checkpoint and
//!   one that `reset`s to its root (in memory or from disk, in another process) hold the same
//!   state and make the same choices from then on. "Oldest first" and "creation order" (SPEC
//!   §3) hold between hard checkpoints; across one, the canonical items come first, in that
//!   order, then the newer ones oldest first. Queue, Stack, Cell and PriorityQueue keep their
//!   order.
//! - Joins have at most [`MAX_JOIN`] channels.
#![deny(unsafe_code)]

mod admission;
mod budget;
mod call_list;
mod charging;
mod chunks;
mod comm;
mod conts;
mod data;
mod decode;
mod encode;
mod error;
mod hall;
mod history;
mod join;
mod join_list;
mod kind;
mod log;
pub mod merkle;
mod order;
mod parallel;
// Under loom only its models use it (the space keeps loom's mutex).
#[cfg_attr(loom, allow(dead_code))]
mod raw_lock;
mod replay;
mod seq;
mod shard;
mod space;
mod state_map;
mod sync;
mod tape;
mod trail;
mod vector;

pub use admission::{Admission, OpKind, VectorWork};
pub use call_list::CallList;
pub use charging::ChargingSpace;
pub use comm::{Comm, MatchedDatum};
pub use conts::{Peeks, WaitingContinuation};
pub use data::StoredDatum;
pub use decode::{decode_exact, decode_varint, Decode, DecodeError};
pub use encode::{encode_varint, varint_len, Encode};
pub use error::{ConsumeError, ErrorKind, ProduceError, RevertError};
pub use history::{HistoryError, HistoryStore, MemoryHistory, RedbHistory};
pub use kind::{ContKind, DataKind, SpaceConfig};
pub use log::{consume_hash, produce_hash, produce_hash_with_priority, CommRecord, LogEvent};
pub use order::CandidateOrder;
pub use parallel::{first_match, first_match_from, MAX_SCAN_THREADS, PARALLEL_MIN_CANDIDATES};
pub use replay::ReplayError;
pub use shard::{DEFAULT_SHARDS, MAX_SHARDS};
pub use space::batch::{ConsumeOutcome, ConsumeRequest, ProduceOutcome};
pub use space::hard::{Checkpoint, CheckpointError, SNAPSHOT_CACHE};
pub use space::{SoftCheckpoint, Space, MAX_JOIN};

/// The persistent hash map used for state: `imbl`'s HAMT with a fast hasher. Its iteration
/// order is never used for a result.
pub(crate) type PMap<K, V> =
    imbl::GenericHashMap<K, V, foldhash::fast::RandomState, imbl::shared_ptr::DefaultSharedPtr>;

/// Helpers shared by the unit tests.
#[cfg(test)]
mod test_rng {
    /// splitmix64: the next number of a seeded sequence, for the unit tests' seeded call
    /// sequences.
    pub(crate) fn mix(x: &mut u64) -> u64 {
        *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
