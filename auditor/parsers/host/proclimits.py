"""Process limits: ``/proc/PID/limits`` and open descriptor counts, above all for nginx workers.

Bundles store one artifact per process: the raw ``limits`` table preceded by a
comment line ``# auditor-proc pid=.. name=.. ppid=.. fds=..`` and ``# cmdline: ..``.
A bare ``limits`` file (sosreport ``proc/1234/limits``) is read too; its pid
then comes from the path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from auditor.models import Location, ParseIssue
from auditor.parsers.host._text import issue

PARSER = "proc-limits"
_ROW = re.compile(r"^(Max [A-Za-z ]+?)\s{2,}(\S+)\s+(\S+)(?:\s+(\S+))?\s*$")
_HEAD = re.compile(r"^#\s*auditor-proc\s+(.*)$")
_KV = re.compile(r"(\w+)=(\S+)")
_PID_IN_PATH = re.compile(r"(?:^|/)(\d+)/limits$")


@dataclass(frozen=True, slots=True)
class ProcessLimits:
    """One process: its open-files limit next to the descriptors it holds."""

    pid: int | None
    name: str = ""
    cmdline: str = ""
    ppid: int | None = None
    nofile_soft: int | None = None  # None: unlimited or unknown
    nofile_hard: int | None = None
    open_fds: int | None = None
    limits: tuple[tuple[str, str, str, str], ...] = ()  # (limit, soft, hard, units)
    location: Location | None = None

    @property
    def is_nginx_worker(self) -> bool:
        return self.cmdline.startswith("nginx: worker process")

    @property
    def is_nginx(self) -> bool:
        return self.name == "nginx" or self.cmdline.startswith("nginx:")

    @property
    def label(self) -> str:
        role = " worker" if self.is_nginx_worker else (" master" if self.is_nginx else "")
        return f"{self.name or 'pid'}{role} {self.pid}"


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def parse_text(text: str, origin: str) -> tuple[ProcessLimits | None, tuple[ParseIssue, ...]]:
    """One process's limits artifact; None (and an issue) when no limits table is found."""
    meta: dict[str, str] = {}
    cmdline = ""
    rows: list[tuple[str, str, str, str]] = []
    issues: list[ParseIssue] = []
    nofile_line = 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        head = _HEAD.match(line)
        if head:
            meta.update(_KV.findall(head.group(1)))
            continue
        if line.startswith("# cmdline:"):
            cmdline = line.split(":", 1)[1].strip()
            continue
        if not line.strip() or line.startswith("#") or line.startswith("Limit "):
            continue
        m = _ROW.match(line)
        if not m:
            issues.append(issue(origin, n, PARSER, "not a limits row", raw))
            continue
        rows.append((m.group(1), m.group(2), m.group(3), m.group(4) or ""))
        if m.group(1) == "Max open files":
            nofile_line = n
    if not rows:
        issues.append(issue(origin, 0, PARSER, "no limits table found"))
        return None, tuple(issues)
    pid_text = meta.get("pid") or (m.group(1) if (m := _PID_IN_PATH.search(origin)) else "")
    nofile = next((r for r in rows if r[0] == "Max open files"), None)
    proc = ProcessLimits(
        pid=_number(pid_text),
        name=meta.get("name", ""),
        cmdline=cmdline,
        ppid=_number(meta.get("ppid", "")),
        nofile_soft=_number(nofile[1]) if nofile else None,
        nofile_hard=_number(nofile[2]) if nofile else None,
        open_fds=_number(meta.get("fds", "")),
        limits=tuple(rows),
        location=Location(origin, nofile_line),
    )
    return proc, tuple(issues)

