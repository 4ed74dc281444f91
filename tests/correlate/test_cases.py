"""Per-cause pass/fail cases (tests/correlate/cases/<id>.yaml) turned into pytest cases."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from auditor.correlate.catalog import load_default
from tests.correlate.casekit import CASES, load_cases, run_case

ALL = load_cases()


@pytest.mark.parametrize(
    ("cause", "case"), [(c, k) for c, _, k in ALL], ids=[f"{c}:{n}" for c, n, _ in ALL]
)
def test_case(cause: str, case: dict[str, Any]) -> None:
    report = run_case(case)
    found = [f.cause for f in report.findings]
    expect = case["expect"]
    if "top" in expect:
        assert found, f"no finding; unexplained={report.unexplained}"
        top = report.findings[0]
        assert top.cause == expect["top"], f"top {top.cause} ({top.score}); all {found}"
        if "confidence" in expect:
            assert top.confidence == expect["confidence"]
        if "rule_contains" in expect:
            assert top.rule is not None and expect["rule_contains"] in top.rule.text
        if "limit" in expect:
            assert top.limit is not None and top.limit.name == expect["limit"]
        if "ports" in expect:
            assert list(top.ports) == expect["ports"], top.ports
        if "resets" in expect:
            assert top.resets == expect["resets"], top.summary
        for text in expect.get("remedy_contains", []):
            assert text in top.remedy, top.remedy
        if "resets" in expect:
            assert top.resets == expect["resets"], top.summary
        assert top.evidence, "a finding without evidence"
    if "order" in expect:  # these causes, in this order (others may come between)
        assert [c for c in found if c in expect["order"]] == expect["order"], found
    for cause_id, n in expect.get("resets_of", {}).items():
        assert [f.resets for f in report.findings if f.cause == cause_id] == [n], found
    for cause_id, ports in expect.get("ports_of", {}).items():
        assert [list(f.ports) for f in report.findings if f.cause == cause_id] == [ports], found
    if "total" in expect:
        assert report.total == expect["total"], report.total
    if "absent" in expect:
        assert expect["absent"] not in found, f"{expect['absent']} reported: {report.findings}"
    if "not_high" in expect:
        assert all(f.confidence != "high" for f in report.findings if f.cause == expect["not_high"])
    if "note" in expect:
        assert expect["note"] in [n.cause for n in report.notes]
    if "no_note" in expect:
        assert expect["no_note"] not in [n.cause for n in report.notes]
    if "unexplained" in expect:
        assert sum(u.resets for u in report.unexplained) == expect["unexplained"]
    if expect.get("no_findings"):
        assert found == []


def test_every_cause_has_pass_and_fail_cases() -> None:
    kinds: dict[str, set[str]] = {}
    for path in CASES.glob("*.yaml"):
        doc = yaml.safe_load(path.read_text())
        assert doc["cause"] == path.stem
        for case in doc["cases"]:
            exp, me = case["expect"], path.stem
            got = kinds.setdefault(me, set())
            if me in (exp.get("top"), exp.get("note")) and exp.get("absent") != me:
                got.add("pass")
            if me in (exp.get("absent"), exp.get("no_note")) or exp.get("top", me) != me:
                got.add("fail")
    for cause in load_default().causes:
        assert kinds.get(cause.id, set()) >= {"pass", "fail"}, (
            f"{cause.id}: needs pass and fail cases"
        )
