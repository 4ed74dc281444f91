"""The scanner: ripgrep and pure-Python paths agree exactly; line numbers, offsets and counts are right."""

from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.models import Event, Location
from auditor.parsers.base import LineError, LineParser, ParseContext
from auditor.sources import scan as scan_module
from auditor.sources.scan import ScanStats, scan


class Needle(LineParser):
    """A test parser: lines with 'HIT' are events, with 'BAD' are not understood."""

    name = "needle-test"
    needles = (b"HIT", b"BAD")

    @classmethod
    def sniff(cls, head: object) -> float:
        return 0.0

    def parse(self, line: str, location: Location) -> Event | None:
        if "BAD" in line:
            raise LineError("bad line")
        return Event(timestamp=datetime(2026, 1, 1, tzinfo=UTC), location=location, message=line)


def run(path: Path, use_rg: bool, every_line: bool = False) -> tuple[list[tuple[int, int | None, str]], ScanStats]:
    old = os.environ.pop("AUDITOR_NO_RG", None)
    if not use_rg:
        os.environ["AUDITOR_NO_RG"] = "1"
    old_min, scan_module.RG_MIN_BYTES = scan_module.RG_MIN_BYTES, 0  # small files to rg too
    try:
        stats = ScanStats(str(path), "needle-test")
        events = [
            (e.location.line, e.location.offset, e.message or "")
            for e in scan(str(path), Needle(ParseContext(), str(path)), stats, every_line=every_line)
        ]
    finally:
        scan_module.RG_MIN_BYTES = old_min
        os.environ.pop("AUDITOR_NO_RG", None)
        if old is not None:
            os.environ["AUDITOR_NO_RG"] = old
    return events, stats


def expected(data: bytes) -> Iterator[tuple[int, int, str]]:
    offset = 0
    for n, line in enumerate(data.split(b"\n"), 1):
        raw = line[:-1] if line.endswith(b"\r") else line
        if b"HIT" in raw and b"BAD" not in raw and raw.strip():
            yield n, offset, raw.decode("utf-8", "replace")
        offset += len(line) + 1


CASE = (
    b"noise\nHIT one\r\n\n\xff\xfe HIT invalid utf8\nnul \x00 HIT\nBAD line\n"
    + b"x" * 300000
    + b" HIT long\nlast HIT without newline"
)


@pytest.mark.parametrize("use_rg", [False, pytest.param(True, marks=pytest.mark.skipif(
    shutil.which("rg") is None, reason="ripgrep not installed"))])
def test_lines_offsets_and_counts(tmp_path: Path, use_rg: bool) -> None:
    path = tmp_path / "case.log"
    path.write_bytes(CASE)
    events, stats = run(path, use_rg)
    assert events == list(expected(CASE))
    assert stats.lines == CASE.count(b"\n") + 1
    assert stats.bytes == len(CASE)
    assert stats.not_understood == 1 and stats.issues[0].location.line == 6
    assert stats.events == len(events)


def test_gzip_is_read_transparently(tmp_path: Path) -> None:
    plain = tmp_path / "a.log"
    plain.write_bytes(CASE)
    packed = tmp_path / "a.log.1.gz"
    packed.write_bytes(gzip.compress(CASE))
    assert run(packed, use_rg=True)[0] == run(plain, use_rg=False)[0]


@pytest.mark.parametrize("magic", [b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"\x1f\x8b\x08\x00\x00\x00"])
def test_archive_magic_without_archive_is_read_as_text(tmp_path: Path, magic: bytes) -> None:
    path = tmp_path / "c.log"
    path.write_bytes(magic + b"\n" + CASE)
    events, stats = run(path, use_rg=False)
    assert [e[2] for e in events] == [e[2] for e in expected(CASE)]
    assert stats.lines == CASE.count(b"\n") + 2
    assert not any("cannot read" in i.reason for i in stats.issues)


def test_truncated_gzip_keeps_the_lines_before_the_damage(tmp_path: Path) -> None:
    body = b"".join(b"HIT %d\n" % n for n in range(200_000))
    packed = gzip.compress(body)
    path = tmp_path / "d.log.2.gz"
    path.write_bytes(packed[: len(packed) // 2])
    events, stats = run(path, use_rg=False)
    assert [i.reason.split(":")[0] for i in stats.issues] == ["cannot read further"]
    numbers = [int(e[2].split()[1]) for e in events[:-1]]
    assert numbers == list(range(len(numbers))) and len(numbers) > 50_000  # kept, in order, none skipped
    assert str(len(numbers)).startswith(events[-1][2].split()[1])  # the cut-off line is offered as it is


def test_every_line_mode_offers_all_lines(tmp_path: Path) -> None:
    path = tmp_path / "b.log"
    path.write_bytes(b"one\ntwo HIT\nthree\n")
    events, stats = run(path, use_rg=True, every_line=True)
    assert [e[0] for e in events] == [1, 2, 3]
    assert stats.candidates == 3 and stats.lines == 3


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from([b"HIT", b"BAD", b"\n", b"\r\n", b"x", b"\x00", b"\xff", b" "]), max_size=80))
def test_both_paths_agree_on_random_input(tmp_path: Path, parts: list[bytes]) -> None:
    data = b"".join(parts)
    path = tmp_path / "r.log"
    path.write_bytes(data)
    py_events, py_stats = run(path, use_rg=False)
    assert py_events == list(expected(data)) if data else py_events == []
    if shutil.which("rg"):
        rg_events, rg_stats = run(path, use_rg=True)
        assert rg_events == py_events
        assert (rg_stats.lines, rg_stats.not_understood) == (py_stats.lines, py_stats.not_understood)


class Buggy(Needle):
    """A test parser with a bug: lines with 'BUG' raise something other than LineError."""

    def parse(self, line: str, location: Location) -> Event | None:
        if "BUG" in line:
            raise KeyError("oops")
        return super().parse(line, location)


def test_parser_bugs_and_refusals_are_reported_alike_on_both_paths(tmp_path: Path) -> None:
    path = tmp_path / "bugs.log"
    path.write_bytes(b"HIT a\nHIT BUG b\nBAD c\n  \nHIT d\r\nHIT BUG e\n")
    outcomes = []
    for use_rg in (False, True):
        old = os.environ.pop("AUDITOR_NO_RG", None)
        if not use_rg:
            os.environ["AUDITOR_NO_RG"] = "1"
        try:
            stats = ScanStats(str(path), "buggy-test")
            lines = [e.location.line for e in scan(str(path), Buggy(ParseContext(), str(path)), stats)]
        finally:
            os.environ.pop("AUDITOR_NO_RG", None)
            if old is not None:
                os.environ["AUDITOR_NO_RG"] = old
        issues = [(i.location.line, i.location.offset, i.reason, i.text) for i in stats.issues]
        outcomes.append((lines, issues, stats.candidates, stats.events, stats.not_understood))
    assert outcomes[0] == outcomes[1]
    lines, issues, candidates, events, bad = outcomes[0]
    assert lines == [1, 5] and candidates == 5 and events == 2 and bad == 3
    assert issues[0] == (2, 6, "internal error: KeyError: 'oops'", "HIT BUG b")
    assert issues[1][2] == "bad line"


COUNT_CASES = {
    "no-candidates": b"no candidates\n" * 10 + b"unterminated",
    "long-tail": b"HIT first\n" + b"y" * 100 + b"\n" + (b"filler line\n" * 500_000),  # > 4 MiB after
    "short-tail": b"a\nHIT\n" + b"z\n" * 10,
    "hit-at-end": b"HIT at the very end",
    "empty": b"",
    "blank-lines": b"\n\n\nHIT\n\n",
}


@pytest.mark.parametrize("case", sorted(COUNT_CASES))
def test_line_count_after_the_last_candidate(tmp_path: Path, case: str) -> None:
    data = COUNT_CASES[case]
    path = tmp_path / "count.log"
    path.write_bytes(data)
    want = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    for use_rg in (False, True):
        events, stats = run(path, use_rg)
        assert stats.lines == want, use_rg
        assert [n for n, _, _ in events] == [n for n, _, _ in expected(data)]


@pytest.mark.skipif(shutil.which("rg") is None, reason="ripgrep not installed")
def test_ripgrep_beside_the_interpreter_is_found(tmp_path: Path) -> None:
    """``pip install auditor[fast]`` puts ``rg`` in the venv's bin, which may not be on PATH
    (a systemd unit runs /opt/auditor/bin/auditor directly)."""
    import subprocess
    import sys

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(venv)], check=True, timeout=120)
    rg = shutil.which("rg")
    assert rg is not None
    shutil.copy2(rg, venv / "bin" / "rg")
    code = "from auditor.sources.scan import _ripgrep; print(_ripgrep())"
    env = {**os.environ, "PATH": str(tmp_path / "nothing-here")}
    env.pop("AUDITOR_NO_RG", None)
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], env=env, text=True,
                         capture_output=True, check=True, timeout=120)
    assert out.stdout.strip() == str(venv / "bin" / "rg")


# --- the pure-Python path with tiny sizes (auditor.sources.blocks) ---
# Tiny blocks reach every edge on small input: lines straddling blocks, lines
# longer than a block (reported as too long, skipped piece by piece, a needle
# still seen across pieces), final lines without newline, resumed reads.

from auditor.sources.blocks import Tuning  # noqa: E402

TINY = Tuning(block=8, max_line=12)
SMALL = Tuning(block=5, max_line=7)

Outcome = tuple[list[tuple[int, int | None, str]], list[tuple[int, int | None, str]], int, int, int, int]


def pure(path: Path, tuning: Tuning, start_offset: int = 0, start_line: int = 0,
         hold_partial: bool = False) -> Outcome:
    """Events and issues (line, offset, text) and the counts, on the pure-Python path."""
    old = os.environ.pop("AUDITOR_NO_RG", None)
    os.environ["AUDITOR_NO_RG"] = "1"
    try:
        stats = ScanStats(str(path), "needle-test")
        events = [(e.location.line, e.location.offset, e.message or "") for e in scan(
            str(path), Needle(ParseContext(), str(path)), stats, start_offset=start_offset,
            start_line=start_line, hold_partial=hold_partial, tuning=tuning)]
    finally:
        os.environ.pop("AUDITOR_NO_RG", None)
        if old is not None:
            os.environ["AUDITOR_NO_RG"] = old
    issues = [(i.location.line, i.location.offset, i.reason) for i in stats.issues]
    return events, issues, stats.lines, stats.bytes, stats.candidates, stats.events


def truth(data: bytes, max_line: int, start: int = 0, first_line: int = 0,
          hold_partial: bool = False) -> Outcome:
    """What the scan must report: events, issues ("too long" or "bad line"), counts."""
    events: list[tuple[int, int | None, str]] = []
    issues: list[tuple[int, int | None, str]] = []
    body = data[start:]
    if hold_partial and body and not body.endswith(b"\n"):
        body = body[: body.rfind(b"\n") + 1]
    lines = body.split(b"\n")
    if body.endswith(b"\n") or not body:
        lines = lines[:-1]
    offset, candidates = start, 0
    for n, line in enumerate(lines, first_line + 1):
        raw = line[:-1] if line.endswith(b"\r") else line
        if (b"HIT" in line or b"BAD" in line) and raw.strip():
            candidates += 1
            if len(raw) > max_line:
                issues.append((n, offset, f"line longer than {max_line} bytes (not read further)"))
            elif b"BAD" in raw:
                issues.append((n, offset, "bad line"))
            else:
                events.append((n, offset, raw.decode("utf-8", "replace")))
        offset += len(line) + 1
    return events, issues, first_line + len(lines), len(body), candidates, len(events)


PIECES = st.one_of(
    st.sampled_from([b"HIT", b"BAD", b"\n", b"\r\n", b"x", b"\x00", b"\xff", b" ", b"\n\n", b"\r"]),
    st.integers(1, 30).map(lambda n: b"y" * n),  # lines longer than a block / than max_line
    st.integers(1, 30).map(lambda n: b"HIT" + b"z" * n + b"BAD"),
    st.integers(1, 30).map(lambda n: b"q" * n + b"HIT"),  # a needle far into a long line
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(PIECES, max_size=60), st.booleans())
def test_tiny_blocks_report_the_truth_on_random_input(
        tmp_path: Path, parts: list[bytes], hold_partial: bool) -> None:
    data = b"".join(parts)
    path = tmp_path / "p.log"
    path.write_bytes(data)
    for tuning in (TINY, SMALL):
        assert pure(path, tuning, hold_partial=hold_partial) == truth(
            data, tuning.max_line, hold_partial=hold_partial)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(PIECES, min_size=1, max_size=60), st.data())
def test_tiny_blocks_resume_where_asked(tmp_path: Path, parts: list[bytes], data: st.DataObject) -> None:
    """start_offset/start_line (the Elasticsearch job's incremental reads)."""
    blob = b"".join(parts)
    path = tmp_path / "q.log"
    path.write_bytes(blob)
    starts = [0] + [i + 1 for i, c in enumerate(blob) if c == 0x0A]
    start = data.draw(st.sampled_from(starts))
    before = blob[:start].count(b"\n")
    hold = data.draw(st.booleans())
    got = pure(path, TINY, start, before, hold)
    want = truth(blob, TINY.max_line, start, before, hold)
    assert got == want


def test_full_size_is_the_plain_truth(tmp_path: Path) -> None:
    data = (b"y" * 50 + b"HIT\n") * 3 + b"HIT" + b"q" * 70 + b"\n" + b"HIT tail"
    path = tmp_path / "s.log"
    path.write_bytes(data)
    events, _, lines, size, _, _ = pure(path, Tuning())
    assert events == list(expected(data)) and size == len(data) and lines == 5


def test_python_path_streams(tmp_path: Path) -> None:
    """The first events come before the whole file is read."""
    data = b"".join(b"%05d HIT\n" % n for n in range(5000))
    path = tmp_path / "big.log"
    path.write_bytes(data)
    os.environ["AUDITOR_NO_RG"] = "1"
    try:
        stats = ScanStats(str(path), "needle-test")
        events = scan(str(path), Needle(ParseContext(), str(path)), stats, tuning=Tuning(block=1024))
        first = next(events)
        assert first.location.line == 1 and stats.bytes < len(data) // 4
        rest = list(events)
    finally:
        os.environ.pop("AUDITOR_NO_RG", None)
    assert [e.location.line for e in rest] == list(range(2, 5001))
    assert [e.location.offset for e in rest] == [10 * n for n in range(1, 5000)]
    assert stats.lines == 5000 and stats.bytes == len(data)
