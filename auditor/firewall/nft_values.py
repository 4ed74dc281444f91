"""Values for nftables evaluation: what a packet shows each expression, and set lookups.

:func:`getter` maps a left-hand JSON expression (payload, meta, ct, fib, bitwise and,
concatenation) to a *field type* and a function reading it from a :class:`PV` (the
packet as evaluation sees it). :func:`norm` turns right-hand constants into the same
domain (addresses as integers, protocols as numbers, flags as name sets), and
:class:`ValueMap` answers set and map lookups with a hash set plus sorted,
merged interval lists (bisect), so lookups cost O(log n) whatever the set's size.
"""

from __future__ import annotations

import bisect
import ipaddress
import socket
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from auditor.firewall.model import Packet, TraceEnv


class Unsupported(Exception):
    """An expression auditor cannot evaluate at all (found when compiling)."""


class Unknown(Exception):
    """An expression this packet description does not decide (found when running)."""


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()  # the packet has no such header: the match fails, as in the kernel
PROTOS = {"icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "dccp": 33, "gre": 47, "esp": 50,
          "ah": 51, "icmpv6": 58, "ipv6-icmp": 58, "sctp": 132, "udplite": 136}
PORT_PROTOS = {"tcp": 6, "udp": 17, "dccp": 33, "sctp": 132, "udplite": 136}
ICMP_TYPES = {"echo-reply": 0, "destination-unreachable": 3, "source-quench": 4,
              "redirect": 5, "echo-request": 8, "router-advertisement": 9,
              "router-solicitation": 10, "time-exceeded": 11, "parameter-problem": 12,
              "timestamp-request": 13, "timestamp-reply": 14}
ICMPV6_TYPES = {"destination-unreachable": 1, "packet-too-big": 2, "time-exceeded": 3,
                "parameter-problem": 4, "echo-request": 128, "echo-reply": 129,
                "mld-listener-query": 130, "nd-router-solicit": 133, "nd-router-advert": 134,
                "nd-neighbor-solicit": 135, "nd-neighbor-advert": 136, "nd-redirect": 137}
Getter = Callable[["PV"], Any]


class PV:
    """The packet as the evaluator reads it; ``mark`` changes with ``meta mark set``."""

    __slots__ = ("ct_state", "ct_status", "daddr", "dport", "env", "fam", "flags", "icmp",
                 "iif", "length", "mark", "oif", "packet", "proto", "saddr", "sport")

    mark: int
    length: int

    def __init__(self, p: Packet, env: TraceEnv) -> None:
        self.packet, self.env, self.fam = p, env, p.family
        self.saddr, self.daddr = _addr_int(p.src), _addr_int(p.dst)
        pr = p.proto.lower()
        self.proto = PROTOS.get(pr, int(pr) if pr.isdigit() else -1)
        ported = self.proto in _PORT_NUMBERS
        self.sport = p.sport if ported else None
        self.dport = p.dport if ported else None
        self.flags = _lowered(p.tcp_flags)
        self.ct_state = _lowered(frozenset({p.ct_state}))
        self.ct_status = _lowered(p.ct_status)
        self.iif, self.oif, self.mark = p.iif, p.oif, p.mark
        self.icmp, self.length = p.icmp_type, p.length


_PORT_NUMBERS = frozenset(PORT_PROTOS.values())
_LOWERED: dict[frozenset[str], frozenset[str]] = {}


def _lowered(names: frozenset[str]) -> frozenset[str]:
    """``names`` in lower case (memoised: packets repeat a few flag and state sets)."""
    got = _LOWERED.get(names)
    if got is None:
        got = frozenset(n.lower() for n in names)
        if len(_LOWERED) < 4096:
            _LOWERED[names] = got
    return got


def _addr_int(addr: str) -> int:
    """An IPv4/IPv6 address as an integer (inet_pton is much faster than ipaddress)."""
    try:
        raw = socket.inet_pton(socket.AF_INET6 if ":" in addr else socket.AF_INET, addr)
    except OSError:
        return int(ipaddress.ip_address(addr))
    return int.from_bytes(raw, "big")


def _num(v: Any, names: Mapping[str, int] | None = None) -> int:
    if isinstance(v, bool):
        raise ValueError(f"not a number: {v!r}")
    if isinstance(v, int):
        return v
    s = str(v)
    if names and s in names:
        return names[s]
    if s.isdigit():
        return int(s)
    if s.lower().startswith("0x"):
        return int(s, 16)
    raise ValueError(f"unknown value {s!r}")


def _service(v: Any) -> int:
    try:
        return _num(v)
    except ValueError:
        try:
            return socket.getservbyname(str(v))
        except OSError:
            raise ValueError(f"unknown service {v!r}") from None


def norm(ftype: Any, v: Any) -> tuple[Any, ...]:
    """A constant as ("exact", key), ("interval", lo, hi) or ("wild", prefix)."""
    if isinstance(ftype, list):
        if not (isinstance(v, Mapping) and "concat" in v) or len(v["concat"]) != len(ftype):
            raise Unsupported(f"concatenation value {v!r} does not fit its key")
        return ("concat", tuple(norm(t, x) for t, x in zip(ftype, v["concat"], strict=True)))
    if isinstance(v, Mapping):
        if "range" in v:
            lo, hi = (norm(ftype, x)[1] for x in v["range"])
            return ("interval", lo, hi)
        if "prefix" in v:
            if ftype not in ("addr4", "addr6"):
                raise Unsupported(f"prefix on a non-address value {v!r}")
            net = ipaddress.ip_network(f"{v['prefix']['addr']}/{v['prefix']['len']}",
                                       strict=False)
            return ("interval", int(net.network_address), int(net.broadcast_address))
        if "|" in v:
            if ftype == "flags":
                return ("exact", frozenset().union(*(norm(ftype, x)[1] for x in v["|"])))
            acc = 0
            for x in v["|"]:
                acc |= norm(ftype, x)[1]
            return ("exact", acc)
        if "elem" in v:
            return norm(ftype, v["elem"].get("val"))
        raise Unsupported(f"value {v!r} not supported")
    if ftype in ("addr4", "addr6"):
        return ("exact", int(ipaddress.ip_address(str(v))))
    if ftype == "port":
        return ("exact", _service(v))
    if ftype == "int":
        return ("exact", _num(v))
    if ftype == "proto":
        return ("exact", PROTOS[str(v)] if str(v) in PROTOS else _num(v))
    if ftype == "icmp":
        return ("exact", _num(v, ICMP_TYPES))
    if ftype == "icmpv6":
        return ("exact", _num(v, ICMPV6_TYPES))
    if ftype == "flags":
        return ("exact", frozenset([v] if isinstance(v, str) else v))
    if ftype in ("ifname", "str"):
        s = str(v)
        if ftype == "ifname" and s.endswith("*") and not s.endswith("\\*"):
            return ("wild", s[:-1])
        return ("exact", s)
    raise Unsupported(f"value of type {ftype}")


_PAYLOAD: dict[tuple[str, str], tuple[str, Getter]] = {}


def _payload_table() -> dict[tuple[str, str], tuple[str, Getter]]:
    t: dict[tuple[str, str], tuple[str, Getter]] = {
        ("ip", "saddr"): ("addr4", lambda pv: pv.saddr if pv.fam == 4 else MISSING),
        ("ip", "daddr"): ("addr4", lambda pv: pv.daddr if pv.fam == 4 else MISSING),
        ("ip", "protocol"): ("proto", lambda pv: pv.proto if pv.fam == 4 else MISSING),
        ("ip", "length"): ("int", lambda pv: pv.length if pv.fam == 4 else MISSING),
        ("ip6", "saddr"): ("addr6", lambda pv: pv.saddr if pv.fam == 6 else MISSING),
        ("ip6", "daddr"): ("addr6", lambda pv: pv.daddr if pv.fam == 6 else MISSING),
        ("ip6", "nexthdr"): ("proto", lambda pv: pv.proto if pv.fam == 6 else MISSING),
        ("tcp", "flags"): ("flags", lambda pv: pv.flags if pv.proto == 6 else MISSING),
        ("icmp", "type"): ("icmp", _icmp_getter(1, 4)),
        ("icmpv6", "type"): ("icmpv6", _icmp_getter(58, 6)),
    }
    for name, num in PORT_PROTOS.items():
        t[(name, "sport")] = ("port", _port_getter(num, "sport"))
        t[(name, "dport")] = ("port", _port_getter(num, "dport"))
    for field in ("sport", "dport"):
        t[("th", field)] = ("port", _th_getter(field))
    return t


def _port_getter(num: int, field: str) -> Getter:
    def get(pv: PV) -> Any:
        if pv.proto != num:
            return MISSING
        v = getattr(pv, field)
        if v is None:
            raise Unknown(f"the packet has no {field}")
        return v
    return get


def _th_getter(field: str) -> Getter:
    def get(pv: PV) -> Any:
        if pv.proto not in PORT_PROTOS.values():
            raise Unknown(f"th {field} on protocol {pv.packet.proto} reads non-port bytes")
        v = getattr(pv, field)
        if v is None:
            raise Unknown(f"the packet has no {field}")
        return v
    return get


def _icmp_getter(num: int, fam: int) -> Getter:
    def get(pv: PV) -> Any:
        if pv.proto != num or pv.fam != fam:
            return MISSING
        if pv.icmp is None:
            raise Unknown("the packet's icmp type is not given")
        return pv.icmp
    return get


def _iface(attr: str, what: str) -> Getter:
    def get(pv: PV) -> Any:
        v = getattr(pv, attr)
        if v is None:
            raise Unknown(f"the packet's {what} interface is not given")
        return v
    return get


_META: dict[str, tuple[str, Getter]] = {
    "l4proto": ("proto", lambda pv: pv.proto),
    "nfproto": ("str", lambda pv: "ipv4" if pv.fam == 4 else "ipv6"),
    "protocol": ("str", lambda pv: "ip" if pv.fam == 4 else "ip6"),
    "mark": ("int", lambda pv: pv.mark),
    "length": ("int", lambda pv: pv.length),
    "iifname": ("ifname", _iface("iif", "input")),
    "oifname": ("ifname", _iface("oif", "output")),
    "iif": ("str", _iface("iif", "input")),
    "oif": ("str", _iface("oif", "output")),
    "pkttype": ("str", lambda pv: _pkttype(pv)),
}


def _pkttype(pv: PV) -> str:
    ip = pv.packet.dst_ip
    if ip.is_multicast:
        return "multicast"
    return "broadcast" if str(ip) == "255.255.255.255" else "host"


def _fib_type(pv: PV) -> str:
    ip = pv.packet.dst_ip
    if pv.env.is_local(pv.packet.dst, pv.packet, "dst"):
        return "local"
    if ip.is_multicast:
        return "multicast"
    return "broadcast" if str(ip) == "255.255.255.255" else "unicast"


def getter(e: Any) -> tuple[Any, Getter]:
    """(field type, reader) for a left-hand expression; Unsupported when auditor cannot."""
    if not _PAYLOAD:
        _PAYLOAD.update(_payload_table())
    if not isinstance(e, Mapping):
        raise Unsupported(f"expression {e!r}")
    if "payload" in e:
        p = e["payload"]
        key = (str(p.get("protocol")), str(p.get("field")))
        if key in _PAYLOAD:
            return _PAYLOAD[key]
        raise Unsupported(f"payload {' '.join(key)} not known for a traced packet")
    if "meta" in e:
        k = str(e["meta"].get("key"))
        if k in _META:
            return _META[k]
        raise Unsupported(f"meta {k} not known for a traced packet")
    if "ct" in e:
        c = e["ct"]
        if c.get("dir") is None and c.get("key") == "state":
            return ("flags", lambda pv: pv.ct_state)
        if c.get("dir") is None and c.get("key") == "status":
            return ("flags", lambda pv: pv.ct_status)
        raise Unsupported(f"ct {c.get('key')} not known for a traced packet")
    if "fib" in e:
        f = e["fib"]
        flags = f.get("flags", [])
        flags = [flags] if isinstance(flags, str) else list(flags)
        if f.get("result") == "type" and "daddr" in flags and "saddr" not in flags:
            return ("str", _fib_type)
        raise Unsupported(f"fib {' . '.join(flags)} {f.get('result')} not evaluated")
    if "&" in e:
        a, mask = e["&"]
        ftype, get = getter(a)
        if ftype == "flags":
            m = norm("flags", mask)[1]
            return ("flags", lambda pv: v & m if (v := get(pv)) is not MISSING else MISSING)
        if ftype in ("int", "port"):
            mi = _num(mask)
            return (ftype, lambda pv: v & mi if (v := get(pv)) is not MISSING else MISSING)
        raise Unsupported(f"bitwise and on {ftype}")
    if "concat" in e:
        parts = [getter(x) for x in e["concat"]]
        types = [t for t, _ in parts]
        gets = [g for _, g in parts]

        def get_concat(pv: PV) -> Any:
            vals = tuple([g(pv) for g in gets])
            return MISSING if MISSING in vals else vals
        return (types, get_concat)
    raise Unsupported(f"expression {next(iter(e), '?')} not supported")


class ValueMap:
    """Set/map lookup: exact keys in a dict, intervals sorted for bisect, name wildcards."""

    def __init__(self) -> None:
        self.exact: dict[Any, Any] = {}
        self.los: list[Any] = []
        self.spans: list[tuple[Any, Any, Any]] = []  # (lo, hi, data), sorted, disjoint
        self.wild: list[tuple[str, Any]] = []
        self.concat: list[tuple[tuple[tuple[Any, ...], ...], Any]] = []
        self.flagsets = False

    def lookup(self, v: Any) -> Any:
        """The element's data (True for a plain set), None when ``v`` is not in it."""
        if self.flagsets:  # flag values in a set compare exactly (ct state { new, invalid })
            return self.exact.get(v)
        try:
            hit = self.exact.get(v)
        except TypeError:
            hit = None
        if hit is not None:
            return hit
        if self.spans:
            i = bisect.bisect_right(self.los, v) - 1
            if i >= 0 and v <= self.spans[i][1]:
                return self.spans[i][2]
        for pre, data in self.wild:
            if isinstance(v, str) and v.startswith(pre):
                return data
        for parts, data in self.concat:
            if all(_part_hit(p, x) for p, x in zip(parts, v, strict=True)):
                return data
        return None


def _part_hit(p: tuple[Any, ...], x: Any) -> bool:
    if p[0] == "exact":
        return bool(p[1] == x)
    if p[0] == "interval":
        return bool(p[1] <= x <= p[2])
    return isinstance(x, str) and x.startswith(p[1])


def _verdict(d: Any) -> Any:
    if isinstance(d, Mapping) and len(d) == 1:
        k, a = next(iter(d.items()))
        if k in ("accept", "drop", "return", "continue"):
            return (k, None)
        if k in ("jump", "goto"):
            return (k, str(a["target"]))
    raise Unsupported(f"map data {d!r} is not a verdict")


def build_map(elems: Iterable[Any], ftype: Any, is_map: bool = False,
              verdicts: bool = False) -> ValueMap:
    """Index set (or map) elements for ``ftype`` keys; maps keep verdicts as data."""
    vm = ValueMap()
    vm.flagsets = ftype == "flags"
    spans: list[tuple[Any, Any, Any]] = []
    for el in elems:
        key, data = (el[0], el[1]) if is_map and isinstance(el, list) else (el, True)
        if verdicts:
            data = _verdict(data)
        n = norm(ftype, key)
        if n[0] == "exact":
            vm.exact[n[1]] = data
        elif n[0] == "interval":
            spans.append((n[1], n[2], data))
        elif n[0] == "wild":
            vm.wild.append((n[1], data))
        elif all(p[0] == "exact" for p in n[1]):
            vm.exact[tuple(p[1] for p in n[1])] = data
        else:
            vm.concat.append((n[1], data))
    spans.sort(key=lambda s: s[0])
    merged: list[tuple[Any, Any, Any]] = []
    for s in spans:  # nft keeps intervals disjoint; merge defensively (first data wins)
        if merged and s[0] <= merged[-1][1] and s[2] == merged[-1][2]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], s[1]), s[2])
        else:
            merged.append(s)
    vm.spans = merged
    vm.los = [s[0] for s in merged]
    return vm
