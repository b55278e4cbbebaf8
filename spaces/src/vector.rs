//! The VectorDB data collection: a channel whose data carry embeddings, ranked by similarity.
//!
//! # Algorithm
//!
//! A VectorDB channel ([`DataKind::VectorDb`](crate::DataKind::VectorDb)) keeps two persistent
//! structures side by side:
//!
//! * **items**: an `imbl::OrdMap` from a stable item number (assigned in arrival order, never
//!   reused, never renumbered) to the stored datum. It is the truth of which data are live.
//! * **index** ([`VecIndex`]): each indexed datum's embedding, copied once at produce time,
//!   with its inverse norm. Full *blocks* of [`BLOCK_ROWS`] rows are one flat row-major `f32`
//!   buffer behind an `Arc`, immutable once sealed, kept in an `imbl::Vector`; the newest rows
//!   (fewer than `BLOCK_ROWS`) sit in a *tail* of per-row `Arc<[f32]>`s, also an
//!   `imbl::Vector`. When the tail fills it is sealed into a block (an O(`BLOCK_ROWS` · d) copy,
//!   O(d) amortised per produce). Removal never touches the index: the row becomes dead
//!   because its item number left `items`; a scan skips it when it looks the item up. When dead
//!   rows outnumber live ones (plus `BLOCK_ROWS`), [`VecItems::tidy`] rebuilds the index from
//!   the live rows (O(n · d), amortised O(d) per removal).
//!
//! A similarity consume ([`rhospace_matchers::Match::similarity`]) whose query has the
//! channel's dimension and metric scans the index with the vectordb SIMD kernel
//! ([`rhospace_vectordb::Query::score_row`]); data without an index row (produced through a path
//! that did not supply the embedding), a query of another metric, and the produced datum not
//! yet stored are scored through the matcher's [`embedding`](rhospace_matchers::Match::embedding)
//! with [`rhospace_vectordb::Query::score`], which computes the same bits. Candidates above the
//! threshold are offered **best score first, ties oldest first** (smaller item number); the
//! first `need` are selected and sorted, the rest only if the join search asks for more.
//!
//! # Guarantees
//!
//! * **O(1) clone** (soft checkpoints): `OrdMap`, `imbl::Vector` and the `Arc`ed blocks are all
//!   shared; a produce after a checkpoint copies O(log n) tree nodes and one row, never a block.
//! * **Determinism**: the order is a total order on (score by `f32::total_cmp`, item number);
//!   no hash-map order is involved. Scores are bit-identical between the index scan and the
//!   matcher (both use the one formula in `rhospace_vectordb`), and on every CPU: that formula
//!   sums in one fixed order whatever SIMD width runs it, so validators on different hardware
//!   rank near-ties and judge thresholds alike (SPEC §3).
//! * Nothing here panics on any input: rows of the wrong length score `-inf` and are never
//!   stored by the space, which validates first.
//!
//! # Costs
//!
//! | operation | time |
//! |---|---|
//! | push (indexed) | O(log n + d) amortised |
//! | take | O(log n) |
//! | clone | O(1) |
//! | similarity candidates | O((n + dead) · d) scan + O(h + need · log need) selection, h = hits |
//! | other patterns | O(n) in arrival order, as a Bag |
//!
//! # Limits
//!
//! * The scan is exhaustive (no ANN graph); it reads every row once per similarity position.
//! * Embeddings are stored twice: in the datum and in the index (the index owns its copy so its
//!   blocks stay contiguous).

use std::cmp::Ordering;
use std::ops::ControlFlow;
use std::sync::Arc;

use imbl::{OrdMap, OrdSet, Vector};
use rhospace_matchers::SimilarityPattern;
use rhospace_vectordb::{check_row, Metric, Query, VectorError};

use crate::data::StoredDatum;

/// Rows per sealed block: the unit of contiguous scanning. A seal copies one tail of this many
/// rows once.
pub(crate) const BLOCK_ROWS: usize = 256;

/// A sealed block: `ids.len()` rows, row-major, immutable.
#[derive(Debug)]
struct Block {
    ids: Vec<u64>,
    data: Vec<f32>,
    inv_norms: Vec<f32>,
}

/// A row not yet sealed into a block.
#[derive(Clone, Debug)]
struct TailRow {
    id: u64,
    v: Arc<[f32]>,
    inv_norm: f32,
}

/// Embedding rows in item-number order. Holds live and dead rows alike; liveness is decided by
/// the owner's item map.
#[derive(Clone, Debug)]
pub(crate) struct VecIndex {
    dim: usize,
    blocks: Vector<Arc<Block>>,
    tail: Vector<TailRow>,
    rows: usize,
}

impl VecIndex {
    fn new(dim: usize) -> Self {
        VecIndex {
            dim,
            blocks: Vector::new(),
            tail: Vector::new(),
            rows: 0,
        }
    }

    /// Appends a validated row (`v.len() == dim`), with an id above every id held.
    fn push(&mut self, id: u64, v: &[f32], inv_norm: f32) {
        self.tail.push_back(TailRow {
            id,
            v: v.into(),
            inv_norm,
        });
        self.rows += 1;
        if self.tail.len() >= BLOCK_ROWS {
            self.seal();
        }
    }

    fn seal(&mut self) {
        let mut block = Block {
            ids: Vec::with_capacity(self.tail.len()),
            data: Vec::with_capacity(self.tail.len() * self.dim),
            inv_norms: Vec::with_capacity(self.tail.len()),
        };
        for r in self.tail.iter() {
            block.ids.push(r.id);
            block.data.extend_from_slice(&r.v);
            block.inv_norms.push(r.inv_norm);
        }
        self.blocks.push_back(Arc::new(block));
        self.tail = Vector::new();
    }

    /// Every row (live or dead) with its score, in id order.
    fn scan(&self, q: &Query, mut sink: impl FnMut(u64, f32)) {
        let dim = self.dim;
        for b in self.blocks.iter() {
            for ((id, row), inv) in b.ids.iter().zip(b.data.chunks_exact(dim)).zip(&b.inv_norms) {
                sink(*id, q.score_row(row, *inv));
            }
        }
        for r in self.tail.iter() {
            sink(r.id, q.score_row(&r.v, r.inv_norm));
        }
    }

    /// Every row (live or dead), in id order.
    fn for_each_row(&self, mut f: impl FnMut(u64, &[f32], f32)) {
        let dim = self.dim;
        for b in self.blocks.iter() {
            for ((id, row), inv) in b.ids.iter().zip(b.data.chunks_exact(dim)).zip(&b.inv_norms) {
                f(*id, row, *inv);
            }
        }
        for r in self.tail.iter() {
            f(r.id, &r.v, r.inv_norm);
        }
    }
}

/// One candidate of a similarity ranking: item number and score.
#[derive(Clone, Copy, Debug)]
struct Ranked {
    id: u64,
    score: f32,
}

/// Best first: higher score (total order), then smaller item number.
#[inline]
fn rank_cmp(a: &Ranked, b: &Ranked) -> Ordering {
    b.score.total_cmp(&a.score).then(a.id.cmp(&b.id))
}

/// A VectorDB channel's data: live items by number, and the embedding index.
///
/// Invariants: every key of `items` is below `next`; every index row's id is below `next`;
/// `unindexed` is exactly the live items without an index row; `index.rows - (items.len() -
/// unindexed.len())` is the number of dead rows.
#[derive(Clone, Debug)]
pub(crate) struct VecItems<A: Clone> {
    metric: Metric,
    items: OrdMap<u64, StoredDatum<A>>,
    /// Numbers of the live items without an index row (stored by a path that gave no
    /// embedding); empty when the space supplies embeddings.
    unindexed: OrdSet<u64>,
    index: VecIndex,
    next: u64,
}

impl<A: Clone> VecItems<A> {
    pub(crate) fn new(dim: usize, metric: Metric) -> Self {
        VecItems {
            metric,
            items: OrdMap::new(),
            unindexed: OrdSet::new(),
            index: VecIndex::new(dim),
            next: 0,
        }
    }

    #[inline]
    pub(crate) fn dim(&self) -> usize {
        self.index.dim
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    #[inline]
    pub(crate) fn next_seq(&self) -> u64 {
        self.next
    }

    #[inline]
    pub(crate) fn get(&self, seq: u64) -> Option<&StoredDatum<A>> {
        self.items.get(&seq)
    }

    /// Number of index rows whose item is gone.
    #[inline]
    pub(crate) fn dead_rows(&self) -> usize {
        self.index.rows - (self.items.len() - self.unindexed.len())
    }

    /// Stores a datum; indexes it when `embed` gives an embedding valid for this channel (the
    /// space validates before storing; an invalid or missing one leaves the datum unindexed,
    /// still found through the matcher at search time). Returns its number.
    pub(crate) fn push(
        &mut self,
        datum: StoredDatum<A>,
        embed: impl Fn(&A) -> Option<&[f32]>,
    ) -> u64 {
        let seq = self.next;
        self.next += 1;
        let (dim, metric) = (self.dim(), self.metric);
        match embed(&datum.value).map(|e| (e, check_row(e, dim, metric))) {
            Some((e, Ok(inv_norm))) if dim > 0 => self.index.push(seq, e, inv_norm),
            _ => {
                self.unindexed.insert(seq);
            }
        }
        self.items.insert(seq, datum);
        seq
    }

    pub(crate) fn take(&mut self, seq: u64) -> Option<StoredDatum<A>> {
        let d = self.items.remove(&seq)?;
        self.unindexed.remove(&seq);
        Some(d)
    }

    /// Rebuilds the index from live rows when dead rows dominate; drops it when empty.
    pub(crate) fn tidy(&mut self) {
        if self.items.is_empty() {
            self.index = VecIndex::new(self.dim());
            self.unindexed = OrdSet::new();
            return;
        }
        let live_rows = self.items.len() - self.unindexed.len();
        if self.dead_rows() > live_rows + BLOCK_ROWS {
            let mut fresh = VecIndex::new(self.dim());
            let items = &self.items;
            self.index.for_each_row(|id, v, inv| {
                if items.contains_key(&id) {
                    fresh.push(id, v, inv);
                }
            });
            self.index = fresh;
        }
    }

    /// Live items in arrival order.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = (u64, &StoredDatum<A>)> + '_ {
        self.items.iter().map(|(k, v)| (*k, v))
    }

    /// Whether `embedding` may be stored here: the channel's dimension, finite, and non-zero
    /// under cosine.
    pub(crate) fn check(dim: usize, metric: Metric, embedding: &[f32]) -> Result<(), VectorError> {
        if dim == 0 {
            return Err(VectorError::WrongDimension {
                expected: 0,
                found: embedding.len(),
            });
        }
        check_row(embedding, dim, metric).map(|_| ())
    }

    /// Offers the data that `sim` accepts, best score first (ties: smaller number first), with
    /// the produced datum `extra` (number `extra.0`, not stored) at its place. `embed` reads a
    /// datum's embedding (the matcher's); `need` is how many candidates the caller expects to
    /// look at (more are offered if it asks). `f` returns `Break` to stop.
    pub(crate) fn for_each_ranked<'s>(
        &'s self,
        sim: &SimilarityPattern,
        embed: &dyn Fn(&A) -> Option<&[f32]>,
        extra: Option<(u64, &'s StoredDatum<A>)>,
        need: usize,
        mut f: impl FnMut(u64, &'s StoredDatum<A>, bool) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let q = sim.prepared();
        let mut hits: Vec<Ranked> = Vec::new();
        let score_of = |d: &StoredDatum<A>| embed(&d.value).and_then(|e| sim.score(e));
        let indexed = q.metric() == self.metric && q.dim() == self.dim();
        if indexed {
            self.index.scan(q, |id, score| {
                if sim.accepts(score) {
                    hits.push(Ranked { id, score });
                }
            });
            for id in self.unindexed.iter() {
                if let Some(score) = self.items.get(id).and_then(score_of) {
                    if sim.accepts(score) {
                        hits.push(Ranked { id: *id, score });
                    }
                }
            }
        } else {
            for (id, d) in self.items.iter() {
                if let Some(score) = score_of(d) {
                    if sim.accepts(score) {
                        hits.push(Ranked { id: *id, score });
                    }
                }
            }
        }
        if let Some((id, d)) = extra {
            if let Some(score) = score_of(d) {
                if sim.accepts(score) {
                    hits.push(Ranked { id, score });
                }
            }
        }
        let lookup = |id: u64| -> Option<(&'s StoredDatum<A>, bool)> {
            match extra {
                Some((eid, d)) if eid == id => Some((d, true)),
                // Dead rows (their item is gone) are skipped here.
                _ => self.items.get(&id).map(|d| (d, false)),
            }
        };
        // Select and sort the first `need`; sort the rest only when the caller goes on.
        let first = need.max(1).min(hits.len());
        if first < hits.len() {
            hits.select_nth_unstable_by(first, rank_cmp);
        }
        let (head, rest) = hits.split_at_mut(first);
        head.sort_unstable_by(rank_cmp);
        for h in head.iter() {
            if let Some((d, incoming)) = lookup(h.id) {
                f(h.id, d, incoming)?;
            }
        }
        rest.sort_unstable_by(rank_cmp);
        for h in rest.iter() {
            if let Some((d, incoming)) = lookup(h.id) {
                f(h.id, d, incoming)?;
            }
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rhospace_matchers::similarity::Embedding;

    fn datum(v: &[f32]) -> StoredDatum<Embedding> {
        StoredDatum {
            value: Embedding::from(v),
            persist: false,
            priority: 0,
        }
    }

    fn embed(e: &Embedding) -> Option<&[f32]> {
        Some(e.as_slice())
    }

    fn ranked(items: &VecItems<Embedding>, sim: &SimilarityPattern) -> Vec<u64> {
        let mut out = Vec::new();
        let _ = items.for_each_ranked(sim, &embed, None, 1, |id, _, _| {
            out.push(id);
            ControlFlow::Continue(())
        });
        out
    }

    #[test]
    fn ranks_best_first_ties_oldest_first_across_blocks_and_tail() {
        let mut s = VecItems::new(2, Metric::Dot);
        // 600 rows: two sealed blocks and a tail; scores repeat every 7.
        for i in 0..600u32 {
            let x = (i % 7) as f32;
            let d = datum(&[x, 1.0]);
            s.push(d, |v: &Embedding| Some(v.as_slice()));
        }
        assert_eq!(s.index.blocks.len(), 2);
        let sim = SimilarityPattern::best([1.0, 0.0], Metric::Dot, 5.0).unwrap();
        let got = ranked(&s, &sim);
        let mut want: Vec<u64> = (0..600).filter(|i| i % 7 == 6).collect();
        want.extend((0..600).filter(|i| i % 7 == 5));
        assert_eq!(got, want);
    }

    #[test]
    fn dead_rows_are_skipped_and_compaction_keeps_order() {
        let mut s = VecItems::new(1, Metric::Dot);
        for i in 0..1000u32 {
            let d = datum(&[i as f32]);
            s.push(d, |v: &Embedding| Some(v.as_slice()));
        }
        let snapshot = s.clone();
        for i in (0..1000u64).filter(|i| i % 10 != 0) {
            assert!(s.take(i).is_some());
        }
        assert_eq!(s.dead_rows(), 900);
        let sim = SimilarityPattern::best([1.0], Metric::Dot, 500.0).unwrap();
        let before = ranked(&s, &sim);
        s.tidy();
        assert_eq!(s.dead_rows(), 0);
        assert_eq!(s.index.rows, 100);
        assert_eq!(ranked(&s, &sim), before);
        assert_eq!(
            before,
            (50..100).rev().map(|i| i * 10).collect::<Vec<u64>>()
        );
        // The snapshot is untouched.
        assert_eq!(ranked(&snapshot, &sim).len(), 500);
    }

    #[test]
    fn unindexed_and_other_metric_queries_score_through_the_embedding() {
        let mut s = VecItems::new(2, Metric::Cosine);
        s.push(datum(&[1.0, 0.0]), |_| None);
        let d = datum(&[0.0, 1.0]);
        s.push(d, |v: &Embedding| Some(v.as_slice()));
        assert_eq!(s.unindexed.len(), 1);
        let cos = SimilarityPattern::best([1.0, 1.0], Metric::Cosine, 0.5).unwrap();
        assert_eq!(ranked(&s, &cos), vec![0, 1]);
        let l2 = SimilarityPattern::best([0.0, 2.0], Metric::L2Squared, -1.5).unwrap();
        assert_eq!(ranked(&s, &l2), vec![1]);
        assert!(s.take(0).is_some());
        assert!(s.unindexed.is_empty());
    }

    #[test]
    fn check_rejects_bad_embeddings() {
        type V = VecItems<()>;
        assert_eq!(
            V::check(3, Metric::Dot, &[1.0]),
            Err(VectorError::WrongDimension {
                expected: 3,
                found: 1
            })
        );
        assert_eq!(
            V::check(1, Metric::Dot, &[f32::INFINITY]),
            Err(VectorError::NonFinite { index: 0 })
        );
        assert_eq!(
            V::check(2, Metric::Cosine, &[0.0, 0.0]),
            Err(VectorError::ZeroVector)
        );
        assert!(V::check(2, Metric::Dot, &[0.0, 0.0]).is_ok());
        assert!(V::check(0, Metric::Dot, &[]).is_err());
    }
}
