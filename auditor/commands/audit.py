"""``auditor audit``: the scheduled job that feeds Elasticsearch, exactly once.

Reads what is new since the last run (resuming each log at its saved offset,
following rotation), correlates, and ships reset events, findings and a snapshot
of the host's limits, counters and ruleset. Configuration: /etc/auditor/auditor.toml,
then AUDITOR_* variables, then these flags. Secrets only from the file or the
environment (never flags, which ``ps`` shows).

A run that did not deliver everything says so in its exit status (see ``EXIT_CODES``):
a scheduler must not take a run whose documents were refused for a success.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from auditor.commands._common import clean_errors, err_console, fail
from auditor.config import ConfigError, load_config
from auditor.sinks.text import console as text_console
from auditor.sinks.text import dumps, hanging, line
from auditor.sources.checkpoint import StateError

if TYPE_CHECKING:  # the Elasticsearch client loads only when an audit runs
    from auditor.commands._audit_job import AuditReport

EXAMPLES = """
[bold]Examples[/]

  auditor audit                                  # /etc/auditor/auditor.toml
  auditor audit --config ./auditor.toml --dry-run
  AUDITOR_ES_API_KEY_FILE=/etc/auditor/es.key \\
      auditor audit --es https://es1:9200
  auditor audit --since 2h --state /var/lib/auditor/state.json
  auditor audit --from incident.tar.gz     # a collected bundle

[bold]Exit status[/]

  0  everything read was delivered (or, with --dry-run, read)
  1  delivered in part: documents refused (dead-letter file), spooled, or inputs
     that could not be read
  2  bad option or configuration (plain http:// with credentials included)
  3  nothing delivered: Elasticsearch unreachable after its retries (documents
     are spooled for the next run) or it refused the credentials (401/403)
"""


class Format(StrEnum):
    table = "table"
    json = "json"


class _Progress(logging.Handler):
    """Retries and waits of the Elasticsearch sink, as lines on stderr while they happen."""

    def emit(self, record: logging.LogRecord) -> None:
        hanging(err_console, line(("auditor: ", "dim"), record.getMessage()))


@contextmanager
def _progress() -> Iterator[None]:
    logger = logging.getLogger("auditor.elasticsearch")
    handler = _Progress(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _print(report: AuditReport, console: Console) -> None:
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(report.by_kind.items())) or "nothing"
    verb = "would ship" if report.dry_run else "shipped"
    hanging(console, line(
        f"auditor audit: {len(report.files)} files, {report.events} events, "
        f"{report.findings} findings; {verb} {kinds}"
        + ("" if report.dry_run else
           f" (created {report.sent.created}, already there {report.sent.duplicates}, "
           f"dead-letter {report.sent.dead}, spooled {report.spooled}, "
           f"from spool {report.spool_sent}, dropped {report.dropped})"),
    ))
    for note in report.notes[:20]:
        hanging(console, line((f"note: {note}", "dim")))
    for problem in report.problems:
        hanging(console, line(("warning: ", "yellow"), problem))


def exit_code(report: AuditReport) -> int:
    """The exit status of a run (see ``EXAMPLES``)."""
    if report.delivery is not None:
        return 3
    if report.problems or report.sent.dead or report.spooled or report.dropped:
        return 1
    return 0


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
            False, "--dry-run",
            help="Read and correlate, ship nothing, keep the state; reads no credentials.",
        ),
        allow_http: bool = typer.Option(
            False, "--allow-http-credentials",
            help="Send credentials to a plain http:// URL (refused otherwise).",
        ),
        fmt: Format = typer.Option(Format.table, "--format", "-f",
                                   help="Run summary as text or JSON."),
        json_out: bool = typer.Option(False, "--json", hidden=True),
    ) -> None:
        """Ship what is new since the last run to Elasticsearch: events, findings, a snapshot."""
        overrides = {"es_hosts": es, "since": since, "state": state, "source": source,
                     "allow_http_credentials": allow_http}
        try:
            cfg = load_config(config, overrides=overrides, credentials=not dry_run)
        except ConfigError as exc:
            fail(str(exc))
        if not cfg.inputs and cfg.source is None:
            fail("no inputs configured: add [[inputs]] path = \"/var/log/kern.log\" to the config")
        if not cfg.es.hosts and not dry_run:
            fail("no Elasticsearch URL: set [elasticsearch] hosts, AUDITOR_ES_URL or --es")
        try:
            from auditor.commands._audit_job import run_audit

            with _progress():
                report = run_audit(cfg, dry_run=dry_run)
        except (StateError, ValueError) as exc:
            fail(str(exc))
        if json_out or fmt is Format.json:
            from auditor.commands._audit_job import summary

            sys.stdout.write(dumps(summary(report), indent=1) + "\n")
        else:
            _print(report, text_console() if dry_run else err_console)
        code = exit_code(report)
        if report.sent.dead:
            hanging(err_console, line(
                ("auditor: error: ", "bold red"),
                f"Elasticsearch refused {report.sent.dead} documents; they are in "
                f"{cfg.dead_letter} with the reason",
            ))
        if report.delivery == "unreachable":
            fail(f"Elasticsearch ({', '.join(cfg.es.hosts)}) could not be reached after "
                 f"{cfg.es.max_retries} retries; {report.spooled} documents spooled in "
                 f"{cfg.spool}, sent by the next run", code)
        if report.delivery == "refused":
            fail("Elasticsearch refused the credentials (see above); nothing was delivered", code)
        raise typer.Exit(code)
