//! HTTP/1.1 client codec for the RouterOS REST API: a request writer and an incremental
//! response parser. Pure: no I/O, no clock; bytes in, bytes and values out.
//!
//! In scope (RFC 9112): writing one request with Basic auth and an optional JSON body;
//! parsing one response at a time from arbitrarily split input, with `Content-Length`,
//! `chunked` (extensions and trailers accepted and discarded) and close-delimited bodies,
//! interim `1xx` responses skipped, and no body for `HEAD`, `204` and `304`. Size limits on
//! the head, the header count and the body turn hostile or broken peers into errors.
//!
//! Out of scope: sockets and TLS (the shell and the TLS stage own them), redirects, content
//! codings (we never send `Accept-Encoding`, so a `Content-Encoding` other than `identity`
//! is an error), pipelining (one request in flight; bytes after a complete response are
//! left to the caller), `Expect: 100-continue`, and upgrades.
//!
//! The response parser is a small state machine, fed bytes with [`ResponseParser::feed`]:
//!
//! ```text
//!            feed                  head complete (1xx: back to Head)
//!   ┌──────► Head ───────────────────────────┬──────────────┬───────────────┐
//!   │          │                             ▼              ▼               ▼
//!   │          │                      Body(Length n)  Body(Chunked)   Body(Close)
//!   │          │ HEAD/204/304/CL 0           │ n bytes      │ 0-chunk +     │ finish_eof()
//!   │          ▼                             ▼              ▼ trailers      ▼
//!   │        Done ◄──────────────────────────┴──────────────┴───────────────┘
//!   │          │ take_response(), reset()
//!   └──────────┘
//!   any state ── bad bytes / limit / finish_eof() too early ──► Failed(Error)
//! ```
//!
//! Every state consumes input byte by byte (bodies by slices), so the result never depends
//! on where the input was split; the tests check every split of every sample.

use std::fmt;

/// Default limit on the response head (status line + headers), and on a trailer section.
/// RouterOS heads are a few hundred bytes; 16 KiB is what common servers accept as well.
pub const DEFAULT_MAX_HEAD: usize = 16 * 1024;
/// Default limit on the number of header (or trailer) fields.
pub const DEFAULT_MAX_HEADERS: usize = 64;
/// Default limit on a decoded body. A queue-tree item is about 500 bytes; a whole mangle
/// table of a few hundred rules stays far below this.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;
/// Longest accepted chunk-size line, extensions included (RFC 9112 §7.1.1 sets no limit;
/// ours only stops an endless extension).
const MAX_CHUNK_LINE: usize = 1024;

/// Request methods the RouterOS REST API uses (ROUTEROS.md §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `print`.
    Get,
    /// Like `GET` without a body (RouterOS answers 501; here for completeness).
    Head,
    /// Commands (`/rest/<menu>/<command>`).
    Post,
    /// `add`.
    Put,
    /// `set` of one item by `.id`.
    Patch,
    /// `remove`.
    Delete,
}

impl Method {
    /// The method token as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// HTTP Basic credentials (RFC 7617). `Debug` never shows the password.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BasicAuth<'a> {
    /// User name; must not contain `:` or control characters (RFC 7617 §2).
    pub user: &'a str,
    /// Password; any bytes (it is base64-encoded), never printed.
    pub password: &'a str,
}

impl fmt::Debug for BasicAuth<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth").field("user", &self.user).field("password", &"<redacted>").finish()
    }
}

/// One request to write. `path` is the origin-form target, already percent-encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// The method.
    pub method: Method,
    /// Origin-form request target, e.g. `/rest/queue/tree?name=WAN-Download-1`.
    pub path: &'a str,
    /// `Host` header value: `host` or `host:port` (IPv6 in brackets).
    pub host: &'a str,
    /// Basic credentials, sent on every request (RouterOS has no sessions).
    pub auth: Option<BasicAuth<'a>>,
    /// JSON body; when present `Content-Type: application/json` is sent (RouterOS answers
    /// 415 without it, ROUTEROS.md §1.4).
    pub body: Option<&'a [u8]>,
}

/// Why a request could not be written (a caller bug or unvalidated input, never the peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// The path is empty, does not start with `/`, or holds a space, control or non-ASCII byte.
    BadPath,
    /// The host is empty or holds a byte that could end the header or change the authority.
    BadHost,
    /// The user name holds `:` or a control character (RFC 7617 §2).
    BadUser,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RequestError::BadPath => "request path must start with '/' and hold only visible ASCII",
            RequestError::BadHost => "host must be non-empty visible ASCII without '/', '?', '#' or '@'",
            RequestError::BadUser => "user name must not contain ':' or control characters",
        })
    }
}

impl std::error::Error for RequestError {}

impl Request<'_> {
    /// Appends the request (head and body) to `out`; returns how many bytes were appended.
    /// On error nothing is appended. Header order: `Host`, `Authorization`, `User-Agent`,
    /// `Accept`, `Connection`, then `Content-Type` and `Content-Length`.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<usize, RequestError> {
        if !is_valid_path(self.path) {
            return Err(RequestError::BadPath);
        }
        if !is_valid_host(self.host) {
            return Err(RequestError::BadHost);
        }
        if let Some(auth) = &self.auth {
            if auth.user.bytes().any(|b| b == b':' || b.is_ascii_control()) {
                return Err(RequestError::BadUser);
            }
        }
        let start = out.len();
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.path.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        out.extend_from_slice(self.host.as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(auth) = &self.auth {
            out.extend_from_slice(b"Authorization: Basic ");
            base64_encode_parts(&[auth.user.as_bytes(), b":", auth.password.as_bytes()], out);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"User-Agent: wanctl/");
        out.extend_from_slice(crate::VERSION.as_bytes());
        out.extend_from_slice(b"\r\nAccept: application/json\r\nConnection: keep-alive\r\n");
        match self.body {
            Some(body) => {
                out.extend_from_slice(b"Content-Type: application/json\r\nContent-Length: ");
                out.extend_from_slice(body.len().to_string().as_bytes());
                out.extend_from_slice(b"\r\n\r\n");
                out.extend_from_slice(body);
            }
            // RFC 9110 §8.6: a request without content sends no Content-Length unless the
            // method usually has content; PATCH/POST/PUT get an explicit 0.
            None if matches!(self.method, Method::Post | Method::Put | Method::Patch) => {
                out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
            }
            None => out.extend_from_slice(b"\r\n"),
        }
        Ok(out.len() - start)
    }
}

impl fmt::Display for Request<'_> {
    /// `METHOD path`: what logs show of a request (never headers, so never credentials).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

fn is_valid_path(path: &str) -> bool {
    path.starts_with('/') && path.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

fn is_valid_host(host: &str) -> bool {
    !host.is_empty() && host.bytes().all(|b| (0x21..=0x7e).contains(&b) && !b"/?#@\\".contains(&b))
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 §4) of `input`, appended to `out`.
pub fn base64_encode(input: &[u8], out: &mut Vec<u8>) {
    base64_encode_parts(&[input], out);
}

/// Base64 of the concatenation of `parts`, without building the concatenation (so the
/// password is never copied into a temporary buffer of ours).
fn base64_encode_parts(parts: &[&[u8]], out: &mut Vec<u8>) {
    let mut group = [0u8; 3];
    let mut filled = 0;
    for &b in parts.iter().flat_map(|p| p.iter()) {
        group[filled] = b;
        filled += 1;
        if filled == 3 {
            emit_base64_group(group, 3, out);
            filled = 0;
        }
    }
    if filled > 0 {
        group[filled..].fill(0);
        emit_base64_group(group, filled, out);
    }
}

fn emit_base64_group(g: [u8; 3], len: usize, out: &mut Vec<u8>) {
    let n = (u32::from(g[0]) << 16) | (u32::from(g[1]) << 8) | u32::from(g[2]);
    for i in 0..4 {
        if i <= len {
            out.push(BASE64[((n >> (18 - 6 * i)) & 0x3f) as usize]);
        } else {
            out.push(b'=');
        }
    }
}

/// What went wrong with a response. Small and `Copy`; each variant names one defect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The status line is not `HTTP/1.x SP 3DIGIT [SP reason]` with a code of 100–599.
    BadStatusLine,
    /// The status line names a version other than HTTP/1.0 or HTTP/1.1.
    UnsupportedVersion,
    /// A header line is not `token ":" value` or holds a forbidden byte.
    BadHeader,
    /// A header line starts with whitespace (obsolete line folding, RFC 9112 §5.2).
    HeaderFolded,
    /// The head (or the trailer section) exceeds the size limit.
    HeadersTooLarge,
    /// More header (or trailer) fields than the limit.
    TooManyHeaders,
    /// `Content-Length` is not a decimal number, or several disagree.
    BadContentLength,
    /// `Transfer-Encoding` is not exactly `chunked`.
    UnsupportedTransferEncoding,
    /// `Content-Encoding` other than `identity` (we never ask for one).
    UnsupportedContentEncoding,
    /// `101 Switching Protocols`, which we never ask for.
    UnexpectedSwitchingProtocols,
    /// A chunk-size line does not start with hex digits, or holds a forbidden byte.
    BadChunkSize,
    /// A chunk-size line (with its extensions) exceeds the line limit.
    ChunkLineTooLong,
    /// Chunk data, or a chunk-size line, is not followed by CRLF.
    ChunkExpectedCrLf,
    /// A trailer line is not `token ":" value`.
    BadTrailer,
    /// The body exceeds the size limit (declared or received).
    BodyTooLarge,
    /// The connection ended inside a response.
    Truncated,
    /// The connection ended before the first byte of a response. On a reused keep-alive
    /// connection this is the server closing an idle connection: retry on a fresh one.
    ClosedBeforeResponse,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::BadStatusLine => "malformed status line",
            Error::UnsupportedVersion => "unsupported HTTP version",
            Error::BadHeader => "malformed header line",
            Error::HeaderFolded => "folded header line (obsolete line folding)",
            Error::HeadersTooLarge => "response head too large",
            Error::TooManyHeaders => "too many header fields",
            Error::BadContentLength => "invalid Content-Length",
            Error::UnsupportedTransferEncoding => "unsupported Transfer-Encoding",
            Error::UnsupportedContentEncoding => "unsupported Content-Encoding",
            Error::UnexpectedSwitchingProtocols => "unexpected 101 Switching Protocols",
            Error::BadChunkSize => "malformed chunk size",
            Error::ChunkLineTooLong => "chunk size line too long",
            Error::ChunkExpectedCrLf => "expected CRLF after chunk",
            Error::BadTrailer => "malformed trailer line",
            Error::BodyTooLarge => "response body too large",
            Error::Truncated => "connection closed inside a response",
            Error::ClosedBeforeResponse => "connection closed before a response",
        })
    }
}

impl std::error::Error for Error {}

/// Size limits of the response parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of a response head (status line, headers, final empty line); also bounds a
    /// trailer section.
    pub max_head: usize,
    /// Header fields in a head; also bounds the trailer fields.
    pub max_headers: usize,
    /// Bytes of a decoded body.
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_head: DEFAULT_MAX_HEAD, max_headers: DEFAULT_MAX_HEADERS, max_body: DEFAULT_MAX_BODY }
    }
}

/// The HTTP version of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: not persistent unless `Connection: keep-alive`.
    Http10,
    /// HTTP/1.1: persistent unless `Connection: close`.
    Http11,
}

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Version from the status line.
    pub version: Version,
    /// Status code, 200–599 (interim 1xx responses are skipped).
    pub status: u16,
    /// Reason phrase (may be empty).
    pub reason: String,
    /// Header fields in arrival order, names as sent (look up with [`Response::header`]).
    pub headers: Vec<(String, String)>,
    /// Decoded body (de-chunked).
    pub body: Vec<u8>,
    /// Whether the connection may carry another request: HTTP/1.1 without
    /// `Connection: close`, or HTTP/1.0 with `Connection: keep-alive`; never after a
    /// close-delimited body or a message with both `Transfer-Encoding` and `Content-Length`.
    pub keep_alive: bool,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// True for a 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Result of [`ResponseParser::feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// All input was consumed and the response is not complete yet.
    NeedMore,
    /// The response is complete after `consumed` bytes of this input; the rest is not part
    /// of it. Take it with [`ResponseParser::take_response`].
    Done {
        /// Bytes of this call's input that belonged to the response.
        consumed: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Length { remaining: u64 },
    Chunked(Chunk),
    Close,
    Done,
    Failed(Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// In the chunk-size line.
    Size { value: u64, digits: u32, phase: SizePhase, line_len: usize },
    /// Inside chunk data.
    Data { remaining: u64 },
    /// After chunk data: CR (or a bare LF) expected, then LF.
    DataEnd { seen_cr: bool },
    /// In the trailer section (lines accumulate in the head buffer).
    Trailer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SizePhase {
    Digits,
    /// Whitespace after the digits (BWS before `;`).
    Space,
    /// In a chunk extension.
    Ext,
    /// Saw CR; LF must follow.
    Cr,
}

/// Incremental parser for one response at a time. Feed it bytes as they arrive; call
/// [`finish_eof`](Self::finish_eof) when the peer closes. Never panics on any input.
#[derive(Debug)]
pub struct ResponseParser {
    limits: Limits,
    /// The request was `HEAD`: the response has no body whatever its headers say.
    head_request: bool,
    state: State,
    /// Head (or current trailer line) bytes.
    buf: Vec<u8>,
    /// Start of the current line in `buf`.
    line_start: usize,
    /// Lines completed in the current head or trailer section.
    lines: usize,
    /// Any byte of this response (or an interim one) has arrived.
    received_any: bool,
    response: Option<Response>,
}

impl ResponseParser {
    /// A parser for the response to a request with `method`, with default limits.
    pub fn new(method: Method) -> ResponseParser {
        ResponseParser::with_limits(method, Limits::default())
    }

    /// A parser with explicit limits.
    pub fn with_limits(method: Method, limits: Limits) -> ResponseParser {
        ResponseParser {
            limits,
            head_request: method == Method::Head,
            state: State::Head,
            buf: Vec::new(),
            line_start: 0,
            lines: 0,
            received_any: false,
            response: None,
        }
    }

    /// Makes the parser ready for the response to the next request, keeping its buffer.
    pub fn reset(&mut self, method: Method) {
        self.head_request = method == Method::Head;
        self.state = State::Head;
        self.buf.clear();
        self.line_start = 0;
        self.lines = 0;
        self.received_any = false;
        self.response = None;
    }

    /// True once a complete response is available (until it is taken).
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes bytes of the response. After an error, every call returns the same error.
    /// After `Done`, further calls consume nothing and return `Done { consumed: 0 }`.
    pub fn feed(&mut self, input: &[u8]) -> Result<Progress, Error> {
        let mut pos = 0;
        loop {
            match self.state {
                State::Failed(e) => return Err(e),
                State::Done => return Ok(Progress::Done { consumed: pos }),
                _ if pos == input.len() => return Ok(Progress::NeedMore),
                _ => {}
            }
            match self.step(&input[pos..]) {
                Ok(used) => pos += used,
                Err(e) => {
                    self.state = State::Failed(e);
                    return Err(e);
                }
            }
        }
    }

    /// The peer closed the connection: completes a close-delimited body, otherwise reports
    /// `Truncated` (or `ClosedBeforeResponse` if nothing arrived at all).
    pub fn finish_eof(&mut self) -> Result<(), Error> {
        let outcome = match self.state {
            State::Done | State::Close => Ok(()),
            State::Failed(e) => Err(e),
            State::Head if !self.received_any => Err(Error::ClosedBeforeResponse),
            State::Head | State::Length { .. } | State::Chunked(_) => Err(Error::Truncated),
        };
        self.state = match outcome {
            Ok(()) => State::Done,
            Err(e) => State::Failed(e),
        };
        outcome
    }

    /// The complete response, once; `None` before it is complete.
    pub fn take_response(&mut self) -> Option<Response> {
        if self.state == State::Done { self.response.take() } else { None }
    }

    /// Consumes at least one byte of non-empty `input`, or changes state.
    fn step(&mut self, input: &[u8]) -> Result<usize, Error> {
        match self.state {
            State::Head => self.step_head(input),
            State::Length { remaining } => {
                let n = usize::try_from(remaining).unwrap_or(usize::MAX).min(input.len());
                self.body_mut().extend_from_slice(&input[..n]);
                let remaining = remaining - n as u64;
                self.state = if remaining == 0 { State::Done } else { State::Length { remaining } };
                Ok(n)
            }
            State::Close => {
                let limit = self.limits.max_body;
                let body = self.body_mut();
                if body.len().saturating_add(input.len()) > limit {
                    return Err(Error::BodyTooLarge);
                }
                body.extend_from_slice(input);
                Ok(input.len())
            }
            State::Chunked(chunk) => self.step_chunked(chunk, input),
            State::Done | State::Failed(_) => Ok(0),
        }
    }

    fn body_mut(&mut self) -> &mut Vec<u8> {
        // Body states are entered only after the head created the response.
        &mut self.response.get_or_insert_with(empty_response).body
    }

    fn step_head(&mut self, input: &[u8]) -> Result<usize, Error> {
        for (i, &b) in input.iter().enumerate() {
            self.received_any = true;
            if self.buf.len() >= self.limits.max_head {
                return Err(Error::HeadersTooLarge);
            }
            self.buf.push(b);
            if b != b'\n' {
                continue;
            }
            let line = &self.buf[self.line_start..];
            if line == b"\n" || line == b"\r\n" {
                if self.line_start == 0 {
                    // Empty lines before the status line (a server's stray CRLF after the
                    // previous body): ignored, as RFC 9112 §2.2 allows for request lines.
                    self.buf.clear();
                    continue;
                }
                self.finish_head()?;
                return Ok(i + 1);
            }
            self.lines += 1;
            // The status line is not a header field.
            if self.lines > self.limits.max_headers + 1 {
                return Err(Error::TooManyHeaders);
            }
            self.line_start = self.buf.len();
        }
        Ok(input.len())
    }

    /// The head in `buf` is complete: parse it and pick the body framing (RFC 9112 §6.3).
    fn finish_head(&mut self) -> Result<(), Error> {
        let head = parse_head(&self.buf)?;
        self.buf.clear();
        self.line_start = 0;
        self.lines = 0;
        if head.status == 101 {
            return Err(Error::UnexpectedSwitchingProtocols);
        }
        if head.status < 200 {
            // Interim response: skip it and parse the next head.
            return Ok(());
        }
        let mut keep_alive = head.keep_alive;
        let state = if self.head_request || head.status == 204 || head.status == 304 {
            State::Done
        } else if head.chunked {
            if head.content_length.is_some() {
                // RFC 9112 §6.1: both present means a possible smuggling attempt; chunked
                // wins and the connection must not be reused.
                keep_alive = false;
            }
            State::Chunked(Chunk::Size { value: 0, digits: 0, phase: SizePhase::Digits, line_len: 0 })
        } else if let Some(len) = head.content_length {
            if len > self.limits.max_body as u64 {
                return Err(Error::BodyTooLarge);
            }
            if len == 0 { State::Done } else { State::Length { remaining: len } }
        } else {
            keep_alive = false;
            State::Close
        };
        let capacity = match state {
            State::Length { remaining } => remaining as usize,
            _ => 0,
        };
        self.response = Some(Response {
            version: head.version,
            status: head.status,
            reason: head.reason,
            headers: head.headers,
            body: Vec::with_capacity(capacity),
            keep_alive,
        });
        self.state = state;
        Ok(())
    }

    fn step_chunked(&mut self, chunk: Chunk, input: &[u8]) -> Result<usize, Error> {
        match chunk {
            Chunk::Data { remaining } => {
                let n = usize::try_from(remaining).unwrap_or(usize::MAX).min(input.len());
                self.body_mut().extend_from_slice(&input[..n]);
                let remaining = remaining - n as u64;
                self.state = State::Chunked(if remaining == 0 {
                    Chunk::DataEnd { seen_cr: false }
                } else {
                    Chunk::Data { remaining }
                });
                Ok(n)
            }
            Chunk::DataEnd { seen_cr } => {
                let next = match (seen_cr, input[0]) {
                    (false, b'\r') => Chunk::DataEnd { seen_cr: true },
                    (_, b'\n') => Chunk::Size { value: 0, digits: 0, phase: SizePhase::Digits, line_len: 0 },
                    _ => return Err(Error::ChunkExpectedCrLf),
                };
                self.state = State::Chunked(next);
                Ok(1)
            }
            Chunk::Size { value, digits, phase, line_len } => {
                let b = input[0];
                let line_len = line_len + 1;
                if line_len > MAX_CHUNK_LINE {
                    return Err(Error::ChunkLineTooLong);
                }
                let next = match (phase, b) {
                    // A bare LF is accepted as a line end, as RFC 9112 §2.2 allows.
                    (_, b'\n') => return self.end_size_line(value, digits),
                    (SizePhase::Cr, _) => return Err(Error::ChunkExpectedCrLf),
                    (_, b'\r') => Chunk::Size { value, digits, phase: SizePhase::Cr, line_len },
                    (SizePhase::Digits, _) if b.is_ascii_hexdigit() => {
                        let digit = u64::from(hex_value(b));
                        let value = value
                            .checked_mul(16)
                            .and_then(|v| v.checked_add(digit))
                            .ok_or(Error::BodyTooLarge)?;
                        if value > self.limits.max_body as u64 {
                            return Err(Error::BodyTooLarge);
                        }
                        Chunk::Size { value, digits: digits + 1, phase, line_len }
                    }
                    (SizePhase::Digits | SizePhase::Space, b' ' | b'\t') if digits > 0 => {
                        Chunk::Size { value, digits, phase: SizePhase::Space, line_len }
                    }
                    (SizePhase::Digits | SizePhase::Space, b';') if digits > 0 => {
                        Chunk::Size { value, digits, phase: SizePhase::Ext, line_len }
                    }
                    (SizePhase::Ext, _) if b == b'\t' || (b >= 0x20 && b != 0x7f) => {
                        Chunk::Size { value, digits, phase, line_len }
                    }
                    _ => return Err(Error::BadChunkSize),
                };
                self.state = State::Chunked(next);
                Ok(1)
            }
            Chunk::Trailer => self.step_trailer(input),
        }
    }

    fn end_size_line(&mut self, size: u64, digits: u32) -> Result<usize, Error> {
        if digits == 0 {
            return Err(Error::BadChunkSize);
        }
        let have = self.response.as_ref().map_or(0, |r| r.body.len()) as u64;
        if have.saturating_add(size) > self.limits.max_body as u64 {
            return Err(Error::BodyTooLarge);
        }
        self.state = State::Chunked(if size == 0 {
            self.buf.clear();
            self.line_start = 0;
            self.lines = 0;
            Chunk::Trailer
        } else {
            Chunk::Data { remaining: size }
        });
        Ok(1)
    }

    fn step_trailer(&mut self, input: &[u8]) -> Result<usize, Error> {
        for (i, &b) in input.iter().enumerate() {
            if self.buf.len() >= self.limits.max_head {
                return Err(Error::HeadersTooLarge);
            }
            self.buf.push(b);
            if b != b'\n' {
                continue;
            }
            let line = strip_eol(&self.buf[self.line_start..]);
            if line.is_empty() {
                self.buf.clear();
                self.state = State::Done;
                return Ok(i + 1);
            }
            parse_header_line(line).map_err(|_| Error::BadTrailer)?;
            self.lines += 1;
            if self.lines > self.limits.max_headers {
                return Err(Error::TooManyHeaders);
            }
            self.line_start = self.buf.len();
        }
        Ok(input.len())
    }
}

fn empty_response() -> Response {
    Response {
        version: Version::Http11,
        status: 0,
        reason: String::new(),
        headers: Vec::new(),
        body: Vec::new(),
        keep_alive: false,
    }
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

/// A line without its `\n` or `\r\n`.
fn strip_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

struct Head {
    version: Version,
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    content_length: Option<u64>,
    chunked: bool,
    keep_alive: bool,
}

/// Parses a complete head (status line, header lines, final empty line).
fn parse_head(buf: &[u8]) -> Result<Head, Error> {
    let mut lines = buf.split_inclusive(|&b| b == b'\n').map(strip_eol);
    let status_line = lines.next().ok_or(Error::BadStatusLine)?;
    let (version, status, reason) = parse_status_line(status_line)?;
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        headers.push(parse_header_line(line)?);
    }

    let mut content_length: Option<u64> = None;
    let mut transfer_codings = 0usize;
    let mut chunked_last = false;
    let mut has_te = false;
    let mut close = false;
    let mut keep_alive_token = false;
    for (name, value) in &headers {
        if name.eq_ignore_ascii_case("content-length") {
            // RFC 9110 §8.6: a list of identical values may be accepted as one.
            for item in value.split(',') {
                let item = item.trim_matches([' ', '\t']);
                if item.is_empty() || item.len() > 19 || !item.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Error::BadContentLength);
                }
                let n: u64 = item.parse().map_err(|_| Error::BadContentLength)?;
                if content_length.is_some_and(|c| c != n) {
                    return Err(Error::BadContentLength);
                }
                content_length = Some(n);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            has_te = true;
            for coding in value.split(',') {
                let coding = coding.trim_matches([' ', '\t']);
                if coding.is_empty() {
                    continue;
                }
                // Only "chunked", once: anything else is a coding we cannot undo.
                if !coding.eq_ignore_ascii_case("chunked") || chunked_last {
                    return Err(Error::UnsupportedTransferEncoding);
                }
                chunked_last = true;
                transfer_codings += 1;
            }
        } else if name.eq_ignore_ascii_case("content-encoding") {
            for coding in value.split(',') {
                let coding = coding.trim_matches([' ', '\t']);
                if !coding.is_empty() && !coding.eq_ignore_ascii_case("identity") {
                    return Err(Error::UnsupportedContentEncoding);
                }
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',') {
                let token = token.trim_matches([' ', '\t']);
                close |= token.eq_ignore_ascii_case("close");
                keep_alive_token |= token.eq_ignore_ascii_case("keep-alive");
            }
        }
    }
    if has_te && transfer_codings == 0 {
        return Err(Error::UnsupportedTransferEncoding);
    }
    let keep_alive = !close
        && match version {
            Version::Http11 => true,
            Version::Http10 => keep_alive_token && !has_te,
        };
    Ok(Head { version, status, reason, headers, content_length, chunked: has_te, keep_alive })
}

fn parse_status_line(line: &[u8]) -> Result<(Version, u16, String), Error> {
    let version = match line.get(..8) {
        Some(b"HTTP/1.1") => Version::Http11,
        Some(b"HTTP/1.0") => Version::Http10,
        Some(v) if v.starts_with(b"HTTP/") => return Err(Error::UnsupportedVersion),
        _ => return Err(Error::BadStatusLine),
    };
    let rest = &line[8..];
    let code = match rest {
        [b' ', a, b, c, ..] if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => return Err(Error::BadStatusLine),
    };
    if !(100..=599).contains(&code) {
        return Err(Error::BadStatusLine);
    }
    let reason = match &rest[4..] {
        [] => &[][..],
        [b' ', reason @ ..] => reason,
        _ => return Err(Error::BadStatusLine),
    };
    if !reason.iter().all(|&b| is_field_byte(b)) {
        return Err(Error::BadStatusLine);
    }
    Ok((version, code, String::from_utf8_lossy(reason).into_owned()))
}

/// `field-name ":" OWS field-value OWS` (RFC 9112 §5).
fn parse_header_line(line: &[u8]) -> Result<(String, String), Error> {
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return Err(Error::HeaderFolded);
    }
    let colon = line.iter().position(|&b| b == b':').ok_or(Error::BadHeader)?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().all(|&b| is_token_byte(b)) {
        return Err(Error::BadHeader);
    }
    if !value.iter().all(|&b| is_field_byte(b)) {
        return Err(Error::BadHeader);
    }
    let value = value.trim_ascii();
    Ok((String::from_utf8_lossy(name).into_owned(), String::from_utf8_lossy(value).into_owned()))
}

/// `tchar` (RFC 9110 §5.6.2).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// HTAB, SP, VCHAR or obs-text.
fn is_field_byte(b: u8) -> bool {
    b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    const QUEUE_JSON: &str = include_str!("../../tests/fixtures/routeros/rest/queue-tree-get-by-name.json");
    const ERROR_401: &str = include_str!("../../tests/fixtures/routeros/rest/errors/401-unauthorized.json");
    const EMPTY_ARRAY: &str =
        include_str!("../../tests/fixtures/routeros/rest/queue-tree-get-by-name-nomatch.json");

    /// Outcome of parsing a whole stream: the response or the error, and total bytes used.
    type Outcome = (Result<Response, Error>, usize);

    /// Feeds `pieces` in order, then signals EOF if the response is still incomplete.
    fn drive(method: Method, limits: Limits, pieces: &[&[u8]]) -> Outcome {
        let mut p = ResponseParser::with_limits(method, limits);
        let mut used = 0;
        for piece in pieces {
            match p.feed(piece) {
                Ok(Progress::NeedMore) => used += piece.len(),
                Ok(Progress::Done { consumed }) => {
                    used += consumed;
                    return (p.take_response().ok_or(Error::Truncated), used);
                }
                // Bytes used before an error carry no meaning.
                Err(e) => return (Err(e), 0),
            }
        }
        match p.finish_eof() {
            Ok(()) => (p.take_response().ok_or(Error::Truncated), used),
            Err(e) => (Err(e), 0),
        }
    }

    fn whole(input: &[u8]) -> Outcome {
        drive(Method::Get, Limits::default(), &[input])
    }

    /// Parses whole, at every two-way split, and byte by byte; all must agree.
    fn check_all_splits(name: &str, method: Method, limits: Limits, input: &[u8]) -> Outcome {
        let want = drive(method, limits, &[input]);
        for cut in 0..=input.len() {
            let got = drive(method, limits, &[&input[..cut], &input[cut..]]);
            assert_eq!(got, want, "{name}: split at {cut} differs");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(drive(method, limits, &bytes), want, "{name}: byte-by-byte differs");
        want
    }

    fn content_length(body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn chunked(body: &str, piece: usize) -> Vec<u8> {
        let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for part in body.as_bytes().chunks(piece.max(1)) {
            out.extend_from_slice(format!("{:x};ext=\"v\"\r\n", part.len()).as_bytes());
            out.extend_from_slice(part);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
        out
    }

    /// (name, request method, input, expected (status, body, keep_alive) or error).
    type Sample = (&'static str, Method, Vec<u8>, Result<(u16, Vec<u8>, bool), Error>);

    fn samples() -> Vec<Sample> {
        let q = QUEUE_JSON.as_bytes().to_vec();
        vec![
            ("content_length", Method::Get, content_length(QUEUE_JSON), Ok((200, q.clone(), true))),
            ("chunked_small_pieces", Method::Get, chunked(QUEUE_JSON, 7), Ok((200, q.clone(), true))),
            ("chunked_one_piece", Method::Get, chunked(QUEUE_JSON, 100_000), Ok((200, q.clone(), true))),
            (
                "close_delimited",
                Method::Get,
                format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{QUEUE_JSON}").into_bytes(),
                Ok((200, q.clone(), false)),
            ),
            (
                "error_401_with_www_authenticate",
                Method::Get,
                format!(
                    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"MikroTik\"\r\nContent-Length: {}\r\n\r\n{ERROR_401}",
                    ERROR_401.len()
                )
                .into_bytes(),
                Ok((401, ERROR_401.as_bytes().to_vec(), true)),
            ),
            (
                "interim_100_skipped",
                Method::Get,
                format!("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{EMPTY_ARRAY}")
                    .into_bytes(),
                Ok((200, b"[]".to_vec(), true)),
            ),
            (
                "no_content_204",
                Method::Delete,
                b"HTTP/1.1 204 No Content\r\nContent-Length: 99\r\n\r\n".to_vec(),
                Ok((204, vec![], true)),
            ),
            (
                "head_has_no_body",
                Method::Head,
                b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 40\r\n\r\n".to_vec(),
                Ok((501, vec![], true)),
            ),
            (
                "http10_close_by_default",
                Method::Get,
                b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n[]".to_vec(),
                Ok((200, b"[]".to_vec(), false)),
            ),
            (
                "http10_keep_alive",
                Method::Get,
                b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\n[]".to_vec(),
                Ok((200, b"[]".to_vec(), true)),
            ),
            (
                "connection_close",
                Method::Get,
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n[]".to_vec(),
                Ok((200, b"[]".to_vec(), false)),
            ),
            (
                "bare_lf_and_leading_crlf",
                Method::Get,
                b"\r\nHTTP/1.1 200 OK\nContent-Length: 2\n\n[]".to_vec(),
                Ok((200, b"[]".to_vec(), true)),
            ),
            (
                "te_and_cl_not_reused",
                Method::Get,
                b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n[]\r\n0\r\n\r\n"
                    .to_vec(),
                Ok((200, b"[]".to_vec(), false)),
            ),
            (
                "html_403",
                Method::Get,
                b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/html\r\nContent-Length: 9\r\n\r\n<html/>\r\n".to_vec(),
                Ok((403, b"<html/>\r\n".to_vec(), true)),
            ),
            ("truncated_head", Method::Get, b"HTTP/1.1 200 OK\r\nContent-Len".to_vec(), Err(Error::Truncated)),
            ("nothing", Method::Get, vec![], Err(Error::ClosedBeforeResponse)),
            (
                "truncated_length_body",
                Method::Get,
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n[]".to_vec(),
                Err(Error::Truncated),
            ),
            (
                "truncated_chunked",
                Method::Get,
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n[]\r\n".to_vec(),
                Err(Error::Truncated),
            ),
            (
                "chunk_data_without_crlf",
                Method::Get,
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n[]xx0\r\n\r\n".to_vec(),
                Err(Error::ChunkExpectedCrLf),
            ),
            (
                "chunk_size_not_hex",
                Method::Get,
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
                Err(Error::BadChunkSize),
            ),
            (
                "bad_content_length",
                Method::Get,
                b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n".to_vec(),
                Err(Error::BadContentLength),
            ),
            (
                "conflicting_content_length",
                Method::Get,
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n[]".to_vec(),
                Err(Error::BadContentLength),
            ),
            (
                "gzip_transfer_encoding",
                Method::Get,
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".to_vec(),
                Err(Error::UnsupportedTransferEncoding),
            ),
            (
                "gzip_content_encoding",
                Method::Get,
                b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 0\r\n\r\n".to_vec(),
                Err(Error::UnsupportedContentEncoding),
            ),
            ("bad_status_line", Method::Get, b"HTTP/1.1 2x0 OK\r\n\r\n".to_vec(), Err(Error::BadStatusLine)),
            ("not_http", Method::Get, b"SSH-2.0-ROSSSH\r\n\r\n".to_vec(), Err(Error::BadStatusLine)),
            ("http2", Method::Get, b"HTTP/2.0 200 OK\r\n\r\n".to_vec(), Err(Error::UnsupportedVersion)),
            (
                "space_before_colon",
                Method::Get,
                b"HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n".to_vec(),
                Err(Error::BadHeader),
            ),
            (
                "folded_header",
                Method::Get,
                b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n".to_vec(),
                Err(Error::HeaderFolded),
            ),
            (
                "switching_protocols",
                Method::Get,
                b"HTTP/1.1 101 Switching Protocols\r\n\r\n".to_vec(),
                Err(Error::UnexpectedSwitchingProtocols),
            ),
            (
                "bad_trailer",
                Method::Get,
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nnot a header\r\n\r\n".to_vec(),
                Err(Error::BadTrailer),
            ),
        ]
    }

    #[test]
    fn samples_parse_the_same_at_every_split() {
        for (name, method, input, want) in samples() {
            let (got, used) = check_all_splits(name, method, Limits::default(), &input);
            let got = got.map(|r| (r.status, r.body, r.keep_alive));
            assert_eq!(got, want, "{name}");
            if want.is_ok() {
                assert_eq!(used, input.len(), "{name}: consumed");
            }
        }
    }

    #[test]
    fn bytes_after_a_complete_response_are_left_over() {
        let mut input = content_length("[]");
        let len = input.len();
        input.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        let mut p = ResponseParser::new(Method::Get);
        assert_eq!(p.feed(&input), Ok(Progress::Done { consumed: len }));
        assert_eq!(p.feed(b"more"), Ok(Progress::Done { consumed: 0 }));
        let r = p.take_response().expect("complete");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(p.take_response(), None);
        p.reset(Method::Get);
        assert_eq!(p.feed(&input[len..]), Ok(Progress::NeedMore));
    }

    #[test]
    fn truncated_input_needs_more_then_eof_reports_truncated() {
        let input = content_length(QUEUE_JSON);
        for cut in 0..input.len() {
            let mut p = ResponseParser::new(Method::Get);
            assert_eq!(p.feed(&input[..cut]), Ok(Progress::NeedMore), "cut {cut}");
            let want = if cut == 0 { Error::ClosedBeforeResponse } else { Error::Truncated };
            assert_eq!(p.finish_eof(), Err(want), "cut {cut}");
            assert_eq!(p.feed(b"x"), Err(want), "errors are sticky");
        }
    }

    #[test]
    fn limits_are_enforced() {
        let small = Limits { max_head: 64, max_headers: 2, max_body: 16 };
        let cases: &[(&str, &[u8], Error)] = &[
            (
                "head_too_large",
                b"HTTP/1.1 200 OK\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
                Error::HeadersTooLarge,
            ),
            ("too_many_headers", b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", Error::TooManyHeaders),
            (
                "declared_body_too_large",
                b"HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n",
                Error::BodyTooLarge,
            ),
            (
                "chunk_too_large",
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n11\r\n",
                Error::BodyTooLarge,
            ),
            (
                "chunks_add_up_too_large",
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n123456789\r\n9\r\n",
                Error::BodyTooLarge,
            ),
            (
                "chunk_size_overflow",
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\n",
                Error::BodyTooLarge,
            ),
            ("close_body_too_large", b"HTTP/1.1 200 OK\r\n\r\n01234567890123456", Error::BodyTooLarge),
        ];
        for (name, input, want) in cases {
            let (got, _) = check_all_splits(name, Method::Get, small, input);
            assert_eq!(got, Err(*want), "{name}");
        }
        let mut endless_ext = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;".to_vec();
        endless_ext.extend(std::iter::repeat_n(b'a', 2000));
        assert_eq!(whole(&endless_ext).0, Err(Error::ChunkLineTooLong));
    }

    #[test]
    fn request_has_documented_headers() {
        let body = br#"{"max-limit":"450000000"}"#;
        let req = Request {
            method: Method::Patch,
            path: "/rest/queue/tree/*1000000",
            host: "192.168.88.1",
            auth: Some(BasicAuth { user: "wanctl", password: "s3cr:et" }),
            body: Some(body),
        };
        let mut out = b"old".to_vec();
        out.clear();
        let n = req.write(&mut out).expect("valid request");
        assert_eq!(n, out.len());
        let want = format!(
            "PATCH /rest/queue/tree/*1000000 HTTP/1.1\r\nHost: 192.168.88.1\r\n\
             Authorization: Basic d2FuY3RsOnMzY3I6ZXQ=\r\nUser-Agent: wanctl/{}\r\n\
             Accept: application/json\r\nConnection: keep-alive\r\n\
             Content-Type: application/json\r\nContent-Length: 25\r\n\r\n{{\"max-limit\":\"450000000\"}}",
            crate::VERSION
        );
        assert_eq!(String::from_utf8(out).expect("ascii"), want);

        let get = Request {
            method: Method::Get,
            path: "/rest/system/identity",
            host: "r:8080",
            auth: None,
            body: None,
        };
        let mut out = Vec::new();
        get.write(&mut out).expect("valid");
        let text = String::from_utf8(out).expect("ascii");
        assert!(text.starts_with("GET /rest/system/identity HTTP/1.1\r\nHost: r:8080\r\n"));
        assert!(!text.contains("Content-Length") && !text.contains("Authorization"));
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn password_never_printed() {
        let req = Request {
            method: Method::Get,
            path: "/rest/system/identity",
            host: "router",
            auth: Some(BasicAuth { user: "u", password: "hunter2" }),
            body: None,
        };
        assert!(!format!("{req:?}").contains("hunter2"));
        assert!(!format!("{req:#?}").contains("hunter2"));
        assert_eq!(req.to_string(), "GET /rest/system/identity");
    }

    #[test]
    fn request_injection_is_refused() {
        let base = Request { method: Method::Get, path: "/rest", host: "h", auth: None, body: None };
        let cases = [
            ("path_crlf", Request { path: "/rest\r\nX: y", ..base }, RequestError::BadPath),
            ("path_space", Request { path: "/a b", ..base }, RequestError::BadPath),
            ("path_relative", Request { path: "rest", ..base }, RequestError::BadPath),
            ("host_crlf", Request { host: "h\r\nX: y", ..base }, RequestError::BadHost),
            ("host_userinfo", Request { host: "u@h", ..base }, RequestError::BadHost),
            ("host_empty", Request { host: "", ..base }, RequestError::BadHost),
            (
                "user_colon",
                Request { auth: Some(BasicAuth { user: "a:b", password: "" }), ..base },
                RequestError::BadUser,
            ),
        ];
        for (name, req, want) in cases {
            let mut out = Vec::new();
            assert_eq!(req.write(&mut out), Err(want), "{name}");
            assert!(out.is_empty(), "{name}: nothing written");
        }
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, want) in vectors {
            let mut out = Vec::new();
            base64_encode(input.as_bytes(), &mut out);
            assert_eq!(out, want.as_bytes(), "{input:?}");
        }
    }

    /// A random valid response: framing, optional interim response, random body bytes.
    fn random_valid(rng: &mut Rng) -> Vec<u8> {
        let len = (rng.next_u32() % 300) as usize;
        let body: Vec<u8> = (0..len).map(|_| rng.next_u32() as u8).collect();
        let mut out = Vec::new();
        if rng.chance(0.2) {
            out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n");
        match rng.next_u32() % 3 {
            0 => {
                out.extend_from_slice(format!("Content-Length: {len}\r\n\r\n").as_bytes());
                out.extend_from_slice(&body);
            }
            1 => {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                let mut rest = &body[..];
                while !rest.is_empty() {
                    let n = (1 + rng.next_u32() as usize % 64).min(rest.len());
                    out.extend_from_slice(format!("{n:X}\r\n").as_bytes());
                    out.extend_from_slice(&rest[..n]);
                    out.extend_from_slice(b"\r\n");
                    rest = &rest[n..];
                }
                out.extend_from_slice(b"0\r\n\r\n");
            }
            _ => {
                out.extend_from_slice(b"Connection: close\r\n\r\n");
                out.extend_from_slice(&body);
            }
        }
        out
    }

    fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
        for _ in 0..1 + rng.next_u32() % 4 {
            let at = if input.is_empty() { 0 } else { rng.next_u32() as usize % input.len() };
            match rng.next_u32() % 4 {
                0 if !input.is_empty() => input[at] = rng.next_u32() as u8,
                1 if !input.is_empty() => {
                    input.remove(at);
                }
                2 => input.insert(at, b"\r\n:; 0aZ"[rng.next_u32() as usize % 8]),
                _ => input.truncate(at),
            }
        }
    }

    #[test]
    fn property_never_panics_and_split_invariant() {
        let mut rng = Rng::new(0x5eed_4770);
        let limits = Limits { max_head: 512, max_headers: 8, max_body: 4096 };
        // 2000 random byte strings, 2000 valid responses, 2000 mutated valid responses.
        for case in 0..6000 {
            let kind = case % 3;
            let input = match kind {
                0 => (0..rng.next_u32() % 200).map(|_| rng.next_u32() as u8).collect(),
                1 => random_valid(&mut rng),
                _ => {
                    let mut v = random_valid(&mut rng);
                    mutate(&mut rng, &mut v);
                    v
                }
            };
            let want = drive(Method::Get, limits, &[&input]);
            if kind == 1 {
                assert!(want.0.is_ok(), "case {case}: valid response rejected: {:?}", want.0);
            }
            // Valid responses: every two-way split. Others: a sample of splits.
            let cuts: Vec<usize> = if kind == 1 {
                (0..=input.len()).collect()
            } else {
                (0..16).map(|_| rng.next_u32() as usize % (input.len() + 1)).collect()
            };
            for cut in cuts {
                let got = drive(Method::Get, limits, &[&input[..cut], &input[cut..]]);
                assert_eq!(got, want, "case {case} split {cut}");
            }
            let a = rng.next_u32() as usize % (input.len() + 1);
            let b = a + rng.next_u32() as usize % (input.len() - a + 1);
            assert_eq!(
                drive(Method::Get, limits, &[&input[..a], &input[a..b], &input[b..]]),
                want,
                "case {case}"
            );
        }
    }
}
