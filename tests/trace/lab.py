"""A network namespace with the servers of the trace tests, and bounded clients.

:class:`TraceLab` makes a namespace (random name) with loopback up and, on demand:
an application on a port that closes connections with unread request data
(``abort_server``), one that closes with ``SO_LINGER`` 0 (``linger_server``), a
listener that never accepts with a tiny backlog (``slow_listener``), nftables or
iptables rules that reject a port with a TCP reset, and a client loop that connects
to ports a bounded number of times for a bounded time (``clients``). Every process is
stopped by its own PID and the namespace deleted in :meth:`close`. Traffic stays on
the namespace's loopback.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from typing import Any

ABORT_SERVER = r"""
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(64)
linger = sys.argv[2] == "linger"
end = time.monotonic() + float(sys.argv[3])
s.settimeout(0.5)
while time.monotonic() < end:
    try:
        c, _ = s.accept()
    except socket.timeout:
        continue
    if linger:  # reads the request, then closes with SO_LINGER 0: nothing left unread
        import struct
        c.settimeout(0.5)
        try:
            c.recv(4096)
        except OSError:
            pass
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    else:
        time.sleep(0.02)  # the request arrives, unread
    c.close()
"""

SLOW_LISTENER = r"""
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
# handshakes complete only when data arrives: they then meet a queue already full
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 10)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1)
print("ready", flush=True)
time.sleep(float(sys.argv[2]))
"""

CLIENTS = r"""
import socket, sys, time
ports = [int(p) for p in sys.argv[1].split(",")]
rounds, pause = int(sys.argv[2]), float(sys.argv[3])
end = time.monotonic() + float(sys.argv[4])
seen = {}
for _ in range(rounds):
    if time.monotonic() > end:
        break
    for port in ports:
        c = socket.socket(); c.settimeout(1.0)
        try:
            c.connect(("127.0.0.1", port)); c.sendall(b"GET / HTTP/1.0\r\n\r\n"); c.recv(10)
            what = "closed"
        except ConnectionResetError:
            what = "reset"
        except ConnectionRefusedError:
            what = "refused"
        except OSError as exc:
            what = type(exc).__name__
        finally:
            c.close()
        seen[f"{port}:{what}"] = seen.get(f"{port}:{what}", 0) + 1
    time.sleep(pause)
print(seen, flush=True)
"""

OVERFLOW_CLIENTS = r"""
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
for _ in range(n):
    c = socket.socket(); c.setblocking(False)
    try:
        c.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    socks.append(c)
time.sleep(float(sys.argv[3]))
for c in socks:
    try:
        c.send(b"x")
    except OSError:
        pass
time.sleep(float(sys.argv[3]))
resets = 0
for c in socks:
    try:
        c.send(b"x")
        c.recv(1)
    except ConnectionResetError:
        resets += 1
    except OSError:
        pass
    c.close()
print(resets, flush=True)
"""


def unavailable() -> str | None:
    """Why the lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, tracefs)"
    if shutil.which("ip") is None:
        return "needs iproute2 (ip netns)"
    with open("/proc/filesystems", encoding="ascii") as fh:
        if "tracefs" not in fh.read():
            return "kernel has no tracefs"
    return None


class TraceLab:
    def __init__(self) -> None:
        self.ns = "h4t" + secrets.token_hex(4)
        self.procs: list[subprocess.Popen[str]] = []
        subprocess.run(["ip", "netns", "add", self.ns], check=True, timeout=10)
        self.sh("ip", "link", "set", "lo", "up")

    def __enter__(self) -> TraceLab:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def argv(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns, *args]

    def sh(self, *args: str, input: str | None = None) -> str:
        proc = subprocess.run(self.argv(*args), input=input, capture_output=True, text=True,
                              timeout=60, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        proc = subprocess.Popen(self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env)
        self.procs.append(proc)
        return proc

    def python(self, code: str, *args: str) -> subprocess.Popen[str]:
        return self.spawn(sys.executable, "-c", code, *args)

    def abort_server(self, port: int, seconds: float = 30, linger: bool = False) -> int:
        proc = self.python(ABORT_SERVER, str(port), "linger" if linger else "unread", str(seconds))
        self.wait_port(port)
        return proc.pid

    def wait_port(self, port: int, timeout: float = 10) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if f":{port} " in self.sh("ss", "-Htln"):
                return
            time.sleep(0.05)
        raise RuntimeError(f"nothing listens on {port} after {timeout} s")

    def nft_reject(self, port: int) -> None:
        self.sh("nft", "-f", "-", input=(
            "table inet h4trace {\n chain input {\n  type filter hook input priority 0;\n"
            f"  tcp dport {port} counter reject with tcp reset\n }}\n}}\n"))

    def iptables_reject(self, port: int) -> None:
        self.sh("iptables", "-A", "INPUT", "-p", "tcp", "--dport", str(port), "-j", "REJECT",
                "--reject-with", "tcp-reset")

    def clients(self, ports: list[int], rounds: int, pause: float, seconds: float
                ) -> subprocess.Popen[str]:
        return self.python(CLIENTS, ",".join(map(str, ports)), str(rounds), str(pause),
                           str(seconds))

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
            for fh in (proc.stdout, proc.stderr):
                if fh is not None:
                    fh.close()
        subprocess.run(["ip", "netns", "del", self.ns], check=False, timeout=10)


# The host's top-level tracing state that auditor must leave byte-identical.
STATE_FILES = (
    "tracing_on",
    "set_event",
    "current_tracer",
    "buffer_size_kb",
    "trace_options",
    "trace_clock",
    "events/tcp/tcp_send_reset/enable",
    "events/tcp/tcp_send_reset/filter",
    "events/tcp/tcp_receive_reset/enable",
    "events/tcp/tcp_receive_reset/filter",
    "events/skb/kfree_skb/enable",
    "events/skb/kfree_skb/filter",
)


class HostTracing:
    """A view of the host's tracefs for the tests: mounted on a private directory when the
    host has no tracefs mounted (and unmounted in :meth:`close`)."""

    def __init__(self) -> None:
        from auditor.sources import tracefs

        found = tracefs.tracefs_mounts()
        self.mounted: str | None = None
        if found:
            self.root = found[0]
        else:
            import tempfile

            self.root = self.mounted = tempfile.mkdtemp(prefix="h4-test-tracefs-")
            subprocess.run(["mount", "-t", "tracefs", "nodev", self.root], check=True, timeout=10)

    def state(self) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for rel in STATE_FILES:
            try:
                with open(os.path.join(self.root, rel), "rb") as fh:
                    out[rel] = fh.read()
            except OSError as exc:
                out[rel] = f"unreadable: {exc.errno}".encode()
        out["instances"] = "\n".join(sorted(self.instances())).encode()
        return out

    def instances(self) -> list[str]:
        return os.listdir(os.path.join(self.root, "instances"))

    def ours(self) -> list[str]:
        return [n for n in self.instances() if n.startswith("auditor-")]

    def wait_instance(self, timeout: float = 20) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.ours():
                return self.ours()[0]
            time.sleep(0.05)
        raise RuntimeError("auditor made no tracefs instance")

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", self.mounted], check=False, timeout=10)
            os.rmdir(self.mounted)
