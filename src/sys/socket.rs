//! ICMP echo sockets and non-blocking TCP connects, with per-WAN binding. Shell code.
//!
//! [`IcmpSocket::open`] first tries an unprivileged datagram ping socket
//! (`SOCK_DGRAM, IPPROTO_ICMP/ICMPV6`, allowed when the process's group is inside
//! `net.ipv4.ping_group_range`), then a raw socket (needs CAP_NET_RAW). The two differ in
//! what they deliver, which [`IcmpSocket::framing`] and [`IcmpSocket::kernel_ident`] tell
//! the codec (`wire::icmp`):
//!
//! | | datagram ping socket | raw socket |
//! |---|---|---|
//! | IPv4 receive | ICMP message | IPv4 header + ICMP message |
//! | IPv6 receive | ICMPv6 message | ICMPv6 message |
//! | identifier | kernel writes the local port; only matching replies arrive | ours; every ICMP packet arrives |
//! | checksum on send | kernel | IPv4: ours, IPv6: kernel |
//!
//! Receive timestamps: SO_TIMESTAMPNS stamps each datagram when the kernel queues it, but
//! on CLOCK_REALTIME. [`IcmpSocket::recv`] converts it right after `recvmsg` with
//! `clock::monotonic_from_wall` (both clocks read back to back, a wall-clock step detected
//! and reported as `None`), so [`Received::kernel_time`] is on the same monotonic line as
//! `clock::now()`, and the time the datagram waited for the loop is not counted as RTT.

use std::ffi::OsString;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::sys::socket::{
    self as nsock, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockProtocol, SockType,
    SockaddrIn, SockaddrIn6, SockaddrLike, SockaddrStorage, sockopt,
};
use nix::sys::time::TimeSpec;

use super::{clock, from_nix};
use crate::time::Instant;
use crate::wire::icmp::{Family, Framing};

/// The remedy text shown when neither ICMP socket type may be opened.
pub const PERMISSION_REMEDY: &str = "allow unprivileged ping sockets with \
     `sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"`, or grant raw sockets with \
     `setcap cap_net_raw+ep /path/to/wanctl` (systemd: AmbientCapabilities=CAP_NET_RAW)";

/// How a socket leaves the host: the per-WAN binding of multi-WAN setups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BindOptions {
    /// SO_BINDTODEVICE: send and receive only via this interface (e.g. `"wan1"`). Linux
    /// ≥ 5.7 allows it unprivileged on an unbound socket; older kernels need CAP_NET_RAW.
    pub device: Option<String>,
    /// Bind to this local address: the source of outgoing packets, so policy routing by
    /// source picks the WAN. Its family must match the socket's.
    pub source: Option<IpAddr>,
    /// SO_MARK: the fwmark policy routing matches on (`ip rule add fwmark …`). Needs
    /// CAP_NET_ADMIN.
    pub mark: Option<u32>,
}

/// How an [`IcmpSocket`] was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpKind {
    /// `SOCK_DGRAM` ping socket (unprivileged, `ping_group_range`).
    Datagram,
    /// `SOCK_RAW` (CAP_NET_RAW).
    Raw,
}

/// One received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Bytes written to the buffer (a longer datagram is cut to the buffer).
    pub len: usize,
    /// Who sent it.
    pub from: IpAddr,
    /// When the kernel queued it, on the `clock::now()` time line; `None` if the kernel gave
    /// no timestamp or the wall clock stepped in between (then use the loop's `now`).
    pub kernel_time: Option<Instant>,
}

/// A non-blocking, close-on-exec ICMP echo socket with receive timestamps enabled.
#[derive(Debug)]
pub struct IcmpSocket {
    fd: OwnedFd,
    family: Family,
    kind: IcmpKind,
    kernel_ident: Option<u16>,
    /// Control-message space for one `timespec`, allocated once.
    cmsg: Vec<u8>,
}

fn is_permission(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied
}

fn family_name(family: Family) -> &'static str {
    match family {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    }
}

impl IcmpSocket {
    /// Opens a datagram ping socket, or a raw socket if ping sockets are not permitted (or
    /// not built into the kernel). If neither is permitted, the error names both remedies.
    pub fn open(family: Family, opts: &BindOptions) -> io::Result<IcmpSocket> {
        let dgram_err = match try_open(family, IcmpKind::Datagram, opts) {
            Ok(s) => return Ok(s),
            Err(e) => e,
        };
        let fallback = dgram_err.0 == "open"
            && matches!(
                dgram_err.1.raw_os_error(),
                Some(libc::EPERM | libc::EACCES | libc::EPROTONOSUPPORT | libc::ESOCKTNOSUPPORT)
            );
        if !fallback {
            return Err(with_context(family, IcmpKind::Datagram, dgram_err));
        }
        match try_open(family, IcmpKind::Raw, opts) {
            Ok(s) => Ok(s),
            Err(("open", raw_err)) if is_permission(&raw_err) => Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "open {} ICMP socket: ping socket: {}; raw socket: {raw_err}; to fix, {PERMISSION_REMEDY}",
                    family_name(family),
                    dgram_err.1,
                ),
            )),
            Err(e) => Err(with_context(family, IcmpKind::Raw, e)),
        }
    }

    /// Opens exactly the given kind (tests use it to exercise both paths). Errors carry the
    /// operation, e.g. `open IPv4 ping socket: Permission denied (os error 13)`.
    pub fn open_kind(family: Family, kind: IcmpKind, opts: &BindOptions) -> io::Result<IcmpSocket> {
        try_open(family, kind, opts).map_err(|e| with_context(family, kind, e))
    }

    /// The socket's IP version.
    pub fn family(&self) -> Family {
        self.family
    }

    /// Which kind [`IcmpSocket::open`] ended up with.
    pub fn kind(&self) -> IcmpKind {
        self.kind
    }

    /// What precedes the ICMP message in received datagrams.
    pub fn framing(&self) -> Framing {
        match (self.kind, self.family) {
            (IcmpKind::Raw, Family::V4) => Framing::Ipv4Header,
            _ => Framing::Bare,
        }
    }

    /// For a datagram ping socket, the identifier the kernel writes into every request
    /// (the socket's local port) and that every reply delivered here carries. Use it as
    /// the prober's identifier so matching is exact for both kinds. `None` for raw sockets,
    /// where the identifier we write is kept.
    pub fn kernel_ident(&self) -> Option<u16> {
        self.kernel_ident
    }

    /// The identifier replies will carry if requests are written with `requested`.
    pub fn reply_ident(&self, requested: u16) -> u16 {
        self.kernel_ident.unwrap_or(requested)
    }

    /// Sends one ICMP message to `dst`. `WouldBlock` (send buffer full) is returned as an
    /// error for the caller to count as a lost probe.
    pub fn send_to(&self, packet: &[u8], dst: IpAddr) -> io::Result<usize> {
        let flags = MsgFlags::MSG_DONTWAIT;
        let raw = self.fd.as_raw_fd();
        let res = match (dst, self.family) {
            (IpAddr::V4(a), Family::V4) => {
                nsock::sendto(raw, packet, &SockaddrIn::from(SocketAddrV4::new(a, 0)), flags)
            }
            (IpAddr::V6(a), Family::V6) => {
                nsock::sendto(raw, packet, &SockaddrIn6::from(SocketAddrV6::new(a, 0, 0, 0)), flags)
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "send to {dst}: address family does not match this {} socket",
                        family_name(self.family)
                    ),
                ));
            }
        };
        res.map_err(from_nix)
    }

    /// Receives one datagram into `buf`; `Ok(None)` when none is queued. Call until `None`.
    /// Any other error (e.g. an ICMP error queued on the socket) is transient: log it and
    /// keep reading.
    pub fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        let mut iov = [IoSliceMut::new(buf)];
        let msg = loop {
            match nsock::recvmsg::<SockaddrStorage>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut self.cmsg),
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(m) => break m,
                Err(nix::Error::EAGAIN) => return Ok(None),
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(from_nix(e)),
            }
        };
        let mut wall_us = None;
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::ScmTimestampns(ts) = c {
                    wall_us = Some(timespec_micros(ts));
                }
            }
        }
        let from = match msg.address.as_ref().and_then(storage_ip) {
            Some(ip) => ip,
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "recvmsg: datagram without source address",
                ));
            }
        };
        let len = msg.bytes;
        Ok(Some(Received { len, from, kernel_time: wall_us.and_then(clock::monotonic_from_wall) }))
    }
}

impl AsFd for IcmpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A failed step of opening an ICMP socket: which step, and the OS error as it came.
type OpenError = (&'static str, io::Error);

fn with_context(family: Family, kind: IcmpKind, (op, e): OpenError) -> io::Error {
    let what = match kind {
        IcmpKind::Datagram => "ping socket",
        IcmpKind::Raw => "raw ICMP socket",
    };
    io::Error::new(e.kind(), format!("{op} {} {what}: {e}", family_name(family)))
}

fn try_open(family: Family, kind: IcmpKind, opts: &BindOptions) -> Result<IcmpSocket, OpenError> {
    let (af, proto) = match family {
        Family::V4 => (AddressFamily::Inet, SockProtocol::Icmp),
        Family::V6 => (AddressFamily::Inet6, SockProtocol::IcmpV6),
    };
    let ty = match kind {
        IcmpKind::Datagram => SockType::Datagram,
        IcmpKind::Raw => SockType::Raw,
    };
    let fd = nsock::socket(af, ty, SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC, proto)
        .map_err(|e| ("open", from_nix(e)))?;
    apply_options(&fd, family, opts).map_err(|e| ("configure", e))?;
    nsock::setsockopt(&fd, sockopt::ReceiveTimestampns, &true)
        .map_err(|e| ("enable timestamps on", from_nix(e)))?;
    // A ping socket gets its identifier (local port) when bound; bind now so it is known
    // before the first send. A raw socket is bound only to pick a source.
    if kind == IcmpKind::Datagram || opts.source.is_some() {
        bind_ip(&fd, family, opts.source, 0).map_err(|e| ("bind", e))?;
    }
    let kernel_ident = match kind {
        IcmpKind::Datagram => Some(local_port(&fd).map_err(|e| ("getsockname of", e))?),
        IcmpKind::Raw => None,
    };
    Ok(IcmpSocket { fd, family, kind, kernel_ident, cmsg: nix::cmsg_space!(libc::timespec) })
}

// time_t and c_long are i32 on 32-bit targets (armv7), i64 on 64-bit ones: widen first.
#[allow(clippy::useless_conversion)]
fn timespec_micros(ts: TimeSpec) -> i64 {
    i64::from(ts.tv_sec()).saturating_mul(1_000_000).saturating_add(i64::from(ts.tv_nsec()) / 1_000)
}

fn storage_ip(s: &SockaddrStorage) -> Option<IpAddr> {
    if let Some(v4) = s.as_sockaddr_in() {
        return Some(IpAddr::V4(v4.ip()));
    }
    s.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
}

fn apply_options(fd: &OwnedFd, family: Family, opts: &BindOptions) -> io::Result<()> {
    if let Some(dev) = &opts.device {
        if dev.is_empty() || dev.len() >= libc::IFNAMSIZ || dev.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("device name {dev:?} must be 1..{} bytes without NUL", libc::IFNAMSIZ - 1),
            ));
        }
        nsock::setsockopt(fd, sockopt::BindToDevice, &OsString::from(dev))
            .map_err(|e| io::Error::new(io::Error::from(e).kind(), format!("SO_BINDTODEVICE {dev}: {e}")))?;
    }
    if let Some(mark) = opts.mark {
        nsock::setsockopt(fd, sockopt::Mark, &mark)
            .map_err(|e| io::Error::new(io::Error::from(e).kind(), format!("SO_MARK {mark}: {e}")))?;
    }
    if let Some(src) = opts.source {
        let ok = matches!((src, family), (IpAddr::V4(_), Family::V4) | (IpAddr::V6(_), Family::V6));
        if !ok {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("source address {src} is not {}", family_name(family)),
            ));
        }
    }
    Ok(())
}

fn bind_ip(fd: &OwnedFd, family: Family, source: Option<IpAddr>, port: u16) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    let res = match (family, source) {
        (Family::V4, Some(IpAddr::V4(a))) => nsock::bind(raw, &SockaddrIn::from(SocketAddrV4::new(a, port))),
        (Family::V4, _) => {
            nsock::bind(raw, &SockaddrIn::from(SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, port)))
        }
        (Family::V6, Some(IpAddr::V6(a))) => {
            nsock::bind(raw, &SockaddrIn6::from(SocketAddrV6::new(a, port, 0, 0)))
        }
        (Family::V6, _) => nsock::bind(
            raw,
            &SockaddrIn6::from(SocketAddrV6::new(std::net::Ipv6Addr::UNSPECIFIED, port, 0, 0)),
        ),
    };
    res.map_err(|e| {
        let shown = source.map_or_else(|| "the wildcard address".to_string(), |a| a.to_string());
        io::Error::new(io::Error::from(e).kind(), format!("{shown}: {e}"))
    })
}

fn local_port(fd: &OwnedFd) -> io::Result<u16> {
    let addr: SockaddrStorage = nsock::getsockname(fd.as_raw_fd()).map_err(from_nix)?;
    if let Some(v4) = addr.as_sockaddr_in() {
        return Ok(v4.port());
    }
    match addr.as_sockaddr_in6() {
        Some(v6) => Ok(v6.port()),
        None => Err(io::Error::new(io::ErrorKind::InvalidData, "getsockname: not an IP address")),
    }
}

/// State of a [`tcp_connect_nonblocking`] socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectState {
    /// Connected already (typical for loopback).
    Connected,
    /// EINPROGRESS: register for writability; when writable, [`take_socket_error`] says
    /// whether the connect succeeded.
    InProgress,
}

/// Starts a non-blocking TCP connect to `addr` with the per-WAN binding `opts` (source
/// port is chosen by the kernel). The stream is non-blocking and close-on-exec. Used for
/// TCP-handshake RTT probes and the REST client.
pub fn tcp_connect_nonblocking(
    addr: SocketAddr,
    opts: &BindOptions,
) -> io::Result<(TcpStream, ConnectState)> {
    let ctx = |op: &str, e: io::Error| io::Error::new(e.kind(), format!("{op} TCP socket to {addr}: {e}"));
    let family = match addr {
        SocketAddr::V4(_) => Family::V4,
        SocketAddr::V6(_) => Family::V6,
    };
    let af = match family {
        Family::V4 => AddressFamily::Inet,
        Family::V6 => AddressFamily::Inet6,
    };
    let fd = nsock::socket(af, SockType::Stream, SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| ctx("open", from_nix(e)))?;
    apply_options(&fd, family, opts).map_err(|e| ctx("configure", e))?;
    if opts.source.is_some() {
        bind_ip(&fd, family, opts.source, 0).map_err(|e| ctx("bind", e))?;
    }
    let target = SockaddrStorage::from(addr);
    let state = match nsock::connect(fd.as_raw_fd(), &target as &dyn SockaddrLike) {
        Ok(()) => ConnectState::Connected,
        Err(nix::Error::EINPROGRESS) => ConnectState::InProgress,
        // An interrupted connect carries on asynchronously (connect(2)), like EINPROGRESS.
        Err(nix::Error::EINTR) => ConnectState::InProgress,
        Err(e) => return Err(ctx("connect", from_nix(e))),
    };
    Ok((TcpStream::from(fd), state))
}

/// Reads and clears SO_ERROR: `None` if the socket has no pending error (a non-blocking
/// connect that became writable succeeded), else the error (e.g. connection refused).
pub fn take_socket_error(fd: BorrowedFd<'_>) -> io::Result<Option<io::Error>> {
    let code = nsock::getsockopt(&fd, sockopt::SocketError).map_err(from_nix)?;
    Ok((code != 0).then(|| io::Error::from_raw_os_error(code)))
}
