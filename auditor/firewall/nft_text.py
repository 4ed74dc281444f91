"""Read nftables rulesets from ``nft list ruleset`` text (``nft -a``: with handles).

Sosreports keep the ruleset as text (``sos_commands/firewall_tables/nft_-a_list_ruleset``),
not JSON. :func:`load_text` reads the block structure line by line (tables of every
family; their chains, with the ``type ... hook ... priority ...; policy ...;`` header;
named sets and maps, with multi-line ``elements = { ... }``), reads each rule with the
grammar of :mod:`auditor.firewall.nft_text_grammar`, and hands the resulting nft JSON
objects to :func:`auditor.firewall.nft_json.load_objects`: the text and the JSON of one
ruleset give one model, traced alike. Every object keeps its file:line.

Input is treated as hostile: the text is bounded (:data:`MAX_TEXT_BYTES`), long lines
are refused one by one, and nothing is rendered. A rule the grammar cannot read is
kept as *unreadable* (its line is its text; the evaluator reports it as not evaluated)
and counted in ``issues``; other lines not understood are counted there too. Table
objects auditor does not trace (counters, quotas, flowtables, ct helpers...) are
skipped whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from auditor.firewall.nft_json import FAMILIES, NftRuleset, load_objects
from auditor.firewall.nft_objects import NftError
from auditor.firewall.nft_text_grammar import TextError, parse_elements, parse_rule
from auditor.firewall.nft_text_values import priority, scalar, seconds
from auditor.models import Location, ParseIssue

__all__ = ["MAX_TEXT_BYTES", "PARSER", "load_text", "looks_like_nft_text"]

PARSER = "nft-text"
MAX_TEXT_BYTES = 64 << 20
MAX_LINE = 1 << 20  # a rule line (anonymous sets included), or elements read by the grammar
MAX_ELEMENTS = 32 << 20  # a named set's elements as plain values (addresses, ports)
MAX_ISSUES = 200  # issues listed one by one; the rest are counted in one more

_HANDLE = re.compile(r"\s+#\s*handle\s+(\d{1,18})\s*$")
_NOTE = re.compile(r"\{\s+#[^\"]*$")  # `table inet firewalld { # handle 1 progname firewalld`
_NAME = r'("[^"\n]*"|[^\s{}"]+)'
_TABLE = re.compile(rf"table\s+(\w+)\s+{_NAME}\s*\{{$")
_BLOCK = re.compile(rf"(chain|set|map)\s+{_NAME}\s*\{{$")
_OTHER = re.compile(rf"(counter|quota|limit|flowtable|secmark|synproxy|tunnel|"
                    rf"ct\s+(?:helper|timeout|expectation))\s+{_NAME}\s*\{{$")
_HEADER = re.compile(
    r"type\s+(\w+)\s+hook\s+(\w+)(?:\s+device\s+\"?([^\";\s]+)\"?|\s+devices\s*=\s*\{[^}]*\})?"
    r"\s+priority\s+([^;]+);(?:\s*policy\s+(\w+);)?\s*$")
_COMMENT = re.compile(r'comment\s+"([^"\n]*)"$')
_START = re.compile(r"^\s*table\s+(ip|ip6|inet|arp|bridge|netdev)\s+\S+\s*\{", re.M)
# typeof expressions nft prints for sets declared by expression -> their type names
_TYPEOF = {"ip saddr": "ipv4_addr", "ip daddr": "ipv4_addr", "ip6 saddr": "ipv6_addr",
           "ip6 daddr": "ipv6_addr", "tcp dport": "inet_service", "tcp sport": "inet_service",
           "udp dport": "inet_service", "udp sport": "inet_service",
           "th dport": "inet_service", "th sport": "inet_service", "meta mark": "mark",
           "ct mark": "mark", "iifname": "ifname", "oifname": "ifname",
           "meta iifname": "ifname", "meta oifname": "ifname", "meta l4proto": "inet_proto",
           "ip protocol": "inet_proto", "ether saddr": "ether_addr",
           "ether daddr": "ether_addr"}


def looks_like_nft_text(text: str) -> bool:
    """True when the first line that is not a comment opens an nftables table."""
    for line in text.splitlines():
        s = line.strip()
        if s and not s.startswith("#"):
            return _START.match(line) is not None
    return False


@dataclass
class _Reader:
    origin: str
    objs: list[Any] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    issues: list[ParseIssue] = field(default_factory=list)
    unread: int = 0  # lines not understood (counted even past MAX_ISSUES)

    def add(self, obj: dict[str, Any], line: int) -> None:
        self.objs.append(obj)
        self.lines.append(line)

    def issue(self, line: int, message: str, text: str) -> None:
        self.unread += 1
        if len(self.issues) < MAX_ISSUES:
            self.issues.append(ParseIssue(Location(self.origin, line), PARSER, message,
                                          _clean(text)[:200]))


def _clean(text: str) -> str:
    """The line with control characters shown as ``?`` (it is cited, never rendered)."""
    return "".join(c if c.isprintable() or c == "\t" else "?" for c in text)


def _name(raw: str) -> str:
    return raw[1:-1] if raw.startswith('"') and raw.endswith('"') else raw


def _split_handle(line: str) -> tuple[str, int | None]:
    """The line without its ``# handle N`` (and, on a block's first line, without any other
    note nft adds there, as ``# progname firewalld`` of an owned table), and N."""
    handle = None
    m = _HANDLE.search(line)
    if m is not None:
        handle, line = int(m[1]), line[: m.start()]
    note = _NOTE.search(line)
    if note is not None:
        if handle is None and (h := re.search(r"\bhandle\s+(\d{1,18})", note[0])):
            handle = int(h[1])
        line = line[: note.start() + 1]
    return line.strip(), handle


def load_text(text: str, origin: str) -> NftRuleset:
    """Read ``nft [-a] list ruleset`` text; NftError when it is not such a listing."""
    if len(text) > MAX_TEXT_BYTES:
        raise NftError(f"{origin}: nft ruleset text larger than {MAX_TEXT_BYTES >> 20} MiB; "
                       "not read")
    if not looks_like_nft_text(text):
        raise NftError(f"{origin}: not an nft ruleset listing (expected `table FAMILY NAME {{`)")
    rd = _Reader(origin)
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        i = _top(rd, lines, i)
    rs = load_objects(rd.objs, origin, lambda k: Location(origin, rd.lines[k]), PARSER)
    rs.issues[:0] = rd.issues
    if rd.unread > len(rd.issues):
        rs.issues.append(ParseIssue(Location(origin), PARSER,
                                    f"{rd.unread - len(rd.issues)} more lines not understood"))
    return rs


def _top(rd: _Reader, lines: list[str], i: int) -> int:
    body, handle = _split_handle(lines[i])
    if not body or body.startswith("#"):
        return i + 1
    m = _TABLE.fullmatch(body)
    if m is None or m[1] not in FAMILIES:
        rd.issue(i + 1, "not a table", body)
        return i + 1
    fam, table = m[1], _name(m[2])
    obj: dict[str, Any] = {"family": fam, "name": table, "handle": handle}
    rd.add({"table": obj}, i + 1)
    i += 1
    while i < len(lines):
        body, handle = _split_handle(lines[i])
        if not body or body.startswith("#"):
            i += 1
        elif body == "}":
            return i + 1
        elif (b := _BLOCK.fullmatch(body)) is not None:
            i = (_chain if b[1] == "chain" else _set)(rd, lines, i, fam, table, b, handle)
        elif _OTHER.fullmatch(body):
            i = _skip_block(rd, lines, i)
        elif body.startswith("flags "):
            obj["flags"] = [f.strip() for f in body[6:].split(",")]
            i += 1
        elif _COMMENT.fullmatch(body):
            i += 1
        elif body.endswith("{"):  # a block auditor does not know: one issue, skipped whole
            rd.issue(i + 1, f"block not understood in table {fam} {table}; skipped", body)
            i = _skip_block(rd, lines, i)
        else:
            rd.issue(i + 1, f"not understood in table {fam} {table}", body)
            i += 1
    rd.issue(len(lines), f"table {fam} {table} is not closed", "")
    return i


def _skip_block(rd: _Reader, lines: list[str], i: int) -> int:
    """Past the ``}`` that closes the block opened on line ``i``."""
    depth = 0
    for j in range(i, len(lines)):
        depth += _depth(lines[j])
        if depth <= 0:
            return j + 1
    rd.issue(i + 1, "block is not closed", lines[i])
    return len(lines)


def _depth(line: str) -> int:
    """Braces opened minus closed on a line, outside quotes and ``#`` comments."""
    d, quoted = 0, False
    for c in line:
        if c == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif c == "#":
            break
        elif c == "{":
            d += 1
        elif c == "}":
            d -= 1
    return d


def _chain(rd: _Reader, lines: list[str], i: int, fam: str, table: str, m: re.Match[str],
           handle: int | None) -> int:
    name = _name(m[2])
    obj: dict[str, Any] = {"family": fam, "table": table, "name": name, "handle": handle}
    rd.add({"chain": obj}, i + 1)
    i += 1
    while i < len(lines):
        raw = lines[i]
        body, rhandle = _split_handle(raw)
        if not body or body.startswith("#"):
            i += 1
            continue
        if body == "}":
            return i + 1
        h = _HEADER.fullmatch(body)
        if h is not None:
            try:
                _header(obj, h, fam)
            except ValueError as exc:
                rd.issue(i + 1, f"chain {name}: {exc}", body)
        elif _COMMENT.fullmatch(body):
            pass
        elif len(body) > MAX_LINE:
            _unreadable(rd, fam, table, name, rhandle, i + 1, body[:200],
                        f"line longer than {MAX_LINE} characters")
        else:
            try:
                stmts, comment = parse_rule(body)
            except TextError as exc:
                _unreadable(rd, fam, table, name, rhandle, i + 1, body, str(exc))
            else:
                rule: dict[str, Any] = {"family": fam, "table": table, "chain": name,
                                        "handle": rhandle, "expr": _defaults(stmts, fam)}
                if comment is not None:
                    rule["comment"] = comment
                rd.add({"rule": rule}, i + 1)
        i += 1
    rd.issue(len(lines), f"chain {name} is not closed", "")
    return i


def _header(obj: dict[str, Any], h: re.Match[str], fam: str) -> None:
    obj.update(type=h[1], hook=h[2], prio=priority(h[4], fam, h[2]), policy=h[5] or "accept")
    if h[3]:
        obj["dev"] = h[3]


def _unreadable(rd: _Reader, fam: str, table: str, chain: str, handle: int | None, line: int,
                body: str, why: str) -> None:
    rd.issue(line, f"rule not understood ({why}); kept as unreadable", body)
    rd.add({"rule": {"family": fam, "table": table, "chain": chain, "handle": handle,
                     "expr": [{"unreadable": _clean(body)}]}}, line)


def _defaults(stmts: list[Any], fam: str) -> list[Any]:
    """What nft's JSON spells out and its text leaves implicit: the default reject type."""
    out = []
    for s in stmts:
        if isinstance(s, dict) and "reject" in s and s["reject"] is None:
            s = {"reject": {"type": {"ip": "icmp", "ip6": "icmpv6"}.get(fam, "icmpx"),
                            "expr": "port-unreachable"}}
        out.append(s)
    return out


def _set(rd: _Reader, lines: list[str], i: int, fam: str, table: str, m: re.Match[str],
         handle: int | None) -> int:
    kind, name = m[1], _name(m[2])
    obj: dict[str, Any] = {"family": fam, "name": name, "table": table, "handle": handle}
    rd.add({kind: obj}, i + 1)
    i += 1
    while i < len(lines):
        body = lines[i].strip()
        start = i
        i += 1
        if not body or body.startswith("#"):
            continue
        if body == "}":
            if "type" not in obj:
                rd.issue(start + 1, f"{kind} {name} has no type", "")
                obj["type"] = "unknown"
            return i
        if body.startswith("elements = {"):
            parts = [body[len("elements = "):]]
            depth, size = _depth(parts[0]), len(parts[0])
            while depth > 0 and i < len(lines) and size <= MAX_ELEMENTS:
                parts.append(lines[i].strip())
                depth += _depth(parts[-1])
                size += len(parts[-1]) + 1
                i += 1
            _elements(rd, obj, " ".join(parts), start + 1, kind, name)
            continue
        try:
            _set_line(obj, body, kind == "map")
        except ValueError:
            rd.issue(start + 1, f"not understood in {kind} {name}", body)
    rd.issue(len(lines), f"{kind} {name} is not closed", "")
    return i


def _set_line(obj: dict[str, Any], body: str, is_map: bool) -> None:
    word, _, rest = body.partition(" ")
    if word in ("type", "typeof"):
        key, _, data = rest.partition(" : ")
        parts = [p.strip() for p in key.split(" . ")]
        if word == "typeof":
            parts = [_TYPEOF.get(p, p) for p in parts]
        obj["type"] = parts[0] if len(parts) == 1 else parts
        if is_map:
            if not data:
                raise ValueError("map without a data type")
            obj["map"] = _TYPEOF.get(data.strip(), data.strip()) if word == "typeof" \
                else data.strip()
    elif word == "flags":
        obj["flags"] = [f.strip() for f in rest.split(",")]
    elif word in ("timeout", "gc-interval"):
        obj[word] = seconds(rest)
    elif word == "size" and rest.isdigit() and len(rest) < 12:
        obj["size"] = int(rest)
    elif word == "policy":
        obj["policy"] = rest
    elif word == "auto-merge" and not rest:
        obj["auto-merge"] = True
    elif word == "counter" and not rest:
        pass  # every element counts (its counters are in its elements)
    elif _COMMENT.fullmatch(body):
        obj["comment"] = body[len('comment "'):-1]
    else:
        raise ValueError(body)


_SIMPLE = re.compile(r"[\w.:/\-]+")


def _elements(rd: _Reader, obj: dict[str, Any], text: str, line: int, kind: str,
              name: str) -> None:
    inner = text.strip()[1:-1] if text.strip().endswith("}") else ""
    parts = [p.strip() for p in inner.split(",")]
    if inner and all(_SIMPLE.fullmatch(p) for p in parts):  # the common case, no grammar
        obj["elem"] = [scalar(p) for p in parts]
        return
    if len(text) > MAX_LINE:
        rd.issue(line, f"{kind} {name}: elements longer than {MAX_LINE} characters (and not "
                 "plain values); not read", text[:200])
        return
    try:
        obj["elem"] = parse_elements(text)
    except TextError as exc:
        rd.issue(line, f"{kind} {name}: {exc}", text)
