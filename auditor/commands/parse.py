"""``auditor parse``: print the events that logs yield, and what could not be understood."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
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
from auditor.models import Event, Location, ParseIssue
from auditor.parsers import detect, registry
from auditor.parsers.base import LineParser, ParseContext
from auditor.sinks.events import write_json, write_ndjson, write_table
from auditor.sources.files import SourceError, read_head, walk
from auditor.sources.scan import ScanStats, scan

PROGRESS_MIN_BYTES = 64 << 20


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    ndjson = "ndjson"


EXAMPLES = """
[bold]Examples[/]

  auditor parse /var/log/kern.log
  auditor parse /var/log/nginx/ --format ndjson > events.ndjson
  auditor parse access.log.2.gz --type nginx-access --nginx-config /etc/nginx/nginx.conf
  auditor parse syslog --since 2026-11-24T09:00 --until 2026-11-24T10:00 --timezone Europe/Berlin
  journalctl -k -o json > k.json && auditor parse k.json
"""


def parser_for(path: Path, type_name: str) -> type[LineParser] | None:
    parsers = registry()
    if type_name != "auto":
        return parsers[type_name]
    return detect(read_head(path))


def file_context(path: Path, base: ParseContext) -> ParseContext:
    try:
        mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError:
        mtime = base.reference_time
    return ParseContext(
        timezone=base.timezone,
        reference_time=mtime,
        boot_time=base.boot_time,
        host_name=base.host_name,
        options=base.options,
    )


def iter_events(
    paths: list[str],
    type_name: str,
    base: ParseContext,
    stats_out: list[ScanStats],
    progress: Callable[[int], None] | None = None,
    every_line: bool = False,
) -> Iterator[Event]:
    """Events of every file under ``paths``; one ScanStats per file is appended to stats_out.

    Files of a folder that are not read (links out of it, loops, FIFOs...) get a
    ScanStats of parser "(skipped)" with the reason as its issue."""
    skipped: list[tuple[str, str]] = []
    for path in walk(paths, skipped):
        while skipped:
            stats_out.append(skipped_stats(*skipped.pop(0)))
        if not path.exists():
            raise SourceError(f"{path}: no such file or directory")
        cls = parser_for(path, type_name)
        if cls is None:
            stats_out.append(ScanStats(str(path), "(none)"))
            continue
        stats = ScanStats(str(path), cls.name)
        stats_out.append(stats)
        parser = cls(file_context(path, base), str(path))
        yield from scan(str(path), parser, stats, progress, every_line)
    stats_out.extend(skipped_stats(p, why) for p, why in skipped)


def skipped_stats(path: str, reason: str) -> ScanStats:
    """The summary entry of a file that was not read, and why."""
    stats = ScanStats(path, "(skipped)")
    stats.add_issue(ParseIssue(Location(path), "input", reason))
    return stats


def summary_doc(stats: list[ScanStats]) -> dict[str, Any]:
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


def print_summary(stats: list[ScanStats], console: Console) -> None:
    table = Table(title="summary", header_style="bold")
    for col in ("file", "parser", "lines", "events", "not understood"):
        table.add_column(
            col, justify="right" if col in ("lines", "events", "not understood") else "left"
        )
    for s in stats:
        note = "" if s.parser != "(none)" else " (kind not recognised: use --type)"
        table.add_row(s.path + note, s.parser, str(s.lines), str(s.events), str(s.not_understood))
    console.print(table)
    for s in stats:
        for issue in s.issues[:5]:
            console.print(
                f"[yellow]{issue.location}[/] {issue.reason}: [dim]{issue.text[:100]!r}[/]"
            )
        if s.not_understood > 5:
            console.print(f"[dim]{s.path}: {s.not_understood - 5} more lines not understood[/]")


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
            None, help="nginx log_format string of the access log."
        ),
        nginx_config: str | None = typer.Option(
            None, help="nginx.conf or 'nginx -T' output to take log_format from."
        ),
        every_line: bool = typer.Option(
            False,
            "--every-line",
            help="Offer every line to the parser (slower; validates all lines).",
        ),
        limit: int = typer.Option(1000, help="Rows shown in table format."),
        strict: bool = typer.Option(False, help="Exit 1 when any line was not understood."),
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
        if nginx_config:
            options["nginx_config"] = nginx_config
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
            for event in iter_events(paths, type_, ctx, stats, advance, every_line):
                if start is not None and event.timestamp < start:
                    continue
                if end is not None and event.timestamp >= end:
                    continue
                yield event

        out = sys.stdout
        with progress:
            if fmt is OutputFormat.ndjson:
                write_ndjson(selected(), out)
            elif fmt is OutputFormat.json:
                write_json(selected(), out, lambda: summary_doc(stats))
            else:
                write_table(selected(), Console(), limit)
        if fmt is OutputFormat.table:
            print_summary(stats, Console())
        elif fmt is OutputFormat.ndjson:
            print_summary(stats, err_console)
        if strict and any(s.not_understood for s in stats):
            raise typer.Exit(1)
