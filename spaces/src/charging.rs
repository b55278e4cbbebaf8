//! `ChargingSpace`: a space that charges phlogiston for every operation (SPEC §8).
//!
//! Each operation runs in two phases under the space's lock (see [`Admission`]): the search,
//! then the change. Between them the exact cost is known — base price, encoded sizes, join
//! arity, candidates examined, whether a COMM fires — and is charged to the meter; if the
//! charge would overdraw, the operation returns `ErrorKind::OutOfPhlogiston` and the space,
//! its contents and the meter are exactly as before. Since the search has already run, no
//! upper bound needs to be charged and refunded: the charge is exact.
//!
//! **Storage** is charged when an item is stored (a datum by channel and datum bytes, a
//! continuation by channel, pattern and continuation bytes) and refunded when a COMM consumes
//! it, by the same [`CostTable`] function with the same lengths. An item that fires at once is
//! never stored, so its storage is never charged.
//!
//! | operation | charge |
//! |---|---|
//! | produce | `produce_base` + matching + (`datum_storage` if stored) + (`comm` if it fires) |
//! | consume | `consume_base` + `join_channel` × arity + matching + (`continuation_storage` if stored) + (`comm` if it fires) |
//! | install | `install` (base, arity, storage) + matching |
//! | soft checkpoint create / revert | `soft_checkpoint` |
//! | a COMM consuming stored items | refund of their storage |

use std::hash::Hash;
use std::sync::Arc;

use rhospace_matchers::Match;
use rhospace_phlogiston::{CostTable, OutOfPhlogiston, PhlogistonMeter};

use crate::admission::Admission;
use crate::call_list::CallList;
use crate::comm::Comm;
use crate::encode::Encode;
use crate::error::{ConsumeError, ProduceError};
use crate::space::{SoftCheckpoint, Space};

/// A [`Space`] whose every operation is charged to a [`PhlogistonMeter`].
///
/// ```
/// use std::sync::Arc;
/// use rhospace_spaces::{ChargingSpace, ErrorKind, Space, SpaceConfig};
/// use rhospace_matchers::ExactMatch;
/// use rhospace_phlogiston::{CostTable, PhlogistonMeter};
///
/// let meter = Arc::new(PhlogistonMeter::new(10_000));
/// let space: ChargingSpace<u64, u64, u64, String, ExactMatch> = ChargingSpace::new(
///     Space::new(ExactMatch, SpaceConfig::new()),
///     meter.clone(),
///     CostTable::default(),
/// );
/// space.produce(1, 42, false).unwrap();
/// let spent = meter.consumed();
/// assert!(spent > 0);
/// assert_eq!(meter.consumed() + meter.remaining(), meter.limit());
///
/// // An empty meter refuses, and nothing changes.
/// let broke: ChargingSpace<u64, u64, u64, String, ExactMatch> = ChargingSpace::new(
///     Space::new(ExactMatch, SpaceConfig::new()),
///     Arc::new(PhlogistonMeter::new(0)),
///     CostTable::default(),
/// );
/// let err = broke.produce(1, 42, false).unwrap_err();
/// assert!(matches!(err.kind(), ErrorKind::OutOfPhlogiston(_)));
/// assert!(broke.space().is_empty());
/// ```
pub struct ChargingSpace<C, P, A, K, M>
where
    C: Clone + Hash + Eq,
    P: Clone,
    A: Clone + Hash + Eq,
    K: Clone,
{
    space: Space<C, P, A, K, M>,
    meter: Arc<PhlogistonMeter>,
    table: CostTable,
}

impl<C, P, A, K, M> std::fmt::Debug for ChargingSpace<C, P, A, K, M>
where
    C: Clone + Hash + Eq,
    P: Clone,
    A: Clone + Hash + Eq,
    K: Clone,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChargingSpace")
            .field("meter", &self.meter)
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

/// Storage freed by a firing, to refund once the change is made.
fn freed_storage<C: Encode, P: Encode, A: Encode, K: Encode>(
    table: &CostTable,
    a: &Admission<'_, C, P, A, K>,
) -> u64 {
    let mut refund = 0u64;
    for (c, d) in &a.freed_data {
        refund = refund.saturating_add(table.datum_storage(c.encoded_len(), d.value.encoded_len()));
    }
    if let Some((channels, w)) = a.freed_continuation {
        let (c, p, k) = join_sizes(channels, &w.patterns, &w.continuation);
        refund = refund.saturating_add(table.continuation_storage(c, p, k));
    }
    refund
}

/// Encoded sizes of a join's channels and patterns (sums of their encodings) and continuation.
fn join_sizes<C: Encode, P: Encode, K: Encode>(
    channels: &[C],
    patterns: &[P],
    continuation: &K,
) -> (usize, usize, usize) {
    (
        channels.iter().map(Encode::encoded_len).sum(),
        patterns.iter().map(Encode::encoded_len).sum(),
        continuation.encoded_len(),
    )
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

impl<C, P, A, K, M> ChargingSpace<C, P, A, K, M>
where
    C: Clone + Hash + Eq + Encode,
    P: Clone + Eq + Encode + Sync,
    A: Clone + Hash + Eq + Encode + Sync,
    K: Clone + Eq + Encode,
    M: Match<P, A>,
{
    /// Wraps `space`, charging `meter` by `table`.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use rhospace_spaces::{ChargingSpace, Space, SpaceConfig};
    /// # use rhospace_matchers::ExactMatch;
    /// # use rhospace_phlogiston::{CostTable, PhlogistonMeter};
    /// let s: ChargingSpace<u8, u8, u8, u8, ExactMatch> = ChargingSpace::new(
    ///     Space::new(ExactMatch, SpaceConfig::new()),
    ///     Arc::new(PhlogistonMeter::new(100)),
    ///     CostTable::default(),
    /// );
    /// assert_eq!(s.meter().limit(), 100);
    /// ```
    pub fn new(space: Space<C, P, A, K, M>, meter: Arc<PhlogistonMeter>, table: CostTable) -> Self {
        Self {
            space,
            meter,
            table,
        }
    }

    /// The wrapped space, for read-only views (views are not charged).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use rhospace_spaces::{ChargingSpace, Space, SpaceConfig};
    /// # use rhospace_matchers::ExactMatch;
    /// # use rhospace_phlogiston::{CostTable, PhlogistonMeter};
    /// # let s: ChargingSpace<u8, u8, u8, u8, ExactMatch> = ChargingSpace::new(
    /// #     Space::new(ExactMatch, SpaceConfig::new()), Arc::new(PhlogistonMeter::new(100)), CostTable::default());
    /// assert!(s.space().is_empty());
    /// ```
    pub fn space(&self) -> &Space<C, P, A, K, M> {
        &self.space
    }

    /// The meter.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use rhospace_spaces::{ChargingSpace, Space, SpaceConfig};
    /// # use rhospace_matchers::ExactMatch;
    /// # use rhospace_phlogiston::{CostTable, PhlogistonMeter};
    /// # let s: ChargingSpace<u8, u8, u8, u8, ExactMatch> = ChargingSpace::new(
    /// #     Space::new(ExactMatch, SpaceConfig::new()), Arc::new(PhlogistonMeter::new(100)), CostTable::default());
    /// assert_eq!(s.meter().remaining(), 100);
    /// ```
    pub fn meter(&self) -> &PhlogistonMeter {
        &self.meter
    }

    /// The cost table.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use rhospace_spaces::{ChargingSpace, Space, SpaceConfig};
    /// # use rhospace_matchers::ExactMatch;
    /// # use rhospace_phlogiston::{CostTable, PhlogistonMeter};
    /// # let s: ChargingSpace<u8, u8, u8, u8, ExactMatch> = ChargingSpace::new(
    /// #     Space::new(ExactMatch, SpaceConfig::new()), Arc::new(PhlogistonMeter::new(100)), CostTable::default());
    /// assert_eq!(*s.table(), CostTable::default());
    /// ```
    pub fn table(&self) -> &CostTable {
        &self.table
    }

    fn refund(&self, amount: u64) {
        // Items stored before this meter charged them (another meter, an unmetered call)
        // cannot be refunded beyond what this meter took: clamp, never fail.
        let amount = amount.min(self.meter.refundable());
        if amount > 0 {
            // Cannot fail: `amount <= refundable()`; a concurrent refund racing this one is
            // still bounded by the meter itself, which refuses rather than overshoots.
            let _ = self.meter.refund(amount);
        }
    }

    /// [`Space::produce`], charged.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use rhospace_spaces::{ChargingSpace, Space, SpaceConfig};
    /// # use rhospace_matchers::ExactMatch;
    /// # use rhospace_phlogiston::{CostTable, PhlogistonMeter};
    /// # let s: ChargingSpace<u8, u8, u8, u8, ExactMatch> = ChargingSpace::new(
    /// #     Space::new(ExactMatch, SpaceConfig::new()), Arc::new(PhlogistonMeter::new(10_000)), CostTable::default());
    /// s.produce(0, 1, false).unwrap();
    /// let t = s.table();
    /// assert_eq!(s.meter().consumed(), t.produce_base + t.datum_storage(1, 1));
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn produce(
        &self,
        channel: C,
        datum: A,
        persist: bool,
    ) -> Result<Option<Comm<C, P, A, K, M::Output>>, ProduceError<A>> {
        self.produce_with_priority(channel, datum, persist, 0)
    }

    /// [`Space::produce_with_priority`], charged.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use rhospace_spaces::{ChargingSpace, Space, SpaceConfig};
    /// # use rhospace_matchers::ExactMatch;
    /// # use rhospace_phlogiston::{CostTable, PhlogistonMeter};
    /// # let s: ChargingSpace<u8, u8, u8, u8, ExactMatch> = ChargingSpace::new(
    /// #     Space::new(ExactMatch, SpaceConfig::new()), Arc::new(PhlogistonMeter::new(10_000)), CostTable::default());
    /// s.produce_with_priority(0, 1, false, 3).unwrap();
    /// assert!(s.meter().consumed() > 0);
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn produce_with_priority(
        &self,
        channel: C,
        datum: A,
        persist: bool,
        priority: i64,
    ) -> Result<Option<Comm<C, P, A, K, M::Output>>, ProduceError<A>> {
        let channel_len = channel.encoded_len();
        let datum_len = datum.encoded_len();
        let table = &self.table;
        let meter = &self.meter;
        let mut refund = 0u64;
        let out = self
            .space
            .produce_admitted(channel, datum, persist, priority, |a| {
                let mut cost = table
                    .produce_base
                    .saturating_add(table.matching(to_usize(a.examined)));
                if a.stores {
                    cost = cost.saturating_add(table.datum_storage(channel_len, datum_len));
                }
                if let Some(positions) = a.fires {
                    cost = cost.saturating_add(table.comm(positions));
                }
                meter.charge(cost)?;
                refund = freed_storage(table, a);
                Ok(())
            })?;
        self.refund(refund);
        Ok(out)
    }

    /// [`Space::consume`], charged.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use rhospace_spaces::{ChargingSpace, Space, SpaceConfig};
    /// # use rhospace_matchers::ExactMatch;
    /// # use rhospace_phlogiston::{CostTable, PhlogistonMeter};
    /// # let s: ChargingSpace<u8, u8, u8, u8, ExactMatch> = ChargingSpace::new(
    /// #     Space::new(ExactMatch, SpaceConfig::new()), Arc::new(PhlogistonMeter::new(10_000)), CostTable::default());
    /// s.produce(0, 1, false).unwrap();
    /// let before = s.meter().consumed();
    /// s.consume([0u8], [1u8], 9, false, &[]).unwrap().unwrap();
    /// // The datum's storage came back; the consume's own price did not.
    /// let t = s.table();
    /// assert_eq!(
    ///     s.meter().consumed(),
    ///     before + t.consume_base + t.join_channel + t.matching(1) + t.comm(1) - t.datum_storage(1, 1)
    /// );
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn consume(
        &self,
        channels: impl Into<CallList<C>>,
        patterns: impl Into<CallList<P>>,
        continuation: K,
        persist: bool,
        peeks: &[usize],
    ) -> Result<Option<Comm<C, P, A, K, M::Output>>, ConsumeError<K>> {
        let channels: CallList<C> = channels.into();
        let patterns: CallList<P> = patterns.into();
        let arity = channels.len();
        let (channels_len, patterns_len, continuation_len) =
            join_sizes(&channels, &patterns, &continuation);
        let table = &self.table;
        let meter = &self.meter;
        let mut refund = 0u64;
        let out =
            self.space
                .consume_admitted(channels, patterns, continuation, persist, peeks, |a| {
                    let mut cost = table
                        .consume_base
                        .saturating_add(table.join_channel.saturating_mul(arity as u64))
                        .saturating_add(table.matching(to_usize(a.examined)));
                    if a.stores {
                        cost = cost.saturating_add(table.continuation_storage(
                            channels_len,
                            patterns_len,
                            continuation_len,
                        ));
                    }
                    if let Some(positions) = a.fires {
                        cost = cost.saturating_add(table.comm(positions));
                    }
                    meter.charge(cost)?;
                    refund = freed_storage(table, a);
                    Ok(())
                })?;
        self.refund(refund);
        Ok(out)
    }

    /// [`Space::install`], charged.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use rhospace_spaces::{ChargingSpace, Space, SpaceConfig};
    /// # use rhospace_matchers::ExactMatch;
    /// # use rhospace_phlogiston::{CostTable, PhlogistonMeter};
    /// # let s: ChargingSpace<u8, u8, u8, u8, ExactMatch> = ChargingSpace::new(
    /// #     Space::new(ExactMatch, SpaceConfig::new()), Arc::new(PhlogistonMeter::new(10_000)), CostTable::default());
    /// s.install([0u8], [1u8], 9).unwrap();
    /// assert!(s.meter().consumed() > 0);
    /// ```
    pub fn install(
        &self,
        channels: impl Into<CallList<C>>,
        patterns: impl Into<CallList<P>>,
        continuation: K,
    ) -> Result<(), ConsumeError<K>> {
        let channels: CallList<C> = channels.into();
        let patterns: CallList<P> = patterns.into();
        let arity = channels.len();
        let (channels_len, patterns_len, continuation_len) =
            join_sizes(&channels, &patterns, &continuation);
        let table = &self.table;
        let meter = &self.meter;
        self.space
            .install_admitted(channels, patterns, continuation, |a| {
                let cost = table
                    .install(arity, channels_len, patterns_len, continuation_len)
                    .saturating_add(table.matching(to_usize(a.examined)));
                meter.charge(cost)
            })
    }

    /// [`Space::create_soft_checkpoint`], charged `soft_checkpoint`.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use rhospace_spaces::{ChargingSpace, Space, SpaceConfig};
    /// # use rhospace_matchers::ExactMatch;
    /// # use rhospace_phlogiston::{CostTable, PhlogistonMeter};
    /// # let s: ChargingSpace<u8, u8, u8, u8, ExactMatch> = ChargingSpace::new(
    /// #     Space::new(ExactMatch, SpaceConfig::new()), Arc::new(PhlogistonMeter::new(10_000)), CostTable::default());
    /// let cp = s.create_soft_checkpoint().unwrap();
    /// s.revert_to_soft_checkpoint(&cp).unwrap();
    /// assert_eq!(s.meter().consumed(), 2 * s.table().soft_checkpoint());
    /// ```
    pub fn create_soft_checkpoint(&self) -> Result<SoftCheckpoint<C, P, A, K>, OutOfPhlogiston> {
        self.meter.charge(self.table.soft_checkpoint())?;
        Ok(self.space.create_soft_checkpoint())
    }

    /// [`Space::revert_to_soft_checkpoint`], charged `soft_checkpoint`. The meter is not
    /// reverted: phlogiston spent stays spent.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use rhospace_spaces::{ChargingSpace, Space, SpaceConfig};
    /// # use rhospace_matchers::ExactMatch;
    /// # use rhospace_phlogiston::{CostTable, PhlogistonMeter};
    /// # let s: ChargingSpace<u8, u8, u8, u8, ExactMatch> = ChargingSpace::new(
    /// #     Space::new(ExactMatch, SpaceConfig::new()), Arc::new(PhlogistonMeter::new(10_000)), CostTable::default());
    /// let cp = s.create_soft_checkpoint().unwrap();
    /// s.produce(0, 0, false).unwrap();
    /// s.revert_to_soft_checkpoint(&cp).unwrap();
    /// assert!(s.space().is_empty());
    /// ```
    pub fn revert_to_soft_checkpoint(
        &self,
        checkpoint: &SoftCheckpoint<C, P, A, K>,
    ) -> Result<(), OutOfPhlogiston> {
        self.meter.charge(self.table.soft_checkpoint())?;
        self.space.revert_to_soft_checkpoint(checkpoint);
        Ok(())
    }
}
