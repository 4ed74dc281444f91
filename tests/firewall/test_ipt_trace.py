"""Tracing through iptables dumps: verdicts, paths, conditions, unevaluated rules, the CLI."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from auditor.cli import app
from auditor.firewall import iptables_ruleset, read_file, read_ipsets, read_text, trace
from auditor.firewall.lint import lint, listening_ports
from auditor.firewall.model import Packet

SAMPLES = Path(__file__).parents[2] / "samples" / "firewall"
sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))


def pkt(**kw: object) -> Packet:
    kw.setdefault("src", "198.51.100.7")
    kw.setdefault("dst", "192.0.2.10")
    kw.setdefault("sport", 40000)
    return Packet.build(**kw)


def test_ufw_reset_rule_named() -> None:
    rs = read_file(str(SAMPLES / "ufw.rules"))
    r = trace([rs], pkt(dport=8080, iif="eth0"))
    assert (r.verdict, r.reject_with) == ("reject", "tcp-reset")
    assert r.rule is not None and (r.rule.chain, r.rule.position) == ("ufw-user-input", 5)
    assert r.path[-1] == r.rule and r.path[0].chain == "INPUT"
    doc = r.to_json()
    assert set(doc) == {"verdict", "reject_with", "rule", "policy", "path", "conditional",
                        "not_evaluated", "nat", "notes"}
    assert doc["nat"] == [] and doc["notes"] == []
    assert doc["rule"]["position"] == 5 and doc["rule"]["text"].endswith("tcp-reset")


def test_conditional_and_not_evaluated_are_reported() -> None:
    rs = read_file(str(SAMPLES / "ufw.rules"))
    r = trace([rs], pkt(dport=22))  # no --in: "-i lo" cannot be decided
    assert r.verdict == "accept" and not r.certain
    assert any("input interface" in n.reason for n in r.not_evaluated)
    assert any("recent list" in c.condition for c in r.conditional)
    fw = read_file(str(SAMPLES / "firewalld.rules"),
                   read_ipsets(str(SAMPLES / "blocklist.ipset")))
    r = trace([fw], pkt(dport=443, iif="eth0"))
    assert r.verdict == "accept"
    (c,) = r.conditional
    assert c.condition == "more than 20 connections per /32 source to port 443"
    assert c.verdict == "reject"


def test_ipset_membership_and_nomatch() -> None:
    fw = read_file(str(SAMPLES / "firewalld.rules"),
                   read_ipsets(str(SAMPLES / "blocklist.ipset")))
    blocked = trace([fw], pkt(src="203.0.113.7", dport=22, iif="eth0"))
    assert blocked.verdict == "drop" and blocked.rule is not None
    assert "--match-set blocklist" in blocked.rule.text
    assert trace([fw], pkt(src="203.0.113.5", dport=22, iif="eth0")).verdict == "accept"
    unknown = read_file(str(SAMPLES / "firewalld.rules"))  # no ipset data given
    r = trace([unknown], pkt(src="203.0.113.7", dport=22, iif="eth0"))
    assert any("blocklist" in n.reason for n in r.not_evaluated)


def test_policy_decides_and_ipv6() -> None:
    fw = read_file(str(SAMPLES / "firewalld.rules"))
    r = trace([fw], pkt(src="2001:db8::7", dst="2001:db8::1", dport=25, iif="eth0"))
    assert r.verdict == "drop" and r.rule is None
    assert r.policy is not None and (r.policy.family, r.policy.chain) == ("ip6", "INPUT")
    r = trace([fw], pkt(src="2001:db8::7", dst="2001:db8::1", dport=443, iif="eth0"))
    assert (r.verdict, r.reject_with) == ("reject", "tcp-reset")


def test_kube_nat_conditional_statistic_and_mark() -> None:
    kp = read_file(str(SAMPLES / "kube-proxy.rules"))
    r = trace([kp], pkt(dst="10.96.0.20", dport=80, iif="eth0", direction="forward",
                        oif="cni0"))
    assert r.verdict == "accept"
    assert any("probability 0.5" in c.condition for c in r.conditional)
    assert any("DNAT" in p.text and "10.244.2.7" in p.text for p in r.path)


def test_docker_user_reject_on_forward() -> None:
    d = read_file(str(SAMPLES / "docker.rules"))
    r = trace([d], pkt(src="203.0.113.9", dst="172.17.0.2", dport=443, iif="eth0",
                       oif="docker0", direction="forward"))
    assert r.verdict == "reject" and r.rule is not None and r.rule.owner == "docker"
    r = trace([d], pkt(dst="172.17.0.2", dport=443, iif="eth0", oif="docker0",
                       direction="forward"))
    assert r.verdict == "accept" and r.rule is not None and r.rule.chain == "DOCKER"


def test_index_gives_same_answers_as_full_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    import bench_trace

    text = bench_trace.generate(600)
    rnd = random.Random(3)
    packets = [pkt(src=f"198.51.{rnd.randrange(100, 102)}.{rnd.randrange(1, 255)}",
                   dst=rnd.choice([f"192.0.2.{rnd.randrange(1, 255)}",
                                   f"10.96.0.{rnd.randrange(1, 150)}"]),
                   dport=rnd.choice([None, rnd.randrange(1, 6000)]),
                   proto=rnd.choice(["tcp", "udp"]), iif="eth0")
               for _ in range(300)]
    indexed = read_text(text, "gen")
    fast = [trace([indexed], p).to_json() for p in packets]
    monkeypatch.setattr(iptables_ruleset, "INDEX_MIN_RULES", 10**9)
    full = read_text(text, "gen")
    assert [trace([full], p).to_json() for p in packets] == fast


def test_index_offers_rules_a_packet_cannot_decide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Indexed rules whose checks need a field the packet lacks are still reported."""
    rnd = random.Random(9)
    keys = ["-s 198.51.100.{n}/32", "-d 192.0.2.{n}/32", "-p tcp -m tcp --dport {n}"]
    needs = ["", "-i eth{n}", "-o eth{n}", "-p tcp -m tcp --sport {n}",
             "-p icmp -m icmp --icmp-type echo-request", "-m conntrack --ctdir ORIGINAL"]
    lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]"]
    for _ in range(80):
        first, second = rnd.choice(needs), rnd.choice(keys)
        if "-p " in first and "-p " in second:
            second = second.replace("-p tcp -m tcp --dport", "-m multiport --dports")
        parts = [first, second] if rnd.random() < 0.5 else [second, first]
        text = " ".join(x.format(n=rnd.randrange(1, 4)) for x in parts if x)
        lines.append(f"-A FORWARD {text} -j {rnd.choice(['ACCEPT', 'DROP', 'LOG'])}")
    text = "\n".join([*lines, "COMMIT", ""])
    packets = [pkt(src=f"198.51.100.{rnd.randrange(1, 4)}", dst=f"192.0.2.{rnd.randrange(1, 4)}",
                   proto=rnd.choice(["tcp", "udp", "icmp"]), direction="forward",
                   sport=rnd.choice([None, 1, 2, 3]), dport=rnd.choice([None, 1, 2, 3]),
                   iif=rnd.choice([None, "eth1", "eth2"]), oif=rnd.choice([None, "eth3"]),
                   icmp_type=rnd.choice([None, 8]), state=rnd.choice(["new", "established"]))
               for _ in range(300)]
    indexed = read_text(text, "gen")
    fast = [trace([indexed], p).to_json() for p in packets]
    monkeypatch.setattr(iptables_ruleset, "INDEX_MIN_RULES", 10**9)
    scan = read_text(text, "gen")
    full = [trace([scan], p).to_json() for p in packets]
    assert full == fast
    assert sum(bool(d["not_evaluated"]) for d in fast) > 100


def test_lint_finds_the_reset_kinds() -> None:
    fw = read_file(str(SAMPLES / "firewalld.rules"))
    found = lint([fw], listening_ports("LISTEN 0 511 0.0.0.0:22 0.0.0.0:*\n"))
    kinds = {(f.kind, f.rule.position, f.rule.family) for f in found}
    assert ("tcp-reset", 2, "ip") in {(k, p, f) for k, p, f in kinds}
    assert any(k == "invalid-drop" for k, _, _ in kinds)
    assert any(k == "low-limit" for k, _, _ in kinds)
    shadowed = [f for f in found if f.kind == "shadowed"]
    # the -s 198.51.100.0/24 --dport 22 rule is covered by the plain --dport 22 one before it
    assert [(f.rule.chain, f.rule.position) for f in shadowed] == [("IN_public_allow", 5)]
    assert any(f.kind == "zero-counters" for f in found)


def test_cli_trace_json_packets_and_lint(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["rules", "trace", "--from", str(SAMPLES / "ufw.rules"), "--src",
                              "198.51.100.7", "--dst", "192.0.2.10", "--dport", "8080", "--in",
                              "eth0", "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["verdict"] == "reject" and doc["rule"]["position"] == 5
    lines = ['{"src": "198.51.100.7", "dst": "192.0.2.10", "dport": 443, "in": "eth0"}',
             '{"src": "nope"}']
    p = tmp_path / "p.ndjson"
    p.write_text("\n".join(lines) + "\n")
    res = runner.invoke(app, ["rules", "trace", "--from", str(SAMPLES / "ufw.rules"),
                              "--packets", str(p)])
    out = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
    assert res.exit_code == 1 and out[0]["verdict"] == "accept" and out[1]["line"] == 2
    res = runner.invoke(app, ["rules", "lint", "--from", str(SAMPLES / "ufw.rules"),
                              "--format", "json", "--no-zero", "--ss", str(p)])
    assert res.exit_code == 0, res.output
    assert {f["kind"] for f in json.loads(res.stdout)} >= {"tcp-reset", "invalid-drop"}
    res = runner.invoke(app, ["rules", "show", "--from", str(SAMPLES / "docker.rules")])
    assert res.exit_code == 0 and "DOCKER-USER" in res.stdout
    res = runner.invoke(app, ["rules", "trace", "--from", str(tmp_path / "missing"),
                              "--src", "192.0.2.1", "--dst", "192.0.2.2"])
    assert res.exit_code == 2
