"""Running the two collectors (``auditor collect`` and the standalone file) for the tests,
and reading what they wrote."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "standalone" / "auditor-collect.py"


def _runs(argv: list[str]) -> bool:
    try:
        out = subprocess.run([*argv, "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return False
    return out.returncode == 0 and out.stdout.strip() == "(3, 9)"


def python39() -> str | None:
    """A Python 3.9 interpreter: $AUDITOR_PYTHON39, ``python3.9`` on PATH, or pyenv's."""
    candidates = [os.environ.get("AUDITOR_PYTHON39", ""), shutil.which("python3.9") or ""]
    if shutil.which("pyenv"):
        out = subprocess.run(["pyenv", "prefix", "3.9"], capture_output=True, text=True,
                             timeout=30, check=False)
        prefix = out.stdout.strip()
        if out.returncode == 0 and prefix:
            candidates.append(os.path.join(prefix, "bin", "python3.9"))
    for cand in candidates:
        if cand and _runs([cand]):
            return cand
    return None


def auditor_argv(*args: str) -> list[str]:
    """``python -m auditor`` with this checkout first on the path (env from :func:`env`)."""
    return [sys.executable, "-m", "auditor", *args]


def standalone_argv(*args: str) -> list[str]:
    """The shipped standalone collector, under Python 3.9 when there is one."""
    return [python39() or sys.executable, str(SHIPPED), *args]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def members(archive: Path) -> dict[str, tarfile.TarInfo]:
    """Members by path below the bundle's top folder."""
    with tarfile.open(archive) as tar:
        return {m.name.partition("/")[2]: m for m in tar.getmembers()}


def read_member(archive: Path, rel: str) -> str:
    with tarfile.open(archive) as tar:
        for m in tar.getmembers():
            if m.name.partition("/")[2] == rel:
                handle = tar.extractfile(m)
                assert handle is not None
                return handle.read().decode("utf-8", "replace")
    raise KeyError(rel)


def manifest(archive: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(read_member(archive, "manifest.json"))
    return doc


def diagnose(path: Path, *args: str) -> dict[str, Any]:
    out = subprocess.run(auditor_argv("diagnose", str(path), "--format", "json", *args),
                         capture_output=True, text=True, env=env(), timeout=300, check=False)
    assert out.returncode in (0, 1), out.stderr
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def findings(report: dict[str, Any]) -> list[str]:
    """What a diagnosis says, without where its copy of the bundle was unpacked."""
    unpacked = re.compile(r'[^"]*auditor-bundle-\d{8}T\d{6}Z/')
    keep = ("cause", "confidence", "score", "resets", "ports", "rule", "limit", "evidence",
            "intentional")
    out = []
    for f in report["findings"]:
        kept = {k: f[k] for k in keep}
        # the kernel ring buffer of a busy host drops its oldest lines between two collects,
        # so a line keeps its text but not its number in dmesg.log
        kept["evidence"] = [{k: v for k, v in e.items() if not (k == "line" and "dmesg" in
                                                                 str(e.get("source")))}
                            for e in f["evidence"]]
        out.append(unpacked.sub("", json.dumps(kept, sort_keys=True)))
    return out
