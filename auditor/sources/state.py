"""Read state of scheduled audits: where each log file was read up to, across runs.

A file is known by its *identity*: a hash of its first line (decompressed), which
survives renaming, copy-truncation (the copy keeps the first line) and compression
(``x.log.1`` -> ``x.log.1.gz``). Next to it the state keeps the device/inode, size
and mtime (to skip an unchanged, fully read file without opening it), the byte
offset read up to (in the decompressed stream) and the number of lines before it,
so line numbers stay true when reading resumes. It also keeps the journald cursor,
the counters and ruleset fingerprint of the last run, and the *watermark*: the
start of the window the next run covers.

The state is written atomically (temporary file, fsync, rename, fsync of the
directory), and only after the data read has been acknowledged by its sink.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from auditor.sources.files import open_binary

STATE_VERSION = 1
IDENTITY_MAX = 4096  # a first line longer than this is identified by its first 4 KiB


class StateError(OSError):
    """A state file that cannot be read or written, with a one-line reason."""


@dataclass(frozen=True, slots=True)
class FileState:
    """How far one file (known by its identity) has been read."""

    identity: str
    path: str  # where it was last seen
    input: str  # name of the configured input it belongs to
    offset: int = 0  # bytes read, in the decompressed stream, always at a line start
    line: int = 0  # lines before ``offset``
    dev: int = 0
    ino: int = 0
    size: int = 0  # on-disk size when last read
    mtime_ns: int = 0
    eof: bool = False  # read to its end (and compressed or rotated, so it will not grow)

    def unchanged(self, st: os.stat_result) -> bool:
        """Same file, same size and mtime as when it was read to its end."""
        return (
            self.eof
            and (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            == (self.dev, self.ino, self.size, self.mtime_ns)
        )

    def advanced(
        self, path: str, offset: int, line: int, st: os.stat_result, eof: bool
    ) -> FileState:
        return replace(
            self, path=path, offset=offset, line=line, dev=st.st_dev, ino=st.st_ino,
            size=st.st_size, mtime_ns=st.st_mtime_ns, eof=eof,
        )


@dataclass(slots=True)
class AuditState:
    """Everything a scheduled audit remembers between runs."""

    host: str = ""
    watermark: datetime | None = None  # start of the next run's window
    files: dict[str, FileState] = field(default_factory=dict)  # by identity
    journald_cursor: str | None = None
    counters: dict[str, int] = field(default_factory=dict)
    ruleset: str | None = None  # fingerprint of the live ruleset at the last run
    runs: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "host": self.host,
            "watermark": self.watermark.isoformat() if self.watermark else None,
            "files": {k: asdict(v) for k, v in sorted(self.files.items())},
            "journald_cursor": self.journald_cursor,
            "counters": dict(sorted(self.counters.items())),
            "ruleset": self.ruleset,
            "runs": self.runs,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> AuditState:
        if doc.get("version") != STATE_VERSION:
            raise ValueError(f"unknown state version {doc.get('version')!r}")
        wm = doc.get("watermark")
        return cls(
            host=str(doc.get("host") or ""),
            watermark=datetime.fromisoformat(wm) if wm else None,
            files={k: FileState(**v) for k, v in (doc.get("files") or {}).items()},
            journald_cursor=doc.get("journald_cursor"),
            counters={str(k): int(v) for k, v in (doc.get("counters") or {}).items()},
            ruleset=doc.get("ruleset"),
            runs=int(doc.get("runs") or 0),
        )


def load_state(path: str | os.PathLike[str]) -> AuditState | None:
    """The saved state, or None when there is none yet (first run)."""
    try:
        text = Path(path).read_text("utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"{path}: cannot read state ({exc.strerror or exc})") from exc
    try:
        return AuditState.from_json(json.loads(text))
    except (ValueError, TypeError, KeyError) as exc:
        msg = f"{path}: state file is damaged ({exc}); move it away to start afresh"
        raise StateError(msg) from exc


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or the new file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    dfd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def save_state(path: str | os.PathLike[str], state: AuditState) -> None:
    """Write the state atomically (tmp + fsync + rename + fsync of the directory)."""
    data = json.dumps(state.to_json(), indent=1, sort_keys=False).encode()
    try:
        write_atomic(path, data + b"\n")
    except OSError as exc:
        raise StateError(f"{path}: cannot write state ({exc.strerror or exc})") from exc


def file_identity(path: str | os.PathLike[str]) -> str | None:
    """Hash of the first line (decompressed), or None while no first line is complete."""
    with open_binary(path) as fh:
        head = fh.read(IDENTITY_MAX)
    end = head.find(b"\n")
    if end == -1:
        if len(head) < IDENTITY_MAX:
            return None
        end = IDENTITY_MAX - 1
    return hashlib.blake2b(head[: end + 1], digest_size=12).hexdigest()


def now_utc() -> datetime:
    return datetime.now(UTC)
