"""A bounded on-disk queue for documents Elasticsearch could not take (outage).

Documents are kept in segment files ``<seq>-<class>.spool`` in one directory,
one document per line: ``kind <TAB> _id <TAB> source-json``. Each segment is
written whole (temporary file, fsync, rename), so a crash leaves whole segments
only. Findings go to ``f`` segments, which are never dropped; reset events and
snapshots go to ``e`` segments, of which the oldest are dropped (and counted)
when the spool would exceed its size limit. The next run sends the spool first.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from auditor.sources.checkpoint import write_atomic

NEVER_DROPPED = frozenset({"findings"})
SEGMENT_FRACTION = 8  # a segment holds at most 1/8 of the limit, so drops are fine-grained


@dataclass(frozen=True, slots=True)
class Doc:
    """A serialised document ready for a bulk request: its kind, id and JSON source."""

    kind: str  # "resets" | "findings" | "snapshot"
    id: str
    source: bytes  # compact JSON, no raw newline or tab (JSON escapes them)


class Spool:
    """The queue directory; all methods are safe against a crash between any two calls."""

    def __init__(self, directory: str | os.PathLike[str], max_bytes: int) -> None:
        self.dir = Path(directory)
        self.max_bytes = max_bytes
        self._counter = self.dir / "dropped.json"
        if self.dir.is_dir():  # a crash in the middle of a write leaves a temporary file
            for tmp in self.dir.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)

    def segments(self) -> list[Path]:
        """Segments oldest first; findings segments before event segments of the same age."""
        if not self.dir.is_dir():
            return []
        return sorted(self.dir.glob("*.spool"), key=lambda p: (p.name.split("-")[0], p.name))

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.segments())

    def pending(self) -> int:
        return sum(self._count(p) for p in self.segments())

    @staticmethod
    def _count(path: Path) -> int:
        with open(path, "rb") as fh:
            return sum(1 for _ in fh)

    def read(self, segment: Path) -> Iterator[Doc]:
        with open(segment, "rb") as fh:
            for raw in fh:
                kind, _, rest = raw.rstrip(b"\n").partition(b"\t")
                doc_id, _, source = rest.partition(b"\t")
                if source:
                    yield Doc(kind.decode(), doc_id.decode(), source)

    def remove(self, segment: Path) -> None:
        segment.unlink(missing_ok=True)

    def dropped(self) -> int:
        """Documents dropped on overflow, ever (kept across runs)."""
        try:
            return int(json.loads(self._counter.read_text())["dropped"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    def _next_seq(self) -> int:
        heads = [p.name.split("-")[0] for p in self.segments()]
        seqs = [int(h) for h in heads if h.isdigit()]
        return max(seqs, default=0) + 1

    def append(self, docs: Iterable[Doc]) -> int:
        """Store ``docs`` durably; returns how many old event documents were dropped to fit."""
        self.dir.mkdir(parents=True, exist_ok=True)
        seq = self._next_seq()
        cap = max(self.max_bytes // SEGMENT_FRACTION, 1)
        bufs: dict[str, list[bytes]] = {"e": [], "f": []}
        sizes = {"e": 0, "f": 0}

        def flush(cls: str) -> None:
            nonlocal seq
            if bufs[cls]:
                write_atomic(self.dir / f"{seq:012d}-{cls}.spool", b"".join(bufs[cls]))
                seq += 1
                bufs[cls], sizes[cls] = [], 0

        for doc in docs:
            cls = "f" if doc.kind in NEVER_DROPPED else "e"
            line = b"%s\t%s\t%s\n" % (doc.kind.encode(), doc.id.encode(), doc.source)
            bufs[cls].append(line)
            sizes[cls] += len(line)
            if sizes[cls] >= cap:
                flush(cls)
        flush("f")
        flush("e")
        return self._enforce()

    def _enforce(self) -> int:
        segs = self.segments()
        total = sum(p.stat().st_size for p in segs)
        dropped = 0
        for seg in segs:
            if total <= self.max_bytes:
                break
            if seg.name.endswith("-e.spool"):
                size = seg.stat().st_size
                dropped += self._count(seg)
                seg.unlink()
                total -= size
        if dropped:
            write_atomic(self._counter, json.dumps({"dropped": self.dropped() + dropped}).encode())
        return dropped
