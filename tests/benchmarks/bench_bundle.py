"""Throughput of what collect does to logs: copying with redaction, and --obfuscate.

    python -m tests.benchmarks.bench_bundle --size 200M

Generates syslog/nginx logs with :mod:`tests.benchmarks.gen_logs` (plus gzip rotations),
then times, on one core: a plain copy, a redacted copy (``Collector.copy``), and the two
passes of ``obfuscate_dir`` over the result. Prints MB/s; asserts nothing.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import tempfile
import time
from pathlib import Path

from auditor.bundle.obfuscate import obfuscate_dir
from auditor.bundle.writer import Collector
from tests.benchmarks.gen_logs import generate, parse_size


def _mb(paths: list[Path]) -> float:
    return sum(p.stat().st_size for p in paths) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", default="200M", help="total size of the generated logs")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="auditor-bench-bundle-") as tmp:
        work = Path(tmp)
        logs = list(generate(work / "src", parse_size(args.size)).values())
        rotated = work / "src" / "nginx-access.log.2.gz"
        with open(logs[-1], "rb") as fin, gzip.open(rotated, "wb") as fout:
            shutil.copyfileobj(fin, fout)
        sources = [*logs, rotated]
        size = _mb(sources[:-1]) + _mb([logs[-1]])  # the rotation is the access log again
        t0, c0 = time.perf_counter(), time.process_time()
        for src in sources:
            shutil.copyfile(src, work / f"plain-{src.name}")
        plain, plain_cpu = time.perf_counter() - t0, time.process_time() - c0
        col = Collector(str(work / "bundle"))
        t0, c0 = time.perf_counter(), time.process_time()
        for src in sources:
            with open(src, "rb") as fin:
                col.copy(f"logs/{src.name}", fin, str(src))
        redacted, redacted_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        mapping = obfuscate_dir(str(work / "bundle"))
        obfuscated, obfuscated_cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"logs: {size:.0f} MB uncompressed ({len(sources)} files, one gzip rotation)")
    print("                      wall s   CPU s   MB/s of CPU")
    for what, wall, cpu in (("plain copy", plain, plain_cpu),
                            ("redacted copy", redacted, redacted_cpu),
                            ("obfuscate, 2 passes", obfuscated, obfuscated_cpu)):
        print(f"{what:20} {wall:8.2f} {cpu:7.2f} {size / max(cpu, 1e-9):9.1f}")
    print(f"({sum(int(r['count']) for r in col.redactions)} redactions; "
          f"{len(mapping['addresses'])} addresses, {len(mapping['names'])} names replaced)")

if __name__ == "__main__":
    main()
