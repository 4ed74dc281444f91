"""Groups of resets that no log line showed: counters and rule counters.

The kernel's counters (``/proc/net/snmp``, ``netstat``) moved for a cause no group of
log lines explained; a reject rule's packet counter moved while no logged packet named
it. Each becomes a synthetic group the engine scores like any other; a finding's resets
are also raised to what its cause's counters counted when no line counted them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from auditor.correlate import fwlink
from auditor.correlate.catalog import Catalog, Cause
from auditor.correlate.grouping import Group
from auditor.correlate.scoring import GroupFacts
from auditor.firewall.model import Ruleset
from auditor.limits.snapshot import HostState
from auditor.models import Finding


def counter_groups(
    catalog: Catalog,
    view: HostState,
    winners: set[str],
    start: datetime | None,
    end: datetime | None,
    now: datetime | None,
    cited: Iterable[str] = (),
) -> list[tuple[Group, GroupFacts, str | None]]:
    """Resets only kernel counters show (no log line): one group per cause they anchor.

    Totals since boot say nothing about the incident window: they only become notes.
    Counters that a winning cause already cites (``cited``) are that cause's evidence."""
    out: list[tuple[Group, GroupFacts, str | None]] = []
    if view.since_boot:
        return out
    for cause in catalog.causes:
        if cause.role != "cause" or cause.id in winners:
            continue
        moved = counted(cause, view, cited)
        if not moved:
            continue
        # The counters' own window when the snapshots say when they were read.
        t1 = view.window_end or end or now or datetime.now(UTC)
        t0 = view.window_start or start or t1
        group = Group(
            None,
            None,
            t0,
            t1,
            synthetic=f"counter:{cause.id}",
            fixed_resets=moved,
        )
        out.append((group, GroupFacts(), cause.id))
    return out


def counted(
    cause: Cause, view: HostState, cited: Iterable[str] = (), counts: bool = False
) -> int:
    """The largest window delta of the counters ``cause`` anchors on (0: none moved),
    leaving out those in ``cited``; with ``counts``, also of those that count its resets
    (``counts: true``), if not anchors."""
    skip = set(cited)
    counting = counts and not view.since_boot  # a total since boot counts no incident
    hits = [
        v
        for spec in cause.evidence
        if spec.kind == "counter" and (spec.anchor or (counting and spec.params.get("counts")))
        for name, v in view.counter_hits(spec.strings("names"))
        if name not in skip
    ]
    return max(hits, default=0)


def with_counted(finding: Finding, cause: Cause | None, view: HostState) -> Finding:
    """A finding whose logs show fewer resets than its cause's counters moved over the
    window (the kernel logs one "SYN flooding" line per burst, not one per reset)."""
    if cause is None or view.since_boot:
        return finding
    seen = counted(cause, view)
    if seen <= finding.resets:
        return finding
    return replace(
        finding,
        resets=seen,
        summary=finding.summary.replace(f"{finding.resets} resets", f"{seen} resets", 1),
    )


def count_from_counters(group: Group, cause: Cause, view: HostState) -> None:
    """The group's resets from the counters of ``cause``; its time span is then theirs."""
    group.fixed_resets = counted(cause, view, counts=True) or None
    if group.fixed_resets and view.window_start is not None and view.window_end is not None:
        group.first, group.last = view.window_start, view.window_end


def rule_groups(
    rulesets: list[Ruleset],
    cited: set[tuple[Any, ...]],
    start: datetime | None,
    end: datetime | None,
    now: datetime | None,
    moved: Mapping[tuple[Any, ...], int] | None = None,
) -> list[tuple[Group, GroupFacts, str | None]]:
    """Reject rules whose counters moved but whose packets no log or query showed.

    Each is cited as the trace of a new connection to its ports names it: a rate or
    connection limit that jumps to a chain that rejects is the rule, the reject where it
    leads. A rule that drops sends no reset and makes no group. A limit that counted
    packets and jumps to a chain whose reject counts nothing itself (nft rules count only
    with a ``counter``) is cited for that reject."""
    out: list[tuple[Group, GroupFacts, str | None]] = []
    t1 = end or now or datetime.now(UTC)
    in_window = moved is not None
    how = "rule counters in the trace window" if in_window else "rule counters"
    for rule in fwlink.reset_rules(rulesets):
        key = fwlink.rule_key(rule)
        if key in cited or (moved is not None and moved.get(key, 0) <= 0):
            continue
        packets = moved[key] if moved is not None else rule.packets or 0
        ports, traced = fwlink.reached(rulesets, rule, how)
        cited.update(fwlink.rule_key(r) for r in (traced.rule, traced.leads_to) if r)
        out.append((_rule_group(start or t1, t1, packets, ports), GroupFacts(
            traced=[(traced, in_window)]), None))
    for gate, last, cond in fwlink.gated_rejects(rulesets):
        key = fwlink.rule_key(gate)
        if {key, fwlink.rule_key(last)} & cited or (moved is not None and moved.get(key, 0) <= 0):
            continue
        packets = moved[key] if moved is not None else gate.packets or 0
        traced = fwlink.Traced(gate, last.target or "drop", last.reject_with, cond, False, how,
                               last)
        cited.update((key, fwlink.rule_key(last)))
        ports = list(fwlink.rule_ports(rulesets, gate))
        out.append((_rule_group(start or t1, t1, packets, ports), GroupFacts(
            traced=[(traced, in_window)]), None))
    return out


def rule_counted(traced: fwlink.Traced | None, moved: Mapping[tuple[Any, ...], int] | None
                  ) -> int:
    """The packets the rule that answered counted: in the window when known, else in all.
    A rule that drops sent no reset: none counted."""
    if traced is None or traced.verdict == "drop":
        return 0
    # The reject counts its packets, or, when it has no counter (nft), the rule leading there.
    rules = [r for r in (traced.leads_to, traced.rule) if r is not None]
    if moved is not None:
        return max((moved.get(fwlink.rule_key(r), 0) for r in rules), default=0)
    return next((r.packets for r in rules if r.packets), 0)


def _rule_group(start: datetime, end: datetime, packets: int, ports: Sequence[int]) -> Group:
    group = Group(None, None, start, end, synthetic="rule", fixed_resets=packets)
    for port in ports:
        group.ports[port] += packets
    return group
