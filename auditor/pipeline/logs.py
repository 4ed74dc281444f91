"""Logs -> events, the one way every command reads them.

A log file is dated by its own time: year-less stamps (RFC 3164 syslog, nginx
never lacks one) are anchored on the file's modification time, whichever
command reads it (``parse``, ``diagnose``, the scheduled ``audit``). Every file
read leaves a :class:`~auditor.sources.scan.ScanStats` (lines, events, lines not
understood) and a :class:`SourceInfo` line for the report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from auditor.bundle.inputs import Artifact, Inputs
from auditor.correlate.report import SourceInfo
from auditor.models import Event
from auditor.parsers import detect, registry
from auditor.parsers.base import LineParser, ParseContext
from auditor.sources.files import SourceError, read_head, walk
from auditor.sources.scan import ScanStats, scan

UNRECOGNISED = "(none)"


@dataclass(frozen=True, slots=True)
class Window:
    """The part of time an analysis looks at; None on a side means unbounded."""

    start: datetime | None = None
    end: datetime | None = None

    @property
    def bounded(self) -> bool:
        return self.start is not None or self.end is not None

    def holds(self, ts: datetime) -> bool:
        return (self.start is None or ts >= self.start) and (self.end is None or ts < self.end)


def file_context(path: str, base: ParseContext) -> ParseContext:
    """``base`` anchored on the file's own time (year inference), or base's when unreadable."""
    try:
        mtime = datetime.fromtimestamp(Path(path).stat().st_mtime, UTC)
    except OSError:
        return base
    return replace(base, reference_time=mtime)


def parser_for(path: str, type_name: str = "auto") -> type[LineParser] | None:
    """The parser named ``type_name``, or the one most sure of the file's first lines."""
    if type_name != "auto":
        return registry()[type_name]
    return detect(read_head(path))


def read_log(
    path: str,
    cls: type[LineParser],
    base: ParseContext,
    stats: ScanStats,
    window: Window = Window(),
    progress: Callable[[int], None] | None = None,
    every_line: bool = False,
) -> Iterator[Event]:
    """The events of one log file inside ``window``; counts land in ``stats``."""
    parser = cls(file_context(path, base), path)
    events = scan(path, parser, stats, progress, every_line)
    if not window.bounded:
        yield from events  # no window: no per-event test
        return
    yield from (e for e in events if window.holds(e.timestamp))


def events_of_inputs(
    inputs: Inputs,
    base: ParseContext,
    stats: list[ScanStats],
    sources: list[SourceInfo],
    window: Window = Window(),
) -> Iterator[Event]:
    """Events of every log artifact of an input (bundle, directory, sosreport, live host)."""
    parsers = registry()
    for art in inputs.logs():
        cls = parsers.get(art.kind)
        if cls is None:
            continue
        st = ScanStats(art.path, cls.name)
        stats.append(st)
        try:
            yield from read_log(art.path, cls, base, st, window)
        except (OSError, SourceError) as exc:
            sources.append(SourceInfo(art.path, art.kind, False, note=str(exc)))
            continue
        sources.append(log_source(art, st))


def log_source(art: Artifact, st: ScanStats) -> SourceInfo:
    return SourceInfo(art.path, art.kind, True, st.events, st.lines, st.not_understood)


def events_of_paths(
    paths: Iterable[str],
    type_name: str,
    base: ParseContext,
    stats: list[ScanStats],
    window: Window = Window(),
    progress: Callable[[int], None] | None = None,
    every_line: bool = False,
) -> Iterator[Event]:
    """Events of every file under ``paths`` (files or directories), each parsed by its kind."""
    for path in walk(list(paths)):
        if not path.exists():
            raise SourceError(f"{path}: no such file or directory")
        cls = parser_for(str(path), type_name)
        if cls is None:
            stats.append(ScanStats(str(path), UNRECOGNISED))
            continue
        st = ScanStats(str(path), cls.name)
        stats.append(st)
        yield from read_log(str(path), cls, base, st, window, progress, every_line)
