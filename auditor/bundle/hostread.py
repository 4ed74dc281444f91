"""Live reads of this host for a bundle: sysctls, process limits, listening pids, host facts.

Part of the standalone collector (see :mod:`auditor.bundle.standalone`): standard
library only, Python 3.9 syntax and APIs, top-level names unique across the
collector's modules, and other collector modules imported by name only.
"""

from __future__ import annotations

import os
import re
import shutil
from datetime import datetime, timezone

# Subtrees read live: the network stack, netfilter and file handles.
SYSCTL_TREES = (
    "net/core",
    "net/ipv4",
    "net/ipv6",
    "net/netfilter",
    "net/unix",
    "fs",
    "kernel/pid_max",
)
# Per-interface subdirectories whose names are not tunables users look for.
_SYSCTL_SKIP_DIRS = re.compile(r"^net/ipv[46]/(conf|neigh)/(?!all$|default$)[^/]+$")
_SS_PID = re.compile(r'\("[^"]*",pid=(\d+),fd=\d+\)')
READ_LIMIT = 1 << 20


def read_small(path: str, limit: int = READ_LIMIT) -> str | None:
    """At most ``limit`` bytes of a file as text, or None when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            return fh.read(limit).decode("utf-8", "replace")
    except OSError:
        return None


def sysctl_values(root: str = "/proc/sys", trees: tuple[str, ...] = SYSCTL_TREES) -> dict[str, str]:
    """Readable tunables under ``trees`` of ``root``, by dotted name (write-only ones skipped)."""
    values: dict[str, str] = {}
    for tree in trees:
        base = os.path.join(root, tree)
        paths: list[str] = []
        if os.path.isfile(base):
            paths.append(base)
        for dirpath, dirnames, filenames in os.walk(base):
            rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
            skip = _SYSCTL_SKIP_DIRS.match
            dirnames[:] = sorted(d for d in dirnames if not skip(f"{rel_dir}/{d}"))
            paths.extend(os.path.join(dirpath, name) for name in sorted(filenames))
        for path in paths:
            raw = read_small(path, 65536)
            if raw is not None:
                values[os.path.relpath(path, root).replace(os.sep, ".")] = " ".join(raw.split())
    return values


def sysctl_text(values: dict[str, str]) -> str:
    """Tunables as ``sysctl -a`` text (what bundles store)."""
    return "".join(f"{k} = {v}\n" for k, v in sorted(values.items()))


def process_text(pid: int, proc_root: str = "/proc") -> str | None:
    """The bundle artifact for a live process (``# auditor-proc`` head, command line, limits
    table), or None when it has gone or cannot be read."""
    limits = read_small(f"{proc_root}/{pid}/limits")
    if limits is None:
        return None
    name = (read_small(f"{proc_root}/{pid}/comm") or "").strip().replace(" ", "_")
    raw_cmd = (read_small(f"{proc_root}/{pid}/cmdline") or "").replace("\0", " ")
    cmdline = " ".join(raw_cmd.split())[:500]
    status = read_small(f"{proc_root}/{pid}/status") or ""
    ppid = re.search(r"^PPid:\s*(\d+)", status, re.M)
    try:
        fds = str(len(os.listdir(f"{proc_root}/{pid}/fd")))
    except OSError:
        fds = "?"
    parent = ppid.group(1) if ppid else "?"
    head = f"# auditor-proc pid={pid} name={name or '?'} ppid={parent} fds={fds}\n"
    return f"{head}# cmdline: {cmdline}\n{limits}"


def _net_namespace(pid: int | str, proc_root: str) -> str | None:
    try:
        return os.readlink(f"{proc_root}/{pid}/ns/net")
    except OSError:
        return None


def nginx_pids(proc_root: str = "/proc") -> list[int]:
    """Pids of the nginx processes (master and workers) in this network namespace."""
    mine = _net_namespace("self", proc_root)
    found = []
    for entry in os.listdir(proc_root):
        if (
            entry.isdigit()
            and (read_small(f"{proc_root}/{entry}/comm") or "").strip() == "nginx"
            and (mine is None or _net_namespace(entry, proc_root) == mine)
        ):
            found.append(int(entry))
    return sorted(found)


def listening_pids(ss_text: str) -> set[int]:
    """Pids owning the listening sockets of ``ss -tlnpi`` output."""
    pids: set[int] = set()
    for line in ss_text.splitlines():
        words = line.split()
        if "LISTEN" in words[:2]:
            pids.update(int(p) for p in _SS_PID.findall(line))
    return pids


def nginx_command(pids: list[int], proc_root: str = "/proc") -> tuple[str, ...] | None:
    """``nginx -T`` for the running master's own -c/-p/-g, or the default config."""
    binary = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/nginx/sbin/nginx") if os.path.exists(p)), None
    )
    argv: list[str] = []
    for pid in pids:
        parts = (read_small(f"{proc_root}/{pid}/cmdline") or "").split("\0")
        if parts and parts[0].startswith("nginx: master process"):
            words = " ".join(parts).split()[3:]
            if words:
                binary = words[0] if os.path.isabs(words[0]) else binary
                rest = words[1:]
                for flag in ("-c", "-p", "-g"):
                    if flag in rest and rest.index(flag) + 1 < len(rest):
                        i = rest.index(flag)
                        argv += [flag, " ".join(rest[i + 1 :]) if flag == "-g" else rest[i + 1]]
            break
    if binary is None:
        return None
    return (binary, "-T", *argv)


def boot_time() -> datetime | None:
    m = re.search(r"^btime (\d+)", read_small("/proc/stat") or "", re.M)
    return datetime.fromtimestamp(int(m.group(1)), timezone.utc) if m else None  # noqa: UP017


def timezone_name() -> str:
    name = read_small("/etc/timezone")
    if name is not None:
        return name.strip()
    try:
        link = os.readlink("/etc/localtime")
        return link.split("zoneinfo/", 1)[1] if "zoneinfo/" in link else link
    except OSError:
        return os.environ.get("TZ", "UTC").lstrip(":") or "UTC"
