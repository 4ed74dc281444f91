"""Run the incident lab by hand.

    python -m tests.lab list
    python -m tests.lab run NAME --out DIR [--keep]   (as root)
    python -m tests.lab shapes                        list the shape families and seeds
    python -m tests.lab shape FAMILY-SEED --out DIR   one generated incident (as root)
    python -m tests.lab score [--out DIR] [--json FILE] [--only tuning|held-out]

``run`` reproduces one scenario, leaves its artifacts directory (with
``expected.json``) in DIR, reports missing raw evidence, and prints the command
that diagnoses it. DIR must be new, empty, or an earlier capture (replaced).
``--keep`` leaves the namespaces, nginx and upstreams up until Enter is pressed,
to look around (``ip netns exec <srv> ss -tn``, ``iptables -L -nv``...).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
from pathlib import Path

from tests.lab.netlab import Lab, lab_available
from tests.lab.scenarios import registry, reproduce
from tests.lab.verdict import command


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.lab")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list the scenarios")
    run = sub.add_parser("run", help="reproduce one scenario")
    run.add_argument("name")
    run.add_argument("--out", type=Path, required=True)
    run.add_argument("--keep", action="store_true",
                     help="keep the lab up until Enter is pressed, to look around")
    sub.add_parser("shapes", help="list the shape families and their seeds")
    one = sub.add_parser("shape", help="generate one seeded incident, e.g. fw-limit-3")
    one.add_argument("case")
    one.add_argument("--out", type=Path, required=True)
    sc = sub.add_parser("score", help="tuning and held-out accuracy, and the failure classes")
    sc.add_argument("--out", type=Path, help="keep the captures here (default: a temp dir)")
    sc.add_argument("--json", type=Path, help="also write the scores as JSON")
    sc.add_argument("--only", choices=("tuning", "held-out"))
    args = ap.parse_args(argv)
    if args.cmd in ("shapes", "shape", "score"):
        from tests.lab.scoring_cli import main as shapes_main

        return shapes_main(args)
    scenarios = registry()
    if args.cmd == "list":
        for sc in scenarios.values():
            print(f"{sc.name:20} {sc.expect.cause or '(no finding)':26} {sc.title}")
        return 0
    found = scenarios.get(args.name)
    if found is None:
        print(f"unknown scenario {args.name!r}; see `python -m tests.lab list`", file=sys.stderr)
        return 2
    sc = found
    reason = lab_available() or (sc.needs() if sc.needs else None)
    if reason:
        print(f"cannot run {sc.name}: {reason}", file=sys.stderr)
        return 2
    if args.out.exists() and any(args.out.iterdir()):
        if not (args.out / "expected.json").exists():
            print(f"{args.out} is not empty and not a lab capture; not touching it", file=sys.stderr)
            return 2
        shutil.rmtree(args.out)
    outcome = reproduce(sc, args.out, hold=_hold if args.keep else None)
    for problem in outcome.problems:
        print(f"missing evidence: {problem}", file=sys.stderr)
    print(f"artifacts in {args.out}; expected top cause: {sc.expect.cause or 'none'}")
    print(" ".join(command(args.out, sc.expect.args)))
    return 1 if outcome.problems else 0


def _hold(lab: Lab) -> None:
    print(f"lab up: server namespace {lab.srv} (192.0.2.1), client {lab.cli} (192.0.2.2)")
    print(f"  e.g. ip netns exec {lab.srv} ss -tnp; ip netns exec {lab.srv} iptables -L -nv")
    with contextlib.suppress(EOFError, KeyboardInterrupt):
        input("press Enter to tear it down ")


if __name__ == "__main__":
    sys.exit(main())
