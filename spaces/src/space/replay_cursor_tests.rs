//! Replay cursors ([`Cursor`](crate::replay::Cursor)) against table-only lookups.
//!
//! Two spaces replay the same calls against the same log: one whose rig keeps a cursor per
//! shard into the log's order, and one whose rig looks every call and COMM up in its tables
//! (`without_replay_cursors`). The log comes from playing random calls (the `single_tests`
//! generator: produces, bulk produces, consumes with and without gates, batches, installs,
//! soft checkpoints and reverts) on a space whose shard count may differ from the replays',
//! so cursors follow the log or keep missing and resyncing; it may be tampered with (an event
//! dropped, duplicated, swapped with another, or altered), so rigs fail or calls are refused.
//! The replays make the same calls, soft checkpoints and reverts included. After every call
//! the two must agree on the result (refusals included), on what gates saw and on the whole
//! state with its logs; they must agree on the rig and on the closing checkpoint.

use proptest::prelude::*;

use super::single_tests::{apply, apply_checked, config, op, snapshot, Op, Pm, Req, S};
use super::*;
use crate::log::LogEvent;
use crate::merkle::EMPTY_ROOT;
use crate::replay::TABLE_LOOKUPS;

/// A change to a log, at an index taken modulo its length.
#[derive(Clone, Debug)]
enum Tamper {
    Drop(usize),
    Duplicate(usize),
    Swap(usize, usize),
    /// Flips a bit of an event's hash, or of a COMM's first produce or consume hash.
    Flip(usize, usize),
    /// Bumps an event's counter, or gives a COMM one more peek.
    Bump(usize),
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        any::<usize>().prop_map(Tamper::Drop),
        any::<usize>().prop_map(Tamper::Duplicate),
        (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Tamper::Swap(i, j)),
        (any::<usize>(), any::<usize>()).prop_map(|(i, b)| Tamper::Flip(i, b)),
        any::<usize>().prop_map(Tamper::Bump),
    ]
}

fn apply_tamper(log: &mut Vec<LogEvent>, t: &Tamper) {
    let n = log.len();
    if n == 0 {
        return;
    }
    match *t {
        Tamper::Drop(i) => {
            log.remove(i % n);
        }
        Tamper::Duplicate(i) => log.insert(i % n, log[i % n].clone()),
        Tamper::Swap(i, j) => log.swap(i % n, j % n),
        Tamper::Flip(i, b) => match &mut log[i % n] {
            LogEvent::Produce { hash, .. } | LogEvent::Consume { hash, .. } => hash[b % 32] ^= 1,
            LogEvent::Comm(r) => match r.produces.first_mut() {
                Some(p) if b % 2 == 0 => p[b % 32] ^= 1,
                _ => r.consume[b % 32] ^= 1,
            },
        },
        Tamper::Bump(i) => match &mut log[i % n] {
            LogEvent::Produce { counter, .. } | LogEvent::Consume { counter, .. } => {
                *counter = counter.wrapping_add(1)
            }
            LogEvent::Comm(r) => r.peeks.push(0),
        },
    }
}

/// Plays `ops` (hard checkpoints left out) on a space with `play_shards` shards and returns
/// the log of the block, tampered with by `tamper`, and the results of the calls.
fn play(
    kinds: [usize; 3],
    cont: usize,
    play_shards: usize,
    ops: &[Op],
    tamper: Option<&Tamper>,
) -> (Vec<LogEvent>, Vec<String>) {
    let s: S = Space::with_shards(Pm, config(kinds, cont), play_shards);
    let (mut cps, mut seen) = (Vec::new(), Vec::new());
    let results = ops
        .iter()
        .map(|op| apply(&s, op, &mut cps, &mut seen))
        .collect();
    let mut log = s.create_checkpoint().expect("checkpoint").log;
    if let Some(t) = tamper {
        apply_tamper(&mut log, t);
    }
    (log, results)
}

/// Replays `ops` against `log` on a space with `shards` shards with cursors and on one
/// without; panics at the first difference. Returns the results (with cursors).
fn replay_both(
    kinds: [usize; 3],
    cont: usize,
    shards: usize,
    log: &[LogEvent],
    ops: &[Op],
) -> Vec<String> {
    let hinted: S = Space::with_shards(Pm, config(kinds, cont), shards);
    let table: S = Space::with_shards(Pm, config(kinds, cont), shards).without_replay_cursors();
    let rigged = (hinted.rig(&EMPTY_ROOT, log), table.rig(&EMPTY_ROOT, log));
    assert_eq!(format!("{:?}", rigged.0), format!("{:?}", rigged.1), "rig");
    let (mut cps_h, mut cps_t) = (Vec::new(), Vec::new());
    let mut results = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let (mut seen_h, mut seen_t) = (Vec::new(), Vec::new());
        let got = apply_checked(&hinted, op, &mut cps_h, &mut seen_h);
        let want = apply_checked(&table, op, &mut cps_t, &mut seen_t);
        assert_eq!(got, want, "replayed call {i}: {op:?}");
        assert_eq!(seen_h, seen_t, "admission of call {i}: {op:?}");
        assert_eq!(
            snapshot(&hinted),
            snapshot(&table),
            "state after {i}: {op:?}"
        );
        results.push(got);
    }
    let (a, b) = (hinted.create_checkpoint(), table.create_checkpoint());
    assert_eq!(format!("{a:?}"), format!("{b:?}"), "closing checkpoint");
    assert_eq!(hinted.is_replaying(), table.is_replaying());
    results
}

const SHARDS: [usize; 4] = [1, 2, 4, DEFAULT_SHARDS];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random blocks, played on one shard count and replayed on another (or the same), from
    /// the log as written or tampered with: cursors change no result, refusal, state, log or
    /// root. With the log untampered and the same shard count, the replay is also play's.
    #[test]
    fn cursors_replay_as_the_tables(
        kinds in [0usize..6, 0usize..6, 0usize..6],
        cont in 0usize..4,
        play_shards in prop::sample::select(SHARDS.to_vec()),
        replay_shards in prop::sample::select(SHARDS.to_vec()),
        ops in prop::collection::vec(op(), 1..60),
        tamper in prop::option::weighted(0.5, tamper()),
    ) {
        let ops: Vec<Op> = ops.into_iter().filter(|op| !matches!(op, Op::Hard)).collect();
        let (log, played) = play(kinds, cont, play_shards, &ops, tamper.as_ref());
        let replayed = replay_both(kinds, cont, replay_shards, &log, &ops);
        // Without gates (a refused call is not logged, so a replay refuses it otherwise) or
        // reverts (what play reverted is not logged either), a replay gives play's results.
        let replayable = ops.iter().all(|op| {
            !matches!(op, Op::Consume { gate: Some(_), .. } | Op::Revert(_))
        });
        if tamper.is_none() && replayable {
            prop_assert_eq!(replayed, played);
        }
    }
}

/// A consume that neither persists nor peeks, with no gate.
fn plain_consume(channels: Vec<u8>, patterns: Vec<(u8, i64)>, k: u8) -> Op {
    Op::Consume {
        req: Req {
            channels,
            patterns,
            k,
            persist: false,
            peeks: Vec::new(),
        },
        gate: None,
    }
}

/// A block shaped like the replay benchmark's: produces and exact consumes on 40 channels, a
/// tenth of the consumes joining two channels, continuations and data repeating (so calls
/// and COMMs recur in the log).
fn block(n: usize) -> Vec<Op> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|i| {
            let r = next();
            let ch = (r % 40) as u8;
            let v = ((r >> 8) % 4) as i64;
            let k = (i % 199) as u8;
            let consume = |channels, patterns| plain_consume(channels, patterns, k);
            match (r >> 32) % 16 {
                0..=8 => Op::Produce {
                    channel: ch,
                    value: v,
                    persist: false,
                    priority: 0,
                },
                9 => consume(vec![ch, (ch + 1) % 40], vec![(3, v), (3, (v + 1) % 4)]),
                _ => consume(vec![ch], vec![(3, v)]),
            }
        })
        .collect()
}

/// In play's order on play's shard count, each shard's cursors answer every lookup after
/// the shard's first call and first COMM; on other shard counts they miss and resync. Every
/// replay gives play's results and root, as table-only lookups do.
#[test]
fn cursors_follow_an_in_order_replay_and_resync_on_other_shard_counts() {
    let ops = block(1500);
    let played: S = Space::new(Pm, config([0, 0, 0], 0));
    let (mut cps, mut seen) = (Vec::new(), Vec::new());
    let results: Vec<String> = ops
        .iter()
        .map(|op| apply(&played, op, &mut cps, &mut seen))
        .collect();
    let fired = results.iter().filter(|r| r.starts_with("Ok(Some")).count();
    assert!(fired > 300, "the block fires COMMs ({fired})");
    let block = played.create_checkpoint().expect("checkpoint");
    for shards in [1, 4, DEFAULT_SHARDS, 64] {
        for cursors in [true, false] {
            let s: S = Space::with_shards(Pm, config([0, 0, 0], 0), shards);
            let s = if cursors {
                s
            } else {
                s.without_replay_cursors()
            };
            s.rig(&EMPTY_ROOT, &block.log).expect("rig");
            let before = TABLE_LOOKUPS.with(|n| n.get());
            for (i, op) in ops.iter().enumerate() {
                let got = apply(&s, op, &mut cps, &mut seen);
                assert_eq!(got, results[i], "{shards} shards, call {i}: {op:?}");
            }
            let missed = TABLE_LOOKUPS.with(|n| n.get()) - before;
            assert_eq!(s.create_checkpoint().expect("closing").root, block.root);
            if !cursors {
                assert_eq!(missed, 0, "no cursors, none counted");
            } else if shards == DEFAULT_SHARDS {
                // At most one call lookup and one COMM lookup per shard went to the tables.
                assert!(missed <= 2 * shards as u64, "{missed} table lookups");
            } else {
                assert!(missed > 0, "{shards} shards: cursors follow another order");
            }
        }
    }
}

/// A cursor that points at the right record whose count is spent must not answer. The same
/// COMM fires twice in play, once from each of two shards; the log loses the first (in the
/// lower shard). The replay's first firing takes the one left through the table; then the
/// other shard's cursor, moved along by an earlier COMM, points exactly at that record, now
/// spent, when the second firing asks: it is refused (`CommNotInLog`), as the table refuses.
#[test]
fn a_cursor_on_a_spent_record_does_not_answer() {
    let s: S = Space::new(Pm, config([0, 0, 0], 0));
    // Two channels in different shards, the lower-numbered shard first.
    let (a, b) = (0..=255u8)
        .flat_map(|a| (0..=255u8).map(move |b| (a, b)))
        .find(|&(a, b)| s.router.shard_of(&a) < s.router.shard_of(&b))
        .expect("two shards");
    let produce = |channel, value| Op::Produce {
        channel,
        value,
        persist: false,
        priority: 0,
    };
    let consume = plain_consume;
    let join = || consume(vec![a, b], vec![(3, 1), (3, 2)], 0);
    let ops = vec![
        // X, fired by the join consume: logged in a's shard.
        produce(a, 1),
        produce(b, 2),
        join(),
        // Y, fired by a produce on b: logged in b's shard.
        consume(vec![b], vec![(3, 5)], 1),
        produce(b, 5),
        // X again, fired by a produce on b: logged in b's shard, right after Y.
        join(),
        produce(a, 1),
        produce(b, 2),
    ];
    let (mut log, played) = play([0, 0, 0], 0, DEFAULT_SHARDS, &ops, None);
    assert!(played.iter().filter(|r| r.starts_with("Ok(Some")).count() == 3);
    let first_x = log
        .iter()
        .position(|e| matches!(e, LogEvent::Comm(r) if r.produces.len() == 2))
        .expect("X logged");
    log.remove(first_x);
    let replayed = replay_both([0, 0, 0], 0, DEFAULT_SHARDS, &log, &ops);
    assert!(replayed[7].contains("CommNotInLog"), "{}", replayed[7]);
}
