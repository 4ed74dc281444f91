"""The engine's link to :mod:`auditor.firewall`: trace logged packets and queries, list reset rules.

A logged reject (source, destination, port, flags) or the engineer's ``--port/--client``
becomes a :class:`~auditor.firewall.model.Packet`; the tracer names the rule that
decided it, with its counters. Everything here degrades to "no rule known" when the
firewall part or the rule sets are missing, never to an exception.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from auditor.models import Event

LOOPBACK = {4: "127.0.0.1", 6: "::1"}


@dataclass(frozen=True, slots=True)
class Traced:
    """The rule that decided a packet, and how sure the trace is."""

    rule: Any  # auditor.firewall.model.RuleRef
    verdict: str
    reject_with: str | None
    condition: str | None  # the conditional (connlimit, rate) that made it decide, if any
    certain: bool
    packet: str  # short description of the traced packet


def packet_from_event(event: Event, ct_state: str | None = None) -> Any | None:
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
    port: int, client: str | None, local: str | None = None, state: str | None = None
) -> Any | None:
    family = 6 if client and ":" in client else 4
    src = client or ("192.0.2.1" if family == 4 else "2001:db8::1")
    return _build(src=src, dst=local or LOOPBACK[family], proto="tcp", dport=port, ct_state=state)


def _build(**kw: Any) -> Any | None:
    try:
        from auditor.firewall.model import Packet, PacketError
    except ImportError:
        return None
    try:
        return Packet.build(**kw)
    except (PacketError, ValueError):
        return None


def trace(rulesets: Sequence[Any], packet: Any) -> Traced | None:
    """Trace ``packet``; a Traced when a rule (or a conditional rule) rejects or drops it."""
    if not rulesets or packet is None:
        return None
    try:
        import auditor.firewall as firewall
    except ImportError:
        return None
    fn = getattr(firewall, "trace", None)
    if fn is not None and not callable(fn):
        fn = getattr(fn, "trace", None)
    if fn is None:
        return None
    try:
        result = fn(list(rulesets), packet)
    except Exception:  # the tracer owns its tests; a failure here means "rule unknown"
        return None
    desc = _describe(packet)
    rule = getattr(result, "rule", None)
    verdict = str(getattr(result, "verdict", ""))
    if rule is not None and verdict in ("reject", "drop"):
        return Traced(
            rule,
            verdict,
            getattr(result, "reject_with", None),
            None,
            bool(getattr(result, "certain", True)),
            desc,
        )
    # Allowed as things stand, but a conditional rule (connlimit, rate) would reject it.
    for cond in getattr(result, "conditional", ()) or ():
        crule = getattr(cond, "rule", None)
        cverdict = str(getattr(cond, "verdict", None) or getattr(crule, "target", "") or "")
        cverdict = (cverdict.split() or [""])[0].lower()  # "reject with tcp reset" -> "reject"
        if crule is not None and cverdict in ("reject", "drop"):
            return Traced(
                crule,
                cverdict,
                getattr(crule, "reject_with", None),
                str(getattr(cond, "condition", "")),
                False,
                desc,
            )
    return None


def _describe(packet: Any) -> str:
    flags = ",".join(sorted(getattr(packet, "tcp_flags", ()) or ()))
    return (
        f"{packet.proto} {packet.src}:{packet.sport or '*'} -> {packet.dst}:{packet.dport}"
        + (f" [{flags}]" if flags else "")
        + f" ct {packet.ct_state}"
    )


_INVALID = re.compile(
    r"(?:ctstate|--state)\s+(?:\S+,)?INVALID|ct state[^;]*\binvalid\b"
)


def all_rules(rulesets: Iterable[Any]) -> Iterator[Any]:
    """Every rule of every ruleset (a ruleset that cannot list its rules is passed over)."""
    for ruleset in rulesets or ():
        try:
            rules = list(ruleset.rules())
        except Exception:
            continue
        yield from rules


_PREFIX = re.compile(r'prefix\s+(?:\\?"((?:[^"\\]|\\.)*)\\?"|(\S+))')


def invalid_loggers(rulesets: Iterable[Any]) -> dict[str, Any]:
    """LOG/NFLOG rules on conntrack state INVALID, by the prefix they write (stripped).

    Built once per diagnosis: a logged packet whose prefix is here was INVALID to conntrack.
    """
    out: dict[str, Any] = {}
    for rule in all_rules(rulesets):
        if "prefix" not in rule.text or not _INVALID.search(rule.text):
            continue
        m = _PREFIX.search(rule.text)
        if m is not None:
            out.setdefault((m.group(1) if m.group(1) is not None else m.group(2)).strip(), rule)
    return out


def reset_rules(rulesets: Iterable[Any]) -> list[Any]:
    """Rules that reject or drop and have counted packets (candidates without logs)."""
    return [
        r for r in all_rules(rulesets)
        if getattr(r, "target", None) in ("reject", "drop") and (r.packets or 0) > 0
    ]


def rule_key(rule: Any) -> tuple[Any, ...]:
    return (rule.backend, rule.family, rule.table, rule.chain, rule.position, rule.handle)


def rule_doc(rule: Any, condition: str | None = None) -> dict[str, Any]:
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
    return doc


def rule_delete(rule: Any) -> str:
    """The command that deletes the rule (shown as an example, never run)."""
    if rule.backend == "nftables":
        return f"nft delete rule {rule.family} {rule.table} {rule.chain} handle {rule.handle}"
    tool = "ip6tables" if rule.family == "ip6" else "iptables"
    if rule.backend == "iptables-legacy":
        tool += "-legacy"
    return f"{tool} -t {rule.table} -D {rule.chain} {rule.position}"


def rule_where(rule: Any) -> str:
    where = f"#{rule.position}" if rule.position is not None else f"handle {rule.handle}"
    return f"{rule.backend} {rule.family} {rule.table} {rule.chain} {where}"
