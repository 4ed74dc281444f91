"""Plain-file reading for the pure-Python scan: candidate lines per block, on one or two cores.

Standard library only, so that the spawned worker process starts quickly.

A file is read in ``block``-sized pieces on a fixed grid (``start + k * block``);
each piece, after the partial line carried over from the previous one, is cut
at its last newline (a piece without any newline longer than ``max_line`` is cut
where it ends). The candidate lines of a cut block are those holding a needle.

Splitting for two cores keeps that exactly: the file is divided at grid points
``g`` (every ``segment`` bytes) whose preceding grid piece holds a newline. At
such a point the sequential reader's state is known without reading what comes
before: everything up to the line start ``L`` after that newline is consumed and
``data[L:g]`` is carried. So a segment ``[L, next g)`` read with that carry, on
the same grid, yields the very blocks the sequential reader would. This process
and one worker (``python -m`` this module) each claim the next free segment in
file order (an ``O_EXCL`` file per segment in a private directory). Rather than
wait for the worker's output, this process reads the next free segment ahead (at
most one), so the split follows whichever side is slower (this one also parses).
The worker sends back the candidate lines' bytes, offsets and line indices (not
events) through a pipe, whose fixed size bounds its lead; this process offers
them to the parser in file order, so events keep flowing early.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import select
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, astuple, dataclass, field
from typing import BinaryIO

from auditor.sources.files import SourceError

FLUSH = 1 << 20  # the worker sends its candidates in messages of about this many bytes
PIPE_SIZE = 1 << 20  # the worker's lead is bounded by what this pipe holds
TAIL = 1 << 16  # a segment boundary looks for its newline in this many bytes first


@dataclass(frozen=True)
class Tuning:
    """Sizes of the pure-Python scan (tests shrink them to reach every edge on small input)."""

    block: int = 8 << 20
    max_line: int = 2 << 20  # a longer piece without newline is cut where it ends
    segment: int = 32 << 20  # split points for two cores, rounded to whole blocks
    parallel_min: int = 64 << 20  # smaller files stay on one core (no process start-up)
    alternate: bool = False  # fixed split, the worker reads every odd segment (tests: no race)


@dataclass
class Batch:
    """Candidate lines of consecutive blocks: absolute offsets, line indices counted from
    the batch's first line, raw bytes without newline; and how many bytes and lines it spans."""

    nbytes: int = 0
    lines: int = 0
    offsets: list[int] = field(default_factory=list)
    linenos: list[int] = field(default_factory=list)
    raws: list[bytes] = field(default_factory=list)

    def extend(self, other: Batch) -> None:
        self.offsets += other.offsets
        self.linenos += [self.lines + k for k in other.linenos]
        self.raws += other.raws
        self.nbytes += other.nbytes
        self.lines += other.lines


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
    carry: bytes,
    stop: int | None,
    hold_partial: bool,
    needles: tuple[bytes, ...],
    tuning: Tuning,
) -> Iterator[Batch]:
    """One Batch per cut block, reading from ``fh``'s position (``base + len(carry)``).

    ``carry`` is what was already read from ``base`` (a line start). With ``stop``
    (a grid point) reading ends there and the partial line after the last cut is
    left for whoever reads on; without it the file is read to its end, where a
    final line without newline is taken unless ``hold_partial``.
    """
    size = tuning.block
    buf = bytearray(max(2 * size, len(carry) + size))
    buf[: len(carry)] = carry
    have = len(carry)
    pos = base + have  # where the next read starts
    start = base  # offset of buf[0]
    while True:
        want = size if stop is None else min(size, stop - pos)
        if want <= 0:
            return
        if have + want > len(buf):  # only when max_line exceeds block (small test sizes)
            buf.extend(bytes(have + want - len(buf)))
        with memoryview(buf) as view:
            got = _fill(fh, view, have, have + want)
        pos += got
        n = have + got
        if got:
            cut = buf.rfind(b"\n", 0, n) + 1
            if cut == 0 and n > tuning.max_line:
                cut = n  # an overlong line without newline: take it as it is
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
        if not got or (stop is not None and pos >= stop):
            return


Plan = list[tuple[int, int, int | None]]  # per segment: line start, grid point, where to stop


def plan_segments(fh: BinaryIO, start: int, size: int, tuning: Tuning) -> Plan:
    """Segments of ``[start, size)``: (line start L, grid point g, next segment's g or None).

    A segment is read from L with ``data[L:g]`` as carry. A grid point whose
    preceding piece has no newline (a line longer than a block) is no boundary.
    """
    step = max(1, tuning.segment // tuning.block) * tuning.block
    points = [(start, start)]
    g = start + step
    while g < size:
        for width in (min(TAIL, tuning.block), tuning.block):
            tail = os.pread(fh.fileno(), width, g - width)
            nl = tail.rfind(b"\n")
            if nl != -1:
                points.append((g - len(tail) + nl + 1, g))
                break
            if width == tuning.block or len(tail) < width:
                break
        g += step
    stops: list[int | None] = [g for _, g in points[1:]]
    return [(line, g, stop) for (line, g), stop in zip(points, [*stops, None], strict=True)]


def _segment(fh: BinaryIO, seg: tuple[int, int, int | None], hold_partial: bool,
             needles: tuple[bytes, ...], tuning: Tuning) -> Iterator[Batch]:
    line, g, stop = seg
    fh.seek(line)
    carry = fh.read(g - line)
    yield from read_blocks(fh, line, carry, stop, hold_partial, needles, tuning)


def claim(claims: str, n: int) -> bool:
    """Take segment ``n`` for this process; False when the other one has it."""
    try:
        os.close(os.open(os.path.join(claims, str(n)), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return False
    return True


def _reserve(claims: str, first: int, end: int, mine: set[int]) -> int | None:
    """Claim the first free segment from ``first`` on for this process."""
    for n in range(first, end):
        if n not in mine and claim(claims, n):
            mine.add(n)
            return n
    return None


def _work(out: BinaryIO, path: str, plan: Plan, claims: str, hold_partial: bool,
          needles: tuple[bytes, ...], tuning: Tuning) -> None:
    """The worker: the candidates of each segment it claims, in order, a ``None`` after each."""

    def send(msg: object) -> None:
        data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(len(data).to_bytes(8, "little"))
        out.write(data)
        out.flush()

    try:
        with open(path, "rb") as fh:
            for n, seg in enumerate(plan):
                if not (n % 2 if tuning.alternate else claim(claims, n)):
                    continue
                pending, held = Batch(), 0
                for batch in _segment(fh, seg, hold_partial, needles, tuning):
                    pending.extend(batch)
                    held += sum(map(len, batch.raws))
                    if held >= FLUSH:
                        send(astuple(pending))
                        pending, held = Batch(), 0
                if pending.nbytes:
                    send(astuple(pending))
                send(None)
    except BrokenPipeError:  # the parent stopped reading
        return
    except Exception as exc:  # the parent raises it as a SourceError
        send(f"{type(exc).__name__}: {exc}")


def _main() -> None:
    """Entry of ``python -m auditor.sources.scan_parallel``: the job arrives pickled on stdin."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it
    job = pickle.load(sys.stdin.buffer)
    _work(sys.stdout.buffer, job["path"], job["plan"], job["claims"], job["hold_partial"],
          job["needles"], Tuning(**job["tuning"]))


def _start(path: str, plan: Plan, claims: str, hold_partial: bool, needles: tuple[bytes, ...],
           tuning: Tuning) -> subprocess.Popen[bytes]:
    """A worker process reading ``plan``'s segments of ``path``."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (here, os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.Popen([sys.executable, "-m", "auditor.sources.scan_parallel"], bufsize=0,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    assert proc.stdin is not None and proc.stdout is not None
    # Room for the worker's lead: its output waits in the pipe, not in memory.
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    job = {"path": path, "plan": plan, "claims": claims, "hold_partial": hold_partial,
           "needles": needles, "tuning": asdict(tuning)}
    pickle.dump(job, proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
    proc.stdin.close()
    return proc


class _Inbox:
    """The worker's messages (8-byte length, then a pickle), readable without blocking."""

    def __init__(self, path: str, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.path, self.proc, self.fd = path, proc, proc.stdout.fileno()
        self.buf = bytearray()
        self.eof = False

    def _complete(self) -> bool:
        buf = self.buf
        return len(buf) >= 8 and len(buf) >= 8 + int.from_bytes(buf[:8], "little")

    def _read(self) -> None:
        chunk = os.read(self.fd, PIPE_SIZE)
        self.buf += chunk
        self.eof = not chunk

    def ready(self) -> bool:
        """A whole message (or the end) can be had without waiting."""
        while not self._complete() and not self.eof:
            if not select.select([self.fd], [], [], 0)[0]:
                return False
            self._read()
        return True

    def get(self) -> Batch | None:
        """The next message, waiting for it: a Batch, or None at the end of a segment."""
        while not self._complete():
            if self.eof:
                pipe = self.proc.stderr
                err = pipe.read().decode(errors="replace").strip() if pipe else ""
                last = err.splitlines()[-1] if err else f"exit code {self.proc.wait()}"
                raise SourceError(f"{self.path}: scan worker ended early: {last}")
            self._read()
        size = int.from_bytes(self.buf[:8], "little")
        msg = pickle.loads(self.buf[8 : 8 + size])
        del self.buf[: 8 + size]
        if msg is None:
            return None
        if isinstance(msg, str):
            raise SourceError(f"{self.path}: {msg}")
        return Batch(*msg)


def batches(
    path: str,
    fh: BinaryIO,
    needles: tuple[bytes, ...],
    start: int,
    hold_partial: bool,
    tuning: Tuning,
    parallel: bool,
) -> Iterator[Batch]:
    """The candidate Batches of a plain file from ``start`` (``fh`` is positioned there),
    in file order; with ``parallel``, every other segment is read by a worker process."""
    plan: Plan = [(start, start, None)]
    if parallel:
        plan = plan_segments(fh, start, os.fstat(fh.fileno()).st_size, tuning)
    if len(plan) < 2:
        yield from read_blocks(fh, start, b"", None, hold_partial, needles, tuning)
        return
    with tempfile.TemporaryDirectory(prefix="auditor-scan-") as claims:
        mine = {0}
        claim(claims, 0)
        proc = _start(path, plan, claims, hold_partial, needles, tuning)
        inbox = _Inbox(path, proc)
        ahead: dict[int, list[Batch]] = {}  # a segment of ours read early, at most one
        try:
            for n, seg in enumerate(plan):
                if n in ahead:
                    yield from ahead.pop(n)
                    continue
                if n in mine or (n % 2 == 0 if tuning.alternate else claim(claims, n)):
                    yield from _segment(fh, seg, hold_partial, needles, tuning)
                    continue
                while True:
                    if not tuning.alternate and not ahead and not inbox.ready():
                        # Rather than wait for the worker, read the next free segment now.
                        nxt = _reserve(claims, n + 1, len(plan), mine)
                        if nxt is not None:
                            early = _segment(fh, plan[nxt], hold_partial, needles, tuning)
                            ahead[nxt] = list(early)
                            continue
                    batch = inbox.get()
                    if batch is None:
                        break
                    yield batch
        finally:
            if proc.poll() is None:
                proc.kill()
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
            proc.wait()


if __name__ == "__main__":
    _main()
