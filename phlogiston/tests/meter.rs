//! Meter, lease and cost-table tests: error paths, exactness, and multi-threaded stress with
//! seeded random charges and refunds.
#![cfg(not(loom))]

use std::sync::{Arc, Barrier};

use rhospace_phlogiston::{
    Balance, CostTable, Lease, OutOfPhlogiston, PhlogistonMeter, RefundExceedsCharged,
};

/// xorshift64*: seeded, dependency-free.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        Self(seed | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn assert_snapshot(meter: &PhlogistonMeter) {
    let b = meter.balance();
    assert!(b.remaining <= b.limit);
    assert_eq!(b.consumed + b.remaining, b.limit);
}

#[test]
fn overdraw_fails_and_changes_nothing() {
    let meter = PhlogistonMeter::new(100);
    meter.charge(60).unwrap();
    let before = meter.balance();
    let refundable = meter.refundable();
    assert_eq!(
        meter.charge(41),
        Err(OutOfPhlogiston {
            requested: 41,
            remaining: 40
        })
    );
    assert_eq!(meter.balance(), before);
    assert_eq!(meter.refundable(), refundable);
    meter.charge(40).unwrap();
    assert_eq!(
        meter.balance(),
        Balance {
            limit: 100,
            consumed: 100,
            remaining: 0
        }
    );
}

#[test]
fn zero_limit_meter() {
    let meter = PhlogistonMeter::new(0);
    assert_eq!(
        meter.charge(1),
        Err(OutOfPhlogiston {
            requested: 1,
            remaining: 0
        })
    );
    assert_eq!(meter.charge(0), Ok(()));
    assert_eq!(meter.refund(0), Ok(()));
    assert_eq!(
        meter.refund(1),
        Err(RefundExceedsCharged {
            requested: 1,
            refundable: 0
        })
    );
    let mut lease = meter.lease(10);
    assert_eq!(lease.charge(0), Ok(()));
    assert_eq!(
        lease.charge(1),
        Err(OutOfPhlogiston {
            requested: 1,
            remaining: 0
        })
    );
    drop(lease);
    assert_eq!(meter.balance(), Balance::default_for(0));
}

/// A fresh meter's balance, for comparisons.
trait FreshBalance {
    fn default_for(limit: u64) -> Balance;
}

impl FreshBalance for Balance {
    fn default_for(limit: u64) -> Balance {
        Balance {
            limit,
            consumed: 0,
            remaining: limit,
        }
    }
}

#[test]
fn huge_requests_do_not_panic() {
    for limit in [0, 1, 1_000, u64::MAX - 1, u64::MAX] {
        let meter = PhlogistonMeter::new(limit);
        let charged = meter.charge(u64::MAX);
        assert_eq!(charged.is_ok(), limit == u64::MAX);
        assert_snapshot(&meter);
        let refund = meter.refund(u64::MAX);
        assert_eq!(refund.is_ok(), limit == u64::MAX);
        assert_eq!(meter.balance(), Balance::default_for(limit));
        // A second refund of everything must now fail.
        assert!(meter.refund(u64::MAX).is_err());

        let mut lease = meter.lease(u64::MAX);
        assert_eq!(lease.charge(u64::MAX).is_ok(), limit == u64::MAX);
        assert_eq!(lease.refund(u64::MAX).is_ok(), limit == u64::MAX);
        assert!(lease.refund(1).is_err());
        assert_eq!(lease.charge(1).is_ok(), limit >= 1);
        assert_eq!(lease.remaining(), limit.saturating_sub(1));
        drop(lease);
        assert_eq!(meter.consumed(), u64::from(limit >= 1));
        assert_snapshot(&meter);
    }
}

#[test]
fn refund_larger_than_charged_is_an_error_not_a_clamp() {
    let meter = PhlogistonMeter::new(50);
    meter.charge(10).unwrap();
    meter.charge(5).unwrap();
    let err = meter.refund(16).unwrap_err();
    assert_eq!(
        err,
        RefundExceedsCharged {
            requested: 16,
            refundable: 15
        }
    );
    assert_eq!(meter.remaining(), 35);
    assert!(err.to_string().contains("requested 16"));
    meter.refund(15).unwrap();
    assert_eq!(meter.remaining(), 50);
    assert!(meter.refund(1).is_err());
}

#[test]
fn lease_failed_charge_changes_nothing() {
    let meter = PhlogistonMeter::new(10);
    let mut lease = meter.lease(4);
    lease.charge(3).unwrap(); // draws 4
    meter.charge(5).unwrap(); // someone else: 1 left on the meter
    let (available, spent) = (lease.available(), lease.spent());
    let (balance, refundable) = (meter.balance(), meter.refundable());
    let err = lease.charge(3).unwrap_err();
    assert_eq!(
        err,
        OutOfPhlogiston {
            requested: 3,
            remaining: 2
        }
    );
    assert_eq!((lease.available(), lease.spent()), (available, spent));
    assert_eq!((meter.balance(), meter.refundable()), (balance, refundable));
    // The last two units are still chargeable, exactly.
    lease.charge(2).unwrap();
    assert_eq!(lease.remaining(), 0);
    assert_eq!(lease.finish(), 5);
    assert_eq!(meter.consumed(), 10);
    assert_eq!(meter.refundable(), 10);
}

#[test]
fn lease_commits_on_refill_flush_and_return() {
    let meter = PhlogistonMeter::new(1_000);
    let mut lease = meter.lease(10);
    lease.charge(6).unwrap();
    assert_eq!(meter.refundable(), 0);
    assert_eq!(meter.consumed(), 10); // the whole chunk is held
    lease.charge(6).unwrap(); // refill: commits 6
    assert_eq!(meter.refundable(), 6);
    lease.flush();
    assert_eq!(meter.refundable(), 12);
    meter.refund(12).unwrap();
    assert!(meter.refund(1).is_err());
    lease.charge(1).unwrap();
    // Lease refunds: its own uncommitted spending locally, the rest through the meter.
    meter.charge(5).unwrap();
    lease.refund(3).unwrap(); // 1 local + 2 from the meter
    assert_eq!(meter.refundable(), 3);
    assert_eq!(lease.finish(), 10); // 12 + 1 - 3, floored by nothing
    assert_eq!(meter.consumed(), 3); // charges 6 + 6 + 1 + 5, refunds 12 + 3
}

#[test]
fn lease_refund_beyond_everything_fails_and_changes_nothing() {
    let meter = PhlogistonMeter::new(100);
    meter.charge(4).unwrap();
    let mut lease = meter.lease(10);
    lease.charge(3).unwrap();
    let (available, balance) = (lease.available(), meter.balance());
    assert_eq!(
        lease.refund(8),
        Err(RefundExceedsCharged {
            requested: 8,
            refundable: 7
        })
    );
    assert_eq!((lease.available(), meter.balance()), (available, balance));
    lease.refund(7).unwrap();
    drop(lease);
    assert_eq!(meter.consumed(), 0);
}

#[test]
fn lease_with_zero_chunk_draws_exactly() {
    let meter = PhlogistonMeter::new(10);
    let mut lease = meter.lease(0);
    lease.charge(3).unwrap();
    assert_eq!(meter.remaining(), 7);
    assert_eq!(lease.available(), 0);
    lease.charge(7).unwrap();
    assert!(lease.charge(1).is_err());
}

#[test]
fn lease_over_an_arc_is_static_and_send() {
    fn assert_send<T: Send + 'static>(_: &T) {}
    let meter = Arc::new(PhlogistonMeter::new(100));
    let lease = Lease::new(Arc::clone(&meter), 8);
    assert_send(&lease);
    let spent = std::thread::spawn(move || {
        let mut lease = lease;
        lease.charge(9).unwrap();
        lease.finish()
    })
    .join()
    .unwrap();
    assert_eq!(spent, 9);
    assert_eq!(meter.consumed(), 9);
}

const THREADS: usize = 8;
const OPS: usize = 20_000;

/// Each thread charges random amounts and refunds random parts of what it charged; some
/// charges fail once the meter runs dry. Returns the net charged per thread.
fn stress(limit: u64, lease_chunk: Option<u64>) -> (Arc<PhlogistonMeter>, i128) {
    let meter = Arc::new(PhlogistonMeter::new(limit));
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let meter = Arc::clone(&meter);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut rng = XorShift::new(0xDEAD_BEEF ^ (t as u64) << 32);
                let mut lease = lease_chunk.map(|chunk| Lease::new(Arc::clone(&meter), chunk));
                // What this thread charged and has not refunded: refunds stay within it.
                let mut outstanding: u64 = 0;
                let mut failures = 0u64;
                barrier.wait();
                for _ in 0..OPS {
                    if rng.below(3) == 0 && outstanding > 0 {
                        let amount = 1 + rng.below(outstanding);
                        match lease.as_mut() {
                            Some(lease) => lease.refund(amount).unwrap(),
                            None => meter.refund(amount).unwrap(),
                        }
                        outstanding -= amount;
                    } else {
                        let amount = rng.below(64);
                        let result = match lease.as_mut() {
                            Some(lease) => lease.charge(amount),
                            None => meter.charge(amount),
                        };
                        match result {
                            Ok(()) => outstanding += amount,
                            Err(e) => {
                                assert_eq!(e.requested, amount);
                                assert!(e.remaining < amount);
                                failures += 1;
                            }
                        }
                    }
                    if rng.below(256) == 0 {
                        assert_snapshot(&meter);
                    }
                }
                if let Some(lease) = lease {
                    assert_eq!(lease.finish(), outstanding);
                }
                (i128::from(outstanding), failures)
            })
        })
        .collect();
    let mut net = 0;
    let mut failures = 0;
    for h in handles {
        let (n, f) = h.join().unwrap();
        net += n;
        failures += f;
    }
    // The limits below are chosen so that both successes and failures happen.
    if limit < 1_000_000 {
        assert!(failures > 0, "stress never ran the meter dry");
    }
    (meter, net)
}

#[test]
fn stress_shared_meter_exact_totals() {
    for limit in [700, u64::MAX] {
        let (meter, net) = stress(limit, None);
        assert_eq!(i128::from(meter.consumed()), net);
        assert_eq!(i128::from(meter.refundable()), net);
        assert_snapshot(&meter);
    }
}

#[test]
fn stress_leases_exact_totals() {
    for (limit, chunk) in [(700, 64), (700, 1), (u64::MAX, 1_000)] {
        let (meter, net) = stress(limit, Some(chunk));
        assert_eq!(i128::from(meter.consumed()), net);
        assert_eq!(i128::from(meter.refundable()), net);
        assert_snapshot(&meter);
    }
}

#[test]
fn stress_mixed_leases_and_shared_refunds() {
    // Half the threads charge through leases and flush; the others charge and refund the
    // shared meter, sometimes refunding more than they charged themselves (failing or not).
    let meter = Arc::new(PhlogistonMeter::new(1 << 20));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let meter = Arc::clone(&meter);
            std::thread::spawn(move || {
                let mut rng = XorShift::new(77 + t as u64);
                let mut net: i128 = 0;
                if t % 2 == 0 {
                    let mut lease = meter.lease(32);
                    for i in 0..OPS {
                        let amount = rng.below(16);
                        if lease.charge(amount).is_ok() {
                            net += i128::from(amount);
                        }
                        if i % 100 == 0 {
                            lease.flush();
                        }
                    }
                } else {
                    for _ in 0..OPS {
                        let amount = rng.below(16);
                        if rng.below(2) == 0 {
                            if meter.charge(amount).is_ok() {
                                net += i128::from(amount);
                            }
                        } else if meter.refund(amount).is_ok() {
                            net -= i128::from(amount);
                        }
                    }
                }
                net
            })
        })
        .collect();
    let net: i128 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(net >= 0);
    assert_eq!(i128::from(meter.consumed()), net);
    assert_eq!(i128::from(meter.refundable()), net);
}

#[test]
fn cost_table_scales_and_saturates() {
    let t = CostTable::default();
    assert_eq!(t, CostTable::DEFAULT);
    // Per byte: strictly more for a bigger datum, channel, patterns or continuation.
    assert!(t.produce(10, 101) > t.produce(10, 100));
    assert!(t.produce(11, 100) > t.produce(10, 100));
    assert!(t.consume(1, 10, 11, 10) > t.consume(1, 10, 10, 10));
    assert!(t.consume(1, 10, 10, 11) > t.consume(1, 10, 10, 10));
    // Per channel of a join.
    assert!(t.consume(3, 30, 10, 10) > t.consume(2, 30, 10, 10));
    assert!(t.install(3, 30, 10, 10) > t.install(2, 30, 10, 10));
    // Matching and vector search.
    assert!(t.matching(11) > t.matching(10));
    assert!(t.vector_search(10, 65) > t.vector_search(10, 64));
    assert!(t.hard_checkpoint(2) > t.hard_checkpoint(1));
    assert!(t.comm(2) > t.comm(1));
    // Storage refunds are exactly the storage part.
    assert_eq!(t.produce(7, 9) - t.datum_storage(7, 9), t.produce_base);
    assert_eq!(
        t.consume(2, 7, 9, 11) - t.continuation_storage(7, 9, 11),
        t.consume_base + 2 * t.join_channel
    );
    // Saturation instead of overflow, for every function.
    let max = usize::MAX;
    let huge = CostTable {
        produce_base: u64::MAX,
        consume_base: u64::MAX,
        install_base: u64::MAX,
        comm_base: u64::MAX,
        comm_per_position: u64::MAX,
        new_channel: u64::MAX,
        join_channel: u64::MAX,
        channel_byte: u64::MAX,
        datum_byte: u64::MAX,
        pattern_byte: u64::MAX,
        continuation_byte: u64::MAX,
        match_candidate: u64::MAX,
        soft_checkpoint: u64::MAX,
        hard_checkpoint_base: u64::MAX,
        hard_checkpoint_item: u64::MAX,
        vector_search_base: u64::MAX,
        vector_element: u64::MAX,
    };
    for table in [t, huge] {
        assert_eq!(table.produce(max, max), u64::MAX);
        assert_eq!(table.consume(max, max, max, max), u64::MAX);
        assert_eq!(table.install(max, max, max, max), u64::MAX);
        assert_eq!(table.datum_storage(max, max), u64::MAX);
        assert_eq!(table.continuation_storage(max, max, max), u64::MAX);
        assert_eq!(table.comm(max), u64::MAX);
        assert_eq!(table.new_channels(max), u64::MAX);
        assert_eq!(table.matching(max), u64::MAX);
        assert_eq!(table.matching_refund(max, 0), u64::MAX);
        assert_eq!(table.hard_checkpoint(max), u64::MAX);
        assert_eq!(table.vector_search(max, max), u64::MAX);
        assert_eq!(table.vector_search(max, 0), table.vector_search_base);
    }
    assert_eq!(huge.soft_checkpoint(), u64::MAX);
    // A saturated cost cannot be paid, and fails cleanly.
    let meter = PhlogistonMeter::new(u64::MAX - 1);
    assert!(meter.charge(huge.produce(1, 1)).is_err());
}
