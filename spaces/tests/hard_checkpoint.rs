//! Hard checkpoints (SPEC §6, issue 5): the state root depends only on contents, is computed
//! incrementally yet equals a from-scratch hash, `reset` restores any recorded root (from
//! memory or from a database a previous space wrote), errors change nothing, and the event log
//! (SPEC §7) is returned and cleared.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use rhospace_matchers::ExactMatch;
use rhospace_spaces::merkle::{Digest, EMPTY_ROOT};
use rhospace_spaces::{
    CheckpointError, ContKind, DataKind, HistoryError, HistoryStore, LogEvent, MemoryHistory,
    RedbHistory, RevertError, SoftCheckpoint, Space, SpaceConfig, SNAPSHOT_CACHE,
};

type S = Space<u32, u32, u32, u32, ExactMatch>;

fn config() -> SpaceConfig<u32> {
    SpaceConfig::new()
        .channel_kind(100, DataKind::Queue)
        .channel_kind(101, DataKind::Stack)
        .channel_kind(102, DataKind::Set)
        .channel_kind(103, DataKind::PriorityQueue)
        .channel_kind(104, DataKind::Cell)
}

fn space(shards: usize) -> S {
    Space::with_shards(ExactMatch, config(), shards)
}

fn hex(d: &Digest) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Everything observable, as text: data of every channel used, join lists, continuations.
fn contents(s: &S) -> String {
    let mut out = String::new();
    for c in (0..12).chain(100..105) {
        out += &format!("{c}: {:?} {:?}\n", s.data(&c), s.joins(&c));
        for jk in s.joins(&c) {
            out += &format!("  {jk:?} {:?}\n", s.continuations(&jk));
        }
    }
    out
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A random operation on a small alphabet, so COMMs fire often.
fn step(s: &S, rng: &mut Rng) {
    let channels = [0, 1, 2, 3, 4, 5, 6, 7, 100, 101, 102, 103, 104];
    let c = channels[rng.below(channels.len() as u64) as usize];
    match rng.below(10) {
        0..=4 => {
            let _ = s.produce_with_priority(
                c,
                rng.below(4) as u32,
                rng.below(10) == 0,
                rng.below(3) as i64,
            );
        }
        5..=7 => {
            let _ = s.consume(
                [c],
                [rng.below(4) as u32],
                rng.below(5) as u32,
                rng.below(10) == 0,
                &[],
            );
        }
        _ => {
            let d = channels[rng.below(channels.len() as u64) as usize];
            let peeks: &[usize] = if rng.below(4) == 0 { &[1] } else { &[] };
            let _ = s.consume(
                [c, d],
                [rng.below(4) as u32, rng.below(4) as u32],
                9,
                false,
                peeks,
            );
        }
    }
}

#[test]
fn bag_root_ignores_insertion_order_queue_root_does_not() {
    let a = space(32);
    let b = space(32);
    for d in [1, 2, 3, 2] {
        a.produce(0, d, false).unwrap();
    }
    for d in [2, 3, 2, 1] {
        b.produce(0, d, false).unwrap();
    }
    assert_eq!(
        a.create_checkpoint().unwrap().root,
        b.create_checkpoint().unwrap().root
    );

    let q1 = space(32);
    let q2 = space(32);
    q1.produce(100, 1, false).unwrap();
    q1.produce(100, 2, false).unwrap();
    q2.produce(100, 2, false).unwrap();
    q2.produce(100, 1, false).unwrap();
    assert_ne!(
        q1.create_checkpoint().unwrap().root,
        q2.create_checkpoint().unwrap().root
    );
}

#[test]
fn bag_continuations_ignore_order_and_persist_flag_counts() {
    let a = space(8);
    let b = space(8);
    a.consume([1, 2], [5, 6], 1, false, &[]).unwrap();
    a.consume([1, 2], [5, 6], 2, false, &[]).unwrap();
    b.consume([1, 2], [5, 6], 2, false, &[]).unwrap();
    b.consume([1, 2], [5, 6], 1, false, &[]).unwrap();
    assert_eq!(
        a.create_checkpoint().unwrap().root,
        b.create_checkpoint().unwrap().root
    );
    let c = space(8);
    c.consume([1, 2], [5, 6], 1, true, &[]).unwrap();
    c.consume([1, 2], [5, 6], 2, false, &[]).unwrap();
    assert_ne!(
        a.create_checkpoint().unwrap().root,
        c.create_checkpoint().unwrap().root
    );
    let q = Space::<u32, u32, u32, u32, ExactMatch>::new(
        ExactMatch,
        SpaceConfig::new().cont_kind(ContKind::Queue),
    );
    let r = Space::<u32, u32, u32, u32, ExactMatch>::new(
        ExactMatch,
        SpaceConfig::new().cont_kind(ContKind::Queue),
    );
    q.consume([1], [5], 1, false, &[]).unwrap();
    q.consume([1], [5], 2, false, &[]).unwrap();
    r.consume([1], [5], 2, false, &[]).unwrap();
    r.consume([1], [5], 1, false, &[]).unwrap();
    assert_ne!(
        q.create_checkpoint().unwrap().root,
        r.create_checkpoint().unwrap().root
    );
}

#[test]
fn golden_root() {
    // A fixed small state has a fixed root: a change of encoding or hashing must be noticed.
    let s = space(32);
    s.produce(0, 1, false).unwrap();
    s.produce(0, 2, true).unwrap();
    s.produce(100, 3, false).unwrap();
    s.produce(100, 4, false).unwrap();
    s.produce_with_priority(103, 5, false, 7).unwrap();
    s.consume([1, 2], [7, 8], 42, false, &[1]).unwrap();
    let root = s.create_checkpoint().unwrap().root;
    assert_eq!(hex(&root), GOLDEN);
    assert_eq!(
        hex(&space(1).create_checkpoint().unwrap().root),
        hex(&EMPTY_ROOT)
    );
}

const GOLDEN: &str = "f111bbeb7419f53bc6226f5ae6450d9462ad471abf72e598020ee210e4cdf066";

#[test]
fn same_calls_give_the_same_root_on_any_shard_count() {
    let mut roots: Vec<Vec<Digest>> = Vec::new();
    for shards in [1, 4, 32, 256] {
        let s = space(shards);
        let mut rng = Rng(0xDEAD_BEEF);
        let mut mine = Vec::new();
        for round in 0..20 {
            for _ in 0..50 {
                step(&s, &mut rng);
            }
            let cp = s.create_checkpoint().unwrap();
            assert!(!cp.log.is_empty(), "round {round}");
            mine.push(cp.root);
        }
        roots.push(mine);
    }
    for r in &roots[1..] {
        assert_eq!(r, &roots[0]);
    }
}

/// A soft checkpoint reverted into a space with another shard count carries the changes and
/// the events since the last hard checkpoint: the next hard checkpoint there gives the same
/// root and the same log (as a multiset: logs are ordered per shard) as in the source.
#[test]
fn a_checkpoint_rerouted_to_another_shard_count_keeps_changes_and_log() {
    for (from, to) in [(4, 8), (8, 4), (1, 32), (32, 1)] {
        let a = space(from);
        let mut rng = Rng(0x5EED ^ from as u64);
        for _ in 0..200 {
            step(&a, &mut rng);
        }
        a.create_checkpoint().unwrap();
        for _ in 0..120 {
            step(&a, &mut rng);
        }
        let cp = a.create_soft_checkpoint();
        let b = space(to);
        b.revert_to_soft_checkpoint(&cp).unwrap();
        assert_eq!(contents(&b), contents(&a));
        let (ca, cb) = (
            a.create_checkpoint().unwrap(),
            b.create_checkpoint().unwrap(),
        );
        assert_eq!(hex(&cb.root), hex(&ca.root), "{from} -> {to} shards");
        assert_eq!(
            b.full_state_root(),
            cb.root,
            "{from} -> {to}: root left out changes"
        );
        assert!(!ca.log.is_empty());
        let sorted = |log: &[LogEvent]| {
            let mut v: Vec<String> = log.iter().map(|e| format!("{e:?}")).collect();
            v.sort();
            v
        };
        assert_eq!(sorted(&cb.log), sorted(&ca.log), "{from} -> {to} shards");
        // And the rerouted space goes on like the source.
        let mut rng_a = Rng(7);
        let mut rng_b = Rng(7);
        for _ in 0..100 {
            step(&a, &mut rng_a);
            step(&b, &mut rng_b);
        }
        assert_eq!(
            b.create_checkpoint().unwrap().root,
            a.create_checkpoint().unwrap().root
        );
    }
}

#[test]
fn incremental_root_equals_a_full_rehash() {
    for seed in 1..=8u64 {
        let s = space(16);
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut soft = None;
        for round in 0..40 {
            for _ in 0..rng.below(40) {
                step(&s, &mut rng);
            }
            match rng.below(6) {
                0 => soft = Some(s.create_soft_checkpoint()),
                1 => {
                    if let Some(cp) = &soft {
                        s.revert_to_soft_checkpoint(cp).unwrap();
                    }
                }
                _ => {}
            }
            let full = s.full_state_root();
            let root = s.create_checkpoint().unwrap().root;
            assert_eq!(hex(&root), hex(&full), "seed {seed} round {round}");
            assert_eq!(
                s.full_state_root(),
                root,
                "checkpoint changed the contents' root"
            );
        }
    }
}

#[test]
fn reset_restores_every_recorded_root_and_errors_change_nothing() {
    let s = space(8);
    let mut rng = Rng(77);
    let mut recorded = Vec::new();
    for _ in 0..15 {
        for _ in 0..30 {
            step(&s, &mut rng);
        }
        let root = s.create_checkpoint().unwrap().root;
        recorded.push((root, contents(&s)));
    }
    for i in [3usize, 14, 0, 7, 7, 11] {
        let (root, want) = &recorded[i];
        s.reset(root).unwrap();
        assert_eq!(&contents(&s), want, "reset to root #{i}");
        assert_eq!(s.create_checkpoint().unwrap().root, *root);
    }
    let before = contents(&s);
    let err = s.reset(&[0xAB; 32]).unwrap_err();
    assert!(matches!(err, CheckpointError::UnknownRoot(r) if r == [0xAB; 32]));
    assert_eq!(contents(&s), before);
}

#[test]
fn installed_continuations_survive_reset_and_clear() {
    let s = space(4);
    s.install([9], [1], 500).unwrap();
    s.produce(3, 3, false).unwrap();
    let root = s.create_checkpoint().unwrap().root;
    s.clear();
    assert_eq!(s.create_checkpoint().unwrap().root, EMPTY_ROOT);
    assert_eq!(s.produce(9, 1, false).unwrap().unwrap().continuation, 500);
    s.reset(&root).unwrap();
    assert_eq!(s.data(&3).len(), 1);
    assert_eq!(s.produce(9, 1, false).unwrap().unwrap().continuation, 500);
    s.reset(&EMPTY_ROOT).unwrap();
    assert!(s.is_empty());
    assert_eq!(s.continuations(&[9]).len(), 1);
}

#[test]
fn event_log_names_calls_and_comms_and_counts_identical_produces() {
    let s = space(4);
    s.produce(1, 7, false).unwrap();
    s.produce(1, 7, false).unwrap();
    s.consume([1], [7], 0, false, &[]).unwrap();
    let log = s.create_checkpoint().unwrap().log;
    assert_eq!(log.len(), 4, "{log:?}");
    let (p0, p1) = match (&log[0], &log[1]) {
        (
            LogEvent::Produce {
                hash: a,
                counter: 0,
            },
            LogEvent::Produce {
                hash: b,
                counter: 1,
            },
        ) => (a, b),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(p0, p1);
    assert!(matches!(&log[2], LogEvent::Consume { counter: 0, .. }));
    match &log[3] {
        LogEvent::Comm(r) => {
            assert_eq!(r.produces, vec![*p0]);
            assert_eq!(
                r.consume,
                rhospace_spaces::consume_hash(&[1u32], &[7u32], &0u32, false, &[])
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    // The log was cleared; a soft checkpoint captures it and a revert brings it back.
    s.produce(2, 1, false).unwrap();
    let soft = s.create_soft_checkpoint();
    s.produce(2, 2, false).unwrap();
    s.revert_to_soft_checkpoint(&soft).unwrap();
    assert_eq!(s.create_checkpoint().unwrap().log.len(), 1);
}

/// A persistent continuation keeps its call's log encoding while it waits (made when it is
/// stored or installed, and again when a space loads it from history): every COMM it fires
/// names that call by the hash of its parts, in the space that stored it, in one that loaded
/// it, and in a replay of each, which also reaches the same root.
#[test]
fn every_comm_of_a_persistent_continuation_names_its_call() {
    let join = rhospace_spaces::consume_hash(&[1u32, 2], &[7u32, 8], &5u32, true, &[1]);
    let installed = rhospace_spaces::consume_hash(&[9u32], &[1u32], &500u32, true, &[]);
    // Fires the join (peeking at channel 2's datum) and the installed continuation twice each.
    let fire = |s: &S| {
        for _ in 0..2 {
            assert_eq!(s.produce(1, 7, false).unwrap().unwrap().continuation, 5);
            assert_eq!(s.produce(9, 1, false).unwrap().unwrap().continuation, 500);
        }
    };
    // The calls the COMMs name, sorted: the log lists shards one after another.
    let comms_name = |log: &[LogEvent]| -> Vec<Digest> {
        let mut named: Vec<Digest> = log
            .iter()
            .filter_map(|e| match e {
                LogEvent::Comm(r) => Some(r.consume),
                _ => None,
            })
            .collect();
        named.sort();
        named
    };
    let mut expected = vec![join, installed, join, installed];
    expected.sort();
    let store = Arc::new(MemoryHistory::new());
    let a = space(4).with_history(store.clone());
    a.install([9], [1], 500).unwrap();
    a.produce(2, 8, false).unwrap();
    assert!(a.consume([1, 2], [7, 8], 5, true, &[1]).unwrap().is_none());
    let start = a.create_checkpoint().unwrap().root;
    fire(&a);
    let played = a.create_checkpoint().unwrap();
    assert_eq!(comms_name(&played.log), expected);
    // Another space loads the start from the store (not from memory it recorded).
    let b = space(2).with_history(store.clone());
    b.install([9], [1], 500).unwrap();
    b.reset(&start).unwrap();
    fire(&b);
    let loaded = b.create_checkpoint().unwrap();
    assert_eq!(comms_name(&loaded.log), expected);
    assert_eq!(loaded.root, played.root);
    // A replay of the log, rigged on a space that loads the start, accepts every COMM.
    let r = space(3).with_history(store.clone());
    r.install([9], [1], 500).unwrap();
    r.rig(&start, &played.log).unwrap();
    fire(&r);
    let replayed = r.create_checkpoint().unwrap();
    assert!(!r.is_replaying());
    assert_eq!(replayed.root, played.root);
    assert_eq!(comms_name(&replayed.log), expected);
}

/// A memory store with what the tests need of a store: `fail` makes every commit fail,
/// `damage` serves other bytes (absent when `None`) under one hash (one damaged node or leaf
/// blob), and `offered` counts the bytes the commits are given.
#[derive(Default)]
struct TestStore {
    inner: Arc<MemoryHistory>,
    fail: AtomicBool,
    damage: Option<(Digest, Option<Vec<u8>>)>,
    offered: AtomicUsize,
}

impl TestStore {
    /// What the damage serves under `hash`, if `hash` is the damaged one.
    fn damaged(&self, hash: &Digest) -> Option<&Option<Vec<u8>>> {
        self.damage
            .as_ref()
            .filter(|(t, _)| t == hash)
            .map(|(_, b)| b)
    }
}

impl HistoryStore for TestStore {
    fn get(&self, hash: &Digest) -> Result<Option<Vec<u8>>, HistoryError> {
        match self.damaged(hash) {
            Some(bytes) => Ok(bytes.clone()),
            None => self.inner.get(hash),
        }
    }
    fn contains(&self, hash: &Digest) -> Result<bool, HistoryError> {
        match self.damaged(hash) {
            Some(bytes) => Ok(bytes.is_some()),
            None => self.inner.contains(hash),
        }
    }
    fn commit(&self, blobs: &[(Digest, Vec<u8>)], root: Digest) -> Result<usize, HistoryError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(HistoryError::RootNotStored(root));
        }
        let given: usize = blobs.iter().map(|(_, b)| b.len()).sum();
        self.offered.fetch_add(given, Ordering::SeqCst);
        self.inner.commit(blobs, root)
    }
    fn has_root(&self, root: &Digest) -> Result<bool, HistoryError> {
        self.inner.has_root(root)
    }
    fn roots(&self) -> Result<Vec<Digest>, HistoryError> {
        self.inner.roots()
    }
}

#[test]
fn a_failed_checkpoint_changes_nothing() {
    let store = Arc::new(TestStore::default());
    let s = space(4).with_history(store.clone());
    s.produce(1, 1, false).unwrap();
    let first = s.create_checkpoint().unwrap().root;
    s.produce(1, 2, false).unwrap();
    s.produce(1, 0, false).unwrap();
    let before = contents(&s);
    store.fail.store(true, Ordering::SeqCst);
    assert!(matches!(
        s.create_checkpoint(),
        Err(CheckpointError::History(_))
    ));
    assert_eq!(contents(&s), before);
    store.fail.store(false, Ordering::SeqCst);
    let cp = s.create_checkpoint().unwrap();
    assert_eq!(cp.log.len(), 2, "the pending log survived the failure");
    assert_eq!(cp.root, s.full_state_root());
    s.reset(&first).unwrap();
    assert_eq!(s.data(&1).len(), 1);
}

#[test]
fn disk_history_survives_the_space_and_resets_in_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.redb");
    let mut recorded = Vec::new();
    {
        let s = space(8).with_history(Arc::new(RedbHistory::open(&path).unwrap()));
        let mut rng = Rng(4242);
        for _ in 0..10 {
            for _ in 0..40 {
                step(&s, &mut rng);
            }
            let root = s.create_checkpoint().unwrap().root;
            recorded.push((root, contents(&s)));
        }
    }
    // A new space (other shard count) on the reopened database.
    let s = space(32).with_history(Arc::new(RedbHistory::open(&path).unwrap()));
    for (i, (root, want)) in recorded.iter().enumerate().rev() {
        s.reset(root).unwrap();
        assert_eq!(&contents(&s), want, "root #{i} from disk");
        assert_eq!(s.full_state_root(), *root);
    }
    // Going on from a loaded root behaves like going on in the original space.
    let mut rng = Rng(1);
    s.reset(&recorded[9].0).unwrap();
    let twin = space(8);
    let mut rng2 = Rng(4242);
    for _ in 0..10 {
        for _ in 0..40 {
            step(&twin, &mut rng2);
        }
        twin.create_checkpoint().unwrap();
    }
    for _ in 0..100 {
        let mut r2 = Rng(rng.0);
        step(&s, &mut rng);
        step(&twin, &mut r2);
    }
    assert_eq!(contents(&s), contents(&twin));
    assert_eq!(
        s.create_checkpoint().unwrap().root,
        twin.create_checkpoint().unwrap().root
    );
}

/// Stores crossing the flat/tree layout switch (32 items) while soft checkpoints hold them:
/// each revert restores exactly the contents at its checkpoint, and the next hard checkpoint
/// returns exactly the events of the calls behind those contents.
#[test]
fn soft_checkpoints_across_the_small_store_limit() {
    let s = space(4);
    // `reference` makes only the calls that survive the reverts below.
    let reference = space(4);
    let both = |f: &dyn Fn(&S)| {
        f(&s);
        f(&reference);
    };
    both(&|x| {
        for i in 0..20 {
            x.produce(1, i, false).unwrap();
            x.consume([2], [i], i, false, &[]).unwrap();
        }
    });
    let cp1 = s.create_soft_checkpoint();
    let at1 = contents(&s);
    // Past the switch on both channels, on the live space only.
    for i in 20..70 {
        s.produce(1, i, false).unwrap();
        s.consume([2], [i], i, false, &[]).unwrap();
    }
    let cp2 = s.create_soft_checkpoint();
    let at2 = contents(&s);
    for i in 0..70 {
        s.consume([1], [i], 0, false, &[]).unwrap();
        s.produce(2, i, false).unwrap();
    }
    assert!(s.data(&1).is_empty() && s.continuations(&[2]).is_empty());
    for _ in 0..3 {
        s.revert_to_soft_checkpoint(&cp2).unwrap();
        assert_eq!(contents(&s), at2);
        assert_eq!(s.data(&1).len(), 70);
        assert_eq!(s.continuations(&[2]).len(), 70);
        s.revert_to_soft_checkpoint(&cp1).unwrap();
        assert_eq!(contents(&s), at1);
        // Writes after a revert change neither checkpoint.
        s.produce(1, 999, false).unwrap();
        s.consume([1], [3], 0, false, &[]).unwrap();
    }
    s.revert_to_soft_checkpoint(&cp1).unwrap();
    both(&|x| {
        for i in 20..50 {
            x.consume([2], [i], i, true, &[]).unwrap();
        }
    });
    assert_eq!(contents(&s), contents(&reference));
    assert_eq!(
        s.create_checkpoint().unwrap(),
        reference.create_checkpoint().unwrap()
    );
}

/// The ungated calls (`produce`, `consume`) and the gated ones with an always-admitting gate
/// give the same COMMs, contents, roots and logs.
#[test]
fn ungated_calls_equal_calls_with_an_admitting_gate() {
    let plain = space(8);
    let gated = space(8);
    let mut rng = Rng(0xC0FFEE);
    for round in 0..10 {
        for _ in 0..100 {
            let c = rng.below(6) as u32;
            let d = rng.below(6) as u32;
            let v = rng.below(3) as u32;
            let persist = rng.below(8) == 0;
            let (a, b) = match rng.below(3) {
                0 => (
                    format!("{:?}", plain.produce(c, v, persist)),
                    format!("{:?}", gated.produce_admitted(c, v, persist, 0, |_| Ok(()))),
                ),
                1 => (
                    format!("{:?}", plain.consume([c], [v], 1, persist, &[])),
                    format!(
                        "{:?}",
                        gated.consume_admitted([c], [v], 1, persist, &[], |_| Ok(()))
                    ),
                ),
                _ => (
                    format!("{:?}", plain.consume([c, d], [v, v], 2, false, &[1])),
                    format!(
                        "{:?}",
                        gated.consume_admitted([c, d], [v, v], 2, false, &[1], |_| Ok(()))
                    ),
                ),
            };
            assert_eq!(a, b, "round {round}");
        }
        assert_eq!(contents(&plain), contents(&gated));
        assert_eq!(
            plain.create_checkpoint().unwrap(),
            gated.create_checkpoint().unwrap()
        );
    }
}

// A recorded root has everything below it in the store, also when the state behind it came
// from elsewhere: another space's soft checkpoint, or a store switched in after checkpoints.

/// A soft checkpoint of a space whose state is settled in that space's own (memory) history
/// only: data on a Bag and a Queue channel, and a join group waiting.
fn settled_elsewhere(shards: usize) -> SoftCheckpoint<u32, u32, u32, u32> {
    let a = space(shards);
    a.produce(1, 10, false).unwrap();
    a.produce(1, 11, true).unwrap();
    a.produce(100, 12, false).unwrap();
    a.consume([3, 4], [7, 8], 9, false, &[]).unwrap();
    a.consume([5], [7], 6, true, &[]).unwrap();
    a.create_checkpoint().unwrap();
    a.create_soft_checkpoint()
}

/// Resets a space with an empty snapshot cache to every root `store` lists (so each is loaded
/// from the store), and checks each loads to the state its root names.
fn assert_every_root_loads(store: Arc<dyn HistoryStore>) {
    let fresh = space(4).with_history(store.clone());
    for root in store.roots().unwrap() {
        fresh
            .reset(&root)
            .unwrap_or_else(|e| panic!("root {}: {e}", hex(&root)));
        assert_eq!(fresh.full_state_root(), root);
    }
}

#[test]
fn cross_space_revert_then_disk_reset_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.redb");
    let cp = settled_elsewhere(4);
    let (root, want) = {
        let b = space(4).with_history(Arc::new(RedbHistory::open(&path).unwrap()));
        b.revert_to_soft_checkpoint(&cp).unwrap();
        b.produce(2, 20, false).unwrap();
        let root = b.create_checkpoint().unwrap().root;
        assert_eq!(root, b.full_state_root());
        (root, contents(&b))
    };
    let store: Arc<dyn HistoryStore> = Arc::new(RedbHistory::open(&path).unwrap());
    let c = space(4).with_history(store.clone());
    c.reset(&root)
        .expect("reset to a root recorded in this on-disk history");
    assert_eq!(contents(&c), want);
    assert_eq!(c.data(&1).len(), 2);
    assert_eq!(c.data(&2).len(), 1);
    assert_eq!(c.continuations(&[3, 4]).len(), 1);
    assert_eq!(c.joins(&4).len(), 1);
    drop(c);
    assert_every_root_loads(store);
}

/// A space refuses another space's soft checkpoint whose stores have other kinds than its own
/// configuration gives them, and nothing changes: reverting would leave a Cell store under Bag
/// rules (it took a second datum), and the next hard checkpoint recorded a root that neither a
/// Cell- nor a Bag-configured space could reset to (found by review). Every mismatched store
/// is counted, data and continuations apart; a space of the same configuration (another
/// shard count too) is still reverted to.
#[test]
fn a_revert_to_another_spaces_checkpoint_of_other_kinds_is_refused() {
    // Channel 104 is a Cell in `config()`, channel 100 a Queue; here both are Bags, and the
    // continuation stores are Sets.
    let other = |cont: ContKind| {
        let a: S = Space::new(ExactMatch, SpaceConfig::new().cont_kind(cont));
        a.produce(104, 5, false).unwrap();
        a.produce(100, 6, false).unwrap();
        a.produce(7, 7, false).unwrap();
        a.consume([3, 4], [7, 8], 9, false, &[]).unwrap();
        a.create_soft_checkpoint()
    };
    let store = Arc::new(MemoryHistory::new());
    let b = space(4).with_history(store.clone());
    b.produce(104, 1, false).unwrap();
    b.consume([5], [7], 6, false, &[]).unwrap();
    let root = b.full_state_root();
    let want = contents(&b);
    for (cont, continuations) in [(ContKind::Bag, 0), (ContKind::Set, 1)] {
        assert_eq!(
            b.revert_to_soft_checkpoint(&other(cont)),
            Err(RevertError::KindMismatch {
                data: 2,
                continuations
            })
        );
        assert_eq!(b.full_state_root(), root);
        assert_eq!(contents(&b), want);
    }
    assert!(
        b.produce(104, 2, false).is_err(),
        "channel 104 is still a full Cell"
    );
    // Its log is the one it had: the refused reverts left no trace.
    let cp = b.create_checkpoint().unwrap();
    assert_eq!(cp.log.len(), 2, "a produce and a consume that waits");
    assert_every_root_loads(store);
    // The same configuration from another space, on another shard count: reverted to.
    let same = settled_elsewhere(3);
    b.revert_to_soft_checkpoint(&same).unwrap();
    assert_eq!(b.data(&1).len(), 2);
}

/// A [`ChargingSpace`] checks the kinds before it charges: a refused revert costs nothing.
#[test]
fn a_charged_revert_refused_for_its_kinds_charges_nothing() {
    use rhospace_phlogiston::{CostTable, PhlogistonMeter};
    use rhospace_spaces::ChargingSpace;
    let a: S = Space::new(ExactMatch, SpaceConfig::new());
    a.produce(104, 5, false).unwrap();
    let meter = Arc::new(PhlogistonMeter::new(1_000_000));
    let s = ChargingSpace::new(space(4), meter.clone(), CostTable::default());
    let before = meter.consumed();
    assert_eq!(
        s.revert_to_soft_checkpoint(&a.create_soft_checkpoint()),
        Err(RevertError::KindMismatch {
            data: 1,
            continuations: 0
        })
    );
    assert_eq!(meter.consumed(), before);
    assert!(s.space().is_empty());
}

#[test]
fn cross_space_revert_then_reset_after_snapshot_eviction() {
    // From another shard count too: the reverted state is rerouted, its entries still clean.
    for from_shards in [8, 3] {
        let cp = settled_elsewhere(from_shards);
        let store: Arc<dyn HistoryStore> = Arc::new(MemoryHistory::new());
        let b = space(8).with_history(store.clone());
        b.revert_to_soft_checkpoint(&cp).unwrap();
        b.produce(2, 20, false).unwrap();
        let root = b.create_checkpoint().unwrap().root;
        let want = contents(&b);
        for i in 0..(SNAPSHOT_CACHE as u32 + 2) {
            b.produce(50 + i, i, false).unwrap();
            b.create_checkpoint().unwrap();
        }
        b.reset(&root).expect("reset to a root this space recorded");
        assert_eq!(contents(&b), want, "from {from_shards} shards");
        assert_every_root_loads(store);
    }
}

#[test]
fn a_store_switched_in_after_checkpoints_gets_everything_below_the_next_root() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.redb");
    let s = space(4);
    let mut rng = Rng(77);
    for _ in 0..60 {
        step(&s, &mut rng);
    }
    let zeroth = s.create_checkpoint().unwrap().root; // in the default memory history only
    let want_zeroth = contents(&s);
    s.consume([3, 4], [7, 8], 9, false, &[]).unwrap();
    let first = s.create_checkpoint().unwrap().root;
    let want_first = contents(&s);
    let s = s.with_history(Arc::new(RedbHistory::open(&path).unwrap()));
    // Nothing changed since, yet the new store lacks the whole state: all of it is committed.
    assert_eq!(s.create_checkpoint().unwrap().root, first);
    s.produce(2, 20, false).unwrap();
    let second = s.create_checkpoint().unwrap().root;
    let want_second = contents(&s);
    // A root of the old store, reset to from memory, then recorded in the new one.
    s.reset(&zeroth).unwrap();
    assert_eq!(s.create_checkpoint().unwrap().root, zeroth);
    drop(s);
    let store: Arc<dyn HistoryStore> = Arc::new(RedbHistory::open(&path).unwrap());
    let c = space(4).with_history(store.clone());
    c.reset(&first).unwrap();
    assert_eq!(contents(&c), want_first);
    assert_eq!(c.continuations(&[3, 4]).len(), 1);
    c.reset(&second).unwrap();
    assert_eq!(contents(&c), want_second);
    c.reset(&zeroth).unwrap();
    assert_eq!(contents(&c), want_zeroth);
    drop(c);
    assert_eq!(store.roots().unwrap(), vec![first, second, zeroth]);
    assert_every_root_loads(store);
}

/// A store that counts reads, look-ups and blobs committed.
#[derive(Default)]
struct Counting {
    inner: MemoryHistory,
    gets: AtomicUsize,
    lookups: AtomicUsize,
    committed: AtomicUsize,
}

impl HistoryStore for Counting {
    fn get(&self, hash: &Digest) -> Result<Option<Vec<u8>>, HistoryError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(hash)
    }
    fn contains(&self, hash: &Digest) -> Result<bool, HistoryError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.inner.contains(hash)
    }
    fn commit(&self, blobs: &[(Digest, Vec<u8>)], root: Digest) -> Result<usize, HistoryError> {
        let written = self.inner.commit(blobs, root)?;
        self.committed.fetch_add(written, Ordering::SeqCst);
        Ok(written)
    }
    fn has_root(&self, root: &Digest) -> Result<bool, HistoryError> {
        self.inner.has_root(root)
    }
    fn roots(&self) -> Result<Vec<Digest>, HistoryError> {
        self.inner.roots()
    }
}

/// A root recorded again counts as recent from then on: the cache of recorded states keeps the
/// last [`SNAPSHOT_CACHE`] roots by when they were last recorded, so a reset to the second most
/// recent reads nothing from the store (a root recorded again once kept its first place, and
/// was evicted while still recent).
#[test]
fn a_root_recorded_again_stays_among_the_recent() {
    let store = Arc::new(Counting::default());
    let s = space(4).with_history(store.clone());
    s.produce(1, 1, false).unwrap();
    let r = s.create_checkpoint().unwrap().root;
    let mut after_r = Vec::new();
    for i in 0..(SNAPSHOT_CACHE as u32 - 1) {
        s.produce(100 + i, 0, false).unwrap();
        after_r.push(s.create_checkpoint().unwrap().root);
    }
    s.reset(&r).unwrap();
    s.produce(2, 2, false).unwrap();
    s.consume([2], [2], 0, false, &[]).unwrap();
    assert_eq!(s.create_checkpoint().unwrap().root, r, "`r` recorded again");
    s.produce(3, 3, false).unwrap();
    let last = s.create_checkpoint().unwrap().root;
    let before = store.gets.load(Ordering::SeqCst);
    s.reset(&r).unwrap();
    s.reset(&last).unwrap();
    assert_eq!(
        store.gets.load(Ordering::SeqCst),
        before,
        "a reset read the store"
    );
    // The least recently recorded root has left the cache: its reset reads the store.
    s.reset(&after_r[0]).unwrap();
    assert!(store.gets.load(Ordering::SeqCst) > before);
}

/// Bringing foreign leaves into the store costs work once; a checkpoint after it, or one with
/// nothing foreign, costs what changed: a few look-ups and blobs, not one per channel.
#[test]
fn only_a_checkpoint_whose_store_lacks_leaves_pays_for_them() {
    const N: u32 = 2000;
    let a = space(4);
    for c in 0..N {
        a.produce(1000 + c, c, false).unwrap();
    }
    a.consume([3, 4], [7, 8], 9, false, &[]).unwrap();
    a.create_checkpoint().unwrap();
    let cp = a.create_soft_checkpoint();

    let store = Arc::new(Counting::default());
    let b = space(4).with_history(store.clone());
    let take = |s: &S| {
        store.lookups.store(0, Ordering::SeqCst);
        store.committed.store(0, Ordering::SeqCst);
        let root = s.create_checkpoint().unwrap().root;
        let counts = (
            store.lookups.load(Ordering::SeqCst),
            store.committed.load(Ordering::SeqCst),
        );
        (root, counts)
    };
    b.produce(1, 1, false).unwrap();
    let (_, (lookups, committed)) = take(&b);
    assert!(lookups < 50 && committed < 10, "{lookups} {committed}");
    b.revert_to_soft_checkpoint(&cp).unwrap();
    b.produce(1, 1, false).unwrap();
    let (root, (_, committed)) = take(&b);
    // every foreign leaf's node and blob, and the branches above
    assert!(committed > 2 * N as usize, "{committed}");
    b.produce(2, 2, false).unwrap();
    let (_, (lookups, committed)) = take(&b);
    assert!(lookups < 100 && committed < 10, "{lookups} {committed}");
    let store: Arc<dyn HistoryStore> = store;
    let c = space(4).with_history(store);
    c.reset(&root).unwrap();
    assert_eq!(c.data(&(1000 + N - 1)).len(), 1);
    assert_eq!(c.continuations(&[3, 4]).len(), 1);
}

/// A store that records `map`'s root over blobs already in `store`: what a hostile or corrupt
/// history could hold, every node hashing to its id.
fn record_map(store: &MemoryHistory, map: &rhospace_spaces::merkle::MerkleMap) -> Digest {
    let missing = map
        .missing_nodes(|h| store.contains(h))
        .expect("memory store");
    store.commit(&missing.nodes, map.root()).unwrap();
    map.root()
}

fn encoded<T: rhospace_spaces::Encode + ?Sized>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    v.encode(&mut out);
    out
}

#[test]
fn a_leaf_under_another_channels_key_is_refused_and_changes_nothing() {
    use rhospace_spaces::merkle::{trie_key, KeyDomain, MerkleMap};
    let store = Arc::new(MemoryHistory::new());
    let a = space(4).with_history(store.clone());
    a.produce(5, 1, false).unwrap();
    let honest = a.create_checkpoint().unwrap().root;
    let trie = MerkleMap::load(&honest, |h| store.get(h)).unwrap();
    let (_, value) = trie.iter().next().map(|(k, v)| (*k, *v)).unwrap();
    // Channel 5's data blob, filed under channel 6's key (and twice: under 7's too).
    let mut forged = MerkleMap::new();
    forged.insert(trie_key(KeyDomain::Data, &encoded(&6u32)), value);
    let moved = record_map(&store, &forged);
    forged.insert(trie_key(KeyDomain::Data, &encoded(&7u32)), value);
    let doubled = record_map(&store, &forged);

    let b = space(4).with_history(store.clone());
    b.produce(2, 2, false).unwrap();
    let before = contents(&b);
    for root in [moved, doubled] {
        assert!(
            matches!(b.reset(&root), Err(CheckpointError::Corrupt { .. })),
            "root {}",
            hex(&root)
        );
        assert_eq!(contents(&b), before);
        assert_eq!(b.create_checkpoint().unwrap().root, b.full_state_root());
    }
}

#[test]
fn an_empty_data_leaf_is_refused_and_changes_nothing() {
    use rhospace_spaces::merkle::{hash_multiset, hash_ordered, trie_key, KeyDomain, MerkleMap};
    let store = Arc::new(MemoryHistory::new());
    let head = encoded(&5u32);
    let bag = 0u8;
    let contents_hash = hash_multiset(std::iter::empty::<&[u8]>());
    let value = hash_ordered([&b"rhospace/data"[..], &head, &[bag], &contents_hash]);
    let mut blob = vec![0u8]; // data
    blob.extend_from_slice(&head);
    blob.push(bag);
    blob.push(0); // no items
    store.commit(&[(value, blob)], value).unwrap();
    let mut forged = MerkleMap::new();
    forged.insert(trie_key(KeyDomain::Data, &head), value);
    let root = record_map(&store, &forged);

    let b = space(4).with_history(store.clone());
    b.produce(2, 2, false).unwrap();
    let before = contents(&b);
    assert!(matches!(
        b.reset(&root),
        Err(CheckpointError::Corrupt { .. })
    ));
    assert_eq!(contents(&b), before);
    assert_eq!(b.create_checkpoint().unwrap().root, b.full_state_root());
}

/// A leaf as a checkpoint writes one: blob tag `blob` (0 data, 1 continuations), value name
/// `name`, head (the encoded channel or channel list), kind tag `tag` and item encodings
/// `items` (multiset or ordered contents hash): its value and blob.
fn forged_leaf(
    blob: u8,
    name: &[u8],
    head: &[u8],
    tag: u8,
    multiset: bool,
    items: &[Vec<u8>],
) -> (Digest, Vec<u8>) {
    use rhospace_spaces::encode_varint;
    use rhospace_spaces::merkle::{hash_multiset, hash_ordered};
    let contents = if multiset {
        hash_multiset(items)
    } else {
        hash_ordered(items)
    };
    let value = hash_ordered([name, head, &[tag], &contents]);
    let mut bytes = vec![blob];
    bytes.extend_from_slice(head);
    bytes.push(tag);
    encode_varint(items.len() as u64, &mut bytes);
    for i in items {
        encode_varint(i.len() as u64, &mut bytes);
        bytes.extend_from_slice(i);
    }
    (value, bytes)
}

/// A data leaf for `channel` of kind `tag` holding `items` (value, persist, priority), as a
/// checkpoint would write one (multiset or ordered contents hash): its value and blob.
fn forged_data_leaf(
    channel: u32,
    tag: u8,
    multiset: bool,
    items: &[(u32, bool, i64)],
) -> (Digest, Vec<u8>) {
    let items: Vec<Vec<u8>> = items
        .iter()
        .map(|(v, p, pr)| [encoded(v), encoded(p), encoded(pr)].concat())
        .collect();
    forged_leaf(
        0,
        b"rhospace/data",
        &encoded(&channel),
        tag,
        multiset,
        &items,
    )
}

/// Records a root whose only leaf is `(value, blob)`, under trie key `key`.
fn forged_root_at(store: &MemoryHistory, key: Digest, (value, blob): (Digest, Vec<u8>)) -> Digest {
    use rhospace_spaces::merkle::MerkleMap;
    store.commit(&[(value, blob)], value).unwrap();
    let mut map = MerkleMap::new();
    map.insert(key, value);
    record_map(store, &map)
}

/// Records a root whose only leaf is `channel`'s data leaf `(value, blob)`.
fn forged_root(store: &MemoryHistory, channel: u32, leaf: (Digest, Vec<u8>)) -> Digest {
    use rhospace_spaces::merkle::{trie_key, KeyDomain};
    forged_root_at(store, trie_key(KeyDomain::Data, &encoded(&channel)), leaf)
}

#[test]
fn a_set_with_duplicates_or_a_cell_with_two_data_is_refused_and_changes_nothing() {
    const SET: u8 = 3;
    const CELL: u8 = 4;
    let store = Arc::new(MemoryHistory::new());
    let roots = [
        forged_root(
            &store,
            102,
            forged_data_leaf(102, SET, true, &[(7, false, 0); 2]),
        ),
        forged_root(
            &store,
            102,
            forged_data_leaf(102, SET, true, &[(7, false, 0), (7, true, 0)]),
        ),
        forged_root(
            &store,
            104,
            forged_data_leaf(104, CELL, false, &[(1, false, 0), (2, false, 0)]),
        ),
    ];
    let b = space(4).with_history(store.clone());
    b.produce(2, 2, false).unwrap();
    let before = contents(&b);
    for root in roots {
        assert!(
            matches!(b.reset(&root), Err(CheckpointError::Corrupt { .. })),
            "root {}: {:?} {:?}",
            hex(&root),
            b.data(&102),
            b.data(&104)
        );
        assert_eq!(contents(&b), before);
    }
}

/// A Bag leaf's blob lists its items in canonical order (sorted by encoding), so every space
/// that resets to a root holds the same order and makes the same choices. The multiset hash
/// ignores order, so a blob in another order hashes to the same leaf: it must be refused.
#[test]
fn a_bag_leaf_out_of_canonical_order_is_refused_and_changes_nothing() {
    const BAG: u8 = 0;
    let honest = Arc::new(MemoryHistory::new());
    let a = space(4).with_history(honest.clone());
    a.produce(1, 7, true).unwrap();
    a.produce(1, 7, false).unwrap();
    let root = a.create_checkpoint().unwrap().root;
    let canonical = forged_data_leaf(1, BAG, true, &[(7, false, 0), (7, true, 0)]);
    assert_eq!(honest.get(&canonical.0).unwrap(), Some(canonical.1.clone()));

    let forged = Arc::new(MemoryHistory::new());
    let reordered = forged_data_leaf(1, BAG, true, &[(7, true, 0), (7, false, 0)]);
    assert_eq!(reordered.0, canonical.0, "the multiset hash ignores order");
    assert_eq!(forged_root(&forged, 1, reordered), root);

    let b = space(4).with_history(forged.clone());
    b.produce(2, 2, false).unwrap();
    let before = contents(&b);
    assert!(
        matches!(b.reset(&root), Err(CheckpointError::Corrupt { .. })),
        "{:?}",
        b.data(&1)
    );
    assert_eq!(contents(&b), before);
}

/// Only a PriorityQueue stores a priority (a produce stores 0 on every other kind): a leaf
/// whose item carries one on a Bag is refused; the same item on a PriorityQueue loads.
#[test]
fn a_priority_on_a_kind_without_priorities_is_refused_and_changes_nothing() {
    const BAG: u8 = 0;
    const PRIORITY_QUEUE: u8 = 5;
    let store = Arc::new(MemoryHistory::new());
    let forged = forged_root(&store, 5, forged_data_leaf(5, BAG, true, &[(7, false, 3)]));
    let honest = forged_root(
        &store,
        103,
        forged_data_leaf(103, PRIORITY_QUEUE, false, &[(7, false, 3)]),
    );
    let b = space(4).with_history(store.clone());
    b.produce(2, 2, false).unwrap();
    let before = contents(&b);
    assert!(
        matches!(b.reset(&forged), Err(CheckpointError::Corrupt { .. })),
        "{:?}",
        b.data(&5)
    );
    assert_eq!(contents(&b), before);
    b.reset(&honest).unwrap();
    assert_eq!(b.data(&103)[0].priority, 3);
}

/// A PriorityQueue leaf lists its items as the queue hands them out: highest priority first,
/// FIFO within a level. Its contents hash is ordered, so a blob listing a lower priority
/// first hashes to a leaf of its own; the queue would reorder it on load, leaving a state
/// that does not hash to the root it was reset to. It must be refused.
#[test]
fn a_priority_queue_leaf_out_of_priority_order_is_refused_and_changes_nothing() {
    const PRIORITY_QUEUE: u8 = 5;
    let store = Arc::new(MemoryHistory::new());
    let forged = forged_root(
        &store,
        103,
        forged_data_leaf(103, PRIORITY_QUEUE, false, &[(1, false, 0), (2, false, 3)]),
    );
    let honest = forged_root(
        &store,
        103,
        forged_data_leaf(103, PRIORITY_QUEUE, false, &[(2, false, 3), (1, false, 0)]),
    );
    let b = space(4).with_history(store.clone());
    b.produce(2, 2, false).unwrap();
    let before = contents(&b);
    let got = b.reset(&forged);
    assert!(
        matches!(got, Err(CheckpointError::Corrupt { .. })),
        "{got:?}: {:?}, rehashed {} for root {}",
        b.data(&103),
        hex(&b.full_state_root()),
        hex(&forged)
    );
    assert_eq!(contents(&b), before);
    b.reset(&honest).unwrap();
    assert_eq!(b.full_state_root(), honest);
}

/// One waiting continuation of a forged leaf: patterns, continuation, persist, peeks.
type ForgedCont<'a> = (&'a [u32], u32, bool, &'a [usize]);

/// A continuation leaf for the join `channels` of kind `tag` holding `items`, as a checkpoint
/// would write one: its value and blob.
fn forged_cont_leaf(
    channels: &[u32],
    tag: u8,
    multiset: bool,
    items: &[ForgedCont<'_>],
) -> (Digest, Vec<u8>) {
    use rhospace_spaces::encode_varint;
    let items: Vec<Vec<u8>> = items
        .iter()
        .map(|(patterns, k, persist, peeks)| {
            let mut item = [encoded(*patterns), encoded(k), encoded(persist)].concat();
            encode_varint(peeks.len() as u64, &mut item);
            for &p in *peeks {
                encode_varint(p as u64, &mut item);
            }
            item
        })
        .collect();
    let head = encoded(channels);
    forged_leaf(1, b"rhospace/continuations", &head, tag, multiset, &items)
}

/// Records a root whose only leaf is the continuation leaf `(value, blob)` of `channels`.
fn forged_cont_root(store: &MemoryHistory, channels: &[u32], leaf: (Digest, Vec<u8>)) -> Digest {
    use rhospace_spaces::merkle::{trie_key, KeyDomain};
    let key = trie_key(KeyDomain::Continuations, &encoded(channels));
    forged_root_at(store, key, leaf)
}

/// A consume's peeks are normalised (ascending, distinct, below the join's arity) and a Set
/// continuation store holds no two equal continuations: a leaf breaking either is refused,
/// while the same leaf with valid peeks loads.
#[test]
fn continuations_no_consume_can_leave_are_refused_and_change_nothing() {
    const BAG: u8 = 0;
    const SET: u8 = 3;
    let jk = [3u32, 4];
    let store = Arc::new(MemoryHistory::new());
    let leaf = |peeks: &[usize]| forged_cont_leaf(&jk, BAG, true, &[(&[1, 2], 9, false, peeks)]);
    let bad_peeks = [
        forged_cont_root(&store, &jk, leaf(&[2])),
        forged_cont_root(&store, &jk, leaf(&[1, 0])),
        forged_cont_root(&store, &jk, leaf(&[0, 0])),
    ];
    let good = forged_cont_root(&store, &jk, leaf(&[0, 1]));
    let b = space(4).with_history(store.clone());
    b.produce(2, 2, false).unwrap();
    let before = contents(&b);
    for root in bad_peeks {
        assert!(
            matches!(b.reset(&root), Err(CheckpointError::Corrupt { .. })),
            "root {}: {:?}",
            hex(&root),
            b.continuations(&jk)
        );
        assert_eq!(contents(&b), before);
    }
    b.reset(&good).unwrap();
    assert_eq!(b.continuations(&jk)[0].peeks[..], [0, 1]);

    let sets: S =
        Space::new(ExactMatch, config().cont_kind(ContKind::Set)).with_history(store.clone());
    let twice: ForgedCont<'_> = (&[1, 2], 9, false, &[]);
    let duplicate = forged_cont_root(&store, &jk, forged_cont_leaf(&jk, SET, true, &[twice; 2]));
    sets.produce(2, 2, false).unwrap();
    let before = contents(&sets);
    assert!(
        matches!(sets.reset(&duplicate), Err(CheckpointError::Corrupt { .. })),
        "{:?}",
        sets.continuations(&jk)
    );
    assert_eq!(contents(&sets), before);
}

/// The same check on a Set store large enough to keep its duplicate index (16 and more
/// waiting): a leaf of 24 distinct continuations loads, and one that holds one of them twice
/// (in valid canonical order, hashed right) is refused and changes nothing.
#[test]
fn a_large_set_leaf_holding_a_continuation_twice_is_refused() {
    const SET: u8 = 3;
    let jk = [3u32, 4];
    let patterns: Vec<[u32; 2]> = (0..24).map(|i| [i, i + 1]).collect();
    let items = |extra: Option<usize>| {
        let mut items: Vec<ForgedCont<'_>> = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| (&p[..], i as u32, false, &[][..]))
            .collect();
        items.extend(extra.map(|i| items[i]));
        // Canonical order: by encoding (the duplicate lands beside its twin).
        items
            .sort_by_key(|(p, k, persist, _)| [encoded(*p), encoded(k), encoded(persist)].concat());
        items
    };
    let store = Arc::new(MemoryHistory::new());
    let distinct = forged_cont_root(&store, &jk, forged_cont_leaf(&jk, SET, true, &items(None)));
    let twice = forged_cont_root(
        &store,
        &jk,
        forged_cont_leaf(&jk, SET, true, &items(Some(17))),
    );
    let sets: S =
        Space::new(ExactMatch, config().cont_kind(ContKind::Set)).with_history(store.clone());
    sets.produce(2, 2, false).unwrap();
    let before = contents(&sets);
    assert!(
        matches!(sets.reset(&twice), Err(CheckpointError::Corrupt { .. })),
        "{:?}",
        sets.continuations(&jk).len()
    );
    assert_eq!(contents(&sets), before);
    sets.reset(&distinct).unwrap();
    assert_eq!(sets.continuations(&jk).len(), 24);
    assert_eq!(sets.full_state_root(), distinct);
    // The loaded store refuses a consume equal to one it holds, and stores a new one.
    let k17 = sets.consume(&jk[..], &[17, 18][..], 17, false, &[]);
    assert!(matches!(k17, Ok(None)));
    assert_eq!(sets.continuations(&jk).len(), 24);
    assert!(matches!(
        sets.consume(&jk[..], &[17, 18][..], 99, false, &[]),
        Ok(None)
    ));
    assert_eq!(sets.continuations(&jk).len(), 25);
}

/// A consume's arguments: channels, patterns, continuation, persist, peeks.
type ConsumeArgs = (Vec<u32>, Vec<u32>, u32, bool, Vec<usize>);

/// One call of [`wide_call`]'s alphabet, kept so that it can be made on several spaces.
#[derive(Clone, Debug)]
enum Call {
    Produce(u32, u32, bool, i64),
    Consume(Vec<u32>, Vec<u32>, u32, bool, Vec<usize>),
    Install(Vec<u32>, Vec<u32>, u32),
    ProduceBatch(Vec<(u32, u32, bool)>),
    ConsumeBatch(Vec<ConsumeArgs>),
}

/// A random call of every kind that changes the state: produces (persistent, with
/// priorities), consumes of one to three channels (repeats, peeks, persistent), installs, and
/// batches of both, over every data kind of [`config`] and the installed channels 8 and 9.
fn wide_call(rng: &mut Rng) -> Call {
    const CH: [u32; 15] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 100, 101, 102, 103, 104];
    let ch = |rng: &mut Rng| CH[rng.below(CH.len() as u64) as usize];
    let consume = |rng: &mut Rng| {
        let n = 1 + rng.below(3) as usize;
        let chs: Vec<u32> = (0..n).map(|_| ch(rng)).collect();
        let pats: Vec<u32> = (0..n).map(|_| rng.below(4) as u32).collect();
        let peeks: Vec<usize> = (0..n).filter(|_| rng.below(4) == 0).collect();
        (chs, pats, rng.below(6) as u32, rng.below(6) == 0, peeks)
    };
    match rng.below(20) {
        0..=8 => Call::Produce(
            ch(rng),
            rng.below(4) as u32,
            rng.below(8) == 0,
            rng.below(3) as i64,
        ),
        9..=15 => {
            let (chs, pats, k, persist, peeks) = consume(rng);
            Call::Consume(chs, pats, k, persist, peeks)
        }
        16 => {
            let (chs, pats, k, _, _) = consume(rng);
            Call::Install(chs, pats, 500 + k)
        }
        17 | 18 => Call::ProduceBatch(
            (0..1 + rng.below(6))
                .map(|_| (ch(rng), rng.below(4) as u32, rng.below(8) == 0))
                .collect(),
        ),
        _ => Call::ConsumeBatch((0..1 + rng.below(4)).map(|_| consume(rng)).collect()),
    }
}

/// Makes `call` on `s`; what it returned, as text.
fn make_call(s: &S, call: &Call) -> String {
    match call.clone() {
        Call::Produce(c, d, persist, prio) => {
            format!("{:?}", s.produce_with_priority(c, d, persist, prio))
        }
        Call::Consume(chs, pats, k, persist, peeks) => {
            format!("{:?}", s.consume(chs, pats, k, persist, &peeks))
        }
        Call::Install(chs, pats, k) => format!("{:?}", s.install(chs, pats, k)),
        Call::ProduceBatch(items) => format!("{:?}", s.produce_batch(items)),
        Call::ConsumeBatch(reqs) => format!(
            "{:?}",
            s.consume_batch(reqs.into_iter().map(|(chs, pats, k, persist, peeks)| {
                let mut r = rhospace_spaces::ConsumeRequest::new(chs, pats, k);
                r.persist = persist;
                r.peeks = peeks.into_iter().collect();
                r
            }))
        ),
    }
}

/// SPEC §6 over every call that changes the state (installs, peeks, persistent data and
/// continuations, batches, every data kind under every continuation kind), soft reverts,
/// `clear` and `reset`: each hard checkpoint's incremental root equals the root of the contents
/// hashed from scratch, and a second space (another shard count, the same installs) that loads
/// each root from the history store holds the same contents and, making the same calls from
/// there, gets the same results and roots as the space that recorded it.
#[test]
fn every_call_keeps_the_incremental_root_exact_and_a_loaded_state_goes_on_alike() {
    for ck in [
        ContKind::Bag,
        ContKind::Queue,
        ContKind::Stack,
        ContKind::Set,
    ] {
        for seed in 1..=3u64 {
            let store = Arc::new(MemoryHistory::new());
            let make = |shards| {
                Space::with_shards(ExactMatch, config().cont_kind(ck), shards)
                    .with_history(store.clone())
            };
            let (s, t) = (make(8), make(32));
            let both = |call: &Call| {
                let (a, b) = (make_call(&s, call), make_call(&t, call));
                assert_eq!(a, b, "{ck:?} seed {seed}: {call:?}");
            };
            both(&Call::Install(vec![8], vec![1], 700));
            both(&Call::Install(vec![9, 3], vec![2, 2], 701));
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ck as u64);
            let mut soft = None;
            let mut recorded = vec![EMPTY_ROOT];
            for round in 0..40 {
                let what = format!("{ck:?} seed {seed} round {round}");
                for _ in 0..rng.below(30) {
                    both(&wide_call(&mut rng));
                }
                match rng.below(10) {
                    0 => soft = Some((s.create_soft_checkpoint(), t.create_soft_checkpoint())),
                    1 => {
                        if let Some((a, b)) = &soft {
                            s.revert_to_soft_checkpoint(a).unwrap();
                            t.revert_to_soft_checkpoint(b).unwrap();
                        }
                    }
                    2 => {
                        s.clear();
                        t.clear();
                    }
                    3 => {
                        let root = recorded[rng.below(recorded.len() as u64) as usize];
                        s.reset(&root).unwrap();
                        t.reset(&root).unwrap();
                    }
                    _ => {}
                }
                assert_eq!(contents(&s), contents(&t), "{what}");
                let full = s.full_state_root();
                assert_eq!(t.full_state_root(), full, "{what}");
                let root = s.create_checkpoint().unwrap().root;
                assert_eq!(hex(&root), hex(&full), "{what}: incremental root");
                recorded.push(root);
                // `t` never takes a hard checkpoint: it loads each root from the store.
                t.reset(&root).unwrap();
                assert_eq!(contents(&t), contents(&s), "{what}: loaded");
                assert_eq!(t.full_state_root(), root, "{what}: loaded root");
            }
        }
    }
}

/// SPEC §5 and §6 on a damaged history: with any one trie node or leaf blob below a recorded
/// root missing, cut short, with a byte changed, with a byte added, or with a huge length
/// spliced in, `reset` to that root is a typed error, never a panic or a huge allocation, and
/// leaves the space as it was: same contents, and the next checkpoint gives the root and the
/// event log of a twin that made the same calls without the failed reset.
#[test]
fn a_reset_from_a_damaged_store_is_an_error_and_changes_nothing() {
    use rhospace_spaces::merkle::MerkleMap;
    let store = Arc::new(MemoryHistory::new());
    let s = Space::with_shards(ExactMatch, config(), 8).with_history(store.clone());
    let mut rng = Rng(0xDA3A_6ED5);
    for _ in 0..300 {
        make_call(&s, &wide_call(&mut rng));
    }
    let root = s.create_checkpoint().unwrap().root;
    let all = MerkleMap::load(&root, |h| store.get(h))
        .unwrap()
        .missing_nodes(|_| Ok::<_, ()>(false))
        .unwrap();
    let mut targets: Vec<(Digest, Vec<u8>)> = all.nodes;
    for (_, value) in &all.leaves {
        targets.push((*value, store.get(value).unwrap().unwrap()));
    }
    assert!(all.leaves.len() > 10, "the state spans many leaves");
    let mut tried = 0;
    for (target, honest) in &targets {
        let len = honest.len() as u64;
        let mut damages = vec![None, Some(honest[..rng.below(len) as usize].to_vec())];
        let mut longer = honest.clone();
        longer.push(rng.below(256) as u8);
        damages.push(Some(longer));
        for _ in 0..3 {
            let mut changed = honest.clone();
            changed[rng.below(len) as usize] ^= 1 + rng.below(255) as u8;
            damages.push(Some(changed));
        }
        let mut huge = honest.clone();
        let at = rng.below(len) as usize;
        huge.splice(
            at..at,
            [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
        );
        damages.push(Some(huge));
        for bytes in damages {
            let damaged: Arc<dyn HistoryStore> = Arc::new(TestStore {
                inner: store.clone(),
                damage: Some((*target, bytes.clone())),
                ..TestStore::default()
            });
            let calls = |x: &S| {
                x.produce(2, 2, false).unwrap();
                x.consume([3, 100], [1, 1], 4, false, &[]).unwrap();
                x.produce(102, 3, false).unwrap();
            };
            let (b, twin) = (
                space(4).with_history(damaged.clone()),
                space(4).with_history(damaged),
            );
            calls(&b);
            calls(&twin);
            let before = contents(&b);
            let got = b.reset(&root);
            assert!(
                matches!(
                    got,
                    Err(CheckpointError::Corrupt { .. } | CheckpointError::KindMismatch { .. })
                ),
                "{} damaged to {bytes:?}: {got:?}",
                hex(target)
            );
            assert_eq!(contents(&b), before);
            assert_eq!(b.full_state_root(), twin.full_state_root());
            assert_eq!(
                b.create_checkpoint().unwrap(),
                twin.create_checkpoint().unwrap()
            );
            tried += 1;
        }
    }
    assert!(tried > 100);
}

/// A space of 4 shards over a fresh `TestStore`, its Queue (channel 100) holding a persistent
/// head 7 followed by `n` data: a channel whose re-encoding a checkpoint's store would see.
fn persistent_queue_head_behind(n: u32) -> (Arc<TestStore>, S) {
    let store = Arc::new(TestStore::default());
    let s = space(4).with_history(store.clone());
    s.produce(100, 7, true).unwrap();
    for i in 0..n {
        s.produce(100, 1000 + i, false).unwrap();
    }
    (store, s)
}

/// SPEC §6's incremental cost: a call that only reads a stored datum (a persistent one, or
/// one a consume peeks at), alone or in a join, or from a produce's side, changes nothing on
/// that datum's channel, so the next checkpoint does not re-encode the channel: it gives its
/// store a few bytes, not the channel's thousands, and the root stays where it was.
#[test]
fn reading_a_stored_datum_leaves_its_channel_out_of_the_next_checkpoint() {
    // A Queue and a Stack whose heads are persistent, each behind thousands of data.
    let (store, s) = persistent_queue_head_behind(2_000);
    for i in 0..2_000 {
        s.produce(101, 1000 + i, false).unwrap();
    }
    s.produce(101, 7, true).unwrap();
    s.produce(0, 8, false).unwrap();
    // A persistent join waiting on the Queue: a produce on 5 fires it, reading the head.
    assert!(s.consume([5, 100], [3, 7], 1, true, &[]).unwrap().is_none());
    let root = s.create_checkpoint().unwrap().root;
    let reads: [(&str, &dyn Fn()); 6] = [
        ("persistent head", &|| {
            assert!(s.consume([100], [7], 1, false, &[]).unwrap().is_some());
        }),
        ("peeked head", &|| {
            assert!(s.consume([101], [7], 1, false, &[0]).unwrap().is_some());
        }),
        ("persistent from a produce's side", &|| {
            assert!(s.produce(5, 3, false).unwrap().is_some());
        }),
        ("peeked in a join", &|| {
            s.produce(6, 3, false).unwrap();
            assert!(s
                .consume([101, 6], [7, 3], 1, false, &[0])
                .unwrap()
                .is_some());
        }),
        ("peeked beside a persistent", &|| {
            assert!(s
                .consume([100, 0], [7, 8], 1, false, &[1])
                .unwrap()
                .is_some());
        }),
        ("persistent consume reads both", &|| {
            let comm = s.consume([100, 101], [7, 7], 1, true, &[]).unwrap();
            assert!(comm.is_some_and(|c| c.reissue));
        }),
    ];
    for (what, read) in reads {
        read();
        store.offered.store(0, Ordering::SeqCst);
        let cp = s.create_checkpoint().unwrap();
        assert!(!cp.log.is_empty(), "{what}");
        assert_eq!(cp.root, root, "{what}: nothing changed");
        let offered = store.offered.load(Ordering::SeqCst);
        assert!(offered < 200, "{what}: {offered} bytes re-encoded");
    }
}

/// The channels a call names.
fn channels_of(call: &Call) -> Vec<u32> {
    match call {
        Call::Produce(c, ..) => vec![*c],
        Call::Consume(chs, ..) | Call::Install(chs, ..) => chs.clone(),
        Call::ProduceBatch(items) => items.iter().map(|i| i.0).collect(),
        Call::ConsumeBatch(reqs) => reqs.iter().flat_map(|r| r.0.clone()).collect(),
    }
}

/// SPEC §6: the root depends only on the contents, never on the calls that led there. After
/// random calls on one space (Bag, Set and Cell data, where SPEC §1's invariant holds; see the
/// crate's *Limits* for head-only kinds), a second space (another shard count) is given the
/// same contents by other calls: noise that leaves nothing, a hard checkpoint midway, data
/// and continuations in reverse order. Both roots agree, and so do the contents once each
/// checkpoint has put its Bags in canonical order. Each waiting continuation, consumed again
/// over the data, stays waiting (SPEC §1: no COMM is possible among stored items).
#[test]
fn the_same_contents_reached_by_other_calls_have_the_same_root() {
    for seed in 1..=6u64 {
        let s = space(8);
        let mut rng = Rng(seed.wrapping_mul(0xA076_1D64_78BD_642F));
        let mut made = 0;
        while made < 400 {
            let call = wide_call(&mut rng);
            let head_only = channels_of(&call)
                .iter()
                .any(|c| [100, 101, 103].contains(c));
            if !head_only && !matches!(call, Call::Install(..)) {
                make_call(&s, &call);
                made += 1;
            }
        }
        let u = space(2);
        for c in 0..8 {
            u.produce(c, 9, false).unwrap();
            assert!(u.consume([c], [9], 0, false, &[]).unwrap().is_some());
        }
        let mut groups: Vec<Arc<[u32]>> = Vec::new();
        for (i, c) in (0..10).chain(100..105).enumerate() {
            for d in s.data(&c).into_iter().rev() {
                let stored = u.produce_with_priority(c, d.value, d.persist, d.priority);
                assert!(stored.unwrap().is_none(), "seed {seed}: datum on {c}");
            }
            for jk in s.joins(&c) {
                if !groups.contains(&jk) {
                    groups.push(jk);
                }
            }
            if i == 7 {
                u.create_checkpoint().unwrap();
            }
        }
        let data: usize = (0..10).chain(100..105).map(|c| s.data(&c).len()).sum();
        assert!(
            data > 20 && groups.len() > 3,
            "seed {seed}: {data} data, {groups:?}"
        );
        groups.reverse();
        for jk in groups {
            for w in s.continuations(&jk).into_iter().rev() {
                let peeks: Vec<usize> = w.peeks.iter().copied().collect();
                let got = u.consume(&jk[..], &w.patterns[..], w.continuation, w.persist, &peeks);
                assert!(got.unwrap().is_none(), "seed {seed}: {jk:?} {w:?} fired");
            }
        }
        let (a, b) = (
            s.create_checkpoint().unwrap(),
            u.create_checkpoint().unwrap(),
        );
        assert_eq!(hex(&b.root), hex(&a.root), "seed {seed}");
        assert_eq!(contents(&u), contents(&s), "seed {seed}");
    }
}

/// SPEC §6's incremental cost: a join group that comes to wait on a channel, and leaves it
/// again, changes that channel's list of join groups, not its data, so the next checkpoint
/// does not re-encode the data: it gives its store the new continuation leaf and the trie path
/// above it, a few hundred bytes, not the channel's thousands.
#[test]
fn a_join_coming_and_going_leaves_its_channels_data_out_of_the_next_checkpoint() {
    let (store, s) = persistent_queue_head_behind(2_000);
    let root = s.create_checkpoint().unwrap().root;
    let offered = |what: &str| {
        let bytes = store.offered.swap(0, Ordering::SeqCst);
        assert!(bytes < 2000, "{what}: {bytes} bytes re-encoded");
    };
    store.offered.store(0, Ordering::SeqCst);
    // Channel 6 is empty: the join waits, listed on the Queue 100 too.
    assert!(s
        .consume([100, 6], [7, 1], 2, false, &[])
        .unwrap()
        .is_none());
    let waiting = s.create_checkpoint().unwrap().root;
    assert_ne!(waiting, root);
    assert_eq!(waiting, s.full_state_root());
    offered("a join comes");
    // It fires (reading the persistent head), and leaves both channels' join lists.
    assert!(s.produce(6, 1, false).unwrap().is_some());
    assert_eq!(s.create_checkpoint().unwrap().root, root);
    offered("the join goes");
    assert!(s.joins(&100).is_empty());
    // A channel emptied, dropped and made again for a join loses its data leaf.
    s.produce(5, 1, false).unwrap();
    let with_data = s.create_checkpoint().unwrap().root;
    assert!(s.consume([5], [1], 0, false, &[]).unwrap().is_some());
    assert!(s.consume([5, 6], [2, 2], 0, false, &[]).unwrap().is_none());
    let cp = s.create_checkpoint().unwrap();
    assert_ne!(cp.root, with_data);
    assert_eq!(cp.root, s.full_state_root());
}
