"""``auditor diagnose``: name the cause of connection resets, with evidence and remedy."""

from __future__ import annotations

import sys
from enum import StrEnum

import typer

from auditor.commands._common import (
    clean_errors,
    err_console,
    fail,
    instant_option,
    timezone_option,
)
from auditor.correlate.catalog import CatalogError, load_catalog, load_default
from auditor.correlate.scoring import Query
from auditor.pipeline.diagnosis import diagnose
from auditor.sinks.report_json import write_report_json
from auditor.sinks.report_markdown import render_markdown
from auditor.sinks.report_ndjson import write_report_ndjson
from auditor.sinks.report_table import print_report
from auditor.sinks.text import console as text_console
from auditor.sinks.text import hanging, line, short_path
from auditor.sources.files import SourceError

LEVELS = {"high": 3, "medium": 2, "low": 1}
EXIT_GAPS = 3  # with --fail-on: evidence could not be read, so "no cause" proves nothing


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
  auditor diagnose --trace 10 -f json       # + the kernel's reasons, 10 s

[bold]Exit status[/]

  0  the diagnosis was printed (and --fail-on did not match)
  1  --fail-on: a non-intentional finding of that confidence or higher
  2  bad option, unreadable input, nothing readable, or invalid cause catalog
  3  --fail-on: no such finding, but some evidence could not be read
"""


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
            help="Exit 1 when a (non-intentional) finding has this confidence or higher, "
            "3 when no such finding but some evidence could not be read (no privileges...).",
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
        trace: float = typer.Option(
            0.0,
            help="Live host: record the kernel's reset/drop reasons for this many seconds "
            "(root) and use them as evidence.",
        ),
    ) -> None:
        """Name the cause of connection resets, with evidence, confidence and remedy."""
        tz = timezone_option(tz_name)
        start = instant_option(since, tz, "--since")
        end = instant_option(until, tz, "--until")
        if port is not None and not 0 < port < 65536:
            fail(f"--port {port} is not a TCP port")
        if trace and path is not None:
            fail("--trace records this host; record a bundle with `auditor collect --trace`")
        if not 0 <= trace <= 3600:
            fail("--trace: give seconds between 0 and 3600")
        try:
            catalog = load_catalog(rules_dir) if rules_dir else load_default()
            report = diagnose(
                path,
                Query(port, client),
                tz if tz_name else None,
                start,
                end,
                catalog,
                sample,
                trace,
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
            hanging(console, line((
                f"sources used: {len(used)} of {len(report.sources)}: "
                + ", ".join(f"{short_path(s.path)} ({s.kind})" for s in used), "dim")))
        for s in report.sources:
            if not s.used and s.note:
                hanging(err_console, line((s.path, "yellow"), ": not used: ", s.note))
            elif s.kind == "trace-header" and "not recorded" in s.note:
                hanging(err_console, line((s.path, "yellow"), ": ", s.note))
        for gap in report.gaps:
            hanging(err_console, line(("could not read: ", "yellow"), gap.splitlines()[0]))
        if fail_on is not None:
            level = LEVELS[fail_on.value]
            if any(LEVELS[f.confidence] >= level and not f.intentional for f in report.findings):
                raise typer.Exit(1)
            if report.gaps:
                raise typer.Exit(EXIT_GAPS)
