"""``auditor limits``: every limit next to its use, the counters that moved, full listeners,
the facts the host shows, and the risks that hold without any log (the catalog's causes
scored on the host's facts alone); live or from a bundle, directory or sosreport."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from auditor.bundle.inputs import open_input
from auditor.commands._common import clean_errors, fail
from auditor.correlate.catalog import load_default
from auditor.correlate.risks import host_risks
from auditor.limits.snapshot import KEY_COUNTERS, HostState, live_state, load_state
from auditor.models import Finding, plain
from auditor.sinks.text import (
    cell,
    clip,
    dumps,
    hanging,
    indented,
    line,
    short_path,
    stacked,
)
from auditor.sinks.text import console as text_console

EXAMPLES = """
[bold]Examples[/]

  auditor limits                         # this host, counters since boot
  auditor limits --sample 10             # counters over 10 seconds
  auditor limits --from incident.tar.gz  # a bundle from 'auditor collect'
  auditor limits --from sosreport-web1/ --format json

[bold]Exit status[/]

  0  the limits were printed
  2  bad option or unreadable input
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
    """The state as tables; every value read from the host or the input is inert."""
    head = f"host {state.host or '?'}  kernel {state.kernel or '?'}  "
    head += (
        "counters: totals since boot (one snapshot; weaker evidence)"
        if state.since_boot
        else f"counters over {state.window_seconds:g} s"
    )
    hanging(console, line(head))
    table = Table(title="limits (and where each was read)", header_style="bold",
                  box=box.SIMPLE)
    longest = max((len(x.name) for x in state.limits), default=20)
    table.add_column("limit / from", overflow="fold",
                     min_width=min(longest, max(20, console.width - 46)))
    table.add_column("value", justify="right", overflow="fold", max_width=10)
    table.add_column("in use", justify="right", overflow="fold", max_width=12)
    table.add_column("scope", overflow="fold", max_width=14)
    for x in state.limits:
        used = "" if x.observed is None else str(x.observed)
        if x.usage is not None:
            used += f" ({x.usage:.0%})"
        style = "bold red" if x.usage is not None and x.usage >= 0.8 else ""
        name = stacked(cell(x.name), cell(short_path(_rel(state, x.location), 40), "dim"))
        table.add_row(name, cell(x.value), cell(used), cell(x.scope), style=style or None)
    console.print(table)
    moved = state.moved()
    if state.since_boot:
        shown = {k: state.after[k] for k in KEY_COUNTERS if state.after.get(k)}
        title = "reset-related counters (totals since boot)"
    else:
        shown, title = moved, f"counters that moved in {state.window_seconds:g} s"
    ctable = Table(title=title, header_style="bold")
    ctable.add_column("counter", overflow="fold")
    ctable.add_column("value", justify="right")
    for counter, value in list(shown.items())[:60]:
        ctable.add_row(cell(counter), cell(f"{value:+d}" if not state.since_boot else value))
    console.print(ctable if shown else line((f"{title}: none", "dim")))
    for li in state.listeners:
        if li.full:
            who = f" {li.processes[0][0]} pid {li.processes[0][1]}" if li.processes else ""
            console.print(indented(line(
                ("full accept queue", "bold red"), f" {li.endpoint}{who}: ",
                f"{li.recv_q} waiting, backlog {li.send_q} ({_rel(state, li.location)})",
            ), 0))
    if not findings:
        hanging(console, line(("no limit findings", "green")))
    for f in findings:
        hanging(console, line((f.cause, "bold"), f" ({f.confidence}, {f.score}) ", f.title))
        console.print(indented(line(f.summary), 2))
        for ev in f.evidence:
            src = _rel(state, ev.source) + (f":{ev.line}" if ev.line else "")
            console.print(indented(line((short_path(src), "dim"), " ", clip(ev.text, 200)), 2))
        console.print(indented(line(("remedy: ", "green"), f.remedy), 2))
    if state.sources:
        kinds = ", ".join(sorted({a.kind for a in state.sources}))
        hanging(console, line((f"read {len(state.sources)} artifacts: {kinds}", "dim")))
    for p in state.problems[:20]:
        where = _rel(state, p.location)
        hanging(console, line(("not understood: ", "yellow"), where, " ", p.reason))
    if len(state.problems) > 20:
        hanging(console, line((f"{len(state.problems) - 20} more problems", "yellow")))


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
            sys.stdout.write(dumps(state_doc(state, findings), indent=1) + "\n")
        else:
            print_state(state, findings, text_console())
