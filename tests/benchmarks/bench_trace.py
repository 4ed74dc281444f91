"""Benchmark: load a generated 20,000-rule ruleset and trace 100,000 packets through it.

Run: ``python tests/benchmarks/bench_trace.py [--backend iptables|nft|both] [--rules 20000]
[--packets 100000] [--profile] [--cli]``. For each backend it prints the load time (parse +
compile + index) and traces per second. Target on a 2-core machine: load under 5 s,
100,000 traces under 10 s. With ``--cli`` it runs the command a user runs instead,
``auditor rules trace --from RULES --packets PACKETS.ndjson > OUT`` (start, load, trace
and NDJSON output included; issue 9's target: under 10 s for 20,000 iptables rules and
100,000 packets), best of ``--repeat`` runs, with the peak memory of the process.

* ``iptables``: an ``iptables-save`` dump shaped like a kube-proxy (iptables mode) host:
  one KUBE-SERVICES rule and one DNAT chain per service, plus a big filter INPUT.
* ``nft``: ``nft -j list ruleset`` JSON shaped like a kube-proxy (nftables mode) host plus
  a host firewall: an ``ip`` table with a verdict map from VIP . protocol . port to
  service chains (``goto``), endpoint chains with ``dnat``, a masquerade-mark chain
  reached by ``jump``; and an ``inet`` table with sets, a big input chain of
  saddr/daddr/dport rules, and a forward chain jumping to a Docker-like user chain.
  ``--write FILE`` saves it so that it can be checked with ``nft -j -c -f FILE``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any

from auditor.firewall import read_text, trace
from auditor.firewall.model import Packet, TraceEnv


def generate(n_rules: int, seed: int = 7) -> str:
    """A kube-proxy/Docker-like dump: service chains by VIP and port, plus a big filter INPUT."""
    rnd = random.Random(seed)
    lines = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
             ":POSTROUTING ACCEPT [0:0]", ":KUBE-SERVICES - [0:0]"]
    n_svc = n_rules // 4
    svc_rules = ["-A PREROUTING -m comment --comment \"kubernetes service portals\" "
                 "-j KUBE-SERVICES"]
    for i in range(n_svc):
        vip = f"10.96.{i // 250}.{i % 250 + 1}"
        port = 1000 + i % 5000
        lines.append(f":KUBE-SVC-{i:05d} - [0:0]")
        svc_rules.append(f"-A KUBE-SERVICES -d {vip}/32 -p tcp -m comment --comment "
                         f"\"ns/svc{i}:http cluster IP\" -m tcp --dport {port} -j KUBE-SVC-{i:05d}")
        svc_rules.append(f"-A KUBE-SVC-{i:05d} -m comment --comment \"ns/svc{i}:http\" "
                         f"-j DNAT --to-destination 10.244.{i // 250}.{i % 250 + 1}:8080")
    lines += [*svc_rules, "COMMIT", "*filter", ":INPUT DROP [0:0]", ":FORWARD DROP [0:0]",
              ":OUTPUT ACCEPT [0:0]"]
    lines.append("-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
    lines.append("-A INPUT -m conntrack --ctstate INVALID -j DROP")
    for _ in range(n_rules - 2 * n_svc - 4):
        kind = rnd.random()
        src = f"198.51.{rnd.randrange(100, 102)}.{rnd.randrange(1, 255)}"
        port = rnd.randrange(1, 65535)
        if kind < 0.4:
            lines.append(f"-A INPUT -s {src}/32 -j DROP")
        elif kind < 0.8:
            lines.append(f"-A INPUT -p tcp -m tcp --dport {port} -j ACCEPT")
        elif kind < 0.95:
            lines.append(f"-A INPUT -d 192.0.2.{rnd.randrange(1, 255)}/32 -p udp -m udp "
                         f"--dport {port} -j REJECT --reject-with icmp-port-unreachable")
        else:
            lines.append(f"-A INPUT -s 203.0.113.{rnd.randrange(0, 255)}/32 -p tcp "
                         f"-m multiport --dports 80,443 -j REJECT --reject-with tcp-reset")
    lines += ["-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT", "COMMIT"]
    return "\n".join(lines) + "\n"


# -- nftables JSON ------------------------------------------------------------------------
def _m(left: Any, right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def _pl(proto: str, field: str) -> dict[str, Any]:
    return {"payload": {"protocol": proto, "field": field}}


def _ct_state(*states: str) -> dict[str, Any]:
    return _m({"ct": {"key": "state"}}, list(states) if len(states) > 1 else states[0], "in")


COUNTER: dict[str, Any] = {"counter": {"packets": 0, "bytes": 0}}


class _Nft:
    """Collects nft JSON objects, numbering handles per table as the kernel does."""

    def __init__(self) -> None:
        self.objs: list[dict[str, Any]] = [{"metainfo": {
            "version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}]
        self.handles: dict[tuple[str, str], int] = {}
        self.rules: list[dict[str, Any]] = []

    def _h(self, fam: str, table: str) -> int:
        self.handles[(fam, table)] = self.handles.get((fam, table), 0) + 1
        return self.handles[(fam, table)]

    def table(self, fam: str, name: str) -> None:
        self.objs.append({"table": {"family": fam, "name": name,
                                    "handle": len(self.handles) + 1}})
        self.handles[(fam, name)] = 0

    def chain(self, fam: str, table: str, name: str, hook: str | None = None,
              type_: str = "filter", prio: int = 0, policy: str = "accept") -> None:
        c: dict[str, Any] = {"family": fam, "table": table, "name": name,
                             "handle": self._h(fam, table)}
        if hook:
            c.update(type=type_, hook=hook, prio=prio, policy=policy)
        self.objs.append({"chain": c})

    def set(self, fam: str, table: str, name: str, typ: Any, elems: list[Any],
            kind: str = "set", **extra: Any) -> None:
        s: dict[str, Any] = {"family": fam, "name": name, "table": table, "type": typ,
                             "handle": self._h(fam, table), **extra, "elem": elems}
        self.objs.append({kind: s})

    def rule(self, fam: str, table: str, chain: str, *expr: dict[str, Any],
             comment: str | None = None) -> None:
        r: dict[str, Any] = {"family": fam, "table": table, "chain": chain,
                             "handle": 0, "expr": list(expr)}
        if comment:
            r["comment"] = comment
        self.rules.append({"rule": r})

    def text(self) -> str:
        for r in self.rules:  # rules follow all chains and sets, as `nft -j list` orders them
            body = r["rule"]
            for s in body["expr"]:  # the kernel gives each anonymous set a handle first
                if isinstance(s.get("match", {}).get("right"), dict) and "set" in s["match"]["right"]:
                    self._h(body["family"], body["table"])
            body["handle"] = self._h(body["family"], body["table"])
        return json.dumps({"nftables": self.objs + self.rules}, indent=1) + "\n"


def generate_nft(n_rules: int, seed: int = 7) -> str:
    """``nft -j list ruleset`` JSON for a kube-proxy (nft mode) host with a host firewall."""
    rnd = random.Random(seed)
    g = _Nft()
    kp, fw = ("ip", "kube-proxy"), ("inet", "filter")
    n_svc = n_rules // 6  # three rules per service, the rest in the host firewall
    g.table(*kp)
    g.chain(*kp, "nat-prerouting", "prerouting", "nat", -100)
    g.chain(*kp, "nat-output", "output", "nat", -100)
    g.chain(*kp, "filter-input", "input", "filter", -110)
    g.chain(*kp, "services")
    g.chain(*kp, "firewall-check")
    g.chain(*kp, "mark-for-masquerade")
    vmap: list[Any] = []
    fw_ips: list[Any] = []
    for i in range(n_svc):
        vip, port = f"10.96.{i // 250}.{i % 250 + 1}", 1000 + i % 5000
        ep = f"10.244.{i // 250}.{i % 250 + 1}"
        svc, end = f"service-{i:05d}-ns/svc{i}/tcp/http", f"endpoint-{i:05d}-ns/svc{i}/tcp/http"
        g.chain(*kp, svc)
        g.chain(*kp, end)
        vmap.append([{"concat": [vip, "tcp", port]}, {"goto": {"target": svc}}])
        if i % 50 == 0:
            fw_ips.append([{"concat": [vip, "tcp", port]}, {"drop": None}])
        g.rule(*kp, svc, _m(_pl("ip", "daddr"), vip), _m(_pl("tcp", "dport"), port),
               _m(_pl("ip", "saddr"), {"prefix": {"addr": "10.244.0.0", "len": 16}}, "!="),
               {"jump": {"target": "mark-for-masquerade"}})
        g.rule(*kp, svc, {"goto": {"target": end}})
        g.rule(*kp, end, _m({"meta": {"key": "l4proto"}}, "tcp"),
               {"dnat": {"addr": ep, "port": 8080}})
    key = {"concat": [_pl("ip", "daddr"), {"meta": {"key": "l4proto"}}, _pl("th", "dport")]}
    g.set(*kp, "service-ips", ["ipv4_addr", "inet_proto", "inet_service"], vmap, "map",
          map="verdict")
    g.set(*kp, "firewall-ips", ["ipv4_addr", "inet_proto", "inet_service"], fw_ips, "map",
          map="verdict")
    g.rule(*kp, "nat-prerouting", {"jump": {"target": "services"}})
    g.rule(*kp, "nat-output", {"jump": {"target": "services"}})
    g.rule(*kp, "filter-input", _ct_state("new"), {"jump": {"target": "firewall-check"}})
    g.rule(*kp, "firewall-check", {"vmap": {"key": key, "data": "@firewall-ips"}})
    g.rule(*kp, "services", {"vmap": {"key": key, "data": "@service-ips"}})
    g.rule(*kp, "mark-for-masquerade", {"mangle": {"key": {"meta": {"key": "mark"}},
                                                   "value": 16384}})
    g.table(*fw)
    g.chain(*fw, "input", "input", "filter", 0, "drop")
    g.chain(*fw, "forward", "forward", "filter", 0, "drop")
    g.chain(*fw, "output", "output", "filter", 0, "accept")
    g.chain(*fw, "docker-user")
    g.set(*fw, "blocklist", "ipv4_addr", [
        {"prefix": {"addr": f"203.0.113.{16 * k}", "len": 28}} for k in range(0, 16, 3)
    ] + [{"range": ["198.51.101.200", "198.51.101.210"]}], flags=["interval"])
    g.set(*fw, "admin-ports", "inet_service", [22, 2222, 9100])
    head = [
        (_ct_state("established", "related"), {"accept": None}),
        (_ct_state("invalid"), COUNTER, {"drop": None}),
        (_m({"meta": {"key": "iifname"}}, "lo"), {"accept": None}),
        (_m(_pl("ip", "saddr"), "@blocklist"), COUNTER, {"drop": None}),
        (_m(_pl("ip", "saddr"), {"prefix": {"addr": "198.51.100.0", "len": 30}}),
         _m(_pl("tcp", "dport"), "@admin-ports"), {"accept": None}),
    ]
    for expr in head:
        g.rule(*fw, "input", *expr)
    g.rule(*fw, "forward", {"jump": {"target": "docker-user"}})
    g.rule(*fw, "forward", _ct_state("established", "related"), {"accept": None})
    g.rule(*fw, "docker-user", _m({"meta": {"key": "iifname"}}, "eth0"),
           _m(_pl("ip", "saddr"), {"prefix": {"addr": "203.0.113.0", "len": 24}}),
           {"drop": None})
    g.rule(*fw, "docker-user", {"return": None})
    g.rule(*fw, "output", _m({"meta": {"key": "oifname"}}, "lo"), {"accept": None})
    for _ in range(n_rules - 3 * n_svc - 6 - len(head) - 6):
        kind = rnd.random()
        src = f"198.51.{rnd.randrange(100, 102)}.{rnd.randrange(1, 255)}"
        port = rnd.randrange(1, 65535)
        if kind < 0.4:
            g.rule(*fw, "input", _m(_pl("ip", "saddr"), src), COUNTER, {"drop": None})
        elif kind < 0.8:
            g.rule(*fw, "input", _m(_pl("tcp", "dport"), port), {"accept": None})
        elif kind < 0.95:
            g.rule(*fw, "input", _m(_pl("ip", "daddr"), f"192.0.2.{rnd.randrange(1, 255)}"),
                   _m(_pl("udp", "dport"), port),
                   {"reject": {"type": "icmp", "expr": "port-unreachable"}})
        else:
            g.rule(*fw, "input", _m(_pl("ip", "saddr"), f"203.0.113.{rnd.randrange(0, 255)}"),
                   _m(_pl("tcp", "dport"), {"set": [80, 443]}), COUNTER,
                   {"reject": {"type": "tcp reset"}}, comment="no web for them")
    g.rule(*fw, "input", _m(_pl("tcp", "dport"), 22), {"accept": None})
    return g.text()


def packets(n: int, seed: int = 1) -> list[Packet]:
    rnd = random.Random(seed)
    return [
        Packet.build(src=f"198.51.{rnd.randrange(100, 102)}.{rnd.randrange(1, 255)}",
                     dst=rnd.choice([f"192.0.2.{rnd.randrange(1, 255)}",
                                     f"10.96.{rnd.randrange(0, 20)}.{rnd.randrange(1, 251)}"]),
                     sport=rnd.randrange(1024, 65535), dport=rnd.randrange(1, 6000),
                     proto=rnd.choice(["tcp", "udp"]), iif="eth0",
                     state=rnd.choice(["new", "new", "new", "established", "invalid"]))
        for _ in range(n)
    ]


def run(backend: str, text: str, pkts: list[Packet], profile: bool) -> None:
    t0 = time.perf_counter()
    rs = read_text(text, f"generated-{backend}")
    if backend == "nft":  # compile now, as the first trace would, so that it counts as load
        rs.run_chain(rs.hook_chains(4, "input")[0], pkts[0], TraceEnv())
    load = time.perf_counter() - t0
    n = sum(1 for _ in rs.rules())
    env = TraceEnv(frozenset({"192.0.2.1"}))
    verdicts: dict[str, int] = {}
    prof = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    for p in pkts:
        r = trace([rs], p, env)
        verdicts[r.verdict] = verdicts.get(r.verdict, 0) + 1
    if prof:
        prof.disable()
    took = time.perf_counter() - t0
    print(f"[{backend}] rules loaded: {n} in {load:.2f} s ({len(text) / 1e6:.1f} MB)")
    print(f"[{backend}] traced {len(pkts)} packets in {took:.2f} s: "
          f"{len(pkts) / took:,.0f} packets/s")
    print(f"[{backend}] verdicts: {dict(sorted(verdicts.items()))}")
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)


def run_cli(backend: str, text: str, pkts: list[Packet], repeat: int) -> None:
    """Time the whole command, as a user runs it, on files in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="bench-trace-") as tmp:
        rules = os.path.join(tmp, "rules.json" if backend == "nft" else "rules.save")
        with open(rules, "w") as fh:
            fh.write(text)
        src = os.path.join(tmp, "packets.ndjson")
        with open(src, "w") as fh:
            for p in pkts:
                fh.write(json.dumps(p.to_json()) + "\n")
        out = os.path.join(tmp, "verdicts.ndjson")
        best = best_cpu = float("inf")
        for _ in range(repeat):
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            with open(out, "wb") as fh:
                subprocess.run([sys.executable, "-m", "auditor", "rules", "trace", "--from",
                                rules, "--packets", src], stdout=fh, check=True)
            best = min(best, time.perf_counter() - t0)
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
            best_cpu = min(best_cpu, cpu)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        with open(out, "rb") as fh:
            lines = sum(1 for _ in fh)
        print(f"[{backend} cli] rules trace --packets: {len(pkts)} packets, {lines} lines out, "
              f"best of {repeat}: {best:.2f} s wall, {best_cpu:.2f} s CPU (user+sys; on a "
              f"busy machine wall time includes waiting), peak memory {peak:.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=("iptables", "nft", "both"), default="both")
    ap.add_argument("--rules", type=int, default=20000)
    ap.add_argument("--packets", type=int, default=100000)
    ap.add_argument("--profile", action="store_true", help="print a cProfile of the traces")
    ap.add_argument("--write", metavar="FILE", help="write the nft JSON ruleset and stop")
    ap.add_argument("--cli", action="store_true", help="time `auditor rules trace --packets`")
    ap.add_argument("--repeat", type=int, default=3, help="runs of --cli (the best counts)")
    args = ap.parse_args()
    if args.write:
        with open(args.write, "w") as fh:
            fh.write(generate_nft(args.rules))
        return
    pkts = packets(args.packets)
    if args.cli:
        if args.backend in ("iptables", "both"):
            run_cli("iptables", generate(args.rules), pkts, args.repeat)
        if args.backend in ("nft", "both"):
            run_cli("nft", generate_nft(args.rules), pkts, args.repeat)
        return
    if args.backend in ("iptables", "both"):
        run("iptables", generate(args.rules), pkts, args.profile)
    if args.backend in ("nft", "both"):
        run("nft", generate_nft(args.rules), pkts, args.profile)


if __name__ == "__main__":
    main()
