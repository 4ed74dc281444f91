"""Access logs in a ``log_format`` that only the input's own nginx configuration declares.

Recognition by content knows nginx's stock formats; a custom ``log_format`` (declared
in ``nginx -T`` or ``nginx.conf``) makes a file that nothing recognises, and its 502s
and 499s would be lost. When the input holds an nginx configuration, every file that
was not recognised is tried against each format it declares: a file whose first
lines parse with one is an ``nginx-access`` log (read later with that format, which
the pipeline resolves from the same configuration).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from auditor.bundle.inputs import Artifact, Inputs
from auditor.models import Location
from auditor.nginx.access_format import FormatLookupError, read_config
from auditor.nginx.model import NginxConfigError
from auditor.parsers.base import LineError, ParseContext
from auditor.parsers.nginx_access import NginxAccessParser
from auditor.pipeline.logs import DECLARED_NOTE as NOTE
from auditor.sources.files import SourceError, read_head

ACCESS = "nginx-access"
HEAD_LINES = 20
MIN_SHARE = 0.6  # of the first non-empty lines that must parse with the format
UNRECOGNISED = "kind of file not recognised"


def declared_formats(inputs: Inputs) -> list[tuple[str, str, str]]:
    """(name, format, escape) of every ``log_format`` the input's nginx configuration
    declares."""
    from auditor.nginx.config import parse_text  # the grammar loads only when needed

    out: list[tuple[str, str, str]] = []
    for art in inputs.by_kind("nginx-config")[:1]:
        try:
            cfg = parse_text(read_config(Path(art.path)), art.path, inputs.root or None)
        except (FormatLookupError, NginxConfigError, OSError, ValueError):
            return []
        out.extend((name, lf.format, lf.escape) for name, lf in cfg.log_formats.items()
                   if lf.location is not None)  # the stock ones are recognised already
    return out


def _share_parsed(lines: list[str], fmt: str, escape: str, path: str) -> float:
    ctx = ParseContext(options={"log_format": fmt, "log_format_escape": escape})
    try:
        parser = NginxAccessParser(ctx, path)
    except SourceError:
        return 0.0
    ok = 0
    for no, line in enumerate(lines, 1):
        try:
            parser.parse(line, Location(path, no))
        except LineError:
            continue
        ok += 1
    return ok / len(lines)


def with_declared_formats(inputs: Inputs) -> Inputs:
    """``inputs`` with the files that parse with a declared ``log_format`` as access logs."""
    unknown = [p for p in inputs.problems if p.reason.startswith(UNRECOGNISED)]
    if not unknown or not inputs.by_kind("nginx-config"):
        return inputs
    formats = declared_formats(inputs)
    if not formats:
        return inputs
    found: list[Artifact] = []
    recognised: set[str] = set()
    for problem in unknown:
        path = problem.location.path
        try:
            lines = [x for x in read_head(path, lines=HEAD_LINES) if x.strip()]
        except (OSError, SourceError):
            continue
        if not lines:
            continue
        for name, fmt, esc in formats:
            if _share_parsed(lines, fmt, esc, path) >= MIN_SHARE:
                found.append(Artifact(ACCESS, path, f"{NOTE}{name}"))
                recognised.add(path)
                break
    if not found:
        return inputs
    return dataclasses.replace(
        inputs,
        artifacts=(*inputs.artifacts, *found),
        problems=tuple(p for p in inputs.problems if p.location.path not in recognised),
    )
