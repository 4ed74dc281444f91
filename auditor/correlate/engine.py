"""The correlation engine: events + rule sets + host state + the engineer's query -> Report.

``correlate`` streams events into compact per-group aggregates (see
:mod:`auditor.correlate.grouping`), traces the packets of logged rejects and of the
query through the firewall rules, adds synthetic groups for resets only counters or
rule counters show, scores every cause of the catalog for every group, and merges
the winners into findings. What no cause explains is counted and kept.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from auditor.correlate import announced, fwlink, unlogged
from auditor.correlate.catalog import Catalog, Cause, load_default
from auditor.correlate.disruption import context_groups
from auditor.correlate.findings import build_finding, merge_findings
from auditor.correlate.grouping import (
    DROPPED,
    NETFILTER,
    UNCERTAIN,
    WINDOW,
    Aggregator,
    Group,
)
from auditor.correlate.pattern import pattern_facts
from auditor.correlate.report import Report, Unexplained
from auditor.correlate.risks import notes_for
from auditor.correlate.scoring import (
    MEDIUM,
    MINIMUM,
    GroupFacts,
    Query,
    Scored,
    event_evidence,
    rank,
)
from auditor.correlate.service import nginx_front
from auditor.firewall.model import Ruleset
from auditor.limits.snapshot import HostState
from auditor.models import Event, Finding

MAX_TRACES = 200
DROPPED_MAX = 0.45  # the score of a finding whose packets were all dropped: low, no reset sent


def correlate(
    events: Iterable[Event] | Aggregator,
    rulesets: Sequence[Ruleset] | None = None,
    state: HostState | None = None,
    query: Query | None = None,
    catalog: Catalog | None = None,
    window: timedelta = WINDOW,
    now: datetime | None = None,
    moved: Mapping[tuple[Any, ...], int] | None = None,
) -> Report:
    """Diagnose: name the cause of each group of resets, with evidence and remedy.

    ``moved``: when the rules were also saved at the start of a trace window, the packets
    each rule (by :func:`fwlink.rule_key`) counted during it; rules that did not move are
    then history, not evidence."""
    catalog = catalog or load_default()
    query = query or Query()
    rulesets = list(rulesets or ())
    view = state if state is not None else HostState()
    listening = [(x.address, x.port) for x in view.listeners]
    agg = (
        events if isinstance(events, Aggregator) else Aggregator(window, query.client).feed(events)
    )
    groups = agg.groups()
    listens = view.nginx.listens if view.nginx is not None else []
    for group in groups:
        front = nginx_front(group, listens)
        if front:
            group.extra["service_ports"] = front
    facts = {id(g): GroupFacts(facts=pattern_facts(g) if g.upstream else set()) for g in groups}
    _trace_groups(groups, facts, rulesets)
    # Logged packets of LOG rules that the rules let through are not failures; logged packets
    # that were dropped got no reset: without a rule that dropped them, nothing to say.
    groups = [
        g for g in groups
        if (not set(g.counts) <= UNCERTAIN or facts[id(g)].traced)
        and (g.resets or facts[id(g)].traced)
    ]
    query_group, query_facts = _query_group(groups, facts, query, rulesets, view, agg, now)
    if query_group is not None:
        groups.append(query_group)
        facts[id(query_group)] = query_facts
    # ports programs said they listen on and left: facts on the query group, groups of their own
    said = announced.announced_groups(
        agg.context.listens, view, query.port, query_group, query_facts, agg.last
    )
    results: list[tuple[Group, list[Scored]]] = [
        (g, rank(_pool(catalog.causes, g), g, agg.context, view, facts[id(g)])) for g in groups
    ]
    winners = {r[0].cause.id for _, r in results if r and r[0].score >= MINIMUM}
    cited = {
        fwlink.rule_key(rule)
        for _, r in results
        if r and r[0].rule
        for rule in (r[0].rule.rule, r[0].rule.leads_to)
        if rule is not None
    }
    # Counters a winner already cites as its evidence are not a second cause's own resets.
    cited_counters = {n for _, r in results if r and r[0].score >= MINIMUM for n in r[0].counters}
    start, end = agg.first or (query_group.first if query_group else None), agg.last
    for extra in unlogged.counter_groups(
        catalog, view, winners, start, end, now, cited_counters
    ) + unlogged.rule_groups(
        rulesets, cited, start, end, now, moved
    ) + said:
        group, gfacts, only = extra
        pool = [c for c in _pool(catalog.causes, group) if only is None or c.id == only]
        if group.synthetic == announced.SYNTHETIC:
            # facts of the host speak of the causes that name them, and only when that
            # cause's counters show the resets (a moved program alone is no incident)
            pool = [
                c for c in pool
                if _names_facts(c, gfacts.facts) and unlogged.counted(c, view, counts=True)
            ]
        results.append((group, rank(pool, group, agg.context, view, gfacts)))
    named = {r[0].cause.id for _, r in results if r and r[0].score >= MINIMUM}
    for group, only in context_groups(catalog, agg.context, view, winners | named):
        if not group.fixed_resets and named:
            continue  # no reset counted around it, and other causes explain what was seen
        cause = next(c for c in catalog.causes if c.id == only)
        ranked = rank([cause], group, agg.context, view, GroupFacts())
        if ranked and not group.fixed_resets:
            # Nothing counted a reset around it: a disruption, not yet a proven cause.
            ranked[0] = replace(ranked[0], score=min(ranked[0].score, MEDIUM - 0.01))
        results.append((group, ranked))
    findings: list[Finding] = []
    unexplained: list[Unexplained] = []
    timeline: dict[int, Counter[str]] = {}
    for group, ranked in results:
        best = ranked[0] if ranked else None
        if best is not None and not group.resets and group.dropped:
            # The rule that dropped the packets may be sure; as a cause of resets it is not.
            best = replace(best, score=min(best.score, DROPPED_MAX))
        label = "unexplained"
        if best is not None and best.score >= MINIMUM:
            gf = facts.get(id(group))
            if group.synthetic in ("query", announced.SYNTHETIC) and not group.resets:
                # The engineer's report (or a group stated from host facts), explained by a
                # cause that counters show: the resets are counted from those counters (no
                # log line counted them), over their window; for a rule's cause, from the
                # rule's counters.
                unlogged.count_from_counters(group, best.cause, view)
                if not group.fixed_resets:
                    group.fixed_resets = unlogged.rule_counted(best.rule, moved) or None
                start, end = _widen(start, group.first), _widen(end, group.last, later=True)
            front = tuple(group.extra.get("service_ports", ()))
            findings.append(
                build_finding(group, best, ranked[1:4], bool(gf and gf.query), listening, front)
            )
            label = best.cause.id
        elif group.resets or group.synthetic == "query":
            unexplained.append(_unexplained(group, best))
        for minute, n in group.per_minute().items():
            timeline.setdefault(minute, Counter())[label] += n
    by_id = causes_by_id(catalog)
    merged = [unlogged.with_counted(f, by_id.get(f.cause), view) for f in merge_findings(findings)]
    total = sum(g.resets for g, _ in results)
    explained = sum(f.resets for f in merged)
    return Report(
        host=view.host,
        start=start,
        end=end,
        total=max(total, explained),
        explained=explained,
        intentional=sum(f.resets for f in merged if f.intentional),
        findings=tuple(merged),
        unexplained=tuple(sorted(unexplained, key=lambda u: -u.resets)),
        notes=tuple(notes_for(catalog, view, merged, rulesets)),
        timeline=tuple(
            (datetime.fromtimestamp(m * 60, UTC), dict(c)) for m, c in sorted(timeline.items())
        ),
        query={k: v for k, v in (("port", query.port), ("client", query.client)) if v is not None},
        events=agg.events,
    )


def _pool(causes: Sequence[Cause], group: Group) -> list[Cause]:
    """The causes that may explain ``group``: a rule's counters, or packets that were all
    dropped (no reset sent), speak of the rule that decided only."""
    if group.synthetic == "rule" or (not group.resets and group.dropped):
        return [c for c in causes if any(s.kind == "rule" for s in c.evidence)]
    return list(causes)


def _trace_groups(
    groups: list[Group], facts: dict[int, GroupFacts], rulesets: list[Ruleset]
) -> None:
    """Trace each group's logged packets, and mark the actions whose packets were dropped.

    A dropped packet gets no reset: its lines are not resets. The verdict is the trace's,
    unless the line says "dropped" and no rule of the rule sets wrote it (its prefix is not
    theirs): then the line's own word stands, and the trace, a path it did not take, is
    not cited."""
    budget = MAX_TRACES
    invalid = fwlink.invalid_loggers(rulesets) if rulesets else {}
    written = fwlink.log_prefixes(rulesets) if rulesets else {}
    for group in groups:
        seen: set[tuple[Any, ...]] = set()
        gfacts = facts[id(group)]
        verdicts: dict[str, set[str]] = {}
        for event in group.packets:
            traced = None
            if rulesets and budget > 0:
                budget -= 1
                traced = _trace_event(event, rulesets, invalid, gfacts)
            said_drop = event.action in DROPPED
            if said_drop and traced is not None and traced.verdict != "drop" and (
                (event.rule_name or "").strip() not in written
            ):
                traced = None
            verdict = traced.verdict if traced else "drop" if said_drop else "accept"
            verdicts.setdefault(event.action, set()).add(verdict)
            if traced is not None and fwlink.rule_key(traced.rule) not in seen:
                seen.add(fwlink.rule_key(traced.rule))
                gfacts.traced.append((traced, True))
        group.silent = frozenset(
            a for a in group.counts
            if a in NETFILTER and verdicts.get(a, {"drop"} if a in DROPPED else set()) == {"drop"}
        )


def _trace_event(
    event: Event, rulesets: list[Ruleset], invalid: dict[str, Any], gfacts: GroupFacts
) -> fwlink.Traced | None:
    logger = invalid.get((event.rule_name or "").strip())
    if logger is not None:
        # Logged by a rule on ctstate INVALID: conntrack did not know the packet.
        gfacts.facts.add("logged-as-invalid")
        loc = logger.location
        gfacts.cited.setdefault("logged-as-invalid", (
            loc.path if loc else "rules", loc.line if loc else None,
            f"{fwlink.rule_where(logger)}: {logger.text} logged {event.rule_name!r}",
        ))
        return fwlink.trace(rulesets, fwlink.packet_from_event(event, "invalid"))
    traced = fwlink.trace(rulesets, fwlink.packet_from_event(event))
    if traced is None and event.extra.get("tcp_flags") is not None:
        # A logged mid-stream packet that established state lets through: INVALID?
        traced = fwlink.trace(rulesets, fwlink.packet_from_event(event, "invalid"))
        if traced is not None:
            gfacts.facts.add("rejected-only-as-invalid")
    return traced


def _query_group(
    groups: list[Group],
    facts: dict[int, GroupFacts],
    query: Query,
    rulesets: list[Ruleset],
    view: HostState,
    agg: Aggregator,
    now: datetime | None,
) -> tuple[Group | None, GroupFacts]:
    gf = GroupFacts(query=True)
    if query.port is None and query.client is None:
        return None, gf
    traced = None
    if query.port is not None:
        traced = fwlink.trace(rulesets, fwlink.packet_from_query(query.port, query.client))
    matched = [g for g in groups if query.matches(g)]
    for group in matched:
        facts[id(group)].query = True
        if traced is not None:
            facts[id(group)].traced.append((traced, True))
    if matched:
        return None, gf
    # The logs' span, and the counter window (the counters are the evidence of this report).
    ts = max((t for t in (agg.last, view.window_end) if t is not None), default=None)
    ts = ts or agg.first or now or datetime.now(UTC)
    t0 = min((t for t in (agg.first, view.window_start) if t is not None), default=ts)
    group = Group(query.port, None, t0, ts, synthetic="query", fixed_resets=0)
    if query.port is not None:
        group.ports[query.port] += 1
    if query.client:
        group.clients[query.client] += 1
    if traced is not None:
        gf.traced.append((traced, True))
    if query.port is not None and view.has_listener(query.port) is False:
        gf.facts.add("no-listener")
    return group, gf


def _names_facts(cause: Cause, facts: set[str]) -> bool:
    return any(s.kind == "fact" and facts & set(s.strings("names")) for s in cause.evidence)


def _widen(edge: datetime | None, ts: datetime, later: bool = False) -> datetime:
    if edge is None:
        return ts
    return max(edge, ts) if later else min(edge, ts)


def _unexplained(group: Group, best: Scored | None) -> Unexplained:
    samples = tuple(event_evidence(e, 0.0) for e in group.sample_events()[:3])
    return Unexplained(
        resets=group.resets,
        ports=tuple(sorted(group.ports)) or ((group.port,) if group.port is not None else ()),
        upstream=group.upstream,
        clients=tuple(c for c, _ in group.clients.most_common(5)),
        first_seen=group.first,
        last_seen=group.last,
        actions=dict(group.counts),
        evidence=samples,
        best_guess=(best.cause.id, best.score) if best is not None else None,
    )


def causes_by_id(catalog: Catalog) -> dict[str, Cause]:
    return {c.id: c for c in catalog.causes}
