"""Trace files in bundles: recognised by content, headers read defensively, hints without a trace."""

from __future__ import annotations

import json
from pathlib import Path

from auditor.bundle.inputs import open_input
from auditor.bundle.reader import recognise
from auditor.bundle.trace import header_notes
from tests.correlate.casekit import run_case

RECORD = (
    '{"kernel-trace":"tcp_send_reset","time":"2026-11-24T10:00:01+00:00","raw":"python3-1 [001]'
    ' ..... 1.5: tcp_send_reset: src=127.0.0.1:9200 dest=127.0.0.1:4000 state=TCP_CLOSE'
    ' reason=TCP_ABORT_ON_CLOSE"}'
)


def test_records_and_header_are_recognised_by_content(tmp_path: Path) -> None:
    assert recognise([RECORD, RECORD]) == "kernel-trace"
    header = json.dumps({"auditor-trace-header": 1, "kernel": "6.18"}, indent=1)
    assert recognise(header.splitlines()) == "trace-header"
    assert recognise(['{"nftables": []}']) == "nft-json"


def test_header_notes_say_what_was_not_recorded_and_survive_bad_headers(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "header.json").write_text(json.dumps({
        "auditor-trace-header": 1,
        "kernel": "5.15.0",
        "tracepoints": [{"name": "skb:kfree_skb", "recorded": True}, "junk"],
        "not_recorded": [{"what": "tcp:tcp_send_reset reason",
                          "why": "no reason field: reset reasons need Linux 6.10"}, 7],
        "lost": 12,
    }, indent=1))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "header.json").write_text('{\n "auditor-trace-header": [1, 2')
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "header.json").write_text('{\n "auditor-trace-header": 1, "tracepoints": 5}')
    notes = {Path(p).parent.name: (ok, n) for p, ok, n in header_notes(open_input(str(tmp_path)))}
    ok, note = notes["a"]
    assert ok and "kernel 5.15.0" in note and "reset reasons need Linux 6.10" in note
    assert "12 events lost" in note
    assert notes["c"] == (False, "kernel None; recorded nothing")
    ok, note = notes["b"]  # truncated: said, not used
    assert not ok and note.startswith("trace header not readable")


def test_without_a_trace_abort_counters_are_a_low_candidate_that_asks_for_one() -> None:
    report = run_case({"counters": {"TcpExt.TCPAbortOnClose": 25}})
    abort = [f for f in report.findings if f.cause == "app-abort"]
    assert abort and abort[0].confidence == "low"
    assert "--trace" in abort[0].details["hint"]


def test_with_a_trace_the_process_is_named_and_no_hint() -> None:
    report = run_case({"events": [{
        "action": "kernel-reset-abort-on-close", "count": 4, "dataset": "kernel.trace",
        "port": 9200, "process": "gunicorn", "pid": 321,
        "extra": {"tracepoint": "tcp_send_reset", "reason": "TCP_ABORT_ON_CLOSE",
                  "unit": "web.service"},
    }]})
    abort = next(f for f in report.findings if f.cause == "app-abort")
    assert abort.details["processes"][0] == {
        "name": "gunicorn", "pid": 321, "unit": "web.service", "port": 9200,
        "reason": "TCP_ABORT_ON_CLOSE",
    }
    assert "hint" not in abort.details
    assert "gunicorn (pid 321)" in abort.remedy
