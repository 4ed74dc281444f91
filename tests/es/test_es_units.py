"""Pieces of the audit job without a server: documents, ids, config, state, resumed scans."""

from __future__ import annotations

import gzip
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from auditor.config import ConfigError, Secret, load_config, validate_namespace
from auditor.models import Event, Evidence, Finding, FindingLimit, Location, to_ecs
from auditor.parsers import registry
from auditor.parsers.base import ParseContext
from auditor.sinks.es_docs import DocBuilder, Window, finding_doc
from auditor.sinks.es_ids import event_id, finding_id
from auditor.sinks.es_json import event_json
from auditor.sinks.es_templates import StreamNames
from auditor.sources.checkpoint import (
    AuditState,
    FileState,
    file_identity,
    load_checkpoint,
    save_checkpoint,
)
from auditor.sources.scan import ScanStats, scan
from tests.es.conftest import write_lines

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def finding(cause: str = "conntrack-table-full", **kw: object) -> Finding:
    base: dict[str, object] = dict(
        cause=cause, title="conntrack table full", confidence="high", score=0.92,
        summary="nf_conntrack_max reached", remedy="raise net.netfilter.nf_conntrack_max",
        resets=41, ports=(443, 80), first_seen=T0, last_seen=T0 + timedelta(minutes=3),
        side="kernel", limit=FindingLimit("net.netfilter.nf_conntrack_max", 65536, 65536),
        evidence=(Evidence("/var/log/kern.log", 812, "nf_conntrack: table full", 0.6),
                  Evidence("counter", None, "insert_failed +120", 0.3, "counter")),
        runners_up=(("syn-flood", 0.2),),
    )
    base.update(kw)
    return Finding(**base)  # type: ignore[arg-type]


def test_finding_doc_shape_and_id() -> None:
    win = Window(T0 - timedelta(minutes=5), T0 + timedelta(minutes=5))
    doc = finding_doc(finding(), "web-1", win)
    f = doc["auditor"]["finding"]
    assert doc["@timestamp"] == (T0 + timedelta(minutes=3)).isoformat()
    assert doc["event"]["kind"] == "alert" and doc["event"]["action"] == "conntrack-table-full"
    assert doc["host"]["name"] == "web-1" and doc["data_stream"]["dataset"] == "auditor.findings"
    assert f["resets"] == 41 and f["ports"] == [443, 80] and f["limit_name"].endswith("_max")
    assert f["evidence"][0] == {"source": "/var/log/kern.log", "line": 812,
                                "text": "nf_conntrack: table full", "weight": 0.6, "kind": "log"}
    assert "line" not in f["evidence"][1]
    assert f["runners_up"] == [{"cause": "syn-flood", "score": 0.2}]
    assert doc["auditor"]["run"]["window"]["start"] == win.start.isoformat()  # type: ignore[union-attr]
    json.dumps(doc)
    # same cause, scope and window -> same id, whatever the counts; other window -> other id
    assert finding_id("web-1", finding(), win.start) == finding_id("web-1", finding(resets=99),
                                                                   win.start)
    assert finding_id("web-1", finding(), win.start) != finding_id("web-1", finding(), T0)
    assert finding_id("web-1", finding(), T0) != finding_id("web-2", finding(), T0)
    assert finding_id("w", finding(), T0) != finding_id("w", finding(limit=None), T0)


def test_event_json_equals_to_ecs() -> None:
    k = registry()["kernel"](ParseContext(), "x")
    lines = [
        "Nov 24 10:00:01 web1 kernel: [12.5] nf_conntrack: nf_conntrack: table full, dropping packet",
        "Nov 24 10:00:02 web1 kernel: [13.0] REJECT-IN: IN=eth0 OUT= MAC=00:11:22:33:44:55:66:77:88:"
        "99:aa:bb:08:00 SRC=192.0.2.10 DST=198.51.100.5 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF "
        "PROTO=TCP SPT=40000 DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0",
    ]
    events = [k.parse(line, Location("x", i + 1, i * 100)) for i, line in enumerate(lines)]
    events.append(Event(T0, Location("/l \"q\"", 3), message="ünï\n\t\"", time_relative=True,
                        extra={"when": T0, "n": 1.5, "t": ("a", 2), "m": {"x": None}}))
    for ev in events:
        assert ev is not None
        want = to_ecs(ev)
        want.setdefault("host", {}).setdefault("name", "fallback")
        assert json.loads(event_json(ev, "fallback")) == want
        doc = DocBuilder("h", StreamNames("prod")).event(ev, "kern", "ident")
        assert b"\n" not in doc.source and json.loads(doc.source)["data_stream"]["namespace"] == "prod"
        loc = ev.location
        offset = loc.offset if loc.offset is not None else -loc.line
        assert doc.id == event_id("h", "kern", "ident", offset)


def test_config_layers_and_secrets(tmp_path: Path) -> None:
    key = tmp_path / "es.key"
    key.write_text("c2VjcmV0OmtleQ==\n")
    cfg_file = tmp_path / "auditor.toml"
    cfg_file.write_text(
        'host = "web-9"\nspool_max_bytes = "16MiB"\nsince = "2h"\n'
        "[elasticsearch]\n"
        f'hosts = ["https://es1:9200"]\napi_key_file = "{key}"\nca_file = "/etc/ssl/ca.pem"\n'
        '[[inputs]]\npath = "/var/log/kern.log"\n'
    )
    cfg = load_config(str(cfg_file), env={})
    assert cfg.host == "web-9" and cfg.spool_max_bytes == 16 << 20 and cfg.es.verify
    assert cfg.es.api_key == Secret("c2VjcmV0OmtleQ==")
    assert "c2VjcmV0" not in repr(cfg) and "c2VjcmV0" not in str(cfg.es)
    env = {"AUDITOR_ES_URL": "https://a:9200,https://b:9200", "AUDITOR_SINCE": "6h",
           "AUDITOR_ES_USERNAME": "auditor", "AUDITOR_ES_PASSWORD": "pw"}
    cfg = load_config(str(cfg_file), env=env)
    assert cfg.es.hosts == ("https://a:9200", "https://b:9200") and cfg.since == "6h"
    assert cfg.es.password is not None and "pw" not in repr(cfg)
    with pytest.raises(ConfigError, match=r"plain http://.*allow_http_credentials"):
        load_config(str(cfg_file), env=env, overrides={"es_hosts": ["http://c:9200"]})
    cfg = load_config(str(cfg_file), env=env, overrides={
        "es_hosts": ["http://c:9200"], "since": "1h", "allow_http_credentials": True})
    assert cfg.es.hosts == ("http://c:9200",) and cfg.since == "1h"
    cfg = load_config(str(cfg_file), env={**env, "AUDITOR_ES_ALLOW_HTTP_CREDENTIALS": "yes"},
                      overrides={"es_hosts": ["http://c:9200"]})
    assert cfg.es.allow_http_credentials
    # a dry run reads no secret: a missing key file is no error, and nothing is kept
    key.unlink()
    cfg = load_config(str(cfg_file), env={}, credentials=False)
    assert cfg.es.api_key is None and not cfg.es.has_credentials
    with pytest.raises(ConfigError, match="api_key_file"):
        load_config(str(cfg_file), env={})
    key.write_text("c2VjcmV0OmtleQ==\n")
    with pytest.raises(ConfigError, match="credentials"):
        load_config(str(cfg_file), env={"AUDITOR_ES_URL": "https://u:p@es:9200"})
    with pytest.raises(ConfigError, match="namespace"):
        load_config(str(cfg_file), env={"AUDITOR_ES_NAMESPACE": "Bad-Name"})
    with pytest.raises(ValueError):
        validate_namespace("a-b")


def test_state_atomic_roundtrip_and_identity(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("first line\nsecond\n")
    ident = file_identity(log)
    gz = tmp_path / "a.log.1.gz"
    with gzip.open(gz, "wb") as fh:
        fh.write(b"first line\nsecond\nthird\n")
    assert ident is not None and file_identity(gz) == ident  # compression keeps identity
    (tmp_path / "b.log").write_text("no newline yet")
    assert file_identity(tmp_path / "b.log") is None
    st = os.stat(log)
    state = AuditState(host="h", watermark=T0, counters={"TcpExt.x": 3}, ruleset="abc")
    state.files[ident] = FileState(ident, str(log), "kern").advanced(str(log), 18, 2, st, False)
    path = tmp_path / "state" / "state.json"
    save_checkpoint(path, state)
    assert load_checkpoint(path) == state
    assert not [p for p in path.parent.iterdir() if p.name != "state.json"]  # no temp left
    path.write_text("{broken")
    with pytest.raises(OSError, match="damaged"):
        load_checkpoint(path)


@pytest.mark.parametrize("compressed", [False, True])
def test_scan_resumes_with_true_line_numbers(tmp_path: Path, compressed: bool) -> None:
    log = tmp_path / "kern.log"
    write_lines(log, range(1000, 1040))
    if compressed:
        data = log.read_bytes()
        log = tmp_path / "kern.log.1.gz"
        log.write_bytes(gzip.compress(data))
    k = registry()["kernel"]
    full = [(e.location.line, e.location.offset, e.source_port)
            for e in scan(str(log), k(ParseContext(), str(log)), ScanStats(str(log), "kernel"))]
    first = ScanStats(str(log), "kernel")
    head = []
    for e in scan(str(log), k(ParseContext(), str(log)), first, start_offset=0, hold_partial=True):
        head.append((e.location.line, e.location.offset, e.source_port))
        if len(head) == 15:
            break
    cut_line, cut_offset = head[-1][0], head[-1][1]
    # resume right after the 15th event's line: its offset + length, line count = its number
    with open(log, "rb") if not compressed else gzip.open(log, "rb") as fh:
        data = fh.read()
    resume = data.index(b"\n", cut_offset) + 1
    rest_stats = ScanStats(str(log), "kernel")
    rest = [(e.location.line, e.location.offset, e.source_port)
            for e in scan(str(log), k(ParseContext(), str(log)), rest_stats,
                          start_offset=resume, start_line=cut_line)]
    assert head + rest == full
    assert rest_stats.lines == 80 and resume + rest_stats.bytes == len(data)


def test_sample_config_loads(tmp_path: Path) -> None:
    sample = Path(__file__).resolve().parents[2] / "samples" / "deploy" / "auditor.toml"
    key = tmp_path / "key"
    key.write_text("abc\n")
    text = sample.read_text().replace("/etc/auditor/es-api-key", str(key))
    (tmp_path / "a.toml").write_text(text)
    cfg = load_config(str(tmp_path / "a.toml"), env={})
    assert cfg.es.hosts and cfg.es.verify and cfg.es.api_key == Secret("abc")
    assert [i.type for i in cfg.inputs] == ["kernel", "nginx-error"]
    assert cfg.spool_max_bytes == 256 << 20 and cfg.es.bulk_bytes == 5 << 20
