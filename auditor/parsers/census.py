"""The format census: every log shape auditor reads, generated from the annotated samples.

A sample file (``samples/logs/<parser>/*.log``) names a shape with a comment
``# census: {"producer": ..., "version": ..., "framing": ...}``; the next sample
line is its example. The table is the documentation page ``docs/formats.md``:

    python3 -m auditor.parsers.census > docs/formats.md

(tests/parsers/test_census.py fails when the page is stale).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "logs"
EXAMPLE_CHARS = 110
_KEYS = ("producer", "version", "framing")


class CensusError(ValueError):
    """A census comment that cannot be read (the message names the file and line)."""


@dataclass(frozen=True)
class Shape:
    """One row of the census."""

    parser: str
    producer: str
    version: str
    framing: str
    example: str
    sample: str  # "<parser>/<file>:<line>"


def shapes(samples: Path = SAMPLES) -> list[Shape]:
    """Every census entry of the sample files, by parser and file."""
    out: list[Shape] = []
    for path in sorted(samples.glob("*/*.log")):
        pending: tuple[int, dict[str, str]] | None = None
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            where = f"{path.parent.name}/{path.name}:{n}"
            if line.startswith("# census:"):
                pending = (n, _entry(line.split(":", 1)[1], where))
            elif pending is not None and line.strip() and not line.startswith("#"):
                entry = pending[1]
                out.append(Shape(path.parent.name, entry["producer"], entry["version"],
                                 entry["framing"], line, where))
                pending = None
        if pending is not None:
            raise CensusError(f"{path.parent.name}/{path.name}:{pending[0]}: no sample line after")
    return out


def _entry(text: str, where: str) -> dict[str, str]:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise CensusError(f"{where}: census is not JSON: {exc}") from None
    if not isinstance(doc, dict) or set(doc) != set(_KEYS):
        raise CensusError(f"{where}: census needs exactly {', '.join(_KEYS)}")
    if not all(isinstance(doc[k], str) and doc[k] for k in _KEYS):
        raise CensusError(f"{where}: census values must be non-empty text")
    return {k: str(doc[k]) for k in _KEYS}


def _cell(text: str) -> str:
    """Text for one table cell: one line, pipes and backticks made harmless."""
    flat = " ".join(text.split())
    return flat.replace("\\", "\\\\").replace("|", "\\|").replace("`", "'")


def _example(text: str) -> str:
    """A code span: literal, but for the table's pipes; a backtick would end it."""
    flat = " ".join(text.split())
    short = flat if len(flat) <= EXAMPLE_CHARS else flat[: EXAMPLE_CHARS - 1] + "…"
    return "`" + short.replace("|", "\\|").replace("`", "'") + "`"


def markdown(rows: list[Shape]) -> str:
    """The census page."""
    lines = [
        "# Log formats auditor reads",
        "",
        "Generated from the annotated samples (`samples/logs/<parser>/*.log`, their",
        "`# census:` comments) by `python3 -m auditor.parsers.census > docs/formats.md`;",
        "do not edit by hand. `--type` forces a parser; without it the parser is chosen",
        "from the first lines of each file, and a file no parser recognises is read line",
        "by line by `mixed`, which counts the relevant-looking lines it cannot read.",
        "",
        "| parser | producer | version | framing | example | sample |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.parser} | {_cell(r.producer)} | {_cell(r.version)} | {_cell(r.framing)} "
            f"| {_example(r.example)} | {r.sample} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    sys.stdout.write(markdown(shapes()))


if __name__ == "__main__":
    main()
