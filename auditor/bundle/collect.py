"""``auditor collect``: snapshot the live host into one bundle, read-only.

The bundle holds log windows (kernel, syslog, nginx, firewall), firewall rules
of every backend present, sysctls, counters before and after a sample,
listeners, process limits of listening processes and nginx, ``nginx -T``, host
facts, and ``manifest.json`` listing what was collected and what could not be
(with why). Nothing on the host is changed: only reads and ``*-save``/``list``
commands run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from auditor.bundle import logs as loglist
from auditor.bundle.reader import SNAPSHOT_MARK
from auditor.parsers.host import listeners, proclimits, sysctl

FORMAT_VERSION = 1
COMMAND_TIMEOUT = 30.0
COUNTER_FILES = (
    ("/proc/net/netstat", "netstat"),
    ("/proc/net/snmp", "snmp"),
    ("/proc/net/snmp6", "snmp6"),
    ("/proc/net/sockstat", "sockstat"),
    ("/proc/net/sockstat6", "sockstat6"),
    ("/proc/net/stat/nf_conntrack", "nf_conntrack"),
)
RULE_COMMANDS = (
    (("iptables-nft-save", "-c"), "rules/iptables-nft-save.txt"),
    (("iptables-legacy-save", "-c"), "rules/iptables-legacy-save.txt"),
    (("ip6tables-nft-save", "-c"), "rules/ip6tables-nft-save.txt"),
    (("ip6tables-legacy-save", "-c"), "rules/ip6tables-legacy-save.txt"),
    (("nft", "-j", "list", "ruleset"), "rules/nft-ruleset.json"),
    (("ipset", "save"), "rules/ipset.txt"),
)


@dataclass
class Collector:
    """Writes artifacts under ``root`` and keeps the manifest's record of each."""

    root: str
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    missing: list[dict[str, str]] = field(default_factory=list)

    def write(self, rel: str, text: str, source: str, note: str = "") -> None:
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        self.artifacts.append({"path": rel, "source": source, "note": note, "bytes": len(text)})

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


def boot_time() -> datetime | None:
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            m = re.search(r"^btime (\d+)", fh.read(), re.M)
    except OSError:
        return None
    return datetime.fromtimestamp(int(m.group(1)), UTC) if m else None


def timezone_name() -> str:
    try:
        with open("/etc/timezone", encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError:
        pass
    try:
        link = os.readlink("/etc/localtime")
        return link.split("zoneinfo/", 1)[1] if "zoneinfo/" in link else link
    except OSError:
        return os.environ.get("TZ", "UTC").lstrip(":") or "UTC"


def snapshot_counters(col: Collector, phase: str) -> datetime:
    """Copy every counter file, each headed by ``# auditor-snapshot <phase> <time>``."""
    now = datetime.now(UTC)
    mark = f"{SNAPSHOT_MARK} {phase} {now.isoformat()}\n"
    for src, name in COUNTER_FILES:
        try:
            with open(src, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
        except OSError as exc:
            if phase == "before":
                col.miss(src, exc.strerror or str(exc))
            continue
        col.write(f"counters/{phase}/{name}", mark + text, src, phase)
    if not os.path.exists("/proc/net/stat/nf_conntrack") and shutil.which("conntrack"):
        out = subprocess.run(
            ["conntrack", "-S"],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        if out.returncode == 0 and out.stdout.strip():
            col.write(f"counters/{phase}/conntrack-S", mark + out.stdout, "conntrack -S", phase)
    return now


def nginx_command(pids: list[int]) -> tuple[str, ...] | None:
    """``nginx -T`` for the running master's own -c/-p/-g, or the default config."""
    binary = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/nginx/sbin/nginx") if os.path.exists(p)), None
    )
    argv: list[str] = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                parts = fh.read().decode("utf-8", "replace").split("\0")
        except OSError:
            continue
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


def collect_dir(
    dest: str,
    since: timedelta = timedelta(hours=2),
    sample: float = 10.0,
    logs: bool = True,
    rules: bool = True,
) -> dict[str, Any]:
    """Collect into the directory ``dest``; returns the manifest (also written as manifest.json)."""
    os.makedirs(dest, exist_ok=True)
    col = Collector(dest)
    started = datetime.now(UTC)
    times: dict[str, str] = {}
    if sample > 0:
        times["before"] = snapshot_counters(col, "before").isoformat()
        time.sleep(sample)
    times["after"] = snapshot_counters(col, "after").isoformat()
    live_sysctls = sysctl.read_live()
    col.write("sysctl/sysctl-a.txt", sysctl.format_text(live_sysctls), "/proc/sys")
    ss_text = col.run(listeners.LIVE_COMMAND, "listeners/ss-tlnpi.txt")
    pids: set[int] = set()
    if ss_text:
        found, _ = listeners.parse_text(ss_text, "ss")
        pids.update(pid for x in found for pid in x.pids)
    nginx_pids = proclimits.nginx_pids()
    pids.update(nginx_pids)
    for pid in sorted(pids):
        text = proclimits.artifact_text(pid)
        if text is None:
            col.miss(f"/proc/{pid}/limits", "process gone or not readable")
        else:
            col.write(f"proc/{pid}.limits", text, f"/proc/{pid}/limits")
    nginx_t = None
    argv = nginx_command(nginx_pids)
    if argv is None:
        col.miss("nginx -T", "nginx not installed")
    else:
        nginx_t = col.run(argv, "nginx/nginx-T.txt")
    if rules:
        for cmd, rel in RULE_COMMANDS:
            col.run(cmd, rel)
    if logs:
        loglist.collect_logs(col, since, nginx_t)
    manifest: dict[str, Any] = {
        "auditor-bundle": FORMAT_VERSION,
        "created": started.isoformat(),
        "host": {
            "name": socket.gethostname(),
            "kernel": os.uname().release,
            "kernel_version": os.uname().version,
            "boot_time": (bt.isoformat() if (bt := boot_time()) else None),
            "timezone": timezone_name(),
        },
        "since_seconds": since.total_seconds(),
        "sample_seconds": sample,
        "snapshots": times,
        "artifacts": col.artifacts,
        "missing": col.missing,
    }
    with open(os.path.join(dest, "manifest.json"), "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=1)
    return manifest


def collect(
    output: str, since: timedelta = timedelta(hours=2), sample: float = 10.0
) -> dict[str, Any]:
    """Collect into the archive ``output`` (.tar.gz); returns the manifest."""
    work = tempfile.mkdtemp(prefix="auditor-collect-")
    try:
        top = "auditor-bundle-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        manifest = collect_dir(os.path.join(work, top), since, sample)
        tmp_out = output + ".part"
        with tarfile.open(tmp_out, "w:gz") as tar:
            tar.add(os.path.join(work, top), arcname=top)
        os.replace(tmp_out, output)
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)
