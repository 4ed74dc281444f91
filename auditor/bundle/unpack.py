"""Unpacking a bundle archive with our own checks, whatever ``tarfile``'s filters do.

An archive is untrusted: it is read as a stream, member by member, and only
regular files and directories are written, each under the destination with a
name checked here (no absolute name, no ``..`` component, nothing that is not a
plain relative path). Links of any kind (``collect`` makes none), devices,
FIFOs and other members are listed as skipped with the reason. Files are
created with ``O_EXCL | O_NOFOLLOW``; since nothing but regular files and
directories is ever created, no path under the destination can lead out of it.
Nothing here relies on ``tarfile``'s extraction filters (broken on some patch
releases, CVE-2025-4517), so it behaves the same on every Python 3.11+.

Budgets bound what an archive can cost, counted on every byte ``tarfile`` reads
(headers included), while reading:

=========================  ==========  =========================================
``AUDITOR_MAX_INPUT_BYTES``  4 GiB     bytes once decompressed
``AUDITOR_MAX_MEMBERS``      20,000    archive members (files cost their creation)
``AUDITOR_MAX_RATIO``        200       decompressed / compressed (past 256 MiB)
=========================  ==========  =========================================

Past a budget the archive is refused with :class:`BudgetError`, a one-line
message naming the budget and the variable that raises it.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import stat
import tarfile
from dataclasses import dataclass
from typing import BinaryIO

from auditor.paths import open_regular
from auditor.sources.files import SourceError

CHUNK = 1 << 20
RATIO_FLOOR = 256 << 20  # the ratio is only judged past this many decompressed bytes
MAX_HEADER = 1 << 20  # a long-name or pax header larger than this is refused before it is read


class BudgetError(SourceError):
    """An archive that would cost more than a budget allows."""


@dataclass(frozen=True, slots=True)
class Budget:
    """What one archive may cost; :meth:`from_env` reads the ``AUDITOR_MAX_*`` overrides."""

    max_bytes: int = 4 << 30
    max_members: int = 20_000
    max_ratio: int = 200

    @classmethod
    def from_env(cls) -> Budget:
        default = cls()

        def get(name: str, fallback: int) -> int:
            text = os.environ.get(name, "")
            try:
                return int(text) if text else fallback
            except ValueError:
                raise SourceError(f"{name}={text!r}: expected a whole number") from None

        return cls(
            get("AUDITOR_MAX_INPUT_BYTES", default.max_bytes),
            get("AUDITOR_MAX_MEMBERS", default.max_members),
            get("AUDITOR_MAX_RATIO", default.max_ratio),
        )


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n} bytes"


class _Counted:
    """The decompressed stream ``tarfile`` reads, every byte counted against the budget."""

    def __init__(self, raw: BinaryIO, stream: BinaryIO, archive: str, budget: Budget) -> None:
        self.raw, self.stream, self.archive, self.budget = raw, stream, archive, budget
        self.total = 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(CHUNK if size is None or size < 0 else min(size, CHUNK))
        self.total += len(data)
        b = self.budget
        if self.total > b.max_bytes:
            raise BudgetError(
                f"{self.archive}: more than {_size(b.max_bytes)} once unpacked "
                f"(budget AUDITOR_MAX_INPUT_BYTES={b.max_bytes}; raise it to read this archive)"
            )
        packed = max(self.raw.tell(), 1)
        if self.total > RATIO_FLOOR and self.total > b.max_ratio * packed:
            raise BudgetError(
                f"{self.archive}: expands more than {b.max_ratio} times ({_size(packed)} "
                f"became {_size(self.total)}; budget AUDITOR_MAX_RATIO={b.max_ratio}; "
                "raise it to read this archive)"
            )
        return data


_EXTENDED = (
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
)


class _Info(tarfile.TarInfo):
    """A member whose long-name or pax header is refused before ``tarfile`` reads it whole."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _EXTENDED and self.size > MAX_HEADER:
            raise tarfile.HeaderError(f"extended header of {self.size} bytes")
        return super()._proc_member(tarfile_)  # type: ignore[misc,no-any-return]


def _decompressed(raw: BinaryIO) -> BinaryIO:
    head = raw.read(6)
    raw.seek(0)
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if head.startswith(b"BZh"):
        return bz2.BZ2File(raw, "rb")  # type: ignore[return-value]
    if head.startswith(b"\xfd7zXZ"):
        return lzma.LZMAFile(raw, "rb")  # type: ignore[return-value]
    return raw


def is_tar(path: str) -> bool:
    """True when the file (gzip, bzip2 or xz compressed or not) starts with a valid tar
    header: one 512-byte block is decompressed and checked, never a whole member
    (``tarfile.is_tarfile`` reads a first long-name header whole, whatever its size)."""
    with open(open_regular(path), "rb") as raw:
        block = _decompressed(raw).read(tarfile.BLOCKSIZE)
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def member_path(name: str) -> str | None:
    """The member's relative path, or None when it is absolute, climbs (``..``) or is empty."""
    if name.startswith(("/", "\\")) or "\x00" in name:
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def _skip_reason(m: tarfile.TarInfo) -> str | None:
    if m.isreg() or m.isdir():
        return None
    if m.issym():
        return "symbolic link (bundles hold none): not unpacked"
    if m.islnk():
        return "hard link (bundles hold none): not unpacked"
    if m.ischr() or m.isblk():
        return "device: not unpacked"
    if m.isfifo():
        return "FIFO: not unpacked"
    return f"member of type {m.type!r}: not unpacked"


def unpack(archive: str, dest: str, skipped: list[tuple[str, str]], budget: Budget) -> None:
    """Write the archive's regular files and directories under ``dest`` (an empty folder).

    Each member not written is appended to ``skipped`` as (name, reason).
    Raises :class:`BudgetError` past a budget, :class:`SourceError` when the
    archive cannot be read.
    """
    try:
        raw = open(archive, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise SourceError(f"{archive}: cannot open ({exc.strerror or exc})") from exc
    try:
        counted = _Counted(raw, _decompressed(raw), archive, budget)
        members = 0
        with tarfile.open(fileobj=counted, mode="r|", tarinfo=_Info) as tar:  # type: ignore[call-overload]
            for member in tar:
                members += 1
                if members > budget.max_members:
                    raise BudgetError(
                        f"{archive}: more than {budget.max_members} members (budget "
                        f"AUDITOR_MAX_MEMBERS={budget.max_members}; raise it to read this archive)"
                    )
                _write(tar, member, dest, skipped)
    except BudgetError:
        raise
    except (tarfile.TarError, EOFError, OSError, ValueError, lzma.LZMAError) as exc:
        raise SourceError(f"{archive}: not a readable archive ({exc})") from exc
    finally:
        raw.close()


def _write(
    tar: tarfile.TarFile, m: tarfile.TarInfo, dest: str, skipped: list[tuple[str, str]]
) -> None:
    rel = member_path(m.name)
    reason = _skip_reason(m)
    if rel is None:
        reason = "absolute name or '..' component: not unpacked"
    if reason is not None or rel is None:
        skipped.append((m.name, reason or ""))
        return
    target = os.path.join(dest, rel)
    try:
        _make_parents(dest, rel if m.isdir() else os.path.dirname(rel))
        if m.isdir():
            return
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        skipped.append((m.name, "name already used by an earlier member: not unpacked"))
        return
    except OSError as exc:
        skipped.append((m.name, f"cannot be written ({exc.strerror or exc}): not unpacked"))
        return
    src = tar.extractfile(m)
    with os.fdopen(fd, "wb") as out:
        if src is not None:
            while chunk := src.read(CHUNK):
                out.write(chunk)


def _make_parents(dest: str, rel: str) -> None:
    """Create each directory of ``rel`` under ``dest``; a component that is not one refuses."""
    path = dest
    for part in rel.split("/") if rel else ():
        path = os.path.join(path, part)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                raise NotADirectoryError(20, "a file of that name exists", path) from None
