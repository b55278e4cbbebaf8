//! A sequential reference model of the space and a linearizability checker for recorded
//! concurrent histories (used by `tests/linearizability.rs`).
//!
//! # The model
//! Bag data channels and Bag continuation stores, exact matching (a pattern matches the equal
//! datum), and SPEC §3's deterministic choice: join groups in creation order (a group that
//! empties is forgotten and re-created at the end), continuations oldest first, candidates
//! oldest first with the produced datum last on its channel, and the first assignment in
//! lexicographic candidate order wins. It is brute force on purpose: plain `Vec`s and an
//! exhaustive search over assignments, so it is easy to read against SPEC §1–§3.
//!
//! # The checker
//! Wing & Gong's search, with Lowe's memoisation: linearize one *minimal* pending operation at a
//! time (one that no other pending operation finished before it was invoked), apply it to the
//! model, keep it only if the model's result equals the recorded one, backtrack otherwise; a
//! (set of linearized operations, model state) pair that failed once is not explored again.
//! Before searching, the history is split by P-compositionality into the connected components
//! of "uses a channel in common" (an operation's result depends only on the state of its own
//! channels and of the join groups through them, so disjoint components linearize
//! independently). Exhaustive: a history is rejected only when no order consistent with real
//! time explains it.
//!
//! Limits: at most 64 operations per component (a `u64` mask); the search is exponential in
//! the number of overlapping operations, which is why histories are kept small.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};

/// A channel.
pub type Ch = u8;
/// A datum, and (exact matching) a pattern.
pub type Val = u64;
/// A continuation.
pub type Kont = u32;

/// A COMM in plain form, comparable between the space and the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MComm {
    /// The continuation that fired.
    pub continuation: Kont,
    /// Its channel list, consume order.
    pub channels: Vec<Ch>,
    /// Its patterns, consume order.
    pub patterns: Vec<Val>,
    /// Whether the continuation was persistent.
    pub persistent: bool,
    /// Peeked positions, ascending.
    pub peeks: Vec<usize>,
    /// (datum, datum persistent) per position.
    pub matches: Vec<(Val, bool)>,
    /// The incoming item fired but was not used up (SPEC §2's re-issue contract).
    pub reissue: bool,
}

/// One call on the space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `produce(ch, value, persist)`.
    Produce {
        /// Channel.
        ch: Ch,
        /// Datum.
        value: Val,
        /// Persistent datum.
        persist: bool,
    },
    /// `consume(chans, pats, k, persist, peeks)`; peeks ascending, in range.
    Consume {
        /// Channel list.
        chans: Vec<Ch>,
        /// One pattern per channel.
        pats: Vec<Val>,
        /// Continuation.
        k: Kont,
        /// Persistent continuation.
        persist: bool,
        /// Peeked positions.
        peeks: Vec<usize>,
    },
    /// The `data(&ch)` view.
    Data {
        /// Channel.
        ch: Ch,
    },
}

impl Op {
    /// The channels the call touches directly.
    pub fn channels(&self) -> Vec<Ch> {
        match self {
            Op::Produce { ch, .. } | Op::Data { ch } => vec![*ch],
            Op::Consume { chans, .. } => chans.clone(),
        }
    }
}

/// What a call returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ret {
    /// A produce or consume: the COMM it fired, if any.
    Fired(Option<MComm>),
    /// A data view: (value, persist), in the space's order (oldest first for a Bag).
    Data(Vec<(Val, bool)>),
}

/// One completed call of a history, with its invocation and response tickets (taken from one
/// shared counter just before the call and just after it returned).
#[derive(Clone, Debug)]
pub struct Event {
    /// The thread that made the call (for messages only).
    pub thread: usize,
    /// The call.
    pub op: Op,
    /// Its result.
    pub ret: Ret,
    /// Ticket taken right before the call.
    pub inv: u64,
    /// Ticket taken right after it returned.
    pub resp: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Item {
    value: Val,
    persist: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Wc {
    pats: Vec<Val>,
    k: Kont,
    persist: bool,
    peeks: Vec<usize>,
}

/// A candidate for one position: a stored item (channel, index in arrival order) or the datum
/// being produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ref {
    Stored(Ch, usize),
    Incoming,
}

#[derive(Clone, Copy, Debug)]
struct Cand {
    r: Ref,
    value: Val,
    persist: bool,
}

/// The sequential reference model: the whole state of a space restricted to Bag kinds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Model {
    /// Per channel, arrival order; no empty entries (so equal states compare equal).
    data: BTreeMap<Ch, Vec<Item>>,
    /// Join groups in creation order: exact channel list, continuations oldest first.
    groups: Vec<(Vec<Ch>, Vec<Wc>)>,
}

impl Model {
    /// Applies `op` and returns what the space must return for it.
    pub fn apply(&mut self, op: &Op) -> Ret {
        match op {
            Op::Produce { ch, value, persist } => Ret::Fired(self.produce(*ch, *value, *persist)),
            Op::Consume {
                chans,
                pats,
                k,
                persist,
                peeks,
            } => Ret::Fired(self.consume(chans, pats, *k, *persist, peeks)),
            Op::Data { ch } => Ret::Data(
                self.data
                    .get(ch)
                    .map(|v| v.iter().map(|it| (it.value, it.persist)).collect())
                    .unwrap_or_default(),
            ),
        }
    }

    fn candidates(&self, ch: Ch, incoming: Option<(Ch, &Item)>) -> Vec<Cand> {
        let mut out: Vec<Cand> = self
            .data
            .get(&ch)
            .map(|v| {
                v.iter()
                    .enumerate()
                    .map(|(i, it)| Cand {
                        r: Ref::Stored(ch, i),
                        value: it.value,
                        persist: it.persist,
                    })
                    .collect()
            })
            .unwrap_or_default();
        if let Some((ic, it)) = incoming {
            if ic == ch {
                out.push(Cand {
                    r: Ref::Incoming,
                    value: it.value,
                    persist: it.persist,
                });
            }
        }
        out
    }

    /// Every assignment in lexicographic candidate order; the first valid one wins.
    fn search(
        &self,
        chans: &[Ch],
        pats: &[Val],
        peeks: &[usize],
        incoming: Option<(Ch, &Item)>,
    ) -> Option<Vec<Cand>> {
        let lists: Vec<Vec<Cand>> = chans
            .iter()
            .map(|&c| self.candidates(c, incoming))
            .collect();
        let mut picks = Vec::with_capacity(chans.len());
        if rec(pats, peeks, incoming.is_some(), &lists, &mut picks) {
            Some(
                picks
                    .iter()
                    .enumerate()
                    .map(|(i, &j)| lists[i][j])
                    .collect(),
            )
        } else {
            None
        }
    }

    /// Removes the stored items the assignment used up; returns the per-position report.
    fn take(&mut self, peeks: &[usize], a: &[Cand]) -> Vec<(Val, bool)> {
        let mut gone: Vec<(Ch, usize)> = a
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c.r {
                Ref::Stored(ch, at) if !c.persist && !peeks.contains(&i) => Some((ch, at)),
                _ => None,
            })
            .collect();
        gone.sort_unstable();
        gone.dedup();
        for &(ch, at) in gone.iter().rev() {
            let v = self.data.get_mut(&ch).expect("model: channel present");
            v.remove(at);
            if v.is_empty() {
                self.data.remove(&ch);
            }
        }
        a.iter().map(|c| (c.value, c.persist)).collect()
    }

    fn produce(&mut self, ch: Ch, value: Val, persist: bool) -> Option<MComm> {
        let item = Item { value, persist };
        let mut chosen = None;
        'groups: for (gi, (list, conts)) in self.groups.iter().enumerate() {
            if !list.contains(&ch) {
                continue;
            }
            for (ci, w) in conts.iter().enumerate() {
                if let Some(a) = self.search(list, &w.pats, &w.peeks, Some((ch, &item))) {
                    chosen = Some((gi, ci, list.clone(), w.clone(), a));
                    break 'groups;
                }
            }
        }
        let Some((gi, ci, list, w, a)) = chosen else {
            self.data.entry(ch).or_default().push(item);
            return None;
        };
        if !w.persist {
            self.groups[gi].1.remove(ci);
            if self.groups[gi].1.is_empty() {
                self.groups.remove(gi);
            }
        }
        let matches = self.take(&w.peeks, &a);
        let used_up = !persist
            && a.iter()
                .enumerate()
                .any(|(i, c)| c.r == Ref::Incoming && !w.peeks.contains(&i));
        Some(MComm {
            continuation: w.k,
            channels: list,
            patterns: w.pats,
            persistent: w.persist,
            peeks: w.peeks,
            matches,
            reissue: !used_up,
        })
    }

    fn consume(
        &mut self,
        chans: &[Ch],
        pats: &[Val],
        k: Kont,
        persist: bool,
        peeks: &[usize],
    ) -> Option<MComm> {
        if let Some(a) = self.search(chans, pats, peeks, None) {
            let matches = self.take(peeks, &a);
            return Some(MComm {
                continuation: k,
                channels: chans.to_vec(),
                patterns: pats.to_vec(),
                persistent: persist,
                peeks: peeks.to_vec(),
                matches,
                reissue: persist,
            });
        }
        let w = Wc {
            pats: pats.to_vec(),
            k,
            persist,
            peeks: peeks.to_vec(),
        };
        match self.groups.iter_mut().find(|(l, _)| l == chans) {
            Some((_, conts)) => conts.push(w),
            None => self.groups.push((chans.to_vec(), vec![w])),
        }
        None
    }
}

fn rec(
    pats: &[Val],
    peeks: &[usize],
    need_incoming: bool,
    lists: &[Vec<Cand>],
    picks: &mut Vec<usize>,
) -> bool {
    let pos = picks.len();
    if pos == pats.len() {
        return valid(peeks, need_incoming, lists, picks);
    }
    for j in 0..lists[pos].len() {
        if lists[pos][j].value != pats[pos] {
            continue;
        }
        picks.push(j);
        if rec(pats, peeks, need_incoming, lists, picks) {
            return true;
        }
        picks.pop();
    }
    false
}

fn valid(peeks: &[usize], need_incoming: bool, lists: &[Vec<Cand>], picks: &[usize]) -> bool {
    let pick = |i: usize| lists[i][picks[i]];
    let n = picks.len();
    if need_incoming && !(0..n).any(|i| pick(i).r == Ref::Incoming) {
        return false;
    }
    // A non-persistent item fills several positions only if all of them peek.
    (0..n).all(|i| {
        let c = pick(i);
        if c.persist {
            return true;
        }
        let users: Vec<usize> = (0..n).filter(|&q| pick(q).r == c.r).collect();
        users.len() == 1 || users.iter().all(|q| peeks.contains(q))
    })
}

/// Checks `history` for linearizability against [`Model`] from the empty state. `Ok` carries a
/// witness (indices into `history` in a valid sequential order, component after component);
/// `Err` says which component has no sequential explanation.
pub fn check(history: &[Event]) -> Result<Vec<usize>, String> {
    let mut witness = Vec::with_capacity(history.len());
    for comp in components(history) {
        assert!(comp.len() <= 64, "a component of at most 64 operations");
        let events: Vec<&Event> = comp.iter().map(|&i| &history[i]).collect();
        let mut order = Vec::with_capacity(events.len());
        let mut failed = HashSet::new();
        if !search(&events, 0, Model::default(), &mut order, &mut failed) {
            return Err(format!(
                "no sequential order explains the component {comp:?}:\n{}",
                describe(history, &comp)
            ));
        }
        witness.extend(order.iter().map(|&j| comp[j]));
    }
    Ok(witness)
}

/// Wing & Gong's backtracking, memoised on (linearized set, model state).
fn search(
    events: &[&Event],
    done: u64,
    model: Model,
    order: &mut Vec<usize>,
    failed: &mut HashSet<(u64, Model)>,
) -> bool {
    let n = events.len();
    if done.count_ones() as usize == n {
        return true;
    }
    let pending = || (0..n).filter(move |&i| done & (1 << i) == 0);
    // A pending call may go next iff no pending call responded before it was invoked.
    let min_resp = pending()
        .map(|i| events[i].resp)
        .min()
        .expect("one pending");
    for i in pending() {
        if events[i].inv > min_resp {
            continue;
        }
        let mut next = model.clone();
        if next.apply(&events[i].op) != events[i].ret {
            continue;
        }
        let mask = done | (1 << i);
        if failed.contains(&(mask, next.clone())) {
            continue;
        }
        order.push(i);
        if search(events, mask, next.clone(), order, failed) {
            return true;
        }
        order.pop();
        failed.insert((mask, next));
    }
    false
}

/// Connected components of the history under "touches a channel in common" (P-compositionality).
fn components(history: &[Event]) -> Vec<Vec<usize>> {
    let mut parent: BTreeMap<Ch, Ch> = BTreeMap::new();
    fn find(parent: &mut BTreeMap<Ch, Ch>, c: Ch) -> Ch {
        let p = *parent.entry(c).or_insert(c);
        if p == c {
            return c;
        }
        let root = find(parent, p);
        parent.insert(c, root);
        root
    }
    for e in history {
        let chans = e.op.channels();
        let first = find(&mut parent, chans[0]);
        for &c in &chans[1..] {
            let r = find(&mut parent, c);
            parent.insert(r, first);
        }
    }
    let mut by_root: BTreeMap<Ch, Vec<usize>> = BTreeMap::new();
    for (i, e) in history.iter().enumerate() {
        let root = find(&mut parent, e.op.channels()[0]);
        by_root.entry(root).or_default().push(i);
    }
    by_root.into_values().collect()
}

fn describe(history: &[Event], comp: &[usize]) -> String {
    comp.iter()
        .map(|&i| {
            let e = &history[i];
            format!(
                "  #{i} t{} [{}, {}] {:?} -> {:?}",
                e.thread, e.inv, e.resp, e.op, e.ret
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
