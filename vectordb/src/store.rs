//! The vector store: chunked contiguous storage, stable ids, tombstones, single-query search.
//!
//! # Layout
//!
//! Vectors live in *chunks* of at most [`CHUNK_CAPACITY`] vectors. A chunk holds one flat
//! `Vec<f32>` of `len × dim` floats (row-major, no per-vector allocation), the ids of its rows
//! (strictly increasing), a live flag per row, one per-metric auxiliary float per row (the inverse
//! norm for cosine, the squared norm otherwise) and an i8 *shadow* of each row (one flat
//! `Vec<i8>` of codes plus a scale and quantisation-error bounds per row; see
//! [`crate::prefilter`]), kept in step by insert and compaction. Chunks sit behind [`Arc`]:
//! cloning a store copies one pointer per chunk and shares all vector data; a later write copies only the chunk it touches, and only if that chunk
//! is still shared (copy-on-write through [`Arc::make_mut`]). Appends always go to the last chunk.
//!
//! # Ids and tombstones
//!
//! Ids are assigned from a counter in insertion order, starting at 0, and never reused (not
//! after removal, not after compaction). Removal only clears the row's live flag (a tombstone);
//! [`VectorStore::compact`] drops tombstoned rows and empty chunks. Rows keep their relative order,
//! so ids stay sorted across the whole store and lookup by id is a binary search.

use crate::error::{ConfigError, QueryError, VectorError};
use crate::kernels::{dot_f32_unchecked_len, dot_i8_unchecked_len, l2sq_f32_unchecked_len, widen};
use crate::prefilter::{
    norm_upper, shadow_row, RowShadow, PREFILTER_MIN_ROWS, PREFILTER_ROWS_PER_K,
};
use crate::topk::{Hit, TopK};
use std::fmt;
use std::sync::Arc;

/// Maximum number of vectors in one chunk: the unit of sharing and of copy-on-write.
///
/// A write to a shared chunk copies at most `CHUNK_CAPACITY × dim` floats.
///
/// ```
/// assert_eq!(rhospace_vectordb::CHUNK_CAPACITY, 1024);
/// ```
pub const CHUNK_CAPACITY: usize = 1024;

/// Stable identifier of a stored vector: assigned in insertion order from 0, never reused.
///
/// ```
/// use rhospace_vectordb::{Metric, VectorId, VectorStore};
/// let mut store = VectorStore::new(1, Metric::Dot).unwrap();
/// assert_eq!(store.insert(&[1.0]), Ok(VectorId(0)));
/// assert_eq!(store.insert(&[2.0]), Ok(VectorId(1)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VectorId(pub u64);

impl fmt::Display for VectorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// How a store scores a query against a stored vector. Every score is "higher is better".
///
/// | metric | score | range |
/// |---|---|---|
/// | `Cosine` | cosine similarity `q·v / (‖q‖‖v‖)` | `[-1, 1]` |
/// | `Dot` | dot product `q·v` | any value; `±∞` only beyond f32's range |
/// | `L2Squared` | **negated** squared Euclidean distance `-‖q − v‖²` | `(-∞, 0]` |
///
/// A threshold search keeps hits with `score >= threshold`; for `L2Squared` pass
/// `-(max_distance²)`.
///
/// ```
/// use rhospace_vectordb::{Metric, VectorStore};
/// let mut store = VectorStore::new(2, Metric::L2Squared).unwrap();
/// let id = store.insert(&[3.0, 4.0]).unwrap();
/// assert_eq!(store.score(&[0.0, 0.0], id), Ok(Some(-25.0)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Cosine similarity; zero vectors are rejected.
    Cosine,
    /// Inner product.
    Dot,
    /// Negated squared Euclidean distance.
    L2Squared,
}

/// Which exact path a single-query search takes. Every path returns the same hits, in the same
/// order, with the same score bits; only the cost differs.
///
/// ```
/// use rhospace_vectordb::Scan;
/// assert_eq!(Scan::default(), Scan::Auto);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Scan {
    /// [`Scan::Pruned`] from [`PREFILTER_MIN_ROWS`] live rows (for top-k also
    /// `k · `[`PREFILTER_ROWS_PER_K`]` <= rows`), [`Scan::Full`] below.
    #[default]
    Auto,
    /// Score every live row in f32.
    Full,
    /// The exact i8 pre-filter (see the [crate docs](crate)): bound every row from its i8 shadow,
    /// rescore in f32 only the rows the bounds cannot exclude. For a dimension above 65,536 this
    /// is [`Scan::Full`].
    Pruned,
}

/// One chunk of rows. See the module docs for the layout.
#[derive(Clone, Debug)]
pub(crate) struct Chunk {
    /// Ids of the rows, strictly increasing, also across consecutive chunks.
    pub(crate) ids: Vec<u64>,
    /// `live[i]` is false once row `i` is removed (a tombstone).
    pub(crate) live: Vec<bool>,
    /// Number of `false` entries in `live`.
    pub(crate) dead: usize,
    /// `ids.len() × dim` floats, row-major.
    pub(crate) data: Vec<f32>,
    /// Per row: `1/‖v‖` for cosine, `‖v‖²` for the other metrics.
    pub(crate) aux: Vec<f32>,
    /// `ids.len() × dim` i8 codes, row-major: row `i` is `≈ shadow[i].scale · code` of the
    /// row's scan form (`v · aux` for cosine, `v` otherwise). Derived from `data` at insert.
    pub(crate) codes: Vec<i8>,
    /// Per row: the code scale and the rigorous error bounds of [`crate::prefilter`].
    pub(crate) shadow: Vec<RowShadow>,
    /// An upper bound on `‖v‖₂` of every row the chunk holds (it only grows on insert and is
    /// kept by compaction, so it stays an upper bound); lets the pre-filter check once per chunk
    /// that no kernel can overflow.
    pub(crate) max_norm: f32,
}

impl Chunk {
    fn new() -> Self {
        Chunk {
            ids: Vec::new(),
            live: Vec::new(),
            dead: 0,
            data: Vec::new(),
            aux: Vec::new(),
            codes: Vec::new(),
            shadow: Vec::new(),
            max_norm: 0.0,
        }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    #[inline]
    pub(crate) fn row(&self, i: usize, dim: usize) -> &[f32] {
        &self.data[i * dim..(i + 1) * dim]
    }
}

/// A query that passed validation, in the form the scan needs.
#[derive(Clone, Debug)]
pub(crate) struct Prepared {
    /// The query; unit length for cosine.
    pub(crate) v: Vec<f32>,
    /// `‖q‖²` of the vector in `v`.
    pub(crate) norm_sq: f32,
}

/// `Σ vᵢ²` in f64 (each square is exact in f64), summed in 8 interleaved partial sums combined in
/// a fixed order: deterministic everywhere, and 8 independent add chains instead of one (a
/// single chain cost ~0.6 µs per 384-dim query, 8 % of a 100-query batch).
#[inline]
pub(crate) fn sum_sq_f64(v: &[f32]) -> f64 {
    let mut acc = [0.0f64; 8];
    let mut it = v.chunks_exact(8);
    for c in &mut it {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x as f64 * x as f64;
        }
    }
    for (a, &x) in acc.iter_mut().zip(it.remainder()) {
        *a += x as f64 * x as f64;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// Validation shared by inserts and queries. Returns `‖v‖` computed in f64.
pub(crate) fn validate(v: &[f32], dim: usize, metric: Metric) -> Result<f64, VectorError> {
    if v.len() != dim {
        return Err(VectorError::WrongDimension {
            expected: dim,
            found: v.len(),
        });
    }
    // One pass over the components: Σ vᵢ² in f64 is finite exactly when every component is (a
    // finite f32 squared is below 2²⁵⁶, so only more than 2⁷⁶⁸ of them could overflow; ±∞
    // and NaN stay non-finite). The first offending index is searched only on failure.
    let sum_sq = sum_sq_f64(v);
    if !sum_sq.is_finite() {
        let index = v.iter().position(|x| !x.is_finite()).unwrap_or(0);
        return Err(VectorError::NonFinite { index });
    }
    let norm = sum_sq.sqrt();
    if metric == Metric::Cosine && !(norm > 0.0 && ((1.0 / norm) as f32).is_finite()) {
        return Err(VectorError::ZeroVector);
    }
    Ok(norm)
}

/// Validates a query of dimension `dim` and appends its scan form (unit length for cosine) to
/// `out`; on error `out` is unchanged. The one normalisation every query path uses.
pub(crate) fn prepare_into(
    q: &[f32],
    dim: usize,
    metric: Metric,
    out: &mut Vec<f32>,
) -> Result<f64, VectorError> {
    let norm = validate(q, dim, metric)?;
    if metric == Metric::Cosine {
        let inv = (1.0 / norm) as f32;
        out.extend(q.iter().map(|&x| x * inv));
    } else {
        out.extend_from_slice(q);
    }
    Ok(norm)
}

/// Validates a query of dimension `dim` and puts it in scan form (unit length for cosine).
pub(crate) fn prepare(q: &[f32], dim: usize, metric: Metric) -> Result<Prepared, VectorError> {
    // Sized by the query, not by `dim`: a query of the wrong length against a huge `dim` is
    // refused below, not an allocation failure here.
    let mut v = Vec::with_capacity(q.len().min(dim));
    let norm = prepare_into(q, dim, metric, &mut v)?;
    let norm_sq = if metric == Metric::Cosine {
        sum_sq_f64(&v) as f32
    } else {
        (norm * norm) as f32
    };
    Ok(Prepared { v, norm_sq })
}

/// The one scoring formula every path uses (store scans, [`crate::Query::score`]): `aux` is the
/// row's `1/‖v‖` for cosine (as stored at insert) and unused by the other metrics.
#[inline]
pub(crate) fn score_vec(metric: Metric, p: &Prepared, v: &[f32], aux: f32) -> f32 {
    let s = match metric {
        Metric::Cosine => cosine_score(&p.v, v, aux),
        Metric::Dot => dot_score(&p.v, v),
        Metric::L2Squared => -l2sq_f32_unchecked_len(&p.v, v),
    };
    sanitize(s)
}

/// The dot score of a row `v` against the query `p`: `fl(p·v)` from the fixed-order kernel.
/// When that sum overflows (`±inf`, or `inf - inf` = NaN, although the true dot product may be
/// small: only for components near `f32::MAX`), it is summed in f64 instead, where no product
/// or partial sum of f32 values overflows, and rounded once, as
/// [`kernels::dot_f32`](crate::kernels::dot_f32) does: the score is infinite only when the true
/// dot product is beyond f32's range.
#[inline]
pub(crate) fn dot_score(p: &[f32], v: &[f32]) -> f32 {
    let d = dot_f32_unchecked_len(p, v);
    if d.is_finite() || p.len() != v.len() {
        d
    } else {
        dot_wide(p, v)
    }
}

/// `p·v` summed in f64 and rounded once (see [`dot_score`]).
#[cold]
fn dot_wide(p: &[f32], v: &[f32]) -> f32 {
    crate::kernels::scalar::dot64(widen(p), widen(v)) as f32
}

/// Rows whose inverse norm is below this may overflow the f32 dot product with a unit query:
/// every partial sum of `p·v` is at most `‖v‖` (Cauchy–Schwarz), so rows with `‖v‖ < 2¹²⁶`
/// never do. The batch rescores such rows with [`cosine_score`].
pub(crate) const COSINE_OVERFLOW_AUX: f32 = 1.0 / (1u128 << 126) as f32;

/// The cosine score of a row `v` (inverse norm `aux`) against the unit query `p`:
/// `clamp(fl(p·v) · aux)`. When the f32 dot product overflows (only for a row whose norm is
/// near `f32::MAX`), it is summed in f64 instead, where it cannot: the score of a row never
/// depends on its magnitude.
#[inline]
pub(crate) fn cosine_score(p: &[f32], v: &[f32], aux: f32) -> f32 {
    let d = dot_f32_unchecked_len(p, v);
    let s = if d.is_finite() {
        d * aux
    } else {
        cosine_wide(p, v, aux)
    };
    s.clamp(-1.0, 1.0)
}

/// `(p·v) · aux` with the dot product summed in f64 (no f32 overflow; see [`cosine_score`]).
#[cold]
fn cosine_wide(p: &[f32], v: &[f32], aux: f32) -> f32 {
    let d = crate::kernels::scalar::dot64(widen(p), widen(v));
    (d * f64::from(aux)) as f32
}

/// Symmetric i8 quantization of `v · mul` (each product rounded to f32): appends
/// `code ≈ v·mul / scale`, codes in `[-127, 127]`, and returns `scale`.
///
/// Rounding is half away from zero by `trunc(x ± 0.5)` (inline, unlike `f32::round`, which is a
/// libm call on the baseline x86-64 target and made inserts 3× slower); being off by one step
/// at an exact tie would not matter, since the prefilter measures each row's actual error.
pub(crate) fn quantize_scaled(v: &[f32], mul: f32, out: &mut Vec<i8>) -> f32 {
    // Eight independent running maxima with plain comparisons (not `f32::max`, whose NaN rule
    // keeps the compiler from vectorising); a NaN product is skipped and then coded 0.
    let mut m8 = [0.0f32; 8];
    let mut it = v.chunks_exact(8);
    for c in &mut it {
        for (m, &x) in m8.iter_mut().zip(c) {
            let a = (x * mul).abs();
            *m = if a > *m { a } else { *m };
        }
    }
    for (m, &x) in m8.iter_mut().zip(it.remainder()) {
        let a = (x * mul).abs();
        *m = if a > *m { a } else { *m };
    }
    let max = m8.iter().fold(0.0f32, |m, &a| if a > m { a } else { m });
    let scale = if max > 0.0 && max.is_finite() {
        max / 127.0
    } else {
        1.0
    };
    let inv = 1.0 / scale;
    let start = out.len();
    out.resize(start + v.len(), 0);
    for (o, &x) in out[start..].iter_mut().zip(v) {
        let y = (x * mul * inv).clamp(-127.0, 127.0);
        // `as` saturates (and maps NaN to 0); `|y ± 0.5| < 128` truncates into `[-127, 127]`.
        *o = (y + 0.5f32.copysign(y)) as i32 as i8;
    }
    scale
}

/// [`quantize_scaled`] with `mul = 1`.
pub(crate) fn quantize(v: &[f32], out: &mut Vec<i8>) -> f32 {
    quantize_scaled(v, 1.0, out)
}

/// A cheaply clonable store of fixed-dimension embeddings with exact and quantized search.
///
/// See the [crate docs](crate) for guarantees and the complexity table.
///
/// ```
/// use rhospace_vectordb::{Metric, VectorStore};
/// let mut store = VectorStore::new(3, Metric::Cosine).unwrap();
/// let a = store.insert(&[1.0, 0.0, 0.0]).unwrap();
/// let b = store.insert(&[0.0, 1.0, 0.0]).unwrap();
/// let top = store.top_k(&[0.9, 0.1, 0.0], 1).unwrap();
/// assert_eq!(top[0].id, a);
/// let snapshot = store.clone(); // shares every chunk
/// store.remove(a);
/// assert_eq!(store.top_k(&[0.9, 0.1, 0.0], 1).unwrap()[0].id, b);
/// assert_eq!(snapshot.top_k(&[0.9, 0.1, 0.0], 1).unwrap()[0].id, a);
/// ```
#[derive(Clone, Debug)]
pub struct VectorStore {
    dim: usize,
    metric: Metric,
    quantized: bool,
    pub(crate) chunks: Vec<Arc<Chunk>>,
    next_id: u64,
    live: usize,
    dead: usize,
}

/// Replaces NaN (a safety net: an overflowing `+inf - inf` dot sum is recomputed in f64 first) by
/// `-inf`, so that such a row ranks last instead of first under `total_cmp`.
#[inline]
pub(crate) fn sanitize(s: f32) -> f32 {
    if s.is_nan() {
        f32::NEG_INFINITY
    } else {
        s
    }
}

impl VectorStore {
    /// Creates an empty store of `dim`-dimensional vectors scored by `metric`.
    ///
    /// Time: O(1).
    ///
    /// ```
    /// use rhospace_vectordb::{Metric, VectorStore};
    /// let store = VectorStore::new(384, Metric::Cosine).unwrap();
    /// assert_eq!((store.dim(), store.len()), (384, 0));
    /// ```
    pub fn new(dim: usize, metric: Metric) -> Result<Self, ConfigError> {
        if dim == 0 {
            return Err(ConfigError::ZeroDimension);
        }
        Ok(VectorStore {
            dim,
            metric,
            quantized: false,
            chunks: Vec::new(),
            next_id: 0,
            live: 0,
            dead: 0,
        })
    }

    /// Creates an empty store whose [`top_k_quantized`](Self::top_k_quantized) answers from the
    /// i8 codes with a shortlist (approximate recall, exact scores). Every store keeps the i8
    /// codes (for the exact pre-filter of [`top_k`](Self::top_k)); this only changes what
    /// `top_k_quantized` does.
    ///
    /// Time: O(1).
    ///
    /// ```
    /// use rhospace_vectordb::{Metric, VectorStore};
    /// let store = VectorStore::new_quantized(8, Metric::Dot).unwrap();
    /// assert!(store.is_quantized());
    /// ```
    pub fn new_quantized(dim: usize, metric: Metric) -> Result<Self, ConfigError> {
        let mut s = Self::new(dim, metric)?;
        s.quantized = true;
        Ok(s)
    }

    /// The fixed dimension of every vector.
    ///
    /// ```
    /// # use rhospace_vectordb::{Metric, VectorStore};
    /// assert_eq!(VectorStore::new(5, Metric::Dot).unwrap().dim(), 5);
    /// ```
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The metric queries are scored with.
    ///
    /// ```
    /// # use rhospace_vectordb::{Metric, VectorStore};
    /// assert_eq!(VectorStore::new(5, Metric::Dot).unwrap().metric(), Metric::Dot);
    /// ```
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// Whether [`top_k_quantized`](Self::top_k_quantized) uses the approximate shortlist search.
    ///
    /// ```
    /// # use rhospace_vectordb::{Metric, VectorStore};
    /// assert!(!VectorStore::new(5, Metric::Dot).unwrap().is_quantized());
    /// ```
    pub fn is_quantized(&self) -> bool {
        self.quantized
    }

    /// Number of live (not removed) vectors. Time: O(1).
    ///
    /// ```
    /// # use rhospace_vectordb::{Metric, VectorStore};
    /// let mut s = VectorStore::new(1, Metric::Dot).unwrap();
    /// s.insert(&[1.0]).unwrap();
    /// assert_eq!(s.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no live vector is stored. Time: O(1).
    ///
    /// ```
    /// # use rhospace_vectordb::{Metric, VectorStore};
    /// assert!(VectorStore::new(1, Metric::Dot).unwrap().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Number of tombstoned rows that [`compact`](Self::compact) would reclaim. Time: O(1).
    ///
    /// ```
    /// # use rhospace_vectordb::{Metric, VectorStore};
    /// let mut s = VectorStore::new(1, Metric::Dot).unwrap();
    /// let id = s.insert(&[1.0]).unwrap();
    /// s.remove(id);
    /// assert_eq!(s.tombstones(), 1);
    /// ```
    pub fn tombstones(&self) -> usize {
        self.dead
    }

    /// The id the next successful insert will get. Time: O(1).
    ///
    /// ```
    /// # use rhospace_vectordb::{Metric, VectorId, VectorStore};
    /// let mut s = VectorStore::new(1, Metric::Dot).unwrap();
    /// s.insert(&[1.0]).unwrap();
    /// assert_eq!(s.next_id(), VectorId(1));
    /// ```
    pub fn next_id(&self) -> VectorId {
        VectorId(self.next_id)
    }

    /// Validates and appends a vector, returning its new id. On error nothing changes (not the
    /// contents, not the next id).
    ///
    /// Time: O(dim) amortised; O(`CHUNK_CAPACITY` × dim) when the last chunk is shared with a
    /// clone and must be copied first.
    ///
    /// ```
    /// use rhospace_vectordb::{Metric, VectorError, VectorStore};
    /// let mut s = VectorStore::new(2, Metric::Cosine).unwrap();
    /// assert_eq!(s.insert(&[0.0, 0.0]), Err(VectorError::ZeroVector));
    /// assert!(s.is_empty());
    /// ```
    pub fn insert(&mut self, v: &[f32]) -> Result<VectorId, VectorError> {
        let norm = validate(v, self.dim, self.metric)?;
        let need_new = match self.chunks.last() {
            Some(c) => c.len() >= CHUNK_CAPACITY,
            None => true,
        };
        if need_new {
            self.chunks.push(Arc::new(Chunk::new()));
        }
        let metric = self.metric;
        let id = self.next_id;
        let Some(last) = self.chunks.last_mut() else {
            // Unreachable: a chunk was pushed above if none existed.
            return Err(VectorError::ZeroVector);
        };
        let chunk = Arc::make_mut(last);
        chunk.ids.push(id);
        chunk.live.push(true);
        chunk.data.extend_from_slice(v);
        let aux = match metric {
            Metric::Cosine => (1.0 / norm) as f32,
            _ => (norm * norm) as f32,
        };
        chunk.aux.push(aux);
        let shadow = shadow_row(v, metric, aux, &mut chunk.codes);
        chunk.shadow.push(shadow);
        chunk.max_norm = chunk.max_norm.max(norm_upper(norm, self.dim));
        self.next_id += 1;
        self.live += 1;
        Ok(VectorId(id))
    }

    /// Finds the chunk index and row of a live or tombstoned id.
    pub(crate) fn locate(&self, id: VectorId) -> Option<(usize, usize)> {
        let ci = self
            .chunks
            .partition_point(|c| c.ids.last().is_some_and(|&last| last < id.0));
        let chunk = self.chunks.get(ci)?;
        let row = chunk.ids.binary_search(&id.0).ok()?;
        Some((ci, row))
    }

    /// Whether `id` names a live vector. Time: O(log n).
    ///
    /// ```
    /// # use rhospace_vectordb::{Metric, VectorStore};
    /// let mut s = VectorStore::new(1, Metric::Dot).unwrap();
    /// let id = s.insert(&[1.0]).unwrap();
    /// assert!(s.contains(id));
    /// s.remove(id);
    /// assert!(!s.contains(id));
    /// ```
    pub fn contains(&self, id: VectorId) -> bool {
        self.get(id).is_some()
    }

    /// The stored vector for a live id, exactly as inserted. Time: O(log n).
    ///
    /// ```
    /// # use rhospace_vectordb::{Metric, VectorStore};
    /// let mut s = VectorStore::new(2, Metric::Cosine).unwrap();
    /// let id = s.insert(&[3.0, 4.0]).unwrap();
    /// assert_eq!(s.get(id), Some(&[3.0, 4.0][..]));
    /// ```
    pub fn get(&self, id: VectorId) -> Option<&[f32]> {
        let (ci, row) = self.locate(id)?;
        let chunk = &self.chunks[ci];
        if chunk.live[row] {
            Some(chunk.row(row, self.dim))
        } else {
            None
        }
    }

    /// Tombstones a live vector; returns whether it was live. Ids are never reused.
    ///
    /// Time: O(log n); plus O(`CHUNK_CAPACITY` × dim) if its chunk is shared with a clone.
    ///
    /// ```
    /// # use rhospace_vectordb::{Metric, VectorStore};
    /// let mut s = VectorStore::new(1, Metric::Dot).unwrap();
    /// let id = s.insert(&[1.0]).unwrap();
    /// assert!(s.remove(id));
    /// assert!(!s.remove(id));
    /// ```
    pub fn remove(&mut self, id: VectorId) -> bool {
        let Some((ci, row)) = self.locate(id) else {
            return false;
        };
        if !self.chunks[ci].live[row] {
            return false;
        }
        let chunk = Arc::make_mut(&mut self.chunks[ci]);
        chunk.live[row] = false;
        chunk.dead += 1;
        self.live -= 1;
        self.dead += 1;
        true
    }

    /// Drops tombstoned rows and empty chunks. Ids, contents and query results are unchanged.
    ///
    /// Time: O(dim × rows of the chunks that hold tombstones); chunks without tombstones stay
    /// shared with clones. Chunks are not merged, so after heavy deletion chunks may be
    /// under-filled (queries stay O(n · dim); only per-chunk overhead grows).
    ///
    /// ```
    /// # use rhospace_vectordb::{Metric, VectorStore};
    /// let mut s = VectorStore::new(1, Metric::Dot).unwrap();
    /// let a = s.insert(&[1.0]).unwrap();
    /// let b = s.insert(&[2.0]).unwrap();
    /// s.remove(a);
    /// s.compact();
    /// assert_eq!((s.tombstones(), s.get(b)), (0, Some(&[2.0][..])));
    /// ```
    pub fn compact(&mut self) {
        if self.dead == 0 {
            return;
        }
        let dim = self.dim;
        for arc in self.chunks.iter_mut().filter(|c| c.dead > 0) {
            let old = &**arc;
            let mut fresh = Chunk::new();
            for row in (0..old.len()).filter(|&r| old.live[r]) {
                fresh.ids.push(old.ids[row]);
                fresh.live.push(true);
                fresh.data.extend_from_slice(old.row(row, dim));
                fresh.aux.push(old.aux[row]);
                fresh
                    .codes
                    .extend_from_slice(&old.codes[row * dim..(row + 1) * dim]);
                fresh.shadow.push(old.shadow[row]);
            }
            fresh.max_norm = old.max_norm;
            *arc = Arc::new(fresh);
        }
        self.chunks.retain(|c| c.len() > 0);
        self.dead = 0;
    }

    /// Live vectors in id order. Time: O(1) per item.
    ///
    /// ```
    /// # use rhospace_vectordb::{Metric, VectorId, VectorStore};
    /// let mut s = VectorStore::new(1, Metric::Dot).unwrap();
    /// s.insert(&[1.0]).unwrap();
    /// s.insert(&[2.0]).unwrap();
    /// let ids: Vec<VectorId> = s.iter().map(|(id, _)| id).collect();
    /// assert_eq!(ids, [VectorId(0), VectorId(1)]);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (VectorId, &[f32])> + '_ {
        let dim = self.dim;
        self.chunks.iter().flat_map(move |c| {
            (0..c.len())
                .filter(move |&r| c.live[r])
                .map(move |r| (VectorId(c.ids[r]), c.row(r, dim)))
        })
    }

    /// Validates a query and puts it in scan form.
    pub(crate) fn prepare(&self, q: &[f32]) -> Result<Prepared, VectorError> {
        prepare(q, self.dim, self.metric)
    }

    /// Exact score of a prepared query against one row.
    #[inline]
    pub(crate) fn score_row(&self, p: &Prepared, chunk: &Chunk, row: usize) -> f32 {
        score_vec(self.metric, p, chunk.row(row, self.dim), chunk.aux[row])
    }

    /// Score of `query` against the live vector `id` (`None` if `id` is not live).
    ///
    /// Time: O(dim + log n).
    ///
    /// ```
    /// use rhospace_vectordb::{Metric, VectorStore};
    /// let mut s = VectorStore::new(2, Metric::Cosine).unwrap();
    /// let id = s.insert(&[1.0, 1.0]).unwrap();
    /// let score = s.score(&[1.0, 0.0], id).unwrap().unwrap();
    /// assert!((score - 0.70710677).abs() < 1e-6);
    /// ```
    pub fn score(&self, query: &[f32], id: VectorId) -> Result<Option<f32>, QueryError> {
        let p = self.prepare(query).map_err(QueryError::single)?;
        let Some((ci, row)) = self.locate(id) else {
            return Ok(None);
        };
        let chunk = &self.chunks[ci];
        if !chunk.live[row] {
            return Ok(None);
        }
        Ok(Some(self.score_row(&p, chunk, row)))
    }

    /// Offers every live row's exact score to `sink`, in id order.
    #[inline]
    fn scan(&self, p: &Prepared, mut sink: impl FnMut(u64, f32)) {
        for chunk in &self.chunks {
            if chunk.dead == 0 {
                for row in 0..chunk.len() {
                    sink(chunk.ids[row], self.score_row(p, chunk, row));
                }
            } else {
                for row in (0..chunk.len()).filter(|&r| chunk.live[r]) {
                    sink(chunk.ids[row], self.score_row(p, chunk, row));
                }
            }
        }
    }

    /// The `k` best live vectors for `query`, best first (ties: smaller id first). Returns fewer
    /// than `k` hits when fewer are stored.
    ///
    /// Time: O(n · dim + n log k), one thread; reads each stored float once.
    ///
    /// ```
    /// use rhospace_vectordb::{Metric, VectorId, VectorStore};
    /// let mut s = VectorStore::new(2, Metric::Dot).unwrap();
    /// for v in [[1.0, 0.0], [3.0, 0.0], [3.0, 0.0]] {
    ///     s.insert(&v).unwrap();
    /// }
    /// let ids: Vec<_> = s.top_k(&[1.0, 0.0], 2).unwrap().iter().map(|h| h.id).collect();
    /// assert_eq!(ids, [VectorId(1), VectorId(2)]);
    /// ```
    pub fn top_k(&self, query: &[f32], k: usize) -> Result<Vec<Hit>, QueryError> {
        self.top_k_with(query, k, Scan::Auto)
    }

    /// [`top_k`](Self::top_k) through an explicit [`Scan`] path. Every path returns the same
    /// hits, in the same order, with the same score bits.
    ///
    /// Time: as [`top_k`](Self::top_k); [`Scan::Pruned`] reads `dim` bytes per row plus
    /// `O(dim)` per row it cannot prune.
    ///
    /// ```
    /// use rhospace_vectordb::{Metric, Scan, VectorStore};
    /// let mut s = VectorStore::new(2, Metric::Cosine).unwrap();
    /// for i in 0..50 {
    ///     s.insert(&[1.0, i as f32 / 10.0]).unwrap();
    /// }
    /// let q = [1.0, 2.0];
    /// assert_eq!(
    ///     s.top_k_with(&q, 3, Scan::Pruned).unwrap(),
    ///     s.top_k_with(&q, 3, Scan::Full).unwrap()
    /// );
    /// ```
    pub fn top_k_with(&self, query: &[f32], k: usize, scan: Scan) -> Result<Vec<Hit>, QueryError> {
        if k == 0 {
            return Err(QueryError::ZeroK);
        }
        let p = self.prepare(query).map_err(QueryError::single)?;
        Ok(self.top_k_prepared(&p, k, scan))
    }

    /// Top-k by the chosen exact path (see [`Scan`]). `k >= 1`.
    pub(crate) fn top_k_prepared(&self, p: &Prepared, k: usize, scan: Scan) -> Vec<Hit> {
        let pruned = self.prefilter_supported()
            && match scan {
                Scan::Auto => {
                    self.live >= PREFILTER_MIN_ROWS
                        && k.saturating_mul(PREFILTER_ROWS_PER_K) <= self.live
                }
                Scan::Full => false,
                Scan::Pruned => true,
            };
        if pruned {
            self.top_k_pruned(p, k)
        } else {
            self.top_k_full(p, k)
        }
    }

    /// Top-k by scoring every live row in f32.
    pub(crate) fn top_k_full(&self, p: &Prepared, k: usize) -> Vec<Hit> {
        let mut top = TopK::new(k);
        let mut floor = f32::NEG_INFINITY;
        self.scan(p, |id, score| {
            // Rows come in increasing id order, so an equal score never beats a kept hit.
            // Compared by `total_cmp`, the ranking order: IEEE `>` would skip a `+0.0` after a
            // kept `-0.0`, which `Hit::rank_cmp` ranks before it.
            if score.total_cmp(&floor).is_gt() || (floor == f32::NEG_INFINITY && score == floor) {
                top.push(Hit {
                    id: VectorId(id),
                    score,
                });
                floor = top.floor();
            }
        });
        top.into_sorted()
    }

    /// Every live vector whose score is `>= threshold`, best first (ties: smaller id first).
    ///
    /// Time: O(n · dim + h log h) for h hits.
    ///
    /// ```
    /// use rhospace_vectordb::{Metric, VectorStore};
    /// let mut s = VectorStore::new(2, Metric::Cosine).unwrap();
    /// let a = s.insert(&[1.0, 0.0]).unwrap();
    /// s.insert(&[0.0, 1.0]).unwrap();
    /// let hits = s.above(&[1.0, 0.1], 0.9).unwrap();
    /// assert_eq!(hits.len(), 1);
    /// assert_eq!(hits[0].id, a);
    /// ```
    pub fn above(&self, query: &[f32], threshold: f32) -> Result<Vec<Hit>, QueryError> {
        self.above_with(query, threshold, Scan::Auto)
    }

    /// [`above`](Self::above) through an explicit [`Scan`] path; every path returns the same
    /// hits and score bits.
    ///
    /// ```
    /// use rhospace_vectordb::{Metric, Scan, VectorStore};
    /// let mut s = VectorStore::new(2, Metric::Dot).unwrap();
    /// for i in 0..50 {
    ///     s.insert(&[i as f32, 1.0]).unwrap();
    /// }
    /// let hits = s.above_with(&[1.0, 0.0], 47.0, Scan::Pruned).unwrap();
    /// assert_eq!(hits, s.above_with(&[1.0, 0.0], 47.0, Scan::Full).unwrap());
    /// assert_eq!(hits.len(), 3);
    /// ```
    pub fn above_with(
        &self,
        query: &[f32],
        threshold: f32,
        scan: Scan,
    ) -> Result<Vec<Hit>, QueryError> {
        if threshold.is_nan() {
            return Err(QueryError::NanThreshold);
        }
        let p = self.prepare(query).map_err(QueryError::single)?;
        let pruned = self.prefilter_supported()
            && match scan {
                Scan::Auto => self.live >= PREFILTER_MIN_ROWS,
                Scan::Full => false,
                Scan::Pruned => true,
            };
        let mut hits = if pruned {
            self.above_pruned(&p, threshold)
        } else {
            self.above_full(&p, threshold)
        };
        hits.sort_by(Hit::rank_cmp);
        Ok(hits)
    }

    /// Every live row scoring `>= threshold`, by scoring every live row in f32 (id order).
    pub(crate) fn above_full(&self, p: &Prepared, threshold: f32) -> Vec<Hit> {
        let mut hits = Vec::new();
        self.scan(p, |id, score| {
            if score >= threshold {
                hits.push(Hit {
                    id: VectorId(id),
                    score,
                });
            }
        });
        hits
    }

    /// The best live vector with score `>= threshold`, if any (ties: smaller id). This is the
    /// "top-1 above a threshold" selection of a similarity pattern.
    ///
    /// Time: O(n · dim).
    ///
    /// ```
    /// use rhospace_vectordb::{Metric, VectorStore};
    /// let mut s = VectorStore::new(2, Metric::Cosine).unwrap();
    /// let a = s.insert(&[1.0, 0.0]).unwrap();
    /// assert_eq!(s.best_above(&[1.0, 0.0], 0.5).unwrap().map(|h| h.id), Some(a));
    /// assert_eq!(s.best_above(&[0.0, 1.0], 0.5).unwrap(), None);
    /// ```
    pub fn best_above(&self, query: &[f32], threshold: f32) -> Result<Option<Hit>, QueryError> {
        if threshold.is_nan() {
            return Err(QueryError::NanThreshold);
        }
        let p = self.prepare(query).map_err(QueryError::single)?;
        let best = self.top_k_prepared(&p, 1, Scan::Auto).into_iter().next();
        Ok(best.filter(|h| h.score >= threshold))
    }

    /// Approximate-then-exact top-k on a quantized store: scans the i8 codes to keep the best
    /// `shortlist` candidates (at least `k`), then rescores those in f32 and returns the `k`
    /// best with **exact** scores, ordered as [`top_k`](Self::top_k). On a store that is not
    /// quantized it is exactly [`top_k`](Self::top_k).
    ///
    /// Recall (fraction of the exact top-k found) grows with `shortlist`; with `shortlist = 4k`
    /// it measures ≥ 0.95 for k = 10 on 384-dimensional clustered data (see the tests).
    ///
    /// Time: O(n · dim) over bytes instead of floats, plus O(shortlist · (dim + log n)).
    ///
    /// ```
    /// use rhospace_vectordb::{Metric, VectorStore};
    /// let mut s = VectorStore::new_quantized(2, Metric::Cosine).unwrap();
    /// let a = s.insert(&[1.0, 0.0]).unwrap();
    /// s.insert(&[0.0, 1.0]).unwrap();
    /// let hits = s.top_k_quantized(&[1.0, 0.2], 1, 4).unwrap();
    /// assert_eq!(hits[0].id, a);
    /// assert_eq!(Some(hits[0].score), s.score(&[1.0, 0.2], a).unwrap());
    /// ```
    pub fn top_k_quantized(
        &self,
        query: &[f32],
        k: usize,
        shortlist: usize,
    ) -> Result<Vec<Hit>, QueryError> {
        if k == 0 {
            return Err(QueryError::ZeroK);
        }
        let p = self.prepare(query).map_err(QueryError::single)?;
        if !self.quantized {
            return Ok(self.top_k_prepared(&p, k, Scan::Auto));
        }
        let dim = self.dim;
        let mut qcodes = Vec::with_capacity(dim);
        let qscale = quantize(&p.v, &mut qcodes);
        let mut short = TopK::new(shortlist.max(k));
        let mut floor = f32::NEG_INFINITY;
        for chunk in &self.chunks {
            for row in 0..chunk.len() {
                if chunk.dead > 0 && !chunk.live[row] {
                    continue;
                }
                let codes = &chunk.codes[row * dim..(row + 1) * dim];
                let dot = dot_i8_unchecked_len(&qcodes, codes) * (qscale * chunk.shadow[row].scale);
                let approx = sanitize(match self.metric {
                    Metric::Cosine | Metric::Dot => dot,
                    Metric::L2Squared => -(p.norm_sq + chunk.aux[row] - 2.0 * dot),
                });
                if approx > floor || (floor == f32::NEG_INFINITY && approx == floor) {
                    short.push(Hit {
                        id: VectorId(chunk.ids[row]),
                        score: approx,
                    });
                    floor = short.floor();
                }
            }
        }
        let mut top = TopK::new(k);
        for cand in short.into_sorted() {
            if let Some((ci, row)) = self.locate(cand.id) {
                top.push(Hit {
                    id: cand.id,
                    score: self.score_row(&p, &self.chunks[ci], row),
                });
            }
        }
        Ok(top.into_sorted())
    }
}
