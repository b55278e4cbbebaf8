//! SPEC §5 ("no input reachable through the public API panics") for the structural matcher's
//! unbounded depth: a term 100,000 levels deep, and a pattern as deep, go through a space on
//! a test thread's ordinary stack. Produce, an exact (hash-indexed) consume of an equal term
//! built apart, a binding consume, the COMM's `Debug`, hard checkpoints, a reset that decodes
//! from the history store in a fresh space, and a replay of the log all finish, and give the
//! same state as before.

use std::sync::Arc;

use rhospace_matchers::{Pattern, StructuralMatch, Term, MAX_PATTERN_DEPTH};
use rhospace_spaces::{MemoryHistory, Space, SpaceConfig};

type S = Space<u32, Pattern, Term, u32, StructuralMatch>;

const DEPTH: usize = 100_000;

/// A term `DEPTH` levels deep, through lists, tuples and records in turn; built afresh on
/// every call, so two calls give equal terms that share no node.
fn deep_term() -> Term {
    let mut t = Term::int(0);
    for i in 0..DEPTH {
        t = match i % 3 {
            0 => Term::list([t]),
            1 => Term::tuple([t, Term::int(1)]),
            _ => Term::record([("k", t), ("j", Term::int(2))]),
        };
    }
    t
}

/// A pattern `DEPTH` levels deep: beyond [`MAX_PATTERN_DEPTH`], so it matches nothing.
fn deep_pattern() -> Pattern {
    let mut p = Pattern::bind("x");
    for _ in 0..DEPTH {
        p = Pattern::list([p]);
    }
    p
}

#[test]
fn deep_terms_and_patterns_go_through_the_space() {
    let history = Arc::new(MemoryHistory::new());
    let s: S = Space::new(StructuralMatch, SpaceConfig::new()).with_history(history.clone());
    let start = s.create_checkpoint().unwrap().root;
    // Enough shallow data beside it that an exact pattern is answered by the hash index.
    for i in 0..20 {
        s.produce(1, Term::int(i), false).unwrap();
    }
    s.produce(1, deep_term(), false).unwrap();
    let deep = deep_pattern();
    assert!(deep.depth() > MAX_PATTERN_DEPTH);
    assert!(s
        .consume([2], [deep.clone()], 8, false, &[])
        .unwrap()
        .is_none());
    s.produce(2, deep_term(), false).unwrap();

    // An exact consume of an equal term built apart: hashed, compared, taken.
    let comm = s
        .consume([1], [Pattern::lit(deep_term())], 7, false, &[])
        .unwrap()
        .expect("the deep datum matches its equal literal");
    assert_eq!(comm.matches[0].datum, deep_term());
    assert!(format!("{comm:?}").len() > DEPTH);
    drop(comm);
    s.produce(3, deep_term(), true).unwrap();
    let cp = s.create_checkpoint().unwrap();
    let data = |s: &S, c: u32| s.data(&c).into_iter().map(|d| d.value).collect::<Vec<_>>();
    let want = (data(&s, 1), data(&s, 2), data(&s, 3), s.continuations(&[2]));

    // A fresh space decodes the state from the history store.
    let fresh: S = Space::new(StructuralMatch, SpaceConfig::new()).with_history(history);
    fresh.reset(&cp.root).unwrap();
    assert_eq!(fresh.full_state_root(), cp.root);
    assert_eq!(
        (
            data(&fresh, 1),
            data(&fresh, 2),
            data(&fresh, 3),
            fresh.continuations(&[2])
        ),
        want
    );
    // A binding consume: the persistent deep datum fills both positions, equal to itself.
    let binds = fresh
        .consume(
            [3, 3],
            [Pattern::bind("x"), Pattern::bind("x")],
            9,
            false,
            &[],
        )
        .unwrap()
        .expect("a persistent datum fills both positions");
    assert_eq!(binds.matches[0].result.get("x"), Some(&deep_term()));
    drop(binds);

    // A replay of the log from the starting root ends at the same root.
    let replay: S = Space::new(StructuralMatch, SpaceConfig::new());
    replay.rig(&start, &cp.log).unwrap();
    for i in 0..20 {
        replay.produce(1, Term::int(i), false).unwrap();
    }
    replay.produce(1, deep_term(), false).unwrap();
    assert!(replay
        .consume([2], [deep], 8, false, &[])
        .unwrap()
        .is_none());
    replay.produce(2, deep_term(), false).unwrap();
    assert!(replay
        .consume([1], [Pattern::lit(deep_term())], 7, false, &[])
        .unwrap()
        .is_some());
    replay.produce(3, deep_term(), true).unwrap();
    assert_eq!(replay.create_checkpoint().unwrap().root, cp.root);
}
