//! `Tape`: a persistent append-only run of byte records, for the per-shard event log.
//!
//! Bytes live in chunks (`Vec<u8>`s behind `triomphe::Arc`s), as in [`crate::trail`]: a record
//! is written into the open *tail* chunk in place while no clone shares it; a tail that is full
//! or shared is *sealed* (moved, as it is, into a persistent vector of immutable chunks) and a
//! fresh one opened. A record is written whole into one tail, so it never straddles two
//! chunks, and a reader that knows where each record ends (the log's records say their own
//! lengths) finds the next one at its position in the same chunk, or, at a chunk's end, at
//! the start of the next non-empty chunk.
//!
//! | operation | cost |
//! |---|---|
//! | [`record`](Tape::record) | O(1); O(log chunks) when it seals |
//! | `clone` | O(1) |
//! | [`extend_from`](Tape::extend_from) | O(chunks of the other tape), no byte copied |
//! | reading | O(bytes) |
//!
//! Limits: a clone taken between every two records makes every chunk one record long.

use imbl::Vector;
use triomphe::Arc;

/// The most capacity a tail is opened with: large enough that sealing is rare.
const CHUNK: usize = 16 * 1024;

/// Capacity of a log's first tail, and of a tail opened because a clone shares the old one
/// (soft checkpoints between few calls should not cost a full chunk each). A tail opened
/// because the last one filled has twice its capacity, up to [`CHUNK`]: a fresh space has a
/// log per shard, and opening each at the full size cost a page fault per shard for a
/// handful of calls (`produce_multi_channel/100` ran 27% slower).
const SMALL_TAIL: usize = 512;

/// Room a tail must have left to take a record. A tail is sealed when less is left, rather
/// than grown: growing a `Vec` copies it (with tails grown up to the chunk size, those copies
/// were a sixth of a logged consume's instructions). A record longer than this may still
/// grow the tail.
const ROOM: usize = 256;

/// A persistent append-only run of byte records.
///
/// Invariant: every chunk in `sealed` is non-empty and never written again (clones may share
/// it); each record lies whole within one chunk.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tape {
    sealed: Vector<Arc<Vec<u8>>>,
    tail: Arc<Vec<u8>>,
}

impl Tape {
    /// The vector to append one whole record to: the tail, unshared and not full (sealed and
    /// replaced otherwise). Everything the caller appends before the next call is one record.
    #[inline(always)]
    pub(crate) fn record(&mut self) -> &mut Vec<u8> {
        // `is_unique` is one Acquire load of the count, pairing with the Release decrement of
        // a clone that dropped its pointer, so that clone's reads happen before our writes.
        if !(self.tail.is_unique() && self.tail.capacity() - self.tail.len() >= ROOM) {
            self.seal();
        }
        // `seal` left a fresh tail that only this tape holds, or the check above held.
        Arc::get_mut(&mut self.tail).unwrap_or_else(|| unreachable_shared())
    }

    /// Seals the tail (full or shared) and opens a fresh one.
    #[cold]
    fn seal(&mut self) {
        let cap = if self.tail.is_unique() {
            (self.tail.capacity() * 2).clamp(SMALL_TAIL, CHUNK)
        } else {
            SMALL_TAIL
        };
        let old = std::mem::replace(&mut self.tail, Arc::new(Vec::with_capacity(cap)));
        if !old.is_empty() {
            self.sealed.push_back(old);
        }
    }

    /// Appends every record of `other`, in order, sharing its chunks (no byte is copied).
    pub(crate) fn extend_from(&mut self, other: &Tape) {
        let tail = std::mem::take(&mut self.tail);
        if !tail.is_empty() {
            self.sealed.push_back(tail);
        }
        self.sealed.extend(other.sealed.iter().cloned());
        if !other.tail.is_empty() {
            self.sealed.push_back(other.tail.clone());
        }
    }

    /// The number of bytes (records included whole).
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.sealed.iter().map(|c| c.len()).sum::<usize>() + self.tail.len()
    }

    /// A reader from the first record.
    pub(crate) fn reader(&self) -> TapeReader<'_> {
        TapeReader {
            chunks: Box::new(
                self.sealed
                    .iter()
                    .map(|c| c.as_slice())
                    .chain(std::iter::once(self.tail.as_slice())),
            ),
            rest: &[],
        }
    }
}

#[cold]
fn unreachable_shared() -> ! {
    // `record` seals a shared tail and opens one no clone has seen; no input leads here.
    panic!("rhospace invariant broken: a fresh tape tail is shared")
}

/// Reads a [`Tape`]'s records in order.
pub(crate) struct TapeReader<'t> {
    chunks: Box<dyn Iterator<Item = &'t [u8]> + 't>,
    rest: &'t [u8],
}

impl<'t> TapeReader<'t> {
    /// The bytes from the start of the next record to the end of its chunk, or `None` past
    /// the last record. The caller reads one whole record from the front, advancing the slice
    /// past it, and leaves the rest for the next call.
    pub(crate) fn next_record(&mut self) -> Option<&mut &'t [u8]> {
        while self.rest.is_empty() {
            self.rest = self.chunks.next()?;
        }
        Some(&mut self.rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a record: a 4-byte length and a tag byte, then `len` copies of the tag.
    fn put(t: &mut Tape, len: usize, tag: u8) {
        let out = t.record();
        out.extend_from_slice(&(len as u32).to_le_bytes());
        out.push(tag);
        out.extend(std::iter::repeat_n(tag, len));
    }

    /// The length of record `i` of the fixed sequences: 1 to 300 bytes, so records cross
    /// the chunk size at varied points.
    fn len_of(i: u32) -> usize {
        (i * 37 % 300 + 1) as usize
    }

    /// Writes record `i` of the fixed sequences, tagged `i`.
    fn write(t: &mut Tape, i: u32) {
        put(t, len_of(i), i as u8);
    }

    /// Every record of `t` as `(length, tag)`, checking that each body is whole.
    fn read(t: &Tape) -> Vec<(usize, u8)> {
        let mut r = t.reader();
        let mut out = Vec::new();
        while let Some(rest) = r.next_record() {
            let (len, tail) = rest.split_at(4);
            let len = u32::from_le_bytes(len.try_into().unwrap()) as usize;
            let (tag, tail) = tail.split_at(1);
            let (body, tail) = tail.split_at(len);
            assert!(body.iter().all(|b| *b == tag[0]), "a record is contiguous");
            out.push((len, tag[0]));
            *rest = tail;
        }
        out
    }

    fn expected(ids: impl IntoIterator<Item = u32>) -> Vec<(usize, u8)> {
        ids.into_iter().map(|i| (len_of(i), i as u8)).collect()
    }

    #[test]
    fn records_read_back_in_order_across_chunks() {
        let mut t = Tape::default();
        for i in 0..2000 {
            write(&mut t, i);
        }
        assert!(t.bytes() > 4 * CHUNK);
        assert_eq!(read(&t), expected(0..2000));
    }

    #[test]
    fn a_clone_keeps_its_records_while_the_original_grows() {
        let mut t = Tape::default();
        let mut snaps = Vec::new();
        for i in 0..600 {
            if i % 41 == 0 {
                snaps.push((i, t.clone()));
            }
            write(&mut t, i);
        }
        for (n, s) in &snaps {
            assert_eq!(read(s), expected(0..*n));
        }
        let (n, mut s) = snaps.swap_remove(4);
        write(&mut s, 9999);
        assert_eq!(read(&s), expected((0..n).chain([9999])));
        assert_eq!(read(&t), expected(0..600));
    }

    #[test]
    fn extend_from_appends_the_other_tapes_records() {
        let (mut a, mut b) = (Tape::default(), Tape::default());
        for i in 0..100 {
            write(&mut a, i);
        }
        for i in 100..400 {
            write(&mut b, i);
        }
        let b_before = b.clone();
        a.extend_from(&b);
        write(&mut a, 400);
        write(&mut b, 401);
        assert_eq!(read(&a), expected(0..401));
        assert_eq!(read(&b), expected((100..400).chain([401])));
        assert_eq!(read(&b_before), expected(100..400));
        let mut empty = Tape::default();
        empty.extend_from(&Tape::default());
        assert!(read(&empty).is_empty());
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// Append to tape `at` (modulo the live tapes) a record of `len` bytes.
        Write(usize, usize),
        /// Clone tape `at`.
        Clone(usize),
        /// Drop tape `at` (the last one is kept).
        Drop(usize),
        /// Append tape `from`'s records to tape `at`.
        Extend(usize, usize),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            8 => (any::<usize>(), prop_oneof![0..8usize, 200..320usize, 0..3000usize])
                .prop_map(|(a, l)| Op::Write(a, l)),
            2 => any::<usize>().prop_map(Op::Clone),
            1 => any::<usize>().prop_map(Op::Drop),
            1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::Extend(a, b)),
        ]
    }

    proptest::proptest! {
        /// Any interleaving of records (small, around the room a tail keeps, and larger than a
        /// tail's first capacity), clones, drops and appends of one tape to another: every live
        /// tape reads back exactly the records of its own line, each whole and in order.
        #[test]
        fn tapes_behave_as_separate_record_lists(ops in proptest::collection::vec(op(), 1..200)) {
            let mut live: Vec<(Tape, Vec<(usize, u8)>)> = vec![(Tape::default(), Vec::new())];
            for (step, op) in ops.into_iter().enumerate() {
                let n = live.len();
                match op {
                    Op::Write(at, len) => {
                        let (t, m) = &mut live[at % n];
                        let tag = (len % 251) as u8;
                        put(t, len, tag);
                        m.push((len, tag));
                    }
                    Op::Clone(at) => {
                        let c = live[at % n].clone();
                        live.push(c);
                    }
                    Op::Drop(at) => {
                        if n > 1 {
                            live.swap_remove(at % n);
                        }
                    }
                    Op::Extend(at, from) => {
                        let (other, more) = live[from % n].clone();
                        let (t, m) = &mut live[at % n];
                        t.extend_from(&other);
                        m.extend(more);
                    }
                }
                if step % 8 == 0 {
                    for (t, m) in &live {
                        proptest::prop_assert_eq!(&read(t), m);
                    }
                }
            }
            for (t, m) in &live {
                proptest::prop_assert_eq!(&read(t), m);
            }
        }
    }
}
