use serde_json::Value;

use super::*;
use crate::rng::Rng;
use crate::wire::http::Method;

const DL: &str = "WAN-Download-1";
const UL: &str = "WAN-Upload-1";
const STEER: &str = "ADAPTIVE: steer LATENCY_SENSITIVE to WAN2";
const QUEUE_BY_NAME: &str = include_str!("../../../tests/fixtures/routeros/rest/queue-tree-get-by-name.json");
const QUEUE_LIST: &str = include_str!("../../../tests/fixtures/routeros/rest/queue-tree-list.json");
const QUEUE_PATCHED: &str =
    include_str!("../../../tests/fixtures/routeros/rest/queue-tree-patch-max-limit.response.json");
const MANGLE_LIST: &str = include_str!("../../../tests/fixtures/routeros/rest/mangle-list.json");
const MANGLE_PATCHED: &str =
    include_str!("../../../tests/fixtures/routeros/rest/mangle-patch-enable.response.json");
const NOT_FOUND: &str = include_str!("../../../tests/fixtures/routeros/rest/errors/404-not-found.json");

fn limits() -> Command {
    Command::SetQueueLimits {
        download: QueueLimit::with_cake_type(DL, Direction::Download, "WAN1", Bps(450_000_000)),
        upload: QueueLimit::with_cake_type(UL, Direction::Upload, "WAN1", Bps(38_000_000)),
    }
}

fn upload_by_name() -> String {
    let list: Vec<Value> = serde_json::from_str(QUEUE_LIST).expect("fixture");
    serde_json::to_string(&vec![list[1].clone()]).expect("json")
}

/// Runs a call against scripted replies; returns the requests and the outcome.
fn run(
    command: Command,
    ids: &mut IdCache,
    replies: &[(u16, &str)],
) -> (Vec<RestRequest>, Result<Reply, RouterOsError>) {
    let mut call = RestCall::new(command, ids);
    let mut sent = Vec::new();
    for (status, body) in replies {
        let req = call.poll_request().expect("a request is due");
        assert_eq!(call.poll_request(), None, "one request at a time");
        sent.push(req);
        match call.handle_response(*status, body.as_bytes(), ids) {
            Ok(None) => {}
            Ok(Some(reply)) => {
                assert!(call.is_done() && call.poll_request().is_none());
                return (sent, Ok(reply));
            }
            Err(e) => return (sent, Err(e)),
        }
    }
    panic!("call not finished after {} replies: {sent:?}", replies.len());
}

fn paths(reqs: &[RestRequest]) -> Vec<String> {
    reqs.iter().map(|r| format!("{} {}", r.method, r.path)).collect()
}

#[test]
fn list_queue_stats_is_one_get_with_a_proplist_and_learns_ids() {
    let mut ids = IdCache::new();
    let (sent, reply) = run(Command::ListQueueStats, &mut ids, &[(200, QUEUE_LIST)]);
    assert_eq!(
        paths(&sent),
        [
            "GET /rest/queue/tree?.proplist=name,max-limit,rate,bytes,packets,dropped,queued-bytes,queued-packets"
        ]
    );
    let Ok(Reply::Queues(items)) = reply else { panic!("{reply:?}") };
    let dl = items.iter().find(|q| q.name.as_deref() == Some(DL)).expect("download queue");
    assert_eq!((dl.bytes, dl.dropped, dl.queued_bytes), (Some(272_603_902_153), Some(48_213), Some(15_140)));
    assert_eq!((ids.queue(DL), ids.queue(UL)), (Some(ItemId(0x1000000)), Some(ItemId(0x1000001))));
    // A proplist reply (only the asked-for fields) decodes too.
    let (_, reply) =
        run(Command::ListQueueStats, &mut ids, &[(200, r#"[{".id":"*7","name":"q","bytes":"12"}]"#)]);
    let Ok(Reply::Queues(items)) = reply else { panic!("{reply:?}") };
    assert_eq!((items[0].bytes, items[0].dropped), (Some(12), None));
}

#[test]
fn list_queue_stats_over_the_console_parses_every_item_of_print_stats() {
    let cmd = Command::ListQueueStats;
    assert_eq!(cmd.cli_line().as_deref(), Ok("/queue/tree print stats"));
    let text = include_str!("../../../tests/fixtures/routeros/cli/queue-tree-print-stats.txt");
    let Ok(Reply::Queues(items)) = cmd.parse_cli_output(text.as_bytes()) else { panic!() };
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].name.as_deref(), Some(DL));
    assert_eq!((items[0].bytes, items[0].queued_packets), (Some(272_603_902_153), Some(10)));
    assert_eq!((items[1].name.as_deref(), items[1].bytes), (Some(UL), Some(31_977_410_982)));
    assert!(cmd.parse_cli_output(b"bad command name print (line 1 column 13)\r\n").is_err());
}

#[test]
fn set_queue_limits_looks_up_then_patches_and_caches_ids() {
    let mut ids = IdCache::new();
    let ul = upload_by_name();
    let (sent, reply) =
        run(limits(), &mut ids, &[(200, QUEUE_BY_NAME), (200, QUEUE_PATCHED), (200, &ul), (200, "")]);
    assert_eq!(
        paths(&sent),
        [
            "GET /rest/queue/tree?name=WAN-Download-1",
            "PATCH /rest/queue/tree/*1000000",
            "GET /rest/queue/tree?name=WAN-Upload-1",
            "PATCH /rest/queue/tree/*1000001",
        ]
    );
    assert_eq!(sent[1].body.as_deref(), Some(&br#"{"max-limit":"450000000","queue":"cake-down-wan1"}"#[..]));
    assert_eq!(sent[3].body.as_deref(), Some(&br#"{"max-limit":"38000000","queue":"cake-up-wan1"}"#[..]));
    let Ok(Reply::QueueLimitsSet { download: Some(dl), upload: None }) = reply else { panic!("{reply:?}") };
    assert_eq!(dl.max_limit, Some(Bps(450_000_000)));
    assert_eq!((ids.queue(DL), ids.queue(UL)), (Some(ItemId(0x1000000)), Some(ItemId(0x1000001))));

    // Second change: ids cached, two PATCHes only.
    let (sent, reply) = run(limits(), &mut ids, &[(200, QUEUE_PATCHED), (200, QUEUE_PATCHED)]);
    assert_eq!(paths(&sent), ["PATCH /rest/queue/tree/*1000000", "PATCH /rest/queue/tree/*1000001"]);
    assert!(reply.is_ok());
}

#[test]
fn stale_cached_id_is_looked_up_again_once() {
    let mut ids = IdCache::new();
    ids.remember_queue(DL, ItemId(0x99));
    ids.remember_queue(UL, ItemId(0x1000001));
    let (sent, reply) = run(
        limits(),
        &mut ids,
        &[(404, NOT_FOUND), (200, QUEUE_BY_NAME), (200, QUEUE_PATCHED), (200, QUEUE_PATCHED)],
    );
    assert_eq!(
        paths(&sent),
        [
            "PATCH /rest/queue/tree/*99",
            "GET /rest/queue/tree?name=WAN-Download-1",
            "PATCH /rest/queue/tree/*1000000",
            "PATCH /rest/queue/tree/*1000001",
        ]
    );
    assert!(reply.is_ok());
    assert_eq!(ids.queue(DL), Some(ItemId(0x1000000)));

    // A 404 on a freshly looked-up id is an error, not a loop.
    let mut ids = IdCache::new();
    let (_, reply) = run(limits(), &mut ids, &[(200, QUEUE_BY_NAME), (404, NOT_FOUND)]);
    assert_eq!(reply.map_err(|e| e.kind), Err(ErrorKind::NotFound));
}

#[test]
fn missing_queue_is_not_found() {
    let (sent, reply) = run(limits(), &mut IdCache::new(), &[(200, "[]")]);
    assert_eq!(sent.len(), 1);
    let e = reply.expect_err("no such queue");
    assert_eq!((e.kind, e.fault()), (ErrorKind::NotFound, Fault::Rejected));
    assert!(e.message.contains(DL), "{e}");
}

#[test]
fn mangle_switch_filters_client_side_and_skips_rules_already_set() {
    let enable = Command::SetMangleDisabled { comment: STEER.into(), disabled: false };
    let (sent, reply) = run(enable, &mut IdCache::new(), &[(200, MANGLE_LIST), (200, MANGLE_PATCHED)]);
    assert_eq!(paths(&sent), ["GET /rest/ip/firewall/mangle", "PATCH /rest/ip/firewall/mangle/*5"]);
    assert_eq!(sent[1].body.as_deref(), Some(&br#"{"disabled":"false"}"#[..]));
    let Ok(Reply::MangleSet(rules)) = reply else { panic!("{reply:?}") };
    assert_eq!(rules.len(), 1);
    assert!(!rules[0].disabled);

    // Disabling a rule that is already disabled writes nothing.
    let disable = Command::SetMangleDisabled { comment: STEER.into(), disabled: true };
    let (sent, reply) = run(disable, &mut IdCache::new(), &[(200, MANGLE_LIST)]);
    assert_eq!(sent.len(), 1);
    assert!(matches!(reply, Ok(Reply::MangleSet(r)) if r.len() == 1 && r[0].disabled));

    // A comment prefix does not match (exact, not regex).
    let prefix = Command::SetMangleDisabled { comment: "ADAPTIVE".into(), disabled: false };
    let (_, reply) = run(prefix, &mut IdCache::new(), &[(200, MANGLE_LIST)]);
    assert_eq!(reply.map_err(|e| e.kind), Err(ErrorKind::NotFound));
}

#[test]
fn errors_end_the_call_with_their_fault() {
    let cases: &[(&str, u16, &str, ErrorKind, Fault)] = &[
        (
            "unauthorized",
            401,
            r#"{"error":401,"message":"Unauthorized"}"#,
            ErrorKind::Unauthorized,
            Fault::Auth,
        ),
        ("html_403", 403, "<html><body>Forbidden</body></html>", ErrorKind::Forbidden, Fault::Auth),
        ("html_200", 200, "<html>portal</html>", ErrorKind::NotJson, Fault::Protocol),
        ("redirect", 302, "", ErrorKind::UnexpectedStatus, Fault::Protocol),
        ("bad_gateway", 502, "", ErrorKind::ServerError, Fault::Transport),
        (
            "session_closed",
            400,
            r#"{"detail":"Session closed","error":400,"message":"Bad Request"}"#,
            ErrorKind::Timeout,
            Fault::Transport,
        ),
        ("not_an_array", 200, r#""text""#, ErrorKind::BadReply, Fault::Protocol),
    ];
    for (name, status, body, kind, fault) in cases {
        let (_, reply) = run(Command::GetQueueByName(DL.into()), &mut IdCache::new(), &[(*status, body)]);
        let e = reply.expect_err(name);
        assert_eq!((e.kind, e.fault(), e.status), (*kind, *fault, Some(*status)), "{name}: {e}");
    }
}

#[test]
fn get_by_id_404_is_none_and_probe_reads_identity() {
    let (sent, reply) = run(Command::GetQueueById(ItemId(0x1A)), &mut IdCache::new(), &[(404, NOT_FOUND)]);
    assert_eq!(paths(&sent), ["GET /rest/queue/tree/*1A"]);
    assert_eq!(reply, Ok(Reply::Queue(None)));
    for body in [r#"{"name":"MikroTik"}"#, r#"[{"name":"MikroTik"}]"#] {
        let (sent, reply) = run(Command::Probe, &mut IdCache::new(), &[(200, body)]);
        assert_eq!(paths(&sent), ["GET /rest/system/identity"]);
        assert_eq!(reply, Ok(Reply::Alive { identity: Some("MikroTik".into()) }));
    }
}

#[test]
fn print_reads_menus_over_rest_and_console() {
    let mut ids = IdCache::new();
    // The queue-type fixture (an array) and /system resource (a bare object).
    let cmd = Command::Print { menu: PrintMenu::QueueType, name: Some("cake-down".into()) };
    let mut call = RestCall::new(cmd.clone(), &ids);
    let req = call.poll_request().unwrap();
    assert_eq!((req.method, req.path.as_str()), (Method::Get, "/rest/queue/type?name=cake-down"));
    let body = include_bytes!("../../../tests/fixtures/routeros/rest/queue-type-cake-get-by-name.json");
    let Ok(Some(Reply::Items(items))) = call.handle_response(200, body, &mut ids) else { panic!() };
    assert_eq!(items[0].get("kind").map(String::as_str), Some("cake"));
    assert_eq!(items[0].get("cake-bandwidth").map(String::as_str), Some("0"));
    let res = Command::Print { menu: PrintMenu::SystemResource, name: None };
    let mut call = RestCall::new(res.clone(), &ids);
    assert_eq!(call.poll_request().unwrap().path, "/rest/system/resource");
    let Ok(Some(Reply::Items(items))) =
        call.handle_response(200, br#"{"version":"7.16.2 (stable)","cpu-load":"3"}"#, &mut ids)
    else {
        panic!()
    };
    assert_eq!(items[0].get("version").map(String::as_str), Some("7.16.2 (stable)"));
    // Console forms.
    assert_eq!(cmd.cli_line().unwrap(), "/queue type print detail where name=\"cake-down\"");
    let out =
        b"Flags: * - default\n 0   name=\"cake-down\" kind=cake cake-bandwidth=0 cake-diffserv=diffserv4\n";
    let Ok(Reply::Items(items)) = cmd.parse_cli_output(out) else { panic!() };
    assert_eq!(items[0].get("kind").map(String::as_str), Some("cake"));
    assert_eq!(res.cli_line().unwrap(), "/system resource print");
    let out = b"                   uptime: 1w2d\n                  version: 7.16.2 (stable)\n               board-name: RB5009\n";
    let Ok(Reply::Items(items)) = res.parse_cli_output(out) else { panic!() };
    assert_eq!(items[0].get("version").map(String::as_str), Some("7.16.2 (stable)"));
    let bad = cmd.parse_cli_output(b"bad command name type (line 1 column 8)\n");
    assert!(bad.is_err());
}

#[test]
fn coloured_console_output_is_read_like_plain() {
    let plain =
        "Flags: X - disabled\n 4 X  ;;; ADAPTIVE: steer LATENCY_SENSITIVE to WAN2\n      chain=prerouting\n";
    let coloured = "\u{1b}[m\u{1b}[32mFlags\u{1b}[m: X - disabled\r\n 4 \u{1b}[1;31mX\u{1b}[0m  ;;; ADAPTIVE: steer LATENCY_SENSITIVE to WAN2\r\n      chain=prerouting\r\n";
    let get = Command::GetMangleByComment(STEER.into());
    let want = get.parse_cli_output(plain.as_bytes());
    assert!(matches!(&want, Ok(Reply::Mangle(r)) if r.len() == 1 && r[0].disabled), "{want:?}");
    assert_eq!(get.parse_cli_output(coloured.as_bytes()), want);
}

#[test]
fn rates_parse_every_documented_form() {
    let cases: &[(&str, Option<u64>)] = &[
        ("940000000", Some(940_000_000)),
        ("940M", Some(940_000_000)),
        ("450k", Some(450_000)),
        ("450K", Some(450_000)),
        ("1G", Some(1_000_000_000)),
        ("7.5M", Some(7_500_000)),
        ("10Mbps", Some(10_000_000)),
        ("0", Some(0)),
        ("", None),
        ("M", None),
        ("1.M", None),
        (".5M", None),
        ("0/0", None),
        ("fast", None),
        ("-1", None),
        ("99999999999999999999", None),
        ("18446744073709551615G", None),
    ];
    for (text, want) in cases {
        assert_eq!(parse_rate(text), want.map(Bps), "{text:?}");
    }
    assert_eq!(rate_text(Bps(450_000_000)), "450000000");
}

#[test]
fn item_ids_round_trip() {
    for (text, id) in [("*0", 0), ("*1A", 0x1A), ("*1000000", 0x1000000), ("*FFFFFFFA", 0xFFFF_FFFA)] {
        assert_eq!(ItemId::parse(text), Some(ItemId(id)));
        assert_eq!(ItemId(id).to_string(), text);
    }
    assert_eq!(ItemId::parse("*1a"), Some(ItemId(0x1A)));
    for bad in ["", "*", "1A", "*G", "*100000000", "%2A1"] {
        assert_eq!(ItemId::parse(bad), None, "{bad:?}");
    }
}

#[test]
fn cli_quoting_refuses_control_characters_and_escapes_specials() {
    assert_eq!(quote(r#"a"b\c$d?e"#), Ok(r#""a\"b\\c\$d\?e""#.to_owned()));
    for bad in ["a\nb", "a\rb", "a\0b", "\u{1b}", "\u{7f}", "\u{85}"] {
        assert_eq!(quote(bad), Err(EncodeError::ControlCharacter), "{bad:?}");
    }
    let evil = Command::GetQueueByName("x\"]; /system reboot; :put [\"".into());
    assert_eq!(
        evil.cli_line(),
        Ok(r#"/queue/tree print stats detail where name="x\"]; /system reboot; :put [\"""#.to_owned())
    );
    assert_eq!(Command::GetQueueByName(String::new()).cli_line(), Err(EncodeError::Empty));
    assert_eq!(Command::GetMangleByComment("a\nb".into()).cli_line(), Err(EncodeError::ControlCharacter));
    // A queue type that is not a plain word is quoted, not emitted bare.
    let odd = QueueLimit { name: "q".into(), queue_type: Some("a b$".into()), max_limit: Bps(1) };
    assert_eq!(
        set_queue_line(&odd),
        Ok(r#"/queue tree set [find name="q"] queue="a b\$" max-limit=1"#.to_owned())
    );
}

#[test]
fn property_cli_quote_round_trips_through_the_print_tokenizer() {
    let mut rng = Rng::new(0xc11_0000);
    let alphabet: Vec<char> = (0x20u8..0x7f).map(char::from).chain(['é', 'ß', '€']).collect();
    for case in 0..2000 {
        let len = rng.next_u32() as usize % 24;
        let value: String = (0..len).map(|_| alphabet[rng.next_u32() as usize % alphabet.len()]).collect();
        let quoted = quote(&value).expect("printable");
        let props = tokenize_properties(&format!("a=1 name={quoted} b=2"));
        assert_eq!(
            props.get(1).map(|(k, v)| (k.as_str(), v.as_str())),
            Some(("name", value.as_str())),
            "case {case}: {quoted}"
        );
        assert_eq!(props.len(), 3, "case {case}: {quoted}");
    }
}

#[test]
fn property_percent_encoding_is_reversible_and_safe() {
    let mut rng = Rng::new(0x9e7c);
    for _ in 0..2000 {
        let len = rng.next_u32() as usize % 32;
        let value: String = (0..len).map(|_| char::from((rng.next_u32() % 0x7f) as u8)).collect();
        let encoded = percent_encode(&value);
        assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)), "{encoded}");
        // Decode and compare.
        let mut decoded = Vec::new();
        let bytes = encoded.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
                decoded.push(u8::from_str_radix(hex, 16).expect("hex"));
                i += 3;
            } else {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
        assert_eq!(decoded, value.as_bytes());
    }
}

#[test]
fn property_decoders_never_panic() {
    let mut rng = Rng::new(0xdec0de);
    let seeds = [QUEUE_LIST, MANGLE_LIST, "Flags: X - disabled\n 0 X ;;; c\n   name=\"a\\\"b\" packets=1\n"];
    for case in 0..2000 {
        let mut bytes = seeds[case % seeds.len()].as_bytes().to_vec();
        for _ in 0..1 + rng.next_u32() % 6 {
            let at = rng.next_u32() as usize % (bytes.len() + 1);
            match rng.next_u32() % 3 {
                0 if at < bytes.len() => bytes[at] = rng.next_u32() as u8,
                1 if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => {
                    let specials = b"\"\\=;*\x1b \n0X";
                    bytes.insert(at, specials[rng.next_u32() as usize % specials.len()]);
                }
            }
        }
        let _ = parse_queue_json(&bytes);
        let _ = parse_mangle_json(&bytes);
        let _ = parse_error_body(400, &bytes);
        for command in [
            limits(),
            Command::GetQueueByName(DL.into()),
            Command::GetMangleByComment(STEER.into()),
            Command::Probe,
        ] {
            let _ = command.parse_cli_output(&bytes);
            let mut call = RestCall::new(command, &IdCache::new());
            let _ = call.poll_request();
            let _ = call.handle_response(200, &bytes, &mut IdCache::new());
        }
    }
}
