//! A charged space stops a search once its work alone costs more than the meter holds (SPEC §8:
//! an operation the meter cannot pay fails with `OutOfPhlogiston` and changes nothing). A join
//! search can be exponential in the positions that share a channel; a produce walks every
//! waiting continuation of its channel. With the cap, a caller's balance bounds both.

mod common;

use std::sync::Arc;

use common::{Pred, PredMatch};
use rhospace_phlogiston::{CostTable, OutOfPhlogiston, PhlogistonMeter};
use rhospace_spaces::{
    ChargingSpace, Encode, ErrorKind, HistoryStore, MemoryHistory, Space, SpaceConfig, StoredDatum,
};

type Ch = &'static str;
type S = ChargingSpace<Ch, Pred, i64, u32, PredMatch>;
/// A space with channels that decode (for `reset`).
type Loadable = Space<u8, Pred, i64, u32, PredMatch>;

fn charged(limit: u64) -> (S, Arc<PhlogistonMeter>) {
    let meter = Arc::new(PhlogistonMeter::new(limit));
    let s = ChargingSpace::new(
        Space::new(PredMatch, SpaceConfig::new()),
        meter.clone(),
        CostTable::default(),
    );
    (s, meter)
}

fn oop(kind: &ErrorKind) -> OutOfPhlogiston {
    match kind {
        ErrorKind::OutOfPhlogiston(e) => *e,
        other => panic!("expected OutOfPhlogiston, got {other:?}"),
    }
}

/// Leaves exactly `left` phlogiston in the meter.
fn drain_to(meter: &PhlogistonMeter, left: u64) {
    meter.charge(meter.remaining() - left).expect("drain");
}

/// The patterns of the join below: 30 `Any`, then 3 `Odd`.
fn starved_patterns() -> Vec<Pred> {
    let mut patterns = vec![Pred::Any; 30];
    patterns.extend([Pred::Odd; 3]);
    patterns
}

/// 30 `Any` positions and 3 `Odd` on one channel holding 1,001 data of which 3 are odd, the first
/// two and the last. An assignment exists, but the search tries the `Any` positions on the odd
/// data first, and only its matching checks (see the `join` module) bring it back from there:
/// uncharged, it fires after 73,092 matcher calls (before those checks it ran for minutes).
/// Charged with a balance for 20,000 calls, it stops at the first matcher call the meter cannot
/// pay: `requested` is the consume's fixed price plus exactly one call more than the balance
/// covers, and nothing changes.
#[test]
fn a_long_join_search_stops_at_the_balance() {
    let t = CostTable::default();
    let (s, meter) = charged(u64::MAX);
    for i in 0..1_000 {
        let d = if i < 2 { 2 * i + 1 } else { 2 * i };
        s.produce("a", d, false).unwrap();
    }
    s.produce("a", 2_001, false).unwrap();
    let patterns = starved_patterns();
    let n = patterns.len();
    let fixed = t.consume_base + t.join_channel * n as u64;
    // Enough for the consume's price and 20,000 matcher calls.
    let calls = 20_000;
    drain_to(&meter, fixed + t.matching(calls));
    let before = (meter.balance(), s.space().data(&"a"));
    let err = s
        .consume(vec!["a"; n], patterns, 7, false, &[])
        .unwrap_err();
    let e = oop(err.kind());
    assert_eq!(e.remaining, fixed + t.matching(calls));
    assert_eq!(e.requested, fixed + t.matching(calls + 1));
    assert_eq!(err.into_inner(), 7);
    assert_eq!((meter.balance(), s.space().data(&"a")), before);
    assert!(s.space().continuations(&["a"; 33]).is_empty());
    // Uncharged, the same search runs on to its assignment: the balance, not the search's
    // end, stopped it above.
    let mut examined = 0;
    let patterns = starved_patterns();
    let comm = s
        .space()
        .consume_admitted(vec!["a"; n], patterns, 7, false, &[], |a| {
            examined = a.examined;
            Ok(())
        })
        .unwrap();
    assert!(comm.is_some());
    assert_eq!(examined, 73_092);
}

/// A produce offers its datum to every waiting continuation of its channel, a matcher call
/// each when none accepts it (their patterns have no exact key, so the walk cannot go by
/// key). Charged, the walk stops at the first continuation the balance cannot pay for; with
/// the full price in the meter, the same produce is admitted.
#[test]
fn a_produce_stops_offering_its_datum_at_the_balance() {
    let t = CostTable::default();
    let (s, meter) = charged(u64::MAX);
    for k in 0..1_000 {
        s.consume(["x"], [Pred::Gt(100)], k, false, &[]).unwrap();
    }
    drain_to(&meter, t.produce_base + t.matching(100));
    let before = meter.balance();
    let err = s.produce("x", 5, false).unwrap_err();
    let e = oop(err.kind());
    assert_eq!(e.requested, t.produce_base + t.matching(101));
    assert_eq!(err.into_inner(), 5);
    assert_eq!(meter.balance(), before);
    assert!(s.space().data(&"x").is_empty());
    assert_eq!(s.space().continuations(&["x"]).len(), 1_000);

    // Exactly the full price: 1,000 calls and the datum's storage. Admitted, to the unit.
    let storage = t.datum_storage("x".encoded_len(), 5i64.encoded_len());
    let full = t.produce_base + t.matching(1_000) + storage;
    meter.refund(full - before.remaining).unwrap();
    assert!(s.produce("x", 5, false).unwrap().is_none());
    assert_eq!(meter.remaining(), 0);
    let stored = StoredDatum {
        value: 5,
        persist: false,
        priority: 0,
    };
    assert_eq!(s.space().data(&"x"), vec![stored]);
}

/// Consumers each waiting for their own value (exact keys): a produce is offered, and charged
/// for, only the continuations waiting for its value, so a balance for two matcher calls pays
/// for a produce among 1,000 of them (and its COMM). One continuation without an exact key
/// among them makes the produce try every continuation again, and the same balance stops it.
#[test]
fn a_produce_among_exact_keys_is_charged_for_its_key_only() {
    let t = CostTable::default();
    let meter = Arc::new(PhlogistonMeter::new(u64::MAX));
    let s = ChargingSpace::new(
        Loadable::new(PredMatch, SpaceConfig::new()),
        meter.clone(),
        t,
    );
    for k in 0..1_000 {
        // Persistent, so the same produce finds the same state each time.
        s.consume([0], [Pred::Eq(k)], k as u32, true, &[]).unwrap();
    }
    assert_eq!(examined_by(s.space(), 999), (1, Some(999)));
    let price = t.produce_base + t.matching(2) + t.comm(1);
    drain_to(&meter, price);
    let comm = s.produce(0, 999, false).unwrap().expect("fires");
    assert_eq!(comm.continuation, 999);
    // No continuation waits for 5,000: nothing is examined, and the datum is stored.
    assert_eq!(examined_by(s.space(), 5_000), (0, None));

    // One continuation without an exact key: every continuation is tried again.
    s.space()
        .consume([0], [Pred::Gt(5_000)], 5_000, true, &[])
        .unwrap();
    assert_eq!(examined_by(s.space(), 999), (1_000, Some(999)));
    // The meter is empty after the charged produce above: back to the same balance.
    meter.refund(price - meter.remaining()).unwrap();
    let before = (meter.balance(), s.space().data(&0));
    let err = s.produce(0, 999, false).unwrap_err();
    // Stopped at the first call the balance cannot pay for, long before the 1,000th.
    let first_unpaid = (0..1_000).find(|&k| t.produce_base + t.matching(k) > price);
    let first_unpaid = first_unpaid.expect("the balance covers a few calls only");
    assert_eq!(
        oop(err.kind()).requested,
        t.produce_base + t.matching(first_unpaid)
    );
    assert_eq!((meter.balance(), s.space().data(&0)), before);
}

/// `examined` of a produce of `value` on channel 0 (admitted, so it takes effect), and the
/// continuation it fired.
fn examined_by(s: &Loadable, value: i64) -> (u64, Option<u32>) {
    let mut examined = 0;
    let comm = s
        .produce_admitted(0, value, false, 0, |a| {
            examined = a.examined;
            Ok(())
        })
        .unwrap();
    (examined, comm.map(|c| c.continuation))
}

/// Whether a produce walks by key depends on the state alone (SPEC §8: the same charge on every
/// node): a space reset to a hard checkpoint's root, on another shard count, examines what the
/// space that made the checkpoint examines, by key at 16 continuations and by a whole walk
/// once one more has fired.
#[test]
fn a_space_reset_to_a_root_walks_as_the_space_that_made_it() {
    let store: Arc<dyn HistoryStore> = Arc::new(MemoryHistory::new());
    let a: Loadable = Space::new(PredMatch, SpaceConfig::new()).with_history(store.clone());
    for k in 0..17 {
        a.consume([0], [Pred::Eq(k)], k as u32, false, &[]).unwrap();
    }
    // By key among 17: one examined, and 16 are left.
    assert_eq!(examined_by(&a, 0), (1, Some(0)));
    let root = a.create_checkpoint().expect("checkpoint").root;
    let b: Loadable = Space::with_shards(PredMatch, SpaceConfig::new(), 4).with_history(store);
    b.reset(&root).expect("reset to a recorded root");
    for s in [&a, &b] {
        // 16 left: by key. Then 15: the whole walk tries every continuation before 15's.
        assert_eq!(examined_by(s, 16), (1, Some(16)));
        assert_eq!(examined_by(s, 15), (15, Some(15)));
        assert_eq!(examined_by(s, 1_000), (14, None));
    }
    assert_eq!(
        a.create_checkpoint().expect("checkpoint").root,
        b.create_checkpoint().expect("checkpoint").root
    );
}
