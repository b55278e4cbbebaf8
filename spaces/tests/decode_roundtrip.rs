//! `Decode` is the inverse of `Encode`: proptest round trips for every built-in type (the value
//! comes back and exactly `encoded_len` bytes are consumed), truncations are errors, and random
//! bytes never panic (and, when they decode, are canonical).

use std::fmt::Debug;
use std::sync::Arc;

use proptest::prelude::*;
use rhospace_matchers::{Pattern, Rest, Term};
use rhospace_spaces::{decode_exact, Decode, DecodeError, Encode};

fn enc<T: Encode + ?Sized>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    v.encode(&mut out);
    out
}

/// Round trip with a trailing byte: the value comes back, exactly `encoded_len` bytes are
/// consumed, and every proper prefix fails.
fn check<T: Encode + Decode + PartialEq + Debug>(v: &T) -> Result<(), TestCaseError> {
    let bytes = enc(v);
    prop_assert_eq!(bytes.len(), v.encoded_len());
    let mut input = bytes.clone();
    input.push(0xA5);
    let mut cur = &input[..];
    let back = T::decode(&mut cur).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, v);
    prop_assert_eq!(cur, &[0xA5][..]);
    let exact = decode_exact::<T>(&bytes);
    prop_assert_eq!(exact.as_ref(), Ok(v));
    for cut in 0..bytes.len() {
        prop_assert!(
            decode_exact::<T>(&bytes[..cut]).is_err(),
            "prefix {} decoded",
            cut
        );
    }
    Ok(())
}

fn arb_term() -> impl Strategy<Value = Term> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Term::int),
        "\\PC{0,4}".prop_map(Term::str),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(Term::bytes),
        any::<bool>().prop_map(Term::bool),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Term::list),
            prop::collection::vec(inner.clone(), 0..4).prop_map(Term::tuple),
            prop::collection::vec(("[a-c]{0,2}", inner), 0..4).prop_map(Term::record),
        ]
    })
}

fn arb_pattern() -> impl Strategy<Value = Pattern> {
    let leaf = prop_oneof![
        Just(Pattern::wildcard()),
        "[xy]".prop_map(Pattern::bind),
        arb_term().prop_map(Pattern::lit),
    ];
    leaf.prop_recursive(3, 24, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3)
                .prop_map(|ps| Pattern::list_rest(ps, Rest::bind("r"))),
            prop::collection::vec(inner.clone(), 0..3).prop_map(Pattern::tuple),
            prop::collection::vec(("[a-c]", inner.clone()), 0..3).prop_map(Pattern::record),
            prop::collection::vec(inner.clone(), 0..3).prop_map(Pattern::or),
            inner.prop_map(Pattern::not),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn integers(a in any::<u8>(), b in any::<u16>(), c in any::<u32>(), d in any::<u64>(),
                e in any::<u128>(), f in any::<i8>(), g in any::<i16>(), h in any::<i32>(),
                i in any::<i64>(), j in any::<i128>(), k in any::<usize>(), l in any::<isize>()) {
        check(&a)?; check(&b)?; check(&c)?; check(&d)?; check(&e)?; check(&f)?;
        check(&g)?; check(&h)?; check(&i)?; check(&j)?; check(&k)?; check(&l)?;
    }

    #[test]
    fn bools_chars_strings(b in any::<bool>(), c in any::<char>(), s in "\\PC{0,40}") {
        check(&b)?;
        check(&c)?;
        check(&s)?;
        check(&Box::<str>::from(s.as_str()))?;
        check(&Arc::<str>::from(s.as_str()))?;
    }

    #[test]
    fn containers(v in prop::collection::vec(any::<u32>(), 0..300),
                  o in any::<Option<i16>>(),
                  nested in prop::collection::vec(prop::collection::vec(any::<Option<bool>>(), 0..4), 0..4),
                  t in (any::<u8>(), "[a-z]{0,3}", any::<Option<char>>())) {
        check(&v)?;
        check(&Box::<[u32]>::from(v.as_slice()))?;
        check(&Arc::<[u32]>::from(v.as_slice()))?;
        check(&o)?;
        check(&Box::new(o))?;
        check(&Arc::new(o))?;
        check(&nested)?;
        check(&t)?;
        check(&(t.1.clone(), v.clone()))?;
    }

    #[test]
    fn terms_and_patterns(t in arb_term(), p in arb_pattern()) {
        check(&t)?;
        check(&p)?;
        check(&(vec![t.clone()], Some(p.clone())))?;
    }

    /// Random bytes never panic; a successful decode is canonical (re-encodes to the bytes).
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..48)) {
        fn probe<T: Encode + Decode>(bytes: &[u8]) -> Result<(), TestCaseError> {
            if let Ok(v) = decode_exact::<T>(bytes) {
                prop_assert_eq!(enc(&v), bytes);
            }
            Ok(())
        }
        probe::<String>(&bytes)?;
        probe::<Vec<Option<u16>>>(&bytes)?;
        probe::<(bool, char, Vec<u8>)>(&bytes)?;
        probe::<Vec<Vec<String>>>(&bytes)?;
        probe::<Term>(&bytes)?;
        probe::<Pattern>(&bytes)?;
        probe::<(Term, Vec<Pattern>)>(&bytes)?;
    }
}

#[test]
fn predicates_cannot_be_decoded_without_a_resolver() {
    let p = Pattern::predicate("even", |t: &Term| t.as_int().is_some_and(|i| i % 2 == 0));
    assert!(matches!(
        decode_exact::<Pattern>(&enc(&p)),
        Err(DecodeError::Canonical(_))
    ));
}

#[test]
fn values_concatenate_without_separators() {
    let mut bytes = Vec::new();
    "ab".encode(&mut bytes);
    7u16.encode(&mut bytes);
    Term::list([1]).encode(&mut bytes);
    let mut input = &bytes[..];
    assert_eq!(String::decode(&mut input).unwrap(), "ab");
    assert_eq!(u16::decode(&mut input).unwrap(), 7);
    assert_eq!(Term::decode(&mut input).unwrap(), Term::list([1]));
    assert!(input.is_empty());
}
