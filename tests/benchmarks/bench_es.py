"""Shipping throughput of ``auditor audit``: events/s on the auditor side, server time apart.

    python -m tests.benchmarks.bench_es [--events 1000000] [--out DIR] [--bulk-docs 2000]

Generates a kernel log of N netfilter REJECT lines, starts osmem-server (behind the
test proxy that rewrites the media type) and runs the real audit job once: read,
parse, correlate, serialise, bulk. Time spent waiting for HTTP answers (proxy and
server) is measured around the transport and reported apart, so "auditor side" is
serialisation plus bulk building (and, separately, reading + parsing + correlating).
RSS is sampled as events stream by, to show memory stays flat in the event count.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from auditor.commands import _audit_job
from auditor.config import load_config
from auditor.sinks import es_docs
from auditor.sinks.elasticsearch import EsSink
from tests.es.conftest import osmem_binary, stamp


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def generate(path: Path, n: int) -> None:
    rnd = random.Random(7)
    t0 = datetime.now() - timedelta(hours=6)
    with open(path, "w") as fh:
        buf = []
        for i in range(n):
            ts = t0 + timedelta(milliseconds=20 * i)
            buf.append(
                f"{stamp(ts)} web1 kernel: [{i}.000001] REJECT-IN: IN=eth0 OUT= "
                "MAC=00:11:22:33:44:55:66:77:88:99:aa:bb:08:00 "
                f"SRC=192.0.2.{rnd.randrange(1, 255)} DST=198.51.100.5 LEN=60 TOS=0x00 PREC=0x00 "
                f"TTL=64 ID={i % 65536} DF PROTO=TCP SPT={1024 + i % 60000} "
                f"DPT={rnd.choice((80, 443, 8080))} WINDOW=64240 RES=0x00 SYN URGP=0\n"
            )
            if len(buf) == 10000:
                fh.write("".join(buf))
                buf.clear()
        fh.write("".join(buf))


class Clock:
    """Accumulates time spent inside wrapped callables."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    def wrap(self, func: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t
                self.calls += 1
        return timed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--bulk-docs", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--forward-every", type=int, default=20,
                    help="send 1 bulk in N to osmem-server, acknowledge the rest in the proxy "
                         "(osmem indexes ~1,000 such documents/s; 1 = all)")
    args = ap.parse_args()
    binary = osmem_binary()
    if binary is None:
        raise SystemExit("osmem-server is not installed (pip install osmem-server)")
    out = args.out or Path(tempfile.mkdtemp(prefix="auditor-bench-es-"))
    out.mkdir(parents=True, exist_ok=True)
    log = out / "kern.log"
    t = time.perf_counter()
    generate(log, args.events)
    print(f"generated {args.events} lines ({log.stat().st_size / 1e6:.0f} MB) "
          f"in {time.perf_counter() - t:.1f} s")
    for name in ("state.json", "state.json.lock"):
        (out / name).unlink(missing_ok=True)
    proc = subprocess.Popen([binary, "--addr", "127.0.0.1:0", "--no-ja",
                             "--parent-pid", str(os.getpid())],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = json.loads(proc.stdout.readline())["url"]
    # the proxy runs in a process of its own, so that its work never counts as auditor's
    every = str(args.forward_every if args.forward_every > 1 else 0)
    proxy = subprocess.Popen([sys.executable, "-m", "tests.es.proxy", url, every],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proxy.stdout is not None
    proxy_url = proxy.stdout.readline().strip()
    cfg_path = out / "auditor.toml"
    cfg_path.write_text(
        f'host = "bench"\nstate = "{out}/state.json"\nspool = "{out}/spool"\n'
        f'dead_letter = "{out}/dead.ndjson"\nsince = ""\n'
        f'[elasticsearch]\nhosts = ["{proxy_url}"]\nnamespace = "bench"\n'
        f"bulk_docs = {args.bulk_docs}\nbulk_bytes = \"50MiB\"\ntimeout = 120\n"
        f'[[inputs]]\npath = "{log}"\ntype = "kernel"\n'
    )
    cfg = load_config(str(cfg_path), env={})

    serialise, send, http = Clock(), Clock(), Clock()
    es_docs.DocBuilder.event = serialise.wrap(es_docs.DocBuilder.event)  # type: ignore[method-assign]
    orig_send = EsSink.send

    def send_timed(self: EsSink, docs: Any) -> Any:
        transport = self.client.transport
        if not getattr(transport, "_bench", False):
            transport.perform_request = http.wrap(transport.perform_request)  # type: ignore[method-assign]
            transport._bench = True  # type: ignore[attr-defined]
        return send.wrap(orig_send)(self, docs)

    EsSink.send = send_timed  # type: ignore[method-assign]
    samples: list[tuple[int, float]] = []
    step = max(1, args.events // 10)

    def on_event(n: int) -> None:
        if n % step == 0:
            samples.append((n, rss_mb()))

    rss0 = rss_mb()
    t0 = time.perf_counter()
    try:
        report = _audit_job.run_audit(cfg, host_snapshot=False, on_event=on_event)
    finally:
        total = time.perf_counter() - t0
        for child in (proxy, proc):
            child.kill()  # our own children, by PID
            child.wait()
    n = report.events
    bulk_build = send.seconds - http.seconds
    auditor_side = serialise.seconds + bulk_build
    rest = total - serialise.seconds - send.seconds
    print(f"events: {n}, documents created: {report.sent.created}, "
          f"duplicates: {report.sent.duplicates}, spooled: {report.spooled}, "
          f"findings: {report.findings}, bulk requests: {http.calls}")
    print(f"end to end: {total:.1f} s = {n / total:,.0f} events/s")
    print(f"  read + parse + correlate: {rest:.1f} s ({n / rest:,.0f} events/s)")
    print(f"  serialise (ECS JSON + ids): {serialise.seconds:.1f} s "
          f"({n / serialise.seconds:,.0f} events/s)")
    print(f"  bulk building (client helpers): {bulk_build:.1f} s ({n / bulk_build:,.0f} events/s)")
    print(f"  server + proxy (HTTP wait): {http.seconds:.1f} s; osmem-server received "
          f"1 bulk in {max(1, args.forward_every)}")
    print(f"AUDITOR SIDE (serialise + bulk building): {n / auditor_side:,.0f} events/s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"RSS: start {rss0:.0f} MB, peak {peak:.0f} MB; while streaming: "
          + ", ".join(f"{k // 1000}k={v:.0f}MB" for k, v in samples))


if __name__ == "__main__":
    main()
