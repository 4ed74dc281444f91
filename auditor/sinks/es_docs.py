"""The three kinds of documents a scheduled audit ships, serialised once.

* reset events: the ECS document of :func:`auditor.models.to_ecs`, plus host and
  ``data_stream`` fields;
* findings: :func:`finding_doc` (cause, confidence, evidence with file:line...);
* a per-run snapshot: limits, counter deltas and the ruleset fingerprint.

Each is returned as a :class:`~auditor.sinks.spool.Doc` (kind, deterministic id,
compact JSON) ready for a bulk request or the spool.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from auditor import __version__
from auditor.models import Event, Finding, plain
from auditor.sinks.es_ids import EventIds, finding_id, finding_scope, snapshot_id
from auditor.sinks.es_json import event_bytes
from auditor.sinks.es_templates import StreamNames
from auditor.sinks.spool import Doc
from auditor.sinks.text import dumps as text_dumps

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def dumps(doc: Any) -> bytes:
    """Compact JSON bytes, valid UTF-8 (no raw newline: JSON escapes control characters)."""
    text = _encode(doc)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: written as its escape text
        return text_dumps(doc, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True, slots=True)
class Window:
    """The span one run covers: from the previous run's watermark to this run's start."""

    start: datetime | None
    end: datetime

    def doc(self) -> dict[str, str]:
        out = {"end": self.end.isoformat()}
        if self.start is not None:
            out["start"] = self.start.isoformat()
        return out


class DocBuilder:
    """Builds the documents of one host and namespace."""

    def __init__(self, host: str, names: StreamNames) -> None:
        self.host = host
        self.names = names
        self._agent = {"name": "auditor", "type": "auditor", "version": __version__}
        self._ds = {k: names.data_stream_fields(k) for k in ("resets", "findings", "snapshot")}
        self._tail = {"agent": self._agent, "data_stream": self._ds["resets"]}
        self._ids = EventIds(host)

    def event(self, event: Event, source: str, identity: str) -> Doc:
        """A reset event read at ``event.location.offset`` of the file ``identity``."""
        loc = event.location
        offset = loc.offset if loc.offset is not None else -loc.line
        return Doc("resets", self._ids.id(source, identity, offset),
                   event_bytes(event, self.host, self._tail))

    def finding(self, finding: Finding, window: Window) -> Doc:
        return Doc(
            "findings",
            finding_id(self.host, finding, window.start),
            dumps(finding_doc(finding, self.host, window, self.names)),
        )

    def snapshot(self, window: Window, body: Mapping[str, Any]) -> Doc:
        doc: dict[str, Any] = {
            "@timestamp": window.end.isoformat(),
            "host": {"name": self.host},
            "agent": self._agent,
            "event": {"kind": "metric", "dataset": "auditor.snapshot", "category": ["host"]},
            "data_stream": self._ds["snapshot"],
            "auditor": {"run": {"window": window.doc()}, **body},
        }
        return Doc("snapshot", snapshot_id(self.host, window.start), dumps(doc))


def finding_doc(
    finding: Finding, host: str, window: Window, names: StreamNames | None = None
) -> dict[str, Any]:
    """The ECS-shaped document of one finding of a run on ``host``."""
    names = names or StreamNames()
    when = finding.last_seen or window.end
    body = plain(finding)
    body["scope"] = finding_scope(finding)
    evidence = body.pop("evidence", [])
    for item in evidence:
        if item.get("line") is None:
            item.pop("line", None)
    body["evidence"] = evidence
    runners = body.pop("runners_up", [])
    body["runners_up"] = [{"cause": c, "score": s} for c, s in runners]
    if finding.limit is not None:
        body["limit_name"] = finding.limit.name
    for key in ("rule", "limit"):
        if body.get(key) is None:
            body.pop(key, None)
    for key in ("first_seen", "last_seen"):
        if body.get(key) is None:
            body.pop(key, None)
    message = f"{finding.title}: {finding.summary}" if finding.summary else finding.title
    return {
        "@timestamp": when.isoformat(),
        "message": message,
        "host": {"name": host},
        "agent": {"name": "auditor", "type": "auditor", "version": __version__},
        "event": {
            "kind": "alert",
            "dataset": "auditor.findings",
            "category": ["network"],
            "type": ["connection", "denied"] if finding.side == "firewall" else ["connection"],
            "action": finding.cause,
            **({"start": finding.first_seen.isoformat()} if finding.first_seen else {}),
            **({"end": finding.last_seen.isoformat()} if finding.last_seen else {}),
        },
        "data_stream": names.data_stream_fields("findings"),
        "auditor": {"finding": body, "run": {"window": window.doc()}},
    }
