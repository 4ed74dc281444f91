"""The import contracts of ``.importlinter`` hold, and the linter does catch a breach.

The contracts state the one-way flow of data (cli -> commands -> sinks -> config ->
correlate -> inputs -> models) and forbid import cycles between the modules of any
part and between the parts. ``lint-imports`` is run as the test command runs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` over the ``auditor`` package found in ``tree``."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    code = "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"
    return subprocess.run([sys.executable, "-c", code, "--config", str(ROOT / ".importlinter"),
                           "--no-cache"], cwd=tree, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def test_contracts_kept() -> None:
    proc = _lint(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def _copy(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "auditor", tree / "auditor",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tree


def test_an_import_against_the_flow_breaks_the_contract(tmp_path: Path) -> None:
    tree = _copy(tmp_path)
    models = tree / "auditor" / "models.py"
    models.write_text(models.read_text() + "\nimport auditor.correlate.report  # noqa\n")
    proc = _lint(tree)
    assert proc.returncode != 0
    assert "auditor.models is not allowed to import auditor.correlate" in proc.stdout


def test_a_cycle_inside_a_part_breaks_the_contract(tmp_path: Path) -> None:
    tree = _copy(tmp_path)
    # nat imports model; model importing nat back is the cycle issue 9 found
    model = tree / "auditor" / "firewall" / "model.py"
    model.write_text(model.read_text() + "\nimport auditor.firewall.nat  # noqa\n")
    proc = _lint(tree)
    assert proc.returncode != 0
    assert "No cycles are allowed in auditor.firewall" in proc.stdout
