"""The standalone collector and ``auditor collect`` on the same namespace give bundles that
``auditor diagnose`` reads alike, with the same files and the same manifest, both private.

Root and network namespaces (skipped otherwise): a server namespace with a listener, a
logged ``REJECT --reject-with tcp-reset`` and ten refused connections from the client.
"""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.bundle.collectors import (
    auditor_argv,
    diagnose,
    env,
    findings,
    manifest,
    members,
    python39,
    standalone_argv,
)
from tests.lab.netlab import SERVER_IP, Lab, lab_available

REASON = lab_available()
pytestmark = [pytest.mark.root, pytest.mark.skipif(REASON is not None, reason=f"{REASON}")]
LISTENER = "import socket, time; s = socket.socket(); s.bind(('0.0.0.0', 8080)); s.listen(8); time.sleep(120)"


def _in_ns(lab: Lab, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", lab.srv, *argv], capture_output=True, text=True,
                          env=env(), timeout=timeout, check=False)


def _normal(doc: dict[str, Any]) -> dict[str, Any]:
    """A manifest without what differs between two runs a second apart."""
    volatile = ("created", "snapshots", "collector")
    out = {k: v for k, v in doc.items() if k not in volatile}
    out["artifacts"] = sorted((a["path"], a["source"], a["note"].split(":")[0])
                              for a in doc["artifacts"])
    out["missing"] = sorted((m["what"], m["why"]) for m in doc["missing"])
    return out


def test_standalone_and_auditor_collect_make_the_same_bundle(tmp_path: Path) -> None:
    tag = secrets.token_hex(3)
    started = datetime.now(UTC) - timedelta(seconds=1)
    with Lab("h7") as lab:
        lab.spawn(lab.srv, ["python3", "-c", LISTENER])
        lab.wait_port(lab.srv, 8080)
        lab.sh(lab.srv, f"""
iptables -A INPUT -p tcp --dport 8443 -j LOG --log-prefix "h7-{tag}: "
iptables -A INPUT -p tcp --dport 8443 -j REJECT --reject-with tcp-reset""")
        lab.log_all_netns()
        got = lab.http_load(f"http://{SERVER_IP}:8443/", 10, concurrency=5)
        assert got["refused"] == 10, got
        time.sleep(0.5)
        until = datetime.now(UTC)
        one, two = tmp_path / "auditor.tar.gz", tmp_path / "standalone.tar.gz"
        out = _in_ns(lab, auditor_argv("collect", "-o", str(one), "--since", "10m", "--sample", "1"))
        assert out.returncode == 0, out.stderr
        out = _in_ns(lab, standalone_argv("-o", str(two), "--since", "10m", "--sample", "1"))
        assert out.returncode == 0, out.stderr
    window = ("--since", started.isoformat(), "--until", until.isoformat())
    first, second = diagnose(one, *window), diagnose(two, *window)
    assert findings(first) == findings(second)
    assert "firewall-reject" in [f["cause"] for f in first["findings"]]
    assert sorted(members(one)) == sorted(members(two))
    assert _normal(manifest(one)) == _normal(manifest(two))
    assert manifest(two)["collector"] == "auditor-collect.py"
    for archive in (one, two):
        assert stat.S_IMODE(archive.stat().st_mode) == 0o600
        modes = {m.name: stat.S_IMODE(m.mode) for m in members(archive).values()}
        assert set(modes.values()) <= {0o600, 0o700}, modes
    assert sorted(os.listdir(tmp_path)) == ["auditor.tar.gz", "standalone.tar.gz"]


def test_python39_is_found_or_the_reason_is_given() -> None:
    """Not a check of the collector: says which interpreter the lab test above used."""
    found = python39()
    if found is None:
        pytest.skip("no Python 3.9 here: the standalone collector ran under this Python; "
                    "test_standalone.py checks its 3.9 syntax and imports instead")
    out = subprocess.run([found, str(Path(standalone_argv()[1])), "--help"], capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == 0 and "--obfuscate" in out.stdout, out.stderr
