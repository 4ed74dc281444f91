"""The streaming scanner: feeds a parser the lines that can matter, in constant memory.

Two interchangeable paths find the candidate lines (those holding one of the
parser's needles):

* ripgrep, when it is installed and the file is plain: ``rg -F`` with every
  needle runs at memory speed and reports each line's number and byte offset;
  the lines after the last candidate are counted afterwards (``wc -l`` when
  many), which gives the file's line count;
* pure Python otherwise (compressed input, ``AUDITOR_NO_RG=1``, no rg): 8 MiB
  blocks searched with ``bytes.find`` per needle; a large plain file is split
  between this process and a worker (see :mod:`auditor.sources.scan_parallel`;
  ``AUDITOR_NO_PARALLEL=1`` keeps it on one core).

Both yield the same events with the same line numbers and byte offsets; only
candidate lines are decoded and offered to the parser.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from auditor.models import Event, Location, ParseIssue
from auditor.parsers.base import LineError, LineParser
from auditor.sources.files import DECOMPRESS_ERRORS, SourceError, open_binary
from auditor.sources.scan_parallel import Tuning, batches, block_lines

TUNING = Tuning()
BLOCK = TUNING.block
MAX_LINE = TUNING.max_line  # longer lines are cut here (and reported) to keep memory bounded
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


def scan(
    path: str,
    parser: LineParser,
    stats: ScanStats,
    progress: Callable[[int], None] | None = None,
    every_line: bool = False,
    start_offset: int = 0,
    start_line: int = 0,
    hold_partial: bool = False,
    tuning: Tuning = TUNING,
) -> Iterator[Event]:
    """Yield the events of one file. ``every_line`` offers every line to the parser.

    ``start_offset``/``start_line`` resume where an earlier scan stopped (a byte
    offset at a line start in the decompressed stream, and the count of lines
    before it) so line numbers stay true; ``hold_partial`` leaves a final line
    without newline unread (its writer may still be appending). Afterwards
    ``start_offset + stats.bytes`` and ``stats.lines`` say where to resume.
    ``tuning`` sets the pure-Python path's sizes (tests shrink them).
    """
    needles = () if every_line else parser.needles
    resuming = bool(start_offset or start_line or hold_partial)
    rg = _ripgrep() if needles and not resuming else None
    if rg is not None and _is_plain(path):
        yield from _scan_rg(rg, path, needles, parser, stats, progress)
        return
    with open_binary(path) as fh:
        if start_offset:
            fh.seek(start_offset)
        if isinstance(fh, io.BufferedReader):
            yield from _scan_plain(path, fh, needles, parser, stats, progress,
                                   start_offset, start_line, hold_partial, tuning)
            return
        carry = b""
        lineno = start_line  # lines fully consumed before the current block
        base = start_offset  # byte offset of the current block's start in the (decompressed) stream
        stats.lines = start_line
        # An archive is read one decompressed piece at a time, so that a corrupt tail
        # costs only the lines after the damage, not the whole block before it.
        read = fh.read1  # type: ignore[attr-defined]
        broken = False
        while True:
            try:
                chunk = b"" if broken else read(tuning.block)
            except DECOMPRESS_ERRORS as exc:  # truncated or corrupt archive
                where = Location(parser.path, lineno + 1, base + len(carry))
                stats.add_issue(ParseIssue(where, parser.name, f"cannot read further: {exc}"))
                chunk, broken = b"", True
            if not chunk and (not carry or hold_partial):
                break
            block = carry + chunk if carry else chunk
            if chunk:
                cut = block.rfind(b"\n") + 1
                if cut == 0 and len(block) > tuning.max_line:
                    cut = len(block)  # an overlong line without newline: take it as it is
                block, carry = block[:cut], block[cut:]
            else:
                carry = b""  # final line without newline
            if not block:
                continue
            if progress is not None:
                progress(len(block))
            stats.bytes += len(block)
            starts, idx, raws, nl = block_lines(block, len(block), needles)
            for start, k, raw in zip(starts, idx, raws, strict=True):
                event = _offer(raw, lineno + k + 1, base + start, parser, stats)
                if event is not None:
                    yield event
            lineno += nl + (0 if block.endswith(b"\n") else 1)
            base += len(block)
        stats.lines = lineno


def _scan_plain(
    path: str,
    fh: io.BufferedReader,
    needles: tuple[bytes, ...],
    parser: LineParser,
    stats: ScanStats,
    progress: Callable[[int], None] | None,
    start_offset: int,
    start_line: int,
    hold_partial: bool,
    tuning: Tuning,
) -> Iterator[Event]:
    """The pure-Python path on an uncompressed file (split over two cores when large)."""
    lineno = stats.lines = start_line
    parallel = bool(needles) and _parallel_ok(fh, start_offset, tuning)
    for batch in batches(path, fh, needles, start_offset, hold_partial, tuning, parallel):
        if progress is not None:
            progress(batch.nbytes)
        stats.bytes += batch.nbytes
        for offset, k, raw in zip(batch.offsets, batch.linenos, batch.raws, strict=True):
            event = _offer(raw, lineno + k + 1, offset, parser, stats)
            if event is not None:
                yield event
        lineno += batch.lines
    stats.lines = lineno


def _parallel_ok(fh: io.BufferedReader, start_offset: int, tuning: Tuning) -> bool:
    """Worth a second process: a large regular file, and a second core to run it on."""
    if os.environ.get("AUDITOR_NO_PARALLEL") or len(os.sched_getaffinity(0)) < 2:
        return False
    st = os.fstat(fh.fileno())
    return stat.S_ISREG(st.st_mode) and st.st_size - start_offset >= tuning.parallel_min


def _ripgrep() -> str | None:
    """ripgrep on PATH, or beside this Python (``pip install auditor[fast]`` in a venv)."""
    if os.environ.get("AUDITOR_NO_RG"):
        return None
    beside = os.path.join(os.path.dirname(sys.executable), "rg")
    return shutil.which("rg") or (beside if os.access(beside, os.X_OK) else None)


def _is_plain(path: str) -> bool:
    """A regular, uncompressed file (ripgrep reads it directly)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
        return os.path.isfile(path) and not head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ"))
    except OSError:
        return False


def _newlines_from(path: str, start: int) -> int:
    """How many newlines the file holds from byte ``start`` on.

    A short tail is counted here; a long one by ``wc -l`` (memchr speed), so
    that ripgrep's line numbers and this count give the file's line count
    without a second full pass when candidates reach near the end.
    """
    with open(path, "rb") as fh:
        fh.seek(start)
        if os.path.getsize(path) - start > COUNT_HERE:
            try:
                out = subprocess.run(["wc", "-l"], stdin=fh, capture_output=True, check=True)
                return int(out.stdout.split()[0])
            except (OSError, subprocess.CalledProcessError, ValueError, IndexError):
                fh.seek(start)  # no usable wc: count here
        return sum(block.count(b"\n") for block in iter(lambda: fh.read(BLOCK), b""))


COUNT_HERE = 4 << 20  # tails up to this size are counted in Python


def _scan_rg(
    rg: str,
    path: str,
    needles: tuple[bytes, ...],
    parser: LineParser,
    stats: ScanStats,
    progress: Callable[[int], None] | None,
) -> Iterator[Event]:
    size = os.path.getsize(path)
    cmd = [
        rg,
        "--no-config",
        "--no-mmap",  # buffered reads: rg's memory stays small whatever the file size
        "-F",
        "-a",
        "-n",
        "-b",
        "--no-heading",
        "--no-filename",
        "--color",
        "never",
        "--no-messages",
    ]
    for needle in needles:
        cmd += ["-e", needle.decode("utf-8", "surrogateescape")]
    cmd.append(path)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=1 << 20)
    assert proc.stdout is not None
    parse, source = parser.parse, parser.path
    num = off = b"0"  # the last candidate's line number and offset (lines before it: num - 1)
    try:
        for out in proc.stdout:
            num, off, raw = out.split(b":", 2)  # rg -n -b: "line:offset:text\n"
            raw = raw.rstrip(b"\n")
            if not raw or raw.endswith(b"\r") or len(raw) > MAX_LINE or raw.isspace():
                event = _offer(raw, int(num), int(off), parser, stats)
            else:  # _offer's common case, inline: this loop runs once per candidate line
                stats.candidates += 1
                loc = Location(source, int(num), int(off))
                text = raw.decode("utf-8", "replace")
                try:
                    event = parse(text, loc)
                except Exception as exc:  # reported as _offer does
                    _failed(exc, loc, text, parser, stats)
                    continue
                if event is not None:
                    stats.events += 1
            if event is not None:
                yield event
    finally:
        proc.stdout.close()
        err = b""
        if proc.stderr is not None:
            err = proc.stderr.read()
            proc.stderr.close()
        code = proc.wait()
    if code not in (0, 1):
        raise SourceError(f"{path}: ripgrep failed: {err.decode(errors='replace').strip()}")
    newlines = max(int(num) - 1, 0) + _newlines_from(path, int(off))
    with open(path, "rb") as fh:
        if size:
            fh.seek(size - 1)
            unterminated = fh.read(1) != b"\n"
        else:
            unterminated = False
    stats.lines = newlines + int(unterminated)
    stats.bytes = size
    if progress is not None:
        progress(size)


def _offer(
    raw: bytes, lineno: int, offset: int, parser: LineParser, stats: ScanStats
) -> Event | None:
    """Hand one candidate line to the parser; count events and issues."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if not raw or raw.isspace():  # as `not raw.strip()`, without the copy
        return None
    stats.candidates += 1
    loc = Location(parser.path, lineno, offset)
    text = raw[:MAX_LINE].decode("utf-8", "replace")
    if len(raw) > MAX_LINE:
        stats.add_issue(ParseIssue(loc, parser.name, "line longer than 2 MiB", text[:200]))
        return None
    try:
        event = parser.parse(text, loc)
    except Exception as exc:
        _failed(exc, loc, text, parser, stats)
        return None
    if event is not None:
        stats.events += 1
    return event


def _failed(exc: Exception, loc: Location, text: str, parser: LineParser, stats: ScanStats) -> None:
    """Count a line the parser refused (LineError) or failed on (a bug: the file goes on)."""
    if isinstance(exc, LineError):
        reason = str(exc) or "not understood"
    else:
        reason = f"internal error: {type(exc).__name__}: {exc}"
    stats.add_issue(ParseIssue(loc, parser.name, reason, text[:200]))

