"""The kernel is the oracle for NAT: DNAT, REDIRECT and MASQUERADE change what later chains see.

A server namespace forwards (``ip_forward=1`` there, ICMP redirects off) and holds nat and
filter rules; the client sends single raw packets over veth. DNAT to a local address on
another port must reach the INPUT rule for the *new* port, DNAT to a non-local address
(routed back out towards the client, which drops it: it does not forward) must take the
FORWARD path, REDIRECT must land on the ingress interface's primary address. The counters
that moved in the nat and filter tables (OUTPUT chains left out: the server's answers
cross them) must be exactly the rules of the trace's path. Of a DNAT range the kernel
picks one address per connection (not always the first, which the trace follows), so
the FORWARD rule for that packet covers the whole range. Runs for iptables-nft,
iptables-legacy where the kernel offers it, and nftables.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import hi_lab
import nft_lab
from netns_lab import sh

from auditor.firewall.iptables_ruleset import IptablesRuleset
from auditor.firewall.iptables_save import parse_save
from auditor.firewall.model import Packet, TraceEnv, TraceResult
from auditor.firewall.nft_json import load_json
from auditor.firewall.trace import trace

pytestmark = pytest.mark.root
VARIANTS = hi_lab.variants()
_sports = itertools.count(31000)

IPT = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 192.0.2.2/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 192.0.2.3:22
-A PREROUTING -d 192.0.2.2/32 -p tcp -m tcp --dport 8081 -j DNAT --to-destination 203.0.113.50:80
-A PREROUTING -d 192.0.2.2/32 -p udp -m udp --dport 5353 -j DNAT --to-destination 203.0.113.51
-A PREROUTING -p tcp -m tcp --dport 8082 -j REDIRECT --to-ports 2222
-A PREROUTING -p tcp -m tcp --dport 8083 -j DNAT --to-destination 203.0.113.60-203.0.113.69:80
-A POSTROUTING -d 203.0.113.0/24 -j MASQUERADE
COMMIT
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 8080 -j ACCEPT
-A INPUT -d 192.0.2.3/32 -p tcp -m tcp --dport 22 -j REJECT --reject-with tcp-reset
-A INPUT -p tcp -m tcp --dport 2222 -j ACCEPT
-A FORWARD -d 203.0.113.50/32 -p tcp -m tcp --dport 80 -j REJECT --reject-with tcp-reset
-A FORWARD -d 203.0.113.51/32 -p udp -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 8081 -j ACCEPT
-A FORWARD -m iprange --dst-range 203.0.113.60-203.0.113.69 -j DROP
COMMIT
"""
IPT_PACKETS = [
    dict(proto="tcp", src="192.0.2.1", dst="192.0.2.2", dport=8080, tcp_flags=["SYN"]),
    dict(proto="tcp", src="198.51.100.7", dst="192.0.2.2", dport=8081, tcp_flags=["SYN"]),
    dict(proto="udp", src="198.51.100.7", dst="192.0.2.2", dport=5353),
    dict(proto="tcp", src="192.0.2.1", dst="192.0.2.3", dport=8082, tcp_flags=["SYN"]),
    dict(proto="tcp", src="203.0.113.9", dst="192.0.2.3", dport=8083, tcp_flags=["SYN"]),
    dict(proto="tcp", src="192.0.2.1", dst="192.0.2.2", dport=9999, tcp_flags=["SYN"]),
]
NFT = """
table ip hfnat {
  map dm { type ipv4_addr . inet_service : ipv4_addr . inet_service;
           elements = { 192.0.2.1 . 8083 : 198.51.100.1 . 2222 } }
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    tcp dport 8080 counter dnat to 198.51.100.1:22
    tcp dport 8081 counter dnat to 203.0.113.50:80
    udp dport 5353 counter dnat to 203.0.113.51
    tcp dport 8082 counter redirect to :2222
    meta l4proto tcp dnat to ip daddr . tcp dport map @dm
  }
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    ip daddr 203.0.113.0/24 counter masquerade
  }
}
table inet hff {
  chain input {
    type filter hook input priority 0; policy drop;
    tcp dport 8080 counter accept
    ip daddr 198.51.100.1 tcp dport 22 counter reject with tcp reset
    tcp dport 2222 counter accept
    counter
  }
  chain forward {
    type filter hook forward priority 0; policy drop;
    ip daddr 203.0.113.50 tcp dport 80 counter reject with tcp reset
    ip daddr 203.0.113.51 meta l4proto udp counter accept
    tcp dport 8081 counter accept
  }
}
"""
NFT_PACKETS = [
    dict(proto="tcp", src="192.0.2.2", dst="192.0.2.1", dport=8080, flags=["SYN"]),
    dict(proto="tcp", src="198.51.100.2", dst="192.0.2.1", dport=8081, flags=["SYN"]),
    dict(proto="udp", src="198.51.100.2", dst="192.0.2.1", dport=5353),
    dict(proto="tcp", src="192.0.2.2", dst="198.51.100.1", dport=8082, flags=["SYN"]),
    dict(proto="tcp", src="192.0.2.2", dst="192.0.2.1", dport=8083, flags=["SYN"]),
    dict(proto="tcp", src="192.0.2.2", dst="192.0.2.1", dport=8084, flags=["SYN"]),
]


def _forwarding(ns: str) -> None:
    for key in ("net.ipv4.ip_forward=1", "net.ipv4.conf.all.send_redirects=0",
                "net.ipv4.conf.default.send_redirects=0"):
        sh("sysctl", "-qw", key, ns=ns)


def _env(ns: str) -> TraceEnv:
    """The namespace's own addresses, per interface, as ``ip -j addr`` lists them."""
    doc = json.loads(sh("ip", "-j", "addr", "show", ns=ns).stdout)
    pairs = tuple((str(link["ifname"]), str(a["local"])) for link in doc
                  for a in link.get("addr_info", []) if a.get("family") == "inet")
    return TraceEnv(frozenset(a for _, a in pairs), pairs)


# -- iptables ------------------------------------------------------------------------------
_RULE = re.compile(r"^\[(\d+):\d+\] -A (\S+)")
_POLICY = re.compile(r"^:(\S+) (ACCEPT|DROP) \[(\d+):\d+\]")


def _ipt_counters(save: str) -> dict[tuple[str, str, int | str], int]:
    """(table, chain, position|"policy") -> packets; nat and filter, OUTPUT left out.

    Only filter policies count: a nat chain's policy is no verdict the trace names."""
    out: dict[tuple[str, str, int | str], int] = {}
    pos: dict[tuple[str, str], int] = {}
    table = ""
    for line in save.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        if table not in ("nat", "filter"):
            continue
        m = _RULE.match(line)
        if m:
            key = (table, m.group(2))
            pos[key] = pos.get(key, 0) + 1
            if m.group(2) != "OUTPUT":
                out[(table, m.group(2), pos[key])] = int(m.group(1))
            continue
        m = _POLICY.match(line)
        if m and table == "filter" and m.group(1) != "OUTPUT":
            out[(table, m.group(1), "policy")] = int(m.group(3))
    return out


def _ipt_moved(lab: hi_lab.IptLab, packet: dict[str, Any]) -> dict[Any, int]:
    before = _ipt_counters(lab.save())
    assert lab.pair is not None
    lab.pair.send_raw(packet)
    deadline = time.monotonic() + 2.0
    while True:  # bounded: until a filter counter moved, or two seconds
        after = _ipt_counters(lab.save())
        moved = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
        if any(k[0] == "filter" for k in moved) or time.monotonic() > deadline:
            time.sleep(0.05)  # let the rest of the packet's path (POSTROUTING) count too
            after = _ipt_counters(lab.save())
            return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
        time.sleep(0.01)


def _ipt_expected(result: TraceResult) -> dict[Any, int]:
    exp: dict[Any, int] = {}
    for r in result.path:
        if r.table in ("nat", "filter") and r.chain != "OUTPUT":
            key = (r.table, r.chain, r.position)
            exp[key] = exp.get(key, 0) + 1
    if result.policy is not None and result.policy.table == "filter":
        exp[("filter", result.policy.chain, "policy")] = 1
    return exp


@pytest.fixture(params=VARIANTS, scope="module")
def ipt_lab(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    if not hi_lab.CAN_RUN:
        pytest.skip(hi_lab.REASON)
    lab = hi_lab.IptLab(request.param)
    try:
        lab.start()
        _forwarding(lab.server)
        yield lab
    finally:
        lab.close()


def test_iptables_nat_agrees_with_kernel(ipt_lab: hi_lab.IptLab) -> None:
    ipt_lab.load(IPT)
    rs = IptablesRuleset(parse_save(ipt_lab.save(), ipt_lab.save_cmd,
                                    f"iptables-{ipt_lab.variant}"))
    assert not rs.issues, rs.issues
    env = _env(ipt_lab.server)
    kinds = []
    for spec in IPT_PACKETS:
        packet = Packet.build(**{"sport": next(_sports), **spec}, iif="hiv0")
        result = trace([rs], packet, env)
        moved = _ipt_moved(ipt_lab, packet.to_json())
        assert result.certain, (spec, result.not_evaluated)
        assert moved == _ipt_expected(result), (
            f"packet {spec}\nkernel moved {moved}\ntrace path "
            f"{[r.label for r in result.path]} policy {result.policy} nat "
            f"{[s.text for s in result.nat]}")
        kinds.append(tuple(s.kind for s in result.nat))
    assert kinds == [("dnat",), ("dnat",), ("dnat", "masquerade"), ("redirect",), ("dnat",), ()]


# -- nftables ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nlab():  # type: ignore[no-untyped-def]
    if not nft_lab.CAN_RUN:
        pytest.skip(nft_lab.REASON)
    lab = nft_lab.NftLab()
    try:
        _forwarding(lab.server)
        sh("ip", "route", "add", "203.0.113.0/24", "via", "192.0.2.2", ns=lab.server)
        yield lab
    finally:
        lab.close()


def test_nftables_nat_agrees_with_kernel(nlab: nft_lab.NftLab) -> None:
    nlab.load(NFT)
    rs = load_json(nlab.dump(), "server")
    env = _env(nlab.server)
    kinds = []
    for p in NFT_PACKETS:
        p = {**p, "sport": next(_sports)}
        pkt = Packet.build(src=p["src"], dst=p["dst"], proto=p["proto"], sport=p["sport"],
                           dport=p["dport"], tcp_flags=p.get("flags"), iif=nlab.sif)
        result = trace([rs], pkt, env)
        moved = nlab.send(p)
        assert result.certain, (p, result.not_evaluated)
        named = {(r.family, r.table, r.chain, r.handle) for r in result.path
                 if r.table != "hfsentinel" and r.packets is not None}
        assert named == moved, (f"packet {p}\nkernel {sorted(moved)}\ntrace "
                                f"{sorted(named)} nat {[s.text for s in result.nat]}")
        kinds.append(tuple(s.kind for s in result.nat))
    assert kinds == [("dnat",), ("dnat",), ("dnat", "masquerade"), ("redirect",), ("dnat",), ()]
