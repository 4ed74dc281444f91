"""Network-namespace lab for the limits tests: two namespaces joined by a veth pair.

Names start with "hl" plus a random suffix; everything is removed (processes by
pid, namespaces by name) when the context ends. Addresses are from 192.0.2.0/24.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import pytest

SERVER_IP = "192.0.2.1"
CLIENT_IP = "192.0.2.2"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _can_netns() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    if shutil.which("ip") is None or shutil.which("ss") is None:
        return "needs iproute2 (ip, ss)"
    name = "hlprobe" + secrets.token_hex(3)
    probe = subprocess.run(["ip", "netns", "add", name], capture_output=True, check=False)
    if probe.returncode != 0:
        return "cannot create network namespaces"
    subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
    return None


REASON = _can_netns()
needs_netns = pytest.mark.skipif(REASON is not None, reason=f"namespace lab: {REASON}")


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, timeout=60)


@dataclass
class Lab:
    server: str
    client: str
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def run(self, ns: str, *argv: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        """Run a command inside namespace ``ns`` (auditor importable from the repo)."""
        env = {**os.environ, "PYTHONPATH": REPO}
        return subprocess.run(
            ["ip", "netns", "exec", ns, *argv],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )

    def start(self, ns: str, *argv: str) -> subprocess.Popen[str]:
        env = {**os.environ, "PYTHONPATH": REPO}
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.procs.append(proc)
        return proc

    def python(self, ns: str, code: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return self.run(ns, sys.executable, "-c", code, timeout=timeout)

    def start_python(self, ns: str, code: str) -> subprocess.Popen[str]:
        return self.start(ns, sys.executable, "-c", code)

    def start_collector(self, dest: str, sample: float, first: str) -> subprocess.Popen[str]:
        """``collect_dir`` (no logs) in the server namespace, sampling counters ``sample``
        seconds apart; returns once the artifact ``first`` of the first snapshot exists."""
        proc = self.start_python(
            self.server,
            "from datetime import timedelta; from auditor.bundle.collect import collect_dir; "
            f"collect_dir({dest!r}, timedelta(minutes=5), {sample!r}, logs=False)",
        )
        deadline = time.monotonic() + 20
        while not os.path.exists(os.path.join(dest, first)):
            assert time.monotonic() < deadline, "collector never took its first snapshot"
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        return proc

    def wait_listening(self, port: int, limit: float = 10.0) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            out = self.run(self.server, "ss", "-Hltn", f"sport = :{port}").stdout
            if out.strip():
                return
            time.sleep(0.1)
        raise AssertionError(f"nothing listens on port {port} in {self.server}")


@contextmanager
def lab() -> Iterator[Lab]:
    tag = secrets.token_hex(3)
    server, client = f"hl{tag}s", f"hl{tag}c"
    veth_s, veth_c = f"hl{tag}vs", f"hl{tag}vc"
    made: list[str] = []
    the_lab = Lab(server, client)
    try:
        for ns in (server, client):
            sh("ip", "netns", "add", ns)
            made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh(
            "ip",
            "link",
            "add",
            veth_s,
            "netns",
            server,
            "type",
            "veth",
            "peer",
            "name",
            veth_c,
            "netns",
            client,
        )
        sh("ip", "-n", server, "addr", "add", f"{SERVER_IP}/24", "dev", veth_s)
        sh("ip", "-n", client, "addr", "add", f"{CLIENT_IP}/24", "dev", veth_c)
        sh("ip", "-n", server, "link", "set", veth_s, "up")
        sh("ip", "-n", client, "link", "set", veth_c, "up")
        yield the_lab
    finally:
        for proc in the_lab.procs:
            if proc.poll() is None:
                proc.kill()
            with suppress(subprocess.TimeoutExpired):
                proc.communicate(timeout=10)
        for ns in made:
            # processes started with ip netns exec were killed above, by pid
            sh("ip", "netns", "del", ns, check=False)


CONNTRACK_MAX = "/proc/sys/net/netfilter/nf_conntrack_max"
# Tests that lower the host-wide nf_conntrack_max take this lock, so that two of them never
# overlap (one would otherwise "restore" the other's temporary value).
CONNTRACK_MAX_LOCK = "/tmp/auditor-conntrack-max.lock"
SANE_CONNTRACK_MAX = 16384  # below this the value is taken as another test's temporary one


@contextmanager
def conntrack_max(value: int) -> Iterator[str]:
    """Lower the global nf_conntrack_max to ``value`` for the block; the original is restored."""
    import fcntl

    with open(CONNTRACK_MAX_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        deadline = time.monotonic() + 20
        while True:  # a test not using the lock may hold it low for a moment: never keep that
            with open(CONNTRACK_MAX) as fh:
                original = fh.read().strip()
            if int(original) >= SANE_CONNTRACK_MAX:
                break
            if time.monotonic() > deadline:
                pytest.skip(f"nf_conntrack_max is {original}: held low by something else")
            time.sleep(0.5)
        try:
            with open(CONNTRACK_MAX, "w") as fh:
                fh.write(str(value))
            yield original
        finally:
            with open(CONNTRACK_MAX, "w") as fh:
                fh.write(original)
