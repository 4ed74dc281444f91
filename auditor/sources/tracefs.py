"""A private tracefs instance: found or mounted, made, configured and always removed.

auditor never touches the host's own tracing state (``tracing_on``, ``set_event``,
``current_tracer``, the global buffer, the tracepoints' top-level ``enable`` files).
Everything happens in ``instances/auditor-<pid>-<start>``, a ring buffer of its own
with its own event switches, filters and clock. When tracefs is not mounted, it is
mounted on a private temporary directory and unmounted afterwards. An instance or a
mount left by a run that was killed (SIGKILL) is recognised by its name (the pid and
the start time of the process that made it) and removed by the next run.

Reason names are read from the tracepoint's own ``format`` file (``__print_symbolic``):
the numbers behind them differ between kernels.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

INSTANCE_PREFIX = "auditor-"
MOUNT_PREFIX = "auditor-tracefs-"
_OURS = re.compile(r"^auditor-(?:tracefs-)?(\d+)-(\d+)(?:-.*)?$")
_SYMBOLIC = re.compile(r"__print_symbolic\(REC->(\w+),(.*?)\)(?:\s*[,:]|\s*$)", re.S)
_PAIR = re.compile(r"\{\s*(-?\d+)\s*,\s*\"([A-Za-z0-9_]+)\"\s*\}")
_FIELD = re.compile(r"^\s*field:(.+?)\s+(\w+)(\[\d*\])?;", re.M)
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
MNT_DETACH = 2


class TracefsError(OSError):
    """tracefs cannot be used here; the message says why (no root, lockdown, no tracefs)."""


def start_time(pid: int) -> int | None:
    """The start time (clock ticks after boot) of ``pid``, None when it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return None
    try:
        return int(text.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def own_tag() -> str:
    """``<pid>-<start time>``: unique among live processes, and checkable after a crash."""
    pid = os.getpid()
    return f"{pid}-{start_time(pid) or 0}"


def is_stale(name: str) -> bool:
    """True for an instance or mount name of ours whose process is gone."""
    m = _OURS.match(name)
    if m is None:
        return False
    pid, started = int(m.group(1)), int(m.group(2))
    return start_time(pid) != started


def tracefs_mounts() -> list[str]:
    """Mount points of tracefs in this mount namespace, the standard place first."""
    found: list[str] = []
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == "tracefs":
                    found.append(parts[1].replace("\\040", " "))
    except OSError:
        return []
    return sorted(found, key=lambda p: (p != "/sys/kernel/tracing", len(p)))


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def mount_private() -> str:
    """Mount tracefs on a new private directory; TracefsError when the kernel refuses."""
    where = tempfile.mkdtemp(prefix=f"{MOUNT_PREFIX}{own_tag()}-")
    rc = _libc().mount(b"nodev", where.encode(), b"tracefs", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    if rc != 0:
        err = ctypes.get_errno()
        os.rmdir(where)
        raise TracefsError(err, f"cannot mount tracefs: {os.strerror(err)}")
    return where


def unmount_private(where: str) -> None:
    """Unmount a directory :func:`mount_private` made, and remove it."""
    libc = _libc()
    if libc.umount2(where.encode(), 0) != 0:
        libc.umount2(where.encode(), MNT_DETACH)
    with contextlib.suppress(OSError):
        os.rmdir(where)


def clean_stale(root: str) -> list[str]:
    """Remove instances and private mounts that killed runs of auditor left; their names."""
    removed: list[str] = []
    try:
        names = os.listdir(os.path.join(root, "instances"))
    except OSError:
        names = []
    for name in names:
        if (
            name.startswith(INSTANCE_PREFIX)
            and is_stale(name)
            and remove_instance(os.path.join(root, "instances", name))
        ):
            removed.append(name)
    for where in tracefs_mounts():
        base = os.path.basename(where)
        if base.startswith(MOUNT_PREFIX) and is_stale(base):
            unmount_private(where)
            removed.append(where)
    return removed


def remove_instance(path: str, attempts: int = 20) -> bool:
    """rmdir an instance, retrying while a reader still holds it (EBUSY)."""
    for _ in range(attempts):
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                return False
            time.sleep(0.05)
    return False


def reason_names(format_text: str, field_name: str = "reason") -> dict[int, str]:
    """The ``{number: NAME}`` table of ``field_name`` in a tracepoint's ``print fmt``."""
    for m in _SYMBOLIC.finditer(format_text):
        if m.group(1) == field_name:
            return {int(n): name for n, name in _PAIR.findall(m.group(2))}
    return {}


def field_names(format_text: str) -> set[str]:
    """The fields a tracepoint records, from its ``format`` file."""
    return {m.group(2) for m in _FIELD.finditer(format_text)}


@dataclass
class Instance:
    """One private instance; :meth:`close` removes it (and the mount, when it made one)."""

    root: str
    path: str
    mounted: str | None = None
    removed_stale: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, buffer_kb: int) -> Instance:
        if os.geteuid() != 0:
            raise TracefsError(errno.EPERM, "tracefs needs root (CAP_SYS_ADMIN); not root")
        mounts = tracefs_mounts()
        mounted = None
        if mounts:
            root = mounts[0]
        else:
            root = mounted = mount_private()
        try:
            stale = clean_stale(root)
            path = os.path.join(root, "instances", INSTANCE_PREFIX + own_tag())
            try:
                os.mkdir(path)
            except FileExistsError:
                remove_instance(path)
                os.mkdir(path)
            except OSError as exc:
                why = lockdown_note() or exc.strerror or str(exc)
                raise TracefsError(
                    exc.errno or errno.EPERM, f"cannot make an instance: {why}"
                ) from exc
        except BaseException:
            if mounted:
                unmount_private(mounted)
            raise
        inst = cls(root, path, mounted, stale)
        with contextlib.suppress(OSError):  # the default size of an instance is bounded too
            inst.write("buffer_size_kb", str(buffer_kb))
        return inst

    def file(self, *parts: str) -> str:
        return os.path.join(self.path, *parts)

    def write(self, rel: str, text: str) -> None:
        with open(self.file(rel), "w", encoding="ascii") as fh:
            fh.write(text)

    def read(self, rel: str) -> str:
        with open(self.file(rel), encoding="utf-8", errors="replace") as fh:
            return fh.read()

    def set_clock(self) -> str:
        """Use the boot clock (wall time = boot time + offset); the clock in use."""
        for clock in ("boot", "mono"):
            try:
                self.write("trace_clock", clock)
                return clock
            except OSError:
                continue
        text = self.read("trace_clock")
        m = re.search(r"\[(\w+)\]", text)
        return m.group(1) if m else "local"

    def lost(self) -> int:
        """Events the ring buffer overwrote or dropped, summed over the CPUs."""
        total = 0
        for stats in self._cpu_stats():
            for key in ("overrun", "dropped events"):
                m = re.search(rf"^{key}:\s*(\d+)", stats, re.M)
                total += int(m.group(1)) if m else 0
        return total

    def _cpu_stats(self) -> Iterator[str]:
        try:
            cpus = os.listdir(self.file("per_cpu"))
        except OSError:
            return
        for cpu in sorted(cpus):
            try:
                yield self.read(os.path.join("per_cpu", cpu, "stats"))
            except OSError:
                continue

    def close(self) -> bool:
        """Stop, remove the instance, unmount what was mounted; True when all is gone."""
        with contextlib.suppress(OSError):
            self.write("tracing_on", "0")
        gone = remove_instance(self.path)
        if self.mounted:
            unmount_private(self.mounted)
        return gone


def lockdown_note() -> str | None:
    """The kernel lockdown mode when it is on (it forbids tracefs), else None."""
    try:
        with open("/sys/kernel/security/lockdown", encoding="ascii") as fh:
            text = fh.read()
    except OSError:
        return None
    m = re.search(r"\[(\w+)\]", text)
    if m and m.group(1) != "none":
        return f"kernel lockdown is '{m.group(1)}'"
    return None
