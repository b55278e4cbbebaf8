//! Synchronisation facade: the one place that chooses between loom's and std's atomics.
//!
//! Under `--cfg loom` the meter's atomics and lock are loom's model-checked ones, so the loom tests in
//! `tests/loom_meter.rs` explore every interleaving (and every relaxed-memory outcome loom models)
//! of the real algorithm code. Otherwise they are std's. Algorithm code imports atomics and locks only from
//! here and never branches on the cfg itself.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::RwLock;

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::RwLock;
