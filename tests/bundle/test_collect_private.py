"""A collect is private and leaves nothing behind when it is killed (SIGINT, SIGTERM) half
way, for ``auditor collect`` and the standalone collector alike; its output is written
through a new file, never through what already stands at the path."""

from __future__ import annotations

import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.bundle.collectors import auditor_argv, env, members, standalone_argv


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("which", ["auditor", "standalone"])
def test_killed_collect_leaves_nothing(tmp_path: Path, sig: signal.Signals, which: str) -> None:
    """Killed during its counter sample: no archive, no part file, no staging folder."""
    out_dir, staging = tmp_path / "out", tmp_path / "staging"
    out_dir.mkdir()
    staging.mkdir()
    args = ("-o", str(out_dir / "b.tar.gz"), "--since", "1m", "--sample", "60")
    argv = auditor_argv("collect", *args) if which == "auditor" else standalone_argv(*args)
    proc = subprocess.Popen(argv, env={**env(), "TMPDIR": str(staging)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not list(staging.glob("auditor-collect-*/*/counters/before/*")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the collect never took its first snapshot"
            time.sleep(0.05)
        built = next(staging.glob("auditor-collect-*"))
        assert stat.S_IMODE(built.stat().st_mode) == 0o700
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0
    assert "interrupted" in err.lower()
    assert list(out_dir.iterdir()) == []
    assert list(staging.iterdir()) == []




@pytest.mark.parametrize("which", ["auditor", "standalone"])
def test_output_is_private_and_never_written_through_a_link(tmp_path: Path, which: str) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("must stay\n")
    out = tmp_path / "b.tar.gz"
    out.symlink_to(victim)
    (tmp_path / "b.tar.gz.part").symlink_to(victim)  # what collect used to open, following links
    args = ("-o", str(out), "--since", "1m", "--sample", "0", "--obfuscate")
    argv = auditor_argv("collect", *args) if which == "auditor" else standalone_argv(*args)
    done = subprocess.run(argv, env=env(), capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert victim.read_text() == "must stay\n"
    assert not out.is_symlink() and stat.S_IMODE(out.stat().st_mode) == 0o600
    mapping = tmp_path / "b.tar.gz.mapping.json"
    assert stat.S_IMODE(mapping.stat().st_mode) == 0o600
    inside = members(out)
    assert not any("mapping" in name for name in inside)
    assert {stat.S_IMODE(m.mode) for m in inside.values()} <= {0o600, 0o700}
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "b.tar.gz", "b.tar.gz.mapping.json", "b.tar.gz.part", "victim.txt"]
