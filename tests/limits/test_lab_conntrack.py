"""Conntrack pressure in a namespace: the table fills, the collector sees it and its drops.

nf_conntrack_max is global (the per-namespace sysctl is read-only and shows the
host's value) while nf_conntrack_count is per namespace. So the test lowers the
global maximum for a few seconds (restored in ``finally``) and fills the table of
its own namespace with unreplied UDP flows; other namespaces are far below it.
Tests that lower it serialise on tests.limits.netns.CONNTRACK_MAX_LOCK.
"""

from __future__ import annotations

import os
import sys

import pytest

from auditor.bundle.inputs import open_input
from auditor.correlate.catalog import load_default
from auditor.correlate.risks import host_risks
from auditor.limits.snapshot import load_state
from tests.limits.netns import conntrack_max, lab, needs_netns, sh

MAX_PATH = "/proc/sys/net/netfilter/nf_conntrack_max"
SMALL_MAX = 1024
FLOWS = 1400  # bounded: one datagram each, above SMALL_MAX so early drops happen
FLOOD = f"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
refused = 0
for port in range(20000, 20000 + {FLOWS}):
    try:
        s.sendto(b"x", ("127.0.0.1", port))
    except PermissionError:  # conntrack dropped it: table full
        refused += 1
print(refused)
"""


def _conntrack_usable() -> str | None:
    if not os.path.exists(MAX_PATH):
        return "nf_conntrack not loaded"
    if not os.access(MAX_PATH, os.W_OK):
        return "nf_conntrack_max not writable here (not the initial namespace)"
    if sh("which", "nft", check=False).returncode != 0:
        return "needs nft"
    return None


@needs_netns
@pytest.mark.skipif(_conntrack_usable() is not None, reason=f"conntrack: {_conntrack_usable()}")
def test_conntrack_pressure(tmp_path: str) -> None:
    dest = os.path.join(str(tmp_path), "bundle")
    with lab() as net:
        # a ct expression makes the namespace track connections
        rules = os.path.join(str(tmp_path), "ct.nft")
        with open(rules, "w") as fh:
            fh.write(
                "table inet hl {\n chain out {\n  type filter hook output priority 0;\n"
                "  ct state new counter\n }\n}\n"
            )
        r = net.run(net.server, "nft", "-f", rules)
        assert r.returncode == 0, r.stderr
        with conntrack_max(SMALL_MAX):
            collector = net.start_collector(dest, 1.5, "counters/before/nf_conntrack")
            flood = net.run(net.server, sys.executable, "-c", FLOOD)
            assert flood.returncode == 0, flood.stderr
            _, err = collector.communicate(timeout=60)
            assert collector.returncode == 0, err

    state = load_state(open_input(dest))
    lim = state.limit("net.netfilter.nf_conntrack_max")
    assert lim is not None
    assert lim.value == SMALL_MAX
    assert lim.observed is not None and lim.observed >= 0.8 * SMALL_MAX
    assert lim.observed <= SMALL_MAX
    assert state.after["conntrack.entries"] == lim.observed
    # more flows than room: the kernel evicted unreplied entries or dropped the packet
    refused = int(flood.stdout)
    print(refused, {k: v for k, v in state.deltas.items() if k.startswith("conntrack.")})
    assert state.deltas["conntrack.drop"] == refused
    assert state.deltas["conntrack.early_drop"] + refused >= FLOWS - SMALL_MAX
    found = [f for f in host_risks(load_default(), state) if f.cause == "conntrack-table-full"]
    assert len(found) == 1
    f = found[0]
    assert f.confidence == "medium"
    assert f.limit is not None and f.limit.value == SMALL_MAX
    assert f.limit.usage >= 0.8
    assert f"nf_conntrack_max={2 * SMALL_MAX}" in f.remedy  # twice the use, a power of two
    assert any("conntrack.early_drop" in e.text for e in f.evidence)
