//! Admission: what an operation is about to do, shown to a gate before anything changes.
//!
//! Every mutating operation runs in two phases under the space's lock: a read-only search,
//! then the change. Between them the space calls a gate with an [`Admission`]; if the gate
//! refuses (out of phlogiston), the operation returns the typed error and the space is exactly
//! as it was; if it admits, the change follows under the same locks and cannot fail.
//! [`ChargingSpace`](crate::ChargingSpace) is such a gate.

use rhospace_phlogiston::OutOfPhlogiston;
use smallvec::SmallVec;

use crate::budget::Allowance;
use crate::conts::WaitingContinuation;
use crate::data::StoredDatum;

/// Which operation is being admitted.
///
/// ```
/// use rhospace_spaces::OpKind;
/// assert_ne!(OpKind::Produce, OpKind::Consume);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// `produce` / `produce_with_priority`.
    Produce,
    /// `consume`.
    Consume,
    /// `install`.
    Install,
}

/// What an operation will do if admitted. References point into the current state.
///
/// ```
/// use rhospace_spaces::{Admission, OpKind, Space, SpaceConfig};
/// use rhospace_matchers::ExactMatch;
/// let s: Space<u8, u8, u8, u8, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
/// s.produce(0, 5, false).unwrap();
/// let mut seen = None;
/// s.consume_admitted([0u8], [5u8], 1, false, &[], |a: &Admission<'_, u8, u8, u8, u8>| {
///     seen = Some((a.op, a.fires, a.freed_data.len()));
///     Ok(())
/// }).unwrap();
/// assert_eq!(seen, Some((OpKind::Consume, Some(1), 1)));
/// ```
///
/// Only the space builds it (`#[non_exhaustive]`): later versions may report more work
/// without breaking a gate that reads it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Admission<'a, C, P, A, K> {
    /// The operation.
    pub op: OpKind,
    /// Matcher calls the search made, plus the data its similarity rankings scored on
    /// VectorDB channels (matching work). A produce first checks its datum against each
    /// waiting continuation it is offered, at the continuation's positions on its channel:
    /// those calls count when the check fails, and when it passes but the search then fires
    /// nothing (a search that fires called the matcher at the datum's positions itself, so they
    /// are not counted twice). A join group that walks by key (16 or more one-channel Bag or
    /// Set continuations, all with exact keys) offers only the continuations whose key is the
    /// datum; the others are neither tried nor counted.
    pub examined: u64,
    /// The similarity rankings the search ran on VectorDB channels and the vector elements
    /// scored, by rankings and by matcher calls on similarity patterns (vector-search work,
    /// priced by dimension).
    pub vector: VectorWork,
    /// `Some(data)` when a COMM will fire, with the number of data it takes or peeks: its
    /// `matches`, one per position and `k` for a top-k position (the unit of
    /// [`CostTable::comm`](rhospace_phlogiston::CostTable::comm)).
    pub fires: Option<usize>,
    /// Whether the incoming item (datum or continuation) will be stored.
    pub stores: bool,
    /// Stored data the COMM will consume (and so free), with their channels.
    pub freed_data: SmallVec<[(&'a C, &'a StoredDatum<A>); 4]>,
    /// The stored continuation the COMM will consume (and so free), with its channels.
    pub freed_continuation: Option<(&'a [C], &'a WaitingContinuation<P, K>)>,
}

impl<C, P, A, K> Admission<'_, C, P, A, K> {
    /// An operation that fires nothing.
    pub(crate) fn storing(op: OpKind, examined: u64, stores: bool) -> Self {
        Self {
            op,
            examined,
            vector: VectorWork::default(),
            fires: None,
            stores,
            freed_data: SmallVec::new(),
            freed_continuation: None,
        }
    }

    /// The same admission with the search's vector work.
    #[inline]
    pub(crate) fn with_vector(mut self, vector: VectorWork) -> Self {
        self.vector = vector;
        self
    }
}

/// Similarity-search work: the rankings a search ran on VectorDB channels, and the vector
/// elements scored: for each ranking, the data it scored times the channel's dimension; for
/// each matcher call on a similarity pattern (which scores one datum), the dimension.
/// [`ChargingSpace`](crate::ChargingSpace) prices it with
/// [`CostTable::vector_work`](rhospace_phlogiston::CostTable::vector_work).
///
/// ```
/// use rhospace_spaces::VectorWork;
/// let mut w = VectorWork::default();
/// w.add_ranking(3, 4); // a ranking that scored 3 vectors of dimension 4
/// assert_eq!(w, VectorWork { searches: 1, elements: 12 });
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VectorWork {
    /// Similarity rankings run: one per visit of a similarity position whose VectorDB channel
    /// has a store (no ranking on other kinds, on a channel with no entry, or where the
    /// produced datum alone can fill the position).
    pub searches: u64,
    /// Vector elements scored: over the rankings, vectors scored × the channel's dimension,
    /// plus the pattern's dimension for each matcher call on a similarity pattern (on any
    /// channel kind; a produce's pre-check counts as `examined` does, see there).
    pub elements: u64,
}

impl VectorWork {
    /// Counts one ranking that scored `vectors` vectors of `dim` elements (saturating).
    ///
    /// ```
    /// use rhospace_spaces::VectorWork;
    /// let mut w = VectorWork::default();
    /// w.add_ranking(u64::MAX, 2);
    /// assert_eq!(w.elements, u64::MAX);
    /// ```
    #[inline]
    pub fn add_ranking(&mut self, vectors: u64, dim: usize) {
        self.searches = self.searches.saturating_add(1);
        let dim = u64::try_from(dim).unwrap_or(u64::MAX);
        self.elements = self.elements.saturating_add(vectors.saturating_mul(dim));
    }

    /// Counts `elements` vector elements scored outside a ranking (a matcher call on a
    /// similarity pattern scores one datum: its dimension).
    #[inline]
    pub(crate) fn add_elements(&mut self, elements: u64) {
        self.elements = self.elements.saturating_add(elements);
    }

    /// Adds another search's work (saturating).
    ///
    /// ```
    /// use rhospace_spaces::VectorWork;
    /// let mut w = VectorWork { searches: 1, elements: 10 };
    /// w.add(VectorWork { searches: 2, elements: 5 });
    /// assert_eq!(w, VectorWork { searches: 3, elements: 15 });
    /// ```
    #[inline]
    pub fn add(&mut self, other: VectorWork) {
        self.searches = self.searches.saturating_add(other.searches);
        self.elements = self.elements.saturating_add(other.elements);
    }
}

/// A gate on an operation: it decides on the [`Admission`] before any change and may refuse.
///
/// Nothing fails after a gate admits: the operation then certainly makes the change it
/// described, under the same locks. A gate may therefore act on its decision at once (a
/// [`ChargingSpace`](crate::ChargingSpace) refunds the storage the operation frees from inside
/// its gate), and what it returns is a **credit** that the space adds to its refund ledger
/// (`Shard::ledger`) in the same critical section as the change. The ledger is what a
/// soft checkpoint records and a settled revert compares, so a credit and the change it pays
/// for are never seen apart.
///
/// Every `FnOnce(&Admission) -> Result<(), OutOfPhlogiston>` is one, crediting nothing (the
/// public `*_admitted` operations take such closures). [`Open`] admits everything without
/// looking, so an ungated call never builds the admission (for a firing, a walk over the data
/// it frees). [`Credited`] wraps a closure that returns its credit.
pub(crate) trait Gate<C, P, A, K>: Sized {
    /// Admits the operation that `build` describes, returning its credit, or refuses it;
    /// calls `build` only if needed.
    fn admit<'s>(
        self,
        build: impl FnOnce() -> Admission<'s, C, P, A, K>,
    ) -> Result<u64, OutOfPhlogiston>
    where
        C: 's,
        P: 's,
        A: 's,
        K: 's;

    /// What the gate will charge apart from the search's work, when it charges a meter: the
    /// operation's search then stops once its work, with that fixed price, costs more than
    /// the meter holds (see
    /// [`crate::budget`]). `None` (the default): the search runs to its end.
    #[inline]
    fn allowance(&self) -> Option<Allowance<'_>> {
        None
    }
}

impl<C, P, A, K, F> Gate<C, P, A, K> for F
where
    F: FnOnce(&Admission<'_, C, P, A, K>) -> Result<(), OutOfPhlogiston>,
{
    #[inline]
    fn admit<'s>(
        self,
        build: impl FnOnce() -> Admission<'s, C, P, A, K>,
    ) -> Result<u64, OutOfPhlogiston>
    where
        C: 's,
        P: 's,
        A: 's,
        K: 's,
    {
        self(&build()).map(|()| 0)
    }
}

/// A gate that charges a meter (its [`Allowance`], which caps the search) and returns a
/// credit for the space's refund ledger: what it refunded for the storage the admitted
/// operation frees (see [`Gate`]).
pub(crate) struct Credited<'b, F>(pub(crate) F, pub(crate) Allowance<'b>);

impl<C, P, A, K, F> Gate<C, P, A, K> for Credited<'_, F>
where
    F: FnOnce(&Admission<'_, C, P, A, K>) -> Result<u64, OutOfPhlogiston>,
{
    #[inline]
    fn admit<'s>(
        self,
        build: impl FnOnce() -> Admission<'s, C, P, A, K>,
    ) -> Result<u64, OutOfPhlogiston>
    where
        C: 's,
        P: 's,
        A: 's,
        K: 's,
    {
        (self.0)(&build())
    }

    #[inline]
    fn allowance(&self) -> Option<Allowance<'_>> {
        Some(self.1)
    }
}

/// The gate of the ungated operations (`produce`, `consume`, the batches): admits everything,
/// credits nothing and never builds the admission. (`install` builds only a storing admission,
/// which is cheap, and keeps its closure.)
pub(crate) struct Open;

impl<C, P, A, K> Gate<C, P, A, K> for Open {
    #[inline]
    fn admit<'s>(
        self,
        _: impl FnOnce() -> Admission<'s, C, P, A, K>,
    ) -> Result<u64, OutOfPhlogiston>
    where
        C: 's,
        P: 's,
        A: 's,
        K: 's,
    {
        Ok(0)
    }
}
