//! A tour of rhospace: joins, persistence, peek, collection kinds, soft checkpoints, hard
//! checkpoints (state root, event log, reset) and replay of a block from its log.
//!
//! Run with `cargo run --example tour`.

use rhospace::matchers::{Pattern, StructuralMatch, Term};
use rhospace::{DataKind, ExactMatch, Match, Space, SpaceConfig};

/// Accepts every datum: shows which one a collection kind hands out.
struct Anything;

impl Match<i64, i64> for Anything {
    type Output = ();
    fn get(&self, _pattern: &i64, _datum: &i64) -> Option<()> {
        Some(())
    }
}

fn main() {
    // --- Joins: a continuation waits on two channels at once. -----------------------------
    let space: Space<&str, i64, i64, &str, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    let stored = space
        .consume(["bid", "ask"], [100, 100], "trade", false, &[])
        .expect("valid consume");
    println!("consume on [bid, ask] stored: {}", stored.is_none());
    space.produce("bid", 100, false).expect("produce");
    let comm = space
        .produce("ask", 100, false)
        .expect("produce")
        .expect("the join fires");
    println!(
        "produce on ask fired {:?} with data {:?}",
        comm.continuation,
        comm.matches.iter().map(|m| m.datum).collect::<Vec<_>>()
    );

    // --- Persistence and the re-issue contract. -------------------------------------------
    space.produce("config", 7, true).expect("produce");
    for round in 0..2 {
        let comm = space
            .consume(["config"], [7], "reader", false, &[])
            .expect("valid consume")
            .expect("persistent datum matches");
        println!(
            "round {round}: read persistent datum {} (still stored: {})",
            comm.matches[0].datum,
            space.data(&"config").len()
        );
    }
    space
        .consume(["jobs"], [1], "worker", true, &[])
        .expect("valid consume");
    let comm = space
        .produce("jobs", 1, false)
        .expect("produce")
        .expect("fires");
    println!(
        "persistent worker fired and stays: {} waiting",
        if comm.persistent {
            space.continuations(&["jobs"]).len()
        } else {
            0
        }
    );

    // --- Peek: the datum stays in place. ---------------------------------------------------
    space.produce("flag", 1, false).expect("produce");
    space
        .consume(["flag"], [1], "peeker", false, &[0])
        .expect("valid consume")
        .expect("peek fires");
    println!(
        "after a peek, flag still holds {} datum",
        space.data(&"flag").len()
    );

    // --- Collection kinds: the same produces, different selection rules. ------------------
    for kind in [DataKind::Queue, DataKind::Stack, DataKind::PriorityQueue] {
        let s: Space<&str, i64, i64, &str, Anything> =
            Space::new(Anything, SpaceConfig::new().data_kind(kind));
        for (value, priority) in [(1, 0), (2, 5), (3, 1)] {
            s.produce_with_priority("c", value, false, priority)
                .expect("produce");
        }
        let comm = s
            .consume(["c"], [0], "k", false, &[])
            .expect("valid consume")
            .expect("fires");
        println!(
            "{kind:?}: a wildcard consume takes {}",
            comm.matches[0].datum
        );
    }
    let cell: Space<&str, i64, i64, &str, ExactMatch> =
        Space::new(ExactMatch, SpaceConfig::new().data_kind(DataKind::Cell));
    cell.produce("c", 1, false).expect("produce");
    let err = cell.produce("c", 2, false).expect_err("full cell");
    let reason = err.to_string();
    println!(
        "Cell: second produce refused ({reason}); datum {} handed back",
        err.into_inner()
    );

    // --- Structural patterns with binders. --------------------------------------------------
    let broker: Space<&str, Pattern, Term, &str, StructuralMatch> =
        Space::new(StructuralMatch, SpaceConfig::new());
    broker
        .consume(
            ["orders"],
            [Pattern::record([
                ("topic", Pattern::lit("eu")),
                ("qty", Pattern::bind("q")),
            ])],
            "eu-desk",
            false,
            &[],
        )
        .expect("valid consume");
    let comm = broker
        .produce(
            "orders",
            Term::record([("topic", Term::str("eu")), ("qty", Term::int(3))]),
            false,
        )
        .expect("produce")
        .expect("pattern matches");
    println!(
        "structural match bound q = {}",
        comm.matches[0]
            .result
            .get("q")
            .map(ToString::to_string)
            .unwrap_or_default()
    );

    // --- Soft checkpoints: O(1) capture and revert. ----------------------------------------
    let cp = space.create_soft_checkpoint();
    space.produce("scratch", 1, false).expect("produce");
    space.produce("scratch", 2, false).expect("produce");
    println!(
        "before revert: scratch holds {}",
        space.data(&"scratch").len()
    );
    space
        .revert_to_soft_checkpoint(&cp)
        .expect("a checkpoint of this space");
    println!(
        "after revert:  scratch holds {}",
        space.data(&"scratch").len()
    );

    // --- Hard checkpoints: a 32-byte state root that depends only on contents. -------------
    let a: Space<u32, u32, u32, u32, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    let b: Space<u32, u32, u32, u32, ExactMatch> = Space::new(ExactMatch, SpaceConfig::new());
    for d in [1, 2, 3] {
        a.produce(7, d, false).expect("produce");
    }
    for d in [3, 2, 1] {
        b.produce(7, d, false).expect("produce");
    }
    let first = a.create_checkpoint().expect("checkpoint");
    let other = b.create_checkpoint().expect("checkpoint");
    let hex = |d: &[u8; 32]| {
        d[..6]
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    };
    println!(
        "bag roots in two insertion orders: {}... and {}... ({} log events)",
        hex(&first.root),
        hex(&other.root),
        first.log.len()
    );
    a.produce(8, 9, false).expect("produce");
    a.create_checkpoint().expect("checkpoint");
    a.reset(&first.root).expect("a recorded root");
    println!(
        "after reset to the first root: channel 8 holds {}, channel 7 holds {}",
        a.data(&8).len(),
        a.data(&7).len()
    );

    // --- Replay: another node checks a block by replaying its calls against the log. -------
    let start = a.create_checkpoint().expect("checkpoint").root;
    a.consume([7], [2], 50, false, &[]).expect("consume");
    a.produce(7, 4, false).expect("produce");
    let block = a.create_checkpoint().expect("checkpoint");
    let validator: Space<u32, u32, u32, u32, ExactMatch> =
        Space::new(ExactMatch, SpaceConfig::new());
    validator.produce(7, 1, false).expect("produce");
    validator.produce(7, 2, false).expect("produce");
    validator.produce(7, 3, false).expect("produce");
    validator.create_checkpoint().expect("checkpoint"); // the same start state
    validator.rig(&start, &block.log).expect("rig");
    let forged = validator.produce(7, 99, false);
    println!(
        "replay: a call not in the log is refused ({})",
        forged
            .map_err(|e| e.kind().to_string())
            .err()
            .unwrap_or_default()
    );
    validator
        .consume([7], [2], 50, false, &[])
        .expect("consume");
    validator.produce(7, 4, false).expect("produce");
    let replayed = validator.create_checkpoint().expect("replayed block");
    println!(
        "replay reached {}... (played: {}...)",
        hex(&replayed.root),
        hex(&block.root)
    );
}
