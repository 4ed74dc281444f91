"""Hostile paths: a directory input is a closed world, only its own regular files are read.

Standard library only, below every other part (``sources``, ``nginx``, ``bundle``
use it), so that whoever opens a file of an input does it the same way.

:class:`Tree` walks a folder (sorted, hidden names skipped) and yields the
regular files in it. A symbolic link is followed only when its target stays
inside the folder; one that leads out, dangles or loops is listed in
``skipped`` with the reason, and so is anything that is not a regular file
(FIFO, socket, device) or a link to a directory. The others are still read.
At most ``limit`` files are yielded (``AUDITOR_MAX_FILES``, 20,000 by
default); past it :attr:`Tree.capped` is set so that callers add a note.

:func:`open_regular` opens without blocking (a FIFO never hangs), then checks
with ``fstat`` that what was opened is a regular file.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field

DEFAULT_MAX_FILES = 20_000


class SourceError(OSError):
    """A path that cannot be read, with a one-line reason."""


def max_files() -> int:
    """The cap on files per input (``AUDITOR_MAX_FILES``)."""
    text = os.environ.get("AUDITOR_MAX_FILES", "")
    try:
        return int(text) if text else DEFAULT_MAX_FILES
    except ValueError:
        raise OSError(f"AUDITOR_MAX_FILES={text!r}: expected a whole number") from None


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISDIR(mode):
        return "directory"
    return "special file"


def inside(path: str, root: str) -> bool:
    """True when ``path`` (already resolved) is ``root`` or under it."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def resolve_in(root: str, path: str, hops: int = 40) -> str | None:
    """``path`` resolved as if ``root`` were ``/``: absolute link targets and ``..`` never
    leave ``root`` (a sosreport's ``/etc/nginx/x`` is ``<root>/etc/nginx/x``). None on a
    link loop (more than ``hops`` links, as the kernel's ELOOP)."""
    if inside(path, root):
        path = path[len(root) :]
    parts = [p for p in path.split("/") if p not in ("", ".")]
    parts.reverse()  # a stack: the next component last
    done: list[str] = []
    while parts:
        part = parts.pop()
        if part == "..":
            if done:
                done.pop()
            continue
        here = os.path.join(root, *done, part)
        if not os.path.islink(here):
            done.append(part)
            continue
        hops -= 1
        if hops < 0:
            return None
        target = os.readlink(here)
        if target.startswith("/"):
            done = []
        parts.extend(reversed([p for p in target.split("/") if p not in ("", ".")]))
    return os.path.join(root, *done)


def check(path: str, real_root: str) -> str | None:
    """None when ``path`` is a regular file inside ``real_root`` (links resolved); else why not."""
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            try:
                real = os.path.realpath(path, strict=True)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    return "symbolic link loop: not read"
                return "symbolic link to nothing: not read"
            if not inside(real, real_root):
                return "symbolic link leading outside the input: not followed"
            st = os.stat(real)
    except OSError as exc:
        return f"cannot read ({exc.strerror or exc})"
    if not stat.S_ISREG(st.st_mode):
        return f"not a regular file ({_kind(st.st_mode)}): not read"
    return None


def open_regular(path: str) -> int:
    """A blocking read descriptor on the regular file ``path``; OSError (one line, naming
    the path) for anything else."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise OSError(f"{path}: cannot open ({exc.strerror or exc})") from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(f"{path}: not a regular file ({_kind(mode)}): not read")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


@dataclass
class Tree:
    """The regular files of one input folder, links kept inside it, at most ``limit``."""

    root: str
    limit: int = field(default_factory=max_files)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    capped: bool = False
    count: int = 0

    def __post_init__(self) -> None:
        self.real_root = os.path.realpath(self.root)

    def files(self, top: str | None = None) -> Iterator[str]:
        """Regular files under ``top`` (default: the root), sorted, hidden names skipped."""
        start = self.root if top is None else top
        reason = check(start, self.real_root) if os.path.islink(start) else None
        if reason is not None or not os.path.isdir(start):
            if reason is not None:
                self.skipped.append((start, reason))
            return
        for dirpath, dirnames, names in os.walk(start, onerror=self._walk_error):
            keep = []
            for d in sorted(n for n in dirnames if not n.startswith(".")):
                full = os.path.join(dirpath, d)
                if os.path.islink(full):
                    self.skipped.append((full, "symbolic link to a directory: not followed"))
                else:
                    keep.append(d)
            dirnames[:] = keep
            for name in sorted(names):
                if name.startswith("."):
                    continue
                path = os.path.join(dirpath, name)
                why = check(path, self.real_root)
                if why is not None:
                    self.skipped.append((path, why))
                    continue
                if self.count >= self.limit:
                    self.capped = True
                    return
                self.count += 1
                yield path

    def _walk_error(self, exc: OSError) -> None:
        self.skipped.append((str(exc.filename), f"cannot list ({exc.strerror or exc})"))

    def cap_note(self) -> str:
        return (
            f"more than {self.limit} files: only the first {self.limit} (in name order) are "
            f"read (cap AUDITOR_MAX_FILES={self.limit}; raise it to read them all)"
        )
