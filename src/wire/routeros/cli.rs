//! The console (SSH) encoder and decoders: command lines, `print` text, console errors.
//! Pure.

use super::*;

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
pub(super) fn word(value: &str) -> Result<String, EncodeError> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
        Ok(value.to_owned())
    } else {
        quote(value)
    }
}

pub(super) fn non_empty(value: &str) -> Result<&str, EncodeError> {
    if value.is_empty() { Err(EncodeError::Empty) } else { Ok(value) }
}

pub(super) fn set_queue_line(limit: &QueueLimit) -> Result<String, EncodeError> {
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
pub(super) fn parse_cli_colon_item(text: &str) -> PrintItem {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty() && !k.contains(' '))
        .collect()
}

/// Removes ANSI escape sequences (`ESC [ … final`, or `ESC` + one character). Exec output
/// is normally plain, but an interactive-style login can add colours (ROUTEROS.md §4.1,
/// the `+ct` login option exists to turn them off).
pub(super) fn strip_ansi(text: &str) -> String {
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
pub(super) fn expect_silent(text: &str) -> Result<(), RouterOsError> {
    if text.trim().is_empty() {
        return Ok(());
    }
    Err(cli_error(text).unwrap_or_else(|| unrecognized(text)))
}

/// A `print` starts with the flag legend, a `Columns:` header or a record; anything else
/// on its first line is an error message.
pub(super) fn check_print(text: &str) -> Result<(), RouterOsError> {
    let Some(first) = text.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return Ok(());
    };
    if first.starts_with("Flags:") || first.starts_with("Columns:") || record_start(first).is_some() {
        return Ok(());
    }
    Err(cli_error(text).unwrap_or_else(|| unrecognized(text)))
}

pub(super) fn first_line(text: &str) -> &str {
    text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("")
}

pub(super) fn unrecognized(text: &str) -> RouterOsError {
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
pub(super) fn record_start(line: &str) -> Option<(u32, &str)> {
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

pub(super) fn finish_record(mut record: CliRecord, props: &str) -> CliRecord {
    record.properties = tokenize_properties(props);
    record
}

/// `key=value` tokens; a value is a bare word or a `"…"` string with console escapes.
/// Words without `=` are ignored.
pub(super) fn tokenize_properties(text: &str) -> Vec<(String, String)> {
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
pub(super) fn unescape_one(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, out: &mut String) {
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
