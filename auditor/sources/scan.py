"""The streaming scanner: feeds a parser the lines that can matter, in constant memory.

Two interchangeable paths find the candidate lines (those holding one of the
parser's needles):

* ripgrep, when it is installed and the file is plain and at least 1 MiB (a
  smaller file costs less than a process start): ``rg -F`` with every needle
  runs at memory speed and reports each line's number and byte offset; the
  lines after the last candidate are counted afterwards (``wc -lc`` when many),
  which gives the file's line count. ripgrep reads the file already opened here
  (``/dev/fd/N``), so a path deleted meanwhile changes nothing; it prints at most
  2 MiB of a line (``--max-columns``), its output is read in bounded pieces, and
  it runs in a 64 MiB address space: a line it cannot hold ends it, and the
  rest of the file is read by the Python path;
* pure Python otherwise (compressed input, ``AUDITOR_NO_RG=1``, no rg): 8 MiB
  blocks searched with ``bytes.find`` per needle (:mod:`auditor.sources.blocks`).

Both yield the same events with the same line numbers and byte offsets; only
candidate lines are decoded and offered to the parser. A line longer than
2 MiB is counted as not understood, with its location, and never held whole.
A file deleted, replaced or resized during the scan gets a note in its issues
(not counted as a line not understood); the scan still completes.
"""

from __future__ import annotations

import contextlib
import io
import os
import resource
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from auditor.models import Event, Location, ParseIssue
from auditor.parsers.base import LineError, LineParser
from auditor.sources.blocks import Tuning, read_blocks
from auditor.sources.files import DECOMPRESS_ERRORS, SourceError, open_binary
from auditor.sources.rg_tail import (
    OMITTED,
    RG_MEMORY,
    RG_READ,
    count_tail,
    line_end,
    plain_fd,
    rg_lines,
)

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
    fd = plain_fd(path, RG_MIN_BYTES) if needles and not resuming else None
    rg = _ripgrep() if fd is not None else None
    if rg is None and fd is not None:
        os.close(fd)
    if rg is not None and fd is not None:
        try:
            resume = yield from _scan_rg(rg, fd, path, needles, parser, stats, progress)
        finally:
            os.close(fd)
        if resume is None:
            return
        # ripgrep could not hold a line in its memory budget: the rest is read here.
        start_offset, start_line = resume
    watch = _Watch.start(path)
    yield from _scan_python(
        path, parser, stats, progress, needles, start_offset, start_line, hold_partial, tuning
    )
    watch.finish(path, stats, parser, growing=hold_partial)


def _scan_python(
    path: str,
    parser: LineParser,
    stats: ScanStats,
    progress: Callable[[int], None] | None,
    needles: tuple[bytes, ...],
    start_offset: int,
    start_line: int,
    hold_partial: bool,
    tuning: Tuning,
) -> Iterator[Event]:
    """The pure-Python path: blocks of the plain or decompressed stream (:mod:`blocks`)."""
    max_line = tuning.max_line
    with open_binary(path) as fh:
        if start_offset:
            fh.seek(start_offset)
        # An archive is read one decompressed piece at a time, so that a corrupt tail
        # costs only the lines after the damage, not the whole block before it.
        source = fh if isinstance(fh, io.BufferedReader) else _Guarded(fh)
        lineno = stats.lines = start_line
        for batch in read_blocks(source, start_offset, hold_partial, needles, tuning):  # type: ignore[arg-type]
            if progress is not None:
                progress(batch.nbytes)
            stats.bytes += batch.nbytes
            for offset, k, raw in zip(batch.offsets, batch.linenos, batch.raws, strict=True):
                event = _offer(raw, lineno + k + 1, offset, parser, stats, max_line)
                if event is not None:
                    yield event
            lineno += batch.lines
        stats.lines = lineno
        if isinstance(source, _Guarded) and source.error is not None:
            where = Location(parser.path, lineno, start_offset + stats.bytes)
            stats.add_issue(ParseIssue(where, parser.name, f"cannot read further: {source.error}"))


class _Guarded:
    """A decompressing reader whose damage ends the stream instead of raising (kept in
    ``error``); read one decompressed piece at a time."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.error: Exception | None = None

    def readinto(self, view: memoryview) -> int:
        if self.error is not None:
            return 0
        try:
            data = self.fh.read1(len(view))  # type: ignore[attr-defined]
        except DECOMPRESS_ERRORS as exc:  # truncated or corrupt archive
            self.error = exc
            return 0
        view[: len(data)] = data
        return len(data)


def _ripgrep() -> str | None:
    """ripgrep on PATH, or beside this Python (``pip install auditor[fast]`` in a venv)."""
    if os.environ.get("AUDITOR_NO_RG"):
        return None
    beside = os.path.join(os.path.dirname(sys.executable), "rg")
    return shutil.which("rg") or (beside if os.access(beside, os.X_OK) else None)


RG_MIN_BYTES = 1 << 20  # smaller files are read here: a process start costs more than them
@dataclass(frozen=True, slots=True)
class _Watch:
    """The file as it was when the scan began, to report one deleted or changed under it."""

    ident: tuple[int, int] | None
    size: int

    @classmethod
    def start(cls, path: str, fd: int | None = None) -> _Watch:
        try:
            st = os.fstat(fd) if fd is not None else os.stat(path)
        except OSError:
            return cls(None, 0)
        return cls((st.st_dev, st.st_ino), st.st_size if stat.S_ISREG(st.st_mode) else -1)

    def finish(
        self, path: str, stats: ScanStats, parser: LineParser, growing: bool = False
    ) -> None:
        """Note (not counted as a line not understood) a file deleted, replaced or resized
        (``growing``: a log followed as it is written; only its deletion is news)."""
        if self.ident is None or self.size < 0:
            return
        where = Location(parser.path, stats.lines)
        try:
            st = os.stat(path)
        except OSError:
            st = None
        if st is None or (st.st_dev, st.st_ino) != self.ident:
            why = "file deleted or replaced during the scan: read as it was when opened"
        elif st.st_size != self.size and not growing:
            why = (
                f"file changed size during the scan ({self.size} bytes at start, "
                f"{st.st_size} now): read up to byte {stats.bytes}"
            )
        else:
            return
        stats.issues.append(ParseIssue(where, parser.name, why))


def _scan_rg(
    rg: str,
    fd: int,
    path: str,
    needles: tuple[bytes, ...],
    parser: LineParser,
    stats: ScanStats,
    progress: Callable[[int], None] | None,
) -> Generator[Event, None, tuple[int, int] | None]:
    """ripgrep reads the open file ``fd`` (so a deleted path does not matter) in bounded memory.

    Returns None when done, or (offset, lines before it) to resume from when ripgrep
    could not hold a line within RG_MEMORY (the Python path then reads the rest)."""
    watch = _Watch.start(path, fd)
    cmd = [
        rg, "--no-config", "--no-mmap", "-F", "-a", "-n", "-b", "--no-heading", "--no-filename",
        "--color", "never", "--no-messages",
        "--max-columns", str(MAX_LINE), "--max-columns-preview",
    ]  # fmt: skip
    for needle in needles:
        cmd += ["-e", needle.decode("utf-8", "surrogateescape")]
    cmd.append(f"/dev/fd/{fd}")
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=RG_READ, pass_fds=(fd,)
    )
    with contextlib.suppress(OSError):  # set at once: ripgrep has allocated little yet
        resource.prlimit(proc.pid, resource.RLIMIT_AS, (RG_MEMORY, RG_MEMORY))
    assert proc.stdout is not None
    parse, source = parser.parse, parser.path
    # Where the lines received so far end: (offset after them, lines before that offset).
    done = (0, 0)
    off = 0
    try:
        for out in rg_lines(proc.stdout):  # type: ignore[arg-type]
            a, b, raw = out.split(b":", 2)  # rg -n -b: "line:offset:text\n"
            num, off = int(a), int(b)
            raw = raw[:-1]
            if len(raw) > MAX_LINE and raw.endswith(OMITTED):  # ripgrep's cut of a long line
                stats.candidates += 1
                text = raw[:200].decode("utf-8", "replace")
                loc = Location(source, num, off)
                stats.add_issue(ParseIssue(loc, parser.name, _too_long(MAX_LINE), text))
                done = (-1, num)  # its end is unknown: only a later line tells it
                continue
            done = (off + len(raw) + 1, num)
            if not raw or raw.endswith(b"\r") or raw.isspace():
                event = _offer(raw, num, off, parser, stats)
            else:  # _offer's common case, inline: this loop runs once per candidate line
                stats.candidates += 1
                loc = Location(source, num, off)
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
            err = proc.stderr.read(1 << 16)
            proc.stderr.close()
        code = proc.wait()
    if code not in (0, 1):
        if "memory allocation" in err.decode(errors="replace") or code < 0:
            return _resume_after(fd, done, off, stats)
        raise SourceError(f"{path}: ripgrep failed: {err.decode(errors='replace').strip()}")
    start = min(done[0] if done[0] >= 0 else line_end(fd, off), os.fstat(fd).st_size)
    newlines, nbytes, ended = count_tail(fd, start)
    stats.lines = done[1] + newlines + (0 if ended else 1)
    stats.bytes = start + nbytes
    if progress is not None:
        progress(stats.bytes)
    watch.finish(path, stats, parser)
    return None


def _resume_after(
    fd: int, done: tuple[int, int], off: int, stats: ScanStats
) -> tuple[int, int]:
    """Where the Python path takes over after ripgrep gave up on a line too long for it."""
    start = done[0] if done[0] >= 0 else line_end(fd, off)
    stats.bytes = start
    return start, done[1]


def _offer(
    raw: bytes,
    lineno: int,
    offset: int,
    parser: LineParser,
    stats: ScanStats,
    max_line: int = MAX_LINE,
) -> Event | None:
    """Hand one candidate line to the parser; count events and issues."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if not raw or raw.isspace():  # as `not raw.strip()`, without the copy
        return None
    stats.candidates += 1
    loc = Location(parser.path, lineno, offset)
    if len(raw) > max_line:
        text = raw[:200].decode("utf-8", "replace")
        stats.add_issue(ParseIssue(loc, parser.name, _too_long(max_line), text))
        return None
    text = raw.decode("utf-8", "replace")
    try:
        event = parser.parse(text, loc)
    except Exception as exc:
        _failed(exc, loc, text, parser, stats)
        return None
    if event is not None:
        stats.events += 1
    return event


def _too_long(max_line: int) -> str:
    size = f"{max_line >> 20} MiB" if max_line % (1 << 20) == 0 else f"{max_line} bytes"
    return f"line longer than {size} (not read further)"


def _failed(exc: Exception, loc: Location, text: str, parser: LineParser, stats: ScanStats) -> None:
    """Count a line the parser refused (LineError) or failed on (a bug: the file goes on)."""
    if isinstance(exc, LineError):
        reason = str(exc) or "not understood"
    else:
        reason = f"internal error: {type(exc).__name__}: {exc}"
    stats.add_issue(ParseIssue(loc, parser.name, reason, text[:200]))

