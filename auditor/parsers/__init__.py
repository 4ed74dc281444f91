"""Parsers: one module per log kind, each a :class:`~auditor.parsers.base.LineParser`.

The registry is discovered: any module in this package that defines LineParser
subclasses with a ``name`` is picked up, so adding a parser is adding a file.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from functools import cache

from auditor.parsers.base import LineParser

_NOT_PARSERS = {"base", "census"}


@cache
def registry() -> dict[str, type[LineParser]]:
    """All parsers by their ``--type`` name."""
    found: dict[str, type[LineParser]] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name in _NOT_PARSERS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, LineParser)
                and obj.__module__ == module.__name__
                and getattr(obj, "name", None)
            ):
                found[obj.name] = obj
    return dict(sorted(found.items()))


#: How a file of no recognised kind is read: line by line, each to the parser that reads it.
FALLBACK = "mixed"


def detect(head: Sequence[str]) -> type[LineParser] | None:
    """The parser most sure of ``head``, or None when none is at least 30% sure."""
    best: tuple[float, type[LineParser] | None] = (0.3, None)
    for cls in registry().values():
        score = cls.sniff(head)
        if score > best[0]:
            best = (score, cls)
    return best[1]


def why_unrecognised(head: Sequence[str]) -> str:
    """Why :func:`detect` found no kind for a file starting with ``head``, and what to do."""
    from auditor.parsers.nginx_access import looks_like_access
    from auditor.parsers.nginx_error import looks_like_error
    from auditor.parsers.syslog_frame import sniff_framing

    lines = [line for line in head if line.strip()]
    if not lines:
        return "its first lines are empty"
    framed, _ = sniff_framing(lines)
    errors = sum(1 for line in lines if looks_like_error(line))
    access = sum(1 for line in lines if looks_like_access(line))
    return (
        f"of its first {len(lines)} lines, {framed} fit a syslog/journal/dmesg framing, "
        f"{errors} are nginx error lines and {access} nginx access lines (combined, main or "
        "JSON): too few for any kind; force one with --type KIND, or give an access log's "
        "format with --log-format or --nginx-config"
    )
