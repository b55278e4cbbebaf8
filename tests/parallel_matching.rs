//! Parallel matching through the space (issue 6): a channel with more than
//! `PARALLEL_MIN_CANDIDATES` data is pre-checked on the space's scan pool, and the COMMs and
//! the contents are those of the serial order (oldest first) with 1, 2 and 8 scan threads, and
//! when called from a rayon worker thread (where the space scans serially); batches whose
//! searches run the parallel pre-check give what their items give one by one, with 1, 2 and 4
//! scan threads (SPEC §3).

use rhospace::matchers::Predicate;
use std::sync::Arc;

use rhospace::phlogiston::{CostTable, PhlogistonMeter};
use rhospace::spaces::PARALLEL_MIN_CANDIDATES;
use rhospace::spaces::{ChargingSpace, ConsumeRequest};
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

/// The datum `[i, i % 97]` that [`filled`] produced on channel 0 at call `j`.
fn nth_datum(n: usize, j: usize) -> Term {
    let i = (j as i64 * 7919) % n as i64;
    Term::list([Term::from(i), Term::from(i % 97)])
}

/// `[i, _]` for the data [`filled`] produced on channel 0 at calls `js`: far apart and past
/// the serial probe, so only the parallel scan finds them, and it must find the oldest.
fn spread(n: usize, js: &[usize]) -> Pattern {
    let firsts: Vec<i64> = js.iter().map(|&j| (j as i64 * 7919) % n as i64).collect();
    let name = format!("first in {firsts:?}");
    let test = move |t: &Term| t.as_int().is_some_and(|i| firsts.contains(&i));
    Pattern::list([
        Pattern::pred(Predicate::new(name, test)),
        Pattern::wildcard(),
    ])
}

/// What a run of batches through big channels gave: every item's outcome as text, then the
/// views of channels 0, 1 and 5 and of the joins on 5 and 0, and the hard checkpoint.
type BatchRun = (Vec<String>, String, rhospace::spaces::Checkpoint);

/// Batches whose searches scan channel 0 (more than [`PARALLEL_MIN_CANDIDATES`] data) on a
/// space with `threads` scan threads, `batched` or one item at a time: consumes on channel 0
/// alone (one for a datum only a scan past the serial probe finds), with a peek, persistent,
/// and joined with channel 1; joins on channels 5 and 0 that wait; then produces on channel 5
/// whose searches scan channel 0 for a waiting join's partner, between produces that store
/// on channel 0 and on a fresh channel.
fn run_batches(threads: usize, batched: bool) -> BatchRun {
    let n = PARALLEL_MIN_CANDIDATES + 1_500;
    let s = filled(n, threads);
    let request = |chans: &[u32], pats: &[Pattern], k: u32, persist: bool, peeks: &[usize]| {
        let mut r = ConsumeRequest::new(chans.to_vec(), pats.to_vec(), k);
        r.persist = persist;
        r.peeks.extend(peeks.iter().copied());
        r
    };
    let requests = vec![
        request(&[0], &[spread(n, &[2_000, 5_000, n - 3])], 8, false, &[]),
        request(
            &[5, 0],
            &[tail(9), spread(n, &[n - 40, n - 20])],
            9,
            false,
            &[],
        ),
        request(&[0], &[tail(96)], 1, false, &[]),
        request(&[0], &[tail(13)], 2, false, &[0]),
        request(&[0, 1], &[tail(3), tail(4)], 3, false, &[]),
        request(&[0], &[tail(96)], 4, true, &[]),
        request(&[5, 0], &[tail(7), tail(7)], 5, false, &[]),
        request(&[5, 0], &[tail(8), tail(50)], 6, true, &[1]),
        request(&[0, 1], &[tail(96), tail(200)], 7, false, &[]),
    ];
    let produces = vec![
        (5, Term::list([Term::from(0), Term::from(9)]), false),
        (0, Term::list([Term::from(-1), Term::from(7)]), false),
        (5, Term::list([Term::from(1), Term::from(7)]), false),
        (5, Term::list([Term::from(2), Term::from(8)]), false),
        (9, Term::list([Term::from(3), Term::from(7)]), false),
        (5, Term::list([Term::from(4), Term::from(8)]), true),
        (5, Term::list([Term::from(5), Term::from(7)]), false),
    ];
    let mut out: Vec<String> = Vec::new();
    if batched {
        let got = s.consume_batch(requests);
        out.extend(got.iter().map(|r| format!("{r:?}")));
        let got = s.produce_batch(produces);
        out.extend(got.iter().map(|r| format!("{r:?}")));
    } else {
        for r in requests {
            let got = s.consume(r.channels, r.patterns, r.continuation, r.persist, &r.peeks);
            out.push(format!("{got:?}"));
        }
        for (c, d, p) in produces {
            out.push(format!("{:?}", s.produce(c, d, p)));
        }
    }
    let views = format!(
        "{:?}\n{:?}\n{:?}\n{:?}",
        s.data(&0),
        s.data(&1),
        s.data(&5),
        s.continuations(&[5, 0])
    );
    (out, views, s.create_checkpoint().unwrap())
}

/// SPEC §3 determinism for batches: batches whose searches run the parallel pre-check give
/// the same results, views and state root with 1, 2 and 4 scan threads, and from a rayon
/// worker thread (where the space scans serially), as the same items called one by one; and
/// the COMMs fire where the serial order says.
#[test]
fn batches_through_parallel_scans_do_not_depend_on_thread_count() {
    let one = run_batches(1, false);
    let fired: Vec<bool> = one.0.iter().map(|r| r.starts_with("Ok(Some")).collect();
    // Requests 0 (a late datum) and 1 (a join that waits on channel 5), then: requests 0-3
    // find data; the joins on channel 5 wait, and so does request 6 (no datum
    // on channel 1 has the tail 200). The produce on 0 is stored
    // (nothing waits on 0 alone), the first on 5 meets join 5 (the persistent join 6 waits
    // for [_, 8]), the second meets join 6, the one on 9 is stored, the persistent [_, 8]
    // meets join 6 again, and the last [_, 7] finds no join left for it. First of the
    // produces, [0, 9] on 5 meets request 1's join, scanning channel 0 for the late datum.
    assert_eq!(
        fired,
        [
            true, false, true, true, true, true, false, false, false, true, false, true, true,
            false, true, false
        ],
        "{:#?}",
        one.0
    );
    // The oldest of the spread-out data each time.
    let n = PARALLEL_MIN_CANDIDATES + 1_500;
    let took = |at: usize, j: usize| one.0[at].contains(&format!("datum: {:?}", nth_datum(n, j)));
    assert!(took(0, 2_000), "{}", one.0[0]);
    assert!(took(9, n - 40), "{}", one.0[9]);
    for threads in [1, 2, 4] {
        for batched in [false, true] {
            let got = run_batches(threads, batched);
            assert_eq!(
                got.0, one.0,
                "{threads} threads, batched {batched}: results"
            );
            assert_eq!(got.1, one.1, "{threads} threads, batched {batched}: views");
            assert_eq!(
                got.2.root, one.2.root,
                "{threads} threads, batched {batched}: root"
            );
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let on_worker = pool.install(|| run_batches(threads, true));
        assert_eq!(on_worker.0, one.0, "on a worker of {threads}: results");
        assert_eq!(
            on_worker.2.root, one.2.root,
            "on a worker of {threads}: root"
        );
    }
}

/// A charged run of searches that scan channel 0 past the serial probe on a space with
/// `threads` scan threads and a meter of `limit`: each call's outcome as text with the meter's
/// consumption after it, then the state root.
fn charged_run(threads: usize, limit: u64) -> (Vec<String>, rhospace::spaces::Checkpoint) {
    let n = PARALLEL_MIN_CANDIDATES + 1_500;
    let space = ChargingSpace::new(
        filled(n, threads),
        Arc::new(PhlogistonMeter::new(limit)),
        CostTable::default(),
    );
    let mut out = Vec::new();
    let calls: [(Vec<u32>, Vec<Pattern>); 4] = [
        (vec![0], vec![spread(n, &[2_000, 5_000, n - 3])]),
        // Misses after backtracking over every `[_, 96]` on channel 0.
        (vec![0, 1], vec![tail(96), tail(200)]),
        (vec![0, 1], vec![tail(3), spread(n, &[n - 9])]),
        (vec![0], vec![spread(n, &[n - 2])]),
    ];
    for (k, (channels, patterns)) in calls.into_iter().enumerate() {
        let got = space.consume(channels, patterns, k as u32, false, &[]);
        out.push(format!("{got:?} after {}", space.meter().consumed()));
        assert_eq!(
            space.meter().consumed() + space.meter().remaining(),
            limit,
            "the meter's books balance"
        );
    }
    (out, space.space().create_checkpoint().unwrap())
}

/// SPEC §3 and §8: what a search through the parallel pre-check is charged does not depend on
/// the scan thread count (speculative matcher calls past the first accepted candidate are not
/// charged). With a meter that lets every call through and with meters that run out inside
/// one of the calls, 1, 2 and 4 scan threads give the same outcomes (refusals included), the
/// same consumption after each call and the same state root.
#[test]
fn charges_through_parallel_scans_do_not_depend_on_thread_count() {
    let (full, _) = charged_run(1, u64::MAX / 4);
    assert!(
        full.iter().all(|r| !r.contains("OutOfPhlogiston")),
        "{full:#?}"
    );
    let spent: Vec<u64> = full
        .iter()
        .map(|r| r.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    // Limits that stop the second call (the long miss) and the third, midway.
    let mut limits = vec![u64::MAX / 4];
    limits.push(spent[0] + (spent[1] - spent[0]) / 2);
    limits.push(spent[1] + (spent[2] - spent[1]) / 2);
    for limit in limits {
        let (one, root) = charged_run(1, limit);
        if limit < u64::MAX / 4 {
            assert!(
                one.iter().any(|r| r.contains("OutOfPhlogiston")),
                "limit {limit}: {one:#?}"
            );
        }
        for threads in [2, 4] {
            let (got, got_root) = charged_run(threads, limit);
            assert_eq!(got, one, "limit {limit}, {threads} threads");
            assert_eq!(got_root.root, root.root, "limit {limit}, {threads} threads");
        }
    }
}
