//! A VectorDB channel against a brute-force model (SPEC §1, §2, §3, §4 VectorDB row, §6):
//! produces and consumes of best-match and top-k patterns, persistent data, persistent and
//! peeking consumes, continuations left waiting and later completed by a produce, through
//! runs of produces that seal index blocks and consumes that take enough to rebuild the
//! index, across soft checkpoints and hard checkpoint resets. Every COMM (continuation, data
//! in order), the data left and the continuations left waiting (in order) must be the
//! model's.

mod common;

use proptest::prelude::*;
use rhospace_matchers::similarity::{Metric, SimilarityMatch, SimilarityPattern, Take};
use rhospace_spaces::Space;

use common::{d, space, Datum};

type VSpace = Space<u32, SimilarityPattern, Datum, u32, SimilarityMatch>;

/// What a call fired: the continuation and the data ids at its position, in COMM order.
type Fired = Option<(u32, Vec<u32>)>;

#[derive(Clone, Debug)]
enum Op {
    /// One datum, maybe persistent.
    Produce([i8; 2], bool),
    /// `n` non-persistent data whose vectors cycle through a few values (many ties), enough
    /// to seal index blocks.
    Bulk(u16, u8),
    /// A best-match consume: query, metric, threshold, persistent, peeking.
    Best([i8; 2], Metric, i8, bool, bool),
    /// A top-k consume: query, metric, threshold, k, persistent, peeking.
    TopK([i8; 2], Metric, i8, usize, bool, bool),
    /// A top-k consume that accepts every datum and takes `k` of them: with enough data it
    /// leaves most index rows dead.
    Drain(usize),
    /// A soft checkpoint, kept with the model.
    Save,
    /// Reverts to the last soft checkpoint, if any.
    Restore,
    /// A hard checkpoint, its root kept with the model.
    Hard,
    /// Resets to the last hard checkpoint's root, if any.
    Reset,
}

/// A flag that is set one time in four.
fn flag() -> impl Strategy<Value = bool> {
    prop_oneof![3 => Just(false), 1 => Just(true)]
}

/// Mostly the channel's metric (Dot), whose queries scan its index; sometimes another, whose
/// queries score every datum through the matcher (a zero datum has no cosine: never taken).
fn metric() -> impl Strategy<Value = Metric> {
    prop_oneof![4 => Just(Metric::Dot), 1 => Just(Metric::L2Squared), 1 => Just(Metric::Cosine)]
}

fn op() -> impl Strategy<Value = Op> {
    let v = || [-2i8..=2, -2i8..=2];
    prop_oneof![
        6 => (v(), any::<bool>()).prop_map(|(v, p)| Op::Produce(v, p)),
        1 => (100u16..400, any::<u8>()).prop_map(|(n, s)| Op::Bulk(n, s)),
        4 => (v(), metric(), -4i8..=4, flag(), flag())
            .prop_map(|(q, m, t, p, k)| Op::Best(q, m, t, p, k)),
        4 => (v(), metric(), -4i8..=4, 1usize..=4, flag(), flag())
            .prop_map(|(q, m, t, k, p, pk)| Op::TopK(q, m, t, k, p, pk)),
        1 => (50usize..250).prop_map(Op::Drain),
        1 => Just(Op::Save),
        1 => Just(Op::Restore),
        1 => Just(Op::Hard),
        1 => Just(Op::Reset),
    ]
}

/// `metric`, or Dot for a zero query under cosine (which has no cosine).
fn usable(metric: Metric, q: &[i8; 2]) -> Metric {
    if metric == Metric::Cosine && *q == [0, 0] {
        Metric::Dot
    } else {
        metric
    }
}

fn f(v: [i8; 2]) -> [f32; 2] {
    [f32::from(v[0]), f32::from(v[1])]
}

/// A continuation waiting in the model: its id, pattern, and whether it is persistent and
/// peeks.
#[derive(Clone, Debug)]
struct Waiting {
    id: u32,
    pattern: SimilarityPattern,
    persist: bool,
    peek: bool,
}

/// The data of one channel (id, vector, persistent) and the continuations waiting on it,
/// both in the order they are offered.
#[derive(Clone, Debug, Default)]
struct Model {
    data: Vec<(u32, [f32; 2], bool)>,
    waiting: Vec<Waiting>,
}

impl Model {
    /// Indexes of the stored data `p` accepts, best score first, oldest first on ties.
    fn ranked(&self, p: &SimilarityPattern) -> Vec<usize> {
        let mut r: Vec<(f32, usize)> = self
            .data
            .iter()
            .enumerate()
            .filter_map(|(i, (_, v, _))| p.score(v).filter(|s| p.accepts(*s)).map(|s| (s, i)))
            .collect();
        r.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        r.into_iter().map(|(_, i)| i).collect()
    }

    /// Removes the non-persistent data at `taken` (indexes), unless the taker only peeks;
    /// returns their ids in that order.
    fn take(&mut self, taken: &[usize], peek: bool) -> Vec<u32> {
        let ids = taken.iter().map(|&i| self.data[i].0).collect();
        let mut gone: Vec<usize> = taken
            .iter()
            .copied()
            .filter(|&i| !self.data[i].2 && !peek)
            .collect();
        gone.sort_unstable();
        for i in gone.into_iter().rev() {
            self.data.remove(i);
        }
        ids
    }

    /// A produce: the first waiting continuation that the new datum completes fires (the
    /// datum must be in its group), and the datum is not stored (SPEC §2: a persistent or
    /// peeked one is re-issued by the caller); else the datum is stored.
    fn produce(&mut self, id: u32, v: [f32; 2], persist: bool) -> Fired {
        for w in 0..self.waiting.len() {
            let Waiting {
                id: cont,
                pattern: p,
                persist: stays,
                peek,
            } = self.waiting[w].clone();
            let Some(score) = p.score(&v).filter(|s| p.accepts(*s)) else {
                continue;
            };
            let ranked = self.ranked(&p);
            let k = p.take().count();
            // SPEC §1: nothing stored could complete a waiting continuation.
            assert!(ranked.len() < k, "the model's own invariant");
            if ranked.len() + 1 < k {
                continue;
            }
            // The whole group: the stored data it accepts and the new datum (the newest, so
            // after any stored datum of equal score).
            let scores: Vec<f32> = ranked
                .iter()
                .map(|&i| p.score(&self.data[i].1).unwrap_or(f32::NAN))
                .collect();
            let at = scores
                .iter()
                .position(|s| s.total_cmp(&score).is_lt())
                .unwrap_or(ranked.len());
            if !stays {
                self.waiting.remove(w);
            }
            let mut ids = self.take(&ranked, peek);
            ids.insert(at, id);
            return Some((cont, ids));
        }
        self.data.push((id, v, persist));
        None
    }

    /// A consume of `p` by continuation `id`: the best (or the `k` best) accepted data, or
    /// a wait. One that fires is not stored, persistent or not (SPEC §2).
    fn consume(&mut self, id: u32, pattern: SimilarityPattern, persist: bool, peek: bool) -> Fired {
        let ranked = self.ranked(&pattern);
        let k = match pattern.take() {
            Take::Best => 1,
            Take::TopK(k) => k.get(),
        };
        if ranked.len() < k {
            self.waiting.push(Waiting {
                id,
                pattern,
                persist,
                peek,
            });
            return None;
        }
        Some((id, self.take(&ranked[..k], peek)))
    }
}

fn fired<R>(c: Option<rhospace_spaces::Comm<u32, SimilarityPattern, Datum, u32, R>>) -> Fired {
    c.map(|c| {
        let ids = c.matches.iter().map(|m| m.datum.value).collect();
        (c.continuation, ids)
    })
}

/// The continuations waiting on channel 0, in the order they are offered a datum.
fn waiting(s: &VSpace) -> Vec<u32> {
    s.continuations(&[0])
        .iter()
        .map(|w| w.continuation)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn a_vector_channel_agrees_with_a_brute_force_model(
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        let s: VSpace = space(2, Metric::Dot);
        let mut m = Model::default();
        let mut soft = None;
        let mut hard = None;
        let mut next = 0u32;
        let mut fresh = || {
            next += 1;
            next
        };
        for o in &ops {
            let produce = |s: &VSpace, m: &mut Model, v: [f32; 2], persist: bool, id: u32| {
                let got = fired(s.produce(0, d(id, &v), persist).unwrap());
                let want = m.produce(id, v, persist);
                (got, want)
            };
            match o {
                Op::Produce(v, persist) => {
                    let (got, want) = produce(&s, &mut m, f(*v), *persist, fresh());
                    prop_assert_eq!(got, want, "{:?}", o);
                }
                Op::Bulk(n, seed) => {
                    for i in 0..u32::from(*n) {
                        let a = (u32::from(*seed) + 3 * i) % 5;
                        let b = (u32::from(*seed) * 7 + i) % 3;
                        let v = [a as f32 - 2.0, b as f32 - 1.0];
                        let (got, want) = produce(&s, &mut m, v, false, fresh());
                        prop_assert_eq!(got, want, "{:?} item {}", o, i);
                    }
                }
                Op::Best(..) | Op::TopK(..) | Op::Drain(_) => {
                    let (p, persist, peek) = match o {
                        Op::Best(q, metric, t, persist, peek) => (
                            SimilarityPattern::best(f(*q), usable(*metric, q), f32::from(*t)),
                            *persist,
                            *peek,
                        ),
                        Op::TopK(q, metric, t, k, persist, peek) => (
                            SimilarityPattern::top_k(f(*q), usable(*metric, q), f32::from(*t), *k),
                            *persist,
                            *peek,
                        ),
                        Op::Drain(k) => (
                            SimilarityPattern::top_k([1.0, 0.0], Metric::Dot, f32::NEG_INFINITY, *k),
                            false,
                            false,
                        ),
                        _ => unreachable!(),
                    };
                    let p = p.unwrap();
                    let cont = fresh();
                    let peeks: &[usize] = if peek { &[0] } else { &[] };
                    let got = fired(s.consume([0], [p.clone()], cont, persist, peeks).unwrap());
                    prop_assert_eq!(got, m.consume(cont, p, persist, peek), "{:?}", o);
                }
                Op::Save => soft = Some((s.create_soft_checkpoint(), m.clone())),
                Op::Restore => {
                    if let Some((cp, saved)) = &soft {
                        s.revert_to_soft_checkpoint(cp).unwrap();
                        m = saved.clone();
                    }
                }
                Op::Hard => {
                    let root = s.create_checkpoint().unwrap().root;
                    // The checkpoint puts the waiting continuations (a Bag) in canonical order
                    // (see `hard.rs`); the data of a VectorDB channel keep theirs.
                    let order = waiting(&s);
                    m.waiting.sort_by_key(|w| order.iter().position(|&o| o == w.id));
                    hard = Some((root, m.clone()));
                }
                Op::Reset => {
                    if let Some((root, saved)) = &hard {
                        s.reset(root).unwrap();
                        m = saved.clone();
                    }
                }
            }
            let data: Vec<u32> = s.data(&0).iter().map(|d| d.value.value).collect();
            let want: Vec<u32> = m.data.iter().map(|(id, _, _)| *id).collect();
            prop_assert_eq!(data, want, "after {:?}", o);
            let want: Vec<u32> = m.waiting.iter().map(|w| w.id).collect();
            prop_assert_eq!(waiting(&s), want, "after {:?}", o);
        }
    }
}
