"""Reading rule sets: saved dumps (iptables-save, nft JSON or text, ipset save) and the live host.

Loaded only when a rule set is read (its grammars and backends take 0.1 s to import:
``python -X importtime``), through the functions of :mod:`auditor.firewall`.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable
from pathlib import Path

from auditor.firewall.ipset import IpSets, parse_ipsets, read_live_ipsets
from auditor.firewall.iptables_live import read_legacy_backend, read_nft_backend
from auditor.firewall.iptables_ruleset import IptablesRuleset
from auditor.firewall.iptables_save import RefusedTable, SaveError, parse_save
from auditor.firewall.model import (
    ChainOutcome,
    FirewallError,
    FirewallState,
    HookChain,
    Packet,
    Policy,
    RuleRef,
    Ruleset,
    TraceEnv,
)
from auditor.firewall.nft_json import NftError, load_json
from auditor.firewall.nft_json import read_live as read_nft_live
from auditor.firewall.nft_text import load_text, looks_like_nft_text
from auditor.models import ParseIssue


def read_ipsets(path: str) -> IpSets:
    return parse_ipsets(Path(path).read_text(errors="replace"), path)


def read_file(path: str, ipsets: IpSets | None = None, backend: str = "iptables-nft") -> Ruleset:
    """An iptables-save dump, ``nft -j list ruleset`` JSON or ``nft list ruleset`` text."""
    text = Path(path).read_text(errors="replace")
    return read_text(text, path, ipsets, backend)


def read_text(text: str, origin: str, ipsets: IpSets | None = None,
              backend: str = "iptables-nft") -> Ruleset:
    """An iptables-save dump, nft JSON or ``nft list ruleset`` text, recognised by content;
    FirewallError names file:line.

    Reading builds many objects and frees almost none, so the cyclic garbage collector
    only rescans them: it is paused while reading (20,000 iptables rules, bench_trace.py:
    load 1.9 s -> 1.0 s of CPU, best of 3 each).
    """
    was_on = gc.isenabled()
    gc.disable()
    try:
        return _read_text(text, origin, ipsets, backend)
    finally:
        if was_on:
            gc.enable()


def _read_text(text: str, origin: str, ipsets: IpSets | None, backend: str) -> Ruleset:
    head = text.lstrip()[:1]
    if head in ("{", "["):
        try:
            rs: Ruleset = load_json(text, origin)
        except ValueError as exc:
            msg = str(exc)
            raise FirewallError(msg if origin in msg else f"{origin}: {msg}") from None
        return rs
    if looks_like_nft_text(text):
        try:
            return load_text(text, origin)
        except ValueError as exc:  # NftError, or a jump loop named file:line
            msg = str(exc)
            raise FirewallError(msg if origin in msg else f"{origin}: {msg}") from None
    try:
        return IptablesRuleset(parse_save(text, origin, backend), ipsets)
    except RefusedTable as exc:
        raise FirewallError(str(exc)) from None
    except SaveError as exc:
        raise FirewallError(f"{exc} (and not nft JSON either)") from None


def read_live(pairs: tuple[tuple[str, str], ...], with_nft: bool = True) -> FirewallState:
    """Every backend on this host, read-only; what could not be read is in ``problems``
    (``pairs``: this host's interface addresses)."""
    state = FirewallState(local_addresses=frozenset(a for _, a in pairs), interfaces=pairs)
    sets, why = read_live_ipsets()
    if why:
        state.problems.append(why)
    legacy = read_legacy_backend()
    nft = read_nft_backend()
    state.problems += legacy.problems + nft.problems
    for dump in legacy.dumps + nft.dumps:
        rs = IptablesRuleset(dump, sets)
        state.rulesets.append(rs)
        holds = any(True for _ in rs.rules()) or any(p.policy != "accept" for p in rs.policies())
        if holds and dump.backend not in state.backends:
            state.backends.append(dump.backend)
    if {"iptables-legacy", "iptables-nft"} <= set(state.backends):
        msg = ("iptables-legacy and iptables-nft tables both hold rules: the kernel runs both, "
               "and each iptables variant shows only its own")
        state.warnings.append(msg)
    elif legacy.dumps and "iptables-legacy" not in state.backends:
        state.warnings.append("iptables-legacy tables present but empty (no rules, ACCEPT "
                              "policies): harmless, yet `iptables` may warn about them")
    if with_nft:
        _add_nftables(state)
    return state


def _add_nftables(state: FirewallState) -> None:
    try:
        rs: Ruleset = read_nft_live()
    except NftError as exc:  # an unreadable nftables ruleset must not stop the other backends
        msg = str(exc)
        state.problems.append(msg if msg.startswith("nftables") else f"nftables: {msg}")
        return
    claimed = {(h.family, h.table) for r in state.rulesets if r.backend == "iptables-nft"
               for fam in (4, 6) for hook in ("prerouting", "input", "forward", "output",
                                               "postrouting") for h in r.hook_chains(fam, hook)}
    state.rulesets.append(HideTables(rs, claimed) if claimed else rs)
    if any(True for _ in state.rulesets[-1].rules()):
        state.backends.append("nftables")


class HideTables:
    """An nftables ruleset minus the tables iptables-nft owns (already traced as iptables)."""

    def __init__(self, inner: Ruleset, hidden: set[tuple[str, str]]) -> None:
        self.inner, self.hidden = inner, hidden
        self.backend, self.origin = inner.backend, inner.origin
        self.issues: list[ParseIssue] = inner.issues

    def rules(self) -> Iterable[RuleRef]:
        return (r for r in self.inner.rules() if (r.family, r.table) not in self.hidden)

    def policies(self) -> Iterable[Policy]:
        return (p for p in self.inner.policies() if (p.family, p.table) not in self.hidden)

    def hook_chains(self, family: int, hook: str) -> list[HookChain]:
        return [h for h in self.inner.hook_chains(family, hook)
                if (h.family, h.table) not in self.hidden]

    def run_chain(self, chain: HookChain, packet: Packet, env: TraceEnv) -> ChainOutcome:
        return self.inner.run_chain(chain, packet, env)
