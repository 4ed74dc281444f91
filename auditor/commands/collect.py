"""``auditor collect``: snapshot this host (logs, rules, limits, counters) into one archive."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime

import typer
from rich.console import Console

from auditor.bundle.collect import collect
from auditor.commands._common import clean_errors, fail
from auditor.timeutil import parse_duration

EXAMPLES = """
[bold]Examples[/]

  auditor collect                              # ./auditor-HOST-TIME.tar.gz, last 2h, 10 s sample
  auditor collect -o /tmp/incident.tar.gz --since 6h --sample 30
  auditor collect --trace 10                   # + the kernel's own reset reasons, 10 s
  auditor limits --from /tmp/incident.tar.gz   # analyse it here or on another machine
"""


def register(app: typer.Typer) -> None:
    @app.command("collect", epilog=EXAMPLES)
    @clean_errors
    def collect_cmd(
        output: str | None = typer.Option(
            None,
            "--output",
            "-o",
            help="Archive to write (.tar.gz); default ./auditor-HOST-TIME.tar.gz.",
        ),
        since: str = typer.Option("2h", help="Log window: how far back (e.g. 30m, 2h, 1d)."),
        sample: float = typer.Option(
            10.0,
            help="Seconds between the two counter snapshots (0: one snapshot, totals since boot).",
        ),
        trace: float = typer.Option(
            0.0,
            help="Record the kernel's reset/drop reasons for this many seconds (root; "
            "replaces --sample as the counter window).",
        ),
    ) -> None:
        """Snapshot this host into one archive, read-only, for diagnose elsewhere.

        Log windows, firewall rules, sysctls, counters before and after a sample, listeners,
        process limits, nginx -T and host facts, with a manifest of what was collected and
        what could not be (and why)."""
        try:
            window = parse_duration(since)
        except ValueError:
            fail(f"--since: cannot read {since!r} (use e.g. 30m, 2h, 1d)")
        if sample < 0 or sample > 3600:
            fail("--sample: give seconds between 0 and 3600")
        if trace < 0 or trace > 3600:
            fail("--trace: give seconds between 0 and 3600")
        if output is None:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            output = f"auditor-{socket.gethostname()}-{stamp}.tar.gz"
        parent = os.path.dirname(os.path.abspath(output))
        if not os.path.isdir(parent):
            fail(f"{output}: directory {parent} does not exist")
        console = Console(stderr=True, highlight=False)
        if trace:
            console.print(f"recording the kernel's reset reasons for {trace:g} s ...")
        elif sample:
            console.print(f"sampling counters for {sample:g} s ...")
        manifest = collect(output, window, sample, trace)
        console.print(
            f"[bold]{output}[/]: {len(manifest['artifacts'])} artifacts, "
            f"{len(manifest['missing'])} not collected"
        )
        for miss in manifest["missing"]:
            console.print(f"  [dim]not collected:[/] {miss['what']}: {miss['why']}")
