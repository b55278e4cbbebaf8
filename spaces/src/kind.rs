//! Collection kinds and the space's configuration.

use std::collections::HashMap;
use std::hash::Hash;

use rhospace_matchers::SimilarityPattern;
use rhospace_vectordb::{Metric, VectorError};

use crate::error::ErrorKind;
use crate::order::CandidateOrder;
use crate::vector::VecItems;

/// How a channel keeps its data, and which stored datum a pattern may take (SPEC §4).
///
/// | kind | what may match | produce of an item already present |
/// |---|---|---|
/// | `Bag` | any datum, oldest first | stored again (multiset) |
/// | `Queue` | only the oldest | stored |
/// | `Stack` | only the newest | stored |
/// | `Set` | any datum, oldest first | ignored when an equal datum (`Eq`) is stored, before any continuation is offered it |
/// | `Cell` | the one datum | error `CellFull` when a datum is stored (before any continuation is offered it) |
/// | `PriorityQueue` | only the head: highest priority, FIFO within a level | stored |
/// | `VectorDb` | a similarity pattern: by score, best first (ties oldest first), `k` at once for top-k; other patterns: any, oldest first | stored (its embedding validated first) |
///
/// "Oldest first" is the default [`CandidateOrder`]; with [`CandidateOrder::Shuffled`] a Bag or
/// Set offers its data in the seeded, content-keyed order instead (the other kinds keep the
/// orders above).
///
/// For the ordered kinds (`Queue`, `Stack`, `PriorityQueue`) a consume that reads the same
/// channel at several positions takes items in collection order: the second position may take
/// the second item only because the first position used the first one up. A top-k similarity
/// pattern on such a channel takes `k` consecutive items from the head under the same rule: it
/// reaches an item only past items it uses up, so a persistent item, or any item when that
/// position peeks, ends its reach. A persistent or peeked head is never used up: nothing behind
/// it is reachable, and a top-k larger than 1 waits.
///
/// ```
/// use rhospace_matchers::similarity::{EmbeddedDatum, Metric, SimilarityMatch, SimilarityPattern};
/// use rhospace_spaces::{DataKind, Space, SpaceConfig};
/// let s: Space<u8, SimilarityPattern, EmbeddedDatum<u8>, u8, SimilarityMatch> =
///     Space::new(SimilarityMatch, SpaceConfig::new().data_kind(DataKind::Queue));
/// s.produce(0, EmbeddedDatum::new(1, [1.0]), true).unwrap(); // a persistent head
/// s.produce(0, EmbeddedDatum::new(2, [1.0]), false).unwrap();
/// let top2 = SimilarityPattern::top_k([1.0], Metric::Dot, 0.5, 2).unwrap();
/// assert!(s.consume([0], [top2], 7, false, &[]).unwrap().is_none());
/// ```
///
/// ```
/// use rhospace_spaces::DataKind;
/// assert_eq!(DataKind::default(), DataKind::Bag);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DataKind {
    /// Multiset: any datum may match; duplicates kept. The default.
    #[default]
    Bag,
    /// FIFO: only the oldest datum may match.
    Queue,
    /// LIFO: only the newest datum may match.
    Stack,
    /// Duplicates by `Eq` are ignored, exactly (never by a lossy hash): a produce of a datum
    /// equal to a stored one (whatever either's persistence) is accepted (logged, and charged
    /// a produce's base price) and stores nothing, and no continuation is offered it, so a join
    /// reading the channel twice never takes a datum and its duplicate.
    Set,
    /// At most one datum; producing a second one is an error and changes nothing.
    Cell,
    /// Produce carries a priority; highest priority first, FIFO within a level.
    PriorityQueue,
    /// Data carry embeddings of dimension `dim`, indexed for similarity search under `metric`
    /// (see [`rhospace_matchers::similarity`]). A consume whose pattern selects by similarity
    /// ([`rhospace_matchers::Match::similarity`]) is offered the data its threshold accepts,
    /// best score first, ties oldest first; a top-k pattern takes the `k` best at one position
    /// of one COMM. Other patterns see the data oldest first, as in a Bag.
    ///
    /// A produced datum must carry a valid embedding (the matcher's
    /// [`embedding`](rhospace_matchers::Match::embedding)): of dimension `dim`, finite, and
    /// non-zero under cosine; otherwise the produce fails and changes nothing. A `dim` of 0
    /// refuses every datum.
    ///
    /// ```
    /// use rhospace_spaces::{DataKind, SpaceConfig};
    /// use rhospace_vectordb::Metric;
    /// let kind = DataKind::VectorDb { dim: 384, metric: Metric::Cosine };
    /// let config = SpaceConfig::new().channel_kind("docs", kind);
    /// assert_eq!(config.kind_of(&"docs"), kind);
    /// ```
    VectorDb {
        /// Dimension of every embedding on the channel.
        dim: usize,
        /// The metric the index is prepared for (cosine also refuses zero embeddings).
        metric: Metric,
    },
}

impl DataKind {
    /// Whether only the head of the collection may be taken (Queue, Stack, PriorityQueue, Cell).
    #[inline]
    pub(crate) fn head_only(self) -> bool {
        matches!(
            self,
            DataKind::Queue | DataKind::Stack | DataKind::PriorityQueue | DataKind::Cell
        )
    }

    /// Checks a datum's embedding before a produce on a channel of this kind stores or fires
    /// anything: `embedding` is what the matcher's
    /// [`embedding`](rhospace_matchers::Match::embedding) returned. Always `Ok` for kinds other
    /// than `VectorDb`.
    ///
    /// Errors: `MissingEmbedding` (none), `Embedding(..)` (wrong dimension, NaN/inf, zero under
    /// cosine).
    #[inline]
    pub(crate) fn check_embedding(self, embedding: Option<&[f32]>) -> Result<(), ErrorKind> {
        let DataKind::VectorDb { dim, metric } = self else {
            return Ok(());
        };
        let Some(e) = embedding else {
            return Err(ErrorKind::MissingEmbedding);
        };
        VecItems::<()>::check(dim, metric, e).map_err(ErrorKind::Embedding)
    }

    /// Checks a consume's pattern at `position` on a channel of this kind: a similarity query
    /// (`sim`, from [`rhospace_matchers::Match::similarity`]) on a `VectorDb` channel must have
    /// the channel's dimension. Always `Ok` otherwise.
    pub(crate) fn check_query(
        self,
        position: usize,
        sim: Option<&SimilarityPattern>,
    ) -> Result<(), ErrorKind> {
        match (self, sim) {
            (DataKind::VectorDb { dim, .. }, Some(s)) if s.dim() != dim => Err(ErrorKind::Query {
                position,
                error: VectorError::WrongDimension {
                    expected: dim,
                    found: s.dim(),
                },
            }),
            _ => Ok(()),
        }
    }
}

/// How a channel list keeps its waiting continuations, and which one a produce may fire.
///
/// | kind | which waiting continuation may fire |
/// |---|---|
/// | `Bag` | any, oldest first |
/// | `Queue` | only the oldest |
/// | `Stack` | only the newest |
/// | `Set` | any, oldest first; a consume equal (`Eq` on patterns, continuation, persist, peeks) to a waiting one is not stored again |
///
/// "Oldest first" is the default [`CandidateOrder`]; with [`CandidateOrder::Shuffled`] a Bag or
/// Set store offers its continuations in the seeded, content-keyed order instead.
///
/// With `Queue` and `Stack`, firing the continuation that may fire exposes the next one, which
/// may match data already stored; it waits until a later produce offers it a datum (see the
/// crate docs' Limits: SPEC §1's invariant holds only with `Bag` and `Set`).
///
/// ```
/// use rhospace_spaces::ContKind;
/// assert_eq!(ContKind::default(), ContKind::Bag);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ContKind {
    /// Any waiting continuation may fire, oldest first. The default.
    #[default]
    Bag,
    /// Only the oldest waiting continuation may fire.
    Queue,
    /// Only the newest waiting continuation may fire.
    Stack,
    /// Duplicates are not stored; any may fire, oldest first.
    ///
    /// Time: a consume that would store its continuation first checks for an equal one
    /// waiting on its channel list. Below 16 waiting it compares with each (`Eq`); from 16 on
    /// the list keeps an index from a hash of each continuation's canonical encoding
    /// ([`Encode`](crate::Encode), whose contract gives equal values equal bytes), so the
    /// check costs one encoding and hash of the new continuation and `Eq` against only those
    /// with the same hash: O(1) expected. The hash narrows and `Eq` decides, so a collision
    /// never drops a distinct continuation. Firing one from an indexed list also encodes it
    /// once, to unlist it.
    Set,
}

/// A space's configuration: the data kind (per space, optionally per channel), the
/// continuation kind and the candidate order ([`CandidateOrder`]). Fixed when the space is
/// built.
///
/// ```
/// use rhospace_spaces::{DataKind, ContKind, SpaceConfig};
/// let config = SpaceConfig::new()
///     .data_kind(DataKind::Bag)
///     .channel_kind("jobs", DataKind::Queue)
///     .cont_kind(ContKind::Bag);
/// assert_eq!(config.kind_of(&"jobs"), DataKind::Queue);
/// assert_eq!(config.kind_of(&"other"), DataKind::Bag);
/// ```
#[derive(Clone, Debug)]
pub struct SpaceConfig<C> {
    data_kind: DataKind,
    cont_kind: ContKind,
    // Looked up, never iterated: its order cannot reach a result.
    per_channel: HashMap<C, DataKind>,
    order: CandidateOrder,
}

impl<C: Hash + Eq> Default for SpaceConfig<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Hash + Eq> SpaceConfig<C> {
    /// Bag data and Bag continuations everywhere.
    ///
    /// ```
    /// let c = rhospace_spaces::SpaceConfig::<u32>::new();
    /// assert_eq!(c.kind_of(&1), rhospace_spaces::DataKind::Bag);
    /// ```
    pub fn new() -> Self {
        Self {
            data_kind: DataKind::Bag,
            cont_kind: ContKind::Bag,
            per_channel: HashMap::new(),
            order: CandidateOrder::OldestFirst,
        }
    }

    /// Sets the data kind of every channel without its own kind.
    ///
    /// ```
    /// use rhospace_spaces::{DataKind, SpaceConfig};
    /// let c = SpaceConfig::<u32>::new().data_kind(DataKind::Queue);
    /// assert_eq!(c.kind_of(&9), DataKind::Queue);
    /// ```
    pub fn data_kind(mut self, kind: DataKind) -> Self {
        self.data_kind = kind;
        self
    }

    /// Gives one channel its own data kind.
    ///
    /// ```
    /// use rhospace_spaces::{DataKind, SpaceConfig};
    /// let c = SpaceConfig::new().channel_kind(7u32, DataKind::Cell);
    /// assert_eq!(c.kind_of(&7), DataKind::Cell);
    /// ```
    pub fn channel_kind(mut self, channel: C, kind: DataKind) -> Self {
        self.per_channel.insert(channel, kind);
        self
    }

    /// Sets the continuation kind.
    ///
    /// ```
    /// use rhospace_spaces::{ContKind, SpaceConfig};
    /// let c = SpaceConfig::<u32>::new().cont_kind(ContKind::Queue);
    /// assert_eq!(c.continuation_kind(), ContKind::Queue);
    /// ```
    pub fn cont_kind(mut self, kind: ContKind) -> Self {
        self.cont_kind = kind;
        self
    }

    /// Sets the candidate order where the kinds leave it free (SPEC §3): oldest first (the
    /// default), or a seeded, content-keyed shuffle. See [`CandidateOrder`] for what it applies
    /// to and what it guarantees.
    ///
    /// ```
    /// use rhospace_spaces::{CandidateOrder, SpaceConfig};
    /// let c = SpaceConfig::<u32>::new().candidate_order(CandidateOrder::Shuffled { seed: 7 });
    /// assert_eq!(c.order(), CandidateOrder::Shuffled { seed: 7 });
    /// ```
    pub fn candidate_order(mut self, order: CandidateOrder) -> Self {
        self.order = order;
        self
    }

    /// The candidate order.
    ///
    /// ```
    /// use rhospace_spaces::{CandidateOrder, SpaceConfig};
    /// assert_eq!(SpaceConfig::<u8>::new().order(), CandidateOrder::OldestFirst);
    /// ```
    pub fn order(&self) -> CandidateOrder {
        self.order
    }

    /// The data kind of `channel`.
    ///
    /// ```
    /// let c = rhospace_spaces::SpaceConfig::<u8>::new();
    /// assert_eq!(c.kind_of(&0), rhospace_spaces::DataKind::Bag);
    /// ```
    #[inline]
    pub fn kind_of(&self, channel: &C) -> DataKind {
        if self.per_channel.is_empty() {
            return self.data_kind;
        }
        self.per_channel
            .get(channel)
            .copied()
            .unwrap_or(self.data_kind)
    }

    /// The continuation kind.
    ///
    /// ```
    /// let c = rhospace_spaces::SpaceConfig::<u8>::new();
    /// assert_eq!(c.continuation_kind(), rhospace_spaces::ContKind::Bag);
    /// ```
    pub fn continuation_kind(&self) -> ContKind {
        self.cont_kind
    }
}
