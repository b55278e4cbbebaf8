//! A charged space stops a search once its work alone costs more than the meter holds (SPEC §8:
//! an operation the meter cannot pay fails with `OutOfPhlogiston` and changes nothing). A join
//! search can be exponential in the positions that share a channel; a produce walks every
//! waiting continuation of its channel. With the cap, a caller's balance bounds both.

mod common;

use std::sync::Arc;

use common::{Pred, PredMatch};
use rhospace_phlogiston::{CostTable, OutOfPhlogiston, PhlogistonMeter};
use rhospace_spaces::{ChargingSpace, Encode, ErrorKind, Space, SpaceConfig, StoredDatum};

type Ch = &'static str;
type S = ChargingSpace<Ch, Pred, i64, u32, PredMatch>;

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
/// each when none accepts it. Charged, the walk stops at the first continuation the balance
/// cannot pay for; with the full price in the meter, the same produce is admitted.
#[test]
fn a_produce_stops_offering_its_datum_at_the_balance() {
    let t = CostTable::default();
    let (s, meter) = charged(u64::MAX);
    for k in 0..1_000 {
        s.consume(["x"], [Pred::Eq(-1)], k, false, &[]).unwrap();
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
