"""Live reading is read-only, and names backends, warnings and problems.

Every read path (iptc for legacy, iptables-*-save -c for nft, ipset save, and the whole
``read_live``) runs inside a namespace this test creates; rules, counters, sets, the
legacy table list and net.* sysctls must be identical before and after.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import hi_lab

pytestmark = [pytest.mark.root, pytest.mark.skipif(not hi_lab.CAN_RUN, reason=hi_lab.REASON)]
LEGACY = hi_lab.CAN_RUN and hi_lab.legacy_usable()

NFT_RULES = """*filter
:INPUT DROP [5:300]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:hi-chain - [0:0]
[7:420] -A INPUT -p tcp -m tcp --dport 443 -m set --match-set hiset src -j REJECT --reject-with tcp-reset
[3:180] -A INPUT -s 192.0.2.0/24 -j hi-chain
[1:60] -A hi-chain -m conntrack --ctstate INVALID -j DROP
COMMIT
"""
LEGACY_RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
[9:540] -A INPUT -p udp -m multiport --dports 53,123 -m comment --comment "legacy one" -j DROP
COMMIT
"""
READER = """
import json
from auditor.firewall import read_live
from auditor.firewall.iptables_live import read_legacy_backend, read_nft_backend
from auditor.firewall.ipset import read_live_ipsets
read_legacy_backend(); read_nft_backend(); read_live_ipsets()
state = read_live()
print(json.dumps({"backends": state.backends, "warnings": state.warnings,
                  "problems": state.problems,
                  "rules": [r.to_json() for rs in state.rulesets for r in rs.rules()]}))
"""


def snapshot(ns: str) -> dict[str, str]:
    out = {
        "nft": hi_lab.run("iptables-nft-save", "-c", ns=ns, check=False),
        "nft6": hi_lab.run("ip6tables-nft-save", "-c", ns=ns, check=False),
        "ruleset": hi_lab.run("nft", "list", "ruleset", ns=ns, check=False),
        "ipset": hi_lab.run("ipset", "save", ns=ns, check=False),
        "legacy_names": hi_lab.run("cat", "/proc/net/ip_tables_names", ns=ns, check=False),
        "legacy6_names": hi_lab.run("cat", "/proc/net/ip6_tables_names", ns=ns, check=False),
        "sysctl": hi_lab.run("sysctl", "-a", "-r", r"^net\.(ipv4|ipv6|netfilter)", ns=ns,
                             check=False),
    }
    if LEGACY:
        out["legacy"] = hi_lab.run("iptables-legacy-save", "-c", ns=ns, check=False)
    # drop the "Generated/Completed on <time>" lines
    return {k: "\n".join(line for line in v.splitlines() if not line.startswith("# "))
            for k, v in out.items()}


def read_in(ns: str) -> dict[str, object]:
    out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", READER],
                         capture_output=True, text=True, timeout=120, check=True,
                         cwd=Path(__file__).parents[2])
    doc: dict[str, object] = json.loads(out.stdout)
    return doc


@pytest.fixture
def ns() -> object:
    lab = hi_lab.IptLab()
    try:
        hi_lab.run("ip", "netns", "add", lab.server)
        yield lab.server
    finally:
        hi_lab.run("ip", "netns", "del", lab.server, check=False)


def test_nft_only_read_is_read_only_and_creates_no_legacy_table(ns: str) -> None:
    hi_lab.run("ipset", "create", "hiset", "hash:ip", ns=ns)
    hi_lab.run("ipset", "add", "hiset", "198.51.100.4", ns=ns)
    hi_lab.run("iptables-nft-restore", "-c", ns=ns, stdin=NFT_RULES)
    before = snapshot(ns)
    doc = read_in(ns)
    assert snapshot(ns) == before
    assert before["legacy_names"].strip() == ""  # reading did not load legacy tables
    assert doc["backends"] == ["iptables-nft"]
    assert not doc["warnings"]
    rules = {r["text"]: r for r in doc["rules"]}  # type: ignore[attr-defined]
    rej = rules["-A INPUT -p tcp -m tcp --dport 443 -m set --match-set hiset src "
                "-j REJECT --reject-with tcp-reset"]
    assert (rej["packets"], rej["bytes"], rej["position"]) == (7, 420, 1)
    assert rej["reject_with"] == "tcp-reset"


@pytest.mark.skipif(not LEGACY, reason="kernel offers no iptables-legacy")
def test_legacy_via_iptc_and_both_backends_warned(ns: str) -> None:
    hi_lab.run("iptables-nft-restore", "-c", ns=ns, stdin=NFT_RULES.replace(
        " -m set --match-set hiset src", ""))
    hi_lab.run("iptables-legacy-restore", "-c", ns=ns, stdin=LEGACY_RULES)
    before = snapshot(ns)
    doc = read_in(ns)
    assert snapshot(ns) == before
    assert set(doc["backends"]) == {"iptables-legacy", "iptables-nft"}  # type: ignore[arg-type]
    assert any("both" in w for w in doc["warnings"])  # type: ignore[attr-defined]
    legacy = [r for r in doc["rules"] if r["backend"] == "iptables-legacy"]  # type: ignore[attr-defined]
    assert len(legacy) == 1
    assert legacy[0]["packets"] == 9 and legacy[0]["comment"] == "legacy one"
    assert legacy[0]["location"].startswith("python-iptables (iptc):")
    assert legacy[0]["text"].startswith("-A INPUT -p udp -m multiport --dports 53,123")
