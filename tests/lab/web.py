"""Real nginx and small Python upstreams for the incident lab.

:class:`Nginx` writes a configuration into a work directory (logs, pid and temp
paths there too) and runs ``nginx -c <conf> -g 'daemon off;'`` in the server
namespace. :func:`upstream` starts one of the Python upstreams of
:data:`UPSTREAM_CODE` (modes: ``ok`` answers after ``arg`` seconds,
``slow`` streams ``arg`` bytes at about 80 KB/s, ``linger0`` resets every request
(SO_LINGER 0), ``hog`` allocates ``arg`` times 8 MiB per request, ``noaccept``
listens with backlog ``arg`` (default 1) and never accepts).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.lab.netlab import Lab

LOG_FORMATS = {
    "combined": "",
    "custom": ("log_format lab '$remote_addr - [$time_local] \"$request\" $status $body_bytes_sent "
               "rt=$request_time ua=\"$upstream_addr\" us=\"$upstream_status\"';"),
    "json": ("log_format lab escape=json '{\"time\":\"$time_iso8601\",\"remote_addr\":\"$remote_addr\","
             "\"request\":\"$request\",\"status\":$status,\"body_bytes_sent\":$body_bytes_sent,"
             "\"request_time\":$request_time,\"upstream_addr\":\"$upstream_addr\","
             "\"upstream_status\":\"$upstream_status\"}';"),
}


@dataclass(frozen=True)
class NginxSpec:
    """What differs between the lab's nginx configurations."""

    servers: str
    http: str = ""
    worker_connections: int = 512
    rlimit_nofile: int | None = None
    log_format: str = "combined"
    error_level: str = "notice"


class Nginx:
    """One nginx master in the server namespace, configured from a :class:`NginxSpec`."""

    def __init__(self, lab: Lab, work: Path, spec: NginxSpec) -> None:
        self.lab, self.spec = lab, spec
        self.dir = work / "nginx"
        for sub in ("logs", "tmp", "www"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(work, 0o755)
        for path in (self.dir, self.dir / "www"):
            os.chmod(path, 0o755)
        os.chmod(self.dir / "tmp", 0o777)
        self.conf = self.dir / "nginx.conf"
        self.access, self.error = self.dir / "logs" / "access.log", self.dir / "logs" / "error.log"
        self.conf.write_text(self.render())
        self.proc: subprocess.Popen[bytes] | None = None

    def render(self) -> str:
        s, d = self.spec, self.dir
        fmt = LOG_FORMATS[s.log_format]
        access = f"access_log {self.access} {'lab' if fmt else 'combined'};"
        rlimit = f"worker_rlimit_nofile {s.rlimit_nofile};" if s.rlimit_nofile else ""
        return f"""user nobody nogroup;
worker_processes 1;
{rlimit}
pid {d}/nginx.pid;
error_log {self.error} {s.error_level};
events {{ worker_connections {s.worker_connections}; }}
http {{
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    {fmt}
    {access}
    keepalive_timeout 5;
    {s.http}
{s.servers}
}}
"""

    def start(self, port: int = 80) -> None:
        """Start nginx; return once it listens and has logged its worker's start (so a log
        emptied afterwards holds no start-up lines)."""
        started = self._starts()
        # nginx stamps carry no zone: write them in UTC (diagnose is told --timezone UTC)
        self.proc = self.lab.spawn(self.lab.srv, ["nginx", "-c", str(self.conf), "-g", "daemon off;"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   env={**os.environ, "TZ": "UTC"})
        self.lab.wait_port(self.lab.srv, port)
        deadline = time.monotonic() + 10
        while self._starts() <= started and time.monotonic() < deadline:
            time.sleep(0.05)

    def _starts(self) -> int:
        text = self.error.read_text(errors="replace") if self.error.exists() else ""
        return text.count("start worker process ")

    def stop(self) -> None:
        """Fast shutdown (SIGTERM to the master), as ``systemctl stop`` or a restart does."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)

    def process_limits(self) -> dict[str, str]:
        """``limits-nginx-<pid>.txt`` artifacts (as ``auditor collect`` writes) per nginx process."""
        from auditor.bundle.hostread import process_text as artifact_text

        if self.proc is None or self.proc.poll() is not None:
            return {}
        master = self.proc.pid  # `ip netns exec` execs nginx: same PID; workers are its children
        kids = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        out = {}
        for pid in [str(master), *kids]:
            text = artifact_text(int(pid))
            if text:
                out[f"limits-nginx-{pid}.txt"] = text
        return out


UPSTREAM_CODE = r"""
import socket, sys, threading, time
mode, port, arg = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", port))
ls.listen(int(arg or 1) if mode == "noaccept" else 128)
if mode == "noaccept":
    time.sleep(3600)
def read_request(c):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = c.recv(4096)
        if not chunk:
            break
        data += chunk
    return data
def serve(c):
    try:
        read_request(c)
        if mode == "linger0":
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            return
        if mode == "hog":
            hog = []
            for _ in range(int(arg)):
                hog.append(bytearray(8 << 20))
                time.sleep(0.02)
        if mode == "ok" and arg:
            time.sleep(arg)
        size = int(arg) if mode == "slow" else 64
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % size)
        if mode == "slow":
            left = size
            while left > 0:
                c.sendall(b"x" * min(4096, left))
                left -= 4096
                time.sleep(0.05)
        else:
            c.sendall(b"y" * size)
    except OSError:
        pass
    finally:
        c.close()
while True:
    conn, _ = ls.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""


def upstream(lab: Lab, port: int, mode: str = "ok", arg: float = 0, cgroup: Path | None = None,
             wait: bool = True) -> subprocess.Popen[bytes]:
    """Start a Python upstream in the server namespace listening on ``port``."""
    argv = [sys.executable, "-c", UPSTREAM_CODE, mode, str(port), str(arg)]
    proc = lab.spawn(lab.srv, argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if cgroup is not None:  # from outside: `ip netns exec` mounts its own /sys; same PID after exec
        (cgroup / "cgroup.procs").write_text(str(proc.pid))
    if wait:
        lab.wait_port(lab.srv, port)
    return proc


class MemoryCgroup:
    """A child memory cgroup with a hard limit (cgroup v2, else v1); removed on exit."""

    def __init__(self, name: str, limit_bytes: int) -> None:
        v2 = Path("/sys/fs/cgroup")
        ctl = v2 / "cgroup.controllers"
        if ctl.exists() and "memory" in ctl.read_text():
            self.path, self.v2 = v2 / name, True
        else:
            self.path, self.v2 = v2 / "memory" / name, False
        self.limit = limit_bytes

    def __enter__(self) -> Path:
        self.path.mkdir()
        if self.v2:
            (self.path / "memory.max").write_text(str(self.limit))
            if (self.path / "memory.swap.max").exists():
                (self.path / "memory.swap.max").write_text("0")
        else:
            (self.path / "memory.limit_in_bytes").write_text(str(self.limit))
            swap = self.path / "memory.memsw.limit_in_bytes"
            if swap.exists():
                with contextlib.suppress(OSError):
                    swap.write_text(str(self.limit))
        return self.path

    def __exit__(self, *exc: object) -> None:
        deadline = time.monotonic() + 10
        while self.path.exists() and time.monotonic() < deadline:
            for pid in (self.path / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            try:
                self.path.rmdir()
            except OSError:
                time.sleep(0.1)


def cgroup_available() -> str | None:
    """None when a memory cgroup can be created here, else why not."""
    v2 = Path("/sys/fs/cgroup/cgroup.controllers")
    if v2.exists() and "memory" in v2.read_text():
        return None
    if Path("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists():
        return None
    return "no memory cgroup controller (v2 or v1) mounted at /sys/fs/cgroup"
