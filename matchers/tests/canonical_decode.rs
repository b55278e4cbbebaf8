//! Decoding the canonical encoding: round trips (proptest), strictness (only canonical bytes
//! decode, so decode-then-encode is the identity on whatever decodes), typed errors for every
//! malformed input, no panic on random bytes, and deep inputs on a small stack.

use proptest::prelude::*;
use rhospace_matchers::canonical::{CanonicalDecoder, CanonicalError};
use rhospace_matchers::{Pattern, Predicate, Rest, Term};

fn enc(t: &Term) -> Vec<u8> {
    let mut out = Vec::new();
    t.encode_canonical(&mut out);
    out
}

fn penc(p: &Pattern) -> Vec<u8> {
    let mut out = Vec::new();
    p.encode_canonical(&mut out);
    out
}

fn is_int(t: &Term) -> bool {
    t.as_int().is_some()
}

/// Resolves the predicate names the generators use.
fn resolve(name: &str) -> Option<Predicate> {
    matches!(name, "x" | "y" | "even").then(|| Predicate::new(name, is_int))
}

fn dec() -> CanonicalDecoder<'static> {
    CanonicalDecoder::new().predicates(&resolve)
}

fn term_err(bytes: &[u8]) -> CanonicalError {
    CanonicalDecoder::new()
        .term_exact(bytes)
        .expect_err("must not decode")
}

fn pat_err(bytes: &[u8]) -> CanonicalError {
    dec().pattern_exact(bytes).expect_err("must not decode")
}

// ---------------------------------------------------------------- generators

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("k".to_string()),
        "[a-c\u{e9}]{0,3}"
    ]
}

fn arb_term() -> impl Strategy<Value = Term> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Term::int),
        "\\PC{0,4}".prop_map(Term::str),
        prop::collection::vec(any::<u8>(), 0..200).prop_map(Term::bytes),
        any::<bool>().prop_map(Term::bool),
    ];
    leaf.prop_recursive(5, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Term::list),
            prop::collection::vec(inner.clone(), 0..5).prop_map(Term::tuple),
            prop::collection::vec((arb_key(), inner), 0..5).prop_map(Term::record),
        ]
    })
}

fn arb_pattern() -> impl Strategy<Value = Pattern> {
    let name = || prop_oneof![Just("x"), Just("y"), Just("even")];
    let leaf = prop_oneof![
        Just(Pattern::wildcard()),
        name().prop_map(Pattern::bind),
        arb_term().prop_map(Pattern::lit),
        name().prop_map(|n| Pattern::pred(Predicate::new(n, is_int))),
    ];
    leaf.prop_recursive(4, 32, 4, move |inner| {
        let rest = prop_oneof![Just(Rest::Exact), Just(Rest::Ignore), Just(Rest::bind("r")),];
        prop_oneof![
            (prop::collection::vec(inner.clone(), 0..4), rest.clone())
                .prop_map(|(ps, r)| Pattern::list_rest(ps, r)),
            prop::collection::vec(inner.clone(), 0..4).prop_map(Pattern::tuple),
            (
                prop::collection::vec((arb_key(), inner.clone()), 0..4),
                rest
            )
                .prop_map(|(fs, r)| Pattern::record_rest(fs, r)),
            prop::collection::vec(inner.clone(), 0..3).prop_map(Pattern::and),
            prop::collection::vec(inner.clone(), 0..3).prop_map(Pattern::or),
            inner.clone().prop_map(Pattern::not),
            (name(), inner).prop_map(|(n, p)| Pattern::bind_as(n, p)),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn terms_round_trip(t in arb_term(), tail in prop::collection::vec(any::<u8>(), 0..4)) {
        let bytes = enc(&t);
        let mut input = bytes.clone();
        input.extend_from_slice(&tail);
        let mut cur = &input[..];
        let back = Term::decode_canonical(&mut cur).unwrap();
        prop_assert_eq!(&back, &t);
        // consumed exactly the encoding, left the tail
        prop_assert_eq!(input.len() - cur.len(), t.encoded_len());
        prop_assert_eq!(cur, &tail[..]);
        prop_assert_eq!(enc(&back), bytes);
    }

    #[test]
    fn patterns_round_trip(p in arb_pattern()) {
        let bytes = penc(&p);
        let back = dec().pattern_exact(&bytes).unwrap();
        prop_assert_eq!(&back, &p);
        prop_assert_eq!(back.depth(), p.depth());
        prop_assert_eq!(penc(&back), bytes);
    }

    #[test]
    fn every_truncation_is_an_error(t in arb_term(), p in arb_pattern()) {
        let bytes = enc(&t);
        for cut in 0..bytes.len() {
            let mut input = &bytes[..cut];
            let err = Term::decode_canonical(&mut input).unwrap_err();
            prop_assert!(matches!(err, CanonicalError::Truncated { .. } | CanonicalError::LengthTooLarge { .. }), "{:?}", err);
            prop_assert_eq!(input.len(), cut, "input unchanged on error");
        }
        let bytes = penc(&p);
        for cut in 0..bytes.len() {
            prop_assert!(dec().pattern(&mut &bytes[..cut]).is_err());
        }
    }

    /// Random bytes never panic, and whatever decodes is canonical: it re-encodes to exactly
    /// the bytes consumed.
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut input = &bytes[..];
        if let Ok(t) = Term::decode_canonical(&mut input) {
            let used = bytes.len() - input.len();
            prop_assert_eq!(enc(&t), &bytes[..used]);
        }
        let mut input = &bytes[..];
        if let Ok(p) = dec().pattern(&mut input) {
            let used = bytes.len() - input.len();
            prop_assert_eq!(penc(&p), &bytes[..used]);
        }
    }

    /// Mutating one byte of a valid encoding either fails or decodes to a value whose encoding
    /// is exactly the mutated bytes (canonical) — never a panic, never a silent normalisation.
    #[test]
    fn mutated_encodings_are_rejected_or_canonical(p in arb_pattern(), at in any::<prop::sample::Index>(), b in any::<u8>()) {
        let mut bytes = penc(&p);
        let i = at.index(bytes.len());
        bytes[i] = b;
        if let Ok(q) = dec().pattern_exact(&bytes) {
            prop_assert_eq!(penc(&q), bytes);
        }
        let mut tb = enc(&Term::list([Term::str("ab"), Term::record([("a", 1), ("b", 2)])]));
        let j = at.index(tb.len());
        tb[j] = b;
        if let Ok(t) = CanonicalDecoder::new().term_exact(&tb) {
            prop_assert_eq!(enc(&t), tb);
        }
    }
}

// ---------------------------------------------------------------- typed errors

#[test]
fn scalar_errors() {
    assert_eq!(term_err(&[]), CanonicalError::Truncated { at: 0 });
    assert_eq!(
        term_err(&[0x00]),
        CanonicalError::InvalidTag { at: 0, tag: 0 }
    );
    assert_eq!(
        term_err(&[0x40]),
        CanonicalError::InvalidTag { at: 0, tag: 0x40 }
    );
    assert_eq!(
        term_err(&[0x01, 0x02]),
        CanonicalError::InvalidBool { at: 1, byte: 2 }
    );
    assert_eq!(
        term_err(&[0x03, 0x02, 0xff, 0xfe]),
        CanonicalError::InvalidUtf8 { at: 2 }
    );
    assert_eq!(
        term_err(&[0x01, 0x01, 0x00]),
        CanonicalError::TrailingBytes { at: 2 }
    );
}

#[test]
fn varint_errors() {
    // 1 written as two bytes: 0x81 0x00
    assert_eq!(
        term_err(&[0x05, 0x81, 0x00, 0x01, 0x00]),
        CanonicalError::NonMinimalVarint { at: 1 }
    );
    // 0 written as 0x80 0x00
    assert_eq!(
        term_err(&[0x03, 0x80, 0x00]),
        CanonicalError::NonMinimalVarint { at: 1 }
    );
    // eleven continuation bytes
    let mut b = vec![0x04];
    b.extend([0xff; 11]);
    assert_eq!(term_err(&b), CanonicalError::VarintOverflow { at: 1 });
    // ten bytes whose last carries more than bit 63
    let mut b = vec![0x04];
    b.extend([0xff; 9]);
    b.push(0x02);
    assert_eq!(term_err(&b), CanonicalError::VarintOverflow { at: 1 });
    // u64::MAX is a valid varint, but far larger than the input
    let mut b = vec![0x04];
    b.extend([0xff; 9]);
    b.push(0x01);
    assert_eq!(
        term_err(&b),
        CanonicalError::LengthTooLarge {
            at: 1,
            len: u64::MAX
        }
    );
}

#[test]
fn lengths_beyond_the_input_allocate_nothing() {
    // A list claiming 2^62 items in an 11-byte input fails at once.
    let mut b = vec![0x05];
    b.extend([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40]);
    assert!(matches!(
        term_err(&b),
        CanonicalError::LengthTooLarge { at: 1, .. }
    ));
    // Nested lists each claiming (almost) the whole input: a chain of honest-looking counts
    // that must not make the decoder allocate quadratically. 100,000 levels, fails at the end.
    let n = 100_000usize;
    let mut b = Vec::with_capacity(4 * n);
    for i in 0..n {
        b.push(0x05);
        let claim = (2 * (n - i - 1)) as u64;
        let mut v = claim;
        while v >= 0x80 {
            b.push((v as u8) | 0x80);
            v >>= 7;
        }
        b.push(v as u8);
    }
    assert!(matches!(
        term_err(&b),
        CanonicalError::Truncated { .. } | CanonicalError::LengthTooLarge { .. }
    ));
}

#[test]
fn record_keys_must_ascend_strictly() {
    // {"b": true, "a": true}
    let unsorted = [0x07, 0x02, 0x01, b'b', 0x01, 0x01, 0x01, b'a', 0x01, 0x01];
    assert_eq!(term_err(&unsorted), CanonicalError::UnsortedKeys { at: 6 });
    // {"a": true, "a": true}
    let repeated = [0x07, 0x02, 0x01, b'a', 0x01, 0x01, 0x01, b'a', 0x01, 0x01];
    assert_eq!(term_err(&repeated), CanonicalError::UnsortedKeys { at: 6 });
    // the same inside a record pattern: {"b": _, "a": _, ..}
    let p = [0x46, 0x01, 0x02, 0x01, b'b', 0x40, 0x01, b'a', 0x40];
    assert_eq!(pat_err(&p), CanonicalError::UnsortedKeys { at: 6 });
}

#[test]
fn unfolded_literal_shapes_are_not_canonical() {
    // [1] as a list pattern of one literal: the constructor folds it into the literal [1].
    let lit1 = [0x43, 0x02, 1, 0, 0, 0, 0, 0, 0, 0];
    let mut b = vec![0x44, 0x00, 0x01];
    b.extend(lit1);
    assert_eq!(pat_err(&b), CanonicalError::NotCanonical { at: 0 });
    // the empty exact list, empty tuple and empty closed record fold too
    assert_eq!(
        pat_err(&[0x44, 0x00, 0x00]),
        CanonicalError::NotCanonical { at: 0 }
    );
    assert_eq!(
        pat_err(&[0x45, 0x00]),
        CanonicalError::NotCanonical { at: 0 }
    );
    assert_eq!(
        pat_err(&[0x46, 0x00, 0x00]),
        CanonicalError::NotCanonical { at: 0 }
    );
    // a tuple of one literal, nested below a not
    let mut b = vec![0x49, 0x45, 0x01];
    b.extend(lit1);
    assert_eq!(pat_err(&b), CanonicalError::NotCanonical { at: 1 });
    // but an open list of literals is a real pattern: [1, ..]
    let mut b = vec![0x44, 0x01, 0x01];
    b.extend(lit1);
    assert_eq!(
        dec().pattern_exact(&b).unwrap(),
        Pattern::list_rest([Pattern::lit(1)], Rest::Ignore)
    );
    // and so are the empty and and or
    assert_eq!(
        dec().pattern_exact(&[0x47, 0x00]).unwrap(),
        Pattern::and([])
    );
    assert_eq!(dec().pattern_exact(&[0x48, 0x00]).unwrap(), Pattern::or([]));
}

#[test]
fn pattern_tag_errors() {
    assert_eq!(
        pat_err(&[0x01, 0x01]),
        CanonicalError::InvalidTag { at: 0, tag: 1 }
    );
    assert_eq!(
        pat_err(&[0x4B]),
        CanonicalError::InvalidTag { at: 0, tag: 0x4B }
    );
    // a literal must hold a term, not a pattern
    assert_eq!(
        pat_err(&[0x43, 0x40]),
        CanonicalError::InvalidTag { at: 1, tag: 0x40 }
    );
    assert_eq!(
        pat_err(&[0x44, 0x03, 0x00]),
        CanonicalError::InvalidRest { at: 1, byte: 3 }
    );
}

#[test]
fn predicates_need_a_resolver_that_knows_the_name() {
    let p = Pattern::pred(Predicate::new("even", is_int));
    let bytes = penc(&p);
    assert_eq!(dec().pattern_exact(&bytes).unwrap(), p);
    assert_eq!(
        Pattern::decode_canonical(&mut &bytes[..]).unwrap_err(),
        CanonicalError::UnknownPredicate {
            at: 0,
            name: "even".into()
        }
    );
    let unknown = penc(&Pattern::predicate("odd", is_int));
    assert!(matches!(
        pat_err(&unknown),
        CanonicalError::UnknownPredicate { .. }
    ));
    // a resolver that answers with a differently named predicate is not trusted
    let liar = |_: &str| Some(Predicate::new("other", is_int));
    let err = CanonicalDecoder::new()
        .predicates(&liar)
        .pattern_exact(&bytes)
        .unwrap_err();
    assert!(matches!(err, CanonicalError::UnknownPredicate { .. }));
}

#[test]
fn depth_limit_counts_every_level() {
    let t = Term::list([Term::list([1])]);
    assert!(CanonicalDecoder::new()
        .max_depth(3)
        .term_exact(&enc(&t))
        .is_ok());
    assert_eq!(
        CanonicalDecoder::new()
            .max_depth(2)
            .term_exact(&enc(&t))
            .unwrap_err(),
        CanonicalError::TooDeep { at: 4, limit: 2 }
    );
    // !!_ is three levels; a literal adds its term's levels below its own
    let p = Pattern::not(Pattern::not(Pattern::wildcard()));
    assert!(dec().max_depth(3).pattern_exact(&penc(&p)).is_ok());
    assert!(dec().max_depth(2).pattern_exact(&penc(&p)).is_err());
    let lit = Pattern::not(Pattern::lit(Term::list([1])));
    assert!(dec().max_depth(4).pattern_exact(&penc(&lit)).is_ok());
    assert!(dec().max_depth(3).pattern_exact(&penc(&lit)).is_err());
    assert!(dec().max_depth(0).pattern_exact(&[0x40]).is_err());
}

// ---------------------------------------------------------------- deep inputs

/// Runs `f` on a thread with a 256 KiB stack: recursion per level would overflow it.
fn small_stack<F: FnOnce() + Send + 'static>(f: F) {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("no stack overflow");
}

#[test]
fn deep_terms_and_patterns_decode_on_a_small_stack() {
    small_stack(|| {
        const DEPTH: usize = 100_000;
        let mut t = Term::int(7);
        for i in 0..DEPTH {
            t = match i % 3 {
                0 => Term::list([t]),
                1 => Term::tuple([Term::bool(true), t]),
                _ => Term::record([("k", t)]),
            };
        }
        let bytes = enc(&t);
        let back = CanonicalDecoder::new().term_exact(&bytes).unwrap();
        assert!(back == t);
        assert_eq!(back.depth(), DEPTH + 1);

        let mut p = Pattern::bind("x");
        for i in 0..DEPTH {
            p = match i % 4 {
                0 => Pattern::not(p),
                1 => Pattern::list_rest([p], Rest::Ignore),
                2 => Pattern::bind_as("y", p),
                _ => Pattern::open_record([("k", p)]),
            };
        }
        let bytes = penc(&p);
        let back = dec().pattern_exact(&bytes).unwrap();
        assert_eq!(back.depth(), p.depth());
        assert!(back == p);
        assert_eq!(penc(&back), bytes);
    });
}

#[test]
fn decoding_continues_after_a_value() {
    let mut bytes = enc(&Term::int(1));
    bytes.extend(penc(&Pattern::bind("x")));
    bytes.extend(enc(&Term::str("z")));
    let mut input = &bytes[..];
    assert_eq!(Term::decode_canonical(&mut input).unwrap(), Term::int(1));
    assert_eq!(
        Pattern::decode_canonical(&mut input).unwrap(),
        Pattern::bind("x")
    );
    // a pattern decoder refuses a term tag and leaves the input where it was
    let before = input;
    assert!(Pattern::decode_canonical(&mut input).is_err());
    assert_eq!(input, before);
    assert_eq!(Term::decode_canonical(&mut input).unwrap(), Term::str("z"));
    assert!(input.is_empty());
}
