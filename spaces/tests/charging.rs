//! The charging space (SPEC §8): charges before it mutates, refunds consumed storage, and on
//! `OutOfPhlogiston` leaves contents and balance exactly as they were.

use std::sync::Arc;

use proptest::prelude::*;
use rhospace_matchers::ExactMatch;
use rhospace_phlogiston::{CostTable, PhlogistonMeter};
use rhospace_spaces::{
    ChargingSpace, Encode, ErrorKind, RevertError, Space, SpaceConfig, StoredDatum,
    WaitingContinuation,
};

type S = ChargingSpace<u64, String, String, String, ExactMatch>;

fn space(limit: u64) -> (S, Arc<PhlogistonMeter>) {
    let meter = Arc::new(PhlogistonMeter::new(limit));
    let s = ChargingSpace::new(
        Space::new(ExactMatch, SpaceConfig::new()),
        meter.clone(),
        CostTable::default(),
    );
    (s, meter)
}

type Snapshot = (
    Vec<Vec<StoredDatum<String>>>,
    Vec<Vec<WaitingContinuation<String, String>>>,
    u64,
    u64,
);

fn snapshot(s: &S) -> Snapshot {
    let data = (0..4).map(|c| s.space().data(&c)).collect();
    let conts = [vec![0u64], vec![1], vec![2, 3], vec![3]]
        .iter()
        .map(|cs| s.space().continuations(cs))
        .collect();
    (data, conts, s.meter().consumed(), s.meter().remaining())
}

/// Leaves exactly `left` phlogiston in the meter.
fn drain_to(meter: &PhlogistonMeter, left: u64) {
    let take = meter.remaining().saturating_sub(left);
    meter.charge(take).expect("drain");
}

fn populated(limit: u64) -> (S, Arc<PhlogistonMeter>) {
    let (s, m) = space(limit);
    s.produce(0, "stored".into(), false).unwrap();
    s.consume([1u64], ["waits".to_string()], "k1".to_string(), false, &[])
        .unwrap();
    s.consume(
        [2u64, 3],
        ["a".to_string(), "b".to_string()],
        "join".to_string(),
        false,
        &[],
    )
    .unwrap();
    (s, m)
}

fn assert_oop<T: std::fmt::Debug>(kind: Option<&ErrorKind>, what: &str, _v: T) {
    assert!(
        matches!(kind, Some(ErrorKind::OutOfPhlogiston(_))),
        "{what}: expected OutOfPhlogiston, got {kind:?}"
    );
}

#[test]
fn out_of_phlogiston_at_every_operation_changes_nothing() {
    // Each case: an operation that would store, or fire, refused for lack of phlogiston.
    type Case = fn(&S) -> Option<ErrorKind>;
    let cases: Vec<(&str, Case)> = vec![
        ("produce that stores", |s| {
            s.produce(0, "x".into(), false)
                .err()
                .map(|e| e.kind().clone())
        }),
        ("produce that fires", |s| {
            s.produce(1, "waits".into(), false)
                .err()
                .map(|e| e.kind().clone())
        }),
        ("produce completing a join", |s| {
            s.produce(2, "a".into(), false)
                .err()
                .map(|e| e.kind().clone())
        }),
        ("consume that stores", |s| {
            s.consume([3u64], ["zzz".to_string()], "k".to_string(), false, &[])
                .err()
                .map(|e| e.kind().clone())
        }),
        ("consume that fires", |s| {
            s.consume([0u64], ["stored".to_string()], "k".to_string(), false, &[])
                .err()
                .map(|e| e.kind().clone())
        }),
        ("install", |s| {
            s.install([3u64], ["q".to_string()], "svc".to_string())
                .err()
                .map(|e| e.kind().clone())
        }),
    ];
    for (what, op) in cases {
        // Every operation here costs more than 10.
        for left in [0u64, 1, 10] {
            let (s, m) = populated(1_000_000);
            drain_to(&m, left);
            let before = snapshot(&s);
            let kind = op(&s);
            assert_oop(kind.as_ref(), what, ());
            assert_eq!(
                snapshot(&s),
                before,
                "{what} with {left} left changed the state"
            );
            assert_eq!(m.consumed() + m.remaining(), m.limit());
        }
    }
    // Soft checkpoints too.
    let (s, m) = populated(1_000_000);
    drain_to(&m, 0);
    let before = snapshot(&s);
    assert!(s.create_soft_checkpoint().is_err());
    assert_eq!(snapshot(&s), before);
}

#[test]
fn the_same_operations_succeed_with_enough_phlogiston() {
    let (s, m) = populated(1_000_000);
    assert!(s.produce(1, "waits".into(), false).unwrap().is_some());
    assert!(s
        .consume([0u64], ["stored".to_string()], "k".to_string(), false, &[])
        .unwrap()
        .is_some());
    assert_eq!(m.consumed() + m.remaining(), m.limit());
}

#[test]
fn a_comm_refunds_exactly_the_storage_it_frees() {
    let t = CostTable::default();
    let (s, m) = space(1_000_000);
    let datum = "payload".to_string();
    let dlen = 1 + datum.len();
    s.produce(5, datum.clone(), false).unwrap();
    assert_eq!(m.consumed(), t.produce_base + t.datum_storage(8, dlen));
    let before = m.consumed();
    let comm = s
        .consume([5u64], [datum.clone()], "k".to_string(), false, &[])
        .unwrap()
        .expect("fires");
    assert_eq!(comm.matches[0].datum, datum);
    // Consume price (nothing stored) + matching + COMM, minus the datum's storage.
    let expected = before + t.consume_base + t.join_channel + t.matching(1) + t.comm(1)
        - t.datum_storage(8, dlen);
    assert_eq!(m.consumed(), expected);
    // Net over both calls: no storage remains charged.
    assert_eq!(
        m.consumed(),
        t.produce_base + t.consume_base + t.join_channel + t.matching(1) + t.comm(1)
    );
}

#[test]
fn a_stored_continuation_is_refunded_when_it_fires() {
    let t = CostTable::default();
    let (s, m) = space(1_000_000);
    let k = "continuation".to_string();
    let pat = "p".to_string();
    s.consume([9u64], [pat.clone()], k.clone(), false, &[])
        .unwrap();
    // Channels and patterns are charged by the sum of their encodings.
    let storage = t.continuation_storage(8, 1 + pat.len(), 1 + k.len());
    assert_eq!(m.consumed(), t.consume_base + t.join_channel + storage);
    let before = m.consumed();
    s.produce(9, pat.clone(), false).unwrap().expect("fires");
    assert_eq!(
        m.consumed(),
        before + t.produce_base + t.matching(1) + t.comm(1) - storage
    );
}

#[test]
fn persistent_and_peeked_data_are_not_refunded() {
    let t = CostTable::default();
    let (s, m) = space(1_000_000);
    s.produce(1, "p".into(), true).unwrap();
    s.produce(2, "q".into(), false).unwrap();
    let before = m.consumed();
    s.consume([1u64], ["p".to_string()], "k".to_string(), false, &[])
        .unwrap()
        .unwrap();
    s.consume([2u64], ["q".to_string()], "k".to_string(), false, &[0])
        .unwrap()
        .unwrap();
    let price = t.consume_base + t.join_channel + t.matching(1) + t.comm(1);
    assert_eq!(m.consumed(), before + 2 * price);
    assert_eq!(s.space().data(&1).len(), 1);
    assert_eq!(s.space().data(&2).len(), 1);
}

#[test]
fn cost_grows_with_encoded_datum_size() {
    let t = CostTable::default();
    let (small, ms) = space(u64::MAX / 2);
    let (large, ml) = space(u64::MAX / 2);
    small.produce(0, "x".repeat(10), false).unwrap();
    large.produce(0, "x".repeat(1_000), false).unwrap();
    // 10 bytes + 1 length byte vs 1,000 bytes + 2 length bytes.
    assert_eq!(ml.consumed() - ms.consumed(), t.datum_byte * (1_002 - 11));
}

#[test]
fn matching_work_is_charged_per_candidate_examined() {
    let t = CostTable::default();
    let (s, m) = space(1_000_000);
    // Five waiting continuations, only the last accepts "hit".
    for i in 0..5 {
        let pat = if i == 4 {
            "hit".to_string()
        } else {
            format!("miss{i}")
        };
        s.consume([0u64], [pat], format!("k{i}"), false, &[])
            .unwrap();
    }
    let before = m.consumed();
    let comm = s.produce(0, "hit".into(), false).unwrap().expect("fires");
    assert_eq!(comm.continuation, "k4");
    let k_storage = t.continuation_storage(8, 4, 3);
    assert_eq!(
        m.consumed(),
        before + t.produce_base + t.matching(5) + t.comm(1) - k_storage
    );
}

#[test]
fn balance_holds_under_threads() {
    let (s, m) = space(20_000);
    let s = Arc::new(s);
    let handles: Vec<_> = (0..4u64)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                let mut refused = 0u32;
                for i in 0..500u64 {
                    let ch = i % 3 + t * 10;
                    let r = if i % 2 == 0 {
                        s.produce(ch, format!("{}", i % 5), false)
                            .err()
                            .map(|e| e.kind().clone())
                    } else {
                        s.consume(
                            [ch],
                            [format!("{}", (i + 1) % 5)],
                            "k".to_string(),
                            false,
                            &[],
                        )
                        .err()
                        .map(|e| e.kind().clone())
                    };
                    if let Some(kind) = r {
                        assert!(matches!(kind, ErrorKind::OutOfPhlogiston(_)), "{kind:?}");
                        refused += 1;
                    }
                }
                refused
            })
        })
        .collect();
    let refused: u32 = handles.into_iter().map(|h| h.join().expect("thread")).sum();
    // SPEC §8's sum holds by construction (`consumed` is `limit - remaining`, one counter);
    // what this test checks is that concurrent refusals are all `OutOfPhlogiston` once the
    // meter runs dry. The exact balance under threads is checked by
    // `storage_is_paid_exactly_for_what_stays_stored_under_threads`.
    assert_eq!(m.consumed() + m.remaining(), m.limit());
    // The limit is small enough that the meter runs dry.
    assert!(refused > 0);
}

// ---------------------------------------------------------------------------------------------
// Soft checkpoints settle the storage refunds of the lineage a revert leaves (see
// `ChargingSpace`): a revert that brings back consumed items charges their refunds back; a
// revert forward refunds what the later checkpoint had freed.

/// The reviewer's reproduction: "revert + consume" of a big datum must not gain phlogiston.
#[test]
fn storage_refund_repeats_across_soft_revert() {
    let meter = Arc::new(PhlogistonMeter::new(10_000_000));
    let table = CostTable::default();
    let s: ChargingSpace<u32, String, String, u32, ExactMatch> = ChargingSpace::new(
        Space::new(ExactMatch, SpaceConfig::new()),
        meter.clone(),
        table,
    );
    for i in 0..200u32 {
        s.consume([1000 + i], ["x".repeat(100)], i, false, &[])
            .unwrap();
    }
    let big = "d".repeat(5_000);
    s.produce(1, big.clone(), false).unwrap();
    let after_produce = meter.consumed();
    let storage = table.datum_storage(4, big.len() + 2);
    let cp = s.create_soft_checkpoint().unwrap();
    let after_cp = meter.consumed();
    for _ in 0..5 {
        assert!(s
            .consume([1u32], [big.clone()], 0, false, &[])
            .unwrap()
            .is_some());
        s.revert_to_soft_checkpoint(&cp).unwrap();
    }
    assert!(
        meter.consumed() + storage >= after_produce,
        "consumed went from {after_produce} to {} (one storage charge = {storage})",
        meter.consumed()
    );
    // Exactly: each round pays the consume's work and the revert's price, nothing more or
    // less; the refund and its charge-back cancel.
    let round = table.consume_base
        + table.join_channel
        + table.matching(1)
        + table.comm(1)
        + table.soft_checkpoint();
    assert_eq!(meter.consumed(), after_cp + 5 * round);
    assert_eq!(s.space().data(&1).len(), 1);
}

type Sk = ChargingSpace<u64, String, String, u64, ExactMatch>;

fn keyed_space(limit: u64) -> (Sk, Arc<PhlogistonMeter>) {
    let meter = Arc::new(PhlogistonMeter::new(limit));
    let s = ChargingSpace::new(
        Space::new(ExactMatch, SpaceConfig::new()),
        meter.clone(),
        CostTable::default(),
    );
    (s, meter)
}

/// The storage price of `datum` stored on a `u64` channel (8 bytes).
fn datum_storage(datum: &str) -> u64 {
    CostTable::default().datum_storage(8, datum.encoded_len())
}

/// The price of a one-channel consume that fires on its first candidate.
fn fired_consume() -> u64 {
    let t = CostTable::default();
    t.consume_base + t.join_channel + t.matching(1) + t.comm(1)
}

/// Runs `f` and returns how much it moved the meter (charges positive, refunds negative).
fn delta(m: &PhlogistonMeter, f: impl FnOnce()) -> i128 {
    let before = m.consumed();
    f();
    i128::from(m.consumed()) - i128::from(before)
}

#[test]
fn nested_reverts_charge_back_each_lineages_refunds() {
    let t = CostTable::default();
    let price = i128::from(t.soft_checkpoint());
    let (s, m) = keyed_space(10_000_000);
    let (x, y) = ("x".repeat(300), "y".repeat(1_000));
    let (r, q) = (datum_storage(&x), datum_storage(&y));
    s.produce(1, x.clone(), false).unwrap();
    s.produce(2, y.clone(), false).unwrap();
    let cp2 = s.create_soft_checkpoint().unwrap();
    let take = |c: u64, d: &String| {
        assert!(s
            .consume([c], [d.clone()], 0, false, &[])
            .unwrap()
            .is_some());
    };
    assert_eq!(
        delta(&m, || take(1, &x)),
        i128::from(fired_consume()) - i128::from(r)
    );
    let cp1 = s.create_soft_checkpoint().unwrap();
    assert_eq!(
        delta(&m, || take(2, &y)),
        i128::from(fired_consume()) - i128::from(q)
    );
    // Back to cp1: Y is stored again, its refund charged back.
    let d = delta(&m, || s.revert_to_soft_checkpoint(&cp1).unwrap());
    assert_eq!(d, price + i128::from(q));
    assert_eq!((s.space().data(&1).len(), s.space().data(&2).len()), (0, 1));
    // Back to cp2: X too.
    let d = delta(&m, || s.revert_to_soft_checkpoint(&cp2).unwrap());
    assert_eq!(d, price + i128::from(r));
    assert_eq!((s.space().data(&1).len(), s.space().data(&2).len()), (1, 1));
    // Reverting to where one stands settles nothing.
    let d = delta(&m, || s.revert_to_soft_checkpoint(&cp2).unwrap());
    assert_eq!(d, price);
    assert_eq!(m.consumed() + m.remaining(), m.limit());
}

#[test]
fn a_revert_forward_refunds_what_the_later_checkpoint_had_freed() {
    let t = CostTable::default();
    let price = i128::from(t.soft_checkpoint());
    let (s, m) = keyed_space(10_000_000);
    let x = "x".repeat(2_000);
    let r = i128::from(datum_storage(&x));
    s.produce(1, x.clone(), false).unwrap();
    let early = s.create_soft_checkpoint().unwrap();
    s.consume([1u64], [x.clone()], 0, false, &[])
        .unwrap()
        .unwrap();
    let late = s.create_soft_checkpoint().unwrap();
    let d = delta(&m, || s.revert_to_soft_checkpoint(&early).unwrap());
    assert_eq!(d, price + r);
    assert_eq!(s.space().data(&1).len(), 1);
    // Forward again: X consumed, its storage refunded once more (it was charged back).
    let d = delta(&m, || s.revert_to_soft_checkpoint(&late).unwrap());
    assert_eq!(d, price - r);
    assert!(s.space().data(&1).is_empty());
    // Back and forth any number of times: each pair nets two prices.
    for _ in 0..3 {
        let d = delta(&m, || {
            s.revert_to_soft_checkpoint(&early).unwrap();
            s.revert_to_soft_checkpoint(&late).unwrap();
        });
        assert_eq!(d, 2 * price);
    }
}

#[test]
fn a_charge_back_that_would_overdraw_refuses_the_revert_and_changes_nothing() {
    let t = CostTable::default();
    let (s, m) = keyed_space(1_000_000);
    let x = "x".repeat(5_000);
    let r = datum_storage(&x);
    s.produce(1, x.clone(), false).unwrap();
    s.produce(2, "small".into(), false).unwrap();
    let cp = s.create_soft_checkpoint().unwrap();
    s.consume([1u64], [x.clone()], 0, false, &[])
        .unwrap()
        .unwrap();
    s.consume([5u64], ["waits".to_string()], 7, false, &[])
        .unwrap();
    // One short of the price and the charge-back together: the price alone would pass.
    drain_to(&m, t.soft_checkpoint() + r - 1);
    let root = s.space().full_state_root();
    let (consumed, remaining) = (m.consumed(), m.remaining());
    let RevertError::OutOfPhlogiston(err) = s.revert_to_soft_checkpoint(&cp).unwrap_err() else {
        panic!("refused for want of phlogiston");
    };
    assert_eq!(err.requested, t.soft_checkpoint() + r);
    assert_eq!(s.space().full_state_root(), root);
    assert!(s.space().data(&1).is_empty());
    assert_eq!(s.space().continuations(&[5]).len(), 1);
    assert_eq!((m.consumed(), m.remaining()), (consumed, remaining));
    // The ledger did not move either: with one more unit the same revert charges exactly the
    // price and the charge-back.
    m.refund(1).unwrap();
    let d = delta(&m, || s.revert_to_soft_checkpoint(&cp).unwrap());
    assert_eq!(d, i128::from(t.soft_checkpoint() + r));
    assert_eq!(m.remaining(), 0);
    assert_eq!(s.space().data(&1).len(), 1);
    assert!(s.space().continuations(&[5]).is_empty());
}

#[test]
fn storage_dropped_by_a_revert_stays_spent_and_work_is_not_refunded() {
    let t = CostTable::default();
    let (s, m) = keyed_space(10_000_000);
    let cp = s.create_soft_checkpoint().unwrap();
    let before = m.consumed();
    let x = "x".repeat(700);
    s.produce(1, x.clone(), false).unwrap();
    s.consume([2u64], ["p".to_string()], 3, false, &[]).unwrap();
    s.revert_to_soft_checkpoint(&cp).unwrap();
    assert!(s.space().is_empty());
    let k_storage = t.continuation_storage(8, 2, 8);
    assert_eq!(
        m.consumed(),
        before
            + t.produce_base
            + datum_storage(&x)
            + t.consume_base
            + t.join_channel
            + k_storage
            + t.soft_checkpoint()
    );
    // A produced-and-consumed item is paid the same way: the refund comes back with the
    // revert, so its storage stays spent too.
    let before = m.consumed();
    s.produce(1, x.clone(), false).unwrap();
    s.consume([1u64], [x.clone()], 0, false, &[])
        .unwrap()
        .unwrap();
    s.revert_to_soft_checkpoint(&cp).unwrap();
    assert_eq!(
        m.consumed(),
        before + t.produce_base + datum_storage(&x) + fired_consume() + t.soft_checkpoint()
    );
}

#[test]
fn a_plain_revert_of_the_wrapped_space_settles_nothing_and_the_next_settled_revert_does() {
    let t = CostTable::default();
    let (s, m) = keyed_space(10_000_000);
    // Other spending on the meter, so that a refund is never capped by what it has charged.
    m.charge(1_000_000).unwrap();
    let x = "x".repeat(900);
    let r = datum_storage(&x);
    s.produce(1, x.clone(), false).unwrap();
    let cp = s.create_soft_checkpoint().unwrap();
    let take = || {
        s.consume([1u64], [x.clone()], 0, false, &[])
            .unwrap()
            .unwrap();
    };
    take();
    // Unmetered: the space comes back, the refund does not (see the type's limits) ...
    let d = delta(&m, || s.space().revert_to_soft_checkpoint(&cp).unwrap());
    assert_eq!(d, 0);
    take();
    // ... but the ledger kept it: the settled revert charges back both refunds.
    let d = delta(&m, || s.revert_to_soft_checkpoint(&cp).unwrap());
    assert_eq!(d, i128::from(t.soft_checkpoint() + 2 * r));
}

#[test]
fn a_checkpoint_of_another_space_settles_nothing() {
    let t = CostTable::default();
    let (a, ma) = keyed_space(10_000_000);
    let (b, _mb) = keyed_space(10_000_000);
    let x = "x".repeat(900);
    b.produce(1, x.clone(), false).unwrap();
    b.consume([1u64], [x.clone()], 0, false, &[])
        .unwrap()
        .unwrap();
    // B's checkpoint carries B's refund; A's meter never made it.
    let foreign = b.create_soft_checkpoint().unwrap();
    a.produce(2, x.clone(), false).unwrap();
    let own = a.create_soft_checkpoint().unwrap();
    a.consume([2u64], [x.clone()], 0, false, &[])
        .unwrap()
        .unwrap();
    let d = delta(&ma, || a.revert_to_soft_checkpoint(&foreign).unwrap());
    assert_eq!(d, i128::from(t.soft_checkpoint()));
    // A's ledger went on: back to its own checkpoint, A's refund is charged back.
    let d = delta(&ma, || a.revert_to_soft_checkpoint(&own).unwrap());
    assert_eq!(d, i128::from(t.soft_checkpoint() + datum_storage(&x)));
    assert_eq!(a.space().data(&2).len(), 1);
}

/// A small deterministic generator (xorshift64*), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// Threads consume, checkpoint and revert at once. Every checkpoint they take must record the
/// refunds that its own state holds: with consumes only (no produce), a state's net refunds
/// since the start are exactly the storage of the data it lacks. The test keeps the books of
/// every price and storage charge (`paid`), so `paid - (consumed - consumed0)` is the net
/// refunded so far; it checks that against the final state, and then against the state of
/// every checkpoint taken, reverting to each in turn.
#[test]
fn refunds_and_checkpoints_agree_under_threads() {
    const CHANNELS: u64 = 12;
    const THREADS: u64 = 4;
    const OPS: u64 = 1_000;
    let t = CostTable::default();
    let (s, m) = keyed_space(u64::MAX / 4);
    let datum = |c: u64| "d".repeat(200 + 150 * c as usize);
    for c in 0..CHANNELS {
        s.produce(c, datum(c), false).unwrap();
    }
    let cp0 = s.create_soft_checkpoint().unwrap();
    let consumed0 = m.consumed();
    let s = Arc::new(s);
    let cps = Arc::new(std::sync::Mutex::new(vec![cp0]));
    let handles: Vec<_> = (0..THREADS)
        .map(|id| {
            let (s, cps) = (s.clone(), cps.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (id + 1).wrapping_mul(0x1234_5678_9abc));
                let mut paid = 0u64;
                for i in 0..OPS {
                    match rng.below(10) {
                        0..=5 => {
                            let c = rng.below(CHANNELS);
                            // A unique continuation: none is dropped as a duplicate.
                            let k = id * 1_000_000 + i;
                            let fired = s.consume([c], [datum(c)], k, false, &[]).unwrap();
                            paid += t.consume_base + t.join_channel;
                            paid += match fired {
                                Some(_) => t.matching(1) + t.comm(1),
                                None => t.continuation_storage(8, datum(c).encoded_len(), 8),
                            };
                        }
                        6..=7 => {
                            let cp = s.create_soft_checkpoint().unwrap();
                            paid += t.soft_checkpoint();
                            cps.lock().unwrap().push(cp);
                        }
                        _ => {
                            let cp = {
                                let cps = cps.lock().unwrap();
                                cps[rng.below(cps.len() as u64) as usize].clone()
                            };
                            s.revert_to_soft_checkpoint(&cp).unwrap();
                            paid += t.soft_checkpoint();
                        }
                    }
                }
                paid
            })
        })
        .collect();
    let mut paid: u64 = handles.into_iter().map(|h| h.join().expect("thread")).sum();
    assert_eq!(m.consumed() + m.remaining(), m.limit());
    // The storage of the data a state lacks: what its lineage refunded.
    let lacking = |s: &Sk| -> u64 {
        (0..CHANNELS)
            .filter(|c| s.space().data(c).is_empty())
            .map(|c| datum_storage(&datum(c)))
            .sum()
    };
    let refunded = |paid: u64| paid - (m.consumed() - consumed0);
    assert_eq!(refunded(paid), lacking(&s), "the final state");
    assert!(
        m.consumed() >= consumed0,
        "the start's storage is still paid for"
    );
    let cps = std::mem::take(&mut *cps.lock().unwrap());
    assert!(cps.len() > 10);
    for (i, cp) in cps.iter().enumerate() {
        s.revert_to_soft_checkpoint(cp).unwrap();
        paid += t.soft_checkpoint();
        assert_eq!(refunded(paid), lacking(&s), "checkpoint {i}");
    }
    // Back at the start, every refund made since has been charged back.
    s.revert_to_soft_checkpoint(&cps[0]).unwrap();
    paid += t.soft_checkpoint();
    assert_eq!(refunded(paid), 0);
    assert_eq!(m.consumed(), consumed0 + paid);
}

/// A model-run action: on channel `c` (of three), or on checkpoint `i` (modulo how many).
#[derive(Clone, Debug)]
enum Action {
    Produce(u64),
    Consume(u64),
    Checkpoint,
    Revert(usize),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => (0..3u64).prop_map(Action::Produce),
        3 => (0..3u64).prop_map(Action::Consume),
        1 => Just(Action::Checkpoint),
        2 => (0..64usize).prop_map(Action::Revert),
    ]
}

/// The naive model: per channel, how many copies of its datum are stored and the storage
/// prices of its waiting continuations (oldest first); and the storage refunded along the
/// lineage, which a checkpoint copies and a revert settles.
#[derive(Clone, Debug, Default, PartialEq)]
struct Model {
    data: [usize; 3],
    conts: [Vec<u64>; 3],
    refunded: u64,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every charge, refund and settlement of a random run equals the model's, to the unit.
    #[test]
    fn charges_and_settlements_match_a_naive_model(actions in proptest::collection::vec(action(), 1..48)) {
        let t = CostTable::default();
        let (s, m) = keyed_space(100_000_000);
        // Other spending on the meter, so that no refund is capped by what it has charged.
        m.charge(10_000_000).unwrap();
        let datum = |c: u64| "v".repeat(50 + 400 * c as usize);
        let mut model = Model::default();
        let mut cps = vec![(s.create_soft_checkpoint().unwrap(), model.clone())];
        let mut consumed = m.consumed();
        for (n, a) in actions.into_iter().enumerate() {
            match a {
                Action::Produce(c) => {
                    let i = c as usize;
                    let fired = s.produce(c, datum(c), false).unwrap().is_some();
                    prop_assert_eq!(fired, !model.conts[i].is_empty());
                    consumed += t.produce_base;
                    if fired {
                        let k = model.conts[i].remove(0);
                        consumed = consumed + t.matching(1) + t.comm(1) - k;
                        model.refunded += k;
                    } else {
                        model.data[i] += 1;
                        consumed += datum_storage(&datum(c));
                    }
                }
                Action::Consume(c) => {
                    let i = c as usize;
                    let k = n as u64;
                    let fired = s.consume([c], [datum(c)], k, false, &[]).unwrap().is_some();
                    prop_assert_eq!(fired, model.data[i] > 0);
                    consumed += t.consume_base + t.join_channel;
                    if fired {
                        model.data[i] -= 1;
                        let r = datum_storage(&datum(c));
                        consumed = consumed + t.matching(1) + t.comm(1) - r;
                        model.refunded += r;
                    } else {
                        let storage = t.continuation_storage(8, datum(c).encoded_len(), 8);
                        model.conts[i].push(storage);
                        consumed += storage;
                    }
                }
                Action::Checkpoint => {
                    cps.push((s.create_soft_checkpoint().unwrap(), model.clone()));
                    consumed += t.soft_checkpoint();
                }
                Action::Revert(i) => {
                    let (cp, then) = &cps[i % cps.len()];
                    s.revert_to_soft_checkpoint(cp).unwrap();
                    consumed = consumed + t.soft_checkpoint() + model.refunded - then.refunded;
                    model = then.clone();
                }
            }
            prop_assert_eq!(m.consumed(), consumed, "after action {}", n);
            for c in 0..3u64 {
                prop_assert_eq!(s.space().data(&c).len(), model.data[c as usize]);
                prop_assert_eq!(s.space().continuations(&[c]).len(), model.conts[c as usize].len());
            }
        }
    }
}

/// One thread's calls for [`storage_is_paid_exactly_for_what_stays_stored_under_threads`]:
/// what it paid in operation prices (base, join arity, COMMs; no storage), the channel lists
/// it consumed on, and counts of the COMM shapes it saw (so the test knows it exercised them).
#[derive(Default)]
struct Paid {
    prices: u64,
    lists: Vec<Vec<u64>>,
    refused: u64,
    produce_fired_join: u64,
    persistent_matched: u64,
    peeked: u64,
}

fn charged_worker(s: &Sk, t: &CostTable, id: u64, ops: u64) -> Paid {
    const CHANNELS: u64 = 6;
    let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ (id + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut paid = Paid::default();
    let value = |rng: &mut Rng| rng.below(3).to_string();
    let out_of_phlogiston = |kind: &ErrorKind| matches!(kind, ErrorKind::OutOfPhlogiston(_));
    for i in 0..ops {
        match rng.below(20) {
            0..=8 => {
                let persist = rng.below(6) == 0;
                match s.produce(rng.below(CHANNELS), value(&mut rng), persist) {
                    Ok(fired) => {
                        paid.prices += t.produce_base;
                        if let Some(comm) = fired {
                            paid.prices += t.comm(comm.matches.len());
                            if comm.matches.len() > 1 {
                                paid.produce_fired_join += 1;
                            }
                            if comm.matches.iter().any(|m| m.persistent) {
                                paid.persistent_matched += 1;
                            }
                            if !comm.peeks.is_empty() {
                                paid.peeked += 1;
                            }
                        }
                    }
                    Err(e) => {
                        assert!(out_of_phlogiston(e.kind()), "{:?}", e.kind());
                        paid.refused += 1;
                    }
                }
            }
            9..=18 => {
                // One to three distinct channels, in any order (joins across shards).
                let arity = 1 + rng.below(3) as usize;
                let mut channels: Vec<u64> = Vec::new();
                while channels.len() < arity {
                    let c = rng.below(CHANNELS);
                    if !channels.contains(&c) {
                        channels.push(c);
                    }
                }
                let patterns: Vec<String> = channels.iter().map(|_| value(&mut rng)).collect();
                let peeks: Vec<usize> = (0..arity).filter(|_| rng.below(5) == 0).collect();
                let persist = rng.below(8) == 0;
                let k = id << 32 | i;
                match s.consume(channels.clone(), patterns, k, persist, &peeks) {
                    Ok(fired) => {
                        paid.prices += t.consume_base + t.join_channel * arity as u64;
                        if let Some(comm) = fired {
                            paid.prices += t.comm(comm.matches.len());
                            if comm.matches.iter().any(|m| m.persistent) {
                                paid.persistent_matched += 1;
                            }
                            if !comm.peeks.is_empty() {
                                paid.peeked += 1;
                            }
                        }
                        paid.lists.push(channels);
                    }
                    Err(e) => {
                        assert!(out_of_phlogiston(e.kind()), "{:?}", e.kind());
                        paid.refused += 1;
                    }
                }
            }
            _ => match s.create_soft_checkpoint() {
                Ok(_) => paid.prices += t.soft_checkpoint(),
                Err(_) => paid.refused += 1,
            },
        }
    }
    paid
}

/// SPEC §8 under threads, to the unit: threads produce (some persistent) and consume (joins
/// of up to three channels across shards, some persistent, some peeking) on a few shared
/// channels with a small value domain, so produces fire stored joins, consumes take and peek
/// at persistent data, and calls race for the same items. Matching is priced at 0, so every
/// call's price follows from what it returned; storage is charged when an item is stored and
/// refunded exactly once when a COMM frees it (never for a persistent or peeked datum, nor a
/// persistent continuation). So at the end the meter must hold exactly the prices of the
/// admitted calls plus the storage of what the views still show, and no more: a refund made
/// twice, missed, or made for an item that stays breaks the equality. Run once with room for
/// everything and once with a meter that runs dry mid-run (refused calls change nothing).
#[test]
fn storage_is_paid_exactly_for_what_stays_stored_under_threads() {
    const THREADS: u64 = 4;
    const OPS: u64 = 3_000;
    let t = CostTable {
        match_candidate: 0,
        ..CostTable::default()
    };
    for limit in [u64::MAX / 4, 150_000] {
        let meter = Arc::new(PhlogistonMeter::new(limit));
        let s: Sk =
            ChargingSpace::new(Space::new(ExactMatch, SpaceConfig::new()), meter.clone(), t);
        let runs: Vec<Paid> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..THREADS)
                .map(|id| {
                    let (s, t) = (&s, &t);
                    scope.spawn(move || charged_worker(s, t, id, OPS))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("worker"))
                .collect()
        });
        let prices: u64 = runs.iter().map(|p| p.prices).sum();
        let mut lists: Vec<Vec<u64>> = runs.iter().flat_map(|p| p.lists.clone()).collect();
        lists.sort();
        lists.dedup();
        let mut storage = 0u64;
        for c in 0..6u64 {
            for d in s.space().data(&c) {
                storage += t.datum_storage(c.encoded_len(), d.value.encoded_len());
            }
        }
        for list in &lists {
            let channels_len: usize = list.iter().map(Encode::encoded_len).sum();
            for w in s.space().continuations(list) {
                let patterns_len: usize = w.patterns.iter().map(Encode::encoded_len).sum();
                storage += t.continuation_storage(
                    channels_len,
                    patterns_len,
                    w.continuation.encoded_len(),
                );
            }
        }
        assert_eq!(
            meter.consumed(),
            prices + storage,
            "limit {limit}: prices {prices}, storage still held {storage}"
        );
        let sum = |f: fn(&Paid) -> u64| runs.iter().map(f).sum::<u64>();
        assert!(
            sum(|p| p.produce_fired_join) > 0,
            "a produce completed a join"
        );
        assert!(
            sum(|p| p.persistent_matched) > 0,
            "a COMM used a persistent datum"
        );
        assert!(sum(|p| p.peeked) > 0, "a COMM peeked");
        if limit < u64::MAX / 4 {
            assert!(sum(|p| p.refused) > 0, "the meter ran dry");
        } else {
            assert_eq!(sum(|p| p.refused), 0);
        }
    }
}

/// The documented limit: an item this meter never paid to store (here, stored before the
/// space was wrapped) is refunded when a COMM frees it, out of whatever else the meter has
/// charged, up to what it has charged and not refunded: here the checkpoint's price and the
/// COMM's own, all there is to give back.
#[test]
fn an_item_the_meter_never_paid_for_is_refunded_out_of_other_charges() {
    let t = CostTable::default();
    let inner = Space::new(ExactMatch, SpaceConfig::new());
    let x = "x".repeat(500);
    inner.produce(1u64, x.clone(), false).unwrap();
    let meter = Arc::new(PhlogistonMeter::new(1_000_000));
    let s: Sk = ChargingSpace::new(inner, meter.clone(), t);
    assert!(datum_storage(&x) > fired_consume());
    let cp = s.create_soft_checkpoint().unwrap();
    s.consume([1u64], [x.clone()], 0, false, &[])
        .unwrap()
        .unwrap();
    // Paid the checkpoint and the consume; the refund, meant for storage this meter never
    // charged, took back both prices.
    assert_eq!(meter.consumed(), 0);
    // The ledger counts only what was refunded: the revert charges back exactly that.
    s.revert_to_soft_checkpoint(&cp).unwrap();
    assert_eq!(meter.consumed(), 2 * t.soft_checkpoint() + fired_consume());
    assert_eq!(s.space().data(&1).len(), 1);
}
