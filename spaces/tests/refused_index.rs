//! A refused call leaves no exact index behind (SPEC §5, §7, §8).
//!
//! A search builds a channel's exact index (see `DataStore`) before the call's gate, or a
//! replay's log, has decided on it. A refused call must change nothing, and the index decides
//! `examined`, the matching work later calls are charged for: each test runs the same calls
//! with a refused one and without it, and the later calls must report the same `examined`.
//!
//! The shape of every test: channel 1 holds 16 data (the index threshold) and channel 2 the
//! datum 100. The refused call is a join on both, whose search builds channel 1's index. Eight
//! one-channel consumes then take data 0..8 in arrival order (no index needed: the oldest datum
//! answers each), leaving 8 data, below the threshold. A last join for 15 on channel 1 is
//! measured: with a leftover index it finds 15 at once; without, it scans channel 1.

use rhospace_matchers::ExactMatch;
use rhospace_phlogiston::OutOfPhlogiston;
use rhospace_spaces::merkle::EMPTY_ROOT;
use rhospace_spaces::{Admission, ErrorKind, LogEvent, ReplayError, Space, SpaceConfig};

type S = Space<u32, u32, u32, u32, ExactMatch>;

fn space() -> S {
    Space::new(ExactMatch, SpaceConfig::new())
}

/// A gate that refuses every call.
fn refuse(_: &Admission<'_, u32, u32, u32, u32>) -> Result<(), OutOfPhlogiston> {
    Err(OutOfPhlogiston {
        requested: 1,
        remaining: 0,
    })
}

/// Channel 1 holds data 0..16, channel 2 the datum 100.
fn fill(s: &S) {
    for i in 0..16u32 {
        s.produce(1, i, false).unwrap();
    }
    s.produce(2, 100, false).unwrap();
}

/// Takes data 0..8 from channel 1 with one-channel exact consumes, oldest first.
fn take_eight(s: &S) {
    for i in 0..8u32 {
        s.consume([1u32], [i], 0, false, &[]).unwrap().unwrap();
    }
}

/// The `examined` of a join on channels 1 and 2 for 15 and 100, which fires.
fn join_examined(s: &S) -> u64 {
    let mut examined = None;
    s.consume_admitted([1u32, 2], [15u32, 100], 9, false, &[], |a| {
        examined = Some(a.examined);
        Ok(())
    })
    .unwrap()
    .unwrap();
    examined.unwrap()
}

#[test]
fn refused_consume_changes_later_charges() {
    let run = |refuse_first: bool| {
        let s = space();
        fill(&s);
        if refuse_first {
            let r = s.consume_admitted([1u32, 2], [15u32, 100], 9, false, &[], refuse);
            assert!(r.is_err());
        }
        take_eight(&s);
        join_examined(&s)
    };
    assert_eq!(
        run(true),
        run(false),
        "matching work charged differs after a refused call"
    );
    // Without an index the last join scans the 8 data left (15 is the last) and checks 100.
    assert_eq!(run(false), 9);
}

/// A refused one-channel consume (the single-channel fast path) whose key the oldest datum
/// does not answer builds the index too.
#[test]
fn refused_single_channel_consume_changes_nothing() {
    let run = |refuse_first: bool| {
        let s = space();
        fill(&s);
        if refuse_first {
            let r = s.consume_admitted([1u32], [15u32], 9, false, &[], refuse);
            assert!(r.is_err());
        }
        take_eight(&s);
        (join_examined(&s), s.create_checkpoint().unwrap())
    };
    assert_eq!(run(true), run(false));
}

/// A produce of 100 on channel 2 refused, or not, after `wait` leaves a join on channels 2
/// and 1 for 100 and 15 (before channel 1 has data) and channel 1 gets 16 data: the refused
/// produce would fire the join, and its search builds channel 1's index. Asserts that the
/// later calls are charged, and end at the root and log, as if it never happened.
fn refused_produce_leaves_no_trace(wait: impl Fn(&S)) {
    let run = |refuse_first: bool| {
        let s = space();
        wait(&s);
        for i in 0..16u32 {
            assert!(s.produce(1, i, false).unwrap().is_none());
        }
        if refuse_first {
            let r = s.produce_admitted(2, 100, false, 0, refuse);
            assert!(matches!(
                r.unwrap_err().kind(),
                ErrorKind::OutOfPhlogiston(_)
            ));
        }
        take_eight(&s);
        let mut examined = None;
        let comm = s
            .produce_admitted(2, 100, false, 0, |a| {
                examined = Some(a.examined);
                Ok(())
            })
            .unwrap()
            .unwrap();
        assert_eq!(comm.continuation, 9);
        (examined.unwrap(), s.create_checkpoint().unwrap())
    };
    let (with, without) = (run(true), run(false));
    assert_eq!(
        with.0, without.0,
        "matching work charged differs after a refused produce"
    );
    assert_eq!(with.1, without.1, "state root and log");
}

/// The produce side: a produce's search builds the index of the big channels its join
/// groups read by an exact key (`index_partners`).
#[test]
fn refused_produce_changes_later_charges() {
    refused_produce_leaves_no_trace(|s| {
        let r = s.consume([2u32, 1], [100u32, 15], 9, false, &[]);
        assert!(r.unwrap().is_none());
    });
}

/// The same with an installed join: a produce's search builds the index of the big channels
/// its installed continuations read by an exact key, and a refusal drops it.
#[test]
fn refused_produce_meeting_an_installed_join_changes_later_charges() {
    refused_produce_leaves_no_trace(|s| s.install([2u32, 1], [100u32, 15], 9).unwrap());
}

/// An install refused because stored data already meet its patterns searched first, and
/// built the index.
#[test]
fn refused_install_changes_later_charges() {
    let run = |refuse_first: bool| {
        let s = space();
        fill(&s);
        if refuse_first {
            let r = s.install([1u32, 2], [15u32, 100], 9);
            assert_eq!(r.unwrap_err().kind(), &ErrorKind::InstallWouldMatch);
        }
        take_eight(&s);
        join_examined(&s)
    };
    assert_eq!(run(true), run(false));
}

/// Replay (SPEC §7): a call refused with `CommNotInLog` after its search built the index must
/// not change what later replayed calls are charged, or a validator's replay charges
/// otherwise than play. Play stores a persistent 100 on channel 2 only after the join fired;
/// the replay produces it first, so the join's search finds it, whose COMM the log lacks.
#[test]
fn replay_refused_with_comm_not_in_log_changes_later_charges() {
    let play = space();
    fill(&play);
    take_eight(&play);
    join_examined(&play);
    play.produce(2, 100, true).unwrap();
    let block = play.create_checkpoint().unwrap();
    assert!(block.log.iter().any(|e| matches!(e, LogEvent::Comm(_))));

    let run = |refuse_first: bool| {
        let s = space();
        s.rig(&EMPTY_ROOT, &block.log).unwrap();
        for i in 0..16u32 {
            s.produce(1, i, false).unwrap();
        }
        s.produce(2, 100, true).unwrap();
        if refuse_first {
            let r = s.consume_admitted([1u32, 2], [15u32, 100], 9, false, &[], |_| Ok(()));
            assert!(matches!(
                r.unwrap_err().kind(),
                ErrorKind::Replay(ReplayError::CommNotInLog { .. })
            ));
        }
        s.produce(2, 100, false).unwrap();
        take_eight(&s);
        // The join meets the persistent 100 first (the log rejects it), then the logged one.
        let examined = join_examined(&s);
        let end = s.create_checkpoint().unwrap();
        assert!(!s.is_replaying());
        (examined, end.root)
    };
    let (with, without) = (run(true), run(false));
    assert_eq!(
        with.0, without.0,
        "replay charges differ after a refused call"
    );
    assert_eq!(with.1, block.root);
    assert_eq!(without.1, block.root);
}

/// The same through the one-channel fast path: play takes the non-persistent 15 and stores a
/// persistent 15 afterwards; the replay stores the persistent one first, so a consume of 15
/// (whose walk builds channel 1's index, 16 data) meets only it, and is refused.
#[test]
fn replay_refused_single_channel_consume_changes_later_charges() {
    let consume_15 = |s: &S| {
        let mut examined = None;
        let out = s.consume_admitted([1u32], [15u32], 9, false, &[], |a| {
            examined = Some(a.examined);
            Ok(())
        });
        (out, examined)
    };
    let play = space();
    for i in 0..16u32 {
        play.produce(1, i, false).unwrap();
    }
    take_eight(&play);
    assert!(consume_15(&play).0.unwrap().is_some());
    play.produce(1, 15, true).unwrap();
    let block = play.create_checkpoint().unwrap();

    let run = |refuse_first: bool| {
        let s = space();
        s.rig(&EMPTY_ROOT, &block.log).unwrap();
        for i in 0..15u32 {
            s.produce(1, i, false).unwrap();
        }
        s.produce(1, 15, true).unwrap();
        if refuse_first {
            let (r, examined) = consume_15(&s);
            assert!(matches!(
                r.unwrap_err().kind(),
                ErrorKind::Replay(ReplayError::CommNotInLog { .. })
            ));
            assert_eq!(examined, None, "the gate is not asked");
        }
        s.produce(1, 15, false).unwrap();
        take_eight(&s);
        // The walk meets the persistent 15 first (the log rejects it), then the logged one.
        let (out, examined) = consume_15(&s);
        assert!(out.unwrap().is_some());
        let end = s.create_checkpoint().unwrap();
        assert!(!s.is_replaying());
        (examined.unwrap(), end.root)
    };
    let (with, without) = (run(true), run(false));
    assert_eq!(
        with.0, without.0,
        "replay charges differ after a refused call"
    );
    // Data 8..15 and the persistent 15, scanned oldest first (no index below 16 data).
    assert_eq!(without.0, 9);
    assert_eq!(with.1, block.root);
    assert_eq!(without.1, block.root);
}

/// The produce side of a replay: a produce whose search builds its join partner's index
/// (`index_partners`) and meets only a datum whose COMM the log lacks.
#[test]
fn replay_refused_produce_changes_later_charges() {
    // A join waits on 100 at channel 2 and 15 at channel 1, before channel 1 has data.
    let wait = |s: &S| {
        assert!(s
            .consume([2u32, 1], [100u32, 15], 9, false, &[])
            .unwrap()
            .is_none());
    };
    let produce_100 = |s: &S| {
        let mut examined = None;
        let out = s.produce_admitted(2, 100, false, 0, |a| {
            examined = Some(a.examined);
            Ok(())
        });
        (out, examined)
    };
    let play = space();
    wait(&play);
    for i in 0..16u32 {
        play.produce(1, i, false).unwrap();
    }
    take_eight(&play);
    assert!(produce_100(&play).0.unwrap().is_some());
    play.produce(1, 15, true).unwrap();
    let block = play.create_checkpoint().unwrap();

    let run = |refuse_first: bool| {
        let s = space();
        s.rig(&EMPTY_ROOT, &block.log).unwrap();
        wait(&s);
        for i in 0..15u32 {
            s.produce(1, i, false).unwrap();
        }
        // The 16th datum on channel 1: the join's partner is big enough to index.
        s.produce(1, 15, true).unwrap();
        if refuse_first {
            let (r, examined) = produce_100(&s);
            assert!(matches!(
                r.unwrap_err().kind(),
                ErrorKind::Replay(ReplayError::CommNotInLog { .. })
            ));
            assert_eq!(examined, None, "the gate is not asked");
        }
        take_eight(&s);
        s.produce(1, 15, false).unwrap();
        let (out, examined) = produce_100(&s);
        assert_eq!(out.unwrap().unwrap().continuation, 9);
        let end = s.create_checkpoint().unwrap();
        assert!(!s.is_replaying());
        (examined.unwrap(), end.root)
    };
    let (with, without) = (run(true), run(false));
    assert_eq!(
        with.0, without.0,
        "replay charges differ after a refused produce"
    );
    assert_eq!(with.1, block.root);
    assert_eq!(without.1, block.root);
}
