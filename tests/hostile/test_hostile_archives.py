"""Hostile archives: nothing is written outside the extraction folder, nothing of the
analysing host is read, every budget holds, and refusals are one clear line."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.bundle.inputs import open_input
from auditor.bundle.unpack import BudgetError
from auditor.sources.files import SourceError
from tests.hostile.builders import (
    KERNEL_LINE,
    add_file,
    add_special,
    all_entries,
    many_members,
    symlink_chain,
    zero_bomb,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private TMPDIR for the extraction folders, with a canary folder beside them."""
    base = tmp_path / "tmp"
    (base / "canary").mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(base))
    yield base


def extraction_folders(base: Path) -> list[Path]:
    return [p for p in base.iterdir() if p.name.startswith("auditor-")]


def test_symlink_chain_escape_writes_nothing_outside(tmp: Path, tmp_path: Path) -> None:
    archive = tmp_path / "chain.tar"
    symlink_chain(archive, "canary")
    inputs = open_input(str(archive))
    assert list((tmp / "canary").iterdir()) == []
    (dest,) = extraction_folders(tmp)
    for entry in all_entries(dest):
        assert not entry.is_symlink(), entry
        assert entry.resolve().is_relative_to(dest.resolve())
    assert (dest / "escape" / "pwned").read_bytes() == b"pwned\n"  # written, but inside
    reasons = {p.location.path.rsplit(":", 1)[-1]: p.reason for p in inputs.problems}
    assert "symbolic link" in reasons["escape"]
    assert sum("symbolic link" in r for r in reasons.values()) == 18


def test_plain_hostile_members_are_refused_and_named(tmp: Path, tmp_path: Path) -> None:
    archive = tmp_path / "plain.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        add_file(tar, "b/logs/kern.log", KERNEL_LINE.encode())
        add_file(tar, "../canary/up", b"x")
        add_file(tar, "b/../../canary/up2", b"x")
        add_file(tar, "/" + str(tmp / "canary" / "abs").lstrip("/"), b"x")
        add_special(tar, "b/shadow", tarfile.LNKTYPE, "/etc/shadow")
        add_special(tar, "b/null", tarfile.CHRTYPE)
        add_special(tar, "b/fifo", tarfile.FIFOTYPE)
        add_special(tar, "b/out", tarfile.SYMTYPE, "/etc")
        add_file(tar, "b/out/passwd", b"root::0:0::/:/bin/sh\n")
    inputs = open_input(str(archive))
    assert list((tmp / "canary").iterdir()) == []
    (dest,) = extraction_folders(tmp)
    kinds = {e.relative_to(dest).as_posix(): e for e in all_entries(dest)}
    assert all(e.is_dir() or (e.is_file() and not e.is_symlink()) for e in kinds.values())
    mark = f"{archive}:"
    why = {
        p.location.path[len(mark) :]: p.reason
        for p in inputs.problems
        if p.location.path.startswith(mark)
    }
    assert "'..'" in why["../canary/up"] and "'..'" in why["b/../../canary/up2"]
    assert "absolute" in why["/" + str(tmp / "canary" / "abs").lstrip("/")]
    assert "hard link" in why["b/shadow"] and "device" in why["b/null"]
    assert "FIFO" in why["b/fifo"] and "symbolic link" in why["b/out"]
    # The member under the refused link is written inside, as a plain folder.
    assert (dest / "b" / "out" / "passwd").is_file()
    assert [a.kind for a in inputs.artifacts] == ["ufw"]


def test_member_budget_refuses_100k_members_in_one_line(
    tmp: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(Lowered to 2,000 here: creating 20,000 files costs 20-45 s on a busy disk.)"""
    archive = tmp_path / "many.tar.gz"
    many_members(archive, 100_000, KERNEL_LINE.encode())
    monkeypatch.setenv("AUDITOR_MAX_MEMBERS", "2000")
    with pytest.raises(BudgetError) as caught:
        open_input(str(archive))
    message = str(caught.value)
    assert "\n" not in message and "more than 2000 members" in message
    assert "AUDITOR_MAX_MEMBERS=2000" in message
    assert extraction_folders(tmp) == []  # the partial extraction is removed at once


def test_size_budget_names_its_variable(
    tmp: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "big.tar.gz"
    zero_bomb(archive, 8 << 20)
    monkeypatch.setenv("AUDITOR_MAX_INPUT_BYTES", str(4 << 20))
    with pytest.raises(BudgetError, match="AUDITOR_MAX_INPUT_BYTES=4194304"):
        open_input(str(archive))
    assert extraction_folders(tmp) == []
    monkeypatch.setenv("AUDITOR_MAX_INPUT_BYTES", str(16 << 20))
    assert open_input(str(archive)).root  # raised: read


def test_ratio_bomb_stops_at_the_budget_in_bounded_memory(tmp_path: Path) -> None:
    """A 1 GiB-of-zeros .tar.gz (about 1 MB): refused once 256 MiB are unpacked, in a
    child whose peak memory (with its helpers) is measured."""
    archive = tmp_path / "bomb.tar.gz"
    zero_bomb(archive, 1 << 30)
    assert archive.stat().st_size < 2 << 20
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    code = (
        "import sys\n"
        "from auditor.bundle.inputs import open_input\n"
        "try:\n"
        "    open_input(sys.argv[1])\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
        # VmHWM: this process's own peak (ru_maxrss also counts the parent it was forked from)
        "print(next(ln.split()[1] for ln in open('/proc/self/status') if 'VmHWM' in ln))\n"
    )
    env = {**os.environ, "TMPDIR": str(scratch), "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code, str(archive)],
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
        check=True,
    ).stdout.splitlines()
    assert out[0].startswith("BudgetError") and "AUDITOR_MAX_RATIO=200" in out[0]
    assert int(out[1]) < 200 * 1024  # KiB
    assert list(scratch.iterdir()) == []


def test_a_refused_archive_is_one_line_on_the_command_line(tmp_path: Path) -> None:
    archive = tmp_path / "big.tar.gz"
    zero_bomb(archive, 2 << 20)
    env = {
        **os.environ,
        "AUDITOR_MAX_INPUT_BYTES": "1000000",
        "PYTHONPATH": str(ROOT),
        "TMPDIR": str(tmp_path),
    }
    run = subprocess.run(
        [sys.executable, "-m", "auditor", "diagnose", str(archive)],
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert "AUDITOR_MAX_INPUT_BYTES=1000000" in run.stderr
    assert [p for p in tmp_path.iterdir() if p.name.startswith("auditor-")] == []


NAMES = st.one_of(
    st.sampled_from(
        ["a", "b/c", "../x", "/abs", "a/../../y", "./d", "", ".", "a//b", "canary/z", "..", "b/c/d"]
    ),
    st.text(st.characters(blacklist_characters="\x00"), min_size=1, max_size=20),
)
MEMBER = st.tuples(
    NAMES,
    st.sampled_from(
        [
            tarfile.REGTYPE,
            tarfile.DIRTYPE,
            tarfile.SYMTYPE,
            tarfile.LNKTYPE,
            tarfile.CHRTYPE,
            tarfile.FIFOTYPE,
            tarfile.BLKTYPE,
            b"Z",
        ]
    ),
    st.sampled_from(["", "..", "/etc/passwd", "a", "../../canary", "b/c", "/"]),
    st.binary(max_size=64),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(MEMBER, max_size=12), st.sampled_from(["w", "w:gz", "w:xz"]))
def test_random_archives_stay_inside(
    tmp_path: Path, members: list[tuple[str, bytes, str, bytes]], mode: str
) -> None:
    base = Path(tempfile.mkdtemp(dir=tmp_path))
    canary = base / "canary"
    canary.mkdir()
    work = base / "work"
    work.mkdir()
    archive = base / "random.tar"
    with tarfile.open(archive, mode) as tar:  # type: ignore[call-overload]
        for name, kind, link, data in members:
            if kind == tarfile.REGTYPE:
                add_file(tar, name, data)
            else:
                add_special(tar, name, kind, link)
    old = tempfile.tempdir
    tempfile.tempdir = str(work)
    try:
        try:
            inputs = open_input(str(archive))
        except SourceError as exc:
            assert "\n" not in str(exc)
            return
        finally:
            tempfile.tempdir = old
        assert list(canary.iterdir()) == []
        for entry in all_entries(work):
            assert not entry.is_symlink()
            assert entry.is_dir() or entry.is_file()
        assert all(p.location.path for p in inputs.problems)
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


def test_a_huge_long_name_header_is_refused_before_it_is_read(tmp: Path, tmp_path: Path) -> None:
    """A GNU long-name header claiming 3 GiB: tarfile would read it whole into memory;
    it is refused from its size alone (the archive is a few kilobytes)."""
    archive = tmp_path / "longname.tar.gz"
    info = tarfile.TarInfo("././@LongLink")
    info.type, info.size = tarfile.GNUTYPE_LONGNAME, 3 << 30
    head = info.tobuf(tarfile.GNU_FORMAT)[: tarfile.BLOCKSIZE]
    with gzip.open(archive, "wb") as out:
        out.write(head)
        for _ in range(1024):  # a few MiB of name, far from the 3 GiB claimed
            out.write(b"n" * (1 << 12))
    with pytest.raises(SourceError, match="extended header of 3221225472 bytes"):
        open_input(str(archive))
    assert extraction_folders(tmp) == []
