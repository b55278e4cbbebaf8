//! Complete join matching (SPEC §3) against a brute-force reference, on joins of up to six
//! positions over two channels: long enough that the search backtracks, prunes dead positions
//! and independent channels, and skips remembered failed visits (`join.rs`), which the model
//! test's joins of up to three positions rarely reach.
//!
//! Each case stores a few small data on two Bag channels (some persistent), then consumes with
//! random patterns and peeks. The reference enumerates assignments in candidate order (oldest
//! first) under the reuse rule (a non-persistent datum fills one position, or several that all
//! peek) and takes the first; the COMM must name the same data, or neither fires. When
//! the consume waits, a produce follows, and the reference's first assignment must use the
//! produced datum.

mod common;

use common::{Pred, PredMatch, Rng};
use rhospace_spaces::{Space, SpaceConfig};

type S = Space<u8, Pred, i64, u8, PredMatch>;

/// A channel's data as `(value, persistent)`, oldest first.
type Data = Vec<(i64, bool)>;

/// The values of the first assignment in candidate order, if any; with `must = (channel,
/// index)`, the first that uses that datum.
fn first_assignment(
    data: &[Data],
    chans: &[u8],
    pats: &[Pred],
    peeks: &[usize],
    must: Option<(usize, usize)>,
) -> Option<Vec<i64>> {
    struct Ref<'a> {
        data: &'a [Data],
        chans: &'a [u8],
        pats: &'a [Pred],
        peeks: &'a [usize],
        must: Option<(usize, usize)>,
        pick: Vec<usize>,
    }
    impl Ref<'_> {
        fn go(&mut self, pos: usize) -> bool {
            let n = self.chans.len();
            if pos == n {
                return self.must.is_none_or(|(c, i)| {
                    (0..n).any(|p| usize::from(self.chans[p]) == c && self.pick[p] == i)
                });
            }
            let ch = usize::from(self.chans[pos]);
            for (i, &(v, persist)) in self.data[ch].iter().enumerate() {
                if !self.pats[pos].accepts(v) {
                    continue;
                }
                let shared = (0..pos).any(|q| {
                    usize::from(self.chans[q]) == ch
                        && self.pick[q] == i
                        && !persist
                        && !(self.peeks.contains(&q) && self.peeks.contains(&pos))
                });
                if shared {
                    continue;
                }
                self.pick[pos] = i;
                if self.go(pos + 1) {
                    return true;
                }
            }
            false
        }
    }
    let mut r = Ref {
        data,
        chans,
        pats,
        peeks,
        must,
        pick: vec![0; chans.len()],
    };
    r.go(0).then(|| {
        (0..chans.len())
            .map(|p| data[usize::from(chans[p])][r.pick[p]].0)
            .collect()
    })
}

#[test]
fn long_joins_pick_the_first_assignment_of_a_brute_force_search() {
    let mut rng = Rng(0x5EED_1234);
    let pred = |r: &mut Rng| match r.below(6) {
        0 | 1 => Pred::Any,
        2 => Pred::Even,
        3 => Pred::Odd,
        4 => Pred::Gt(r.below(4) as i64),
        _ => Pred::Eq(r.below(4) as i64),
    };
    let (mut consumed, mut produced) = (0, 0);
    for case in 0..20_000 {
        let s: S = Space::new(PredMatch, SpaceConfig::new());
        let mut data: Vec<Data> = vec![Vec::new(), Vec::new()];
        for ch in 0..2u8 {
            for _ in 0..rng.below(7) {
                let (v, persist) = (rng.below(5) as i64, rng.below(5) == 0);
                s.produce(ch, v, persist).unwrap();
                data[usize::from(ch)].push((v, persist));
            }
        }
        let n = 1 + rng.below(6) as usize;
        let chans: Vec<u8> = (0..n).map(|_| rng.below(2) as u8).collect();
        let pats: Vec<Pred> = (0..n).map(|_| pred(&mut rng)).collect();
        let peeks: Vec<usize> = (0..n).filter(|_| rng.below(4) == 0).collect();
        let values = |c: &rhospace_spaces::Comm<u8, Pred, i64, u8, i64>| -> Vec<i64> {
            c.matches.iter().map(|m| m.datum).collect()
        };
        let want = first_assignment(&data, &chans, &pats, &peeks, None);
        let got = s
            .consume(chans.clone(), pats.clone(), 0, false, &peeks)
            .unwrap();
        let got = got.as_ref().map(values);
        assert_eq!(
            got, want,
            "consume, case {case}: {data:?} {chans:?} {pats:?} {peeks:?}"
        );
        if got.is_some() {
            consumed += 1;
            continue;
        }
        let ch = rng.below(2) as usize;
        let v = rng.below(5) as i64;
        data[ch].push((v, false));
        let must = Some((ch, data[ch].len() - 1));
        let want = first_assignment(&data, &chans, &pats, &peeks, must);
        let got = s.produce(ch as u8, v, false).unwrap();
        let got = got.as_ref().map(values);
        assert_eq!(
            got, want,
            "produce, case {case}: {data:?} {chans:?} {pats:?} {peeks:?}"
        );
        produced += usize::from(got.is_some());
    }
    // Both outcomes are common, so the comparison is not vacuous.
    assert!(
        consumed > 5_000 && produced > 1_000,
        "{consumed} {produced}"
    );
}
