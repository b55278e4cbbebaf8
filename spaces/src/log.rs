//! The event log (SPEC §7): what the operations record, and its hashed, stable form.
//!
//! Operations append [`Event`]s (cloned values, cheap to record, nothing hashed on the hot
//! path) to their shard's log, inside the persistent state, so soft checkpoints capture the log
//! too. A hard checkpoint turns the merged log (shards in ascending order, each in its own
//! order) into [`LogEvent`]s: stable BLAKE3 hashes over canonical encodings, with a per-hash
//! counter that tells identical events apart.
//!
//! # Hashes
//! - produce: `hash_ordered(["rhospace/produce", channel, datum, persist])`;
//! - consume: `hash_ordered(["rhospace/consume", channels, patterns, continuation, persist,
//!   peeks])`;
//! - a COMM names its consume's hash, the produce hash of the datum at each position (channel,
//!   datum, persist flag: what a produce of that datum hashed to), and the peeking positions.
//!
//! Each part is the value's canonical [`Encode`]ing, so equal values give equal hashes on every
//! machine.

use std::collections::HashMap;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::conts::Peeks;
use crate::decode::{decode_varint, Decode, DecodeError};
use crate::encode::{encode_varint, Encode};
use crate::merkle::{hash_ordered, Digest};
use crate::trail::Trail;

/// One recorded operation, before hashing. Invariant: a `Comm` follows the `Produce` or
/// `Consume` that fired it in the same shard log.
///
/// A consume's parts are not here but in the log's call list ([`Log`]), a replayed COMM's
/// record is in a box, so an event is small: 48 bytes for `u64` channels and data, whatever
/// the continuation type, against 144 with every part inline. A log is written to fresh
/// memory, and on a produce-heavy block its page faults were a third of the cost of a produce.
#[derive(Clone, Debug)]
pub(crate) enum Event<C, A> {
    /// A produce call that was accepted (stored, fired, or ignored by a Set).
    Produce { channel: C, datum: A, persist: bool },
    /// A consume call that was accepted (stored or fired); its parts are the log's next call.
    Consume,
    /// A firing: see [`CommEvent`].
    Comm(CommEvent<A>),
    /// A produce a replay has hashed already (its [`produce_hash`]).
    HashedProduce(Digest),
    /// A consume a replay has hashed already (its [`consume_hash`]).
    HashedConsume(Digest),
    /// A COMM a replay has recorded already.
    HashedComm(Box<CommRecord>),
}

/// A consume call's parts as the log keeps them: one per `Consume` event, and one per COMM
/// of a continuation that waited (a COMM a consume fires at once names that consume's).
#[derive(Clone, Debug)]
pub(crate) struct ConsumeCall<C, P, K> {
    pub(crate) channels: Arc<[C]>,
    pub(crate) patterns: Arc<[P]>,
    pub(crate) continuation: K,
    pub(crate) persist: bool,
    pub(crate) peeks: Peeks,
}

/// A firing as the log keeps it: which consume call's continuation fired, and each datum in
/// COMM order with its position and persist flag (a top-k position has several).
#[derive(Clone, Debug)]
pub(crate) struct CommEvent<A> {
    /// The call is the log's next one (a continuation that waited); otherwise it is the call
    /// of the `Consume` just before this event (a consume that fired at once).
    pub(crate) fresh: bool,
    pub(crate) data: SmallVec<[(usize, A, bool); 1]>,
}

/// One shard's event log: its events in order, and the consume calls they name, in order.
///
/// The calls sit in their own persistent list rather than behind a pointer per call: a
/// consume's log entry costs no allocation of its own (in a benchmark that keeps every log
/// entry, each such allocation missed the allocator's cache: ~185 instructions), and an
/// event stays small whatever the continuation type. Cloning is O(1) (two [`Trail`]s).
///
/// Invariant: `calls` holds, in order, exactly one call for each `Event::Consume` and each
/// `Event::Comm` with `fresh` in `events`; a `Comm` without `fresh` comes right after an
/// `Event::Consume` and names its call.
#[derive(Clone, Debug)]
pub(crate) struct Log<C, P, A, K> {
    events: Trail<Event<C, A>>,
    calls: Trail<ConsumeCall<C, P, K>>,
}

impl<C, P, A, K> Default for Log<C, P, A, K> {
    fn default() -> Self {
        Self {
            events: Trail::default(),
            calls: Trail::default(),
        }
    }
}

impl<C, P, A, K> Log<C, P, A, K> {
    /// The number of events.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether no event is logged.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Appends an event that names no call: a produce, or a hashed event of a replay.
    #[inline]
    pub(crate) fn push(&mut self, event: Event<C, A>) {
        debug_assert!(matches!(
            event,
            Event::Produce { .. }
                | Event::HashedProduce(_)
                | Event::HashedConsume(_)
                | Event::HashedComm(_)
        ));
        self.events.push(event);
    }

    /// Appends a consume call.
    #[inline]
    pub(crate) fn push_consume(&mut self, call: ConsumeCall<C, P, K>) {
        self.calls.push(call);
        self.events.push(Event::Consume);
    }

    /// Whether the last event is a `Consume` (so a COMM may name its call).
    #[inline]
    pub(crate) fn ends_with_consume(&self) -> bool {
        matches!(self.events.last(), Some(Event::Consume))
    }

    /// Appends a COMM: of `call` (a continuation that waited), or, with `None`, of the consume
    /// appended just before (the caller checks [`ends_with_consume`](Self::ends_with_consume);
    /// it fired at once).
    #[inline]
    pub(crate) fn push_comm(
        &mut self,
        call: Option<ConsumeCall<C, P, K>>,
        data: SmallVec<[(usize, A, bool); 1]>,
    ) {
        debug_assert!(call.is_some() || self.ends_with_consume());
        let fresh = call.is_some();
        if let Some(call) = call {
            self.calls.push(call);
        }
        self.events.push(Event::Comm(CommEvent { fresh, data }));
    }

    /// Appends every entry of `other`, in order.
    pub(crate) fn extend_from(&mut self, other: &Self)
    where
        C: Clone,
        P: Clone,
        A: Clone,
        K: Clone,
    {
        other
            .events
            .iter()
            .for_each(|e| self.events.push(e.clone()));
        other.calls.iter().for_each(|c| self.calls.push(c.clone()));
    }

    /// The events in order, each with the call it names (`Consume`, `Comm`; `None` for the
    /// others).
    pub(crate) fn iter(&self) -> impl Iterator<Item = Entry<'_, C, P, A, K>> + '_ {
        let mut calls = self.calls.iter();
        let mut last = None;
        self.events.iter().map(move |event| {
            let call = match event {
                Event::Consume | Event::Comm(CommEvent { fresh: true, .. }) => {
                    last = calls.next();
                    last
                }
                Event::Comm(CommEvent { fresh: false, .. }) => last,
                _ => None,
            };
            Entry { event, call }
        })
    }
}

/// One event of a [`Log`] with the consume call it names, if any (see [`Log::iter`]).
#[derive(Debug)]
pub(crate) struct Entry<'l, C, P, A, K> {
    pub(crate) event: &'l Event<C, A>,
    pub(crate) call: Option<&'l ConsumeCall<C, P, K>>,
}

/// A COMM as the log names it: the consume that fired, the produce behind each datum it took
/// (in COMM order: positions ascending, a top-k position's data best first; peeked and
/// persistent ones included), and the peeking positions.
///
/// ```
/// use rhospace_spaces::{produce_hash, consume_hash, CommRecord};
/// let c = consume_hash(&["ch"], &[7u32], &"k", false, &[]);
/// let r = CommRecord { consume: c, produces: vec![produce_hash(&"ch", &7u32, false)], peeks: vec![] };
/// assert_eq!(r.hash(), r.clone().hash());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommRecord {
    /// The hash of the consume whose continuation fired.
    pub consume: Digest,
    /// The produce hash of each datum, in COMM order.
    pub produces: Vec<Digest>,
    /// Positions that peeked, ascending.
    pub peeks: Vec<u32>,
}

impl CommRecord {
    /// The COMM's own stable hash.
    ///
    /// ```
    /// use rhospace_spaces::CommRecord;
    /// let a = CommRecord { consume: [1; 32], produces: vec![[2; 32]], peeks: vec![] };
    /// let b = CommRecord { consume: [1; 32], produces: vec![[2; 32]], peeks: vec![0] };
    /// assert_ne!(a.hash(), b.hash());
    /// ```
    pub fn hash(&self) -> Digest {
        let mut peeks = Vec::new();
        encode_varint(self.peeks.len() as u64, &mut peeks);
        for p in &self.peeks {
            encode_varint(u64::from(*p), &mut peeks);
        }
        let mut parts: Vec<&[u8]> = vec![b"rhospace/comm", &self.consume];
        parts.extend(self.produces.iter().map(|p| &p[..]));
        parts.push(&peeks);
        hash_ordered(parts)
    }
}

/// One entry of the hashed event log that [`create_checkpoint`](crate::Space::create_checkpoint)
/// returns. `counter` numbers identical events (same hash) in log order from 0, so two
/// identical produces are two distinct entries.
///
/// ```
/// use rhospace_spaces::{produce_hash, LogEvent};
/// let e = LogEvent::Produce { hash: produce_hash(&1u8, &2u8, false), counter: 0 };
/// assert!(matches!(e, LogEvent::Produce { counter: 0, .. }));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LogEvent {
    /// A produce: its hash and its number among identical produces.
    Produce {
        /// [`produce_hash`] of the call.
        hash: Digest,
        /// How many identical produces came before it in the log.
        counter: u32,
    },
    /// A consume: its hash and its number among identical consumes.
    Consume {
        /// [`consume_hash`] of the call.
        hash: Digest,
        /// How many identical consumes came before it in the log.
        counter: u32,
    },
    /// A COMM.
    Comm(CommRecord),
}

/// The stable hash of a produce of `datum` on `channel`.
///
/// ```
/// use rhospace_spaces::produce_hash;
/// assert_eq!(produce_hash(&"a", &1u32, false), produce_hash(&"a", &1u32, false));
/// assert_ne!(produce_hash(&"a", &1u32, false), produce_hash(&"a", &1u32, true));
/// ```
pub fn produce_hash<C: Encode + ?Sized, A: Encode + ?Sized>(
    channel: &C,
    datum: &A,
    persist: bool,
) -> Digest {
    let mut buf = Vec::with_capacity(64);
    channel.encode(&mut buf);
    let split = buf.len();
    datum.encode(&mut buf);
    let (c, d) = buf.split_at(split);
    hash_ordered([&b"rhospace/produce"[..], c, d, &[u8::from(persist)]])
}

/// The stable hash of a consume (or an installed continuation).
///
/// ```
/// use rhospace_spaces::consume_hash;
/// let a = consume_hash(&[1u8, 2], &[0u8, 0], &"k", false, &[]);
/// assert_ne!(a, consume_hash(&[2u8, 1], &[0u8, 0], &"k", false, &[]));
/// assert_ne!(a, consume_hash(&[1u8, 2], &[0u8, 0], &"k", false, &[1]));
/// ```
pub fn consume_hash<C: Encode, P: Encode, K: Encode + ?Sized>(
    channels: &[C],
    patterns: &[P],
    continuation: &K,
    persist: bool,
    peeks: &[usize],
) -> Digest {
    let mut buf = Vec::with_capacity(64);
    channels.encode(&mut buf);
    let c = buf.len();
    patterns.encode(&mut buf);
    let p = buf.len();
    continuation.encode(&mut buf);
    let k = buf.len();
    encode_varint(peeks.len() as u64, &mut buf);
    for &x in peeks {
        encode_varint(x as u64, &mut buf);
    }
    hash_ordered([
        &b"rhospace/consume"[..],
        &buf[..c],
        &buf[c..p],
        &buf[p..k],
        &[u8::from(persist)],
        &buf[k..],
    ])
}

/// The COMM record of a consume call whose consume hash is `consume`, with `data`.
fn comm_record<C: Encode, A: Encode>(
    consume: Digest,
    channels: &[C],
    peeks: &[usize],
    data: &[(usize, A, bool)],
) -> CommRecord {
    CommRecord {
        consume,
        // A position is always within the channel list; a COMM names each datum through the
        // channel of its position.
        produces: data
            .iter()
            .filter_map(|(pos, d, p)| channels.get(*pos).map(|c| produce_hash(c, d, *p)))
            .collect(),
        peeks: peeks.iter().map(|&p| p as u32).collect(),
    }
}

/// The [`consume_hash`] of a logged call.
fn call_hash<C: Encode, P: Encode, K: Encode>(call: &ConsumeCall<C, P, K>) -> Digest {
    consume_hash(
        &call.channels,
        &call.patterns,
        &call.continuation,
        call.persist,
        &call.peeks,
    )
}

/// Hashes the merged event list of `logs` (one after another; `len` events in all),
/// numbering identical events. A COMM that a consume fired at once reuses that consume's hash.
pub(crate) fn hash_events<'l, C, P, A, K>(
    logs: impl IntoIterator<Item = &'l Log<C, P, A, K>>,
    len: usize,
) -> Vec<LogEvent>
where
    C: Encode + 'l,
    P: Encode + 'l,
    A: Encode + 'l,
    K: Encode + 'l,
{
    // Looked up only; the log's order comes from `logs`.
    let mut seen: HashMap<Digest, u32, foldhash::fast::RandomState> =
        HashMap::with_capacity_and_hasher(len, Default::default());
    let mut number = |h: Digest| {
        let n = seen.entry(h).or_insert(0);
        let c = *n;
        *n = n.saturating_add(1);
        c
    };
    let mut out = Vec::with_capacity(len);
    for log in logs {
        // The hash of the last `Consume`, for the COMM it fired at once.
        let mut consumed: Option<Digest> = None;
        for Entry { event, call } in log.iter() {
            out.push(match (event, call) {
                (
                    Event::Produce {
                        channel,
                        datum,
                        persist,
                    },
                    _,
                ) => {
                    let hash = produce_hash(channel, datum, *persist);
                    LogEvent::Produce {
                        hash,
                        counter: number(hash),
                    }
                }
                (Event::Consume, Some(call)) => {
                    let hash = call_hash(call);
                    consumed = Some(hash);
                    LogEvent::Consume {
                        hash,
                        counter: number(hash),
                    }
                }
                (Event::Comm(c), Some(call)) => {
                    let hash = match (c.fresh, consumed) {
                        (false, Some(h)) => h,
                        _ => call_hash(call),
                    };
                    LogEvent::Comm(comm_record(hash, &call.channels, &call.peeks, &c.data))
                }
                (Event::HashedProduce(hash), _) => LogEvent::Produce {
                    hash: *hash,
                    counter: number(*hash),
                },
                (Event::HashedConsume(hash), _) => LogEvent::Consume {
                    hash: *hash,
                    counter: number(*hash),
                },
                (Event::HashedComm(r), _) => LogEvent::Comm((**r).clone()),
                // `Log`'s invariant gives every `Consume` and `Comm` its call.
                (Event::Consume | Event::Comm(_), None) => broken_log(),
            });
        }
    }
    out
}

#[cold]
fn broken_log() -> ! {
    // Only reachable if a log broke its own invariant; no input leads here. Abort loudly
    // rather than return a wrong log.
    panic!("rhospace invariant broken: a logged consume or COMM lost its call")
}

impl Encode for CommRecord {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.consume);
        encode_varint(self.produces.len() as u64, out);
        for p in &self.produces {
            out.extend_from_slice(p);
        }
        encode_varint(self.peeks.len() as u64, out);
        for p in &self.peeks {
            encode_varint(u64::from(*p), out);
        }
    }

    fn encoded_len(&self) -> usize {
        let mut v = Vec::new();
        self.encode(&mut v);
        v.len()
    }
}

fn decode_digest(input: &mut &[u8]) -> Result<Digest, DecodeError> {
    let mut d = [0u8; 32];
    for b in d.iter_mut() {
        *b = u8::decode(input)?;
    }
    Ok(d)
}

/// Reads a count whose items take at least `min` bytes each, refusing counts the input cannot
/// hold (so a hostile length never allocates).
fn decode_count(input: &mut &[u8], min: usize) -> Result<usize, DecodeError> {
    let len = decode_varint(input)?;
    let n = usize::try_from(len).unwrap_or(usize::MAX);
    if n.saturating_mul(min) > input.len() {
        return Err(DecodeError::LengthTooLarge { len });
    }
    Ok(n)
}

impl Decode for CommRecord {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let consume = decode_digest(input)?;
        let n = decode_count(input, 32)?;
        let mut produces = Vec::with_capacity(n);
        for _ in 0..n {
            produces.push(decode_digest(input)?);
        }
        let n = decode_count(input, 1)?;
        let mut peeks = Vec::with_capacity(n);
        for _ in 0..n {
            let p = decode_varint(input)?;
            peeks.push(u32::try_from(p).map_err(|_| DecodeError::Invalid("peek position"))?);
        }
        Ok(CommRecord {
            consume,
            produces,
            peeks,
        })
    }
}

/// Wire format: a tag byte (0 produce, 1 consume, 2 COMM), then the hash and LEB128 counter, or
/// the COMM record. A log travels as a `Vec<LogEvent>` ([`Encode`] for slices).
///
/// ```
/// use rhospace_spaces::{decode_exact, Encode, LogEvent};
/// let log = vec![LogEvent::Produce { hash: [3; 32], counter: 1 }];
/// let mut bytes = Vec::new();
/// log.encode(&mut bytes);
/// assert_eq!(decode_exact::<Vec<LogEvent>>(&bytes).unwrap(), log);
/// ```
impl Encode for LogEvent {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            LogEvent::Produce { hash, counter } => {
                out.push(0);
                out.extend_from_slice(hash);
                encode_varint(u64::from(*counter), out);
            }
            LogEvent::Consume { hash, counter } => {
                out.push(1);
                out.extend_from_slice(hash);
                encode_varint(u64::from(*counter), out);
            }
            LogEvent::Comm(r) => {
                out.push(2);
                r.encode(out);
            }
        }
    }

    fn encoded_len(&self) -> usize {
        let mut v = Vec::new();
        self.encode(&mut v);
        v.len()
    }
}

impl Decode for LogEvent {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let counter = |input: &mut &[u8]| {
            u32::try_from(decode_varint(input)?).map_err(|_| DecodeError::Invalid("counter"))
        };
        match u8::decode(input)? {
            0 => {
                let hash = decode_digest(input)?;
                Ok(LogEvent::Produce {
                    hash,
                    counter: counter(input)?,
                })
            }
            1 => {
                let hash = decode_digest(input)?;
                Ok(LogEvent::Consume {
                    hash,
                    counter: counter(input)?,
                })
            }
            2 => Ok(LogEvent::Comm(CommRecord::decode(input)?)),
            _ => Err(DecodeError::Invalid("log event tag")),
        }
    }
}

#[cfg(test)]
mod size_tests {
    use super::Event;

    /// The log is written to fresh memory on every call: keep events small (see [`Event`]).
    #[test]
    fn an_event_of_word_sized_types_is_small() {
        assert!(std::mem::size_of::<Event<u64, u64>>() <= 48);
    }
}

#[cfg(test)]
mod log_tests {
    use super::*;

    fn call(k: u64, persist: bool) -> ConsumeCall<u64, u64, u64> {
        ConsumeCall {
            channels: Arc::from([1u64, 2]),
            patterns: Arc::from([10u64, 20]),
            continuation: k,
            persist,
            peeks: Peeks::new(),
        }
    }

    /// Every consume and COMM names its own call, across clones (which seal the trails'
    /// chunks), and the hashed log equals the hashes computed from the calls directly.
    #[test]
    fn events_name_their_calls_and_hash_as_the_calls_do() {
        let mut log: Log<u64, u64, u64, u64> = Log::default();
        let mut snapshots = Vec::new();
        let mut expected = Vec::new();
        let mut consumes = HashMap::new();
        let mut produces = HashMap::new();
        let count = |seen: &mut HashMap<Digest, u32>, h: Digest| {
            let n = seen.entry(h).or_insert(0);
            *n += 1;
            *n - 1
        };
        for i in 0..40u64 {
            let at_once = i % 3 == 0;
            let k = i % 4;
            log.push_consume(call(k, at_once));
            let h = consume_hash(&[1u64, 2], &[10u64, 20], &k, at_once, &[]);
            expected.push(LogEvent::Consume {
                hash: h,
                counter: count(&mut consumes, h),
            });
            let data: SmallVec<[(usize, u64, bool); 1]> = SmallVec::from_elem((1, i, false), 1);
            let produce = produce_hash(&2u64, &i, false);
            if at_once {
                log.push_comm(None, data);
            } else {
                log.push(Event::Produce {
                    channel: 2,
                    datum: i,
                    persist: false,
                });
                expected.push(LogEvent::Produce {
                    hash: produce,
                    counter: count(&mut produces, produce),
                });
                // A waiting continuation of another call fires: the COMM names that call.
                log.push_comm(Some(call(k + 100, false)), data);
            }
            let fired = if at_once {
                h
            } else {
                consume_hash(&[1u64, 2], &[10u64, 20], &(k + 100), false, &[])
            };
            expected.push(LogEvent::Comm(CommRecord {
                consume: fired,
                produces: vec![produce],
                peeks: vec![],
            }));
            if i % 7 == 0 {
                snapshots.push((log.clone(), expected.len()));
            }
        }
        assert_eq!(log.len(), expected.len());
        assert_eq!(hash_events([&log], log.len()), expected);
        for (snap, len) in &snapshots {
            assert_eq!(hash_events([snap], snap.len()), expected[..*len]);
        }
        // Two logs one after another (a reroute): the second's calls stay its own.
        let mut merged = Log::default();
        merged.extend_from(&snapshots[1].0);
        merged.extend_from(&log);
        let hashed = hash_events([&merged], merged.len());
        let uncounted = |events: &[LogEvent]| -> Vec<LogEvent> {
            let mut events = events.to_vec();
            for e in &mut events {
                if let LogEvent::Produce { counter, .. } | LogEvent::Consume { counter, .. } = e {
                    *counter = 0;
                }
            }
            events
        };
        assert_eq!(uncounted(&hashed[snapshots[1].1..]), uncounted(&expected));
        assert_eq!(hashed[..snapshots[1].1], expected[..snapshots[1].1]);
        assert_eq!(hash_events([&snapshots[1].0, &log], merged.len()), hashed);
    }
}
