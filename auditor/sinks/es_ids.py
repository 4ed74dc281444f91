"""Deterministic document ids, so that re-runs and retries never create duplicates.

Every document auditor ships has an ``_id`` computed from what it *is*, not from
when it was sent: a reset event from (host, input, file identity, byte offset),
a finding from (host, cause, scope, window), a snapshot from (host, window).
Written with ``op_type=create``, a second copy is answered 409 and dropped.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from auditor.models import Finding

_SEP = "\x1f"


def _digest(*parts: str) -> str:
    data = _SEP.join(parts).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def event_id(host: str, source: str, identity: str, offset: int) -> str:
    """The id of the event read at ``offset`` of the file known by ``identity``."""
    return _digest("e", host, source, identity, str(offset))


class EventIds:
    """:func:`event_id` for many events of one host: the hash of the common prefix is reused."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._base: dict[tuple[str, str], hashlib.blake2b] = {}

    def id(self, source: str, identity: str, offset: int) -> str:
        """Equal to ``event_id(host, source, identity, offset)``."""
        base = self._base.get((source, identity))
        if base is None:
            if len(self._base) > 1024:
                self._base.clear()
            prefix = _SEP.join(("e", self.host, source, identity, ""))
            base = hashlib.blake2b(prefix.encode("utf-8", "surrogatepass"), digest_size=16)
            self._base[(source, identity)] = base
        h = base.copy()
        h.update(b"%d" % offset)
        return h.hexdigest()


def finding_scope(finding: Finding) -> str:
    """What a finding is about beyond its cause: the limit's scope, ports, or side."""
    limit = finding.limit
    if limit is not None and limit.scope:
        return f"limit:{limit.name}@{limit.scope}"
    rule = finding.rule
    if rule is not None and rule.chain:
        # the rule's place, whatever showed it (a logged packet or its counters)
        where = rule.position if rule.position is not None else rule.handle
        name = "/".join(str(x or "") for x in (rule.backend, rule.family, rule.table, rule.chain))
        return f"rule:{name}#{where}"
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
