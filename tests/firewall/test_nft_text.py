"""`nft list ruleset` text: the same model and traces as nft JSON, bad lines kept and counted.

The pairs under samples/firewall/nft (``NAME.txt`` = ``nft -a list ruleset``, ``NAME.json``
= ``nft -j list ruleset`` of one ruleset) and a ruleset loaded live in a network
namespace are read by both readers; models and trace verdicts must be equal.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from auditor.bundle.inputs import open_input
from auditor.bundle.reader import recognise
from auditor.correlate import fwlink
from auditor.correlate.engine import correlate
from auditor.correlate.report import SourceInfo
from auditor.firewall import FirewallError, read_file
from auditor.firewall.model import Packet, TraceEnv
from auditor.firewall.nft_json import NftRuleset, load_json
from auditor.firewall.nft_objects import NftError
from auditor.firewall.nft_text import MAX_ISSUES, MAX_LINE, load_text, looks_like_nft_text
from auditor.firewall.nft_text_values import priority, scalar, seconds
from auditor.firewall.trace import trace
from auditor.pipeline.evidence import read_rulesets

SAMPLES = Path(__file__).parents[2] / "samples" / "firewall" / "nft"
LOCAL = frozenset({"192.0.2.1", "2001:db8::1", "203.0.113.1"})
PACKETS: list[dict[str, Any]] = [
    dict(src=s, dst=d, proto=p, sport=sp, dport=dp, iif=i, state=st)
    for s, d in (("192.0.2.2", "192.0.2.1"), ("198.51.100.7", "192.0.2.1"),
                 ("10.1.2.3", "203.0.113.1"), ("2001:db8::2", "2001:db8::1"),
                 ("2001:db8:bad::9", "2001:db8::1"))
    for p, sp, dp in (("tcp", 40000, 22), ("tcp", 40001, 25), ("tcp", 40002, 80),
                      ("tcp", 40003, 443), ("tcp", 40004, 8000), ("tcp", 40005, 8443),
                      ("tcp", 40006, 9001), ("tcp", 40007, 9999), ("udp", 53, 5353),
                      ("udp", 40008, 1500), ("tcp", 40009, 7000), ("tcp", 40010, 10443))
    for i in ("lo", "eth0")
    for st in ("new", "established")
]


def _rule(r: Any) -> tuple[Any, ...]:
    ref = r.ref
    return (r.handle, r.position, r.expr, r.text, r.comment, ref.text, ref.handle, ref.packets,
            ref.bytes, ref.target, ref.reject_with, ref.dports)


def _model(rs: NftRuleset) -> dict[str, Any]:
    """Everything the readers build, but where it was read (file:line) and the device a
    netdev chain names (nft 1.0.6 JSON leaves it out); the ``dynamic`` flag nft's text adds
    to sets rules fill is in ``NftSet.dynamic`` either way."""
    return {
        "tables": rs.tables,
        "sets": {k: (s.type, s.handle, tuple(f for f in s.flags if f != "dynamic"),
                     s.map_type, s.elements, s.dynamic) for k, s in rs.sets.items()},
        "chains": {k: (c.handle, c.type, c.hook, c.priority, c.policy,
                       [_rule(r) for r in c.rules]) for k, c in rs.chains.items()},
    }


def _verdicts(rs: NftRuleset) -> list[Any]:
    out = []
    env = TraceEnv(LOCAL)
    for kw in PACKETS:
        res = trace([rs], Packet.build(**kw), env)
        out.append((res.verdict, res.reject_with, res.rule and res.rule.handle,
                    res.policy and res.policy.chain, [r.handle for r in res.path],
                    [(c.rule.handle, c.condition) for c in res.conditional],
                    [(n.rule.handle, n.reason) for n in res.not_evaluated]))
    return out


def _assert_same(text: str, js: str) -> NftRuleset:
    t, j = load_text(text, "nft.txt"), load_json(js, "nft.json")
    assert t.issues == [] and j.issues == []
    assert _model(t) == _model(j)
    assert _verdicts(t) == _verdicts(j)
    assert all(r.location is not None and r.location.path == "nft.txt" for r in t.rules())
    return t


@pytest.mark.parametrize("name", ["expressions", "everything", "varied"])
def test_text_and_json_of_one_ruleset_give_one_model(name: str) -> None:
    t = _assert_same((SAMPLES / f"{name}.txt").read_text(), (SAMPLES / f"{name}.json").read_text())
    lines = (SAMPLES / f"{name}.txt").read_text().splitlines()
    for r in t.rules():  # each rule cites its own line, whose handle is its handle
        assert r.location is not None and f"# handle {r.handle}" in lines[r.location.line - 1]


def test_varied_sample_reads_what_it_shows() -> None:
    rs = load_text((SAMPLES / "varied.txt").read_text(), "varied.txt")
    assert {t[0] for t in rs.tables} == {"inet", "ip", "ip6", "bridge", "netdev", "arp"}
    inp = rs.chains[("inet", "web", "input")]
    assert (inp.hook, inp.priority, inp.policy) == ("input", 10, "drop")
    assert rs.chains[("ip", "nat", "prerouting")].priority == -100
    assert rs.sets[("inet", "web", "meter4")].dynamic
    assert rs.sets[("inet", "web", "timed")].elements[1] == {
        "elem": {"val": "192.0.2.10", "timeout": 183600, "expires": 183599, "comment": "x"}}
    assert rs.sets[("inet", "web", "portmap")].map_type == "verdict"
    limited = next(r for r in rs.rules() if "limit rate over 5/second" in r.text
                   and r.table == "web")
    assert limited.target == "jump" and limited.dports == (80, 443)
    res = trace([rs], Packet.build(src="192.0.2.2", dst="192.0.2.1", proto="tcp", sport=1,
                                   dport=443, state="new"), TraceEnv(LOCAL))
    assert any("over 5/second" in c.condition for c in res.conditional)


def test_iptables_nft_tables_are_left_to_iptables() -> None:
    rs = load_text((SAMPLES / "iptables-nft.txt").read_text(), "iptables-nft.txt")
    assert {t.name for t in rs.iptables_tables} == {"filter", "nat"}
    assert list(rs.rules()) == [] and rs.hook_chains(4, "input") == []


def test_malformed_lines_are_kept_and_counted() -> None:
    """samples/firewall/nft/malformed.txt says, above each bad line, what it must give."""
    text = (SAMPLES / "malformed.txt").read_text()
    lines = text.splitlines()
    want = {i + 2: ln.split(":", 1)[1].strip() for i, ln in enumerate(lines)
            if ln.startswith("# expect:")}
    rs = load_text(text, "malformed.txt")
    assert {i.location.line for i in rs.issues} == set(want)
    assert all(i.parser == "nft-text" and i.location.path == "malformed.txt" for i in rs.issues)
    unreadable = {r.location.line: r for r in rs.rules() if r.location is not None
                  and want.get(r.location.line) == "unreadable"}
    assert set(unreadable) == {n for n, w in want.items() if w == "unreadable"}
    for n, r in unreadable.items():  # the line is the rule's text, its handle is kept
        assert r.text == lines[n - 1].split(" # handle")[0].strip() and r.handle is not None
        assert r.target is None
    assert [r.handle for r in rs.rules() if r.location.line not in unreadable] == [5, 11, 2]
    assert rs.sets[("inet", "broken", "good")].elements == (80, 443)
    # an unreadable rule is reported by the trace, never taken as a miss silently
    res = trace([rs], Packet.build(src="192.0.2.2", dst="192.0.2.1", proto="tcp", sport=1,
                                   dport=81, state="new"), TraceEnv(LOCAL))
    assert 6 in {n.rule.handle for n in res.not_evaluated}
    assert any("not understood" in n.reason for n in res.not_evaluated)


def test_hostile_text_never_crashes() -> None:
    base = (SAMPLES / "varied.txt").read_text()
    for cut in range(1, len(base), max(1, len(base) // 60)):  # truncated anywhere
        load_text(base[:cut] + "\n", "cut.txt") if looks_like_nft_text(base[:cut]) else None
    bad = "\n".join(f"\t\tfrobnicate {i} # handle {i}" for i in range(MAX_ISSUES + 50))
    rs = load_text("table ip t {\n\tchain c {\n" + bad + "\n\t}\n}\n", "many.txt")
    assert len(rs.issues) == MAX_ISSUES + 1 and "50 more lines" in rs.issues[-1].reason
    assert len(list(rs.rules())) == MAX_ISSUES + 50  # every one kept as unreadable
    long = "tcp dport { " + ", ".join(["1"] * (MAX_LINE // 3)) + " } drop"
    weird = 'ip saddr 192.0.2.1 log prefix "\x1b[31mred\x07" drop'
    rs = load_text(f"table ip t {{\n\tchain c {{\n\t\t{long}\n\t\t{weird}\n"
                   "\t\t{{{{{{{{{{ drop\n\tchain d {\n", "odd.txt")
    assert any("longer than" in i.reason for i in rs.issues)
    assert any("not closed" in i.reason for i in rs.issues)
    assert all(i.text.isprintable() for i in rs.issues)
    with pytest.raises(NftError, match="not an nft ruleset"):
        load_text("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n", "ipt.txt")


def test_loops_are_refused_like_json() -> None:
    text = "table ip t {\n\tchain a {\n\t\tjump b\n\t}\n\tchain b {\n\t\tjump a\n\t}\n}\n"
    with pytest.raises(NftError, match="loop"):
        load_text(text, "loop.txt")


@pytest.mark.parametrize(("raw", "value"), [
    ("443", 443), ("0x00000010", 16), ("1h30m", 5400), ("59m59s992ms", 3599),
    ("192.0.2.0/24", {"prefix": {"addr": "192.0.2.0", "len": 24}}),
    ("2001:db8::/32", {"prefix": {"addr": "2001:db8::", "len": 32}}),
    ("8000-8080", {"range": [8000, 8080]}),
    ("192.0.2.5-192.0.2.9", {"range": ["192.0.2.5", "192.0.2.9"]}),
    ("established,related", ["established", "related"]), ("ipv6-icmp", "ipv6-icmp"),
    ("@svc", "@svc"), ("2001:db8::1", "2001:db8::1"), ("nd-neighbor-solicit",
                                                       "nd-neighbor-solicit"),
    ("x/24", "x/24"), ("1" * 60, "1" * 60),
])
def test_values_read_as_nft_json_holds_them(raw: str, value: Any) -> None:
    assert scalar(raw) == value


def test_priorities_and_durations() -> None:
    assert priority("filter + 10", "inet", "input") == 10
    assert priority("dstnat", "ip", "prerouting") == -100
    assert priority("dstnat", "bridge", "prerouting") == -300
    assert priority("raw - 5", "ip6", "prerouting") == -305
    assert priority("-500", "netdev", "ingress") == -500
    with pytest.raises(ValueError):
        priority("srcnat", "inet", "input")
    assert seconds("2d3h") == 183600


def test_recognised_and_read_by_content(tmp_path: Path) -> None:
    text = (SAMPLES / "varied.txt").read_text()
    assert recognise(text.splitlines()[:60]) == "nft-text"
    assert recognise(["# Warning: table ip filter is managed by iptables-nft, do not touch!",
                      *text.splitlines()[:20]]) == "nft-text"
    assert recognise(["table of contents {", "  chapter 1"]) != "nft-text"
    path = tmp_path / "nft_-a_list_ruleset"
    path.write_text(text)
    rs = read_file(str(path))
    assert rs.backend == "nftables" and any(True for _ in rs.rules())
    path.write_text("table ip t {\n\tchain a {\n\t\tjump a\n\t}\n}\n")
    with pytest.raises(FirewallError, match=str(path)):
        read_file(str(path))


def test_one_listing_per_input(tmp_path: Path) -> None:
    """JSON is preferred to text; of several texts, the one with handles is read."""
    sos = tmp_path / "sosreport-x"
    fw = sos / "sos_commands" / "firewall_tables"
    fw.mkdir(parents=True)
    text = (SAMPLES / "varied.txt").read_text()
    (fw / "nft_-a_list_ruleset").write_text(text)
    (fw / "nft_list_ruleset").write_text(re.sub(r" # handle \d+", "", text))
    sources: list[SourceInfo] = []
    rulesets = read_rulesets(open_input(str(sos)), sources)
    assert len(rulesets) == 1 and rulesets[0].origin.endswith("nft_-a_list_ruleset")
    used = {Path(s.path).name: s.used for s in sources if "nft" in s.path}
    assert used == {"nft_-a_list_ruleset": True, "nft_list_ruleset": False}
    (fw / "nft.json").write_text((SAMPLES / "varied.json").read_text())
    sources = []
    rulesets = read_rulesets(open_input(str(sos)), sources)
    assert [r.origin for r in rulesets] == [str(fw / "nft.json")]


def test_a_limit_jumping_to_a_reject_is_found_without_logs() -> None:
    """firewalld-shaped: the limit rule counted, the reject it jumps to counts nothing."""
    rs = load_text((SAMPLES / "firewalld-limit.txt").read_text(), "firewalld-limit.txt")
    assert rs.issues == []
    (gate, end, cond), = fwlink.gated_rejects([rs])
    assert (gate.chain, gate.handle, gate.packets) == ("filter_IN_public_deny", 50, 25)
    assert (end.chain, end.reject_with) == ("limit_reject", "tcp reset")
    assert cond.startswith("add @ratelimited {") and gate.dports == (8443, 10443)
    report = correlate([], [rs])
    top = report.findings[0]
    assert top.cause == "firewall-rate-limit"
    assert top.rule is not None and (top.rule.chain, top.rule.handle) == (
        "filter_IN_public_deny", 50)
    assert set(top.ports) == {8443, 10443}
    # the same rule without its counter is history, not evidence: nothing to say
    quiet = (SAMPLES / "firewalld-limit.txt").read_text().replace("packets 25 bytes 1500",
                                                                  "packets 0 bytes 0")
    assert fwlink.gated_rejects([load_text(quiet, "quiet.txt")]) == []


CAN_RUN = shutil.which("nft") is not None and shutil.which("ip") is not None


def _ns(*args: str, ns: str, stdin: str | None = None) -> str:
    proc = subprocess.run(["ip", "netns", "exec", ns, *args], input=stdin, capture_output=True,
                          text=True, timeout=30, check=True)
    return proc.stdout


@pytest.mark.root
@pytest.mark.skipif(not CAN_RUN, reason="needs root, nft and ip (network namespaces)")
def test_live_listing_text_and_json_agree() -> None:
    """A varied ruleset loaded in a namespace of ours: both listings, one model."""
    name = "hnt" + secrets.token_hex(3)
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
    try:
        nft = (SAMPLES / "varied.nft").read_text() + (SAMPLES / "expressions.nft").read_text()
        _ns("nft", "-f", "-", ns=name, stdin=nft)
        text = _ns("nft", "-a", "list", "ruleset", ns=name)
        js = _ns("nft", "-j", "list", "ruleset", ns=name)
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=30)
    rs = _assert_same(text, js)
    assert sum(1 for _ in rs.rules()) > 100


def test_a_reject_reached_by_jumps_stops_their_ports() -> None:
    """A counted reject in a user chain names no port: those of the rules jumping to it do."""
    text = ("table inet fw {\n\tchain web_in {\n"
            "\t\tmeta l4proto tcp counter packets 20 bytes 1200 reject with tcp reset\n\t}\n"
            "\tchain other {\n\t\tcounter packets 3 bytes 180 reject\n\t}\n"
            "\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n"
            "\t\ttcp dport 22 accept\n"
            "\t\ttcp dport vmap { 8888 : jump web_in, 9443 : accept }\n"
            "\t\ttcp dport { 5000, 5001 } jump web_in\n"
            "\t\ttcp dport 80 reject with tcp reset\n\t}\n}\n")
    rs = load_text(text, "jumps.txt")
    rejects = {r.chain: r for r in rs.rules() if r.target == "reject"}
    assert fwlink.rule_ports([rs], rejects["web_in"]) == (5000, 5001, 8888)
    assert fwlink.rule_ports([rs], rejects["input"]) == (80,)
    assert fwlink.rule_ports([rs], rejects["other"]) == ()  # nothing jumps there


def test_notes_on_block_lines_are_not_names() -> None:
    """nft adds notes after a block's `{` (an owned table's progname); rules keep theirs."""
    text = ("table inet firewalld { # handle 4 progname firewalld\n\tflags owner,persist\n"
            "\tchain c { # handle 2\n\t\ttcp dport 1 accept comment \"a { # b\" # handle 7\n"
            "\t}\n}\n")
    rs = load_text(text, "owned.txt")
    assert rs.issues == [] and rs.tables[("inet", "firewalld")].handle == 4
    assert rs.tables[("inet", "firewalld")].flags == ("owner", "persist")
    (rule,) = rs.rules()
    assert (rule.handle, rule.comment) == (7, "a { # b")
