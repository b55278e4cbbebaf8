//! A charged space whose searches stop at the meter's balance (see [`super`]) against the same
//! space with the cap off ([`NO_BUDGET`]): random produces and joins on a few channels, with
//! meters small enough that searches run out of phlogiston midway. After every call both give
//! the same COMM or the same error kind, with the same balance, and a refusal reports the same
//! `remaining` and a `requested` no higher than the uncapped one; at the end both spaces hash
//! to the same state root and log. Then both replay the log from the empty root with the same
//! balance: capped and uncapped agree again, every call play admitted does what it did in
//! play, and both end at play's root. The cap changes how soon an operation is refused,
//! nothing else.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rhospace_matchers::Match;
use rhospace_phlogiston::{CostTable, PhlogistonMeter};
use std::sync::Arc;

use super::NO_BUDGET;
use crate::merkle::EMPTY_ROOT;
use crate::{ChargingSpace, ErrorKind, Space, SpaceConfig};

/// A pattern `(kind, value)`: 0 any datum, 1 even, 2 odd, 3 below `value`, 4 exactly `value`
/// (an exact key, so indexed lookups take part).
type Pt = (u8, u8);

struct Pm;
impl Match<Pt, u8> for Pm {
    type Output = u8;
    fn get(&self, p: &Pt, d: &u8) -> Option<u8> {
        let ok = match p.0 {
            0 => true,
            1 => d.is_multiple_of(2),
            2 => d % 2 == 1,
            3 => *d < p.1,
            _ => *d == p.1,
        };
        ok.then_some(*d)
    }
    fn exact_key<'p>(&self, p: &'p Pt) -> Option<&'p u8> {
        (p.0 >= 4).then_some(&p.1)
    }
}

type S = ChargingSpace<u8, Pt, u8, u16, Pm>;

#[derive(Clone, Debug)]
enum Op {
    Produce(u8, u8, bool),
    Consume(Vec<(u8, Pt)>, bool, Option<usize>),
}

fn op() -> impl Strategy<Value = Op> {
    let pattern = (0u8..5, 0u8..6);
    prop_oneof![
        3 => (0u8..3, 0u8..6, proptest::bool::weighted(0.1)).prop_map(|(c, d, p)| Op::Produce(c, d, p)),
        2 => (
            proptest::collection::vec((0u8..3, pattern), 1..6),
            proptest::bool::weighted(0.1),
            proptest::option::weighted(0.2, 0usize..5),
        )
            .prop_map(|(j, p, peek)| Op::Consume(j, p, peek)),
    ]
}

fn space(limit: u64) -> S {
    ChargingSpace::new(
        Space::new(Pm, SpaceConfig::new()),
        Arc::new(PhlogistonMeter::new(limit)),
        CostTable::default(),
    )
}

/// Runs `f` on this thread with the cap on (`capped`) or off.
fn with_cap<T>(capped: bool, f: impl FnOnce() -> T) -> T {
    NO_BUDGET.with(|b| b.set(!capped));
    let out = f();
    NO_BUDGET.with(|b| b.set(false));
    out
}

/// What one call returned, comparably: the COMM's debug form, or the error kind and, for
/// `OutOfPhlogiston`, its `requested` and `remaining`.
#[derive(Debug, PartialEq)]
enum Seen {
    Ok(String),
    Oop { requested: u64, remaining: u64 },
    Err(String),
}

fn seen<T: std::fmt::Debug>(r: Result<T, &ErrorKind>) -> Seen {
    match r {
        Ok(v) => Seen::Ok(format!("{v:?}")),
        Err(ErrorKind::OutOfPhlogiston(e)) => Seen::Oop {
            requested: e.requested,
            remaining: e.remaining,
        },
        Err(k) => Seen::Err(format!("{k:?}")),
    }
}

fn call(s: &S, op: &Op, k: u16) -> Seen {
    match op {
        Op::Produce(c, d, p) => seen(s.produce(*c, *d, *p).as_ref().map_err(|e| e.kind())),
        Op::Consume(join, persist, peek) => {
            let channels: Vec<u8> = join.iter().map(|j| j.0).collect();
            let patterns: Vec<Pt> = join.iter().map(|j| j.1).collect();
            let peeks: Vec<usize> = peek.iter().copied().filter(|p| *p < join.len()).collect();
            let r = s.consume(channels, patterns, k, *persist, &peeks);
            seen(r.as_ref().map_err(|e| e.kind()))
        }
    }
}

#[test]
fn a_capped_search_refuses_what_the_uncapped_gate_refuses_and_nothing_else() {
    let mut runner = TestRunner::new(Config {
        cases: 512,
        ..Config::default()
    });
    let stopped_early = std::cell::Cell::new(0u64);
    let strategy = (60u64..1_500, proptest::collection::vec(op(), 1..48));
    runner
        .run(&strategy, |(limit, ops)| {
            let (capped, uncapped) = (space(limit), space(limit));
            let mut played = Vec::new();
            for (n, op) in ops.iter().enumerate() {
                let k = u16::try_from(n).unwrap_or(u16::MAX);
                let a = with_cap(true, || call(&capped, op, k));
                let b = with_cap(false, || call(&uncapped, op, k));
                match (&a, &b) {
                    (
                        Seen::Oop {
                            requested: ra,
                            remaining: ma,
                        },
                        Seen::Oop {
                            requested: rb,
                            remaining: mb,
                        },
                    ) => {
                        prop_assert_eq!(ma, mb, "call {}: {:?}", n, op);
                        prop_assert!(ra <= rb && ra > ma, "call {}: {:?} {:?}", n, a, b);
                        if ra < rb {
                            stopped_early.set(stopped_early.get() + 1);
                        }
                    }
                    _ => prop_assert_eq!(&a, &b, "call {}: {:?}", n, op),
                }
                prop_assert_eq!(capped.meter().balance(), uncapped.meter().balance());
                played.push(a);
            }
            let (Ok(a), Ok(b)) = (
                capped.space().create_checkpoint(),
                uncapped.space().create_checkpoint(),
            ) else {
                return Err(TestCaseError::fail("a checkpoint failed"));
            };
            prop_assert_eq!(&a, &b);
            // Replayed from the empty root with the same balance, capped and uncapped: a call
            // play admitted is not stopped (its search does the same work), one play refused is
            // refused before its search (it left no event).
            let (capped, uncapped) = (space(limit), space(limit));
            prop_assert!(capped.space().rig(&EMPTY_ROOT, &a.log[..]).is_ok());
            prop_assert!(uncapped.space().rig(&EMPTY_ROOT, &a.log[..]).is_ok());
            for (n, (op, played)) in ops.iter().zip(&played).enumerate() {
                let k = u16::try_from(n).unwrap_or(u16::MAX);
                let ra = with_cap(true, || call(&capped, op, k));
                let rb = with_cap(false, || call(&uncapped, op, k));
                prop_assert_eq!(&ra, &rb, "replayed call {}: {:?}", n, op);
                if let Seen::Ok(_) = played {
                    prop_assert_eq!(&ra, played, "replayed call {}: {:?}", n, op);
                }
            }
            let root = |s: &S| s.space().create_checkpoint().map(|c| c.root).ok();
            prop_assert_eq!(root(&capped), Some(a.root));
            prop_assert_eq!(root(&uncapped), Some(a.root));
            Ok(())
        })
        .unwrap();
    // The runs did stop searches midway (else this test compares nothing).
    assert!(
        stopped_early.get() > 20,
        "{} early stops",
        stopped_early.get()
    );
}
