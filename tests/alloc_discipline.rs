//! Allocation discipline (issue 2): a COMM on the exact-matcher path allocates no more than the
//! returned COMM itself needs. Counted with a global allocator, not timed.
//!
//! The COMM of a consume owns its channel list and pattern list ([`CallList`]s: one entry
//! inline, more as one shared allocation each, made from the arrays the caller passes); its
//! per-position results live inline (`SmallVec`). So a one-channel consume's COMM needs no
//! allocation, and a join's needs its two lists. A produce that fires a stored continuation
//! shares the stored lists, so it needs no allocation at all.
//!
//! [`CallList`]: rhospace_spaces::CallList

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use rhospace_matchers::ExactMatch;
use rhospace_spaces::{Space, SpaceConfig};

struct Counting;

thread_local! {
    // Per thread, so tests running in parallel do not count each other's allocations.
    // Const-initialised: touching them never allocates.
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
    static ON: Cell<bool> = const { Cell::new(false) };
}

fn note_alloc() {
    if ON.with(Cell::get) {
        ALLOCS.with(|a| a.set(a.get() + 1));
    }
}

// SAFETY: forwards every call to `System` unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_alloc();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn count<T>(f: impl FnOnce() -> T) -> (T, usize) {
    ALLOCS.with(|a| a.set(0));
    ON.with(|on| on.set(true));
    let out = f();
    ON.with(|on| on.set(false));
    (out, ALLOCS.with(Cell::get))
}

type S = Space<u64, u64, u64, u64, ExactMatch>;

/// The counter sees allocations (so the zero counts below are measured, not a counter that
/// never counts), and only while counting, on this thread.
#[test]
fn the_counter_counts_each_allocation() {
    let (v, allocs) = count(|| std::hint::black_box(Box::new(7u64)));
    assert_eq!(allocs, 1);
    let (w, allocs) = count(|| {
        let mut w: Vec<u64> = Vec::with_capacity(1);
        w.extend([1, 2, 3]);
        std::hint::black_box(w)
    });
    assert_eq!(allocs, 2, "one allocation and one growth");
    drop((v, w));
    let (_, allocs) = count(|| std::hint::black_box(3u64 + 4));
    assert_eq!(allocs, 0);
}

#[test]
fn a_one_channel_consume_comm_allocates_nothing() {
    // The event log (on by default) records each call in a persistent list, which allocates a
    // chunk now and then; the operation itself is measured here (the log: the next test).
    let space: S = Space::new(ExactMatch, SpaceConfig::new()).with_event_log(false);
    // Enough data for the exact index, so the indexed path is what is measured.
    for i in 0..1_000u64 {
        space.produce(3, i, false).expect("produce");
    }
    // Warm: an exact consume the oldest datum (0) does not answer builds the index.
    space
        .consume([3u64], [500u64], 0, false, &[])
        .expect("consume");
    for i in 501..600u64 {
        let (comm, allocs) = count(|| space.consume([3u64], [i], 9, false, &[]));
        let comm = comm.expect("valid").expect("fires");
        assert_eq!(comm.matches[0].datum, i);
        assert_eq!(allocs, 0, "consume #{i} allocated {allocs} times");
    }
}

#[test]
fn a_join_comm_allocates_only_its_two_lists() {
    let space: S = Space::new(ExactMatch, SpaceConfig::new()).with_event_log(false);
    for i in 0..100u64 {
        space.produce(3, i, false).expect("produce");
        space.produce(4, i, false).expect("produce");
    }
    // Warm: the first join builds the channels' exact indexes.
    space
        .consume([3u64, 4], [0u64, 0], 0, false, &[])
        .expect("consume");
    for i in 1..100u64 {
        let (comm, allocs) = count(|| space.consume([3u64, 4], [i, i], 9, false, &[]));
        let comm = comm.expect("valid").expect("fires");
        assert_eq!(comm.matches[1].datum, i);
        assert!(
            allocs <= 2,
            "join #{i} allocated {allocs} times (the COMM needs 2)"
        );
    }
}

#[test]
fn a_logged_consume_adds_no_allocation_of_its_own() {
    // With the log on, a consume's call is written into the log as the encodings its hash
    // covers (into byte chunks that the log opens now and then), not cloned: a heap-backed
    // continuation costs the log no allocation, and nothing of the COMM's is kept alive.
    let space: Space<u64, u64, u64, String, ExactMatch> =
        Space::new(ExactMatch, SpaceConfig::new());
    for i in 0..1_000u64 {
        space.produce(3, i, false).expect("produce");
    }
    let continuations: Vec<String> = (0..200).map(|i| format!("k{i}")).collect();
    let (fired, allocs) = count(|| {
        continuations
            .into_iter()
            .zip(0u64..)
            .filter(|(k, i)| {
                let comm = space
                    .consume([3u64], [*i], k.clone(), false, &[])
                    .expect("valid");
                comm.is_some_and(|c| c.matches[0].datum == *i && c.continuation == *k)
            })
            .count()
    });
    assert_eq!(fired, 200);
    assert!(
        allocs >= 200,
        "the continuation clones were not counted: {allocs}"
    );
    // Per consume: the continuation's clone made here. The log's records (~100 bytes each)
    // fill a 16 KiB chunk every ~160 consumes.
    assert!(
        allocs <= 200 + 4,
        "200 logged consumes allocated {allocs} times"
    );
}

#[test]
fn produce_firing_a_stored_continuation_allocates_nothing() {
    let space: S = Space::new(ExactMatch, SpaceConfig::new()).with_event_log(false);
    // A persistent continuation, so the state is the same after every firing.
    space
        .consume([5u64], [42u64], 7, true, &[])
        .expect("consume");
    space.produce(5, 42, false).expect("warm up");
    for _ in 0..100 {
        let (comm, allocs) = count(|| space.produce(5, 42, false));
        let comm = comm.expect("valid").expect("fires");
        assert_eq!(comm.continuation, 7);
        assert_eq!(allocs, 0, "a produce COMM allocated {allocs} times");
    }
}
