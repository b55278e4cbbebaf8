//! rhospace: a deterministic, concurrent Rholang-style tuple space.
//!
//! This facade re-exports the workspace's crates:
//! - [`spaces`]: the tuple space (produce/consume/joins, collections, soft checkpoints);
//! - [`matchers`]: the `Match` trait, exact and structural wildcard matchers;
//! - [`vectordb`]: embedding storage and similarity search;
//! - [`phlogiston`]: gas metering.
//!
//! ```
//! use rhospace::{ExactMatch, Space, SpaceConfig};
//! let space: Space<&str, i32, i32, &str, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
//! space.produce("greeting", 1, false).unwrap();
//! let comm = space.consume(["greeting"], [1], "hello", false, &[]).unwrap().unwrap();
//! assert_eq!(comm.continuation, "hello");
//! ```
#![deny(unsafe_code)]

pub use rhospace_matchers as matchers;
pub use rhospace_phlogiston as phlogiston;
pub use rhospace_spaces as spaces;
pub use rhospace_vectordb as vectordb;

pub use rhospace_matchers::{
    ExactMatch, Match, Pattern, SimilarityMatch, SimilarityPattern, StructuralMatch, Term,
};
pub use rhospace_spaces::{
    ChargingSpace, Checkpoint, CheckpointError, Comm, ConsumeRequest, ContKind, DataKind, Decode,
    Encode, ErrorKind, HistoryStore, LogEvent, MemoryHistory, RedbHistory, ReplayError,
    RevertError, SoftCheckpoint, Space, SpaceConfig, StoredDatum,
};
