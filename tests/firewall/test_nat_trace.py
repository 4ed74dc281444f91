"""NAT in traces: DNAT/REDIRECT rewrite the destination and re-decide the route, SNAT and
MASQUERADE the source; established packets keep their addresses, and the result says so.

iptables dumps are written here in ``iptables-save`` form; nftables rulesets in the JSON
shapes ``nft -j list ruleset`` (1.0.6) prints for the same statements.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from auditor.cli import app
from auditor.firewall import read_file, read_text, trace
from auditor.firewall.model import Packet, TraceEnv
from auditor.firewall.nat import NatTo, parse_to
from auditor.firewall.nft_json import load_json

SAMPLES = Path(__file__).parents[2] / "samples" / "firewall"
HOST = TraceEnv(frozenset({"192.0.2.10", "127.0.0.1"}),
                (("lo", "127.0.0.1"), ("eth0", "192.0.2.10"), ("eth1", "198.51.100.1")))


def pkt(**kw: Any) -> Packet:
    kw.setdefault("src", "203.0.113.9")
    kw.setdefault("dst", "192.0.2.10")
    kw.setdefault("sport", 40000)
    kw.setdefault("iif", "eth0")
    return Packet.build(**kw)


def ipt(*nat: str, filt: tuple[str, ...] = ()) -> Any:
    lines = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
             ":POSTROUTING ACCEPT [0:0]", *nat, "COMMIT", "*filter", ":INPUT DROP [0:0]",
             ":FORWARD DROP [0:0]", ":OUTPUT ACCEPT [0:0]", *filt, "COMMIT", ""]
    return read_text("\n".join(lines), "test.rules")


@pytest.mark.parametrize(("text", "want"), [
    ("172.17.0.2:443", NatTo("172.17.0.2", None, 443)),
    ("10.0.0.1-10.0.0.3:8000-8010", NatTo("10.0.0.1", "10.0.0.3", 8000, 8010)),
    ("192.0.2.7", NatTo("192.0.2.7")),
    ("[2001:db8::5]:8443", NatTo("2001:db8::5", None, 8443)),
    ("2001:db8::5", NatTo("2001:db8::5")),
    ("8080", NatTo(None, None, 8080)),
    ("1000-2000", NatTo(None, None, 1000, 2000)),
    ("10.1.0.0/16", NatTo("10.1.0.0/16")),
])
def test_parse_to(text: str, want: NatTo) -> None:
    assert parse_to(text) == want


def test_docker_published_port_is_forwarded_to_the_container() -> None:
    d = read_file(str(SAMPLES / "docker.rules"))
    r = trace([d], pkt(dport=8443, oif="docker0"), HOST)
    assert r.verdict == "reject" and r.rule is not None
    assert (r.rule.chain, r.rule.position) == ("DOCKER-USER", 1)  # FORWARD, not INPUT
    (step,) = r.nat
    assert (step.kind, step.hook, step.before, step.after) == (
        "dnat", "prerouting", "192.0.2.10:8443", "172.17.0.2:443")
    assert step.rule.chain == "DOCKER" and step.rule.position == 2
    assert r.packet is not None and (r.packet.dst, r.packet.dport) == ("172.17.0.2", 443)
    assert r.packet.direction == "forward"
    assert any("forward, not input" in n for n in r.notes)
    ok = trace([d], pkt(src="198.51.100.7", dport=8443, oif="docker0"), HOST)
    assert ok.verdict == "accept" and ok.rule is not None and ok.rule.chain == "DOCKER"
    assert ok.rule.text.endswith("--dport 443 -j ACCEPT")


def test_unknown_host_addresses_assume_dnat_target_is_not_local() -> None:
    d = read_file(str(SAMPLES / "docker.rules"))
    r = trace([d], pkt(src="198.51.100.7", dport=8443, oif="docker0"))
    assert r.packet is not None and r.packet.direction == "forward"
    assert any("taken as not local" in n for n in r.notes)


def test_dnat_to_a_local_port_stays_on_input() -> None:
    rs = ipt("-A PREROUTING -p tcp -m tcp --dport 8080 -j DNAT --to-destination 192.0.2.10:22",
             filt=("-A INPUT -p tcp -m tcp --dport 8080 -j ACCEPT",
                   "-A INPUT -p tcp -m tcp --dport 22 -j REJECT --reject-with tcp-reset"))
    r = trace([rs], pkt(dport=8080), HOST)
    assert (r.verdict, r.reject_with) == ("reject", "tcp-reset")
    assert r.rule is not None and r.rule.position == 2
    assert r.nat[0].after == "192.0.2.10:22" and not r.notes


def test_dnat_range_takes_the_first_and_says_so() -> None:
    rs = ipt("-A PREROUTING -d 192.0.2.10/32 -p udp -m udp --dport 53 -j DNAT "
             "--to-destination 198.51.100.20-198.51.100.29:5300-5309",
             filt=("-A FORWARD -d 198.51.100.20/32 -p udp -m udp --dport 5300 -j ACCEPT",))
    r = trace([rs], pkt(proto="udp", dport=53, oif="eth1"), HOST)
    assert r.verdict == "accept" and r.rule is not None and r.rule.chain == "FORWARD"
    note = r.nat[0].note or ""
    assert "198.51.100.20-198.51.100.29" in note and "5300-5309" in note


def test_redirect_goes_to_the_ingress_address_or_loopback() -> None:
    rs = ipt("-A PREROUTING -i eth1 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 3128",
             "-A OUTPUT -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 3129",
             filt=("-A INPUT -p tcp -m tcp --dport 3128 -j ACCEPT",))
    # a forwarded web request is redirected to the local proxy: INPUT, not FORWARD
    r = trace([rs], pkt(dst="203.0.113.80", dport=80, iif="eth1", direction="forward",
                        oif="eth0"), HOST)
    assert r.verdict == "accept" and r.rule is not None and r.rule.chain == "INPUT"
    assert r.nat[0].kind == "redirect" and r.nat[0].after == "198.51.100.1:3128"
    assert r.packet is not None and r.packet.direction == "input" and r.packet.oif is None
    # without interface addresses: destination kept, delivered locally, and said so
    r = trace([rs], pkt(dst="203.0.113.80", dport=80, iif="eth1", direction="forward"))
    assert r.nat[0].after == "<address of eth1>:3128" and "not known" in (r.nat[0].note or "")
    assert r.packet is not None and r.packet.direction == "input"
    out = trace([rs], pkt(src="192.0.2.10", dst="203.0.113.80", dport=80, iif=None,
                          direction="output"), HOST)
    assert out.nat[0].after == "127.0.0.1:3129" and out.nat[0].hook == "output"


def test_snat_and_masquerade_rewrite_the_source_in_postrouting() -> None:
    rs = ipt("-A POSTROUTING -s 203.0.113.0/24 -o eth1 -j MASQUERADE",
             "-A POSTROUTING -s 198.51.100.0/24 -o eth1 -j SNAT --to-source 198.51.100.1:2000",
             filt=("-A FORWARD -i eth0 -o eth1 -j ACCEPT",))
    fwd = {"dst": "198.51.100.99", "dport": 443, "direction": "forward", "oif": "eth1"}
    r = trace([rs], pkt(**fwd), HOST)
    assert r.verdict == "accept"
    (step,) = r.nat
    assert (step.kind, step.hook, step.before, step.after) == (
        "masquerade", "postrouting", "203.0.113.9:40000", "198.51.100.1:40000")
    assert step.text == "MASQUERADE source 203.0.113.9:40000 -> 198.51.100.1:40000"
    assert r.packet is not None and r.packet.src == "198.51.100.1"
    r = trace([rs], pkt(**fwd))  # the egress interface's address unknown
    assert r.nat[0].after == "<address of eth1>:40000" and r.packet is not None
    assert r.packet.src == "203.0.113.9"
    r = trace([rs], pkt(src="198.51.100.5", **fwd), HOST)
    assert r.nat[0].kind == "snat" and r.nat[0].after == "198.51.100.1:2000"


def test_ipv6_dnat_in_a_dump_without_header() -> None:
    rs = ipt("-A PREROUTING -p tcp -m tcp --dport 443 -j DNAT --to-destination "
             "[2001:db8::5]:8443",
             filt=("-A FORWARD -d 2001:db8::5/128 -p tcp -m tcp --dport 8443 -j REJECT "
                   "--reject-with tcp-reset",))
    r = trace([rs], pkt(src="2001:db8::7", dst="2001:db8::1", dport=443),
              TraceEnv(frozenset({"2001:db8::1"})))
    assert (r.verdict, r.reject_with) == ("reject", "tcp-reset")
    assert r.nat[0].text == "DNAT destination [2001:db8::1]:443 -> [2001:db8::5]:8443"


def test_established_packets_are_not_translated_and_say_why() -> None:
    d = read_file(str(SAMPLES / "docker.rules"))
    r = trace([d], pkt(dport=8443, state="established", oif="docker0"), HOST)
    assert not r.nat and r.packet is not None and r.packet.dst == "192.0.2.10"
    assert r.path == () and r.policy is not None and r.policy.chain == "INPUT"
    (note,) = r.notes
    assert "ct state established" in note and "nat DOCKER #2" in note
    assert not trace([d], pkt(dport=8443, state="invalid"), HOST).notes
    assert not trace([d], pkt(dport=9999, state="established"), HOST).notes


# -- nftables ------------------------------------------------------------------------------
def _m(proto: str, field: str, right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": {"payload": {"protocol": proto, "field": field}},
                      "right": right}}


def nft(chains: dict[tuple[str, str, str | None], list[list[dict[str, Any]]]],
        fam: str = "inet", sets: tuple[dict[str, Any], ...] = ()) -> Any:
    objs: list[dict[str, Any]] = [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
                                  {"table": {"family": fam, "name": "t", "handle": 1}}]
    rules, handle = [], 1
    for (name, type_, hook), body in chains.items():
        c: dict[str, Any] = {"family": fam, "table": "t", "name": name, "handle": handle}
        if hook:
            prio = {"prerouting": -100, "output": -100, "postrouting": 100}.get(hook, 0)
            c.update(type=type_, hook=hook, prio=prio if type_ == "nat" else 0,
                     policy="accept")
        objs.append({"chain": c})
        for expr in body:
            handle += 1
            rules.append({"rule": {"family": fam, "table": "t", "chain": name,
                                   "handle": handle, "expr": expr}})
        handle += 1
    objs += [{"map": {"family": fam, "table": "t", **s}} for s in sets]
    return load_json(json.dumps({"nftables": objs + rules}), "test.json")


def _filters(rule: list[dict[str, Any]]) -> dict[tuple[str, str, str | None], Any]:
    return {("input", "filter", "input"): [[_m("tcp", "dport", 22), {"accept": None}],
                                           [{"drop": None}]],
            ("forward", "filter", "forward"): [rule]}


def test_nft_dnat_forms() -> None:
    concat = {"concat": [{"payload": {"protocol": "ip", "field": "daddr"}},
                         {"payload": {"protocol": "tcp", "field": "dport"}}]}
    pre = [
        [_m("tcp", "dport", 1), {"dnat": {"family": "ip", "addr": "192.0.2.10", "port": 22}}],
        [_m("tcp", "dport", 5), {"dnat": {"family": "ip", "addr": {"map": {
            "key": concat, "data": {"set": [[{"concat": ["192.0.2.10", 5]},
                                             {"concat": ["198.51.100.7", 8443]}]]}}}}}],
        [_m("tcp", "dport", 7), {"dnat": {"family": "ip", "addr": {"map": {
            "key": concat, "data": "@dm"}}}}],
        [_m("tcp", "dport", 8), {"redirect": {"port": 22}}],
        [_m("tcp", "dport", 9), {"dnat": {"family": "ip6", "addr": "2001:db8::7"}}],
    ]
    dm = {"name": "dm", "type": ["ipv4_addr", "inet_service"], "handle": 90,
          "map": ["ipv4_addr", "inet_service"],
          "elem": [[{"concat": ["192.0.2.10", 7]}, {"concat": ["198.51.100.8", 8080]}]]}
    fwd = [_m("ip", "daddr", "198.51.100.7"), {"counter": {"packets": 0, "bytes": 0}},
           {"reject": {"type": "tcp reset"}}]
    rs = nft({("pre", "nat", "prerouting"): pre, **_filters(fwd)}, sets=(dm,))
    r = trace([rs], pkt(dport=1), HOST)
    assert r.verdict == "accept" and r.nat[0].after == "192.0.2.10:22"
    assert r.rule is not None and r.rule.chain == "input"
    r = trace([rs], pkt(dport=5, oif="eth1"), HOST)
    assert (r.verdict, r.reject_with) == ("reject", "tcp reset")
    assert r.nat[0].after == "198.51.100.7:8443" and r.nat[0].rule.text.startswith("tcp dport 5")
    r = trace([rs], pkt(dport=7, oif="eth1"), HOST)
    assert r.nat[0].after == "198.51.100.8:8080" and r.verdict == "accept"
    assert [p.chain for p in r.path] == ["pre"]  # forward: its rule is for another address
    assert r.packet is not None and r.packet.direction == "forward"
    r = trace([rs], pkt(dst="192.0.2.99", dport=5, direction="forward"), HOST)
    assert not r.nat and not r.path  # no map element: the rule breaks off
    r = trace([rs], pkt(dport=8), HOST)
    assert r.nat[0].kind == "redirect" and r.nat[0].after == "192.0.2.10:22"
    assert r.rule is not None and r.rule.chain == "input" and r.verdict == "accept"
    r = trace([rs], pkt(dport=9), HOST)  # an ip6 dnat does nothing to an IPv4 packet
    assert not r.nat and r.verdict == "drop"
    assert [p.chain for p in r.path] == ["pre", "input"]


def test_nft_snat_masquerade_and_one_binding_per_hook() -> None:
    post = [[{"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "eth1"}},
             _m("ip", "saddr", {"prefix": {"addr": "203.0.113.0", "len": 24}}),
             {"masquerade": None}],
            [{"snat": {"family": "ip", "addr": {"range": ["198.51.100.1", "198.51.100.4"]}}}]]
    rs = nft({("post", "nat", "postrouting"): post,
              ("post2", "nat", "postrouting"): [[{"snat": {"addr": "198.51.100.9"}}]],
              **_filters([{"accept": None}])}, fam="ip")
    fwd = {"dst": "198.51.100.99", "dport": 443, "direction": "forward", "oif": "eth1"}
    r = trace([rs], pkt(**fwd), HOST)
    assert [(s.kind, s.after) for s in r.nat] == [("masquerade", "198.51.100.1:40000")]
    r = trace([rs], pkt(src="192.0.2.50", **fwd), HOST)
    assert [(s.kind, s.after) for s in r.nat] == [("snat", "198.51.100.1:40000")]
    assert "198.51.100.1-198.51.100.4" in (r.nat[0].note or "")
    assert all(p.chain != "post2" for p in r.path)  # the connection was bound already


def test_cli_shows_the_translation(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, [
        "rules", "trace", "--from", str(SAMPLES / "docker.rules"), "--src", "203.0.113.9",
        "--dst", "192.0.2.10", "--dport", "8443", "--in", "eth0", "--local", "192.0.2.10"])
    assert res.exit_code == 0, res.output
    assert "nat: DNAT destination 192.0.2.10:8443 -> 172.17.0.2:443 at prerouting" in res.stdout
    assert "route is decided again: forward" in res.stdout
    res = CliRunner().invoke(app, [
        "rules", "trace", "--from", str(SAMPLES / "docker.rules"), "--src", "203.0.113.9",
        "--dst", "192.0.2.10", "--dport", "8443", "--in", "eth0", "-f", "json"])
    doc = json.loads(res.stdout)
    assert doc["verdict"] == "reject" and doc["rule"]["chain"] == "DOCKER-USER"
    (step,) = doc["nat"]
    assert step["after"] == "172.17.0.2:443" and step["rule"]["chain"] == "DOCKER"
