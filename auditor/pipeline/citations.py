"""Evidence cited where a reader can find it, not in a temporary folder.

An archive is read from a private temporary folder and the live host is first
collected into one; both are gone when the command ends. Every path in a report
(evidence, rule and limit locations, sources, and the ``file:line`` quoted in
summaries and remedies) is rewritten here:

* a directory input: the path the user gave, joined with the file's place in it;
* an archive: the member's path inside the bundle (the report's ``input`` names the
  archive);
* the live host: the file or command the collector read it from (its manifest's
  ``source``), e.g. ``/var/log/kern.log`` or ``journalctl -k``.

The cited lines themselves stay in the report, so nothing depends on the folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from auditor.bundle.inputs import Inputs
from auditor.correlate.report import Report
from auditor.models import Evidence

MANIFEST = "manifest.json"
MANIFEST_MAX = 8 << 20  # bytes read of a manifest, at most
T = TypeVar("T")


def manifest_of(inputs: Inputs) -> Mapping[str, Any]:
    """The input's manifest (collected bundles have one), or an empty mapping."""
    path = os.path.join(inputs.root, MANIFEST) if inputs.root else ""
    try:
        with open(path, "rb") as fh:
            doc = json.loads(fh.read(MANIFEST_MAX))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def live_sources(manifest: Mapping[str, Any]) -> dict[str, str]:
    """Bundle-relative path -> what the collector read it from."""
    out: dict[str, str] = {}
    for entry in manifest.get("artifacts") or ():
        if isinstance(entry, dict) and isinstance(entry.get("path"), str):
            source = entry.get("source")
            if isinstance(source, str) and source:
                out[os.path.normpath(entry["path"])] = source
    return out


def citer(
    inputs: Inputs, origin: str | None, live: bool, manifest: Mapping[str, Any]
) -> Callable[[str], str]:
    """A function that turns a path of the input's folder into the one to cite
    (``manifest``: the input's, see :func:`manifest_of`)."""
    root = os.path.normpath(inputs.root) if inputs.root else ""
    sources = live_sources(manifest) if live else {}
    keep_dir = origin is not None and os.path.isdir(origin)

    def cite(text: str) -> str:
        if not root or root not in text:
            return text
        out: list[str] = []
        rest = text
        prefix = root + os.sep
        while prefix in rest:
            before, _, after = rest.partition(prefix)
            out.append(before)
            end = len(after)
            for stop in (":", " ", ")", "'", '"', ",", ";", "\n"):
                i = after.find(stop)
                if i != -1:
                    end = min(end, i)
            rel = os.path.normpath(after[:end])
            if live:
                out.append(sources.get(rel, rel))
            elif keep_dir and origin is not None:
                out.append(os.path.join(origin, rel))
            else:
                out.append(rel)
            rest = after[end:]
        out.append(rest)
        return "".join(out)

    return cite


def rewrite(value: T, cite: Callable[[str], str]) -> T:
    """``value`` with every string inside it (dataclasses, tuples, lists, dicts) cited."""
    return _walk(value, cite)  # type: ignore[no-any-return]


def _walk(value: Any, cite: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return cite(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            f.name: _walk(getattr(value, f.name), cite)
            for f in dataclasses.fields(value)
            if f.init
        }
        return dataclasses.replace(value, **changes)
    if isinstance(value, tuple):
        return tuple(_walk(v, cite) for v in value)
    if isinstance(value, list):
        return [_walk(v, cite) for v in value]
    if isinstance(value, Mapping):
        return {k: _walk(v, cite) for k, v in value.items()}
    return value


def without_copy_lines(report: Report) -> Report:
    """Evidence of the live host without line numbers: they count lines of the collector's
    copy of a log window, not of the log itself (the cited text and time stay)."""

    def strip(items: tuple[Evidence, ...]) -> tuple[Evidence, ...]:
        return tuple(
            dataclasses.replace(e, line=None) if e.kind == "log" and e.line is not None else e
            for e in items
        )

    return dataclasses.replace(
        report,
        findings=tuple(dataclasses.replace(f, evidence=strip(f.evidence))
                       for f in report.findings),
        unexplained=tuple(dataclasses.replace(u, evidence=strip(u.evidence))
                          for u in report.unexplained),
        notes=tuple(dataclasses.replace(n, evidence=strip(n.evidence)) for n in report.notes),
    )
