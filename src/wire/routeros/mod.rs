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

use crate::units::Bps;

mod cli;
mod rest;
#[cfg(test)]
mod tests;

pub use cli::*;
pub use rest::*;

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
