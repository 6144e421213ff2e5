//! ICMP echo codec for IPv4 (RFC 792) and IPv6 (RFC 4443 §4): request emit, reply parse,
//! and the internet checksum (RFC 1071). Pure: no I/O, no clock, no allocation.
//!
//! In scope: echo request and echo reply messages, and the two ways a Linux socket frames
//! what it receives ([`Framing`]). Out of scope: other ICMP types (they parse as
//! [`Error::NotEcho`]), IP options beyond skipping them, fragments, sockets (`sys::socket`).
//!
//! Message layout (both families):
//! ```text
//!  0      1      2      4        6        8                 10               16
//! +------+------+------+--------+--------+-----------------+----------------+-------
//! | type | code | csum | ident  | seq_no | MAGIC "wc"      | sent_at µs,    | zero
//! |      |  0   |      |        |        |                 | low 48 bits BE | padding
//! +------+------+------+--------+--------+-----------------+----------------+-------
//!                                         \______ stamp area (STAMP_LEN) ______/
//! ```
//! The stamp lets a late reply be timed even after the prober forgot its sequence number,
//! and the magic tells our replies from other programs' on a raw socket. 48 bits of
//! microseconds wrap after 8.9 years, so [`SendStamp::resolve`] is exact for any real RTT.
//!
//! Checksums: IPv4 carries a checksum over the ICMP message, which [`EchoRepr::emit`]
//! fills and [`EchoRepr::parse`] verifies (a raw socket hands us packets before
//! `icmp_rcv` has checked them). The ICMPv6 checksum covers an IPv6 pseudo-header (RFC 4443
//! §2.3) whose addresses the socket does not give us; Linux computes it on send for every
//! ICMPv6 socket (RFC 3542 §3.1) and verifies it on receive, so IPv6 emit leaves it zero
//! and parse skips it. [`checksum_v6`] exists for code that builds whole packets (the test
//! rig's reflector).
//!
//! Datagram ping sockets rewrite the identifier to the socket's local port on send and
//! deliver only replies carrying it, so with those sockets the identifier to expect is the
//! one `sys::socket::IcmpSocket::kernel_ident` reports, not the one written here.

use std::fmt;

use crate::time::Instant;

/// Which IP version the ICMP message belongs to (type numbers differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// ICMP for IPv4 (RFC 792).
    V4,
    /// ICMPv6 (RFC 4443).
    V6,
}

/// What precedes the ICMP message in a received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// The datagram is the ICMP message: datagram ping sockets, and every ICMPv6 socket.
    Bare,
    /// The datagram starts with the IPv4 header (raw IPv4 sockets); it is skipped by IHL.
    Ipv4Header,
}

/// Echo request or echo reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// Type 8 (IPv4) / 128 (IPv6).
    EchoRequest,
    /// Type 0 (IPv4) / 129 (IPv6).
    EchoReply,
}

impl Message {
    /// The ICMP type number of this message in `family`.
    pub const fn icmp_type(self, family: Family) -> u8 {
        match (self, family) {
            (Message::EchoRequest, Family::V4) => 8,
            (Message::EchoReply, Family::V4) => 0,
            (Message::EchoRequest, Family::V6) => 128,
            (Message::EchoReply, Family::V6) => 129,
        }
    }

    fn from_type(family: Family, icmp_type: u8) -> Option<Message> {
        match (family, icmp_type) {
            (Family::V4, 8) | (Family::V6, 128) => Some(Message::EchoRequest),
            (Family::V4, 0) | (Family::V6, 129) => Some(Message::EchoReply),
            _ => None,
        }
    }
}

/// Length of the ICMP echo header: type, code, checksum, identifier, sequence number.
pub const HEADER_LEN: usize = 8;
/// Length of the stamp area at the start of our payload: [`MAGIC`] and 48 bits of µs.
pub const STAMP_LEN: usize = 8;
/// Marks a payload written by [`emit_request`]: ASCII "wc".
pub const MAGIC: [u8; 2] = *b"wc";

/// Shortest IPv4 header (IHL = 5, RFC 791).
const IPV4_MIN_HEADER_LEN: usize = 20;
/// IPv4 protocol number of ICMP.
const IPPROTO_ICMP: u8 = 1;
/// IPv6 next-header number of ICMPv6, as it appears in the pseudo-header.
const IPPROTO_ICMPV6: u8 = 58;
const STAMP_MASK: u64 = (1 << 48) - 1;

mod field {
    use std::ops::Range;
    pub(super) const TYPE: usize = 0;
    pub(super) const CODE: usize = 1;
    pub(super) const CHECKSUM: Range<usize> = 2..4;
    pub(super) const IDENT: Range<usize> = 4..6;
    pub(super) const SEQ_NO: Range<usize> = 6..8;
    pub(super) const MAGIC: Range<usize> = 0..2;
    pub(super) const STAMP: Range<usize> = 2..8;
}

/// Why a buffer is not an echo message we can use. Small and `Copy`; no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The buffer ends before the headers or lengths it declares.
    Truncated,
    /// The output buffer of an emit is shorter than `buffer_len()`.
    BufferTooSmall,
    /// [`Framing::Ipv4Header`]: the version is not 4 or the IHL is below 5.
    BadIpHeader,
    /// [`Framing::Ipv4Header`]: the IPv4 protocol is not ICMP.
    NotIcmp {
        /// The IPv4 protocol number found.
        protocol: u8,
    },
    /// The ICMP checksum does not verify.
    BadChecksum,
    /// An ICMP message, but neither echo request nor echo reply (e.g. unreachable).
    NotEcho {
        /// The ICMP type found.
        icmp_type: u8,
    },
    /// [`parse_reply`]: an echo message, but not a reply (our own request looped back to a
    /// raw socket), or not an echo at all.
    NotEchoReply {
        /// The ICMP type found.
        icmp_type: u8,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Truncated => f.write_str("icmp: truncated packet"),
            Error::BufferTooSmall => f.write_str("icmp: output buffer too small"),
            Error::BadIpHeader => f.write_str("icmp: bad IPv4 header (version or IHL)"),
            Error::NotIcmp { protocol } => write!(f, "icmp: IPv4 protocol {protocol} is not ICMP"),
            Error::BadChecksum => f.write_str("icmp: bad checksum"),
            Error::NotEcho { icmp_type } => write!(f, "icmp: type {icmp_type} is not an echo message"),
            Error::NotEchoReply { icmp_type } => write!(f, "icmp: type {icmp_type} is not an echo reply"),
        }
    }
}

impl std::error::Error for Error {}

/// The send time carried in the stamp area: the low 48 bits of an [`Instant`]'s µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendStamp(u64);

impl SendStamp {
    /// The stamp of `at`.
    pub const fn from_instant(at: Instant) -> SendStamp {
        SendStamp(at.as_micros() & STAMP_MASK)
    }

    /// The stamp's 48-bit value.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// The latest instant not after `now` whose low 48 bits equal the stamp. For a reply
    /// to our own request this is exactly the send time (`now` minus an RTT far below the
    /// 8.9-year wrap). Clamped at the epoch.
    pub fn resolve(self, now: Instant) -> Instant {
        let back = (now.as_micros().wrapping_sub(self.0)) & STAMP_MASK;
        Instant::from_micros(now.as_micros().saturating_sub(back))
    }

    fn write(self, out: &mut [u8]) {
        out[field::MAGIC].copy_from_slice(&MAGIC);
        out[field::STAMP].copy_from_slice(&self.0.to_be_bytes()[2..]);
    }

    fn read(payload: &[u8]) -> Option<SendStamp> {
        let area = payload.get(..STAMP_LEN)?;
        if area[field::MAGIC] != MAGIC {
            return None;
        }
        let mut b = [0u8; 8];
        b[2..].copy_from_slice(&area[field::STAMP]);
        Some(SendStamp(u64::from_be_bytes(b)))
    }
}

/// A parsed (or to-be-emitted) echo message. `payload` borrows the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EchoRepr<'a> {
    /// Request or reply.
    pub message: Message,
    /// Identifier (RFC 792 "to aid in matching echos and replies").
    pub ident: u16,
    /// Sequence number.
    pub seq_no: u16,
    /// Everything after the 8-byte header.
    pub payload: &'a [u8],
}

impl<'a> EchoRepr<'a> {
    /// Parses an echo request or reply from a received datagram of `family` and `framing`.
    pub fn parse(family: Family, framing: Framing, buf: &'a [u8]) -> Result<EchoRepr<'a>, Error> {
        let msg = match framing {
            Framing::Bare => buf,
            Framing::Ipv4Header => skip_ipv4_header(buf)?,
        };
        if msg.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if family == Family::V4 && checksum(msg) != 0 {
            return Err(Error::BadChecksum);
        }
        let icmp_type = msg[field::TYPE];
        let message = Message::from_type(family, icmp_type).ok_or(Error::NotEcho { icmp_type })?;
        Ok(EchoRepr {
            message,
            ident: u16::from_be_bytes([msg[field::IDENT.start], msg[field::IDENT.start + 1]]),
            seq_no: u16::from_be_bytes([msg[field::SEQ_NO.start], msg[field::SEQ_NO.start + 1]]),
            payload: &msg[HEADER_LEN..],
        })
    }

    /// The send stamp in the payload, if the payload starts with our [`MAGIC`].
    pub fn stamp(&self) -> Option<SendStamp> {
        SendStamp::read(self.payload)
    }

    /// Bytes [`EchoRepr::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// Writes the message into `buf[..buffer_len()]` and returns that length. IPv4 gets its
    /// checksum; IPv6 leaves it zero for the kernel (see the module docs).
    pub fn emit(&self, family: Family, buf: &mut [u8]) -> Result<usize, Error> {
        let len = self.buffer_len();
        let out = buf.get_mut(..len).ok_or(Error::BufferTooSmall)?;
        write_header(out, family, self.message, self.ident, self.seq_no);
        out[HEADER_LEN..].copy_from_slice(self.payload);
        fill_checksum(out, family);
        Ok(len)
    }
}

fn write_header(out: &mut [u8], family: Family, message: Message, ident: u16, seq_no: u16) {
    out[field::TYPE] = message.icmp_type(family);
    out[field::CODE] = 0;
    out[field::CHECKSUM].copy_from_slice(&[0, 0]);
    out[field::IDENT].copy_from_slice(&ident.to_be_bytes());
    out[field::SEQ_NO].copy_from_slice(&seq_no.to_be_bytes());
}

fn fill_checksum(msg: &mut [u8], family: Family) {
    if family == Family::V4 {
        let c = checksum(msg);
        msg[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }
}

/// Bytes [`emit_request`] writes for a payload of `payload_len` (at least [`STAMP_LEN`]).
pub const fn request_len(payload_len: usize) -> usize {
    HEADER_LEN + if payload_len < STAMP_LEN { STAMP_LEN } else { payload_len }
}

/// Writes an echo request whose payload is the stamp of `sent_at` followed by zeros, to a
/// total payload of `max(payload_len, STAMP_LEN)` bytes. Returns the bytes written.
pub fn emit_request(
    family: Family,
    ident: u16,
    seq_no: u16,
    sent_at: Instant,
    payload_len: usize,
    buf: &mut [u8],
) -> Result<usize, Error> {
    let len = request_len(payload_len);
    let out = buf.get_mut(..len).ok_or(Error::BufferTooSmall)?;
    write_header(out, family, Message::EchoRequest, ident, seq_no);
    let payload = &mut out[HEADER_LEN..];
    SendStamp::from_instant(sent_at).write(payload);
    payload[STAMP_LEN..].fill(0);
    fill_checksum(out, family);
    Ok(len)
}

/// Parses a received datagram that must be an echo reply. Anything else is an error the
/// caller drops: on a raw socket that includes our own requests to a local address and
/// other programs' traffic.
pub fn parse_reply(family: Family, framing: Framing, buf: &[u8]) -> Result<EchoRepr<'_>, Error> {
    match EchoRepr::parse(family, framing, buf) {
        Ok(r) if r.message == Message::EchoReply => Ok(r),
        Ok(r) => Err(Error::NotEchoReply { icmp_type: r.message.icmp_type(family) }),
        Err(Error::NotEcho { icmp_type }) => Err(Error::NotEchoReply { icmp_type }),
        Err(e) => Err(e),
    }
}

/// The ICMP message inside an IPv4 packet: after IHL × 4 bytes, up to the total length.
fn skip_ipv4_header(buf: &[u8]) -> Result<&[u8], Error> {
    if buf.len() < IPV4_MIN_HEADER_LEN {
        return Err(Error::Truncated);
    }
    let ihl = usize::from(buf[0] & 0x0f) * 4;
    if buf[0] >> 4 != 4 || ihl < IPV4_MIN_HEADER_LEN {
        return Err(Error::BadIpHeader);
    }
    if buf[9] != IPPROTO_ICMP {
        return Err(Error::NotIcmp { protocol: buf[9] });
    }
    let total = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    if total < ihl {
        return Err(Error::BadIpHeader);
    }
    buf.get(ihl..total).ok_or(Error::Truncated)
}

/// Ones'-complement sum of 16-bit big-endian words over a sequence of slices, as if they
/// were concatenated (an odd-length slice carries its last byte into the next one).
#[derive(Debug, Default, Clone, Copy)]
struct Sum {
    acc: u64,
    pending: Option<u8>,
}

impl Sum {
    fn add(&mut self, mut data: &[u8]) {
        if let (Some(hi), Some((&lo, rest))) = (self.pending, data.split_first()) {
            self.acc += u64::from(u16::from_be_bytes([hi, lo]));
            self.pending = None;
            data = rest;
        }
        let mut words = data.chunks_exact(2);
        for w in &mut words {
            self.acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
        }
        if let [last] = words.remainder() {
            self.pending = Some(*last);
        }
    }

    fn finish(mut self) -> u16 {
        // RFC 1071 §4.1: a trailing odd byte is padded with a zero on the right.
        if let Some(hi) = self.pending.take() {
            self.acc += u64::from(hi) << 8;
        }
        let mut s = self.acc;
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }
}

/// The internet checksum of `data` (RFC 1071). Over a message whose checksum field is
/// filled in correctly, the result is 0.
pub fn checksum(data: &[u8]) -> u16 {
    let mut s = Sum::default();
    s.add(data);
    s.finish()
}

/// The ICMPv6 checksum of `msg` between `src` and `dst` (RFC 4443 §2.3: pseudo-header of
/// RFC 8200 §8.1 — addresses, upper-layer length, next header 58). 0 over a message whose
/// checksum field is correct.
pub fn checksum_v6(src: &[u8; 16], dst: &[u8; 16], msg: &[u8]) -> u16 {
    let mut s = Sum::default();
    s.add(src);
    s.add(dst);
    // `as u32` cannot truncate: an ICMPv6 message is at most a jumbogram, below 4 GiB.
    s.add(&(msg.len() as u32).to_be_bytes());
    s.add(&[0, 0, 0, IPPROTO_ICMPV6]);
    s.add(msg);
    s.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// An echo reply Linux 6.18 sent from 127.0.0.1 to a raw socket (IPv4 header first),
    /// answering ident 0x1234 seq 1 with our stamp of 123456789012 µs and 8 filler bytes.
    static V4_REPLY_RAW: [u8; 44] = [
        0x45, 0x00, 0x00, 0x2c, 0x5f, 0x2d, 0x00, 0x00, 0x40, 0x01, 0x1d, 0xa2, 0x7f, 0x00, 0x00, 0x01, 0x7f,
        0x00, 0x00, 0x01, // IPv4 header
        0x00, 0x00, 0x91, 0x8d, 0x12, 0x34, 0x00, 0x01, // type 0, csum, ident, seq
        0x77, 0x63, 0x00, 0x1c, 0xbe, 0x99, 0x1a, 0x14, // "wc" + stamp
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
    ];

    /// The request that produced it, as the raw socket saw it loop back (ICMP part only).
    static V4_REQUEST: [u8; 24] = [
        0x08, 0x00, 0x89, 0x8d, 0x12, 0x34, 0x00, 0x01, 0x77, 0x63, 0x00, 0x1c, 0xbe, 0x99, 0x1a, 0x14, 0x00,
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
    ];

    /// An ICMPv6 echo reply from ::1 to ::1 (ident 0x1234, seq 2), checksum by the kernel.
    static V6_REPLY: [u8; 24] = [
        0x81, 0x00, 0x10, 0x38, 0x12, 0x34, 0x00, 0x02, 0x77, 0x63, 0x00, 0x1c, 0xbe, 0x99, 0x1a, 0x14, 0x00,
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
    ];

    const LOOPBACK_V6: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const FILLER: [u8; 8] = [0, 1, 2, 3, 4, 5, 6, 7];

    #[test]
    fn checksum_known_vectors() {
        let cases: &[(&str, &[u8], u16)] = &[
            // RFC 1071 §3 worked example: sum 0xddf2, checksum its complement.
            ("rfc1071_example", &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7], 0x220d),
            ("empty", &[], 0xffff),
            ("odd_length_pads_right", &[0x01], 0xfeff),
            ("all_ones_folds", &[0xff, 0xff, 0xff, 0xff], 0x0000),
            ("v4_request_verifies", &V4_REQUEST, 0),
            ("v4_reply_verifies", &V4_REPLY_RAW[20..], 0),
            ("v4_ip_header_verifies", &V4_REPLY_RAW[..20], 0),
        ];
        for &(name, data, want) in cases {
            assert_eq!(checksum(data), want, "{name}");
        }
    }

    #[test]
    fn checksum_v6_verifies_kernel_reply_and_split_sums_match() {
        assert_eq!(checksum_v6(&LOOPBACK_V6, &LOOPBACK_V6, &V6_REPLY), 0);
        let mut s = Sum::default();
        s.add(&V4_REQUEST[..3]);
        s.add(&V4_REQUEST[3..10]);
        s.add(&V4_REQUEST[10..]);
        assert_eq!(s.finish(), 0, "odd splits must sum like the whole");
    }

    #[test]
    fn parse_real_packets() {
        type Case<'a> = (&'a str, Family, Framing, &'a [u8], Message, u16);
        let cases: &[Case<'_>] = &[
            ("v4_raw_reply", Family::V4, Framing::Ipv4Header, &V4_REPLY_RAW, Message::EchoReply, 1),
            ("v4_bare_reply", Family::V4, Framing::Bare, &V4_REPLY_RAW[20..], Message::EchoReply, 1),
            ("v4_bare_request", Family::V4, Framing::Bare, &V4_REQUEST, Message::EchoRequest, 1),
            ("v6_reply", Family::V6, Framing::Bare, &V6_REPLY, Message::EchoReply, 2),
        ];
        for &(name, family, framing, bytes, message, seq_no) in cases {
            let r = EchoRepr::parse(family, framing, bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(r.message, message, "{name}");
            assert_eq!(r.ident, 0x1234, "{name}");
            assert_eq!(r.seq_no, seq_no, "{name}");
            assert_eq!(r.stamp(), Some(SendStamp(123_456_789_012)), "{name}");
            assert_eq!(&r.payload[STAMP_LEN..], &FILLER, "{name}");
        }
    }

    #[test]
    fn emit_reproduces_real_packets() {
        let cases: &[(&str, Family, &[u8])] =
            &[("v4_reply", Family::V4, &V4_REPLY_RAW[20..]), ("v4_request", Family::V4, &V4_REQUEST)];
        for &(name, family, bytes) in cases {
            let r = EchoRepr::parse(family, Framing::Bare, bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut out = [0u8; 64];
            let n = r.emit(family, &mut out).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(&out[..n], bytes, "{name}");
        }
        // IPv6 leaves the checksum to the kernel; the rest is identical.
        let r = EchoRepr::parse(Family::V6, Framing::Bare, &V6_REPLY).unwrap();
        let mut out = [0u8; 64];
        let n = r.emit(Family::V6, &mut out).unwrap();
        assert_eq!(&out[..2], &V6_REPLY[..2]);
        assert_eq!(&out[2..4], &[0, 0]);
        assert_eq!(&out[4..n], &V6_REPLY[4..]);
    }

    #[test]
    fn emit_request_matches_real_request_bytes() {
        let mut out = [0xaau8; 64];
        let n =
            emit_request(Family::V4, 0x1234, 1, Instant::from_micros(123_456_789_012), 8, &mut out).unwrap();
        assert_eq!(n, request_len(8));
        // The captured request had 8 filler bytes more, so only its checksum differs.
        assert_eq!(&out[..2], &V4_REQUEST[..2]);
        assert_eq!(&out[4..n], &V4_REQUEST[4..16]);
        assert_eq!(checksum(&out[..n]), 0);
        // A longer payload is zero-padded, and a too-short one is raised to the stamp area.
        let n = emit_request(Family::V6, 7, 9, Instant::from_micros(5), 20, &mut out).unwrap();
        assert_eq!(n, 28);
        assert_eq!(out[0], 128);
        assert!(out[16..28].iter().all(|&b| b == 0));
        assert_eq!(request_len(0), HEADER_LEN + STAMP_LEN);
    }

    #[test]
    fn parse_errors() {
        let mut bad_sum = V4_REPLY_RAW;
        bad_sum[40] ^= 0x01;
        let mut unreachable = [0u8; 8];
        unreachable[0] = 3;
        let c = checksum(&unreachable);
        unreachable[2..4].copy_from_slice(&c.to_be_bytes());
        let mut udp = V4_REPLY_RAW;
        udp[9] = 17;
        let mut v6_header = V4_REPLY_RAW;
        v6_header[0] = 0x65;
        let mut short_ihl = V4_REPLY_RAW;
        short_ihl[0] = 0x44;
        let mut long_total = V4_REPLY_RAW;
        long_total[3] = 0x2d;
        let cases: &[(&str, Family, Framing, &[u8], Error)] = &[
            ("empty", Family::V4, Framing::Bare, &[], Error::Truncated),
            ("short_header", Family::V6, Framing::Bare, &V6_REPLY[..7], Error::Truncated),
            ("short_ip_header", Family::V4, Framing::Ipv4Header, &V4_REPLY_RAW[..19], Error::Truncated),
            ("bad_checksum", Family::V4, Framing::Ipv4Header, &bad_sum, Error::BadChecksum),
            ("unreachable", Family::V4, Framing::Bare, &unreachable, Error::NotEcho { icmp_type: 3 }),
            ("udp", Family::V4, Framing::Ipv4Header, &udp, Error::NotIcmp { protocol: 17 }),
            ("ip_version_6", Family::V4, Framing::Ipv4Header, &v6_header, Error::BadIpHeader),
            ("ihl_below_5", Family::V4, Framing::Ipv4Header, &short_ihl, Error::BadIpHeader),
            ("total_len_past_end", Family::V4, Framing::Ipv4Header, &long_total, Error::Truncated),
            ("v4_type_in_v6", Family::V6, Framing::Bare, &V4_REQUEST, Error::NotEcho { icmp_type: 8 }),
        ];
        for &(name, family, framing, bytes, want) in cases {
            assert_eq!(EchoRepr::parse(family, framing, bytes), Err(want), "{name}");
        }
    }

    #[test]
    fn parse_reply_rejects_requests() {
        assert_eq!(
            parse_reply(Family::V4, Framing::Bare, &V4_REQUEST),
            Err(Error::NotEchoReply { icmp_type: 8 })
        );
        assert!(parse_reply(Family::V6, Framing::Bare, &V6_REPLY).is_ok());
    }

    #[test]
    fn every_prefix_of_a_real_reply_is_an_error_not_a_panic() {
        for cut in 0..V4_REPLY_RAW.len() {
            assert!(parse_reply(Family::V4, Framing::Ipv4Header, &V4_REPLY_RAW[..cut]).is_err(), "cut {cut}");
        }
        for cut in 0..HEADER_LEN {
            assert_eq!(parse_reply(Family::V6, Framing::Bare, &V6_REPLY[..cut]), Err(Error::Truncated));
        }
    }

    #[test]
    fn emit_into_short_buffer_fails() {
        let mut out = [0u8; 15];
        assert_eq!(emit_request(Family::V4, 1, 1, Instant::ZERO, 8, &mut out), Err(Error::BufferTooSmall));
        let r = EchoRepr { message: Message::EchoReply, ident: 1, seq_no: 1, payload: &FILLER };
        assert_eq!(r.emit(Family::V4, &mut out), Err(Error::BufferTooSmall));
    }

    #[test]
    fn stamp_resolves_across_the_48_bit_wrap() {
        let cases: &[(&str, u64, u64)] = &[
            ("plain", 1_000_000, 1_020_000),
            ("same_instant", 5, 5),
            ("across_wrap", STAMP_MASK - 10, STAMP_MASK + 30),
            ("far_after_wrap", 3 * STAMP_MASK + 7, 3 * STAMP_MASK + 600_007),
        ];
        for &(name, sent, now) in cases {
            let stamp = SendStamp::from_instant(Instant::from_micros(sent));
            assert_eq!(stamp.resolve(Instant::from_micros(now)), Instant::from_micros(sent), "{name}");
        }
        // A stamp from "the future" (corrupt) resolves to at most 8.9 years back, never later than now.
        let odd = SendStamp(100).resolve(Instant::from_micros(50));
        assert_eq!(odd, Instant::ZERO);
    }

    #[test]
    fn foreign_payload_has_no_stamp() {
        let payload = [0x61, 0x62, 0, 0, 0, 0, 0, 0];
        let r = EchoRepr { message: Message::EchoReply, ident: 1, seq_no: 1, payload: &payload };
        assert_eq!(r.stamp(), None);
        let short = EchoRepr { payload: &MAGIC, ..r };
        assert_eq!(short.stamp(), None);
    }

    #[test]
    fn round_trip_seeded() {
        let mut rng = Rng::new(0x1c3b);
        let mut buf = [0u8; 128];
        for i in 0..2_000 {
            let family = if i % 2 == 0 { Family::V4 } else { Family::V6 };
            let ident = rng.next_u32() as u16;
            let seq_no = rng.next_u32() as u16;
            let sent = Instant::from_micros(rng.next_u64() >> 8);
            let payload_len = (rng.next_u32() % 64) as usize;
            let n = emit_request(family, ident, seq_no, sent, payload_len, &mut buf).unwrap();
            let req = EchoRepr::parse(family, Framing::Bare, &buf[..n]).unwrap();
            assert_eq!(
                (req.message, req.ident, req.seq_no),
                (Message::EchoRequest, ident, seq_no),
                "case {i}"
            );
            assert_eq!(
                req.stamp().map(|s| s.resolve(sent + std::time::Duration::from_millis(20))),
                Some(sent)
            );
            // What a reflector does: same fields, reply type. Parse it back as a reply.
            let mut reply_buf = [0u8; 128];
            let reply = EchoRepr { message: Message::EchoReply, ..req };
            let m = reply.emit(family, &mut reply_buf).unwrap();
            let back = parse_reply(family, Framing::Bare, &reply_buf[..m]).unwrap();
            assert_eq!(back, reply, "case {i}");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = Rng::new(7);
        let mut buf = [0u8; 96];
        for _ in 0..20_000 {
            let len = (rng.next_u32() as usize) % buf.len();
            for b in &mut buf[..len] {
                *b = rng.next_u32() as u8;
            }
            // Make the interesting header paths reachable often.
            if len > 0 && rng.chance(0.5) {
                buf[0] = 0x40 | (buf[0] & 0x0f);
            }
            if len > 9 && rng.chance(0.5) {
                buf[9] = IPPROTO_ICMP;
            }
            for family in [Family::V4, Family::V6] {
                for framing in [Framing::Bare, Framing::Ipv4Header] {
                    let _ = EchoRepr::parse(family, framing, &buf[..len]);
                }
            }
        }
    }

    #[test]
    fn error_display_texts() {
        let cases: &[(Error, &str)] = &[
            (Error::Truncated, "icmp: truncated packet"),
            (Error::BufferTooSmall, "icmp: output buffer too small"),
            (Error::BadIpHeader, "icmp: bad IPv4 header (version or IHL)"),
            (Error::NotIcmp { protocol: 17 }, "icmp: IPv4 protocol 17 is not ICMP"),
            (Error::BadChecksum, "icmp: bad checksum"),
            (Error::NotEcho { icmp_type: 3 }, "icmp: type 3 is not an echo message"),
            (Error::NotEchoReply { icmp_type: 8 }, "icmp: type 8 is not an echo reply"),
        ];
        for &(e, want) in cases {
            assert_eq!(e.to_string(), want);
        }
    }
}
