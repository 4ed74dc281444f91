"""The one diagnosis: inputs -> events + rule sets + host facts -> correlate -> report.

``auditor diagnose`` (a bundle, a directory, a sosreport or the live host) and
the scheduled ``auditor audit`` (log lines streamed from saved offsets, the live
host's rules and limits, counters since the previous run) both end in
:class:`Diagnosis`, so they name the same causes from the same evidence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from auditor.bundle.inputs import Inputs, live_inputs, open_input
from auditor.bundle.trace import header_notes
from auditor.correlate.catalog import Catalog, load_default
from auditor.correlate.engine import correlate
from auditor.correlate.grouping import Aggregator
from auditor.correlate.report import Report, SourceInfo
from auditor.correlate.scoring import Query
from auditor.firewall.model import Ruleset
from auditor.limits.snapshot import HostState
from auditor.models import Event
from auditor.parsers.base import ParseContext
from auditor.pipeline.citations import citer, manifest_of, rewrite, without_copy_lines
from auditor.pipeline.declared import with_declared_formats
from auditor.pipeline.evidence import read_host_state, read_rulesets, rule_moves
from auditor.pipeline.logs import Window, events_of_inputs
from auditor.sources.files import SourceError
from auditor.sources.scan import ScanStats
from auditor.timeutil import parse_timezone

LIVE_LOOKBACK = timedelta(hours=2)
LIVE = "live host"


class NothingToRead(SourceError):
    """An input in which no artifact was recognised: nothing can be diagnosed."""


@dataclass
class Diagnosis:
    """Events are fed as they stream by; the report is made once host evidence is known."""

    query: Query = field(default_factory=Query)
    catalog: Catalog = field(default_factory=load_default)
    sources: list[SourceInfo] = field(default_factory=list)
    stats: list[ScanStats] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.aggregator = Aggregator(watch=self.query.client)

    def add(self, event: Event) -> None:
        self.aggregator.add(event)

    def feed(self, events: Iterable[Event]) -> Diagnosis:
        self.aggregator.feed(events)
        return self

    def report(
        self,
        rulesets: Sequence[Ruleset],
        state: HostState | None,
        now: datetime | None = None,
        host: str | None = None,
        moved: Mapping[tuple[Any, ...], int] | None = None,
    ) -> Report:
        """Correlate what was fed with the rule sets and host facts; ``now`` dates
        findings that only counters show (the capture time for a bundle); ``moved`` are
        the rule counters that moved in a trace window, when one was recorded."""
        report = correlate(
            self.aggregator, rulesets, state, self.query, self.catalog, now=now, moved=moved
        )
        if report.host is None and host:
            report = replace(report, host=host)
        return report.with_sources(tuple(self.sources))


def input_zone(inputs: Inputs) -> tzinfo:
    """The zone the input names (a bundle's manifest), else this host's."""
    try:
        return parse_timezone(inputs.timezone)
    except (ValueError, KeyError, OSError):  # unknown or malformed zone name (ZoneInfo's errors)
        return parse_timezone(None)


def open_source(
    path: str | None, start: datetime | None, sample: float, trace: float = 0.0
) -> Inputs:
    """The input at ``path``, or the live host collected into a private bundle (with a
    kernel trace of ``trace`` seconds instead of a counter sample, when asked)."""
    if path is not None:
        return open_input(path)
    back = LIVE_LOOKBACK
    if start is not None:
        back = max(timedelta(0), datetime.now(UTC) - start)
    return live_inputs(since=back, sample=sample, trace=trace)


def capture_time(inputs: Inputs) -> datetime | None:
    """When the input was captured (its last counter snapshot), if it says."""
    return inputs.snapshot_time("after") or inputs.snapshot_time("before")


# Reasons the collector gives that are no gap: the thing is not there on this host.
NOT_A_GAP = ("empty output", "not installed", "no running journal", "process gone",
             "no such file")


def gaps_of(manifest: Mapping[str, Any]) -> tuple[str, ...]:
    """What the collector could not read, and why (from a collected bundle's manifest)."""
    out: list[str] = []
    for item in manifest.get("missing") or ():
        if not isinstance(item, dict) or not item.get("what"):
            continue
        why = str(item.get("why") or "not read")
        if not any(marker in why for marker in NOT_A_GAP):
            out.append(f"{item['what']}: {why}")
    return tuple(out)


def diagnose_inputs(
    inputs: Inputs,
    query: Query | None = None,
    window: Window = Window(),
    tz: tzinfo | None = None,
    catalog: Catalog | None = None,
    origin: str | None = None,
) -> Report:
    """Everything ``auditor diagnose`` does with an opened input, short of printing.

    ``origin`` is the path the user named (None: the live host); evidence is cited
    relative to it, never in the temporary folder an archive or the live host is read from.
    """
    diagnosis = Diagnosis(query or Query(), catalog or load_default())
    inputs = with_declared_formats(inputs)
    for problem in inputs.problems:
        diagnosis.sources.append(
            SourceInfo(str(problem.location), "unrecognised", False, note=problem.reason)
        )
    if not inputs.artifacts:
        reasons = "; ".join(p.reason for p in inputs.problems[:3])
        raise NothingToRead(
            f"{origin or inputs.root or 'input'}: nothing auditor can read was found"
            + (f" ({reasons})" if reasons else "")
        )
    diagnosis.sources.extend(
        SourceInfo(p, "trace-header", ok, note=n) for p, ok, n in header_notes(inputs)
    )
    zone = tz or input_zone(inputs)
    base = ParseContext(timezone=zone, boot_time=inputs.boot_time, host_name=inputs.host)
    diagnosis.feed(events_of_inputs(inputs, base, diagnosis.stats, diagnosis.sources, window))
    rulesets = read_rulesets(inputs, diagnosis.sources)
    state = read_host_state(inputs, diagnosis.sources)
    report = diagnosis.report(
        rulesets, state, now=capture_time(inputs), host=inputs.host,
        moved=rule_moves(inputs, rulesets),
    )
    manifest = manifest_of(inputs)
    report = replace(report, input=origin or LIVE, gaps=gaps_of(manifest))
    if origin is None:
        report = without_copy_lines(report)
    return rewrite(report, citer(inputs, origin, origin is None, manifest))


def diagnose(
    path: str | None,
    query: Query | None = None,
    tz: tzinfo | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    catalog: Catalog | None = None,
    sample: float = 0.0,
    trace: float = 0.0,
) -> Report:
    """``auditor diagnose [PATH]``: the input at PATH, or the live host."""
    inputs = open_source(path, start, sample, trace)
    return diagnose_inputs(inputs, query, Window(start, end), tz, catalog, origin=path)
