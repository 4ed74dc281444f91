"""Issue 9's speed targets, in one run on one machine: auditor against grep.

    python -m tests.benchmarks.bench_targets [--size 512M] [--share 0.03] [--repeat 3]

Generates a syslog file (``--size``, ``--share`` of the lines relevant: netfilter LOG
lines with ``SRC=``, conntrack and SYN-flood messages) in a temporary folder under
/tmp, deletes it afterwards, and times, each ``--repeat`` times (the best counts, the
machine is shared), with the output written to a file (GNU grep stops at the first
match when its output is /dev/null):

* ``LC_ALL=C grep -c -F SRC= FILE``                    the yardstick
* ``python3 -m auditor parse FILE --format ndjson``      target: within 20x of grep
* ``python3 -m auditor diagnose DIR``                    target: within 15x of grep

For each: wall seconds, CPU seconds (user+sys of the command and its helpers: on a
busy machine the wall time also counts waiting for a core), the ratios to grep, and
the peak memory (the largest resident set among the command and its helpers).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks.gen_logs import parse_size, write_syslog

TARGETS = {"parse": 20.0, "diagnose": 15.0}
ROOT = Path(__file__).resolve().parents[2]

# Runs one command with stdout to a file, in a child of its own, so that the peak RSS
# and CPU reported are this command's (and its helpers') alone.
WRAP = """
import resource, subprocess, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
t0 = time.perf_counter()
with open(out, "wb") as fh:
    rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.DEVNULL).returncode
wall = time.perf_counter() - t0
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(rc, wall, r.ru_utime + r.ru_stime, r.ru_maxrss)
"""


def run(cmd: list[str], out: Path, env: dict[str, str]) -> tuple[float, float, float]:
    """(wall s, CPU s, peak MB) of ``cmd`` with its output in ``out``."""
    proc = subprocess.run([sys.executable, "-c", WRAP, str(out), *cmd], env=env,
                          capture_output=True, text=True, check=True)
    rc, wall, cpu, rss = proc.stdout.split()
    if int(rc) not in (0, 1):  # grep: 1 = no match; diagnose: 1 = --fail-on
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {rc}")
    return float(wall), float(cpu), int(rss) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="512M")
    ap.add_argument("--share", type=float, default=0.03, help="share of relevant lines")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="auditor-bench-", dir="/tmp"))
    try:
        logs = tmp / "logs"
        logs.mkdir()
        log = logs / "syslog.log"
        t0 = time.perf_counter()
        write_syslog(log, parse_size(args.size), args.share)
        size_mb = log.stat().st_size / 1e6
        print(f"generated {log.name}: {size_mb:.0f} MB in {time.perf_counter() - t0:.0f} s")
        env = {**os.environ, "LC_ALL": "C", "PYTHONPATH": str(ROOT)}
        py = [sys.executable, "-m", "auditor"]
        cases = {
            "grep": ["grep", "-c", "-F", "SRC=", str(log)],
            "parse": [*py, "parse", str(log), "--format", "ndjson"],
            "diagnose": [*py, "diagnose", str(logs)],
        }
        subprocess.run(["cat", str(log)], stdout=subprocess.DEVNULL, check=True)  # page cache
        best: dict[str, tuple[float, float, float]] = {}
        for _ in range(max(1, args.repeat)):
            for name, cmd in cases.items():
                wall, cpu, rss = run(cmd, tmp / f"{name}.out", env)
                old = best.get(name)
                best[name] = (min(wall, old[0]), min(cpu, old[1]), max(rss, old[2])) \
                    if old else (wall, cpu, rss)
        grep_wall, grep_cpu, _ = best["grep"]
        with open(tmp / "parse.out", "rb") as fh:
            events = sum(1 for _ in fh)
        print(f"matches (grep -c): {(tmp / 'grep.out').read_text().strip()}; "
              f"parse wrote {events} events")
        print(f"{'command':9} {'wall s':>7} {'cpu s':>7} {'x grep (wall)':>14} "
              f"{'x grep (cpu)':>13} {'target':>7} {'peak MB':>8}")
        for name, (wall, cpu, rss) in best.items():
            target = f"{TARGETS[name]:.0f}x" if name in TARGETS else ""
            print(f"{name:9} {wall:7.2f} {cpu:7.2f} {wall / grep_wall:14.1f} "
                  f"{cpu / max(grep_cpu, 1e-3):13.1f} {target:>7} {rss:8.0f}")
        print(f"best of {args.repeat} runs each, {os.cpu_count()} cores, load average "
              f"{os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
