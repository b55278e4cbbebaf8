//! Pluggable pattern matchers for the rhospace tuple space.
//!
//! A [`Match`] implementation decides whether a pattern `P` accepts a datum `A` and, if so,
//! returns a match result: bindings, a transformed value, a score. The space is generic over the
//! matcher, so the same space code serves exact equality, structural wildcard patterns and
//! similarity search.
//!
//! | matcher | pattern | result | cost |
//! |---|---|---|---|
//! | [`ExactMatch`] | a value of the datum's type | `()` | one `Eq`; hash-indexed in the space |
//! | [`StructuralMatch`] | a [`Pattern`] over [`Term`]s | [`Bindings`] | one walk of the pattern; literal patterns hash-indexed via [`Match::exact_key`] |
//! | [`SimilarityMatch`] | a [`SimilarityPattern`] (query embedding, metric, threshold, best or top-k) | the score, `f32` | one SIMD kernel call; VectorDB channels rank with their index via [`Match::similarity`] |
//!
//! The structural matcher's data are [`Term`]s (integers, strings, bytes, booleans, lists,
//! tuples, records in canonical key order); its patterns have wildcards, binders (a repeated
//! binder must bind equal terms), literals, nested shapes with rest binders, and the
//! combinators and / or / not / predicate. See [`structural`] for its algorithm and cost table.
//!
//! Both have a stable, injective **canonical binary encoding** ([`Term::encode_canonical`],
//! [`Pattern::encode_canonical`]), the bytes the space hashes for state roots and event ids;
//! see [`canonical`] for the format.
//!
//! ```
//! use rhospace_matchers::{ExactMatch, Match};
//! assert_eq!(ExactMatch.get(&5u32, &5u32), Some(()));
//! assert_eq!(ExactMatch.get(&5u32, &6u32), None);
//!
//! use rhospace_matchers::{Pattern, StructuralMatch, Term};
//! // [x, _, x]
//! let p = Pattern::list([Pattern::bind("x"), Pattern::wildcard(), Pattern::bind("x")]);
//! let b = StructuralMatch.get(&p, &Term::list([7, 0, 7])).unwrap();
//! assert_eq!(b.get("x"), Some(&Term::int(7)));
//! assert!(StructuralMatch.get(&p, &Term::list([7, 0, 8])).is_none());
//! ```
#![deny(unsafe_code)]

pub mod canonical;
mod exact;
pub mod pattern;
mod print;
pub mod similarity;
pub mod structural;
pub mod term;

pub use exact::ExactMatch;
pub use pattern::{Pattern, PatternTooDeep, Predicate, Rest, MAX_PATTERN_DEPTH};
pub use similarity::{Embedded, EmbeddedDatum, Embedding, SimilarityMatch, SimilarityPattern};
pub use structural::{Bindings, StructuralMatch};
pub use term::{Record, Term};

/// A pattern matcher: decides whether `pattern` accepts `datum`.
///
/// Implementations must be **pure and deterministic**: the same pattern and datum give the same
/// answer on every call, thread and machine. The space relies on this for complete join matching
/// (it may call `get` more than once for one pair) and for replay.
///
/// ```
/// use rhospace_matchers::Match;
/// /// Accepts any datum greater than the pattern; returns the difference.
/// struct Above;
/// impl Match<i64, i64> for Above {
///     type Output = i64;
///     fn get(&self, pattern: &i64, datum: &i64) -> Option<i64> {
///         (datum > pattern).then(|| datum - pattern)
///     }
/// }
/// assert_eq!(Above.get(&3, &10), Some(7));
/// assert_eq!(Above.get(&3, &1), None);
/// ```
pub trait Match<P, A>: Send + Sync {
    /// What a successful match yields (bindings, a transformed value, a score).
    type Output: Clone + core::fmt::Debug + Send + Sync;

    /// Matches `datum` against `pattern`; `None` when it does not match.
    fn get(&self, pattern: &P, datum: &A) -> Option<Self::Output>;

    /// When `pattern` accepts exactly the data equal to one value, returns that value.
    ///
    /// The space uses it to find candidates through a hash index instead of scanning every
    /// stored datum. Contract: if this returns `Some(k)`, then `get(pattern, a).is_some()` holds
    /// exactly when `a == k`. The default, `None`, always scans, which is always correct.
    fn exact_key<'p>(&self, pattern: &'p P) -> Option<&'p A> {
        let _ = pattern;
        None
    }

    /// When `pattern` selects data by similarity score, returns its [`SimilarityPattern`].
    ///
    /// A VectorDB channel uses it to rank candidates with its embedding index (best score
    /// first, ties oldest first) instead of calling [`get`](Self::get) per datum, and to take
    /// `k` data at one position for a top-k pattern. Contract: if this returns `Some(s)`, then
    /// `get(pattern, a).is_some()` holds exactly when [`embedding`](Self::embedding) gives
    /// `Some(e)` for `a` and `s.score(e)` is `Some(x)` with `s.accepts(x)`. The default, `None`,
    /// makes the space treat the pattern as an ordinary predicate, which is always correct.
    ///
    /// ```
    /// use rhospace_matchers::similarity::{Embedding, Metric, SimilarityMatch, SimilarityPattern};
    /// use rhospace_matchers::{ExactMatch, Match};
    /// let p = SimilarityPattern::best([1.0], Metric::Dot, 0.0).unwrap();
    /// let m: &dyn Match<SimilarityPattern, Embedding, Output = f32> = &SimilarityMatch;
    /// assert!(m.similarity(&p).is_some());
    /// assert!(Match::<u8, u8>::similarity(&ExactMatch, &1).is_none());
    /// ```
    fn similarity<'p>(&self, pattern: &'p P) -> Option<&'p SimilarityPattern> {
        let _ = pattern;
        None
    }

    /// The embedding `datum` carries, if any: what a VectorDB channel validates and indexes
    /// when the datum is produced. The default, `None`, means the matcher knows no embedding;
    /// a VectorDB channel then refuses the datum.
    ///
    /// ```
    /// use rhospace_matchers::similarity::{EmbeddedDatum, SimilarityMatch, SimilarityPattern};
    /// use rhospace_matchers::{ExactMatch, Match};
    /// let d = EmbeddedDatum::new(1u8, [0.5, 0.5]);
    /// assert_eq!(Match::<SimilarityPattern, _>::embedding(&SimilarityMatch, &d), Some(&[0.5, 0.5][..]));
    /// assert_eq!(Match::<u8, u8>::embedding(&ExactMatch, &1), None);
    /// ```
    fn embedding<'a>(&self, datum: &'a A) -> Option<&'a [f32]> {
        let _ = datum;
        None
    }
}
