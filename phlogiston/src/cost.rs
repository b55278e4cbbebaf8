//! The cost table: what each tuple-space operation costs, in phlogiston.
//!
//! Costs are a base price per operation plus per-unit prices for the real work: the *encoded*
//! byte length of what is stored (channel, datum, patterns, continuation — not `size_of`), the
//! number of channels in a join, the candidates a matcher examined, and for vector search the
//! vectors scanned times their dimension. Callers pass lengths and counts as `usize`.
//!
//! Every function is a `const fn` of plain arithmetic and *saturates*: no input overflows or
//! panics, and a saturated cost (`u64::MAX`) simply cannot be paid by any meter.
//!
//! Storage is priced separately ([`CostTable::datum_storage`],
//! [`CostTable::continuation_storage`]) and included in the produce / consume / install costs, so
//! that when a COMM removes a stored datum or continuation the space can refund exactly what
//! storing it cost, by calling the same function with the same lengths.

/// Prices of tuple-space operations, in phlogiston. A plain struct: build one with
/// [`Default`] (the values documented on each field) and change what you need.
///
/// # Example
/// ```
/// use rhospace_phlogiston::CostTable;
///
/// let table = CostTable { datum_byte: 2, ..CostTable::default() };
/// // produce on a 32-byte channel of a 100-byte datum
/// let cost = table.produce(32, 100);
/// assert_eq!(cost, table.produce_base + 32 * table.channel_byte + 100 * 2);
/// // the storage part is refunded when a COMM consumes the datum
/// assert_eq!(table.datum_storage(32, 100), 32 * table.channel_byte + 100 * 2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CostTable {
    /// Base price of a produce (evaluating a send). Default 11.
    pub produce_base: u64,
    /// Base price of a consume (evaluating a receive). Default 11.
    pub consume_base: u64,
    /// Base price of an install (start-up persistent continuation). Default 11.
    pub install_base: u64,
    /// Base price of one COMM (a firing). Default 10.
    pub comm_base: u64,
    /// Price per datum a COMM takes or peeks (one per position; `k` for a top-k similarity
    /// position). Default 2.
    pub comm_per_position: u64,
    /// Price of creating a fresh channel (`new x in ..`). Default 10.
    pub new_channel: u64,
    /// Price per channel in a consume's or install's channel list (a join of n channels pays n
    /// times). Default 5.
    pub join_channel: u64,
    /// Storage price per encoded byte of a channel. Default 1.
    pub channel_byte: u64,
    /// Storage price per encoded byte of a datum. Default 1.
    pub datum_byte: u64,
    /// Storage price per encoded byte of the patterns of a consume or install. Default 1.
    pub pattern_byte: u64,
    /// Storage price per encoded byte of a continuation. Default 1.
    pub continuation_byte: u64,
    /// Price per candidate the matcher examined (one pattern tried against one datum).
    /// Default 2.
    pub match_candidate: u64,
    /// Price of a soft checkpoint (O(1) snapshot) or of reverting to one. Default 20.
    pub soft_checkpoint: u64,
    /// Base price of a hard checkpoint (state root + log). Default 1,000.
    pub hard_checkpoint_base: u64,
    /// Price per item changed since the last hard checkpoint (re-hashing is incremental).
    /// Default 10.
    pub hard_checkpoint_item: u64,
    /// Base price of a vector similarity search (a charging space pays it once per similarity
    /// ranking its search runs). Default 10.
    pub vector_search_base: u64,
    /// Price per vector element scanned (vectors scored × dimension, whether by a ranking or by
    /// one similarity match). Default 1.
    pub vector_element: u64,
}

impl Default for CostTable {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// `usize` → `u64`, saturating on (hypothetical) targets where `usize` is wider.
#[inline(always)]
const fn units(n: usize) -> u64 {
    if n as u128 > u64::MAX as u128 {
        u64::MAX
    } else {
        n as u64
    }
}

/// `price * n`, saturating.
#[inline(always)]
const fn times(price: u64, n: usize) -> u64 {
    price.saturating_mul(units(n))
}

impl CostTable {
    /// The default prices, as a constant (the same as [`CostTable::default()`]).
    ///
    /// # Example
    /// ```
    /// # use rhospace_phlogiston::CostTable;
    /// const TABLE: CostTable = CostTable::DEFAULT;
    /// assert_eq!(TABLE, CostTable::default());
    /// ```
    pub const DEFAULT: CostTable = CostTable {
        produce_base: 11,
        consume_base: 11,
        install_base: 11,
        comm_base: 10,
        comm_per_position: 2,
        new_channel: 10,
        join_channel: 5,
        channel_byte: 1,
        datum_byte: 1,
        pattern_byte: 1,
        continuation_byte: 1,
        match_candidate: 2,
        soft_checkpoint: 20,
        hard_checkpoint_base: 1_000,
        hard_checkpoint_item: 10,
        vector_search_base: 10,
        vector_element: 1,
    };

    /// Storage price of a datum of `datum_len` encoded bytes kept on a channel of `channel_len`
    /// encoded bytes. Included in [`produce`](Self::produce); refund exactly this when a COMM
    /// removes the stored datum.
    ///
    /// # Example
    /// ```
    /// # use rhospace_phlogiston::CostTable;
    /// let t = CostTable::default();
    /// assert_eq!(t.datum_storage(4, 10), 4 * t.channel_byte + 10 * t.datum_byte);
    /// assert_eq!(t.datum_storage(usize::MAX, usize::MAX), u64::MAX); // saturates
    /// ```
    #[inline]
    pub const fn datum_storage(&self, channel_len: usize, datum_len: usize) -> u64 {
        times(self.channel_byte, channel_len).saturating_add(times(self.datum_byte, datum_len))
    }

    /// Storage price of a continuation waiting on channels whose encodings total
    /// `channels_len` bytes, with patterns totalling `patterns_len` bytes and a continuation of
    /// `continuation_len` bytes. Included in [`consume`](Self::consume) and
    /// [`install`](Self::install); refund exactly this when a COMM removes the stored
    /// continuation.
    ///
    /// # Example
    /// ```
    /// # use rhospace_phlogiston::CostTable;
    /// let t = CostTable::default();
    /// assert_eq!(t.continuation_storage(8, 6, 20), 8 + 6 + 20);
    /// ```
    #[inline]
    pub const fn continuation_storage(
        &self,
        channels_len: usize,
        patterns_len: usize,
        continuation_len: usize,
    ) -> u64 {
        times(self.channel_byte, channels_len)
            .saturating_add(times(self.pattern_byte, patterns_len))
            .saturating_add(times(self.continuation_byte, continuation_len))
    }

    /// Price of a produce: base plus the datum's storage.
    ///
    /// # Example
    /// ```
    /// # use rhospace_phlogiston::CostTable;
    /// let t = CostTable::default();
    /// assert!(t.produce(8, 1_000) > t.produce(8, 10)); // per-byte
    /// assert_eq!(t.produce(8, 10), t.produce_base + t.datum_storage(8, 10));
    /// ```
    #[inline]
    pub const fn produce(&self, channel_len: usize, datum_len: usize) -> u64 {
        self.produce_base
            .saturating_add(self.datum_storage(channel_len, datum_len))
    }

    /// Price of a consume on a join of `channels` channels: base, plus `join_channel` per
    /// channel, plus the continuation's storage (see
    /// [`continuation_storage`](Self::continuation_storage) for the lengths).
    ///
    /// # Example
    /// ```
    /// # use rhospace_phlogiston::CostTable;
    /// let t = CostTable::default();
    /// assert_eq!(
    ///     t.consume(2, 16, 6, 20),
    ///     t.consume_base + 2 * t.join_channel + t.continuation_storage(16, 6, 20)
    /// );
    /// assert!(t.consume(3, 16, 6, 20) > t.consume(2, 16, 6, 20)); // grows with the join
    /// ```
    #[inline]
    pub const fn consume(
        &self,
        channels: usize,
        channels_len: usize,
        patterns_len: usize,
        continuation_len: usize,
    ) -> u64 {
        self.consume_base
            .saturating_add(times(self.join_channel, channels))
            .saturating_add(self.continuation_storage(channels_len, patterns_len, continuation_len))
    }

    /// Price of an install: like [`consume`](Self::consume) with `install_base` as the base.
    ///
    /// # Example
    /// ```
    /// # use rhospace_phlogiston::CostTable;
    /// let t = CostTable::default();
    /// assert_eq!(t.install(1, 8, 4, 10), t.install_base + t.join_channel + 8 + 4 + 10);
    /// ```
    #[inline]
    pub const fn install(
        &self,
        channels: usize,
        channels_len: usize,
        patterns_len: usize,
        continuation_len: usize,
    ) -> u64 {
        self.install_base
            .saturating_add(times(self.join_channel, channels))
            .saturating_add(self.continuation_storage(channels_len, patterns_len, continuation_len))
    }

    /// Price of one COMM that took or peeked at `data` data (a join position takes one; a
    /// top-k similarity position takes up to k).
    ///
    /// # Example
    /// ```
    /// # use rhospace_phlogiston::CostTable;
    /// let t = CostTable::default();
    /// assert_eq!(t.comm(3), t.comm_base + 3 * t.comm_per_position);
    /// ```
    #[inline]
    pub const fn comm(&self, data: usize) -> u64 {
        self.comm_base
            .saturating_add(times(self.comm_per_position, data))
    }

    /// Price of creating `count` fresh channels.
    ///
    /// # Example
    /// ```
    /// # use rhospace_phlogiston::CostTable;
    /// assert_eq!(CostTable::default().new_channels(2), 20);
    /// ```
    #[inline]
    pub const fn new_channels(&self, count: usize) -> u64 {
        times(self.new_channel, count)
    }

    /// Price of matching work: `candidates` pattern-against-datum attempts. Where the real count
    /// is known only after the search, charge this for an upper bound first and refund the
    /// difference ([`matching_refund`](Self::matching_refund)).
    ///
    /// # Example
    /// ```
    /// # use rhospace_phlogiston::CostTable;
    /// assert_eq!(CostTable::default().matching(5), 10);
    /// ```
    #[inline]
    pub const fn matching(&self, candidates: usize) -> u64 {
        times(self.match_candidate, candidates)
    }

    /// What to refund after charging [`matching`](Self::matching)`(bound)` when only
    /// `examined` candidates were actually examined: `matching(bound) - matching(examined)`,
    /// or 0 if `examined >= bound`. Exact even where `matching(bound)` saturated.
    ///
    /// # Example
    /// ```
    /// # use rhospace_phlogiston::CostTable;
    /// let t = CostTable::default();
    /// assert_eq!(t.matching(10) - t.matching_refund(10, 3), t.matching(3));
    /// assert_eq!(t.matching_refund(3, 10), 0);
    /// ```
    #[inline]
    pub const fn matching_refund(&self, bound: usize, examined: usize) -> u64 {
        self.matching(bound).saturating_sub(self.matching(examined))
    }

    /// Price of a soft checkpoint, or of reverting to one (both O(1)).
    ///
    /// # Example
    /// ```
    /// # use rhospace_phlogiston::CostTable;
    /// assert_eq!(CostTable::default().soft_checkpoint(), 20);
    /// ```
    #[inline]
    pub const fn soft_checkpoint(&self) -> u64 {
        self.soft_checkpoint
    }

    /// Price of a hard checkpoint after `changed_items` items changed since the last one.
    ///
    /// # Example
    /// ```
    /// # use rhospace_phlogiston::CostTable;
    /// let t = CostTable::default();
    /// assert_eq!(t.hard_checkpoint(0), t.hard_checkpoint_base);
    /// assert_eq!(t.hard_checkpoint(5), t.hard_checkpoint_base + 5 * t.hard_checkpoint_item);
    /// ```
    #[inline]
    pub const fn hard_checkpoint(&self, changed_items: usize) -> u64 {
        self.hard_checkpoint_base
            .saturating_add(times(self.hard_checkpoint_item, changed_items))
    }

    /// Price of a vector similarity search that scanned `vectors` vectors of `dimension`
    /// elements.
    ///
    /// # Example
    /// ```
    /// # use rhospace_phlogiston::CostTable;
    /// let t = CostTable::default();
    /// assert_eq!(t.vector_search(100, 64), t.vector_search_base + 6_400);
    /// assert_eq!(t.vector_search(usize::MAX, usize::MAX), u64::MAX);
    /// ```
    #[inline]
    pub const fn vector_search(&self, vectors: usize, dimension: usize) -> u64 {
        let elements = units(vectors).saturating_mul(units(dimension));
        self.vector_search_base
            .saturating_add(self.vector_element.saturating_mul(elements))
    }

    /// Price of `searches` vector similarity searches plus `elements` vector elements scanned
    /// (vectors × dimension, summed over the searches and any single similarity matches): what
    /// one operation pays when its search ranks by similarity on several positions or
    /// continuations. Equal
    /// to [`vector_search`](Self::vector_search)`(vectors, dimension)` for one search of
    /// `vectors × dimension` elements; 0 for no search.
    ///
    /// # Example
    /// ```
    /// # use rhospace_phlogiston::CostTable;
    /// let t = CostTable::default();
    /// assert_eq!(t.vector_work(1, 6_400), t.vector_search(100, 64));
    /// assert_eq!(t.vector_work(2, 30), 2 * t.vector_search_base + 30 * t.vector_element);
    /// assert_eq!(t.vector_work(0, 0), 0);
    /// assert_eq!(t.vector_work(1, u64::MAX), u64::MAX);
    /// ```
    #[inline]
    pub const fn vector_work(&self, searches: u64, elements: u64) -> u64 {
        self.vector_search_base
            .saturating_mul(searches)
            .saturating_add(self.vector_element.saturating_mul(elements))
    }
}
