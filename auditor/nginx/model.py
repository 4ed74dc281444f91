"""Typed records of an nginx configuration, and nginx's value syntaxes (time, size, rate).

Every record carries the :class:`~auditor.models.Location` (file, line) of the
directive it came from, and its block context such as ``("http", "server", "location /")``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from auditor.models import Location

T = TypeVar("T")

Context = tuple[str, ...]


class NginxConfigError(ValueError):
    """A configuration that cannot be understood; the message starts with ``file:line:``."""

    def __init__(self, message: str, location: Location | None = None) -> None:
        super().__init__(f"{location}: {message}" if location else message)
        self.location = location
        self.reason = message


@dataclass(frozen=True, slots=True)
class Directive:
    """One directive as written: ``name args...;`` at ``location`` inside ``context``."""

    name: str
    args: tuple[str, ...]
    location: Location
    context: Context = ()
    # True for block directives (``server {``); the block's own directives follow it.
    block: bool = False
    raw: str | None = None  # verbatim body of a raw (Lua) block
    # Index in NginxConfig.directives of the enclosing block directive; -1 at top level.
    parent: int = -1

    def __str__(self) -> str:
        return " ".join((self.name, *self.args))


@dataclass(frozen=True, slots=True)
class Setting(Generic[T]):
    """A directive's value; ``location`` is None when it is nginx's built-in default."""

    value: T
    location: Location | None = None
    context: Context = ()

    @property
    def default(self) -> bool:
        return self.location is None


@dataclass(frozen=True, slots=True)
class Listen:
    """``listen``: ``address`` is ``*``, an IPv4/IPv6 address (no brackets) or ``unix:/path``."""

    address: str
    port: int | None
    location: Location
    context: Context = ()
    backlog: int | None = None  # None: nginx's default (511, capped by somaxconn)
    ssl: bool = False
    http2: bool = False
    default_server: bool = False
    reuseport: bool = False
    server_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LimitZone:
    """``limit_conn_zone`` / ``limit_req_zone``: rate in requests per second (req zones only)."""

    kind: str  # "conn" | "req"
    name: str
    key: str
    size: int | None
    location: Location
    rate: float | None = None
    rate_text: str | None = None


@dataclass(frozen=True, slots=True)
class LimitReq:
    """``limit_req zone=NAME [burst=N] [nodelay | delay=N]``."""

    zone: str
    location: Location
    context: Context = ()
    burst: int = 0
    nodelay: bool = False
    delay: int | None = None


@dataclass(frozen=True, slots=True)
class LimitConn:
    """``limit_conn ZONE N``."""

    zone: str
    number: int
    location: Location
    context: Context = ()


@dataclass(frozen=True, slots=True)
class UpstreamServer:
    """``server ADDRESS [params]`` inside an upstream block."""

    address: str
    location: Location
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Upstream:
    """An ``upstream NAME {}`` block; keep-alive settings None when not set."""

    name: str
    location: Location
    servers: tuple[UpstreamServer, ...] = ()
    keepalive: int | None = None
    keepalive_timeout: float | None = None  # seconds (nginx default 60s when keepalive is on)
    keepalive_requests: int | None = None


@dataclass(frozen=True, slots=True)
class LogFormat:
    """A ``log_format NAME [escape=default|json|none] STRING...`` (strings joined)."""

    name: str
    format: str
    escape: str = "default"
    location: Location | None = None  # None: predefined (``combined``)


@dataclass(frozen=True, slots=True)
class ErrorLog:
    path: str
    level: str
    location: Location | None
    context: Context = ()


@dataclass(frozen=True, slots=True)
class AccessLog:
    path: str
    format_name: str
    location: Location
    context: Context = ()


COMBINED = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent"'
)

_TIME_UNITS = {
    "ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2592000, "y": 31536000,
}
_TIME_RE = re.compile(r"(\d+)(ms|s|m|h|d|w|M|y)?")
_SIZE_RE = re.compile(r"(\d+)([kKmMgG]?)")
_RATE_RE = re.compile(r"(\d+)r/([sm])")


def parse_time(text: str) -> float:
    """nginx time: ``75``, ``75s``, ``1m30s``, ``500ms`` -> seconds; ValueError otherwise."""
    pos, total = 0, 0.0
    text = text.strip()
    for m in _TIME_RE.finditer(text):
        if m.start() != pos or (m.group(2) is None and m.end() != len(text)):
            raise ValueError(f"invalid time {text!r}")
        total += int(m.group(1)) * _TIME_UNITS[m.group(2) or "s"]
        pos = m.end()
    if not text or pos != len(text):
        raise ValueError(f"invalid time {text!r}")
    return total


def parse_size(text: str) -> int:
    """nginx size: ``512``, ``10k``, ``10m``, ``1g`` -> bytes."""
    m = _SIZE_RE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"invalid size {text!r}")
    return int(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]


def parse_rate(text: str) -> float:
    """``10r/s`` or ``30r/m`` -> requests per second."""
    m = _RATE_RE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"invalid rate {text!r}")
    return int(m.group(1)) / (1 if m.group(2) == "s" else 60)


def split_host_port(text: str) -> tuple[str, int | None]:
    """``1.2.3.4:80``, ``[::1]:80``, ``80``, ``*:80``, ``host``, ``unix:/p`` -> (host, port)."""
    if text.startswith("unix:"):
        return text, None
    if text.isdigit():
        return "*", int(text)
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return host, int(port) if port.isdigit() else None
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        return host, int(port)
    return text, None
