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
        size = _mb(logs) * 2  # the rotation holds the access log again, uncompressed
        t0 = time.perf_counter()
        for src in sources:
            shutil.copyfile(src, work / f"plain-{src.name}")
        plain = time.perf_counter() - t0
        col = Collector(str(work / "bundle"))
        t0 = time.perf_counter()
        for src in sources:
            with open(src, "rb") as fin:
                col.copy(f"logs/{src.name}", fin, str(src))
        redacted = time.perf_counter() - t0
        t0 = time.perf_counter()
        mapping = obfuscate_dir(str(work / "bundle"))
        obfuscated = time.perf_counter() - t0
    print(f"logs: {size:.0f} MB uncompressed ({len(sources)} files, one gzip rotation)")
    print(f"plain copy:        {plain:6.2f} s")
    print(f"redacted copy:     {redacted:6.2f} s  {size / redacted:6.1f} MB/s  "
          f"({sum(int(r['count']) for r in col.redactions)} redactions)")
    print(f"obfuscate (2 passes): {obfuscated:6.2f} s  {size / obfuscated:6.1f} MB/s  "
          f"({len(mapping['addresses'])} addresses, {len(mapping['names'])} names)")


if __name__ == "__main__":
    main()
