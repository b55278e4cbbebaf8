//! `JoinList`: the join groups (channel lists) one channel takes part in, oldest first.
//!
//! Most channels take part in no join group (they hold data and nothing waits on them), so the
//! list is one pointer, null while empty. Inline, `imbl::Vector`'s 64 bytes made up a third of
//! every channel's state (64 of 200 bytes for `u64` channels and data), copied whenever a
//! channel is created or first written after a soft checkpoint.
//!
//! | operation | cost |
//! |---|---|
//! | `is_empty`, `len` | O(1) |
//! | `iter` | O(len) |
//! | `push_back` | O(1) amortised; one allocation for a channel's first group |
//! | `remove` | O(len): the group is found by a scan |
//! | `clone` | O(1): one reference count |
//! | first write after a clone | O(1): the vector's root is copied (the tree is shared) |

use std::sync::Arc;

use imbl::Vector;

/// The join groups of one channel, in the order they were made (canonical order after a hard
/// checkpoint).
///
/// Invariant: `groups` is `None` or holds a non-empty vector, so two lists with the same groups
/// have the same shape.
#[derive(Clone, Debug)]
pub(crate) struct JoinList<C> {
    groups: Option<triomphe::Arc<Vector<Arc<[C]>>>>,
}

impl<C> Default for JoinList<C> {
    fn default() -> Self {
        Self { groups: None }
    }
}

impl<C> JoinList<C> {
    /// An empty list.
    #[inline]
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Whether the channel takes part in no join group.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.groups.is_none()
    }

    /// The number of groups.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.groups.as_ref().map_or(0, |g| g.len())
    }

    /// The groups, oldest first.
    #[inline]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<[C]>> + '_ {
        self.groups.iter().flat_map(|g| g.iter())
    }

    /// Appends a group.
    pub(crate) fn push_back(&mut self, group: Arc<[C]>) {
        match &mut self.groups {
            Some(g) => triomphe::Arc::make_mut(g).push_back(group),
            None => self.groups = Some(triomphe::Arc::new(Vector::unit(group))),
        }
    }

    /// Removes the first group equal to `group`, if any.
    pub(crate) fn remove(&mut self, group: &[C])
    where
        C: PartialEq,
    {
        let Some(g) = &mut self.groups else {
            return;
        };
        let Some(at) = g.iter().position(|k| k[..] == *group) else {
            return;
        };
        if g.len() == 1 {
            self.groups = None;
        } else {
            triomphe::Arc::make_mut(g).remove(at);
        }
    }
}

impl<C> FromIterator<Arc<[C]>> for JoinList<C> {
    fn from_iter<I: IntoIterator<Item = Arc<[C]>>>(iter: I) -> Self {
        let v: Vector<Arc<[C]>> = iter.into_iter().collect();
        Self {
            groups: (!v.is_empty()).then(|| triomphe::Arc::new(v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(a: u8, b: u8) -> Arc<[u8]> {
        Arc::from([a, b])
    }

    #[test]
    fn groups_keep_their_order_and_a_clone_is_unchanged_by_writes() {
        let mut l: JoinList<u8> = JoinList::new();
        assert!(l.is_empty());
        for i in 0..5 {
            l.push_back(group(i, i + 1));
        }
        let snapshot = l.clone();
        l.remove(&[2, 3]);
        l.remove(&[9, 9]);
        l.push_back(group(7, 7));
        let seen: Vec<u8> = l.iter().map(|g| g[0]).collect();
        assert_eq!(seen, [0, 1, 3, 4, 7]);
        assert_eq!(l.len(), 5);
        let kept: Vec<u8> = snapshot.iter().map(|g| g[0]).collect();
        assert_eq!(kept, [0, 1, 2, 3, 4]);
        for g in [[0, 1], [1, 2], [3, 4], [4, 5], [7, 7]] {
            l.remove(&g);
        }
        assert!(l.is_empty());
        assert_eq!(l.len(), 0);
        assert!(l.iter().next().is_none());
        let rebuilt: JoinList<u8> = snapshot.iter().cloned().collect();
        assert_eq!(rebuilt.len(), 5);
        assert!(std::iter::empty().collect::<JoinList<u8>>().is_empty());
    }

    #[test]
    fn a_channel_state_without_groups_is_one_pointer() {
        assert_eq!(
            std::mem::size_of::<JoinList<u64>>(),
            std::mem::size_of::<usize>()
        );
    }
}
