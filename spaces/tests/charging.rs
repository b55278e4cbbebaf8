//! The charging space (SPEC §8): charges before it mutates, refunds consumed storage, and on
//! `OutOfPhlogiston` leaves contents and balance exactly as they were.

use std::sync::Arc;

use rhospace_matchers::ExactMatch;
use rhospace_phlogiston::{CostTable, PhlogistonMeter};
use rhospace_spaces::{
    ChargingSpace, ErrorKind, Space, SpaceConfig, StoredDatum, WaitingContinuation,
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
    assert_eq!(m.consumed() + m.remaining(), m.limit());
    // The limit is small enough that the meter runs dry.
    assert!(refused > 0);
}
