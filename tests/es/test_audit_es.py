"""The scheduled audit against a real server: exactly once through re-runs, outages, faults.

Every generated log line carries a unique source port, so "exactly once" is checked
independently of auditor's ids: the ports found in the server are exactly the ports
written, each once; and every ``_id`` is unique.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from auditor.commands._audit_job import AuditReport, run_audit
from auditor.config import load_config
from auditor.sinks.spool import Doc, Spool
from auditor.sources.checkpoint import load_checkpoint
from tests.es.conftest import Backend, reject_line, write_lines

pytestmark = pytest.mark.es


def audit(cfg_path: Path, **kw: object) -> AuditReport:
    cfg = load_config(str(cfg_path), env={})
    return run_audit(cfg, host_snapshot=False, **kw)  # type: ignore[arg-type]


def assert_exactly(be: Backend, expected: list[int]) -> None:
    docs = be.docs("resets")
    ids = Counter(d["_id"] for d in docs)
    assert not [i for i, n in ids.items() if n > 1], "duplicate ids"
    ports = Counter(int(d["source"]["port"]) for d in docs)
    dupes = {p: n for p, n in ports.items() if n > 1}
    assert not dupes, f"duplicated events: {sorted(dupes)[:10]}"
    missing = sorted(set(expected) - set(ports))
    assert not missing, f"{len(missing)} events lost, e.g. {missing[:10]}"
    assert sorted(ports) == sorted(expected)


def test_full_audit_then_rerun_adds_nothing(backend: Backend, tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    write_lines(log, range(10000, 10300))
    cfg = backend.config([log], bulk_docs=128)
    rep = audit(cfg)
    assert rep.ok, rep.problems
    assert rep.events == 300 and rep.sent.created >= 301  # events + snapshot (+ findings)
    assert_exactly(backend, list(range(10000, 10300)))
    assert len(backend.docs("snapshot")) == 1
    findings = backend.docs("findings")
    assert len(findings) == rep.findings
    doc = backend.docs("resets")[0]
    assert doc["host"]["name"] == "web1" and doc["log"]["file"]["path"] == str(log)
    assert doc["log"]["file"]["line"] % 2 == 1  # REJECT lines are the odd lines
    # second run, nothing new: no event, no finding; only the run's own snapshot
    rep2 = audit(cfg)
    assert rep2.events == 0 and rep2.findings == 0 and rep2.sent.duplicates == 0
    assert_exactly(backend, list(range(10000, 10300)))
    assert len(backend.docs("findings")) == len(findings)
    assert len(backend.docs("snapshot")) == 2


def test_incremental_with_partial_last_line(backend: Backend, tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    write_lines(log, range(20000, 20050))
    cfg = backend.config([log])
    audit(cfg)
    write_lines(log, range(20050, 20060))
    last = reject_line(20060, datetime.now())
    with open(log, "a") as fh:  # a writer in the middle of a line
        fh.write(last[:80])
    rep = audit(cfg)
    assert rep.events == 10
    with open(log, "a") as fh:
        fh.write(last[80:])
    rep = audit(cfg)
    assert rep.events == 1
    assert_exactly(backend, list(range(20000, 20061)))
    doc = next(d for d in backend.docs("resets") if d["source"]["port"] == 20060)
    assert doc["log"]["file"]["line"] == 121  # line numbers stay true across resumed reads
    assert doc["log"]["offset"] == log.read_bytes().rfind(last.encode())


def test_outage_spools_then_next_run_delivers(backend: Backend, tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    write_lines(log, range(30000, 30200))
    cfg = backend.config([log], bulk_docs=64)
    backend.proxy.down = True
    rep = audit(cfg)
    assert rep.spooled >= 201 and rep.problems  # reported, exit code 1 in the CLI
    assert backend.docs("resets") == []
    spool = Spool(tmp_path / "spool", 1 << 30)
    assert spool.pending() == rep.spooled
    backend.proxy.down = False
    write_lines(log, range(30200, 30250))
    rep2 = audit(cfg)
    assert rep2.ok, rep2.problems
    assert rep2.spool_sent == rep.spooled and spool.pending() == 0
    assert_exactly(backend, list(range(30000, 30250)))
    assert len(backend.docs("snapshot")) == 2


def test_spool_overflow_drops_oldest_events_never_findings(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 4000)
    findings = [Doc("findings", f"f{i}", b'{"x":"' + b"f" * 200 + b'"}') for i in range(30)]
    spool.append(findings)  # more than the limit alone: kept anyway
    events = [Doc("resets", f"e{i}", b'{"x":"' + b"e" * 200 + b'"}') for i in range(40)]
    dropped = spool.append(events)
    kept = [d for seg in spool.segments() for d in spool.read(seg)]
    assert sum(d.kind == "findings" for d in kept) == 30
    assert dropped == 40 and spool.dropped() == 40
    assert not any(d.kind == "resets" for d in kept)


def test_faults_mid_bulk_end_exactly_once(backend: Backend, tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    write_lines(log, range(40000, 40600))
    cfg = backend.config([log], bulk_docs=50)
    p = backend.proxy
    for n, action in enumerate(
        ["reset", "status:429", "item429", "reset-after", "status:503", "cut", "delay:0.2"]
    ):
        p.add(action, skip=1 + 2 * n)  # the 2nd, 4th, 6th... bulk request
    rep = audit(cfg)
    assert rep.ok, rep.problems
    assert rep.sent.retries >= 6 and rep.spooled == 0
    assert rep.sent.duplicates > 0  # reset-after and cut: applied, then retried -> 409
    assert_exactly(backend, list(range(40000, 40600)))
    actions = [a for _, path, a in p.log if "/_bulk" in path]
    assert {"reset", "status:429", "item429", "reset-after", "status:503", "cut"} <= set(actions)


def test_sigkill_mid_run_then_rerun(backend: Backend, tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    write_lines(log, range(50000, 50500))
    cfg = backend.config([log], bulk_docs=40)
    backend.proxy.add("hold", skip=4)  # the 5th bulk is applied, then its answer waits
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-m", "auditor", "audit", "--config", str(cfg)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert backend.proxy.held.wait(60), "the audit never reached the 5th bulk"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        backend.proxy.release()
    assert proc.returncode == -signal.SIGKILL
    partial = backend.ports()
    assert 0 < len(partial) < 500
    state = load_checkpoint(tmp_path / "state.json")
    assert state is not None and not state.files  # nothing committed before the crash
    rep = audit(cfg)
    assert rep.ok, rep.problems
    assert rep.sent.duplicates >= len(partial)
    assert_exactly(backend, list(range(50000, 50500)))


def test_rotation_rename_copytruncate_gzip(backend: Backend, tmp_path: Path) -> None:
    log = tmp_path / "app" / "kern.log"
    log.parent.mkdir()
    written: list[int] = []

    def add(ports: range) -> None:
        write_lines(log, ports)
        written.extend(ports)

    cfg = backend.config([log])
    add(range(60000, 60100))
    audit(cfg)
    add(range(60100, 60150))  # written before the rotation, not yet read
    log.rename(log.with_name("kern.log.1"))  # rename rotation
    add(range(60150, 60180))  # the new live file
    rep = audit(cfg)
    assert rep.events == 80
    add(range(60180, 60200))
    # copytruncate: .1 -> .2, copy live to .1, truncate live
    log.with_name("kern.log.1").rename(log.with_name("kern.log.2"))
    shutil.copyfile(log, log.with_name("kern.log.1"))
    with open(log, "r+") as fh:
        fh.truncate(0)
    add(range(60200, 60230))
    rep = audit(cfg)
    assert rep.events == 50
    # compress the rotated files (new inodes, same content), append more
    for name in ("kern.log.1", "kern.log.2"):
        src = log.with_name(name)
        with open(src, "rb") as fin, gzip.open(str(src) + ".gz", "wb") as fout:
            shutil.copyfileobj(fin, fout)
        src.unlink()
    add(range(60230, 60240))
    rep = audit(cfg)
    assert rep.events == 10
    assert rep.ok, rep.problems
    assert_exactly(backend, written)


def test_mapping_failures_go_to_dead_letter(backend: Backend, tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    write_lines(log, range(61000, 61010))
    cfg = backend.config([log])
    audit(cfg)  # installs templates: source.ip is an ip field
    spool = Spool(tmp_path / "spool", 1 << 20)
    bad = Doc("resets", "bad-1", json.dumps({"@timestamp": "2026-11-24T10:00:00Z",
                                             "source": {"ip": "not-an-ip", "port": 1}}).encode())
    good = Doc("resets", "good-1", json.dumps({"@timestamp": "2026-11-24T10:00:00Z",
                                               "source": {"ip": "192.0.2.1", "port": 61010}}).encode())
    spool.append([bad, good])
    rep = audit(cfg)
    assert rep.sent.dead == 1 and spool.pending() == 0
    dead = [json.loads(x) for x in (tmp_path / "dead-letter.ndjson").read_text().splitlines()]
    assert [d["_id"] for d in dead] == ["bad-1"]
    assert "mapper_parsing_exception" in dead[0]["reason"] and dead[0]["status"] == 400
    assert dead[0]["document"]["source"]["ip"] == "not-an-ip"
    assert_exactly(backend, list(range(61000, 61011)))


def test_templates_and_mappings(backend: Backend, tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    write_lines(log, range(62000, 62003))
    rep = audit(backend.config([log]))
    assert rep.mode == ("alias" if backend.kind == "osmem" else "data_stream")
    mapping = backend.request("GET", f"/{backend.stream('resets')}/_mapping")
    props = next(iter(mapping.values()))["mappings"]["properties"]
    assert props["source"]["properties"]["ip"]["type"] == "ip"
    assert props["@timestamp"]["type"] == "date"
    assert props["event"]["properties"]["action"]["type"] == "keyword"


def test_fleet_aggregates_across_hosts(backend: Backend, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from auditor.cli import app

    for host in ("web-a", "web-b"):
        d = tmp_path / host
        d.mkdir()
        log = d / "kern.log"
        write_lines(log, range(63000, 63040))
        be = Backend(backend.url, backend.kind, backend.namespace, backend.proxy, d)
        cfg_path = be.config([log])
        cfg_path.write_text(cfg_path.read_text().replace('host = "web-test-1"', f'host = "{host}"'))
        rep = audit(cfg_path)
        assert rep.ok and rep.findings >= 1, (rep.problems, rep.notes)
    backend.docs("findings")  # refresh
    backend.docs("resets")
    env = {"AUDITOR_ES_NAMESPACE": backend.namespace, "AUDITOR_CONFIG": str(tmp_path / "none.toml")}
    (tmp_path / "none.toml").write_text("")
    res = CliRunner().invoke(app, ["fleet", "--es", backend.proxy.url, "--since", "48h", "--json"],
                             env=env)
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert rows["causes"] and all(c["hosts"] == 2 for c in rows["causes"])
    assert sorted(c["top_hosts"] for c in rows["causes"])[0] == ["web-a", "web-b"]
    assert sum(sum(c["trend"]) for c in rows["causes"]) == sum(c["resets"] for c in rows["causes"])
    # the resets per host: "web1" is the host name inside the log lines
    assert rows["hosts"] == [{"host": "web1", "events": 80, "actions": {"firewall-reject": 80}}]
    assert not [p for _, p, _ in backend.proxy.log if "/_search" in p and "size=" in p]


def test_snapshot_with_live_limits_and_cli(backend: Backend, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from auditor.cli import app

    log = tmp_path / "kern.log"
    write_lines(log, range(64000, 64010))
    cfg = backend.config([log])
    dry = CliRunner().invoke(app, ["audit", "--config", str(cfg), "--dry-run", "--json"], env={})
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["documents"]["resets"] == 10
    assert not (tmp_path / "state.json").exists() and backend.docs("resets") == []
    res = CliRunner().invoke(app, ["audit", "--config", str(cfg), "--json"], env={})
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["created"] >= 11 and out["dead_letter"] == 0
    snap = backend.docs("snapshot")
    assert len(snap) == 1
    body = snap[0]["auditor"]
    if "limits" not in {s["part"] for s in body.get("skipped", [])}:
        names = {lim["name"] for lim in body["limits"]}
        assert "net.netfilter.nf_conntrack_max" in names or "net.core.somaxconn" in names
    assert body["ruleset"].get("fingerprint") or body["ruleset"].get("skipped")
    assert_exactly(backend, list(range(64000, 64010)))
