"""Helpers shared by commands: one-line errors, time options, the error console."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime, tzinfo
from functools import wraps
from typing import Any, NoReturn, TypeVar

import typer

from auditor.sinks.text import console, inert, line
from auditor.timeutil import parse_instant, parse_timezone

F = TypeVar("F", bound=Callable[..., Any])

err_console = console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``auditor: error: message`` on stderr and exit; never a traceback."""
    text = line(("auditor: error:", "bold red"), " ")
    text.append(inert(message, keep_newlines=True))
    err_console.print(text, soft_wrap=True)
    raise typer.Exit(code)


def timezone_option(value: str | None) -> tzinfo:
    try:
        return parse_timezone(value)
    except (ValueError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        fail(f"unknown time zone {value!r} (use e.g. Europe/Berlin, UTC or +02:00)")


def instant_option(value: str | None, tz: tzinfo, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_instant(value, tz)
    except ValueError:
        fail(
            f"{name}: cannot read {value!r} "
            "(use ISO 8601 such as 2026-11-24T10:00 or a duration such as 2h)"
        )


def clean_errors(func: F) -> F:
    """Turn expected errors (OSError and friends) into one-line messages."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except BrokenPipeError:
            sys.stderr.close()
            raise typer.Exit(0) from None
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except OSError as exc:
            fail(str(exc))

    return wrapper  # type: ignore[return-value]
