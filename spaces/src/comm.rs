//! The report of one firing.

use std::sync::Arc;

use smallvec::SmallVec;

use crate::conts::Peeks;

/// What one position of a COMM matched.
///
/// ```
/// use rhospace_spaces::MatchedDatum;
/// let m = MatchedDatum { result: (), datum: 5u8, persistent: false };
/// assert_eq!(m.datum, 5);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchedDatum<A, R> {
    /// What the matcher returned (bindings, a transformed value, a score).
    pub result: R,
    /// The stored (or produced) value it matched.
    pub datum: A,
    /// Whether that datum was persistent.
    pub persistent: bool,
}

/// One firing: a continuation with the data that satisfied it (SPEC §2).
///
/// `channels`, `patterns` and `matches` are in the consume's order, one entry per position,
/// repeats included: position `i` read `channels[i]` with `patterns[i]` and matched
/// `matches[i]`.
///
/// **Re-issue contract.** `reissue` is true when the item this call brought in (the produced
/// datum, or the consume's continuation) fired but was not used up: a persistent produce or
/// consume, or a produced datum the continuation only peeked at. It was **not** stored; the
/// caller re-issues the same call if it wants it to stay.
///
/// ```
/// use rhospace_spaces::{Space, SpaceConfig};
/// use rhospace_matchers::ExactMatch;
/// let space: Space<&str, i32, i32, &str, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
/// space.produce("ch", 1, true).unwrap();
/// let comm = space.consume(["ch"], [1], "k", false, &[]).unwrap().unwrap();
/// assert_eq!(comm.continuation, "k");
/// assert_eq!(comm.matches[0].datum, 1);
/// assert!(comm.matches[0].persistent);
/// assert!(!comm.reissue);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comm<C, P, A, K, R> {
    /// The continuation that fired.
    pub continuation: K,
    /// Its channel list, in the consume's order.
    pub channels: Arc<[C]>,
    /// Its patterns, in the consume's order.
    pub patterns: Arc<[P]>,
    /// Whether the continuation was persistent.
    pub persistent: bool,
    /// Positions that peeked.
    pub peeks: Peeks,
    /// What each position matched.
    pub matches: SmallVec<[MatchedDatum<A, R>; 2]>,
    /// The incoming item fired but was not used up, and was not stored (see above).
    pub reissue: bool,
}
