"""``python -m tests.lab shapes | shape CASE | score``: generated incidents by hand.

``score`` generates every tuning and held-out case (tests/lab/seeds.py), runs diagnose
on each (blind, and with the engineer's ``--port``), prints the two accuracies and the
failure classes; captures are kept with ``--out``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from tests.lab import seeds
from tests.lab.netlab import lab_available
from tests.lab.score import Judged, judge_capture, render, summary
from tests.lab.shapes import FAMILIES, Captured, capture, make_plan


def split_case(case: str) -> tuple[str, int]:
    fam, _, seed = case.rpartition("-")
    if fam not in FAMILIES or not seed.isdigit():
        raise ValueError(f"{case!r} is not <family>-<seed>; families: {', '.join(FAMILIES)}")
    return fam, int(seed)


def generate(case: str, base: Path) -> Captured:
    fam, seed = split_case(case)
    if base.exists():
        shutil.rmtree(base)
    return capture(make_plan(fam, seed), base)


def judge_cases(names: list[str], root: Path, log: bool = True
                ) -> tuple[list[Judged], dict[str, list[str]]]:
    """Generate and judge each case under ``root``; (judgements, cases that did not reproduce).

    Diagnose (CPU) runs on one case while the next is captured (mostly waiting on the
    network), one of each at a time.
    """
    judged: dict[str, list[Judged]] = {}
    missing: dict[str, list[str]] = {}
    with ThreadPoolExecutor(1) as judge:
        pending: list[tuple[str, Future[list[Judged]]]] = []
        for name in names:
            t0 = time.monotonic()
            try:
                got = generate(name, root / name)
            except Exception as exc:  # a lab failure is reported, the others still run
                missing[name] = [f"lab failed: {exc!r}"]
                continue
            if got.problems:
                missing[name] = got.problems
                continue
            if log:
                print(f"captured {name} in {time.monotonic() - t0:.1f}s", file=sys.stderr,
                      flush=True)
            pending.append((name, judge.submit(judge_capture, name, root / name, got.expect)))
        for name, fut in pending:
            judged[name] = fut.result()
            if log:
                these = judged[name]
                marks = " ".join(f"{j.judgement}:{'ok' if j.right else 'WRONG'}" for j in these)
                print(f"{name:18} {marks}  [{these[0].top}]", file=sys.stderr, flush=True)
    return [j for n in names for j in judged.get(n, [])], missing


def main(args: argparse.Namespace) -> int:
    if args.cmd == "shapes":
        for fam in FAMILIES.values():
            print(f"{fam.name:13} classes {','.join(map(str, fam.classes)):5} "
                  f"tuning {list(seeds.TUNING.get(fam.name, ()))} "
                  f"held-out {list(seeds.HELD_OUT.get(fam.name, ()))}\n    {fam.title}")
        return 0
    reason = lab_available()
    if reason:
        print(f"cannot run the lab: {reason}", file=sys.stderr)
        return 2
    if args.cmd == "shape":
        got = generate(args.case, args.out)
        for problem in got.problems:
            print(f"missing evidence: {problem}", file=sys.stderr)
        print(json.dumps(got.expect["shape"]))
        for j in got.expect["judgements"]:
            print(" ".join(["auditor", "diagnose", str(got.input), *j["args"]]))
        return 1 if got.problems else 0
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hs-score-") as tmp:
        root = args.out or Path(tmp)
        tuning, miss_t = ([], {}) if args.only == "held-out" else judge_cases(
            seeds.cases(seeds.TUNING), root)
        held, miss_h = ([], {}) if args.only == "tuning" else judge_cases(
            seeds.cases(seeds.HELD_OUT), root, log=False)  # held-out: figures only
    doc = summary(tuning, held)
    doc["not_reproduced"] = {**miss_t, **miss_h}
    doc["seconds"] = round(time.monotonic() - t0)
    print(render(doc))
    for name, problems in doc["not_reproduced"].items():
        print(f"not reproduced (not scored): {name}: {problems}")
    print(f"{doc['seconds']} s")
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0
