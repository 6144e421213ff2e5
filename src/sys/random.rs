//! The seed for `rng::Rng`, from `getrandom(2)`. Shell code.
//!
//! The seed only decorrelates probe identifiers and jitter between runs; it is logged, and
//! `--seed N` replays a run. It is not a secret. So this never blocks and never fails:
//! early in a router's boot the entropy pool may not be initialised, and a blocking
//! `getrandom` would stall startup. The order is: `GRND_NONBLOCK` (the normal case), then
//! `GRND_INSECURE` (Linux ≥ 5.6, never blocks), then a mix of the clocks and the pid
//! (kernels without `getrandom`, < 3.17).

use super::clock;

fn getrandom_u64(flags: libc::c_uint) -> Option<u64> {
    let mut buf = [0u8; 8];
    // Reads of ≤ 256 bytes are never short once they start (getrandom(2)); retry EINTR a
    // bounded number of times.
    for _ in 0..4 {
        // SAFETY: `buf` is a live, writable 8-byte array and the length passed is its length.
        let res = unsafe { syscall!(getrandom(buf.as_mut_ptr().cast::<libc::c_void>(), buf.len(), flags)) };
        match res {
            Ok(8) => return Some(u64::from_ne_bytes(buf)),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            _ => return None,
        }
    }
    None
}

/// splitmix64's finaliser: spreads the few varying bits of the fallback inputs.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A 64-bit seed. Never blocks, never fails (see the module docs for the fallbacks).
pub fn seed() -> u64 {
    if let Some(s) = getrandom_u64(libc::GRND_NONBLOCK) {
        return s;
    }
    if let Some(s) = getrandom_u64(libc::GRND_INSECURE) {
        return s;
    }
    let wall = clock::wall_now_micros() as u64;
    let mono = clock::now().as_micros();
    mix(wall ^ mix(mono) ^ (u64::from(std::process::id()) << 32))
}
