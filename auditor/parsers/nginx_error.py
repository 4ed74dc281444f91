"""nginx error log (``error_log``): upstream/client resets, timeouts, limits, restarts.

Line shape: ``2026/11/24 10:00:01 [error] 1234#1234: *5678 <message>[, client: IP,
server: NAME, request: "...", upstream: "...", host: "...", referrer: "..."]``.
The message carries an optional ``(errno: text)`` and a context phrase after
`` while ``. The stamp has no zone: ``ctx.timezone`` applies.
Lines that do not bear on resets (404 ``open() failed``, most notices) give None.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, ClassVar
from urllib.parse import SplitResult, urlsplit

from auditor.fastinit import slot_maker
from auditor.models import Event, Location
from auditor.parsers.base import LineError, LineParser

_HEAD = re.compile(
    r"(\d{4})/(\d\d)/(\d\d) (\d\d):(\d\d):(\d\d) \[(\w+)\] (\d+)#(\d+): (?:\*(\d+) )?(.*)\Z", re.S
)
_TAIL = re.compile(
    r", client: (?P<client>[^,]*)(?:, server: (?P<server>[^,]*))?"
    r'(?:, request: "(?P<request>.*?)")?(?:, subrequest: "(?P<subrequest>.*?)")?'
    r'(?:, upstream: "(?P<upstream>.*?)")?(?:, host: "(?P<host>.*?)")?'
    r'(?:, referrer: "(?P<referrer>.*?)")?\s*\Z',
    re.S,
)
# (A one-match head-and-tail reader was removed: no measurable gain. bench_parse.py on
# 108 MB, 6,396 events, best of 3, CPU seconds: with rg 0.25/0.33/0.41 with it and
# 0.26/0.28/0.30 without; pure Python (AUDITOR_NO_RG=1) 1.82 with, 1.88 without; the
# parse calls alone 85 vs 83 us per candidate line. Shared, loaded 2-core machine.)
_ERRNO = re.compile(r"\((\d+): ([^)]*)\)")
_SIGNAL = re.compile(r"signal (\d+) \((SIG\w+)\) received(?: from (\d+))?(?:, (.*))?\Z")
_LEFT_OPEN = re.compile(r"\*?\d*\s*open socket #(\d+) left in connection (\d+)")
_WORKER = re.compile(r"worker process (\d+) exited (?:on signal (\d+)|with code (\d+))")
_EVENT_METHOD = re.compile(r'using the "\w+" event method')
_ZONE = re.compile(r'by zone "([^"]*)"')
_EXCESS = re.compile(r"excess: ([\d.]+)")
_REQUEST = re.compile(r"(\S+) (\S+)(?: (HTTP/[\d.]+))?\Z")
# scheme://netloc[/path...] where urlsplit's netloc is plainly the part after "//":
# a plain scheme, an ASCII host:port without brackets or "@", no tab or newline.
_SIMPLE_URL = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]*://([A-Za-z0-9.:_-]*)(?:[/?#][^\t\r\n]*)?\Z", re.S
)
# SIGCHLD follows every worker exit; SIGUSR1 is the daily "reopen the logs" of logrotate.
_QUIET_SIGNALS = frozenset({"SIGCHLD", "SIGALRM", "SIGIO", "SIGUSR1"})
# nginx writes "(%d: %s)": the errno number and the C library's text for it, which
# differs between libcs (musl: "No file descriptors available" for 24). Keyed on the
# number (Linux's numbering); the text is kept as error.message.
_RESET = frozenset({"104", "32"})  # ECONNRESET, EPIPE
_UNREACHABLE = frozenset({"113", "101"})  # EHOSTUNREACH, ENETUNREACH
_FD = frozenset({"24", "23"})  # EMFILE, ENFILE
#: errno numbers that bear on resets: a line carrying one is an event or "not understood".
RELEVANT_ERRNOS = frozenset(
    {*_RESET, *_UNREACHABLE, *_FD, "99", "103", "110", "111", "112"}
)

_LIFECYCLE_TYPE = {
    "nginx-signal": ("info",),
    "nginx-reload": ("change",),
    "nginx-exit": ("end",),
    "nginx-start": ("start",),
    "worker-exited": ("end",),
    "connection-left-open": ("end",),
    "nginx-aborting": ("end",),
}
# Context, not a failure: (event.type) of actions with no outcome.
_CONTEXT_TYPE = {**_LIFECYCLE_TYPE, "nginx-limit-req-delay": ("connection", "info")}


def looks_like_error(line: str) -> bool:
    """Whether ``line`` starts as an nginx error log line does."""
    return _HEAD.match(line) is not None


def split_request(request: str) -> tuple[str | None, str | None, str | None]:
    """``GET /x HTTP/1.1`` -> (method, url, version); (None, None, None) when not a request line."""
    m = _REQUEST.match(request)
    return (m.group(1), m.group(2), m.group(3)) if m else (None, None, None)


def host_port(url: str) -> tuple[str | None, int | None]:
    """IP and port from an upstream URL such as ``http://127.0.0.1:8080/api``."""
    simple = _SIMPLE_URL.match(url)
    if simple is not None:  # the netloc urlsplit would find, without its cost
        return _netloc_host_port(simple.group(1))
    try:
        netloc = urlsplit(url if "://" in url else "//" + url).netloc
    except ValueError:
        return None, None
    return _netloc_host_port(netloc)


@lru_cache(maxsize=1024)
def _netloc_host_port(netloc: str) -> tuple[str | None, int | None]:
    """The host (when an IP) and port of a URL's netloc; few distinct ones per log."""
    parts = SplitResult("", netloc, "", "", "")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        return None, None
    if host is None:
        return None, None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None, port
    return host, port


def classify(msg: str, errno: str | None) -> tuple[str | None, dict[str, Any]]:
    """(event.action or None, extra fields) for an nginx error message."""
    phrase = msg.rsplit(" while ", 1)[1] if " while " in msg else ""
    extra: dict[str, Any] = {}
    if "worker_connections are not enough" in msg:
        head = msg.split(" ", 1)[0]
        if head.isdigit():
            extra["worker_connections"] = int(head)
        return "worker-connections-exhausted", extra
    if errno in _FD:
        return "fd-exhausted", extra
    if msg.startswith(("limiting connections", "limiting requests")):
        zone = _ZONE.search(msg)
        if zone:
            extra["zone"] = zone.group(1)
        if msg.startswith("limiting connections"):
            return "limit-conn", extra
        excess = _EXCESS.search(msg)
        if excess:
            extra["excess"] = float(excess.group(1))
        if ", dry run" in msg:
            extra["dry_run"] = True
        return "limit-req", extra
    if msg.startswith("delaying request"):  # limit_req with delay=: slowed, not refused
        zone = _ZONE.search(msg)
        if zone:
            extra["zone"] = zone.group(1)
        excess = _EXCESS.search(msg)
        if excess:
            extra["excess"] = float(excess.group(1))
        return "nginx-limit-req-delay", extra
    if "no live upstreams" in msg:
        return "no-live-upstreams", extra
    if "SSL handshak" in phrase or "SSL_do_handshake()" in msg or "in SSL handshake" in msg:
        if errno in _RESET or "closed connection" in msg or "reset" in msg.lower():
            extra["side"] = "upstream" if "upstream" in phrase else "client"
            return "ssl-handshake-reset", extra
        if errno not in RELEVANT_ERRNOS and "timed out" not in msg:
            return None, extra
    if "client prematurely closed" in msg:
        extra["side"] = "client"
        return "client-prematurely-closed", extra
    if "upstream" in phrase or msg.startswith("upstream "):
        extra["side"] = "upstream"
        if "prematurely closed" in msg:
            return "upstream-prematurely-closed", extra
        if errno in _RESET:
            return "upstream-reset", extra
        if errno == "110" or "timed out" in msg:
            return "upstream-timeout", extra
        if errno == "111":
            return "upstream-refused", extra
        if errno in _UNREACHABLE or errno == "112":  # EHOSTDOWN
            return "upstream-unreachable", extra
        if errno == "99":  # EADDRNOTAVAIL on connect(): no free local port/address
            return "upstream-no-local-address", extra
        return None, extra
    extra["side"] = "client"
    if "prematurely closed" in msg:
        return "client-prematurely-closed", extra
    if "client timed out" in msg or (errno == "110" and "client" in phrase):
        return "client-timeout", extra
    if errno in _RESET or errno == "103":  # 103: ECONNABORTED
        return "client-reset", extra
    if errno in _UNREACHABLE or errno == "112":
        return "client-unreachable", extra
    return None, {}


def lifecycle(msg: str) -> tuple[str | None, dict[str, Any]]:
    """Signals, reloads, exits and starts of the master and workers."""
    m = _SIGNAL.match(msg)
    if m:
        if m.group(2) in _QUIET_SIGNALS:
            return None, {}
        extra: dict[str, Any] = {"signal": m.group(2), "signal_number": int(m.group(1))}
        if m.group(3):
            extra["sender_pid"] = int(m.group(3))
        if m.group(4):
            extra["signal_action"] = m.group(4)
        return "nginx-signal", extra
    if msg in ("reconfiguring", "gracefully shutting down"):
        return "nginx-reload", {}
    if msg in ("exiting", "exit"):
        return "nginx-exit", {}
    if msg == "start worker processes" or _EVENT_METHOD.match(msg):
        return "nginx-start", {}
    left = _LEFT_OPEN.match(msg)
    if left:  # a worker shutting down with connections still open: they are cut
        return "connection-left-open", {"socket": int(left.group(1)),
                                        "connection_slot": int(left.group(2))}
    if msg == "aborting":
        return "nginx-aborting", {}
    w = _WORKER.match(msg)
    if w:
        extra = {"worker_pid": int(w.group(1))}
        if w.group(2):
            extra["signal_number"] = int(w.group(2))
        else:
            extra["exit_code"] = int(w.group(3))
        return "worker-exited", extra
    return None, {}


class NginxErrorParser(LineParser):
    """nginx ``error_log`` lines -> reset, timeout, limit and restart events."""

    name: ClassVar[str] = "nginx-error"
    description: ClassVar[str] = "nginx error log (upstream/client resets, limits, restarts)"
    needles: tuple[bytes, ...] = (
        *(f"({n}: ".encode() for n in sorted(RELEVANT_ERRNOS)),
        b"Connection reset", b"timed out", b"prematurely", b"no live upstreams",
        b"worker_connections",
        b"limiting ", b"delaying request", b"handshak", b"signal ", b"reconfiguring",
        b"shutting down", b"exit", b"start worker processes", b"event method",
        b"open socket #", b"aborting",
    )
    patterns: ClassVar[tuple[str, ...]] = (
        "upstream-reset", "upstream-prematurely-closed", "upstream-timeout", "upstream-refused",
        "no-live-upstreams", "client-prematurely-closed", "client-reset", "client-timeout",
        "worker-connections-exhausted", "fd-exhausted", "limit-conn", "limit-req",
        "ssl-handshake-reset", "nginx-signal", "nginx-reload", "nginx-exit", "nginx-start",
        "worker-exited", "upstream-unreachable", "upstream-no-local-address",
        "client-unreachable", "nginx-limit-req-delay", "connection-left-open", "nginx-aborting",
    )

    @classmethod
    def sniff(cls, head: Sequence[str]) -> float:
        lines = [line for line in head if line.strip()]
        if not lines:
            return 0.0
        hits = sum(1 for line in lines if looks_like_error(line))
        return 0.95 * hits / len(lines)

    def parse(self, line: str, location: Location) -> Event | None:
        m = _HEAD.match(line)
        if m is None:
            raise LineError("not an nginx error log line")
        msg, fields = _split_tail(m.group(11))
        y, mo, d, hh, mi, ss = m.group(1, 2, 3, 4, 5, 6)
        try:
            stamp = datetime(int(y), int(mo), int(d), int(hh), int(mi), int(ss),
                             tzinfo=self.ctx.timezone)
        except ValueError as exc:
            raise LineError(f"bad time: {exc}") from None
        errno_m = _ERRNO.search(msg)
        errno = errno_m.group(1) if errno_m else None
        if fields or errno:
            action, extra = classify(msg, errno)
        else:
            action, extra = lifecycle(msg)
            if action is None:
                action, extra = classify(msg, errno)
        if action is None:
            if errno in RELEVANT_ERRNOS:
                raise LineError(f"errno {errno} in a message not understood")
            return None
        return self._event(line, location, stamp, action, extra, msg, fields, errno_m, m)

    def _event(
        self,
        line: str,
        location: Location,
        stamp: datetime,
        action: str,
        extra: dict[str, Any],
        msg: str,
        fields: Mapping[str, str | None],
        errno_m: re.Match[str] | None,
        head: re.Match[str],
    ) -> Event:
        level, pid, tid, conn = head.group(7, 8, 9, 10)
        if conn:
            extra["connection"] = int(conn)
        if " while " in msg:
            extra["context"] = msg.rsplit(" while ", 1)[1]
        method = url = None
        get = fields.get  # a missing field and a None one are the same here
        for key in ("server", "subrequest", "host", "referrer"):
            value = get(key)
            if value:
                extra[key] = value
        request = get("request")
        if request:
            method, url, version = split_request(request)
            if version:
                extra["http_version"] = version
            if method is None:
                extra["request"] = request
        dest_ip = dest_port = None
        upstream = get("upstream")
        if upstream:
            extra["upstream"] = upstream
            dest_ip, dest_port = host_port(upstream)
        client = get("client") or None
        return _error_event(
            stamp, location, "nginx.error", action, ("web", "network"),
            _CONTEXT_TYPE.get(action, ("error", "connection")),
            None if action in _CONTEXT_TYPE else "failure", level, client, dest_ip, dest_port,
            "tcp", method, url, errno_m.group(1) if errno_m else None,
            errno_m.group(2) if errno_m else None, int(pid), "nginx", int(tid),
            self.ctx.host_name, msg, line, extra,
        )


# Makes the events of NginxErrorParser._event.
_error_event = slot_maker(
    Event, "timestamp", "location", "dataset", "action", "category", "type", "outcome",
    "log_level", "source_ip", "destination_ip", "destination_port", "transport", "http_method",
    "url", "error_code", "error_message", "process_pid", "process_name", "thread_id",
    "host_name", "message", "original", "extra",
)


def _split_tail(body: str) -> tuple[str, dict[str, str]]:
    """(message, {client, server, request, upstream, host, referrer...})."""
    pos = body.find(", client: ")
    while pos != -1:
        t = _TAIL.match(body, pos)
        if t is not None:
            return body[:pos], {k: v for k, v in t.groupdict().items() if v is not None}
        pos = body.find(", client: ", pos + 1)
    return body.rstrip(), {}
