"""The scheduled audit's checkpoint: where every log was read up to, and what the last run saw.

Per file the state keeps its *identity* (a stable name, used in document ids), the
device/inode, a *fingerprint of its first bytes* (``head``: a hash of the first
``head_len`` <= 4 KiB of the decompressed content, so it survives renaming,
copy-truncation and compression), a fingerprint of the bytes just before the
offset (``tail``, to tell a continued file from a truncated and regrown one), size
and mtime (to skip an unchanged, fully read file without opening it), the byte
offset read up to (in the decompressed stream) and the number of lines before it,
so line numbers stay true when reading resumes. How a file found on disk is matched
to these entries is in :mod:`auditor.sources.follow`.

An identity is the hash of the file's first line when that is free; when another
known file (or one retired earlier: ``retired``) already has it, the device and
inode are mixed in, so two distinct files with the same head never share document
ids. The state also keeps the journald cursor, the counters and ruleset fingerprint
of the last run, and the *watermark*: the start of the window the next run covers.

The state is written atomically (temporary file, fsync, rename, fsync of the
directory), and only after the data read has been acknowledged by its sink.
Version 1 files (identity = first-line hash, no fingerprints) load and migrate:
their entries are matched by that hash once and get fingerprints on that run.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from auditor.sources.files import open_binary

STATE_VERSION = 2
LOADABLE_VERSIONS = (1, 2)
IDENTITY_MAX = 4096  # a first line longer than this is identified by its first 4 KiB
HEAD_BYTES = 4096  # the head fingerprint covers at most this many leading bytes
TAIL_BYTES = 512  # the tail fingerprint covers at most this many bytes before the offset
RETIRED_MAX = 4096  # identities of vanished files remembered, so none is ever reused


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
    head: str = ""  # fingerprint of the first head_len bytes ("" for entries of version 1)
    head_len: int = 0
    tail: str = ""  # fingerprint of the bytes before offset ("" when unknown or compressed)

    def unchanged(self, st: os.stat_result) -> bool:
        """Same file, same size and mtime as when it was read to its end."""
        return (
            self.eof
            and (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            == (self.dev, self.ino, self.size, self.mtime_ns)
        )

    def advanced(
        self, path: str, offset: int, line: int, st: os.stat_result, eof: bool,
        tail: str = "",
    ) -> FileState:
        return replace(
            self, path=path, offset=offset, line=line, dev=st.st_dev, ino=st.st_ino,
            size=st.st_size, mtime_ns=st.st_mtime_ns, eof=eof, tail=tail,
        )

    def with_head(self, head: Head) -> FileState:
        """This entry with the longer fingerprint of ``head`` (the same file, grown)."""
        if len(head.data) <= self.head_len:
            return self
        return replace(self, head=fingerprint(head.data), head_len=len(head.data))


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
    retired: list[str] = field(default_factory=list)  # identities of files gone, oldest first

    def retire(self, identities: list[str]) -> None:
        """Remember identities of files that are gone, so that no new file reuses them."""
        known = set(self.retired)
        self.retired.extend(i for i in identities if i not in known)
        del self.retired[:-RETIRED_MAX]

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
            "retired": self.retired,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> AuditState:
        if doc.get("version") not in LOADABLE_VERSIONS:
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
            retired=[str(i) for i in doc.get("retired") or []],
        )


def load_checkpoint(path: str | os.PathLike[str]) -> AuditState | None:
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


def save_checkpoint(path: str | os.PathLike[str], state: AuditState) -> None:
    """Write the state atomically (tmp + fsync + rename + fsync of the directory)."""
    data = json.dumps(state.to_json(), indent=1, sort_keys=False).encode()
    try:
        write_atomic(path, data + b"\n")
    except OSError as exc:
        raise StateError(f"{path}: cannot write state ({exc.strerror or exc})") from exc


def fingerprint(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=12).hexdigest()


def _first_line_hash(head: bytes) -> str | None:
    end = head.find(b"\n")
    if end == -1:
        if len(head) < IDENTITY_MAX:
            return None
        end = IDENTITY_MAX - 1
    return fingerprint(head[: end + 1])


@dataclass(frozen=True, slots=True)
class Head:
    """The first bytes of a file (decompressed), what is needed to recognise it."""

    data: bytes  # at most HEAD_BYTES
    first_line: str | None  # hash of the first line: version-1 identity and new-identity base
    compressed: bool
    isize: int | None = None  # gzip: decompressed size mod 2**32, from the trailer

    def matches(self, entry: FileState) -> bool:
        """Could this be the file of ``entry``: same first bytes (or first line, version 1)?"""
        if entry.head_len == 0:
            return self.first_line is not None and self.first_line == entry.identity
        return (len(self.data) >= entry.head_len
                and fingerprint(self.data[: entry.head_len]) == entry.head)

    def same_content(self, other: Head) -> bool:
        return self.data == other.data


def file_head(path: str | os.PathLike[str], st: os.stat_result | None = None) -> Head:
    """The :class:`Head` of ``path`` (raises SourceError or a decompression error)."""
    with open_binary(path) as fh:
        compressed = not isinstance(fh, io.BufferedReader)
        data = fh.read(HEAD_BYTES)
    isize = None
    if compressed and st is not None and st.st_size >= 18:
        with open(path, "rb") as raw:
            if raw.read(2) == b"\x1f\x8b":
                raw.seek(-4, os.SEEK_END)
                isize = int.from_bytes(raw.read(4), "little")
    return Head(data, _first_line_hash(data), compressed, isize)


def tail_print(path: str | os.PathLike[str], st: os.stat_result, offset: int) -> str:
    """Fingerprint of the bytes before ``offset`` of the uncompressed file ``st`` ("" if not)."""
    if offset <= 0:
        return ""
    start = max(0, offset - TAIL_BYTES)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return ""
    try:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) or now.st_size < offset:
            return ""
        data = os.pread(fd, offset - start, start)
    finally:
        os.close(fd)
    return fingerprint(data) if len(data) == offset - start else ""


def new_identity(head: Head, st: os.stat_result, taken: set[str]) -> str:
    """A fresh identity: the first-line hash, or, if taken, mixed with device and inode."""
    base = head.first_line or fingerprint(head.data)
    if base not in taken:
        return base
    n = 0
    while True:
        ident = fingerprint(f"{base}\x1f{st.st_dev}:{st.st_ino}:{n}".encode())
        if ident not in taken:
            return ident
        n += 1


def file_identity(path: str | os.PathLike[str]) -> str | None:
    """Hash of the first line (decompressed), or None while no first line is complete.

    The version-1 identity, and the base of a new file's identity.
    """
    with open_binary(path) as fh:
        head = fh.read(IDENTITY_MAX)
    return _first_line_hash(head)


def now_utc() -> datetime:
    return datetime.now(UTC)
