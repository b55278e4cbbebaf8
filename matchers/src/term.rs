//! The structural term type: integers, strings, bytes, booleans, lists, tuples and records.
//!
//! # Representation
//!
//! A [`Term`] is 24 bytes: a tag and either a scalar or one `Arc`. Strings, bytes, lists,
//! tuples and records live behind an `Arc`, so **cloning a term is O(1)** (one reference-count
//! increment) whatever its size: the space stores and hands back terms by cloning them.
//!
//! Records keep their fields **sorted by key, keys unique** (a canonical order fixed at
//! construction), so two records with the same fields are equal, hash and order the same
//! whichever order they were built in.
//!
//! # Unbounded depth, bounded stack
//!
//! Terms may be nested arbitrarily deep (a 100,000-deep list is fine). Every operation this
//! crate implements on them — `Drop`, `PartialEq`, `Ord`, `Hash`, `Debug`/`Display` — walks the
//! term with an explicit heap stack instead of recursion, so none of them can overflow the
//! thread's stack. (A `Drop` of a deep term whose nodes are uniquely owned detaches children
//! onto a heap `Vec` first; shared nodes are just released.)
//!
//! # Ordering
//!
//! The total order is the one a derived `Ord` would give on the logical structure: first by
//! kind (`Bool < Int < Str < Bytes < List < Tuple < Record`), then by value; lists, tuples and
//! records compare lexicographically by element (records by `(key, value)` in key order), a
//! proper prefix sorting first.
//!
//! | operation | cost |
//! |---|---|
//! | `clone` | O(1) |
//! | construct a list/tuple of n items | O(n) |
//! | construct a record of n fields | O(n log n) (sort) |
//! | [`Record::get`] | O(log n) |
//! | `==`, `cmp`, `hash` | O(size); O(1) when both sides share the same `Arc` (`==`) |
//! | `drop` | O(size of the uniquely owned part) |

use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};
use std::sync::Arc;

use smallvec::SmallVec;

/// A structural value: the data a [`StructuralMatch`](crate::StructuralMatch) space stores.
///
/// Build terms with the constructors ([`Term::int`], [`Term::str`], [`Term::list`],
/// [`Term::record`], ...) or `From` (`Term::from(3)`, `Term::from("a")`). Records are
/// a [`Record`], whose fields are kept in canonical (sorted-key) order.
///
/// ```
/// use rhospace_matchers::Term;
/// let a = Term::record([("topic", Term::str("orders")), ("id", Term::int(7))]);
/// let b = Term::record([("id", Term::int(7)), ("topic", Term::str("orders"))]);
/// assert_eq!(a, b); // construction order does not matter
/// assert_eq!(format!("{a:?}"), r#"{"id": 7, "topic": "orders"}"#);
/// let c = a.clone(); // O(1): one reference-count increment
/// assert_eq!(c.field("topic"), Some(&Term::str("orders")));
/// ```
#[derive(Clone)]
pub enum Term {
    /// A boolean.
    Bool(bool),
    /// A 64-bit signed integer.
    Int(i64),
    /// A UTF-8 string.
    Str(Arc<str>),
    /// A byte string.
    Bytes(Arc<[u8]>),
    /// A list of terms (any length; matched by list patterns, optionally with a rest binder).
    List(Arc<[Term]>),
    /// A tuple of terms (fixed arity; matched by tuple patterns of the same arity).
    Tuple(Arc<[Term]>),
    /// A record: named fields in canonical key order.
    Record(Record),
}

/// A record's fields: unique keys, kept sorted by key (byte order of the UTF-8 key).
///
/// Built by [`Record::new`] or [`Term::record`]; when a key is given more than once, the
/// **last** value wins (as when inserting into a map).
///
/// ```
/// use rhospace_matchers::{Record, Term};
/// let r = Record::new([("b", Term::int(2)), ("a", Term::int(1)), ("b", Term::int(3))]);
/// assert_eq!(r.len(), 2);
/// assert_eq!(r.get("b"), Some(&Term::int(3)));
/// let keys: Vec<&str> = r.iter().map(|(k, _)| k).collect();
/// assert_eq!(keys, ["a", "b"]);
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Record(Arc<[(Arc<str>, Term)]>);

impl Record {
    /// Builds a record from `(key, value)` pairs in any order; a repeated key keeps its last
    /// value.
    ///
    /// Time: O(n log n).
    ///
    /// ```
    /// use rhospace_matchers::{Record, Term};
    /// let r = Record::new([("x", 1), ("y", 2)]);
    /// assert_eq!(r.get("y"), Some(&Term::int(2)));
    /// ```
    pub fn new<K, V, I>(fields: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<Arc<str>>,
        V: Into<Term>,
    {
        let mut v: Vec<(Arc<str>, Term)> = fields
            .into_iter()
            .map(|(k, t)| (k.into(), t.into()))
            .collect();
        // Stable sort keeps equal keys in insertion order; keep the last of each run.
        v.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(Arc<str>, Term)> = Vec::with_capacity(v.len());
        for (k, t) in v {
            match out.last_mut() {
                Some(last) if last.0 == k => last.1 = t,
                _ => out.push((k, t)),
            }
        }
        Record(out.into())
    }

    /// The empty record.
    ///
    /// ```
    /// assert!(rhospace_matchers::Record::empty().is_empty());
    /// ```
    pub fn empty() -> Self {
        Record(Arc::new([]))
    }

    /// The value of field `key`, if present.
    ///
    /// Time: O(log n).
    ///
    /// ```
    /// use rhospace_matchers::{Record, Term};
    /// let r = Record::new([("k", true)]);
    /// assert_eq!(r.get("k"), Some(&Term::Bool(true)));
    /// assert_eq!(r.get("z"), None);
    /// ```
    pub fn get(&self, key: &str) -> Option<&Term> {
        self.0
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &self.0[i].1)
    }

    /// Number of fields.
    ///
    /// ```
    /// assert_eq!(rhospace_matchers::Record::new([("a", 1)]).len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the record has no fields.
    ///
    /// ```
    /// assert!(!rhospace_matchers::Record::new([("a", 1)]).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The fields in key order.
    ///
    /// ```
    /// use rhospace_matchers::{Record, Term};
    /// let r = Record::new([("b", 2), ("a", 1)]);
    /// let v: Vec<(&str, &Term)> = r.iter().collect();
    /// assert_eq!(v, [("a", &Term::int(1)), ("b", &Term::int(2))]);
    /// ```
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&str, &Term)> + ExactSizeIterator + '_ {
        self.0.iter().map(|(k, t)| (&**k, t))
    }

    /// The fields as a sorted slice of `(key, value)` pairs.
    ///
    /// ```
    /// let r = rhospace_matchers::Record::new([("a", 1)]);
    /// assert_eq!(&*r.as_slice()[0].0, "a");
    /// ```
    pub fn as_slice(&self) -> &[(Arc<str>, Term)] {
        &self.0
    }

    /// Builds from pairs already sorted by key with unique keys (internal fast path).
    pub(crate) fn from_sorted(fields: Arc<[(Arc<str>, Term)]>) -> Self {
        debug_assert!(fields.windows(2).all(|w| w[0].0 < w[1].0));
        Record(fields)
    }

    pub(crate) fn ptr_eq(&self, other: &Record) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One level here; each value prints iteratively.
        f.write_str("{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{:?}: {v:?}", &**k)?;
        }
        f.write_str("}")
    }
}

impl Term {
    /// An integer term.
    ///
    /// ```
    /// assert_eq!(rhospace_matchers::Term::int(3).as_int(), Some(3));
    /// ```
    pub fn int(i: i64) -> Self {
        Term::Int(i)
    }

    /// A string term.
    ///
    /// ```
    /// assert_eq!(rhospace_matchers::Term::str("a").as_str(), Some("a"));
    /// ```
    pub fn str(s: impl Into<Arc<str>>) -> Self {
        Term::Str(s.into())
    }

    /// A byte-string term.
    ///
    /// ```
    /// assert_eq!(rhospace_matchers::Term::bytes(*b"\x00\x01").as_bytes(), Some(&[0u8, 1][..]));
    /// ```
    pub fn bytes(b: impl Into<Arc<[u8]>>) -> Self {
        Term::Bytes(b.into())
    }

    /// A boolean term.
    ///
    /// ```
    /// assert_eq!(rhospace_matchers::Term::bool(true).as_bool(), Some(true));
    /// ```
    pub fn bool(b: bool) -> Self {
        Term::Bool(b)
    }

    /// A list term from anything convertible to terms.
    ///
    /// Time: O(n).
    ///
    /// ```
    /// use rhospace_matchers::Term;
    /// let l = Term::list([1, 2, 3]);
    /// assert_eq!(l.as_list().map(|s| s.len()), Some(3));
    /// let mixed = Term::list([Term::int(1), Term::str("a")]);
    /// assert_eq!(format!("{mixed:?}"), r#"[1, "a"]"#);
    /// ```
    pub fn list<I>(items: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Term>,
    {
        Term::List(items.into_iter().map(Into::into).collect())
    }

    /// A tuple term from anything convertible to terms.
    ///
    /// Time: O(n).
    ///
    /// ```
    /// use rhospace_matchers::Term;
    /// let t = Term::tuple([Term::int(1), Term::bool(false)]);
    /// assert_eq!(format!("{t:?}"), "(1, false)");
    /// assert_ne!(t, Term::list([Term::int(1), Term::bool(false)]));
    /// ```
    pub fn tuple<I>(items: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Term>,
    {
        Term::Tuple(items.into_iter().map(Into::into).collect())
    }

    /// A record term; see [`Record::new`] (any order, last value of a repeated key wins).
    ///
    /// Time: O(n log n).
    ///
    /// ```
    /// use rhospace_matchers::Term;
    /// let r = Term::record([("topic", Term::str("a")), ("n", Term::int(1))]);
    /// assert_eq!(r.field("n"), Some(&Term::int(1)));
    /// ```
    pub fn record<K, V, I>(fields: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<Arc<str>>,
        V: Into<Term>,
    {
        Term::Record(Record::new(fields))
    }

    /// The integer, if this is one.
    ///
    /// ```
    /// assert_eq!(rhospace_matchers::Term::str("1").as_int(), None);
    /// ```
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Term::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The string, if this is one.
    ///
    /// ```
    /// assert_eq!(rhospace_matchers::Term::from("x").as_str(), Some("x"));
    /// ```
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Term::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The bytes, if this is a byte string.
    ///
    /// ```
    /// assert_eq!(rhospace_matchers::Term::from(&b"hi"[..]).as_bytes(), Some(&b"hi"[..]));
    /// ```
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Term::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    ///
    /// ```
    /// assert_eq!(rhospace_matchers::Term::from(false).as_bool(), Some(false));
    /// ```
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Term::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The items, if this is a list.
    ///
    /// ```
    /// use rhospace_matchers::Term;
    /// assert_eq!(Term::list([7]).as_list(), Some(&[Term::int(7)][..]));
    /// ```
    pub fn as_list(&self) -> Option<&[Term]> {
        match self {
            Term::List(l) => Some(l),
            _ => None,
        }
    }

    /// The items, if this is a tuple.
    ///
    /// ```
    /// use rhospace_matchers::Term;
    /// assert_eq!(Term::tuple([7]).as_tuple(), Some(&[Term::int(7)][..]));
    /// ```
    pub fn as_tuple(&self) -> Option<&[Term]> {
        match self {
            Term::Tuple(l) => Some(l),
            _ => None,
        }
    }

    /// The record, if this is one.
    ///
    /// ```
    /// use rhospace_matchers::Term;
    /// assert_eq!(Term::record([("a", 1)]).as_record().map(|r| r.len()), Some(1));
    /// ```
    pub fn as_record(&self) -> Option<&Record> {
        match self {
            Term::Record(r) => Some(r),
            _ => None,
        }
    }

    /// Field `key` of a record; `None` if absent or if this is not a record.
    ///
    /// Time: O(log n).
    ///
    /// ```
    /// use rhospace_matchers::Term;
    /// assert_eq!(Term::record([("a", 1)]).field("a"), Some(&Term::int(1)));
    /// assert_eq!(Term::int(1).field("a"), None);
    /// ```
    pub fn field(&self, key: &str) -> Option<&Term> {
        self.as_record().and_then(|r| r.get(key))
    }

    /// Whether this is a list, tuple or record (a term with sub-terms).
    ///
    /// ```
    /// use rhospace_matchers::Term;
    /// assert!(Term::list([1]).is_compound());
    /// assert!(!Term::str("abc").is_compound());
    /// ```
    pub fn is_compound(&self) -> bool {
        matches!(self, Term::List(_) | Term::Tuple(_) | Term::Record(_))
    }

    /// The nesting depth: 1 for a scalar or empty container, 1 + the deepest child otherwise.
    /// Computed iteratively, so it is safe on any term.
    ///
    /// Time: O(size).
    ///
    /// ```
    /// use rhospace_matchers::Term;
    /// assert_eq!(Term::int(1).depth(), 1);
    /// assert_eq!(Term::list([Term::list([1])]).depth(), 3);
    /// ```
    pub fn depth(&self) -> usize {
        let mut open = 0usize;
        let mut max = 0usize;
        for tok in self.tokens() {
            match tok {
                Tok::List | Tok::Tuple | Tok::Record => {
                    open += 1;
                    max = max.max(open);
                }
                Tok::EndList | Tok::EndTuple | Tok::EndRecord => open -= 1,
                Tok::Key(_) => {}
                _ => max = max.max(open + 1),
            }
        }
        max
    }

    /// The pre-order token stream of this term (iterative walk).
    pub(crate) fn tokens(&self) -> Tokens<'_> {
        Tokens {
            pending: Some(self),
            stack: SmallVec::new(),
        }
    }

    /// Equality of two compound terms of the same kind, by token stream.
    #[cold]
    fn eq_slow(&self, other: &Term) -> bool {
        self.tokens().eq(other.tokens())
    }
}

/// One token of a term's pre-order walk. The token stream is self-delimiting, so two terms are
/// equal exactly when their streams are, and comparing streams lexicographically is a total
/// order. The variant order fixes that order: closers first (a proper prefix sorts first), then
/// kinds in the documented order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Tok<'a> {
    EndList,
    EndTuple,
    EndRecord,
    Bool(bool),
    Int(i64),
    Str(&'a str),
    Bytes(&'a [u8]),
    List,
    Tuple,
    Record,
    Key(&'a str),
}

enum Frame<'a> {
    List(core::slice::Iter<'a, Term>),
    Tuple(core::slice::Iter<'a, Term>),
    Record(core::slice::Iter<'a, (Arc<str>, Term)>),
}

/// Iterative pre-order walk of a term (explicit stack; never recurses).
pub(crate) struct Tokens<'a> {
    pending: Option<&'a Term>,
    stack: SmallVec<[Frame<'a>; 8]>,
}

impl<'a> Tokens<'a> {
    /// The number of children (items, or fields) of the container whose opening token
    /// (`List`, `Tuple`, `Record`) was returned by the latest `next`. Only meaningful right
    /// after such a token; used by the canonical encoding to length-prefix containers.
    pub(crate) fn open_len(&self) -> usize {
        match self.stack.last() {
            Some(Frame::List(it) | Frame::Tuple(it)) => it.len(),
            Some(Frame::Record(it)) => it.len(),
            None => 0,
        }
    }

    fn open(&mut self, t: &'a Term) -> Tok<'a> {
        match t {
            Term::Bool(b) => Tok::Bool(*b),
            Term::Int(i) => Tok::Int(*i),
            Term::Str(s) => Tok::Str(s),
            Term::Bytes(b) => Tok::Bytes(b),
            Term::List(xs) => {
                self.stack.push(Frame::List(xs.iter()));
                Tok::List
            }
            Term::Tuple(xs) => {
                self.stack.push(Frame::Tuple(xs.iter()));
                Tok::Tuple
            }
            Term::Record(r) => {
                self.stack.push(Frame::Record(r.0.iter()));
                Tok::Record
            }
        }
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Tok<'a>;

    fn next(&mut self) -> Option<Tok<'a>> {
        if let Some(t) = self.pending.take() {
            return Some(self.open(t));
        }
        let end = match self.stack.last_mut()? {
            Frame::List(it) => match it.next() {
                Some(t) => return Some(self.open(t)),
                None => Tok::EndList,
            },
            Frame::Tuple(it) => match it.next() {
                Some(t) => return Some(self.open(t)),
                None => Tok::EndTuple,
            },
            Frame::Record(it) => match it.next() {
                Some((k, v)) => {
                    self.pending = Some(v);
                    return Some(Tok::Key(k));
                }
                None => Tok::EndRecord,
            },
        };
        self.stack.pop();
        Some(end)
    }
}

/// Byte-slice equality that compares slices of at most 16 bytes inline, with two
/// (overlapping) word loads per side, instead of calling `memcmp`: for the short strings that
/// record keys and topics usually are, the call cost more than the comparison (about a quarter
/// of a structural rejection in the `fanout` benchmark). Longer slices use `==`.
///
/// Same answer as `a == b` for all inputs.
#[inline]
pub(crate) fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        8..=16 => word::<8>(a, 0) == word::<8>(b, 0) && word::<8>(a, n - 8) == word::<8>(b, n - 8),
        4..=7 => word::<4>(a, 0) == word::<4>(b, 0) && word::<4>(a, n - 4) == word::<4>(b, n - 4),
        0..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        _ => a == b,
    }
}

/// The `N` bytes of `s` at `at`, if in range (callers ask only in range, so both sides of a
/// comparison are `Some`).
#[inline(always)]
fn word<const N: usize>(s: &[u8], at: usize) -> Option<[u8; N]> {
    s.get(at..at.checked_add(N)?)?.try_into().ok()
}

impl PartialEq for Term {
    #[inline]
    fn eq(&self, other: &Term) -> bool {
        match (self, other) {
            (Term::Int(a), Term::Int(b)) => a == b,
            (Term::Str(a), Term::Str(b)) => bytes_eq(a.as_bytes(), b.as_bytes()),
            (Term::Bool(a), Term::Bool(b)) => a == b,
            (Term::Bytes(a), Term::Bytes(b)) => bytes_eq(a, b),
            (Term::List(a), Term::List(b)) | (Term::Tuple(a), Term::Tuple(b)) => {
                Arc::ptr_eq(a, b) || (a.len() == b.len() && self.eq_slow(other))
            }
            (Term::Record(a), Term::Record(b)) => {
                a.ptr_eq(b) || (a.len() == b.len() && self.eq_slow(other))
            }
            _ => false,
        }
    }
}

impl Eq for Term {}

impl PartialOrd for Term {
    fn partial_cmp(&self, other: &Term) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Term {
    fn cmp(&self, other: &Term) -> Ordering {
        self.tokens().cmp(other.tokens())
    }
}

impl Hash for Term {
    /// Hashes the term's token stream. A leaf's stream is its one token, hashed directly: the
    /// walk's set-up cost more than the hash of a short string (a channel named by a string
    /// is hashed a dozen times per call of a space; ~190 instructions each, callgrind).
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Term::Bool(b) => Tok::Bool(*b).hash(state),
            Term::Int(i) => Tok::Int(*i).hash(state),
            Term::Str(s) => Tok::Str(s).hash(state),
            Term::Bytes(b) => Tok::Bytes(b).hash(state),
            Term::List(_) | Term::Tuple(_) | Term::Record(_) => hash_tokens(self, state),
        }
    }
}

/// Hashes every token of `t`'s stream.
fn hash_tokens<H: Hasher>(t: &Term, state: &mut H) {
    for tok in t.tokens() {
        tok.hash(state);
    }
}

impl Drop for Term {
    #[inline]
    fn drop(&mut self) {
        if self.is_compound() {
            drop_slow(self);
        }
    }
}

/// Moves the compound children of a uniquely owned compound term onto `stack`, leaving leaves
/// in their place, so that dropping `t` afterwards recurses at most one level.
fn detach(t: &mut Term, stack: &mut Vec<Term>) {
    let mut take = |c: &mut Term| {
        if c.is_compound() {
            stack.push(core::mem::replace(c, Term::Bool(false)));
        }
    };
    match t {
        Term::List(xs) | Term::Tuple(xs) => {
            if let Some(xs) = Arc::get_mut(xs) {
                xs.iter_mut().for_each(&mut take);
            }
        }
        Term::Record(r) => {
            if let Some(fs) = Arc::get_mut(&mut r.0) {
                fs.iter_mut().for_each(|(_, c)| take(c));
            }
        }
        _ => {}
    }
}

#[cold]
fn drop_slow(t: &mut Term) {
    // `Vec::new` does not allocate until a compound child is actually detached.
    let mut stack = Vec::new();
    detach(t, &mut stack);
    while let Some(mut c) = stack.pop() {
        detach(&mut c, &mut stack);
        // `c` drops here with only leaf children left: no recursion.
    }
}

impl fmt::Debug for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut p = crate::print::Printer::default();
        for tok in self.tokens() {
            p.term_tok(f, tok)?;
        }
        Ok(())
    }
}

/// Same text as `Debug`: `1`, `"s"`, `b"\x00"`, `true`, `[a, b]`, `(a, b)`, `{"k": v}`.
impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        /// An integer term.
        impl From<$t> for Term {
            fn from(i: $t) -> Term {
                Term::Int(i64::from(i))
            }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<bool> for Term {
    fn from(b: bool) -> Term {
        Term::Bool(b)
    }
}

impl From<&str> for Term {
    fn from(s: &str) -> Term {
        Term::Str(s.into())
    }
}

impl From<String> for Term {
    fn from(s: String) -> Term {
        Term::Str(s.into())
    }
}

impl From<Arc<str>> for Term {
    fn from(s: Arc<str>) -> Term {
        Term::Str(s)
    }
}

/// A byte string.
impl From<&[u8]> for Term {
    fn from(b: &[u8]) -> Term {
        Term::Bytes(b.into())
    }
}

/// A byte string.
impl From<Vec<u8>> for Term {
    fn from(b: Vec<u8>) -> Term {
        Term::Bytes(b.into())
    }
}

/// A list.
impl From<Vec<Term>> for Term {
    fn from(v: Vec<Term>) -> Term {
        Term::List(v.into())
    }
}

impl From<Record> for Term {
    fn from(r: Record) -> Term {
        Term::Record(r)
    }
}

#[cfg(test)]
mod bytes_eq_tests {
    use super::bytes_eq;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn same_answer_as_slice_eq(a in prop::collection::vec(0u8..3, 0..40), flip in any::<prop::sample::Index>(), len_b in 0usize..40) {
            // Equal slices, slices differing in one byte, and slices of other lengths.
            prop_assert!(bytes_eq(&a, &a.clone()));
            if !a.is_empty() {
                let mut b = a.clone();
                let i = flip.index(a.len());
                b[i] ^= 0x80;
                prop_assert!(!bytes_eq(&a, &b));
                prop_assert!(!bytes_eq(&b, &a));
            }
            let b: Vec<u8> = a.iter().copied().cycle().take(len_b).collect();
            prop_assert_eq!(bytes_eq(&a, &b), a == b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;

    fn h(t: &Term) -> u64 {
        let mut s = DefaultHasher::new();
        t.hash(&mut s);
        s.finish()
    }

    /// A term hashes as its token stream, leaves (hashed without the walk) included, so the
    /// hash is a function of the stream, as equality is.
    #[test]
    fn a_term_hashes_as_its_token_stream() {
        let terms = [
            Term::bool(true),
            Term::int(-3),
            Term::str(""),
            Term::str("contract:transfer"),
            Term::bytes(vec![0u8, 255]),
            Term::list([Term::int(1), Term::str("a")]),
            Term::tuple(Vec::<Term>::new()),
            Term::record([("k", Term::bytes(vec![1u8]))]),
        ];
        for t in &terms {
            let mut s = DefaultHasher::new();
            hash_tokens(t, &mut s);
            assert_eq!(h(t), s.finish(), "{t:?}");
        }
        // A leaf and a one-item list of it differ.
        assert_ne!(h(&Term::int(1)), h(&Term::list([Term::int(1)])));
    }

    #[test]
    fn order_matches_structural_lexicographic() {
        let ordered = [
            Term::bool(false),
            Term::bool(true),
            Term::int(-1),
            Term::int(2),
            Term::str("a"),
            Term::str("ab"),
            Term::bytes(*b""),
            Term::list(Vec::<Term>::new()),
            Term::list([1]),
            Term::list([1, 0]),
            Term::list([2]),
            Term::tuple([0]),
            Term::record(Vec::<(&str, Term)>::new()),
            Term::record([("a", 1)]),
            Term::record([("a", 1), ("b", 0)]),
            Term::record([("a", 2)]),
            Term::record([("b", 0)]),
        ];
        for (i, a) in ordered.iter().enumerate() {
            for (j, b) in ordered.iter().enumerate() {
                assert_eq!(a.cmp(b), i.cmp(&j), "{a:?} vs {b:?}");
                assert_eq!(a == b, i == j);
            }
        }
    }

    #[test]
    fn records_canonical() {
        let a = Term::record([("x", 1), ("y", 2), ("z", 3)]);
        let b = Term::record([("z", 3), ("x", 1), ("y", 2)]);
        assert_eq!(a, b);
        assert_eq!(h(&a), h(&b));
        assert_eq!(a.cmp(&b), Ordering::Equal);
        let dup = Term::record([("x", 0), ("y", 2), ("z", 3), ("x", 1)]);
        assert_eq!(dup, a);
    }

    #[test]
    fn list_and_tuple_differ() {
        assert_ne!(Term::list([1]), Term::tuple([1]));
        assert_ne!(h(&Term::list([1])), h(&Term::tuple([1])));
    }

    #[test]
    fn debug_format() {
        let t = Term::record([
            ("b", Term::bytes(*b"\x00a")),
            ("l", Term::list([Term::tuple([1]), Term::tuple([1, 2])])),
            ("e", Term::list(Vec::<Term>::new())),
        ]);
        assert_eq!(
            format!("{t:?}"),
            r#"{"b": b"\x00a", "e": [], "l": [(1,), (1, 2)]}"#
        );
        assert_eq!(t.to_string(), format!("{t:?}"));
    }

    #[test]
    fn depth_counts() {
        assert_eq!(Term::list(Vec::<Term>::new()).depth(), 1);
        assert_eq!(Term::record([("a", Term::list([1]))]).depth(), 3);
    }

    #[test]
    fn size_is_small() {
        assert_eq!(core::mem::size_of::<Term>(), 24);
    }
}
