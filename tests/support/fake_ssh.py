#!/usr/bin/env python3
"""Fake `ssh` for wanctl's tests: a RouterOS 7 console behind a pretend SSH session.

Invoked like OpenSSH's client:

    ssh [-o Opt=val ...] [-i key] [-p port] [-l login] [-T] [-q] [--] [login@]host [command]

Options are accepted and ignored (`BatchMode`, `ConnectTimeout`, `StrictHostKeyChecking`,
`UserKnownHostsFile`, `ServerAliveInterval`, ...). With no remote command it is a console
session: it reads command lines from stdin until EOF and writes each line's output to
stdout, flushed per line (the client sends `:put "MARKER"` after each command and reads up
to the marker). With a remote command it runs that one line and exits. Output uses CRLF
line ends, as RouterOS does; the exit status is 0 even when a command fails (the error is
printed on stdout), as on a real router (ROUTEROS.md §4.1, §4.5).

Environment:
    FAKE_SSH_STATE      JSON state file (created with defaults if absent): queues by name,
                        mangle rules by comment, accepted queue types, the identity.
    FAKE_SSH_LOG        append JSON lines: {"event":"start","argv":[...]},
                        {"event":"cmd","line":"...","modes":{...}} (the modes it was
                        handled under), {"event":"exit","code":N}.
    FAKE_SSH_MODE       fault modes, comma or space separated (see below).
    FAKE_SSH_MODE_FILE  a file holding more modes; re-read before every command.
    FAKE_SSH_WIDTH      console width (default 80, or `+<n>w` in the login name, as in
                        `admin+ct999w`); records wrap at width - 2 columns.
    FAKE_SSH_MAX_SECS   the process exits after this many seconds whatever happens (300).

`ssh --fake-ssh-init-state` (not an OpenSSH option) only writes the default state file.

Fault modes:
    auth_fail     print `<login>@<host>: Permission denied (publickey).` on stderr, exit 255
    refuse        print `ssh: connect to host <host> port <port>: Connection refused`, exit 255
    hang          read (and log) commands, never answer; exit 0 at EOF
    die_after=N   answer N command lines (a `:put` line counts), then exit 255 with
                  `Connection to <host> closed by remote host.` on stderr
    slow=MS       wait MS milliseconds before answering each line

Console commands (RouterOS spellings, `/a b c` or `/a/b/c`):
    /queue tree set [find name="X"] queue=T max-limit=N     (also `[find where ...]`, a bare
                                                            name, number or *id; k/M/G rates)
    /queue tree print [stats] [detail] [where name="X"]     (`~` is a regex match)
    /ip firewall mangle enable|disable [find comment="C"]   (or comment~"C")
    /ip firewall mangle print where comment="C"
    /system identity print
    :put "TEXT"
Several commands can share a line, separated by `;`. A parse error (bad command name,
syntax error, expected end of command) stops the whole line before anything runs; a
runtime error (no such item, invalid value, input does not match) stops the rest of it.

`print stats detail` (what wanctl sends) prints the configuration and the statistics of
each item; the vendor documents only `print stats`, so that combination is our guess.
"""

import fcntl
import json
import os
import re
import signal
import sys
import time

# OpenSSH client options that take an argument, and those that do not.
OPTS_WITH_ARG = "BbcDEeFIiJLlmOoPpQRSWw"
FLAG_OPTS = "46AaCfGgKkMNnqsTtVvXxYy"

QUEUE_TREE = ("queue", "tree")
MANGLE = ("ip", "firewall", "mangle")
IDENTITY = ("system", "identity")
RESOURCE = ("system", "resource")
USER = ("user",)
USER_GROUP = ("user", "group")
QUEUE_TYPE = ("queue", "type")
MENUS = {
    QUEUE_TREE: ("set", "print", "enable", "disable"),
    MANGLE: ("print", "enable", "disable"),
    IDENTITY: ("print",),
    # Read-only menus `wanctl check-router` prints.
    RESOURCE: ("print",),
    USER: ("print",),
    USER_GROUP: ("print",),
    QUEUE_TYPE: ("print",),
}
FULL_POLICY = ("local,telnet,ssh,ftp,reboot,read,write,policy,test,winbox,password,web,sniff,"
               "sensitive,api,romon,rest-api")
PRINT_FLAGS = ("stats", "detail", "terse", "brief", "without-paging", "all", "static")

QUEUE_LEGEND = "Flags: X - disabled, I - invalid "
MANGLE_LEGEND = "Flags: X - disabled, I - invalid; D - dynamic "
QUEUE_CONFIG_KEYS = ("limit-at", "queue", "priority", "max-limit", "burst-limit", "burst-threshold",
                     "burst-time", "bucket-size")
QUEUE_STATS_KEYS = ("rate", "packet-rate", "queued-bytes", "queued-packets", "bytes", "packets", "dropped")
RATE_KEYS = ("limit-at", "max-limit", "burst-limit", "burst-threshold")
QUEUE_SET_KEYS = ("name", "parent", "packet-mark", "queue", "priority", "comment", "disabled",
                  "burst-time", "bucket-size") + RATE_KEYS
# Queue types a test may set without listing them: what wanctl names them (INTERFACES.md §1.1).
WANCTL_QUEUE_TYPE = re.compile(r"^cake-(down|up)-[A-Za-z0-9_.-]+$")
# Values printed without quotes.
BARE_VALUE = re.compile(r"^[A-Za-z0-9_.,:/!*+@-]+$")


def default_state():
    """Two CAKE leaves and the steering rule (the queue values are those of the fixtures)."""
    return {
        "identity": "MikroTik",
        "resource": {"uptime": "3d4h5m", "version": "7.16.2 (stable)", "build-time": "2024-11-26 11:36:14",
                     "cpu": "ARMv8", "cpu-count": 4, "board-name": "RB5009UG+S+"},
        # Users and groups by name (check-router reads the login user's group's policy).
        "users": {"admin": {"group": "full"}, "wanctl": {"group": "full"}},
        "groups": {"full": {"policy": FULL_POLICY}, "read": {"policy": "local,ssh,read,test,winbox,api,rest-api"}},
        # Queue type details (kind, cake-bandwidth) for the names in queue_types.
        "queue_type_props": {"cake-down": {"kind": "cake", "cake-bandwidth": "0"},
                             "cake-up": {"kind": "cake", "cake-bandwidth": "0"},
                             "cake-down-wan1": {"kind": "cake", "cake-bandwidth": "0"},
                             "cake-up-wan1": {"kind": "cake", "cake-bandwidth": "0"},
                             "default": {"kind": "pfifo"}, "default-small": {"kind": "pfifo"}},
        "queue_types": ["default", "default-small", "cake-down", "cake-up", "cake-down-wan1", "cake-up-wan1"],
        "queues": {
            "WAN-Download-1": {
                "num": 0, ".id": "*1000000", "parent": "bridge1", "packet-mark": "",
                "limit-at": 0, "queue": "cake-down", "priority": 8, "max-limit": 940000000,
                "burst-limit": 0, "burst-threshold": 0, "burst-time": "0s", "bucket-size": "0.1",
                "comment": "wanctl: download shaper", "disabled": False,
                "rate": 612345678, "packet-rate": 52877, "queued-bytes": 15140, "queued-packets": 10,
                "bytes": 272603902153, "packets": 184614358, "dropped": 48213,
            },
            "WAN-Upload-1": {
                "num": 1, ".id": "*1000001", "parent": "ether1-WAN", "packet-mark": "",
                "limit-at": 0, "queue": "cake-up", "priority": 8, "max-limit": 38000000,
                "burst-limit": 0, "burst-threshold": 0, "burst-time": "0s", "bucket-size": "0.1",
                "disabled": False,
                "rate": 21345000, "packet-rate": 9120, "queued-bytes": 0, "queued-packets": 0,
                "bytes": 31977410982, "packets": 96412007, "dropped": 1702,
            },
        },
        "mangle": {
            "ADAPTIVE: Steer latency-sensitive to WAN2": {
                "num": 4, "disabled": True, "dynamic": False, "invalid": False,
                "props": [
                    ["chain", "prerouting"], ["action", "mark-routing"],
                    ["new-routing-mark", "to-wan2"], ["passthrough", "no"],
                    ["dst-address-list", "!LOCAL"], ["connection-mark", "LATENCY_SENSITIVE"],
                    ["in-interface-list", "LAN"], ["log", "no"], ["log-prefix", ""],
                ],
            },
        },
    }


class ConsoleError(Exception):
    """A console error line (printed on stdout; the session goes on)."""

    def __init__(self, text):
        super().__init__(text)
        self.text = text


def at(message, col):
    return ConsoleError("%s (line 1 column %d)" % (message, col))


# ---------------------------------------------------------------------------------------
# Environment, logging, state
# ---------------------------------------------------------------------------------------

def log(event):
    path = os.environ.get("FAKE_SSH_LOG")
    if not path:
        return
    event["pid"] = os.getpid()
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(event) + "\n")


def current_modes():
    text = os.environ.get("FAKE_SSH_MODE", "")
    mode_file = os.environ.get("FAKE_SSH_MODE_FILE")
    if mode_file:
        try:
            with open(mode_file, encoding="utf-8") as f:
                text += " " + f.read()
        except OSError:
            pass
    modes = {}
    for word in re.split(r"[\s,]+", text.strip()):
        if not word:
            continue
        key, _, value = word.partition("=")
        modes[key] = value
    return modes


def mode_int(modes, key):
    try:
        return int(modes[key])
    except (KeyError, ValueError):
        return None


class StateFile:
    """The JSON state, read and written under an exclusive lock (several fake `ssh`
    processes may share it); writes are atomic (temp file + rename)."""

    def __init__(self, path):
        self.path = path
        self.lock = None

    def __enter__(self):
        if self.path:
            self.lock = open(self.path + ".lock", "a+")
            fcntl.flock(self.lock, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self.lock:
            fcntl.flock(self.lock, fcntl.LOCK_UN)
            self.lock.close()
            self.lock = None

    def load(self):
        if self.path:
            try:
                with open(self.path, encoding="utf-8") as f:
                    return json.load(f)
            except FileNotFoundError:
                pass
        state = default_state()
        self.save(state)
        return state

    def save(self, state):
        if not self.path:
            return
        tmp = "%s.tmp.%d" % (self.path, os.getpid())
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(state, f, indent=1)
        os.replace(tmp, self.path)


# ---------------------------------------------------------------------------------------
# Rates and values
# ---------------------------------------------------------------------------------------

RATE = re.compile(r"^(\d+)(?:\.(\d{1,9}))?([kKMG])?(?:bps)?$")
RATE_MULTIPLIER = {None: 1, "k": 1000, "K": 1000, "M": 1000000, "G": 1000000000}


def parse_rate(text):
    """`450000000`, `450M`, `7.5M`, `450k`, `1G`, `10Mbps` -> bits/s; None if invalid."""
    m = RATE.match(text)
    if not m:
        return None
    mult = RATE_MULTIPLIER[m.group(3)]
    value = int(m.group(1)) * mult
    if m.group(2):
        value += int(m.group(2)) * mult // (10 ** len(m.group(2)))
    return value if value < 2 ** 64 else None


def format_rate(bps):
    """As the console prints rates: `940M`, `7500k`, `1G`, or the plain integer."""
    bps = int(bps)
    for unit, mult in (("G", 1000000000), ("M", 1000000), ("k", 1000)):
        if bps and bps % mult == 0:
            return "%d%s" % (bps // mult, unit)
    return str(bps)


def parse_bool(text):
    return {"yes": True, "true": True, "no": False, "false": False}.get(text)


def show(value):
    """A property value as `print` shows it: bare when it is a plain word, else quoted."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    if BARE_VALUE.match(text):
        return text
    return quote(text)


def quote(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------------------------------
# Tokenizer and parser
# ---------------------------------------------------------------------------------------

ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "_": " ", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
HEX = "0123456789ABCDEF"


class Tok:
    """A token: `[`, `]`, `;` or a word. A word `key=value` / `key~value` has `key`, `op`
    and `value` (quotes removed, escapes decoded); `col` counts from 1."""

    def __init__(self, kind, col, text="", key=None, op=None, value=None, quoted=False):
        self.kind = kind
        self.col = col
        self.text = text
        self.key = key
        self.op = op
        self.value = value
        self.quoted = quoted

    def is_bare(self):
        return self.kind == "word" and self.op is None and not self.quoted


def read_quoted(line, i):
    """The string starting at the quote `line[i]`; returns (text, index after it)."""
    start = i
    i += 1
    out = []
    while True:
        if i >= len(line):
            raise at("syntax error", start + 1)
        ch = line[i]
        if ch == '"':
            return "".join(out), i + 1
        if ch == "\\" and i + 1 < len(line):
            nxt = line[i + 1:i + 3]
            if len(nxt) == 2 and nxt[0] in HEX and nxt[1] in HEX:
                out.append(chr(int(nxt, 16)))
                i += 3
                continue
            out.append(ESCAPES.get(line[i + 1], line[i + 1]))
            i += 2
            continue
        out.append(ch)
        i += 1


def tokenize(line):
    toks = []
    depth = []
    i = 0
    while i < len(line):
        ch = line[i]
        if ch in " \t":
            i += 1
            continue
        if ch in "[];":
            if ch == "[":
                depth.append(i + 1)
            elif ch == "]":
                if not depth:
                    raise at("syntax error", i + 1)
                depth.pop()
            toks.append(Tok(ch, i + 1, ch))
            i += 1
            continue
        start = i
        parts = []
        key = op = None
        quoted = False
        while i < len(line) and line[i] not in " \t[];":
            ch = line[i]
            if ch == '"':
                text, i = read_quoted(line, i)
                parts.append(text)
                quoted = True
            elif ch in "=~" and key is None and parts and not quoted:
                key, op = "".join(parts), ch
                parts = []
                i += 1
            else:
                parts.append(ch)
                i += 1
        text = "".join(parts)
        if key is None:
            toks.append(Tok("word", start + 1, text, quoted=quoted))
        else:
            toks.append(Tok("word", start + 1, key + op + text, key, op, text, quoted))
    if depth:
        raise at("syntax error", depth[0])
    return toks


def split_statements(toks):
    stmts, current, depth = [], [], 0
    for t in toks:
        if t.kind == "[":
            depth += 1
        elif t.kind == "]":
            depth -= 1
        if t.kind == ";" and depth == 0:
            stmts.append(current)
            current = []
        else:
            current.append(t)
    stmts.append(current)
    return [s for s in stmts if s]


def is_menu_prefix(path):
    return any(menu[:len(path)] == tuple(path) for menu in MENUS)


def path_words(first):
    """`/ip/firewall` -> [("ip", col), ("firewall", col)]."""
    words = []
    offset = 0
    for part in first.text.split("/"):
        if part:
            words.append((part, first.col + offset))
        offset += len(part) + 1
    return words


class Statement:
    def __init__(self):
        self.kind = None      # "put", "noop" or "menu"
        self.text = ""
        self.menu = None
        self.verb = None
        self.selector = None  # ("find", [conditions]) or ("bare", word)
        self.params = []      # [(key, value, col)]
        self.flags = []
        self.where = []       # [(key, op, value)]


def parse_conditions(toks):
    conds = []
    for t in toks:
        if t.kind == "word" and t.op is not None:
            conds.append((t.key, t.op, t.value))
        elif t.is_bare() and t.text in ("where", "and"):
            continue
        else:
            raise at("syntax error", t.col)
    return conds


def parse_statement(toks):
    st = Statement()
    first = toks[0]
    if first.kind != "word":
        raise at("syntax error", first.col)
    if first.text.startswith(":"):
        if first.text != ":put":
            raise at("bad command name %s" % first.text[1:], first.col + 1)
        if len(toks) > 2:
            raise at("expected end of command", toks[2].col)
        st.kind = "put"
        st.text = toks[1].text if len(toks) > 1 else ""
        return st
    # Menu path words, then the verb.
    candidates = path_words(first) if first.text.startswith("/") else [(first.text, first.col)]
    rest = toks[1:]
    path = []
    while True:
        if not candidates:
            if rest and rest[0].is_bare():
                candidates.append((rest[0].text, rest[0].col))
                rest = rest[1:]
            else:
                if rest:
                    raise at("expected end of command", rest[0].col)
                st.kind = "noop"
                return st
        word, col = candidates.pop(0)
        if is_menu_prefix(path + [word]):
            path.append(word)
            continue
        if tuple(path) in MENUS and word in MENUS[tuple(path)]:
            st.kind, st.menu, st.verb = "menu", tuple(path), word
            if candidates:
                raise at("expected end of command", candidates[0][1])
            break
        raise at("bad command name %s" % word, col)
    if st.verb == "print":
        i = 0
        while i < len(rest):
            t = rest[i]
            if t.is_bare() and t.text == "where":
                st.where = parse_conditions(rest[i + 1:])
                break
            if t.is_bare() and t.text in PRINT_FLAGS:
                st.flags.append(t.text)
                i += 1
                continue
            raise at("expected end of command", t.col)
        return st
    # set / enable / disable: a selector, then parameters.
    if rest and rest[0].kind == "[":
        close = next((i for i, t in enumerate(rest) if t.kind == "]"), None)
        inner = rest[1:close]
        if not inner or not inner[0].is_bare() or inner[0].text != "find":
            raise at("syntax error", rest[0].col)
        st.selector = ("find", parse_conditions(inner[1:]))
        rest = rest[close + 1:]
    elif rest and rest[0].is_bare():
        st.selector = ("bare", rest[0].text)
        rest = rest[1:]
    for t in rest:
        allowed = QUEUE_SET_KEYS if st.verb == "set" else ()
        if t.kind != "word" or t.op != "=" or t.key not in allowed:
            raise at("expected end of command", t.col)
        st.params.append((t.key, t.value, t.col))
    if st.selector is None:
        raise ConsoleError("missing value(s) of argument(s) numbers")
    return st


# ---------------------------------------------------------------------------------------
# Execution
# ---------------------------------------------------------------------------------------

def ordered(table):
    """(name or comment, item) pairs in item-number order."""
    items = list(table.items())
    return sorted(items, key=lambda kv: (kv[1].get("num", items.index(kv)), kv[0]))


def queue_prop(name, q, key):
    if key == "name":
        return name
    if key in ("disabled", "invalid"):
        return "yes" if q.get(key) else "no"
    if key in RATE_KEYS and key in q:
        return str(q[key])
    value = q.get(key)
    return None if value is None else str(value)


def mangle_prop(comment, r, key):
    if key == "comment":
        return comment
    if key in ("disabled", "dynamic", "invalid"):
        return "yes" if r.get(key) else "no"
    for k, v in r.get("props", []):
        if k == key:
            return v
    return None


def matches(conds, getter):
    for key, op, value in conds:
        have = getter(key)
        if have is None:
            return False
        if op == "=":
            if key in RATE_KEYS:
                want = parse_rate(value)
                if want is None or str(want) != have:
                    return False
            elif have != value:
                return False
        else:
            try:
                if not re.search(value, have):
                    return False
            except re.error:
                return False
    return True


def select(table, selector, getter):
    """Keys of the items a selector picks; a bare name, number or id must exist."""
    kind, arg = selector
    if kind == "find":
        return [k for k, item in ordered(table) if matches(arg, lambda key: getter(k, item, key))]
    for index, (k, item) in enumerate(ordered(table)):
        if arg in (k, item.get(".id")) or arg == str(item.get("num", index)):
            return [k]
    raise ConsoleError("no such item")


def queue_set(state, st):
    queues = state["queues"]
    targets = select(queues, st.selector, queue_prop)
    changes = {}
    for key, value, _col in st.params:
        if key in RATE_KEYS:
            bps = parse_rate(value)
            if bps is None:
                raise ConsoleError("invalid value for argument %s" % key)
            changes[key] = bps
        elif key == "queue":
            known = state.get("queue_types", [])
            if value not in known and not WANCTL_QUEUE_TYPE.match(value):
                raise ConsoleError("input does not match any value of queue")
            changes[key] = value
        elif key == "priority":
            if not value.isdigit() or not 1 <= int(value) <= 8:
                raise ConsoleError("value of priority out of range (1..8)")
            changes[key] = int(value)
        elif key == "disabled":
            flag = parse_bool(value)
            if flag is None:
                raise ConsoleError("invalid value for argument disabled")
            changes[key] = flag
        else:
            changes[key] = value
    for name in targets:
        item = queues[name]
        for key, value in changes.items():
            if key == "comment" and value == "":
                item.pop("comment", None)
            elif key != "name":
                item[key] = value
        if "name" in changes and changes["name"] != name:
            queues[changes["name"]] = queues.pop(name)
    return bool(targets)


def mangle_switch(state, st):
    rules = state["mangle"]
    targets = select(rules, st.selector, mangle_prop)
    for comment in targets:
        rules[comment]["disabled"] = st.verb == "disable"
    return bool(targets)


def wrap(prefix, indent, props, width):
    """Property tokens on lines of at most `width` columns. A record that fits on one line
    ends with a space, as the console prints it; wrapped lines do not."""
    lines, line = [], prefix
    fresh = True
    for prop in props:
        if fresh:
            line += prop
            fresh = False
        elif len(line) + 1 + len(prop) <= width:
            line += " " + prop
        else:
            lines.append(line)
            line = indent + prop
    lines.append(line)
    if len(lines) == 1:
        lines[0] += " "
    return lines


def record(num, flags, flag_width, comment, props, width):
    prefix = "%2d %s " % (num, flags.ljust(flag_width))
    indent = " " * len(prefix)
    out = []
    if comment is not None:
        out.append(prefix + ";;; " + comment)
        out += wrap(indent, indent, props, width)
    else:
        out += wrap(prefix, indent, props, width)
    out.append("")
    return out


def queue_print(state, st, width):
    out = [QUEUE_LEGEND]
    stats = "stats" in st.flags
    detail = "detail" in st.flags
    for index, (name, q) in enumerate(ordered(state["queues"])):
        if not matches(st.where, lambda key: queue_prop(name, q, key)):
            continue
        props = ["name=" + quote(name), "parent=" + show(q.get("parent", "global")),
                 "packet-mark=" + show(q.get("packet-mark", ""))]
        if detail or not stats:
            for key in QUEUE_CONFIG_KEYS:
                value = q.get(key, 0)
                props.append("%s=%s" % (key, format_rate(value) if key in RATE_KEYS else show(value)))
        if stats:
            props += ["%s=%d" % (key, int(q.get(key, 0))) for key in QUEUE_STATS_KEYS]
        flags = ("X" if q.get("disabled") else "") + ("I" if q.get("invalid") else "")
        out += record(q.get("num", index), flags, 1, q.get("comment"), props, width)
    return out


def mangle_print(state, st, width):
    out = [MANGLE_LEGEND]
    for index, (comment, r) in enumerate(ordered(state["mangle"])):
        if r.get("dynamic") and "all" not in st.flags:
            continue
        if not matches(st.where, lambda key: mangle_prop(comment, r, key)):
            continue
        props = ["%s=%s" % (k, show(v)) for k, v in r.get("props", [])]
        flags = "".join(f for f, on in (("X", r.get("disabled")), ("I", r.get("invalid")),
                                        ("D", r.get("dynamic"))) if on)
        out += record(r.get("num", index), flags, 2, comment, props, width)
    return out


def table_print(rows, st, width):
    """`print detail [where name=…]` of a simple name-keyed menu (user, user group, queue type)."""
    out = ["Flags: X - disabled "]
    for index, (name, props) in enumerate(rows):
        if not matches(st.where, lambda key: name if key == "name" else props.get(key)):
            continue
        fields = ["name=" + quote(name)] + ["%s=%s" % (k, show(v)) for k, v in props.items()]
        out += record(index, "", 1, None, fields, width)
    return out


def resource_print(state):
    return ["%*s: %s" % (19, k, v) for k, v in state.get("resource", {}).items()]


def run_line(line, state, width):
    """Runs one console line; returns (output lines, state changed)."""
    out = []
    changed = False
    try:
        stmts = [parse_statement(s) for s in split_statements(tokenize(line))]
        for st in stmts:
            if st.kind == "put":
                out.append(st.text)
            elif st.kind == "menu" and st.verb == "print":
                if st.menu == QUEUE_TREE:
                    out += queue_print(state, st, width)
                elif st.menu == MANGLE:
                    out += mangle_print(state, st, width)
                elif st.menu == RESOURCE:
                    out += resource_print(state)
                elif st.menu == USER:
                    out += table_print(sorted(state.get("users", {}).items()), st, width)
                elif st.menu == USER_GROUP:
                    out += table_print(sorted(state.get("groups", {}).items()), st, width)
                elif st.menu == QUEUE_TYPE:
                    props = state.get("queue_type_props", {})
                    out += table_print([(n, props.get(n, {"kind": "pfifo"})) for n in state.get("queue_types", [])],
                                       st, width)
                else:
                    out.append("  name: %s" % state.get("identity", "MikroTik"))
            elif st.kind == "menu" and st.menu == QUEUE_TREE and st.verb == "set":
                changed = queue_set(state, st) or changed
            elif st.kind == "menu" and st.menu == MANGLE:
                changed = mangle_switch(state, st) or changed
            elif st.kind == "menu":
                raise ConsoleError("failure: not supported by the fake router")
    except ConsoleError as e:
        out.append(e.text)
    return out, changed


# ---------------------------------------------------------------------------------------
# The ssh client
# ---------------------------------------------------------------------------------------

def parse_argv(argv):
    """Returns (login, host, port, remote command or None); exits 255 on a usage error."""
    login, port = None, "22"
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            i += 1
            break
        if not a.startswith("-") or a == "-":
            break
        j = 1
        while j < len(a):
            c = a[j]
            if c in OPTS_WITH_ARG:
                value = a[j + 1:]
                if not value:
                    i += 1
                    if i >= len(argv):
                        usage("option requires an argument -- %s" % c)
                    value = argv[i]
                if c == "p":
                    port = value
                elif c == "l":
                    login = value
                break
            if c not in FLAG_OPTS:
                usage("unknown option -- %s" % c)
            j += 1
        i += 1
    if i >= len(argv):
        usage(None)
    dest = argv[i]
    command = " ".join(argv[i + 1:]) or None
    if dest.startswith("ssh://"):
        dest = dest[len("ssh://"):]
        if ":" in dest.rpartition("@")[2]:
            dest, _, port = dest.rpartition(":")
    if "@" in dest:
        login, _, host = dest.rpartition("@")
    else:
        host = dest
    return login or os.environ.get("USER", "root"), host, port, command


def usage(problem):
    if problem:
        sys.stderr.write("ssh: %s\n" % problem)
    sys.stderr.write("usage: ssh [-46AaCfGgKkMNnqsTtVvXxYy] [-i identity_file] [-o option] "
                     "[-p port] destination [command [argument ...]]\n")
    finish(255)


def finish(code):
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    log({"event": "exit", "code": code})
    os._exit(code)


def console_width(login):
    if os.environ.get("FAKE_SSH_WIDTH", "").isdigit():
        return int(os.environ["FAKE_SSH_WIDTH"])
    m = re.search(r"\+[a-z]*?(\d+)w", login)
    return int(m.group(1)) if m else 80


def answer(line, width):
    with StateFile(os.environ.get("FAKE_SSH_STATE")) as sf:
        state = sf.load()
        out, changed = run_line(line, state, width - 2)
        if changed:
            sf.save(state)
    data = "".join(l + "\r\n" for l in out).encode("utf-8")
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def main(argv):
    signal.alarm(int(os.environ.get("FAKE_SSH_MAX_SECS", "300")))
    if argv[:1] == ["--fake-ssh-init-state"]:
        with StateFile(os.environ.get("FAKE_SSH_STATE")) as sf:
            sf.load()
        return 0
    log({"event": "start", "argv": ["ssh"] + argv})
    login, host, port, command = parse_argv(argv)
    modes = current_modes()
    if "refuse" in modes:
        sys.stderr.write("ssh: connect to host %s port %s: Connection refused\r\n" % (host, port))
        finish(255)
    if "auth_fail" in modes:
        sys.stderr.write("%s@%s: Permission denied (publickey).\r\n" % (login, host))
        finish(255)
    width = console_width(login)
    if command is not None:
        log({"event": "cmd", "line": command, "modes": modes})
        if "hang" in modes:
            while True:
                time.sleep(1)
        answer(command, width)
        finish(0)
    answered = 0
    while True:
        raw = sys.stdin.buffer.readline()
        if not raw:
            finish(0)
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        # Modes first, so a logged command has been handled under the logged modes.
        modes = current_modes()
        log({"event": "cmd", "line": line, "modes": modes})
        if "refuse" in modes or "auth_fail" in modes:
            sys.stderr.write("Connection to %s closed by remote host.\r\n" % host)
            finish(255)
        if "hang" in modes or not line.strip():
            continue
        slow = mode_int(modes, "slow")
        if slow:
            time.sleep(slow / 1000.0)
        answer(line, width)
        answered += 1
        die_after = mode_int(modes, "die_after")
        if die_after is not None and answered >= die_after:
            sys.stderr.write("Connection to %s closed by remote host.\r\n" % host)
            finish(255)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BrokenPipeError:
        os._exit(255)
