//! loom models of the space's lock protocol (SPEC §9): shard locks taken in ascending order,
//! joins that span shards, the produce path that widens its lock set, soft checkpoints that
//! lock every shard, a replay (the replay lock, taken after the shard locks), and a charging
//! space's refund, which a soft checkpoint must see together with the change that earned it
//! and a settled revert must settle exactly once.
//!
//! Under `--cfg loom` the space's shard mutexes are loom's (see `spaces/src/sync.rs`), so loom
//! explores the interleavings of *our* protocol on the real `Space`. The maps inside a shard are
//! plain data under those locks. Each model counts its executions and asserts that loom explored
//! more than one: a model that runs once proves nothing.
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test --release -p rhospace-spaces --test loom_space`
#![cfg(loom)]

use std::sync::atomic::{AtomicUsize, Ordering};

use loom::thread;
use rhospace_matchers::ExactMatch;
use rhospace_phlogiston::{CostTable, PhlogistonMeter};
use rhospace_spaces::{ChargingSpace, Space, SpaceConfig};
use std::sync::Arc;

type S = Space<u32, u32, u32, u32, ExactMatch>;

fn space() -> S {
    Space::with_shards(ExactMatch, SpaceConfig::new(), 4)
}

/// Two channels routed to different shards, the first in the higher shard (so a join listing
/// them in this order must still lock in ascending shard order).
fn two_shards(s: &S) -> (u32, u32) {
    let a = 0u32;
    let mut b = 1u32;
    while s.shard_of(&b) == s.shard_of(&a) {
        b += 1;
    }
    if s.shard_of(&a) > s.shard_of(&b) {
        (a, b)
    } else {
        (b, a)
    }
}

/// Runs `f` under loom and asserts more than one execution was explored.
fn model(name: &str, f: impl Fn() + Sync + Send + 'static) {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    loom::model(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        f();
    });
    let n = runs.load(Ordering::Relaxed);
    eprintln!("{name}: {n} executions");
    assert!(n > 1, "{name}: loom explored only {n} execution(s)");
}

#[test]
fn join_across_shards_never_loses_a_wake_up() {
    // A join waits on two shards while both of its data are produced concurrently: whatever the
    // interleaving, exactly one COMM fires and nothing is left behind.
    model("join_across_shards", || {
        let s = Arc::new(space());
        let (a, b) = two_shards(&s);
        let s1 = s.clone();
        let t1 =
            thread::spawn(move || s1.consume([a, b], [1, 2], 9, false, &[]).unwrap().is_some());
        let s2 = s.clone();
        let t2 = thread::spawn(move || s2.produce(a, 1, false).unwrap().is_some());
        let here = s.produce(b, 2, false).unwrap().is_some();
        let fired = [t1.join().unwrap(), t2.join().unwrap(), here];
        assert_eq!(fired.iter().filter(|f| **f).count(), 1, "{fired:?}");
        assert!(s.is_empty());
    });
}

#[test]
fn opposite_order_joins_do_not_deadlock() {
    // Two joins name the same two shards in opposite orders; both data are stored. Exactly one
    // join fires (each needs both data), the other waits; loom reports any deadlock.
    model("opposite_order_joins", || {
        let s = Arc::new(space());
        let (a, b) = two_shards(&s);
        s.produce(a, 1, false).unwrap();
        s.produce(b, 2, false).unwrap();
        let s1 = s.clone();
        let t1 = thread::spawn(move || s1.consume([a, b], [1, 2], 1, false, &[]).unwrap());
        let here = s.consume([b, a], [2, 1], 2, false, &[]).unwrap();
        let there = t1.join().unwrap();
        assert!(here.is_some() != there.is_some());
        assert!(s.data(&a).is_empty() && s.data(&b).is_empty());
        let waiting = s.continuations(&[a, b]).len() + s.continuations(&[b, a]).len();
        assert_eq!(waiting, 1);
    });
}

#[test]
fn produce_racing_consume_fires_exactly_once() {
    model("produce_racing_consume", || {
        let s = Arc::new(space());
        let s1 = s.clone();
        let t1 = thread::spawn(move || s1.produce(3, 7, false).unwrap());
        let consumed = s.consume([3], [7], 0, false, &[]).unwrap();
        let produced = t1.join().unwrap();
        assert!(consumed.is_some() != produced.is_some());
        assert!(s.is_empty());
    });
}

#[test]
fn checkpoint_racing_a_join_sees_all_or_nothing() {
    // A join takes one datum from each of two shards while a soft checkpoint is taken: the
    // checkpoint holds both data or neither, never half a COMM.
    model("checkpoint_racing_join", || {
        let s = Arc::new(space());
        let (a, b) = two_shards(&s);
        s.produce(a, 1, false).unwrap();
        s.produce(b, 2, false).unwrap();
        let s1 = s.clone();
        let t1 = thread::spawn(move || s1.consume([a, b], [1, 2], 0, false, &[]).unwrap());
        let cp = s.create_soft_checkpoint();
        assert!(t1.join().unwrap().is_some());
        assert!(s.is_empty());
        s.revert_to_soft_checkpoint(&cp).unwrap();
        let (na, nb) = (s.data(&a).len(), s.data(&b).len());
        assert_eq!(na, nb, "checkpoint caught half a COMM");
    });
}

#[test]
fn checkpoint_racing_a_refund_records_it_with_the_state() {
    // A charged consume frees a stored datum (and refunds its storage) while a soft checkpoint
    // is taken: the checkpoint holds the datum and not the refund, or neither. Reverting to it
    // then charges the refund back exactly when the datum comes back.
    model("checkpoint_racing_refund", || {
        let meter = Arc::new(PhlogistonMeter::new(1_000_000));
        let t = CostTable::default();
        let s = Arc::new(ChargingSpace::new(space(), meter.clone(), t));
        s.produce(0, 7, false).unwrap();
        let s1 = s.clone();
        let t1 = thread::spawn(move || s1.consume([0], [7], 1, false, &[]).unwrap().is_some());
        let cp = s.create_soft_checkpoint().unwrap();
        assert!(t1.join().unwrap());
        let before = meter.consumed();
        s.revert_to_soft_checkpoint(&cp).unwrap();
        let back = s.space().data(&0).len() as u64;
        let storage = t.datum_storage(4, 4);
        assert_eq!(
            meter.consumed() - before,
            t.soft_checkpoint() + back * storage
        );
        assert_eq!(meter.consumed() + meter.remaining(), meter.limit());
    });
}

#[test]
fn revert_racing_a_refund_settles_it_exactly_once() {
    // A charged consume frees a stored datum (and refunds its storage) while a settled revert
    // goes back to a checkpoint that holds the datum. Either the consume comes first (its
    // refund is charged back, the datum returns) or the revert does (it settles nothing and
    // the consume then takes the datum for good): in both, the meter holds exactly the prices
    // paid plus the storage of what is stored at the end.
    model("revert_racing_refund", || {
        let meter = Arc::new(PhlogistonMeter::new(1_000_000));
        let t = CostTable::default();
        let s = Arc::new(ChargingSpace::new(space(), meter.clone(), t));
        s.produce(0, 7, false).unwrap();
        let cp = s.create_soft_checkpoint().unwrap();
        let before = meter.consumed();
        let storage = t.datum_storage(4, 4);
        let s1 = s.clone();
        let t1 = thread::spawn(move || s1.consume([0], [7], 1, false, &[]).unwrap().is_some());
        s.revert_to_soft_checkpoint(&cp).unwrap();
        assert!(t1.join().unwrap());
        let stored = s.space().data(&0).len() as u64;
        let prices =
            t.consume_base + t.join_channel + t.matching(1) + t.comm(1) + t.soft_checkpoint();
        // `before` includes the datum's storage: what is refunded for good comes off it.
        assert_eq!(meter.consumed(), before + prices - (1 - stored) * storage);
        assert_eq!(meter.consumed() + meter.remaining(), meter.limit());
    });
}

#[test]
fn produce_widening_its_locks_meets_a_new_join() {
    // The produce on `b` first sees no join (fast path, one shard) or a join spanning `a` and
    // `b` (it must then lock both shards in order, re-reading the join list). Either way the
    // datum on `a` and the produce on `b` meet the join exactly once.
    model("produce_widening", || {
        let s = Arc::new(space());
        let (a, b) = two_shards(&s);
        s.produce(a, 1, false).unwrap();
        let s1 = s.clone();
        let t1 = thread::spawn(move || s1.produce(b, 2, false).unwrap().is_some());
        let here = s.consume([a, b], [1, 2], 0, false, &[]).unwrap().is_some();
        let there = t1.join().unwrap();
        assert!(here != there);
        assert!(s.is_empty());
    });
}

/// Three channels routed to three different shards.
fn three_shards(s: &S) -> (u32, u32, u32) {
    let mut found: Vec<u32> = Vec::new();
    let mut c = 0u32;
    while found.len() < 3 {
        if found.iter().all(|f| s.shard_of(f) != s.shard_of(&c)) {
            found.push(c);
        }
        c += 1;
    }
    (found[0], found[1], found[2])
}

#[test]
fn produce_rereads_its_joins_after_widening_its_locks() {
    // A produce on `b` finds a join over `b` and `a` under `b`'s shard lock, so it must drop
    // that lock and take both shards in ascending order. In between, a consume may add a
    // second join over `b` and `c`, a third shard: the produce must see it when it re-reads
    // the joins under its new locks, and widen again. Whatever the interleaving, the datum on
    // `c`, the produce and the second join meet exactly once, and the first join still waits.
    model("produce_rereads_joins", || {
        let s = Arc::new(space());
        let (a, b, c) = three_shards(&s);
        assert!(s.consume([b, a], [2, 1], 1, false, &[]).unwrap().is_none());
        assert!(s.produce(c, 3, false).unwrap().is_none());
        let s1 = s.clone();
        let t1 = thread::spawn(move || s1.produce(b, 2, false).unwrap());
        let here = s.consume([b, c], [2, 3], 2, false, &[]).unwrap();
        let there = t1.join().unwrap();
        assert!(here.is_some() != there.is_some(), "{here:?} {there:?}");
        let comm = here.or(there).unwrap();
        assert_eq!(comm.continuation, 2);
        assert!(s.data(&b).is_empty() && s.data(&c).is_empty());
        assert!(s.continuations(&[b, c]).is_empty());
        assert_eq!(s.continuations(&[b, a]).len(), 1);
    });
}

#[test]
fn replayed_join_fires_the_logged_comm_once_whatever_the_order() {
    // Play: data on two shards, then the join that takes both. Replay the three calls from
    // three threads: whichever call completes the join fires it, under the replay lock taken
    // after the shard locks (no deadlock with any lock order), and the closing checkpoint finds
    // the log used up and the played root.
    // (Loom's mutexes exist only inside a model, so the play runs in each execution too.)
    model("replayed_join", || {
        let play = space();
        let (a, b) = two_shards(&play);
        play.produce(a, 1, false).unwrap();
        play.produce(b, 2, false).unwrap();
        assert!(play
            .consume([a, b], [1, 2], 9, false, &[])
            .unwrap()
            .is_some());
        let block = play.create_checkpoint().unwrap();
        let root = block.root;
        let s = Arc::new(space());
        s.rig(&rhospace_spaces::merkle::EMPTY_ROOT, &block.log)
            .unwrap();
        let s1 = s.clone();
        let t1 =
            thread::spawn(move || s1.consume([a, b], [1, 2], 9, false, &[]).unwrap().is_some());
        let s2 = s.clone();
        let t2 = thread::spawn(move || s2.produce(a, 1, false).unwrap().is_some());
        let here = s.produce(b, 2, false).unwrap().is_some();
        let fired = [t1.join().unwrap(), t2.join().unwrap(), here];
        assert_eq!(fired.iter().filter(|f| **f).count(), 1, "{fired:?}");
        assert_eq!(s.create_checkpoint().unwrap().root, root);
    });
}
