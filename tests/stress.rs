//! SPEC §9 under load: 2, 4 and 8 threads make seeded random calls on shared and private
//! channels (single consumes, two-channel joins, persistent data and continuations, peeks,
//! views) on one space; every produced datum and every continuation carries a unique id, and
//! every COMM any call returned is kept. Afterwards the harness checks conservation against
//! the final views:
//!
//! - every non-persistent datum was used up by exactly one COMM position, or is still stored
//!   (exactly once, on its channel), never both, never twice: nothing lost, nothing duplicated;
//! - every COMM is well formed: its continuation and patterns are those of a real consume, each
//!   position's datum was produced on that position's channel and satisfies its pattern, and a
//!   non-persistent datum fills several positions only where all of them peek;
//! - every non-persistent continuation fired exactly once or is still stored; every stored
//!   continuation (and datum) is one the threads left stored, stored once;
//! - a persistent datum or continuation that its caller left stored is still stored, and one
//!   that fired at once and was not re-issued appears only in COMMs its own calls returned;
//! - no COMM is possible among what is left (SPEC §1's invariant).
//!
//! A second test takes soft checkpoints while the threads run and checks that each one is a
//! consistent cut: on every thread's private channels it equals the state after some prefix of
//! that thread's calls, and the prefixes respect real time (a call that finished before another
//! began, or before the checkpoint began, is in the cut whenever that one is; a call that began
//! after the checkpoint finished is not). A torn checkpoint (a join half applied, one shard
//! copied before a write and another after) matches no such cut.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Barrier;
use std::time::Instant;

use common::{result_of, Pred, PredMatch, Rng};
use rhospace_spaces::{Comm, SoftCheckpoint, Space, SpaceConfig};

type Ch = u32;
type S = Space<Ch, Pred, i64, u64, PredMatch>;
type SComm = Comm<Ch, Pred, i64, u64, i64>;

/// Calls per thread: enough for a few seconds in release, little in a debug build.
const CALLS: usize = if cfg!(debug_assertions) {
    1_000
} else {
    40_000
};
/// Shared channels `0..SHARED`; thread `t`'s private channels are `100 + 2t` and `101 + 2t`.
const SHARED: Ch = 4;
/// Data with this bit set are "special": persistent consumes wait only for them (`Gt`), so a
/// persistent continuation cannot drain a channel and leave every join through it waiting on
/// an empty channel (which made each produce try thousands of hopeless joins).
const SPECIAL: u64 = 1 << 60;
/// How often a persistent produce or consume that fired at once is re-issued before giving up.
const REISSUES: usize = 3;

fn private(t: usize, j: u64) -> Ch {
    100 + 2 * t as Ch + j as Ch
}

fn pattern(rng: &mut Rng) -> Pred {
    match rng.below(3) {
        0 => Pred::Any,
        1 => Pred::Even,
        _ => Pred::Odd,
    }
}

// ---------------------------------------------------------------------------------------------
// Conservation.
// ---------------------------------------------------------------------------------------------

/// Which call returned a COMM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    Produce(i64),
    Consume(u64),
}

#[derive(Debug)]
struct DatumRec {
    ch: Ch,
    persist: bool,
    /// The caller's last call for it returned nothing: the space said it stored the datum.
    stored_by_call: bool,
}

#[derive(Debug)]
struct ContRec {
    chans: Vec<Ch>,
    pats: Vec<Pred>,
    persist: bool,
    peeks: Vec<usize>,
    stored_by_call: bool,
}

#[derive(Default)]
struct Log {
    data: Vec<(i64, DatumRec)>,
    conts: Vec<(u64, ContRec)>,
    comms: Vec<(Origin, SComm)>,
}

/// One thread's calls. Ids are unique across threads: `(t + 1) << 32 | counter`, and a datum's
/// low bit is random so `Even`/`Odd` patterns select among them.
fn worker(space: &S, t: usize, threads: usize, seed: u64) -> Log {
    let mut rng = Rng(seed ^ (t as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
    let mut log = Log::default();
    let tag = (t as u64 + 1) << 32;
    let mut next = 0u64;
    let mut fresh = |rng: &mut Rng| {
        next += 1;
        let special = if rng.chance(5) { SPECIAL } else { 0 };
        special | tag | (next << 1) | rng.below(2)
    };
    let pick_channel = |rng: &mut Rng| {
        if rng.chance(60) {
            rng.below(u64::from(SHARED)) as Ch
        } else {
            private(t, rng.below(2))
        }
    };
    for _ in 0..CALLS {
        match rng.below(100) {
            // Produce.
            0..=49 => {
                let ch = pick_channel(&mut rng);
                let value = fresh(&mut rng) as i64;
                let persist = rng.chance(4);
                let mut stored = false;
                for attempt in 0.. {
                    match space.produce(ch, value, persist).expect("valid produce") {
                        None => {
                            stored = true;
                            break;
                        }
                        Some(comm) => {
                            let again = comm.reissue;
                            log.comms.push((Origin::Produce(value), comm));
                            // A non-persistent datum that was only peeked is re-issued until
                            // it is stored or used up (finite: peeking continuations are never
                            // persistent here, so each re-issue uses one up).
                            if !again || (persist && attempt + 1 >= REISSUES) {
                                break;
                            }
                            assert!(attempt < 100_000, "re-issue of a peeked datum never ends");
                        }
                    }
                }
                log.data.push((
                    value,
                    DatumRec {
                        ch,
                        persist,
                        stored_by_call: stored,
                    },
                ));
            }
            // Consume: a single channel, or a join of two distinct channels.
            50..=89 => {
                let persist = rng.chance(3);
                // Persistent continuations wait on one channel (see `SPECIAL`).
                let chans: Vec<Ch> = if !persist && rng.chance(30) {
                    let a = pick_channel(&mut rng);
                    let mut b = pick_channel(&mut rng);
                    while b == a {
                        b = pick_channel(&mut rng);
                    }
                    vec![a, b]
                } else {
                    vec![pick_channel(&mut rng)]
                };
                let pats: Vec<Pred> = if persist {
                    chans.iter().map(|_| Pred::Gt(SPECIAL as i64 - 1)).collect()
                } else {
                    chans.iter().map(|_| pattern(&mut rng)).collect()
                };
                let peeks: Vec<usize> = if persist {
                    vec![]
                } else {
                    (0..chans.len()).filter(|_| rng.chance(10)).collect()
                };
                let k = fresh(&mut rng);
                let mut stored = false;
                for attempt in 0..REISSUES {
                    match space
                        .consume(chans.clone(), pats.clone(), k, persist, &peeks)
                        .expect("valid consume")
                    {
                        None => {
                            stored = true;
                            break;
                        }
                        Some(comm) => {
                            let again = comm.reissue;
                            log.comms.push((Origin::Consume(k), comm));
                            if !again || attempt + 1 >= REISSUES {
                                break;
                            }
                        }
                    }
                }
                log.conts.push((
                    k,
                    ContRec {
                        chans,
                        pats,
                        persist,
                        peeks,
                        stored_by_call: stored,
                    },
                ));
            }
            // Views: never a datum twice, never a continuation twice.
            _ => {
                let ch = if rng.chance(50) {
                    pick_channel(&mut rng)
                } else {
                    private(rng.below(threads as u64) as usize, rng.below(2))
                };
                let data = space.data(&ch);
                let mut values: Vec<i64> = data.iter().map(|d| d.value).collect();
                values.sort_unstable();
                values.dedup();
                assert_eq!(values.len(), data.len(), "a view shows a datum twice");
                let conts = space.continuations(&[ch]);
                let mut ks: Vec<u64> = conts.iter().map(|w| w.continuation).collect();
                ks.sort_unstable();
                ks.dedup();
                assert_eq!(ks.len(), conts.len(), "a view shows a continuation twice");
            }
        }
    }
    log
}

fn conservation(threads: usize, seed: u64) {
    let space = S::new(PredMatch, SpaceConfig::new());
    let started = Instant::now();
    let logs: Vec<Log> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let space = &space;
                s.spawn(move || worker(space, t, threads, seed))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker"))
            .collect()
    });
    let ran = started.elapsed();

    let mut data: HashMap<i64, DatumRec> = HashMap::new();
    let mut conts: HashMap<u64, ContRec> = HashMap::new();
    let mut comms: Vec<(Origin, SComm)> = Vec::new();
    for log in logs {
        for (v, d) in log.data {
            assert!(data.insert(v, d).is_none(), "ids are unique");
        }
        for (k, c) in log.conts {
            assert!(conts.insert(k, c).is_none(), "ids are unique");
        }
        comms.extend(log.comms);
    }

    // What is left, from the views.
    let channels: Vec<Ch> = (0..SHARED)
        .chain((0..threads).flat_map(|t| [private(t, 0), private(t, 1)]))
        .collect();
    let mut stored_data: HashMap<i64, usize> = HashMap::new();
    let mut left: HashMap<Ch, Vec<i64>> = HashMap::new();
    for &ch in &channels {
        for d in space.data(&ch) {
            let rec = data
                .get(&d.value)
                .unwrap_or_else(|| panic!("stored datum {} was never produced", d.value));
            assert_eq!(rec.ch, ch, "datum {} stored on the wrong channel", d.value);
            assert_eq!(rec.persist, d.persist);
            *stored_data.entry(d.value).or_default() += 1;
            left.entry(ch).or_default().push(d.value);
        }
    }
    let mut lists: Vec<Vec<Ch>> = conts.values().map(|c| c.chans.clone()).collect();
    lists.sort();
    lists.dedup();
    let mut stored_conts: HashMap<u64, usize> = HashMap::new();
    let mut waiting: Vec<(Vec<Ch>, Vec<Pred>)> = Vec::new();
    for list in &lists {
        for w in space.continuations(list) {
            let rec = conts.get(&w.continuation).unwrap_or_else(|| {
                panic!("stored continuation {} was never consumed", w.continuation)
            });
            assert_eq!(&rec.chans, list);
            assert_eq!(&rec.pats[..], &w.patterns[..]);
            assert_eq!(rec.persist, w.persist);
            assert_eq!(&rec.peeks[..], &w.peeks[..]);
            *stored_conts.entry(w.continuation).or_default() += 1;
            waiting.push((list.clone(), w.patterns.to_vec()));
        }
    }

    // Every COMM well formed; count uses.
    let mut used: HashMap<i64, usize> = HashMap::new();
    let mut fired: HashMap<u64, usize> = HashMap::new();
    let mut datum_origins: HashMap<i64, Vec<Origin>> = HashMap::new();
    let mut cont_origins: HashMap<u64, Vec<Origin>> = HashMap::new();
    for (origin, comm) in &comms {
        let k = comm.continuation;
        let c = conts
            .get(&k)
            .unwrap_or_else(|| panic!("COMM fired unknown continuation {k}"));
        assert_eq!(&comm.channels[..], &c.chans[..], "COMM channels of {k}");
        assert_eq!(&comm.patterns[..], &c.pats[..], "COMM patterns of {k}");
        assert_eq!(comm.persistent, c.persist);
        assert_eq!(&comm.peeks[..], &c.peeks[..]);
        assert_eq!(comm.matches.len(), c.chans.len());
        *fired.entry(k).or_default() += 1;
        cont_origins.entry(k).or_default().push(*origin);
        for (i, m) in comm.matches.iter().enumerate() {
            let d = data
                .get(&m.datum)
                .unwrap_or_else(|| panic!("COMM of {k} carries unknown datum {}", m.datum));
            assert_eq!(
                d.ch, comm.channels[i],
                "datum {} matched off its channel",
                m.datum
            );
            assert_eq!(d.persist, m.persistent);
            assert!(comm.patterns[i].accepts(m.datum), "pattern rejects datum");
            assert_eq!(m.result, result_of(&comm.patterns[i], m.datum));
            let peeked = comm.peeks.contains(&i);
            if !d.persist {
                let others: Vec<usize> = (0..comm.matches.len())
                    .filter(|&q| comm.matches[q].datum == m.datum)
                    .collect();
                assert!(
                    others.len() == 1 || others.iter().all(|q| comm.peeks.contains(q)),
                    "non-persistent datum {} fills several positions of one COMM",
                    m.datum
                );
                if !peeked {
                    *used.entry(m.datum).or_default() += 1;
                }
            }
            if !datum_origins
                .get(&m.datum)
                .is_some_and(|o| o.last() == Some(origin))
            {
                datum_origins.entry(m.datum).or_default().push(*origin);
            }
        }
        match *origin {
            Origin::Produce(v) => {
                let d = &data[&v];
                let positions: Vec<usize> = (0..comm.matches.len())
                    .filter(|&i| comm.matches[i].datum == v)
                    .collect();
                assert!(
                    !positions.is_empty(),
                    "a produce's COMM lacks its datum {v}"
                );
                if !d.persist {
                    let used_here = positions.iter().any(|i| !comm.peeks.contains(i));
                    assert_eq!(comm.reissue, !used_here, "re-issue flag of datum {v}");
                } else {
                    assert!(comm.reissue, "a fired persistent produce is re-issued");
                }
            }
            Origin::Consume(k2) => {
                assert_eq!(k, k2, "a consume's COMM fires its own continuation");
                assert_eq!(comm.reissue, c.persist);
            }
        }
    }

    // Data: exactly once, used or stored.
    for (v, d) in &data {
        let s = stored_data.get(v).copied().unwrap_or(0);
        if !d.persist {
            let u = used.get(v).copied().unwrap_or(0);
            assert_eq!(u + s, 1, "datum {v}: used {u} times, stored {s} times");
        } else if d.stored_by_call {
            assert_eq!(s, 1, "persistent datum {v} left stored is stored once");
        } else {
            assert_eq!(s, 0, "persistent datum {v} not left stored");
            let origins = datum_origins.get(v).map(Vec::as_slice).unwrap_or(&[]);
            assert!(
                origins.iter().all(|o| *o == Origin::Produce(*v)),
                "unstored persistent datum {v} reached a COMM of another call"
            );
        }
        if !d.persist && !d.stored_by_call {
            assert_eq!(s, 0, "datum {v} used up at its produce is not stored");
        }
    }
    // Continuations: exactly once, fired or stored.
    for (k, c) in &conts {
        let s = stored_conts.get(k).copied().unwrap_or(0);
        let f = fired.get(k).copied().unwrap_or(0);
        if !c.persist {
            assert_eq!(
                f + s,
                1,
                "continuation {k}: fired {f} times, stored {s} times"
            );
            if !c.stored_by_call {
                assert_eq!(s, 0);
            }
        } else if c.stored_by_call {
            assert_eq!(
                s, 1,
                "persistent continuation {k} left stored is stored once"
            );
        } else {
            assert_eq!(s, 0, "persistent continuation {k} not left stored");
            assert!(
                cont_origins[k].iter().all(|o| *o == Origin::Consume(*k)),
                "unstored persistent continuation {k} fired from another call"
            );
        }
    }
    // SPEC §1: no COMM possible among what is left (all channels are Bags; joins use distinct
    // channels, so each position can be checked on its own).
    for (list, pats) in &waiting {
        let possible = list.iter().zip(pats).all(|(ch, p)| {
            left.get(ch)
                .is_some_and(|vs| vs.iter().any(|&v| p.accepts(v)))
        });
        assert!(
            !possible,
            "a COMM is possible among stored items: {list:?} {pats:?}"
        );
    }

    eprintln!(
        "{threads} threads: {} calls in {ran:?}; {} COMMs, {} data and {} continuations left",
        threads * CALLS,
        comms.len(),
        stored_data.values().sum::<usize>(),
        stored_conts.values().sum::<usize>(),
    );
}

#[test]
fn conservation_with_2_threads() {
    conservation(2, 0x2);
}

#[test]
fn conservation_with_4_threads() {
    conservation(4, 0x4);
}

#[test]
fn conservation_with_8_threads() {
    conservation(8, 0x8);
}

// ---------------------------------------------------------------------------------------------
// Soft checkpoints taken concurrently are consistent cuts.
// ---------------------------------------------------------------------------------------------

/// A call of the checkpoint test, on the calling thread's private channels only.
#[derive(Clone, Debug)]
enum Call {
    Produce(Ch, i64, bool),
    Consume(Vec<Ch>, Vec<Pred>, u64, bool),
}

/// What a call returned, in comparable form: (continuation, data) of the COMM.
type Outcome = Option<(u64, Vec<i64>)>;

/// A call's or checkpoint's (invocation, response) tickets.
type Interval = (u64, u64);

/// A checkpoint with its tickets.
type Stamped = (u64, u64, SoftCheckpoint<Ch, Pred, i64, u64>);

/// The state of one thread's channels: data of X and Y, continuations on [X], [Y], [X, Y].
type Fingerprint = [Vec<i64>; 5];

fn xy(t: usize) -> (Ch, Ch) {
    (2 * t as Ch, 2 * t as Ch + 1)
}

fn plan(t: usize, calls: usize, seed: u64) -> Vec<Call> {
    let mut rng = Rng(seed ^ (t as u64 + 1).wrapping_mul(0x9E6C_63D0_676A_9A99));
    let (x, y) = xy(t);
    let tag = (t as u64 + 1) << 32;
    (0..calls as u64)
        .map(|i| {
            let id = tag | (i << 1) | rng.below(2);
            match rng.below(100) {
                0..=34 => Call::Produce(x, id as i64, rng.chance(3)),
                35..=59 => Call::Produce(y, id as i64, false),
                60..=79 => Call::Consume(vec![x], vec![pattern(&mut rng)], id, false),
                80..=84 => Call::Consume(vec![y], vec![pattern(&mut rng)], id, false),
                _ => Call::Consume(
                    vec![x, y],
                    vec![pattern(&mut rng), pattern(&mut rng)],
                    id,
                    rng.chance(2),
                ),
            }
        })
        .collect()
}

fn call(space: &S, c: &Call) -> Outcome {
    let comm = match c {
        Call::Produce(ch, v, persist) => space.produce(*ch, *v, *persist).expect("valid"),
        Call::Consume(chans, pats, k, persist) => space
            .consume(chans.clone(), pats.clone(), *k, *persist, &[])
            .expect("valid"),
    };
    comm.map(|c| (c.continuation, c.matches.iter().map(|m| m.datum).collect()))
}

fn fingerprint(space: &S, t: usize) -> Fingerprint {
    let (x, y) = xy(t);
    let data = |ch| space.data(&ch).iter().map(|d| d.value).collect();
    let conts = |list: &[Ch]| {
        space
            .continuations(list)
            .iter()
            .map(|w| w.continuation as i64)
            .collect()
    };
    [data(x), data(y), conts(&[x]), conts(&[y]), conts(&[x, y])]
}

/// The least prefix lengths (one per thread) that form a cut consistent with real time and
/// with the checkpoint's own interval, each among `cands[t]` (ascending prefix lengths whose
/// state equals the checkpoint's): solutions are closed under pointwise minimum, so raising
/// lower bounds to a fixpoint finds one iff one exists.
fn least_cut(
    times: &[Vec<(u64, u64)>],
    cands: &[Vec<usize>],
    snap: (u64, u64),
) -> Result<Vec<usize>, String> {
    let n = times.len();
    // Calls that finished before the checkpoint began are in; calls that began after it
    // finished are out.
    let hi: Vec<usize> = times
        .iter()
        .map(|ts| ts.partition_point(|&(inv, _)| inv < snap.1))
        .collect();
    let mut need: Vec<usize> = times
        .iter()
        .map(|ts| ts.partition_point(|&(_, resp)| resp < snap.0))
        .collect();
    let mut cut = vec![0; n];
    loop {
        for t in 0..n {
            cut[t] = *cands[t]
                .iter()
                .find(|&&p| p >= need[t])
                .ok_or_else(|| format!("thread {t}: no matching prefix at or after {}", need[t]))?;
            if cut[t] > hi[t] {
                return Err(format!(
                    "thread {t}: the checkpoint shows {} calls, but only {} had begun",
                    cut[t], hi[t]
                ));
            }
        }
        // Every call that finished before an included call began must be included.
        let frontier = (0..n)
            .filter(|&t| cut[t] > 0)
            .map(|t| times[t][cut[t] - 1].0)
            .max();
        let Some(frontier) = frontier else {
            return Ok(cut);
        };
        let mut changed = false;
        for t in 0..n {
            let must = times[t].partition_point(|&(_, resp)| resp < frontier);
            if must > need[t] {
                need[t] = must;
                changed |= must > cut[t];
            }
        }
        if !changed {
            return Ok(cut);
        }
    }
}

#[test]
fn concurrent_soft_checkpoints_are_consistent_cuts() {
    const THREADS: usize = 4;
    // The reference keeps one fingerprint per prefix, so fewer calls than the other tests.
    let calls = CALLS / 4;
    let seed = 0xC4EC;
    let config = SpaceConfig::new;
    let plans: Vec<Vec<Call>> = (0..THREADS).map(|t| plan(t, calls, seed)).collect();

    // Sequential reference: each thread's channels are its own, so its results and the state
    // after each prefix do not depend on the other threads.
    let mut expected: Vec<Vec<Outcome>> = Vec::new();
    let mut prefixes: Vec<HashMap<Fingerprint, Vec<usize>>> = Vec::new();
    for (t, p) in plans.iter().enumerate() {
        let s = S::new(PredMatch, config());
        let mut by_fp: HashMap<Fingerprint, Vec<usize>> = HashMap::new();
        by_fp.entry(fingerprint(&s, t)).or_default().push(0);
        let mut outs = Vec::with_capacity(p.len());
        for (i, c) in p.iter().enumerate() {
            outs.push(call(&s, c));
            by_fp.entry(fingerprint(&s, t)).or_default().push(i + 1);
        }
        expected.push(outs);
        prefixes.push(by_fp);
    }

    let space = S::new(PredMatch, config());
    let clock = AtomicU64::new(0);
    let running = AtomicUsize::new(THREADS);
    let stop = AtomicBool::new(false);
    // The workers and the checkpointer start together, so checkpoints fall among the calls
    // even when the scheduler runs the checkpointer last.
    let start = Barrier::new(THREADS + 1);
    let mut checkpoints: Vec<Stamped> = Vec::new();
    let results: Vec<(Vec<Outcome>, Vec<Interval>)> = std::thread::scope(|s| {
        let handles: Vec<_> = plans
            .iter()
            .map(|p| {
                let (space, clock, running, start) = (&space, &clock, &running, &start);
                s.spawn(move || {
                    start.wait();
                    let mut outs = Vec::with_capacity(p.len());
                    let mut times = Vec::with_capacity(p.len());
                    for c in p {
                        // AcqRel: tickets are RMWs on one counter, so ticket order is a
                        // happens-before order between calls (see tests/linearizability.rs).
                        let inv = clock.fetch_add(1, Ordering::AcqRel);
                        outs.push(call(space, c));
                        let resp = clock.fetch_add(1, Ordering::AcqRel);
                        times.push((inv, resp));
                    }
                    // Relaxed: only tells the checkpointer when to stop; publishes nothing.
                    running.fetch_sub(1, Ordering::Relaxed);
                    (outs, times)
                })
            })
            .collect();
        let (space, clock, running, stop) = (&space, &clock, &running, &stop);
        let start = &start;
        let taker = s.spawn(move || {
            let mut cps = Vec::new();
            start.wait();
            // At least one checkpoint, however late this thread runs: a cut after every call
            // is a consistent one too.
            loop {
                let inv = clock.fetch_add(1, Ordering::AcqRel);
                let cp = space.create_soft_checkpoint();
                let resp = clock.fetch_add(1, Ordering::AcqRel);
                cps.push((inv, resp, cp));
                let done = running.load(Ordering::Relaxed) == 0 || stop.load(Ordering::Relaxed);
                if done || cps.len() >= 2_000 {
                    break;
                }
                for _ in 0..200 {
                    std::hint::spin_loop();
                }
            }
            cps
        });
        let out = handles
            .into_iter()
            .map(|h| h.join().expect("worker"))
            .collect();
        stop.store(true, Ordering::Relaxed);
        checkpoints = taker.join().expect("checkpointer");
        out
    });

    let mut times = Vec::new();
    for (t, (outs, ts)) in results.into_iter().enumerate() {
        for (i, (got, want)) in outs.iter().zip(&expected[t]).enumerate() {
            assert_eq!(
                got, want,
                "thread {t} call {i}: disjoint channels behave as alone"
            );
        }
        times.push(ts);
    }
    assert!(!checkpoints.is_empty(), "at least one checkpoint was taken");
    let scratch = S::new(PredMatch, config());
    let mut inside = 0;
    for (n, (inv, resp, cp)) in checkpoints.iter().enumerate() {
        scratch.revert_to_soft_checkpoint(cp).unwrap();
        let cands: Vec<Vec<usize>> = (0..THREADS)
            .map(|t| {
                prefixes[t]
                    .get(&fingerprint(&scratch, t))
                    .cloned()
                    .unwrap_or_else(|| {
                        panic!("checkpoint {n}: thread {t}'s channels match no prefix (torn)")
                    })
            })
            .collect();
        let cut = least_cut(&times, &cands, (*inv, *resp))
            .unwrap_or_else(|why| panic!("checkpoint {n} is not a consistent cut: {why}"));
        inside += usize::from(cut.iter().zip(&times).any(|(&c, ts)| c > 0 && c < ts.len()));
    }
    eprintln!(
        "{} checkpoints, {inside} taken while calls were running, all consistent cuts",
        checkpoints.len()
    );
}

#[test]
fn least_cut_rejects_inconsistent_snapshots() {
    // Thread 0: calls at [0,1], [4,5]; thread 1: calls at [2,3], [6,7].
    let times = vec![vec![(0, 1), (4, 5)], vec![(2, 3), (6, 7)]];
    // Thread 1's second call is in, but thread 0's first is not: it finished before.
    assert!(least_cut(&times, &[vec![0], vec![2]], (0, 100)).is_err());
    // Consistent version.
    assert_eq!(
        least_cut(&times, &[vec![1, 2], vec![2]], (0, 100)),
        Ok(vec![2, 2])
    );
    // A checkpoint taken in [8, 9] must see everything; one taken in [0, 1]... must see nothing
    // that began after it finished.
    assert!(least_cut(&times, &[vec![1], vec![2]], (8, 9)).is_err());
    assert!(least_cut(&times, &[vec![0], vec![1]], (0, 1)).is_err());
    assert_eq!(
        least_cut(&times, &[vec![0], vec![0]], (0, 1)),
        Ok(vec![0, 0])
    );
}

/// A two-channel join whose channels live in different shards races a produce on its second
/// channel, round after round on two threads (the first channel's datum is already stored).
/// Whichever goes first, exactly one of the two calls fires and both data are used up. A join
/// that does not hold the lock of every shard it reads (say, only its first channel's) lets
/// the produce take the fast path past the half-registered join: neither fires (a lost
/// wake-up), or the two unsynchronised writes to one shard corrupt it. loom cannot see that
/// race (the shard maps are plain data, with no synchronisation point between the join's read
/// and write); real threads do, once a jittered start lines the two calls up.
#[test]
fn join_racing_a_produce_on_its_other_shard_fires_exactly_once() {
    /// Sets the flag when dropped, so a panic on either thread stops the other's waiting.
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Release);
        }
    }
    let rounds: u64 = if cfg!(debug_assertions) {
        5_000
    } else {
        100_000
    };
    let space = S::with_shards(PredMatch, SpaceConfig::new(), 4);
    let a: Ch = 0;
    let b: Ch = (1..)
        .find(|c| space.shard_of(c) != space.shard_of(&a))
        .unwrap();
    // The round the consumer may start; the round it finished and whether its call fired.
    let go = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let consumer_fired = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let _stop = StopOnDrop(&stop);
            for r in 1..=rounds {
                while go.load(Ordering::Acquire) < r {
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    std::hint::spin_loop();
                }
                let fired = space
                    .consume([a, b], [Pred::Any, Pred::Any], r, false, &[])
                    .expect("valid consume")
                    .is_some();
                consumer_fired.store(fired, Ordering::Relaxed);
                done.store(r, Ordering::Release);
            }
        });
        let _stop = StopOnDrop(&stop);
        let mut rng = Rng(0x5EED_4A11);
        for r in 1..=rounds {
            let stored = space.produce(a, 2 * r as i64, false).unwrap().is_none();
            assert!(stored, "round {r}: a datum met a continuation left behind");
            go.store(r, Ordering::Release);
            // Jitter: lands the produce anywhere in the consume's critical section.
            for _ in 0..rng.below(400) {
                std::hint::spin_loop();
            }
            let produced = space.produce(b, 2 * r as i64 + 1, false).unwrap().is_some();
            let mut spins = 0u32;
            while done.load(Ordering::Acquire) < r {
                assert!(!stop.load(Ordering::Acquire), "the consumer panicked");
                spins += 1;
                if spins > 1_000 {
                    std::thread::yield_now();
                }
            }
            let consumed = consumer_fired.load(Ordering::Relaxed);
            assert!(
                produced != consumed,
                "round {r}: produce fired {produced}, consume fired {consumed}"
            );
            assert!(
                space.data(&a).is_empty()
                    && space.data(&b).is_empty()
                    && space.continuations(&[a, b]).is_empty(),
                "round {r}: left behind"
            );
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Wide joins locking many shards, named in different orders.
// ---------------------------------------------------------------------------------------------

/// Threads consume on joins of three to five channels, each naming its channels in its own
/// random order (so two joins often list the same shards in opposite orders), while they also
/// produce on those channels and take soft checkpoints (which lock every shard). A produce on
/// a channel of a wide join must lock every shard the join spans. With locks taken in any
/// order but ascending shard index this deadlocks; the work runs on a watchdog, so a deadlock
/// fails the test instead of hanging it. Afterwards: every datum was taken by exactly one COMM
/// or is still stored, every continuation fired exactly once or still waits, every COMM took
/// one datum off each of its channels, and no stored join could fire (SPEC §1, §9).
#[test]
fn wide_joins_in_any_channel_order_do_not_deadlock_and_conserve() {
    const THREADS: usize = 4;
    const CHANNELS: u64 = 12;
    let calls: usize = if cfg!(debug_assertions) {
        2_000
    } else {
        50_000
    };
    let started = Instant::now();
    let space = std::sync::Arc::new(S::with_shards(PredMatch, SpaceConfig::new(), 8));
    // (data produced, continuations consumed with their lists, COMMs) per thread.
    type Run = (Vec<(i64, Ch)>, Vec<(u64, Vec<Ch>)>, Vec<SComm>);
    let (tx, rx) = std::sync::mpsc::channel::<Vec<Run>>();
    {
        let space = space.clone();
        std::thread::spawn(move || {
            let runs = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..THREADS)
                    .map(|t| {
                        let space = &space;
                        scope.spawn(move || {
                            let mut rng = Rng(0x3A1D_9E37 ^ (t as u64 + 1) << 40);
                            let mut run: Run = Default::default();
                            let tag = (t as u64 + 1) << 32;
                            for i in 0..calls as u64 {
                                let id = tag | i;
                                match rng.below(100) {
                                    0..=79 => {
                                        let ch = rng.below(CHANNELS) as Ch;
                                        run.0.push((id as i64, ch));
                                        if let Some(comm) =
                                            space.produce(ch, id as i64, false).expect("produce")
                                        {
                                            run.2.push(comm);
                                        }
                                    }
                                    80..=98 => {
                                        let arity = 3 + rng.below(3) as usize;
                                        let mut list: Vec<Ch> = Vec::with_capacity(arity);
                                        while list.len() < arity {
                                            let c = rng.below(CHANNELS) as Ch;
                                            if !list.contains(&c) {
                                                list.push(c);
                                            }
                                        }
                                        let pats = vec![Pred::Any; arity];
                                        run.1.push((id, list.clone()));
                                        if let Some(comm) = space
                                            .consume(list, pats, id, false, &[])
                                            .expect("consume")
                                        {
                                            run.2.push(comm);
                                        }
                                    }
                                    _ => drop(space.create_soft_checkpoint()),
                                }
                            }
                            run
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("worker"))
                    .collect::<Vec<Run>>()
            });
            let _ = tx.send(runs);
        });
    }
    let runs = rx
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("the threads finish: no deadlock (or a worker panicked)");

    let mut data: HashMap<i64, Ch> = HashMap::new();
    let mut conts: HashMap<u64, Vec<Ch>> = HashMap::new();
    let mut used: HashMap<i64, usize> = HashMap::new();
    let mut fired: HashMap<u64, usize> = HashMap::new();
    for (produced, consumed, comms) in &runs {
        data.extend(produced.iter().copied());
        conts.extend(consumed.iter().cloned());
        for comm in comms {
            *fired.entry(comm.continuation).or_default() += 1;
            assert_eq!(comm.matches.len(), comm.channels.len());
            for m in &comm.matches {
                *used.entry(m.datum).or_default() += 1;
            }
        }
    }
    // Every datum and continuation is known now: check each COMM against them.
    for (_, _, comms) in &runs {
        for comm in comms {
            assert_eq!(&comm.channels[..], &conts[&comm.continuation][..]);
            for (i, m) in comm.matches.iter().enumerate() {
                assert_eq!(
                    data[&m.datum], comm.channels[i],
                    "datum taken off its channel"
                );
            }
        }
    }
    let mut stored: HashMap<i64, usize> = HashMap::new();
    let mut left = [false; CHANNELS as usize];
    for c in 0..CHANNELS as Ch {
        for d in space.data(&c) {
            assert_eq!(data[&d.value], c);
            *stored.entry(d.value).or_default() += 1;
            left[c as usize] = true;
        }
    }
    for v in data.keys() {
        let (u, s) = (
            used.get(v).copied().unwrap_or(0),
            stored.get(v).copied().unwrap_or(0),
        );
        assert_eq!(u + s, 1, "datum {v}: taken {u} times, stored {s} times");
    }
    let mut lists: Vec<&Vec<Ch>> = conts.values().collect();
    lists.sort();
    lists.dedup();
    let mut waiting: HashMap<u64, usize> = HashMap::new();
    for list in lists {
        let ws = space.continuations(list);
        if !ws.is_empty() {
            assert!(
                !list.iter().all(|c| left[*c as usize]),
                "a stored join {list:?} could fire"
            );
        }
        for w in ws {
            assert_eq!(&conts[&w.continuation], list);
            *waiting.entry(w.continuation).or_default() += 1;
        }
    }
    for k in conts.keys() {
        let (f, w) = (
            fired.get(k).copied().unwrap_or(0),
            waiting.get(k).copied().unwrap_or(0),
        );
        assert_eq!(
            f + w,
            1,
            "continuation {k}: fired {f} times, waiting {w} times"
        );
    }
    let comms: usize = runs.iter().map(|r| r.2.len()).sum();
    eprintln!(
        "{:?}: {comms} COMMs; {} data and {} continuations left",
        started.elapsed(),
        stored.len(),
        waiting.len()
    );
    assert!(comms > calls / 10, "wide joins fired: {comms} COMMs");
}

// ---------------------------------------------------------------------------------------------
// Disjoint channels: the same results and root on any number of threads.
// ---------------------------------------------------------------------------------------------

/// Group `g`'s seeded script on its own five channels (`1_000 g ..`): produces (some
/// persistent), single consumes and joins (some persistent, some peeking). Returns every
/// call's result, in call order.
fn group_script(space: &S, g: u64) -> Vec<String> {
    let mut rng = Rng(0xD15_7017 ^ (g + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let base = 1_000 * g as Ch;
    let mut out = Vec::new();
    for i in 0..2_000u64 {
        let ch = base + rng.below(4) as Ch;
        // A fifth channel that only data and plain consumes use: nothing waits on it for
        // long, so its produces take the one-shard path that stores at once.
        let quiet = base + 4;
        let roll = rng.below(100);
        if roll < 15 {
            let r = space.produce(quiet, roll as i64, false).expect("produce");
            out.push(format!("{r:?}"));
        } else if roll < 20 {
            let r = space
                .consume([quiet], [Pred::Any], g << 32 | i, false, &[])
                .expect("consume");
            out.push(format!("{r:?}"));
        } else if rng.chance(55) {
            let value = (rng.below(50) as i64) << 1 | rng.below(2) as i64;
            let r = space.produce(ch, value, rng.chance(10)).expect("produce");
            out.push(format!("{r:?}"));
        } else {
            let mut list = vec![ch];
            if rng.chance(40) {
                let other = base + rng.below(4) as Ch;
                if other != ch {
                    list.push(other);
                }
            }
            let pats: Vec<Pred> = list.iter().map(|_| pattern(&mut rng)).collect();
            let peeks: Vec<usize> = (0..list.len()).filter(|_| rng.chance(10)).collect();
            let r = space
                .consume(list, pats, g << 32 | i, rng.chance(5), &peeks)
                .expect("consume");
            out.push(format!("{r:?}"));
        }
    }
    out
}

/// What runs beside the scripts in [`disjoint_run`].
#[derive(Clone, Copy, Debug, PartialEq)]
enum Beside {
    Nothing,
    /// Soft checkpoints and full state roots: reads, which change nothing.
    Reads,
    /// Hard checkpoints, which also put Bag data and join groups into canonical order (so
    /// they change which candidate later calls take first: they are calls of the sequence).
    HardCheckpoints,
}

/// Runs the scripts of `GROUPS` groups on `threads` threads (thread `t` runs the groups
/// `g ≡ t mod threads`, in order) while another thread does `beside`; returns each group's
/// results and the final state root, checked against a full re-hash.
fn disjoint_run(threads: u64, beside: Beside) -> (Vec<Vec<String>>, [u8; 32]) {
    const GROUPS: u64 = 8;
    let space = S::new(PredMatch, SpaceConfig::new());
    let done = AtomicBool::new(false);
    let mut results: Vec<(u64, Vec<String>)> = std::thread::scope(|s| {
        let observer = (beside != Beside::Nothing).then(|| {
            s.spawn(|| {
                let mut taken = 0u32;
                while !done.load(Ordering::Acquire) || taken == 0 {
                    if beside == Beside::HardCheckpoints {
                        space.create_checkpoint().expect("in-memory checkpoint");
                    } else {
                        drop(space.create_soft_checkpoint());
                        space.full_state_root();
                    }
                    taken += 1;
                    std::thread::yield_now();
                }
                taken
            })
        });
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let space = &space;
                s.spawn(move || {
                    (0..GROUPS)
                        .filter(|g| g % threads == t)
                        .map(|g| (g, group_script(space, g)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let results = workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker"))
            .collect();
        done.store(true, Ordering::Release);
        if let Some(o) = observer {
            assert!(o.join().expect("observer") > 0);
        }
        results
    });
    results.sort_by_key(|(g, _)| *g);
    let full = space.full_state_root();
    let root = space
        .create_checkpoint()
        .expect("in-memory checkpoint")
        .root;
    assert_eq!(root, full, "the incremental root is the full one");
    (results.into_iter().map(|(_, r)| r).collect(), root)
}

/// SPEC §3 and §9: calls on disjoint channels commute, so the same scripts give the same
/// results and the same state root whether they run on one thread or on two or four at once,
/// and whether or not soft checkpoints and full roots are read while they run. Hard
/// checkpoints taken while they run change later choices (see [`Beside`]), but the root each
/// one leaves must still be the full re-hash of the state: a checkpoint that dropped a change
/// made concurrently with it from the set to re-hash would leave a stale root.
#[test]
fn disjoint_channels_give_the_same_results_and_root_on_any_thread_count() {
    let (expected, root) = disjoint_run(1, Beside::Nothing);
    assert!(expected.iter().flatten().any(|r| r.starts_with("Some")));
    for threads in [1, 2, 4] {
        for beside in [Beside::Nothing, Beside::Reads] {
            let (results, got) = disjoint_run(threads, beside);
            for (g, (a, b)) in results.iter().zip(&expected).enumerate() {
                assert!(a == b, "{threads} threads, {beside:?}: group {g} differs");
            }
            assert_eq!(got, root, "{threads} threads, {beside:?}: root");
        }
        disjoint_run(threads, Beside::HardCheckpoints);
    }
}
