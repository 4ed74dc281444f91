"""The ``auditor`` command line.

Commands live in :mod:`auditor.commands`, one module each; every module exposes
``register(app)`` and is discovered here, so the CLI grows by adding a file.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer
from typer.core import TyperArgument, TyperOption

from auditor import __version__, commands

_TYPE_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER"}


def _plain_metavar(display: object) -> object:
    """Help shows ``TEXT``/``INTEGER``/``table|json`` and nothing for flags, not ``<bool>``."""
    original = display

    def shown(self: TyperArgument | TyperOption, ctx: object) -> str | None:
        if isinstance(self, TyperOption) and self.is_flag:
            return None
        label = str(original(self, ctx))  # type: ignore[operator]
        inner = label[1:-1] if label.startswith("<") and label.endswith(">") else label
        if inner.startswith("list[") and inner.endswith("]"):
            inner = inner[5:-1]
        return _TYPE_NAMES.get(inner, inner)

    return shown


for _cls in (TyperArgument, TyperOption):  # one place for the help's look, every command
    if hasattr(_cls, "display_type_rich"):
        _cls.display_type_rich = _plain_metavar(_cls.display_type_rich)  # type: ignore[method-assign,assignment]

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
