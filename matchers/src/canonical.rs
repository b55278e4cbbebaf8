//! Canonical binary encoding of [`Term`]s and [`Pattern`]s: the bytes that state roots and
//! event ids hash (SPEC §6–§7).
//!
//! # Guarantees
//!
//! - **Deterministic.** The bytes depend only on the value: not on construction order (records
//!   are already in canonical key order), sharing (`Arc` identity), platform, endianness,
//!   pointer width or process.
//! - **Injective per type.** For terms `a`, `b`: `a == b` ⇔ `encode(a) == encode(b)`; likewise
//!   for patterns, whose `==` is the reference (predicates by name, see below).
//! - **Self-delimiting.** Every node starts with a tag byte; containers carry their child count
//!   and strings their byte length, so an encoding is never a proper prefix of another of the
//!   same type, and encodings can be concatenated without separators.
//! - **Disjoint domains.** Term tags lie in `0x01..=0x07`, pattern tags in `0x40..=0x4A`, so
//!   the first byte tells a term from a pattern: `Pattern::lit(t)` never encodes equal to `t`.
//! - **Bounded stack.** Encoding walks the value with the crate's iterative token walkers, so a
//!   100,000-deep term or pattern encodes on a small thread stack.
//! - **Decodable, strictly.** [`Term::decode_canonical`], [`Pattern::decode_canonical`] and
//!   [`CanonicalDecoder`] invert the encoding, also iteratively. They accept only canonical
//!   bytes (minimal varints, ascending keys, folded literals), so decode-then-encode gives back
//!   the very bytes, and they report any other input as a typed [`CanonicalError`], never a
//!   panic. Predicates need a resolver to be decoded (their functions are not encoded).
//!
//! # Format (stable)
//!
//! **This is a stable, versioned-by-tag format**: hashes persisted on disk and exchanged
//! between nodes are computed over it. Existing tags and layouts must never change meaning; a
//! new node kind gets a new, unused tag. A golden test (`tests/canonical.rs`) pins the exact
//! bytes of fixed values so that any change is noticed.
//!
//! Primitives:
//!
//! | primitive | bytes |
//! |---|---|
//! | `varint` | unsigned LEB128 of a `u64`, minimal form (no trailing `0x80` groups): 7 bits per byte, least significant first, high bit set on every byte but the last |
//! | `i64` | 8 bytes, two's complement, **little-endian** (fixed width: no zig-zag) |
//! | `bool` | one byte, `0x00` false, `0x01` true |
//! | `str` | `varint` byte length, then the UTF-8 bytes |
//! | `bytes` | `varint` length, then the bytes |
//!
//! Terms ([`Term::encode_canonical`]):
//!
//! | tag | node | followed by |
//! |---|---|---|
//! | `0x00` | — | reserved, never emitted |
//! | `0x01` | `Bool` | `bool` |
//! | `0x02` | `Int` | `i64` |
//! | `0x03` | `Str` | `str` |
//! | `0x04` | `Bytes` | `bytes` |
//! | `0x05` | `List` | `varint` n, then n terms |
//! | `0x06` | `Tuple` | `varint` n, then n terms |
//! | `0x07` | `Record` | `varint` n, then n × (`str` key, term), keys strictly ascending by byte order |
//!
//! Patterns ([`Pattern::encode_canonical`]):
//!
//! | tag | node | followed by |
//! |---|---|---|
//! | `0x40` | wildcard `_` | nothing |
//! | `0x41` | binder `x` | `str` name |
//! | `0x42` | binder `x @ p` | `str` name, then pattern `p` |
//! | `0x43` | literal | one term (term encoding above, tags `0x01..=0x07`) |
//! | `0x44` | list `[p, .., rest]` | rest, `varint` n, then n patterns |
//! | `0x45` | tuple `(p, ..)` | `varint` n, then n patterns |
//! | `0x46` | record `{k: p, .., rest}` | rest, `varint` n, then n × (`str` key, pattern), keys strictly ascending |
//! | `0x47` | and `(p & ..)` | `varint` n, then n patterns |
//! | `0x48` | or `(p \| ..)` | `varint` n, then n patterns (order kept: it is significant) |
//! | `0x49` | not `!p` | pattern `p` |
//! | `0x4A` | predicate `?name` | `str` name |
//!
//! where *rest* ([`Rest`]) is one byte `0x00` exact, `0x01` ignore (`..`), or
//! `0x02` bind (`..r`) followed by `str` name.
//!
//! **Predicates encode by name only**, exactly as their `==` and `Hash` do: two predicates with
//! the same name are, by the crate's contract (see [`Predicate`]), the same
//! function. Giving one name to different functions makes distinct patterns encode (and hash)
//! equal.
//!
//! Patterns encode as built: the constructors already fold all-literal lists, tuples and closed
//! records into literals, so `Pattern::list([Pattern::lit(1)])` encodes as the literal `[1]`
//! (tag `0x43`), the same as the equal `Pattern::lit(Term::list([1]))`.
//!
//! # Cost and limits
//!
//! | operation | time | allocation |
//! |---|---|---|
//! | `encode_canonical` | O(encoded size) | appends to `out` (amortised growth; reserve [`encoded_len`](Term::encoded_len) first to grow once) |
//! | decode ([`CanonicalDecoder`]) | O(input length) | the value, plus a heap stack proportional to its depth; never more than the input justifies |
//! | `encoded_len` | O(encoded size) | none for terms nested at most 8 deep (patterns: 4 pattern levels); deeper values use a heap walk stack proportional to depth, never to size |
//!
//! Sizes are *logical*: a term that shares one sub-term `k` times encodes it `k` times, so a
//! term built by repeated self-sharing (`l = [l, l]`, 64 times) has an astronomically large
//! encoding. [`encoded_len`](Term::encoded_len) saturates at `usize::MAX` rather than
//! overflowing; encoding such a value cannot finish (or fit in memory) whatever the format.
//!
//! ```
//! use rhospace_matchers::{Pattern, Term};
//! let mut out = Vec::new();
//! Term::list([1]).encode_canonical(&mut out);
//! assert_eq!(out, [0x05, 0x01, 0x02, 1, 0, 0, 0, 0, 0, 0, 0]);
//!
//! out.clear();
//! Pattern::bind("x").encode_canonical(&mut out);
//! assert_eq!(out, [0x41, 0x01, b'x']);
//! ```

use core::fmt;
use std::sync::Arc;

use crate::pattern::{PTok, Pattern, Predicate, Rest};
use crate::term::{Record, Term, Tok};

// Term tags. 0x00 is reserved.
const T_BOOL: u8 = 0x01;
const T_INT: u8 = 0x02;
const T_STR: u8 = 0x03;
const T_BYTES: u8 = 0x04;
const T_LIST: u8 = 0x05;
const T_TUPLE: u8 = 0x06;
const T_RECORD: u8 = 0x07;

// Pattern tags: a separate range, so no pattern encodes equal to a term.
const P_WILDCARD: u8 = 0x40;
const P_BIND: u8 = 0x41;
const P_BIND_AS: u8 = 0x42;
const P_LIT: u8 = 0x43;
const P_LIST: u8 = 0x44;
const P_TUPLE: u8 = 0x45;
const P_RECORD: u8 = 0x46;
const P_AND: u8 = 0x47;
const P_OR: u8 = 0x48;
const P_NOT: u8 = 0x49;
const P_PRED: u8 = 0x4A;

// Rest markers (a sub-field of list and record patterns, not a node tag).
const REST_EXACT: u8 = 0x00;
const REST_IGNORE: u8 = 0x01;
const REST_BIND: u8 = 0x02;

/// Where encoded bytes go: a buffer, or a counter. Both encoders and both length functions run
/// the same code over a `Sink`, so `encoded_len` equals the encoding's length by construction.
trait Sink {
    fn byte(&mut self, b: u8);
    fn put(&mut self, bytes: &[u8]);

    fn varint(&mut self, mut v: u64) {
        let mut buf = [0u8; 10];
        let mut n = 0;
        loop {
            let low = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                buf[n] = low;
                n += 1;
                break;
            }
            buf[n] = low | 0x80;
            n += 1;
        }
        self.put(&buf[..n]);
    }

    fn len_prefixed(&mut self, bytes: &[u8]) {
        // `usize` is at most 64 bits on every supported target, so this never truncates.
        self.varint(bytes.len() as u64);
        self.put(bytes);
    }
}

impl Sink for Vec<u8> {
    #[inline]
    fn byte(&mut self, b: u8) {
        self.push(b);
    }

    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Counts bytes instead of writing them; saturates instead of overflowing (see the module's
/// note on shared sub-terms).
struct Counter(usize);

impl Sink for Counter {
    #[inline]
    fn byte(&mut self, _: u8) {
        self.0 = self.0.saturating_add(1);
    }

    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.0 = self.0.saturating_add(bytes.len());
    }

    #[inline]
    fn varint(&mut self, v: u64) {
        // Number of 7-bit groups in `v` (at least one).
        let bits = 64 - (v | 1).leading_zeros() as usize;
        self.0 = self.0.saturating_add(bits.div_ceil(7));
    }
}

/// Writes one term token. `len` is the child count of the container just opened; it is only
/// called for `List`, `Tuple` and `Record`.
#[inline]
fn term_tok<S: Sink>(s: &mut S, tok: Tok<'_>, len: impl FnOnce() -> usize) {
    match tok {
        // Containers are count-prefixed, so closers carry no information.
        Tok::EndList | Tok::EndTuple | Tok::EndRecord => {}
        Tok::Bool(b) => {
            s.byte(T_BOOL);
            s.byte(u8::from(b));
        }
        Tok::Int(i) => {
            s.byte(T_INT);
            s.put(&i.to_le_bytes());
        }
        Tok::Str(x) => {
            s.byte(T_STR);
            s.len_prefixed(x.as_bytes());
        }
        Tok::Bytes(x) => {
            s.byte(T_BYTES);
            s.len_prefixed(x);
        }
        Tok::List => {
            s.byte(T_LIST);
            s.varint(len() as u64);
        }
        Tok::Tuple => {
            s.byte(T_TUPLE);
            s.varint(len() as u64);
        }
        Tok::Record => {
            s.byte(T_RECORD);
            s.varint(len() as u64);
        }
        // A record field's key; its value follows. Position makes a tag unnecessary.
        Tok::Key(k) => s.len_prefixed(k.as_bytes()),
    }
}

fn write_term<S: Sink>(t: &Term, s: &mut S) {
    let mut it = t.tokens();
    while let Some(tok) = it.next() {
        term_tok(s, tok, || it.open_len());
    }
}

fn rest<S: Sink>(s: &mut S, r: &Rest) {
    match r {
        Rest::Exact => s.byte(REST_EXACT),
        Rest::Ignore => s.byte(REST_IGNORE),
        Rest::Bind(name) => {
            s.byte(REST_BIND);
            s.len_prefixed(name.as_bytes());
        }
    }
}

fn write_pattern<S: Sink>(p: &Pattern, s: &mut S) {
    let mut it = p.tokens();
    while let Some(tok) = it.next() {
        match tok {
            PTok::End => {}
            PTok::Wildcard => s.byte(P_WILDCARD),
            PTok::Bind(name, sub) => {
                s.byte(if sub { P_BIND_AS } else { P_BIND });
                s.len_prefixed(name.as_bytes());
            }
            PTok::Lit => s.byte(P_LIT),
            PTok::T(t) => term_tok(s, t, || it.open_len()),
            PTok::List(r) => {
                s.byte(P_LIST);
                rest(s, r);
                s.varint(it.open_len() as u64);
            }
            PTok::Tuple => {
                s.byte(P_TUPLE);
                s.varint(it.open_len() as u64);
            }
            PTok::Record(r) => {
                s.byte(P_RECORD);
                rest(s, r);
                s.varint(it.open_len() as u64);
            }
            PTok::Key(k) => s.len_prefixed(k.as_bytes()),
            PTok::And => {
                s.byte(P_AND);
                s.varint(it.open_len() as u64);
            }
            PTok::Or => {
                s.byte(P_OR);
                s.varint(it.open_len() as u64);
            }
            PTok::Not => s.byte(P_NOT),
            PTok::Pred(name) => {
                s.byte(P_PRED);
                s.len_prefixed(name.as_bytes());
            }
        }
    }
}

impl Term {
    /// Appends this term's canonical encoding (see [the format](crate::canonical)) to `out`.
    ///
    /// Equal terms give equal bytes and unequal terms unequal bytes; the encoding is
    /// self-delimiting and stable across versions, platforms and processes. Iterative: safe on
    /// any depth.
    ///
    /// Time: O(encoded size).
    ///
    /// ```
    /// use rhospace_matchers::Term;
    /// let mut a = Vec::new();
    /// Term::record([("b", 2), ("a", 1)]).encode_canonical(&mut a);
    /// let mut b = Vec::new();
    /// Term::record([("a", 1), ("b", 2)]).encode_canonical(&mut b);
    /// assert_eq!(a, b); // field order at construction does not matter
    ///
    /// let mut s = Vec::new();
    /// Term::str("a").encode_canonical(&mut s);
    /// assert_eq!(s, [0x03, 0x01, b'a']); // tag, varint length, UTF-8
    /// ```
    pub fn encode_canonical(&self, out: &mut Vec<u8>) {
        write_term(self, out);
    }

    /// The exact length of [`encode_canonical`](Term::encode_canonical)'s output, computed by
    /// walking the term without building the encoding (no allocation for terms nested at most
    /// 8 deep). Saturates at `usize::MAX` (see the [module notes](crate::canonical)).
    ///
    /// Time: O(size).
    ///
    /// ```
    /// use rhospace_matchers::Term;
    /// let t = Term::list([Term::int(-1), Term::str("hello")]);
    /// let mut out = Vec::with_capacity(t.encoded_len());
    /// t.encode_canonical(&mut out);
    /// assert_eq!(t.encoded_len(), out.len());
    /// assert_eq!(Term::int(7).encoded_len(), 9); // tag + 8 bytes
    /// ```
    pub fn encoded_len(&self) -> usize {
        let mut c = Counter(0);
        write_term(self, &mut c);
        c.0
    }
}

impl Pattern {
    /// Appends this pattern's canonical encoding (see [the format](crate::canonical)) to `out`.
    ///
    /// Equal patterns give equal bytes and unequal patterns unequal bytes (predicates are
    /// identified by name, as in `==`). Pattern tags never collide with term tags, so a literal
    /// pattern does not encode equal to its term. Iterative: safe on any depth.
    ///
    /// Time: O(encoded size).
    ///
    /// ```
    /// use rhospace_matchers::{Pattern, Rest, Term};
    /// let mut out = Vec::new();
    /// Pattern::list_rest([Pattern::wildcard()], Rest::bind("r")).encode_canonical(&mut out);
    /// // list tag, rest = bind "r", one item, wildcard
    /// assert_eq!(out, [0x44, 0x02, 0x01, b'r', 0x01, 0x40]);
    ///
    /// let (mut p, mut t) = (Vec::new(), Vec::new());
    /// Pattern::lit(1).encode_canonical(&mut p);
    /// Term::int(1).encode_canonical(&mut t);
    /// assert_eq!(p[0], 0x43);
    /// assert_eq!(&p[1..], &t[..]); // a literal is its tag followed by the term
    /// ```
    pub fn encode_canonical(&self, out: &mut Vec<u8>) {
        write_pattern(self, out);
    }

    /// The exact length of [`encode_canonical`](Pattern::encode_canonical)'s output, computed
    /// by walking the pattern without building the encoding. Saturates at `usize::MAX`.
    ///
    /// Time: O(size).
    ///
    /// ```
    /// use rhospace_matchers::{Pattern, Term};
    /// let even = Pattern::predicate("even", |t: &Term| t.as_int().is_some_and(|i| i % 2 == 0));
    /// let p = Pattern::not(Pattern::bind("x")) & even;
    /// let mut out = Vec::new();
    /// p.encode_canonical(&mut out);
    /// assert_eq!(p.encoded_len(), out.len());
    /// assert_eq!(Pattern::wildcard().encoded_len(), 1);
    /// ```
    pub fn encoded_len(&self) -> usize {
        let mut c = Counter(0);
        write_pattern(self, &mut c);
        c.0
    }
}

// ---------------------------------------------------------------- decoding

/// Why bytes are not the canonical encoding of a term or pattern (see [the format](crate::canonical)).
///
/// Every variant carries `at`, the byte offset (from the start of the input given to the
/// decoder) where the problem was found. Decoding accepts **only** canonical bytes, so a value
/// that decodes re-encodes to exactly the bytes it was decoded from.
///
/// ```
/// use rhospace_matchers::canonical::CanonicalError;
/// use rhospace_matchers::Term;
/// let err = Term::decode_canonical(&mut &[0x02, 1, 0][..]).unwrap_err();
/// assert_eq!(err, CanonicalError::Truncated { at: 3 });
/// assert_eq!(err.offset(), 3);
/// assert_eq!(err.to_string(), "canonical encoding truncated at byte 3");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CanonicalError {
    /// The input ended in the middle of a value.
    Truncated {
        /// Offset of the first missing byte.
        at: usize,
    },
    /// A byte that is not a tag of the expected kind (term tags for terms and literals,
    /// pattern tags for patterns).
    InvalidTag {
        /// Offset of the tag.
        at: usize,
        /// The byte found.
        tag: u8,
    },
    /// A boolean byte other than `0x00` or `0x01`.
    InvalidBool {
        /// Offset of the byte.
        at: usize,
        /// The byte found.
        byte: u8,
    },
    /// A rest marker other than `0x00`, `0x01` or `0x02`.
    InvalidRest {
        /// Offset of the marker.
        at: usize,
        /// The byte found.
        byte: u8,
    },
    /// A varint with a redundant trailing zero group (the format requires minimal LEB128).
    NonMinimalVarint {
        /// Offset of the varint's first byte.
        at: usize,
    },
    /// A varint that does not fit in a `u64`.
    VarintOverflow {
        /// Offset of the varint's first byte.
        at: usize,
    },
    /// A length or count larger than the bytes left in the input (each element takes at
    /// least one byte), so it cannot be honest; nothing is allocated for it.
    LengthTooLarge {
        /// Offset of the length's varint.
        at: usize,
        /// The length claimed.
        len: u64,
    },
    /// A string or key that is not valid UTF-8.
    InvalidUtf8 {
        /// Offset of the string's first byte (after its length).
        at: usize,
    },
    /// Record keys not strictly ascending (out of order or repeated).
    UnsortedKeys {
        /// Offset of the offending key.
        at: usize,
    },
    /// A list, tuple or closed record pattern whose parts are all literals: the constructors
    /// fold such a shape into a literal, so the encoder never emits it.
    NotCanonical {
        /// Offset of the shape's tag.
        at: usize,
    },
    /// A predicate name the decoder's resolver does not know (or no resolver was given).
    UnknownPredicate {
        /// Offset of the predicate's tag.
        at: usize,
        /// The name found.
        name: Arc<str>,
    },
    /// Nesting deeper than the decoder's [`max_depth`](CanonicalDecoder::max_depth).
    TooDeep {
        /// Offset of the node that went past the limit.
        at: usize,
        /// The limit in force.
        limit: usize,
    },
    /// Bytes left over after a complete value (from the `*_exact` decoders only).
    TrailingBytes {
        /// Offset of the first extra byte.
        at: usize,
    },
}

impl CanonicalError {
    /// The byte offset where decoding failed.
    ///
    /// ```
    /// use rhospace_matchers::Term;
    /// let err = Term::decode_canonical(&mut &[0x09][..]).unwrap_err();
    /// assert_eq!(err.offset(), 0);
    /// ```
    pub fn offset(&self) -> usize {
        match self {
            CanonicalError::Truncated { at }
            | CanonicalError::InvalidTag { at, .. }
            | CanonicalError::InvalidBool { at, .. }
            | CanonicalError::InvalidRest { at, .. }
            | CanonicalError::NonMinimalVarint { at }
            | CanonicalError::VarintOverflow { at }
            | CanonicalError::LengthTooLarge { at, .. }
            | CanonicalError::InvalidUtf8 { at }
            | CanonicalError::UnsortedKeys { at }
            | CanonicalError::NotCanonical { at }
            | CanonicalError::UnknownPredicate { at, .. }
            | CanonicalError::TooDeep { at, .. }
            | CanonicalError::TrailingBytes { at } => *at,
        }
    }
}

impl fmt::Display for CanonicalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CanonicalError::Truncated { at } => {
                write!(f, "canonical encoding truncated at byte {at}")
            }
            CanonicalError::InvalidTag { at, tag } => {
                write!(f, "invalid tag 0x{tag:02x} at byte {at}")
            }
            CanonicalError::InvalidBool { at, byte } => {
                write!(f, "invalid boolean byte 0x{byte:02x} at byte {at}")
            }
            CanonicalError::InvalidRest { at, byte } => {
                write!(f, "invalid rest marker 0x{byte:02x} at byte {at}")
            }
            CanonicalError::NonMinimalVarint { at } => {
                write!(f, "non-minimal varint at byte {at}")
            }
            CanonicalError::VarintOverflow { at } => {
                write!(f, "varint overflows 64 bits at byte {at}")
            }
            CanonicalError::LengthTooLarge { at, len } => {
                write!(f, "length {len} at byte {at} exceeds the remaining input")
            }
            CanonicalError::InvalidUtf8 { at } => write!(f, "invalid UTF-8 at byte {at}"),
            CanonicalError::UnsortedKeys { at } => {
                write!(f, "record key at byte {at} is not strictly ascending")
            }
            CanonicalError::NotCanonical { at } => write!(
                f,
                "all-literal shape at byte {at} must be encoded as a literal"
            ),
            CanonicalError::UnknownPredicate { at, name } => {
                write!(f, "unknown predicate ?{name} at byte {at}")
            }
            CanonicalError::TooDeep { at, limit } => {
                write!(f, "nesting at byte {at} exceeds the depth limit of {limit}")
            }
            CanonicalError::TrailingBytes { at } => {
                write!(f, "trailing bytes after the value, from byte {at}")
            }
        }
    }
}

impl std::error::Error for CanonicalError {}

/// A cursor over the input; every read either advances or reports where it failed.
struct Reader<'b> {
    buf: &'b [u8],
    pos: usize,
}

impl<'b> Reader<'b> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn byte(&mut self) -> Result<u8, CanonicalError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or(CanonicalError::Truncated { at: self.pos })?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'b [u8], CanonicalError> {
        if n > self.remaining() {
            return Err(CanonicalError::Truncated { at: self.buf.len() });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Minimal unsigned LEB128, at most 10 bytes, fitting in 64 bits.
    fn varint(&mut self) -> Result<u64, CanonicalError> {
        let at = self.pos;
        let mut v: u64 = 0;
        for i in 0..10u32 {
            let b = self.byte()?;
            let low = u64::from(b & 0x7f);
            // The tenth byte carries bit 63 only.
            if i == 9 && b > 0x01 {
                return Err(CanonicalError::VarintOverflow { at });
            }
            v |= low << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(CanonicalError::NonMinimalVarint { at });
                }
                return Ok(v);
            }
        }
        Err(CanonicalError::VarintOverflow { at })
    }

    /// A length or count: each counted unit takes at least one byte, so it cannot exceed what
    /// is left.
    fn len(&mut self) -> Result<usize, CanonicalError> {
        let at = self.pos;
        let n = self.varint()?;
        match usize::try_from(n) {
            Ok(n) if n <= self.remaining() => Ok(n),
            _ => Err(CanonicalError::LengthTooLarge { at, len: n }),
        }
    }

    fn str(&mut self) -> Result<Arc<str>, CanonicalError> {
        let n = self.len()?;
        let at = self.pos;
        let bytes = self.take(n)?;
        core::str::from_utf8(bytes)
            .map(Arc::from)
            .map_err(|_| CanonicalError::InvalidUtf8 { at })
    }

    fn bool(&mut self) -> Result<bool, CanonicalError> {
        let at = self.pos;
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            byte => Err(CanonicalError::InvalidBool { at, byte }),
        }
    }

    fn rest(&mut self) -> Result<Rest, CanonicalError> {
        let at = self.pos;
        match self.byte()? {
            REST_EXACT => Ok(Rest::Exact),
            REST_IGNORE => Ok(Rest::Ignore),
            REST_BIND => Ok(Rest::Bind(self.str()?)),
            byte => Err(CanonicalError::InvalidRest { at, byte }),
        }
    }

    /// Reads a record key and checks it sorts strictly after `prev`.
    fn key_after(&mut self, prev: Option<&Arc<str>>) -> Result<Arc<str>, CanonicalError> {
        let at = self.pos;
        let k = self.str()?;
        match prev {
            Some(p) if **p >= *k => Err(CanonicalError::UnsortedKeys { at }),
            _ => Ok(k),
        }
    }
}

/// An open term container awaiting `left` more children.
///
/// Vectors start empty and grow with the children actually decoded, never with the claimed
/// count: a chain of nested containers each claiming the whole input must not allocate
/// quadratically.
enum TFrame {
    Seq {
        tuple: bool,
        items: Vec<Term>,
        left: usize,
    },
    /// The last field holds a placeholder value until its value is decoded.
    Rec {
        fields: Vec<(Arc<str>, Term)>,
        left: usize,
    },
}

/// Decodes one term iteratively. `base` is the nesting depth the term starts below.
fn read_term(r: &mut Reader<'_>, base: usize, max_depth: usize) -> Result<Term, CanonicalError> {
    let mut stack: Vec<TFrame> = Vec::new();
    loop {
        if let Some(TFrame::Rec { fields, .. }) = stack.last_mut() {
            let key = r.key_after(fields.last().map(|(k, _)| k))?;
            fields.push((key, Term::Bool(false)));
        }
        let at = r.pos;
        if base.saturating_add(stack.len()) >= max_depth {
            return Err(CanonicalError::TooDeep {
                at,
                limit: max_depth,
            });
        }
        let mut v = match r.byte()? {
            T_BOOL => Term::Bool(r.bool()?),
            T_INT => {
                let b = r.take(8)?;
                let mut le = [0u8; 8];
                le.copy_from_slice(b);
                Term::Int(i64::from_le_bytes(le))
            }
            T_STR => Term::Str(r.str()?),
            T_BYTES => {
                let n = r.len()?;
                Term::Bytes(Arc::from(r.take(n)?))
            }
            tag @ (T_LIST | T_TUPLE) => {
                let tuple = tag == T_TUPLE;
                let left = r.len()?;
                if left > 0 {
                    stack.push(TFrame::Seq {
                        tuple,
                        items: Vec::new(),
                        left,
                    });
                    continue;
                }
                if tuple {
                    Term::Tuple(Arc::from([]))
                } else {
                    Term::List(Arc::from([]))
                }
            }
            T_RECORD => {
                let left = r.len()?;
                if left > 0 {
                    stack.push(TFrame::Rec {
                        fields: Vec::new(),
                        left,
                    });
                    continue;
                }
                Term::Record(Record::empty())
            }
            tag => return Err(CanonicalError::InvalidTag { at, tag }),
        };
        // Hand the finished value up, closing every container it completes.
        loop {
            match stack.pop() {
                None => return Ok(v),
                Some(TFrame::Seq {
                    tuple,
                    mut items,
                    left,
                }) => {
                    items.push(v);
                    if left > 1 {
                        stack.push(TFrame::Seq {
                            tuple,
                            items,
                            left: left - 1,
                        });
                        break;
                    }
                    v = if tuple {
                        Term::Tuple(items.into())
                    } else {
                        Term::List(items.into())
                    };
                }
                Some(TFrame::Rec { mut fields, left }) => {
                    if let Some(last) = fields.last_mut() {
                        last.1 = v;
                    }
                    if left > 1 {
                        stack.push(TFrame::Rec {
                            fields,
                            left: left - 1,
                        });
                        break;
                    }
                    // Keys were checked strictly ascending as they were read.
                    v = Term::Record(Record::from_sorted(fields.into()));
                }
            }
        }
    }
}

/// Which pattern shape a [`PFrame::Seq`] builds.
enum SeqKind {
    List(Rest),
    Tuple,
    And,
    Or,
}

/// An open pattern node awaiting children. `at` is the offset of its tag (for errors).
enum PFrame {
    BindAs(Arc<str>),
    Not,
    Seq {
        kind: SeqKind,
        items: Vec<Pattern>,
        left: usize,
        at: usize,
    },
    /// The last field holds a placeholder until its pattern is decoded.
    Rec {
        rest: Rest,
        fields: Vec<(Arc<str>, Pattern)>,
        left: usize,
        at: usize,
    },
}

/// Resolves predicate names to predicates while decoding patterns.
type Resolver<'a> = dyn Fn(&str) -> Option<Predicate> + 'a;

fn read_pattern(
    r: &mut Reader<'_>,
    max_depth: usize,
    resolve: Option<&Resolver<'_>>,
) -> Result<Pattern, CanonicalError> {
    let mut stack: Vec<PFrame> = Vec::new();
    loop {
        if let Some(PFrame::Rec { fields, .. }) = stack.last_mut() {
            let key = r.key_after(fields.last().map(|(k, _)| k))?;
            fields.push((key, Pattern::wildcard()));
        }
        let at = r.pos;
        if stack.len() >= max_depth {
            return Err(CanonicalError::TooDeep {
                at,
                limit: max_depth,
            });
        }
        let mut v = match r.byte()? {
            P_WILDCARD => Pattern::wildcard(),
            P_BIND => Pattern::bind(r.str()?),
            P_BIND_AS => {
                stack.push(PFrame::BindAs(r.str()?));
                continue;
            }
            P_LIT => Pattern::lit(read_term(r, stack.len() + 1, max_depth)?),
            tag @ (P_LIST | P_TUPLE | P_AND | P_OR) => {
                let kind = match tag {
                    P_LIST => SeqKind::List(r.rest()?),
                    P_TUPLE => SeqKind::Tuple,
                    P_AND => SeqKind::And,
                    _ => SeqKind::Or,
                };
                let left = r.len()?;
                if left > 0 {
                    stack.push(PFrame::Seq {
                        kind,
                        items: Vec::new(),
                        left,
                        at,
                    });
                    continue;
                }
                build_seq(kind, Vec::new(), at)?
            }
            P_RECORD => {
                let rest = r.rest()?;
                let left = r.len()?;
                if left > 0 {
                    stack.push(PFrame::Rec {
                        rest,
                        fields: Vec::new(),
                        left,
                        at,
                    });
                    continue;
                }
                build_record(rest, Vec::new(), at)?
            }
            P_NOT => {
                stack.push(PFrame::Not);
                continue;
            }
            P_PRED => {
                let name = r.str()?;
                match resolve.and_then(|f| f(&name)) {
                    Some(p) if p.name() == &*name => Pattern::pred(p),
                    _ => return Err(CanonicalError::UnknownPredicate { at, name }),
                }
            }
            tag => return Err(CanonicalError::InvalidTag { at, tag }),
        };
        // Hand the finished pattern up, closing every node it completes.
        loop {
            match stack.pop() {
                None => return Ok(v),
                Some(PFrame::BindAs(name)) => v = Pattern::bind_as(name, v),
                Some(PFrame::Not) => v = Pattern::not(v),
                Some(PFrame::Seq {
                    kind,
                    mut items,
                    left,
                    at,
                }) => {
                    items.push(v);
                    if left > 1 {
                        stack.push(PFrame::Seq {
                            kind,
                            items,
                            left: left - 1,
                            at,
                        });
                        break;
                    }
                    v = build_seq(kind, items, at)?;
                }
                Some(PFrame::Rec {
                    rest,
                    mut fields,
                    left,
                    at,
                }) => {
                    if let Some(last) = fields.last_mut() {
                        last.1 = v;
                    }
                    if left > 1 {
                        stack.push(PFrame::Rec {
                            rest,
                            fields,
                            left: left - 1,
                            at,
                        });
                        break;
                    }
                    v = build_record(rest, fields, at)?;
                }
            }
        }
    }
}

/// Builds a list, tuple, and or or, rejecting the shapes the constructors would fold into a
/// literal (the encoder never emits those, so accepting them would break round-tripping).
fn build_seq(kind: SeqKind, items: Vec<Pattern>, at: usize) -> Result<Pattern, CanonicalError> {
    let all_lit = items.iter().all(|p| p.as_literal().is_some());
    Ok(match kind {
        SeqKind::List(rest) => {
            if rest == Rest::Exact && all_lit {
                return Err(CanonicalError::NotCanonical { at });
            }
            Pattern::list_rest(items, rest)
        }
        SeqKind::Tuple => {
            if all_lit {
                return Err(CanonicalError::NotCanonical { at });
            }
            Pattern::tuple(items)
        }
        SeqKind::And => Pattern::and(items),
        SeqKind::Or => Pattern::or(items),
    })
}

fn build_record(
    rest: Rest,
    fields: Vec<(Arc<str>, Pattern)>,
    at: usize,
) -> Result<Pattern, CanonicalError> {
    if rest == Rest::Exact && fields.iter().all(|(_, p)| p.as_literal().is_some()) {
        return Err(CanonicalError::NotCanonical { at });
    }
    Ok(Pattern::record_rest(fields, rest))
}

/// Decodes canonical bytes back into [`Term`]s and [`Pattern`]s, with limits and a predicate
/// resolver.
///
/// Decoding is the exact inverse of encoding: it accepts **only** canonical bytes (minimal
/// varints, ascending record keys, booleans `0`/`1`, no unfolded all-literal shapes), so
/// whatever decodes re-encodes to the same bytes. It is iterative (any depth on a small stack),
/// allocates in proportion to the input actually decoded (a claimed length larger than the
/// input left is an error before anything is allocated), and never panics on any input.
///
/// * **Depth.** By default unlimited: every value the encoder can produce decodes. Set
///   [`max_depth`](CanonicalDecoder::max_depth) for untrusted input; it counts every nested
///   node of the encoding (pattern nodes, and the term nodes inside literals). Note that a
///   decoded pattern deeper than [`MAX_PATTERN_DEPTH`](crate::MAX_PATTERN_DEPTH) matches
///   nothing, exactly as before it was encoded ([`Pattern::checked`] reports it).
/// * **Predicates** encode by name only, so decoding one needs the function back: give a
///   [`predicates`](CanonicalDecoder::predicates) resolver. Without one, or when it returns
///   `None` or a predicate of another name, decoding fails with
///   [`CanonicalError::UnknownPredicate`].
///
/// Time: O(input length). Allocation: the decoded value, plus a heap stack proportional to its
/// depth.
///
/// ```
/// use rhospace_matchers::canonical::CanonicalDecoder;
/// use rhospace_matchers::{Pattern, Predicate, Term};
/// let even = Predicate::new("even", |t: &Term| t.as_int().is_some_and(|i| i % 2 == 0));
/// let p = Pattern::list([Pattern::bind("x"), Pattern::pred(even.clone())]);
/// let mut bytes = Vec::new();
/// p.encode_canonical(&mut bytes);
///
/// let resolve = |name: &str| (name == "even").then(|| even.clone());
/// let dec = CanonicalDecoder::new().predicates(&resolve);
/// assert_eq!(dec.pattern_exact(&bytes).unwrap(), p);
/// // without a resolver the predicate cannot be rebuilt
/// assert!(CanonicalDecoder::new().pattern_exact(&bytes).is_err());
/// // a depth limit for untrusted input
/// assert!(CanonicalDecoder::new().max_depth(1).pattern_exact(&bytes).is_err());
/// ```
#[derive(Clone, Copy)]
pub struct CanonicalDecoder<'a> {
    /// Nesting limit (`usize::MAX`: none).
    max_depth: usize,
    resolve: Option<&'a Resolver<'a>>,
}

impl fmt::Debug for CanonicalDecoder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CanonicalDecoder")
            .field("max_depth", &self.max_depth)
            .field("predicates", &self.resolve.is_some())
            .finish()
    }
}

impl Default for CanonicalDecoder<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> CanonicalDecoder<'a> {
    /// A decoder with no depth limit and no predicate resolver.
    ///
    /// ```
    /// use rhospace_matchers::{canonical::CanonicalDecoder, Term};
    /// let t = CanonicalDecoder::new().term_exact(&[0x01, 0x01]).unwrap();
    /// assert_eq!(t, Term::bool(true));
    /// ```
    pub const fn new() -> Self {
        CanonicalDecoder {
            max_depth: usize::MAX,
            resolve: None,
        }
    }

    /// Rejects inputs nested more than `limit` levels deep with [`CanonicalError::TooDeep`]
    /// (a scalar is one level; `[1]` is two).
    ///
    /// ```
    /// use rhospace_matchers::{canonical::CanonicalDecoder, Term};
    /// let mut b = Vec::new();
    /// Term::list([Term::list([1])]).encode_canonical(&mut b);
    /// assert!(CanonicalDecoder::new().max_depth(3).term_exact(&b).is_ok());
    /// assert!(CanonicalDecoder::new().max_depth(2).term_exact(&b).is_err());
    /// ```
    pub const fn max_depth(mut self, limit: usize) -> Self {
        self.max_depth = limit;
        self
    }

    /// Uses `resolve` to turn predicate names back into [`Predicate`]s. It must return a
    /// predicate with the name it was asked for.
    ///
    /// ```
    /// use rhospace_matchers::{canonical::CanonicalDecoder, Pattern, Predicate, Term};
    /// let any = Predicate::new("any", |_: &Term| true);
    /// let resolve = |n: &str| (n == "any").then(|| any.clone());
    /// let p = CanonicalDecoder::new().predicates(&resolve).pattern_exact(&[0x4A, 3, b'a', b'n', b'y']);
    /// assert_eq!(p.unwrap(), Pattern::pred(any.clone()));
    /// ```
    pub fn predicates(mut self, resolve: &'a Resolver<'a>) -> Self {
        self.resolve = Some(resolve);
        self
    }

    /// Decodes one term from the front of `*input` and advances `*input` past it. On error
    /// `*input` is left unchanged; offsets in the error count from its start.
    ///
    /// ```
    /// use rhospace_matchers::{canonical::CanonicalDecoder, Term};
    /// let mut input: &[u8] = &[0x01, 0x00, 0xFF];
    /// assert_eq!(CanonicalDecoder::new().term(&mut input).unwrap(), Term::bool(false));
    /// assert_eq!(input, &[0xFF]);
    /// ```
    pub fn term(&self, input: &mut &[u8]) -> Result<Term, CanonicalError> {
        let mut r = Reader { buf: input, pos: 0 };
        let t = read_term(&mut r, 0, self.max_depth)?;
        *input = &input[r.pos..];
        Ok(t)
    }

    /// Decodes one pattern from the front of `*input` and advances `*input` past it. On error
    /// `*input` is left unchanged.
    ///
    /// ```
    /// use rhospace_matchers::{canonical::CanonicalDecoder, Pattern};
    /// let mut input: &[u8] = &[0x40, 0x41, 0x01, b'x'];
    /// let dec = CanonicalDecoder::new();
    /// assert_eq!(dec.pattern(&mut input).unwrap(), Pattern::wildcard());
    /// assert_eq!(dec.pattern(&mut input).unwrap(), Pattern::bind("x"));
    /// assert!(input.is_empty());
    /// ```
    pub fn pattern(&self, input: &mut &[u8]) -> Result<Pattern, CanonicalError> {
        let mut r = Reader { buf: input, pos: 0 };
        let p = read_pattern(&mut r, self.max_depth, self.resolve)?;
        *input = &input[r.pos..];
        Ok(p)
    }

    /// Decodes `bytes` as exactly one term: leftover bytes are
    /// [`CanonicalError::TrailingBytes`].
    ///
    /// ```
    /// use rhospace_matchers::canonical::{CanonicalDecoder, CanonicalError};
    /// let err = CanonicalDecoder::new().term_exact(&[0x01, 0x00, 0x00]).unwrap_err();
    /// assert_eq!(err, CanonicalError::TrailingBytes { at: 2 });
    /// ```
    pub fn term_exact(&self, bytes: &[u8]) -> Result<Term, CanonicalError> {
        let mut input = bytes;
        let t = self.term(&mut input)?;
        exact(bytes, input)?;
        Ok(t)
    }

    /// Decodes `bytes` as exactly one pattern: leftover bytes are
    /// [`CanonicalError::TrailingBytes`].
    ///
    /// ```
    /// use rhospace_matchers::{canonical::CanonicalDecoder, Pattern};
    /// assert_eq!(CanonicalDecoder::new().pattern_exact(&[0x40]).unwrap(), Pattern::wildcard());
    /// assert!(CanonicalDecoder::new().pattern_exact(&[0x40, 0x40]).is_err());
    /// ```
    pub fn pattern_exact(&self, bytes: &[u8]) -> Result<Pattern, CanonicalError> {
        let mut input = bytes;
        let p = self.pattern(&mut input)?;
        exact(bytes, input)?;
        Ok(p)
    }
}

fn exact(all: &[u8], left: &[u8]) -> Result<(), CanonicalError> {
    if left.is_empty() {
        Ok(())
    } else {
        Err(CanonicalError::TrailingBytes {
            at: all.len() - left.len(),
        })
    }
}

impl Term {
    /// Decodes one term from the front of `*input` (the inverse of
    /// [`encode_canonical`](Term::encode_canonical)) and advances `*input` past it; on error
    /// `*input` is unchanged. Accepts only canonical bytes; iterative, no depth limit. See
    /// [`CanonicalDecoder`] for limits and exact decoding.
    ///
    /// Time: O(bytes read).
    ///
    /// ```
    /// use rhospace_matchers::Term;
    /// let t = Term::record([("k", Term::list([1, 2]))]);
    /// let mut bytes = Vec::new();
    /// t.encode_canonical(&mut bytes);
    /// let mut input = &bytes[..];
    /// assert_eq!(Term::decode_canonical(&mut input).unwrap(), t);
    /// assert!(input.is_empty());
    /// ```
    pub fn decode_canonical(input: &mut &[u8]) -> Result<Term, CanonicalError> {
        CanonicalDecoder::new().term(input)
    }
}

impl Pattern {
    /// Decodes one pattern from the front of `*input` (the inverse of
    /// [`encode_canonical`](Pattern::encode_canonical)) and advances `*input` past it; on
    /// error `*input` is unchanged. Predicates cannot be rebuilt from their names here (they
    /// fail with [`CanonicalError::UnknownPredicate`]): use
    /// [`CanonicalDecoder::predicates`] for patterns that contain them.
    ///
    /// Time: O(bytes read).
    ///
    /// ```
    /// use rhospace_matchers::{Pattern, Rest};
    /// let p = Pattern::list_rest([Pattern::bind("h")], Rest::bind("t"));
    /// let mut bytes = Vec::new();
    /// p.encode_canonical(&mut bytes);
    /// assert_eq!(Pattern::decode_canonical(&mut &bytes[..]).unwrap(), p);
    /// ```
    pub fn decode_canonical(input: &mut &[u8]) -> Result<Pattern, CanonicalError> {
        CanonicalDecoder::new().pattern(input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        out.varint(v);
        out
    }

    #[test]
    fn varint_is_minimal_leb128_and_counted_exactly() {
        assert_eq!(varint(0), [0x00]);
        assert_eq!(varint(1), [0x01]);
        assert_eq!(varint(127), [0x7f]);
        assert_eq!(varint(128), [0x80, 0x01]);
        assert_eq!(varint(300), [0xac, 0x02]);
        assert_eq!(varint(16_383), [0xff, 0x7f]);
        assert_eq!(varint(16_384), [0x80, 0x80, 0x01]);
        assert_eq!(varint(u64::MAX).len(), 10);
        assert_eq!(varint(u64::MAX)[9], 0x01);
        for shift in 0..64 {
            for v in [(1u64 << shift) - 1, 1u64 << shift, (1u64 << shift) + 1] {
                let mut c = Counter(0);
                c.varint(v);
                assert_eq!(c.0, varint(v).len(), "{v}");
            }
        }
    }

    #[test]
    fn counter_saturates() {
        let mut c = Counter(usize::MAX - 1);
        c.put(b"abc");
        assert_eq!(c.0, usize::MAX);
        c.byte(0);
        c.varint(u64::MAX);
        assert_eq!(c.0, usize::MAX);
    }
}
