"""Helpers of the ripgrep scan path that touch only the open file and ripgrep's output.

:func:`plain_fd` decides whether ripgrep reads a file (and opens it, without
blocking); :func:`rg_lines` reads ripgrep's output in bounded pieces;
:func:`count_tail` and :func:`line_end` count what lies after the last
candidate in the same open file, so that a path deleted meanwhile changes nothing.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
from collections.abc import Iterator

BLOCK = 8 << 20
MAX_LINE = 2 << 20  # as the scanner's: ripgrep's --max-columns
RG_MEMORY = 64 << 20  # ripgrep's address space; a line it cannot hold sends the rest here
RG_READ = 1 << 16  # ripgrep's output is read in pieces of at most this many bytes
OMITTED = b" [... omitted end of long line]"


def plain_fd(path: str, min_bytes: int) -> int | None:
    """A descriptor on ``path`` when ripgrep should read it: a regular, uncompressed file of
    at least ``min_bytes`` (opened without blocking, so a FIFO never hangs), else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and st.st_size >= min_bytes:
            head = os.pread(fd, 6, 0)
            if not head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ")):
                return fd
    except OSError:
        pass
    os.close(fd)
    return None


def count_tail(fd: int, start: int) -> tuple[int, int, bool]:
    """(newlines, bytes, ends at a line end) of the open file from byte ``start`` to its end.

    A long tail is counted by ``wc -lc`` (memchr speed) reading the same open
    file, so that ripgrep's line numbers and this count give the file's line
    count without a second full pass, whatever happens to the path meanwhile.
    """
    size = os.fstat(fd).st_size
    if size - start > COUNT_HERE:
        try:
            with open(f"/proc/self/fd/{fd}", "rb") as fh:
                fh.seek(start)
                out = subprocess.run(["wc", "-lc"], stdin=fh, capture_output=True, check=True)
            lines, nbytes = (int(x) for x in out.stdout.split()[:2])
            end = start + nbytes
            return lines, nbytes, nbytes == 0 or os.pread(fd, 1, end - 1) == b"\n"
        except (OSError, subprocess.CalledProcessError, ValueError):
            pass  # no usable wc: count here
    lines = nbytes = 0
    last = b"\n"
    while block := os.pread(fd, BLOCK, start + nbytes):
        lines += block.count(b"\n")
        nbytes += len(block)
        last = block[-1:]
    return lines, nbytes, last == b"\n"


COUNT_HERE = 4 << 20  # tails up to this size are counted in Python


def rg_lines(stdout: io.BufferedReader) -> Iterator[bytes]:
    """ripgrep's output lines, read in bounded pieces; an over-long piece is dropped whole
    (ripgrep's ``--max-columns`` keeps real lines far shorter)."""
    dropping = False
    while piece := stdout.readline(RG_READ + MAX_LINE):
        if not piece.endswith(b"\n"):
            dropping = True
            continue
        if dropping:
            dropping = False
            continue
        yield piece


def line_end(fd: int, offset: int) -> int:
    """The offset just past the line that starts at ``offset`` (its newline included)."""
    pos = offset
    while block := os.pread(fd, BLOCK, pos):
        cut = block.find(b"\n")
        if cut >= 0:
            return pos + cut + 1
        pos += len(block)
    return pos
