"""The backend-neutral firewall model: packets, rules, chain outcomes and traces.

This module is the contract between the iptables half (``iptables_*.py``) and the
nftables half (``nft_*.py``) of :mod:`auditor.firewall`, and the tracer
(:mod:`auditor.firewall.trace`) that walks both. It imports nothing from either half.

How a trace works
-----------------
A :class:`Packet` names its ``direction``; :data:`HOOKS_BY_DIRECTION` gives the
netfilter hooks it crosses, in order. For every hook the tracer asks every
:class:`Ruleset` for its base chains on that hook (:meth:`Ruleset.hook_chains`),
sorts them by priority (iptables tables use :data:`IPTABLES_PRIORITIES`; nft
base chains their own), and runs each with :meth:`Ruleset.run_chain`.

* ``run_chain`` evaluates one *base* chain completely: it follows jumps, gotos
  and returns inside its own ruleset, and applies the chain's policy when the
  packet falls off the end. It always returns a :class:`ChainOutcome` whose
  ``verdict`` is "accept", "drop" or "reject"; ``rule`` is the rule that gave
  it, or None with ``policy`` set when the policy did.
* An "accept" ends only the current base chain; "drop"/"reject" end the trace.
* A match that depends on state a static ruleset cannot know (connlimit,
  hashlimit, recent, limit, quota, statistic; nft ``ct count``, ``limit rate``,
  meters, quota) is **conditional**: the rule goes to ``conditional`` with a human
  condition ("more than 20 connections per /32 to port 443") and evaluation
  continues *as if it did not match* (so both outcomes are known).
* A match or expression the evaluator does not understand sends the rule to
  ``not_evaluated`` with a reason, and evaluation continues as if it did not
  match. Never silently a miss.
* Non-terminal rules that match (LOG, counter-only, MARK, ...) are appended to
  ``path``; the deciding rule is the last element of ``path`` too.
* Chains of ``kind == "nat"`` see only the first packet of a connection: the
  tracer skips them unless ``packet.ct_state == "new"``. A NAT rule that matches
  ends its chain with "accept" and returns the rewritten packet plus a
  :class:`NatStep`; the tracer then skips the other nat
  chains of that hook (the kernel binds a connection once per hook) and, after a
  destination change in prerouting, re-decides the route: a local destination goes
  to INPUT, else FORWARD.

JSON shapes (``to_json``) are the ones documented for ``auditor rules trace``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from auditor.firewall.packet import Direction, Packet, PacketError
from auditor.models import Location, ParseIssue


class FirewallError(ValueError):
    """A rules file auditor cannot read (the message names the file)."""

__all__ = [  # Packet and PacketError live in auditor.firewall.packet; published here too
    "BACKENDS", "DST_KINDS", "HOOKS_BY_DIRECTION", "IPTABLES_PRIORITIES", "OWNERS", "ChainOutcome",
    "Conditional", "Direction", "FirewallState", "Hook", "HookChain", "NatStep",
    "NotEvaluated", "Packet", "PacketError", "Policy", "RuleRef", "Ruleset", "TraceEnv",
    "TraceResult", "Verdict",
]

Verdict = Literal["accept", "drop", "reject"]
Hook = Literal["prerouting", "input", "forward", "output", "postrouting"]

BACKENDS = ("iptables-legacy", "iptables-nft", "nftables")
# The hooks a packet crosses, in the kernel's order.
HOOKS_BY_DIRECTION: Mapping[str, tuple[Hook, ...]] = {
    "input": ("prerouting", "input"),
    "forward": ("prerouting", "forward", "postrouting"),
    "output": ("output", "postrouting"),
}
# Priorities of the iptables tables per hook (linux/netfilter_ipv4.h NF_IP_PRI_*).
IPTABLES_PRIORITIES: Mapping[str, Mapping[str, int]] = {
    "raw": {"prerouting": -300, "output": -300},
    "mangle": {h: -150 for h in ("prerouting", "input", "forward", "output", "postrouting")},
    "nat": {"prerouting": -100, "output": -100, "input": 100, "postrouting": 100},
    "filter": {"input": 0, "forward": 0, "output": 0},
    "security": {"input": 50, "forward": 50, "output": 50},
}
# Rule owners recognised by their chain names (see auditor.firewall.owners).
OWNERS = ("ufw", "firewalld", "docker", "kube-proxy", "fail2ban")
# NAT kinds that rewrite the destination (netmap does in prerouting/output).
DST_KINDS = frozenset({"dnat", "redirect"})


@dataclass(frozen=True, slots=True)
class RuleRef:
    """One rule as the kernel holds it, citable in output and evidence.

    ``position`` is 1-based within its chain (as ``iptables -L --line-numbers``) for
    iptables; ``handle`` is the nft rule handle. ``text`` is the rule exactly as
    ``iptables-save`` (``-A CHAIN ...``) or ``nft -a list ruleset`` prints it.
    ``target`` is the lower-cased verdict/target ("accept", "drop", "reject", "jump",
    "goto", "return", "log", "dnat", a user chain name, ...). ``location`` is file:line of
    the dump, or the command (e.g. "iptables-save -c") for live rules.
    """

    backend: str  # one of BACKENDS
    family: str  # "ip" | "ip6" | "inet" | "arp" | "bridge" | "netdev"
    table: str
    chain: str
    text: str
    position: int | None = None
    handle: int | None = None
    packets: int | None = None
    bytes: int | None = None
    comment: str | None = None
    owner: str | None = None  # one of OWNERS or None
    location: Location | None = None
    target: str | None = None
    reject_with: str | None = None  # e.g. "tcp-reset", "icmp-port-unreachable"
    # destination ports the rule requires, when a reader knows them (nft: a constant, an
    # anonymous or a named set); empty when it names none or the reader does not say
    dports: tuple[int, ...] = ()

    @property
    def can_reset(self) -> bool:
        """True when this rule answers with a TCP RST (the "connection reset by peer" kind)."""
        return self.target == "reject" and (self.reject_with or "").replace("_", "-") in (
            "tcp-reset", "tcp reset")

    @property
    def label(self) -> str:
        """Short name: ``iptables-nft ip filter INPUT #3`` / ``nftables inet fw input handle 7``."""
        where = f"#{self.position}" if self.position is not None else f"handle {self.handle}"
        return f"{self.backend} {self.family} {self.table} {self.chain} {where}"

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "backend": self.backend, "family": self.family, "table": self.table,
            "chain": self.chain,
        }
        if self.position is not None:
            doc["position"] = self.position
        if self.handle is not None:
            doc["handle"] = self.handle
        doc.update(text=self.text, packets=self.packets, bytes=self.bytes)
        doc.update(target=self.target, reject_with=self.reject_with, comment=self.comment,
                   owner=self.owner, location=str(self.location) if self.location else None)
        return doc


@dataclass(frozen=True, slots=True)
class NatStep:
    """One address translation, original -> new endpoint, and the rule that made it.

    ``before``/``after`` are endpoints as text ("192.0.2.10:80", "[2001:db8::1]:443");
    ``note`` says what the trace chose (the first address of a range) or could not know."""

    kind: str  # "dnat" | "redirect" | "snat" | "masquerade" | "netmap"
    rule: RuleRef
    hook: str
    before: str
    after: str
    note: str | None = None

    @property
    def rewrites_destination(self) -> bool:
        return self.kind in DST_KINDS or (
            self.kind == "netmap" and self.hook in ("prerouting", "output"))

    @property
    def text(self) -> str:
        side = "destination" if self.rewrites_destination else "source"
        return f"{self.kind.upper()} {side} {self.before} -> {self.after}"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "hook": self.hook, "before": self.before,
                "after": self.after, "note": self.note, "rule": self.rule.to_json()}


@dataclass(frozen=True, slots=True)
class Policy:
    """A base chain's policy, when it (and no rule) decided."""

    backend: str
    family: str
    table: str
    chain: str
    policy: str  # "accept" | "drop"
    packets: int | None = None
    bytes: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"backend": self.backend, "family": self.family, "table": self.table,
                "chain": self.chain, "policy": self.policy, "packets": self.packets,
                "bytes": self.bytes}


@dataclass(frozen=True, slots=True)
class Conditional:
    """A rule that *may* decide, depending on state the ruleset cannot show."""

    rule: RuleRef
    condition: str  # human text, e.g. "more than 20 connections per /32"
    verdict: str | None = None  # what it does when the condition holds

    def to_json(self) -> dict[str, Any]:
        return {**self.rule.to_json(), "condition": self.condition, "verdict": self.verdict}


@dataclass(frozen=True, slots=True)
class NotEvaluated:
    """A rule auditor could not evaluate (treated as a miss, and said so)."""

    rule: RuleRef
    reason: str  # e.g. "match 'u32' not supported"

    def to_json(self) -> dict[str, Any]:
        return {**self.rule.to_json(), "reason": self.reason}


@dataclass(frozen=True, slots=True)
class HookChain:
    """A base chain attached to a hook: what :meth:`Ruleset.hook_chains` returns."""

    priority: int
    family: str  # "ip" | "ip6" | "inet" | ...
    table: str
    chain: str
    hook: str  # one of the Hook names
    kind: str = "filter"  # "filter" | "nat" | "route" (nft chain type; iptables: nat table)


@dataclass(frozen=True, slots=True)
class ChainOutcome:
    """The result of running one base chain (jumps, returns and policy included)."""

    verdict: Verdict
    rule: RuleRef | None = None  # the rule that gave the verdict, None when the policy did
    policy: Policy | None = None
    reject_with: str | None = None
    path: tuple[RuleRef, ...] = ()  # every rule that matched, in order (deciding rule last)
    conditional: tuple[Conditional, ...] = ()
    not_evaluated: tuple[NotEvaluated, ...] = ()
    packet: Packet | None = None  # the packet after the chain when it changed it (MARK, NAT)
    nat: NatStep | None = None  # the translation a NAT rule of this chain applied


@dataclass(frozen=True, slots=True)
class TraceEnv:
    """What a trace needs to know about the host besides the rules."""

    # Addresses of the host (or namespace): -m addrtype --dst-type LOCAL, fib ... type local.
    local_addresses: frozenset[str] = frozenset()
    # (interface, address) pairs in the order `ip addr` lists them: REDIRECT, MASQUERADE.
    interfaces: tuple[tuple[str, str], ...] = ()

    def addresses_of(self, ifname: str | None, family: int) -> list[str]:
        """The addresses of interface ``ifname`` of IP ``family``, primary first."""
        return [a for i, a in self.interfaces
                if i == ifname and (":" in a) == (family == 6)]

    def is_local(self, addr: str, packet: Packet | None = None, which: str = "dst") -> bool:
        """True when ``addr`` is local. Without a known address list, an input packet's dst
        and an output packet's src count as local (that is what those hooks mean),
        as do loopback addresses."""
        ip = ipaddress.ip_address(addr)
        if ip.is_loopback or str(ip) in self.local_addresses:
            return True
        if self.local_addresses or packet is None:
            return False
        return (which == "dst" and packet.direction == "input") or (
            which == "src" and packet.direction == "output")


@runtime_checkable
class Ruleset(Protocol):
    """What every backend reader returns; the tracer needs nothing else.

    ``backend`` is one of BACKENDS; ``origin`` the file or command it was read from;
    ``issues`` the lines/objects that could not be understood (file:line each).
    """

    backend: str
    origin: str
    issues: list[ParseIssue]

    def rules(self) -> Iterable[RuleRef]:
        """Every rule, in table/chain/position order."""
        ...

    def policies(self) -> Iterable[Policy]:
        """Every base chain's policy."""
        ...

    def hook_chains(self, family: int, hook: str) -> list[HookChain]:
        """The base chains on ``hook`` that see packets of IP ``family`` (4 or 6)."""
        ...

    def run_chain(self, chain: HookChain, packet: Packet, env: TraceEnv) -> ChainOutcome:
        """Evaluate base ``chain`` (one of hook_chains' results) for ``packet``."""
        ...


@dataclass(frozen=True, slots=True)
class TraceResult:
    """The fate of one packet across all rulesets; ``to_json`` is the `rules trace` JSON."""

    verdict: Verdict
    reject_with: str | None = None
    rule: RuleRef | None = None
    policy: Policy | None = None
    path: tuple[RuleRef, ...] = ()
    conditional: tuple[Conditional, ...] = ()
    not_evaluated: tuple[NotEvaluated, ...] = ()
    packet: Packet | None = None  # the packet as it left the last hook (NAT applied)
    nat: tuple[NatStep, ...] = ()  # translations, in the order they happened
    notes: tuple[str, ...] = ()  # what the trace assumed (route after DNAT, no NAT mapping)

    @property
    def certain(self) -> bool:
        """True when nothing conditional or unevaluated was met on the way."""
        return not self.conditional and not self.not_evaluated

    def to_json(self, rule_json: Callable[[RuleRef], dict[str, Any]] | None = None
                ) -> dict[str, Any]:
        """The ``rules trace`` JSON; ``rule_json`` may memoise :meth:`RuleRef.to_json`."""
        rj = rule_json or RuleRef.to_json
        return {
            "verdict": self.verdict,
            "reject_with": self.reject_with,
            "rule": rj(self.rule) if self.rule else None,
            "policy": self.policy.to_json() if self.policy else None,
            "path": [rj(r) for r in self.path],
            "conditional": [c.to_json() for c in self.conditional],
            "not_evaluated": [n.to_json() for n in self.not_evaluated],
            "nat": [n.to_json() for n in self.nat],
            "notes": list(self.notes),
        }


@dataclass
class FirewallState:
    """Everything read from a live host: rulesets of every backend present, and what failed."""

    rulesets: list[Ruleset] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "iptables-legacy: not root", ...
    warnings: list[str] = field(default_factory=list)  # "legacy and nft tables both hold rules"
    backends: list[str] = field(default_factory=list)  # backends that hold rules
    local_addresses: frozenset[str] = frozenset()
    interfaces: tuple[tuple[str, str], ...] = ()

    @property
    def env(self) -> TraceEnv:
        return TraceEnv(self.local_addresses, self.interfaces)
