"""Hostile kernel trace records: the parser gives an Event, None or LineError, never a crash."""

from __future__ import annotations

import contextlib
import json

from hypothesis import given
from hypothesis import strategies as st

from auditor.models import Location
from auditor.parsers.base import LineError, ParseContext
from auditor.parsers.kernel_trace import KernelTraceParser

PARSER = KernelTraceParser(ParseContext(), "fuzz")
WORDS = st.sampled_from([
    "src=", "dest=", "reason=", "reason: ", "state=", "sport=", "dport=", "saddr=", "family=",
    "AF_INET6", "[", "]", ":", "-", " ", "127.0.0.1", "::1", "99999", "0", "tcp_send_reset:",
    "kfree_skb:", "tcp_receive_reset:", "[001]", "..s1.", "12.5:", "NO_SOCKET", "\x00", "é",
])


@given(st.lists(WORDS, max_size=30).map("".join), st.text(max_size=40), st.booleans())
def test_hostile_records_never_crash(raw: str, stamp: str, good_time: bool) -> None:
    rec = {"kernel-trace": "x", "time": "2026-11-24T10:00:00+00:00" if good_time else stamp,
           "raw": "python3-12 [001] ..... 5.5: " + raw}
    try:
        event = PARSER.parse(json.dumps(rec), Location("fuzz", 1))
    except LineError:
        return
    if event is not None:
        assert event.action.startswith("kernel-")
        for port in (event.source_port, event.destination_port):
            assert port is None or 0 <= port <= 65535


@given(st.text(max_size=200))
def test_any_text_line_never_crashes(line: str) -> None:
    with contextlib.suppress(LineError):
        PARSER.parse(line, Location("fuzz", 1))


def test_deeply_nested_json_is_a_line_error() -> None:
    try:
        PARSER.parse("[" * 100_000 + "]" * 100_000, Location("fuzz", 1))
    except LineError as exc:
        assert "not JSON" in str(exc)
    else:
        raise AssertionError("a nested array is not a record")
