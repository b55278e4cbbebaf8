//! The single-channel consume fast path ([`super::single`]) against the general route.
//!
//! Two spaces with the same configuration get the same random calls: one with its shortcuts
//! on, one with them off (every consume through `resolve` and the join search). Calls mix
//! single- and multi-channel consumes, exact and non-exact patterns, persistence, peeks
//! (in range and out), gated consumes and produces whose gate records the admission and
//! sometimes refuses, batches, installs, bulk produces that cross the exact index threshold and
//! the flat/tree layout boundary, soft checkpoints and reverts, and hard checkpoints, on Bag,
//! Set, Queue, Stack, Cell and PriorityQueue channels. After every call the two must agree on
//! the result (COMM or error), on what the gate saw, and on the whole state as the code keeps
//! it: every channel's items with their keys, kind and index, the join groups, the dirty lists
//! and the event log of every shard; every hard checkpoint must give the same root and log.
//!
//! Refusals (SPEC §5): a call that fails must leave that whole state exactly as it was, the
//! exact indexes its search built included ([`apply_checked`]); and a space where the refused
//! calls never happened must then agree with one where they did on every later result,
//! admission (`examined`, which is charged) and state (`refused_calls_leave_no_trace`).

use std::fmt::Write as _;
use std::ops::ControlFlow;

use proptest::prelude::*;
use rhospace_matchers::Match;
use rhospace_phlogiston::OutOfPhlogiston;

use super::*;
use crate::kind::ContKind;
use crate::merkle::EMPTY_ROOT;
use crate::order::CandidateOrder;
use crate::space::batch::ConsumeRequest;

/// A pattern: `(tag, n)`. Tag 0 accepts anything, 1 even data, 2 data greater than `n`, 3
/// exactly `n` (reported as an exact key, so the index path is exercised).
pub(super) type Pat = (u8, i64);

/// The matcher of [`Pat`]; its result is the datum times ten plus the tag, so a test sees that
/// a result really comes from the matcher call on the datum picked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Pm;

impl Match<Pat, i64> for Pm {
    type Output = i64;

    fn get(&self, p: &Pat, d: &i64) -> Option<i64> {
        let ok = match p.0 {
            0 => true,
            1 => d % 2 == 0,
            2 => *d > p.1,
            _ => *d == p.1,
        };
        ok.then(|| d * 10 + i64::from(p.0))
    }

    fn exact_key<'p>(&self, p: &'p Pat) -> Option<&'p i64> {
        (p.0 >= 3).then_some(&p.1)
    }
}

pub(super) type S = Space<u8, Pat, i64, u8, Pm>;

#[derive(Clone, Debug)]
pub(super) struct Req {
    pub(super) channels: Vec<u8>,
    pub(super) patterns: Vec<Pat>,
    pub(super) k: u8,
    pub(super) persist: bool,
    pub(super) peeks: Vec<usize>,
}

#[derive(Clone, Debug)]
pub(super) enum Op {
    Produce {
        channel: u8,
        value: i64,
        persist: bool,
        priority: i64,
    },
    /// Many non-persistent produces on one channel.
    Many {
        channel: u8,
        values: Vec<i64>,
    },
    /// A consume; with a gate when `gate` is `Some(refuse)`.
    Consume {
        req: Req,
        gate: Option<bool>,
    },
    /// A produce (priority 0) with a gate that refuses when `refuse`.
    GatedProduce {
        channel: u8,
        value: i64,
        persist: bool,
        refuse: bool,
    },
    Batch(Vec<Req>),
    Install(Req),
    Soft,
    Revert(usize),
    Hard,
}

fn pat() -> impl Strategy<Value = Pat> {
    // Exact patterns most often: the fast path's common case.
    prop_oneof![
        3 => (0i64..8).prop_map(|n| (3u8, n)),
        1 => (0u8..3, 0i64..8),
    ]
}

fn req() -> impl Strategy<Value = Req> {
    let positions = prop_oneof![
        4 => prop::collection::vec((0u8..3, pat()), 1..2),
        1 => prop::collection::vec((0u8..3, pat()), 2..4),
    ];
    (
        positions,
        any::<u8>(),
        prop::bool::weighted(0.2),
        // Sometimes out of range: the error path must agree too.
        prop_oneof![
            6 => Just(Vec::new()),
            2 => Just(vec![0usize]),
            1 => prop::collection::vec(0usize..3, 1..3),
        ],
    )
        .prop_map(|(cp, k, persist, peeks)| Req {
            channels: cp.iter().map(|c| c.0).collect(),
            patterns: cp.iter().map(|c| c.1).collect(),
            k,
            persist,
            peeks,
        })
}

pub(super) fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u8..3, 0i64..8, prop::bool::weighted(0.2), -1i64..2).prop_map(
            |(channel, value, persist, priority)| Op::Produce {
                channel,
                value,
                persist,
                priority
            }
        ),
        1 => (0u8..3, prop::collection::vec(0i64..8, 10..40))
            .prop_map(|(channel, values)| Op::Many { channel, values }),
        8 => (req(), prop_oneof![2 => Just(None), 1 => any::<bool>().prop_map(Some)])
            .prop_map(|(req, gate)| Op::Consume { req, gate }),
        1 => prop::collection::vec(req(), 1..4).prop_map(Op::Batch),
        1 => req().prop_map(Op::Install),
        1 => Just(Op::Soft),
        1 => any::<usize>().prop_map(Op::Revert),
        1 => Just(Op::Hard),
    ]
}

/// [`op`], or a gated produce. (`op` itself stays as it was: the saved proptest seeds of the
/// tests that use it, `proptest-regressions/`, stand for the cases it generated.)
fn gated_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => op(),
        1 => (0u8..3, 0i64..8, prop::bool::weighted(0.2), any::<bool>()).prop_map(
            |(channel, value, persist, refuse)| Op::GatedProduce {
                channel,
                value,
                persist,
                refuse
            }
        ),
    ]
}

const KINDS: [DataKind; 6] = [
    DataKind::Bag,
    DataKind::Set,
    DataKind::Queue,
    DataKind::Stack,
    DataKind::Cell,
    DataKind::PriorityQueue,
];

pub(super) fn config(kinds: [usize; 3], cont: usize) -> SpaceConfig<u8> {
    let cont = [
        ContKind::Bag,
        ContKind::Queue,
        ContKind::Stack,
        ContKind::Set,
    ][cont % 4];
    let mut c = SpaceConfig::new().cont_kind(cont);
    for (ch, k) in kinds.iter().enumerate() {
        c = c.channel_kind(ch as u8, KINDS[*k % KINDS.len()]);
    }
    c
}

/// The state as the code keeps it, in a comparable form: per shard, the event log, the dirty
/// lists, every channel (kind, dirty flag, whether the index exists, items with their keys in
/// the order the kind hands them out, join groups) and every join group's continuations.
pub(super) fn snapshot(s: &S) -> String {
    let mut out = String::new();
    for (i, shard) in s.shards.iter().enumerate() {
        let g = shard.0.lock();
        let st = &g.state;
        let _ = writeln!(
            out,
            "shard {i} log {:?}",
            crate::log::hash_events([&st.log], st.log.len())
        );
        let _ = writeln!(
            out,
            "dirty {:?} joins {:?}",
            st.dirty.iter().collect::<Vec<_>>(),
            st.dirty_joins.iter().collect::<Vec<_>>()
        );
        let mut chans: Vec<_> = st.channels.iter().collect();
        chans.sort_by_key(|(c, _)| **c);
        for (c, cs) in chans {
            let mut items = Vec::new();
            let _ = cs.data.for_each_candidate(None, None, |k, d, _| {
                items.push((k, d.clone()));
                ControlFlow::Continue(())
            });
            let _ = writeln!(
                out,
                "ch {c} {:?} dirty {} data {} index {} items {items:?} joins {:?}",
                cs.data.kind(),
                cs.dirty,
                cs.data_dirty,
                cs.data.has_index(),
                cs.joins
            );
        }
        let mut joins: Vec<_> = st.joins.iter().collect();
        joins.sort_by(|a, b| a.0.cmp(b.0));
        for (jk, store) in joins {
            let _ = writeln!(
                out,
                "join {jk:?} dirty {} {:?}",
                store.dirty,
                store.all().collect::<Vec<_>>()
            );
        }
    }
    out
}

type Out = Result<Option<Comm<u8, Pat, i64, u8, i64>>, ConsumeError<u8>>;

/// A gate that records the admission it sees in `seen` (its `Debug` form holds every field,
/// `examined` included) and refuses when `refuse`.
fn gate<'s>(
    seen: &'s mut Vec<String>,
    refuse: bool,
) -> impl FnOnce(&Admission<'_, u8, Pat, i64, u8>) -> Result<(), OutOfPhlogiston> + 's {
    move |a| {
        seen.push(format!("{a:?}"));
        if refuse {
            Err(OutOfPhlogiston {
                requested: 1,
                remaining: 0,
            })
        } else {
            Ok(())
        }
    }
}

/// Runs a consume on `s`; with a [`gate`] when `gate` is `Some(refuse)`.
fn consume(s: &S, r: &Req, gate: Option<bool>, seen: &mut Vec<String>) -> Out {
    let (chs, pats) = (r.channels.clone(), r.patterns.clone());
    match gate {
        None => s.consume(chs, pats, r.k, r.persist, &r.peeks),
        Some(refuse) => s.consume_admitted(
            chs,
            pats,
            r.k,
            r.persist,
            &r.peeks,
            self::gate(seen, refuse),
        ),
    }
}

fn request(r: &Req) -> ConsumeRequest<u8, Pat, u8> {
    ConsumeRequest {
        channels: r.channels.clone().into(),
        patterns: r.patterns.clone().into(),
        continuation: r.k,
        persist: r.persist,
        peeks: r.peeks.iter().copied().collect(),
    }
}

/// One call on `s`, in a form comparable across the two spaces. `cps` holds the soft
/// checkpoints taken so far; `seen` collects what gates saw.
pub(super) fn apply(
    s: &S,
    op: &Op,
    cps: &mut Vec<SoftCheckpoint<u8, Pat, i64, u8>>,
    seen: &mut Vec<String>,
) -> String {
    match op {
        Op::Produce {
            channel,
            value,
            persist,
            priority,
        } => format!(
            "{:?}",
            s.produce_with_priority(*channel, *value, *persist, *priority)
        ),
        Op::Many { channel, values } => {
            let outs: Vec<_> = values
                .iter()
                .map(|v| s.produce(*channel, *v, false))
                .collect();
            format!("{outs:?}")
        }
        Op::Consume { req, gate } => format!("{:?}", consume(s, req, *gate, seen)),
        Op::GatedProduce {
            channel,
            value,
            persist,
            refuse,
        } => format!(
            "{:?}",
            s.produce_admitted(*channel, *value, *persist, 0, gate(seen, *refuse))
        ),
        Op::Batch(reqs) => format!("{:?}", s.consume_batch(reqs.iter().map(request))),
        Op::Install(r) => format!(
            "{:?}",
            s.install(r.channels.clone(), r.patterns.clone(), r.k)
        ),
        Op::Soft => {
            cps.push(s.create_soft_checkpoint());
            String::new()
        }
        Op::Revert(i) => {
            if !cps.is_empty() {
                let cp = &cps[*i % cps.len()];
                s.revert_to_soft_checkpoint(cp).unwrap();
            }
            String::new()
        }
        Op::Hard => format!("{:?}", s.create_checkpoint()),
    }
}

/// [`apply`], checking that a call that fails (refused by its gate or the replay's log,
/// invalid, a full Cell, an install over matching data) leaves the state exactly as it was:
/// the [`snapshot`] (items, exact indexes, dirty lists, log) is the same after it as before.
pub(super) fn apply_checked(
    s: &S,
    op: &Op,
    cps: &mut Vec<SoftCheckpoint<u8, Pat, i64, u8>>,
    seen: &mut Vec<String>,
) -> String {
    // The calls whose result `apply` formats alone, so that an `Err` is that call's.
    let one_call = matches!(
        op,
        Op::Produce { .. } | Op::GatedProduce { .. } | Op::Consume { .. } | Op::Install(_)
    );
    let before = one_call.then(|| snapshot(s));
    let out = apply(s, op, cps, seen);
    if let (Some(before), true) = (before, out.starts_with("Err(")) {
        assert_eq!(
            snapshot(s),
            before,
            "a failed call changed the state: {op:?} {out}"
        );
    }
    out
}

/// After a hard checkpoint no Bag channel keeps an exact index: a call that builds one lists
/// its channel as changed (when admitted; a refused one drops it), and settling a changed Bag
/// drops its index. So when an index exists is a function of the calls since the last hard
/// checkpoint, as for a space that `reset` to that root. (A Set builds its index on produce,
/// and keeps it.)
pub(super) fn assert_no_bag_index(s: &S) {
    for shard in s.shards.iter() {
        let g = shard.0.lock();
        for (c, cs) in g.state.channels.iter() {
            if cs.data.kind() == DataKind::Bag {
                assert!(
                    !cs.data.has_index(),
                    "channel {c} kept its index past a hard checkpoint"
                );
            }
        }
    }
}

/// Runs `ops` on a space with shortcuts and on one without; panics at the first difference.
fn run_both(kinds: [usize; 3], cont: usize, shards: usize, log: bool, ops: &[Op]) {
    run_both_in(kinds, cont, shards, log, CandidateOrder::OldestFirst, ops);
}

/// [`run_both`] with a candidate order.
fn run_both_in(
    kinds: [usize; 3],
    cont: usize,
    shards: usize,
    log: bool,
    order: CandidateOrder,
    ops: &[Op],
) {
    let config = || config(kinds, cont).candidate_order(order);
    let fast: S = Space::with_shards(Pm, config(), shards).with_event_log(log);
    let general: S = Space::with_shards(Pm, config(), shards)
        .with_event_log(log)
        .without_shortcuts();
    let (mut cps_f, mut cps_g) = (Vec::new(), Vec::new());
    for (i, op) in ops.iter().enumerate() {
        let (mut seen_f, mut seen_g) = (Vec::new(), Vec::new());
        let got = apply_checked(&fast, op, &mut cps_f, &mut seen_f);
        let want = apply_checked(&general, op, &mut cps_g, &mut seen_g);
        assert_eq!(got, want, "result of call {i}: {op:?}");
        if matches!(op, Op::Hard) && got.starts_with("Ok(") {
            assert_no_bag_index(&fast);
            assert_no_bag_index(&general);
        }
        assert_eq!(seen_f, seen_g, "admission of call {i}: {op:?}");
        assert_eq!(
            snapshot(&fast),
            snapshot(&general),
            "state after call {i}: {op:?}"
        );
    }
    let a = fast.create_checkpoint().expect("checkpoint");
    let b = general.create_checkpoint().expect("checkpoint");
    assert_eq!(a, b, "final hard checkpoint");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn single_channel_fast_path_matches_the_general_route(
        kinds in [0usize..6, 0usize..6, 0usize..6],
        cont in 0usize..4,
        shards in prop_oneof![Just(1usize), Just(4), Just(DEFAULT_SHARDS)],
        log in prop::bool::weighted(0.9),
        ops in prop::collection::vec(gated_op(), 1..80),
    ) {
        run_both(kinds, cont, shards, log, &ops);
    }

    /// The fast path walks a shuffled Bag or Set in the general search's order too.
    #[test]
    fn single_channel_fast_path_matches_the_general_route_shuffled(
        kinds in [0usize..6, 0usize..6, 0usize..6],
        cont in 0usize..4,
        shards in prop_oneof![Just(1usize), Just(4), Just(DEFAULT_SHARDS)],
        seed in any::<u64>(),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        run_both_in(kinds, cont, shards, true, CandidateOrder::Shuffled { seed }, &ops);
    }
}

/// Whether `op` is a call whose gate refuses it: it fails (refused, or invalid before the gate
/// is asked), and must leave no trace.
fn refused(op: &Op) -> bool {
    matches!(
        op,
        Op::Consume {
            gate: Some(true),
            ..
        } | Op::GatedProduce { refuse: true, .. }
    )
}

/// Runs `ops` on a space, and the same calls less the refused ones on another, both with
/// shortcuts or both without: after every call they share, the two must agree on the result,
/// on what its gate saw (`examined`, which decides the charge, included) and on the whole state
/// (exact indexes and dirty lists included). A refused call whose search built an exact index
/// and left it would change the `examined` of later exact lookups, and the state.
fn run_without_refusals(
    kinds: [usize; 3],
    cont: usize,
    shards: usize,
    shortcuts: bool,
    ops: &[Op],
) {
    let make = || {
        let s: S = Space::with_shards(Pm, config(kinds, cont), shards);
        if shortcuts {
            s
        } else {
            s.without_shortcuts()
        }
    };
    let (with, without) = (make(), make());
    let (mut cps_w, mut cps_o) = (Vec::new(), Vec::new());
    for (i, op) in ops.iter().enumerate() {
        let (mut seen_w, mut seen_o) = (Vec::new(), Vec::new());
        let got = apply_checked(&with, op, &mut cps_w, &mut seen_w);
        if refused(op) {
            assert!(
                got.starts_with("Err("),
                "call {i} was not refused: {op:?} {got}"
            );
            continue;
        }
        let want = apply(&without, op, &mut cps_o, &mut seen_o);
        assert_eq!(got, want, "result of call {i}: {op:?}");
        if matches!(op, Op::Hard) && got.starts_with("Ok(") {
            assert_no_bag_index(&with);
        }
        assert_eq!(seen_w, seen_o, "admission of call {i}: {op:?}");
        assert_eq!(
            snapshot(&with),
            snapshot(&without),
            "state after call {i}: {op:?}"
        );
    }
    let a = with.create_checkpoint().expect("checkpoint");
    let b = without.create_checkpoint().expect("checkpoint");
    assert_eq!(a, b, "final hard checkpoint");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn refused_calls_leave_no_trace(
        kinds in [0usize..6, 0usize..6, 0usize..6],
        cont in 0usize..4,
        shards in prop_oneof![Just(1usize), Just(4), Just(DEFAULT_SHARDS)],
        shortcuts in any::<bool>(),
        ops in prop::collection::vec(gated_op(), 1..80),
    ) {
        run_without_refusals(kinds, cont, shards, shortcuts, &ops);
    }
}

/// The calls of `ops` that a replay checks against the log: no gates (a refused call is not
/// logged, so a replay refuses it differently), installs or checkpoints.
fn replayable(ops: &[Op]) -> Vec<Op> {
    ops.iter()
        .filter_map(|op| match op {
            Op::Produce { .. } | Op::Many { .. } | Op::Batch(_) => Some(op.clone()),
            Op::Consume { req, .. } => Some(Op::Consume {
                req: req.clone(),
                gate: None,
            }),
            _ => None,
        })
        .collect()
}

/// Replays, on a rigged space, the calls whose log a space with the shortcut wrote: every
/// result and the final root must be the same.
fn replay_matches(kinds: [usize; 3], cont: usize, ops: &[Op]) {
    let calls = replayable(ops);
    let play: S = Space::new(Pm, config(kinds, cont));
    let (mut cps, mut seen) = (Vec::new(), Vec::new());
    let played: Vec<String> = calls
        .iter()
        .map(|op| apply(&play, op, &mut cps, &mut seen))
        .collect();
    let block = play.create_checkpoint().expect("checkpoint");
    let replay: S = Space::new(Pm, config(kinds, cont));
    replay.rig(&EMPTY_ROOT, &block.log).expect("rig");
    for (i, op) in calls.iter().enumerate() {
        let got = apply(&replay, op, &mut cps, &mut seen);
        assert_eq!(got, played[i], "replayed call {i}: {op:?}");
    }
    let end = replay.create_checkpoint().expect("replay checkpoint");
    assert_eq!(end.root, block.root, "replayed root");
    assert!(!replay.is_replaying());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_fast_path_log_replays(
        kinds in [0usize..6, 0usize..6, 0usize..6],
        cont in 0usize..4,
        ops in prop::collection::vec(op(), 1..60),
    ) {
        replay_matches(kinds, cont, &ops);
    }
}

/// Plays `ops`' replayable calls, drops log event `drop` (if any: a tampered log), and
/// replays them on a rigged space with the shortcut and one without: every result (refusals
/// included), state and the closing checkpoint must be the same.
fn replay_both(kinds: [usize; 3], cont: usize, ops: &[Op], drop: Option<usize>) {
    let calls = replayable(ops);
    let play: S = Space::new(Pm, config(kinds, cont));
    let (mut cps, mut seen) = (Vec::new(), Vec::new());
    for op in &calls {
        apply(&play, op, &mut cps, &mut seen);
    }
    let mut log = play.create_checkpoint().expect("checkpoint").log;
    if let Some(i) = drop {
        if !log.is_empty() {
            log.remove(i % log.len());
        }
    }
    let fast: S = Space::new(Pm, config(kinds, cont));
    let general: S = Space::new(Pm, config(kinds, cont)).without_shortcuts();
    let rigged = (fast.rig(&EMPTY_ROOT, &log), general.rig(&EMPTY_ROOT, &log));
    assert_eq!(format!("{:?}", rigged.0), format!("{:?}", rigged.1), "rig");
    for (i, op) in calls.iter().enumerate() {
        let got = apply_checked(&fast, op, &mut cps, &mut seen);
        let want = apply_checked(&general, op, &mut cps, &mut seen);
        assert_eq!(got, want, "replayed call {i}: {op:?}");
        assert_eq!(snapshot(&fast), snapshot(&general), "state after {i}");
    }
    let (a, b) = (fast.create_checkpoint(), general.create_checkpoint());
    assert_eq!(format!("{a:?}"), format!("{b:?}"), "closing checkpoint");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// In a replay the fast path asks the log's guide as the general search does: same
    /// COMMs, same refusals (`CommNotInLog` when the log lacks the COMM a consume would fire,
    /// `EventNotInLog` for a dropped call), same states and closing checkpoint.
    #[test]
    fn the_fast_path_replays_as_the_general_route(
        kinds in [0usize..6, 0usize..6, 0usize..6],
        cont in 0usize..4,
        ops in prop::collection::vec(op(), 1..60),
        drop in prop::option::of(any::<usize>()),
    ) {
        replay_both(kinds, cont, &ops, drop);
    }
}

/// The benchmark's shape on Bag and Set channels: many data, duplicates among them, then
/// exact consumes that must take the oldest equal datum through the index, persistent data
/// that stay, and peeks.
#[test]
fn indexed_consumes_take_the_oldest_equal_datum() {
    for kind in [0, 1] {
        let mut ops = Vec::new();
        for i in 0..200i64 {
            ops.push(Op::Produce {
                channel: 0,
                value: i % 50,
                persist: i % 17 == 0,
                priority: 0,
            });
        }
        for i in 0..260i64 {
            ops.push(Op::Consume {
                req: Req {
                    channels: vec![0],
                    patterns: vec![(3, (i * 7) % 50)],
                    k: (i % 5) as u8,
                    persist: i % 11 == 0,
                    peeks: if i % 13 == 0 { vec![0] } else { vec![] },
                },
                gate: (i % 3 == 0).then_some(i % 9 == 0),
            });
        }
        ops.push(Op::Hard);
        run_both([kind, kind, kind], 0, DEFAULT_SHARDS, true, &ops);
    }
}

/// A walk the general search would pre-check in parallel is left to it.
#[test]
fn big_unindexed_scans_keep_the_general_search() {
    let s: S = Space::new(Pm, SpaceConfig::new());
    for i in 0..PARALLEL_MIN_CANDIDATES as i64 {
        s.produce(0, i, false).expect("produce");
    }
    let mut view = s.lock_channels(&[0]);
    assert!(s.find_single(&mut view, &[0], &[(2, 0)], None).is_none());
    // An exact pattern goes through the index (which the walk builds and reports): the fast
    // path takes it.
    let found = s.find_single(&mut view, &[0], &[(3, 5)], None);
    assert!(matches!(found, Some((1, Some(_), false, true))));
}

/// Exact consumes that take data in arrival order are answered by the oldest item: no index
/// is built and one candidate is examined, on a store big enough for the parallel pre-check,
/// with the fast path and without it. The first lookup the oldest item does not answer builds
/// the index and still examines one.
#[test]
fn arrival_order_consumes_build_no_index() {
    let n = PARALLEL_MIN_CANDIDATES as i64;
    for shortcuts in [true, false] {
        let s: S = Space::new(Pm, SpaceConfig::new());
        let s = if shortcuts { s } else { s.without_shortcuts() };
        for i in 0..n {
            s.produce(0, i, false).expect("produce");
        }
        let indexed = || {
            let view = s.lock_channels(&[0]);
            view.channel(&0).map(|cs| cs.data.has_index())
        };
        let steps = [(0, false), (1, false), (2, false), (n - 1, true), (3, true)];
        for (step, (i, index_after)) in steps.into_iter().enumerate() {
            if shortcuts && step == 3 {
                // The oldest item (3) answers: the fast path takes the walk rather than leaving
                // it to the parallel pre-check.
                let mut view = s.lock_channels(&[0]);
                let found = s.find_single(&mut view, &[0], &[(3, 3)], None);
                assert!(matches!(found, Some((1, Some(_), false, false))));
            }
            let seen = std::cell::Cell::new(u64::MAX);
            let comm = s
                .consume_admitted([0], [(3, i)], 0, false, &[], |a| {
                    seen.set(a.examined);
                    Ok(())
                })
                .expect("consume")
                .expect("fires");
            assert_eq!(comm.matches[0].datum, i);
            assert_eq!(seen.get(), 1, "examined, key {i}");
            assert_eq!(indexed(), Some(index_after), "index after key {i}");
        }
    }
}

/// The `examined` of each of `calls` join consumes on channels 0 (data 0..40) and 1 (datum
/// 100) with patterns `[key, 5]`: the join never fires.
fn failed_join_examined(key: i64, calls: u8) -> Vec<u64> {
    let s: S = Space::new(Pm, SpaceConfig::new());
    for i in 0..40i64 {
        s.produce(0, i, false).expect("produce");
    }
    s.produce(1, 100, false).expect("produce");
    (0..calls)
        .map(|k| {
            let seen = std::cell::Cell::new(u64::MAX);
            let out = s
                .consume_admitted([0u8, 1], [(3, key), (3, 5)], k, false, &[], |a| {
                    seen.set(a.examined);
                    Ok(())
                })
                .expect("consume");
            assert!(out.is_none());
            seen.get()
        })
        .collect()
}

/// A join builds the exact index even when the oldest datum equals its key: its search
/// backtracks past that datum (here a later position fails), and without the index every
/// datum of the channel would be a charged matcher call, on every call.
#[test]
fn a_join_on_the_oldest_key_still_builds_the_index() {
    assert_eq!(failed_join_examined(0, 3), failed_join_examined(7, 3));
    assert_eq!(failed_join_examined(0, 3), [2, 2, 2]);
}

/// Two positions on one channel with the key of its oldest datum: the second needs the next
/// equal datum, which the index finds at once.
#[test]
fn a_repeated_channel_join_on_the_oldest_key_uses_the_index() {
    let s: S = Space::new(Pm, SpaceConfig::new());
    for i in 0..40i64 {
        s.produce(0, i, false).expect("produce");
    }
    s.produce(0, 0, false).expect("produce");
    let seen = std::cell::Cell::new(u64::MAX);
    let comm = s
        .consume_admitted([0u8, 0], [(3, 0), (3, 0)], 0, false, &[], |a| {
            seen.set(a.examined);
            Ok(())
        })
        .expect("consume")
        .expect("fires");
    assert_eq!(comm.matches.len(), 2);
    assert_eq!(seen.get(), 2);
}

/// Every search that builds an exact index, refused: a one-channel consume (the fast path),
/// a join, an install over matching data and a produce whose join partner is the big channel.
/// Each drops the index it built and lists nothing as changed, with the fast path and
/// without it; the same call admitted keeps the index and lists the channel.
#[test]
fn a_refused_call_drops_the_index_it_built() {
    for shortcuts in [true, false] {
        let s: S = Space::new(Pm, SpaceConfig::new());
        let s = if shortcuts { s } else { s.without_shortcuts() };
        for i in 0..20i64 {
            s.produce(0, i, false).expect("produce");
        }
        s.produce(1, 5, false).expect("produce");
        // A join waits on 9 at channel 2 and 7 at channel 0 (its search indexes channel 0).
        let stored = s.consume([2u8, 0], [(3, 9), (3, 7)], 1, false, &[]);
        assert!(stored.expect("consume").is_none());
        // The hard checkpoint drops the index and clears the dirty lists.
        s.create_checkpoint().expect("checkpoint");
        let indexed = || {
            let view = s.lock_channels(&[0]);
            view.channel(&0).is_some_and(|cs| cs.data.has_index())
        };
        assert!(!indexed());
        let before = snapshot(&s);
        let mut seen = Vec::new();
        let refusals = [
            format!(
                "{:?}",
                s.consume_admitted([0u8], [(3, 7)], 0, false, &[], gate(&mut seen, true))
            ),
            format!(
                "{:?}",
                s.consume_admitted(
                    [0u8, 1],
                    [(3, 7), (3, 5)],
                    0,
                    false,
                    &[],
                    gate(&mut seen, true)
                )
            ),
            format!("{:?}", s.install([0u8, 1], [(3, 7), (3, 5)], 0)),
            format!(
                "{:?}",
                s.produce_admitted(2, 9, false, 0, gate(&mut seen, true))
            ),
        ];
        for (i, r) in refusals.iter().enumerate() {
            assert!(r.starts_with("Err("), "call {i} refused: {r}");
        }
        assert!(refusals[2].contains("InstallWouldMatch"), "{}", refusals[2]);
        // Each gate (not the install's) saw a search that found its match.
        assert_eq!(seen.len(), 3);
        assert!(seen.iter().all(|a| a.contains("fires: Some(")), "{seen:?}");
        assert!(!indexed(), "shortcuts {shortcuts}");
        assert_eq!(snapshot(&s), before, "shortcuts {shortcuts}");
        // Admitted, the one-channel consume keeps the index it built and lists channel 0.
        let comm = s.consume([0u8], [(3, 7)], 0, false, &[]).expect("consume");
        assert!(comm.is_some());
        assert!(indexed());
        let view = s.lock_channels(&[0]);
        let state = &view.shard(&0).state;
        assert!(state.dirty.iter().any(|c| *c == 0));
    }
}

/// A produce builds a big join partner's exact index only when a waiting continuation of the
/// join reads that partner by an exact key: with only general patterns there, the search
/// scans the partner anyway, and an index would only tax every later datum stored on it.
/// The `examined` of the produce is the same either way (a general pattern's candidates are
/// every datum, indexed or not).
#[test]
fn a_produce_indexes_only_partners_read_by_an_exact_key() {
    let s: S = Space::new(Pm, SpaceConfig::new());
    for i in 0..20i64 {
        s.produce(0, 2 * i + 1, false).expect("produce");
    }
    let indexed = || {
        let view = s.lock_channels(&[0]);
        view.channel(&0).is_some_and(|cs| cs.data.has_index())
    };
    // A join reads the big channel 0 with a general pattern (even data): none is there, so it
    // waits, and its own search builds nothing (no exact key).
    assert!(s
        .consume([2u8, 0], [(0, 0), (1, 0)], 1, false, &[])
        .expect("consume")
        .is_none());
    assert!(!indexed());
    // A produce on channel 0 and one on channel 2: each meets the join; neither fires (no
    // even datum on 0), and neither builds channel 0's index.
    let mut seen = Vec::new();
    let r = s.produce_admitted(0, 41, false, 0, gate(&mut seen, false));
    assert!(r.expect("produce").is_none());
    let r = s.produce_admitted(2, 3, false, 0, gate(&mut seen, false));
    assert!(r.expect("produce").is_none());
    assert!(!indexed());
    // The second produce: its pre-check at position 0, then all 21 data of channel 0 at
    // position 1, and the pre-check again (a search that fires nothing counts it).
    assert!(seen[1].contains("examined: 23"), "{seen:?}");
    // A second continuation of the same join reads channel 0 by an exact key: the next
    // produce on either channel builds the index (the consume's own search built it too, so
    // the hard checkpoint drops it first).
    assert!(s
        .consume([2u8, 0], [(0, 0), (3, 100)], 2, false, &[])
        .expect("consume")
        .is_none());
    s.create_checkpoint().expect("checkpoint");
    assert!(!indexed());
    let r = s.produce_admitted(2, 5, false, 0, gate(&mut seen, false));
    assert!(r.expect("produce").is_none());
    assert!(indexed());
    // The general pattern's continuation examined 23 as before, index or not; the exact one
    // its pre-check twice and no datum (the index holds no 100).
    assert!(seen[2].contains("examined: 25"), "{seen:?}");
}
