"""What a scheduled audit knows about the host beyond logs: limits, counters, ruleset.

Each part is optional: when the reader is missing or fails (no permission, no
nft), the part is skipped and the reason recorded in the snapshot document, so a
gap is visible rather than silent. Also the correlation adapter: findings from
:func:`auditor.correlate.engine.correlate` fed one event at a time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from auditor.models import Event, Finding, plain


@dataclass
class HostSnapshot:
    """The live parts read for this run, and why any part is missing."""

    host_state: Any = None  # auditor.limits.snapshot.HostState
    rulesets: list[Any] = field(default_factory=list)
    limits: list[dict[str, Any]] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    ruleset_fingerprint: str | None = None
    skipped: dict[str, str] = field(default_factory=dict)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    return float(value) if isinstance(value, int | float) else None


def read_host(enabled: bool = True) -> HostSnapshot:
    """Limits and counters (auditor.limits.snapshot.live_state), ruleset (nft), if available."""
    snap = HostSnapshot()
    if not enabled:
        snap.skipped = {"limits": "disabled", "ruleset": "disabled"}
        return snap
    try:
        from auditor.limits.snapshot import live_state

        state = live_state()
        snap.host_state = state
        for lim in state.limits:
            item: dict[str, Any] = {"name": lim.name, "scope": lim.scope, "unit": lim.unit}
            value, observed = _number(lim.value), _number(lim.observed)
            if value is not None:
                item["value"] = value
            elif lim.value is not None:
                item["value_text"] = str(lim.value)
            if observed is not None:
                item["observed"] = observed
            if lim.usage is not None:
                item["usage"] = round(lim.usage, 6)
            snap.limits.append(item)
        snap.counters = {str(k): int(v) for k, v in state.counters.items()}
    except ImportError:
        snap.skipped["limits"] = "auditor.limits.snapshot.live_state not available"
    except Exception as exc:
        snap.skipped["limits"] = f"{type(exc).__name__}: {exc}"
    try:
        from auditor.firewall import nft_json

        ruleset = nft_json.read_live()
        snap.rulesets.append(ruleset)
        canon = json.dumps(plain(list(ruleset.objects)), sort_keys=True, default=str)
        snap.ruleset_fingerprint = hashlib.blake2b(canon.encode(), digest_size=16).hexdigest()
    except ImportError:
        snap.skipped["ruleset"] = "auditor.firewall.nft_json.read_live not available"
    except Exception as exc:
        snap.skipped["ruleset"] = f"{type(exc).__name__}: {exc}"
    return snap


def counter_deltas(previous: Mapping[str, int], current: Mapping[str, int]) -> dict[str, int]:
    """Counters that moved since the last run (a counter that went down restarted: its value)."""
    out = {}
    for name, value in current.items():
        before = previous.get(name)
        if before is None:
            continue
        delta = value - before if value >= before else value
        if delta:
            out[name] = delta
    return out


def snapshot_body(
    snap: HostSnapshot,
    previous_counters: Mapping[str, int],
    previous_ruleset: str | None,
    spool: Mapping[str, int],
    files: int,
    events: int,
) -> dict[str, Any]:
    """The ``auditor`` part of the snapshot document."""
    deltas = counter_deltas(previous_counters, snap.counters)
    ruleset: dict[str, Any] = {}
    if snap.ruleset_fingerprint:
        ruleset["fingerprint"] = snap.ruleset_fingerprint
        if previous_ruleset:
            ruleset["previous"] = previous_ruleset
            ruleset["changed"] = previous_ruleset != snap.ruleset_fingerprint
    if "ruleset" in snap.skipped:
        ruleset["skipped"] = snap.skipped["ruleset"]
    body: dict[str, Any] = {
        "limits": snap.limits,
        # counter names contain dots; keep them as keys of a list, not as object paths
        "counters": [{"name": k, "delta": v} for k, v in sorted(deltas.items())],
        "ruleset": ruleset,
        "spool": dict(spool),
        "run": {"files": files, "events": events},
    }
    if snap.skipped:
        body["skipped"] = [{"part": k, "reason": v} for k, v in sorted(snap.skipped.items())]
    return body


class Correlation:
    """Feeds events to the correlation engine as they stream by; None when unavailable."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._agg: Any = None
        try:
            from auditor.correlate.grouping import Aggregator

            self._agg = Aggregator()
        except Exception as exc:
            self.reason = f"correlation not available ({type(exc).__name__}: {exc})"

    def add(self, event: Event) -> None:
        if self._agg is not None:
            self._agg.add(event)

    def findings(self, snap: HostSnapshot, now: datetime) -> list[Finding]:
        if self._agg is None or not self._agg.events:
            return []
        try:
            from auditor.correlate.engine import correlate

            report = correlate(self._agg, rulesets=snap.rulesets, state=snap.host_state, now=now)
            return list(report.findings)
        except Exception as exc:
            self.reason = f"correlation failed ({type(exc).__name__}: {exc})"
            return []
