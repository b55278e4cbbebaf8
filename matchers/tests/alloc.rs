//! Allocation discipline of the structural matcher, checked with a counting global allocator
//! (per thread, so parallel tests do not interfere).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use rhospace_matchers::{Match, Pattern, Rest, StructuralMatch, Term};

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to `System` unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs_during<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let before = ALLOCS.with(Cell::get);
    let r = f();
    (ALLOCS.with(Cell::get) - before, r)
}

fn broker_datum(topic: &str) -> Term {
    Term::record([
        ("topic", Term::str(topic)),
        ("id", Term::int(42)),
        ("body", Term::list([Term::str("a"), Term::str("b")])),
        ("ts", Term::int(1_700_000_000)),
    ])
}

#[test]
fn rejection_allocates_nothing() {
    let datum = broker_datum("orders.us.7");
    let patterns: Vec<Pattern> = (0..1000)
        .map(|i| {
            Pattern::open_record([
                ("topic", Pattern::lit(format!("orders.eu.{i}"))),
                ("id", Pattern::bind("id")),
                (
                    "body",
                    Pattern::list_rest([Pattern::bind("first")], Rest::bind("more")),
                ),
            ])
        })
        .collect();
    let (n, hits) = allocs_during(|| {
        patterns
            .iter()
            .filter(|p| StructuralMatch.get(p, &datum).is_some())
            .count()
    });
    assert_eq!(hits, 0);
    assert_eq!(n, 0, "rejecting 1,000 patterns allocated {n} times");

    // Rejections deeper in the pattern, after some binders, allocate nothing either.
    let late = Pattern::open_record([
        ("id", Pattern::bind("id")),
        ("topic", Pattern::bind("t")),
        ("ts", Pattern::lit(0)),
    ]);
    let (n, r) = allocs_during(|| StructuralMatch.get(&late, &datum));
    assert!(r.is_none());
    assert_eq!(n, 0);
}

#[test]
fn small_successful_match_allocates_nothing() {
    // Up to four bindings live inline; bound terms are Arc clones.
    let datum = broker_datum("orders.eu.1");
    let p = Pattern::open_record([
        ("topic", Pattern::lit("orders.eu.1")),
        ("id", Pattern::bind("id")),
        ("body", Pattern::bind("body")),
        ("ts", Pattern::bind("ts")),
    ]);
    let (n, b) = allocs_during(|| StructuralMatch.get(&p, &datum));
    let b = b.expect("matches");
    assert_eq!(b.len(), 3);
    assert_eq!(n, 0);
}

#[test]
fn dropping_flat_terms_allocates_only_their_own_frees() {
    let t = Term::list((0..100).map(Term::int));
    let (n, ()) = allocs_during(|| drop(t));
    assert_eq!(n, 0);
}
