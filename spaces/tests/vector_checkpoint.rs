//! Hard checkpoints, resets and replay on VectorDB channels (SPEC §4 VectorDB row, §6, §7):
//! the vector types' canonical encoding round-trips, refuses hostile bytes with typed errors,
//! and lets a `Space<_, SimilarityPattern, EmbeddedDatum<_>, _, SimilarityMatch>` checkpoint,
//! reset (from memory and from a history store) and replay to the same root.

mod common;

use std::sync::Arc;

use proptest::prelude::*;
use rhospace_matchers::similarity::{
    EmbeddedDatum, Embedding, Metric, SimilarityMatch, SimilarityPattern, Take,
};
use rhospace_spaces::merkle::Digest;
use rhospace_spaces::{
    decode_exact, encode_varint, CheckpointError, Decode, DecodeError, Encode, MemoryHistory, Space,
};

use common::{best, d, space, Datum};

type VSpace = Space<u32, SimilarityPattern, Datum, u32, SimilarityMatch>;

fn top_k(q: &[f32], metric: Metric, threshold: f32, k: usize) -> SimilarityPattern {
    SimilarityPattern::top_k(q, metric, threshold, k).unwrap()
}

fn bytes<T: Encode + ?Sized>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    v.encode(&mut out);
    assert_eq!(out.len(), v.encoded_len(), "encoded_len agrees with encode");
    out
}

/// `decode(encode(v)) == v`, consuming exactly the encoding, and re-encoding gives the same
/// bytes.
fn round_trip<T: Encode + Decode + PartialEq + std::fmt::Debug>(v: &T) -> Vec<u8> {
    let b = bytes(v);
    let back = decode_exact::<T>(&b).expect("decodes");
    assert_eq!(&back, v);
    assert_eq!(bytes(&back), b);
    b
}

fn hex(d: &Digest) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Everything observable on channels 0..3, as text.
fn contents(s: &VSpace) -> String {
    let mut out = String::new();
    for c in 0..3 {
        out += &format!("{c}: {:?}\n", s.data(&c));
        for jk in s.joins(&c) {
            out += &format!("  {jk:?} {:?}\n", s.continuations(&jk));
        }
    }
    out
}

/// The values a consume took, in match order (`None`: it waited).
fn taken(s: &VSpace, channel: u32, p: SimilarityPattern, k: u32) -> Option<Vec<u32>> {
    s.consume([channel], [p], k, false, &[])
        .unwrap()
        .map(|c| c.matches.iter().map(|m| m.datum.value).collect())
}

// ---- encoding ------------------------------------------------------------------------------

#[test]
fn golden_bytes_of_the_vector_types() {
    assert_eq!(
        bytes(&Embedding::from([1.0, -2.0])),
        [2, 0, 0, 0x80, 0x3F, 0, 0, 0, 0xC0]
    );
    assert_eq!(bytes(&Embedding::from(Vec::new())), [0]);
    assert_eq!(
        bytes(&EmbeddedDatum::new(7u32, [0.5])),
        [7, 0, 0, 0, 1, 0, 0, 0, 0x3F]
    );
    assert_eq!(bytes(&Metric::Cosine), [0]);
    assert_eq!(bytes(&Metric::Dot), [1]);
    assert_eq!(bytes(&Metric::L2Squared), [2]);
    assert_eq!(bytes(&Take::Best), [0]);
    assert_eq!(
        bytes(&Take::TopK(std::num::NonZeroUsize::new(300).unwrap())),
        [1, 0xAC, 0x02]
    );
    assert_eq!(
        bytes(&top_k(&[1.0], Metric::Dot, -0.5, 2)),
        [1, 0, 0, 0x80, 0x3F, 1, 0, 0, 0, 0xBF, 1, 2]
    );
    assert_eq!(
        bytes(&best(&[2.0], Metric::L2Squared, f32::NEG_INFINITY)),
        [1, 0, 0, 0, 0x40, 2, 0, 0, 0x80, 0xFF, 0]
    );
}

#[test]
fn round_trips_of_every_shape() {
    round_trip(&Embedding::from(Vec::new()));
    round_trip(&Embedding::from([1.0, f32::MIN_POSITIVE, f32::MAX, -1e-45]));
    round_trip(&EmbeddedDatum::new(u32::MAX, [3.0, 4.0]));
    round_trip(&EmbeddedDatum::new("payload".to_string(), [0.0, 1.0]));
    round_trip(&(7u64, Embedding::from([1.0])));
    for m in [Metric::Cosine, Metric::Dot, Metric::L2Squared] {
        round_trip(&m);
        round_trip(&best(&[0.0, 1.0], m, 0.25));
        round_trip(&top_k(&[3.0, -4.0], m, f32::NEG_INFINITY, 1));
        round_trip(&top_k(&[3.0, -4.0], m, f32::INFINITY, usize::MAX));
    }
    round_trip(&Take::Best);
    round_trip(&Take::TopK(std::num::NonZeroUsize::MIN));
    round_trip(&vec![
        best(&[1.0], Metric::Dot, 0.0),
        top_k(&[1.0, 1.0], Metric::Cosine, 0.5, 3),
    ]);
}

#[test]
fn signed_zeros_stay_distinct_and_nan_bits_survive_in_embeddings() {
    // Equality is bitwise, so the encoding keeps the sign of zero: equal bytes iff equal values.
    let pos = round_trip(&Embedding::from([0.0, 1.0]));
    let neg = round_trip(&Embedding::from([-0.0, 1.0]));
    assert_ne!(pos, neg);
    let p0 = round_trip(&best(&[1.0], Metric::Dot, 0.0));
    let n0 = round_trip(&best(&[1.0], Metric::Dot, -0.0));
    assert_ne!(p0, n0);
    assert_ne!(
        best(&[1.0], Metric::Dot, 0.0),
        best(&[1.0], Metric::Dot, -0.0)
    );
    // An Embedding validates nothing, so a NaN (payload included) round-trips bit for bit.
    let odd_nan = f32::from_bits(0x7FC0_1234);
    let e = Embedding::from([odd_nan, f32::INFINITY]);
    let b = round_trip(&e);
    assert_eq!(&b[1..5], &0x7FC0_1234u32.to_le_bytes());
}

#[test]
fn hostile_lengths_are_rejected_before_allocating() {
    // u64::MAX components claimed in a ten-byte input.
    let mut b = Vec::new();
    encode_varint(u64::MAX, &mut b);
    assert_eq!(
        decode_exact::<Embedding>(&b),
        Err(DecodeError::LengthTooLarge { len: u64::MAX })
    );
    // A count whose byte size overflows `usize`.
    let mut b = Vec::new();
    encode_varint(1 << 62, &mut b);
    b.extend_from_slice(&[0; 16]);
    assert_eq!(
        decode_exact::<Embedding>(&b),
        Err(DecodeError::LengthTooLarge { len: 1 << 62 })
    );
    // Two components (8 bytes) claimed with 7 left: refused though the count is below 7.
    assert_eq!(
        decode_exact::<Embedding>(&[2, 0, 0, 0x80, 0x3F, 0, 0, 0]),
        Err(DecodeError::LengthTooLarge { len: 2 })
    );
    // The same through a datum and a pattern.
    assert_eq!(
        decode_exact::<Datum>(&[1, 0, 0, 0, 9, 0, 0, 0]),
        Err(DecodeError::LengthTooLarge { len: 9 })
    );
    assert_eq!(
        decode_exact::<SimilarityPattern>(&[0x80, 0x80, 0x04]),
        Err(DecodeError::LengthTooLarge { len: 1 << 16 })
    );
    assert_eq!(
        decode_exact::<Embedding>(&[0x80, 0x00]),
        Err(DecodeError::NonMinimalVarint)
    );
}

#[test]
fn invalid_tags_and_patterns_are_typed_errors() {
    let good = bytes(&top_k(&[0.0, 1.0], Metric::Cosine, 0.5, 2));
    assert_eq!(
        good,
        [2, 0, 0, 0, 0, 0, 0, 0x80, 0x3F, 0, 0, 0, 0, 0x3F, 1, 2]
    );
    let with = |i: usize, v: &[u8]| {
        let mut b = good.clone();
        b.splice(i..i + v.len(), v.iter().copied());
        decode_exact::<SimilarityPattern>(&b)
    };
    // Metric and take tags.
    assert_eq!(with(9, &[3]), Err(DecodeError::Invalid("metric")));
    assert_eq!(with(14, &[2]), Err(DecodeError::Invalid("take mode")));
    assert_eq!(with(15, &[0]), Err(DecodeError::Invalid("top-k count 0")));
    assert_eq!(
        decode_exact::<Metric>(&[0xFF]),
        Err(DecodeError::Invalid("metric"))
    );
    assert_eq!(
        decode_exact::<Take>(&[1, 0x82, 0x00]),
        Err(DecodeError::NonMinimalVarint)
    );
    // What the constructors refuse.
    let nan = f32::NAN.to_bits().to_le_bytes();
    let inf = f32::INFINITY.to_bits().to_le_bytes();
    assert_eq!(
        with(10, &nan),
        Err(DecodeError::Invalid("similarity pattern: NaN threshold"))
    );
    assert_eq!(
        with(1, &nan),
        Err(DecodeError::Invalid(
            "similarity pattern: NaN or infinite query component"
        ))
    );
    assert_eq!(
        with(5, &inf),
        Err(DecodeError::Invalid(
            "similarity pattern: NaN or infinite query component"
        ))
    );
    assert_eq!(
        with(5, &[0, 0, 0, 0]),
        Err(DecodeError::Invalid(
            "similarity pattern: zero query under cosine"
        ))
    );
    // An all-zero query is fine under dot product.
    assert!(with(9, &[1]).is_ok());
    assert_eq!(
        decode_exact::<SimilarityPattern>(&[0, 1, 0, 0, 0, 0, 0]),
        Err(DecodeError::Invalid("similarity pattern: empty query"))
    );
    // Trailing bytes.
    let mut long = good.clone();
    long.push(0);
    assert_eq!(
        decode_exact::<SimilarityPattern>(&long),
        Err(DecodeError::TrailingBytes { count: 1 })
    );
}

#[test]
fn every_truncation_is_an_error() {
    let p = bytes(&top_k(&[1.0, 2.0, 3.0], Metric::L2Squared, -1.0, 200));
    for n in 0..p.len() {
        assert!(decode_exact::<SimilarityPattern>(&p[..n]).is_err(), "{n}");
    }
    let e = bytes(&EmbeddedDatum::new(5u32, [1.0, 2.0]));
    for n in 0..e.len() {
        assert!(decode_exact::<Datum>(&e[..n]).is_err(), "{n}");
    }
}

fn metric() -> impl Strategy<Value = Metric> {
    prop_oneof![
        Just(Metric::Cosine),
        Just(Metric::Dot),
        Just(Metric::L2Squared)
    ]
}

/// Finite components, signed zeros and subnormals included.
fn finite() -> impl Strategy<Value = f32> {
    prop_oneof![
        any::<f32>().prop_filter("finite", |x| x.is_finite()),
        Just(0.0f32),
        Just(-0.0f32),
        -1.0f32..1.0,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any bit patterns, any dimension: exact round trip.
    #[test]
    fn embeddings_of_any_bits_round_trip(bits in prop::collection::vec(any::<u32>(), 0..200)) {
        let e = Embedding::from(bits.iter().map(|b| f32::from_bits(*b)).collect::<Vec<_>>());
        let b = round_trip(&e);
        prop_assert_eq!(b.len(), rhospace_spaces::varint_len(bits.len() as u64) + 4 * bits.len());
        let datum = EmbeddedDatum::new(bits.len() as u64, e);
        round_trip(&datum);
    }

    /// Valid patterns round trip; equal patterns encode equally, different ones differently.
    #[test]
    fn patterns_round_trip(
        q in prop::collection::vec(finite(), 1..64),
        m in metric(),
        threshold in prop_oneof![finite(), Just(f32::NEG_INFINITY), Just(f32::INFINITY)],
        k in prop_oneof![Just(0usize), 1usize..1000, Just(usize::MAX)],
        other in finite(),
    ) {
        let built = if k == 0 {
            SimilarityPattern::best(q.clone(), m, threshold)
        } else {
            SimilarityPattern::top_k(q.clone(), m, threshold, k)
        };
        // A cosine query of zeros (or one whose norm underflows) is refused by the constructor.
        prop_assume!(built.is_ok());
        let p = built.unwrap();
        let b = round_trip(&p);
        let mut q2 = q.clone();
        q2[0] = other;
        if let Ok(p2) = SimilarityPattern::best(q2, m, threshold) {
            prop_assert_eq!(p2 == p, bytes(&p2) == b);
        }
    }

    /// Arbitrary bytes never panic; whatever decodes re-encodes to the same bytes.
    #[test]
    fn hostile_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(p) = decode_exact::<SimilarityPattern>(&b) {
            prop_assert_eq!(bytes(&p), b.clone());
        }
        if let Ok(d) = decode_exact::<Datum>(&b) {
            prop_assert_eq!(bytes(&d), b.clone());
        }
        if let Ok(e) = decode_exact::<Embedding>(&b) {
            prop_assert_eq!(bytes(&e), b);
        }
    }
}

// ---- through the space ---------------------------------------------------------------------

#[test]
fn checkpoint_then_reset_restores_contents_and_the_same_similarity_pick() {
    let history = Arc::new(MemoryHistory::new());
    let s: VSpace = space(3, Metric::Cosine).with_history(history.clone());
    s.produce(0, d(1, &[1.0, 0.0, 0.0]), false).unwrap();
    s.produce(0, d(2, &[0.9, 0.1, 0.0]), false).unwrap();
    s.produce(0, d(3, &[0.0, 1.0, 0.0]), true).unwrap();
    s.produce(1, d(4, &[0.0, 0.0, 1.0]), false).unwrap();
    // Ties with 1: the older is picked.
    s.produce(0, d(5, &[1.0, 0.0, 0.0]), false).unwrap();
    // A waiting continuation: a pattern in the state.
    assert_eq!(
        taken(&s, 2, best(&[0.0, 1.0, 0.0], Metric::Cosine, 0.99), 77),
        None
    );
    let cp = s.create_checkpoint().unwrap();
    let want = contents(&s);
    assert_eq!(s.full_state_root(), cp.root);

    let q = || best(&[1.0, 0.05, 0.0], Metric::Cosine, 0.5);
    let first = taken(&s, 0, q(), 9);
    assert_eq!(first, Some(vec![1]));
    // More operations: a better match arrives, others go.
    s.produce(0, d(6, &[1.0, 0.05, 0.0]), false).unwrap();
    assert_eq!(
        taken(&s, 0, top_k(&[0.0, 1.0, 0.0], Metric::Cosine, -1.0, 2), 8),
        Some(vec![3, 2])
    );
    s.produce(2, d(7, &[0.0, 1.0, 0.0]), false).unwrap(); // fires the waiting 77
    s.create_checkpoint().unwrap();
    assert_ne!(contents(&s), want);

    // From memory.
    s.reset(&cp.root).unwrap();
    assert_eq!(contents(&s), want);
    assert_eq!(s.full_state_root(), cp.root);
    assert_eq!(taken(&s, 0, q(), 9), first);

    // From the history store, in a fresh space: every entry is decoded.
    let fresh: VSpace = space(3, Metric::Cosine).with_history(history);
    fresh.reset(&cp.root).unwrap();
    assert_eq!(contents(&fresh), want);
    assert_eq!(fresh.full_state_root(), cp.root);
    assert_eq!(taken(&fresh, 0, q(), 9), first);
    assert_eq!(
        fresh
            .produce(2, d(10, &[0.0, 1.0, 0.0]), false)
            .unwrap()
            .map(|c| c.continuation),
        Some(77),
        "the decoded waiting pattern still matches"
    );
}

/// The root of a fixed tiny VectorDB state, hard-coded: it changes only when the encoding of
/// the vector types (or the state-root format) changes.
#[test]
fn golden_state_root() {
    let s: VSpace = space(2, Metric::Dot);
    s.produce(0, d(1, &[1.0, 0.0]), false).unwrap();
    s.produce(0, d(2, &[0.0, -0.0]), true).unwrap();
    s.produce(1, d(3, &[0.5, 0.25]), false).unwrap();
    assert_eq!(
        taken(&s, 1, top_k(&[1.0, 1.0], Metric::Dot, 10.0, 2), 42),
        None
    );
    let root = s.create_checkpoint().unwrap().root;
    assert_eq!(root, s.full_state_root());
    assert_eq!(
        hex(&root),
        "91259f928bfcf0ed1baef4977fda6a282ec266bee544474cad9050b252494051"
    );
}

/// A root recorded by a space whose VectorDB channels have another dimension describes a state
/// no call on this space can leave: a datum of the wrong dimension (which a produce refuses),
/// or a waiting similarity query of the wrong dimension (which a consume refuses with
/// `ErrorKind::Query`). `reset` refuses both, and changes nothing.
#[test]
fn reset_refuses_data_and_queries_of_another_dimension() {
    let history = Arc::new(MemoryHistory::new());
    let three: VSpace = space(3, Metric::Dot).with_history(history.clone());
    assert_eq!(
        taken(&three, 0, best(&[1.0, 0.0, 0.0], Metric::Dot, 0.5), 7),
        None
    );
    let waiting = three.create_checkpoint().unwrap().root;
    three.clear();
    three.produce(0, d(1, &[1.0, 0.0, 0.0]), false).unwrap();
    let stored = three.create_checkpoint().unwrap().root;

    let two: VSpace = space(2, Metric::Dot).with_history(history);
    two.produce(1, d(2, &[0.0, 1.0]), false).unwrap();
    let (before, root) = (contents(&two), two.full_state_root());
    for recorded in [waiting, stored] {
        let got = two.reset(&recorded);
        assert!(
            matches!(got, Err(CheckpointError::Corrupt { .. })),
            "root {}: {got:?}, continuations {:?}",
            hex(&recorded),
            two.continuations(&[0])
        );
        assert_eq!(contents(&two), before);
        assert_eq!(two.full_state_root(), root);
    }
}

#[test]
fn a_fresh_space_rigged_with_the_log_replays_to_the_same_root() {
    let history = Arc::new(MemoryHistory::new());
    let play: VSpace = space(4, Metric::L2Squared).with_history(history.clone());
    // Some state before the block being replayed.
    for i in 0..6u32 {
        let x = i as f32;
        play.produce(0, d(i, &[x, 1.0, 0.0, -x]), i == 5).unwrap();
    }
    assert_eq!(
        taken(&play, 1, best(&[0.0; 4], Metric::L2Squared, -0.5), 100),
        None
    );
    let start = play.create_checkpoint().unwrap().root;

    // The block: produces, a best and a top-k consume, a produce that fires a waiting one.
    type Call = Box<dyn Fn(&VSpace) -> Option<Vec<u32>>>;
    let calls: Vec<Call> = vec![
        Box::new(|s| {
            s.produce(0, d(10, &[2.0, 1.0, 0.0, -2.0]), false)
                .unwrap()
                .map(|_| vec![])
        }),
        Box::new(|s| {
            taken(
                s,
                0,
                top_k(&[2.0, 1.0, 0.0, -2.0], Metric::L2Squared, -9.0, 3),
                1,
            )
        }),
        Box::new(|s| {
            taken(
                s,
                0,
                best(&[5.0, 1.0, 0.0, -5.0], Metric::L2Squared, -1.0),
                2,
            )
        }),
        Box::new(|s| {
            s.produce(1, d(11, &[0.0, 0.0, 0.5, 0.0]), false)
                .unwrap()
                .map(|c| c.matches.iter().map(|m| m.datum.value).collect())
        }),
        Box::new(|s| {
            taken(
                s,
                0,
                top_k(&[0.0, 1.0, 0.0, 0.0], Metric::L2Squared, -100.0, 2),
                3,
            )
        }),
        Box::new(|s| taken(s, 2, best(&[1.0; 4], Metric::L2Squared, 0.0), 4)),
    ];
    let played: Vec<_> = calls.iter().map(|c| c(&play)).collect();
    assert_eq!(played[1].as_ref().map(Vec::len), Some(3), "the top-k fired");
    assert_eq!(
        played[3],
        Some(vec![11]),
        "the produce fired the waiting best"
    );
    let block = play.create_checkpoint().unwrap();
    assert!(!block.log.is_empty());

    // A fresh space: the start root comes from the history store (decoded), then the replay.
    let replay: VSpace = space(4, Metric::L2Squared).with_history(history);
    replay.rig(&start, &block.log).unwrap();
    let replayed: Vec<_> = calls.iter().map(|c| c(&replay)).collect();
    assert_eq!(replayed, played);
    assert_eq!(replay.create_checkpoint().unwrap().root, block.root);
    assert_eq!(contents(&replay), contents(&play));
}

/// SPEC §6 on VectorDB channels under random calls: best and top-k consumes (alone, in joins,
/// peeking, persistent), produces that fire waiting similarity patterns, persistent data, soft
/// reverts and resets. Each hard checkpoint's incremental root equals the root hashed from
/// scratch, and a space that loads the root from the history store holds the same contents
/// and, making the same calls from there, gets the same results as the space that recorded it.
#[test]
fn random_similarity_calls_keep_the_incremental_root_exact_and_a_loaded_state_goes_on_alike() {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut below = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let history = Arc::new(MemoryHistory::new());
    let make = || -> VSpace { space(2, Metric::Dot).with_history(history.clone()) };
    let (s, t) = (make(), make());
    let mut recorded = Vec::new();
    let mut soft = None;
    let mut id = 0u32;
    let mut several = 0;
    for round in 0..60 {
        for _ in 0..below(25) {
            let v = [below(4) as f32 - 1.0, below(4) as f32 - 1.0];
            let c = below(3) as u32;
            let (a, b) = if below(2) == 0 {
                id += 1;
                let persist = below(6) == 0;
                let (a, b) = (
                    s.produce(c, d(id, &v), persist),
                    t.produce(c, d(id, &v), persist),
                );
                (format!("{a:?}"), format!("{b:?}"))
            } else {
                let n = 1 + below(2) as usize;
                let channels: Vec<u32> = (0..n).map(|_| below(3) as u32).collect();
                let patterns: Vec<SimilarityPattern> = (0..n)
                    .map(|_| {
                        let threshold = below(3) as f32 - 1.0;
                        match below(3) {
                            0 => top_k(&v, Metric::Dot, threshold, 1 + below(3) as usize),
                            _ => best(&v, Metric::Dot, threshold),
                        }
                    })
                    .collect();
                let peeks: Vec<usize> = (0..n).filter(|_| below(4) == 0).collect();
                let persist = below(8) == 0;
                let k = below(5) as u32;
                let a = s.consume(channels.clone(), patterns.clone(), k, persist, &peeks);
                let b = t.consume(channels, patterns, k, persist, &peeks);
                // A top-k that took more data than it has positions.
                several += usize::from(a.as_ref().is_ok_and(|c| {
                    c.as_ref()
                        .is_some_and(|c| c.matches.len() > c.channels.len())
                }));
                (format!("{a:?}"), format!("{b:?}"))
            };
            assert_eq!(a, b, "round {round}");
        }
        match below(8) {
            0 => soft = Some((s.create_soft_checkpoint(), t.create_soft_checkpoint())),
            1 => {
                if let Some((a, b)) = &soft {
                    s.revert_to_soft_checkpoint(a).unwrap();
                    t.revert_to_soft_checkpoint(b).unwrap();
                }
            }
            2 if !recorded.is_empty() => {
                let root = recorded[below(recorded.len() as u64) as usize];
                s.reset(&root).unwrap();
                t.reset(&root).unwrap();
            }
            _ => {}
        }
        assert_eq!(contents(&s), contents(&t), "round {round}");
        let full = s.full_state_root();
        let root = s.create_checkpoint().unwrap().root;
        assert_eq!(hex(&root), hex(&full), "round {round}: incremental root");
        recorded.push(root);
        // `t` never takes a hard checkpoint: it loads each root from the store.
        t.reset(&root).unwrap();
        assert_eq!(contents(&t), contents(&s), "round {round}: loaded");
        assert_eq!(t.full_state_root(), root, "round {round}: loaded root");
    }
    assert!(
        several > 10,
        "top-k consumes took several data {several} times"
    );
}
