//! A validated query usable outside a [`VectorStore`](crate::VectorStore): one vector scored
//! against rows kept elsewhere (a matcher's datum, another crate's index).
//!
//! **Guarantee.** [`Query::score`] and [`Query::score_row`] compute exactly (bit for bit) what a
//! [`VectorStore`](crate::VectorStore) of the same metric computes for the same row: the same
//! query normalisation, the same stored inverse norm, the same kernel, the same clamping and
//! NaN handling. Code that mixes a store scan with per-row scoring therefore never disagrees on
//! a threshold or on an order.

use crate::error::VectorError;
use crate::store::{prepare, score_vec, validate, Metric, Prepared};

/// A query vector that passed validation, prepared for scoring (unit length for cosine).
///
/// Time: O(dim) to build; O(dim) per scored row.
///
/// ```
/// use rhospace_vectordb::{Metric, Query, VectorStore};
/// let q = Query::new(&[1.0, 0.0], Metric::Cosine).unwrap();
/// let mut store = VectorStore::new(2, Metric::Cosine).unwrap();
/// let id = store.insert(&[3.0, 4.0]).unwrap();
/// // The same score, bit for bit, as the store's own.
/// assert_eq!(q.score(&[3.0, 4.0]), Ok(store.score(&[1.0, 0.0], id).unwrap().unwrap()));
/// ```
#[derive(Clone, Debug)]
pub struct Query {
    metric: Metric,
    prepared: Prepared,
}

impl Query {
    /// Validates `query` (its length is the dimension; it must be non-empty, finite, and
    /// non-zero under cosine) and prepares it.
    ///
    /// An empty query is reported as `WrongDimension { expected: 1, found: 0 }`.
    ///
    /// ```
    /// use rhospace_vectordb::{Metric, Query, VectorError};
    /// assert_eq!(Query::new(&[0.0, 0.0], Metric::Cosine).err(), Some(VectorError::ZeroVector));
    /// assert!(Query::new(&[0.0, 0.0], Metric::Dot).is_ok());
    /// ```
    pub fn new(query: &[f32], metric: Metric) -> Result<Self, VectorError> {
        if query.is_empty() {
            return Err(VectorError::WrongDimension {
                expected: 1,
                found: 0,
            });
        }
        Ok(Query {
            metric,
            prepared: prepare(query, query.len(), metric)?,
        })
    }

    /// The dimension (the query's length).
    ///
    /// ```
    /// # use rhospace_vectordb::{Metric, Query};
    /// assert_eq!(Query::new(&[1.0, 2.0, 3.0], Metric::Dot).unwrap().dim(), 3);
    /// ```
    pub fn dim(&self) -> usize {
        self.prepared.v.len()
    }

    /// The metric it scores with.
    ///
    /// ```
    /// # use rhospace_vectordb::{Metric, Query};
    /// assert_eq!(Query::new(&[1.0], Metric::L2Squared).unwrap().metric(), Metric::L2Squared);
    /// ```
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// Validates a row for this query's dimension and metric (the checks an insert makes) and
    /// returns the auxiliary value [`score_row`](Self::score_row) needs: its inverse norm.
    ///
    /// ```
    /// use rhospace_vectordb::{Metric, Query, VectorError};
    /// let q = Query::new(&[1.0, 0.0], Metric::Cosine).unwrap();
    /// assert_eq!(q.check_row(&[3.0, 4.0]), Ok(0.2));
    /// assert_eq!(q.check_row(&[1.0]), Err(VectorError::WrongDimension { expected: 2, found: 1 }));
    /// ```
    pub fn check_row(&self, row: &[f32]) -> Result<f32, VectorError> {
        check_row(row, self.dim(), self.metric)
    }

    /// Score of a row (higher is better, see [`Metric`]), after validating it as
    /// [`check_row`](Self::check_row) does.
    ///
    /// ```
    /// use rhospace_vectordb::{Metric, Query, VectorError};
    /// let q = Query::new(&[1.0, 2.0], Metric::Dot).unwrap();
    /// assert_eq!(q.score(&[3.0, 4.0]), Ok(11.0));
    /// assert_eq!(q.score(&[f32::NAN, 0.0]), Err(VectorError::NonFinite { index: 0 }));
    /// ```
    pub fn score(&self, row: &[f32]) -> Result<f32, VectorError> {
        let inv_norm = self.check_row(row)?;
        Ok(self.score_row(row, inv_norm))
    }

    /// Score of a row already validated by [`check_row`](Self::check_row), which returned
    /// `inv_norm` (used by cosine only). For a row of another length, or an `inv_norm` not from
    /// `check_row`, the result is meaningless (possibly `-inf`) but nothing panics.
    ///
    /// ```
    /// use rhospace_vectordb::{Metric, Query};
    /// let q = Query::new(&[1.0, 0.0], Metric::Cosine).unwrap();
    /// let row = [3.0, 4.0];
    /// let inv = q.check_row(&row).unwrap();
    /// assert_eq!(q.score_row(&row, inv), q.score(&row).unwrap());
    /// ```
    #[inline]
    pub fn score_row(&self, row: &[f32], inv_norm: f32) -> f32 {
        if row.len() != self.dim() {
            return f32::NEG_INFINITY;
        }
        score_vec(self.metric, &self.prepared, row, inv_norm)
    }
}

/// Validates a row of dimension `dim` for `metric` (length, finite components, non-zero under
/// cosine) and returns its inverse norm `1/‖v‖` as a store keeps it (`inf` for a zero row under
/// the other metrics).
///
/// ```
/// use rhospace_vectordb::{check_row, Metric, VectorError};
/// assert_eq!(check_row(&[0.0, 2.0], 2, Metric::Cosine), Ok(0.5));
/// assert_eq!(check_row(&[0.0, 0.0], 2, Metric::Cosine), Err(VectorError::ZeroVector));
/// assert_eq!(check_row(&[0.0, 0.0], 2, Metric::Dot), Ok(f32::INFINITY));
/// ```
pub fn check_row(row: &[f32], dim: usize, metric: Metric) -> Result<f32, VectorError> {
    let norm = validate(row, dim, metric)?;
    Ok((1.0 / norm) as f32)
}
