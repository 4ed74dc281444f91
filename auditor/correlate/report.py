"""The diagnosis report and its versioned JSON form, ``auditor.report/1``.

:meth:`Report.to_json` gives the document ``--format json`` prints; its JSON Schema
ships as ``auditor/correlate/report.schema.json`` (:func:`json_schema`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any

from auditor.models import Evidence, Finding, plain

SCHEMA = "auditor.report/1"


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """One input the diagnosis looked at, and whether it was used."""

    path: str
    kind: str
    used: bool
    events: int = 0
    lines: int = 0
    not_understood: int = 0
    note: str = ""


@dataclass(frozen=True, slots=True)
class Unexplained:
    """A burst of resets no cause explains (with the best guess, if any, too weak to claim)."""

    resets: int
    ports: tuple[int, ...]
    upstream: str | None
    clients: tuple[str, ...]
    first_seen: datetime | None
    last_seen: datetime | None
    actions: Mapping[str, int]
    evidence: tuple[Evidence, ...] = ()
    best_guess: tuple[str, float] | None = None


@dataclass(frozen=True, slots=True)
class Note:
    """A lint note: a risk in the configuration that no reset event confirmed."""

    cause: str
    title: str
    text: str
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True, slots=True)
class Report:
    host: str | None
    start: datetime | None
    end: datetime | None
    total: int
    explained: int
    intentional: int = 0
    findings: tuple[Finding, ...] = ()
    unexplained: tuple[Unexplained, ...] = ()
    notes: tuple[Note, ...] = ()
    timeline: tuple[tuple[datetime, Mapping[str, int]], ...] = ()
    sources: tuple[SourceInfo, ...] = ()
    query: Mapping[str, Any] = field(default_factory=dict)
    events: int = 0
    input: str | None = None  # what was analysed: a path as given, or "live host"
    gaps: tuple[str, ...] = ()  # evidence that could not be read, each with why

    def with_sources(self, sources: tuple[SourceInfo, ...]) -> Report:
        from dataclasses import replace

        return replace(self, sources=sources)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "host": self.host,
            "input": self.input,
            "gaps": list(self.gaps),
            "window": {"start": _iso(self.start), "end": _iso(self.end)},
            "query": dict(self.query),
            "events": self.events,
            "resets": {
                "total": self.total,
                "explained": self.explained,
                "intentional": self.intentional,
                "unexplained": sum(u.resets for u in self.unexplained),
            },
            "findings": [finding_json(f) for f in self.findings],
            "unexplained": [_unexplained_json(u) for u in self.unexplained],
            "notes": [
                {
                    "cause": n.cause,
                    "title": n.title,
                    "text": n.text,
                    "evidence": [evidence_json(e) for e in n.evidence],
                }
                for n in self.notes
            ],
            "timeline": [{"minute": _iso(m), "resets": dict(c)} for m, c in self.timeline],
            "sources": [plain(s) for s in self.sources],
        }


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts is not None else None


def evidence_json(e: Evidence) -> dict[str, Any]:
    return {
        "source": e.source,
        "line": e.line,
        "text": e.text,
        "kind": e.kind,
        "weight": round(e.weight, 3),
    }


def finding_json(f: Finding) -> dict[str, Any]:
    return {
        "cause": f.cause,
        "title": f.title,
        "side": f.side,
        "intentional": f.intentional,
        "confidence": f.confidence,
        "score": f.score,
        "summary": f.summary,
        "resets": f.resets,
        "ports": list(f.ports),
        "first_seen": _iso(f.first_seen),
        "last_seen": _iso(f.last_seen),
        "rule": f.rule.to_doc() if f.rule else None,
        "limit": f.limit.to_doc() if f.limit else None,
        "evidence": [evidence_json(e) for e in f.evidence],
        "remedy": f.remedy,
        "runners_up": [{"cause": c, "score": s} for c, s in f.runners_up],
        "details": plain(f.details),
    }


def _unexplained_json(u: Unexplained) -> dict[str, Any]:
    return {
        "resets": u.resets,
        "ports": list(u.ports),
        "upstream": u.upstream,
        "clients": list(u.clients),
        "first_seen": _iso(u.first_seen),
        "last_seen": _iso(u.last_seen),
        "actions": dict(u.actions),
        "evidence": [evidence_json(e) for e in u.evidence],
        "best_guess": {"cause": u.best_guess[0], "score": u.best_guess[1]}
        if u.best_guess
        else None,
    }


def json_schema() -> dict[str, Any]:
    """The JSON Schema of ``auditor.report/1``."""
    text = (resources.files("auditor.correlate") / "report.schema.json").read_text(encoding="utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc
