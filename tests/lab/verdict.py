"""Judge an ``auditor diagnose --format json`` report against a scenario's expectation.

Used by the lab tests and by ``tests/lab/test_samples.py`` on the shipped captures;
:func:`judge` returns the list of ways the report differs (empty: it is right).
"""

from __future__ import annotations

import fnmatch
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

LAB_ARGS = ("--timezone", "UTC")  # the lab's nginx writes its zone-less stamps in UTC


def command(path: Path, args: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The diagnose command line for a lab capture."""
    return ["auditor", "diagnose", str(path), "--format", "json", *LAB_ARGS, *args]


def diagnose(path: Path, args: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Run ``auditor diagnose PATH --format json`` in a subprocess; the decoded report."""
    argv = [sys.executable, "-m", "auditor", *command(path, args)[1:]]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if out.returncode not in (0, 1):
        raise AssertionError(f"diagnose exited {out.returncode}: {out.stderr.strip()[-2000:]}")
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def judge(report: dict[str, Any], expect: dict[str, Any]) -> list[str]:
    """Differences between ``report`` and ``expect`` (the shape of ``expected.json``)."""
    wrong: list[str] = []
    if report.get("schema") != "auditor.report/1":
        wrong.append(f"schema is {report.get('schema')!r}")
    findings = list(report.get("findings") or [])
    causes = [f.get("cause") for f in findings]
    cause = expect.get("cause")
    if cause is None:
        if findings:
            wrong.append(f"healthy control has findings: {causes}")
        return wrong
    wanted = [cause, *expect.get("also", [])]
    top = causes[:len(wanted)]
    if len(wanted) == 1 and top != [cause]:
        wrong.append(f"top finding is {top}, expected {cause!r} (all: {causes})")
    elif len(wanted) > 1 and sorted(map(str, top)) != sorted(wanted):
        wrong.append(f"top findings are {top}, expected {wanted} in any order")
    for name in expect.get("absent", []):
        if name in causes:
            wrong.append(f"{name!r} reported but must not be")
    for f in findings:
        if f.get("cause") not in wanted and f.get("confidence") == "high":
            wrong.append(f"wrong cause {f.get('cause')!r} with high confidence")
    match = next((f for f in findings if f.get("cause") == cause), None)
    if match is None:
        return wrong
    rule = expect.get("rule")
    if rule:
        got = match.get("rule") or {}
        diff = {k: (got.get(k), v) for k, v in rule.items() if got.get(k) != v}
        if diff:
            wrong.append(f"rule differs (got, expected): {diff}")
    patterns = expect.get("limit", [])
    if patterns:
        name = str((match.get("limit") or {}).get("name"))
        if not any(fnmatch.fnmatch(name, p) for p in patterns):
            wrong.append(f"limit {name!r} matches none of {patterns}")
    text = json.dumps(match)
    for needle in expect.get("mentions", []):
        if needle not in text:
            wrong.append(f"finding does not mention {needle!r}")
    return wrong


def brief(report: dict[str, Any]) -> list[str]:
    """One line per finding (cause, confidence, score, resets, first evidence) for messages."""
    out = []
    for f in report.get("findings") or []:
        first = (f.get("evidence") or [{}])[0].get("text", "")[:160]
        out.append(f"{f.get('cause')} {f.get('confidence')} {f.get('score')} "
                   f"resets={f.get('resets')} [{first}]")
    return out
