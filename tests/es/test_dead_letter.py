"""The dead-letter file: bounded in size, rotated with the loss counted, configurable."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from auditor.config import ConfigError, load_config
from auditor.sinks.elasticsearch import DeadLetter
from auditor.sinks.spool import Doc


def entries(start: int, n: int, size: int = 300) -> list[tuple[Doc, str, int, str]]:
    return [(Doc("resets", f"id-{i}", json.dumps({"n": i, "pad": "x" * size}).encode()),
             "logs-auditor.resets-t", 400, "mapper_parsing_exception: failed to parse [source.ip]")
            for i in range(start, start + n)]


def records(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def test_dead_letter_rotates_at_its_bound_and_counts_what_it_drops(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "dl" / "dead.ndjson"
    dl = DeadLetter(path, max_bytes=4096)
    dl.write(entries(0, 5))
    assert [r["_id"] for r in records(path)] == [f"id-{i}" for i in range(5)]
    assert records(path)[0]["document"] == {"n": 0, "pad": "x" * 300}
    assert records(path)[0]["reason"].startswith("mapper_parsing_exception")  # type: ignore[union-attr]
    with caplog.at_level(logging.WARNING, logger="auditor.elasticsearch"):
        for k in range(1, 12):
            dl.write(entries(k * 5, 5))
    rotated = path.with_name("dead.ndjson.1")
    # never beyond the bound, the newest records kept, everything else counted as dropped
    assert path.stat().st_size <= 4096 and rotated.stat().st_size <= 4096
    kept = [r["_id"] for r in records(rotated) + records(path)]
    assert kept == [f"id-{i}" for i in range(60 - len(kept), 60)]
    assert dl.count == 60 and dl.dropped == 60 - len(kept) > 0
    assert any("rotated" in r.getMessage() and "dropped" in r.getMessage() for r in caplog.records)


def test_a_record_larger_than_the_bound_is_kept_without_its_document(tmp_path: Path) -> None:
    path = tmp_path / "dead.ndjson"
    dl = DeadLetter(path, max_bytes=2048)
    dl.write(entries(0, 1, size=10_000) + entries(1, 1))
    recs = records(path)
    assert [r["_id"] for r in recs] == ["id-0", "id-1"]
    assert recs[0]["document_omitted"] is True and "document" not in recs[0]
    assert recs[1]["document"] == {"n": 1, "pad": "x" * 300}
    assert dl.omitted == 1 and dl.dropped == 0 and path.stat().st_size <= 2048


def test_dead_letter_bound_from_file_then_environment(tmp_path: Path) -> None:
    cfg_file = tmp_path / "auditor.toml"
    cfg_file.write_text('dead_letter = "/tmp/x/dead.ndjson"\ndead_letter_max_bytes = "8MiB"\n')
    assert load_config(str(cfg_file), env={}).dead_letter_max_bytes == 8 << 20
    env = {"AUDITOR_DEAD_LETTER_MAX_BYTES": "512k"}
    assert load_config(str(cfg_file), env=env).dead_letter_max_bytes == 512 << 10
    (tmp_path / "empty.toml").write_text("")
    assert load_config(str(tmp_path / "empty.toml"), env={}).dead_letter_max_bytes == 64 << 20
    with pytest.raises(ConfigError, match="dead_letter_max_bytes"):
        load_config(str(cfg_file), env={"AUDITOR_DEAD_LETTER_MAX_BYTES": "lots"})
