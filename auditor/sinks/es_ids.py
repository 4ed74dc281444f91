"""Deterministic document ids, so that re-runs and retries never create duplicates.

Every document auditor ships has an ``_id`` computed from what it *is*, not from
when it was sent: a reset event from (host, input, file identity, byte offset),
a finding from (host, cause, scope, window), a snapshot from (host, window).
Written with ``op_type=create``, a second copy is answered 409 and dropped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from auditor.models import Finding

_SEP = "\x1f"


def _digest(*parts: str) -> str:
    data = _SEP.join(parts).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def event_id(host: str, source: str, identity: str, offset: int) -> str:
    """The id of the event read at ``offset`` of the file known by ``identity``."""
    return _digest("e", host, source, identity, str(offset))


def finding_scope(finding: Finding) -> str:
    """What a finding is about beyond its cause: the limit's scope, ports, or side."""
    limit: Mapping[str, Any] | None = finding.limit
    if limit and limit.get("scope"):
        return f"limit:{limit.get('name', '')}@{limit['scope']}"
    if finding.rule and (finding.rule.get("id") or finding.rule.get("name")):
        return f"rule:{finding.rule.get('id') or finding.rule.get('name')}"
    if finding.ports:
        return "ports:" + ",".join(str(p) for p in sorted(finding.ports))
    return f"side:{finding.side or '-'}"


def finding_id(host: str, finding: Finding, window_start: datetime | None) -> str:
    """The id of a finding: its cause, scope and the start of the run's window."""
    start = window_start.isoformat() if window_start else "-"
    return _digest("f", host, finding.cause, finding_scope(finding), start)


def snapshot_id(host: str, window_start: datetime | None) -> str:
    """The id of the per-run snapshot: one per host and window."""
    return _digest("s", host, window_start.isoformat() if window_start else "-")
