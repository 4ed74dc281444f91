"""Record the kernel's own reset and drop reasons for a window of seconds.

:func:`record` enables ``tcp:tcp_send_reset``, ``tcp:tcp_receive_reset`` and
``skb:kfree_skb`` (where the kernel has them) in a private tracefs instance (see
:mod:`auditor.sources.tracefs`), reads ``trace_pipe`` while the window lasts and
writes ``trace/kernel-trace.jsonl`` (one JSON object per kernel record: the kernel's
own text line, its wall-clock time and the cgroup of the process it ran in) and
``trace/header.json`` (kernel release, which tracepoints existed and were recorded,
what could not be and why, records kept, records lost by the ring buffer).

Work is bounded: ``kfree_skb`` is filtered in the kernel to the drop reasons that
explain resets, the per-CPU buffer has a fixed size, at most :data:`MAX_STORED`
records are written (the rest only counted by reason), and cgroups are read for at
most :data:`MAX_PIDS` processes. SIGINT, SIGTERM and SIGHUP end the window early and
the instance is still removed.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from auditor.sources import tracefs

HEADER = "trace/header.json"
RECORDS = "trace/kernel-trace.jsonl"
RECORD_KEY = "kernel-trace"
HEADER_KEY = "auditor-trace-header"
BUFFER_KB = 2048  # per CPU, on hosts of up to 16 CPUs
TOTAL_BUFFER_KB = 32768  # all CPUs together, on bigger hosts
MAX_STORED = 50_000
MAX_PIDS = 1024
MAX_LINE = 4096
READ_CHUNK = 1 << 16
# Drop reasons that explain a reset or a refused connection; the rest stay in the kernel.
DROP_REASONS = ("NETFILTER_DROP", "TCP_LISTEN_OVERFLOW", "SOCKET_BACKLOG", "PROTO_MEM")
ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
TRACEPOINTS = ("tcp/tcp_send_reset", "tcp/tcp_receive_reset", "skb/kfree_skb")
SINCE = {
    "tcp/tcp_send_reset": "reset reasons need Linux 6.10",
    "skb/kfree_skb": "drop reasons need Linux 5.17",
}
HEAD = re.compile(
    r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s+(?:\(\s*[\d-]+\)\s+)?\[(?P<cpu>\d+)\]\s+"
    r"(?P<flags>\S+)\s+(?P<ts>\d+\.\d+):\s+(?P<event>\w+):\s?(?P<fields>.*)$"
)
REASON = re.compile(r"\breason(?:=|: )(\w+)")
PORTS = re.compile(r"\b(?:src|dest)=\S*:(\d+)\b|\b[sd]port=(\d+)\b")
IRQ_FLAGS = frozenset("hHsz")  # third flag: the record was made in an interrupt, not a task


@dataclass(frozen=True)
class TraceFilter:
    """What to keep: resets on these ports only (empty: every port)."""

    ports: tuple[int, ...] = ()


@dataclass(frozen=True)
class TraceSummary:
    """What a recording window produced; ``not_recorded`` says what is missing and why."""

    header: str
    records: str
    seen: int
    stored: int
    lost: int
    by_reason: Mapping[str, int] = field(default_factory=dict)
    recorded: tuple[str, ...] = ()
    not_recorded: tuple[tuple[str, str], ...] = ()
    removed: bool = True


def buffer_kb() -> int:
    """The per-CPU ring buffer size: bounded per CPU and in total."""
    return max(256, min(BUFFER_KB, TOTAL_BUFFER_KB // (os.cpu_count() or 1)))


def in_task(flags: str, pid: int) -> bool:
    """True when the kernel ran the record in a process's own context (not an interrupt)."""
    return pid > 0 and not (len(flags) > 2 and flags[2] in IRQ_FLAGS)


def read_cgroup(pid: int) -> str | None:
    """The cgroup path of ``pid`` (the unified one, else systemd's), None when gone."""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8", errors="replace") as fh:
            text = fh.read(4096)
    except OSError:
        return None
    paths = [ln.split(":", 2) for ln in text.splitlines() if ln.count(":") >= 2]
    for want in ("", "name=systemd"):
        for _, ctrl, path in paths:
            if ctrl == want and path.strip() not in ("", "/"):
                return path.strip()[:512]
    return None


@contextmanager
def _signals_end_window() -> Iterator[None]:
    """SIGINT/SIGTERM/SIGHUP raise (so every ``finally`` runs); the old handlers come back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, _frame: Any) -> None:
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    old = {s: signal.signal(s, stop) for s in sigs}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


@dataclass
class _Writer:
    """Turns kernel lines into JSON records, bounded, counting what it keeps and skips."""

    out: IO[str]
    offset: float  # wall clock minus trace clock
    ports: frozenset[int]
    seen: int = 0
    stored: int = 0
    filtered: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    cgroups: dict[int, str | None] = field(default_factory=dict)

    def line(self, raw: str) -> None:
        m = HEAD.match(raw)
        if m is None or raw.startswith("#"):
            return
        event = m.group("event")
        fields = m.group("fields")
        if self.ports and event != "kfree_skb":
            ports = {int(a or b) for a, b in PORTS.findall(fields)}
            if not ports & self.ports:
                self.filtered += 1
                return
        self.seen += 1
        r = REASON.search(fields)
        self.by_reason[f"{event}:{r.group(1) if r else '-'}"] += 1
        if self.stored >= MAX_STORED:
            return
        when = datetime.fromtimestamp(float(m.group("ts")) + self.offset, UTC)
        rec: dict[str, Any] = {RECORD_KEY: event, "time": when.isoformat(), "raw": raw}
        pid = int(m.group("pid"))
        if event == "tcp_send_reset" and in_task(m.group("flags"), pid):
            if pid not in self.cgroups and len(self.cgroups) < MAX_PIDS:
                self.cgroups[pid] = read_cgroup(pid)
            if self.cgroups.get(pid):
                rec["cgroup"] = self.cgroups[pid]
        self.out.write(json.dumps(rec, separators=(",", ":")) + "\n")
        self.stored += 1


def _enable(inst: tracefs.Instance, point: str, flt: TraceFilter, doc: dict[str, Any]) -> None:
    """Switch one tracepoint on in the instance, with its kernel-side filter."""
    fmt = inst.read(f"events/{point}/format")
    names = tracefs.field_names(fmt)
    reasons = tracefs.reason_names(fmt)
    doc["reasons"] = sorted(set(reasons.values()))
    doc["reason_field"] = "reason" in names
    expr = ""
    if point == "skb/kfree_skb":
        wanted = [n for n, name in reasons.items() if name in DROP_REASONS]
        if not wanted:
            raise OSError("none of the drop reasons " + ", ".join(DROP_REASONS))
        by_reason = " || ".join(f"reason == {n}" for n in sorted(wanted))
        expr = f"(protocol == {ETH_P_IP} || protocol == {ETH_P_IPV6}) && ({by_reason})"
    elif point == "tcp/tcp_receive_reset" and flt.ports and {"sport", "dport"} <= names:
        expr = " || ".join(f"sport == {p} || dport == {p}" for p in flt.ports)
    if expr:
        inst.write(f"events/{point}/filter", expr)
        doc["filter"] = expr
    inst.write(f"events/{point}/enable", "1")


def _drain(fd: int, writer: _Writer, tail: bytes, budget: int) -> tuple[bytes, bool]:
    """Read what the pipe has now (at most ``budget`` bytes); (unfinished line, pipe empty)."""
    while budget > 0:
        try:
            chunk = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return tail, True
        if not chunk:
            return tail, True
        budget -= len(chunk)
        lines = (tail + chunk).split(b"\n")
        tail = lines.pop()[:MAX_LINE]
        for raw in lines:
            writer.line(raw[:MAX_LINE].decode("utf-8", "replace"))
    return tail, False


def _window(inst: tracefs.Instance, writer: _Writer, seconds: float) -> None:
    fd = os.open(inst.file("trace_pipe"), os.O_RDONLY | os.O_NONBLOCK)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + seconds
        tail = b""
        while (left := deadline - time.monotonic()) > 0:
            poller.poll(int(min(left, 0.25) * 1000) + 1)
            tail, _ = _drain(fd, writer, tail, READ_CHUNK * 64)
        inst.write("tracing_on", "0")
        for _ in range(256):  # what the buffers still hold, bounded by their size
            tail, empty = _drain(fd, writer, tail, READ_CHUNK * 64)
            if empty:
                break
    finally:
        os.close(fd)


def _clock_offset(clock: str) -> float:
    ids = {"boot": time.CLOCK_BOOTTIME, "mono": time.CLOCK_MONOTONIC}
    return time.time() - time.clock_gettime(ids.get(clock, time.CLOCK_MONOTONIC))


def record(directory: str, seconds: float, flt: TraceFilter | None = None) -> TraceSummary:
    """Record for ``seconds`` into ``directory/trace/``; the window lasts even when tracing
    is impossible (so counters read around it still span it), and says why in the header."""
    flt = flt or TraceFilter()
    os.makedirs(os.path.join(directory, "trace"), exist_ok=True)
    header_path = os.path.join(directory, HEADER)
    records_path = os.path.join(directory, RECORDS)
    started = datetime.now(UTC)
    t0 = time.monotonic()
    points: list[dict[str, Any]] = []
    missing: list[tuple[str, str]] = []
    doc: dict[str, Any] = {HEADER_KEY: 1, "kernel": os.uname().release, "seconds": seconds}
    removed = True
    with (
        open(records_path, "w", encoding="utf-8") as out,
        _signals_end_window(),
    ):
        writer = _Writer(out, 0.0, frozenset(flt.ports))
        inst: tracefs.Instance | None = None
        try:
            inst = tracefs.Instance.create(buffer_kb())
            doc.update(instance=os.path.basename(inst.path), removed_stale=inst.removed_stale)
            doc["clock"] = clock = inst.set_clock()
            writer.offset = _clock_offset(clock)
            for point in TRACEPOINTS:
                item: dict[str, Any] = {"name": point.replace("/", ":"), "available": False}
                points.append(item)
                if not os.path.isdir(inst.file("events", point)):
                    missing.append((item["name"], "not in this kernel"))
                    continue
                item["available"] = True
                try:
                    _enable(inst, point, flt, item)
                except OSError as exc:
                    missing.append((item["name"], f"could not enable: {exc}"))
                    continue
                item["recorded"] = True
                if not item["reason_field"] and point in SINCE:
                    missing.append((item["name"] + " reason", f"no reason field: {SINCE[point]}"))
            _window(inst, writer, max(0.0, seconds - (time.monotonic() - t0)))
            doc["lost"] = inst.lost()
        except tracefs.TracefsError as exc:
            missing.append(("kernel trace", exc.strerror or str(exc)))
            time.sleep(max(0.0, seconds - (time.monotonic() - t0)))
        finally:
            if inst is not None:
                removed = _close_quietly(inst)
    doc.update(
        started=started.isoformat(),
        ended=datetime.now(UTC).isoformat(),
        tracepoints=points,
        not_recorded=[{"what": w, "why": y} for w, y in missing],
        filter={"ports": list(flt.ports)},
        buffer_size_kb=buffer_kb(),
        seen=writer.seen,
        stored=writer.stored,
        not_stored=writer.seen - writer.stored,
        filtered=writer.filtered,
        by_reason=dict(writer.by_reason),
        removed=removed,
    )
    with open(header_path, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1)
    return TraceSummary(
        header_path,
        records_path,
        writer.seen,
        writer.stored,
        int(doc.get("lost", 0)),
        dict(writer.by_reason),
        tuple(p["name"] for p in points if p.get("recorded")),
        tuple(missing),
        removed,
    )


def _close_quietly(inst: tracefs.Instance) -> bool:
    """Remove the instance with the ending signals held back, so a second one cannot stop it."""
    sigs = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    main = threading.current_thread() is threading.main_thread()
    if main:
        signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        return inst.close()
    finally:
        if main:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, sigs)
