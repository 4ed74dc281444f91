"""Annotated samples: every line of samples/logs/<parser>/*.log against its expectation.

Format (the fail2ban habit), see samples/logs/README.md:

    # options: {"timezone": "Europe/Berlin", "reference_time": "2026-11-24T12:00:00+00:00"}
    # desc: why this line is tricky
    # expect: {"event.action": "netfilter-drop", "source.ip": "203.0.113.7"}
    <sample line>
    # expect: null            (a negative: no event, and not an error)
    <sample line>
    # expect-error            (must be counted as not understood)
    <sample line>

The clean log (comments removed) is run through the real scanner, so needles are
tested too. The ndjson output is compared with ``<name>.log.expected.ndjson``;
set AUDITOR_GENERATE=1 to regenerate those golden files.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from auditor.models import to_ecs
from auditor.parsers import registry
from auditor.parsers.base import ParseContext
from auditor.sources.scan import ScanStats, scan
from auditor.timeutil import parse_timezone

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "logs"
GENERATE = bool(os.environ.get("AUDITOR_GENERATE"))


class Sample:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.options: dict[str, Any] = {}
        self.lines: list[tuple[int, str, str, Any]] = []  # (sample lineno, text, kind, expected)
        pending: tuple[str, Any] | None = None
        for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if raw.startswith("# options:"):
                self.options = json.loads(raw.split(":", 1)[1])
            elif raw.startswith("# expect-error"):
                pending = ("error", None)
            elif raw.startswith("# expect:"):
                pending = ("event", json.loads(raw.split(":", 1)[1]))
            elif raw.startswith("#") or not raw.strip():
                continue
            else:
                assert pending is not None, f"{path}:{n}: sample line without an expectation above"
                self.lines.append((n, raw, pending[0], pending[1]))
                pending = None

    def context(self) -> ParseContext:
        opts = dict(self.options)
        tz = parse_timezone(opts.pop("timezone", "UTC"))
        ref = datetime.fromisoformat(opts.pop("reference_time", "2026-11-24T12:00:00+00:00"))
        boot = opts.pop("boot_time", None)
        return ParseContext(
            timezone=tz,
            reference_time=ref,
            boot_time=datetime.fromisoformat(boot) if boot else None,
            host_name=opts.pop("host_name", None),
            options=opts,
        )


def sample_files() -> list[Path]:
    return sorted(SAMPLES.glob("*/*.log"))


def flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def run_sample(sample: Sample, tmp_path: Path) -> tuple[list[dict[str, Any]], ScanStats, list[int]]:
    parser_name = sample.path.parent.name
    cls = registry()[parser_name]
    clean = tmp_path / sample.path.name
    clean.write_text("".join(text + "\n" for _, text, _, _ in sample.lines), encoding="utf-8")
    stats = ScanStats(str(clean), cls.name)
    parser = cls(sample.context(), sample.path.name)
    docs = [to_ecs(e) for e in scan(str(clean), parser, stats)]
    return docs, stats, [n for n, _, _, _ in sample.lines]


@pytest.mark.parametrize("path", sample_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_sample(path: Path, tmp_path: Path) -> None:
    sample = Sample(path)
    assert sample.lines, f"{path}: no sample lines"
    docs, stats, _ = run_sample(sample, tmp_path)
    by_line = {d["log"]["file"]["line"]: d for d in docs}
    issue_lines = {i.location.line for i in stats.issues}
    for clean_no, (n, text, kind, expected) in enumerate(sample.lines, 1):
        where = f"{path.name}:{n}: {text[:80]!r}"
        if kind == "error":
            assert clean_no in issue_lines, (
                f"{where}: expected 'not understood', got {by_line.get(clean_no)}"
            )
            continue
        assert clean_no not in issue_lines, f"{where}: not understood: {stats.issues}"
        if expected is None:
            assert clean_no not in by_line, f"{where}: expected no event, got {by_line[clean_no]}"
            continue
        assert clean_no in by_line, f"{where}: expected an event, got none"
        got = flatten(by_line[clean_no])
        for key, value in expected.items():
            assert got.get(key) == value, (
                f"{where}: {key}: expected {value!r}, got {got.get(key)!r}"
            )
    golden = path.with_name(path.name + ".expected.ndjson")
    text = "".join(json.dumps(d, sort_keys=True) + "\n" for d in docs)
    if GENERATE:
        golden.write_text(text, encoding="utf-8")
    assert golden.exists(), f"{golden.name} missing; run with AUDITOR_GENERATE=1 to create it"
    assert golden.read_text(encoding="utf-8") == text, (
        f"{golden.name} differs; AUDITOR_GENERATE=1 to refresh"
    )


def test_every_pattern_has_a_sample() -> None:
    covered: dict[str, set[str]] = {}
    for path in sample_files():
        for _, _, kind, expected in Sample(path).lines:
            if kind == "event" and expected and "event.action" in expected:
                covered.setdefault(path.parent.name, set()).add(expected["event.action"])
    missing = {
        name: sorted(set(cls.patterns) - covered.get(name, set()))
        for name, cls in registry().items()
        if set(cls.patterns) - covered.get(name, set())
    }
    assert not missing, f"patterns without an annotated sample: {missing}"
