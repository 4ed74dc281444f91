"""A live diagnosis without privileges says what it could not read, and --fail-on fails.

Run as root with every capability dropped (the bounding set emptied), so the kernel
refuses the ring buffer and the rule sets as it would to an ordinary user.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv (util-linux) to drop capabilities",
)


def _diagnose(*args: str) -> subprocess.CompletedProcess[str]:
    argv = ["setpriv", "--bounding-set=-all", "--inh-caps=-all",
            sys.executable, "-m", "auditor", "diagnose", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "PYTHONPATH": REPO})


def test_unprivileged_live_run_names_its_gaps() -> None:
    out = _diagnose("--format", "json", "--since", "5m")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["input"] == "live host"
    gaps = " ".join(report["gaps"])
    # the firewall could not be read (nft and iptables refuse without CAP_NET_ADMIN)
    assert "nft" in gaps or "iptables" in gaps, report["gaps"]
    assert "could not read: " in out.stderr
    failed = _diagnose("--format", "json", "--since", "5m", "--fail-on", "low")
    assert failed.returncode in (1, 3), failed.stderr
    if not json.loads(failed.stdout)["findings"]:
        assert failed.returncode == 3


def test_privileged_run_has_no_firewall_gap() -> None:
    out = subprocess.run([sys.executable, "-m", "auditor", "diagnose", "--format", "json",
                          "--since", "5m"], capture_output=True, text=True, timeout=180,
                         env={**os.environ, "PYTHONPATH": REPO})
    assert out.returncode == 0, out.stderr
    gaps = json.loads(out.stdout)["gaps"]
    assert not [g for g in gaps if g.startswith(("nft ", "iptables-nft-save"))], gaps
