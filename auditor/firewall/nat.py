"""Network address translation as the kernel applies it to the first packet of a connection.

Both backends describe where a NAT rule sends a connection as a :class:`NatTo` (an
address range and a port range, either part optional; iptables' ``--to-destination``,
``--to-source`` and ``--to-ports`` texts are read by :func:`parse_to`), and
:func:`translate` rewrites the :class:`~auditor.firewall.model.Packet` the way the
kernel's NAT core does for a NEW connection:

* ``dnat`` rewrites the destination, ``snat`` the source; of a range the kernel picks
  one address/port per connection, the trace follows the first and says so.
* ``redirect`` sends the packet to the host itself: the primary address of the ingress
  interface in prerouting, the loopback address in output; the port from ``to ports``.
* ``masquerade`` is an SNAT to the address of the egress interface.
* ``netmap`` maps the address into the given prefix, keeping the host bits (the
  destination in prerouting/output, the source elsewhere).

An address auditor cannot know (an interface's address when the host's addresses were
not given) leaves that field of the packet as it was, and the
:class:`~auditor.firewall.model.NatStep` shows it
in angle brackets with a note, so the output never pretends.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from functools import lru_cache

from auditor.firewall.model import NatStep, Packet, RuleRef, TraceEnv

PORTED = frozenset({"tcp", "udp", "sctp", "dccp", "udplite", "6", "17", "33", "132", "136"})


@dataclass(frozen=True, slots=True)
class NatTo:
    """Where a rule translates to: addresses ``addr``..``addr_hi``, ports ``port``..``port_hi``.

    For ``netmap`` ``addr`` is the prefix ("10.0.0.0/24")."""

    addr: str | None = None
    addr_hi: str | None = None
    port: int | None = None
    port_hi: int | None = None


def parse_to(text: str | None) -> NatTo:
    """iptables' ``A[-B][:P[-Q]]``, ``[v6][-[v6]][:P]``, ``:P`` or a port range ``P[-Q]``."""
    if not text:
        return NatTo()
    text = text.strip()
    if text[0].isdigit() and ":" not in text and "." not in text:  # --to-ports 8080[-8090]
        lo, _, hi = text.partition("-")
        return NatTo(None, None, int(lo), int(hi) if hi else None)
    ports = ""
    if text.startswith("["):  # [2001:db8::1]-[2001:db8::9]:80
        close = text.rindex("]")
        addrs, ports = text[:close + 1], text[close + 1:].removeprefix(":")
        addrs = addrs.replace("[", "").replace("]", "")
    elif text.count(":") == 1:
        addrs, ports = text.split(":")
    else:
        addrs = text  # IPv4 without port, or a bare IPv6 address
    a_lo, _, a_hi = addrs.partition("-") if "/" not in addrs else (addrs, "", "")
    p_lo, _, p_hi = ports.partition("-")
    return NatTo(a_lo or None, a_hi or None, int(p_lo) if p_lo else None,
                 int(p_hi) if p_hi else None)


def endpoint(addr: str, port: int | None) -> str:
    """``addr:port`` (``[addr]:port`` for IPv6), or the bare address without a port."""
    if port is None:
        return addr
    return f"[{addr}]:{port}" if ":" in addr and not addr.startswith("<") else f"{addr}:{port}"


def translate(kind: str, to: NatTo, packet: Packet, env: TraceEnv, hook: str,
              rule: RuleRef) -> tuple[Packet, NatStep]:
    """The packet after rule ``rule`` (a NAT of ``kind`` at ``hook``), and the step to report."""
    step = NatStep(kind, rule, hook, "", "")
    dst_side = step.rewrites_destination
    old_addr, old_port = (packet.dst, packet.dport) if dst_side else (packet.src, packet.sport)
    notes: list[str] = []
    addr: str | None
    if kind == "redirect":
        addr = _redirect_address(packet, env, hook, notes)
    elif kind == "masquerade":
        found = env.addresses_of(packet.oif, packet.family)
        addr = found[0] if found else None
        if addr is None:
            notes.append(f"the address of {packet.oif or 'the egress interface'} is not known "
                         "here; the source address is left as it was")
    elif kind == "netmap" and to.addr:
        net = ipaddress.ip_network(to.addr, strict=False)
        host = int(ipaddress.ip_address(old_addr)) & int(net.hostmask)
        addr = str(ipaddress.ip_address(int(net.network_address) | host))
    else:
        addr = _norm(to.addr.split("/")[0]) if to.addr else old_addr
        if to.addr and ("/" in to.addr or (to.addr_hi and to.addr_hi != to.addr)):
            span = to.addr if "/" in to.addr else f"{to.addr}-{to.addr_hi}"
            notes.append(f"the kernel picks one address of {span} per connection; "
                         f"the trace follows {addr}")
    port = old_port
    if to.port is not None and packet.proto in PORTED and old_port is not None:
        port = to.port
        if to.port_hi is not None and to.port_hi != to.port:
            notes.append(f"the kernel picks one port of {to.port}-{to.port_hi}; "
                         f"the trace follows {port}")
    shown = addr if addr is not None else f"<address of {_iface(kind, packet)}>"
    step = replace(step, before=endpoint(old_addr, old_port), after=endpoint(shown, port),
                   note="; ".join(notes) or None)
    new_addr = addr if addr is not None else old_addr
    if dst_side:
        packet = replace(packet, dst=new_addr, dport=port)
    else:
        packet = replace(packet, src=new_addr, sport=port)
    return packet, step


@lru_cache(maxsize=8192)
def _norm(addr: str) -> str:
    return str(ipaddress.ip_address(addr))


def _iface(kind: str, packet: Packet) -> str:
    name = packet.iif if kind == "redirect" else packet.oif
    return name or ("the ingress interface" if kind == "redirect" else "the egress interface")


def _redirect_address(packet: Packet, env: TraceEnv, hook: str, notes: list[str]) -> str | None:
    """REDIRECT's new destination: loopback for local output, else the ingress interface's."""
    if hook == "output":
        return "::1" if packet.family == 6 else "127.0.0.1"
    found = env.addresses_of(packet.iif, packet.family)
    if found:
        return found[0]
    if packet.dst in env.local_addresses or (not env.local_addresses
                                             and packet.direction == "input"):
        notes.append(f"the address of {_iface('redirect', packet)} is not known here; "
                     "the (local) destination address is kept")
        return packet.dst
    notes.append(f"the address of {_iface('redirect', packet)} is not known here; "
                 "the destination address is left as it was (the packet is delivered locally)")
    return None
