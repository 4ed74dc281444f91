"""Opening log files: plain, rotated (``.1``) or gzip-compressed, and walking directories."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from auditor.paths import SourceError as SourceError
from auditor.paths import Tree, open_regular

_MAGIC = {
    b"\x1f\x8b": gzip.open,
    b"BZh": bz2.open,
    b"\xfd7zXZ": lzma.open,
}


DECOMPRESS_ERRORS = (EOFError, OSError, ValueError, lzma.LZMAError, zlib.error)
"""What a truncated or corrupt gzip/bzip2/xz stream raises while it is read."""


def display_path(path: str | os.PathLike[str]) -> str:
    """A path as text that is always valid UTF-8: bytes of a file name that are not UTF-8
    (kept as surrogates by ``surrogateescape``) are shown as ``\\xNN``. For output only:
    the path itself still opens the file."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def open_binary(path: str | os.PathLike[str], regular: bool = False) -> BinaryIO:
    """Open a file for reading, decompressing gzip/bzip2/xz by content, not name.

    ``regular``: refuse (SourceError) anything but a regular file, without
    blocking on a FIFO (files of an input; a path the user names may be a pipe).
    """
    opener_fd: int | None = None
    if regular:
        try:
            opener_fd = open_regular(os.fspath(path))
        except OSError as exc:
            raise SourceError(str(exc)) from exc
    try:
        fh: BinaryIO = open(path if opener_fd is None else opener_fd, "rb")  # noqa: SIM115
    except FileNotFoundError as exc:
        raise SourceError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise SourceError(f"{path}: is a directory") from exc
    except PermissionError as exc:
        raise SourceError(f"{path}: permission denied") from exc
    except OSError as exc:
        raise SourceError(f"{path}: cannot open ({exc.strerror or exc})") from exc
    head = fh.peek(6)[:6] if hasattr(fh, "peek") else b""
    for magic, opener in _MAGIC.items():
        if head.startswith(magic):
            archive: BinaryIO = opener(path, "rb")  # type: ignore[operator]
            try:
                archive.peek(1)  # type: ignore[attr-defined]
            except DECOMPRESS_ERRORS:
                # Magic bytes but no valid archive header: read it as it is, so no line is lost.
                archive.close()
                return fh
            fh.close()
            return archive
    return fh


def read_head(
    path: str | os.PathLike[str], lines: int = 40, limit: int = 65536, regular: bool = False
) -> list[str]:
    """The first lines of a file (decompressed), decoded leniently, for sniffing."""
    with open_binary(path, regular) as fh:
        data = fh.read(limit)
    return data.decode("utf-8", "replace").splitlines()[:lines]


def walk(paths: list[str], skipped: list[tuple[str, str]] | None = None) -> Iterator[Path]:
    """Every regular file under ``paths`` (directories walked, sorted, hidden files skipped).

    A directory is a closed world (:class:`auditor.sources.tree.Tree`): links
    leading out of it, loops, FIFOs and devices in it are not read but
    appended to ``skipped`` as (path, reason), and so is the cap on files.
    Rotated siblings are returned oldest first (``x.log.3.gz, x.log.2, x.log.1, x.log``)
    so that events come out in time order.
    """
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            tree = Tree(raw)
            files = [Path(f) for f in tree.files()]
            if skipped is not None:
                skipped.extend(tree.skipped)
                if tree.capped:
                    skipped.append((raw, tree.cap_note()))
            yield from sorted(files, key=rotation_key)
        else:
            yield p


def rotation_key(path: Path) -> tuple[str, str, int]:
    """Sort key that puts ``name.N[.gz]`` before ``name`` and higher N first."""
    name = path.name
    for suffix in (".gz", ".bz2", ".xz", ".zst"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    base, _, num = name.rpartition(".")
    if base and num.isdigit():
        return (str(path.parent), base, -int(num))
    return (str(path.parent), name, 1)
