"""An iptables dump as a :class:`~auditor.firewall.model.Ruleset`: indexed chains and their walk.

Every chain's rules are compiled once (:mod:`auditor.firewall.iptables_eval`) and
indexed by exact destination address, destination port and exact source address, so
that a packet is tried only against the rules that could match it (plus the rules
that constrain none of those), in position order. A packet that lacks a field some
indexed rule's checks need (no ``--in`` given, say) is also offered those rules, so
that they are reported as not evaluated exactly as a full scan would.
:meth:`IptablesRuleset.run_chain` follows ``-j``/``-g`` into user chains, RETURN, and
the built-in chain's policy. A NAT target in the nat table ends the chain with "accept"
and the packet rewritten (:func:`auditor.firewall.nat.translate`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from auditor.firewall.ipset import IpSets
from auditor.firewall.iptables_eval import CompiledRule, Undecidable, compile_rule
from auditor.firewall.iptables_save import BUILTIN_CHAINS, Chain, SaveDump, Table
from auditor.firewall.iptables_targets import NAT_TARGETS, apply_mark, mark_op, nat_to
from auditor.firewall.jumps import MAX_RULE_VISITS, budget_reason
from auditor.firewall.model import (
    IPTABLES_PRIORITIES,
    ChainOutcome,
    Conditional,
    HookChain,
    NotEvaluated,
    Packet,
    Policy,
    RuleRef,
    TraceEnv,
)
from auditor.firewall.nat import translate
from auditor.models import Location, ParseIssue

TERMINAL = {"ACCEPT": "accept", "DROP": "drop", "REJECT": "reject"}
# Targets that do something to the packet or log it and let it go on.
NON_TERMINAL = {"LOG", "NFLOG", "ULOG", "TRACE", "AUDIT", "CONNMARK", "CLASSIFY", "DSCP", "TOS",
                "TTL", "HL", "TCPMSS", "CHECKSUM", "SECMARK", "CONNSECMARK", "SET", "IDLETIMER",
                "LED", "HMARK", "TEE", "RATEEST", "TCPOPTSTRIP", "NFACCT", "CT", "NOTRACK",
                "MARK", "MASQUERADE_HACK"}
INDEX_MIN_RULES = 8


@dataclass
class _IndexedChain:
    chain: Chain
    rules: list[CompiledRule]
    wild: list[int] = field(default_factory=list)
    by_dst: dict[str, list[int]] = field(default_factory=dict)
    by_dport: dict[int, list[int]] = field(default_factory=dict)
    by_src: dict[str, list[int]] = field(default_factory=dict)
    by_need: dict[str, list[int]] = field(default_factory=dict)  # indexed rules by needs
    wild_rules: list[CompiledRule] = field(default_factory=list)  # never changed by callers

    def build(self) -> None:
        if len(self.rules) < INDEX_MIN_RULES:
            return
        self._build()
        self.wild_rules = [self.rules[i] for i in self.wild]

    def _build(self) -> None:
        for i, cr in enumerate(self.rules):
            if "*" in cr.needs:
                self.wild.append(i)
                continue
            if cr.dst_host is not None or cr.dports is not None or cr.src_host is not None:
                for need in cr.needs:
                    self.by_need.setdefault(need, []).append(i)
            if cr.dst_host is not None:
                self.by_dst.setdefault(cr.dst_host, []).append(i)
            elif cr.dports is not None:
                for port in cr.dports:
                    self.by_dport.setdefault(port, []).append(i)
            elif cr.src_host is not None:
                self.by_src.setdefault(cr.src_host, []).append(i)
            else:
                self.wild.append(i)

    def candidates(self, p: Packet) -> list[CompiledRule]:
        if len(self.rules) < INDEX_MIN_RULES:
            return self.rules
        lists = [self.wild]
        for got in (self.by_dst.get(p.dst), self.by_src.get(p.src),
                    self.by_dport.get(p.dport) if p.dport is not None else None):
            if got:
                lists.append(got)
        if p.dport is None and self.by_dport:  # unknown port: every port rule may apply
            lists.extend(self.by_dport.values())
        if self.by_need:
            for need in _missing(p):
                got = self.by_need.get(need)
                if got:
                    lists.append(got)
        rules = self.rules
        if len(lists) == 1:
            return self.wild_rules
        return [rules[i] for i in sorted(set().union(*lists))]  # position order, no repeats


class IptablesRuleset:
    """One backend's iptables rules (both families when the dump holds both)."""

    def __init__(self, dump: SaveDump, ipsets: IpSets | None = None) -> None:
        self.backend = dump.backend
        self.origin = dump.origin
        self.issues: list[ParseIssue] = list(dump.issues)
        self.ipsets = ipsets
        self.tables: dict[tuple[int, str], Table] = {}
        self._chains: dict[tuple[int, str, str], _IndexedChain] = {}
        self._hooks: dict[tuple[int, str], list[HookChain]] = {}
        for table in dump.tables:
            key = (table.family, table.name)
            if key in self.tables:  # a second dump of the same table: keep the later one
                self.issues.append(ParseIssue(
                    table.location or Location(self.origin), "iptables-save",
                    f"table {table.name} appears twice; later wins"))
            self.tables[key] = table
            for chain in table.chains.values():
                compiled = [self._effect(compile_rule(r, table.family, ipsets), table.name)
                            for r in chain.rules]
                ic = _IndexedChain(chain, compiled)
                ic.build()
                self._chains[(table.family, table.name, chain.name)] = ic

    # --- Ruleset protocol ------------------------------------------------------------------
    def rules(self) -> Iterable[RuleRef]:
        for (_, _), table in sorted(self.tables.items()):
            for chain in table.chains.values():
                for r in chain.rules:
                    yield r.ref

    def policies(self) -> Iterable[Policy]:
        for (fam, _), table in sorted(self.tables.items()):
            for chain in table.chains.values():
                if chain.policy is not None:
                    yield self._policy(fam, table.name, chain)

    def hook_chains(self, family: int, hook: str) -> list[HookChain]:
        got = self._hooks.get((family, hook))  # the tables never change after loading
        if got is None:
            got = self._hooks[(family, hook)] = self._hook_chains(family, hook)
        return list(got)

    def _hook_chains(self, family: int, hook: str) -> list[HookChain]:
        out = []
        fname = "ip6" if family == 6 else "ip"
        for name, prios in IPTABLES_PRIORITIES.items():
            table = self.tables.get((family, name))
            if table is None or hook not in prios or hook.upper() not in table.chains:
                continue
            out.append(HookChain(prios[hook], fname, name, hook.upper(), hook,
                                 "nat" if name == "nat" else "filter"))
        return sorted(out, key=lambda h: h.priority)

    def run_chain(self, chain: HookChain, packet: Packet, env: TraceEnv) -> ChainOutcome:
        fam = 6 if chain.family == "ip6" else 4
        path: list[RuleRef] = []
        cond: list[Conditional] = []
        ne: list[NotEvaluated] = []
        stack: list[tuple[list[CompiledRule], int]] = []
        base = self._chains[(fam, chain.table, chain.chain)]
        cands, i = base.candidates(packet), 0
        start_packet = packet
        visits = 0
        while True:
            if i >= len(cands):
                if stack:
                    cands, i = stack.pop()
                    continue
                break
            cr = cands[i]
            i += 1
            visits += 1
            if visits > MAX_RULE_VISITS:
                ne.append(NotEvaluated(cr.rule.ref, budget_reason(chain.chain)))
                break
            try:
                for check in cr.checks:  # a plain loop, not all() over a generator: 100,000
                    if not check(packet, env):  # traces 2.5 s vs 2.8 s of CPU (bench_trace.py)
                        break
                else:
                    check = None
            except Undecidable as exc:
                ne.append(NotEvaluated(cr.rule.ref, str(exc)))
                continue
            if check is not None:  # a check failed: the rule does not match
                continue
            ref = cr.rule.ref
            if cr.unknown:
                ne.append(NotEvaluated(ref, "; ".join(cr.unknown)))
                continue
            target = cr.rule.target
            if cr.conditions:
                cond.append(Conditional(ref, " and ".join(cr.conditions), _what(target)))
                continue
            path.append(ref)
            if target is None:
                continue
            if target in TERMINAL:
                verdict = TERMINAL[target]
                return ChainOutcome(verdict, ref, None,  # type: ignore[arg-type]
                                    ref.reject_with, tuple(path), tuple(cond), tuple(ne),
                                    packet if packet is not start_packet else None)
            if target in NAT_TARGETS and chain.table == "nat":
                packet, step = translate(target.lower(), cr.effect, packet, env,  # type: ignore[arg-type]
                                         chain.hook, ref)
                return ChainOutcome("accept", ref, None, None, tuple(path), tuple(cond), tuple(ne),
                                    packet, step)
            if target == "RETURN":
                if stack:
                    cands, i = stack.pop()
                    continue
                break
            sub = self._chains.get((fam, chain.table, target))
            if sub is not None and target not in BUILTIN_CHAINS.get(chain.table, ()):
                if not cr.rule.goto:  # no depth limit: loops are refused on reading, so
                    stack.append((cands, i))  # the stack holds at most one entry per chain
                cands, i = sub.candidates(packet), 0
                continue
            if target in ("MARK", "CONNMARK", "CT", "NOTRACK"):
                packet = apply_mark(cr.effect, cr.rule, packet)  # type: ignore[arg-type]
                continue
            if target in NON_TERMINAL:
                continue
            path.pop()
            ne.append(NotEvaluated(ref, f"target {target} not evaluated (verdict unknown)"))
        pol = self._policy(fam, chain.table, base.chain)
        verdict = "drop" if pol.policy == "drop" else "accept"
        return ChainOutcome(verdict, None, pol, None, tuple(path), tuple(cond),  # type: ignore[arg-type]
                            tuple(ne), packet if packet is not start_packet else None)

    # --- helpers ---------------------------------------------------------------------------
    def _effect(self, cr: CompiledRule, table: str) -> CompiledRule:
        """``cr`` with its NAT/MARK options read; a bad value is an issue and not evaluated."""
        rule = cr.rule
        try:
            if rule.target in NAT_TARGETS and table == "nat":
                return replace(cr, effect=nat_to(rule))
            if rule.target == "MARK":
                return replace(cr, effect=mark_op(rule))
        except ValueError as exc:
            why = f"-j {rule.target}: {exc}"
            self.issues.append(ParseIssue(rule.ref.location or Location(self.origin),
                                          "iptables-save", why, rule.ref.text[:200]))
            return replace(cr, unknown=(*cr.unknown, why))
        return cr

    def _policy(self, fam: int, table: str, chain: Chain) -> Policy:
        return Policy(self.backend, "ip6" if fam == 6 else "ip", table, chain.name,
                      (chain.policy or "ACCEPT").lower(), chain.packets, chain.bytes)

    def chains(self) -> Iterable[tuple[int, Table, Chain]]:
        for (fam, _), table in sorted(self.tables.items()):
            for chain in table.chains.values():
                yield fam, table, chain

    def compiled(self, fam: int, table: str, chain: str) -> list[CompiledRule]:
        ic = self._chains.get((fam, table, chain))
        return ic.rules if ic else []


def _missing(p: Packet) -> list[str]:
    """The fields ``p`` lacks, named as in :attr:`CompiledRule.needs`."""
    out = []
    if p.iif is None:
        out.append("iif")
    if p.oif is None:
        out.append("oif")
    if p.sport is None:
        out.append("sport")
    if p.dport is None:
        out.append("dport")
    if p.icmp_type is None:
        out.append("icmp")
    if p.ct_state != "new":
        out.append("ctdir")
    return out


def _what(target: str | None) -> str | None:
    if target is None:
        return None
    return TERMINAL.get(target, f"jump {target}" if target not in NON_TERMINAL else target.lower())
