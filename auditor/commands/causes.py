"""``auditor causes``: list the cause catalog, or print docs/causes.md (``--markdown``)."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.table import Table

from auditor.commands._common import clean_errors, fail
from auditor.correlate.catalog import CatalogError, load_catalog, load_default
from auditor.correlate.docs import render


def register(app: typer.Typer) -> None:
    @app.command("causes")
    @clean_errors
    def causes_cmd(
        markdown: bool = typer.Option(False, "--markdown", help="Print the generated docs page."),
        rules_dir: str | None = typer.Option(None, "--rules", help="Catalog directory to check."),
    ) -> None:
        """List the causes auditor can name (validates the catalog)."""
        try:
            catalog = load_catalog(rules_dir) if rules_dir else load_default()
        except CatalogError as exc:
            fail("cause catalog is invalid:\n" + str(exc))
        if markdown:
            sys.stdout.write(render(catalog))
            return
        table = Table(header_style="bold")
        for col in ("id", "side", "role", "title"):
            table.add_column(col, overflow="fold")
        for c in catalog.causes:
            table.add_row(
                c.id, c.side, c.role + (" (intentional)" if c.intentional else ""), c.title
            )
        Console().print(table)
