"""Kernel tunables from ``sysctl -a`` output (bundles store it; collect reads it live).

Names use the dotted form (``net.core.somaxconn``). Multi-number values such as
``tcp_mem`` stay strings; :meth:`SysctlSet.ints` splits them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from auditor.models import Location, ParseIssue
from auditor.parsers.host._text import issue

PARSER = "sysctl"
_LINE = re.compile(r"^\s*([A-Za-z0-9_.\-/*]+)\s*=\s?(.*?)\s*$")
# "sysctl: permission denied on key 'fs.protected_hardlinks'" and similar notes.
_NOTE = re.compile(r"^sysctl: ")

# Tunables every report shows, in this order.
IMPORTANT = (
    "net.core.somaxconn",
    "net.core.netdev_max_backlog",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.tcp_abort_on_overflow",
    "net.ipv4.tcp_max_orphans",
    "net.ipv4.tcp_max_tw_buckets",
    "net.ipv4.tcp_mem",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_tw_reuse",
    "net.ipv4.tcp_rfc1337",
    "net.ipv4.ip_local_port_range",
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_count",
    "net.netfilter.nf_conntrack_buckets",
    "net.netfilter.nf_conntrack_tcp_timeout_established",
    "net.netfilter.nf_conntrack_tcp_timeout_syn_sent",
    "net.netfilter.nf_conntrack_tcp_timeout_syn_recv",
    "net.netfilter.nf_conntrack_tcp_timeout_fin_wait",
    "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
    "net.netfilter.nf_conntrack_tcp_timeout_last_ack",
    "net.netfilter.nf_conntrack_tcp_timeout_time_wait",
    "net.netfilter.nf_conntrack_tcp_timeout_close",
    "net.netfilter.nf_conntrack_tcp_timeout_max_retrans",
    "net.netfilter.nf_conntrack_tcp_timeout_unacknowledged",
    "net.netfilter.nf_conntrack_tcp_loose",
    "net.netfilter.nf_conntrack_tcp_be_liberal",
    "net.netfilter.nf_conntrack_tcp_ignore_invalid_rst",
    "net.netfilter.nf_conntrack_udp_timeout",
    "net.netfilter.nf_conntrack_udp_timeout_stream",
    "fs.file-max",
    "fs.file-nr",
    "fs.nr_open",
)


@dataclass(frozen=True, slots=True)
class SysctlSet:
    """Tunables by dotted name, each with the file (and line) it was read from."""

    values: Mapping[str, str] = field(default_factory=dict)
    locations: Mapping[str, Location] = field(default_factory=dict)
    issues: tuple[ParseIssue, ...] = ()

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def ints(self, name: str) -> tuple[int, ...] | None:
        """All numbers of a value (``tcp_mem`` gives three), or None when absent or not numeric."""
        raw = self.values.get(name)
        if raw is None:
            return None
        try:
            return tuple(int(p) for p in raw.split())
        except ValueError:
            return None

    def int(self, name: str) -> int | None:
        """The first number of a value, or None."""
        nums = self.ints(name)
        return nums[0] if nums else None


def parse_text(text: str, origin: str) -> SysctlSet:
    """``sysctl -a`` (or ``sysctl -p`` style ``key = value``) output."""
    values: dict[str, str] = {}
    locations: dict[str, Location] = {}
    issues: list[ParseIssue] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")) or _NOTE.match(line):
            continue
        m = _LINE.match(raw)
        if not m:
            issues.append(issue(origin, n, PARSER, "not a 'name = value' line", raw))
            continue
        name = m.group(1).replace("/", ".")
        values[name] = " ".join(m.group(2).split())
        locations[name] = Location(origin, n)
    return SysctlSet(values, locations, tuple(issues))
