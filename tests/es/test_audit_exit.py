"""A scheduled audit is honest in its exit status: refused documents, refused credentials,
an unreachable server and plain-http credentials are failures with a one-line reason."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from auditor.cli import app
from auditor.sinks.spool import Doc, Spool
from tests.es.conftest import Backend, write_lines


def run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return res.exit_code, res.stdout, res.stderr


def test_dead_lettered_documents_fail_the_run_with_their_count(
    backend: Backend, tmp_path: Path
) -> None:
    log = tmp_path / "kern.log"
    write_lines(log, range(45000, 45005))
    cfg = backend.config([log])
    code, _, err = run("audit", "--config", str(cfg))
    assert code == 0, err  # templates installed, everything delivered
    bad = {"@timestamp": "2026-11-24T10:00:00Z", "source": {"ip": "not-an-ip", "port": 1}}
    Spool(tmp_path / "spool", 1 << 20).append(
        [Doc("resets", f"bad-{i}", json.dumps(bad).encode()) for i in range(3)])
    code, _, err = run("audit", "--config", str(cfg))
    assert code == 1
    assert "refused 3 documents" in err and "dead-letter.ndjson" in err
    code, out, _ = run("audit", "--config", str(cfg), "--format", "json")
    assert code == 0 and json.loads(out)["dead_letter"] == 0  # the next clean run is a success


def test_refused_credentials_stop_at_once_and_lose_nothing(
    backend: Backend, tmp_path: Path
) -> None:
    log = tmp_path / "kern.log"
    write_lines(log, range(46000, 46010))
    cfg = backend.config([log])
    backend.proxy.add("status:401", path="/_component_template", times=100)
    code, _, err = run("audit", "--config", str(cfg))
    assert code == 3
    assert "refused the credentials (HTTP 401" in " ".join(err.split())
    assert backend.proxy.count("/_component_template") == 1  # not retried
    assert backend.proxy.count("/_bulk") == 0
    assert Spool(tmp_path / "spool", 1 << 20).pending() == 0  # nothing spooled
    backend.proxy.faults.clear()
    code, out, err = run("audit", "--config", str(cfg), "--format", "json")
    assert code == 0, err
    assert json.loads(out)["documents"].get("resets") == 10, out  # starts at the same place
    assert sorted(backend.ports()) == list(range(46000, 46010))


def test_403_is_named_as_a_credential_error(backend: Backend, tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    write_lines(log, range(46100, 46102))
    backend.proxy.add("status:403", path="/_component_template", times=100)
    code, _, err = run("audit", "--config", str(backend.config([log])))
    assert code == 3 and "HTTP 403" in err and "credentials" in err


def test_unreachable_server_shows_progress_then_a_clear_error(
    backend: Backend, tmp_path: Path
) -> None:
    log = tmp_path / "kern.log"
    write_lines(log, range(47000, 47004))
    cfg = backend.config([log])
    backend.proxy.down = True
    code, _, err = run("audit", "--config", str(cfg))
    assert code == 3
    flat = " ".join(err.split())
    for attempt in range(1, 5):  # max_retries = 4 in the test configuration
        assert f"retry {attempt} of 4" in flat
    assert "could not be reached after 4 retries" in flat
    assert "documents spooled" in flat and "auditor: error:" in flat


def test_credentials_over_plain_http_need_an_opt_in(backend: Backend, tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    write_lines(log, range(48000, 48003))
    cfg = backend.config([log])
    key = tmp_path / "es.key"
    key.write_text("a2V5OnNlY3JldA==\n")
    text = cfg.read_text().replace("[elasticsearch]", f'[elasticsearch]\napi_key_file = "{key}"')
    cfg.write_text(text)
    code, _, err = run("audit", "--config", str(cfg))
    assert code == 2 and "plain http://" in err and "allow_http_credentials" in err
    assert backend.proxy.log == []  # refused before any request
    code, _, err = run("audit", "--config", str(cfg), "--allow-http-credentials")
    assert code == 0, err
    # a dry run needs no credentials at all: a missing key file is no error
    key.unlink()
    code, out, err = run("audit", "--config", str(cfg), "--dry-run")
    assert code == 0, err
    assert "would ship" in out
    code, _, err = run("audit", "--config", str(cfg))
    assert code == 2 and "api_key_file" in err
