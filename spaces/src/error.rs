//! Typed errors. Each operation's error hands back the value the caller gave it.

use std::fmt;

/// Why an operation was refused. Every refusal leaves the space exactly as it was.
///
/// ```
/// use rhospace_spaces::ErrorKind;
/// assert_eq!(ErrorKind::EmptyChannels.to_string(), "a consume needs at least one channel");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A consume or install named no channel.
    EmptyChannels,
    /// Channels and patterns of different lengths.
    LengthMismatch {
        /// Number of channels given.
        channels: usize,
        /// Number of patterns given.
        patterns: usize,
    },
    /// A peek position past the end of the channel list.
    PeekOutOfRange {
        /// The position given.
        index: usize,
        /// Number of channels.
        channels: usize,
    },
    /// More channels in one join than [`MAX_JOIN`](crate::MAX_JOIN).
    TooManyChannels {
        /// Number of channels given.
        channels: usize,
    },
    /// Install over stored data that the continuation would match.
    InstallWouldMatch,
    /// A produce on a Cell channel that already holds a datum.
    CellFull,
    /// The operation's phlogiston charge would overdraw its meter.
    OutOfPhlogiston(rhospace_phlogiston::OutOfPhlogiston),
    /// A produce on a VectorDB channel whose datum's embedding is invalid there: wrong
    /// dimension, a NaN or infinite component, or all zeros under cosine.
    Embedding(rhospace_vectordb::VectorError),
    /// A produce on a VectorDB channel whose datum carries no embedding the matcher can read
    /// ([`rhospace_matchers::Match::embedding`] returned `None`).
    MissingEmbedding,
    /// A consume whose similarity query at `position` does not fit its VectorDB channel (a
    /// different dimension).
    Query {
        /// The position of the pattern in the consume.
        position: usize,
        /// What is wrong with the query.
        error: rhospace_vectordb::VectorError,
    },
    /// A call refused by a replay (SPEC §7): not in the log, or it would fire a COMM the log
    /// does not hold.
    Replay(crate::ReplayError),
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::EmptyChannels => f.write_str("a consume needs at least one channel"),
            ErrorKind::LengthMismatch { channels, patterns } => write!(
                f,
                "{channels} channels but {patterns} patterns: they must pair up"
            ),
            ErrorKind::PeekOutOfRange { index, channels } => {
                write!(
                    f,
                    "peek position {index} is out of range for {channels} channels"
                )
            }
            ErrorKind::TooManyChannels { channels } => write!(
                f,
                "{channels} channels in one join; at most {} are allowed",
                crate::MAX_JOIN
            ),
            ErrorKind::InstallWouldMatch => {
                f.write_str("install refused: stored data would match the continuation")
            }
            ErrorKind::CellFull => f.write_str("the cell already holds a datum"),
            ErrorKind::OutOfPhlogiston(e) => write!(f, "{e}"),
            ErrorKind::Embedding(e) => write!(f, "invalid embedding for a VectorDB channel: {e}"),
            ErrorKind::MissingEmbedding => {
                f.write_str("the datum carries no embedding, which a VectorDB channel requires")
            }
            ErrorKind::Query { position, error } => {
                write!(f, "similarity query at position {position}: {error}")
            }
            ErrorKind::Replay(e) => write!(f, "{e}"),
        }
    }
}

/// A refused produce; hands the datum back.
///
/// ```
/// use rhospace_spaces::{DataKind, ErrorKind, Space, SpaceConfig};
/// use rhospace_matchers::ExactMatch;
/// let space: Space<u8, u8, u8, u8, ExactMatch> =
///     Space::new(ExactMatch, SpaceConfig::new().data_kind(DataKind::Cell));
/// space.produce(0, 1, false).unwrap();
/// let err = space.produce(0, 2, false).unwrap_err();
/// assert_eq!(err.kind(), &ErrorKind::CellFull);
/// assert_eq!(err.into_inner(), 2);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProduceError<A> {
    kind: ErrorKind,
    datum: A,
}

impl<A> ProduceError<A> {
    pub(crate) fn new(kind: ErrorKind, datum: A) -> Self {
        Self { kind, datum }
    }
    /// Why it was refused.
    ///
    /// ```
    /// # use rhospace_spaces::{DataKind, ErrorKind, Space, SpaceConfig};
    /// # use rhospace_matchers::ExactMatch;
    /// # let s: Space<u8, u8, u8, u8, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new().data_kind(DataKind::Cell));
    /// # s.produce(0, 1, false).unwrap();
    /// assert_eq!(s.produce(0, 1, false).unwrap_err().kind(), &ErrorKind::CellFull);
    /// ```
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }
    /// The datum, handed back.
    ///
    /// ```
    /// # use rhospace_spaces::{DataKind, Space, SpaceConfig};
    /// # use rhospace_matchers::ExactMatch;
    /// # let s: Space<u8, u8, u8, u8, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new().data_kind(DataKind::Cell));
    /// # s.produce(0, 1, false).unwrap();
    /// assert_eq!(s.produce(0, 9, false).unwrap_err().into_inner(), 9);
    /// ```
    pub fn into_inner(self) -> A {
        self.datum
    }
}

impl<A> fmt::Display for ProduceError<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "produce refused: {}", self.kind)
    }
}

impl<A: fmt::Debug> std::error::Error for ProduceError<A> {}

/// A refused consume or install; hands the continuation back.
///
/// ```
/// use rhospace_spaces::{ErrorKind, Space, SpaceConfig};
/// use rhospace_matchers::ExactMatch;
/// let space: Space<u8, u8, u8, &str, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
/// let err = space.consume([0u8, 1], [5u8], "k", false, &[]).unwrap_err();
/// assert_eq!(err.kind(), &ErrorKind::LengthMismatch { channels: 2, patterns: 1 });
/// assert_eq!(err.into_inner(), "k");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumeError<K> {
    kind: ErrorKind,
    continuation: K,
}

impl<K> ConsumeError<K> {
    pub(crate) fn new(kind: ErrorKind, continuation: K) -> Self {
        Self { kind, continuation }
    }
    /// Why it was refused.
    ///
    /// ```
    /// # use rhospace_spaces::{ErrorKind, Space, SpaceConfig};
    /// # use rhospace_matchers::ExactMatch;
    /// # let s: Space<u8, u8, u8, u8, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    /// let e = s.consume(Vec::<u8>::new(), Vec::<u8>::new(), 0, false, &[]).unwrap_err();
    /// assert_eq!(e.kind(), &ErrorKind::EmptyChannels);
    /// ```
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }
    /// The continuation, handed back.
    ///
    /// ```
    /// # use rhospace_spaces::{Space, SpaceConfig};
    /// # use rhospace_matchers::ExactMatch;
    /// # let s: Space<u8, u8, u8, u8, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    /// let e = s.consume([1u8], [1u8], 42, false, &[3]).unwrap_err();
    /// assert_eq!(e.into_inner(), 42);
    /// ```
    pub fn into_inner(self) -> K {
        self.continuation
    }
}

impl<K> fmt::Display for ConsumeError<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "consume refused: {}", self.kind)
    }
}

impl<K: fmt::Debug> std::error::Error for ConsumeError<K> {}

/// Why a revert to a soft checkpoint was refused. Nothing changed.
///
/// ```
/// use rhospace_matchers::ExactMatch;
/// use rhospace_spaces::{DataKind, RevertError, Space, SpaceConfig};
/// let cell = SpaceConfig::new().channel_kind(1, DataKind::Cell);
/// let a: Space<u8, u8, u8, u8, ExactMatch> = Space::new(ExactMatch, cell);
/// a.produce(1, 10, false).unwrap();
/// let b: Space<u8, u8, u8, u8, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
/// let refused = b.revert_to_soft_checkpoint(&a.create_soft_checkpoint());
/// assert_eq!(refused, Err(RevertError::KindMismatch { data: 1, continuations: 0 }));
/// assert!(b.is_empty());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RevertError {
    /// The checkpoint was taken by another space, whose configuration gave some of its stores
    /// another kind than this space's configuration gives them: `data` channels and
    /// `continuations` join groups (every such store is counted, so the numbers do not depend
    /// on any iteration order). Reverting would leave those stores under rules they were not
    /// built for (a Cell store taking a second datum, say), and the next hard checkpoint would
    /// record a root that no space could reset to.
    KindMismatch {
        /// Channels whose data store is of another kind.
        data: usize,
        /// Join groups whose continuation store is of another kind.
        continuations: usize,
    },
    /// [`ChargingSpace`](crate::ChargingSpace) only: the meter cannot pay for the revert (its
    /// price, plus the refunds the checkpoint's lineage charges back).
    OutOfPhlogiston(rhospace_phlogiston::OutOfPhlogiston),
}

impl fmt::Display for RevertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RevertError::KindMismatch {
                data,
                continuations,
            } => write!(
                f,
                "another space's checkpoint: {data} data stores and {continuations} continuation \
                 stores of another kind than this space's configuration gives them"
            ),
            RevertError::OutOfPhlogiston(e) => write!(f, "revert refused: {e}"),
        }
    }
}

impl std::error::Error for RevertError {}

impl From<rhospace_phlogiston::OutOfPhlogiston> for RevertError {
    fn from(e: rhospace_phlogiston::OutOfPhlogiston) -> Self {
        RevertError::OutOfPhlogiston(e)
    }
}
