"""Which ``log_format`` an nginx access log was written with, found for the caller.

Parsers never open files: ``auditor parse`` (or any other caller) resolves the
format text here and hands it to the access-log parser in
``ParseContext.options["log_format"]`` (with ``"log_format_escape"``).

* :func:`config_beside`: an ``nginx -T`` dump or an ``nginx.conf`` lying next to
  the log (or one or two folders up, as in a collected bundle), from a short,
  fixed list of names;
* :func:`format_from_config`: from a configuration's text, the ``log_format``
  of the ``access_log`` that writes this path (a rotation such as
  ``access.log.2.gz`` counts), or the one named.

A configuration found beside a log is an input like the log itself: it is read
as one self-contained file, and its ``include`` directives are not followed
(they name files of the host that wrote it, not of this one). An ``nginx -T``
dump carries its included files in itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from auditor.nginx.logformat import STOCK_FORMATS
from auditor.paths import check, open_regular

if TYPE_CHECKING:
    from auditor.nginx.config import NginxConfig

#: File names taken for an nginx configuration when found beside a log, in this order.
CONFIG_NAMES = ("nginx-T.txt", "nginx/nginx-T.txt", "nginx.conf", "nginx/nginx.conf")
#: How many folders above the log's own are searched.
CONFIG_LEVELS = 2
MAX_CONFIG_BYTES = 16 << 20


class FormatLookupError(ValueError):
    """A configuration that cannot give the format asked for (the message says why)."""


@dataclass(frozen=True)
class FoundFormat:
    """A ``log_format`` and where it was declared."""

    format: str
    escape: str
    origin: str  # "config.conf:12" or the configuration's name


def config_beside(log_path: Path, root: str | None = None) -> Path | None:
    """The first nginx configuration named in :data:`CONFIG_NAMES` beside ``log_path``
    (with ``root``, an input's folder: only inside it, links leading out not taken).

    One that is, or lies through, a symbolic link leading out of its folder is
    passed over: an input does not get to name a file of this host.
    """
    folder = log_path.parent
    real_root = os.path.realpath(root) if root is not None else None
    for _ in range(CONFIG_LEVELS + 1):
        for name in CONFIG_NAMES:
            candidate = folder / name
            if real_root is not None and check(str(candidate), real_root) is not None:
                continue
            if candidate.is_file() and candidate.resolve().is_relative_to(folder.resolve()):
                return candidate
        if folder.parent == folder or (real_root and os.path.realpath(folder) == real_root):
            break
        folder = folder.parent
    return None


def read_config(path: Path) -> str:
    """A configuration's text, bounded; FormatLookupError when unreadable or too large."""
    try:
        with open(open_regular(str(path)), "rb") as fh:  # a FIFO never hangs
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise FormatLookupError(f"{path}: {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise FormatLookupError(f"{path}: larger than 16 MiB, not an nginx configuration")
    return data.decode("utf-8", "replace")


def log_format_options(
    log_path: Path, options: dict[str, Any], config: Path | None = None, root: str | None = None
) -> tuple[dict[str, Any], str | None]:
    """``options`` with the access log's ``log_format`` resolved, and a note for the user.

    A format string or a stock name in ``options["log_format"]`` stays; a name, or
    none, is looked up in ``config`` or in a configuration beside the log. A
    configuration beside the log that cannot be read only gives a note; the user's
    configuration, or a name no configuration declares, is a FormatLookupError.
    """
    given = str(options.get("log_format") or "").strip()
    if "$" in given or given in STOCK_FORMATS:
        return options, None
    try:
        found = format_for_log(log_path, config, given or None, root)
    except FormatLookupError as exc:
        if config is not None or given:
            raise
        return options, f"nginx configuration beside the log not used: {exc}"
    if found is None:
        if given:
            raise FormatLookupError(f"{log_path}: no nginx configuration declares {given!r}")
        return options, None
    resolved = {**options, "log_format": found.format, "log_format_escape": found.escape}
    return resolved, f"log_format from {found.origin}"


def format_for_log(
    log_path: Path, config: Path | None = None, name: str | None = None, root: str | None = None
) -> FoundFormat | None:
    """The format of the access log at ``log_path``: from ``config`` (the user's, includes
    followed; an input's, when ``root`` is its folder, includes resolved inside it) or else
    from a configuration found beside the log (read alone)."""
    follow = config is not None
    if config is None:
        config = config_beside(log_path, root)
        if config is None:
            return None
    text = read_config(config)
    return format_from_config(text, str(config), str(log_path), name, follow, root)


def format_from_config(
    text: str,
    origin: str,
    log_path: str,
    name: str | None = None,
    follow_includes: bool = False,
    root: str | None = None,
) -> FoundFormat | None:
    """The format named ``name``, or else that of the access log at ``log_path``.

    None when the configuration does not say (no access_log for this path and more
    than one format in use). FormatLookupError for a configuration that does not
    parse or has no format of that name. ``follow_includes`` reads included files
    from this host: only for a configuration the user named (or, with ``root``, from
    inside that input folder).
    """
    cfg = _parsed(text, origin, follow_includes, root)
    formats = cfg.log_formats
    if name:
        lf = formats.get(name)
        if lf is None:
            raise FormatLookupError(f"nginx config {origin}: no log_format named {name!r}")
    else:
        lf = cfg.access_log_format(log_path)
        if lf is None:
            used = {a.format_name for a in cfg.access_logs}
            lf = formats.get(used.pop()) if len(used) == 1 else None
    if lf is None:
        return None
    where = str(lf.location) if lf.location is not None else origin
    return FoundFormat(lf.format, lf.escape, where)


@lru_cache(maxsize=4)
def _parsed(text: str, origin: str, follow_includes: bool, root: str | None) -> NginxConfig:
    """A parsed configuration (the rotations of one log share it)."""
    # Imported here: the configuration grammar (pyparsing) takes a tenth of a second
    # to load, and most parses never read a configuration.
    from auditor.nginx.config import parse_text
    from auditor.nginx.loader import is_dump
    from auditor.nginx.model import NginxConfigError

    if not follow_includes and not is_dump(text):
        text = f"# configuration file {origin}:\n{text}"  # one section: includes stay unread
    try:
        cfg = parse_text(text, origin, root)
        cfg.log_formats  # noqa: B018 - a bad log_format is an error of the configuration
    except NginxConfigError as exc:
        raise FormatLookupError(f"nginx config: {exc}") from None
    return cfg
