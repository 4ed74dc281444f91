"""The issue's scenarios, traced live and from a collected bundle, in a namespace.

In each test ``diagnose --trace`` and ``collect --trace`` run at the same time in the
namespace (each in its own tracefs instance) while bounded clients hit the ports; the
live report and the report of ``diagnose BUNDLE`` run elsewhere must both name each
cause on its port, the process where the kernel gives it, the rule where one rejected.
No ``--port`` is given. The tracepoints see every namespace of the machine, so other
findings (other tests' traffic) may appear: only the ports of the scenario are checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.trace.lab import OVERFLOW_CLIENTS, SLOW_LISTENER, HostTracing, TraceLab

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def _findings(report: dict[str, Any], cause: str, port: int | None = None) -> list[Any]:
    return [
        f for f in report["findings"]
        if f["cause"] == cause and (port is None or port in f["ports"])
    ]


def _traced(lab: TraceLab, host: HostTracing, tmp: Path, seconds: int, start: Any
            ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Live report and bundle report of one window in which ``start()`` makes the traffic."""
    bundle = tmp / "bundle.tar.gz"
    live = lab.spawn(sys.executable, "-m", "auditor", "diagnose", "--trace", str(seconds),
                     "--since", "5m", "--format", "json", env=ENV)
    coll = lab.spawn(sys.executable, "-m", "auditor", "collect", "--trace", str(seconds),
                     "--since", "5m", "-o", str(bundle), env=ENV)
    host.wait_instance()
    import time

    end = time.monotonic() + 20
    while len(host.ours()) < 2 and time.monotonic() < end:
        time.sleep(0.05)
    start()
    out, err = live.communicate(timeout=180)
    assert live.returncode == 0, err
    _, err = coll.communicate(timeout=180)
    assert coll.returncode == 0, err
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    again = subprocess.run(
        [sys.executable, "-m", "auditor", "diagnose", str(bundle), "--format", "json"],
        cwd=elsewhere, capture_output=True, text=True, timeout=180, env=ENV, check=False,
    )
    assert again.returncode == 0, again.stderr
    assert host.ours() == []
    return json.loads(out), json.loads(again.stdout)


def test_done_when_no_listener_app_abort_firewall_reject(
    lab: TraceLab, host_tracing: HostTracing, tmp_path: Path
) -> None:
    app = lab.abort_server(9200, seconds=60)
    lab.nft_reject(9300)
    clients: list[Any] = []

    def start() -> None:
        clients.append(lab.clients([9100, 9200, 9300], rounds=40, pause=0.1, seconds=6))

    live, bundled = _traced(lab, host_tracing, tmp_path, 10, start)
    seen = clients[0].communicate(timeout=30)[0]
    assert "9200:reset" in seen and "9100:refused" in seen and "9300:refused" in seen, seen
    for report in (live, bundled):
        assert _findings(report, "no-listener", 9100), report["findings"]
        aborts = _findings(report, "app-abort", 9200)
        assert aborts, report["findings"]
        named = [p for f in aborts for p in f["details"].get("processes", [])]
        assert any(p["pid"] == app and p["name"].startswith("python") for p in named), named
        assert any(f["confidence"] == "high" for f in aborts)
        rejects = _findings(report, "firewall-reject", 9300)
        assert rejects and "dport 9300" in rejects[0]["rule"]["text"], report["findings"]
        assert not _findings(report, "app-abort", 9100)
        assert not _findings(report, "no-listener", 9200)


def test_linger_iptables_reject_and_listen_overflow(
    lab: TraceLab, host_tracing: HostTracing, tmp_path: Path
) -> None:
    app = lab.abort_server(9201, seconds=60, linger=True)
    lab.iptables_reject(9301)
    lab.sh("sysctl", "-qw", "net.ipv4.tcp_abort_on_overflow=1")  # this namespace's only
    lab.python(SLOW_LISTENER, "9400", "60")
    lab.wait_port(9400)
    clients: list[Any] = []

    def start() -> None:
        clients.append(lab.clients([9201, 9301], rounds=30, pause=0.1, seconds=5))
        clients.append(lab.python(OVERFLOW_CLIENTS, "9400", "20", "0.5"))

    live, bundled = _traced(lab, host_tracing, tmp_path, 8, start)
    seen = clients[0].communicate(timeout=30)[0]
    assert "9201:reset" in seen and "9301:refused" in seen, seen
    assert int(clients[1].communicate(timeout=30)[0]) > 0  # the overflow reset someone
    for report in (live, bundled):
        aborts = _findings(report, "app-abort", 9201)
        assert aborts, report["findings"]
        named = [p for f in aborts for p in f["details"].get("processes", [])]
        assert any(p["pid"] == app and p["reason"] == "TCP_STATE" for p in named), named
        rejects = _findings(report, "firewall-reject", 9301)
        assert rejects and "9301" in rejects[0]["rule"]["text"], report["findings"]
        overflow = _findings(report, "listen-queue-overflow")
        assert overflow, report["findings"]
        assert any(9400 in f["ports"] for f in overflow), overflow
