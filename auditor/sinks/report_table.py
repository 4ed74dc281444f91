"""The diagnosis for a terminal (rich): a headline per finding, evidence, remedy, a timeline."""

from __future__ import annotations

from collections import Counter
from datetime import tzinfo

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from auditor.correlate.report import Report
from auditor.models import Finding

COLOURS = {"high": "bold red", "medium": "yellow", "low": "cyan"}
BAR = 40


def _span(f: Finding, tz: tzinfo | None) -> str:
    if f.first_seen is None:
        return ""
    a = f.first_seen.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
    b = f.last_seen.astimezone(tz).strftime("%H:%M:%S") if f.last_seen else ""
    return f"{a} – {b}"


def print_report(report: Report, console: Console, tz: tzinfo | None = None) -> None:
    head = (
        f"[bold]{report.total}[/] resets, [green]{report.explained} explained[/]"
        f" ({report.intentional} intentional), "
        f"[magenta]{sum(u.resets for u in report.unexplained)} unexplained[/]"
    )
    console.print(f"[bold]auditor diagnose[/] {report.host or ''}: {head}")
    if not report.findings:
        console.print("[green]No cause found with evidence.[/]")
    for i, f in enumerate(report.findings, 1):
        style = COLOURS.get(f.confidence, "")
        intent = " [dim](intentional)[/]" if f.intentional else ""
        ports = ",".join(map(str, f.ports)) or "-"
        console.print()
        console.print(
            f"[bold]{i}. {f.cause}[/]{intent} [{style}]{f.confidence} ({f.score:.2f})[/] "
            f"side {f.side}, {f.resets} resets, ports {ports}, {_span(f, tz)}"
        )
        console.print(f"   {escape(f.title)}", highlight=False)
        if f.rule:
            console.print(
                f"   rule: [bold]{escape(f.rule.text)}[/]{f.rule.counted}",
                highlight=False,
            )
        if f.limit:
            console.print(
                f"   limit: {escape(f.limit.brief)}",
                highlight=False,
            )
        for e in f.evidence[:6]:
            at = f"{e.source}:{e.line}" if e.line else e.source
            console.print(
                f"   [dim]{escape(at)}[/] {escape(e.text[:160])}",
                highlight=False,
                soft_wrap=True,
                emoji=False,
            )
        console.print(f"   [green]remedy:[/] {escape(f.remedy)}", highlight=False, emoji=False)
        if f.runners_up:
            console.print(
                "   [dim]also considered: "
                + ", ".join(f"{c} {s:.2f}" for c, s in f.runners_up)
                + "[/]"
            )
    _timeline(report, console, tz)
    if report.unexplained:
        table = Table(title="unexplained", header_style="bold")
        for col in ("resets", "ports", "upstream", "first seen", "kinds", "example"):
            table.add_column(col, overflow="fold")
        for u in report.unexplained[:20]:
            example = f"{u.evidence[0].source}:{u.evidence[0].line}" if u.evidence else ""
            table.add_row(
                str(u.resets),
                ",".join(map(str, u.ports)) or "-",
                u.upstream or "-",
                u.first_seen.astimezone(tz).strftime("%H:%M:%S") if u.first_seen else "-",
                ", ".join(f"{a} {n}" for a, n in sorted(u.actions.items())),
                example,
            )
        console.print(table)
    for n in report.notes:
        console.print(f"[dim]note {n.cause}: {escape(n.text)}[/]", highlight=False, emoji=False)


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
    table.add_column(" ".join(f"{m}={n}" for n, m in marks.items()))
    for minute, counts in rows:
        bar = "".join(
            marks[k] * max(1, round(BAR * n / peak)) for k, n in Counter(counts).items() if n
        )
        table.add_row(
            minute.astimezone(tz).strftime("%Y-%m-%d %H:%M"), str(sum(counts.values())), bar
        )
    console.print(table)
    if len(report.timeline) > len(rows):
        console.print(f"[dim]({len(report.timeline) - len(rows)} earlier minutes not shown)[/]")
