//! Typed errors, one small enum per operation. None carries a `String`.
//!
//! Vectors are taken by reference (`&[f32]`), so a rejected vector is never consumed: the caller
//! still holds it, and the errors report *where* it failed (dimension, component index) instead of
//! handing it back.

use std::fmt;

/// Why a vector (stored or query) was rejected.
///
/// ```
/// use rhospace_vectordb::{Metric, VectorError, VectorStore};
/// let mut store = VectorStore::new(2, Metric::Cosine).unwrap();
/// assert_eq!(
///     store.insert(&[1.0, f32::NAN]),
///     Err(VectorError::NonFinite { index: 1 })
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VectorError {
    /// The vector's length is not the store's dimension.
    WrongDimension {
        /// The store's dimension.
        expected: usize,
        /// The vector's length.
        found: usize,
    },
    /// A component is NaN or infinite (the first such index is reported).
    NonFinite {
        /// Index of the first non-finite component.
        index: usize,
    },
    /// The metric is cosine, which is undefined for the vector: it is all zeros, or its norm is
    /// below about `2.9e-39` (2⁻¹²⁸), so small that the inverse norm a cosine row keeps
    /// (`1/‖v‖` as an `f32`) would be infinite.
    ///
    /// ```
    /// use rhospace_vectordb::{Metric, Query, VectorError};
    /// assert_eq!(Query::new(&[1e-39, 0.0], Metric::Cosine).err(), Some(VectorError::ZeroVector));
    /// assert!(Query::new(&[3e-39, 0.0], Metric::Cosine).is_ok());
    /// assert!(Query::new(&[1e-39, 0.0], Metric::Dot).is_ok());
    /// ```
    ZeroVector,
}

impl fmt::Display for VectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VectorError::WrongDimension { expected, found } => write!(
                f,
                "vector has {found} components, the store's dimension is {expected}"
            ),
            VectorError::NonFinite { index } => {
                write!(f, "vector component {index} is NaN or infinite")
            }
            VectorError::ZeroVector => write!(f, "zero vector has no cosine similarity"),
        }
    }
}

impl std::error::Error for VectorError {}

/// Why a store could not be created.
///
/// ```
/// use rhospace_vectordb::{ConfigError, Metric, VectorStore};
/// assert_eq!(VectorStore::new(0, Metric::Dot).err(), Some(ConfigError::ZeroDimension));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// A dimension of 0 was requested.
    ZeroDimension,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ZeroDimension => write!(f, "a vector store needs dimension >= 1"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Why a query was rejected. A rejected query reads nothing and changes nothing.
///
/// ```
/// use rhospace_vectordb::{Metric, QueryError, VectorStore};
/// let store = VectorStore::new(2, Metric::Dot).unwrap();
/// assert_eq!(store.top_k(&[1.0, 0.0], 0), Err(QueryError::ZeroK));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueryError {
    /// The (first offending) query vector is invalid.
    Vector {
        /// Position of the query in a batch (0 for single queries).
        query: usize,
        /// What is wrong with it.
        error: VectorError,
    },
    /// `k` was 0.
    ZeroK,
    /// A flat batch of queries has a length that is not a multiple of the dimension.
    RaggedBatch {
        /// Length of the flat buffer.
        len: usize,
        /// The store's dimension.
        dim: usize,
    },
    /// The score threshold is NaN.
    NanThreshold,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::Vector { query, error } => write!(f, "query {query}: {error}"),
            QueryError::ZeroK => write!(f, "top-k query with k = 0"),
            QueryError::RaggedBatch { len, dim } => write!(
                f,
                "batch of {len} floats is not a whole number of {dim}-dimensional queries"
            ),
            QueryError::NanThreshold => write!(f, "score threshold is NaN"),
        }
    }
}

impl std::error::Error for QueryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            QueryError::Vector { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl QueryError {
    pub(crate) fn single(error: VectorError) -> Self {
        QueryError::Vector { query: 0, error }
    }
}
