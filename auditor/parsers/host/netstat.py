"""Kernel protocol counters: ``/proc/net/netstat``, ``snmp``, ``snmp6`` and ``nstat`` output.

Every field is kept, named ``Group.Field`` (``TcpExt.ListenOverflows``,
``Tcp.OutRsts``, ``MPTcpExt.MPCapableSYNRX``, ``Ip6.InReceives``). ``nstat -az``
output (``TcpExtListenOverflows 12 0.0``) is mapped to the same names.
"""

from __future__ import annotations

import re

from auditor.models import Location, ParseIssue
from auditor.parsers.host._text import CounterSet, issue, to_int

PARSER = "netstat"
# Level values in /proc/net/snmp (not monotonic counters).
GAUGES = frozenset(
    {
        "Tcp.CurrEstab",
        "Tcp.MaxConn",
        "Tcp.RtoMin",
        "Tcp.RtoMax",
        "Tcp.RtoAlgorithm",
        "Ip.Forwarding",
        "Ip.DefaultTTL",
    }
)
# Group prefixes of flat names (nstat, snmp6), longest first so TcpExt wins over Tcp.
_GROUPS = (
    "MPTcpExt",
    "TcpExt",
    "IpExt",
    "IcmpMsg",
    "UdpLite6",
    "UdpLite",
    "Icmp6",
    "Udp6",
    "Ip6",
    "Icmp",
    "Tcp",
    "Udp",
    "Ip",
    "Sctp",
)
_PAIR = re.compile(r"^([A-Za-z0-9]+):\s*(.*)$")


def split_flat(name: str) -> str:
    """``TcpExtListenOverflows`` -> ``TcpExt.ListenOverflows`` (unknown groups kept as is)."""
    for group in _GROUPS:
        if name.startswith(group) and len(name) > len(group):
            return f"{group}.{name[len(group) :]}"
    return name


def parse_text(text: str, origin: str) -> CounterSet:
    """Any of the supported counter formats, recognised line by line."""
    values: dict[str, int] = {}
    locations: dict[str, Location] = {}
    issues: list[ParseIssue] = []
    lines = text.splitlines()
    header: tuple[str, list[str], int] | None = None
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _PAIR.match(line)
        if m:
            group, rest = m.group(1), m.group(2).split()
            numeric = all(to_int(tok) is not None for tok in rest)
            if header is not None and header[0] == group and numeric:
                names = header[1]
                if len(names) != len(rest):
                    issues.append(
                        issue(
                            origin,
                            n,
                            PARSER,
                            f"{group}: {len(names)} names but {len(rest)} values",
                            raw,
                        )
                    )
                for name, tok in zip(names, rest, strict=False):
                    value = to_int(tok)
                    if value is not None:
                        values[f"{group}.{name}"] = value
                        locations[f"{group}.{name}"] = Location(origin, n)
                header = None
            elif not numeric or not rest:
                if header is not None:
                    issues.append(
                        issue(origin, header[2], PARSER, f"{header[0]}: names without values")
                    )
                header = (group, rest, n)
            else:
                issues.append(
                    issue(origin, n, PARSER, f"{group}: values without a names line", raw)
                )
            continue
        parts = line.split()
        # snmp6 "Ip6InReceives 123" and nstat "TcpExtListenOverflows 12 0.0"
        if len(parts) in (2, 3) and re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", parts[0]):
            value = to_int(parts[1])
            if value is not None:
                name = split_flat(parts[0])
                values[name] = value
                locations[name] = Location(origin, n)
                continue
        issues.append(issue(origin, n, PARSER, "not a counter line", raw))
    if header is not None:
        issues.append(
            issue(origin, header[2], PARSER, f"{header[0]}: names without values (truncated?)")
        )
    if not values and not issues and lines:
        issues.append(issue(origin, 0, PARSER, "no counters found"))
    return CounterSet(values, locations, tuple(issues), frozenset(GAUGES & values.keys()))


def read_live(proc_net: str = "/proc/net") -> CounterSet:
    """netstat, snmp and snmp6 of the current network namespace."""
    result = CounterSet()
    for name in ("netstat", "snmp", "snmp6"):
        path = f"{proc_net}/{name}"
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
        except OSError:
            continue
        result = result.merged(parse_text(text, path))
    return result
