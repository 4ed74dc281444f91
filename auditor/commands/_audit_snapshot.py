"""What a scheduled audit knows about the host beyond logs: rules, limits, counters.

It is read by the same pipeline as ``auditor diagnose`` (every firewall backend,
the same host facts), from the live host or from a bundle the configuration
names. The counters are turned into a window against the previous run's values,
so causes that only counters show are found by the audit as by ``diagnose``.
What could not be read is recorded, so a gap is visible in the snapshot document.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from auditor.bundle.inputs import Inputs, live_inputs, open_input
from auditor.correlate.report import SourceInfo
from auditor.firewall.model import Ruleset
from auditor.limits.snapshot import HostState
from auditor.pipeline.diagnosis import capture_time
from auditor.pipeline.evidence import read_host_state, read_rulesets, with_counter_window
from auditor.sources.files import SourceError

_COUNTERS_IN_TEXT = re.compile(r"^\[\d+:\d+\]\s*|\bcounter packets \d+ bytes \d+\s*")


@dataclass
class HostSnapshot:
    """The parts read for this run, and why any part is missing."""

    host_state: HostState | None = None
    rulesets: list[Ruleset] = field(default_factory=list)
    inputs: Inputs | None = None
    sources: list[SourceInfo] = field(default_factory=list)
    ruleset_fingerprint: str | None = None
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def counters(self) -> dict[str, int]:
        """The latest counter values (saved for the next run's window)."""
        state = self.host_state
        return {str(k): int(v) for k, v in state.after.items()} if state is not None else {}

    @property
    def captured(self) -> datetime | None:
        return capture_time(self.inputs) if self.inputs is not None else None


def fingerprint(rulesets: Sequence[Ruleset]) -> str | None:
    """A digest of every rule and policy, counters left out (they move with traffic)."""
    if not rulesets:
        return None
    items: list[Any] = []
    for rs in rulesets:
        for rule in rs.rules():
            text = _COUNTERS_IN_TEXT.sub("", rule.text)
            items.append([rs.backend, rule.family, rule.table, rule.chain, text])
        for pol in rs.policies():
            items.append([rs.backend, pol.family, pol.table, pol.chain, pol.policy])
    canon = json.dumps(sorted(items), separators=(",", ":"))
    return hashlib.blake2b(canon.encode(), digest_size=16).hexdigest()


def read_host(
    enabled: bool = True,
    source: str | None = None,
    previous: Mapping[str, int] | None = None,
    previous_time: datetime | None = None,
    now: datetime | None = None,
) -> HostSnapshot:
    """Rules and host facts of the live host (or of the bundle at ``source``), with the
    counters as a window since ``previous`` (the last run's values at ``previous_time``)."""
    snap = HostSnapshot()
    if not enabled:
        snap.skipped = {"limits": "disabled", "ruleset": "disabled"}
        return snap
    try:
        if source is not None:
            snap.inputs = open_input(source)
        else:
            snap.inputs = live_inputs(since=timedelta(0), sample=0.0, logs=False)
    except (OSError, SourceError) as exc:
        snap.skipped = {"limits": str(exc), "ruleset": str(exc)}
        return snap
    snap.rulesets = read_rulesets(snap.inputs, snap.sources)
    state = read_host_state(snap.inputs, snap.sources)
    if previous and now is not None and source is None:
        state = with_counter_window(state, previous, previous_time, now)
    snap.host_state = state
    snap.ruleset_fingerprint = fingerprint(snap.rulesets)
    if not snap.rulesets:
        snap.skipped["ruleset"] = "no firewall rules could be read (see sources)"
    if not state.limits and not state.after:
        snap.skipped["limits"] = "no limits or counters could be read"
    for info in snap.sources:
        if not info.used and info.note:
            snap.skipped.setdefault(f"source {info.path}", info.note)
    return snap


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    return float(value) if isinstance(value, int | float) else None


def limits_body(state: HostState | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for lim in state.limits if state is not None else ():
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
        out.append(item)
    return out


def snapshot_body(
    snap: HostSnapshot,
    previous_ruleset: str | None,
    spool: Mapping[str, int],
    files: int,
    events: int,
) -> dict[str, Any]:
    """The ``auditor`` part of the snapshot document."""
    state = snap.host_state
    deltas = {k: v for k, v in (state.deltas if state is not None else {}).items() if v}
    ruleset: dict[str, Any] = {}
    if snap.ruleset_fingerprint:
        ruleset["fingerprint"] = snap.ruleset_fingerprint
        if previous_ruleset:
            ruleset["previous"] = previous_ruleset
            ruleset["changed"] = previous_ruleset != snap.ruleset_fingerprint
    if "ruleset" in snap.skipped:
        ruleset["skipped"] = snap.skipped["ruleset"]
    body: dict[str, Any] = {
        "limits": limits_body(state),
        # counter names contain dots; keep them as keys of a list, not as object paths
        "counters": [{"name": k, "delta": v} for k, v in sorted(deltas.items())],
        "ruleset": ruleset,
        "spool": dict(spool),
        "run": {"files": files, "events": events},
    }
    if state is not None and state.window_seconds is not None:
        body["counter_window_seconds"] = state.window_seconds
    if snap.skipped:
        body["skipped"] = [{"part": k, "reason": v} for k, v in sorted(snap.skipped.items())]
    return body
