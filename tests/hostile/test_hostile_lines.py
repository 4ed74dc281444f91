"""Hostile log files: one line of 2 GB parsed in bounded memory on both scan paths, and
files deleted or growing under the scan reported without breaking it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from auditor.models import Event, Location
from auditor.parsers.base import LineParser, ParseContext
from auditor.sources import scan as scan_module
from auditor.sources.scan import ScanStats, scan
from tests.hostile.builders import KERNEL_LINE

ROOT = Path(__file__).resolve().parents[2]
HAVE_RG = shutil.which("rg") is not None
PATHS = [
    "python",
    pytest.param("ripgrep", marks=pytest.mark.skipif(not HAVE_RG, reason="ripgrep not installed")),
]

BOTH_PATHS = pytest.mark.parametrize(
    "use_rg",
    [
        False,
        pytest.param(True, marks=pytest.mark.skipif(not HAVE_RG, reason="ripgrep not installed")),
    ],
)

MEASURE = """
import resource, subprocess, sys
run = subprocess.run(sys.argv[1:], capture_output=True)
sys.stdout.buffer.write(run.stdout)
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print("\\nPEAK", kids, run.returncode)
"""


@pytest.mark.parametrize("path_kind", PATHS)
def test_a_2gb_line_is_parsed_in_bounded_memory(tmp_path: Path, path_kind: str) -> None:
    """Peak RSS of auditor and every helper (ripgrep, wc): the largest of them, which
    with the Python path's ~45 MB is under the issue's 200 MB for all together."""
    log = tmp_path / "kern.log"
    with log.open("wb") as fh:  # the long line is a hole: 2 GB read, no disk used
        fh.write(KERNEL_LINE.encode())
        fh.seek(fh.tell() + (2 << 30))
        fh.write(b" SRC=192.0.2.77\n" + KERNEL_LINE.encode())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if path_kind == "python":
        env["AUDITOR_NO_RG"] = "1"
    cmd = [
        sys.executable,
        "-c",
        MEASURE,
        sys.executable,
        "-m",
        "auditor",
        "parse",
        str(log),
        "--format",
        "json",
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, timeout=600, check=True).stdout
    body, _, tail = out.rpartition(b"\nPEAK ")
    peak_kb, code = (int(x) for x in tail.split())
    assert code == 0
    doc = json.loads(body)
    assert len(doc["events"]) == 2
    (summary,) = doc["summary"]["files"]
    assert summary["lines"] == 3 and summary["bytes"] == log.stat().st_size
    long = [i for i in summary["issues"] if "longer than 2 MiB" in i["reason"]]
    assert [i["line"] for i in long] == [2]
    assert peak_kb < 150 * 1024, peak_kb


class Meddler(LineParser):
    """Deletes or grows its own file on the first line it sees (a log rotated or
    written during the scan)."""

    name = "meddler"
    needles = (b"HIT",)
    action = "delete"

    @classmethod
    def sniff(cls, head: object) -> float:
        return 0.0

    def parse(self, line: str, location: Location) -> Event | None:
        if location.line == 1:
            if self.action == "delete":
                os.unlink(self.path)
            else:
                with open(self.path, "ab") as fh:
                    fh.write(b"HIT added\n" * 1000)
        return Event(timestamp=datetime(2026, 1, 1, tzinfo=UTC), location=location, message=line)


def scan_with(path: Path, action: str, use_rg: bool) -> tuple[list[Event], ScanStats]:
    os.environ.pop("AUDITOR_NO_RG", None)
    if not use_rg:
        os.environ["AUDITOR_NO_RG"] = "1"
    old, scan_module.RG_MIN_BYTES = scan_module.RG_MIN_BYTES, 0
    try:
        parser = Meddler(ParseContext(), str(path))
        parser.action = action
        stats = ScanStats(str(path), "meddler")
        return list(scan(str(path), parser, stats)), stats
    finally:
        scan_module.RG_MIN_BYTES = old
        os.environ.pop("AUDITOR_NO_RG", None)


def lines_of(n: int) -> bytes:
    return b"".join(b"HIT %06d\n" % k for k in range(n))


@BOTH_PATHS
def test_a_file_deleted_during_the_scan_is_read_whole_and_noted(
    tmp_path: Path, use_rg: bool
) -> None:
    path = tmp_path / "gone.log"
    data = lines_of(300_000)  # past the tail wc counts (4 MiB): the helper is used too
    path.write_bytes(data)
    events, stats = scan_with(path, "delete", use_rg)
    assert not path.exists()
    assert len(events) == 300_000 and stats.lines == 300_000 and stats.bytes == len(data)
    (note,) = stats.issues
    assert "deleted" in note.reason and stats.not_understood == 0


@BOTH_PATHS
def test_a_file_growing_during_the_scan_is_counted_consistently(
    tmp_path: Path, use_rg: bool
) -> None:
    path = tmp_path / "grows.log"
    path.write_bytes(lines_of(1000))
    events, stats = scan_with(path, "grow", use_rg)
    data = path.read_bytes()
    # Whatever was read is described consistently: its bytes hold exactly its lines.
    assert data[: stats.bytes].count(b"\n") == stats.lines
    assert len(events) <= stats.lines and stats.bytes in (1000 * 11, len(data))
    (note,) = stats.issues
    assert "changed size" in note.reason and str(stats.bytes) in note.reason
