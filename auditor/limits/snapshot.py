"""The host's facts: limits next to their use, counters over the incident window, facts.

:class:`HostState` is the one typed host-facts object the engine takes
(:func:`auditor.correlate.engine.correlate`): limits, counters (deltas over a window, or
totals since boot), listeners, processes, the nginx configuration and the typed
:class:`~auditor.vocabulary.Fact` records the fact builders of
:mod:`auditor.limits.facts` state from them, built once by :func:`load_state`.

:func:`load_state` reads :class:`~auditor.bundle.inputs.Inputs` (a bundle, a
directory of artifacts or a sosreport); :func:`live_state` snapshots this host
(twice, ``sample`` seconds apart, when ``sample`` > 0). Two counter snapshots
give deltas over the window; a single one gives totals since boot, weaker
evidence (``window_seconds`` is then None).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from auditor.bundle.inputs import Artifact, Inputs, live_inputs
from auditor.limits._nginx import load_nginx
from auditor.limits._read import read_text
from auditor.limits.facts import build_facts
from auditor.limits.limit_table import build_limits
from auditor.models import Limit, Location, ParseIssue
from auditor.parsers.host import conntrack_stats, netstat, proclimits, sockstat, sysctl
from auditor.parsers.host._text import CounterSet, issue
from auditor.parsers.host.listeners import Listener
from auditor.parsers.host.listeners import parse_text as parse_ss
from auditor.parsers.host.proclimits import ProcessLimits
from auditor.parsers.host.sysctl import SysctlSet
from auditor.sources.files import SourceError
from auditor.vocabulary import Fact

_COUNTER_PARSERS = {
    "netstat": netstat.parse_text,
    "snmp": netstat.parse_text,
    "sockstat": sockstat.parse_text,
    "conntrack-stats": conntrack_stats.parse_text,
}
_PHASE_ORDER = {"before": 0, None: 1, "after": 2}
# Counters that count drops, resets and aborts: shown even as totals since boot.
KEY_COUNTERS = (
    "Tcp.OutRsts",
    "Tcp.EstabResets",
    "Tcp.AttemptFails",
    "Tcp.InErrs",
    "TcpExt.ListenOverflows",
    "TcpExt.ListenDrops",
    "TcpExt.TCPReqQFullDrop",
    "TcpExt.TCPReqQFullDoCookies",
    "TcpExt.SyncookiesFailed",
    "TcpExt.TCPAbortOnData",
    "TcpExt.TCPAbortOnClose",
    "TcpExt.TCPAbortOnMemory",
    "TcpExt.TCPAbortOnTimeout",
    "TcpExt.TCPAbortOnLinger",
    "TcpExt.TCPAbortFailed",
    "TcpExt.TCPMemoryPressures",
    "TcpExt.TCPTimeWaitOverflow",
    "TcpExt.TCPBacklogDrop",
    "TcpExt.TCPRcvQDrop",
    "TcpExt.TCPZeroWindowDrop",
    "TcpExt.TCPResetsOnLinger",
    "TcpExt.PAWSEstabRejected",
    "TcpExt.TCPChallengeACK",
    "TcpExt.TCPSYNChallenge",
    "TcpExt.TCPMinTTLDrop",
    "conntrack.drop",
    "conntrack.early_drop",
    "conntrack.insert_failed",
    "conntrack.invalid",
    "conntrack.search_restart",
)


@dataclass(frozen=True, slots=True)
class HostState:
    """Everything known about the host's limits, counters, listeners and processes."""

    limits: tuple[Limit, ...] = ()
    before: Mapping[str, int] = field(default_factory=dict)
    after: Mapping[str, int] = field(default_factory=dict)
    deltas: Mapping[str, int] = field(default_factory=dict)
    window_seconds: float | None = None
    window_start: datetime | None = None  # when the "before" counters were read
    window_end: datetime | None = None  # when the "after" counters were read
    gauges: frozenset[str] = frozenset()
    counter_locations: Mapping[str, Location] = field(default_factory=dict)
    sysctls: SysctlSet = field(default_factory=SysctlSet)
    listeners: tuple[Listener, ...] = ()
    processes: tuple[ProcessLimits, ...] = ()
    nginx: Any = None  # auditor.nginx.config.NginxConfig, or None
    problems: tuple[ParseIssue, ...] = ()
    host: str | None = None
    kernel: str | None = None
    sources: tuple[Artifact, ...] = ()
    root: str = ""  # the input's directory; locations under it are bundle paths
    facts: tuple[Fact, ...] = ()  # stated by the fact builders (auditor.limits.facts)

    @property
    def counters(self) -> Mapping[str, int]:
        """The latest counter values (totals since boot)."""
        return self.after

    @property
    def since_boot(self) -> bool:
        """True when only one snapshot exists: counters are totals since boot, not the window."""
        return self.window_seconds is None

    def moved(self) -> dict[str, int]:
        """Counters that changed over the window, largest change first."""
        return dict(
            sorted(((k, v) for k, v in self.deltas.items() if v), key=lambda kv: -abs(kv[1]))
        )

    def limit(self, name: str, scope: str | None = None) -> Limit | None:
        return next(
            (x for x in self.limits if x.name == name and (scope is None or x.scope == scope)), None
        )

    @property
    def window(self) -> Mapping[str, int]:
        """The counters the engine reads: deltas over the window, or totals since boot."""
        return self.after if self.since_boot else self.deltas

    def counter_hits(self, patterns: tuple[str, ...], min_delta: int = 1) -> list[tuple[str, int]]:
        """(name, value) of window counters matching ``patterns`` that moved ``min_delta``."""
        return [
            (k, v) for k, v in self.window.items() if v >= min_delta and name_matches(k, patterns)
        ]

    def limits_matching(self, patterns: tuple[str, ...]) -> list[Limit]:
        return [lim for lim in self.limits if name_matches(lim.name, patterns)]

    def facts_named(self, names: tuple[str, ...] | frozenset[str]) -> list[Fact]:
        return [f for f in self.facts if f.name in names]

    def has_listener(self, port: int) -> bool | None:
        """Whether something listens on ``port``; None when no listener list was read."""
        if not self.listeners:
            return None
        return any(x.port == port for x in self.listeners)

    def counter(self, name: str) -> int | None:
        """Change over the window when there is one, else the total since boot."""
        if not self.since_boot:
            return self.deltas.get(name)
        return self.after.get(name)


def norm(name: str) -> str:
    """Counter/limit names compared without case, dots, dashes, underscores and spaces."""
    return re.sub(r"[._\-\s]", "", name).lower()


def name_matches(name: str, patterns: tuple[str, ...]) -> bool:
    n = norm(name)
    return any(fnmatchcase(n, norm(p)) for p in patterns)


def _ordered(arts: tuple[Artifact, ...]) -> list[Artifact]:
    return sorted(arts, key=lambda a: _PHASE_ORDER.get(a.phase, 1))


def _parse_counters(
    inputs: Inputs, problems: list[ParseIssue]
) -> tuple[CounterSet, CounterSet, bool]:
    before, after = CounterSet(), CounterSet()
    phased = False
    for kind, parse in _COUNTER_PARSERS.items():
        for art in _ordered(inputs.by_kind(kind)):
            try:
                parsed = parse(read_text(art.path), art.path)
            except SourceError as exc:
                problems.append(issue(art.path, 0, kind, str(exc)))
                continue
            problems.extend(parsed.issues)
            if art.phase == "before":
                before = before.merged(parsed)
                phased = True
            else:
                after = after.merged(parsed)
    return before, after, phased


def load_state(inputs: Inputs) -> HostState:
    """The host state an input describes; what could not be read is in ``problems``."""
    problems: list[ParseIssue] = list(inputs.problems)
    sysctls = SysctlSet()
    for art in inputs.by_kind("sysctl"):
        try:
            parsed = sysctl.parse_text(read_text(art.path), art.path)
        except SourceError as exc:
            problems.append(issue(art.path, 0, "sysctl", str(exc)))
            continue
        problems.extend(parsed.issues)
        sysctls = SysctlSet(
            {**sysctls.values, **parsed.values},
            {**sysctls.locations, **parsed.locations},
            sysctls.issues + parsed.issues,
        )
    before, after, phased = _parse_counters(inputs, problems)
    gauges = before.gauges | after.gauges
    deltas: dict[str, int] = {}
    window: float | None = None
    t0 = t1 = None
    if phased and before.values:
        deltas = {
            k: v - before.values[k]
            for k, v in after.values.items()
            if k in before.values and k not in gauges
        }
        t0, t1 = inputs.snapshot_time("before"), inputs.snapshot_time("after")
        window = (t1 - t0).total_seconds() if t0 and t1 else 0.0
    listeners: tuple[Listener, ...] = ()
    for art in _ordered(inputs.by_kind("ss")):
        try:
            found, issues = parse_ss(read_text(art.path), art.path)
        except SourceError as exc:
            problems.append(issue(art.path, 0, "ss", str(exc)))
            continue
        problems.extend(issues)
        listeners = found or listeners
    processes: list[ProcessLimits] = []
    for art in inputs.by_kind("proc-limits"):
        try:
            proc, issues = proclimits.parse_text(read_text(art.path), art.path)
        except SourceError as exc:
            problems.append(issue(art.path, 0, "proc-limits", str(exc)))
            continue
        problems.extend(issues)
        if proc is not None:
            processes.append(proc)
    processes.sort(key=lambda p: (p.pid is None, p.pid or 0))
    nginx = None
    for art in inputs.by_kind("nginx-config")[:1]:
        nginx, issues = load_nginx(art.path, inputs.root)
        problems.extend(issues)
    limits = build_limits(sysctls, after.values, listeners, processes, nginx)
    logs = set(inputs.logs())  # once, not per artifact
    state = HostState(
        limits=limits,
        before=dict(before.values),
        after=dict(after.values),
        deltas=deltas,
        window_seconds=window,
        window_start=t0,
        window_end=t1,
        gauges=frozenset(gauges),
        counter_locations={**before.locations, **after.locations},
        sysctls=sysctls,
        listeners=listeners,
        processes=tuple(processes),
        nginx=nginx,
        problems=tuple(problems),
        host=inputs.host,
        kernel=inputs.kernel,
        sources=tuple(a for a in inputs.artifacts if a not in logs),
        root=inputs.root,
    )
    return replace(state, facts=build_facts(state))


def live_state(sample: float = 0.0) -> HostState:
    """This host's state now; with ``sample`` > 0 the counters are read twice, that far apart."""
    return load_state(live_inputs(since=timedelta(0), sample=sample, logs=False, rules=False))
