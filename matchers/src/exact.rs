//! Exact matching: a pattern matches the data equal to it.

use crate::Match;

/// Matches a datum when it equals the pattern (`Eq`). The result is `()`: the matched value is
/// the datum itself, which the space already reports.
///
/// The space indexes exact patterns by hash ([`Match::exact_key`]), so finding a match among
/// `n` stored data costs O(1) expected rather than O(n).
///
/// ```
/// use rhospace_matchers::{ExactMatch, Match};
/// assert_eq!(ExactMatch.get(&"ping", &"ping"), Some(()));
/// assert_eq!(ExactMatch.exact_key(&"ping"), Some(&"ping"));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ExactMatch;

impl<T: Eq> Match<T, T> for ExactMatch {
    type Output = ();

    #[inline]
    fn get(&self, pattern: &T, datum: &T) -> Option<()> {
        (pattern == datum).then_some(())
    }

    #[inline]
    fn exact_key<'p>(&self, pattern: &'p T) -> Option<&'p T> {
        Some(pattern)
    }
}
