//! The produce search's shortcuts (the per-continuation pre-check `incoming_fits`, a channel
//! list resolved once per group, the leaf-chunk walk of a continuation store) against the
//! plain algorithm they replace: for every continuation in order, resolve its channel list and
//! run the full join search. Random spaces (continuation kinds Bag/Queue/Stack/Set, data kinds,
//! installed continuations, persistence, peeks, repeated channels) and random produces; before
//! each produce both searches run under the same locks, in play and under a replay rig, and
//! must agree on the continuation chosen, the assignment and match results, `examined`,
//! `rejected` and the replay record.

use proptest::prelude::*;
use rhospace_matchers::{Pattern, StructuralMatch, Term};

use super::*;
use crate::conts::KEY_INDEX_MIN;
use crate::kind::ContKind;
use crate::merkle::EMPTY_ROOT;

type S = Space<u8, Pattern, Term, u8, StructuralMatch>;
type R = rhospace_matchers::Bindings;

/// The search as it was before the shortcuts: every continuation goes through `search`. The
/// assignment is left in `found`.
fn reference_find(
    space: &S,
    view: &View<'_, u8, Pattern, Term, u8>,
    channel: &u8,
    kind: DataKind,
    incoming: &StoredDatum<Term>,
    mut replay: Option<&mut Rig<u8, Pattern, Term, u8>>,
    found: &mut Found<R>,
) -> ProduceSearch<u8, Pattern, u8> {
    let stream = space.router.shard_of(channel);
    let mut out = ProduceSearch {
        examined: 0,
        vector: VectorWork::default(),
        hit: None,
        rejected: false,
        record: None,
    };
    let store = view.channel(channel).map(|cs| &cs.data);
    let key = match store {
        Some(s) => s.next_key(incoming.priority),
        None => DataStore::<Term>::new(kind).next_key(incoming.priority),
    };
    let head = store.is_none_or(|s| s.new_item_is_head(key));
    let mut offer = |list: &[u8], w: &WaitingContinuation<Pattern, u8>| {
        let join = resolve(view, list, None);
        let Some(cid) = list.iter().position(|c| c == channel) else {
            return false;
        };
        let alone = list.iter().filter(|c| *c == channel).count() == 1;
        let inc = Incoming {
            cid,
            key,
            datum: incoming,
            alone,
            head,
        };
        let mut run = |guide: Option<Guide<'_, _>>| {
            search(
                &space.matcher,
                &join,
                &w.patterns,
                &w.peeks,
                Some(inc),
                None,
                guide,
                None,
                PARALLEL_MIN_CANDIDATES,
                space.scan_on(),
                &mut *found,
            )
        };
        let outcome = match replay.as_deref_mut() {
            None => run(None),
            Some(rig) => {
                let hash = rig.hash.consume;
                let consume = || hash(list, &w.patterns, &w.continuation, w.persist, &w.peeks);
                let (outcome, record) =
                    rig.guided(stream, consume, list, &w.peeks, |g| run(Some(g)));
                if record.is_some() {
                    out.record = record;
                }
                outcome
            }
        };
        out.examined += outcome.examined;
        out.vector.add(outcome.vector);
        out.rejected |= outcome.rejected;
        outcome.found
    };
    if let Some(entries) = view.installed_on(channel) {
        for e in entries {
            if offer(&e.list, &e.w) {
                out.hit = Some(Source::Installed(e.clone()));
                return out;
            }
        }
    }
    let Some(cs) = view.channel(channel) else {
        return out;
    };
    for jk in cs.joins.iter() {
        let Some(conts) = view.join(jk) else {
            continue;
        };
        // The documented rule, computed from the contents: a Bag or Set group of at least
        // `KEY_INDEX_MIN` one-channel continuations, all with exact keys, offers only those
        // whose key is the datum.
        fn key(w: &WaitingContinuation<Pattern, u8>) -> Option<&Term> {
            match &w.patterns[..] {
                [p] => StructuralMatch.exact_key(p),
                _ => None,
            }
        }
        let by_key = matches!(conts.kind(), ContKind::Bag | ContKind::Set)
            && conts.all().count() >= KEY_INDEX_MIN
            && conts.all().all(|w| key(w).is_some());
        let mut hit = None;
        let _ = conts.for_each(|seq, w| {
            if by_key && key(w) != Some(&incoming.value) {
                return ControlFlow::Continue(());
            }
            if offer(jk, w) {
                hit = Some(seq);
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        if let Some(seq) = hit {
            out.hit = Some(Source::Stored(jk.clone(), seq));
            return out;
        }
    }
    out
}

#[derive(Clone, Debug)]
enum Op {
    Produce {
        channel: u8,
        value: i64,
        persist: bool,
    },
    Consume {
        channels: Vec<u8>,
        patterns: Vec<u8>,
        continuation: u8,
        persist: bool,
        peeks: Vec<usize>,
    },
}

/// 0..=3: that literal; 4, 5: binders; 6: a wildcard.
fn pattern(p: u8) -> Pattern {
    match p % 7 {
        v @ 0..=3 => Pattern::lit(Term::from(i64::from(v))),
        4 => Pattern::bind("x"),
        5 => Pattern::bind("y"),
        _ => Pattern::wildcard(),
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..3, 0i64..4, any::<bool>()).prop_map(|(channel, value, persist)| Op::Produce {
            channel,
            value,
            persist
        }),
        (
            prop::collection::vec((0u8..3, 0u8..7), 1..4),
            any::<u8>(),
            any::<bool>(),
            prop::collection::vec(0usize..3, 0..2),
        )
            .prop_map(|(cp, continuation, persist, peeks)| {
                let n = cp.len();
                Op::Consume {
                    channels: cp.iter().map(|c| c.0).collect(),
                    patterns: cp.iter().map(|c| c.1).collect(),
                    continuation,
                    persist,
                    peeks: peeks.into_iter().filter(|p| *p < n).collect(),
                }
            }),
    ]
}

fn config(cont: u8, data1: u8) -> SpaceConfig<u8> {
    let cont = [
        ContKind::Bag,
        ContKind::Queue,
        ContKind::Stack,
        ContKind::Set,
    ][usize::from(cont % 4)];
    let data1 = [
        DataKind::Bag,
        DataKind::Queue,
        DataKind::Stack,
        DataKind::Set,
        DataKind::PriorityQueue,
    ][usize::from(data1 % 5)];
    SpaceConfig::new().cont_kind(cont).channel_kind(1, data1)
}

/// Compares two searches and the assignments they left in their slots.
fn same_search(
    (a, fa): (&ProduceSearch<u8, Pattern, u8>, &Found<R>),
    (b, fb): (&ProduceSearch<u8, Pattern, u8>, &Found<R>),
) {
    assert_eq!(a.examined, b.examined, "examined");
    assert_eq!(a.vector, b.vector, "vector work");
    assert_eq!(a.rejected, b.rejected, "rejected");
    assert_eq!(a.record, b.record, "replay record");
    match (&a.hit, &b.hit) {
        (None, None) => {
            // A search that fires nothing leaves its slot empty.
            assert!(fa.picks.is_empty() && fa.results.is_empty() && fa.more.is_empty());
            assert!(fb.picks.is_empty() && fb.results.is_empty() && fb.more.is_empty());
        }
        (Some(sa), Some(sb)) => {
            match (sa, sb) {
                (Source::Installed(x), Source::Installed(y)) => assert!(Arc::ptr_eq(x, y)),
                (Source::Stored(jx, qx), Source::Stored(jy, qy)) => {
                    assert_eq!((jx, qx), (jy, qy));
                }
                _ => panic!("different sources"),
            }
            assert_eq!(fa.picks, fb.picks);
            assert_eq!(fa.results, fb.results);
            assert_eq!(fa.more, fb.more);
        }
        _ => panic!(
            "one search fired, the other did not: {:?} / {:?}",
            a.hit.is_some(),
            b.hit.is_some()
        ),
    }
}

/// Runs both searches for a produce of `value` on `channel`, under the produce's locks (and
/// the replay lock, when `rigged`), and compares them. Returns whether one fired.
fn compare(s: &S, channel: u8, value: i64, persist: bool, rigged: bool) -> bool {
    let kind = s.config.kind_of(&channel);
    let mut view = s.lock_for_produce(&channel, smallvec::smallvec![s.router.shard_of(&channel)]);
    // The produce's own index build, kept as an admitted produce keeps it.
    let mut built = BuiltPartners::new();
    s.index_partners(&mut view, &channel, &mut built);
    view.settle_partners(&built, true);
    let incoming = StoredDatum {
        value: Term::from(value),
        persist,
        priority: 0,
    };
    let mut replay = s.replay.lock();
    assert_eq!(replay.rig.is_some(), rigged);
    let (mut fnew, mut fold) = (Found::new(), Found::new());
    let new = s.find_for_produce(
        &view,
        &channel,
        kind,
        &incoming,
        replay.rig.as_mut(),
        NoCap,
        &mut fnew,
    );
    let old = reference_find(
        s,
        &view,
        &channel,
        kind,
        &incoming,
        replay.rig.as_mut(),
        &mut fold,
    );
    same_search((&new, &fnew), (&old, &fold));
    new.hit.is_some()
}

fn run(s: &S, op: &Op, rigged: bool) -> bool {
    match op {
        Op::Produce {
            channel,
            value,
            persist,
        } => {
            let fired = compare(s, *channel, *value, *persist, rigged);
            let _ = s.produce(*channel, Term::from(*value), *persist);
            fired
        }
        Op::Consume {
            channels,
            patterns,
            continuation,
            persist,
            peeks,
        } => {
            let pats: Vec<Pattern> = patterns.iter().map(|p| pattern(*p)).collect();
            let _ = s.consume(channels.clone(), pats, *continuation, *persist, peeks);
            false
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn shortcuts_choose_what_the_plain_search_chooses(
        cont in 0u8..4,
        data1 in 0u8..5,
        installs in prop::collection::vec((prop::collection::vec((0u8..3, 0u8..7), 1..3), any::<u8>()), 0..3),
        ops in prop::collection::vec(op(), 0..40),
    ) {
        let play: S = Space::new(StructuralMatch, config(cont, data1));
        let replay: S = Space::new(StructuralMatch, config(cont, data1));
        for (cp, k) in &installs {
            let chans: Vec<u8> = cp.iter().map(|c| c.0).collect();
            let pats: Vec<Pattern> = cp.iter().map(|c| pattern(c.1)).collect();
            let _ = play.install(chans.clone(), pats.clone(), *k);
            let _ = replay.install(chans, pats, *k);
        }
        for op in &ops {
            run(&play, op, false);
        }
        let block = play.create_checkpoint().expect("checkpoint");
        replay.rig(&EMPTY_ROOT, &block.log).expect("rig");
        for op in &ops {
            run(&replay, op, true);
        }
    }
}

/// The benchmark's shape, small: many single-channel continuations that reject the datum,
/// one that takes it, in each continuation kind; the shortcut must count one matcher call per
/// rejection and one for the hit (the search counts its pre-check only when it fails), as the
/// plain search does. The rejecting patterns have no exact key, so no store walks by key.
#[test]
fn fanout_counts_one_call_per_rejection() {
    for cont in 0..4 {
        let s: S = Space::new(StructuralMatch, config(cont, 0));
        for i in 0..200u8 {
            let p = if i == 199 {
                Pattern::bind("x")
            } else {
                Pattern::or([Pattern::lit(Term::from(i64::from(i))), Pattern::lit(-1)])
            };
            s.consume([0u8], [p], i, i == 199, &[]).expect("consume");
        }
        let cont_kind = s.config.continuation_kind();
        let (examined, fired) = search_for(&s, 199);
        let want = match cont_kind {
            // Only the oldest may fire: it rejects.
            ContKind::Queue => (1, false),
            // Only the newest: it takes the datum.
            ContKind::Stack => (1, true),
            ContKind::Bag | ContKind::Set => (199 + 1, true),
        };
        assert_eq!((examined, fired), want, "{cont_kind:?}");
    }
}

/// Compares both searches for a produce of `value` on channel 0 and returns the shortcut's
/// `examined` and whether it fires.
fn search_for(s: &S, value: i64) -> (u64, bool) {
    let fired = compare(s, 0, value, false, false);
    let view = s.lock_for_produce(&0, smallvec::smallvec![s.router.shard_of(&0)]);
    let incoming = StoredDatum {
        value: Term::from(value),
        persist: false,
        priority: 0,
    };
    let mut found = Found::new();
    let got = s.find_for_produce(&view, &0, DataKind::Bag, &incoming, None, NoCap, &mut found);
    assert_eq!(got.hit.is_some(), fired);
    (got.examined, fired)
}

/// Many consumers each waiting for their own value on one channel (literal patterns: exact
/// keys): a Bag or Set store of at least `KEY_INDEX_MIN` offers a produce only the ones with
/// its value, so it examines one continuation, not all; one continuation without an exact
/// key among them makes the store walk whole again, and below `KEY_INDEX_MIN` it always
/// does. Both searches agree throughout (`search_for` compares them).
#[test]
fn a_store_of_exact_keys_offers_a_produce_only_its_key() {
    let lit = |i: u8| Pattern::lit(Term::from(i64::from(i)));
    for cont in 0..4 {
        let s: S = Space::new(StructuralMatch, config(cont, 0));
        let n = 200u8;
        for i in 0..n {
            s.consume([0u8], [lit(i)], i, true, &[]).expect("consume");
        }
        let kind = s.config.continuation_kind();
        let store = |s: &S| {
            let view = s.lock_for_produce(&0, smallvec::smallvec![s.router.shard_of(&0)]);
            view.join(&[0u8][..]).map(|c| c.walks_by_key())
        };
        let by_key = matches!(kind, ContKind::Bag | ContKind::Set);
        assert_eq!(store(&s), Some(by_key), "{kind:?}");
        // The newest's key: the whole store before it, or only it.
        let want = match kind {
            ContKind::Queue => (1, false),
            ContKind::Stack => (1, true),
            ContKind::Bag | ContKind::Set => (1, true),
        };
        assert_eq!(search_for(&s, i64::from(n - 1)), want, "{kind:?}");
        // A value no continuation waits for: by key, nothing is examined.
        let none = match kind {
            ContKind::Bag | ContKind::Set => 0,
            ContKind::Queue | ContKind::Stack => 1,
        };
        assert_eq!(search_for(&s, 1_000), (none, false), "{kind:?}");
        // A continuation without an exact key: the walk is whole again (it examines every
        // one before the key's own).
        s.consume([0u8], [Pattern::or([lit(250), lit(251)])], 250, true, &[])
            .expect("consume");
        assert_eq!(store(&s), Some(false), "{kind:?}");
        if by_key {
            assert_eq!(search_for(&s, i64::from(n - 1)), (u64::from(n), true));
        }
    }
    // Fewer than `KEY_INDEX_MIN`: a whole walk, which examines every continuation before
    // the key's own; at `KEY_INDEX_MIN`, one.
    let s: S = Space::new(StructuralMatch, config(0, 0));
    for i in 0..KEY_INDEX_MIN as u8 - 1 {
        s.consume([0u8], [lit(i)], i, true, &[]).expect("consume");
    }
    let last = KEY_INDEX_MIN as i64 - 2;
    assert_eq!(search_for(&s, last), (last as u64 + 1, true));
    s.consume([0u8], [lit(100)], 100, true, &[])
        .expect("consume");
    assert_eq!(search_for(&s, last), (1, true));
}

/// The pre-check's matcher result serves only the position it was made at: in a join `[1, 1]`
/// of two binders, the produced datum fits the first position, but the walk gives that
/// position the stored datum (oldest first) and the produced one the second; each position
/// reports its own bindings. Also with several continuations, and on 1 and 4 shards.
#[test]
fn the_pre_checks_result_serves_only_its_own_position() {
    for shards in [1, 4] {
        let s: S = Space::with_shards(StructuralMatch, SpaceConfig::new(), shards);
        s.produce(1, Term::int(7), false).expect("produce");
        let pats = [Pattern::bind("a"), Pattern::bind("b")];
        let waits = s.consume([1u8, 1], pats, 0, false, &[]).expect("consume");
        assert!(waits.is_none());
        let comm = s
            .produce(1, Term::int(5), false)
            .expect("produce")
            .expect("fires");
        // Each position's (position, datum, its one binding).
        let got: Vec<_> = comm
            .matches
            .iter()
            .map(|m| {
                let b: Vec<_> = m
                    .result
                    .iter()
                    .map(|(n, t)| (n.to_owned(), t.clone()))
                    .collect();
                (m.position, m.datum.clone(), b)
            })
            .collect();
        let one = |name: &str, v: i64| vec![(name.to_owned(), Term::int(v))];
        assert_eq!(
            got,
            [
                (0, Term::int(7), one("a", 7)),
                (1, Term::int(5), one("b", 5)),
            ]
        );
    }
}
