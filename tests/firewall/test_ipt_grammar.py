"""The iptables-save grammar on the sample dumps, and bad input reported with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor.firewall import FirewallError, read_file
from auditor.firewall.iptables_ruleset import IptablesRuleset
from auditor.firewall.iptables_save import Option, group_options, parse_save

SAMPLES = Path(__file__).parents[2] / "samples" / "firewall"
GOOD = ["ufw.rules", "docker.rules", "firewalld.rules", "kube-proxy.rules"]


@pytest.mark.parametrize("name", GOOD)
def test_samples_read_cleanly_with_owners(name: str) -> None:
    rs = read_file(str(SAMPLES / name))
    assert isinstance(rs, IptablesRuleset)
    assert rs.issues == []
    rules = list(rs.rules())
    assert rules
    owner = {"ufw.rules": "ufw", "docker.rules": "docker", "firewalld.rules": "firewalld",
             "kube-proxy.rules": "kube-proxy"}[name]
    assert any(r.owner == owner for r in rules)
    text = (SAMPLES / name).read_text().splitlines()
    for r in rules:  # the rule text is the dump's line without counters, at its location
        assert r.location is not None
        assert text[r.location.line - 1].endswith(r.text)


def test_positions_counters_and_reject_type() -> None:
    rs = read_file(str(SAMPLES / "ufw.rules"))
    by = {(r.chain, r.position): r for r in rs.rules()}
    r = by[("ufw-user-input", 5)]
    assert r.text == "-A ufw-user-input -p tcp -m tcp --dport 8080 -j REJECT --reject-with tcp-reset"
    assert (r.packets, r.bytes, r.target, r.reject_with, r.can_reset) == (
        5, 300, "reject", "tcp-reset", True)
    assert by[("ufw-user-input", 4)].comment == "'dapp_Nginx%20Full'"
    policies = {p.chain: p for p in rs.policies()}
    assert (policies["INPUT"].policy, policies["INPUT"].packets) == ("drop", 120)


def test_concatenated_v4_v6_dump() -> None:
    rs = read_file(str(SAMPLES / "firewalld.rules"))
    fams = {r.family for r in rs.rules()}
    assert fams == {"ip", "ip6"}
    six = [r for r in rs.rules() if r.family == "ip6" and r.target == "reject"]
    assert six and six[0].reject_with == "tcp-reset"


def test_matches_negations_and_quoting() -> None:
    words = ['-s', '192.0.2.0/24', '!', '-i', 'eth+', '-p', 'tcp', '-m', 'tcp', '!', '--dport',
             '22', '-m', 'comment', '--comment', '"say \\"hi\\""', '-j', 'LOG', '--log-prefix',
             '"x: "']
    matches, target, topts, goto = group_options(words)
    assert [m.name for m in matches] == ["", "tcp", "comment"]
    assert matches[0].options[1] == Option("i", ("eth+",), True)
    assert matches[1].options == (Option("dport", ("22",), True),)
    assert matches[2].options[0].arg == 'say "hi"'
    assert (target, topts, goto) == ("LOG", (Option("log-prefix", ("x: ",)),), False)


def test_bad_lines_are_reported_with_location_never_raised() -> None:
    path = SAMPLES / "fail2ban-bad.rules"
    rs = read_file(str(path))
    lines = {i.location.line: i.reason for i in rs.issues}
    assert set(lines) == {10, 11, 12, 13, 15, 17}, lines
    assert "--dport needs a value" in lines[10]
    assert all(i.location.path == str(path) for i in rs.issues)
    # the good rules around them are still there, the u32 one is kept but not evaluated
    texts = [r.text for r in rs.rules()]
    assert "-A f2b-sshd -s 198.51.100.23/32 -j REJECT --reject-with icmp-port-unreachable" in texts
    assert any("u32" in t for t in texts)


@pytest.mark.parametrize("text", ["", "hello\n", "{not json", "\x00\xff garbage",
                                  "*filter\n:INPUT ACCEPT\n-A INPUT -j\n"])
def test_garbage_gives_clear_error_or_issues(tmp_path: Path, text: str) -> None:
    p = tmp_path / "x.rules"
    p.write_text(text)
    try:
        rs = read_file(str(p))
    except FirewallError as exc:
        assert str(p) in str(exc)
    else:
        assert rs.issues and all(str(p) in str(i.location) for i in rs.issues)


def test_unclosed_table_reported() -> None:
    dump = parse_save("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j DROP\n", "mem")
    assert [i.reason for i in dump.issues] == ["table filter not closed by COMMIT"]
    assert len(dump.tables[0].chains["INPUT"].rules) == 1
