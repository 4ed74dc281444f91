"""Reading a plain or decompressed stream in blocks for the pure-Python scan.

Standard library only. A stream is read in ``block``-sized pieces; each piece,
after the partial line carried over from the previous one, is cut at its last
newline, and the candidate lines of a cut block (those holding a needle) are
returned with their offsets and line indices.

A line longer than ``max_line`` that does not fit a block is never held whole:
its first ``max_line + 1`` bytes are kept (the scanner reports it as too long,
with its location) and the rest is skipped piece by piece up to its newline,
watching for a needle as ripgrep would; it counts as one line. Memory stays
about two blocks whatever the line.

(A two-process variant of this reader existed; measured on the 2-core test
machine with ``tests/benchmarks/bench_parse.py --size 256M --repeat 3`` it was
slower than this one on every log: syslog 5.70 s against 3.96 s, nginx error
9.50 s against 6.76 s, nginx access 5.90 s against 4.98 s; it was removed.)
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO


@dataclass(frozen=True)
class Tuning:
    """Sizes of the pure-Python scan (tests shrink them to reach every edge on small input)."""

    block: int = 8 << 20
    max_line: int = 2 << 20  # a longer line is reported and skipped, never held whole


@dataclass
class Batch:
    """Candidate lines of consecutive blocks: absolute offsets, line indices counted from
    the batch's first line, raw bytes without newline; and how many bytes and lines it spans."""

    nbytes: int = 0
    lines: int = 0
    offsets: list[int] = field(default_factory=list)
    linenos: list[int] = field(default_factory=list)
    raws: list[bytes] = field(default_factory=list)


def block_lines(
    buf: bytes | bytearray, cut: int, needles: tuple[bytes, ...]
) -> tuple[list[int], list[int], list[bytes], int]:
    """Candidate lines of ``buf[:cut]`` (every line when ``needles`` is empty).

    Returns their start offsets (ascending, unique), their line indices (newlines
    before them), their bytes without newline, and the newlines in ``buf[:cut]``.
    """
    find, rfind, count = buf.find, buf.rfind, buf.count
    if needles:
        found: set[int] = set()
        for needle in needles:
            pos = find(needle, 0, cut)
            while pos != -1:
                found.add(rfind(b"\n", 0, pos) + 1)
                end = find(b"\n", pos, cut)
                if end == -1:
                    break
                pos = find(needle, end + 1, cut)
        starts = sorted(found)
    else:
        starts = [0] if cut else []
        pos = find(b"\n", 0, cut)
        while pos != -1 and pos + 1 < cut:
            starts.append(pos + 1)
            pos = find(b"\n", pos + 1, cut)
    view = memoryview(buf)
    idx: list[int] = []
    raws: list[bytes] = []
    newlines = prev = 0
    for start in starts:
        newlines += count(b"\n", prev, start)
        idx.append(newlines)
        end = find(b"\n", start, cut)
        prev = cut if end == -1 else end
        raws.append(bytes(view[start:prev]))
    view.release()
    newlines += count(b"\n", prev, cut)  # each byte is counted once
    return starts, idx, raws, newlines


def _fill(fh: BinaryIO, view: memoryview, lo: int, hi: int) -> int:
    """Read into ``view[lo:hi]`` until full or end of file; the bytes read."""
    at = lo
    while at < hi:
        got = fh.readinto(view[at:hi])  # type: ignore[attr-defined]
        if not got:
            break
        at += got
    return at - lo


def read_blocks(
    fh: BinaryIO,
    base: int,
    hold_partial: bool,
    needles: tuple[bytes, ...],
    tuning: Tuning,
) -> Iterator[Batch]:
    """One Batch per cut block, reading from ``fh``'s position (offset ``base``, a line start)
    to its end, where a final line without newline is taken unless ``hold_partial``."""
    size = tuning.block
    try:  # a small file gets a small buffer: allocating two blocks would cost more than it
        left = os.fstat(fh.fileno()).st_size - base
        hint = left + 1 if left >= 0 and stat.S_ISREG(os.fstat(fh.fileno()).st_mode) else None
    except (AttributeError, OSError, ValueError):
        hint = None
    size = size if hint is None else min(size, max(hint, 1 << 16))
    buf = bytearray(2 * size)
    have = 0
    start = base  # offset of buf[0]
    long: _Long | None = None  # inside a line longer than a block: its start, head, match
    while True:
        if have + size > len(buf):  # only when max_line exceeds block (small test sizes)
            buf.extend(bytes(have + size - len(buf)))
        with memoryview(buf) as view:
            got = _fill(fh, view, have, have + size)
        n = have + got
        if long is not None:  # skipping the rest of an over-long line, in bounded memory
            end = buf.find(b"\n", 0, n)
            if end == -1 and got:
                keep = min(long.overlap, n)
                long.see(buf, n)
                long.skipped += n - keep
                buf[:keep] = buf[n - keep : n]
                have = keep
                continue
            if end == -1 and hold_partial:  # its writer may still be appending: left unread
                return
            stop = n if end == -1 else end + 1
            long.see(buf, stop)
            yield long.batch(long.skipped + stop)
            start += long.skipped + stop
            buf[: n - stop] = buf[stop:n]
            n = have = n - stop
            long = None  # what follows the line is cut as any block
        if got:
            cut = buf.rfind(b"\n", 0, n) + 1
            if cut == 0 and n > tuning.max_line + 1:  # longer than max_line even without a \r
                long = _Long(start, bytes(buf[: tuning.max_line + 2]), needles)
                have = n
                continue
        else:
            cut = 0 if hold_partial else n  # a final line without newline
        if cut:
            starts, idx, raws, newlines = block_lines(buf, cut, needles)
            lines = newlines + (0 if buf[cut - 1] == 0x0A else 1)
            yield Batch(cut, lines, [start + s for s in starts], idx, raws)
            start += cut
            buf[: n - cut] = buf[cut:n]
            have = n - cut
        else:
            have = n
        if not got:
            return


@dataclass
class _Long:
    """A line longer than a block: only its head is kept (offered, and reported as too long);
    whether a needle occurs anywhere in it decides, as for ripgrep, if it is a candidate."""

    start: int
    head: bytes
    needles: tuple[bytes, ...]
    matched: bool = False
    skipped: int = 0  # bytes of it passed over so far (counted when the line ends)

    @property
    def overlap(self) -> int:
        """Bytes kept between pieces so that a needle across two is still seen."""
        return max((len(n) for n in self.needles), default=1) - 1

    def see(self, buf: bytearray, n: int) -> None:
        if not self.matched:
            self.matched = not self.needles or any(buf.find(x, 0, n) != -1 for x in self.needles)

    def batch(self, nbytes: int) -> Batch:
        """The piece that ends the line: one line, a candidate when a needle was in it."""
        if not self.matched:
            return Batch(nbytes, 1)
        return Batch(nbytes, 1, [self.start], [0], [self.head])
