//! `Encode`: the canonical byte encoding of channels, data, patterns and continuations.
//!
//! Phlogiston charges by encoded size (SPEC §8) and state roots hash encoded bytes (§6), so the
//! encoding must be **canonical**: for one type, equal values encode to equal bytes and
//! different values to different bytes, on every platform and run.
//!
//! | type | encoding |
//! |---|---|
//! | `bool` | one byte, 0 or 1 |
//! | integers | fixed width, little-endian (`usize`/`isize` as 64-bit) |
//! | `char` | its scalar value as `u32` |
//! | `str`, `String` | LEB128 byte length, then UTF-8 bytes |
//! | `[T]`, `Vec<T>` | LEB128 element count, then each element |
//! | `Option<T>` | 0, or 1 then the value |
//! | tuples | the fields in order |
//! | `Arc<T>`, `Box<T>`, `&T` | as `T` |
//! | [`Embedding`] | LEB128 component count, then each `f32` as its IEEE-754 bits (`u32`, little-endian) |
//! | [`EmbeddedDatum<T>`] | the value, then the embedding |
//! | [`Metric`] | one byte: `Cosine` 0, `Dot` 1, `L2Squared` 2 |
//! | [`Take`] | `Best`: 0; `TopK(k)`: 1, then `k` as LEB128 |
//! | [`SimilarityPattern`] | query embedding, metric, threshold bits (`u32`, little-endian), take |
//!
//! **Floats** are written as their exact bits (`f32::to_bits`), never normalised, because
//! embeddings and thresholds compare bitwise: `0.0` and `-0.0` are different values and encode
//! differently, and a NaN keeps its payload. An [`Embedding`] may hold any floats (it validates
//! nothing), so its encoding accepts them all; a [`SimilarityPattern`] never holds a NaN (its
//! constructors refuse a NaN threshold and non-finite query components), and VectorDB channels
//! refuse non-finite embeddings at produce, so no NaN reaches their state roots.
//!
//! Implement it for your own types by encoding their fields in a fixed order (maps by sorted
//! key, never in hash-map order).
//!
//! ```
//! use rhospace_spaces::Encode;
//! let mut out = Vec::new();
//! "ab".encode(&mut out);
//! assert_eq!(out, [2, b'a', b'b']);
//! assert_eq!("ab".encoded_len(), 3);
//! assert_eq!(7u32.encoded_len(), 4);
//! ```

use std::sync::Arc;

use rhospace_matchers::similarity::{EmbeddedDatum, Embedding, Metric, SimilarityPattern, Take};

/// A canonical byte encoding (see the module docs for the format and the contract).
///
/// ```
/// use rhospace_spaces::Encode;
/// struct Point { x: i32, y: i32 }
/// impl Encode for Point {
///     fn encode(&self, out: &mut Vec<u8>) {
///         self.x.encode(out);
///         self.y.encode(out);
///     }
///     fn encoded_len(&self) -> usize {
///         8
///     }
/// }
/// let mut out = Vec::new();
/// Point { x: 1, y: 2 }.encode(&mut out);
/// assert_eq!(out.len(), Point { x: 1, y: 2 }.encoded_len());
/// ```
pub trait Encode {
    /// Appends the encoding to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// The encoding's length in bytes, without allocating where the type allows.
    fn encoded_len(&self) -> usize;
}

/// Appends `n` as unsigned LEB128.
///
/// ```
/// let mut out = Vec::new();
/// rhospace_spaces::encode_varint(300, &mut out);
/// assert_eq!(out, [0xAC, 0x02]);
/// ```
#[inline]
pub fn encode_varint(n: u64, out: &mut Vec<u8>) {
    // Lengths and positions are nearly always below 128: one byte, inline at the caller.
    if n < 0x80 {
        out.push(n as u8);
    } else {
        encode_varint_long(n, out);
    }
}

/// [`encode_varint`] of a value of two bytes or more.
fn encode_varint_long(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Length of `n` as unsigned LEB128.
///
/// ```
/// assert_eq!(rhospace_spaces::varint_len(127), 1);
/// assert_eq!(rhospace_spaces::varint_len(128), 2);
/// ```
pub const fn varint_len(n: u64) -> usize {
    let bits = 64 - (n | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

macro_rules! fixed {
    ($($t:ty => $as:ty),* $(,)?) => {$(
        impl Encode for $t {
            #[inline]
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&(*self as $as).to_le_bytes());
            }
            #[inline]
            fn encoded_len(&self) -> usize {
                std::mem::size_of::<$as>()
            }
        }
    )*};
}

fixed!(u8 => u8, u16 => u16, u32 => u32, u64 => u64, u128 => u128, usize => u64,
       i8 => i8, i16 => i16, i32 => i32, i64 => i64, i128 => i128, isize => i64);

impl Encode for bool {
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    #[inline]
    fn encoded_len(&self) -> usize {
        1
    }
}

impl Encode for char {
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        (*self as u32).encode(out);
    }
    #[inline]
    fn encoded_len(&self) -> usize {
        4
    }
}

impl Encode for str {
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        encode_varint(self.len() as u64, out);
        out.extend_from_slice(self.as_bytes());
    }
    #[inline]
    fn encoded_len(&self) -> usize {
        varint_len(self.len() as u64) + self.len()
    }
}

impl Encode for String {
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        self.as_str().encode(out);
    }
    #[inline]
    fn encoded_len(&self) -> usize {
        self.as_str().encoded_len()
    }
}

impl<T: Encode> Encode for [T] {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_varint(self.len() as u64, out);
        for x in self {
            x.encode(out);
        }
    }
    fn encoded_len(&self) -> usize {
        varint_len(self.len() as u64) + self.iter().map(Encode::encoded_len).sum::<usize>()
    }
}

impl<T: Encode> Encode for Vec<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        self.as_slice().encode(out);
    }
    fn encoded_len(&self) -> usize {
        self.as_slice().encoded_len()
    }
}

impl<T: Encode> Encode for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(x) => {
                out.push(1);
                x.encode(out);
            }
        }
    }
    fn encoded_len(&self) -> usize {
        1 + self.as_ref().map_or(0, Encode::encoded_len)
    }
}

impl<T: Encode + ?Sized> Encode for Arc<T> {
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        (**self).encode(out);
    }
    #[inline]
    fn encoded_len(&self) -> usize {
        (**self).encoded_len()
    }
}

impl<T: Encode + ?Sized> Encode for Box<T> {
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        (**self).encode(out);
    }
    #[inline]
    fn encoded_len(&self) -> usize {
        (**self).encoded_len()
    }
}

impl<T: Encode + ?Sized> Encode for &T {
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        (**self).encode(out);
    }
    #[inline]
    fn encoded_len(&self) -> usize {
        (**self).encoded_len()
    }
}

impl<X: Encode, Y: Encode> Encode for (X, Y) {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
        self.1.encode(out);
    }
    fn encoded_len(&self) -> usize {
        self.0.encoded_len() + self.1.encoded_len()
    }
}

impl<X: Encode, Y: Encode, Z: Encode> Encode for (X, Y, Z) {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
        self.1.encode(out);
        self.2.encode(out);
    }
    fn encoded_len(&self) -> usize {
        self.0.encoded_len() + self.1.encoded_len() + self.2.encoded_len()
    }
}

/// Structural terms encode with their own canonical format (`rhospace_matchers::canonical`).
impl Encode for rhospace_matchers::Term {
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        self.encode_canonical(out);
    }
    #[inline]
    fn encoded_len(&self) -> usize {
        rhospace_matchers::Term::encoded_len(self)
    }
}

/// Structural patterns encode with their own canonical format (`rhospace_matchers::canonical`).
impl Encode for rhospace_matchers::Pattern {
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        self.encode_canonical(out);
    }
    #[inline]
    fn encoded_len(&self) -> usize {
        rhospace_matchers::Pattern::encoded_len(self)
    }
}

/// One byte per metric; the tags are part of the state-root format (see the module docs).
const fn metric_tag(m: Metric) -> u8 {
    match m {
        Metric::Cosine => 0,
        Metric::Dot => 1,
        Metric::L2Squared => 2,
    }
}

/// The component count, then each component's bits, little-endian.
///
/// ```
/// use rhospace_matchers::similarity::Embedding;
/// use rhospace_spaces::Encode;
/// let mut out = Vec::new();
/// Embedding::from([1.0, -0.0]).encode(&mut out);
/// assert_eq!(out, [2, 0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0x80]);
/// assert_eq!(Embedding::from([1.0, -0.0]).encoded_len(), 9);
/// ```
impl Encode for Embedding {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_varint(self.len() as u64, out);
        out.reserve(4 * self.len());
        for x in self.iter() {
            out.extend_from_slice(&x.to_bits().to_le_bytes());
        }
    }
    #[inline]
    fn encoded_len(&self) -> usize {
        varint_len(self.len() as u64) + 4 * self.len()
    }
}

/// The value, then the embedding.
impl<T: Encode> Encode for EmbeddedDatum<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        self.value.encode(out);
        self.embedding.encode(out);
    }
    #[inline]
    fn encoded_len(&self) -> usize {
        self.value.encoded_len() + self.embedding.encoded_len()
    }
}

/// One byte: `Cosine` 0, `Dot` 1, `L2Squared` 2.
impl Encode for Metric {
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(metric_tag(*self));
    }
    #[inline]
    fn encoded_len(&self) -> usize {
        1
    }
}

/// `Best` as 0; `TopK(k)` as 1, then `k` as LEB128.
impl Encode for Take {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Take::Best => out.push(0),
            Take::TopK(k) => {
                out.push(1);
                encode_varint(k.get() as u64, out);
            }
        }
    }
    #[inline]
    fn encoded_len(&self) -> usize {
        match self {
            Take::Best => 1,
            Take::TopK(k) => 1 + varint_len(k.get() as u64),
        }
    }
}

/// The query embedding (as given, not the normalised prepared query), the metric, the
/// threshold's bits, the take mode.
impl Encode for SimilarityPattern {
    fn encode(&self, out: &mut Vec<u8>) {
        self.query().encode(out);
        self.metric().encode(out);
        out.extend_from_slice(&self.threshold().to_bits().to_le_bytes());
        self.take().encode(out);
    }
    #[inline]
    fn encoded_len(&self) -> usize {
        self.query().encoded_len() + 1 + 4 + self.take().encoded_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes<T: Encode + ?Sized>(v: &T) -> Vec<u8> {
        let mut out = Vec::new();
        v.encode(&mut out);
        assert_eq!(out.len(), v.encoded_len());
        out
    }

    #[test]
    fn golden_bytes() {
        assert_eq!(bytes(&1u64), [1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(bytes(&-1i16), [0xFF, 0xFF]);
        assert_eq!(bytes(&true), [1]);
        assert_eq!(bytes("hi"), [2, b'h', b'i']);
        assert_eq!(bytes(&vec![1u8, 2]), [2, 1, 2]);
        assert_eq!(bytes(&Some(3u8)), [1, 3]);
        assert_eq!(bytes(&None::<u8>), [0]);
        assert_eq!(bytes(&(1u8, "a")), [1, 1, b'a']);
    }

    #[test]
    fn varint_lengths_agree() {
        for n in [0u64, 1, 127, 128, 16_383, 16_384, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            encode_varint(n, &mut out);
            assert_eq!(out.len(), varint_len(n), "n = {n}");
        }
    }

    #[test]
    fn terms_and_patterns_use_the_matchers_format() {
        use rhospace_matchers::{Pattern, Term};
        let t = Term::record([("k", Term::int(1))]);
        let mut want = Vec::new();
        t.encode_canonical(&mut want);
        assert_eq!(bytes(&t), want);
        let p = Pattern::bind("x");
        let mut want = Vec::new();
        p.encode_canonical(&mut want);
        assert_eq!(bytes(&p), want);
    }

    #[test]
    fn strings_are_self_delimiting() {
        assert_ne!(bytes(&("ab", "c")), bytes(&("a", "bc")));
        assert_ne!(
            bytes(&vec![vec![1u8], vec![]]),
            bytes(&vec![vec![], vec![1u8]])
        );
    }
}
