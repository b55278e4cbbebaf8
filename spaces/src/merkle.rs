//! A persistent Merkle map: the 16-ary, path-compressed radix trie behind the state root
//! (SPEC §6).
//!
//! [`MerkleMap`] maps 32-byte keys (hashes of channels or channel lists) to 32-byte leaf hashes
//! (hashes of a collection's canonical contents) and commits to all of it in one 32-byte
//! [`root`](MerkleMap::root).
//!
//! # Algorithm
//!
//! A radix trie on the key's 64 nibbles (most significant nibble of byte 0 first), with path
//! compression: a **leaf** holds a whole key and its value; a **branch** holds the nibble index
//! `depth` at which the keys below it first differ and one child per distinct nibble there.
//! Nodes live behind `Arc`s, so a clone of the map is O(1) and an update copies only the path
//! from the root to the key (or mutates it in place where no clone shares it, via
//! `Arc::make_mut`).
//!
//! # Guarantees
//!
//! - **Canonical shape, so the root depends only on the contents.** For a key set `S`, the node
//!   for `S` is a leaf when `|S| = 1`, and otherwise a branch at the first nibble where the keys
//!   of `S` do not all agree, with one child per nibble value found there. Every update restores
//!   that shape (a removal that leaves a branch with one child replaces the branch by the
//!   child), so the trie, and hence the root, is a function of the key → value map alone: never
//!   of insertion or removal order, of clones, of the process or of the platform.
//! - **Incremental hashing.** Each node caches its hash. An update clears the caches on its
//!   path only; [`root`](MerkleMap::root) rehashes just the cleared nodes, each once, however
//!   many updates touched it since the last `root`. Changing `k` keys of an `n`-key map and
//!   taking the root costs O(k · log₁₆ n) hashes (see the `incremental` test: 10 of 100,000 keys
//!   take well under 1% of a rebuild's hashes).
//! - **Structural sharing on disk.** A node's id is the hash of its stored bytes
//!   ([`encode_node`]), so a store keeps each distinct node once; [`MerkleMap::missing_nodes`]
//!   lists only the nodes a store lacks (it skips a whole subtree when the store has its root),
//!   and [`MerkleMap::load`] rebuilds a map from a root hash, checking every node it reads.
//!
//! # Hash function
//!
//! BLAKE3, keyed with a constant project key ([`HASH_KEY`], derived with BLAKE3's own
//! `derive_key` from a fixed context string) so that no hash here can collide with a BLAKE3
//! hash made for another purpose; within the project, every hashed message starts with a tag
//! byte naming what it is (empty trie, leaf node, branch node, ordered list, multiset item,
//! multiset), and each tag's layout is fixed, so different kinds of message never hash alike.
//! Why BLAKE3: 32-byte output, fast on short messages (one compression for a leaf) and faster
//! than SHA-2 or BLAKE2 on long ones (SIMD, tree mode), no length-extension weakness, built-in
//! keyed and key-derivation modes for domain separation, and a well-kept pure-Rust crate with
//! portable fallbacks (the same bytes on every platform).
//!
//! # Costs
//!
//! | operation | time |
//! |---|---|
//! | `clone` | O(1) |
//! | `get`, `insert`, `remove` | O(log₁₆ n) node visits (at most 65), no hashing |
//! | `apply` (k changes) | O(k · log₁₆ n), no hashing |
//! | `root` | O(nodes changed since the last `root`) hashes; O(1) when nothing changed |
//! | `missing_nodes` | O(nodes the store lacks) encodings and store look-ups |
//! | `load` | O(n) node reads, each verified |
//!
//! # Limits
//!
//! A branch keeps a sorted `Vec` of its children (at most 16), so inserting a child shifts at
//! most 15 pointers. Recursion depth is bounded by the key length (at most 64 branches and a
//! leaf on any path), never by the input.
//!
//! ```
//! use rhospace_spaces::merkle::{MerkleMap, EMPTY_ROOT};
//! let mut m = MerkleMap::new();
//! assert_eq!(m.root(), EMPTY_ROOT);
//! m.insert([1; 32], [10; 32]);
//! m.insert([2; 32], [20; 32]);
//! let snapshot = m.clone(); // O(1)
//! m.remove(&[1; 32]);
//! assert_ne!(m.root(), snapshot.root());
//!
//! // The root depends only on the contents, not on the order of updates.
//! let mut other = MerkleMap::new();
//! other.insert([2; 32], [20; 32]);
//! assert_eq!(other.root(), m.root());
//! ```

use core::fmt;
use std::sync::{Arc, OnceLock};

/// A 32-byte hash or key.
pub type Digest = [u8; 32];

/// The BLAKE3 key every hash of this module is keyed with:
/// `blake3::derive_key("rhospace 2026-11 state root v1", b"")` (a test checks it).
pub const HASH_KEY: Digest = [
    0x3a, 0x68, 0x45, 0xab, 0x93, 0x1b, 0x7f, 0xb0, 0x4c, 0xad, 0x68, 0x8b, 0x88, 0xfc, 0xdb, 0x8e,
    0x06, 0xe9, 0x2f, 0xff, 0xef, 0xa9, 0x48, 0xaf, 0x5b, 0x74, 0xae, 0x60, 0xf8, 0xe9, 0x96, 0x05,
];
/// The context string [`HASH_KEY`] is derived from.
pub const HASH_CONTEXT: &str = "rhospace 2026-11 state root v1";

// Message tags: the first byte of every hashed message.
const TAG_EMPTY: u8 = 0x00;
const TAG_LEAF: u8 = 0x01;
const TAG_BRANCH: u8 = 0x02;
const TAG_ORDERED: u8 = 0x10;
const TAG_ITEM: u8 = 0x11;
const TAG_MULTISET: u8 = 0x12;
const TAG_KEY_DATA: u8 = 0x20;
const TAG_KEY_CONTINUATIONS: u8 = 0x21;

/// The root of the empty map: the hash of the one-byte empty-trie message.
///
/// ```
/// use rhospace_spaces::merkle::{MerkleMap, EMPTY_ROOT};
/// assert_eq!(MerkleMap::new().root(), EMPTY_ROOT);
/// ```
pub const EMPTY_ROOT: Digest = [
    0x71, 0x8f, 0xf8, 0xbf, 0x42, 0x1a, 0x52, 0x1b, 0x4c, 0xe7, 0xfe, 0xcd, 0x07, 0x85, 0xa3, 0x62,
    0xa9, 0x7f, 0x0f, 0x5f, 0x28, 0x9c, 0x51, 0x15, 0x2a, 0x0f, 0x0f, 0xe8, 0xf5, 0xfd, 0x23, 0x41,
];
/// The stored bytes of the empty trie (see [`encode_node`]).
const EMPTY_NODE: [u8; 1] = [TAG_EMPTY];

#[cfg(test)]
thread_local! {
    /// Node hashes computed on this thread (tests count them to check incrementality).
    static NODE_HASHES: core::cell::Cell<u64> = const { core::cell::Cell::new(0) };
}

/// The keyed hash of one complete message.
fn keyed(message: &[u8]) -> Digest {
    *blake3::keyed_hash(&HASH_KEY, message).as_bytes()
}

/// Hashes a sequence of byte strings where **order matters** (Queue, Stack, PriorityQueue
/// contents): the hash of the tag, then each item as its LEB128 length and bytes. The
/// length prefixes make the split unambiguous, so `["ab", "c"]` and `["a", "bc"]` differ.
///
/// Time: O(total bytes).
///
/// ```
/// use rhospace_spaces::merkle::hash_ordered;
/// let a = hash_ordered([&b"x"[..], b"y"]);
/// assert_ne!(a, hash_ordered([&b"y"[..], b"x"]));
/// assert_ne!(hash_ordered([&b"ab"[..], b"c"]), hash_ordered([&b"a"[..], b"bc"]));
/// assert_eq!(a, hash_ordered(vec![b"x".to_vec(), b"y".to_vec()]));
/// ```
pub fn hash_ordered<I>(items: I) -> Digest
where
    I: IntoIterator,
    I::Item: AsRef<[u8]>,
{
    // Small pieces are gathered into one buffer (each `update` call has a fixed cost that
    // dominates for the short parts of a call's hash); large items go to the hasher directly.
    const BUF: usize = 256;
    let mut h = blake3::Hasher::new_keyed(&HASH_KEY);
    let mut buf = [0u8; BUF];
    let mut n = 0;
    buf[0] = TAG_ORDERED;
    n += 1;
    for item in items {
        let item = item.as_ref();
        let mut len = [0u8; 10];
        let l = varint_into(item.len() as u64, &mut len);
        if n + l + item.len() > BUF {
            h.update(&buf[..n]);
            n = 0;
        }
        buf[n..n + l].copy_from_slice(&len[..l]);
        n += l;
        if item.len() >= BUF - n {
            h.update(&buf[..n]);
            n = 0;
            h.update(item);
        } else {
            buf[n..n + item.len()].copy_from_slice(item);
            n += item.len();
        }
    }
    h.update(&buf[..n]);
    *h.finalize().as_bytes()
}

/// Writes `v` as LEB128 (the same bytes as [`crate::encode_varint`]) into `out`; returns the
/// length.
fn varint_into(mut v: u64, out: &mut [u8; 10]) -> usize {
    let mut i = 0;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out[i] = byte;
            return i + 1;
        }
        out[i] = byte | 0x80;
        i += 1;
    }
}

/// Hashes a **multiset** of byte strings (Bag and Set contents): order does not matter,
/// multiplicity does. Each item is hashed on its own, the item hashes are sorted, and the
/// count and the sorted list are hashed together.
///
/// Time: O(total bytes + n log n).
///
/// ```
/// use rhospace_spaces::merkle::hash_multiset;
/// let a = hash_multiset([&b"x"[..], b"y", b"x"]);
/// assert_eq!(a, hash_multiset([&b"y"[..], b"x", b"x"]));
/// assert_ne!(a, hash_multiset([&b"x"[..], b"y"])); // duplicates count
/// ```
pub fn hash_multiset<I>(items: I) -> Digest
where
    I: IntoIterator,
    I::Item: AsRef<[u8]>,
{
    let mut hashes: Vec<Digest> = items
        .into_iter()
        .map(|item| {
            let mut h = blake3::Hasher::new_keyed(&HASH_KEY);
            h.update(&[TAG_ITEM]);
            h.update(item.as_ref());
            *h.finalize().as_bytes()
        })
        .collect();
    hashes.sort_unstable();
    let mut h = blake3::Hasher::new_keyed(&HASH_KEY);
    h.update(&[TAG_MULTISET]);
    h.update(&(hashes.len() as u64).to_le_bytes());
    for x in &hashes {
        h.update(x);
    }
    *h.finalize().as_bytes()
}

/// What a trie key names. The domain is hashed into the key, so the key of a channel's data
/// never equals the key of a channel list's continuations, even for a one-channel list whose
/// encoding happens to equal a channel's.
///
/// ```
/// use rhospace_spaces::merkle::{trie_key, KeyDomain};
/// assert_ne!(trie_key(KeyDomain::Data, b"c"), trie_key(KeyDomain::Continuations, b"c"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyDomain {
    /// The data stored on one channel (key over the channel's canonical encoding).
    Data,
    /// The continuations waiting on one channel list (key over the list's canonical
    /// encoding, channels in the join's order).
    Continuations,
}

/// The trie key for `encoded` (a channel's or a channel list's canonical encoding) in
/// `domain`: a keyed BLAKE3 hash with a per-domain tag, so keys spread evenly over the trie
/// whatever the channels look like.
///
/// Time: O(`encoded.len()`).
///
/// ```
/// use rhospace_spaces::merkle::{trie_key, KeyDomain};
/// use rhospace_spaces::Encode;
/// let mut enc = Vec::new();
/// "orders".encode(&mut enc);
/// let k = trie_key(KeyDomain::Data, &enc);
/// assert_eq!(k, trie_key(KeyDomain::Data, &enc)); // stable
/// ```
pub fn trie_key(domain: KeyDomain, encoded: &[u8]) -> Digest {
    let tag = match domain {
        KeyDomain::Data => TAG_KEY_DATA,
        KeyDomain::Continuations => TAG_KEY_CONTINUATIONS,
    };
    let mut h = blake3::Hasher::new_keyed(&HASH_KEY);
    h.update(&[tag]);
    h.update(encoded);
    *h.finalize().as_bytes()
}

/// Nibble `i` (0..64) of `key`: the high half of byte `i / 2` first.
#[inline]
fn nibble(key: &Digest, i: usize) -> usize {
    let b = key[i / 2];
    usize::from(if i.is_multiple_of(2) {
        b >> 4
    } else {
        b & 0x0f
    })
}

/// The first nibble index at which `a` and `b` differ, `None` when equal.
fn first_diff(a: &Digest, b: &Digest) -> Option<usize> {
    let i = a.iter().zip(b).position(|(x, y)| x != y)?;
    Some(if (a[i] ^ b[i]) & 0xf0 != 0 {
        2 * i
    } else {
        2 * i + 1
    })
}

/// One trie node. Invariants (for a branch):
/// - `children` has **at least two** entries, sorted by nibble, and
///   `bitmap` has exactly their nibbles set (bit `n` ⇔ a child for nibble `n`);
/// - every key below child `n` has nibble `depth` equal to `n`, and all keys below agree on
///   nibbles `0..depth` (so `depth` is where they first differ);
/// - a child branch has a strictly greater `depth` (so a path has at most 64 branches);
/// - `key` agrees with every key below on nibbles `0..depth` (it is a key that was below when
///   the branch was made; it need not still be present);
/// - `len` is the number of leaves below.
///
/// `hash`, when set, is the hash of [`encode_node`]'s bytes for this node; every mutation
/// clears it.
#[derive(Clone)]
struct Node {
    hash: OnceLock<Digest>,
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Leaf {
        key: Digest,
        value: Digest,
    },
    Branch {
        depth: u8,
        bitmap: u16,
        len: usize,
        key: Digest,
        children: Vec<Arc<Node>>,
    },
}

impl Node {
    fn leaf(key: Digest, value: Digest) -> Arc<Node> {
        Arc::new(Node {
            hash: OnceLock::new(),
            kind: Kind::Leaf { key, value },
        })
    }

    /// A branch at `depth` over two nodes whose keys differ first at `depth`.
    fn pair(depth: usize, a: Arc<Node>, b: Arc<Node>) -> Arc<Node> {
        let (na, nb) = (nibble(a.key(), depth), nibble(b.key(), depth));
        let key = *a.key();
        let len = a.len() + b.len();
        let children = if na < nb { vec![a, b] } else { vec![b, a] };
        Arc::new(Node {
            hash: OnceLock::new(),
            kind: Kind::Branch {
                // depth < 64: two distinct 32-byte keys differ at a nibble below 64.
                depth: depth as u8,
                bitmap: (1u16 << na) | (1u16 << nb),
                len,
                key,
                children,
            },
        })
    }

    /// A key that agrees with every key below on the nibbles above this node.
    fn key(&self) -> &Digest {
        match &self.kind {
            Kind::Leaf { key, .. } | Kind::Branch { key, .. } => key,
        }
    }

    fn len(&self) -> usize {
        match &self.kind {
            Kind::Leaf { .. } => 1,
            Kind::Branch { len, .. } => *len,
        }
    }

    /// The cached hash, computing it (and any cleared child hash) first. Recursion depth is at
    /// most 65 (see the branch invariants).
    fn hash(&self) -> Digest {
        *self.hash.get_or_init(|| {
            #[cfg(test)]
            NODE_HASHES.with(|c| c.set(c.get() + 1));
            let mut buf = Vec::with_capacity(4 + 32 * 16);
            self.encode_into(&mut buf);
            keyed(&buf)
        })
    }

    /// The node's stored bytes (see [`encode_node`]); children must be hashable.
    fn encode_into(&self, out: &mut Vec<u8>) {
        match &self.kind {
            Kind::Leaf { key, value } => {
                out.push(TAG_LEAF);
                out.extend_from_slice(key);
                out.extend_from_slice(value);
            }
            Kind::Branch {
                depth,
                bitmap,
                children,
                ..
            } => {
                out.push(TAG_BRANCH);
                out.push(*depth);
                out.extend_from_slice(&bitmap.to_le_bytes());
                for c in children {
                    out.extend_from_slice(&c.hash());
                }
            }
        }
    }
}

/// Position of nibble `n`'s child in a branch's sorted `children`.
#[inline]
fn slot(bitmap: u16, n: usize) -> usize {
    (bitmap & ((1u16 << n) - 1)).count_ones() as usize
}

/// What an insert did, so branches on the path can keep `len` right.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Inserted {
    Unchanged,
    Replaced,
    Added,
}

fn insert(slot_ref: &mut Option<Arc<Node>>, key: &Digest, value: &Digest) -> Inserted {
    let Some(node) = slot_ref else {
        *slot_ref = Some(Node::leaf(*key, *value));
        return Inserted::Added;
    };
    insert_at(node, key, value)
}

fn insert_at(node: &mut Arc<Node>, key: &Digest, value: &Digest) -> Inserted {
    match &node.kind {
        Kind::Leaf { key: k, value: v } => match first_diff(k, key) {
            None if v == value => Inserted::Unchanged,
            None => {
                *node = Node::leaf(*key, *value);
                Inserted::Replaced
            }
            Some(d) => {
                *node = Node::pair(d, node.clone(), Node::leaf(*key, *value));
                Inserted::Added
            }
        },
        Kind::Branch { depth, key: k, .. } => {
            let depth = usize::from(*depth);
            if let Some(d) = first_diff(k, key).filter(|&d| d < depth) {
                // The new key leaves this branch's common prefix above it: a new branch at the
                // first difference takes both.
                *node = Node::pair(d, node.clone(), Node::leaf(*key, *value));
                return Inserted::Added;
            }
            let n = nibble(key, depth);
            let inner = Arc::make_mut(node);
            let Kind::Branch {
                bitmap,
                len,
                children,
                ..
            } = &mut inner.kind
            else {
                return Inserted::Unchanged; // unreachable: the kind was just matched
            };
            let i = slot(*bitmap, n);
            let done = if *bitmap & (1 << n) == 0 {
                children.insert(i, Node::leaf(*key, *value));
                *bitmap |= 1 << n;
                Inserted::Added
            } else {
                insert_at(&mut children[i], key, value)
            };
            if done == Inserted::Added {
                *len += 1;
            }
            if done != Inserted::Unchanged {
                inner.hash = OnceLock::new();
            }
            done
        }
    }
}

/// Whether a removal left the node itself in place or removed it entirely.
enum Removed {
    Gone,
    Kept,
}

/// Removes `key` from the subtree at `slot_ref`, returning its value. Looks first, so that a
/// miss copies nothing shared with a clone.
fn remove(slot_ref: &mut Option<Arc<Node>>, key: &Digest) -> Option<Digest> {
    let node = slot_ref.as_mut()?;
    if !contains(node, key) {
        return None;
    }
    let (old, removed) = remove_at(node, key)?;
    if let Removed::Gone = removed {
        *slot_ref = None;
    }
    Some(old)
}

/// Removes `key`, known to be present below `node`. A branch left with one child is replaced
/// by that child (it is no longer where two keys differ), which keeps the shape canonical.
fn remove_at(node: &mut Arc<Node>, key: &Digest) -> Option<(Digest, Removed)> {
    let n = match &node.kind {
        Kind::Leaf { key: k, value } => return (k == key).then_some((*value, Removed::Gone)),
        Kind::Branch { depth, .. } => nibble(key, usize::from(*depth)),
    };
    let inner = Arc::make_mut(node);
    let Kind::Branch {
        bitmap,
        len,
        children,
        ..
    } = &mut inner.kind
    else {
        return None; // unreachable: the kind was just matched
    };
    if *bitmap & (1 << n) == 0 {
        return None;
    }
    let i = slot(*bitmap, n);
    let (old, removed) = remove_at(&mut children[i], key)?;
    if let Removed::Gone = removed {
        children.remove(i);
        *bitmap &= !(1 << n);
    }
    *len -= 1;
    inner.hash = OnceLock::new();
    let only = if children.len() == 1 {
        children.pop()
    } else {
        None
    };
    if let Some(only) = only {
        *node = only;
    }
    Some((old, Removed::Kept))
}

fn lookup<'a>(mut node: &'a Node, key: &Digest) -> Option<&'a Digest> {
    loop {
        match &node.kind {
            Kind::Leaf { key: k, value } => return (k == key).then_some(value),
            Kind::Branch {
                depth,
                bitmap,
                children,
                ..
            } => {
                let n = nibble(key, usize::from(*depth));
                if bitmap & (1 << n) == 0 {
                    return None;
                }
                node = &children[slot(*bitmap, n)];
            }
        }
    }
}

fn contains(node: &Node, key: &Digest) -> bool {
    lookup(node, key).is_some()
}

/// A persistent, content-addressed Merkle map from 32-byte keys to 32-byte values (see the
/// [module docs](self) for the algorithm, guarantees and costs).
///
/// Invariant: `root` is `None` exactly when the map is empty, and otherwise the canonical trie
/// of the map's contents (see the module's *Guarantees*).
///
/// ```
/// use rhospace_spaces::merkle::MerkleMap;
/// let mut m = MerkleMap::new();
/// m.apply([([1; 32], Some([7; 32])), ([2; 32], Some([8; 32]))]);
/// assert_eq!(m.get(&[1; 32]), Some(&[7; 32]));
/// assert_eq!(m.len(), 2);
/// m.apply([([1; 32], None)]);
/// assert_eq!(m.len(), 1);
/// ```
#[derive(Clone, Default)]
pub struct MerkleMap {
    root: Option<Arc<Node>>,
}

impl fmt::Debug for MerkleMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MerkleMap")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl MerkleMap {
    /// The empty map; its root is [`EMPTY_ROOT`].
    ///
    /// ```
    /// assert!(rhospace_spaces::merkle::MerkleMap::new().is_empty());
    /// ```
    pub const fn new() -> Self {
        MerkleMap { root: None }
    }

    /// The number of keys. Time: O(1).
    ///
    /// ```
    /// let mut m = rhospace_spaces::merkle::MerkleMap::new();
    /// m.insert([0; 32], [0; 32]);
    /// assert_eq!(m.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.root.as_ref().map_or(0, |n| n.len())
    }

    /// Whether the map has no keys. Time: O(1).
    ///
    /// ```
    /// assert!(rhospace_spaces::merkle::MerkleMap::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.root.is_none()
    }

    /// The value of `key`. Time: O(log₁₆ n).
    ///
    /// ```
    /// let mut m = rhospace_spaces::merkle::MerkleMap::new();
    /// m.insert([3; 32], [4; 32]);
    /// assert_eq!(m.get(&[3; 32]), Some(&[4; 32]));
    /// assert_eq!(m.get(&[5; 32]), None);
    /// ```
    pub fn get(&self, key: &Digest) -> Option<&Digest> {
        lookup(self.root.as_deref()?, key)
    }

    /// Sets `key` to `value`, returning the previous value. Hashing is deferred to
    /// [`root`](MerkleMap::root). Setting a key to the value it has changes nothing (and copies
    /// nothing shared with a clone).
    ///
    /// Time: O(log₁₆ n).
    ///
    /// ```
    /// let mut m = rhospace_spaces::merkle::MerkleMap::new();
    /// assert_eq!(m.insert([1; 32], [1; 32]), None);
    /// assert_eq!(m.insert([1; 32], [2; 32]), Some([1; 32]));
    /// ```
    pub fn insert(&mut self, key: Digest, value: Digest) -> Option<Digest> {
        let old = self.get(&key).copied();
        if old != Some(value) {
            insert(&mut self.root, &key, &value);
        }
        old
    }

    /// Removes `key`, returning its value. Time: O(log₁₆ n).
    ///
    /// ```
    /// let mut m = rhospace_spaces::merkle::MerkleMap::new();
    /// m.insert([1; 32], [9; 32]);
    /// assert_eq!(m.remove(&[1; 32]), Some([9; 32]));
    /// assert_eq!(m.remove(&[1; 32]), None);
    /// assert!(m.is_empty());
    /// ```
    pub fn remove(&mut self, key: &Digest) -> Option<Digest> {
        remove(&mut self.root, key)
    }

    /// Applies a batch of changes in order: `Some(v)` sets the key, `None` removes it.
    ///
    /// Nodes are hashed lazily, so the next [`root`](MerkleMap::root) hashes each node the
    /// batch touched once, however many of its changes passed through it: a batch of `k`
    /// changes costs O(k · log₁₆ n) node visits now and at most that many hashes later. The
    /// first change through a node shared with a clone copies it; later ones mutate the copy in
    /// place.
    ///
    /// ```
    /// use rhospace_spaces::merkle::MerkleMap;
    /// let mut a = MerkleMap::new();
    /// a.apply([([1; 32], Some([1; 32])), ([2; 32], Some([2; 32])), ([1; 32], None)]);
    /// let mut b = MerkleMap::new();
    /// b.insert([2; 32], [2; 32]);
    /// assert_eq!(a.root(), b.root());
    /// ```
    pub fn apply<I>(&mut self, changes: I)
    where
        I: IntoIterator<Item = (Digest, Option<Digest>)>,
    {
        for (key, change) in changes {
            match change {
                Some(value) => {
                    self.insert(key, value);
                }
                None => {
                    self.remove(&key);
                }
            }
        }
    }

    /// The Merkle root: [`EMPTY_ROOT`] for the empty map, else the root node's hash. Rehashes
    /// only the nodes changed since their hashes were last computed.
    ///
    /// Time: O(1) when nothing changed; O(changed nodes) hashes otherwise.
    ///
    /// ```
    /// let mut m = rhospace_spaces::merkle::MerkleMap::new();
    /// m.insert([1; 32], [1; 32]);
    /// let r = m.root();
    /// assert_eq!(m.root(), r); // cached
    /// ```
    pub fn root(&self) -> Digest {
        self.root.as_ref().map_or(EMPTY_ROOT, |n| n.hash())
    }

    /// The entries in ascending key order (byte order of the key).
    ///
    /// Time: O(n) for the whole walk; the iterator holds a stack of at most 65 frames.
    ///
    /// ```
    /// let mut m = rhospace_spaces::merkle::MerkleMap::new();
    /// m.insert([2; 32], [0; 32]);
    /// m.insert([1; 32], [0; 32]);
    /// let keys: Vec<u8> = m.iter().map(|(k, _)| k[0]).collect();
    /// assert_eq!(keys, [1, 2]);
    /// ```
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            stack: self.root.as_deref().into_iter().collect(),
        }
    }

    /// The nodes reachable from this map's root that a store does not hold yet, as
    /// `(hash, bytes)` pairs ready to store (parents before children), together with the
    /// `(key, value)` of every leaf among them: the leaves whose value blobs the store may also
    /// lack, which a commit must bring too (the trie does not hold them). `have(hash)` says
    /// whether the store holds a node; a subtree whose root it holds is skipped whole (the
    /// store holds a node only together with everything below it, leaf blobs included: the
    /// contract of [`HistoryStore`](crate::HistoryStore)). For the empty map the
    /// one-byte empty-trie node is listed (unless held), so that every root, the empty one
    /// included, is a stored node.
    ///
    /// Time: O(nodes listed) encodings and `have` calls (plus the `have` calls of their held
    /// children).
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use rhospace_spaces::merkle::MerkleMap;
    /// let mut store = BTreeMap::new();
    /// let mut m = MerkleMap::new();
    /// for i in 0..20u8 { m.insert([i; 32], [i; 32]); }
    /// let first = m.missing_nodes(|h| Ok::<_, ()>(store.contains_key(h))).unwrap();
    /// assert_eq!(first.leaves.len(), 20);
    /// store.extend(first.nodes);
    /// m.insert([5; 32], [0; 32]);
    /// let second = m.missing_nodes(|h| Ok::<_, ()>(store.contains_key(h))).unwrap();
    /// assert_eq!(second.leaves, vec![([5; 32], [0; 32])]); // only the changed path
    /// assert!(second.nodes.len() <= 3);
    /// ```
    pub fn missing_nodes<E>(
        &self,
        mut have: impl FnMut(&Digest) -> Result<bool, E>,
    ) -> Result<Missing, E> {
        let mut out = Missing::default();
        let Some(root) = self.root.as_deref() else {
            if !have(&EMPTY_ROOT)? {
                out.nodes.push((EMPTY_ROOT, EMPTY_NODE.to_vec()));
            }
            return Ok(out);
        };
        let mut stack = vec![root];
        while let Some(node) = stack.pop() {
            let hash = node.hash();
            if have(&hash)? {
                continue;
            }
            let mut bytes = Vec::new();
            node.encode_into(&mut bytes);
            out.nodes.push((hash, bytes));
            match &node.kind {
                Kind::Leaf { key, value } => out.leaves.push((*key, *value)),
                Kind::Branch { children, .. } => {
                    stack.extend(children.iter().rev().map(|c| &**c));
                }
            }
        }
        Ok(out)
    }

    /// Rebuilds the map whose root is `root`, reading nodes with `get(hash)`. Every node read is
    /// checked: its bytes must hash to the id asked for, decode strictly ([`decode_node`]) and
    /// respect the trie's invariants (so a corrupt or hostile store cannot produce a map that
    /// misbehaves or hashes differently). The loaded map's node hashes are cached, so its
    /// `root()` is O(1).
    ///
    /// Time: O(n) reads and hashes. Recursion depth: at most 65 (checked before descending).
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use rhospace_spaces::merkle::MerkleMap;
    /// let mut m = MerkleMap::new();
    /// for i in 0..50u8 { m.insert([i; 32], [i ^ 1; 32]); }
    /// let mut store = BTreeMap::new();
    /// store.extend(m.missing_nodes(|h| Ok::<_, ()>(store.contains_key(h))).unwrap().nodes);
    /// let back = MerkleMap::load(&m.root(), |h| Ok::<_, ()>(store.get(h).cloned())).unwrap();
    /// assert_eq!(back.root(), m.root());
    /// assert_eq!(back.get(&[7; 32]), Some(&[6; 32]));
    /// ```
    pub fn load<E>(
        root: &Digest,
        mut get: impl FnMut(&Digest) -> Result<Option<Vec<u8>>, E>,
    ) -> Result<MerkleMap, LoadError<E>> {
        if *root == EMPTY_ROOT {
            return Ok(MerkleMap::new());
        }
        Ok(MerkleMap {
            root: Some(load_node(root, 0, &mut get)?),
        })
    }
}

/// Loads the node `hash`, which must be a leaf or a branch at depth `min_depth` or deeper.
fn load_node<E>(
    hash: &Digest,
    min_depth: usize,
    get: &mut impl FnMut(&Digest) -> Result<Option<Vec<u8>>, E>,
) -> Result<Arc<Node>, LoadError<E>> {
    let bytes = get(hash)
        .map_err(LoadError::Store)?
        .ok_or(LoadError::Missing(*hash))?;
    let corrupt = |reason| LoadError::Corrupt {
        hash: *hash,
        reason,
    };
    if keyed(&bytes) != *hash {
        return Err(corrupt(NodeError::HashMismatch));
    }
    let kind = match decode_node(&bytes).map_err(corrupt)? {
        NodeView::Empty => return Err(corrupt(NodeError::MisplacedEmpty)),
        NodeView::Leaf { key, value } => Kind::Leaf { key, value },
        NodeView::Branch {
            depth,
            bitmap,
            children: ids,
        } => {
            let d = usize::from(depth);
            if d < min_depth {
                return Err(corrupt(NodeError::DepthOrder));
            }
            let mut children = Vec::with_capacity(ids.len());
            for id in &ids {
                children.push(load_node(id, d + 1, get)?);
            }
            // Each child's keys must sit under its nibble and share the branch's prefix (each
            // child's own keys already agree below it, so checking representatives suffices).
            let key = *children[0].key();
            let mut nibbles = (0..16).filter(|n| bitmap & (1 << n) != 0);
            for c in &children {
                let n = nibbles.next();
                if Some(nibble(c.key(), d)) != n || first_diff(&key, c.key()).is_some_and(|x| x < d)
                {
                    return Err(corrupt(NodeError::KeyPlacement));
                }
            }
            Kind::Branch {
                depth,
                bitmap,
                len: children.iter().map(|c| c.len()).sum(),
                key,
                children,
            }
        }
    };
    let hash_cell = OnceLock::new();
    let _ = hash_cell.set(*hash);
    Ok(Arc::new(Node {
        hash: hash_cell,
        kind,
    }))
}

/// The nodes a store lacks for a root, from [`MerkleMap::missing_nodes`].
///
/// ```
/// let m = rhospace_spaces::merkle::MerkleMap::new();
/// let missing = m.missing_nodes(|_| Ok::<_, ()>(false)).unwrap();
/// assert_eq!(missing.nodes.len(), 1); // the empty-trie node
/// assert!(missing.leaves.is_empty());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Missing {
    /// `(hash, stored bytes)` of each node to store, parents first, children in nibble order.
    pub nodes: Vec<(Digest, Vec<u8>)>,
    /// `(key, value)` of each leaf node among `nodes`. A commit of these nodes must also bring
    /// the value blob of each leaf the store lacks, or the store is no longer closed under
    /// reachability (see [`HistoryStore`](crate::HistoryStore)).
    pub leaves: Vec<(Digest, Digest)>,
}

/// A decoded trie node, as [`decode_node`] returns it.
///
/// ```
/// use rhospace_spaces::merkle::{decode_node, NodeView};
/// let mut bytes = vec![0x01];
/// bytes.extend([1; 32]);
/// bytes.extend([2; 32]);
/// assert_eq!(decode_node(&bytes), Ok(NodeView::Leaf { key: [1; 32], value: [2; 32] }));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeView {
    /// The empty trie (only ever a root).
    Empty,
    /// A leaf: one key and its value.
    Leaf {
        /// The key.
        key: Digest,
        /// Its value (a leaf hash).
        value: Digest,
    },
    /// A branch.
    Branch {
        /// The nibble index (0..64) where the keys below first differ.
        depth: u8,
        /// Bit `n` set ⇔ a child for nibble `n`; at least two bits.
        bitmap: u16,
        /// The children's hashes, in nibble order.
        children: Vec<Digest>,
    },
}

/// The stored bytes of a node, which are also the message its hash is taken over:
///
/// | node | bytes |
/// |---|---|
/// | empty trie | `0x00` |
/// | leaf | `0x01`, key (32), value (32) |
/// | branch | `0x02`, depth (1), bitmap (2, little-endian), one 32-byte child hash per set bit, in nibble order |
///
/// ```
/// use rhospace_spaces::merkle::{decode_node, encode_node, NodeView};
/// let n = NodeView::Branch { depth: 3, bitmap: 0b101, children: vec![[1; 32], [2; 32]] };
/// let bytes = encode_node(&n);
/// assert_eq!(bytes.len(), 4 + 64);
/// assert_eq!(decode_node(&bytes), Ok(n));
/// ```
pub fn encode_node(node: &NodeView) -> Vec<u8> {
    match node {
        NodeView::Empty => EMPTY_NODE.to_vec(),
        NodeView::Leaf { key, value } => {
            let mut out = Vec::with_capacity(65);
            out.push(TAG_LEAF);
            out.extend_from_slice(key);
            out.extend_from_slice(value);
            out
        }
        NodeView::Branch {
            depth,
            bitmap,
            children,
        } => {
            let mut out = Vec::with_capacity(4 + 32 * children.len());
            out.push(TAG_BRANCH);
            out.push(*depth);
            out.extend_from_slice(&bitmap.to_le_bytes());
            for c in children {
                out.extend_from_slice(c);
            }
            out
        }
    }
}

/// The hash (id) of a node's stored bytes.
///
/// ```
/// use rhospace_spaces::merkle::{encode_node, node_hash, NodeView, EMPTY_ROOT};
/// assert_eq!(node_hash(&encode_node(&NodeView::Empty)), EMPTY_ROOT);
/// ```
pub fn node_hash(bytes: &[u8]) -> Digest {
    keyed(bytes)
}

/// Decodes a node's stored bytes strictly: the exact length for its tag, a depth below 64, at
/// least two children, and one hash per bitmap bit.
///
/// ```
/// use rhospace_spaces::merkle::{decode_node, NodeError};
/// assert_eq!(decode_node(&[]), Err(NodeError::Truncated));
/// assert_eq!(decode_node(&[0x07]), Err(NodeError::InvalidTag(7)));
/// ```
pub fn decode_node(bytes: &[u8]) -> Result<NodeView, NodeError> {
    let (&tag, rest) = bytes.split_first().ok_or(NodeError::Truncated)?;
    match tag {
        TAG_EMPTY if rest.is_empty() => Ok(NodeView::Empty),
        TAG_EMPTY => Err(NodeError::BadLength),
        TAG_LEAF => {
            if rest.len() != 64 {
                return Err(NodeError::BadLength);
            }
            let mut key = [0u8; 32];
            let mut value = [0u8; 32];
            key.copy_from_slice(&rest[..32]);
            value.copy_from_slice(&rest[32..]);
            Ok(NodeView::Leaf { key, value })
        }
        TAG_BRANCH => {
            let [depth, b0, b1, hashes @ ..] = rest else {
                return Err(NodeError::Truncated);
            };
            let bitmap = u16::from_le_bytes([*b0, *b1]);
            if *depth >= 64 {
                return Err(NodeError::BadDepth(*depth));
            }
            let n = bitmap.count_ones() as usize;
            if n < 2 {
                return Err(NodeError::TooFewChildren);
            }
            if hashes.len() != 32 * n {
                return Err(NodeError::BadLength);
            }
            let children = hashes
                .chunks_exact(32)
                .map(|c| {
                    let mut h = [0u8; 32];
                    h.copy_from_slice(c);
                    h
                })
                .collect();
            Ok(NodeView::Branch {
                depth: *depth,
                bitmap,
                children,
            })
        }
        t => Err(NodeError::InvalidTag(t)),
    }
}

/// Why a stored node is not valid.
///
/// ```
/// use rhospace_spaces::merkle::NodeError;
/// assert_eq!(NodeError::HashMismatch.to_string(), "node bytes do not hash to their id");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeError {
    /// No bytes, or a branch shorter than its header.
    Truncated,
    /// A first byte that is not a node tag.
    InvalidTag(u8),
    /// A length that does not fit the tag (or the branch's bitmap).
    BadLength,
    /// A branch depth of 64 or more.
    BadDepth(u8),
    /// A branch with fewer than two children.
    TooFewChildren,
    /// The bytes do not hash to the id they were stored under.
    HashMismatch,
    /// The empty-trie node below a branch.
    MisplacedEmpty,
    /// A branch not deeper than its parent branch.
    DepthOrder,
    /// A child whose keys do not sit under its nibble or share its branch's prefix.
    KeyPlacement,
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::Truncated => f.write_str("node truncated"),
            NodeError::InvalidTag(t) => write!(f, "invalid node tag 0x{t:02x}"),
            NodeError::BadLength => f.write_str("node length does not match its kind"),
            NodeError::BadDepth(d) => write!(f, "branch depth {d} out of range"),
            NodeError::TooFewChildren => f.write_str("branch with fewer than two children"),
            NodeError::HashMismatch => f.write_str("node bytes do not hash to their id"),
            NodeError::MisplacedEmpty => f.write_str("empty-trie node below a branch"),
            NodeError::DepthOrder => f.write_str("branch not deeper than its parent"),
            NodeError::KeyPlacement => f.write_str("child keys misplaced under their branch"),
        }
    }
}

impl std::error::Error for NodeError {}

/// Why [`MerkleMap::load`] failed. `E` is the store's own error.
///
/// ```
/// use rhospace_spaces::merkle::{LoadError, MerkleMap};
/// let err = MerkleMap::load(&[9; 32], |_| Ok::<_, ()>(None)).unwrap_err();
/// assert_eq!(err, LoadError::Missing([9; 32]));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadError<E> {
    /// A node the trie needs is not in the store.
    Missing(Digest),
    /// A stored node is invalid.
    Corrupt {
        /// The node's id.
        hash: Digest,
        /// What is wrong with it.
        reason: NodeError,
    },
    /// The store failed.
    Store(E),
}

impl<E: fmt::Display> fmt::Display for LoadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Missing(h) => write!(f, "trie node {} missing", hex(h)),
            LoadError::Corrupt { hash, reason } => {
                write!(f, "trie node {} corrupt: {reason}", hex(hash))
            }
            LoadError::Store(e) => write!(f, "store error: {e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for LoadError<E> {}

/// Lower-case hex of a digest (for messages).
pub(crate) fn hex(d: &Digest) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// The entries of a [`MerkleMap`] in key order, from [`MerkleMap::iter`].
///
/// ```
/// let m = rhospace_spaces::merkle::MerkleMap::new();
/// assert_eq!(m.iter().count(), 0);
/// ```
pub struct Iter<'a> {
    /// Nodes still to visit, the next on top.
    stack: Vec<&'a Node>,
}

impl fmt::Debug for Iter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").finish_non_exhaustive()
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a Digest, &'a Digest);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let node = self.stack.pop()?;
            match &node.kind {
                Kind::Leaf { key, value } => return Some((key, value)),
                Kind::Branch { children, .. } => {
                    self.stack.extend(children.iter().rev().map(|c| &**c));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn hashes_during(f: impl FnOnce()) -> u64 {
        let before = NODE_HASHES.with(|c| c.get());
        f();
        NODE_HASHES.with(|c| c.get()) - before
    }

    /// A key spread over the whole key space (so the trie has its realistic shape).
    fn k(i: u64) -> Digest {
        *blake3::hash(&i.to_le_bytes()).as_bytes()
    }

    fn v(i: u64) -> Digest {
        let mut d = [0u8; 32];
        d[..8].copy_from_slice(&i.to_le_bytes());
        d
    }

    fn from_sorted(m: &BTreeMap<Digest, Digest>) -> MerkleMap {
        let mut t = MerkleMap::new();
        for (k, v) in m {
            t.insert(*k, *v);
        }
        t
    }

    #[test]
    fn constants_are_what_they_claim() {
        assert_eq!(blake3::derive_key(HASH_CONTEXT, b""), HASH_KEY);
        assert_eq!(keyed(&[TAG_EMPTY]), EMPTY_ROOT);
    }

    #[test]
    fn golden_root() {
        // A fixed tiny map: the root must never change (it is persisted and compared across
        // nodes). Keys [0x12; 32] and [0x13; 32] differ first at nibble 1.
        let mut m = MerkleMap::new();
        m.insert([0x12; 32], [0xAA; 32]);
        m.insert([0x13; 32], [0xBB; 32]);
        m.insert([0xF0; 32], [0xCC; 32]);
        assert_eq!(
            hex(&m.root()),
            "a5cdb7f9916a25328ccd1382522e73540abba4cd4a0823788935797ebd26e6ea"
        );
        // The same root built by hand from the documented node format.
        let leaf = |key: u8, value: u8| {
            node_hash(&encode_node(&NodeView::Leaf {
                key: [key; 32],
                value: [value; 32],
            }))
        };
        let inner = node_hash(&encode_node(&NodeView::Branch {
            depth: 1,
            bitmap: (1 << 2) | (1 << 3),
            children: vec![leaf(0x12, 0xAA), leaf(0x13, 0xBB)],
        }));
        let top = node_hash(&encode_node(&NodeView::Branch {
            depth: 0,
            bitmap: (1 << 1) | (1 << 15),
            children: vec![inner, leaf(0xF0, 0xCC)],
        }));
        assert_eq!(m.root(), top);
        assert_eq!(
            hex(&hash_ordered([&b"a"[..], b"bc"])),
            "8488e391f00a8b0156d61ceb6fd6b46cbb554d8a1cddf22410c4a9f675bd8dc5"
        );
        assert_eq!(
            hash_ordered([&b"a"[..], b"bc"]),
            keyed(&[TAG_ORDERED, 1, b'a', 2, b'b', b'c'])
        );
        let mut items = [
            keyed(&[TAG_ITEM, b'a']),
            keyed(&[TAG_ITEM, b'b', b'c']),
            keyed(&[TAG_ITEM, b'a']),
        ];
        items.sort();
        let mut msg = vec![TAG_MULTISET];
        msg.extend(3u64.to_le_bytes());
        items.iter().for_each(|h| msg.extend(h));
        assert_eq!(hash_multiset([&b"a"[..], b"bc", b"a"]), keyed(&msg));
        assert_eq!(
            trie_key(KeyDomain::Data, b"ch"),
            keyed(&[TAG_KEY_DATA, b'c', b'h'])
        );
        assert_eq!(
            hex(&trie_key(KeyDomain::Continuations, b"ch")),
            "8f6fb62b7fe10ec6e155f7434e83c434f95c41c634ef19ff9a3f53791f49eddc"
        );
        assert_eq!(
            hex(&hash_multiset([&b"a"[..], b"bc", b"a"])),
            "bc2822944752f996689e37bfdf5d7070bce04552a269aae51d39d80abaa87d8c"
        );
    }

    #[test]
    fn shape_is_canonical_by_construction() {
        let mut m = MerkleMap::new();
        m.insert([0x12; 32], [1; 32]);
        m.insert([0x13; 32], [2; 32]);
        let root = m.root.as_deref().unwrap();
        let Kind::Branch { depth, bitmap, .. } = &root.kind else {
            panic!("two keys make a branch")
        };
        assert_eq!((*depth, *bitmap), (1, (1 << 2) | (1 << 3)));
        // A key differing at nibble 0 puts a new branch above.
        m.insert([0xF0; 32], [3; 32]);
        let Kind::Branch { depth, .. } = &m.root.as_deref().unwrap().kind else {
            panic!()
        };
        assert_eq!(*depth, 0);
        // Removing it collapses back to the depth-1 branch: the same root as before.
        let mut two = MerkleMap::new();
        two.insert([0x13; 32], [2; 32]);
        two.insert([0x12; 32], [1; 32]);
        m.remove(&[0xF0; 32]);
        assert_eq!(m.root(), two.root());
        // Down to one key: a lone leaf.
        m.remove(&[0x12; 32]);
        assert!(matches!(m.root.as_deref().unwrap().kind, Kind::Leaf { .. }));
        m.remove(&[0x13; 32]);
        assert_eq!(m.root(), EMPTY_ROOT);
        assert!(m.is_empty());
    }

    #[test]
    fn root_changes_when_any_leaf_changes() {
        let mut m = MerkleMap::new();
        for i in 0..200 {
            m.insert(k(i), v(i));
        }
        let base = m.root();
        for i in (0..200).step_by(17) {
            let mut c = m.clone();
            c.insert(k(i), v(i + 1000));
            assert_ne!(c.root(), base);
            c.insert(k(i), v(i));
            assert_eq!(c.root(), base);
            c.remove(&k(i));
            assert_ne!(c.root(), base);
        }
        // a key that is not there, with an existing value
        let mut c = m.clone();
        c.insert(k(5000), v(0));
        assert_ne!(c.root(), base);
    }

    #[test]
    fn clones_are_isolated() {
        let mut a = MerkleMap::new();
        for i in 0..100 {
            a.insert(k(i), v(i));
        }
        let ra = a.root();
        let mut b = a.clone();
        b.insert(k(3), v(99));
        b.remove(&k(4));
        b.insert(k(1000), v(1));
        assert_eq!(a.root(), ra);
        assert_eq!(a.get(&k(3)), Some(&v(3)));
        assert_eq!(a.get(&k(4)), Some(&v(4)));
        assert_eq!(a.len(), 100);
        assert_ne!(b.root(), ra);
        assert_eq!(b.len(), 100);
        // and the other way round: mutating the original leaves the clone alone
        let rb = b.root();
        a.remove(&k(50));
        assert_eq!(b.root(), rb);
        assert_eq!(b.get(&k(50)), Some(&v(50)));
    }

    #[test]
    fn incremental_rehash_touches_only_changed_paths() {
        const N: u64 = 100_000;
        let mut m = MerkleMap::new();
        m.apply((0..N).map(|i| (k(i), Some(v(i)))));
        let full = hashes_during(|| {
            m.root();
        });
        // A rebuild hashes every leaf and branch.
        assert!(full > N, "full = {full}");
        let snapshot = m.clone();
        let changed = hashes_during(|| {
            m.apply((0..10).map(|i| (k(i * 7919), Some(v(i)))));
            m.root();
        });
        // Each change rehashes its leaf and the ~5 branches above it (log16(100,000) ≈ 4.2).
        assert!(changed <= 10 * 7, "changed = {changed}");
        assert!(changed * 1000 < full, "{changed} vs {full}");
        // Nothing changed: nothing rehashed.
        assert_eq!(hashes_during(|| assert_eq!(m.root(), m.root())), 0);
        // The snapshot is untouched and still cached.
        assert_eq!(
            hashes_during(|| {
                snapshot.root();
            }),
            0
        );
        // Rehashing after several batches on one path hashes each node once.
        let twice = hashes_during(|| {
            m.insert(k(1), v(5));
            m.insert(k(1), v(6));
            m.remove(&k(2));
            m.root();
        });
        assert!(twice <= 2 * 7, "twice = {twice}");
    }

    #[test]
    fn nodes_round_trip_through_a_store() {
        let mut store: BTreeMap<Digest, Vec<u8>> = BTreeMap::new();
        let mut m = MerkleMap::new();
        let mut roots = Vec::new();
        for round in 0..5u64 {
            for i in 0..300 {
                if (i + round) % 3 == 0 {
                    m.remove(&k(i));
                } else {
                    m.insert(k(i), v(i * round));
                }
            }
            let missing = m
                .missing_nodes(|h| Ok::<_, ()>(store.contains_key(h)))
                .unwrap();
            for (h, bytes) in &missing.nodes {
                assert_eq!(node_hash(bytes), *h);
                assert!(decode_node(bytes).is_ok());
            }
            store.extend(missing.nodes);
            roots.push((m.root(), m.clone()));
        }
        for (root, want) in &roots {
            let back = MerkleMap::load(root, |h| Ok::<_, ()>(store.get(h).cloned())).unwrap();
            assert_eq!(back.root(), *root);
            assert_eq!(back.len(), want.len());
            assert!(back.iter().eq(want.iter()));
            // a loaded map keeps working: the same update gives the same root
            let (mut a, mut b) = (back.clone(), want.clone());
            a.insert(k(7), v(7));
            b.insert(k(7), v(7));
            assert_eq!(a.root(), b.root());
        }
        // Nothing new for a root already stored.
        let again = m
            .missing_nodes(|h| Ok::<_, ()>(store.contains_key(h)))
            .unwrap();
        assert_eq!(again, Missing::default());
        // The empty map loads without reading anything.
        let empty = MerkleMap::load(&EMPTY_ROOT, |_| Err("no reads")).unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn load_rejects_bad_stores() {
        let mut m = MerkleMap::new();
        for i in 0..40 {
            m.insert(k(i), v(i));
        }
        let mut store: BTreeMap<Digest, Vec<u8>> = BTreeMap::new();
        store.extend(m.missing_nodes(|_| Ok::<_, ()>(false)).unwrap().nodes);
        let root = m.root();
        // a missing node
        let mut s = store.clone();
        let some_leaf = *m.iter().next().unwrap().0;
        let leaf_id = node_hash(&encode_node(&NodeView::Leaf {
            key: some_leaf,
            value: *m.get(&some_leaf).unwrap(),
        }));
        s.remove(&leaf_id);
        assert_eq!(
            MerkleMap::load(&root, |h| Ok::<_, ()>(s.get(h).cloned())).unwrap_err(),
            LoadError::Missing(leaf_id)
        );
        // a flipped byte
        let mut s = store.clone();
        s.get_mut(&root).unwrap()[5] ^= 1;
        assert!(matches!(
            MerkleMap::load(&root, |h| Ok::<_, ()>(s.get(h).cloned())),
            Err(LoadError::Corrupt {
                reason: NodeError::HashMismatch,
                ..
            })
        ));
        // a store error passes through
        assert_eq!(
            MerkleMap::load(&root, |_| Err::<Option<Vec<u8>>, _>("io")).unwrap_err(),
            LoadError::Store("io")
        );
        // a well-hashed but misplaced child: a branch claiming nibble 0 for a key whose
        // first nibble is not 0
        let a = NodeView::Leaf {
            key: [0x10; 32],
            value: [0; 32],
        };
        let b = NodeView::Leaf {
            key: [0x20; 32],
            value: [0; 32],
        };
        let (ab, bb) = (encode_node(&a), encode_node(&b));
        let branch = encode_node(&NodeView::Branch {
            depth: 0,
            bitmap: 0b11,
            children: vec![node_hash(&ab), node_hash(&bb)],
        });
        let mut s = BTreeMap::new();
        let bid = node_hash(&branch);
        s.insert(node_hash(&ab), ab);
        s.insert(node_hash(&bb), bb);
        s.insert(bid, branch);
        assert!(matches!(
            MerkleMap::load(&bid, |h| Ok::<_, ()>(s.get(h).cloned())),
            Err(LoadError::Corrupt {
                reason: NodeError::KeyPlacement,
                ..
            })
        ));
        // a branch whose child branch is not deeper
        let inner = encode_node(&NodeView::Branch {
            depth: 0,
            bitmap: 0b110,
            children: vec![node_hash(&encode_node(&a)), node_hash(&encode_node(&b))],
        });
        let outer = encode_node(&NodeView::Branch {
            depth: 0,
            bitmap: 0b11,
            children: vec![node_hash(&inner), node_hash(&inner)],
        });
        let oid = node_hash(&outer);
        s.insert(node_hash(&inner), inner);
        s.insert(oid, outer);
        assert!(matches!(
            MerkleMap::load(&oid, |h| Ok::<_, ()>(s.get(h).cloned())),
            Err(LoadError::Corrupt {
                reason: NodeError::DepthOrder,
                ..
            })
        ));
    }

    #[test]
    fn node_decoding_is_strict() {
        assert_eq!(decode_node(&[0x00]), Ok(NodeView::Empty));
        assert_eq!(decode_node(&[0x00, 0x00]), Err(NodeError::BadLength));
        assert_eq!(decode_node(&[0x01; 64]), Err(NodeError::BadLength));
        assert_eq!(decode_node(&[0x02, 0x00]), Err(NodeError::Truncated));
        assert_eq!(
            decode_node(&[0x02, 64, 0x03, 0x00]),
            Err(NodeError::BadDepth(64))
        );
        assert_eq!(
            decode_node(&[0x02, 0, 0x01, 0x00]),
            Err(NodeError::TooFewChildren)
        );
        let mut b = vec![0x02, 0, 0x03, 0x00];
        b.extend([0u8; 63]);
        assert_eq!(decode_node(&b), Err(NodeError::BadLength));
    }

    #[test]
    fn multiset_and_ordered_hashes() {
        let items: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; usize::from(i % 5)]).collect();
        let mut rev = items.clone();
        rev.reverse();
        assert_eq!(hash_multiset(&items), hash_multiset(&rev));
        assert_ne!(hash_ordered(&items), hash_ordered(&rev));
        assert_ne!(hash_multiset(&items), hash_ordered(&items));
        assert_ne!(
            hash_multiset(Vec::<Vec<u8>>::new()),
            hash_ordered(Vec::<Vec<u8>>::new())
        );
        assert_ne!(
            hash_ordered([&b""[..]]),
            hash_ordered(Vec::<Vec<u8>>::new())
        );
        assert_ne!(hash_multiset([&b""[..]]), hash_multiset([&b""[..], b""]));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Put(u8, u8),
        Del(u8),
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (any::<u8>(), any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
            any::<u8>().prop_map(Op::Del),
        ]
    }

    /// Small key ids mapped to keys with long shared prefixes and to spread-out keys, so the
    /// trie gets deep compressed paths as well as wide branches.
    fn key_of(id: u8) -> Digest {
        if id.is_multiple_of(2) {
            let mut d = [0x5A; 32];
            d[31] = id;
            d[(id as usize / 16) % 32] ^= id & 0x0f;
            d
        } else {
            k(u64::from(id))
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Model-based: any sequence of puts and deletes gives the model's contents, and the
        /// root equals the root of the model's contents inserted in sorted order (so the root
        /// is a function of the contents alone).
        #[test]
        fn root_depends_only_on_contents(ops in prop::collection::vec(arb_op(), 0..120),
                                         probe_every in 1usize..20) {
            let mut m = MerkleMap::new();
            let mut model = BTreeMap::new();
            let mut snapshot = None;
            for (i, op) in ops.iter().enumerate() {
                if i == ops.len() / 2 {
                    // a clone taken midway must keep that moment's contents and root
                    snapshot = Some((m.clone(), model.clone()));
                }
                match *op {
                    Op::Put(id, val) => {
                        prop_assert_eq!(m.insert(key_of(id), [val; 32]), model.insert(key_of(id), [val; 32]));
                    }
                    Op::Del(id) => {
                        prop_assert_eq!(m.remove(&key_of(id)), model.remove(&key_of(id)));
                    }
                }
                if i % probe_every == 0 {
                    prop_assert_eq!(m.root(), from_sorted(&model).root());
                }
            }
            prop_assert_eq!(m.len(), model.len());
            prop_assert!(m.iter().map(|(k, v)| (*k, *v)).eq(model.iter().map(|(k, v)| (*k, *v))));
            for id in 0..=255u8 {
                prop_assert_eq!(m.get(&key_of(id)), model.get(&key_of(id)));
            }
            prop_assert_eq!(m.root(), from_sorted(&model).root());
            // reverse order of insertion, too
            let mut r = MerkleMap::new();
            for (k, v) in model.iter().rev() {
                r.insert(*k, *v);
            }
            prop_assert_eq!(r.root(), m.root());
            if let Some((snap, snap_model)) = snapshot {
                prop_assert_eq!(snap.len(), snap_model.len());
                prop_assert_eq!(snap.root(), from_sorted(&snap_model).root());
            }
        }
    }
}
