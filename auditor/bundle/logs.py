"""The log part of a bundle: kernel (journal or kern.log), syslog, nginx and firewall logs.

A file (or rotation) is taken when it was written inside the window; a plain
file larger than :data:`MAX_LOG_BYTES` keeps only its tail. Events outside the
window are filtered at analysis time, where timestamps are parsed.
"""

from __future__ import annotations

import glob
import os
import shutil
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from auditor.bundle.collect import Collector

MAX_LOG_BYTES = 256 << 20
SYSTEM_LOGS = (
    "/var/log/kern.log",
    "/var/log/syslog",
    "/var/log/messages",
    "/var/log/ufw.log",
    "/var/log/firewalld",
)
_COMPRESSED = (".gz", ".bz2", ".xz")


def rotations(path: str) -> list[str]:
    """``path`` and its rotations (``path.1``, ``path.2.gz``...), oldest first."""
    found = [
        p for p in glob.glob(glob.escape(path) + ".*") if _rotation_number(path, p) is not None
    ]
    found.sort(key=lambda p: -(_rotation_number(path, p) or 0))
    return [*found, path] if os.path.isfile(path) else found


def _rotation_number(base: str, path: str) -> int | None:
    rest = path[len(base) + 1 :]
    for suffix in _COMPRESSED:
        rest = rest.removesuffix(suffix)
    return int(rest) if rest.isdigit() else None


def copy_log(col: Collector, src: str, start: float) -> None:
    """Copy one log file into ``logs/<original path>`` when written since ``start``."""
    try:
        st = os.stat(src)
    except OSError as exc:
        col.miss(src, exc.strerror or str(exc))
        return
    if st.st_mtime < start:
        return
    rel = "logs" + os.path.abspath(src)
    dest = os.path.join(col.root, rel)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    note = ""
    try:
        with open(src, "rb") as fin, open(dest, "wb") as fout:
            if st.st_size > MAX_LOG_BYTES:
                if src.endswith(_COMPRESSED):
                    col.miss(src, f"compressed log larger than {MAX_LOG_BYTES >> 20} MiB: skipped")
                    fout.close()
                    os.unlink(dest)
                    return
                fin.seek(st.st_size - MAX_LOG_BYTES)
                fin.readline()  # start at a line boundary
                note = f"tail: last {MAX_LOG_BYTES >> 20} MiB of {st.st_size} bytes"
            shutil.copyfileobj(fin, fout, 1 << 20)
    except OSError as exc:
        col.miss(src, exc.strerror or str(exc))
        return
    col.artifacts.append({"path": rel, "source": src, "note": note, "bytes": os.path.getsize(dest)})


def nginx_log_paths(nginx_t: str | None) -> list[str]:
    """Absolute error_log and access_log files named by an ``nginx -T`` dump."""
    if not nginx_t:
        return []
    try:
        from auditor.nginx.config import parse_text

        cfg = parse_text(nginx_t, "nginx -T")
        paths = [e.path for e in cfg.error_logs] + [a.path for a in cfg.access_logs]
    except Exception:
        return []
    return sorted({p for p in paths if os.path.isabs(p) and "$" not in p})


def collect_logs(col: Collector, since: timedelta, nginx_t: str | None) -> None:
    start_dt = datetime.now(UTC) - since
    start = start_dt.timestamp()
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
    for base in bases:
        files = rotations(base)
        if not files:
            if base in SYSTEM_LOGS[:2] or base in nginx_paths:
                col.miss(base, "no such file")
            continue
        for path in files:
            copy_log(col, path, start)
