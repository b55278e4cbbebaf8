//! Batched operations (issue 6): a batch gives exactly what the single operations give when run
//! in the batch's documented order (grouped by shard lock set, input order within a group),
//! returns results in input order, and refuses bad requests without changing anything.

use rhospace_matchers::ExactMatch;
use rhospace_spaces::{ConsumeRequest, ErrorKind, Space, SpaceConfig};

type S = Space<u32, u32, u32, u32, ExactMatch>;

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn contents(s: &S, channels: u32) -> String {
    let mut out = String::new();
    for c in 0..channels {
        out += &format!("{c}: {:?} {:?}\n", s.data(&c), s.joins(&c));
        out += &format!("  {:?}\n", s.continuations(&[c]));
        out += &format!("  {:?}\n", s.continuations(&[c, (c + 1) % channels]));
    }
    out
}

#[test]
fn batches_equal_single_calls_in_grouped_order() {
    const CH: u32 = 12;
    for seed in 1..=20u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let batched: S = Space::with_shards(ExactMatch, SpaceConfig::new(), 4);
        let single: S = Space::with_shards(ExactMatch, SpaceConfig::new(), 4);
        for _round in 0..30 {
            if rng.below(2) == 0 {
                let items: Vec<(u32, u32, bool)> = (0..rng.below(20))
                    .map(|_| {
                        (
                            rng.below(CH as u64) as u32,
                            rng.below(3) as u32,
                            rng.below(8) == 0,
                        )
                    })
                    .collect();
                let got: Vec<String> = batched
                    .produce_batch(items.clone())
                    .iter()
                    .map(|r| format!("{r:?}"))
                    .collect();
                let mut order: Vec<usize> = (0..items.len()).collect();
                order.sort_by_key(|&i| (single.shard_of(&items[i].0), i));
                let mut want = vec![String::new(); items.len()];
                for i in order {
                    let (c, a, p) = items[i];
                    want[i] = format!("{:?}", single.produce(c, a, p));
                }
                assert_eq!(got, want, "seed {seed}: produce batch differs");
            } else {
                let reqs: Vec<ConsumeRequest<u32, u32, u32>> = (0..rng.below(10))
                    .map(|k| {
                        let c = rng.below(CH as u64) as u32;
                        let mut r = if rng.below(3) == 0 {
                            let d = (c + 1) % CH;
                            ConsumeRequest::new(
                                [c, d],
                                [rng.below(3) as u32, rng.below(3) as u32],
                                k as u32,
                            )
                        } else {
                            ConsumeRequest::new([c], [rng.below(3) as u32], k as u32)
                        };
                        r.persist = rng.below(10) == 0;
                        r
                    })
                    .collect();
                let got: Vec<String> = batched
                    .consume_batch(reqs.clone())
                    .iter()
                    .map(|r| format!("{r:?}"))
                    .collect();
                let key = |r: &ConsumeRequest<u32, u32, u32>| {
                    let mut v: Vec<usize> = r.channels.iter().map(|c| single.shard_of(c)).collect();
                    v.sort_unstable();
                    v.dedup();
                    v
                };
                let mut order: Vec<usize> = (0..reqs.len()).collect();
                order.sort_by_key(|&i| (key(&reqs[i]), i));
                let mut want = vec![String::new(); reqs.len()];
                for i in order {
                    let r = reqs[i].clone();
                    want[i] = format!(
                        "{:?}",
                        single.consume(r.channels, r.patterns, r.continuation, r.persist, &r.peeks)
                    );
                }
                assert_eq!(got, want, "seed {seed}: consume batch differs");
            }
        }
        assert_eq!(contents(&batched, CH), contents(&single, CH), "seed {seed}");
    }
}

#[test]
fn bad_requests_in_a_batch_fail_alone_and_change_nothing() {
    let s: S = Space::new(ExactMatch, SpaceConfig::new());
    s.produce(1, 1, false).unwrap();
    let mut peeking = ConsumeRequest::new([1], [1], 3);
    peeking.peeks.push(4);
    let out = s.consume_batch(vec![
        ConsumeRequest::new(Vec::<u32>::new(), Vec::<u32>::new(), 1),
        ConsumeRequest::new([1, 2], [1], 2),
        peeking,
    ]);
    assert_eq!(
        out[0].as_ref().unwrap_err().kind(),
        &ErrorKind::EmptyChannels
    );
    assert!(matches!(
        out[1].as_ref().unwrap_err().kind(),
        ErrorKind::LengthMismatch { .. }
    ));
    assert!(matches!(
        out[2].as_ref().unwrap_err().kind(),
        ErrorKind::PeekOutOfRange { .. }
    ));
    assert_eq!(
        out.into_iter()
            .map(|r| r.unwrap_err().into_inner())
            .collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(s.data(&1).len(), 1);
    assert!(s.continuations(&[1]).is_empty() && s.continuations(&[1, 2]).is_empty());
}

#[test]
fn produce_batch_conserves_under_threads() {
    // Four threads produce batches on shared channels while a fifth consumes: every datum is
    // consumed exactly once or still stored.
    let s: S = Space::new(ExactMatch, SpaceConfig::new());
    std::thread::scope(|scope| {
        for t in 0..4u32 {
            let s = &s;
            scope.spawn(move || {
                for round in 0..50u32 {
                    let items = (0..20u32).map(|i| (i % 8, t * 100_000 + round * 100 + i, false));
                    for r in s.produce_batch(items) {
                        assert!(r.unwrap().is_none());
                    }
                }
            });
        }
    });
    let mut seen = std::collections::BTreeSet::new();
    for c in 0..8u32 {
        for d in s.data(&c) {
            assert!(seen.insert(d.value), "duplicate {}", d.value);
        }
    }
    assert_eq!(seen.len(), 4 * 50 * 20);
}
