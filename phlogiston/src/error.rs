//! Typed errors of the meter and its leases. Each is a small `Copy` struct that hands back the
//! numbers the caller needs to react (what was asked, what was there); none allocates, and
//! building one formats nothing (`Display` formats only when someone prints it).

use core::fmt;

/// A charge asked for more phlogiston than was left. The charge changed nothing.
///
/// # Example
/// ```
/// use rhospace_phlogiston::{OutOfPhlogiston, PhlogistonMeter};
///
/// let meter = PhlogistonMeter::new(10);
/// let err = meter.charge(11).unwrap_err();
/// assert_eq!(err, OutOfPhlogiston { requested: 11, remaining: 10 });
/// assert_eq!(err.to_string(), "out of phlogiston: requested 11, remaining 10");
/// assert_eq!(meter.remaining(), 10); // nothing was taken
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OutOfPhlogiston {
    /// The amount the failed charge asked for.
    pub requested: u64,
    /// What was left when the charge was refused (for a lease: its own allowance plus the
    /// meter's remaining balance at that moment). Always `< requested`.
    pub remaining: u64,
}

impl fmt::Display for OutOfPhlogiston {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "out of phlogiston: requested {}, remaining {}",
            self.requested, self.remaining
        )
    }
}

impl std::error::Error for OutOfPhlogiston {}

/// A refund asked to give back more phlogiston than had been charged (and not yet refunded).
/// The refund changed nothing: refunds are never clamped, so a caller's accounting bug shows up
/// here instead of silently inflating the balance.
///
/// # Example
/// ```
/// use rhospace_phlogiston::{PhlogistonMeter, RefundExceedsCharged};
///
/// let meter = PhlogistonMeter::new(100);
/// meter.charge(30).unwrap();
/// let err = meter.refund(31).unwrap_err();
/// assert_eq!(err, RefundExceedsCharged { requested: 31, refundable: 30 });
/// assert_eq!(meter.remaining(), 70); // unchanged
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RefundExceedsCharged {
    /// The amount the failed refund asked to give back.
    pub requested: u64,
    /// How much could have been refunded at that moment. Always `< requested`.
    pub refundable: u64,
}

impl fmt::Display for RefundExceedsCharged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "refund exceeds phlogiston charged: requested {}, refundable {}",
            self.requested, self.refundable
        )
    }
}

impl std::error::Error for RefundExceedsCharged {}
