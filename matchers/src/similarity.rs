//! Similarity matching: a pattern is a query embedding with a metric, a score threshold and a
//! selection mode (the best datum, or the `k` best); it accepts a datum carrying an embedding
//! when the score passes the threshold, and returns the score.
//!
//! **Scores** come from [`rhospace_vectordb::Query`]: higher is better for every metric (cosine
//! similarity, dot product, *negated* squared L2 distance), and they are bit-for-bit those a
//! [`VectorStore`](rhospace_vectordb::VectorStore) computes for the same rows, so a space that
//! scans an index with the SIMD kernel and a space that calls [`SimilarityMatch::get`] per datum
//! agree on every threshold decision. A datum passes when `score >= threshold`.
//!
//! **Selection.** [`get`](crate::Match::get) judges one datum. Which data a consume takes is the
//! space's business: through [`Match::similarity`] it learns that a
//! pattern selects by score, and on a VectorDB channel it offers candidates best score first
//! (ties: oldest first); with [`Take::TopK`] one position takes the `k` best. On other channel
//! kinds a similarity pattern is an ordinary predicate, tried in the kind's order; on a kind
//! that hands out only its head (a queue, a stack), a top-k takes `k` consecutive items from
//! the head, reaching each one only past items it uses up.
//!
//! **Equality.** Embeddings and thresholds compare by bit pattern (`f32::to_bits`), so `Eq` and
//! `Hash` are lawful (reflexive, consistent) for use as tuple-space data and patterns; `0.0` and
//! `-0.0` are different embeddings.
//!
//! | operation | cost |
//! |---|---|
//! | [`SimilarityPattern::best`] / [`SimilarityPattern::top_k`] | O(d): validation and normalisation |
//! | [`SimilarityMatch::get`] | O(d): row validation plus one SIMD kernel call |
//! | clone of a pattern or [`Embedding`] | O(1): reference-counted |
//!
//! ```
//! use rhospace_matchers::similarity::{EmbeddedDatum, Metric, SimilarityMatch, SimilarityPattern};
//! use rhospace_matchers::Match;
//! let p = SimilarityPattern::best([1.0, 0.0], Metric::Cosine, 0.9).unwrap();
//! let near = EmbeddedDatum::new("near", [1.0, 0.1]);
//! let far = EmbeddedDatum::new("far", [0.0, 1.0]);
//! let score = SimilarityMatch.get(&p, &near).unwrap();
//! assert!(score > 0.99);
//! assert_eq!(SimilarityMatch.get(&p, &far), None);
//! ```

use std::fmt;
use std::hash::{Hash, Hasher};
use std::num::NonZeroUsize;
use std::ops::Deref;
use std::sync::Arc;

use crate::Match;
pub use rhospace_vectordb::{Metric, Query, VectorError};

/// A shared, immutable embedding (`Arc<[f32]>`) with bitwise `Eq` and `Hash`.
///
/// Clone is O(1). Any float values may be held; validation happens where an embedding is used
/// (a pattern constructor, a VectorDB produce).
///
/// ```
/// use rhospace_matchers::similarity::Embedding;
/// let e = Embedding::from(vec![1.0, 2.0]);
/// assert_eq!(&e[..], &[1.0, 2.0]);
/// assert_eq!(e, Embedding::from([1.0, 2.0]));
/// assert_ne!(Embedding::from([0.0]), Embedding::from([-0.0]));
/// ```
#[derive(Clone)]
pub struct Embedding(Arc<[f32]>);

impl Embedding {
    /// Wraps the components.
    ///
    /// ```
    /// # use rhospace_matchers::similarity::Embedding;
    /// assert_eq!(Embedding::new(vec![0.5f32]).len(), 1);
    /// ```
    pub fn new(components: impl Into<Arc<[f32]>>) -> Self {
        Embedding(components.into())
    }

    /// The components.
    ///
    /// ```
    /// # use rhospace_matchers::similarity::Embedding;
    /// assert_eq!(Embedding::from([3.0]).as_slice(), &[3.0]);
    /// ```
    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }

    /// The shared buffer.
    ///
    /// ```
    /// # use rhospace_matchers::similarity::Embedding;
    /// let e = Embedding::from([3.0]);
    /// assert_eq!(e.as_arc().len(), 1);
    /// ```
    pub fn as_arc(&self) -> &Arc<[f32]> {
        &self.0
    }
}

impl Deref for Embedding {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl PartialEq for Embedding {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(other.0.iter())
                .all(|(a, b)| a.to_bits() == b.to_bits())
    }
}

impl Eq for Embedding {}

impl Hash for Embedding {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.0.len());
        for x in self.0.iter() {
            state.write_u32(x.to_bits());
        }
    }
}

impl fmt::Debug for Embedding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

impl From<Vec<f32>> for Embedding {
    fn from(v: Vec<f32>) -> Self {
        Embedding(v.into())
    }
}

impl From<&[f32]> for Embedding {
    fn from(v: &[f32]) -> Self {
        Embedding(v.into())
    }
}

impl<const N: usize> From<[f32; N]> for Embedding {
    fn from(v: [f32; N]) -> Self {
        Embedding(Arc::new(v))
    }
}

impl From<Arc<[f32]>> for Embedding {
    fn from(v: Arc<[f32]>) -> Self {
        Embedding(v)
    }
}

/// A datum that carries an embedding.
///
/// Implemented for [`Embedding`], [`EmbeddedDatum`], pairs `(T, Embedding)`, and the plain
/// vector shapes `Vec<f32>`, `Box<[f32]>`, `Arc<[f32]>` (usable with the matcher directly;
/// tuple-space data also need `Eq + Hash`, which only the first three have).
///
/// ```
/// use rhospace_matchers::similarity::{Embedded, Embedding};
/// let d = ("doc-7", Embedding::from([0.5, 0.5]));
/// assert_eq!(d.embedding(), &[0.5, 0.5]);
/// ```
pub trait Embedded {
    /// The embedding.
    fn embedding(&self) -> &[f32];
}

impl Embedded for Embedding {
    fn embedding(&self) -> &[f32] {
        &self.0
    }
}

impl Embedded for Vec<f32> {
    fn embedding(&self) -> &[f32] {
        self
    }
}

impl Embedded for Box<[f32]> {
    fn embedding(&self) -> &[f32] {
        self
    }
}

impl Embedded for Arc<[f32]> {
    fn embedding(&self) -> &[f32] {
        self
    }
}

impl<T> Embedded for (T, Embedding) {
    fn embedding(&self) -> &[f32] {
        &self.1
    }
}

impl<T> Embedded for EmbeddedDatum<T> {
    fn embedding(&self) -> &[f32] {
        &self.embedding
    }
}

/// A value with its embedding: the usual datum of a VectorDB channel.
///
/// ```
/// use rhospace_matchers::similarity::{Embedded, EmbeddedDatum};
/// let d = EmbeddedDatum::new(42u32, [1.0, 0.0]);
/// assert_eq!((d.value, d.embedding()), (42, &[1.0, 0.0][..]));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EmbeddedDatum<T> {
    /// The payload.
    pub value: T,
    /// Its embedding.
    pub embedding: Embedding,
}

impl<T> EmbeddedDatum<T> {
    /// Pairs a value with an embedding.
    ///
    /// ```
    /// # use rhospace_matchers::similarity::EmbeddedDatum;
    /// let d = EmbeddedDatum::new("x", vec![0.25f32]);
    /// assert_eq!(&d.embedding[..], &[0.25]);
    /// ```
    pub fn new(value: T, embedding: impl Into<Embedding>) -> Self {
        EmbeddedDatum {
            value,
            embedding: embedding.into(),
        }
    }
}

/// How many data a similarity pattern takes at its position.
///
/// ```
/// use rhospace_matchers::similarity::Take;
/// use std::num::NonZeroUsize;
/// assert_eq!(Take::Best.count(), 1);
/// assert_eq!(Take::TopK(NonZeroUsize::new(3).unwrap()).count(), 3);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Take {
    /// The best-scoring datum above the threshold.
    Best,
    /// The `k` best-scoring data above the threshold, as one COMM. The position is satisfied
    /// only when `k` usable data pass the threshold.
    ///
    /// In a join, the group is the `k` best of the data that the *earlier* positions leave
    /// usable, and the space does not try another group when a later position then finds
    /// nothing. So the order of the positions can decide whether a join fires: `[top-2, p]`
    /// waits where `[p, top-2]` fires when `p` accepts only the best datum and three data
    /// pass the top-2's threshold.
    TopK(NonZeroUsize),
}

impl Take {
    /// Number of data taken: 1 for `Best`, `k` for `TopK`.
    ///
    /// ```
    /// assert_eq!(rhospace_matchers::similarity::Take::Best.count(), 1);
    /// ```
    pub fn count(self) -> usize {
        match self {
            Take::Best => 1,
            Take::TopK(k) => k.get(),
        }
    }
}

/// Why a similarity pattern could not be built.
///
/// ```
/// use rhospace_matchers::similarity::{Metric, PatternErrorKind, SimilarityPattern, VectorError};
/// let e = SimilarityPattern::best([0.0, 0.0], Metric::Cosine, 0.5).unwrap_err();
/// assert_eq!(e.kind(), PatternErrorKind::Query(VectorError::ZeroVector));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PatternErrorKind {
    /// The query embedding is invalid: empty (`WrongDimension { expected: 1, found: 0 }`), of
    /// the wrong dimension (from [`SimilarityPattern::with_dim`]), with a NaN or infinite
    /// component, or all zeros under cosine.
    Query(VectorError),
    /// A top-k pattern with `k = 0`.
    ZeroK,
    /// The threshold is NaN.
    NanThreshold,
}

impl fmt::Display for PatternErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatternErrorKind::Query(e) => write!(f, "invalid query embedding: {e}"),
            PatternErrorKind::ZeroK => f.write_str("a top-k pattern needs k >= 1"),
            PatternErrorKind::NanThreshold => f.write_str("the score threshold is NaN"),
        }
    }
}

/// A refused similarity pattern; hands the query embedding back.
///
/// ```
/// use rhospace_matchers::similarity::{Metric, PatternErrorKind, SimilarityPattern};
/// let e = SimilarityPattern::top_k([1.0], Metric::Dot, 0.0, 0).unwrap_err();
/// assert_eq!(e.kind(), PatternErrorKind::ZeroK);
/// assert_eq!(&e.into_inner()[..], &[1.0]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatternError {
    kind: PatternErrorKind,
    query: Embedding,
}

impl PatternError {
    /// Why it was refused.
    ///
    /// ```
    /// # use rhospace_matchers::similarity::{Metric, PatternErrorKind, SimilarityPattern};
    /// let e = SimilarityPattern::best([1.0], Metric::Dot, f32::NAN).unwrap_err();
    /// assert_eq!(e.kind(), PatternErrorKind::NanThreshold);
    /// ```
    pub fn kind(&self) -> PatternErrorKind {
        self.kind
    }

    /// The query embedding, handed back.
    ///
    /// ```
    /// # use rhospace_matchers::similarity::{Metric, SimilarityPattern};
    /// let e = SimilarityPattern::best([f32::INFINITY], Metric::Dot, 0.0).unwrap_err();
    /// assert_eq!(e.into_inner()[0], f32::INFINITY);
    /// ```
    pub fn into_inner(self) -> Embedding {
        self.query
    }
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "similarity pattern refused: {}", self.kind)
    }
}

impl std::error::Error for PatternError {}

/// A similarity pattern: query embedding, metric, threshold, and how many data it takes.
///
/// Build it with [`best`](Self::best) or [`top_k`](Self::top_k); both validate. Clone is O(1).
/// `Eq` and `Hash` compare the query and threshold bitwise, the metric and the mode.
///
/// ```
/// use rhospace_matchers::similarity::{Metric, SimilarityPattern, Take};
/// let p = SimilarityPattern::top_k([1.0, 2.0], Metric::L2Squared, -4.0, 3).unwrap();
/// assert_eq!((p.dim(), p.metric(), p.threshold(), p.take().count()), (2, Metric::L2Squared, -4.0, 3));
/// // -‖q − v‖² = -(1 + 1) = -2 >= -4
/// assert_eq!(p.score(&[2.0, 1.0]), Some(-2.0));
/// assert!(p.accepts(-2.0));
/// ```
#[derive(Clone)]
pub struct SimilarityPattern {
    query: Embedding,
    prepared: Arc<Query>,
    threshold: f32,
    take: Take,
}

impl SimilarityPattern {
    /// A pattern that takes the best-scoring datum with `score >= threshold`. A threshold of
    /// `f32::NEG_INFINITY` accepts every datum whose embedding can be scored (see
    /// [`score`](Self::score)): the right dimension, finite components, and non-zero under
    /// cosine.
    ///
    /// Errors: an empty query, a NaN or infinite component, an all-zero query under cosine, a
    /// NaN threshold.
    ///
    /// ```
    /// use rhospace_matchers::similarity::{Embedding, Metric, SimilarityMatch, SimilarityPattern};
    /// use rhospace_matchers::Match;
    /// assert!(SimilarityPattern::best([0.0, 1.0], Metric::Cosine, 0.8).is_ok());
    /// assert!(SimilarityPattern::best(Vec::<f32>::new(), Metric::Dot, 0.0).is_err());
    ///
    /// let any = SimilarityPattern::best([0.0, 1.0], Metric::Cosine, f32::NEG_INFINITY).unwrap();
    /// assert!(SimilarityMatch.get(&any, &Embedding::from([-1.0, 0.0])).is_some());
    /// // Of the right dimension, but not scorable:
    /// assert!(SimilarityMatch.get(&any, &Embedding::from([f32::NAN, 1.0])).is_none());
    /// assert!(SimilarityMatch.get(&any, &Embedding::from([0.0, 0.0])).is_none());
    /// ```
    pub fn best(
        query: impl Into<Embedding>,
        metric: Metric,
        threshold: f32,
    ) -> Result<Self, PatternError> {
        Self::build(query.into(), metric, threshold, Take::Best)
    }

    /// A pattern that takes the `k` best-scoring data with `score >= threshold`, as one COMM;
    /// the position is satisfied only when `k` such data are available. Errors as
    /// [`best`](Self::best), and `ZeroK` when `k = 0`.
    ///
    /// ```
    /// use rhospace_matchers::similarity::{Metric, PatternErrorKind, SimilarityPattern};
    /// assert_eq!(SimilarityPattern::top_k([1.0], Metric::Dot, 0.0, 2).unwrap().take().count(), 2);
    /// let e = SimilarityPattern::top_k([1.0], Metric::Dot, 0.0, 0).unwrap_err();
    /// assert_eq!(e.kind(), PatternErrorKind::ZeroK);
    /// ```
    pub fn top_k(
        query: impl Into<Embedding>,
        metric: Metric,
        threshold: f32,
        k: usize,
    ) -> Result<Self, PatternError> {
        let query = query.into();
        match NonZeroUsize::new(k) {
            Some(k) => Self::build(query, metric, threshold, Take::TopK(k)),
            None => Err(PatternError {
                kind: PatternErrorKind::ZeroK,
                query,
            }),
        }
    }

    fn build(
        query: Embedding,
        metric: Metric,
        threshold: f32,
        take: Take,
    ) -> Result<Self, PatternError> {
        if threshold.is_nan() {
            return Err(PatternError {
                kind: PatternErrorKind::NanThreshold,
                query,
            });
        }
        match Query::new(&query, metric) {
            Ok(prepared) => Ok(SimilarityPattern {
                query,
                prepared: Arc::new(prepared),
                threshold,
                take,
            }),
            Err(e) => Err(PatternError {
                kind: PatternErrorKind::Query(e),
                query,
            }),
        }
    }

    /// Checks that the query has dimension `dim` (for instance a VectorDB channel's), handing
    /// the pattern back unchanged when it has.
    ///
    /// ```
    /// use rhospace_matchers::similarity::{Metric, PatternErrorKind, SimilarityPattern, VectorError};
    /// let p = SimilarityPattern::best([1.0, 0.0], Metric::Dot, 0.0).unwrap();
    /// let p = p.with_dim(2).unwrap();
    /// assert_eq!(
    ///     p.with_dim(3).unwrap_err().kind(),
    ///     PatternErrorKind::Query(VectorError::WrongDimension { expected: 3, found: 2 })
    /// );
    /// ```
    pub fn with_dim(self, dim: usize) -> Result<Self, PatternError> {
        if self.dim() == dim {
            Ok(self)
        } else {
            Err(PatternError {
                kind: PatternErrorKind::Query(VectorError::WrongDimension {
                    expected: dim,
                    found: self.dim(),
                }),
                query: self.query,
            })
        }
    }

    /// The query embedding, as given.
    ///
    /// ```
    /// # use rhospace_matchers::similarity::{Metric, SimilarityPattern};
    /// let p = SimilarityPattern::best([3.0, 4.0], Metric::Cosine, 0.0).unwrap();
    /// assert_eq!(&p.query()[..], &[3.0, 4.0]);
    /// ```
    pub fn query(&self) -> &Embedding {
        &self.query
    }

    /// The prepared query (normalised for cosine) that scores rows.
    ///
    /// ```
    /// # use rhospace_matchers::similarity::{Metric, SimilarityPattern};
    /// let p = SimilarityPattern::best([3.0, 4.0], Metric::Cosine, 0.0).unwrap();
    /// assert_eq!(p.prepared().dim(), 2);
    /// ```
    pub fn prepared(&self) -> &Query {
        &self.prepared
    }

    /// The dimension of the query.
    ///
    /// ```
    /// # use rhospace_matchers::similarity::{Metric, SimilarityPattern};
    /// assert_eq!(SimilarityPattern::best([1.0; 5], Metric::Dot, 0.0).unwrap().dim(), 5);
    /// ```
    pub fn dim(&self) -> usize {
        self.query.len()
    }

    /// The metric.
    ///
    /// ```
    /// # use rhospace_matchers::similarity::{Metric, SimilarityPattern};
    /// assert_eq!(SimilarityPattern::best([1.0], Metric::Dot, 0.0).unwrap().metric(), Metric::Dot);
    /// ```
    pub fn metric(&self) -> Metric {
        self.prepared.metric()
    }

    /// The threshold: a datum passes when `score >= threshold`.
    ///
    /// ```
    /// # use rhospace_matchers::similarity::{Metric, SimilarityPattern};
    /// assert_eq!(SimilarityPattern::best([1.0], Metric::Dot, 0.25).unwrap().threshold(), 0.25);
    /// ```
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// How many data the pattern takes.
    ///
    /// ```
    /// # use rhospace_matchers::similarity::{Metric, SimilarityPattern, Take};
    /// assert_eq!(SimilarityPattern::best([1.0], Metric::Dot, 0.0).unwrap().take(), Take::Best);
    /// ```
    pub fn take(&self) -> Take {
        self.take
    }

    /// Score of an embedding against the query (higher is better), or `None` when the embedding
    /// cannot be scored: another dimension, a NaN or infinite component, all zeros under cosine.
    /// The threshold is not applied.
    ///
    /// ```
    /// # use rhospace_matchers::similarity::{Metric, SimilarityPattern};
    /// let p = SimilarityPattern::best([1.0, 2.0], Metric::Dot, 100.0).unwrap();
    /// assert_eq!(p.score(&[1.0, 1.0]), Some(3.0));
    /// assert_eq!(p.score(&[1.0]), None);
    /// ```
    #[inline]
    pub fn score(&self, embedding: &[f32]) -> Option<f32> {
        self.prepared.score(embedding).ok()
    }

    /// Whether a score passes the threshold (`score >= threshold`).
    ///
    /// ```
    /// # use rhospace_matchers::similarity::{Metric, SimilarityPattern};
    /// let p = SimilarityPattern::best([1.0], Metric::Dot, 0.5).unwrap();
    /// assert!(p.accepts(0.5) && !p.accepts(0.49));
    /// ```
    #[inline]
    pub fn accepts(&self, score: f32) -> bool {
        score >= self.threshold
    }
}

impl PartialEq for SimilarityPattern {
    fn eq(&self, other: &Self) -> bool {
        self.query == other.query
            && self.metric() == other.metric()
            && self.threshold.to_bits() == other.threshold.to_bits()
            && self.take == other.take
    }
}

impl Eq for SimilarityPattern {}

impl Hash for SimilarityPattern {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.query.hash(state);
        self.metric().hash(state);
        state.write_u32(self.threshold.to_bits());
        self.take.hash(state);
    }
}

impl fmt::Debug for SimilarityPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimilarityPattern")
            .field("query", &self.query)
            .field("metric", &self.metric())
            .field("threshold", &self.threshold)
            .field("take", &self.take)
            .finish()
    }
}

/// The similarity matcher: accepts a datum whose embedding scores at least the pattern's
/// threshold, and returns the score.
///
/// It tells the space, through [`Match::similarity`] and [`Match::embedding`], that its patterns
/// select by score and where a datum's embedding is, so a VectorDB channel answers with its
/// index instead of calling `get` per datum.
///
/// Time: O(d) per `get`.
///
/// ```
/// use rhospace_matchers::similarity::{Embedding, Metric, SimilarityMatch, SimilarityPattern};
/// use rhospace_matchers::Match;
/// let p = SimilarityPattern::best([1.0, 1.0], Metric::Dot, 2.0).unwrap();
/// assert_eq!(SimilarityMatch.get(&p, &Embedding::from([1.0, 1.0])), Some(2.0));
/// assert_eq!(SimilarityMatch.get(&p, &Embedding::from([1.0, 0.5])), None);
/// assert_eq!(SimilarityMatch.get(&p, &Embedding::from([1.0, 1.0, 1.0])), None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SimilarityMatch;

impl<A: Embedded> Match<SimilarityPattern, A> for SimilarityMatch {
    type Output = f32;

    #[inline]
    fn get(&self, pattern: &SimilarityPattern, datum: &A) -> Option<f32> {
        let score = pattern.score(datum.embedding())?;
        pattern.accepts(score).then_some(score)
    }

    fn similarity<'p>(&self, pattern: &'p SimilarityPattern) -> Option<&'p SimilarityPattern> {
        Some(pattern)
    }

    fn embedding<'a>(&self, datum: &'a A) -> Option<&'a [f32]> {
        Some(datum.embedding())
    }
}
