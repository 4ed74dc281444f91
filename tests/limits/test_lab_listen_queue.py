"""A full accept queue reproduced in namespaces: read live, collected, and analysed from the bundle.

The server namespace has a listener with backlog 1 that never accepts; the client
namespace opens a bounded number of connections during the collector's sample.
"""

from __future__ import annotations

import json
import os
import sys

from auditor.bundle.inputs import open_input
from auditor.correlate.catalog import load_default
from auditor.correlate.risks import host_risks
from auditor.limits.snapshot import load_state
from tests.limits.netns import CLIENT_IP, SERVER_IP, lab, needs_netns

PORT = 8080
SERVER = f"""
import socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("{SERVER_IP}", {PORT}))
s.listen(1)
time.sleep(60)  # never accepts; killed by the test
"""
CLIENT = f"""
import socket, sys, time
socks = []
for i in range(6):  # bounded: six attempts
    c = socket.socket()
    c.setblocking(False)
    c.bind(("{CLIENT_IP}", 0))
    c.connect_ex(("{SERVER_IP}", {PORT}))
    socks.append(c)
print("connecting", flush=True)
time.sleep(float(sys.argv[1]))  # hold them while the collector samples
"""


# Host-wide (not per-namespace) values that parallel tests elsewhere may change between the
# two readings: compared by name only.
GLOBAL = ("net.netfilter.nf_conntrack_max", "net.netfilter.nf_conntrack_buckets", "fs.")


def _key(state_limits: list[tuple[str, object, object, str]]) -> list[tuple[str, object, str]]:
    return sorted((n, None if n.startswith(GLOBAL) else v, s) for n, v, _, s in state_limits)


@needs_netns
def test_full_listen_queue_live_and_bundle(tmp_path: str) -> None:
    dest = os.path.join(str(tmp_path), "bundle")
    with lab() as net:
        server = net.start_python(net.server, SERVER)
        net.wait_listening(PORT)
        collector = net.start_collector(dest, 3.0, "counters/before/netstat")
        client = net.start(net.client, sys.executable, "-c", CLIENT, "8")
        _, err = collector.communicate(timeout=60)
        assert collector.returncode == 0, err
        live = net.run(net.server, sys.executable, "-m", "auditor", "limits", "--format", "json")
        assert live.returncode == 0, live.stderr
        client.kill()
        server.kill()

    state = load_state(open_input(dest))
    mine = [x for x in state.listeners if x.port == PORT]
    assert len(mine) == 1
    listener = mine[0]
    assert listener.address == SERVER_IP
    assert listener.send_q == 1  # backlog 1
    assert listener.recv_q == 2  # queue holds backlog + 1
    assert listener.full
    assert server.pid in listener.pids
    assert not state.since_boot and state.window_seconds is not None
    assert 2.5 < state.window_seconds < 30
    assert state.deltas["TcpExt.ListenOverflows"] > 0
    assert state.deltas["TcpExt.ListenDrops"] >= state.deltas["TcpExt.ListenOverflows"]
    assert state.moved()["TcpExt.ListenOverflows"] == state.deltas["TcpExt.ListenOverflows"]
    causes = {f.cause: f for f in host_risks(load_default(), state)}
    overflow = causes["listen-queue-overflow"]
    assert overflow.ports == (PORT,)
    assert overflow.limit is not None and overflow.limit.value == 1
    assert overflow.confidence == "medium"
    assert any("ListenOverflows" in e.text for e in overflow.evidence)
    # the same listener and limits, read live inside the namespace
    doc = json.loads(live.stdout)
    assert doc["full_listeners"] == [f"{SERVER_IP}:{PORT}"]
    assert doc["since_boot"] is True
    live_limits = [(x["name"], x["value"], x["observed"], x["scope"]) for x in doc["limits"]]
    bundle_limits = [(x.name, x.value, x.observed, x.scope) for x in state.limits]
    assert _key(live_limits) == _key(bundle_limits)
    live_backlog = [x for x in doc["limits"] if x["name"] == "listen backlog"]
    assert [(x["value"], x["observed"]) for x in live_backlog] == [(1, 2)]
    assert "listen-queue-overflow" in {f["cause"] for f in doc["findings"]}
