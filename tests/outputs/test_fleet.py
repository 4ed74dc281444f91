"""``auditor fleet`` against a server that answers what any host wrote (host names, causes)
or answers malformed aggregations: inert tables, strict JSON, one-line errors."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from auditor.sinks.text import inert
from tests.outputs.checks import raw_controls, shown, strict_json
from tests.outputs.clirun import Run, auditor

HOST = "[/x]\x1b]0;owned\x07web-1"
CAUSE = "[link=https://evil.example]conntrack[/link]\x1b[2J"


def answers(host: str = HOST, cause: str = CAUSE) -> dict[str, Any]:
    findings = {"aggregations": {"causes": {"buckets": [{
        "key": cause, "doc_count": 3, "hosts": {"value": 2},
        "top_hosts": {"buckets": [{"key": host, "doc_count": 2}, {"key": "web-2", "doc_count": 1}]},
        "resets": {"value": 42.0}, "title": {"buckets": [{"key": "<b>title</b>", "doc_count": 3}]},
        "trend": {"buckets": [{"key": 1, "doc_count": 1, "resets": {"value": v}} for v in (0, 5, 42)]},
    }]}}}
    resets = {"aggregations": {"hosts": {"buckets": [{
        "key": host, "doc_count": 7, "actions": {"buckets": [{"key": "[bold]rej[/]", "doc_count": 7}]},
    }]}}}
    return {"findings": findings, "resets": resets}


class Stub(ThreadingHTTPServer):
    answers: dict[str, Any]
    status: int = 200


class Handler(BaseHTTPRequestHandler):
    server: Stub

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        kind = "findings" if "findings" in self.path else "resets"
        body = json.dumps(self.server.answers[kind]).encode()
        if self.server.status != 200:
            body = json.dumps({"error": {"type": "security_exception", "reason": "no"},
                               "status": self.server.status}).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[Stub]:
    stub = Stub(("127.0.0.1", 0), Handler)
    stub.answers = answers()
    thread = threading.Thread(target=stub.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        stub.shutdown()
        stub.server_close()
        thread.join(5)


def fleet(stub: Stub, tmp_path: Path, *args: str, columns: int = 80) -> Run:
    empty = tmp_path / "none.toml"
    empty.write_text("")
    url = f"http://127.0.0.1:{stub.server_address[1]}"
    return auditor("fleet", "--es", url, *args, columns=columns, timeout=60,
                   env={"AUDITOR_CONFIG": str(empty)})


def test_fleet_table_renders_keys_inert(server: Stub, tmp_path: Path) -> None:
    for columns in (80, 300):
        run = fleet(server, tmp_path, columns=columns)
        assert run.code == 0, run.stderr
        assert not raw_controls(run.stdout) and not raw_controls(run.stderr)
        assert "Traceback" not in run.stderr
        if columns == 300:
            assert shown(inert(HOST), run.stdout) and shown(inert(CAUSE), run.stdout)
            assert "[bold]rej[/]" in run.stdout


def test_fleet_json_is_strict(server: Stub, tmp_path: Path) -> None:
    run = fleet(server, tmp_path, "--format", "json")
    assert run.code == 0, run.stderr
    doc = strict_json(run.out)
    assert isinstance(doc, dict)
    assert doc["causes"][0]["cause"] == CAUSE and doc["hosts"][0]["host"] == HOST
    assert "\x1b" not in run.stdout  # JSON escapes it: \u001b


@pytest.mark.parametrize(("path", "value", "named"), [
    (("findings", "aggregations", "causes", "buckets", 0, "hosts"), None, "hosts: missing"),
    (("findings", "aggregations", "causes", "buckets", 0, "resets", "value"), "many",
     "resets.value: expected"),
    (("resets", "aggregations", "hosts", "buckets", 0, "actions"), None, "actions: missing"),
    (("resets", "aggregations", "hosts", "buckets"), {"not": "a list"}, "buckets: expected list"),
    (("findings", "aggregations", "causes", "buckets", 0), "text", "buckets[0]: expected dict"),
])
def test_a_malformed_answer_is_a_one_line_error(
    server: Stub, tmp_path: Path, path: tuple[Any, ...], value: Any, named: str
) -> None:
    node = server.answers
    for step in path[:-1]:
        node = node[step]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    run = fleet(server, tmp_path)
    assert run.code == 2
    assert "Traceback" not in run.stderr
    lines = [x for x in run.stderr.splitlines() if x.strip()]
    flat = " ".join(x.strip() for x in lines)
    assert flat.startswith("auditor: error: Elasticsearch answer not understood")
    assert named in flat


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_are_named(server: Stub, tmp_path: Path, status: int) -> None:
    server.status = status
    run = fleet(server, tmp_path)
    assert run.code == 2 and "Traceback" not in run.stderr
    assert f"refused the credentials (HTTP {status}" in " ".join(run.stderr.split())
