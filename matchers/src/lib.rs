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
}
