//! The REST encoder and decoders: requests per operation step, the JSON replies, error
//! bodies. Pure.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::*;
use crate::wire::http::{BasicAuth, Method, Request};
use crate::wire::json;

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
pub(super) enum IdSource {
    /// From the cache: may be stale.
    Cached,
    /// Looked up during this call.
    Fresh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
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

pub(super) const QUEUE_TREE: &str = "/rest/queue/tree";
pub(super) const MANGLE: &str = "/rest/ip/firewall/mangle";
/// `/system identity`: the smallest authenticated read (one short string), and it exists
/// on every RouterOS 7 device.
pub(super) const IDENTITY: &str = "/rest/system/identity";
/// The fields `ListQueueStats` asks for (a list GET includes `.id` anyway).
pub(super) const QUEUE_STATS_PROPLIST: &str =
    "name,max-limit,rate,bytes,packets,dropped,queued-bytes,queued-packets";

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

pub(super) fn queue_step(direction: Direction, name: &str, ids: &IdCache) -> Step {
    match ids.queue(name) {
        Some(id) => Step::PatchQueue(direction, id, IdSource::Cached),
        None => Step::LookupQueue(direction),
    }
}

pub(super) fn pick_by_name(items: Vec<QueueStats>, name: &str) -> Option<QueueStats> {
    // `?name=` is an exact server-side filter; checking again costs nothing and protects
    // against a server that ignores the filter.
    items.into_iter().find(|q| q.name.as_deref() == Some(name))
}

/// The mangle rules steering may touch: exact comment, not dynamic. REST `?comment=` is
/// not used (upstream found it unreliable with `:` in comments; TESTS.md §13), so the
/// filter is here, and the console side selects with the same exact `comment="…"`.
pub(super) fn select_mangle(rules: Vec<MangleRule>, comment: &str) -> Vec<MangleRule> {
    rules.into_iter().filter(|r| !r.dynamic && r.comment.as_deref() == Some(comment)).collect()
}

pub(super) fn missing_id(status: u16) -> RouterOsError {
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
pub(super) fn json_object(pairs: &[(&str, &str)]) -> Vec<u8> {
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

pub(super) fn push_json_string(out: &mut String, s: &str) {
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
pub(super) fn field(object: &Map<String, Value>, key: &str) -> Option<String> {
    match object.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// RouterOS booleans: `true`/`false` on read, `yes`/`no` in some mocks and enums.
pub(super) fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "yes" => Some(true),
        "false" | "no" => Some(false),
        _ => None,
    }
}

pub(super) fn parse_counter(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

pub(super) fn not_json(status: u16, body: &[u8], error: json::JsonError) -> RouterOsError {
    let message = if body.trim_ascii_start().starts_with(b"<") {
        "reply is HTML, not JSON (a portal, proxy or WebFig answered)".to_owned()
    } else {
        format!("reply is not JSON: {error}")
    };
    RouterOsError::new(Some(status), ErrorKind::NotJson, message)
}

/// The JSON items of a reply: an array of objects, or one object.
pub(super) fn json_items(status: u16, body: &[u8]) -> Result<Vec<Map<String, Value>>, RouterOsError> {
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

pub(super) fn queue_from_json(o: &Map<String, Value>) -> QueueStats {
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

pub(super) fn status_error(status: u16, body: &[u8]) -> RouterOsError {
    if status >= 400 {
        parse_error_body(status, body)
    } else {
        RouterOsError::new(Some(status), ErrorKind::UnexpectedStatus, format!("unexpected status {status}"))
    }
}

/// Classifies RouterOS error text (REST `detail` or a console line). Order matters:
/// `failure: no such item` is `NotFound`, `std failure: not allowed` is a policy problem.
pub(super) fn classify(text: &str) -> Option<ErrorKind> {
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
