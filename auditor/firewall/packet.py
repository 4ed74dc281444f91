"""A packet to trace through a firewall ruleset, checked when built from loose input.

:class:`Packet` is what ``auditor rules trace`` reads from options or NDJSON lines and
what the correlation engine builds from a log line; :class:`PacketError` names a
description that cannot be used. :mod:`auditor.firewall.model` publishes both.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Literal

Direction = Literal["input", "forward", "output"]
DIRECTIONS: tuple[Direction, ...] = ("input", "forward", "output")
TCP_FLAGS = frozenset({"SYN", "ACK", "RST", "FIN", "PSH", "URG", "ECE", "CWR"})
CT_STATES = frozenset({"new", "established", "related", "invalid", "untracked"})


class PacketError(ValueError):
    """A packet description (CLI options or an NDJSON line) that cannot be used."""


@dataclass(frozen=True, slots=True)
class Packet:
    """One packet to trace. Addresses are strings as given (normalised on build)."""

    src: str
    dst: str
    proto: str = "tcp"  # "tcp" | "udp" | "icmp" | "icmpv6" | "sctp" | a number as text
    sport: int | None = None
    dport: int | None = None
    family: int = 4  # 4 or 6; derived from the addresses by from_json
    direction: Direction = "input"
    iif: str | None = None  # ingress interface ("in")
    oif: str | None = None  # egress interface ("out")
    tcp_flags: frozenset[str] = frozenset()
    ct_state: str = "new"  # new | established | related | invalid | untracked
    ct_status: frozenset[str] = frozenset()  # EXPECTED SEEN_REPLY ASSURED CONFIRMED DNAT SNAT
    mark: int = 0
    icmp_type: int | None = None
    length: int = 60  # IP total length in bytes

    @property
    def src_ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return _ip(self.src)

    @property
    def dst_ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return _ip(self.dst)

    def with_mark(self, mark: int) -> Packet:
        return replace(self, mark=mark)

    @classmethod
    def build(cls, **kw: Any) -> Packet:
        """A checked packet from loose keyword values (CLI / JSON); PacketError when unusable.

        Accepts ``state`` for ct_state, ``in``/``out`` for interfaces, tcp_flags as a list
        or "SYN,ACK" text. Without tcp_flags a TCP packet gets SYN when new, ACK otherwise.
        """
        kw = {k: v for k, v in kw.items() if v is not None}
        if not kw.keys() <= _FIELDS:
            for a, b in _ALIASES.items():
                if a in kw:
                    kw.setdefault(b, kw.pop(a))
            unknown = kw.keys() - _FIELDS
            if unknown:
                raise PacketError(f"unknown packet field(s): {', '.join(sorted(unknown))}")
        for need in ("src", "dst"):
            if need not in kw:
                raise PacketError(f"packet needs {need!r}")
        try:
            src, version = _address(str(kw["src"]))
            dst, dst_version = _address(str(kw["dst"]))
        except ValueError as exc:
            raise PacketError(str(exc)) from None
        if version != dst_version:
            raise PacketError(f"src {src} and dst {dst} are of different IP versions")
        kw["src"], kw["dst"] = src, dst
        fam = kw.get("family", version)
        if fam.__class__ is not int:
            fam = _FAMILY_NAMES.get(str(fam).lower(), fam)
            try:
                fam = int(fam)
            except (TypeError, ValueError):
                raise PacketError(f"bad family {fam!r}") from None
        kw["family"] = fam
        if kw["family"] != version:
            raise PacketError(f"family {kw['family']} does not fit address {src}")
        proto = str(kw.get("proto", "tcp")).lower()
        if proto == "ipv6-icmp" or (proto == "icmp" and kw["family"] == 6):
            proto = "icmpv6"
        kw["proto"] = proto
        for port in ("sport", "dport", "mark", "icmp_type", "length"):
            if port in kw and kw[port].__class__ is not int:  # bool, text: read as text
                try:
                    kw[port] = int(str(kw[port]), 0)
                except ValueError:
                    raise PacketError(f"{port}: not a number: {kw[port]!r}") from None
                if port in ("sport", "dport") and not 0 <= kw[port] <= 65535:
                    raise PacketError(f"{port} {kw[port]} out of range 0-65535")
        direction = str(kw.get("direction", "input")).lower()
        if direction not in DIRECTIONS:
            raise PacketError(f"direction must be input, forward or output, not {direction!r}")
        kw["direction"] = direction
        state = str(kw.get("ct_state", "new")).lower()
        if state not in CT_STATES:
            raise PacketError(f"state must be one of {', '.join(sorted(CT_STATES))}, not {state!r}")
        kw["ct_state"] = state
        kw["tcp_flags"] = _flags(kw.get("tcp_flags"), TCP_FLAGS, "tcp flag")
        if not kw["tcp_flags"] and proto == "tcp":
            kw["tcp_flags"] = frozenset({"SYN"} if state == "new" else {"ACK"})
        kw["ct_status"] = _flags(kw.get("ct_status"), None, "ct status")
        return cls(**kw)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Packet:
        """A packet from one ``--packets`` NDJSON object (keys as :meth:`to_json`)."""
        if not isinstance(doc, Mapping):
            raise PacketError("a packet must be a JSON object")
        return cls.build(**dict(doc))

    def to_json(self) -> dict[str, Any]:
        return {
            "family": self.family, "direction": self.direction, "src": self.src,
            "dst": self.dst, "proto": self.proto, "sport": self.sport, "dport": self.dport,
            "iif": self.iif, "oif": self.oif, "tcp_flags": sorted(self.tcp_flags),
            "ct_state": self.ct_state, "ct_status": sorted(self.ct_status), "mark": self.mark,
        }


@lru_cache(maxsize=65536)
def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address object of ``text``, cached: rule checks ask for it once per rule tried.

    Tracing sees the same few thousand addresses again and again (bench_trace.py,
    100,000 packets, 20,000 iptables rules: 144,000 address parses per run before)."""
    return ipaddress.ip_address(text)


@lru_cache(maxsize=65536)
def _address(text: str) -> tuple[str, int]:
    """An address in its normal form, and its IP version; ValueError when it is none.

    With the cached flag sets and the int fast paths of :meth:`Packet.build`:
    ``Packet.from_json`` of bench_trace.py's 100,000 packets, 3.2 s -> 1.3 s of CPU."""
    ip = _ip(text)
    return str(ip), ip.version


def _flags(value: Any, allowed: frozenset[str] | None, what: str) -> frozenset[str]:
    """:func:`_flagset`, cached for the usual JSON lists of words (hashable as a tuple)."""
    if isinstance(value, list):
        try:
            return _flagset_cached(tuple(value), allowed, what)
        except TypeError:  # a list inside the list: not hashable, not cached
            pass
    return _flagset(value, allowed, what)


@lru_cache(maxsize=4096)
def _flagset_cached(value: tuple[Any, ...], allowed: frozenset[str] | None,
                    what: str) -> frozenset[str]:
    return _flagset(value, allowed, what)


def _flagset(value: Any, allowed: frozenset[str] | None, what: str) -> frozenset[str]:
    if value is None or value == "":
        return frozenset()
    items = value.split(",") if isinstance(value, str) else list(value)
    out = frozenset(str(i).strip().upper() for i in items if str(i).strip())
    if allowed is not None and not out <= allowed:
        raise PacketError(f"unknown {what}(s): {', '.join(sorted(out - allowed))}")
    return out


_FIELDS = frozenset(Packet.__dataclass_fields__)
_ALIASES = {"state": "ct_state", "in": "iif", "out": "oif", "protocol": "proto",
            "flags": "tcp_flags", "source": "src", "destination": "dst"}
_FAMILY_NAMES: dict[str, Any] = {"ip": 4, "ipv4": 4, "inet": 4, "ip6": 6, "ipv6": 6}
