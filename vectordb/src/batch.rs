//! Batch queries: many query vectors at once, scored by a blocked matrix product.
//!
//! # Algorithm
//!
//! For cosine and dot, scoring `m` queries against `n` stored rows is the matrix product
//! `S = V · Qᵀ` (`n × dim` times `dim × m`). The queries are validated (one pass each: the f64
//! sum of squares is finite exactly when every component is) and packed once per batch into the
//! layout the kernel reads, cosine queries scaled to unit length as they are packed; no other
//! copy of the batch is made. The store is cut into fixed *tiles* of at most [`TILE_ROWS`] rows
//! that never cross a chunk, and each tile is one single-threaded call of the batch kernel in
//! [`crate::kernels`]: on x86-64 with AVX-512 our own register-blocked kernel (6 rows × 64
//! queries per block for wide batches, rows read in place, components in k-blocks of at most
//! 128 so the query panels stay in L1, each score one sequential fused multiply-add chain over
//! the components), elsewhere a portable kernel with the same arithmetic (6 rows × 16 queries
//! per block; compiled with AVX2 and FMA where the CPU has them, NEON on AArch64). Every backend
//! gives the same bits, so a batch gives the same scores on every machine (an x86-64 CPU
//! without FMA, made before 2013, gets them from an exact f64 emulation of the fused
//! multiply-add, about 120x slower than AVX-512). The kernel applies the score formula as
//! it stores each finished block (cosine: times the row's stored inverse norm, clamped to
//! `[-1, 1]`; NaN to -∞), and it writes straight into the result: the output is never
//! zero-filled, each tile initialises its own disjoint part (in parallel when the tiles run in
//! parallel). A dot score whose f32 chain overflowed (components near `f32::MAX`) is rescored as
//! a single query scores it (in f64: the true value). Squared L2 uses the pair kernel per (row,
//! query), exactly like single-query search.
//!
//! # Determinism and parallelism
//!
//! The tile partition depends only on the store, never on the thread count. Tiles run in
//! parallel when `m × rows × dim` ≥ [`PARALLEL_MIN_WORK`] (or as forced by [`Execution`]): the
//! calling thread spawns helper jobs on the current rayon pool *before* it validates and packs
//! the queries, so that a sleeping worker's wake-up (about 20 µs on the reference machine)
//! overlaps that preparation; then the calling thread and the helpers take tiles from a shared
//! counter, each tile on one thread, writing its own part of the output. For top-k, each
//! thread feeds the tiles it claims into a selection it keeps across tiles (in
//! [`crate::select`]: a per-query heap behind a vector compare against its k-th best score),
//! and the selections are merged at the end; a selection keeps the top k under the total
//! order of [`Hit::rank_cmp`] of whatever it was offered, in any order, so which thread saw
//! which tile cannot change the result. So serial and parallel execution, with any number of
//! threads, return bit-identical results.
//!
//! A batch score does not depend on the CPU, tiling or blocking at all (one FMA chain per
//! score). It sums in a different order than the single-query pair kernel, so for
//! cosine and dot a batch score can differ from the single-query score of the same pair in the
//! last bits (relative error below 1e-5 for 384 dimensions); ranks can then differ only between
//! hits whose scores are that close.

use crate::error::QueryError;
use crate::kernels::{self, l2sq_f32_unchecked_len, Finish, GemmBackend, PackedQueries};
use crate::select::Selection;
use crate::store::{
    cosine_score, dot_score, sanitize, validate, Chunk, Metric, VectorStore, COSINE_OVERFLOW_AUX,
};
use crate::topk::Hit;
use crate::VectorId;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// Rows per GEMM tile (the unit of parallel work). Tiles never cross a chunk boundary.
///
/// ```
/// assert_eq!(rhospace_vectordb::TILE_ROWS, 256);
/// ```
pub const TILE_ROWS: usize = 256;

/// Work (`queries × stored rows × dim` multiply-adds) from which [`Execution::Auto`] runs
/// tiles in parallel. Measured on the reference machine: at 10 × 100 × 384 (≈ 0.4 M) a rayon
/// hand-off costs more than the whole product; from about 4 M the two-core split wins.
///
/// ```
/// assert!(rhospace_vectordb::PARALLEL_MIN_WORK > 10 * 100 * 384);
/// ```
pub const PARALLEL_MIN_WORK: usize = 1 << 22;

/// How a batch query uses threads. Every choice returns the same result.
///
/// ```
/// use rhospace_vectordb::{Execution, Metric, VectorStore};
/// let mut s = VectorStore::new(2, Metric::Dot).unwrap();
/// s.insert(&[1.0, 2.0]).unwrap();
/// let q = [1.0, 0.0, 0.0, 1.0];
/// assert_eq!(
///     s.batch_top_k_with(&q, 1, Execution::Serial).unwrap(),
///     s.batch_top_k_with(&q, 1, Execution::Parallel).unwrap()
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Execution {
    /// Parallel when the work reaches [`PARALLEL_MIN_WORK`], serial otherwise.
    #[default]
    Auto,
    /// On the calling thread only.
    Serial,
    /// Tiles on the current rayon pool.
    Parallel,
}

/// Scores of `m` queries against every live stored vector, from
/// [`VectorStore::similarity_matrix`].
///
/// Layout: vector-major, `scores[column * m + query]`, where `column` indexes
/// [`ids`](Self::ids) (live ids in increasing order).
///
/// ```
/// use rhospace_vectordb::{Metric, VectorStore};
/// let mut s = VectorStore::new(2, Metric::Dot).unwrap();
/// s.insert(&[1.0, 2.0]).unwrap();
/// let m = s.similarity_matrix(&[1.0, 1.0, 0.0, 1.0]).unwrap();
/// assert_eq!((m.get(0, 0), m.get(1, 0)), (Some(3.0), Some(2.0)));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreMatrix {
    ids: Vec<VectorId>,
    queries: usize,
    scores: Vec<f32>,
}

impl ScoreMatrix {
    /// Live ids, one per column, increasing.
    ///
    /// ```
    /// # use rhospace_vectordb::{Metric, VectorId, VectorStore};
    /// let mut s = VectorStore::new(1, Metric::Dot).unwrap();
    /// s.insert(&[1.0]).unwrap();
    /// assert_eq!(s.similarity_matrix(&[1.0]).unwrap().ids(), &[VectorId(0)]);
    /// ```
    pub fn ids(&self) -> &[VectorId] {
        &self.ids
    }

    /// Number of queries (`m`).
    ///
    /// ```
    /// # use rhospace_vectordb::{Metric, VectorStore};
    /// let s = VectorStore::new(1, Metric::Dot).unwrap();
    /// assert_eq!(s.similarity_matrix(&[1.0, 2.0]).unwrap().num_queries(), 2);
    /// ```
    pub fn num_queries(&self) -> usize {
        self.queries
    }

    /// Score of query `query` against the vector in column `column`, if both are in range.
    ///
    /// ```
    /// # use rhospace_vectordb::{Metric, VectorStore};
    /// let mut s = VectorStore::new(1, Metric::Dot).unwrap();
    /// s.insert(&[2.0]).unwrap();
    /// let m = s.similarity_matrix(&[3.0]).unwrap();
    /// assert_eq!((m.get(0, 0), m.get(0, 1)), (Some(6.0), None));
    /// ```
    pub fn get(&self, query: usize, column: usize) -> Option<f32> {
        if query >= self.queries || column >= self.ids.len() {
            return None;
        }
        self.scores.get(column * self.queries + query).copied()
    }

    /// The raw vector-major buffer (`ids().len() × num_queries()`).
    ///
    /// ```
    /// # use rhospace_vectordb::{Metric, VectorStore};
    /// let mut s = VectorStore::new(1, Metric::Dot).unwrap();
    /// s.insert(&[2.0]).unwrap();
    /// assert_eq!(s.similarity_matrix(&[3.0, 4.0]).unwrap().as_slice(), &[6.0, 8.0]);
    /// ```
    pub fn as_slice(&self) -> &[f32] {
        &self.scores
    }
}

/// One GEMM tile: rows `start..start + len` of chunk `chunk`.
#[derive(Clone, Copy)]
struct Tile {
    chunk: usize,
    start: usize,
    len: usize,
}

/// A tile's part of the output, until a thread takes it.
type OutputPart<'a> = Mutex<Option<(Tile, &'a mut [MaybeUninit<f32>])>>;

/// Locks `m`, ignoring poison: a poisoned lock only means another tile panicked (that panic
/// is propagated).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Takes a tile's output part (once; `None` afterwards).
fn take_part<'a>(part: &OutputPart<'a>) -> Option<(Tile, &'a mut [MaybeUninit<f32>])> {
    // A poisoned lock only means another tile panicked (that panic is propagated).
    part.lock().unwrap_or_else(PoisonError::into_inner).take()
}

/// Runs `prepare` on the calling thread, then `work(&prepared, i)` for every `i < n`, each
/// index exactly once, and returns the prepared value; returns `prepare`'s error if it fails
/// (then no `work` runs).
///
/// In parallel, up to `rayon::current_num_threads() - 1` helper jobs are spawned on the
/// current pool *before* `prepare` runs, so that waking a sleeping worker (about 20 µs on the
/// reference machine, as long as preparing a 100-query batch) overlaps the preparation instead
/// of following it; the calling thread and the helpers then claim indices from one shared
/// counter until none is left. Which thread runs an index never changes what it computes.
///
/// `prepare` must not wait on work of the current rayon pool: the helpers hold pool threads
/// (spinning, then yielding) until it returns.
fn prepared_for_each<P, E>(
    n: usize,
    parallel: bool,
    prepare: impl FnOnce() -> Result<P, E>,
    work: impl Fn(&P, usize) + Sync,
) -> Result<Arc<P>, E>
where
    P: Send + Sync,
{
    let helpers = if parallel {
        rayon::current_num_threads().min(n).saturating_sub(1)
    } else {
        0
    };
    if helpers == 0 {
        let prepared = prepare()?;
        for i in 0..n {
            work(&prepared, i);
        }
        return Ok(Arc::new(prepared));
    }
    // `Some` once prepared, `None` if preparing failed or panicked: either releases helpers.
    let ready: OnceLock<Option<Arc<P>>> = OnceLock::new();
    // Relaxed: the counter only hands out distinct indices. What `work` writes is published by
    // the end of the scope (rayon's join), the prepared value by `ready`.
    let next = AtomicUsize::new(0);
    let claim = |prepared: &P| loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= n {
            break;
        }
        work(prepared, i);
    };
    rayon::in_place_scope(|scope| {
        // A panic in `prepare` (or anything before it) must still release the helpers, or the
        // scope (which waits for them before it propagates the panic) would never end.
        let _release = ReleaseOnDrop(&ready);
        for _ in 0..helpers {
            scope.spawn(|_| {
                if let Some(prepared) = wait_ready(&ready) {
                    claim(prepared);
                }
            });
        }
        let prepared = Arc::new(prepare()?);
        // The calling thread is the only one that sets `ready`, so this stores `prepared`.
        let _ = ready.set(Some(Arc::clone(&prepared)));
        claim(&prepared);
        Ok(prepared)
    })
}

/// Sets a [`prepared_for_each`] hand-off to "failed" when dropped before it was set.
struct ReleaseOnDrop<'a, P>(&'a OnceLock<Option<Arc<P>>>);

impl<P> Drop for ReleaseOnDrop<'_, P> {
    fn drop(&mut self) {
        // Err when already set (the normal case): nothing to do.
        let _ = self.0.set(None);
    }
}

/// Waits for the calling thread's preparation: spins up to ~40 µs (it takes about as long as a
/// worker's wake-up), then yields its core while it waits.
fn wait_ready<P>(ready: &OnceLock<Option<Arc<P>>>) -> Option<&P> {
    let mut spins = 0u32;
    loop {
        if let Some(prepared) = ready.get() {
            return prepared.as_deref();
        }
        if spins < 1 << 12 {
            spins += 1;
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

impl VectorStore {
    fn tiles(&self) -> Vec<Tile> {
        let mut tiles = Vec::new();
        for (ci, c) in self.chunks.iter().enumerate() {
            let mut start = 0;
            while start < c.len() {
                let len = TILE_ROWS.min(c.len() - start);
                tiles.push(Tile {
                    chunk: ci,
                    start,
                    len,
                });
                start += len;
            }
        }
        tiles
    }

    /// Validates a flat batch; returns the prepared queries packed for their consumer: for
    /// cosine and dot the batch kernel (cosine queries scaled to unit length while they are
    /// packed, one pass, exactly as [`prepare_into`](crate::store::prepare_into) scales them),
    /// for squared L2 flat copies.
    fn prepare_batch(&self, queries: &[f32]) -> Result<PackedQueries, QueryError> {
        let (dim, metric) = (self.dim(), self.metric());
        if !queries.len().is_multiple_of(dim) {
            return Err(QueryError::RaggedBatch {
                len: queries.len(),
                dim,
            });
        }
        let mut inv = Vec::with_capacity(if metric == Metric::Cosine {
            queries.len() / dim
        } else {
            0
        });
        for (i, q) in queries.chunks_exact(dim).enumerate() {
            let norm =
                validate(q, dim, metric).map_err(|error| QueryError::Vector { query: i, error })?;
            if metric == Metric::Cosine {
                inv.push((1.0 / norm) as f32);
            }
        }
        let scale = (metric == Metric::Cosine).then_some(&inv[..]);
        let for_kernel = metric != Metric::L2Squared;
        Ok(PackedQueries::pack(
            queries,
            dim,
            scale,
            GemmBackend::detect(),
            for_kernel,
        ))
    }

    fn parallel(&self, m: usize, exec: Execution) -> bool {
        match exec {
            Execution::Serial => false,
            Execution::Parallel => true,
            Execution::Auto => {
                let rows = self.len() + self.tombstones();
                m.saturating_mul(rows).saturating_mul(self.dim()) >= PARALLEL_MIN_WORK
            }
        }
    }

    /// Writes the scores of every tile row (live or not) against every prepared query to `out`
    /// (`tile.len × m`, row-major, possibly uninitialised) and returns it initialised: every
    /// element is written, none is read first.
    fn tile_scores<'o>(
        &self,
        q: &PackedQueries,
        tile: Tile,
        out: &'o mut [MaybeUninit<f32>],
    ) -> &'o mut [f32] {
        let dim = self.dim();
        let m = q.len();
        let chunk: &Chunk = &self.chunks[tile.chunk];
        let rows = &chunk.data[tile.start * dim..(tile.start + tile.len) * dim];
        debug_assert_eq!(out.len(), tile.len * m);
        match self.metric() {
            Metric::Cosine => {
                let inv = &chunk.aux[tile.start..tile.start + tile.len];
                let out = kernels::rows_times_queries(rows, q, Finish::Cosine(inv), out);
                // A row with a norm near `f32::MAX` can overflow the kernel's f32 sums: score
                // it as a single query does, which cannot.
                let mut query = Vec::new();
                if m > 0 {
                    for (r, (line, &aux)) in out.chunks_exact_mut(m).zip(inv).enumerate() {
                        if aux >= COSINE_OVERFLOW_AUX {
                            continue;
                        }
                        let v = chunk.row(tile.start + r, dim);
                        for (j, s) in line.iter_mut().enumerate() {
                            q.query_into(j, &mut query);
                            *s = sanitize(cosine_score(&query, v, aux));
                        }
                    }
                }
                out
            }
            Metric::Dot => {
                let out = kernels::rows_times_queries(rows, q, Finish::Sanitize, out);
                // A score whose f32 chain overflowed (`±inf`, or NaN made `-inf`; only for
                // components near `f32::MAX`) is rescored as a single query does, which sums
                // in f64 then: the true dot product, infinite only beyond f32's range.
                let mut query = Vec::new();
                if m > 0 {
                    for (r, line) in out.chunks_exact_mut(m).enumerate() {
                        if line.iter().all(|s| s.is_finite()) {
                            continue;
                        }
                        let v = chunk.row(tile.start + r, dim);
                        for (j, s) in line.iter_mut().enumerate() {
                            if !s.is_finite() {
                                q.query_into(j, &mut query);
                                *s = sanitize(dot_score(&query, v));
                            }
                        }
                    }
                }
                out
            }
            Metric::L2Squared => {
                let out = kernels::init_filled(out, f32::NAN);
                if let (Some(flat), true) = (q.flat(), m > 0) {
                    for (r, line) in out.chunks_exact_mut(m).enumerate() {
                        let v = chunk.row(tile.start + r, dim);
                        for (s, qv) in line.iter_mut().zip(flat.chunks_exact(dim)) {
                            *s = sanitize(-l2sq_f32_unchecked_len(qv, v));
                        }
                    }
                }
                out
            }
        }
    }

    /// Offers one tile's rows (the live ones) to `sel`, scored into its buffer.
    fn select_tile(&self, q: &PackedQueries, tile: Tile, sel: &mut Selection) {
        let chunk = &self.chunks[tile.chunk];
        sel.offer_tile(
            tile.len,
            |out| self.tile_scores(q, tile, out),
            |r| {
                let row = tile.start + r;
                chunk.live[row].then(|| VectorId(chunk.ids[row]))
            },
        );
    }

    /// [`batch_top_k_with`](Self::batch_top_k_with) with [`Execution::Auto`].
    ///
    /// `queries` is a flat buffer of `m × dim` floats (query `i` at `i*dim..(i+1)*dim`).
    ///
    /// Time: O(m · n · dim / p) on p threads, plus O(m · n) compares and O(m · n log k) heap
    /// work at worst (expected O(m · p · k log(n / k) log k) for rows in random order).
    ///
    /// ```
    /// use rhospace_vectordb::{Metric, VectorStore};
    /// let mut s = VectorStore::new(2, Metric::Cosine).unwrap();
    /// let a = s.insert(&[1.0, 0.0]).unwrap();
    /// let b = s.insert(&[0.0, 1.0]).unwrap();
    /// let res = s.batch_top_k(&[1.0, 0.1, 0.1, 1.0], 1).unwrap();
    /// assert_eq!((res[0][0].id, res[1][0].id), (a, b));
    /// ```
    pub fn batch_top_k(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Hit>>, QueryError> {
        self.batch_top_k_with(queries, k, Execution::Auto)
    }

    /// The `k` best live vectors for each of the `m` queries in `queries` (flat, `m × dim`),
    /// best first, ties by smaller id. The result does not depend on `exec` or on the number of
    /// threads (see the module docs); any invalid query rejects the whole batch.
    ///
    /// Time: O(m · n · dim / p) on p threads, plus O(m · n) compares and O(m · n log k) heap
    /// work at worst (expected O(m · p · k log(n / k) log k) for rows in random order).
    ///
    /// ```
    /// use rhospace_vectordb::{Execution, Metric, QueryError, VectorStore};
    /// let s = VectorStore::new(2, Metric::Dot).unwrap();
    /// assert_eq!(
    ///     s.batch_top_k_with(&[1.0, 2.0, 3.0], 1, Execution::Serial),
    ///     Err(QueryError::RaggedBatch { len: 3, dim: 2 })
    /// );
    /// ```
    pub fn batch_top_k_with(
        &self,
        queries: &[f32],
        k: usize,
        exec: Execution,
    ) -> Result<Vec<Vec<Hit>>, QueryError> {
        if k == 0 {
            return Err(QueryError::ZeroK);
        }
        let tiles = self.tiles();
        let m = queries.len() / self.dim();
        // Selections not in use, each kept across the tiles it is given (see `select`): a
        // thread takes one (or makes one) per tile and puts it back, so there are at most as
        // many as threads ran at once. Which tiles a selection saw never changes the result.
        let idle: Mutex<Vec<Selection>> = Mutex::new(Vec::new());
        // Relaxed: published by the end of `prepared_for_each` (rayon's join), like the
        // selections themselves.
        let done: Vec<AtomicBool> = tiles.iter().map(|_| AtomicBool::new(false)).collect();
        let q = prepared_for_each(
            tiles.len(),
            self.parallel(m, exec),
            || self.prepare_batch(queries),
            |q, i| {
                let mut sel = lock(&idle)
                    .pop()
                    .unwrap_or_else(|| Selection::new(q.len(), k));
                self.select_tile(q, tiles[i], &mut sel);
                done[i].store(true, Ordering::Relaxed);
                lock(&idle).push(sel);
            },
        )?;
        let m = q.len();
        if m == 0 {
            return Ok(Vec::new());
        }
        let mut idle = idle.into_inner().unwrap_or_else(PoisonError::into_inner);
        let mut merged = idle.pop().unwrap_or_else(|| Selection::new(m, k));
        for sel in idle {
            merged.merge(sel);
        }
        for (tile, done) in tiles.iter().zip(&done) {
            // Every tile ran (each index exactly once); selected here otherwise.
            if !done.load(Ordering::Relaxed) {
                self.select_tile(&q, *tile, &mut merged);
            }
        }
        Ok(merged.into_sorted())
    }

    /// Scores of every query in `queries` (flat, `m × dim`) against every live vector, as one
    /// matrix. With [`Execution::Auto`] threading; results never depend on the thread count.
    ///
    /// Time: O(m · n · dim / p) on p threads. Space: O(m · n).
    ///
    /// ```
    /// use rhospace_vectordb::{Metric, VectorStore};
    /// let mut s = VectorStore::new(2, Metric::Cosine).unwrap();
    /// s.insert(&[1.0, 0.0]).unwrap();
    /// let m = s.similarity_matrix(&[2.0, 0.0, 0.0, 3.0]).unwrap();
    /// assert_eq!(m.as_slice(), &[1.0, 0.0]);
    /// ```
    pub fn similarity_matrix(&self, queries: &[f32]) -> Result<ScoreMatrix, QueryError> {
        self.similarity_matrix_with(queries, Execution::Auto)
    }

    /// [`similarity_matrix`](Self::similarity_matrix) with an explicit [`Execution`].
    ///
    /// ```
    /// use rhospace_vectordb::{Execution, Metric, VectorStore};
    /// let mut s = VectorStore::new(2, Metric::Dot).unwrap();
    /// s.insert(&[1.0, 0.5]).unwrap();
    /// let q = [1.0, 2.0];
    /// assert_eq!(
    ///     s.similarity_matrix_with(&q, Execution::Serial).unwrap(),
    ///     s.similarity_matrix_with(&q, Execution::Parallel).unwrap()
    /// );
    /// ```
    pub fn similarity_matrix_with(
        &self,
        queries: &[f32],
        exec: Execution,
    ) -> Result<ScoreMatrix, QueryError> {
        let m = queries.len() / self.dim();
        let tiles = self.tiles();
        let rows: usize = tiles.iter().map(|t| t.len).sum();
        let total = rows.saturating_mul(m);
        // No zero fill: each tile writes its own part of the output (in parallel when the
        // tiles are), and the buffer's length is set once every part is written. The buffer
        // is reserved before the queries are validated so that helper threads can start while
        // they are (see `prepared_for_each`); an invalid batch only wastes the reservation.
        // One too big to reserve is validated first, so that an invalid batch is an error
        // rather than an allocation failure (a valid one then fails as any `Vec` does).
        let mut scores: Vec<f32> = Vec::new();
        if scores.try_reserve_exact(total).is_err() {
            self.prepare_batch(queries)?;
            scores.reserve_exact(total);
        }
        // One disjoint output part per tile, in tile order, taken by whichever thread claims
        // the tile.
        let mut rest = &mut scores.spare_capacity_mut()[..total];
        let mut parts: Vec<OutputPart<'_>> = Vec::with_capacity(tiles.len());
        for &t in &tiles {
            let (head, tail) = rest.split_at_mut(t.len * m);
            parts.push(Mutex::new(Some((t, head))));
            rest = tail;
        }
        let q = prepared_for_each(
            parts.len(),
            self.parallel(m, exec),
            || self.prepare_batch(queries),
            |q, i| {
                if let Some((t, out)) = take_part(&parts[i]) {
                    self.tile_scores(q, t, out);
                }
            },
        )?;
        debug_assert_eq!(q.len(), m);
        for part in &parts {
            // Every part was taken (each tile ran exactly once); written here otherwise.
            if let Some((t, out)) = take_part(part) {
                self.tile_scores(&q, t, out);
            }
        }
        drop(parts);
        // SAFETY: the parts cover `0..total` (the tile lengths sum to `rows`, each part is
        // `len × m`), and every part went through `tile_scores` exactly once (taken from its
        // slot by `prepared_for_each` or just above), which initialises all of its `out` before
        // returning, whatever its length (it returns that memory as `&mut [f32]`; on a length
        // that does not fit, the kernel fills it with NaN). Had a tile panicked, the panic
        // would have left this function before this line.
        #[allow(unsafe_code)]
        unsafe {
            scores.set_len(total);
        }
        let mut ids = Vec::with_capacity(self.len());
        if self.tombstones() == 0 {
            for c in &self.chunks {
                ids.extend(c.ids.iter().map(|&i| VectorId(i)));
            }
        } else {
            // Drop the columns of tombstoned rows, keeping order.
            let mut kept = Vec::with_capacity(self.len() * m);
            let mut col = 0;
            for c in &self.chunks {
                for row in 0..c.len() {
                    if c.live[row] {
                        ids.push(VectorId(c.ids[row]));
                        kept.extend_from_slice(&scores[col * m..(col + 1) * m]);
                    }
                    col += 1;
                }
            }
            scores = kept;
        }
        Ok(ScoreMatrix {
            ids,
            queries: m,
            scores,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    /// Every index runs exactly once, on pools of several sizes, called from inside and from
    /// outside the pool; a failed preparation runs nothing.
    #[test]
    fn prepared_for_each_runs_each_index_once() {
        for threads in [1, 2, 3, 8] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            for n in [0usize, 1, 2, 5, 64] {
                for parallel in [false, true] {
                    let counts: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
                    let run = || {
                        prepared_for_each(
                            n,
                            parallel,
                            || Ok::<_, ()>(7usize),
                            |&p, i| {
                                assert_eq!(p, 7);
                                counts[i].fetch_add(1, Ordering::Relaxed);
                            },
                        )
                    };
                    assert_eq!(pool.install(run).map(|p| *p), Ok(7));
                    assert_eq!(run().map(|p| *p), Ok(7));
                    assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 2));
                    let failed = pool.install(|| {
                        prepared_for_each(
                            n,
                            parallel,
                            || Err::<usize, _>("no"),
                            |_, _| panic!("nothing runs after a failed preparation"),
                        )
                    });
                    assert_eq!(failed.map(|p| *p), Err("no"));
                }
            }
        }
    }

    /// A panic while preparing still releases the helpers that wait for it: the panic comes
    /// back to the caller instead of a hang.
    #[test]
    fn prepared_for_each_propagates_a_panic_in_prepare() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let result = catch_unwind(AssertUnwindSafe(|| {
            pool.install(|| {
                prepared_for_each(
                    8,
                    true,
                    || -> Result<usize, ()> { panic!("prepare failed") },
                    |_, _| {},
                )
            })
        }));
        assert!(result.is_err());
    }
}
