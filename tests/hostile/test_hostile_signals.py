"""A ``diagnose`` killed mid-extraction (SIGTERM from ``timeout`` or systemd, SIGINT,
SIGHUP) leaves nothing in its TMPDIR."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.hostile.builders import zero_bomb

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def big_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1 GiB of zeros packed in about 1 MB: extraction takes long enough to be caught."""
    path = tmp_path_factory.mktemp("signals") / "big.tar.gz"
    zero_bomb(path, 1 << 30)
    return path


def extracting(tmpdir: Path) -> bool:
    for entry in tmpdir.glob("auditor-input-*/**/*"):
        if entry.is_file() and entry.stat().st_size > 0:
            return True
    return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_killed_mid_extraction_leaves_nothing(
    tmp_path: Path, big_archive: Path, sig: signal.Signals
) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TMPDIR": str(tmpdir),
        "AUDITOR_MAX_RATIO": "100000000",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "auditor", "diagnose", str(big_archive)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(2400):  # at most 2 minutes of polling, every 50 ms
            if extracting(tmpdir) or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "diagnose ended before it could be interrupted"
        assert extracting(tmpdir), "extraction never started"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert list(tmpdir.iterdir()) == []
    if sig == signal.SIGINT:
        assert proc.returncode != 0 and b"Traceback" not in err
    else:
        assert proc.returncode == -sig  # the default action ran: the sender sees its signal
