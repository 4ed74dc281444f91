"""Report outputs: JSON follows auditor.report/1 (validated), NDJSON is ECS, Markdown and table render."""

from __future__ import annotations

import io
import json

import jsonschema
from rich.console import Console

from auditor.correlate.report import SCHEMA, json_schema
from auditor.sinks.report_json import write_report_json
from auditor.sinks.report_markdown import render_markdown
from auditor.sinks.report_ndjson import finding_to_ecs, write_report_ndjson
from auditor.sinks.report_table import print_report
from tests.correlate.casekit import load_cases, run_case

CASES = {name: case for _, name, case in load_cases()}


def _reports() -> list[object]:
    return [
        run_case(CASES[n])
        for n in (
            "logged-reject-traced-to-rule",
            "kernel-table-full",
            "oom-killed-backend",
            "listener-present",
            "deliberate-444",
        )
    ]


def test_json_validates_against_schema() -> None:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    for report in _reports():
        out = io.StringIO()
        write_report_json(report, out)  # type: ignore[arg-type]
        doc = json.loads(out.getvalue())
        assert doc["schema"] == SCHEMA
        jsonschema.validate(doc, schema)


def test_schema_rejects_a_broken_report() -> None:
    out = io.StringIO()
    write_report_json(run_case(CASES["kernel-table-full"]), out)
    doc = json.loads(out.getvalue())
    doc["findings"][0]["confidence"] = "certain"
    try:
        jsonschema.validate(doc, json_schema())
    except jsonschema.ValidationError:
        return
    raise AssertionError("schema accepted confidence 'certain'")


def test_firewall_finding_json_names_the_rule() -> None:
    doc = run_case(CASES["logged-reject-traced-to-rule"]).to_json()
    rule = doc["findings"][0]["rule"]
    assert rule["chain"] == "INPUT" and rule["position"] == 1 and rule["packets"] == 12
    assert doc["findings"][0]["side"] == "firewall"
    assert doc["resets"] == {"total": 12, "explained": 12, "intentional": 0, "unexplained": 0}


def test_limit_finding_json_names_limit_value_and_use() -> None:
    f = run_case(CASES["kernel-table-full"]).to_json()["findings"][0]
    assert f["limit"]["name"] == "net.netfilter.nf_conntrack_max"
    assert (f["limit"]["value"], f["limit"]["observed"]) == (256, 256)


def test_upstream_crash_names_killed_process() -> None:
    f = run_case(CASES["oom-killed-backend"]).findings[0]
    assert f.details["killed"][0]["name"] == "python3" and f.details["upstreams"] == [
        "127.0.0.1:9003"
    ]


def test_ndjson_is_ecs() -> None:
    report = run_case(CASES["logged-reject-traced-to-rule"])
    out = io.StringIO()
    assert write_report_ndjson(report, out) == 1
    doc = json.loads(out.getvalue().splitlines()[0])
    assert doc["event"]["kind"] == "alert" and doc["event"]["action"] == "firewall-reject"
    assert doc["rule"]["id"] == "firewall-reject" and doc["destination"]["port"] == 8443
    assert doc["host"]["name"] == "case-host"
    assert finding_to_ecs(report.findings[0], None).get("host") is None


def test_markdown_and_table() -> None:
    report = run_case(CASES["logged-reject-traced-to-rule"])
    md = render_markdown(report)
    assert "`firewall-reject`" in md and "--dport 8443" in md and "| evidence | at |" in md
    console = Console(file=io.StringIO(), width=200, record=True)
    print_report(report, console)
    text = console.export_text()
    assert "firewall-reject" in text and "resets per minute" in text and "remedy:" in text


def test_unexplained_is_counted_and_shown() -> None:
    report = run_case({"events": [{"action": "http-bad-gateway", "count": 4}]})
    assert report.total == 4 and report.explained == 0
    assert sum(u.resets for u in report.unexplained) == 4
    assert "Unexplained" in render_markdown(report)


def test_healthy_control_has_no_findings() -> None:
    report = run_case(
        {
            "events": [],
            "limits": [{"name": "net.netfilter.nf_conntrack_max", "value": 262144, "observed": 40}],
        }
    )
    assert report.findings == () and report.total == 0
