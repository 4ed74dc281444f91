"""Following log files across runs and rotations: what to read, and from where.

For one configured log (its live path) the candidates are the live file and its
rotated siblings next to it (``x.log.1``, ``x.log.2.gz``, ``x.log-20261124``...).
Each is matched to the saved state by its identity (see :mod:`auditor.sources.state`),
so a renamed, copy-truncated or compressed file resumes at its saved offset, and a
new file starts at 0. Fully read files that did not change are skipped unopened.
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
from auditor.sources.files import DECOMPRESS_ERRORS, SourceError
from auditor.sources.scan import ScanStats, scan
from auditor.sources.state import AuditState, FileState, file_identity

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


def plan_input(
    input_key: str,
    live: str,
    state: AuditState,
    cutoff: datetime | None,
    now: float | None = None,
) -> FollowResult:
    """What to read of one configured log, given the saved state."""
    now = time.time() if now is None else now
    live_path = Path(live)
    known = {e.identity: e for e in state.files.values() if e.input == input_key}
    first_time = not known
    plans: list[ReadPlan] = []
    kept: list[FileState] = []
    problems: list[str] = []
    seen: set[str] = set()
    for path in candidates(live_path):
        try:
            st = path.stat()
        except OSError:
            continue
        done = next((e for e in known.values() if e.unchanged(st)), None)
        if done is not None:
            if done.identity not in seen:
                seen.add(done.identity)
                kept.append(done)
            continue
        try:
            identity = file_identity(path)
        except (SourceError, *DECOMPRESS_ERRORS) as exc:
            problems.append(f"{path}: cannot read ({exc})")
            continue
        if identity is None or identity in seen:
            continue
        seen.add(identity)
        compressed = _is_compressed(path)
        is_live = path == live_path
        final = compressed or (not is_live and now - st.st_mtime > SETTLED_SECONDS)
        entry = known.get(identity)
        if entry is not None:
            if entry.offset < 0:  # left out on the first run (older than --since)
                kept.append(entry.advanced(str(path), -1, 0, st, True))
                continue
            if not compressed and st.st_size < entry.offset:
                problems.append(f"{path}: shrank below the saved offset; reading it from the start")
                entry = FileState(identity, str(path), input_key)
            plans.append(ReadPlan(str(path), entry, st, final, False, None))
            continue
        entry = FileState(identity, str(path), input_key)
        if first_time and cutoff is not None and not is_live and st.st_mtime < cutoff.timestamp():
            kept.append(entry.advanced(str(path), -1, 0, st, True))
            continue
        plans.append(ReadPlan(str(path), entry, st, final, True, cutoff))
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
    return plan.entry.advanced(
        plan.path, plan.entry.offset + stats.bytes, stats.lines, plan.st, plan.final
    )
