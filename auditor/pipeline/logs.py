"""Logs -> events, the one way every command reads them.

A log file is dated by its own time: year-less stamps (RFC 3164 syslog, nginx
never lacks one) are anchored on the file's modification time, whichever
command reads it (``parse``, ``diagnose``, the scheduled ``audit``). Every file
read leaves a :class:`~auditor.sources.scan.ScanStats` (lines, events, lines not
understood) and a :class:`SourceInfo` line for the report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from auditor.correlate.report import SourceInfo
from auditor.models import Event, Location, ParseIssue
from auditor.nginx.access_format import FormatLookupError, log_format_options
from auditor.parsers import FALLBACK, detect, registry, why_unrecognised
from auditor.parsers.base import LineParser, ParseContext
from auditor.sources.files import SourceError, read_head, walk
from auditor.sources.scan import ScanStats, scan

if TYPE_CHECKING:  # types only: `parse` never opens a bundle (0.08 s of start-up saved)
    from auditor.bundle.inputs import Artifact, Inputs

UNRECOGNISED = "(none)"
DECLARED_NOTE = "log_format "  # an artifact found by a declared format (pipeline.declared)
# Parsers that read access-log lines, and so take a log_format.
ACCESS_READERS = ("nginx-access", "mixed")


@dataclass
class FileNotes:
    """What a summary says of one file beyond its counts."""

    routes: dict[str, int] = field(default_factory=dict)  # kind -> candidate lines handed to it
    notes: list[str] = field(default_factory=list)


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


def file_context(
    path: str,
    base: ParseContext,
    cls: type[LineParser] | None = None,
    nginx_config: str | None = None,
    notes: list[str] | None = None,
    root: str | None = None,
) -> ParseContext:
    """``base`` anchored on the file's own time (year inference), and for an access log
    the ``log_format`` it was written with (from ``nginx_config`` or a configuration
    found beside it; parsers never open files themselves)."""
    ctx = base
    with suppress(OSError):  # an unreadable time: the base's reference (now)
        ctx = replace(base, reference_time=datetime.fromtimestamp(Path(path).stat().st_mtime, UTC))
    if cls is not None and cls.name in ACCESS_READERS:
        config = Path(nginx_config) if nginx_config else None
        try:
            options, note = log_format_options(Path(path), dict(ctx.options), config, root)
        except FormatLookupError as exc:
            raise SourceError(str(exc)) from None
        ctx = replace(ctx, options=options)
        if note and notes is not None:
            notes.append(note)
    return ctx


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
    nginx_config: str | None = None,
    info: FileNotes | None = None,
    root: str | None = None,
) -> Iterator[Event]:
    """The events of one log file inside ``window``; counts land in ``stats``, and the
    kinds a routing parser handed lines to, with notes, in ``info``."""
    notes = info.notes if info is not None else None
    parser = cls(file_context(path, base, cls, nginx_config, notes, root), path)
    events = scan(path, parser, stats, progress, every_line)
    if not window.bounded:
        yield from events  # no window: no per-event test
    else:
        yield from (e for e in events if window.holds(e.timestamp))
    if info is not None:
        info.routes.update(parser.routes())


def events_of_inputs(
    inputs: Inputs,
    base: ParseContext,
    stats: list[ScanStats],
    sources: list[SourceInfo],
    window: Window = Window(),
) -> Iterator[Event]:
    """Events of every log artifact of an input (bundle, directory, sosreport, live host)."""
    parsers = registry()
    configs = inputs.by_kind("nginx-config")
    config = configs[0].path if configs else None
    for art in inputs.logs():
        cls = parsers.get(art.kind)
        if cls is None:
            continue
        st = ScanStats(art.path, cls.name)
        stats.append(st)
        try:
            ctx = base
            if art.note.startswith(DECLARED_NOTE):  # read with the format it was found by
                name = art.note[len(DECLARED_NOTE):]
                ctx = replace(base, options={**base.options, "log_format": name})
            yield from read_log(
                art.path, cls, ctx, st, window, nginx_config=config, root=inputs.root
            )
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
    nginx_config: str | None = None,
    notes_out: dict[str, FileNotes] | None = None,
) -> Iterator[Event]:
    """Events of every file under ``paths`` (files or directories), each parsed by its kind.

    A file of no recognised kind is still read line by line by the routing parser
    (relevant-looking lines it cannot read are counted), with a note saying why.
    """
    skipped: list[tuple[str, str]] = []
    for path in walk(list(paths), skipped):
        while skipped:
            stats.append(_skipped(*skipped.pop(0), notes_out))
        if not path.exists():
            raise SourceError(f"{path}: no such file or directory")
        info = FileNotes()
        if notes_out is not None:
            notes_out[str(path)] = info
        cls = parser_for(str(path), type_name)
        if cls is None:
            info.notes.append(f"kind not recognised: {why_unrecognised(read_head(path))}")
            cls = registry()[FALLBACK]
        st = ScanStats(str(path), cls.name)
        stats.append(st)
        yield from read_log(str(path), cls, base, st, window, progress, every_line,
                            nginx_config, info)
    stats.extend(_skipped(path, why, notes_out) for path, why in skipped)


SKIPPED = "(skipped)"


def _skipped(path: str, reason: str, notes_out: dict[str, FileNotes] | None) -> ScanStats:
    """The entry of a file of a folder that was not read (a link out of it, a loop, a FIFO,
    the cap on files): its reason is a note, and an issue located at the file."""
    st = ScanStats(path, SKIPPED)
    st.issues.append(ParseIssue(Location(path), "input", reason))
    if notes_out is not None:
        notes_out.setdefault(path, FileNotes()).notes.append(reason)
    return st
