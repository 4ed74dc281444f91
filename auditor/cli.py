"""The ``auditor`` command line.

Commands live in :mod:`auditor.commands`, one module each; every module exposes
``register(app)`` and is discovered here, so the CLI grows by adding a file.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

from auditor import __version__, commands

app = typer.Typer(
    name="auditor",
    help=(
        "Explain 'connection reset by peer': read kernel, firewall and nginx logs, "
        "live firewall rules and resource limits, and name the cause."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"auditor {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """auditor: find why connections are reset."""


for _info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{commands.__name__}.{_info.name}").register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
