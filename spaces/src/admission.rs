//! Admission: what an operation is about to do, shown to a gate before anything changes.
//!
//! Every mutating operation runs in two phases under the space's lock: a read-only search,
//! then the change. Between them the space calls a gate with an [`Admission`]; if the gate
//! refuses (out of phlogiston), the operation returns the typed error and the space is exactly
//! as it was; if it admits, the change follows under the same locks and cannot fail.
//! [`ChargingSpace`](crate::ChargingSpace) is such a gate.

use rhospace_phlogiston::OutOfPhlogiston;
use smallvec::SmallVec;

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
#[derive(Debug)]
pub struct Admission<'a, C, P, A, K> {
    /// The operation.
    pub op: OpKind,
    /// Matcher calls the search made, plus the data its similarity rankings scored on
    /// VectorDB channels (matching work).
    pub examined: u64,
    /// `Some(positions)` when a COMM will fire, with the number of positions.
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
            fires: None,
            stores,
            freed_data: SmallVec::new(),
            freed_continuation: None,
        }
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

/// A gate that returns a credit for the space's refund ledger: what it refunded for the
/// storage the admitted operation frees (see [`Gate`]).
pub(crate) struct Credited<F>(pub(crate) F);

impl<C, P, A, K, F> Gate<C, P, A, K> for Credited<F>
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
