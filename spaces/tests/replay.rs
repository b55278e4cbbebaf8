//! Replay (SPEC §7, issue 5): a space rigged with a starting root and a log replays the same
//! calls to the same COMMs and root; the log, not the candidate order, picks among matching
//! candidates; tampered logs and diverging calls are typed errors that change nothing.

use proptest::prelude::*;
use rhospace_matchers::{Pattern, StructuralMatch, Term};
use rhospace_spaces::merkle::{Digest, EMPTY_ROOT};
use rhospace_spaces::{
    produce_hash, CheckpointError, CommRecord, DataKind, ErrorKind, LogEvent, ReplayError, Space,
    SpaceConfig,
};

type S = Space<u32, Pattern, Term, u32, StructuralMatch>;
type C = rhospace_spaces::Comm<u32, Pattern, Term, u32, rhospace_matchers::Bindings>;

fn config() -> SpaceConfig<u32> {
    SpaceConfig::new().channel_kind(3, DataKind::Queue)
}

fn space() -> S {
    Space::new(StructuralMatch, config())
}

fn int(n: i64) -> Term {
    Term::from(n)
}

/// Everything observable on channels 0..4, as text.
fn contents(s: &S) -> String {
    let mut out = String::new();
    for c in 0..4 {
        out += &format!("{c}: {:?}\n", s.data(&c));
        for jk in s.joins(&c) {
            out += &format!("  {jk:?} {:?}\n", s.continuations(&jk));
        }
    }
    out
}

#[derive(Clone, Debug)]
enum Op {
    Produce {
        channel: u32,
        value: i64,
        persist: bool,
    },
    Consume {
        channels: Vec<u32>,
        /// `None`: a wildcard; `Some(v)`: the literal `v`.
        patterns: Vec<Option<i64>>,
        continuation: u32,
        persist: bool,
        peek_first: bool,
    },
}

type Outcome = Result<Option<C>, ErrorKind>;

fn apply(s: &S, op: &Op) -> Outcome {
    match op {
        Op::Produce {
            channel,
            value,
            persist,
        } => s
            .produce(*channel, int(*value), *persist)
            .map_err(|e| e.kind().clone()),
        Op::Consume {
            channels,
            patterns,
            continuation,
            persist,
            peek_first,
        } => {
            let pats: Vec<Pattern> = patterns
                .iter()
                .map(|p| match p {
                    None => Pattern::wildcard(),
                    Some(v) => Pattern::lit(int(*v)),
                })
                .collect();
            let peeks: &[usize] = if *peek_first { &[0] } else { &[] };
            s.consume(channels.clone(), pats, *continuation, *persist, peeks)
                .map_err(|e| e.kind().clone())
        }
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u32..4, 0i64..3, prop::bool::weighted(0.1)).prop_map(|(channel, value, persist)| {
            Op::Produce { channel, value, persist }
        }),
        2 => (
            prop::collection::vec((0u32..4, prop::option::weighted(0.5, 0i64..3)), 1..4),
            0u32..3,
            prop::bool::weighted(0.1),
            prop::bool::weighted(0.2),
        )
            .prop_map(|(cps, continuation, persist, peek_first)| Op::Consume {
                channels: cps.iter().map(|c| c.0).collect(),
                patterns: cps.iter().map(|c| c.1).collect(),
                continuation,
                persist,
                peek_first,
            }),
    ]
}

/// Plays `prefix` and checkpoints (the start), then plays `block` and checkpoints.
fn play(prefix: &[Op], block: &[Op]) -> (Digest, Vec<Outcome>, Digest, Vec<LogEvent>) {
    let s = space();
    for o in prefix {
        let _ = apply(&s, o);
    }
    let start = s.create_checkpoint().unwrap().root;
    let outcomes = block.iter().map(|o| apply(&s, o)).collect();
    let cp = s.create_checkpoint().unwrap();
    (start, outcomes, cp.root, cp.log)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Play then replay: the same calls fire the same COMMs, reach the same root, and leave
    /// nothing of the log unused.
    #[test]
    fn replay_reproduces_play(
        prefix in prop::collection::vec(op(), 0..12),
        block in prop::collection::vec(op(), 0..40),
    ) {
        let (start, outcomes, root, log) = play(&prefix, &block);
        // A fresh space whose history holds the start: play the prefix again there.
        let r = space();
        for o in &prefix {
            let _ = apply(&r, o);
        }
        prop_assert_eq!(r.create_checkpoint().unwrap().root, start);
        r.rig(&start, &log).unwrap();
        for (o, expected) in block.iter().zip(&outcomes) {
            prop_assert_eq!(&apply(&r, o), expected, "op {:?}", o);
        }
        let cp = r.create_checkpoint().unwrap();
        prop_assert_eq!(cp.root, root);
        prop_assert!(!r.is_replaying());
        // The replay's own log holds the same calls and COMMs.
        let mut a: Vec<String> = log.iter().map(|e| format!("{e:?}")).collect();
        let mut b: Vec<String> = cp.log.iter().map(|e| format!("{e:?}")).collect();
        a.sort();
        b.sort();
        prop_assert_eq!(a, b);
    }

    /// Dropping any one COMM from the log is detected: a call is refused with `CommNotInLog`
    /// (changing nothing) and the closing checkpoint reports unused events; or, where the
    /// shorter log is the faithful log of another execution of the same calls (the log chose
    /// another candidate; see `a_log_missing_a_comm_can_be_the_log_of_another_execution`),
    /// the replay follows that execution and ends at another root than play's, which is what
    /// a validator compares.
    #[test]
    fn a_removed_comm_is_detected(
        block in prop::collection::vec(op(), 1..30),
        pick in any::<prop::sample::Index>(),
    ) {
        let (start, _, root, log) = play(&[], &block);
        let comms: Vec<usize> = log
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e, LogEvent::Comm(_)))
            .map(|(i, _)| i)
            .collect();
        prop_assume!(!comms.is_empty());
        let mut tampered = log.clone();
        tampered.remove(comms[pick.index(comms.len())]);
        let r = space();
        r.rig(&start, &tampered).unwrap();
        let mut refused = 0;
        for o in &block {
            let before = contents(&r);
            if let Err(kind) = apply(&r, o) {
                prop_assert!(
                    matches!(kind, ErrorKind::Replay(_)),
                    "unexpected error {:?}", kind
                );
                prop_assert_eq!(contents(&r), before);
                refused += 1;
            }
        }
        let before = r.full_state_root();
        match r.create_checkpoint() {
            Err(CheckpointError::Replay(ReplayError::Unused { events, comms })) => {
                // A refused call stays unused.
                prop_assert!(events >= refused && events + comms > 0);
                prop_assert_eq!(r.full_state_root(), before);
                prop_assert!(r.is_replaying());
            }
            Ok(cp) => {
                prop_assert_eq!(refused, 0, "a refused call was not reported unused");
                prop_assert_ne!(cp.root, root, "a tampered log replayed to play's root");
            }
            Err(e) => prop_assert!(false, "unexpected {}", e),
        }
    }
}

/// The case the proptest above found: dropping one COMM can leave the faithful log of
/// another execution of the same calls. Play: a join of two data on channel 1 (peeking the
/// first) waits; 2 arrives there; a consume of the literal 0 waits; 0 arrives, both consumes
/// match and play fires the older, the join (2 peeked, 0 taken); a consume on channels 0 and
/// 1 takes 0 and the 2; a second 0 fires the literal consume. Dropping the join's COMM leaves
/// the log of the execution where the log chose the literal consume at the first 0 (identical
/// produces share a hash): the pair then takes 0 and 2 as before, and the second 0 stays,
/// since the join now lacks a second datum. The replay follows that execution without error,
/// ends at its root, not play's, and logs exactly the shortened log.
#[test]
fn a_log_missing_a_comm_can_be_the_log_of_another_execution() {
    let wild = |channels: Vec<u32>, peek_first: bool| Op::Consume {
        patterns: vec![None; channels.len()],
        channels,
        continuation: 0,
        persist: false,
        peek_first,
    };
    let put = |channel: u32, value: i64| Op::Produce {
        channel,
        value,
        persist: false,
    };
    let block = vec![
        put(0, 0),
        wild(vec![1, 1], true),
        put(1, 2),
        Op::Consume {
            channels: vec![1],
            patterns: vec![Some(0)],
            continuation: 0,
            persist: false,
            peek_first: false,
        },
        put(1, 0),
        wild(vec![0, 1], false),
        put(1, 0),
    ];
    let (start, outcomes, root, log) = play(&[], &block);
    // Play: the join fires at the first 0 (peeking 2), the pair takes 0 and 2, the literal
    // consume fires at the second 0.
    let fired: Vec<Option<Vec<u32>>> = outcomes
        .iter()
        .map(|o| o.as_ref().unwrap().as_ref().map(|c| c.channels.to_vec()))
        .collect();
    assert_eq!(
        fired,
        [
            None,
            None,
            None,
            None,
            Some(vec![1, 1]),
            Some(vec![0, 1]),
            Some(vec![1])
        ]
    );
    let join_comm = log
        .iter()
        .position(|e| matches!(e, LogEvent::Comm(c) if c.peeks == [0]))
        .expect("the join's COMM is logged");
    let mut tampered = log.clone();
    tampered.remove(join_comm);

    let r = space();
    r.rig(&start, &tampered).unwrap();
    let replayed: Vec<Option<Vec<u32>>> = block
        .iter()
        .map(|o| apply(&r, o).unwrap().map(|c| c.channels.to_vec()))
        .collect();
    // The first 0 fires the literal consume; the pair takes 0 and 2; the second 0 stays.
    assert_eq!(
        replayed,
        [
            None,
            None,
            None,
            None,
            Some(vec![1]),
            Some(vec![0, 1]),
            None
        ]
    );
    let cp = r.create_checkpoint().unwrap();
    assert_ne!(cp.root, root);
    let sorted = |l: &[LogEvent]| {
        let mut v: Vec<String> = l.iter().map(|e| format!("{e:?}")).collect();
        v.sort();
        v
    };
    assert_eq!(sorted(&cp.log), sorted(&tampered));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// A block played on one shard count replays on any other (a replay's per-shard cursors
    /// into the log then follow another order and resync), and a stretch of the replay that
    /// is reverted to a soft checkpoint and made again (cursors left past it) replays the
    /// same: the same results, root and log.
    #[test]
    fn replay_on_another_shard_count_and_after_a_revert_reproduces_play(
        block in prop::collection::vec(op(), 0..40),
        play_shards in prop::sample::select(vec![1usize, 2, 8, 32]),
        replay_shards in prop::sample::select(vec![1usize, 2, 8, 32, 64]),
        cut in any::<prop::sample::Index>(),
    ) {
        let p: S = Space::with_shards(StructuralMatch, config(), play_shards);
        let outcomes: Vec<Outcome> = block.iter().map(|o| apply(&p, o)).collect();
        let played = p.create_checkpoint().unwrap();
        let r: S = Space::with_shards(StructuralMatch, config(), replay_shards);
        r.rig(&EMPTY_ROOT, &played.log).unwrap();
        let cut = cut.index(block.len() + 1);
        for (o, expected) in block[..cut].iter().zip(&outcomes) {
            prop_assert_eq!(&apply(&r, o), expected, "op {:?}", o);
        }
        let cp = r.create_soft_checkpoint();
        for _ in 0..2 {
            r.revert_to_soft_checkpoint(&cp).unwrap();
            for (o, expected) in block[cut..].iter().zip(&outcomes[cut..]) {
                prop_assert_eq!(&apply(&r, o), expected, "op {:?}", o);
            }
        }
        let cp = r.create_checkpoint().unwrap();
        prop_assert_eq!(cp.root, played.root);
        let mut a: Vec<String> = played.log.iter().map(|e| format!("{e:?}")).collect();
        let mut b: Vec<String> = cp.log.iter().map(|e| format!("{e:?}")).collect();
        a.sort();
        b.sort();
        prop_assert_eq!(a, b);
    }
}

/// Play: data 1 then 2 on a Bag channel, then a wildcard consume takes 1 (the oldest).
/// Replay with the produces in the other order: the candidate order says 2, the log says 1.
#[test]
fn the_log_decides_among_matching_data() {
    let p = space();
    p.produce(0, int(1), false).unwrap();
    p.produce(0, int(2), false).unwrap();
    let comm = p
        .consume([0], [Pattern::wildcard()], 9, false, &[])
        .unwrap()
        .unwrap();
    assert_eq!(comm.matches[0].datum, int(1));
    let block = p.create_checkpoint().unwrap();

    // Unguided, the other order takes 2.
    let u = space();
    u.produce(0, int(2), false).unwrap();
    u.produce(0, int(1), false).unwrap();
    let other = u
        .consume([0], [Pattern::wildcard()], 9, false, &[])
        .unwrap();
    assert_eq!(other.unwrap().matches[0].datum, int(2));

    let r = space();
    r.rig(&EMPTY_ROOT, &block.log).unwrap();
    r.produce(0, int(2), false).unwrap();
    r.produce(0, int(1), false).unwrap();
    let comm = r
        .consume([0], [Pattern::wildcard()], 9, false, &[])
        .unwrap()
        .unwrap();
    assert_eq!(comm.matches[0].datum, int(1));
    assert_eq!(r.create_checkpoint().unwrap().root, block.root);
}

/// Play: two continuations wait on a channel; a produce fires the first. Replay stores them in
/// the other order: the log makes the produce fire the same one.
#[test]
fn the_log_decides_among_waiting_continuations() {
    let p = space();
    p.consume([1], [Pattern::wildcard()], 10, false, &[])
        .unwrap();
    p.consume([1], [Pattern::wildcard()], 20, false, &[])
        .unwrap();
    let comm = p.produce(1, int(5), false).unwrap().unwrap();
    assert_eq!(comm.continuation, 10);
    let block = p.create_checkpoint().unwrap();

    let r = space();
    r.rig(&EMPTY_ROOT, &block.log).unwrap();
    r.consume([1], [Pattern::wildcard()], 20, false, &[])
        .unwrap();
    r.consume([1], [Pattern::wildcard()], 10, false, &[])
        .unwrap();
    let comm = r.produce(1, int(5), false).unwrap().unwrap();
    assert_eq!(comm.continuation, 10);
    assert_eq!(r.continuations(&[1])[0].continuation, 20);
    assert_eq!(r.create_checkpoint().unwrap().root, block.root);
}

/// A join across channels, with a repeated channel and a peek, replays to the same root.
#[test]
fn joins_with_repeats_and_peeks_replay() {
    let calls = |s: &S| {
        s.produce(0, int(1), false).unwrap();
        s.produce(0, int(2), false).unwrap();
        s.produce(2, int(7), true).unwrap();
        s.consume(
            [0, 0, 2],
            [
                Pattern::wildcard(),
                Pattern::wildcard(),
                Pattern::lit(int(7)),
            ],
            3,
            false,
            &[2],
        )
        .unwrap()
    };
    let p = space();
    let played = calls(&p);
    let block = p.create_checkpoint().unwrap();
    let r = space();
    r.rig(&EMPTY_ROOT, &block.log).unwrap();
    assert_eq!(calls(&r), played);
    assert_eq!(r.create_checkpoint().unwrap().root, block.root);
}

#[test]
fn a_call_not_in_the_log_is_refused_and_changes_nothing() {
    let p = space();
    p.produce(0, int(1), false).unwrap();
    let block = p.create_checkpoint().unwrap();
    let r = space();
    r.rig(&EMPTY_ROOT, &block.log).unwrap();
    // A changed datum: its hash is not in the log.
    let err = r.produce(0, int(2), false).unwrap_err();
    assert_eq!(
        err.kind(),
        &ErrorKind::Replay(ReplayError::EventNotInLog {
            hash: produce_hash(&0u32, &int(2), false)
        })
    );
    assert_eq!(err.into_inner(), int(2));
    assert!(r.is_empty());
    // A changed continuation.
    let err = r
        .consume([0], [Pattern::wildcard()], 1, false, &[])
        .unwrap_err();
    assert!(matches!(
        err.kind(),
        ErrorKind::Replay(ReplayError::EventNotInLog { .. })
    ));
    assert!(r.is_empty());
    // The logged call goes through; a second identical one is one too many.
    r.produce(0, int(1), false).unwrap();
    let err = r.produce(0, int(1), false).unwrap_err();
    assert!(matches!(
        err.kind(),
        ErrorKind::Replay(ReplayError::EventNotInLog { .. })
    ));
    assert_eq!(r.data(&0).len(), 1);
    assert_eq!(r.create_checkpoint().unwrap().root, block.root);
}

/// The log with a datum changed inside a COMM: the consume that fired it in play now finds
/// no logged COMM for the assignment it meets.
#[test]
fn a_changed_datum_in_a_comm_is_detected() {
    let p = space();
    p.produce(0, int(1), false).unwrap();
    p.consume([0], [Pattern::wildcard()], 4, false, &[])
        .unwrap()
        .unwrap();
    let mut log = p.create_checkpoint().unwrap().log;
    for e in log.iter_mut() {
        if let LogEvent::Comm(CommRecord { produces, .. }) = e {
            produces[0] = produce_hash(&0u32, &int(2), false);
        }
    }
    let r = space();
    r.rig(&EMPTY_ROOT, &log).unwrap();
    r.produce(0, int(1), false).unwrap();
    let before = contents(&r);
    let err = r
        .consume([0], [Pattern::wildcard()], 4, false, &[])
        .unwrap_err();
    assert!(matches!(
        err.kind(),
        ErrorKind::Replay(ReplayError::CommNotInLog { .. })
    ));
    assert_eq!(err.into_inner(), 4);
    assert_eq!(contents(&r), before);
}

/// Play: a datum, a consume that takes it, then a second consume that waits. Replayed with
/// the two consumes swapped, the second one would take the datum: no such COMM is logged.
#[test]
fn reordered_calls_are_detected() {
    let p = space();
    p.produce(0, int(1), false).unwrap();
    assert!(p
        .consume([0], [Pattern::wildcard()], 1, false, &[])
        .unwrap()
        .is_some());
    assert!(p
        .consume([0], [Pattern::wildcard()], 2, false, &[])
        .unwrap()
        .is_none());
    let block = p.create_checkpoint().unwrap();

    let r = space();
    r.rig(&EMPTY_ROOT, &block.log).unwrap();
    r.produce(0, int(1), false).unwrap();
    let before = contents(&r);
    let err = r
        .consume([0], [Pattern::wildcard()], 2, false, &[])
        .unwrap_err();
    assert!(matches!(
        err.kind(),
        ErrorKind::Replay(ReplayError::CommNotInLog { .. })
    ));
    assert_eq!(contents(&r), before);
    // In the played order it goes through.
    r.consume([0], [Pattern::wildcard()], 1, false, &[])
        .unwrap()
        .unwrap();
    r.consume([0], [Pattern::wildcard()], 2, false, &[])
        .unwrap();
    assert_eq!(r.create_checkpoint().unwrap().root, block.root);
}

#[test]
fn unused_comms_and_calls_fail_the_checkpoint_and_change_nothing() {
    let p = space();
    p.produce(0, int(1), false).unwrap();
    p.consume([0], [Pattern::wildcard()], 4, false, &[])
        .unwrap();
    p.produce(1, int(3), false).unwrap();
    let block = p.create_checkpoint().unwrap();

    let r = space();
    r.rig(&EMPTY_ROOT, &block.log).unwrap();
    r.produce(0, int(1), false).unwrap();
    let root_before = r.full_state_root();
    let text_before = contents(&r);
    match r.create_checkpoint() {
        Err(CheckpointError::Replay(ReplayError::Unused { events, comms })) => {
            assert_eq!((events, comms), (2, 1));
        }
        other => panic!("expected Unused, got {other:?}"),
    }
    assert_eq!(r.full_state_root(), root_before);
    assert_eq!(contents(&r), text_before);
    assert!(r.is_replaying());
    // Finishing the block makes the checkpoint go through, with the played root.
    r.consume([0], [Pattern::wildcard()], 4, false, &[])
        .unwrap()
        .unwrap();
    r.produce(1, int(3), false).unwrap();
    assert_eq!(r.create_checkpoint().unwrap().root, block.root);
    assert!(!r.is_replaying());
    // Back in play: any call goes.
    r.produce(2, int(9), false).unwrap();
}

#[test]
fn a_malformed_log_is_refused_at_rig_and_changes_nothing() {
    let p = space();
    p.produce(0, int(1), false).unwrap();
    p.produce(0, int(1), false).unwrap();
    let mut log = p.create_checkpoint().unwrap().log;
    log.swap(0, 1); // counters 1, 0: not a log a space writes
    let r = space();
    r.produce(3, int(5), false).unwrap();
    let before = contents(&r);
    match r.rig(&EMPTY_ROOT, &log) {
        Err(CheckpointError::Replay(ReplayError::BadCounter {
            counter: 1,
            expected: 0,
            ..
        })) => {}
        other => panic!("expected BadCounter, got {other:?}"),
    }
    assert_eq!(contents(&r), before);
    assert!(!r.is_replaying());
    // An unknown start root: typed error, nothing changes, not rigged.
    assert!(matches!(
        r.rig(&[7; 32], &[]),
        Err(CheckpointError::UnknownRoot(_))
    ));
    assert_eq!(contents(&r), before);
    assert!(!r.is_replaying());
}

/// A soft checkpoint taken during a replay brings back what the replay still expected, so a
/// reverted-and-retried stretch replays again.
#[test]
fn soft_revert_during_replay_restores_the_expectations() {
    let p = space();
    p.produce(0, int(1), false).unwrap();
    p.consume([0], [Pattern::wildcard()], 4, false, &[])
        .unwrap();
    let block = p.create_checkpoint().unwrap();

    let r = space();
    r.rig(&EMPTY_ROOT, &block.log).unwrap();
    let cp = r.create_soft_checkpoint();
    r.produce(0, int(1), false).unwrap();
    r.consume([0], [Pattern::wildcard()], 4, false, &[])
        .unwrap()
        .unwrap();
    r.revert_to_soft_checkpoint(&cp).unwrap();
    assert!(r.is_empty());
    r.produce(0, int(1), false).unwrap();
    r.consume([0], [Pattern::wildcard()], 4, false, &[])
        .unwrap()
        .unwrap();
    assert_eq!(r.create_checkpoint().unwrap().root, block.root);
}

#[test]
fn reset_and_clear_end_a_replay() {
    let p = space();
    p.produce(0, int(1), false).unwrap();
    let block = p.create_checkpoint().unwrap();
    let r = space();
    r.rig(&EMPTY_ROOT, &block.log).unwrap();
    r.clear();
    assert!(!r.is_replaying());
    r.produce(5, int(5), false).unwrap();
    r.rig(&EMPTY_ROOT, &block.log).unwrap();
    assert!(r.is_empty());
    r.reset(&EMPTY_ROOT).unwrap();
    assert!(!r.is_replaying());
}

/// A replay that starts from a non-empty root recorded by another space on a shared store.
#[test]
fn replay_from_a_recorded_root_on_another_space() {
    use std::sync::Arc;
    let store = Arc::new(rhospace_spaces::MemoryHistory::new());
    let p: S = Space::new(StructuralMatch, config()).with_history(store.clone());
    p.produce(0, int(1), false).unwrap();
    p.consume([2], [Pattern::lit(int(4))], 8, false, &[])
        .unwrap();
    let start = p.create_checkpoint().unwrap().root;
    p.produce(2, int(4), false).unwrap().unwrap();
    p.consume([0], [Pattern::wildcard()], 9, false, &[])
        .unwrap()
        .unwrap();
    let block = p.create_checkpoint().unwrap();

    let r: S = Space::new(StructuralMatch, config()).with_history(store);
    r.rig(&start, &block.log).unwrap();
    assert_eq!(r.data(&0).len(), 1);
    r.produce(2, int(4), false).unwrap().unwrap();
    r.consume([0], [Pattern::wildcard()], 9, false, &[])
        .unwrap()
        .unwrap();
    assert_eq!(r.create_checkpoint().unwrap().root, block.root);
}

/// A soft checkpoint taken during another space's replay is not "the same replay": reverting
/// to it brings that space's state, but must leave this replay's expectations (its own log)
/// alone, whatever the two rigs' numbers.
#[test]
fn a_soft_checkpoint_of_another_spaces_replay_keeps_this_replays_log() {
    let block_of = |channel: u32, n: i64| {
        let p = space();
        p.produce(channel, int(n), false).unwrap();
        p.create_checkpoint().unwrap()
    };
    let a_block = block_of(0, 1);
    let b_block = block_of(2, 9);

    let a = space();
    a.rig(&EMPTY_ROOT, &a_block.log).unwrap(); // a's first rig
    let a_cp = a.create_soft_checkpoint();

    let b = space();
    b.rig(&EMPTY_ROOT, &b_block.log).unwrap(); // b's first rig: the same number as a's
    b.revert_to_soft_checkpoint(&a_cp).unwrap(); // a's (empty) state, taken mid-replay of a's log
                                                 // Not in b's log: refused, nothing changes.
    let err = b.produce(0, int(1), false).unwrap_err();
    assert!(matches!(
        err.kind(),
        ErrorKind::Replay(ReplayError::EventNotInLog { .. })
    ));
    assert!(b.is_empty());
    // b's own log still replays faithfully.
    b.produce(2, int(9), false).unwrap();
    assert_eq!(b.create_checkpoint().unwrap().root, b_block.root);
}

/// A produce's hash covers its priority (found by review: it did not, and a replay took a
/// PriorityQueue produce made with another priority, ending at another root, or, once two
/// identical consumes had taken the data in the other order, at play's root with other
/// COMMs). Now the replay refuses it and nothing changes; with play's priorities the replay
/// fires play's COMMs, uses the whole log and ends at play's root.
#[test]
fn a_replay_refuses_a_produce_with_another_priority() {
    let cfg = || SpaceConfig::new().channel_kind(1, DataKind::PriorityQueue);
    let take = |s: &S| {
        let c = s.consume([1], [Pattern::wildcard()], 9, false, &[]);
        c.unwrap().unwrap().matches[0].datum.clone()
    };
    let play: S = Space::new(StructuralMatch, cfg());
    let start = play.create_checkpoint().unwrap().root;
    play.produce_with_priority(1, int(7), false, 2).unwrap();
    play.produce_with_priority(1, int(8), false, 1).unwrap();
    let played = [take(&play), take(&play)];
    assert_eq!(played, [int(7), int(8)]);
    let block = play.create_checkpoint().unwrap();

    let replay: S = Space::new(StructuralMatch, cfg());
    replay.rig(&start, &block.log).unwrap();
    for wrong in [1, 0, 5] {
        let root = replay.full_state_root();
        let e = replay
            .produce_with_priority(1, int(7), false, wrong)
            .unwrap_err();
        assert!(
            matches!(
                e.kind(),
                ErrorKind::Replay(ReplayError::EventNotInLog { .. })
            ),
            "priority {wrong}: {e:?}"
        );
        assert_eq!(replay.full_state_root(), root);
    }
    replay.produce_with_priority(1, int(7), false, 2).unwrap();
    replay.produce_with_priority(1, int(8), false, 1).unwrap();
    assert_eq!([take(&replay), take(&replay)], played);
    assert_eq!(replay.create_checkpoint().unwrap().root, block.root);
}

/// A PriorityQueue datum with a priority in every kind of COMM, played and replayed: a produce
/// that fires a join (the produced datum and a stored one, both with priorities), a consume
/// that fires at once, a peek and a persistent datum. The replay's COMM records must name the
/// same produce hashes play's log did (priorities included), or it is refused; it uses the
/// whole log and ends at play's root.
#[test]
fn priorities_replay_through_every_kind_of_comm() {
    let cfg = || {
        SpaceConfig::new()
            .channel_kind(1, DataKind::PriorityQueue)
            .channel_kind(2, DataKind::PriorityQueue)
    };
    let calls = |s: &S| {
        let any = || Pattern::wildcard();
        s.produce_with_priority(1, int(1), false, 3).unwrap();
        s.produce_with_priority(1, int(2), true, -4).unwrap();
        // Waits on both channels; fired by the produce on 2, taking 1's best (priority 3).
        assert!(s
            .consume([1, 2], [any(), any()], 5, false, &[])
            .unwrap()
            .is_none());
        let c = s
            .produce_with_priority(2, int(3), false, 7)
            .unwrap()
            .unwrap();
        assert_eq!(c.matches.len(), 2);
        // Fires at once on the persistent datum (priority -4), peeking.
        s.consume([1], [any()], 6, false, &[0]).unwrap().unwrap();
        s.produce_with_priority(2, int(4), false, 9).unwrap();
        s.consume([2, 1], [any(), any()], 7, false, &[])
            .unwrap()
            .unwrap();
    };
    let play: S = Space::new(StructuralMatch, cfg());
    let start = play.create_checkpoint().unwrap().root;
    calls(&play);
    let block = play.create_checkpoint().unwrap();
    let replay: S = Space::new(StructuralMatch, cfg());
    replay.rig(&start, &block.log).unwrap();
    calls(&replay);
    let end = replay.create_checkpoint().unwrap();
    assert_eq!(end.root, block.root);
    assert_eq!(end.log, block.log);
}
