//! `Decode`: the inverse of [`Encode`](crate::Encode), for reading state back from a history
//! store (SPEC §6: a restarted process resets to a root recorded on disk).
//!
//! Decoding reads the format in the [`encode`](crate::Encode) module docs from the front of a
//! byte slice and advances it, so values concatenate without separators. It is **strict**:
//! only bytes the encoder could have produced decode (booleans `0`/`1`, minimal varints, valid
//! UTF-8 and `char`s, option tags `0`/`1`, `usize` values that fit), so for the built-in impls
//! `decode(encode(x)) == x` and whatever decodes re-encodes to the same bytes. Any other input
//! is a typed [`DecodeError`]; nothing here panics or over-allocates on hostile bytes.
//!
//! # Allocation guard
//!
//! A length prefix is checked against the bytes left before anything is allocated: every value
//! of every built-in impl encodes to at least one byte, so a count `n` larger than the input
//! left cannot be honest and is [`DecodeError::LengthTooLarge`]. Implementations for your own
//! types must keep that property (**every value encodes to at least one byte**) for
//! `Vec<YourType>` to decode.
//!
//! | operation | time | allocation |
//! |---|---|---|
//! | `T::decode` | O(bytes read) | the value (a `Vec` reserves at most one slot per byte left) |
//! | [`Embedding`] | O(d) | `d` floats, after checking that `4·d` bytes are left |
//! | [`SimilarityPattern`] | O(d) | the query and its prepared copy (validated as by the constructors) |
//!
//! # Vector types
//!
//! Floats decode from their exact bits, so `-0.0` stays `-0.0` and the round trip is exact
//! under the types' bitwise equality. An [`Embedding`] (and so an [`EmbeddedDatum`]) accepts
//! any bits, as its constructor does; a VectorDB channel re-checks every embedding it loads.
//! A [`SimilarityPattern`] is rebuilt with [`SimilarityPattern::best`] or
//! [`SimilarityPattern::top_k`], so whatever they refuse (an empty or non-finite query, an
//! all-zero query under cosine, a NaN threshold, `k = 0`) is [`DecodeError::Invalid`].
//!
//! ```
//! use rhospace_spaces::{decode_exact, Decode, Encode};
//! let value = (7u32, vec![Some("a".to_string()), None]);
//! let mut bytes = Vec::new();
//! value.encode(&mut bytes);
//! let back: (u32, Vec<Option<String>>) = decode_exact(&bytes).unwrap();
//! assert_eq!(back, value);
//! ```

use core::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;

use rhospace_matchers::canonical::CanonicalError;
use rhospace_matchers::similarity::{
    EmbeddedDatum, Embedding, Metric, PatternErrorKind, SimilarityPattern, Take, VectorError,
};

/// Why bytes could not be decoded.
///
/// ```
/// use rhospace_spaces::{decode_exact, DecodeError};
/// assert_eq!(decode_exact::<bool>(&[2]), Err(DecodeError::InvalidBool(2)));
/// assert_eq!(decode_exact::<u16>(&[1]), Err(DecodeError::Truncated));
/// assert_eq!(DecodeError::Truncated.to_string(), "input ended in the middle of a value");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended in the middle of a value.
    Truncated,
    /// A varint longer than ten bytes or above `u64::MAX`.
    VarintOverflow,
    /// A varint with a redundant trailing zero group (the encoder writes minimal LEB128).
    NonMinimalVarint,
    /// A length or count larger than the bytes left (see the allocation guard in the module
    /// docs).
    LengthTooLarge {
        /// The length claimed.
        len: u64,
    },
    /// A `bool` byte other than 0 or 1.
    InvalidBool(u8),
    /// An `Option` tag other than 0 or 1.
    InvalidOptionTag(u8),
    /// A `u32` that is not a Unicode scalar value.
    InvalidChar(u32),
    /// A string that is not valid UTF-8.
    InvalidUtf8,
    /// A `usize` or `isize` whose 64-bit encoding does not fit this platform's width.
    IntOutOfRange,
    /// Bytes left over after the value ([`decode_exact`] only).
    TrailingBytes {
        /// How many bytes were left.
        count: usize,
    },
    /// A [`Term`](rhospace_matchers::Term) or [`Pattern`](rhospace_matchers::Pattern) that is
    /// not in the matchers' canonical format.
    Canonical(CanonicalError),
    /// A value the decoded type's own rules reject (a tag, a kind, a count out of range);
    /// names what was being read.
    Invalid(&'static str),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("input ended in the middle of a value"),
            DecodeError::VarintOverflow => f.write_str("varint overflows 64 bits"),
            DecodeError::NonMinimalVarint => f.write_str("non-minimal varint"),
            DecodeError::LengthTooLarge { len } => {
                write!(f, "length {len} exceeds the remaining input")
            }
            DecodeError::InvalidBool(b) => write!(f, "invalid bool byte 0x{b:02x}"),
            DecodeError::InvalidOptionTag(b) => write!(f, "invalid option tag 0x{b:02x}"),
            DecodeError::InvalidChar(c) => write!(f, "0x{c:x} is not a Unicode scalar value"),
            DecodeError::InvalidUtf8 => f.write_str("invalid UTF-8"),
            DecodeError::IntOutOfRange => f.write_str("integer does not fit this platform"),
            DecodeError::TrailingBytes { count } => {
                write!(f, "{count} trailing bytes after the value")
            }
            DecodeError::Canonical(e) => write!(f, "term or pattern: {e}"),
            DecodeError::Invalid(what) => write!(f, "invalid {what}"),
        }
    }
}

impl std::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DecodeError::Canonical(e) => Some(e),
            _ => None,
        }
    }
}

impl From<CanonicalError> for DecodeError {
    fn from(e: CanonicalError) -> Self {
        DecodeError::Canonical(e)
    }
}

/// Reads a value back from its [`Encode`](crate::Encode) bytes.
///
/// `decode` reads one value from the front of `*input` and advances `*input` past it. On
/// error, how far `*input` has advanced is unspecified (use [`decode_exact`] on a whole buffer
/// when that matters). Contract for implementations: decode exactly the bytes `encode` wrote
/// (so `decode(encode(x)) == x`, consuming `encoded_len` bytes), reject everything else with
/// an error, never panic, and keep every encoding at least one byte long.
///
/// ```
/// use rhospace_spaces::{Decode, DecodeError, Encode};
/// #[derive(Debug, PartialEq)]
/// struct Point { x: i32, y: i32 }
/// impl Decode for Point {
///     fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
///         Ok(Point { x: i32::decode(input)?, y: i32::decode(input)? })
///     }
/// }
/// let mut bytes = Vec::new();
/// (1i32, 2i32).encode(&mut bytes);
/// let mut input = &bytes[..];
/// assert_eq!(Point::decode(&mut input).unwrap(), Point { x: 1, y: 2 });
/// assert!(input.is_empty());
/// ```
pub trait Decode: Sized {
    /// Decodes one value from the front of `*input`, advancing it.
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError>;
}

/// Decodes `bytes` as exactly one `T`; leftover bytes are [`DecodeError::TrailingBytes`].
///
/// Time: O(`bytes.len()`).
///
/// ```
/// use rhospace_spaces::{decode_exact, DecodeError};
/// assert_eq!(decode_exact::<String>(&[1, b'a']), Ok("a".to_string()));
/// assert_eq!(
///     decode_exact::<String>(&[1, b'a', 0]),
///     Err(DecodeError::TrailingBytes { count: 1 })
/// );
/// ```
pub fn decode_exact<T: Decode>(bytes: &[u8]) -> Result<T, DecodeError> {
    let mut input = bytes;
    let v = T::decode(&mut input)?;
    if input.is_empty() {
        Ok(v)
    } else {
        Err(DecodeError::TrailingBytes { count: input.len() })
    }
}

/// Reads a minimal unsigned LEB128 varint (the inverse of
/// [`encode_varint`](crate::encode_varint)).
///
/// ```
/// use rhospace_spaces::{decode_varint, DecodeError};
/// let mut input: &[u8] = &[0xAC, 0x02, 0xFF];
/// assert_eq!(decode_varint(&mut input), Ok(300));
/// assert_eq!(input, &[0xFF]);
/// assert_eq!(decode_varint(&mut &[0x80, 0x00][..]), Err(DecodeError::NonMinimalVarint));
/// ```
pub fn decode_varint(input: &mut &[u8]) -> Result<u64, DecodeError> {
    let mut v: u64 = 0;
    for i in 0..10u32 {
        let b = take_byte(input)?;
        // The tenth byte may only carry bit 63.
        if i == 9 && b > 0x01 {
            return Err(DecodeError::VarintOverflow);
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if b == 0 && i > 0 {
                return Err(DecodeError::NonMinimalVarint);
            }
            return Ok(v);
        }
    }
    Err(DecodeError::VarintOverflow)
}

fn take_byte(input: &mut &[u8]) -> Result<u8, DecodeError> {
    let (&b, rest) = input.split_first().ok_or(DecodeError::Truncated)?;
    *input = rest;
    Ok(b)
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], DecodeError> {
    if n > input.len() {
        return Err(DecodeError::Truncated);
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

fn take_array<const N: usize>(input: &mut &[u8]) -> Result<[u8; N], DecodeError> {
    let mut a = [0u8; N];
    a.copy_from_slice(take(input, N)?);
    Ok(a)
}

/// A length prefix, checked against the bytes left (see the module's allocation guard).
fn decode_len(input: &mut &[u8]) -> Result<usize, DecodeError> {
    let n = decode_varint(input)?;
    match usize::try_from(n) {
        Ok(n) if n <= input.len() => Ok(n),
        _ => Err(DecodeError::LengthTooLarge { len: n }),
    }
}

fn decode_str<'a>(input: &mut &'a [u8]) -> Result<&'a str, DecodeError> {
    let n = decode_len(input)?;
    core::str::from_utf8(take(input, n)?).map_err(|_| DecodeError::InvalidUtf8)
}

macro_rules! fixed {
    ($($t:ty),* $(,)?) => {$(
        impl Decode for $t {
            #[inline]
            fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
                Ok(<$t>::from_le_bytes(take_array(input)?))
            }
        }
    )*};
}

fixed!(u8, u16, u32, u64, u128, i8, i16, i32, i64, i128);

/// Encoded as a `u64`; values above this platform's `usize::MAX` are
/// [`DecodeError::IntOutOfRange`].
impl Decode for usize {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        usize::try_from(u64::decode(input)?).map_err(|_| DecodeError::IntOutOfRange)
    }
}

/// Encoded as an `i64`; values outside this platform's `isize` are
/// [`DecodeError::IntOutOfRange`].
impl Decode for isize {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        isize::try_from(i64::decode(input)?).map_err(|_| DecodeError::IntOutOfRange)
    }
}

impl Decode for bool {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        match take_byte(input)? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(DecodeError::InvalidBool(b)),
        }
    }
}

impl Decode for char {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let v = u32::decode(input)?;
        char::from_u32(v).ok_or(DecodeError::InvalidChar(v))
    }
}

impl Decode for String {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        decode_str(input).map(str::to_owned)
    }
}

impl Decode for Box<str> {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        decode_str(input).map(Box::from)
    }
}

impl Decode for Arc<str> {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        decode_str(input).map(Arc::from)
    }
}

impl<T: Decode> Decode for Vec<T> {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        // `n` is at most the bytes left, so the reservation is bounded by the input.
        let n = decode_len(input)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(T::decode(input)?);
        }
        Ok(v)
    }
}

impl<T: Decode> Decode for Box<[T]> {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Vec::<T>::decode(input).map(Vec::into_boxed_slice)
    }
}

impl<T: Decode> Decode for Arc<[T]> {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Vec::<T>::decode(input).map(Arc::from)
    }
}

impl<T: Decode> Decode for Box<T> {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        T::decode(input).map(Box::new)
    }
}

impl<T: Decode> Decode for Arc<T> {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        T::decode(input).map(Arc::new)
    }
}

impl<T: Decode> Decode for Option<T> {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        match take_byte(input)? {
            0 => Ok(None),
            1 => T::decode(input).map(Some),
            b => Err(DecodeError::InvalidOptionTag(b)),
        }
    }
}

impl<X: Decode, Y: Decode> Decode for (X, Y) {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok((X::decode(input)?, Y::decode(input)?))
    }
}

impl<X: Decode, Y: Decode, Z: Decode> Decode for (X, Y, Z) {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok((X::decode(input)?, Y::decode(input)?, Z::decode(input)?))
    }
}

/// Terms decode with the matchers' strict canonical decoder (iterative: any depth).
impl Decode for rhospace_matchers::Term {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(rhospace_matchers::Term::decode_canonical(input)?)
    }
}

/// Patterns decode with the matchers' strict canonical decoder. Predicates are encoded by name
/// only, so a pattern containing one fails here with
/// [`CanonicalError::UnknownPredicate`]; decode such patterns with a
/// [`CanonicalDecoder`](rhospace_matchers::canonical::CanonicalDecoder) given a resolver.
impl Decode for rhospace_matchers::Pattern {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(rhospace_matchers::Pattern::decode_canonical(input)?)
    }
}

/// A component count, checked against the bytes left at four bytes per component before
/// anything is allocated.
fn decode_f32_count(input: &mut &[u8]) -> Result<usize, DecodeError> {
    let n = decode_varint(input)?;
    match usize::try_from(n) {
        Ok(n) if n.checked_mul(4).is_some_and(|bytes| bytes <= input.len()) => Ok(n),
        _ => Err(DecodeError::LengthTooLarge { len: n }),
    }
}

fn decode_f32(input: &mut &[u8]) -> Result<f32, DecodeError> {
    Ok(f32::from_bits(u32::decode(input)?))
}

/// Any bits decode (an [`Embedding`] validates nothing); a count the input cannot hold is
/// [`DecodeError::LengthTooLarge`].
///
/// ```
/// use rhospace_matchers::similarity::Embedding;
/// use rhospace_spaces::{decode_exact, DecodeError, Encode};
/// let e = Embedding::from([1.5, -0.0]);
/// let mut bytes = Vec::new();
/// e.encode(&mut bytes);
/// assert_eq!(decode_exact::<Embedding>(&bytes), Ok(e));
/// // Claims two components with four bytes left.
/// assert_eq!(
///     decode_exact::<Embedding>(&[2, 0, 0, 0, 0]),
///     Err(DecodeError::LengthTooLarge { len: 2 })
/// );
/// ```
impl Decode for Embedding {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let n = decode_f32_count(input)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(decode_f32(input)?);
        }
        Ok(Embedding::from(v))
    }
}

/// The value, then the embedding.
impl<T: Decode> Decode for EmbeddedDatum<T> {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let value = T::decode(input)?;
        let embedding = Embedding::decode(input)?;
        Ok(EmbeddedDatum::new(value, embedding))
    }
}

/// Tags 0, 1, 2; any other byte is `DecodeError::Invalid("metric")`.
impl Decode for Metric {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        match take_byte(input)? {
            0 => Ok(Metric::Cosine),
            1 => Ok(Metric::Dot),
            2 => Ok(Metric::L2Squared),
            _ => Err(DecodeError::Invalid("metric")),
        }
    }
}

/// Tag 0 (`Best`) or 1 then a minimal LEB128 `k >= 1` (`TopK`).
impl Decode for Take {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        match take_byte(input)? {
            0 => Ok(Take::Best),
            1 => {
                let k = usize::try_from(decode_varint(input)?)
                    .map_err(|_| DecodeError::IntOutOfRange)?;
                NonZeroUsize::new(k)
                    .map(Take::TopK)
                    .ok_or(DecodeError::Invalid("top-k count 0"))
            }
            _ => Err(DecodeError::Invalid("take mode")),
        }
    }
}

/// Rebuilt with the public constructors, so it is validated as they validate (see the module
/// docs); their refusals are [`DecodeError::Invalid`].
///
/// ```
/// use rhospace_matchers::similarity::{Metric, SimilarityPattern};
/// use rhospace_spaces::{decode_exact, DecodeError, Encode};
/// let p = SimilarityPattern::top_k([0.0, 1.0], Metric::Cosine, 0.5, 3).unwrap();
/// let mut bytes = Vec::new();
/// p.encode(&mut bytes);
/// assert_eq!(decode_exact::<SimilarityPattern>(&bytes), Ok(p));
/// // The same bytes with an all-zero query: refused, as `top_k` refuses it.
/// bytes[1..9].fill(0);
/// assert!(matches!(
///     decode_exact::<SimilarityPattern>(&bytes),
///     Err(DecodeError::Invalid(_))
/// ));
/// ```
impl Decode for SimilarityPattern {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let query = Embedding::decode(input)?;
        let metric = Metric::decode(input)?;
        let threshold = decode_f32(input)?;
        let take = Take::decode(input)?;
        let built = match take {
            Take::Best => SimilarityPattern::best(query, metric, threshold),
            Take::TopK(k) => SimilarityPattern::top_k(query, metric, threshold, k.get()),
        };
        built.map_err(|e| {
            DecodeError::Invalid(match e.kind() {
                PatternErrorKind::Query(VectorError::WrongDimension { .. }) => {
                    "similarity pattern: empty query"
                }
                PatternErrorKind::Query(VectorError::NonFinite { .. }) => {
                    "similarity pattern: NaN or infinite query component"
                }
                PatternErrorKind::Query(VectorError::ZeroVector) => {
                    "similarity pattern: zero query under cosine"
                }
                PatternErrorKind::ZeroK => "similarity pattern: top-k count 0",
                PatternErrorKind::NanThreshold => "similarity pattern: NaN threshold",
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{encode_varint, Encode};

    fn bytes<T: Encode + ?Sized>(v: &T) -> Vec<u8> {
        let mut out = Vec::new();
        v.encode(&mut out);
        out
    }

    fn round<T: Encode + Decode + PartialEq + fmt::Debug>(v: T) {
        let b = bytes(&v);
        assert_eq!(decode_exact::<T>(&b).as_ref(), Ok(&v));
    }

    #[test]
    fn scalars_round_trip() {
        round(0u8);
        round(u16::MAX);
        round(-5i32);
        round(u64::MAX);
        round(i128::MIN);
        round(usize::MAX);
        round(isize::MIN);
        round(true);
        round('é');
        round(String::from("héllo"));
        round(Box::<str>::from("x"));
        round(Arc::<str>::from(""));
        round(vec![Some(1u8), None]);
        round(Box::<[u16]>::from([1u16, 2]));
        round(Arc::<[u8]>::from([9u8]));
        round(Box::new(3u8));
        round(Arc::new((1u8, -1i64, 'z')));
    }

    #[test]
    fn varints_match_the_encoder() {
        for n in [0u64, 1, 127, 128, 300, 16_384, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            encode_varint(n, &mut out);
            let mut input = &out[..];
            assert_eq!(decode_varint(&mut input), Ok(n));
            assert!(input.is_empty());
        }
        assert_eq!(
            decode_varint(&mut &[0xFF; 11][..]),
            Err(DecodeError::VarintOverflow)
        );
        let mut ten = [0xFFu8; 10];
        ten[9] = 0x02;
        assert_eq!(
            decode_varint(&mut &ten[..]),
            Err(DecodeError::VarintOverflow)
        );
        assert_eq!(decode_varint(&mut &[0x80][..]), Err(DecodeError::Truncated));
        assert_eq!(
            decode_varint(&mut &[0x81, 0x80, 0x00][..]),
            Err(DecodeError::NonMinimalVarint)
        );
    }

    #[test]
    fn invalid_values_are_typed_errors() {
        assert_eq!(
            decode_exact::<char>(&0xD800u32.to_le_bytes()),
            Err(DecodeError::InvalidChar(0xD800))
        );
        assert_eq!(
            decode_exact::<Option<u8>>(&[2]),
            Err(DecodeError::InvalidOptionTag(2))
        );
        assert_eq!(
            decode_exact::<String>(&[2, 0xC3, 0x28]),
            Err(DecodeError::InvalidUtf8)
        );
        assert_eq!(decode_exact::<u32>(&[]), Err(DecodeError::Truncated));
        assert!(matches!(
            decode_exact::<rhospace_matchers::Term>(&[0x00]),
            Err(DecodeError::Canonical(CanonicalError::InvalidTag { .. }))
        ));
    }

    #[test]
    fn huge_lengths_are_rejected_before_allocating() {
        // Claims u64::MAX elements in a 10-byte input.
        let mut b = Vec::new();
        encode_varint(u64::MAX, &mut b);
        assert_eq!(
            decode_exact::<Vec<u64>>(&b),
            Err(DecodeError::LengthTooLarge { len: u64::MAX })
        );
        // Claims 5 elements with 4 bytes left: dishonest even for one-byte elements.
        assert_eq!(
            decode_exact::<Vec<u8>>(&[5, 1, 2, 3, 4]),
            Err(DecodeError::LengthTooLarge { len: 5 })
        );
        // Claims 4 with 4 left, but the elements are 8 bytes wide: truncated, not a panic.
        assert_eq!(
            decode_exact::<Vec<u64>>(&[4, 1, 2, 3, 4]),
            Err(DecodeError::Truncated)
        );
    }

    #[test]
    fn errors_chain_their_source() {
        use std::error::Error;
        let e = decode_exact::<rhospace_matchers::Term>(&[0x09]).unwrap_err();
        assert!(e.source().is_some());
        assert!(e
            .to_string()
            .starts_with("term or pattern: invalid tag 0x09"));
        assert!(DecodeError::Truncated.source().is_none());
    }
}
