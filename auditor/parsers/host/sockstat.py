"""Socket usage levels: ``/proc/net/sockstat`` and ``sockstat6``.

``TCP: inuse 5 orphan 0 tw 2 alloc 7 mem 3`` becomes ``sockstat.TCP.inuse`` ...
These are levels (gauges); ``TCP.mem`` is in pages, comparable with ``tcp_mem``.
"""

from __future__ import annotations

import re

from auditor.models import Location, ParseIssue
from auditor.parsers.host._text import CounterSet, issue, to_int

PARSER = "sockstat"
_LINE = re.compile(r"^([A-Za-z0-9]+):\s+(.*)$")


def parse_text(text: str, origin: str) -> CounterSet:
    values: dict[str, int] = {}
    locations: dict[str, Location] = {}
    issues: list[ParseIssue] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        tokens = m.group(2).split() if m else []
        if not m or len(tokens) % 2:
            issues.append(issue(origin, n, PARSER, "not a 'PROTO: key value ...' line", raw))
            continue
        for key, tok in zip(tokens[::2], tokens[1::2], strict=True):
            value = to_int(tok)
            if value is None:
                issues.append(issue(origin, n, PARSER, f"{key}: {tok!r} is not a number", raw))
                continue
            name = f"sockstat.{m.group(1)}.{key}"
            values[name] = value
            locations[name] = Location(origin, n)
    if not values and not issues and text.strip():
        issues.append(issue(origin, 0, PARSER, "no socket counts found"))
    return CounterSet(values, locations, tuple(issues), frozenset(values))


def read_live(proc_net: str = "/proc/net") -> CounterSet:
    result = CounterSet()
    for name in ("sockstat", "sockstat6"):
        path = f"{proc_net}/{name}"
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                result = result.merged(parse_text(fh.read(), path))
        except OSError:
            continue
    return result
