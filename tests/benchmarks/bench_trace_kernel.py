"""Benchmark: the kernel trace recorder on a host sending ~10,000 resets per second.

Run (root): ``python tests/benchmarks/bench_trace_kernel.py [--rate 10000] [--seconds 5]``.
In a namespace of its own, a raw-socket sender writes SYNs to a port nothing listens on
at ``--rate`` per second for ``--seconds`` (bounded in count and time); the kernel
answers each with a reset (``tcp_send_reset`` reason ``NO_SOCKET``). Meanwhile the
recorder (:func:`auditor.sources.trace_record.record`) runs in a child process in the
same namespace for the window. Printed: resets the sender caused, events the recorder
saw and stored, events the ring buffer lost, and the CPU time (user + system) the
recorder used, against the same window with no traffic. Traffic stays on the
namespace's loopback (127.0.0.0/8).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SENDER = r"""
import socket, struct, sys, time
rate, seconds = int(sys.argv[1]), float(sys.argv[2])
def checksum(data):
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
out = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
src, dst = socket.inet_aton("127.0.0.2"), socket.inet_aton("127.0.0.1")
packets = []
for sport in range(20000, 20000 + 4096):
    seg = struct.pack("!HHIIBBHHH", sport, 9100, 4242, 0, 0x50, 2, 1024, 0, 0)
    csum = checksum(src + dst + struct.pack("!BBH", 0, 6, len(seg)) + seg)
    seg = seg[:16] + struct.pack("!H", csum) + seg[18:]
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(seg), 7, 0, 64, 6, 0, src, dst)
    packets.append(hdr + seg)
sent, start = 0, time.monotonic()
limit = int(rate * seconds)
while sent < limit:
    due = int((time.monotonic() - start) * rate)
    if due <= sent:
        time.sleep(0.001)
        continue
    if time.monotonic() - start > seconds * 2:
        break
    for _ in range(min(due - sent, 200)):
        out.sendto(packets[sent % len(packets)], ("127.0.0.1", 0))
        sent += 1
print(sent, time.monotonic() - start, flush=True)
"""

RECORDER = r"""
import json, resource, sys
from auditor.sources.trace_record import record
s = record(sys.argv[1], float(sys.argv[2]))
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seen": s.seen, "stored": s.stored, "lost": s.lost, "removed": s.removed,
                  "by_reason": dict(s.by_reason), "user": ru.ru_utime, "sys": ru.ru_stime}))
"""


def run(ns: str, rate: int, seconds: float) -> dict[str, object]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with tempfile.TemporaryDirectory(prefix="bench-trace-") as out:
        rec = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", RECORDER, out, str(seconds + 1)],
            stdout=subprocess.PIPE, text=True, env=env,
        )
        time.sleep(0.8)  # the instance is set up
        sent, took = 0, 0.0
        if rate:
            snd = subprocess.run(
                ["ip", "netns", "exec", ns, sys.executable, "-c", SENDER, str(rate), str(seconds)],
                capture_output=True, text=True, timeout=seconds * 3 + 10, check=True,
            )
            sent_s, took_s = snd.stdout.split()
            sent, took = int(sent_s), float(took_s)
        doc = json.loads(rec.communicate(timeout=seconds + 60)[0])
    doc.update(sent=sent, send_seconds=round(took, 2))
    return doc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (network namespace, tracefs)")
    ns = "h4bench" + secrets.token_hex(3)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        for label, rate in (("idle", 0), ("resets", args.rate)):
            doc = run(ns, rate, args.seconds)
            cpu = float(doc["user"]) + float(doc["sys"])  # type: ignore[arg-type]
            window = args.seconds + 1
            print(
                f"{label:7s} sent {doc['sent']:>7} SYNs in {doc['send_seconds']} s "
                f"({int(doc['sent']) / max(float(doc['send_seconds']), 1e-9):,.0f}/s); "  # type: ignore[call-overload]
                f"recorder saw {doc['seen']}, stored {doc['stored']}, lost {doc['lost']}; "
                f"CPU {cpu:.2f} s over a {window:g} s window ({cpu / window:.1%} of one core); "
                f"instance removed: {doc['removed']}"
            )
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


if __name__ == "__main__":
    main()
