"""What an iptables target does to the packet, read once when the ruleset is loaded.

``-j DNAT --to-destination A[-B][:P[-Q]]`` (and SNAT, REDIRECT, MASQUERADE, NETMAP)
becomes a checked :class:`~auditor.firewall.nat.NatTo`; ``-j MARK --set-xmark V/M``
(``--set-mark``, ``--and-mark``, ``--or-mark``, ``--xor-mark``) a :class:`MarkOp`.
A value iptables itself would refuse (an address that is not one, a mark that is not
a 32-bit number, a port beyond 65535) raises ValueError here, at load time, so the
reader can report it with the rule's file:line; tracing never parses target options.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace

from auditor.firewall.iptables_save import IptRule
from auditor.firewall.model import Packet
from auditor.firewall.nat import NatTo, parse_to

NAT_TARGETS = frozenset({"DNAT", "SNAT", "MASQUERADE", "REDIRECT", "NETMAP"})
_U32 = 0xFFFFFFFF
_PORTS = re.compile(r"\d{1,5}(-\d{1,5})?")


@dataclass(frozen=True, slots=True)
class MarkOp:
    """``mark = (mark & ~clear) <op> value``: op "set"/"xor" with a mask, or and/or/xor."""

    op: str  # "set" | "xor" | "and" | "or"
    value: int
    clear: int = 0

    def apply(self, mark: int) -> int:
        kept = mark & ~self.clear & _U32
        if self.op == "set":
            return kept | self.value
        if self.op == "xor":
            return kept ^ self.value
        return mark & self.value if self.op == "and" else mark | self.value


def _u32(text: str, what: str) -> int:
    try:
        v = int(text, 0)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a number") from None
    if not 0 <= v <= _U32:
        raise ValueError(f"{what} {text!r} is not a 32-bit value")
    return v


def mark_op(rule: IptRule) -> MarkOp | None:
    """The MARK target's operation; None when it names none; ValueError when malformed."""
    opts = {o.name: o.arg for o in rule.target_options}
    for name, op in (("set-xmark", "xor"), ("set-mark", "set")):
        if name in opts:
            val, _, mask = opts[name].partition("/")
            m = _u32(mask, "mask") if mask else _U32
            return MarkOp(op, _u32(val, "mark"), m)
    for name in ("and-mark", "or-mark", "xor-mark"):
        if name in opts:
            return MarkOp(name.removesuffix("-mark"), _u32(opts[name], "mark"))
    return None


def nat_to(rule: IptRule) -> NatTo:
    """Where a NAT target sends the connection, checked; ValueError when malformed."""
    opts = {o.name: o.arg for o in rule.target_options}
    ports = opts.get("to-ports")
    if ports is not None and not _PORTS.fullmatch(ports):
        raise ValueError(f"--to-ports {ports!r} is not a port or port range")
    text = opts.get("to-destination") or opts.get("to-source") or ports or opts.get("to")
    try:
        to = parse_to(text)
    except (ValueError, IndexError):
        raise ValueError(f"cannot read {text!r}") from None
    for addr in (to.addr, to.addr_hi):
        if addr is None:
            continue
        try:
            if "/" in addr:
                ipaddress.ip_network(addr, strict=False)
            else:
                ipaddress.ip_address(addr)
        except ValueError:
            raise ValueError(f"{addr!r} is not an address") from None
    for port in (to.port, to.port_hi):
        if port is not None and not 0 <= port <= 65535:
            raise ValueError(f"port {port} out of range 0-65535")
    if rule.target == "NETMAP" and not to.addr:
        raise ValueError("NETMAP needs --to ADDRESS/PREFIX")
    return to


def apply_mark(op: MarkOp | None, rule: IptRule, packet: Packet) -> Packet:
    """The packet after a MARK, CONNMARK, CT or NOTRACK rule (only MARK and notrack change it)."""
    if op is not None:
        return packet.with_mark(op.apply(packet.mark))
    target = rule.target
    if target == "NOTRACK" or (target == "CT" and any(o.name == "notrack"
                                                      for o in rule.target_options)):
        return replace(packet, ct_state="untracked")
    return packet
