"""Parsing throughput against grep: MB/s, ratio to `LC_ALL=C grep -c -F`, peak RSS.

    python -m tests.benchmarks.bench_parse [--size 1G] [--out bench-data] [--repeat 3]

For each generated log (syslog with ~1% relevant lines, nginx error, nginx
access) it times auditor's full parse (every relevant line turned into an
Event) in a child process and `grep -c -F` on one relevant substring. With
--repeat N each is run N times and the best is shown (the machine is shared);
"cpu s" is the CPU time of auditor with its helpers (rg, wc, the pure-Python path's
worker); "kid MB" is the largest peak RSS among those helpers (rg's counts the file
pages it maps).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from tests.benchmarks.gen_logs import generate, parse_size

CASES = {
    "syslog.log": ("kernel", "SRC="),
    "nginx-error.log": ("nginx-error", "Connection reset by peer"),
    "nginx-access.log": ("nginx-access", '" 502 '),
}

CHILD = """
import sys, time
from auditor.parsers import registry
from auditor.parsers.base import ParseContext
from auditor.sources.scan import ScanStats, scan
kind, path = sys.argv[1], sys.argv[2]
cls = registry()[kind]
stats = ScanStats(path, kind)
n = 0
t0 = time.perf_counter()
for _ in scan(path, cls(ParseContext(), path), stats):
    n += 1
print(time.perf_counter() - t0, n, stats.lines, stats.not_understood)
"""


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, str, float]:
    """(wall seconds, stdout, CPU seconds of the command and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode not in (0, 1):
        raise SystemExit(f"{cmd[0]} failed: {out.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, out.stdout.strip(), cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", default="1G")
    ap.add_argument("--out", default="bench-data")
    ap.add_argument("--repeat", type=int, default=1, help="runs per file; the best is shown")
    args = ap.parse_args()
    paths = generate(Path(args.out), parse_size(args.size))
    env = {**os.environ, "LC_ALL": "C"}
    print(
        f"{'file':18} {'MB':>7} {'auditor s':>9} {'MB/s':>7} {'grep s':>7} {'ratio':>6} "
        f"{'cpu s':>6} {'events':>9} {'bad':>5} {'RSS MB':>7} {'kid MB':>7}"
    )
    # Child RSS is reported per child via a fresh interpreter each time.
    code = (
        "import resource,runpy,sys;"
        f"exec({CHILD!r});"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,"
        "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    for name, (kind, needle) in CASES.items():
        path = paths[name]
        size_mb = path.stat().st_size / 1e6
        subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)  # warm the cache
        g_time = a_time = cpu = float("inf")
        rss_mb = kid_mb = 0.0
        for _ in range(max(1, args.repeat)):
            g_time = min(g_time, timed(["grep", "-c", "-F", needle, str(path)], env)[0])
            run_time, out, run_cpu = timed([sys.executable, "-c", code, kind, str(path)])
            first, rss = out.splitlines()
            rss_kb, kid_kb = rss.split()
            _, events, _, bad = first.split()
            a_time, cpu = min(a_time, run_time), min(cpu, run_cpu)
            rss_mb = max(rss_mb, int(rss_kb) / 1024)
            kid_mb = max(kid_mb, int(kid_kb) / 1024)
        # cpu s: user+sys of auditor and its helpers (rg, wc), the least of the runs:
        # on a shared machine it moves less than the wall time.
        print(
            f"{name:18} {size_mb:7.0f} {a_time:9.2f} {size_mb / a_time:7.0f} {g_time:7.2f} "
            f"{a_time / g_time:6.2f} {cpu:6.2f} {events:>9} {bad:>5} {rss_mb:7.0f} {kid_mb:7.0f}"
        )


if __name__ == "__main__":
    main()
