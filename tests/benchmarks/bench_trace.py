"""Benchmark: load a generated 20,000-rule iptables-save dump and trace 100,000 packets.

Run: ``python tests/benchmarks/bench_trace.py [--rules 20000] [--packets 100000]``.
Prints the load time (parse + compile + index) and traces per second. Target on a
2-core machine: load under 5 s, 100,000 traces under 10 s.
"""

from __future__ import annotations

import argparse
import random
import time

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
    for _ in range(n_rules - 2 * n_svc - 3):
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rules", type=int, default=20000)
    ap.add_argument("--packets", type=int, default=100000)
    args = ap.parse_args()
    text = generate(args.rules)
    t0 = time.perf_counter()
    rs = read_text(text, "generated")
    load = time.perf_counter() - t0
    n = sum(1 for _ in rs.rules())
    rnd = random.Random(1)
    packets = [
        Packet.build(src=f"198.51.{rnd.randrange(100, 102)}.{rnd.randrange(1, 255)}",
                     dst=rnd.choice([f"192.0.2.{rnd.randrange(1, 255)}",
                                     f"10.96.{rnd.randrange(0, 20)}.{rnd.randrange(1, 251)}"]),
                     sport=rnd.randrange(1024, 65535), dport=rnd.randrange(1, 6000),
                     proto=rnd.choice(["tcp", "udp"]), iif="eth0",
                     state=rnd.choice(["new", "new", "new", "established", "invalid"]))
        for _ in range(args.packets)
    ]
    env = TraceEnv(frozenset({"192.0.2.1"}))
    verdicts: dict[str, int] = {}
    t0 = time.perf_counter()
    for p in packets:
        r = trace([rs], p, env)
        verdicts[r.verdict] = verdicts.get(r.verdict, 0) + 1
    took = time.perf_counter() - t0
    print(f"rules loaded: {n} in {load:.2f} s")
    print(f"traced {len(packets)} packets in {took:.2f} s: {len(packets) / took:,.0f} packets/s")
    print(f"verdicts: {verdicts}")


if __name__ == "__main__":
    main()
