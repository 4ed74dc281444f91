"""Score diagnose on generated incidents: each judgement right or wrong, and why.

A *judgement* is one diagnose run on one capture (blind, or with the engineer's
``--port``). It is right when none of the :data:`COUNTED` failure classes applies:

* ``wrong cause``: the top finding (or top places, for two causes) is not the expected
  cause; for a healthy control, any finding of high confidence;
* ``high-confidence wrong cause``: another cause reported with high confidence;
* ``wrong port``: the finding does not carry the port the clients used;
* ``no rule``: the rule or limit named is not the one expected (or none), or the
  finding misses something it must name (the upstream address, an ICMP answer);
* ``cause that must be absent``: e.g. firewall-reject for a limit reached through a jump.

Also reported, not counted: ``log not read`` (a host or nginx log of the bundle that
diagnose did not use: an access log in a format only ``nginx -T`` declares, a journal
export), ``reset count`` (the finding counts fewer than half the
resets the clients saw), ``unfilled value`` (``?``, ``None``, ``<port>``, ``{...}``,
``(no rule traced)`` in a finding's text) and ``window`` (the report's window does not
hold the incident: a counter-only finding dated at analysis time).
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
import tarfile
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

COUNTED = ("wrong cause", "high-confidence wrong cause", "wrong port", "no rule",
           "cause that must be absent")
UNFILLED = re.compile(r"(?:^|[\s(=:])\?(?=$|[\s,.;)])|\bNone\b|<[a-z][\w -]*>|\{[\w.]*\}"
                      r"|\(no rule traced\)|\bnan\b")


def diagnose(path: Path, args: list[str]) -> dict[str, Any]:
    """``auditor diagnose PATH --format json ARGS`` in a subprocess; the decoded report."""
    argv = [sys.executable, "-m", "auditor", "diagnose", str(path), "--format", "json", *args]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if out.returncode not in (0, 1):
        raise AssertionError(f"diagnose exited {out.returncode}: {out.stderr.strip()[-2000:]}")
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


LOG_NAMES = re.compile(r"^(access\.log|error\.log|kern\.log|syslog|messages)(\.\d+)?$"
                       r"|^journal-o-json\.txt$")


def bundle_logs(path: Path) -> list[str]:
    """Base names of the (non-empty) host and nginx logs in a bundle (directory or archive)."""
    if path.is_dir():
        names = [p.name for p in path.rglob("*") if p.is_file() and p.stat().st_size]
    else:
        with tarfile.open(path) as tar:
            names = [m.name.rsplit("/", 1)[-1] for m in tar.getmembers() if m.isfile() and m.size]
    return sorted(n for n in names if LOG_NAMES.match(n))


def unread_logs(report: dict[str, Any], logs: list[str]) -> list[tuple[str, str]]:
    """``log not read`` for each log of the bundle diagnose did not use."""
    used = {str(s.get("path", "")).rsplit("/", 1)[-1] for s in report.get("sources") or []
            if s.get("used")}
    return [("log not read", name) for name in logs if name not in used]


def failures(report: dict[str, Any], expect: dict[str, Any]) -> list[tuple[str, str]]:
    """(class, detail) for every way ``report`` differs from ``expect``."""
    out: list[tuple[str, str]] = []
    findings = list(report.get("findings") or [])
    causes = [f.get("cause") for f in findings]
    cause = expect.get("cause")
    if cause is None:
        for f in findings:
            if f.get("confidence") == "high":
                out.append(("wrong cause", f"control has {f.get('cause')} "
                                           f"({f.get('confidence')})"))
        return out + _unfilled(findings)
    wanted = [cause, *expect.get("also", [])]
    top = causes[:len(wanted)]
    if sorted(map(str, top)) != sorted(wanted):
        out.append(("wrong cause", f"top {top}, expected {wanted} (all: {causes})"))
    for f in findings:
        if f.get("cause") not in wanted and f.get("confidence") == "high":
            out.append(("high-confidence wrong cause", str(f.get("cause"))))
    for name in expect.get("absent", []):
        if name in causes:
            out.append(("cause that must be absent", name))
    match = next((f for f in findings if f.get("cause") == cause), None)
    if match is None:
        return out + _unfilled(findings) + _window(report, expect)
    port = expect.get("port")
    if port is not None and port not in (match.get("ports") or []):
        out.append(("wrong port", f"ports {match.get('ports')}, clients used {port}"))
    seen = expect.get("resets") or 0
    if seen and (match.get("resets") or 0) < seen // 2:
        out.append(("reset count", f"{match.get('resets')} resets reported, the clients saw "
                                   f"{seen}"))
    rule = expect.get("rule")
    if rule:
        got = match.get("rule") or {}
        diff = {k: got.get(k) for k, v in rule.items() if got.get(k) != v}
        if diff:
            out.append(("no rule", f"rule {diff or got}, expected {rule}"))
    patterns = expect.get("limit", [])
    if patterns:
        name = str((match.get("limit") or {}).get("name"))
        if not any(fnmatch.fnmatch(name, p) for p in patterns):
            out.append(("no rule", f"limit {name!r}, expected one of {patterns}"))
    text = json.dumps(match)
    for needle in expect.get("mentions", []):
        if needle not in text:
            out.append(("no rule", f"does not name {needle!r}"))
    return out + _unfilled(findings) + _window(report, expect)


def _unfilled(findings: list[dict[str, Any]]) -> list[tuple[str, str]]:
    out = []
    for f in findings:
        for key in ("title", "summary", "remedy"):
            m = UNFILLED.search(str(f.get(key) or ""))
            if m:
                out.append(("unfilled value", f"{f.get('cause')} {key}: {m.group(0).strip()!r}"))
        for key in ("rule", "limit"):
            obj = f.get(key)
            if isinstance(obj, dict):
                for k, v in obj.items():
                    if isinstance(v, str) and UNFILLED.search(v):
                        out.append(("unfilled value", f"{f.get('cause')} {key}.{k}: {v[:60]!r}"))
    return out


def _window(report: dict[str, Any], expect: dict[str, Any]) -> list[tuple[str, str]]:
    start, end = (expect.get("incident") or [None, None])
    window = report.get("window") or {}
    first, last = window.get("start") or window.get("from"), window.get("end") or window.get("to")
    if not (start and end and first and last):
        return []
    try:
        a, b = datetime.fromisoformat(first), datetime.fromisoformat(last)
        s, e = datetime.fromisoformat(start), datetime.fromisoformat(end)
    except (TypeError, ValueError):
        return [("window", f"window not readable: {window}")]
    slack = timedelta(minutes=10)
    if b < s - slack or a > e + slack:
        return [("window", f"report window {first} – {last}, incident {start} – {end}")]
    return []


@dataclass(frozen=True)
class Judged:
    case: str  # <family>-<seed>
    judgement: str  # blind | port
    failures: tuple[tuple[str, str], ...]
    top: str

    @property
    def right(self) -> bool:
        return not any(k in COUNTED for k, _ in self.failures)

    def as_json(self) -> dict[str, Any]:
        return {"case": self.case, "judgement": self.judgement, "right": self.right,
                "top": self.top, "failures": [list(f) for f in self.failures]}


def judge_capture(case: str, base: Path, expect: dict[str, Any]) -> list[Judged]:
    """Every judgement of one capture (``base`` holds ``expected.json`` and the input)."""
    out = []
    logs = bundle_logs(base / expect["input"])
    for j in expect["judgements"]:
        report = diagnose(base / expect["input"], j["args"])
        top = ", ".join(f"{f.get('cause')}({f.get('confidence')})"
                        for f in (report.get("findings") or [])[:3]) or "no finding"
        wrong = failures(report, expect) + unread_logs(report, logs)
        out.append(Judged(case, j["name"], tuple(wrong), top))
    return out


def accuracy(judged: list[Judged]) -> float:
    return sum(j.right for j in judged) / len(judged) if judged else 0.0


def summary(tuning: list[Judged], held: list[Judged]) -> dict[str, Any]:
    """Both accuracies and, per failure class, the judgements that fall in it."""
    classes: dict[str, list[str]] = defaultdict(list)
    for j in tuning:
        for kind, detail in j.failures:
            classes[kind].append(f"{j.case}/{j.judgement}: {detail}")
    held_classes: dict[str, int] = defaultdict(int)
    for j in held:  # counts only: a held-out case is never read to decide a change
        for kind in {kind for kind, _ in j.failures}:
            held_classes[kind] += 1
    return {"tuning": {"accuracy": round(accuracy(tuning), 3), "judgements": len(tuning),
                       "right": sum(j.right for j in tuning)},
            "held_out": {"accuracy": round(accuracy(held), 3), "judgements": len(held),
                         "right": sum(j.right for j in held)},
            "classes": dict(sorted(classes.items())),
            "held_out_classes": dict(sorted(held_classes.items())),
            "cases": [j.as_json() for j in tuning]}


def render(doc: dict[str, Any]) -> str:
    t, h = doc["tuning"], doc["held_out"]
    lines = [f"tuning accuracy   {t['accuracy']:.1%} ({t['right']}/{t['judgements']} judgements)",
             f"held-out accuracy {h['accuracy']:.1%} ({h['right']}/{h['judgements']} judgements)",
             ""]
    for kind, items in doc["classes"].items():
        counted = "" if kind in COUNTED else " (not counted)"
        lines.append(f"{kind}{counted}: {len(items)}")
        lines += [f"  {item}" for item in items]
    if doc.get("held_out_classes"):
        lines.append("held-out judgements per failure class (counts only): " + ", ".join(
            f"{kind} {n}" for kind, n in doc["held_out_classes"].items()))
    return "\n".join(lines)
