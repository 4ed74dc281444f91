"""The log part of a bundle: kernel (journal or kern.log), syslog, nginx and firewall logs.

A file (or rotation) is taken when it was written inside the window; a plain
file larger than :data:`MAX_LOG_BYTES` keeps only its tail. Events outside the
window are filtered at analysis time, where timestamps are parsed. nginx's log
files are the ones its ``nginx -T`` dump names; files it names as keys,
password or basic-auth files are never read, whatever else names them.

Part of the standalone collector: standard library only, Python 3.9.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import time
from datetime import timedelta

from auditor.bundle.writer import COMPRESSED, Collector

MAX_LOG_BYTES = 256 << 20
SYSTEM_LOGS = (
    "/var/log/kern.log",
    "/var/log/syslog",
    "/var/log/messages",
    "/var/log/ufw.log",
    "/var/log/firewalld",
)
NGINX_LOG_DIRECTIVES = ("error_log", "access_log")
NGINX_SECRET_DIRECTIVES = (
    "ssl_certificate_key",
    "ssl_password_file",
    "auth_basic_user_file",
    "ssl_session_ticket_key",
    "proxy_ssl_certificate_key",
    "proxy_ssl_password_file",
    "grpc_ssl_certificate_key",
    "uwsgi_ssl_certificate_key",
)
_CODE = re.compile(r"^((?:[^#\"']|\"[^\"]*\"|'[^']*')*)")
_NGINX_FILE_DIRECTIVE = re.compile(
    r"(?:^|[\s;{}])(" + "|".join(NGINX_LOG_DIRECTIVES + NGINX_SECRET_DIRECTIVES) + r")"
    r"\s+(?:\"([^\"]*)\"|'([^']*)'|([^\s;\"']+))"
)


def rotations(path: str) -> list[str]:
    """``path`` and its rotations (``path.1``, ``path.2.gz``...), oldest first."""
    found = [
        p for p in glob.glob(glob.escape(path) + ".*") if _rotation_number(path, p) is not None
    ]
    found.sort(key=lambda p: -(_rotation_number(path, p) or 0))
    return [*found, path] if os.path.isfile(path) else found


def _rotation_number(base: str, path: str) -> int | None:
    rest = path[len(base) + 1 :]
    for suffix in COMPRESSED:
        if rest.endswith(suffix):
            rest = rest[: -len(suffix)]
    return int(rest) if rest.isdigit() else None


def nginx_files(nginx_t: str | None) -> dict[str, set[str]]:
    """Absolute files an ``nginx -T`` dump names, by directive (``error_log``, ``access_log``,
    ``ssl_certificate_key``...); paths with variables are left out."""
    found: dict[str, set[str]] = {}
    for line in (nginx_t or "").splitlines():
        m = _CODE.match(line)
        for d in _NGINX_FILE_DIRECTIVE.finditer(m.group(1) if m else line):
            path = d.group(2) or d.group(3) or d.group(4) or ""
            if os.path.isabs(path) and "$" not in path:
                found.setdefault(d.group(1), set()).add(path)
    return found


def nginx_log_paths(nginx_t: str | None) -> list[str]:
    """Absolute error_log and access_log files named by an ``nginx -T`` dump."""
    files = nginx_files(nginx_t)
    return sorted(set().union(*(files.get(d, set()) for d in NGINX_LOG_DIRECTIVES)))


def secret_files(nginx_t: str | None) -> set[str]:
    """Real paths of the key, password and basic-auth files an ``nginx -T`` dump names."""
    files = nginx_files(nginx_t)
    named = set().union(*(files.get(d, set()) for d in NGINX_SECRET_DIRECTIVES))
    return {os.path.realpath(p) for p in named}


def copy_log(col: Collector, src: str, start: float, never: frozenset[str] = frozenset()) -> None:
    """Copy one log file into ``logs/<original path>`` when written since ``start``."""
    if os.path.realpath(src) in never:
        col.miss(src, "named as a key, password or basic-auth file: never read")
        return
    try:
        st = os.stat(src)
    except OSError as exc:
        col.miss(src, exc.strerror or str(exc))
        return
    if st.st_mtime < start:
        return
    rel = "logs" + os.path.abspath(src)
    note = ""
    try:
        with open(src, "rb") as fin:
            if st.st_size > MAX_LOG_BYTES:
                if src.endswith(COMPRESSED):
                    col.miss(src, f"compressed log larger than {MAX_LOG_BYTES >> 20} MiB: skipped")
                    return
                fin.seek(st.st_size - MAX_LOG_BYTES)
                fin.readline()  # start at a line boundary
                note = f"tail: last {MAX_LOG_BYTES >> 20} MiB of {st.st_size} bytes"
            col.copy(rel, fin, src, note)
    except (OSError, EOFError) as exc:
        col.miss(src, getattr(exc, "strerror", None) or str(exc))


def collect_logs(col: Collector, since: timedelta, nginx_t: str | None) -> None:
    start = time.time() - since.total_seconds()
    journal = shutil.which("journalctl")
    if journal and os.path.isdir("/run/systemd/journal"):
        argv = (
            journal,
            "-k",
            "--no-pager",
            "-q",
            "-o",
            "short-iso-precise",
            f"--since=@{int(start)}",
        )
        got = col.run(argv, "logs/journal-kernel.log")
        # systemd's own lines (PID 1): which services were stopped, killed and started in
        # the window, for restarts that cut connections (the kernel's lines leave them out)
        units = (journal, "_PID=1", "--no-pager", "-q", "-o", "short-iso-precise",
                 f"--since=@{int(start)}")
        col.run(units, "logs/journal-systemd.log")
    else:
        col.miss("journalctl -k", "no running journal")
        got = None
    if got is None and not any(os.path.exists(p) for p in SYSTEM_LOGS[:3]):
        # No journal and no kernel log file (containers, minimal hosts): the ring buffer
        # is all there is. Its stamps are absolute in this format; the window filters it.
        col.run(("dmesg", "--time-format", "iso"), "logs/dmesg.log", "kernel ring buffer")
    bases = list(SYSTEM_LOGS)
    nginx_paths = nginx_log_paths(nginx_t)
    bases += nginx_paths or sorted(glob.glob("/var/log/nginx/*.log"))
    never = frozenset(secret_files(nginx_t))
    for base in bases:
        files = rotations(base)
        if not files:
            if base in SYSTEM_LOGS[:2] or base in nginx_paths:
                col.miss(base, "no such file")
            continue
        for path in files:
            copy_log(col, path, start, never)
