"""The trace window of ``collect --trace`` / ``diagnose --trace``: rules, kernel trace, notes.

Between the bundle's before and after counter snapshots, the rule counters are saved
(``trace/rules-before/``, marked ``before`` in the manifest so that only the rules of
the end of the window are traced) and the kernel's reset and drop reasons are recorded
(:func:`auditor.sources.trace_record.record`). What could not be recorded becomes a
``missing`` entry of the manifest, with why.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from auditor.bundle.collect import WindowHook
from auditor.bundle.writer import Collector
from auditor.sources.trace_record import HEADER, RECORDS, TraceFilter, record


def trace_window(
    col: Collector,
    seconds: float,
    rule_commands: Sequence[tuple[tuple[str, ...], str]],
    flt: TraceFilter | None = None,
) -> dict[str, Any]:
    """Save the rules, record ``seconds`` of kernel trace; the manifest's ``trace`` entry."""
    for argv, rel in rule_commands:
        col.run(argv, "trace/rules-before/" + os.path.basename(rel), note="before")
    summary = record(col.root, seconds, flt)
    for rel in (RECORDS, HEADER):
        path = os.path.join(col.root, rel)
        size = os.path.getsize(path) if os.path.exists(path) else 0
        col.artifacts.append({"path": rel, "source": "tracefs", "note": "", "bytes": size})
    for what, why in summary.not_recorded:
        col.miss(what, why)
    return {
        "seconds": seconds,
        "recorded": list(summary.recorded),
        "seen": summary.seen,
        "stored": summary.stored,
        "lost": summary.lost,
        "instance_removed": summary.removed,
    }


MAX_HEADER_BYTES = 1 << 20


def header_notes(inputs: Any) -> list[tuple[str, bool, str]]:
    """(path, recorded anything, note) of every trace header: the kernel, what was recorded,
    what could not be and why, and what the ring buffer lost. A bad header is said, not used."""
    out: list[tuple[str, bool, str]] = []
    for art in inputs.by_kind("trace-header"):
        try:
            with open(art.path, encoding="utf-8", errors="replace") as fh:
                doc = json.loads(fh.read(MAX_HEADER_BYTES))
        except (OSError, ValueError) as exc:
            out.append((art.path, False, f"trace header not readable: {exc}"))
            continue
        if not isinstance(doc, dict):
            out.append((art.path, False, "trace header is not a JSON object"))
            continue
        points: list[Any] = _list(doc.get("tracepoints"))
        recorded = [str(p.get("name")) for p in points if isinstance(p, dict) and p.get("recorded")]
        missing: list[Any] = _list(doc.get("not_recorded"))
        whys = [f"{m.get('what')}: {m.get('why')}" for m in missing[:10] if isinstance(m, dict)]
        parts = [
            f"kernel {str(doc.get('kernel'))[:80]}",
            "recorded " + (", ".join(recorded) or "nothing"),
        ]
        if whys:
            parts.append("not recorded: " + "; ".join(whys))
        for key, label in (("lost", "lost by the ring buffer"), ("not_stored", "seen, not stored")):
            if isinstance(doc.get(key), int) and doc[key] > 0:
                parts.append(f"{doc[key]} events {label}")
        out.append((art.path, bool(recorded), "; ".join(parts)))
    return out


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def hook(seconds: float, flt: TraceFilter | None = None) -> WindowHook:
    """The counter window of ``collect_dir`` as a kernel trace of ``seconds``."""

    def window(col: Collector, rule_commands: Sequence[tuple[tuple[str, ...], str]]
               ) -> dict[str, Any]:
        return trace_window(col, seconds, rule_commands, flt)

    return window
