"""Folders and sosreports are closed worlds: only their own regular files are read, links
stay inside, FIFOs never hang, nginx includes resolve inside the input, and a folder of
many files is capped with a note."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from auditor.bundle.inputs import open_input
from auditor.limits.snapshot import load_state
from tests.hostile.builders import KERNEL_LINE

ROOT = Path(__file__).resolve().parents[2]
SOS = ROOT / "samples" / "sosreport" / "sosreport-lab-host-2026-11-24-abcdef"


def auditor(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m auditor`` (bounded: a hang fails the test instead of the suite)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "auditor", *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
        check=False,
        cwd=cwd,
    )


@pytest.fixture
def marker(tmp_path: Path) -> tuple[Path, str]:
    """A file of the analysing host, outside every input, holding a unique marker."""
    word = f"marker{uuid.uuid4().hex}"
    host = tmp_path / "host"
    host.mkdir()
    secret = host / "secret.log"
    secret.write_text(KERNEL_LINE.replace(" lab ", f" {word} ") * 3)
    return secret, word


def folder(tmp_path: Path) -> Path:
    logs = tmp_path / "input" / "logs"
    logs.mkdir(parents=True)
    (logs / "kern.log").write_text(KERNEL_LINE)
    return logs.parent


def test_fifo_symlink_out_and_loop_are_skipped_and_the_rest_read(
    tmp_path: Path, marker: tuple[Path, str]
) -> None:
    secret, word = marker
    root = folder(tmp_path)
    os.mkfifo(root / "logs" / "pipe.log")
    (root / "logs" / "out.log").symlink_to(secret)
    (root / "logs" / "loop-a.log").symlink_to("loop-b.log")
    (root / "logs" / "loop-b.log").symlink_to("loop-a.log")
    (root / "logs" / "inside.log").symlink_to("kern.log")  # stays inside: read
    (root / "hostdir").symlink_to(secret.parent)  # a link to a folder: not walked
    inputs = open_input(str(root))
    assert sorted(Path(a.path).name for a in inputs.artifacts) == ["inside.log", "kern.log"]
    why = {Path(p.location.path).name: p.reason for p in inputs.problems}
    assert "FIFO" in why["pipe.log"] and "outside" in why["out.log"]
    assert "loop" in why["loop-a.log"] and "loop" in why["loop-b.log"]
    assert "not followed" in why["hostdir"]
    for args in (
        ("parse", str(root), "--format", "json"),
        ("diagnose", str(root), "--format", "json"),
    ):
        run = auditor(*args)
        assert run.returncode == 0, run.stderr
        assert word not in run.stdout + run.stderr
    parsed = auditor("parse", str(root), "--format", "json")
    import json

    doc = json.loads(parsed.stdout)
    skipped = {
        Path(f["path"]).name: f["issues"][0]["reason"]
        for f in doc["summary"]["files"]
        if f["parser"] == "(skipped)"
    }
    assert set(skipped) == {"pipe.log", "out.log", "loop-a.log", "loop-b.log", "hostdir"}
    assert len(doc["events"]) == 2  # kern.log and the link to it inside the folder


def test_nginx_include_of_a_host_path_is_not_read(tmp_path: Path) -> None:
    word = f"{uuid.uuid4().int % 90000 + 10000}"
    host = tmp_path / "host"
    host.mkdir()
    (host / "limits.conf").write_text(f"worker_rlimit_nofile {word};\n")
    root = tmp_path / "input"
    (root / "nginx").mkdir(parents=True)
    os.mkfifo(root / "nginx" / "pipe.conf")
    (root / "nginx" / "nginx.conf").write_text(
        f"include {host}/limits.conf;\n"
        "include /etc/shadow;\n"
        "include ../../../../../../../etc/passwd;\n"
        "include pipe.conf;\n"
        "events { worker_connections 1024; }\n"
        "http { server { listen 198.51.100.1:80; } }\n"
    )
    state = load_state(open_input(str(root)))
    assert state.nginx is not None and state.nginx.worker_connections.value == 1024
    assert state.nginx.worker_rlimit_nofile is None  # the host's value never arrives
    assert all(str(root) in f or f.startswith(str(root)) for f in state.nginx.files)
    problems = " ".join(state.nginx.problems)
    assert "limits.conf" in problems and "shadow" in problems and "pipe.conf" in problems
    assert word not in repr(state.limits)


def test_sosreport_includes_resolve_inside_it(tmp_path: Path) -> None:
    """A sosreport without ``nginx -T``: ``include /etc/nginx/sites-enabled/*`` is the
    sosreport's own folder, and its absolute links (Debian's ``sites-enabled``) too."""
    sos = tmp_path / "sosreport-x"
    shutil.copytree(SOS, sos)
    nginx = sos / "etc" / "nginx"
    (nginx / "sites-available").mkdir()
    (nginx / "sites-enabled").mkdir()
    (nginx / "sites-available" / "default").write_text(
        "server { listen 203.0.113.9:8443 backlog=77; }\n"
    )
    (nginx / "sites-enabled" / "default").symlink_to("/etc/nginx/sites-available/default")
    conf = nginx / "nginx.conf"
    text = conf.read_text()
    conf.write_text(text.replace("http {", "http {\n    include /etc/nginx/sites-enabled/*;", 1))
    state = load_state(open_input(str(sos)))
    assert state.nginx is not None
    ports = {(x.address, x.port, x.backlog) for x in state.nginx.listens}
    assert ("203.0.113.9", 8443, 77) in ports
    assert all(f.startswith(str(sos)) for f in state.nginx.files)


def test_many_files_are_capped_with_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "many"
    root.mkdir()
    for n in range(120):
        (root / f"k{n:04d}.log").write_text(KERNEL_LINE)
    monkeypatch.setenv("AUDITOR_MAX_FILES", "50")
    inputs = open_input(str(root))
    assert len(inputs.artifacts) == 50
    (note,) = [p for p in inputs.problems if "AUDITOR_MAX_FILES" in p.reason]
    assert "more than 50 files" in note.reason and note.location.path == str(root)
