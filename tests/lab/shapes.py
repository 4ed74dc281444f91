"""Seeded incident shapes: one definition of a cause, many different incidents.

A *family* reproduces one cause (or a decoy, a healthy control, two causes at once);
its ``plan`` draws the shape from ``random.Random(f"{family}:{seed}")``: firewall
backend and chain structure, the port, IPv4 or IPv6, the client subnets, the nginx
access log format, and a :class:`tests.lab.world.World` (noise, rotation, zone, age,
host log style, bundle layout). ``run`` sets the incident up for real in the lab's
namespaces, drives bounded traffic, and says what diagnose must report (:class:`Want`);
:func:`capture` then dresses the capture and writes ``expected.json`` beside it.

The families are listed in :data:`FAMILIES`; which seeds tune and which are held out
is in :mod:`tests.lab.seeds`.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.lab.netlab import CLIENT_IP, SERVER_IP, Lab
from tests.lab.sc_keepalive import RELAY_CODE
from tests.lab.scenarios import Ctx, Expect, Scenario
from tests.lab.web import Nginx, NginxSpec
from tests.lab.world import LAYOUTS, Rec, World, dress, pick_world

SERVER6, CLIENT6 = "2001:db8:1::1", "2001:db8:1::2"
# extra client subnets: (v4 prefix, v6 prefix), each reached on-link through the veth
SUBNETS = (("198.51.100", "2001:db8:64"), ("203.0.113", "2001:db8:71"))
PORTS = (80, 443, 3000, 5000, 8000, 8080, 8443, 8888)
UP_PORTS = (5001, 7070, 8081, 9001, 9090)
HOSTS = ("web-01.example.com", "edge-2.example.net", "shop-7.example.org", "api-3.example.com",
         "lb-04.example.net", "app-12.example.org", "www.example.com", "gw-9.example.net")
NO_SOS = tuple(x for x in LAYOUTS if x != "sos")  # a sosreport holds no "before" counters


@dataclass
class Want:
    """What diagnose must report for one incident (see :class:`tests.lab.scenarios.Expect`);
    ``port`` is the port the clients used, ``port_arg`` whether the engineer would name it."""

    cause: str | None
    port: int | None = None
    also: tuple[str, ...] = ()
    rule: dict[str, Any] | None = None
    limit: tuple[str, ...] = ()
    mentions: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    port_arg: bool = True
    resets: int = 0  # connections the clients saw reset or refused by a RST
    records: list[Rec] = field(default_factory=list)  # host log lines of the incident


@dataclass(frozen=True)
class Family:
    name: str
    title: str
    classes: tuple[int, ...]  # the failure classes of issue 10 it exercises (0: none)
    plan: Callable[[random.Random], dict[str, Any]]
    run: Callable[[Ctx, dict[str, Any]], Want]
    layouts: tuple[str, ...] = LAYOUTS


FAMILIES: dict[str, Family] = {}


def family(name: str, title: str, classes: tuple[int, ...] = (0,),
           layouts: tuple[str, ...] = LAYOUTS) -> Callable[..., Any]:
    def deco(plan: Callable[[random.Random], dict[str, Any]]) -> Callable[..., Any]:
        def with_run(run: Callable[[Ctx, dict[str, Any]], Want]) -> Callable[..., Any]:
            FAMILIES[name] = Family(name, title, classes, plan, run, layouts)
            return run
        return with_run
    return deco


# -- the network around the incident ---------------------------------------------------
def sources(ctx: Ctx, kn: dict[str, Any]) -> list[str]:
    """Add IPv6 and the extra client subnets the shape asks for; the client addresses."""
    lab, v6 = ctx.lab, kn.get("v6", False)
    if v6:
        lab.sh(lab.srv, f"ip -6 addr add {SERVER6}/64 dev {lab.srv_if} nodad")
        lab.sh(lab.cli, f"ip -6 addr add {CLIENT6}/64 dev {lab.cli_if} nodad")
    out = [CLIENT6 if v6 else CLIENT_IP]
    for i in range(kn.get("subnets", 1) - 1):
        v4net, v6net = SUBNETS[i]
        host = 10 + 7 * i
        if v6:
            lab.sh(lab.cli, f"ip -6 addr add {v6net}::{host}/64 dev {lab.cli_if} nodad")
            lab.sh(lab.srv, f"ip -6 route add {v6net}::/64 dev {lab.srv_if}")
            out.append(f"{v6net}::{host}")
        else:
            lab.sh(lab.cli, f"ip addr add {v4net}.{host}/24 dev {lab.cli_if}")
            lab.sh(lab.srv, f"ip route add {v4net}.0/24 dev {lab.srv_if}")
            out.append(f"{v4net}.{host}")
    return out


SERVE_CODE = r"""
import socket, sys, threading, time
mode, port, arg, host = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
ls = socket.socket(fam)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if fam == socket.AF_INET6:
    ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
ls.bind((host, port))
ls.listen(int(arg) if mode == "slowaccept" else 128)
print("listening on %s:%d" % (host, port), flush=True)
def serve(c):
    try:
        c.settimeout(float(sys.argv[5]) if len(sys.argv) > 5 else 10)
        while True:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = c.recv(4096)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    need = int(line.split(b":")[1]) - len(body)
                    while need > 0:
                        chunk = c.recv(need)
                        if not chunk:
                            return
                        need -= len(chunk)
            if mode == "keepalive":
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nstored\n")
                continue
            size = int(arg) if mode == "slow" else 64
            if mode == "ok" and arg:
                time.sleep(arg)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % size)
            left = size
            while left > 0:
                c.sendall(b"x" * min(4096, left))
                left -= 4096
                if mode == "slow":
                    time.sleep(0.05)
            return
    except OSError:
        pass
    finally:
        c.close()
while True:
    conn, _ = ls.accept()
    if mode == "slowaccept":
        time.sleep(3600)
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""


def serve(ctx: Ctx, port: int, mode: str = "ok", arg: float = 0, host: str = "::",
          idle: float | None = None, log: Path | None = None) -> Any:
    """A small dual-stack HTTP server in the server namespace (modes ok, slow, keepalive)."""
    argv = [sys.executable, "-u", "-c", SERVE_CODE, mode, str(port), str(arg), host]
    if idle is not None:
        argv.append(str(idle))
    out = open(log, "a") if log else open(os.devnull, "w")  # noqa: SIM115 (the child owns it)
    proc = ctx.lab.spawn(ctx.lab.srv, argv, stdout=out, stderr=out)
    out.close()
    ctx.lab.wait_port(ctx.lab.srv, port)
    return proc


LOAD_CODE = r"""
import errno, json, socket, sys, time
from concurrent.futures import ThreadPoolExecutor
host, port, count, conc, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
srcs, hold, abort, gap = sys.argv[6].split(","), float(sys.argv[7]), sys.argv[8] == "1", float(sys.argv[9])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
def one(i):
    if gap:
        time.sleep(gap * (i // conc))
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.bind((srcs[i % len(srcs)], 0))
        s.connect((host, port))
        s.sendall(f"GET / HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n".encode())
        if hold:
            time.sleep(hold)
        if abort:
            return "aborted"
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        if not data:
            return "empty"
        head, _, body = data.partition(b"\r\n\r\n")
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:") and len(body) < int(line.split(b":")[1]):
                return "truncated"
        return "status-" + data.split(b" ", 2)[1].decode()
    except ConnectionResetError:
        return "reset"
    except ConnectionRefusedError:
        return "refused"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return errno.errorcode.get(e.errno, "oserror")
    finally:
        s.close()
with ThreadPoolExecutor(conc) as ex:
    out = list(ex.map(one, range(count)))
print(json.dumps(out))
"""


def load(ctx: Ctx, host: str, port: int, count: int, srcs: list[str], conc: int = 5,
         timeout: float = 3, hold: float = 0, abort: bool = False, gap: float = 0) -> dict[str, int]:
    """``count`` GETs from the client namespace, round-robin over ``srcs``; outcomes by kind."""
    got = ctx.lab.python(ctx.lab.cli, LOAD_CODE, host, str(port), str(count), str(conc),
                         str(timeout), ",".join(srcs), str(hold), str(int(abort)), str(gap),
                         timeout=count * (timeout + hold + gap) + 60)
    out: dict[str, int] = {}
    for g in got:
        out[g] = out.get(g, 0) + 1
    return out


def bystanders(ctx: Ctx, srcs: list[str], v6: bool = False) -> Any:
    """Unrelated real traffic during the incident: a service on 22 answers 6 clients."""
    serve(ctx, 22)
    host = SERVER6 if v6 else SERVER_IP
    return ctx.background(lambda: load(ctx, host, 22, 6, srcs[::-1], conc=1, gap=0.1))


# -- firewall rule sets ----------------------------------------------------------------
IPT_BACKENDS = ("iptables-nft", "iptables-legacy", "ufw", "docker")
NFT_BACKENDS = ("nftables", "firewalld")
LIMIT_CAUSE = {"reject": "firewall-reject", "hashlimit": "firewall-rate-limit",
               "recent": "firewall-rate-limit", "connlimit": "firewall-conn-limit"}


class Ipt:
    """An iptables script (one binary) that knows each rule's position in its chain."""

    def __init__(self, binary: str) -> None:
        self.bin, self.lines, self.pos = binary, [], {}  # type: ignore[var-annotated]

    def new(self, *chains: str, table: str = "filter") -> None:
        self.lines += [f"{self.bin} -t {table} -N {c}" for c in chains]

    def add(self, chain: str, spec: str, table: str = "filter") -> dict[str, Any]:
        n = self.pos[(table, chain)] = self.pos.get((table, chain), 0) + 1
        self.lines.append(f"{self.bin} -t {table} -A {chain} {spec}")
        return {"table": table, "chain": chain, "position": n}


DOCKER_FILTER = """-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 5432 -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
-A DOCKER-USER -j RETURN"""
DOCKER_NAT = """-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 5432 -j DNAT --to-destination 172.17.0.2:5432"""


def plan_firewall(rng: random.Random, conds: tuple[str, ...]) -> dict[str, Any]:
    backend = rng.choice(IPT_BACKENDS + NFT_BACKENDS)
    cond = rng.choice(("recent", "reject") if backend == "ufw" else conds)
    if backend == "ufw" and cond not in conds:
        cond = conds[0]
    if backend == "ufw" and cond not in ("recent", "reject"):
        backend = "iptables-nft"
    if backend in NFT_BACKENDS and cond == "recent":  # nftables has no `recent`: a rate limit
        cond = "hashlimit"
    return {"backend": backend, "cond": cond,
            "ipt": rng.choice(("nft", "legacy")),
            "structure": rng.choice(("direct-log", "direct", "jump-log", "jump")),
            "per_source": rng.random() < 0.5, "portset": rng.random() < 0.4,
            "reject_with": rng.choice(("tcp-reset", "tcp-reset", "icmp")),
            "port": rng.choice(PORTS), "v6": backend != "docker" and rng.random() < 0.35,
            "subnets": rng.choice((1, 1, 2, 3)), "tag": rng.choice(("fw", "edge", "guard"))}


def ipt_rules(kn: dict[str, Any]) -> tuple[Ipt, dict[str, Any], str | None]:
    """(script, the rule diagnose must name, LOG prefix or None) for an iptables shape."""
    v6, p, cond, st = kn["v6"], kn["port"], kn["cond"], kn["structure"]
    backend = kn["backend"]
    flavour = "legacy" if backend == "iptables-legacy" else (
        "nft" if backend == "iptables-nft" else kn["ipt"])
    ipt = Ipt(f"{'ip6tables' if v6 else 'iptables'}-{flavour}")
    icmp = "icmp6-port-unreachable" if v6 else "icmp-port-unreachable"
    reject = ("REJECT --reject-with tcp-reset" if kn["reject_with"] == "tcp-reset"
              else f"REJECT --reject-with {icmp}")
    prefix = f"{kn['tag']}-{p}: " if st.endswith("log") else None
    if backend == "ufw":
        u = "ufw6" if v6 else "ufw"
        ipt.new(f"{u}-before-input", f"{u}-user-input", f"{u}-user-limit",
                f"{u}-user-limit-accept", f"{u}-after-input")
        ipt.add("INPUT", f"-j {u}-before-input")
        ipt.add("INPUT", f"-j {u}-after-input")
        ipt.add(f"{u}-before-input", "-i lo -j ACCEPT")
        ipt.add(f"{u}-before-input", "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
        ipt.add(f"{u}-before-input", f"-j {u}-user-input")
        ipt.add(f"{u}-user-input", "-p tcp --dport 22 -j ACCEPT")
        chain = f"{u}-user-input"
        if cond == "recent":
            ipt.add(chain, f"-p tcp --dport {p} -m conntrack --ctstate NEW -m recent --set "
                           "--name DEFAULT --mask 255.255.255.255 --rsource"
                           if not v6 else f"-p tcp --dport {p} -m conntrack --ctstate NEW "
                           "-m recent --set --name DEFAULT --rsource")
            want = ipt.add(chain, f"-p tcp --dport {p} -m conntrack --ctstate NEW -m recent "
                                  "--update --seconds 30 --hitcount 6 --name DEFAULT --rsource "
                                  f"-j {u}-user-limit")
            ipt.add(chain, f"-p tcp --dport {p} -j {u}-user-limit-accept")
            prefix = "[UFW LIMIT BLOCK] "
            ipt.add(f"{u}-user-limit", f'-m limit --limit 3/min -j LOG --log-prefix "{prefix}"')
            ipt.add(f"{u}-user-limit", "-j REJECT")
            ipt.add(f"{u}-user-limit-accept", "-j ACCEPT")
            kn["reject_with"] = "icmp"
        else:
            if prefix:
                prefix = "[UFW REJECT] "
                ipt.add(chain, f'-p tcp --dport {p} -m limit --limit 3/min --limit-burst 10 '
                               f'-j LOG --log-prefix "{prefix}"')
            want = ipt.add(chain, f"-p tcp --dport {p} -j {reject}")
        return ipt, want, prefix
    if backend == "docker":
        ipt.new("DOCKER", "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2", "DOCKER-USER")
        ipt.new("DOCKER", table="nat")
        for line in DOCKER_FILTER.splitlines():
            ipt.add(line.split()[1], line.split(None, 2)[2])
        for line in DOCKER_NAT.splitlines():
            ipt.add(line.split()[1], line.split(None, 2)[2], table="nat")
    ipt.add("INPUT", "-i lo -j ACCEPT")
    ipt.add("INPUT", "-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT")
    ipt.add("INPUT", "-p tcp --dport 22 -j ACCEPT")
    chain = "INPUT"
    if cond == "reject":
        if st.startswith("jump"):
            ipt.new(f"{kn['tag']}-in")
            ipt.add("INPUT", f"-p tcp -j {kn['tag']}-in")
            chain = f"{kn['tag']}-in"
            ipt.add(chain, "-p tcp --dport 9443 -j ACCEPT")
        if prefix:
            ipt.add(chain, f'-p tcp --dport {p} -j LOG --log-prefix "{prefix}"')
        return ipt, ipt.add(chain, f"-p tcp --dport {p} -j {reject}"), prefix
    match = {
        "hashlimit": f"-p tcp --syn --dport {p} -m hashlimit --hashlimit-above 5/sec "
                     f"--hashlimit-burst 5 --hashlimit-mode srcip --hashlimit-name h{p}",
        "connlimit": f"-p tcp --syn --dport {p} -m connlimit --connlimit-above 4 "
                     + ("--connlimit-mask 0" if not kn["per_source"] else ""),
        "recent": f"-p tcp --syn --dport {p} -m recent --update --seconds 30 --hitcount 6 "
                  f"--name r{p} --rsource",
    }[cond]
    if cond == "recent":
        ipt.add(chain, f"-p tcp --syn --dport {p} -m recent --set --name r{p} --rsource")
    if st.startswith("jump"):
        child = f"{kn['tag'].upper()}-LIMIT"
        ipt.new(child)
        want = ipt.add(chain, f"{match} -j {child}")
        if prefix:
            ipt.add(child, f'-m limit --limit 30/min --limit-burst 10 -j LOG --log-prefix "{prefix}"')
        ipt.add(child, f"-p tcp -j {reject}")
        return ipt, want, prefix
    if prefix:
        log_match = (match.replace(f"--hashlimit-name h{p}", f"--hashlimit-name l{p}")
                     .replace("--update", "--rcheck"))
        ipt.add(chain, f'{log_match} -j LOG --log-prefix "{prefix}"')
    return ipt, ipt.add(chain, f"{match} -j {reject}"), prefix


def nft_rules(kn: dict[str, Any]) -> tuple[str, tuple[str, str, str], str | None]:
    """(ruleset text, (table, chain, needle of the rule to name), LOG prefix) for nftables."""
    v6, p, cond, st = kn["v6"], kn["port"], kn["cond"], kn["structure"]
    ip, addr = ("ip6", "ipv6_addr") if v6 else ("ip", "ipv4_addr")
    prefix = f"{kn['tag']}-{p}: " if st.endswith("log") else None
    reject = ("reject with tcp reset" if kn["reject_with"] == "tcp-reset"
              else "reject with icmpx type port-unreachable")
    src = "ct state new"
    if cond == "hashlimit":
        lim = (f"add @rl {{ {ip} saddr limit rate over 5/second burst 5 packets }}"
               if kn["per_source"] else "limit rate over 5/second burst 5 packets")
    elif cond == "connlimit":
        lim = (f"add @cl {{ {ip} saddr ct count over 4 }}" if kn["per_source"]
               else "ct count over 4")
    else:
        lim = ""
    sets = (f"  set rl {{ type {addr}; size 65535; flags dynamic; timeout 1m; }}\n"
            f"  set cl {{ type {addr}; size 65535; flags dynamic; }}\n"
            f"  set svc {{ type inet_service; elements = {{ {p}, 9443 }}; }}\n")
    dport = "tcp dport @svc" if kn["portset"] else f"tcp dport {p}"
    log = f'log prefix "{prefix}" ' if prefix else ""
    jump = st.startswith("jump")
    if kn["backend"] == "firewalld":
        table, chain = "firewalld", "filter_IN_public_deny"
        body = (f"{dport} {src} {lim} counter {'jump over_limit' if jump else log + reject}"
                if lim else f"{dport} counter {log}{reject}")
        child = (f"  chain over_limit {{\n    {'limit rate 10/minute ' + log if log else ''}"
                 f"counter\n    {reject}\n  }}\n") if jump and lim else ""
        text = f"""table inet firewalld {{
{sets}{child}  chain filter_INPUT {{
    type filter hook input priority filter + 10; policy accept;
    ct state {{ established, related }} accept
    ct status dnat accept
    iifname "lo" accept
    jump filter_INPUT_ZONES
    ct state invalid drop
    reject with icmpx type admin-prohibited
  }}
  chain filter_INPUT_ZONES {{
    goto filter_IN_public
  }}
  chain filter_IN_public {{
    jump filter_IN_public_pre
    jump filter_IN_public_log
    jump filter_IN_public_deny
    jump filter_IN_public_allow
    jump filter_IN_public_post
    meta l4proto {{ icmp, ipv6-icmp }} accept
  }}
  chain filter_IN_public_pre {{
  }}
  chain filter_IN_public_log {{
  }}
  chain filter_IN_public_deny {{
    {body}
  }}
  chain filter_IN_public_allow {{
    tcp dport 22 accept
    ip6 daddr fe80::/64 udp dport 546 accept
    tcp dport {p} accept
  }}
  chain filter_IN_public_post {{
  }}
}}
"""
        needle = "limit rate over" if "limit" in lim else ("ct count" if lim else "reject")
        return text, (table, chain, needle), prefix
    table = kn["tag"]
    rules = ["iifname \"lo\" accept", "ct state established,related accept", "tcp dport 22 accept"]
    child_rules: list[str] = []
    chain = "input"
    if jump and not lim:  # the port's traffic goes to its own chain, which rejects
        rules.append(f"tcp dport vmap {{ {p} : jump web_in, 9443 : accept }}" if kn["portset"]
                     else f"{dport} jump web_in")
        child_rules = [f"counter {log}{reject}"]
        chain, needle = "web_in", "reject"
    elif jump:
        rules.append(f"{dport} {src} {lim} counter jump over_limit")
        child_rules = [f"limit rate 10/minute {log}".strip() if log else "counter", reject]
        needle = "jump over_limit"
    elif lim:
        rules.append(f"{dport} {src} {lim} counter {log}{reject}")
        needle = "reject"
    else:
        rules.append(f"{dport} counter {log}{reject}")
        needle = "reject"
    child_name = "web_in" if (jump and not lim) else "over_limit"
    child = ("  chain " + child_name + " {\n" + "".join(f"    {r}\n" for r in child_rules)
             + "  }\n") if child_rules else ""
    text = (f"table inet {table} {{\n{sets}{child}  chain input {{\n"
            "    type filter hook input priority filter; policy accept;\n"
            + "".join(f"    {r}\n" for r in rules) + "  }\n}\n")
    return text, (table, chain, needle), prefix


def firewall(ctx: Ctx, kn: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Load the shape's rule set in the server namespace; (rule to name, LOG prefix)."""
    if kn["backend"] in NFT_BACKENDS:
        text, (table, chain, needle), prefix = nft_rules(kn)
        (ctx.work / "rules.nft").write_text(text)
        ctx.srv(f"nft -f {ctx.work}/rules.nft")
        listing = ctx.srv(f"nft -a list chain inet {table} {chain}")
        line = next(ln for ln in listing.splitlines() if needle in ln and "# handle" in ln)
        return {"backend": "nftables", "table": table, "chain": chain,
                "handle": int(line.rsplit("# handle ", 1)[1].split()[0])}, prefix
    ipt, want, prefix = ipt_rules(kn)
    ctx.srv("\n".join(ipt.lines))
    return want, prefix


def fw_traffic(ctx: Ctx, kn: dict[str, Any], srcs: list[str]) -> dict[str, int]:
    host, p, n = (SERVER6 if kn["v6"] else SERVER_IP), kn["port"], len(srcs)
    cond = kn["cond"]
    if cond == "connlimit":
        return load(ctx, host, p, 8 * n, srcs, conc=8 * n, timeout=4)
    if cond == "recent":
        return load(ctx, host, p, 10 * n, srcs, conc=n)
    return load(ctx, host, p, 20 if cond == "reject" else 14 * n, srcs, conc=5 if cond == "reject"
                else 8)


def rule_saves(ctx: Ctx) -> dict[str, str]:
    """What ``auditor collect`` and sos save of the rule sets, as ``raw/`` files."""
    out = {}
    for name, cmd in (("iptables-nft-save.txt", "iptables-nft-save -c"),
                      ("iptables-legacy-save.txt", "iptables-legacy-save -c"),
                      ("ip6tables-nft-save.txt", "ip6tables-nft-save -c"),
                      ("ip6tables-legacy-save.txt", "ip6tables-legacy-save -c"),
                      ("nft.txt", "nft -a list ruleset")):
        out[f"raw/{name}"] = ctx.lab.sh(ctx.lab.srv, f"{cmd} 2>/dev/null || true", check=False)
    return out


def fw_collect(ctx: Ctx, kn: dict[str, Any], extra: dict[str, str] | None = None) -> None:
    """Collect, with ``iptables-save.txt`` as the host's own ``iptables-save`` prints it."""
    raw = rule_saves(ctx)
    legacy = kn.get("backend") == "iptables-legacy" or (
        kn.get("backend") in ("ufw", "docker") and kn.get("ipt") == "legacy")
    flavour = "legacy" if legacy else "nft"
    plain = {"iptables-save.txt": raw[f"raw/iptables-{flavour}-save.txt"],
             "ip6tables-save.txt": raw[f"raw/ip6tables-{flavour}-save.txt"]}
    (ctx.out / "raw").mkdir(parents=True, exist_ok=True)
    ctx.collect(extra={**raw, **plain, **(extra or {})})


def _fw_want(kn: dict[str, Any], rule: dict[str, Any]) -> Want:
    icmp = kn["reject_with"] != "tcp-reset"
    return Want(LIMIT_CAUSE[kn["cond"]], kn["port"], rule=rule,
                mentions=("port-unreachable",) if icmp else (),
                absent=("firewall-reject",) if kn["cond"] != "reject" else ())


def _fw_check(ctx: Ctx, got: dict[str, int], least: int) -> None:
    ctx.check(got.get("refused", 0) + got.get("reset", 0) >= least,
              f"at least {least} connections refused: {got}")


@family("fw-limit", "a rate or connection limit (hashlimit, connlimit, recent, nft limit/ct count, "
        "UFW limit) rejects, directly or through a jump, on any backend", classes=(1,))
def plan_fw_limit(rng: random.Random) -> dict[str, Any]:
    return plan_firewall(rng, ("hashlimit", "connlimit", "recent"))


@plan_fw_limit
def run_fw_limit(ctx: Ctx, kn: dict[str, Any]) -> Want:
    srcs = sources(ctx, kn)
    serve(ctx, kn["port"], *(("slow", 48_000) if kn["cond"] == "connlimit" else ("ok", 0)))
    rule, prefix = firewall(ctx, kn)
    ctx.mark()
    side = bystanders(ctx, srcs, kn["v6"])
    got = fw_traffic(ctx, kn, srcs)
    side.result()
    fw_collect(ctx, kn)
    _fw_check(ctx, got, 3)
    if prefix:
        ctx.check(prefix in ctx.text("kern.log"), f"LOG lines {prefix!r} in kern.log")
    want = _fw_want(kn, rule)
    if kn["reject_with"] == "tcp-reset":
        want.resets = got.get("refused", 0) + got.get("reset", 0)
    return want


@family("fw-reject", "a REJECT for the port (direct, in a user chain, nft set or vmap), logged "
        "or not, on any backend", classes=(0,))
def plan_fw_reject(rng: random.Random) -> dict[str, Any]:
    return plan_firewall(rng, ("reject",))


@plan_fw_reject
def run_fw_reject(ctx: Ctx, kn: dict[str, Any]) -> Want:
    return run_fw_limit(ctx, kn)


# -- kernel listen queues --------------------------------------------------------------
def decoy_reject(ctx: Ctx, port: int) -> None:
    """A REJECT on another port whose counters moved long before the window (no LOG)."""
    ctx.srv(f"iptables -A INPUT -p tcp --dport {port} -j REJECT --reject-with tcp-reset")
    load(ctx, SERVER_IP, port, 5, [CLIENT_IP], conc=5)


@family("overflow", "accept queue overflow of a small backlog that is not drained, "
        "tcp_abort_on_overflow=1 (the kernel may also warn of SYN flooding)", classes=(2,),
        layouts=NO_SOS)
def plan_overflow(rng: random.Random) -> dict[str, Any]:
    return {"port": rng.choice((5000, 7000, 8080, 9000, 3000)), "backlog": rng.choice((8, 16)),
            "late": rng.choice((12, 16)), "decoy": rng.random() < 0.5,
            "decoy_port": rng.choice((9999, 2525, 6379)), "subnets": rng.choice((1, 2))}


@plan_overflow
def run_overflow(ctx: Ctx, kn: dict[str, Any]) -> Want:
    p, backlog = kn["port"], kn["backlog"]
    srcs = sources(ctx, kn)
    ctx.lab.unthrottle_kernel_log()
    ctx.srv("sysctl -qw net.ipv4.tcp_abort_on_overflow=1")
    if kn["decoy"]:
        decoy_reject(ctx, kn["decoy_port"])
    serve(ctx, p, "slowaccept", backlog)
    load(ctx, SERVER_IP, p, 1, srcs[:1], conc=1, abort=True)  # the one it accepts, then stalls
    ctx.lab.sh(ctx.lab.cli, f"iptables -A OUTPUT -p tcp --dport {p} "
               "--tcp-flags SYN,ACK,FIN,RST,PSH ACK -j DROP")
    ctx.mark()
    late = ctx.background(lambda: ctx.lab.http_load(f"http://{SERVER_IP}:{p}/", kn["late"],
                                                    concurrency=kn["late"], timeout=2, pause=1.0))
    time.sleep(0.3)
    fill = load(ctx, SERVER_IP, p, backlog + 1, srcs, conc=1, abort=True)
    got = late.result()
    fw_collect(ctx, {})
    ctx.check(fill.get("aborted", 0) == backlog + 1, f"the queue filled: {fill}")
    ctx.check(got["reset"] >= kn["late"] // 2, f"the late handshakes are reset: {dict(got)}")
    ctx.check(ctx.delta("TcpExtListenOverflows") >= 6, "ListenOverflows moved")
    return Want("listen-queue-overflow", p, limit=("*backlog*", "*somaxconn*",
                                                   "*abort_on_overflow*"),
                absent=("syn-flood",), resets=got["reset"])


@family("synflood", "half-open SYN flood on nginx with a small backlog, syncookies off",
        classes=(2,))
def plan_synflood(rng: random.Random) -> dict[str, Any]:
    return {"port": rng.choice((80, 8080, 8000, 443)), "backlog": rng.choice((8, 16)),
            "fmt": rng.choice(("combined", "json", "custom"))}


@plan_synflood
def run_synflood(ctx: Ctx, kn: dict[str, Any]) -> Want:
    p = kn["port"]
    ctx.lab.unthrottle_kernel_log()
    # Without cookies the kernel drops SYNs silently once the SYN queue holds more than 3/4 of
    # tcp_max_syn_backlog; it says "Possible SYN flooding" only when the listener's own
    # backlog fills first, so tcp_max_syn_backlog stays above 4/3 of the largest backlog.
    ctx.srv("sysctl -qw net.ipv4.tcp_syncookies=0 && sysctl -qw net.ipv4.tcp_max_syn_backlog=64")
    ctx.lab.sh(ctx.lab.cli, f"ip addr add 192.0.2.3/24 dev {ctx.lab.cli_if} && iptables -A INPUT "
               f"-d {CLIENT_IP} -p tcp --sport {p} --tcp-flags SYN,ACK SYN,ACK -j DROP")
    serve(ctx, 9191, host="127.0.0.1")
    ctx.start_nginx(NginxSpec(f"server {{ listen {p} backlog={kn['backlog']}; location / {{ "
                              "proxy_pass http://127.0.0.1:9191; } }", log_format=kn["fmt"]), p)
    ctx.mark()
    flood = ctx.background(lambda: load(ctx, SERVER_IP, p, 40, [CLIENT_IP], conc=40))
    time.sleep(0.5)
    legit = load(ctx, SERVER_IP, p, 10, ["192.0.2.3"], conc=5, timeout=1.5)
    flood.result()
    fw_collect(ctx, {})
    ctx.check(legit.get("timeout", 0) >= 5, f"legitimate clients time out: {legit}")
    ctx.check("Possible SYN flooding on port" in ctx.text("kern.log"), "SYN flooding in kern.log")
    return Want("syn-flood", p, limit=("*syn_backlog*", "*backlog*", "*somaxconn*"))


# -- nginx and its upstreams -----------------------------------------------------------
FORMATS = {  # access log formats declared in the configuration (nginx -T holds them)
    "pipes": "log_format edge '$remote_addr|[$time_local]|$request|$status|$body_bytes_sent|"
             "$upstream_addr|$upstream_status|$request_time';",
    "keyval": "log_format kv '$time_iso8601 client=$remote_addr req=\"$request\" "
              "status=$status bytes=$body_bytes_sent up=$upstream_addr ustatus=$upstream_status "
              "rt=$request_time';",
}


class LimitedNginx(Nginx):
    """nginx started under ``prlimit --nofile=N:N``, as a unit's ``LimitNOFILE=N`` would."""

    def __init__(self, lab: Lab, work: Path, spec: NginxSpec, nofile: int) -> None:
        super().__init__(lab, work, spec)
        self.nofile = nofile

    def start(self, port: int = 80) -> None:
        started = self._starts()
        self.proc = self.lab.spawn(self.lab.srv, ["prlimit", f"--nofile={self.nofile}:{self.nofile}",
                                                  "nginx", "-c", str(self.conf), "-g", "daemon off;"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   env={**os.environ, "TZ": "UTC"})
        self.lab.wait_port(self.lab.srv, port)
        deadline = time.monotonic() + 10
        while self._starts() <= started and time.monotonic() < deadline:
            time.sleep(0.05)


def nginx_site(ctx: Ctx, kn: dict[str, Any], upstream_block: str, location: str,
               http: str = "", nofile: int | None = None, **spec: Any) -> None:
    """nginx listening on the shape's port with its access log format."""
    fmt, p = kn.get("fmt", "combined"), kn["port"]
    access = ""
    if fmt in FORMATS:
        name = FORMATS[fmt].split()[1]
        access = f"access_log {ctx.work}/nginx/logs/access.log {name};"
        http = FORMATS[fmt] + "\n    " + http
    listen = f"listen {p};" + (f" listen [::]:{p};" if kn.get("v6") else "")
    servers = f"{upstream_block}\nserver {{\n    {listen}\n    server_name shop.example.com;\n" \
              f"    {access}\n    {location}\n}}"
    full = NginxSpec(servers, http=http, log_format=fmt if fmt not in FORMATS else "combined",
                     **spec)
    if nofile is None:
        ctx.start_nginx(full, p)
        return
    ctx.nginx = LimitedNginx(ctx.lab, ctx.work, full, nofile)
    ctx.nginx.start(p)


def plan_web(rng: random.Random) -> dict[str, Any]:
    up = rng.choice(UP_PORTS)
    return {"port": rng.choice(tuple(x for x in PORTS if x != 443)), "up": up,
            "fmt": rng.choice(("combined", "custom", "json", "pipes", "keyval")),
            "subnets": rng.choice((1, 2, 3)), "named": rng.random() < 0.5,
            "v6": rng.random() < 0.3}


def front(kn: dict[str, Any]) -> str:
    """The server address the shape's clients call."""
    return SERVER6 if kn.get("v6") else SERVER_IP


def _upstream(kn: dict[str, Any], keepalive: str = "") -> tuple[str, str]:
    if kn["named"] or keepalive:
        return (f"upstream app {{ server 127.0.0.1:{kn['up']}; {keepalive} }}",
                "location / { proxy_pass http://app; proxy_http_version 1.1; "
                "proxy_set_header Connection \"\"; }")
    return "", f"location / {{ proxy_pass http://127.0.0.1:{kn['up']}; }}"


@family("up-reset", "the upstream resets each request (SO_LINGER 0) behind the port clients use, "
        "access log in a declared format", classes=(3, 4))
def plan_up_reset(rng: random.Random) -> dict[str, Any]:
    return plan_web(rng)


@plan_up_reset
def run_up_reset(ctx: Ctx, kn: dict[str, Any]) -> Want:
    from tests.lab.web import upstream

    srcs = sources(ctx, kn)
    upstream(ctx.lab, kn["up"], "linger0")
    nginx_site(ctx, kn, *_upstream(kn))
    ctx.mark()
    got = load(ctx, front(kn), kn["port"], 20, srcs, conc=5)
    fw_collect(ctx, {})
    ctx.check(got.get("status-502", 0) == 20, f"all 502: {got}")
    return Want("upstream-reset", kn["port"], mentions=(f"127.0.0.1:{kn['up']}",))


@family("client-abort", "clients give up on a slow upstream (499) on the port they use, "
        "access log in a declared format", classes=(3, 4))
def plan_client_abort(rng: random.Random) -> dict[str, Any]:
    return plan_web(rng)


@plan_client_abort
def run_client_abort(ctx: Ctx, kn: dict[str, Any]) -> Want:
    srcs = sources(ctx, kn)
    serve(ctx, kn["up"], "ok", 2.0, host="127.0.0.1")
    nginx_site(ctx, kn, *_upstream(kn), error_level="info")
    ctx.mark()
    got = load(ctx, front(kn), kn["port"], 12, srcs, conc=12, hold=0.3, abort=True)
    time.sleep(0.5)
    fw_collect(ctx, {})
    ctx.check(got.get("aborted", 0) == 12, f"clients aborted: {got}")
    ctx.check("499" in ctx.text("access.log"), "499 in access.log")
    return Want("client-abort", kn["port"])


KA_CLIENT = r"""
import json, socket, sys, time
host, port, methods, gap = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
out = []
for i, m in enumerate(methods):
    body = b"order=%d" % i if m == "P" else b""
    verb = b"POST /orders" if m == "P" else b"GET /orders/%d" % i
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(verb + b" HTTP/1.1\r\nHost: shop\r\nContent-Length: %d\r\n"
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
    out.append(m + ("status-" + line[1].decode() if len(line) > 1 else "no-answer"))
    time.sleep(gap)
print(json.dumps(out))
"""


@family("ka-race", "a Python backend closes idle keep-alive connections after 1 s, nginx keeps "
        "them 60 s (0.2 s link): POSTs fail after idle gaps, GETs are retried", classes=(3, 5))
def plan_ka_race(rng: random.Random) -> dict[str, Any]:
    kn = plan_web(rng)
    methods = "".join(rng.choice("PPPG") for _ in range(5))
    if "P" not in methods[1:]:  # nginx retries GETs: the race shows only on a later POST
        methods = methods[:4] + "P"
    kn["methods"] = methods
    return kn


@plan_ka_race
def run_ka_race(ctx: Ctx, kn: dict[str, Any]) -> Want:
    lab, up = ctx.lab, kn["up"]
    sources(ctx, kn)  # the client's IPv6 address; its requests leave from its own address
    serve(ctx, up, "keepalive", host="127.0.0.2", idle=1.0)
    lab.spawn(lab.srv, [sys.executable, "-c", RELAY_CODE, "127.0.0.1", str(up), "127.0.0.2",
                        str(up), "0.2"])
    lab.wait_port(lab.srv, up)
    nginx_site(ctx, kn, *_upstream(kn, "keepalive 4; keepalive_timeout 60s;"))
    ctx.mark()
    got = lab.python(lab.cli, KA_CLIENT, front(kn), str(kn["port"]), kn["methods"], "0.9",
                     timeout=90)
    fw_collect(ctx, {})
    failed = [g for g in got if not g.endswith("status-200")]
    ctx.check(1 <= len(failed) < len(got), f"some requests fail, not all: {got}")
    return Want("upstream-keepalive-race", kn["port"], mentions=(f"127.0.0.1:{up}",))


def systemd(ts: datetime, unit: str, desc: str, what: str) -> list[Rec]:
    lines = {"stop": [f"Stopping {unit} - {desc}...", f"{unit}: Deactivated successfully.",
                      f"Stopped {unit} - {desc}."],
             "start": [f"Starting {unit} - {desc}...", f"Started {unit} - {desc}."]}[what]
    return [Rec(ts, "systemd", msg, 1) for msg in lines]


@family("restart", "nginx or its upstream unit restarted during long downloads; systemd's lines "
        "in the journal or syslog", classes=(6,))
def plan_restart(rng: random.Random) -> dict[str, Any]:
    kn = plan_web(rng)
    kn["unit"] = rng.choice(("nginx", "nginx", "upstream"))
    kn["down"] = rng.choice((0.2, 0.8, 1.5))
    return kn


@plan_restart
def run_restart(ctx: Ctx, kn: dict[str, Any]) -> Want:
    srcs = sources(ctx, kn)
    up = serve(ctx, kn["up"], "slow", 400_000, host="127.0.0.1")
    nginx_site(ctx, kn, *_upstream(kn), http="proxy_buffering off;")
    ctx.mark()
    fut = ctx.background(lambda: load(ctx, front(kn), kn["port"], 6, srcs, conc=6, timeout=5))
    time.sleep(1.5)
    recs: list[Rec] = []
    if kn["unit"] == "nginx":
        unit, desc = "nginx.service", "A high performance web server and a reverse proxy server"
        recs += systemd(datetime.now(UTC), unit, desc, "stop")
        assert ctx.nginx is not None
        ctx.nginx.stop()
        time.sleep(kn["down"])
        recs += systemd(datetime.now(UTC), unit, desc, "start")
        ctx.nginx.start(kn["port"])
    else:
        unit, desc = "orders-api.service", "Orders API"
        recs += systemd(datetime.now(UTC), unit, desc, "stop")
        os.killpg(up.pid, signal.SIGTERM)
        up.wait(timeout=10)
        time.sleep(kn["down"])
        recs += systemd(datetime.now(UTC), unit, desc, "start")
        serve(ctx, kn["up"], "slow", 400_000, host="127.0.0.1")
    got = fut.result()
    fw_collect(ctx, {})
    cut = got.get("reset", 0) + got.get("truncated", 0) + got.get("empty", 0)
    ctx.check(cut >= 3, f"downloads cut: {got}")
    return Want("service-restart", kn["port"], records=recs)


@family("moved", "a service moved to another port after a deploy; clients keep calling the old "
        "one and the kernel answers each SYN with a RST", classes=(7,), layouts=NO_SOS)
def plan_moved(rng: random.Random) -> dict[str, Any]:
    old = rng.choice((8080, 5000, 9000, 3000, 8443))
    return {"port": old, "new": rng.choice(tuple(x for x in (8081, 5050, 9100, 3001) if x != old)),
            "app": rng.choice(("orders-api", "billing", "search")), "subnets": rng.choice((1, 2)),
            "count": rng.choice((15, 30))}


@plan_moved
def run_moved(ctx: Ctx, kn: dict[str, Any]) -> Want:
    srcs = sources(ctx, kn)
    app, unit = kn["app"], f"{kn['app']}.service"
    recs = systemd(datetime.now(UTC), unit, app, "start")
    proc = serve(ctx, kn["port"])
    recs.append(Rec(datetime.now(UTC), app, f"Listening on http://0.0.0.0:{kn['port']}",
                    proc.pid))
    ctx.mark()
    ok = load(ctx, SERVER_IP, kn["port"], 5, srcs, conc=1)
    recs += systemd(datetime.now(UTC), unit, app, "stop")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    recs += systemd(datetime.now(UTC), unit, app, "start")
    proc = serve(ctx, kn["new"])
    recs.append(Rec(datetime.now(UTC), app, f"Listening on http://0.0.0.0:{kn['new']}",
                    proc.pid))
    got = load(ctx, SERVER_IP, kn["port"], kn["count"], srcs, conc=3, gap=0.05)
    fw_collect(ctx, {})
    ctx.check(ok.get("status-200", 0) == 5, f"served before the move: {ok}")
    ctx.check(got.get("refused", 0) == kn["count"], f"refused after: {got}")
    ctx.check(ctx.delta("TcpOutRsts") >= kn["count"], "the kernel sent RSTs")
    return Want("no-listener", kn["port"], records=recs, resets=got.get("refused", 0))


@family("nofile", "nginx workers run out of open files: a tiny worker_rlimit_nofile or a "
        "per-process limit set on the worker (as LimitNOFILE would)", classes=(8,))
def plan_nofile(rng: random.Random) -> dict[str, Any]:
    kn = plan_web(rng)
    kn["how"] = rng.choice(("worker_rlimit_nofile", "LimitNOFILE"))
    kn["limit"] = rng.choice((24, 32))
    return kn


@plan_nofile
def run_nofile(ctx: Ctx, kn: dict[str, Any]) -> Want:
    srcs = sources(ctx, kn)
    serve(ctx, kn["up"], "ok", 1.0, host="127.0.0.1")
    if kn["how"] == "worker_rlimit_nofile":
        nginx_site(ctx, kn, *_upstream(kn), rlimit_nofile=kn["limit"])
    else:
        nginx_site(ctx, kn, *_upstream(kn), nofile=kn["limit"])
    ctx.mark()
    got = load(ctx, front(kn), kn["port"], 40, srcs, conc=40, timeout=4)
    fw_collect(ctx, {})
    ctx.check(got.get("status-200", 0) < 40, f"some requests fail: {got}")
    ctx.check("(24: Too many open files)" in ctx.text("error.log"), "errno 24 in error.log")
    return Want("fd-exhaustion", kn["port"], limit=("*nofile*", "*open files*", "*NOFILE*"))


# -- controls, decoys and two causes ---------------------------------------------------
@family("healthy", "healthy control: nginx serves everyone, around it noise and a REJECT rule "
        "on another port whose counters moved long ago", classes=(0,))
def plan_healthy(rng: random.Random) -> dict[str, Any]:
    kn = plan_web(rng)
    kn["decoy"] = rng.random() < 0.6
    kn["decoy_port"] = rng.choice((9999, 2525, 6379))
    return kn


@plan_healthy
def run_healthy(ctx: Ctx, kn: dict[str, Any]) -> Want:
    srcs = sources(ctx, kn)
    if kn["decoy"]:
        decoy_reject(ctx, kn["decoy_port"])
    serve(ctx, kn["up"], host="127.0.0.1")
    nginx_site(ctx, kn, *_upstream(kn))
    ctx.mark()
    got = load(ctx, front(kn), kn["port"], 30, srcs, conc=5)
    fw_collect(ctx, {})
    ctx.check(got.get("status-200", 0) == 30, f"all 200: {got}")
    return Want(None, None, port_arg=True)


@family("two", "two causes at once: a firewall limit or REJECT on one port and a resetting "
        "upstream behind nginx on another", classes=(1, 3))
def plan_two(rng: random.Random) -> dict[str, Any]:
    kn = plan_firewall(rng, ("reject", "hashlimit", "connlimit"))
    kn["v6"], kn["subnets"] = False, 1
    web = plan_web(rng)
    kn["web"] = web["port"] if web["port"] != kn["port"] else 8000 + (kn["port"] == 8000)
    kn["up"], kn["fmt"], kn["named"] = web["up"], web["fmt"], web["named"]
    return kn


@plan_two
def run_two(ctx: Ctx, kn: dict[str, Any]) -> Want:
    from tests.lab.web import upstream

    serve(ctx, kn["port"], *(("slow", 48_000) if kn["cond"] == "connlimit" else ("ok", 0)))
    upstream(ctx.lab, kn["up"], "linger0")
    rule, _ = firewall(ctx, kn)
    if kn["backend"] == "firewalld":  # its zone rejects what it does not allow
        ctx.srv(f"nft add rule inet firewalld filter_IN_public_allow tcp dport {kn['web']} accept")
    nginx_site(ctx, {**kn, "port": kn["web"]}, *_upstream(kn))
    ctx.mark()
    up = ctx.background(lambda: load(ctx, SERVER_IP, kn["web"], 15, [CLIENT_IP], conc=5))
    got = fw_traffic(ctx, kn, [CLIENT_IP])
    web = up.result()
    fw_collect(ctx, kn)
    _fw_check(ctx, got, 3)
    ctx.check(web.get("status-502", 0) == 15, f"502 behind nginx: {web}")
    want = _fw_want(kn, rule)
    want.also = ("upstream-reset",)
    return want


# -- capture -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    family: str
    seed: int
    knobs: dict[str, Any]
    world: World
    host: str

    @property
    def name(self) -> str:
        return f"{self.family}-{self.seed}"


def make_plan(name: str, seed: int) -> Plan:
    fam = FAMILIES[name]
    rng = random.Random(f"{name}:{seed}")
    knobs = fam.plan(rng)
    return Plan(name, seed, knobs, pick_world(rng, fam.layouts), rng.choice(HOSTS))


@dataclass(frozen=True)
class Captured:
    """One generated incident: where diagnose reads it and its ``expected.json``."""

    plan: Plan
    input: Path
    expect: dict[str, Any]
    problems: list[str]


def capture(plan: Plan, out: Path, tag: str = "hs") -> Captured:
    """Reproduce ``plan`` in a fresh lab and write the dressed capture and ``expected.json``
    into ``out`` (new or empty)."""
    fam = FAMILIES[plan.family]
    out.mkdir(parents=True, exist_ok=True)
    stage = out / "stage"
    want: Want | None = None
    sc = Scenario(plan.name, fam.title, Expect(None), lambda c: None, plan.host)
    with tempfile.TemporaryDirectory(prefix=f"{tag}-{plan.name}-") as tmp, Lab(tag) as lab:
        ctx = Ctx(lab, Path(tmp), stage, sc)
        try:
            start = datetime.now(UTC)
            want = fam.run(ctx, dict(plan.knobs))
            end = datetime.now(UTC)
        finally:
            ctx.pool.shutdown(wait=True)
    mark = _snapshot_time(stage)
    kernel = ours((stage / "kern.log").read_text(errors="replace"), want.port)
    dressed = dress(stage, out / "capture", plan.world, plan.host, (mark or start, end),
                    want.records, kernel_text=kernel)
    zone_args = [] if plan.world.layout == "collect" else ["--timezone", plan.world.zone]
    judgements = [{"name": "blind", "args": zone_args}]
    if want.port is not None and want.port_arg:
        judgements.append({"name": "port", "args": [*zone_args, "--port", str(want.port)]})
    expect = Expect(want.cause, want.also, want.rule, want.limit, want.mentions, want.absent,
                    tuple(zone_args)).as_json()
    expect |= {"port": want.port, "resets": want.resets, "judgements": judgements, "family": plan.family,
               "seed": plan.seed, "classes": list(fam.classes),
               "shape": {**plan.knobs, **plan.world.describe(), "host": plan.host},
               "input": str(dressed.path.relative_to(out)),
               "incident": [dressed.start.isoformat(), dressed.end.isoformat()]}
    (out / "expected.json").write_text(json.dumps(expect, indent=2) + "\n")
    import shutil
    shutil.rmtree(stage)
    return Captured(plan, dressed.path, expect, list(ctx.problems))


_SYN_FLOOD = re.compile(r"Possible SYN flooding on port (?:\S*:)?(\d+)\.")


def ours(kernel: str, port: int | None) -> str:
    """The capture's kernel lines without those other labs on this host caused.

    The kernel ring is the host's: netfilter lines of other namespaces are already left
    out (by interface), but a SYN flooding warning for another port, or "nf_conntrack:
    table full" (no shape fills the table; a parallel lab lowering the host's
    nf_conntrack_max does), would be another lab's incident in this one's capture.
    """
    keep = []
    for line in kernel.splitlines():
        m = _SYN_FLOOD.search(line)
        if m and (port is None or int(m.group(1)) != port):
            continue
        if "nf_conntrack: table full" in line:
            continue
        keep.append(line)
    return "".join(ln + "\n" for ln in keep)


def _snapshot_time(stage: Path) -> datetime | None:
    path = stage / "counters/before/netstat"
    if not path.exists():
        return None
    first = path.read_text().split("\n", 1)[0].split()
    try:
        return datetime.fromisoformat(first[-1])
    except (ValueError, IndexError):
        return None
