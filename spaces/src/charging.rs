//! `ChargingSpace`: a space that charges phlogiston for every operation (SPEC §8).
//!
//! Each operation runs in two phases under the space's lock (see [`Admission`]): the search,
//! then the change. Between them the exact cost is known — base price, encoded sizes, join
//! arity, candidates examined, vector work, whether a COMM fires and how many data it takes —
//! and is charged to the meter; if the charge would overdraw, the operation returns `ErrorKind::OutOfPhlogiston` and the space,
//! its contents and the meter are exactly as before. Since the search has already run, no
//! upper bound needs to be charged and refunded: the charge is exact.
//!
//! **Storage** is charged when an item is stored (a datum by channel and datum bytes, a
//! continuation by channel, pattern and continuation bytes) and refunded when a COMM consumes
//! it, by the same [`CostTable`] function with the same lengths. An item that fires at once is
//! never stored, so its storage is never charged.
//!
//! **Soft checkpoints** settle the storage refunds of the lineage a revert leaves. The
//! charges, that rule, how it stays exact under concurrency, and its limits are documented on
//! [`ChargingSpace`].

use std::hash::Hash;
use std::sync::Arc;

use rhospace_matchers::Match;
use rhospace_phlogiston::{CostTable, OutOfPhlogiston, PhlogistonMeter};

use crate::admission::{Admission, Credited};
use crate::budget::Allowance;
use crate::call_list::CallList;
use crate::comm::Comm;
use crate::encode::Encode;
use crate::error::{ConsumeError, ProduceError, RevertError};
use crate::space::{SoftCheckpoint, Space};

/// A [`Space`] whose every operation is charged to a [`PhlogistonMeter`] from a [`CostTable`]
/// before it changes anything (an operation the meter cannot pay fails with
/// `ErrorKind::OutOfPhlogiston` and changes nothing), and whose COMMs refund the storage of the
/// items they consume.
///
/// | operation | charge |
/// |---|---|
/// | produce | `produce_base` + matching + vector work + (`datum_storage` if stored) + (`comm` if it fires) |
/// | consume | `consume_base` + `join_channel` × arity + matching + vector work + (`continuation_storage` if stored) + (`comm` if it fires) |
/// | install | `install` (base, arity, storage) + matching + vector work |
/// | soft checkpoint create | `soft_checkpoint` |
/// | soft checkpoint revert | `soft_checkpoint` + the lineage's refunds since the checkpoint (or − its shortfall) |
/// | a COMM consuming stored items | refund of their storage |
///
/// *Matching* is `matching(examined)`: one `match_candidate` per pattern tried against a datum,
/// a similarity ranking counting every datum it scored. A candidate an index rules out is not
/// tried and not counted: a datum whose value differs from an exact pattern's key on an
/// indexed channel, and a waiting continuation whose exact key differs from a produced datum
/// in a group that walks by key (16 or more one-channel Bag or Set continuations, all with
/// exact keys). When an index is used depends only on the state and the calls since the last
/// hard checkpoint, so the charge is the same on every node. *Vector work* is
/// [`CostTable::vector_work`] of [`Admission::vector`]: `vector_search_base` per similarity
/// ranking the search ran on a VectorDB channel, plus `vector_element` per vector element
/// scored, by those rankings (data scored × the channel's dimension) and by matcher calls on
/// similarity patterns (the pattern's dimension each), so a similarity search over long
/// embeddings costs in proportion to their length. *`comm`* is priced by the data the COMM
/// takes or peeks (one per position, `k` for a top-k position).
///
/// **Soft checkpoints and refunds.** A revert never gives back work: operation prices stay
/// paid, and the storage of items stored after the checkpoint that the revert drops stays
/// spent. But a storage refund is part of the state it led to. The space keeps a *refund
/// ledger*: the net storage its meter refunded along the lineage of the current state. A
/// soft checkpoint records it with the state, and a revert settles the difference with the
/// meter:
///
/// - the lineage left has refunded more than the checkpoint's (it consumed items that the
///   revert brings back): the revert charges the difference back, so a restored item's
///   storage is paid again; a loop of "consume a stored datum, revert" gains nothing;
/// - less (a revert forward, to a checkpoint taken after more was freed): the revert refunds
///   the difference.
///
/// So a checkpoint taken, `X` consumed (refund `r`), reverted: `r` is charged back. Nested:
/// `cp2`, consume `X` (`r`), `cp1`, consume `Y` (`s`); reverting to `cp1` charges `s` back,
/// then to `cp2` charges `r`; and reverting forward to `cp1` again refunds `r`. A charge-back
/// that would overdraw refuses the revert with `OutOfPhlogiston`, and nothing changes. Every
/// refund is thus made at most once per lineage: the meter has been paid for the storage of
/// every item this space stored that the current state holds (SPEC §8; but see *Limits*).
///
/// **Under any number of threads** the ledger agrees with the state it describes. The refund
/// is made by the operation's admission gate, under the shard locks of the operation that
/// frees the storage, after its search and before its change (nothing fails once a gate has
/// admitted), and the amount refunded is added to the ledger in that same critical section. A
/// soft checkpoint reads the ledger, and a revert settles and rewrites it, while holding every
/// shard. So no checkpoint or revert falls between a COMM and its refund. Cost: the ledger is
/// split per shard, each part guarded by its shard's lock, so no operation bumps a shared
/// counter; a refund adds one word to its shard's part, and a checkpoint or revert sums the
/// parts, O(shards), under the locks it takes anyway.
///
/// **Searches stop at the balance.** Work is priced after the search, but a produce's or
/// consume's search does not run past what the meter can pay: as a join search walks a
/// position's candidates (before each matcher call of a walk one by one; after a similarity
/// ranking, a top-k position's walk or a parallel pre-check's walk, which are checked once
/// done), and before each waiting continuation a produce offers its datum to, the price of
/// the work so far (plus the operation's base price and join arity) is compared with the
/// meter's balance, and once it is more the operation fails with `OutOfPhlogiston` at once
/// (its `requested` is that price, a lower bound of what the whole operation would have
/// cost). An operation so stopped would have been refused at the gate anyway; the same calls
/// on the same state and balance stop at the same point (in a replay that follows play, a
/// call play admitted is never stopped: see the `budget` module). A
/// join search's worst case is exponential in the positions that share a channel (see the
/// [`Space`] cost table); this bounds what a caller can make one charged call do by its
/// balance. Not capped: a single-channel consume's walk (at most one call per datum of the
/// channel) and `install`.
///
/// # Limits
/// - The wrapped [`Space`] ([`ChargingSpace::space`]) is not metered: its produce, consume,
///   `reset`, `clear` and plain revert charge nothing and settle nothing (they leave the
///   ledger as it is, so a later settled revert still charges back every refund made since
///   its checkpoint).
/// - Hard checkpoints are not charged: a charging space has no `create_checkpoint` of its
///   own, and the wrapped space's is unmetered like the rest of it, so
///   [`CostTable::hard_checkpoint`] prices nothing here (a hard checkpoint is the block's
///   step, not a deploy's; a caller that wants it paid charges the meter itself).
/// - A checkpoint of another space carries another meter's refunds: reverting to it charges
///   only the price, and the ledger goes on from its value before.
/// - The space does not record which meter paid for an item: one this meter never paid to
///   store (stored before the space was wrapped, through the unmetered space, or brought by
///   another space's checkpoint) is refunded all the same when a COMM frees it, out of
///   whatever else the meter has charged, up to what it has charged and not refunded (so
///   such a COMM can cost its caller less than its price). The ledger counts what was
///   actually refunded.
/// - The ledger is a `u64` sum of refunds, exact up to 2^64 phlogiston refunded in a lineage.
///
/// # Example
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

/// The price of the similarity rankings an operation's search ran (see
/// [`VectorWork`](crate::VectorWork)): `vector_search_base` per ranking plus `vector_element` per
/// vector element scored.
fn vector_work_price<C, P, A, K>(table: &CostTable, a: &Admission<'_, C, P, A, K>) -> u64 {
    table.vector_work(a.vector.searches, a.vector.elements)
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
    /// Nothing called on it is charged: its changing operations too, batches included
    /// ([`Space::produce_batch`], [`Space::consume_batch`]), run unmetered. A charged space has
    /// no batch methods; call [`produce`](Self::produce) or [`consume`](Self::consume) on each
    /// item in order, which is what a batch promises to equal (see `Space::produce_batch`),
    /// each charged and refused alone.
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

    /// Refunds `amount`, or as much of it as the meter will take back; returns what it
    /// refunded.
    fn refund(&self, amount: u64) -> u64 {
        let mut amount = amount;
        loop {
            match self.meter.refund(amount) {
                Ok(()) => return amount,
                // Items stored before this meter charged them (another meter, an unmetered
                // call) cannot be refunded beyond what this meter took: clamp, never fail.
                // The meter's answer is below `amount` and a refund of 0 always succeeds, so
                // the loop ends; it retries only when a concurrent refund took the room.
                Err(e) => amount = e.refundable,
            }
        }
    }

    /// The search cap of an operation whose price before any work is `fixed` (see
    /// [`crate::budget`]).
    fn allowance(&self, fixed: u64) -> Allowance<'_> {
        Allowance {
            meter: &self.meter,
            table: &self.table,
            fixed,
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
        self.space.produce_gated(
            channel,
            datum,
            persist,
            priority,
            Credited(
                |a: &Admission<'_, C, P, A, K>| {
                    let mut cost = table
                        .produce_base
                        .saturating_add(table.matching(to_usize(a.examined)))
                        .saturating_add(vector_work_price(table, a));
                    if a.stores {
                        cost = cost.saturating_add(table.datum_storage(channel_len, datum_len));
                    }
                    if let Some(data) = a.fires {
                        cost = cost.saturating_add(table.comm(data));
                    }
                    self.meter.charge(cost)?;
                    // Admitted: the change follows under the same locks, so the storage it frees
                    // is refunded now, and the refund is the credit (see the type's docs).
                    Ok(self.refund(freed_storage(table, a)))
                },
                self.allowance(table.produce_base),
            ),
        )
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
        let fixed = table
            .consume_base
            .saturating_add(table.join_channel.saturating_mul(arity as u64));
        self.space.consume_gated(
            channels,
            patterns,
            continuation,
            persist,
            peeks,
            Credited(
                |a: &Admission<'_, C, P, A, K>| {
                    let mut cost = fixed
                        .saturating_add(table.matching(to_usize(a.examined)))
                        .saturating_add(vector_work_price(table, a));
                    if a.stores {
                        cost = cost.saturating_add(table.continuation_storage(
                            channels_len,
                            patterns_len,
                            continuation_len,
                        ));
                    }
                    if let Some(data) = a.fires {
                        cost = cost.saturating_add(table.comm(data));
                    }
                    self.meter.charge(cost)?;
                    Ok(self.refund(freed_storage(table, a)))
                },
                self.allowance(fixed),
            ),
        )
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
                    .saturating_add(table.matching(to_usize(a.examined)))
                    .saturating_add(vector_work_price(table, a));
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

    /// [`Space::revert_to_soft_checkpoint`], charged `soft_checkpoint`, settling the storage
    /// refunds of the lineage it leaves (see the type's docs): if the space has refunded more
    /// storage since `checkpoint` was taken than it had then, the revert brings back items
    /// whose storage was refunded and charges that difference back; if less (a revert forward
    /// to a checkpoint taken after more was freed), it refunds the difference. Work stays
    /// paid for: no operation's price comes back, and storage charged for items the revert
    /// drops stays spent.
    ///
    /// Errors, after which nothing changes (neither the space nor the meter):
    /// [`RevertError::OutOfPhlogiston`] when the meter cannot pay the price and the
    /// charge-back together; [`RevertError::KindMismatch`] as [`Space::revert_to_soft_checkpoint`]
    /// (checked before anything is charged).
    ///
    /// Time: as [`Space::revert_to_soft_checkpoint`].
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use rhospace_spaces::{ChargingSpace, Space, SpaceConfig};
    /// # use rhospace_matchers::ExactMatch;
    /// # use rhospace_phlogiston::{CostTable, PhlogistonMeter};
    /// # let s: ChargingSpace<u8, u8, u8, u8, ExactMatch> = ChargingSpace::new(
    /// #     Space::new(ExactMatch, SpaceConfig::new()), Arc::new(PhlogistonMeter::new(10_000)), CostTable::default());
    /// let t = *s.table();
    /// s.produce(0, 7, false).unwrap();
    /// let cp = s.create_soft_checkpoint().unwrap();
    /// let before = s.meter().consumed();
    /// // The consume refunds the datum's storage; the revert stores the datum again and takes
    /// // the refund back.
    /// s.consume([0u8], [7u8], 9, false, &[]).unwrap().unwrap();
    /// s.revert_to_soft_checkpoint(&cp).unwrap();
    /// assert_eq!(s.space().data(&0).len(), 1);
    /// assert_eq!(
    ///     s.meter().consumed(),
    ///     before + t.consume_base + t.join_channel + t.matching(1) + t.comm(1) + t.soft_checkpoint()
    /// );
    /// ```
    pub fn revert_to_soft_checkpoint(
        &self,
        checkpoint: &SoftCheckpoint<C, P, A, K>,
    ) -> Result<(), RevertError> {
        // Checked before anything is charged: a refused revert costs nothing.
        self.space.check_kinds(checkpoint)?;
        let price = self.table.soft_checkpoint();
        self.space.revert_settled(checkpoint, |now, then| {
            // Both are the net storage this meter refunded, along the lineage of the state now
            // and of the checkpoint's (exact: no run refunds 2^64).
            if now >= then {
                // One charge: the price and the charge-back are paid together or not at all.
                self.meter.charge(price.saturating_add(now - then))?;
                Ok(then)
            } else {
                self.meter.charge(price)?;
                Ok(now.wrapping_add(self.refund(then - now)))
            }
        })
    }
}
