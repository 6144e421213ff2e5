//! The RouterOS contract: every fixture in `tests/fixtures/routeros/` (copied from the
//! captured and composed replies, see its README) goes through the parser the daemon uses
//! for it, with the documented values asserted; every request the encoders produce is
//! checked against the documented shape and the `*.request.json` bodies; console lines
//! against the original's exact text. Fixtures are compiled in (`include_bytes!`), and a
//! test checks that the table lists every file on disk, so a new fixture cannot be skipped.

use std::path::Path;

use wanctl::units::Bps;
use wanctl::wire::http::{self, BasicAuth, Method, Progress, ResponseParser};
use wanctl::wire::json;
use wanctl::wire::routeros::{
    self, Command, Direction, ErrorKind, Fault, IdCache, ItemId, MangleRule, QueueLimit, QueueStats, Reply,
    RestCall, RestRequest, RouterOsError,
};

macro_rules! fixtures {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_bytes!(concat!("fixtures/routeros/", $path)) as &[u8])),*]
    };
}

/// Every fixture file, by path under `tests/fixtures/routeros/`.
const FIXTURES: &[(&str, &[u8])] = fixtures![
    "rest/queue-tree-list.json",
    "rest/queue-tree-get-by-name.json",
    "rest/queue-tree-get-by-name-nomatch.json",
    "rest/queue-tree-get-by-id.json",
    "rest/queue-tree-get-proplist.json",
    "rest/queue-tree-patch-max-limit.request.json",
    "rest/queue-tree-patch-max-limit.response.json",
    "rest/queue-tree-patch-max-limit-suffix.request.json",
    "rest/queue-type-cake-get-by-name.json",
    "rest/mangle-list.json",
    "rest/mangle-get-by-comment.json",
    "rest/mangle-patch-enable.request.json",
    "rest/mangle-patch-enable.response.json",
    "rest/mangle-post-enable.request.json",
    "rest/mangle-post-enable.response.json",
    "rest/verbatim/tf-queue-tree.json",
    "rest/verbatim/tf-queue-simple.json",
    "rest/verbatim/tf-queue-type-pcq-default.json",
    "rest/verbatim/tf-mangle.json",
    "rest/errors/400-failed-to-parse-json.json",
    "rest/errors/400-input-does-not-match-queue.json",
    "rest/errors/400-invalid-value-max-limit.json",
    "rest/errors/400-missing-or-invalid-resource-identifier.json",
    "rest/errors/400-no-such-command-or-directory.json",
    "rest/errors/400-no-such-command-prefix.json",
    "rest/errors/400-no-such-command.json",
    "rest/errors/400-session-closed.json",
    "rest/errors/400-unknown-parameter.json",
    "rest/errors/401-unauthorized.json",
    "rest/errors/404-not-found.json",
    "rest/errors/406-no-such-command-or-directory.early-7x.json",
    "rest/errors/500-not-enough-permissions.json",
    "rest/errors/500-std-failure-not-allowed.json",
    "cli/queue-tree-print-stats.txt",
    "cli/queue-tree-print-stats.wide.txt",
    "cli/queue-tree-print-stats.vendor-example.txt",
    "cli/queue-tree-print-stats-where-name.txt",
    "cli/queue-tree-print-stats-where-name-nomatch.txt",
    "cli/queue-tree-print-where-name.txt",
    "cli/queue-tree-set-success.txt",
    "cli/mangle-enable-success.txt",
    "cli/mangle-print-where-comment.disabled.txt",
    "cli/mangle-print-where-comment.enabled.txt",
    "cli/mangle-print.7.23-invalid-rule.verbatim.txt",
    "cli/errors/bad-command-name.txt",
    "cli/errors/expected-end-of-command.txt",
    "cli/errors/input-does-not-match-queue.txt",
    "cli/errors/invalid-value-max-limit.txt",
    "cli/errors/no-such-item.txt",
    "cli/errors/syntax-error.txt",
];

const DL: &str = "WAN-Download-1";
const UL: &str = "WAN-Upload-1";
const STEER: &str = "ADAPTIVE: steer LATENCY_SENSITIVE to WAN2";

fn fixture(path: &str) -> &'static [u8] {
    FIXTURES.iter().find(|(p, _)| *p == path).map(|(_, b)| *b).unwrap_or_else(|| panic!("no fixture {path}"))
}

fn text(path: &str) -> &'static str {
    std::str::from_utf8(fixture(path)).expect("fixture is UTF-8")
}

/// What a real router sends over ssh: the fixture files use `\n`, the router `\r\n`.
fn crlf(s: &str) -> String {
    s.replace('\n', "\r\n")
}

/// The download queue as the REST list and the console stats both describe it.
fn download_stats() -> QueueStats {
    QueueStats {
        id: Some(ItemId(0x100_0000)),
        name: Some(DL.into()),
        queue_type: Some("cake-down".into()),
        max_limit: Some(Bps(940_000_000)),
        rate: Some(Bps(612_345_678)),
        packets: Some(184_614_358),
        bytes: Some(272_603_902_153),
        dropped: Some(48_213),
        queued_packets: Some(10),
        queued_bytes: Some(15_140),
        disabled: false,
        invalid: false,
        comment: Some("wanctl: download shaper".into()),
    }
}

fn upload_stats() -> QueueStats {
    QueueStats {
        id: Some(ItemId(0x100_0001)),
        name: Some(UL.into()),
        queue_type: Some("cake-up".into()),
        max_limit: Some(Bps(38_000_000)),
        rate: Some(Bps(21_345_000)),
        packets: Some(96_412_007),
        bytes: Some(31_977_410_982),
        dropped: Some(1_702),
        queued_packets: Some(0),
        queued_bytes: Some(0),
        disabled: false,
        invalid: false,
        comment: None,
    }
}

/// The same queue as console `print stats` shows it: no id, no queue type, no max-limit.
fn as_console_stats(q: QueueStats) -> QueueStats {
    QueueStats { id: None, queue_type: None, max_limit: None, ..q }
}

fn queues(path: &str) -> Vec<QueueStats> {
    routeros::parse_queue_json(fixture(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn mangles(path: &str) -> Vec<MangleRule> {
    routeros::parse_mangle_json(fixture(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn status_of(path: &str) -> u16 {
    let name = path.rsplit('/').next().unwrap_or(path);
    name[..3].parse().expect("status prefix")
}

// ------------------------------------------------------------------------------------------
// Coverage
// ------------------------------------------------------------------------------------------

#[test]
fn table_lists_every_fixture_file() {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("read fixture dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if matches!(path.extension().and_then(|e| e.to_str()), Some("json" | "txt")) {
                let rel = path.strip_prefix(root).expect("under root").to_string_lossy().replace('\\', "/");
                out.push(rel);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/routeros");
    let mut on_disk = Vec::new();
    walk(&root, &root, &mut on_disk);
    on_disk.sort();
    let mut listed: Vec<String> = FIXTURES.iter().map(|(p, _)| (*p).to_owned()).collect();
    listed.sort();
    assert_eq!(listed, on_disk, "FIXTURES must list exactly the files in tests/fixtures/routeros");
}

/// Every fixture goes through the parser the daemon uses for it and is accepted.
#[test]
fn every_fixture_parses_with_its_parser() {
    for (path, bytes) in FIXTURES {
        let name = path.rsplit('/').next().unwrap_or(path);
        let outcome: Result<(), String> = if path.starts_with("rest/errors/") {
            let e = routeros::parse_error_body(status_of(path), bytes);
            if matches!(e.kind, ErrorKind::UnexpectedStatus | ErrorKind::NotJson) || e.message.is_empty() {
                Err(format!("unclassified: {e:?}"))
            } else {
                Ok(())
            }
        } else if name.ends_with(".request.json") {
            flat_string_object(bytes).map(|_| ())
        } else if path.starts_with("rest/") && (name.starts_with("mangle-") || name == "tf-mangle.json") {
            routeros::parse_mangle_json(bytes).map(|_| ()).map_err(|e| e.to_string())
        } else if path.starts_with("rest/") {
            routeros::parse_queue_json(bytes).map(|_| ()).map_err(|e| e.to_string())
        } else if path.starts_with("cli/errors/") {
            routeros::cli_error(&String::from_utf8_lossy(bytes))
                .map(|_| ())
                .ok_or_else(|| "no error found".into())
        } else if name == "mangle-enable-success.txt" {
            let enable = Command::SetMangleDisabled { comment: STEER.into(), disabled: false };
            enable.parse_cli_output(bytes).map(|_| ()).map_err(|e| e.to_string())
        } else if name == "queue-tree-set-success.txt" {
            let set = Command::SetQueueLimits {
                download: QueueLimit::max_limit_only(DL, Bps(450_000_000)),
                upload: QueueLimit::max_limit_only(UL, Bps(38_000_000)),
            };
            set.parse_cli_output(bytes).map(|_| ()).map_err(|e| e.to_string())
        } else if name.starts_with("mangle-") {
            Command::GetMangleByComment(STEER.into())
                .parse_cli_output(bytes)
                .map(|_| ())
                .map_err(|e| e.to_string())
        } else {
            Command::GetQueueByName(DL.into()).parse_cli_output(bytes).map(|_| ()).map_err(|e| e.to_string())
        };
        assert_eq!(outcome, Ok(()), "{path}");
    }
}

/// A flat JSON object whose values are all strings (ROUTEROS.md §1.6): `(key, value)`.
fn flat_string_object(bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
    let value = json::parse_lenient(bytes).map_err(|e| e.to_string())?;
    let object = value.as_object().ok_or("not an object")?;
    object
        .iter()
        .map(|(k, v)| {
            v.as_str().map(|s| (k.clone(), s.to_owned())).ok_or_else(|| format!("{k} is not a string"))
        })
        .collect()
}

// ------------------------------------------------------------------------------------------
// REST replies
// ------------------------------------------------------------------------------------------

#[test]
fn rest_queue_tree_replies_decode_to_documented_values() {
    assert_eq!(queues("rest/queue-tree-list.json"), [download_stats(), upload_stats()]);
    assert_eq!(queues("rest/queue-tree-get-by-name.json"), [download_stats()], "a filtered GET is an array");
    assert_eq!(queues("rest/queue-tree-get-by-name-nomatch.json"), [], "no match is [], not 404");
    assert_eq!(queues("rest/queue-tree-get-by-id.json"), [download_stats()], "GET by id is one object");
    assert_eq!(
        queues("rest/queue-tree-get-proplist.json"),
        [QueueStats {
            id: Some(ItemId(0x100_0000)),
            max_limit: Some(Bps(940_000_000)),
            ..QueueStats::default()
        }],
        ".proplist keeps .id; everything else is absent"
    );
    let patched = QueueStats {
        max_limit: Some(Bps(450_000_000)),
        rate: Some(Bps(598_001_234)),
        packets: Some(184_614_803),
        bytes: Some(272_604_511_021),
        dropped: Some(48_215),
        queued_packets: Some(2),
        queued_bytes: Some(3_028),
        ..download_stats()
    };
    assert_eq!(
        queues("rest/queue-tree-patch-max-limit.response.json"),
        [patched],
        "PATCH returns the whole object"
    );
}

#[test]
fn rest_verbatim_captures_decode() {
    let tf = &queues("rest/verbatim/tf-queue-tree.json")[0];
    assert_eq!(tf.id, Some(ItemId(0x100_0000)));
    assert_eq!(tf.name.as_deref(), Some("queue1"));
    assert_eq!(tf.queue_type.as_deref(), Some("default-small"));
    assert_eq!(tf.max_limit, Some(Bps(0)), "0 = unlimited");
    assert_eq!((tf.packets, tf.bytes, tf.dropped), (Some(0), Some(0), Some(0)));
    assert_eq!(tf.comment.as_deref(), Some("comment"));

    // Simple queues carry upload/download pairs: not a queue-tree rate or counter.
    let simple = &queues("rest/verbatim/tf-queue-simple.json")[0];
    assert_eq!((simple.name.as_deref(), simple.max_limit, simple.packets), (Some("queue1"), None, None));

    let pcq = &queues("rest/verbatim/tf-queue-type-pcq-default.json")[0];
    assert_eq!((pcq.id, pcq.name.as_deref()), (Some(ItemId(0xFFFF_FFFA)), Some("pcq-upload-default")));

    let cake = &queues("rest/queue-type-cake-get-by-name.json")[0];
    assert_eq!((cake.id, cake.name.as_deref()), (Some(ItemId(0x2A)), Some("cake-down")));

    assert_eq!(
        mangles("rest/verbatim/tf-mangle.json"),
        [MangleRule { id: Some(ItemId(1)), comment: None, disabled: false, dynamic: false, invalid: false }]
    );
}

#[test]
fn rest_mangle_replies_decode_with_absent_disabled_meaning_enabled() {
    let steer = MangleRule {
        id: Some(ItemId(5)),
        comment: Some(STEER.into()),
        disabled: true,
        dynamic: false,
        invalid: false,
    };
    assert_eq!(
        mangles("rest/mangle-list.json"),
        [
            MangleRule {
                id: Some(ItemId(0x800_0000)),
                comment: Some("special dummy rule to show fasttrack counters".into()),
                disabled: false,
                dynamic: true,
                invalid: false,
            },
            steer.clone(),
            MangleRule {
                id: Some(ItemId(6)),
                comment: Some("wanctl: classify realtime".into()),
                disabled: false,
                dynamic: false,
                invalid: false,
            },
        ]
    );
    assert_eq!(mangles("rest/mangle-get-by-comment.json"), std::slice::from_ref(&steer));
    assert_eq!(mangles("rest/mangle-patch-enable.response.json"), [MangleRule { disabled: false, ..steer }]);
    assert_eq!(mangles("rest/mangle-post-enable.response.json"), [], "a command without output returns []");
}

#[test]
fn rest_error_bodies_classify_by_fault() {
    use ErrorKind::*;
    let cases: &[(&str, ErrorKind, Fault, &str)] = &[
        ("400-failed-to-parse-json.json", Syntax, Fault::Rejected, "Failed to parse json"),
        (
            "400-input-does-not-match-queue.json",
            InvalidValue,
            Fault::Rejected,
            "input does not match any value of queue",
        ),
        (
            "400-invalid-value-max-limit.json",
            InvalidValue,
            Fault::Rejected,
            "invalid value for argument max-limit",
        ),
        (
            "400-missing-or-invalid-resource-identifier.json",
            InvalidResource,
            Fault::Rejected,
            "missing or invalid resource identifier",
        ),
        (
            "400-no-such-command-or-directory.json",
            NoSuchCommand,
            Fault::Rejected,
            "no such command or directory (nonexistent)",
        ),
        ("400-no-such-command-prefix.json", NoSuchCommand, Fault::Rejected, "no such command prefix"),
        ("400-no-such-command.json", NoSuchCommand, Fault::Rejected, "no such command"),
        ("400-session-closed.json", Timeout, Fault::Transport, "Session closed"),
        ("400-unknown-parameter.json", UnknownParameter, Fault::Rejected, "unknown parameter max-limt"),
        ("401-unauthorized.json", Unauthorized, Fault::Auth, "Unauthorized"),
        ("404-not-found.json", NotFound, Fault::Rejected, "Not Found"),
        (
            "406-no-such-command-or-directory.early-7x.json",
            NoSuchCommand,
            Fault::Rejected,
            "no such command or directory (remove)",
        ),
        ("500-not-enough-permissions.json", PermissionDenied, Fault::Auth, "not enough permissions (9)"),
        ("500-std-failure-not-allowed.json", PermissionDenied, Fault::Auth, "std failure: not allowed (9)"),
    ];
    let listed = FIXTURES.iter().filter(|(p, _)| p.starts_with("rest/errors/")).count();
    assert_eq!(cases.len(), listed, "every error fixture has a row");
    for (name, kind, fault, message) in cases {
        let path = format!("rest/errors/{name}");
        let status = status_of(&path);
        let want = RouterOsError { status: Some(status), kind: *kind, message: (*message).into() };
        let got = routeros::parse_error_body(status, fixture(&path));
        assert_eq!(got, want, "{name}");
        assert_eq!(got.fault(), *fault, "{name}");
        assert_eq!(got.to_string(), format!("HTTP {status}: {message}"), "{name}");
    }
}

// ------------------------------------------------------------------------------------------
// REST requests
// ------------------------------------------------------------------------------------------

/// Drives `command` over REST against fixture replies, through real HTTP framing (the
/// replies are wrapped in a response with `Content-Length`, then chunked, and parsed with
/// the incremental parser fed in 5-byte pieces).
fn drive(
    command: Command,
    ids: &mut IdCache,
    replies: &[(u16, &str)],
) -> (Vec<RestRequest>, Result<Reply, RouterOsError>) {
    let mut call = RestCall::new(command, ids);
    let mut sent = Vec::new();
    for (i, (status, path)) in replies.iter().enumerate() {
        let request = call.poll_request().expect("a request is due");
        let mut wire = Vec::new();
        request
            .http("192.0.2.1", Some(BasicAuth { user: "wanctl", password: "pw" }))
            .write(&mut wire)
            .expect("valid request");
        sent.push(request);
        let body = fixture(path);
        let response = http_round_trip(*status, body, i % 2 == 1);
        assert_eq!(response.body, body, "{path}: framing is transparent");
        match call.handle_response(response.status, &response.body, ids) {
            Ok(None) => {}
            Ok(Some(reply)) => return (sent, Ok(reply)),
            Err(e) => return (sent, Err(e)),
        }
    }
    panic!("call unfinished after {} replies", replies.len());
}

fn http_round_trip(status: u16, body: &[u8], chunked: bool) -> http::Response {
    let mut bytes = format!("HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n").into_bytes();
    if chunked {
        bytes.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        for piece in body.chunks(64) {
            bytes.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            bytes.extend_from_slice(piece);
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"0\r\n\r\n");
    } else {
        bytes.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        bytes.extend_from_slice(body);
    }
    let mut parser = ResponseParser::new(Method::Get);
    for piece in bytes.chunks(5) {
        if let Progress::Done { .. } = parser.feed(piece).expect("valid response") {
            break;
        }
    }
    parser.take_response().expect("complete response")
}

fn line(r: &RestRequest) -> String {
    format!("{} {}", r.method, r.path)
}

fn body_of(r: &RestRequest) -> &[u8] {
    r.body.as_deref().unwrap_or_default()
}

#[test]
fn rest_set_queue_limits_matches_the_documented_requests() {
    let command = Command::SetQueueLimits {
        download: QueueLimit::max_limit_only(DL, Bps(450_000_000)),
        upload: QueueLimit::max_limit_only(UL, Bps(38_000_000)),
    };
    let mut ids = IdCache::new();
    let (sent, reply) = drive(
        command,
        &mut ids,
        &[
            (200, "rest/queue-tree-get-by-name.json"),
            (200, "rest/queue-tree-patch-max-limit.response.json"),
            (200, "rest/queue-tree-list.json"),
            (200, "rest/queue-tree-patch-max-limit.response.json"),
        ],
    );
    assert_eq!(
        sent.iter().map(line).collect::<Vec<_>>(),
        [
            "GET /rest/queue/tree?name=WAN-Download-1",
            "PATCH /rest/queue/tree/*1000000",
            "GET /rest/queue/tree?name=WAN-Upload-1",
            "PATCH /rest/queue/tree/*1000001",
        ],
        "ids are sent with a literal '*' (the router does not decode %2A)"
    );
    assert_eq!(body_of(&sent[1]), fixture("rest/queue-tree-patch-max-limit.request.json"));
    let Ok(Reply::QueueLimitsSet { download: Some(dl), upload: Some(_) }) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(dl.max_limit, Some(Bps(450_000_000)), "read back");

    // The suffix form is the same request to the router: same key, same value once parsed.
    let plain = flat_string_object(fixture("rest/queue-tree-patch-max-limit.request.json")).expect("object");
    let suffix =
        flat_string_object(fixture("rest/queue-tree-patch-max-limit-suffix.request.json")).expect("object");
    assert_eq!((plain[0].0.as_str(), suffix[0].0.as_str()), ("max-limit", "max-limit"));
    assert_eq!(routeros::parse_rate(&plain[0].1), routeros::parse_rate(&suffix[0].1));

    // With the original's queue type: both keys, sorted, string values.
    let command = Command::SetQueueLimits {
        download: QueueLimit::with_cake_type(DL, Direction::Download, "WAN1", Bps(450_000_000)),
        upload: QueueLimit::with_cake_type(UL, Direction::Upload, "WAN1", Bps(38_000_000)),
    };
    let (sent, reply) = drive(
        command,
        &mut ids,
        &[
            (200, "rest/queue-tree-patch-max-limit.response.json"),
            (200, "rest/queue-tree-patch-max-limit.response.json"),
        ],
    );
    assert!(reply.is_ok());
    assert_eq!(
        sent.iter().map(line).collect::<Vec<_>>(),
        ["PATCH /rest/queue/tree/*1000000", "PATCH /rest/queue/tree/*1000001"]
    );
    assert_eq!(
        flat_string_object(body_of(&sent[0])),
        Ok(vec![("max-limit".into(), "450000000".into()), ("queue".into(), "cake-down-wan1".into())])
    );
    assert_eq!(
        flat_string_object(body_of(&sent[1])),
        Ok(vec![("max-limit".into(), "38000000".into()), ("queue".into(), "cake-up-wan1".into())])
    );
}

#[test]
fn rest_queue_reads_match_the_documented_requests() {
    let mut ids = IdCache::new();
    let (sent, reply) =
        drive(Command::GetQueueByName(DL.into()), &mut ids, &[(200, "rest/queue-tree-get-by-name.json")]);
    assert_eq!(line(&sent[0]), "GET /rest/queue/tree?name=WAN-Download-1");
    assert_eq!(reply, Ok(Reply::Queue(Some(download_stats()))));
    assert_eq!(ids.queue(DL), Some(ItemId(0x100_0000)), "a read teaches the id");

    let (sent, reply) = drive(
        Command::GetQueueByName("NoSuchQueue".into()),
        &mut ids,
        &[(200, "rest/queue-tree-get-by-name-nomatch.json")],
    );
    assert_eq!(line(&sent[0]), "GET /rest/queue/tree?name=NoSuchQueue");
    assert_eq!(reply, Ok(Reply::Queue(None)));

    let (sent, reply) = drive(
        Command::GetQueueById(ItemId(0x100_0000)),
        &mut ids,
        &[(200, "rest/queue-tree-get-by-id.json")],
    );
    assert_eq!(line(&sent[0]), "GET /rest/queue/tree/*1000000");
    assert_eq!(reply, Ok(Reply::Queue(Some(download_stats()))));

    let (_, reply) =
        drive(Command::GetQueueById(ItemId(0x99)), &mut ids, &[(404, "rest/errors/404-not-found.json")]);
    assert_eq!(reply, Ok(Reply::Queue(None)));
}

#[test]
fn rest_mangle_switch_matches_the_documented_requests() {
    let mut ids = IdCache::new();
    let enable = Command::SetMangleDisabled { comment: STEER.into(), disabled: false };
    let (sent, reply) = drive(
        enable,
        &mut ids,
        &[(200, "rest/mangle-list.json"), (200, "rest/mangle-patch-enable.response.json")],
    );
    assert_eq!(
        sent.iter().map(line).collect::<Vec<_>>(),
        ["GET /rest/ip/firewall/mangle", "PATCH /rest/ip/firewall/mangle/*5"]
    );
    assert_eq!(body_of(&sent[1]), fixture("rest/mangle-patch-enable.request.json"));
    let Ok(Reply::MangleSet(rules)) = reply else { panic!("{reply:?}") };
    assert_eq!(rules.iter().map(|r| (r.id, r.disabled)).collect::<Vec<_>>(), [(Some(ItemId(5)), false)]);

    // Reading: client-side exact filter; the dynamic FastTrack rule and others are skipped.
    let (sent, reply) =
        drive(Command::GetMangleByComment(STEER.into()), &mut ids, &[(200, "rest/mangle-list.json")]);
    assert_eq!(line(&sent[0]), "GET /rest/ip/firewall/mangle");
    assert_eq!(reply, Ok(Reply::Mangle(mangles("rest/mangle-get-by-comment.json"))));

    // The POST form is documented but not used; its body names the same rule.
    let post = flat_string_object(fixture("rest/mangle-post-enable.request.json")).expect("object");
    assert_eq!(ItemId::parse(&post[0].1), Some(ItemId(5)));
    // The documented `?comment=` request encodes the comment the way our encoder would.
    assert_eq!(routeros::percent_encode(STEER), "ADAPTIVE%3A%20steer%20LATENCY_SENSITIVE%20to%20WAN2");
}

#[test]
fn rest_errors_end_a_call_through_http() {
    for (path, _) in FIXTURES.iter().filter(|(p, _)| p.starts_with("rest/errors/")) {
        let status = status_of(path);
        let (_, reply) = drive(Command::Probe, &mut IdCache::new(), &[(status, path)]);
        let e = reply.expect_err(path);
        assert_eq!(e, routeros::parse_error_body(status, fixture(path)), "{path}");
    }
}

#[test]
fn rest_request_bytes_carry_json_content_type_and_no_password_text() {
    let mut ids = IdCache::new();
    ids.remember_queue(DL, ItemId(0x100_0000));
    let command = Command::SetQueueLimits {
        download: QueueLimit::max_limit_only(DL, Bps(450_000_000)),
        upload: QueueLimit::max_limit_only(UL, Bps(38_000_000)),
    };
    let mut call = RestCall::new(command, &ids);
    let request = call.poll_request().expect("request");
    let mut wire = Vec::new();
    let auth = BasicAuth { user: "wanctl", password: "pw-secret" };
    request.http("192.0.2.1:8080", Some(auth)).write(&mut wire).expect("valid");
    let wire = String::from_utf8(wire).expect("ascii");
    assert!(
        wire.starts_with("PATCH /rest/queue/tree/*1000000 HTTP/1.1\r\nHost: 192.0.2.1:8080\r\n"),
        "{wire}"
    );
    assert!(wire.contains(
        "\r\nContent-Type: application/json\r\nContent-Length: 25\r\n\r\n{\"max-limit\":\"450000000\"}"
    ));
    assert!(wire.contains("Authorization: Basic d2FuY3RsOnB3LXNlY3JldA==\r\n"));
    assert!(!wire.contains("pw-secret"));
}

// ------------------------------------------------------------------------------------------
// CLI output
// ------------------------------------------------------------------------------------------

#[test]
fn cli_queue_stats_read_by_field_name_wrapped_or_wide() {
    let want = vec![as_console_stats(download_stats()), as_console_stats(upload_stats())];
    for path in ["cli/queue-tree-print-stats.txt", "cli/queue-tree-print-stats.wide.txt"] {
        assert_eq!(routeros::parse_queue_cli(text(path)), want, "{path}");
        assert_eq!(routeros::parse_queue_cli(&crlf(text(path))), want, "{path} with CRLF");
    }
    // Vendor output: `queued-packets=0` precedes `packets=355`; keyed parsing is not fooled.
    let vendor = routeros::parse_queue_cli(text("cli/queue-tree-print-stats.vendor-example.txt"));
    assert_eq!(
        vendor,
        [QueueStats {
            name: Some("Limiting-Youtube".into()),
            rate: Some(Bps(0)),
            packets: Some(355),
            bytes: Some(67_887),
            dropped: Some(0),
            queued_packets: Some(0),
            queued_bytes: Some(0),
            ..QueueStats::default()
        }]
    );
}

#[test]
fn cli_queue_reads_by_name() {
    let get = |name: &str, path: &str| {
        Command::GetQueueByName(name.into()).parse_cli_output(crlf(text(path)).as_bytes())
    };
    assert_eq!(
        get(UL, "cli/queue-tree-print-stats-where-name.txt"),
        Ok(Reply::Queue(Some(as_console_stats(upload_stats())))),
        "where keeps the global item number"
    );
    assert_eq!(
        get("NoSuchQueue", "cli/queue-tree-print-stats-where-name-nomatch.txt"),
        Ok(Reply::Queue(None))
    );
    // Plain print: configuration with a suffixed max-limit, no counters.
    let Ok(Reply::Queue(Some(q))) = get(DL, "cli/queue-tree-print-where-name.txt") else {
        panic!("no queue")
    };
    assert_eq!(
        q,
        QueueStats {
            name: Some(DL.into()),
            queue_type: Some("cake-down".into()),
            max_limit: Some(Bps(940_000_000)),
            comment: Some("wanctl: download shaper".into()),
            ..QueueStats::default()
        }
    );
}

#[test]
fn cli_silent_success() {
    let set = Command::SetQueueLimits {
        download: QueueLimit::max_limit_only(DL, Bps(450_000_000)),
        upload: QueueLimit::max_limit_only(UL, Bps(38_000_000)),
    };
    assert_eq!(
        set.parse_cli_output(fixture("cli/queue-tree-set-success.txt")),
        Ok(Reply::QueueLimitsSet { download: None, upload: None })
    );
    let enable = Command::SetMangleDisabled { comment: STEER.into(), disabled: false };
    assert_eq!(
        enable.parse_cli_output(fixture("cli/mangle-enable-success.txt")),
        Ok(Reply::MangleSet(vec![]))
    );
}

#[test]
fn cli_mangle_status_from_the_flag_column() {
    let get = Command::GetMangleByComment(STEER.into());
    for (path, disabled) in [
        ("cli/mangle-print-where-comment.disabled.txt", true),
        ("cli/mangle-print-where-comment.enabled.txt", false),
    ] {
        let want = Reply::Mangle(vec![MangleRule {
            id: None,
            comment: Some(STEER.into()),
            disabled,
            dynamic: false,
            invalid: false,
        }]);
        assert_eq!(get.parse_cli_output(fixture(path)), Ok(want.clone()), "{path}");
        assert_eq!(get.parse_cli_output(crlf(text(path)).as_bytes()), Ok(want), "{path} CRLF");
    }

    // Verbatim 7.23.2: upper-case legend, `I` flag, a second `;;;` line with the reason.
    let path = "cli/mangle-print.7.23-invalid-rule.verbatim.txt";
    let rules = routeros::parse_mangle_cli(text(path));
    let rule = |invalid| MangleRule {
        id: None,
        comment: Some("infora-lb".into()),
        disabled: false,
        dynamic: false,
        invalid,
    };
    assert_eq!(rules, [rule(true), rule(false)]);
    let records = routeros::parse_cli_records(text(path));
    assert_eq!(records[0].number, 0);
    assert_eq!(
        records[0].comments[1],
        "in/out-interface matcher not possible when interface (ether1) is slave - use master instead (bridgeLocal)"
    );
    assert_eq!(records[0].get("in-interface"), Some("ether1"), "wrapped continuation lines joined");
    assert_eq!(records[1].get("new-connection-mark"), Some("WAN2_conn"));
    // Exact comment match: the ADAPTIVE rule's comment does not match here.
    assert_eq!(get.parse_cli_output(fixture(path)), Ok(Reply::Mangle(vec![])));
}

#[test]
fn cli_errors_on_stdout_are_classified() {
    use ErrorKind::*;
    let cases: &[(&str, ErrorKind, &str)] = &[
        ("bad-command-name.txt", NoSuchCommand, "bad command name sett (line 1 column 13)"),
        ("expected-end-of-command.txt", UnknownParameter, "expected end of command (line 1 column 46)"),
        ("input-does-not-match-queue.txt", InvalidValue, "input does not match any value of queue"),
        ("invalid-value-max-limit.txt", InvalidValue, "invalid value for argument max-limit"),
        ("no-such-item.txt", NotFound, "no such item"),
        ("syntax-error.txt", Syntax, "syntax error (line 1 column 17)"),
    ];
    let listed = FIXTURES.iter().filter(|(p, _)| p.starts_with("cli/errors/")).count();
    assert_eq!(cases.len(), listed, "every CLI error fixture has a row");
    let set = Command::SetQueueLimits {
        download: QueueLimit::max_limit_only(DL, Bps(1)),
        upload: QueueLimit::max_limit_only(UL, Bps(1)),
    };
    for (name, kind, message) in cases {
        let path = format!("cli/errors/{name}");
        let want = RouterOsError { status: None, kind: *kind, message: (*message).into() };
        assert_eq!(set.parse_cli_output(crlf(text(&path)).as_bytes()), Err(want.clone()), "{name} after set");
        assert_eq!(
            Command::GetQueueByName(DL.into()).parse_cli_output(fixture(&path)),
            Err(want.clone()),
            "{name} after print"
        );
        assert_eq!(want.to_string(), format!("routeros: {message}"));
    }
    // Unknown text after a command that should be silent is an error, not success.
    let e = set.parse_cli_output(b"something odd\r\n").expect_err("not silent");
    assert_eq!((e.kind, e.fault()), (UnrecognizedOutput, Fault::Protocol));
}

// ------------------------------------------------------------------------------------------
// CLI lines
// ------------------------------------------------------------------------------------------

#[test]
fn cli_lines_are_the_original_text() {
    let set = Command::SetQueueLimits {
        download: QueueLimit::with_cake_type(DL, Direction::Download, "WAN1", Bps(450_000_000)),
        upload: QueueLimit::with_cake_type(UL, Direction::Upload, "WAN1", Bps(38_000_000)),
    };
    assert_eq!(
        set.cli_line().as_deref(),
        Ok("/queue tree set [find name=\"WAN-Download-1\"] queue=cake-down-wan1 max-limit=450000000; \
            /queue tree set [find name=\"WAN-Upload-1\"] queue=cake-up-wan1 max-limit=38000000")
    );
    // The fixture README's command for queue-tree-set-success.txt.
    let limit_only = Command::SetQueueLimits {
        download: QueueLimit::max_limit_only(DL, Bps(450_000_000)),
        upload: QueueLimit::max_limit_only(UL, Bps(38_000_000)),
    };
    let line = limit_only.cli_line().expect("valid");
    assert_eq!(
        line.split("; ").next(),
        Some("/queue tree set [find name=\"WAN-Download-1\"] max-limit=450000000")
    );

    assert_eq!(
        Command::GetQueueByName(DL.into()).cli_line().as_deref(),
        Ok("/queue/tree print stats detail where name=\"WAN-Download-1\"")
    );
    assert_eq!(
        Command::GetQueueById(ItemId(0x100_0000)).cli_line().as_deref(),
        Ok("/queue/tree print stats detail where .id=*1000000")
    );
    // The README's command for mangle-enable-success.txt (exact comment, not the regex `~`).
    assert_eq!(
        Command::SetMangleDisabled { comment: STEER.into(), disabled: false }.cli_line().as_deref(),
        Ok("/ip firewall mangle enable [find comment=\"ADAPTIVE: steer LATENCY_SENSITIVE to WAN2\"]")
    );
    assert_eq!(
        Command::SetMangleDisabled { comment: STEER.into(), disabled: true }.cli_line().as_deref(),
        Ok("/ip firewall mangle disable [find comment=\"ADAPTIVE: steer LATENCY_SENSITIVE to WAN2\"]")
    );
    assert_eq!(
        Command::GetMangleByComment(STEER.into()).cli_line().as_deref(),
        Ok("/ip firewall mangle print where comment=\"ADAPTIVE: steer LATENCY_SENSITIVE to WAN2\"")
    );
    assert_eq!(Command::Probe.cli_line().as_deref(), Ok("/system identity print"));
    assert_eq!(
        Command::Probe.parse_cli_output(b"  name: MikroTik\r\n"),
        Ok(Reply::Alive { identity: Some("MikroTik".into()) })
    );
}
