"""The destination ports a rule's text names (what a counters-only finding reports)."""

from __future__ import annotations

import pytest

from auditor.correlate.fwlink import dports


@pytest.mark.parametrize(
    ("text", "ports"),
    [
        ("-A INPUT -p tcp -m tcp --dport 8000 -j EDGE-LIMIT", [8000]),
        ("-A INPUT -p tcp -m multiport --dports 80,443 -j REJECT", [80, 443]),
        ("tcp dport { 80, 443 } counter reject with tcp reset", [80, 443]),
        # a range names too many ports to probe; a negation names those that do not match
        ("-A INPUT -p tcp -m multiport --dports 80,8000:8010 -j REJECT", [80]),
        ("tcp dport 8000-8010 reject", []),
        ("-A INPUT -p tcp ! --dport 22 -j REJECT", []),
        ("tcp dport != 22 drop", []),
        ("tcp dport @svc jump web_in", []),
        ("-A INPUT -p tcp --sport 53 -j ACCEPT", []),
    ],
)
def test_dports(text: str, ports: list[int]) -> None:
    assert dports(text) == ports
