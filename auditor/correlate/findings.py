"""From a scored group to a Finding: summary, rule or limit cited, remedy filled with real values.

Also merges the findings of one cause (and one rule) across bursts, and turns
configuration risks that no reset confirmed into lint notes.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from auditor.correlate import fwlink
from auditor.correlate.catalog import Catalog
from auditor.correlate.grouping import Group
from auditor.correlate.report import Note
from auditor.correlate.scoring import Scored, confidence, event_evidence, limit_text
from auditor.correlate.state import StateView
from auditor.models import Evidence, Finding, Limit

MAX_EVIDENCE = 12
# Kernel trace actions recorded in the context of the process that closed or aborted
# (parsers/kernel_trace.py): a cause that looks for them can name that process.
BY_PROCESS = frozenset(
    {
        "kernel-reset-abort-on-close",
        "kernel-reset-abort-on-linger",
        "kernel-reset-abort-on-data",
        "kernel-reset-state",
        "kernel-reset-disconnect-with-data",
    }
)


class _Values(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return f"<{key}>"


def suggest(value: Any, observed: Any = None) -> str:
    """A concrete new value for a limit: double the larger of limit and use, to a round number."""
    if (
        isinstance(value, str)
        and len(value.split()) == 3
        and all(p.isdigit() for p in value.split())
    ):
        return " ".join(str(int(p) * 2) for p in value.split())
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "a larger value"
    base = max(float(value), float(observed or 0)) * 2
    if base <= 0:
        return "a larger value"
    return str(2 ** math.ceil(math.log2(base)))


def named_processes(group: Group) -> list[dict[str, Any]]:
    """Processes the kernel named as the senders of the group's resets (``--trace``)."""
    out: dict[int, dict[str, Any]] = {}
    for e in group.sample_events():
        if e.process_pid is None or "tracepoint" not in e.extra or e.process_pid in out:
            continue
        doc: dict[str, Any] = {"name": e.process_name, "pid": e.process_pid}
        doc.update({k: e.extra[k] for k in ("unit", "container", "cgroup") if e.extra.get(k)})
        doc.update(port=e.destination_port, reason=e.extra.get("reason"))
        out[e.process_pid] = doc
    return list(out.values())[:5]


def nearest_listeners(ports: Sequence[int], listeners: Sequence[tuple[str, int]]) -> list[str]:
    """``address:port`` of the listeners that exist, the nearest to ``ports`` first."""
    if not ports or not listeners:
        return []
    ranked = sorted(set(listeners), key=lambda x: (min(abs(x[1] - p) for p in ports), x[1], x[0]))
    return [f"{a}:{p}" for a, p in ranked[:8]]


def remedy_values(group: Group, best: Scored) -> dict[str, str]:
    values = _Values()
    ports = sorted(group.ports) or ([group.port] if group.port is not None else [])
    values["count"] = str(group.resets)
    values["port"] = str(ports[0]) if ports else "<port>"
    values["ports"] = ", ".join(map(str, ports)) or "<port>"
    clients = [c for c, _ in group.clients.most_common(3)]
    values["client"] = clients[0] if clients else "<client>"
    values["clients"] = ", ".join(clients) or "(clients not logged)"
    ups = [group.upstream] if group.upstream else []
    values["upstream"] = ups[0] if ups else "<upstream>"
    values["upstreams"] = ", ".join(ups) or "the upstream"
    values["first_seen"] = group.first.isoformat(timespec="seconds")
    values["last_seen"] = group.last.isoformat(timespec="seconds")
    killed = [e for e in best.near_events if e.action == "oom-kill"]
    if killed:
        values["process"] = killed[0].process_name or "the process"
        values["pid"] = str(killed[0].process_pid or "?")
        values["first_seen"] = killed[0].timestamp.isoformat(timespec="seconds")
    elif named := named_processes(group):
        values["process"] = str(named[0]["name"] or "the process")
        values["pid"] = str(named[0]["pid"])
    else:
        values.update(process="the process", pid="?")
    if best.rule is not None:
        rule = best.rule.rule
        values.update(
            rule_text=rule.text,
            rule_where=fwlink.rule_where(rule),
            rule_delete=fwlink.rule_delete(rule),
            rule_packets=str(rule.packets),
            rule_condition=best.rule.condition or "its condition held",
        )
    else:
        values.update(
            rule_text="(no rule traced)",
            rule_where="the rejecting rule",
            rule_delete="(trace the packet with `auditor rules trace`)",
            rule_packets="?",
            rule_condition="its condition held",
        )
    lim = best.limit
    if lim is not None:
        values.update(
            limit_name=lim.name,
            limit_value=str(lim.value),
            limit_observed=str(lim.observed if lim.observed is not None else "?"),
            limit_suggested=suggest(lim.value, lim.observed),
            limit_unit=lim.unit,
            limit_where=(
                f"{lim.location.path}:{lim.location.line}"
                if lim.location and lim.location.line
                else "its configuration"
            ),
        )
    else:
        values.update(
            limit_name="the limit",
            limit_value="?",
            limit_observed="?",
            limit_suggested="a larger value",
            limit_unit="",
            limit_where="its configuration",
        )
    return values


def build_finding(
    group: Group,
    best: Scored,
    runners: Sequence[Scored],
    query: bool = False,
    listeners: Sequence[tuple[str, int]] = (),
) -> Finding:
    cause = best.cause
    values = remedy_values(group, best)
    ports = tuple(sorted(group.ports)) or ((group.port,) if group.port is not None else ())
    near = nearest_listeners(ports, [x for x in listeners if x[1] not in ports])
    values["listeners"] = ", ".join(near) or "(no listeners known)"
    remedy = string.Formatter().vformat(cause.remedy, (), values)
    what = (
        group.label
        if not group.synthetic
        else {"query": "the reported connections", "rule": "rule counters"}.get(
            group.synthetic, "kernel counters"
        )
    )
    summary = f"{group.resets} resets ({what}): {cause.title}"
    if best.rule is not None:
        summary += f"; rule {fwlink.rule_where(best.rule.rule)}"
        if best.rule.leads_to is not None:
            summary += f", which sends them to {fwlink.rule_where(best.rule.leads_to)}"
    if best.limit is not None:
        summary += f"; {limit_text(best.limit)}"
    details: dict[str, Any] = {}
    if group.upstream:
        details["upstreams"] = [group.upstream]
    if group.clients:
        details["clients"] = [c for c, _ in group.clients.most_common(5)]
    killed = [e for e in best.near_events if e.action == "oom-kill"]
    if killed:
        details["killed"] = [
            {
                "pid": e.process_pid,
                "name": e.process_name,
                "cgroup": e.extra.get("cgroup"),
                "at": e.timestamp.isoformat(),
            }
            for e in killed[:3]
        ]
    named = named_processes(group)
    if named:
        details["processes"] = named
    elif cause.actions() & BY_PROCESS and not any(
        e.extra.get("tracepoint") for e in group.sample_events()
    ):
        details["hint"] = "no kernel trace: `diagnose --trace SECONDS` would name the process"
    if "kernel-reset-no-socket" in group.counts and near:
        details["listeners"] = near
    if group.synthetic:
        details["from"] = group.synthetic
    if query:
        details["query"] = True
    evidence = list(best.evidence)
    if not evidence:
        evidence = [event_evidence(e, 0.0) for e in group.sample_events()[:3]]
    limit_doc = None
    if best.limit is not None:
        lim = best.limit
        limit_doc = {
            "name": lim.name,
            "value": lim.value,
            "observed": lim.observed,
            "unit": lim.unit,
            "scope": lim.scope,
            "usage": lim.usage,
        }
    return Finding(
        cause=cause.id,
        title=cause.title,
        confidence=confidence(best.score),
        score=best.score,
        summary=summary,
        remedy=remedy,
        resets=group.resets,
        ports=ports,
        first_seen=group.first,
        last_seen=group.last,
        side=cause.side,
        intentional=cause.intentional,
        rule=fwlink.rule_doc(best.rule.rule, best.rule.condition, best.rule.leads_to)
        if best.rule
        else None,
        limit=limit_doc,
        evidence=tuple(evidence[:MAX_EVIDENCE]),
        runners_up=tuple((r.cause.id, r.score) for r in runners),
        details=details,
    )


def _merge_key(f: Finding) -> tuple[Any, ...]:
    rule = f.rule or {}
    return (
        f.cause,
        rule.get("table"),
        rule.get("chain"),
        rule.get("position"),
        rule.get("handle"),
        tuple(f.details.get("upstreams", ())),
    )


def merge_findings(findings: Sequence[Finding]) -> list[Finding]:
    """One finding per cause (and rule, and upstream), bursts summed, best first."""
    merged: dict[tuple[Any, ...], Finding] = {}
    for f in findings:
        key = _merge_key(f)
        have = merged.get(key)
        if have is None:
            merged[key] = f
            continue
        evidence = _dedupe(have.evidence + f.evidence)[:MAX_EVIDENCE]
        score = max(have.score, f.score)
        clients = list(
            dict.fromkeys([*have.details.get("clients", ()), *f.details.get("clients", ())])
        )
        main = have if have.score >= f.score else f
        merged[key] = replace(
            main,
            resets=have.resets + f.resets,
            ports=tuple(sorted(set(have.ports) | set(f.ports))),
            first_seen=_min(have.first_seen, f.first_seen),
            last_seen=_max(have.last_seen, f.last_seen),
            score=score,
            confidence=confidence(score),
            evidence=evidence,
            summary=main.summary.replace(
                f"{main.resets} resets", f"{have.resets + f.resets} resets", 1
            ),
            details={**main.details, **({"clients": clients[:5]} if clients else {})},
        )
    # What the engineer asked about (--port/--client) first, then by score.
    return sorted(
        merged.values(), key=lambda f: (not f.details.get("query"), -f.score, -f.resets, f.cause)
    )


def _dedupe(items: tuple[Evidence, ...]) -> tuple[Evidence, ...]:
    seen: set[tuple[str, int | None, str]] = set()
    out = []
    for e in items:
        key = (e.source, e.line, e.text)
        if key not in seen:
            seen.add(key)
            out.append(e)
    return tuple(out)


def _min(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else min(a, b)


def _max(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else max(a, b)


def notes_for(
    catalog: Catalog, view: StateView, findings: Sequence[Finding], rulesets: Sequence[Any]
) -> list[Note]:
    """Risks no reset confirmed: checks without a finding of their cause, idle reset rules."""
    found = {f.cause for f in findings}
    notes: list[Note] = []
    titles: Mapping[str, str] = {c.id: c.title for c in catalog.causes}
    # Checks cited as evidence of a cause that was found are not separate notes.
    cited_checks = {
        i
        for c in catalog.causes
        if c.id in found
        for spec in c.evidence
        if spec.kind == "check"
        for i in spec.strings("ids")
    }
    for check in view.checks:
        if check.cause in found or check.cause in cited_checks:
            continue
        notes.append(
            Note(
                check.cause,
                titles.get(check.cause, check.title),
                f"{check.summary} (no reset event confirms it)",
                tuple(check.evidence[:3]),
            )
        )
    if view.since_boot:
        for cause in catalog.causes:
            if cause.id in found or cause.role != "cause":
                continue
            for spec in cause.evidence:
                if spec.kind != "counter" or not spec.anchor:
                    continue
                for name, value in view.counter_hits(spec.strings("names"))[:2]:
                    notes.append(
                        Note(
                            cause.id,
                            cause.title,
                            f"{name} = {value} since boot (one snapshot: take two, "
                            "e.g. --sample 10, to see whether it grows now)",
                        )
                    )
    cited = {(f.rule or {}).get("text") for f in findings}
    for ruleset in rulesets:
        try:
            rules = list(ruleset.rules())
        except Exception:
            continue
        for rule in rules:
            if getattr(rule, "can_reset", False) and not rule.packets and rule.text not in cited:
                loc = rule.location
                notes.append(
                    Note(
                        "firewall-reject",
                        "A rule could reset but matched nothing",
                        f"{fwlink.rule_where(rule)}: {rule.text} (0 packets)",
                        (
                            Evidence(
                                loc.path if loc else "rules",
                                loc.line if loc else None,
                                rule.text,
                                0.0,
                                "rule",
                            ),
                        ),
                    )
                )
    return notes


def limit_of(mapping: Mapping[str, Any] | None) -> Limit | None:
    if not mapping:
        return None
    return Limit(str(mapping.get("name")), mapping.get("value"), mapping.get("observed"))
