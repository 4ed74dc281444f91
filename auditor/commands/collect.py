"""``auditor collect``: snapshot this host (logs, rules, limits, counters) into one archive."""

from __future__ import annotations

import os
import sys

import typer

from auditor.bundle.collect import MAPPING_SUFFIX, collect, default_output, summary
from auditor.bundle.standins import ObfuscationError
from auditor.bundle.trace import hook as trace_hook
from auditor.commands._common import clean_errors, fail
from auditor.sinks.text import console as text_console
from auditor.sinks.text import hanging, line
from auditor.timeutil import parse_duration

EXAMPLES = """
[bold]Examples[/]

  auditor collect               # ./auditor-HOST-TIME.tar.gz, last 2h, 10 s
  auditor collect -o /tmp/incident.tar.gz --since 6h --sample 30
  auditor collect --trace 10    # + the kernel's own reset reasons, 10 s
  auditor collect --obfuscate -o /tmp/share.tar.gz   # stand-ins for addresses
  auditor collect --standalone > auditor-collect.py  # for hosts without auditor
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
            help="Archive to write (.tar.gz, mode 0600); default ./auditor-HOST-TIME.tar.gz.",
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
        obfuscate: bool = typer.Option(
            False,
            "--obfuscate",
            help="Replace IP addresses and host names by stand-ins, the same everywhere; the "
            f"mapping goes to OUTPUT{MAPPING_SUFFIX} (0600), outside the bundle.",
        ),
        no_redact: bool = typer.Option(
            False,
            "--no-redact",
            help="Keep secrets (authorization headers, passwords in URLs and command lines).",
        ),
        standalone: bool = typer.Option(
            False,
            "--standalone",
            help="Print the collector as one Python file (standard library only, Python 3.9+) "
            "to run on hosts where auditor is not installed, and exit.",
        ),
    ) -> None:
        """Snapshot this host into one archive, read-only, for diagnose elsewhere.

        Log windows, firewall rules, sysctls, counters before and after a sample,
        listeners, process limits, nginx -T and host facts, with a manifest of what was
        collected, what could not be (and why) and what was redacted. The archive is
        private (0600); an interrupted collect leaves nothing behind."""
        if standalone:
            from auditor.bundle.standalone import build

            sys.stdout.write(build())
            return
        try:
            window = parse_duration(since)
        except ValueError:
            fail(f"--since: cannot read {since!r} (use e.g. 30m, 2h, 1d)")
        if sample < 0 or sample > 3600:
            fail("--sample: give seconds between 0 and 3600")
        if trace < 0 or trace > 3600:
            fail("--trace: give seconds between 0 and 3600")
        output = output or default_output(obfuscate)
        parent = os.path.dirname(os.path.abspath(output))
        if not os.path.isdir(parent):
            fail(f"{output}: directory {parent} does not exist")
        console = text_console(stderr=True)
        if trace:
            console.print(f"recording the kernel's reset reasons for {trace:g} s ...")
        elif sample:
            console.print(f"sampling counters for {sample:g} s ...")
        try:
            hook = trace_hook(trace) if trace > 0 else None
            manifest = collect(output, window, sample, not no_redact, obfuscate, window=hook)
        except ObfuscationError as exc:
            fail(str(exc))
        for text in summary(manifest, output):
            hanging(console, line(text))
