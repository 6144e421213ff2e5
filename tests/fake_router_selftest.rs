//! Self-test of the test rigs `support::fake_router` (the fake RouterOS REST server and the
//! fake `ssh` harness) and `support::certs`. The client side is the crate's own codecs:
//! `wire::http` writes requests and parses replies, `wire::routeros::RestCall` drives REST
//! operations, and `Command::cli_line`/`parse_cli_output` speak the console. Sockets are
//! blocking `std::net::TcpStream`s with timeouts; every wait has a deadline.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use wanctl::units::Bps;
use wanctl::wire::http::{self, BasicAuth, Method, Progress, Request, Response, ResponseParser};
use wanctl::wire::routeros::{
    Command, Direction, ErrorKind, Fault as RosFault, IdCache, QueueLimit, Reply, RestCall, RouterOsError,
};

use crate::support::fake_router::{
    self, FakeRouterOs, FakeSsh, Fault, QUEUE_DOWNLOAD as DL, QUEUE_UPLOAD as UL, STEERING_COMMENT, fixture,
};

/// Longest any single exchange may take in these tests.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a fake `ssh` may take to answer or exit.
const SSH_TIMEOUT: Duration = Duration::from_secs(10);

const CLI_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/routeros/cli/");
const REST_ERRORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/routeros/rest/errors/");

// ---------------------------------------------------------------------------------------
// A blocking client over the crate's codecs
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
enum Failure {
    Io(io::Error),
    Http(http::Error),
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, EXCHANGE_TIMEOUT).expect("connect to the fake router");
    stream.set_read_timeout(Some(Duration::from_millis(50))).expect("read timeout");
    stream.set_write_timeout(Some(EXCHANGE_TIMEOUT)).expect("write timeout");
    stream
}

/// Writes `request` (already encoded) and reads one response, until `timeout`.
fn exchange_raw<S: Read + Write>(
    stream: &mut S,
    method: Method,
    request: &[u8],
    timeout: Duration,
) -> Result<Response, Failure> {
    stream.write_all(request).and_then(|()| stream.flush()).map_err(Failure::Io)?;
    let mut parser = ResponseParser::new(method);
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => {
                parser.finish_eof().map_err(Failure::Http)?;
                return Ok(parser.take_response().expect("complete after EOF"));
            }
            Ok(n) => {
                if let Progress::Done { .. } = parser.feed(&buf[..n]).map_err(Failure::Http)? {
                    return Ok(parser.take_response().expect("complete"));
                }
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                if Instant::now() >= deadline {
                    return Err(Failure::Io(e));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Failure::Io(e)),
        }
    }
}

fn encode(
    method: Method,
    path: &str,
    host: &str,
    auth: Option<BasicAuth<'_>>,
    body: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = Vec::new();
    Request { method, path, host, auth, body }.write(&mut out).expect("encodable request");
    out
}

fn auth(router: &FakeRouterOs) -> (String, String) {
    (router.user(), router.password())
}

/// One request with the router's own credentials.
fn send<S: Read + Write>(
    stream: &mut S,
    router: &FakeRouterOs,
    method: Method,
    path: &str,
    body: Option<&str>,
) -> Result<Response, Failure> {
    let (user, password) = auth(router);
    let bytes = encode(
        method,
        path,
        &router.host(),
        Some(BasicAuth { user: &user, password: &password }),
        body.map(str::as_bytes),
    );
    exchange_raw(stream, method, &bytes, EXCHANGE_TIMEOUT)
}

fn ok<S: Read + Write>(
    stream: &mut S,
    router: &FakeRouterOs,
    method: Method,
    path: &str,
    body: Option<&str>,
) -> Response {
    send(stream, router, method, path, body).unwrap_or_else(|e| panic!("{method} {path}: {e:?}"))
}

fn body_text(response: &Response) -> &str {
    std::str::from_utf8(&response.body).expect("UTF-8 body")
}

/// Runs a whole REST operation over one connection, the way the daemon's router link does.
fn run_call<S: Read + Write>(
    stream: &mut S,
    router: &FakeRouterOs,
    command: Command,
    ids: &mut IdCache,
) -> Result<Reply, RouterOsError> {
    let (user, password) = auth(router);
    let host = router.host();
    let mut call = RestCall::new(command, ids);
    for _ in 0..16 {
        let request = call.poll_request().expect("a request is due");
        let mut bytes = Vec::new();
        request
            .http(&host, Some(BasicAuth { user: &user, password: &password }))
            .write(&mut bytes)
            .expect("encode");
        let response = exchange_raw(stream, request.method, &bytes, EXCHANGE_TIMEOUT)
            .unwrap_or_else(|e| panic!("{} {}: {e:?}", request.method, request.path));
        if let Some(reply) = call.handle_response(response.status, &response.body, ids)? {
            return Ok(reply);
        }
    }
    panic!("REST call did not finish in 16 exchanges");
}

fn limits(download_bps: u64, upload_bps: u64) -> Command {
    Command::SetQueueLimits {
        download: QueueLimit::with_cake_type(DL, Direction::Download, "WAN1", Bps(download_bps)),
        upload: QueueLimit::with_cake_type(UL, Direction::Upload, "WAN1", Bps(upload_bps)),
    }
}

// ---------------------------------------------------------------------------------------
// REST behaviour
// ---------------------------------------------------------------------------------------

#[test]
fn set_queue_limits_round_trip_changes_state() {
    let router = FakeRouterOs::start();
    let mut stream = connect(router.addr());
    let mut ids = IdCache::new();
    let reply =
        run_call(&mut stream, &router, limits(450_000_000, 20_000_000), &mut ids).expect("set limits");
    let Reply::QueueLimitsSet { download: Some(dl), upload: Some(ul) } = reply else { panic!("{reply:?}") };
    assert_eq!((dl.max_limit, ul.max_limit), (Some(Bps(450_000_000)), Some(Bps(20_000_000))));
    assert_eq!(router.queue_max_limit(DL), Some(450_000_000));
    assert_eq!(router.queue_max_limit(UL), Some(20_000_000));
    assert_eq!(router.queue_type(DL).as_deref(), Some("cake-down-wan1"));
    assert_eq!(router.queue_type(UL).as_deref(), Some("cake-up-wan1"));
    assert_eq!(router.shaper_rate_bps(DL), Some(450_000_000));

    let log: Vec<String> = router.requests().iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    assert_eq!(
        log,
        [
            "GET /rest/queue/tree?name=WAN-Download-1",
            "PATCH /rest/queue/tree/*1000000",
            "GET /rest/queue/tree?name=WAN-Upload-1",
            "PATCH /rest/queue/tree/*1000001",
        ]
    );
    let requests = router.requests();
    assert_eq!(requests[1].body_text(), r#"{"max-limit":"450000000","queue":"cake-down-wan1"}"#);
    assert!(requests.iter().all(|r| r.status == Some(200) && r.connection == 1), "{requests:?}");

    // Ids are cached now: two PATCHes; a rate handle sees the change at once.
    let handle = router.rate_handle(DL);
    run_call(&mut stream, &router, limits(300_000_000, 10_000_000), &mut ids).expect("second change");
    assert_eq!(router.request_count(), 6);
    assert_eq!(handle.bps(), Some(300_000_000));
    assert_eq!(router.connections_accepted(), 1);
}

#[test]
fn get_by_name_and_id_serve_the_fixtures() {
    let router = FakeRouterOs::start();
    let mut s = connect(router.addr());
    // The first read of each item is the fixture byte for byte.
    let by_name = ok(&mut s, &router, Method::Get, "/rest/queue/tree?name=WAN-Download-1", None);
    assert_eq!(body_text(&by_name), include_str!("fixtures/routeros/rest/queue-tree-get-by-name.json"));
    assert_eq!(by_name.header("Content-Type"), Some("application/json"));
    assert!(by_name.header("Content-Length").is_some());
    let list = ok(&mut s, &router, Method::Get, "/rest/queue/tree", None);
    let list_fixture: Vec<serde_json::Value> =
        serde_json::from_str(fixture::QUEUE_TREE_LIST).expect("fixture");
    assert_eq!(
        body_text(&list),
        format!("[{},{}]", download_after_one_read(), serde_json::to_string(&list_fixture[1]).expect("json"))
    );
    let nomatch = ok(&mut s, &router, Method::Get, "/rest/queue/tree?name=NoSuchQueue", None);
    assert_eq!(
        body_text(&nomatch),
        include_str!("fixtures/routeros/rest/queue-tree-get-by-name-nomatch.json")
    );
    let proplist =
        ok(&mut s, &router, Method::Get, "/rest/queue/tree?name=WAN-Download-1&.proplist=max-limit", None);
    assert_eq!(body_text(&proplist), include_str!("fixtures/routeros/rest/queue-tree-get-proplist.json"));

    // Counters keep increasing between reads.
    let packets = |r: &Response| -> u64 {
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        let item = if v.is_array() { v[0].clone() } else { v };
        item["packets"].as_str().expect("string").parse().expect("number")
    };
    let by_id = ok(&mut s, &router, Method::Get, "/rest/queue/tree/*1000001", None);
    assert!(by_id.body.starts_with(br#"{".id":"*1000001""#), "{}", body_text(&by_id));
    let again = ok(&mut s, &router, Method::Get, "/rest/queue/tree/*1000001", None);
    assert!(packets(&again) > packets(&by_id));

    // Through the codec: by name, by id, missing.
    let mut ids = IdCache::new();
    let reply = run_call(&mut s, &router, Command::GetQueueByName(UL.into()), &mut ids).expect("get");
    let Reply::Queue(Some(q)) = reply else { panic!("{reply:?}") };
    assert_eq!((q.name.as_deref(), q.max_limit), (Some(UL), Some(Bps(38_000_000))));
    let missing = run_call(&mut s, &router, Command::GetQueueByName("NoSuchQueue".into()), &mut ids);
    assert_eq!(missing, Ok(Reply::Queue(None)));
    let by_id =
        run_call(&mut s, &router, Command::GetQueueById(wanctl::wire::routeros::ItemId(0x1A)), &mut ids);
    assert_eq!(by_id, Ok(Reply::Queue(None)));
}

/// The download item after one read: the fixture with `packets`/`bytes` moved on by one step.
fn download_after_one_read() -> String {
    let mut item: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(include_str!("fixtures/routeros/rest/queue-tree-get-by-id.json"))
            .expect("fixture");
    item.insert("packets".into(), (184_614_358u64 + 100).to_string().into());
    item.insert("bytes".into(), (272_603_902_153u64 + 150_000).to_string().into());
    serde_json::to_string(&item).expect("json")
}

#[test]
fn wrong_or_missing_credentials_get_401_with_the_fixture_body() {
    let router = FakeRouterOs::start();
    let mut s = connect(router.addr());
    let host = router.host();
    for auth in [Some(BasicAuth { user: fake_router::USER, password: "wrong" }), None] {
        let bytes = encode(Method::Get, "/rest/system/identity", &host, auth, None);
        let r = exchange_raw(&mut s, Method::Get, &bytes, EXCHANGE_TIMEOUT).expect("reply");
        assert_eq!(r.status, 401);
        assert_eq!(body_text(&r), fixture::UNAUTHORIZED_401);
        assert!(r.header("WWW-Authenticate").is_some_and(|v| v.starts_with("Basic")), "{r:?}");
    }
    // The same connection still serves a good request; the codec classifies the 401.
    router.set_credentials("other", "pw");
    let e = run_call(&mut s, &router, Command::Probe, &mut IdCache::new()).expect("new credentials");
    assert_eq!(e, Reply::Alive { identity: Some(fake_router::IDENTITY.into()) });
    router.set_credentials(fake_router::USER, fake_router::PASSWORD);
    let bytes = encode(
        Method::Get,
        "/rest/system/identity",
        &host,
        Some(BasicAuth { user: "other", password: "pw" }),
        None,
    );
    let r = exchange_raw(&mut s, Method::Get, &bytes, EXCHANGE_TIMEOUT).expect("reply");
    let mut call = RestCall::new(Command::Probe, &IdCache::new());
    let _ = call.poll_request();
    let e = call.handle_response(r.status, &r.body, &mut IdCache::new()).expect_err("401");
    assert_eq!((e.kind, e.fault()), (ErrorKind::Unauthorized, RosFault::Auth));
    assert_eq!(router.connections_accepted(), 1);
}

/// Name, method, path, body, and the error fixture (`rest/errors/<status>-….json`) expected.
type ErrorCase = (&'static str, Method, &'static str, Option<&'static str>, &'static str);

#[test]
fn errors_answer_with_the_fixture_bodies() {
    const Q: &str = "/rest/queue/tree/*1000000";
    let router = FakeRouterOs::start();
    let mut s = connect(router.addr());
    let cases: &[ErrorCase] = &[
        (
            "bad queue type",
            Method::Patch,
            Q,
            Some(r#"{"queue":"cake-nope"}"#),
            "400-input-does-not-match-queue",
        ),
        ("bad max-limit", Method::Patch, Q, Some(r#"{"max-limit":"fast"}"#), "400-invalid-value-max-limit"),
        ("unknown parameter", Method::Patch, Q, Some(r#"{"max-limt":"1"}"#), "400-unknown-parameter"),
        ("not json", Method::Patch, Q, Some("{max-limit:1}"), "400-failed-to-parse-json"),
        ("unknown id", Method::Patch, "/rest/queue/tree/*1A", Some(r#"{"max-limit":"1"}"#), "404-not-found"),
        ("unknown id get", Method::Get, "/rest/queue/tree/*1A", None, "404-not-found"),
        ("unknown path", Method::Get, "/rest/nonexistent/path", None, "400-no-such-command-or-directory"),
        ("command path", Method::Get, "/rest/queue/tree/print", None, "400-no-such-command"),
        ("encoded star", Method::Get, "/rest/queue/tree/%2A1000000", None, "400-no-such-command-prefix"),
        (
            "mangle by comment",
            Method::Get,
            "/rest/ip/firewall/mangle/ADAPTIVE",
            None,
            "400-no-such-command-prefix",
        ),
    ];
    for (name, method, path, body, file) in cases {
        let want = std::fs::read_to_string(format!("{REST_ERRORS}{file}.json")).expect("fixture");
        let status: u16 = file[..3].parse().expect("status prefix");
        let r = send(&mut s, &router, *method, path, *body).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!((r.status, body_text(&r)), (status, want.as_str()), "{name}");
    }
    assert_eq!(router.queue_max_limit(DL), Some(940_000_000), "refused writes change nothing");
    assert_eq!(router.queue_type(DL).as_deref(), Some("cake-down"));

    // A suffixed rate is stored as plain bit/s (ROUTEROS.md §2.2), JSON numbers too.
    let body = include_str!("fixtures/routeros/rest/queue-tree-patch-max-limit-suffix.request.json");
    let r = ok(&mut s, &router, Method::Patch, "/rest/queue/tree/*1000000", Some(body));
    assert!(body_text(&r).contains(r#""max-limit":"450000000""#), "{}", body_text(&r));
    ok(&mut s, &router, Method::Patch, "/rest/queue/tree/WAN-Upload-1", Some(r#"{"max-limit":12000000}"#));
    assert_eq!(router.queue_max_limit(UL), Some(12_000_000));

    // A body without Content-Type: application/json is 415.
    let raw = format!(
        "PATCH /rest/queue/tree/*1000000 HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {}\r\nContent-Length: 2\r\n\r\n{{}}",
        router.host(),
        basic(&router.user(), &router.password())
    );
    let r = exchange_raw(&mut s, Method::Patch, raw.as_bytes(), EXCHANGE_TIMEOUT).expect("reply");
    assert_eq!(r.status, 415);

    // HEAD and OPTIONS, as RouterOS answers them.
    assert_eq!(ok(&mut s, &router, Method::Head, "/rest/queue/tree", None).status, 501);

    // DELETE, then the id is gone.
    assert_eq!(ok(&mut s, &router, Method::Delete, "/rest/queue/tree/*1000001", None).status, 204);
    assert_eq!(ok(&mut s, &router, Method::Delete, "/rest/queue/tree/*1000001", None).status, 404);
    assert_eq!(router.queue_max_limit(UL), None);
    assert_eq!(router.connections_accepted(), 1, "errors keep the connection");
}

fn basic(user: &str, password: &str) -> String {
    let mut out = Vec::new();
    http::base64_encode(format!("{user}:{password}").as_bytes(), &mut out);
    String::from_utf8(out).expect("ascii")
}

#[test]
fn mangle_rules_switch_over_rest() {
    let router = FakeRouterOs::start();
    let mut s = connect(router.addr());
    let by_comment = ok(
        &mut s,
        &router,
        Method::Get,
        "/rest/ip/firewall/mangle?comment=ADAPTIVE%3A%20steer%20LATENCY_SENSITIVE%20to%20WAN2",
        None,
    );
    assert_eq!(body_text(&by_comment), include_str!("fixtures/routeros/rest/mangle-get-by-comment.json"));
    assert_eq!(router.mangle_disabled(STEERING_COMMENT), Some(true));

    let mut ids = IdCache::new();
    let enable = Command::SetMangleDisabled { comment: STEERING_COMMENT.into(), disabled: false };
    let reply = run_call(&mut s, &router, enable, &mut ids).expect("enable");
    assert!(matches!(&reply, Reply::MangleSet(r) if r.len() == 1 && !r[0].disabled), "{reply:?}");
    assert_eq!(router.mangle_disabled(STEERING_COMMENT), Some(false));
    let patch = router.requests().into_iter().find(|r| r.method == "PATCH").expect("a PATCH");
    assert_eq!(patch.path, "/rest/ip/firewall/mangle/*5");
    assert_eq!(patch.body, include_bytes!("fixtures/routeros/rest/mangle-patch-enable.request.json"));

    // POST .../disable with .id, the command form.
    let r = ok(&mut s, &router, Method::Post, "/rest/ip/firewall/mangle/disable", Some(r#"{".id":"*5"}"#));
    assert_eq!(body_text(&r), "[]");
    assert_eq!(router.mangle_disabled(STEERING_COMMENT), Some(true));

    // A rule added by a test, read back through the codec; absent `disabled` = enabled.
    router.add_mangle_rule("ADAPTIVE: Steer latency-sensitive to WAN2", false);
    let get = Command::GetMangleByComment("ADAPTIVE: Steer latency-sensitive to WAN2".into());
    let reply = run_call(&mut s, &router, get, &mut ids).expect("get");
    assert!(matches!(&reply, Reply::Mangle(r) if r.len() == 1 && !r[0].disabled), "{reply:?}");
    assert_eq!(router.mangle_disabled("wanctl: classify realtime"), Some(false));
}

#[test]
fn identity_probe_and_reboot_changes_ids() {
    let router = FakeRouterOs::builder().identity("edge-1").start();
    let mut s = connect(router.addr());
    let mut ids = IdCache::new();
    assert_eq!(
        run_call(&mut s, &router, Command::Probe, &mut ids),
        Ok(Reply::Alive { identity: Some("edge-1".into()) })
    );
    run_call(&mut s, &router, limits(100_000_000, 10_000_000), &mut ids).expect("set");
    let old_id = router.queue_id(DL).expect("id");

    // A reboot closes connections and renumbers: the cached id gets 404, then a re-lookup.
    router.reboot();
    ids.forget_queue(UL);
    assert_ne!(router.queue_id(DL).as_deref(), Some(old_id.as_str()));
    assert_eq!(router.queue_field(DL, "packets").as_deref(), Some("0"));
    let mut s = connect(router.addr());
    router.clear_requests();
    run_call(&mut s, &router, limits(200_000_000, 20_000_000), &mut ids).expect("set after reboot");
    assert_eq!(router.queue_max_limit(DL), Some(200_000_000));
    let statuses: Vec<Option<u16>> = router.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses[0], Some(404), "{statuses:?}");
    assert_eq!(router.connections_accepted(), 2);
}

#[test]
fn tests_can_shape_the_router_state() {
    let router = FakeRouterOs::start();
    let mut s = connect(router.addr());
    let id = router.add_queue("WAN-Download-2", "cake-down-wan2", 100_000_000);
    assert!(id.starts_with('*') && router.queue_id("WAN-Download-2") == Some(id.clone()));
    router.set_queue_field("WAN-Download-2", "dropped", "42");
    let mut ids = IdCache::new();
    let reply = run_call(&mut s, &router, Command::GetQueueByName("WAN-Download-2".into()), &mut ids);
    let Ok(Reply::Queue(Some(q))) = reply else { panic!("{reply:?}") };
    assert_eq!((q.max_limit, q.dropped), (Some(Bps(100_000_000)), Some(42)));

    // The command form of set, with a suffixed rate.
    let body = format!(r#"{{".id":"{id}","max-limit":"5M"}}"#);
    assert_eq!(body_text(&ok(&mut s, &router, Method::Post, "/rest/queue/tree/set", Some(&body))), "[]");
    assert_eq!(router.queue_max_limit("WAN-Download-2"), Some(5_000_000));
    router.set_queue_max_limit("WAN-Download-2", 7_000_000);
    assert_eq!(router.rate_handle("WAN-Download-2").bps(), Some(7_000_000));

    assert!(router.remove_queue("WAN-Download-2"));
    let reply = run_call(&mut s, &router, Command::GetQueueByName("WAN-Download-2".into()), &mut ids);
    assert_eq!(reply, Ok(Reply::Queue(None)));
    assert!(router.set_mangle_disabled(STEERING_COMMENT, false));
    assert_eq!(router.mangle_disabled(STEERING_COMMENT), Some(false));
    assert_eq!(router.mangle_disabled("no such rule"), None);
}

// ---------------------------------------------------------------------------------------
// Faults and connection behaviour
// ---------------------------------------------------------------------------------------

#[test]
fn refuse_closes_the_port_and_resume_reopens_the_same_one() {
    let router = FakeRouterOs::start();
    let port = router.port();
    let mut s = connect(router.addr());
    ok(&mut s, &router, Method::Get, "/rest/system/identity", None);
    router.set_fault(Fault::Refuse);
    let e = TcpStream::connect_timeout(&router.addr(), EXCHANGE_TIMEOUT).expect_err("refused");
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
    // The open connection was closed too.
    assert!(send(&mut s, &router, Method::Get, "/rest/system/identity", None).is_err());

    router.set_fault(Fault::Resume);
    assert_eq!(router.port(), port);
    let mut s = connect(router.addr());
    assert_eq!(ok(&mut s, &router, Method::Get, "/rest/system/identity", None).status, 200);
    assert_eq!(router.fault(), Fault::None);
}

#[test]
fn stall_reads_the_request_and_never_answers() {
    let router = FakeRouterOs::start();
    router.set_fault(Fault::AcceptThenStall);
    let mut s = connect(router.addr());
    let (user, password) = auth(&router);
    let bytes = encode(
        Method::Get,
        "/rest/system/identity",
        &router.host(),
        Some(BasicAuth { user: &user, password: &password }),
        None,
    );
    let started = Instant::now();
    let e = exchange_raw(&mut s, Method::Get, &bytes, Duration::from_millis(300)).expect_err("stalled");
    assert!(
        matches!(&e, Failure::Io(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)),
        "{e:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(router.wait_for_requests(1, EXCHANGE_TIMEOUT));
    assert_eq!(router.requests()[0].status, None, "logged, never answered");
}

#[test]
fn close_mid_response_is_truncated() {
    let router = FakeRouterOs::start();
    router.set_fault(Fault::CloseMidResponse);
    let mut s = connect(router.addr());
    let e = send(&mut s, &router, Method::Get, "/rest/queue/tree", None).expect_err("truncated");
    assert!(matches!(e, Failure::Http(http::Error::Truncated)), "{e:?}");
}

#[test]
fn garbage_is_a_parse_error() {
    let router = FakeRouterOs::start();
    router.set_fault(Fault::Garbage);
    let mut s = connect(router.addr());
    let e = send(&mut s, &router, Method::Get, "/rest/queue/tree", None).expect_err("garbage");
    assert!(matches!(e, Failure::Http(http::Error::BadStatusLine)), "{e:?}");
}

#[test]
fn chunked_and_trickled_replies_parse_like_plain_ones() {
    let router = FakeRouterOs::start();
    router.set_counter_step(0, 0);
    let mut s = connect(router.addr());
    let plain = ok(&mut s, &router, Method::Get, "/rest/queue/tree", None);
    assert!(plain.header("Transfer-Encoding").is_none());

    router.set_fault(Fault::Chunked);
    let chunked = ok(&mut s, &router, Method::Get, "/rest/queue/tree", None);
    assert_eq!(chunked.header("Transfer-Encoding"), Some("chunked"));
    assert!(chunked.header("Content-Length").is_none());
    assert_eq!(chunked.body, plain.body);
    router.set_fault(Fault::None);
    router.set_chunked(true);
    let reply =
        run_call(&mut s, &router, limits(123_000_000, 12_000_000), &mut IdCache::new()).expect("chunked");
    assert!(matches!(reply, Reply::QueueLimitsSet { download: Some(_), upload: Some(_) }));
    router.set_chunked(false);

    router.set_fault(Fault::Trickle(Duration::from_micros(200)));
    let started = Instant::now();
    let trickled = ok(&mut s, &router, Method::Get, "/rest/queue/tree?name=WAN-Upload-1", None);
    assert!(trickled.body.len() > 300 && started.elapsed() >= Duration::from_micros(200) * 300);
    assert_eq!(router.queue_max_limit(DL), Some(123_000_000));
    assert_eq!(router.connections_accepted(), 1);
}

#[test]
fn status_faults_and_fail_next() {
    let router = FakeRouterOs::start();
    let mut s = connect(router.addr());
    let mut ids = IdCache::new();
    let cases = [
        (Fault::Status500, ErrorKind::ServerError, RosFault::Transport),
        (Fault::Status401, ErrorKind::Unauthorized, RosFault::Auth),
        (Fault::SessionClosed, ErrorKind::Timeout, RosFault::Transport),
        (Fault::Html403, ErrorKind::Forbidden, RosFault::Auth),
    ];
    for (fault, kind, group) in cases {
        router.set_fault(fault);
        let e = run_call(&mut s, &router, limits(1_000_000, 1_000_000), &mut ids).expect_err("fault");
        assert_eq!((e.kind, e.fault()), (kind, group), "{fault:?}: {e}");
    }
    assert_eq!(router.queue_max_limit(DL), Some(940_000_000), "faults answer without processing");

    router.set_fault(Fault::None);
    router.set_fault(Fault::FailNext(2));
    let statuses: Vec<u16> = (0..3)
        .map(|_| send(&mut s, &router, Method::Get, "/rest/system/identity", None).expect("reply").status)
        .collect();
    assert_eq!(statuses, [500, 500, 200]);
    router.fail_next(1, Fault::Garbage);
    assert!(send(&mut s, &router, Method::Get, "/rest/system/identity", None).is_err());
    let mut s = connect(router.addr());
    assert_eq!(ok(&mut s, &router, Method::Get, "/rest/system/identity", None).status, 200);
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let router = FakeRouterOs::start();
    let mut s = connect(router.addr());
    for _ in 0..5 {
        ok(&mut s, &router, Method::Get, "/rest/queue/tree?name=WAN-Download-1", None);
    }
    assert_eq!(router.connections_accepted(), 1);
    assert!(router.requests().iter().all(|r| r.connection == 1));

    // Connection: close after the 2nd request of each connection.
    router.set_close_after(Some(2));
    let mut s = connect(router.addr());
    assert!(ok(&mut s, &router, Method::Get, "/rest/system/identity", None).keep_alive);
    let second = ok(&mut s, &router, Method::Get, "/rest/system/identity", None);
    assert!(!second.keep_alive && second.header("Connection") == Some("close"));
    let e = send(&mut s, &router, Method::Get, "/rest/system/identity", None).expect_err("closed");
    assert!(matches!(e, Failure::Http(http::Error::ClosedBeforeResponse) | Failure::Io(_)), "{e:?}");
    router.set_close_after(None);

    // An idle connection is dropped by the router.
    router.set_idle_timeout(Some(Duration::from_millis(100)));
    let mut s = connect(router.addr());
    ok(&mut s, &router, Method::Get, "/rest/system/identity", None);
    let end = Instant::now() + EXCHANGE_TIMEOUT;
    while router.connections_open() > 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(router.connections_open(), 0, "closed by the idle timeout");
    assert!(send(&mut s, &router, Method::Get, "/rest/system/identity", None).is_err());
    assert_eq!(router.connections_accepted(), 3);
}

#[test]
fn latency_delays_each_reply() {
    let router = FakeRouterOs::start();
    let mut s = connect(router.addr());
    router.set_latency(Duration::from_millis(150));
    let started = Instant::now();
    ok(&mut s, &router, Method::Get, "/rest/system/identity", None);
    assert!(started.elapsed() >= Duration::from_millis(150));
    router.set_latency(Duration::ZERO);
}

#[test]
fn drop_stops_a_server_with_stalled_and_trickling_connections() {
    let router = FakeRouterOs::start();
    let _idle = connect(router.addr());
    router.set_fault(Fault::AcceptThenStall);
    let mut stalled = connect(router.addr());
    let (user, password) = auth(&router);
    let bytes = encode(
        Method::Get,
        "/rest/queue/tree",
        &router.host(),
        Some(BasicAuth { user: &user, password: &password }),
        None,
    );
    stalled.write_all(&bytes).expect("write");
    assert!(router.wait_for_requests(1, EXCHANGE_TIMEOUT));
    let started = Instant::now();
    drop(router);
    assert!(started.elapsed() < Duration::from_secs(2), "drop took {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------
// HTTPS
// ---------------------------------------------------------------------------------------

/// A rustls client trusting `root` (DER) and nothing else.
#[cfg(feature = "tls")]
fn tls_client(root: &[u8]) -> std::sync::Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(root.to_vec())).expect("root");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    std::sync::Arc::new(config)
}

#[cfg(feature = "tls")]
fn tls_connect(
    config: &std::sync::Arc<rustls::ClientConfig>,
    name: &str,
    router: &FakeRouterOs,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let server = rustls::pki_types::ServerName::try_from(name).expect("name").to_owned();
    let conn = rustls::ClientConnection::new(std::sync::Arc::clone(config), server).expect("client");
    rustls::StreamOwned::new(conn, connect(router.addr()))
}

#[cfg(feature = "tls")]
#[test]
fn https_request_with_the_test_certificate() {
    use crate::support::certs::TestCert;

    let cert = TestCert::generate().expect("openssl makes a certificate");
    // openssl's fingerprint is the SHA-256 of the DER certificate.
    let sha256 = rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256
        .tls13()
        .expect("a TLS 1.3 suite")
        .common
        .hash_provider
        .hash(&cert.cert_der);
    assert_eq!(sha256.as_ref(), cert.sha256);
    assert_eq!(cert.sha256_hex().len(), 64);
    assert!(cert.cert_pem.exists() && cert.key_pem.exists());

    let router = FakeRouterOs::start_https(&cert);
    assert!(router.base_url().starts_with("https://127.0.0.1:"));
    let config = tls_client(&cert.cert_der);
    for name in ["127.0.0.1", "localhost"] {
        let mut tls = tls_connect(&config, name, &router);
        let mut ids = IdCache::new();
        let reply = run_call(&mut tls, &router, Command::Probe, &mut ids).expect("probe over TLS");
        assert_eq!(reply, Reply::Alive { identity: Some(fake_router::IDENTITY.into()) });
        run_call(&mut tls, &router, limits(77_000_000, 7_000_000), &mut ids).expect("set over TLS");
        // RouterOS www-ssl speaks TLS 1.2 at most.
        assert_eq!(tls.conn.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
    }
    assert_eq!(router.queue_max_limit(DL), Some(77_000_000));
    assert_eq!(router.connections_accepted(), 2);

    // Faults work the same over TLS.
    router.set_fault(Fault::CloseMidResponse);
    let mut tls = tls_connect(&config, "localhost", &router);
    let e = send(&mut tls, &router, Method::Get, "/rest/queue/tree", None).expect_err("truncated");
    assert!(matches!(e, Failure::Http(http::Error::Truncated) | Failure::Io(_)), "{e:?}");

    let tls13 = FakeRouterOs::builder().https(&cert).allow_tls13().start();
    let mut tls = tls_connect(&config, "localhost", &tls13);
    ok(&mut tls, &tls13, Method::Get, "/rest/system/identity", None);
    assert_eq!(tls.conn.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
}

#[cfg(feature = "tls")]
#[test]
fn https_with_a_ca_like_certificate_fails_root_store_verification() {
    use crate::support::certs::{CertKind, TestCert};

    let cert = TestCert::generate_kind(CertKind::CaLike).expect("openssl makes a certificate");
    let router = FakeRouterOs::start_https(&cert);
    let mut tls = tls_connect(&tls_client(&cert.cert_der), "127.0.0.1", &router);
    let e = send(&mut tls, &router, Method::Get, "/rest/system/identity", None).expect_err("CA:TRUE leaf");
    assert!(
        matches!(&e, Failure::Io(e) if e.kind() == io::ErrorKind::InvalidData
            && e.to_string().contains("invalid peer certificate")),
        "{e:?}"
    );
    assert_eq!(router.request_count(), 0);
}

// ---------------------------------------------------------------------------------------
// Fake ssh
// ---------------------------------------------------------------------------------------

/// What a client passes (options ignored by the fake, login with console options).
const SSH_ARGS: &[&str] = &[
    "-T",
    "-o",
    "BatchMode=yes",
    "-o",
    "ConnectTimeout=5",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "ServerAliveInterval=10",
    "-i",
    "/nonexistent/router.key",
    "-p",
    "22",
    "-q",
    "--",
    "admin+ct@192.0.2.1",
];

#[test]
fn fake_ssh_session_sets_and_prints_queues() {
    let ssh = FakeSsh::new().expect("fake ssh");
    assert_eq!(ssh.queue_max_limit(DL), Some(940_000_000));
    let mut session = ssh.spawn(SSH_ARGS).expect("spawn");
    let set = limits(450_000_000, 20_000_000);
    session.send(&set.cli_line().expect("line")).expect("send");
    session.send(r#":put "END-1""#).expect("send");
    let out = session.read_until("END-1", SSH_TIMEOUT).expect("marker");
    assert_eq!(out, "");
    assert!(set.parse_cli_output(out.as_bytes()).is_ok());

    let get = Command::GetQueueByName(DL.into());
    session.send(&get.cli_line().expect("line")).expect("send");
    session.send(r#":put "END-2""#).expect("send");
    let out = session.read_until("END-2", SSH_TIMEOUT).expect("marker");
    assert!(out.ends_with("\r\n") && out.contains("max-limit=450M"), "{out:?}");
    let Ok(Reply::Queue(Some(q))) = get.parse_cli_output(out.as_bytes()) else { panic!("{out:?}") };
    assert_eq!((q.max_limit, q.queue_type.as_deref()), (Some(Bps(450_000_000)), Some("cake-down-wan1")));
    assert_eq!((q.packets, q.queued_packets), (Some(184_614_358), Some(10)));

    let switch = Command::SetMangleDisabled {
        comment: "ADAPTIVE: Steer latency-sensitive to WAN2".into(),
        disabled: false,
    };
    session.send(&switch.cli_line().expect("line")).expect("send");
    let probe = Command::Probe;
    session.send(&probe.cli_line().expect("line")).expect("send");
    session.send(r#":put "END-3""#).expect("send");
    let out = session.read_until("END-3", SSH_TIMEOUT).expect("marker");
    assert_eq!(
        probe.parse_cli_output(out.as_bytes()),
        Ok(Reply::Alive { identity: Some("MikroTik".into()) })
    );

    session.close_stdin();
    assert_eq!(session.wait(SSH_TIMEOUT).map(|s| s.code()), Some(Some(0)));
    assert_eq!(ssh.queue_max_limit(DL), Some(450_000_000));
    assert_eq!(ssh.queue_max_limit(UL), Some(20_000_000));
    assert_eq!(ssh.queue_type(UL).as_deref(), Some("cake-up-wan1"));
    assert_eq!(ssh.mangle_disabled("ADAPTIVE: Steer latency-sensitive to WAN2"), Some(false));
    let argv = ssh.invocations();
    assert_eq!(argv.len(), 1);
    assert_eq!(argv[0][1..], SSH_ARGS.iter().map(|s| s.to_string()).collect::<Vec<_>>()[..]);
    let commands = ssh.commands();
    assert_eq!(commands.len(), 7);
    assert_eq!(commands[0], set.cli_line().expect("line"));
}

#[test]
fn fake_ssh_prints_the_cli_fixtures_byte_for_byte() {
    let ssh = FakeSsh::new().expect("fake ssh");
    // Use the fixtures' steering comment.
    let mut state = ssh.state();
    let rule = state["mangle"]["ADAPTIVE: Steer latency-sensitive to WAN2"].take();
    state["mangle"] = serde_json::json!({ STEERING_COMMENT: rule });
    ssh.write_state(&state);

    // Reads first (the writes change what later prints show).
    let cases: &[(&str, &str)] = &[
        ("/queue tree print stats", "queue-tree-print-stats.txt"),
        (r#"/queue tree print stats where name="WAN-Upload-1""#, "queue-tree-print-stats-where-name.txt"),
        (
            r#"/queue tree print stats where name="NoSuchQueue""#,
            "queue-tree-print-stats-where-name-nomatch.txt",
        ),
        (r#"/queue tree print where name="WAN-Download-1""#, "queue-tree-print-where-name.txt"),
        (r#"/ip firewall mangle print where comment~"ADAPTIVE""#, "mangle-print-where-comment.disabled.txt"),
        (
            r#"/queue tree set [find name="WAN-Download-1"] max-limt=500000000"#,
            "errors/expected-end-of-command.txt",
        ),
        (r#"/queue tree sett [find name="WAN-Download-1"] max-limit=1"#, "errors/bad-command-name.txt"),
        (r#"/queue tree set [find name="WAN-Download-1" max-limit=1"#, "errors/syntax-error.txt"),
        ("/queue tree set NoSuchQueue max-limit=1", "errors/no-such-item.txt"),
        (
            r#"/queue tree set [find name="WAN-Download-1"] queue=cake-nope"#,
            "errors/input-does-not-match-queue.txt",
        ),
        (
            r#"/queue tree set [find name="WAN-Download-1"] max-limit=fast"#,
            "errors/invalid-value-max-limit.txt",
        ),
        (r#"/queue tree set [find name="WAN-Download-1"] max-limit=450000000"#, "queue-tree-set-success.txt"),
        (
            r#"/ip firewall mangle enable [find comment="ADAPTIVE: steer LATENCY_SENSITIVE to WAN2"]"#,
            "mangle-enable-success.txt",
        ),
        (r#"/ip firewall mangle print where comment~"ADAPTIVE""#, "mangle-print-where-comment.enabled.txt"),
    ];
    let mut session = ssh.spawn(SSH_ARGS).expect("spawn");
    for (i, (command, file)) in cases.iter().enumerate() {
        let marker = format!("F-{i}");
        session.send(command).expect("send");
        session.send(&format!(r#":put "{marker}""#)).expect("send");
        let out = session.read_until(&marker, SSH_TIMEOUT).unwrap_or_else(|| panic!("{file}: no marker"));
        let want =
            std::fs::read_to_string(format!("{CLI_FIXTURES}{file}")).expect("fixture").replace('\n', "\r\n");
        assert_eq!(out, want, "{file}");
    }
    assert_eq!(ssh.queue_max_limit(DL), Some(450_000_000));
    assert_eq!(ssh.mangle_disabled(STEERING_COMMENT), Some(false));

    // A wide console (`+ct999w` in the login) does not wrap, as in the `.wide` fixture.
    let out =
        ssh.run(&["-T", "admin+ct999w@192.0.2.1"], "/queue tree print stats\n", SSH_TIMEOUT).expect("run");
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).expect("UTF-8");
    let wide = include_str!("fixtures/routeros/cli/queue-tree-print-stats.wide.txt").replace('\n', "\r\n");
    assert_eq!(stdout, wide);
}

#[test]
fn fake_ssh_errors_are_on_stdout_with_exit_0() {
    let ssh = FakeSsh::new().expect("fake ssh");
    // The remote-command form runs one line (here two statements) and exits.
    let mut cmd = ssh.command();
    cmd.args([
        "-o",
        "BatchMode=yes",
        "admin@192.0.2.1",
        "/queue tree set NoSuchQueue max-limit=1; :put \"x\"",
    ]);
    let out = crate::support::netns::run_bounded(&mut cmd, SSH_TIMEOUT).expect("run");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "no such item\r\n");
    let set = limits(1_000_000, 1_000_000);
    let e = set.parse_cli_output(&out.stdout).expect_err("an error");
    assert_eq!(e.kind, ErrorKind::NotFound);
    // A missing name in `[find]` is silent (and changes nothing).
    let out = ssh
        .run(SSH_ARGS, "/queue tree set [find name=\"NoSuchQueue\"] max-limit=5M\n", SSH_TIMEOUT)
        .expect("run");
    assert_eq!((out.status.code(), out.stdout.len()), (Some(0), 0));
}

#[test]
fn fake_ssh_auth_fail_and_refuse_exit_255() {
    let ssh = FakeSsh::new().expect("fake ssh");
    ssh.set_mode("auth_fail");
    let out = ssh.run(SSH_ARGS, "", SSH_TIMEOUT).expect("run");
    assert_eq!(out.status.code(), Some(255));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("admin+ct@192.0.2.1: Permission denied (publickey)."), "{stderr}");
    assert!(out.stdout.is_empty());

    ssh.set_mode("");
    let mut cmd = ssh.command();
    cmd.env("FAKE_SSH_MODE", "refuse").args(["-T", "-p", "2222", "admin@192.0.2.1"]);
    let out = crate::support::netns::run_bounded(&mut cmd, SSH_TIMEOUT).expect("run");
    assert_eq!(out.status.code(), Some(255));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ssh: connect to host 192.0.2.1 port 2222: Connection refused"), "{stderr}");
    assert_eq!(ssh.invocations().len(), 2);
}

#[test]
fn fake_ssh_hang_slow_and_die_after() {
    let ssh = FakeSsh::new().expect("fake ssh");
    let mut session = ssh.spawn(SSH_ARGS).expect("spawn");
    ssh.set_mode("hang");
    session.send(r#":put "H-1""#).expect("send");
    assert!(ssh.wait_for_commands(1, SSH_TIMEOUT), "the line was read (under `hang`)");
    assert_eq!(session.read_until("H-1", Duration::from_millis(300)), None);
    // The mode file is read again per command.
    ssh.set_mode("slow=200");
    let started = Instant::now();
    session.send(r#":put "H-2""#).expect("send");
    assert_eq!(session.read_until("H-2", SSH_TIMEOUT).as_deref(), Some(""));
    assert!(started.elapsed() >= Duration::from_millis(200));
    drop(session);

    ssh.set_mode("die_after=2");
    let mut session = ssh.spawn(SSH_ARGS).expect("spawn");
    for i in 0..3 {
        session.send(&format!(r#":put "D-{i}""#)).expect("send");
    }
    assert!(session.read_until("D-0", SSH_TIMEOUT).is_some());
    assert!(session.read_until("D-1", SSH_TIMEOUT).is_some());
    assert_eq!(session.wait(SSH_TIMEOUT).and_then(|s| s.code()), Some(255));
    assert_eq!(session.read_until("D-2", Duration::from_millis(100)), None);
    assert!(session.stderr().contains("closed by remote host"), "{}", session.stderr());
}
