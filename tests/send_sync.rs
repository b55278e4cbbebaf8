//! SPEC §9's shape: the space is `Send + Sync`, every operation takes `&self`, and under
//! concurrent calls nothing is lost or duplicated: every produced datum is consumed exactly once
//! or still stored, and every consume fired exactly once or still waits.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::thread;

use common::{Pred, PredMatch};
use rhospace_matchers::ExactMatch;
use rhospace_phlogiston::{Lease, PhlogistonMeter};
use rhospace_spaces::{ChargingSpace, Comm, SoftCheckpoint, Space, SpaceConfig};

const fn assert_send_sync<T: Send + Sync>() {}

const _: () = assert_send_sync::<Space<String, i64, i64, String, ExactMatch>>();
const _: () = assert_send_sync::<Space<String, Pred, i64, String, PredMatch>>();
const _: () = assert_send_sync::<SoftCheckpoint<String, i64, i64, String>>();
const _: () = assert_send_sync::<Comm<String, i64, i64, String, ()>>();
// A metered space, and what it charges, are shared across threads the same way (SPEC §8:
// "under any number of threads charging one meter at once").
const _: () = assert_send_sync::<ChargingSpace<String, i64, i64, String, ExactMatch>>();
const _: () = assert_send_sync::<PhlogistonMeter>();
const _: () = assert_send_sync::<Lease<Arc<PhlogistonMeter>>>();

const THREADS: u64 = 4;
const ROUNDS: u64 = 600;

fn own(t: u64) -> String {
    format!("own-{t}")
}

fn shared(i: u64) -> String {
    format!("shared-{i}")
}

/// Tallies the COMMs seen and the final state, and checks conservation.
fn check_conservation<P, M>(
    space: &Space<String, P, i64, String, M>,
    comms: Vec<Comm<String, P, i64, String, M::Output>>,
    produced: BTreeSet<i64>,
    consumes: BTreeMap<String, Vec<String>>,
) where
    P: Clone + Eq + rhospace_spaces::Encode + Sync,
    M: rhospace_matchers::Match<P, i64>,
{
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    let mut fired: BTreeMap<String, usize> = BTreeMap::new();
    for c in &comms {
        assert!(!c.reissue, "nothing here is persistent or peeked");
        for m in &c.matches {
            *seen.entry(m.datum).or_default() += 1;
        }
        *fired.entry(c.continuation.clone()).or_default() += 1;
    }
    let mut channels: BTreeSet<String> = (0..THREADS).map(own).collect();
    channels.extend((0..2).map(shared));
    for ch in &channels {
        for d in space.data(ch) {
            *seen.entry(d.value).or_default() += 1;
        }
    }
    let dup: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    assert!(dup.is_empty(), "data seen more than once: {dup:?}");
    let seen: BTreeSet<i64> = seen.into_keys().collect();
    assert_eq!(seen, produced, "every datum consumed once or still stored");

    let lists: BTreeSet<Vec<String>> = consumes.values().cloned().collect();
    for l in &lists {
        for w in space.continuations(l) {
            *fired.entry(w.continuation).or_default() += 1;
        }
    }
    let dup: Vec<_> = fired.iter().filter(|(_, n)| **n != 1).collect();
    assert!(dup.is_empty(), "continuations seen more than once: {dup:?}");
    let fired: BTreeSet<String> = fired.into_keys().collect();
    let all: BTreeSet<String> = consumes.into_keys().collect();
    assert_eq!(fired, all, "every consume fired once or still waits");
}

/// Exact matching: each thread produces its own values on its own channel and on shared
/// channels, and consumes values that a neighbour thread produces (before or after).
#[test]
fn exact_space_conserves_data_and_continuations_across_threads() {
    let space: Arc<Space<String, i64, i64, String, ExactMatch>> =
        Arc::new(Space::new(ExactMatch, SpaceConfig::new()));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let space = Arc::clone(&space);
            thread::spawn(move || {
                let mut comms = Vec::new();
                let mut produced = BTreeSet::new();
                let mut consumes = BTreeMap::new();
                let next = (t + 1) % THREADS;
                for i in 0..ROUNDS {
                    let v = (t * 1_000_000 + i) as i64;
                    let sh = shared(i % 2);
                    // Own channel.
                    produced.insert(v);
                    comms.extend(space.produce(own(t), v, false).unwrap());
                    // Shared channel; the neighbour's value for this round.
                    produced.insert(-v - 1);
                    comms.extend(space.produce(sh.clone(), -v - 1, false).unwrap());
                    let theirs = -((next * 1_000_000 + i) as i64) - 1;
                    let k = format!("k-{t}-{i}");
                    let list = if i % 3 == 0 {
                        // A join over the own and a shared channel.
                        vec![own(t), sh.clone()]
                    } else {
                        vec![sh.clone()]
                    };
                    let pats = if list.len() == 2 {
                        vec![v, theirs]
                    } else {
                        vec![theirs]
                    };
                    consumes.insert(k.clone(), list.clone());
                    comms.extend(space.consume(list, pats, k, false, &[]).unwrap());
                }
                (comms, produced, consumes)
            })
        })
        .collect();
    let mut comms = Vec::new();
    let mut produced = BTreeSet::new();
    let mut consumes = BTreeMap::new();
    for h in handles {
        let (c, p, k) = h.join().expect("no thread panics");
        comms.extend(c);
        produced.extend(p);
        consumes.extend(k);
    }
    assert!(
        comms.len() as u64 > THREADS * ROUNDS / 2,
        "most consumes fire"
    );
    check_conservation(&space, comms, produced, consumes);
}

/// Predicate matching: any thread may take any datum on the shared channels, so the threads
/// really race for the same items.
#[test]
fn racing_consumers_never_duplicate_a_datum() {
    let space: Arc<Space<String, Pred, i64, String, PredMatch>> =
        Arc::new(Space::new(PredMatch, SpaceConfig::new()));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let space = Arc::clone(&space);
            thread::spawn(move || {
                let mut comms = Vec::new();
                let mut produced = BTreeSet::new();
                let mut consumes = BTreeMap::new();
                for i in 0..ROUNDS {
                    let v = (t * 1_000_000 + i) as i64;
                    let ch = if i % 4 == 0 { own(t) } else { shared(i % 2) };
                    produced.insert(v);
                    comms.extend(space.produce(ch, v, false).unwrap());
                    let k = format!("k-{t}-{i}");
                    let (list, pats) = match i % 3 {
                        0 => (vec![shared(0)], vec![Pred::Any]),
                        1 => (vec![shared(1), shared(0)], vec![Pred::Any, Pred::Any]),
                        _ => (vec![shared(1), own(t)], vec![Pred::Even, Pred::Any]),
                    };
                    consumes.insert(k.clone(), list.clone());
                    comms.extend(space.consume(list, pats, k, false, &[]).unwrap());
                }
                (comms, produced, consumes)
            })
        })
        .collect();
    let mut comms = Vec::new();
    let mut produced = BTreeSet::new();
    let mut consumes = BTreeMap::new();
    for h in handles {
        let (c, p, k) = h.join().expect("no thread panics");
        comms.extend(c);
        produced.extend(p);
        consumes.extend(k);
    }
    assert!(!comms.is_empty());
    check_conservation(&space, comms, produced, consumes);
}
