"""Connection tracking statistics: ``/proc/net/stat/nf_conntrack`` and ``conntrack -S``.

The proc file has a header and one row of hexadecimal numbers per CPU; the
rows are summed, except ``entries`` which is the table-wide count repeated on
every row. ``conntrack -S`` prints ``cpu=N found=.. drop=..`` rows, summed too.
Names are ``conntrack.<field>`` (``conntrack.insert_failed``, ``conntrack.drop``...).
"""

from __future__ import annotations

import re

from auditor.models import Location, ParseIssue
from auditor.parsers.host._text import CounterSet, issue

PARSER = "conntrack-stats"
PROC_PATH = "/proc/net/stat/nf_conntrack"
_KV = re.compile(r"([a-z_]+)=(\d+)")


def parse_text(text: str, origin: str) -> CounterSet:
    lines = text.splitlines()
    first = next((i for i, ln in enumerate(lines) if ln.strip() and not ln.startswith("#")), None)
    if first is None:
        return CounterSet(issues=(issue(origin, 0, PARSER, "empty conntrack statistics"),))
    if lines[first].split()[0] == "entries":
        return _parse_proc(lines, first, origin)
    return _parse_tool(lines, origin)


def _parse_proc(lines: list[str], first: int, origin: str) -> CounterSet:
    names = lines[first].split()
    totals: dict[str, int] = {}
    locations: dict[str, Location] = {}
    issues: list[ParseIssue] = []
    for n, raw in enumerate(lines[first + 1 :], first + 2):
        if not raw.strip() or raw.startswith("#"):
            continue
        cells = raw.split()
        try:
            numbers = [int(c, 16) for c in cells]
        except ValueError:
            issues.append(issue(origin, n, PARSER, "row is not hexadecimal numbers", raw))
            continue
        if len(numbers) != len(names):
            issues.append(
                issue(origin, n, PARSER, f"{len(names)} names but {len(numbers)} values", raw)
            )
        for name, value in zip(names, numbers, strict=False):
            key = f"conntrack.{name}"
            totals[key] = value if name == "entries" else totals.get(key, 0) + value
            locations.setdefault(key, Location(origin, n))
    if not totals:
        issues.append(issue(origin, first + 1, PARSER, "header without per-CPU rows (truncated?)"))
    return CounterSet(
        totals, locations, tuple(issues), frozenset({"conntrack.entries"} & totals.keys())
    )


def _parse_tool(lines: list[str], origin: str) -> CounterSet:
    totals: dict[str, int] = {}
    locations: dict[str, Location] = {}
    issues: list[ParseIssue] = []
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pairs = _KV.findall(line)
        if not line.startswith("cpu=") or not pairs:
            issues.append(issue(origin, n, PARSER, "not a 'cpu=N name=value ...' row", raw))
            continue
        for name, value in pairs:
            if name == "cpu":
                continue
            key = f"conntrack.{name}"
            totals[key] = totals.get(key, 0) + int(value)
            locations.setdefault(key, Location(origin, n))
    return CounterSet(totals, locations, tuple(issues))


def read_live(path: str = PROC_PATH) -> CounterSet | None:
    """Live statistics, or None when conntrack is not loaded in this namespace."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return parse_text(fh.read(), path)
    except OSError:
        return None
