"""Building blocks of the limit checks: evidence from limits, counters and config, and scores.

Checks run without logs, so no reset was seen: a finding is a risk. Confidence is
``low`` for a setting that could cause resets, ``medium`` when the limit is being
reached now or a related drop counter moved; only log evidence (correlation) goes higher.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from auditor.models import Evidence, Finding, Limit, Location

if TYPE_CHECKING:
    from auditor.limits.snapshot import HostState

RISK = 0.3  # a setting that can cause resets
NOW = 0.5  # the limit is (nearly) reached in this snapshot
MOVED = 0.6  # a counter of the drops it causes moved in the window


def confidence(score: float) -> str:
    return "medium" if score >= NOW else "low"


def where(loc: Location | None) -> tuple[str, int | None]:
    if loc is None:
        return "-", None
    return loc.path, (loc.line or None)


def limit_evidence(limit: Limit, text: str | None = None, kind: str = "limit") -> Evidence:
    src, line = where(limit.location)
    shown = text or f"{limit.name} = {limit.value}" + (
        f" (in use: {limit.observed})" if limit.observed is not None else ""
    )
    return Evidence(src, line, shown, 0.5, kind)


def config_evidence(loc: Location | None, text: str) -> Evidence:
    src, line = where(loc)
    return Evidence(src, line, text, 0.5, "config")


def counter_evidence(state: HostState, name: str) -> Evidence | None:
    """Evidence that a counter moved (window) or is non-zero (since boot); None otherwise."""
    value = state.counter(name)
    if not value:
        return None
    src, line = where(state.counter_locations.get(name))
    if state.since_boot:
        return Evidence(src, line, f"{name} = {value} since boot (single snapshot)", 0.2, "counter")
    return Evidence(src, line, f"{name} +{value} in {state.window_seconds:g} s", 0.6, "counter")


def moved_any(state: HostState, names: tuple[str, ...]) -> list[Evidence]:
    return [e for n in names if (e := counter_evidence(state, n)) is not None]


def limit_dict(name: str, value: Any, observed: Any = None, **more: Any) -> dict[str, Any]:
    return {"name": name, "value": value, "observed": observed, **more}


def finding(
    cause: str,
    title: str,
    score: float,
    summary: str,
    remedy: str,
    side: str,
    limit: dict[str, Any],
    evidence: list[Evidence],
    ports: tuple[int, ...] = (),
) -> Finding:
    return Finding(
        cause=cause,
        title=title,
        confidence=confidence(score),
        score=round(score, 2),
        summary=summary,
        remedy=remedy,
        side=side,
        limit=limit,
        evidence=tuple(evidence),
        ports=ports,
    )


def score_with(base: float, counters: list[Evidence], state: HostState) -> float:
    """Raise ``base`` when a related counter moved in the window (not for since-boot totals)."""
    if counters and not state.since_boot:
        return max(base, MOVED)
    return base
