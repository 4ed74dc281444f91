"""Run auditor as a user does (``python -m auditor``, a pipe, 80 columns), bounded in time."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Run:
    code: int
    out: bytes
    err: bytes

    @property
    def stdout(self) -> str:
        return self.out.decode("utf-8")  # raises on invalid UTF-8: an output must be valid

    @property
    def stderr(self) -> str:
        return self.err.decode("utf-8")


def auditor(*args: str | os.PathLike[str], columns: int = 80, timeout: float = 120,
            env: dict[str, str] | None = None) -> Run:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": str(columns), "TERM": "dumb",
           **(env or {})}
    env.pop("FORCE_COLOR", None)
    proc = subprocess.run([sys.executable, "-m", "auditor", *map(os.fsencode, args)],
                          capture_output=True, env=env, timeout=timeout, check=False)
    return Run(proc.returncode, proc.stdout, proc.stderr)
