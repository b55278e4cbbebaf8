//! Structural patterns over [`Term`]s: wildcards, binders, literals, nested shapes and the
//! combinators and / or / not / predicate.
//!
//! Patterns are built with constructors on [`Pattern`]; a pattern is immutable and `Clone` is
//! O(1) (children live behind `Arc`s). Like terms, patterns may be nested arbitrarily deep:
//! `Drop`, `==`, `Ord`, `Hash` and `Debug` are iterative. **Matching**, however, only accepts
//! patterns up to [`MAX_PATTERN_DEPTH`] deep (see [`Pattern::depth`]); a deeper pattern matches
//! nothing. [`Pattern::checked`] reports that as a typed error up front.
//!
//! **Literal folding.** A list, tuple or closed record pattern whose parts are all literals *is*
//! a literal: the constructors fold it into [`Pattern::lit`] of the corresponding term, so
//! `Pattern::list([Pattern::lit(1), Pattern::lit(2)]) == Pattern::lit(Term::list([1, 2]))` and
//! [`Match::exact_key`](crate::Match::exact_key) can index it. Folding never changes what a
//! pattern matches.

use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};
use std::sync::Arc;

use smallvec::SmallVec;

use crate::term::{Term, Tok, Tokens};

/// Patterns deeper than this (see [`Pattern::depth`]) match nothing.
///
/// Matching recurses once per pattern level (never per term level: literals and repeated
/// binders compare terms iteratively), so this bounds the matcher's stack use to a few tens of
/// kilobytes whatever the input.
///
/// ```
/// use rhospace_matchers::{Pattern, MAX_PATTERN_DEPTH};
/// let mut p = Pattern::wildcard();
/// for _ in 1..MAX_PATTERN_DEPTH { p = Pattern::list([p]); }
/// assert_eq!(p.depth(), MAX_PATTERN_DEPTH);
/// assert!(p.clone().checked().is_ok());
/// assert!(Pattern::list([p]).checked().is_err());
/// ```
pub const MAX_PATTERN_DEPTH: usize = 256;

/// A named, shareable test on a term, used by [`Pattern::pred`].
///
/// **Identity is the name.** `Debug`, `==`, `Ord` and `Hash` of a predicate (and of any pattern
/// containing one) look only at its name, so two predicates given the same name **must** be the
/// same function; otherwise patterns that compare equal could match differently. Cloning is
/// O(1).
///
/// The function must be pure and deterministic (see [`Match`](crate::Match)); a panic inside it
/// propagates to the caller of `get`.
///
/// ```
/// use rhospace_matchers::{Predicate, Term};
/// let even = Predicate::new("even", |t: &Term| t.as_int().is_some_and(|i| i % 2 == 0));
/// assert!(even.test(&Term::int(4)));
/// assert!(!even.test(&Term::str("4")));
/// assert_eq!(even.name(), "even");
/// assert_eq!(format!("{even:?}"), "?even");
/// ```
#[derive(Clone)]
pub struct Predicate {
    name: Arc<str>,
    f: Arc<dyn Fn(&Term) -> bool + Send + Sync>,
}

impl Predicate {
    /// A predicate called `name` testing terms with `f`.
    ///
    /// ```
    /// use rhospace_matchers::{Predicate, Term};
    /// let short = Predicate::new("short", |t: &Term| t.as_str().is_some_and(|s| s.len() < 4));
    /// assert!(short.test(&Term::str("abc")));
    /// ```
    pub fn new(
        name: impl Into<Arc<str>>,
        f: impl Fn(&Term) -> bool + Send + Sync + 'static,
    ) -> Self {
        Predicate {
            name: name.into(),
            f: Arc::new(f),
        }
    }

    /// The predicate's name (its identity).
    ///
    /// ```
    /// let p = rhospace_matchers::Predicate::new("any", |_: &rhospace_matchers::Term| true);
    /// assert_eq!(p.name(), "any");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs the test.
    ///
    /// ```
    /// use rhospace_matchers::{Predicate, Term};
    /// assert!(!Predicate::new("none", |_: &Term| false).test(&Term::int(0)));
    /// ```
    pub fn test(&self, t: &Term) -> bool {
        (self.f)(t)
    }
}

impl fmt::Debug for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "?{}", self.name)
    }
}

impl PartialEq for Predicate {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for Predicate {}
impl PartialOrd for Predicate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Predicate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.name.cmp(&other.name)
    }
}
impl Hash for Predicate {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

/// What a list or record pattern does with the elements or fields it does not name.
///
/// ```
/// use rhospace_matchers::{Pattern, Rest, StructuralMatch, Match, Term};
/// let p = Pattern::list_rest([Pattern::bind("head")], Rest::bind("tail"));
/// let b = StructuralMatch.get(&p, &Term::list([1, 2, 3])).unwrap();
/// assert_eq!(b.get("tail"), Some(&Term::list([2, 3])));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rest {
    /// None allowed: a list must have exactly the listed elements, a record exactly the listed
    /// fields.
    Exact,
    /// Any others allowed and ignored (`[a, b, ..]`, `{k: p, ..}`).
    Ignore,
    /// Any others allowed and bound to this name: for a list, the list of remaining elements
    /// (`[a, b, ..rest]`); for a record, the record of the fields not named (`{k: p, ..rest}`).
    Bind(Arc<str>),
}

impl Rest {
    /// `Rest::Bind(name)`.
    ///
    /// ```
    /// use rhospace_matchers::Rest;
    /// assert_eq!(Rest::bind("r"), Rest::Bind("r".into()));
    /// ```
    pub fn bind(name: impl Into<Arc<str>>) -> Self {
        Rest::Bind(name.into())
    }
}

#[derive(Clone)]
pub(crate) enum Node {
    Wildcard,
    Bind(Arc<str>, Option<Arc<Pattern>>),
    Lit(Term),
    List(Arc<[Pattern]>, Rest),
    Tuple(Arc<[Pattern]>),
    Record(Arc<[(Arc<str>, Pattern)]>, Rest),
    And(Arc<[Pattern]>),
    Or(Arc<[Pattern]>),
    Not(Arc<Pattern>),
    Pred(Predicate),
}

/// A structural pattern, matched against [`Term`]s by [`StructuralMatch`](crate::StructuralMatch).
///
/// | constructor | written | matches |
/// |---|---|---|
/// | [`wildcard`](Pattern::wildcard) | `_` | anything, binds nothing |
/// | [`bind`](Pattern::bind) | `x` | anything, binds it to `x` |
/// | [`bind_as`](Pattern::bind_as) | `x @ p` | what `p` matches, binds it to `x` |
/// | [`lit`](Pattern::lit) | `3`, `"a"` | terms equal to the literal |
/// | [`list`](Pattern::list), [`list_rest`](Pattern::list_rest) | `[p, q]`, `[p, ..]`, `[p, ..r]` | lists, element-wise |
/// | [`tuple`](Pattern::tuple) | `(p, q)` | tuples of that arity, element-wise |
/// | [`record`](Pattern::record), [`open_record`](Pattern::open_record), [`record_rest`](Pattern::record_rest) | `{"k": p}`, `{"k": p, ..}`, `{"k": p, ..r}` | records, field-wise |
/// | [`and`](Pattern::and) | `(p & q)` | what every part matches |
/// | [`or`](Pattern::or) | `(p \| q)` | what some part matches |
/// | [`not`](Pattern::not) | `!p` | what `p` does not match |
/// | [`pred`](Pattern::pred) | `?name` | terms the predicate accepts |
///
/// **Binders.** A name bound twice in one pattern must bind equal terms: `[x, x]` matches
/// `[1, 1]`, not `[1, 2]`. Matching runs left to right, depth first (record fields in key
/// order; within one shape its literal parts are checked first, which cannot change the result),
/// and a binder met again is an equality test against its first binding.
/// **`or`** tries its branches in order and commits to the first that matches the sub-term
/// (given the bindings made so far); its bindings are that branch's, and a later failure
/// elsewhere does not retry the other branches. **`not`** keeps no bindings: a name bound
/// inside `not` is visible only inside it (a name bound *before* it is compared as usual, so
/// `[x, !x]` matches two different terms). **`and`** threads bindings through its parts in
/// order.
///
/// Records: [`Pattern::record`] requires exactly the named fields;
/// [`Pattern::open_record`] allows (and ignores) extra fields.
///
/// ```
/// use rhospace_matchers::{Match, Pattern, StructuralMatch, Term};
/// // {"topic": "orders", "id": id, ..}
/// let p = Pattern::open_record([
///     ("topic", Pattern::lit("orders")),
///     ("id", Pattern::bind("id")),
/// ]);
/// let msg = Term::record([("topic", Term::str("orders")), ("id", Term::int(7)), ("ts", Term::int(0))]);
/// let b = StructuralMatch.get(&p, &msg).unwrap();
/// assert_eq!(b.get("id"), Some(&Term::int(7)));
/// assert_eq!(format!("{p:?}"), r#"{"id": id, "topic": "orders", ..}"#);
/// ```
#[derive(Clone)]
pub struct Pattern {
    /// Nesting depth (1 for leaves and literals), saturating.
    depth: u32,
    pub(crate) node: Node,
}

fn depth_of<'a>(children: impl IntoIterator<Item = &'a Pattern>) -> u32 {
    children
        .into_iter()
        .map(|p| p.depth)
        .max()
        .unwrap_or(0)
        .saturating_add(1)
}

impl Pattern {
    fn new(node: Node) -> Self {
        let depth = match &node {
            Node::Wildcard | Node::Lit(_) | Node::Pred(_) | Node::Bind(_, None) => 1,
            Node::Bind(_, Some(p)) | Node::Not(p) => p.depth.saturating_add(1),
            Node::List(ps, _) | Node::Tuple(ps) | Node::And(ps) | Node::Or(ps) => {
                depth_of(ps.iter())
            }
            Node::Record(fs, _) => depth_of(fs.iter().map(|(_, p)| p)),
        };
        Pattern { depth, node }
    }

    /// `_`: matches any term, binds nothing.
    ///
    /// ```
    /// use rhospace_matchers::{Match, Pattern, StructuralMatch, Term};
    /// assert!(StructuralMatch.get(&Pattern::wildcard(), &Term::int(1)).unwrap().is_empty());
    /// ```
    pub fn wildcard() -> Self {
        Pattern {
            depth: 1,
            node: Node::Wildcard,
        }
    }

    /// `name`: matches any term and binds it to `name` (or, if `name` is already bound,
    /// matches only a term equal to that binding).
    ///
    /// ```
    /// use rhospace_matchers::{Match, Pattern, StructuralMatch, Term};
    /// let b = StructuralMatch.get(&Pattern::bind("x"), &Term::int(1)).unwrap();
    /// assert_eq!(b.get("x"), Some(&Term::int(1)));
    /// ```
    pub fn bind(name: impl Into<Arc<str>>) -> Self {
        Pattern::new(Node::Bind(name.into(), None))
    }

    /// `name @ sub`: matches what `sub` matches and binds the whole term to `name` (after
    /// `sub`'s own bindings).
    ///
    /// ```
    /// use rhospace_matchers::{Match, Pattern, StructuralMatch, Term};
    /// let p = Pattern::bind_as("x", Pattern::list([Pattern::wildcard(), Pattern::lit(1)]));
    /// let b = StructuralMatch.get(&p, &Term::list([0, 1])).unwrap();
    /// assert_eq!(b.get("x"), Some(&Term::list([0, 1])));
    /// assert!(StructuralMatch.get(&p, &Term::list([0, 2])).is_none());
    /// ```
    pub fn bind_as(name: impl Into<Arc<str>>, sub: Pattern) -> Self {
        Pattern::new(Node::Bind(name.into(), Some(Arc::new(sub))))
    }

    /// A literal: matches exactly the terms equal to `t`.
    ///
    /// ```
    /// use rhospace_matchers::{Match, Pattern, StructuralMatch, Term};
    /// let p = Pattern::lit("a");
    /// assert!(StructuralMatch.get(&p, &Term::str("a")).is_some());
    /// assert!(StructuralMatch.get(&p, &Term::str("b")).is_none());
    /// assert_eq!(StructuralMatch.exact_key(&p), Some(&Term::str("a")));
    /// ```
    pub fn lit(t: impl Into<Term>) -> Self {
        Pattern {
            depth: 1,
            node: Node::Lit(t.into()),
        }
    }

    /// `[p, q, ...]`: matches a list of exactly these many elements, each matching its
    /// pattern. All-literal lists fold to a literal.
    ///
    /// Time: O(n) (plus folding).
    ///
    /// ```
    /// use rhospace_matchers::{Match, Pattern, StructuralMatch, Term};
    /// let p = Pattern::list([Pattern::bind("a"), Pattern::wildcard()]);
    /// assert!(StructuralMatch.get(&p, &Term::list([1, 2])).is_some());
    /// assert!(StructuralMatch.get(&p, &Term::list([1, 2, 3])).is_none());
    /// ```
    pub fn list(items: impl IntoIterator<Item = Pattern>) -> Self {
        Pattern::list_rest(items, Rest::Exact)
    }

    /// `[p, q, ..]` or `[p, q, ..rest]`: matches a list of at least these many elements whose
    /// first elements match the patterns; see [`Rest`] for the remainder.
    ///
    /// ```
    /// use rhospace_matchers::{Match, Pattern, Rest, StructuralMatch, Term};
    /// let p = Pattern::list_rest([Pattern::lit(1)], Rest::Ignore);
    /// assert!(StructuralMatch.get(&p, &Term::list([1, 2, 3])).is_some());
    /// assert!(StructuralMatch.get(&p, &Term::list([2])).is_none());
    /// assert_eq!(format!("{p:?}"), "[1, ..]");
    /// ```
    pub fn list_rest(items: impl IntoIterator<Item = Pattern>, rest: Rest) -> Self {
        let items: Arc<[Pattern]> = items.into_iter().collect();
        if rest == Rest::Exact {
            if let Some(t) = fold(&items) {
                return Pattern::lit(Term::List(t));
            }
        }
        Pattern::new(Node::List(items, rest))
    }

    /// `(p, q, ...)`: matches a tuple of exactly this arity, element-wise. All-literal tuples
    /// fold to a literal.
    ///
    /// ```
    /// use rhospace_matchers::{Match, Pattern, StructuralMatch, Term};
    /// let p = Pattern::tuple([Pattern::lit("ok"), Pattern::bind("v")]);
    /// let b = StructuralMatch.get(&p, &Term::tuple([Term::str("ok"), Term::int(5)])).unwrap();
    /// assert_eq!(b.get("v"), Some(&Term::int(5)));
    /// assert!(StructuralMatch.get(&p, &Term::list([Term::str("ok"), Term::int(5)])).is_none());
    /// ```
    pub fn tuple(items: impl IntoIterator<Item = Pattern>) -> Self {
        let items: Arc<[Pattern]> = items.into_iter().collect();
        match fold(&items) {
            Some(t) => Pattern::lit(Term::Tuple(t)),
            None => Pattern::new(Node::Tuple(items)),
        }
    }

    /// `{"k": p, ...}`, **closed**: matches a record with exactly these field names, each
    /// field's value matching its pattern; extra fields make it fail. A repeated key keeps its
    /// last pattern. All-literal closed records fold to a literal.
    ///
    /// Time: O(n log n).
    ///
    /// ```
    /// use rhospace_matchers::{Match, Pattern, StructuralMatch, Term};
    /// let p = Pattern::record([("a", Pattern::wildcard())]);
    /// assert!(StructuralMatch.get(&p, &Term::record([("a", 1)])).is_some());
    /// assert!(StructuralMatch.get(&p, &Term::record([("a", 1), ("b", 2)])).is_none());
    /// ```
    pub fn record<K: Into<Arc<str>>>(fields: impl IntoIterator<Item = (K, Pattern)>) -> Self {
        Pattern::record_rest(fields, Rest::Exact)
    }

    /// `{"k": p, ..}`, **open**: like [`record`](Pattern::record) but extra fields in the term
    /// are allowed and ignored.
    ///
    /// ```
    /// use rhospace_matchers::{Match, Pattern, StructuralMatch, Term};
    /// let p = Pattern::open_record([("a", Pattern::lit(1))]);
    /// assert!(StructuralMatch.get(&p, &Term::record([("a", 1), ("b", 2)])).is_some());
    /// assert!(StructuralMatch.get(&p, &Term::record([("b", 2)])).is_none());
    /// ```
    pub fn open_record<K: Into<Arc<str>>>(fields: impl IntoIterator<Item = (K, Pattern)>) -> Self {
        Pattern::record_rest(fields, Rest::Ignore)
    }

    /// A record pattern with an explicit [`Rest`]: `Exact` (closed), `Ignore` (open) or
    /// `Bind(r)` (open, binding the record of the unnamed fields to `r`).
    ///
    /// ```
    /// use rhospace_matchers::{Match, Pattern, Rest, StructuralMatch, Term};
    /// let p = Pattern::record_rest([("a", Pattern::lit(1))], Rest::bind("others"));
    /// let b = StructuralMatch.get(&p, &Term::record([("a", 1), ("b", 2)])).unwrap();
    /// assert_eq!(b.get("others"), Some(&Term::record([("b", 2)])));
    /// ```
    pub fn record_rest<K: Into<Arc<str>>>(
        fields: impl IntoIterator<Item = (K, Pattern)>,
        rest: Rest,
    ) -> Self {
        let mut v: Vec<(Arc<str>, Pattern)> =
            fields.into_iter().map(|(k, p)| (k.into(), p)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        let mut fs: Vec<(Arc<str>, Pattern)> = Vec::with_capacity(v.len());
        for (k, p) in v {
            match fs.last_mut() {
                Some(last) if last.0 == k => last.1 = p,
                _ => fs.push((k, p)),
            }
        }
        if rest == Rest::Exact {
            let lits: Option<Vec<(Arc<str>, Term)>> = fs
                .iter()
                .map(|(k, p)| p.as_literal().map(|t| (k.clone(), t.clone())))
                .collect();
            if let Some(lits) = lits {
                return Pattern::lit(Term::Record(crate::term::Record::from_sorted(lits.into())));
            }
        }
        Pattern::new(Node::Record(fs.into(), rest))
    }

    /// `(p & q & ...)`: matches what every part matches, binding through them in order. The
    /// empty conjunction matches everything.
    ///
    /// ```
    /// use rhospace_matchers::{Match, Pattern, Predicate, StructuralMatch, Term};
    /// let pos = Predicate::new("pos", |t: &Term| t.as_int().is_some_and(|i| i > 0));
    /// let p = Pattern::and([Pattern::bind("n"), Pattern::pred(pos)]);
    /// assert_eq!(StructuralMatch.get(&p, &Term::int(3)).unwrap().get("n"), Some(&Term::int(3)));
    /// assert!(StructuralMatch.get(&p, &Term::int(-3)).is_none());
    /// ```
    pub fn and(parts: impl IntoIterator<Item = Pattern>) -> Self {
        Pattern::new(Node::And(parts.into_iter().collect()))
    }

    /// `(p | q | ...)`: matches what some part matches; the first matching part (in order)
    /// wins and provides the bindings. The empty disjunction matches nothing.
    ///
    /// ```
    /// use rhospace_matchers::{Match, Pattern, StructuralMatch, Term};
    /// let p = Pattern::or([
    ///     Pattern::tuple([Pattern::lit("a"), Pattern::bind("x")]),
    ///     Pattern::tuple([Pattern::wildcard(), Pattern::bind("y")]),
    /// ]);
    /// let b = StructuralMatch.get(&p, &Term::tuple([Term::str("b"), Term::int(1)])).unwrap();
    /// assert_eq!((b.get("x"), b.get("y")), (None, Some(&Term::int(1))));
    /// ```
    pub fn or(parts: impl IntoIterator<Item = Pattern>) -> Self {
        Pattern::new(Node::Or(parts.into_iter().collect()))
    }

    /// `!p`: matches what `p` does not match. Bindings made inside do not escape.
    ///
    /// ```
    /// use rhospace_matchers::{Match, Pattern, StructuralMatch, Term};
    /// let p = Pattern::not(Pattern::lit(0));
    /// assert!(StructuralMatch.get(&p, &Term::int(1)).is_some());
    /// assert!(StructuralMatch.get(&p, &Term::int(0)).is_none());
    /// ```
    // Named after the combinator it builds (and, or, not); `std::ops::Not` is implemented
    // too, so `!p` works as well.
    #[allow(clippy::should_implement_trait)]
    pub fn not(p: Pattern) -> Self {
        Pattern::new(Node::Not(Arc::new(p)))
    }

    /// `?name`: matches the terms the predicate accepts; binds nothing.
    ///
    /// ```
    /// use rhospace_matchers::{Match, Pattern, Predicate, StructuralMatch, Term};
    /// let p = Pattern::pred(Predicate::new("is_str", |t: &Term| t.as_str().is_some()));
    /// assert!(StructuralMatch.get(&p, &Term::str("x")).is_some());
    /// ```
    pub fn pred(p: Predicate) -> Self {
        Pattern {
            depth: 1,
            node: Node::Pred(p),
        }
    }

    /// Shorthand for `Pattern::pred(Predicate::new(name, f))`.
    ///
    /// ```
    /// use rhospace_matchers::{Match, Pattern, StructuralMatch, Term};
    /// let p = Pattern::predicate("big", |t: &Term| t.as_int().is_some_and(|i| i > 100));
    /// assert!(StructuralMatch.get(&p, &Term::int(101)).is_some());
    /// ```
    pub fn predicate(
        name: impl Into<Arc<str>>,
        f: impl Fn(&Term) -> bool + Send + Sync + 'static,
    ) -> Self {
        Pattern::pred(Predicate::new(name, f))
    }

    /// The literal term, when this pattern is a literal (including a folded all-literal list,
    /// tuple or closed record). Such a pattern matches exactly the terms equal to it.
    ///
    /// ```
    /// use rhospace_matchers::{Pattern, Term};
    /// let p = Pattern::list([Pattern::lit(1), Pattern::lit(2)]);
    /// assert_eq!(p.as_literal(), Some(&Term::list([1, 2])));
    /// assert_eq!(Pattern::bind("x").as_literal(), None);
    /// ```
    pub fn as_literal(&self) -> Option<&Term> {
        match &self.node {
            Node::Lit(t) => Some(t),
            _ => None,
        }
    }

    /// Nesting depth: 1 for `_`, binders, literals (however deep the literal term) and
    /// predicates; one more than the deepest part for the others.
    ///
    /// Time: O(1) (kept at construction).
    ///
    /// ```
    /// use rhospace_matchers::Pattern;
    /// assert_eq!(Pattern::list([Pattern::not(Pattern::bind("x"))]).depth(), 3);
    /// ```
    pub fn depth(&self) -> usize {
        self.depth as usize
    }

    /// Accepts the pattern if it can match (`depth() <= MAX_PATTERN_DEPTH`), else hands it back
    /// inside the error.
    ///
    /// ```
    /// use rhospace_matchers::{Pattern, MAX_PATTERN_DEPTH};
    /// let mut p = Pattern::bind("x");
    /// for _ in 0..MAX_PATTERN_DEPTH { p = Pattern::not(p); }
    /// let err = p.checked().unwrap_err();
    /// assert_eq!(err.depth(), MAX_PATTERN_DEPTH + 1);
    /// let _p: Pattern = err.into_inner();
    /// ```
    pub fn checked(self) -> Result<Pattern, PatternTooDeep> {
        if self.depth() <= MAX_PATTERN_DEPTH {
            Ok(self)
        } else {
            Err(PatternTooDeep(self))
        }
    }

    pub(crate) fn tokens(&self) -> PTokens<'_> {
        PTokens {
            term: None,
            pending: Some(self),
            stack: SmallVec::new(),
        }
    }
}

/// Folds a slice of patterns into terms when every one is a literal.
fn fold(items: &[Pattern]) -> Option<Arc<[Term]>> {
    items.iter().map(|p| p.as_literal().cloned()).collect()
}

/// A pattern nested deeper than [`MAX_PATTERN_DEPTH`]; it would match nothing. Returned by
/// [`Pattern::checked`], which hands the pattern back.
///
/// ```
/// use rhospace_matchers::{Pattern, MAX_PATTERN_DEPTH};
/// let mut p = Pattern::wildcard();
/// for _ in 0..MAX_PATTERN_DEPTH { p = Pattern::tuple([p]); }
/// let e = p.checked().unwrap_err();
/// assert_eq!(e.to_string(), "pattern depth 257 exceeds the limit of 256");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatternTooDeep(Pattern);

impl PatternTooDeep {
    /// The rejected pattern's depth.
    ///
    /// ```
    /// # use rhospace_matchers::{Pattern, MAX_PATTERN_DEPTH};
    /// # let mut p = Pattern::wildcard();
    /// # for _ in 0..MAX_PATTERN_DEPTH { p = Pattern::and([p]); }
    /// assert_eq!(p.checked().unwrap_err().depth(), 257);
    /// ```
    pub fn depth(&self) -> usize {
        self.0.depth()
    }

    /// The rejected pattern.
    ///
    /// ```
    /// # use rhospace_matchers::{Pattern, MAX_PATTERN_DEPTH};
    /// # let mut p = Pattern::wildcard();
    /// # for _ in 0..MAX_PATTERN_DEPTH { p = Pattern::or([p]); }
    /// assert_eq!(p.clone().checked().unwrap_err().into_inner(), p);
    /// ```
    pub fn into_inner(self) -> Pattern {
        self.0
    }
}

impl fmt::Display for PatternTooDeep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pattern depth {} exceeds the limit of {MAX_PATTERN_DEPTH}",
            self.depth()
        )
    }
}

impl std::error::Error for PatternTooDeep {}

/// `!p`, the same as [`Pattern::not`].
///
/// ```
/// use rhospace_matchers::Pattern;
/// assert_eq!(!Pattern::lit(0), Pattern::not(Pattern::lit(0)));
/// ```
impl core::ops::Not for Pattern {
    type Output = Pattern;
    fn not(self) -> Pattern {
        Pattern::not(self)
    }
}

/// The parts of an `and` (flattened) or `or` (flattened), or the pattern itself.
fn parts(p: Pattern, or: bool) -> Vec<Pattern> {
    match (&p.node, or) {
        (Node::And(ps), false) | (Node::Or(ps), true) => ps.to_vec(),
        _ => vec![p],
    }
}

/// `p & q`, the same as [`Pattern::and`]; chains flatten (`a & b & c` is one `and` of three
/// parts, which matches the same terms with the same bindings as the nested form).
///
/// ```
/// use rhospace_matchers::Pattern;
/// let (a, b, c) = (Pattern::bind("a"), Pattern::bind("b"), Pattern::bind("c"));
/// assert_eq!(a.clone() & b.clone() & c.clone(), Pattern::and([a, b, c]));
/// ```
impl core::ops::BitAnd for Pattern {
    type Output = Pattern;
    fn bitand(self, rhs: Pattern) -> Pattern {
        let mut ps = parts(self, false);
        ps.extend(parts(rhs, false));
        Pattern::and(ps)
    }
}

/// `p | q`, the same as [`Pattern::or`]; chains flatten (the first matching part still wins,
/// in left-to-right order).
///
/// ```
/// use rhospace_matchers::Pattern;
/// let (a, b) = (Pattern::lit(1), Pattern::lit(2));
/// assert_eq!(a.clone() | b.clone(), Pattern::or([a, b]));
/// ```
impl core::ops::BitOr for Pattern {
    type Output = Pattern;
    fn bitor(self, rhs: Pattern) -> Pattern {
        let mut ps = parts(self, true);
        ps.extend(parts(rhs, true));
        Pattern::or(ps)
    }
}

/// A literal pattern.
impl From<Term> for Pattern {
    fn from(t: Term) -> Pattern {
        Pattern::lit(t)
    }
}

/// One token of a pattern's pre-order walk; self-delimiting like [`Tok`] (a literal is `Lit`
/// followed by its term's tokens; `Bind(_, true)` and `Not` by one pattern; containers end with
/// `End`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum PTok<'a> {
    End,
    Wildcard,
    Bind(&'a str, bool),
    Lit,
    T(Tok<'a>),
    List(&'a Rest),
    Tuple,
    Record(&'a Rest),
    Key(&'a str),
    And,
    Or,
    Not,
    Pred(&'a str),
}

enum PFrame<'a> {
    Items(core::slice::Iter<'a, Pattern>),
    Fields(core::slice::Iter<'a, (Arc<str>, Pattern)>),
}

/// Iterative pre-order walk of a pattern.
pub(crate) struct PTokens<'a> {
    /// The literal being walked, if any (a literal contains no patterns, so one suffices).
    term: Option<Tokens<'a>>,
    pending: Option<&'a Pattern>,
    stack: SmallVec<[PFrame<'a>; 4]>,
}

impl<'a> PTokens<'a> {
    /// The number of children of the container whose opening token was returned by the latest
    /// `next`: patterns of a `List`/`Tuple`/`And`/`Or`, fields of a `Record`, or, for a
    /// `T(List | Tuple | Record)` token inside a literal, that term container's children.
    /// Only meaningful right after such a token; used by the canonical encoding.
    pub(crate) fn open_len(&self) -> usize {
        if let Some(term) = &self.term {
            return term.open_len();
        }
        match self.stack.last() {
            Some(PFrame::Items(it)) => it.len(),
            Some(PFrame::Fields(it)) => it.len(),
            None => 0,
        }
    }

    fn open(&mut self, p: &'a Pattern) -> PTok<'a> {
        match &p.node {
            Node::Wildcard => PTok::Wildcard,
            Node::Bind(name, sub) => {
                self.pending = sub.as_deref();
                PTok::Bind(name, sub.is_some())
            }
            Node::Lit(t) => {
                self.term = Some(t.tokens());
                PTok::Lit
            }
            Node::List(items, rest) => {
                self.stack.push(PFrame::Items(items.iter()));
                PTok::List(rest)
            }
            Node::Tuple(items) => {
                self.stack.push(PFrame::Items(items.iter()));
                PTok::Tuple
            }
            Node::Record(fields, rest) => {
                self.stack.push(PFrame::Fields(fields.iter()));
                PTok::Record(rest)
            }
            Node::And(items) => {
                self.stack.push(PFrame::Items(items.iter()));
                PTok::And
            }
            Node::Or(items) => {
                self.stack.push(PFrame::Items(items.iter()));
                PTok::Or
            }
            Node::Not(sub) => {
                self.pending = Some(sub);
                PTok::Not
            }
            Node::Pred(pred) => PTok::Pred(&pred.name),
        }
    }
}

impl<'a> Iterator for PTokens<'a> {
    type Item = PTok<'a>;

    fn next(&mut self) -> Option<PTok<'a>> {
        if let Some(term) = &mut self.term {
            if let Some(t) = term.next() {
                return Some(PTok::T(t));
            }
            self.term = None;
        }
        if let Some(p) = self.pending.take() {
            return Some(self.open(p));
        }
        match self.stack.last_mut()? {
            PFrame::Items(it) => {
                if let Some(p) = it.next() {
                    return Some(self.open(p));
                }
            }
            PFrame::Fields(it) => {
                if let Some((k, p)) = it.next() {
                    self.pending = Some(p);
                    return Some(PTok::Key(k));
                }
            }
        }
        self.stack.pop();
        Some(PTok::End)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        match (&self.node, &other.node) {
            (Node::Lit(a), Node::Lit(b)) => a == b,
            _ => self.depth == other.depth && self.tokens().eq(other.tokens()),
        }
    }
}

impl Eq for Pattern {}

/// A total order consistent with `==`, for keeping patterns in ordered collections. It is the
/// lexicographic order of the patterns' pre-order walks; no meaning beyond determinism.
impl PartialOrd for Pattern {
    fn partial_cmp(&self, other: &Pattern) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pattern {
    fn cmp(&self, other: &Pattern) -> Ordering {
        self.tokens().cmp(other.tokens())
    }
}

impl Hash for Pattern {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for tok in self.tokens() {
            tok.hash(state);
        }
    }
}

/// `_`, `x`, `x @ p`, literals as terms print, `[p, q, ..r]`, `(p, q)`, `{"k": p, ..}`,
/// `(p & q)`, `(p | q)`, `!p`, `?name`. Iterative: safe on any depth.
impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut pr = crate::print::Printer::default();
        for tok in self.tokens() {
            pr.pattern_tok(f, tok)?;
        }
        Ok(())
    }
}

impl Drop for Pattern {
    #[inline]
    fn drop(&mut self) {
        if self.depth > 1 {
            drop_slow(self);
        }
    }
}

/// Moves the non-leaf children of a uniquely owned pattern node onto `stack`, so dropping the
/// node afterwards recurses at most one level.
fn detach(p: &mut Pattern, stack: &mut Vec<Pattern>) {
    let mut take = |c: &mut Pattern| {
        if c.depth > 1 {
            stack.push(core::mem::replace(c, Pattern::wildcard()));
        }
    };
    match &mut p.node {
        Node::Bind(_, Some(sub)) | Node::Not(sub) => {
            if let Some(sub) = Arc::get_mut(sub) {
                take(sub);
            }
        }
        Node::List(items, _) | Node::Tuple(items) | Node::And(items) | Node::Or(items) => {
            if let Some(items) = Arc::get_mut(items) {
                items.iter_mut().for_each(take);
            }
        }
        Node::Record(fields, _) => {
            if let Some(fields) = Arc::get_mut(fields) {
                fields.iter_mut().for_each(|(_, c)| take(c));
            }
        }
        Node::Wildcard | Node::Bind(_, None) | Node::Lit(_) | Node::Pred(_) => {}
    }
}

#[cold]
fn drop_slow(p: &mut Pattern) {
    let mut stack = Vec::new();
    detach(p, &mut stack);
    while let Some(mut c) = stack.pop() {
        detach(&mut c, &mut stack);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_format() {
        let p = Pattern::list_rest(
            [
                Pattern::bind_as("x", Pattern::list([Pattern::wildcard(), Pattern::lit(1)])),
                Pattern::not(Pattern::or([Pattern::lit("a"), Pattern::bind("y")])),
                Pattern::and([]),
                Pattern::tuple([Pattern::bind("z")]),
                Pattern::predicate("p", |_: &Term| true),
                Pattern::lit(Term::list([1, 2])),
            ],
            Rest::bind("rest"),
        );
        assert_eq!(
            format!("{p:?}"),
            r#"[x @ [_, 1], !("a" | y), (&), (z,), ?p, [1, 2], ..rest]"#
        );
        let r = Pattern::record_rest([("k", Pattern::bind("v"))], Rest::Ignore);
        assert_eq!(format!("{r:?}"), r#"{"k": v, ..}"#);
        let e = Pattern::list_rest([], Rest::Ignore);
        assert_eq!(format!("{e:?}"), "[..]");
    }

    #[test]
    fn folding_and_equality() {
        let a = Pattern::record([("b", Pattern::lit(2)), ("a", Pattern::lit(1))]);
        assert_eq!(a.as_literal(), Some(&Term::record([("a", 1), ("b", 2)])));
        let open = Pattern::open_record([("a", Pattern::lit(1))]);
        assert_eq!(open.as_literal(), None);
        assert_ne!(open, Pattern::record([("a", Pattern::lit(1))]));
        assert_ne!(Pattern::bind("x"), Pattern::bind("y"));
        assert_ne!(
            Pattern::bind("x"),
            Pattern::bind_as("x", Pattern::wildcard())
        );
        let p1 = Pattern::predicate("even", |_: &Term| true);
        let p2 = Pattern::predicate("even", |_: &Term| true);
        assert_eq!(p1, p2);
        assert_eq!(p1.cmp(&p2), Ordering::Equal);
    }

    #[test]
    fn depth_tracking() {
        assert_eq!(Pattern::wildcard().depth(), 1);
        assert_eq!(Pattern::list([]).depth(), 1); // folds to the literal []
        assert_eq!(Pattern::list_rest([], Rest::Ignore).depth(), 1);
        assert_eq!(
            Pattern::bind_as("x", Pattern::tuple([Pattern::bind("y")])).depth(),
            3
        );
    }
}
