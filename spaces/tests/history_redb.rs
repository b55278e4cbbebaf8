//! The redb history backend: checkpoints survive closing and reopening the database, and a
//! writer killed with SIGKILL in the middle of a checkpoint never corrupts a root it recorded.
//!
//! The crash test re-executes this test binary as a child (`crash_writer_child`, selected by
//! an environment variable; without it that test returns at once) that commits checkpoints in
//! a loop and appends each committed root to a progress file, fsync'd after the commit
//! returned. The parent kills it at different moments, reopens the database and checks that
//! every root the child reported (and every root the database lists) is complete: every trie
//! node reachable from it present and valid, and every leaf's content blob present and
//! matching its leaf hash. (Measured in a debug build, the commit itself takes about 90% of the
//! child's loop, so most kills land inside a write transaction.)

use std::error::Error;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rhospace_spaces::merkle::{hash_ordered, Digest, LoadError, MerkleMap};
use rhospace_spaces::{HistoryError, HistoryStore, RedbHistory};

const CHILD_ENV: &str = "RHOSPACE_HISTORY_CRASH_CHILD_DIR";
const DB: &str = "history.redb";
const PROGRESS: &str = "progress";

fn key(i: u64) -> Digest {
    *blake3::hash(&i.to_le_bytes()).as_bytes()
}

/// A channel's encoded contents for `(round, i)`: a few KiB, so a commit takes a while.
fn content(round: u64, i: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    let mut x = round.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i;
    while out.len() < 4096 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// Commits one checkpoint changing `n` keys: trie nodes the store lacks plus the content blob
/// of every changed leaf, keyed by its leaf hash.
fn checkpoint(store: &dyn HistoryStore, map: &mut MerkleMap, round: u64, n: u64) -> Digest {
    let mut blobs = Vec::new();
    for j in 0..n {
        // a sliding window of keys: some updated, some new
        let i = round * (n / 2) + j;
        let c = content(round, i);
        let leaf = hash_ordered([&c]);
        map.insert(key(i), leaf);
        blobs.push((leaf, c));
    }
    let missing = map.missing_nodes(|h| store.contains(h)).expect("walk");
    blobs.extend(missing.nodes);
    let root = map.root();
    store.commit(&blobs, root).expect("commit");
    root
}

/// Every node reachable from `root` is present and valid, and every leaf's blob is present
/// and hashes to the leaf's value. Returns the number of keys.
fn assert_complete(store: &dyn HistoryStore, root: &Digest) -> usize {
    let map = MerkleMap::load(root, |h| store.get(h))
        .unwrap_or_else(|e| panic!("root {root:02x?} incomplete: {e}"));
    assert_eq!(map.root(), *root);
    for (k, v) in map.iter() {
        let blob = store
            .get(v)
            .expect("read")
            .unwrap_or_else(|| panic!("leaf blob of {k:02x?} missing"));
        assert_eq!(hash_ordered([&blob]), *v, "leaf blob corrupt");
    }
    map.len()
}

fn hex(d: &Digest) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex(s: &str) -> Option<Digest> {
    if s.len() != 64 {
        return None;
    }
    let mut d = [0u8; 32];
    for (i, out) in d.iter_mut().enumerate() {
        *out = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(d)
}

/// Complete progress lines only: a line cut short by the kill is not a report.
fn reported_roots(dir: &Path) -> Vec<Digest> {
    let text = fs::read_to_string(dir.join(PROGRESS)).unwrap_or_default();
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .map(|l| parse_hex(l.trim_end()).expect("a complete progress line is a root"))
        .collect()
}

/// Opens a new database at `path`, records `rounds` checkpoints of `keys` keys each
/// ([`checkpoint`]) and closes it. Returns each root with its map.
fn record(path: &Path, rounds: u64, keys: u64) -> Vec<(Digest, MerkleMap)> {
    let store = RedbHistory::open(path).unwrap();
    let mut map = MerkleMap::new();
    (0..rounds)
        .map(|round| (checkpoint(&store, &mut map, round, keys), map.clone()))
        .collect()
}

#[test]
fn checkpoints_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB);
    let recorded = record(&path, 6, 40);
    let store = RedbHistory::open(&path).unwrap();
    let roots: Vec<Digest> = recorded.iter().map(|(r, _)| *r).collect();
    assert_eq!(store.roots().unwrap(), roots);
    for (root, want) in &recorded {
        assert!(store.has_root(root).unwrap());
        assert_eq!(assert_complete(&store, root), want.len());
        let back = MerkleMap::load(root, |h| store.get(h)).unwrap();
        assert!(back.iter().eq(want.iter()));
    }
    // and it keeps working after the reopen
    let mut map = MerkleMap::load(&roots[5], |h| store.get(h)).unwrap();
    let root = checkpoint(&store, &mut map, 6, 40);
    assert_eq!(store.roots().unwrap().last(), Some(&root));
}

#[test]
fn a_second_open_of_a_held_database_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB);
    let _first = RedbHistory::open(&path).unwrap();
    assert!(RedbHistory::open(&path).is_err());
}

/// A database file damaged on disk (cut short, bytes flipped or overwritten) gives typed errors
/// or the right data, never a panic (SPEC §5): redb trusts its pages and panics on some such
/// files, which the store turns into `HistoryError::Storage`. A trie a damaged store still
/// serves for a recorded root is verified (it loads and hashes back, or fails); leaf blobs are
/// checked by their reader (`Space::reset`), not here. Once a call has caught redb panicking,
/// the handle refuses every later commit (the engine's state may be inconsistent).
#[test]
fn a_damaged_database_file_gives_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB);
    let roots: Vec<Digest> = record(&path, 4, 8).into_iter().map(|(r, _)| r).collect();
    let original = fs::read(&path).unwrap();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut below = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    let damaged = dir.path().join("damaged.redb");
    let mut opened = 0;
    let mut engine_panics = 0;
    // Whether a call's error is a panic redb had inside it.
    let panicked = |e: &HistoryError| {
        e.source()
            .is_some_and(|s| s.to_string().contains("storage engine panicked"))
    };
    for i in 0..1000 {
        let mut bytes = original.clone();
        if i % 2 == 0 {
            bytes.truncate(below(bytes.len()));
        } else {
            let at = below(bytes.len());
            let end = (at + 1 + below(64)).min(bytes.len());
            for b in &mut bytes[at..end] {
                *b = below(256) as u8;
            }
        }
        fs::write(&damaged, &bytes).unwrap();
        let probe = std::panic::catch_unwind(|| {
            // redb may panic as early as opening (it checks more pages with debug assertions).
            let store = match RedbHistory::open(&damaged) {
                Ok(store) => store,
                Err(e) => return (false, panicked(&e)),
            };
            // Whether any call so far caught redb panicking.
            let mut seen = false;
            let mut note = |r: Result<(), HistoryError>| seen |= r.is_err_and(|e| panicked(&e));
            note(store.roots().map(drop));
            for root in &roots {
                note(store.has_root(root).map(drop));
                match MerkleMap::load(root, |h| store.get(h)) {
                    Ok(map) => {
                        assert_eq!(map.root(), *root);
                        // Leaf blobs may come back damaged: their reader checks them.
                        for (_, v) in map.iter() {
                            note(store.get(v).map(drop));
                        }
                    }
                    Err(LoadError::Store(e)) => note(Err(e)),
                    Err(_) => {}
                }
            }
            let mut map = MerkleMap::new();
            note(map.missing_nodes(|h| store.contains(h)).map(drop));
            map.insert(key(1), [1; 32]);
            let committed = store.commit(&[([1; 32], vec![1])], [1; 32]);
            if seen {
                // After a caught panic, the commit is refused and writes nothing.
                let e = committed.expect_err("a commit after an engine panic");
                assert!(e
                    .source()
                    .is_some_and(|s| s.to_string().contains("refused")));
            }
            (true, seen)
        });
        match probe {
            Ok((true, seen)) => {
                opened += 1;
                engine_panics += usize::from(seen);
            }
            Ok((false, seen)) => engine_panics += usize::from(seen),
            Err(_) => panic!("damage #{i} made the store panic"),
        }
    }
    assert!(opened > 0, "some damaged files still open");
    assert!(engine_panics > 0, "some damage makes redb panic (caught)");
}

/// The child: commits checkpoints until killed, continuing from the database's last root.
#[test]
fn crash_writer_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return; // only meaningful when started by the crash test below
    };
    let dir = Path::new(&dir);
    let store = RedbHistory::open(dir.join(DB)).expect("child open");
    let roots = store.roots().expect("roots");
    let mut map = match roots.last() {
        Some(r) => MerkleMap::load(r, |h| store.get(h)).expect("child load"),
        None => MerkleMap::new(),
    };
    let mut progress = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(PROGRESS))
        .expect("progress file");
    let first_round = roots.len() as u64;
    // Bounded, in case the parent dies before killing it.
    for round in first_round..first_round + 500 {
        let root = checkpoint(&store, &mut map, round, 300);
        writeln!(progress, "{}", hex(&root)).expect("progress write");
        progress.sync_all().expect("progress fsync");
    }
}

#[test]
fn killed_writer_never_corrupts_recorded_roots() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    // (checkpoints to wait for, extra delay before the kill): different moments in a commit.
    let schedule = [(1, 0), (2, 3), (1, 17), (3, 1), (2, 29), (1, 8)];
    let mut before = 0;
    for (round, &(wait_for, extra_ms)) in schedule.iter().enumerate() {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_writer_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let deadline = Instant::now() + Duration::from_secs(120);
        while reported_roots(dir.path()).len() < before + wait_for {
            assert!(Instant::now() < deadline, "child made no progress");
            if let Some(status) = child.try_wait().unwrap() {
                panic!("child exited early: {status}");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(extra_ms));
        child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
        child.wait().unwrap();

        let store = RedbHistory::open(dir.path().join(DB)).expect("reopen after crash");
        let reported = reported_roots(dir.path());
        assert!(reported.len() >= before + wait_for, "round {round}");
        let listed = store.roots().unwrap();
        // every reported root is recorded, in the same order (a root committed but not yet
        // reported when the kill came may follow)
        assert_eq!(&listed[..reported.len()], &reported[..], "round {round}");
        for root in &listed {
            assert!(store.has_root(root).unwrap());
            assert!(assert_complete(&store, root) > 0);
        }
        before = listed.len();
        // Keep the progress file in step with the database for the next child.
        let mut f = File::create(dir.path().join(PROGRESS)).unwrap();
        for r in &listed {
            writeln!(f, "{}", hex(r)).unwrap();
        }
        f.sync_all().unwrap();
    }
    assert!(before >= schedule.iter().map(|s| s.0).sum::<usize>());
}
