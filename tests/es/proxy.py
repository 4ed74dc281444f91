"""Test-side HTTP proxy in front of a search server: header rewriting and fault injection.

The official Elasticsearch client sends ``application/vnd.elasticsearch+json;
compatible-with=N``, which osmem-server answers with 406; the proxy rewrites those
media types to plain JSON/NDJSON (the production client is not bent for the test
server). The same proxy injects faults on requests whose path contains a marker:

* ``reset``: real TCP RST (SO_LINGER 0) before anything is forwarded;
* ``reset-after``: forwarded (the server applies it), then RST instead of the answer;
* ``cut``: forwarded, then half of the answer is sent and the connection reset;
* ``status:429`` / ``status:503``: answered by the proxy, nothing forwarded;
* ``item429``: the second half of a bulk is withheld and answered 429 per item;
* ``delay:<s>``: forwarded after a pause;
* ``hold``: forwarded, then the answer waits until :meth:`FaultProxy.release`.

``down = True`` resets every new connection (an unreachable server).
``forward_bulk_every = N`` (benchmarks only) forwards one bulk request in N and
acknowledges the others itself (every item 201), to bound the test server's time.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

REWRITE = {
    b"application/vnd.elasticsearch+json": b"application/json",
    b"application/vnd.elasticsearch+x-ndjson": b"application/x-ndjson",
}


@dataclass
class Fault:
    action: str
    path: str = "/_bulk"
    skip: int = 0  # let this many matching requests pass first
    times: int = 1


def _rst(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        sock.close()


def _media(value: bytes) -> bytes:
    for vendor, plain in REWRITE.items():
        if value.strip().lower().startswith(vendor):
            return plain
    return value


class FaultProxy:
    """A threaded proxy on 127.0.0.1:<free port>; stop() closes it and every connection."""

    def __init__(self, upstream: str, rewrite: bool = True) -> None:
        parts = urlsplit(upstream)
        self.scheme = parts.scheme
        self.up_host = parts.hostname or "127.0.0.1"
        self.up_port = parts.port or (443 if parts.scheme == "https" else 80)
        self.rewrite = rewrite
        self.faults: list[Fault] = []
        self.log: list[tuple[str, str, str]] = []  # (method, path, what happened)
        self.down = False
        self.forward_bulk_every = 0
        self._bulks = 0
        self.held = threading.Event()
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._conns: list[socket.socket] = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    # -- control -----------------------------------------------------------------
    def add(self, action: str, path: str = "/_bulk", skip: int = 0, times: int = 1) -> None:
        with self._lock:
            self.faults.append(Fault(action, path, skip, times))

    def release(self) -> None:
        self._release.set()

    def count(self, path: str) -> int:
        return sum(1 for _, p, _ in self.log if path in p)

    def stop(self) -> None:
        self._stop = True
        self._release.set()
        with contextlib.suppress(OSError):  # wakes the accept() of the serving thread at once
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        for conn in list(self._conns):
            with contextlib.suppress(OSError):
                conn.close()
        self._thread.join(5)

    # -- serving -----------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            if self.down:
                _rst(conn)
                continue
            self._conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _pick(self, path: str) -> str | None:
        """Each fault lets ``skip`` matching requests pass (counted from when it was added)."""
        chosen = None
        with self._lock:
            for fault in self.faults:
                if fault.path not in path or fault.times <= 0:
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                elif chosen is None:
                    fault.times -= 1
                    chosen = fault.action
        return chosen

    def _upstream(self) -> http.client.HTTPConnection:
        if self.scheme == "https":
            import ssl

            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return http.client.HTTPSConnection(self.up_host, self.up_port, timeout=60, context=ctx)
        return http.client.HTTPConnection(self.up_host, self.up_port, timeout=60)

    def _handle(self, conn: socket.socket) -> None:
        up = self._upstream()
        reader = conn.makefile("rb")
        try:
            while not self._stop:
                line = reader.readline()
                if not line:
                    return
                method, path, _ = line.decode("latin-1").split(" ", 2)
                headers: list[tuple[str, bytes]] = []
                length = 0
                while True:
                    h = reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = h.partition(b":")
                    key = name.decode("latin-1").strip()
                    value = value.strip()
                    if self.rewrite and key.lower() in ("content-type", "accept"):
                        value = _media(value)
                    if key.lower() == "content-length":
                        length = int(value)
                    if key.lower() not in ("host", "connection", "content-length"):
                        headers.append((key, value))
                body = reader.read(length) if length else b""
                if not self._one(conn, up, method, path, headers, body):
                    return
        except (OSError, ValueError):
            return
        finally:
            up.close()
            with contextlib.suppress(OSError):
                conn.close()

    def _forward(self, up: http.client.HTTPConnection, method: str, path: str,
                 headers: list[tuple[str, bytes]], body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        up.putrequest(method, path, skip_accept_encoding=True)
        for key, value in headers:
            up.putheader(key, value)
        up.putheader("Content-Length", str(len(body)))
        up.endheaders(body)
        resp = up.getresponse()
        data = resp.read()
        keep = [(k, v) for k, v in resp.getheaders()
                if k.lower() not in ("content-length", "transfer-encoding", "connection")]
        return resp.status, keep, data

    @staticmethod
    def _answer(status: int, headers: list[tuple[str, str]], data: bytes) -> bytes:
        head = [f"HTTP/1.1 {status} {http.client.responses.get(status, 'X')}"]
        head += [f"{k}: {v}" for k, v in headers]
        head += [f"Content-Length: {len(data)}", "Connection: keep-alive", "", ""]
        return "\r\n".join(head).encode("latin-1") + data

    def _one(self, conn: socket.socket, up: http.client.HTTPConnection, method: str, path: str,
             headers: list[tuple[str, bytes]], body: bytes) -> bool:
        action = self._pick(path)
        self.log.append((method, path, action or "ok"))
        if action == "reset":
            _rst(conn)
            return False
        if action and action.startswith("status:"):
            status = int(action.split(":")[1])
            err = json.dumps({"error": {"type": "injected", "reason": f"injected {status}"},
                              "status": status}).encode()
            conn.sendall(self._answer(status, [("Content-Type", "application/json"),
                                               ("X-Elastic-Product", "Elasticsearch")], err))
            return True
        if self.forward_bulk_every and "/_bulk" in path and action is None:
            self._bulks += 1
            if self._bulks % self.forward_bulk_every:
                items = [{"create": {"status": 201, "result": "created"}}
                         for _ in range(body.count(b"\n") // 2)]
                data = json.dumps({"took": 0, "errors": False, "items": items}).encode()
                conn.sendall(self._answer(200, [("Content-Type", "application/json"),
                                                ("X-Elastic-Product", "Elasticsearch")], data))
                return True
        if action and action.startswith("delay:"):
            time.sleep(float(action.split(":")[1]))
        withheld = 0
        if action == "item429":
            lines = body.split(b"\n")
            pairs = [lines[i : i + 2] for i in range(0, len(lines) - 1, 2)]
            keep = len(pairs) // 2 or 1
            withheld = len(pairs) - keep
            body = b"\n".join(b"\n".join(p) for p in pairs[:keep]) + b"\n"
        status, resp_headers, data = self._forward(up, method, path, headers, body)
        if withheld:
            doc = json.loads(data)
            for _ in range(withheld):
                doc["items"].append({"create": {"status": 429, "error": {
                    "type": "es_rejected_execution_exception", "reason": "injected 429"}}})
            doc["errors"] = True
            data = json.dumps(doc).encode()
        if action == "hold":
            self.held.set()
            self._release.wait(60)
        if action == "reset-after":
            _rst(conn)
            return False
        out = self._answer(status, resp_headers, data)
        if action == "cut":
            conn.sendall(out[: len(out) - len(data) // 2])
            _rst(conn)
            return False
        conn.sendall(out)
        return True


def main() -> None:
    """``python -m tests.es.proxy UPSTREAM [N]``: serve until stdin closes; prints the URL."""
    import sys

    proxy = FaultProxy(sys.argv[1])
    if len(sys.argv) > 2:
        proxy.forward_bulk_every = int(sys.argv[2])
    print(proxy.url, flush=True)
    sys.stdin.read()
    proxy.stop()


if __name__ == "__main__":
    main()
