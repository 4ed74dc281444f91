"""The diagnosis as NDJSON: one ECS-shaped document per finding (and per unexplained burst).

:func:`finding_to_ecs` is also what the Elasticsearch sink indexes.
"""

from __future__ import annotations

from typing import IO, Any

from auditor.correlate.report import Report, evidence_json
from auditor.models import Finding, plain
from auditor.sinks.es_json import doc_bytes

SEVERITY = {"high": 3, "medium": 2, "low": 1}


def finding_to_ecs(finding: Finding, host: str | None) -> dict[str, Any]:
    """One finding as an ECS document (``event.kind: alert``, auditor details under ``auditor``)."""
    stamp = finding.last_seen or finding.first_seen
    doc: dict[str, Any] = {
        "@timestamp": stamp.isoformat() if stamp else None,
        "event": {
            "kind": "alert",
            "category": ["network"],
            "type": ["connection", "denied"],
            "action": finding.cause,
            "dataset": "auditor.finding",
            "severity": SEVERITY.get(finding.confidence, 0),
            "risk_score": round(finding.score * 100, 1),
            "start": finding.first_seen.isoformat() if finding.first_seen else None,
            "end": finding.last_seen.isoformat() if finding.last_seen else None,
            "outcome": "failure",
        },
        "message": finding.summary,
        "rule": {"id": finding.cause, "name": finding.title, "category": finding.side},
        "destination": {"port": finding.ports[0]} if len(finding.ports) == 1 else None,
        "host": {"name": host} if host else None,
        "auditor": {
            "cause": finding.cause,
            "confidence": finding.confidence,
            "score": finding.score,
            "side": finding.side,
            "intentional": finding.intentional,
            "resets": finding.resets,
            "ports": list(finding.ports),
            "remedy": finding.remedy,
            "firewall_rule": finding.rule.to_doc() if finding.rule else None,
            "limit": finding.limit.to_doc() if finding.limit else None,
            "evidence": [evidence_json(e) for e in finding.evidence],
            "runners_up": [{"cause": c, "score": s} for c, s in finding.runners_up],
            "details": plain(finding.details),
        },
    }
    return _prune(doc)


def _prune(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            value = _prune(value)
        if value is None or value == {}:
            continue
        out[key] = value
    return out


def _text(doc: dict[str, Any]) -> str:
    return doc_bytes(doc).decode("utf-8")


def write_report_ndjson(report: Report, out: IO[str]) -> int:
    n = 0
    for finding in report.findings:
        out.write(_text(finding_to_ecs(finding, report.host)))
        out.write("\n")
        n += 1
    for u in report.unexplained:
        doc = {
            "@timestamp": u.last_seen.isoformat() if u.last_seen else None,
            "event": {
                "kind": "alert",
                "action": "unexplained",
                "dataset": "auditor.finding",
                "category": ["network"],
                "type": ["connection"],
            },
            "message": f"{u.resets} resets no cause explains",
            "host": {"name": report.host} if report.host else None,
            "auditor": {
                "cause": "unexplained",
                "resets": u.resets,
                "ports": list(u.ports),
                "upstream": u.upstream,
                "actions": dict(u.actions),
                "evidence": [evidence_json(e) for e in u.evidence],
            },
        }
        out.write(_text(_prune(doc)))
        out.write("\n")
        n += 1
    return n
