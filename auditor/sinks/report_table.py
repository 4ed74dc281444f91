"""The diagnosis for a terminal (rich): a headline per finding, evidence, remedy, a timeline."""

from __future__ import annotations

from collections import Counter
from datetime import tzinfo

from rich.console import Console
from rich.table import Table

from auditor.correlate.report import Report
from auditor.models import Finding
from auditor.sinks.text import cell, clip, hanging, indented, line, short_path

COLOURS = {"high": "bold red", "medium": "yellow", "low": "cyan"}
BAR = 40
EVIDENCE = 200  # characters of an evidence line shown (cut with an ellipsis)


def _span(f: Finding, tz: tzinfo | None) -> str:
    if f.first_seen is None:
        return ""
    a = f.first_seen.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
    b = f.last_seen.astimezone(tz).strftime("%H:%M:%S") if f.last_seen else ""
    return f"{a} – {b}"


def print_report(report: Report, console: Console, tz: tzinfo | None = None) -> None:
    """The report on ``console``; every value from an input is inert (see sinks.text)."""
    unexplained = sum(u.resets for u in report.unexplained)
    hanging(console, line(
        ("auditor diagnose", "bold"), f" {report.host}: " if report.host else ": ",
        (report.total, "bold"), " resets, ", (f"{report.explained} explained", "green"),
        f" ({report.intentional} intentional), ", (f"{unexplained} unexplained", "magenta"),
    ))
    if not report.findings:
        hanging(console, line(("No cause found with evidence.", "green")))
    for i, f in enumerate(report.findings, 1):
        _finding(i, f, console, tz)
    _timeline(report, console, tz)
    if report.unexplained:
        table = Table(title="unexplained", header_style="bold")
        for col in ("resets", "ports", "upstream", "first seen", "kinds", "example"):
            table.add_column(col, overflow="fold")
        for u in report.unexplained[:20]:
            example = f"{u.evidence[0].source}:{u.evidence[0].line}" if u.evidence else ""
            table.add_row(
                cell(u.resets),
                cell(",".join(map(str, u.ports)) or "-"),
                cell(u.upstream or "-"),
                cell(u.first_seen.astimezone(tz).strftime("%H:%M:%S") if u.first_seen else "-"),
                cell(", ".join(f"{a} {n}" for a, n in sorted(u.actions.items()))),
                cell(short_path(example)),
            )
        console.print(table)
    for n in report.notes:
        hanging(console, line(("note ", "dim"), (n.cause, "dim"), ": ", n.text))


def _finding(i: int, f: Finding, console: Console, tz: tzinfo | None) -> None:
    style = COLOURS.get(f.confidence, "")
    ports = ",".join(map(str, f.ports)) or "-"
    console.print()
    hanging(console, line(
        (f"{i}. {f.cause}", "bold"), (" (intentional)" if f.intentional else "", "dim"),
        " ", (f"{f.confidence} ({f.score:.2f})", style),
    ))
    console.print(indented(line(f.title)))
    console.print(indented(line(
        f"side {f.side}, {f.resets} resets, ports {ports}, {_span(f, tz)}", style="dim")))
    if f.rule:
        console.print(indented(line("rule: ", (f.rule.text, "bold"), f.rule.counted)))
    if f.limit:
        console.print(indented(line(f"limit: {f.limit.brief}")))
    for e in f.evidence[:6]:
        at = f"{e.source}:{e.line}" if e.line else e.source
        console.print(indented(line((short_path(at), "dim"), " ", clip(e.text, EVIDENCE))))
    console.print(indented(line(("remedy: ", "green"), f.remedy)))
    if f.runners_up:
        also = ", ".join(f"{c} {s:.2f}" for c, s in f.runners_up)
        console.print(indented(line((f"also considered: {also}", "dim"))))


def _timeline(report: Report, console: Console, tz: tzinfo | None) -> None:
    if not report.timeline:
        return
    rows = report.timeline[-30:]
    peak = max((sum(c.values()) for _, c in rows), default=1) or 1
    names = sorted({k for _, c in rows for k in c})
    marks = {name: "#*+=o%@&"[i % 8] for i, name in enumerate(names)}
    table = Table(title="resets per minute", header_style="bold", show_edge=False)
    table.add_column("minute")
    table.add_column("resets", justify="right")
    table.add_column(cell(" ".join(f"{m}={n}" for n, m in marks.items())), overflow="fold")
    for minute, counts in rows:
        bar = "".join(
            marks[k] * max(1, round(BAR * n / peak)) for k, n in Counter(counts).items() if n
        )
        table.add_row(
            cell(minute.astimezone(tz).strftime("%Y-%m-%d %H:%M")), cell(sum(counts.values())),
            cell(bar),
        )
    console.print(table)
    if len(report.timeline) > len(rows):
        hidden = len(report.timeline) - len(rows)
        hanging(console, line((f"({hidden} earlier minutes not shown)", "dim")))
