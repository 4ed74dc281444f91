"""The engine's link to :mod:`auditor.firewall`: trace logged packets and queries, list reset rules.

A logged reject (source, destination, port, flags) or the engineer's ``--port/--client``
becomes a :class:`~auditor.firewall.model.Packet` (the firewall's own type); the
tracer names the rule that decided it, with its counters. A log line whose
addresses make no packet gives no trace ("no rule known"), never an exception.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from auditor.firewall import trace as trace_packet
from auditor.firewall.model import Packet, PacketError, RuleRef, Ruleset
from auditor.models import Event

LOOPBACK = {4: "127.0.0.1", 6: "::1"}


@dataclass(frozen=True, slots=True)
class Traced:
    """The rule that decided a packet, and how sure the trace is."""

    rule: RuleRef
    verdict: str
    reject_with: str | None
    condition: str | None  # the conditional (connlimit, rate) that made it decide, if any
    certain: bool
    packet: str  # short description of the traced packet
    # When ``rule`` is a conditional jump (a rate or connection limit sending packets to a
    # chain that logs and rejects them): the rule of that chain that rejects or drops.
    leads_to: RuleRef | None = None


def packet_from_event(event: Event, ct_state: str | None = None) -> Packet | None:
    """A Packet for a logged netfilter event, or None when it lacks addresses.

    The log does not say the conntrack state: a SYN is taken as new, anything else as
    established (or ``ct_state`` when given, e.g. "invalid" for a second try)."""
    if not event.source_ip or not event.destination_ip:
        return None
    flags = event.extra.get("tcp_flags")
    if isinstance(flags, str):
        flags = [f for f in flags.replace(",", " ").split() if f]
    state = None
    if flags is not None and "SYN" not in {str(f).upper() for f in flags}:
        state = ct_state or "established"
    iif, oif = event.ingress_interface, event.egress_interface
    # The LOG line says where the packet was: IN= and OUT= both set is the forward path
    # (e.g. to a container, after DNAT), only OUT= is a packet this host sent.
    direction = "forward" if iif and oif else "output" if oif else "input"
    return _build(
        src=event.source_ip,
        dst=event.destination_ip,
        proto=(event.transport or "tcp").lower(),
        sport=event.source_port,
        dport=event.destination_port,
        iif=iif,
        oif=oif,
        direction=direction,
        tcp_flags=flags or None,
        ct_state=state,
    )


def packet_from_query(
    port: int,
    client: str | None,
    local: str | None = None,
    state: str | None = None,
    family: int | None = None,
) -> Packet | None:
    family = family or (6 if client and ":" in client else 4)
    src = client or ("192.0.2.1" if family == 4 else "2001:db8::1")
    return _build(src=src, dst=local or LOOPBACK[family], proto="tcp", dport=port, ct_state=state)


def _build(**kw: Any) -> Packet | None:
    try:
        return Packet.build(**kw)
    except (PacketError, ValueError):  # a logged address or port the kernel would not send
        return None


def trace(rulesets: Sequence[Ruleset], packet: Packet | None) -> Traced | None:
    """Trace ``packet``; a Traced when a rule (or a conditional rule) rejects or drops it."""
    if not rulesets or packet is None:
        return None
    result = trace_packet(list(rulesets), packet)
    desc = _describe(packet)
    if result.rule is not None and result.verdict in ("reject", "drop"):
        return Traced(
            result.rule, result.verdict, result.reject_with, None, result.certain, desc
        )
    # Allowed as things stand, but a conditional rule (connlimit, rate) would reject it,
    # itself or through the chain it jumps to.
    for cond in result.conditional:
        words = str(cond.verdict or cond.rule.target or "").split()
        cverdict = (words or [""])[0].lower()  # "reject with tcp reset" -> "reject"
        if cverdict in ("reject", "drop"):
            return Traced(
                cond.rule, cverdict, cond.rule.reject_with, cond.condition, False, desc
            )
        chain = words[1] if cverdict in ("jump", "goto") and len(words) > 1 else cond.rule.target
        end = _terminal_in(rulesets, cond.rule, chain or "")
        if end is not None and end.target in ("reject", "drop"):
            return Traced(
                cond.rule, end.target, end.reject_with, cond.condition, False, desc, end
            )
    return None


MAX_CHAIN_DEPTH = 8


def _terminal_in(
    rulesets: Sequence[Ruleset], gate: RuleRef, chain: str, depth: int = 0
) -> RuleRef | None:
    """The first rule that ends a packet's walk in user chain ``chain`` (jumped to by ``gate``):
    a reject, drop or accept, following further unconditional jumps a few levels deep."""
    if not chain or depth >= MAX_CHAIN_DEPTH:
        return None
    for ruleset in rulesets:
        if ruleset.backend != gate.backend:
            continue
        for rule in ruleset.rules():
            if (rule.family, rule.table) != (gate.family, gate.table):
                continue
            if rule.chain.lower() != chain.lower():
                continue
            if rule.target in ("reject", "drop", "accept"):
                return rule
            if rule.target in ("jump", "goto") or (
                rule.target and rule.target not in _NON_TERMINAL and rule.target != chain.lower()
            ):
                nested = _jump_target(rule)
                found = _terminal_in(rulesets, gate, nested, depth + 1) if nested else None
                if found is not None:
                    return found
    return None


_NON_TERMINAL = {"log", "nflog", "ulog", "mark", "connmark", "return", "counter", "notrack",
                 "ct", "set", "meta", "audit", "trace", "snat", "dnat", "masquerade",
                 "redirect", "continue"}
_JUMP = re.compile(r"(?:-j|-g|\bjump|\bgoto)\s+([\w.-]+)")


def _jump_target(rule: RuleRef) -> str | None:
    m = _JUMP.search(rule.text)
    return m.group(1) if m else None


def _describe(packet: Packet) -> str:
    flags = ",".join(sorted(packet.tcp_flags))
    return (
        f"{packet.proto} {packet.src}:{packet.sport or '*'} -> {packet.dst}:{packet.dport}"
        + (f" [{flags}]" if flags else "")
        + f" ct {packet.ct_state}"
    )


_INVALID = re.compile(
    r"(?:ctstate|--state)\s+(?:\S+,)?INVALID|ct state[^;]*\binvalid\b"
)


def all_rules(rulesets: Iterable[Ruleset]) -> Iterator[RuleRef]:
    """Every rule of every ruleset."""
    for ruleset in rulesets:
        yield from ruleset.rules()


_PREFIX = re.compile(r'prefix\s+(?:\\?"((?:[^"\\]|\\.)*)\\?"|(\S+))')


def _prefix_of(rule: RuleRef) -> str | None:
    """The prefix a logging rule writes (stripped), or None."""
    if "prefix" not in rule.text:
        return None
    m = _PREFIX.search(rule.text)
    if m is None:
        return None
    return (m.group(1) if m.group(1) is not None else m.group(2)).strip()


def log_prefixes(rulesets: Iterable[Ruleset]) -> dict[str, RuleRef]:
    """Every rule that logs packets with a prefix (LOG, NFLOG, nft ``log prefix``), by prefix.

    A logged line whose prefix is not here was written by a rule these rule sets do not
    hold (changed since, or another host's): a trace through them is not its path."""
    out: dict[str, RuleRef] = {}
    for rule in all_rules(rulesets):
        prefix = _prefix_of(rule)
        if prefix is not None:
            out.setdefault(prefix, rule)
    return out


def invalid_loggers(rulesets: Iterable[Ruleset]) -> dict[str, RuleRef]:
    """LOG/NFLOG rules on conntrack state INVALID, by the prefix they write (stripped).

    Built once per diagnosis: a logged packet whose prefix is here was INVALID to conntrack.
    """
    out: dict[str, RuleRef] = {}
    for rule in all_rules(rulesets):
        prefix = _prefix_of(rule)
        if prefix is not None and _INVALID.search(rule.text):
            out.setdefault(prefix, rule)
    return out


def reset_rules(rulesets: Iterable[Ruleset]) -> list[RuleRef]:
    """Rules that reject and have counted packets (candidates without logs).

    A rule that drops sends no reset: its packets are never the resets of a finding."""
    return [r for r in all_rules(rulesets) if r.target == "reject" and (r.packets or 0) > 0]


MAX_PROBES = 4
# A rate or connection limit in a rule's text (iptables options or nftables statements).
_LIMIT = re.compile(
    r"-m (?:hashlimit|connlimit|limit|recent)\b.*?(?= -[mjg] |$)"
    r"|\blimit rate .*?(?= counter\b| jump\b| goto\b| log\b| accept\b| drop\b|$)"
    r"|\bct count (?:over )?\d+|\b(?:add|update) @\S+ \{[^}]*\}|\bmeter \S+ .*?\}"
)
_PORTS = re.compile(r"(?:--dports?|\bdport)\s+(?:\{([^}]*)\}|([\d,:-]+))")


def dports(text: str) -> list[int]:
    """The destination ports a rule's text names (``--dport``, ``--dports``, nft ``dport``);
    a range names too many to probe and is left out."""
    out: list[int] = []
    for m in _PORTS.finditer(text):
        if text[max(0, m.start() - 2):m.start()].strip() == "!":
            continue  # a negation names the ports that do not match
        for part in re.split(r"[,\s]+", m.group(1) or m.group(2)):
            if part.isdigit() and 0 < int(part) < 65536 and int(part) not in out:
                out.append(int(part))
    return out


def _jumpers(rulesets: Sequence[Ruleset], rule: RuleRef) -> list[tuple[RuleRef, list[int]]]:
    """Rules that send packets to ``rule``'s chain, with the ports for which they do."""
    goes = re.compile(rf"(?:-j|-g|\bjump|\bgoto)\s+{re.escape(rule.chain)}(?![\w.-])")
    vmap = re.compile(rf"(\d+)\s*:\s*(?:jump|goto)\s+{re.escape(rule.chain)}(?![\w.-])")
    out = []
    for ruleset in rulesets:
        if ruleset.backend != rule.backend:
            continue
        for other in ruleset.rules():
            same = (other.family, other.table) == (rule.family, rule.table)
            if not same or other.chain == rule.chain:
                continue
            keys = [int(k) for k in vmap.findall(other.text)]
            if keys:
                out.append((other, keys))
            elif goes.search(other.text):
                out.append((other, list(_ports_of(other))))
    return out


def reached(rulesets: Sequence[Ruleset], rule: RuleRef, how: str) -> tuple[list[int], Traced]:
    """The ports whose packets reach reject ``rule``, and the trace to cite for it.

    The ports are the rule's own, else those of the rules that jump (or map) to its chain.
    A new connection to each is traced: when a conditional rule (a rate or connection
    limit) decides, that rule is cited with ``rule`` as the one it leads to. ``how`` says
    where the packets were counted."""
    plain = Traced(rule, rule.target or "reject", rule.reject_with, None, True, how)
    ports = list(rule_ports(rulesets, rule))
    gates = [] if _ports_of(rule) else _jumpers(rulesets, rule)
    key = rule_key(rule)
    family = 6 if rule.family == "ip6" else 4
    for port in ports[:MAX_PROBES]:
        found = trace(rulesets, packet_from_query(port, None, family=family))
        if found is not None and key in (rule_key(found.rule),
                                         found.leads_to and rule_key(found.leads_to)):
            return ports, Traced(found.rule, found.verdict, found.reject_with, found.condition,
                                 found.certain, how, found.leads_to)
    cond = _LIMIT.search(gates[0][0].text) if len(gates) == 1 else None
    if cond is not None:  # the one way in is a limit: it decides, not the reject
        return ports, Traced(gates[0][0], plain.verdict, rule.reject_with, cond.group(0).strip(),
                             False, how, rule)
    return ports, plain


def gated_rejects(rulesets: Sequence[Ruleset]) -> list[tuple[RuleRef, RuleRef, str]]:
    """(gate, end, condition) for conditional jumps without logs: a rate or connection
    limit whose rule counted packets and jumps to a chain whose ending rule rejects them
    without a counter of its own (``limit rate over 5/second counter jump over_limit`` ->
    ``reject with tcp reset``, as firewalld-shaped nftables rules write it). A limit that
    leads to a drop sends no reset and is not listed."""
    out: list[tuple[RuleRef, RuleRef, str]] = []
    for gate in all_rules(rulesets):
        if gate.target not in ("jump", "goto") or not (gate.packets or 0) > 0:
            continue
        cond = _LIMIT.search(gate.text)
        chain = _jump_target(gate)
        if cond is None or chain is None:
            continue
        end = _terminal_in(rulesets, gate, chain)
        if end is not None and end.target == "reject" and not (end.packets or 0) > 0:
            out.append((gate, end, cond.group(0).strip()))
    return out


def rule_ports(rulesets: Sequence[Ruleset], rule: RuleRef) -> tuple[int, ...]:
    """The destination ports ``rule`` stops: those it names itself, else those of the rules
    that jump to its chain (``tcp dport 443 jump web_in``, ``-p tcp --dport 443 -j web-in``,
    ``tcp dport vmap { 8888 : jump web_in }``); () when none says."""
    own = _ports_of(rule)
    if own:
        return own
    found = {p for _, ports in _jumpers(rulesets, rule) for p in ports}
    return tuple(sorted(p for p in found if 0 < p < 65536))


def _ports_of(rule: RuleRef) -> tuple[int, ...]:
    """The ports a reader knows (nft: a constant or a port set), else those of its text."""
    return tuple(rule.dports) if rule.dports else tuple(dports(rule.text or ""))


def rule_key(rule: RuleRef) -> tuple[Any, ...]:
    return (rule.backend, rule.family, rule.table, rule.chain, rule.position, rule.handle)


def rule_doc(
    rule: RuleRef, condition: str | None = None, leads_to: RuleRef | None = None
) -> dict[str, Any]:
    """The report's ``rule`` object."""
    doc: dict[str, Any] = {
        "backend": rule.backend,
        "family": rule.family,
        "table": rule.table,
        "chain": rule.chain,
    }
    if rule.position is not None:
        doc["position"] = rule.position
    if rule.handle is not None:
        doc["handle"] = rule.handle
    doc.update(
        text=rule.text,
        packets=rule.packets,
        bytes=rule.bytes,
        target=rule.target,
        reject_with=rule.reject_with,
        owner=rule.owner,
        comment=rule.comment,
        location=str(rule.location) if rule.location else None,
    )
    if condition:
        doc["condition"] = condition
    if leads_to is not None:
        # the rule that answers the packets this conditional jump sends on
        doc["leads_to"] = {
            "chain": leads_to.chain,
            "position": leads_to.position,
            "handle": leads_to.handle,
            "text": leads_to.text,
            "target": leads_to.target,
            "reject_with": leads_to.reject_with,
            "packets": leads_to.packets,
            "location": str(leads_to.location) if leads_to.location else None,
        }
        doc["reject_with"] = leads_to.reject_with
    return doc


def rule_delete(rule: RuleRef) -> str:
    """The command that deletes the rule (shown as an example, never run)."""
    if rule.backend == "nftables":
        return f"nft delete rule {rule.family} {rule.table} {rule.chain} handle {rule.handle}"
    tool = "ip6tables" if rule.family == "ip6" else "iptables"
    if rule.backend == "iptables-legacy":
        tool += "-legacy"
    return f"{tool} -t {rule.table} -D {rule.chain} {rule.position}"


def rule_where(rule: RuleRef) -> str:
    where = f"#{rule.position}" if rule.position is not None else f"handle {rule.handle}"
    return f"{rule.backend} {rule.family} {rule.table} {rule.chain} {where}"
