//! Integration tests of the structural matcher: the pattern language, the `exact_key`
//! contract, a naive reference model, and deep inputs.

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use proptest::prelude::*;
use rhospace_matchers::{
    Bindings, Match, Pattern, Predicate, Rest, StructuralMatch, Term, MAX_PATTERN_DEPTH,
};

fn get(p: &Pattern, t: &Term) -> Option<Bindings> {
    StructuralMatch.get(p, t)
}

fn hash_of<T: Hash>(t: &T) -> u64 {
    let mut h = DefaultHasher::new();
    t.hash(&mut h);
    h.finish()
}

fn w() -> Pattern {
    Pattern::wildcard()
}

fn x(name: &str) -> Pattern {
    Pattern::bind(name)
}

fn lit(t: impl Into<Term>) -> Pattern {
    Pattern::lit(t)
}

// ---------------------------------------------------------------- the pattern language

#[test]
fn wildcard_matches_every_kind_and_binds_nothing() {
    let terms = [
        Term::int(0),
        Term::str(""),
        Term::bytes(*b"x"),
        Term::bool(true),
        Term::list([1]),
        Term::tuple([1, 2]),
        Term::record([("a", 1)]),
    ];
    for t in &terms {
        assert!(get(&w(), t).expect("wildcard matches").is_empty());
    }
}

#[test]
fn binder_captures_sub_terms() {
    let t = Term::tuple([Term::str("ok"), Term::list([1, 2])]);
    let b = get(&Pattern::tuple([w(), x("v")]), &t).expect("match");
    assert_eq!(b.get("v"), Some(&Term::list([1, 2])));
    assert_eq!(b.len(), 1);
}

#[test]
fn repeated_binder_requires_equal_terms() {
    let p = Pattern::list([x("x"), x("x")]);
    assert!(get(&p, &Term::list([1, 1])).is_some());
    assert!(get(&p, &Term::list([1, 2])).is_none());
    // equal compound terms built separately
    let a = Term::record([("k", Term::list([1, 2])), ("j", Term::str("s"))]);
    let b = Term::record([("j", Term::str("s")), ("k", Term::list([1, 2]))]);
    let t = Term::list([a.clone(), b]);
    assert_eq!(get(&p, &t).expect("equal records").get("x"), Some(&a));
    // across nesting levels and shapes
    let q = Pattern::tuple([x("x"), Pattern::open_record([("k", x("x"))])]);
    assert!(get(
        &q,
        &Term::tuple([Term::int(5), Term::record([("k", 5), ("z", 0)])])
    )
    .is_some());
    assert!(get(&q, &Term::tuple([Term::int(5), Term::record([("k", 6)])])).is_none());
    // different kinds never equal
    assert!(get(&p, &Term::list([Term::int(1), Term::str("1")])).is_none());
    assert!(get(&p, &Term::list([Term::list([1]), Term::tuple([1])])).is_none());
}

#[test]
fn literals_of_each_type() {
    let cases = [
        (Term::int(-7), Term::int(7)),
        (Term::str("orders"), Term::str("orderz")),
        (Term::bytes(*b"\x00\xff"), Term::bytes(*b"\x00\xfe")),
        (Term::bool(true), Term::bool(false)),
        (Term::list([1, 2]), Term::list([1, 2, 3])),
        (Term::tuple([1, 2]), Term::tuple([2, 1])),
        (Term::record([("a", 1)]), Term::record([("a", 1), ("b", 2)])),
    ];
    for (k, other) in &cases {
        let p = lit(k.clone());
        assert!(get(&p, k).expect("equal literal").is_empty(), "{k:?}");
        assert!(get(&p, other).is_none(), "{k:?} vs {other:?}");
        assert_eq!(StructuralMatch.exact_key(&p), Some(k));
    }
    // A literal never matches a term of another kind.
    assert!(get(&lit(1), &Term::str("1")).is_none());
    assert!(get(&lit(Term::bytes(*b"a")), &Term::str("a")).is_none());
    assert!(get(&lit(Term::list([1])), &Term::tuple([1])).is_none());
}

#[test]
fn nested_lists_tuples_records() {
    // {"user": {"name": n, "tags": [first, ..]}, "ok": true}
    let p = Pattern::record([
        (
            "user",
            Pattern::record([
                ("name", x("n")),
                ("tags", Pattern::list_rest([x("first")], Rest::Ignore)),
            ]),
        ),
        ("ok", lit(true)),
    ]);
    let t = Term::record([
        ("ok", Term::bool(true)),
        (
            "user",
            Term::record([("tags", Term::list(["a", "b"])), ("name", Term::str("ann"))]),
        ),
    ]);
    let b = get(&p, &t).expect("match");
    assert_eq!(b.get("n"), Some(&Term::str("ann")));
    assert_eq!(b.get("first"), Some(&Term::str("a")));
    let names: Vec<&str> = b.names().collect();
    assert_eq!(names, ["first", "n"]);

    let no_tags = Term::record([
        ("ok", Term::bool(true)),
        (
            "user",
            Term::record([
                ("tags", Term::list(Vec::<Term>::new())),
                ("name", Term::str("a")),
            ]),
        ),
    ]);
    assert!(get(&p, &no_tags).is_none());

    let tup = Pattern::tuple([Pattern::tuple([x("a"), w()]), Pattern::list([x("b")])]);
    let b = get(&tup, &Term::tuple([Term::tuple([1, 2]), Term::list([3])])).expect("match");
    assert_eq!(
        (b.get("a"), b.get("b")),
        (Some(&Term::int(1)), Some(&Term::int(3)))
    );
    // wrong arity, wrong kind
    assert!(get(
        &tup,
        &Term::tuple([Term::tuple([1, 2, 3]), Term::list([3])])
    )
    .is_none());
    assert!(get(&tup, &Term::list([Term::tuple([1, 2]), Term::list([3])])).is_none());
}

#[test]
fn records_closed_open_and_rest() {
    let t = Term::record([("a", 1), ("b", 2), ("c", 3)]);
    let closed = Pattern::record([("a", x("a")), ("b", w())]);
    assert!(
        get(&closed, &t).is_none(),
        "closed record rejects extra fields"
    );
    let closed_all = Pattern::record([("c", w()), ("a", x("a")), ("b", w())]);
    assert!(get(&closed_all, &t).is_some());
    let open = Pattern::open_record([("a", x("a")), ("b", w())]);
    assert_eq!(get(&open, &t).expect("open").get("a"), Some(&Term::int(1)));
    let missing = Pattern::open_record([("a", w()), ("zz", w())]);
    assert!(get(&missing, &t).is_none());
    let rest = Pattern::record_rest([("b", w())], Rest::bind("r"));
    assert_eq!(
        get(&rest, &t).expect("rest").get("r"),
        Some(&Term::record([("a", 1), ("c", 3)]))
    );
    let all_rest = Pattern::record_rest(Vec::<(&str, Pattern)>::new(), Rest::bind("r"));
    assert_eq!(get(&all_rest, &t).expect("rest").get("r"), Some(&t));
    // a record pattern does not match a non-record
    assert!(get(&open, &Term::list([1])).is_none());
}

#[test]
fn list_rest_binders() {
    let p = Pattern::list_rest([x("a"), x("b")], Rest::bind("rest"));
    let b = get(&p, &Term::list([1, 2, 3, 4])).expect("match");
    assert_eq!(b.get("rest"), Some(&Term::list([3, 4])));
    let b = get(&p, &Term::list([1, 2])).expect("exact length ok");
    assert_eq!(b.get("rest"), Some(&Term::list(Vec::<Term>::new())));
    assert!(get(&p, &Term::list([1])).is_none());
    // rest binder equal to an element binder: [x, ..x] can never hold for finite lists,
    // but [..r] binds the whole list.
    let whole = Pattern::list_rest([], Rest::bind("r"));
    assert_eq!(
        get(&whole, &Term::list([9])).expect("m").get("r"),
        Some(&Term::list([9]))
    );
    let ign = Pattern::list_rest([lit(1)], Rest::Ignore);
    assert!(get(&ign, &Term::list([1])).is_some());
    assert!(get(&ign, &Term::list([1, 5, 6])).is_some());
    assert!(get(&ign, &Term::tuple([1, 5])).is_none());
}

#[test]
fn and_or_not_predicate() {
    let even = Predicate::new("even", |t: &Term| t.as_int().is_some_and(|i| i % 2 == 0));
    let p = Pattern::and([x("n"), Pattern::pred(even.clone())]);
    assert_eq!(
        get(&p, &Term::int(4)).expect("m").get("n"),
        Some(&Term::int(4))
    );
    assert!(get(&p, &Term::int(3)).is_none());
    assert!(get(&Pattern::and([]), &Term::int(3)).is_some());

    // or: first matching branch provides the bindings
    let o = Pattern::or([
        Pattern::tuple([lit("a"), x("a")]),
        Pattern::tuple([x("any"), x("b")]),
        Pattern::tuple([w(), x("c")]),
    ]);
    let b = get(&o, &Term::tuple([Term::str("a"), Term::int(1)])).expect("m");
    assert_eq!(b.names().collect::<Vec<_>>(), ["a"]);
    let b = get(&o, &Term::tuple([Term::str("z"), Term::int(1)])).expect("m");
    assert_eq!(b.names().collect::<Vec<_>>(), ["any", "b"]);
    assert!(get(&Pattern::or([]), &Term::int(1)).is_none());

    // or commits: [x @ (1 | _), x] — first branch binds x=1, later x=2 fails, no retry.
    let commit = Pattern::list([Pattern::bind_as("x", Pattern::or([lit(1), w()])), x("x")]);
    assert!(get(&commit, &Term::list([1, 1])).is_some());
    assert!(get(&commit, &Term::list([1, 2])).is_none());

    // not: no bindings escape; a name bound before is compared.
    let n = Pattern::tuple([Pattern::not(Pattern::tuple([x("y"), lit(0)])), x("y")]);
    let b = get(&n, &Term::tuple([Term::tuple([1, 1]), Term::int(5)])).expect("m");
    assert_eq!(b.get("y"), Some(&Term::int(5)));
    let distinct = Pattern::list([x("x"), Pattern::not(x("x"))]);
    assert!(get(&distinct, &Term::list([1, 2])).is_some());
    assert!(get(&distinct, &Term::list([1, 1])).is_none());
    assert!(get(&Pattern::not(w()), &Term::int(1)).is_none());

    // predicates compose inside shapes and see the sub-term
    let p = Pattern::open_record([(
        "n",
        Pattern::predicate("big", |t: &Term| t.as_int().is_some_and(|i| i > 10)),
    )]);
    assert!(get(&p, &Term::record([("n", 11)])).is_some());
    assert!(get(&p, &Term::record([("n", 10)])).is_none());
}

#[test]
fn binder_with_sub_pattern() {
    // x @ [_, 1]
    let p = Pattern::bind_as("x", Pattern::list([w(), lit(1)]));
    assert_eq!(
        get(&p, &Term::list([0, 1])).expect("m").get("x"),
        Some(&Term::list([0, 1]))
    );
    assert!(get(&p, &Term::list([0, 2])).is_none());
    // x @ [y, ..]  binds both
    let p = Pattern::bind_as("x", Pattern::list_rest([x("y")], Rest::Ignore));
    let b = get(&p, &Term::list([4, 5])).expect("m");
    assert_eq!(
        (b.get("x"), b.get("y")),
        (Some(&Term::list([4, 5])), Some(&Term::int(4)))
    );
}

#[test]
fn records_in_any_construction_order_are_identical() {
    let a = Term::record([
        ("c", Term::int(3)),
        ("a", Term::str("x")),
        ("b", Term::list([1])),
    ]);
    let b = Term::record([
        ("b", Term::list([1])),
        ("c", Term::int(3)),
        ("a", Term::str("x")),
    ]);
    assert_eq!(a, b);
    assert_eq!(a.cmp(&b), std::cmp::Ordering::Equal);
    assert_eq!(hash_of(&a), hash_of(&b));
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    let pa = Pattern::open_record([("c", x("c")), ("a", w())]);
    let pb = Pattern::open_record([("a", w()), ("c", x("c"))]);
    assert_eq!(pa, pb);
    assert_eq!(hash_of(&pa), hash_of(&pb));
    assert_eq!(get(&pa, &a), get(&pb, &b));
}

#[test]
fn predicate_identity_is_its_name() {
    let a = Pattern::predicate("p", |_: &Term| true);
    let b = Pattern::predicate("p", |_: &Term| true);
    let c = Pattern::predicate("q", |_: &Term| true);
    assert_eq!(a, b);
    assert_eq!(hash_of(&a), hash_of(&b));
    assert_ne!(a, c);
    assert_eq!(format!("{a:?}"), "?p");
}

#[test]
fn bindings_are_deterministic_and_ordered() {
    let p1 = Pattern::tuple([x("b"), x("a"), x("c")]);
    let p2 = Pattern::tuple([x("c"), x("a"), x("b")]);
    let t = Term::tuple([1, 2, 3]);
    let b1 = get(&p1, &t).expect("m");
    let b2 = get(&p2, &t).expect("m");
    assert_eq!(b1.names().collect::<Vec<_>>(), ["a", "b", "c"]);
    assert_eq!(format!("{b1:?}"), "{a: 2, b: 1, c: 3}");
    assert_ne!(b1, b2);
    let owned: Vec<(Arc<str>, Term)> = b1.clone().into_iter().collect();
    assert_eq!(owned.len(), 3);
    assert_eq!(&*owned[0].0, "a");
    assert!(b1.contains("c") && !b1.contains("d"));
}

// ---------------------------------------------------------------- proptest strategies

fn arb_term() -> impl Strategy<Value = Term> {
    let leaf = prop_oneof![
        (-3i64..3).prop_map(Term::int),
        prop_oneof![Just("a"), Just("b"), Just("")].prop_map(Term::str),
        prop::collection::vec(0u8..3, 0..3).prop_map(Term::bytes),
        any::<bool>().prop_map(Term::bool),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Term::list),
            prop::collection::vec(inner.clone(), 0..4).prop_map(Term::tuple),
            prop::collection::vec((prop_oneof![Just("k"), Just("l"), Just("m")], inner), 0..4)
                .prop_map(Term::record),
        ]
    })
}

/// A term and a second term that is often equal to it, often a small mutation of it.
fn arb_term_pair() -> impl Strategy<Value = (Term, Term)> {
    prop_oneof![
        arb_term().prop_map(|t| (t.clone(), t)),
        (arb_term(), arb_term()),
        arb_term().prop_map(|t| {
            let other = Term::list([t.clone()]);
            (t, other)
        }),
        arb_term().prop_map(|t| {
            // rebuild structurally (fresh Arcs, records in reverse order): equal, not shared
            let u = rebuild(&t);
            (t, u)
        }),
    ]
}

/// Rebuilds a term bottom-up with fresh allocations and records given in reverse order.
fn rebuild(t: &Term) -> Term {
    match t {
        Term::List(xs) => Term::list(xs.iter().map(rebuild)),
        Term::Tuple(xs) => Term::tuple(xs.iter().map(rebuild)),
        Term::Record(r) => Term::record(
            r.iter()
                .rev()
                .map(|(k, v)| (k.to_string(), rebuild(v)))
                .collect::<Vec<_>>(),
        ),
        Term::Str(s) => Term::str(s.to_string()),
        other => other.clone(),
    }
}

/// Lifts a term into a pattern through the shape constructors (all literal leaves).
fn lift(t: &Term) -> Pattern {
    match t {
        Term::List(xs) => Pattern::list(xs.iter().map(lift)),
        Term::Tuple(xs) => Pattern::tuple(xs.iter().map(lift)),
        Term::Record(r) => Pattern::record(r.iter().map(|(k, v)| (k, lift(v)))),
        leaf => Pattern::lit(leaf.clone()),
    }
}

/// A pattern with the term's shape and a distinct binder at every node, named by its path;
/// records the expected binding of every name.
fn bind_everywhere(t: &Term, path: &str, expect: &mut BTreeMap<String, Term>) -> Pattern {
    expect.insert(path.to_string(), t.clone());
    let shape = match t {
        Term::List(xs) => Pattern::list(
            xs.iter()
                .enumerate()
                .map(|(i, c)| bind_everywhere(c, &format!("{path}.{i}"), expect)),
        ),
        Term::Tuple(xs) => Pattern::tuple(
            xs.iter()
                .enumerate()
                .map(|(i, c)| bind_everywhere(c, &format!("{path}.{i}"), expect)),
        ),
        Term::Record(r) => Pattern::record(
            r.iter()
                .map(|(k, c)| (k, bind_everywhere(c, &format!("{path}.{k}"), expect)))
                .collect::<Vec<_>>(),
        ),
        _ => return Pattern::bind(path),
    };
    Pattern::bind_as(path, shape)
}

/// Random patterns over the same small vocabulary as `arb_term`, with binders from a tiny
/// name set so repeats are common.
fn arb_pattern() -> impl Strategy<Value = Pattern> {
    let leaf = prop_oneof![
        Just(Pattern::wildcard()),
        prop_oneof![Just("x"), Just("y")].prop_map(Pattern::bind),
        arb_term().prop_map(Pattern::lit),
        Just(Pattern::predicate("is_int", |t: &Term| t
            .as_int()
            .is_some())),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        let rest = prop_oneof![
            Just(Rest::Exact),
            Just(Rest::Ignore),
            Just(Rest::bind("r")),
            Just(Rest::bind("x")),
        ];
        prop_oneof![
            (prop::collection::vec(inner.clone(), 0..3), rest.clone())
                .prop_map(|(ps, r)| Pattern::list_rest(ps, r)),
            prop::collection::vec(inner.clone(), 0..3).prop_map(Pattern::tuple),
            (
                prop::collection::vec((prop_oneof![Just("k"), Just("l")], inner.clone()), 0..3),
                rest
            )
                .prop_map(|(fs, r)| Pattern::record_rest(fs, r)),
            prop::collection::vec(inner.clone(), 0..3).prop_map(Pattern::and),
            prop::collection::vec(inner.clone(), 0..3).prop_map(Pattern::or),
            inner.clone().prop_map(Pattern::not),
            (prop_oneof![Just("x"), Just("y")], inner).prop_map(|(n, p)| Pattern::bind_as(n, p)),
        ]
    })
}

// ---------------------------------------------------------------- reference model

/// A deliberately naive pattern: a plain recursive enum mirrored from the real one.
#[derive(Clone, Debug)]
enum Model {
    Any,
    Bind(String, Option<Box<Model>>),
    Lit(Term),
    List(Vec<Model>, Rest),
    Tuple(Vec<Model>),
    Record(Vec<(String, Model)>, Rest),
    And(Vec<Model>),
    Or(Vec<Model>),
    Not(Box<Model>),
    IsInt,
}

/// Builds both the real pattern and its model from the same random description.
fn arb_model() -> impl Strategy<Value = Model> {
    let leaf = prop_oneof![
        Just(Model::Any),
        prop_oneof![Just("x"), Just("y")].prop_map(|n| Model::Bind(n.into(), None)),
        arb_term().prop_map(Model::Lit),
        Just(Model::IsInt),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        let rest = prop_oneof![
            Just(Rest::Exact),
            Just(Rest::Ignore),
            Just(Rest::bind("r")),
            Just(Rest::bind("x")),
        ];
        prop_oneof![
            (prop::collection::vec(inner.clone(), 0..3), rest.clone())
                .prop_map(|(ps, r)| Model::List(ps, r)),
            prop::collection::vec(inner.clone(), 0..3).prop_map(Model::Tuple),
            (
                prop::collection::vec(
                    (
                        prop_oneof![Just("k".to_string()), Just("l".to_string())],
                        inner.clone()
                    ),
                    0..3
                ),
                rest
            )
                .prop_map(|(fs, r)| Model::Record(fs, r)),
            prop::collection::vec(inner.clone(), 0..3).prop_map(Model::And),
            prop::collection::vec(inner.clone(), 0..3).prop_map(Model::Or),
            inner.clone().prop_map(|m| Model::Not(Box::new(m))),
            (prop_oneof![Just("x"), Just("y")], inner)
                .prop_map(|(n, m)| Model::Bind(n.into(), Some(Box::new(m)))),
        ]
    })
}

fn to_pattern(m: &Model) -> Pattern {
    match m {
        Model::Any => Pattern::wildcard(),
        Model::Bind(n, None) => Pattern::bind(n.as_str()),
        Model::Bind(n, Some(s)) => Pattern::bind_as(n.as_str(), to_pattern(s)),
        Model::Lit(t) => Pattern::lit(t.clone()),
        Model::List(ps, r) => Pattern::list_rest(ps.iter().map(to_pattern), r.clone()),
        Model::Tuple(ps) => Pattern::tuple(ps.iter().map(to_pattern)),
        Model::Record(fs, r) => Pattern::record_rest(
            fs.iter()
                .map(|(k, p)| (k.as_str(), to_pattern(p)))
                .collect::<Vec<_>>(),
            r.clone(),
        ),
        Model::And(ps) => Pattern::and(ps.iter().map(to_pattern)),
        Model::Or(ps) => Pattern::or(ps.iter().map(to_pattern)),
        Model::Not(p) => Pattern::not(to_pattern(p)),
        Model::IsInt => Pattern::predicate("is_int", |t: &Term| t.as_int().is_some()),
    }
}

type Env = BTreeMap<String, Term>;

fn model_bind(name: &str, t: Term, env: Env) -> Option<Env> {
    let mut env = env;
    match env.get(name) {
        Some(old) => (*old == t).then_some(env),
        None => {
            env.insert(name.to_string(), t);
            Some(env)
        }
    }
}

/// Naive matcher: recursive, clones the environment at every step, records deduplicated by
/// "last key wins" and searched linearly.
fn model_match(m: &Model, t: &Term, env: Env) -> Option<Env> {
    match m {
        Model::Any => Some(env),
        Model::IsInt => t.as_int().map(|_| env),
        Model::Lit(k) => (k == t).then_some(env),
        Model::Bind(n, sub) => {
            let env = match sub {
                Some(s) => model_match(s, t, env)?,
                None => env,
            };
            model_bind(n, t.clone(), env)
        }
        Model::List(ps, rest) => {
            let xs = t.as_list()?;
            let ok_len = match rest {
                Rest::Exact => xs.len() == ps.len(),
                _ => xs.len() >= ps.len(),
            };
            if !ok_len {
                return None;
            }
            let mut env = env;
            for (p, x) in ps.iter().zip(xs) {
                env = model_match(p, x, env)?;
            }
            match rest {
                Rest::Bind(n) => model_bind(n, Term::list(xs[ps.len()..].to_vec()), env),
                _ => Some(env),
            }
        }
        Model::Tuple(ps) => {
            let xs = t.as_tuple()?;
            if xs.len() != ps.len() {
                return None;
            }
            let mut env = env;
            for (p, x) in ps.iter().zip(xs) {
                env = model_match(p, x, env)?;
            }
            Some(env)
        }
        Model::Record(fs, rest) => {
            let r = t.as_record()?;
            // dedup, last wins, then key order
            let mut dedup: BTreeMap<&str, &Model> = BTreeMap::new();
            for (k, p) in fs {
                dedup.insert(k, p);
            }
            if matches!(rest, Rest::Exact) && r.len() != dedup.len() {
                return None;
            }
            let mut env = env;
            for (k, p) in &dedup {
                let v = r.iter().find(|(rk, _)| rk == k)?.1;
                env = model_match(p, v, env)?;
            }
            match rest {
                Rest::Bind(n) => {
                    let others: Vec<(String, Term)> = r
                        .iter()
                        .filter(|(k, _)| !dedup.contains_key(k))
                        .map(|(k, v)| (k.to_string(), v.clone()))
                        .collect();
                    model_bind(n, Term::record(others), env)
                }
                _ => Some(env),
            }
        }
        Model::And(ps) => {
            let mut env = env;
            for p in ps {
                env = model_match(p, t, env)?;
            }
            Some(env)
        }
        Model::Or(ps) => ps.iter().find_map(|p| model_match(p, t, env.clone())),
        Model::Not(p) => match model_match(p, t, env.clone()) {
            Some(_) => None,
            None => Some(env),
        },
    }
}

/// A term shaped to fit `m` (it may still fail on repeated binders, `not` or predicates),
/// steered by `c` and drawing free sub-terms from `pool`.
fn witness(m: &Model, c: &mut impl Iterator<Item = u8>, pool: &[Term]) -> Term {
    let pick =
        |c: &mut dyn Iterator<Item = u8>| pool[c.next().unwrap_or(0) as usize % pool.len()].clone();
    match m {
        Model::Any | Model::Bind(_, None) => pick(c),
        // Fitting the inner pattern (most of the time with a slip somewhere, see `Lit`)
        // exercises partial matches inside `not`.
        Model::Not(inner) if c.next().unwrap_or(0).is_multiple_of(2) => witness(inner, c, pool),
        Model::Not(_) => pick(c),
        // Occasionally a slip, so that a shape fits only partly.
        Model::Lit(_) if c.next().unwrap_or(0).is_multiple_of(4) => pick(c),
        Model::IsInt => Term::int(i64::from(c.next().unwrap_or(0) % 3)),
        Model::Lit(t) => t.clone(),
        Model::Bind(_, Some(s)) => witness(s, c, pool),
        Model::List(ps, rest) => {
            let mut v: Vec<Term> = ps.iter().map(|p| witness(p, c, pool)).collect();
            if !matches!(rest, Rest::Exact) {
                for _ in 0..c.next().unwrap_or(0) % 3 {
                    v.push(pick(c));
                }
            }
            Term::list(v)
        }
        Model::Tuple(ps) => Term::tuple(ps.iter().map(|p| witness(p, c, pool)).collect::<Vec<_>>()),
        Model::Record(fs, rest) => {
            let mut v: Vec<(String, Term)> = fs
                .iter()
                .map(|(k, p)| (k.clone(), witness(p, c, pool)))
                .collect();
            if !matches!(rest, Rest::Exact) && c.next().unwrap_or(0).is_multiple_of(2) {
                v.insert(0, ("m".to_string(), pick(c)));
            }
            Term::record(v)
        }
        Model::And(ps) => match ps.first() {
            Some(p) => witness(p, c, pool),
            None => pick(c),
        },
        Model::Or(ps) => match ps.len() {
            0 => pick(c),
            n => witness(&ps[c.next().unwrap_or(0) as usize % n], c, pool),
        },
    }
}

fn as_map(b: &Bindings) -> Env {
    b.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// The term at a dotted path below `t` (used to check binder-everywhere results).
fn contains_exactly(expect: &BTreeMap<String, Term>, b: &Bindings) -> bool {
    b.len() == expect.len() && expect.iter().all(|(k, v)| b.get(k) == Some(v))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// The `exact_key` contract: for a literal pattern with key k, `get(p, a).is_some()`
    /// exactly when `a == k`.
    #[test]
    fn exact_key_contract((k, a) in arb_term_pair()) {
        let p = Pattern::lit(k.clone());
        let key = StructuralMatch.exact_key(&p).expect("a literal has a key");
        prop_assert_eq!(key, &k);
        prop_assert_eq!(get(&p, &a).is_some(), &a == key);
        // a folded literal (built through the shape constructors) obeys it too
        let lifted = lift(&k);
        let key = StructuralMatch.exact_key(&lifted).expect("all-literal shapes fold");
        prop_assert_eq!(key, &k);
        prop_assert_eq!(get(&lifted, &a).is_some(), &a == key);
        // equality agrees with hashing and ordering
        if k == a {
            prop_assert_eq!(hash_of(&k), hash_of(&a));
            prop_assert_eq!(k.cmp(&a), std::cmp::Ordering::Equal);
        } else {
            prop_assert_ne!(k.cmp(&a), std::cmp::Ordering::Equal);
            prop_assert_eq!(k.cmp(&a), a.cmp(&k).reverse());
        }
    }

    /// For any pattern the matcher reports a key for, the contract holds too.
    #[test]
    fn exact_key_contract_any_pattern(p in arb_pattern(), a in arb_term()) {
        if let Some(k) = StructuralMatch.exact_key(&p) {
            prop_assert_eq!(get(&p, &a).is_some(), &a == k);
        }
    }

    /// The literal pattern of t matches t and binds nothing.
    #[test]
    fn literal_of_t_matches_t(t in arb_term()) {
        let b = get(&Pattern::lit(t.clone()), &t).expect("matches itself");
        prop_assert!(b.is_empty());
        let b = get(&Pattern::lit(t.clone()), &rebuild(&t)).expect("matches a rebuilt copy");
        prop_assert!(b.is_empty());
    }

    /// A pattern of t's shape with a binder at every node binds every sub-term by path.
    #[test]
    fn binders_everywhere_bind_the_right_sub_terms(t in arb_term()) {
        let mut expect = BTreeMap::new();
        let p = bind_everywhere(&t, "t", &mut expect);
        let b = get(&p, &t).expect("matches its own shape");
        prop_assert!(contains_exactly(&expect, &b), "{:?} vs {:?}", expect, b);
        prop_assert_eq!(as_map(&b), expect);
    }

    /// The matcher agrees with the naive reference model on random patterns and terms,
    /// bindings included. Half the terms are built to fit the pattern's shape, so that
    /// matches (and the binding rules) are exercised, not only rejections.
    #[test]
    fn agrees_with_reference_model(
        m in arb_model(),
        t in arb_term(),
        fit in any::<bool>(),
        choices in prop::collection::vec(any::<u8>(), 64),
        pool in prop::collection::vec(arb_term(), 1..4),
    ) {
        let t = if fit {
            let mut c = choices.iter().copied().cycle();
            witness(&m, &mut c, &pool)
        } else {
            t
        };
        let p = to_pattern(&m);
        let real = get(&p, &t).map(|b| as_map(&b));
        let model = model_match(&m, &t, Env::new());
        prop_assert_eq!(real, model, "pattern {:?} term {:?}", p, t);
    }

    /// Pattern equality, hashing and ordering are consistent.
    #[test]
    fn pattern_eq_hash_ord_consistent(a in arb_pattern(), b in arb_pattern()) {
        prop_assert!(a == a.clone());
        prop_assert_eq!(a == b, a.cmp(&b) == std::cmp::Ordering::Equal);
        if a == b {
            prop_assert_eq!(hash_of(&a), hash_of(&b));
        }
        prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
    }
}

// ---------------------------------------------------------------- deep inputs

const DEEP: usize = 100_000;

fn deep_list(n: usize, leaf: Term) -> Term {
    let mut t = leaf;
    for _ in 0..n {
        t = Term::list([t]);
    }
    t
}

#[test]
fn deep_terms_do_not_overflow() {
    // The test thread has the default 2 MiB stack; every operation below would overflow it
    // with naive recursion at this depth.
    let a = deep_list(DEEP, Term::int(1));
    let b = deep_list(DEEP, Term::int(1));
    let c = deep_list(DEEP, Term::int(2));
    assert_eq!(a.depth(), DEEP + 1);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.cmp(&c), std::cmp::Ordering::Less);
    assert_eq!(hash_of(&a), hash_of(&b));
    let s = format!("{a:?}");
    assert_eq!(s.len(), 2 * DEEP + 1);
    assert!(s.starts_with("[[[") && s.ends_with("]]]") && s.contains("[1]"));

    // matching: binders, literal and shallow shapes against the deep term
    assert_eq!(get(&x("x"), &a).expect("binds").get("x"), Some(&a));
    assert!(get(&Pattern::lit(b.clone()), &a).is_some());
    assert!(get(&Pattern::lit(c.clone()), &a).is_none());
    assert!(get(
        &Pattern::list([x("x"), x("x")]),
        &Term::list([a.clone(), b.clone()])
    )
    .is_some());
    assert!(get(
        &Pattern::list([x("x"), x("x")]),
        &Term::list([a.clone(), c.clone()])
    )
    .is_none());
    let shallow = Pattern::list([Pattern::list([x("inner")])]);
    let inner = get(&shallow, &a).expect("matches two levels");
    assert_eq!(inner.get("inner").map(Term::depth), Some(DEEP - 1));

    // a deep record/tuple mix
    let mut r = Term::int(0);
    for i in 0..DEEP {
        r = if i % 2 == 0 {
            Term::record([("k", r)])
        } else {
            Term::tuple([r])
        };
    }
    assert_eq!(r.clone(), r);
    drop(r);

    // shared deep structure: dropping one owner must not free the other's nodes
    let shared = Term::list([a.clone(), a.clone()]);
    drop(a);
    assert_eq!(shared.as_list().map(|l| l[0] == l[1]), Some(true));
    drop(shared);
    drop(b);
    drop(c);
}

#[test]
fn deep_patterns_do_not_overflow() {
    // A 100,000-deep non-literal pattern: constructible, comparable, printable, droppable;
    // it exceeds MAX_PATTERN_DEPTH, so it matches nothing and `checked` rejects it.
    let mut p = x("x");
    for _ in 0..DEEP {
        p = Pattern::list([p]);
    }
    let q = {
        let mut q = x("x");
        for _ in 0..DEEP {
            q = Pattern::list([q]);
        }
        q
    };
    assert_eq!(p.depth(), DEEP + 1);
    assert_eq!(p, q);
    assert_eq!(hash_of(&p), hash_of(&q));
    assert_eq!(p.cmp(&q), std::cmp::Ordering::Equal);
    assert_eq!(format!("{p:?}").len(), 2 * DEEP + 1);
    let t = deep_list(DEEP, Term::int(1));
    assert!(get(&p, &t).is_none(), "too deep to match");
    let err = p.clone().checked().expect_err("too deep");
    assert_eq!(err.depth(), DEEP + 1);
    assert_eq!(err.into_inner(), q);
    drop(p);
    drop(q);

    // Deep `not` / `and` / `or` / binder chains.
    let mut n = w();
    for i in 0..DEEP {
        n = match i % 4 {
            0 => Pattern::not(n),
            1 => Pattern::and([n]),
            2 => Pattern::or([n, w()]),
            _ => Pattern::bind_as("b", n),
        };
    }
    assert!(get(&n, &Term::int(1)).is_none());
    let s = format!("{n:?}");
    assert!(
        s.starts_with("b @ ((!b @ ((") && s.contains("((!_) | _)"),
        "{}",
        &s[..40]
    );
    drop(n);

    // A deep all-literal pattern folds to a literal: depth 1, matchable, indexable.
    let mut l = Pattern::lit(1);
    for _ in 0..DEEP {
        l = Pattern::list([l]);
    }
    assert_eq!(l.depth(), 1);
    assert_eq!(StructuralMatch.exact_key(&l), Some(&t));
    assert!(get(&l, &t).expect("matches").is_empty());
}

#[test]
fn depth_limit_is_exact() {
    let t = deep_list(MAX_PATTERN_DEPTH, Term::int(1));
    let mut p = x("x");
    for _ in 1..MAX_PATTERN_DEPTH {
        p = Pattern::list([p]);
    }
    assert_eq!(p.depth(), MAX_PATTERN_DEPTH);
    let b = get(&p, &t).expect("at the limit it matches");
    assert_eq!(b.get("x"), Some(&Term::list([1])));
    let deeper = Pattern::list([p]);
    assert!(get(&deeper, &Term::list([t])).is_none());
}
