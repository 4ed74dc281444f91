"""One artifact file parsed by its kind, for golden tests and for showing what a file holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from auditor.limits import _nginx
from auditor.limits._read import read_text
from auditor.models import ParseIssue, plain
from auditor.parsers.host import conntrack_stats, listeners, netstat, proclimits, sockstat, sysctl
from auditor.parsers.host._text import issue
from auditor.sources.files import SourceError

KINDS = (
    "sysctl",
    "netstat",
    "snmp",
    "sockstat",
    "conntrack-stats",
    "ss",
    "proc-limits",
    "nginx-config",
)


@dataclass(frozen=True, slots=True)
class Parsed:
    """What one artifact yielded (JSON-ready) and what in it was not understood."""

    kind: str
    data: Any
    issues: tuple[ParseIssue, ...]


def parse_artifact(kind: str, path: str, origin: str | None = None) -> Parsed:
    """Parse ``path`` as ``kind``; never raises for bad content (an unreadable file is an issue)."""
    origin = origin or path
    if kind not in KINDS:
        return Parsed(kind, None, ())
    if kind == "nginx-config":
        cfg, problems = _nginx.load_nginx(path)
        return Parsed(kind, _nginx_summary(cfg), problems)
    try:
        text = read_text(path)
    except SourceError as exc:
        return Parsed(kind, None, (issue(origin, 0, kind, str(exc)),))
    if kind == "sysctl":
        s = sysctl.parse_text(text, origin)
        return Parsed(kind, {"values": dict(s.values)}, s.issues)
    if kind in ("netstat", "snmp", "sockstat", "conntrack-stats"):
        parser = {
            "netstat": netstat.parse_text,
            "snmp": netstat.parse_text,
            "sockstat": sockstat.parse_text,
            "conntrack-stats": conntrack_stats.parse_text,
        }[kind]
        c = parser(text, origin)
        return Parsed(kind, {"values": dict(c.values), "gauges": sorted(c.gauges)}, c.issues)
    if kind == "ss":
        found, issues = listeners.parse_text(text, origin)
        return Parsed(kind, [{**plain(x), "full": x.full} for x in found], issues)
    proc, issues = proclimits.parse_text(text, origin)
    return Parsed(kind, plain(proc), issues)


def _nginx_summary(cfg: Any) -> dict[str, Any] | None:
    if cfg is None:
        return None

    def line(setting: Any) -> int | None:
        loc = getattr(setting, "location", None)
        return loc.line if loc is not None else None

    wp = _nginx.safe(cfg, lambda c: c.worker_processes, None)
    wc = _nginx.safe(cfg, lambda c: c.worker_connections, None)
    rl = _nginx.safe(cfg, lambda c: c.worker_rlimit_nofile, None)
    return {
        "worker_processes": [wp.value, line(wp)] if wp is not None else None,
        "worker_connections": [wc.value, line(wc)] if wc is not None else None,
        "worker_rlimit_nofile": [rl.value, line(rl)] if rl is not None else None,
        "listens": [
            [li.address, li.port, li.backlog, line(li)]
            for li in _nginx.safe_list(cfg, lambda c: c.listens)
        ],
        "upstreams": [
            [u.name, u.keepalive, u.keepalive_timeout, line(u)]
            for u in _nginx.safe_list(cfg, lambda c: c.upstreams)
        ],
        "keepalive_timeout": [
            [k.value, line(k)] for k in _nginx.safe_list(cfg, lambda c: c.keepalive_timeout)
        ],
    }
