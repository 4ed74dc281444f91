"""File identity of the incremental audit state: rotation, copies, head collisions, migration.

Each scenario drives the real follower (plan_input, read_plan over the real scanner,
finished) run after run, saving and reloading the state as the audit job does, and
checks the one property that matters: every line written is read exactly once, and
no two files ever share an identity (which would make their document ids collide).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

from auditor.models import Event, Location
from auditor.parsers.base import LineParser, ParseContext
from auditor.sources.checkpoint import AuditState, file_identity, load_checkpoint, save_checkpoint
from auditor.sources.follow import finished, plan_input, read_plan
from auditor.sources.scan import ScanStats

HEAD = "2026/11/24 10:00:00 [notice] 1#1: using the \"epoll\" event method\n"  # same in every file


class Lines(LineParser):
    """Every line is an event whose message is the line."""

    name = "lines-test"
    needles = ()

    @classmethod
    def sniff(cls, head: object) -> float:
        return 0.0

    def parse(self, line: str, location: Location) -> Event | None:
        return Event(timestamp=datetime(2026, 11, 24, tzinfo=UTC), location=location, message=line)


class Runner:
    """Audit runs over some inputs: what was read, by (identity, offset), across runs."""

    def __init__(self, tmp: Path, inputs: dict[str, Path]) -> None:
        self.state_path = tmp / "state.json"
        self.inputs = inputs
        self.read: list[tuple[str, str]] = []  # (input, line)
        self.ids: list[tuple[str, str, int]] = []  # (input, identity, offset)

    def run(self) -> AuditState:
        state = load_checkpoint(self.state_path) or AuditState(host="h")
        taken = set(state.files) | set(state.retired)
        new_files = {}
        later = time.time() + 3600  # rotated files count as settled (complete)
        for key, live in self.inputs.items():
            follow = plan_input(key, str(live), state, None, now=later, taken=taken)
            assert not follow.problems, follow.problems
            for entry in follow.kept:
                new_files[entry.identity] = entry
            for plan in follow.plans:
                stats = ScanStats(plan.path, Lines.name)
                for ev in read_plan(plan, Lines(ParseContext(), plan.path), stats):
                    assert ev.location.offset is not None
                    self.read.append((key, ev.message or ""))
                    self.ids.append((key, plan.entry.identity, ev.location.offset))
                assert plan.entry.identity not in new_files  # one file per identity
                new_files[plan.entry.identity] = finished(plan, stats)
        state.retire(sorted(set(state.files) - set(new_files)))
        state.files = new_files
        save_checkpoint(self.state_path, state)
        return state

    def check(self, written: dict[str, list[str]]) -> None:
        for key, lines in written.items():
            got = sorted(line for k, line in self.read if k == key)
            assert got == sorted(lines), f"{key}: read {len(got)} lines, wrote {len(lines)}"
        assert len(set(self.ids)) == len(self.ids)  # no document id twice


class Log:
    """A log file of unique lines that all begin with the same head line."""

    def __init__(self, path: Path, tag: str) -> None:
        self.path, self.tag, self.n = path, tag, 0
        self.written: list[str] = []

    def start(self) -> None:
        with open(self.path, "a") as fh:
            fh.write(HEAD)
        self.written.append(HEAD.rstrip("\n"))

    def add(self, count: int) -> None:
        with open(self.path, "a") as fh:
            for _ in range(count):
                self.n += 1
                line = f"2026/11/24 10:00:{self.n % 60:02d} [error] {self.tag} line {self.n}"
                fh.write(line + "\n")
                self.written.append(line)


def gzip_to(src: Path, dst: Path) -> None:
    st = src.stat()
    with open(src, "rb") as fin, gzip.open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))  # as gzip(1) does
    src.unlink()


def test_two_live_files_with_the_same_head_are_both_read(tmp_path: Path) -> None:
    a, b = Log(tmp_path / "a" / "error.log", "a"), Log(tmp_path / "b" / "error.log", "b")
    for log in (a, b):
        log.path.parent.mkdir()
        log.start()
        log.add(3)
    assert file_identity(a.path) == file_identity(b.path)  # the old identity collided
    r = Runner(tmp_path, {"a": a.path, "b": b.path})
    state = r.run()
    assert len(state.files) == 2 and len({e.identity for e in state.files.values()}) == 2
    a.add(2)
    b.add(4)
    r.run()
    r.run()
    r.check({"a": a.written, "b": b.written})


def test_live_and_rotated_with_the_same_head_in_one_input(tmp_path: Path) -> None:
    live = tmp_path / "error.log"
    old, cur = Log(live.with_name("error.log.1"), "old"), Log(live, "cur")
    old.start()
    old.add(5)
    cur.start()
    cur.add(2)
    r = Runner(tmp_path, {"nginx": live})
    r.run()
    cur.add(3)
    r.run()
    r.check({"nginx": old.written + cur.written})


def test_rename_copytruncate_and_gzip_with_colliding_heads(tmp_path: Path) -> None:
    live = tmp_path / "error.log"
    log = Log(live, "x")
    written: list[str] = []
    r = Runner(tmp_path, {"nginx": live})
    log.start()
    log.add(4)
    r.run()
    log.add(2)  # before the rotation, not yet read
    live.rename(live.with_name("error.log.1"))  # rename rotation; the new file has the same head
    written += log.written
    log = Log(live, "y")
    log.start()
    log.add(3)
    r.run()
    log.add(2)
    # copytruncate: .1 -> .2, copy live to .1, truncate live, new content with the same head
    live.with_name("error.log.1").rename(live.with_name("error.log.2"))
    shutil.copyfile(live, live.with_name("error.log.1"))
    with open(live, "r+") as fh:
        fh.truncate(0)
    written += log.written
    log = Log(live, "z")
    log.start()
    log.add(2)
    r.run()
    # compress both rotated files (new inodes, same content and mtime)
    for name in ("error.log.1", "error.log.2"):
        gzip_to(live.with_name(name), live.with_name(name + ".gz"))
    log.add(3)
    r.run()
    r.run()
    r.check({"nginx": written + log.written})


def test_rotated_then_compressed_before_the_next_run_reads_the_rest(tmp_path: Path) -> None:
    live = tmp_path / "app.log"
    log = Log(live, "p")
    log.start()
    log.add(5)
    r = Runner(tmp_path, {"app": live})
    r.run()
    log.add(4)  # unread when the file is rotated and compressed
    rotated = live.with_name("app.log.1")
    live.rename(rotated)
    gzip_to(rotated, live.with_name("app.log.1.gz"))
    written = log.written
    log = Log(live, "q")
    log.start()
    log.add(1)
    r.run()
    r.check({"app": written + log.written})


def test_copies_in_progress_are_read_once(tmp_path: Path) -> None:
    live = tmp_path / "app.log"
    log = Log(live, "c")
    log.start()
    log.add(6)
    r = Runner(tmp_path, {"app": live})
    r.run()
    # copytruncate caught between the copy and the truncation: the copy waits
    shutil.copyfile(live, live.with_name("app.log.1"))
    r.run()
    with open(live, "r+") as fh:
        fh.truncate(0)
    written = list(log.written)
    log = Log(live, "d")
    log.add(2)
    r.run()
    # gzip caught with both the original and the .gz present: read once
    rotated = live.with_name("app.log.1")
    with open(rotated, "rb") as fin, gzip.open(str(rotated) + ".gz", "wb") as fout:
        shutil.copyfileobj(fin, fout)
    st = rotated.stat()
    os.utime(str(rotated) + ".gz", ns=(st.st_atime_ns, st.st_mtime_ns))
    r.run()
    rotated.unlink()
    r.run()
    r.check({"app": written + log.written})


def test_truncated_and_regrown_past_the_offset_is_a_new_file(tmp_path: Path) -> None:
    live = tmp_path / "app.log"
    preamble = [f"2026/11/24 10:00:00 [notice] 1#1: start-up message number {i:03d}" for i in range(80)]
    assert sum(len(x) + 1 for x in preamble) > 4096  # the whole head fingerprint is the same

    def fresh(tag: str, count: int) -> Log:
        log = Log(live, tag)
        with open(live, "a") as fh:
            fh.write("".join(x + "\n" for x in preamble))
        log.written += preamble
        log.add(count)
        return log

    log = fresh("t", 2)
    r = Runner(tmp_path, {"app": live})
    r.run()
    written = list(log.written)
    with open(live, "r+") as fh:
        fh.truncate(0)
    log = fresh("u", 12)  # longer than before: only the tail fingerprint tells other content
    r.run()
    r.check({"app": written + log.written})


def test_identity_of_a_vanished_file_is_never_reused(tmp_path: Path) -> None:
    live = tmp_path / "app.log"
    log = Log(live, "v")
    log.start()
    log.add(2)
    r = Runner(tmp_path, {"app": live})
    first = set(r.run().files)
    old = list(log.written)
    live.unlink()
    state = r.run()
    assert not state.files and set(state.retired) == first
    log = Log(live, "w")
    log.start()
    log.add(2)
    state = r.run()
    assert len(state.files) == 1 and not set(state.files) & first
    r.check({"app": old + log.written})


def test_version_1_state_migrates_without_rereading(tmp_path: Path) -> None:
    live = tmp_path / "app.log"
    log = Log(live, "m")
    log.start()
    log.add(3)
    st = live.stat()
    ident = file_identity(live)
    assert ident is not None
    size = st.st_size
    v1 = {
        "version": 1, "host": "h", "watermark": None, "journald_cursor": None,
        "counters": {}, "ruleset": None, "runs": 3,
        "files": {ident: {"identity": ident, "path": str(live), "input": "app",
                          "offset": size, "line": 4, "dev": st.st_dev, "ino": st.st_ino,
                          "size": size, "mtime_ns": st.st_mtime_ns, "eof": False}},
    }
    (tmp_path / "state.json").write_text(json.dumps(v1))
    log.add(2)
    r = Runner(tmp_path, {"app": live})
    state = r.run()
    assert r.read == [("app", line) for line in log.written[-2:]]
    assert {i for _, i, _ in r.ids} == {ident}  # same identity: document ids unchanged
    entry = state.files[ident]
    assert entry.head and entry.head_len == size + len(log.written[-2]) + len(log.written[-1]) + 2
    assert entry.tail
    saved = json.loads((tmp_path / "state.json").read_text())
    assert saved["version"] == 2
    # the migrated entry still follows a rotation with a colliding head
    live.rename(live.with_name("app.log.1"))
    log2 = Log(live, "n")
    log2.start()
    log2.add(1)
    r.run()
    assert sorted(line for _, line in r.read) == sorted(log.written[-2:] + log2.written)
