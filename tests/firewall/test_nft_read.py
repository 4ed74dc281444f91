"""nftables reading and rendering: saved samples, bad input, iptables-nft tables, live read."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from auditor.firewall.model import Packet, TraceEnv
from auditor.firewall.nft_json import NftError, load_json
from auditor.firewall.trace import trace

sys.path.insert(0, str(Path(__file__).parent))
from nft_lab import CAN_RUN, REASON, NftLab, sh

SAMPLES = Path(__file__).parents[2] / "samples" / "firewall" / "nft"


def _norm(text: str) -> str:
    # nft 1.0.6 JSON omits a netdev chain's device: the one thing the JSON cannot give back.
    text = re.sub(r' device "[^"]*"', "", text)
    return re.sub(r"\s+", " ", text).strip()


@pytest.mark.parametrize("name", ["everything", "expressions"])
def test_render_equals_nft_text(name: str) -> None:
    rs = load_json((SAMPLES / f"{name}.json").read_text(), f"{name}.json")
    assert not rs.issues
    assert _norm(rs.text()) == _norm((SAMPLES / f"{name}.txt").read_text())
    nft_lines = [m.group(1).strip() for m in re.finditer(
        r"^\t\t(.*) # handle (\d+)$", (SAMPLES / f"{name}.txt").read_text(), re.M)]
    refs = list(rs.rules())
    assert [r.text for r in refs] == nft_lines
    assert all(r.location is not None and r.location.line > 0 for r in refs)


def test_families_chains_sets() -> None:
    rs = load_json((SAMPLES / "everything.json").read_text(), "everything.json")
    assert {t[0] for t in rs.tables} == {"ip", "ip6", "inet", "arp", "bridge", "netdev"}
    nat = rs.chains[("ip", "nat", "prerouting")]
    assert (nat.type, nat.hook, nat.priority, nat.policy) == ("nat", "prerouting", -100, "accept")
    assert rs.sets[("inet", "filter", "port_vmap")].map_type == "verdict"
    assert rs.sets[("inet", "meter_t", "synflood")].dynamic
    rej = next(r for r in rs.rules() if r.handle == 14 and r.table == "filter")
    assert rej.can_reset and rej.reject_with == "tcp reset"
    assert [h.chain for h in rs.hook_chains(4, "input")] == ["input", "input"]


def _t(rs, **kw):  # type: ignore[no-untyped-def]
    return trace([rs], Packet.build(**kw), TraceEnv(frozenset({"192.0.2.1"})))


def test_trace_sample_reports_conditions_and_unknowns() -> None:
    rs = load_json((SAMPLES / "everything.json").read_text(), "everything.json")
    res = _t(rs, src="192.0.2.3", dst="192.0.2.1", sport=4000, dport=25, iif="veth0")
    conds = {c.rule.handle: c.condition for c in res.conditional}
    assert "more than 20 connections" in conds[22]
    assert res.verdict == "drop" and res.policy is not None  # input policy drop
    res = _t(rs, src="192.0.2.3", dst="192.0.2.1", sport=4000, dport=443, iif="veth0")
    assert res.verdict == "accept" and res.rule is not None and res.rule.chain == "web"
    assert any("limit rate over 20/second" in c.condition for c in res.conditional)
    assert any(n.rule.handle == 5 and "skuid" in n.reason for n in res.not_evaluated)
    res = _t(rs, src="192.0.2.3", dst="192.0.2.1", sport=4000, dport=3389, iif="veth0")
    assert res.verdict == "reject" and res.reject_with == "tcp reset"
    assert res.rule is not None and res.rule.handle == 14


def test_iptables_nft_tables_left_to_iptables() -> None:
    rs = load_json((SAMPLES / "iptables-nft.json").read_text(), "iptables-nft.json")
    assert {t.name for t in rs.iptables_tables} == {"filter", "nat"}
    assert list(rs.rules()) == [] and rs.hook_chains(4, "input") == []
    assert any("iptables-nft" in n for n in rs.notes)


@pytest.mark.parametrize("text", ["", "{", '{"nftables": [', "[1, 2]", "null", "\x00\xff",
                                  '{"nftables": {}}', '{"x": 1}'])
def test_bad_json_is_a_clear_error(text: str) -> None:
    with pytest.raises(NftError, match=r"bad\.json"):
        load_json(text, "bad.json")


def test_truncated_and_malformed_objects() -> None:
    full = (SAMPLES / "expressions.json").read_text()
    for cut in range(1, len(full), max(1, len(full) // 40)):
        try:
            load_json(full[:cut], "cut.json")
        except NftError as exc:
            assert "cut.json" in str(exc)
    rs = load_json('{"nftables": [{"table": 3}, {"rule": {"family": "ip"}}, 7]}', "m.json")
    assert len(rs.issues) == 3 and all(i.location.path == "m.json" for i in rs.issues)


@pytest.mark.root
@pytest.mark.skipif(not CAN_RUN, reason=REASON)
def test_live_read_is_read_only() -> None:
    lab = NftLab()
    try:
        lab.load((SAMPLES / "expressions.nft").read_text())
        lab.send({"src": "192.0.2.2", "dst": "192.0.2.1", "proto": "tcp", "sport": 999,
                  "dport": 80, "flags": ["SYN"]})
        before = sh("nft", "-a", "list", "ruleset", ns=lab.server).stdout
        text = sh("nft", "-j", "list", "ruleset", ns=lab.server).stdout
        rs = load_json(text, "nft -j list ruleset")
        after = sh("nft", "-a", "list", "ruleset", ns=lab.server).stdout
        assert before == after  # rules, counters and set elements untouched
        assert _norm(rs.text()) == _norm(before)
        assert any((r.packets or 0) > 0 for r in rs.rules())
    finally:
        lab.close()
