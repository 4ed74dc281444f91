"""Lab scenario: the upstream keep-alive race, made reproducible by link latency.

nginx keeps idle upstream connections for 60 s; the upstream (a second nginx server
block) closes them after 1 s. Across a real network the upstream's FIN takes a while
to arrive, and a request nginx sends on the idle connection in that window meets a
closed socket: "upstream prematurely closed connection" or a reset, and a 502 for a
request nginx may not retry (POST). This kernel has no ``sch_netem``, so a small
relay in the server namespace stands in for the link: it forwards data, FIN and RST
each way ``DELAY`` seconds late. The client sends POSTs one at a time, each ``GAP``
seconds after the previous answer: the request leaves nginx before the upstream's
FIN arrives (GAP < 1 + DELAY) and reaches the upstream after it closed
(GAP + 2 * DELAY > 1), with DELAY to spare on both sides.
"""

from __future__ import annotations

import sys

from tests.lab.netlab import SERVER_IP
from tests.lab.scenarios import Ctx, Expect, scenario
from tests.lab.web import NginxSpec

DELAY = 0.2  # one-way latency of the emulated link, seconds
GAP = 0.9  # client pause between an answer and the next POST, seconds
POSTS = 8

RELAY_CODE = r"""
import socket, struct, sys, threading, time
lhost, lport, thost, tport, delay = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
LINGER0 = struct.pack("ii", 1, 0)
def reset(s):
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
        s.close()
    except OSError:
        pass
def pump(src, dst):
    # forward what src sends (data, then FIN or RST) to dst, each `delay` seconds late
    while True:
        try:
            data = src.recv(65536)
            kind = "data" if data else "fin"
        except OSError:
            kind = "rst"
        time.sleep(delay)
        try:
            if kind == "data":
                dst.sendall(data)
                continue
            if kind == "fin":
                dst.shutdown(socket.SHUT_WR)
            else:
                reset(dst)
        except OSError:
            reset(src)
        return
def handle(front):
    back = socket.create_connection((thost, tport))
    for a, b in ((front, back), (back, front)):
        threading.Thread(target=pump, args=(a, b), daemon=True).start()
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((lhost, lport))
ls.listen(64)
while True:
    conn, _ = ls.accept()
    handle(conn)
"""

POST_CODE = r"""
import json, socket, sys, time
host, count, gap = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
out = []
for i in range(count):
    body = b"order=%d" % i
    s = socket.create_connection((host, 80), timeout=5)
    s.sendall(b"POST /orders HTTP/1.1\r\nHost: shop\r\nContent-Length: %d\r\n"
              b"Connection: close\r\n\r\n%s" % (len(body), body))
    data = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    s.close()
    line = data.split(b"\r\n", 1)[0].split()
    out.append("status-" + line[1].decode() if len(line) > 1 else "no-answer")
    time.sleep(gap)
print(json.dumps(out))
"""

SERVERS = """
upstream orders {{ server 127.0.0.1:8085; keepalive 4; keepalive_timeout 60s; }}
server {{
    listen {port};
    location / {{
        proxy_pass http://orders;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }}
}}
server {{
    listen 127.0.0.2:8085;
    keepalive_timeout 1s;
    location / {{ return 200 "stored\\n"; }}
}}
"""


@scenario("keepalive-race", "upstream closes idle keep-alive connections after 1 s, nginx keeps "
          "them 60 s (a 0.2 s link)",
          Expect("upstream-keepalive-race", limit=("*keepalive_timeout*",),
                 mentions=("127.0.0.1:8085",)),
          host="orders-16.example.net")
def keepalive_race(ctx: Ctx) -> None:
    lab = ctx.lab
    lab.spawn(lab.srv, [sys.executable, "-c", RELAY_CODE, "127.0.0.1", "8085", "127.0.0.2",
                        "8085", str(DELAY)])
    lab.wait_port(lab.srv, 8085)
    ctx.start_nginx(NginxSpec(SERVERS.format(port=80), log_format="json"))
    ctx.mark()
    got = lab.python(lab.cli, POST_CODE, SERVER_IP, str(POSTS), str(GAP),
                     timeout=POSTS * (GAP + 6) + 30)
    ctx.collect()
    failed = sum(1 for s in got if s != "status-200")
    ctx.check(2 <= failed < POSTS, f"some POSTs fail, not all: {got}")
    error = ctx.text("error.log")
    ctx.check("upstream prematurely closed connection" in error
              or "(104: Connection reset by peer)" in error, "error.log names the upstream close")
