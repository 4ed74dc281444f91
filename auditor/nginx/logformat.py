"""Compiling an nginx ``log_format`` into a fast line matcher.

A text format becomes one anchored regex built from its literal/variable
sequence (each variable gets a pattern that fits its values and the literal
that follows it). A JSON format (``{...}``, usually ``escape=json``) is read
with ``json.loads`` and its keys mapped back to the variables they hold; the
regex stays as a fallback for JSON-shaped formats written with default escaping.
``needles`` are the exact byte strings an interesting status produces in a line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from auditor.nginx.model import COMBINED

_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_LIST = r"(?:-|[^\s,]+(?:(?:, | : )[^\s,]+)*)?"  # empty: a state without a peer
_NUM = r"(?:-|\d+)"
_FLOAT = r"(?:-|\d+(?:\.\d+)?)"
_SPECIFIC = {
    "status": r"\d{3}|-|0{1,3}",
    "time_local": r"\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}",
    "time_iso8601": r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[+-]\d{2}:?\d{2}|Z)",
    "msec": r"\d+(?:\.\d+)?",
    "request_time": _FLOAT,
    "body_bytes_sent": _NUM,
    "bytes_sent": _NUM,
    "request_length": _NUM,
    "connection": _NUM,
    "connection_requests": _NUM,
    "remote_port": _NUM,
    "server_port": _NUM,
    "pid": _NUM,
    "pipe": r"[p.]",
    "remote_addr": r"[^\s,]+",
    "server_addr": r"[^\s,]+",
    "upstream_addr": _LIST,
    "upstream_status": _LIST,
    "upstream_response_time": _LIST,
    "upstream_connect_time": _LIST,
    "upstream_header_time": _LIST,
    "upstream_response_length": _LIST,
    "upstream_bytes_sent": _LIST,
    "upstream_bytes_received": _LIST,
}
# Statuses that matter for resets, and the event.action each becomes.
STATUS_ACTIONS = {
    444: "http-no-response",
    499: "http-client-closed",
    502: "http-bad-gateway",
    503: "http-service-unavailable",
    504: "http-gateway-timeout",
}


#: nginx's predefined ``combined``, and ``main``: the format of the nginx.org packages'
#: and the official Docker image's nginx.conf (``combined`` plus the X-Forwarded-For header).
MAIN = COMBINED + ' "$http_x_forwarded_for"'
STOCK_FORMATS = {"combined": COMBINED, "main": MAIN}


class LogFormatError(ValueError):
    """A log_format string that cannot be compiled."""


@dataclass(frozen=True)
class CompiledFormat:
    """A compiled log_format: ``match(line)`` -> {variable: value} or None."""

    source: str
    escape: str
    variables: tuple[str, ...]
    regex: re.Pattern[str]
    json_keys: Mapping[str, str] = field(default_factory=dict)  # JSON key -> variable
    needles: tuple[bytes, ...] = ()

    @property
    def is_json(self) -> bool:
        return bool(self.json_keys)

    def match(self, line: str) -> dict[str, str] | None:
        if self.json_keys and line.lstrip().startswith("{"):
            got = self._match_json(line)
            if got is not None:
                return got
        m = self.regex.match(line)
        if m is None:
            return None
        out: dict[str, str] = {}
        for i, name in enumerate(self.variables):
            value = m.group(i + 1)
            if value is not None:
                out.setdefault(name, value)
        return out

    def _match_json(self, line: str) -> dict[str, str] | None:
        try:
            doc = json.loads(line)
        except (ValueError, RecursionError):
            return None
        if not isinstance(doc, dict):
            return None
        out: dict[str, str] = {}
        for key, value in _leaves(doc):
            var = self.json_keys.get(key)
            if var is not None and value is not None:
                out.setdefault(var, value if isinstance(value, str) else json.dumps(value))
        return out if out else None


def _leaves(doc: Mapping[str, Any], depth: int = 0) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in doc.items():
        if isinstance(value, dict) and depth < 8:
            out.extend(_leaves(value, depth + 1))
        else:
            out.append((str(key), value))
    return out


def split_format(fmt: str) -> list[tuple[str, str]]:
    """``fmt`` as [("lit", text) | ("var", name)], in order."""
    parts: list[tuple[str, str]] = []
    pos = 0
    for m in _VAR.finditer(fmt):
        if m.start() > pos:
            parts.append(("lit", fmt[pos : m.start()]))
        parts.append(("var", m.group(1) or m.group(2)))
        pos = m.end()
    if pos < len(fmt):
        parts.append(("lit", fmt[pos:]))
    return parts


def _var_pattern(name: str, following: str | None) -> str:
    specific = _SPECIFIC.get(name)
    if specific is not None:
        return specific
    if following is None:
        return r".*"
    if following[:1] in ('"', "'"):
        return "[^" + re.escape(following[0]) + "]*"
    return r".*?"


def compile_format(fmt: str, escape: str = "default") -> CompiledFormat:
    """Compile a log_format string; LogFormatError when it has no variable at all."""
    if escape not in ("default", "json", "none"):
        raise LogFormatError(f"unknown escape={escape}")
    parts = split_format(fmt)
    names = [text for kind, text in parts if kind == "var"]
    if not names:
        raise LogFormatError("log_format has no $variable")
    pieces: list[str] = []
    for i, (kind, text) in enumerate(parts):
        if kind == "lit":
            pieces.append(re.escape(text))
            continue
        following = parts[i + 1][1] if i + 1 < len(parts) and parts[i + 1][0] == "lit" else None
        if i + 1 < len(parts) and parts[i + 1][0] == "var":
            following = ""
        pieces.append("(" + _var_pattern(text, following) + ")")
    try:
        regex = re.compile("".join(pieces) + r"\s*\Z", re.S)
    except re.error as exc:
        raise LogFormatError(f"cannot compile: {exc}") from None
    json_keys = _json_keys(fmt)
    return CompiledFormat(fmt, escape, tuple(names), regex, json_keys, _needles(parts))


def format_option(text: str, escape: str = "default") -> CompiledFormat:
    """What ``--log-format`` gives: a stock name (``combined``, ``main``), or a format string
    (quotes around it and a leading ``escape=json`` understood, as in nginx.conf)."""
    text = text.strip()
    stock = STOCK_FORMATS.get(text)
    if stock is not None:
        return compile_format(stock)
    if text.startswith("escape="):
        head, _, text = text.partition(" ")
        escape = head.split("=", 1)[1]
    return compile_format(text.strip().strip("'"), escape)


def _json_keys(fmt: str) -> dict[str, str]:
    if not fmt.lstrip().startswith("{"):
        return {}
    keys: dict[str, str] = {}
    for m in re.finditer(r'"([^"]+)"\s*:\s*"?\$(?:\{(\w+)\}|(\w+))', fmt):
        keys[m.group(1)] = m.group(2) or m.group(3)
    return keys


def _needles(parts: list[tuple[str, str]]) -> tuple[bytes, ...]:
    """Byte strings that a line with an interesting $status contains (empty: offer every line)."""
    for i, (kind, text) in enumerate(parts):
        if kind != "var" or text != "status":
            continue
        before = parts[i - 1][1] if i > 0 and parts[i - 1][0] == "lit" else ""
        after = parts[i + 1][1] if i + 1 < len(parts) and parts[i + 1][0] == "lit" else ""
        before, after = before[-12:], after[:4]
        if not before and not after:
            return ()
        return tuple(f"{before}{code}{after}".encode() for code in sorted(STATUS_ACTIONS))
    return ()


def generic_json_keys() -> dict[str, str]:
    """Key names used by common JSON log_formats, for JSON logs given without their format."""
    names = (
        "remote_addr", "remote_port", "server_addr", "server_port", "time_local", "time_iso8601",
        "msec", "request", "request_method", "request_uri", "uri", "status", "body_bytes_sent",
        "bytes_sent", "request_time", "upstream_addr", "upstream_status", "upstream_response_time",
        "upstream_connect_time", "connection", "connection_requests", "http_user_agent",
        "http_referer", "host", "server_name", "pipe",
    )
    keys = {n: n for n in names}
    keys.update({"client": "remote_addr", "ip": "remote_addr", "user_agent": "http_user_agent",
                 "referer": "http_referer", "time": "time_iso8601", "method": "request_method",
                 "uri_path": "uri"})
    return keys
