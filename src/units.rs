//! Unit newtypes. Pure: no I/O, no clock.
//!
//! Rates are integer bits per second, as in the original (`int(rate * factor)` on bit/s
//! values), so golden numbers reproduce exactly. Conversion to RouterOS strings happens only
//! in the RouterOS codec.

use std::fmt;

/// A rate in bits per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Bps(pub u64);

impl Bps {
    /// Decimal megabits per second (the config unit) to bit/s, truncating like the
    /// original's `int(mbps * 1_000_000)`.
    pub fn from_mbps(mbps: f64) -> Bps {
        Bps((mbps * 1_000_000.0) as u64)
    }

    /// The rate in decimal megabits per second.
    pub fn as_mbps(self) -> f64 {
        self.0 as f64 / 1_000_000.0
    }

    /// `int(rate × factor)`: the original's multiplicative step, truncated toward zero.
    pub fn scale(self, factor: f64) -> Bps {
        Bps((self.0 as f64 * factor) as u64)
    }
}

impl fmt::Display for Bps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1}Mbit/s", self.as_mbps())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbps_round_trip_is_exact_for_whole_megabits() {
        assert_eq!(Bps::from_mbps(920.0), Bps(920_000_000));
        assert_eq!(Bps::from_mbps(0.5), Bps(500_000));
        assert_eq!(Bps(38_000_000).as_mbps(), 38.0);
    }

    #[test]
    fn scale_truncates_like_python_int() {
        assert_eq!(Bps(920_000_000).scale(0.85), Bps(782_000_000));
        assert_eq!(Bps(101).scale(0.5), Bps(50));
    }
}
