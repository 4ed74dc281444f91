"""The shipped incident captures (samples/incidents/<name>/) diagnose as expected.json says.

Each directory is an artifacts capture of a lab run (python -m tests.lab run NAME
--out DIR) with host names scrubbed; this needs no root.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.lab.verdict import diagnose, judge

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "incidents"
NAMES = sorted(p.name for p in SAMPLES.iterdir() if p.is_dir()) if SAMPLES.is_dir() else []


@pytest.mark.parametrize("sample", NAMES)
def test_sample(sample: str) -> None:
    path = SAMPLES / sample
    expect = json.loads((path / "expected.json").read_text())
    assert judge(diagnose(path, expect.get("args", [])), expect) == []
