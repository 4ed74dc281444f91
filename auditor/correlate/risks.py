"""Risks without any log: the catalog's causes scored on the host's facts alone.

``auditor limits`` shows them, and a diagnosis lists as notes those no finding
confirmed. Only host evidence is read (counters over a window, limits, host facts);
a cause is a risk when one of its items marked ``risk: true`` matches. Its title,
side and remedy come from its YAML file, like a finding's; its score is the
noisy-or of the host evidence that matched, kept below ``high`` (no reset was seen).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from auditor.correlate import fwlink
from auditor.correlate.catalog import Catalog, Cause
from auditor.correlate.context import ContextIndex
from auditor.correlate.findings import build_finding
from auditor.correlate.grouping import Group
from auditor.correlate.report import Note
from auditor.correlate.scoring import GroupFacts, Scored, match_spec
from auditor.limits.snapshot import HostState
from auditor.models import Evidence, Finding
from auditor.vocabulary import FACTS

CEILING = 0.6  # a risk no reset confirmed is at most "medium"
HOST_KINDS = ("counter", "limit", "fact")


@dataclass(frozen=True, slots=True)
class HostScore:
    """A cause scored on host evidence alone: the scored evidence, ports, what showed it."""

    scored: Scored
    ports: tuple[int, ...]
    shown_by: frozenset[tuple[str, str]]  # (kind, name) of the risk items that matched


def host_risks(catalog: Catalog, state: HostState, now: datetime | None = None) -> list[Finding]:
    """Every cause the host's facts alone show as a risk, strongest first."""
    t = now or datetime.now(UTC)
    out: list[Finding] = []
    for cause in catalog.causes:
        hs = score_host(cause, state)
        if hs is None:
            continue
        group = Group(None, None, t, t, synthetic="host", fixed_resets=0)
        for port in hs.ports:
            group.ports[port] += 1
        finding = build_finding(group, hs.scored, ())
        out.append(
            replace(
                finding,
                summary=summary_of(hs.scored),
                first_seen=None,
                last_seen=None,
                details={"from": "host facts"},
            )
        )
    return sorted(out, key=lambda f: (-f.score, f.cause, f.ports))


def summary_of(scored: Scored) -> str:
    return "; ".join(e.text for e in scored.evidence[:2])


def score_host(cause: Cause, state: HostState) -> HostScore | None:
    """The cause scored on host evidence alone; None when no ``risk: true`` item matched."""
    if state.since_boot:
        # Totals since boot say nothing about now: only levels and facts can show a risk.
        state = HostState(
            limits=state.limits, listeners=state.listeners, facts=state.facts, host=state.host
        )
    out = Scored(cause, 0.0, [])
    t = datetime.now(UTC)
    empty = Group(None, None, t, t, synthetic="host")
    remaining = 1.0
    shown: set[tuple[str, str]] = set()
    for spec in cause.evidence:
        if spec.kind not in HOST_KINDS or "zones_from" in spec.params:
            continue
        if spec.kind == "fact" and any(FACTS[n].group for n in spec.strings("names")):
            continue
        weight = match_spec(spec, empty, ContextIndex(), state, GroupFacts(), 0.0, out)
        if weight > 0:
            remaining *= 1.0 - min(weight, 0.99)
            if spec.risk:
                shown.update((spec.kind, n) for n in spec.strings("names"))
    if not shown:
        return None
    out.score = round(min(1.0 - remaining, CEILING), 3)
    out.evidence.sort(key=lambda e: -e.weight)
    return HostScore(out, tuple(sorted(out.fact_ports)), frozenset(shown))


def notes_for(
    catalog: Catalog, state: HostState, findings: Sequence[Finding], rulesets: Sequence[Any]
) -> list[Note]:
    """Risks no reset confirmed, since-boot counter totals, and reset rules that matched nothing."""
    found = {f.cause for f in findings}
    # What a found cause already cites as its evidence is not a separate note.
    cited = {
        (spec.kind, name)
        for c in catalog.causes
        if c.id in found
        for spec in c.evidence
        for name in spec.strings("names")
    }
    notes: list[Note] = []
    for cause in catalog.causes:
        hs = score_host(cause, state)
        if hs is None or cause.id in found or hs.shown_by & cited:
            continue
        notes.append(
            Note(
                cause.id,
                cause.title,
                f"{summary_of(hs.scored)} (no reset event confirms it)",
                tuple(hs.scored.evidence[:3]),
            )
        )
    if state.since_boot:
        notes += _since_boot_notes(catalog, state, found)
    notes += _idle_rule_notes(findings, rulesets)
    return notes


def _since_boot_notes(catalog: Catalog, state: HostState, found: set[str]) -> list[Note]:
    notes = []
    for cause in catalog.causes:
        if cause.id in found or cause.role != "cause":
            continue
        for spec in cause.evidence:
            if spec.kind != "counter" or not spec.anchor:
                continue
            for name, value in state.counter_hits(spec.strings("names"))[:2]:
                notes.append(
                    Note(
                        cause.id,
                        cause.title,
                        f"{name} = {value} since boot (one snapshot: take two, "
                        "e.g. --sample 10, to see whether it grows now)",
                    )
                )
    return notes


def _idle_rule_notes(findings: Sequence[Finding], rulesets: Sequence[Any]) -> list[Note]:
    """Rules that could reset but counted no packet (not cited by a finding)."""
    cited = {f.rule.text for f in findings if f.rule is not None}
    notes = []
    for ruleset in rulesets:
        for rule in ruleset.rules():
            if getattr(rule, "can_reset", False) and not rule.packets and rule.text not in cited:
                loc = rule.location
                evidence = Evidence(
                    loc.path if loc else "rules", loc.line if loc else None, rule.text, 0.0, "rule"
                )
                notes.append(
                    Note(
                        "firewall-reject",
                        "A rule could reset but matched nothing",
                        f"{fwlink.rule_where(rule)}: {rule.text} (0 packets)",
                        (evidence,),
                    )
                )
    return notes
