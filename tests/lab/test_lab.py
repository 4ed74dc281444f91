"""The incident lab: reproduce each incident for real, then check what diagnose says.

``test_reproduces`` proves the incident happened and left its raw evidence
(kernel lines, nginx log lines, counter deltas, rule counters); ``test_diagnoses``
runs ``auditor diagnose <capture> --format json`` and asserts the expected top
cause, its rule or limit, no wrong cause with high confidence, and no finding for
the healthy control (test_samples.py does the same on the shipped captures). Each
scenario is captured once per session.
"""

from __future__ import annotations

import json

import pytest

from tests.lab.netlab import lab_available
from tests.lab.scenarios import Outcome, Scenario, registry, reproduce
from tests.lab.verdict import brief, diagnose, judge

REASON = lab_available()
SCENARIOS = registry()

# Cases diagnose gets wrong today; each names the gap. strict: fixing it turns the test red
# until the entry is removed, so the list cannot go stale.
GAPS: dict[str, str] = {}

_captured: dict[str, Outcome] = {}


def capture(sc: Scenario, tmp_factory: pytest.TempPathFactory) -> Outcome:
    if sc.name not in _captured:
        out = tmp_factory.mktemp(sc.name) / "artifacts"
        try:
            _captured[sc.name] = reproduce(sc, out)
        except Exception as exc:  # recorded once: test_diagnoses must not run it again
            _captured[sc.name] = Outcome(out, [f"scenario failed: {exc!r}"], None)
    return _captured[sc.name]


def _needs(sc: Scenario) -> None:
    reason = REASON or (sc.needs() if sc.needs else None)
    if reason:
        pytest.skip(reason)


def _diag_param(name: str) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=GAPS[name])] if name in GAPS else []
    return pytest.param(name, marks=marks, id=name)


pytestmark = [pytest.mark.root, pytest.mark.skipif(REASON is not None, reason=str(REASON))]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_reproduces(name: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    sc = SCENARIOS[name]
    _needs(sc)
    outcome = capture(sc, tmp_path_factory)
    assert outcome.problems == [], f"{name}: raw evidence missing: {outcome.problems}"
    assert (outcome.out / "expected.json").exists()


@pytest.mark.parametrize("name", [_diag_param(n) for n in SCENARIOS])
def test_diagnoses(name: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    sc = SCENARIOS[name]
    _needs(sc)
    outcome = capture(sc, tmp_path_factory)
    if outcome.problems:
        pytest.skip(f"the incident did not reproduce: {outcome.problems}")
    expect = json.loads((outcome.out / "expected.json").read_text())
    report = diagnose(outcome.out, expect.get("args", []))
    wrong = judge(report, expect)
    assert not wrong, f"{wrong}\nfindings: {brief(report)}"
