"""What the engine needs from the host state, read from :class:`auditor.limits.snapshot.HostState`.

The engine reads the host state only through :class:`StateView`, built by
:func:`view_of` from a HostState (or anything with the same attributes), so that
tests and the incident lab can hand the engine a state they build themselves.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from auditor.models import Finding, Limit, Location


def norm(name: str) -> str:
    """Counter/limit names compared without case, dots, dashes and underscores."""
    return re.sub(r"[._\-\s]", "", name).lower()


def name_matches(name: str, patterns: tuple[str, ...]) -> bool:
    n = norm(name)
    return any(fnmatchcase(n, norm(p)) for p in patterns)


@dataclass(frozen=True, slots=True)
class StateView:
    """Limits, counter changes, listeners, config facts and check findings of one host."""

    limits: tuple[Limit, ...] = ()
    counters: Mapping[str, int] = field(default_factory=dict)  # deltas, or totals since boot
    since_boot: bool = True
    window_seconds: float | None = None
    counter_locations: Mapping[str, Location] = field(default_factory=dict)
    listeners: tuple[tuple[str, int], ...] = ()  # (address, port)
    facts: frozenset[str] = frozenset()  # "return-444", "upstream-keepalive", ...
    fact_locations: Mapping[str, Location] = field(default_factory=dict)  # where each is set
    checks: tuple[Finding, ...] = ()
    host: str | None = None
    known: bool = False  # False when no host state was available at all

    def counter_hits(self, patterns: tuple[str, ...], min_delta: int = 1) -> list[tuple[str, int]]:
        return [
            (k, v) for k, v in self.counters.items() if v >= min_delta and name_matches(k, patterns)
        ]

    def limits_matching(self, patterns: tuple[str, ...]) -> list[Limit]:
        return [lim for lim in self.limits if name_matches(lim.name, patterns)]

    def has_listener(self, port: int) -> bool | None:
        if not self.listeners:
            return None
        return any(p == port for _, p in self.listeners)


def view_of(state: Any, checks: tuple[Finding, ...] | None = None) -> StateView:
    """A StateView of a HostState (attributes read defensively), a StateView, or None."""
    if state is None:
        return StateView()
    if isinstance(state, StateView):
        return state
    since_boot = bool(getattr(state, "since_boot", True))
    if since_boot:
        counters = dict(getattr(state, "after", None) or getattr(state, "counters", None) or {})
    else:
        counters = dict(getattr(state, "deltas", None) or {})
    listeners = tuple(
        (str(getattr(x, "address", "")), int(getattr(x, "port", 0)))
        for x in getattr(state, "listeners", ()) or ()
    )
    if checks is None:
        checks = run_checks(state)
    found = nginx_facts(getattr(state, "nginx", None))
    return StateView(
        limits=tuple(getattr(state, "limits", ()) or ()),
        counters=counters,
        since_boot=since_boot,
        window_seconds=getattr(state, "window_seconds", None),
        counter_locations=dict(getattr(state, "counter_locations", None) or {}),
        listeners=listeners,
        facts=frozenset(found),
        fact_locations={k: v for k, v in found.items() if v is not None},
        checks=checks,
        host=getattr(state, "host", None),
        known=True,
    )


def run_checks(state: Any) -> tuple[Finding, ...]:
    """The configuration checks of :mod:`auditor.limits.checks`, when that module is present."""
    try:
        from auditor.limits import checks as checks_mod
    except ImportError:
        return ()
    try:
        return tuple(checks_mod.run_checks(state))
    except Exception:  # a check bug must not stop the diagnosis; the checks own their tests
        return ()


def nginx_facts(config: Any) -> dict[str, Location | None]:
    """Facts of an nginx configuration the catalog can ask for, each with where it is set."""
    if config is None:
        return {}
    facts: dict[str, Location | None] = {}
    try:
        for name, items in (
            ("return-444", getattr(config, "return_444", ())),
            ("upstream-keepalive",
             [u for u in getattr(config, "upstreams", ()) or () if getattr(u, "keepalive", None)]),
            ("limit-conn", getattr(config, "limit_conns", ())),
            ("limit-req", getattr(config, "limit_reqs", ())),
        ):
            first = next(iter(items or ()), None)
            if first is not None:
                loc = getattr(first, "location", None)
                facts[name] = loc if isinstance(loc, Location) else None
    except Exception:  # a half-understood config gives fewer facts, never a crash
        pass
    return facts
