//! Serial vs parallel matching (issue #6): the scan a join position makes over one channel's
//! candidates, for a non-indexed structural pattern (an open record whose literal `topic` only
//! the last datum has), at several candidate counts.
//!
//! Names: `parallel_matching/<variant>/<candidates>`, where `variant` is
//! - `baseline`: `data.iter().position(..)`, the naive serial scan;
//! - `serial`: [`first_match_from`] forced serial (threshold `usize::MAX`);
//! - `parallel`: [`first_match_from`] forced parallel (threshold 0), on rayon's global pool.
//!
//! The crossover between `serial` and `parallel` sets
//! [`PARALLEL_MIN_CANDIDATES`](rhospace_spaces::PARALLEL_MIN_CANDIDATES). Run with
//! `cargo bench --bench parallel_matching -- --warm-up-time 1 --measurement-time 3`. Data are
//! deterministic (no randomness needed); every result is checked after timing.
#![allow(missing_docs)] // criterion_group! generates undocumented items.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rhospace_matchers::{Match, Pattern, StructuralMatch, Term};
use rhospace_spaces::first_match_from;

fn datum(i: usize) -> Term {
    Term::record([
        ("topic", Term::str(format!("orders.{i}"))),
        ("body", Term::int(i as i64)),
    ])
}

fn matching(c: &mut Criterion) {
    let mut g = c.benchmark_group("parallel_matching");
    for n in [1_000usize, 2_000, 5_000, 10_000, 100_000] {
        let data: Vec<Term> = (0..n).map(datum).collect();
        let pattern = Pattern::open_record([
            (
                "topic",
                Pattern::lit(Term::str(format!("orders.{}", n - 1))),
            ),
            ("body", Pattern::bind("b")),
        ]);
        let m = StructuralMatch;
        assert!(
            m.exact_key(&pattern).is_none(),
            "the pattern must not be indexable"
        );
        let want = Some(n - 1);
        g.bench_function(BenchmarkId::new("baseline", n), |b| {
            b.iter(|| {
                black_box(&data)
                    .iter()
                    .position(|a| m.get(black_box(&pattern), a).is_some())
            })
        });
        g.bench_function(BenchmarkId::new("serial", n), |b| {
            b.iter(|| first_match_from(&m, black_box(&pattern), black_box(&data), usize::MAX))
        });
        g.bench_function(BenchmarkId::new("parallel", n), |b| {
            b.iter(|| first_match_from(&m, black_box(&pattern), black_box(&data), 0))
        });
        assert_eq!(first_match_from(&m, &pattern, &data, usize::MAX), want);
        assert_eq!(first_match_from(&m, &pattern, &data, 0), want);
    }
    g.finish();
}

criterion_group!(benches, matching);
criterion_main!(benches);
