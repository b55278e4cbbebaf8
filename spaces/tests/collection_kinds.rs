//! SPEC §4's selection rules on large stores: one channel of each data kind under each
//! continuation kind, driven by long random call sequences (bursts of produces, consumes by
//! exact key, by predicate, peeking and persistent, soft checkpoints and reverts, hard
//! checkpoints and resets) against a deliberately naive model (a `Vec` per collection).
//!
//! The workspace's model test covers joins and the kinds on stores of a few items; this one
//! pushes a single channel past the sizes where the store changes shape: the exact index of
//! a Bag or Set (16 items), the chunked layout (past 32 slots), compaction (more than 64
//! tombstones beyond twice the live items), and a soft checkpoint sharing all of them.

use proptest::prelude::*;
use proptest::sample::Index;
use rhospace_matchers::Match;
use rhospace_spaces::{
    CandidateOrder, Comm, ContKind, DataKind, Decode, DecodeError, Encode, ErrorKind,
    MemoryHistory, SoftCheckpoint, Space, SpaceConfig, StoredDatum,
};
use std::sync::Arc;

/// A pattern: any datum, exactly one value (an exact key, so the index is used), or a parity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Pat {
    Any,
    Eq(i64),
    Parity(i64),
}

impl Pat {
    fn accepts(self, d: i64) -> bool {
        match self {
            Pat::Any => true,
            Pat::Eq(n) => d == n,
            Pat::Parity(r) => d.rem_euclid(2) == r,
        }
    }
}

impl Encode for Pat {
    fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Pat::Any => out.push(0),
            Pat::Eq(n) => {
                out.push(1);
                n.encode(out);
            }
            Pat::Parity(r) => {
                out.push(2);
                r.encode(out);
            }
        }
    }

    fn encoded_len(&self) -> usize {
        match self {
            Pat::Any => 1,
            _ => 9,
        }
    }
}

/// The inverse of `Encode` (`reset` decodes what it does not hold in memory).
impl Decode for Pat {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(match u8::decode(input)? {
            0 => Pat::Any,
            1 => Pat::Eq(i64::decode(input)?),
            2 => Pat::Parity(i64::decode(input)?),
            _ => return Err(DecodeError::Invalid("a Pat tag")),
        })
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct PatMatch;

impl Match<Pat, i64> for PatMatch {
    type Output = i64;

    fn get(&self, pattern: &Pat, datum: &i64) -> Option<i64> {
        pattern.accepts(*datum).then_some(*datum)
    }

    fn exact_key<'p>(&self, pattern: &'p Pat) -> Option<&'p i64> {
        match pattern {
            Pat::Eq(n) => Some(n),
            _ => None,
        }
    }
}

type K = u8;
type S = Space<u8, Pat, i64, K, PatMatch>;
const CH: u8 = 0;

/// A COMM in plain form: continuation, datum, datum persistent, consume persistent, peeks,
/// re-issue.
type MComm = (K, i64, bool, bool, Vec<usize>, bool);

fn plain(c: Comm<u8, Pat, i64, K, i64>) -> MComm {
    assert_eq!(c.matches.len(), 1, "one position, one match");
    let m = &c.matches[0];
    assert_eq!(m.result, m.datum, "the matcher's result is reported");
    (
        c.continuation,
        m.datum,
        m.persistent,
        c.persistent,
        c.peeks.to_vec(),
        c.reissue,
    )
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct MDatum {
    value: i64,
    persist: bool,
    priority: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct MCont {
    pat: Pat,
    k: K,
    persist: bool,
    peek: bool,
}

/// The model: data and continuations in arrival order.
#[derive(Clone, Debug, Default)]
struct MState {
    data: Vec<MDatum>,
    conts: Vec<MCont>,
}

struct Model {
    kind: DataKind,
    ck: ContKind,
    st: MState,
}

impl Model {
    /// Index (into `data`) of the datum the kind hands out first, for head-only kinds.
    fn head(&self) -> Option<usize> {
        let d = &self.st.data;
        if d.is_empty() {
            return None;
        }
        Some(match self.kind {
            DataKind::Stack => d.len() - 1,
            DataKind::PriorityQueue => {
                // Highest priority, earliest within it.
                let mut best = 0;
                for (i, x) in d.iter().enumerate() {
                    if x.priority > d[best].priority {
                        best = i;
                    }
                }
                best
            }
            _ => 0,
        })
    }

    fn head_only(&self) -> bool {
        !matches!(self.kind, DataKind::Bag | DataKind::Set)
    }

    fn produce(
        &mut self,
        value: i64,
        persist: bool,
        prio: i64,
    ) -> Result<Option<MComm>, ErrorKind> {
        let priority = if self.kind == DataKind::PriorityQueue {
            prio
        } else {
            0
        };
        if self.kind == DataKind::Cell && !self.st.data.is_empty() {
            return Err(ErrorKind::CellFull);
        }
        if self.kind == DataKind::Set && self.st.data.iter().any(|d| d.value == value) {
            return Ok(None);
        }
        let head = match self.kind {
            DataKind::Queue | DataKind::Cell => self.st.data.is_empty(),
            DataKind::PriorityQueue => self.st.data.iter().all(|d| d.priority < priority),
            _ => true,
        };
        if head {
            let offered: Vec<usize> = match self.ck {
                ContKind::Bag | ContKind::Set => (0..self.st.conts.len()).collect(),
                ContKind::Queue => (0..self.st.conts.len().min(1)).collect(),
                ContKind::Stack => self.st.conts.len().checked_sub(1).into_iter().collect(),
            };
            for i in offered {
                let w = self.st.conts[i].clone();
                if w.pat.accepts(value) {
                    if !w.persist {
                        self.st.conts.remove(i);
                    }
                    let peeks = if w.peek { vec![0] } else { vec![] };
                    return Ok(Some((
                        w.k,
                        value,
                        persist,
                        w.persist,
                        peeks,
                        persist || w.peek,
                    )));
                }
            }
        }
        self.st.data.push(MDatum {
            value,
            persist,
            priority,
        });
        Ok(None)
    }

    fn consume(&mut self, pat: Pat, k: K, persist: bool, peek: bool) -> Option<MComm> {
        let pick = if self.head_only() {
            self.head().filter(|&i| pat.accepts(self.st.data[i].value))
        } else {
            self.st.data.iter().position(|d| pat.accepts(d.value))
        };
        let peeks = if peek { vec![0] } else { vec![] };
        match pick {
            Some(i) => {
                let d = self.st.data[i].clone();
                if !d.persist && !peek {
                    self.st.data.remove(i);
                }
                Some((k, d.value, d.persist, persist, peeks, persist))
            }
            None => {
                let w = MCont {
                    pat,
                    k,
                    persist,
                    peek,
                };
                if !(self.ck == ContKind::Set && self.st.conts.contains(&w)) {
                    self.st.conts.push(w);
                }
                None
            }
        }
    }

    fn data_view(&self) -> Vec<MDatum> {
        let mut v = self.st.data.clone();
        match self.kind {
            DataKind::Stack => v.reverse(),
            // Stable: FIFO within a level.
            DataKind::PriorityQueue => v.sort_by_key(|d| std::cmp::Reverse(d.priority)),
            _ => {}
        }
        v
    }
}

#[derive(Clone, Debug)]
enum Action {
    Produce {
        value: i64,
        persist: bool,
        prio: i64,
    },
    /// `n` non-persistent produces of `start`, `start + 1`, ... (modulo the value range).
    Burst {
        start: i64,
        n: usize,
    },
    Consume {
        pat: Pat,
        k: K,
        persist: bool,
        peek: bool,
    },
    /// `n` consumes of `Eq(start)`, `Eq(start + 7)`, ... (modulo the value range): removals
    /// from the middle of a Bag or Set, toward compaction.
    Sweep {
        start: i64,
        n: usize,
    },
    SoftCheckpoint,
    SoftRevert(Index),
    HardCheckpoint,
    Reset(Index),
}

fn action(values: i64) -> impl Strategy<Value = Action> {
    let value = 0..values;
    let pat = prop_oneof![
        2 => Just(Pat::Any),
        5 => (0..values).prop_map(Pat::Eq),
        2 => (0..2i64).prop_map(Pat::Parity),
    ];
    prop_oneof![
        8 => (value.clone(), proptest::bool::weighted(0.1), -2..3i64)
            .prop_map(|(value, persist, prio)| Action::Produce { value, persist, prio }),
        2 => (value.clone(), 1..150usize).prop_map(|(start, n)| Action::Burst { start, n }),
        1 => (value, 1..120usize).prop_map(|(start, n)| Action::Sweep { start, n }),
        10 => (pat, 0..3u8, proptest::bool::weighted(0.1), proptest::bool::weighted(0.15))
            .prop_map(|(pat, k, persist, peek)| Action::Consume { pat, k, persist, peek }),
        1 => Just(Action::SoftCheckpoint),
        1 => any::<Index>().prop_map(Action::SoftRevert),
        1 => Just(Action::HardCheckpoint),
        1 => any::<Index>().prop_map(Action::Reset),
    ]
}

fn data_of(s: &S) -> Vec<MDatum> {
    s.data(&CH)
        .into_iter()
        .map(
            |StoredDatum {
                 value,
                 persist,
                 priority,
             }| MDatum {
                value,
                persist,
                priority,
            },
        )
        .collect()
}

fn conts_of(s: &S) -> Vec<MCont> {
    s.continuations(&[CH])
        .into_iter()
        .map(|w| MCont {
            pat: w.patterns[0],
            k: w.continuation,
            persist: w.persist,
            peek: !w.peeks.is_empty(),
        })
        .collect()
}

/// Sorted copies, to compare collections whose order a hard checkpoint canonicalises.
fn sorted<T: Clone, F: Fn(&T) -> X, X: Ord>(v: &[T], key: F) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort_by_key(|x| key(x));
    v
}

fn dkey(d: &MDatum) -> (i64, bool, i64) {
    (d.value, d.persist, d.priority)
}

fn ckey(w: &MCont) -> (u8, i64, K, bool, bool) {
    let (tag, n) = match w.pat {
        Pat::Any => (0, 0),
        Pat::Eq(n) => (1, n),
        Pat::Parity(r) => (2, r),
    };
    (tag, n, w.k, w.persist, w.peek)
}

fn run(kind: DataKind, ck: ContKind, values: i64, actions: &[Action]) -> Result<(), TestCaseError> {
    let config = SpaceConfig::new()
        .data_kind(kind)
        .cont_kind(ck)
        .candidate_order(CandidateOrder::OldestFirst);
    let history = Arc::new(MemoryHistory::new());
    let mut s: S = Space::new(PatMatch, config.clone()).with_history(history.clone());
    let mut m = Model {
        kind,
        ck,
        st: MState::default(),
    };
    let mut softs: Vec<(SoftCheckpoint<u8, Pat, i64, K>, MState)> = Vec::new();
    let mut roots = Vec::new();
    for (step, a) in actions.iter().enumerate() {
        match a {
            Action::Produce {
                value,
                persist,
                prio,
            } => {
                let got = s
                    .produce_with_priority(CH, *value, *persist, *prio)
                    .map(|c| c.map(plain))
                    .map_err(|e| e.kind().clone());
                let want = m.produce(*value, *persist, *prio);
                prop_assert_eq!(got, want, "step {}: {:?}", step, a);
            }
            Action::Burst { start, n } => {
                for i in 0..*n {
                    let value = (start + i as i64) % values;
                    let got = s
                        .produce(CH, value, false)
                        .map(|c| c.map(plain))
                        .map_err(|e| e.kind().clone());
                    let want = m.produce(value, false, 0);
                    prop_assert_eq!(got, want, "step {} item {}: {:?}", step, i, a);
                }
            }
            Action::Consume {
                pat,
                k,
                persist,
                peek,
            } => {
                let peeks: &[usize] = if *peek { &[0] } else { &[] };
                let got = s
                    .consume([CH], [*pat], *k, *persist, peeks)
                    .map(|c| c.map(plain))
                    .map_err(|e| e.kind().clone());
                let want = Ok(m.consume(*pat, *k, *persist, *peek));
                prop_assert_eq!(got, want, "step {}: {:?}", step, a);
            }
            Action::Sweep { start, n } => {
                for i in 0..*n {
                    let pat = Pat::Eq((start + 7 * i as i64) % values);
                    let got = s
                        .consume([CH], [pat], 0, false, &[])
                        .map(|c| c.map(plain))
                        .map_err(|e| e.kind().clone());
                    let want = Ok(m.consume(pat, 0, false, false));
                    prop_assert_eq!(got, want, "step {} item {}: {:?}", step, i, a);
                }
            }
            Action::SoftCheckpoint => softs.push((s.create_soft_checkpoint(), m.st.clone())),
            Action::SoftRevert(ix) => {
                if !softs.is_empty() {
                    let (cp, st) = &softs[ix.index(softs.len())];
                    s.revert_to_soft_checkpoint(cp).unwrap();
                    m.st = st.clone();
                }
            }
            Action::HardCheckpoint => {
                let root = s.create_checkpoint().expect("in-memory history").root;
                // Bag and Set contents (data, continuations) are put in canonical order: the
                // same items, which the model then takes in the space's order.
                let data = data_of(&s);
                if matches!(kind, DataKind::Bag | DataKind::Set) {
                    prop_assert_eq!(sorted(&data, dkey), sorted(&m.st.data, dkey));
                    m.st.data = data;
                }
                let conts = conts_of(&s);
                if matches!(ck, ContKind::Bag | ContKind::Set) {
                    prop_assert_eq!(sorted(&conts, ckey), sorted(&m.st.conts, ckey));
                    m.st.conts = conts;
                }
                roots.push((root, m.st.clone()));
            }
            Action::Reset(ix) => {
                if !roots.is_empty() {
                    let (root, st) = &roots[ix.index(roots.len())];
                    s.reset(root).expect("a recorded root");
                    m.st = st.clone();
                    // A space that never held the root loads it from the history store
                    // (decoding every leaf): the same contents, in the same order.
                    let fresh: S =
                        Space::new(PatMatch, config.clone()).with_history(history.clone());
                    fresh.reset(root).expect("a stored root");
                    prop_assert_eq!(data_of(&fresh), m.data_view(), "loaded data");
                    prop_assert_eq!(conts_of(&fresh), m.st.conts.clone(), "loaded continuations");
                    // Go on with the loaded space (soft checkpoints of the first one revert
                    // into it).
                    s = fresh;
                }
            }
        }
        prop_assert_eq!(
            data_of(&s),
            m.data_view(),
            "data after step {}: {:?}",
            step,
            a
        );
        prop_assert_eq!(
            conts_of(&s),
            m.st.conts.clone(),
            "continuations after step {}",
            step
        );
    }
    // Every soft checkpoint still holds what it held when taken (later calls never alter it).
    for (cp, st) in &softs {
        s.revert_to_soft_checkpoint(cp).unwrap();
        m.st = st.clone();
        prop_assert_eq!(data_of(&s), m.data_view(), "a soft checkpoint was altered");
        prop_assert_eq!(
            conts_of(&s),
            m.st.conts.clone(),
            "a soft checkpoint was altered"
        );
    }
    Ok(())
}

fn data_kind() -> impl Strategy<Value = DataKind> {
    prop_oneof![
        Just(DataKind::Bag),
        Just(DataKind::Queue),
        Just(DataKind::Stack),
        Just(DataKind::Set),
        Just(DataKind::Cell),
        Just(DataKind::PriorityQueue),
    ]
}

fn cont_kind() -> impl Strategy<Value = ContKind> {
    prop_oneof![
        Just(ContKind::Bag),
        Just(ContKind::Queue),
        Just(ContKind::Stack),
        Just(ContKind::Set),
    ]
}

fn case() -> impl Strategy<Value = (DataKind, ContKind, i64, Vec<Action>)> {
    (
        data_kind(),
        cont_kind(),
        prop_oneof![Just(5i64), Just(60i64)],
    )
        .prop_flat_map(|(kind, ck, values)| {
            (
                Just(kind),
                Just(ck),
                Just(values),
                proptest::collection::vec(action(values), 1..=160),
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Every data kind under every continuation kind, on stores large enough to be indexed,
    /// chunked and compacted, agrees with the naive model call by call.
    #[test]
    fn large_single_channel_stores_agree_with_the_model((kind, ck, values, actions) in case()) {
        run(kind, ck, values, &actions)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios the model above does not reach: a full Cell on a charged space, a Set's duplicate
// meeting a join that reads the channel twice, and what a Set's ignored duplicates cost.
// ---------------------------------------------------------------------------------------------

mod scenarios {
    use std::sync::Arc;

    use rhospace_matchers::ExactMatch;
    use rhospace_phlogiston::{CostTable, PhlogistonMeter};
    use rhospace_spaces::{ChargingSpace, ContKind, DataKind, ErrorKind, Space, SpaceConfig};

    type Es = Space<u8, u64, u64, u8, ExactMatch>;
    type Cs = ChargingSpace<u8, u64, u64, u8, ExactMatch>;

    const CELL: u8 = 1;
    const OTHER: u8 = 2;

    fn charged(config: SpaceConfig<u8>) -> (Cs, Arc<PhlogistonMeter>) {
        let meter = Arc::new(PhlogistonMeter::new(1_000_000));
        let s = ChargingSpace::new(
            Space::new(ExactMatch, config),
            meter.clone(),
            CostTable::default(),
        );
        (s, meter)
    }

    /// The calls both spaces of a pair get: a full Cell, with a continuation waiting on it
    /// (so a produce there takes the general path, not the store-only fast path) when
    /// `waiting`.
    fn fill(s: &Cs, waiting: bool) {
        s.produce(CELL, 10, false).unwrap();
        s.produce(OTHER, 20, false).unwrap();
        if waiting {
            assert!(s.consume([CELL], [11], 7, false, &[]).unwrap().is_none());
            assert!(s
                .consume([CELL, OTHER], [12, 20], 8, false, &[])
                .unwrap()
                .is_none());
        }
    }

    /// SPEC §4/§5: a produce on a full Cell is `CellFull` and leaves the space exactly as it
    /// was: contents, the phlogiston balance, the state root and the event log (the pending log
    /// is compared through a twin space that never saw the refused call). The refused datum
    /// would fire a waiting continuation were it stored; it still is refused.
    #[test]
    fn a_full_cell_refuses_a_produce_and_changes_nothing_not_even_the_balance() {
        for waiting in [false, true] {
            let config = || SpaceConfig::new().channel_kind(CELL, DataKind::Cell);
            let (s, meter) = charged(config());
            let (twin, _) = charged(config());
            fill(&s, waiting);
            fill(&twin, waiting);
            let balance = (meter.consumed(), meter.remaining());
            let data = s.space().data(&CELL);
            let conts = s.space().continuations(&[CELL]);
            let root = s.space().full_state_root();
            for persist in [false, true] {
                // 11 is what the waiting continuation wants; 10 equals the stored datum.
                for datum in [11, 10, 30] {
                    let e = s.produce(CELL, datum, persist).unwrap_err();
                    assert_eq!(e.kind(), &ErrorKind::CellFull);
                    assert_eq!(e.into_inner(), datum, "the datum is handed back");
                    let e = s
                        .produce_with_priority(CELL, datum, persist, 5)
                        .unwrap_err();
                    assert_eq!(e.kind(), &ErrorKind::CellFull);
                }
            }
            assert_eq!((meter.consumed(), meter.remaining()), balance);
            assert_eq!(s.space().data(&CELL), data);
            assert_eq!(s.space().continuations(&[CELL]), conts);
            assert_eq!(s.space().full_state_root(), root);
            let (a, b) = (
                s.space().create_checkpoint().unwrap(),
                twin.space().create_checkpoint().unwrap(),
            );
            assert_eq!(a.root, b.root);
            assert_eq!(a.log, b.log, "the refused calls left no event");
        }
    }

    /// SPEC §4: a Set ignores a datum equal to one it holds before any continuation is offered
    /// it, so a join reading the Set twice never fires with the stored datum and its duplicate
    /// (the channel never holds two equal data); a different datum completes it.
    #[test]
    fn a_set_ignores_a_duplicate_before_a_join_that_reads_it_twice_sees_it() {
        let s: Es = Space::new(ExactMatch, SpaceConfig::new().data_kind(DataKind::Set));
        assert!(s.produce(CELL, 5, false).unwrap().is_none());
        assert!(s
            .consume([CELL, CELL], [5, 5], 1, false, &[])
            .unwrap()
            .is_none());
        assert!(s
            .consume([CELL, CELL], [5, 6], 2, false, &[])
            .unwrap()
            .is_none());
        // The duplicate is ignored (persistent or not): nothing fires, nothing is stored.
        for persist in [false, true] {
            assert!(s.produce(CELL, 5, persist).unwrap().is_none());
        }
        let data: Vec<(u64, bool)> = s
            .data(&CELL)
            .into_iter()
            .map(|d| (d.value, d.persist))
            .collect();
        assert_eq!(data, vec![(5, false)]);
        assert_eq!(s.continuations(&[CELL, CELL]).len(), 2);
        // A datum the Set lacks is offered: the join [5, 6] fires with the stored 5.
        let comm = s.produce(CELL, 6, false).unwrap().expect("5 and 6 meet");
        assert_eq!(comm.continuation, 2);
        let got: Vec<u64> = comm.matches.iter().map(|m| m.datum).collect();
        assert_eq!(got, vec![5, 6]);
        assert!(s.data(&CELL).is_empty());
    }

    /// SPEC §8 with §4: a produce a Set ignores and a consume a continuation Set drops store
    /// nothing, so they pay their base price and no storage, and later calls refund nothing
    /// for them: a twin space that never made the duplicate calls ends exactly their prices
    /// behind.
    #[test]
    fn a_sets_ignored_duplicates_pay_no_storage() {
        let config = || {
            SpaceConfig::new()
                .data_kind(DataKind::Set)
                .cont_kind(ContKind::Set)
        };
        let (s, meter) = charged(config());
        let (twin, twin_meter) = charged(config());
        let t = CostTable::default();
        for x in [&s, &twin] {
            x.produce(CELL, 5, false).unwrap();
            assert!(x.consume([OTHER], [9], 3, false, &[]).unwrap().is_none());
        }
        let before = meter.consumed();
        assert!(s.produce(CELL, 5, false).unwrap().is_none());
        assert_eq!(meter.consumed() - before, t.produce_base);
        let before = meter.consumed();
        assert!(s.consume([OTHER], [9], 3, false, &[]).unwrap().is_none());
        // Nothing on the channel to examine: the base price and the one channel, no storage.
        assert_eq!(meter.consumed() - before, t.consume_base + t.join_channel);
        assert_eq!(s.space().continuations(&[OTHER]).len(), 1);
        assert_eq!(s.space().data(&CELL).len(), 1);
        // Taking the one datum and firing the one continuation refund one of each, as in the
        // twin.
        for x in [&s, &twin] {
            let took = x.consume([CELL], [5], 4, false, &[]).unwrap().expect("5");
            assert_eq!(took.matches[0].datum, 5);
            let fired = x.produce(OTHER, 9, false).unwrap().expect("fires");
            assert_eq!(fired.continuation, 3);
            assert!(x.space().is_empty());
        }
        assert_eq!(
            meter.consumed() - twin_meter.consumed(),
            t.produce_base + t.consume_base + t.join_channel
        );
    }
}
