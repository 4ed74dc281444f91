"""``auditor collect``: snapshot this host (logs, rules, limits, counters) into one archive."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime

import typer

from auditor.bundle.collect import collect
from auditor.commands._common import clean_errors, fail
from auditor.sinks.text import console as text_console
from auditor.sinks.text import line
from auditor.timeutil import parse_duration

EXAMPLES = """
[bold]Examples[/]

  auditor collect               # ./auditor-HOST-TIME.tar.gz, last 2h, 10 s
  auditor collect -o /tmp/incident.tar.gz --since 6h --sample 30
  auditor limits --from /tmp/incident.tar.gz   # here or on another machine

[bold]Exit status[/]

  0  the archive was written (what could not be collected is listed)
  2  bad option, or the archive could not be written
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
        if output is None:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            output = f"auditor-{socket.gethostname()}-{stamp}.tar.gz"
        parent = os.path.dirname(os.path.abspath(output))
        if not os.path.isdir(parent):
            fail(f"{output}: directory {parent} does not exist")
        console = text_console(stderr=True)
        if sample:
            console.print(f"sampling counters for {sample:g} s ...")
        manifest = collect(output, window, sample)
        console.print(line(
            (output, "bold"), f": {len(manifest['artifacts'])} artifacts, "
            f"{len(manifest['missing'])} not collected"
        ))
        for miss in manifest["missing"]:
            console.print(line("  ", ("not collected: ", "dim"), miss["what"], ": ", miss["why"]))
