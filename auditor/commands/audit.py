"""``auditor audit``: the scheduled job that feeds Elasticsearch, exactly once.

Reads what is new since the last run (resuming each log at its saved offset,
following rotation), correlates, and ships reset events, findings and a snapshot
of the host's limits, counters and ruleset. Configuration: /etc/auditor/auditor.toml,
then AUDITOR_* variables, then these flags. Secrets only from the file or the
environment (never flags, which ``ps`` shows).
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from auditor.commands._common import clean_errors, err_console, fail
from auditor.config import ConfigError, load_config
from auditor.sources.checkpoint import StateError

if TYPE_CHECKING:  # the Elasticsearch client loads only when an audit runs
    from auditor.commands._audit_job import AuditReport

EXAMPLES = """
[bold]Examples[/]

  auditor audit                                  # /etc/auditor/auditor.toml
  auditor audit --config ./auditor.toml --dry-run
  AUDITOR_ES_API_KEY_FILE=/etc/auditor/es.key auditor audit --es https://es1:9200
  auditor audit --since 2h --state /var/lib/auditor/state.json
  auditor audit --from incident-bundle.tar.gz --es https://es1:9200   # a collected bundle
"""


def _print(report: AuditReport, console: Console) -> None:
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(report.by_kind.items())) or "nothing"
    verb = "would ship" if report.dry_run else "shipped"
    console.print(
        f"auditor audit: {len(report.files)} files, {report.events} events, "
        f"{report.findings} findings; {verb} {kinds}"
        + ("" if report.dry_run else
           f" (created {report.sent.created}, already there {report.sent.duplicates}, "
           f"dead-letter {report.sent.dead}, spooled {report.spooled}, "
           f"from spool {report.spool_sent}, dropped {report.dropped})"),
        soft_wrap=True, highlight=False,
    )
    for note in report.notes[:20]:
        console.print(f"[dim]note: {note}[/]", soft_wrap=True, highlight=False)
    for problem in report.problems:
        console.print(f"[yellow]warning:[/] {problem}", soft_wrap=True, highlight=False)


def register(app: typer.Typer) -> None:
    @app.command("audit", epilog=EXAMPLES)
    @clean_errors
    def audit_cmd(
        config: str | None = typer.Option(
            None, "--config", "-c", help="TOML configuration (default /etc/auditor/auditor.toml)."
        ),
        es: list[str] = typer.Option(
            [], "--es", help="Elasticsearch URL; repeat for several nodes. No credentials in URLs."
        ),
        since: str | None = typer.Option(
            None, help="Backlog bound for logs seen for the first time (e.g. 24h)."
        ),
        state: str | None = typer.Option(None, help="State file (offsets of every log)."),
        source: str | None = typer.Option(
            None, "--from", help="Audit this bundle/directory/sosreport instead of this host "
            "(its rules, limits, counters and, unless inputs are configured, its logs).",
        ),
        dry_run: bool = typer.Option(
            False, "--dry-run", help="Read and correlate, ship nothing, keep the state as it is."
        ),
        json_out: bool = typer.Option(False, "--json", help="Print the run summary as JSON."),
    ) -> None:
        """Ship what is new since the last run to Elasticsearch: events, findings, a snapshot."""
        try:
            cfg = load_config(config, overrides={"es_hosts": es, "since": since, "state": state,
                                                  "source": source})
        except ConfigError as exc:
            fail(str(exc))
        if not cfg.inputs and cfg.source is None:
            fail("no inputs configured: add [[inputs]] path = \"/var/log/kern.log\" to the config")
        if not cfg.es.hosts and not dry_run:
            fail("no Elasticsearch URL: set [elasticsearch] hosts, AUDITOR_ES_URL or --es")
        try:
            from auditor.commands._audit_job import run_audit

            report = run_audit(cfg, dry_run=dry_run)
        except (StateError, ValueError) as exc:
            fail(str(exc))
        if json_out:
            from auditor.commands._audit_job import summary

            sys.stdout.write(json.dumps(summary(report), indent=1) + "\n")
        else:
            _print(report, Console() if dry_run else err_console)
        if report.problems:
            raise typer.Exit(1)
