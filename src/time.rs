//! Our own monotonic `Instant`: microseconds since an arbitrary epoch. Pure: reads no clock.
//!
//! Only `sys::clock::now()` creates instants from the OS; everything else receives them as
//! arguments, which is what makes the controller and the simulator deterministic
//! (smoltcp's `time::Instant` is the model). Spans are `std::time::Duration`.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};
use std::time::Duration;

/// A point on the monotonic time line, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant {
    micros: u64,
}

impl Instant {
    /// The epoch of the time line (tests and the simulator start here).
    pub const ZERO: Instant = Instant { micros: 0 };

    /// An instant `micros` microseconds after the epoch.
    pub const fn from_micros(micros: u64) -> Instant {
        Instant { micros }
    }

    /// An instant `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: u64) -> Instant {
        Instant { micros: millis * 1000 }
    }

    /// An instant `secs` seconds after the epoch.
    pub const fn from_secs(secs: u64) -> Instant {
        Instant { micros: secs * 1_000_000 }
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> u64 {
        self.micros
    }

    /// Seconds since the epoch as a float (for reports and plots only).
    pub fn as_secs_f64(self) -> f64 {
        self.micros as f64 / 1e6
    }

    /// `self - earlier`, or zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.micros.saturating_sub(earlier.micros))
    }

    /// `self - d`, clamped at the epoch.
    pub fn saturating_sub(self, d: Duration) -> Instant {
        Instant { micros: self.micros.saturating_sub(d.as_micros() as u64) }
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant { micros: self.micros.saturating_add(d.as_micros() as u64) }
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    /// Saturating difference: a later `rhs` gives zero, never a panic.
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_since(rhs)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.micros / 1_000_000, self.micros % 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_is_exact_and_saturating() {
        let t = Instant::from_millis(50);
        assert_eq!(t + Duration::from_millis(50), Instant::from_millis(100));
        assert_eq!(Instant::from_millis(100) - t, Duration::from_millis(50));
        assert_eq!(t - Instant::from_millis(100), Duration::ZERO);
        assert_eq!(t.to_string(), "0.050000s");
    }
}
