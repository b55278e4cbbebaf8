//! SPEC §1–§5 scenarios against the core space: joins in every arrival order, repeated
//! channels, persistence and the re-issue contract, peeks, install, every collection kind's
//! selection rule, complete join matching, every error with the state checked unchanged, and
//! soft checkpoints (§6).

mod common;

use std::sync::Arc;

use common::{result_of, Pred, PredMatch};
use rhospace_matchers::ExactMatch;
use rhospace_spaces::{
    Comm, ContKind, DataKind, ErrorKind, Space, SpaceConfig, StoredDatum, WaitingContinuation,
    MAX_JOIN,
};

type Ch = &'static str;
type ES = Space<Ch, i64, i64, &'static str, ExactMatch>;
type PS = Space<Ch, Pred, i64, &'static str, PredMatch>;
type PComm = Comm<Ch, Pred, i64, &'static str, i64>;

use Pred::{Any, Even, Gt, Odd};

fn exact() -> ES {
    Space::new(ExactMatch, SpaceConfig::new())
}

fn preds() -> PS {
    Space::new(PredMatch, SpaceConfig::new())
}

fn preds_with(config: SpaceConfig<Ch>) -> PS {
    Space::new(PredMatch, config)
}

fn eq(n: i64) -> Pred {
    Pred::Eq(n)
}

fn values<P: Clone + Eq + Sync, K: Clone + Eq, M: rhospace_matchers::Match<P, i64>>(
    s: &Space<Ch, P, i64, K, M>,
    c: Ch,
) -> Vec<i64> {
    s.data(&c).iter().map(|d| d.value).collect()
}

fn matched<C, P, K, R>(comm: &Comm<C, P, i64, K, R>) -> Vec<i64> {
    comm.matches.iter().map(|m| m.datum).collect()
}

fn conts<P: Clone + Eq + Sync, K: Clone + Eq, M: rhospace_matchers::Match<P, i64>>(
    s: &Space<Ch, P, i64, K, M>,
    list: &[Ch],
) -> Vec<K> {
    s.continuations(list)
        .into_iter()
        .map(|w| w.continuation)
        .collect()
}

/// Every observable view over the given channels and channel lists.
#[derive(Debug, PartialEq)]
struct Views<C, P, K> {
    data: Vec<Vec<StoredDatum<i64>>>,
    conts: Vec<Vec<WaitingContinuation<P, K>>>,
    joins: Vec<Vec<Arc<[C]>>>,
    empty: bool,
    count: usize,
}

fn views<C, P, K, M>(s: &Space<C, P, i64, K, M>, chans: &[C], lists: &[Vec<C>]) -> Views<C, P, K>
where
    C: Clone + Eq + std::hash::Hash,
    P: Clone + Eq + Sync,
    K: Clone + Eq,
    M: rhospace_matchers::Match<P, i64>,
{
    Views {
        data: chans.iter().map(|c| s.data(c)).collect(),
        conts: lists.iter().map(|l| s.continuations(l)).collect(),
        joins: chans.iter().map(|c| s.joins(c)).collect(),
        empty: s.is_empty(),
        count: s.channel_count(),
    }
}

// ---------------------------------------------------------------------------------------------
// §1 Operations and joins
// ---------------------------------------------------------------------------------------------

#[test]
fn single_channel_either_order() {
    let s = exact();
    assert!(s.produce("a", 1, false).unwrap().is_none());
    assert_eq!(values(&s, "a"), vec![1]);
    let comm = s.consume(["a"], [1], "k", false, &[]).unwrap().unwrap();
    assert_eq!(comm.continuation, "k");
    assert_eq!(&*comm.channels, &["a"]);
    assert_eq!(&*comm.patterns, &[1]);
    assert_eq!(matched(&comm), vec![1]);
    assert!(!comm.persistent && !comm.reissue && !comm.matches[0].persistent);
    assert!(s.is_empty());

    assert!(s.consume(["a"], [2], "k2", false, &[]).unwrap().is_none());
    assert_eq!(conts(&s, &["a"]), vec!["k2"]);
    assert_eq!(s.joins(&"a").len(), 1);
    // A datum the pattern rejects is stored beside the waiting continuation.
    assert!(s.produce("a", 3, false).unwrap().is_none());
    let comm = s.produce("a", 2, false).unwrap().unwrap();
    assert_eq!(comm.continuation, "k2");
    assert_eq!(matched(&comm), vec![2]);
    assert!(!comm.reissue);
    assert_eq!(values(&s, "a"), vec![3]);
    assert!(conts(&s, &["a"]).is_empty());
    assert!(s.joins(&"a").is_empty());
}

#[test]
fn two_channel_join_both_orders() {
    for first_a in [true, false] {
        let s = exact();
        assert!(s
            .consume(["a", "b"], [1, 2], "k", false, &[])
            .unwrap()
            .is_none());
        assert_eq!(s.joins(&"a").len(), 1);
        assert_eq!(s.joins(&"b").len(), 1);
        let (c1, d1, c2, d2) = if first_a {
            ("a", 1, "b", 2)
        } else {
            ("b", 2, "a", 1)
        };
        assert!(s.produce(c1, d1, false).unwrap().is_none());
        let comm = s.produce(c2, d2, false).unwrap().expect("join fires");
        assert_eq!(&*comm.channels, &["a", "b"]);
        assert_eq!(matched(&comm), vec![1, 2], "matches in the consume's order");
        assert!(s.is_empty());
        assert_eq!(s.channel_count(), 0);
    }
}

/// All 24 orders of three produces and the consume: the COMM fires exactly on the last
/// arrival, with matches in the consume's order, and leaves nothing behind.
#[test]
fn three_way_join_every_arrival_order() {
    #[derive(Clone, Copy, Debug)]
    enum Ev {
        P(Ch, i64),
        C,
    }
    let events = [Ev::P("a", 10), Ev::P("b", 20), Ev::P("c", 30), Ev::C];
    let mut orders = Vec::new();
    permutations(&mut events.to_vec(), 0, &mut orders);
    assert_eq!(orders.len(), 24);
    for order in orders {
        let s = preds();
        let comm = fires_on_the_last(&order, |ev| match *ev {
            Ev::P(c, d) => s.produce(c, d, false).unwrap(),
            Ev::C => s
                .consume(["a", "b", "c"], [Gt(5), Gt(15), Gt(25)], "abc", false, &[])
                .unwrap(),
        });
        assert_eq!(comm.continuation, "abc");
        assert_eq!(matched(&comm), vec![10, 20, 30], "{order:?}");
        let results: Vec<i64> = comm.matches.iter().map(|m| m.result).collect();
        assert_eq!(results, vec![103, 203, 303], "matcher results reported");
        assert!(!comm.reissue);
        assert!(s.is_empty(), "{order:?}");
    }
}

/// A join that names one channel twice, in all 24 orders of its three produces and the
/// consume: it fires exactly on the last arrival, each position with its own datum in the
/// consume's order (the channel repeated), and leaves nothing behind.
#[test]
fn repeated_channel_join_every_arrival_order() {
    #[derive(Clone, Copy, Debug)]
    enum Ev {
        P(Ch, i64),
        C,
    }
    let events = [Ev::P("a", 1), Ev::P("a", 2), Ev::P("b", 3), Ev::C];
    let mut orders = Vec::new();
    permutations(&mut events.to_vec(), 0, &mut orders);
    for order in orders {
        let s = preds();
        let comm = fires_on_the_last(&order, |ev| match *ev {
            Ev::P(c, d) => s.produce(c, d, false).unwrap(),
            Ev::C => s
                .consume(["a", "b", "a"], [eq(2), Any, Odd], "aba", false, &[])
                .unwrap(),
        });
        assert_eq!(comm.continuation, "aba");
        assert_eq!(&*comm.channels, &["a", "b", "a"]);
        assert_eq!(&*comm.patterns, &[eq(2), Any, Odd]);
        let got: Vec<(u32, i64, i64, bool)> = comm
            .matches
            .iter()
            .map(|m| (m.position, m.datum, m.result, m.persistent))
            .collect();
        assert_eq!(
            got,
            vec![(0, 2, 24, false), (1, 3, 30, false), (2, 1, 12, false)],
            "{order:?}"
        );
        assert!(!comm.reissue && !comm.persistent && comm.peeks.is_empty());
        assert!(s.is_empty(), "{order:?}");
    }
}

/// A persistent datum used at two positions of a join and a datum peeked at a third, in all
/// six orders of the two produces and the consume. The item the last call brings in fires at
/// once; it is handed back (re-issue), not stored, when it is not used up: the persistent
/// datum, or the datum only peeked at. The stored ones stay (persistent, peeked).
#[test]
fn persistent_and_peeked_join_every_arrival_order() {
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Ev {
        Persistent,
        Peeked,
        C,
    }
    let mut orders = Vec::new();
    permutations(&mut vec![Ev::Persistent, Ev::Peeked, Ev::C], 0, &mut orders);
    assert_eq!(orders.len(), 6);
    for order in orders {
        let s = exact();
        let comm = fires_on_the_last(&order, |ev| match ev {
            Ev::Persistent => s.produce("a", 5, true).unwrap(),
            Ev::Peeked => s.produce("b", 6, false).unwrap(),
            Ev::C => s
                .consume(["a", "b", "a"], [5, 6, 5], "k", false, &[1])
                .unwrap(),
        });
        let last = order[2];
        let got: Vec<(u32, i64, bool)> = comm
            .matches
            .iter()
            .map(|m| (m.position, m.datum, m.persistent))
            .collect();
        assert_eq!(got, vec![(0, 5, true), (1, 6, false), (2, 5, true)]);
        assert_eq!(&comm.peeks[..], &[1]);
        assert!(!comm.persistent);
        // The consume's continuation is used up by firing; either produced datum is not.
        assert_eq!(comm.reissue, last != Ev::C, "{order:?}");
        let stored_a: Vec<i64> = if last == Ev::Persistent {
            vec![]
        } else {
            vec![5]
        };
        let stored_b: Vec<i64> = if last == Ev::Peeked { vec![] } else { vec![6] };
        assert_eq!(values(&s, "a"), stored_a, "{order:?}");
        assert_eq!(values(&s, "b"), stored_b, "{order:?}");
        assert!(s.continuations(&["a", "b", "a"]).is_empty(), "{order:?}");
        assert!(s.joins(&"a").is_empty() && s.joins(&"b").is_empty());
    }
}

/// Runs the events of `order` through `call`: none but the last fires a COMM, and the last
/// does; returns its COMM.
fn fires_on_the_last<E: std::fmt::Debug, T>(
    order: &[E],
    mut call: impl FnMut(&E) -> Option<T>,
) -> T {
    let Some((last, early)) = order.split_last() else {
        panic!("no events");
    };
    for (i, ev) in early.iter().enumerate() {
        assert!(call(ev).is_none(), "{order:?}: fired early at {i}");
    }
    call(last).unwrap_or_else(|| panic!("{order:?}: did not fire"))
}

fn permutations<T: Clone>(v: &mut Vec<T>, k: usize, out: &mut Vec<Vec<T>>) {
    if k == v.len() {
        out.push(v.clone());
        return;
    }
    for i in k..v.len() {
        v.swap(k, i);
        permutations(v, k + 1, out);
        v.swap(k, i);
    }
}

#[test]
fn join_waits_for_the_right_data() {
    let s = preds();
    assert!(s
        .consume(["a", "b"], [Even, Odd], "k", false, &[])
        .unwrap()
        .is_none());
    // Wrong parity on both channels: stored.
    assert!(s.produce("a", 1, false).unwrap().is_none());
    assert!(s.produce("b", 2, false).unwrap().is_none());
    // An even datum on a, but b holds no odd one yet: still stored.
    assert!(s.produce("a", 4, false).unwrap().is_none());
    let comm = s.produce("b", 3, false).unwrap().unwrap();
    assert_eq!(matched(&comm), vec![4, 3]);
    assert_eq!(values(&s, "a"), vec![1]);
    assert_eq!(values(&s, "b"), vec![2]);
}

#[test]
fn repeated_channel_needs_two_data() {
    let s = exact();
    assert!(s.produce("a", 1, false).unwrap().is_none());
    // One non-persistent datum cannot fill two positions.
    assert!(s
        .consume(["a", "a"], [1, 1], "k", false, &[])
        .unwrap()
        .is_none());
    assert_eq!(values(&s, "a"), vec![1]);
    assert_eq!(
        s.joins(&"a").len(),
        1,
        "a repeated channel records the join once"
    );
    let comm = s
        .produce("a", 1, false)
        .unwrap()
        .expect("second datum completes the join");
    assert_eq!(matched(&comm), vec![1, 1]);
    assert!(!comm.reissue);
    assert!(s.is_empty());
}

#[test]
fn repeated_channel_consume_takes_distinct_data() {
    let s = preds();
    s.produce("a", 1, false).unwrap();
    s.produce("a", 2, false).unwrap();
    s.produce("a", 3, false).unwrap();
    let comm = s
        .consume(["a", "a"], [Any, Any], "k", false, &[])
        .unwrap()
        .unwrap();
    assert_eq!(matched(&comm), vec![1, 2], "oldest first, distinct");
    assert_eq!(values(&s, "a"), vec![3]);
}

#[test]
fn persistent_datum_reused_within_one_consume() {
    let s = exact();
    assert!(s.produce("a", 5, true).unwrap().is_none());
    let comm = s
        .consume(["a", "a", "a"], [5, 5, 5], "k", false, &[])
        .unwrap()
        .unwrap();
    assert_eq!(matched(&comm), vec![5, 5, 5]);
    assert!(comm.matches.iter().all(|m| m.persistent));
    assert!(!comm.reissue);
    // It stays after matching, and keeps matching.
    assert_eq!(
        s.data(&"a"),
        vec![StoredDatum {
            value: 5,
            persist: true,
            priority: 0
        }]
    );
    let comm = s.consume(["a"], [5], "k2", false, &[]).unwrap().unwrap();
    assert_eq!(comm.continuation, "k2");
    assert_eq!(matched(&comm), vec![5]);
    assert!(comm.matches[0].persistent && !comm.reissue);
    assert_eq!(values(&s, "a"), vec![5]);
}

#[test]
fn persistent_datum_meets_waiting_join_on_produce() {
    let s = exact();
    assert!(s
        .consume(["a", "a"], [7, 7], "k", false, &[])
        .unwrap()
        .is_none());
    // A persistent produced datum may fill both positions; it fired, so it is re-issued, not
    // stored.
    let comm = s.produce("a", 7, true).unwrap().unwrap();
    assert_eq!(matched(&comm), vec![7, 7]);
    assert!(comm.matches.iter().all(|m| m.persistent));
    assert!(comm.reissue);
    assert!(s.data(&"a").is_empty());
    assert!(s.is_empty());
}

/// SPEC §1: views never change state. Two spaces make the same calls; one is looked at through
/// every view (known and unknown channels, exact and reordered lists) before and after each
/// call. Both give the same COMMs, views, state root and event log.
#[test]
fn views_never_change_state() {
    let look = |s: &PS| {
        for c in ["a", "b", "nowhere"] {
            let _ = s.data(&c);
            let _ = s.joins(&c);
        }
        for l in [
            &["a"][..],
            &["a", "b"],
            &["b", "a"],
            &["a", "a"],
            &["nowhere"],
        ] {
            let _ = s.continuations(l);
        }
        let _ = (s.is_empty(), s.channel_count());
    };
    let run = |s: &PS, looking: bool| -> Vec<Option<PComm>> {
        let mut out = Vec::new();
        let mut step = |f: &dyn Fn(&PS) -> Option<PComm>| {
            if looking {
                look(s);
            }
            out.push(f(s));
            if looking {
                look(s);
            }
        };
        step(&|s| s.produce("a", 1, false).unwrap());
        step(&|s| {
            s.consume(["a", "b"], [Odd, Any], "ab", false, &[0])
                .unwrap()
        });
        step(&|s| {
            s.consume(["a", "a"], [Any, Gt(5)], "aa", true, &[])
                .unwrap()
        });
        step(&|s| s.produce("b", 2, true).unwrap());
        step(&|s| s.produce("a", 7, false).unwrap());
        step(&|s| s.consume(["b"], [Even], "b", false, &[]).unwrap());
        out
    };
    let viewed = preds();
    let plain = preds();
    // Looking at an empty space's unknown channels creates nothing.
    look(&viewed);
    assert!(viewed.is_empty());
    assert_eq!(viewed.channel_count(), 0);
    let got = run(&viewed, true);
    assert_eq!(got, run(&plain, false));
    assert!(got.iter().filter(|c| c.is_some()).count() >= 2, "{got:?}");
    let chans = ["a", "b", "nowhere"];
    let lists = vec![vec!["a"], vec!["a", "b"], vec!["a", "a"], vec!["b"]];
    assert_eq!(
        views(&viewed, &chans, &lists),
        views(&plain, &chans, &lists)
    );
    let (v, p) = (
        viewed.create_checkpoint().unwrap(),
        plain.create_checkpoint().unwrap(),
    );
    assert_eq!(v.root, p.root);
    assert_eq!(v.log, p.log);
}

// ---------------------------------------------------------------------------------------------
// §2 Persistence, peek and the re-issue contract
// ---------------------------------------------------------------------------------------------

#[test]
fn persistent_produce_that_fires_is_reissued_not_stored() {
    let s = exact();
    s.consume(["a"], [1], "k", false, &[]).unwrap();
    let comm = s.produce("a", 1, true).unwrap().unwrap();
    assert!(comm.reissue);
    assert!(comm.matches[0].persistent);
    assert!(
        s.data(&"a").is_empty(),
        "a fired persistent produce is not stored"
    );
    assert!(s.is_empty());
    // Re-issuing it with nothing waiting stores it.
    assert!(s.produce("a", 1, true).unwrap().is_none());
    assert_eq!(values(&s, "a"), vec![1]);
}

#[test]
fn persistent_consume_that_fires_is_reissued_not_stored() {
    let s = exact();
    s.produce("a", 1, false).unwrap();
    let comm = s.consume(["a"], [1], "k", true, &[]).unwrap().unwrap();
    assert!(comm.persistent);
    assert!(comm.reissue);
    assert!(s.continuations(&["a"]).is_empty());
    assert!(s.is_empty());
}

#[test]
fn stored_persistent_continuation_stays_after_firing() {
    let s = exact();
    assert!(s.consume(["a"], [1], "k", true, &[]).unwrap().is_none());
    for _ in 0..3 {
        let comm = s.produce("a", 1, false).unwrap().unwrap();
        assert_eq!(comm.continuation, "k");
        assert!(comm.persistent);
        assert!(!comm.reissue, "the produced datum was used up");
        assert_eq!(conts(&s, &["a"]), vec!["k"]);
        assert!(s.data(&"a").is_empty());
    }
}

#[test]
fn persistent_datum_meets_persistent_consume_finitely() {
    let s = exact();
    s.produce("a", 1, true).unwrap();
    let comm = s.consume(["a"], [1], "k", true, &[]).unwrap().unwrap();
    assert!(comm.reissue && comm.persistent && comm.matches[0].persistent);
    assert_eq!(values(&s, "a"), vec![1]);
    assert!(s.continuations(&["a"]).is_empty());

    let s = exact();
    s.consume(["a"], [1], "k", true, &[]).unwrap();
    let comm = s.produce("a", 1, true).unwrap().unwrap();
    assert!(comm.reissue);
    assert!(s.data(&"a").is_empty());
    assert_eq!(conts(&s, &["a"]), vec!["k"]);
}

#[test]
fn peek_leaves_stored_datum() {
    let s = exact();
    s.produce("a", 1, false).unwrap();
    s.produce("b", 2, false).unwrap();
    let comm = s
        .consume(["a", "b"], [1, 2], "k", false, &[0])
        .unwrap()
        .unwrap();
    assert_eq!(&comm.peeks[..], &[0]);
    assert!(!comm.reissue);
    assert_eq!(values(&s, "a"), vec![1]);
    assert!(s.data(&"b").is_empty());
}

#[test]
fn peeks_are_normalised_in_the_comm() {
    let s = exact();
    s.produce("a", 1, false).unwrap();
    s.produce("b", 2, false).unwrap();
    let comm = s
        .consume(["a", "b"], [1, 2], "k", false, &[1, 0, 1])
        .unwrap()
        .unwrap();
    assert_eq!(&comm.peeks[..], &[0, 1]);
    assert_eq!(values(&s, "a"), vec![1]);
    assert_eq!(values(&s, "b"), vec![2]);
}

#[test]
fn produced_datum_only_peeked_is_reissued_not_stored() {
    let s = exact();
    s.consume(["a"], [1], "k", false, &[0]).unwrap();
    let comm = s.produce("a", 1, false).unwrap().unwrap();
    assert!(comm.reissue, "the produced datum was only peeked");
    assert!(s.data(&"a").is_empty(), "and it is not stored");
    assert!(s.is_empty());
}

#[test]
fn several_peeking_positions_share_one_datum() {
    let s = exact();
    s.produce("a", 1, false).unwrap();
    let comm = s
        .consume(["a", "a"], [1, 1], "k", false, &[0, 1])
        .unwrap()
        .unwrap();
    assert_eq!(matched(&comm), vec![1, 1]);
    assert_eq!(values(&s, "a"), vec![1]);
}

#[test]
fn a_datum_cannot_be_both_peeked_and_consumed() {
    let s = exact();
    s.produce("a", 1, false).unwrap();
    assert!(s
        .consume(["a", "a"], [1, 1], "k", false, &[0])
        .unwrap()
        .is_none());
    assert_eq!(values(&s, "a"), vec![1]);
    // With a second equal datum: position 0 peeks the oldest, position 1 consumes the other.
    let comm = s.produce("a", 1, false).unwrap().unwrap();
    assert_eq!(comm.continuation, "k");
    assert!(!comm.reissue);
    assert_eq!(values(&s, "a"), vec![1]);
}

// ---------------------------------------------------------------------------------------------
// install
// ---------------------------------------------------------------------------------------------

#[test]
fn install_before_data_fires_and_stays() {
    let s = exact();
    s.install(["a"], [1], "svc").unwrap();
    assert_eq!(conts(&s, &["a"]), vec!["svc"]);
    for _ in 0..3 {
        let comm = s.produce("a", 1, false).unwrap().unwrap();
        assert_eq!(comm.continuation, "svc");
        assert!(comm.persistent);
        assert!(!comm.reissue);
        assert!(s.data(&"a").is_empty());
    }
    assert_eq!(conts(&s, &["a"]), vec!["svc"]);
    assert!(s.is_empty(), "installed continuations do not count");
}

#[test]
fn install_after_matching_data_is_refused_and_changes_nothing() {
    let s = exact();
    s.produce("a", 1, false).unwrap();
    s.produce("b", 2, false).unwrap();
    let chans = ["a", "b"];
    let lists = vec![vec!["a"], vec!["b"], vec!["a", "b"]];
    let before = views(&s, &chans, &lists);
    let root = s.full_state_root();
    let err = s.install(["a", "b"], [1, 2], "svc").unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::InstallWouldMatch);
    assert_eq!(err.into_inner(), "svc");
    assert_eq!(views(&s, &chans, &lists), before);
    assert_eq!(s.full_state_root(), root);
    // Data that does not complete the join does not block install.
    s.install(["a", "b"], [1, 3], "svc2").unwrap();
    assert_eq!(conts(&s, &["a", "b"]), vec!["svc2"]);
    assert_eq!(s.joins(&"a").len(), 1);
    // Installed after data, it fires with that stored data once the join is completed, and
    // stays.
    let comm = s.produce("b", 3, false).unwrap().expect("svc2 fires");
    assert_eq!(comm.continuation, "svc2");
    assert_eq!(matched(&comm), vec![1, 3]);
    assert!(comm.persistent && !comm.reissue);
    assert!(s.data(&"a").is_empty());
    assert_eq!(values(&s, "b"), vec![2]);
    assert_eq!(conts(&s, &["a", "b"]), vec!["svc2"]);
}

#[test]
fn installed_are_offered_before_stored_continuations() {
    let s = exact();
    assert!(s
        .consume(["a"], [1], "stored", false, &[])
        .unwrap()
        .is_none());
    s.install(["a"], [1], "svc").unwrap();
    assert_eq!(
        conts(&s, &["a"]),
        vec!["svc", "stored"],
        "installed first in the view"
    );
    let comm = s.produce("a", 1, false).unwrap().unwrap();
    assert_eq!(comm.continuation, "svc");
    assert_eq!(conts(&s, &["a"]), vec!["svc", "stored"]);
    // Installed in install order.
    s.install(["a"], [2], "svc-2a").unwrap();
    s.install(["a"], [2], "svc-2b").unwrap();
    assert_eq!(
        s.produce("a", 2, false).unwrap().unwrap().continuation,
        "svc-2a"
    );
}

#[test]
fn installed_survive_clear_and_revert() {
    let s = exact();
    let empty = s.create_soft_checkpoint();
    s.install(["a", "b"], [1, 2], "svc").unwrap();
    s.produce("a", 1, false).unwrap();
    s.revert_to_soft_checkpoint(&empty).unwrap();
    assert!(s.data(&"a").is_empty());
    assert_eq!(conts(&s, &["a", "b"]), vec!["svc"]);
    assert_eq!(s.joins(&"b").len(), 1);
    s.produce("a", 1, false).unwrap();
    s.clear();
    assert!(s.is_empty());
    assert_eq!(conts(&s, &["a", "b"]), vec!["svc"]);
    s.produce("a", 1, false).unwrap();
    assert_eq!(
        s.produce("b", 2, false).unwrap().unwrap().continuation,
        "svc"
    );
}

/// The documented limit of `install` (its rustdoc): the no-matching-data check is made at
/// install time, and installed continuations survive a revert, so reverting to a checkpoint
/// taken before the install brings back data the installed continuation matches. They stay
/// stored (a revert fires nothing) until a call moves them; the next produce fires the
/// installed continuation with its own datum.
#[test]
fn documented_limit_revert_past_an_install_can_bring_back_matching_data() {
    let s = exact();
    s.produce("a", 1, false).unwrap();
    let before_install = s.create_soft_checkpoint();
    s.consume(["a"], [1], "k", false, &[]).unwrap().unwrap();
    s.install(["a"], [1], "svc").unwrap();
    s.revert_to_soft_checkpoint(&before_install).unwrap();
    assert_eq!(values(&s, "a"), vec![1]);
    assert_eq!(conts(&s, &["a"]), vec!["svc"]);
    let comm = s.produce("a", 1, false).unwrap().expect("svc fires");
    assert_eq!(comm.continuation, "svc");
    assert!(!comm.reissue);
    assert_eq!(values(&s, "a"), vec![1], "the datum brought back stays");
    // A consume takes it as usual.
    assert!(s.consume(["a"], [1], "k", false, &[]).unwrap().is_some());
    assert!(s.is_empty());
}

// ---------------------------------------------------------------------------------------------
// §3 Complete matching and candidate order
// ---------------------------------------------------------------------------------------------

#[test]
fn complete_matching_where_greedy_fails_on_consume() {
    let s = preds();
    s.produce("a", 1, false).unwrap();
    s.produce("a", 2, false).unwrap();
    // Greedy: Any takes 1, then Eq(1) finds nothing. Complete: Any = 2, Eq(1) = 1.
    let comm = s
        .consume(["a", "a"], [Any, eq(1)], "k", false, &[])
        .unwrap()
        .expect("a complete search finds Any=2, Eq(1)=1");
    assert_eq!(matched(&comm), vec![2, 1]);
    assert!(s.is_empty());
}

#[test]
fn complete_matching_where_greedy_fails_across_channels() {
    let s = preds();
    s.produce("a", 4, false).unwrap();
    s.produce("a", 3, false).unwrap();
    s.produce("b", 3, false).unwrap();
    // Greedy gives Any the oldest (4), and Even then finds nothing; complete: Any=3, Even=4.
    let comm = s
        .consume(["a", "a", "b"], [Any, Even, Odd], "k", false, &[])
        .unwrap()
        .unwrap();
    assert_eq!(matched(&comm), vec![3, 4, 3]);
}

#[test]
fn complete_matching_where_greedy_fails_on_produce() {
    let s = preds();
    s.produce("a", 1, false).unwrap();
    assert!(s
        .consume(["a", "a"], [Any, eq(1)], "k", false, &[])
        .unwrap()
        .is_none());
    let comm = s.produce("a", 2, false).unwrap().unwrap();
    assert_eq!(matched(&comm), vec![2, 1]);
    assert!(s.is_empty());
}

#[test]
fn first_assignment_in_candidate_order_wins() {
    let s = preds();
    for d in [5, 3, 1, 2] {
        s.produce("a", d, false).unwrap();
    }
    let comm = s.consume(["a"], [Odd], "k", false, &[]).unwrap().unwrap();
    assert_eq!(matched(&comm), vec![5]);
    assert_eq!(comm.matches[0].result, result_of(&Odd, 5));
    let comm = s
        .consume(["a", "a"], [Odd, Even], "k", false, &[])
        .unwrap()
        .unwrap();
    assert_eq!(matched(&comm), vec![3, 2]);
    assert_eq!(values(&s, "a"), vec![1]);
}

#[test]
fn produce_offers_to_join_groups_in_creation_order() {
    let s = preds();
    s.produce("b", 9, false).unwrap();
    assert!(s
        .consume(["a", "b"], [Any, Any], "ab", false, &[])
        .unwrap()
        .is_none());
    assert!(s.consume(["a"], [Any], "a", false, &[]).unwrap().is_none());
    assert_eq!(
        s.joins(&"a").iter().map(|l| l.to_vec()).collect::<Vec<_>>(),
        vec![vec!["a", "b"], vec!["a"]]
    );
    assert_eq!(
        s.produce("a", 1, false).unwrap().unwrap().continuation,
        "ab"
    );
    // The [a, b] group left with its last continuation; re-created, it comes after [a].
    s.produce("b", 9, false).unwrap();
    assert!(s
        .consume(["a", "b"], [Any, Any], "ab2", false, &[])
        .unwrap()
        .is_none());
    assert_eq!(
        s.joins(&"a").iter().map(|l| l.to_vec()).collect::<Vec<_>>(),
        vec![vec!["a"], vec!["a", "b"]]
    );
    assert_eq!(s.produce("a", 2, false).unwrap().unwrap().continuation, "a");
    assert_eq!(
        s.produce("a", 3, false).unwrap().unwrap().continuation,
        "ab2"
    );
}

#[test]
fn bag_continuations_oldest_matching_fires() {
    let s = preds();
    s.consume(["a"], [eq(1)], "k1", false, &[]).unwrap();
    s.consume(["a"], [Any], "k2", false, &[]).unwrap();
    s.consume(["a"], [Any], "k3", false, &[]).unwrap();
    assert_eq!(
        s.produce("a", 2, false).unwrap().unwrap().continuation,
        "k2"
    );
    assert_eq!(conts(&s, &["a"]), vec!["k1", "k3"]);
}

/// The `examined` (matcher calls, charged) of a consume on `s`, and whether it fired.
fn consume_examined(s: &PS, channels: Vec<Ch>, patterns: Vec<Pred>) -> (bool, u64) {
    let mut examined = None;
    let comm = s
        .consume_admitted(channels, patterns, "k", false, &[], |a| {
            examined = Some(a.examined);
            Ok(())
        })
        .unwrap();
    (comm.is_some(), examined.unwrap())
}

/// A join that cannot be satisfied fails without trying every combination: a position whose
/// pattern accepts nothing on its channel ends the search (before, each of `a`'s 1,000 data
/// retried `b`'s two positions: 10⁹ matcher calls, about 9 s), and a channel with fewer data
/// than its positions need ends it too (11 positions on 10 data took 13.5 million calls).
#[test]
fn a_join_that_cannot_fire_fails_without_trying_every_combination() {
    let s = preds();
    for i in 0..1_000 {
        s.produce("a", 2 * i, false).unwrap();
        s.produce("b", 2 * i, false).unwrap();
    }
    // Even on a (1 call), Even on b (1), Odd on b: 999 rejected, then the one passed over
    // (b's first datum, taken by the Even) checked too: no odd datum on b at all.
    let (fired, examined) = consume_examined(&s, vec!["a", "b", "b"], vec![Even, Even, Odd]);
    assert!(!fired);
    assert_eq!(examined, 1_002);
    // Eq(1_999) on c, whose channel is empty: an independent failure, at once.
    let (fired, examined) = consume_examined(&s, vec!["a", "b", "c"], vec![Any, Any, eq(1_999)]);
    assert!(!fired);
    assert_eq!(examined, 2);

    let s = preds();
    for i in 0..10 {
        s.produce("a", i, false).unwrap();
    }
    // Ten data taken in order, then the eleventh position checks one it passed over (taken):
    // ten data cannot fill eleven positions, so the search ends at its first failure.
    let (fired, examined) = consume_examined(&s, vec!["a"; 11], vec![Any; 11]);
    assert!(!fired);
    assert_eq!(examined, 11);
    // The same at the longest join, 64 positions on 63 data (2^63 sets of used data).
    let big = preds();
    for i in 0..63 {
        big.produce("a", i, false).unwrap();
    }
    let n = MAX_JOIN;
    let (fired, examined) = consume_examined(&big, vec!["a"; n], vec![Any; n]);
    assert!(!fired);
    assert_eq!(examined, 64);
    // One persistent datum can fill any number of positions: then the join fires.
    big.produce("p", 1, true).unwrap();
    let (fired, _) = consume_examined(&big, vec!["p"; n], vec![Any; n]);
    assert!(fired);
    // The join waits; the datum it lacks fires it, with every datum of a.
    let comm = s.produce("a", 10, false).unwrap().expect("fires");
    assert_eq!(comm.matches.len(), 11);
    assert!(values(&s, "a").is_empty());
}

/// A space whose channel `a` holds 1,000 data, the first `odd` of them odd and the rest even,
/// and the patterns of a 33-position join on it: 30 `Any`, then 3 `Odd`.
fn odd_first_join(odd: i64) -> (PS, Vec<Pred>) {
    let s = preds();
    for i in 0..1_000 {
        let d = if i < odd { 2 * i + 1 } else { 2 * i };
        s.produce("a", d, false).unwrap();
    }
    let mut patterns = vec![Any; 30];
    patterns.extend([Odd; 3]);
    (s, patterns)
}

/// Enough data in all, too few that suit some of the positions: 30 `Any` and 3 `Odd` positions
/// on one channel of 1,000 data, 2 of them odd. No position is dead and the channel holds more
/// data than positions, so only a matching of positions to data settles it; the search runs it
/// once its own work reaches the matching's price (33 positions × 1,000 data), so it fails
/// after about twice that many matcher calls. (It did not end before.)
#[test]
fn a_join_whose_positions_cannot_all_be_served_fails_after_a_bounded_search() {
    let (s, patterns) = odd_first_join(2);
    let (fired, examined) = consume_examined(&s, vec!["a"; 33], patterns);
    assert!(!fired);
    assert!((66_000..67_000).contains(&examined), "{examined}");
    assert_eq!(values(&s, "a").len(), 1_000);
}

/// An assignment exists, but the first choices of the early positions leave too few data for
/// the later ones: 30 `Any` positions then 3 `Odd` ones, on 1,000 data whose 3 odd ones come
/// first. Taking an odd datum at an `Any` position dooms the join, but every completion of
/// those picks would have to be tried to learn it (sets of 30 used data out of 1,000: the
/// search was stopped still running after 2 minutes). Once the search has paid for the
/// matching check, it checks at its visits whether the positions left can still be served by
/// the data left, and goes back to the first pick that made it impossible; the assignment is
/// the first in candidate order, as a complete search would find it.
#[test]
fn a_join_whose_first_choices_starve_its_last_positions_still_fires() {
    let (s, patterns) = odd_first_join(3);
    let mut examined = 0;
    let comm = s
        .consume_admitted(vec!["a"; 33], patterns, "k", false, &[], |a| {
            examined = a.examined;
            Ok(())
        })
        .unwrap()
        .expect("fires");
    let mut want: Vec<i64> = (3..33).map(|i| 2 * i).collect();
    want.extend([1, 3, 5]);
    assert_eq!(matched(&comm), want);
    assert!(examined < 500_000, "{examined}");
    assert_eq!(values(&s, "a").len(), 1_000 - 33);
}

/// Pruning a failed visit keeps the first assignment in candidate order. `[Any, Odd, Odd]`
/// over 1, 3, 2 on one channel: Any = 1 leaves one odd datum, so it fails; Any = 3 leaves the
/// Odd positions with the same used set {1, 3} as before (a remembered failure, skipped);
/// Any = 2 fits. A search without pruning makes the same choice.
#[test]
fn pruned_searches_still_pick_the_first_assignment() {
    let s = preds();
    for d in [1, 3, 2] {
        s.produce("a", d, false).unwrap();
    }
    let comm = s
        .consume(["a", "a", "a"], [Any, Odd, Odd], "k", false, &[])
        .unwrap()
        .expect("fires");
    assert_eq!(matched(&comm), vec![2, 1, 3]);
    // Across channels: b is empty, so the join waits and a keeps its data.
    for d in [5, 4] {
        s.produce("a", d, false).unwrap();
    }
    let (fired, examined) = consume_examined(&s, vec!["a", "a", "b"], vec![Odd, Even, Any]);
    assert!(!fired);
    assert_eq!(examined, 2, "Odd = 5, Even = 4, then b fails on its own");
    assert_eq!(values(&s, "a"), vec![5, 4]);
}

// ---------------------------------------------------------------------------------------------
// §4 Collection kinds
// ---------------------------------------------------------------------------------------------

#[test]
fn bag_keeps_duplicates_oldest_first() {
    let s = preds();
    for d in [2, 1, 2] {
        s.produce("a", d, false).unwrap();
    }
    assert_eq!(values(&s, "a"), vec![2, 1, 2]);
    assert_eq!(
        matched(&s.consume(["a"], [Any], "k", false, &[]).unwrap().unwrap()),
        vec![2]
    );
    assert_eq!(values(&s, "a"), vec![1, 2]);
}

#[test]
fn queue_only_oldest_matches() {
    let s = preds_with(SpaceConfig::new().data_kind(DataKind::Queue));
    s.produce("q", 1, false).unwrap();
    s.produce("q", 2, false).unwrap();
    assert!(s
        .consume(["q"], [eq(2)], "k2", false, &[])
        .unwrap()
        .is_none());
    assert_eq!(values(&s, "q"), vec![1, 2]);
    // Two positions: the second may take the second item because the first used the head up.
    let comm = s
        .consume(["q", "q"], [eq(1), eq(2)], "k12", false, &[])
        .unwrap()
        .unwrap();
    assert_eq!(matched(&comm), vec![1, 2]);
    assert!(s.produce("q", 3, false).unwrap().is_none());
    // The reverse order cannot: Eq(4) at the head position blocks.
    s.produce("q", 4, false).unwrap();
    assert!(s
        .consume(["q", "q"], [eq(4), eq(3)], "k43", false, &[])
        .unwrap()
        .is_none());
    // Peeking the head does not use it up.
    assert!(s
        .consume(["q", "q"], [eq(3), eq(4)], "p", false, &[0])
        .unwrap()
        .is_none());
}

#[test]
fn queue_produce_behind_a_stored_head_does_not_fire() {
    let s = preds_with(SpaceConfig::new().data_kind(DataKind::Queue));
    s.produce("q", 1, false).unwrap();
    assert!(s
        .consume(["q"], [eq(2)], "k", false, &[])
        .unwrap()
        .is_none());
    // 2 arrives behind 1: it is not the head, so k cannot take it.
    assert!(s.produce("q", 2, false).unwrap().is_none());
    assert_eq!(values(&s, "q"), vec![1, 2]);
}

#[test]
fn stack_only_newest_matches() {
    let s = preds_with(SpaceConfig::new().data_kind(DataKind::Stack));
    s.produce("s", 1, false).unwrap();
    s.produce("s", 2, false).unwrap();
    assert_eq!(values(&s, "s"), vec![2, 1], "newest first");
    assert!(s
        .consume(["s"], [eq(1)], "k1", false, &[])
        .unwrap()
        .is_none());
    let comm = s.consume(["s"], [Any], "k", false, &[]).unwrap().unwrap();
    assert_eq!(matched(&comm), vec![2]);
    // A produced datum is the newest: it may fire at once even with data stored.
    let s = preds_with(SpaceConfig::new().data_kind(DataKind::Stack));
    s.produce("s", 1, false).unwrap();
    s.consume(["s"], [eq(5)], "k5", false, &[]).unwrap();
    assert_eq!(
        s.produce("s", 5, false).unwrap().unwrap().continuation,
        "k5"
    );
    assert_eq!(values(&s, "s"), vec![1]);
}

#[test]
fn set_ignores_equal_data() {
    let s: Space<Ch, String, String, u8, ExactMatch> =
        Space::new(ExactMatch, SpaceConfig::new().data_kind(DataKind::Set));
    assert!(s.produce("x", "a".to_string(), false).unwrap().is_none());
    assert!(s.produce("x", "a".to_string(), true).unwrap().is_none());
    assert!(s.produce("x", "b".to_string(), false).unwrap().is_none());
    let d = s.data(&"x");
    assert_eq!(
        d.iter()
            .map(|d| (d.value.as_str(), d.persist))
            .collect::<Vec<_>>(),
        vec![("a", false), ("b", false)]
    );
    // Many distinct values (past the index threshold) are all kept, exactly.
    for i in 0..40 {
        s.produce("y", format!("v{i}"), false).unwrap();
        s.produce("y", format!("v{i}"), false).unwrap();
    }
    assert_eq!(s.data(&"y").len(), 40);
    let comm = s
        .consume(["y"], ["v17".to_string()], 1, false, &[])
        .unwrap()
        .unwrap();
    assert_eq!(comm.matches[0].datum, "v17");
    assert_eq!(s.data(&"y").len(), 39);
    // Once taken, an equal value may be stored again.
    assert!(s.produce("y", "v17".to_string(), false).unwrap().is_none());
    assert_eq!(s.data(&"y").len(), 40);
}

/// A datum whose `Hash` sends every value to one bucket: equality must be decided by `Eq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Clash(i64);

impl std::hash::Hash for Clash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        0u8.hash(state);
    }
}

impl rhospace_spaces::Encode for Clash {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
    }
    fn encoded_len(&self) -> usize {
        self.0.encoded_len()
    }
}

/// SPEC §4: a Set ignores duplicates by `Eq`, exactly, never by a (here maximally lossy) hash;
/// and exact lookups on Set and Bag channels, below and past the index threshold, take the
/// equal datum, not one that merely hashes alike.
#[test]
fn set_and_exact_lookups_decide_equality_by_eq_not_by_hash() {
    for kind in [DataKind::Set, DataKind::Bag] {
        let s: Space<Ch, Clash, Clash, u8, ExactMatch> =
            Space::new(ExactMatch, SpaceConfig::new().data_kind(kind));
        let vals = |s: &Space<Ch, Clash, Clash, u8, ExactMatch>| -> Vec<i64> {
            s.data(&"x").iter().map(|d| d.value.0).collect()
        };
        for round in 0..2 {
            for i in 0..40 {
                assert!(s.produce("x", Clash(i), false).unwrap().is_none());
            }
            let want: Vec<i64> = match (kind, round) {
                (DataKind::Set, _) | (_, 0) => (0..40).collect(),
                _ => (0..40).chain(0..40).collect(),
            };
            assert_eq!(vals(&s), want, "{kind:?} round {round}");
        }
        // Exact consumes of values in the middle, also one absent value (waits).
        for v in [17, 3, 39] {
            let comm = s
                .consume(["x"], [Clash(v)], 1, false, &[])
                .unwrap()
                .unwrap_or_else(|| panic!("{kind:?}: {v} stored"));
            assert_eq!(comm.matches[0].datum, Clash(v));
        }
        assert!(s
            .consume(["x"], [Clash(40)], 2, false, &[])
            .unwrap()
            .is_none());
        assert_eq!(
            s.produce("x", Clash(40), false)
                .unwrap()
                .map(|c| c.continuation),
            Some(2)
        );
        let left = vals(&s);
        for v in [17, 3, 39] {
            let n = left.iter().filter(|&&d| d == v).count();
            assert_eq!(n, usize::from(kind == DataKind::Bag), "{kind:?}: {v}");
        }
        // A Set takes a value again once its equal was consumed.
        if kind == DataKind::Set {
            assert_eq!(left.len(), 37);
            s.produce("x", Clash(17), false).unwrap();
            assert_eq!(vals(&s).len(), 38);
        }
    }
}

#[test]
fn cell_holds_one_datum() {
    let s = preds_with(SpaceConfig::new().channel_kind("cell", DataKind::Cell));
    s.produce("cell", 1, false).unwrap();
    let lists = vec![vec!["cell"]];
    let before = views(&s, &["cell"], &lists);
    let root = s.full_state_root();
    let err = s.produce("cell", 2, false).unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::CellFull);
    assert_eq!(err.into_inner(), 2);
    assert_eq!(views(&s, &["cell"], &lists), before);
    assert_eq!(s.full_state_root(), root);
    // Equal datum: still full.
    assert_eq!(
        s.produce("cell", 1, true).unwrap_err().kind(),
        &ErrorKind::CellFull
    );
    assert_eq!(views(&s, &["cell"], &lists), before);
    assert_eq!(s.full_state_root(), root);
    // Other channels keep the default Bag.
    s.produce("bag", 1, false).unwrap();
    s.produce("bag", 2, false).unwrap();
    assert_eq!(values(&s, "bag"), vec![1, 2]);
    // Emptied, it accepts again.
    assert!(s
        .consume(["cell"], [Any], "k", false, &[])
        .unwrap()
        .is_some());
    assert!(s.produce("cell", 2, false).unwrap().is_none());
    assert_eq!(values(&s, "cell"), vec![2]);
    // Full, a Cell refuses even a datum that a waiting join would take: the produce is refused,
    // not fired.
    assert!(s
        .consume(["cell", "x"], [eq(7), Any], "wait", false, &[])
        .unwrap()
        .is_none());
    s.produce("x", 0, false).unwrap();
    let join_lists = vec![vec!["cell"], vec!["cell", "x"]];
    let before = views(&s, &["cell", "x"], &join_lists);
    let root = s.full_state_root();
    assert_eq!(
        s.produce("cell", 7, false).unwrap_err().kind(),
        &ErrorKind::CellFull
    );
    assert_eq!(views(&s, &["cell", "x"], &join_lists), before);
    assert_eq!(s.full_state_root(), root);
    // Emptied, the Cell takes the 7, which fires the join.
    assert!(s
        .consume(["cell"], [eq(2)], "k", false, &[])
        .unwrap()
        .is_some());
    let comm = s
        .produce("cell", 7, false)
        .unwrap()
        .expect("the join fires");
    assert_eq!(comm.continuation, "wait");
    assert_eq!(matched(&comm), vec![7, 0]);
}

#[test]
fn priority_queue_highest_first_fifo_within_level() {
    let s = preds_with(SpaceConfig::new().data_kind(DataKind::PriorityQueue));
    for (d, p) in [(1, 1), (2, 5), (3, 5), (4, 0), (5, 1)] {
        assert!(s
            .produce_with_priority("pq", d, false, p)
            .unwrap()
            .is_none());
    }
    assert_eq!(values(&s, "pq"), vec![2, 3, 1, 5, 4]);
    let prios: Vec<i64> = s.data(&"pq").iter().map(|d| d.priority).collect();
    assert_eq!(prios, vec![5, 5, 1, 1, 0]);
    // Head only: Eq(1) waits while 2 is the head.
    assert!(s
        .consume(["pq"], [eq(1)], "k1", false, &[])
        .unwrap()
        .is_none());
    let mut got = Vec::new();
    while let Some(c) = s.consume(["pq"], [Any], "k", false, &[]).unwrap() {
        got.push(c.matches[0].datum);
    }
    assert_eq!(got, vec![2, 3, 1, 5, 4]);
}

#[test]
fn priority_queue_produce_above_head_fires() {
    let s = preds_with(SpaceConfig::new().data_kind(DataKind::PriorityQueue));
    s.produce_with_priority("pq", 1, false, 3).unwrap();
    s.consume(["pq"], [eq(9)], "k9", false, &[]).unwrap();
    // Same level: behind the head, so not taken.
    assert!(s
        .produce_with_priority("pq", 9, false, 3)
        .unwrap()
        .is_none());
    // Higher level: the new head.
    let comm = s.produce_with_priority("pq", 9, false, 4).unwrap().unwrap();
    assert_eq!(comm.continuation, "k9");
    assert_eq!(values(&s, "pq"), vec![1, 9]);
}

#[test]
fn priority_is_ignored_outside_priority_queues() {
    let s = preds();
    s.produce_with_priority("a", 1, false, 1).unwrap();
    s.produce_with_priority("a", 2, false, 9).unwrap();
    assert_eq!(
        s.data(&"a")
            .iter()
            .map(|d| (d.value, d.priority))
            .collect::<Vec<_>>(),
        vec![(1, 0), (2, 0)]
    );
}

#[test]
fn documented_limit_head_only_exposed_item_waits_for_a_later_call() {
    let s = preds_with(SpaceConfig::new().data_kind(DataKind::Queue));
    s.produce("q", 1, false).unwrap();
    s.produce("q", 2, false).unwrap();
    assert!(s
        .consume(["q"], [eq(2)], "k2", false, &[])
        .unwrap()
        .is_none());
    let comm = s
        .consume(["q"], [eq(1)], "k1", false, &[])
        .unwrap()
        .unwrap();
    assert_eq!(comm.continuation, "k1");
    // One COMM per call: k2 still waits beside its now-head datum.
    assert_eq!(values(&s, "q"), vec![2]);
    assert_eq!(conts(&s, &["q"]), vec!["k2"]);
    // A later produce offers only its own datum, which is not the head: k2 goes on waiting.
    assert!(s.produce("q", 2, false).unwrap().is_none());
    assert_eq!(values(&s, "q"), vec![2, 2]);
    assert_eq!(conts(&s, &["q"]), vec!["k2"]);
    // Emptied by other consumes, the channel's next datum is its head: that produce fires k2.
    for _ in 0..2 {
        s.consume(["q"], [eq(2)], "other", false, &[])
            .unwrap()
            .expect("the head is 2");
    }
    assert_eq!(conts(&s, &["q"]), vec!["k2"]);
    let comm = s.produce("q", 2, false).unwrap().expect("k2 fires");
    assert_eq!(comm.continuation, "k2");
    assert!(s.is_empty());
}

#[test]
fn a_join_takes_every_pick_on_a_channel_that_compacts_midway() {
    // A channel whose tombstones are one short of compaction: the join's first take tips it
    // over. Compaction renumbers the items, so the channel must not be tidied (compacted)
    // before its last pick is taken, or that pick's number goes stale.
    let s = exact();
    s.produce("a", 1000, false).unwrap();
    for f in 0..66 {
        s.produce("a", f, false).unwrap();
    }
    s.produce("a", 2000, false).unwrap();
    s.produce("a", 3000, false).unwrap();
    for f in 0..66 {
        s.consume(["a"], [f], "filler", false, &[])
            .unwrap()
            .unwrap();
    }
    assert_eq!(values(&s, "a"), vec![1000, 2000, 3000]);
    let comm = s
        .consume(["a", "a"], [2000, 3000], "k", false, &[])
        .unwrap()
        .expect("both are stored");
    assert_eq!(matched(&comm), vec![2000, 3000]);
    assert_eq!(values(&s, "a"), vec![1000]);
}

#[test]
fn documented_limit_head_only_continuation_kind_exposes_a_waiting_match() {
    let s = preds_with(SpaceConfig::new().cont_kind(ContKind::Queue));
    s.consume(["a"], [eq(1)], "k1", false, &[]).unwrap();
    s.consume(["a"], [eq(2)], "k2", false, &[]).unwrap();
    // Only k1 (the oldest) is offered 2: stored.
    assert!(s.produce("a", 2, false).unwrap().is_none());
    assert_eq!(
        s.produce("a", 1, false).unwrap().unwrap().continuation,
        "k1"
    );
    // k2 is now the oldest, beside a stored datum it matches: one COMM per call.
    assert_eq!(values(&s, "a"), vec![2]);
    assert_eq!(conts(&s, &["a"]), vec!["k2"]);
    // A later produce offers it its own datum: k2 fires with that one; the stored 2 stays.
    let comm = s.produce("a", 2, false).unwrap().expect("k2 fires");
    assert_eq!(comm.continuation, "k2");
    assert_eq!(values(&s, "a"), vec![2]);
    assert!(conts(&s, &["a"]).is_empty());
}

#[test]
fn cont_kind_queue_only_oldest_may_fire() {
    let s = preds_with(SpaceConfig::new().cont_kind(ContKind::Queue));
    s.consume(["a"], [eq(1)], "k1", false, &[]).unwrap();
    s.consume(["a"], [Any], "k2", false, &[]).unwrap();
    assert!(
        s.produce("a", 2, false).unwrap().is_none(),
        "k2 is not the oldest"
    );
    assert_eq!(values(&s, "a"), vec![2]);
    assert_eq!(
        s.produce("a", 1, false).unwrap().unwrap().continuation,
        "k1"
    );
    assert_eq!(conts(&s, &["a"]), vec!["k2"]);
}

#[test]
fn cont_kind_stack_only_newest_may_fire() {
    let s = preds_with(SpaceConfig::new().cont_kind(ContKind::Stack));
    s.consume(["a"], [Any], "k1", false, &[]).unwrap();
    s.consume(["a"], [eq(1)], "k2", false, &[]).unwrap();
    assert!(
        s.produce("a", 2, false).unwrap().is_none(),
        "k1 is not the newest"
    );
    assert_eq!(
        s.produce("a", 1, false).unwrap().unwrap().continuation,
        "k2"
    );
    assert_eq!(conts(&s, &["a"]), vec!["k1"]);
}

#[test]
fn cont_kind_bag_any_may_fire() {
    let s = preds_with(SpaceConfig::new().cont_kind(ContKind::Bag));
    s.consume(["a"], [eq(1)], "k1", false, &[]).unwrap();
    s.consume(["a"], [Any], "k2", false, &[]).unwrap();
    assert_eq!(
        s.produce("a", 2, false).unwrap().unwrap().continuation,
        "k2"
    );
}

#[test]
fn cont_kind_set_stores_equal_continuations_once() {
    let s = preds_with(SpaceConfig::new().cont_kind(ContKind::Set));
    for _ in 0..3 {
        assert!(s
            .consume(["a"], [eq(1)], "k", false, &[])
            .unwrap()
            .is_none());
    }
    assert_eq!(conts(&s, &["a"]), vec!["k"]);
    // Differing in continuation, persistence or peeks: stored.
    s.consume(["a"], [eq(1)], "k'", false, &[]).unwrap();
    s.consume(["a"], [eq(1)], "k", true, &[]).unwrap();
    s.consume(["a"], [eq(1)], "k", false, &[0]).unwrap();
    assert_eq!(s.continuations(&["a"]).len(), 4);
    // Any may fire, oldest first.
    s.consume(["a"], [eq(2)], "k2", false, &[]).unwrap();
    assert_eq!(
        s.produce("a", 2, false).unwrap().unwrap().continuation,
        "k2"
    );
}

// ---------------------------------------------------------------------------------------------
// §5 Errors leave everything unchanged
// ---------------------------------------------------------------------------------------------

type US = Space<u32, i64, i64, &'static str, ExactMatch>;

fn busy_space() -> (US, Vec<u32>, Vec<Vec<u32>>) {
    let s: US = Space::new(
        ExactMatch,
        SpaceConfig::new()
            .channel_kind(3, DataKind::Cell)
            .channel_kind(4, DataKind::Queue),
    );
    s.produce(1, 10, false).unwrap();
    s.produce(1, 11, true).unwrap();
    s.produce(2, 20, false).unwrap();
    s.produce(3, 30, false).unwrap();
    s.produce(4, 40, false).unwrap();
    s.produce(4, 41, false).unwrap();
    s.consume([1, 2], [99, 20], "w12", false, &[]).unwrap();
    s.consume([2], [98], "w2", true, &[0]).unwrap();
    s.install([5], [50], "svc").unwrap();
    let chans = vec![1, 2, 3, 4, 5, 6];
    let lists = vec![vec![1], vec![2], vec![1, 2], vec![3], vec![4], vec![5]];
    (s, chans, lists)
}

#[test]
fn every_error_changes_nothing() {
    let (s, chans, lists) = busy_space();
    let before = views(&s, &chans, &lists);
    let root = s.full_state_root();
    let unchanged = |what: &str| {
        assert_eq!(views(&s, &chans, &lists), before, "{what}");
        assert_eq!(s.full_state_root(), root, "{what}: state root");
    };

    let e = s
        .consume(Vec::<u32>::new(), Vec::<i64>::new(), "k", false, &[])
        .unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::EmptyChannels);
    assert_eq!(e.into_inner(), "k");
    unchanged("consume EmptyChannels");
    let e = s
        .install(Vec::<u32>::new(), Vec::<i64>::new(), "k")
        .unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::EmptyChannels);
    unchanged("install EmptyChannels");

    let e = s.consume([1, 2], [10], "k", false, &[]).unwrap_err();
    assert_eq!(
        e.kind(),
        &ErrorKind::LengthMismatch {
            channels: 2,
            patterns: 1
        }
    );
    unchanged("LengthMismatch");
    let e = s.consume([1], [10, 20], "k", false, &[]).unwrap_err();
    assert_eq!(
        e.kind(),
        &ErrorKind::LengthMismatch {
            channels: 1,
            patterns: 2
        }
    );
    let e = s.install([1], [10, 20], "k").unwrap_err();
    assert_eq!(
        e.kind(),
        &ErrorKind::LengthMismatch {
            channels: 1,
            patterns: 2
        }
    );
    unchanged("install LengthMismatch");

    // A peek out of range is refused even though the consume would otherwise fire.
    let e = s
        .consume([1, 2], [10, 20], "k", false, &[0, 2])
        .unwrap_err();
    assert_eq!(
        e.kind(),
        &ErrorKind::PeekOutOfRange {
            index: 2,
            channels: 2
        }
    );
    assert_eq!(e.into_inner(), "k");
    unchanged("PeekOutOfRange");
    let e = s.consume([1], [10], "k", true, &[usize::MAX]).unwrap_err();
    assert_eq!(
        e.kind(),
        &ErrorKind::PeekOutOfRange {
            index: usize::MAX,
            channels: 1
        }
    );
    unchanged("PeekOutOfRange usize::MAX");

    let many: Vec<u32> = (100..100 + MAX_JOIN as u32 + 1).collect();
    let pats: Vec<i64> = vec![0; many.len()];
    let e = s
        .consume(many.clone(), pats.clone(), "k", false, &[])
        .unwrap_err();
    assert_eq!(
        e.kind(),
        &ErrorKind::TooManyChannels {
            channels: MAX_JOIN + 1
        }
    );
    unchanged("TooManyChannels");
    let e = s.install(many, pats, "k").unwrap_err();
    assert_eq!(
        e.kind(),
        &ErrorKind::TooManyChannels {
            channels: MAX_JOIN + 1
        }
    );
    unchanged("install TooManyChannels");

    let e = s.install([1, 2], [10, 20], "svc2").unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::InstallWouldMatch);
    assert_eq!(e.into_inner(), "svc2");
    unchanged("InstallWouldMatch");
    // Persistent datum, repeated channel.
    let e = s.install([1, 1], [11, 11], "svc3").unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::InstallWouldMatch);
    unchanged("InstallWouldMatch on a repeated channel");

    let e = s.produce(3, 31, false).unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::CellFull);
    assert_eq!(e.into_inner(), 31);
    unchanged("CellFull");

    // Display texts exist for every kind (no panic, non-empty).
    for k in [
        ErrorKind::EmptyChannels,
        ErrorKind::LengthMismatch {
            channels: 1,
            patterns: 2,
        },
        ErrorKind::PeekOutOfRange {
            index: 3,
            channels: 1,
        },
        ErrorKind::TooManyChannels { channels: 65 },
        ErrorKind::InstallWouldMatch,
        ErrorKind::CellFull,
    ] {
        assert!(!k.to_string().is_empty());
    }

    // The event log holds no trace of the refused calls: it is the log of a twin space that
    // made the same successful calls and none of the refused ones.
    let (twin, _, _) = busy_space();
    let mine = s.create_checkpoint().unwrap();
    let theirs = twin.create_checkpoint().unwrap();
    assert_eq!(mine.root, theirs.root);
    assert_eq!(
        mine.log, theirs.log,
        "a refused call left an event in the log"
    );

    // And the space still works normally afterwards.
    let comm = s
        .consume([1, 2], [10, 20], "k", false, &[])
        .unwrap()
        .unwrap();
    assert_eq!(matched_u(&comm), vec![10, 20]);
}

/// An event log as sorted text, and a state root.
type LogAndRoot = (Vec<String>, [u8; 32]);

/// The event logs of two spaces since their last hard checkpoint, as sorted text (a multiset:
/// what a replay checks), and their roots; taking them clears both logs.
fn logs_and_roots<C, P, K, A, M>(
    a: &Space<C, P, A, K, M>,
    b: &Space<C, P, A, K, M>,
) -> (LogAndRoot, LogAndRoot)
where
    C: Clone + Eq + std::hash::Hash + rhospace_spaces::Encode,
    P: Clone + Eq + Sync + rhospace_spaces::Encode,
    A: Clone + Eq + std::hash::Hash + Sync + rhospace_spaces::Encode,
    K: Clone + Eq + rhospace_spaces::Encode,
    M: rhospace_matchers::Match<P, A>,
{
    let text = |s: &Space<C, P, A, K, M>| {
        let cp = s.create_checkpoint().unwrap();
        let mut log: Vec<String> = cp.log.iter().map(|e| format!("{e:?}")).collect();
        log.sort();
        (log, cp.root)
    };
    (text(a), text(b))
}

/// SPEC §5, the remaining errors: an embedding of the wrong dimension or with NaN/inf, an
/// unknown root, a replayed call that is not in the log, and a charge that would overdraw.
/// Each leaves the views, the state root, the event log (that of a twin that made only the
/// accepted calls) and the phlogiston balance as they were.
#[test]
fn embedding_root_replay_and_phlogiston_errors_change_nothing() {
    use rhospace_matchers::similarity::{
        EmbeddedDatum, Metric, SimilarityMatch, SimilarityPattern,
    };
    use rhospace_phlogiston::{CostTable, PhlogistonMeter};
    use rhospace_spaces::{ChargingSpace, CheckpointError, ReplayError};

    // Embeddings, on a VectorDB channel with a continuation waiting for [0, 1, 0].
    type VS = Space<u8, SimilarityPattern, EmbeddedDatum<u32>, u8, SimilarityMatch>;
    let vspace = || -> VS {
        let kind = DataKind::VectorDb {
            dim: 3,
            metric: Metric::Cosine,
        };
        let s: VS = Space::new(SimilarityMatch, SpaceConfig::new().data_kind(kind));
        s.produce(0, EmbeddedDatum::new(1, [1.0, 0.0, 0.0]), false)
            .unwrap();
        let want = SimilarityPattern::best([0.0, 1.0, 0.0], Metric::Cosine, 0.9).unwrap();
        assert!(s.consume([0], [want], 7, false, &[]).unwrap().is_none());
        s
    };
    let s = vspace();
    let look = |s: &VS| {
        (
            s.data(&0),
            s.continuations(&[0]),
            s.joins(&0),
            s.channel_count(),
        )
    };
    let before = look(&s);
    let root = s.full_state_root();
    let bad: [(&[f32], bool); 6] = [
        (&[0.0, 1.0], false),
        (&[0.0, 1.0, 0.0, 0.0], true),
        (&[f32::NAN, 1.0, 0.0], false),
        (&[0.0, f32::INFINITY, 0.0], true),
        (&[0.0, 1.0, f32::NEG_INFINITY], false),
        (&[f32::NAN; 3], false),
    ];
    for (v, persist) in bad {
        for ch in [0, 1] {
            let err = s
                .produce(ch, EmbeddedDatum::new(9, v), persist)
                .unwrap_err();
            assert!(matches!(err.kind(), ErrorKind::Embedding(_)), "{v:?}");
            assert_eq!(err.into_inner().value, 9);
            assert_eq!(look(&s), before, "{v:?} on {ch}");
            assert_eq!(s.full_state_root(), root, "{v:?} on {ch}");
            assert!(s.data(&1).is_empty());
        }
    }
    let (mine, twin) = logs_and_roots(&s, &vspace());
    assert_eq!(mine, twin, "a refused embedding left a trace");

    // An unknown root, with roots recorded and calls logged since (`reset` and `rig` need
    // `Decode` channels and continuations). Channels 0 and 1.
    type RS = Space<u8, i64, i64, u8, ExactMatch>;
    let rspace = || -> RS { Space::new(ExactMatch, SpaceConfig::new()) };
    let calls = |s: &RS| {
        s.produce(0, 1, false).unwrap();
        s.create_checkpoint().unwrap();
        s.consume([1], [2], 9, false, &[]).unwrap();
        s.produce(0, 3, true).unwrap();
    };
    let (s, twin) = (rspace(), rspace());
    calls(&s);
    calls(&twin);
    let chans = [0, 1];
    let lists = vec![vec![0], vec![1]];
    let before = views(&s, &chans, &lists);
    let root = s.full_state_root();
    let err = s.reset(&[0xAB; 32]).unwrap_err();
    assert!(matches!(err, CheckpointError::UnknownRoot(r) if r == [0xAB; 32]));
    assert_eq!(views(&s, &chans, &lists), before);
    assert_eq!(s.full_state_root(), root);
    let (mine, twin) = logs_and_roots(&s, &twin);
    assert_eq!(mine, twin, "a refused reset changed the log");

    // A replay: calls the log does not hold are refused; the replay still ends where play did.
    let play = rspace();
    let start = play.create_checkpoint().unwrap().root;
    play.produce(0, 1, false).unwrap();
    play.consume([0, 1], [1, 2], 9, false, &[]).unwrap();
    assert!(play.produce(1, 2, false).unwrap().is_some());
    let block = play.create_checkpoint().unwrap();
    let r = rspace();
    r.rig(&start, &block.log).unwrap();
    assert!(r.produce(0, 1, false).unwrap().is_none());
    let lists = vec![vec![0], vec![1], vec![0, 1]];
    let before = views(&r, &chans, &lists);
    let root = r.full_state_root();
    let err = r.produce(0, 3, false).unwrap_err();
    assert!(matches!(
        err.kind(),
        ErrorKind::Replay(ReplayError::EventNotInLog { .. })
    ));
    assert_eq!(err.into_inner(), 3);
    let err = r.consume([0, 1], [1, 2], 8, false, &[]).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Replay(_)));
    assert_eq!(err.into_inner(), 8);
    assert_eq!(views(&r, &chans, &lists), before);
    assert_eq!(r.full_state_root(), root);
    assert!(r.consume([0, 1], [1, 2], 9, false, &[]).unwrap().is_none());
    assert!(r.produce(1, 2, false).unwrap().is_some());
    let replayed = r
        .create_checkpoint()
        .expect("every logged event used, nothing more");
    assert_eq!(replayed.root, block.root);
    let sorted = |log: &[rhospace_spaces::LogEvent]| {
        let mut v: Vec<String> = log.iter().map(|e| format!("{e:?}")).collect();
        v.sort();
        v
    };
    assert_eq!(sorted(&replayed.log), sorted(&block.log));

    // Out of phlogiston: a meter left with one unit refuses every call that changes state.
    type CS = ChargingSpace<Ch, i64, i64, &'static str, ExactMatch>;
    let meter = std::sync::Arc::new(PhlogistonMeter::new(1_000_000));
    let cs: CS = ChargingSpace::new(exact(), meter.clone(), CostTable::default());
    let twin = exact();
    for s in [cs.space(), &twin] {
        s.produce("a", 1, false).unwrap();
        s.consume(["b"], [2], "k", false, &[]).unwrap();
    }
    cs.produce("c", 5, false).unwrap();
    twin.produce("c", 5, false).unwrap();
    meter.charge(meter.remaining() - 1).unwrap();
    let lists = vec![vec!["a"], vec!["b"], vec!["c"], vec!["a", "c"]];
    let chans = ["a", "b", "c"];
    let before = views(cs.space(), &chans, &lists);
    let root = cs.space().full_state_root();
    let balance = (meter.consumed(), meter.remaining());
    let out = |e: &ErrorKind| matches!(e, ErrorKind::OutOfPhlogiston(_));
    let refusals = [
        cs.produce("b", 2, false)
            .map(|_| ())
            .unwrap_err()
            .kind()
            .clone(),
        cs.produce("d", 1, true)
            .map(|_| ())
            .unwrap_err()
            .kind()
            .clone(),
        cs.consume(["a"], [1], "x", false, &[])
            .map(|_| ())
            .unwrap_err()
            .kind()
            .clone(),
        cs.consume(["a", "c"], [1, 6], "y", false, &[])
            .map(|_| ())
            .unwrap_err()
            .kind()
            .clone(),
        cs.install(["d"], [4], "svc")
            .map(|_| ())
            .unwrap_err()
            .kind()
            .clone(),
    ];
    for (i, e) in refusals.iter().enumerate() {
        assert!(out(e), "refusal {i}: {e:?}");
    }
    assert_eq!(views(cs.space(), &chans, &lists), before);
    assert_eq!(cs.space().full_state_root(), root);
    assert_eq!((meter.consumed(), meter.remaining()), balance);
    assert_eq!(meter.consumed() + meter.remaining(), meter.limit());
    let (mine, twin) = logs_and_roots(cs.space(), &twin);
    assert_eq!(mine, twin, "a refused charge left a trace in the log");
}

fn matched_u(comm: &Comm<u32, i64, i64, &'static str, ()>) -> Vec<i64> {
    comm.matches.iter().map(|m| m.datum).collect()
}

#[test]
fn max_join_is_accepted() {
    let s: US = Space::new(ExactMatch, SpaceConfig::new());
    let chans: Vec<u32> = (0..MAX_JOIN as u32).collect();
    let pats: Vec<i64> = chans.iter().map(|&c| c as i64).collect();
    assert!(s
        .consume(chans.clone(), pats, "wide", false, &[])
        .unwrap()
        .is_none());
    for &c in &chans[..MAX_JOIN - 1] {
        assert!(s.produce(c, c as i64, false).unwrap().is_none());
    }
    let last = chans[MAX_JOIN - 1];
    let comm = s.produce(last, last as i64, false).unwrap().unwrap();
    assert_eq!(comm.matches.len(), MAX_JOIN);
    assert!(s.is_empty());
}

// ---------------------------------------------------------------------------------------------
// §6 Soft checkpoints
// ---------------------------------------------------------------------------------------------

#[test]
fn soft_checkpoint_is_immutable_and_revertible_twice() {
    let s = preds();
    s.produce("a", 1, false).unwrap();
    s.produce("a", 2, true).unwrap();
    s.consume(["a", "b"], [eq(1), Any], "ab", false, &[])
        .unwrap();
    let chans = ["a", "b", "c"];
    let lists = vec![vec!["a"], vec!["b"], vec!["a", "b"], vec!["c"]];
    let at_cp = views(&s, &chans, &lists);
    let cp = s.create_soft_checkpoint();

    // Later operations of every kind.
    let comm = s.produce("b", 5, false).unwrap().unwrap();
    assert_eq!(comm.continuation, "ab");
    s.produce("c", 3, false).unwrap();
    s.consume(["a"], [eq(2)], "k", false, &[]).unwrap();
    s.consume(["c", "c"], [eq(7), Any], "cc", false, &[])
        .unwrap();
    let later = views(&s, &chans, &lists);
    assert_ne!(later, at_cp);
    let cp2 = s.create_soft_checkpoint();

    s.revert_to_soft_checkpoint(&cp).unwrap();
    assert_eq!(views(&s, &chans, &lists), at_cp);
    // The reverted state behaves as the original: b fires the same join again.
    let comm2 = s.produce("b", 5, false).unwrap().unwrap();
    assert_eq!(comm2, comm);
    s.clear();
    assert!(s.is_empty());

    s.revert_to_soft_checkpoint(&cp).unwrap();
    assert_eq!(views(&s, &chans, &lists), at_cp, "second revert");
    s.revert_to_soft_checkpoint(&cp2).unwrap();
    assert_eq!(views(&s, &chans, &lists), later);
    s.revert_to_soft_checkpoint(&cp).unwrap();
    assert_eq!(views(&s, &chans, &lists), at_cp, "back again");
}

#[test]
fn checkpoint_clone_is_independent_of_the_space() {
    let s = exact();
    let cp = s.create_soft_checkpoint();
    let cp_clone = cp.clone();
    for i in 0..100 {
        s.produce("a", i, false).unwrap();
    }
    s.revert_to_soft_checkpoint(&cp_clone).unwrap();
    assert!(s.is_empty());
    s.produce("a", 1, false).unwrap();
    s.revert_to_soft_checkpoint(&cp).unwrap();
    assert!(s.is_empty());
}

/// A checkpoint stays as taken when the state it shares becomes the space's alone again (a
/// revert to an older checkpoint, then that checkpoint dropped) and is written in place: the
/// calls after must not reach a later checkpoint that still shares a channel's entry. On one
/// shard, so that both channels' states sit in one map, and with each channel written several
/// times in a row, so that the space remembers its entry (see `StateMap`).
#[test]
fn a_checkpoint_is_unchanged_by_in_place_writes_to_state_it_shared() {
    for consume in [false, true] {
        let s: ES = Space::with_shards(ExactMatch, SpaceConfig::new(), 1);
        for i in 0..4 {
            s.produce("a", i, false).unwrap();
        }
        let first = s.create_soft_checkpoint();
        s.produce("b", 10, false).unwrap();
        let second = s.create_soft_checkpoint();
        s.revert_to_soft_checkpoint(&first).unwrap();
        drop(first);
        for i in 0..3 {
            if consume {
                assert!(s.consume(["a"], [i], "k", false, &[]).unwrap().is_some());
            } else {
                s.produce("a", 100 + i, false).unwrap();
            }
        }
        let after = values(&s, "a");
        s.revert_to_soft_checkpoint(&second).unwrap();
        assert_eq!(values(&s, "a"), vec![0, 1, 2, 3], "consume: {consume}");
        assert_eq!(values(&s, "b"), vec![10]);
        s.produce("a", 7, false).unwrap();
        s.revert_to_soft_checkpoint(&second).unwrap();
        assert_eq!(values(&s, "a"), vec![0, 1, 2, 3], "second revert");
        assert_ne!(after, vec![0, 1, 2, 3]);
    }
}

#[test]
fn comm_type_alias_compiles() {
    // Keeps the alias used: a COMM from the predicate space has i64 results.
    let s = preds();
    s.produce("a", 3, false).unwrap();
    let c: PComm = s.consume(["a"], [Gt(2)], "k", false, &[]).unwrap().unwrap();
    assert_eq!(c.matches[0].result, 33);
}

// ---------------------------------------------------------------------------------------------
// Large channels: the exact index and tombstone compaction must not change any result.
// ---------------------------------------------------------------------------------------------

/// A produce meeting a join, waiting or installed, whose exact pattern reads a big partner
/// channel looks the partner up in its index, not by a scan (issue 2: finding a matching datum
/// among N must not scan all N). `examined` is the matcher work charged: the pre-check of the
/// produced datum (counted again by a search that fires nothing), and the partner's data
/// equal to the key.
#[test]
fn exact_lookups_on_a_big_join_partner_are_indexed() {
    for installed in [false, true] {
        let s = exact();
        if installed {
            s.install(["a", "b"], [10, 20], "k").unwrap();
        } else {
            assert!(s
                .consume(["a", "b"], [10, 20], "k", true, &[])
                .unwrap()
                .is_none());
        }
        for i in 0..1_000 {
            assert!(s.produce("b", 1_000 + i, false).unwrap().is_none());
        }
        let produce = |channel: Ch, datum: i64| {
            let mut examined = None;
            let comm = s
                .produce_admitted(channel, datum, false, 0, |a| {
                    examined = Some(a.examined);
                    Ok(())
                })
                .unwrap();
            (comm, examined.unwrap())
        };
        for _ in 0..3 {
            let (comm, examined) = produce("a", 10);
            assert!(comm.is_none(), "installed {installed}");
            assert_eq!(examined, 2, "installed {installed}: a scan examines 1,002");
        }
        // The key arrives among the 1,000 others: the join fires with one of the 10s stored.
        let (comm, _) = produce("b", 20);
        let comm = comm.expect("the join fires");
        assert_eq!((comm.matches[0].datum, comm.matches[1].datum), (10, 20));
        assert_eq!((s.data(&"a").len(), s.data(&"b").len()), (2, 1_000));
    }
}

/// A Bag or Set channel whose oldest datum never leaves while hundreds of later ones are taken
/// from the middle (so tombstones pile up and get compacted), checked against a plain `Vec`
/// after every call, through joins with a second channel, and across a checkpoint.
#[test]
fn big_channels_with_index_and_compaction_agree_with_a_vec() {
    for kind in [DataKind::Bag, DataKind::Set] {
        let s: Space<u8, i64, i64, u32, ExactMatch> =
            Space::new(ExactMatch, SpaceConfig::new().data_kind(kind));
        let mut model: Vec<i64> = Vec::new();
        let produce = |s: &Space<u8, i64, i64, u32, ExactMatch>, m: &mut Vec<i64>, v: i64| {
            let got = s.produce(0, v, false).unwrap();
            assert!(got.is_none());
            if !(kind == DataKind::Set && m.contains(&v)) {
                m.push(v);
            }
        };
        produce(&s, &mut model, -1);
        let mut x: u64 = 42;
        let mut cp = None;
        for step in 0..3000u32 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let v = ((x >> 33) % 400) as i64;
            if step == 1500 {
                cp = Some((s.create_soft_checkpoint(), model.clone()));
            }
            // Mostly produces first, then mostly consumes: tombstones outnumber live items.
            let produce_percent = if step < 1200 { 80 } else { 25 };
            if (x >> 20) % 100 < produce_percent {
                produce(&s, &mut model, v);
            } else {
                let want = model.iter().position(|&d| d == v);
                let got = if (x >> 25).is_multiple_of(2) {
                    s.consume([0u8], [v], step, false, &[]).unwrap()
                } else {
                    // A join with a persistent datum on another channel.
                    s.produce(1, 7, true).unwrap();
                    s.consume([1u8, 0], [7, v], step, false, &[]).unwrap()
                };
                match want {
                    Some(at) => {
                        let comm = got.unwrap_or_else(|| {
                            panic!("{kind:?} step {step}: {v} stored but not found")
                        });
                        assert_eq!(comm.matches.last().unwrap().datum, v);
                        model.remove(at);
                    }
                    None => {
                        assert!(got.is_none(), "{kind:?} step {step}: matched a missing {v}");
                        // Satisfy the waiting continuation at once so it does not linger.
                        let comm = s
                            .produce(0, v, false)
                            .unwrap()
                            .expect("waiting consume fires");
                        assert_eq!(comm.continuation, step);
                    }
                }
            }
            if step % 97 == 0 || step > 2900 {
                assert_eq!(values_u(&s, 0), model, "{kind:?} step {step}");
            }
        }
        assert_eq!(values_u(&s, 0), model);
        let (cp, old) = cp.unwrap();
        s.revert_to_soft_checkpoint(&cp).unwrap();
        assert_eq!(values_u(&s, 0), old, "{kind:?} after revert");
        // Exact lookups still find each stored value (oldest first) after the revert.
        for v in old
            .iter()
            .copied()
            .filter(|v| *v >= 0)
            .take(50)
            .collect::<Vec<_>>()
        {
            let comm = s
                .consume([0u8], [v], 0, false, &[])
                .unwrap()
                .expect("found");
            assert_eq!(comm.matches[0].datum, v);
        }
    }
}

fn values_u(s: &Space<u8, i64, i64, u32, ExactMatch>, c: u8) -> Vec<i64> {
    s.data(&c).iter().map(|d| d.value).collect()
}

#[test]
fn priority_extremes_order_correctly() {
    let s = preds_with(SpaceConfig::new().data_kind(DataKind::PriorityQueue));
    for (d, p) in [(1, 0), (2, i64::MIN), (3, i64::MAX), (4, -1), (5, i64::MAX)] {
        s.produce_with_priority("pq", d, false, p).unwrap();
    }
    assert_eq!(values(&s, "pq"), vec![3, 5, 1, 4, 2]);
    let comm = s
        .consume(["pq", "pq"], [Any, eq(5)], "k", false, &[])
        .unwrap()
        .unwrap();
    assert_eq!(matched(&comm), vec![3, 5]);
}

/// A channel left with no data and no join group has no entry: `is_empty` and `channel_count`
/// see it gone, also when the COMM's last position on that channel used the produced datum
/// (waiting or installed continuation) or only peeked at it.
#[test]
fn emptied_channel_leaves_no_entry_after_a_produce_join() {
    // Waiting continuation, produced datum at the last position on the channel.
    let s = exact();
    s.produce("a", 1, false).unwrap();
    s.consume(["a", "a"], [1, 2], "k", false, &[]).unwrap();
    assert!(s.produce("a", 2, false).unwrap().is_some());
    assert!(s.data(&"a").is_empty() && s.joins(&"a").is_empty());
    assert_eq!(s.channel_count(), 0, "waiting join: stale entry for a");
    assert!(s.is_empty());

    // Installed continuation.
    let s = exact();
    s.produce("a", 1, false).unwrap();
    s.install(["a", "a"], [1, 2], "svc").unwrap();
    assert!(s.produce("a", 2, false).unwrap().is_some());
    assert_eq!(s.channel_count(), 0, "installed join: stale entry for a");
    assert!(s.is_empty());

    // The produced datum only peeked at the last position.
    let s = exact();
    s.produce("a", 1, false).unwrap();
    s.consume(["a", "a"], [1, 2], "k", false, &[1]).unwrap();
    let comm = s.produce("a", 2, false).unwrap().unwrap();
    assert!(comm.reissue);
    assert_eq!(s.channel_count(), 0, "peeked join: stale entry for a");
    assert!(s.is_empty());
}
