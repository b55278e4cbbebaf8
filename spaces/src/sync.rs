//! The one place this crate takes its locks from.
//!
//! Under `cfg(loom)` the space's lock is loom's, so a model can explore interleavings of our
//! protocol; otherwise it is `parking_lot`'s, wrapped to the same API (`lock()` returns the guard
//! directly: a poisoned lock cannot happen because no code path panics while holding it).
//! Algorithm code imports only from here and never branches on the cfg.

#[cfg(not(loom))]
mod imp {
    /// A mutual-exclusion lock with the same API under loom and without it.
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(parking_lot::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(parking_lot::Mutex::new(value))
        }
        #[inline]
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock()
        }
    }

    /// The guard [`Mutex::lock`] returns.
    pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;
}

#[cfg(loom)]
mod imp {
    /// A mutual-exclusion lock with the same API under loom and without it.
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }
        #[inline]
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            // Poisoning needs a panic while the lock is held; no code path of ours panics there.
            match self.0.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            }
        }
    }

    impl<T: Default> Default for Mutex<T> {
        fn default() -> Self {
            Self::new(T::default())
        }
    }

    /// The guard [`Mutex::lock`] returns.
    pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;
}

pub(crate) use imp::{Mutex, MutexGuard};
