"""Fixtures for the Elasticsearch tests: a real server behind the fault-injecting proxy.

By default the server is osmem-server (in-memory OpenSearch API, no data streams),
started per test on a free 127.0.0.1 port and stopped by PID. With
``AUDITOR_TEST_ES_URL`` set, every test also runs (marker ``es_real``) against that
Elasticsearch, in a namespace of its own that is deleted afterwards; an API key may
be given in ``AUDITOR_TEST_ES_API_KEY``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.es.proxy import FaultProxy

ES_URL = os.environ.get("AUDITOR_TEST_ES_URL")
ES_KEY = os.environ.get("AUDITOR_TEST_ES_API_KEY")


def osmem_binary() -> str | None:
    try:
        from osmem_server import resolve_binary
    except ImportError:
        return None
    try:
        return str(resolve_binary())
    except Exception:
        return None


@dataclass
class Backend:
    url: str
    kind: str  # "osmem" | "es"
    namespace: str
    proxy: FaultProxy
    tmp: Path
    headers: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **self.headers})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def stream(self, kind: str) -> str:
        prefix = "metrics" if kind == "snapshot" else "logs"
        return f"{prefix}-auditor.{kind}-{self.namespace}"

    def docs(self, kind: str) -> list[dict[str, Any]]:
        """Every document of ``kind`` (``_id`` and ``_source``), after a refresh."""
        name = self.stream(kind)
        self.request("POST", f"/{name}/_refresh")
        res = self.request("POST", f"/{name}/_search",
                           {"size": 10000, "query": {"match_all": {}}, "track_total_hits": True})
        if res is None:
            return []
        hits = res["hits"]["hits"]
        assert res["hits"]["total"]["value"] == len(hits)
        return [{"_id": h["_id"], **h["_source"]} for h in hits]

    def ports(self) -> list[int]:
        return sorted(int(d["source"]["port"]) for d in self.docs("resets"))

    def config(self, inputs: list[Path], es_url: str | None = None, **extra: Any) -> Path:
        """A TOML configuration for one test; state, spool and dead letter under tmp."""
        lines = [
            'host = "web-test-1"',
            f'state = "{self.tmp / "state.json"}"',
            f'spool = "{self.tmp / "spool"}"',
            f'dead_letter = "{self.tmp / "dead-letter.ndjson"}"',
            'since = ""',
            f'spool_max_bytes = {extra.pop("spool_max_bytes", 64 << 20)}',
            "[elasticsearch]",
            f'hosts = ["{es_url or self.proxy.url}"]',
            f'namespace = "{self.namespace}"',
            "timeout = 5",
            "max_retries = 4",
            "backoff_initial = 0.02",
            "backoff_max = 0.1",
            f'bulk_docs = {extra.pop("bulk_docs", 500)}',
        ]
        if ES_KEY and self.kind == "es":
            lines.append(f'api_key = "{ES_KEY}"')
        for inp in inputs:
            lines += ["[[inputs]]", f'path = "{inp}"', 'type = "kernel"', f'name = "{inp.name}"']
        path = self.tmp / "auditor.toml"
        path.write_text("\n".join(lines) + "\n")
        return path


def _start_osmem() -> tuple[subprocess.Popen[str], str]:
    binary = osmem_binary()
    if binary is None:
        pytest.skip("osmem-server is not installed (pip install osmem-server)")
    proc = subprocess.Popen(
        [binary, "--addr", "127.0.0.1:0", "--no-ja", "--parent-pid", str(os.getpid())],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    ready = json.loads(proc.stdout.readline() or "{}")
    if "url" not in ready:
        proc.kill()
        proc.wait()
        pytest.fail("osmem-server did not start")
    return proc, str(ready["url"])


@pytest.fixture(params=["osmem", pytest.param("es", marks=pytest.mark.es_real)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    proc = None
    if request.param == "osmem":
        proc, url = _start_osmem()
        headers: dict[str, str] = {}
    else:
        if not ES_URL:
            pytest.skip("AUDITOR_TEST_ES_URL is not set")
        url = ES_URL.rstrip("/")
        headers = {"Authorization": f"ApiKey {ES_KEY}"} if ES_KEY else {}
    proxy = FaultProxy(url, rewrite=request.param == "osmem")
    ns = "t" + uuid.uuid4().hex[:10]
    be = Backend(url, request.param, ns, proxy, tmp_path, headers)
    try:
        yield be
    finally:
        proxy.stop()
        if proc is not None:
            proc.kill()  # by PID, our own child
            proc.wait()
        else:
            for kind in ("resets", "findings", "snapshot"):
                for path in (f"/_data_stream/{be.stream(kind)}", f"/{be.stream(kind)}*"):
                    with contextlib.suppress(Exception):
                        be.request("DELETE", path)


def stamp(ts: datetime) -> str:
    return f"{ts:%b} {ts.day:2d} {ts:%H:%M:%S}"


def reject_line(port: int, ts: datetime) -> str:
    """A netfilter REJECT kernel line; ``port`` (source.port) makes every line unique."""
    return (
        f"{stamp(ts)} web1 kernel: [{port}.000001] REJECT-IN: IN=eth0 OUT= "
        "MAC=00:11:22:33:44:55:66:77:88:99:aa:bb:08:00 SRC=192.0.2.10 DST=198.51.100.5 LEN=60 "
        f"TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=TCP SPT={port} DPT=443 WINDOW=64240 "
        "RES=0x00 SYN URGP=0\n"
    )


def write_lines(path: Path, ports: range | list[int], mode: str = "a") -> None:
    base = datetime.now() - timedelta(minutes=30)
    with open(path, mode) as fh:
        for port in ports:
            fh.write(reject_line(port, base + timedelta(seconds=port % 1000)))
            fh.write("Nov 24 10:00:00 web1 kernel: [1.0] eth0: link up, noise line\n")
