"""From a scored group to a Finding: summary, rule or limit cited, remedy filled with real values.

Also merges the findings of one cause (and one rule) across bursts, and turns
configuration risks that no reset confirmed into lint notes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from auditor.correlate import fwlink
from auditor.correlate.catalog_checks import FIELD, SECTION
from auditor.correlate.grouping import Group
from auditor.correlate.scoring import Scored, confidence, event_evidence, limit_text
from auditor.models import Evidence, Finding, FindingLimit, FindingRule
from auditor.vocabulary import PLACEHOLDERS

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


def suggest(value: Any, observed: Any = None) -> str | None:
    """A concrete new value for a limit: double the larger of limit and use, to a round number."""
    if (
        isinstance(value, str)
        and len(value.split()) == 3
        and all(p.isdigit() for p in value.split())
    ):
        return " ".join(str(int(p) * 2) for p in value.split())
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    base = max(float(value), float(observed or 0)) * 2
    if base <= 0:
        return None
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
    """The placeholder values the evidence gives; an unknown value is left out."""
    values: dict[str, str] = {}
    ports = list(ports_of(group, best))
    values["count"] = str(group.resets)
    if ports:
        values["port"] = str(ports[0])
        values["ports"] = ", ".join(map(str, ports))
    clients = [c for c, _ in group.clients.most_common(3)]
    if clients:
        values["client"], values["clients"] = clients[0], ", ".join(clients)
    if group.upstream:
        values["upstream"] = values["upstreams"] = group.upstream
    values["first_seen"] = group.first.isoformat(timespec="seconds")
    values["last_seen"] = group.last.isoformat(timespec="seconds")
    # values the engine found for the group beyond its events (e.g. the program that said
    # it listens on the port): only registered placeholders
    known = group.extra.get("values", {})
    values.update({k: str(v) for k, v in known.items() if k in PLACEHOLDERS})
    killed = [e for e in best.near_events if e.action == "oom-kill"]
    if killed:
        if killed[0].process_name:
            values["process"] = killed[0].process_name
        if killed[0].process_pid is not None:
            values["pid"] = str(killed[0].process_pid)
        values["first_seen"] = killed[0].timestamp.isoformat(timespec="seconds")
    elif named := named_processes(group):
        if named[0]["name"]:
            values["process"] = str(named[0]["name"])
        values["pid"] = str(named[0]["pid"])
    if best.rule is not None:
        rule = best.rule.rule
        values.update(rule_text=rule.text, rule_where=fwlink.rule_where(rule),
                      rule_delete=fwlink.rule_delete(rule))
        if rule.packets is not None:
            values["rule_packets"] = str(rule.packets)
        if best.rule.condition:
            values["rule_condition"] = best.rule.condition
    lim = best.limit
    if lim is not None:
        values["limit_name"] = lim.name
        if lim.value is not None:
            values["limit_value"] = _show(lim.value)
        if lim.observed is not None:
            values["limit_observed"] = _show(lim.observed)
        suggested: object = None
        if best.fact is not None and best.fact.limit == lim and best.fact.suggested:
            suggested = best.fact.suggested
        else:
            suggested = suggest(lim.value, lim.observed)
        if suggested is not None:
            values["limit_suggested"] = _show(suggested)
        if lim.unit:
            values["limit_unit"] = lim.unit
        if lim.location and lim.location.line:
            values["limit_where"] = f"{lim.location.path}:{lim.location.line}"
    return values


def ports_of(group: Group, best: Scored) -> tuple[int, ...]:
    """The group's ports; for a group without any (counters only), those of the host facts
    that showed the cause (e.g. the listener whose accept queue is full)."""
    if group.ports:
        return tuple(sorted(group.ports))
    if group.port is not None:
        return (group.port,)
    return tuple(sorted(best.fact_ports))


def _number(text: str | None) -> int | float | str | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _show(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def render_remedy(template: str, values: Mapping[str, str]) -> str:
    """The remedy with its values: an optional section ``[[...]]`` with an unknown value is
    left out; an unknown value outside sections takes its vocabulary fallback wording."""

    def fill(text: str) -> str:
        return FIELD.sub(lambda m: str(values.get(m.group(1), _fallback(m.group(1)))), text)

    def section(m: re.Match[str]) -> str:
        inner = m.group(1)
        return fill(inner) if all(n in values for n in FIELD.findall(inner)) else ""

    kept = SECTION.sub(section, template).strip() if "[[" in template else template.strip()
    text = fill(kept)
    # A left-out section leaves no double space, nor a space before punctuation.
    text = re.sub(r"\s+([,;)]|\.(?!\.))", r"\1", re.sub(r"[ \t]{2,}", " ", text)).strip()
    opening = FIELD.match(kept)
    if opening is not None and opening.group(1) not in values:
        text = text[:1].upper() + text[1:]  # a fallback wording opens the sentence
    return text


def _fallback(name: str) -> str:
    spec = PLACEHOLDERS.get(name)
    return spec.fallback if spec is not None and spec.fallback is not None else ""


def build_finding(
    group: Group,
    best: Scored,
    runners: Sequence[Scored],
    query: bool = False,
    listeners: Sequence[tuple[str, int]] = (),
    service: tuple[int, ...] = (),
) -> Finding:
    """The finding of ``group``; ``service`` are the ports clients connect to when the
    group's failures happened on the way to an upstream (its address stays in details)."""
    cause = best.cause
    values = remedy_values(group, best)
    ports = service or ports_of(group, best)
    if service:
        values["port"] = str(service[0])
        values["ports"] = ", ".join(map(str, service))
    near = nearest_listeners(ports, [x for x in listeners if x[1] not in ports])
    if near:
        values["listeners"] = ", ".join(near)
    remedy = render_remedy(cause.remedy, values)
    what = (
        group.label
        if not group.synthetic
        else {"query": "the reported connections", "rule": "rule counters",
              "announced": "kernel counters, a port a program left"}.get(
            group.synthetic, "kernel counters"
        )
    )
    summary = f"{group.resets} resets ({what}): {cause.title}"
    if not group.resets and group.dropped:
        summary = f"{group.dropped} packets dropped, no reset sent ({what}): {cause.title}"
    if best.rule is not None:
        summary += f"; rule {fwlink.rule_where(best.rule.rule)}"
        if best.rule.leads_to is not None:
            summary += f", which sends them to {fwlink.rule_where(best.rule.leads_to)}"
    if best.limit is not None:
        summary += f"; {limit_text(best.limit)}"
    details: dict[str, Any] = {}
    if group.upstream:
        details["upstreams"] = [group.upstream]
        if service:
            details["service_ports"] = list(service)
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
    if "announced" in group.extra:
        details["announced"] = dict(group.extra["announced"])
    if group.dropped:
        details["dropped"] = group.dropped  # logged packets dropped: no reset sent for them
    if query:
        details["query"] = True
    evidence = list(best.evidence)
    if not evidence:
        evidence = [event_evidence(e, 0.0) for e in group.sample_events()[:3]]
    limit_ref = None
    if best.limit is not None:
        limit_ref = FindingLimit.of(best.limit, _number(values.get("limit_suggested")))
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
        rule=(
            FindingRule.from_doc(
                fwlink.rule_doc(best.rule.rule, best.rule.condition, best.rule.leads_to)
            )
            if best.rule
            else None
        ),
        limit=limit_ref,
        evidence=tuple(evidence[:MAX_EVIDENCE]),
        runners_up=tuple((r.cause.id, r.score) for r in runners),
        details=details,
    )


def _merge_key(f: Finding) -> tuple[Any, ...]:
    rule = f.rule
    return (
        f.cause,
        rule.table if rule else None,
        rule.chain if rule else None,
        rule.position if rule else None,
        rule.handle if rule else None,
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
            details={
                **main.details,
                **({"clients": clients[:5]} if clients else {}),
                **_dropped(have, f),
            },
        )
    # What the engineer asked about (--port/--client) first, then by score; a finding whose
    # packets were all dropped (no reset sent) never above one of resets.
    return sorted(
        merged.values(),
        key=lambda f: (
            not f.details.get("query"), _silent(f), -f.score, -f.resets, f.cause
        ),
    )


def _dropped(a: Finding, b: Finding) -> dict[str, int]:
    n = int(a.details.get("dropped", 0)) + int(b.details.get("dropped", 0))
    return {"dropped": n} if n else {}


def _silent(f: Finding) -> bool:
    return not f.resets and bool(f.details.get("dropped"))


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
