//! The loop's cadence: a periodic CLOCK_MONOTONIC timerfd. Shell code.
//!
//! A periodic timerfd does not drift (each expiry is scheduled from the previous one, not
//! from when we got round to reading it), and a read returns how many periods have passed
//! since the last read. The loop turns `n > 1` into `Tick { missed: n - 1 }` and does not
//! replay the missed cycles (STYLE.md 1.3).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

use super::from_nix;

/// A non-blocking, close-on-exec periodic timer on CLOCK_MONOTONIC.
#[derive(Debug)]
pub struct Timer {
    fd: TimerFd,
    period: Duration,
}

impl Timer {
    /// Starts a timer whose first expiry is one `period` from now. A zero period is
    /// rejected with `InvalidInput` (the kernel would read it as "disarm").
    pub fn periodic(period: Duration) -> io::Result<Timer> {
        if period.is_zero() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "timerfd: period must be > 0"));
        }
        let fd = TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC)
            .map_err(from_nix)?;
        fd.set(Expiration::Interval(TimeSpec::from_duration(period)), TimerSetTimeFlags::empty())
            .map_err(from_nix)?;
        Ok(Timer { fd, period })
    }

    /// The period the timer was started with.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Expirations since the last read; 0 if none (the read would block). More than 1
    /// means the loop overran and `n - 1` ticks were missed.
    pub fn read(&self) -> io::Result<u64> {
        let mut buf = [0u8; 8];
        loop {
            match nix::unistd::read(self.fd.as_fd().as_raw_fd(), &mut buf) {
                Ok(8) => return Ok(u64::from_ne_bytes(buf)),
                Ok(n) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("timerfd: short read of {n} bytes"),
                    ));
                }
                Err(nix::Error::EAGAIN) => return Ok(0),
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(from_nix(e)),
            }
        }
    }
}

impl AsFd for Timer {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
