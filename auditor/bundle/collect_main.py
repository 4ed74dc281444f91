"""The standalone collector's command line: ``python3 auditor-collect.py -o incident.tar.gz``.

``auditor collect --standalone`` writes the collector as one file (standard
library only, Python 3.9+) whose entry point is :func:`main`; it makes the same
bundle as ``auditor collect``, which any machine with auditor then diagnoses.

Part of the standalone collector: standard library only, Python 3.9.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from datetime import timedelta

from auditor.bundle.collect import MAPPING_SUFFIX, collect, default_output, summary
from auditor.bundle.standins import ObfuscationError

_SPAN = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.I)
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def window(text: str) -> timedelta:
    """``90s``, ``15m``, ``2h``, ``1d12h`` or plain seconds (auditor's ``--since`` grammar)."""
    text = text.strip()
    if text.isdigit():
        return timedelta(seconds=int(text))
    spans = list(_SPAN.finditer(text))
    if not text or "".join(m.group(0) for m in spans) != text:
        raise ValueError(f"malformed duration: {text!r}")
    return timedelta(seconds=sum(float(m.group(1)) * _SECONDS[m.group(2).lower()] for m in spans))


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="auditor-collect.py",
        description="Snapshot this host into one archive, read-only, for 'auditor diagnose' "
        "elsewhere. Secrets are redacted; the archive is private (0600).",
    )
    ap.add_argument("-o", "--output", help="archive to write (.tar.gz); "
                    "default ./auditor-HOST-TIME.tar.gz")
    ap.add_argument("--since", default="2h", help="log window: how far back (30m, 2h, 1d)")
    ap.add_argument("--sample", type=float, default=10.0,
                    help="seconds between the two counter snapshots (0: one snapshot)")
    ap.add_argument("--obfuscate", action="store_true",
                    help="replace IP addresses and host names by stand-ins; the mapping goes "
                    f"to OUTPUT{MAPPING_SUFFIX}, outside the bundle")
    ap.add_argument("--no-redact", action="store_true",
                    help="keep secrets (authorization headers, passwords) in the bundle")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        since = window(args.since)
    except ValueError:
        print(f"--since: cannot read {args.since!r} (use e.g. 30m, 2h, 1d)", file=sys.stderr)
        return 2
    if not 0 <= args.sample <= 3600:
        print("--sample: give seconds between 0 and 3600", file=sys.stderr)
        return 2
    output = args.output or default_output(args.obfuscate)
    parent = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(parent):
        print(f"{output}: directory {parent} does not exist", file=sys.stderr)
        return 2
    if args.sample:
        print(f"sampling counters for {args.sample:g} s ...", file=sys.stderr)
    try:
        manifest = collect(output, since, args.sample, not args.no_redact, args.obfuscate,
                           "auditor-collect.py")
    except KeyboardInterrupt:
        print("interrupted: nothing written", file=sys.stderr)
        return 130
    except (OSError, ObfuscationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in summary(manifest, output):
        print(line, file=sys.stderr)
    return 0
