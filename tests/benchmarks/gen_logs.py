"""Generate large, realistic logs for the benchmarks (about 1% relevant lines).

    python -m tests.benchmarks.gen_logs --size 1G --out bench-data

Writes syslog.log (mixed daemons, netfilter/kernel lines among them),
nginx-error.log and nginx-access.log (combined). Deterministic (seeded).
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

NOISE = [
    "{host} systemd[1]: Started Session {n} of User app.",
    "{host} CRON[{pid}]: (root) CMD (   cd / && run-parts --report /etc/cron.hourly)",
    "{host} sshd[{pid}]: Accepted publickey for deploy from 198.51.100.{o} port {port} ssh2: ED25519 SHA256:abc",
    "{host} sshd[{pid}]: pam_unix(sshd:session): session opened for user deploy(uid=1000) by (uid=0)",
    "{host} kernel: [{up}] IPv6: ADDRCONF(NETDEV_CHANGE): veth{n}: link becomes ready",
    "{host} kernel: [{up}] neighbour: arp_cache: neighbor table overflow!",
    '{host} dockerd[{pid}]: time="2026-11-24T10:00:00Z" level=info msg="ignoring event" module=libcontainerd',
    "{host} app[{pid}]: GET /api/v1/items/{n} 200 12ms",
    "{host} systemd-logind[{pid}]: New session {n} of user deploy.",
    '{host} rsyslogd: [origin software="rsyslogd" swVersion="8.2302.0"] rsyslogd was HUPed',
]
RELEVANT = [
    "{host} kernel: [{up}] REJECT-443 IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 "
    "SRC=203.0.113.{o} DST=192.0.2.10 LEN=60 TOS=0x00 PREC=0x00 TTL=52 ID={n} DF PROTO=TCP "
    "SPT={port} DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0 ",
    "{host} kernel: [{up}] [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 "
    "SRC=198.51.100.{o} DST=192.0.2.10 LEN=40 TOS=0x00 PREC=0x00 TTL=244 ID={n} PROTO=TCP "
    "SPT={port} DPT=22 WINDOW=1024 RES=0x00 SYN URGP=0 ",
    "{host} kernel: [{up}] nf_conntrack: nf_conntrack: table full, dropping packet",
    "{host} kernel: [{up}] TCP: request_sock_TCP: Possible SYN flooding on port [::]:443. Sending cookies.",
]
ERR_NOISE = [
    '[error] {pid}#{pid}: *{n} open() "/var/www/html/favicon.ico" failed (2: No such file or directory), '
    'client: 198.51.100.{o}, server: example.org, request: "GET /favicon.ico HTTP/1.1", host: "example.org"',
    "[notice] {pid}#{pid}: *{n} client 198.51.100.{o} closed keepalive connection",
    "[warn] {pid}#{pid}: *{n} an upstream response is buffered to a temporary file /var/cache/nginx/{n} "
    'while reading upstream, client: 198.51.100.{o}, server: example.org, request: "GET /big HTTP/1.1"',
    "[info] {pid}#{pid}: *{n} client closed connection while waiting for request, client: 198.51.100.{o}",
]
ERR_RELEVANT = [
    "[error] {pid}#{pid}: *{n} recv() failed (104: Connection reset by peer) while reading response "
    'header from upstream, client: 203.0.113.{o}, server: example.org, request: "GET /api/{n} HTTP/1.1", '
    'upstream: "http://127.0.0.1:8080/api/{n}", host: "example.org"',
    "[error] {pid}#{pid}: *{n} upstream prematurely closed connection while reading response header from "
    'upstream, client: 203.0.113.{o}, server: example.org, request: "POST /upload HTTP/1.1", '
    'upstream: "http://127.0.0.1:8080/upload", host: "example.org"',
]


def _fill(tpl: str, rnd: random.Random) -> str:
    return tpl.format(
        host="web1",
        n=rnd.randrange(1, 10**6),
        pid=rnd.randrange(100, 65000),
        o=rnd.randrange(1, 255),
        port=rnd.randrange(1024, 65535),
        up=f"{rnd.uniform(1000, 900000):12.6f}",
    )


def _write(path: Path, size: int, line: Callable[[random.Random, datetime], str]) -> None:
    rnd = random.Random(path.name)
    t = datetime(2026, 11, 24, 0, 0, 0)
    written = 0
    with path.open("w", encoding="utf-8") as fh:
        while written < size:
            buf = []
            for _ in range(20000):
                t += timedelta(milliseconds=rnd.randrange(0, 20))
                buf.append(line(rnd, t))
            chunk = "\n".join(buf) + "\n"
            fh.write(chunk)
            written += len(chunk)


def syslog_line(rnd: random.Random, t: datetime, share: float = 0.01) -> str:
    """One syslog line; ``share`` of them relevant (netfilter LOG, conntrack, SYN flood)."""
    tpl = rnd.choice(RELEVANT) if rnd.random() < share else rnd.choice(NOISE)
    return t.strftime("%b %d %H:%M:%S ") + _fill(tpl, rnd)


def write_syslog(path: Path, size: int, share: float) -> None:
    """A syslog file of about ``size`` bytes with ``share`` relevant lines (bench_targets.py)."""
    _write(path, size, lambda rnd, t: syslog_line(rnd, t, share))


def error_line(rnd: random.Random, t: datetime) -> str:
    tpl = rnd.choice(ERR_RELEVANT) if rnd.random() < 0.01 else rnd.choice(ERR_NOISE)
    return t.strftime("%Y/%m/%d %H:%M:%S ") + _fill(tpl, rnd)


def access_line(rnd: random.Random, t: datetime) -> str:
    status = (
        rnd.choice((499, 502, 504, 444, 503))
        if rnd.random() < 0.01
        else rnd.choice((200, 200, 200, 304, 404, 301))
    )
    return (
        f"198.51.100.{rnd.randrange(1, 255)} - - [{t.strftime('%d/%b/%Y:%H:%M:%S')} +0000] "
        f'"GET /api/v1/items/{rnd.randrange(10**6)} HTTP/1.1" {status} {rnd.randrange(0, 50000)} '
        f'"https://example.org/" "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/133.0"'
    )


KINDS: dict[str, Callable[[random.Random, datetime], str]] = {
    "syslog.log": syslog_line,
    "nginx-error.log": error_line,
    "nginx-access.log": access_line,
}


def parse_size(text: str) -> int:
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(text[:-1]) * mult[text[-1].upper()]) if text[-1].upper() in mult else int(text)


def generate(out: Path, size: int) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, fn in KINDS.items():
        path = out / name
        if not path.exists() or abs(path.stat().st_size - size) > size // 50 + 65536:
            _write(path, size, fn)
        paths[name] = path
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", default="1G")
    ap.add_argument("--out", default="bench-data")
    args = ap.parse_args()
    for path in generate(Path(args.out), parse_size(args.size)).values():
        print(path, path.stat().st_size)


if __name__ == "__main__":
    main()
