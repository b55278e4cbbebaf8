//! Space operations called from rayon tasks (SPEC §9: no deadlock). A join search over many
//! candidates pre-checks them on rayon's threads while it holds its shard locks; a thread that
//! waits there for a stolen part of that scan must not run another task that takes a shard
//! lock (its own, held lower on the same stack, or a lower one: the lock order).
#![cfg(not(loom))]

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use rayon::prelude::*;
use rhospace_matchers::Match;
use rhospace_spaces::{Space, SpaceConfig, PARALLEL_MIN_CANDIDATES};

/// Matches a datum at least the pattern: no exact key, so a search scans every candidate.
struct AtLeast;

impl Match<u32, u32> for AtLeast {
    type Output = u32;
    fn get(&self, pattern: &u32, datum: &u32) -> Option<u32> {
        (datum >= pattern).then_some(*datum)
    }
}

type S = Space<u32, u32, u32, u32, AtLeast>;

#[test]
fn operations_in_rayon_tasks_that_scan_in_parallel_do_not_deadlock() {
    let s: Arc<S> = Arc::new(Space::with_shards(AtLeast, SpaceConfig::new(), 4));
    // Channel 0 holds enough data that a scan for the last one runs in parallel.
    let n = u32::try_from(PARALLEL_MIN_CANDIDATES).unwrap() + 2_000;
    for v in 0..n {
        s.produce(0, v, false).unwrap();
    }
    // Channels in the other shards, for quick operations that keep rayon's workers stealing.
    let others: Vec<u32> = (1..1_000)
        .filter(|c| s.shard_of(c) != s.shard_of(&0))
        .take(8)
        .collect();
    let (done, finished) = mpsc::channel();
    let worker = {
        let s = s.clone();
        std::thread::spawn(move || {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(8)
                .build()
                .unwrap();
            pool.install(|| {
                for _ in 0..200 {
                    (0..32u32).into_par_iter().for_each(|i| {
                        if i % 2 == 0 {
                            // A peek at the last datum: scans every candidate, holding the
                            // shard of channel 0, and leaves the data as they are.
                            let comm = s.consume([0], [n - 1], i, false, &[0]).unwrap();
                            assert!(comm.is_some());
                        } else {
                            let c = others[i as usize % others.len()];
                            s.produce(c, i, false).unwrap();
                            s.consume([c], [0], i, false, &[]).unwrap();
                        }
                    });
                }
            });
            done.send(()).unwrap();
        })
    };
    // Seconds of work at most; a deadlock never finishes.
    match finished.recv_timeout(Duration::from_secs(60)) {
        Ok(()) => worker.join().unwrap(),
        Err(_) => panic!("space operations in rayon tasks deadlocked"),
    }
    assert_eq!(s.data(&0).len(), n as usize);
}
