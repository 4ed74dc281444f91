"""Random text in every field of every output: no raw control character, no markup
read, no HTML or link from input in Markdown, strict UTF-8 JSON, nothing lost."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.commands.fleet import print_fleet
from auditor.commands.limits import print_state, state_doc
from auditor.correlate.report import Note, Report, SourceInfo, Unexplained
from auditor.limits.snapshot import HostState
from auditor.models import (
    Event,
    Evidence,
    Finding,
    FindingLimit,
    FindingRule,
    Limit,
    Location,
    ParseIssue,
)
from auditor.parsers.host.listeners import Listener
from auditor.sinks.events import write_json, write_ndjson, write_table
from auditor.sinks.report_json import write_report_json
from auditor.sinks.report_markdown import render_markdown
from auditor.sinks.report_ndjson import write_report_ndjson
from auditor.sinks.report_table import print_report
from auditor.sinks.text import console, inert
from tests.outputs.checks import (
    ESCAPES,
    HTML,
    MARKDOWN,
    MARKUP,
    markdown_problems,
    raw_controls,
    shown,
    strict_json,
    strict_ndjson,
)

TEXT = st.lists(
    st.one_of(st.sampled_from([*MARKUP, *ESCAPES, *HTML, *MARKDOWN, "\udcff", "\n", "|", "`"]),
              st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF,
                                    exclude_categories=()), max_size=12)),
    max_size=4).map("".join)
T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
WHEN = st.builds(lambda s: T0 + timedelta(seconds=s), st.integers(0, 7200))
PORTS = st.lists(st.integers(1, 65535), max_size=3).map(tuple)

evidence = st.builds(Evidence, source=TEXT, line=st.one_of(st.none(), st.integers(1, 10**6)),
                     text=TEXT)
findings = st.builds(
    Finding, cause=TEXT, title=TEXT, confidence=st.sampled_from(["high", "medium", "low"]),
    score=st.floats(0, 1), summary=TEXT, remedy=TEXT, resets=st.integers(0, 10**6),
    ports=PORTS, first_seen=WHEN, last_seen=WHEN, side=TEXT, intentional=st.booleans(),
    rule=st.one_of(st.none(), st.builds(
        FindingRule, table=TEXT, chain=TEXT, text=TEXT,
        packets=st.one_of(st.none(), st.integers(0, 10**9)))),
    limit=st.one_of(st.none(), st.builds(
        FindingLimit, name=TEXT, value=TEXT,
        observed=st.one_of(st.none(), st.integers(0, 10**9)))),
    evidence=st.lists(evidence, max_size=3).map(tuple),
    runners_up=st.lists(st.tuples(TEXT, st.floats(0, 1)), max_size=2).map(tuple),
    details=st.dictionaries(TEXT, TEXT, max_size=2),
)
unexplained = st.builds(
    Unexplained, resets=st.integers(0, 99), ports=PORTS, upstream=st.one_of(st.none(), TEXT),
    clients=st.lists(TEXT, max_size=2).map(tuple), first_seen=WHEN, last_seen=WHEN,
    actions=st.dictionaries(TEXT, st.integers(0, 9), max_size=2),
    evidence=st.lists(evidence, max_size=2).map(tuple))
reports = st.builds(
    Report, host=st.one_of(st.none(), TEXT), start=WHEN, end=WHEN, total=st.integers(0, 99),
    explained=st.integers(0, 99), findings=st.lists(findings, max_size=2).map(tuple),
    unexplained=st.lists(unexplained, max_size=2).map(tuple),
    notes=st.lists(st.builds(Note, cause=TEXT, title=TEXT, text=TEXT), max_size=2).map(tuple),
    timeline=st.lists(st.tuples(WHEN, st.dictionaries(TEXT, st.integers(1, 9), max_size=2)),
                      max_size=2).map(tuple),
    sources=st.lists(st.builds(SourceInfo, path=TEXT, kind=TEXT, used=st.booleans(), note=TEXT),
                     max_size=3).map(tuple),
)
events = st.builds(
    Event, timestamp=WHEN, location=st.builds(Location, TEXT, st.integers(0, 99)),
    action=TEXT, source_ip=st.one_of(st.none(), TEXT), source_port=st.one_of(st.none(), st.integers(0, 65535)),
    destination_ip=st.one_of(st.none(), TEXT), rule_name=st.one_of(st.none(), TEXT),
    url=st.one_of(st.none(), TEXT), status_code=st.one_of(st.none(), st.integers(100, 599)),
    http_method=st.one_of(st.none(), TEXT), error_message=st.one_of(st.none(), TEXT),
    message=st.one_of(st.none(), TEXT), host_name=st.one_of(st.none(), TEXT),
    extra=st.dictionaries(TEXT, TEXT, max_size=2))
states = st.builds(
    HostState,
    limits=st.lists(st.builds(Limit, name=TEXT, value=TEXT, observed=st.one_of(st.none(), st.integers(0, 9)),
                              scope=TEXT, location=st.builds(Location, TEXT, st.integers(0, 9))),
                    max_size=3).map(tuple),
    listeners=st.lists(st.builds(Listener, address=TEXT, port=st.integers(1, 65535),
                                 recv_q=st.integers(5, 9), send_q=st.integers(0, 4),
                                 processes=st.lists(st.tuples(TEXT, st.integers(1, 99), st.integers(0, 9)),
                                                    max_size=1).map(tuple)),
                       max_size=2).map(tuple),
    problems=st.lists(st.builds(ParseIssue, st.builds(Location, TEXT), TEXT, TEXT, TEXT),
                      max_size=2).map(tuple),
    host=st.one_of(st.none(), TEXT), kernel=st.one_of(st.none(), TEXT), root=TEXT,
)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def terminal(width: int = 80) -> tuple[Any, io.StringIO]:
    out = io.StringIO()
    c = console()
    c.file = out
    c.width = width
    return c, out


def assert_terminal_inert(text: str) -> None:
    assert not raw_controls(text), raw_controls(text)[:5]


@FUZZ
@given(reports, st.sampled_from([80, 200]))
def test_diagnose_outputs(report: Report, width: int) -> None:
    c, out = terminal(width)
    print_report(report, c)
    assert_terminal_inert(out.getvalue())
    if report.host:  # shown as it is (escapes aside): no markup of it was read
        assert shown(inert(report.host), out.getvalue())
    md = render_markdown(report)
    assert markdown_problems(md) == []
    headings = [line for line in md.splitlines() if line.startswith("#")]
    assert len(headings) == 1 + len(report.findings) + bool(report.unexplained) + bool(report.notes)
    buf = io.StringIO()
    write_report_json(report, buf)
    doc = strict_json(buf.getvalue().encode("utf-8"))
    assert isinstance(doc, dict) and len(doc["findings"]) == len(report.findings)
    buf = io.StringIO()
    n = write_report_ndjson(report, buf)
    assert len(strict_ndjson(buf.getvalue().encode("utf-8"))) == n


@FUZZ
@given(st.lists(events, max_size=4), st.sampled_from([80, 200]))
def test_parse_outputs(evs: list[Event], width: int) -> None:
    c, out = terminal(width)
    assert write_table(evs, c, limit=3) == len(evs)
    assert_terminal_inert(out.getvalue())
    buf = io.StringIO()
    write_ndjson(evs, buf)
    assert len(strict_ndjson(buf.getvalue().encode("utf-8"))) == len(evs)
    buf = io.StringIO()
    write_json(evs, buf, {"files": []})
    doc = strict_json(buf.getvalue().encode("utf-8"))
    assert isinstance(doc, dict) and len(doc["events"]) == len(evs)


@FUZZ
@given(states)
def test_limits_outputs(state: HostState) -> None:
    c, out = terminal()
    print_state(state, [], c)
    assert_terminal_inert(out.getvalue())
    from auditor.sinks.text import dumps

    strict_json(dumps(state_doc(state, []), indent=1).encode("utf-8"))


@FUZZ
@given(st.lists(st.fixed_dictionaries({
    "cause": TEXT, "hosts": st.integers(0, 9), "resets": st.integers(0, 9),
    "findings": st.integers(0, 9), "trend": st.lists(st.floats(0, 9), max_size=4),
    "top_hosts": st.lists(TEXT, max_size=3)}), max_size=3),
    st.lists(st.fixed_dictionaries({"host": TEXT, "events": st.integers(0, 9),
                                    "actions": st.dictionaries(TEXT, st.integers(0, 9), max_size=2)}),
             max_size=3), TEXT)
def test_fleet_output(causes: list[dict[str, Any]], hosts: list[dict[str, Any]], since: str) -> None:
    c, out = terminal()
    print_fleet({"causes": causes, "hosts": hosts}, since, "findings", "resets", c)
    assert_terminal_inert(out.getvalue())
