//! TUN devices: a file descriptor that carries raw IP packets to and from a virtual
//! interface. Shell code; used by the test rig's reflector (`tests/support/reflector.rs`),
//! kept here because opening one needs an `ioctl`, and `unsafe` lives only in `sys`.
//!
//! The device is created in the network namespace of the *calling thread* (the kernel
//! looks the name up in the opener's namespace), so a test enters its namespace with
//! [`super::netns::enter`] before [`Tun::open`].

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;

/// An open TUN device (`IFF_TUN | IFF_NO_PI`: each read or write is one bare IP packet).
/// Non-blocking and close-on-exec. The device disappears when this is dropped.
#[derive(Debug)]
pub struct Tun {
    file: File,
    name: String,
}

impl Tun {
    /// Creates (or attaches to) TUN device `name`; an empty name lets the kernel pick
    /// `tunN`. Needs CAP_NET_ADMIN.
    pub fn open(name: &str) -> io::Result<Tun> {
        let ctx = |e: io::Error| io::Error::new(e.kind(), format!("open TUN device {name:?}: {e}"));
        if name.len() >= libc::IFNAMSIZ || name.contains('\0') {
            return Err(ctx(io::Error::new(io::ErrorKind::InvalidInput, "name too long or contains NUL")));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/net/tun")
            .map_err(ctx)?;
        // SAFETY: `ifreq` is plain old data (byte arrays, integers, a raw pointer in a
        // union); all-zero is a valid value of every field.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, &src) in ifr.ifr_name.iter_mut().zip(name.as_bytes()) {
            *dst = src as libc::c_char;
        }
        ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: `file` is an open /dev/net/tun fd for the whole call; TUNSETIFF reads and
        // writes one `struct ifreq`, and `ifr` is a live, initialised one of that type.
        unsafe { syscall!(ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut ifr as *mut libc::ifreq)) }
            .map_err(ctx)?;
        // The kernel wrote the final, NUL-terminated name back.
        let bytes: Vec<u8> = ifr.ifr_name.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
        Ok(Tun { file, name: String::from_utf8_lossy(&bytes).into_owned() })
    }

    /// The interface name the kernel gave the device.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads one packet; `Ok(None)` if none is queued.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match (&self.file).read(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes one packet (an IPv4 or IPv6 packet, as if received on the interface).
    pub fn write(&self, packet: &[u8]) -> io::Result<usize> {
        (&self.file).write(packet)
    }
}

impl AsFd for Tun {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}
