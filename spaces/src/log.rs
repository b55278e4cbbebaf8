//! The event log (SPEC §7): what the operations record, and its hashed, stable form.
//!
//! Operations append records to their shard's log, inside the persistent state, so soft
//! checkpoints capture the log too. A record holds the canonical [`Encode`]ings that its
//! event's hash covers, written into a [`Tape`]: nothing is hashed on the hot path, and no
//! value is cloned or kept. (The log used to keep clones: a consume's continuation and `Arc`s
//! of its channel and pattern lists, which the log held to the next hard checkpoint, so every
//! such allocation missed the allocator's cache, ~150 instructions each; values with heap data
//! stayed alive as long.) The one encoding kept outside the log is a persistent
//! continuation's call ([`EncodedCall`]), which every COMM it fires logs again. A hard
//! checkpoint reads the merged log (shards in ascending order, each in its own order) into
//! [`LogEvent`]s: stable BLAKE3 hashes with a per-hash counter that tells identical events
//! apart.
//!
//! # Hashes
//! - produce: `hash_ordered(["rhospace/produce", channel, datum, persist])`, and with a fifth
//!   part, the priority as 8 little-endian bytes, when the priority is not 0 (a PriorityQueue
//!   produce: other kinds' priorities are 0), so a replay tells produces of one datum with
//!   different priorities apart;
//! - consume: `hash_ordered(["rhospace/consume", channels, patterns, continuation, persist,
//!   peeks])`;
//! - a COMM names its consume's hash, the produce hash of the datum at each position (channel,
//!   datum, persist flag, priority: what a produce of that datum hashed to), and the peeking
//!   positions.
//!
//! Each part is the value's canonical [`Encode`]ing, so equal values give equal hashes on every
//! machine.
//!
//! # Records
//! A record is a tag byte and its body. Lengths are 8-byte little-endian. A *produce part* is
//! a flags byte (bit 0: persist; bit 1: a priority follows), the channel's and the datum's
//! encoded lengths, the two encodings, then the priority (8 bytes little-endian) if not 0. A
//! *call* is the persist flag, four lengths, then the encodings of the channel list, the
//! pattern list and the continuation, and the peeks (LEB128 count and positions).
//!
//! | tag | body |
//! |---|---|
//! | `PRODUCE` | a produce part |
//! | `CONSUME` | a call |
//! | `COMM` | `fresh` (one byte); a call if `fresh`; a count; that many produce parts |
//! | `HASHED_PRODUCE`, `HASHED_CONSUME` | a 32-byte digest (a replay hashed the call) |
//! | `HASHED_COMM` | a [`CommRecord`]'s encoding (a replay built it) |
//!
//! A `COMM` without `fresh` names the call of the `CONSUME` just before it (a consume that
//! fired at once); with `fresh`, the call of a continuation that waited.

use std::collections::HashMap;
use std::fmt;

use crate::decode::{decode_varint, Decode, DecodeError};
use crate::encode::{encode_varint, Encode};
use crate::merkle::{hash_ordered, Digest};
use crate::tape::Tape;

const PRODUCE: u8 = 0;
const CONSUME: u8 = 1;
const COMM: u8 = 2;
const HASHED_PRODUCE: u8 = 3;
const HASHED_CONSUME: u8 = 4;
const HASHED_COMM: u8 = 5;

/// A consume call's parts, borrowed for logging.
#[derive(Debug)]
pub(crate) struct Call<'a, C, P, K: ?Sized> {
    pub(crate) channels: &'a [C],
    pub(crate) patterns: &'a [P],
    pub(crate) continuation: &'a K,
    pub(crate) persist: bool,
    pub(crate) peeks: &'a [usize],
}

// By hand: a derive would ask `C`, `P` and `K` to be `Copy` too.
impl<C, P, K: ?Sized> Clone for Call<'_, C, P, K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C, P, K: ?Sized> Copy for Call<'_, C, P, K> {}

/// A consume call's encoding exactly as a record holds it (a *call*, see the module docs),
/// kept by a persistent continuation while it waits: each COMM it fires copies these bytes
/// into the log, and a replay hashes them, instead of encoding its channel list, patterns and
/// continuation again. (A contract is a persistent continuation: re-encoding a 40-step body
/// on every call was 62% of a firing produce's instructions, callgrind.)
///
/// Invariant: the bytes are what `write_call` writes for the call it was made from. They
/// never change; every clone shares them.
#[derive(Clone)]
pub(crate) struct EncodedCall(triomphe::ThinArc<(), u8>);

impl EncodedCall {
    /// Encodes `call` once, into a shared buffer of its own.
    pub(crate) fn new<C: Encode, P: Encode, K: Encode + ?Sized>(call: Call<'_, C, P, K>) -> Self {
        with_scratch(|buf| {
            write_call(buf, call);
            Self(triomphe::ThinArc::from_header_and_slice((), buf))
        })
    }

    /// The call's record bytes.
    #[inline]
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0.slice
    }

    /// The call's [`consume_hash`], from its encodings.
    pub(crate) fn consume_hash(&self) -> Digest {
        take_call(&mut self.bytes()).0
    }
}

impl fmt::Debug for EncodedCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncodedCall")
            .field("len", &self.bytes().len())
            .finish()
    }
}

/// The call a record logs: its parts, to encode, or their encoding, to copy.
#[derive(Debug)]
pub(crate) enum LoggedCall<'a, C, P, K: ?Sized> {
    /// Parts to encode.
    Parts(Call<'a, C, P, K>),
    /// An encoding made earlier.
    Encoded(&'a EncodedCall),
}

// By hand, as for `Call`.
impl<C, P, K: ?Sized> Clone for LoggedCall<'_, C, P, K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C, P, K: ?Sized> Copy for LoggedCall<'_, C, P, K> {}

impl<C: Encode, P: Encode, K: Encode + ?Sized> LoggedCall<'_, C, P, K> {
    /// Appends the call (see the module docs).
    #[inline(always)]
    fn write(self, out: &mut Vec<u8>) {
        match self {
            Self::Parts(call) => write_call(out, call),
            Self::Encoded(e) => out.extend_from_slice(e.bytes()),
        }
    }
}

/// One shard's event log: its records (see the module docs) and their number.
///
/// Invariant: `tape` holds exactly `len` records; `last` is the tag of the last one (`None`
/// when empty); a `COMM` record without `fresh` comes right after a `CONSUME` record. While
/// `last` is `PRODUCE`, `produced` is where that record's produce part lay in the tape's
/// tail when it was written (the tail then ended there; it still does unless it was sealed
/// since), or empty when that record came in by [`extend_from`](Self::extend_from). Cloning
/// is O(1) (the tape's chunks are shared).
#[derive(Clone, Debug, Default)]
pub(crate) struct Log {
    tape: Tape,
    len: usize,
    last: Option<u8>,
    produced: std::ops::Range<usize>,
}

impl Log {
    /// The number of events.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether no event is logged.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn pushed(&mut self, tag: u8) {
        self.len += 1;
        self.last = Some(tag);
    }

    /// Appends a produce of `datum` on `channel` (`priority` 0 except on a PriorityQueue).
    #[inline(always)]
    pub(crate) fn push_produce<C: Encode + ?Sized, A: Encode + ?Sized>(
        &mut self,
        channel: &C,
        datum: &A,
        persist: bool,
        priority: i64,
    ) {
        let out = self.tape.record();
        out.push(PRODUCE);
        let start = out.len();
        write_produce(out, channel, datum, persist, priority);
        self.produced = start..out.len();
        self.pushed(PRODUCE);
    }

    /// Appends a produce a replay has hashed already (its [`produce_hash`]).
    #[inline]
    pub(crate) fn push_hashed_produce(&mut self, hash: &Digest) {
        self.push_digest(HASHED_PRODUCE, hash);
    }

    /// Appends a consume a replay has hashed already (its [`consume_hash`]).
    #[inline]
    pub(crate) fn push_hashed_consume(&mut self, hash: &Digest) {
        self.push_digest(HASHED_CONSUME, hash);
    }

    fn push_digest(&mut self, tag: u8, hash: &Digest) {
        let out = self.tape.record();
        out.push(tag);
        out.extend_from_slice(hash);
        self.pushed(tag);
    }

    /// Appends a COMM a replay has recorded already.
    pub(crate) fn push_hashed_comm(&mut self, record: &CommRecord) {
        let out = self.tape.record();
        out.push(HASHED_COMM);
        record.encode(out);
        self.pushed(HASHED_COMM);
    }

    /// Appends a consume call.
    #[inline(always)]
    pub(crate) fn push_consume<C: Encode, P: Encode, K: Encode + ?Sized>(
        &mut self,
        call: LoggedCall<'_, C, P, K>,
    ) {
        let out = self.tape.record();
        out.push(CONSUME);
        call.write(out);
        self.pushed(CONSUME);
    }

    /// Whether the last event is a consume call's (so a COMM may name that call).
    #[inline]
    pub(crate) fn ends_with_consume(&self) -> bool {
        self.last == Some(CONSUME)
    }

    /// Appends a COMM of `call` (a continuation that waited), or, with `None`, of the consume
    /// appended just before (the caller checks [`ends_with_consume`](Self::ends_with_consume);
    /// it fired at once). `data` is each datum in COMM order with the channel of its position,
    /// its persist flag and its priority. Bit `i` of `produced` says that datum `i` (below
    /// 64) is the one the produce appended just before brought in, on its channel with its
    /// persist flag and priority: its part is then copied from that record rather than
    /// encoded again (the same bytes).
    /// The caller sets a bit only for such a datum. The copy is made only while that
    /// produce's record is the last one and still ends the tail; otherwise (a replay logged
    /// the produce's hash, a clone sealed the tail) the datum is encoded.
    #[inline(always)]
    pub(crate) fn push_comm<'d, C, P, A, K>(
        &mut self,
        call: Option<LoggedCall<'_, C, P, K>>,
        data: impl IntoIterator<Item = (&'d C, &'d A, bool, i64)>,
        produced: u64,
    ) where
        C: Encode + 'd,
        P: Encode,
        A: Encode + 'd,
        K: Encode + ?Sized,
    {
        debug_assert!(call.is_some() || self.ends_with_consume());
        let part = (produced != 0 && self.last == Some(PRODUCE)).then(|| self.produced.clone());
        let out = self.tape.record();
        // A tail sealed since the produce is a fresh, empty one; a written part is never
        // empty, and `extend_from` leaves an empty range (the part lies in another chunk).
        let part = part.filter(|p| !p.is_empty() && out.len() == p.end);
        out.push(COMM);
        out.push(u8::from(call.is_some()));
        if let Some(call) = call {
            call.write(out);
        }
        let count = reserve_len(out);
        let mut n = 0;
        for (channel, datum, persist, priority) in data {
            match &part {
                Some(p) if n < 64 && produced >> n & 1 == 1 => out.extend_from_within(p.clone()),
                _ => write_produce(out, channel, datum, persist, priority),
            }
            n += 1;
        }
        set_len(out, count, n);
        self.pushed(COMM);
    }

    /// Appends every event of `other`, in order (sharing its bytes).
    pub(crate) fn extend_from(&mut self, other: &Self) {
        if other.is_empty() {
            return;
        }
        self.tape.extend_from(&other.tape);
        self.len += other.len;
        self.last = other.last;
        // Its last produce part, if any, lies in a chunk of `other`'s: none to copy here.
        self.produced = 0..0;
    }
}

/// Appends eight zero bytes for a length set later; returns where they are.
#[inline]
fn reserve_len(out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0; 8]);
    at
}

/// Writes `len` at `at` (reserved by [`reserve_len`]).
#[inline]
fn set_len(out: &mut [u8], at: usize, len: usize) {
    out[at..at + 8].copy_from_slice(&(len as u64).to_le_bytes());
}

/// Appends a produce part (see the module docs).
#[inline(always)]
fn write_produce<C: Encode + ?Sized, A: Encode + ?Sized>(
    out: &mut Vec<u8>,
    channel: &C,
    datum: &A,
    persist: bool,
    priority: i64,
) {
    // Priority 0 (every kind but PriorityQueue) is the one path inline.
    if priority != 0 {
        return write_prioritized(out, channel, datum, persist, priority);
    }
    write_part(out, channel, datum, u8::from(persist));
}

/// [`write_produce`] of a non-zero priority.
#[cold]
#[inline(never)]
fn write_prioritized<C: Encode + ?Sized, A: Encode + ?Sized>(
    out: &mut Vec<u8>,
    channel: &C,
    datum: &A,
    persist: bool,
    priority: i64,
) {
    write_part(out, channel, datum, u8::from(persist) | 2);
    out.extend_from_slice(&priority.to_le_bytes());
}

/// Appends a produce part's flags byte, lengths and encodings.
#[inline(always)]
fn write_part<C: Encode + ?Sized, A: Encode + ?Sized>(
    out: &mut Vec<u8>,
    channel: &C,
    datum: &A,
    flags: u8,
) {
    let lens = out.len() + 1;
    let mut head = [0u8; 17];
    head[0] = flags;
    out.extend_from_slice(&head);
    let start = out.len();
    channel.encode(out);
    let mid = out.len();
    datum.encode(out);
    let end = out.len();
    set_len(out, lens, mid - start);
    set_len(out, lens + 8, end - mid);
}

/// Appends a call (see the module docs).
#[inline(always)]
fn write_call<C: Encode, P: Encode, K: Encode + ?Sized>(
    out: &mut Vec<u8>,
    call: Call<'_, C, P, K>,
) {
    let lens = out.len() + 1;
    let mut head = [0u8; 33];
    head[0] = u8::from(call.persist);
    out.extend_from_slice(&head);
    let a = out.len();
    call.channels.encode(out);
    let b = out.len();
    call.patterns.encode(out);
    let c = out.len();
    call.continuation.encode(out);
    let d = out.len();
    encode_varint(call.peeks.len() as u64, out);
    for &p in call.peeks {
        encode_varint(p as u64, out);
    }
    let e = out.len();
    set_len(out, lens, b - a);
    set_len(out, lens + 8, c - b);
    set_len(out, lens + 16, d - c);
    set_len(out, lens + 24, e - d);
}

/// Reads one byte of a record.
#[inline]
fn take_u8(r: &mut &[u8]) -> u8 {
    let Some((&b, rest)) = r.split_first() else {
        broken_log()
    };
    *r = rest;
    b
}

/// Reads 8 little-endian bytes of a record.
#[inline]
fn take_u64(r: &mut &[u8]) -> u64 {
    let Some((n, rest)) = r.split_first_chunk::<8>() else {
        broken_log()
    };
    *r = rest;
    u64::from_le_bytes(*n)
}

/// Reads a length of a record.
#[inline]
fn take_len(r: &mut &[u8]) -> usize {
    usize::try_from(take_u64(r)).unwrap_or_else(|_| broken_log())
}

/// Reads `n` bytes of a record.
#[inline]
fn take_bytes<'a>(r: &mut &'a [u8], n: usize) -> &'a [u8] {
    if n > r.len() {
        broken_log()
    }
    let (a, rest) = r.split_at(n);
    *r = rest;
    a
}

/// Reads a produce part; returns its hash.
fn take_produce(r: &mut &[u8]) -> Digest {
    let flags = take_u8(r);
    let (c, d) = (take_len(r), take_len(r));
    let channel = take_bytes(r, c);
    let datum = take_bytes(r, d);
    // The same 8 bytes `write_prioritized` wrote, as the same two's-complement value.
    let priority = if flags & 2 == 0 {
        0
    } else {
        take_u64(r) as i64
    };
    produce_hash_encoded(channel, datum, flags & 1 != 0, priority)
}

/// Reads a call; returns its hash and its peeks' encoding.
fn take_call<'a>(r: &mut &'a [u8]) -> (Digest, &'a [u8]) {
    let persist = take_u8(r) != 0;
    let lens = [take_len(r), take_len(r), take_len(r), take_len(r)];
    let [channels, patterns, continuation, peeks] = lens.map(|n| take_bytes(r, n));
    (
        consume_hash_encoded(channels, patterns, continuation, persist, peeks),
        peeks,
    )
}

/// The peek positions of a call's peeks encoding.
fn peek_positions(mut peeks: &[u8]) -> Vec<u32> {
    let mut next = || {
        decode_varint(&mut peeks)
            .ok()
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or_else(|| broken_log())
    };
    let n = next();
    (0..n).map(|_| next()).collect()
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

/// The stable hash of a produce of `datum` on `channel` with priority 0 (every produce on a
/// kind other than PriorityQueue; see [`produce_hash_with_priority`]).
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
    produce_hash_with_priority(channel, datum, persist, 0)
}

/// The stable hash of a produce of `datum` on `channel` with `priority` (a PriorityQueue
/// produce; every other kind's produces have priority 0). A priority of 0 hashes as
/// [`produce_hash`].
///
/// ```
/// use rhospace_spaces::{produce_hash, produce_hash_with_priority};
/// assert_eq!(produce_hash_with_priority(&"a", &1u32, false, 0), produce_hash(&"a", &1u32, false));
/// assert_ne!(
///     produce_hash_with_priority(&"a", &1u32, false, 5),
///     produce_hash_with_priority(&"a", &1u32, false, 1)
/// );
/// ```
pub fn produce_hash_with_priority<C: Encode + ?Sized, A: Encode + ?Sized>(
    channel: &C,
    datum: &A,
    persist: bool,
    priority: i64,
) -> Digest {
    with_scratch(|buf| {
        channel.encode(buf);
        let split = buf.len();
        datum.encode(buf);
        let (c, d) = buf.split_at(split);
        produce_hash_encoded(c, d, persist, priority)
    })
}

thread_local! {
    /// Each thread's buffer for encoding a call to hash: a replay hashes every call it checks
    /// and every datum of every COMM it tries, and a fresh buffer each time cost a `malloc` and
    /// a `free` per hash. Const-initialised: touching it never allocates.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Buffers larger than this are not kept for the next hash.
const SCRATCH_KEEP: usize = 4096;

/// Runs `f` on this thread's empty scratch buffer (on a fresh one if an `Encode` impl inside
/// `f` hashes too).
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            let out = f(&mut buf);
            if buf.capacity() > SCRATCH_KEEP {
                *buf = Vec::new();
            }
            out
        }
        Err(_) => f(&mut Vec::new()),
    })
}

/// [`produce_hash_with_priority`] from the channel's and the datum's encodings.
fn produce_hash_encoded(channel: &[u8], datum: &[u8], persist: bool, priority: i64) -> Digest {
    let (persist, priority_bytes) = ([u8::from(persist)], priority.to_le_bytes());
    let parts: [&[u8]; 5] = [
        b"rhospace/produce",
        channel,
        datum,
        &persist,
        &priority_bytes,
    ];
    // Priority 0 (every kind but PriorityQueue) hashes the four parts it always did.
    hash_ordered(&parts[..if priority == 0 { 4 } else { 5 }])
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
    with_scratch(|buf| {
        channels.encode(buf);
        let c = buf.len();
        patterns.encode(buf);
        let p = buf.len();
        continuation.encode(buf);
        let k = buf.len();
        encode_varint(peeks.len() as u64, buf);
        for &x in peeks {
            encode_varint(x as u64, buf);
        }
        consume_hash_encoded(&buf[..c], &buf[c..p], &buf[p..k], persist, &buf[k..])
    })
}

/// [`consume_hash`] from the encodings of its parts (`peeks`: LEB128 count and positions).
fn consume_hash_encoded(
    channels: &[u8],
    patterns: &[u8],
    continuation: &[u8],
    persist: bool,
    peeks: &[u8],
) -> Digest {
    hash_ordered([
        &b"rhospace/consume"[..],
        channels,
        patterns,
        continuation,
        &[u8::from(persist)],
        peeks,
    ])
}

/// Hashes the merged event list of `logs` (one after another; `len` events in all),
/// numbering identical events. A COMM that a consume fired at once reuses that consume's hash.
pub(crate) fn hash_events<'l>(
    logs: impl IntoIterator<Item = &'l Log>,
    len: usize,
) -> Vec<LogEvent> {
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
        // The hash and peeks of the last consume call, for the COMM it fired at once.
        let mut consumed: Option<(Digest, &[u8])> = None;
        let mut reader = log.tape.reader();
        for _ in 0..log.len {
            let Some(r) = reader.next_record() else {
                broken_log()
            };
            out.push(match take_u8(r) {
                PRODUCE => {
                    let hash = take_produce(r);
                    LogEvent::Produce {
                        hash,
                        counter: number(hash),
                    }
                }
                CONSUME => {
                    let (hash, peeks) = take_call(r);
                    consumed = Some((hash, peeks));
                    LogEvent::Consume {
                        hash,
                        counter: number(hash),
                    }
                }
                COMM => {
                    let (consume, peeks) = match (take_u8(r) != 0, consumed) {
                        (true, _) => take_call(r),
                        (false, Some(call)) => call,
                        // `Log`'s invariant puts a consume right before such a COMM.
                        (false, None) => broken_log(),
                    };
                    let n = take_len(r);
                    let produces = (0..n).map(|_| take_produce(r)).collect();
                    LogEvent::Comm(CommRecord {
                        consume,
                        produces,
                        peeks: peek_positions(peeks),
                    })
                }
                HASHED_PRODUCE => {
                    let hash = take_digest(r);
                    LogEvent::Produce {
                        hash,
                        counter: number(hash),
                    }
                }
                HASHED_CONSUME => {
                    let hash = take_digest(r);
                    LogEvent::Consume {
                        hash,
                        counter: number(hash),
                    }
                }
                HASHED_COMM => {
                    LogEvent::Comm(CommRecord::decode(r).unwrap_or_else(|_| broken_log()))
                }
                _ => broken_log(),
            });
        }
    }
    out
}

/// Reads a digest of a record ([`decode_digest`], which only fails on a short record).
fn take_digest(r: &mut &[u8]) -> Digest {
    decode_digest(r).unwrap_or_else(|_| broken_log())
}

#[cold]
fn broken_log() -> ! {
    // Only reachable if a log broke its own invariant; no input leads here. Abort loudly
    // rather than return a wrong log.
    panic!("rhospace invariant broken: an event log record is malformed")
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
    // One 32-byte copy (byte by byte, this was most of a replay's closing log hash).
    let (d, rest) = input
        .split_first_chunk::<32>()
        .ok_or(DecodeError::Truncated)?;
    *input = rest;
    Ok(*d)
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
mod log_tests {
    use super::*;

    fn call(k: &u64, persist: bool) -> Call<'_, u64, u64, u64> {
        Call {
            channels: &[1, 2],
            patterns: &[10, 20],
            continuation: k,
            persist,
            peeks: &[],
        }
    }

    /// Every byte of a log, its records one after another.
    fn tape_bytes(log: &Log) -> Vec<u8> {
        let mut reader = log.tape.reader();
        let mut out = Vec::new();
        while let Some(rest) = reader.next_record() {
            out.extend_from_slice(rest);
            *rest = &[];
        }
        out
    }

    /// The parts of a persistent one-channel call of strings.
    struct StringCall {
        chans: [String; 1],
        pats: [String; 1],
        k: String,
    }

    impl StringCall {
        fn new() -> Self {
            Self {
                chans: [String::from("chan")],
                pats: [String::from("p")],
                k: String::from("k"),
            }
        }

        fn call(&self) -> Call<'_, String, String, String> {
            Call {
                channels: &self.chans,
                patterns: &self.pats,
                continuation: &self.k,
                persist: true,
                peeks: &[],
            }
        }
    }

    /// A COMM datum marked as the produce just logged is copied from that record, and the
    /// log's bytes are those of encoding it: with the tail still open, with the tail sealed
    /// by a clone in between (encoded again), and after another record (the mark ignored).
    #[test]
    fn a_comm_copies_the_produce_just_logged_as_its_encoding() {
        let parts = StringCall::new();
        let (c, chans) = (parts.call(), &parts.chans);
        let (d, other) = (String::from("datum"), String::from("other"));
        for case in ["open", "sealed", "after another record"] {
            let build = |mark: u64| {
                let mut log = Log::default();
                log.push_produce(&other, &other, false, 0);
                log.push_produce(&chans[0], &d, true, -3);
                let clone = (case == "sealed").then(|| log.clone());
                if case == "after another record" {
                    log.push_hashed_consume(&[3; 32]);
                }
                let data = [(&chans[0], &other, false, 0), (&chans[0], &d, true, -3)];
                log.push_comm(Some(LoggedCall::Parts(c)), data, mark);
                drop(clone);
                log
            };
            let (plain, copied) = (build(0), build(0b10));
            assert_eq!(copied.len(), plain.len(), "{case}");
            assert_eq!(tape_bytes(&copied), tape_bytes(&plain), "{case}");
            // The COMM names the produce by the hash its own event has, priority included.
            let events = hash_events([&copied], copied.len());
            let d_hash = produce_hash_with_priority(&chans[0], &d, true, -3);
            assert_eq!(
                events[1],
                LogEvent::Produce {
                    hash: d_hash,
                    counter: 0
                }
            );
            let Some(LogEvent::Comm(comm)) = events.last() else {
                panic!("{case}: a COMM last");
            };
            assert_eq!(
                comm.produces,
                [produce_hash(&chans[0], &other, false), d_hash]
            );
        }
    }

    /// A log whose last record came from another by `extend_from` (a reroute) has no produce
    /// part of its own to copy: a marked datum is encoded (found by review).
    #[test]
    fn a_comm_after_extend_from_encodes_the_produce() {
        let parts = StringCall::new();
        let (c, chans) = (parts.call(), &parts.chans);
        let d = String::from("datum");
        let mut other = Log::default();
        other.push_produce(&chans[0], &d, false, 0);
        for earlier in [false, true] {
            let build = |mark: u64| {
                let mut log = Log::default();
                if earlier {
                    log.push_produce(&d, &d, true, 0);
                }
                log.extend_from(&other);
                assert_eq!(log.last, Some(PRODUCE));
                log.push_comm(
                    Some(LoggedCall::Parts(c)),
                    [(&chans[0], &d, false, 0)],
                    mark,
                );
                log
            };
            assert_eq!(tape_bytes(&build(1)), tape_bytes(&build(0)), "{earlier}");
        }
    }

    /// The log is written to fresh memory on every call: keep records small.
    #[test]
    fn a_produce_of_word_sized_types_logs_34_bytes() {
        let mut log = Log::default();
        log.push_produce(&1u64, &2u64, false, 0);
        assert_eq!(log.tape.bytes(), 34);
    }

    /// Every consume and COMM names its own call, across clones (which seal the tape's
    /// chunks), and the hashed log equals the hashes computed from the values directly.
    #[test]
    fn events_name_their_calls_and_hash_as_the_calls_do() {
        let mut log = Log::default();
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
            log.push_consume(LoggedCall::Parts(call(&k, at_once)));
            let h = consume_hash(&[1u64, 2], &[10u64, 20], &k, at_once, &[]);
            expected.push(LogEvent::Consume {
                hash: h,
                counter: count(&mut consumes, h),
            });
            let data = [(&2u64, &i, false, 0)];
            let produce = produce_hash(&2u64, &i, false);
            let other = k + 100;
            if at_once {
                log.push_comm(None::<LoggedCall<'_, u64, u64, u64>>, data, 0);
            } else {
                log.push_produce(&2u64, &i, false, 0);
                expected.push(LogEvent::Produce {
                    hash: produce,
                    counter: count(&mut produces, produce),
                });
                // A waiting continuation of another call fires: the COMM names that call.
                log.push_comm(Some(LoggedCall::Parts(call(&other, false))), data, 0);
            }
            let fired = if at_once {
                h
            } else {
                consume_hash(&[1u64, 2], &[10u64, 20], &other, false, &[])
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

    /// A call encoded once logs, in a consume and in a COMM, the very bytes its parts log,
    /// and hashes as `consume_hash` of the parts.
    #[test]
    fn an_encoded_call_logs_the_bytes_of_its_parts() {
        let chans = [String::from("a"), String::from("bb")];
        let pats = [String::from("p"), String::from("q")];
        let k = String::from("cont");
        for (persist, peeks) in [(true, &[1usize, 300][..]), (false, &[][..])] {
            let c = Call {
                channels: &chans[..],
                patterns: &pats[..],
                continuation: &k,
                persist,
                peeks,
            };
            let encoded = EncodedCall::new(c);
            assert_eq!(
                encoded.consume_hash(),
                consume_hash(&chans, &pats, &k, persist, peeks)
            );
            let d = String::from("x");
            let logs = [LoggedCall::Parts(c), LoggedCall::Encoded(&encoded)].map(|call| {
                let mut log = Log::default();
                log.push_consume(call);
                log.push_produce(&chans[0], &d, false, 0);
                log.push_comm(Some(call), [(&chans[0], &d, false, 0)], 0);
                log
            });
            assert_eq!(logs[1].len(), 3);
            assert_eq!(tape_bytes(&logs[0]), tape_bytes(&logs[1]));
            assert_eq!(hash_events([&logs[1]], 3), hash_events([&logs[0]], 3));
        }
    }

    /// An `Encode` impl that hashes while being encoded for a hash gets its own buffer: the
    /// outer hash is what a fresh buffer gives.
    #[test]
    fn a_hash_inside_an_encoding_leaves_the_outer_hash_intact() {
        struct Nested;
        impl Encode for Nested {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&produce_hash(&1u8, &2u8, false));
                out.extend_from_slice(&consume_hash(&[1u8], &[2u8], &3u8, true, &[0]));
            }
            fn encoded_len(&self) -> usize {
                64
            }
        }
        let mut expected = Vec::new();
        Nested.encode(&mut expected);
        let direct = produce_hash_encoded(&expected, &[5], false, 0);
        assert_eq!(produce_hash(&Nested, &5u8, false), direct);
        let big = vec![7u8; 3 * SCRATCH_KEEP];
        let first = produce_hash(&big, &1u8, true);
        assert_eq!(produce_hash(&big, &1u8, true), first);
        assert_eq!(produce_hash(&Nested, &5u8, false), direct);
    }

    /// Peeks, several data, persistent flags, heap-backed values and the events a replay
    /// hashed itself all read back as their hashes.
    #[test]
    fn every_record_kind_hashes_as_its_values_do() {
        let mut log = Log::default();
        let chans = [String::from("a"), String::from("bb")];
        let pats = [String::from("p"), String::from("q")];
        let k = String::from("cont");
        let peeks = [1usize, 300];
        let c = Call {
            channels: &chans[..],
            patterns: &pats[..],
            continuation: &k,
            persist: true,
            peeks: &peeks[..],
        };
        let d1 = String::from("x");
        let d2 = String::from("yy");
        log.push_consume(LoggedCall::Parts(c));
        log.push_comm(
            None::<LoggedCall<'_, String, String, String>>,
            [(&chans[0], &d1, true, 0), (&chans[1], &d2, false, 0)],
            0,
        );
        let replayed = CommRecord {
            consume: [7; 32],
            produces: vec![[8; 32], [9; 32]],
            peeks: vec![0, 2],
        };
        log.push_hashed_produce(&[1; 32]);
        log.push_hashed_consume(&[2; 32]);
        log.push_hashed_comm(&replayed);
        log.push_comm(
            Some(LoggedCall::Parts(c)),
            std::iter::empty::<(&String, &String, bool, i64)>(),
            0,
        );
        let ch = consume_hash(&chans, &pats, &k, true, &peeks);
        let comm = CommRecord {
            consume: ch,
            produces: vec![
                produce_hash(&chans[0], &d1, true),
                produce_hash(&chans[1], &d2, false),
            ],
            peeks: vec![1, 300],
        };
        assert!(!log.ends_with_consume());
        assert_eq!(
            hash_events([&log], log.len()),
            vec![
                LogEvent::Consume {
                    hash: ch,
                    counter: 0
                },
                LogEvent::Comm(comm),
                LogEvent::Produce {
                    hash: [1; 32],
                    counter: 0
                },
                LogEvent::Consume {
                    hash: [2; 32],
                    counter: 0
                },
                LogEvent::Comm(replayed),
                LogEvent::Comm(CommRecord {
                    consume: ch,
                    produces: vec![],
                    peeks: vec![1, 300]
                }),
            ]
        );
    }
}
