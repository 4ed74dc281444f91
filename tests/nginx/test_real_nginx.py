"""A real nginx on 127.0.0.1 in front of an upstream that resets, read back by our parsers.

nginx runs with a temporary prefix and a config written here (a custom text
log_format and a JSON log_format); the config is read with auditor's own
config parser to get the formats; the real error and access logs are parsed
and must show the upstream resets (with the upstream's address) and the
502/444 responses.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from auditor.models import Event
from auditor.nginx.access_format import format_for_log
from auditor.nginx.config import load
from auditor.parsers.base import ParseContext
from auditor.parsers.nginx_access import NginxAccessParser
from auditor.parsers.nginx_error import NginxErrorParser
from auditor.sources.scan import ScanStats, scan
from auditor.timeutil import host_timezone

NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
)
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx binary not installed")
RESET_REQUESTS = 4

CONF = """
{user}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log info;
events {{ worker_connections 64; }}
http {{
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    log_format upstreamlog '$remote_addr:$remote_port [$time_local] "$request" $status '
                           '$body_bytes_sent rt=$request_time ua="$upstream_addr" '
                           'us="$upstream_status" urt="$upstream_response_time" '
                           'cn=$connection cr=$connection_requests';
    log_format jsonlog escape=json '{{"time":"$time_iso8601","remote_addr":"$remote_addr",'
                                   '"request":"$request","status":$status,'
                                   '"upstream_addr":"$upstream_addr","connection":"$connection"}}';
    access_log {prefix}/logs/access.log upstreamlog;
    access_log {prefix}/logs/access.json jsonlog;
    upstream resetter {{ server 127.0.0.1:{upstream}; }}
    server {{
        listen 127.0.0.1:{port};
        server_name lab.test;
        location /reset {{ proxy_pass http://resetter; }}
        location /drop {{ return 444; }}
        location /ok {{ return 200 "ok\\n"; }}
    }}
}}
"""


class ResettingUpstream:
    """Reads one request per connection, then closes with SO_LINGER 0 (an RST)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.resets = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            conn.settimeout(2)
            data = b""
            try:
                while b"\r\n\r\n" not in data and len(data) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            self.resets += 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Lab:
    prefix: Path
    port: int
    upstream_port: int
    statuses: dict[str, list[int]]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    prefix = tmp_path_factory.mktemp("hn-nginx")
    for sub in ("logs", "tmp"):
        (prefix / sub).mkdir()
    prefix.chmod(0o755)
    upstream = ResettingUpstream()
    port = free_port()
    user = "user root root;" if os.geteuid() == 0 else ""
    conf = prefix / "nginx.conf"
    conf.write_text(CONF.format(prefix=prefix, port=port, upstream=upstream.port, user=user))
    assert NGINX is not None
    proc = subprocess.run(
        [NGINX, "-p", str(prefix), "-c", str(conf)], capture_output=True, text=True, timeout=20
    )
    statuses: dict[str, list[int]] = {"reset": [], "drop": [], "ok": []}
    pid: int | None = None
    try:
        assert proc.returncode == 0, f"nginx did not start: {proc.stderr}"
        pid_file = prefix / "nginx.pid"
        for _ in range(50):
            if pid_file.exists() and pid_file.read_text().strip():
                break
            time.sleep(0.1)
        pid = int(pid_file.read_text())
        for path in ["/ok", *["/reset"] * RESET_REQUESTS, "/drop", "/drop"]:
            statuses[path.strip("/")].append(request(port, path))
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGQUIT)
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            else:
                os.kill(pid, signal.SIGKILL)
        upstream.close()
    yield Lab(prefix, port, upstream.port, statuses)


def request(port: int, path: str) -> int:
    """The status of one GET, or 0 when nginx closed without an answer (444)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers={"User-Agent": "hn-lab"})
        return conn.getresponse().status
    except (http.client.RemoteDisconnected, ConnectionResetError):
        return 0
    finally:
        conn.close()


def events_of(parser_cls: type, path: Path, options: dict[str, object]) -> tuple[list[Event], ScanStats]:
    ctx = ParseContext(timezone=host_timezone(), options=options)
    parser = parser_cls(ctx, str(path))
    stats = ScanStats(str(path), parser.name)
    return list(scan(str(path), parser, stats, every_line=True)), stats


def test_requests_behaved(lab: Lab) -> None:
    assert lab.statuses["ok"] == [200]
    assert lab.statuses["reset"] == [502] * RESET_REQUESTS
    assert lab.statuses["drop"] == [0, 0]


def test_error_log_has_upstream_resets(lab: Lab) -> None:
    events, stats = events_of(NginxErrorParser, lab.prefix / "logs" / "error.log", {})
    assert stats.not_understood == 0, stats.issues
    resets = [e for e in events if e.action == "upstream-reset"]
    assert len(resets) == RESET_REQUESTS
    for e in resets:
        assert (e.destination_ip, e.destination_port) == ("127.0.0.1", lab.upstream_port)
        assert e.error_code == "104" and e.source_ip == "127.0.0.1"
        assert e.url == "/reset" and e.http_method == "GET"
        assert e.extra["upstream"] == f"http://127.0.0.1:{lab.upstream_port}/reset"
        assert e.extra["context"] == "reading response header from upstream"
    actions = {e.action for e in events}
    assert {"nginx-start", "nginx-signal", "nginx-exit"} <= actions


@pytest.mark.parametrize("log", ["access.log", "access.json"])
def test_access_logs_with_format_from_config(lab: Lab, log: str) -> None:
    config = lab.prefix / "nginx.conf"
    cfg = load(str(config))
    assert {"upstreamlog", "jsonlog"} <= set(cfg.log_formats)
    found = format_for_log(lab.prefix / "logs" / log, config)
    assert found is not None
    options = {"log_format": found.format, "log_format_escape": found.escape}
    events, stats = events_of(NginxAccessParser, lab.prefix / "logs" / log, options)
    assert stats.not_understood == 0, stats.issues
    assert stats.lines == 1 + RESET_REQUESTS + 2
    bad_gateway = [e for e in events if e.action == "http-bad-gateway"]
    dropped = [e for e in events if e.action == "http-no-response"]
    assert len(bad_gateway) == RESET_REQUESTS and len(dropped) == 2
    assert all(e.url == "/drop" and e.status_code == 444 for e in dropped)
    for e in bad_gateway:
        assert e.status_code == 502 and e.url == "/reset" and e.source_ip == "127.0.0.1"
        assert e.extra["upstream_addr"] == (f"127.0.0.1:{lab.upstream_port}",)
        assert isinstance(e.extra["connection"], int)
    # The reset seen in the error log and the 502 in the access log share the connection id.
    errors, _ = events_of(NginxErrorParser, lab.prefix / "logs" / "error.log", {})
    reset_conns = {e.extra["connection"] for e in errors if e.action == "upstream-reset"}
    assert {e.extra["connection"] for e in bad_gateway} == reset_conns
