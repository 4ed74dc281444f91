"""Hostile archives and folders for the input tests, built on the interpreter the suite uses."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

KERNEL_LINE = (
    "2026-11-24T10:00:00.000000+00:00 lab kernel: [UFW BLOCK] IN=eth0 OUT= "
    "SRC=192.0.2.1 DST=192.0.2.2 PROTO=TCP SPT=40000 DPT=80 RST\n"
)


class Zeros(io.RawIOBase):
    """``size`` zero bytes, read without holding them (the body of a bomb)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, view: memoryview) -> int:  # type: ignore[override]
        n = min(len(view), self.left)
        view[:n] = bytes(n)
        self.left -= n
        return n


def add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def add_special(tar: tarfile.TarFile, name: str, kind: bytes, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    tar.addfile(info)


def symlink_chain(path: Path, target: str, payload: bytes = b"pwned\n") -> None:
    """The long-symlink-chain archive of CVE-2025-4517: directories of 247-character
    names reached through one-letter links, whose resolved path is longer than
    PATH_MAX, so that ``os.path.realpath`` stops resolving and ``tarfile``'s
    ``data`` filter (3.11.7 and other unpatched releases) lets a final link
    lead to ``target`` (relative to the extraction folder's parent) and a
    member be written through it."""
    comp = "d" * 247
    steps = "abcdefghijklmnop"
    with tarfile.open(path, "w") as tar:
        here = ""
        for step in steps:
            add_special(tar, os.path.join(here, comp), tarfile.DIRTYPE)
            add_special(tar, os.path.join(here, step), tarfile.SYMTYPE, comp)
            here = os.path.join(here, comp)
        deep = os.path.join("/".join(steps), "l" * 254)
        add_special(tar, deep, tarfile.SYMTYPE, "../" * len(steps))
        add_special(tar, "escape", tarfile.SYMTYPE, deep + "/../" + target)
        add_file(tar, "escape/pwned", payload)


def zero_bomb(path: Path, size: int, members: int = 1) -> None:
    """A .tar.gz whose members are ``size`` zero bytes each (about 1,000 times smaller packed)."""
    with tarfile.open(path, "w:gz", compresslevel=9) as tar:
        for n in range(members):
            info = tarfile.TarInfo(f"bundle/logs/zeros-{n}.log")
            info.size = size
            tar.addfile(info, io.BufferedReader(Zeros(size), 1 << 20))


def all_entries(root: Path) -> list[Path]:
    """Every entry under ``root`` (links not followed)."""
    found = []
    for dirpath, dirnames, names in os.walk(root):
        found += [Path(dirpath) / n for n in dirnames + names]
    return found


def many_members(path: Path, count: int, data: bytes) -> None:
    """A .tar.gz of ``count`` one-file members, written block by block (tarfile's own
    writer costs a third of a millisecond per member)."""
    import gzip

    pad = b"\0" * (-len(data) % tarfile.BLOCKSIZE)
    with gzip.open(path, "wb", compresslevel=1) as out:
        for n in range(count):
            info = tarfile.TarInfo(f"b/logs/k{n}.log")
            info.size = len(data)
            out.write(info.tobuf(tarfile.USTAR_FORMAT) + data + pad)
        out.write(b"\0" * tarfile.RECORDSIZE)
