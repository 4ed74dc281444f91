"""Firewall lint: the rules most likely behind resets, and rules that never do anything.

Checks (``kind``): ``tcp-reset`` (REJECT --reject-with tcp-reset / reject with tcp reset),
``invalid-drop`` (drop or reject of conntrack state INVALID), ``low-limit`` (connlimit
or rate limits low enough to bite real clients), ``shadowed`` (an earlier terminal rule
in the same chain matches everything this one does), ``zero-counters`` (never matched),
``reject-listening`` (a REJECT/DROP on a port a local process listens on, from
``ss -ltnH``). Works on every :class:`~auditor.firewall.model.Ruleset` through rule text;
shadowing is computed for iptables rulesets, whose matches are typed.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from auditor.firewall.iptables_eval import CompiledRule
from auditor.firewall.iptables_ruleset import IptablesRuleset
from auditor.firewall.iptables_save import IptRule, Option
from auditor.firewall.model import RuleRef, Ruleset

LOW_CONNLIMIT = 32
LOW_RATE_PER_SEC = 10.0
_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600,
          "hour": 3600, "d": 86400, "day": 86400, "week": 604800}
_INVALID = re.compile(r"(--ctstate|--state)\s+\S*INVALID|ct state (\{[^}]*)?\binvalid\b")
_CONNLIMIT = re.compile(r"--connlimit-above\s+(\d+)|ct count (?:over )?(\d+)")
_RATE = re.compile(r"--(?:hashlimit-(?:upto|above)|limit)\s+(\d+)/(\w+)"
                   r"|limit rate (?:over )?(\d+)/(\w+)")
_PORTS = re.compile(r"--dports?\s+(\S+)|dport\s+(\{[^}]*\}|\S+)")


@dataclass(frozen=True, slots=True)
class LintFinding:
    kind: str
    severity: str  # high | medium | low | info
    rule: RuleRef
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "severity": self.severity, "message": self.message,
                "rule": self.rule.to_json()}


def listening_ports(ss_output: str) -> set[int]:
    """TCP ports in LISTEN from ``ss -ltnH`` (or ``ss -ltn``) output."""
    ports: set[int] = set()
    for line in ss_output.splitlines():
        parts = line.split()
        if len(parts) < 4 or parts[0] == "State":
            continue
        local = parts[3]
        _, _, port = local.rpartition(":")
        if port.isdigit():
            ports.add(int(port))
    return ports


def rule_ports(text: str) -> set[int]:
    out: set[int] = set()
    for m in _PORTS.finditer(text):
        spec = (m.group(1) or m.group(2) or "").strip("{} ")
        for part in re.split(r"[,\s]+", spec):
            lo, sep, hi = part.replace("-", ":").partition(":")
            if lo.isdigit() and (not sep or hi.isdigit()):
                a, b = int(lo), int(hi) if sep else int(lo)
                if b - a <= 1024:
                    out.update(range(a, b + 1))
    return out


def lint(rulesets: Sequence[Ruleset], listening: set[int] | None = None) -> list[LintFinding]:
    out: list[LintFinding] = []
    for rs in rulesets:
        for rule in rs.rules():
            out.extend(_text_checks(rule, listening))
        if isinstance(rs, IptablesRuleset):
            out.extend(shadowed(rs))
    return out


def _text_checks(rule: RuleRef, listening: set[int] | None) -> Iterable[LintFinding]:
    text, terminal = rule.text, rule.target in ("drop", "reject")
    if rule.can_reset:
        yield LintFinding("tcp-reset", "high", rule,
                          "answers matching connections with a TCP RST (client sees "
                          "'connection reset by peer')")
    if terminal and _INVALID.search(text):
        yield LintFinding("invalid-drop", "medium", rule,
                          f"{rule.target}s packets conntrack calls INVALID (out-of-window, "
                          "asymmetric routes, table overflow): resets and stalls follow")
    m = _CONNLIMIT.search(text)
    if m and int(m.group(1) or m.group(2)) <= LOW_CONNLIMIT:
        yield LintFinding("low-limit", "medium", rule,
                          f"connection limit of {m.group(1) or m.group(2)} per source: "
                          "clients behind NAT hit it quickly")
    m = _RATE.search(text)
    if m:
        num, unit = int(m.group(1) or m.group(3)), (m.group(2) or m.group(4)).lower()
        per_sec = num / _UNITS.get(unit.rstrip("s") if unit not in _UNITS else unit, 1)
        if per_sec < LOW_RATE_PER_SEC and rule.target not in ("log", "nflog"):
            yield LintFinding("low-limit", "medium", rule,
                              f"rate limit {num}/{unit} (= {per_sec:.3g}/s) is low for "
                              "real traffic")
    if rule.packets == 0:
        yield LintFinding("zero-counters", "info", rule, "counters are zero: never matched")
    if terminal and listening:
        hit = sorted(rule_ports(text) & listening)
        if hit:
            yield LintFinding("reject-listening", "high", rule,
                              f"{rule.target}s traffic to port(s) "
                              f"{', '.join(map(str, hit[:10]))} where a local process listens")


# --- shadowing (iptables) ------------------------------------------------------------------
def _covers(a: Option, b: Option, match: str) -> bool:
    """True when option ``a`` of an earlier rule matches everything ``b`` does."""
    if a == b:
        return True
    if match == "" and a.name == b.name and a.name in ("s", "d") and not a.negated \
            and not b.negated:
        try:
            na = ipaddress.ip_network(a.arg, strict=False)
            nb = ipaddress.ip_network(b.arg, strict=False)
        except ValueError:
            return False
        return na.version == nb.version and nb.subnet_of(na)  # type: ignore[arg-type]
    return False


def _options(rule: IptRule) -> list[tuple[str, Option]]:
    return [(m.name, o) for m in rule.matches if m.name != "comment" for o in m.options]


def _shadows(a: IptRule, b: IptRule) -> bool:
    bopts = _options(b)
    for m in a.matches:
        if m.name == "comment":
            continue
        if not m.options and not any(bm.name == m.name for bm in b.matches):
            return False
        for o in m.options:
            if not any(bm == m.name and _covers(o, bo, m.name) for bm, bo in bopts):
                return False
    return True


def shadowed(rs: IptablesRuleset) -> Iterable[LintFinding]:
    for fam, table, chain in rs.chains():
        compiled = rs.compiled(fam, table.name, chain.name)
        earlier: list[CompiledRule] = []
        for cr in compiled:
            rule = cr.rule
            for prev in earlier:
                if _shadows(prev.rule, rule):
                    yield LintFinding(
                        "shadowed", "low", rule.ref,
                        f"can never match: rule #{prev.rule.ref.position} of {chain.name} "
                        f"({prev.rule.ref.text}) decides every packet it would see")
                    break
            if rule.target in ("ACCEPT", "DROP", "REJECT") and not cr.conditions \
                    and not cr.unknown and not rule.goto:
                earlier.append(cr)
                if len(earlier) > 200:  # bound the quadratic walk on huge chains
                    earlier.pop(0)
