"""nginx with too few worker_connections in a namespace: collected with ``auditor collect``
(the CLI, a .tar.gz) and analysed from the archive; the same findings read live."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import tarfile
import time
from pathlib import Path

import pytest

from auditor.bundle.inputs import open_input
from auditor.correlate.catalog import load_default
from auditor.correlate.risks import host_risks
from auditor.limits.snapshot import load_state
from tests.limits.netns import SERVER_IP, lab, needs_netns, sh

PORT = 8080
WORKER_CONNECTIONS = 16
HOLD = 40  # bounded: idle client connections, more than the worker can take
CONF = """
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections {wc}; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/tmp;
    proxy_temp_path {d}/tmp;
    fastcgi_temp_path {d}/tmp;
    uwsgi_temp_path {d}/tmp;
    scgi_temp_path {d}/tmp;
    keepalive_timeout 65;
    server {{
        listen {ip}:{port} backlog=8192;
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""
CLIENT = f"""
import socket, sys, time
socks = []
for i in range({HOLD}):
    c = socket.socket()
    c.settimeout(2)
    try:
        c.connect(("{SERVER_IP}", {PORT}))
    except OSError:
        pass
    socks.append(c)
print("held", flush=True)
time.sleep(float(sys.argv[1]))
"""


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


@needs_netns
@pytest.mark.skipif(sh("which", "nginx", check=False).returncode != 0, reason="needs nginx")
def test_nginx_too_few_worker_connections(tmp_path: Path) -> None:
    d = tmp_path / "nginx"
    (d / "tmp").mkdir(parents=True)
    os.chmod(tmp_path, 0o755)
    conf = d / "nginx.conf"
    conf.write_text(CONF.format(d=d, wc=WORKER_CONNECTIONS, ip=SERVER_IP, port=PORT))
    archive = tmp_path / "bundle.tar.gz"
    workers: list[int] = []
    with lab() as net:
        master = net.start(net.server, "nginx", "-c", str(conf), "-p", str(d), "-g", "daemon off;")
        try:
            net.wait_listening(PORT)
            workers = _children(master.pid)
            client = net.start(net.client, sys.executable, "-c", CLIENT, "30")
            assert client.stdout is not None
            assert client.stdout.readline().strip() == "held"
            time.sleep(0.5)
            out = net.run(
                net.server,
                sys.executable,
                "-m",
                "auditor",
                "collect",
                "-o",
                str(archive),
                "--since",
                "10m",
                "--sample",
                "1",
            )
            assert out.returncode == 0, out.stderr
            live = net.run(net.server, sys.executable, "-m", "auditor", "limits", "-f", "json")
            assert live.returncode == 0, live.stderr
        finally:
            master.send_signal(signal.SIGTERM)
            try:
                master.wait(timeout=10)
            except Exception:
                master.kill()
            for pid in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    error_log = (d / "error.log").read_text()
    assert "worker_connections are not enough" in error_log
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert any(n.endswith("manifest.json") for n in names)
    assert any(n.endswith("nginx/nginx-T.txt") for n in names)
    assert any(n.endswith(str(d / "error.log")) for n in names), names

    inputs = open_input(str(archive))
    state = load_state(inputs)
    assert state.nginx is not None
    assert state.nginx.worker_connections.value == WORKER_CONNECTIONS
    nginx_procs = [p for p in state.processes if p.is_nginx]
    assert {p.pid for p in nginx_procs} >= {master.pid, *workers}
    busy = [p for p in nginx_procs if p.is_nginx_worker]
    assert busy and busy[0].open_fds is not None and busy[0].open_fds >= WORKER_CONNECTIONS * 0.8
    wc = state.limit("nginx worker_connections")
    assert wc is not None and wc.value == WORKER_CONNECTIONS
    assert wc.location is not None and wc.location.path == str(conf)
    causes = {f.cause: f for f in host_risks(load_default(), state)}
    f = causes["nginx-worker-connections"]
    assert f.limit is not None and f.limit.value == WORKER_CONNECTIONS
    assert f.confidence == "medium"  # a worker is at the limit right now
    assert "worker_connections 1024;" in f.remedy
    capped = causes["listen-backlog-capped"]
    assert capped.limit is not None and capped.limit.observed == 8192  # the backlog asked
    assert capped.limit.value == state.sysctls.int("net.core.somaxconn")
    assert "net.core.somaxconn=8192" in capped.remedy
    assert any(e.source == str(conf) for e in capped.evidence)
    # the error log made it into the bundle and is recognised for the nginx error parser
    kinds = {os.path.basename(a.path): a.kind for a in inputs.logs()}
    assert kinds.get("error.log") == "nginx-error"
    doc = json.loads(live.stdout)
    assert {"nginx-worker-connections", "listen-backlog-capped"} <= {
        x["cause"] for x in doc["findings"]
    }
