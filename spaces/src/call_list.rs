//! `CallList`: a consume's channel list or pattern list, as the call passes it in and as its
//! COMM hands it back.
//!
//! Most consumes name one channel. An `Arc<[T]>` for such a call costs an allocation when the
//! call is made and a free when its COMM is dropped (~300 instructions of a ~1,900-instruction
//! consume for the two lists), though a COMM that fires at once never shares the list. So one
//! entry is kept inline, and a list of more, or one the space already shares (the channel list
//! of a waiting continuation's join group, its patterns), is a shared slice.
//!
//! | operation | cost |
//! |---|---|
//! | from one entry (`[x]`, a one-entry `Vec`) | O(1), no allocation |
//! | from several entries | one allocation (as `Arc<[T]>`) |
//! | from an `Arc<[T]>` | O(1), no allocation |
//! | `deref` to `&[T]`, `clone` | O(1) (a clone of one entry clones it) |
//! | [`into_shared`](CallList::into_shared) | O(1); one allocation from one entry |

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// A consume's channel or pattern list: one entry inline, or a shared slice. It dereferences
/// to `&[T]`, so it reads, indexes, iterates and compares as a slice; two lists with the same
/// entries are equal whatever their representation.
///
/// Every form a list used to be passed in converts into it: arrays, `Vec`s, boxed slices,
/// borrowed slices (entries cloned) and `Arc<[T]>`s.
///
/// ```
/// use std::sync::Arc;
/// use rhospace_spaces::CallList;
/// let one: CallList<u8> = [7].into();
/// let shared: CallList<u8> = CallList::from(Arc::<[u8]>::from([7]));
/// assert_eq!(one, shared);
/// assert_eq!(&one[..], &[7]);
/// let two: CallList<&str> = vec!["a", "b"].into();
/// assert_eq!(two.len(), 2);
/// assert_eq!(&*two.into_shared(), &["a", "b"]);
/// ```
#[derive(Clone)]
pub struct CallList<T>(Repr<T>);

/// Invariant: `One` holds the lists of exactly one entry that the space does not share;
/// `Shared` holds any other (and may hold one entry, when it came in shared).
#[derive(Clone)]
enum Repr<T> {
    One(T),
    Shared(Arc<[T]>),
}

impl<T> CallList<T> {
    /// The list as a shared slice: the slice itself, or one allocated for a single entry.
    ///
    /// ```
    /// use rhospace_spaces::CallList;
    /// let l: CallList<u8> = [1].into();
    /// assert_eq!(&*l.into_shared(), &[1]);
    /// ```
    pub fn into_shared(self) -> Arc<[T]> {
        match self.0 {
            Repr::One(x) => Arc::from([x]),
            Repr::Shared(a) => a,
        }
    }
}

impl<T> Deref for CallList<T> {
    type Target = [T];

    #[inline]
    fn deref(&self) -> &[T] {
        match &self.0 {
            Repr::One(x) => std::slice::from_ref(x),
            Repr::Shared(a) => a,
        }
    }
}

impl<T> AsRef<[T]> for CallList<T> {
    fn as_ref(&self) -> &[T] {
        self
    }
}

impl<T> From<Arc<[T]>> for CallList<T> {
    #[inline]
    fn from(a: Arc<[T]>) -> Self {
        Self(Repr::Shared(a))
    }
}

impl<T, const N: usize> From<[T; N]> for CallList<T> {
    #[inline]
    fn from(a: [T; N]) -> Self {
        let mut entries = a.into_iter();
        match (N, entries.next()) {
            (1, Some(x)) => Self(Repr::One(x)),
            (_, first) => Self(Repr::Shared(first.into_iter().chain(entries).collect())),
        }
    }
}

impl<T> From<Vec<T>> for CallList<T> {
    #[inline]
    fn from(mut v: Vec<T>) -> Self {
        if v.len() == 1 {
            if let Some(x) = v.pop() {
                return Self(Repr::One(x));
            }
        }
        Self(Repr::Shared(Arc::from(v)))
    }
}

impl<T> From<Box<[T]>> for CallList<T> {
    fn from(b: Box<[T]>) -> Self {
        Vec::from(b).into()
    }
}

impl<T: Clone> From<&[T]> for CallList<T> {
    #[inline]
    fn from(s: &[T]) -> Self {
        match s {
            [x] => Self(Repr::One(x.clone())),
            _ => Self(Repr::Shared(Arc::from(s))),
        }
    }
}

impl<T: PartialEq> PartialEq for CallList<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Eq> Eq for CallList<T> {}

impl<T: Hash> Hash for CallList<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (**self).hash(state)
    }
}

impl<T: fmt::Debug> fmt::Debug for CallList<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_inline<T>(l: &CallList<T>) -> bool {
        matches!(l.0, Repr::One(_))
    }

    #[test]
    fn one_entry_is_inline_and_more_are_shared() {
        let forms: [CallList<String>; 4] = [
            [String::from("a")].into(),
            vec![String::from("a")].into(),
            (&[String::from("a")][..]).into(),
            vec![String::from("a")].into_boxed_slice().into(),
        ];
        for l in &forms {
            assert!(is_inline(l));
            assert_eq!(&l[..], ["a"]);
        }
        let many: CallList<u8> = [1, 2, 3].into();
        assert!(!is_inline(&many));
        assert_eq!(&many[..], [1, 2, 3]);
        let empty: CallList<u8> = Vec::new().into();
        assert!(empty.is_empty());
        // A shared list stays shared, even of one entry: no copy.
        let a: Arc<[u8]> = Arc::from([9]);
        let l = CallList::from(Arc::clone(&a));
        assert!(!is_inline(&l));
        assert!(Arc::ptr_eq(&l.into_shared(), &a));
    }

    #[test]
    fn representation_does_not_reach_equality_hashing_or_debug() {
        use std::collections::hash_map::DefaultHasher;
        let inline: CallList<u8> = [4].into();
        let shared = CallList::from(Arc::<[u8]>::from([4]));
        assert_eq!(inline, shared);
        let h = |l: &CallList<u8>| {
            let mut s = DefaultHasher::new();
            l.hash(&mut s);
            s.finish()
        };
        assert_eq!(h(&inline), h(&shared));
        assert_eq!(format!("{inline:?}"), format!("{shared:?}"));
        assert_eq!(format!("{inline:?}"), "[4]");
        assert_ne!(inline, CallList::from([4, 4]));
        assert_eq!(&*inline.clone().into_shared(), &[4]);
    }
}
