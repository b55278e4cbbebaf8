//! Parallel matching through the space (issue 6): a channel with more than
//! `PARALLEL_MIN_CANDIDATES` data is pre-checked on the space's scan pool, and the COMMs and
//! the contents are those of the serial order (oldest first) with 1, 2 and 8 scan threads, and
//! when called from a rayon worker thread (where the space scans serially).

use rhospace::spaces::PARALLEL_MIN_CANDIDATES;
use rhospace::{Pattern, Space, SpaceConfig, StructuralMatch, Term};

type S = Space<u32, Pattern, Term, u32, StructuralMatch>;

/// Data `[i, i % 97]` for i in a scrambled order, so "oldest first" is not "smallest first".
fn filled(n: usize, threads: usize) -> S {
    let s: S = Space::new(StructuralMatch, SpaceConfig::new())
        .with_event_log(false)
        .with_scan_threads(threads);
    for j in 0..n as i64 {
        let i = (j * 7919) % n as i64;
        s.produce(0, Term::list([Term::from(i), Term::from(i % 97)]), false)
            .unwrap();
        if j % 3 == 0 {
            s.produce(1, Term::list([Term::from(i), Term::from(i % 5)]), false)
                .unwrap();
        }
    }
    s
}

/// `[_, k]`: not an exact pattern, so no index narrows the candidates.
fn tail(k: i64) -> Pattern {
    Pattern::list([Pattern::wildcard(), Pattern::lit(Term::from(k))])
}

type Run = (Vec<Vec<Term>>, Vec<Term>, Vec<Term>);

/// A run of consumes (single channel and a join) on a space with `threads` scan threads, and
/// what each took.
fn run(threads: usize) -> Run {
    let n = PARALLEL_MIN_CANDIDATES + 1_500;
    let s = filled(n, threads);
    let mut taken = Vec::new();
    for k in [96, 0, 13, 96, 50] {
        let c = s.consume([0], [tail(k)], 1, false, &[]).unwrap();
        taken.push(c.unwrap().matches.into_iter().map(|m| m.datum).collect());
    }
    for (a, b) in [(3, 4), (96, 0)] {
        let c = s
            .consume([0, 1], [tail(a), tail(b)], 2, false, &[])
            .unwrap();
        taken.push(c.unwrap().matches.into_iter().map(|m| m.datum).collect());
    }
    let left0 = s.data(&0).into_iter().map(|d| d.value).collect();
    let left1 = s.data(&1).into_iter().map(|d| d.value).collect();
    (taken, left0, left1)
}

/// [`run`] called from a worker of a rayon pool of `threads` threads.
fn run_on_a_worker(threads: usize) -> Run {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| run(threads))
}

#[test]
fn parallel_matching_takes_what_the_serial_order_takes_on_any_thread_count() {
    let one = run(1);
    // The serial order: each consume takes the oldest datum whose tail matches.
    let n = (PARALLEL_MIN_CANDIDATES + 1_500) as i64;
    let oldest = |k: i64, skip: usize| {
        (0..n)
            .map(|j| (j * 7919) % n)
            .filter(|i| i % 97 == k)
            .nth(skip)
            .map(|i| Term::list([Term::from(i), Term::from(k)]))
            .unwrap()
    };
    assert_eq!(one.0[0], vec![oldest(96, 0)]);
    assert_eq!(
        one.0[3],
        vec![oldest(96, 1)],
        "the second consume takes the next one"
    );
    assert_eq!(one.0[2], vec![oldest(13, 0)]);
    for threads in [2, 8] {
        assert_eq!(run(threads), one, "{threads} threads");
        assert_eq!(run_on_a_worker(threads), one, "on a worker of {threads}");
    }
}
