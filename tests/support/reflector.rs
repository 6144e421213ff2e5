//! ICMP reflectors with configurable delay and loss, inside a network namespace.
//!
//! ```text
//!   test thread in the namespace                 reflector thread (this file)
//!   ┌──────────────────────┐  198.18.0.0/24     ┌────────────────────────────────┐
//!   │ IcmpSocket / wanctl  │ ─── route via ───▶ │ TUN "wct0": read echo request  │
//!   │ src 198.18.0.254     │      wct0          │ per-dst knob: delay, loss      │
//!   │     2001:2::fe       │ ◀── reply after ── │ write echo reply when due      │
//!   └──────────────────────┘      delay         └────────────────────────────────┘
//! ```
//! Reflector addresses come from the benchmarking ranges (198.18.0.0/15, RFC 2544;
//! 2001:2::/48, RFC 5180), so they never collide with a real network. The kernel has no
//! netem here; the delay is applied by this thread, which holds each reply until it is
//! due. A reflector's delay can be a duration or `None` ("never answers"), and its loss a
//! probability; both are atomics the test changes while the rig runs. A knob is read when
//! a request arrives, so a change affects requests from then on.
//!
//! Bounds: the thread wakes at least every [`TICK`] to check its stop flag, holds at most
//! [`MAX_PENDING`] replies (more are dropped), and exits after [`MAX_LIFETIME`] even if
//! nobody stops it. `Drop` stops and joins it, then deletes the namespace.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wanctl::rng::Rng;
use wanctl::sys::poll::{Events, Interest, PollSet};
use wanctl::sys::tun::Tun;
use wanctl::wire::icmp::{self, EchoRepr, Family, Framing, Message};

use super::netns::Netns;

/// The rig's own IPv4 address (on the TUN device): the source of probes.
pub const LOCAL_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
/// The rig's own IPv6 address (on the TUN device).
pub const LOCAL_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0xfe);
/// How often the thread checks its stop flag at the latest.
pub const TICK: Duration = Duration::from_millis(20);
/// Replies held at once; beyond this, requests are dropped (and counted as lost).
pub const MAX_PENDING: usize = 4096;
/// The thread exits on its own after this, so a leaked rig cannot spin forever.
pub const MAX_LIFETIME: Duration = Duration::from_secs(600);

const TUN_NAME: &str = "wct0";
const NEVER: u64 = u64::MAX;

/// One reflector's knobs and counters (shared with the thread).
#[derive(Debug)]
struct Knob {
    addr: IpAddr,
    /// Delay in µs; [`NEVER`] for a dead reflector.
    delay_us: AtomicU64,
    /// Loss probability in parts per million.
    loss_ppm: AtomicU32,
    requests: AtomicU64,
    replies: AtomicU64,
}

/// A running set of reflectors behind a TUN device in its own namespace.
#[derive(Debug)]
pub struct Rig {
    knobs: Arc<Vec<Knob>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<()>>>,
    // Dropped last: the namespace outlives the thread using it.
    ns: Netns,
}

fn delay_us(delay: Option<Duration>) -> u64 {
    delay.map_or(NEVER, |d| u64::try_from(d.as_micros()).unwrap_or(NEVER - 1))
}

impl Rig {
    /// Creates a namespace, a TUN device with [`LOCAL_V4`]/24 and [`LOCAL_V6`]/64 on it, and
    /// one reflector per `(address, delay)`; `None` is a reflector that never answers.
    /// Addresses must be in 198.18.0.0/24 or 2001:2::/64 and differ from the local ones.
    /// Needs root (namespaces, TUN).
    pub fn start(reflectors: &[(IpAddr, Option<Duration>)]) -> io::Result<Rig> {
        for (addr, _) in reflectors {
            let ok = match addr {
                IpAddr::V4(a) => a.octets()[..3] == [198, 18, 0] && *a != LOCAL_V4,
                IpAddr::V6(a) => a.segments()[..4] == [0x2001, 2, 0, 0] && *a != LOCAL_V6,
            };
            if !ok {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("reflector {addr}: must be in 198.18.0.0/24 or 2001:2::/64"),
                ));
            }
        }
        let ns = Netns::new()?;
        let knobs: Arc<Vec<Knob>> = Arc::new(
            reflectors
                .iter()
                .map(|&(addr, delay)| Knob {
                    addr,
                    delay_us: AtomicU64::new(delay_us(delay)),
                    loss_ppm: AtomicU32::new(0),
                    requests: AtomicU64::new(0),
                    replies: AtomicU64::new(0),
                })
                .collect(),
        );
        let stop = Arc::new(AtomicBool::new(false));

        // The TUN device must be created from inside the namespace; the thread that reads
        // it enters the namespace, opens it, and reports back before serving.
        let ns_file = std::fs::File::open(ns.path())?;
        let (ready_tx, ready_rx) = mpsc::channel::<io::Result<()>>();
        let thread = {
            let knobs = Arc::clone(&knobs);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new().name("reflector".into()).spawn(move || {
                let tun = wanctl::sys::netns::enter(ns_file.as_fd()).and_then(|()| Tun::open(TUN_NAME));
                let tun = match tun {
                    Ok(t) => {
                        let _ = ready_tx.send(Ok(()));
                        t
                    }
                    Err(e) => {
                        let shown = io::Error::new(e.kind(), e.to_string());
                        let _ = ready_tx.send(Err(e));
                        return Err(shown);
                    }
                };
                serve(&tun, &knobs, &stop)
            })?
        };
        let mut rig = Rig { knobs, stop, thread: Some(thread), ns };
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "reflector thread did not start")),
        }
        rig.configure()?;
        Ok(rig)
    }

    fn configure(&mut self) -> io::Result<()> {
        let v4 = format!("{LOCAL_V4}/24");
        let v6 = format!("{LOCAL_V6}/64");
        self.ns.ip(&["addr", "add", &v4, "dev", TUN_NAME])?;
        self.ns.ip(&["-6", "addr", "add", &v6, "dev", TUN_NAME, "nodad"])?;
        self.ns.ip(&["link", "set", TUN_NAME, "up"])
    }

    /// The namespace the rig lives in: run probes with [`Netns::run_in`] or the daemon
    /// with [`Netns::command`].
    pub fn ns(&self) -> &Netns {
        &self.ns
    }

    fn knob(&self, addr: IpAddr) -> &Knob {
        self.knobs.iter().find(|k| k.addr == addr).unwrap_or_else(|| panic!("{addr} is not a rig reflector"))
    }

    /// Sets `addr`'s delay for requests arriving from now on; `None`: never answer.
    pub fn set_delay(&self, addr: IpAddr, delay: Option<Duration>) {
        self.knob(addr).delay_us.store(delay_us(delay), Ordering::Relaxed);
    }

    /// Sets `addr`'s loss probability (0.0..=1.0) for requests arriving from now on.
    pub fn set_loss(&self, addr: IpAddr, loss: f64) {
        let ppm = (loss.clamp(0.0, 1.0) * 1e6).round() as u32;
        self.knob(addr).loss_ppm.store(ppm, Ordering::Relaxed);
    }

    /// Echo requests `addr` has received.
    pub fn requests(&self, addr: IpAddr) -> u64 {
        self.knob(addr).requests.load(Ordering::Relaxed)
    }

    /// Echo replies `addr` has sent.
    pub fn replies(&self, addr: IpAddr) -> u64 {
        self.knob(addr).replies.load(Ordering::Relaxed)
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("warning: reflector thread failed: {e}"),
                Err(_) => eprintln!("warning: reflector thread panicked"),
            }
        }
    }
}

/// A reply waiting for its due time.
struct Pending {
    due: Instant,
    knob: usize,
    packet: Vec<u8>,
}

fn serve(tun: &Tun, knobs: &[Knob], stop: &AtomicBool) -> io::Result<()> {
    let started = Instant::now();
    let mut poll = PollSet::with_capacity(1);
    poll.register(tun.as_fd(), 0, Interest::READABLE)?;
    let mut events = Events::with_capacity(1);
    let mut rng = Rng::new(0x7e57_5eed);
    let mut pending: Vec<Pending> = Vec::new();
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) && started.elapsed() < MAX_LIFETIME {
        let now = Instant::now();
        let next_due = pending.iter().map(|p| p.due).min();
        let timeout = next_due.map_or(TICK, |d| d.saturating_duration_since(now).min(TICK));
        poll.poll(&mut events, Some(timeout))?;
        // Drain the device (bounded: a burst larger than this waits for the next round).
        for _ in 0..256 {
            let Some(n) = tun.read(&mut buf)? else { break };
            let arrived = Instant::now();
            let Some((knob, reply)) = make_reply(&buf[..n], knobs) else { continue };
            let k = &knobs[knob];
            k.requests.fetch_add(1, Ordering::Relaxed);
            let delay = k.delay_us.load(Ordering::Relaxed);
            let loss = k.loss_ppm.load(Ordering::Relaxed);
            if delay == NEVER || rng.next_u32() % 1_000_000 < loss || pending.len() >= MAX_PENDING {
                continue;
            }
            pending.push(Pending { due: arrived + Duration::from_micros(delay), knob, packet: reply });
        }
        let now = Instant::now();
        let mut i = 0;
        while i < pending.len() {
            if pending[i].due <= now {
                let p = pending.swap_remove(i);
                tun.write(&p.packet)?;
                knobs[p.knob].replies.fetch_add(1, Ordering::Relaxed);
            } else {
                i += 1;
            }
        }
    }
    Ok(())
}

/// If `packet` is an echo request to one of `knobs`, its index and the reply packet.
fn make_reply(packet: &[u8], knobs: &[Knob]) -> Option<(usize, Vec<u8>)> {
    match packet.first()? >> 4 {
        4 => reply_v4(packet, knobs),
        6 => reply_v6(packet, knobs),
        _ => None,
    }
}

fn find(knobs: &[Knob], dst: IpAddr) -> Option<usize> {
    knobs.iter().position(|k| k.addr == dst)
}

fn reply_v4(packet: &[u8], knobs: &[Knob]) -> Option<(usize, Vec<u8>)> {
    let req = EchoRepr::parse(Family::V4, Framing::Ipv4Header, packet).ok()?;
    if req.message != Message::EchoRequest {
        return None;
    }
    let ihl = usize::from(packet[0] & 0x0f) * 4;
    let dst: [u8; 4] = packet[16..20].try_into().ok()?;
    let knob = find(knobs, IpAddr::from(dst))?;
    let mut out = packet[..ihl].to_vec();
    out.resize(ihl + req.buffer_len(), 0);
    // Swap addresses, fresh TTL, total length unchanged; then the header checksum.
    out.copy_within(12..16, 16);
    out[12..16].copy_from_slice(&dst);
    out[8] = 64;
    out[10..12].copy_from_slice(&[0, 0]);
    let c = icmp::checksum(&out[..ihl]);
    out[10..12].copy_from_slice(&c.to_be_bytes());
    EchoRepr { message: Message::EchoReply, ..req }.emit(Family::V4, &mut out[ihl..]).ok()?;
    Some((knob, out))
}

fn reply_v6(packet: &[u8], knobs: &[Knob]) -> Option<(usize, Vec<u8>)> {
    const HDR: usize = 40;
    // Next header must be ICMPv6 directly (the rig's probes carry no extension headers).
    if packet.len() < HDR || packet[6] != 58 {
        return None;
    }
    let payload_len = usize::from(u16::from_be_bytes([packet[4], packet[5]]));
    let msg = packet.get(HDR..HDR + payload_len)?;
    let req = EchoRepr::parse(Family::V6, Framing::Bare, msg).ok()?;
    if req.message != Message::EchoRequest {
        return None;
    }
    let src: [u8; 16] = packet[8..24].try_into().ok()?;
    let dst: [u8; 16] = packet[24..40].try_into().ok()?;
    let knob = find(knobs, IpAddr::from(dst))?;
    let mut out = packet[..HDR].to_vec();
    out.resize(HDR + req.buffer_len(), 0);
    out[7] = 64;
    out[8..24].copy_from_slice(&dst);
    out[24..40].copy_from_slice(&src);
    let n = EchoRepr { message: Message::EchoReply, ..req }.emit(Family::V6, &mut out[HDR..]).ok()?;
    let c = icmp::checksum_v6(&dst, &src, &out[HDR..HDR + n]);
    out[HDR + 2..HDR + 4].copy_from_slice(&c.to_be_bytes());
    Some((knob, out))
}
