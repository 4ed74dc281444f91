"""The nftables chain index: the same traces as a full scan, and far fewer rules tried.

The big ruleset is the benchmark's generated kube-proxy + host firewall JSON
(``tests/benchmarks/bench_trace.py``); a root test checks that real ``nft`` loads it and
lists it back unchanged, so its shape is the kernel's.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

import pytest

from auditor.firewall import nft_eval, nft_index
from auditor.firewall.model import Packet, TraceEnv
from auditor.firewall.nft_json import load_json
from auditor.firewall.nft_values import PV
from auditor.firewall.trace import trace

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
import bench_trace
from netns_lab import new_name, sh
from nft_lab import CAN_RUN, REASON

ENV = TraceEnv(frozenset({"192.0.2.1"}))


def _packets(n: int, seed: int) -> list[Packet]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        proto = rnd.choice(["tcp", "tcp", "udp", "icmp"])
        v6 = rnd.random() < 0.1
        src = (f"2001:db8::{rnd.randrange(1, 300):x}" if v6 else
               rnd.choice([f"198.51.{rnd.randrange(100, 102)}.{rnd.randrange(1, 255)}",
                           f"203.0.113.{rnd.randrange(0, 255)}", "198.51.100.1"]))
        dst = "2001:db8::1" if v6 else rnd.choice(
            [f"192.0.2.{rnd.randrange(1, 255)}", f"10.96.0.{rnd.randrange(1, 120)}"])
        ported = proto != "icmp"
        out.append(Packet.build(
            src=src, dst=dst, proto=proto,
            sport=rnd.randrange(1024, 65535) if ported else None,
            dport=rnd.choice([None, 22, 80, 443, rnd.randrange(1, 6000)]) if ported else None,
            iif=rnd.choice([None, "eth0", "lo"]), oif=rnd.choice([None, "eth1"]),
            direction=rnd.choice(["input", "input", "forward", "output"]),
            state=rnd.choice(["new", "new", "established", "invalid"]),
            icmp_type=8 if proto == "icmp" else None))
    return out


def _hitting(text: str) -> list[Packet]:
    """Packets built from the exact matches of the generated rules, so that they hit."""
    out = []
    for o in json.loads(text)["nftables"]:
        r = o.get("rule")
        if r is None:
            continue
        kw: dict[str, Any] = {"src": "198.51.100.200", "dst": "192.0.2.1", "iif": "eth0"}
        for s in r["expr"]:
            m = s.get("match", {})
            p = m.get("left", {}).get("payload", {})
            right = m.get("right")
            if m.get("op") != "==" or not isinstance(right, (str, int)) or str(right)[0] == "@":
                continue
            if p.get("field") in ("saddr", "daddr"):
                kw["src" if p["field"] == "saddr" else "dst"] = m["right"]
            elif p.get("field") == "dport":
                kw.update(proto=p["protocol"], dport=m["right"], sport=5555)
        out.append(Packet.build(**kw))
    return out[::7]


def test_index_gives_same_answers_as_full_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    text = bench_trace.generate_nft(900)
    packets = _packets(400, 5) + _hitting(text)
    indexed = load_json(text, "gen")
    fast = [trace([indexed], p, ENV).to_json() for p in packets]
    monkeypatch.setattr(nft_index, "INDEX_MIN", 10**9)
    full = load_json(text, "gen")
    slow = [trace([full], p, ENV).to_json() for p in packets]
    assert slow == fast
    verdicts = {d["verdict"] for d in fast}
    assert verdicts == {"accept", "drop", "reject"}
    assert any(d["not_evaluated"] for d in fast)  # packets without dport/iif were asked


def test_index_tries_few_rules() -> None:
    rs = load_json(bench_trace.generate_nft(3000), "gen")
    p = Packet.build(src="198.51.100.77", dst="192.0.2.9", proto="tcp", sport=4000, dport=5000)
    trace([rs], p, ENV)  # compiles
    comp = rs._compiled
    assert isinstance(comp, nft_eval.Compiled)
    chain = comp.chains[("inet", "filter", "input")]
    assert len(chain.rules) > 1000
    assert len(chain.candidates(PV(p, ENV))) < 60
    nokey = Packet.build(src="198.51.100.77", dst="192.0.2.9", proto="tcp", sport=4000)
    # no destination port: every port rule may be "not evaluated", so all are candidates
    assert len(chain.candidates(PV(nokey, ENV))) > len(chain.rules) // 3


def _rule(chain: str, *expr: Any) -> dict[str, Any]:
    return {"rule": {"family": "inet", "table": "t", "chain": chain, "handle": 0,
                     "expr": list(expr)}}


def _m(proto: str, field: str, right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": {"payload": {"protocol": proto, "field": field}},
                      "right": right}}


def test_index_keeps_rules_whose_earlier_matches_are_undecided() -> None:
    iif = {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "eth9"}}
    rules = [_rule("in", _m("ip", "saddr", f"203.0.113.{i}"), {"drop": None})
             for i in range(1, 30)]
    rules += [
        _rule("in", iif, _m("ip", "saddr", "198.51.100.50"), {"drop": None}),  # iif first
        _rule("in", _m("th", "dport", 7070), {"drop": None}),  # th on icmp: undecided
        _rule("in", _m("tcp", "dport", {"set": [80, 8080]}), {"accept": None}),
        _rule("in", {"counter": {"packets": 0, "bytes": 0}},
              _m("ip", "daddr", "192.0.2.77"), {"reject": {"type": "tcp reset"}}),
    ]
    for i, r in enumerate(rules):
        r["rule"]["handle"] = i + 10
    doc = {"nftables": [
        {"table": {"family": "inet", "name": "t", "handle": 1}},
        {"chain": {"family": "inet", "table": "t", "name": "in", "handle": 2, "type": "filter",
                   "hook": "input", "prio": 0, "policy": "accept"}}, *rules]}
    rs = load_json(json.dumps(doc), "hand.json")
    no_iif = trace([rs], Packet.build(src="198.51.100.9", dst="192.0.2.1", dport=22), ENV)
    assert [n.rule.handle for n in no_iif.not_evaluated] == [39]
    icmp = trace([rs], Packet.build(src="198.51.100.9", dst="192.0.2.1", proto="icmp",
                                    icmp_type=8, iif="eth0"), ENV)
    assert [n.rule.handle for n in icmp.not_evaluated] == [40]
    no_port = trace([rs], Packet.build(src="198.51.100.9", dst="192.0.2.1", iif="eth0"), ENV)
    assert [n.rule.handle for n in no_port.not_evaluated] == [40, 41]
    web = trace([rs], Packet.build(src="203.0.113.40", dst="192.0.2.77", dport=8080,
                                   iif="eth0"), ENV)
    assert web.verdict == "accept" and web.rule is not None and web.rule.handle == 41
    rst = trace([rs], Packet.build(src="203.0.113.40", dst="192.0.2.77", dport=8081,
                                   iif="eth0"), ENV)
    assert (rst.verdict, rst.rule and rst.rule.handle) == ("reject", 42)
    blocked = trace([rs], Packet.build(src="203.0.113.7", dst="192.0.2.77", dport=80,
                                       iif="eth0"), ENV)
    assert (blocked.verdict, blocked.rule and blocked.rule.handle) == ("drop", 16)


@pytest.mark.root
@pytest.mark.skipif(not CAN_RUN, reason=REASON)
def test_generated_ruleset_is_what_nft_lists() -> None:
    text = bench_trace.generate_nft(600)
    ns = new_name("hfx")
    sh("ip", "netns", "add", ns)
    try:
        sh("nft", "-j", "-f", "-", ns=ns, input=text)
        back = sh("nft", "-j", "list", "ruleset", ns=ns).stdout
    finally:
        sh("ip", "netns", "del", ns, check=False)

    def shape(doc: str) -> list[Any]:
        out = []
        for o in json.loads(doc)["nftables"]:
            for body in o.values():
                if "elem" in body:  # the kernel lists elements in its own order
                    body["elem"] = sorted(body["elem"], key=json.dumps)
            if "metainfo" not in o:
                out.append(json.dumps(o, sort_keys=True))
        return sorted(out)

    assert shape(back) == shape(text)
    ours, theirs = load_json(text, "gen"), load_json(back, "nft")
    assert [r.text for r in ours.rules()] == [r.text for r in theirs.rules()]
