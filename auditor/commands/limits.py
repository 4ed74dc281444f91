"""``auditor limits``: every limit next to its use, the counters that moved, full listeners,
the facts the host shows, and the risks that hold without any log (the catalog's causes
scored on the host's facts alone); live or from a bundle, directory or sosreport."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from auditor.bundle.inputs import open_input
from auditor.commands._common import clean_errors, fail
from auditor.correlate.catalog import load_default
from auditor.correlate.risks import host_risks
from auditor.limits.snapshot import KEY_COUNTERS, HostState, live_state, load_state
from auditor.models import Finding, plain

EXAMPLES = """
[bold]Examples[/]

  auditor limits                          # this host, one snapshot (counters since boot)
  auditor limits --sample 10              # counters over 10 seconds
  auditor limits --from incident.tar.gz   # a bundle from 'auditor collect'
  auditor limits --from sosreport-web1/ --format json
"""


class Format(StrEnum):
    table = "table"
    json = "json"


def _rel(state: HostState, loc: Any) -> str:
    """A location shown relative to the input's root (a bundle path such as sysctl/...:12)."""
    if loc is None:
        return ""
    text = str(loc)
    root = state.root.rstrip("/") + "/"
    return text[len(root) :] if state.root and text.startswith(root) else text


def state_doc(state: HostState, findings: list[Finding]) -> dict[str, Any]:
    return {
        "host": state.host,
        "kernel": state.kernel,
        "root": state.root,
        "window_seconds": state.window_seconds,
        "since_boot": state.since_boot,
        "limits": [
            {**plain(x), "usage": round(x.usage, 4) if x.usage is not None else None}
            for x in state.limits
        ],
        "counters_moved": state.moved(),
        "counters": {k: state.after[k] for k in KEY_COUNTERS if k in state.after},
        "listeners": [
            {**plain(x), "endpoint": x.endpoint, "full": x.full} for x in state.listeners
        ],
        "full_listeners": [x.endpoint for x in state.listeners if x.full],
        "processes": [plain(p) for p in state.processes],
        "facts": [
            {"name": f.name, "params": dict(f.params), "text": f.text,
             "location": str(f.location) if f.location else None}
            for f in state.facts
        ],
        "findings": [plain(f) for f in findings],
        "sources": [plain(a) for a in state.sources],
        "problems": [plain(p) for p in state.problems],
    }


def print_state(state: HostState, findings: list[Finding], console: Console) -> None:
    head = f"host {state.host or '?'}  kernel {state.kernel or '?'}  "
    head += (
        "counters: totals since boot (one snapshot; weaker evidence)"
        if state.since_boot
        else f"counters over {state.window_seconds:g} s"
    )
    console.print(head)
    table = Table(title="limits", header_style="bold")
    for col in ("limit", "value", "in use", "use %", "scope", "from"):
        table.add_column(col, justify="right" if col in ("value", "in use", "use %") else "left")
    for x in state.limits:
        usage = f"{x.usage:.0%}" if x.usage is not None else ""
        style = "bold red" if x.usage is not None and x.usage >= 0.8 else None
        table.add_row(
            x.name,
            str(x.value),
            "" if x.observed is None else str(x.observed),
            usage,
            x.scope,
            _rel(state, x.location),
            style=style,
        )
    console.print(table)
    moved = state.moved()
    if state.since_boot:
        shown = {k: state.after[k] for k in KEY_COUNTERS if state.after.get(k)}
        title = "reset-related counters (totals since boot)"
    else:
        shown, title = moved, f"counters that moved in {state.window_seconds:g} s"
    ctable = Table(title=title, header_style="bold")
    ctable.add_column("counter")
    ctable.add_column("value", justify="right")
    for name, value in list(shown.items())[:60]:
        ctable.add_row(name, f"{value:+d}" if not state.since_boot else str(value))
    console.print(ctable if shown else f"[dim]{title}: none[/]")
    for li in state.listeners:
        if li.full:
            who = f" {li.processes[0][0]} pid {li.processes[0][1]}" if li.processes else ""
            console.print(
                f"[bold red]full accept queue[/] {li.endpoint}{who}: "
                f"{li.recv_q} waiting, backlog {li.send_q} ({_rel(state, li.location)})"
            )
    if not findings:
        console.print("[green]no limit findings[/]")
    for f in findings:
        console.print(f"[bold]{f.cause}[/] ({f.confidence}, {f.score}) {f.title}")
        console.print(f"  {f.summary}", soft_wrap=True)
        for ev in f.evidence:
            src = _rel(state, ev.source) + (f":{ev.line}" if ev.line else "")
            console.print(f"  [dim]{src}[/] {ev.text}")
        console.print(f"  [green]remedy:[/] {f.remedy}", soft_wrap=True)
    if state.sources:
        console.print(
            f"[dim]read {len(state.sources)} artifacts: "
            + ", ".join(sorted({a.kind for a in state.sources}))
            + "[/]"
        )
    for p in state.problems[:20]:
        console.print(f"[yellow]not understood:[/] {_rel(state, p.location)} {p.reason}")
    if len(state.problems) > 20:
        console.print(f"[yellow]{len(state.problems) - 20} more problems[/]")


def register(app: typer.Typer) -> None:
    @app.command("limits", epilog=EXAMPLES)
    @clean_errors
    def limits_cmd(
        source: str | None = typer.Option(
            None,
            "--from",
            help="Bundle (.tar.gz or directory), directory of artifacts, or sosreport.",
        ),
        sample: float = typer.Option(
            0.0, help="Live: seconds between two counter snapshots (0: totals since boot)."
        ),
        fmt: Format = typer.Option(Format.table, "--format", "-f", help="Output format."),
    ) -> None:
        """Every limit next to its use, the counters that moved, and risks without any log.

        Full listen queues are named, and the causes of the catalog that the host's facts
        alone show (worker_connections above the open-file limit, a backlog capped by
        somaxconn, ...) are listed with their remedies."""
        if sample < 0 or sample > 3600:
            fail("--sample: give seconds between 0 and 3600")
        if source is not None:
            if sample:
                fail("--sample applies to the live host, not to --from")
            state = load_state(open_input(source))
        else:
            state = live_state(sample)
        findings = host_risks(load_default(), state)
        if fmt is Format.json:
            json.dump(state_doc(state, findings), sys.stdout, indent=1, default=str)
            sys.stdout.write("\n")
        else:
            print_state(state, findings, Console())
