"""Reading the systemd journal incrementally, by cursor.

``journalctl -o json --after-cursor C`` gives every entry after the last one read;
each entry's ``__CURSOR`` names it for good, so a document id made from the cursor
is the same on every re-read, and the last cursor is what the state keeps. The
entries are handed to a line parser (the kernel parser understands journal JSON).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator, Sequence
from datetime import datetime

from auditor.models import Event, Location, ParseIssue
from auditor.parsers.base import LineError, LineParser
from auditor.sources.files import SourceError
from auditor.sources.scan import ScanStats

_CURSOR = '"__CURSOR":"'


def cursor_of(line: str) -> str | None:
    """The ``__CURSOR`` of one ``journalctl -o json`` line (cursors hold no quote)."""
    start = line.find(_CURSOR)
    if start == -1:
        return None
    start += len(_CURSOR)
    end = line.find('"', start)
    return line[start:end] if end != -1 else None


class JournalReader:
    """Entries after ``cursor`` (or since ``since`` on the first run); ``cursor`` advances."""

    def __init__(
        self,
        cursor: str | None,
        since: datetime | None,
        matches: Sequence[str] = ("_TRANSPORT=kernel",),
        directory: str | None = None,
    ) -> None:
        self.cursor = cursor
        self.since = since
        self.matches = tuple(matches)
        self.directory = directory
        self.entries = 0

    def command(self) -> list[str]:
        exe = shutil.which("journalctl")
        if exe is None:
            raise SourceError("journald: journalctl is not installed")
        cmd = [exe, "-o", "json", "--no-pager", "-q"]
        if self.directory:
            cmd += ["--directory", self.directory]
        if self.cursor:
            cmd += ["--after-cursor", self.cursor]
        elif self.since is not None:
            cmd += ["--since", f"@{int(self.since.timestamp())}"]
        return cmd + list(self.matches)

    def events(self, parser: LineParser, stats: ScanStats) -> Iterator[tuple[Event, str]]:
        """(event, its entry's cursor) for every entry the parser turns into an event."""
        proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, errors="replace")
        assert proc.stdout is not None
        needles = tuple(n.decode("utf-8", "replace") for n in parser.needles)
        try:
            for raw in proc.stdout:
                line = raw.rstrip("\n")
                cursor = cursor_of(line)
                if cursor is None:
                    continue
                self.entries += 1
                stats.lines += 1
                stats.bytes += len(raw)
                if needles and not any(n in line for n in needles):
                    self.cursor = cursor
                    continue
                stats.candidates += 1
                try:
                    event = parser.parse(line, Location("journald", self.entries, 0))
                except LineError as exc:
                    stats.add_issue(ParseIssue(Location("journald", self.entries), parser.name,
                                               str(exc) or "not understood", line[:200]))
                    event = None
                if event is not None:
                    stats.events += 1
                    yield event, cursor
                self.cursor = cursor
        finally:
            proc.stdout.close()
            err = proc.stderr.read() if proc.stderr else ""
            code = proc.wait()
        if code != 0 and self.entries == 0 and "No entries" not in err:
            raise SourceError(f"journald: journalctl failed: {err.strip()[:200]}")
