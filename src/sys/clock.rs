//! The only reader of the system clocks. Shell code.
//!
//! [`now`] reads CLOCK_MONOTONIC, and only `shell::event_loop` calls it, once per wakeup
//! (STYLE.md 1.3). Wall time ([`wall_unix_secs`], [`wall_now_micros`]) is for SQLite row
//! stamps and "started at" only: routers without an RTC step their wall clock when NTP
//! syncs after boot, so it never measures an interval.
//!
//! [`local_offset_secs`] is the zone offset the original's naive local timestamps need.
//!
//! [`monotonic_from_wall`] converts a kernel receive timestamp (SO_TIMESTAMPNS is
//! CLOCK_REALTIME, there is no monotonic variant) to the monotonic time line; see its docs.

use std::time::Duration;

use nix::sys::time::TimeSpec;
use nix::time::{ClockId, clock_gettime};

use crate::time::Instant;

/// A queue age beyond this is treated as a wall-clock step, not a real delay (see
/// [`monotonic_from_wall`]). A datagram that really waited this long in the socket means
/// the loop stalled; its RTT is then measured at read time, which is what it would be
/// without kernel timestamps.
pub const MAX_QUEUE_AGE: Duration = Duration::from_secs(1);

fn read(clock: ClockId) -> TimeSpec {
    // CLOCK_MONOTONIC and CLOCK_REALTIME exist on every Linux we run on, and the only
    // other documented error (EFAULT) cannot happen with nix's stack buffer.
    clock_gettime(clock).expect("invariant: clock_gettime of a standard clock cannot fail")
}

// time_t and c_long are i32 on 32-bit targets (armv7), i64 on 64-bit ones: widen first.
#[allow(clippy::useless_conversion)]
fn micros(ts: TimeSpec) -> i64 {
    i64::from(ts.tv_sec()).saturating_mul(1_000_000).saturating_add(i64::from(ts.tv_nsec()) / 1_000)
}

/// The current CLOCK_MONOTONIC time. Call once per loop wakeup and pass it down.
pub fn now() -> Instant {
    // Monotonic time counts from boot, so it is never negative.
    Instant::from_micros(u64::try_from(micros(read(ClockId::CLOCK_MONOTONIC))).unwrap_or(0))
}

/// Wall-clock seconds since the Unix epoch (CLOCK_REALTIME), for row stamps only.
#[allow(clippy::useless_conversion)] // time_t is i32 on 32-bit targets
pub fn wall_unix_secs() -> i64 {
    i64::from(read(ClockId::CLOCK_REALTIME).tv_sec())
}

/// Wall-clock microseconds since the Unix epoch (CLOCK_REALTIME), for row stamps only.
pub fn wall_now_micros() -> i64 {
    micros(read(ClockId::CLOCK_REALTIME))
}

/// The local time zone's offset from UTC at this moment, in seconds east of Greenwich
/// (e.g. 3600 for CET, −18000 for EST), for the original's naive local timestamps in the
/// state file. 0 (UTC) when the zone is unknown. It follows DST, so call it per use.
pub fn local_offset_secs() -> i64 {
    let now = wall_unix_secs() as libc::time_t;
    // SAFETY: `tm` is plain old data (integers and, on glibc/musl, a `*const c_char` zone
    // name); all-zero is a valid value of every field.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers refer to live locals for the whole call; localtime_r writes
    // only into `tm` (the reentrant variant, no shared static buffer) and returns null on
    // failure. The zone name pointer it may store is not read.
    let res = unsafe { libc::localtime_r(&now, &mut tm) };
    if res.is_null() {
        return 0;
    }
    // `c_long` is i64 here but i32 on armv7, where the conversion is not a no-op.
    #[allow(clippy::useless_conversion)]
    let offset = i64::from(tm.tm_gmtoff);
    offset
}

/// Maps a CLOCK_REALTIME timestamp taken by the kernel a moment ago (`wall_us`, µs since
/// the Unix epoch) onto the monotonic time line.
///
/// Both clocks are read back to back now; the datagram's age is `wall_now - wall_us`, and
/// its monotonic arrival is `mono_now - age`. The two clocks advance at the same rate
/// except while NTP slews (≤ 500 ppm, i.e. ≤ 0.5 µs over a 1 ms queue age), so the only
/// real hazard is a wall-clock *step* between arrival and this call. A backward step shows
/// as a negative age and a forward step as an age beyond [`MAX_QUEUE_AGE`]; both return
/// `None`, and the caller falls back to its read-time `now`.
///
/// The result is never later than the moment of the call, but it can be later than the
/// `now` the loop read at the start of this wakeup (the datagram arrived since).
pub fn monotonic_from_wall(wall_us: i64) -> Option<Instant> {
    let mono = now();
    let wall = wall_now_micros();
    let age_us = u64::try_from(wall.checked_sub(wall_us)?).ok()?;
    let age = Duration::from_micros(age_us);
    if age > MAX_QUEUE_AGE {
        return None;
    }
    Some(mono.saturating_sub(age))
}
