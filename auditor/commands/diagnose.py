"""``auditor diagnose``: name the cause of connection resets, with evidence and remedy."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any

import typer

from auditor.commands._common import (
    clean_errors,
    err_console,
    fail,
    instant_option,
    timezone_option,
)
from auditor.correlate.catalog import CatalogError, load_catalog, load_default
from auditor.correlate.engine import correlate
from auditor.correlate.grouping import Aggregator
from auditor.correlate.report import Report, SourceInfo
from auditor.correlate.scoring import Query
from auditor.models import Event
from auditor.parsers import registry
from auditor.parsers.base import ParseContext
from auditor.sinks.report_json import write_report_json
from auditor.sinks.report_markdown import render_markdown
from auditor.sinks.report_ndjson import write_report_ndjson
from auditor.sinks.report_table import print_report
from auditor.sinks.text import console as text_console
from auditor.sinks.text import line, short_path
from auditor.sources.files import SourceError
from auditor.sources.scan import ScanStats, scan
from auditor.timeutil import parse_timezone

RULE_KINDS = ("iptables-save", "ip6tables-save", "nft-json")
LEVELS = {"high": 3, "medium": 2, "low": 1}


class ReportFormat(StrEnum):
    table = "table"
    json = "json"
    ndjson = "ndjson"
    markdown = "markdown"


class FailOn(StrEnum):
    high = "high"
    medium = "medium"
    low = "low"


EXAMPLES = """
[bold]Examples[/]

  auditor diagnose                          # this host, last 2 hours
  auditor diagnose incident-bundle.tar.gz
  auditor diagnose sosreport-web1/ --port 443 --since 2026-11-24T09:00
  auditor diagnose bundle/ --port 8080 --client 203.0.113.7 -f json
  auditor diagnose bundle/ --format markdown > ticket.md
  auditor diagnose bundle/ --fail-on high    # exit 1 on a high confidence

[bold]Exit status[/]

  0  the diagnosis was printed (and --fail-on did not match)
  1  --fail-on: a non-intentional finding of that confidence or higher
  2  bad option, unreadable input or invalid cause catalog
"""


def gather(path: str | None, since: datetime | None, sample: float) -> Any:
    """Inputs of a bundle/directory/sosreport/file, or of the live host."""
    from auditor.bundle import inputs as bundle_inputs

    if path is None:
        back = timedelta(hours=2)
        if since is not None:
            back = max(timedelta(0), datetime.now(UTC) - since)
        return bundle_inputs.live_inputs(since=back, sample=sample)
    return bundle_inputs.open_input(path)


def load_rulesets(inputs: Any, sources: list[SourceInfo]) -> list[Any]:
    rulesets: list[Any] = []
    arts = [a for kind in RULE_KINDS for a in inputs.by_kind(kind)]
    if not arts:
        return rulesets
    try:
        import auditor.firewall as firewall
    except ImportError as exc:
        sources.extend(
            SourceInfo(a.path, a.kind, False, note=f"firewall reader missing: {exc}") for a in arts
        )
        return rulesets
    for art in arts:
        try:
            ruleset = firewall.read_file(art.path)
        except Exception as exc:  # one unreadable dump must not stop the diagnosis
            sources.append(SourceInfo(art.path, art.kind, False, note=str(exc)))
            continue
        rulesets.append(ruleset)
        issues = len(getattr(ruleset, "issues", ()) or ())
        sources.append(SourceInfo(art.path, art.kind, True, not_understood=issues))
    return rulesets


def load_host_state(inputs: Any, sources: list[SourceInfo]) -> Any:
    try:
        from auditor.limits.snapshot import load_state
    except ImportError as exc:
        sources.append(SourceInfo("(limits)", "state", False, note=f"limits reader missing: {exc}"))
        return None
    try:
        state = load_state(inputs)
    except Exception as exc:  # the report still explains what logs show
        sources.append(SourceInfo("(limits)", "state", False, note=str(exc)))
        return None
    skip = {"manifest", *RULE_KINDS}
    sources.extend(
        SourceInfo(a.path, a.kind, True)
        for a in getattr(state, "sources", ())
        if a.kind not in skip
    )
    return state


def events_of(
    inputs: Any,
    tz: tzinfo,
    stats: list[ScanStats],
    sources: list[SourceInfo],
    start: datetime | None,
    end: datetime | None,
) -> Iterator[Event]:
    parsers = registry()
    boot = getattr(inputs, "boot_time", None)
    for art in inputs.logs():
        cls = parsers.get(art.kind)
        if cls is None:
            continue
        st = ScanStats(art.path, cls.name)
        stats.append(st)
        ctx = ParseContext(timezone=tz, boot_time=boot, host_name=getattr(inputs, "host", None))
        try:
            events = scan(art.path, cls(ctx, art.path), st)
            if start is None and end is None:
                yield from events  # no window: no per-event test
            else:
                lo = start or datetime.min.replace(tzinfo=UTC)
                hi = end or datetime.max.replace(tzinfo=UTC)
                yield from (e for e in events if lo <= e.timestamp < hi)
        except (OSError, SourceError) as exc:
            sources.append(SourceInfo(art.path, art.kind, False, note=str(exc)))
            continue
        sources.append(SourceInfo(art.path, art.kind, True, st.events, st.lines, st.not_understood))


def diagnose(
    path: str | None,
    query: Query,
    tz: tzinfo | None,
    start: datetime | None,
    end: datetime | None,
    rules_dir: str | None = None,
    sample: float = 0.0,
) -> Report:
    """Everything ``auditor diagnose`` does short of printing."""
    catalog = load_catalog(rules_dir) if rules_dir else load_default()
    inputs = gather(path, start, sample)
    tz = tz or _input_zone(inputs)
    sources: list[SourceInfo] = []
    for problem in getattr(inputs, "problems", ()):
        sources.append(
            SourceInfo(str(problem.location), "unrecognised", False, note=problem.reason)
        )
    stats: list[ScanStats] = []
    agg = Aggregator(watch=query.client).feed(events_of(inputs, tz, stats, sources, start, end))
    rulesets = load_rulesets(inputs, sources)
    state = load_host_state(inputs, sources)
    report = correlate(agg, rulesets, state, query, catalog)
    if report.host is None and getattr(inputs, "host", None):
        from dataclasses import replace

        report = replace(report, host=inputs.host)
    return report.with_sources(tuple(sources))


def _input_zone(inputs: Any) -> tzinfo:
    """The zone the bundle names, else this host's."""
    try:
        return parse_timezone(getattr(inputs, "timezone", None))
    except Exception:
        return parse_timezone(None)


def register(app: typer.Typer) -> None:
    @app.command("diagnose", epilog=EXAMPLES)
    @clean_errors
    def diagnose_cmd(
        path: str | None = typer.Argument(
            None,
            help="Bundle (archive or directory), directory of logs, sosreport or file; "
            "none = this host.",
        ),
        port: int | None = typer.Option(None, help="The port clients see resets on."),
        client: str | None = typer.Option(None, help="A client address that saw resets."),
        since: str | None = typer.Option(
            None, help="Start of the incident (ISO time or '2h' ago)."
        ),
        until: str | None = typer.Option(None, help="End of the incident (ISO time or '2h' ago)."),
        fmt: ReportFormat = typer.Option(
            ReportFormat.table, "--format", "-f", help="Output format."
        ),
        fail_on: FailOn | None = typer.Option(
            None,
            "--fail-on",
            help="Exit 1 when a (non-intentional) finding has this confidence or higher.",
        ),
        tz_name: str | None = typer.Option(
            None,
            "--timezone",
            help="Zone of stamps that carry none (default: the bundle's, else the host's).",
        ),
        rules_dir: str | None = typer.Option(
            None, "--rules", help="Use this cause catalog directory."
        ),
        sample: float = typer.Option(
            0.0, help="Live host: read counters twice, this many seconds apart."
        ),
    ) -> None:
        """Name the cause of connection resets, with evidence, confidence and remedy."""
        tz = timezone_option(tz_name)
        start = instant_option(since, tz, "--since")
        end = instant_option(until, tz, "--until")
        if port is not None and not 0 < port < 65536:
            fail(f"--port {port} is not a TCP port")
        try:
            report = diagnose(
                path, Query(port, client), tz if tz_name else None, start, end, rules_dir, sample
            )
        except CatalogError as exc:
            fail("cause catalog is invalid:\n" + str(exc))
        except SourceError as exc:
            fail(str(exc))
        out = sys.stdout
        if fmt is ReportFormat.json:
            write_report_json(report, out)
        elif fmt is ReportFormat.ndjson:
            write_report_ndjson(report, out)
        elif fmt is ReportFormat.markdown:
            out.write(render_markdown(report))
        else:
            console = text_console()
            print_report(report, console, tz)
            used = [s for s in report.sources if s.used]
            console.print(line((
                f"sources used: {len(used)} of {len(report.sources)}: "
                + ", ".join(f"{short_path(s.path)} ({s.kind})" for s in used), "dim")))
        for s in report.sources:
            if not s.used and s.note:
                err_console.print(line((s.path, "yellow"), ": not used: ", s.note))
        if fail_on is not None:
            level = LEVELS[fail_on.value]
            if any(LEVELS[f.confidence] >= level and not f.intentional for f in report.findings):
                raise typer.Exit(1)
