//! History stores for hard checkpoints (SPEC §6): content-addressed blobs (Merkle trie nodes,
//! and the encoded contents of channels keyed by their leaf hash) plus the set of recorded
//! state roots.
//!
//! Two backends implement [`HistoryStore`]:
//!
//! | backend | where | survives restart | commit |
//! |---|---|---|---|
//! | [`MemoryHistory`] (default) | process memory | no | one lock, O(new blobs) |
//! | [`RedbHistory`] | a [`redb`] database file | yes | one ACID write transaction, fsync'd, O(new blobs · log stored) |
//!
//! # Guarantees
//!
//! - **Atomic commits.** [`commit`](HistoryStore::commit) stores a checkpoint's blobs and
//!   records its root together or not at all. For [`RedbHistory`] this holds across crashes:
//!   redb commits a transaction with a single durable switch of its root page, so a process
//!   killed mid-commit leaves the database as it was before that commit (the crash test in
//!   `tests/history_redb.rs` kills a writer with SIGKILL and checks every root it reported).
//! - **Closed under reachability.** A commit must include every blob the new root reaches that
//!   the store does not already hold: the trie nodes
//!   ([`MerkleMap::missing_nodes`](crate::merkle::MerkleMap::missing_nodes) lists them, and the
//!   leaves among them), and for each leaf, the content blob stored under its value (the leaf
//!   hash). [`Space::create_checkpoint`](crate::Space::create_checkpoint) brings the blob of
//!   every listed leaf the store lacks, whether its entry changed since the last checkpoint or
//!   arrived unchanged from elsewhere (another space's soft checkpoint, a store switched in).
//!   `commit` itself checks only that the root's own node is given or stored (it refuses the
//!   root otherwise); the rest is the committer's duty. So a recorded root, and any stored
//!   node, always has everything below it, leaf blobs included, and a walk may skip a whole
//!   subtree when the store holds its top node.
//! - **Structural sharing.** Blobs are keyed by hash and written once: a commit writes only
//!   the blobs the store lacks, so consecutive checkpoints share every unchanged node on disk.
//! - **Deterministic.** [`roots`](HistoryStore::roots) lists roots in the order they were first
//!   recorded; nothing here iterates a hash map into a result.
//!
//! A store does **not** check that a blob hashes to its key (leaf blobs are keyed by a leaf hash
//! computed over their items, not over the blob's bytes); readers verify what they read, as
//! [`MerkleMap::load`](crate::merkle::MerkleMap::load) does for trie nodes.
//!
//! ```
//! use rhospace_spaces::merkle::MerkleMap;
//! use rhospace_spaces::{HistoryStore, MemoryHistory};
//! let store = MemoryHistory::new();
//! let mut map = MerkleMap::new();
//! map.insert([1; 32], [2; 32]);
//! let missing = map.missing_nodes(|h| store.contains(h)).unwrap();
//! store.commit(&missing.nodes, map.root()).unwrap();
//! assert!(store.has_root(&map.root()).unwrap());
//! let back = MerkleMap::load(&map.root(), |h| store.get(h)).unwrap();
//! assert_eq!(back.root(), map.root());
//! ```

use core::fmt;
use std::collections::{HashMap, HashSet};
use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::merkle::{hex, Digest};
use crate::sync::atomic::{AtomicU8, Ordering};
use crate::sync::Mutex;

/// Why a history operation failed.
///
/// ```
/// use rhospace_spaces::HistoryError;
/// let e = HistoryError::RootNotStored([0xAB; 32]);
/// assert!(e.to_string().starts_with("root abab"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum HistoryError {
    /// The storage engine failed (I/O, a database another process holds, on-disk corruption).
    Storage {
        /// What the store was doing.
        op: &'static str,
        /// The engine's error.
        source: Box<dyn Error + Send + Sync + 'static>,
    },
    /// [`commit`](HistoryStore::commit) named a root whose node is neither among the blobs
    /// given nor already stored. Nothing was written.
    RootNotStored(Digest),
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HistoryError::Storage { op, source } => {
                write!(f, "history storage failed while {op}: {source}")
            }
            HistoryError::RootNotStored(r) => write!(
                f,
                "root {} is neither committed with its blobs nor already stored",
                hex(r)
            ),
        }
    }
}

impl Error for HistoryError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            HistoryError::Storage { source, .. } => Some(&**source),
            HistoryError::RootNotStored(_) => None,
        }
    }
}

/// Wraps a storage engine error, naming the operation.
fn storage<E: Error + Send + Sync + 'static>(op: &'static str) -> impl FnOnce(E) -> HistoryError {
    move |e| HistoryError::Storage {
        op,
        source: Box::new(e),
    }
}

/// A panic inside the storage engine, caught by [`guarded`]: the source of the
/// [`HistoryError::Storage`] it becomes.
#[derive(Debug)]
struct EnginePanicked {
    /// The panic's message, when it carried one.
    message: Option<String>,
}

impl fmt::Display for EnginePanicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the storage engine panicked (a corrupt or truncated database file?)")?;
        match &self.message {
            Some(m) => write!(f, ": {m}"),
            None => Ok(()),
        }
    }
}

impl Error for EnginePanicked {}

/// The source of the [`HistoryError::Storage`] a [`RedbHistory::commit`] gives once the engine
/// has panicked in an earlier call (see [`RedbHistory`]'s `panicked`).
#[derive(Debug)]
struct WritesRefused;

impl fmt::Display for WritesRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "the storage engine panicked in an earlier call; writes are refused until the \
             database is reopened",
        )
    }
}

impl Error for WritesRefused {}

/// Runs `f`, one use of the storage engine, turning a panic inside it into a
/// [`HistoryError::Storage`] error for `op`.
///
/// redb trusts the pages of its file: a database corrupted or cut short on disk, in a way its
/// recovery does not notice, can make it index out of bounds and panic (seen on truncated files
/// and flipped bytes; `tests/history_redb.rs` mutates a database to check). SPEC §5 allows no
/// panic through the public API, so each engine call runs under `catch_unwind`. Unwinding
/// through the engine may leave its in-memory state inconsistent; that is safe here because
/// nothing read from a store is trusted unverified (trie nodes are checked against their hash,
/// leaf blobs against their leaf), and a later call that trips on it fails the same way; a
/// [`RedbHistory`] refuses every write after it (its `panicked` latch), so such a state is never
/// written back to the file. No cost on the path that does not panic.
fn guarded<T>(
    op: &'static str,
    f: impl FnOnce() -> Result<T, HistoryError>,
) -> Result<T, HistoryError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|m| (*m).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned());
        Err(HistoryError::Storage {
            op,
            source: Box::new(EnginePanicked { message }),
        })
    })
}

/// A content-addressed store of blobs and recorded state roots.
///
/// Contract of every implementation: [`commit`](HistoryStore::commit) is atomic (all blobs and
/// the root record, or nothing, also across a crash for a durable store); blobs are written
/// once per hash (structural sharing); a commit must bring every blob its root reaches that the
/// store lacks (trie nodes and the leaves' content blobs; the committer's duty, see the module
/// docs), so a stored node always has everything below it; [`roots`](HistoryStore::roots)
/// lists roots in the order first recorded. A store does not check that a blob hashes to its
/// key: readers verify what they read (as [`MerkleMap::load`](crate::merkle::MerkleMap::load)
/// does for trie nodes).
///
/// ```
/// use rhospace_spaces::{HistoryStore, MemoryHistory};
/// fn recorded(store: &dyn HistoryStore) -> usize {
///     store.roots().unwrap().len()
/// }
/// let store = MemoryHistory::new();
/// store.commit(&[([7; 32], b"node".to_vec())], [7; 32]).unwrap();
/// assert_eq!(recorded(&store), 1);
/// ```
pub trait HistoryStore: Send + Sync {
    /// The blob stored under `hash`, if any.
    fn get(&self, hash: &Digest) -> Result<Option<Vec<u8>>, HistoryError>;

    /// Whether a blob is stored under `hash`.
    fn contains(&self, hash: &Digest) -> Result<bool, HistoryError>;

    /// Atomically stores the blobs the store lacks and records `root`: all of it, or (on
    /// error) nothing. `root` must be the hash of a blob given here or already stored
    /// ([`HistoryError::RootNotStored`] otherwise). Blobs already present are skipped (same
    /// hash, same content); recording a root again changes nothing. Returns how many blobs
    /// were newly written.
    fn commit(&self, blobs: &[(Digest, Vec<u8>)], root: Digest) -> Result<usize, HistoryError>;

    /// Whether `root` was recorded by a commit.
    fn has_root(&self, root: &Digest) -> Result<bool, HistoryError>;

    /// Every recorded root, in the order first recorded.
    fn roots(&self) -> Result<Vec<Digest>, HistoryError>;
}

/// The in-memory history: blobs and roots in process memory, shared by reference counting.
///
/// Cost: `get` copies the blob out; `commit` holds one lock for O(blobs given) hash-map
/// operations. Lost when the process exits; use [`RedbHistory`] to keep history on disk.
///
/// ```
/// use rhospace_spaces::{HistoryStore, MemoryHistory};
/// let store = MemoryHistory::new();
/// assert_eq!(store.commit(&[([1; 32], vec![1])], [1; 32]).unwrap(), 1);
/// assert_eq!(store.commit(&[([1; 32], vec![1])], [1; 32]).unwrap(), 0); // already there
/// assert_eq!(store.get(&[1; 32]).unwrap(), Some(vec![1]));
/// ```
#[derive(Debug, Default)]
pub struct MemoryHistory {
    /// Guarded by the lock: blobs by hash (looked up only, never iterated), and the roots in
    /// the order first recorded with a set mirroring them (`roots` and `root_set` always hold
    /// the same elements, each once).
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    blobs: HashMap<Digest, Arc<[u8]>>,
    roots: Vec<Digest>,
    root_set: HashSet<Digest>,
}

impl MemoryHistory {
    /// An empty in-memory history.
    ///
    /// ```
    /// use rhospace_spaces::{HistoryStore, MemoryHistory};
    /// assert!(MemoryHistory::new().roots().unwrap().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }
}

impl HistoryStore for MemoryHistory {
    fn get(&self, hash: &Digest) -> Result<Option<Vec<u8>>, HistoryError> {
        Ok(self.inner.lock().blobs.get(hash).map(|b| b.to_vec()))
    }

    fn contains(&self, hash: &Digest) -> Result<bool, HistoryError> {
        Ok(self.inner.lock().blobs.contains_key(hash))
    }

    fn commit(&self, blobs: &[(Digest, Vec<u8>)], root: Digest) -> Result<usize, HistoryError> {
        let mut inner = self.inner.lock();
        if !inner.blobs.contains_key(&root) && !blobs.iter().any(|(h, _)| *h == root) {
            return Err(HistoryError::RootNotStored(root));
        }
        // Nothing below can fail, so the commit is all-or-nothing under the lock.
        let mut written = 0;
        for (h, bytes) in blobs {
            if !inner.blobs.contains_key(h) {
                inner.blobs.insert(*h, Arc::from(bytes.as_slice()));
                written += 1;
            }
        }
        if inner.root_set.insert(root) {
            inner.roots.push(root);
        }
        Ok(written)
    }

    fn has_root(&self, root: &Digest) -> Result<bool, HistoryError> {
        Ok(self.inner.lock().root_set.contains(root))
    }

    fn roots(&self) -> Result<Vec<Digest>, HistoryError> {
        Ok(self.inner.lock().roots.clone())
    }
}

/// Blobs by hash.
const BLOBS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("rhospace_blobs_v1");
/// Recorded roots by sequence number (the order first recorded).
const ROOTS: TableDefinition<u64, &[u8; 32]> = TableDefinition::new("rhospace_roots_v1");
/// Sequence number by root (for `has_root`). Holds exactly the roots in `ROOTS`.
const ROOT_INDEX: TableDefinition<&[u8; 32], u64> = TableDefinition::new("rhospace_root_index_v1");

/// A history kept on disk in a [`redb`] database (pure Rust, ACID, copy-on-write B-trees).
///
/// Each [`commit`](HistoryStore::commit) is one write transaction with redb's default
/// `Immediate` durability (fsync'd before `commit` returns); it writes only the blobs the
/// database lacks, so checkpoints share unchanged trie nodes on disk. A process that restarts
/// reopens the file and can read every root it recorded. Only one process may open a database
/// at a time (redb locks the file; a second open is a [`HistoryError::Storage`] error). A file
/// damaged on disk gives [`HistoryError::Storage`] errors, never a panic, even where redb itself
/// would panic on it (see `guarded`); what it still serves is verified by its reader. Once
/// redb has panicked inside a call, every later [`commit`](HistoryStore::commit) of this handle
/// fails with [`HistoryError::Storage`] and writes nothing: the engine's in-memory state may be
/// inconsistent, and writing it could damage roots the file still holds intact. Reads go on.
/// Reopening the file starts afresh.
///
/// Cost: `get`/`contains`/`has_root` are one read transaction and a B-tree look-up each;
/// `commit` is O(blobs given · log stored) plus one fsync.
///
/// ```
/// use rhospace_spaces::{HistoryStore, RedbHistory};
/// let dir = std::env::temp_dir().join(format!("rhospace-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("history.redb");
/// {
///     let store = RedbHistory::open(&path).unwrap();
///     store.commit(&[([3; 32], b"blob".to_vec())], [3; 32]).unwrap();
/// } // closed
/// let store = RedbHistory::open(&path).unwrap();
/// assert!(store.has_root(&[3; 32]).unwrap());
/// assert_eq!(store.get(&[3; 32]).unwrap(), Some(b"blob".to_vec()));
/// # drop(store);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub struct RedbHistory {
    db: redb::Database,
    path: PathBuf,
    /// 1 once redb panicked inside a call of this handle ([`RedbHistory::guarded`]); never
    /// reset. Set, `commit` refuses.
    panicked: AtomicU8,
}

impl fmt::Debug for RedbHistory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbHistory")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RedbHistory {
    /// Opens the database at `path`, creating it (and its tables) if it does not exist.
    /// Opening a database left by a crashed process recovers it to its last committed state.
    ///
    /// ```
    /// use rhospace_spaces::{HistoryStore, RedbHistory};
    /// let path = std::env::temp_dir().join(format!("rhospace-open-{}.redb", std::process::id()));
    /// let store = RedbHistory::open(&path).unwrap();
    /// assert!(store.roots().unwrap().is_empty());
    /// assert_eq!(store.path(), path.as_path());
    /// # drop(store);
    /// # std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Self, HistoryError> {
        let path = path.as_ref().to_path_buf();
        let db = guarded("opening the database", || {
            redb::Database::create(&path).map_err(storage("opening the database"))
        })?;
        // Create the tables up front so that read transactions can always open them.
        guarded("creating tables", || {
            let tx = db.begin_write().map_err(storage("creating tables"))?;
            {
                tx.open_table(BLOBS).map_err(storage("creating tables"))?;
                tx.open_table(ROOTS).map_err(storage("creating tables"))?;
                tx.open_table(ROOT_INDEX)
                    .map_err(storage("creating tables"))?;
            }
            tx.commit().map_err(storage("creating tables"))
        })?;
        Ok(RedbHistory {
            db,
            path,
            panicked: AtomicU8::new(0),
        })
    }

    /// The database file's path.
    ///
    /// ```
    /// # use rhospace_spaces::RedbHistory;
    /// let path = std::env::temp_dir().join(format!("rhospace-path-{}.redb", std::process::id()));
    /// let store = RedbHistory::open(&path).unwrap();
    /// assert!(store.path().ends_with(path.file_name().unwrap()));
    /// # drop(store);
    /// # std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// [`guarded`], noting a caught panic in `panicked`.
    fn guarded<T>(
        &self,
        op: &'static str,
        f: impl FnOnce() -> Result<T, HistoryError>,
    ) -> Result<T, HistoryError> {
        let out = guarded(op, f);
        if let Err(HistoryError::Storage { source, .. }) = &out {
            if source.is::<EnginePanicked>() {
                // Relaxed: the latch publishes no data. A commit that races with the panicking
                // call is not ordered after it whatever the ordering; every later one sees it.
                self.panicked.store(1, Ordering::Relaxed);
            }
        }
        out
    }

    fn read_blob<T>(
        &self,
        op: &'static str,
        hash: &Digest,
        f: impl FnOnce(&[u8]) -> T,
    ) -> Result<Option<T>, HistoryError> {
        self.guarded(op, || {
            let tx = self.db.begin_read().map_err(storage(op))?;
            let table = tx.open_table(BLOBS).map_err(storage(op))?;
            let got = table.get(hash).map_err(storage(op))?;
            Ok(got.map(|g| f(g.value())))
        })
    }
}

impl HistoryStore for RedbHistory {
    fn get(&self, hash: &Digest) -> Result<Option<Vec<u8>>, HistoryError> {
        self.read_blob("reading a blob", hash, <[u8]>::to_vec)
    }

    fn contains(&self, hash: &Digest) -> Result<bool, HistoryError> {
        Ok(self.read_blob("looking up a blob", hash, |_| ())?.is_some())
    }

    fn commit(&self, blobs: &[(Digest, Vec<u8>)], root: Digest) -> Result<usize, HistoryError> {
        const OP: &str = "committing a checkpoint";
        // Relaxed: see `guarded`.
        if self.panicked.load(Ordering::Relaxed) != 0 {
            return Err(HistoryError::Storage {
                op: OP,
                source: Box::new(WritesRefused),
            });
        }
        // A panic unwinds through the transaction, which aborts it: nothing written.
        self.guarded(OP, || self.commit_unguarded(blobs, root))
    }

    fn has_root(&self, root: &Digest) -> Result<bool, HistoryError> {
        const OP: &str = "looking up a root";
        self.guarded(OP, || {
            let tx = self.db.begin_read().map_err(storage(OP))?;
            let index = tx.open_table(ROOT_INDEX).map_err(storage(OP))?;
            Ok(index.get(root).map_err(storage(OP))?.is_some())
        })
    }

    fn roots(&self) -> Result<Vec<Digest>, HistoryError> {
        const OP: &str = "listing roots";
        self.guarded(OP, || {
            let tx = self.db.begin_read().map_err(storage(OP))?;
            let roots = tx.open_table(ROOTS).map_err(storage(OP))?;
            let mut out = Vec::new();
            // Keys are sequence numbers, so the B-tree order is the recording order.
            for entry in roots.iter().map_err(storage(OP))? {
                let (_, root) = entry.map_err(storage(OP))?;
                out.push(*root.value());
            }
            Ok(out)
        })
    }
}

impl RedbHistory {
    /// [`HistoryStore::commit`] without the panic guard (see [`guarded`]).
    fn commit_unguarded(
        &self,
        blobs: &[(Digest, Vec<u8>)],
        root: Digest,
    ) -> Result<usize, HistoryError> {
        const OP: &str = "committing a checkpoint";
        let tx = self.db.begin_write().map_err(storage(OP))?;
        let mut written = 0;
        {
            let mut table = tx.open_table(BLOBS).map_err(storage(OP))?;
            let root_stored = table.get(&root).map_err(storage(OP))?.is_some();
            if !root_stored && !blobs.iter().any(|(h, _)| *h == root) {
                // Dropping the transaction uncommitted aborts it: nothing written.
                return Err(HistoryError::RootNotStored(root));
            }
            for (h, bytes) in blobs {
                if table.get(h).map_err(storage(OP))?.is_none() {
                    table.insert(h, bytes.as_slice()).map_err(storage(OP))?;
                    written += 1;
                }
            }
            let mut index = tx.open_table(ROOT_INDEX).map_err(storage(OP))?;
            if index.get(&root).map_err(storage(OP))?.is_none() {
                let mut roots = tx.open_table(ROOTS).map_err(storage(OP))?;
                let seq = roots.len().map_err(storage(OP))?;
                roots.insert(seq, &root).map_err(storage(OP))?;
                index.insert(&root, seq).map_err(storage(OP))?;
            }
        }
        tx.commit().map_err(storage(OP))?;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{MerkleMap, EMPTY_ROOT};

    fn stores() -> Vec<(Box<dyn HistoryStore>, Option<tempfile::TempDir>)> {
        let dir = tempfile::tempdir().expect("tempdir");
        let redb = RedbHistory::open(dir.path().join("h.redb")).expect("open");
        vec![
            (Box::new(MemoryHistory::new()), None),
            (Box::new(redb), Some(dir)),
        ]
    }

    #[test]
    fn stores_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<MemoryHistory>();
        check::<RedbHistory>();
        check::<Box<dyn HistoryStore>>();
    }

    #[test]
    fn commit_records_roots_once_in_order() {
        for (store, _dir) in stores() {
            assert_eq!(store.commit(&[([1; 32], vec![1])], [1; 32]).unwrap(), 1);
            assert_eq!(
                store
                    .commit(&[([2; 32], vec![2]), ([1; 32], vec![1])], [2; 32])
                    .unwrap(),
                1
            );
            // again: nothing new, root not repeated
            assert_eq!(store.commit(&[], [1; 32]).unwrap(), 0);
            assert_eq!(store.roots().unwrap(), vec![[1; 32], [2; 32]]);
            assert!(store.has_root(&[2; 32]).unwrap());
            assert!(!store.has_root(&[3; 32]).unwrap());
            assert!(store.contains(&[2; 32]).unwrap());
            assert_eq!(store.get(&[2; 32]).unwrap(), Some(vec![2]));
            assert_eq!(store.get(&[9; 32]).unwrap(), None);
        }
    }

    #[test]
    fn a_root_without_its_node_is_refused_and_nothing_written() {
        for (store, _dir) in stores() {
            let err = store.commit(&[([5; 32], vec![5])], [6; 32]).unwrap_err();
            assert!(matches!(err, HistoryError::RootNotStored(r) if r == [6; 32]));
            assert!(!store.contains(&[5; 32]).unwrap());
            assert!(store.roots().unwrap().is_empty());
        }
    }

    #[test]
    fn checkpoints_share_unchanged_nodes() {
        for (store, _dir) in stores() {
            let mut m = MerkleMap::new();
            let first = m.missing_nodes(|h| store.contains(h)).unwrap();
            store.commit(&first.nodes, m.root()).unwrap();
            assert!(store.has_root(&EMPTY_ROOT).unwrap());
            for i in 0..1000u32 {
                let mut k = [0u8; 32];
                k[..4].copy_from_slice(&i.to_be_bytes());
                k[4] = (i * 37) as u8;
                m.insert(*blake3::hash(&k).as_bytes(), k);
            }
            let big = m.missing_nodes(|h| store.contains(h)).unwrap();
            let wrote_big = store.commit(&big.nodes, m.root()).unwrap();
            assert!(wrote_big > 1000);
            // change one key: only its path is new
            let (k0, _) = m.iter().next().map(|(k, v)| (*k, *v)).unwrap();
            m.insert(k0, [0xEE; 32]);
            let small = m.missing_nodes(|h| store.contains(h)).unwrap();
            let wrote_small = store.commit(&small.nodes, m.root()).unwrap();
            assert!((1..=6).contains(&wrote_small), "{wrote_small}");
            // every recorded root loads back
            for r in store.roots().unwrap() {
                let back = MerkleMap::load(&r, |h| store.get(h)).unwrap();
                assert_eq!(back.root(), r);
            }
        }
    }

    #[test]
    fn storage_errors_carry_their_source() {
        let dir = tempfile::tempdir().unwrap();
        // A directory is not a database file.
        let err = RedbHistory::open(dir.path()).unwrap_err();
        assert!(matches!(
            err,
            HistoryError::Storage {
                op: "opening the database",
                ..
            }
        ));
        assert!(err.source().is_some());
        assert!(err
            .to_string()
            .starts_with("history storage failed while opening"));
    }
}
