"""``auditor parse``: print the events that logs yield, and what could not be understood."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from auditor.commands._common import (
    clean_errors,
    err_console,
    fail,
    instant_option,
    timezone_option,
)
from auditor.models import Event
from auditor.parsers import registry
from auditor.parsers.base import ParseContext
from auditor.pipeline.logs import FileNotes, Window, events_of_paths
from auditor.sinks.events import write_json, write_ndjson, write_table
from auditor.sinks.text import cell, clip, hanging, indented, line
from auditor.sinks.text import console as text_console
from auditor.sources.files import walk
from auditor.sources.scan import ScanStats

PROGRESS_MIN_BYTES = 64 << 20


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    ndjson = "ndjson"


EXAMPLES = """
[bold]Examples[/]

  auditor parse /var/log/kern.log
  auditor parse /var/log/nginx/ --format ndjson > events.ndjson
  auditor parse access.log.2.gz --type nginx-access \\
      --nginx-config /etc/nginx/nginx.conf
  auditor parse access.log --log-format main
  docker logs web 2>&1 > web.log && auditor parse web.log
  auditor parse syslog --since 2026-11-24T09:00 --until 2026-11-24T10:00 \\
      --timezone Europe/Berlin
  journalctl -k -o json > k.json && auditor parse k.json

[bold]Exit status[/]

  0  the events were printed
  1  --strict: a line was not understood, or a file is of no kind auditor
     knows (or there was no file at all)
  2  bad option or unreadable input
"""


def summary_doc(
    stats: list[ScanStats], notes: dict[str, FileNotes] | None = None
) -> dict[str, Any]:
    notes = notes or {}
    return {
        "files": [
            {
                "path": s.path,
                "parser": s.parser,
                "lines": s.lines,
                "bytes": s.bytes,
                "candidates": s.candidates,
                "events": s.events,
                "not_understood": s.not_understood,
                "routed": notes.get(s.path, FileNotes()).routes,
                "notes": notes.get(s.path, FileNotes()).notes,
                "issues": [
                    {"line": i.location.line, "reason": i.reason, "text": i.text}
                    for i in s.issues[:20]
                ],
            }
            for s in stats
        ],
        "lines": sum(s.lines for s in stats),
        "events": sum(s.events for s in stats),
        "not_understood": sum(s.not_understood for s in stats),
    }


def print_summary(
    stats: list[ScanStats], console: Console, notes: dict[str, FileNotes] | None = None
) -> None:
    notes = notes or {}
    table = Table(title="summary", header_style="bold")
    table.add_column("file", overflow="fold", ratio=1)
    table.add_column("parser", overflow="fold")
    table.add_column("routed to", overflow="fold")
    for col in ("lines", "events", "not understood"):
        table.add_column(col, justify="right")
    for s in stats:
        routes = notes.get(s.path, FileNotes()).routes
        routed = ", ".join(f"{kind} {n}" for kind, n in routes.items())
        table.add_row(cell(s.path), cell(s.parser), cell(routed), cell(s.lines), cell(s.events),
                      cell(s.not_understood))
    console.print(table)
    for s in stats:
        for note in notes.get(s.path, FileNotes()).notes:
            hanging(console, line((f"{s.path}: ", "dim"), (note, "dim")))
        for issue in s.issues[:5]:
            hanging(console, line((issue.location, "yellow"), f" {issue.reason}:"))
            console.print(indented(line((repr(clip(issue.text, 100)), "dim"))))
        if s.not_understood > 5:
            hanging(console, line((f"{s.path}: {s.not_understood - 5} more lines not understood",
                                "dim")))


def register(app: typer.Typer) -> None:
    kinds = ["auto", *registry()]

    @app.command("parse", epilog=EXAMPLES)
    @clean_errors
    def parse_cmd(
        paths: list[str] = typer.Argument(
            ..., help="Log files or directories (.gz/.bz2/.xz read too)."
        ),
        type_: str = typer.Option(
            "auto", "--type", "-t", help=f"Log kind: {', '.join(kinds)}.", show_default=True
        ),
        fmt: OutputFormat = typer.Option(
            OutputFormat.table, "--format", "-f", help="Output format."
        ),
        since: str | None = typer.Option(
            None, help="Only events at or after (ISO time or '2h' ago)."
        ),
        until: str | None = typer.Option(None, help="Only events before (ISO time or '2h' ago)."),
        tz_name: str | None = typer.Option(
            None, "--timezone", help="Zone of stamps that carry none (default: the host's)."
        ),
        boot_time: str | None = typer.Option(
            None, "--boot-time", help="Boot time, to place dmesg's seconds-since-boot (ISO time)."
        ),
        log_format: str | None = typer.Option(
            None,
            help="The access log's format: a log_format string, 'combined', 'main', or a "
            "format name declared in the nginx configuration.",
        ),
        nginx_config: str | None = typer.Option(
            None,
            help="nginx.conf or 'nginx -T' output to take log_format from (default: one "
            "found beside the log: nginx-T.txt, nginx.conf).",
        ),
        every_line: bool = typer.Option(
            False,
            "--every-line",
            help="Offer every line to the parser (slower; validates all lines).",
        ),
        limit: int = typer.Option(1000, help="Rows shown in table format."),
        strict: bool = typer.Option(
            False, "--strict",
            help="Exit 1 when a line was not understood or a file is of no known kind.",
        ),
    ) -> None:
        """Print the events that logs yield, and count what could not be understood."""
        if type_ not in kinds:
            fail(f"unknown --type {type_!r}; choose one of: {', '.join(kinds)}")
        tz = timezone_option(tz_name)
        start = instant_option(since, tz, "--since")
        end = instant_option(until, tz, "--until")
        options: dict[str, Any] = {}
        if log_format:
            options["log_format"] = log_format
        notes: dict[str, FileNotes] = {}
        ctx = ParseContext(
            timezone=tz, boot_time=instant_option(boot_time, tz, "--boot-time"), options=options
        )
        stats: list[ScanStats] = []
        total = sum(p.stat().st_size for p in walk(paths) if p.is_file())
        show_progress = total >= PROGRESS_MIN_BYTES and sys.stderr.isatty()
        progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=err_console,
            transient=True,
            disable=not show_progress,
        )
        task = progress.add_task("parsing", total=total)

        def advance(n: int) -> None:
            progress.advance(task, n)

        def selected() -> Iterator[Event]:
            return events_of_paths(paths, type_, ctx, stats, Window(start, end), advance,
                                   every_line, nginx_config, notes)

        out = sys.stdout
        with progress:
            if fmt is OutputFormat.ndjson:
                write_ndjson(selected(), out)
            elif fmt is OutputFormat.json:
                write_json(selected(), out, lambda: summary_doc(stats, notes))
            else:
                write_table(selected(), text_console(), limit)
        if fmt is OutputFormat.table:
            print_summary(stats, text_console(), notes)
        elif fmt is OutputFormat.ndjson:
            print_summary(stats, err_console, notes)
        unknown = any(n.startswith("kind not recognised")
                      for info in notes.values() for n in info.notes)
        if strict and (not stats or unknown or any(s.not_understood for s in stats)):
            raise typer.Exit(1)
