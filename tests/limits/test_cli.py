"""``auditor limits`` and ``auditor collect`` from the command line: output, golden JSON of the
sosreport sample, one-line errors, and a collect without the optional tools."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from tests.limits.netns import lab, needs_netns

ROOT = Path(__file__).resolve().parents[2]
SOS = ROOT / "samples" / "sosreport" / "sosreport-lab-host-2026-11-24-abcdef"
GOLDEN = ROOT / "samples" / "sosreport" / "limits.expected.json"
GENERATE = bool(os.environ.get("AUDITOR_GENERATE"))


def auditor(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "auditor", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def test_limits_table_from_sosreport() -> None:
    out = auditor("limits", "--from", str(SOS))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for cause in (
        "conntrack-table-full",
        "tcp-abort-on-overflow",
        "listen-queue-overflow",
        "fd-exhaustion",  # worker_connections x workers above worker_rlimit_nofile
        "upstream-keepalive-race",
    ):
        assert cause in text
    assert "full accept queue" in text and "192.0.2.1:8080" in text
    assert "totals since boot" in text
    # locations are shown relative to the input
    assert "sos_commands/kernel/sysctl_-a:" in text


def test_limits_json_golden() -> None:
    out = auditor("limits", "--from", str(SOS.relative_to(ROOT)), "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    text = json.dumps(doc, indent=1, sort_keys=True) + "\n"
    if GENERATE or not GOLDEN.exists():
        GOLDEN.write_text(text)
    assert json.loads(GOLDEN.read_text()) == doc


def test_errors_are_one_line() -> None:
    out = auditor("limits", "--from", "/nonexistent/bundle")
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "no such file" in out.stderr
    out = auditor("limits", "--from", str(SOS), "--sample", "3")
    assert out.returncode == 2 and "--sample" in out.stderr
    out = auditor("collect", "-o", "/nonexistent/dir/x.tar.gz", "--sample", "0")
    assert out.returncode == 2 and "does not exist" in out.stderr
    out = auditor("collect", "--since", "yesterday-ish")
    assert out.returncode == 2 and "--since" in out.stderr


@needs_netns
def test_collect_without_optional_tools(tmp_path: Path) -> None:
    """No nginx, nft, ipset, ss or iptables on PATH: the bundle is still made, and says why."""
    archive = tmp_path / "b.tar.gz"
    with lab() as net:
        code = (
            "import os, sys; os.environ['PATH'] = '/nonexistent'; sys.argv = ['auditor', "
            f"'collect', '-o', {str(archive)!r}, '--since', '1m', '--sample', '0']; "
            "from auditor.cli import main; main()"
        )
        out = net.python(net.server, code)
    assert out.returncode == 0, out.stderr
    with tarfile.open(archive) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("manifest.json"))
        handle = tar.extractfile(member)
        assert handle is not None
        manifest = json.load(handle)
    why = {m["what"].split()[0]: m["why"] for m in manifest["missing"]}
    for tool in ("ss", "nft", "ipset", "iptables-nft-save"):
        assert why[tool] == f"{tool} not installed"
    # nginx is still found at its usual path (/usr/sbin/nginx) when installed there
    nginx_done = any(a["path"] == "nginx/nginx-T.txt" for a in manifest["artifacts"])
    assert nginx_done or any("nginx" in m["what"] for m in manifest["missing"])
    paths = [a["path"] for a in manifest["artifacts"]]
    assert "sysctl/sysctl-a.txt" in paths and "counters/after/netstat" in paths
    assert manifest["sample_seconds"] == 0 and "before" not in manifest["snapshots"]
