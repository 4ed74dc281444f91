"""Small helpers shared by the host-artifact parsers: issues, integers, counter sets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from auditor.models import Location, ParseIssue


def issue(origin: str, line: int, parser: str, reason: str, text: str = "") -> ParseIssue:
    """A ParseIssue at ``origin:line`` with the offending text cut for display."""
    return ParseIssue(Location(origin, line), parser, reason, text[:200])


def to_int(text: str) -> int | None:
    """An integer (decimal, or 0x hex), or None."""
    text = text.strip()
    try:
        return int(text, 0) if text.lower().startswith("0x") else int(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class CounterSet:
    """Named integer counters (``TcpExt.ListenOverflows``) with where each was read."""

    values: Mapping[str, int] = field(default_factory=dict)
    locations: Mapping[str, Location] = field(default_factory=dict)
    issues: tuple[ParseIssue, ...] = ()
    gauges: frozenset[str] = frozenset()  # names that are levels, not monotonic counters

    def merged(self, other: CounterSet) -> CounterSet:
        return CounterSet(
            {**self.values, **other.values},
            {**self.locations, **other.locations},
            self.issues + other.issues,
            self.gauges | other.gauges,
        )
