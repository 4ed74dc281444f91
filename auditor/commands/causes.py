"""``auditor causes``: list the cause catalog, or print docs/causes.md (``--format markdown``)."""

from __future__ import annotations

import sys
from enum import StrEnum

import typer
from rich.table import Table

from auditor.commands._common import clean_errors, fail
from auditor.correlate.catalog import CatalogError, load_catalog, load_default
from auditor.correlate.docs import render
from auditor.sinks.text import cell
from auditor.sinks.text import console as text_console

EXAMPLES = """
[bold]Examples[/]

  auditor causes
  auditor causes --rules ./my-rules/     # check a catalog of your own
  auditor causes --format markdown > docs/causes.md

[bold]Exit status[/]

  0  the catalog is valid
  2  it is not (each error named with its file)
"""


class Format(StrEnum):
    table = "table"
    markdown = "markdown"


def register(app: typer.Typer) -> None:
    @app.command("causes", epilog=EXAMPLES)
    @clean_errors
    def causes_cmd(
        fmt: Format = typer.Option(
            Format.table, "--format", "-f", help="table, or markdown: the generated docs page."
        ),
        markdown: bool = typer.Option(False, "--markdown", hidden=True),
        rules_dir: str | None = typer.Option(None, "--rules", help="Catalog directory to check."),
    ) -> None:
        """List the causes auditor can name (validates the catalog)."""
        try:
            catalog = load_catalog(rules_dir) if rules_dir else load_default()
        except CatalogError as exc:
            fail("cause catalog is invalid:\n" + str(exc))
        if markdown or fmt is Format.markdown:
            sys.stdout.write(render(catalog))
            return
        table = Table(header_style="bold")
        table.add_column("id", no_wrap=True)
        table.add_column("side", no_wrap=True)
        table.add_column("role", overflow="fold", max_width=14)
        table.add_column("title", overflow="fold", ratio=1)
        for c in catalog.causes:
            role = c.role + (" (intentional)" if c.intentional else "")
            table.add_row(cell(c.id), cell(c.side), cell(role), cell(c.title))
        text_console().print(table)
