"""Host-wide events by action and minute, for "near in time" evidence.

OOM kills, nginx restarts and kernel "table full" lines are not one failed connection
each; scoring asks this index how many happened around a group's time span. It also
keeps, per nginx limit zone, the largest excess the logs reported, and per program and
port the latest announcement that the program listens there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from auditor.models import Event

MAX_LISTENS = 4096  # (program, port) announcements kept; later new ones are not


def minute_of(ts: datetime) -> int:
    return int(ts.timestamp() // 60)


@dataclass
class ContextEntry:
    """Host-wide events of one action: per-minute counts and a few samples."""

    minutes: Counter[int] = field(default_factory=Counter)
    samples: list[Event] = field(default_factory=list)
    total: int = 0


class ContextIndex:
    """Host-wide events by action, for "near in time" evidence."""

    def __init__(self) -> None:
        self.entries: dict[str, ContextEntry] = {}
        self.first: datetime | None = None
        self.last: datetime | None = None
        # nginx limit zones seen limiting: zone -> largest logged excess (0 for limit_conn)
        self.zone_peaks: dict[str, float] = {}
        # (program, port) -> the latest line where the program said it listens on the port
        self.listens: dict[tuple[str, int], Event] = {}

    def note_zone(self, event: Event) -> None:
        zone = event.extra.get("zone")
        if isinstance(zone, str):
            excess = event.extra.get("excess")
            peak = float(excess) if isinstance(excess, int | float) else 0.0
            self.zone_peaks[zone] = max(peak, self.zone_peaks.get(zone, 0.0))

    def note_listen(self, event: Event) -> None:
        """Keep ``event`` as its program's latest announcement of each port it names."""
        program = event.extra.get("unit") or event.process_name
        if not isinstance(program, str) or not program:
            return
        more = event.extra.get("ports")
        ports = [p for p in more if isinstance(p, int)] if isinstance(more, list) else []
        for port in dict.fromkeys([event.destination_port, *ports]):
            if port is None:
                continue
            key = (program, port)
            have = self.listens.get(key)
            if have is None and len(self.listens) >= MAX_LISTENS:
                continue
            if have is None or event.timestamp >= have.timestamp:
                self.listens[key] = event

    def add(self, event: Event) -> None:
        ts = event.timestamp
        if self.first is None or ts < self.first:
            self.first = ts
        if self.last is None or ts > self.last:
            self.last = ts
        entry = self.entries.get(event.action)
        if entry is None:
            entry = self.entries[event.action] = ContextEntry()
        entry.total += 1
        entry.minutes[minute_of(event.timestamp)] += 1
        if len(entry.samples) < 20:
            entry.samples.append(event)

    def near(
        self, actions: Iterable[str], start: datetime, end: datetime, slack: timedelta
    ) -> tuple[int, list[Event]]:
        """Count and samples of ``actions`` between start - slack and end + slack."""
        lo, hi = minute_of(start - slack), minute_of(end + slack)
        n = 0
        found: list[Event] = []
        for action in actions:
            entry = self.entries.get(action)
            if entry is None:
                continue
            minutes = entry.minutes
            if hi - lo < len(minutes):
                n += sum(minutes.get(m, 0) for m in range(lo, hi + 1))
            else:
                n += sum(c for m, c in minutes.items() if lo <= m <= hi)
            found.extend(e for e in entry.samples if lo <= minute_of(e.timestamp) <= hi)
        return n, sorted(found, key=lambda e: e.timestamp)
