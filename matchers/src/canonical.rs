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
//! the same name are, by the crate's contract (see [`Predicate`](crate::Predicate)), the same
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

use crate::pattern::{PTok, Pattern, Rest};
use crate::term::{Term, Tok};

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
