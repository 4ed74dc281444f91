"""The ``auditor`` command line.

Commands live in :mod:`auditor.commands`, one module each; every module exposes
``register(app)`` and is discovered here, so the CLI grows by adding a file.
:func:`main` imports only the command being run (``auditor parse`` loads no firewall
code: 0.2 s of start-up, measured with ``python -X importtime``); help, completion
and ``from auditor.cli import app`` get every command.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys

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

_app = typer.Typer(
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


@_app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """auditor: find why connections are reset."""


def command_names() -> list[str]:
    """Every command module's name (the command it registers)."""
    return sorted(i.name for i in pkgutil.iter_modules(commands.__path__)
                  if not i.name.startswith("_"))


_registered: set[str] = set()


def register(only: str | None = None) -> typer.Typer:
    """The application with every command (``only``: with that one command) registered."""
    for name in command_names():
        if name in _registered or (only is not None and name != only):
            continue
        importlib.import_module(f"{commands.__name__}.{name}").register(_app)
        _registered.add(name)
    return _app


def __getattr__(name: str) -> typer.Typer:
    """``from auditor.cli import app``: the application with every command."""
    if name == "app":
        return register()
    raise AttributeError(name)


def main() -> None:
    first = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    completing = any(k.endswith("_COMPLETE") for k in os.environ)
    register(first if first in command_names() and not completing else None)
    _app()


if __name__ == "__main__":
    main()
