"""Generated incidents (tests/lab/shapes.py), split into tuning and held-out seeds.

``test_tuning[<family>-<seed>]`` generates one tuning incident and asserts that
diagnose is right on it, blind and with the engineer's ``--port`` (a case it gets
wrong today is a strict xfail in ``GAPS``, naming the class of failure).
``test_held_out_accuracy`` generates the held-out incidents (tests/lab/seeds.py),
scores them with the tuning ones, prints both accuracies and the failure classes,
writes them to ``shape-scores.json`` in its tmp dir, and fails only when held-out
accuracy drops below ``seeds.FLOOR``. Never add a held-out case to ``GAPS``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.lab import seeds
from tests.lab.netlab import lab_available
from tests.lab.score import COUNTED, Judged, judge_capture, render, summary
from tests.lab.scoring_cli import generate, judge_cases

REASON = lab_available()

# Tuning cases diagnose gets wrong today, by class of failure. strict: a fix turns the
# test red until its entry is removed, so the list cannot go stale.
GAPS: dict[str, str] = {}

pytestmark = [pytest.mark.root, pytest.mark.skipif(REASON is not None, reason=str(REASON))]

_judged: dict[str, list[Judged]] = {}
_missing: dict[str, list[str]] = {}


def judged(case: str, root: Path) -> list[Judged]:
    """Generate and judge ``case`` once per session (an empty list: it did not reproduce)."""
    if case not in _judged and case not in _missing:
        try:
            got = generate(case, root / case)
        except Exception as exc:  # recorded once: the score must not run it again
            _missing[case] = [f"lab failed: {exc!r}"]
            return []
        if got.problems:
            _missing[case] = got.problems
            return []
        _judged[case] = judge_capture(case, root / case, got.expect)
    return _judged.get(case, [])


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shapes")


def _param(case: str) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=GAPS[case])] if case in GAPS else []
    return pytest.param(case, marks=marks, id=case)


@pytest.mark.parametrize("case", [_param(c) for c in seeds.cases(seeds.TUNING)])
def test_tuning(case: str, root: Path) -> None:
    got = judged(case, root)
    assert case not in _missing, f"{case} did not reproduce: {_missing[case]}"
    wrong = [f"{j.judgement}: {kind}: {detail} [{j.top}]" for j in got
             for kind, detail in j.failures if kind in COUNTED]
    assert not wrong, "\n".join(wrong)


def test_held_out_accuracy(root: Path, tmp_path: Path) -> None:
    assert not set(seeds.cases(seeds.HELD_OUT)) & set(GAPS), "held-out cases are never GAPS"
    tuning = [j for c in seeds.cases(seeds.TUNING) for j in judged(c, root)]
    held, missing = judge_cases(seeds.cases(seeds.HELD_OUT), root, log=False)
    _missing.update(missing)
    doc = summary(tuning, held)
    doc["not_reproduced"] = dict(_missing)
    (tmp_path / "shape-scores.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(render(doc))
    print(f"scores written to {tmp_path / 'shape-scores.json'}")
    reproduced = len({j.case for j in held})
    assert reproduced >= 0.8 * len(seeds.cases(seeds.HELD_OUT)), \
        f"too few held-out incidents reproduced: {_missing}"
    assert doc["held_out"]["accuracy"] >= seeds.FLOOR, \
        f"held-out accuracy {doc['held_out']['accuracy']:.1%} below the floor {seeds.FLOOR:.0%}"
