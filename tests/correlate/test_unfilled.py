"""No report shows an unfilled value: every finding of every shipped sample (incidents and
bundles) and of every correlation case, in every output format, is free of ``?``, ``None``,
``<...>``, ``{...}`` and "(no rule traced)" where a value should be."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from auditor.correlate.report import Report
from auditor.sinks.report_json import write_report_json
from auditor.sinks.report_markdown import render_markdown
from auditor.sinks.report_ndjson import write_report_ndjson
from auditor.sinks.report_table import print_report
from tests.correlate.casekit import load_cases, run_case

ROOT = Path(__file__).resolve().parents[2]
FORMATS = ("table", "json", "ndjson", "markdown")
UNFILLED = re.compile(
    r"\bNone\b|<[a-z_]+>|\{[a-z_]+\}|\(no rule traced\)|\[\[|\]\]"
    r"|(?:^|[\s(=:,])\?(?=$|[\s),.;:–-])"
)
SAMPLES = sorted(
    [p for p in (ROOT / "samples" / "incidents").iterdir() if p.is_dir()]
    + [p for p in (ROOT / "samples" / "bundles").iterdir() if p.is_dir()]
)


def unfilled(text: str) -> list[str]:
    return [
        line.strip()[:160]
        for line in text.splitlines()
        if UNFILLED.search(line)
    ]


def render(report: Report, fmt: str) -> str:
    out = io.StringIO()
    if fmt == "json":
        write_report_json(report, out)
    elif fmt == "ndjson":
        write_report_ndjson(report, out)
    elif fmt == "markdown":
        out.write(render_markdown(report))
    else:
        print_report(report, Console(file=out, width=200, color_system=None))
    return out.getvalue()


def findings_only(report: Report) -> Report:
    """The report's findings and notes (the parts auditor writes), not the quoted log lines."""
    from dataclasses import replace

    return replace(report, unexplained=())


def test_the_pattern_finds_what_it_must() -> None:
    assert unfilled("now ? pages, ? in use") and unfilled("observed None")
    assert unfilled("port <port>") and unfilled("Window ? – ?") and unfilled("(no rule traced)")
    assert unfilled("raise {limit_value}") and unfilled("a [[section]] left")
    assert not unfilled("Why did it reset? The rule: `-m limit --limit 5/s`, port 8080.")


CASES = load_cases()


@pytest.mark.parametrize(
    "case", [k for _, _, k in CASES], ids=[f"{c}:{n}" for c, n, _ in CASES]
)
def test_correlation_cases_render_filled(case: dict[str, Any]) -> None:
    report = findings_only(run_case(case))
    for fmt in FORMATS:
        text = render(report, fmt)
        for finding in report.findings:
            assert not unfilled(finding.remedy), (fmt, finding.cause, finding.remedy)
            assert not unfilled(finding.summary), (fmt, finding.cause, finding.summary)
        assert not unfilled(text), (fmt, unfilled(text))


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_samples_render_filled(path: Path) -> None:
    expect = path / "expected.json"
    args = json.loads(expect.read_text()).get("args", []) if expect.exists() else []
    for fmt in FORMATS:
        argv = [sys.executable, "-m", "auditor", "diagnose", str(path), "--format", fmt, *args]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert out.returncode in (0, 1), out.stderr
        if fmt == "json":
            doc = json.loads(out.stdout)
            parts = [doc.get("findings", []), doc.get("notes", [])]
            text = json.dumps(parts, indent=1)
        else:
            text = out.stdout
        assert not unfilled(text), (fmt, unfilled(text))
