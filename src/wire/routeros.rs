//! RouterOS operations: one typed [`Command`] with two encoders, REST and CLI, and the
//! decoders for what each transport answers. Pure: no I/O, no clock.
//!
//! In scope: the handful of operations wanctl performs (set two queue limits, read a queue,
//! switch a mangle rule, read a mangle rule, probe), their REST requests (method, path,
//! JSON body), their console lines for SSH, parsing the replies of both (queue-tree and
//! mangle JSON, `print` text, error bodies, console error lines), and conversion between
//! [`Bps`] and RouterOS rate strings. Out of scope: HTTP framing ([`super::http`]),
//! sockets, ssh processes, retries and failover policy (the engine's router link).
//!
//! The facts this relies on are in `shared/reference/ROUTEROS.md`; the replies it must
//! accept are the fixtures in `tests/fixtures/routeros/` (the contract, `tests/contract.rs`).
//!
//! A REST operation can take several HTTP exchanges (look a queue up by name, then PATCH it
//! by `.id`; list mangle rules, then PATCH the matching ones). [`RestCall`] drives that
//! sequence the sans-IO way:
//!
//! ```text
//!  SetQueueLimits:  [LookupQueue(dl)] ─► PatchQueue(dl) ─► [LookupQueue(ul)] ─► PatchQueue(ul) ─► Done
//!                    (skipped when the id is cached; a 404 on a cached id re-looks it up once)
//!  GetQueueBy*:     GetQueue ─► Done
//!  *Mangle*:        ListMangle ─(filter by exact comment)─► PatchMangle(id)… ─► Done
//!  Probe:           Probe ─► Done
//!  any non-2xx reply (except the two 404 cases above) ─► Done with a RouterOsError
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use super::http::{BasicAuth, Method, Request};
use super::json;
use crate::units::Bps;

// ---------------------------------------------------------------------------------------
// Identifiers and commands
// ---------------------------------------------------------------------------------------

/// A RouterOS internal item id, `*<HEX>` on the wire (`*1`, `*1000000`, `*FFFFFFFA`). The
/// API's ids are 32-bit. Ids change on reboot and re-creation (ROUTEROS.md §1.6), so they
/// are cached only in [`IdCache`], which forgets them on a 404.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ItemId(pub u32);

impl ItemId {
    /// Parses `*<1–8 hex digits>` (either case).
    pub fn parse(text: &str) -> Option<ItemId> {
        let hex = text.strip_prefix('*')?;
        if hex.is_empty() || hex.len() > 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(hex, 16).ok().map(ItemId)
    }
}

impl fmt::Display for ItemId {
    /// `*` and upper-case hex, as RouterOS prints it. Sent literally in REST paths: the
    /// router does not decode `%2A` (ROUTEROS.md §1.2).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "*{:X}", self.0)
    }
}

/// Shaping direction of a queue (names the CAKE queue type `cake-down-…`/`cake-up-…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Download (`cake-down-<wan>`).
    Download,
    /// Upload (`cake-up-<wan>`).
    Upload,
}

/// One queue's part of a limit change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueLimit {
    /// Queue-tree item name (config-validated identifier).
    pub name: String,
    /// Queue type to set with the limit (`queue=`), or `None` to leave it alone.
    pub queue_type: Option<String>,
    /// The new `max-limit`.
    pub max_limit: Bps,
}

impl QueueLimit {
    /// A limit that also sets the original's queue type, `cake-down-<wan>` or
    /// `cake-up-<wan>` with `<wan>` lower-cased (INTERFACES.md §1.1).
    pub fn with_cake_type(name: &str, direction: Direction, wan_name: &str, max_limit: Bps) -> QueueLimit {
        let dir = match direction {
            Direction::Download => "down",
            Direction::Upload => "up",
        };
        QueueLimit {
            name: name.to_owned(),
            queue_type: Some(format!("cake-{dir}-{}", wan_name.to_ascii_lowercase())),
            max_limit,
        }
    }

    /// A limit only (`max-limit=`), as the original's calibration tool sent it.
    pub fn max_limit_only(name: &str, max_limit: Bps) -> QueueLimit {
        QueueLimit { name: name.to_owned(), queue_type: None, max_limit }
    }
}

/// Every RouterOS operation wanctl performs. Each has a REST form ([`RestCall`]) and a
/// console form ([`Command::cli_line`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// One logical rate change: both queues. REST: one PATCH per queue by `.id`; CLI: the
    /// original's two `set [find name=…]` commands on one line.
    SetQueueLimits {
        /// The download queue.
        download: QueueLimit,
        /// The upload queue.
        upload: QueueLimit,
    },
    /// Read one queue-tree item (config and statistics) by exact name.
    GetQueueByName(String),
    /// Read one queue-tree item's configuration by exact name: the same REST request as
    /// `GetQueueByName`, but on the console `print detail` (without `stats`), which is the
    /// form that shows `max-limit`; used to read a rate write back.
    GetQueueConfigByName(String),
    /// Read one queue-tree item by id.
    GetQueueById(ItemId),
    /// Disable (`true`) or enable (`false`) the mangle rules whose comment equals `comment`.
    SetMangleDisabled {
        /// The exact comment.
        comment: String,
        /// The wanted state.
        disabled: bool,
    },
    /// Read the mangle rules whose comment equals the argument exactly.
    GetMangleByComment(String),
    /// Cheap reachability and credentials check (reads the system identity).
    Probe,
    /// Every queue-tree item's counters (`bytes`, `packets`, `dropped`, `queued-*`, `rate`)
    /// in one request: REST `GET /rest/queue/tree?.proplist=…` (about 130 bytes per item),
    /// console `/queue/tree print stats` (the vendor-documented form, ROUTEROS.md §4.3).
    /// The caller picks its queues by name, so two queues cost one request.
    ListQueueStats,
    /// Read-only `print` of a menu used by `wanctl check-router`: the items of `menu`,
    /// filtered to `name` when given (REST `GET /rest/<menu>?name=…`, console `/<menu>
    /// print detail where name="…"`). Never writes.
    Print {
        /// Which menu.
        menu: PrintMenu,
        /// Exact `name` filter.
        name: Option<String>,
    },
}

/// The menus [`Command::Print`] can read: what `check-router` audits besides queues and
/// mangle rules (ROUTEROS.md §1.3 policies, §2.4 queue types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrintMenu {
    /// `/system resource` (one object: `version`, `board-name`, ...).
    SystemResource,
    /// `/user` (`name`, `group`; the password is never shown).
    User,
    /// `/user group` (`name`, `policy`: comma-separated, `!` marks a policy not granted).
    UserGroup,
    /// `/queue type` (`name`, `kind`, `cake-bandwidth`, ...).
    QueueType,
}

impl PrintMenu {
    /// The REST path (`/rest/system/resource`).
    pub fn rest_path(self) -> &'static str {
        match self {
            PrintMenu::SystemResource => "/rest/system/resource",
            PrintMenu::User => "/rest/user",
            PrintMenu::UserGroup => "/rest/user/group",
            PrintMenu::QueueType => "/rest/queue/type",
        }
    }

    /// The console menu (`/system resource`).
    pub fn cli_menu(self) -> &'static str {
        match self {
            PrintMenu::SystemResource => "/system resource",
            PrintMenu::User => "/user",
            PrintMenu::UserGroup => "/user group",
            PrintMenu::QueueType => "/queue type",
        }
    }
}

/// One item of a [`Command::Print`] reply: every property as text, by key.
pub type PrintItem = BTreeMap<String, String>;

impl fmt::Display for Command {
    /// A short description for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::SetQueueLimits { download, upload } => write!(
                f,
                "set max-limit {}={} {}={}",
                download.name, download.max_limit.0, upload.name, upload.max_limit.0
            ),
            Command::GetQueueByName(name) => write!(f, "get queue {name}"),
            Command::GetQueueConfigByName(name) => write!(f, "get queue config {name}"),
            Command::GetQueueById(id) => write!(f, "get queue {id}"),
            Command::SetMangleDisabled { comment, disabled } => {
                write!(f, "{} mangle \"{comment}\"", if *disabled { "disable" } else { "enable" })
            }
            Command::GetMangleByComment(comment) => write!(f, "get mangle \"{comment}\""),
            Command::Probe => f.write_str("probe"),
            Command::ListQueueStats => f.write_str("read queue counters"),
            Command::Print { menu, name: Some(name) } => write!(f, "print {} {name}", menu.cli_menu()),
            Command::Print { menu, name: None } => write!(f, "print {}", menu.cli_menu()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------------------

/// A queue-tree item as read over either transport. Fields the reply did not carry are
/// `None` (a `.proplist` GET, a non-`stats` print, an unparseable value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// `.id` (REST only; the console prints per-session item numbers instead).
    pub id: Option<ItemId>,
    /// `name`.
    pub name: Option<String>,
    /// `queue`: the queue type name (a dangling one reads back as an id, `*2A`).
    pub queue_type: Option<String>,
    /// `max-limit` (`0` = unlimited). REST sends plain bit/s, the console suffixes (`940M`).
    pub max_limit: Option<Bps>,
    /// `rate`: average throughput, taken as bit/s (ROUTEROS.md §2.1, medium confidence).
    pub rate: Option<Bps>,
    /// `packets`: cumulative (resets on reboot or `reset-counters`).
    pub packets: Option<u64>,
    /// `bytes`: cumulative.
    pub bytes: Option<u64>,
    /// `dropped`: cumulative packets dropped.
    pub dropped: Option<u64>,
    /// `queued-packets`: instantaneous backlog.
    pub queued_packets: Option<u64>,
    /// `queued-bytes`: instantaneous backlog.
    pub queued_bytes: Option<u64>,
    /// `disabled` (REST) or flag `X` (CLI); absent = `false`.
    pub disabled: bool,
    /// `invalid` (REST) or flag `I` (CLI); absent = `false`.
    pub invalid: bool,
    /// `comment` (REST) or the `;;;` line (CLI); absent when unset.
    pub comment: Option<String>,
}

/// A firewall mangle rule, reduced to what steering needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MangleRule {
    /// `.id` (REST only).
    pub id: Option<ItemId>,
    /// `comment` (REST) or the first `;;;` line (CLI).
    pub comment: Option<String>,
    /// `disabled` or flag `X`. **Absent means enabled** (ROUTEROS.md §3, 7.23.7 lab).
    pub disabled: bool,
    /// `dynamic` or flag `D` (FastTrack dummy rules; never selected).
    pub dynamic: bool,
    /// `invalid` or flag `I` (not a reliable signal, ROUTEROS.md §3).
    pub invalid: bool,
}

/// The successful result of a [`Command`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `SetQueueLimits` done. REST returns each updated item (read-back of the new
    /// `max-limit`); the console prints nothing, so both are `None` there, and a `[find]`
    /// that matched nothing is silent too (ROUTEROS.md §4.2): verify by reading back.
    QueueLimitsSet {
        /// The download item after the change (REST).
        download: Option<QueueStats>,
        /// The upload item after the change (REST).
        upload: Option<QueueStats>,
    },
    /// `GetQueueByName`/`GetQueueById`: the item, or `None` if there is no such item.
    Queue(Option<QueueStats>),
    /// `ListQueueStats`: every queue-tree item, in the router's order.
    Queues(Vec<QueueStats>),
    /// `GetMangleByComment`: the matching rules (possibly none).
    Mangle(Vec<MangleRule>),
    /// `SetMangleDisabled` done. REST: the matching rules in their new state; the console
    /// prints nothing (empty), so verify with `GetMangleByComment`.
    MangleSet(Vec<MangleRule>),
    /// `Probe` answered; the router's identity when it could be read.
    Alive {
        /// `/system identity` name.
        identity: Option<String>,
    },
    /// `Print`: the matching items (REST's bare object for `/system resource` becomes
    /// one item).
    Items(Vec<PrintItem>),
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Who is at fault, and so what the caller should do (STYLE.md §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The router or the path to it failed for now (timeout, 5xx): retry, then fail over.
    Transport,
    /// RouterOS refused this command: do not resend it unchanged.
    Rejected,
    /// The reply made no sense (not JSON, unknown text, unexpected status): reconnect.
    Protocol,
    /// Credentials or policies are wrong: stop using this transport.
    Auth,
}

/// What RouterOS (or its reply) said, finely grained. [`ErrorKind::fault`] groups them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// HTTP 401: wrong or missing credentials, or the group lacks `rest-api`.
    Unauthorized,
    /// HTTP 403: the REST part of the web server is turned off (an HTML page).
    Forbidden,
    /// `not enough permissions (9)` or `std failure: not allowed (9)` (group policies).
    PermissionDenied,
    /// HTTP 404, `no such item`, or no item matched the name/comment.
    NotFound,
    /// `no such command…` (400, or 406 on early 7.x) or console `bad command name`.
    NoSuchCommand,
    /// `unknown parameter <name>` or console `expected end of command`.
    UnknownParameter,
    /// `invalid value for argument…`, `input does not match any value of…`, `…out of range`.
    InvalidValue,
    /// `Failed to parse json`, console `syntax error`, `expected command name`.
    Syntax,
    /// `missing or invalid resource identifier` (PATCH refused).
    InvalidResource,
    /// Any other refusal (`failure: …`, other 4xx).
    Failure,
    /// The router gave up: `Session closed` (60 s limit, ROUTEROS.md §1.5) or 408.
    Timeout,
    /// Other 5xx.
    ServerError,
    /// A status that is neither success nor error (1xx/3xx).
    UnexpectedStatus,
    /// The body is not JSON (HTML from a portal or WebFig, ROUTEROS.md §1.7).
    NotJson,
    /// JSON, but not the expected shape (no `.id`, not an object…).
    BadReply,
    /// Console output that is neither the expected output nor a known error.
    UnrecognizedOutput,
}

impl ErrorKind {
    /// The fault group.
    pub fn fault(self) -> Fault {
        match self {
            ErrorKind::Unauthorized | ErrorKind::Forbidden | ErrorKind::PermissionDenied => Fault::Auth,
            ErrorKind::NotFound
            | ErrorKind::NoSuchCommand
            | ErrorKind::UnknownParameter
            | ErrorKind::InvalidValue
            | ErrorKind::Syntax
            | ErrorKind::InvalidResource
            | ErrorKind::Failure => Fault::Rejected,
            ErrorKind::Timeout | ErrorKind::ServerError => Fault::Transport,
            ErrorKind::UnexpectedStatus
            | ErrorKind::NotJson
            | ErrorKind::BadReply
            | ErrorKind::UnrecognizedOutput => Fault::Protocol,
        }
    }
}

/// An error reported by RouterOS, or a reply we could not use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterOsError {
    /// HTTP status (REST); `None` for the console.
    pub status: Option<u16>,
    /// Classification.
    pub kind: ErrorKind,
    /// The router's own text (`detail`, else `message`; the console line), or ours.
    pub message: String,
}

impl RouterOsError {
    fn new(status: Option<u16>, kind: ErrorKind, message: impl Into<String>) -> RouterOsError {
        RouterOsError { status, kind, message: message.into() }
    }

    /// Shorthand for `self.kind.fault()`.
    pub fn fault(&self) -> Fault {
        self.kind.fault()
    }
}

impl fmt::Display for RouterOsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "HTTP {status}: {}", self.message),
            None => write!(f, "routeros: {}", self.message),
        }
    }
}

impl std::error::Error for RouterOsError {}

/// Why a command cannot be written as a console line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// An empty name or comment (would match nothing, or everything).
    Empty,
    /// A control character (a newline would start a second console command).
    ControlCharacter,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EncodeError::Empty => "empty name or comment in a RouterOS command",
            EncodeError::ControlCharacter => "control character in a RouterOS command argument",
        })
    }
}

impl std::error::Error for EncodeError {}

// ---------------------------------------------------------------------------------------
// Rates
// ---------------------------------------------------------------------------------------

/// A rate as RouterOS writes accept it: plain integer bit/s (`"450000000"`), the form REST
/// reads back (ROUTEROS.md §2.2). The suffixed forms are accepted by the router too, but a
/// plain integer needs no rounding decisions.
pub fn rate_text(rate: Bps) -> String {
    rate.0.to_string()
}

/// Parses a RouterOS rate: plain bit/s (`"940000000"`), or with a decimal suffix
/// `k`/`K` (10³), `M` (10⁶), `G` (10⁹), as the console prints it (`940M`, `7.5M`), with an
/// optional trailing `bps`. Fractions below 1 bit/s are truncated. `None` for anything
/// else, including simple-queue pairs (`"0/0"`) and overflow.
pub fn parse_rate(text: &str) -> Option<Bps> {
    let text = text.trim();
    let text = text.strip_suffix("bps").unwrap_or(text);
    let (number, multiplier) = match text.as_bytes().last()? {
        b'k' | b'K' => (&text[..text.len() - 1], 1_000u64),
        b'M' => (&text[..text.len() - 1], 1_000_000),
        b'G' => (&text[..text.len() - 1], 1_000_000_000),
        _ => (text, 1),
    };
    let (int, frac) = match number.split_once('.') {
        Some((int, frac)) => (int, frac),
        None => (number, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty()
        || !all_digits(int)
        || !all_digits(frac)
        || frac.len() > 9
        || (number.contains('.') && frac.is_empty())
    {
        return None;
    }
    let whole = int.parse::<u64>().ok()?.checked_mul(multiplier)?;
    let mut part = 0u64;
    if !frac.is_empty() {
        let scale = 10u64.pow(frac.len() as u32);
        part = frac.parse::<u64>().ok()?.checked_mul(multiplier)? / scale;
    }
    whole.checked_add(part).map(Bps)
}

// ---------------------------------------------------------------------------------------
// REST
// ---------------------------------------------------------------------------------------

/// One HTTP request of a REST operation. Turn it into bytes with [`RestRequest::http`] and
/// [`super::http::Request::write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestRequest {
    /// Method.
    pub method: Method,
    /// Path with query, already encoded: `/rest/queue/tree?name=WAN-Download-1`.
    pub path: String,
    /// JSON body (every value a string, keys sorted as the router sorts them).
    pub body: Option<Vec<u8>>,
}

impl RestRequest {
    /// The HTTP request for `host` with `auth`.
    pub fn http<'a>(&'a self, host: &'a str, auth: Option<BasicAuth<'a>>) -> Request<'a> {
        Request { method: self.method, path: &self.path, host, auth, body: self.body.as_deref() }
    }
}

/// Queue ids learnt from replies, so a rate change is two PATCHes instead of four
/// requests. Forgotten on a 404; the caller should also [`clear`](Self::clear) it when the
/// router may have rebooted (a reconnect), since ids change on reboot (ROUTEROS.md §1.6).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdCache {
    queues: BTreeMap<String, ItemId>,
}

impl IdCache {
    /// An empty cache.
    pub fn new() -> IdCache {
        IdCache::default()
    }

    /// The cached id of queue `name`.
    pub fn queue(&self, name: &str) -> Option<ItemId> {
        self.queues.get(name).copied()
    }

    /// Records the id of queue `name`.
    pub fn remember_queue(&mut self, name: &str, id: ItemId) {
        self.queues.insert(name.to_owned(), id);
    }

    /// Forgets the id of queue `name`.
    pub fn forget_queue(&mut self, name: &str) {
        self.queues.remove(name);
    }

    /// Forgets every id.
    pub fn clear(&mut self) {
        self.queues.clear();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdSource {
    /// From the cache: may be stale.
    Cached,
    /// Looked up during this call.
    Fresh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    LookupQueue(Direction),
    PatchQueue(Direction, ItemId, IdSource),
    GetQueue,
    ListQueues,
    ListMangle,
    PatchMangle(ItemId),
    Probe,
    Print,
    Done,
}

/// The REST exchanges of one [`Command`]. Calling protocol:
/// 1. [`RestCall::new`];
/// 2. [`poll_request`](Self::poll_request) gives the request to send (at most one is
///    outstanding; `None` while one is, and after the end);
/// 3. feed its response to [`handle_response`](Self::handle_response): `Ok(None)` means
///    go back to 2, `Ok(Some(reply))` and `Err(_)` end the call.
#[derive(Debug, Clone)]
pub struct RestCall {
    command: Command,
    step: Step,
    /// A request was handed out and its response has not been handled yet.
    outstanding: bool,
    /// A stale cached id has been looked up again (only once per call).
    relooked: bool,
    download: Option<QueueStats>,
    upload: Option<QueueStats>,
    /// Mangle rules still to PATCH, in list order.
    mangle_todo: Vec<ItemId>,
    /// Mangle rules in their final state.
    mangle_done: Vec<MangleRule>,
}

const QUEUE_TREE: &str = "/rest/queue/tree";
const MANGLE: &str = "/rest/ip/firewall/mangle";
/// `/system identity`: the smallest authenticated read (one short string), and it exists
/// on every RouterOS 7 device.
const IDENTITY: &str = "/rest/system/identity";
/// The fields `ListQueueStats` asks for (a list GET includes `.id` anyway).
const QUEUE_STATS_PROPLIST: &str = "name,max-limit,rate,bytes,packets,dropped,queued-bytes,queued-packets";

impl RestCall {
    /// Starts `command`; `ids` supplies cached queue ids.
    pub fn new(command: Command, ids: &IdCache) -> RestCall {
        let step = match &command {
            Command::SetQueueLimits { download, .. } => queue_step(Direction::Download, &download.name, ids),
            Command::GetQueueByName(_) | Command::GetQueueConfigByName(_) | Command::GetQueueById(_) => {
                Step::GetQueue
            }
            Command::SetMangleDisabled { .. } | Command::GetMangleByComment(_) => Step::ListMangle,
            Command::Probe => Step::Probe,
            Command::ListQueueStats => Step::ListQueues,
            Command::Print { .. } => Step::Print,
        };
        RestCall {
            command,
            step,
            outstanding: false,
            relooked: false,
            download: None,
            upload: None,
            mangle_todo: Vec::new(),
            mangle_done: Vec::new(),
        }
    }

    /// The command this call performs.
    pub fn command(&self) -> &Command {
        &self.command
    }

    /// True once the call has ended (reply or error).
    pub fn is_done(&self) -> bool {
        self.step == Step::Done
    }

    /// The next request to send, once; `None` while a response is awaited or at the end.
    #[must_use]
    pub fn poll_request(&mut self) -> Option<RestRequest> {
        if self.outstanding || self.step == Step::Done {
            return None;
        }
        self.outstanding = true;
        Some(self.request_for(self.step))
    }

    /// Handles the response (status and body) to the outstanding request.
    pub fn handle_response(
        &mut self,
        status: u16,
        body: &[u8],
        ids: &mut IdCache,
    ) -> Result<Option<Reply>, RouterOsError> {
        if !self.outstanding {
            self.step = Step::Done;
            return Err(RouterOsError::new(
                Some(status),
                ErrorKind::BadReply,
                "response without an outstanding request",
            ));
        }
        self.outstanding = false;
        let result = self.transition(status, body, ids);
        if !matches!(result, Ok(None)) {
            self.step = Step::Done;
        }
        result
    }

    fn limit(&self, direction: Direction) -> Option<&QueueLimit> {
        match (&self.command, direction) {
            (Command::SetQueueLimits { download, .. }, Direction::Download) => Some(download),
            (Command::SetQueueLimits { upload, .. }, Direction::Upload) => Some(upload),
            _ => None,
        }
    }

    fn request_for(&self, step: Step) -> RestRequest {
        let get = |path: String| RestRequest { method: Method::Get, path, body: None };
        match (step, &self.command) {
            (Step::LookupQueue(dir), _) => {
                let name = self.limit(dir).map_or("", |l| l.name.as_str());
                get(format!("{QUEUE_TREE}?name={}", percent_encode(name)))
            }
            (Step::PatchQueue(dir, id, _), _) => {
                let limit = self.limit(dir);
                let rate = limit.map_or_else(String::new, |l| rate_text(l.max_limit));
                let mut pairs = vec![("max-limit", rate.as_str())];
                if let Some(queue) = limit.and_then(|l| l.queue_type.as_deref()) {
                    pairs.push(("queue", queue));
                }
                RestRequest {
                    method: Method::Patch,
                    path: format!("{QUEUE_TREE}/{id}"),
                    body: Some(json_object(&pairs)),
                }
            }
            (Step::GetQueue, Command::GetQueueById(id)) => get(format!("{QUEUE_TREE}/{id}")),
            (Step::GetQueue, Command::GetQueueByName(name) | Command::GetQueueConfigByName(name)) => {
                get(format!("{QUEUE_TREE}?name={}", percent_encode(name)))
            }
            (Step::ListQueues, _) => get(format!("{QUEUE_TREE}?.proplist={QUEUE_STATS_PROPLIST}")),
            (Step::ListMangle, _) => get(MANGLE.to_owned()),
            (Step::PatchMangle(id), _) => {
                let disabled = matches!(self.command, Command::SetMangleDisabled { disabled: true, .. });
                let value = if disabled { "true" } else { "false" };
                RestRequest {
                    method: Method::Patch,
                    path: format!("{MANGLE}/{id}"),
                    body: Some(json_object(&[("disabled", value)])),
                }
            }
            (Step::Print, Command::Print { menu, name: Some(name) }) => {
                get(format!("{}?name={}", menu.rest_path(), percent_encode(name)))
            }
            (Step::Print, Command::Print { menu, name: None }) => get(menu.rest_path().to_owned()),
            (Step::Probe, _) | (Step::GetQueue, _) | (Step::Print, _) | (Step::Done, _) => {
                get(IDENTITY.to_owned())
            }
        }
    }

    /// One response: `match (state, event)` giving the next state (STYLE.md §3.5).
    fn transition(
        &mut self,
        status: u16,
        body: &[u8],
        ids: &mut IdCache,
    ) -> Result<Option<Reply>, RouterOsError> {
        let success = (200..300).contains(&status);
        match (self.step, success) {
            (Step::PatchQueue(dir, _, IdSource::Cached), false) if status == 404 && !self.relooked => {
                // The router rebooted or the queue was re-created: look the name up again.
                if let Some(limit) = self.limit(dir) {
                    ids.forget_queue(&limit.name);
                }
                self.relooked = true;
                self.step = Step::LookupQueue(dir);
                Ok(None)
            }
            (Step::GetQueue, false) if status == 404 && matches!(self.command, Command::GetQueueById(_)) => {
                Ok(Some(Reply::Queue(None)))
            }
            (_, false) => Err(status_error(status, body)),
            (Step::LookupQueue(dir), true) => {
                let name = self.limit(dir).map_or_else(String::new, |l| l.name.clone());
                let item = pick_by_name(parse_queue_json(body)?, &name).ok_or_else(|| {
                    RouterOsError::new(
                        Some(status),
                        ErrorKind::NotFound,
                        format!("no queue tree item named \"{name}\""),
                    )
                })?;
                let id = item.id.ok_or_else(|| missing_id(status))?;
                ids.remember_queue(&name, id);
                self.step = Step::PatchQueue(dir, id, IdSource::Fresh);
                Ok(None)
            }
            (Step::PatchQueue(dir, _, _), true) => {
                let item = if body.trim_ascii().is_empty() {
                    None
                } else {
                    parse_queue_json(body)?.into_iter().next()
                };
                match dir {
                    Direction::Download => {
                        self.download = item;
                        let name = self.limit(Direction::Upload).map_or("", |l| l.name.as_str());
                        self.step = queue_step(Direction::Upload, name, ids);
                        Ok(None)
                    }
                    Direction::Upload => {
                        self.upload = item;
                        Ok(Some(Reply::QueueLimitsSet {
                            download: self.download.take(),
                            upload: self.upload.take(),
                        }))
                    }
                }
            }
            (Step::GetQueue, true) => {
                let items = parse_queue_json(body)?;
                let item = match &self.command {
                    Command::GetQueueByName(name) | Command::GetQueueConfigByName(name) => {
                        pick_by_name(items, name)
                    }
                    _ => items.into_iter().next(),
                };
                if let Some(QueueStats { id: Some(id), name: Some(name), .. }) = &item {
                    ids.remember_queue(name, *id);
                }
                Ok(Some(Reply::Queue(item)))
            }
            (Step::ListQueues, true) => {
                let items = parse_queue_json(body)?;
                for item in &items {
                    if let (Some(id), Some(name)) = (item.id, &item.name) {
                        ids.remember_queue(name, id);
                    }
                }
                Ok(Some(Reply::Queues(items)))
            }
            (Step::ListMangle, true) => {
                let rules = parse_mangle_json(body)?;
                let (comment, wanted) = match &self.command {
                    Command::SetMangleDisabled { comment, disabled } => (comment.as_str(), Some(*disabled)),
                    Command::GetMangleByComment(comment) => (comment.as_str(), None),
                    _ => ("", None),
                };
                let matching = select_mangle(rules, comment);
                let Some(wanted) = wanted else {
                    return Ok(Some(Reply::Mangle(matching)));
                };
                if matching.is_empty() {
                    return Err(RouterOsError::new(
                        Some(status),
                        ErrorKind::NotFound,
                        format!("no mangle rule with comment \"{comment}\""),
                    ));
                }
                for rule in matching {
                    if rule.disabled == wanted {
                        // Already in the wanted state: no write (each set goes to flash).
                        self.mangle_done.push(rule);
                    } else {
                        self.mangle_todo.push(rule.id.ok_or_else(|| missing_id(status))?);
                    }
                }
                self.next_mangle_patch()
            }
            (Step::PatchMangle(id), true) => {
                let rule = if body.trim_ascii().is_empty() {
                    None
                } else {
                    parse_mangle_json(body)?.into_iter().next()
                };
                let wanted = matches!(self.command, Command::SetMangleDisabled { disabled: true, .. });
                let comment = match &self.command {
                    Command::SetMangleDisabled { comment, .. } => Some(comment.clone()),
                    _ => None,
                };
                self.mangle_done.push(rule.unwrap_or(MangleRule {
                    id: Some(id),
                    comment,
                    disabled: wanted,
                    ..MangleRule::default()
                }));
                self.next_mangle_patch()
            }
            (Step::Probe, true) => {
                let value = json::parse_lenient(body).map_err(|e| not_json(status, body, e))?;
                let object = match &value {
                    Value::Array(items) => items.first().and_then(Value::as_object),
                    other => other.as_object(),
                };
                Ok(Some(Reply::Alive { identity: object.and_then(|o| field(o, "name")) }))
            }
            (Step::Print, true) => {
                let value = json::parse_lenient(body).map_err(|e| not_json(status, body, e))?;
                let objects: Vec<&Map<String, Value>> = match &value {
                    Value::Array(items) => items.iter().filter_map(Value::as_object).collect(),
                    Value::Object(o) => vec![o],
                    _ => Vec::new(),
                };
                let name = match &self.command {
                    Command::Print { name, .. } => name.as_deref(),
                    _ => None,
                };
                let items = objects
                    .into_iter()
                    .map(|o| {
                        o.keys().filter_map(|k| field(o, k).map(|v| (k.clone(), v))).collect::<PrintItem>()
                    })
                    .filter(|item| name.is_none_or(|n| item.get("name").map(String::as_str) == Some(n)))
                    .collect();
                Ok(Some(Reply::Items(items)))
            }
            (Step::Done, true) => {
                Err(RouterOsError::new(Some(status), ErrorKind::BadReply, "call already finished"))
            }
        }
    }

    fn next_mangle_patch(&mut self) -> Result<Option<Reply>, RouterOsError> {
        if self.mangle_todo.is_empty() {
            return Ok(Some(Reply::MangleSet(std::mem::take(&mut self.mangle_done))));
        }
        let id = self.mangle_todo.remove(0);
        self.step = Step::PatchMangle(id);
        Ok(None)
    }
}

fn queue_step(direction: Direction, name: &str, ids: &IdCache) -> Step {
    match ids.queue(name) {
        Some(id) => Step::PatchQueue(direction, id, IdSource::Cached),
        None => Step::LookupQueue(direction),
    }
}

fn pick_by_name(items: Vec<QueueStats>, name: &str) -> Option<QueueStats> {
    // `?name=` is an exact server-side filter; checking again costs nothing and protects
    // against a server that ignores the filter.
    items.into_iter().find(|q| q.name.as_deref() == Some(name))
}

/// The mangle rules steering may touch: exact comment, not dynamic. REST `?comment=` is
/// not used (upstream found it unreliable with `:` in comments; TESTS.md §13), so the
/// filter is here, and the console side selects with the same exact `comment="…"`.
fn select_mangle(rules: Vec<MangleRule>, comment: &str) -> Vec<MangleRule> {
    rules.into_iter().filter(|r| !r.dynamic && r.comment.as_deref() == Some(comment)).collect()
}

fn missing_id(status: u16) -> RouterOsError {
    RouterOsError::new(Some(status), ErrorKind::BadReply, "item without a valid .id")
}

/// Percent-encodes a query value: everything but RFC 3986 unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`), so `:` → `%3A` and space → `%20` as in the fixture requests.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A flat JSON object of string values, keys in the given order (callers pass them
/// sorted, as the router sorts its own).
fn json_object(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = String::from("{");
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(&mut out, key);
        out.push(':');
        push_json_string(&mut out, value);
    }
    out.push('}');
    out.into_bytes()
}

fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON value as text: strings as they are; numbers and booleans (which RouterOS does
/// not send, but a future version might) as their JSON text.
fn field(object: &Map<String, Value>, key: &str) -> Option<String> {
    match object.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// RouterOS booleans: `true`/`false` on read, `yes`/`no` in some mocks and enums.
fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "yes" => Some(true),
        "false" | "no" => Some(false),
        _ => None,
    }
}

fn parse_counter(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn not_json(status: u16, body: &[u8], error: json::JsonError) -> RouterOsError {
    let message = if body.trim_ascii_start().starts_with(b"<") {
        "reply is HTML, not JSON (a portal, proxy or WebFig answered)".to_owned()
    } else {
        format!("reply is not JSON: {error}")
    };
    RouterOsError::new(Some(status), ErrorKind::NotJson, message)
}

/// The JSON items of a reply: an array of objects, or one object.
fn json_items(status: u16, body: &[u8]) -> Result<Vec<Map<String, Value>>, RouterOsError> {
    let value = json::parse_lenient(body).map_err(|e| not_json(status, body, e))?;
    let bad = || {
        RouterOsError::new(Some(status), ErrorKind::BadReply, "expected a JSON object or an array of objects")
    };
    match value {
        Value::Object(object) => Ok(vec![object]),
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Object(object) => Ok(object),
                _ => Err(bad()),
            })
            .collect(),
        _ => Err(bad()),
    }
}

/// Decodes a queue-tree reply (`GET` list, `GET` by id, `PATCH`). Unknown keys are ignored.
pub fn parse_queue_json(body: &[u8]) -> Result<Vec<QueueStats>, RouterOsError> {
    Ok(json_items(200, body)?.iter().map(queue_from_json).collect())
}

fn queue_from_json(o: &Map<String, Value>) -> QueueStats {
    let counter = |key: &str| field(o, key).as_deref().and_then(parse_counter);
    let flag = |key: &str| field(o, key).as_deref().and_then(parse_bool).unwrap_or(false);
    QueueStats {
        id: field(o, ".id").as_deref().and_then(ItemId::parse),
        name: field(o, "name"),
        queue_type: field(o, "queue"),
        max_limit: field(o, "max-limit").as_deref().and_then(parse_rate),
        rate: field(o, "rate").as_deref().and_then(parse_rate),
        packets: counter("packets"),
        bytes: counter("bytes"),
        dropped: counter("dropped"),
        queued_packets: counter("queued-packets"),
        queued_bytes: counter("queued-bytes"),
        disabled: flag("disabled"),
        invalid: flag("invalid"),
        comment: field(o, "comment"),
    }
}

/// Decodes a mangle reply (list or one rule). A missing `disabled` means enabled.
pub fn parse_mangle_json(body: &[u8]) -> Result<Vec<MangleRule>, RouterOsError> {
    Ok(json_items(200, body)?
        .iter()
        .map(|o| {
            let flag = |key: &str| field(o, key).as_deref().and_then(parse_bool).unwrap_or(false);
            MangleRule {
                id: field(o, ".id").as_deref().and_then(ItemId::parse),
                comment: field(o, "comment"),
                disabled: flag("disabled"),
                dynamic: flag("dynamic"),
                invalid: flag("invalid"),
            }
        })
        .collect())
}

/// Decodes an error reply `{"error":<status>,"message":<reason>,"detail":<text>}` (any key
/// order, `detail` optional, ROUTEROS.md §1.7); a non-JSON body (the HTML 403) is classified
/// by status alone.
pub fn parse_error_body(status: u16, body: &[u8]) -> RouterOsError {
    let object = match json::parse_lenient(body) {
        Ok(Value::Object(object)) => Some(object),
        _ => None,
    };
    let detail = object.as_ref().and_then(|o| field(o, "detail"));
    let message = object.as_ref().and_then(|o| field(o, "message"));
    let by_text = detail.as_deref().or(message.as_deref()).and_then(classify);
    let kind = match (status, by_text) {
        (401, _) => ErrorKind::Unauthorized,
        (403, _) => ErrorKind::Forbidden,
        (_, Some(kind)) => kind,
        (404, None) => ErrorKind::NotFound,
        (408, None) => ErrorKind::Timeout,
        (500..=599, None) => ErrorKind::ServerError,
        (400..=499, None) if object.is_none() && !body.trim_ascii().is_empty() => ErrorKind::NotJson,
        (400..=499, None) => ErrorKind::Failure,
        _ => ErrorKind::UnexpectedStatus,
    };
    let text = match (detail, message, object.is_some()) {
        (Some(detail), _, _) => detail,
        (None, Some(message), _) => message,
        (None, None, false) if body.trim_ascii_start().starts_with(b"<") => {
            "HTML reply instead of JSON".to_owned()
        }
        _ => format!("status {status}"),
    };
    RouterOsError::new(Some(status), kind, text)
}

fn status_error(status: u16, body: &[u8]) -> RouterOsError {
    if status >= 400 {
        parse_error_body(status, body)
    } else {
        RouterOsError::new(Some(status), ErrorKind::UnexpectedStatus, format!("unexpected status {status}"))
    }
}

/// Classifies RouterOS error text (REST `detail` or a console line). Order matters:
/// `failure: no such item` is `NotFound`, `std failure: not allowed` is a policy problem.
fn classify(text: &str) -> Option<ErrorKind> {
    let t = text.trim().to_ascii_lowercase();
    let starts = |p: &str| t.starts_with(p);
    let has = |p: &str| t.contains(p);
    Some(if has("not enough permissions") || has("not allowed") {
        ErrorKind::PermissionDenied
    } else if has("no such item") {
        ErrorKind::NotFound
    } else if starts("bad command name") || starts("no such command") {
        ErrorKind::NoSuchCommand
    } else if starts("expected end of command") || starts("unknown parameter") {
        ErrorKind::UnknownParameter
    } else if starts("syntax error") || starts("expected command name") || starts("failed to parse json") {
        ErrorKind::Syntax
    } else if starts("invalid value") || starts("input does not match any value") || has("out of range") {
        ErrorKind::InvalidValue
    } else if starts("missing or invalid resource identifier") {
        ErrorKind::InvalidResource
    } else if starts("session closed") {
        ErrorKind::Timeout
    } else if starts("failure:") {
        ErrorKind::Failure
    } else {
        return None;
    })
}

// ---------------------------------------------------------------------------------------
// CLI (console over ssh)
// ---------------------------------------------------------------------------------------

/// Quotes `value` as a console string: `"…"` with `\`, `"`, `$` (variable substitution)
/// and `?` (help) escaped. Control characters are refused rather than escaped: a newline
/// would end the command, and there is no reason for one in a name.
pub fn quote(value: &str) -> Result<String, EncodeError> {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c.is_control() {
            return Err(EncodeError::ControlCharacter);
        }
        if matches!(c, '\\' | '"' | '$' | '?') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Ok(out)
}

/// A console word that needs no quotes (the original sent `queue=cake-down-wan1` bare);
/// anything else is quoted.
fn word(value: &str) -> Result<String, EncodeError> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
        Ok(value.to_owned())
    } else {
        quote(value)
    }
}

fn non_empty(value: &str) -> Result<&str, EncodeError> {
    if value.is_empty() { Err(EncodeError::Empty) } else { Ok(value) }
}

fn set_queue_line(limit: &QueueLimit) -> Result<String, EncodeError> {
    let mut line = format!("/queue tree set [find name={}]", quote(non_empty(&limit.name)?)?);
    if let Some(queue) = &limit.queue_type {
        line.push_str(" queue=");
        line.push_str(&word(non_empty(queue)?)?);
    }
    line.push_str(" max-limit=");
    line.push_str(&rate_text(limit.max_limit));
    Ok(line)
}

impl Command {
    /// The console line for ssh.
    ///
    /// * `SetQueueLimits`: the original's exact text (INTERFACES.md §1.1),
    ///   `/queue tree set [find name="<DLQ>"] queue=cake-down-<wan> max-limit=<bps>; /queue
    ///   tree set [find name="<ULQ>"] queue=cake-up-<wan> max-limit=<bps>`.
    /// * `GetQueueByName`: the original's `/queue/tree print stats detail where name="…"`.
    /// * `GetQueueById`: the same with `where .id=*…` (low confidence: not in any capture).
    /// * Mangle: `/ip firewall mangle enable|disable [find comment="…"]` and `… print where
    ///   comment="…"`: an **exact** match, where the original used the regex `comment~`. A
    ///   regex is a substring match with `.` as a wildcard, so it could switch unrelated
    ///   rules; REST has no regex filter, so only exact equality selects the same rules
    ///   over both transports (ROUTEROS.md §1.2 "keep them apart", §4.2, §4.4).
    /// * `Probe`: `/system identity print`.
    /// * `ListQueueStats`: `/queue/tree print stats` (every item; the caller picks by name).
    pub fn cli_line(&self) -> Result<String, EncodeError> {
        Ok(match self {
            Command::SetQueueLimits { download, upload } => {
                format!("{}; {}", set_queue_line(download)?, set_queue_line(upload)?)
            }
            Command::GetQueueByName(name) => {
                format!("/queue/tree print stats detail where name={}", quote(non_empty(name)?)?)
            }
            Command::GetQueueConfigByName(name) => {
                format!("/queue/tree print detail where name={}", quote(non_empty(name)?)?)
            }
            Command::GetQueueById(id) => format!("/queue/tree print stats detail where .id={id}"),
            Command::SetMangleDisabled { comment, disabled } => format!(
                "/ip firewall mangle {} [find comment={}]",
                if *disabled { "disable" } else { "enable" },
                quote(non_empty(comment)?)?
            ),
            Command::GetMangleByComment(comment) => {
                format!("/ip firewall mangle print where comment={}", quote(non_empty(comment)?)?)
            }
            Command::Probe => "/system identity print".to_owned(),
            Command::ListQueueStats => "/queue/tree print stats".to_owned(),
            Command::Print { menu: PrintMenu::SystemResource, .. } => "/system resource print".to_owned(),
            Command::Print { menu, name: Some(name) } => {
                format!("{} print detail where name={}", menu.cli_menu(), quote(non_empty(name)?)?)
            }
            Command::Print { menu, name: None } => format!("{} print detail", menu.cli_menu()),
        })
    }

    /// Decodes what the console printed on stdout for this command (the exit status is 0
    /// even on errors, ROUTEROS.md §4.1, so success is decided from the text).
    pub fn parse_cli_output(&self, stdout: &[u8]) -> Result<Reply, RouterOsError> {
        let text = strip_ansi(&String::from_utf8_lossy(stdout));
        match self {
            Command::SetQueueLimits { .. } => {
                expect_silent(&text).map(|()| Reply::QueueLimitsSet { download: None, upload: None })
            }
            Command::SetMangleDisabled { .. } => expect_silent(&text).map(|()| Reply::MangleSet(Vec::new())),
            Command::GetQueueByName(name) | Command::GetQueueConfigByName(name) => {
                check_print(&text)?;
                Ok(Reply::Queue(pick_by_name(parse_queue_cli(&text), name)))
            }
            Command::GetQueueById(_) => {
                check_print(&text)?;
                Ok(Reply::Queue(parse_queue_cli(&text).into_iter().next()))
            }
            Command::GetMangleByComment(comment) => {
                check_print(&text)?;
                Ok(Reply::Mangle(select_mangle(parse_mangle_cli(&text), comment)))
            }
            Command::ListQueueStats => {
                check_print(&text)?;
                Ok(Reply::Queues(parse_queue_cli(&text)))
            }
            Command::Probe => {
                if let Some(error) = cli_error(&text) {
                    return Err(error);
                }
                let identity = text
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("name:"))
                    .map(|name| name.trim().to_owned())
                    .filter(|name| !name.is_empty());
                Ok(Reply::Alive { identity })
            }
            Command::Print { menu: PrintMenu::SystemResource, .. } => {
                if let Some(error) = cli_error(&text) {
                    return Err(error);
                }
                Ok(Reply::Items(vec![parse_cli_colon_item(&text)]))
            }
            Command::Print { name, .. } => {
                check_print(&text)?;
                let items = parse_cli_records(&text)
                    .into_iter()
                    .map(|r| r.properties.into_iter().collect::<PrintItem>())
                    .filter(|item| {
                        name.as_deref().is_none_or(|n| item.get("name").map(String::as_str) == Some(n))
                    })
                    .collect();
                Ok(Reply::Items(items))
            }
        }
    }
}

/// The `key: value` lines of a console `print` of a menu without items (`/system
/// resource print`: `version: 7.16.2 (stable)`).
fn parse_cli_colon_item(text: &str) -> PrintItem {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty() && !k.contains(' '))
        .collect()
}

/// Removes ANSI escape sequences (`ESC [ … final`, or `ESC` + one character). Exec output
/// is normally plain, but an interactive-style login can add colours (ROUTEROS.md §4.1,
/// the `+ct` login option exists to turn them off).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        // `ESC [` starts a CSI sequence up to its final byte; any other `ESC x` is two chars.
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if ('\u{40}'..='\u{7e}').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

/// `set`, `enable` and `disable` print nothing on success (ROUTEROS.md §4.1).
fn expect_silent(text: &str) -> Result<(), RouterOsError> {
    if text.trim().is_empty() {
        return Ok(());
    }
    Err(cli_error(text).unwrap_or_else(|| unrecognized(text)))
}

/// A `print` starts with the flag legend, a `Columns:` header or a record; anything else
/// on its first line is an error message.
fn check_print(text: &str) -> Result<(), RouterOsError> {
    let Some(first) = text.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return Ok(());
    };
    if first.starts_with("Flags:") || first.starts_with("Columns:") || record_start(first).is_some() {
        return Ok(());
    }
    Err(cli_error(text).unwrap_or_else(|| unrecognized(text)))
}

fn first_line(text: &str) -> &str {
    text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("")
}

fn unrecognized(text: &str) -> RouterOsError {
    let line: String = first_line(text).chars().take(200).collect();
    RouterOsError::new(None, ErrorKind::UnrecognizedOutput, line)
}

/// A known console error on the first non-empty line of `text` (`bad command name …`,
/// `syntax error …`, `expected end of command …`, `no such item`, `input does not match any
/// value of …`, `invalid value for argument …`, `failure: …`, ROUTEROS.md §4.5).
pub fn cli_error(text: &str) -> Option<RouterOsError> {
    let line = first_line(text);
    classify(line).map(|kind| RouterOsError::new(None, kind, line))
}

/// One item of console `print` output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CliRecord {
    /// The item number (per session, unstable; `where` keeps the global number).
    pub number: u32,
    /// Flag letters between the number and the properties (`X` disabled, `I` invalid,
    /// `D` dynamic).
    pub flags: String,
    /// `;;;` lines: the comment, then (for invalid items) the reason.
    pub comments: Vec<String>,
    /// `key=value` properties in order, values unquoted and unescaped.
    pub properties: Vec<(String, String)>,
}

impl CliRecord {
    /// The value of property `key` (exact key: `packets` is not `queued-packets`).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.properties.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Whether flag letter `flag` is set.
    pub fn has_flag(&self, flag: char) -> bool {
        self.flags.contains(flag)
    }
}

/// `<spaces><digits>` followed by whitespace or the end: the start of a record. Returns
/// the number and the rest of the line.
fn record_start(line: &str) -> Option<(u32, &str)> {
    let t = line.trim_start();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let rest = &t[digits..];
    if digits == 0 || !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    Some((t[..digits].parse().ok()?, rest))
}

/// Splits console `print` output (plain, `detail` or `stats`) into records: lines before
/// the first record (the legend, whose wording varies) are skipped; lines indented under a
/// record continue it (80-column wrapping, ROUTEROS.md §4.1); `;;;` lines are comments.
/// Properties are read by key, never by position (the `queued-packets` before `packets`
/// trap of §4.3). CRLF and trailing spaces are tolerated.
pub fn parse_cli_records(text: &str) -> Vec<CliRecord> {
    let mut records = Vec::new();
    let mut current: Option<(CliRecord, String)> = None;
    for raw in text.lines() {
        let line = raw.trim_end();
        if line.trim().is_empty() {
            continue;
        }
        if let Some((number, rest)) = record_start(line) {
            if let Some((record, props)) = current.take() {
                records.push(finish_record(record, &props));
            }
            let mut record = CliRecord { number, ..CliRecord::default() };
            let mut rest = rest.trim_start();
            loop {
                if let Some(comment) = rest.strip_prefix(";;;") {
                    record.comments.push(comment.trim().to_owned());
                    rest = "";
                    break;
                }
                let end = rest.find([' ', '\t']).unwrap_or(rest.len());
                let token = &rest[..end];
                if token.is_empty() || !token.bytes().all(|b| b.is_ascii_uppercase()) {
                    break;
                }
                record.flags.push_str(token);
                rest = rest[end..].trim_start();
            }
            current = Some((record, rest.to_owned()));
        } else if let Some((record, props)) = current.as_mut() {
            let line = line.trim_start();
            match line.strip_prefix(";;;") {
                Some(comment) => record.comments.push(comment.trim().to_owned()),
                None => {
                    props.push(' ');
                    props.push_str(line);
                }
            }
        }
    }
    if let Some((record, props)) = current.take() {
        records.push(finish_record(record, &props));
    }
    records
}

fn finish_record(mut record: CliRecord, props: &str) -> CliRecord {
    record.properties = tokenize_properties(props);
    record
}

/// `key=value` tokens; a value is a bare word or a `"…"` string with console escapes.
/// Words without `=` are ignored.
fn tokenize_properties(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return out;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        if chars.next_if_eq(&'=').is_none() {
            continue;
        }
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => unescape_one(&mut chars, &mut value),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                value.push(c);
            }
        }
        out.push((key, value));
    }
}

/// One console escape after a backslash: two upper-case hex digits (a byte), or one of
/// `" \ $ ? _ n r t a b f v`; anything else stands for itself.
fn unescape_one(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, out: &mut String) {
    let is_hex = |c: &char| c.is_ascii_digit() || ('A'..='F').contains(c);
    let mut lookahead = chars.clone();
    if let (Some(a), Some(b)) = (lookahead.next(), lookahead.next()) {
        if is_hex(&a) && is_hex(&b) {
            chars.next();
            chars.next();
            let byte = (a.to_digit(16).unwrap_or(0) * 16 + b.to_digit(16).unwrap_or(0)) as u8;
            out.push(if byte.is_ascii() { char::from(byte) } else { char::REPLACEMENT_CHARACTER });
            return;
        }
    }
    match chars.next() {
        Some('_') => out.push(' '),
        Some('n') => out.push('\n'),
        Some('r') => out.push('\r'),
        Some('t') => out.push('\t'),
        Some('a') => out.push('\u{7}'),
        Some('b') => out.push('\u{8}'),
        Some('f') => out.push('\u{c}'),
        Some('v') => out.push('\u{b}'),
        Some(c) => out.push(c),
        None => out.push('\\'),
    }
}

/// Queue-tree items from console `print` / `print stats` / `print stats detail` output.
pub fn parse_queue_cli(text: &str) -> Vec<QueueStats> {
    parse_cli_records(text)
        .into_iter()
        .map(|r| {
            let counter = |key: &str| r.get(key).and_then(parse_counter);
            QueueStats {
                id: None,
                name: r.get("name").map(str::to_owned),
                queue_type: r.get("queue").map(str::to_owned),
                max_limit: r.get("max-limit").and_then(parse_rate),
                rate: r.get("rate").and_then(parse_rate),
                packets: counter("packets"),
                bytes: counter("bytes"),
                dropped: counter("dropped"),
                queued_packets: counter("queued-packets"),
                queued_bytes: counter("queued-bytes"),
                disabled: r.has_flag('X'),
                invalid: r.has_flag('I'),
                comment: r.comments.first().cloned(),
            }
        })
        .collect()
}

/// Mangle rules from console `print` output: flag `X` disabled, `I` invalid, `D` dynamic,
/// the comment from the first `;;;` line (ROUTEROS.md §4.4; STEERING.md §6).
pub fn parse_mangle_cli(text: &str) -> Vec<MangleRule> {
    parse_cli_records(text)
        .into_iter()
        .map(|r| MangleRule {
            id: None,
            comment: r.comments.first().cloned(),
            disabled: r.has_flag('X'),
            dynamic: r.has_flag('D'),
            invalid: r.has_flag('I'),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    const DL: &str = "WAN-Download-1";
    const UL: &str = "WAN-Upload-1";
    const STEER: &str = "ADAPTIVE: steer LATENCY_SENSITIVE to WAN2";
    const QUEUE_BY_NAME: &str =
        include_str!("../../tests/fixtures/routeros/rest/queue-tree-get-by-name.json");
    const QUEUE_LIST: &str = include_str!("../../tests/fixtures/routeros/rest/queue-tree-list.json");
    const QUEUE_PATCHED: &str =
        include_str!("../../tests/fixtures/routeros/rest/queue-tree-patch-max-limit.response.json");
    const MANGLE_LIST: &str = include_str!("../../tests/fixtures/routeros/rest/mangle-list.json");
    const MANGLE_PATCHED: &str =
        include_str!("../../tests/fixtures/routeros/rest/mangle-patch-enable.response.json");
    const NOT_FOUND: &str = include_str!("../../tests/fixtures/routeros/rest/errors/404-not-found.json");

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
        assert_eq!(
            (dl.bytes, dl.dropped, dl.queued_bytes),
            (Some(272_603_902_153), Some(48_213), Some(15_140))
        );
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
        let text = include_str!("../../tests/fixtures/routeros/cli/queue-tree-print-stats.txt");
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
        assert_eq!(
            sent[1].body.as_deref(),
            Some(&br#"{"max-limit":"450000000","queue":"cake-down-wan1"}"#[..])
        );
        assert_eq!(sent[3].body.as_deref(), Some(&br#"{"max-limit":"38000000","queue":"cake-up-wan1"}"#[..]));
        let Ok(Reply::QueueLimitsSet { download: Some(dl), upload: None }) = reply else {
            panic!("{reply:?}")
        };
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
        let (sent, reply) =
            run(Command::GetQueueById(ItemId(0x1A)), &mut IdCache::new(), &[(404, NOT_FOUND)]);
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
        let body = include_bytes!("../../tests/fixtures/routeros/rest/queue-type-cake-get-by-name.json");
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
        let out = b"Flags: * - default\n 0   name=\"cake-down\" kind=cake cake-bandwidth=0 cake-diffserv=diffserv4\n";
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
        let plain = "Flags: X - disabled\n 4 X  ;;; ADAPTIVE: steer LATENCY_SENSITIVE to WAN2\n      chain=prerouting\n";
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
            let value: String =
                (0..len).map(|_| alphabet[rng.next_u32() as usize % alphabet.len()]).collect();
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
        let seeds =
            [QUEUE_LIST, MANGLE_LIST, "Flags: X - disabled\n 0 X ;;; c\n   name=\"a\\\"b\" packets=1\n"];
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
}
