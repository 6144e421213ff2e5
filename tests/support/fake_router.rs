//! `FakeRouterOs`: a RouterOS 7 REST server on `127.0.0.1:<ephemeral>` (plain HTTP or
//! HTTPS) for integration tests, and [`FakeSsh`], the harness around the fake `ssh` client
//! script (`fake_ssh.py`) that plays the console side.
//!
//! ```text
//!   test thread                        Shared { knobs, Model, log }   server threads
//!   FakeRouterOs::start() ─────────────────────────────────────────► accept loop
//!   set_fault / set_latency / …  ──► knobs ◄── read per request ──┐    │ (127.0.0.1:port)
//!   queue_max_limit / requests … ◄── Model, log ◄── written ──────┤    ▼
//!                                                                 └─ one thread per connection:
//!                                                                    read request → fault?
//!                                                                    → auth → Model::route
//!                                                                    → write reply (framing)
//! ```
//!
//! The model serves the captured fixtures in `tests/fixtures/routeros/rest/` (the contract,
//! see its README) and mutates them the way ROUTEROS.md describes RouterOS 7: every value a
//! string, keys sorted with `.id` first, `GET /rest/queue/tree?name=X` an array (`[]` when
//! nothing matches), `GET .../<id>` an object or 404, `PATCH` answering the whole updated
//! item, `max-limit` written as `450M` and read back as `450000000`, error bodies
//! `{"detail":..,"error":..,"message":..}` (the fixtures' bytes where a fixture exists),
//! `%2A` for `*` refused, 415 without `Content-Type: application/json` (§1.2–1.7, §6).
//!
//! Endpoints: `GET /rest/queue/tree` (filters such as `?name=`, `.proplist`), `GET`/`PATCH`/
//! `DELETE /rest/queue/tree/<.id or name>`, `POST /rest/queue/tree/set`; `GET
//! /rest/ip/firewall/mangle` (`?comment=`), `GET`/`PATCH`/`DELETE .../mangle/<.id>`, `POST
//! .../mangle/enable|disable|set` (`.id` may list several); `GET /rest/system/identity`,
//! `POST .../identity/set`; read-only `GET /rest/system/resource` (an object), `GET
//! /rest/user`, `/rest/user/group`, `/rest/queue/type` (`?name=`; knobs [`FakeRouterOs::set_version`],
//! [`FakeRouterOs::set_group_policy`], [`FakeRouterOs::set_queue_type_field`],
//! [`FakeRouterOs::remove_queue_type`]); `HEAD` → 501, `OPTIONS` → 503. Not modelled: `PUT` (add),
//! `POST .../print` with `.query`, other menus (400 `no such command or directory`).
//!
//! Use from a test:
//!
//! ```text
//! let router = FakeRouterOs::start();              // or ::builder().https(&cert).start()
//! // point the client at router.host() with fake_router::USER / PASSWORD
//! router.set_fault(Fault::Refuse);                 // connects refused … then Fault::Resume
//! router.fail_next(2, Fault::Status500);           // the next two requests fail
//! assert_eq!(router.queue_max_limit(QUEUE_DOWNLOAD), Some(450_000_000));
//! let log = router.requests();                     // method, path, body, connection, at
//!
//! let ssh = FakeSsh::new()?;                       // a private `ssh` with its own state
//! daemon.env("PATH", ssh.path_env()).envs(ssh.envs());
//! ssh.set_mode("die_after=2");                     // faults, read before each command
//! assert_eq!(ssh.queue_max_limit(QUEUE_DOWNLOAD), Some(450_000_000));
//! ```
//!
//! Faults ([`Fault`]) and knobs (latency, chunked framing, `Connection: close` after N
//! requests, idle timeout) take effect for the next request or connection. Everything is
//! bounded: the accept loop and every connection thread check the stop flag at least every
//! [`TICK`], sleeps are cut into ticks, writes time out after [`WRITE_TIMEOUT`], and `Drop`
//! stops the server, closes every connection and joins every thread.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::certs::{TempDir, TestCert};

/// How often every thread of the server checks its stop flag, at the latest.
pub const TICK: Duration = Duration::from_millis(20);
/// A reply write that makes no progress for this long gives up (the client stopped reading).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head or body the server reads.
pub const MAX_REQUEST: usize = 1024 * 1024;
/// How long `Resume` keeps trying to bind the old port again.
pub const REBIND_TIMEOUT: Duration = Duration::from_secs(3);

/// Default credentials of [`FakeRouterOs::start`].
pub const USER: &str = "wanctl";
/// Default password of [`FakeRouterOs::start`].
pub const PASSWORD: &str = "fake-router-secret";
/// `/system identity` name.
pub const IDENTITY: &str = "MikroTik";
/// The download queue in the fixtures (`.id` `*1000000`).
pub const QUEUE_DOWNLOAD: &str = "WAN-Download-1";
/// The upload queue in the fixtures (`.id` `*1000001`).
pub const QUEUE_UPLOAD: &str = "WAN-Upload-1";
/// The steering rule's comment in the fixtures (`.id` `*5`, disabled).
pub const STEERING_COMMENT: &str = "ADAPTIVE: steer LATENCY_SENSITIVE to WAN2";

/// The fixtures the server starts from and answers with.
pub mod fixture {
    macro_rules! rest {
        ($name:ident, $path:literal) => {
            #[doc = concat!("`tests/fixtures/routeros/rest/", $path, "`")]
            pub const $name: &str = include_str!(concat!("../fixtures/routeros/rest/", $path));
        };
    }
    rest!(QUEUE_TREE_LIST, "queue-tree-list.json");
    rest!(QUEUE_TYPE_CAKE, "queue-type-cake-get-by-name.json");
    rest!(MANGLE_LIST, "mangle-list.json");
    rest!(UNAUTHORIZED_401, "errors/401-unauthorized.json");
    rest!(NOT_FOUND_404, "errors/404-not-found.json");
    rest!(INPUT_DOES_NOT_MATCH_QUEUE_400, "errors/400-input-does-not-match-queue.json");
    rest!(INVALID_VALUE_MAX_LIMIT_400, "errors/400-invalid-value-max-limit.json");
    rest!(NO_SUCH_COMMAND_400, "errors/400-no-such-command.json");
    rest!(NO_SUCH_COMMAND_PREFIX_400, "errors/400-no-such-command-prefix.json");
    rest!(NO_SUCH_COMMAND_OR_DIRECTORY_400, "errors/400-no-such-command-or-directory.json");
    rest!(FAILED_TO_PARSE_JSON_400, "errors/400-failed-to-parse-json.json");
    rest!(SESSION_CLOSED_400, "errors/400-session-closed.json");
}

/// Bytes [`Fault::Garbage`] sends instead of a response: an SSH banner and binary noise,
/// as when the port belongs to something else.
pub const GARBAGE: &[u8] = b"SSH-2.0-ROSSSH\r\n\x00\x01\x02\xff\xfe garbage \x7f\r\n\r\n";
/// Body of [`Fault::Status500`]: a 5xx without `detail` (classified as a server error).
pub const BODY_500: &str = r#"{"error":500,"message":"Internal Server Error"}"#;
/// Body of [`Fault::Html403`] (`rest-plain`/`rest-secure` off, ROUTEROS.md §1.1).
pub const BODY_HTML_403: &str = "<html><head><title>Error 403 : Forbidden</title></head>\
<body><h1>Error 403 : Forbidden</h1></body></html>";

/// A fault the server injects. Set with [`FakeRouterOs::set_fault`] (until changed) or
/// [`FakeRouterOs::fail_next`] (for the next `n` requests only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Normal service.
    None,
    /// Close the listening socket (connects are refused) and every open connection.
    Refuse,
    /// Listen again on the same port and serve normally (the same as `None`).
    Resume,
    /// Accept and read the request, never answer (the connection stays open, silent).
    AcceptThenStall,
    /// Process the request, send the first half of the response, then close.
    CloseMidResponse,
    /// Answer `500` ([`BODY_500`]) without processing the request.
    Status500,
    /// Answer `401` (the fixture, with `WWW-Authenticate`) whatever the credentials.
    Status401,
    /// Answer `400 Session closed` (the 60 s router timeout) without processing.
    SessionClosed,
    /// Answer an HTML `403 Forbidden` page without processing.
    Html403,
    /// Send [`GARBAGE`] instead of a response, then close.
    Garbage,
    /// Process normally, but send the response one byte at a time with this delay between.
    Trickle(Duration),
    /// Process normally and frame the body with `Transfer-Encoding: chunked`.
    Chunked,
    /// The next `n` requests get `Status500`, then service is normal again.
    FailNext(u32),
    /// Answer with a status line and then header lines without end (up to 8 MiB, or until
    /// the client closes).
    HugeHeaders,
    /// Answer `200` with `Transfer-Encoding: chunked` and chunks without end (up to 64 MiB,
    /// or until the client closes).
    EndlessChunked,
}

/// One request as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// Request number over the server's life, from 1 (not reset by `clear_requests`).
    pub id: u64,
    /// Method token (`GET`, `PATCH`, ...).
    pub method: String,
    /// Request target as sent (path and query, not decoded).
    pub path: String,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Number of the connection it came on (1 for the first accepted connection).
    pub connection: u64,
    /// When its head and body had been read.
    pub at: Instant,
    /// Status of the reply, once written; `None` for stalls, garbage and closes.
    pub status: Option<u16>,
}

impl RequestRecord {
    /// The body as text (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

type Item = BTreeMap<String, String>;

/// Knobs the connection threads read per request.
#[derive(Debug)]
struct Knobs {
    fault: Fault,
    /// Fault for the next `n` requests, before `fault`.
    next: Option<(u32, Fault)>,
    latency: Duration,
    chunked: bool,
    close_after: Option<u32>,
    idle_timeout: Option<Duration>,
    user: String,
    password: String,
}

#[derive(Debug)]
struct Shared {
    stop: AtomicBool,
    port: u16,
    listener: Mutex<Option<TcpListener>>,
    knobs: Mutex<Knobs>,
    model: Mutex<Model>,
    /// Held while a request is delayed and processed: RouterOS runs one user's requests one
    /// at a time, in arrival order (ROUTEROS.md §1.5).
    serial: Mutex<()>,
    log: Mutex<Vec<RequestRecord>>,
    accepted: AtomicU64,
    /// Requests received (numbers [`RequestRecord::id`]).
    requests: AtomicU64,
    /// Clones of the open connections' sockets, to close them from outside.
    open: Mutex<Vec<(u64, TcpStream)>>,
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ServerConfig>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sleeps `span` in ticks; false if the server stopped meanwhile.
    fn sleep(&self, span: Duration) -> bool {
        let end = Instant::now() + span;
        loop {
            if self.stopped() {
                return false;
            }
            let now = Instant::now();
            if now >= end {
                return true;
            }
            thread::sleep((end - now).min(TICK));
        }
    }

    fn close_connections(&self) {
        for (_, s) in lock(&self.open).iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn take_request_fault(&self) -> Fault {
        let mut k = lock(&self.knobs);
        if let Some((n, fault)) = k.next.as_mut() {
            let fault = *fault;
            *n -= 1;
            if *n == 0 {
                k.next = None;
            }
            return fault;
        }
        k.fault
    }

    fn listen(&self) {
        let mut listener = lock(&self.listener);
        if listener.is_some() {
            return;
        }
        let deadline = Instant::now() + REBIND_TIMEOUT;
        loop {
            match TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(l) => {
                    l.set_nonblocking(true).expect("fake router: set listener non-blocking");
                    *listener = Some(l);
                    return;
                }
                Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                Err(e) => panic!("fake router: listen again on 127.0.0.1:{}: {e}", self.port),
            }
        }
    }
}

/// Settings for [`FakeRouterOs`] before it starts.
#[derive(Debug)]
pub struct FakeRouterBuilder {
    user: String,
    password: String,
    identity: String,
    queues: Vec<Item>,
    mangle: Vec<Item>,
    tls: Option<(Vec<u8>, Vec<u8>)>,
    tls13: bool,
}

impl Default for FakeRouterBuilder {
    fn default() -> Self {
        FakeRouterBuilder {
            user: USER.to_owned(),
            password: PASSWORD.to_owned(),
            identity: IDENTITY.to_owned(),
            queues: serde_json::from_str(fixture::QUEUE_TREE_LIST).expect("fixture: queue-tree-list.json"),
            mangle: serde_json::from_str(fixture::MANGLE_LIST).expect("fixture: mangle-list.json"),
            tls: None,
            tls13: false,
        }
    }
}

impl FakeRouterBuilder {
    /// The user and password Basic auth must carry.
    pub fn credentials(mut self, user: &str, password: &str) -> Self {
        self.user = user.to_owned();
        self.password = password.to_owned();
        self
    }

    /// `/system identity` name.
    pub fn identity(mut self, name: &str) -> Self {
        self.identity = name.to_owned();
        self
    }

    /// Start with no queues (add them with [`FakeRouterOs::add_queue`]).
    pub fn without_queues(mut self) -> Self {
        self.queues.clear();
        self
    }

    /// Serve HTTPS with this certificate, TLS 1.2 only: RouterOS `www-ssl` speaks TLS 1.0 to
    /// 1.2 (ROUTEROS.md §1.1), and rustls has no TLS below 1.2.
    pub fn https(mut self, cert: &TestCert) -> Self {
        self.tls = Some((cert.cert_der.clone(), cert.key_der.clone()));
        self
    }

    /// Also offer TLS 1.3 (not what RouterOS does; for checking the client does not care).
    pub fn allow_tls13(mut self) -> Self {
        self.tls13 = true;
        self
    }

    /// Binds `127.0.0.1:0` and starts serving.
    pub fn start(self) -> FakeRouterOs {
        #[cfg(feature = "tls")]
        let tls = self.tls.map(|(cert, key)| server_config(cert, key, self.tls13));
        #[cfg(not(feature = "tls"))]
        assert!(self.tls.is_none() && !self.tls13, "fake router: HTTPS needs the `tls` feature");
        let listener = TcpListener::bind("127.0.0.1:0").expect("fake router: bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("fake router: set listener non-blocking");
        let addr = listener.local_addr().expect("fake router: local address");
        let mut model = Model::new(self.queues, self.mangle, self.identity);
        model.user = self.user.clone();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            port: addr.port(),
            listener: Mutex::new(Some(listener)),
            knobs: Mutex::new(Knobs {
                fault: Fault::None,
                next: None,
                latency: Duration::ZERO,
                chunked: false,
                close_after: None,
                idle_timeout: None,
                user: self.user,
                password: self.password,
            }),
            model: Mutex::new(model),
            serial: Mutex::new(()),
            log: Mutex::new(Vec::new()),
            accepted: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            open: Mutex::new(Vec::new()),
            #[cfg(feature = "tls")]
            tls,
        });
        let for_thread = Arc::clone(&shared);
        let accept = thread::Builder::new()
            .name("fake-router-accept".into())
            .spawn(move || accept_loop(for_thread))
            .expect("fake router: spawn accept thread");
        FakeRouterOs { shared, addr, accept: Some(accept) }
    }
}

#[cfg(feature = "tls")]
pub fn server_config(cert: Vec<u8>, key: Vec<u8>, tls13: bool) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] =
        if tls13 { &[&rustls::version::TLS12, &rustls::version::TLS13] } else { &[&rustls::version::TLS12] };
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("fake router: TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        )
        .expect("fake router: TLS certificate and key");
    Arc::new(config)
}

/// The fake router. See the module doc.
#[derive(Debug)]
pub struct FakeRouterOs {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

impl FakeRouterOs {
    /// Settings before start.
    pub fn builder() -> FakeRouterBuilder {
        FakeRouterBuilder::default()
    }

    /// Plain HTTP, [`USER`]/[`PASSWORD`], the fixture queues and mangle rules.
    pub fn start() -> FakeRouterOs {
        FakeRouterOs::builder().start()
    }

    /// As [`start`](Self::start), over HTTPS with `cert`.
    pub fn start_https(cert: &TestCert) -> FakeRouterOs {
        FakeRouterOs::builder().https(cert).start()
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The listening port (the same after `Refuse`/`Resume`).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `Host` header value, `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Whether the server speaks HTTPS.
    pub fn is_https(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.shared.tls.is_some();
        #[cfg(not(feature = "tls"))]
        return false;
    }

    /// `http://127.0.0.1:<port>` or `https://…`.
    pub fn base_url(&self) -> String {
        format!("{}://{}", if self.is_https() { "https" } else { "http" }, self.addr)
    }

    /// The user Basic auth must carry.
    pub fn user(&self) -> String {
        lock(&self.shared.knobs).user.clone()
    }

    /// The password Basic auth must carry.
    pub fn password(&self) -> String {
        lock(&self.shared.knobs).password.clone()
    }

    /// Changes the accepted credentials (a password change on the router).
    pub fn set_credentials(&self, user: &str, password: &str) {
        let mut k = lock(&self.shared.knobs);
        k.user = user.to_owned();
        k.password = password.to_owned();
    }

    // --- faults and knobs -------------------------------------------------------------

    /// Sets the standing fault. `Refuse` closes the listener and every open connection at
    /// once; any other value listens again on the same port first if needed. `FailNext(n)`
    /// is [`fail_next`](Self::fail_next)`(n, Status500)` and leaves the standing fault.
    pub fn set_fault(&self, fault: Fault) {
        match fault {
            Fault::Refuse => {
                lock(&self.shared.knobs).fault = Fault::Refuse;
                lock(&self.shared.listener).take();
                self.shared.close_connections();
            }
            Fault::FailNext(n) => {
                self.shared.listen();
                self.fail_next(n, Fault::Status500);
            }
            Fault::Resume | Fault::None => {
                self.shared.listen();
                let mut k = lock(&self.shared.knobs);
                k.fault = Fault::None;
                k.next = None;
            }
            other => {
                self.shared.listen();
                lock(&self.shared.knobs).fault = other;
            }
        }
    }

    /// Listens again on the same port and serves normally (`set_fault(Fault::Resume)`).
    pub fn resume(&self) {
        self.set_fault(Fault::Resume);
    }

    /// The standing fault.
    pub fn fault(&self) -> Fault {
        lock(&self.shared.knobs).fault
    }

    /// The next `n` requests get `fault` (a request-level fault; `Refuse` here closes the
    /// connection without an answer), then the standing fault applies again.
    pub fn fail_next(&self, n: u32, fault: Fault) {
        let fault = match fault {
            Fault::FailNext(_) => Fault::Status500,
            other => other,
        };
        lock(&self.shared.knobs).next = if n == 0 { None } else { Some((n, fault)) };
    }

    /// Delay before each request is processed (requests queue behind it, one at a time).
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.shared.knobs).latency = latency;
    }

    /// Frame every reply with `Transfer-Encoding: chunked` (default: `Content-Length`).
    pub fn set_chunked(&self, chunked: bool) {
        lock(&self.shared.knobs).chunked = chunked;
    }

    /// Answer the `n`-th request of each connection with `Connection: close` and close it.
    pub fn set_close_after(&self, n: Option<u32>) {
        lock(&self.shared.knobs).close_after = n.filter(|n| *n > 0);
    }

    /// Close a connection that has been idle (between requests) this long.
    pub fn set_idle_timeout(&self, idle: Option<Duration>) {
        lock(&self.shared.knobs).idle_timeout = idle;
    }

    /// Closes every open connection now (the router dropping idle keep-alive connections).
    pub fn drop_connections(&self) {
        self.shared.close_connections();
    }

    /// A reboot: every open connection closes, queue items get new `.id`s and every counter
    /// starts again from 0 (ids are not stable across reboots, ROUTEROS.md §1.6).
    pub fn reboot(&self) {
        lock(&self.shared.model).reboot();
        self.shared.close_connections();
    }

    /// How much `packets` and `bytes` of a queue grow after each time it is read (default
    /// 100 and 150 000; counters keep increasing between reads, ROUTEROS.md §6).
    pub fn set_counter_step(&self, packets: u64, bytes: u64) {
        lock(&self.shared.model).counter_step = (packets, bytes);
    }

    // --- observation ------------------------------------------------------------------

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.log).clone()
    }

    /// How many requests were received.
    pub fn request_count(&self) -> usize {
        lock(&self.shared.log).len()
    }

    /// Forgets the request log (not the connection count).
    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// Waits (bounded by `timeout`) until at least `n` requests were received.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if self.request_count() >= n {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// TCP connections accepted so far.
    pub fn connections_accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections open right now.
    pub fn connections_open(&self) -> usize {
        lock(&self.shared.open).len()
    }

    // --- state ------------------------------------------------------------------------

    /// `max-limit` of queue `name` in bits/s (`0` = unlimited), as last applied.
    pub fn queue_max_limit(&self, name: &str) -> Option<u64> {
        self.queue_field(name, "max-limit").and_then(|v| v.parse().ok())
    }

    /// `queue` (the queue type) of queue `name`.
    pub fn queue_type(&self, name: &str) -> Option<String> {
        self.queue_field(name, "queue")
    }

    /// `.id` of queue `name`.
    pub fn queue_id(&self, name: &str) -> Option<String> {
        self.queue_field(name, ".id")
    }

    /// Any property of queue `name`, as the REST API shows it.
    pub fn queue_field(&self, name: &str, key: &str) -> Option<String> {
        let model = lock(&self.shared.model);
        model.queue_by_name(name).and_then(|q| q.get(key).cloned())
    }

    /// The whole item of queue `name`.
    pub fn queue(&self, name: &str) -> Option<BTreeMap<String, String>> {
        lock(&self.shared.model).queue_by_name(name).cloned()
    }

    /// Sets a property of queue `name` as the router would show it (a counter, `rate`,
    /// `dropped`, `queued-packets`, or a configuration value behind the client's back).
    /// Returns false if there is no such queue.
    pub fn set_queue_field(&self, name: &str, key: &str, value: &str) -> bool {
        let mut model = lock(&self.shared.model);
        match model.queues.iter_mut().find(|q| q.get("name").map(String::as_str) == Some(name)) {
            Some(q) => {
                q.insert(key.to_owned(), value.to_owned());
                true
            }
            None => false,
        }
    }

    /// Sets `max-limit` of queue `name` behind the client's back.
    pub fn set_queue_max_limit(&self, name: &str, bps: u64) -> bool {
        self.set_queue_field(name, "max-limit", &bps.to_string())
    }

    /// Adds a CAKE leaf `name` with queue type `queue_type` (added to the known types) and
    /// `max_limit`; returns its new `.id`.
    pub fn add_queue(&self, name: &str, queue_type: &str, max_limit: u64) -> String {
        let mut model = lock(&self.shared.model);
        model.add_queue_type(queue_type);
        model.add_queue(name, queue_type, max_limit)
    }

    /// Removes queue `name` (a later lookup by name gives `[]`, by id 404).
    pub fn remove_queue(&self, name: &str) -> bool {
        let mut model = lock(&self.shared.model);
        let before = model.queues.len();
        model.queues.retain(|q| q.get("name").map(String::as_str) != Some(name));
        model.queues.len() != before
    }

    /// Makes `queue=<name>` acceptable in writes. Known from the start: `default`,
    /// `default-small`, `cake-down`, `cake-up`; `cake-down-<x>` and `cake-up-<x>` (what
    /// wanctl writes) are always accepted.
    pub fn add_queue_type(&self, name: &str) {
        lock(&self.shared.model).add_queue_type(name);
    }

    /// `/system resource` `version` (default [`VERSION`]).
    pub fn set_version(&self, version: &str) {
        lock(&self.shared.model).version = version.to_owned();
    }

    /// `policy` of the fake user's group (default [`FULL_POLICY`]).
    pub fn set_group_policy(&self, policy: &str) {
        lock(&self.shared.model).group_policy = policy.to_owned();
    }

    /// Sets a property of queue type `name` as `/queue type` shows it (`kind`,
    /// `cake-bandwidth`).
    pub fn set_queue_type_field(&self, name: &str, key: &str, value: &str) {
        let mut model = lock(&self.shared.model);
        model.add_queue_type(name);
        model.type_fields.entry(name.to_owned()).or_default().insert(key.to_owned(), value.to_owned());
    }

    /// Removes queue type `name` (listing and writes no longer know it).
    pub fn remove_queue_type(&self, name: &str) {
        lock(&self.shared.model).removed_types.push(name.to_owned());
    }

    /// Whether the (first non-dynamic) mangle rule with exactly this comment is disabled;
    /// a rule without `disabled` is enabled (ROUTEROS.md §3).
    pub fn mangle_disabled(&self, comment: &str) -> Option<bool> {
        let model = lock(&self.shared.model);
        model.mangle_by_comment(comment).map(|r| r.get("disabled").map(String::as_str) == Some("true"))
    }

    /// Adds a mark-routing rule with `comment`; returns its `.id`.
    pub fn add_mangle_rule(&self, comment: &str, disabled: bool) -> String {
        lock(&self.shared.model).add_mangle(comment, disabled)
    }

    /// Sets `disabled` of the rules with exactly this comment behind the client's back.
    pub fn set_mangle_disabled(&self, comment: &str, disabled: bool) -> bool {
        let mut model = lock(&self.shared.model);
        let mut found = false;
        for r in model.mangle.iter_mut().filter(|r| r.get("comment").map(String::as_str) == Some(comment)) {
            r.insert("disabled".into(), bool_text(disabled).into());
            found = true;
        }
        found
    }

    /// `/system identity` name.
    pub fn identity(&self) -> String {
        lock(&self.shared.model).identity.clone()
    }

    /// The current `max-limit` of queue `name`: the rate a link model should shape to. A
    /// write takes effect the moment the router answers it (no apply delay).
    pub fn shaper_rate_bps(&self, name: &str) -> Option<u64> {
        self.queue_max_limit(name)
    }

    /// A cheap, cloneable, `Send` reader of [`shaper_rate_bps`](Self::shaper_rate_bps)`(name)`
    /// for a link-model thread.
    pub fn rate_handle(&self, name: &str) -> RateHandle {
        RateHandle { shared: Arc::clone(&self.shared), name: name.to_owned() }
    }
}

impl Drop for FakeRouterOs {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        lock(&self.shared.listener).take();
        self.shared.close_connections();
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// Reads a queue's current `max-limit` from another thread (see
/// [`FakeRouterOs::rate_handle`]). Keeps answering with the last state after the server
/// is dropped.
#[derive(Debug, Clone)]
pub struct RateHandle {
    shared: Arc<Shared>,
    name: String,
}

impl RateHandle {
    /// `max-limit` in bits/s, or `None` if the queue does not exist.
    pub fn bps(&self) -> Option<u64> {
        let model = lock(&self.shared.model);
        model.queue_by_name(&self.name).and_then(|q| q.get("max-limit")).and_then(|v| v.parse().ok())
    }

    /// Sets the queue's counters (what a link model delivered through it); pair with
    /// `set_counter_step(0, 0)` so reads do not move them on by themselves.
    pub fn set_counters(&self, c: super::closed_loop::QueueCounters) {
        let mut model = lock(&self.shared.model);
        let Some(i) =
            model.queues.iter().position(|q| q.get("name").map(String::as_str) == Some(self.name.as_str()))
        else {
            return;
        };
        let q = &mut model.queues[i];
        for (key, value) in [
            ("bytes", c.bytes),
            ("dropped", c.dropped),
            ("queued-bytes", c.queued_bytes),
            ("queued-packets", c.queued_packets),
        ] {
            q.insert(key.into(), value.to_string());
        }
    }
}

// ---------------------------------------------------------------------------------------
// Threads and the HTTP side
// ---------------------------------------------------------------------------------------

fn accept_loop(shared: Arc<Shared>) {
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stopped() {
        let accepted = match lock(&shared.listener).as_ref() {
            Some(l) => l.accept(),
            None => Err(io::ErrorKind::WouldBlock.into()),
        };
        match accepted {
            Ok((stream, _peer)) => {
                let number = shared.accepted.fetch_add(1, Ordering::SeqCst) + 1;
                let for_thread = Arc::clone(&shared);
                match thread::Builder::new()
                    .name(format!("fake-router-conn-{number}"))
                    .spawn(move || serve_connection(&for_thread, stream, number))
                {
                    Ok(handle) => workers.push(handle),
                    Err(e) => eprintln!("fake router: spawn connection thread: {e}"),
                }
            }
            Err(_) => thread::sleep(Duration::from_millis(2)),
        }
        workers.retain(|w| !w.is_finished());
    }
    for w in workers {
        let _ = w.join();
    }
}

/// A connection's byte stream: plain TCP or TLS over it.
enum Conn {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            #[cfg(feature = "tls")]
            Conn::Tls(s) => &s.sock,
        }
    }

    fn close(&self) {
        let _ = self.tcp().shutdown(Shutdown::Both);
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => s.flush(),
        }
    }
}

/// A parsed request.
#[derive(Debug)]
struct HttpRequest {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// HTTP/1.1 without `Connection: close`, or HTTP/1.0 with `keep-alive`.
    keep_alive: bool,
}

impl HttpRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

enum ReadOutcome {
    Request(HttpRequest),
    /// EOF, reset, idle timeout or stop.
    Closed,
    /// Unparseable request: answer 400 and close.
    Bad,
}

fn serve_connection(shared: &Shared, stream: TcpStream, number: u64) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(TICK));
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    if let Ok(clone) = stream.try_clone() {
        lock(&shared.open).push((number, clone));
    }
    if let Some(mut conn) = wrap_stream(shared, stream) {
        serve_requests(shared, &mut conn, number);
        conn.close();
    }
    lock(&shared.open).retain(|(n, _)| *n != number);
}

fn wrap_stream(shared: &Shared, stream: TcpStream) -> Option<Conn> {
    #[cfg(feature = "tls")]
    if let Some(config) = &shared.tls {
        let conn = rustls::ServerConnection::new(Arc::clone(config)).ok()?;
        return Some(Conn::Tls(Box::new(rustls::StreamOwned::new(conn, stream))));
    }
    let _ = shared;
    Some(Conn::Plain(stream))
}

fn serve_requests(shared: &Shared, conn: &mut Conn, number: u64) {
    let mut buf = Vec::new();
    let mut served = 0u32;
    loop {
        let req = match read_request(shared, conn, &mut buf) {
            ReadOutcome::Request(req) => req,
            ReadOutcome::Closed => return,
            ReadOutcome::Bad => {
                let reply = Reply::json(400, fixture::FAILED_TO_PARSE_JSON_400);
                let _ = conn.write_all(&reply.render(false, true, false));
                return;
            }
        };
        served += 1;
        let id = shared.requests.fetch_add(1, Ordering::SeqCst) + 1;
        lock(&shared.log).push(RequestRecord {
            id,
            method: req.method.clone(),
            path: req.target.clone(),
            body: req.body.clone(),
            connection: number,
            at: Instant::now(),
            status: None,
        });
        let fault = shared.take_request_fault();
        let (latency, chunked_knob, close_after, user, password) = {
            let k = lock(&shared.knobs);
            (k.latency, k.chunked, k.close_after, k.user.clone(), k.password.clone())
        };
        let reply = {
            let _serial = lock(&shared.serial);
            if !shared.sleep(latency) {
                return;
            }
            match fault {
                Fault::AcceptThenStall => None,
                Fault::Garbage => {
                    let _ = conn.write_all(GARBAGE);
                    let _ = conn.flush();
                    return;
                }
                Fault::HugeHeaders => {
                    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\n");
                    let line = format!("X-Filler: {}\r\n", "a".repeat(1000));
                    // Bounded: at most 8 MiB, and a write error (the client closed) ends it.
                    for _ in 0..8192 {
                        if shared.stopped() || conn.write_all(line.as_bytes()).is_err() {
                            break;
                        }
                    }
                    return;
                }
                Fault::EndlessChunked => {
                    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
                    let chunk = format!("400\r\n{}\r\n", " ".repeat(1024));
                    // Bounded: at most 64 MiB, and a write error (the client closed) ends it.
                    for _ in 0..65_536 {
                        if shared.stopped() || conn.write_all(chunk.as_bytes()).is_err() {
                            break;
                        }
                    }
                    return;
                }
                Fault::Refuse => return,
                Fault::Status500 | Fault::FailNext(_) => Some(Reply::json(500, BODY_500)),
                Fault::Status401 => Some(Reply::unauthorized()),
                Fault::SessionClosed => Some(Reply::json(400, fixture::SESSION_CLOSED_400)),
                Fault::Html403 => Some(Reply::html(403, BODY_HTML_403)),
                Fault::None
                | Fault::Resume
                | Fault::CloseMidResponse
                | Fault::Trickle(_)
                | Fault::Chunked => Some(if is_authorized(&req, &user, &password) {
                    lock(&shared.model).route(&req)
                } else {
                    Reply::unauthorized()
                }),
            }
        };
        let Some(reply) = reply else {
            drain_until_closed(shared, conn);
            return;
        };
        let close = !req.keep_alive || close_after.is_some_and(|n| served >= n);
        let head_only = req.method == "HEAD";
        let bytes = reply.render(chunked_knob || fault == Fault::Chunked, close, head_only);
        if let Some(record) = lock(&shared.log).iter_mut().rev().find(|r| r.id == id) {
            record.status = Some(reply.status);
        }
        let written = match fault {
            Fault::CloseMidResponse => {
                let _ = conn.write_all(&bytes[..bytes.len() / 2]);
                let _ = conn.flush();
                return;
            }
            Fault::Trickle(delay) => trickle(shared, conn, &bytes, delay),
            _ => conn.write_all(&bytes).and_then(|()| conn.flush()).is_ok(),
        };
        if !written || close {
            return;
        }
    }
}

fn trickle(shared: &Shared, conn: &mut Conn, bytes: &[u8], delay: Duration) -> bool {
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 && !shared.sleep(delay) {
            return false;
        }
        if conn.write_all(&[*b]).and_then(|()| conn.flush()).is_err() {
            return false;
        }
    }
    true
}

/// A stalled connection: swallow whatever comes until the client gives up or we stop.
fn drain_until_closed(shared: &Shared, conn: &mut Conn) {
    let mut sink = [0u8; 4096];
    while !shared.stopped() {
        match conn.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(_) => return,
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted)
}

fn read_request(shared: &Shared, conn: &mut Conn, buf: &mut Vec<u8>) -> ReadOutcome {
    let mut idle_since = Instant::now();
    let mut chunk = [0u8; 4096];
    loop {
        match parse_request(buf) {
            Ok(Some(req)) => return ReadOutcome::Request(req),
            Ok(None) => {}
            Err(()) => return ReadOutcome::Bad,
        }
        if shared.stopped() {
            return ReadOutcome::Closed;
        }
        let idle = lock(&shared.knobs).idle_timeout;
        if buf.is_empty() && idle.is_some_and(|idle| idle_since.elapsed() >= idle) {
            return ReadOutcome::Closed;
        }
        match conn.read(&mut chunk) {
            Ok(0) => return ReadOutcome::Closed,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                idle_since = Instant::now();
            }
            Err(e) if is_timeout(&e) => {}
            Err(_) => return ReadOutcome::Closed,
        }
    }
}

/// One request from the front of `buf` (removed from it), `None` if incomplete.
fn parse_request(buf: &mut Vec<u8>) -> Result<Option<HttpRequest>, ()> {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > MAX_REQUEST { Err(()) } else { Ok(None) };
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| ())?;
    let mut lines = head.split("\r\n");
    let mut parts = lines.next().ok_or(())?.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(());
    };
    if method.is_empty() || !target.starts_with('/') || !version.starts_with("HTTP/1.") {
        return Err(());
    }
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(())?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let header = |n: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.as_str());
    if header("Transfer-Encoding").is_some() {
        return Err(());
    }
    let length: usize = match header("Content-Length") {
        Some(v) => v.parse().map_err(|_| ())?,
        None => 0,
    };
    if length > MAX_REQUEST {
        return Err(());
    }
    let total = head_end + 4 + length;
    if buf.len() < total {
        return Ok(None);
    }
    let connection = header("Connection").map(str::to_ascii_lowercase);
    let keep_alive = if version == "HTTP/1.0" {
        connection.as_deref() == Some("keep-alive")
    } else {
        connection.as_deref() != Some("close")
    };
    let req = HttpRequest {
        method: method.to_owned(),
        target: target.to_owned(),
        body: buf[head_end + 4..total].to_vec(),
        headers,
        keep_alive,
    };
    buf.drain(..total);
    Ok(Some(req))
}

fn is_authorized(req: &HttpRequest, user: &str, password: &str) -> bool {
    let Some(value) = req.header("Authorization") else { return false };
    let Some(encoded) = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic ")) else {
        return false;
    };
    let Some(decoded) = base64_decode(encoded.trim()) else { return false };
    decoded == format!("{user}:{password}").as_bytes()
}

/// Standard base64 with padding (RFC 4648 §4), written here so the server does not check
/// the client's encoder with the client's own code.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let bytes = text.as_bytes();
    if bytes.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (i, quad) in bytes.chunks(4).enumerate() {
        let last = i == bytes.len() / 4 - 1;
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * pad as u32;
        let group = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&group[..3 - pad]);
    }
    Some(out)
}

/// A response before framing.
#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    content_type: &'static str,
    extra: Vec<(&'static str, String)>,
    /// `None`: no body at all (204).
    body: Option<Vec<u8>>,
}

impl Reply {
    fn json(status: u16, body: &str) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            extra: Vec::new(),
            body: Some(body.as_bytes().to_vec()),
        }
    }

    fn html(status: u16, body: &str) -> Reply {
        Reply { status, content_type: "text/html", extra: Vec::new(), body: Some(body.as_bytes().to_vec()) }
    }

    fn ok(value: &impl serde::Serialize) -> Reply {
        let body = serde_json::to_string(value).expect("fake router: serialise reply");
        Reply::json(200, &body)
    }

    fn no_content() -> Reply {
        Reply { status: 204, content_type: "application/json", extra: Vec::new(), body: None }
    }

    fn unauthorized() -> Reply {
        let mut reply = Reply::json(401, fixture::UNAUTHORIZED_401);
        reply.extra.push(("WWW-Authenticate", "Basic realm=\"RouterOS\"".into()));
        reply
    }

    /// `{"detail":..,"error":..,"message":..}` for a status and a console message.
    fn error(status: u16, detail: &str) -> Reply {
        let body = serde_json::json!({"detail": detail, "error": status, "message": reason(status)});
        Reply::json(status, &body.to_string())
    }

    fn render(&self, chunked: bool, close: bool, head_only: bool) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status)).into_bytes();
        let mut header = |name: &str, value: &str| {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        };
        let body = self.body.as_deref();
        if body.is_some() {
            header("Content-Type", self.content_type);
        }
        for (name, value) in &self.extra {
            header(name, value);
        }
        match body {
            Some(_) if chunked => header("Transfer-Encoding", "chunked"),
            Some(b) => header("Content-Length", &b.len().to_string()),
            None => {}
        }
        if close {
            header("Connection", "close");
        }
        out.extend_from_slice(b"\r\n");
        match body {
            Some(_) if head_only => {}
            Some(b) if chunked => {
                // Several chunks, so the client's decoder sees chunk boundaries.
                for piece in b.chunks(64) {
                    out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                    out.extend_from_slice(piece);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
            }
            Some(b) => out.extend_from_slice(b),
            None => {}
        }
        out
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        415 => "Unsupported Media Type",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

// ---------------------------------------------------------------------------------------
// The RouterOS model
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Menu {
    QueueTree,
    Mangle,
    Identity,
    Resource,
    User,
    UserGroup,
    QueueType,
}

// `user group` before `user`: the first entry that matches a prefix wins.
const MENUS: &[(&[&str], Menu)] = &[
    (&["queue", "tree"], Menu::QueueTree),
    (&["ip", "firewall", "mangle"], Menu::Mangle),
    (&["system", "identity"], Menu::Identity),
    (&["system", "resource"], Menu::Resource),
    (&["user", "group"], Menu::UserGroup),
    (&["user"], Menu::User),
    (&["queue", "type"], Menu::QueueType),
];

/// Default `/user group` policy of the fake user's group (everything wanctl needs).
pub const FULL_POLICY: &str = "local,telnet,ssh,ftp,reboot,read,write,policy,test,winbox,password,web,sniff,sensitive,api,romon,rest-api";
/// Default RouterOS version (`/system resource`).
pub const VERSION: &str = "7.16.2 (stable)";

/// Console commands that exist under an item menu (a `GET` on them is `no such command`).
const COMMAND_WORDS: &[&str] = &[
    "add",
    "comment",
    "disable",
    "edit",
    "enable",
    "export",
    "find",
    "get",
    "move",
    "print",
    "remove",
    "reset-counters",
    "reset-counters-all",
    "set",
    "unset",
];

const RATE_KEYS: &[&str] = &["limit-at", "max-limit", "burst-limit", "burst-threshold"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Param {
    Text,
    Rate,
    QueueType,
    Priority,
    Bool,
    Comment,
}

const QUEUE_PARAMS: &[(&str, Param)] = &[
    ("bucket-size", Param::Text),
    ("burst-limit", Param::Rate),
    ("burst-threshold", Param::Rate),
    ("burst-time", Param::Text),
    ("comment", Param::Comment),
    ("disabled", Param::Bool),
    ("limit-at", Param::Rate),
    ("max-limit", Param::Rate),
    ("name", Param::Text),
    ("packet-mark", Param::Text),
    ("parent", Param::Text),
    ("priority", Param::Priority),
    ("queue", Param::QueueType),
];

const MANGLE_PARAMS: &[(&str, Param)] = &[
    ("comment", Param::Comment),
    ("disabled", Param::Bool),
    ("log", Param::Bool),
    ("log-prefix", Param::Text),
    ("passthrough", Param::Bool),
];

#[derive(Debug)]
struct Model {
    queues: Vec<Item>,
    mangle: Vec<Item>,
    queue_types: Vec<String>,
    /// Per-type properties set by tests (`kind`, `cake-bandwidth`), over the defaults.
    type_fields: BTreeMap<String, Item>,
    /// Types removed by tests (even `cake-down-<x>` is then unknown).
    removed_types: Vec<String>,
    version: String,
    user: String,
    group_policy: String,
    identity: String,
    next_id: u32,
    counter_step: (u64, u64),
}

fn bool_text(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// `450000000`, `450M`, `7.5M`, `450k`, `1G`, `10Mbps` → bits/s (decimal multipliers,
/// ROUTEROS.md §2.2). Written apart from the client's parser, so the fake checks it.
fn parse_rate(text: &str) -> Option<u64> {
    let text = text.strip_suffix("bps").unwrap_or(text);
    let (number, multiplier) = match text.as_bytes().last()? {
        b'k' | b'K' => (&text[..text.len() - 1], 1_000u64),
        b'M' => (&text[..text.len() - 1], 1_000_000),
        b'G' => (&text[..text.len() - 1], 1_000_000_000),
        _ => (text, 1),
    };
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || (number.contains('.') && (!digits(frac) || frac.len() > 9)) {
        return None;
    }
    let mut value = int.parse::<u64>().ok()?.checked_mul(multiplier)?;
    if !frac.is_empty() {
        let scaled = frac.parse::<u64>().ok()?.checked_mul(multiplier)? / 10u64.pow(frac.len() as u32);
        value = value.checked_add(scaled)?;
    }
    Some(value)
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "yes" => Some(true),
        "false" | "no" => Some(false),
        _ => None,
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `?a=b&c=d` → decoded pairs.
fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// A JSON value as the text RouterOS would store: strings as they are, integers in
/// decimal, booleans `true`/`false`; anything else is not a console value.
fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        Value::Bool(b) => Some(bool_text(*b).to_owned()),
        _ => None,
    }
}

impl Model {
    fn new(queues: Vec<Item>, mangle: Vec<Item>, identity: String) -> Model {
        let mut model = Model {
            queues,
            mangle,
            queue_types: ["default", "default-small", "cake-down", "cake-up"].map(String::from).to_vec(),
            type_fields: BTreeMap::new(),
            removed_types: Vec::new(),
            version: VERSION.to_owned(),
            user: USER.to_owned(),
            group_policy: FULL_POLICY.to_owned(),
            identity,
            next_id: 0x200_0000,
            counter_step: (100, 150_000),
        };
        let types: Vec<String> = model.queues.iter().filter_map(|q| q.get("queue").cloned()).collect();
        for t in types {
            model.add_queue_type(&t);
        }
        model
    }

    fn add_queue_type(&mut self, name: &str) {
        if !self.queue_types.iter().any(|t| t == name) {
            self.queue_types.push(name.to_owned());
        }
    }

    fn is_queue_type(&self, name: &str) -> bool {
        let wanctl = |dir: &str| {
            name.strip_prefix(dir).is_some_and(|wan| {
                !wan.is_empty() && wan.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            })
        };
        !self.removed_types.iter().any(|t| t == name)
            && (self.queue_types.iter().any(|t| t == name) || wanctl("cake-down-") || wanctl("cake-up-"))
    }

    /// A `/queue type` item as RouterOS shows it: `cake*` names are CAKE with
    /// `cake-bandwidth=0` (the fixture's key set), others `pfifo`; test overrides on top.
    fn queue_type_item(&self, index: usize, name: &str) -> Item {
        let mut item: Item = if name.starts_with("cake") {
            let fixture: Vec<Item> =
                serde_json::from_str(fixture::QUEUE_TYPE_CAKE).expect("fixture: queue-type-cake");
            fixture.into_iter().next().unwrap_or_default()
        } else {
            [("kind", "pfifo"), ("pfifo-limit", "50")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        item.insert(".id".into(), format!("*{:X}", 0x30 + index));
        item.insert("name".into(), name.to_owned());
        item.insert("default".into(), bool_text(name.starts_with("default")).into());
        if let Some(fields) = self.type_fields.get(name) {
            item.extend(fields.clone());
        }
        item
    }

    /// The items of a read-only menu, before filtering.
    fn static_items(&self, menu: Menu, query: &[(String, String)]) -> Vec<Item> {
        let one = |pairs: &[(&str, &str)]| -> Item {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        match menu {
            Menu::User => vec![one(&[
                (".id", "*1"),
                ("name", &self.user),
                ("group", "wanctl-api"),
                ("disabled", "false"),
            ])],
            Menu::UserGroup => vec![
                one(&[
                    (".id", "*1"),
                    ("name", "read"),
                    ("policy", "local,telnet,ssh,read,test,winbox,web,api,rest-api,!write"),
                ]),
                one(&[(".id", "*2"), ("name", "wanctl-api"), ("policy", &self.group_policy)]),
            ],
            Menu::QueueType => {
                let mut names = self.queue_types.clone();
                // `cake-down-<x>` exists when asked for (the fake accepts it in writes).
                for (k, v) in query {
                    if k == "name" && self.is_queue_type(v) && !names.contains(v) {
                        names.push(v.clone());
                    }
                }
                names
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| !self.removed_types.contains(n))
                    .map(|(i, n)| self.queue_type_item(i, n))
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    fn fresh_id(&mut self) -> String {
        self.next_id += 1;
        format!("*{:X}", self.next_id)
    }

    fn queue_by_name(&self, name: &str) -> Option<&Item> {
        self.queues.iter().find(|q| q.get("name").map(String::as_str) == Some(name))
    }

    fn mangle_by_comment(&self, comment: &str) -> Option<&Item> {
        self.mangle.iter().find(|r| {
            r.get("comment").map(String::as_str) == Some(comment)
                && r.get("dynamic").map(String::as_str) != Some("true")
        })
    }

    fn add_queue(&mut self, name: &str, queue_type: &str, max_limit: u64) -> String {
        let id = self.fresh_id();
        let mut q = Item::new();
        for (k, v) in [
            (".id", id.as_str()),
            ("bucket-size", "0.1"),
            ("burst-limit", "0"),
            ("burst-threshold", "0"),
            ("burst-time", "0s"),
            ("bytes", "0"),
            ("disabled", "false"),
            ("dropped", "0"),
            ("invalid", "false"),
            ("limit-at", "0"),
            ("name", name),
            ("packet-mark", ""),
            ("packet-rate", "0"),
            ("packets", "0"),
            ("parent", "global"),
            ("priority", "8"),
            ("queue", queue_type),
            ("queued-bytes", "0"),
            ("queued-packets", "0"),
            ("rate", "0"),
        ] {
            q.insert(k.to_owned(), v.to_owned());
        }
        q.insert("max-limit".into(), max_limit.to_string());
        self.queues.push(q);
        id
    }

    fn add_mangle(&mut self, comment: &str, disabled: bool) -> String {
        let id = self.fresh_id();
        let mut r = Item::new();
        for (k, v) in [
            (".id", id.as_str()),
            ("action", "mark-routing"),
            ("bytes", "0"),
            ("chain", "prerouting"),
            ("comment", comment),
            ("disabled", bool_text(disabled)),
            ("dynamic", "false"),
            ("invalid", "false"),
            ("new-routing-mark", "to-wan2"),
            ("packets", "0"),
            ("passthrough", "false"),
        ] {
            r.insert(k.to_owned(), v.to_owned());
        }
        self.mangle.push(r);
        id
    }

    fn reboot(&mut self) {
        for i in 0..self.queues.len() {
            let id = self.fresh_id();
            let q = &mut self.queues[i];
            q.insert(".id".into(), id);
            for key in
                ["bytes", "packets", "dropped", "queued-bytes", "queued-packets", "rate", "packet-rate"]
            {
                q.insert(key.into(), "0".into());
            }
        }
    }

    /// A queue item as a reply shows it, after which its counters move on.
    fn read_queue(&mut self, index: usize) -> Item {
        let shown = self.queues[index].clone();
        let (packets, bytes) = self.counter_step;
        let q = &mut self.queues[index];
        for (key, step) in [("packets", packets), ("bytes", bytes)] {
            let now: u64 = q.get(key).and_then(|v| v.parse().ok()).unwrap_or(0);
            q.insert(key.into(), now.saturating_add(step).to_string());
        }
        shown
    }

    /// `GET` of a read-only menu: exact `?k=v` filters ANDed; writes are refused.
    fn read_only(&self, menu: Menu, method: &str, rest: &[&str], query: &[(String, String)]) -> Reply {
        if method != "GET" || !rest.is_empty() {
            return Reply::json(400, fixture::NO_SUCH_COMMAND_400);
        }
        if menu == Menu::Resource {
            return Reply::ok(&serde_json::json!({
                "architecture-name": "arm64",
                "board-name": "RB5009UG+S+",
                "cpu-load": "3",
                "uptime": "1w2d3h",
                "version": self.version,
            }));
        }
        let items: Vec<Item> = self
            .static_items(menu, query)
            .into_iter()
            .filter(|item| {
                query
                    .iter()
                    .filter(|(k, _)| !k.starts_with('.'))
                    .all(|(k, v)| item.get(k.as_str()) == Some(v))
            })
            .collect();
        Reply::ok(&items)
    }

    fn table(&self, menu: Menu) -> &Vec<Item> {
        if menu == Menu::Mangle { &self.mangle } else { &self.queues }
    }

    fn table_mut(&mut self, menu: Menu) -> &mut Vec<Item> {
        if menu == Menu::Mangle { &mut self.mangle } else { &mut self.queues }
    }

    /// A read of item `index` of `menu` (queue counters move on).
    fn read(&mut self, menu: Menu, index: usize) -> Item {
        if menu == Menu::QueueTree { self.read_queue(index) } else { self.mangle[index].clone() }
    }

    fn route(&mut self, req: &HttpRequest) -> Reply {
        match req.method.as_str() {
            "OPTIONS" => return Reply::json(503, r#"{"error":503,"message":"Service Unavailable"}"#),
            "HEAD" => return Reply::json(501, r#"{"error":501,"message":"Not Implemented"}"#),
            _ => {}
        }
        let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
        let Some(rest) = path.strip_prefix("/rest") else { return Reply::json(404, fixture::NOT_FOUND_404) };
        let words: Vec<&str> = rest.split('/').filter(|w| !w.is_empty()).collect();
        let Some((menu, used)) = MENUS
            .iter()
            .find(|(m, _)| words.len() >= m.len() && words[..m.len()] == **m)
            .map(|(m, menu)| (*menu, m.len()))
        else {
            // The first word no menu continues with.
            let bad = (0..words.len())
                .find(|&i| !MENUS.iter().any(|(m, _)| m.len() > i && m[..=i] == words[..=i]))
                .map_or_else(|| words.last().copied().unwrap_or("rest"), |i| words[i]);
            return Reply::error(400, &format!("no such command or directory ({bad})"));
        };
        let body = if req.body.is_empty() {
            None
        } else {
            let json = req
                .header("Content-Type")
                .is_some_and(|t| t.to_ascii_lowercase().starts_with("application/json"));
            if !json {
                return Reply::json(415, r#"{"error":415,"message":"Unsupported Media Type"}"#);
            }
            match serde_json::from_slice::<Value>(&req.body) {
                Ok(Value::Object(map)) => Some(map),
                _ => return Reply::json(400, fixture::FAILED_TO_PARSE_JSON_400),
            }
        };
        let method = req.method.as_str();
        match (menu, &words[used..]) {
            (Menu::Identity, []) if method == "GET" => Reply::ok(&serde_json::json!({"name": self.identity})),
            (Menu::Identity, ["set"]) if method == "POST" => {
                if let Some(name) = body.as_ref().and_then(|b| b.get("name")).and_then(value_text) {
                    self.identity = name;
                }
                Reply::json(200, "[]")
            }
            (Menu::Identity, _) => Reply::json(400, fixture::NO_SUCH_COMMAND_400),
            (Menu::Resource | Menu::User | Menu::UserGroup | Menu::QueueType, rest) => {
                self.read_only(menu, method, rest, &query_pairs(query))
            }
            (_, []) if method == "GET" => self.list(menu, &query_pairs(query)),
            (_, []) => Reply::json(400, fixture::NO_SUCH_COMMAND_400),
            (_, [word]) if COMMAND_WORDS.contains(word) => self.command(menu, method, word, body.as_ref()),
            (_, [selector]) => {
                if selector.contains("%2A") || selector.contains("%2a") {
                    return Reply::json(400, fixture::NO_SUCH_COMMAND_PREFIX_400);
                }
                let selector = percent_decode(selector);
                let index = if selector.starts_with('*') {
                    self.table(menu).iter().position(|i| i.get(".id") == Some(&selector))
                } else if menu == Menu::QueueTree {
                    self.queues.iter().position(|q| q.get("name") == Some(&selector))
                } else {
                    // Mangle rules have no name to look them up by (ROUTEROS.md §3).
                    return Reply::json(400, fixture::NO_SUCH_COMMAND_PREFIX_400);
                };
                let Some(index) = index else { return Reply::json(404, fixture::NOT_FOUND_404) };
                match method {
                    "GET" => Reply::ok(&self.read(menu, index)),
                    "PATCH" => {
                        let changes = match self.validate(menu, body.as_ref()) {
                            Ok(changes) => changes,
                            Err(reply) => return reply,
                        };
                        apply(&mut self.table_mut(menu)[index], changes);
                        Reply::ok(&self.read(menu, index))
                    }
                    "DELETE" => {
                        self.table_mut(menu).remove(index);
                        Reply::no_content()
                    }
                    _ => Reply::json(400, fixture::NO_SUCH_COMMAND_400),
                }
            }
            (_, [_, extra, ..]) => Reply::error(400, &format!("no such command or directory ({extra})")),
        }
    }

    /// `GET /rest/<menu>?k=v&.proplist=a,b`: exact filters ANDed, `.id` always listed.
    fn list(&mut self, menu: Menu, query: &[(String, String)]) -> Reply {
        let proplist: Option<Vec<String>> = query
            .iter()
            .find(|(k, _)| k == ".proplist")
            .map(|(_, v)| v.split(',').map(str::to_owned).collect());
        let filters: Vec<&(String, String)> =
            query.iter().filter(|(k, _)| !k.starts_with('.') || k == ".id").collect();
        let matching: Vec<usize> = (0..self.table(menu).len())
            .filter(|&i| {
                let item = &self.table(menu)[i];
                filters.iter().all(|(k, v)| {
                    let have = item.get(k.as_str()).map(String::as_str).or(if k == "disabled" {
                        Some("false")
                    } else {
                        None
                    });
                    match (have, parse_bool(v)) {
                        (Some(have), Some(want)) if parse_bool(have).is_some() => {
                            parse_bool(have) == Some(want)
                        }
                        (Some(have), _) => have == v,
                        (None, _) => false,
                    }
                })
            })
            .collect();
        let items: Vec<Item> = matching
            .into_iter()
            .map(|i| {
                let mut item = self.read(menu, i);
                if let Some(props) = &proplist {
                    item.retain(|k, _| k == ".id" || props.iter().any(|p| p == k));
                }
                item
            })
            .collect();
        Reply::ok(&items)
    }

    /// `POST /rest/<menu>/<command>` with `.id` (or `numbers`): `set`, `enable`,
    /// `disable`; the reply is `[]`. Other commands are not modelled.
    fn command(
        &mut self,
        menu: Menu,
        method: &str,
        word: &str,
        body: Option<&serde_json::Map<String, Value>>,
    ) -> Reply {
        if method != "POST" || !["set", "enable", "disable"].contains(&word) {
            return Reply::json(400, fixture::NO_SUCH_COMMAND_400);
        }
        let ids = body.and_then(|b| b.get(".id").or_else(|| b.get("numbers"))).and_then(value_text);
        let Some(ids) = ids else {
            return Reply::error(400, "missing value(s) of argument(s) numbers");
        };
        let mut indices = Vec::new();
        for id in ids.split(',') {
            match self.table(menu).iter().position(|i| i.get(".id").map(String::as_str) == Some(id)) {
                Some(i) => indices.push(i),
                None => return Reply::error(400, "no such item"),
            }
        }
        let changes = if word == "set" {
            let mut params = body.cloned().unwrap_or_default();
            params.remove(".id");
            params.remove("numbers");
            match self.validate(menu, Some(&params)) {
                Ok(changes) => changes,
                Err(reply) => return reply,
            }
        } else {
            vec![("disabled".to_owned(), Some(bool_text(word == "disable").to_owned()))]
        };
        for i in indices {
            apply(&mut self.table_mut(menu)[i], changes.clone());
        }
        Reply::json(200, "[]")
    }

    /// Checks a write body: every key known, every value valid; nothing is applied unless
    /// all of it is. `None` removes the key (an empty comment).
    #[allow(clippy::type_complexity)]
    fn validate(
        &self,
        menu: Menu,
        body: Option<&serde_json::Map<String, Value>>,
    ) -> Result<Vec<(String, Option<String>)>, Reply> {
        let spec = if menu == Menu::QueueTree { QUEUE_PARAMS } else { MANGLE_PARAMS };
        let Some(body) = body else { return Ok(Vec::new()) };
        // Unknown keys first, as the router reports them before values.
        for key in body.keys() {
            if key != ".id" && !spec.iter().any(|(k, _)| k == key) {
                return Err(Reply::error(400, &format!("unknown parameter {key}")));
            }
        }
        let mut changes = Vec::new();
        for (key, value) in body {
            let Some((_, kind)) = spec.iter().find(|(k, _)| k == key) else { continue };
            let invalid = || {
                if key == "max-limit" {
                    Reply::json(400, fixture::INVALID_VALUE_MAX_LIMIT_400)
                } else {
                    Reply::error(400, &format!("invalid value for argument {key}"))
                }
            };
            if matches!(value, Value::Number(n) if !(n.is_u64() || n.is_i64())) {
                return Err(Reply::json(400, fixture::FAILED_TO_PARSE_JSON_400));
            }
            let text = value_text(value).ok_or_else(invalid)?;
            let stored = match kind {
                Param::Rate => Some(parse_rate(&text).ok_or_else(invalid)?.to_string()),
                Param::QueueType if self.is_queue_type(&text) => Some(text),
                Param::QueueType if key == "queue" => {
                    return Err(Reply::json(400, fixture::INPUT_DOES_NOT_MATCH_QUEUE_400));
                }
                Param::QueueType => return Err(invalid()),
                Param::Priority => match text.parse::<u8>() {
                    Ok(p @ 1..=8) => Some(p.to_string()),
                    _ => return Err(Reply::error(400, &format!("value of {key} out of range (1..8)"))),
                },
                Param::Bool => Some(bool_text(parse_bool(&text).ok_or_else(invalid)?).to_owned()),
                Param::Comment if text.is_empty() => None,
                Param::Comment | Param::Text => Some(text),
            };
            changes.push((key.clone(), stored));
        }
        Ok(changes)
    }
}

fn apply(item: &mut Item, changes: Vec<(String, Option<String>)>) {
    for (key, value) in changes {
        match value {
            Some(v) => {
                item.insert(key, v);
            }
            None => {
                item.remove(&key);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Fake ssh
// ---------------------------------------------------------------------------------------

/// The fake `ssh` script in the source tree.
pub const FAKE_SSH_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/fake_ssh.py");
/// Longest [`FakeSsh::new`] waits for the script to write its initial state.
pub const SSH_INIT_TIMEOUT: Duration = Duration::from_secs(20);

/// A private copy of the fake `ssh` (as `<dir>/bin/ssh`, mode 0755) with its own state,
/// log and mode files, all removed on drop. Point a daemon at it with [`FakeSsh::path_env`]
/// (and [`FakeSsh::envs`]), or drive it directly with [`FakeSsh::spawn`] / [`FakeSsh::run`].
#[derive(Debug)]
pub struct FakeSsh {
    dir: TempDir,
    program: PathBuf,
    state: PathBuf,
    log: PathBuf,
    mode: PathBuf,
}

impl FakeSsh {
    /// Copies the script and writes the default state (queues `WAN-Download-1` and
    /// `WAN-Upload-1`, the rule `ADAPTIVE: Steer latency-sensitive to WAN2`, disabled).
    pub fn new() -> io::Result<FakeSsh> {
        let dir = TempDir::new("fake-ssh")?;
        let bin = dir.join("bin");
        fs::create_dir_all(&bin)?;
        let program = bin.join("ssh");
        fs::copy(FAKE_SSH_SCRIPT, &program)
            .map_err(|e| io::Error::new(e.kind(), format!("copy {FAKE_SSH_SCRIPT}: {e}")))?;
        fs::set_permissions(&program, fs::Permissions::from_mode(0o755))?;
        let ssh = FakeSsh {
            state: dir.join("state.json"),
            log: dir.join("log.jsonl"),
            mode: dir.join("mode"),
            program,
            dir,
        };
        fs::write(&ssh.mode, "")?;
        let mut init = ssh.command();
        init.arg("--fake-ssh-init-state");
        let out = super::netns::run_bounded(&mut init, SSH_INIT_TIMEOUT)?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "fake ssh --fake-ssh-init-state: {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(ssh)
    }

    /// The `ssh` program.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The directory holding `ssh` (put it first on `PATH`).
    pub fn bin_dir(&self) -> PathBuf {
        self.dir.join("bin")
    }

    /// `PATH` with [`bin_dir`](Self::bin_dir) first.
    pub fn path_env(&self) -> OsString {
        let mut path = self.bin_dir().into_os_string();
        if let Some(old) = std::env::var_os("PATH") {
            path.push(":");
            path.push(old);
        }
        path
    }

    /// `FAKE_SSH_STATE`, `FAKE_SSH_LOG` and `FAKE_SSH_MODE_FILE` for a process that runs it.
    pub fn envs(&self) -> [(&'static str, &Path); 3] {
        [("FAKE_SSH_STATE", &self.state), ("FAKE_SSH_LOG", &self.log), ("FAKE_SSH_MODE_FILE", &self.mode)]
    }

    /// A `Command` for the program with [`envs`](Self::envs) set (add the arguments).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.envs(self.envs()).env_remove("FAKE_SSH_MODE");
        cmd
    }

    /// The state file.
    pub fn state_path(&self) -> &Path {
        &self.state
    }

    /// The log file (JSON lines).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Sets the fault modes (`""`, `"hang"`, `"slow=200"`, `"die_after=3"`, `"auth_fail"`,
    /// `"refuse"`, or several separated by commas); running sessions see it at their next
    /// command line ([`wait_for_commands`](Self::wait_for_commands) tells when a line sent
    /// earlier has been read).
    pub fn set_mode(&self, modes: &str) {
        fs::write(&self.mode, modes).expect("fake ssh: write mode file");
    }

    /// The state file's JSON.
    pub fn state(&self) -> Value {
        let text = fs::read_to_string(&self.state).expect("fake ssh: read state");
        serde_json::from_str(&text).expect("fake ssh: state is JSON")
    }

    /// Replaces the state (for example to add a queue or a rule).
    pub fn write_state(&self, state: &Value) {
        let tmp = self.dir.join("state.json.tmp");
        fs::write(&tmp, serde_json::to_vec_pretty(state).expect("fake ssh: serialise state"))
            .expect("fake ssh: write state");
        fs::rename(&tmp, &self.state).expect("fake ssh: replace state");
    }

    /// Changes the state under the lock the fake `ssh` processes take (`state.json.lock`),
    /// so a concurrent `set` is neither lost nor overwritten.
    pub fn update_state(&self, change: impl FnOnce(&mut Value)) {
        let lock_path = self.dir.join("state.json.lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&lock_path)
            .expect("fake ssh: open state lock");
        let _guard = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .expect("fake ssh: lock state");
        let mut state = self.state();
        change(&mut state);
        self.write_state(&state);
    }

    /// `max-limit` of queue `name` in bits/s.
    pub fn queue_max_limit(&self, name: &str) -> Option<u64> {
        self.state()["queues"][name]["max-limit"].as_u64()
    }

    /// `queue` (type) of queue `name`.
    pub fn queue_type(&self, name: &str) -> Option<String> {
        self.state()["queues"][name]["queue"].as_str().map(str::to_owned)
    }

    /// Whether the mangle rule with this comment is disabled.
    pub fn mangle_disabled(&self, comment: &str) -> Option<bool> {
        self.state()["mangle"][comment]["disabled"].as_bool()
    }

    /// Every log event (`{"event":"start"|"cmd"|"exit", ...}`), in order.
    pub fn log_events(&self) -> Vec<Value> {
        let Ok(text) = fs::read_to_string(&self.log) else { return Vec::new() };
        text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// The command lines received, over every session, in order.
    pub fn commands(&self) -> Vec<String> {
        self.log_events()
            .iter()
            .filter(|e| e["event"] == "cmd")
            .filter_map(|e| e["line"].as_str().map(str::to_owned))
            .collect()
    }

    /// Waits (bounded by `timeout`) until at least `n` command lines were read, counted over
    /// every session. A line is logged after the modes for it were read, so a test that
    /// changes the mode after this returns does not affect those lines.
    pub fn wait_for_commands(&self, n: usize, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if self.commands().len() >= n {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// The argv (`ssh` first) of each start, in order.
    pub fn invocations(&self) -> Vec<Vec<String>> {
        self.log_events()
            .iter()
            .filter(|e| e["event"] == "start")
            .map(|e| {
                e["argv"].as_array().map_or_else(Vec::new, |a| {
                    a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()
                })
            })
            .collect()
    }

    /// Starts a session: `ssh args…` with piped stdin/stdout/stderr.
    pub fn spawn(&self, args: &[&str]) -> io::Result<SshSession> {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take();
        let (out_tx, out_rx) = mpsc::channel();
        let (err_tx, err_rx) = mpsc::channel();
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            readers.push(thread::spawn(move || pump(stdout, &out_tx)));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(thread::spawn(move || pump(stderr, &err_tx)));
        }
        Ok(SshSession {
            child,
            stdin,
            out_rx,
            err_rx,
            out: Vec::new(),
            err: Vec::new(),
            readers,
            status: None,
        })
    }

    /// Runs `ssh args…` with `stdin` fed and closed, to completion; killed after `timeout`.
    pub fn run(&self, args: &[&str], stdin: &str, timeout: Duration) -> io::Result<Output> {
        let mut session = self.spawn(args)?;
        session.send_raw(stdin.as_bytes())?;
        session.close_stdin();
        let status = session.wait(timeout).ok_or_else(|| {
            io::Error::new(io::ErrorKind::TimedOut, format!("fake ssh: no exit within {timeout:?}"))
        })?;
        let stdout = session.take_stdout();
        let stderr = session.stderr().into_bytes();
        Ok(Output { status, stdout, stderr })
    }
}

fn pump(mut from: impl Read, to: &mpsc::Sender<Vec<u8>>) {
    let mut buf = [0u8; 4096];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.send(buf[..n].to_vec()).is_err() {
                    return;
                }
            }
        }
    }
}

/// A running fake `ssh` process. Dropping it kills and reaps the process.
#[derive(Debug)]
pub struct SshSession {
    child: Child,
    stdin: Option<ChildStdin>,
    out_rx: Receiver<Vec<u8>>,
    err_rx: Receiver<Vec<u8>>,
    out: Vec<u8>,
    err: Vec<u8>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl SshSession {
    /// Writes `line` and a CRLF (what the daemon sends).
    pub fn send(&mut self, line: &str) -> io::Result<()> {
        self.send_raw(format!("{line}\r\n").as_bytes())
    }

    /// Writes raw bytes to stdin.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        let stdin = self.stdin.as_mut().ok_or_else(|| io::Error::other("stdin already closed"))?;
        stdin.write_all(bytes)?;
        stdin.flush()
    }

    /// Closes stdin (EOF: a session ends).
    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// Waits (bounded) until stdout holds a line equal to `marker`; returns everything before
    /// that line and consumes through it. `None` on timeout or EOF without the marker.
    pub fn read_until(&mut self, marker: &str, timeout: Duration) -> Option<String> {
        let end = Instant::now() + timeout;
        loop {
            let text = String::from_utf8_lossy(&self.out).into_owned();
            let mut start = 0;
            for line in text.split_inclusive('\n') {
                if line.trim_end_matches(['\r', '\n']) == marker && line.ends_with('\n') {
                    let before = text[..start].to_owned();
                    self.out.drain(..start + line.len());
                    return Some(before);
                }
                start += line.len();
            }
            let left = end.checked_duration_since(Instant::now())?;
            match self.out_rx.recv_timeout(left.min(TICK)) {
                Ok(bytes) => self.out.extend_from_slice(&bytes),
                Err(RecvTimeoutError::Timeout) => {}
                // The buffer was checked above and nothing more can arrive.
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Stdout received so far and not consumed by [`read_until`](Self::read_until).
    pub fn take_stdout(&mut self) -> Vec<u8> {
        while let Ok(bytes) = self.out_rx.try_recv() {
            self.out.extend_from_slice(&bytes);
        }
        std::mem::take(&mut self.out)
    }

    /// Stderr received so far.
    pub fn stderr(&mut self) -> String {
        while let Ok(bytes) = self.err_rx.try_recv() {
            self.err.extend_from_slice(&bytes);
        }
        String::from_utf8_lossy(&self.err).into_owned()
    }

    /// Waits up to `timeout` for the exit (then stdout and stderr are complete); kills the
    /// process and returns `None` if it has not exited by then.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.status {
            return Some(status);
        }
        let end = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.status = Some(status);
                for r in self.readers.drain(..) {
                    let _ = r.join();
                }
                return Some(status);
            }
            if Instant::now() >= end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for SshSession {
    fn drop(&mut self) {
        self.stdin.take();
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}
