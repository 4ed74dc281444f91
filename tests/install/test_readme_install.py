"""The README's first command, as written, in a fresh clone, with the distribution's own
``/usr/bin/python3`` first on PATH (Debian 12: Python 3.11 under PEP 668, so a venv).

Skipped where there is no ``/usr/bin/python3`` other than the interpreter running the
tests, where it lacks ``venv``/``ensurepip`` (Debian: ``apt-get install python3-venv``,
which tests/ci.sh does), or where this is not a git checkout to clone. It installs from
the package registry, so it takes a minute.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"


def first_command() -> str:
    """The first line of the README's first ``sh`` block."""
    m = re.search(r"```sh\n(.+?)\n", (REPO / "README.md").read_text(encoding="utf-8"))
    assert m, "README.md has no sh block"
    return m.group(1)


def _why_not() -> str | None:
    if not os.path.exists(SYSTEM_PYTHON):
        return f"no {SYSTEM_PYTHON}"
    if os.path.realpath(SYSTEM_PYTHON) == os.path.realpath(sys.executable):
        return f"{SYSTEM_PYTHON} is the interpreter running the tests, not a separate one"
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import venv, ensurepip"], capture_output=True,
                           check=False, timeout=60)
    if probe.returncode != 0:
        return f"{SYSTEM_PYTHON} has no venv/ensurepip (apt-get install python3-venv)"
    if shutil.which("git") is None or not (REPO / ".git").exists():
        return "not a git checkout (nothing to clone)"
    return None


def test_first_command_is_a_venv_install() -> None:
    cmd = first_command()
    assert cmd.startswith("python3 -m venv .venv && .venv/bin/pip install . && ")
    assert "samples/incidents/" in cmd and "diagnose" in cmd


@pytest.mark.slow
def test_readme_first_command_in_a_fresh_clone(tmp_path: Path) -> None:
    why = _why_not()
    if why:
        pytest.skip(why)
    clone = tmp_path / "auditor"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=300)
    path = os.pathsep.join([os.path.dirname(SYSTEM_PYTHON), "/bin", os.environ.get("PATH", "")])
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYENV_VERSION", "PYTHONHOME")}
    env["PATH"] = path
    which = subprocess.run(["sh", "-c", "command -v python3"], capture_output=True, text=True,
                           env=env, check=True).stdout.strip()
    assert os.path.realpath(which) == os.path.realpath(SYSTEM_PYTHON)
    out = subprocess.run(["sh", "-c", first_command()], cwd=clone, env=env, capture_output=True,
                         text=True, timeout=1200, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "firewall-reject" in out.stdout, out.stdout[-3000:]
    venv_python = clone / ".venv" / "bin" / "python"
    version = subprocess.run([str(venv_python), "-c", "import sys; print(sys.base_prefix)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version == os.path.dirname(os.path.dirname(os.path.realpath(SYSTEM_PYTHON)))
