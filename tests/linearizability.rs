//! SPEC §9 linearizability, checked exhaustively on small recorded histories.
//!
//! Each history: 2–3 threads, 2–4 calls each (produce, consume with joins, persistence and
//! peeks, and `data` views) on 1–2 channels of a fresh space, with Bag kinds and exact
//! matching. Every call is bracketed by two tickets from one shared counter (invocation right
//! before, response right after), which gives the real-time order. The checker in `lin/`
//! searches every sequential order consistent with it (Wing & Gong, memoised, split by
//! P-compositionality) for one under which a plain sequential model returns exactly what each
//! call returned. Hundreds of seeded histories run per test; the checker's own tests feed it
//! hand-made histories that must be rejected, so a checker that accepts everything fails here.

mod common;
mod lin;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use common::Rng;
use lin::{check, Ch, Event, Kont, MComm, Op, Ret, Val};
use rhospace_matchers::ExactMatch;
use rhospace_spaces::{Comm, Space, SpaceConfig};

type S = Space<Ch, Val, Val, Kont, ExactMatch>;

fn plain(c: Comm<Ch, Val, Val, Kont, ()>) -> MComm {
    MComm {
        continuation: c.continuation,
        channels: c.channels.to_vec(),
        patterns: c.patterns.to_vec(),
        persistent: c.persistent,
        peeks: c.peeks.to_vec(),
        matches: c.matches.iter().map(|m| (m.datum, m.persistent)).collect(),
        reissue: c.reissue,
    }
}

fn run(space: &S, op: &Op) -> Ret {
    match op {
        Op::Produce { ch, value, persist } => Ret::Fired(
            space
                .produce(*ch, *value, *persist)
                .expect("valid produce")
                .map(plain),
        ),
        Op::Consume {
            chans,
            pats,
            k,
            persist,
            peeks,
        } => Ret::Fired(
            space
                .consume(chans.clone(), pats.clone(), *k, *persist, peeks)
                .expect("valid consume")
                .map(plain),
        ),
        Op::Data { ch } => Ret::Data(
            space
                .data(ch)
                .into_iter()
                .map(|d| (d.value, d.persist))
                .collect(),
        ),
    }
}

/// Shape of the random histories.
#[derive(Clone, Copy)]
struct Shape {
    channels: u64,
    join_percent: u64,
}

fn random_op(rng: &mut Rng, shape: Shape, k: Kont) -> Op {
    let chan = |rng: &mut Rng| rng.below(shape.channels) as Ch;
    // Two values only, so patterns and data meet often.
    let value = |rng: &mut Rng| 1 + rng.below(2);
    match rng.below(100) {
        0..=39 => Op::Produce {
            ch: chan(rng),
            value: value(rng),
            persist: rng.chance(15),
        },
        40..=84 => {
            let arity = if rng.chance(shape.join_percent) { 2 } else { 1 };
            let chans: Vec<Ch> = (0..arity).map(|_| chan(rng)).collect();
            let pats: Vec<Val> = (0..arity).map(|_| value(rng)).collect();
            let peeks: Vec<usize> = (0..arity).filter(|_| rng.chance(15)).collect();
            Op::Consume {
                chans,
                pats,
                k,
                persist: rng.chance(15),
                peeks,
            }
        }
        _ => Op::Data { ch: chan(rng) },
    }
}

/// Runs one random history on a fresh space and returns its events.
fn record(seed: u64, shape: Shape) -> Vec<Event> {
    let mut rng = Rng(seed);
    let threads = 2 + rng.below(2) as usize;
    let plans: Vec<Vec<Op>> = (0..threads)
        .map(|t| {
            let n = 2 + rng.below(3);
            (0..n)
                .map(|i| random_op(&mut rng, shape, (t * 16 + i as usize) as Kont))
                .collect()
        })
        .collect();
    let space = S::new(ExactMatch, SpaceConfig::new());
    let clock = AtomicU64::new(0);
    let ready = AtomicUsize::new(0);
    let events = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for (t, plan) in plans.iter().enumerate() {
            let (space, clock, ready, events) = (&space, &clock, &ready, &events);
            let mut jitter = Rng(seed ^ (t as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407));
            s.spawn(move || {
                let mut mine = Vec::with_capacity(plan.len());
                // Spin (not a Barrier, whose wake-ups are staggered by tens of microseconds,
                // longer than a whole history) until every thread is running.
                // Relaxed: the counter only starts threads together; it publishes no data.
                ready.fetch_add(1, Ordering::Relaxed);
                let mut spins = 0u32;
                while ready.load(Ordering::Relaxed) < threads {
                    spins += 1;
                    if spins.is_multiple_of(1024) {
                        std::thread::yield_now();
                    } else {
                        std::hint::spin_loop();
                    }
                }
                for op in plan {
                    // A little seeded jitter so calls of different threads overlap in varied ways.
                    for _ in 0..jitter.below(32) {
                        std::hint::spin_loop();
                    }
                    // AcqRel: every ticket is an RMW on one counter, so a call whose response
                    // ticket precedes another's invocation ticket happens-before that call; the
                    // tickets' order is therefore a real-time order the space must respect.
                    let inv = clock.fetch_add(1, Ordering::AcqRel);
                    let ret = run(space, op);
                    let resp = clock.fetch_add(1, Ordering::AcqRel);
                    mine.push(Event {
                        thread: t,
                        op: op.clone(),
                        ret,
                        inv,
                        resp,
                    });
                }
                events.lock().expect("no panic holds it").extend(mine);
            });
        }
    });
    let mut events = events.into_inner().expect("no panic holds it");
    events.sort_by_key(|e| e.inv);
    events
}

/// Whether some two calls of different threads overlap in real time.
fn has_overlap(events: &[Event]) -> bool {
    events.iter().any(|a| {
        events
            .iter()
            .any(|b| a.thread != b.thread && a.inv < b.resp && b.inv < a.resp)
    })
}

fn run_many(base: u64, histories: u64, shape: Shape) {
    let mut overlapping = 0;
    for h in 0..histories {
        let seed = base.wrapping_add(h.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let events = record(seed, shape);
        overlapping += usize::from(has_overlap(&events));
        if let Err(why) = check(&events) {
            panic!("history {h} (seed {seed:#x}) is not linearizable: {why}");
        }
    }
    eprintln!("{histories} histories linearizable, {overlapping} with overlapping calls");
}

#[test]
fn random_histories_on_one_channel_are_linearizable() {
    run_many(
        0x11,
        1_000,
        Shape {
            channels: 1,
            join_percent: 30,
        },
    );
}

#[test]
fn random_histories_with_joins_on_two_channels_are_linearizable() {
    run_many(
        0x22,
        1_000,
        Shape {
            channels: 2,
            join_percent: 50,
        },
    );
}

// ---------------------------------------------------------------------------------------------
// The checker must be able to fail: hand-made histories.
// ---------------------------------------------------------------------------------------------

fn ev(thread: usize, inv: u64, resp: u64, op: Op, ret: Ret) -> Event {
    Event {
        thread,
        op,
        ret,
        inv,
        resp,
    }
}

fn produce(ch: Ch, value: Val) -> Op {
    Op::Produce {
        ch,
        value,
        persist: false,
    }
}

fn consume(ch: Ch, pat: Val, k: Kont) -> Op {
    Op::Consume {
        chans: vec![ch],
        pats: vec![pat],
        k,
        persist: false,
        peeks: vec![],
    }
}

fn fired(k: Kont, ch: Ch, value: Val) -> Ret {
    Ret::Fired(Some(MComm {
        continuation: k,
        channels: vec![ch],
        patterns: vec![value],
        persistent: false,
        peeks: vec![],
        matches: vec![(value, false)],
        reissue: false,
    }))
}

const NOTHING: Ret = Ret::Fired(None);

#[test]
fn checker_accepts_overlapping_calls_in_either_order() {
    // The consume overlaps the produce: it may go first (stored) and be fired by the produce.
    let h = vec![
        ev(0, 0, 3, produce(0, 1), fired(7, 0, 1)),
        ev(1, 1, 2, consume(0, 1, 7), NOTHING),
    ];
    assert_eq!(check(&h).expect("linearizable"), vec![1, 0]);
    // Or the produce goes first (stored) and the consume takes the datum.
    let h = vec![
        ev(0, 0, 3, produce(0, 1), NOTHING),
        ev(1, 1, 2, consume(0, 1, 7), fired(7, 0, 1)),
    ];
    assert_eq!(check(&h).expect("linearizable"), vec![0, 1]);
}

#[test]
fn checker_rejects_a_consume_that_misses_a_completed_produce() {
    let h = vec![
        ev(0, 0, 1, produce(0, 1), NOTHING),
        ev(1, 2, 3, consume(0, 1, 7), NOTHING),
    ];
    assert!(check(&h).is_err());
}

#[test]
fn checker_rejects_a_produce_firing_a_continuation_not_yet_consumed() {
    // The produce finished before the consume began, so it cannot have fired it.
    let h = vec![
        ev(0, 0, 1, produce(0, 1), fired(7, 0, 1)),
        ev(1, 2, 3, consume(0, 1, 7), NOTHING),
    ];
    assert!(check(&h).is_err());
}

#[test]
fn checker_rejects_one_datum_consumed_twice() {
    // Two overlapping consumes both report the one non-persistent datum.
    let h = vec![
        ev(0, 0, 1, produce(0, 1), NOTHING),
        ev(1, 2, 5, consume(0, 1, 7), fired(7, 0, 1)),
        ev(2, 3, 4, consume(0, 1, 8), fired(8, 0, 1)),
    ];
    assert!(check(&h).is_err());
    // With a second datum it is fine.
    let ok = vec![
        ev(0, 0, 1, produce(0, 1), NOTHING),
        ev(0, 2, 3, produce(0, 1), NOTHING),
        ev(1, 4, 7, consume(0, 1, 7), fired(7, 0, 1)),
        ev(2, 5, 6, consume(0, 1, 8), fired(8, 0, 1)),
    ];
    assert!(check(&ok).is_ok());
}

#[test]
fn checker_rejects_a_stale_view_and_a_wrong_choice() {
    // A view after a completed produce must show it.
    let h = vec![
        ev(0, 0, 1, produce(0, 1), NOTHING),
        ev(1, 2, 3, Op::Data { ch: 0 }, Ret::Data(vec![])),
    ];
    assert!(check(&h).is_err());
    // Oldest first: with two continuations waiting for the same datum, the older one fires.
    let h = vec![
        ev(0, 0, 1, consume(0, 1, 7), NOTHING),
        ev(0, 2, 3, consume(0, 1, 8), NOTHING),
        ev(1, 4, 5, produce(0, 1), fired(8, 0, 1)),
    ];
    assert!(check(&h).is_err());
}

#[test]
fn checker_rejects_a_torn_join() {
    // A join on channels 0 and 1 fired with channel 1's datum while channel 0's datum is still
    // visible to a later view: no sequential order does that.
    let join = Op::Consume {
        chans: vec![0, 1],
        pats: vec![1, 2],
        k: 9,
        persist: false,
        peeks: vec![],
    };
    let comm = Ret::Fired(Some(MComm {
        continuation: 9,
        channels: vec![0, 1],
        patterns: vec![1, 2],
        persistent: false,
        peeks: vec![],
        matches: vec![(1, false), (2, false)],
        reissue: false,
    }));
    let h = vec![
        ev(0, 0, 1, produce(0, 1), NOTHING),
        ev(0, 2, 3, produce(1, 2), NOTHING),
        ev(1, 4, 5, join.clone(), comm.clone()),
        ev(2, 6, 7, Op::Data { ch: 0 }, Ret::Data(vec![(1, false)])),
    ];
    assert!(check(&h).is_err());
    // Overlapping the join, the same view is fine.
    let mut ok = h;
    ok[3].inv = 3;
    ok[3].resp = 8;
    assert!(check(&ok).is_ok());
}

#[test]
fn model_follows_the_reissue_contract_and_persistence() {
    // Cross-check the model against the space sequentially on a fixed script, so the checker's
    // reference is itself anchored to the implementation's tested behaviour.
    let mut rng = Rng(0x5EED);
    let space = S::new(ExactMatch, SpaceConfig::new());
    let mut model = lin::Model::default();
    let shape = Shape {
        channels: 2,
        join_percent: 50,
    };
    for k in 0..20_000 {
        let op = random_op(&mut rng, shape, k);
        assert_eq!(run(&space, &op), model.apply(&op), "call {k}: {op:?}");
    }
}
