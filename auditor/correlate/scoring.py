"""Scoring: how well each cause of the catalog explains one group of resets.

Every evidence item that matches adds its weight by noisy-or
(``score = 1 - prod(1 - w)``), so independent pieces reinforce each other and
the score stays in 0..1. A cause whose ``anchor`` evidence did not match scores 0:
nothing is blamed without direct evidence. Evidence of a group's own events is
scaled by the share of the group it covers, so the cause that explains most of a
burst wins; counters that are totals since boot count half.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from auditor.correlate.catalog import Cause, EvidenceSpec
from auditor.correlate.context import ContextIndex
from auditor.correlate.fwlink import Traced, rule_where
from auditor.correlate.grouping import Group
from auditor.limits.snapshot import HostState
from auditor.models import Event, Evidence, Limit
from auditor.vocabulary import FACTS, Fact

NEAR = timedelta(minutes=2)
HIGH, MEDIUM, MINIMUM = 0.75, 0.5, 0.2
MAX_EVIDENCE = 12


@dataclass
class Query:
    """The engineer's own report: resets on this port, from this client."""

    port: int | None = None
    client: str | None = None

    def matches(self, group: Group) -> bool:
        if self.port is None and self.client is None:
            return False
        front = group.extra.get("service_ports", ())
        if self.port is not None and self.port != group.port and self.port not in group.ports \
                and self.port not in front:
            return False
        return self.client is None or self.client in group.clients


@dataclass
class GroupFacts:
    """What is known about one group beyond its events: traced rules, query, facts."""

    traced: list[tuple[Traced, bool]] = field(default_factory=list)  # (trace, seen in logs/query)
    query: bool = False
    facts: set[str] = field(default_factory=set)
    # fact -> (source, line, text) that shows it, cited instead of the bare fact name
    cited: dict[str, tuple[str, int | None, str]] = field(default_factory=dict)


@dataclass
class Scored:
    """One cause's score for one group, with the evidence that made it."""

    cause: Cause
    score: float
    evidence: list[Evidence]
    rule: Traced | None = None
    limit: Limit | None = None
    fact: Fact | None = None  # the host fact whose limit (and suggested value) the remedy uses
    limit_shown: bool = False  # False while ``limit`` is only the fullest candidate, not evidence
    fact_ports: set[int] = field(default_factory=set)  # ports of the host facts that matched
    near_events: list[Event] = field(default_factory=list)
    counters: set[str] = field(default_factory=set)  # the counters cited as evidence


def confidence(score: float) -> str:
    return "high" if score >= HIGH else "medium" if score >= MEDIUM else "low"


def event_evidence(event: Event, weight: float) -> Evidence:
    text = event.original or event.message or event.action
    return Evidence(event.location.path, event.location.line or None, text[:300], weight, "log")


def limit_text(lim: Limit) -> str:
    use = f", in use {lim.observed}" if lim.observed is not None else ""
    pct = f" ({lim.usage:.0%})" if lim.usage is not None else ""
    scope = f" [{lim.scope}]" if lim.scope and lim.scope != "host" else ""
    return f"{lim.name} = {lim.value}{lim.unit and ' ' + lim.unit}{use}{pct}{scope}"


def score_cause(
    cause: Cause, group: Group, ctx: ContextIndex, state: HostState, facts: GroupFacts
) -> Scored:
    total = sum(group.counts.values())
    # The share of the group's events this cause speaks about, once for all its event evidence.
    # A group without events of its own (the engineer's report, counters, a disruption) has
    # no failures of another kind that would make near events weaker.
    share = min(1.0, group.count(cause.actions()) / total) if total else 1.0
    remaining = 1.0
    anchored = False
    out = Scored(cause, 0.0, [])
    # The host's counters and limits are the same for every group: for a group with failures
    # of its own they count less for a cause that speaks about none of them.
    host_scale = 0.5 + 0.5 * share
    for spec in cause.evidence:
        host_wide = spec.kind in ("counter", "limit") or (
            spec.kind == "fact" and not any(FACTS[n].group for n in spec.strings("names"))
        )
        cited = len(out.evidence)
        weight = match_spec(spec, group, ctx, state, facts, share, out)
        if weight <= 0:
            continue
        if host_wide and host_scale < 1.0:
            weight *= host_scale
            out.evidence[cited:] = [
                replace(e, weight=round(e.weight * host_scale, 3)) for e in out.evidence[cited:]
            ]
        remaining *= 1.0 - min(weight, 0.99)
        # Host-wide counters and limits anchor only groups that have no events of their own:
        # a burst of logged failures needs a cause that speaks about those failures.
        anchored = anchored or (spec.anchor and (bool(group.synthetic) or not host_wide))
    out.score = round(1.0 - remaining, 3) if anchored else 0.0
    out.evidence.sort(key=lambda e: -e.weight)
    del out.evidence[MAX_EVIDENCE:]
    return out


def match_spec(
    spec: EvidenceSpec,
    group: Group,
    ctx: ContextIndex,
    state: HostState,
    facts: GroupFacts,
    share: float,
    out: Scored,
) -> float:
    kind = spec.kind
    if kind == "event":
        return _match_event(spec, group, ctx, share, out)
    if kind == "counter":
        hits = state.counter_hits(spec.strings("names"), int(spec.params.get("min_delta", 1)))
        if not hits:
            return 0.0
        weight = spec.weight * (0.5 if state.since_boot else 1.0)
        out.counters.update(name for name, _ in hits)
        for name, value in hits[:3]:
            loc = state.counter_locations.get(name)
            text = (
                f"{name} = {value} since boot"
                if state.since_boot
                else f"{name} +{value} over {state.window_seconds or 0:.0f}s"
            )
            out.evidence.append(
                Evidence(
                    loc.path if loc else "counters",
                    loc.line if loc and loc.line else None,
                    f"{spec.label}: {text}",
                    weight,
                    "counter",
                )
            )
        return weight
    if kind == "limit":
        if "zones_from" in spec.params:
            return _match_zone_limit(spec, group, ctx, state, out)
        return _match_limit(spec, group, state, out)
    if kind == "rule":
        return _match_rule(spec, facts, out)
    if kind == "fact":
        return _match_fact(spec, state, facts, out)
    if kind == "query" and facts.query:
        out.evidence.append(Evidence("report", None, spec.label, spec.weight, "report"))
        return spec.weight
    return 0.0


def _match_fact(spec: EvidenceSpec, state: HostState, facts: GroupFacts, out: Scored) -> float:
    """Facts the engine stated about the group (cited where they show), or facts of the host."""
    names = spec.strings("names")
    group = [n for n in names if n in facts.facts]
    host = state.facts_named(frozenset(names))
    if not group and not host:
        return 0.0
    for name in group[:2]:
        # A group fact is cited where it shows (the LOG rule the packets came from).
        where, line, text = facts.cited.get(name, ("config", None, name))
        kind = "rule" if name in facts.cited else "config"
        out.evidence.append(Evidence(where, line, f"{spec.label}: {text}", spec.weight, kind))
    if not out.fact_ports:
        # The ports of the first fact name (in the catalog's order) that the host shows.
        first = next(n for n in names if any(f.name == n for f in host)) if host else None
        out.fact_ports.update(p for f in host if f.name == first for p in f.ports)
    for found in host[:2]:
        loc = found.location
        out.evidence.append(
            Evidence(
                loc.path if loc else "host",
                loc.line if loc and loc.line else None,
                f"{spec.label}: {found.text}",
                spec.weight,
                "config",
            )
        )
        if found.limit is not None and not out.limit_shown:
            out.limit, out.fact, out.limit_shown = found.limit, found, True
        elif found.limit is not None and found.limit == out.limit and out.fact is None:
            out.fact = found  # the same limit: the fact's suggested value is the better one
    return spec.weight


def _match_event(
    spec: EvidenceSpec, group: Group, ctx: ContextIndex, share: float, out: Scored
) -> float:
    actions = spec.strings("actions")
    need = int(spec.params.get("min_count", 1))
    if spec.params.get("near"):
        n, samples = ctx.near(actions, group.first, group.last, NEAR)
        n = max(n, group.count(actions))
        samples = samples or group.sample_events(actions)
        # Near in time is weaker when the group's own failures are of another kind.
        weight = spec.weight * (0.5 + 0.5 * share)
        out.near_events.extend(samples)
    else:
        n = group.count(actions, bool(spec.params.get("without_syn")))
        samples = group.sample_events(actions)
        weight = spec.weight * (0.6 + 0.4 * share)
    if n < need:
        return 0.0
    for event in samples[:3]:
        out.evidence.append(event_evidence(event, weight))
    return weight


def _match_limit(spec: EvidenceSpec, group: Group, state: HostState, out: Scored) -> float:
    """The limit of ``spec`` that shows, preferring the one of the process that failed.

    A process reaches its own limit before the host's (errno 24, EMFILE, is the process's
    RLIMIT_NOFILE, not ``fs.file-max``), so a limit scoped to a pid the group's events name,
    then one of nginx for nginx's events, comes before a host-wide one of higher use."""
    lims = state.limits_matching(spec.strings("names"))
    pids = {e.process_pid for e in group.sample_events() if e.process_pid is not None}
    nginx = any(d.startswith("nginx") for d in group.datasets)

    def rank(lim: Limit) -> tuple[int, float]:
        own = any(lim.scope.startswith(f"pid:{pid} ") for pid in pids)
        mine = 2 if own else 1 if nginx and "nginx" in lim.scope else 0
        return mine, lim.usage or 0.0

    best: Limit | None = None
    for lim in lims:
        if "equals" in spec.params:
            ok = str(lim.value).strip() == str(spec.params["equals"])
        elif "at_least" in spec.params:
            ok = isinstance(lim.value, int | float) and lim.value >= spec.params["at_least"]
        else:
            usage = lim.usage
            ok = usage is not None and usage >= float(spec.params.get("min_usage", 0.9))
        if ok and (best is None or rank(lim) > rank(best)):
            best = lim
    if best is None:
        if lims and out.limit is None and "min_usage" in spec.params:
            out.limit = max(lims, key=rank)  # for the remedy's values only
        return 0.0
    if "min_usage" in spec.params or not out.limit_shown:
        out.limit, out.limit_shown = best, True
    out.evidence.append(_limit_evidence(spec, best, "limit"))
    return spec.weight


def _limit_evidence(spec: EvidenceSpec, lim: Limit, kind: str) -> Evidence:
    loc = lim.location
    return Evidence(
        loc.path if loc else "limits",
        loc.line if loc and loc.line else None,
        f"{spec.label}: {limit_text(lim)}",
        spec.weight,
        kind,
    )


def _match_zone_limit(
    spec: EvidenceSpec, group: Group, ctx: ContextIndex, state: HostState, out: Scored
) -> float:
    """The nginx ``limit_conn``/``limit_req`` whose zone the group's events name, with its use.

    nginx logs a limit only when it is reached: ``limit_conn`` at its number, ``limit_req``
    with the excess over the zone's rate that passed ``burst``, so that is the observed use.
    """
    zones = {
        str(e.extra.get("zone"))
        for e in group.sample_events(spec.strings("zones_from"))
        if e.extra.get("zone")
    }
    for lim in state.limits_matching(spec.strings("names")):
        zone = lim.name.rpartition("zone=")[2]
        if zone not in zones:
            continue
        peak = ctx.zone_peaks.get(zone)
        if "limit_req" in lim.name:
            observed: int | float | None = peak
        else:
            observed = lim.value if isinstance(lim.value, int | float) else None
        out.limit, out.limit_shown = replace(lim, observed=observed), True
        out.evidence.append(_limit_evidence(spec, out.limit, "config"))
        return spec.weight
    return 0.0


def _match_rule(spec: EvidenceSpec, facts: GroupFacts, out: Scored) -> float:
    targets = set(spec.strings("targets")) or {"reject", "drop"}
    reject_with = set(spec.strings("reject_with"))
    matches = [re.compile(p) for p in spec.strings("matches")]
    # A rule that a more specific cause (``yields_to``) matches is that cause's, not ours.
    not_matches = [re.compile(p) for p in (*spec.strings("not_matches"), *out.cause.yielded_rules)]
    for traced, observed in facts.traced:
        rule = traced.rule
        if traced.verdict not in targets:
            continue
        if reject_with and (traced.reject_with or "").replace(" ", "-") not in reject_with:
            continue
        hay = f"{rule.text} {rule.comment or ''} {rule.owner or ''} {traced.condition or ''}"
        if matches and not any(m.search(hay) for m in matches):
            continue
        if any(m.search(hay) for m in not_matches):
            continue
        counted = (rule.packets or 0) > 0
        if not (observed or counted):
            continue
        weight = spec.weight * (1.0 if observed else 0.7)
        out.rule = traced
        loc = rule.location
        cond = f" when {traced.condition}" if traced.condition else ""
        out.evidence.append(
            Evidence(
                loc.path if loc else "rules",
                loc.line if loc and loc.line else None,
                f"{spec.label}: {rule_where(rule)}: {rule.text} ({rule.packets} packets){cond}; "
                f"traced {traced.packet}",
                weight,
                "rule",
            )
        )
        return weight
    return 0.0


def rank(
    causes: Sequence[Cause], group: Group, ctx: ContextIndex, state: HostState, facts: GroupFacts
) -> list[Scored]:
    """Every cause scored for ``group``, best first; causes that scored 0 are left out."""
    scored = [score_cause(c, group, ctx, state, facts) for c in causes if c.role == "cause"]
    return sorted((s for s in scored if s.score > 0), key=lambda s: (-s.score, s.cause.id))


def explain(items: Sequence[Any]) -> str:
    return ", ".join(str(i) for i in items)
