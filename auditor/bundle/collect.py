"""``auditor collect``: snapshot the live host into one bundle, read-only.

The bundle holds log windows (kernel, syslog, nginx, firewall), firewall rules
of every backend present, sysctls, counters before and after a sample,
listeners, process limits of listening processes and nginx, ``nginx -T``, host
facts, and ``manifest.json`` listing what was collected, what could not be
(with why) and what was redacted. Nothing on the host is changed: only reads
and ``*-save``/``list`` commands run.

The bundle is private from the start: built in a 0700 folder, files 0600, the
archive written through a new 0600 file in the target folder and renamed into
place; an interrupt (SIGINT, SIGTERM, SIGHUP) leaves neither.

Part of the standalone collector: standard library only, Python 3.9.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from auditor.bundle.hostread import (
    boot_time,
    listening_pids,
    nginx_command,
    nginx_pids,
    process_text,
    sysctl_text,
    sysctl_values,
    timezone_name,
)
from auditor.bundle.logs import collect_logs
from auditor.bundle.obfuscate import obfuscate_dir
from auditor.bundle.writer import (
    COMMAND_TIMEOUT,
    SNAPSHOT_MARK,
    Collector,
    private_dirs,
)

FORMAT_VERSION = 1
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
LISTENERS_COMMAND = ("ss", "-tlnpi")
# A counter window other than a sleep: (collector, rule commands) -> the manifest's "trace".
WindowHook = Callable[[Collector, Sequence[tuple[tuple[str, ...], str]]], "dict[str, Any]"]
MAPPING_SUFFIX = ".mapping.json"


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)  # noqa: UP017 (Python 3.9 has no datetime.UTC)


def snapshot_counters(col: Collector, phase: str) -> datetime:
    """Copy every counter file, each headed by ``# auditor-snapshot <phase> <time>``."""
    now = _utcnow()
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


def collect_dir(
    dest: str,
    since: timedelta = timedelta(hours=2),
    sample: float = 10.0,
    logs: bool = True,
    rules: bool = True,
    redact: bool = True,
    collector: str = "auditor collect",
    window: WindowHook | None = None,
) -> dict[str, Any]:
    """Collect into the directory ``dest``; returns the manifest (also written as manifest.json).

    ``window``, when given, is the counter window instead of a ``sample`` sleep: it is
    called between the two counter snapshots with the collector and the rule commands
    (the full auditor passes a kernel trace window, :func:`auditor.bundle.trace.hook`;
    the standalone collector has none), and what it returns is the manifest's ``trace``."""
    private_dirs(dest)
    col = Collector(dest, redact)
    started = _utcnow()
    times: dict[str, str] = {}
    traced: dict[str, Any] | None = None
    if window is not None:
        times["before"] = snapshot_counters(col, "before").isoformat()
        traced = window(col, RULE_COMMANDS if rules else ())
    elif sample > 0:
        times["before"] = snapshot_counters(col, "before").isoformat()
        time.sleep(sample)
    times["after"] = snapshot_counters(col, "after").isoformat()
    col.write("sysctl/sysctl-a.txt", sysctl_text(sysctl_values()), "/proc/sys")
    ss_text = col.run(LISTENERS_COMMAND, "listeners/ss-tlnpi.txt")
    pids = listening_pids(ss_text or "")
    nginx = nginx_pids()
    pids.update(nginx)
    for pid in sorted(pids):
        text = process_text(pid)
        if text is None:
            col.miss(f"/proc/{pid}/limits", "process gone or not readable")
        else:
            col.write(f"proc/{pid}.limits", text, f"/proc/{pid}/limits")
    nginx_t = None
    argv = nginx_command(nginx)
    if argv is None:
        col.miss("nginx -T", "nginx not installed")
    else:
        nginx_t = col.run(argv, "nginx/nginx-T.txt")
    if rules:
        for cmd, rel in RULE_COMMANDS:
            col.run(cmd, rel)
    if logs:
        collect_logs(col, since, nginx_t)
    bt = boot_time()
    manifest: dict[str, Any] = {
        "auditor-bundle": FORMAT_VERSION,
        "collector": collector,
        "created": started.isoformat(),
        "host": {
            "name": socket.gethostname(),
            "kernel": os.uname().release,
            "kernel_version": os.uname().version,
            "boot_time": bt.isoformat() if bt else None,
            "timezone": timezone_name(),
        },
        "since_seconds": since.total_seconds(),
        "sample_seconds": sample,
        "snapshots": times,
        **({"trace": traced} if traced is not None else {}),
        "artifacts": col.artifacts,
        "missing": col.missing,
        "redacted": col.redactions if redact else "off (--no-redact)",
    }
    col.write_raw("manifest.json", json.dumps(manifest, indent=1))
    return manifest


class _Stop(KeyboardInterrupt):
    """Raised by SIGTERM/SIGHUP so that a collect cleans up as on Ctrl-C."""


def _stop(signum: int, frame: object) -> None:
    raise _Stop(signal.Signals(signum).name)


def _new_file(final: str) -> tuple[int, str]:
    """A new 0600 file beside ``final`` (mkstemp: O_EXCL, never through a link)."""
    folder, name = os.path.split(os.path.abspath(final))
    return tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)


def collect(
    output: str,
    since: timedelta = timedelta(hours=2),
    sample: float = 10.0,
    redact: bool = True,
    obfuscate: bool = False,
    collector: str = "auditor collect",
    window: WindowHook | None = None,
) -> dict[str, Any]:
    """Collect into the archive ``output`` (.tar.gz); returns the manifest. With ``obfuscate``
    the owner's mapping of stand-ins goes to ``output + MAPPING_SUFFIX``, outside the bundle."""
    handlers: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            handlers[sig] = signal.signal(sig, _stop)
    work = tempfile.mkdtemp(prefix="auditor-collect-")
    parts: list[str] = []
    try:
        top = "auditor-bundle-" + _utcnow().strftime("%Y%m%dT%H%M%SZ")
        manifest = collect_dir(os.path.join(work, top), since, sample, redact=redact,
                               collector=collector, window=window)
        finals: list[tuple[str, str]] = []
        if obfuscate:
            mapping = obfuscate_dir(os.path.join(work, top))
            fd, part = _new_file(output + MAPPING_SUFFIX)
            parts.append(part)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(mapping, fh, indent=1)
            finals.append((part, output + MAPPING_SUFFIX))
            with open(os.path.join(work, top, "manifest.json"), encoding="utf-8") as fh:
                manifest = json.load(fh)
        fd, part = _new_file(output)
        parts.append(part)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            tar.add(os.path.join(work, top), arcname=top)
        finals.append((part, output))
        for part, final in finals:
            os.replace(part, final)
        parts.clear()
        return manifest
    finally:
        for part in parts:
            if os.path.exists(part):
                os.unlink(part)
        shutil.rmtree(work, ignore_errors=True)
        for sig, old in handlers.items():
            signal.signal(sig, old)


def default_output(obfuscate: bool = False) -> str:
    """``auditor-HOST-TIME.tar.gz`` (no host name when the bundle is to be obfuscated)."""
    stamp = _utcnow().strftime("%Y%m%dT%H%M%SZ")
    host = "bundle" if obfuscate else socket.gethostname()
    return f"auditor-{host}-{stamp}.tar.gz"


def summary(manifest: dict[str, Any], output: str) -> list[str]:
    """What a collect tells its user: counts, then each thing not collected and why."""
    redacted = manifest.get("redacted")
    count = sum(int(r.get("count", 0)) for r in redacted) if isinstance(redacted, list) else 0
    lines = [
        f"{output}: {len(manifest['artifacts'])} artifacts, "
        f"{len(manifest['missing'])} not collected, {count} secrets redacted"
    ]
    lines += [f"  not collected: {m['what']}: {m['why']}" for m in manifest["missing"]]
    return lines

