"""Small check factories and condition texts for :mod:`auditor.firewall.iptables_eval`.

Each factory returns a ``(packet, env) -> bool`` closure; :func:`describe_condition`
words a state-dependent match (connlimit, hashlimit, limit, recent, quota, statistic)
as the human condition under which the rule would decide.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import TYPE_CHECKING

from auditor.firewall.model import Packet, TraceEnv

if TYPE_CHECKING:
    from auditor.firewall.iptables_save import IptRule, Option

Check = Callable[[Packet, TraceEnv], bool]
IP = ipaddress.IPv4Address | ipaddress.IPv6Address
PROTOS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "ipv6-icmp": 58, "sctp": 132,
          "gre": 47, "esp": 50, "ah": 51, "udplite": 136, "dccp": 33}


def proto_number(name: str) -> int:
    name = name.lower()
    if name.isdigit():
        return int(name)
    if name in PROTOS:
        return PROTOS[name]
    raise ValueError(f"unknown protocol {name!r}")


def _any_of(a: Check, b: Check) -> Check:
    return lambda p, e: a(p, e) or b(p, e)


def _mark_check(value: int, mask: int) -> Check:
    return lambda p, e: (p.mark & mask) == value


def _range_check(src: bool, lo: IP, hi: IP) -> Check:
    def check(p: Packet, e: TraceEnv) -> bool:
        ip = p.src_ip if src else p.dst_ip
        return ip.version == lo.version and lo <= ip <= hi  # type: ignore[operator]

    return check


def _length_check(lo: int, hi: int) -> Check:
    return lambda p, e: lo <= p.length <= hi


def _pkttype_check(kind: str) -> Check:
    return lambda p, e: _pkttype(p) == kind


def _net_check(src: bool, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Check:
    if src:
        return lambda p, e: p.src_ip in net
    return lambda p, e: p.dst_ip in net


def _proto_check(num: int) -> Check:
    return lambda p, e: _pnum(p) == num


def _pnum(p: Packet) -> int:
    try:
        return proto_number(p.proto)
    except ValueError:
        return -1


def _pkttype(p: Packet) -> str:
    ip = p.dst_ip
    if ip.is_multicast:
        return "multicast"
    return "broadcast" if p.dst == "255.255.255.255" else "unicast"


def describe_condition(name: str, options: tuple[Option, ...], rule: IptRule) -> str:
    """A human condition such as "more than 20 connections per /32 to port 443"."""
    o = {opt.name: opt.arg for opt in options}
    port = next((opt.arg for m in rule.matches for opt in m.options
                 if opt.name in ("dport", "dports", "destination-port")), None)
    to_port = f" to port {port}" if port else ""
    if name == "connlimit":
        mask = o.get("connlimit-mask", "32")
        scope = "destination" if "connlimit-daddr" in o else "source"
        if "connlimit-above" in o:
            return (f"more than {o['connlimit-above']} connections per /{mask} "
                    f"{scope}{to_port}")
        return f"at most {o.get('connlimit-upto', '?')} connections per /{mask} {scope}{to_port}"
    if name == "hashlimit":
        rate = o.get("hashlimit-above") or o.get("hashlimit-upto") or o.get("hashlimit", "?")
        above = "hashlimit-above" in o
        mode = o.get("hashlimit-mode", "")
        per = f" per {mode}" if mode else ""
        burst = f" (burst {o['hashlimit-burst']})" if "hashlimit-burst" in o else ""
        return f"{'above' if above else 'within'} {rate}{per}{burst}{to_port}"
    if name == "limit":
        burst = o.get("limit-burst", "5")
        return f"within {o.get('limit', '3/hour')} (burst {burst}){to_port}"
    if name == "recent":
        lst = o.get("name", "DEFAULT")
        hits = f" with {o['hitcount']}+ hits" if "hitcount" in o else ""
        secs = f" in the last {o['seconds']}s" if "seconds" in o else ""
        return f"source is in recent list {lst!r}{hits}{secs}"
    if name == "quota":
        return f"while the {o.get('quota', '?')}-byte quota lasts"
    if name == "statistic":
        if o.get("mode") == "nth":
            return f"every {o.get('every', '?')}th packet"
        return f"with probability {o.get('probability', '?')}"
    return f"-m {name} state"
