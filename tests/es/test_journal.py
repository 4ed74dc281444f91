"""journald by cursor: a real journal file (systemd-journal-remote), read incrementally."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from auditor.config import load_config
from auditor.sources.checkpoint import load_checkpoint
from tests.es.conftest import Backend
from tests.es.test_audit_es import assert_exactly, audit

REMOTE = next((p for p in ("/lib/systemd/systemd-journal-remote",
                           "/usr/lib/systemd/systemd-journal-remote") if Path(p).exists()), None)

pytestmark = [
    pytest.mark.es,
    pytest.mark.skipif(REMOTE is None or shutil.which("journalctl") is None,
                       reason="needs journalctl and systemd-journal-remote (apt: systemd-journal-remote)"),
]


def add_entries(journal_dir: Path, ports: range, seq: list[int]) -> None:
    """Append kernel REJECT entries to a journal file, through the export format."""
    now = int(time.time() * 1e6)
    export = []
    for port in ports:
        seq[0] += 1
        export.append(
            f"__CURSOR=s=x;i={seq[0]}\n__REALTIME_TIMESTAMP={now + seq[0]}\n"
            f"__MONOTONIC_TIMESTAMP={seq[0]}\n_BOOT_ID=0123456789abcdef0123456789abcdef\n"
            "_TRANSPORT=kernel\nSYSLOG_IDENTIFIER=kernel\n_HOSTNAME=web1\nPRIORITY=4\n"
            "MESSAGE=REJECT-IN: IN=eth0 OUT= MAC=00:11:22:33:44:55:66:77:88:99:aa:bb:08:00 "
            "SRC=192.0.2.10 DST=198.51.100.5 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=TCP "
            f"SPT={port} DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0\n"
        )
    src = journal_dir.parent / "export.txt"
    src.write_text("\n".join(export) + "\n")
    assert REMOTE is not None
    subprocess.run([REMOTE, "-o", str(journal_dir / "remote.journal"), str(src)],
                   check=True, capture_output=True, timeout=60)


def test_journald_by_cursor(backend: Backend, tmp_path: Path) -> None:
    jdir = tmp_path / "journal"
    jdir.mkdir()
    seq = [0]
    add_entries(jdir, range(7000, 7025), seq)
    cfg = backend.config([])
    with open(cfg, "a") as fh:
        fh.write(f'[journald]\nenabled = true\ndirectory = "{jdir}"\n')
    assert load_config(str(cfg), env={}).journald
    rep = audit(cfg)
    assert rep.ok, rep.problems
    assert rep.events == 25
    state = load_checkpoint(tmp_path / "state.json")
    last = subprocess.run(["journalctl", "--directory", str(jdir), "-o", "json", "-n", "1", "-q"],
                          capture_output=True, text=True, check=True).stdout
    assert state is not None and state.journald_cursor == json.loads(last)["__CURSOR"]
    rep = audit(cfg)
    assert rep.events == 0  # nothing new after the cursor
    add_entries(jdir, range(7025, 7030), seq)
    rep = audit(cfg)
    assert rep.events == 5
    assert_exactly(backend, list(range(7000, 7030)))
