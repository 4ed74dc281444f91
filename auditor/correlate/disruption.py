"""Disruptions only host-wide events show: a restart around which no failure was logged.

A restart of nginx (or of an upstream's unit) cuts the connections in flight, and
nothing may log one failed connection: nginx stopping on SIGTERM writes no access
line for what it cut, the clients just see a reset. When a cause of the catalog is
anchored on such host-wide events (an anchor ``event`` evidence with ``near``, whose
actions are context only: a unit stopping, nginx exiting...) and no group of
failures was explained by it, each burst of those events becomes a synthetic group
that the catalog scores like any other.

Its resets are what the cause's own counter evidence (e.g. ``TcpOutRsts``) moved over
the counter window, when that window holds the burst and the service's ports are known
(host-wide counters are not one service's otherwise); when no reset is known, the engine
keeps such a finding below medium confidence. Its ports are those of the
service that stopped: nginx's ``listen`` ports for nginx, the listeners of the
unit's process otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from auditor import vocabulary
from auditor.correlate.catalog import Catalog, Cause
from auditor.correlate.context import ContextIndex
from auditor.correlate.grouping import WINDOW, Group
from auditor.limits.snapshot import HostState
from auditor.models import Event

PURE_CONTEXT = vocabulary.actions_with(vocabulary.CONTEXT) - vocabulary.actions_with(
    vocabulary.FAILURE
) - vocabulary.actions_with(vocabulary.HOST_WIDE)
NEAR = timedelta(minutes=2)
MAX_BURSTS = 20  # per cause: a host that restarts all day needs no more to be understood


def anchor_actions(cause: Cause) -> frozenset[str]:
    """The context-only actions that anchor ``cause`` as near events (empty: none)."""
    return frozenset(
        a
        for spec in cause.evidence
        if spec.kind == "event" and spec.anchor and spec.params.get("near")
        for a in spec.strings("actions")
        if a in PURE_CONTEXT
    )


def _bursts(minutes: set[int]) -> list[tuple[int, int]]:
    """Runs of minutes no further apart than the grouping window."""
    gap = int(WINDOW.total_seconds() // 60)
    out: list[tuple[int, int]] = []
    for m in sorted(minutes):
        if out and m - out[-1][1] <= gap:
            out[-1] = (out[-1][0], m)
        else:
            out.append((m, m))
    return out[-MAX_BURSTS:]


def _span(events: list[Event], lo: int, hi: int) -> tuple[datetime, datetime, list[Event]]:
    inside = [e for e in events if lo * 60 <= e.timestamp.timestamp() < (hi + 1) * 60]
    if inside:
        return inside[0].timestamp, inside[-1].timestamp, inside
    return datetime.fromtimestamp(lo * 60, UTC), datetime.fromtimestamp(hi * 60 + 59, UTC), []


def _resets(cause: Cause, state: HostState, first: datetime, last: datetime) -> int:
    """What the cause's counters moved, when the counter window holds the burst."""
    t0, t1 = state.window_start, state.window_end
    if state.since_boot or t0 is None or t1 is None:
        return 0
    if t1 < first - NEAR or t0 > last + NEAR:
        return 0
    hits = [
        v
        for spec in cause.evidence
        if spec.kind == "counter"
        for _, v in state.counter_hits(spec.strings("names"))
    ]
    return max(hits, default=0)


def _ports(events: list[Event], state: HostState) -> tuple[int, ...]:
    """The ports of the service these events stopped (nginx, or a unit's process)."""
    names: set[str] = set()
    for event in events:
        unit = event.extra.get("unit")
        if event.dataset.startswith("nginx"):
            names.add("nginx")
        elif isinstance(unit, str) and unit.endswith(".service"):
            names.add(unit[: -len(".service")].split("@", 1)[0])
    ports: set[int] = set()
    listens: Sequence[Any] = state.nginx.listens if state.nginx is not None else ()
    if "nginx" in names:
        ports.update(p for x in listens if isinstance(p := getattr(x, "port", None), int))
    for listener in state.listeners:
        if any(proc[0] in names for proc in listener.processes):
            ports.add(listener.port)
    return tuple(sorted(ports))


def context_groups(
    catalog: Catalog, ctx: ContextIndex, state: HostState, winners: set[str]
) -> list[tuple[Group, str]]:
    """(group, cause id) for each burst of a cause's anchoring host-wide events that no
    group of failures was explained by."""
    out: list[tuple[Group, str]] = []
    for cause in catalog.causes:
        if cause.role != "cause" or cause.id in winners:
            continue
        actions = anchor_actions(cause)
        entries = [ctx.entries[a] for a in sorted(actions) if a in ctx.entries]
        if not entries:
            continue
        minutes = {m for entry in entries for m in entry.minutes}
        events = sorted((e for entry in entries for e in entry.samples), key=lambda e: e.timestamp)
        for lo, hi in _bursts(minutes):
            first, last, inside = _span(events, lo, hi)
            group = Group(
                None,
                None,
                first,
                last,
                synthetic=f"context:{cause.id}",
                fixed_resets=_resets(cause, state, first, last),
            )
            front = _ports(inside, state)
            if front:
                group.extra["service_ports"] = front
            else:
                # Host-wide counters are this service's resets only when its ports are known.
                group.fixed_resets = 0
            out.append((group, cause.id))
    return out
