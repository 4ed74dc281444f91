"""The same answer live and from a bundle of the same moment.

A connlimit incident is reproduced in the lab; with the lab still up, ``auditor
diagnose`` runs live in the server namespace, then ``auditor collect`` (no counter
sample, like the live run) and ``auditor diagnose BUNDLE`` on the archive. Both go
through the one pipeline, so they must name the same causes with the same rules.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.lab.netlab import Lab, lab_available
from tests.lab.scenarios import registry, reproduce

REASON = lab_available()
REPO = str(Path(__file__).resolve().parents[2])
pytestmark = [pytest.mark.root, pytest.mark.skipif(REASON is not None, reason=str(REASON))]


def _in_ns(lab: Lab, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", lab.srv, sys.executable, "-m", "auditor", *argv],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": REPO})


def _verdicts(report: dict[str, Any]) -> set[tuple[Any, ...]]:
    out = set()
    for f in report["findings"]:
        rule = f.get("rule") or {}
        out.add((f["cause"], rule.get("table"), rule.get("chain"), rule.get("position")))
    return out


def test_live_and_bundle_of_the_same_moment_agree(tmp_path: Path) -> None:
    results: dict[str, dict[str, Any]] = {}
    bundle = tmp_path / "bundle.tar.gz"

    def hold(lab: Lab) -> None:
        live = _in_ns(lab, "diagnose", "--format", "json", "--since", "10m")
        assert live.returncode == 0, live.stderr
        results["live"] = json.loads(live.stdout)
        made = _in_ns(lab, "collect", "-o", str(bundle), "--since", "10m", "--sample", "0")
        assert made.returncode == 0, made.stderr

    reproduce(registry()["connlimit"], tmp_path / "capture", hold=hold)
    offline = subprocess.run([sys.executable, "-m", "auditor", "diagnose", str(bundle),
                              "--format", "json"], capture_output=True, text=True, timeout=300)
    assert offline.returncode == 0, offline.stderr
    from_bundle = json.loads(offline.stdout)
    live = results["live"]

    def conn_limit(report: dict[str, Any]) -> list[tuple[Any, ...]]:
        # The kernel log is the whole host's: other namespaces (other tests) add findings of
        # their own between the two reads, so the comparison is on this incident's cause.
        return sorted((f["confidence"], *v) for f in report["findings"]
                      for v in _verdicts({"findings": [f]}) if f["cause"] == "firewall-conn-limit")

    assert conn_limit(live), live["findings"]
    assert conn_limit(live) == conn_limit(from_bundle)
