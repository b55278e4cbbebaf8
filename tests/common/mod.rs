//! Test-only helpers shared by the integration tests: a small predicate matcher over `i64`
//! and a seeded random number generator.
#![allow(dead_code)]

use rhospace_matchers::Match;
use rhospace_spaces::{Decode, DecodeError, Encode};

/// A pattern over integers. Several data can match one pattern, which makes joins interesting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pred {
    /// Any integer.
    Any,
    /// Even integers.
    Even,
    /// Odd integers.
    Odd,
    /// Integers strictly greater than `n`.
    Gt(i64),
    /// Exactly `n` (reported to the space as an exact key, so indexed lookups are exercised).
    Eq(i64),
}

impl Pred {
    /// Whether the pattern accepts `d`.
    pub fn accepts(&self, d: i64) -> bool {
        match *self {
            Pred::Any => true,
            Pred::Even => d % 2 == 0,
            Pred::Odd => d % 2 != 0,
            Pred::Gt(n) => d > n,
            Pred::Eq(n) => d == n,
        }
    }
}

/// A tag byte, then the bound for `Gt` and `Eq`: a canonical encoding, as the event log's
/// hashes need of every pattern type.
impl Encode for Pred {
    fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Pred::Any => out.push(0),
            Pred::Even => out.push(1),
            Pred::Odd => out.push(2),
            Pred::Gt(n) => {
                out.push(3);
                n.encode(out);
            }
            Pred::Eq(n) => {
                out.push(4);
                n.encode(out);
            }
        }
    }

    fn encoded_len(&self) -> usize {
        match self {
            Pred::Gt(_) | Pred::Eq(_) => 9,
            _ => 1,
        }
    }
}

/// The inverse of `Encode` (a space `reset` from a history store decodes its patterns).
impl Decode for Pred {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let tag = u8::decode(input)?;
        Ok(match tag {
            0 => Pred::Any,
            1 => Pred::Even,
            2 => Pred::Odd,
            3 => Pred::Gt(i64::decode(input)?),
            4 => Pred::Eq(i64::decode(input)?),
            _ => return Err(DecodeError::Invalid("a Pred tag")),
        })
    }
}

/// Matches `Pred` patterns against `i64` data; the result is the datum times ten plus a tag of
/// the pattern kind, so a test can tell that the result really comes from the matcher.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PredMatch;

/// The result the matcher returns for `pattern` on `datum` (when it matches).
pub fn result_of(pattern: &Pred, datum: i64) -> i64 {
    let tag = match pattern {
        Pred::Any => 0,
        Pred::Even => 1,
        Pred::Odd => 2,
        Pred::Gt(_) => 3,
        Pred::Eq(_) => 4,
    };
    datum.wrapping_mul(10).wrapping_add(tag)
}

impl Match<Pred, i64> for PredMatch {
    type Output = i64;

    fn get(&self, pattern: &Pred, datum: &i64) -> Option<i64> {
        pattern.accepts(*datum).then(|| result_of(pattern, *datum))
    }

    fn exact_key<'p>(&self, pattern: &'p Pred) -> Option<&'p i64> {
        match pattern {
            Pred::Eq(n) => Some(n),
            _ => None,
        }
    }
}

/// splitmix64: seeded, so every run makes the same calls.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    }
    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}
