//! The report of one firing.

use smallvec::SmallVec;

use crate::call_list::CallList;
use crate::conts::Peeks;

/// One datum a COMM matched, at position `position` of the consume.
///
/// Every position matches one datum, except a top-k similarity position
/// ([`Take::TopK`](rhospace_matchers::similarity::Take::TopK)), which matches `k`: they are
/// consecutive entries with the same `position`, best first.
///
/// ```
/// use rhospace_spaces::MatchedDatum;
/// let m = MatchedDatum { position: 0, result: (), datum: 5u8, persistent: false };
/// assert_eq!(m.datum, 5);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchedDatum<A, R> {
    /// The consume position (index into the COMM's `channels` and `patterns`) it matched at.
    ///
    /// A `u32` (positions are below [`MAX_JOIN`](crate::MAX_JOIN)): with a `usize` here a
    /// COMM of `u64` channels, patterns and data outgrew 128 bytes, and every move of one
    /// (returning it, unwrapping it) became a `memcpy` call.
    pub position: u32,
    /// What the matcher returned (bindings, a transformed value, a score).
    pub result: R,
    /// The stored (or produced) value it matched.
    pub datum: A,
    /// Whether that datum was persistent.
    pub persistent: bool,
}

/// One firing: a continuation with the data that satisfied it (SPEC §2).
///
/// `channels` and `patterns` are in the consume's order, one entry per position, repeats
/// included. `matches` lists what each position matched, in position order: one entry per
/// position, except that a top-k similarity position contributes its `k` data as consecutive
/// entries (best first). Each entry names its [`position`](MatchedDatum::position); without
/// top-k patterns, `matches[i].position == i`. [`Comm::matches_at`] selects one position's.
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
    pub channels: CallList<C>,
    /// Its patterns, in the consume's order.
    pub patterns: CallList<P>,
    /// Whether the continuation was persistent.
    pub persistent: bool,
    /// Positions that peeked.
    pub peeks: Peeks,
    /// What each position matched.
    pub matches: SmallVec<[MatchedDatum<A, R>; 2]>,
    /// The incoming item fired but was not used up, and was not stored (see above).
    pub reissue: bool,
}

impl<C, P, A, K, R> Comm<C, P, A, K, R> {
    /// The entries of `matches` for consume position `position` (one, or `k` for a top-k
    /// similarity position, best first; none for a position out of range).
    ///
    /// Time: O(entries).
    ///
    /// ```
    /// use rhospace_spaces::{Space, SpaceConfig};
    /// use rhospace_matchers::ExactMatch;
    /// let space: Space<&str, i32, i32, &str, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    /// space.produce("a", 1, false).unwrap();
    /// space.produce("b", 2, false).unwrap();
    /// let comm = space.consume(["a", "b"], [1, 2], "k", false, &[]).unwrap().unwrap();
    /// assert_eq!(comm.matches_at(1).map(|m| m.datum).collect::<Vec<_>>(), [2]);
    /// assert_eq!(comm.matches_at(2).count(), 0);
    /// ```
    pub fn matches_at(&self, position: usize) -> impl Iterator<Item = &MatchedDatum<A, R>> + '_ {
        self.matches
            .iter()
            .filter(move |m| m.position as usize == position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comm_of_word_sized_values_moves_without_a_memcpy_call() {
        // Moves of up to 128 bytes are inlined; a larger COMM costs a `memcpy` call on every
        // return and unwrap (the produce and consume benchmarks each paid for it).
        assert!(std::mem::size_of::<Comm<u64, u64, u64, u64, ()>>() <= 128);
        assert!(std::mem::size_of::<Comm<u64, u64, u64, String, ()>>() <= 128);
    }
}
