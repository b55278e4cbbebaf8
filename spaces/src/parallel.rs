//! Parallel matching: a rayon pre-check of a join position's candidates that chooses exactly
//! what the serial order chooses.
//!
//! **Algorithm (ordered speculative pre-check).** When a join position scans a channel with at
//! least [`PARALLEL_MIN_CANDIDATES`] candidates (and neither an exact index narrows them nor,
//! for a one-channel consume, the oldest one equals the exact key), the search
//! lists the candidates once, in the channel's order (the order
//! [`for_each_candidate`](crate::data::DataStore::for_each_candidate) hands out), and walks
//! that list serially as before. What changes is how it learns whether the position's pattern
//! accepts candidate `i`: instead of calling the matcher there, it asks for the *first accepted
//! index at or after* the frontier of what it already knows, and that question is answered by
//! a short serial probe ([`SERIAL_PROBE`] items) followed, if the probe found nothing, by
//! rayon's `position_first` over the rest. `position_first` returns the lowest accepted index
//! whatever the thread count or the work-stealing schedule, so the walk sees exactly the
//! accept/reject answers a serial scan would see, and picks the same candidate. Backtracking
//! re-walks the same list and reuses the answers already known.
//!
//! **Guarantees.**
//! - *Determinism*: the chosen assignment, the match results and the metered work are those of
//!   the serial search on any number of threads (checked by this module's tests with 1, 2 and 8
//!   rayon threads). Replay's guide sees the complete assignments in the same order.
//! - *Metering*: `examined` counts the matcher calls the *serial* search would make (one per
//!   usable candidate the walk reaches). Speculative calls made past the first accepted
//!   candidate by other threads are not charged: they depend on scheduling, and charging them
//!   would make the meter depend on the thread count.
//! - *Wasted work* is bounded by what the other threads do before the first hit is published,
//!   plus one extra serial matcher call per accepted candidate actually taken (the walk calls
//!   the matcher again to get its result, which the pre-check does not keep).
//!
//! **Assumption.** The matcher is a pure function of (pattern, datum), as SPEC §3 and every
//! matcher of this workspace have it: the pre-check may call it on candidates the serial search
//! would not reach, and from several threads.
//!
//! **Bounds.** Sharing patterns and data across threads needs `P: Sync` and `A: Sync` (the
//! [`Match`] trait already requires `Send + Sync` of the matcher and its output). The search
//! entry that runs the pre-check, [`search`], carries those bounds, and so do the space's
//! operations, which call it for every join search.
//!
//! **Limits.** Head-only channels (Queue, Stack, PriorityQueue, Cell) and indexed exact
//! patterns offer one or a few candidates, and similarity positions are ranked by the vector
//! index: those keep the serial path. Under `cfg(loom)` everything is serial.

#[cfg(not(loom))]
use rayon::prelude::*;
use rhospace_matchers::Match;

use crate::budget::Budget;
use crate::data::StoredDatum;
use crate::join::{search as join_search, Fit, Found, Guide, Incoming, Join, Outcome};

/// Candidate count from which a join position's candidates are pre-checked in parallel.
///
/// Chosen by measurement: `cargo bench --bench parallel_matching -- --warm-up-time 1
/// --measurement-time 3` on the shared 2-core development VM (load average about 4 from other
/// builds, so the second core was only partly free), scanning for an open-record structural
/// pattern that only the last datum meets. Medians, serial scan vs parallel scan:
///
/// | candidates | serial | parallel | parallel / serial |
/// |---|---|---|---|
/// | 1,000 | 12.2 µs | 19.7 µs | 1.61 |
/// | 2,000 | 24.2 µs | 34.6 µs | 1.43 |
/// | 5,000 | 62.5 µs | 63.5 µs | 1.02 |
/// | 10,000 | 130.5 µs | 124.0 µs | 0.95 |
/// | 100,000 | 1.273 ms | 1.127 ms | 0.89 |
///
/// (The naive `iter().position` baseline: 11.5 µs, 22.1 µs, 58.7 µs, 120.6 µs, 1.178 ms.)
/// Parallel breaks even near 5,000 and wins from 10,000, so the threshold is the power of two
/// between them. On an idle many-core machine the crossover is lower and the win larger; the
/// threshold stays conservative so small channels never pay rayon's fork/join.
///
/// ```
/// assert!(rhospace_spaces::PARALLEL_MIN_CANDIDATES > 0);
/// ```
pub const PARALLEL_MIN_CANDIDATES: usize = 8192;

/// The most threads a space's own scan pool may have
/// ([`Space::with_scan_threads`](crate::Space::with_scan_threads) clamps to it): each is an
/// OS thread, and a scan cannot use more than it has candidates to split.
///
/// ```
/// assert!(rhospace_spaces::MAX_SCAN_THREADS >= 16);
/// ```
pub const MAX_SCAN_THREADS: usize = 256;

/// Items checked serially before a parallel scan starts: a hit close to the frontier (the
/// common case once a search backtracks) costs no fork/join.
pub(crate) const SERIAL_PROBE: usize = 128;

/// The first index in `from..len` that `accept` holds for, the lowest one whatever the thread
/// count: a serial probe of `min(SERIAL_PROBE, threshold)` items (so a threshold of 0 forces
/// the parallel scan outright), then rayon's `position_first` when at least `threshold` items
/// remain (serially otherwise).
///
/// `on`: where the parallel scan runs ([`ScanOn`]); a caller holding shard locks never scans
/// where a waiting thread could run other work.
pub(crate) fn next_accepted(
    from: usize,
    len: usize,
    threshold: usize,
    on: ScanOn<'_>,
    accept: &(dyn Fn(usize) -> bool + Sync),
) -> Option<usize> {
    let probe_end = from.saturating_add(SERIAL_PROBE.min(threshold)).min(len);
    if let Some(i) = (from..probe_end).find(|&i| accept(i)) {
        return Some(i);
    }
    let rest = len.saturating_sub(probe_end);
    if rest == 0 {
        return None;
    }
    #[cfg(loom)]
    let _ = on;
    #[cfg(not(loom))]
    if rest >= threshold {
        let scan = || {
            (probe_end..len)
                .into_par_iter()
                .position_first(accept)
                .map(|k| probe_end + k)
        };
        match on {
            ScanOn::Serial => {}
            ScanOn::Current => return scan(),
            // On a rayon worker thread (any pool's) a wait would run other tasks: serially.
            ScanOn::Dedicated(_) if rayon::current_thread_index().is_some() => {}
            ScanOn::Dedicated(pool) => {
                let pool = match pool {
                    Some(pool) => Some(pool),
                    None => shared_scan_pool(),
                };
                if let Some(pool) = pool {
                    return pool.install(scan);
                }
            }
        }
    }
    (probe_end..len).find(|&i| accept(i))
}

/// Where a parallel scan runs.
#[derive(Clone, Copy, Debug)]
// Under loom every scan is serial: the pool is never read.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) enum ScanOn<'p> {
    /// On the current rayon pool (the global one outside `install`): for callers that hold no
    /// lock ([`first_match_from`] and the tests).
    Current,
    /// On a pool that runs nothing but scans: this one, or with `None` the process's shared
    /// scan pool ([`shared_scan_pool`]); entered only from a thread that is no rayon worker,
    /// serially on one. For callers holding shard locks.
    ///
    /// A thread that waits inside rayon for a stolen part of its scan runs other tasks of its
    /// pool meanwhile. Were the scan on the caller's pool (or the global one) while the caller
    /// holds shard locks, such a task could be another space operation, which then waits for a
    /// shard lock held lower on the same thread's stack (a deadlock), or takes a lower shard
    /// than one held (the lock order). On a pool whose every task is a scan, which takes no
    /// lock, a waiting thread can only run scans; and `install` from outside any pool blocks
    /// without running tasks, while from another pool's worker it would run that pool's tasks
    /// while it waits, so a worker scans serially.
    Dedicated(Option<&'p rayon::ThreadPool>),
    /// Serially (a space whose own pool could not be started).
    Serial,
}

/// The process's shared scan pool (one thread per core), built on first use; `None` if its
/// threads could not be started (such scans then run serially, with the same results).
#[cfg(not(loom))]
fn shared_scan_pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: std::sync::OnceLock<Option<rayon::ThreadPool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| scan_pool(0)).as_ref()
}

/// A pool of `threads` threads for scans (0: one per core); `None` if its threads could not
/// be started.
pub(crate) fn scan_pool(threads: usize) -> Option<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("rhospace-scan-{i}"))
        .build()
        .ok()
}

/// The index of the first datum of `data` that `pattern` accepts: what
/// `data.iter().position(|a| matcher.get(pattern, a).is_some())` returns, computed in parallel
/// when `data` has at least [`PARALLEL_MIN_CANDIDATES`] items. The same kernel the space's join
/// search uses for a position's pre-check.
///
/// Time: O(n) matcher calls, spread over the current rayon pool's threads; the answer does not
/// depend on their number.
///
/// ```
/// use rhospace_matchers::{Pattern, StructuralMatch, Term};
/// use rhospace_spaces::first_match;
/// let data: Vec<Term> = (0..10_000).map(Term::int).collect();
/// assert_eq!(first_match(&StructuralMatch, &Pattern::lit(9_000), &data), Some(9_000));
/// assert_eq!(first_match(&StructuralMatch, &Pattern::lit(-1), &data), None);
/// ```
pub fn first_match<P, A, M>(matcher: &M, pattern: &P, data: &[A]) -> Option<usize>
where
    P: Sync,
    A: Sync,
    M: Match<P, A>,
{
    first_match_from(matcher, pattern, data, PARALLEL_MIN_CANDIDATES)
}

/// [`first_match`] with an explicit threshold: `data` is scanned in parallel when at least
/// `threshold` items remain after the serial probe (`usize::MAX`: always serial). For
/// benchmarks and tests that force one path.
///
/// ```
/// use rhospace_matchers::{Pattern, StructuralMatch, Term};
/// use rhospace_spaces::first_match_from;
/// let data: Vec<Term> = (0..1_000).map(Term::int).collect();
/// let p = Pattern::lit(999);
/// assert_eq!(first_match_from(&StructuralMatch, &p, &data, 0), Some(999));
/// assert_eq!(first_match_from(&StructuralMatch, &p, &data, usize::MAX), Some(999));
/// ```
pub fn first_match_from<P, A, M>(
    matcher: &M,
    pattern: &P,
    data: &[A],
    threshold: usize,
) -> Option<usize>
where
    P: Sync,
    A: Sync,
    M: Match<P, A>,
{
    next_accepted(0, data.len(), threshold, ScanOn::Current, &|i| {
        data.get(i)
            .is_some_and(|a| matcher.get(pattern, a).is_some())
    })
}

/// What the join search asks of a parallel pre-check; an object so that the search itself
/// needs no `Sync` bounds (only whoever builds a [`Scanner`] does).
pub(crate) trait ParScan<A> {
    /// Positions with fewer candidates than this scan serially.
    fn threshold(&self) -> usize;
    /// The first index in `from..cands.len()` whose candidate the pattern of position `pos`
    /// accepts (see [`next_accepted`]).
    fn next_accepted(&self, pos: usize, cands: &[&StoredDatum<A>], from: usize) -> Option<usize>;
}

/// A [`ParScan`] over one search's patterns.
pub(crate) struct Scanner<'m, P, M> {
    pub(crate) matcher: &'m M,
    pub(crate) patterns: &'m [P],
    pub(crate) threshold: usize,
    /// Where its parallel scans run (see [`next_accepted`]).
    pub(crate) on: ScanOn<'m>,
}

impl<P, A, M> ParScan<A> for Scanner<'_, P, M>
where
    P: Sync,
    A: Sync,
    M: Match<P, A>,
{
    fn threshold(&self) -> usize {
        self.threshold
    }

    fn next_accepted(&self, pos: usize, cands: &[&StoredDatum<A>], from: usize) -> Option<usize> {
        let pattern = self.patterns.get(pos)?;
        let matcher = self.matcher;
        next_accepted(from, cands.len(), self.threshold, self.on, &|i| {
            cands
                .get(i)
                .is_some_and(|d| matcher.get(pattern, &d.value).is_some())
        })
    }
}

/// [`crate::join::search`] with the parallel pre-check for positions holding at least
/// `threshold` candidates ([`PARALLEL_MIN_CANDIDATES`] in production), run `on` ([`ScanOn`]:
/// the space, which holds shard locks, passes [`ScanOn::Dedicated`]; the tests run
/// [`ScanOn::Current`] on pools of several sizes), building the assignment in `found` (see
/// [`Found`]). Chooses the same assignment, with the same results and the same `examined`,
/// as the serial search.
#[allow(clippy::too_many_arguments)]
pub(crate) fn search<'j, 'a: 'j, A, P, M>(
    matcher: &M,
    join: &'j Join<'a, A>,
    patterns: &'j [P],
    peeks: &'j [usize],
    incoming: Option<Incoming<'j, A>>,
    fit: Option<Fit<M::Output>>,
    guide: Option<Guide<'_, A>>,
    budget: Option<&Budget<'_>>,
    threshold: usize,
    on: ScanOn<'_>,
    found: &mut Found<M::Output>,
) -> Outcome
where
    A: Clone + std::hash::Hash + Eq + Sync,
    P: Sync,
    M: Match<P, A>,
{
    let scanner = Scanner {
        matcher,
        patterns,
        threshold,
        on,
    };
    join_search(
        matcher,
        join,
        patterns,
        peeks,
        incoming,
        fit,
        guide,
        budget,
        Some(&scanner),
        found,
    )
}

#[cfg(all(test, not(loom)))]
mod tests {
    //! Parallel matching equals serial matching (issue #6): random stores of structural terms,
    //! random joins of structural patterns (peeks, persistence, a produced datum, a replay-style
    //! guide), searched serially and with the pre-check forced on (thresholds 0 and 1) inside
    //! rayon pools of 1, 2 and 8 threads. Picks, match results, the guide's view and `examined`
    //! must be equal; single-position joins are also checked against a brute-force oracle (the
    //! *first* accepted datum), so a scan that picked any other accepted datum fails.

    use proptest::prelude::*;
    use rhospace_matchers::{Pattern, Predicate, StructuralMatch, Term};
    use smallvec::SmallVec;

    use super::*;
    use crate::data::DataStore;
    use crate::join::{search as serial_search, Pick};
    use crate::kind::DataKind;

    fn term(v: u8) -> Term {
        if v.is_multiple_of(3) {
            Term::list([Term::int(i64::from(v % 4)), Term::int(i64::from(v / 4))])
        } else {
            Term::int(i64::from(v % 8))
        }
    }

    fn pattern(p: u8) -> Pattern {
        match p % 6 {
            0 => Pattern::bind("x"),
            1 => Pattern::lit(i64::from(p % 8)),
            2 => Pattern::list([Pattern::bind("a"), Pattern::wildcard()]),
            3 => Pattern::not(Pattern::lit(i64::from(p % 5))),
            4 => Pattern::pred(Predicate::new("even", |t: &Term| {
                t.as_int().is_some_and(|i| i % 2 == 0)
            })),
            _ => Pattern::list([Pattern::lit(i64::from(p % 4)), Pattern::bind("b")]),
        }
    }

    /// One search's inputs: stores, channel ids per position, patterns, peeks, incoming.
    #[derive(Clone, Debug)]
    struct Case {
        channels: Vec<Vec<(u8, bool)>>,
        positions: Vec<(usize, u8)>,
        peeks: Vec<usize>,
        incoming: Option<(usize, u8, bool)>,
        reject: usize,
    }

    fn case() -> impl Strategy<Value = Case> {
        (
            prop::collection::vec(
                prop::collection::vec((any::<u8>(), prop::bool::weighted(0.1)), 0..160),
                1..4,
            ),
            prop::collection::vec((0usize..3, any::<u8>()), 1..4),
            prop::collection::vec(0usize..3, 0..2),
            prop::option::of((0usize..3, any::<u8>(), any::<bool>())),
            0usize..3,
        )
            .prop_map(|(channels, positions, peeks, incoming, reject)| {
                let n = channels.len();
                let positions: Vec<(usize, u8)> =
                    positions.into_iter().map(|(c, p)| (c % n, p)).collect();
                let arity = positions.len();
                let mut peeks: Vec<usize> = peeks.into_iter().filter(|&q| q < arity).collect();
                peeks.sort_unstable();
                peeks.dedup();
                Case {
                    channels,
                    positions,
                    peeks,
                    incoming,
                    reject,
                }
            })
    }

    type Seen = Vec<Vec<(usize, Term)>>;

    /// What a search decided: picks, results, further picks, examined, rejected, guide's view.
    type Decided = (
        Option<(
            SmallVec<[Pick; 4]>,
            Vec<Option<rhospace_matchers::Bindings>>,
        )>,
        u64,
        bool,
        Seen,
    );

    fn run(c: &Case, threshold: Option<usize>) -> Decided {
        let stores: Vec<DataStore<Term>> = c
            .channels
            .iter()
            .map(|items| {
                let mut s = DataStore::new(DataKind::Bag);
                for &(v, persist) in items {
                    s.push(StoredDatum {
                        value: term(v),
                        persist,
                        priority: 0,
                    });
                }
                s
            })
            .collect();
        let mut cids = SmallVec::new();
        let mut refs = SmallVec::new();
        for (i, &(ch, _)) in c.positions.iter().enumerate() {
            let first = c.positions[..i]
                .iter()
                .position(|&(x, _)| x == ch)
                .unwrap_or(i);
            cids.push(first);
            refs.push(stores.get(ch));
        }
        let join = Join {
            cids,
            stores: refs,
            ranker: None,
        };
        let patterns: Vec<Pattern> = c.positions.iter().map(|&(_, p)| pattern(p)).collect();
        let inc_datum = c.incoming.map(|(_, v, persist)| StoredDatum {
            value: term(v),
            persist,
            priority: 0,
        });
        let incoming = match (c.incoming, &inc_datum) {
            (Some((pos, _, _)), Some(d)) => {
                let pos = pos % c.positions.len();
                let ch = c.positions[pos].0;
                Some(Incoming {
                    cid: join.cids[pos],
                    key: stores[ch].next_key(0),
                    datum: d,
                    alone: c.positions.iter().filter(|&&(x, _)| x == ch).count() == 1,
                    head: true,
                })
            }
            _ => None,
        };
        let mut seen: Seen = Vec::new();
        let mut left = c.reject;
        let mut guide = |entries: &[(usize, &StoredDatum<Term>)]| {
            seen.push(entries.iter().map(|(p, d)| (*p, d.value.clone())).collect());
            if left == 0 {
                true
            } else {
                left -= 1;
                false
            }
        };
        let mut slot = Found::new();
        let out = match threshold {
            None => serial_search(
                &StructuralMatch,
                &join,
                &patterns,
                &c.peeks,
                incoming,
                None,
                Some(&mut guide),
                None,
                None,
                &mut slot,
            ),
            Some(t) => search(
                &StructuralMatch,
                &join,
                &patterns,
                &c.peeks,
                incoming,
                None,
                Some(&mut guide),
                None,
                t,
                ScanOn::Current,
                &mut slot,
            ),
        };
        let found = out.found.then(|| {
            let mut picks = slot.picks.clone();
            picks.extend(slot.more.iter().map(|(_, p, _)| *p));
            let results = slot.drain_entries().map(|(_, _, r)| Some(r)).collect();
            (picks, results)
        });
        (found, out.examined, out.rejected, seen)
    }

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a rayon pool")
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn parallel_search_equals_serial_on_1_2_8_threads(c in case()) {
            let serial = run(&c, None);
            for threads in [1, 2, 8] {
                for threshold in [0, 1] {
                    let par = pool(threads).install(|| run(&c, Some(threshold)));
                    prop_assert_eq!(&par, &serial, "threads {} threshold {}", threads, threshold);
                }
            }
        }

        #[test]
        fn single_position_picks_the_first_accepted(
            items in prop::collection::vec(any::<u8>(), 0..600),
            p in any::<u8>(),
        ) {
            let c = Case {
                channels: vec![items.iter().map(|&v| (v, false)).collect()],
                positions: vec![(0, p)],
                peeks: vec![],
                incoming: None,
                reject: 0,
            };
            let want = items
                .iter()
                .position(|&v| StructuralMatch.get(&pattern(p), &term(v)).is_some());
            for threads in [1, 2, 8] {
                let (found, examined, _, _) = pool(threads).install(|| run(&c, Some(0)));
                let got = found.map(|(picks, _)| picks[0].key);
                let store_key = want.map(|i| {
                    let mut s = DataStore::new(DataKind::Bag);
                    let mut k = None;
                    for (j, &v) in items.iter().enumerate() {
                        let key = s.push(StoredDatum { value: term(v), persist: false, priority: 0 });
                        if j == i { k = Some(key); }
                    }
                    k
                });
                prop_assert_eq!(got, store_key.flatten());
                // Serial metering: one matcher call per candidate up to the first accepted.
                let calls = want.map_or(items.len(), |i| i + 1) as u64;
                prop_assert_eq!(examined, calls);
            }
        }
    }

    #[test]
    fn first_match_is_the_lowest_index_on_any_pool() {
        // Many accepted data: any scan that returned another than the first would fail.
        let data: Vec<Term> = (0..20_000).map(|i| Term::int(i % 1000)).collect();
        let p = Pattern::lit(999);
        for threads in [1, 2, 8] {
            let got = pool(threads).install(|| first_match_from(&StructuralMatch, &p, &data, 0));
            assert_eq!(got, Some(999));
            let none = pool(threads)
                .install(|| first_match_from(&StructuralMatch, &Pattern::lit(-5), &data, 0));
            assert_eq!(none, None);
        }
        assert_eq!(first_match(&StructuralMatch, &p, &data), Some(999));
    }
}
