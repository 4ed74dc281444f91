"""Evidence is cited where a reader can open it: inside the bundle, or under the path given."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "incidents" / "reject-logged"


def _diagnose(path: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-m", "auditor", "diagnose", path, "--format", "json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    doc: dict[str, object] = json.loads(out.stdout)
    return doc


def _paths(report: dict[str, object]) -> list[str]:
    findings = report["findings"]
    assert isinstance(findings, list) and findings
    out = [e["source"] for f in findings for e in f["evidence"]]
    out += [f["rule"]["location"] for f in findings if f.get("rule")]
    sources = report["sources"]
    assert isinstance(sources, list)
    out += [s["path"] for s in sources]
    return out


def test_archive_evidence_names_paths_inside_the_bundle(tmp_path: Path) -> None:
    shutil.copytree(SAMPLE, tmp_path / "bundle" / "web-01")
    archive = tmp_path / "incident.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "bundle" / "web-01", arcname="web-01")
    report = _diagnose(str(archive))
    assert report["input"] == str(archive)
    paths = _paths(report)
    assert "iptables-save.txt:10" in paths
    assert "kern.log" in paths
    assert not [p for p in paths if "auditor-input" in p or p.startswith("/")], paths
    remedy = json.dumps(report["findings"])
    assert "auditor-input" not in remedy


def test_directory_evidence_names_paths_under_the_given_path() -> None:
    report = _diagnose(str(SAMPLE))
    paths = _paths(report)
    assert f"{SAMPLE}/iptables-save.txt:10" in paths
    assert all(p.startswith(str(SAMPLE)) for p in paths), paths
