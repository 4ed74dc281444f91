"""The streaming scanner: feeds a parser the lines that can matter, in constant memory.

Reads 8 MiB blocks, finds candidate lines with ``bytes.find`` on the parser's
needles (memchr-speed), and decodes only those. Lines are counted exactly so
every event and every parse issue carries its true line number and byte offset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from auditor.models import Event, Location, ParseIssue
from auditor.parsers.base import LineError, LineParser
from auditor.sources.files import open_binary

BLOCK = 8 << 20
MAX_LINE = 2 << 20  # longer lines are cut here (and reported) to keep memory bounded
MAX_KEPT_ISSUES = 1000


@dataclass
class ScanStats:
    """What one file yielded: counts for the summary, and the first issues in full."""

    path: str
    parser: str
    lines: int = 0
    bytes: int = 0
    candidates: int = 0
    events: int = 0
    not_understood: int = 0
    issues: list[ParseIssue] = field(default_factory=list)

    def add_issue(self, issue: ParseIssue) -> None:
        self.not_understood += 1
        if len(self.issues) < MAX_KEPT_ISSUES:
            self.issues.append(issue)


def _candidate_starts(block: bytes, needles: tuple[bytes, ...]) -> list[int]:
    """Start offsets of the lines in ``block`` that contain any needle, ascending, unique."""
    starts: set[int] = set()
    find, rfind = block.find, block.rfind
    for needle in needles:
        pos = find(needle)
        while pos != -1:
            start = rfind(b"\n", 0, pos) + 1
            starts.add(start)
            end = find(b"\n", pos)
            if end == -1:
                break
            pos = find(needle, end + 1)
    return sorted(starts)


def scan(
    path: str,
    parser: LineParser,
    stats: ScanStats,
    progress: Callable[[int], None] | None = None,
    every_line: bool = False,
) -> Iterator[Event]:
    """Yield the events of one file. ``every_line`` offers every line to the parser."""
    needles = () if every_line else parser.needles
    with open_binary(path) as fh:
        carry = b""
        lineno = 0  # lines fully consumed before the current block
        base = 0  # byte offset of the current block's start in the (decompressed) stream
        while True:
            chunk = fh.read(BLOCK)
            if not chunk and not carry:
                break
            block = carry + chunk if carry else chunk
            if chunk:
                cut = block.rfind(b"\n") + 1
                if cut == 0 and len(block) > MAX_LINE:
                    cut = len(block)  # an overlong line without newline: take it as it is
                block, carry = block[:cut], block[cut:]
            else:
                carry = b""  # final line without newline
            if not block:
                continue
            if progress is not None:
                progress(len(block))
            stats.bytes += len(block)
            yield from _scan_block(block, base, lineno, needles, parser, stats)
            nl = block.count(b"\n")
            lineno += nl + (0 if block.endswith(b"\n") else 1)
            base += len(block)
        stats.lines = lineno


def _scan_block(
    block: bytes,
    base: int,
    lineno: int,
    needles: tuple[bytes, ...],
    parser: LineParser,
    stats: ScanStats,
) -> Iterator[Event]:
    if needles:
        starts = _candidate_starts(block, needles)
    else:
        starts = [0]
        pos = block.find(b"\n")
        while pos != -1 and pos + 1 < len(block):
            starts.append(pos + 1)
            pos = block.find(b"\n", pos + 1)
    count = block.count
    find = block.find
    prev = 0
    for start in starts:
        lineno += count(b"\n", prev, start)
        prev = start
        end = find(b"\n", start)
        if end == -1:
            end = len(block)
        raw = block[start : min(end, start + MAX_LINE)]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if not raw.strip():
            continue
        stats.candidates += 1
        text = raw.decode("utf-8", "replace")
        loc = Location(parser.path, lineno + 1, base + start)
        if end - start > MAX_LINE:
            stats.add_issue(ParseIssue(loc, parser.name, "line longer than 2 MiB", text[:200]))
            continue
        try:
            event = parser.parse(text, loc)
        except LineError as exc:
            stats.add_issue(ParseIssue(loc, parser.name, str(exc) or "not understood", text[:200]))
            continue
        except Exception as exc:  # a parser bug must not lose the rest of the file
            stats.add_issue(
                ParseIssue(loc, parser.name, f"internal error: {type(exc).__name__}: {exc}", text[:200])
            )
            continue
        if event is not None:
            stats.events += 1
            yield event
