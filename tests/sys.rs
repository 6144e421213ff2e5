//! Host tests of `wanctl::sys`: each wrapper against the real kernel, plus the reflector rig
//! (`support::reflector`) driven with our own ICMP sockets.
//!
//! Process-wide state is kept out of the way of parallel tests: signals are blocked only on
//! a thread the test spawns (the mask is per thread), and namespace work happens on
//! threads that `setns` (per thread too). Every wait is bounded by a deadline.
//! Tests that need root print `skipped: needs root` and pass when not root; ICMP tests on
//! the host print `skipped: EPERM` when neither socket kind is permitted.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use wanctl::sys::notify::{self, Notifier};
use wanctl::sys::poll::{Event, Events, Interest, PollSet};
use wanctl::sys::signalfd::{Signal, SignalFd};
use wanctl::sys::socket::{self, BindOptions, ConnectState, IcmpKind, IcmpSocket};
use wanctl::sys::timerfd::Timer;
use wanctl::sys::{clock, process, random};
use wanctl::wire::icmp::{self, Family};

use crate::support::netns::is_root;
use crate::support::reflector::{self, Rig};

static UNIQUE: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), UNIQUE.fetch_add(1, Ordering::Relaxed))
}

/// Polls `set` until an event for `token` arrives or `limit` passes.
fn wait_for(set: &mut PollSet, token: usize, limit: Duration) -> Option<Event> {
    let start = std::time::Instant::now();
    let mut events = Events::with_capacity(4);
    for _ in 0..1000 {
        let left = limit.checked_sub(start.elapsed())?;
        set.poll(&mut events, Some(left)).expect("poll");
        if let Some(ev) = events.iter().find(|e| e.token == token) {
            return Some(*ev);
        }
    }
    None
}

#[test]
fn clock_is_monotonic_and_wall_time_is_plausible() {
    let a = clock::now();
    std::thread::sleep(Duration::from_millis(2));
    let b = clock::now();
    assert!(b - a >= Duration::from_millis(2), "{a} then {b}");
    // 2020-01-01 .. 2100-01-01: a sane wall clock; the µs and s readings agree.
    let secs = clock::wall_unix_secs();
    assert!((1_577_836_800..4_102_444_800).contains(&secs), "{secs}");
    assert!((clock::wall_now_micros() / 1_000_000 - secs).abs() <= 2);
}

#[test]
fn clock_local_offset_matches_date() {
    let offset = clock::local_offset_secs();
    assert!((-14 * 3600..=14 * 3600).contains(&offset), "{offset}");
    // `date +%z` prints the same zone as ±hhmm (skip the cross-check if `date` is missing).
    let Ok(out) = Command::new("date").arg("+%z").output() else { return };
    let z = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (sign, digits) = z.split_at(1);
    let (h, m): (i64, i64) = (digits[..2].parse().unwrap(), digits[2..4].parse().unwrap());
    let want = if sign == "-" { -1 } else { 1 } * (h * 3600 + m * 60);
    assert_eq!(offset, want, "date says {z}");
}

#[test]
fn clock_maps_a_fresh_wall_timestamp_onto_the_monotonic_line() {
    let before = clock::now();
    let t = clock::monotonic_from_wall(clock::wall_now_micros() - 5_000).expect("5 ms old");
    let after = clock::now();
    // t = (mono at conversion) - ~5 ms, so within [before - 5 ms - slack, after - 5 ms].
    assert!(t <= after.saturating_sub(Duration::from_millis(5)) + Duration::from_micros(100));
    assert!(t + Duration::from_millis(50) >= before, "{t} vs {before}");
    // A timestamp from the future (backward step) or far past (forward step): unusable.
    assert_eq!(clock::monotonic_from_wall(clock::wall_now_micros() + 1_000_000), None);
    assert_eq!(clock::monotonic_from_wall(clock::wall_now_micros() - 5_000_000), None);
}

#[test]
fn timerfd_fires_and_counts_missed_expirations() {
    let timer = Timer::periodic(Duration::from_millis(10)).expect("timerfd");
    assert_eq!(timer.period(), Duration::from_millis(10));
    std::thread::sleep(Duration::from_millis(55));
    let n = timer.read().expect("read");
    // At least 5 periods have passed; a loaded CI box may oversleep, never undersleep.
    assert!((5..1000).contains(&n), "expirations {n}");
    // It also wakes a poll.
    let mut set = PollSet::new();
    set.register(timer.as_fd(), 1, Interest::READABLE).unwrap();
    let ev = wait_for(&mut set, 1, Duration::from_secs(5)).expect("timer wakes poll");
    assert!(ev.readable);
    assert!(timer.read().unwrap() >= 1);
}

#[test]
fn timerfd_read_before_expiry_is_zero_and_zero_period_is_rejected() {
    let timer = Timer::periodic(Duration::from_secs(60)).expect("timerfd");
    assert_eq!(timer.read().unwrap(), 0);
    let err = Timer::periodic(Duration::ZERO).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn signalfd_receives_sigusr1_raised_on_its_own_thread() {
    // The mask is per thread: block and raise on a thread of our own so the other tests
    // (and the harness's main thread) keep their masks. raise() targets the calling thread.
    let got = std::thread::spawn(|| -> io::Result<Vec<Signal>> {
        let sfd = SignalFd::open(&Signal::DAEMON)?;
        assert_eq!(sfd.read()?, None, "nothing pending yet");
        nix::sys::signal::raise(nix::sys::signal::Signal::SIGUSR1).map_err(io::Error::from)?;
        let mut set = PollSet::new();
        set.register(sfd.as_fd(), 3, Interest::READABLE)?;
        let ev = wait_for(&mut set, 3, Duration::from_secs(5));
        assert!(ev.is_some_and(|e| e.readable), "signalfd readable");
        let mut got = Vec::new();
        for _ in 0..10 {
            match sfd.read()? {
                Some(s) => got.push(s),
                None => break,
            }
        }
        Ok(got)
    })
    .join()
    .expect("signal thread")
    .expect("signalfd");
    assert_eq!(got, vec![Signal::Usr1]);
    assert_eq!(Signal::Usr1.name(), "SIGUSR1");
    assert_eq!(Signal::Term.name(), "SIGTERM");
}

#[test]
fn children_start_with_an_empty_signal_mask_and_nonblocking_pipes() {
    // Block the daemon's signals on this thread, then spawn: the child must not inherit
    // the mask (or `ssh` would ignore SIGTERM).
    let out = std::thread::spawn(|| -> io::Result<String> {
        let _sfd = SignalFd::open(&Signal::DAEMON)?;
        let mut child =
            process::spawn_piped(Command::new("sh").args(["-c", "grep SigBlk /proc/self/status"]))?;
        let mut stdout = child.stdout.take().expect("piped");
        // Non-blocking: reading before the child wrote may be WouldBlock, never a hang.
        let mut set = PollSet::new();
        set.register(stdout.as_fd(), 9, Interest::READABLE)?;
        let mut text = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 256];
        while std::time::Instant::now() < deadline {
            let _ = wait_for(&mut set, 9, Duration::from_millis(200));
            match stdout.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => text.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        let pid = child.id();
        let mut exit = None;
        for _ in 0..1000 {
            exit = process::try_reap(pid)?;
            if exit.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(exit, Some(process::ChildExit::Exited(0)));
        Ok(String::from_utf8_lossy(&text).into_owned())
    })
    .join()
    .expect("spawn thread")
    .expect("spawn");
    assert_eq!(out.trim(), "SigBlk:\t0000000000000000");
}

#[test]
fn poll_wakes_on_a_readable_fd_and_times_out_without_one() {
    let (a, mut b) = UnixStream::pair().unwrap();
    let mut set = PollSet::with_capacity(2);
    set.register(a.as_fd(), 7, Interest::READABLE).unwrap();
    let mut events = Events::with_capacity(2);

    let t0 = std::time::Instant::now();
    set.poll(&mut events, Some(Duration::from_millis(20))).unwrap();
    assert!(events.is_empty());
    assert!(t0.elapsed() >= Duration::from_millis(20), "woke early: {:?}", t0.elapsed());

    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        b.write_all(b"x").unwrap();
        b
    });
    let t0 = std::time::Instant::now();
    set.poll(&mut events, Some(Duration::from_secs(10))).unwrap();
    assert!(t0.elapsed() < Duration::from_secs(9));
    let evs: Vec<Event> = events.iter().copied().collect();
    assert_eq!(evs, vec![Event { token: 7, readable: true, writable: false, error: false, hangup: false }]);
    drop(writer.join().unwrap());
    // Peer gone: hang-up is reported even though only readability was asked for.
    let ev = wait_for(&mut set, 7, Duration::from_secs(5)).expect("hangup");
    assert!(ev.hangup);
}

#[test]
fn poll_set_registration_rules() {
    let (a, _b) = UnixStream::pair().unwrap();
    let (c, _d) = UnixStream::pair().unwrap();
    let mut set = PollSet::new();
    set.register(a.as_fd(), 1, Interest::WRITABLE).unwrap();
    assert_eq!(
        set.register(c.as_fd(), 1, Interest::READABLE).unwrap_err().kind(),
        io::ErrorKind::AlreadyExists
    );
    set.register(c.as_fd(), 2, Interest::BOTH).unwrap();
    assert_eq!(set.len(), 2);
    let mut events = Events::default();
    set.poll(&mut events, Some(Duration::ZERO)).unwrap();
    let tokens: Vec<usize> = events.iter().filter(|e| e.writable).map(|e| e.token).collect();
    assert_eq!(tokens, vec![1, 2]);
    set.set_interest(1, Interest::NONE).unwrap();
    assert!(set.deregister(2));
    assert!(!set.deregister(2));
    assert_eq!(set.set_interest(2, Interest::READABLE).unwrap_err().kind(), io::ErrorKind::NotFound);
    set.poll(&mut events, Some(Duration::ZERO)).unwrap();
    assert!(events.is_empty(), "{:?}", events);
    assert!(set.contains(1) && !set.contains(2));
}

/// Sends one echo request per target and collects replies until `limit`:
/// `(from, seq_no, rtt)`, the RTT from the kernel receive time when present.
fn ping_all(sock: &mut IcmpSocket, targets: &[IpAddr], limit: Duration) -> Vec<(IpAddr, u16, Duration)> {
    let ident = 0x5754;
    let mut sent = Vec::new();
    let mut buf = [0u8; 128];
    for (i, &dst) in targets.iter().enumerate() {
        let seq = i as u16 + 1;
        let now = clock::now();
        let n = icmp::emit_request(sock.family(), ident, seq, now, 24, &mut buf).unwrap();
        sock.send_to(&buf[..n], dst).unwrap_or_else(|e| panic!("send to {dst}: {e}"));
        sent.push((dst, seq, now));
    }
    let mut set = PollSet::new();
    set.register(sock.as_fd(), 0, Interest::READABLE).unwrap();
    let mut events = Events::default();
    let start = clock::now();
    let mut got = Vec::new();
    let mut rx = [0u8; 1500];
    for _ in 0..10_000 {
        let elapsed = clock::now() - start;
        if elapsed >= limit || got.len() == targets.len() {
            break;
        }
        set.poll(&mut events, Some(limit - elapsed)).unwrap();
        let now = clock::now();
        while let Some(r) = sock.recv(&mut rx).unwrap() {
            let Ok(reply) = icmp::parse_reply(sock.family(), sock.framing(), &rx[..r.len]) else { continue };
            if reply.ident != sock.reply_ident(ident) {
                continue;
            }
            let Some(&(dst, seq, at)) = sent.iter().find(|s| s.1 == reply.seq_no) else { continue };
            assert_eq!(r.from, dst, "reply source");
            // The stamp in the payload gives back the send time exactly.
            assert_eq!(reply.stamp().map(|s| s.resolve(now)), Some(at));
            // SO_TIMESTAMPNS works on both socket kinds; None only after a wall-clock step.
            let arrived = r.kernel_time.expect("kernel receive timestamp");
            assert!(arrived <= clock::now(), "kernel time {arrived} is in the future");
            assert!(arrived >= at, "kernel time {arrived} before send {at}");
            eprintln!("reply from {dst} seq {seq}: rtt {:?} (read {:?} later)", arrived - at, now - arrived);
            got.push((dst, seq, arrived - at));
        }
    }
    got
}

fn skip_eperm(e: &io::Error) -> bool {
    if e.kind() == io::ErrorKind::PermissionDenied {
        eprintln!("skipped: EPERM ({e})");
        return true;
    }
    false
}

#[test]
fn icmp_socket_round_trips_to_loopback() {
    let mut sock = match IcmpSocket::open(Family::V4, &BindOptions::default()) {
        Ok(s) => s,
        Err(e) if skip_eperm(&e) => return,
        Err(e) => panic!("{e}"),
    };
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let got = ping_all(&mut sock, &[lo], Duration::from_secs(3));
    assert_eq!(got.len(), 1, "{:?} socket: no reply from 127.0.0.1", sock.kind());
    assert!(got[0].2 < Duration::from_secs(1), "{got:?}");
    match sock.kind() {
        IcmpKind::Datagram => assert!(sock.kernel_ident().is_some()),
        IcmpKind::Raw => assert_eq!(sock.kernel_ident(), None),
    }
}

#[test]
fn icmp_v6_socket_round_trips_to_loopback() {
    let mut sock = match IcmpSocket::open(Family::V6, &BindOptions::default()) {
        Ok(s) => s,
        Err(e) if skip_eperm(&e) => return,
        Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
            eprintln!("skipped: no IPv6 ({e})");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let got = ping_all(&mut sock, &[IpAddr::V6(Ipv6Addr::LOCALHOST)], Duration::from_secs(3));
    assert_eq!(got.len(), 1, "{:?} socket: no reply from ::1", sock.kind());
}

#[test]
fn icmp_socket_rejects_bad_bind_options() {
    let bad_dev =
        BindOptions { device: Some("a-name-far-too-long-for-linux".into()), ..BindOptions::default() };
    let wrong_family =
        BindOptions { source: Some(IpAddr::V6(Ipv6Addr::LOCALHOST)), ..BindOptions::default() };
    for (name, opts) in [("long device", bad_dev), ("v6 source on v4", wrong_family)] {
        match IcmpSocket::open(Family::V4, &opts) {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {}
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{name}: {e}"),
            Ok(_) => panic!("{name}: accepted"),
        }
    }
    assert!(socket::PERMISSION_REMEDY.contains("ping_group_range"));
    assert!(socket::PERMISSION_REMEDY.contains("cap_net_raw"));
}

#[test]
fn tcp_connect_nonblocking_connects_and_reports_refusal() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (stream, state) = socket::tcp_connect_nonblocking(addr, &BindOptions::default()).unwrap();
    if state == ConnectState::InProgress {
        let mut set = PollSet::new();
        set.register(stream.as_fd(), 1, Interest::WRITABLE).unwrap();
        assert!(wait_for(&mut set, 1, Duration::from_secs(5)).is_some_and(|e| e.writable));
    }
    assert!(socket::take_socket_error(stream.as_fd()).unwrap().is_none());
    let (_peer, from) = listener.accept().unwrap();
    assert_eq!(Some(from), stream.local_addr().ok());

    // A port nobody listens on: refused now or once the connect completes.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    match socket::tcp_connect_nonblocking(closed, &BindOptions::default()) {
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}"),
        Ok((s, st)) => {
            assert_eq!(st, ConnectState::InProgress);
            let mut set = PollSet::new();
            set.register(s.as_fd(), 1, Interest::WRITABLE).unwrap();
            assert!(wait_for(&mut set, 1, Duration::from_secs(5)).is_some());
            let err = socket::take_socket_error(s.as_fd()).unwrap().expect("pending error");
            assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        }
    }
}

fn recv_text(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("notification");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn notify_sends_datagrams_to_a_path_socket() {
    let path = std::env::temp_dir().join(unique("wanctl-notify"));
    let server = UnixDatagram::bind(&path).unwrap();
    server.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = Notifier::from_socket_value(path.as_os_str()).unwrap();
    assert!(n.is_enabled());
    n.ready().unwrap();
    n.status("zone GREEN\nrate 95000").unwrap();
    n.watchdog().unwrap();
    n.stopping().unwrap();
    let got: Vec<String> = (0..4).map(|_| recv_text(&server)).collect();
    let _ = std::fs::remove_file(&path);
    assert_eq!(got, ["READY=1", "STATUS=zone GREEN rate 95000", "WATCHDOG=1", "STOPPING=1"]);
}

#[test]
fn notify_sends_to_an_abstract_socket_and_is_a_no_op_when_disabled() {
    use std::os::linux::net::SocketAddrExt;
    let name = unique("wanctl-notify");
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let server = UnixDatagram::bind_addr(&addr).unwrap();
    server.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = Notifier::from_socket_value(std::ffi::OsStr::new(&format!("@{name}"))).unwrap();
    n.notify("READY=1\nSTATUS=up").unwrap();
    assert_eq!(recv_text(&server), "READY=1\nSTATUS=up");

    let off = Notifier::disabled();
    assert!(!off.is_enabled());
    off.ready().unwrap();
    off.status("ignored").unwrap();
    let err = Notifier::from_socket_value(std::ffi::OsStr::new("relative/path")).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn watchdog_interval_follows_sd_watchdog_enabled() {
    type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<Duration>);
    let cases: &[Case<'_>] = &[
        ("unset", None, None, None),
        ("plain", Some("30000000"), None, Some(Duration::from_secs(30))),
        ("for_us", Some("500000"), Some("42"), Some(Duration::from_millis(500))),
        ("for_other_pid", Some("500000"), Some("43"), None),
        ("zero", Some("0"), None, None),
        ("garbage", Some("30s"), None, None),
    ];
    for &(name, usec, pid, want) in cases {
        assert_eq!(notify::watchdog_interval_from(usec, pid, 42), want, "{name}");
    }
}

#[test]
fn random_seeds_differ() {
    let seeds: Vec<u64> = (0..4).map(|_| random::seed()).collect();
    assert!(seeds.windows(2).all(|w| w[0] != w[1]), "{seeds:?}");
}

// ---- reflector rig (root) ----

const FAST: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
const DEAD: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
const SLOW: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 3));
const FAST_V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1));

fn rtt_of(got: &[(IpAddr, u16, Duration)], addr: IpAddr) -> Option<Duration> {
    got.iter().find(|g| g.0 == addr).map(|g| g.2)
}

/// `rtt` is at least `delay` (the reply is held that long) and at most `delay + slack`
/// (a loaded 2-core CI box schedules the reflector thread late, never early).
fn assert_rtt(name: &str, rtt: Option<Duration>, delay: Duration, slack: Duration) {
    let rtt = rtt.unwrap_or_else(|| panic!("{name}: no reply"));
    assert!(
        rtt + Duration::from_millis(1) >= delay && rtt <= delay + slack,
        "{name}: rtt {rtt:?}, delay {delay:?}"
    );
}

#[test]
fn rig_reflectors_answer_after_their_delay_and_the_dead_one_never() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let rig = Rig::start(&[
        (FAST, Some(Duration::from_millis(20))),
        (DEAD, None),
        (SLOW, Some(Duration::from_millis(600))),
    ])
    .expect("start rig");

    // The namespace's ping_group_range is the default "1 0" (no ping sockets), so as root
    // `open` falls back to a raw socket: the path a router without the sysctl takes.
    let got = rig
        .ns()
        .run_in(|| {
            let mut sock = IcmpSocket::open(Family::V4, &BindOptions::default()).expect("icmp socket");
            assert_eq!(sock.kind(), IcmpKind::Raw);
            ping_all(&mut sock, &[FAST, DEAD, SLOW], Duration::from_millis(1500))
        })
        .expect("run in namespace");
    assert_rtt("fast", rtt_of(&got, FAST), Duration::from_millis(20), Duration::from_millis(400));
    assert_rtt("slow", rtt_of(&got, SLOW), Duration::from_millis(600), Duration::from_millis(600));
    assert_eq!(rtt_of(&got, DEAD), None, "dead reflector answered: {got:?}");
    assert_eq!((rig.requests(DEAD), rig.replies(DEAD)), (1, 0));
    assert_eq!((rig.requests(FAST), rig.replies(FAST)), (1, 1));

    // Knobs change at run time: revive the dead one, kill the fast one.
    rig.set_delay(DEAD, Some(Duration::from_millis(5)));
    rig.set_loss(FAST, 1.0);
    let got = rig
        .ns()
        .run_in(|| {
            let mut sock = IcmpSocket::open(Family::V4, &BindOptions::default()).expect("icmp socket");
            ping_all(&mut sock, &[DEAD, FAST], Duration::from_millis(500))
        })
        .expect("run in namespace");
    assert_rtt("revived", rtt_of(&got, DEAD), Duration::from_millis(5), Duration::from_millis(400));
    assert_eq!(rtt_of(&got, FAST), None, "100% loss answered: {got:?}");
}

#[test]
fn rig_serves_ping_sockets_with_binding_options_and_ipv6() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let rig =
        Rig::start(&[(FAST, Some(Duration::from_millis(10))), (FAST_V6, Some(Duration::from_millis(10)))])
            .expect("start rig");
    rig.ns().sysctl("net/ipv4/ping_group_range", "0 2147483647").expect("sysctl");
    let (v4, v6) = rig
        .ns()
        .run_in(|| {
            // Per-WAN binding as a multi-WAN config would set it: device, source, mark.
            let opts = BindOptions {
                device: Some("wct0".into()),
                source: Some(IpAddr::V4(reflector::LOCAL_V4)),
                mark: Some(0x77),
            };
            let mut sock = IcmpSocket::open(Family::V4, &opts).expect("v4 ping socket");
            assert_eq!(sock.kind(), IcmpKind::Datagram);
            assert_eq!(sock.framing(), icmp::Framing::Bare);
            let v4 = ping_all(&mut sock, &[FAST], Duration::from_secs(2));
            let opts = BindOptions { source: Some(IpAddr::V6(reflector::LOCAL_V6)), ..opts };
            let mut sock = IcmpSocket::open(Family::V6, &opts).expect("v6 ping socket");
            assert_eq!(sock.kind(), IcmpKind::Datagram);
            let v6 = ping_all(&mut sock, &[FAST_V6], Duration::from_secs(2));
            (v4, v6)
        })
        .expect("run in namespace");
    let slack = Duration::from_millis(400);
    assert_rtt("v4 datagram", rtt_of(&v4, FAST), Duration::from_millis(10), slack);
    assert_rtt("v6 datagram", rtt_of(&v6, FAST_V6), Duration::from_millis(10), slack);
}

#[test]
fn rig_runs_commands_inside_its_namespace() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let rig = Rig::start(&[(FAST, Some(Duration::from_millis(1)))]).expect("start rig");
    let out = crate::support::netns::run_bounded(
        rig.ns().command("ip").args(["-o", "-4", "addr", "show", "dev", "wct0"]),
        Duration::from_secs(10),
    )
    .expect("ip netns exec");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("198.18.0.254/24"));
}
