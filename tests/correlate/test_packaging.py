"""A real ``pip install`` of the project into a temporary venv ships the cause catalog and schema."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IGNORE = shutil.ignore_patterns(
    ".git", "build", "*.egg-info", "__pycache__", ".*_cache", "tests", "samples", "docs"
)


@pytest.mark.slow
def test_installed_package_finds_rules(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=IGNORE)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    pip = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--no-deps", str(src)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if pip.returncode and "No matching distribution" in pip.stderr:
        pytest.skip(f"build requirements not installable here: {pip.stderr.strip()[-200:]}")
    assert pip.returncode == 0, pip.stderr
    code = (
        "import json, auditor, auditor.correlate.catalog as c, auditor.correlate.report as r;"
        "print(json.dumps([auditor.__file__, str(c.default_dir()), len(c.load_default()),"
        " r.json_schema()['properties']['schema']['const']]))"
    )
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    where, catalog_dir, count, schema = json.loads(out.stdout)
    assert where.startswith(str(venv)) and catalog_dir.startswith(str(venv))
    assert count == len(list((ROOT / "rules").glob("*.yaml")))
    assert schema == "auditor.report/1"
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "error.log").write_text(
        "2026/11/24 10:05:00 [error] 1234#1234: *7 connect() failed (111: Connection refused) "
        "while connecting to upstream, client: 198.51.100.4, server: example.org, request: "
        '"GET / HTTP/1.1", upstream: "http://192.0.2.20:8080/", host: "example.org"\n'
    )
    run = subprocess.run(
        [
            str(venv / "bin" / "auditor"),
            "diagnose",
            str(logs),
            "--format",
            "json",
            "--timezone",
            "UTC",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["findings"][0]["cause"] == "no-listener"
