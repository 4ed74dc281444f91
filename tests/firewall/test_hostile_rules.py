"""Rule sets are inputs too: files the kernel would refuse give a located error, never a hang.

Generated rule files for each case of issue 14 (goto and jump loops, verdict-map
loops, jumps that fan out, bad DNAT addresses and MARK values, an nft chain without
``table``, a list-valued ``prio``), then hypothesis feeding mutated iptables-save text
and nft JSON to the readers and the tracer: the only exception allowed is
:class:`~auditor.firewall.FirewallError` naming the file, and the work of every trace is
bounded by the rule-visit budget (counted in the result, never timed).
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.firewall import FirewallError, read_text
from auditor.firewall.jumps import MAX_RULE_VISITS
from auditor.firewall.model import Packet, Ruleset, TraceEnv, TraceResult
from auditor.firewall.trace import trace

SAMPLES = Path(__file__).parents[2] / "samples" / "firewall"
PACKETS = (
    Packet.build(src="198.51.100.7", dst="192.0.2.10", dport=80),
    Packet.build(src="203.0.113.9", dst="192.0.2.10", dport=443, state="established"),
    Packet.build(src="2001:db8::7", dst="2001:db8::1", dport=22, direction="forward"),
)
LOCATED = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+): ")


def _ipt(*body: str, table: str = "filter", chains: str = "A B C") -> str:
    heads = {"filter": ":INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]",
             "nat": ":PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]",
             "mangle": ":PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]"}[table]
    user = "\n".join(f":{c} - [0:0]" for c in chains.split())
    return f"*{table}\n{heads}\n{user}\n" + "\n".join(body) + "\nCOMMIT\n"


def _nft(*objs: dict[str, Any]) -> str:
    # one object per line, so that every object has its own line number
    lines = [json.dumps(o) for o in ({"table": {"family": "inet", "name": "t"}}, *objs)]
    return '{"nftables": [\n' + ",\n".join(lines) + "\n]}\n"


def _chain(name: str, **kw: Any) -> dict[str, Any]:
    return {"chain": {"family": "inet", "table": "t", "name": name, **kw}}


def _rule(chain: str, *expr: dict[str, Any]) -> dict[str, Any]:
    return {"rule": {"family": "inet", "table": "t", "chain": chain, "expr": list(expr)}}


BASE = _chain("in", type="filter", hook="input", prio=0, policy="accept")


def _refused(text: str, line: int) -> str:
    with pytest.raises(FirewallError) as info:
        read_text(text, "rules.file")
    msg = str(info.value)
    assert msg.startswith(f"rules.file:{line}: "), msg
    return msg


# -- loops: refused like the kernel refuses them (ELOOP) --------------------------------
def test_goto_loop_refused_with_the_closing_line() -> None:
    msg = _refused(_ipt("-A INPUT -j A", "-A A -g B", "-A B -g A"), 10)
    assert "loop (A -> B -> A)" in msg and "ELOOP" in msg


def test_jump_loop_and_self_jump_refused() -> None:
    _refused(_ipt("-A INPUT -j A", "-A A -p tcp -j B", "-A B -j C", "-A C -j A"), 11)
    assert "(A -> A)" in _refused(_ipt("-A A -j A"), 8)


def test_a_loop_in_one_table_names_that_table() -> None:
    text = _ipt("-A INPUT -j A") + _ipt("-A PREROUTING -j A", "-A A -g A", table="nat")
    assert "nat chains" in _refused(text, 18)


def test_deep_but_acyclic_jumps_are_read() -> None:
    names = [f"C{i}" for i in range(200)]
    body = ["-A INPUT -j C0", *(f"-A {a} -j {b}" for a, b in itertools.pairwise(names)),
            "-A C199 -p tcp --dport 80 -j DROP"]
    rs = read_text(_ipt(*body, chains=" ".join(names)), "deep.rules")
    res = trace([rs], PACKETS[0])
    # the kernel's jump stack holds one entry per user chain (loops are refused), so
    # 200 nested jumps are followed to the end
    assert res.verdict == "drop" and res.rule is not None and res.rule.chain == "C199"
    assert len(res.path) == 201 and res.certain


@pytest.mark.parametrize("how", ["jump", "goto"])
def test_nft_loops_refused(how: str) -> None:
    text = _nft(BASE, _chain("a"), _chain("b"), _rule("in", {"jump": {"target": "a"}}),
                _rule("a", {how: {"target": "b"}}), _rule("b", {how: {"target": "a"}}))
    assert "(a -> b -> a)" in _refused(text, 8)


def test_nft_loop_through_a_verdict_map_refused() -> None:
    vmap = {"vmap": {"key": {"payload": {"protocol": "tcp", "field": "dport"}}, "data": "@m"}}
    text = _nft(BASE, _chain("a"),
                {"map": {"family": "inet", "table": "t", "name": "m", "type": "inet_service",
                         "map": "verdict", "elem": [[80, {"jump": {"target": "a"}}]]}},
                _rule("in", {"jump": {"target": "a"}}), _rule("a", vmap))
    assert "(a -> a)" in _refused(text, 7)
    inline = {"vmap": {"key": {"payload": {"protocol": "tcp", "field": "dport"}},
                       "data": {"set": [[80, {"goto": {"target": "in"}}]]}}}
    assert "(in -> in)" in _refused(_nft(BASE, _rule("in", inline)), 4)


# -- fan-out: a walk that multiplies is stopped by the visit budget ---------------------
def _fan(levels: int, width: int) -> list[str]:
    body = ["-A INPUT -j L0"]
    for i in range(levels - 1):
        body += [f"-A L{i} -p tcp -j L{i + 1}"] * width
    return body


def test_fan_out_stops_at_the_budget() -> None:
    levels = 40  # 10**39 rule visits if walked in full
    rs = read_text(_ipt(*_fan(levels, 10), chains=" ".join(f"L{i}" for i in range(levels))),
                   "fan.rules")
    res = trace([rs], PACKETS[0])
    assert res.verdict == "accept"
    stopped = [n for n in res.not_evaluated if "rule visits" in n.reason]
    assert len(stopped) == 1 and "base chain INPUT" in stopped[0].reason
    assert len(res.path) <= MAX_RULE_VISITS
    assert not res.certain


def test_nft_fan_out_stops_at_the_budget() -> None:
    objs: list[dict[str, Any]] = [BASE, _rule("in", {"jump": {"target": "l0"}})]
    for i in range(15):
        objs.append(_chain(f"l{i}"))
        objs += [_rule(f"l{i}", {"jump": {"target": f"l{i + 1}"}})] * 8
    objs.append(_chain("l15"))
    res = trace([read_text(_nft(*objs), "fan.json")], PACKETS[0])
    assert any("rule visits" in n.reason for n in res.not_evaluated)
    assert len(res.path) <= MAX_RULE_VISITS


# -- malformed values: located issues, the rule not evaluated --------------------------
@pytest.mark.parametrize(("rule", "table", "why"), [
    ("-A PREROUTING -p tcp --dport 80 -j DNAT --to-destination 999.1.1.1:80", "nat",
     "'999.1.1.1' is not an address"),
    ("-A PREROUTING -p tcp -j DNAT --to-destination 192.0.2.1:99999", "nat",
     "port 99999 out of range"),
    ("-A PREROUTING -p tcp -j REDIRECT --to-ports x", "nat", "'x' is not a port"),
    ("-A PREROUTING -j MARK --set-xmark zz/0xffffffff", "mangle", "mark 'zz' is not a number"),
    ("-A PREROUTING -j MARK --set-mark 0x1/0x1ffffffff", "mangle", "not a 32-bit value"),
    ("-A PREROUTING -j MARK --or-mark -1", "mangle", "not a 32-bit value"),
])
def test_bad_target_values_are_located_issues(rule: str, table: str, why: str) -> None:
    text = _ipt(rule, table=table, chains="")
    rs = read_text(text, "bad.rules")
    line = text.splitlines().index(rule) + 1
    assert [(str(i.location), why in i.reason) for i in rs.issues] == [(f"bad.rules:{line}", True)]
    res = trace([rs], PACKETS[0])
    assert [n.rule.position for n in res.not_evaluated] == [1]
    assert why in res.not_evaluated[0].reason


def test_good_mark_still_applies() -> None:
    rs = read_text(_ipt("-A PREROUTING -j MARK --set-xmark 0x5/0xff", table="mangle",
                        chains=""), "ok.rules")
    assert not rs.issues
    res = trace([rs], Packet.build(src="198.51.100.7", dst="192.0.2.10", dport=80, mark=0x1200))
    assert res.packet is not None and res.packet.mark == 0x1205


@pytest.mark.parametrize(("chain", "why"), [
    ({"family": "inet", "name": "c", "hook": "input", "prio": 0}, "no 'table'"),
    ({"family": "inet", "table": "t", "name": "c", "hook": "input", "prio": [0]},
     "prio must be an integer"),
    ({"family": "inet", "table": "t", "name": "c", "hook": "input", "prio": "0"},
     "prio must be an integer"),
    ({"family": "inet", "table": ["t"], "name": "c"}, "table must be a name"),
    ({"family": "inet", "table": "t", "name": "c", "hook": "input", "policy": "maybe"},
     "policy must be accept or drop"),
    ({"family": "nope", "table": "t", "name": "c"}, "unknown family"),
])
def test_malformed_nft_chains_are_located_issues(chain: dict[str, Any], why: str) -> None:
    rs = read_text(_nft(BASE, {"chain": chain}, _rule("in", {"drop": None})), "bad.json")
    assert [(str(i.location), why in i.reason) for i in rs.issues] == [("bad.json:4", True)]
    assert trace([rs], PACKETS[0]).verdict == "drop"  # the rest is still read and traced


# -- hypothesis: mutated rule files, only the located error, bounded work --------------
def _bounded(rulesets: list[Ruleset]) -> None:
    chains = sum(len(rs.hook_chains(f, h)) for rs in rulesets for f in (4, 6)
                 for h in ("prerouting", "input", "forward", "output", "postrouting"))
    for p in PACKETS:
        res: TraceResult = trace(rulesets, p, TraceEnv())
        json.dumps(res.to_json())
        # every visited rule is counted; each base chain is cut at the budget
        seen = len(res.path) + len(res.conditional) + len(res.not_evaluated)
        assert seen <= (MAX_RULE_VISITS + 1) * max(chains, 1) * 2


def _read(text: str, origin: str) -> list[Ruleset]:
    try:
        return [read_text(text, origin)]
    except FirewallError as exc:
        m = LOCATED.match(str(exc))
        assert (m and m["path"] == origin) or str(exc).startswith(f"{origin}: "), str(exc)
        return []


IPT_SEEDS = [p.read_text() for p in sorted(SAMPLES.glob("*.rules"))]
WORDS = ["-j", "-g", "A", "INPUT", "DNAT", "MARK", "--to-destination", "1.2.3.4:99999",
         "--set-xmark", "0x1/0x", "-m", "tcp", "--dport", "80:70", "!", "-p", "-s", "::1/129",
         "COMMIT", "*nat", ":A - [0:0]", "-A A -g A", "-A INPUT -j A", "REJECT", "--reject-with",
         "[1:2]", '"', "--comment", "\x00", "é", "-A", ":INPUT DROP [x:y]", "RETURN", ""]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(IPT_SEEDS), data=st.data())
def test_mutated_iptables_save(seed: str, data: st.DataObject) -> None:
    lines = seed.splitlines()
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(lines)))
        op = data.draw(st.sampled_from(["insert", "delete", "dup", "word", "swap"]))
        if op == "insert":
            lines.insert(i, " ".join(data.draw(st.lists(st.sampled_from(WORDS), max_size=8))))
        elif lines and op == "delete":
            del lines[min(i, len(lines) - 1)]
        elif lines and op == "dup":
            lines.insert(i, lines[min(i, len(lines) - 1)])
        elif lines and op == "word":
            j = min(i, len(lines) - 1)
            words = lines[j].split(" ")
            k = data.draw(st.integers(0, len(words) - 1))
            words[k] = data.draw(st.sampled_from(WORDS) | st.text(max_size=12))
            lines[j] = " ".join(words)
        elif len(lines) > 1:
            j = data.draw(st.integers(0, len(lines) - 1))
            lines[min(i, len(lines) - 1)], lines[j] = lines[j], lines[min(i, len(lines) - 1)]
    _bounded(_read("\n".join(lines), "mut.rules"))


NFT_SEEDS = [json.loads(p.read_text()) for p in sorted((SAMPLES / "nft").glob("*.json"))]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.sampled_from(
        ["in", "a", "@m", "accept", "drop", "input", "inet", "ip", "t", "filter", "999.1.1.1",
         "tcp", "dport", "jump", "goto", "", "x"]) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["jump", "goto", "target", "prio", "table", "family", "name", "chain",
                         "expr", "match", "left", "right", "op", "set", "map", "elem", "key",
                         "data", "vmap", "payload", "meta", "dnat", "addr", "port", "mangle"]),
        inner, max_size=3),
    max_leaves=8)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(NFT_SEEDS), data=st.data())
def test_mutated_nft_json(seed: dict[str, Any], data: st.DataObject) -> None:
    doc = json.loads(json.dumps(seed))
    for _ in range(data.draw(st.integers(1, 5))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(JSON_VALUES)
    _bounded(_read(json.dumps(doc, indent=1), "mut.json"))
