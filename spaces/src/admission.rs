//! Admission: what an operation is about to do, shown to a gate before anything changes.
//!
//! Every mutating operation runs in two phases under the space's lock: a read-only search,
//! then the change. Between them the space calls a gate with an [`Admission`]; if the gate
//! refuses (out of phlogiston), the operation returns the typed error and the space is exactly
//! as it was. [`ChargingSpace`](crate::ChargingSpace) is such a gate.

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
    /// Matcher calls the search made (matching work).
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
/// Every `FnOnce(&Admission) -> Result<(), OutOfPhlogiston>` is one (the public `*_admitted`
/// operations take such closures). [`Open`] admits everything without looking, so an
/// ungated call never builds the admission (for a firing, a walk over the data it frees).
pub(crate) trait Gate<C, P, A, K>: Sized {
    /// Admits or refuses the operation that `build` describes, calling it only if needed.
    fn admit<'s>(
        self,
        build: impl FnOnce() -> Admission<'s, C, P, A, K>,
    ) -> Result<(), OutOfPhlogiston>
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
    ) -> Result<(), OutOfPhlogiston>
    where
        C: 's,
        P: 's,
        A: 's,
        K: 's,
    {
        self(&build())
    }
}

/// The gate of the ungated operations (`produce`, `consume`, the batches): admits everything
/// and never builds the admission. (`install` builds only a storing admission, which is
/// cheap, and keeps its closure.)
pub(crate) struct Open;

impl<C, P, A, K> Gate<C, P, A, K> for Open {
    #[inline]
    fn admit<'s>(self, _: impl FnOnce() -> Admission<'s, C, P, A, K>) -> Result<(), OutOfPhlogiston>
    where
        C: 's,
        P: 's,
        A: 's,
        K: 's,
    {
        Ok(())
    }
}
