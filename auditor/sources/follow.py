"""Following log files across runs and rotations: what to read, and from where.

For one configured log (its live path) the candidates are the live file and its
rotated siblings next to it (``x.log.1``, ``x.log.2.gz``, ``x.log-20261124``...).
Each candidate is paired with a saved entry (see :mod:`auditor.sources.checkpoint`) when
its first bytes match the entry's head fingerprint and its content can continue the
entry: an uncompressed file must be at least as long as the offset and hold the same
bytes just before it (a copy-truncated, then regrown file does not). When several
pairs are possible (files with the same head), the surest win: same device/inode,
then verified tail (or gzip size), then same mtime. So a renamed, copy-truncated or
compressed file resumes at its saved offset, while two distinct files with the same
head are both read. A candidate that is a copy of a file still present (gzip in
progress, copytruncate before the truncation) is left for later; any other new file
starts at 0. Fully read files that did not change are skipped unopened.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from auditor.models import Event
from auditor.parsers.base import LineParser
from auditor.sources.checkpoint import (
    TAIL_BYTES,
    AuditState,
    FileState,
    Head,
    file_head,
    new_identity,
    tail_print,
)
from auditor.sources.files import DECOMPRESS_ERRORS, SourceError
from auditor.sources.scan import ScanStats, scan

_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ")
SETTLED_SECONDS = 60.0  # a rotated, uncompressed file unchanged this long is complete


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """One file to read in this run, from ``entry.offset`` on."""

    path: str
    entry: FileState
    st: os.stat_result
    final: bool  # will not grow: read a last line without newline too
    new: bool  # not in the state before this run
    skip_before: datetime | None  # for new files: events older than this are left out
    compressed: bool = False


@dataclass
class FollowResult:
    """The plans of one input and the state entries it keeps unchanged."""

    plans: list[ReadPlan]
    kept: list[FileState]
    problems: list[str]


def _is_compressed(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(6).startswith(_COMPRESSED)
    except OSError:
        return False


def candidates(live: Path) -> list[Path]:
    """The live file and its rotated siblings, oldest first (live last)."""
    found: list[tuple[int, Path]] = []
    try:
        names = os.listdir(live.parent)
    except OSError:
        names = []
    prefix = (live.name + ".", live.name + "-")
    for name in names:
        if name.startswith(prefix) and not name.startswith("."):
            p = live.parent / name
            try:
                st = p.stat()
            except OSError:
                continue
            if p.is_file() and not name.endswith((".tmp", ".swp")):
                found.append((st.st_mtime_ns, p))
    # oldest first; among same mtime, plain before compressed so a half-written .gz loses
    found.sort(key=lambda t: (t[0], t[1].name.endswith((".gz", ".bz2", ".xz")), t[1].name))
    out = [p for _, p in found]
    if live.is_file():
        out.append(live)
    return out


@dataclass(frozen=True, slots=True)
class _Found:
    """A candidate file on disk, with what is needed to recognise it."""

    path: Path
    st: os.stat_result
    head: Head


def _mtime_s(ns: int) -> int:
    return ns // 10**9  # gzip and cp -p keep the mtime, at least to the second


def _score(c: _Found, e: FileState) -> tuple[int, int, int] | None:
    """How surely ``c`` is the file of entry ``e`` (None: it is not)."""
    if not c.head.matches(e):
        return None
    if c.head.compressed:  # decompressed size unknown without reading: trust the head
        strong = int(c.head.isize is not None and c.head.isize == e.size % (1 << 32))
    else:
        if c.st.st_size < e.offset:
            return None  # truncated (copytruncate) or replaced
        if e.tail:
            if tail_print(c.path, c.st, e.offset) != e.tail:
                return None  # truncated and regrown past the offset: other content
            strong = 1
        else:
            strong = 0
    same_inode = int((c.st.st_dev, c.st.st_ino) == (e.dev, e.ino) and not c.head.compressed)
    return same_inode, strong, int(_mtime_s(c.st.st_mtime_ns) == _mtime_s(e.mtime_ns))


def _match(found: list[_Found], known: dict[str, FileState]) -> dict[int, FileState]:
    """Pair candidates with entries, surest pairs first (index in ``found`` -> entry)."""
    pairs: list[tuple[tuple[int, ...], int, str]] = []
    for i, c in enumerate(found):
        for ident, e in known.items():
            score = _score(c, e)
            if score is not None:
                pairs.append((tuple(-x for x in score), i, ident))
    pairs.sort()
    out: dict[int, FileState] = {}
    used: set[str] = set()
    for _, i, ident in pairs:
        if i not in out and ident not in used:
            out[i] = known[ident]
            used.add(ident)
    return out


def _same_bytes(a: Path, b: Path, start: int, size: int) -> bool:
    try:
        with open(a, "rb") as fa, open(b, "rb") as fb:
            fa.seek(start)
            fb.seek(start)
            return fa.read(size) == fb.read(size)
    except OSError:
        return False


def _copy_of(c: _Found, e: FileState, holder: tuple[Path, os.stat_result]) -> bool:
    """Is ``c`` a copy of the file of ``e``, which is still there (at ``holder``)?

    A compressed copy of a file still there (gzip in progress, or keeping the
    original) has its first bytes and its mtime (or size); an uncompressed copy in
    progress (copytruncate before the truncation) is a prefix of it.
    """
    if not c.head.matches(e):
        return False
    path, st = holder
    if c.head.compressed:
        return (c.head.isize == st.st_size % (1 << 32)
                or _mtime_s(c.st.st_mtime_ns) == _mtime_s(st.st_mtime_ns))
    if _is_compressed(path) or c.st.st_size > st.st_size:
        return False
    n = min(c.st.st_size, TAIL_BYTES)
    return _same_bytes(c.path, path, c.st.st_size - n, n)


def plan_input(
    input_key: str,
    live: str,
    state: AuditState,
    cutoff: datetime | None,
    now: float | None = None,
    taken: set[str] | None = None,
) -> FollowResult:
    """What to read of one configured log, given the saved state.

    ``taken`` holds the identities in use (all inputs, retired ones, earlier inputs of
    this run); new identities are added to it. By default: those of ``state``.
    """
    now = time.time() if now is None else now
    if taken is None:
        taken = set(state.files) | set(state.retired)
    live_path = Path(live)
    known = {e.identity: e for e in state.files.values() if e.input == input_key}
    first_time = not known
    plans: list[ReadPlan] = []
    kept: list[FileState] = []
    problems: list[str] = []
    found: list[_Found] = []
    inodes: set[tuple[int, int]] = set()
    holders: dict[str, tuple[Path, os.stat_result]] = {}  # claimed entries: where they are
    for path in candidates(live_path):
        try:
            st = path.stat()
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in inodes:
            continue  # a second name (hard link) of a file already listed
        inodes.add((st.st_dev, st.st_ino))
        done = next((e for e in known.values() if e.unchanged(st)), None)
        if done is not None:
            if done.identity not in holders:
                holders[done.identity] = (path, st)
                kept.append(done)
            continue
        try:
            head = file_head(path, st)
        except (SourceError, *DECOMPRESS_ERRORS) as exc:
            problems.append(f"{path}: cannot read ({exc})")
            # keep its entry, so that the file resumes where it was once readable again
            for e in known.values():
                if (e.dev, e.ino) == (st.st_dev, st.st_ino) and e.identity not in holders:
                    holders[e.identity] = (path, st)
                    kept.append(e)
            continue
        if head.first_line is None:
            continue  # no complete first line yet
        found.append(_Found(path, st, head))
    matched = _match(found, {k: e for k, e in known.items() if k not in holders})
    holders.update({e.identity: (found[i].path, found[i].st) for i, e in matched.items()})
    for i, c in enumerate(found):
        path, st, head = c.path, c.st, c.head
        is_live = path == live_path
        final = head.compressed or (not is_live and now - st.st_mtime > SETTLED_SECONDS)
        entry = matched.get(i)
        if entry is not None:
            entry = entry.with_head(head)
            if entry.offset < 0:  # left out on the first run (older than --since)
                kept.append(entry.advanced(str(path), -1, 0, st, True))
            else:
                plans.append(ReadPlan(str(path), entry, st, final, False, None, head.compressed))
            continue
        if any(_copy_of(c, known[k], h) for k, h in holders.items() if k in known):
            continue  # a copy of a file still there: read once the original is gone
        identity = new_identity(head, st, taken)
        taken.add(identity)
        entry = FileState(identity, str(path), input_key).with_head(head)
        if first_time and cutoff is not None and not is_live and st.st_mtime < cutoff.timestamp():
            kept.append(entry.advanced(str(path), -1, 0, st, True))
            continue
        plans.append(ReadPlan(str(path), entry, st, final, True, cutoff, head.compressed))
    return FollowResult(plans, kept, problems)


def read_plan(plan: ReadPlan, parser: LineParser, stats: ScanStats) -> Iterator[Event]:
    """The events of ``plan``; afterwards :func:`finished` gives the new state entry."""
    for event in scan(
        plan.path,
        parser,
        stats,
        start_offset=plan.entry.offset,
        start_line=plan.entry.line,
        hold_partial=not plan.final,
    ):
        if plan.skip_before is not None and event.timestamp < plan.skip_before:
            continue
        yield event


def finished(plan: ReadPlan, stats: ScanStats) -> FileState:
    """The state entry after ``plan`` was read completely."""
    offset = plan.entry.offset + stats.bytes
    tail = "" if plan.compressed else tail_print(plan.path, plan.st, offset)
    return plan.entry.advanced(plan.path, offset, stats.lines, plan.st, plan.final, tail)
