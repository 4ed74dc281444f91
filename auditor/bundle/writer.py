"""Writing a bundle's files: private (0600 files in 0700 folders), redacted, recorded.

:class:`Collector` is what every part of a collect writes through: it keeps
the manifest's record of each artifact, of what could not be read (and why)
and of what was redacted. Files are created exclusively (never through an
existing file or link); logs are streamed in chunks of whole lines, compressed
rotations rewritten in their own compression.

Part of the standalone collector: standard library only, Python 3.9.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, cast

from auditor.bundle.redact import Redactor

COMMAND_TIMEOUT = 30.0
CHUNK = 1 << 20
COMPRESSED = (".gz", ".bz2", ".xz")
FILE_MODE = 0o600
DIR_MODE = 0o700
# First line of a counter snapshot: "# auditor-snapshot before 2026-11-24T10:00:00+00:00".
SNAPSHOT_MARK = "# auditor-snapshot"


def private_dirs(path: str) -> None:
    """Make ``path`` and missing parents, each 0700 (``os.makedirs`` gives parents the umask's
    mode)."""
    if os.path.isdir(path):
        return
    private_dirs(os.path.dirname(path))
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, DIR_MODE)


def create_private(path: str) -> IO[bytes]:
    """A new file opened for writing, 0600, created exclusively (an entry already at ``path``
    in the bundle's own private folder is removed first, never written through)."""
    private_dirs(os.path.dirname(path))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, FILE_MODE)
    except FileExistsError:  # written before in this private folder: replace, never follow
        os.unlink(path)
        fd = os.open(path, flags, FILE_MODE)
    return os.fdopen(fd, "wb")


def open_compressed(fh: IO[bytes], name: str, mode: str) -> IO[bytes]:
    """``fh`` read or written through the compression that ``name``'s suffix says."""
    wrapped: Any = fh
    writing = mode.startswith("w")
    if name.endswith(".gz"):
        wrapped = gzip.GzipFile(fileobj=fh, mode="wb" if writing else "rb")
    elif name.endswith(".bz2"):
        wrapped = bz2.BZ2File(wrapped, "wb") if writing else bz2.BZ2File(wrapped, "rb")
    elif name.endswith(".xz"):
        wrapped = lzma.LZMAFile(wrapped, "wb" if writing else "rb")  # noqa: SIM115
    return cast("IO[bytes]", wrapped)


def stream_lines(fin: IO[bytes], fout: IO[bytes], change: Callable[[str], str]) -> None:
    """Copy ``fin`` to ``fout`` in chunks of whole lines, each passed through ``change``
    (bytes that are not UTF-8 survive unchanged)."""
    rest = b""
    while True:
        block = fin.read(CHUNK)
        if not block:
            break
        block = rest + block
        cut = block.rfind(b"\n") + 1
        if cut == 0:
            rest = block
            if len(rest) < 16 * CHUNK:
                continue
            cut = len(block)  # one very long line: pass it on in pieces
        rest = block[cut:]
        fout.write(_encode(change(block[:cut].decode("utf-8", "surrogateescape"))))
    if rest:
        fout.write(_encode(change(rest.decode("utf-8", "surrogateescape"))))


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


@dataclass
class Collector:
    """Writes artifacts under ``root`` and keeps the manifest's record of each."""

    root: str
    redact: bool = True
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    missing: list[dict[str, str]] = field(default_factory=list)
    redactions: list[dict[str, object]] = field(default_factory=list)

    def _redactor(self, rel: str) -> Callable[[str], str]:
        if not self.redact:
            return lambda text: text
        red = Redactor(rel)

        def change(text: str) -> str:
            out = red.chunk(text)
            self.redactions[:] = [r for r in self.redactions if r["path"] != rel] + red.records
            return out

        return change

    def write(self, rel: str, text: str, source: str, note: str = "") -> None:
        """A text artifact (redacted unless redaction is off)."""
        data = self._redactor(rel)(text).encode("utf-8", "surrogateescape")
        with create_private(os.path.join(self.root, rel)) as fh:
            fh.write(data)
        self.artifacts.append({"path": rel, "source": source, "note": note, "bytes": len(data)})

    def write_raw(self, rel: str, text: str) -> None:
        """A file of the bundle's own (the manifest): not an artifact, not redacted."""
        with create_private(os.path.join(self.root, rel)) as fh:
            fh.write(text.encode("utf-8"))

    def copy(self, rel: str, fin: IO[bytes], source: str, note: str = "") -> None:
        """Stream the rest of ``fin`` (compressed as ``rel``'s suffix says) into ``rel``."""
        dest = os.path.join(self.root, rel)
        try:
            with create_private(dest) as raw:
                src = open_compressed(fin, rel, "rb")
                out = open_compressed(raw, rel, "wb")
                stream_lines(src, out, self._redactor(rel))
                if out is not raw:
                    out.close()
        except BaseException:
            if os.path.exists(dest):
                os.unlink(dest)
            self.redactions[:] = [r for r in self.redactions if r["path"] != rel]
            raise
        self.artifacts.append(
            {"path": rel, "source": source, "note": note, "bytes": os.path.getsize(dest)}
        )

    def miss(self, what: str, why: str) -> None:
        self.missing.append({"what": what, "why": why})

    def run(self, argv: tuple[str, ...], rel: str, note: str = "") -> str | None:
        """Run a read-only command; its stdout becomes an artifact (None when it failed)."""
        what = " ".join(argv)
        if shutil.which(argv[0]) is None:
            self.miss(what, f"{argv[0]} not installed")
            return None
        try:
            proc = subprocess.run(
                list(argv),
                capture_output=True,
                text=True,
                errors="replace",
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.miss(what, f"could not run: {exc}")
            return None
        if proc.returncode != 0:
            self.miss(what, f"exit {proc.returncode}: {proc.stderr.strip()[:300]}")
            return None
        if not proc.stdout.strip():
            self.miss(what, "empty output (nothing configured for this backend)")
            return None
        self.write(rel, proc.stdout, what, note)
        return proc.stdout
