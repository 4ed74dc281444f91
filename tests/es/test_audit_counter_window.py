"""A cause that only counters show is found by the scheduled audit, between two runs.

In a namespace of our own: a search server (osmem) on the namespace's loopback, an
audit run, then a listener with backlog 1 that never accepts and a bounded burst of
clients overflowing its queue, then a second audit run. The second run must ship a
``listen-queue-overflow`` finding from the counters that moved since the first run
(no log line says so), the listener named; the first run, with nothing moved, none.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.es.conftest import osmem_binary
from tests.limits.netns import CLIENT_IP, REPO, SERVER_IP, Lab, lab, needs_netns

pytestmark = pytest.mark.es
PORT = 8090
SERVER = f"""
import socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("{SERVER_IP}", {PORT}))
s.listen(1)
time.sleep(120)  # never accepts; killed by the test
"""
CLIENTS = f"""
import socket, time
socks = []
for i in range(12):  # bounded: twelve attempts
    c = socket.socket()
    c.setblocking(False)
    c.bind(("{CLIENT_IP}", 0))
    c.connect_ex(("{SERVER_IP}", {PORT}))
    socks.append(c)
time.sleep(4)  # the queue overflows while the handshakes retry
"""
SEARCH = """
import json, subprocess, sys
from tests.es.proxy import FaultProxy
import os
osmem = subprocess.Popen([sys.argv[1], "--addr", "127.0.0.1:0", "--no-ja",
                          "--parent-pid", str(os.getpid())],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
proxy = FaultProxy(json.loads(osmem.stdout.readline())["url"], rewrite=True)
print(proxy.url, flush=True)
sys.stdin.read()  # until the test closes the pipe
proxy.stop()
osmem.kill()
osmem.wait()
"""
QUERY = """
import json, sys, urllib.request
url, index = sys.argv[1], sys.argv[2]
def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return {"hits": {"hits": []}}
        raise
call("POST", f"/{index}/_refresh")
res = call("POST", f"/{index}/_search", {"size": 1000, "query": {"match_all": {}}})
print(json.dumps([h["_source"] for h in res["hits"]["hits"]]))
"""


def _findings(net: Lab, url: str) -> list[dict[str, Any]]:
    out = net.run(net.server, sys.executable, "-c", QUERY, url,
                  "logs-auditor.findings-cw")
    assert out.returncode == 0, out.stderr
    return [d["auditor"]["finding"] for d in json.loads(out.stdout)]


def _audit(net: Lab, cfg: Path) -> dict[str, Any]:
    out = net.run(net.server, sys.executable, "-m", "auditor", "audit", "--config", str(cfg),
                  "--json", timeout=180)
    assert out.returncode == 0, out.stderr + out.stdout
    summary: dict[str, Any] = json.loads(out.stdout)
    return summary


@needs_netns
def test_counter_only_cause_found_between_two_audit_runs(tmp_path: Path) -> None:
    binary = osmem_binary()
    if binary is None:
        pytest.skip("osmem-server is not installed (pip install osmem-server)")
    kern = tmp_path / "kern.log"
    kern.write_text("")
    with lab() as net:
        # the search server and the test proxy (it adapts the client's headers), both on the
        # namespace's loopback; they stop when our pipe closes, and are killed by pid
        server = subprocess.Popen(
            ["ip", "netns", "exec", net.server, sys.executable, "-c", SEARCH, binary],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": REPO},
        )
        net.procs.append(server)
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        cfg = tmp_path / "auditor.toml"
        cfg.write_text("\n".join([
            'host = "cw-host"',
            f'state = "{tmp_path / "state.json"}"',
            f'spool = "{tmp_path / "spool"}"',
            f'dead_letter = "{tmp_path / "dead.ndjson"}"',
            'since = ""',
            "[elasticsearch]",
            f'hosts = ["{url}"]',
            'namespace = "cw"',
            "timeout = 10",
            "max_retries = 2",
            "[[inputs]]",
            f'path = "{kern}"',
            'type = "kernel"',
        ]) + "\n")
        first = _audit(net, cfg)
        assert first["problems"] == []
        assert not [f for f in _findings(net, url) if f["cause"] == "listen-queue-overflow"]

        listener = net.start_python(net.server, SERVER)
        net.wait_listening(PORT)
        clients = net.start_python(net.client, CLIENTS)
        time.sleep(3)  # handshakes complete and overflow; the clients still hold them
        second = _audit(net, cfg)
        clients.kill()
        listener.kill()
        for proc in (clients, listener):
            proc.kill()
            proc.wait(timeout=10)

        assert second["problems"] == []
        found = [f for f in _findings(net, url) if f["cause"] == "listen-queue-overflow"]
        assert found, "no listen-queue-overflow finding after the queue overflowed"
        text = json.dumps(found[0])
        assert "ListenOverflows" in text  # named from the counter that moved
        assert found[0]["resets"] > 0 or found[0].get("evidence")
