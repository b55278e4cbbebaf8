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

/// One recorded operation, before hashing. Invariant: a `Comm` follows the `Produce` or
/// `Consume` that fired it in the same shard log.
///
/// A consume's parts sit behind a shared pointer (a `Comm` it fires at once shares them) and a
/// replayed COMM's record in a box, so an event is small: 48 bytes for `u64` channels, data and
/// continuations, against 144 with every part inline. A log is written to fresh memory, and
/// on a produce-heavy block its page faults were a third of the cost of a produce.
#[derive(Clone, Debug)]
pub(crate) enum Event<C, P, A, K> {
    /// A produce call that was accepted (stored, fired, or ignored by a Set).
    Produce { channel: C, datum: A, persist: bool },
    /// A consume call that was accepted (stored or fired).
    Consume(Arc<ConsumeCall<C, P, K>>),
    /// A firing: see [`CommEvent`].
    Comm(CommEvent<C, P, A, K>),
    /// A produce a replay has hashed already (its [`produce_hash`]).
    HashedProduce(Digest),
    /// A consume a replay has hashed already (its [`consume_hash`]).
    HashedConsume(Digest),
    /// A COMM a replay has recorded already.
    HashedComm(Box<CommRecord>),
}

/// A consume call's parts as the log keeps them, shared by its `Consume` event and the `Comm`
/// it fires at once (one continuation clone for both).
#[derive(Debug)]
pub(crate) struct ConsumeCall<C, P, K> {
    pub(crate) channels: Arc<[C]>,
    pub(crate) patterns: Arc<[P]>,
    pub(crate) continuation: K,
    pub(crate) persist: bool,
    pub(crate) peeks: Peeks,
}

/// A firing as the log keeps it: the consume call whose continuation fired and each datum in
/// COMM order with its position and persist flag (a top-k position has several).
#[derive(Clone, Debug)]
pub(crate) struct CommEvent<C, P, A, K> {
    pub(crate) call: Arc<ConsumeCall<C, P, K>>,
    pub(crate) data: SmallVec<[(usize, A, bool); 1]>,
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

impl<C: Encode, P: Encode, A: Encode, K: Encode> Event<C, P, A, K> {
    /// The COMM record of a `Comm` event.
    pub(crate) fn comm_record(
        channels: &[C],
        patterns: &[P],
        continuation: &K,
        persist: bool,
        peeks: &[usize],
        data: &[(usize, A, bool)],
    ) -> CommRecord {
        CommRecord {
            consume: consume_hash(channels, patterns, continuation, persist, peeks),
            // A position is always within the channel list; a COMM names each datum through
            // the channel of its position.
            produces: data
                .iter()
                .filter_map(|(pos, d, p)| channels.get(*pos).map(|c| produce_hash(c, d, *p)))
                .collect(),
            peeks: peeks.iter().map(|&p| p as u32).collect(),
        }
    }
}

/// Hashes a merged event list of `len` events, numbering identical events.
pub(crate) fn hash_events<'e, C, P, A, K>(
    events: impl IntoIterator<Item = &'e Event<C, P, A, K>>,
    len: usize,
) -> Vec<LogEvent>
where
    C: Encode + 'e,
    P: Encode + 'e,
    A: Encode + 'e,
    K: Encode + 'e,
{
    // Looked up only; the log's order comes from `events`.
    let mut seen: HashMap<Digest, u32, foldhash::fast::RandomState> =
        HashMap::with_capacity_and_hasher(len, Default::default());
    let mut number = |h: Digest| {
        let n = seen.entry(h).or_insert(0);
        let c = *n;
        *n = n.saturating_add(1);
        c
    };
    let mut out = Vec::with_capacity(len);
    for e in events {
        out.push(match e {
            Event::Produce {
                channel,
                datum,
                persist,
            } => {
                let hash = produce_hash(channel, datum, *persist);
                LogEvent::Produce {
                    hash,
                    counter: number(hash),
                }
            }
            Event::Consume(call) => {
                let ConsumeCall {
                    channels,
                    patterns,
                    continuation,
                    persist,
                    peeks,
                } = &**call;
                let hash = consume_hash(channels, patterns, continuation, *persist, peeks);
                LogEvent::Consume {
                    hash,
                    counter: number(hash),
                }
            }
            Event::Comm(c) => LogEvent::Comm(Event::<C, P, A, K>::comm_record(
                &c.call.channels,
                &c.call.patterns,
                &c.call.continuation,
                c.call.persist,
                &c.call.peeks,
                &c.data,
            )),
            Event::HashedProduce(hash) => LogEvent::Produce {
                hash: *hash,
                counter: number(*hash),
            },
            Event::HashedConsume(hash) => LogEvent::Consume {
                hash: *hash,
                counter: number(*hash),
            },
            Event::HashedComm(r) => LogEvent::Comm((**r).clone()),
        });
    }
    out
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
        assert!(std::mem::size_of::<Event<u64, u64, u64, u64>>() <= 48);
    }
}
